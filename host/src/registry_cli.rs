//! `agenthost sign|deploy|versions|alias|promote|rollback`: publish and
//! route component versions, on a server (`--server URL --token FILE`) or,
//! without `--server`, on the registry host.toml names (this data
//! directory's by default; S3 and DynamoDB with `[registry] backend =
//! "s3"`), when no server is serving it.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, anyhow, bail};
use base64::Engine as _;
use clap::Args;
use serde_json::{Value, json};
use sha2::{Digest as _, Sha256};

use agenthost::audit::{self, AuditLog};
use agenthost::governance::{ComponentManifest, Governance, KeyPair};
use agenthost::registry::{Alias, Deploy, Publication, PublisherSignature, Registry};

use crate::{Failure, print_json};

/// Where a registry command acts.
#[derive(Args, Clone)]
pub struct Target {
    /// The tenant whose registry it is
    #[arg(long, value_name = "ID")]
    tenant: String,
    /// A running server's base URL, e.g. http://127.0.0.1:8080 [default:
    /// this data directory's registry]
    #[arg(long, value_name = "URL", requires = "token")]
    server: Option<String>,
    /// A file holding the bearer token (from `agenthost token issue`)
    #[arg(long, value_name = "FILE")]
    token: Option<PathBuf>,
}

#[derive(Args)]
pub struct SignArgs {
    /// The component (.wasm)
    component: PathBuf,
    /// The publisher's ed25519 private key (PKCS#8 PEM)
    #[arg(long, value_name = "KEY")]
    key: PathBuf,
    /// The tenant the version is published to (the signature binds it)
    #[arg(long, value_name = "ID")]
    tenant: String,
    /// Its manifest [default: <stem>.manifest.toml beside it]
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// Where to write the signature [default: <stem>.sig.json beside it]
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

#[derive(Args)]
pub struct DeployArgs {
    /// The component (.wasm)
    component: PathBuf,
    /// Its manifest [default: <stem>.manifest.toml beside it]
    #[arg(long, value_name = "FILE")]
    manifest: Option<PathBuf>,
    /// The publisher's signature [default: <stem>.sig.json beside it]
    #[arg(long, value_name = "FILE")]
    signature: Option<PathBuf>,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Args)]
pub struct VersionsArgs {
    /// The component's name
    name: String,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Args)]
pub struct AliasArgs {
    /// The component's name
    name: String,
    /// `stable` or `canary`
    alias: String,
    /// The version it points at
    version: String,
    /// The canary's share of calls, in percent [default: 10]
    #[arg(long, value_name = "PERCENT")]
    weight: Option<u8>,
    #[command(flatten)]
    pub target: Target,
}

#[derive(Args)]
pub struct NameArgs {
    /// The component's name
    name: String,
    #[command(flatten)]
    pub target: Target,
}

fn beside(component: &Path, suffix: &str) -> PathBuf {
    let stem = component.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
    component.with_file_name(format!("{stem}{suffix}"))
}

fn read_text(path: &Path, what: &str) -> anyhow::Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("cannot read the {what} {}", path.display()))
}

/// `agenthost sign`: the publisher's signature over (tenant, name,
/// version, digest), written beside the component.
pub fn sign(args: SignArgs) -> Result<(), Failure> {
    let bytes = std::fs::read(&args.component)
        .with_context(|| format!("cannot read {}", args.component.display()))?;
    let manifest_path = args.manifest.unwrap_or_else(|| ComponentManifest::path_for(&args.component));
    let manifest = ComponentManifest::read(&manifest_path).map_err(|e| anyhow!(e))?;
    let digest = format!("sha256:{}", hex::encode(Sha256::digest(&bytes)));
    if manifest.digest != digest {
        return Err(anyhow!(
            "{} is for {} but {} is {digest}: rewrite the manifest first (`agenthost manifest init`)",
            manifest_path.display(),
            manifest.digest,
            args.component.display()
        )
        .into());
    }
    let key = KeyPair::read(&args.key).map_err(|e| anyhow!("--key: {e}"))?;
    let manifest_text = read_text(&manifest_path, "manifest")?;
    let manifest_digest = agenthost::registry::manifest_digest(&manifest_text);
    let publication = Publication {
        tenant: &args.tenant,
        name: &manifest.name,
        version: &manifest.version,
        digest: &digest,
        manifest_digest: &manifest_digest,
    };
    let signature = publication.sign(&key);
    let out = args.out.unwrap_or_else(|| beside(&args.component, ".sig.json"));
    let document = json!({
        "tenant": args.tenant,
        "name": manifest.name,
        "version": manifest.version,
        "digest": digest,
        "manifest_digest": manifest_digest,
        "signature": signature,
    });
    let text = serde_json::to_string_pretty(&document).context("cannot render the signature")?;
    std::fs::write(&out, format!("{text}\n")).with_context(|| format!("cannot write {}", out.display()))?;
    print_json(
        &json!({ "signature": out, "key_id": signature.key_id, "component": format!("{}@{}", manifest.name, manifest.version), "digest": digest }),
    )
}

/// A signature file as `sign` writes it, or a bare `{key_id, value}`.
fn read_signature(path: &Path) -> anyhow::Result<PublisherSignature> {
    let mut value: Value = serde_json::from_str(&read_text(path, "signature")?)
        .with_context(|| format!("{} is not JSON", path.display()))?;
    if let Some(inner) = value.get_mut("signature").map(Value::take) {
        value = inner;
    }
    serde_json::from_value(value)
        .with_context(|| format!("{} is not a publisher signature (from `agenthost sign`)", path.display()))
}

/// A client of a server's control plane.
pub struct Remote {
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Remote {
    fn new(target: &Target) -> anyhow::Result<Option<Remote>> {
        let Some(server) = &target.server else {
            return Ok(None);
        };
        let path = target.token.as_ref().ok_or_else(|| anyhow!("--server needs --token FILE"))?;
        Remote::connect(server, path).map(Some)
    }

    /// A client of `server` with the bearer token in the file `token`.
    pub fn connect(server: &str, token: &Path) -> anyhow::Result<Remote> {
        let token = read_text(token, "token")?.trim().to_owned();
        let http = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(120))
            .build()
            .context("cannot build the HTTP client")?;
        Ok(Remote { base: server.trim_end_matches('/').to_owned(), token, http })
    }

    pub async fn send(
        &self,
        method: reqwest::Method,
        path: &str,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let url = format!("{}{path}", self.base);
        let mut request = self.http.request(method, &url).bearer_auth(&self.token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request.send().await.with_context(|| format!("cannot reach {url}"))?;
        let status = response.status();
        let text = response.text().await.with_context(|| format!("cannot read the answer of {url}"))?;
        let value: Value = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !status.is_success() {
            let detail = value
                .get("detail")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .unwrap_or_else(|| value.to_string());
            bail!("{url}: {status}: {detail}");
        }
        Ok(value)
    }
}

/// The local registry, and the audit trail its changes go into.
pub struct Local {
    registry: Registry,
    governance: Arc<Governance>,
    data: PathBuf,
    keys: agenthost::keystore::HostKeys,
}

impl Local {
    fn record(&self, tenant: &str, outcome: &str, what: Value) -> anyhow::Result<()> {
        let settings = &self.governance.settings().audit;
        if !settings.enabled {
            return Ok(());
        }
        let log = AuditLog::open(
            &self.data.join("audit"),
            settings.options(),
            self.keys.audit.clone(),
            Vec::new(),
        )?;
        let event = audit::Event::new(audit::Kind::Deploy, tenant, outcome, what)
            .on_behalf_of(agenthost::keystore::os_user());
        log.record_blocking(&event)?;
        log.close()?;
        Ok(())
    }
}

impl Local {
    /// The registry host.toml names, with the keys its audit records are
    /// signed with.
    pub async fn open(
        governance: Arc<Governance>,
        data: &Path,
        keys: agenthost::keystore::HostKeys,
    ) -> anyhow::Result<Local> {
        let registry = crate::server_cli::registry(data, &governance).await?;
        Ok(Local { registry, governance, data: data.to_owned(), keys })
    }
}

impl Target {
    /// Whether the command acts on the local registry.
    pub fn is_local(&self) -> bool {
        self.server.is_none()
    }
}

fn local(local: Option<Local>) -> anyhow::Result<Local> {
    local.ok_or_else(|| anyhow!("no local registry was opened"))
}

pub async fn deploy(args: DeployArgs, local_registry: Option<Local>) -> Result<(), Failure> {
    let wasm = std::fs::read(&args.component)
        .with_context(|| format!("cannot read {}", args.component.display()))?;
    let manifest_path = args.manifest.unwrap_or_else(|| ComponentManifest::path_for(&args.component));
    let manifest = read_text(&manifest_path, "manifest")?;
    let signature = read_signature(&args.signature.unwrap_or_else(|| beside(&args.component, ".sig.json")))?;
    let tenant = &args.target.tenant;
    if let Some(remote) = Remote::new(&args.target)? {
        let body = json!({
            "wasm": base64::engine::general_purpose::STANDARD.encode(&wasm),
            "manifest": manifest,
            "signature": signature,
        });
        let answer = remote
            .send(reqwest::Method::POST, &format!("/v1/tenants/{tenant}/components"), Some(body))
            .await?;
        return print_json(&answer);
    }
    let local = local(local_registry)?;
    let deployer = agenthost::keystore::os_user();
    let deploy = Deploy { tenant, wasm: &wasm, manifest: &manifest, signature, deployer: &deployer };
    let verified = match local.registry.publish(deploy).await {
        Ok(verified) => verified,
        Err(e) => {
            local.record(tenant, "refused", json!({ "action": "deploy", "why": e.to_string() }))?;
            return Err(anyhow!(e).into());
        }
    };
    let r = &verified.record;
    local.record(
        tenant,
        "deployed",
        json!({ "action": "deploy", "component": r.label(), "digest": r.digest, "publisher": r.publisher }),
    )?;
    print_json(
        &json!({ "name": r.name, "version": r.version, "digest": r.digest, "publisher": r.publisher, "deployed_by": r.deployed_by }),
    )
}

pub async fn versions(args: VersionsArgs, local_registry: Option<Local>) -> Result<(), Failure> {
    let tenant = &args.target.tenant;
    if let Some(remote) = Remote::new(&args.target)? {
        let path = format!("/v1/tenants/{tenant}/components/{}/versions", args.name);
        return print_json(&remote.send(reqwest::Method::GET, &path, None).await?);
    }
    let local = local(local_registry)?;
    let versions = local.registry.store().list_versions(tenant, &args.name).await.map_err(|e| anyhow!(e))?;
    let aliases = local.registry.aliases(tenant, &args.name).await.map_err(|e| anyhow!(e))?;
    let listed: Vec<Value> = versions
        .iter()
        .map(|r| json!({ "version": r.version, "digest": r.digest, "publisher": r.publisher, "deployed_by": r.deployed_by, "deployed_at": r.deployed_at }))
        .collect();
    print_json(&json!({ "tenant": tenant, "name": args.name, "aliases": aliases, "versions": listed }))
}

/// `alias`, `promote` or `rollback` on the local registry.
async fn change_local(
    local_registry: Option<Local>,
    tenant: &str,
    name: &str,
    action: &str,
    change: impl Fn(&mut agenthost::registry::Aliases) -> Result<(), agenthost::registry::RegistryError>,
) -> Result<(), Failure> {
    let local = local(local_registry)?;
    let aliases = local.registry.update_aliases(tenant, name, change).await.map_err(|e| anyhow!(e))?;
    local.record(
        tenant,
        "changed",
        json!({ "action": action, "component": name, "stable": aliases.stable, "canary": aliases.canary }),
    )?;
    print_json(&json!({ "tenant": tenant, "name": name, "aliases": aliases }))
}

pub async fn alias(args: AliasArgs, local_registry: Option<Local>) -> Result<(), Failure> {
    let tenant = &args.target.tenant;
    if let Some(remote) = Remote::new(&args.target)? {
        let path = format!("/v1/tenants/{tenant}/components/{}/aliases/{}", args.name, args.alias);
        let body = json!({ "version": args.version, "weight": args.weight });
        return print_json(&remote.send(reqwest::Method::PUT, &path, Some(body)).await?);
    }
    let alias = Alias::parse(&args.alias).map_err(|e| anyhow!(e))?;
    let action = format!("alias-{}", alias.as_str());
    change_local(local_registry, tenant, &args.name, &action, |a| a.set(alias, &args.version, args.weight))
        .await
}

/// `promote` (`rollback` false) or `rollback`.
pub async fn promote_or_rollback(
    args: NameArgs,
    rollback: bool,
    local_registry: Option<Local>,
) -> Result<(), Failure> {
    let tenant = &args.target.tenant;
    let method = if rollback { "rollback" } else { "promote" };
    if let Some(remote) = Remote::new(&args.target)? {
        let path = format!("/v1/tenants/{tenant}/components/{}:{method}", args.name);
        return print_json(&remote.send(reqwest::Method::POST, &path, None).await?);
    }
    if rollback {
        change_local(local_registry, tenant, &args.name, method, |a| a.rollback().map(|_| ())).await
    } else {
        change_local(local_registry, tenant, &args.name, method, |a| a.promote().map(|_| ())).await
    }
}
