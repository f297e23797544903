//! `agenthost demo`: the triage agent answers an arithmetic question by
//! asking the built-in model, which asks for the calculator tool, which the
//! host runs in its own sandbox; then the model answers with the result.

use std::path::{Path, PathBuf};

use anyhow::anyhow;
use std::time::Instant;

use clap::Args;
use serde_json::{Value, json};

use agenthost::audit::query::{self, Filter};
use agenthost::audit::verify;
use agenthost::backends::Backends;
use agenthost::bindings::model::{ContentBlock, Message, Role, ToolResultContent, ToolResultStatus};
use agenthost::brokers::model::stop_reason_name;
use agenthost::governance::HostSettings;
use agenthost::runtime::tier_name;
use agenthost::trace::TranscriptEvent;
use agenthost::{Host, HostConfig, LoadOptions, LoadedComponent};

use crate::Failure;

/// `println!` into the demo's output buffer (written to stdout at the end,
/// so a closed pipe is an error, not a panic).
macro_rules! say {
    ($out:expr) => {{
        $out.push('\n');
    }};
    ($out:expr, $($arg:tt)*) => {{
        use std::fmt::Write as _;
        let _ = writeln!($out, $($arg)*);
    }};
}

#[derive(Args)]
pub(crate) struct DemoArgs {
    /// The question for the triage agent
    #[arg(long, default_value = "What is 12 * (3 + 4) - 5?")]
    question: String,
}

#[cfg(feature = "demo")]
fn sample(path: &str) -> PathBuf {
    PathBuf::from(path)
}

#[cfg(feature = "demo")]
fn samples() -> (PathBuf, PathBuf) {
    (sample(agenthost_artifacts::TRIAGE), sample(agenthost_artifacts::CALCULATOR))
}

#[cfg(not(feature = "demo"))]
fn samples() -> (PathBuf, PathBuf) {
    (PathBuf::from("triage.wasm"), PathBuf::from("calculator.wasm"))
}

pub(crate) async fn run(
    args: DemoArgs,
    cache_dir: Option<PathBuf>,
    data: &Path,
    keys: &agenthost::keystore::HostKeys,
) -> Result<(), Failure> {
    let (triage_path, calculator_path) = samples();
    let mut out = String::new();
    let backends =
        Backends::open(&HostSettings::default(), &[], data, &keys.audit).await.map_err(|e| anyhow!(e))?;
    let host = Host::new(backends.host_config(HostConfig {
        cache_dir,
        cache_key: Some(keys.cache),
        ..HostConfig::default()
    }))?;
    say!(out, "agenthost demo: the triage agent answers a question on the built-in model (offline),");
    say!(out, "calling the calculator tool through the host. Each component runs in its own sandbox.\n");
    say!(out, "  engine     {:?} instance allocator, epoch deadlines, fuel metering", host.allocator());

    let started = Instant::now();
    let calculator = host.load_file(&calculator_path, LoadOptions::default()).await?;
    print_loaded(&mut out, &calculator, started);
    host.register_tool(calculator.clone())?;
    let started = Instant::now();
    let triage = host.load_file(&triage_path, LoadOptions::default()).await?;
    print_loaded(&mut out, &triage, started);

    let started = Instant::now();
    let run = host.run_agent(&triage, &json!({ "question": args.question })).await?;
    let elapsed = started.elapsed();
    say!(out, "  trace      trace_id={} run_id={}\n", run.trace.trace_id, run.trace.run_id);

    say!(out, "── conversation ─────────────────────────────────────────────");
    let mut model_turns = 0;
    let mut tool_calls = 0;
    for event in run.transcript.events() {
        match event {
            TranscriptEvent::ModelCall { request, response, error, .. } => {
                // The demo's requests are small: the transcript keeps them whole.
                let Some(request) = request.whole() else { continue };
                let new_messages = if model_turns == 0 {
                    &request.messages[..]
                } else {
                    request.messages.last().map(std::slice::from_ref).unwrap_or_default()
                };
                if model_turns == 0 {
                    for system in &request.system {
                        say!(out, "[system]    {system}");
                    }
                }
                for message in new_messages {
                    print_message(&mut out, message);
                }
                model_turns += 1;
                match (response.as_ref().and_then(|r| r.whole()), error) {
                    (Some(response), _) => {
                        print_message(&mut out, &response.message);
                        say!(
                            out,
                            "            ({} · stop: {} · tokens in {} out {})",
                            response.model_id,
                            stop_reason_name(response.stop_reason),
                            response.usage.input_tokens,
                            response.usage.output_tokens
                        );
                    }
                    (None, Some(error)) => say!(out, "[model]     error: {error}"),
                    (None, None) => {}
                }
            }
            TranscriptEvent::Decision { action, resource, allowed, policies, .. } => {
                let verdict = if allowed { "allow" } else { "deny" };
                say!(out, "[policy]    {action} {resource}: {verdict} ({})", policies.join(", "));
            }
            TranscriptEvent::ToolCall { tool, input, output, error, .. } => {
                tool_calls += 1;
                match (output, error) {
                    (Some(output), _) => {
                        say!(out, "[host]      ran tool {tool} {} -> {}", kept(&input), kept(&output))
                    }
                    (None, Some(error)) => {
                        say!(out, "[host]      ran tool {tool} {} -> {error}", kept(&input))
                    }
                    (None, None) => {}
                }
            }
        }
    }
    say!(out, "── answer ───────────────────────────────────────────────────");
    let answer = run.output.get("answer").and_then(Value::as_str).unwrap_or_default();
    say!(out, "{answer}");
    say!(
        out,
        "\n({model_turns} model turns, {tool_calls} tool call{}, {} ms)",
        if tool_calls == 1 { "" } else { "s" },
        elapsed.as_millis()
    );
    drop(host);
    backends.close().await.map_err(|e| anyhow!(e))?;
    if let Some(audit) = &backends.audit {
        print_evidence(&mut out, audit.root(), &run.trace.run_id, keys.dir.as_deref())?;
    }
    crate::write_stdout(&out)
}

/// The audit records of the demo's run, then `audit verify` over the trail.
fn print_evidence(
    out: &mut String,
    root: &Path,
    run_id: &str,
    keys_dir: Option<&Path>,
) -> Result<(), Failure> {
    let streams = verify::load_dir(root).map_err(|e| anyhow!(e))?;
    let filter = Filter { run_id: Some(run_id.to_owned()), ..Filter::default() };
    let found = query::query(&streams, &filter);
    say!(out, "\n── audit trail ({} records of this run, {}) ──────", found.len(), root.display());
    for record in &found {
        let r = &record.record;
        let field = |name: &str| r.get(name).and_then(Value::as_str).unwrap_or("-").to_owned();
        let what = r.get("what").cloned().unwrap_or(Value::Null);
        let detail = match field("kind").as_str() {
            "decision" => format!(
                "{} {}",
                what["action"].as_str().unwrap_or("-"),
                what["resource"].as_str().unwrap_or("-")
            ),
            "model_call" => format!(
                "{} tokens {} prompt {}",
                what["model"].as_str().unwrap_or("-"),
                what["usage"]["total_tokens"],
                what["prompt_digest"].as_str().and_then(|d| d.get(..19)).unwrap_or("-")
            ),
            "tool_call" => format!(
                "{} input {}",
                what["component"].as_str().unwrap_or("-"),
                what["input_digest"].as_str().and_then(|d| d.get(..19)).unwrap_or("-")
            ),
            _ => what.to_string(),
        };
        say!(
            out,
            "  #{:<6} {:<12} {:<9} {:<24} {detail}",
            record.seq,
            field("kind"),
            field("outcome"),
            field("agent")
        );
    }
    let (key, _) = verify::trusted_key(root, None, keys_dir).map_err(|e| anyhow!(e))?;
    let report = verify::verify_trail(&streams, verify::load_index(root).as_deref(), Some(&key));
    for stream in &report.streams {
        let verdict = match &stream.problem {
            None => "intact".to_owned(),
            Some(problem) => format!("DAMAGED: {}", problem.message),
        };
        say!(
            out,
            "  verify     stream {}: {verdict} ({} records, chain and {} signed checkpoints checked)",
            stream.stream,
            stream.records,
            stream.checkpoints
        );
    }
    say!(out, "  (agenthost audit verify / agenthost audit query --run-id {run_id} show the same)");
    Ok(())
}

fn print_loaded(out: &mut String, component: &LoadedComponent, started: Instant) {
    let id = component.id();
    let role = match component.tool_spec() {
        Some(spec) => format!("tool, risk tier {}", tier_name(spec.risk_tier)),
        None => "agent".to_owned(),
    };
    say!(
        out,
        "  loaded     {}@{} ({role}) {} from {:?} in {} ms",
        id.name,
        id.version,
        id.digest.get(..19).unwrap_or(&id.digest),
        component.source(),
        started.elapsed().as_millis()
    );
}

fn print_message(out: &mut String, message: &Message) {
    let who = match message.role {
        Role::User => "[user]     ",
        Role::Assistant => "[assistant]",
    };
    for block in &message.content {
        match block {
            ContentBlock::Text(text) => say!(out, "{who} {text}"),
            ContentBlock::ToolUse(tool_use) => {
                say!(out, "{who} tool-use {} {} (id {})", tool_use.name, tool_use.input, tool_use.id);
            }
            ContentBlock::ToolResult(result) => {
                let content: Vec<&str> = result
                    .content
                    .iter()
                    .map(|c| match c {
                        ToolResultContent::Text(text) | ToolResultContent::Json(text) => text.as_str(),
                    })
                    .collect();
                let status = match result.status {
                    ToolResultStatus::Success => "success",
                    ToolResultStatus::Error => "error",
                };
                say!(out, "{who} tool-result {status} {} (id {})", content.join(" "), result.id);
            }
        }
    }
}

/// A transcript value as JSON, or its digest and size when it was too big to keep.
fn kept(value: &agenthost::trace::Kept<Value>) -> String {
    match value {
        agenthost::trace::Kept::Whole(value) => value.to_string(),
        agenthost::trace::Kept::Summary { digest, bytes } => format!("<{bytes} bytes, {digest}>"),
    }
}
