//! Operational telemetry, beside (never instead of) the audit trail:
//! `tracing` spans for each invocation, host call and policy decision,
//! exported over OTLP/HTTP when an endpoint is configured, and Prometheus
//! metrics in the text exposition format.
//!
//! An invocation's span is parented on the run's W3C trace id, so the trace
//! id a collector shows is the `trace_id` of the run's audit records.

use std::sync::atomic::AtomicI64;
use std::sync::{Arc, Mutex};

use opentelemetry::trace::{SpanContext, SpanId, TraceContextExt as _, TraceFlags, TraceId, TraceState};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::SdkTracerProvider;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// The OpenTelemetry context of a run: its trace id, as a remote parent.
pub fn run_context(trace_id: &str) -> opentelemetry::Context {
    let Ok(trace) = TraceId::from_hex(trace_id) else { return opentelemetry::Context::new() };
    let span = SpanContext::new(
        trace,
        SpanId::from(rand::random::<u64>() | 1),
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    opentelemetry::Context::new().with_remote_span_context(span)
}

/// Makes `span` part of the run's trace (a no-op without an OpenTelemetry layer).
pub fn join_run(span: &tracing::Span, trace_id: &str) {
    use tracing_opentelemetry::OpenTelemetrySpanExt as _;
    let _ = span.set_parent(run_context(trace_id));
}

/// A tracer provider exporting spans to `endpoint` (OTLP over HTTP/protobuf,
/// e.g. `http://collector:4318`; `/v1/traces` is added), in batches.
///
/// # Errors
/// When the exporter cannot be built.
pub fn otlp_provider(endpoint: &str, service: &str) -> Result<SdkTracerProvider, String> {
    let url = format!("{}/v1/traces", endpoint.trim_end_matches('/'));
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_http()
        .with_endpoint(url)
        .build()
        .map_err(|e| format!("cannot build the OTLP exporter for {endpoint}: {e}"))?;
    let resource = opentelemetry_sdk::Resource::builder().with_service_name(service.to_owned()).build();
    Ok(SdkTracerProvider::builder().with_batch_exporter(exporter).with_resource(resource).build())
}

/// A `tracing` layer sending spans to `provider`.
pub fn layer<S>(provider: &SdkTracerProvider) -> impl tracing_subscriber::Layer<S>
where
    S: tracing::Subscriber + for<'span> tracing_subscriber::registry::LookupSpan<'span>,
{
    use opentelemetry::trace::TracerProvider as _;
    tracing_opentelemetry::layer().with_tracer(provider.tracer("agenthost"))
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ComponentLabels {
    tenant: String,
    component: String,
    outcome: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CostLabels {
    tenant: String,
    component: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct DenialLabels {
    tenant: String,
    action: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct LoadLabels {
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ModelLabels {
    tenant: String,
    model: String,
    direction: String,
}

/// The host's Prometheus metrics.
pub struct Metrics {
    registry: Mutex<Registry>,
    invocations: Family<ComponentLabels, Histogram>,
    fuel: Family<CostLabels, Counter>,
    memory_peak: Family<CostLabels, Histogram>,
    denials: Family<DenialLabels, Counter>,
    tokens: Family<ModelLabels, Counter>,
    approvals_pending: Gauge<i64, AtomicI64>,
    loads: Family<LoadLabels, Counter>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Self {
        let invocations = Family::<ComponentLabels, Histogram>::new_with_constructor(|| {
            // 50 µs .. ~26 s
            Histogram::new(exponential_buckets(0.000_05, 2.0, 20))
        });
        let memory_peak = Family::<CostLabels, Histogram>::new_with_constructor(|| {
            // 64 KiB .. 4 GiB
            Histogram::new(exponential_buckets(65_536.0, 2.0, 17))
        });
        let fuel = Family::<CostLabels, Counter>::default();
        let denials = Family::<DenialLabels, Counter>::default();
        let tokens = Family::<ModelLabels, Counter>::default();
        let approvals_pending = Gauge::<i64, AtomicI64>::default();
        let loads = Family::<LoadLabels, Counter>::default();
        let mut registry = Registry::with_prefix("agenthost");
        registry.register(
            "invocation_duration_seconds",
            "Wall-clock time of top-level and nested invocations, by tenant, component and outcome",
            invocations.clone(),
        );
        registry.register(
            "fuel_consumed",
            "Fuel (≈ wasm instructions) burnt, by tenant and component",
            fuel.clone(),
        );
        registry.register(
            "memory_peak_bytes",
            "Linear memory an invocation held at its peak, by tenant and component",
            memory_peak.clone(),
        );
        registry.register(
            "policy_denials",
            "Policy and grant denials, by tenant and action",
            denials.clone(),
        );
        registry.register(
            "model_tokens",
            "Model tokens counted from responses, by tenant, model and direction",
            tokens.clone(),
        );
        registry.register(
            "approvals_pending",
            "Approval requests waiting for an approver",
            approvals_pending.clone(),
        );
        registry.register(
            "component_loads",
            "Component code made ready to run, by where it came from: compiled, disk-cache (this node's precompiled artifact), artifact (one from the registry or a bundle) or memory",
            loads.clone(),
        );
        Metrics {
            registry: Mutex::new(registry),
            invocations,
            fuel,
            memory_peak,
            denials,
            tokens,
            approvals_pending,
            loads,
        }
    }

    /// One component's code made ready: `compiled`, `disk-cache`, `artifact` or `memory`.
    pub fn component_load(&self, source: &str) {
        self.loads.get_or_create(&LoadLabels { source: source.to_owned() }).inc();
    }

    pub fn invocation(&self, tenant: &str, component: &str, outcome: &str, seconds: f64) {
        let labels = ComponentLabels {
            tenant: tenant.to_owned(),
            component: component.to_owned(),
            outcome: outcome.to_owned(),
        };
        self.invocations.get_or_create(&labels).observe(seconds);
    }

    pub fn cost(&self, tenant: &str, component: &str, fuel: u64, memory: u64) {
        let cost = CostLabels { tenant: tenant.to_owned(), component: component.to_owned() };
        self.fuel.get_or_create(&cost).inc_by(fuel);
        self.memory_peak.get_or_create(&cost).observe(memory as f64);
    }

    pub fn denial(&self, tenant: &str, action: &str) {
        self.denials
            .get_or_create(&DenialLabels { tenant: tenant.to_owned(), action: action.to_owned() })
            .inc();
    }

    pub fn model_tokens(&self, tenant: &str, model: &str, input: u64, output: u64) {
        let labels = |direction: &str| ModelLabels {
            tenant: tenant.to_owned(),
            model: model.to_owned(),
            direction: direction.to_owned(),
        };
        self.tokens.get_or_create(&labels("input")).inc_by(input);
        self.tokens.get_or_create(&labels("output")).inc_by(output);
    }

    pub fn set_approvals_pending(&self, pending: i64) {
        self.approvals_pending.set(pending);
    }

    /// The Prometheus text exposition of every metric.
    pub fn encode(&self) -> String {
        let mut out = String::new();
        if let Ok(registry) = self.registry.lock() {
            let _ = prometheus_client::encoding::text::encode(&mut out, &registry);
        }
        out
    }
}

/// Shared by the host and whoever serves `/metrics`.
pub type SharedMetrics = Arc<Metrics>;
