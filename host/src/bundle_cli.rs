//! `agenthost bundle`: the registry a package carries. Copies the versions
//! every alias names (stable, canary, the previous stable) from the
//! configured registry into a new local registry directory, each checked as
//! a host fetches it (publisher signature, digest, manifest), and puts beside
//! each a precompiled artifact for the Lambda engine of a function of the
//! given memory, sealed with the host's cache key. A function configured with
//! `[registry] dir` on that directory and `share_artifacts = true` starts
//! without compiling anything.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context as _, anyhow};
use clap::Args;
use serde_json::{Value, json};

use agenthost::governance::Governance;
use agenthost::registry::{LocalStore, MAX_ARTIFACT, Store as _};
use agenthost::{Host, HostConfig, LoadOptions};

use crate::Failure;

#[derive(Args)]
pub struct BundleArgs {
    /// The directory to write: it must not exist yet, or be empty
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// The function's memory in MiB (its MemorySize): the artifacts are
    /// made for the engine Lambda mode builds for it
    #[arg(long, value_name = "MIB", default_value_t = 1024)]
    lambda_memory: u64,
}

pub async fn bundle(
    args: BundleArgs,
    governance: Arc<Governance>,
    data: &Path,
    keys: &agenthost::keystore::HostKeys,
) -> Result<(), Failure> {
    let occupied = std::fs::read_dir(&args.out).map(|mut d| d.next().is_some()).unwrap_or(false);
    if occupied {
        return Err(anyhow!(
            "{} is not empty: a bundle is written to a new directory, so nothing stale rides along",
            args.out.display()
        )
        .into());
    }
    let source = crate::server_cli::registry(data, &governance).await?;
    let bundle = LocalStore::open(&args.out).map_err(|e| anyhow!(e))?;
    // Compiled here for the function's engine; the scratch cache goes after.
    let scratch = args.out.with_extension(format!("cache-{:08x}", rand::random::<u32>()));
    let host = Host::new(HostConfig {
        engine: agenthost::lambda::engine_for(args.lambda_memory),
        cache_dir: Some(scratch.clone()),
        cache_key: Some(keys.cache),
        share_artifacts: true,
        governance: Some(governance.clone()),
        ..HostConfig::default()
    })
    .map_err(|e| anyhow!("cannot start the host that compiles the bundle: {e}"))?;
    let fingerprint =
        host.artifact_fingerprint().ok_or_else(|| anyhow!("the compiling host keeps no artifact cache"))?;
    let written = copy_all(&governance, &source, &bundle, &host, &fingerprint).await;
    let _ = std::fs::remove_dir_all(&scratch);
    let components = written?;
    crate::write_stdout(&format!(
        "{}\n",
        json!({
            "bundle": args.out,
            "lambda_memory_mib": args.lambda_memory,
            "engine_fingerprint": fingerprint,
            "components": components,
        })
    ))?;
    Ok(())
}

/// Every tenant's aliased versions, checked, copied and precompiled.
async fn copy_all(
    governance: &Governance,
    source: &agenthost::registry::Registry,
    bundle: &LocalStore,
    host: &Host,
    fingerprint: &str,
) -> anyhow::Result<Vec<Value>> {
    let mut components = Vec::new();
    for tenant in governance.tenants() {
        let tenant = tenant.config.id.as_str();
        for name in source.store().list_components(tenant).await.map_err(|e| anyhow!(e))? {
            let aliases = source.aliases(tenant, &name).await.map_err(|e| anyhow!(e))?;
            let mut versions = Vec::new();
            for version in aliases.versions() {
                let verified = source
                    .fetch(tenant, &name, version)
                    .await
                    .with_context(|| format!("{name}@{version} of tenant `{tenant}` is not bundled"))?;
                let digest = verified.record.digest.clone();
                bundle.put_blob(tenant, &digest, &verified.bytes).await.map_err(|e| anyhow!(e))?;
                bundle.create_version(&verified.record).await.map_err(|e| anyhow!(e))?;
                let options = LoadOptions {
                    tenant: Some(tenant.to_owned()),
                    manifest: Some(verified.manifest),
                    policy: verified.policy,
                    ..LoadOptions::default()
                };
                host.load(&verified.bytes, options)
                    .await
                    .map_err(|e| anyhow!("{name}@{version} of tenant `{tenant}` does not load: {e}"))?;
                let sealed = host
                    .sealed_artifact(&digest, MAX_ARTIFACT)
                    .ok_or_else(|| anyhow!("{name}@{version}: no precompiled artifact was kept"))?;
                bundle.put_artifact(tenant, &digest, fingerprint, &sealed).await.map_err(|e| anyhow!(e))?;
                versions
                    .push(json!({ "version": version, "digest": digest, "artifact_bytes": sealed.len() }));
            }
            bundle.put_aliases(tenant, &name, &aliases, 0).await.map_err(|e| anyhow!(e))?;
            components.push(json!({ "tenant": tenant, "name": name, "versions": versions }));
        }
    }
    Ok(components)
}
