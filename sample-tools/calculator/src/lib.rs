//! `calculator` (risk tier: read): evaluates an arithmetic expression.
//!
//! Numbers, `+ - * / %`, `^` (power, right-associative), parentheses and
//! unary minus. The input schema bounds the expression's length; the parser
//! bounds its nesting, so no input can exhaust the guest's stack.

use agenthost_guest_sdk::{Error, RiskTier, Tool, ToolSpec, Value, export_tool, json};
use serde_json::json;

struct Calculator;

impl Tool for Calculator {
    fn spec() -> ToolSpec {
        ToolSpec::new("calculator", env!("CARGO_PKG_VERSION"))
            .description("Evaluates an arithmetic expression: numbers, + - * / % ^ and parentheses.")
            .input_schema(json!({
                "type": "object",
                "properties": {
                    "expression": {
                        "type": "string",
                        "minLength": 1,
                        "maxLength": 1000,
                        "description": "e.g. \"12 * (3 + 4)\""
                    }
                },
                "required": ["expression"],
                "additionalProperties": false
            }))
            .risk_tier(RiskTier::Read)
    }

    fn invoke(input: Value) -> Result<Value, Error> {
        let expression = json::str_field(&input, "expression")?;
        let value = evaluate(expression).map_err(Error::invalid_input)?;
        Ok(json!({ "expression": expression, "value": as_json_number(value) }))
    }
}

export_tool!(Calculator);

const MAX_DEPTH: usize = 64;

/// Whole numbers print as integers (`79`, not `79.0`) while they are exact.
fn as_json_number(value: f64) -> Value {
    const EXACT: f64 = 9_007_199_254_740_992.0; // 2^53
    if value.fract() == 0.0 && value.abs() < EXACT { Value::from(value as i64) } else { Value::from(value) }
}

/// Evaluates `text`, or says what is wrong with it and where.
fn evaluate(text: &str) -> Result<f64, String> {
    let mut parser = Parser { bytes: text.as_bytes(), pos: 0, depth: 0 };
    let value = parser.sum()?;
    parser.skip_spaces();
    if parser.pos != parser.bytes.len() {
        return Err(format!("unexpected `{}` at offset {}", parser.bytes[parser.pos] as char, parser.pos));
    }
    if !value.is_finite() {
        return Err("the result is not a finite number".to_owned());
    }
    Ok(value)
}

struct Parser<'a> {
    bytes: &'a [u8],
    pos: usize,
    depth: usize,
}

impl Parser<'_> {
    fn skip_spaces(&mut self) {
        while self.bytes.get(self.pos).is_some_and(u8::is_ascii_whitespace) {
            self.pos += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.skip_spaces();
        self.bytes.get(self.pos).copied()
    }

    fn sum(&mut self) -> Result<f64, String> {
        let mut value = self.product()?;
        while let Some(op @ (b'+' | b'-')) = self.peek() {
            self.pos += 1;
            let rhs = self.product()?;
            value = if op == b'+' { value + rhs } else { value - rhs };
        }
        Ok(value)
    }

    fn product(&mut self) -> Result<f64, String> {
        let mut value = self.power()?;
        while let Some(op @ (b'*' | b'/' | b'%')) = self.peek() {
            let at = self.pos;
            self.pos += 1;
            let rhs = self.power()?;
            if op != b'*' && rhs == 0.0 {
                return Err(format!("division by zero at offset {at}"));
            }
            value = match op {
                b'*' => value * rhs,
                b'/' => value / rhs,
                _ => value % rhs,
            };
        }
        Ok(value)
    }

    fn power(&mut self) -> Result<f64, String> {
        let base = self.unary()?;
        if self.peek() == Some(b'^') {
            self.pos += 1;
            let exponent = self.nested(Self::power)?;
            return Ok(base.powf(exponent));
        }
        Ok(base)
    }

    fn unary(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some(b'-') => {
                self.pos += 1;
                Ok(-self.nested(Self::unary)?)
            }
            Some(b'+') => {
                self.pos += 1;
                self.nested(Self::unary)
            }
            _ => self.atom(),
        }
    }

    fn atom(&mut self) -> Result<f64, String> {
        match self.peek() {
            Some(b'(') => {
                let open = self.pos;
                self.pos += 1;
                let value = self.nested(Self::sum)?;
                if self.peek() != Some(b')') {
                    return Err(format!("the `(` at offset {open} is not closed"));
                }
                self.pos += 1;
                Ok(value)
            }
            Some(c) if c.is_ascii_digit() || c == b'.' => {
                let start = self.pos;
                while self.bytes.get(self.pos).is_some_and(|c| c.is_ascii_digit() || *c == b'.') {
                    self.pos += 1;
                }
                let literal = std::str::from_utf8(&self.bytes[start..self.pos]).unwrap_or_default();
                literal.parse().map_err(|_| format!("`{literal}` at offset {start} is not a number"))
            }
            Some(c) => Err(format!("unexpected `{}` at offset {}", c as char, self.pos)),
            None => Err("the expression ends where a number was expected".to_owned()),
        }
    }

    fn nested(&mut self, rule: fn(&mut Self) -> Result<f64, String>) -> Result<f64, String> {
        self.depth += 1;
        if self.depth > MAX_DEPTH {
            return Err(format!("the expression nests deeper than {MAX_DEPTH} levels"));
        }
        let value = rule(self);
        self.depth -= 1;
        value
    }
}
