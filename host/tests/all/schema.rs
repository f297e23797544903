//! A tool never runs on input its schema rules out.

use agenthost::{ErrorKind, Origin};
use agenthost_artifacts as artifacts;
use serde_json::json;

use crate::common::{host, load};

#[tokio::test(flavor = "multi_thread")]
async fn input_violating_the_schema_names_the_field_and_never_runs() {
    let host = host();
    let calculator = load(&host, artifacts::CALCULATOR).await;
    let before = host.stats().instantiations;

    let error = host.invoke_tool(&calculator, &json!({ "expression": 42 })).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::InvalidInput);
    assert_eq!(error.origin, Origin::Host);
    assert!(error.message.contains("field `/expression`"), "{error}");
    assert!(error.message.contains("\"string\""), "{error}");

    let error = host.invoke_tool(&calculator, &json!({})).await.unwrap_err();
    assert!(error.message.contains("\"expression\" is a required property"), "{error}");

    let error =
        host.invoke_tool(&calculator, &json!({ "expression": "1+1", "mode": "fast" })).await.unwrap_err();
    assert!(error.message.contains("mode"), "{error}");

    let error = host.invoke_tool(&calculator, &json!({ "expression": "1".repeat(1001) })).await.unwrap_err();
    assert!(error.message.contains("field `/expression`"), "{error}");

    assert_eq!(host.stats().instantiations, before, "no instance was created for invalid input");
    let output = host.invoke_tool(&calculator, &json!({ "expression": "1+1" })).await.unwrap();
    assert_eq!(output["value"], 2);
    assert_eq!(host.stats().instantiations, before + 1);
}
