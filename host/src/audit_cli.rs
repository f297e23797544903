//! `agenthost audit verify|query`: the auditor's view of the evidence plane.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use clap::Subcommand;
use serde_json::json;

use agenthost::audit::query::{self, Filter};
use agenthost::audit::verify::{self, StreamInput};
use agenthost::audit::{Report, s3};
use agenthost::brokers::aws::AwsSettings;
use agenthost::governance::PublicKey;

use crate::{Failure, print_json, write_stderr};

#[derive(Subcommand)]
pub enum AuditCommand {
    /// Check every stream's hash chain, checkpoint signatures and signed head;
    /// report the first record that was modified, deleted, inserted,
    /// reordered or cut off. Exit status: 0 intact, 1 damaged, 3 intact with
    /// warnings (a torn final record, records not yet under a checkpoint)
    Verify {
        /// An audit directory or `s3://bucket/prefix` [default: <data-dir>/audit]
        #[arg(long, value_name = "DIR|S3_URL")]
        from: Option<String>,
        /// The trusted checkpoint key (SPKI PEM) [default: audit.pub of the audit directory]
        #[arg(long, value_name = "PUB")]
        key: Option<PathBuf>,
        /// Print the full report as JSON
        #[arg(long)]
        json: bool,
    },
    /// Print the records of a trace, a run, a tenant or a time window, as JSON lines
    Query {
        #[arg(long, value_name = "DIR|S3_URL")]
        from: Option<String>,
        #[arg(long, value_name = "ID")]
        trace_id: Option<String>,
        #[arg(long, value_name = "ID")]
        run_id: Option<String>,
        #[arg(long, value_name = "ID")]
        tenant: Option<String>,
        /// decision, model_call, tool_call, memory_write, event_publish, approval, deploy, limit, evidence, checkpoint, recovery
        #[arg(long, value_name = "KIND")]
        kind: Option<String>,
        /// An RFC 3339 time, or how far back: 15m, 2h, 7d
        #[arg(long, value_name = "WHEN")]
        since: Option<String>,
    },
}

/// Reads the streams a `--from` names; the default is the data dir's audit root.
async fn load(
    from: Option<&str>,
    data: &Path,
    aws: &AwsSettings,
) -> anyhow::Result<(Vec<StreamInput>, PathBuf, Option<Vec<s3::Retention>>)> {
    match from {
        Some(url) if url.starts_with("s3://") => {
            let (bucket, prefix) =
                s3::parse_url(url).ok_or_else(|| anyhow!("`{url}` is not s3://bucket/prefix"))?;
            let client = s3::client(aws).await;
            let (streams, retention) = s3::fetch(&client, &bucket, &prefix).await?;
            Ok((streams, data.join("audit"), Some(retention)))
        }
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if !dir.is_dir() {
                return Err(anyhow!("{} is not a directory", dir.display()));
            }
            Ok((verify::load_dir(&dir)?, dir, None))
        }
        None => {
            let dir = data.join("audit");
            Ok((
                verify::load_dir(&dir).with_context(|| format!("no audit trail under {}", dir.display()))?,
                dir,
                None,
            ))
        }
    }
}

pub async fn run(command: AuditCommand, data: &Path, aws: &AwsSettings) -> Result<ExitCode, Failure> {
    match command {
        AuditCommand::Verify { from, key, json } => {
            let (streams, root, retention) = load(from.as_deref(), data, aws).await?;
            if streams.is_empty() {
                return Err(anyhow!(
                    "no audit records found in {}",
                    from.unwrap_or_else(|| root.display().to_string())
                )
                .into());
            }
            let (key, given): (Option<PublicKey>, bool) = match verify::trusted_key(&root, key.as_deref()) {
                Ok((key, given)) => (Some(key), given),
                Err(e) if key.is_some() => return Err(anyhow!(e).into()),
                Err(_) => (None, false),
            };
            if !given && key.is_some() && !json {
                write_stderr(&format!(
                    "note: checking checkpoints against {}/audit.pub, which sits beside the records; pass --key with a copy kept elsewhere to rule out a replaced key",
                    root.display()
                ));
            }
            let report = verify::verify(&streams, key.as_ref());
            if json {
                print_json(&json!({ "ok": report.ok(), "report": report, "retention": retention }))?;
            } else {
                print_report(&report, retention.as_deref());
            }
            Ok(if !report.ok() {
                ExitCode::from(1)
            } else if report.has_warnings() {
                ExitCode::from(3)
            } else {
                ExitCode::SUCCESS
            })
        }
        AuditCommand::Query { from, trace_id, run_id, tenant, kind, since } => {
            let (streams, _, _) = load(from.as_deref(), data, aws).await?;
            let since =
                since.as_deref().map(query::parse_since).transpose().map_err(|e| anyhow!("--since: {e}"))?;
            let filter = Filter { trace_id, run_id, tenant, kind, since };
            let mut out = String::new();
            for found in query::query(&streams, &filter) {
                let line = json!({ "stream": found.stream, "seq": found.seq, "hash": found.hash, "record": found.record });
                out.push_str(&line.to_string());
                out.push('\n');
            }
            crate::write_stdout(&out)?;
            Ok(ExitCode::SUCCESS)
        }
    }
}

fn print_report(report: &Report, retention: Option<&[s3::Retention]>) {
    let mut out = String::new();
    for stream in &report.streams {
        let verdict = match &stream.problem {
            None => "intact".to_owned(),
            Some(p) => format!("DAMAGED ({:?})", p.kind).to_lowercase().replace("damaged", "DAMAGED"),
        };
        out.push_str(&format!(
            "stream {}: {verdict}: {} records in {} segments, seq 1..{}, {} checkpoints, signed through seq {}{}\n",
            stream.stream,
            stream.records,
            stream.segments,
            stream.last_seq,
            stream.checkpoints,
            stream.signed_upto,
            stream.head_seq.map(|h| format!(", head at seq {h}")).unwrap_or_default(),
        ));
        if let Some(problem) = &stream.problem {
            out.push_str(&format!("  first bad record: {}\n", problem.message));
        }
        for torn in &stream.torn {
            out.push_str(&format!(
                "  torn record: {} bytes at byte {} of {}{}\n",
                torn.bytes,
                torn.offset,
                torn.segment,
                if torn.acknowledged { " (acknowledged by a recovery record)" } else { "" }
            ));
        }
        for warning in &stream.warnings {
            out.push_str(&format!("  warning: {warning}\n"));
        }
    }
    if let Some(retention) = retention {
        for r in retention {
            out.push_str(&format!(
                "object lock: {} {} until {}\n",
                r.key,
                r.mode.as_deref().unwrap_or("NONE"),
                r.retain_until.as_deref().unwrap_or("-")
            ));
        }
    }
    let _ = crate::write_stdout(&out);
}
