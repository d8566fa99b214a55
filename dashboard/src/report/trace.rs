//! Trace detail: the span tree as a waterfall, and one span's full detail
//! (chat-rendered messages, tool calls, evaluations, raw attributes), which
//! the page loads lazily, one span at a time.
//!
//! Invariants: the tree view reads no bodies (a 2,000-span trace stays
//! small); spans whose parent is missing are shown as roots, never dropped;
//! every string from a span is rendered escaped by the templates.

use std::collections::HashMap;

use schemas::span::{Message, SpanEvent};
use serde::Serialize;
use store::rows::decimal_from_i64;

use crate::civil;
use crate::error::DashboardError;
use crate::fmt::{self, Money, MoneySet};
use crate::query::{EvaluationOut, Queries, Scope, SpanDetail, SpanSummary};
use crate::svg::{self, Svg};

/// Indentation levels with their own CSS class; deeper spans share the last.
pub const MAX_DEPTH_CLASS: usize = 15;

#[derive(Debug, Clone, Serialize)]
pub struct SpanNode {
    pub span_id: String,
    pub parent_span_id: String,
    pub depth: usize,
    pub name: String,
    pub kind: String,
    pub service: String,
    pub status: String,
    pub status_message: String,
    pub llm_call: bool,
    pub operation: String,
    pub model: String,
    pub start: String,
    pub offset_ms: f64,
    pub duration: String,
    pub duration_ns: u64,
    pub ttft: Option<String>,
    pub tokens_text: String,
    pub cost_text: String,
    pub validation: String,
    pub tool_name: String,
    pub finish_reasons: Vec<String>,
    pub error_type: String,
    #[serde(skip)]
    pub bar: Svg,
    #[serde(skip)]
    pub depth_class: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct TraceView {
    pub trace_id: String,
    pub tenants: Vec<String>,
    pub start: String,
    pub duration: String,
    pub span_count: usize,
    pub llm_calls: usize,
    pub errors: usize,
    pub input_tokens: u64,
    pub output_tokens: u64,
    pub cost: MoneySet,
    pub unpriced_calls: usize,
    pub truncated: bool,
    pub spans: Vec<SpanNode>,
}

pub async fn load(
    q: &dyn Queries,
    scope: &Scope,
    trace_id: &str,
) -> Result<TraceView, DashboardError> {
    let spans = q
        .trace_spans(scope, trace_id.to_string())
        .await?
        .ok_or_else(|| DashboardError::NotFound(format!("trace {trace_id}")))?;
    Ok(shape(trace_id, spans))
}

/// Orders spans depth-first (children by start time) and lays out the waterfall.
pub fn shape(trace_id: &str, spans: Vec<SpanSummary>) -> TraceView {
    let truncated = spans.len() >= crate::query::clickhouse_impl::MAX_TRACE_SPANS as usize;
    let t0 = spans.iter().map(|s| s.start_ns).min().unwrap_or(0);
    let t1 = spans
        .iter()
        .map(|s| s.end_ns.max(s.start_ns))
        .max()
        .unwrap_or(t0);
    let total = (t1 - t0).max(1) as f64;
    let ids: HashMap<&str, usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| (s.span_id.as_str(), i))
        .collect();
    let mut children: HashMap<usize, Vec<usize>> = HashMap::new();
    let mut roots = Vec::new();
    for (i, s) in spans.iter().enumerate() {
        match ids.get(s.parent_span_id.as_str()) {
            Some(&p) if p != i && !s.parent_span_id.is_empty() => {
                children.entry(p).or_default().push(i)
            }
            _ => roots.push(i),
        }
    }
    let by_start = |v: &mut Vec<usize>| {
        v.sort_by(|a, b| {
            spans[*a]
                .start_ns
                .cmp(&spans[*b].start_ns)
                .then(spans[*a].span_id.cmp(&spans[*b].span_id))
        })
    };
    by_start(&mut roots);
    for v in children.values_mut() {
        by_start(v);
    }
    // Depth-first with an explicit stack (deep traces must not overflow).
    let mut order: Vec<(usize, usize)> = Vec::with_capacity(spans.len());
    let mut seen = vec![false; spans.len()];
    let mut stack: Vec<(usize, usize)> = roots.iter().rev().map(|&r| (r, 0)).collect();
    while let Some((i, d)) = stack.pop() {
        if std::mem::replace(&mut seen[i], true) {
            continue;
        }
        order.push((i, d));
        if let Some(kids) = children.get(&i) {
            for &k in kids.iter().rev() {
                stack.push((k, d + 1));
            }
        }
    }
    // Cycles (a parent loop) leave spans unseen: show them as roots.
    for (i, s) in seen.iter().enumerate() {
        if !s {
            order.push((i, 0));
        }
    }
    let mut cost = MoneySet::default();
    let (mut input, mut output, mut unpriced) = (0, 0, 0);
    let mut tenants: Vec<String> = Vec::new();
    for s in &spans {
        if s.llm_call && s.counted {
            cost.add(&s.currency, decimal_from_i64(s.cost_total));
            input += s.input_tokens.unwrap_or(0);
            output += s.output_tokens.unwrap_or(0);
            if s.price_status == "unpriced_model" {
                unpriced += 1;
            }
        }
        if !tenants.contains(&s.tenant_id) {
            tenants.push(s.tenant_id.clone());
        }
    }
    let nodes = order
        .into_iter()
        .map(|(i, depth)| {
            let s = &spans[i];
            let offset = (s.start_ns - t0) as f64 / total;
            let width = s.duration_ns as f64 / total;
            let class = if s.status_code == "error" {
                "err"
            } else if s.llm_call {
                "llm"
            } else if s.operation == "execute_tool" {
                "tool"
            } else {
                "app"
            };
            let model = if s.response_model.is_empty() {
                s.request_model.clone()
            } else {
                s.response_model.clone()
            };
            let cost_text = if !s.llm_call {
                String::new()
            } else if s.price_status == "unpriced_model" {
                "unpriced".into()
            } else if !s.counted {
                "counted elsewhere".into()
            } else {
                Money {
                    amount: decimal_from_i64(s.cost_total),
                    currency: s.currency.clone(),
                }
                .to_string()
            };
            SpanNode {
                span_id: s.span_id.clone(),
                parent_span_id: s.parent_span_id.clone(),
                depth,
                name: s.name.clone(),
                kind: s.kind.clone(),
                service: s.service_name.clone(),
                status: s.status_code.clone(),
                status_message: s.status_message.clone(),
                llm_call: s.llm_call,
                operation: s.operation.clone(),
                model,
                start: civil::format_ns(s.start_ns),
                offset_ms: (s.start_ns - t0) as f64 / 1e6,
                duration: fmt::ns(s.duration_ns),
                duration_ns: s.duration_ns,
                ttft: s.ttft_ns.map(fmt::ns),
                tokens_text: if s.llm_call {
                    format!(
                        "{} → {}",
                        fmt::opt_count(s.input_tokens),
                        fmt::opt_count(s.output_tokens)
                    )
                } else {
                    String::new()
                },
                cost_text,
                validation: s.validation.clone(),
                tool_name: s.tool_name.clone(),
                finish_reasons: s.finish_reasons.clone(),
                error_type: s.error_type.clone(),
                bar: svg::waterfall(offset, width, class),
                depth_class: format!("d{}", depth.min(MAX_DEPTH_CLASS)),
            }
        })
        .collect::<Vec<_>>();
    TraceView {
        trace_id: trace_id.to_string(),
        tenants,
        start: civil::format_ns(t0),
        duration: fmt::ns(u64::try_from(t1 - t0).unwrap_or(0)),
        span_count: spans.len(),
        llm_calls: spans.iter().filter(|s| s.llm_call).count(),
        errors: spans.iter().filter(|s| s.status_code == "error").count(),
        input_tokens: input,
        output_tokens: output,
        cost,
        unpriced_calls: unpriced,
        truncated,
        spans: nodes,
    }
}

/// A body: parsed messages, or the raw text when it is not a message list.
#[derive(Debug, Clone, Serialize)]
pub struct Body {
    pub messages: Vec<Message>,
    pub raw: String,
}

impl Body {
    fn parse(json: &str) -> Body {
        if json.trim().is_empty() {
            return Body {
                messages: Vec::new(),
                raw: String::new(),
            };
        }
        match serde_json::from_str::<Vec<Message>>(json) {
            Ok(messages) => Body {
                messages,
                raw: String::new(),
            },
            Err(_) => Body {
                messages: Vec::new(),
                raw: json.to_string(),
            },
        }
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty() && self.raw.is_empty()
    }
}

#[derive(Debug, Clone, Serialize)]
pub struct SpanView {
    pub trace_id: String,
    pub span_id: String,
    pub name: String,
    pub tenant: String,
    pub model: String,
    pub request_model: String,
    pub response_model: String,
    pub provider: String,
    pub operation: String,
    pub status: String,
    pub status_message: String,
    pub error_type: String,
    pub http_status: Option<u16>,
    pub streaming: Option<bool>,
    pub duration: String,
    pub ttft: Option<String>,
    pub finish_reasons: Vec<String>,
    pub input_tokens: Option<u64>,
    pub output_tokens: Option<u64>,
    pub cache_read_tokens: Option<u64>,
    pub cache_write_tokens: Option<u64>,
    pub reasoning_tokens: Option<u64>,
    pub cost_input: Money,
    pub cost_output: Money,
    pub cost_cache_read: Money,
    pub cost_cache_write: Money,
    pub cost_total: Money,
    pub price_status: String,
    pub price_version: String,
    pub counted: bool,
    pub input: Body,
    pub output: Body,
    pub tool_definitions: String,
    pub output_schema: String,
    pub request_params: Vec<(String, String)>,
    pub evaluations: Vec<EvaluationOut>,
    pub attributes: Vec<(String, String)>,
    pub resource_attributes: Vec<(String, String)>,
    pub events: Vec<SpanEvent>,
    pub events_raw: String,
    pub user_id: String,
    pub session_id: String,
    pub feature: String,
    pub source_convention: String,
    pub response_id: String,
    pub truncated: u32,
    pub redacted: bool,
}

pub async fn load_span(
    q: &dyn Queries,
    scope: &Scope,
    trace_id: &str,
    span_id: &str,
) -> Result<SpanView, DashboardError> {
    let d = q
        .span_detail(scope, trace_id.to_string(), span_id.to_string())
        .await?
        .ok_or_else(|| DashboardError::NotFound(format!("span {span_id} of trace {trace_id}")))?;
    Ok(span_view(trace_id, d))
}

pub fn span_view(trace_id: &str, d: SpanDetail) -> SpanView {
    let s = d.summary;
    let b = d.bodies;
    let money = |v: i64| Money {
        amount: decimal_from_i64(v),
        currency: s.currency.clone(),
    };
    let (events, events_raw) = match serde_json::from_str::<Vec<SpanEvent>>(&b.events) {
        Ok(e) => (e, String::new()),
        Err(_) => (Vec::new(), b.events.clone()),
    };
    SpanView {
        trace_id: trace_id.to_string(),
        span_id: s.span_id.clone(),
        name: s.name.clone(),
        tenant: s.tenant_id.clone(),
        model: if s.response_model.is_empty() {
            s.request_model.clone()
        } else {
            s.response_model.clone()
        },
        request_model: s.request_model.clone(),
        response_model: s.response_model.clone(),
        provider: s.provider.clone(),
        operation: s.operation.clone(),
        status: s.status_code.clone(),
        status_message: s.status_message.clone(),
        error_type: s.error_type.clone(),
        http_status: b.http_status,
        streaming: b.streaming,
        duration: fmt::ns(s.duration_ns),
        ttft: s.ttft_ns.map(fmt::ns),
        finish_reasons: s.finish_reasons.clone(),
        input_tokens: s.input_tokens,
        output_tokens: s.output_tokens,
        cache_read_tokens: s.cache_read_tokens,
        cache_write_tokens: s.cache_write_tokens,
        reasoning_tokens: s.reasoning_tokens,
        cost_input: money(b.cost_input),
        cost_output: money(b.cost_output),
        cost_cache_read: money(b.cost_cache_read),
        cost_cache_write: money(b.cost_cache_write),
        cost_total: money(s.cost_total),
        price_status: s.price_status.clone(),
        price_version: b.price_version.clone(),
        counted: s.counted,
        input: Body::parse(&b.input_messages),
        output: Body::parse(&b.output_messages),
        tool_definitions: b.tool_definitions.clone(),
        output_schema: b.output_schema.clone(),
        request_params: b.request_params.clone(),
        evaluations: d.evaluations,
        attributes: b.attributes.clone(),
        resource_attributes: b.resource_attributes.clone(),
        events,
        events_raw,
        user_id: b.user_id.clone(),
        session_id: b.session_id.clone(),
        feature: b.feature.clone(),
        source_convention: b.source_convention.clone(),
        response_id: b.response_id.clone(),
        truncated: b.truncated,
        redacted: b.redacted,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn span(id: &str, parent: &str, start: i64, dur: u64) -> SpanSummary {
        SpanSummary {
            start_ns: start,
            end_ns: start + dur as i64,
            tenant_id: "acme".into(),
            span_id: id.into(),
            parent_span_id: parent.into(),
            name: id.into(),
            kind: "internal".into(),
            service_name: "svc".into(),
            status_code: "ok".into(),
            status_message: String::new(),
            llm_call: false,
            operation: String::new(),
            provider: String::new(),
            request_model: String::new(),
            response_model: String::new(),
            duration_ns: dur,
            ttft_ns: None,
            input_tokens: None,
            output_tokens: None,
            cache_read_tokens: None,
            cache_write_tokens: None,
            reasoning_tokens: None,
            cost_total: 0,
            currency: String::new(),
            price_status: String::new(),
            counted: false,
            validation: String::new(),
            tool_name: String::new(),
            finish_reasons: vec![],
            error_type: String::new(),
        }
    }

    #[test]
    fn tree_is_depth_first_and_orphans_and_cycles_survive() {
        let spans = vec![
            span("b", "a", 20, 5),
            span("a", "", 0, 100),
            span("c", "a", 10, 5),
            span("d", "c", 11, 1),
            span("orphan", "missing", 50, 1),
            span("x", "y", 60, 1),
            span("y", "x", 61, 1),
        ];
        let v = shape("t", spans);
        let order: Vec<(&str, usize)> = v
            .spans
            .iter()
            .map(|s| (s.span_id.as_str(), s.depth))
            .collect();
        assert_eq!(v.span_count, 7);
        assert_eq!(v.spans.len(), 7, "every span shown once");
        let a = order.iter().position(|s| s.0 == "a").unwrap();
        assert_eq!(order[a + 1], ("c", 1), "children by start time");
        assert_eq!(order[a + 2], ("d", 2));
        assert_eq!(order[a + 3], ("b", 1));
        assert!(order.contains(&("orphan", 0)));
        assert!(order.iter().any(|s| s.0 == "x") && order.iter().any(|s| s.0 == "y"));
    }

    #[test]
    fn bodies_that_are_not_messages_are_kept_raw() {
        let b = Body::parse("not json <b>");
        assert_eq!(b.raw, "not json <b>");
        let m = Body::parse(r#"[{"role":"user","content":"hi"}]"#);
        assert_eq!(m.messages.len(), 1);
        assert!(Body::parse("").is_empty());
    }
}
