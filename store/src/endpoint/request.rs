//! Reading a ClickHouse HTTP request into one statement to run: SQL, format,
//! parameters, settings, and whether the body is insert data.
//!
//! Pure functions over the URL, headers and (bounded) text; no IO. The rules
//! are ClickHouse's: the URL's `query` comes first and the body follows it;
//! `param_*` bind `{name:Type}` placeholders; any other unknown URL key is a
//! setting. An `INSERT … FORMAT X` has its data streamed through chDB's
//! stream-insert API (its query must not contain the FORMAT clause).

use std::sync::OnceLock;

use regex::Regex;

use crate::chdb::EngineError;
use crate::chdb::error::codes;

/// URL keys that belong to the HTTP transport, not to the engine.
const TRANSPORT_KEYS: &[&str] = &[
    "query",
    "database",
    "default_format",
    "user",
    "password",
    "query_id",
    "session_id",
    "session_timeout",
    "session_check",
    "compress",
    "decompress",
    "wait_end_of_query",
    "send_progress_in_http_headers",
    "enable_http_compression",
    "http_zlib_compression_level",
    "http_native_compression_disable_checksumming_on_decompress",
    "buffer_size",
    "add_http_cors_header",
    "role",
    "quota_key",
    "client_protocol_version",
    "readonly",
];

/// What the URL says.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct UrlParts {
    pub query: Option<String>,
    pub database: Option<String>,
    pub default_format: Option<String>,
    pub password: Option<String>,
    pub params: Vec<(String, String)>,
    pub settings: Vec<(String, String)>,
    /// `readonly` was asked for (1 or 2).
    pub readonly: bool,
}

pub fn parse_url_query(raw: &str) -> UrlParts {
    let mut out = UrlParts::default();
    for (k, v) in url::form_urlencoded::parse(raw.as_bytes()) {
        let (k, v) = (k.into_owned(), v.into_owned());
        if let Some(name) = k.strip_prefix("param_") {
            out.params.push((name.to_string(), v));
            continue;
        }
        match k.as_str() {
            "query" => out.query = Some(v),
            "database" => out.database = Some(v),
            "default_format" => out.default_format = Some(v),
            "password" => out.password = Some(v),
            "readonly" => out.readonly = v != "0",
            _ if TRANSPORT_KEYS.contains(&k.as_str()) || k.starts_with("http_") => {}
            _ => out.settings.push((k, v)),
        }
    }
    out
}

/// A statement ready for the engine.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Statement {
    /// Runs as a query; output in `format`.
    Query { sql: String },
    /// `INSERT INTO t (cols) [SETTINGS …]` with data in `format`; `inline`
    /// holds data that came inside the SQL text (after the FORMAT clause),
    /// `body_is_data` says the request body is (more of) the data.
    Insert {
        sql: String,
        format: String,
        inline: Vec<u8>,
        body_is_data: bool,
    },
}

fn insert_format_re() -> &'static Regex {
    static RE: OnceLock<Regex> = OnceLock::new();
    RE.get_or_init(|| {
        // `INSERT … FORMAT Name` then optional data after one whitespace.
        Regex::new(r"(?is)^\s*(INSERT\s.*?)\s+FORMAT\s+([A-Za-z0-9_]+)\s*;?(?:\s|$)")
            .unwrap_or_else(|_| unreachable!("static regex"))
    })
}

/// Splits an `INSERT … FORMAT X [data]` into the stream-insert query, the
/// format and the inline data. Anything else is `None`.
pub fn split_insert(text: &str) -> Option<(String, String, Vec<u8>)> {
    let caps = insert_format_re().captures(text)?;
    let whole = caps.get(0)?;
    let head = caps.get(1)?.as_str().trim().to_string();
    let format = caps.get(2)?.as_str().to_string();
    let data = text.as_bytes()[whole.end()..].to_vec();
    Some((head, format, data))
}

/// Decides what to run. `url_query` is the URL's `query`, `body_text` the
/// body when it was read as text (`None` when the body is left unread because
/// the URL query is an INSERT whose data the body carries).
pub fn statement(
    url_query: Option<&str>,
    body_text: Option<&str>,
) -> Result<Statement, EngineError> {
    let text = match (url_query, body_text) {
        (Some(q), None) => {
            if let Some((sql, format, inline)) = split_insert(q) {
                return Ok(Statement::Insert {
                    sql,
                    format,
                    inline,
                    body_is_data: true,
                });
            }
            q.to_string()
        }
        (Some(q), Some(b)) if b.trim().is_empty() => q.to_string(),
        (Some(q), Some(b)) => format!("{q}\n{b}"),
        (None, Some(b)) => b.to_string(),
        (None, None) => String::new(),
    };
    if text.trim().is_empty() {
        return Err(EngineError::new(codes::SYNTAX_ERROR, "Empty query"));
    }
    if let Some((sql, format, inline)) = split_insert(&text) {
        return Ok(Statement::Insert {
            sql,
            format,
            inline,
            body_is_data: false,
        });
    }
    Ok(Statement::Query { sql: text })
}

/// Whether a URL query is an `INSERT … FORMAT X` whose data is the body.
pub fn url_query_takes_body_as_data(url_query: Option<&str>) -> bool {
    url_query.is_some_and(|q| split_insert(q).is_some_and(|(_, _, inline)| inline.is_empty()))
}

/// Whether a query's output can be streamed chunk by chunk. chDB streams only
/// SELECT-like statements, and every chunk it streams is a complete output of
/// its format: concatenating chunks is right for row formats without a
/// header, wrong for formats with one (JSON, CSVWithNames, Pretty...).
/// `RowBinaryWithNamesAndTypes` is not streamed for the same reason.
pub fn streams(sql: &str, default_format: &str) -> bool {
    static FORMAT_AT_END: OnceLock<Regex> = OnceLock::new();
    static HAS_FORMAT: OnceLock<Regex> = OnceLock::new();
    let at_end = FORMAT_AT_END.get_or_init(|| {
        Regex::new(r"(?is)\bFORMAT\s+([A-Za-z0-9_]+)\s*;?\s*$")
            .unwrap_or_else(|_| unreachable!("static regex"))
    });
    let has = HAS_FORMAT.get_or_init(|| {
        Regex::new(r"(?i)\bFORMAT\b").unwrap_or_else(|_| unreachable!("static regex"))
    });
    let head = sql.trim_start().get(..6).unwrap_or("").to_ascii_uppercase();
    if !(head.starts_with("SELECT") || head.starts_with("WITH")) {
        return false;
    }
    let format = match at_end.captures(sql) {
        Some(c) => c.get(1).map(|m| m.as_str().to_string()).unwrap_or_default(),
        // A FORMAT word elsewhere could be a clause we cannot place: play safe.
        None if has.is_match(sql) => return false,
        None => default_format.to_string(),
    };
    matches!(
        format.as_str(),
        "TabSeparated"
            | "TSV"
            | "TabSeparatedRaw"
            | "TSVRaw"
            | "CSV"
            | "JSONEachRow"
            | "JSONCompactEachRow"
            | "JSONLines"
            | "NDJSON"
            | "RowBinary"
            | "LineAsString"
    )
}

/// Renders settings as a `SETTINGS` clause for an INSERT (the stream-insert
/// API has no other way to receive them).
pub fn with_insert_settings(
    sql: &str,
    settings: &[(String, String)],
) -> Result<String, EngineError> {
    if settings.is_empty() {
        return Ok(sql.to_string());
    }
    let mut parts = Vec::with_capacity(settings.len());
    for (k, v) in settings {
        parts.push(format!("{}={}", setting_name(k)?, setting_literal(v)));
    }
    let joiner = if sql.to_ascii_uppercase().contains(" SETTINGS ") {
        ", "
    } else {
        " SETTINGS "
    };
    Ok(format!("{sql}{joiner}{}", parts.join(", ")))
}

/// `SET name = value` for a writable session.
pub fn set_statement(name: &str, value: &str) -> Result<String, EngineError> {
    Ok(format!(
        "SET {} = {}",
        setting_name(name)?,
        setting_literal(value)
    ))
}

/// `SET name = DEFAULT`, restoring a session after a request.
pub fn reset_statement(name: &str) -> Result<String, EngineError> {
    Ok(format!("SET {} = DEFAULT", setting_name(name)?))
}

fn setting_name(name: &str) -> Result<&str, EngineError> {
    let ok = !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '.');
    if ok {
        Ok(name)
    } else {
        Err(EngineError::new(
            codes::BAD_ARGUMENTS,
            format!("invalid setting name {name:?}"),
        ))
    }
}

/// Numbers go bare; everything else as a quoted string literal.
fn setting_literal(value: &str) -> String {
    let numeric = !value.is_empty()
        && value
            .chars()
            .all(|c| c.is_ascii_digit() || c == '.' || c == '-')
        && value.parse::<f64>().is_ok();
    if numeric {
        return value.to_string();
    }
    let mut out = String::with_capacity(value.len() + 2);
    out.push('\'');
    for c in value.chars() {
        match c {
            '\'' => out.push_str("\\'"),
            '\\' => out.push_str("\\\\"),
            _ => out.push(c),
        }
    }
    out.push('\'');
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_keys_are_sorted_into_their_roles() {
        let u = parse_url_query(
            "query=SELECT+1&database=loupe&default_format=JSON&param_x=a%20b&max_threads=2&wait_end_of_query=1&readonly=1&password=k",
        );
        assert_eq!(u.query.as_deref(), Some("SELECT 1"));
        assert_eq!(u.database.as_deref(), Some("loupe"));
        assert_eq!(u.default_format.as_deref(), Some("JSON"));
        assert_eq!(u.params, vec![("x".into(), "a b".into())]);
        assert_eq!(u.settings, vec![("max_threads".into(), "2".into())]);
        assert!(u.readonly);
        assert_eq!(u.password.as_deref(), Some("k"));
    }

    #[test]
    fn insert_in_the_url_takes_the_body_as_data() {
        let q = "INSERT INTO loupe.t(a,b) FORMAT RowBinaryWithNamesAndTypes";
        assert!(url_query_takes_body_as_data(Some(q)));
        let st = statement(Some(q), None).unwrap();
        assert_eq!(
            st,
            Statement::Insert {
                sql: "INSERT INTO loupe.t(a,b)".into(),
                format: "RowBinaryWithNamesAndTypes".into(),
                inline: vec![],
                body_is_data: true,
            }
        );
    }

    #[test]
    fn inline_insert_data_is_split_off_never_sent_inline() {
        let st = statement(
            None,
            Some("insert into t format JSONEachRow {\"a\":1}\n{\"a\":2}"),
        )
        .unwrap();
        let Statement::Insert {
            sql,
            format,
            inline,
            ..
        } = st
        else {
            panic!("not an insert")
        };
        assert_eq!(sql, "insert into t");
        assert_eq!(format, "JSONEachRow");
        assert_eq!(inline, b"{\"a\":1}\n{\"a\":2}");
    }

    #[test]
    fn select_with_format_is_a_query() {
        let st = statement(Some("SELECT 1 FORMAT JSON"), None).unwrap();
        assert_eq!(
            st,
            Statement::Query {
                sql: "SELECT 1 FORMAT JSON".into()
            }
        );
        let st = statement(Some("SELECT"), Some(" 2")).unwrap();
        assert_eq!(
            st,
            Statement::Query {
                sql: "SELECT\n 2".into()
            }
        );
    }

    #[test]
    fn insert_select_is_a_query() {
        let st = statement(None, Some("INSERT INTO a SELECT * FROM b")).unwrap();
        assert!(matches!(st, Statement::Query { .. }));
    }

    #[test]
    fn empty_is_a_syntax_error() {
        let e = statement(None, Some("  ")).unwrap_err();
        assert_eq!(e.code, codes::SYNTAX_ERROR);
    }

    #[test]
    fn only_headerless_selects_stream() {
        assert!(streams("SELECT 1", "TabSeparated"));
        assert!(streams("with x as (select 1) select * from x", "RowBinary"));
        assert!(!streams("SELECT 1", "RowBinaryWithNamesAndTypes"));
        assert!(!streams("SELECT 1 FORMAT JSON", "TabSeparated"));
        assert!(streams("SELECT 1 FORMAT JSONEachRow", "JSON"));
        assert!(!streams("SELECT formatX FROM t FORMAT Pretty", "TSV"));
        assert!(!streams("DESCRIBE TABLE loupe.spans", "TSV"));
        assert!(!streams("CREATE TABLE t (a UInt8) ENGINE = Memory", "TSV"));
    }

    #[test]
    fn insert_settings_are_quoted() {
        let s = with_insert_settings(
            "INSERT INTO t(a)",
            &[
                ("insert_deduplication_token".into(), "b1'x".into()),
                ("max_insert_threads".into(), "2".into()),
            ],
        )
        .unwrap();
        assert_eq!(
            s,
            "INSERT INTO t(a) SETTINGS insert_deduplication_token='b1\\'x', max_insert_threads=2"
        );
        assert!(with_insert_settings("INSERT INTO t", &[("a;DROP".into(), "1".into())]).is_err());
        assert_eq!(
            set_statement("max_threads", "2").unwrap(),
            "SET max_threads = 2"
        );
    }
}
