//! Per-span screening of a decoded export before normalisation: spans with
//! invalid ids are dropped (and reported as OTLP partial success), long
//! attribute values are cut with a visible marker and counted per span.
//!
//! Invariants: pure and panic-free; after [`screen_traces`] every remaining
//! span has a 16-byte non-zero trace id, an 8-byte non-zero span id and an
//! empty or 8-byte parent id; no string or bytes value anywhere in a span
//! (attributes, event and link attributes, nested arrays and maps) nor in its
//! resource is longer than the limit plus the marker; `truncated` has one
//! entry per remaining span, in request order (the order `normalize_traces`
//! produces).

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::trace::v1::Span;

/// Appended to a cut value so a reader sees it was cut.
pub const TRUNCATION_MARKER: &str = "…[truncated by loupe]";

/// Nesting deeper than this inside one value is cut off entirely.
const MAX_VALUE_DEPTH: usize = 16;

/// Distinct rejection reasons quoted in the partial-success message.
const MAX_REASONS: usize = 3;

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Screened {
    /// Spans dropped for invalid ids.
    pub rejected: u64,
    /// The first few reasons, for the partial-success message.
    pub reasons: Vec<String>,
    /// Values cut, per remaining span.
    pub truncated: Vec<u32>,
}

impl Screened {
    /// The OTLP partial-success `error_message` (empty when nothing was rejected).
    pub fn message(&self) -> String {
        if self.rejected == 0 {
            return String::new();
        }
        format!(
            "rejected {} span(s) with invalid ids: {}",
            self.rejected,
            self.reasons.join("; ")
        )
    }
}

/// Why a span's ids are invalid, if they are.
pub fn id_problem(span: &Span) -> Option<String> {
    let zero = |b: &[u8]| b.iter().all(|&x| x == 0);
    if span.trace_id.len() != 16 {
        return Some(format!(
            "trace_id must be 16 bytes, got {}",
            span.trace_id.len()
        ));
    }
    if zero(&span.trace_id) {
        return Some("trace_id is all zeros".to_owned());
    }
    if span.span_id.len() != 8 {
        return Some(format!(
            "span_id must be 8 bytes, got {}",
            span.span_id.len()
        ));
    }
    if zero(&span.span_id) {
        return Some("span_id is all zeros".to_owned());
    }
    if !span.parent_span_id.is_empty() && span.parent_span_id.len() != 8 {
        return Some(format!(
            "parent_span_id must be empty or 8 bytes, got {}",
            span.parent_span_id.len()
        ));
    }
    None
}

/// Drop spans with invalid ids and cut long values; see the module invariants.
pub fn screen_traces(req: &mut ExportTraceServiceRequest, max_value_bytes: usize) -> Screened {
    let mut out = Screened::default();
    for rs in &mut req.resource_spans {
        let resource_cut = rs
            .resource
            .as_mut()
            .map_or(0, |r| truncate_kvs(&mut r.attributes, max_value_bytes));
        for ss in &mut rs.scope_spans {
            let scope_cut = ss
                .scope
                .as_mut()
                .map_or(0, |s| truncate_kvs(&mut s.attributes, max_value_bytes));
            ss.spans.retain(|span| match id_problem(span) {
                None => true,
                Some(why) => {
                    out.rejected += 1;
                    if out.reasons.len() < MAX_REASONS && !out.reasons.contains(&why) {
                        out.reasons.push(why);
                    }
                    false
                }
            });
            for span in &mut ss.spans {
                let cut = truncate_span(span, max_value_bytes)
                    .saturating_add(resource_cut)
                    .saturating_add(scope_cut);
                out.truncated.push(cut);
            }
        }
    }
    out
}

/// Cut long values in log records (bodies and attributes), which become
/// message content. Returns how many values were cut.
pub fn screen_logs(req: &mut ExportLogsServiceRequest, max_value_bytes: usize) -> u32 {
    let mut cut = 0u32;
    for rl in &mut req.resource_logs {
        for sl in &mut rl.scope_logs {
            for rec in &mut sl.log_records {
                cut = cut.saturating_add(truncate_kvs(&mut rec.attributes, max_value_bytes));
                if let Some(body) = rec.body.as_mut() {
                    cut = cut.saturating_add(truncate_value(body, max_value_bytes, 0));
                }
            }
        }
    }
    cut
}

fn truncate_span(span: &mut Span, max: usize) -> u32 {
    let mut cut = truncate_kvs(&mut span.attributes, max);
    for ev in &mut span.events {
        cut = cut.saturating_add(truncate_kvs(&mut ev.attributes, max));
    }
    for link in &mut span.links {
        cut = cut.saturating_add(truncate_kvs(&mut link.attributes, max));
    }
    if span.name.len() > max {
        cut_string(&mut span.name, max);
        cut = cut.saturating_add(1);
    }
    if let Some(st) = span.status.as_mut()
        && st.message.len() > max
    {
        cut_string(&mut st.message, max);
        cut = cut.saturating_add(1);
    }
    cut
}

fn truncate_kvs(kvs: &mut [KeyValue], max: usize) -> u32 {
    let mut cut = 0u32;
    for kv in kvs {
        if let Some(v) = kv.value.as_mut() {
            cut = cut.saturating_add(truncate_value(v, max, 0));
        }
    }
    cut
}

fn truncate_value(v: &mut AnyValue, max: usize, depth: usize) -> u32 {
    if depth >= MAX_VALUE_DEPTH {
        let had = v.value.is_some();
        v.value = None;
        return u32::from(had);
    }
    match v.value.as_mut() {
        Some(Value::StringValue(s)) if s.len() > max => {
            cut_string(s, max);
            1
        }
        Some(Value::BytesValue(b)) if b.len() > max => {
            b.truncate(max);
            1
        }
        Some(Value::ArrayValue(arr)) => arr.values.iter_mut().fold(0u32, |acc, x| {
            acc.saturating_add(truncate_value(x, max, depth + 1))
        }),
        Some(Value::KvlistValue(list)) => list.values.iter_mut().fold(0u32, |acc, kv| {
            acc.saturating_add(
                kv.value
                    .as_mut()
                    .map_or(0, |x| truncate_value(x, max, depth + 1)),
            )
        }),
        _ => 0,
    }
}

/// Keep at most `max` bytes (on a char boundary) and append the marker.
fn cut_string(s: &mut String, max: usize) {
    let mut end = max.min(s.len());
    while end > 0 && !s.is_char_boundary(end) {
        end -= 1;
    }
    s.truncate(end);
    s.push_str(TRUNCATION_MARKER);
}

#[cfg(test)]
mod tests {
    use super::*;
    use opentelemetry_proto::tonic::common::v1::ArrayValue;
    use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans};

    fn kv(key: &str, s: &str) -> KeyValue {
        KeyValue {
            key: key.into(),
            value: Some(AnyValue {
                value: Some(Value::StringValue(s.into())),
            }),
            ..Default::default()
        }
    }

    fn span(trace: &[u8], id: &[u8], attrs: Vec<KeyValue>) -> Span {
        Span {
            trace_id: trace.to_vec(),
            span_id: id.to_vec(),
            attributes: attrs,
            ..Span::default()
        }
    }

    fn req(spans: Vec<Span>) -> ExportTraceServiceRequest {
        ExportTraceServiceRequest {
            resource_spans: vec![ResourceSpans {
                scope_spans: vec![ScopeSpans {
                    spans,
                    ..Default::default()
                }],
                ..Default::default()
            }],
        }
    }

    #[test]
    fn invalid_ids_are_dropped_and_reported() {
        let mut r = req(vec![
            span(&[1; 16], &[1; 8], vec![]),
            span(&[1; 5], &[1; 8], vec![]),
            span(&[0; 16], &[1; 8], vec![]),
            span(&[1; 16], &[0; 8], vec![]),
            span(&[2; 16], &[2; 8], vec![]),
        ]);
        let s = screen_traces(&mut r, 100);
        assert_eq!(s.rejected, 3);
        assert_eq!(s.truncated, vec![0, 0]);
        assert!(s.message().contains("trace_id must be 16 bytes, got 5"));
        assert_eq!(r.resource_spans[0].scope_spans[0].spans.len(), 2);
    }

    #[test]
    fn long_values_are_cut_on_char_boundaries_with_a_marker() {
        let nested = KeyValue {
            key: "arr".into(),
            value: Some(AnyValue {
                value: Some(Value::ArrayValue(ArrayValue {
                    values: vec![AnyValue {
                        value: Some(Value::StringValue("é".repeat(10))),
                    }],
                })),
            }),
            ..Default::default()
        };
        let mut r = req(vec![span(
            &[1; 16],
            &[1; 8],
            vec![kv("a", &"x".repeat(50)), kv("b", "short"), nested],
        )]);
        let s = screen_traces(&mut r, 5);
        assert_eq!(s.truncated, vec![2]);
        let attrs = &r.resource_spans[0].scope_spans[0].spans[0].attributes;
        let Some(Value::StringValue(a)) = attrs[0].value.as_ref().and_then(|v| v.value.clone())
        else {
            panic!("string expected")
        };
        assert_eq!(a, format!("xxxxx{TRUNCATION_MARKER}"));
        let Some(Value::ArrayValue(arr)) = attrs[2].value.as_ref().and_then(|v| v.value.clone())
        else {
            panic!("array expected")
        };
        let Some(Value::StringValue(e)) = arr.values[0].value.clone() else {
            panic!("string expected")
        };
        assert_eq!(e, format!("éé{TRUNCATION_MARKER}"));
    }
}
