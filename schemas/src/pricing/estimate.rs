//! Token estimation for model calls that reported no usage but carried content.
//!
//! Uses `tiktoken-rs`: `cl100k_base` for the older OpenAI families (gpt-4, gpt-3.5,
//! the text-embedding models) and `o200k_base` for everything else — exact for the
//! gpt-4o / 4.1 / 5 / o-series families and a documented approximation for other
//! providers' models, whose tokenizers are not public. A chat message costs a few
//! tokens of framing; [`MESSAGE_OVERHEAD`] adds OpenAI's published per-message cost.
//!
//! Invariant: returns `None` when there is no text to count (absent stays absent).

use tiktoken_rs::CoreBPE;

use crate::span::{CanonicalSpan, Message, Operation, Usage};

/// Framing tokens per chat message (role and separators) in OpenAI's chat format.
pub const MESSAGE_OVERHEAD: u64 = 3;

/// Estimated usage from the span's content, or `None` when it has none.
pub fn estimate_usage(span: &CanonicalSpan, model_family: &str) -> Option<Usage> {
    let input = parse(&span.input_messages);
    let output = parse(&span.output_messages);
    if input.is_empty() && output.is_empty() {
        return None;
    }
    let bpe = tokenizer_for(model_family);
    let framing = span.operation != Operation::Embeddings;
    let count = |msgs: &[Message]| -> Option<u64> {
        (!msgs.is_empty()).then(|| msgs.iter().map(|m| message_tokens(bpe, m, framing)).sum())
    };
    let input_tokens = count(&input);
    let output_tokens = count(&output);
    Some(Usage {
        input: input_tokens,
        output: output_tokens,
        total: Some(input_tokens.unwrap_or(0) + output_tokens.unwrap_or(0)),
        ..Usage::default()
    })
}

fn parse(json: &str) -> Vec<Message> {
    if json.is_empty() {
        return Vec::new();
    }
    serde_json::from_str(json).unwrap_or_default()
}

fn message_tokens(bpe: &CoreBPE, m: &Message, framing: bool) -> u64 {
    let mut n = count_text(bpe, &m.content) + count_text(bpe, &m.reasoning);
    for tc in &m.tool_calls {
        n += count_text(bpe, &tc.name) + count_text(bpe, &tc.arguments);
    }
    if framing { n + MESSAGE_OVERHEAD } else { n }
}

fn count_text(bpe: &CoreBPE, text: &str) -> u64 {
    if text.is_empty() {
        return 0;
    }
    bpe.encode_ordinary(text).len() as u64
}

/// `cl100k_base` for the pre-4o OpenAI families, `o200k_base` for all others.
pub fn tokenizer_for(model_family: &str) -> &'static CoreBPE {
    let m = model_family;
    let cl100k = m.starts_with("gpt-4-")
        || m == "gpt-4"
        || m.starts_with("gpt-3.5")
        || m.starts_with("gpt-35")
        || m.starts_with("text-embedding-");
    if cl100k && !m.starts_with("gpt-4o") {
        tiktoken_rs::cl100k_base_singleton()
    } else {
        tiktoken_rs::o200k_base_singleton()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_content_and_leaves_absent_sides_absent() {
        let msgs = vec![Message {
            role: "user".into(),
            content: "What is the capital of France?".into(),
            ..Message::default()
        }];
        let span = CanonicalSpan {
            operation: Operation::Chat,
            input_messages: serde_json::to_string(&msgs).unwrap(),
            ..CanonicalSpan::default()
        };
        let u = estimate_usage(&span, "gpt-4o-mini").unwrap();
        // 7 tokens of text in o200k_base plus framing.
        assert_eq!(u.input, Some(7 + MESSAGE_OVERHEAD));
        assert_eq!(u.output, None);
        assert!(estimate_usage(&CanonicalSpan::default(), "gpt-4o").is_none());
    }
}
