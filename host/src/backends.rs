//! Where a running host's backends are opened from its settings: the audit
//! trail (and its S3 Object Lock copy), memory, models and events, handed
//! to a [`HostConfig`] with [`Backends::host_config`]. `agenthost run`, the
//! demo and the brokers bench open them here. (The `approvals` commands
//! open only the audit log, to record a decision; `inspect` and `policy
//! test` run no backend.)

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use crate::audit::s3::{self, S3Sink};
use crate::audit::{AuditLog, Sink};
use crate::aws;
use crate::brokers::events::{self, EventBus};
use crate::brokers::memory::{DynamoMemory, EmbeddedMemory, InProcessMemory, MemoryApprovals, MemoryStore};
use crate::brokers::model::{BedrockModel, BuiltinModel, ModelBackend, OpenAiModel};
use crate::governance::{Governance, TenantConfig};
use crate::keys::KeyPair;
use crate::runtime::HostConfig;
use crate::settings::{
    AwsSettings, DEFAULT_QUEUE, DEFAULT_TABLE, EventBackend, EventSettings, HostSettings, MemoryBackend,
    ModelBackendKind, ModelSettings,
};

/// The backends of one host process.
pub struct Backends {
    pub audit: Option<Arc<AuditLog>>,
    pub audit_s3: Option<Arc<S3Sink>>,
    pub memory: Arc<dyn MemoryStore>,
    pub model: Arc<dyn ModelBackend>,
    /// Tenants with a model backend of their own (`[model]` in the tenant file).
    pub tenant_models: BTreeMap<String, Arc<dyn ModelBackend>>,
    /// `None`: the host's own in-process bus.
    pub events: Option<Arc<dyn EventBus>>,
    /// The SQS queue events arrive on (SQS and EventBridge backends), for a
    /// server with subscribers to poll.
    pub sqs: Option<(aws_sdk_sqs::Client, String)>,
    /// A segment may be missing from the bucket (an upload failed and has
    /// not been caught up yet).
    unshipped: std::sync::atomic::AtomicBool,
    /// Local copies of shipped segments are deleted (a Lambda environment's
    /// `/tmp` is small, and scratch).
    prune_shipped: std::sync::atomic::AtomicBool,
}

/// The events bus `settings` ask for; `None` for the host's in-process bus.
///
/// # Errors
/// When the queue cannot be found (run `agenthost aws bootstrap`).
pub async fn event_backend(
    settings: &EventSettings,
    aws: &AwsSettings,
) -> Result<Option<(Arc<dyn EventBus>, (aws_sdk_sqs::Client, String))>, String> {
    if settings.backend == EventBackend::InProcess {
        return Ok(None);
    }
    let config = aws.load().await;
    let sqs = aws_sdk_sqs::Client::new(&config);
    let queue = settings.queue.clone().unwrap_or_else(|| DEFAULT_QUEUE.to_owned());
    let url = sqs
        .get_queue_url()
        .queue_name(&queue)
        .send()
        .await
        .map_err(|e| {
            format!(
                "events: cannot find the SQS queue `{queue}` ({}); `agenthost aws bootstrap` creates it",
                aws::describe(&e)
            )
        })?
        .queue_url
        .ok_or("events: SQS returned no queue URL")?;
    let bus: Arc<dyn EventBus> = match settings.backend {
        EventBackend::Eventbridge => Arc::new(events::EventBridgeBus::new(
            aws_sdk_eventbridge::Client::new(&config),
            settings.bus.clone().unwrap_or_else(|| "default".to_owned()),
        )),
        _ => Arc::new(events::SqsBus::new(sqs.clone(), url.clone())),
    };
    Ok(Some((bus, (sqs, url))))
}

/// The model backend `settings` ask for.
///
/// # Errors
/// A missing endpoint for `openai`, or a client that cannot be built.
pub async fn model_backend(
    settings: &ModelSettings,
    aws: &AwsSettings,
) -> Result<Arc<dyn ModelBackend>, String> {
    Ok(match settings.backend {
        ModelBackendKind::Builtin => Arc::new(BuiltinModel),
        ModelBackendKind::Bedrock => {
            let config = aws.load().await;
            let model = settings
                .default_model
                .clone()
                .ok_or("[model] backend = \"bedrock\" needs default_model (a Bedrock model id)")?;
            Arc::new(BedrockModel::new(aws_sdk_bedrockruntime::Client::new(&config), model))
        }
        ModelBackendKind::Openai => {
            let endpoint = settings
                .endpoint
                .as_deref()
                .ok_or("[model] backend = \"openai\" needs endpoint (e.g. http://127.0.0.1:8080/v1)")?;
            let key = match &settings.api_key_env {
                Some(var) => {
                    Some(std::env::var(var).map_err(|_| format!("[model] api_key_env: ${var} is not set"))?)
                }
                None => None,
            };
            let timeout = std::time::Duration::from_millis(settings.timeout_ms.unwrap_or(60_000));
            let model = settings.default_model.clone().unwrap_or_else(|| "default".to_owned());
            Arc::new(OpenAiModel::new(endpoint, key, model, timeout)?)
        }
    })
}

/// The memory backend `settings` ask for, with local state under `data`.
///
/// # Errors
/// When the embedded store cannot be opened.
pub async fn memory_backend(settings: &HostSettings, data: &Path) -> Result<Arc<dyn MemoryStore>, String> {
    Ok(match settings.memory.backend {
        MemoryBackend::Embedded => Arc::new(
            EmbeddedMemory::open(&data.join("memory"), settings.memory.durable.unwrap_or(true))
                .map_err(|e| format!("memory backend `embedded`: {e}"))?,
        ),
        MemoryBackend::InProcess => Arc::new(InProcessMemory::default()),
        MemoryBackend::Dynamodb => {
            let config = settings.aws.load().await;
            let table = settings.memory.table.clone().unwrap_or_else(|| DEFAULT_TABLE.to_owned());
            Arc::new(DynamoMemory::new(aws_sdk_dynamodb::Client::new(&config), table))
        }
    })
}

/// Connects a shared approvals store (`[memory] backend = "dynamodb"`) to
/// the memory backend, for a process that runs no host (`agenthost
/// approvals`); a store of files needs nothing.
///
/// # Errors
/// When the backend cannot be opened.
pub async fn connect_approvals(governance: &Governance, data: &Path) -> Result<(), String> {
    let Some(store) = governance.approvals() else { return Ok(()) };
    if store.is_connected() {
        return Ok(());
    }
    let memory = memory_backend(governance.settings(), data).await?;
    store.connect(Arc::new(MemoryApprovals::new(memory))).map_err(|e| e.to_string())
}

impl Backends {
    /// Opens what `settings` ask for, with local state under `data`, the
    /// audit trail signed with `audit_key`, and the model backends of the
    /// `tenants` that name their own.
    ///
    /// # Errors
    /// Names the backend (and tenant) that cannot be opened and why.
    pub async fn open(
        settings: &HostSettings,
        tenants: &[&TenantConfig],
        data: &Path,
        audit_key: &KeyPair,
    ) -> Result<Backends, String> {
        let memory = memory_backend(settings, data).await?;
        let (audit, audit_s3) = if settings.audit.enabled {
            let mut sinks: Vec<Arc<dyn Sink>> = Vec::new();
            let mut audit_s3 = None;
            if let Some(s3_settings) = &settings.audit.s3 {
                let client = s3::client(&settings.aws).await;
                let sink = S3Sink::new(client, s3_settings.clone(), audit_key.public())
                    .map_err(|e| e.to_string())?;
                sinks.push(sink.clone());
                audit_s3 = Some(sink);
            }
            let root = data.join("audit");
            let log = AuditLog::open(&root, settings.audit.options(), audit_key.clone(), sinks)
                .map_err(|e| e.to_string())?;
            if let Some(sink) = &audit_s3 {
                // Segments sealed by an earlier process whose upload never finished.
                if let Err(e) = sink.backfill(log.stream(), log.dir(), None, log.public_key()).await {
                    tracing::warn!(target: "agenthost::audit", error = %e, "cannot catch up on earlier audit uploads");
                }
            }
            (Some(log), audit_s3)
        } else {
            (None, None)
        };
        let model = model_backend(&settings.model, &settings.aws).await?;
        let mut tenant_models = BTreeMap::new();
        for tenant in tenants {
            if let Some(own) = &tenant.model {
                let backend = model_backend(own, &settings.aws)
                    .await
                    .map_err(|e| format!("tenant `{}`: {e}", tenant.id))?;
                tenant_models.insert(tenant.id.clone(), backend);
            }
        }
        let (events, sqs) = match event_backend(&settings.events, &settings.aws).await? {
            Some((bus, queue)) => (Some(bus), Some(queue)),
            None => (None, None),
        };
        Ok(Backends {
            audit,
            audit_s3,
            memory,
            model,
            tenant_models,
            events,
            sqs,
            unshipped: std::sync::atomic::AtomicBool::new(false),
            prune_shipped: std::sync::atomic::AtomicBool::new(false),
        })
    }

    /// `config` with every backend in it: the audit trail, memory, the
    /// models (the host's and tenants' own) and the events bus.
    pub fn host_config(&self, config: HostConfig) -> HostConfig {
        HostConfig {
            audit: self.audit.clone(),
            memory: Some(self.memory.clone()),
            model: self.model.clone(),
            tenant_models: self.tenant_models.clone(),
            events: self.events.clone(),
            ..config
        }
    }

    /// Seals the audit segment written so far and waits for its upload
    /// (when there is an S3 sink); a segment whose upload failed earlier is
    /// tried again. For a process whose disk may vanish between requests
    /// (a Lambda execution environment): afterwards, its evidence is in S3.
    ///
    /// # Errors
    /// When the trail cannot be sealed or an upload failed (the segment is
    /// kept locally, and tried again on the next call).
    pub async fn seal_and_ship(&self) -> Result<(), String> {
        use std::sync::atomic::Ordering;
        let Some(audit) = &self.audit else { return Ok(()) };
        audit.seal().await.map_err(|e| format!("cannot seal the audit segment: {e}"))?;
        let Some(sink) = &self.audit_s3 else { return Ok(()) };
        let flushed = sink.flush().await;
        if flushed.is_ok() && !self.unshipped.load(Ordering::Relaxed) {
            self.prune(audit);
            return Ok(());
        }
        // Something failed, now or before: whatever the bucket lacks goes
        // again, until it has everything.
        let caught_up = async {
            sink.backfill(audit.stream(), audit.dir(), None, audit.public_key()).await?;
            sink.flush().await
        }
        .await;
        match (caught_up, flushed) {
            (Ok(()), _) => {
                self.unshipped.store(false, Ordering::Relaxed);
                self.prune(audit);
                Ok(())
            }
            (Err(again), flushed) => {
                self.unshipped.store(true, Ordering::Relaxed);
                let first = flushed.err().map(|e| format!("{e}; ")).unwrap_or_default();
                Err(format!("{first}the segments the bucket lacks could not be shipped: {again}"))
            }
        }
    }

    /// [`Backends::seal_and_ship`] within `within`; past it, what was not
    /// shipped is left for a later call to catch up.
    ///
    /// # Errors
    /// As [`Backends::seal_and_ship`], or that time ran out.
    pub async fn seal_and_ship_within(&self, within: std::time::Duration) -> Result<(), String> {
        match tokio::time::timeout(within, self.seal_and_ship()).await {
            Ok(shipped) => shipped,
            Err(_) => {
                self.unshipped.store(true, std::sync::atomic::Ordering::Relaxed);
                Err(format!("shipping took longer than {} ms; a later call catches up", within.as_millis()))
            }
        }
    }

    /// After a successful [`Backends::seal_and_ship`], local copies of what
    /// the bucket holds are deleted (only with an S3 sink).
    pub fn prune_after_shipping(&self) {
        self.prune_shipped.store(self.audit_s3.is_some(), std::sync::atomic::Ordering::Relaxed);
    }

    fn prune(&self, audit: &AuditLog) {
        if !self.prune_shipped.load(std::sync::atomic::Ordering::Relaxed) {
            return;
        }
        if let Err(e) = audit.prune_shipped() {
            tracing::warn!(target: "agenthost::audit", error = %e, "cannot delete shipped audit segments");
        }
    }

    /// Signs a final checkpoint, seals the segment and waits for its upload.
    ///
    /// # Errors
    /// When the last records or uploads could not be written.
    pub async fn close(&self) -> Result<(), String> {
        if let Some(audit) = &self.audit {
            audit.close().map_err(|e| e.to_string())?;
        }
        if let Some(sink) = &self.audit_s3 {
            sink.flush().await.map_err(|e| e.to_string())?;
        }
        Ok(())
    }
}
