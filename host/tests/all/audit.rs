//! The evidence plane: chain, checkpoints, verification of every kind of
//! tampering, crash safety (kill -9 of a writer), queries, and the records a
//! real run leaves behind.

use std::io::{BufRead as _, Write as _};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use agenthost::audit::query::{self, Filter};
use agenthost::audit::record::{Line, chain_hash};
use agenthost::audit::verify::{self, ProblemKind, StreamInput};
use agenthost::audit::{AuditLog, AuditOptions, Event, Kind, root_public_key};
use agenthost::governance::KeyPair;
use serde_json::json;

fn options(checkpoint_every: u64) -> AuditOptions {
    AuditOptions {
        checkpoint_every,
        checkpoint_interval: Duration::from_secs(3600),
        ..AuditOptions::default()
    }
}

fn event(i: u64, tenant: &str) -> Event {
    let mut event = Event::new(Kind::ToolCall, tenant, "ok", json!({ "n": i }));
    event.trace_id = Some(format!("{:032x}", i % 3));
    event.run_id = Some(format!("run-{}", i % 2));
    event
}

/// A closed stream of `n` records (plus checkpoints) in a fresh root.
fn stream(n: u64, checkpoint_every: u64) -> (tempfile::TempDir, PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let log = AuditLog::open(
        root.path(),
        options(checkpoint_every),
        agenthost::governance::KeyPair::from_seed([7; 32]),
        Vec::new(),
    )
    .unwrap();
    for i in 1..=n {
        log.append(&event(i, "acme")).unwrap();
    }
    log.close().unwrap();
    let dir = log.dir().to_path_buf();
    (root, dir)
}

fn check(root: &Path) -> verify::Report {
    let streams = verify::load_dir(root).unwrap();
    verify::verify(&streams, Some(&root_public_key(root).unwrap()))
}

fn segment(dir: &Path) -> PathBuf {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files.pop().unwrap()
}

fn lines(path: &Path) -> Vec<String> {
    std::fs::read_to_string(path).unwrap().lines().map(str::to_owned).collect()
}

fn write_lines(path: &Path, lines: &[String]) {
    let mut text = lines.join("\n");
    text.push('\n');
    std::fs::write(path, text).unwrap();
}

/// Re-hashes line `index` after its body changed, as a forger would.
fn rehash(lines: &mut [String], index: usize) {
    let parsed = Line::parse(lines[index].as_bytes()).unwrap();
    let (seq, prev, body) = (
        parsed.seq,
        String::from_utf8_lossy(parsed.prev).into_owned(),
        String::from_utf8_lossy(parsed.body).into_owned(),
    );
    let hash = chain_hash(seq, &prev, body.as_bytes());
    lines[index] = format!("{hash} {seq} {prev} {body}");
}

fn problem(root: &Path) -> verify::Problem {
    let report = check(root);
    report.first_problem().cloned().unwrap_or_else(|| panic!("tampering went unseen: {report:#?}"))
}

#[test]
fn an_untouched_stream_verifies_with_its_checkpoints_and_head() {
    let (root, _) = stream(1000, 100);
    let report = check(root.path());
    assert!(report.ok(), "{report:#?}");
    let s = &report.streams[0];
    // The stream record, 1000 records, a checkpoint after every 100 and
    // the close checkpoint.
    assert_eq!(s.checkpoints, 11);
    assert_eq!(s.records, 1012);
    assert!(s.closed);
    assert_eq!(s.signed_upto, s.last_seq - 1);
    assert_eq!(s.head_seq, Some(s.last_seq - 1));
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
}

#[test]
fn a_modified_record_is_named_by_its_sequence_number() {
    let (root, dir) = stream(50, 1000);
    let path = segment(&dir);
    let mut all = lines(&path);
    // Line 21 (seq 21) holds record n = 20: seq 1 is the stream record.
    all[20] = all[20].replace(r#""n":20"#, r#""n":21"#);
    write_lines(&path, &all);
    let p = problem(root.path());
    assert_eq!((p.kind, p.seq, p.line), (ProblemKind::Modified, Some(21), 21), "{p:?}");
}

#[test]
fn a_modified_record_with_a_recomputed_hash_breaks_the_next_link() {
    let (root, dir) = stream(50, 1000);
    let path = segment(&dir);
    let mut all = lines(&path);
    all[19] = all[19].replace(r#""outcome":"ok""#, r#""outcome":"denied""#);
    rehash(&mut all, 19);
    write_lines(&path, &all);
    let p = problem(root.path());
    assert_eq!((p.kind, p.seq), (ProblemKind::Modified, Some(20)), "{p:?}");
    assert!(p.message.contains("record 20"), "{}", p.message);
}

#[test]
fn a_deleted_record_is_reported_as_missing() {
    let (root, dir) = stream(50, 1000);
    let path = segment(&dir);
    let mut all = lines(&path);
    all.remove(29);
    write_lines(&path, &all);
    let p = problem(root.path());
    assert_eq!((p.kind, p.seq), (ProblemKind::Deleted, Some(30)), "{p:?}");
}

#[test]
fn an_inserted_record_is_found_even_with_a_valid_hash() {
    let (root, dir) = stream(50, 1000);
    let path = segment(&dir);
    let mut all = lines(&path);
    // A forged record that chains correctly onto record 10…
    let prev = Line::parse(all[9].as_bytes()).unwrap();
    let prev_hash = String::from_utf8_lossy(prev.hash).into_owned();
    let body = r#"{"forged":true}"#;
    let hash = chain_hash(11, &prev_hash, body.as_bytes());
    all.insert(10, format!("{hash} 11 {prev_hash} {body}"));
    write_lines(&path, &all);
    // …is followed by the real record 11.
    let p = problem(root.path());
    assert_eq!(p.kind, ProblemKind::Inserted, "{p:?}");
    assert_eq!(p.line, 11, "{p:?}");
}

#[test]
fn reordered_records_are_reported_as_reordered() {
    let (root, dir) = stream(50, 1000);
    let path = segment(&dir);
    let mut all = lines(&path);
    all.swap(14, 15);
    write_lines(&path, &all);
    let p = problem(root.path());
    assert_eq!((p.kind, p.seq, p.line), (ProblemKind::Reordered, Some(15), 15), "{p:?}");
}

#[test]
fn a_stream_cut_short_of_its_signed_head_is_truncated() {
    let (root, dir) = stream(50, 10);
    let path = segment(&dir);
    let mut all = lines(&path);
    all.truncate(30);
    write_lines(&path, &all);
    let p = problem(root.path());
    assert_eq!((p.kind, p.seq), (ProblemKind::Truncated, Some(31)), "{p:?}");
}

#[test]
fn a_deleted_segment_is_found_from_the_gap_it_leaves() {
    let root = tempfile::tempdir().unwrap();
    let small = AuditOptions { segment_bytes: 4096, ..options(20) };
    let log =
        AuditLog::open(root.path(), small, agenthost::governance::KeyPair::from_seed([7; 32]), Vec::new())
            .unwrap();
    for i in 1..=200 {
        log.append(&event(i, "acme")).unwrap();
    }
    log.close().unwrap();
    let mut files: Vec<PathBuf> = std::fs::read_dir(log.dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    assert!(files.len() > 3, "expected several segments, got {}", files.len());
    let second_first_seq = Line::parse(lines(&files[1])[0].as_bytes()).unwrap().seq;
    std::fs::remove_file(&files[1]).unwrap();
    let p = problem(root.path());
    assert_eq!((p.kind, p.seq), (ProblemKind::Truncated, Some(second_first_seq)), "{p:?}");
}

#[test]
fn a_checkpoint_signed_by_another_key_is_refused() {
    let (root, dir) = stream(30, 10);
    let path = segment(&dir);
    let mut all = lines(&path);
    // Re-sign the first checkpoint (line 11) with a key of the forger's own
    // and re-chain everything after it: only the signature can tell.
    let forger = KeyPair::generate();
    let line = Line::parse(all[10].as_bytes()).unwrap();
    let mut body: serde_json::Value = serde_json::from_slice(line.body).unwrap();
    let seq = body["what"]["seq"].as_u64().unwrap();
    let hash = body["what"]["hash"].as_str().unwrap().to_owned();
    let message = agenthost::audit::record::checkpoint_message(
        "host",
        agenthost::audit::Reason::Periodic,
        body["what"]["counter"].as_u64().unwrap(),
        seq,
        &hash,
    );
    body["what"]["signature"] = forger.sign_bytes(message.as_bytes()).into();
    let body = agenthost::keys::canonical_json(&body);
    all[10] = format!("{} {} {} {body}", "0".repeat(64), line.seq, String::from_utf8_lossy(line.prev));
    rehash(&mut all, 10);
    for i in 11..all.len() {
        let prev = Line::parse(all[i - 1].as_bytes()).unwrap().hash.to_vec();
        let this = Line::parse(all[i].as_bytes()).unwrap();
        let (seq, body) = (this.seq, String::from_utf8_lossy(this.body).into_owned());
        all[i] = format!("{} {seq} {} {body}", "0".repeat(64), String::from_utf8_lossy(&prev));
        rehash(&mut all, i);
    }
    write_lines(&path, &all);
    std::fs::remove_file(dir.join("HEAD.json")).unwrap();
    let p = problem(root.path());
    assert_eq!((p.kind, p.seq), (ProblemKind::BadSignature, Some(11)), "{p:?}");
}

#[test]
fn a_torn_final_record_is_reported_then_acknowledged_by_the_next_writer() {
    let (root, dir) = stream(20, 5);
    let path = segment(&dir);
    let before = check(root.path()).streams[0].last_seq;
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    file.write_all(b"3f2a9c half a record wi").unwrap();
    drop(file);

    let report = check(root.path());
    assert!(report.ok(), "a torn tail is not tampering: {report:#?}");
    let s = &report.streams[0];
    assert_eq!(s.last_seq, before);
    assert_eq!(s.torn.len(), 1);
    assert!(!s.torn[0].acknowledged);
    assert!(s.warnings.iter().any(|w| w.contains("torn")), "{:?}", s.warnings);

    // The next writer keeps the torn bytes, states them in a recovery
    // record and goes on in a new segment.
    let log = AuditLog::open(
        root.path(),
        options(5),
        agenthost::governance::KeyPair::from_seed([7; 32]),
        Vec::new(),
    )
    .unwrap();
    log.record_blocking(&event(99, "acme")).unwrap();
    log.close().unwrap();
    let report = check(root.path());
    assert!(report.ok(), "{report:#?}");
    let s = &report.streams[0];
    assert!(s.torn[0].acknowledged, "{s:#?}");
    assert!(s.warnings.is_empty(), "{:?}", s.warnings);
    assert_eq!(std::fs::read(&path).unwrap().len() as u64, s.torn[0].offset + s.torn[0].bytes);
    let streams = verify::load_dir(root.path()).unwrap();
    let recovery = query::query(&streams, &Filter { kind: Some("recovery".into()), ..Filter::default() });
    assert_eq!(recovery.len(), 1);
    assert_eq!(recovery[0].record["what"]["torn_bytes"], 23);
}

/// Run only as the child of `kill_9_during_heavy_appends_loses_no_acknowledged_record`.
#[test]
fn audit_writer_child() {
    let Some(dir) = std::env::var_os("AGENTHOST_AUDIT_CHILD") else { return };
    let root = PathBuf::from(dir);
    let log =
        AuditLog::open(&root, options(500), agenthost::governance::KeyPair::from_seed([7; 32]), Vec::new())
            .unwrap();
    let acks = Arc::new(std::sync::Mutex::new(
        std::fs::OpenOptions::new().create(true).append(true).open(root.join("acks")).unwrap(),
    ));
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let (log, acks) = (log.clone(), acks.clone());
            std::thread::spawn(move || {
                for i in 0.. {
                    let id = log.record_blocking(&event(t * 1_000_000 + i, "acme")).unwrap();
                    // Written only after the record is durable.
                    acks.lock().unwrap().write_all(format!("{id}\n").as_bytes()).unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        let _ = t.join();
    }
}

#[test]
fn kill_9_during_heavy_appends_loses_no_acknowledged_record() {
    let root = tempfile::tempdir().unwrap();
    let mut child = std::process::Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "audit::audit_writer_child", "--nocapture", "--test-threads", "1"])
        .env("AGENTHOST_AUDIT_CHILD", root.path())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let acks_path = root.path().join("acks");
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let acked = std::fs::read(&acks_path).map(|b| b.iter().filter(|&&c| c == b'\n').count()).unwrap_or(0);
        if acked >= 20_000 {
            break;
        }
        assert!(std::time::Instant::now() < deadline, "the child acknowledged only {acked} records");
        std::thread::sleep(Duration::from_millis(20));
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();

    let acked: Vec<String> = std::io::BufReader::new(std::fs::File::open(&acks_path).unwrap())
        .lines()
        .map(Result::unwrap)
        .collect();
    let streams = verify::load_dir(&root.path().join("host")).unwrap();
    let report = verify::verify(&streams, Some(&root_public_key(root.path()).unwrap()));
    assert!(report.ok(), "{report:#?}");
    let ids: std::collections::HashSet<String> = query::query(&streams, &Filter::default())
        .into_iter()
        .filter_map(|f| f.record["id"].as_str().map(str::to_owned))
        .collect();
    let missing: Vec<&String> = acked.iter().filter(|id| !ids.contains(*id)).collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged records are missing, e.g. {:?}",
        missing.len(),
        missing.first()
    );
    // Whatever the kill cut off is reported, not silently dropped.
    let s = &report.streams[0];
    for torn in &s.torn {
        assert!(s.warnings.iter().any(|w| w.contains("torn")), "{torn:?} not reported");
    }
    // And the next writer carries on from the last complete record.
    let log = AuditLog::open(
        root.path(),
        options(500),
        agenthost::governance::KeyPair::from_seed([7; 32]),
        Vec::new(),
    )
    .unwrap();
    log.record_blocking(&event(1, "acme")).unwrap();
    log.close().unwrap();
    assert!(check(root.path()).ok());
}

#[test]
fn queries_select_by_trace_run_tenant_kind_and_time() {
    let root = tempfile::tempdir().unwrap();
    let log = AuditLog::open(
        root.path(),
        options(1000),
        agenthost::governance::KeyPair::from_seed([7; 32]),
        Vec::new(),
    )
    .unwrap();
    for i in 0..30 {
        log.append(&event(i, if i < 10 { "acme" } else { "globex" })).unwrap();
    }
    log.close().unwrap();
    let streams: Vec<StreamInput> = verify::load_dir(root.path()).unwrap();
    let count = |filter: Filter| query::query(&streams, &filter).len();
    assert_eq!(count(Filter { tenant: Some("acme".into()), ..Filter::default() }), 10);
    assert_eq!(count(Filter { run_id: Some("run-1".into()), ..Filter::default() }), 15);
    assert_eq!(count(Filter { trace_id: Some(format!("{:032x}", 2)), ..Filter::default() }), 10);
    assert_eq!(count(Filter { kind: Some("checkpoint".into()), ..Filter::default() }), 1);
    let future = std::time::SystemTime::now() + Duration::from_secs(3600);
    assert_eq!(count(Filter { since: Some(future), ..Filter::default() }), 0);
    // 30 records, the stream record and the close checkpoint.
    assert_eq!(count(Filter { since: Some(query::parse_since("1h").unwrap()), ..Filter::default() }), 32);
    assert!(query::parse_since("yesterday").unwrap_err().contains("yesterday"));
}

#[test]
fn a_second_writer_on_the_same_root_gets_its_own_stream() {
    let root = tempfile::tempdir().unwrap();
    let first = AuditLog::open(
        root.path(),
        options(10),
        agenthost::governance::KeyPair::from_seed([7; 32]),
        Vec::new(),
    )
    .unwrap();
    let second = AuditLog::open(
        root.path(),
        options(10),
        agenthost::governance::KeyPair::from_seed([7; 32]),
        Vec::new(),
    )
    .unwrap();
    assert_ne!(first.dir(), second.dir());
    first.record_blocking(&event(1, "acme")).unwrap();
    second.record_blocking(&event(2, "acme")).unwrap();
    first.close().unwrap();
    second.close().unwrap();
    let report = check(root.path());
    assert_eq!(report.streams.len(), 2);
    assert!(report.ok(), "{report:#?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn sealed_segments_go_to_s3_under_object_lock_and_verify_from_there() {
    use agenthost::audit::s3::{self, RetentionMode, S3Settings, S3Sink};
    let Some(config) = crate::common::aws::moto().await else { return };
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build(),
    );
    let bucket = format!("audit-{:08x}", rand::random::<u32>());
    assert!(s3::create_bucket(&client, &bucket).await.unwrap());
    assert!(!s3::create_bucket(&client, &bucket).await.unwrap(), "bootstrap twice is fine");
    let settings = S3Settings {
        bucket: bucket.clone(),
        prefix: "prod".into(),
        retention_mode: RetentionMode::Compliance,
        retention_days: 30,
    };
    let sink =
        S3Sink::new(client.clone(), settings, agenthost::governance::KeyPair::from_seed([7; 32]).public())
            .unwrap();

    let root = tempfile::tempdir().unwrap();
    let small = AuditOptions { segment_bytes: 8192, ..options(25) };
    let log = AuditLog::open(
        root.path(),
        small,
        agenthost::governance::KeyPair::from_seed([7; 32]),
        vec![sink.clone()],
    )
    .unwrap();
    for i in 1..=200 {
        log.append(&event(i, "acme")).unwrap();
    }
    log.close().unwrap();
    sink.flush().await.unwrap();

    let (streams, index, retention) = s3::fetch(&client, &bucket, "prod").await.unwrap();
    assert!(index.is_some(), "the signed stream index is uploaded too");
    let local = verify::load_dir(root.path()).unwrap();
    assert_eq!(streams.len(), 1);
    assert_eq!(streams[0].segments.len(), local[0].segments.len(), "every sealed segment was uploaded");
    let report = verify::verify(&streams, Some(&root_public_key(root.path()).unwrap()));
    assert!(report.ok() && !report.has_warnings(), "{report:#?}");
    assert_eq!(report.streams[0].last_seq, check(root.path()).streams[0].last_seq);
    assert_eq!(retention.len(), streams[0].segments.len());
    let soon = std::time::SystemTime::now() + Duration::from_secs(29 * 86_400);
    for r in &retention {
        assert_eq!(r.mode.as_deref(), Some("COMPLIANCE"), "{r:?}");
        let until = r.retain_until.as_deref().unwrap();
        let until = humantime::parse_rfc3339_weak(until).unwrap_or_else(|e| panic!("{until}: {e}"));
        assert!(until > soon, "{r:?}");
    }

    // A segment deleted from the bucket is missed by verify --from s3://.
    let (name, _) = &streams[0].segments[1];
    let key = format!("prod/{}/{name}", streams[0].name);
    // Under COMPLIANCE even the owner cannot delete a locked version: a
    // plain delete only hides it behind a delete marker, as on S3.
    client.delete_object().bucket(&bucket).key(&key).send().await.unwrap();
    let (after, _, _) = s3::fetch(&client, &bucket, "prod").await.unwrap();
    let report = verify::verify(&after, None);
    assert_eq!(report.first_problem().map(|p| p.kind), Some(ProblemKind::Truncated), "{report:#?}");
}

#[test]
fn a_query_over_a_directory_keeps_the_newest_matches_in_order_and_stops_when_asked() {
    use std::sync::atomic::AtomicBool;
    let root = tempfile::tempdir().unwrap();
    // Small segments, so the answer spans several files.
    let small = AuditOptions { segment_bytes: 2048, ..options(1000) };
    let log = AuditLog::open(root.path(), small, KeyPair::from_seed([7; 32]), Vec::new()).unwrap();
    for i in 1..=60 {
        log.append(&event(i, if i % 2 == 0 { "acme" } else { "globex" })).unwrap();
    }
    log.close().unwrap();
    assert!(std::fs::read_dir(log.dir()).unwrap().count() > 4, "the records span several segments");
    let acme = Filter { tenant: Some("acme".into()), ..Filter::default() };
    let go = AtomicBool::new(false);

    // All of a tenant's matches, as the in-memory query finds them.
    let streams = verify::load_dir(root.path()).unwrap();
    let all = query::query(&streams, &acme);
    let (found, truncated) = query::query_dir(root.path(), &acme, 1000, &go).unwrap();
    assert_eq!(all.len(), 30);
    assert!(!truncated);
    assert_eq!(
        found.iter().map(|f| f.seq).collect::<Vec<_>>(),
        all.iter().map(|f| f.seq).collect::<Vec<_>>()
    );

    // Capped: the newest ten, oldest first, and it says so.
    let (found, truncated) = query::query_dir(root.path(), &acme, 10, &go).unwrap();
    assert!(truncated);
    let numbers: Vec<u64> = found.iter().map(|f| f.record["what"]["n"].as_u64().unwrap()).collect();
    assert_eq!(numbers, (42..=60).step_by(2).collect::<Vec<u64>>());

    // A window that starts after every segment was written reads none.
    let later =
        Filter { since: Some(std::time::SystemTime::now() + Duration::from_secs(60)), ..acme.clone() };
    assert!(query::query_dir(root.path(), &later, 1000, &go).unwrap().0.is_empty());

    // Asked to stop (the client left): nothing more is read.
    let stop = AtomicBool::new(true);
    let (found, truncated) = query::query_dir(root.path(), &acme, 1000, &stop).unwrap();
    assert!(found.is_empty() && truncated);
}

#[tokio::test(flavor = "multi_thread")]
async fn seal_ends_the_segment_now_and_each_sealed_segment_verifies_on_its_own() {
    let root = tempfile::tempdir().unwrap();
    let log = AuditLog::open(root.path(), options(1000), KeyPair::from_seed([7; 32]), Vec::new()).unwrap();
    let count = |dir: &Path| {
        std::fs::read_dir(dir)
            .unwrap()
            .filter(|e| e.as_ref().unwrap().path().extension().is_some_and(|x| x == "log"))
            .count()
    };
    // Two batches, each sealed: two segments, each ending in a signed seal.
    for batch in 0..2 {
        for i in 1..=3 {
            log.append(&event(batch * 10 + i, "acme")).unwrap();
        }
        log.seal().await.unwrap();
    }
    // A seal with nothing new since the last one leaves no empty segment.
    log.seal().await.unwrap();
    let dir = log.dir().to_path_buf();
    let stream = dir.file_name().unwrap().to_string_lossy().into_owned();
    let mut sealed: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log") && std::fs::metadata(p).unwrap().len() > 0)
        .collect();
    sealed.sort();
    assert_eq!(sealed.len(), 2, "one segment per sealed batch: {sealed:?}");
    for path in &sealed {
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        let bytes = std::fs::read(path).unwrap();
        verify::check_standalone(&stream, &name, &bytes, &KeyPair::from_seed([7; 32]).public())
            .unwrap_or_else(|why| panic!("{name} does not verify on its own: {why}"));
        let last = bytes.split(|&b| b == b'\n').rfind(|l| !l.is_empty()).unwrap();
        assert!(String::from_utf8_lossy(last).contains("\"reason\":\"seal\""), "{name} ends in a seal");
    }
    log.close().unwrap();
    assert!(count(&dir) >= 2);
    assert!(check(root.path()).ok(), "the whole stream verifies");
    // After close, a seal is an error, not a wait.
    assert!(log.seal().await.is_err());
}

/// A Lambda environment's evidence: an invocation whose upload failed is
/// shipped by a later one, even when that later one's own upload worked.
#[tokio::test(flavor = "multi_thread")]
async fn a_segment_whose_upload_failed_is_shipped_by_a_later_invocation() {
    use agenthost::audit::s3;
    let Some(endpoint) = crate::common::aws::endpoint() else { return };
    let config = crate::common::aws::moto().await.unwrap();
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build(),
    );
    let bucket = format!("ship-{:08x}", rand::random::<u32>());
    let settings: agenthost::settings::HostSettings = toml::from_str(&format!(
        "[aws]\nendpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\nmax_attempts = 1\n\
         [audit]\nstream = \"lambda-fn-env1\"\n\
         [audit.s3]\nbucket = \"{bucket}\"\nprefix = \"p\"\nretention_mode = \"GOVERNANCE\"\nretention_days = 1\n"
    ))
    .unwrap();
    let data = tempfile::tempdir().unwrap();
    let key = agenthost::governance::KeyPair::from_seed([9; 32]);
    let backends = agenthost::backends::Backends::open(&settings, &[], data.path(), &key).await.unwrap();
    let audit = backends.audit.clone().unwrap();

    // The bucket is not there yet: the first invocation's upload fails.
    audit.record(&event(1, "acme")).await.unwrap();
    assert!(backends.seal_and_ship().await.is_err(), "an upload to a missing bucket failed silently");
    assert!(s3::create_bucket(&client, &bucket).await.unwrap());
    // The next invocation ships its own segment and the one that failed.
    audit.record(&event(2, "acme")).await.unwrap();
    backends.seal_and_ship().await.unwrap();
    let (streams, _, _) = s3::fetch(&client, &bucket, "p").await.unwrap();
    assert_eq!(streams.len(), 1, "{streams:?}");
    assert_eq!(streams[0].segments.len(), 2, "both invocations' segments are in the bucket");
    let report = verify::verify(&streams, Some(&key.public()));
    assert!(report.first_problem().is_none(), "{report:#?}");

    // With pruning (Lambda's /tmp), what the bucket holds leaves the disk,
    // and the chain still goes on from the newest seal kept.
    backends.prune_after_shipping();
    for i in 3..=5 {
        audit.record(&event(i, "acme")).await.unwrap();
        backends.seal_and_ship().await.unwrap();
    }
    let local: Vec<_> = std::fs::read_dir(audit.dir())
        .unwrap()
        .filter_map(Result::ok)
        .filter(|e| e.file_name().to_string_lossy().starts_with("seg-"))
        .collect();
    assert!(local.len() <= 2, "shipped segments stayed on disk: {local:?}");
    let (streams, _, _) = s3::fetch(&client, &bucket, "p").await.unwrap();
    assert_eq!(streams[0].segments.len(), 5, "every invocation's segment is in the bucket");
    let report = verify::verify(&streams, Some(&key.public()));
    assert!(report.first_problem().is_none(), "{report:#?}");
}
