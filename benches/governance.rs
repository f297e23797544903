#![allow(clippy::expect_used)] // a bench that cannot set up has nothing to measure
//! `governance`: what policy costs.
//!
//! * `policy/cedar-decision`: one Cedar decision evaluated afresh (an agent
//!   invoking a write-high tool) against a realistic stack: the sample base
//!   pack plus a generated domain pack, 70 policies in all (per-tool guards,
//!   per-namespace write rules, tenant fences). Target: p50 ≤ 10 µs.
//! * `policy/repeated-decision`: the same query again, answered from the
//!   engine's cache of decisions taken (what the host's hot path pays).
//! * `governed_invoke/plain-wasmtime`: the calculator through plain
//!   wasmtime on the host's engine (as in the `invoke` bench).
//! * `governed_invoke/ungoverned`: the foundation's invoke path (the
//!   development tenant, the built-in permit-all policy, no manifest).
//! * `governed_invoke/governed-read`: a configured tenant with quotas, a
//!   manifest, and the 70-policy signed stack: the Cedar decision, the
//!   read-tier obligation, quota accounting, then the call. Target:
//!   ≤ 1.5× `ungoverned`.
//!
//! Run: `cargo bench -p agenthost-benches --bench governance`.

use std::fmt::Write as _;
use std::hint::black_box;
use std::path::Path;
use std::sync::Arc;

use agenthost::governance::manifest::Requests;
use agenthost::governance::packs::{self, LoadedPolicy};
use agenthost::governance::policy::{Action, EntityRef, Mode, Query, Value as PolicyValue};
use agenthost::governance::{ComponentManifest, Governance, Tier};
use agenthost::keys::{KeyPair, digest, write_key_pair};
use agenthost::{Host, HostConfig, Limits, LoadOptions};
use agenthost_benches::{PlainTool, runtime};
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::json;

/// A domain pack of generated, realistic rules in `dir`.
fn write_domain_pack(dir: &Path) {
    std::fs::create_dir_all(dir).expect("dir");
    std::fs::write(
        dir.join("pack.toml"),
        "name = \"bench-domain\"\nversion = \"1.0.0\"\nlayer = \"domain\"\n",
    )
    .expect("pack.toml");
    let mut cedar = String::new();
    for i in 0..30 {
        // Each tool: agents may not call it above write-low unless shallow.
        let _ = writeln!(
            cedar,
            "@id(\"tool-{i}-depth\")\nforbid(principal is AgentHost::Agent, action == AgentHost::Action::\"InvokeTool\", resource == AgentHost::Tool::\"acme/tool-{i}\") when {{ context.tier_rank > 1 && context.depth > 1 }};"
        );
    }
    for i in 0..20 {
        let _ = writeln!(
            cedar,
            "@id(\"ns-{i}-writes\")\nforbid(principal, action == AgentHost::Action::\"WriteMemory\", resource == AgentHost::MemoryNamespace::\"acme/ns-{i}\") when {{ context.classification == \"confidential\" }};"
        );
    }
    for i in 0..15 {
        let _ = writeln!(
            cedar,
            "@id(\"fence-{i}\")\nforbid(principal in AgentHost::Tenant::\"tenant-{i}\", action, resource in AgentHost::Tenant::\"acme\");"
        );
    }
    std::fs::write(dir.join("policies.cedar"), cedar).expect("policies.cedar");
}

struct Governed {
    _dir: tempfile::TempDir,
    policy: LoadedPolicy,
    config: std::path::PathBuf,
    data: std::path::PathBuf,
}

fn governed_setup() -> Governed {
    let dir = tempfile::tempdir().expect("temp dir");
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../policies");
    let domain = dir.path().join("domain");
    write_domain_pack(&domain);
    let config = dir.path().join("config");
    std::fs::create_dir_all(config.join("tenants")).expect("config");
    write_key_pair(&config.join("security")).expect("key");
    let key = KeyPair::read(&config.join("security.key")).expect("key");
    let stack = packs::stack_of(&[root.join("base"), domain]).expect("stack");
    let binding = packs::Binding { tenants: vec!["acme".into()], component_stacks: Vec::new() };
    let manifest = packs::resolve(&stack, Mode::Enforce, &binding, &key, 86_400).expect("resolve");
    let policy_path = config.join("policy.json");
    let text = serde_json::to_string(&manifest).expect("json");
    let pinned = digest(text.as_bytes());
    std::fs::write(&policy_path, &text).expect("write");
    std::fs::write(config.join("host.toml"), "trusted_keys = [\"security.pub\"]\n").expect("host.toml");
    std::fs::write(
        config.join("tenants/acme.toml"),
        format!("id = \"acme\"\npolicy = \"policy.json\"\npolicy_digest = \"{pinned}\"\n[quotas]\nconcurrent_invocations = 64\nfuel_per_minute = 1000000000000000\nhost_calls_per_minute = 1000000000\n[grants]\ntools = [\"*\"]\nmodels = [\"*\"]\n"),
    )
    .expect("tenant");
    let policy = LoadedPolicy::read(&policy_path, &pinned, &[key.public()]).expect("policy");
    let data = dir.path().join("data");
    Governed { _dir: dir, policy, config, data }
}

fn policy(c: &mut Criterion) {
    let setup = governed_setup();
    assert!(setup.policy.engine.len() >= 50, "a realistic pack has at least 50 policies");
    let query = Query {
        principal: EntityRef::new("Agent", "acme/refund-assistant"),
        action: Action::InvokeTool,
        resource: EntityRef::new("Tool", "acme/tool-7"),
        context: [
            ("tenant", PolicyValue::String("acme".into())),
            ("tier", PolicyValue::String("write-high".into())),
            ("tier_rank", PolicyValue::Long(2)),
            ("depth", PolicyValue::Long(1)),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v))
        .collect(),
    };
    let decision = setup.policy.engine.decide(&query).expect("decide");
    assert!(decision.allowed, "{decision:?}");
    let mut group = c.benchmark_group("policy");
    group.bench_function(format!("cedar-decision-{}-policies", setup.policy.engine.len()), |b| {
        b.iter(|| black_box(setup.policy.engine.decide_uncached(black_box(&query)).expect("decide")));
    });
    // What a repeated query (the same agent calling the same tool at the
    // same tier and depth) costs: a lookup of the decision already taken.
    group.bench_function("repeated-decision", |b| {
        b.iter(|| black_box(setup.policy.engine.decide(black_box(&query)).expect("decide")));
    });
    group.finish();
}

fn governed_invoke(c: &mut Criterion) {
    let rt = runtime();
    let bytes = std::fs::read(agenthost_artifacts::CALCULATOR).expect("calculator.wasm");
    let input = json!({ "expression": "12 * (3 + 4) - 5" });
    let input_text = input.to_string();
    let limits = Limits::default();

    let ungoverned = Host::new(HostConfig::default()).expect("host");
    let plain = PlainTool::new(ungoverned.engine(), &bytes);
    let plain_tool = rt.block_on(ungoverned.load(&bytes, LoadOptions::default())).expect("load");

    let setup = governed_setup();
    let governance = Governance::load(&setup.config, None, Some(&setup.data)).expect("governance");
    let governed = Host::new(HostConfig { governance: Some(Arc::new(governance)), ..HostConfig::default() })
        .expect("host");
    let manifest = ComponentManifest {
        name: "calculator".into(),
        version: "0.1.0".into(),
        digest: digest(&bytes),
        world: "tool".into(),
        risk_tier: Some(Tier::Read),
        policy: None,
        policy_digest: None,
        requests: Requests { interfaces: vec!["log".into()], ..Requests::default() },
        input_schema: None,
        signature: None,
    };
    let governed_tool = rt
        .block_on(governed.load(&bytes, LoadOptions { manifest: Some(manifest), ..LoadOptions::default() }))
        .expect("governed load");
    assert!(governed_tool.policy_source().contains("policy.json"));

    let mut group = c.benchmark_group("governed_invoke");
    group.bench_function("plain-wasmtime", |b| {
        b.iter(|| black_box(rt.block_on(plain.invoke(&input_text, limits.fuel))));
    });
    group.bench_function("ungoverned", |b| {
        b.iter(|| black_box(rt.block_on(ungoverned.invoke_tool(&plain_tool, &input)).expect("invoke")));
    });
    group.bench_function("governed-read", |b| {
        b.iter(|| black_box(rt.block_on(governed.invoke_tool(&governed_tool, &input)).expect("invoke")));
    });
    group.finish();
}

criterion_group!(benches, policy, governed_invoke);
criterion_main!(benches);
