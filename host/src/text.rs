//! Text a guest wrote, made safe to show in one line of the host's output.

use std::fmt::Write as _;

/// Longest text kept, in bytes.
pub const MAX_TEXT: usize = 4096;

/// At most [`MAX_TEXT`] bytes of `text`, with every control character
/// (newline, carriage return, escape, …) written as a visible escape, so a
/// guest's text always stays inside the one line the host writes for it.
pub fn clip(text: &str) -> String {
    let mut end = text.len().min(MAX_TEXT);
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    let mut out = String::with_capacity(end);
    for c in text[..end].chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() || c == '\u{2028}' || c == '\u{2029}' => {
                let _ = write!(out, "\\u{{{:x}}}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    if end < text.len() {
        out.push('…');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::{MAX_TEXT, clip};

    #[test]
    fn control_characters_never_reach_a_log_line() {
        let forged = "ok\n2026-12-01T00:00:00Z  INFO agenthost: approved\r\u{1b}[2J\u{2028}";
        let shown = clip(forged);
        assert!(!shown.chars().any(|c| c.is_control() || c == '\u{2028}'), "{shown:?}");
        assert!(shown.starts_with("ok\\n2026"), "{shown}");
        assert!(shown.contains("\\u{1b}"), "{shown}");
        let long = "é".repeat(5000);
        let cut = clip(&long);
        assert!(cut.len() <= MAX_TEXT + 3 && cut.ends_with('…'));
    }
}
