//! `agenthost serve` as its clients see it: the real binary on 127.0.0.1,
//! called over HTTP by reqwest. Deploys, canaries, promotions and
//! rollbacks under load; refused deploys; the authentication matrix;
//! admission under a burst; a drain on SIGTERM.

use std::io::{BufRead as _, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdout, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use agenthost::keys::KeyPair;
use agenthost::registry::Publication;
use agenthost_artifacts as artifacts;
use base64::Engine as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

const ISSUER: &str = "agenthost-test";
/// The refund tool's manifest past its name, version and digest: write-high.
pub(crate) const REFUND_HEAD: &str = "world = \"tool\"\nrisk_tier = \"write-high\"\n[requests]\ninterfaces = [\"log\", \"memory\"]\nmemory_namespaces = [\"refunds\"]\n";

/// A server process with its own config and data directories.
pub(crate) struct Served {
    child: Child,
    stdout: BufReader<ChildStdout>,
    pub(crate) url: String,
    dir: tempfile::TempDir,
    issuer: KeyPair,
    publisher: KeyPair,
    /// Approvers of tenant acme, by name.
    pub(crate) approvers: Vec<(String, KeyPair)>,
    pub(crate) http: reqwest::Client,
}

impl Served {
    pub(crate) fn start(server_settings: &str) -> Served {
        Served::start_with("", server_settings)
    }

    /// With `host_settings` (sections of host.toml) before `[server]`.
    pub(crate) fn start_with(host_settings: &str, server_settings: &str) -> Served {
        Served::start_granting(
            host_settings,
            server_settings,
            "memory_namespaces = [\"refunds\", \"events\"]\ntopics = [\"orders.*\"]\ntools = [\"versioned\"]\n",
        )
    }

    /// With these `[grants]` (the lines of the table) for tenant acme.
    pub(crate) fn start_granting(host_settings: &str, server_settings: &str, acme_grants: &str) -> Served {
        let dir = tempfile::tempdir().unwrap();
        let config = dir.path().join("config");
        std::fs::create_dir_all(config.join("tenants")).unwrap();
        let issuer = KeyPair::generate();
        let publisher = KeyPair::generate();
        std::fs::write(config.join("issuer.pub"), issuer.public().pem().unwrap()).unwrap();
        std::fs::write(config.join("publisher.pub"), publisher.public().pem().unwrap()).unwrap();
        let approvers: Vec<(String, KeyPair)> =
            ["alice", "bob"].iter().map(|name| (name.to_string(), KeyPair::generate())).collect();
        for (name, key) in &approvers {
            std::fs::write(config.join(format!("{name}.pub")), key.public().pem().unwrap()).unwrap();
        }
        std::fs::write(
            config.join("host.toml"),
            format!(
                "default_tenant = \"acme\"\n{host_settings}[server]\n{server_settings}\n[[server.issuers]]\nissuer = \"{ISSUER}\"\nkeys = [\"issuer.pub\"]\nleeway_secs = 0\n"
            ),
        )
        .unwrap();
        std::fs::write(
            config.join("tenants/acme.toml"),
            format!("id = \"acme\"\n[grants]\n{acme_grants}[publishers]\nci = \"publisher.pub\"\n[approvers]\nalice = \"alice.pub\"\nbob = \"bob.pub\"\n"),
        )
        .unwrap();
        std::fs::write(
            config.join("tenants/globex.toml"),
            "id = \"globex\"\n[publishers]\nci = \"publisher.pub\"\n",
        )
        .unwrap();
        let data = dir.path().join("data");
        std::fs::create_dir_all(&data).unwrap();
        let (child, stdout, url) = spawn(&config, &data);
        Served { child, stdout, url, dir, issuer, publisher, approvers, http: reqwest::Client::new() }
    }

    pub(crate) fn config(&self) -> PathBuf {
        self.dir.path().join("config")
    }

    pub(crate) fn data(&self) -> PathBuf {
        self.dir.path().join("data")
    }

    /// Stops the process (SIGKILL) and starts another on the same directories.
    fn restart(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        let (child, stdout, url) = spawn(&self.config(), &self.data());
        (self.child, self.stdout, self.url) = (child, stdout, url);
    }

    pub(crate) fn token(&self, sub: &str, tenants: &[&str], roles: &[&str]) -> String {
        self.token_with(&self.issuer, ISSUER, sub, tenants, roles, 3600)
    }

    fn token_with(
        &self,
        key: &KeyPair,
        iss: &str,
        sub: &str,
        tenants: &[&str],
        roles: &[&str],
        ttl: i64,
    ) -> String {
        let now = agenthost::governance::approvals::now_secs() as i64;
        let claims = json!({
            "iss": iss, "aud": "agenthost", "sub": sub, "tenants": tenants, "roles": roles,
            "iat": now, "exp": now + ttl,
        });
        let pem = key.private_pem().unwrap();
        let encoding = jsonwebtoken::EncodingKey::from_ed_pem(pem.as_bytes()).unwrap();
        jsonwebtoken::encode(&jsonwebtoken::Header::new(jsonwebtoken::Algorithm::EdDSA), &claims, &encoding)
            .unwrap()
    }

    /// Polls an async run (`location`) as `token` until it is no longer
    /// running (or 10 s passed); every poll must find it.
    pub(crate) async fn poll_run(&self, location: &str, token: &str) -> Value {
        let mut run = Value::Null;
        for _ in 0..200 {
            let (status, body) = self.send(reqwest::Method::GET, location, Some(token), None).await;
            assert_eq!(status, StatusCode::OK, "{body}");
            run = body;
            if run["status"] != "running" {
                break;
            }
            tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        }
        run
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("{}{path}", self.url)
    }

    pub(crate) async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> (StatusCode, Value) {
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        let text = response.text().await.unwrap();
        (status, serde_json::from_str(&text).unwrap_or(Value::String(text)))
    }

    /// A deploy body for `wasm`, signed by `key` for tenant `tenant`.
    fn deploy_body(&self, wasm: &[u8], version: &str, tenant: &str, key: &KeyPair) -> Value {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(wasm)));
        let manifest = manifest("versioned", version, &digest);
        self.signed_body(wasm, &manifest, version, tenant, key)
    }

    /// A deploy body for `wasm` with `manifest`, its signature over both.
    fn signed_body(&self, wasm: &[u8], manifest: &str, version: &str, tenant: &str, key: &KeyPair) -> Value {
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(wasm)));
        let manifest_digest = agenthost::registry::manifest_digest(manifest);
        let signature = Publication {
            tenant,
            name: "versioned",
            version,
            digest: &digest,
            manifest_digest: &manifest_digest,
        }
        .sign(key);
        json!({
            "wasm": base64::engine::general_purpose::STANDARD.encode(wasm),
            "manifest": manifest,
            "signature": signature,
        })
    }

    /// Deploys any component with the manifest `head` (name, version and
    /// digest are added), signed by the tenant's publisher, and makes it stable.
    pub(crate) async fn publish_stable(
        &self,
        token: &str,
        wasm_path: &str,
        name: &str,
        version: &str,
        head: &str,
    ) {
        let wasm = std::fs::read(wasm_path).unwrap();
        let digest = format!("sha256:{}", hex::encode(Sha256::digest(&wasm)));
        let manifest = format!("name = \"{name}\"\nversion = \"{version}\"\ndigest = \"{digest}\"\n{head}");
        let manifest_digest = agenthost::registry::manifest_digest(&manifest);
        let signature =
            Publication { tenant: "acme", name, version, digest: &digest, manifest_digest: &manifest_digest }
                .sign(&self.publisher);
        let body = json!({ "wasm": base64::engine::general_purpose::STANDARD.encode(&wasm), "manifest": manifest, "signature": signature });
        let (status, answer) =
            self.send(reqwest::Method::POST, "/v1/tenants/acme/components", Some(token), Some(body)).await;
        assert_eq!(status, StatusCode::CREATED, "{answer}");
        let path = format!("/v1/tenants/acme/components/{name}/aliases/stable");
        let (status, answer) =
            self.send(reqwest::Method::PUT, &path, Some(token), Some(json!({ "version": version }))).await;
        assert_eq!(status, StatusCode::OK, "{answer}");
    }

    pub(crate) async fn deploy(&self, token: &str, wasm_path: &str, version: &str) -> (StatusCode, Value) {
        let body = self.deploy_body(&std::fs::read(wasm_path).unwrap(), version, "acme", &self.publisher);
        self.send(reqwest::Method::POST, "/v1/tenants/acme/components", Some(token), Some(body)).await
    }

    pub(crate) async fn alias(
        &self,
        token: &str,
        alias: &str,
        version: &str,
        weight: Option<u8>,
    ) -> (StatusCode, Value) {
        let path = format!("/v1/tenants/acme/components/versioned/aliases/{alias}");
        self.send(
            reqwest::Method::PUT,
            &path,
            Some(token),
            Some(json!({ "version": version, "weight": weight })),
        )
        .await
    }

    pub(crate) async fn invoke(
        &self,
        token: &str,
        session: Option<&str>,
        input: Value,
    ) -> (StatusCode, Value) {
        let mut request = self
            .http
            .post(self.url("/v1/tenants/acme/tools/versioned:invoke"))
            .bearer_auth(token)
            .json(&json!({ "input": input }));
        if let Some(session) = session {
            request = request.header("agenthost-session", session);
        }
        let response = request.send().await.unwrap();
        let status = response.status();
        (status, response.json().await.unwrap_or(Value::Null))
    }

    /// SIGTERM; the exit status and what the process printed after.
    fn terminate(&mut self) -> (std::process::ExitStatus, String) {
        self.signal();
        self.wait_exit()
    }

    fn signal(&self) {
        let status = Command::new("kill").arg("-TERM").arg(self.child.id().to_string()).status().unwrap();
        assert!(status.success());
    }

    /// Waits for the process to end; its status and what it printed last.
    fn wait_exit(&mut self) -> (std::process::ExitStatus, String) {
        let mut rest = String::new();
        let mut line = String::new();
        while self.stdout.read_line(&mut line).unwrap_or(0) > 0 {
            rest.push_str(&line);
            line.clear();
        }
        (self.child.wait().unwrap(), rest)
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub(crate) fn spawn(config: &Path, data: &Path) -> (Child, BufReader<ChildStdout>, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .args(["serve", "--listen", "127.0.0.1:0"])
        .env("AGENTHOST_CONFIG", config)
        .env("AGENTHOST_DATA_DIR", data)
        .env_remove("AGENTHOST_KEY_DIR")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut stdout = BufReader::new(child.stdout.take().unwrap());
    let mut line = String::new();
    stdout.read_line(&mut line).unwrap();
    let ready: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("serve printed {line:?}: {e}"));
    let url = ready["listening"].as_str().unwrap().to_owned();
    (child, stdout, url)
}

fn manifest(name: &str, version: &str, digest: &str) -> String {
    format!(
        "name = \"{name}\"\nversion = \"{version}\"\ndigest = \"{digest}\"\nworld = \"tool\"\nrisk_tier = \"read\"\n"
    )
}

fn version_of(body: &Value) -> String {
    let served = body["output"]["version"].as_str().unwrap_or_default().to_owned();
    assert_eq!(served, body["component"]["version"].as_str().unwrap_or_default(), "{body}");
    served
}

#[tokio::test(flavor = "multi_thread")]
async fn versions_deploy_canary_promote_and_roll_back_under_load_without_a_failed_call() {
    let served = Arc::new(Served::start(""));
    let deployer = served.token("dana", &["acme"], &["deployer"]);
    let user = served.token("ursula", &["acme"], &["tenant-user"]);

    let (status, body) = served.deploy(&deployer, artifacts::VERSIONED_1_0_0, "1.0.0").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    assert_eq!(body["deployed_by"], "dana");
    assert_eq!(body["publisher"], "ci");
    let (status, body) = served.alias(&deployer, "stable", "1.0.0", None).await;
    assert_eq!(status, StatusCode::OK, "{body}");

    // Clients keep calling through every change below.
    let stop = Arc::new(AtomicBool::new(false));
    let calls = Arc::new(AtomicUsize::new(0));
    let mut clients = Vec::new();
    for c in 0..4 {
        let (served, stop, calls, user) = (served.clone(), stop.clone(), calls.clone(), user.clone());
        clients.push(tokio::spawn(async move {
            let mut i = 0;
            while !stop.load(Ordering::Relaxed) {
                let (status, body) = served.invoke(&user, Some(&format!("client-{c}-{i}")), json!({})).await;
                assert_eq!(status, StatusCode::OK, "a call failed during the rollout: {body}");
                version_of(&body);
                calls.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }

    let (status, body) = served.deploy(&deployer, artifacts::VERSIONED_1_1_0, "1.1.0").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, body) = served.alias(&deployer, "canary", "1.1.0", Some(10)).await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["aliases"]["canary"], json!({ "version": "1.1.0", "weight": 10 }));

    // The canary's share over 2000 sessions, and each session stays put.
    let mut canary = 0;
    for i in 0..2000 {
        let session = format!("session-{i}");
        let (status, body) = served.invoke(&user, Some(&session), json!({})).await;
        assert_eq!(status, StatusCode::OK, "{body}");
        let version = version_of(&body);
        if version == "1.1.0" {
            canary += 1;
            assert_eq!(body["alias"], "canary");
        }
        if i % 200 == 0 {
            let (_, again) = served.invoke(&user, Some(&session), json!({})).await;
            assert_eq!(version_of(&again), version, "session {session} moved between versions");
        }
    }
    assert!((140..=260).contains(&canary), "a 10% canary took {canary} of 2000 sessions (tolerance 7%..13%)");

    let (status, body) = served
        .send(reqwest::Method::POST, "/v1/tenants/acme/components/versioned:promote", Some(&deployer), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["aliases"]["stable"], "1.1.0");
    for i in 0..20 {
        let (_, body) = served.invoke(&user, Some(&format!("after-promote-{i}")), json!({})).await;
        assert_eq!(version_of(&body), "1.1.0");
    }

    let (status, body) = served.deploy(&deployer, artifacts::VERSIONED_2_0_0, "2.0.0").await;
    assert_eq!(status, StatusCode::CREATED, "{body}");
    let (status, _) = served.alias(&deployer, "stable", "2.0.0", None).await;
    assert_eq!(status, StatusCode::OK);
    let (_, body) = served.invoke(&user, None, json!({})).await;
    assert_eq!(version_of(&body), "2.0.0", "the new stable serves from the next call");

    let (status, body) = served
        .send(reqwest::Method::POST, "/v1/tenants/acme/components/versioned:rollback", Some(&deployer), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    assert_eq!(body["aliases"]["stable"], "1.1.0");
    let (_, body) = served.invoke(&user, None, json!({})).await;
    assert_eq!(version_of(&body), "1.1.0", "a rollback serves the previous stable from the next call");

    stop.store(true, Ordering::Relaxed);
    for client in clients {
        client.await.unwrap();
    }
    assert!(calls.load(Ordering::Relaxed) > 20, "the clients hardly ran");

    let (status, body) = served
        .send(reqwest::Method::GET, "/v1/tenants/acme/components/versioned/versions", Some(&deployer), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{body}");
    let versions: Vec<&str> =
        body["versions"].as_array().unwrap().iter().map(|v| v["version"].as_str().unwrap()).collect();
    assert_eq!(versions, ["1.0.0", "1.1.0", "2.0.0"]);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_promotion_through_one_host_reaches_agents_tool_calls_on_another() {
    let served = Served::start("");
    let deployer = served.token("dana", &["acme"], &["deployer"]);
    let user = served.token("ursula", &["acme"], &["tenant-user"]);
    assert_eq!(served.deploy(&deployer, artifacts::VERSIONED_1_0_0, "1.0.0").await.0, StatusCode::CREATED);
    assert_eq!(served.alias(&deployer, "stable", "1.0.0", None).await.0, StatusCode::OK);
    served
        .publish_stable(
            &deployer,
            artifacts::HOSTILE_PROBE,
            "hostile-probe",
            "0.1.0",
            "world = \"agent\"\n[requests]\ninterfaces = [\"log\", \"tools\"]\ntools = [\"versioned\"]\n",
        )
        .await;
    // A second host with the same config and registry (the local registry
    // shared as S3 would be), its own data otherwise.
    let second = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(served.data().join("registry"), second.path().join("registry")).unwrap();
    let (mut child, _stdout, other) = spawn(&served.config(), second.path());
    let run = |token: String| {
        let (http, url) = (served.http.clone(), format!("{other}/v1/tenants/acme/agents/hostile-probe:run"));
        async move {
            let input = json!({ "input": { "op": "invoke_tool", "name": "versioned", "input": {} } });
            let answer: Value =
                http.post(url).bearer_auth(token).json(&input).send().await.unwrap().json().await.unwrap();
            assert_eq!(answer["output"]["ok"], true, "{answer}");
            answer["output"]["output"]["version"].as_str().unwrap_or_default().to_owned()
        }
    };
    assert_eq!(run(user.clone()).await, "1.0.0");

    // Deployed and promoted through the first host only; nobody calls the
    // tool directly on the second.
    assert_eq!(served.deploy(&deployer, artifacts::VERSIONED_2_0_0, "2.0.0").await.0, StatusCode::CREATED);
    assert_eq!(served.alias(&deployer, "stable", "2.0.0", None).await.0, StatusCode::OK);
    let mut seen = String::new();
    for _ in 0..100 {
        seen = run(user.clone()).await;
        if seen == "2.0.0" {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(seen, "2.0.0", "the second host's agents still reach the old stable");
}

#[tokio::test(flavor = "multi_thread")]
async fn refused_deploys_leave_the_running_version_untouched() {
    let mut served = Served::start("");
    let deployer = served.token("dana", &["acme"], &["deployer"]);
    let user = served.token("ursula", &["acme"], &["tenant-user"]);
    assert_eq!(served.deploy(&deployer, artifacts::VERSIONED_1_0_0, "1.0.0").await.0, StatusCode::CREATED);
    assert_eq!(served.alias(&deployer, "stable", "1.0.0", None).await.0, StatusCode::OK);
    let still_serving = |body: &Value| assert_eq!(version_of(body), "1.0.0");

    let v2 = std::fs::read(artifacts::VERSIONED_2_0_0).unwrap();
    let path = "/v1/tenants/acme/components";
    // Signed by a key the tenant does not list.
    let stranger = KeyPair::generate();
    let body = served.deploy_body(&v2, "2.0.0", "acme", &stranger);
    let (status, problem) = served.send(reqwest::Method::POST, path, Some(&deployer), Some(body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("not a publisher of tenant `acme`"), "{problem}");

    // A signature made for other bytes (1.1.0's), sent with 2.0.0's.
    let mut body = served.deploy_body(&v2, "2.0.0", "acme", &served.publisher);
    let v11 = std::fs::read(artifacts::VERSIONED_1_1_0).unwrap();
    body["signature"] = served.deploy_body(&v11, "2.0.0", "acme", &served.publisher)["signature"].clone();
    let (status, problem) = served.send(reqwest::Method::POST, path, Some(&deployer), Some(body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("does not verify"), "{problem}");

    // A signature made for another tenant.
    let body = served.deploy_body(&v2, "2.0.0", "globex", &served.publisher);
    let (status, problem) = served.send(reqwest::Method::POST, path, Some(&deployer), Some(body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");

    // A manifest for other bytes, signed over the bytes sent.
    let other = manifest("versioned", "2.0.0", &format!("sha256:{}", hex::encode(Sha256::digest(&v11))));
    let body = served.signed_body(&v2, &other, "2.0.0", "acme", &served.publisher);
    let (status, problem) = served.send(reqwest::Method::POST, path, Some(&deployer), Some(body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("the manifest is for"), "{problem}");

    // Signed bytes re-sent with a manifest of the sender's own (a laxer
    // schema, a lower tier, more requests): the signature covers the manifest.
    let mut body = served.deploy_body(&v2, "2.0.0", "acme", &served.publisher);
    let v2_digest = format!("sha256:{}", hex::encode(Sha256::digest(&v2)));
    body["manifest"] = json!(format!(
        "{}[requests]\ninterfaces = [\"log\", \"memory\", \"events\"]\n",
        manifest("versioned", "2.0.0", &v2_digest)
    ));
    let (status, problem) = served.send(reqwest::Method::POST, path, Some(&deployer), Some(body)).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("does not verify"), "{problem}");

    // The running version again, properly signed, with another manifest
    // (a higher tier): versions are immutable, so it is refused.
    let v1 = std::fs::read(artifacts::VERSIONED_1_0_0).unwrap();
    let v1_digest = format!("sha256:{}", hex::encode(Sha256::digest(&v1)));
    let other = manifest("versioned", "1.0.0", &v1_digest).replace("\"read\"", "\"write-low\"");
    let body = served.signed_body(&v1, &other, "1.0.0", "acme", &served.publisher);
    let (status, problem) = served.send(reqwest::Method::POST, path, Some(&deployer), Some(body)).await;
    assert_eq!(status, StatusCode::CONFLICT, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("another manifest"), "{problem}");
    // The same version and manifest again is no change.
    assert_eq!(served.deploy(&deployer, artifacts::VERSIONED_1_0_0, "1.0.0").await.0, StatusCode::CREATED);
    still_serving(&served.invoke(&user, None, json!({})).await.1);

    // Unsigned: the body's shape says what is missing.
    let mut body = served.deploy_body(&v2, "2.0.0", "acme", &served.publisher);
    body.as_object_mut().unwrap().remove("signature");
    let (status, problem) = served.send(reqwest::Method::POST, path, Some(&deployer), Some(body)).await;
    assert_eq!(status, StatusCode::BAD_REQUEST, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("signature"), "{problem}");

    // Not a component at all, properly signed: stored, but an alias cannot point at it.
    let junk = b"\0asm\x01\0\0\0 not really".to_vec();
    let body = served.deploy_body(&junk, "9.9.9", "acme", &served.publisher);
    let (status, problem) = served.send(reqwest::Method::POST, path, Some(&deployer), Some(body)).await;
    assert_eq!(status, StatusCode::CREATED, "{problem}");
    let (status, problem) = served.alias(&deployer, "stable", "9.9.9", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert_eq!(problem["kind"], "load-failed", "{problem}");
    still_serving(&served.invoke(&user, None, json!({})).await.1);

    // A version's stored bytes altered on disk: refused on the next load.
    let (status, _) = served
        .send(
            reqwest::Method::POST,
            path,
            Some(&deployer),
            Some(served.deploy_body(&v2, "2.0.0", "acme", &served.publisher)),
        )
        .await;
    assert_eq!(status, StatusCode::CREATED);
    let blob =
        served.data().join("registry/acme/blobs").join(format!("{}.wasm", hex::encode(Sha256::digest(&v2))));
    std::fs::write(&blob, &v11).unwrap();
    served.restart();
    let (status, problem) = served.alias(&deployer, "stable", "2.0.0", None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert!(problem["detail"].as_str().unwrap().contains("the store was altered"), "{problem}");

    // The precompiled artifact of the running version altered: refused by
    // its check, recompiled from the signed bytes, still serving.
    let v1_hex = hex::encode(Sha256::digest(std::fs::read(artifacts::VERSIONED_1_0_0).unwrap()));
    let mut tampered = 0;
    for dir in std::fs::read_dir(served.data().join("cache")).unwrap().flatten() {
        let file = dir.path().join(format!("{v1_hex}.cwasm"));
        if let Ok(mut bytes) = std::fs::read(&file) {
            let middle = bytes.len() / 2;
            bytes[middle] ^= 0xff;
            std::fs::write(&file, bytes).unwrap();
            tampered += 1;
        }
    }
    assert!(tampered > 0, "no precompiled artifact of 1.0.0 to tamper with");
    served.restart();
    still_serving(&served.invoke(&user, None, json!({})).await.1);
    let (_, versions) = served
        .send(reqwest::Method::GET, "/v1/tenants/acme/components/versioned/versions", Some(&deployer), None)
        .await;
    assert_eq!(versions["aliases"]["stable"], "1.0.0", "{versions}");
    let (exit, _) = tokio::task::block_in_place(|| served.terminate());
    assert!(exit.success());
    let out = Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .args(["audit", "query", "--kind", "deploy"])
        .env("AGENTHOST_CONFIG", served.config())
        .env("AGENTHOST_DATA_DIR", served.data())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("Recompiled"), "the tampered artifact was not noticed: {text}");
    assert!(text.contains("\"outcome\":\"refused\""), "refused deploys leave no record: {text}");
}

/// (family, method, path, body, the role that may, a role that may not)
type Route<'a> = (&'a str, reqwest::Method, &'a str, Option<Value>, &'a str, &'a str);

#[tokio::test(flavor = "multi_thread")]
async fn every_route_family_refuses_bad_tokens_with_401_and_the_wrong_role_or_tenant_with_403() {
    let served = Served::start("");
    let deployer = served.token("dana", &["acme"], &["deployer"]);
    assert_eq!(served.deploy(&deployer, artifacts::VERSIONED_1_0_0, "1.0.0").await.0, StatusCode::CREATED);
    assert_eq!(served.alias(&deployer, "stable", "1.0.0", None).await.0, StatusCode::OK);

    let stranger = KeyPair::generate();
    let bad_tokens = [
        ("no token", None),
        (
            "expired",
            Some(served.token_with(&served.issuer, ISSUER, "ursula", &["acme"], &["tenant-user"], -120)),
        ),
        (
            "wrong issuer",
            Some(served.token_with(
                &served.issuer,
                "someone-else",
                "ursula",
                &["acme"],
                &["tenant-user"],
                600,
            )),
        ),
        (
            "bad signature",
            Some(served.token_with(&stranger, ISSUER, "ursula", &["acme"], &["tenant-user"], 600)),
        ),
        ("garbage", Some("not.a.jwt".to_owned())),
    ];
    let v = std::fs::read(artifacts::VERSIONED_1_1_0).unwrap();
    let deploy = served.deploy_body(&v, "1.1.0", "acme", &served.publisher);
    // (family, method, path, body, the role that may, the role that may not)
    let routes: Vec<Route> = vec![
        (
            "data",
            reqwest::Method::POST,
            "/v1/tenants/{t}/tools/versioned:invoke",
            Some(json!({ "input": {} })),
            "tenant-user",
            "deployer",
        ),
        (
            "deploy",
            reqwest::Method::POST,
            "/v1/tenants/{t}/components",
            Some(deploy),
            "deployer",
            "tenant-user",
        ),
        (
            "aliases",
            reqwest::Method::PUT,
            "/v1/tenants/{t}/components/versioned/aliases/stable",
            Some(json!({ "version": "1.0.0" })),
            "deployer",
            "tenant-user",
        ),
        (
            "versions",
            reqwest::Method::GET,
            "/v1/tenants/{t}/components/versioned/versions",
            None,
            "deployer",
            "tenant-user",
        ),
        ("tenants", reqwest::Method::GET, "/v1/tenants/{t}", None, "operator", "deployer"),
        ("metrics", reqwest::Method::GET, "/metrics", None, "operator", "tenant-user"),
        ("approvals", reqwest::Method::GET, "/v1/tenants/{t}/approvals", None, "approver", "deployer"),
        ("audit", reqwest::Method::GET, "/v1/tenants/{t}/audit?kind=deploy", None, "auditor", "operator"),
    ];
    for (family, method, path, body, may, may_not) in &routes {
        let acme = path.replace("{t}", "acme");
        for (what, token) in &bad_tokens {
            let (status, problem) = served.send(method.clone(), &acme, token.as_deref(), body.clone()).await;
            assert_eq!(status, StatusCode::UNAUTHORIZED, "{family} with {what}: {problem}");
            assert_eq!(problem["kind"], "unauthorized");
        }
        let wrong_role = served.token("mallory", &["acme"], &[may_not]);
        let (status, problem) = served.send(method.clone(), &acme, Some(&wrong_role), body.clone()).await;
        assert_eq!(status, StatusCode::FORBIDDEN, "{family} as {may_not}: {problem}");
        if path.contains("{t}") {
            // Another tenant's existing resource and a tenant that does not
            // exist get the same answer.
            let other = served.token("mallory", &["globex"], &[may]);
            let (s1, p1) = served.send(method.clone(), &acme, Some(&other), body.clone()).await;
            let (s2, p2) =
                served.send(method.clone(), &path.replace("{t}", "nobody"), Some(&other), body.clone()).await;
            assert_eq!((s1, s2), (StatusCode::FORBIDDEN, StatusCode::FORBIDDEN), "{family}: {p1} / {p2}");
            assert_eq!(p1["kind"], p2["kind"]);
            assert_eq!(
                p1["detail"].as_str().unwrap().replace("acme", "X"),
                p2["detail"].as_str().unwrap().replace("nobody", "X"),
                "{family}: the answers differ"
            );
        }
        // The host's metrics name every tenant: an operator of all of them only.
        let tenants: &[&str] = if *family == "metrics" { &["*"] } else { &["acme"] };
        if *family == "metrics" {
            let one_tenant = served.token("ok", &["acme"], &[may]);
            let (status, _) = served.send(method.clone(), &acme, Some(&one_tenant), body.clone()).await;
            assert_eq!(
                status,
                StatusCode::FORBIDDEN,
                "an operator of one tenant read every tenant's metrics"
            );
        }
        let allowed = served.token("ok", tenants, &[may]);
        let (status, problem) = served.send(method.clone(), &acme, Some(&allowed), body.clone()).await;
        assert!(status.is_success(), "{family} as {may}: {status} {problem}");
    }

    // What audit records say about who did what, as an auditor reads them.
    let auditor = served.token("audrey", &["acme"], &["auditor"]);
    let (status, answer) = served
        .send(reqwest::Method::GET, "/v1/tenants/acme/audit?kind=deploy&since=1h", Some(&auditor), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let records = answer["records"].as_array().unwrap();
    assert!(
        records.iter().all(|r| r["record"]["tenant"] == "acme" && r["record"]["kind"] == "deploy"),
        "{answer}"
    );
    assert!(records.iter().any(|r| r["record"]["principal"] == "dana"), "{answer}");
    let (status, _) = served
        .send(reqwest::Method::GET, "/v1/tenants/acme/audit?kind=deploy&bogus=1", Some(&auditor), None)
        .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let mut served = served;
    let (exit, _) = tokio::task::block_in_place(|| served.terminate());
    assert!(exit.success());
    let out = Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .args(["audit", "query", "--kind", "deploy"])
        .env("AGENTHOST_CONFIG", served.config())
        .env("AGENTHOST_DATA_DIR", served.data())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let records: Vec<Value> = text.lines().filter_map(|l| serde_json::from_str(l).ok()).collect();
    assert!(
        records.iter().any(|r| r["record"]["principal"] == "dana" && r["record"]["outcome"] == "deployed"),
        "{text}"
    );
    let out = Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .args(["audit", "query", "--kind", "tool_call"])
        .env("AGENTHOST_CONFIG", served.config())
        .env("AGENTHOST_DATA_DIR", served.data())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(
        text.lines()
            .filter_map(|l| serde_json::from_str::<Value>(l).ok())
            .any(|r| r["record"]["principal"] == "ok"),
        "{text}"
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_burst_beyond_admission_gets_429_with_retry_after_and_every_admitted_call_succeeds() {
    let served = Arc::new(Served::start("max_in_flight = 3\ntenant_in_flight = 2\nretry_after_secs = 2"));
    let deployer = served.token("dana", &["acme"], &["deployer"]);
    let user = served.token("ursula", &["acme"], &["tenant-user"]);
    assert_eq!(served.deploy(&deployer, artifacts::VERSIONED_1_0_0, "1.0.0").await.0, StatusCode::CREATED);
    assert_eq!(served.alias(&deployer, "stable", "1.0.0", None).await.0, StatusCode::OK);

    let mut burst = Vec::new();
    for _ in 0..12 {
        let (served, user) = (served.clone(), user.clone());
        burst.push(tokio::spawn(async move {
            let response = served
                .http
                .post(served.url("/v1/tenants/acme/tools/versioned:invoke"))
                .bearer_auth(&user)
                .json(&json!({ "input": { "sleep_ms": 400 } }))
                .send()
                .await
                .unwrap();
            let status = response.status();
            let retry = response.headers().get("retry-after").map(|v| v.to_str().unwrap().to_owned());
            let body: Value = response.json().await.unwrap();
            (status, retry, body)
        }));
    }
    let (mut ok, mut refused) = (0, 0);
    for call in burst {
        let (status, retry, body) = call.await.unwrap();
        match status {
            StatusCode::OK => {
                assert_eq!(version_of(&body), "1.0.0");
                ok += 1;
            }
            StatusCode::TOO_MANY_REQUESTS => {
                assert_eq!(retry.as_deref(), Some("2"));
                assert_eq!(body["kind"], "overloaded");
                assert!(body["detail"].as_str().unwrap().contains("tenant_in_flight"), "{body}");
                refused += 1;
            }
            other => panic!("a burst call got {other}: {body}"),
        }
    }
    assert!(ok >= 2 && refused >= 1, "{ok} admitted, {refused} refused");
    assert_eq!(ok + refused, 12);
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_drains_calls_in_flight_and_closes_a_trail_that_verifies() {
    let mut served = Served::start("drain_timeout_ms = 10000\nshutdown_delay_ms = 700");
    let deployer = served.token("dana", &["acme"], &["deployer"]);
    let user = served.token("ursula", &["acme"], &["tenant-user"]);
    assert_eq!(served.deploy(&deployer, artifacts::VERSIONED_1_0_0, "1.0.0").await.0, StatusCode::CREATED);
    assert_eq!(served.alias(&deployer, "stable", "1.0.0", None).await.0, StatusCode::OK);

    // The API describes itself, without a token.
    let (status, doc) = served.send(reqwest::Method::GET, "/openapi.json", None, None).await;
    assert_eq!(status, StatusCode::OK);
    assert!(doc["paths"]["/v1/tenants/{tenant}/tools/{name}:invoke"]["post"].is_object(), "{doc}");
    let (status, problem) = served.send(reqwest::Method::GET, "/v1/nothing-here", None, None).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(problem["kind"], "not-found");

    let url = served.url("/v1/tenants/acme/tools/versioned:invoke");
    let mut slow = Vec::new();
    for _ in 0..2 {
        let (url, user) = (url.clone(), user.clone());
        slow.push(tokio::spawn(async move {
            reqwest::Client::new()
                .post(url)
                .bearer_auth(user)
                .json(&json!({ "input": { "sleep_ms": 1500 } }))
                .send()
                .await
                .map(|r| r.status())
        }));
    }
    tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    served.signal();
    // During the shutdown delay: still serving, but no longer ready.
    tokio::time::sleep(std::time::Duration::from_millis(150)).await;
    let (status, ready) = served.send(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["checks"]["draining"], true);
    assert_eq!(served.send(reqwest::Method::GET, "/healthz", None, None).await.0, StatusCode::OK);
    let (exit, printed) = tokio::task::block_in_place(|| served.wait_exit());
    for call in slow {
        assert_eq!(call.await.unwrap().unwrap(), StatusCode::OK, "a call in flight was cut by the shutdown");
    }
    assert!(exit.success(), "serve exited with {exit}");
    assert!(printed.contains("\"stopped\":\"clean\""), "{printed}");
    assert!(reqwest::Client::new().get(served.url("/healthz")).send().await.is_err(), "still accepting");

    let verify = Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .args(["audit", "verify"])
        .env("AGENTHOST_CONFIG", served.config())
        .env("AGENTHOST_DATA_DIR", served.data())
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&verify.stdout).to_string() + &String::from_utf8_lossy(&verify.stderr);
    assert!(verify.status.success(), "{text}");
    assert!(text.contains("intact"), "{text}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_write_high_call_waits_for_an_approval_signed_elsewhere_then_runs_once() {
    let served = Served::start("");
    let deployer = served.token("dana", &["acme"], &["deployer"]);
    let user = served.token("ursula", &["acme"], &["tenant-user"]);
    let other_user = served.token("uma", &["acme"], &["tenant-user"]);

    served.publish_stable(&deployer, artifacts::REFUND, "refund", "0.1.0", REFUND_HEAD).await;

    // The call waits: 409 with the request and where to poll it.
    let input = json!({ "order_id": "A-1", "amount_cents": 1500, "currency": "EUR", "card_last4": "4242" });
    let response = served
        .http
        .post(served.url("/v1/tenants/acme/tools/refund:invoke"))
        .bearer_auth(&user)
        .json(&json!({ "input": input }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let problem: Value = response.json().await.unwrap();
    assert_eq!(problem["kind"], "approval-required", "{problem}");
    let id = problem["approval_request"].as_str().unwrap().to_owned();
    assert_eq!(location, format!("/v1/tenants/acme/approvals/{id}"));

    // The requester sees it (redacted); another user of the tenant does not.
    let (status, shown) = served.send(reqwest::Method::GET, &location, Some(&user), None).await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert_eq!(shown["host_signed"], true);
    assert_ne!(shown["preview"]["card_last4"], "4242", "{shown}");
    assert_eq!(
        served.send(reqwest::Method::GET, &location, Some(&other_user), None).await.0,
        StatusCode::NOT_FOUND
    );

    // alice signs with her key, on her side, through the CLI.
    let dir = served.dir.path();
    let (alice, alice_key) = &served.approvers[0];
    std::fs::write(dir.join("alice.key"), alice_key.private_pem().unwrap()).unwrap();
    std::fs::write(dir.join("alice.tok"), served.token(alice, &["acme"], &["approver"])).unwrap();
    // bob may not present alice's token.
    let bob = served.token("bob", &["acme"], &["approver"]);
    let request: agenthost::governance::ApprovalRequest = serde_json::from_value(shown.clone()).unwrap();
    let claims = agenthost::governance::approvals::TokenClaims::for_request(&request, alice, 600);
    let stolen = agenthost::governance::ApprovalToken::sign(claims, alice_key).unwrap();
    let (status, problem) = served
        .send(
            reqwest::Method::POST,
            &format!("{location}:approve"),
            Some(&bob),
            Some(json!({ "token": stolen })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");
    // A token signed by a key that is not alice's.
    let forged = agenthost::governance::ApprovalToken::sign(
        agenthost::governance::approvals::TokenClaims::for_request(&request, alice, 600),
        &KeyPair::generate(),
    )
    .unwrap();
    let alice_bearer = served.token(alice, &["acme"], &["approver"]);
    let (status, problem) = served
        .send(
            reqwest::Method::POST,
            &format!("{location}:approve"),
            Some(&alice_bearer),
            Some(json!({ "token": forged })),
        )
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "{problem}");

    let out = Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .args(["approvals", "approve", &id, "--as", alice, "--key"])
        .arg(dir.join("alice.key"))
        .args(["--server", &served.url, "--tenant", "acme", "--token"])
        .arg(dir.join("alice.tok"))
        // The host's key, from the operator, not from the server.
        .arg("--host-key")
        .arg(served.data().join("keys/audit.pub"))
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let decided: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(decided["decision"]["status"], "approved", "{decided}");
    assert_eq!(decided["preview"]["order_id"], "A-1", "the approver is shown what they approve: {decided}");

    // Another user of the tenant cannot run it on this approval.
    let resubmit = json!({ "input": input, "approval_request": id });
    let (status, problem) = served
        .send(
            reqwest::Method::POST,
            "/v1/tenants/acme/tools/refund:invoke",
            Some(&other_user),
            Some(resubmit.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::NOT_FOUND, "another user used the approval: {problem}");

    // Re-submitted by its requester: it runs, once.
    let (status, answer) = served
        .send(
            reqwest::Method::POST,
            "/v1/tenants/acme/tools/refund:invoke",
            Some(&user),
            Some(resubmit.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(answer["component"]["name"], "refund");
    let (status, problem) = served
        .send(reqwest::Method::POST, "/v1/tenants/acme/tools/refund:invoke", Some(&user), Some(resubmit))
        .await;
    assert_eq!(status, StatusCode::FORBIDDEN, "a spent approval ran twice: {problem}");
    assert_eq!(problem["kind"], "denied");
}

/// Two replicas on one DynamoDB table (as two pods of the k8s Deployment,
/// or two Lambda execution environments): a request made through one is
/// seen, approved and spent through the other, an async run started on
/// one is polled on the other, and a token spent on one is spent for both.
#[tokio::test(flavor = "multi_thread")]
async fn replicas_on_one_memory_table_share_approvals_and_async_runs() {
    let Some(config) = crate::common::aws::moto().await else { return };
    let endpoint = crate::common::aws::endpoint().unwrap();
    let table = format!("shared-{}", hex::encode(rand::random::<[u8; 4]>()));
    agenthost::brokers::memory::create_table(&aws_sdk_dynamodb::Client::new(&config), &table).await.unwrap();
    let served = Served::start_with(
        &format!(
            "[memory]\nbackend = \"dynamodb\"\ntable = \"{table}\"\n[aws]\nendpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\n"
        ),
        "",
    );
    let deployer = served.token("dana", &["acme"], &["deployer"]);
    let user = served.token("ursula", &["acme"], &["tenant-user"]);
    served.publish_stable(&deployer, artifacts::REFUND, "refund", "0.1.0", REFUND_HEAD).await;
    // The second replica: the same config, registry and host keys (a
    // Secret in k8s), a data directory of its own.
    let second = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(served.data().join("registry"), second.path().join("registry")).unwrap();
    let keys = second.path().join("keys");
    std::fs::create_dir(&keys).unwrap();
    std::fs::set_permissions(&keys, std::os::unix::fs::PermissionsExt::from_mode(0o700)).unwrap();
    for entry in std::fs::read_dir(served.data().join("keys")).unwrap() {
        let entry = entry.unwrap();
        std::fs::copy(entry.path(), keys.join(entry.file_name())).unwrap();
    }
    let (child, _stdout, other) = spawn(&served.config(), second.path());
    // Stopped however the test ends.
    struct Replica(Child);
    impl Drop for Replica {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let _replica = Replica(child);
    let on = |base: &str, path: &str| format!("{base}{path}");
    let http = &served.http;

    // Made on the first replica.
    let input = json!({ "order_id": "A-7", "amount_cents": 900, "currency": "EUR", "card_last4": "4242" });
    let response = http
        .post(served.url("/v1/tenants/acme/tools/refund:invoke"))
        .bearer_auth(&user)
        .json(&json!({ "input": input }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::CONFLICT);
    let problem: Value = response.json().await.unwrap();
    let id = problem["approval_request"].as_str().unwrap().to_owned();
    let location = format!("/v1/tenants/acme/approvals/{id}");

    // Seen on the second, as the host signed it, and approved there.
    let alice = served.token("alice", &["acme"], &["approver"]);
    let shown: Value =
        http.get(on(&other, &location)).bearer_auth(&alice).send().await.unwrap().json().await.unwrap();
    assert_eq!(shown["id"], id.as_str(), "the second replica does not know the request: {shown}");
    assert_eq!(shown["host_signed"], true, "{shown}");
    let request: agenthost::governance::ApprovalRequest = serde_json::from_value(shown).unwrap();
    let token = agenthost::governance::ApprovalToken::sign(
        agenthost::governance::approvals::TokenClaims::for_request(&request, "alice", 600),
        &served.approvers[0].1,
    )
    .unwrap();
    let response = http
        .post(on(&other, &format!("{location}:approve")))
        .bearer_auth(&alice)
        .json(&json!({ "token": token }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::OK, "{}", response.text().await.unwrap());

    // The first replica lists it approved; re-submitted there, it runs.
    let (status, listed) =
        served.send(reqwest::Method::GET, "/v1/tenants/acme/approvals?all=true", Some(&alice), None).await;
    assert_eq!(status, StatusCode::OK, "{listed}");
    assert_eq!(listed["approvals"][0]["status"], "approved", "{listed}");
    let resubmit = json!({ "input": input, "approval_request": id });
    let (status, answer) = served
        .send(
            reqwest::Method::POST,
            "/v1/tenants/acme/tools/refund:invoke",
            Some(&user),
            Some(resubmit.clone()),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    // Spent for both: the second replica's trail never saw it used.
    let response = http
        .post(on(&other, "/v1/tenants/acme/tools/refund:invoke"))
        .bearer_auth(&user)
        .json(&resubmit)
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::FORBIDDEN, "a spent approval ran again on another replica");
    let problem: Value = response.json().await.unwrap();
    assert!(problem["detail"].as_str().unwrap_or_default().contains("already used"), "{problem}");

    // An async run started on the second replica is polled on the first.
    served
        .publish_stable(
            &deployer,
            artifacts::CALCULATOR,
            "calculator",
            "0.1.0",
            "world = \"tool\"\nrisk_tier = \"read\"\n",
        )
        .await;
    let mut accepted = None;
    for _ in 0..50 {
        let response = http
            .post(on(&other, "/v1/tenants/acme/tools/calculator:invoke"))
            .bearer_auth(&user)
            .header("prefer", "respond-async")
            .json(&json!({ "input": { "expression": "6 * 7" } }))
            .send()
            .await
            .unwrap();
        if response.status() == StatusCode::ACCEPTED {
            accepted = Some(response.headers()["location"].to_str().unwrap().to_owned());
            break;
        }
        // The second replica takes the new component from the registry within seconds.
        tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    }
    let run = accepted.expect("the second replica never took the calculator");
    // Polled on the first replica, which did not run it.
    let polled = served.poll_run(&run, &user).await;
    assert_eq!(polled["status"], "succeeded", "{polled}");
    assert_eq!(polled["result"]["output"]["value"], 42, "{polled}");
    let other_user = served.token("uma", &["acme"], &["tenant-user"]);
    assert_eq!(
        served.send(reqwest::Method::GET, &run, Some(&other_user), None).await.0,
        StatusCode::NOT_FOUND
    );
}

/// Step Functions pauses on agenthost: a state machine (moto's executing
/// engine) sends a call with its task token to the queue
/// (`sqs:sendMessage.waitForTaskToken`); `serve` takes it from the queue
/// and answers the token. A read tool's answer ends the task at once; a
/// write-high tool's call parks the token on its approval request, and the
/// approval resumes it (the run succeeds with the tool's answer), a denial
/// fails it with `agenthost.denied`.
#[tokio::test(flavor = "multi_thread")]
async fn a_step_functions_task_waits_on_its_approval_and_gets_the_answer() {
    let Some(config) = crate::common::aws::moto().await else { return };
    let endpoint = crate::common::aws::endpoint().unwrap();
    crate::common::aws::run_state_machines(&endpoint).await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let name = format!("tasks-{:08x}", rand::random::<u32>());
    // Parked workflows in DynamoDB, as replicas share them.
    agenthost::brokers::memory::create_table(&aws_sdk_dynamodb::Client::new(&config), &name).await.unwrap();
    let queue_url = sqs.create_queue().queue_name(&name).send().await.unwrap().queue_url.unwrap();
    let served = Served::start_with(
        &format!(
            "[aws]\nendpoint_url = \"{endpoint}\"\nregion = \"us-east-1\"\n[memory]\nbackend = \"dynamodb\"\ntable = \"{name}\"\n[events]\nbackend = \"sqs\"\nqueue = \"{name}\"\ndirect_calls = true\n"
        ),
        "",
    );
    let deployer = served.token("dana", &["acme"], &["deployer"]);
    served.publish_stable(&deployer, artifacts::REFUND, "refund", "0.1.0", REFUND_HEAD).await;
    served
        .publish_stable(
            &deployer,
            artifacts::CALCULATOR,
            "calculator",
            "0.1.0",
            "world = \"tool\"\nrisk_tier = \"read\"\n",
        )
        .await;

    let sfn = aws_sdk_sfn::Client::new(&config);
    let definition = json!({
        "StartAt": "Call",
        "States": { "Call": {
            "Type": "Task",
            "Resource": "arn:aws:states:::sqs:sendMessage.waitForTaskToken",
            "Parameters": {
                "QueueUrl": queue_url,
                "MessageBody": {
                    "tenant": "acme",
                    "tool.$": "$.tool",
                    "input.$": "$.input",
                    "principal": "workflow",
                    "task_token.$": "$$.Task.Token"
                }
            },
            "End": true
        } }
    });
    let machine = sfn
        .create_state_machine()
        .name(format!("agenthost-{:08x}", rand::random::<u32>()))
        .definition(definition.to_string())
        .role_arn("arn:aws:iam::123456789012:role/agenthost-workflow")
        .send()
        .await
        .unwrap()
        .state_machine_arn;
    let start = |tool: &str, input: Value| {
        let (sfn, machine) = (sfn.clone(), machine.clone());
        let body = json!({ "tool": tool, "input": input }).to_string();
        async move {
            let name = format!("run-{:08x}", rand::random::<u32>());
            sfn.start_execution()
                .state_machine_arn(machine)
                .name(name)
                .input(body)
                .send()
                .await
                .unwrap()
                .execution_arn
        }
    };
    let settled = |execution: String| {
        let sfn = sfn.clone();
        async move {
            for _ in 0..300 {
                let described = sfn.describe_execution().execution_arn(&execution).send().await.unwrap();
                if described.status != aws_sdk_sfn::types::ExecutionStatus::Running {
                    return described;
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            sfn.describe_execution().execution_arn(&execution).send().await.unwrap()
        }
    };

    // A read tool: the task ends with the tool's answer.
    let execution = start("calculator", json!({ "expression": "6 * 7" })).await;
    let done = settled(execution).await;
    assert_eq!(done.status, aws_sdk_sfn::types::ExecutionStatus::Succeeded, "{done:?}");
    let output: Value = serde_json::from_str(done.output.as_deref().unwrap()).unwrap();
    assert_eq!(output["output"]["value"], 42, "{output}");

    // A write-high tool: paused on its approval request until alice approves.
    let alice = served.token("alice", &["acme"], &["approver"]);
    let pending = |execution: String| {
        let (sfn, served, alice) = (&sfn, &served, &alice);
        async move {
            let mut listed = Value::Null;
            for _ in 0..300 {
                let described = sfn.describe_execution().execution_arn(&execution).send().await.unwrap();
                assert_eq!(
                    described.status,
                    aws_sdk_sfn::types::ExecutionStatus::Running,
                    "the workflow did not wait: {:?} {:?}",
                    described.error(),
                    described.cause()
                );
                listed = served
                    .send(reqwest::Method::GET, "/v1/tenants/acme/approvals", Some(alice), None)
                    .await
                    .1;
                if let Some(id) =
                    listed["approvals"].as_array().and_then(|a| a.first()).and_then(|r| r["id"].as_str())
                {
                    // Listed once made; waiting once the workflow is parked on it.
                    let path = format!("/v1/tenants/acme/approvals/{id}");
                    let shown = served.send(reqwest::Method::GET, &path, Some(alice), None).await.1;
                    if shown.get("resumes").is_some() {
                        return id.to_owned();
                    }
                }
                tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            }
            panic!("no approval request came from the workflow's call: {listed}");
        }
    };
    let input = json!({ "order_id": "W-1", "amount_cents": 700, "currency": "EUR", "card_last4": "4242" });
    let execution = start("refund", input.clone()).await;
    let id = pending(execution.clone()).await;
    let (status, shown) = served
        .send(reqwest::Method::GET, &format!("/v1/tenants/acme/approvals/{id}"), Some(&alice), None)
        .await;
    assert_eq!(status, StatusCode::OK, "{shown}");
    assert!(
        shown.get("resume").is_none() && !shown.to_string().contains("task_token"),
        "the token is shown: {shown}"
    );
    let described = sfn.describe_execution().execution_arn(&execution).send().await.unwrap();
    assert_eq!(described.status, aws_sdk_sfn::types::ExecutionStatus::Running, "the workflow did not wait");
    let request: agenthost::governance::ApprovalRequest = serde_json::from_value(shown).unwrap();
    let token = agenthost::governance::ApprovalToken::sign(
        agenthost::governance::approvals::TokenClaims::for_request(&request, "alice", 600),
        &served.approvers[0].1,
    )
    .unwrap();
    let (status, decided) = served
        .send(
            reqwest::Method::POST,
            &format!("/v1/tenants/acme/approvals/{id}:approve"),
            Some(&alice),
            Some(json!({ "token": token })),
        )
        .await;
    assert_eq!(status, StatusCode::OK, "{decided}");
    assert_eq!(decided["workflow_answered"], true, "{decided}");
    let done = settled(execution).await;
    assert_eq!(done.status, aws_sdk_sfn::types::ExecutionStatus::Succeeded, "{done:?}");
    let output: Value = serde_json::from_str(done.output.as_deref().unwrap()).unwrap();
    assert_eq!(output["output"]["refunded"]["order_id"], "W-1", "{output}");
    assert_eq!(output["component"]["name"], "refund", "{output}");

    // Denied on the store by bob's CLI, elsewhere: no process answers the
    // workflow then, so serve's sweep (every 30 s) finds it and fails it.
    let execution = start(
        "refund",
        json!({ "order_id": "W-2", "amount_cents": 1, "currency": "EUR", "card_last4": "1111" }),
    )
    .await;
    let id = pending(execution.clone()).await;
    let bob_key = served.dir.path().join("bob.key");
    std::fs::write(&bob_key, served.approvers[1].1.private_pem().unwrap()).unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let out = Command::new(env!("CARGO_BIN_EXE_agenthost"))
        .args(["approvals", "deny", &id, "--as", "bob", "--reason", "not this one", "--key"])
        .arg(&bob_key)
        .env("AGENTHOST_CONFIG", served.config())
        .env("AGENTHOST_DATA_DIR", elsewhere.path())
        .env_remove("AGENTHOST_KEY_DIR")
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut done = settled(execution.clone()).await;
    if done.status == aws_sdk_sfn::types::ExecutionStatus::Running {
        done = settled(execution).await;
    }
    assert_eq!(done.status, aws_sdk_sfn::types::ExecutionStatus::Failed, "{done:?}");
    assert_eq!(done.error.as_deref(), Some("agenthost.denied"), "{done:?}");
    // (The cause, the problem+json naming the denier and reason, is sent
    // too; moto's DescribeExecution does not return it.)
}

#[tokio::test(flavor = "multi_thread")]
async fn respond_async_answers_202_and_only_the_owner_polls_the_run() {
    let served = Served::start("");
    let deployer = served.token("dana", &["acme"], &["deployer"]);
    let user = served.token("ursula", &["acme"], &["tenant-user"]);
    let other = served.token("uma", &["acme"], &["tenant-user"]);
    assert_eq!(served.deploy(&deployer, artifacts::VERSIONED_1_0_0, "1.0.0").await.0, StatusCode::CREATED);
    assert_eq!(served.alias(&deployer, "stable", "1.0.0", None).await.0, StatusCode::OK);

    let response = served
        .http
        .post(served.url("/v1/tenants/acme/tools/versioned:invoke"))
        .bearer_auth(&user)
        .header("prefer", "respond-async")
        .json(&json!({ "input": { "sleep_ms": 300 } }))
        .send()
        .await
        .unwrap();
    assert_eq!(response.status(), StatusCode::ACCEPTED);
    assert_eq!(response.headers()["preference-applied"], "respond-async");
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let accepted: Value = response.json().await.unwrap();
    assert_eq!(accepted["status"], "running");

    assert_eq!(
        served.send(reqwest::Method::GET, &location, Some(&other), None).await.0,
        StatusCode::NOT_FOUND
    );
    let run = served.poll_run(&location, &user).await;
    assert_eq!(run["status"], "succeeded", "{run}");
    assert_eq!(run["result"]["output"]["version"], "1.0.0", "{run}");

    // A failing async call keeps its problem.
    let response = served
        .http
        .post(served.url("/v1/tenants/acme/tools/versioned:invoke"))
        .bearer_auth(&user)
        .header("prefer", "respond-async")
        .json(&json!({ "input": { "sleep_ms": "soon" } }))
        .send()
        .await
        .unwrap();
    let location = response.headers()["location"].to_str().unwrap().to_owned();
    let run = served.poll_run(&location, &user).await;
    assert_eq!(run["status"], "failed", "{run}");
    assert_eq!(run["error"]["kind"], "invalid-input", "{run}");
    assert_eq!(run["http_status"], 400);
}

#[tokio::test(flavor = "multi_thread")]
async fn a_subscription_in_host_toml_runs_the_agents_stable_version_for_each_event() {
    let served = Served::start(
        "[[server.subscriptions]]\ntenant = \"acme\"\ntopic = \"orders.*\"\nagent = \"event-recorder\"",
    );
    let deployer = served.token("dana", &["acme"], &["deployer"]);
    let user = served.token("ursula", &["acme"], &["tenant-user"]);
    let auditor = served.token("audrey", &["acme"], &["auditor"]);
    served
        .publish_stable(
            &deployer,
            artifacts::EVENT_RECORDER,
            "event-recorder",
            "0.1.0",
            "world = \"agent\"\n[requests]\ninterfaces = [\"log\", \"memory\"]\nmemory_namespaces = [\"events\"]\n",
        )
        .await;
    served
        .publish_stable(
            &deployer,
            artifacts::NOTIFY,
            "notify",
            "0.1.0",
            "world = \"tool\"\nrisk_tier = \"write-low\"\n[requests]\ninterfaces = [\"log\", \"events\"]\ntopics = [\"orders.*\"]\n",
        )
        .await;

    let input = json!({ "input": { "topic": "orders.created", "message": "order A-7" } });
    let (status, answer) = served
        .send(reqwest::Method::POST, "/v1/tenants/acme/tools/notify:invoke", Some(&user), Some(input))
        .await;
    assert_eq!(status, StatusCode::OK, "{answer}");

    // The subscriber's run shows in the tenant's trail.
    let mut runs = Vec::new();
    for _ in 0..100 {
        let (_, answer) = served
            .send(reqwest::Method::GET, "/v1/tenants/acme/audit?kind=tool_call", Some(&auditor), None)
            .await;
        runs = answer["records"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|r| r["record"]["agent"].as_str().is_some_and(|a| a.starts_with("event-recorder@")))
            .cloned()
            .collect();
        if !runs.is_empty() {
            break;
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    assert_eq!(runs.len(), 1, "the event-recorder ran {} times", runs.len());
    assert_eq!(runs[0]["record"]["outcome"], "ok", "{}", runs[0]);
}

#[tokio::test(flavor = "multi_thread")]
async fn idle_connections_beyond_the_limit_wait_and_a_slow_request_head_is_cut() {
    let served = Served::start("max_connections = 2\nheader_timeout_ms = 1500");
    let address = served.url.trim_start_matches("http://").to_owned();
    // Two clients connect and send nothing.
    let idle1 = tokio::net::TcpStream::connect(&address).await.unwrap();
    let _idle2 = tokio::net::TcpStream::connect(&address).await.unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    let quick = reqwest::Client::builder().timeout(std::time::Duration::from_millis(400)).build().unwrap();
    assert!(
        quick.get(served.url("/healthz")).send().await.is_err(),
        "a third connection was served past the limit"
    );
    // One of them leaves: the next client is served.
    drop(idle1);
    tokio::time::sleep(std::time::Duration::from_millis(100)).await;
    let response = reqwest::Client::new().get(served.url("/healthz")).send().await.unwrap();
    assert_eq!(response.status(), StatusCode::OK);

    // A client that dribbles its request head is cut off at the header timeout.
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut slow = tokio::net::TcpStream::connect(&address).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n").await.unwrap();
    let mut buf = Vec::new();
    let read = tokio::time::timeout(std::time::Duration::from_secs(10), slow.read_to_end(&mut buf)).await;
    assert!(read.is_ok(), "the server kept a half-sent request open");
}

#[test]
fn the_readmes_serving_example_parses() {
    let readme = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/../README.md")).unwrap();
    let section = readme.split("## Serving: `agenthost serve`").nth(1).unwrap();
    let example = section.split("```toml").nth(1).unwrap().split("```").next().unwrap();
    let settings: agenthost::governance::HostSettings = toml::from_str(example).unwrap();
    assert_eq!(settings.registry.backend, agenthost::settings::RegistryBackend::S3);
    assert_eq!(settings.server.subscriptions.len(), 1);
    assert_eq!(settings.server.issuers.len(), 2);
    assert_eq!(settings.server.issuers[0].subject_prefix.as_deref(), Some("acme-idp:"));
}

#[tokio::test(flavor = "multi_thread")]
async fn the_containers_healthcheck_command_asks_the_running_server() {
    let served = Served::start("");
    let check = |path: &str| {
        Command::new(env!("CARGO_BIN_EXE_agenthost"))
            .args(["healthcheck", "--url", &served.url(path)])
            .output()
            .unwrap()
    };
    let healthy = tokio::task::block_in_place(|| check("/healthz"));
    assert!(healthy.status.success(), "{}", String::from_utf8_lossy(&healthy.stderr));
    // Anything but 2xx is unhealthy, with exit 1.
    let missing = tokio::task::block_in_place(|| check("/nothing-here"));
    assert_eq!(missing.status.code(), Some(1));
    assert!(
        String::from_utf8_lossy(&missing.stderr).contains("404"),
        "{}",
        String::from_utf8_lossy(&missing.stderr)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn readyz_answers_503_while_a_backend_does_not_answer() {
    // The memory backend is DynamoDB at an address where nothing listens.
    let served = Served::start_with(
        "[memory]\nbackend = \"dynamodb\"\n[aws]\nendpoint_url = \"http://127.0.0.1:9\"\nmax_attempts = 1\nregion = \"us-east-1\"\n",
        "",
    );
    let (status, ready) = served.send(reqwest::Method::GET, "/readyz", None, None).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{ready}");
    assert_eq!(ready["checks"]["backends"], false, "{ready}");
    assert_eq!(served.send(reqwest::Method::GET, "/healthz", None, None).await.0, StatusCode::OK);
    // Only booleans: nothing of the backend's error reaches an unauthenticated client.
    assert!(!ready.to_string().contains("127.0.0.1"), "{ready}");
}
