//! OTLP traces → canonical spans: identity, status, errors, events, attribution.
//!
//! One [`CanonicalSpan`] per OTLP span, in request order. Convention-specific keys
//! are read by `convention`; this module owns what every span has (ids, times,
//! status, exceptions, evaluations, message span events) and attribution: tenant
//! (ingest key > resource `tenant.id` > span `tenant.id` > an ancestor span's in the
//! same batch > configured default) and user / session / feature (span > ancestor >
//! resource).
//!
//! Invariants: never panics on any input; every span gets `counted = true` (dedupe
//! may clear it later); raw attributes are kept rendered as strings.

use std::sync::Arc;

use foldhash::HashMap as FastMap;

use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::KeyValue;
use opentelemetry_proto::tonic::trace::v1::{
    Span, span::SpanKind, status::StatusCode as OtlpStatus,
};
use serde_json::Value;

use crate::attrs::{Attrs, render_all, render_where, take_where};
use crate::convention::{self, Side, set_messages, set_str};
use crate::errors::{http_status_from_text, normalize_error_type};
use crate::events::{evaluation_from, read_event};
use crate::keys::{general, loupe, openinference as oi, openllmetry as ol, otel};
use crate::span::{CanonicalSpan, Message, Operation, SpanEvent, StatusCode, Usage};

/// Ancestor walks stop after this many hops (guards against parent cycles).
const MAX_ANCESTRY: usize = 256;

/// What normalisation needs from the collector's configuration and request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NormalizeContext {
    /// Tenant of the ingest API key, when keys are configured: it wins over anything
    /// the telemetry claims, because telemetry can be spoofed and the key cannot.
    pub key_tenant: Option<String>,
    /// Tenant when neither key nor telemetry names one.
    pub default_tenant: String,
}

impl Default for NormalizeContext {
    fn default() -> Self {
        NormalizeContext {
            key_tenant: None,
            default_tenant: "default".to_owned(),
        }
    }
}

/// Tenant by precedence: key > resource `tenant.id` > span `tenant.id` > default.
pub fn resolve_tenant(
    key_tenant: Option<&str>,
    resource_attrs: &[KeyValue],
    span_attrs: &[KeyValue],
    default: &str,
) -> String {
    pick_tenant(
        key_tenant,
        Attrs::new(resource_attrs)
            .str_of(&[loupe::TENANT_ID])
            .as_deref(),
        Attribution::of(&Attrs::new(span_attrs)).tenant.as_deref(),
        default,
    )
}

fn pick_tenant(
    key: Option<&str>,
    resource: Option<&str>,
    span: Option<&str>,
    default: &str,
) -> String {
    [key, resource, span]
        .into_iter()
        .flatten()
        .map(str::trim)
        .find(|t| !t.is_empty())
        .unwrap_or(default)
        .to_owned()
}

/// Attribution a span states itself (before inheritance).
#[derive(Debug, Clone, Default)]
struct Attribution {
    tenant: Option<String>,
    user: Option<String>,
    session: Option<String>,
    feature: Option<String>,
}

impl Attribution {
    fn of(a: &Attrs) -> Self {
        let metadata_feature = a
            .json_of(&[oi::METADATA])
            .and_then(|m| m.get("feature").and_then(Value::as_str).map(str::to_owned));
        Attribution {
            tenant: a.str_of(&[loupe::TENANT_ID, ol::ASSOCIATION_TENANT_ID]),
            user: a.str_of(&[
                general::USER_ID,
                general::ENDUSER_ID,
                ol::ASSOCIATION_USER_ID,
            ]),
            session: a.str_of(&[
                general::SESSION_ID,
                ol::ASSOCIATION_SESSION_ID,
                crate::keys::otel::CONVERSATION_ID,
            ]),
            feature: a
                .str_of(&[loupe::FEATURE, ol::ASSOCIATION_FEATURE])
                .or(metadata_feature),
        }
    }
}

/// Lowercase hex of an id through `hex::encode_to_slice` (a table lookup per
/// byte; `hex::encode` collects a char iterator, and ids are hexed three
/// times per span).
pub(crate) fn hex_id(bytes: &[u8]) -> String {
    let mut out = vec![0u8; bytes.len() * 2];
    // The output is exactly twice the input, so encoding cannot fail, and it
    // holds only hex digits.
    let _ = hex::encode_to_slice(bytes, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// How many spans an OTLP trace export carries.
pub fn span_count(req: &ExportTraceServiceRequest) -> usize {
    req.resource_spans
        .iter()
        .flat_map(|rs| &rs.scope_spans)
        .map(|ss| ss.spans.len())
        .sum()
}

/// Normalise every span of an OTLP trace export. The export is consumed:
/// attribute keys, string values and names move into the spans instead of
/// being copied.
pub fn normalize_traces(
    mut req: ExportTraceServiceRequest,
    ctx: &NormalizeContext,
) -> Vec<CanonicalSpan> {
    let total = span_count(&req);
    let mut spans = Vec::with_capacity(total);
    let mut own: Vec<Attribution> = Vec::with_capacity(total);
    // Each resource's attribution once, and which resource each span is of.
    let mut resources: Vec<Attribution> = Vec::with_capacity(req.resource_spans.len());
    let mut resource_of: Vec<usize> = Vec::with_capacity(total);
    for rs in &mut req.resource_spans {
        let res_kvs: &[KeyValue] = rs.resource.as_ref().map_or(&[], |r| &r.attributes);
        let res = Attrs::new(res_kvs);
        let resource = resources.len();
        resources.push(Attribution::of(&res));
        let service = res.str_of(&[general::SERVICE_NAME]).unwrap_or_default();
        let rendered_resource: Arc<[(String, String)]> = render_all(res_kvs).into();
        for ss in &mut rs.scope_spans {
            let (scope_name, scope_version) = ss
                .scope
                .as_ref()
                .map(|s| (s.name.as_str(), s.version.as_str()))
                .unwrap_or_default();
            for span in &mut ss.spans {
                let (mut out, attribution) = {
                    let a = Attrs::new(&span.attributes);
                    (normalize_span(span, &a, scope_name), Attribution::of(&a))
                };
                let attributes = take_where(&mut span.attributes, |key| !body_stored(key, &out));
                out.attributes = attributes;
                out.name = std::mem::take(&mut span.name);
                out.scope_name = scope_name.to_owned();
                out.scope_version = scope_version.to_owned();
                out.service_name = service.clone();
                out.resource_attributes = Arc::clone(&rendered_resource);
                own.push(attribution);
                resource_of.push(resource);
                spans.push(out);
            }
        }
    }
    attribute(&mut spans, &own, &resources, &resource_of, ctx);
    spans
}

/// Fill tenant / user / session / feature, inheriting from ancestors in the batch.
fn attribute(
    spans: &mut [CanonicalSpan],
    own: &[Attribution],
    resources: &[Attribution],
    resource_of: &[usize],
    ctx: &NormalizeContext,
) {
    let index: FastMap<(&str, &str), usize> = spans
        .iter()
        .enumerate()
        .map(|(i, s)| ((s.trace_id.as_str(), s.span_id.as_str()), i))
        .collect();
    let mut resolved: Vec<Attribution> = Vec::with_capacity(spans.len());
    for i in 0..spans.len() {
        let mut a = own[i].clone();
        let mut cur = i;
        for _ in 0..MAX_ANCESTRY {
            if a.tenant.is_some() && a.user.is_some() && a.session.is_some() && a.feature.is_some()
            {
                break;
            }
            let parent = &spans[cur].parent_span_id;
            let Some(&p) = (!parent.is_empty())
                .then(|| index.get(&(spans[cur].trace_id.as_str(), parent.as_str())))
                .flatten()
            else {
                break;
            };
            let anc = &own[p];
            a.tenant = a.tenant.or_else(|| anc.tenant.clone());
            a.user = a.user.or_else(|| anc.user.clone());
            a.session = a.session.or_else(|| anc.session.clone());
            a.feature = a.feature.or_else(|| anc.feature.clone());
            cur = p;
        }
        resolved.push(a);
    }
    let empty = Attribution::default();
    for ((span, a), &r) in spans.iter_mut().zip(resolved).zip(resource_of) {
        let resource = resources.get(r).unwrap_or(&empty);
        span.tenant_id = pick_tenant(
            ctx.key_tenant.as_deref(),
            resource.tenant.as_deref(),
            a.tenant.as_deref(),
            &ctx.default_tenant,
        );
        set_str(&mut span.user_id, a.user.or_else(|| resource.user.clone()));
        set_str(
            &mut span.session_id,
            a.session.or_else(|| resource.session.clone()),
        );
        set_str(
            &mut span.feature,
            a.feature.or_else(|| resource.feature.clone()),
        );
    }
}

/// One span, without resource-level context and attribution.
fn normalize_span(span: &Span, a: &Attrs, scope_name: &str) -> CanonicalSpan {
    let mut out = CanonicalSpan {
        trace_id: hex_id(&span.trace_id),
        span_id: hex_id(&span.span_id),
        parent_span_id: hex_id(&span.parent_span_id),
        start_time_unix_nano: span.start_time_unix_nano,
        end_time_unix_nano: span.end_time_unix_nano,
        kind: span_kind(span.kind).to_owned(),
        counted: true,
        ..CanonicalSpan::default()
    };
    if let Some(st) = span.status.as_ref() {
        out.status = match OtlpStatus::try_from(st.code) {
            Ok(OtlpStatus::Ok) => StatusCode::Ok,
            Ok(OtlpStatus::Error) => StatusCode::Error,
            _ => StatusCode::Unset,
        };
        out.status_message = st.message.clone();
    }
    convention::map_all(a, &mut out);
    map_events(span, &mut out);
    map_errors(a, &mut out);
    if out.finish_reasons.is_empty() {
        // No finish-reason attribute: the output messages may still say why each ended.
        out.finish_reasons = finish_reasons_of(&out.output_messages);
    }
    if let Some(ev) = evaluation_from(a) {
        out.evaluations.push(ev);
    }
    if out.operation == Operation::None
        && (!out.request_model.is_empty() || !out.response_model.is_empty())
    {
        // A span naming a model but no operation is a model call of the chat kind.
        out.operation = Operation::Chat;
    }
    fix_exclusive_input(&mut out.usage);
    out.source_convention = convention::detect(a, scope_name).to_owned();
    out
}

/// Whether the content `key` carries now sits in a body column: a prompt is
/// stored once, under the body retention, not again in the attribute map.
fn body_stored(key: &str, span: &CanonicalSpan) -> bool {
    use crate::keys::BodyColumn;
    let column = match crate::keys::body_column(key) {
        None => return false,
        Some(BodyColumn::Input) => &span.input_messages,
        Some(BodyColumn::Output) => &span.output_messages,
        Some(BodyColumn::Tools) => &span.tool_definitions,
        Some(BodyColumn::Schema) => &span.output_schema,
    };
    !column.is_empty()
}

/// The OTel meaning of input tokens includes cache reads and writes. A source whose
/// cached parts exceed its input must have reported Anthropic's raw (exclusive)
/// count; add the cached parts back so every span means the same thing.
fn fix_exclusive_input(u: &mut Usage) {
    if let Some(input) = u.input {
        let cached = u
            .cache_read
            .unwrap_or(0)
            .saturating_add(u.cache_write.unwrap_or(0));
        if cached > input {
            u.input = Some(input.saturating_add(cached));
        }
    }
}

fn map_events(span: &Span, out: &mut CanonicalSpan) {
    let mut input: Vec<Message> = Vec::new();
    let mut output: Vec<Message> = Vec::new();
    let inputs_free = out.input_messages.is_empty();
    let outputs_free = out.output_messages.is_empty();
    let tools_free = out.tool_definitions.is_empty();
    for ev in &span.events {
        let a = Attrs::new(&ev.attributes);
        if ev.name == oi::EVENT_FIRST_TOKEN && out.time_to_first_token_ns.is_none() {
            out.time_to_first_token_ns = ev.time_unix_nano.checked_sub(span.start_time_unix_nano);
        }
        let content = read_event(&ev.name, None, &a);
        // An event whose content fills the body columns (attributes, read
        // first, win) keeps only its other attributes (index, finish reason...).
        let read = (!content.input.is_empty()
            || !content.output.is_empty()
            || content.tool_definitions.is_some())
            && (content.input.is_empty() || inputs_free)
            && (content.output.is_empty() || outputs_free)
            && (content.tool_definitions.is_none() || tools_free);
        out.events.push(SpanEvent {
            time_unix_nano: ev.time_unix_nano,
            name: ev.name.clone(),
            attributes: render_where(&ev.attributes, |key| {
                !read
                    || (crate::keys::body_column(key).is_none()
                        && !otel::EVENT_CONTENT_KEYS.contains(&key))
            }),
        });
        input.extend(content.input);
        output.extend(content.output);
        if out.tool_definitions.is_empty() {
            convention::set_json(&mut out.tool_definitions, content.tool_definitions);
        }
        out.evaluations.extend(content.evaluation);
    }
    set_messages(out, Side::Input, input);
    set_messages(out, Side::Output, output);
}

fn map_errors(a: &Attrs, out: &mut CanonicalSpan) {
    let exception = out
        .events
        .iter()
        .find(|e| e.name == general::EVENT_EXCEPTION);
    let exc_attr = |key: &str| {
        exception.and_then(|e| {
            e.attributes
                .iter()
                .find(|(k, _)| k == key)
                .map(|(_, v)| v.clone())
        })
    };
    set_str(
        &mut out.error_type,
        a.str_of(&[general::ERROR_TYPE])
            .or_else(|| exc_attr(general::EXCEPTION_TYPE))
            .map(|t| normalize_error_type(&t)),
    );
    out.http_status = a
        .u64_of(&[
            general::HTTP_RESPONSE_STATUS_CODE,
            general::HTTP_STATUS_CODE,
        ])
        .and_then(|c| u16::try_from(c).ok())
        .filter(|c| (100..=599).contains(c))
        .or_else(|| http_status_from_text(&out.status_message))
        .or_else(|| exc_attr(general::EXCEPTION_MESSAGE).and_then(|m| http_status_from_text(&m)));
    if out.status == StatusCode::Error
        && out.error_type.is_empty()
        && let Some(code) = out.http_status
    {
        out.error_type = code.to_string();
    }
}

/// The finish reasons recorded in canonical output messages, in choice order.
pub fn finish_reasons_of(output_messages: &str) -> Vec<String> {
    serde_json::from_str::<Vec<Message>>(output_messages)
        .unwrap_or_default()
        .into_iter()
        .map(|m| m.finish_reason)
        .filter(|r| !r.is_empty())
        .collect()
}

fn span_kind(k: i32) -> &'static str {
    match SpanKind::try_from(k) {
        Ok(SpanKind::Internal) => "internal",
        Ok(SpanKind::Server) => "server",
        Ok(SpanKind::Client) => "client",
        Ok(SpanKind::Producer) => "producer",
        Ok(SpanKind::Consumer) => "consumer",
        _ => "unspecified",
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn ids_are_hexed_as_the_hex_crate_does() {
        let bytes: Vec<u8> = (0..=255u8).rev().chain([0x0f, 0xf0, 0, 0xff]).collect();
        for n in [0, 1, 8, 16, bytes.len()] {
            assert_eq!(super::hex_id(&bytes[..n]), hex::encode(&bytes[..n]));
        }
    }
}
