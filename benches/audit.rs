#![allow(clippy::expect_used)] // a bench that cannot set up has nothing to measure
//! The evidence plane's throughput.
//!
//! - `audit/append-group-commit`: 64 concurrent invocations, each appending
//!   32 records (as an invocation's host calls do, without waiting) and then
//!   waiting until its last one is durable (as the host does before it
//!   returns a result), over and over; per record. Target ≥ 200 k records/s.
//! - `audit/append-ack-each`: 256 callers that each wait for every single
//!   record to be durable: the worst case, bounded by the disk's fsync rate.
//! - `audit/plain-write-fsync-per-batch`, the baseline in the same run:
//!   2048 equally long lines written to a plain file with one fdatasync —
//!   what the disk itself allows for a group of that size.
//! - `audit/verify`: checking a 100 000-record stream (chain, hashes,
//!   checkpoint signatures); per record. Target ≥ 1 M records/s.
//!
//! Run: `cargo bench -p agenthost-benches --bench audit`.

use std::io::Write as _;
use std::sync::Arc;
use std::time::{Duration, Instant};

use agenthost::audit::verify;
use agenthost::audit::{AuditLog, AuditOptions, Event, Kind, root_public_key};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use serde_json::json;

const CALLERS: usize = 256;
const INVOCATIONS: usize = 64;
const RECORDS_PER_INVOCATION: u64 = 32;

fn event(i: u64) -> Event {
    let mut event = Event::new(
        Kind::Decision,
        "acme",
        "allowed",
        json!({
            "action": "ReadMemory",
            "resource": "MemoryNamespace::\"acme/notes\"",
            "policies": ["base/allow-read"],
            "n": i,
        }),
    );
    event.principal = Some("alice".into());
    event.agent = Some("triage@1.0.0".into());
    event.component = Some(format!("sha256:{}", "ab".repeat(32)));
    event.trace_id = Some("4bf92f3577b34da6a3ce929d0e0e4736".into());
    event.run_id = Some("01J9Z3R6W3F3K1S9V7N6Q2B8XA".into());
    event
}

fn append(c: &mut Criterion) {
    let runtime =
        tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("rt");
    let dir = tempfile::tempdir().expect("dir");
    let options = AuditOptions { segment_bytes: 1 << 30, ..AuditOptions::default() };
    let log =
        AuditLog::open(dir.path(), options, agenthost::governance::KeyPair::from_seed([7; 32]), Vec::new())
            .expect("open");
    let sample_line = log.dir().to_path_buf();
    let mut group = c.benchmark_group("audit");
    group.sample_size(20);
    group.throughput(Throughput::Elements(INVOCATIONS as u64 * RECORDS_PER_INVOCATION));
    group.bench_function("append-group-commit", |b| {
        b.iter_custom(|iters| {
            let log = log.clone();
            runtime.block_on(async move {
                let started = Instant::now();
                let tasks: Vec<_> = (0..INVOCATIONS)
                    .map(|t| {
                        let log = log.clone();
                        tokio::spawn(async move {
                            for i in 0..iters {
                                let mut last = None;
                                for r in 0..RECORDS_PER_INVOCATION {
                                    let n = (i * INVOCATIONS as u64 + t as u64) * RECORDS_PER_INVOCATION + r;
                                    last = Some(log.append_owned(event(n)).expect("append"));
                                }
                                if let Some(last) = last {
                                    log.durable(&last).await.expect("durable");
                                }
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("task");
                }
                started.elapsed()
            })
        });
    });
    group.throughput(Throughput::Elements(CALLERS as u64));
    group.bench_function("append-ack-each", |b| {
        b.iter_custom(|iters| {
            let log = log.clone();
            runtime.block_on(async move {
                let started = Instant::now();
                let tasks: Vec<_> = (0..CALLERS)
                    .map(|t| {
                        let log = log.clone();
                        tokio::spawn(async move {
                            for i in 0..iters {
                                log.record(&event(i * CALLERS as u64 + t as u64)).await.expect("durable");
                            }
                        })
                    })
                    .collect();
                for task in tasks {
                    task.await.expect("task");
                }
                started.elapsed()
            })
        });
    });
    // A line as long as the records the trail writes (not its first, the
    // shorter record that names the stream).
    let line_len = std::fs::read_dir(&sample_line)
        .expect("dir")
        .filter_map(|e| e.ok())
        .find(|e| e.file_name().to_string_lossy().ends_with(".log"))
        .and_then(|e| std::fs::read_to_string(e.path()).ok())
        .and_then(|t| t.lines().take(100).map(str::len).max())
        .unwrap_or(600);
    let plain = dir.path().join("plain.log");
    let mut file = std::fs::OpenOptions::new().create(true).append(true).open(&plain).expect("plain");
    let line = vec![b'x'; line_len];
    let batch = INVOCATIONS * RECORDS_PER_INVOCATION as usize;
    group.throughput(Throughput::Elements(batch as u64));
    group.bench_function("plain-write-fsync-per-batch", |b| {
        b.iter_custom(|iters| {
            let started = Instant::now();
            let mut buf = Vec::with_capacity(batch * (line_len + 1));
            for _ in 0..iters {
                buf.clear();
                for _ in 0..batch {
                    buf.extend_from_slice(&line);
                    buf.push(b'\n');
                }
                file.write_all(&buf).expect("write");
                file.sync_data().expect("fsync");
            }
            started.elapsed()
        });
    });
    group.finish();
    log.close().expect("close");
}

fn encode(c: &mut Criterion) {
    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements(1));
    let mut buf = Vec::with_capacity(1 << 20);
    let head = "0".repeat(64);
    let id = "0123456789abcdef0123456789abcdef";
    group.bench_function("encode-one-record", |b| {
        b.iter(|| {
            if buf.len() > 1 << 19 {
                buf.clear();
            }
            agenthost::audit::record::encode_event_line(
                7,
                &head,
                &event(7),
                id,
                std::time::SystemTime::now(),
                &mut buf,
            )
        });
    });
    group.bench_function("build-one-event", |b| b.iter(|| event(7)));
    group.finish();
}

fn verify_stream(c: &mut Criterion) {
    const RECORDS: u64 = 100_000;
    let dir = tempfile::tempdir().expect("dir");
    let options = AuditOptions {
        checkpoint_every: 4096,
        checkpoint_interval: Duration::from_secs(3600),
        ..AuditOptions::default()
    };
    let log: Arc<AuditLog> =
        AuditLog::open(dir.path(), options, agenthost::governance::KeyPair::from_seed([7; 32]), Vec::new())
            .expect("open");
    for i in 0..RECORDS {
        log.append_owned(event(i)).expect("append");
    }
    log.close().expect("close");
    let streams = verify::load_dir(dir.path()).expect("load");
    let key = root_public_key(dir.path()).expect("key");
    let mut group = c.benchmark_group("audit");
    group.throughput(Throughput::Elements(RECORDS));
    group.sample_size(10);
    group.bench_function("verify", |b| {
        b.iter(|| {
            let report = verify::verify(&streams, Some(&key));
            assert!(report.ok());
            report
        });
    });
    group.finish();
}

criterion_group!(benches, encode, append, verify_stream);
criterion_main!(benches);
