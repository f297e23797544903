//! Every limit has a test that hits it; after each, the same host still
//! serves a normal call, and a runaway guest never holds up other calls.

use std::time::{Duration, Instant};

use agenthost::{ErrorKind, Host, LimitHit, Limits, Origin};
use agenthost_artifacts as artifacts;
use serde_json::json;

use crate::common::{host_with, load};

/// Generous fuel so the wall clock, not fuel, ends a spinning guest.
const PLENTY_OF_FUEL: u64 = u64::MAX / 4;

async fn calculator_still_works(host: &Host) {
    let calculator = load(host, artifacts::CALCULATOR).await;
    let output = host.invoke_tool(&calculator, &json!({ "expression": "6 * 7" })).await.unwrap();
    assert_eq!(output["value"], 42);
}

#[tokio::test(flavor = "multi_thread")]
async fn spin_forever_times_out_within_twice_the_deadline() {
    let deadline = Duration::from_millis(400);
    let host = host_with(Limits { timeout: deadline, fuel: PLENTY_OF_FUEL, ..Limits::default() });
    let spin = load(&host, artifacts::SPIN_FOREVER).await;
    let started = Instant::now();
    let error = host.invoke_tool(&spin, &json!({})).await.unwrap_err();
    let elapsed = started.elapsed();
    assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
    assert_eq!(error.origin, Origin::Host);
    assert_eq!(error.limit, Some(LimitHit { name: "timeout_ms", value: 400 }));
    assert_eq!(error.component.as_ref().unwrap().name, "spin-forever");
    assert!(!error.backtrace.is_empty(), "a timeout inside the guest carries its backtrace");
    assert!(elapsed < deadline * 2, "stopped after {elapsed:?}, deadline {deadline:?}");
    calculator_still_works(&host).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_guest_blocked_in_a_host_wait_still_times_out() {
    let deadline = Duration::from_millis(300);
    let host = host_with(Limits { timeout: deadline, ..Limits::default() });
    let spin = load(&host, artifacts::SPIN_FOREVER).await;
    let started = Instant::now();
    let error = host.invoke_tool(&spin, &json!({ "mode": "sleep" })).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::Timeout, "{error}");
    assert!(started.elapsed() < deadline * 2, "stopped after {:?}", started.elapsed());
    calculator_still_works(&host).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn memory_hog_hits_the_memory_limit() {
    let limit = 32 << 20;
    let host = host_with(Limits { memory_bytes: limit, ..Limits::default() });
    let hog = load(&host, artifacts::MEMORY_HOG).await;
    let error = host.invoke_tool(&hog, &json!({})).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::MemoryLimit, "{error}");
    assert_eq!(error.limit, Some(LimitHit { name: "memory_bytes", value: limit }));
    assert!(error.message.contains(&limit.to_string()), "{error}");
    assert_eq!(error.component.as_ref().unwrap().name, "memory-hog");
    calculator_still_works(&host).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_fuel_budget_ends_a_cpu_bound_call() {
    let host = host_with(Limits { fuel: 5_000_000, timeout: Duration::from_secs(60), ..Limits::default() });
    let spin = load(&host, artifacts::SPIN_FOREVER).await;
    let error = host.invoke_tool(&spin, &json!({})).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::OutOfFuel, "{error}");
    assert_eq!(error.limit, Some(LimitHit { name: "fuel", value: 5_000_000 }));
    calculator_still_works(&host).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn deep_recursion_overflows_the_stack() {
    let host = host_with(Limits::default());
    let deep = load(&host, artifacts::DEEP_RECURSION).await;
    let error = host.invoke_tool(&deep, &json!({})).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::StackOverflow, "{error}");
    assert_eq!(error.limit.map(|l| l.name), Some("max_wasm_stack_bytes"));
    assert!(error.backtrace.iter().any(|frame| frame.contains("descend")), "{:?}", error.backtrace);
    calculator_still_works(&host).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn output_above_the_cap_is_refused() {
    let host = host_with(Limits { output_bytes: 64 << 10, ..Limits::default() });
    let big = load(&host, artifacts::BIG_OUTPUT).await;
    let small = host.invoke_tool(&big, &json!({ "bytes": 1000 })).await.unwrap();
    assert_eq!(small["data"].as_str().unwrap().len(), 1000);
    let error = host.invoke_tool(&big, &json!({ "bytes": 100_000 })).await.unwrap_err();
    assert_eq!(error.kind, ErrorKind::OutputTooLarge, "{error}");
    assert_eq!(error.limit, Some(LimitHit { name: "output_bytes", value: 64 << 10 }));
    calculator_still_works(&host).await;
}

/// On a single-threaded executor, a spinning guest yields at every epoch
/// tick, so other calls on the same thread go on while it spins.
#[test]
fn a_spinning_guest_does_not_hold_its_worker() {
    let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
    runtime.block_on(async {
        let host =
            host_with(Limits { timeout: Duration::from_secs(8), fuel: PLENTY_OF_FUEL, ..Limits::default() });
        let spin = load(&host, artifacts::SPIN_FOREVER).await;
        let calculator = load(&host, artifacts::CALCULATOR).await;
        let spinning = {
            let host = host.clone();
            tokio::spawn(async move { host.invoke_tool(&spin, &json!({})).await })
        };
        // Let the spinning call start first.
        tokio::task::yield_now().await;
        for i in 0..20 {
            let output =
                host.invoke_tool(&calculator, &json!({ "expression": format!("{i} + 1") })).await.unwrap();
            assert_eq!(output["value"], i + 1);
        }
        assert!(!spinning.is_finished(), "the calls above ran while the guest was still spinning");
        let error = spinning.await.unwrap().unwrap_err();
        assert_eq!(error.kind, ErrorKind::Timeout);
    });
}

/// Calls from another thread are not held up by runaway guests.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_calls_on_another_thread_are_not_held_up() {
    let host =
        host_with(Limits { timeout: Duration::from_secs(8), fuel: PLENTY_OF_FUEL, ..Limits::default() });
    let spin = load(&host, artifacts::SPIN_FOREVER).await;
    load(&host, artifacts::CALCULATOR).await;
    let spinners: Vec<_> = (0..4)
        .map(|_| {
            let (host, spin) = (host.clone(), spin.clone());
            tokio::spawn(async move { host.invoke_tool(&spin, &json!({})).await })
        })
        .collect();
    let other = host.clone();
    let served = std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap();
        runtime.block_on(async {
            let calculator = load(&other, artifacts::CALCULATOR).await;
            let mut served = 0;
            for i in 0..50 {
                let output = other
                    .invoke_tool(&calculator, &json!({ "expression": format!("{i} * 2") }))
                    .await
                    .unwrap();
                assert_eq!(output["value"], i * 2);
                served += 1;
            }
            served
        })
    })
    .join()
    .unwrap();
    assert_eq!(served, 50);
    assert!(spinners.iter().all(|s| !s.is_finished()), "served while four guests were spinning");
    for spinner in spinners {
        assert_eq!(spinner.await.unwrap().unwrap_err().kind, ErrorKind::Timeout);
    }
}
