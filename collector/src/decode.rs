//! OTLP/HTTP bodies to OTLP messages: content type, content encoding with a
//! decompression cap, protobuf or JSON decoding. Pure (no IO), so it is what
//! the fuzz target drives.
//!
//! Invariants: never panics and never allocates past `max_decompressed`
//! (+1 byte to detect the overflow) whatever the input; every failure is an
//! [`IngestError`] that says what was wrong.

use std::io::Read;

use bytes::Bytes;

use opentelemetry_proto::tonic::collector::logs::v1::ExportLogsServiceRequest;
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use prost::Message;

use crate::error::IngestError;

/// The two OTLP/HTTP encodings; replies use the request's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Encoding {
    Protobuf,
    Json,
}

pub const CONTENT_TYPE_PROTOBUF: &str = "application/x-protobuf";
pub const CONTENT_TYPE_JSON: &str = "application/json";

impl Encoding {
    /// From a `Content-Type` header value (parameters such as `charset` ignored).
    pub fn from_content_type(value: Option<&str>) -> Result<Self, IngestError> {
        let Some(value) = value else {
            return Err(IngestError::UnsupportedContentType(String::new()));
        };
        let essence = value.split(';').next().unwrap_or("").trim();
        if essence.eq_ignore_ascii_case(CONTENT_TYPE_PROTOBUF)
            || essence.eq_ignore_ascii_case("application/protobuf")
        {
            Ok(Encoding::Protobuf)
        } else if essence.eq_ignore_ascii_case(CONTENT_TYPE_JSON) {
            Ok(Encoding::Json)
        } else {
            Err(IngestError::UnsupportedContentType(clip(value, 100)))
        }
    }

    pub fn content_type(self) -> &'static str {
        match self {
            Encoding::Protobuf => CONTENT_TYPE_PROTOBUF,
            Encoding::Json => CONTENT_TYPE_JSON,
        }
    }
}

/// Undo `Content-Encoding` (none, `identity` or `gzip`), refusing to produce
/// more than `max_decompressed` bytes.
pub fn decompress(
    body: Bytes,
    content_encoding: Option<&str>,
    max_decompressed: usize,
) -> Result<Bytes, IngestError> {
    let enc = content_encoding.map(str::trim).unwrap_or("");
    if enc.is_empty() || enc.eq_ignore_ascii_case("identity") {
        if body.len() > max_decompressed {
            return Err(IngestError::DecompressedTooLarge {
                limit: max_decompressed,
            });
        }
        return Ok(body);
    }
    if !enc.eq_ignore_ascii_case("gzip") && !enc.eq_ignore_ascii_case("x-gzip") {
        return Err(IngestError::UnsupportedEncoding(clip(enc, 100)));
    }
    if body.is_empty() {
        return Err(IngestError::EmptyBody);
    }
    let limit = u64::try_from(max_decompressed)
        .unwrap_or(u64::MAX)
        .saturating_add(1);
    let mut out = Vec::with_capacity(body.len().saturating_mul(4).min(max_decompressed));
    flate2::read::MultiGzDecoder::new(body.as_ref())
        .take(limit)
        .read_to_end(&mut out)
        .map_err(|e| IngestError::BadGzip(e.to_string()))?;
    if out.len() > max_decompressed {
        return Err(IngestError::DecompressedTooLarge {
            limit: max_decompressed,
        });
    }
    Ok(out.into())
}

pub fn decode_traces(body: Bytes, enc: Encoding) -> Result<ExportTraceServiceRequest, IngestError> {
    if body.is_empty() {
        return Err(IngestError::EmptyBody);
    }
    match enc {
        Encoding::Protobuf => traces_protobuf(body),
        Encoding::Json => schemas::otlp_json::decode_traces(&body)
            .map_err(|e| IngestError::BadJson(e.to_string())),
    }
}

/// A protobuf trace export (an OTLP/HTTP body, or a gRPC message, which
/// may be empty). From `Bytes`, prost shares each string's bytes until it
/// copies them into the field (decoding a plain slice cost ~3 M more
/// instructions for 8,192 spans under callgrind).
pub fn traces_protobuf(message: Bytes) -> Result<ExportTraceServiceRequest, IngestError> {
    ExportTraceServiceRequest::decode(message).map_err(|e| IngestError::BadProtobuf {
        what: "trace export (ExportTraceServiceRequest)",
        detail: e.to_string(),
    })
}

pub fn decode_logs(body: Bytes, enc: Encoding) -> Result<ExportLogsServiceRequest, IngestError> {
    if body.is_empty() {
        return Err(IngestError::EmptyBody);
    }
    match enc {
        Encoding::Protobuf => logs_protobuf(body),
        Encoding::Json => {
            schemas::otlp_json::decode_logs(&body).map_err(|e| IngestError::BadJson(e.to_string()))
        }
    }
}

/// A protobuf logs export (an OTLP/HTTP body, or a gRPC message, which may
/// be empty).
pub fn logs_protobuf(message: Bytes) -> Result<ExportLogsServiceRequest, IngestError> {
    ExportLogsServiceRequest::decode(message).map_err(|e| IngestError::BadProtobuf {
        what: "logs export (ExportLogsServiceRequest)",
        detail: e.to_string(),
    })
}

/// Encode a reply message in the request's encoding.
pub fn encode_reply<M: Message + serde::Serialize>(msg: &M, enc: Encoding) -> Vec<u8> {
    match enc {
        Encoding::Protobuf => msg.encode_to_vec(),
        // Serialising our own well-formed message cannot fail; an empty object
        // is still a valid (empty) OTLP reply if it somehow did.
        Encoding::Json => serde_json::to_vec(msg).unwrap_or_else(|_| b"{}".to_vec()),
    }
}

/// A header value echoed in a message, cut to a sane length.
fn clip(s: &str, max: usize) -> String {
    match s.char_indices().nth(max) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    fn gzip(data: &[u8]) -> Bytes {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        let _ = enc.write_all(data);
        enc.finish().unwrap_or_default().into()
    }

    #[test]
    fn content_types_with_parameters_and_case() {
        assert_eq!(
            Encoding::from_content_type(Some("Application/X-Protobuf")),
            Ok(Encoding::Protobuf)
        );
        assert_eq!(
            Encoding::from_content_type(Some("application/json; charset=utf-8")),
            Ok(Encoding::Json)
        );
        assert!(matches!(
            Encoding::from_content_type(Some("text/plain")),
            Err(IngestError::UnsupportedContentType(_))
        ));
        assert!(Encoding::from_content_type(None).is_err());
    }

    #[test]
    fn gzip_bomb_is_refused_at_the_cap() {
        let bomb = gzip(&vec![0u8; 10 << 20]);
        assert!(bomb.len() < 100_000);
        assert_eq!(
            decompress(bomb.clone(), Some("gzip"), 1 << 20),
            Err(IngestError::DecompressedTooLarge { limit: 1 << 20 })
        );
        assert_eq!(
            decompress(bomb, Some("gzip"), 10 << 20).map(|b| b.len()),
            Ok(10 << 20)
        );
    }

    #[test]
    fn truncated_gzip_and_unknown_encodings_are_named() {
        let z = gzip(b"hello hello hello hello");
        let cut = z.slice(..z.len() / 2);
        assert!(matches!(
            decompress(cut, Some("gzip"), 1000),
            Err(IngestError::BadGzip(_))
        ));
        assert!(matches!(
            decompress(z, Some("br"), 1000),
            Err(IngestError::UnsupportedEncoding(_))
        ));
    }

    #[test]
    fn empty_garbage_and_bad_utf8_bodies_are_bad_requests() {
        assert_eq!(
            decode_traces(Bytes::new(), Encoding::Protobuf),
            Err(IngestError::EmptyBody)
        );
        assert!(matches!(
            decode_traces(Bytes::from_static(b"\xff\xff\xff"), Encoding::Protobuf),
            Err(IngestError::BadProtobuf { .. })
        ));
        assert!(matches!(
            decode_traces(Bytes::from_static(b"{\"resourceSpans\":["), Encoding::Json),
            Err(IngestError::BadJson(_))
        ));
        // field 1 (resource_spans) → field 2 (scope_spans) → field 2 (spans) → name (5) with invalid UTF-8
        let name = [0x2a, 0x02, 0xc3, 0x28];
        let span = [&[0x12, name.len() as u8][..], &name].concat();
        let scope = [&[0x12, span.len() as u8][..], &span].concat();
        let rs = [&[0x0a, scope.len() as u8][..], &scope].concat();
        let err = decode_traces(Bytes::from(rs), Encoding::Protobuf);
        assert!(
            matches!(&err, Err(IngestError::BadProtobuf { detail, .. }) if detail.contains("UTF-8")),
            "{err:?}"
        );
    }
}
