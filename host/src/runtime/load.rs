//! Loading: the header and world checks, compiling once per digest (memory,
//! then the verified disk cache), linking, `describe()` with `log` only, and
//! the name, version, tier and manifest checks that make a [`LoadedComponent`].

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde_json::Value;
use sha2::{Digest, Sha256};
use wasmtime::component::Component;

use crate::bindings::types::{RiskTier, ToolSpec};
use crate::bindings::{AgentPre, AgentSpec, ToolPre};
use crate::cache::Lookup;
use crate::capabilities::wasi::OpenMount;
use crate::capabilities::{self, CallContext, InstanceState, World};
use crate::error::{ComponentRef, ErrorKind, InvokeError};
use crate::governance::approvals;
use crate::governance::{self, ComponentManifest, LoadedPolicy, Tenant, Tier};
use crate::limits::Limits;
use crate::schema::InputSchema;

use super::context::Root;
use super::sandbox::{DescribeAgent, DescribeTool, check_limits};
use super::{Host, Kind, LoadOptions, LoadSource, LoadedComponent, Subject};

/// The outcome of `describe()`: a component that reached for anything but
/// `log` (each such call trapped, so none of it happened) is not loaded.
fn described<T>(
    call: &CallContext,
    id: &ComponentRef,
    outcome: Result<T, InvokeError>,
) -> Result<T, InvokeError> {
    let tried = call.violations();
    if !tried.is_empty() {
        return Err(InvokeError::load(format!(
            "it tried to use {} while describing itself; describe() runs with `log` only and no files, env or network, so it is not loaded (what it tried did not happen)",
            tried.join(", ")
        ))
        .with_component(id));
    }
    outcome.map_err(describe_failed)
}

fn describe_failed(e: InvokeError) -> InvokeError {
    InvokeError {
        kind: ErrorKind::LoadFailed,
        message: format!("`describe` failed ({}): {}", e.kind, e.message),
        ..e
    }
}

/// Caps a component's limits by its tenant's quotas and its policy pack's
/// tool defaults.
fn apply_quotas(limits: &mut Limits, tenant: &Tenant, policy: Option<&LoadedPolicy>) {
    let quotas = &tenant.config.quotas;
    if let Some(fuel) = quotas.fuel_per_call {
        limits.fuel = limits.fuel.min(fuel);
    }
    if let Some(memory) = quotas.memory_per_instance {
        limits.memory_bytes = limits.memory_bytes.min(memory);
    }
    if let Some(calls) = quotas.host_calls_per_call {
        limits.host_calls = limits.host_calls.min(calls);
    }
    if let Some(defaults) = policy.map(|p| &p.manifest.constraints.tool_defaults) {
        if let Some(fuel) = defaults.fuel {
            limits.fuel = limits.fuel.min(fuel);
        }
        if let Some(ms) = defaults.timeout_ms {
            limits.timeout = limits.timeout.min(Duration::from_millis(ms));
        }
    }
}

/// Tells a component from a core module or anything else by its preamble.
fn check_header(bytes: &[u8]) -> Result<(), String> {
    const COMPONENT: [u8; 4] = [0x0d, 0x00, 0x01, 0x00];
    const CORE_V1: [u8; 4] = [0x01, 0x00, 0x00, 0x00];
    match (bytes.get(..4), bytes.get(4..8)) {
        (Some(b"\0asm"), Some(layer)) if layer == COMPONENT => Ok(()),
        (Some(b"\0asm"), Some(layer)) if layer == CORE_V1 => Err(
            "this is a core WebAssembly module, not a component: build it for the wasm32-wasip2 target (or wrap it with `wasm-tools component new`)"
                .to_owned(),
        ),
        (Some(b"\0asm"), _) => Err("unsupported WebAssembly binary version or layer".to_owned()),
        _ => Err(format!(
            "not a WebAssembly binary: it does not start with `\\0asm` ({} bytes)",
            bytes.len()
        )),
    }
}

fn classify_world(exports: &[String]) -> Result<World, String> {
    let has = |name: &str| exports.iter().any(|e| e == name);
    if has("describe") && has("invoke") {
        return Ok(World::Tool);
    }
    if has("describe") && has("run") {
        return Ok(World::Agent);
    }
    Err(format!(
        "it exports [{}], which is neither the {} world (`describe`, `invoke`) nor the {} world (`describe`, `run`)",
        exports.join(", "),
        World::Tool,
        World::Agent
    ))
}

fn check_name(name: &str) -> Result<(), String> {
    let mut chars = name.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-')
        && name.len() <= 64;
    if valid {
        Ok(())
    } else {
        Err(format!("its name `{name}` is not of the form [a-z][a-z0-9-]* (at most 64 characters)"))
    }
}

/// A version: what a guest says about itself travels into logs and
/// records, so it is held to a plain form.
fn check_version(version: &str) -> Result<(), String> {
    let valid = !version.is_empty()
        && version.len() <= 64
        && version.bytes().all(|b| b.is_ascii_alphanumeric() || b".+-_".contains(&b));
    if valid {
        Ok(())
    } else {
        Err(format!(
            "its version `{}` is not of the form [0-9A-Za-z.+-_] (at most 64 characters)",
            crate::text::clip(version)
        ))
    }
}

/// The risk tier as its WIT name.
pub fn tier_name(tier: RiskTier) -> &'static str {
    Tier::from(tier).as_str()
}

impl Host {
    /// Loads a component file. See [`Host::load`].
    ///
    /// # Errors
    ///
    /// `load-failed` naming the file when it cannot be read, else as [`Host::load`].
    pub async fn load_file(
        &self,
        path: &Path,
        mut options: LoadOptions,
    ) -> Result<Arc<LoadedComponent>, InvokeError> {
        let bytes = std::fs::read(path)
            .map_err(|e| InvokeError::load(format!("cannot read {}: {e}", path.display())))?;
        if options.name_hint.is_none() {
            options.name_hint = path.file_stem().map(|s| s.to_string_lossy().into_owned());
        }
        if options.manifest.is_none() && options.grant.is_none() {
            let manifest_path = ComponentManifest::path_for(path);
            if manifest_path.exists() {
                let (manifest, policy) = self
                    .inner
                    .governance
                    .read_manifest(&manifest_path)
                    .map_err(|e| InvokeError::load(e.to_string()))?;
                options.manifest = Some(manifest);
                if options.policy.is_none() {
                    options.policy = policy;
                }
            } else if self.inner.governance.is_configured() {
                return Err(InvokeError::load(format!(
                    "{} has no manifest ({} is missing); write one with `agenthost manifest init {}` and review it",
                    path.display(),
                    manifest_path.display(),
                    path.display()
                )));
            }
        }
        self.load(&bytes, options).await
    }

    /// Loads a component: checks it is a component of the `tool` or `agent`
    /// world, compiles it once per digest (or takes it from the verified
    /// disk cache), links exactly what its world and grant allow, and asks
    /// it to describe itself.
    ///
    /// # Errors
    ///
    /// `load-failed` with a message naming what is wrong: not wasm, a core
    /// module, another world, an import not provided or not granted, a
    /// `describe` that traps, an invalid input schema.
    pub async fn load(
        &self,
        bytes: &[u8],
        options: LoadOptions,
    ) -> Result<Arc<LoadedComponent>, InvokeError> {
        let digest_hex = hex::encode(Sha256::digest(bytes));
        let hint = options.name_hint.clone().unwrap_or_else(|| "component".to_owned());
        let provisional = Arc::new(ComponentRef {
            name: hint.clone(),
            version: "unknown".to_owned(),
            digest: format!("sha256:{digest_hex}"),
        });
        let fail = |message: String| InvokeError::load(message).with_component(&provisional);
        let governance = &self.inner.governance;
        let tenant_id = options.tenant.as_deref().unwrap_or(governance.default_tenant());
        let tenant = governance.tenant(tenant_id).map_err(|e| fail(e.to_string()))?.clone();

        check_header(bytes).map_err(&fail)?;
        let manifest = options.manifest.as_ref();
        if let Some(manifest) = manifest
            && manifest.digest != provisional.digest
        {
            return Err(fail(format!(
                "its manifest is for {} but this file is {}: the component changed since the manifest was written",
                manifest.digest, provisional.digest
            )));
        }
        let (policy, loaded_policy) =
            governance.policy_for(&tenant, options.policy.as_ref()).map_err(|e| fail(e.to_string()))?;
        let mut limits = options.limits.unwrap_or(self.inner.limits);
        apply_quotas(&mut limits, &tenant, loaded_policy.as_deref());
        check_limits(&limits, self.inner.engine.config()).map_err(|e| e.with_component(&provisional))?;

        let (component, source) = self.compile(bytes, &digest_hex).await.map_err(&fail)?;
        let engine = self.engine();
        let component_type = component.component_type();
        let imports: Vec<String> = component_type.imports(engine).map(|(name, _)| name.to_owned()).collect();
        let exports: Vec<String> = component_type.exports(engine).map(|(name, _)| name.to_owned()).collect();
        let world = classify_world(&exports).map_err(&fail)?;
        if let Some(manifest) = manifest
            && manifest.world() != world
        {
            return Err(fail(format!(
                "its manifest says world `{}` but it implements the {world} world",
                manifest.world
            )));
        }
        // An agent's tier comes from its manifest alone (its describe()
        // declares none); a tool's from its manifest, raised (never
        // lowered) by what it declares once described.
        let manifest_tier = match world {
            World::Tool => manifest.and_then(|m| m.risk_tier),
            World::Agent => Some(manifest.and_then(|m| m.risk_tier).unwrap_or(Tier::WriteLow)),
        };
        let explicit_grant = options.grant;
        let grant_for = |tier: Option<Tier>| match &explicit_grant {
            Some(grant) => Ok(grant.clone()),
            None => governance::effective_grant(
                &tenant,
                manifest,
                world,
                tier,
                loaded_policy.as_deref(),
                governance.config_dir(),
            ),
        };
        let grant = grant_for(manifest_tier).map_err(&fail)?;
        // Imports outside the world fail here; inside it, every interface
        // is linked and the grant decides per call.
        capabilities::import_report(world, &grant, &imports).map_err(&fail)?;
        let linker = match world {
            World::Tool => &self.inner.tool_linker,
            World::Agent => &self.inner.agent_linker,
        };
        let pre = linker
            .instantiate_pre(&component)
            .map_err(|e| fail(format!("cannot link the component: {e:#}")))?;
        let prompts: Arc<[String]> =
            loaded_policy.as_ref().map_or_else(|| Arc::from([]), |p| p.prompts().into());
        // describe() runs before any gate has seen a call: with `log` only.
        let describer = Subject {
            id: provisional.clone(),
            grant: Arc::new(grant.for_describe()),
            tenant: tenant.clone(),
            policy: policy.clone(),
            prompts: prompts.clone(),
            mounts: Arc::from([]),
        };

        let (kind, tier, name, version) = match world {
            World::Tool => {
                let pre = ToolPre::new(pre)
                    .map_err(|e| fail(format!("its exports do not match the {world} world: {e:#}")))?;
                let spec = self.describe_tool(&pre, &describer, &limits).await?;
                let declared = Tier::from(spec.risk_tier);
                let tier = match manifest_tier {
                    Some(signed) if declared < signed => {
                        return Err(fail(format!(
                            "it declares risk tier {declared} in describe(), lower than the {signed} of its manifest; a tool may raise its tier, never lower it"
                        )));
                    }
                    Some(signed) => signed.max(declared),
                    None => declared,
                };
                let schema_text = manifest
                    .and_then(|m| m.input_schema.clone())
                    .unwrap_or_else(|| spec.input_schema.clone());
                let schema = InputSchema::compile(&schema_text).map_err(|e| {
                    fail(format!("the input schema of tool `{}` is not usable: {e}", spec.name))
                })?;
                let sensitive = (
                    serde_json::from_str::<Value>(&schema_text)
                        .map(|s| approvals::sensitive_paths(&s))
                        .unwrap_or_default(),
                    loaded_policy
                        .as_ref()
                        .and_then(|p| p.manifest.constraints.sensitive_fields.clone())
                        .unwrap_or_default(),
                );
                let (name, version) = (spec.name.clone(), spec.version.clone());
                (Kind::Tool { pre, spec, schema, sensitive }, tier, name, version)
            }
            World::Agent => {
                let pre = AgentPre::new(pre)
                    .map_err(|e| fail(format!("its exports do not match the {world} world: {e:#}")))?;
                let spec = self.describe_agent(&pre, &describer, &limits).await?;
                let (name, version) = (spec.name.clone(), spec.version.clone());
                (Kind::Agent { pre, spec }, manifest_tier.unwrap_or(Tier::WriteLow), name, version)
            }
        };
        check_name(&name).map_err(&fail)?;
        check_version(&version).map_err(&fail)?;
        if let Some(manifest) = manifest
            && (manifest.name != name || manifest.version != version)
        {
            return Err(fail(format!(
                "it describes itself as {name}@{version} but its manifest is for {}@{}",
                manifest.name, manifest.version
            )));
        }
        // Granted (and checked against the stack's max_tier) by the tier it
        // runs at, which its describe() may have raised.
        let grant = if Some(tier) == manifest_tier { grant } else { grant_for(Some(tier)).map_err(&fail)? };
        let import_status = capabilities::import_report(world, &grant, &imports).map_err(&fail)?;
        let mounts = grant
            .mounts
            .iter()
            .map(|m| OpenMount::open(&m.host, &m.guest, m.writable))
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| fail(format!("tenant `{}`: {e}", tenant.id())))?;
        let id = Arc::new(ComponentRef { name, version, digest: provisional.digest.clone() });
        let subject = Subject {
            id,
            grant: Arc::new(grant),
            tenant: tenant.clone(),
            policy,
            prompts,
            mounts: mounts.into(),
        };
        let loaded = LoadedComponent {
            subject,
            world,
            tier: Some(tier),
            limits,
            imports,
            import_status,
            exports,
            source,
            kind,
        };
        self.inner.record_load(&loaded).map_err(|e| InvokeError::internal(e).with_component(loaded.id()))?;
        tracing::debug!(component = %loaded.id(), tenant = loaded.tenant(), world = world.name(), source = ?loaded.source, "loaded component");
        Ok(Arc::new(loaded))
    }

    async fn compile(&self, bytes: &[u8], digest_hex: &str) -> Result<(Component, LoadSource), String> {
        let inner = &self.inner;
        if let Some(component) = inner.compiled.lock().ok().and_then(|m| m.get(digest_hex).cloned()) {
            inner.counters.memory_hits.fetch_add(1, Ordering::Relaxed);
            inner.metrics.component_load("memory");
            return Ok((component, LoadSource::Memory));
        }
        // An artifact adopted from the registry a moment ago, checked and loaded.
        if let Some(component) = inner.adopted.lock().ok().and_then(|mut a| a.remove(digest_hex)) {
            inner.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
            inner.metrics.component_load("artifact");
            self.remember(digest_hex, &component);
            return Ok((component, LoadSource::DiskCache));
        }
        let mut rejected = None;
        if let Some(cache) = &inner.cache {
            match cache.load(self.engine(), digest_hex) {
                Lookup::Hit(component) => {
                    inner.counters.cache_hits.fetch_add(1, Ordering::Relaxed);
                    inner.metrics.component_load("disk-cache");
                    self.remember(digest_hex, &component);
                    return Ok((component, LoadSource::DiskCache));
                }
                Lookup::Miss => {}
                Lookup::Rejected(reason) => {
                    inner.counters.cache_rejected.fetch_add(1, Ordering::Relaxed);
                    rejected = Some(reason);
                }
            }
        }
        // Compiling takes milliseconds of CPU: keep it off the async workers.
        // With a disk cache, compile once into an artifact and load that,
        // rather than compiling twice (once to run, once to store).
        let engine = self.engine().clone();
        let owned = bytes.to_vec();
        let want_artifact = inner.cache.is_some();
        let (component, artifact) = tokio::task::spawn_blocking(move || {
            let invalid = |e: wasmtime::Error| format!("not a valid component: {e:#}");
            if !want_artifact {
                return Ok::<_, String>((Component::new(&engine, &owned).map_err(invalid)?, None));
            }
            let artifact = engine.precompile_component(&owned).map_err(invalid)?;
            // SAFETY: `artifact` was produced a moment ago, in this process,
            // by `precompile_component` of this same engine, and has not
            // left this function's memory: it is exactly what wasmtime made.
            #[allow(unsafe_code)]
            let component = unsafe { Component::deserialize(&engine, &artifact) }.map_err(invalid)?;
            Ok((component, Some(artifact)))
        })
        .await
        .map_err(|e| format!("the compile task failed: {e}"))??;
        inner.counters.compiled.fetch_add(1, Ordering::Relaxed);
        inner.metrics.component_load("compiled");
        if let (Some(cache), Some(artifact)) = (&inner.cache, artifact)
            && let Err(e) = cache.store(digest_hex, &artifact)
        {
            tracing::warn!(error = %e, "could not write the precompiled artifact; continuing without it");
        }
        self.remember(digest_hex, &component);
        Ok((component, rejected.map_or(LoadSource::Compiled, LoadSource::Recompiled)))
    }

    fn remember(&self, digest_hex: &str, component: &Component) {
        if let Ok(mut compiled) = self.inner.compiled.lock() {
            compiled.insert(digest_hex.to_owned(), component.clone());
        }
    }

    async fn describe_tool(
        &self,
        pre: &ToolPre<InstanceState>,
        subject: &Subject,
        limits: &Limits,
    ) -> Result<ToolSpec, InvokeError> {
        let root = Root::host();
        let call = self.inner.describe_context(subject, limits, &root);
        let (outcome, _) = self.inner.run_in_store(subject, limits, &call, DescribeTool(pre)).await;
        described(&call, &subject.id, outcome)
    }

    async fn describe_agent(
        &self,
        pre: &AgentPre<InstanceState>,
        subject: &Subject,
        limits: &Limits,
    ) -> Result<AgentSpec, InvokeError> {
        let root = Root::host();
        let call = self.inner.describe_context(subject, limits, &root);
        let (outcome, _) = self.inner.run_in_store(subject, limits, &call, DescribeAgent(pre)).await;
        described(&call, &subject.id, outcome)
    }
}
