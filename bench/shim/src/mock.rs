//! The benchmark's upstream: a fixed OpenAI chat answer (JSON or an SSE stream of
//! 20 chunks with a usage chunk when asked), and a null OTLP/HTTP receiver on the
//! same port, so neither the provider nor the collector is what gets measured.

use axum::Router;
use axum::body::{Body, Bytes};
use axum::response::Response;
use axum::routing::post;

const JSON: &str = r#"{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"gpt-4o-mini-2024-07-18","choices":[{"index":0,"message":{"role":"assistant","content":"Hello there! How can I help you today?"},"finish_reason":"stop"}],"usage":{"prompt_tokens":12,"completion_tokens":10,"total_tokens":22}}"#;

fn stream(include_usage: bool) -> String {
    let mut s = String::new();
    let tail = if include_usage { ",\"usage\":null" } else { "" };
    for i in 0..20 {
        s.push_str(&format!(
            "data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{\"content\":\"tok{i} \"}},\"finish_reason\":null}}]{tail}}}\n\n"
        ));
    }
    s.push_str(&format!("data: {{\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[{{\"index\":0,\"delta\":{{}},\"finish_reason\":\"stop\"}}]{tail}}}\n\n"));
    if include_usage {
        s.push_str("data: {\"id\":\"chatcmpl-bench\",\"object\":\"chat.completion.chunk\",\"created\":1700000000,\"model\":\"gpt-4o-mini\",\"choices\":[],\"usage\":{\"prompt_tokens\":12,\"completion_tokens\":20,\"total_tokens\":32}}\n\n");
    }
    s.push_str("data: [DONE]\n\n");
    s
}

async fn chat(body: Bytes) -> Response {
    let text = String::from_utf8_lossy(&body);
    let streaming = text.contains("\"stream\":true");
    let mut resp = if streaming {
        let usage = text.contains("\"include_usage\":true");
        Response::new(Body::from(stream(usage)))
    } else {
        Response::new(Body::from(JSON))
    };
    let ct = if streaming {
        "text/event-stream"
    } else {
        "application/json"
    };
    resp.headers_mut().insert(
        http::header::CONTENT_TYPE,
        http::HeaderValue::from_static(ct),
    );
    resp
}

pub fn router() -> Router {
    Router::new()
        .route("/v1/chat/completions", post(chat))
        .route("/v1/traces", post(|| async { "" }))
}
