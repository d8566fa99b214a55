//! Output validation: when a request declared a JSON output, check the completion
//! (against the declared schema, else for parseability) with the schemas crate's
//! validator and return a `gen_ai.evaluation.result` for the span.
//!
//! Invariants: never touches what the client receives (runs in the export worker,
//! after the response); no completion → no evaluation (absence is not a pass); the
//! evaluation is named `json_schema`, like the collector's, so the collector never
//! adds a second one for the same call.

use schemas::messages::completion_text;
use schemas::validate::check_completion;
use schemas::{CanonicalSpan, Evaluation, Message};

use crate::request::{OutputDecl, OutputTarget};

/// Who produced the evaluation (`loupe.evaluation.source`).
pub const SOURCE_SHIM: &str = "shim";

pub fn evaluate(decl: &OutputDecl, output: &[Message]) -> Option<Evaluation> {
    let completion = match &decl.target {
        OutputTarget::Text => completion_text(output)?,
        OutputTarget::ToolArguments(name) => output
            .iter()
            .flat_map(|m| &m.tool_calls)
            .find(|c| c.name == *name)
            .map(|c| c.arguments.as_str())?,
    };
    let declared = CanonicalSpan {
        output_type: "json".to_owned(),
        output_schema: decl
            .schema
            .as_ref()
            .map(|s| s.to_string())
            .unwrap_or_default(),
        ..CanonicalSpan::default()
    };
    let mut ev = check_completion(&declared, completion);
    ev.source = SOURCE_SHIM.to_owned();
    Some(ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use schemas::ToolCall;
    use serde_json::json;

    fn answer(text: &str) -> Vec<Message> {
        vec![Message {
            role: "assistant".into(),
            content: text.into(),
            ..Message::default()
        }]
    }

    #[test]
    fn schema_pass_fail_and_parse_only() {
        let decl = OutputDecl {
            name: Some("weather".into()),
            schema: Some(
                json!({"type":"object","properties":{"t":{"type":"number"}},"required":["t"]}),
            ),
            target: OutputTarget::Text,
        };
        assert_eq!(
            evaluate(&decl, &answer(r#"{"t":1}"#)).unwrap().label,
            "pass"
        );
        let fail = evaluate(&decl, &answer(r#"{"t":"hot"}"#)).unwrap();
        assert_eq!(fail.label, "fail");
        assert!(fail.explanation.starts_with("/t"), "{}", fail.explanation);
        assert_eq!(fail.name, "json_schema");
        assert_eq!(fail.source, "shim");
        let parse_only = OutputDecl {
            schema: None,
            ..decl.clone()
        };
        assert_eq!(
            evaluate(&parse_only, &answer("{oops")).unwrap().label,
            "fail"
        );
        assert!(evaluate(&decl, &[]).is_none());
    }

    #[test]
    fn tool_arguments_are_the_completion_for_forced_tools() {
        let decl = OutputDecl {
            name: Some("record".into()),
            schema: Some(json!({"type":"object","required":["a"]})),
            target: OutputTarget::ToolArguments("record".into()),
        };
        let out = vec![Message {
            role: "assistant".into(),
            tool_calls: vec![ToolCall {
                id: "t".into(),
                name: "record".into(),
                arguments: "{\"b\":1}".into(),
            }],
            ..Message::default()
        }];
        assert_eq!(evaluate(&decl, &out).unwrap().label, "fail");
    }
}
