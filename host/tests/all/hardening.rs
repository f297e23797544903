//! The hostile-tenant suite: one test per promise of the hardening issue,
//! each reproducing the attack through the public surface (the library API
//! a host embeds, the CLI, a config directory, a hostile component built
//! from source) and asserting what the attacker gets: a refusal that names
//! the rule, and nothing that happened.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::Arc;
use std::time::Duration;

use agenthost::audit::{AuditLog, AuditOptions};
use agenthost::governance::manifest::Requests;
use agenthost::governance::policy::Mode;
use agenthost::governance::{ComponentManifest, Governance, LoadedPolicy, Tier};
use agenthost::keys::{KeyPair, digest};
use agenthost::{CallOptions, ErrorKind, Host, HostConfig, Limits, LoadOptions};
use agenthost_artifacts as artifacts;
use serde_json::{Value, json};

use crate::common::{bytes, engine_config};
use crate::governance::{
    Setup, copy_packs, http_server, key, load_for, manifest, patterns, pin_tenant_policy, probe,
    probe_requests, requests, resolve_packs_for, run,
};

fn error_of(out: &Value) -> String {
    out["error"].as_str().unwrap_or_default().to_owned()
}

/// The hostile probe agent of the development tenant.
async fn dev_probe(host: &Host) -> Arc<agenthost::LoadedComponent> {
    host.load_file(artifacts::HOSTILE_PROBE.as_ref(), LoadOptions::default()).await.unwrap()
}

// ---------------------------------------------------------------------------
// 1. Policy stacks are the tenant's: bound to it, pinned by digest.

#[tokio::test(flavor = "multi_thread")]
async fn item01_a_component_cannot_choose_or_replace_its_tenants_policy_stack() {
    let setup = Setup::new("policy = \"acme-policy.json\"\n");
    let config = setup.config.path();
    let globex_stack =
        resolve_packs_for(&setup, &config.join("globex-policy.json"), Mode::Enforce, 3600, &["globex"], &[]);
    let log_only =
        resolve_packs_for(&setup, &config.join("acme-log-only.json"), Mode::LogOnly, 3600, &["acme"], &[]);
    let intent =
        resolve_packs_for(&setup, &config.join("acme-intent.json"), Mode::Enforce, 3600, &["acme"], &[]);
    // acme's own stack allows exactly one stack for its components: `intent`
    // (and the log-only one, which must still be refused for enforcement).
    let acme = resolve_packs_for(
        &setup,
        &config.join("acme-policy.json"),
        Mode::Enforce,
        3600,
        &["acme"],
        &[intent.clone(), log_only.clone()],
    );

    // The tenant file pointing at another tenant's stack: the host refuses to start.
    let acme_toml = config.join("tenants/acme.toml");
    let original = std::fs::read_to_string(&acme_toml).unwrap();
    std::fs::write(&acme_toml, original.replace("acme-policy.json", "globex-policy.json")).unwrap();
    pin_tenant_policy(&setup, "acme", &globex_stack);
    let err = setup.governance(None).unwrap_err();
    assert!(err.contains("bound to tenant(s) [globex], not `acme`"), "{err}");
    // An older (still valid) stack under the pinned name: refused by digest.
    std::fs::write(&acme_toml, &original).unwrap();
    pin_tenant_policy(&setup, "acme", &log_only);
    let err = setup.governance(None).unwrap_err();
    assert!(err.contains("not the pinned"), "{err}");
    pin_tenant_policy(&setup, "acme", &acme);
    let host = setup.host();

    let named = |file: &str, pinned: &str| ComponentManifest {
        policy: Some(config.join(file)),
        policy_digest: Some(pinned.to_owned()),
        ..manifest(artifacts::HOSTILE_PROBE, "hostile-probe", "agent", None, probe_requests())
    };
    let trusted = vec![key(&setup, "security").public()];
    let load_with = |m: ComponentManifest| {
        let host = host.clone();
        let trusted = trusted.clone();
        async move {
            let policy =
                LoadedPolicy::read(m.policy.as_ref().unwrap(), m.policy_digest.as_ref().unwrap(), &trusted)
                    .map(Arc::new)
                    .unwrap();
            host.load(
                &bytes(artifacts::HOSTILE_PROBE),
                LoadOptions {
                    tenant: Some("acme".into()),
                    manifest: Some(m),
                    policy: Some(policy),
                    ..LoadOptions::default()
                },
            )
            .await
        }
    };
    // Another tenant's stack.
    let err = load_with(named("globex-policy.json", &globex_stack)).await.unwrap_err();
    assert!(err.message.contains("bound to tenant(s) [globex], not `acme`"), "{err}");
    // A log-only stack the tenant lists, under an enforcing tenant.
    let err = load_with(named("acme-log-only.json", &log_only)).await.unwrap_err();
    assert!(err.message.contains("may not turn enforcement off"), "{err}");
    // A stack of acme's that acme's stack does not list.
    let other =
        resolve_packs_for(&setup, &config.join("acme-other.json"), Mode::Enforce, 7200, &["acme"], &[]);
    let err = load_with(named("acme-other.json", &other)).await.unwrap_err();
    assert!(err.message.contains("does not list in component_stacks"), "{err}");
    // The one it lists loads and governs the component.
    let agent = load_with(named("acme-intent.json", &intent)).await.unwrap();
    assert!(agent.policy_source().contains("acme-intent.json"), "{}", agent.policy_source());
    // A manifest naming a stack by a stale digest is refused when read.
    let stale =
        ComponentManifest { policy_digest: Some(digest(b"older")), ..named("acme-intent.json", &intent) };
    let err =
        LoadedPolicy::read(stale.policy.as_ref().unwrap(), stale.policy_digest.as_ref().unwrap(), &trusted)
            .unwrap_err()
            .to_string();
    assert!(err.contains("not the pinned"), "{err}");
}

// ---------------------------------------------------------------------------
// 2. describe() runs with nothing but `log`.

#[tokio::test(flavor = "multi_thread")]
async fn item02_describe_gets_log_only_and_what_it_tried_never_happens() {
    let setup = Setup::new("");
    let host = setup.host();
    let m = manifest(
        artifacts::DESCRIBE_PROBE,
        "describe-probe",
        "tool",
        Some(Tier::Read),
        Requests {
            memory_namespaces: patterns(&["notes"]),
            topics: patterns(&["*"]),
            ..requests(&["log", "memory", "events", "audit"])
        },
    );
    let err = load_for(&host, artifacts::DESCRIBE_PROBE, "acme", m.clone()).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::LoadFailed, "{err}");
    assert!(
        err.message.contains("`memory.put` while describing itself") && err.message.contains("`log` only"),
        "{err}"
    );
    // The memory write it attempted did not happen.
    let agent = probe(&host, "acme", probe_requests()).await;
    let out =
        run(&host, &agent, json!({"op": "memory_get", "namespace": "notes", "key": "planted-by-describe"}))
            .await;
    assert_eq!(out, json!({"ok": true, "value": null}));

    // `inspect` loads the same way: it fails, naming the call.
    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .args(["--data-dir", dir.path().to_str().unwrap(), "inspect", artifacts::DESCRIBE_PROBE])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    assert!(
        err["error"]["message"].as_str().unwrap().contains("`memory.put` while describing itself"),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// 3. Agents have tiers; read tools send only GET and HEAD.

#[tokio::test(flavor = "multi_thread")]
async fn item03_agents_have_tiers_and_read_tools_send_only_get_or_head() {
    let setup = Setup::new("");
    let host = setup.host();
    let read_agent = ComponentManifest {
        risk_tier: Some(Tier::Read),
        ..manifest(artifacts::HOSTILE_PROBE, "hostile-probe", "agent", None, probe_requests())
    };
    let agent = load_for(&host, artifacts::HOSTILE_PROBE, "acme", read_agent).await.unwrap();
    assert_eq!(agent.tier(), Some(Tier::Read));
    let out =
        run(&host, &agent, json!({"op": "memory_put", "namespace": "notes", "key": "k", "value": "v"})).await;
    assert!(error_of(&out).contains("read-tier component and may not write memory"), "{out}");
    let out = run(&host, &agent, json!({"op": "publish", "topic": "orders.created"})).await;
    assert!(error_of(&out).contains("a read-tier agent may not publish events (tier ceiling)"), "{out}");
    // Default: write-low.
    let agent = probe(&host, "acme", probe_requests()).await;
    assert_eq!(agent.tier(), Some(Tier::WriteLow));
    // A write-high agent runs only with an approval.
    let high = ComponentManifest {
        risk_tier: Some(Tier::WriteHigh),
        ..manifest(artifacts::HOSTILE_PROBE, "hostile-probe", "agent", None, probe_requests())
    };
    let agent = load_for(&host, artifacts::HOSTILE_PROBE, "acme", high).await.unwrap();
    let err = host.run_agent(&agent, &json!({"op": "env_all"})).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::ApprovalRequired, "{err}");

    // The stack's max_tier applies to agents: the sample domain pack says write-high.
    let governed = Setup::new("policy = \"policy.json\"\n");
    crate::governance::use_sample_stack(&governed, Mode::Enforce, 3600);
    let host = governed.host();
    let critical = ComponentManifest {
        risk_tier: Some(Tier::Critical),
        ..manifest(artifacts::HOSTILE_PROBE, "hostile-probe", "agent", None, probe_requests())
    };
    let err = load_for(&host, artifacts::HOSTILE_PROBE, "acme", critical).await.unwrap_err();
    assert!(err.message.contains("above the policy pack's max_tier write-high"), "{err}");

    // A read tool's POST is refused unless its tenant grants the method.
    let port = http_server("ok");
    let network = |extra: &str| {
        format!(
            "[grants.network]\nallow = [\"http://127.0.0.1:{port}\"]\nallow_addresses = [\"127.0.0.0/8\"]\n{extra}"
        )
    };
    let m = manifest(
        artifacts::HTTP_FETCH,
        "http-fetch",
        "tool",
        Some(Tier::Read),
        Requests { egress: vec![format!("http://127.0.0.1:{port}")], ..requests(&["log"]) },
    );
    let url = format!("http://127.0.0.1:{port}/");
    let plain = Setup::new(&network(""));
    let host = plain.host();
    let tool = load_for(&host, artifacts::HTTP_FETCH, "acme", m.clone()).await.unwrap();
    assert_eq!(host.invoke_tool(&tool, &json!({"url": url, "method": "GET"})).await.unwrap()["status"], 200);
    let err = host.invoke_tool(&tool, &json!({"url": url, "method": "POST"})).await.unwrap_err();
    assert!(
        err.message.contains("a POST request is refused: a read-tier component may send only GET, HEAD"),
        "{err}"
    );
    let opened = Setup::new(&network("read_tier_methods = [\"GET\", \"HEAD\", \"POST\"]\n"));
    let host = opened.host();
    let tool = load_for(&host, artifacts::HTTP_FETCH, "acme", m).await.unwrap();
    assert_eq!(host.invoke_tool(&tool, &json!({"url": url, "method": "POST"})).await.unwrap()["status"], 200);
}

// ---------------------------------------------------------------------------
// 4. An agent's manifest must name what it describes.

#[tokio::test(flavor = "multi_thread")]
async fn item04_an_agents_manifest_must_match_its_describe() {
    let setup = Setup::new("");
    let host = setup.host();
    let wrong = manifest(artifacts::HOSTILE_PROBE, "trusted-assistant", "agent", None, probe_requests());
    let err = load_for(&host, artifacts::HOSTILE_PROBE, "acme", wrong).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::LoadFailed);
    assert!(
        err.message.contains(
            "describes itself as hostile-probe@0.1.0 but its manifest is for trusted-assistant@0.1.0"
        ),
        "{err}"
    );
}

// ---------------------------------------------------------------------------
// 5. Sockets and DNS are requested, narrowed and decided like HTTP egress.

#[tokio::test(flavor = "multi_thread")]
async fn item05_sockets_and_name_lookups_are_requested_narrowed_and_decided() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || for _ in listener.incoming() {});
    let tenant = "[grants.network]\nsockets = true\ndns = true\nallow = [\"tcp://127.0.0.0/8:*\"]\nallow_addresses = [\"127.0.0.0/8\"]\n";
    let setup = Setup::new(tenant);
    let host = setup.host();
    let addr = format!("127.0.0.1:{port}");
    let connect = json!({"op": "tcp_connect", "addr": addr});

    // The tenant grants sockets, the manifest does not ask: refused.
    let agent = probe(&host, "acme", probe_requests()).await;
    assert_eq!(run(&host, &agent, connect.clone()).await["ok"], false);
    assert_eq!(run(&host, &agent, json!({"op": "resolve", "name": "localhost"})).await["ok"], false);

    // Asked for, for this one port: that port connects, another does not.
    let asking = |egress: Vec<String>| Requests { sockets: true, dns: true, egress, ..probe_requests() };
    let m = manifest(
        artifacts::HOSTILE_PROBE,
        "hostile-probe",
        "agent",
        None,
        asking(vec![format!("tcp://127.0.0.1:{port}")]),
    );
    let agent = load_for(&host, artifacts::HOSTILE_PROBE, "acme", m).await.unwrap();
    assert_eq!(run(&host, &agent, connect.clone()).await, json!({"ok": true}));
    let other = json!({"op": "tcp_connect", "addr": format!("127.0.0.1:{}", port.wrapping_add(1))});
    assert_eq!(run(&host, &agent, other).await["ok"], false);
    assert_eq!(run(&host, &agent, json!({"op": "resolve", "name": "localhost"})).await["ok"], true);
    // Sockets asked for, no socket destination in the manifest: nothing.
    let m = manifest(artifacts::HOSTILE_PROBE, "hostile-probe", "agent", None, asking(Vec::new()));
    let agent = load_for(&host, artifacts::HOSTILE_PROBE, "acme", m).await.unwrap();
    let sockets =
        agent.import_status().iter().find(|i| i.name.contains("wasi:sockets/tcp@")).cloned().unwrap();
    assert_eq!(sockets.status, "denied", "{sockets:?}");
    assert!(sockets.why.unwrap().contains("allows no socket destination"));
    assert_eq!(run(&host, &agent, connect.clone()).await["ok"], false);

    // The policy decides the opened range too: a forbid on the address.
    let dir = tempfile::tempdir().unwrap();
    let packs = copy_packs(dir.path());
    let cedar = packs[0].join("policies.cedar");
    let mut text = std::fs::read_to_string(&cedar).unwrap();
    text.push_str("\n@id(\"no-loopback-sockets\")\nforbid(principal, action == AgentHost::Action::\"Egress\", resource == AgentHost::Host::\"127.0.0.1\");\n");
    std::fs::write(&cedar, text).unwrap();
    let toml = packs[0].join("pack.toml");
    let base = std::fs::read_to_string(&toml).unwrap();
    std::fs::write(
        &toml,
        base.replace("\"http://127.0.0.1:*\"]", "\"http://127.0.0.1:*\", \"tcp://127.0.0.0/8:*\"]"),
    )
    .unwrap();
    let stack = agenthost::governance::packs::stack_of(&packs[..1]).unwrap();
    let binding =
        agenthost::governance::packs::Binding { tenants: vec!["acme".into()], component_stacks: Vec::new() };
    let signed = agenthost::governance::packs::resolve(
        &stack,
        Mode::Enforce,
        &binding,
        &key(&setup, "security"),
        3600,
    )
    .unwrap();
    let text = serde_json::to_string(&signed).unwrap();
    std::fs::write(setup.config.path().join("policy.json"), &text).unwrap();
    let acme = setup.config.path().join("tenants/acme.toml");
    let original = std::fs::read_to_string(&acme).unwrap();
    std::fs::write(
        &acme,
        format!("policy = \"policy.json\"\npolicy_digest = \"{}\"\n{original}", digest(text.as_bytes())),
    )
    .unwrap();
    let host = setup.host();
    let m = manifest(
        artifacts::HOSTILE_PROBE,
        "hostile-probe",
        "agent",
        None,
        asking(vec![format!("tcp://127.0.0.1:{port}")]),
    );
    let agent = load_for(&host, artifacts::HOSTILE_PROBE, "acme", m).await.unwrap();
    let run_out = host.run_agent(&agent, &connect).await.unwrap();
    assert_eq!(run_out.output["ok"], false, "{}", run_out.output);
}

// ---------------------------------------------------------------------------
// 6. In-world but ungranted interfaces answer `denied`; toolchains that
//    import everything load and run as read tools.

fn polyglot(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(path) if !path.is_empty() => Some(path),
        _ => {
            assert!(
                std::env::var("AGENTHOST_REQUIRE_POLYGLOT").as_deref() != Ok("1"),
                "{var} is not set: scripts/test builds the Python and JavaScript tools and sets it"
            );
            eprintln!("skipped: {var} is not set (run scripts/test, which builds the tool)");
            None
        }
    }
}

/// A host whose disk cache persists between test runs (the Python and
/// JavaScript components take seconds to compile).
fn polyglot_host(governance: Option<Arc<Governance>>) -> Host {
    let dir = std::env::var("AGENTHOST_PY_TOOL")
        .ok()
        .and_then(|p| Path::new(&p).parent().map(|d| d.join("cwasm")))
        .unwrap_or_else(|| std::env::temp_dir().join("agenthost-polyglot-cwasm"));
    Host::new(HostConfig {
        engine: engine_config(),
        cache_dir: Some(dir),
        // A fixed test key: the cache is only ever this test's.
        cache_key: Some([42; 32]),
        governance,
        ..HostConfig::default()
    })
    .unwrap()
}

#[tokio::test(flavor = "multi_thread")]
async fn item06_python_and_javascript_tools_load_and_their_ungranted_imports_answer_denied() {
    let (Some(py), Some(js)) = (polyglot("AGENTHOST_PY_TOOL"), polyglot("AGENTHOST_JS_TOOL")) else { return };
    let host = polyglot_host(None);
    let python = host.load_file(py.as_ref(), LoadOptions::default()).await.unwrap();
    assert_eq!((python.id().name.as_str(), python.tier()), ("py-word-count", Some(Tier::Read)));
    // A read tool gets no events: linked to a refusal, not a load error.
    let events =
        python.import_status().iter().find(|i| i.name.starts_with("agenthost:platform/events")).unwrap();
    assert_eq!(events.status, "denied");
    assert_eq!(events.why.as_deref(), Some("a read-tier tool may not publish events (tier ceiling)"));
    let out = host.invoke_tool(&python, &json!({"text": "one two three"})).await.unwrap();
    assert_eq!(out, json!({"words": 3}));
    let out = host.invoke_tool(&python, &json!({"text": "a b", "remember": true})).await.unwrap();
    assert!(out["memory"].as_str().unwrap().starts_with("denied:"), "{out}");
    assert!(
        out["memory"].as_str().unwrap().contains("read-tier component and may not write memory"),
        "{out}"
    );

    let javascript = host.load_file(js.as_ref(), LoadOptions::default()).await.unwrap();
    assert_eq!(javascript.tier(), Some(Tier::Read));
    let http =
        javascript.import_status().iter().find(|i| i.name.starts_with("wasi:http/outgoing-handler")).unwrap();
    assert_eq!(http.status, "denied");
    assert!(http.why.as_deref().unwrap().contains("no outgoing HTTP is granted"), "{http:?}");
    let out = host.invoke_tool(&javascript, &json!({"text": "héllo"})).await.unwrap();
    assert_eq!(out, json!({"chars": 5}));
    let out =
        host.invoke_tool(&javascript, &json!({"text": "x", "url": "http://example.com/"})).await.unwrap();
    assert!(!out["fetch"].as_str().unwrap().starts_with("ok"), "{out}");
    // An import outside the world is still a load error.
    let err = host.load_file(artifacts::GREEDY_IMPORT.as_ref(), LoadOptions::default()).await.unwrap_err();
    assert!(err.message.contains("not part of the agenthost:platform/tool@0.1.0 world"), "{err}");

    // Under a tenant that grants only `log`, memory names the tenant's rule.
    let setup = Setup::new("");
    let host = polyglot_host(Some(Arc::new(setup.governance(None).unwrap())));
    let m = ComponentManifest {
        name: "py-word-count".into(),
        version: "0.1.0".into(),
        digest: digest(&bytes(&py)),
        world: "tool".into(),
        risk_tier: Some(Tier::Read),
        policy: None,
        policy_digest: None,
        requests: requests(&["log", "memory"]),
        input_schema: None,
        signature: None,
    };
    let tool = host
        .load(
            &bytes(&py),
            LoadOptions { tenant: Some("hooli".into()), manifest: Some(m), ..LoadOptions::default() },
        )
        .await
        .unwrap();
    let out = host.invoke_tool(&tool, &json!({"text": "a", "remember": true})).await.unwrap();
    assert!(
        out["memory"].as_str().unwrap().contains("tenant `hooli` does not grant it (grants.interfaces)"),
        "{out}"
    );
}

// ---------------------------------------------------------------------------
// 7. Mounts are opened once, never through a symlink, and never nest.

#[tokio::test(flavor = "multi_thread")]
async fn item07_mounts_are_opened_once_never_through_a_symlink_and_never_nested() {
    let work = tempfile::tempdir().unwrap();
    let data = work.path().join("data");
    std::fs::create_dir_all(data.join("inner")).unwrap();
    std::fs::write(data.join("note.txt"), "the mounted directory").unwrap();
    let outside = work.path().join("outside");
    std::fs::create_dir_all(&outside).unwrap();
    std::fs::write(outside.join("note.txt"), "OUTSIDE: host secret").unwrap();

    // Nested mounts are refused at start (Setup's own /docs mount is
    // elsewhere: only /inner nests, inside the writable /data).
    let nested = format!(
        "[[grants.mounts]]\nhost = \"{}\"\nguest = \"/data\"\nwritable = true\n[[grants.mounts]]\nhost = \"{}\"\nguest = \"/inner\"\n",
        data.display(),
        data.join("inner").display()
    );
    let setup = Setup::new("");
    std::fs::write(
        acme_path(&setup),
        format!("{}\n{nested}", std::fs::read_to_string(acme_path(&setup)).unwrap()),
    )
    .unwrap();
    let err = setup.governance(None).unwrap_err();
    assert!(err.contains("lies inside") && err.contains("mounts may not nest"), "{err}");

    // A mount path through a symlink is refused when loaded.
    let link = work.path().join("link");
    std::os::unix::fs::symlink(&data, &link).unwrap();
    let via_link = format!("[[grants.mounts]]\nhost = \"{}\"\nguest = \"/data\"\n", link.display());
    let setup = Setup::new("");
    std::fs::write(
        acme_path(&setup),
        format!("{}\n{via_link}", std::fs::read_to_string(acme_path(&setup)).unwrap()),
    )
    .unwrap();
    let host = setup.host();
    let m = manifest(
        artifacts::HOSTILE_PROBE,
        "hostile-probe",
        "agent",
        None,
        Requests { mounts: vec!["/data".into()], ..probe_requests() },
    );
    let err = load_for(&host, artifacts::HOSTILE_PROBE, "acme", m.clone()).await.unwrap_err();
    assert!(err.message.contains("is a symlink"), "{err}");

    // Opened once: swapping the path for a symlink after the load changes nothing.
    let direct = format!("[[grants.mounts]]\nhost = \"{}\"\nguest = \"/data\"\n", data.display());
    let setup = Setup::new("");
    std::fs::write(
        acme_path(&setup),
        format!("{}\n{direct}", std::fs::read_to_string(acme_path(&setup)).unwrap()),
    )
    .unwrap();
    let host = setup.host();
    let agent = load_for(&host, artifacts::HOSTILE_PROBE, "acme", m).await.unwrap();
    let read = json!({"op": "read_file", "path": "/data/note.txt"});
    assert_eq!(run(&host, &agent, read.clone()).await["content"], "the mounted directory");
    std::fs::rename(&data, work.path().join("moved")).unwrap();
    std::os::unix::fs::symlink(&outside, &data).unwrap();
    let out = run(&host, &agent, read).await;
    assert_eq!(out["content"], "the mounted directory", "the swap reached outside the mount: {out}");
}

fn acme_path(setup: &Setup) -> std::path::PathBuf {
    setup.config.path().join("tenants/acme.toml")
}

// ---------------------------------------------------------------------------
// 8. Who calls is authenticated (CLI).

fn governed(config: &Path, data: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .arg("--config")
        .arg(config)
        .arg("--data-dir")
        .arg(data)
        .args(args)
        .output()
        .expect("run agenthost")
}

fn stderr_text(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A config directory with tenant acme (approvers alice and carol,
/// principal dave sharing carol's key) and a refund tool with its manifest.
fn refund_config(dir: &Path) -> (std::path::PathBuf, std::path::PathBuf, String) {
    let (config, data, work) = (dir.join("config"), dir.join("data"), dir.join("work"));
    for d in [&config.join("keys"), &config.join("tenants"), &work] {
        std::fs::create_dir_all(d).unwrap();
    }
    for who in ["alice", "carol", "mallory"] {
        agenthost::keys::write_key_pair(&config.join("keys").join(who)).unwrap();
    }
    std::fs::write(
        config.join("tenants/acme.toml"),
        "id = \"acme\"\n[grants]\nmemory_namespaces = [\"refunds\"]\n[approvers]\nalice = \"keys/alice.pub\"\ncarol = \"keys/carol.pub\"\n[principals]\ndave = \"keys/carol.pub\"\n",
    )
    .unwrap();
    let wasm = work.join("refund.wasm");
    std::fs::copy(artifacts::REFUND, &wasm).unwrap();
    let m = ComponentManifest {
        requests: Requests { memory_namespaces: patterns(&["refunds"]), ..requests(&["log", "memory"]) },
        ..manifest(artifacts::REFUND, "refund", "tool", Some(Tier::WriteHigh), Requests::default())
    };
    std::fs::write(work.join("refund.manifest.toml"), m.to_toml().unwrap()).unwrap();
    (config, data, wasm.display().to_string())
}

#[test]
fn item08_who_calls_is_authenticated_and_nobody_approves_their_own_request() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data, wasm) = refund_config(dir.path());
    let key = |who: &str| config.join("keys").join(format!("{who}.key")).display().to_string();
    let input = r#"{"order_id":"ORD-1","amount_cents":100,"currency":"EUR"}"#;

    // --as without proof is refused by the command line itself.
    let out = governed(&config, &data, &["run", &wasm, "--as", "alice", "--input", input]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_text(&out));
    assert!(stderr_text(&out).contains("--key"), "{}", stderr_text(&out));
    // --as with someone else's key is refused.
    let out = governed(
        &config,
        &data,
        &["run", &wasm, "--as", "alice", "--key", &key("mallory"), "--input", input],
    );
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_text(&out).contains("is not `alice`'s"), "{}", stderr_text(&out));
    // Without --as, the caller is the operating-system user.
    let out = governed(&config, &data, &["run", &wasm, "--input", input]);
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    let id = err["error"]["approval_request"].as_str().unwrap().to_owned();
    let shown: Value =
        serde_json::from_slice(&governed(&config, &data, &["approvals", "show", &id]).stdout).unwrap();
    assert!(shown["requested_by"].as_str().unwrap().starts_with("unix:"), "{shown}");
    // Whoever made it from this OS account cannot approve it from the same
    // account, whatever approver name and key they hold.
    let out =
        governed(&config, &data, &["approvals", "approve", &id, "--as", "alice", "--key", &key("alice")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_text(&out).contains("same name, key or OS user"), "{}", stderr_text(&out));

    // dave calls with carol's key (the tenant lists it for both names):
    // carol may not approve what her own key asked for.
    let out =
        governed(&config, &data, &["run", &wasm, "--as", "dave", "--key", &key("carol"), "--input", input]);
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    let id = err["error"]["approval_request"].as_str().unwrap().to_owned();
    let out =
        governed(&config, &data, &["approvals", "approve", &id, "--as", "carol", "--key", &key("carol")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_text(&out).contains("same name, key or OS user"), "{}", stderr_text(&out));
    // deny needs the approver's key like approve.
    let out = governed(&config, &data, &["approvals", "deny", &id, "--as", "alice"]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr_text(&out));
    let out =
        governed(&config, &data, &["approvals", "deny", &id, "--as", "alice", "--key", &key("mallory")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_text(&out).contains("is not `alice`'s registered key"), "{}", stderr_text(&out));
    let out = governed(&config, &data, &["approvals", "deny", &id, "--as", "alice", "--key", &key("alice")]);
    assert!(out.status.success(), "{}", stderr_text(&out));
}

// ---------------------------------------------------------------------------
// 9. A token binds the component's digest; a used token stays used.

/// A host for `setup` with an audit trail under its data directory.
fn audited_host(setup: &Setup) -> (Host, Arc<AuditLog>) {
    let audit = AuditLog::open(
        &setup.data.path().join("audit"),
        AuditOptions::default(),
        KeyPair::from_seed([9; 32]),
        Vec::new(),
    )
    .unwrap();
    let host = Host::new(HostConfig {
        engine: engine_config(),
        governance: Some(Arc::new(setup.governance(None).unwrap())),
        audit: Some(audit.clone()),
        ..HostConfig::default()
    })
    .unwrap();
    (host, audit)
}

fn as_caller(name: &str, request: Option<&str>) -> CallOptions {
    CallOptions {
        principal: Some(name.to_owned()),
        approval_request: request.map(str::to_owned),
        ..CallOptions::default()
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn item09_an_approval_binds_the_component_and_a_used_token_stays_used() {
    let setup = Setup::new("");
    let (host, _audit) = audited_host(&setup);
    let refund = crate::governance::refund_tool(&host).await;
    let input = json!({"order_id": "ORD-9", "amount_cents": 500, "currency": "EUR"});
    let err = host.invoke_tool_with(&refund, &input, &as_caller("carol", None)).await.unwrap_err();
    let id = err.approval_request.unwrap();
    let store = host.governance().approvals().unwrap();
    store
        .decide(&id, &crate::governance::approver("alice", &key(&setup, "alice")), true, "", 600)
        .await
        .unwrap();

    // The same name@version, other bytes (a custom section appended): not
    // what was approved.
    let mut swapped = bytes(artifacts::REFUND);
    swapped.extend_from_slice(&[0, 6, 5, b'e', b'v', b'i', b'l', b'!']);
    let m = ComponentManifest {
        digest: digest(&swapped),
        ..manifest(
            artifacts::REFUND,
            "refund",
            "tool",
            Some(Tier::WriteHigh),
            Requests { memory_namespaces: patterns(&["refunds"]), ..requests(&["log", "memory"]) },
        )
    };
    let impostor = host
        .load(
            &swapped,
            LoadOptions { tenant: Some("acme".into()), manifest: Some(m), ..LoadOptions::default() },
        )
        .await
        .unwrap();
    assert_eq!(impostor.id().name, "refund");
    let err = host.invoke_tool_with(&impostor, &input, &as_caller("carol", Some(&id))).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Denied, "{err}");
    assert!(err.message.contains("replaced after the approval"), "{err}");

    // The approved component runs once; deleting the marker file of the
    // spent token does not bring it back: the audit trail records the use.
    host.invoke_tool_with(&refund, &input, &as_caller("carol", Some(&id))).await.unwrap();
    let consumed = store.dir().unwrap().join("consumed");
    for entry in std::fs::read_dir(&consumed).unwrap() {
        std::fs::remove_file(entry.unwrap().path()).unwrap();
    }
    let again = json!({"order_id": "ORD-9", "amount_cents": 500, "currency": "EUR"});
    let err = host.invoke_tool_with(&refund, &again, &as_caller("carol", Some(&id))).await.unwrap_err();
    assert_eq!(err.kind, ErrorKind::Denied, "{err}");
    assert!(err.message.contains("the audit trail records its use"), "{err}");
}

// ---------------------------------------------------------------------------
// 10. Approvers see what they approve.

#[tokio::test(flavor = "multi_thread")]
async fn item10_approvers_see_the_values_and_only_sensitive_fields_are_redacted() {
    let setup = Setup::new("");
    let host = setup.host();
    let refund = crate::governance::refund_tool(&host).await;
    let reason = "The parcel arrived crushed; the customer sent photos of the damage.";
    let input = json!({
        "order_id": "ORD-42",
        "amount_cents": 12999,
        "currency": "EUR",
        "reason": reason,
        "card_last4": "4242",
    });
    let err = host.invoke_tool_with(&refund, &input, &as_caller("carol", None)).await.unwrap_err();
    let request = host.governance().approvals().unwrap().get(&err.approval_request.unwrap()).await.unwrap();
    assert_eq!(request.preview["order_id"], "ORD-42");
    assert_eq!(request.preview["amount_cents"], 12999);
    assert_eq!(request.preview["currency"], "EUR");
    assert_eq!(request.preview["reason"], reason);
    // The tool's schema marks card_last4 sensitive.
    assert_eq!(request.preview["card_last4"], "[redacted: marked sensitive by the tool's schema; 6 bytes]");
}

// ---------------------------------------------------------------------------
// 11 and 12. The host's keys live in a checked directory; verify says which key it trusted.

fn cli(data: &Path, extra_env: &[(&str, &str)], args: &[&str]) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_agenthost"));
    command.arg("--data-dir").arg(data).args(args).env_remove("AGENTHOST_KEY_DIR");
    for (k, v) in extra_env {
        command.env(k, v);
    }
    command.output().expect("run agenthost")
}

#[test]
fn item11_item12_keys_live_in_a_checked_directory_and_verify_names_the_key_it_trusted() {
    use std::os::unix::fs::PermissionsExt as _;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let keys = dir.path().join("keys");
    let keys_arg = keys.display().to_string();
    let run = ["run", artifacts::CALCULATOR, "--input", r#"{"expression":"1+1"}"#];

    // A key directory outside the data directory (by environment).
    let out = cli(&data, &[("AGENTHOST_KEY_DIR", &keys_arg)], &run);
    assert!(out.status.success(), "{}", stderr_text(&out));
    for file in ["audit.key", "cache.key"] {
        assert!(keys.join(file).exists(), "{file} made in the key directory");
        let mode = std::fs::metadata(keys.join(file)).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600, "{file}");
    }
    assert!(!data.join("audit/audit.key").exists() && !data.join("cache/cache.key").exists());
    // Verify against the key directory: intact, exit 0, names its key.
    let out = cli(&data, &[("AGENTHOST_KEY_DIR", &keys_arg)], &["audit", "verify"]);
    assert_eq!(out.status.code(), Some(0), "{}", String::from_utf8_lossy(&out.stdout));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("the host's key directory"),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    // Only the trail's own audit.pub: intact is exit 3, and it says why.
    let out = cli(
        &data,
        &[],
        &["--key-dir", dir.path().join("nowhere").to_str().unwrap(), "audit", "verify", "--json"],
    );
    assert_eq!(out.status.code(), Some(3), "{}", String::from_utf8_lossy(&out.stdout));
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["key"]["from_trail"], true, "{report}");
    assert!(
        report["report"]["warnings"].to_string().contains("trusted key taken from the trail's own directory")
    );

    // A key directory others can read, a key file others can read, a
    // data directory others can write: refused, naming the fix.
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o755)).unwrap();
    let out = cli(&data, &[("AGENTHOST_KEY_DIR", &keys_arg)], &run);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_text(&out).contains("has mode 0755") && stderr_text(&out).contains("chmod 700"),
        "{}",
        stderr_text(&out)
    );
    std::fs::set_permissions(&keys, std::fs::Permissions::from_mode(0o700)).unwrap();
    std::fs::set_permissions(keys.join("audit.key"), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = cli(&data, &[("AGENTHOST_KEY_DIR", &keys_arg)], &run);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_text(&out).contains("chmod 600"), "{}", stderr_text(&out));
    std::fs::set_permissions(keys.join("audit.key"), std::fs::Permissions::from_mode(0o600)).unwrap();
    std::fs::set_permissions(&data, std::fs::Permissions::from_mode(0o777)).unwrap();
    let out = cli(&data, &[("AGENTHOST_KEY_DIR", &keys_arg)], &run);
    assert_eq!(out.status.code(), Some(2));
    assert!(
        stderr_text(&out).contains("the data directory") && stderr_text(&out).contains("chmod go-w"),
        "{}",
        stderr_text(&out)
    );
}

#[test]
fn item11_keys_from_aws_secrets_manager() {
    let Some(endpoint) = crate::common::aws::endpoint() else { return };
    let dir = tempfile::tempdir().unwrap();
    let (config, data) = (dir.path().join("config"), dir.path().join("data"));
    std::fs::create_dir_all(config.join("tenants")).unwrap();
    let suffix = format!("{:08x}", rand::random::<u32>());
    std::fs::write(
        config.join("host.toml"),
        format!(
            "[aws]\nendpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\n[keys]\nsource = \"secretsmanager\"\naudit_secret = \"audit-{suffix}\"\ncache_secret = \"cache-{suffix}\"\n[events]\nqueue = \"q-{suffix}\"\n"
        ),
    )
    .unwrap();
    std::fs::write(config.join("tenants/acme.toml"), "id = \"acme\"\n").unwrap();
    // Before bootstrap the secrets are missing: a clear error.
    let work = dir.path().join("work");
    std::fs::create_dir_all(&work).unwrap();
    let wasm = work.join("calculator.wasm");
    std::fs::copy(artifacts::CALCULATOR, &wasm).unwrap();
    let m = manifest(artifacts::CALCULATOR, "calculator", "tool", Some(Tier::Read), requests(&["log"]));
    std::fs::write(work.join("calculator.manifest.toml"), m.to_toml().unwrap()).unwrap();
    let run = ["run", wasm.to_str().unwrap(), "--input", r#"{"expression":"2+2"}"#];
    let out = governed(&config, &data, &run);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_text(&out).contains("agenthost aws bootstrap"), "{}", stderr_text(&out));
    let out = governed(&config, &data, &["aws", "bootstrap"]);
    assert!(out.status.success(), "{}", stderr_text(&out));
    let out = governed(&config, &data, &run);
    assert!(out.status.success(), "{}", stderr_text(&out));
    assert!(!data.join("keys").exists(), "no key directory when the keys come from Secrets Manager");
    // The trail is signed with the key in Secrets Manager.
    let rt = tokio::runtime::Runtime::new().unwrap();
    let pem = rt.block_on(async {
        let sdk = crate::common::aws::config_for(&endpoint).await;
        aws_sdk_secretsmanager::Client::new(&sdk)
            .get_secret_value()
            .secret_id(format!("audit-{suffix}"))
            .send()
            .await
            .unwrap()
            .secret_string()
            .unwrap()
            .to_owned()
    });
    let key = KeyPair::from_pem(&pem).unwrap();
    let head: Value =
        serde_json::from_slice(&std::fs::read(data.join("audit/host/HEAD.json")).unwrap()).unwrap();
    assert_eq!(head["key"], key.id());
}

// ---------------------------------------------------------------------------
// 13-16. A trail that cannot be cut or rewritten quietly.

fn options() -> AuditOptions {
    AuditOptions {
        checkpoint_every: 10,
        checkpoint_interval: Duration::from_secs(3600),
        ..AuditOptions::default()
    }
}

fn trail_key() -> KeyPair {
    KeyPair::from_seed([5; 32])
}

/// A closed stream of `n` records under a fresh root.
fn written(n: u64) -> (tempfile::TempDir, std::path::PathBuf) {
    let root = tempfile::tempdir().unwrap();
    let log = AuditLog::open(root.path(), options(), trail_key(), Vec::new()).unwrap();
    for i in 0..n {
        log.append(&agenthost::audit::Event::new(
            agenthost::audit::Kind::Evidence,
            "acme",
            "ok",
            json!({"n": i}),
        ))
        .unwrap();
    }
    log.close().unwrap();
    let dir = log.dir().to_path_buf();
    (root, dir)
}

fn verify_root(root: &Path) -> agenthost::audit::Report {
    let streams = agenthost::audit::verify::load_dir(root).unwrap();
    let index = agenthost::audit::verify::load_index(root);
    agenthost::audit::verify::verify_trail(&streams, index.as_deref(), Some(&trail_key().public()))
}

fn segment_of(dir: &Path) -> std::path::PathBuf {
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "log"))
        .collect();
    files.sort();
    files.pop().unwrap()
}

/// The lines of a segment up to and including the `nth` checkpoint.
fn cut_after_checkpoint(path: &Path, nth: usize) -> (Vec<String>, Value) {
    let text = std::fs::read_to_string(path).unwrap();
    let mut kept = Vec::new();
    let mut seen = 0;
    for line in text.lines() {
        kept.push(line.to_owned());
        if line.contains(r#""kind":"checkpoint""#) {
            seen += 1;
            if seen == nth {
                let body: Value = serde_json::from_str(line.splitn(4, ' ').nth(3).unwrap()).unwrap();
                return (kept, body);
            }
        }
    }
    panic!("fewer than {nth} checkpoints");
}

#[test]
fn item13_a_head_cannot_be_rebuilt_from_a_checkpoint() {
    let (root, dir) = written(35);
    let path = segment_of(&dir);
    let (kept, checkpoint) = cut_after_checkpoint(&path, 2);
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    // The attacker writes a HEAD from the checkpoint's own signed statement.
    let what = &checkpoint["what"];
    let forged = json!({
        "format": "agenthost-audit-head-v1", "stream": "host", "segment": path.file_name().unwrap().to_str().unwrap(),
        "counter": 99, "seq": what["seq"], "hash": what["hash"], "key": what["key"], "signature": what["signature"],
        "time": "2026-12-01T00:00:00Z",
    });
    std::fs::write(dir.join("HEAD.json"), forged.to_string()).unwrap();
    let report = verify_root(root.path());
    let problem = report.first_problem().cloned().expect("the forged head went unseen");
    assert_eq!(problem.kind, agenthost::audit::ProblemKind::BadSignature, "{problem:?}");
    // Nor in the old form, which only repeated the checkpoint statement.
    let old_form = json!({ "stream": "host", "seq": what["seq"], "hash": what["hash"], "key": what["key"], "signature": what["signature"] });
    std::fs::write(dir.join("HEAD.json"), old_form.to_string()).unwrap();
    let report = verify_root(root.path());
    assert!(report.first_problem().is_some(), "{report:#?}");
}

#[test]
fn item14_a_stream_cut_at_a_checkpoint_shows() {
    let (root, dir) = written(35);
    assert!(verify_root(root.path()).streams[0].closed);
    let path = segment_of(&dir);
    let (kept, _) = cut_after_checkpoint(&path, 2);
    std::fs::write(&path, kept.join("\n") + "\n").unwrap();
    std::fs::remove_file(dir.join("HEAD.json")).unwrap();
    let report = verify_root(root.path());
    assert!(report.ok(), "{report:#?}");
    let warnings = report.streams[0].warnings.join("\n");
    assert!(warnings.contains("does not end with a close checkpoint"), "{warnings}");
    assert!(report.has_warnings());
}

#[test]
fn item15_a_planted_tail_is_marked_as_never_signed_by_its_writer() {
    let (root, dir) = written(12);
    let path = segment_of(&dir);
    // Two records that chain perfectly onto the close checkpoint, unsigned.
    let text = std::fs::read_to_string(&path).unwrap();
    let last = text.lines().last().unwrap().to_owned();
    let line = agenthost::audit::record::Line::parse(last.as_bytes()).unwrap();
    let (mut seq, mut prev) = (line.seq, String::from_utf8_lossy(line.hash).into_owned());
    let mut file = std::fs::OpenOptions::new().append(true).open(&path).unwrap();
    for n in 0..2 {
        seq += 1;
        let body = format!(
            r#"{{"id":"forged{n}","kind":"approval","outcome":"approved","tenant":"acme","what":{{}}}}"#
        );
        let hash = agenthost::audit::record::chain_hash(seq, &prev, body.as_bytes());
        writeln!(file, "{hash} {seq} {prev} {body}").unwrap();
        prev = hash;
    }
    drop(file);
    // The next writer checks the tail it chains onto and says what it inherited.
    let log = AuditLog::open(root.path(), options(), trail_key(), Vec::new()).unwrap();
    log.record_blocking(&agenthost::audit::Event::new(
        agenthost::audit::Kind::Evidence,
        "acme",
        "ok",
        json!({}),
    ))
    .unwrap();
    log.close().unwrap();
    let report = verify_root(root.path());
    assert!(report.ok(), "{report:#?}");
    let warnings = report.streams[0].warnings.join("\n");
    assert!(
        warnings.contains(&format!("records {}..{} were never signed by their writer", seq - 1, seq)),
        "{warnings}"
    );
}

#[test]
fn item16_a_removed_renamed_or_swapped_stream_shows() {
    let root = tempfile::tempdir().unwrap();
    let first = AuditLog::open(root.path(), options(), trail_key(), Vec::new()).unwrap();
    let second = AuditLog::open(root.path(), options(), trail_key(), Vec::new()).unwrap();
    for log in [&first, &second] {
        log.record_blocking(&agenthost::audit::Event::new(
            agenthost::audit::Kind::Evidence,
            "acme",
            "ok",
            json!({}),
        ))
        .unwrap();
        log.close().unwrap();
    }
    assert!(verify_root(root.path()).ok());
    // Swapped: host and host.1 trade names.
    let (a, b) = (root.path().join("host"), root.path().join("host.1"));
    std::fs::rename(&a, root.path().join("tmp")).unwrap();
    std::fs::rename(&b, &a).unwrap();
    std::fs::rename(root.path().join("tmp"), &b).unwrap();
    let report = verify_root(root.path());
    assert_eq!(
        report.first_problem().map(|p| p.kind),
        Some(agenthost::audit::ProblemKind::Renamed),
        "{report:#?}"
    );
    // Removed: one stream gone as a whole.
    std::fs::remove_dir_all(&b).unwrap();
    let report = verify_root(root.path());
    let problem = report.streams.iter().find_map(|s| s.problem.clone()).unwrap();
    assert!(
        report.streams.iter().any(|s| s
            .problem
            .as_ref()
            .is_some_and(|p| p.kind == agenthost::audit::ProblemKind::Missing
                && p.message.contains("`host.1` is listed in the signed STREAMS.json but is gone"))),
        "{problem:?} {report:#?}"
    );
}

// ---------------------------------------------------------------------------
// 17. Host work stays inside the call's limits.

#[tokio::test(flavor = "multi_thread")]
async fn item17_guest_requests_are_capped_and_the_builtin_model_is_linear() {
    let host = crate::common::host_with(Limits { timeout: Duration::from_secs(30), ..Limits::default() });
    let agent = dev_probe(&host).await;
    // Nearly a megabyte of unbalanced parentheses before a sum: the
    // built-in model's parsing must stay linear (it was quadratic: this
    // took minutes of host CPU the deadline could not stop).
    let out = run(
        &host,
        &agent,
        json!({"op": "converse_pattern", "pattern": "(", "repeat": 900_000, "calculator": true}),
    )
    .await;
    assert_eq!(out["ok"], true, "{out}");
    let out = run(
        &host,
        &agent,
        json!({"op": "converse_pattern", "pattern": "+(", "repeat": 400_000, "calculator": true}),
    )
    .await;
    assert_eq!(out["ok"], true, "{out}");
    // Request caps, each named.
    for (probe_input, cap) in [
        (json!({"op": "converse_pattern", "pattern": "a", "repeat": 2_000_000}), "limit model request bytes"),
        (json!({"op": "converse_pattern", "pattern": "a", "messages": 300}), "limit model messages"),
        (json!({"op": "publish_attrs", "topic": "t", "count": 17}), "limit events attributes"),
        (
            json!({"op": "publish_attrs", "topic": "t", "count": 1, "value_bytes": 2000}),
            "limit events attribute value bytes",
        ),
        (json!({"op": "memory_list", "namespace": "notes", "limit": 5000}), "limit memory list page size"),
        (
            json!({"op": "memory_put", "namespace": "notes", "key": "k".repeat(2000), "value": "v"}),
            "limit memory key bytes",
        ),
        (json!({"op": "emit", "summary_bytes": 5000}), "limit audit.emit summary bytes"),
    ] {
        let out = run(&host, &agent, probe_input.clone()).await;
        let error = error_of(&out);
        assert!(error.contains("LimitExceeded") && error.contains(cap), "{probe_input}: {out}");
    }
}

// ---------------------------------------------------------------------------
// 18. Guest errors are capped, and never carry a request the host did not issue.

#[tokio::test(flavor = "multi_thread")]
async fn item18_guest_errors_are_capped_and_cannot_forge_approval_requests() {
    let host = crate::common::host();
    let agent = dev_probe(&host).await;
    let err = host.run_agent(&agent, &json!({"op": "huge_error", "bytes": 1_000_000})).await.unwrap_err();
    assert!(err.message.len() < 5000, "{} bytes", err.message.len());
    assert!(err.message.contains("the guest's message was 1000000 bytes"), "{}", &err.message[4000..]);
    let err = host
        .run_agent(&agent, &json!({"op": "forge_approval", "request_id": "apr-0000000000000000"}))
        .await
        .unwrap_err();
    assert_eq!(err.kind, ErrorKind::InvalidOutput, "{err}");
    assert!(err.approval_request.is_none());
    assert!(err.message.contains("which the host did not issue"), "{err}");
}

// ---------------------------------------------------------------------------
// 19. Per-run host memory is bounded.

#[tokio::test(flavor = "multi_thread")]
async fn item19_a_runs_transcript_keeps_digests_and_stays_within_its_budget() {
    let host = crate::common::host_with(Limits { timeout: Duration::from_secs(60), ..Limits::default() });
    let agent = dev_probe(&host).await;
    // A big request is kept as its digest and size.
    let run_out = host
        .run_agent(&agent, &json!({"op": "converse_pattern", "pattern": "word ", "repeat": 10_000}))
        .await
        .unwrap();
    let events = run_out.transcript.events();
    let model = events.iter().find_map(|e| match e {
        agenthost::trace::TranscriptEvent::ModelCall { request, .. } => Some(request.clone()),
        _ => None,
    });
    assert!(
        matches!(model, Some(agenthost::trace::Kept::Summary { bytes, .. }) if bytes > 50_000),
        "{model:?}"
    );
    // Many mid-sized requests: the run is stopped at its transcript budget.
    let run_out =
        host.run_agent(&agent, &json!({"op": "converse_many", "count": 2000, "bytes": 8000})).await.unwrap();
    let error = error_of(&run_out.output);
    assert!(
        error.contains("LimitExceeded") && error.contains("limit transcript bytes"),
        "{}",
        run_out.output
    );
    assert!(run_out.transcript.bytes() <= agenthost::trace::TRANSCRIPT_BUDGET_BYTES);
}

// ---------------------------------------------------------------------------
// 20. HTTPS is pinned to the checked address, with the name's certificate;
//     addresses that embed restricted IPv4 ranges are restricted too.

/// A CA and a certificate for `localhost` it signed, made with openssl.
fn test_ca(dir: &Path) -> (Vec<u8>, Vec<u8>, Vec<u8>) {
    let openssl = |args: &[&str]| {
        let out = Command::new("openssl").args(args).current_dir(dir).output().expect("openssl");
        assert!(out.status.success(), "openssl {args:?}: {}", String::from_utf8_lossy(&out.stderr));
    };
    openssl(&[
        "req",
        "-x509",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "ca.key",
        "-out",
        "ca.pem",
        "-days",
        "2",
        "-subj",
        "/CN=agenthost test CA",
    ]);
    openssl(&[
        "req",
        "-newkey",
        "ec",
        "-pkeyopt",
        "ec_paramgen_curve:P-256",
        "-nodes",
        "-keyout",
        "leaf.key",
        "-out",
        "leaf.csr",
        "-subj",
        "/CN=localhost",
    ]);
    std::fs::write(dir.join("ext.cnf"), "subjectAltName=DNS:localhost\n").unwrap();
    openssl(&[
        "x509",
        "-req",
        "-in",
        "leaf.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-out",
        "leaf.pem",
        "-days",
        "2",
        "-extfile",
        "ext.cnf",
    ]);
    let read = |f: &str| std::fs::read(dir.join(f)).unwrap();
    (read("ca.pem"), read("leaf.pem"), read("leaf.key"))
}

/// An HTTPS server on 127.0.0.1 answering every request with `body`.
fn https_server(cert_pem: Vec<u8>, key_pem: Vec<u8>, body: &'static str) -> u16 {
    use tokio_rustls::rustls;
    use tokio_rustls::rustls::pki_types::pem::PemObject as _;
    let certs: Vec<_> =
        rustls::pki_types::CertificateDer::pem_slice_iter(&cert_pem).map(Result::unwrap).collect();
    let key = rustls::pki_types::PrivateKeyDer::from_pem_slice(&key_pem).unwrap();
    let config =
        rustls::ServerConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(certs, key)
            .unwrap();
    let acceptor = tokio_rustls::TlsAcceptor::from(Arc::new(config));
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    listener.set_nonblocking(true).unwrap();
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        rt.block_on(async move {
            use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
            let listener = tokio::net::TcpListener::from_std(listener).unwrap();
            loop {
                let Ok((tcp, _)) = listener.accept().await else { continue };
                let acceptor = acceptor.clone();
                tokio::spawn(async move {
                    let Ok(mut tls) = acceptor.accept(tcp).await else { return };
                    let mut buffer = [0u8; 4096];
                    let _ = tls.read(&mut buffer).await;
                    let response = format!(
                        "HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: {}\r\nconnection: close\r\n\r\n{body}",
                        body.len()
                    );
                    let _ = tls.write_all(response.as_bytes()).await;
                    let _ = tls.shutdown().await;
                });
            }
        });
    });
    port
}

#[tokio::test(flavor = "multi_thread")]
async fn item20_https_goes_to_the_checked_address_with_the_names_certificate() {
    let certs = tempfile::tempdir().unwrap();
    let (ca, cert, leaf_key) = test_ca(certs.path());
    let port = https_server(cert, leaf_key, "hello over pinned TLS");
    let network = format!(
        "[grants.network]\nallow = [\"https://localhost:{port}\", \"http://[64:ff9b::a9fe:a9fe]:*\", \"http://[::a00:1]:*\"]\nallow_addresses = [\"127.0.0.0/8\", \"::1/128\"]\n"
    );
    let setup = Setup::new(&network);
    let host_for = |ca: Option<Vec<u8>>| {
        Host::new(HostConfig {
            engine: engine_config(),
            governance: Some(Arc::new(setup.governance(None).unwrap())),
            egress_ca: ca.map(|pem| vec![("test-ca.pem".to_owned(), pem)]).unwrap_or_default(),
            ..HostConfig::default()
        })
        .unwrap()
    };
    let m = manifest(
        artifacts::HTTP_FETCH,
        "http-fetch",
        "tool",
        Some(Tier::Read),
        Requests {
            egress: vec![
                format!("https://localhost:{port}"),
                "http://[64:ff9b::a9fe:a9fe]:*".into(),
                "http://[::a00:1]:*".into(),
            ],
            ..requests(&["log"])
        },
    );
    let host = host_for(Some(ca));
    let tool = load_for(&host, artifacts::HTTP_FETCH, "acme", m.clone()).await.unwrap();
    let out = host.invoke_tool(&tool, &json!({"url": format!("https://localhost:{port}/")})).await.unwrap();
    assert_eq!(out["status"], 200, "{out}");
    assert_eq!(out["body"], "hello over pinned TLS");
    // Without the CA the certificate is not trusted: validation is on.
    let host = host_for(None);
    let tool = load_for(&host, artifacts::HTTP_FETCH, "acme", m).await.unwrap();
    let err =
        host.invoke_tool(&tool, &json!({"url": format!("https://localhost:{port}/")})).await.unwrap_err();
    assert!(err.message.contains("TlsCertificateError"), "{err}");
    // The NAT64 form of the metadata address, and the IPv4-compatible form
    // of a private one, are what they embed.
    for (url, range) in [
        ("http://[64:ff9b::a9fe:a9fe]:80/", "a cloud metadata address"),
        ("http://[::a00:1]:9/", "a private address"),
    ] {
        let err = host.invoke_tool(&tool, &json!({"url": url})).await.unwrap_err();
        assert!(err.message.contains(range), "{url}: {err}");
    }
}

// ---------------------------------------------------------------------------
// 21. Per-minute quotas survive the process; numbers from guests and files
//     never overflow.

/// Tenant acme with `write_low_per_minute = 2` (and `host_toml`, when
/// given) under `dir/config`, and the kv-note tool (write-low) with its
/// manifest; returns the config directory and the tool. Waits, if need be,
/// so that the next few seconds fall in one wall-clock minute.
fn write_low_quota_of_two(dir: &Path, host_toml: Option<&str>) -> (PathBuf, PathBuf) {
    let (config, work) = (dir.join("config"), dir.join("work"));
    for d in [&config.join("tenants"), &work] {
        std::fs::create_dir_all(d).unwrap();
    }
    if let Some(host_toml) = host_toml {
        std::fs::write(config.join("host.toml"), host_toml).unwrap();
    }
    std::fs::write(
        config.join("tenants/acme.toml"),
        "id = \"acme\"\n[quotas]\nwrite_low_per_minute = 2\n[grants]\nmemory_namespaces = [\"notes\"]\n",
    )
    .unwrap();
    let wasm = work.join("kv_note.wasm");
    std::fs::copy(artifacts::KV_NOTE, &wasm).unwrap();
    let m = manifest(
        artifacts::KV_NOTE,
        "kv-note",
        "tool",
        Some(Tier::WriteLow),
        Requests { memory_namespaces: patterns(&["notes"]), ..requests(&["log", "memory"]) },
    );
    std::fs::write(work.join("kv_note.manifest.toml"), m.to_toml().unwrap()).unwrap();
    let second = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_secs() % 60;
    if second > 40 {
        std::thread::sleep(Duration::from_secs(61 - second));
    }
    (config, wasm)
}

/// Three runs of the tool, the n-th on data directory `data(n)`: two pass,
/// the third meets the quota.
fn third_run_meets_the_quota(config: &Path, wasm: &Path, data: impl Fn(usize) -> PathBuf, why: &str) {
    let run = ["run", wasm.to_str().unwrap(), "--input", r#"{"key":"k","note":"n"}"#];
    for n in 0..2 {
        let out = governed(config, &data(n), &run);
        assert!(out.status.success(), "{}", stderr_text(&out));
    }
    let out = governed(config, &data(2), &run);
    assert_eq!(out.status.code(), Some(1), "{why}");
    assert!(stderr_text(&out).contains("write_low_per_minute"), "{}", stderr_text(&out));
}

#[test]
fn item21_per_minute_quotas_survive_the_process() {
    let dir = tempfile::tempdir().unwrap();
    let (config, wasm) = write_low_quota_of_two(dir.path(), None);
    let data = dir.path().join("data");
    third_run_meets_the_quota(&config, &wasm, |_| data.clone(), "a new process got a fresh minute");
}

/// The same with a DynamoDB memory backend and a data directory per run,
/// as Lambda execution environments (or replicas) are: the minute is the
/// tenant's across all of them, not each one's.
#[test]
fn item21_per_minute_quotas_are_shared_through_dynamodb_across_environments() {
    let Some(endpoint) = crate::common::aws::endpoint() else { return };
    let table = format!("quotas-{:08x}", rand::random::<u32>());
    tokio::runtime::Runtime::new().unwrap().block_on(async {
        let aws = crate::common::aws::config_for(&endpoint).await;
        agenthost::brokers::memory::create_table(&aws_sdk_dynamodb::Client::new(&aws), &table).await.unwrap();
    });
    let dir = tempfile::tempdir().unwrap();
    let host_toml = format!(
        "[aws]\nendpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\n[memory]\nbackend = \"dynamodb\"\ntable = \"{table}\"\n"
    );
    let (config, wasm) = write_low_quota_of_two(dir.path(), Some(&host_toml));
    let data = |n: usize| dir.path().join(format!("data-{n}"));
    third_run_meets_the_quota(&config, &wasm, data, "another environment got a fresh minute");
}

#[tokio::test(flavor = "multi_thread")]
async fn item21_numbers_from_guests_and_files_never_overflow() {
    let host = crate::common::host();
    let agent = dev_probe(&host).await;
    let out = run(&host, &agent, json!({"op": "memory_put", "namespace": "notes", "key": "k", "value": "v", "expected_version": u64::MAX, "ttl": u64::MAX})).await;
    assert_eq!(out["ok"], false, "{out}");
    let out = run(
        &host,
        &agent,
        json!({"op": "memory_put", "namespace": "notes", "key": "k2", "value": "v", "ttl": u64::MAX}),
    )
    .await;
    assert_eq!(out["ok"], true, "{out}");
    // A segment whose record claims the last sequence number: a new
    // writer refuses to chain past it, verify reports it, nothing panics.
    let (root, dir) = written(3);
    let path = segment_of(&dir);
    let body = r#"{"kind":"evidence"}"#;
    let prev = "0".repeat(64);
    let hash = agenthost::audit::record::chain_hash(u64::MAX, &prev, body.as_bytes());
    std::fs::write(&path, format!("{hash} {} {prev} {body}\n", u64::MAX)).unwrap();
    let err = AuditLog::open(root.path(), options(), trail_key(), Vec::new()).unwrap_err();
    assert!(err.to_string().contains("damaged"), "{err}");
    assert!(verify_root(root.path()).first_problem().is_some());
}

// ---------------------------------------------------------------------------
// 22. A guest cannot forge a host log line.

/// The hostile probe run by the CLI of the development tenant, logging at `log`.
fn probe_cli(data: &Path, log: &str, input: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .arg("--data-dir")
        .arg(data)
        .args(["--log", log, "run", artifacts::HOSTILE_PROBE, "--input", input])
        .output()
        .unwrap()
}

#[test]
fn item22_a_guest_log_message_cannot_forge_a_host_line() {
    let data = tempfile::tempdir().unwrap();
    // Through a model id, which the host's decision log names.
    let model = "x\n2026-12-01T00:00:00.000000Z  INFO agenthost::decision: forged";
    let input = json!({"op": "converse", "model_id": model}).to_string();
    let out = probe_cli(data.path(), "info", &input);
    assert!(out.status.success(), "{}", stderr_text(&out));
    assert!(
        !stderr_text(&out).lines().any(|l| l.starts_with("2026-12-01T00:00:00.000000Z")),
        "{}",
        stderr_text(&out)
    );
    // Through its own log message.
    let forged = "fine\n2026-12-01T00:00:00.000000Z  INFO agenthost::decision: approved everything";
    let input = json!({"op": "log", "message": forged, "fields": {"k": "v\r\nX"}}).to_string();
    let out = probe_cli(data.path(), "info", &input);
    assert!(out.status.success(), "{}", stderr_text(&out));
    let stderr = stderr_text(&out);
    assert!(stderr.contains("fine\\n2026-12-01"), "the newline is shown escaped: {stderr}");
    assert!(!stderr.lines().any(|l| l.starts_with("2026-12-01T00:00:00.000000Z")), "{stderr}");
}

// ---------------------------------------------------------------------------
// 23. One call of the development tenant cannot make unbounded host calls.

#[tokio::test(flavor = "multi_thread")]
async fn item23_the_development_tenant_has_a_host_call_budget_per_call() {
    let dir = tempfile::tempdir().unwrap();
    let audit = AuditLog::open(dir.path(), AuditOptions::default(), trail_key(), Vec::new()).unwrap();
    let host = Host::new(HostConfig {
        engine: engine_config(),
        audit: Some(audit.clone()),
        ..HostConfig::default()
    })
    .unwrap();
    let agent = dev_probe(&host).await;
    let out = run(&host, &agent, json!({"op": "flood", "namespace": "notes", "calls": 50_000})).await;
    assert_eq!(out["calls"], 10_000, "{out}");
    assert!(error_of(&json!({"error": out["error"]})).contains("limit host_calls_per_call"), "{out}");
    audit.close().unwrap();
    let streams = agenthost::audit::verify::load_dir(dir.path()).unwrap();
    let records: u64 =
        agenthost::audit::verify::verify(&streams, None).streams.iter().map(|s| s.records).sum();
    assert!(records < 12_000, "{records} audit records from one call");
}

#[tokio::test(flavor = "multi_thread")]
async fn item15_a_planted_segment_is_never_uploaded_to_the_object_lock_bucket() {
    use agenthost::audit::s3::{self, RetentionMode, S3Settings, S3Sink};
    let Some(config) = crate::common::aws::moto().await else { return };
    let client = aws_sdk_s3::Client::from_conf(
        aws_sdk_s3::config::Builder::from(&config).force_path_style(true).build(),
    );
    let bucket = format!("planted-{:08x}", rand::random::<u32>());
    s3::create_bucket(&client, &bucket).await.unwrap();
    let settings = S3Settings {
        bucket: bucket.clone(),
        prefix: "prod".into(),
        retention_mode: RetentionMode::Governance,
        retention_days: 1,
    };
    // A real stream, its segments sealed but (as after a crash) not uploaded.
    let (root, dir) = written(12);
    let real: Vec<String> = std::fs::read_dir(&dir)
        .unwrap()
        .filter_map(|e| e.unwrap().file_name().to_str().map(str::to_owned))
        .filter(|n| n.ends_with(".log"))
        .collect();
    // A planted segment: a chain of its own that ends in a "checkpoint"
    // whose signature no host key made.
    let mut planted = String::new();
    let mut prev = agenthost::audit::record::GENESIS.to_owned();
    for (seq, body) in [
        (900u64, r#"{"id":"x","kind":"approval","outcome":"approved","tenant":"acme","what":{}}"#.to_owned()),
        (
            901,
            format!(
                r#"{{"id":"y","kind":"checkpoint","what":{{"hash":"{prev}","key":"{}","reason":"seal","seq":900,"signature":"{}","stream":"host"}}}}"#,
                trail_key().id(),
                "00".repeat(64)
            ),
        ),
    ] {
        let hash = agenthost::audit::record::chain_hash(seq, &prev, body.as_bytes());
        planted.push_str(&format!("{hash} {seq} {prev} {body}\n"));
        prev = hash;
    }
    let planted_name = "seg-00000000000000000900-00000000.log";
    std::fs::write(dir.join(planted_name), planted).unwrap();

    let sink = S3Sink::new(client.clone(), settings, trail_key().public()).unwrap();
    let uploaded = sink.backfill("host", &dir, None, &trail_key().public()).await.unwrap();
    let _ = sink.flush().await;
    assert_eq!(uploaded, real.len(), "only the real segments are uploaded");
    let (streams, _, _) = s3::fetch(&client, &bucket, "prod").await.unwrap();
    let names: Vec<&str> = streams.iter().flat_map(|s| s.segments.iter().map(|(n, _)| n.as_str())).collect();
    assert!(!names.contains(&planted_name), "{names:?}");
    for name in &real {
        assert!(names.contains(&name.as_str()), "{name} missing from {names:?}");
    }
    drop(root);
}

#[test]
fn item13_the_head_counter_never_starts_over_and_erased_segments_show() {
    let (root, dir) = written(25);
    let head: Value = serde_json::from_slice(&std::fs::read(dir.join("HEAD.json")).unwrap()).unwrap();
    let before = head["counter"].as_u64().unwrap();
    // Erase the writer's HEAD (as an attacker who also deleted newer
    // segments would): the next writer says so in the chain, and goes on
    // counting from the checkpoints.
    std::fs::remove_file(dir.join("HEAD.json")).unwrap();
    let log = AuditLog::open(root.path(), options(), trail_key(), Vec::new()).unwrap();
    log.close().unwrap();
    let head: Value = serde_json::from_slice(&std::fs::read(dir.join("HEAD.json")).unwrap()).unwrap();
    assert!(head["counter"].as_u64().unwrap() > before, "{head} after {before}");
    let report = verify_root(root.path());
    let warnings = report.streams[0].warnings.join("\n");
    assert!(
        warnings.contains("HEAD.json is missing") && warnings.contains("may have been deleted"),
        "{warnings}"
    );
}

#[test]
fn item16_an_edited_stream_index_is_refused_not_re_signed() {
    let root = tempfile::tempdir().unwrap();
    for _ in 0..2 {
        let log = AuditLog::open(root.path(), options(), trail_key(), Vec::new()).unwrap();
        let other = AuditLog::open(root.path(), options(), trail_key(), Vec::new()).unwrap();
        log.close().unwrap();
        other.close().unwrap();
    }
    // Drop `host.1` from the index (and the directory): the edit breaks
    // the index's signature; verify says so, and no writer signs it anew.
    let index_path = root.path().join("STREAMS.json");
    let mut index: Value = serde_json::from_slice(&std::fs::read(&index_path).unwrap()).unwrap();
    index["streams"] = json!(["host"]);
    std::fs::write(&index_path, index.to_string()).unwrap();
    std::fs::remove_dir_all(root.path().join("host.1")).unwrap();
    let report = verify_root(root.path());
    assert!(
        report.streams.iter().any(|s| s
            .problem
            .as_ref()
            .is_some_and(|p| p.kind == agenthost::audit::ProblemKind::BadSignature)),
        "{report:#?}"
    );
    let err = AuditLog::open(root.path(), options(), trail_key(), Vec::new()).unwrap_err();
    assert!(err.to_string().contains("STREAMS.json does not verify"), "{err}");
    // Deleting the index altogether: the next writer lists what it finds,
    // and the trail says the index was rebuilt.
    std::fs::remove_file(&index_path).unwrap();
    let log = AuditLog::open(root.path(), options(), trail_key(), Vec::new()).unwrap();
    log.close().unwrap();
    let warnings: String = verify_root(root.path()).streams.iter().flat_map(|s| s.warnings.clone()).collect();
    assert!(warnings.contains("the stream index was rebuilt"), "{warnings}");
}

#[test]
fn item10_an_edited_approval_request_cannot_be_approved() {
    let dir = tempfile::tempdir().unwrap();
    let (config, data, wasm) = refund_config(dir.path());
    let key = |who: &str| config.join("keys").join(format!("{who}.key")).display().to_string();
    let input = r#"{"order_id":"ORD-5","amount_cents":999999,"currency":"EUR"}"#;
    let out =
        governed(&config, &data, &["run", &wasm, "--as", "carol", "--key", &key("carol"), "--input", input]);
    let err: Value = serde_json::from_slice(&out.stderr).unwrap();
    let id = err["error"]["approval_request"].as_str().unwrap().to_owned();
    let shown: Value =
        serde_json::from_slice(&governed(&config, &data, &["approvals", "show", &id]).stdout).unwrap();
    assert_eq!(shown["host_signed"], true, "{shown}");
    // The data-directory writer makes the preview look harmless.
    let file = data.join("approvals/requests").join(format!("{id}.json"));
    let text = std::fs::read_to_string(&file).unwrap().replace("999999", "1");
    std::fs::write(&file, text).unwrap();
    let out =
        governed(&config, &data, &["approvals", "approve", &id, "--as", "alice", "--key", &key("alice")]);
    assert_eq!(out.status.code(), Some(2));
    assert!(stderr_text(&out).contains("not approved"), "{}", stderr_text(&out));
}

#[test]
fn item23_a_flood_of_refused_requests_stays_bounded_in_memory_and_log() {
    let data = tempfile::tempdir().unwrap();
    let input = json!({"op": "http_flood", "authority": "example.com", "count": 30_000}).to_string();
    let out = probe_cli(data.path(), "warn", &input);
    assert!(out.status.success(), "{}", stderr_text(&out));
    let output: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(output["refused"], 30_000, "{output}");
    let lines = stderr_text(&out).lines().filter(|l| l.contains("egress denied")).count();
    assert!(lines <= 8, "{lines} log lines for 30000 refused requests");
}
