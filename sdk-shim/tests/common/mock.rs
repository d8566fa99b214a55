//! A mock provider that speaks the real OpenAI and Anthropic wire formats (JSON
//! bodies, SSE streams with usage chunks, tool calls, error bodies with their
//! headers). The scenario comes from the `x-mock-scenario` request header so the
//! same model names (which have prices) serve every case.

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use http_body::Frame;
use serde_json::{Value, json};
use tokio::sync::mpsc;

pub const SCENARIO: &str = "x-mock-scenario";
pub const CREATED: i64 = 1_700_000_000;

#[derive(Debug, Clone)]
pub struct Seen {
    pub path: String,
    pub headers: HeaderMap,
    pub body: Bytes,
}

#[derive(Default)]
pub struct MockState {
    pub seen: Mutex<Vec<Seen>>,
    /// Streams whose reader went away before the last chunk.
    pub aborted: AtomicU64,
    pub completed_streams: AtomicU64,
}

pub struct Mock {
    pub addr: SocketAddr,
    pub state: Arc<MockState>,
}

impl Mock {
    pub async fn start() -> Mock {
        let state = Arc::new(MockState::default());
        let app = Router::new().fallback(handle).with_state(state.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        Mock { addr, state }
    }

    pub fn openai_base(&self) -> String {
        format!("http://{}/v1", self.addr)
    }

    pub fn anthropic_base(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn seen(&self) -> Vec<Seen> {
        self.state.seen.lock().unwrap().clone()
    }

    pub fn last_body(&self) -> Value {
        serde_json::from_slice(&self.seen().last().unwrap().body).unwrap()
    }
}

async fn handle(State(st): State<Arc<MockState>>, req: Request) -> Response {
    let (parts, body) = req.into_parts();
    let body = http_body_util::BodyExt::collect(body)
        .await
        .unwrap()
        .to_bytes();
    let path = parts.uri.path().to_owned();
    st.seen.lock().unwrap().push(Seen {
        path: path.clone(),
        headers: parts.headers.clone(),
        body: body.clone(),
    });
    let scenario = parts
        .headers
        .get(SCENARIO)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    let req: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    if scenario == "slow_headers" {
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    let anthropic = path == "/v1/messages";
    match scenario.as_str() {
        "rate_limit" => return rate_limited(anthropic),
        "server_error" => return server_error(anthropic),
        _ => {}
    }
    match (parts.method.as_str(), path.as_str()) {
        ("POST", "/v1/chat/completions") => chat(&st, &req, &scenario),
        ("POST", "/v1/completions") => completions(&st, &req, &scenario),
        ("POST", "/v1/embeddings") => json_response(json!({
            "object": "list",
            "data": [{"object": "embedding", "index": 0, "embedding": [0.1, 0.2, 0.3]}],
            "model": "text-embedding-3-small",
            "usage": {"prompt_tokens": 4, "total_tokens": 4}
        })),
        ("POST", "/v1/responses") => responses(&st, &req, &scenario),
        ("POST", "/v1/messages") => messages(&st, &req, &scenario),
        ("GET", "/v1/models") => json_response(json!({
            "object": "list",
            "data": [{"id": "gpt-4o-mini", "object": "model", "created": CREATED, "owned_by": "openai"}]
        })),
        _ => (StatusCode::NOT_FOUND, [("content-type", "application/json")], r#"{"error":{"message":"not found","type":"invalid_request_error","param":null,"code":null}}"#).into_response(),
    }
}

fn json_response(v: Value) -> Response {
    (
        StatusCode::OK,
        [
            ("content-type", "application/json"),
            ("x-request-id", "req_mock"),
        ],
        v.to_string(),
    )
        .into_response()
}

fn rate_limited(anthropic: bool) -> Response {
    let body = if anthropic {
        json!({"type":"error","error":{"type":"rate_limit_error","message":"Number of requests has exceeded your rate limit"}})
    } else {
        json!({"error":{"message":"Rate limit reached for gpt-4o-mini on requests per min (RPM): Limit 3, Used 3, Requested 1.","type":"requests","param":null,"code":"rate_limit_exceeded"}})
    };
    (
        StatusCode::TOO_MANY_REQUESTS,
        [
            ("content-type", "application/json"),
            ("retry-after", "7"),
            ("x-ratelimit-remaining-requests", "0"),
            ("anthropic-ratelimit-requests-remaining", "0"),
            ("x-request-id", "req_mock429"),
        ],
        body.to_string(),
    )
        .into_response()
}

fn server_error(anthropic: bool) -> Response {
    let body = if anthropic {
        json!({"type":"error","error":{"type":"api_error","message":"Internal server error"}})
    } else {
        json!({"error":{"message":"The server had an error while processing your request. Sorry about that!","type":"server_error","param":null,"code":null}})
    };
    (
        StatusCode::INTERNAL_SERVER_ERROR,
        [
            ("content-type", "application/json"),
            ("x-request-id", "req_mock500"),
        ],
        body.to_string(),
    )
        .into_response()
}

/// The structured answer: valid for the test schema unless the scenario says otherwise.
fn structured(scenario: &str) -> Value {
    if scenario == "invalid_output" {
        json!({"city": "Paris", "temp_c": "warm"})
    } else {
        json!({"city": "Paris", "temp_c": 21})
    }
}

const WORDS: [&str; 3] = ["Hello", " there", "!"];

fn chat(st: &Arc<MockState>, req: &Value, scenario: &str) -> Response {
    let model = req["model"].as_str().unwrap_or("gpt-4o-mini").to_owned();
    let stream = req["stream"].as_bool().unwrap_or(false);
    let include_usage = req["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let tool = req["tools"][0]["function"]["name"]
        .as_str()
        .map(str::to_owned);
    let text = if req["response_format"]["type"].as_str().is_some() {
        structured(scenario).to_string()
    } else {
        WORDS.concat()
    };
    let usage = json!({"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
        "prompt_tokens_details": {"cached_tokens": 0, "audio_tokens": 0},
        "completion_tokens_details": {"reasoning_tokens": 0, "audio_tokens": 0, "accepted_prediction_tokens": 0, "rejected_prediction_tokens": 0}});
    if !stream {
        let (message, finish) = match &tool {
            Some(name) => (
                json!({"role": "assistant", "content": null, "tool_calls": [{"id": "call_mock1", "type": "function",
                    "function": {"name": name, "arguments": "{\"city\":\"Paris\"}"}}], "refusal": null, "annotations": []}),
                "tool_calls",
            ),
            None => (
                json!({"role": "assistant", "content": text, "refusal": null, "annotations": []}),
                "stop",
            ),
        };
        return json_response(json!({
            "id": "chatcmpl-mock1", "object": "chat.completion", "created": CREATED, "model": model_snapshot(&model),
            "choices": [{"index": 0, "message": message, "logprobs": null, "finish_reason": finish}],
            "usage": usage, "service_tier": "default", "system_fingerprint": "fp_mock"
        }));
    }
    let base = |choices: Value| {
        let mut c = json!({"id": "chatcmpl-mock1", "object": "chat.completion.chunk", "created": CREATED,
            "model": model_snapshot(&model), "service_tier": "default", "system_fingerprint": "fp_mock", "choices": choices});
        if include_usage {
            c["usage"] = Value::Null;
        }
        format!("data: {c}\n\n")
    };
    let mut events = vec![base(
        json!([{"index": 0, "delta": {"role": "assistant", "content": "", "refusal": null}, "logprobs": null, "finish_reason": null}]),
    )];
    let finish = match &tool {
        Some(name) => {
            events.push(base(json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "id": "call_mock1", "type": "function", "function": {"name": name, "arguments": ""}}]}, "logprobs": null, "finish_reason": null}])));
            for frag in ["{\"ci", "ty\":\"Par", "is\"}"] {
                events.push(base(json!([{"index": 0, "delta": {"tool_calls": [{"index": 0, "function": {"arguments": frag}}]}, "logprobs": null, "finish_reason": null}])));
            }
            "tool_calls"
        }
        None => {
            let pieces: Vec<String> = if scenario == "slow_stream" {
                (0..200).map(|i| format!("word{i} ")).collect()
            } else if text.starts_with('{') {
                vec![text[..5].to_owned(), text[5..].to_owned()]
            } else {
                WORDS.iter().map(|w| (*w).to_owned()).collect()
            };
            for p in pieces {
                events.push(base(json!([{"index": 0, "delta": {"content": p}, "logprobs": null, "finish_reason": null}])));
            }
            "stop"
        }
    };
    events.push(base(
        json!([{"index": 0, "delta": {}, "logprobs": null, "finish_reason": finish}]),
    ));
    if include_usage {
        let c = json!({"id": "chatcmpl-mock1", "object": "chat.completion.chunk", "created": CREATED,
            "model": model_snapshot(&model), "service_tier": "default", "system_fingerprint": "fp_mock", "choices": [], "usage": usage});
        events.push(format!("data: {c}\n\n"));
    }
    events.push("data: [DONE]\n\n".to_owned());
    sse(st, events, scenario)
}

fn completions(st: &Arc<MockState>, req: &Value, scenario: &str) -> Response {
    let model = req["model"]
        .as_str()
        .unwrap_or("gpt-3.5-turbo-instruct")
        .to_owned();
    let usage = json!({"prompt_tokens": 3, "completion_tokens": 3, "total_tokens": 6});
    if !req["stream"].as_bool().unwrap_or(false) {
        return json_response(
            json!({"id": "cmpl-mock1", "object": "text_completion", "created": CREATED, "model": model,
            "choices": [{"text": WORDS.concat(), "index": 0, "logprobs": null, "finish_reason": "stop"}], "usage": usage}),
        );
    }
    let include_usage = req["stream_options"]["include_usage"]
        .as_bool()
        .unwrap_or(false);
    let mut events: Vec<String> = WORDS
        .iter()
        .map(|w| {
            let mut c = json!({"id": "cmpl-mock1", "object": "text_completion", "created": CREATED, "model": model,
                "choices": [{"text": w, "index": 0, "logprobs": null, "finish_reason": null}]});
            if include_usage {
                c["usage"] = Value::Null;
            }
            format!("data: {c}\n\n")
        })
        .collect();
    if include_usage {
        let c = json!({"id": "cmpl-mock1", "object": "text_completion", "created": CREATED, "model": model, "choices": [], "usage": usage});
        events.push(format!("data: {c}\n\n"));
    }
    events.push("data: [DONE]\n\n".to_owned());
    sse(st, events, scenario)
}

fn responses(st: &Arc<MockState>, req: &Value, scenario: &str) -> Response {
    let model = req["model"].as_str().unwrap_or("gpt-4.1-mini").to_owned();
    let text = WORDS.concat();
    let done = json!({"id": "resp_mock1", "object": "response", "created_at": CREATED, "status": "completed",
        "model": model_snapshot(&model), "error": null, "incomplete_details": null, "instructions": req["instructions"],
        "output": [{"type": "message", "id": "msg_mock1", "status": "completed", "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}],
        "parallel_tool_calls": true, "tool_choice": "auto", "tools": [], "temperature": 1.0, "top_p": 1.0,
        "usage": {"input_tokens": 10, "input_tokens_details": {"cached_tokens": 2}, "output_tokens": 3,
            "output_tokens_details": {"reasoning_tokens": 1}, "total_tokens": 13}});
    if !req["stream"].as_bool().unwrap_or(false) {
        return json_response(done);
    }
    let mut created = done.clone();
    created["status"] = json!("in_progress");
    created["output"] = json!([]);
    created["usage"] = Value::Null;
    let ev = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
    let mut events = vec![
        ev(
            "response.created",
            json!({"type": "response.created", "sequence_number": 0, "response": created}),
        ),
        ev(
            "response.output_item.added",
            json!({"type": "response.output_item.added", "sequence_number": 1, "output_index": 0,
            "item": {"type": "message", "id": "msg_mock1", "status": "in_progress", "role": "assistant", "content": []}}),
        ),
    ];
    for (i, w) in WORDS.iter().enumerate() {
        events.push(ev(
            "response.output_text.delta",
            json!({"type": "response.output_text.delta", "sequence_number": 2 + i,
            "item_id": "msg_mock1", "output_index": 0, "content_index": 0, "delta": w}),
        ));
    }
    events.push(ev(
        "response.completed",
        json!({"type": "response.completed", "sequence_number": 9, "response": done}),
    ));
    sse(st, events, scenario)
}

fn messages(st: &Arc<MockState>, req: &Value, scenario: &str) -> Response {
    let model = req["model"]
        .as_str()
        .unwrap_or("claude-sonnet-4-5")
        .to_owned();
    let tool = req["tools"][0]["name"].as_str().map(str::to_owned);
    let forced = req["tool_choice"]["type"].as_str() == Some("tool");
    let usage_start = json!({"input_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100, "output_tokens": 1});
    let tool_input = if forced {
        structured(scenario)
    } else {
        json!({"city": "Paris"})
    };
    if !req["stream"].as_bool().unwrap_or(false) {
        let mut content = vec![];
        if !forced {
            content.push(json!({"type": "text", "text": WORDS.concat()}));
        }
        if let Some(name) = &tool {
            content.push(
                json!({"type": "tool_use", "id": "toolu_mock1", "name": name, "input": tool_input}),
            );
        }
        return json_response(
            json!({"id": "msg_mock1", "type": "message", "role": "assistant", "model": model_snapshot(&model),
            "content": content, "stop_reason": if tool.is_some() { "tool_use" } else { "end_turn" }, "stop_sequence": null,
            "usage": {"input_tokens": 20, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 100, "output_tokens": 5}}),
        );
    }
    let ev = |name: &str, v: Value| format!("event: {name}\ndata: {v}\n\n");
    let mut events = vec![
        ev(
            "message_start",
            json!({"type": "message_start", "message": {"id": "msg_mock1", "type": "message", "role": "assistant",
            "model": model_snapshot(&model), "content": [], "stop_reason": null, "stop_sequence": null, "usage": usage_start}}),
        ),
        ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}}),
        ),
        ev("ping", json!({"type": "ping"})),
    ];
    let words: Vec<String> = if scenario == "slow_stream" {
        (0..200).map(|i| format!("word{i} ")).collect()
    } else {
        WORDS.iter().map(|w| (*w).to_owned()).collect()
    };
    for w in words {
        events.push(ev("content_block_delta", json!({"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": w}})));
    }
    events.push(ev(
        "content_block_stop",
        json!({"type": "content_block_stop", "index": 0}),
    ));
    if let Some(name) = &tool {
        events.push(ev(
            "content_block_start",
            json!({"type": "content_block_start", "index": 1,
            "content_block": {"type": "tool_use", "id": "toolu_mock1", "name": name, "input": {}}}),
        ));
        let args = tool_input.to_string();
        let (a, b) = args.split_at(args.len() / 2);
        for frag in [a, b] {
            events.push(ev(
                "content_block_delta",
                json!({"type": "content_block_delta", "index": 1,
                "delta": {"type": "input_json_delta", "partial_json": frag}}),
            ));
        }
        events.push(ev(
            "content_block_stop",
            json!({"type": "content_block_stop", "index": 1}),
        ));
    }
    events.push(ev("message_delta", json!({"type": "message_delta",
        "delta": {"stop_reason": if tool.is_some() { "tool_use" } else { "end_turn" }, "stop_sequence": null},
        "usage": {"output_tokens": 5}})));
    events.push(ev("message_stop", json!({"type": "message_stop"})));
    sse(st, events, scenario)
}

fn model_snapshot(model: &str) -> String {
    match model {
        "gpt-4o-mini" => "gpt-4o-mini-2024-07-18".to_owned(),
        "claude-sonnet-4-5" => "claude-sonnet-4-5-20250929".to_owned(),
        other => other.to_owned(),
    }
}

/// Stream events with a short pause before the first content (so time to first
/// token is measurable) and long pauses in the `slow_stream` scenario.
fn sse(st: &Arc<MockState>, events: Vec<String>, scenario: &str) -> Response {
    let (tx, rx) = mpsc::channel::<Bytes>(1);
    let pause = if scenario == "slow_stream" {
        Duration::from_millis(50)
    } else {
        Duration::from_millis(1)
    };
    let st = st.clone();
    let stall = scenario == "stall_stream";
    tokio::spawn(async move {
        for (i, e) in events.into_iter().enumerate() {
            if i == 1 {
                tokio::time::sleep(Duration::from_millis(15)).await;
            } else if i == 3 && stall {
                tokio::time::sleep(Duration::from_secs(3)).await;
            } else if i > 1 {
                tokio::time::sleep(pause).await;
            }
            if tx.send(Bytes::from(e)).await.is_err() {
                st.aborted.fetch_add(1, Ordering::SeqCst);
                return;
            }
        }
        st.completed_streams.fetch_add(1, Ordering::SeqCst);
    });
    (
        StatusCode::OK,
        [
            ("content-type", "text/event-stream; charset=utf-8"),
            ("cache-control", "no-cache"),
            ("x-request-id", "req_mock"),
        ],
        Body::new(ChannelBody { rx }),
    )
        .into_response()
}

struct ChannelBody {
    rx: mpsc::Receiver<Bytes>,
}

impl http_body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, Self::Error>>> {
        self.rx.poll_recv(cx).map(|o| o.map(|b| Ok(Frame::data(b))))
    }
}
