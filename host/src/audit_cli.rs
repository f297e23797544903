//! `agenthost audit verify|query`: the auditor's view of the evidence plane.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::{Context as _, anyhow};
use clap::Subcommand;
use serde_json::json;

use agenthost::audit::query::{self, Filter};
use agenthost::audit::verify::{self, StreamInput};
use agenthost::audit::{Report, s3};
use agenthost::aws::AwsSettings;
use agenthost::governance::PublicKey;

use crate::{Failure, print_json};

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
        /// The trusted checkpoint key (SPKI PEM) [default: the host's key directory;
        /// failing that, the trail's own audit.pub, which makes an intact result exit 3]
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
/// What a `--from` holds: its streams, the signed stream index, and (for
/// S3) each segment's retention.
struct Loaded {
    streams: Vec<StreamInput>,
    index: Option<Vec<u8>>,
    root: PathBuf,
    retention: Option<Vec<s3::Retention>>,
}

/// Reads the streams a `--from` names; the default is the data dir's audit root.
async fn load(from: Option<&str>, data: &Path, aws: &AwsSettings) -> anyhow::Result<Loaded> {
    match from {
        Some(url) if url.starts_with("s3://") => {
            let (bucket, prefix) =
                s3::parse_url(url).ok_or_else(|| anyhow!("`{url}` is not s3://bucket/prefix"))?;
            let client = s3::client(aws).await;
            let (streams, index, retention) = s3::fetch(&client, &bucket, &prefix).await?;
            Ok(Loaded { streams, index, root: data.join("audit"), retention: Some(retention) })
        }
        Some(dir) => {
            let dir = PathBuf::from(dir);
            if !dir.is_dir() {
                return Err(anyhow!("{} is not a directory", dir.display()));
            }
            Ok(Loaded {
                streams: verify::load_dir(&dir)?,
                index: verify::load_index(&dir),
                root: dir,
                retention: None,
            })
        }
        None => {
            let dir = data.join("audit");
            Ok(Loaded {
                streams: verify::load_dir(&dir)
                    .with_context(|| format!("no audit trail under {}", dir.display()))?,
                index: verify::load_index(&dir),
                root: dir,
                retention: None,
            })
        }
    }
}

pub async fn run(
    command: AuditCommand,
    data: &Path,
    aws: &AwsSettings,
    key_dir: Option<&Path>,
) -> Result<ExitCode, Failure> {
    match command {
        AuditCommand::Verify { from, key, json } => {
            let Loaded { streams, index, root, retention } = load(from.as_deref(), data, aws).await?;
            if streams.is_empty() {
                return Err(anyhow!(
                    "no audit records found in {}",
                    from.unwrap_or_else(|| root.display().to_string())
                )
                .into());
            }
            let (key, trusted): (Option<PublicKey>, Option<verify::TrustedKey>) =
                match verify::trusted_key(&root, key.as_deref(), key_dir) {
                    Ok((key, trusted)) => (Some(key), Some(trusted)),
                    Err(e) if key.is_some() => return Err(anyhow!(e).into()),
                    Err(_) => (None, None),
                };
            let mut report = verify::verify_trail(&streams, index.as_deref(), key.as_ref());
            if let Some(trusted) = trusted.as_ref().filter(|t| t.from_trail) {
                report.warnings.push(format!(
                    "trusted key taken from the trail's own directory, or from a key directory that failed its checks ({}): whoever can rewrite the trail can replace it; pass --key with a copy kept elsewhere",
                    trusted.source
                ));
            }
            if json {
                print_json(
                    &json!({ "ok": report.ok(), "key": trusted, "report": report, "retention": retention }),
                )?;
            } else {
                print_report(&report, trusted.as_ref(), retention.as_deref());
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
            let Loaded { streams, .. } = load(from.as_deref(), data, aws).await?;
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

fn print_report(report: &Report, trusted: Option<&verify::TrustedKey>, retention: Option<&[s3::Retention]>) {
    let mut out = String::new();
    match trusted {
        Some(key) => out.push_str(&format!("trusted key {} from {}\n", key.id, key.source)),
        None => out.push_str("no trusted key: checkpoint signatures were not checked\n"),
    }
    if let Some(counter) = report.index_counter {
        out.push_str(&format!("stream index: signed, counter {counter}, every listed stream present\n"));
    }
    for warning in &report.warnings {
        out.push_str(&format!("warning: {warning}\n"));
    }
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
        for (at, previous) in &stream.crashes {
            out.push_str(&format!(
                "  crash: a writer stopped after seq {previous} without closing; the next one recorded it at seq {at}\n"
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
