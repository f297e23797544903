//! The container image and the Kubernetes manifests, as far as they can be
//! checked without a container engine or a cluster: the Dockerfile has the
//! properties a platform team relies on, its health check is a command the
//! binary has, and every environment's host configuration loads and fits
//! the Deployment's stopping time. (`scripts/k8s-check.sh` renders the
//! overlays and validates them against the Kubernetes schemas and checkov.)

use std::path::{Path, PathBuf};
use std::process::Command;

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The Dockerfile's instructions, with continuation lines joined.
fn instructions() -> Vec<(String, String)> {
    let text = std::fs::read_to_string(repo().join("Dockerfile")).unwrap();
    let mut joined = String::new();
    for line in text.lines() {
        let line = line.trim();
        if line.starts_with('#') || line.is_empty() {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(head) => {
                joined.push_str(head);
                joined.push(' ');
            }
            None => {
                joined.push_str(line);
                joined.push('\n');
            }
        }
    }
    joined
        .lines()
        .map(|l| {
            let (op, rest) = l.split_once(' ').unwrap_or((l, ""));
            (op.to_ascii_uppercase(), rest.trim().to_owned())
        })
        .collect()
}

#[test]
fn the_image_builds_in_one_stage_and_runs_unprivileged_from_another() {
    let all = instructions();
    let stages: Vec<usize> =
        all.iter().enumerate().filter(|(_, (op, _))| op == "FROM").map(|(i, _)| i).collect();
    assert!(stages.len() >= 2, "a multi-stage build: {stages:?}");
    let (build, run) = (&all[stages[0]..stages[stages.len() - 1]], &all[stages[stages.len() - 1]..]);
    let has = |part: &[(String, String)], op: &str, needle: &str| {
        part.iter().any(|(o, rest)| o == op && rest.contains(needle))
    };
    assert!(has(build, "RUN", "rustup target add wasm32-wasip2"), "the build stage has the guest target");
    assert!(has(build, "RUN", "cargo build --locked --release -p agenthost"), "a locked release build");

    // The runtime base: distroless or slim, pinned to a release, never `latest`.
    let base = &run[0].1;
    assert!(base.contains("distroless") || base.contains("slim"), "runtime base: {base}");
    assert!(!base.contains(":latest") && base.contains(':'), "runtime base is pinned: {base}");
    // Nothing in the runtime stage runs or installs anything.
    assert!(!run.iter().any(|(op, _)| op == "RUN" || op == "ADD"), "the runtime stage only copies: {run:?}");

    // A numeric, non-root user, so Kubernetes' runAsNonRoot can check it.
    let user = run.iter().rev().find(|(op, _)| op == "USER").map(|(_, u)| u.clone()).expect("USER");
    let uid: u32 = user.split(':').next().unwrap().parse().expect("a numeric uid");
    assert_ne!(uid, 0, "root");

    assert!(has(run, "STOPSIGNAL", "SIGTERM"));
    assert!(has(run, "EXPOSE", "8080"));
    assert!(
        has(run, "ENV", "AGENTHOST_DATA_DIR=/var/lib/agenthost"),
        "the data directory is the one writable place"
    );
    assert!(has(run, "VOLUME", "/var/lib/agenthost"));
    assert!(has(run, "CMD", "\"serve\""));
}

#[test]
fn the_images_health_check_is_a_command_the_binary_has() {
    let all = instructions();
    let check = all.iter().find(|(op, _)| op == "HEALTHCHECK").map(|(_, r)| r.clone()).expect("HEALTHCHECK");
    assert!(check.contains("/healthz"), "{check}");
    // The exec form: the distroless base has no shell.
    let exec = check.split_once("CMD").expect("HEALTHCHECK … CMD").1.trim();
    let argv: Vec<String> = serde_json::from_str(exec).expect("CMD [\"…\"] (exec form)");
    assert_eq!(argv[0], "/usr/local/bin/agenthost");
    // The same arguments, against a port where nothing listens: the binary
    // knows the command and reports unhealthy with exit 1 (Docker reserves 2).
    let args: Vec<String> = argv[1..].iter().map(|a| a.replace("127.0.0.1:8080", "127.0.0.1:9")).collect();
    let out = Command::new(env!("CARGO_BIN_EXE_agenthost")).args(&args).output().unwrap();
    assert_eq!(out.status.code(), Some(1), "{}", String::from_utf8_lossy(&out.stderr));
    assert!(String::from_utf8_lossy(&out.stderr).contains("unhealthy"));
}

/// (environment, its host.toml)
fn environments() -> Vec<(String, PathBuf)> {
    let k8s = repo().join("deploy/k8s");
    let mut found = vec![("base".to_owned(), k8s.join("base/config/host.toml"))];
    for entry in std::fs::read_dir(k8s.join("overlays")).unwrap().flatten() {
        let file = entry.path().join("config/host.toml");
        if file.exists() {
            found.push((entry.file_name().to_string_lossy().into_owned(), file));
        }
    }
    found.sort();
    assert!(found.len() >= 3, "base, stg and prod configurations: {found:?}");
    found
}

/// A number after `key:` in a YAML file (the first one).
fn yaml_number(text: &str, key: &str) -> u64 {
    text.lines()
        .find_map(|l| l.trim().strip_prefix(key).and_then(|r| r.trim().parse().ok()))
        .unwrap_or_else(|| panic!("no `{key}` number"))
}

#[test]
fn every_environments_configuration_loads_as_the_container_mounts_it() {
    let base = repo().join("deploy/k8s/base/config");
    for (env, host_toml) in environments() {
        // The ConfigMap's files where the Deployment mounts them.
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir_all(dir.path().join("tenants")).unwrap();
        std::fs::copy(&host_toml, dir.path().join("host.toml")).unwrap();
        std::fs::copy(base.join("tenant-acme.toml"), dir.path().join("tenants/acme.toml")).unwrap();
        for key in ["issuer.pub", "publisher.pub"] {
            std::fs::copy(base.join(key), dir.path().join(key)).unwrap();
        }
        let governance = agenthost::governance::Governance::load(dir.path(), None, None)
            .unwrap_or_else(|e| panic!("{env}: {e}"));
        let settings = governance.settings();
        agenthost::server::Verifier::load(&settings.server.issuers, dir.path())
            .unwrap_or_else(|e| panic!("{env}: {e}"));
        assert!(!settings.server.issuers.is_empty(), "{env}: no issuer, every request would be 401");
        // Several replicas share state: nothing may live only in one pod.
        use agenthost::settings::{EventBackend, KeySource, MemoryBackend, RegistryBackend};
        assert_eq!(settings.memory.backend, MemoryBackend::Dynamodb, "{env}");
        assert_ne!(settings.events.backend, EventBackend::InProcess, "{env}");
        assert_eq!(settings.registry.backend, RegistryBackend::S3, "{env}");
        assert_eq!(settings.keys.source, KeySource::Secretsmanager, "{env}: every pod needs the same keys");
        assert!(settings.audit.s3.is_some(), "{env}: sealed segments must leave the pod");
        if env == "prod" {
            let s3 = settings.audit.s3.as_ref().unwrap();
            assert_eq!(s3.retention_mode, agenthost::settings::RetentionMode::Compliance);
            assert!(s3.retention_days >= 365);
        }
    }
}

#[test]
fn the_pods_stopping_time_covers_the_hosts_drain() {
    let deployment = std::fs::read_to_string(repo().join("deploy/k8s/base/deployment.yaml")).unwrap();
    let grace = yaml_number(&deployment, "terminationGracePeriodSeconds:");
    let pre_stop =
        deployment.split("preStop:").nth(1).map(|rest| yaml_number(rest, "seconds:")).expect("preStop");
    for (env, host_toml) in environments() {
        let settings: agenthost::governance::HostSettings =
            toml::from_str(&std::fs::read_to_string(&host_toml).unwrap()).unwrap();
        let drain_ms = pre_stop * 1000 + settings.server.shutdown_delay_ms + settings.server.drain_timeout_ms;
        assert!(
            grace * 1000 >= drain_ms + 3000,
            "{env}: terminationGracePeriodSeconds {grace} s does not cover preStop {pre_stop} s + shutdown delay + drain ({drain_ms} ms) with 3 s to spare"
        );
    }
}
