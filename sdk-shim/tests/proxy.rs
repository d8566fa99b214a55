//! The shim in front of the mock provider, with spans checked after the schemas
//! crate's normalisation and pricing (what the collector stores).
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::time::{Duration, Instant};

use common::mock::SCENARIO;
use common::{Mock, Receiver, config, setup, start_shim};
use schemas::{CanonicalSpan, PriceStatus, StatusCode};
use serde_json::{Value, json};

const KEY: &str = "sk-test-SECRETKEY-0123456789abcdef";

struct Reply {
    status: u16,
    headers: reqwest::header::HeaderMap,
    body: Vec<u8>,
}

impl Reply {
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

async fn call(base: &str, path: &str, body: &str, headers: &[(&str, &str)]) -> Reply {
    let req = reqwest::Client::new()
        .post(format!("{base}{path}"))
        .header("content-type", "application/json")
        .body(body.to_owned());
    send(req, headers).await
}

async fn call_get(base: &str, path: &str, headers: &[(&str, &str)]) -> Reply {
    send(reqwest::Client::new().get(format!("{base}{path}")), headers).await
}

async fn send(mut req: reqwest::RequestBuilder, headers: &[(&str, &str)]) -> Reply {
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = req.send().await.unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = resp.bytes().await.unwrap().to_vec();
    Reply {
        status,
        headers,
        body,
    }
}

fn chat_body(stream: bool) -> String {
    json!({"model": "gpt-4o-mini", "stream": stream, "temperature": 0.2, "max_tokens": 64,
        "messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Say hello"}]})
    .to_string()
}

fn auth() -> (&'static str, String) {
    ("authorization", format!("Bearer {KEY}"))
}

fn one<'a>(spans: &'a [CanonicalSpan], what: &str) -> &'a CanonicalSpan {
    assert_eq!(spans.len(), 1, "{what}: {spans:#?}");
    &spans[0]
}

#[tokio::test]
async fn chat_json_is_unchanged_and_captured_with_tokens_cost_tenant_and_parent() {
    let (mock, receiver, shim) = setup().await;
    let (a, key) = auth();
    let headers = [
        (a, key.as_str()),
        ("x-loupe-tenant", "acme"),
        ("x-loupe-feature", "search"),
        ("x-loupe-user", "u-1"),
        ("x-loupe-session", "s-1"),
        (
            "traceparent",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
        ),
    ];
    let direct = call(
        &mock.openai_base(),
        "/chat/completions",
        &chat_body(false),
        &[(a, key.as_str())],
    )
    .await;
    let via = call(
        &shim.openai_base(),
        "/chat/completions",
        &chat_body(false),
        &headers,
    )
    .await;
    assert_eq!(via.status, 200);
    assert_eq!(
        via.body, direct.body,
        "the client sees the upstream's bytes"
    );
    assert_eq!(via.headers.get("x-request-id").unwrap(), "req_mock");

    let seen = mock.seen().pop().unwrap();
    assert_eq!(seen.headers.get("authorization").unwrap(), key.as_str());
    assert!(
        seen.headers
            .keys()
            .all(|k| !k.as_str().starts_with("x-loupe-"))
    );
    assert_eq!(
        seen.body.as_ref(),
        chat_body(false).as_bytes(),
        "body forwarded byte for byte"
    );

    let spans = receiver.wait_for(1).await;
    let s = one(&spans, "chat");
    assert_eq!(s.source_convention, "loupe_shim");
    assert_eq!(s.scope_name, "loupe.shim");
    assert_eq!(s.operation.as_str(), "chat");
    assert_eq!(s.provider, "openai");
    assert_eq!(s.request_model, "gpt-4o-mini");
    assert_eq!(s.response_model, "gpt-4o-mini-2024-07-18");
    assert_eq!(s.response_id, "chatcmpl-mock1");
    assert_eq!(s.usage.input, Some(12));
    assert_eq!(s.usage.output, Some(5));
    assert_eq!(s.usage.cache_read, Some(0));
    assert_eq!(s.usage.reasoning, Some(0));
    assert_eq!(s.finish_reasons, vec!["stop"]);
    assert_eq!(s.price_status, PriceStatus::Priced);
    assert!(
        !s.cost.total.is_zero() && s.cost.total.is_sign_positive(),
        "{:?}",
        s.cost
    );
    assert_eq!(s.tenant_id, "acme");
    assert_eq!(s.feature, "search");
    assert_eq!(s.user_id, "u-1");
    assert_eq!(s.session_id, "s-1");
    assert_eq!(s.trace_id, "4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(s.parent_span_id, "00f067aa0ba902b7");
    assert_eq!(s.kind, "client");
    assert_eq!(s.status, StatusCode::Unset);
    assert_eq!(s.streaming, Some(false));
    assert!(
        s.request_params
            .iter()
            .any(|(k, v)| k == "temperature" && v == "0.2"),
        "{:?}",
        s.request_params
    );
    assert!(
        s.request_params
            .iter()
            .any(|(k, v)| k == "max_tokens" && v == "64")
    );
    assert!(
        s.input_messages.contains("Say hello"),
        "{}",
        s.input_messages
    );
    assert!(
        s.output_messages.contains("Hello there!"),
        "{}",
        s.output_messages
    );
    assert!(
        !receiver.raw_text().contains(KEY),
        "the API key never reaches a span"
    );
    shim.stop().await;
}

async fn read_stream(url: &str, body: &str, headers: &[(&str, &str)]) -> Vec<u8> {
    call(url, "", body, headers).await.body
}

#[tokio::test]
async fn chat_stream_gets_usage_injected_and_the_client_never_sees_it() {
    let (mock, receiver, shim) = setup().await;
    let body = chat_body(true);
    let direct = read_stream(
        &format!("{}/chat/completions", mock.openai_base()),
        &body,
        &[],
    )
    .await;
    let via = read_stream(
        &format!("{}/chat/completions", shim.openai_base()),
        &body,
        &[],
    )
    .await;
    assert_eq!(
        String::from_utf8(via).unwrap(),
        String::from_utf8(direct).unwrap()
    );
    assert_eq!(
        mock.last_body()["stream_options"]["include_usage"],
        true,
        "usage injected upstream"
    );

    let spans = receiver.wait_for(1).await;
    let s = one(&spans, "stream");
    assert_eq!(s.streaming, Some(true));
    assert_eq!(s.usage.input, Some(12));
    assert_eq!(s.usage.output, Some(5));
    assert_eq!(s.price_status, PriceStatus::Priced);
    let ttft = s.time_to_first_token_ns.expect("time to first token");
    assert!(
        ttft >= 10_000_000,
        "first content comes after the mock's 15 ms pause: {ttft}"
    );
    assert!(
        s.output_messages.contains("Hello there!"),
        "{}",
        s.output_messages
    );
    assert!(
        s.attributes
            .iter()
            .any(|(k, v)| k == "loupe.usage.injected" && v == "true")
    );
    shim.stop().await;
}

#[tokio::test]
async fn chat_stream_that_asked_for_usage_is_untouched() {
    let (mock, receiver, shim) = setup().await;
    let body =
        json!({"model": "gpt-4o-mini", "stream": true, "stream_options": {"include_usage": true},
        "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
    let direct = read_stream(
        &format!("{}/chat/completions", mock.openai_base()),
        &body,
        &[],
    )
    .await;
    let via = read_stream(
        &format!("{}/chat/completions", shim.openai_base()),
        &body,
        &[],
    )
    .await;
    assert_eq!(via, direct);
    let text = String::from_utf8_lossy(&via);
    assert!(
        text.contains("\"choices\":[]") && text.contains("\"prompt_tokens\":12"),
        "{text}"
    );
    let s = receiver.wait_for(1).await.remove(0);
    assert_eq!(s.usage.output, Some(5));
    assert!(
        !s.attributes
            .iter()
            .any(|(k, _)| k == "loupe.usage.injected")
    );
    shim.stop().await;
}

#[tokio::test]
async fn streamed_tool_calls_are_assembled() {
    let (_mock, receiver, shim) = setup().await;
    let body = json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "weather?"}],
        "tools": [{"type": "function", "function": {"name": "get_weather", "parameters": {"type": "object"}}}]})
    .to_string();
    let via = read_stream(
        &format!("{}/chat/completions", shim.openai_base()),
        &body,
        &[],
    )
    .await;
    assert!(String::from_utf8_lossy(&via).contains("tool_calls"));
    let s = receiver.wait_for(1).await.remove(0);
    assert_eq!(s.finish_reasons, vec!["tool_calls"]);
    assert!(
        s.output_messages.contains("get_weather"),
        "{}",
        s.output_messages
    );
    assert!(s.output_messages.contains("Paris"), "{}", s.output_messages);
    assert!(s.tool_definitions.contains("get_weather"));
    shim.stop().await;
}

#[tokio::test]
async fn anthropic_stream_with_tool_use_and_cache_tokens() {
    let (mock, receiver, shim) = setup().await;
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": true, "system": "Be brief.",
        "messages": [{"role": "user", "content": "weather in Paris?"}],
        "tools": [{"name": "get_weather", "input_schema": {"type": "object"}}]})
    .to_string();
    let h = [
        ("x-api-key", KEY),
        ("anthropic-version", "2023-06-01"),
        ("x-loupe-tenant", "globex"),
    ];
    let direct = read_stream(&format!("{}/v1/messages", mock.anthropic_base()), &body, &h).await;
    let via = read_stream(&format!("{}/v1/messages", shim.url()), &body, &h).await;
    assert_eq!(via, direct);
    assert_eq!(
        mock.seen().pop().unwrap().headers.get("x-api-key").unwrap(),
        KEY
    );
    let s = receiver.wait_for(1).await.remove(0);
    assert_eq!(s.provider, "anthropic");
    assert_eq!(s.tenant_id, "globex");
    assert_eq!(s.response_model, "claude-sonnet-4-5-20250929");
    assert_eq!(s.usage.input, Some(120), "input includes cache reads");
    assert_eq!(s.usage.cache_read, Some(100));
    assert_eq!(s.usage.cache_write, Some(0));
    assert_eq!(s.usage.output, Some(5));
    assert_eq!(s.finish_reasons, vec!["tool_use"]);
    assert!(
        s.output_messages.contains("toolu_mock1"),
        "{}",
        s.output_messages
    );
    assert!(
        s.input_messages.contains("Be brief."),
        "system instructions: {}",
        s.input_messages
    );
    assert_eq!(s.price_status, PriceStatus::Priced);
    assert!(!receiver.raw_text().contains(KEY));
    shim.stop().await;
}

#[tokio::test]
async fn responses_completions_and_embeddings_are_captured() {
    let (_mock, receiver, shim) = setup().await;
    let base = shim.openai_base();
    let r = call(
        &base,
        "/responses",
        &json!({"model": "gpt-4.1-mini", "input": "hi", "instructions": "terse", "stream": true})
            .to_string(),
        &[],
    )
    .await;
    assert_eq!(r.status, 200);
    let r = call(
        &base,
        "/responses",
        &json!({"model": "gpt-4.1-mini", "input": "hi"}).to_string(),
        &[],
    )
    .await;
    assert_eq!(r.json()["output"][0]["content"][0]["text"], "Hello there!");
    let c = call(
        &base,
        "/completions",
        &json!({"model": "gpt-3.5-turbo-instruct", "prompt": "Say", "stream": true}).to_string(),
        &[],
    )
    .await;
    assert!(
        !String::from_utf8_lossy(&c.body).contains("usage"),
        "legacy completions stream: usage hidden too"
    );
    let e = call(
        &base,
        "/embeddings",
        &json!({"model": "text-embedding-3-small", "input": "hello"}).to_string(),
        &[],
    )
    .await;
    assert_eq!(e.status, 200);
    let spans = receiver.wait_for(4).await;
    let by_op = |op: &str, stream: bool| {
        spans
            .iter()
            .find(|s| {
                s.operation.as_str() == op
                    && s.streaming == Some(stream)
                    && (op != "chat" || s.request_model == "gpt-4.1-mini")
            })
            .unwrap_or_else(|| panic!("{op} {stream}: {spans:#?}"))
    };
    let rs = by_op("chat", true);
    assert_eq!(rs.usage.input, Some(10));
    assert_eq!(rs.usage.cache_read, Some(2));
    assert_eq!(rs.usage.reasoning, Some(1));
    assert!(rs.time_to_first_token_ns.is_some());
    assert!(rs.output_messages.contains("Hello there!"));
    let rj = by_op("chat", false);
    assert_eq!(rj.response_id, "resp_mock1");
    assert_eq!(rj.finish_reasons, vec!["stop"]);
    let cs = by_op("text_completion", true);
    assert_eq!(cs.usage.output, Some(3));
    assert!(cs.output_messages.contains("Hello there!"));
    let es = spans
        .iter()
        .find(|s| s.operation.as_str() == "embeddings")
        .unwrap();
    assert_eq!(es.usage.input, Some(4));
    assert_eq!(es.price_status, PriceStatus::Priced);
    shim.stop().await;
}

const SCHEMA: &str = r#"{"type":"object","properties":{"city":{"type":"string"},"temp_c":{"type":"number"}},"required":["city","temp_c"],"additionalProperties":false}"#;

fn schema_body() -> String {
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    json!({"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "weather as JSON"}],
        "response_format": {"type": "json_schema", "json_schema": {"name": "weather", "strict": true, "schema": schema}}})
    .to_string()
}

#[tokio::test]
async fn json_schema_outputs_are_validated_without_touching_the_response() {
    let (mock, receiver, shim) = setup().await;
    let valid = call(
        &shim.openai_base(),
        "/chat/completions",
        &schema_body(),
        &[],
    )
    .await;
    let invalid = call(
        &shim.openai_base(),
        "/chat/completions",
        &schema_body(),
        &[(SCENARIO, "invalid_output")],
    )
    .await;
    let direct_invalid = call(
        &mock.openai_base(),
        "/chat/completions",
        &schema_body(),
        &[(SCENARIO, "invalid_output")],
    )
    .await;
    assert_eq!(invalid.body, direct_invalid.body);
    assert_eq!(valid.status, 200);
    let spans = receiver.wait_for(2).await;
    let mut labels: Vec<(String, String, String, String)> = spans
        .iter()
        .map(|s| {
            assert_eq!(
                s.evaluations.len(),
                1,
                "exactly one evaluation: {:?}",
                s.evaluations
            );
            let e = &s.evaluations[0];
            (
                e.label.clone(),
                e.name.clone(),
                e.source.clone(),
                e.explanation.clone(),
            )
        })
        .collect();
    labels.sort();
    assert_eq!(labels[0].0, "fail");
    assert_eq!(labels[0].1, "json_schema");
    assert_eq!(labels[0].2, "shim");
    assert!(
        labels[0].3.starts_with("/temp_c"),
        "first error path: {}",
        labels[0].3
    );
    assert_eq!(labels[1].0, "pass");
    shim.stop().await;
}

#[tokio::test]
async fn anthropic_forced_tool_output_is_validated_against_its_input_schema() {
    let (_mock, receiver, shim) = setup().await;
    let schema: Value = serde_json::from_str(SCHEMA).unwrap();
    for (scenario, stream) in [("ok", false), ("invalid_output", true)] {
        let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 100, "stream": stream,
            "messages": [{"role": "user", "content": "weather"}],
            "tools": [{"name": "record_weather", "input_schema": schema}],
            "tool_choice": {"type": "tool", "name": "record_weather"}})
        .to_string();
        let r = call(
            &shim.url(),
            "/v1/messages",
            &body,
            &[(SCENARIO, scenario), ("anthropic-version", "2023-06-01")],
        )
        .await;
        assert_eq!(r.status, 200);
    }
    let spans = receiver.wait_for(2).await;
    let label = |stream: bool| {
        let s = spans.iter().find(|s| s.streaming == Some(stream)).unwrap();
        s.evaluations[0].label.clone()
    };
    assert_eq!(label(false), "pass");
    assert_eq!(label(true), "fail");
    shim.stop().await;
}

#[tokio::test]
async fn upstream_429_and_500_pass_through_with_headers_and_are_recorded() {
    let (mock, receiver, shim) = setup().await;
    for (scenario, code) in [("rate_limit", 429u16), ("server_error", 500)] {
        let h = [(SCENARIO, scenario)];
        let direct = call(
            &mock.openai_base(),
            "/chat/completions",
            &chat_body(false),
            &h,
        )
        .await;
        let via = call(
            &shim.openai_base(),
            "/chat/completions",
            &chat_body(false),
            &h,
        )
        .await;
        assert_eq!(via.status, code);
        assert_eq!(via.body, direct.body);
        for (k, v) in direct.headers.iter() {
            if k != "date" {
                assert_eq!(via.headers.get(k), Some(v), "{scenario}: header {k}");
            }
        }
        let ah = [(SCENARIO, scenario), ("anthropic-version", "2023-06-01")];
        let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}).to_string();
        let a = call(&shim.url(), "/v1/messages", &body, &ah).await;
        assert_eq!(a.status, code);
    }
    let spans = receiver.wait_for(4).await;
    let find = |p: &str, code: u16| {
        spans
            .iter()
            .find(|s| s.provider == p && s.http_status == Some(code))
            .unwrap_or_else(|| panic!("{p} {code}: {spans:#?}"))
    };
    let s = find("openai", 429);
    assert_eq!(s.status, StatusCode::Error);
    assert_eq!(s.error_type, "requests");
    assert!(
        s.attributes
            .iter()
            .any(|(k, v)| k == "http.response.status_code" && v == "429")
    );
    assert_eq!(find("anthropic", 429).error_type, "rate_limit_error");
    assert_eq!(find("openai", 500).error_type, "server_error");
    assert_eq!(find("anthropic", 500).error_type, "api_error");
    assert_eq!(
        s.price_status,
        PriceStatus::NotApplicable,
        "failed calls bill nothing"
    );
    shim.stop().await;
}

#[tokio::test]
async fn slow_upstream_gets_504_in_each_providers_format() {
    let (_mock, receiver, shim) = setup().await;
    let t = Instant::now();
    let o = call(
        &shim.openai_base(),
        "/chat/completions",
        &chat_body(false),
        &[(SCENARIO, "slow_headers")],
    )
    .await;
    assert!(
        t.elapsed() < Duration::from_millis(2_500),
        "read timeout is 1 s"
    );
    assert_eq!(o.status, 504);
    assert_eq!(o.json()["error"]["type"], "timeout");
    assert!(o.json()["error"]["message"].is_string());
    let body = json!({"model": "claude-sonnet-4-5", "max_tokens": 10, "messages": [{"role": "user", "content": "x"}]}).to_string();
    let a = call(
        &shim.url(),
        "/v1/messages",
        &body,
        &[(SCENARIO, "slow_headers")],
    )
    .await;
    assert_eq!(a.status, 504);
    assert_eq!(a.json()["type"], "error");
    assert_eq!(a.json()["error"]["type"], "timeout_error");
    let spans = receiver.wait_for(2).await;
    assert!(
        spans
            .iter()
            .all(|s| s.error_type == "timeout" && s.status == StatusCode::Error)
    );
    shim.stop().await;
}

#[tokio::test]
async fn malformed_json_gets_400_in_each_providers_format_and_never_reaches_upstream() {
    let (mock, _receiver, shim) = setup().await;
    let o = call(
        &shim.openai_base(),
        "/chat/completions",
        "{\"model\": ",
        &[],
    )
    .await;
    assert_eq!(o.status, 400);
    assert_eq!(o.json()["error"]["type"], "invalid_request_error");
    let a = call(&shim.url(), "/v1/messages", "[1,2]", &[]).await;
    assert_eq!(a.status, 400);
    assert_eq!(a.json()["error"]["type"], "invalid_request_error");
    assert!(mock.seen().is_empty());
    shim.stop().await;
}

#[tokio::test]
async fn client_disconnect_aborts_upstream_and_records_estimated_partial_tokens() {
    let (mock, receiver, shim) = setup().await;
    for (path, body) in [
        (
            "/v1/chat/completions",
            json!({"model": "gpt-4o-mini", "stream": true, "messages": [{"role": "user", "content": "count"}]}),
        ),
        (
            "/v1/messages",
            json!({"model": "claude-sonnet-4-5", "max_tokens": 500, "stream": true, "messages": [{"role": "user", "content": "count"}]}),
        ),
    ] {
        let client = reqwest::Client::new();
        let mut resp = client
            .post(format!("{}{path}", shim.url()))
            .header(SCENARIO, "slow_stream")
            .body(body.to_string())
            .send()
            .await
            .unwrap();
        let mut got = Vec::new();
        while !String::from_utf8_lossy(&got).contains("word2") {
            got.extend_from_slice(&resp.chunk().await.unwrap().unwrap());
        }
        drop(resp);
        drop(client);
    }
    let spans = receiver.wait_for(2).await;
    for s in &spans {
        assert_eq!(s.error_type, "cancelled", "{s:#?}");
        assert!(
            s.attributes
                .iter()
                .any(|(k, v)| k == "loupe.cancelled" && v == "true")
        );
        assert!(
            s.attributes
                .iter()
                .any(|(k, v)| k == "loupe.usage.estimated" && v == "true")
        );
        assert_eq!(s.price_status, PriceStatus::EstimatedUsage, "{s:#?}");
        let out = s.usage.output.unwrap();
        assert!(
            out > 0 && out < 400,
            "tokens seen so far, estimated: {out}: {s:#?}"
        );
        assert!(s.usage.input.is_some());
        assert!(s.output_messages.contains("word0"), "{}", s.output_messages);
    }
    let deadline = Instant::now() + Duration::from_secs(3);
    while mock.state.aborted.load(std::sync::atomic::Ordering::SeqCst) < 2
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        mock.state.aborted.load(std::sync::atomic::Ordering::SeqCst),
        2,
        "upstream streams aborted"
    );
    assert_eq!(
        mock.state
            .completed_streams
            .load(std::sync::atomic::Ordering::SeqCst),
        0
    );
    let metrics = reqwest::get(format!("{}/metrics", shim.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("loupe_shim_client_cancelled_total 2"),
        "{metrics}"
    );
    shim.stop().await;
}

#[tokio::test]
async fn unknown_paths_and_models_pass_through_without_capture() {
    let (mock, receiver, shim) = setup().await;
    let direct = reqwest::get(format!("{}/models", mock.openai_base()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let via = reqwest::get(format!("{}/models", shim.openai_base()))
        .await
        .unwrap();
    assert_eq!(via.status(), 200);
    assert_eq!(via.text().await.unwrap(), direct);
    let r = call(&shim.openai_base(), "/files", "{}", &[]).await;
    assert_eq!(r.status, 404);
    assert_eq!(mock.seen().last().unwrap().path, "/v1/files");
    // A captured call afterwards proves the exporter works; only it yields a span.
    call(
        &shim.openai_base(),
        "/chat/completions",
        &chat_body(false),
        &[],
    )
    .await;
    let spans = receiver.wait_for(1).await;
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(receiver.spans().len(), 1, "{spans:#?}");
    shim.stop().await;
}

#[tokio::test]
async fn model_prefix_rules_route_to_another_upstream() {
    let mock = Mock::start().await;
    let local = Mock::start().await;
    let receiver = Receiver::start().await;
    let mut cfg = config(&mock, &receiver);
    cfg.routes.push(sdk_shim::RouteRule {
        model_prefix: "llama".into(),
        base_url: local.openai_base(),
        provider: Some("ollama".into()),
    });
    let shim = start_shim(cfg).await;
    let body = json!({"model": "llama3.1:8b", "messages": [{"role": "user", "content": "hi"}]})
        .to_string();
    assert_eq!(
        call(&shim.openai_base(), "/chat/completions", &body, &[])
            .await
            .status,
        200
    );
    assert_eq!(local.seen().len(), 1);
    assert!(mock.seen().is_empty());
    let s = receiver.wait_for(1).await.remove(0);
    assert_eq!(s.provider, "ollama");
    assert_eq!(s.server_address(), local.addr.ip().to_string());
    shim.stop().await;
}

trait ServerAddress {
    fn server_address(&self) -> String;
}

impl ServerAddress for CanonicalSpan {
    fn server_address(&self) -> String {
        self.attributes
            .iter()
            .find(|(k, _)| k == "server.address")
            .map(|(_, v)| v.clone())
            .unwrap_or_default()
    }
}

#[tokio::test]
async fn a_full_export_queue_drops_and_counts_without_delaying_callers() {
    let mock = Mock::start().await;
    let receiver = Receiver::start().await;
    *receiver.got.delay.lock().unwrap() = Duration::from_secs(2);
    let mut cfg = config(&mock, &receiver);
    cfg.queue_capacity = 1;
    let shim = start_shim(cfg).await;
    let mut worst = Duration::ZERO;
    for _ in 0..10 {
        let t = Instant::now();
        let r = call(
            &shim.openai_base(),
            "/chat/completions",
            &chat_body(false),
            &[],
        )
        .await;
        assert_eq!(r.status, 200);
        worst = worst.max(t.elapsed());
    }
    assert!(
        worst < Duration::from_millis(500),
        "callers never wait for export: {worst:?}"
    );
    let metrics = reqwest::get(format!("{}/metrics", shim.url()))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let dropped: u64 = metrics
        .lines()
        .find_map(|l| l.strip_prefix("loupe_shim_spans_dropped_total "))
        .unwrap()
        .parse()
        .unwrap();
    assert!(dropped >= 5, "{metrics}");
    shim.stop().await;
}

#[tokio::test]
async fn port_in_use_is_a_clear_bind_error() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let cfg = sdk_shim::ShimConfig {
        listen: taken.local_addr().unwrap(),
        ..sdk_shim::ShimConfig::default()
    };
    let err = sdk_shim::Shim::bind(&cfg)
        .await
        .err()
        .expect("bind must fail");
    assert!(matches!(err, sdk_shim::ShimError::Bind { .. }));
    assert!(err.to_string().contains("cannot listen"), "{err}");
}

#[tokio::test]
async fn unreachable_upstream_is_502_and_oversized_body_is_413() {
    let mock = Mock::start().await;
    let receiver = Receiver::start().await;
    let closed = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let dead = format!("http://{}", closed.local_addr().unwrap());
    drop(closed);
    let mut cfg = config(&mock, &receiver);
    cfg.openai_base_url = format!("{dead}/v1");
    cfg.max_request_body_bytes = 1024;
    let shim = start_shim(cfg).await;
    let r = call(
        &shim.openai_base(),
        "/chat/completions",
        &chat_body(false),
        &[],
    )
    .await;
    assert_eq!(r.status, 502);
    assert_eq!(r.json()["error"]["code"], "upstream_unavailable");
    let big = json!({"model": "claude-sonnet-4-5", "messages": [{"role": "user", "content": "x".repeat(4096)}]}).to_string();
    let a = call(&shim.url(), "/v1/messages", &big, &[]).await;
    assert_eq!(a.status, 413);
    assert_eq!(a.json()["error"]["type"], "request_too_large");
    assert!(mock.seen().is_empty());
    let s = receiver.wait_for(1).await.remove(0);
    assert_eq!(s.error_type, "upstream_unavailable");
    assert_eq!(s.status, StatusCode::Error);
    shim.stop().await;
}

#[tokio::test]
async fn a_stream_that_stalls_past_the_read_timeout_is_cut_and_recorded() {
    let (_mock, receiver, shim) = setup().await;
    let client = reqwest::Client::new();
    let t = Instant::now();
    let mut resp = client
        .post(format!("{}/chat/completions", shim.openai_base()))
        .header(SCENARIO, "stall_stream")
        .body(chat_body(true))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let mut cut = false;
    loop {
        match resp.chunk().await {
            Ok(Some(_)) => {}
            Ok(None) => break,
            Err(_) => {
                cut = true;
                break;
            }
        }
    }
    assert!(
        cut,
        "the client sees the stream end abnormally, not a clean end"
    );
    assert!(
        t.elapsed() < Duration::from_millis(2_500),
        "cut after the 1 s read timeout"
    );
    let s = receiver.wait_for(1).await.remove(0);
    assert_eq!(s.error_type, "timeout");
    assert!(s.output_messages.contains("Hello"), "{}", s.output_messages);
    assert_eq!(s.price_status, PriceStatus::EstimatedUsage);
    shim.stop().await;
}

#[tokio::test]
async fn loupe_keys_gate_capture_and_decide_the_tenant() {
    use schemas::ingest_keys::{KeyEntry, hash_key};
    let mock = Mock::start().await;
    let receiver = Receiver::start().await;
    let mut cfg = config(&mock, &receiver);
    let key = "loupe_shim_client_key_0123456789";
    cfg.keys = vec![KeyEntry {
        tenant: "acme".into(),
        sha256: hash_key(key),
        name: String::new(),
        forwarder: false,
    }];
    let shim = start_shim(cfg).await;
    let (a, provider_key) = auth();
    // No Loupe key, a wrong one: refused in each provider's format, upstream untouched.
    let o = call(
        &shim.openai_base(),
        "/chat/completions",
        &chat_body(false),
        &[(a, provider_key.as_str())],
    )
    .await;
    assert_eq!(o.status, 401);
    assert_eq!(o.json()["error"]["code"], "authentication_error");
    let an = call(
        &shim.url(),
        "/v1/messages",
        "{}",
        &[("x-loupe-key", "loupe_wrong")],
    )
    .await;
    assert_eq!(an.status, 401);
    assert_eq!(an.json()["error"]["type"], "authentication_error");
    // Pass-through (uncaptured) routes are gated the same way.
    let models = call_get(
        &shim.openai_base(),
        "/models",
        &[(a, provider_key.as_str())],
    )
    .await;
    assert_eq!(models.status, 401);
    assert_eq!(models.json()["error"]["code"], "authentication_error");
    assert!(mock.seen().is_empty());
    let models = call_get(
        &shim.openai_base(),
        "/models",
        &[(a, provider_key.as_str()), ("x-loupe-key", key)],
    )
    .await;
    assert_eq!(
        models.status,
        200,
        "{}",
        String::from_utf8_lossy(&models.body)
    );
    assert_eq!(mock.seen().len(), 1);
    assert!(mock.seen().iter().all(|s| !format!("{s:?}").contains(key)));
    // The right key: captured as the key's tenant whatever the header claims,
    // and the key never reaches the upstream.
    let ok = call(
        &shim.openai_base(),
        "/chat/completions",
        &chat_body(false),
        &[
            (a, provider_key.as_str()),
            ("x-loupe-key", key),
            ("x-loupe-tenant", "globex"),
        ],
    )
    .await;
    assert_eq!(ok.status, 200);
    let spans = receiver.wait_for(1).await;
    assert_eq!(spans[0].tenant_id, "acme");
    assert!(mock.seen().iter().all(|s| !format!("{s:?}").contains(key)));
    assert!(!receiver.raw_text().contains(key));
    shim.stop().await;
}
