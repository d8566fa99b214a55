//! OTLP/JSON decoding (the HTTP `application/json` encoding) for traces and logs.
//!
//! `opentelemetry-proto`'s serde support already follows the OTLP/JSON rules the
//! exporters use — lowerCamelCase names, hex trace/span ids, enums as integers, 64-bit
//! integers as strings *or* numbers, base64 bytes — and the fixture tests prove it
//! decodes every real export identically to the protobuf. This module gives the
//! collector one call per signal and an error that says where the body went wrong.

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;

/// A body that is not valid OTLP/JSON; the message names line and column.
#[derive(Debug, thiserror::Error)]
#[error("invalid OTLP/JSON at line {line}, column {column}: {message}")]
pub struct OtlpJsonError {
    pub line: usize,
    pub column: usize,
    pub message: String,
}

impl From<serde_json::Error> for OtlpJsonError {
    fn from(e: serde_json::Error) -> Self {
        OtlpJsonError {
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        }
    }
}

pub fn decode_traces(body: &[u8]) -> Result<ExportTraceServiceRequest, OtlpJsonError> {
    Ok(serde_json::from_slice(body)?)
}

pub fn decode_logs(body: &[u8]) -> Result<ExportLogsServiceRequest, OtlpJsonError> {
    Ok(serde_json::from_slice(body)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_as_numbers_or_strings_and_hex_ids() {
        let body = br#"{"resourceSpans":[{"scopeSpans":[{"spans":[{
            "traceId":"5B8EFFF798038103D269B633813FC60C","spanId":"eee19b7ec3c1b174",
            "name":"chat","kind":3,"startTimeUnixNano":1700000000000000000,
            "endTimeUnixNano":"1700000000500000000",
            "attributes":[{"key":"gen_ai.usage.input_tokens","value":{"intValue":12}},
                          {"key":"n","value":{"intValue":"7"}}]}]}]}]}"#;
        let req = decode_traces(body).unwrap();
        let span = &req.resource_spans[0].scope_spans[0].spans[0];
        assert_eq!(span.trace_id.len(), 16);
        assert_eq!(span.start_time_unix_nano, 1_700_000_000_000_000_000);
        assert_eq!(span.end_time_unix_nano, 1_700_000_000_500_000_000);
        assert_eq!(span.attributes.len(), 2);
    }

    #[test]
    fn errors_name_the_position() {
        let err =
            decode_traces(b"{\n \"resourceSpans\": [ { \"scopeSpans\": 5 } ]\n}").unwrap_err();
        assert_eq!(err.line, 2);
        assert!(err.to_string().contains("line 2"));
    }
}
