//! What the proxy hands to the export worker: the call as it started, how it
//! ended, and the accumulator that saw the response. Plain data, so the hot path
//! only moves it into the queue; all parsing happens in the worker.

use std::time::{Instant, SystemTime};

use crate::accumulate::Accumulator;
use crate::error::ProxyError;
use crate::headers::{Attribution, TraceParent};
use crate::provider::Endpoint;
use crate::request::RequestInfo;

/// A call as the proxy started it.
#[derive(Debug)]
pub struct CallContext {
    pub endpoint: Endpoint,
    /// `gen_ai.provider.name`.
    pub provider: String,
    pub server_address: String,
    pub server_port: Option<u16>,
    pub request: RequestInfo,
    pub attribution: Attribution,
    pub parent: Option<TraceParent>,
    pub start: SystemTime,
    pub started: Instant,
}

/// How a call ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum End {
    /// The response body was delivered to its end.
    Completed,
    /// The client went away before the end; the upstream request was aborted.
    ClientCancelled,
    /// The upstream connection failed mid-body.
    UpstreamBodyError,
    /// The upstream went silent mid-body for longer than the read timeout.
    IdleTimeout,
    /// No upstream response (timeout, unreachable, bad URL).
    Failed(ProxyError),
}

#[derive(Debug)]
pub struct Finished {
    pub call: CallContext,
    /// Upstream HTTP status, when a response arrived.
    pub status: Option<u16>,
    pub acc: Option<Accumulator>,
    pub end: End,
    pub ended: Instant,
}

impl Finished {
    /// Bytes this record holds (for the queue's byte budget).
    pub fn weight(&self) -> usize {
        self.acc.as_ref().map_or(0, Accumulator::held_bytes) + 512
    }
}
