//! A minimal ClickHouse-HTTP-compatible endpoint over the embedded engine, so
//! every Loupe component (and any ClickHouse tool) talks to the embedded
//! engine exactly as it talks to a ClickHouse server.
//!
//! Invariants:
//! - Listens where it is told (loopback by default) and answers nothing
//!   without the per-data-directory credential (`X-ClickHouse-Key`, Basic
//!   auth, or `password` in the URL).
//! - `readonly=1` (or a GET) runs on connections opened with `--readonly=1`,
//!   which the engine itself keeps away from `file()`, `url()` and writes;
//!   what its local client does outside those checks (`INTO OUTFILE`,
//!   `DESCRIBE file(…)`) is refused by [`guard`] first.
//! - Errors come back as ClickHouse sends them: its status code, the
//!   `X-ClickHouse-Exception-Code` header, and the exception text as the body.
//!   An error after output began is appended as a final `Code: …` chunk,
//!   which ClickHouse clients detect.
//! - Request text is bounded; insert data streams through in chunks.

pub mod guard;
pub mod request;

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use futures_util::StreamExt;
use http::{HeaderMap, Method, Request, Response, StatusCode, header};
use http_body_util::{BodyExt, Full, StreamBody, combinators::BoxBody};
use hyper::body::{Frame, Incoming};
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::chdb::error::codes;
use crate::chdb::{Access, Engine, EngineError, Lease};
use request::{Statement, UrlParts};

/// Largest SQL text (URL query + body) accepted for a non-insert request.
pub const MAX_QUERY_TEXT: usize = 16 << 20;
/// Chunks of insert data in flight between the socket and the engine.
const INSERT_QUEUE: usize = 8;
/// Size of each append to the engine's insert stream.
const APPEND_SIZE: usize = 1 << 20;
/// Result chunks in flight between the engine and the socket.
const RESULT_QUEUE: usize = 4;

type Body = BoxBody<Bytes, Infallible>;

/// Shared state of the endpoint.
pub struct Endpoint {
    engine: Arc<Engine>,
    credential: String,
}

/// A running endpoint; dropping the handle does not stop it, `stop` does.
pub struct EndpointHandle {
    pub addr: SocketAddr,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl EndpointHandle {
    /// Stops accepting and waits for the accept loop to end.
    pub async fn stop(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }
}

impl Endpoint {
    pub fn new(engine: Arc<Engine>, credential: String) -> Arc<Self> {
        Arc::new(Self { engine, credential })
    }

    /// Serves on an already-bound listener until stopped.
    pub fn serve(self: Arc<Self>, listener: TcpListener) -> std::io::Result<EndpointHandle> {
        let addr = listener.local_addr()?;
        let (stop, mut stopped) = watch::channel(false);
        let task = tokio::spawn(async move {
            loop {
                tokio::select! {
                    _ = stopped.changed() => break,
                    accepted = listener.accept() => {
                        let Ok((stream, _)) = accepted else { continue };
                        let this = Arc::clone(&self);
                        tokio::spawn(async move {
                            let svc = service_fn(move |req| {
                                let this = Arc::clone(&this);
                                async move { Ok::<_, Infallible>(this.handle(req).await) }
                            });
                            let _ = hyper::server::conn::http1::Builder::new()
                                .serve_connection(TokioIo::new(stream), svc)
                                .await;
                        });
                    }
                }
            }
        });
        Ok(EndpointHandle { addr, stop, task })
    }

    async fn handle(&self, req: Request<Incoming>) -> Response<Body> {
        match self.route(req).await {
            Ok(resp) => resp,
            Err(e) => error_response(&e),
        }
    }

    async fn route(&self, req: Request<Incoming>) -> Result<Response<Body>, EngineError> {
        let path = req.uri().path().to_string();
        let mut url = request::parse_url_query(req.uri().query().unwrap_or(""));
        let is_get = req.method() == Method::GET;
        if path == "/ping" || (is_get && path == "/" && url.query.is_none()) {
            return Ok(text(StatusCode::OK, "Ok.\n"));
        }
        if path != "/" {
            return Err(EngineError::new(
                codes::BAD_ARGUMENTS,
                format!("no handler for {path}"),
            ));
        }
        self.authenticate(req.headers(), &url)?;
        // A GET can only read, as on a ClickHouse server.
        if is_get {
            url.readonly = true;
        }
        let access = if url.readonly {
            Access::ReadOnly
        } else {
            Access::Write
        };

        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("")
            .to_string();
        let body = req.into_body();

        let statement = if content_type.starts_with("multipart/form-data") {
            let (query, params) = read_multipart(&content_type, body).await?;
            url.params.extend(params);
            request::statement(Some(&query), None)?
        } else if request::url_query_takes_body_as_data(url.query.as_deref()) {
            let st = request::statement(url.query.as_deref(), None)?;
            return self.insert(access, &url, st, Some(body)).await;
        } else {
            let text = read_text(body).await?;
            request::statement(url.query.as_deref(), Some(&text))?
        };
        match statement {
            st @ Statement::Insert { .. } => self.insert(access, &url, st, None).await,
            Statement::Query { sql } => {
                if access == Access::ReadOnly
                    && let Some(why) = guard::readonly_refusal(&sql)
                {
                    return Err(EngineError::new(codes::READONLY, why));
                }
                self.query(access, &url, sql).await
            }
        }
    }

    fn authenticate(&self, headers: &HeaderMap, url: &UrlParts) -> Result<(), EngineError> {
        let offered = headers
            .get("x-clickhouse-key")
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
            .or_else(|| basic_password(headers))
            .or_else(|| url.password.clone());
        match offered {
            Some(key) if constant_time_eq(key.as_bytes(), self.credential.as_bytes()) => Ok(()),
            _ => Err(EngineError::new(
                codes::AUTHENTICATION_FAILED,
                "Authentication failed: the embedded endpoint needs the key of its data directory",
            )),
        }
    }

    async fn query(
        &self,
        access: Access,
        url: &UrlParts,
        sql: String,
    ) -> Result<Response<Body>, EngineError> {
        let mut lease = self.engine.lease(access).await?;
        let format = url
            .default_format
            .clone()
            .unwrap_or_else(|| "TabSeparated".to_string());
        let session = Session::for_request(access, url)?;
        let params = url.params.clone();
        let (tx, mut rx) = mpsc::channel::<Chunk>(RESULT_QUEUE);
        tokio::task::spawn_blocking(move || {
            if let Err(e) = session.enter(&mut lease) {
                let _ = tx.blocking_send(Chunk::Failed(e));
                return;
            }
            // chDB streams SELECTs only, and a failed streaming attempt
            // leaves the session unfit for deduplicated inserts: decide first.
            let outcome = if request::streams(&sql, &format) {
                lease.stream_query(&sql, &format, &params, |bytes| {
                    tx.blocking_send(Chunk::Data(bytes)).is_ok()
                })
            } else {
                lease.query(&sql, &format, &params).map(|bytes| {
                    if !bytes.is_empty() {
                        let _ = tx.blocking_send(Chunk::Data(bytes));
                    }
                    None
                })
            };
            session.leave(&mut lease);
            match outcome {
                Ok(None) => {}
                Ok(Some(late)) => {
                    let _ = tx.blocking_send(Chunk::LateError(late));
                }
                Err(e) => {
                    let _ = tx.blocking_send(Chunk::Failed(e));
                }
            }
        });
        // The first message decides the status line.
        let first = match rx.recv().await {
            None => return Ok(full(StatusCode::OK, Bytes::new())),
            Some(Chunk::Failed(e)) => return Err(e),
            Some(Chunk::LateError(e)) => return Err(e),
            Some(Chunk::Data(bytes)) => bytes,
        };
        let head = futures_util::stream::once(async move { Bytes::from(first) });
        let rest = futures_util::stream::unfold(rx, |mut rx| async move {
            rx.recv().await.map(|c| {
                let bytes = match c {
                    Chunk::Data(b) => Bytes::from(b),
                    Chunk::Failed(e) | Chunk::LateError(e) => {
                        tracing::warn!(code = e.code, "query failed after output began");
                        Bytes::from(format!("\n{}\n", e.message))
                    }
                };
                (bytes, rx)
            })
        });
        let stream = head
            .chain(rest)
            .map(|b| Ok::<_, Infallible>(Frame::data(b)));
        Ok(Response::builder()
            .status(StatusCode::OK)
            .header(header::CONTENT_TYPE, "application/octet-stream")
            .body(BodyExt::boxed(StreamBody::new(stream)))
            .unwrap_or_else(|_| text(StatusCode::INTERNAL_SERVER_ERROR, "response error")))
    }

    async fn insert(
        &self,
        access: Access,
        url: &UrlParts,
        statement: Statement,
        body: Option<Incoming>,
    ) -> Result<Response<Body>, EngineError> {
        let Statement::Insert {
            sql,
            format,
            inline,
            ..
        } = statement
        else {
            return Err(EngineError::internal("not an insert"));
        };
        if access == Access::ReadOnly {
            return Err(EngineError::new(
                codes::READONLY,
                "Cannot execute INSERT in readonly mode",
            ));
        }
        let sql = request::with_insert_settings(&sql, &url.settings)?;
        let mut lease = self.engine.lease(Access::Write).await?;
        let (tx, rx) = mpsc::channel::<Bytes>(INSERT_QUEUE);
        let worker = tokio::task::spawn_blocking(move || {
            insert_blocking(&mut lease, &sql, &format, &inline, rx)
        });
        if let Some(mut body) = body {
            while let Some(frame) = body.frame().await {
                let frame = frame.map_err(|e| {
                    EngineError::new(codes::ABORTED, format!("reading insert data failed: {e}"))
                })?;
                if let Ok(data) = frame.into_data()
                    && tx.send(data).await.is_err()
                {
                    break; // the engine stopped early; its error follows
                }
            }
        }
        drop(tx);
        let rows = worker
            .await
            .map_err(|_| EngineError::internal("insert worker failed"))??;
        let summary = format!("{{\"written_rows\":\"{rows}\"}}");
        let mut resp = full(StatusCode::OK, Bytes::new());
        if let Ok(v) = summary.parse() {
            resp.headers_mut().insert("x-clickhouse-summary", v);
        }
        Ok(resp)
    }
}

fn insert_blocking(
    lease: &mut Lease,
    sql: &str,
    format: &str,
    inline: &[u8],
    mut rx: mpsc::Receiver<Bytes>,
) -> Result<u64, EngineError> {
    let mut stream = lease.insert(sql, format)?;
    // Appends are coalesced to fixed-size pieces so the engine sees the same
    // split for the same bytes however TCP delivered them: a retried batch
    // then forms the same blocks, which deduplication tokens rely on.
    let mut pending = Vec::with_capacity(APPEND_SIZE);
    pending.extend_from_slice(inline);
    while let Some(chunk) = rx.blocking_recv() {
        let mut rest: &[u8] = &chunk;
        while !rest.is_empty() {
            let take = (APPEND_SIZE - pending.len()).min(rest.len());
            pending.extend_from_slice(&rest[..take]);
            rest = &rest[take..];
            if pending.len() == APPEND_SIZE {
                stream.append(&pending)?;
                pending.clear();
            }
        }
    }
    if !pending.is_empty() {
        stream.append(&pending)?;
    }
    stream.finish()
}

enum Chunk {
    Data(Vec<u8>),
    Failed(EngineError),
    LateError(EngineError),
}

/// Per-request session state on a writable connection: `USE db` and `SET`s
/// applied before the statement and undone after it, so a pooled connection
/// carries nothing from one request to the next. Read-only connections
/// cannot change settings (that is the point of them), so there only the
/// database is honoured.
struct Session {
    enter: Vec<String>,
    leave: Vec<String>,
}

impl Session {
    fn for_request(access: Access, url: &UrlParts) -> Result<Self, EngineError> {
        let mut enter = Vec::new();
        let mut leave = Vec::new();
        if let Some(db) = url.database.as_deref().filter(|d| *d != "default") {
            if !db.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
                return Err(EngineError::new(
                    codes::BAD_ARGUMENTS,
                    format!("invalid database {db:?}"),
                ));
            }
            enter.push(format!("USE {db}"));
            leave.push("USE default".to_string());
        }
        if access == Access::Write {
            for (k, v) in &url.settings {
                enter.push(request::set_statement(k, v)?);
                leave.push(request::reset_statement(k)?);
            }
        }
        Ok(Self { enter, leave })
    }

    fn enter(&self, lease: &mut Lease) -> Result<(), EngineError> {
        for sql in &self.enter {
            lease.query(sql, "TSV", &[])?;
        }
        Ok(())
    }

    fn leave(&self, lease: &mut Lease) {
        for sql in &self.leave {
            if let Err(e) = lease.query(sql, "TSV", &[]) {
                tracing::warn!(error = %e, "could not reset a pooled session");
            }
        }
    }
}

async fn read_text(body: Incoming) -> Result<String, EngineError> {
    let limited = http_body_util::Limited::new(body, MAX_QUERY_TEXT);
    let bytes = limited
        .collect()
        .await
        .map_err(|_| {
            EngineError::new(
                codes::QUERY_IS_TOO_LARGE,
                format!("query text larger than {MAX_QUERY_TEXT} bytes"),
            )
        })?
        .to_bytes();
    String::from_utf8(bytes.to_vec())
        .map_err(|_| EngineError::new(codes::BAD_ARGUMENTS, "query text is not UTF-8"))
}

/// Reads the `query` and `param_*` fields the `clickhouse` crate sends when a
/// query has bound parameters.
async fn read_multipart(
    content_type: &str,
    body: Incoming,
) -> Result<(String, Vec<(String, String)>), EngineError> {
    let bad =
        |e: String| EngineError::new(codes::BAD_ARGUMENTS, format!("bad multipart body: {e}"));
    let boundary = multer::parse_boundary(content_type).map_err(|e| bad(e.to_string()))?;
    let stream = body.into_data_stream();
    let constraints = multer::Constraints::new()
        .size_limit(multer::SizeLimit::new().whole_stream(MAX_QUERY_TEXT as u64));
    let mut mp = multer::Multipart::with_constraints(stream, boundary, constraints);
    let mut query = None;
    let mut params = Vec::new();
    while let Some(field) = mp.next_field().await.map_err(|e| bad(e.to_string()))? {
        let name = field.name().unwrap_or("").to_string();
        let value = field.text().await.map_err(|e| bad(e.to_string()))?;
        if name == "query" {
            query = Some(value);
        } else if let Some(p) = name.strip_prefix("param_") {
            params.push((p.to_string(), value));
        }
    }
    let query = query.ok_or_else(|| bad("no query field".into()))?;
    Ok((query, params))
}

fn basic_password(headers: &HeaderMap) -> Option<String> {
    let v = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let encoded = v.strip_prefix("Basic ")?;
    let decoded = base64_decode(encoded.trim())?;
    let s = String::from_utf8(decoded).ok()?;
    s.split_once(':').map(|(_, p)| p.to_string())
}

/// Standard base64 (padding optional), enough for a Basic auth header.
fn base64_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let mut buf = 0u32;
    let mut bits = 0;
    for c in s.bytes().filter(|c| *c != b'=') {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32;
        buf = (buf << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((buf >> bits) as u8);
            buf &= (1 << bits) - 1;
        }
    }
    Some(out)
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    use sha2::{Digest, Sha256};
    // Compare digests so the time does not depend on where the inputs differ
    // nor (beyond hashing) on their lengths.
    let (x, y) = (Sha256::digest(a), Sha256::digest(b));
    x.iter()
        .zip(y.iter())
        .fold(0u8, |acc, (p, q)| acc | (p ^ q))
        == 0
}

fn full(status: StatusCode, bytes: Bytes) -> Response<Body> {
    let mut resp = Response::new(BodyExt::boxed(Full::new(bytes)));
    *resp.status_mut() = status;
    resp
}

fn text(status: StatusCode, s: &'static str) -> Response<Body> {
    full(status, Bytes::from_static(s.as_bytes()))
}

fn error_response(e: &EngineError) -> Response<Body> {
    let status = StatusCode::from_u16(e.http_status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    if status.is_server_error() {
        tracing::warn!(code = e.code, "embedded engine request failed");
    }
    let mut resp = full(status, Bytes::from(format!("{}\n", e.message)));
    let headers = resp.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        http::HeaderValue::from_static("text/plain; charset=UTF-8"),
    );
    if let Ok(v) = e.code.to_string().parse() {
        headers.insert("x-clickhouse-exception-code", v);
    }
    resp
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn basic_auth_password_is_read() {
        let mut h = HeaderMap::new();
        // "default:s3cret"
        h.insert(
            header::AUTHORIZATION,
            "Basic ZGVmYXVsdDpzM2NyZXQ=".parse().unwrap(),
        );
        assert_eq!(basic_password(&h).as_deref(), Some("s3cret"));
    }

    #[test]
    fn credential_comparison() {
        assert!(constant_time_eq(b"abc", b"abc"));
        assert!(!constant_time_eq(b"abc", b"abd"));
        assert!(!constant_time_eq(b"abc", b"abcd"));
    }
}
