//! The official OpenAI and Anthropic Python SDKs against the mock provider, directly
//! and through the shim (sdk-shim/tests/python/sdk_scenarios.py compares what the
//! SDKs see); then the spans the shim exported, after the schemas crate's pipeline,
//! and a search of the exported bytes and the shim's logs for the API key.
//!
//! Needs `.venv` with `openai` and `anthropic` (scripts/setup-python-shim.sh). Without
//! it the test fails under CI (or LOUPE_REQUIRE_PYTHON_SDKS=1) and is skipped, with a
//! note on stderr, elsewhere.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::Duration;

use common::sdk::{Logs, SHIM_CALLS, python_or_skip, run_scenarios};
use common::setup;
use schemas::{PriceStatus, StatusCode};

const KEY: &str = "sk-proj-SDKTEST-3f9c2a7b1e8d4c6a";

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn official_sdks_see_the_same_responses_and_spans_are_right() {
    let Some(py) = python_or_skip() else { return };
    let logs = Logs::install();
    let (mock, receiver, shim) = setup().await;
    run_scenarios(py, &mock, &shim, KEY).await;

    let spans = receiver.wait_for(SHIM_CALLS).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    let spans_now = receiver.spans();
    assert_eq!(
        spans_now.len(),
        SHIM_CALLS,
        "one span per call through the shim"
    );
    for s in &spans {
        assert_eq!(s.source_convention, "loupe_shim");
        assert_eq!(s.tenant_id, "sdk-tenant", "{s:#?}");
        assert_eq!(s.feature, "sdk-tests");
        assert_eq!(s.user_id, "sdk-user");
    }
    let ok: Vec<_> = spans
        .iter()
        .filter(|s| s.status != StatusCode::Error)
        .collect();
    assert_eq!(
        ok.len(),
        SHIM_CALLS - 6,
        "errors: 2×429, 2×500, 2 disconnects"
    );
    for s in &ok {
        assert_eq!(s.price_status, PriceStatus::Priced, "{s:#?}");
        assert!(
            s.cost.total.is_sign_positive() && !s.cost.total.is_zero(),
            "{} {:?}",
            s.name,
            s.cost
        );
        assert!(
            s.usage.input.is_some() && !s.response_model.is_empty(),
            "{s:#?}"
        );
    }
    let count = |f: &dyn Fn(&schemas::CanonicalSpan) -> bool| spans.iter().filter(|s| f(s)).count();
    assert_eq!(
        count(&|s| s.http_status == Some(429) && s.status == StatusCode::Error),
        2
    );
    assert_eq!(
        count(&|s| s.http_status == Some(500) && s.status == StatusCode::Error),
        2
    );
    assert_eq!(
        count(&|s| s.error_type == "cancelled" && s.usage.output.is_some_and(|o| o > 0)),
        2
    );
    assert_eq!(
        count(&|s| s.streaming == Some(true) && s.time_to_first_token_ns.is_some()),
        8
    );
    let evals: Vec<(String, String, String)> = spans
        .iter()
        .flat_map(|s| {
            s.evaluations
                .iter()
                .map(move |e| (s.provider.clone(), e.label.clone(), e.source.clone()))
        })
        .collect();
    assert_eq!(evals.len(), 4, "{evals:?}");
    for p in ["openai", "anthropic"] {
        for label in ["pass", "fail"] {
            assert!(
                evals.contains(&(p.to_owned(), label.to_owned(), "shim".to_owned())),
                "{p} {label}: {evals:?}"
            );
        }
    }
    assert!(count(&|s| s.provider == "anthropic" && s.usage.cache_read == Some(100)) >= 4);

    // The key reached the upstream on every call, and nothing else.
    assert!(mock.seen().iter().all(|s| {
        s.headers
            .get("authorization")
            .is_some_and(|v| v.to_str().unwrap().contains(KEY))
            || s.headers.get("x-api-key").is_some_and(|v| v == KEY)
    }));
    shim.stop().await;
    let exported = receiver.raw_text();
    assert!(!exported.is_empty());
    assert!(
        !exported.contains(KEY),
        "the API key is in an exported span"
    );
    let logs = logs.text();
    assert!(
        logs.contains("shim call forwarded"),
        "logging was on at trace level"
    );
    assert!(!logs.contains(KEY), "the API key is in the shim's logs");
    assert!(
        !logs.contains("SDKTEST"),
        "no part of the API key is in the shim's logs"
    );
}
