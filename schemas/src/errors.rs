//! Error facts of a span: error type and the HTTP status of a failed provider call.
//!
//! Only the anthropic SDK span records `http.response.status_code`; every other
//! library leaves the status in the span status message or the exception message
//! (`Error code: 429 - {...}` from the OpenAI and Anthropic Python SDKs), so the
//! text is scanned for a few well-known phrasings. Never guesses from bare numbers.

/// Phrasings after which a provider SDK writes the HTTP status (lowercase).
const STATUS_MARKERS: &[&str] = &[
    "error code: ",
    "status code: ",
    "status code ",
    "status_code=",
    "status_code: ",
    "http status ",
    "http error ",
];

/// The HTTP status named in an error message, if one of the known phrasings is there.
pub fn http_status_from_text(text: &str) -> Option<u16> {
    // Most spans have no status message: answer without allocating.
    if text.len() < "http 200".len() {
        return None;
    }
    let lower = text.to_ascii_lowercase();
    STATUS_MARKERS.iter().find_map(|marker| {
        lower.match_indices(marker).find_map(|(i, _)| {
            let rest = &lower[i + marker.len()..];
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            (digits.len() == 3)
                .then(|| digits.parse::<u16>().ok())
                .flatten()
                .filter(|c| (100..=599).contains(c))
        })
    })
}

/// `error.type` / `exception.type` as a plain name: Python's `<class 'x.Y'>` repr and
/// the quotes some instrumentations add are removed so the same error groups together.
pub fn normalize_error_type(raw: &str) -> String {
    let mut s = raw.trim();
    if let Some(inner) = s.strip_prefix("<class ").and_then(|r| r.strip_suffix('>')) {
        s = inner.trim();
    }
    s.trim_matches(|c| c == '\'' || c == '"').to_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_from_sdk_messages() {
        for (text, want) in [
            ("Error code: 429 - {'type': 'error'}", Some(429)),
            ("\"Error code: 500 - {'error': ...}\"", Some(500)),
            ("Request failed with status code 503", Some(503)),
            ("got HTTP status 404 from upstream", Some(404)),
            ("Error code: 4290", None),
            ("error code: 999", None),
            ("timeout after 429 ms", None),
            ("", None),
        ] {
            assert_eq!(http_status_from_text(text), want, "{text}");
        }
    }

    #[test]
    fn error_types() {
        assert_eq!(
            normalize_error_type("<class 'openai.RateLimitError'>"),
            "openai.RateLimitError"
        );
        assert_eq!(
            normalize_error_type("'anthropic.RateLimitError'"),
            "anthropic.RateLimitError"
        );
        assert_eq!(normalize_error_type("rate_limit_error"), "rate_limit_error");
    }
}
