//! OTLP/gRPC receiver: `TraceService/Export` and `LogsService/Export`.
//!
//! Thin: tonic decodes (gzip accepted, decoded size capped at
//! `max_decompressed_bytes`), the one ingest path runs, the answer is encoded.
//! Invariants: at most `max_concurrent_requests` exports run at once (more
//! get UNAVAILABLE, retryable); error codes come from the one mapping table
//! in crate::error; messages never carry internal text.

use std::sync::Arc;

use opentelemetry_proto::tonic::collector::logs::v1::logs_service_server::{
    LogsService, LogsServiceServer,
};
use opentelemetry_proto::tonic::collector::logs::v1::{
    ExportLogsServiceRequest, ExportLogsServiceResponse,
};
use opentelemetry_proto::tonic::collector::trace::v1::trace_service_server::{
    TraceService, TraceServiceServer,
};
use opentelemetry_proto::tonic::collector::trace::v1::{
    ExportTraceServiceRequest, ExportTraceServiceResponse,
};
use tokio::sync::Semaphore;
use tonic::codec::CompressionEncoding;
use tonic::{Request, Response, Status};

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
}

impl GrpcState {
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

#[tonic::async_trait]
impl TraceService for GrpcState {
    async fn export(
        &self,
        request: Request<ExportTraceServiceRequest>,
    ) -> Result<Response<ExportTraceServiceResponse>, Status> {
        let Ok(_slot) = self.slots.try_acquire() else {
            return Err(self.busy());
        };
        let caller = self.caller(&request)?;
        let outcome = self
            .ingest
            .export_traces(request.into_inner(), &caller)
            .await
            .map_err(|e| status(&e, self.retry_after_secs))?;
        Ok(Response::new(outcome.traces_reply()))
    }
}

#[tonic::async_trait]
impl LogsService for GrpcState {
    async fn export(
        &self,
        request: Request<ExportLogsServiceRequest>,
    ) -> Result<Response<ExportLogsServiceResponse>, Status> {
        let Ok(_slot) = self.slots.try_acquire() else {
            return Err(self.busy());
        };
        let caller = self.caller(&request)?;
        let outcome = self
            .ingest
            .export_logs(request.into_inner(), &caller)
            .await
            .map_err(|e| status(&e, self.retry_after_secs))?;
        Ok(Response::new(outcome.logs_reply()))
    }
}

/// The two services, configured with the limits.
pub fn services(
    state: GrpcState,
    max_decoding: usize,
) -> (TraceServiceServer<GrpcState>, LogsServiceServer<GrpcState>) {
    let traces = TraceServiceServer::new(state.clone())
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_decoding);
    let logs = LogsServiceServer::new(state)
        .accept_compressed(CompressionEncoding::Gzip)
        .send_compressed(CompressionEncoding::Gzip)
        .max_decoding_message_size(max_decoding);
    (traces, logs)
}
