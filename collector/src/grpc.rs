//! OTLP/gRPC receiver: `TraceService/Export` and `LogsService/Export`.
//!
//! Thin: tonic frames, decompresses (gzip accepted, decoded size capped at
//! `max_decompressed_bytes`) and hands over the message's bytes without
//! copying them; `crate::decode` decodes them as it does OTLP/HTTP bodies
//! (prost reads a plain slice faster than tonic's buffer, and a malformed
//! message is INVALID_ARGUMENT with our message, not tonic's INTERNAL); the
//! one ingest path runs; the answer is encoded.
//! Invariants: at most `max_concurrent_requests` exports run at once (more
//! get UNAVAILABLE, retryable); error codes come from the one mapping table
//! in crate::error; messages never carry internal text.

use std::convert::Infallible;
use std::marker::PhantomData;
use std::sync::Arc;

use bytes::{Buf, Bytes};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use prost::Message;
use tokio::sync::Semaphore;
use tonic::codec::{
    Codec, CompressionEncoding, DecodeBuf, Decoder, EnabledCompressionEncodings, EncodeBuf, Encoder,
};
use tonic::codegen::{BoxFuture, Context, Poll, Service, StdError, http};
use tonic::server::{NamedService, UnaryService};
use tonic::{Request, Response, Status};

use crate::decode;
use crate::error::IngestError;
use crate::ingest::{Caller, Ingest};

#[derive(Clone)]
pub struct GrpcState {
    pub ingest: Arc<Ingest>,
    /// Metadata key carrying the ingest key (lowercase).
    pub key_header: String,
    pub slots: Arc<Semaphore>,
    pub retry_after_secs: u64,
}

fn status(e: &IngestError, retry_after: u64) -> Status {
    let a = e.answer();
    let mut s = Status::new(a.grpc, e.public_message());
    if a.retryable
        && let Ok(v) = retry_after.to_string().parse()
    {
        s.metadata_mut().insert("retry-after", v);
    }
    s
}

impl GrpcState {
    fn busy(&self) -> Status {
        let e = IngestError::Busy;
        self.ingest.count_refusal(&e);
        status(&e, self.retry_after_secs)
    }

    /// A refusal made before ingest ran (a message that does not decode):
    /// counted here, as OTLP/HTTP counts it.
    fn refused(&self, e: IngestError) -> IngestError {
        self.ingest.count_refusal(&e);
        e
    }

    /// The caller, from the key in the request's metadata.
    fn caller<T>(&self, request: &Request<T>) -> Result<Caller, Status> {
        let presented = request
            .metadata()
            .get(self.key_header.as_str())
            .and_then(|v| v.to_str().ok());
        self.ingest
            .caller(presented)
            .map_err(|e| status(&e, self.retry_after_secs))
    }
}

/// One OTLP export service: its name, its message, and what an export does.
pub trait Export: Send + Sync + 'static {
    /// The gRPC service name (`package.Service`).
    const SERVICE: &'static str;
    type Request: Send;
    type Reply: Message + Default + Send + 'static;
    /// The message decoded as OTLP/HTTP bodies are (`crate::decode`).
    fn decode(message: Bytes) -> Result<Self::Request, IngestError>;
    /// The ingest path.
    fn ingest(
        state: &GrpcState,
        request: Self::Request,
        caller: Caller,
    ) -> impl Future<Output = Result<Self::Reply, IngestError>> + Send;
}

/// The path of a service's `Export` method (`/package.Service/Export`).
pub fn export_path<E: Export>() -> String {
    format!("/{}/Export", E::SERVICE)
}

/// `opentelemetry.proto.collector.trace.v1.TraceService`.
pub struct Traces;

impl Export for Traces {
    const SERVICE: &'static str = "opentelemetry.proto.collector.trace.v1.TraceService";
    type Request = ExportTraceServiceRequest;
    type Reply = ExportTraceServiceResponse;

    fn decode(message: Bytes) -> Result<Self::Request, IngestError> {
        decode::traces_protobuf(message)
    }

    async fn ingest(
        state: &GrpcState,
        request: Self::Request,
        caller: Caller,
    ) -> Result<Self::Reply, IngestError> {
        let outcome = state.ingest.export_traces(request, &caller).await?;
        Ok(outcome.traces_reply())
    }
}

/// `opentelemetry.proto.collector.logs.v1.LogsService`.
pub struct Logs;

impl Export for Logs {
    const SERVICE: &'static str = "opentelemetry.proto.collector.logs.v1.LogsService";
    type Request = ExportLogsServiceRequest;
    type Reply = ExportLogsServiceResponse;

    fn decode(message: Bytes) -> Result<Self::Request, IngestError> {
        decode::logs_protobuf(message)
    }

    async fn ingest(
        state: &GrpcState,
        request: Self::Request,
        caller: Caller,
    ) -> Result<Self::Reply, IngestError> {
        let outcome = state.ingest.export_logs(request, &caller).await?;
        Ok(outcome.logs_reply())
    }
}

/// A service's `Export` method: a slot, the caller, the decoded message
/// (the raw bytes dropped once decoded), then [`Export::ingest`].
struct Method<E>(Arc<GrpcState>, PhantomData<E>);

impl<E: Export> UnaryService<Bytes> for Method<E> {
    type Response = E::Reply;
    type Future = BoxFuture<Response<E::Reply>, Status>;

    fn call(&mut self, request: Request<Bytes>) -> Self::Future {
        let state = Arc::clone(&self.0);
        Box::pin(async move {
            let Ok(_slot) = state.slots.try_acquire() else {
                return Err(state.busy());
            };
            let caller = state.caller(&request)?;
            let decoded = E::decode(request.into_inner());
            let reply = match decoded {
                Ok(req) => E::ingest(&state, req, caller).await,
                Err(e) => Err(state.refused(e)),
            };
            reply
                .map(Response::new)
                .map_err(|e| status(&e, state.retry_after_secs))
        })
    }
}

/// Requests arrive as their message's bytes (split off tonic's buffer, not
/// copied); replies are encoded with prost.
struct ExportCodec<R>(PhantomData<R>);

impl<R: Message + Send + 'static> Codec for ExportCodec<R> {
    type Encode = R;
    type Decode = Bytes;
    type Encoder = ExportCodec<R>;
    type Decoder = ExportCodec<R>;

    fn encoder(&mut self) -> Self::Encoder {
        ExportCodec(PhantomData)
    }

    fn decoder(&mut self) -> Self::Decoder {
        ExportCodec(PhantomData)
    }
}

impl<R: Message> Encoder for ExportCodec<R> {
    type Item = R;
    type Error = Status;

    fn encode(&mut self, item: R, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        item.encode(dst)
            .map_err(|e| Status::internal(format!("encoding the reply: {e}")))
    }
}

impl<R> Decoder for ExportCodec<R> {
    type Item = Bytes;
    type Error = Status;

    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<Bytes>, Status> {
        Ok(Some(src.copy_to_bytes(src.remaining())))
    }
}

/// The gRPC server of one export service.
pub struct ExportServer<E> {
    state: Arc<GrpcState>,
    max_decoding: usize,
    _service: PhantomData<E>,
}

impl<E> ExportServer<E> {
    fn new(state: Arc<GrpcState>, max_decoding: usize) -> Self {
        Self {
            state,
            max_decoding,
            _service: PhantomData,
        }
    }
}

impl<E> Clone for ExportServer<E> {
    fn clone(&self) -> Self {
        Self::new(Arc::clone(&self.state), self.max_decoding)
    }
}

impl<E: Export> NamedService for ExportServer<E> {
    const NAME: &'static str = E::SERVICE;
}

impl<E, B> Service<http::Request<B>> for ExportServer<E>
where
    E: Export,
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = Infallible;
    type Future = BoxFuture<Self::Response, Infallible>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Infallible>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        let method = req.uri().path().strip_prefix('/');
        if method.and_then(|m| m.strip_prefix(E::SERVICE)) != Some("/Export") {
            return Box::pin(async {
                Ok(Status::unimplemented("the only method is Export").into_http())
            });
        }
        let method = Method::<E>(Arc::clone(&self.state), PhantomData);
        let max_decoding = self.max_decoding;
        Box::pin(async move {
            let mut gzip = EnabledCompressionEncodings::default();
            gzip.enable(CompressionEncoding::Gzip);
            let mut grpc = tonic::server::Grpc::new(ExportCodec::<E::Reply>(PhantomData))
                .apply_compression_config(gzip, gzip)
                .apply_max_message_size_config(Some(max_decoding), None);
            Ok(grpc.unary(method, req).await)
        })
    }
}

/// The two services, configured with the limits.
pub fn services(
    state: GrpcState,
    max_decoding: usize,
) -> (ExportServer<Traces>, ExportServer<Logs>) {
    let state = Arc::new(state);
    (
        ExportServer::new(Arc::clone(&state), max_decoding),
        ExportServer::new(state, max_decoding),
    )
}
