//! `agenthost serve` and `agenthost token issue`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use clap::{Args, Subcommand};
use serde_json::json;

use agenthost::backends::Backends;
use agenthost::governance::{Governance, TenantConfig};
use agenthost::registry::Registry;
use agenthost::server::{self, Drained, Server, ServerParts, Verifier};
use agenthost::{EngineConfig, Host, HostConfig};

use crate::Failure;

#[derive(Args)]
pub struct ServeArgs {
    /// The address to listen on, e.g. 0.0.0.0:8080 (port 0 picks a free
    /// port) [default: [server] listen in host.toml, else 127.0.0.1:8080]
    #[arg(long, value_name = "ADDR")]
    listen: Option<String>,
}

/// The registry `[registry]` in host.toml names: the data directory's own
/// (default), or S3 and DynamoDB.
pub async fn registry(data: &Path, governance: &Arc<Governance>) -> anyhow::Result<Registry> {
    let settings = governance.settings();
    let store =
        agenthost::registry::open_store(&settings.registry, &settings.aws, governance.config_dir(), data)
            .await
            .map_err(|e| anyhow!(e))?;
    let limit = settings.server.deploy_limit_bytes as u64;
    Ok(Registry::new(store, governance.clone(), limit))
}

/// A server built from the configuration, with the backends it holds open
/// (closed, with the audit trail, when the caller is done). `serve` and
/// `lambda` are two transports over this one server.
pub struct Built {
    pub server: Arc<Server>,
    pub backends: Backends,
    pub settings: agenthost::settings::ServerSettings,
}

/// What a transport changes in the server it builds.
#[derive(Default)]
pub struct BuildOptions {
    /// The engine, instead of the default (Lambda sizes it to the function).
    pub engine: Option<EngineConfig>,
    /// The audit stream's name, instead of `[audit] stream` (Lambda: one
    /// per execution environment).
    pub audit_stream: Option<String>,
}

pub async fn build(
    options: BuildOptions,
    cache_dir: Option<PathBuf>,
    governance: Arc<Governance>,
    data: &Path,
    keys: &agenthost::keystore::HostKeys,
) -> Result<Built, Failure> {
    let settings = governance.settings().server.clone();
    let config_dir = governance.config_dir().map(Path::to_path_buf).unwrap_or_else(|| PathBuf::from("."));
    let verifier = Verifier::load(&settings.issuers, &config_dir).map_err(|e| anyhow!(e))?;
    if verifier.is_empty() {
        crate::write_stderr(
            "warning: no [[server.issuers]] in host.toml: every request but /healthz and /readyz will be refused (401)",
        );
    }
    let tenants: Vec<&TenantConfig> = governance.tenants().map(|t| &t.config).collect();
    let mut host_settings = governance.settings().clone();
    if let Some(stream) = options.audit_stream {
        // A trail root of its own in the bucket too: each root has one
        // signed stream index, which environments must not overwrite.
        if let Some(s3) = host_settings.audit.s3.as_mut() {
            let prefix = s3.prefix.trim_matches('/');
            s3.prefix = if prefix.is_empty() {
                format!("lambda/{stream}")
            } else {
                format!("{prefix}/lambda/{stream}")
            };
        }
        host_settings.audit.stream = Some(stream);
    }
    crate::startup_phase("token issuers read");
    let backends =
        Backends::open(&host_settings, &tenants, data, &keys.audit).await.map_err(|e| anyhow!(e))?;
    crate::startup_phase("backends open");
    let mut config = backends.host_config(HostConfig { cache_dir, ..HostConfig::default() });
    config.limits = config.limits.with_settings(&governance.settings().limits);
    match options.engine {
        // The transport sized the engine to what it has (a Lambda function's
        // memory): a guest may grow only as far as a slot.
        Some(engine) => {
            if config.limits.memory_bytes > engine.max_memory_bytes {
                tracing::warn!(
                    target: "agenthost::lambda",
                    limit = config.limits.memory_bytes,
                    slot = engine.max_memory_bytes,
                    "[limits] memory_bytes is more than this function can give one guest; lowered"
                );
                config.limits.memory_bytes = engine.max_memory_bytes;
            }
            config.engine = engine;
        }
        // A pool slot holds the largest memory the limits let a guest grow to.
        None => {
            config.engine.max_memory_bytes = config.engine.max_memory_bytes.max(config.limits.memory_bytes)
        }
    }
    config.cache_key = Some(keys.cache);
    config.share_artifacts = governance.settings().registry.share_artifacts;
    config.request_key = Some(keys.audit.clone());
    config.egress_ca = governance.egress_ca().map_err(|e| anyhow!(e))?;
    config.governance = Some(governance.clone());
    let host = Arc::new(Host::new(config).map_err(|e| anyhow!("cannot start the host: {e}"))?);
    crate::startup_phase("engine and host made");
    let registry = registry(data, &governance).await?;
    let server = Server::new(ServerParts {
        memory: Some(backends.memory.clone()),
        events: backends.events.clone(),
        callbacks: Some(agenthost::brokers::callbacks::StepFunctions::new(governance.settings().aws.clone())),
        host,
        registry,
        audit: backends.audit.clone(),
        settings: settings.clone(),
        verifier,
        request_key: Some(keys.audit.public()),
    });
    crate::startup_phase("registry and server made");
    server.warm_up().await;
    crate::startup_phase("stable versions loaded");
    server.subscribe_all().map_err(|e| anyhow!(e))?;
    Ok(Built { server, backends, settings })
}

pub async fn serve(
    args: ServeArgs,
    cache_dir: Option<PathBuf>,
    governance: Arc<Governance>,
    data: &Path,
    keys: &agenthost::keystore::HostKeys,
) -> Result<(), Failure> {
    let direct_calls = governance.settings().events.direct_calls;
    let Built { server, backends, settings } =
        build(BuildOptions::default(), cache_dir, governance, data, keys).await?;
    // Events from SQS (or an EventBridge rule into it) reach the subscribers;
    // with [events] direct_calls, calls sent to the queue run.
    let wanted = !settings.subscriptions.is_empty() || direct_calls;
    let poller = backends.sqs.clone().filter(|_| wanted).map(|(client, url)| {
        // Replicas share the queue: deliveries are claimed in the
        // memory backend, as Lambda's execution environments claim them.
        server.host().use_delivery_ledger();
        server.serve_sqs(client, url)
    });
    let listen = args.listen.unwrap_or(settings.listen);
    let listener =
        tokio::net::TcpListener::bind(&listen).await.with_context(|| format!("cannot listen on {listen}"))?;
    let address = listener.local_addr().context("cannot read the listening address")?;
    // One JSON line that scripts (and the tests) read to find the port.
    crate::write_stdout(&format!("{}\n", json!({ "listening": format!("http://{address}") })))?;
    let drained = server::serve(server.clone(), listener, shutdown_signal()).await;
    if let Some(poller) = poller {
        // The message in hand finishes (its claim would otherwise hold it
        // from every replica for the claim's life); no new one is taken.
        poller.stop(std::time::Duration::from_secs(30)).await;
    }
    drop(server);
    backends.close().await.map_err(|e| anyhow!("the audit trail was not closed cleanly: {e}"))?;
    let how = match drained {
        Drained::Clean => "clean",
        Drained::TimedOut => "drain-timed-out",
    };
    crate::write_stdout(&format!("{}\n", json!({ "stopped": how })))?;
    Ok(())
}

/// Resolves on SIGTERM or SIGINT (Ctrl-C).
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = term.recv() => {}
                    _ = tokio::signal::ctrl_c() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

#[derive(Args)]
pub struct HealthcheckArgs {
    /// What to ask
    #[arg(long, value_name = "URL", default_value = "http://127.0.0.1:8080/healthz")]
    url: String,
    /// Give up after this long
    #[arg(long, value_name = "MS", default_value_t = 2000)]
    timeout_ms: u64,
}

/// `agenthost healthcheck`: one GET, no redirects, bounded in time. Exits
/// 0 when healthy and 1 otherwise (Docker reserves 2).
pub async fn healthcheck(args: HealthcheckArgs) -> std::process::ExitCode {
    let asked = async {
        let client = reqwest::Client::builder()
            .timeout(std::time::Duration::from_millis(args.timeout_ms.max(1)))
            .redirect(reqwest::redirect::Policy::none())
            .build()
            .map_err(|e| format!("cannot build an HTTP client: {e}"))?;
        let response = client.get(&args.url).send().await.map_err(|e| format!("{}: {e}", args.url))?;
        let status = response.status();
        if status.is_success() { Ok(status) } else { Err(format!("{} answered {status}", args.url)) }
    };
    match asked.await {
        Ok(status) => {
            let _ = crate::write_stdout(&format!("{} answered {status}\n", args.url));
            std::process::ExitCode::SUCCESS
        }
        Err(e) => {
            crate::write_stderr(&format!("unhealthy: {e}"));
            std::process::ExitCode::from(1)
        }
    }
}

#[derive(Subcommand)]
pub enum TokenCommand {
    /// Mint a bearer token (EdDSA JWT) for development and tests: the
    /// server must list the key's public half under [[server.issuers]]
    Issue {
        /// The issuer's ed25519 private key (PKCS#8 PEM, from `agenthost keygen`)
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// The subject: the principal policies, approvals and audit see
        #[arg(long, value_name = "NAME")]
        sub: String,
        /// A tenant it acts in (repeatable; `*` for every tenant, operators and auditors only)
        #[arg(long = "tenant", value_name = "ID")]
        tenants: Vec<String>,
        /// A role: tenant-user, deployer, approver, operator, auditor (repeatable)
        #[arg(long = "role", value_name = "ROLE", required = true)]
        roles: Vec<String>,
        /// The `iss` claim; must match an issuer in host.toml
        #[arg(long, default_value = "agenthost-dev", value_name = "ISS")]
        issuer: String,
        /// The `aud` claim
        #[arg(long, default_value = "agenthost", value_name = "AUD")]
        audience: String,
        /// How long it is valid, e.g. 15m, 8h
        #[arg(long, default_value = "1h", value_name = "DURATION")]
        ttl: humantime::Duration,
    },
}

pub fn token(command: TokenCommand) -> Result<(), Failure> {
    match command {
        TokenCommand::Issue { key, sub, tenants, roles, issuer, audience, ttl } => {
            let pem =
                std::fs::read(&key).with_context(|| format!("cannot read the key {}", key.display()))?;
            let key_id = agenthost::keys::KeyPair::read(&key).map_err(|e| anyhow!("--key: {e}"))?.id();
            let request = server::auth::TokenRequest {
                issuer: &issuer,
                audience: &audience,
                subject: &sub,
                tenants: &tenants,
                roles: &roles,
                ttl_secs: ttl.as_secs(),
            };
            let token = server::auth::issue(&request, &pem, &key_id).map_err(|e| anyhow!(e))?;
            crate::write_stdout(&format!("{token}\n"))
        }
    }
}
