#![allow(clippy::expect_used, clippy::unwrap_used, clippy::panic)] // a bench that cannot set up has nothing to measure
//! `serve`: a governed `calculator:invoke` over HTTP/1.1 keep-alive, driven
//! by `wrk` on loopback, against a bare axum handler that does the same
//! wasmtime instantiate + call with no governance, in the same run.
//!
//! * `agenthost`: `POST /v1/tenants/acme/tools/calculator:invoke` on the
//!   real router (bearer-JWT check, admission, alias routing, the warm
//!   version, policy, schema, limits, audit record, metrics).
//! * `bare-axum`: `POST /invoke` on a one-route axum app on the same hyper
//!   settings, calling the calculator through plain wasmtime on the host's
//!   own engine (new store, fuel, deadline, instantiate, call).
//!
//! Each is served alone (the other idle) by a 2-worker runtime in this
//! process; `wrk` gets the same connections, threads and duration for
//! both. Prints requests/s, p50 and p99 for each and their ratio.
//!
//! Run: `scripts/bench-serve.sh` (installs wrk from Debian if missing), or
//! `cargo bench -p agenthost-benches --bench serve` with wrk installed.
//! Settings: `SERVE_BENCH_SECS` (default 10), `SERVE_BENCH_CONNECTIONS`
//! (default 32). The issue's targets: ≥ 25k requests/s and ≥ 0.7× bare.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;

use agenthost::governance::KeyPair;
use agenthost::registry::{Alias, Deploy, LocalStore, Registry};
use agenthost::server::{Server, ServerParts, Verifier};
use agenthost::{Host, HostConfig};
use agenthost_benches::{Fixture, PlainTool};
use axum::Json;
use axum::routing::post;
use serde_json::{Value, json};

const BODY: &str = r#"{"input":{"expression":"12 * (3 + 4) - 5"}}"#;

struct Measured {
    requests_per_sec: f64,
    p50_ms: f64,
    p99_ms: f64,
    errors: String,
}

fn wrk(url: &str, token: Option<&str>, dir: &Path) -> Measured {
    let secs = std::env::var("SERVE_BENCH_SECS").unwrap_or_else(|_| "10".into());
    let connections = std::env::var("SERVE_BENCH_CONNECTIONS").unwrap_or_else(|_| "32".into());
    let auth =
        token.map(|t| format!("wrk.headers[\"Authorization\"] = \"Bearer {t}\"\n")).unwrap_or_default();
    let script = dir.join(format!("post-{}.lua", rand_suffix()));
    std::fs::write(
        &script,
        format!(
            "wrk.method = \"POST\"\nwrk.body = '{BODY}'\nwrk.headers[\"Content-Type\"] = \"application/json\"\n{auth}\
             done = function(summary, latency, requests)\n  io.write(string.format(\"NON2XX %d\\n\", summary.errors.status))\nend\n"
        ),
    )
    .unwrap();
    let out = Command::new("wrk")
        .args(["-t2", "-c", &connections, "-d", &format!("{secs}s"), "--latency", "-s"])
        .arg(&script)
        .arg(url)
        .output()
        .expect("wrk is not installed: run scripts/bench-serve.sh (apt-get install wrk)");
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    let number = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.trim_start().starts_with(prefix))
            .and_then(|l| l.split_whitespace().nth(1))
            .map(to_ms_or_number)
            .unwrap_or_else(|| panic!("wrk printed no `{prefix}`:\n{text}"))
    };
    let non2xx = text.lines().find(|l| l.starts_with("NON2XX")).unwrap_or("NON2XX ?").to_owned();
    Measured {
        requests_per_sec: number("Requests/sec:"),
        p50_ms: number("50%"),
        p99_ms: number("99%"),
        errors: format!(
            "{non2xx}{}",
            text.lines().filter(|l| l.contains("Socket errors")).collect::<String>()
        ),
    }
}

fn rand_suffix() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0)
}

/// `123.4us`, `1.2ms`, `2s` in milliseconds; a plain number as is.
fn to_ms_or_number(v: &str) -> f64 {
    let parse = |s: &str| s.parse::<f64>().unwrap_or(f64::NAN);
    if let Some(n) = v.strip_suffix("us") {
        parse(n) / 1000.0
    } else if let Some(n) = v.strip_suffix("ms") {
        parse(n)
    } else if let Some(n) = v.strip_suffix('s') {
        parse(n) * 1000.0
    } else {
        parse(v)
    }
}

fn main() {
    // `cargo test --benches` runs this without `--bench`: set up both
    // servers, check each answers, measure nothing.
    let measure = std::env::args().any(|a| a == "--bench");
    if measure && Command::new("wrk").arg("--version").output().is_err() {
        eprintln!(
            "serve bench: wrk is not installed; run scripts/bench-serve.sh (it installs wrk from Debian)"
        );
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let runtime = tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().unwrap();

    // A governed host: one tenant with a publisher, one token issuer.
    let fixture = Fixture::new("max_in_flight = 1024\ntenant_in_flight = 1024");
    let (config, data, governance, issuer) =
        (fixture.config(), fixture.data(), fixture.governance.clone(), &fixture.issuer);
    let audit = agenthost::audit::AuditLog::open(
        &data.join("audit"),
        governance.settings().audit.options(),
        KeyPair::generate(),
        Vec::new(),
    )
    .unwrap();
    let host = Arc::new(
        Host::new(HostConfig {
            governance: Some(governance.clone()),
            // SERVE_BENCH_AUDIT=0 leaves the trail out, to see what it costs.
            audit: (std::env::var("SERVE_BENCH_AUDIT").as_deref() != Ok("0")).then(|| audit.clone()),
            ..HostConfig::default()
        })
        .unwrap(),
    );
    let registry = Registry::new(
        Arc::new(LocalStore::open(&data.join("registry")).unwrap()),
        governance.clone(),
        16 << 20,
    );
    let wasm = std::fs::read(agenthost_artifacts::CALCULATOR).unwrap();
    let (manifest, signature) = fixture.deploy(&wasm, "calculator", "0.1.0");
    runtime.block_on(async {
        registry
            .publish(Deploy {
                tenant: "acme",
                wasm: &wasm,
                manifest: &manifest,
                signature,
                deployer: "bench",
            })
            .await
            .unwrap();
        registry.update_aliases("acme", "calculator", |a| a.set(Alias::Stable, "0.1.0", None)).await.unwrap();
    });
    let settings = governance.settings().server.clone();
    let verifier = Verifier::load(&settings.issuers, &config).unwrap();
    let token = agenthost::server::auth::issue(
        &agenthost::server::auth::TokenRequest {
            issuer: "bench",
            audience: "agenthost",
            subject: "bench-user",
            tenants: &["acme".to_owned()],
            roles: &["tenant-user".to_owned()],
            ttl_secs: 3600,
        },
        issuer.private_pem().unwrap().as_bytes(),
        &issuer.id(),
    )
    .unwrap();
    let server = Server::new(ServerParts {
        memory: None,
        events: None,
        callbacks: None,
        host: host.clone(),
        registry,
        audit: Some(audit),
        settings,
        verifier,
        request_key: None,
    });

    // agenthost first, alone.
    let (url, stop) = runtime.block_on(async {
        server.warm_up().await;
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url =
            format!("http://{}/v1/tenants/acme/tools/calculator:invoke", listener.local_addr().unwrap());
        let (tx, rx) = tokio::sync::oneshot::channel::<()>();
        let s = server.clone();
        tokio::spawn(async move {
            agenthost::server::serve(s, listener, async {
                let _ = rx.await;
            })
            .await
        });
        (url, tx)
    });
    // A check that the route answers 200 before it is measured.
    let check: Value = runtime.block_on(async {
        reqwest::Client::new()
            .post(&url)
            .bearer_auth(&token)
            .body(BODY)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap()
    });
    assert_eq!(check["output"]["value"], 79, "{check}");
    if !measure {
        let _ = stop.send(());
        println!("serve: the governed route answers; run with --bench (scripts/bench-serve.sh) to measure");
        return;
    }
    let governed = wrk(&url, Some(&token), dir.path());
    let _ = stop.send(());
    if std::env::var("SERVE_BENCH_ONLY").as_deref() == Ok("agenthost") {
        println!(
            "agenthost: {:.0} requests/s, p50 {:.3} ms, p99 {:.3} ms",
            governed.requests_per_sec, governed.p50_ms, governed.p99_ms
        );
        return;
    }

    // The bare handler, alone.
    let plain = Arc::new(PlainTool::new(host.engine(), &wasm));
    let bare_url = runtime.block_on(async {
        let plain = plain.clone();
        let app = axum::Router::new().route(
            "/invoke",
            post(move |Json(body): Json<Value>| {
                let plain = plain.clone();
                async move {
                    let input = body["input"].to_string();
                    let output = plain.invoke(&input, 100_000_000).await;
                    Json(json!({ "output": serde_json::from_str::<Value>(&output).unwrap_or(Value::Null) }))
                }
            }),
        );
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/invoke", listener.local_addr().unwrap());
        tokio::spawn(async move { axum::serve(listener, app).await });
        url
    });
    let bare = wrk(&bare_url, None, dir.path());

    println!("serve: governed calculator:invoke over HTTP/1.1 keep-alive (wrk -t2, loopback, 2 cores)");
    println!("  {:<11} {:>12} {:>10} {:>10}  non-2xx / socket errors", "", "requests/s", "p50 ms", "p99 ms");
    for (name, m) in [("agenthost", &governed), ("bare-axum", &bare)] {
        println!(
            "  {:<11} {:>12.0} {:>10.3} {:>10.3}  {}",
            name, m.requests_per_sec, m.p50_ms, m.p99_ms, m.errors
        );
    }
    println!(
        "  ratio agenthost / bare-axum (requests/s): {:.2}",
        governed.requests_per_sec / bare.requests_per_sec
    );
}
