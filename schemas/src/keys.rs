//! Every wire string the mapping reads: attribute keys, event names, scope names.
//!
//! Grouped by the convention that defines them, each group naming its source and
//! the version the keys were checked against. A legacy alias sits next to the key
//! that replaced it, so precedence reads top to bottom (current first). Nothing
//! outside this module spells an attribute key as a literal.

/// OpenTelemetry semantic conventions, GenAI (registry `gen_ai.*`), checked against
/// semconv 1.37 (current, "latest experimental") and 1.26–1.30 (legacy, which
/// `opentelemetry-instrumentation-openai-v2` still emits by default).
pub mod otel {
    pub const PROVIDER_NAME: &str = "gen_ai.provider.name";
    /// Legacy (≤ 1.36) name of `gen_ai.provider.name`.
    pub const SYSTEM: &str = "gen_ai.system";
    pub const OPERATION_NAME: &str = "gen_ai.operation.name";
    pub const REQUEST_MODEL: &str = "gen_ai.request.model";
    pub const RESPONSE_MODEL: &str = "gen_ai.response.model";
    pub const RESPONSE_ID: &str = "gen_ai.response.id";
    pub const RESPONSE_FINISH_REASONS: &str = "gen_ai.response.finish_reasons";
    pub const OUTPUT_TYPE: &str = "gen_ai.output.type";
    pub const CONVERSATION_ID: &str = "gen_ai.conversation.id";

    /// Request parameters: every key under this prefix except the model becomes a
    /// `request_params` entry (temperature, max_tokens, top_p, stop_sequences...).
    pub const REQUEST_PREFIX: &str = "gen_ai.request.";
    /// OpenAI-specific request attributes (semconv 1.26–1.36), e.g. `response_format`, `seed`.
    pub const OPENAI_REQUEST_PREFIX: &str = "gen_ai.openai.request.";
    pub const OPENAI_REQUEST_RESPONSE_FORMAT: &str = "gen_ai.openai.request.response_format";
    /// Current (1.37) name of the OpenAI response format request attribute.
    pub const OPENAI_REQUEST_RESPONSE_FORMAT_V137: &str = "openai.request.response_format";
    /// Streaming flag as the anthropic SDK's own tracing records it.
    pub const REQUEST_STREAM: &str = "gen_ai.request.stream";
    /// Seconds from request to the first streamed chunk (anthropic SDK span).
    pub const RESPONSE_TIME_TO_FIRST_CHUNK: &str = "gen_ai.response.time_to_first_chunk";

    pub const USAGE_INPUT_TOKENS: &str = "gen_ai.usage.input_tokens";
    /// Legacy (≤ 1.26) name of `gen_ai.usage.input_tokens`.
    pub const USAGE_PROMPT_TOKENS: &str = "gen_ai.usage.prompt_tokens";
    pub const USAGE_OUTPUT_TOKENS: &str = "gen_ai.usage.output_tokens";
    /// Legacy (≤ 1.26) name of `gen_ai.usage.output_tokens`.
    pub const USAGE_COMPLETION_TOKENS: &str = "gen_ai.usage.completion_tokens";
    pub const USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read.input_tokens";
    pub const USAGE_CACHE_CREATION_INPUT_TOKENS: &str = "gen_ai.usage.cache_creation.input_tokens";
    /// The anthropic Python SDK's own span spells cache creation this way.
    pub const USAGE_CACHE_WRITE_INPUT_TOKENS: &str = "gen_ai.usage.cache_write.input_tokens";
    pub const USAGE_REASONING_OUTPUT_TOKENS: &str = "gen_ai.usage.reasoning.output_tokens";
    pub const USAGE_TOTAL_TOKENS: &str = "gen_ai.usage.total_tokens";

    pub const INPUT_MESSAGES: &str = "gen_ai.input.messages";
    pub const OUTPUT_MESSAGES: &str = "gen_ai.output.messages";
    pub const SYSTEM_INSTRUCTIONS: &str = "gen_ai.system_instructions";
    pub const TOOL_DEFINITIONS: &str = "gen_ai.tool.definitions";

    pub const TOOL_NAME: &str = "gen_ai.tool.name";
    pub const TOOL_CALL_ID: &str = "gen_ai.tool.call.id";
    pub const TOOL_CALL_ARGUMENTS: &str = "gen_ai.tool.call.arguments";
    pub const TOOL_CALL_RESULT: &str = "gen_ai.tool.call.result";

    pub const EVALUATION_NAME: &str = "gen_ai.evaluation.name";
    pub const EVALUATION_SCORE_LABEL: &str = "gen_ai.evaluation.score.label";
    pub const EVALUATION_SCORE_VALUE: &str = "gen_ai.evaluation.score.value";
    pub const EVALUATION_EXPLANATION: &str = "gen_ai.evaluation.explanation";

    /// Span event / log record names.
    pub const EVENT_EVALUATION_RESULT: &str = "gen_ai.evaluation.result";
    pub const EVENT_OPERATION_DETAILS: &str = "gen_ai.client.inference.operation.details";
    /// Legacy (1.27–1.36) per-message events, as span events or log records.
    pub const EVENT_SYSTEM_MESSAGE: &str = "gen_ai.system.message";
    pub const EVENT_USER_MESSAGE: &str = "gen_ai.user.message";
    pub const EVENT_ASSISTANT_MESSAGE: &str = "gen_ai.assistant.message";
    pub const EVENT_TOOL_MESSAGE: &str = "gen_ai.tool.message";
    pub const EVENT_CHOICE: &str = "gen_ai.choice";
    /// Oldest (1.26) content events: one JSON string attribute each.
    pub const EVENT_CONTENT_PROMPT: &str = "gen_ai.content.prompt";
    pub const EVENT_CONTENT_COMPLETION: &str = "gen_ai.content.completion";
    pub const PROMPT: &str = "gen_ai.prompt";
    pub const COMPLETION: &str = "gen_ai.completion";
    /// Older SDKs carry a log record's event name in this attribute instead of `event_name`.
    pub const EVENT_NAME_ATTRIBUTE: &str = "event.name";
    /// Attributes of the message events (`gen_ai.user.message`, `gen_ai.choice`...)
    /// that carry the message itself.
    pub const EVENT_CONTENT_KEYS: &[&str] = &["content", "message", "tool_calls"];
}

/// General OpenTelemetry semantic conventions (not GenAI-specific), semconv 1.37.
pub mod general {
    pub const SERVICE_NAME: &str = "service.name";
    pub const ERROR_TYPE: &str = "error.type";
    pub const HTTP_RESPONSE_STATUS_CODE: &str = "http.response.status_code";
    /// Legacy (≤ 1.20) name of `http.response.status_code`.
    pub const HTTP_STATUS_CODE: &str = "http.status_code";
    pub const EVENT_EXCEPTION: &str = "exception";
    pub const EXCEPTION_TYPE: &str = "exception.type";
    pub const EXCEPTION_MESSAGE: &str = "exception.message";
    pub const USER_ID: &str = "user.id";
    /// Legacy (≤ 1.25) name of `user.id`.
    pub const ENDUSER_ID: &str = "enduser.id";
    pub const SESSION_ID: &str = "session.id";
}

/// Loupe's own keys: tenant attribution and what the shim emits.
pub mod loupe {
    /// Tenant, as a resource attribute (preferred) or span attribute.
    pub const TENANT_ID: &str = "tenant.id";
    pub const FEATURE: &str = "loupe.feature";
    /// Who produced an evaluation (`app` when absent, `shim` from the shim).
    pub const EVALUATION_SOURCE: &str = "loupe.evaluation.source";
    /// Instrumentation scope name of the shim's spans.
    pub const SHIM_SCOPE: &str = "loupe.shim";
    /// `true` when the source estimated the span's token counts itself (the shim, for
    /// a stream the client cut short): priced as `estimated_usage`, not `priced`.
    pub const USAGE_ESTIMATED: &str = "loupe.usage.estimated";
}

/// OpenInference semantic conventions (Arize), checked against
/// openinference-semantic-conventions 0.1.x (openinference-instrumentation-openai 0.1.66,
/// -anthropic 3.1.0).
pub mod openinference {
    pub const SPAN_KIND: &str = "openinference.span.kind";
    pub const LLM_PROVIDER: &str = "llm.provider";
    pub const LLM_SYSTEM: &str = "llm.system";
    /// The response model when the call returned, else the requested one.
    pub const LLM_MODEL_NAME: &str = "llm.model_name";
    pub const LLM_REQUEST_MODEL_NAME: &str = "llm.request.model_name";
    pub const LLM_RESPONSE_MODEL_NAME: &str = "llm.response.model_name";
    pub const EMBEDDING_MODEL_NAME: &str = "embedding.model_name";
    pub const LLM_INVOCATION_PARAMETERS: &str = "llm.invocation_parameters";
    pub const EMBEDDING_INVOCATION_PARAMETERS: &str = "embedding.invocation_parameters";
    pub const LLM_FINISH_REASON: &str = "llm.finish_reason";

    pub const TOKEN_COUNT_PROMPT: &str = "llm.token_count.prompt";
    pub const TOKEN_COUNT_COMPLETION: &str = "llm.token_count.completion";
    pub const TOKEN_COUNT_TOTAL: &str = "llm.token_count.total";
    pub const TOKEN_COUNT_CACHE_READ: &str = "llm.token_count.prompt_details.cache_read";
    pub const TOKEN_COUNT_CACHE_WRITE: &str = "llm.token_count.prompt_details.cache_write";
    pub const TOKEN_COUNT_REASONING: &str = "llm.token_count.completion_details.reasoning";

    pub const COST_TOTAL: &str = "llm.cost.total";
    pub const COST_PROMPT: &str = "llm.cost.prompt";
    pub const COST_COMPLETION: &str = "llm.cost.completion";

    /// Flattened message lists: `<prefix>.N.message.role`, `.content`,
    /// `.contents.M.message_content.{type,text}`, `.tool_calls.M.tool_call.{id,function.name,function.arguments}`,
    /// `.tool_call_id`, `.name`.
    pub const INPUT_MESSAGES_PREFIX: &str = "llm.input_messages";
    pub const OUTPUT_MESSAGES_PREFIX: &str = "llm.output_messages";
    /// `llm.tools.N.tool.json_schema`.
    pub const TOOLS_PREFIX: &str = "llm.tools";
    /// `embedding.embeddings.N.embedding.text`.
    pub const EMBEDDINGS_PREFIX: &str = "embedding.embeddings";

    pub const INPUT_VALUE: &str = "input.value";
    pub const INPUT_MIME_TYPE: &str = "input.mime_type";
    pub const OUTPUT_VALUE: &str = "output.value";
    pub const OUTPUT_MIME_TYPE: &str = "output.mime_type";
    pub const MIME_JSON: &str = "application/json";

    pub const TOOL_NAME: &str = "tool.name";
    pub const TOOL_CALL_ID: &str = "tool_call.id";
    pub const TOOL_CALL_FUNCTION_NAME: &str = "tool_call.function.name";

    pub const SESSION_ID: &str = "session.id";
    pub const USER_ID: &str = "user.id";
    /// JSON object of user metadata; `feature` inside it attributes the span.
    pub const METADATA: &str = "metadata";
    pub const EVENT_FIRST_TOKEN: &str = "First Token Stream Event";
}

/// OpenLLMetry (Traceloop) conventions, checked against opentelemetry-instrumentation-openai /
/// -anthropic 0.62.4 (current) and the 0.2x–0.4x releases (flattened prompts, `llm.*` keys).
pub mod openllmetry {
    pub const IS_STREAMING: &str = "gen_ai.is_streaming";
    /// Legacy (≤ 0.3x) name of `gen_ai.is_streaming`.
    pub const LLM_IS_STREAMING: &str = "llm.is_streaming";
    pub const STRUCTURED_OUTPUT_SCHEMA: &str = "gen_ai.request.structured_output_schema";
    pub const USAGE_REASONING_TOKENS: &str = "gen_ai.usage.reasoning_tokens";
    /// Legacy (≤ 0.4x) cache keys.
    pub const USAGE_CACHE_READ_INPUT_TOKENS: &str = "gen_ai.usage.cache_read_input_tokens";
    pub const USAGE_CACHE_CREATION_INPUT_TOKENS: &str = "gen_ai.usage.cache_creation_input_tokens";
    pub const LLM_USAGE_TOTAL_TOKENS: &str = "llm.usage.total_tokens";
    /// `chat` | `completion` | `embedding` | `rerank` (legacy operation name).
    pub const LLM_REQUEST_TYPE: &str = "llm.request.type";
    /// Flattened messages (≤ 0.4x): `gen_ai.prompt.N.{role,content,tool_call_id}`,
    /// `gen_ai.completion.N.{role,content,finish_reason,tool_calls.M.{id,name,arguments}}`.
    pub const PROMPT_PREFIX: &str = "gen_ai.prompt";
    pub const COMPLETION_PREFIX: &str = "gen_ai.completion";
    /// `llm.request.functions.N.{name,description,parameters}`.
    pub const REQUEST_FUNCTIONS_PREFIX: &str = "llm.request.functions";

    pub const ASSOCIATION_PREFIX: &str = "traceloop.association.properties.";
    pub const ASSOCIATION_TENANT_ID: &str = "traceloop.association.properties.tenant_id";
    pub const ASSOCIATION_USER_ID: &str = "traceloop.association.properties.user_id";
    pub const ASSOCIATION_SESSION_ID: &str = "traceloop.association.properties.session_id";
    pub const ASSOCIATION_FEATURE: &str = "traceloop.association.properties.feature";
    /// `workflow` | `task` | `agent` | `tool`.
    pub const SPAN_KIND: &str = "traceloop.span.kind";
    pub const ENTITY_NAME: &str = "traceloop.entity.name";
    pub const ENTITY_INPUT: &str = "traceloop.entity.input";
    pub const ENTITY_OUTPUT: &str = "traceloop.entity.output";
    /// Any key with this prefix marks a span as OpenLLMetry's.
    pub const TRACELOOP_PREFIX: &str = "traceloop.";
}

/// Attributes of the anthropic Python SDK's own tracing (scope `com.anthropic.sdk.python`,
/// anthropic 2.x).
pub mod anthropic {
    pub const SDK_SCOPE: &str = "com.anthropic.sdk.python";
    pub const MESSAGE_STOP_REASON: &str = "anthropic.message.stop_reason";
}

/// Which body column a content-carrying attribute ends up in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyColumn {
    Input,
    Output,
    Tools,
    Schema,
}

/// The body column that holds what `key` carries, for attributes whose value
/// is message content, tool definitions or a response schema (in any of the
/// conventions above, flattened forms included). Such values are stored once,
/// in their body column, under the body retention; the attribute map keeps
/// everything else.
pub fn body_column(key: &str) -> Option<BodyColumn> {
    use BodyColumn::{Input, Output, Schema, Tools};
    const EXACT: &[(&str, BodyColumn)] = &[
        (otel::INPUT_MESSAGES, Input),
        (otel::SYSTEM_INSTRUCTIONS, Input),
        (otel::TOOL_CALL_ARGUMENTS, Input),
        (otel::PROMPT, Input),
        (openinference::INPUT_VALUE, Input),
        (openllmetry::ENTITY_INPUT, Input),
        (otel::OUTPUT_MESSAGES, Output),
        (otel::TOOL_CALL_RESULT, Output),
        (otel::COMPLETION, Output),
        (openinference::OUTPUT_VALUE, Output),
        (openllmetry::ENTITY_OUTPUT, Output),
        (otel::TOOL_DEFINITIONS, Tools),
        (openllmetry::STRUCTURED_OUTPUT_SCHEMA, Schema),
    ];
    const FLATTENED: &[(&str, BodyColumn)] = &[
        (openllmetry::PROMPT_PREFIX, Input),
        (openinference::INPUT_MESSAGES_PREFIX, Input),
        (openinference::EMBEDDINGS_PREFIX, Input),
        (openllmetry::COMPLETION_PREFIX, Output),
        (openinference::OUTPUT_MESSAGES_PREFIX, Output),
        (openinference::TOOLS_PREFIX, Tools),
        (openllmetry::REQUEST_FUNCTIONS_PREFIX, Tools),
    ];
    if let Some((_, c)) = EXACT.iter().find(|(k, _)| *k == key) {
        return Some(*c);
    }
    FLATTENED.iter().find_map(|(prefix, c)| {
        key.strip_prefix(prefix)
            .is_some_and(|rest| rest.starts_with('.'))
            .then_some(*c)
    })
}
