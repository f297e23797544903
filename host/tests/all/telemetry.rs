//! Telemetry: spans exported over OTLP/HTTP to a receiver on loopback that
//! decodes the protobuf export, with the run's trace id; Prometheus metrics.

use agenthost::{Host, HostConfig, LoadOptions};
use serde_json::json;

use crate::common;

#[tokio::test(flavor = "multi_thread")]
async fn spans_reach_an_otlp_collector_with_the_runs_trace_id() {
    let global = common::global();
    let (received, provider) = (&global.spans, &global.provider);
    let host = Host::new(HostConfig { engine: common::engine_config(), ..HostConfig::default() }).unwrap();
    let calculator = common::load(&host, agenthost_artifacts::CALCULATOR).await;
    host.register_tool(calculator).unwrap();
    let triage =
        host.load(&common::bytes(agenthost_artifacts::TRIAGE), LoadOptions::default()).await.unwrap();
    let run = host.run_agent(&triage, &json!({ "question": "What is 6 * 7?" })).await.unwrap();
    // The exporter blocks while it flushes: not on an async worker.
    let flusher = provider.clone();
    tokio::task::spawn_blocking(move || flusher.force_flush()).await.unwrap().unwrap();
    let spans = received.lock().unwrap().clone();
    let of_run: Vec<&common::Span> = spans.iter().filter(|s| s.trace_id == run.trace.trace_id).collect();
    let names: Vec<&str> = of_run.iter().map(|s| s.name.as_str()).collect();
    let agent =
        of_run.iter().find(|s| s.name.starts_with("invoke triage@")).unwrap_or_else(|| panic!("{spans:#?}"));
    let tool = of_run
        .iter()
        .find(|s| s.name.starts_with("invoke calculator@"))
        .unwrap_or_else(|| panic!("{names:?}"));
    assert!(names.contains(&"host.model.converse"), "{names:?}");
    assert!(names.contains(&"host.tools.invoke"), "{names:?}");
    assert!(names.contains(&"policy.decision"), "{names:?}");
    // The tool's invocation is nested under the agent's, in one trace.
    let tools_call = of_run.iter().find(|s| s.name == "host.tools.invoke").unwrap();
    assert_eq!(tool.parent, tools_call.span_id);
    assert_eq!(tools_call.parent, agent.span_id);
}

#[tokio::test(flavor = "multi_thread")]
async fn prometheus_metrics_count_invocations_fuel_memory_and_tokens() {
    let host = Host::new(HostConfig {
        engine: common::engine_config(),
        limits: agenthost::Limits {
            timeout: std::time::Duration::from_millis(200),
            ..agenthost::Limits::default()
        },
        ..HostConfig::default()
    })
    .unwrap();
    let calculator = common::load(&host, agenthost_artifacts::CALCULATOR).await;
    host.register_tool(calculator.clone()).unwrap();
    for _ in 0..3 {
        host.invoke_tool(&calculator, &json!({ "expression": "1 + 1" })).await.unwrap();
    }
    let triage =
        host.load(&common::bytes(agenthost_artifacts::TRIAGE), LoadOptions::default()).await.unwrap();
    host.run_agent(&triage, &json!({ "question": "What is 2 * 3?" })).await.unwrap();
    let spinner = common::load(&host, agenthost_artifacts::SPIN_FOREVER).await;
    host.invoke_tool(&spinner, &json!({})).await.unwrap_err();

    let text = host.metrics_text().await;
    let value = |prefix: &str| -> f64 {
        text.lines()
            .find(|l| l.starts_with(prefix))
            .and_then(|l| l.rsplit(' ').next())
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no `{prefix}` in\n{text}"))
    };
    // Three direct calls and one through the agent.
    assert_eq!(
        value(
            r#"agenthost_invocation_duration_seconds_count{tenant="default",component="calculator",outcome="ok"}"#
        ),
        4.0
    );
    // Whichever limit stops the spinner first (the wall clock or its fuel)
    // is its outcome.
    let spinner: Vec<&str> = text
        .lines()
        .filter(|l| {
            l.starts_with(
                r#"agenthost_invocation_duration_seconds_count{tenant="default",component="spin-forever","#,
            )
        })
        .collect();
    assert!(
        spinner.len() == 1
            && (spinner[0].contains(r#"outcome="timeout""#)
                || spinner[0].contains(r#"outcome="out-of-fuel""#))
            && spinner[0].ends_with(" 1"),
        "{text}"
    );
    assert!(value(r#"agenthost_fuel_consumed_total{tenant="default",component="calculator"}"#) > 1000.0);
    assert!(value(r#"agenthost_memory_peak_bytes_sum{tenant="default",component="calculator"}"#) >= 65536.0);
    assert!(
        value(
            r#"agenthost_model_tokens_total{tenant="default",model="agenthost.builtin-v1",direction="input"}"#
        ) > 0.0
    );
    assert!(text.contains("# TYPE agenthost_approvals_pending gauge"), "{text}");
}
