//! The governance commands of the `agenthost` CLI: `manifest`, `approvals`,
//! `policy` and `keygen`.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use clap::{Args, Subcommand, ValueEnum};
use serde_json::{Value, json};

use agenthost::audit::AuditLog;
use agenthost::governance::approvals::{self, Status, TOKEN_TTL_SECS};
use agenthost::governance::packs::{self, Pack};
use agenthost::governance::policy::Mode;
use agenthost::governance::{ComponentManifest, Governance, KeyPair};
use agenthost::keys;
use agenthost::{Host, HostConfig, LoadOptions};

use crate::{Failure, print_json};

#[derive(Subcommand)]
pub enum ManifestCommand {
    /// Write a starter manifest for a component (`<stem>.manifest.toml` beside it)
    Init {
        /// The component (.wasm)
        component: PathBuf,
        /// Where to write it [default: beside the component]
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
        /// Replace an existing manifest
        #[arg(long)]
        force: bool,
    },
    /// Sign a manifest (ed25519 over its canonical JSON), in place
    Sign {
        manifest: PathBuf,
        /// The signing key (PKCS#8 PEM, from `agenthost keygen`)
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
    },
}

#[derive(Subcommand)]
pub enum ApprovalsCommand {
    /// List approval requests (pending ones unless --all)
    List {
        #[arg(long)]
        tenant: Option<String>,
        #[arg(long)]
        all: bool,
    },
    /// Show one request in full
    Show { id: String },
    /// Approve a request: sign a single-use token bound to its call
    Approve {
        id: String,
        /// The approver's name, as registered for the tenant
        #[arg(long = "as", value_name = "NAME")]
        approver: String,
        /// The approver's signing key (PKCS#8 PEM)
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        /// How long the token stays valid, in seconds
        #[arg(long, default_value_t = TOKEN_TTL_SECS, value_name = "SECS")]
        ttl: u64,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
    /// Deny a request
    Deny {
        id: String,
        /// The approver's name, as registered for the tenant
        #[arg(long = "as", value_name = "NAME")]
        approver: String,
        /// The approver's signing key (PKCS#8 PEM): a denial is authenticated like an approval
        #[arg(long, value_name = "KEY")]
        key: PathBuf,
        #[arg(long, default_value = "")]
        reason: String,
        #[command(flatten)]
        remote: RemoteArgs,
    },
}

/// Decide on a server instead of this data directory.
#[derive(Args, Clone)]
pub struct RemoteArgs {
    /// A running server's base URL: fetch the request there, sign the
    /// token here, and send it
    #[arg(long, value_name = "URL", requires_all = ["token", "tenant"])]
    pub server: Option<String>,
    /// A file holding the approver's bearer token (its subject is --as)
    #[arg(long, value_name = "FILE")]
    pub token: Option<PathBuf>,
    /// The request's tenant
    #[arg(long, value_name = "ID")]
    pub tenant: Option<String>,
    /// The host's public key (SPKI PEM: `audit.pub` in its key directory):
    /// check here that the request reads as the host made it, instead of
    /// taking the server's word for it
    #[arg(long, value_name = "FILE")]
    pub host_key: Option<PathBuf>,
}

impl ApprovalsCommand {
    /// The server to decide on, when the command names one.
    pub fn remote(&self) -> Option<&RemoteArgs> {
        match self {
            ApprovalsCommand::Approve { remote, .. } | ApprovalsCommand::Deny { remote, .. } => {
                remote.server.is_some().then_some(remote)
            }
            _ => None,
        }
    }
}

/// `approvals approve|deny --server`: the approver's key never leaves
/// this machine; the server receives the signed token.
pub async fn approvals_remote(command: ApprovalsCommand) -> Result<(), Failure> {
    let (id, approver, key, reason, remote, ttl) = match command {
        ApprovalsCommand::Approve { id, approver, key, ttl, reason, remote } => {
            (id, approver, key, reason, remote, Some(ttl))
        }
        ApprovalsCommand::Deny { id, approver, key, reason, remote } => {
            (id, approver, key, reason, remote, None)
        }
        _ => return Err(anyhow!("only approve and deny go to a server").into()),
    };
    let (Some(server), Some(token), Some(tenant)) = (&remote.server, &remote.token, &remote.tenant) else {
        return Err(anyhow!("--server needs --token and --tenant").into());
    };
    let client = crate::registry_cli::Remote::connect(server, token)?;
    let key = KeyPair::read(&key).map_err(|e| anyhow!("--key: {e}"))?;
    let path = format!("/v1/tenants/{tenant}/approvals/{id}");
    let Some(ttl) = ttl else {
        let answer = client
            .send(reqwest::Method::POST, &format!("{path}:deny"), Some(json!({ "reason": reason })))
            .await?;
        return print_json(&answer);
    };
    let shown = client.send(reqwest::Method::GET, &path, None).await?;
    if let Some(host_key) = &remote.host_key {
        let key = keys::PublicKey::read(host_key).map_err(|e| anyhow!("--host-key: {e}"))?;
        let request: approvals::ApprovalRequest = serde_json::from_value(shown.clone())
            .context("the server's answer is not an approval request")?;
        request.verify_host_signature(&key).map_err(|e| anyhow!("request `{id}`: {e}; not approved"))?;
    } else if shown.get("host_signed") != Some(&Value::Bool(true)) {
        return Err(anyhow!(
            "request `{id}` does not read as the host made it ({}); not approved",
            shown.get("host_signed").cloned().unwrap_or(Value::Null)
        )
        .into());
    }
    let request: approvals::ApprovalRequest =
        serde_json::from_value(shown).context("the server's answer is not an approval request")?;
    if request.id != id || request.tenant != *tenant {
        return Err(anyhow!(
            "the server answered with another request ({} of `{}`); not approved",
            request.id,
            request.tenant
        )
        .into());
    }
    let claims = approvals::TokenClaims::for_request(&request, &approver, ttl);
    let token = approvals::ApprovalToken::sign(claims, &key).map_err(|e| anyhow!(e))?;
    let answer = client
        .send(
            reqwest::Method::POST,
            &format!("{path}:approve"),
            Some(json!({ "token": token, "reason": reason })),
        )
        .await?;
    // What was approved, as the approver saw it.
    print_json(
        &json!({ "decision": answer, "tool": request.tool, "preview": request.preview, "token": token }),
    )
}

#[derive(Clone, Copy, ValueEnum)]
pub enum ModeArg {
    Enforce,
    LogOnly,
}

#[derive(Args)]
pub struct ResolveArgs {
    /// The base policy pack (platform/security)
    #[arg(long, value_name = "DIR")]
    base: PathBuf,
    /// The domain pack
    #[arg(long, value_name = "DIR")]
    domain: Option<PathBuf>,
    /// The agent-intent pack
    #[arg(long, value_name = "DIR")]
    intent: Option<PathBuf>,
    /// The key to sign the manifest with (PKCS#8 PEM)
    #[arg(long, value_name = "KEY")]
    sign_key: PathBuf,
    /// Where to write the signed manifest
    #[arg(short, long, value_name = "FILE")]
    output: PathBuf,
    /// Act on denials, or only record them
    #[arg(long, value_enum, default_value = "enforce")]
    mode: ModeArg,
    /// Days until the manifest expires
    #[arg(long, default_value_t = 90, value_name = "DAYS")]
    valid_days: u64,
    /// A tenant this stack governs (repeatable, at least one): no other
    /// tenant's host accepts it
    #[arg(long = "tenant", value_name = "ID", required = true)]
    tenants: Vec<String>,
    /// A resolved stack (file) that the tenants' components may name in
    /// their own manifests instead of this one (repeatable)
    #[arg(long = "allow-stack", value_name = "FILE")]
    allow_stacks: Vec<PathBuf>,
}

#[derive(Subcommand)]
pub enum PolicyCommand {
    /// Compose base/domain/intent packs into one signed policy manifest
    Resolve(ResolveArgs),
    /// Run the packs' test cases (each against the stack up to its layer)
    Test {
        /// Pack directories: a base, then optionally a domain and an intent pack
        #[arg(required = true)]
        packs: Vec<PathBuf>,
    },
}

pub async fn manifest(command: ManifestCommand, cache_dir: Option<PathBuf>) -> Result<(), Failure> {
    match command {
        ManifestCommand::Init { component, output, force } => {
            let output = output.unwrap_or_else(|| ComponentManifest::path_for(&component));
            if output.exists() && !force {
                return Err(anyhow!("{} exists already (use --force to replace it)", output.display()).into());
            }
            let host = Host::new(HostConfig { cache_dir, ..HostConfig::default() })?;
            let bytes =
                std::fs::read(&component).with_context(|| format!("cannot read {}", component.display()))?;
            let loaded = host
                .load(&bytes, LoadOptions { name_hint: Some("component".into()), ..LoadOptions::default() })
                .await?;
            let interfaces: Vec<String> = loaded
                .imports()
                .iter()
                .filter_map(|i| i.strip_prefix("agenthost:platform/"))
                .filter_map(|i| i.split('@').next())
                .filter(|i| *i != "types")
                .map(str::to_owned)
                .collect();
            let id = loaded.id();
            let manifest = ComponentManifest {
                name: id.name.clone(),
                version: id.version.clone(),
                digest: id.digest.clone(),
                world: loaded.world().name().to_owned(),
                risk_tier: loaded.tier(),
                policy: None,
                policy_digest: None,
                requests: agenthost::governance::manifest::Requests { interfaces, ..Default::default() },
                input_schema: loaded.tool_spec().map(|s| s.input_schema.clone()),
                signature: None,
            };
            let mut text = format!(
                "# Manifest of {}@{} — written by `agenthost manifest init`; review it.\n\
                 # The host grants the intersection of `requests` with the tenant's grants,\n\
                 # the tier's ceiling and the policy pack. Names (memory_namespaces, topics,\n\
                 # tools, models) start empty: list what the component needs.\n",
                id.name, id.version
            );
            text.push_str(&manifest.to_toml().map_err(|e| anyhow!(e))?);
            std::fs::write(&output, text).with_context(|| format!("cannot write {}", output.display()))?;
            print_json(
                &json!({ "written": output, "name": id.name, "version": id.version, "world": manifest.world, "risk_tier": manifest.risk_tier }),
            )
        }
        ManifestCommand::Sign { manifest, key } => {
            let key = KeyPair::read(&key).map_err(|e| anyhow!(e))?;
            let mut parsed = ComponentManifest::read(&manifest).map_err(|e| anyhow!(e))?;
            let text = std::fs::read_to_string(&manifest)
                .with_context(|| format!("cannot read {}", manifest.display()))?;
            // Keep relative policy paths as written.
            let raw: ComponentManifest =
                toml::from_str(&text).map_err(|e| anyhow!("{}: {e}", manifest.display()))?;
            parsed.policy = raw.policy;
            parsed.sign(&key).map_err(|e| anyhow!(e))?;
            std::fs::write(&manifest, parsed.to_toml().map_err(|e| anyhow!(e))?)
                .with_context(|| format!("cannot write {}", manifest.display()))?;
            print_json(&json!({ "signed": manifest, "key_id": key.id() }))
        }
    }
}

pub async fn approvals(
    command: ApprovalsCommand,
    governance: &Governance,
    data: &Path,
    keys: &agenthost::keystore::HostKeys,
) -> Result<(), Failure> {
    agenthost::backends::connect_approvals(governance, data).await.map_err(|e| anyhow!(e))?;
    let store = governance.approvals().ok_or_else(|| anyhow!("no approvals store (no data directory)"))?;
    // An approval or denial is evidence: it goes into the audit trail
    // before the command reports it done.
    let record = |request: &approvals::ApprovalRequest,
                  approver: &str,
                  key_id: String,
                  outcome: &str,
                  reason: &str| {
        if !governance.settings().audit.enabled {
            return Ok::<(), anyhow::Error>(());
        }
        let settings = &governance.settings().audit;
        let log = AuditLog::open(&data.join("audit"), settings.options(), keys.audit.clone(), Vec::new())?;
        let event = request.decision_event(approver, &key_id, outcome, reason);
        log.record_blocking(&event)?;
        log.close()?;
        Ok(())
    };
    match command {
        ApprovalsCommand::List { tenant, all } => {
            let requests = store.list(tenant.as_deref()).await.map_err(|e| anyhow!(e))?;
            let rows: Vec<Value> = requests
                .iter()
                .filter(|r| all || (r.status == Status::Pending && r.expires_at > approvals::now_secs()))
                .map(|r| {
                    json!({
                        "id": r.id, "tenant": r.tenant, "tool": r.tool, "tier": r.tier,
                        "requested_by": r.requested_by, "status": r.status,
                        "approvals": format!("{}/{}", r.tokens.len(), r.approvals_needed),
                        "run_id": r.run_id, "expires_at": r.expires_at,
                    })
                })
                .collect();
            print_json(&Value::Array(rows))
        }
        ApprovalsCommand::Show { id } => {
            let request = store.get(&id).await.map_err(|e| anyhow!(e))?;
            let mut shown = serde_json::to_value(&request).context("cannot render the request")?;
            if let Some(map) = shown.as_object_mut() {
                map.remove("resume");
            }
            shown["host_signed"] = match request.verify_host_signature(&keys.audit.public()) {
                Ok(()) => Value::Bool(true),
                Err(why) => Value::String(why),
            };
            print_json(&shown)
        }
        ApprovalsCommand::Approve { id, approver, key, ttl, reason, .. } => {
            let key = KeyPair::read(&key).map_err(|e| anyhow!(e))?;
            let request = store.get(&id).await.map_err(|e| anyhow!(e))?;
            check_approver(governance, &request.tenant, &approver, &key)?;
            // What the approver is shown must be what the host recorded.
            request.verify_host_signature(&keys.audit.public()).map_err(|e| anyhow!("{e}; not approved"))?;
            let os_user = agenthost::keystore::os_user();
            let who = approvals::Approver { name: &approver, key: &key, os_user: Some(&os_user) };
            let (request, token) =
                store.decide(&id, &who, true, &reason, ttl).await.map_err(|e| anyhow!(e))?;
            record(&request, &approver, key.id(), "approved", &reason)?;
            print_json(&json!({
                "id": request.id,
                "status": request.status,
                "approvals": format!("{}/{}", request.tokens.len(), request.approvals_needed),
                "token": token,
                "resubmit": format!("agenthost run <tool.wasm> --tenant {} --approval {} (same input)", request.tenant, request.id),
            }))
        }
        ApprovalsCommand::Deny { id, approver, key, reason, .. } => {
            let key = KeyPair::read(&key).map_err(|e| anyhow!(e))?;
            let request = store.get(&id).await.map_err(|e| anyhow!(e))?;
            check_approver(governance, &request.tenant, &approver, &key)?;
            let os_user = agenthost::keystore::os_user();
            let who = approvals::Approver { name: &approver, key: &key, os_user: Some(&os_user) };
            let (request, _) = store.decide(&id, &who, false, &reason, 0).await.map_err(|e| anyhow!(e))?;
            record(&request, &approver, key.id(), "denied", &reason)?;
            print_json(&json!({ "id": request.id, "status": request.status }))
        }
    }
}

/// The approver must be registered for the tenant, with this key.
fn check_approver(
    governance: &Governance,
    tenant: &str,
    approver: &str,
    key: &KeyPair,
) -> anyhow::Result<()> {
    let Some(tenant) = governance.tenants().find(|t| t.id() == tenant) else {
        bail!("tenant `{tenant}` is not configured on this host (--config)");
    };
    let Some(registered) = tenant.approvers.get(approver) else {
        let known: Vec<&String> = tenant.approvers.keys().collect();
        bail!("`{approver}` is not an approver of tenant `{}` (approvers: {known:?})", tenant.id());
    };
    if key.id() != registered.id() {
        bail!("that key ({}) is not `{approver}`'s registered key ({})", key.id(), registered.id());
    }
    Ok(())
}

pub fn policy(command: PolicyCommand) -> Result<(), Failure> {
    match command {
        PolicyCommand::Resolve(args) => {
            let mut dirs = vec![args.base.clone()];
            dirs.extend(args.domain.clone());
            dirs.extend(args.intent.clone());
            let packs =
                dirs.iter().map(|d| Pack::read(d)).collect::<Result<Vec<_>, _>>().map_err(|e| anyhow!(e))?;
            for (dir, expected) in [
                (Some(&args.base), packs::Layer::Base),
                (args.domain.as_ref(), packs::Layer::Domain),
                (args.intent.as_ref(), packs::Layer::Intent),
            ] {
                if let Some(dir) = dir
                    && let Some(pack) = packs.iter().find(|p| &p.dir == dir)
                    && pack.layer != expected
                {
                    return Err(anyhow!(
                        "{} is a {} pack, given as --{}",
                        dir.display(),
                        pack.layer.as_str(),
                        expected.as_str()
                    )
                    .into());
                }
            }
            let stack = packs::Stack::build(packs).map_err(|e| anyhow!(e))?;
            let key = KeyPair::read(&args.sign_key).map_err(|e| anyhow!(e))?;
            let mode = match args.mode {
                ModeArg::Enforce => Mode::Enforce,
                ModeArg::LogOnly => Mode::LogOnly,
            };
            let mut component_stacks = Vec::new();
            for file in &args.allow_stacks {
                let bytes = std::fs::read(file).with_context(|| format!("cannot read {}", file.display()))?;
                component_stacks.push(keys::digest(&bytes));
            }
            let binding = packs::Binding { tenants: args.tenants.clone(), component_stacks };
            let manifest =
                packs::resolve(&stack, mode, &binding, &key, args.valid_days.saturating_mul(86_400))
                    .map_err(|e| anyhow!(e))?;
            let text = serde_json::to_string_pretty(&manifest).context("cannot render the manifest")? + "\n";
            std::fs::write(&args.output, &text)
                .with_context(|| format!("cannot write {}", args.output.display()))?;
            print_json(&json!({
                "written": args.output,
                "digest": keys::digest(text.as_bytes()),
                "tenants": manifest.tenants,
                "component_stacks": manifest.component_stacks,
                "key_id": key.id(),
                "mode": manifest.mode,
                "layers": manifest.layers,
                "policies": manifest.policies.len(),
                "constraints": manifest.constraints,
                "expires_at": manifest.expires_at,
            }))
        }
        PolicyCommand::Test { packs } => {
            let stack = packs::stack_of(&packs).map_err(|e| anyhow!(e))?;
            let results = stack.run_cases();
            let failed: Vec<String> =
                results.iter().filter(|r| !r.passed()).map(packs::describe_failure).collect();
            for (pack, (passed, failed)) in packs::summary(&results) {
                crate::write_stderr(&format!("{pack}: {passed} passed, {failed} failed"));
            }
            if failed.is_empty() {
                print_json(&json!({ "passed": results.len(), "failed": 0 }))
            } else {
                Err(anyhow!(
                    "{} of {} policy case(s) failed:\n{}",
                    failed.len(),
                    results.len(),
                    failed.join("\n")
                )
                .into())
            }
        }
    }
}

pub fn keygen(stem: &Path) -> Result<(), Failure> {
    let (id, private, public) = keys::write_key_pair(stem).map_err(|e| anyhow!(e))?;
    print_json(&json!({ "key_id": id, "private_key": private, "public_key": public }))
}

/// The governance of a CLI host: `--config` or the development tenant.
pub fn load_governance(
    config: Option<&Path>,
    scope: Option<&str>,
    data_dir: &Path,
) -> anyhow::Result<Arc<Governance>> {
    let governance = match config {
        Some(dir) => Governance::load(dir, scope, Some(data_dir)),
        None => {
            if scope.is_some() {
                bail!("--tenant-scope needs --config (the tenants it chooses from)");
            }
            Governance::development("default", Some(data_dir))
        }
    };
    governance.map(Arc::new).map_err(|e| anyhow!(e))
}
