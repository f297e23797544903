//! The `agenthost` command line: run, inspect and demo components.

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context as _;
use clap::{Args, Parser, Subcommand};
use serde_json::{Value, json};

use agenthost::backends::Backends;
use agenthost::governance::{ApprovalToken, Governance};
use agenthost::runtime::tier_name;
use agenthost::{CallOptions, Host, HostConfig, InvokeError, LoadOptions, LoadedComponent, World};

mod audit_cli;
mod aws_cli;
mod bundle_cli;
mod demo;
mod governance_cli;
mod lambda_cli;
mod registry_cli;
mod server_cli;

#[derive(Parser)]
#[command(
    name = "agenthost",
    version,
    about = "Run AI agents and tools as sandboxed WebAssembly components",
    long_about = "Run AI agents and tools as sandboxed WebAssembly components.\n\n\
        Components implement the `tool` or `agent` world of agenthost:platform@0.1.0 \
        (see wit/). Each call runs in a fresh sandbox with no files, no environment, \
        no network (unless its tenant grants them, see --config), and hard limits on \
        memory, fuel (CPU) and wall-clock time.\n\n\
        Results go to stdout as JSON; failures go to stderr as {\"error\": {...}} \
        with a non-zero exit status."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,

    /// Directory for host data, such as the precompiled-component cache
    /// [default: $XDG_CACHE_HOME/agenthost or ~/.cache/agenthost]
    #[arg(long, global = true, env = "AGENTHOST_DATA_DIR", value_name = "DIR")]
    data_dir: Option<PathBuf>,

    /// Compile every component afresh instead of using the precompiled cache
    #[arg(long, global = true)]
    no_cache: bool,

    /// Governance configuration: `host.toml` and `tenants/<id>.toml` [default: one
    /// development tenant that grants every interface but no files, env or network]
    #[arg(long, global = true, env = "AGENTHOST_CONFIG", value_name = "DIR")]
    config: Option<PathBuf>,

    /// The host's key directory (audit signing key, cache key): owned by the
    /// host's user, mode 0700 [default: [keys] dir of host.toml, else <data-dir>/keys]
    #[arg(long, global = true, env = "AGENTHOST_KEY_DIR", value_name = "DIR")]
    key_dir: Option<PathBuf>,

    /// Serve only this tenant and refuse every other (account isolation)
    #[arg(long, global = true, env = "AGENTHOST_TENANT_SCOPE", value_name = "ID")]
    tenant_scope: Option<String>,

    /// Log filter for stderr, e.g. `info` or `agenthost=debug,agenthost::guest=trace`
    #[arg(long, global = true, env = "AGENTHOST_LOG", default_value = "warn", value_name = "FILTER")]
    log: String,

    /// Export spans (invocations, host calls, policy decisions) over OTLP/HTTP to this
    /// collector, e.g. http://127.0.0.1:4318
    #[arg(long, global = true, env = "OTEL_EXPORTER_OTLP_ENDPOINT", value_name = "URL")]
    otlp_endpoint: Option<String>,
}

#[derive(Subcommand)]
enum Command {
    /// Run a tool or an agent once and print its JSON output
    Run(RunArgs),
    /// Show a component's world, imports, exports, digest and (for a tool) its spec
    Inspect {
        /// The component (.wasm)
        component: PathBuf,
    },
    /// Run the triage agent with the calculator tool on the built-in model
    Demo(demo::DemoArgs),
    /// Write or sign a component manifest
    #[command(subcommand)]
    Manifest(governance_cli::ManifestCommand),
    /// List, show, approve or deny pending approval requests
    #[command(subcommand)]
    Approvals(governance_cli::ApprovalsCommand),
    /// Resolve layered policy packs into a signed manifest, or run their test cases
    #[command(subcommand)]
    Policy(governance_cli::PolicyCommand),
    /// Verify the audit trail or query its records
    #[command(subcommand)]
    Audit(audit_cli::AuditCommand),
    /// Create the AWS resources the configured backends use
    #[command(subcommand)]
    Aws(aws_cli::AwsCommand),
    /// Serve the HTTP API: invoke, run, deploy, aliases, health and metrics
    Serve(server_cli::ServeArgs),
    /// Run as an AWS Lambda function: API Gateway, Function URL, SQS and
    /// direct-invoke events through the same server (chosen by itself when
    /// started with no arguments and AWS_LAMBDA_RUNTIME_API is set)
    Lambda,
    /// Write the registry a package carries: every aliased version, checked,
    /// with a precompiled artifact for the Lambda engine
    Bundle(bundle_cli::BundleArgs),
    /// Mint bearer tokens for the HTTP API (development and tests)
    #[command(subcommand)]
    Token(server_cli::TokenCommand),
    /// Sign a component version as its publisher (for `deploy`)
    Sign(registry_cli::SignArgs),
    /// Publish a signed component version to a registry
    Deploy(registry_cli::DeployArgs),
    /// List a component's versions and aliases
    Versions(registry_cli::VersionsArgs),
    /// Point `stable` or `canary` (with a weight) at a version
    Alias(registry_cli::AliasArgs),
    /// Make the canary the stable version
    Promote(registry_cli::NameArgs),
    /// Return to the previous stable version and drop the canary
    Rollback(registry_cli::NameArgs),
    /// Ask a server's /healthz: exit 0 when it answers 2xx (a container's
    /// HEALTHCHECK; the image has no shell or curl)
    Healthcheck(server_cli::HealthcheckArgs),
    /// Make an ed25519 key pair: <STEM>.key (PKCS#8 PEM, private) and <STEM>.pub
    Keygen {
        #[arg(value_name = "STEM")]
        stem: PathBuf,
    },
}

#[derive(Args)]
struct LimitArgs {
    /// Fuel budget per call (about one unit per wasm instruction)
    #[arg(long, value_name = "N")]
    fuel: Option<u64>,
    /// Linear memory limit per instance, in bytes
    #[arg(long, value_name = "BYTES")]
    memory: Option<u64>,
    /// Wall-clock limit per call, in milliseconds
    #[arg(long, value_name = "MS")]
    timeout: Option<u64>,
    /// Largest output accepted from a component, in bytes
    #[arg(long, value_name = "BYTES")]
    max_output: Option<u64>,
}

#[derive(Args)]
struct RunArgs {
    /// The component to run (.wasm): a tool or an agent
    component: PathBuf,
    /// The input as JSON text [default: {}]
    #[arg(long, value_name = "JSON", conflicts_with = "input_file")]
    input: Option<String>,
    /// Read the JSON input from a file (`-` for stdin)
    #[arg(long, value_name = "FILE")]
    input_file: Option<PathBuf>,
    /// A tool the agent may call: a .wasm file or a directory of them (repeatable)
    #[arg(long = "tool", value_name = "DIR_OR_WASM")]
    tools: Vec<PathBuf>,
    /// Print the run's trace ids and transcript (model turns, tool calls) with the output
    #[arg(long)]
    transcript: bool,
    /// The tenant to run for [default: host.toml's default_tenant, or the first tenant]
    #[arg(long, value_name = "ID")]
    tenant: Option<String>,
    /// Call as this person or service of the tenant (the requester of any
    /// approval); needs --key [default: the operating-system user, `unix:<name>`]
    #[arg(long = "as", value_name = "NAME", requires = "key")]
    principal: Option<String>,
    /// The private key (PKCS#8 PEM) that proves --as: its public half must be
    /// the one the tenant lists for NAME ([principals] or [approvers])
    #[arg(long, value_name = "KEY", requires = "principal")]
    key: Option<PathBuf>,
    /// Re-submit the call of an approved request (same input): runs in its run with its tokens
    #[arg(long, value_name = "REQUEST_ID")]
    approval: Option<String>,
    /// An approval token (JSON file from `approvals approve`) to present (repeatable)
    #[arg(long = "token", value_name = "FILE")]
    tokens: Vec<PathBuf>,
    /// After the run, write the host's Prometheus metrics (text format) to FILE
    #[arg(long, value_name = "FILE")]
    metrics: Option<PathBuf>,
    #[command(flatten)]
    limits: LimitArgs,
}

/// A failure, already reported, that decides the exit status.
pub(crate) enum Failure {
    /// The component failed: the structured error goes to stderr.
    Invoke(InvokeError),
    /// The command was used wrongly or the host could not start.
    Usage(anyhow::Error),
}

impl From<InvokeError> for Failure {
    fn from(e: InvokeError) -> Self {
        Failure::Invoke(e)
    }
}

impl From<anyhow::Error> for Failure {
    fn from(e: anyhow::Error) -> Self {
        Failure::Usage(e)
    }
}

/// When `main` began: startup phases are logged (at debug, target
/// `agenthost::startup`) as milliseconds since then, so an operator can
/// see where a cold start goes.
static STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Logs that startup reached `phase`.
pub(crate) fn startup_phase(phase: &'static str) {
    let ms = STARTED.get_or_init(std::time::Instant::now).elapsed().as_secs_f64() * 1e3;
    tracing::debug!(target: "agenthost::startup", phase, ms = format_args!("{ms:.2}"), "startup");
}

fn main() -> ExitCode {
    STARTED.get_or_init(std::time::Instant::now);
    // A Lambda `bootstrap` starts with no arguments.
    let cli = if std::env::args_os().len() == 1 && std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        Cli::parse_from(["agenthost", "lambda"])
    } else {
        Cli::parse()
    };
    let runtime = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(runtime) => runtime,
        Err(e) => {
            write_stderr(&format!("error: cannot start the async runtime: {e}"));
            return ExitCode::from(2);
        }
    };
    let tracer = {
        let _entered = runtime.enter();
        init_logging(&cli.log, cli.otlp_endpoint.as_deref())
    };
    let outcome = runtime.block_on(dispatch(cli));
    if let Some(provider) = tracer {
        // Sends the spans still batched before the process ends.
        if let Err(e) = provider.shutdown() {
            write_stderr(&format!("warning: not every span reached the OTLP collector: {e}"));
        }
    }
    match outcome {
        Ok(code) => code,
        Err(Failure::Invoke(e)) => {
            write_stderr(&serde_json::to_string_pretty(&e.to_json()).unwrap_or_else(|_| e.to_string()));
            ExitCode::from(1)
        }
        Err(Failure::Usage(e)) => {
            write_stderr(&format!("error: {e:#}"));
            ExitCode::from(2)
        }
    }
}

fn init_logging(filter: &str, otlp: Option<&str>) -> Option<opentelemetry_sdk::trace::SdkTracerProvider> {
    use tracing_subscriber::Layer as _;
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let filter = tracing_subscriber::EnvFilter::try_new(filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("warn"));
    let stderr = tracing_subscriber::fmt::layer().with_writer(std::io::stderr).with_filter(filter);
    let provider =
        otlp.and_then(|endpoint| match agenthost::telemetry::otlp_provider(endpoint, "agenthost") {
            Ok(provider) => Some(provider),
            Err(e) => {
                write_stderr(&format!("warning: {e}; spans are not exported"));
                None
            }
        });
    let otel = provider.as_ref().map(|p| {
        agenthost::telemetry::layer(p).with_filter(tracing_subscriber::EnvFilter::new("agenthost=info"))
    });
    tracing_subscriber::registry().with(stderr).with(otel).init();
    provider
}

async fn dispatch(cli: Cli) -> Result<ExitCode, Failure> {
    let data = data_dir(cli.data_dir.as_deref());
    let cache_dir = if cli.no_cache { None } else { Some(data.join("cache")) };
    let governance =
        || governance_cli::load_governance(cli.config.as_deref(), cli.tenant_scope.as_deref(), &data);
    let done = |r: Result<(), Failure>| r.map(|()| ExitCode::SUCCESS);
    let uses_data = match &cli.command {
        Command::Policy(_)
        | Command::Keygen { .. }
        | Command::Manifest(_)
        | Command::Token(_)
        | Command::Healthcheck(_)
        | Command::Sign(_) => false,
        Command::Approvals(a) => a.remote().is_none(),
        Command::Deploy(a) => a.target.is_local(),
        Command::Versions(a) => a.target.is_local(),
        Command::Alias(a) => a.target.is_local(),
        Command::Promote(a) | Command::Rollback(a) => a.target.is_local(),
        _ => true,
    };
    if uses_data {
        // Whoever else can write here could plant evidence or artifacts.
        agenthost::keystore::check_data_dir(&data).map_err(|e| anyhow::anyhow!(e))?;
    }
    let keys = Keys { flag: cli.key_dir.clone(), config: cli.config.clone(), data: data.clone() };
    match cli.command {
        Command::Run(args) => {
            let governance = governance()?;
            let host_keys = keys.load(governance.settings()).await?;
            done(run(args, cache_dir, governance, &data, &host_keys).await)
        }
        Command::Inspect { component } => {
            let governance = governance()?;
            let host_keys = keys.load(governance.settings()).await?;
            done(inspect(&component, cache_dir, governance, &host_keys).await)
        }
        Command::Demo(args) => {
            let host_keys = keys.load(&agenthost::governance::HostSettings::default()).await?;
            done(demo::run(args, cache_dir, &data, &host_keys).await)
        }
        // A one-off compile: no cache, so nothing is written under a key it does not hold.
        Command::Manifest(command) => done(governance_cli::manifest(command, None).await),
        Command::Approvals(command) if command.remote().is_some() => {
            done(governance_cli::approvals_remote(command).await)
        }
        Command::Approvals(command) => {
            let governance = governance()?;
            let host_keys = keys.load(governance.settings()).await?;
            done(governance_cli::approvals(command, &governance, &data, &host_keys).await)
        }
        Command::Policy(command) => done(governance_cli::policy(command)),
        Command::Audit(command) => {
            let governance = governance()?;
            let key_dir = keys.dir(governance.settings());
            audit_cli::run(command, &data, &governance.settings().aws, key_dir.as_deref()).await
        }
        Command::Aws(command) => done(aws_cli::run(command, governance()?.settings()).await),
        Command::Keygen { stem } => done(governance_cli::keygen(&stem)),
        Command::Serve(args) => {
            let governance = governance()?;
            let host_keys = keys.load(governance.settings()).await?;
            done(server_cli::serve(args, cache_dir, governance, &data, &host_keys).await)
        }
        Command::Lambda => {
            startup_phase("arguments and logging");
            let governance = governance()?;
            startup_phase("governance loaded");
            let host_keys = keys.load(governance.settings()).await?;
            startup_phase("keys read");
            done(lambda_cli::lambda(cache_dir, governance, &data, &host_keys).await)
        }
        Command::Bundle(args) => {
            let governance = governance()?;
            let host_keys = keys.load(governance.settings()).await?;
            done(bundle_cli::bundle(args, governance, &data, &host_keys).await)
        }
        Command::Token(command) => done(server_cli::token(command)),
        Command::Healthcheck(args) => Ok(server_cli::healthcheck(args).await),
        Command::Sign(args) => done(registry_cli::sign(args)),
        command => {
            // The registry commands: on a server, or on this data directory.
            let local = if uses_data {
                let governance = governance()?;
                let host_keys = keys.load(governance.settings()).await?;
                Some(registry_cli::Local::open(governance, &data, host_keys).await?)
            } else {
                None
            };
            done(match command {
                Command::Deploy(args) => registry_cli::deploy(args, local).await,
                Command::Versions(args) => registry_cli::versions(args, local).await,
                Command::Alias(args) => registry_cli::alias(args, local).await,
                Command::Promote(args) => registry_cli::promote_or_rollback(args, false, local).await,
                Command::Rollback(args) => registry_cli::promote_or_rollback(args, true, local).await,
                _ => Err(Failure::Usage(anyhow::anyhow!("unhandled command"))),
            })
        }
    }
}

/// Where the host's keys come from: `--key-dir`, `[keys]` in host.toml,
/// else `<data-dir>/keys`.
struct Keys {
    flag: Option<PathBuf>,
    config: Option<PathBuf>,
    data: PathBuf,
}

impl Keys {
    /// The key directory, when the keys come from one.
    fn dir(&self, settings: &agenthost::governance::HostSettings) -> Option<PathBuf> {
        if settings.keys.source == agenthost::keystore::KeySource::Secretsmanager && self.flag.is_none() {
            return None;
        }
        let configured = settings.keys.dir.as_ref().map(|dir| match &self.config {
            Some(config) if dir.is_relative() => config.join(dir),
            _ => dir.clone(),
        });
        Some(self.flag.clone().or(configured).unwrap_or_else(|| self.data.join("keys")))
    }

    async fn load(
        &self,
        settings: &agenthost::governance::HostSettings,
    ) -> Result<agenthost::keystore::HostKeys, Failure> {
        use agenthost::keystore::{DEFAULT_AUDIT_SECRET, DEFAULT_CACHE_SECRET, HostKeys};
        let keys = match self.dir(settings) {
            Some(dir) => HostKeys::open_dir(&dir, Some(&self.data.join("audit").join("audit.key"))),
            None => {
                let client = aws_sdk_secretsmanager::Client::new(&settings.aws.load().await);
                let audit = settings.keys.audit_secret.as_deref().unwrap_or(DEFAULT_AUDIT_SECRET);
                let cache = settings.keys.cache_secret.as_deref().unwrap_or(DEFAULT_CACHE_SECRET);
                HostKeys::from_secrets_manager(&client, audit, cache).await
            }
        };
        keys.map_err(|e| Failure::Usage(anyhow::anyhow!(e)))
    }
}

fn data_dir(explicit: Option<&Path>) -> PathBuf {
    if let Some(dir) = explicit {
        return dir.to_path_buf();
    }
    // In Lambda only /tmp is writable.
    if std::env::var_os("AWS_LAMBDA_RUNTIME_API").is_some() {
        return PathBuf::from("/tmp/agenthost");
    }
    if let Some(cache) = std::env::var_os("XDG_CACHE_HOME").filter(|v| !v.is_empty()) {
        return PathBuf::from(cache).join("agenthost");
    }
    match std::env::var_os("HOME").filter(|v| !v.is_empty()) {
        Some(home) => PathBuf::from(home).join(".cache").join("agenthost"),
        None => PathBuf::from(".agenthost"),
    }
}

/// The limits of host.toml's `[limits]`, then the command line's.
fn host_config(
    limits: &LimitArgs,
    host: &agenthost::settings::LimitSettings,
    cache_dir: Option<PathBuf>,
) -> HostConfig {
    let mut config = HostConfig { cache_dir, ..HostConfig::default() };
    let flags = agenthost::settings::LimitSettings {
        timeout_ms: limits.timeout,
        fuel: limits.fuel,
        memory_bytes: limits.memory,
        output_bytes: limits.max_output,
        host_calls: None,
    };
    config.limits = config.limits.with_settings(host).with_settings(&flags);
    config.engine.max_memory_bytes = config.engine.max_memory_bytes.max(config.limits.memory_bytes);
    config
}

fn read_input(args: &RunArgs) -> anyhow::Result<Value> {
    let (text, source) = match (&args.input, &args.input_file) {
        (Some(text), _) => (text.clone(), "--input".to_owned()),
        (None, Some(path)) if path.as_os_str() == "-" => {
            let text =
                std::io::read_to_string(std::io::stdin()).context("cannot read the input from stdin")?;
            (text, "stdin".to_owned())
        }
        (None, Some(path)) => {
            let text = std::fs::read_to_string(path)
                .with_context(|| format!("cannot read the input file {}", path.display()))?;
            (text, path.display().to_string())
        }
        (None, None) => ("{}".to_owned(), "the default input".to_owned()),
    };
    serde_json::from_str(&text).with_context(|| format!("the input from {source} is not JSON"))
}

/// The .wasm files a `--tool` argument names.
fn tool_files(path: &Path) -> anyhow::Result<Vec<PathBuf>> {
    if path.is_dir() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(path)
            .with_context(|| format!("cannot list the tool directory {}", path.display()))?
            .filter_map(|entry| entry.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|ext| ext == "wasm"))
            .collect();
        files.sort();
        if files.is_empty() {
            anyhow::bail!("the tool directory {} holds no .wasm file", path.display());
        }
        Ok(files)
    } else {
        Ok(vec![path.to_path_buf()])
    }
}

async fn run(
    args: RunArgs,
    cache_dir: Option<PathBuf>,
    governance: Arc<Governance>,
    data: &Path,
    keys: &agenthost::keystore::HostKeys,
) -> Result<(), Failure> {
    let input = read_input(&args)?;
    let tenants: Vec<&agenthost::governance::TenantConfig> =
        governance.tenants().map(|t| &t.config).collect();
    let backends = Backends::open(governance.settings(), &tenants, data, &keys.audit)
        .await
        .map_err(|e| anyhow::anyhow!(e))?;
    let mut config =
        backends.host_config(host_config(&args.limits, &governance.settings().limits, cache_dir));
    config.cache_key = Some(keys.cache);
    config.request_key = Some(keys.audit.clone());
    config.egress_ca = governance.egress_ca().map_err(|e| anyhow::anyhow!(e))?;
    config.governance = Some(governance);
    let host = Host::new(config)?;
    let result = run_on(&host, &args, &input).await;
    if let Some(path) = &args.metrics {
        std::fs::write(path, host.metrics_text().await)
            .with_context(|| format!("cannot write the metrics to {}", path.display()))?;
    }
    drop(host);
    backends.close().await.map_err(|e| anyhow::anyhow!(e))?;
    print_json(&result?)
}

async fn run_on(host: &Host, args: &RunArgs, input: &Value) -> Result<Value, Failure> {
    let load = || LoadOptions { tenant: args.tenant.clone(), ..LoadOptions::default() };
    for path in &args.tools {
        for file in tool_files(path)? {
            let tool = host.load_file(&file, load()).await?;
            host.register_tool(tool)?;
        }
    }
    let mut approvals: Vec<ApprovalToken> = Vec::new();
    for path in &args.tokens {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("cannot read the approval token {}", path.display()))?;
        // The output of `approvals approve` as a whole, or just its `token`.
        let mut value: Value =
            serde_json::from_str(&text).with_context(|| format!("{} is not JSON", path.display()))?;
        if let Some(inner) = value.get_mut("token").map(Value::take) {
            value = inner;
        }
        let token = serde_json::from_value(value).with_context(|| {
            format!("{} is not an approval token (JSON from `approvals approve`)", path.display())
        })?;
        approvals.push(token);
    }
    let (principal, principal_key) = caller(host, args)?;
    let options = CallOptions {
        principal: Some(principal),
        principal_key,
        approvals,
        approval_request: args.approval.clone(),
        ..CallOptions::default()
    };
    let component = host.load_file(&args.component, load()).await?;
    Ok(match component.world() {
        World::Tool => {
            let output = host.invoke_tool_with(&component, input, &options).await?;
            if args.transcript { json!({ "output": output }) } else { output }
        }
        World::Agent => {
            let run = host.run_agent_with(&component, input, &options).await?;
            if args.transcript {
                json!({ "output": run.output, "trace": run.trace, "transcript": run.transcript.events() })
            } else {
                run.output
            }
        }
    })
}

/// Who is calling: `--as NAME` proven by `--key`, else the OS user.
fn caller(host: &Host, args: &RunArgs) -> Result<(String, Option<String>), Failure> {
    let (Some(name), Some(key)) = (&args.principal, &args.key) else {
        return Ok((agenthost::keystore::os_user(), None));
    };
    let key = agenthost::governance::KeyPair::read(key).map_err(|e| anyhow::anyhow!("--key: {e}"))?;
    let governance = host.governance();
    let tenant_id = args.tenant.as_deref().unwrap_or(governance.default_tenant());
    let tenant = governance.tenant(tenant_id).map_err(|e| anyhow::anyhow!(e))?;
    let key_id = tenant.authenticate(name, &key).map_err(|e| anyhow::anyhow!("--as {name}: {e}"))?;
    Ok((name.clone(), Some(key_id)))
}

async fn inspect(
    path: &Path,
    cache_dir: Option<PathBuf>,
    governance: Arc<Governance>,
    keys: &agenthost::keystore::HostKeys,
) -> Result<(), Failure> {
    let host = Host::new(HostConfig {
        cache_dir,
        cache_key: Some(keys.cache),
        governance: Some(governance),
        ..HostConfig::default()
    })?;
    let component = host.load_file(path, LoadOptions::default()).await?;
    print_json(&describe(&component))
}

/// The JSON `inspect` prints.
fn describe(component: &Arc<LoadedComponent>) -> Value {
    let id = component.id();
    let mut report = json!({
        "name": id.name,
        "version": id.version,
        "digest": id.digest,
        "world": component.world().to_string(),
        "imports": component.import_status(),
        "exports": component.exports(),
        "limits": component.limits(),
        "tenant": component.tenant(),
        "policy": component.policy_source(),
        "effective_tier": component.tier(),
    });
    if let Some(spec) = component.tool_spec() {
        let schema: Value =
            serde_json::from_str(&spec.input_schema).unwrap_or(Value::String(spec.input_schema.clone()));
        report["tool"] = json!({
            "name": spec.name,
            "version": spec.version,
            "description": spec.description,
            "risk_tier": tier_name(spec.risk_tier),
            "input_schema": schema,
        });
    }
    if let Some(spec) = component.agent_spec() {
        report["agent"] =
            json!({ "name": spec.name, "version": spec.version, "description": spec.description });
    }
    report
}

pub(crate) fn print_json(value: &Value) -> Result<(), Failure> {
    let mut text = serde_json::to_string_pretty(value).context("cannot render the output")?;
    text.push('\n');
    write_stdout(&text)
}

/// Writes a line to stderr, best effort: there is nowhere else to report.
pub(crate) fn write_stderr(text: &str) {
    use std::io::Write as _;
    let _ = writeln!(std::io::stderr().lock(), "{text}");
}

/// Writes to stdout; a closed pipe or a full disk is an error, not a panic.
pub(crate) fn write_stdout(text: &str) -> Result<(), Failure> {
    use std::io::Write as _;
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes()).and_then(|()| stdout.flush()).context("cannot write to stdout")?;
    Ok(())
}
