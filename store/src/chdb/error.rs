//! Errors of the embedded engine, in ClickHouse's own terms: an exception code,
//! its name, and the text. The endpoint turns them into the HTTP status and
//! `X-ClickHouse-Exception-Code` a ClickHouse server would send.

use std::fmt;

/// A ClickHouse exception as chDB reports it (`Code: N. DB::Exception: … (NAME)`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineError {
    pub code: u32,
    pub message: String,
}

/// Codes Loupe itself raises, taken from ClickHouse's `ErrorCodes.cpp`.
pub mod codes {
    pub const UNKNOWN_TABLE: u32 = 60;
    pub const SYNTAX_ERROR: u32 = 62;
    pub const UNKNOWN_DATABASE: u32 = 81;
    pub const BAD_ARGUMENTS: u32 = 36;
    pub const READONLY: u32 = 164;
    pub const UNKNOWN_FUNCTION: u32 = 46;
    pub const TIMEOUT_EXCEEDED: u32 = 159;
    pub const QUERY_IS_TOO_LARGE: u32 = 202;
    pub const MEMORY_LIMIT_EXCEEDED: u32 = 241;
    pub const ACCESS_DENIED: u32 = 497;
    pub const AUTHENTICATION_FAILED: u32 = 516;
    pub const NOT_IMPLEMENTED: u32 = 48;
    pub const LOGICAL_ERROR: u32 = 49;
    pub const ABORTED: u32 = 236;
}

impl EngineError {
    /// Parses chDB's error text; the code is the first `Code: N`.
    pub fn parse(text: &str) -> Self {
        let code = text
            .find("Code: ")
            .map(|i| &text[i + 6..])
            .and_then(|rest| {
                let end = rest
                    .find(|c: char| !c.is_ascii_digit())
                    .unwrap_or(rest.len());
                rest[..end].parse().ok()
            })
            .unwrap_or(codes::LOGICAL_ERROR);
        Self {
            code,
            message: text.trim().to_string(),
        }
    }

    pub fn new(code: u32, message: impl Into<String>) -> Self {
        let message = message.into();
        Self {
            code,
            message: format!("Code: {code}. DB::Exception: {message}"),
        }
    }

    pub fn internal(what: &str) -> Self {
        Self::new(codes::LOGICAL_ERROR, what)
    }

    pub fn closed() -> Self {
        Self::new(codes::ABORTED, "the embedded engine is shutting down")
    }

    /// The HTTP status a ClickHouse server answers with for this code.
    pub fn http_status(&self) -> u16 {
        use codes::*;
        match self.code {
            AUTHENTICATION_FAILED => 401,
            READONLY | ACCESS_DENIED => 403,
            UNKNOWN_TABLE | UNKNOWN_DATABASE | UNKNOWN_FUNCTION => 404,
            QUERY_IS_TOO_LARGE => 413,
            SYNTAX_ERROR | BAD_ARGUMENTS | NOT_IMPLEMENTED => 400,
            // Parse and type errors of the input (CANNOT_PARSE_*, TYPE_MISMATCH, ...).
            6 | 26 | 27 | 32 | 33 | 38 | 41 | 53 | 69 | 70 | 72 | 117 | 130 | 131 => 400,
            _ => 500,
        }
    }
}

impl fmt::Display for EngineError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for EngineError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_first_code() {
        let e = EngineError::parse(
            "Code: 60. DB::Exception: Unknown table expression identifier 'loupe.nope'. (UNKNOWN_TABLE)",
        );
        assert_eq!(e.code, 60);
        assert_eq!(e.http_status(), 404);
    }

    #[test]
    fn text_without_a_code_is_a_logical_error() {
        let e = EngineError::parse("Error: std::bad_alloc");
        assert_eq!(e.code, codes::LOGICAL_ERROR);
        assert_eq!(e.http_status(), 500);
        assert!(e.message.contains("bad_alloc"));
    }

    #[test]
    fn new_errors_read_like_clickhouse() {
        let e = EngineError::new(codes::AUTHENTICATION_FAILED, "wrong key");
        assert_eq!(e.to_string(), "Code: 516. DB::Exception: wrong key");
        assert_eq!(EngineError::parse(&e.message).code, 516);
        assert_eq!(e.http_status(), 401);
    }
}
