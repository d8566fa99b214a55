//! The canonical span: one row per OTLP span, whatever convention it spoke.
//!
//! Invariants:
//! - `None` means "not reported by the source"; `Some(0)` means reported as zero.
//!   Sums that claim completeness must never treat `None` as 0.
//! - Ids are lowercase hex (trace 32 chars, span 16 chars); empty when absent.
//! - Times are Unix nanoseconds as sent by the exporter.
//! - Money is `rust_decimal::Decimal`, never a float.
//! - Bodies (`input_messages`, `output_messages`, `tool_definitions`) are JSON
//!   arrays of [`Message`] / tool definitions serialised to strings, so the store
//!   can put them in compressed columns without knowing their shape.

use std::sync::Arc;

use rust_decimal::Decimal;
use serde::{Deserialize, Serialize};

/// What kind of work a span did, from `gen_ai.operation.name` or its equivalents.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Operation {
    /// Not a GenAI span (an app span, an HTTP span, ...).
    #[default]
    None,
    Chat,
    TextCompletion,
    Embeddings,
    GenerateContent,
    ExecuteTool,
    InvokeAgent,
    CreateAgent,
    Other,
}

impl Operation {
    /// The wire name used in storage and the OTel GenAI conventions.
    pub fn as_str(self) -> &'static str {
        match self {
            Operation::None => "",
            Operation::Chat => "chat",
            Operation::TextCompletion => "text_completion",
            Operation::Embeddings => "embeddings",
            Operation::GenerateContent => "generate_content",
            Operation::ExecuteTool => "execute_tool",
            Operation::InvokeAgent => "invoke_agent",
            Operation::CreateAgent => "create_agent",
            Operation::Other => "other",
        }
    }

    /// True for operations that call a model and may carry tokens and cost.
    pub fn is_model_call(self) -> bool {
        matches!(
            self,
            Operation::Chat
                | Operation::TextCompletion
                | Operation::Embeddings
                | Operation::GenerateContent
        )
    }
}

/// The span's OTel status.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum StatusCode {
    #[default]
    Unset,
    Ok,
    Error,
}

impl StatusCode {
    pub fn as_str(self) -> &'static str {
        match self {
            StatusCode::Unset => "unset",
            StatusCode::Ok => "ok",
            StatusCode::Error => "error",
        }
    }
}

/// Whether the tokens and cost of this span count in totals (one call, one cost).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum PriceStatus {
    /// Priced from reported usage with a known price.
    Priced,
    /// The model has no price in the table: cost is 0 *and flagged*.
    UnpricedModel,
    /// A model call that reported no usage and could not be estimated.
    MissingUsage,
    /// Usage estimated with a tokenizer because the source reported none.
    EstimatedUsage,
    /// Not a model call: nothing to price.
    #[default]
    NotApplicable,
}

impl PriceStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            PriceStatus::Priced => "priced",
            PriceStatus::UnpricedModel => "unpriced_model",
            PriceStatus::MissingUsage => "missing_usage",
            PriceStatus::EstimatedUsage => "estimated_usage",
            PriceStatus::NotApplicable => "",
        }
    }
}

/// Token counts per type. Each `None` is "not reported".
///
/// `input` follows the OTel meaning: it *includes* cache reads and cache
/// writes (the pricing code subtracts them to price uncached input).
/// `output` includes reasoning tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Usage {
    pub input: Option<u64>,
    pub output: Option<u64>,
    pub cache_read: Option<u64>,
    pub cache_write: Option<u64>,
    pub reasoning: Option<u64>,
    pub total: Option<u64>,
}

/// Cost of one call in the price table's currency, per token type.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Cost {
    pub input: Decimal,
    pub output: Decimal,
    pub cache_read: Decimal,
    pub cache_write: Decimal,
    pub total: Decimal,
    pub currency: String,
}

/// One chat message in canonical form (what the dashboard renders as a chat).
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct Message {
    /// system | user | assistant | tool | developer | ...
    pub role: String,
    /// Text content (parts joined); empty when the message only has tool calls.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub content: String,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tool_calls: Vec<ToolCall>,
    /// For role=tool: the id of the call this message answers.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub tool_call_id: String,
    /// For output messages: this choice's finish reason.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub finish_reason: String,
    /// Reasoning / thinking text the model exposed, kept apart from `content` so that
    /// `content` stays the answer (what output validation reads).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub reasoning: String,
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
pub struct ToolCall {
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    pub name: String,
    /// Arguments as the model produced them (usually a JSON string).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub arguments: String,
}

/// A `gen_ai.evaluation.result`, from the app, the collector or the shim.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Evaluation {
    /// `gen_ai.evaluation.name`, e.g. `json_schema`.
    pub name: String,
    /// `gen_ai.evaluation.score.label`, e.g. `pass` / `fail`.
    pub label: String,
    pub score: Option<f64>,
    pub explanation: String,
    /// Who produced it: `app`, `collector` or `shim`.
    pub source: String,
}

/// One span event kept for the trace view (exceptions, and anything else).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SpanEvent {
    pub time_unix_nano: u64,
    pub name: String,
    pub attributes: Vec<(String, String)>,
}

/// The canonical row. `store` turns it into the `loupe.spans` row one to one.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct CanonicalSpan {
    // identity and timing
    pub tenant_id: String,
    pub trace_id: String,
    pub span_id: String,
    pub parent_span_id: String,
    pub start_time_unix_nano: u64,
    pub end_time_unix_nano: u64,
    pub name: String,
    /// OTel span kind: internal | server | client | producer | consumer | unspecified
    pub kind: String,
    pub service_name: String,
    pub scope_name: String,
    pub scope_version: String,
    pub status: StatusCode,
    pub status_message: String,

    // GenAI
    pub operation: Operation,
    /// Normalised provider name (`openai`, `anthropic`, `gcp.gemini`, ...); empty when unknown.
    pub provider: String,
    pub request_model: String,
    pub response_model: String,
    pub response_id: String,
    pub finish_reasons: Vec<String>,
    /// `error.type`, or the exception type; empty when none.
    pub error_type: String,
    /// HTTP status of a failed provider call when known (attribute or parsed from the message).
    pub http_status: Option<u16>,
    /// `Some(true)` only when the span says it streamed; `None` when it doesn't say.
    pub streaming: Option<bool>,
    pub time_to_first_token_ns: Option<u64>,
    pub usage: Usage,
    /// Request parameters (temperature, max_tokens, top_p, ...), as strings.
    pub request_params: Vec<(String, String)>,
    pub tool_name: String,
    pub tool_call_id: String,

    // content (JSON strings, see module doc)
    pub input_messages: String,
    pub output_messages: String,
    /// The text the list-view previews are made from (`crate::preview::source`),
    /// taken while the messages were parsed; empty when a body came without one.
    #[serde(default)]
    pub input_preview: String,
    #[serde(default)]
    pub output_preview: String,
    pub tool_definitions: String,
    /// The request's JSON schema for structured output, when the span carries it.
    pub output_schema: String,
    /// `gen_ai.output.type` or equivalent (`json`, `text`, ...).
    pub output_type: String,

    // attribution
    pub user_id: String,
    pub session_id: String,
    pub feature: String,

    // provenance
    /// `otel_genai`, `otel_genai_legacy`, `openinference`, `openllmetry`, `loupe_shim`, or `none`.
    pub source_convention: String,
    pub attributes: Vec<(String, String)>,
    /// Rendered once per resource by `normalize_traces` and shared by its spans.
    pub resource_attributes: Arc<[(String, String)]>,
    pub events: Vec<SpanEvent>,
    pub evaluations: Vec<Evaluation>,

    // set by the pipeline after normalisation
    pub cost: Cost,
    pub price_status: PriceStatus,
    pub price_version: String,
    /// False when another span already counts this call's tokens and cost.
    pub counted: bool,
    /// Values truncated by the collector's limits (count of attributes cut).
    pub truncated: u32,
    /// True when redaction changed a body or attribute.
    pub redacted: bool,
}
