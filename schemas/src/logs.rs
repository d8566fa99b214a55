//! OTLP log records → content patches joined to spans by (trace id, span id).
//!
//! Some instrumentations put message content only in log records
//! (opentelemetry-instrumentation-openai-v2 in its default mode) or in both
//! (latest-experimental mode). Logs may arrive in a different request than their
//! spans, so they are first reduced to [`ContentPatch`]es that the collector can
//! hold and apply when the span shows up, or at once with [`apply_log_records`].
//!
//! Invariants: a patch only fills what the span lacks (the span's own attributes
//! win); evaluations are added, never replaced; records without a span id are
//! skipped (there is nothing to join them to).

use std::collections::HashMap;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use serde_json::Value;

use crate::attrs::{Attrs, to_json};
use crate::convention::{Side, set_json, set_messages};
use crate::events::read_event;
use crate::keys::otel;
use crate::span::{CanonicalSpan, Evaluation, Message};

/// Everything the log records of one span contribute to it.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct ContentPatch {
    /// Lowercase hex, as in [`CanonicalSpan::trace_id`].
    pub trace_id: String,
    pub span_id: String,
    pub input: Vec<Message>,
    pub output: Vec<Message>,
    /// Tool definitions as JSON, when a record carried them.
    pub tool_definitions: Option<Value>,
    pub evaluations: Vec<Evaluation>,
}

impl ContentPatch {
    /// The key this patch joins on.
    pub fn key(&self) -> (&str, &str) {
        (&self.trace_id, &self.span_id)
    }

    pub fn is_empty(&self) -> bool {
        self.input.is_empty()
            && self.output.is_empty()
            && self.tool_definitions.is_none()
            && self.evaluations.is_empty()
    }

    /// Fill the span's missing content from this patch. Returns whether anything changed.
    pub fn apply(&self, span: &mut CanonicalSpan) -> bool {
        let before = (
            span.input_messages.len(),
            span.output_messages.len(),
            span.tool_definitions.len(),
            span.evaluations.len(),
            span.finish_reasons.len(),
        );
        set_messages(span, Side::Input, self.input.clone());
        set_messages(span, Side::Output, self.output.clone());
        set_json(&mut span.tool_definitions, self.tool_definitions.clone());
        if span.finish_reasons.is_empty() {
            span.finish_reasons = crate::normalize::finish_reasons_of(&span.output_messages);
        }
        for ev in &self.evaluations {
            if !span.evaluations.contains(ev) {
                span.evaluations.push(ev.clone());
            }
        }
        before
            != (
                span.input_messages.len(),
                span.output_messages.len(),
                span.tool_definitions.len(),
                span.evaluations.len(),
                span.finish_reasons.len(),
            )
    }
}

/// Reduce a log export to one patch per span, in first-seen order. Records keep
/// their order within a span (SDKs emit a call's messages in conversation order).
pub fn content_from_logs(logs: &ExportLogsServiceRequest) -> Vec<ContentPatch> {
    let mut patches: Vec<ContentPatch> = Vec::new();
    let mut index: HashMap<(String, String), usize> = HashMap::new();
    for rl in &logs.resource_logs {
        for sl in &rl.scope_logs {
            for rec in &sl.log_records {
                if rec.span_id.is_empty() {
                    continue;
                }
                let a = Attrs::new(&rec.attributes);
                let name = if rec.event_name.is_empty() {
                    a.str_of(&[otel::EVENT_NAME_ATTRIBUTE]).unwrap_or_default()
                } else {
                    rec.event_name.clone()
                };
                let body = rec.body.as_ref().map(to_json);
                let content = read_event(&name, body.as_ref(), &a);
                if content == Default::default() {
                    continue;
                }
                let key = (
                    crate::normalize::hex_id(&rec.trace_id),
                    crate::normalize::hex_id(&rec.span_id),
                );
                let i = *index.entry(key.clone()).or_insert_with(|| {
                    patches.push(ContentPatch {
                        trace_id: key.0,
                        span_id: key.1,
                        ..ContentPatch::default()
                    });
                    patches.len() - 1
                });
                let p = &mut patches[i];
                p.input.extend(content.input);
                p.output.extend(content.output);
                if p.tool_definitions.is_none() {
                    p.tool_definitions = content.tool_definitions;
                }
                p.evaluations.extend(content.evaluation);
            }
        }
    }
    patches
}

/// Apply the log records of the same export to the spans they belong to.
/// Returns the patches that matched no span (for the collector to hold).
pub fn apply_log_records(
    spans: &mut [CanonicalSpan],
    logs: &ExportLogsServiceRequest,
) -> Vec<ContentPatch> {
    apply_patches(spans, content_from_logs(logs))
}

/// Apply patches to matching spans; returns those that matched none.
pub fn apply_patches(spans: &mut [CanonicalSpan], patches: Vec<ContentPatch>) -> Vec<ContentPatch> {
    let index: HashMap<(String, String), usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.trace_id.clone(), s.span_id.clone()), i))
        .collect();
    let mut unmatched = Vec::new();
    for p in patches {
        match index.get(&(p.trace_id.clone(), p.span_id.clone())) {
            Some(&i) => {
                p.apply(&mut spans[i]);
            }
            None => unmatched.push(p),
        }
    }
    unmatched
}
