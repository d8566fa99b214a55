//! The response body of a captured call: upstream bytes go to the client frame by
//! frame as they arrive, and the same bytes feed the accumulator.
//!
//! Invariants: no frame is held back (except, when the shim injected usage, the
//! rest of an incomplete SSE event, so the usage chunk can be removed whole); the
//! call is finished exactly once — at the end of the body, on an upstream error or
//! idle timeout, or when the client goes away (drop), which also drops the
//! upstream response and so aborts the upstream request.

use std::pin::Pin;
use std::sync::atomic::Ordering;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::Bytes;
use http_body::{Body, Frame};
use hyper::body::Incoming;
use tokio::time::{Instant, Sleep};

use crate::accumulate::Accumulator;
use crate::error::ProxyError;
use crate::export::ExportQueue;
use crate::record::{CallContext, End, Finished};
use crate::strip::UsageChunkFilter;

type BoxError = Box<dyn std::error::Error + Send + Sync>;

struct Pending {
    call: CallContext,
    status: u16,
    acc: Accumulator,
    queue: ExportQueue,
}

pub struct TeeBody {
    inner: Incoming,
    pending: Option<Pending>,
    filter: Option<UsageChunkFilter>,
    idle: Duration,
    timer: Pin<Box<Sleep>>,
}

impl TeeBody {
    pub fn new(
        inner: Incoming,
        call: CallContext,
        status: u16,
        acc: Accumulator,
        queue: ExportQueue,
        filter: Option<UsageChunkFilter>,
        idle: Duration,
    ) -> Self {
        TeeBody {
            inner,
            pending: Some(Pending {
                call,
                status,
                acc,
                queue,
            }),
            filter,
            idle,
            timer: Box::pin(tokio::time::sleep(idle)),
        }
    }

    fn finish(&mut self, end: End) {
        if let Some(p) = self.pending.take() {
            if end == End::ClientCancelled {
                p.queue
                    .metrics()
                    .client_cancelled
                    .fetch_add(1, Ordering::Relaxed);
            }
            p.queue.submit(Finished {
                call: p.call,
                status: Some(p.status),
                acc: Some(p.acc),
                end,
                ended: std::time::Instant::now(),
            });
        }
    }
}

impl Body for TeeBody {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        let this = self.get_mut();
        loop {
            match Pin::new(&mut this.inner).poll_frame(cx) {
                Poll::Pending => {
                    if this.pending.is_some() && this.timer.as_mut().poll(cx).is_ready() {
                        this.finish(End::IdleTimeout);
                        let ms = u64::try_from(this.idle.as_millis()).unwrap_or(u64::MAX);
                        return Poll::Ready(Some(Err(Box::new(ProxyError::UpstreamTimeout(ms)))));
                    }
                    return Poll::Pending;
                }
                Poll::Ready(Some(Ok(frame))) => {
                    this.timer.as_mut().reset(Instant::now() + this.idle);
                    let data = match frame.into_data() {
                        Ok(d) => d,
                        Err(trailers) => return Poll::Ready(Some(Ok(trailers))),
                    };
                    if let Some(p) = this.pending.as_mut() {
                        p.acc.feed(&data, std::time::Instant::now());
                    }
                    let out = match this.filter.as_mut() {
                        Some(f) => f.push(&data),
                        None => data,
                    };
                    if this.filter.is_none() && this.inner.is_end_stream() {
                        // A sized body is complete: the server may not poll again.
                        this.finish(End::Completed);
                    }
                    if out.is_empty() {
                        continue;
                    }
                    return Poll::Ready(Some(Ok(Frame::data(out))));
                }
                Poll::Ready(Some(Err(e))) => {
                    this.finish(End::UpstreamBodyError);
                    return Poll::Ready(Some(Err(Box::new(e))));
                }
                Poll::Ready(None) => {
                    if let Some(mut f) = this.filter.take() {
                        let rest = f.finish();
                        if !rest.is_empty() {
                            return Poll::Ready(Some(Ok(Frame::data(rest))));
                        }
                    }
                    this.finish(End::Completed);
                    return Poll::Ready(None);
                }
            }
        }
    }
}

impl Drop for TeeBody {
    fn drop(&mut self) {
        self.finish(End::ClientCancelled);
    }
}
