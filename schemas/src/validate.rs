//! Output validation without app changes: a `json_schema` evaluation for every
//! model call that declared a JSON output.
//!
//! A span declares JSON when normalisation recorded `output_type = json` (from
//! `gen_ai.output.type`, a `response_format` of `json_object` / `json_schema`,
//! `gen_ai.request.structured_output_schema`, or the request body in OpenInference's
//! invocation parameters / `input.value`). The completion is checked against
//! `output_schema` when there is one, else for parseability.
//!
//! Invariants: a span that declares nothing, or whose completion is nowhere to be
//! found, gets no evaluation (absence is not a pass); an existing `json_schema`
//! evaluation (from the app or the shim) is never duplicated; schemas are never
//! fetched (remote `$ref`s fail closed as schema errors — the crate is built without
//! its HTTP resolver).

use serde_json::Value;

use crate::dedupe::dedupe_key;
use crate::messages::completion_text;
use crate::span::{CanonicalSpan, Evaluation, Message};

/// Name of the evaluation the collector records.
pub const EVALUATION_NAME: &str = "json_schema";
pub const SOURCE_COLLECTOR: &str = "collector";

/// Does this span ask the model for JSON?
pub fn declares_json(span: &CanonicalSpan) -> bool {
    span.output_type.eq_ignore_ascii_case("json") || !span.output_schema.is_empty()
}

/// The model's answer text, from the span's canonical output messages.
pub fn completion_of(span: &CanonicalSpan) -> Option<String> {
    let msgs: Vec<Message> = serde_json::from_str(&span.output_messages).ok()?;
    completion_text(&msgs).map(str::to_owned)
}

/// Check one completion against the span's declaration.
pub fn check_completion(span: &CanonicalSpan, completion: &str) -> Evaluation {
    let verdict = match serde_json::from_str::<Value>(completion) {
        Err(e) => Err(format!("$: not valid JSON: {e}")),
        Ok(instance) => match parse_schema(&span.output_schema) {
            None => Ok(()),
            Some(Err(e)) => Err(format!("schema: {e}")),
            Some(Ok(schema)) => check_schema(&schema, &instance),
        },
    };
    let (label, score, explanation) = match verdict {
        Ok(()) => ("pass", 1.0, String::new()),
        Err(e) => ("fail", 0.0, e),
    };
    Evaluation {
        name: EVALUATION_NAME.to_owned(),
        label: label.to_owned(),
        score: Some(score),
        explanation,
        source: SOURCE_COLLECTOR.to_owned(),
    }
}

fn parse_schema(raw: &str) -> Option<Result<Value, String>> {
    if raw.trim().is_empty() {
        return None;
    }
    Some(serde_json::from_str::<Value>(raw).map_err(|e| e.to_string()))
}

fn check_schema(schema: &Value, instance: &Value) -> Result<(), String> {
    let validator = jsonschema::validator_for(schema).map_err(|e| format!("schema: {e}"))?;
    match validator.iter_errors(instance).next() {
        None => Ok(()),
        Some(err) => {
            let path = err.instance_path().to_string();
            let path = if path.is_empty() {
                "$".to_owned()
            } else {
                path
            };
            Err(format!("{path}: {err}"))
        }
    }
}

/// Validate one span on its own; `None` when it declares no JSON or has no completion.
pub fn validate_span(span: &CanonicalSpan) -> Option<Evaluation> {
    if !span.operation.is_model_call() || !declares_json(span) {
        return None;
    }
    completion_of(span).map(|c| check_completion(span, &c))
}

/// Add `json_schema` evaluations to every span of a batch that declares JSON.
///
/// A span without content of its own (the anthropic SDK's span) is checked against
/// the completion of its twin — another span of the same call (same tenant, provider
/// and response id) that does carry content.
pub fn validate_batch(spans: &mut [CanonicalSpan]) {
    let wants_check = |s: &CanonicalSpan| {
        s.operation.is_model_call()
            && declares_json(s)
            && s.status != crate::span::StatusCode::Error
            && !s.evaluations.iter().any(|e| e.name == EVALUATION_NAME)
    };
    // Most batches declare no JSON output: then no completion is parsed.
    if !spans.iter().any(wants_check) {
        return;
    }
    let mut completions: Vec<(crate::dedupe::DedupeKey, String)> = Vec::new();
    for s in spans.iter() {
        if let (Some(k), Some(c)) = (dedupe_key(s), completion_of(s)) {
            completions.push((k, c));
        }
    }
    for s in spans.iter_mut() {
        if !wants_check(s) {
            continue;
        }
        let completion = completion_of(s).or_else(|| {
            let k = dedupe_key(s)?;
            completions
                .iter()
                .find(|(ck, _)| *ck == k)
                .map(|(_, c)| c.clone())
        });
        if let Some(c) = completion {
            let ev = check_completion(s, &c);
            s.evaluations.push(ev);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::span::Operation;

    fn span(schema: &str, output: &str) -> CanonicalSpan {
        let msgs = vec![Message {
            role: "assistant".into(),
            content: output.into(),
            ..Message::default()
        }];
        CanonicalSpan {
            operation: Operation::Chat,
            output_type: "json".into(),
            output_schema: schema.into(),
            output_messages: serde_json::to_string(&msgs).unwrap(),
            ..CanonicalSpan::default()
        }
    }

    const SCHEMA: &str =
        r#"{"type":"object","properties":{"t":{"type":"number"}},"required":["t"]}"#;

    #[test]
    fn schema_pass_and_fail_with_path() {
        assert_eq!(
            validate_span(&span(SCHEMA, r#"{"t": 1.5}"#)).unwrap().label,
            "pass"
        );
        let ev = validate_span(&span(SCHEMA, r#"{"t": "warm"}"#)).unwrap();
        assert_eq!(ev.label, "fail");
        assert!(ev.explanation.starts_with("/t:"), "{}", ev.explanation);
        let missing = validate_span(&span(SCHEMA, "{}")).unwrap();
        assert!(
            missing.explanation.contains("\"t\""),
            "{}",
            missing.explanation
        );
    }

    #[test]
    fn parse_only_without_schema() {
        assert_eq!(validate_span(&span("", "[1,2]")).unwrap().label, "pass");
        let ev = validate_span(&span("", "{'a': 1")).unwrap();
        assert_eq!(ev.label, "fail");
        assert!(ev.explanation.starts_with("$: not valid JSON"));
    }

    #[test]
    fn no_declaration_no_evaluation() {
        let mut s = span("", "not json");
        s.output_type = "text".into();
        assert!(validate_span(&s).is_none());
    }

    #[test]
    fn remote_refs_are_not_fetched() {
        let schema = r#"{"$ref":"https://example.invalid/schema.json"}"#;
        let ev = validate_span(&span(schema, "{}")).unwrap();
        assert_eq!(ev.label, "fail");
    }

    #[test]
    fn twin_supplies_the_completion() {
        let mut with_content = span("", r#"{"a":1}"#);
        with_content.output_type.clear();
        with_content.provider = "anthropic".into();
        with_content.response_id = "msg_1".into();
        let mut sdk = span("", "");
        sdk.output_messages.clear();
        sdk.provider = "anthropic".into();
        sdk.response_id = "msg_1".into();
        let mut batch = vec![with_content, sdk];
        validate_batch(&mut batch);
        assert!(batch[0].evaluations.is_empty());
        assert_eq!(batch[1].evaluations[0].label, "pass");
    }
}
