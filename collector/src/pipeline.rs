//! From accepted rows to durable rows: a bounded queue, the batcher, the
//! writer and the spool, and the replayer that empties the spool.
//!
//! States: **direct** (batches go to the writer, up to `writer_concurrency`
//! at once) and **spooling** (batches are appended to the spool and the
//! replayer inserts them in order). A failed or timed-out insert spools its
//! batch and switches to spooling; the replayer switches back to direct once
//! the spool is empty (decided under the spool lock, so no batch is ever
//! stranded).
//!
//! Invariants: a waiter is answered `Ok` only after its rows are inserted or
//! fsynced in the spool, and is always answered (an error is an answer);
//! rows in memory are bounded by `queue_capacity_bytes` (a semaphore of KiB
//! permits held from submission to answer); a batch keeps its deduplication
//! token through spool and replay, so replays never duplicate; a batch
//! ClickHouse keeps refusing as invalid is moved to the dead-letter
//! directory (counted), never dropped silently.

use std::sync::atomic::{AtomicBool, Ordering::Relaxed};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use store::rows::{EvaluationRow, SpanRow};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc, oneshot, watch};

use crate::batch::{
    Batch, BatchLimits, Batcher, Sealed, Submission, evaluation_row_bytes, span_rows_bytes,
};
use crate::error::IngestError;
use crate::metrics::Metrics;
use crate::spool::{Spool, SpoolError};
use crate::writer::{BatchWriter, WriteError};

const PERMIT_BYTES: usize = 1024;
/// Submissions buffered in the channel (their bytes are bounded by the budget).
const CHANNEL_CAPACITY: usize = 4096;
/// Replay backoff bounds.
const BACKOFF_MIN: Duration = Duration::from_millis(100);
const BACKOFF_MAX: Duration = Duration::from_secs(5);
/// A batch refused as invalid this many times in replay is dead-lettered.
const MAX_REJECTIONS: u32 = 3;

pub type Ack = Result<(), IngestError>;

/// Answers one submission; holds its share of the queue budget until then.
#[derive(Debug)]
pub struct Waiter {
    tx: oneshot::Sender<Ack>,
    _permit: OwnedSemaphorePermit,
    spans: i64,
    bytes: i64,
}

pub struct SpoolState {
    pub spool: Spool,
    pub spooling: bool,
}

/// What `/readyz` and `/metrics` read, independent of the writer type.
pub struct Status {
    spool: Arc<Mutex<SpoolState>>,
    closing: AtomicBool,
    spool_max: u64,
}

impl Status {
    /// `None` when ready, else why not.
    pub fn not_ready(&self) -> Option<&'static str> {
        if self.closing.load(Relaxed) {
            return Some("shutting down");
        }
        let st = lock(&self.spool);
        if st.spool.disk_bytes() >= self.spool_max.saturating_mul(95) / 100 {
            return Some("spool nearly full");
        }
        None
    }
}

fn lock(m: &Mutex<SpoolState>) -> MutexGuard<'_, SpoolState> {
    m.lock().unwrap_or_else(PoisonError::into_inner)
}

#[derive(Debug, Clone, Copy)]
pub struct PipelineSettings {
    pub batch: BatchLimits,
    pub queue_capacity_bytes: usize,
    pub queue_wait: Duration,
    pub writer_concurrency: usize,
    pub insert_timeout: Duration,
    pub spool_max_bytes: u64,
}

/// The submitting side, held by the ingest path.
#[derive(Clone)]
pub struct PipelineHandle {
    tx: mpsc::Sender<Submission<Waiter>>,
    budget: Arc<Semaphore>,
    budget_units: u32,
    queue_wait: Duration,
    metrics: Arc<Metrics>,
    pub status: Arc<Status>,
}

impl PipelineHandle {
    /// Queue rows and wait until they are inserted or spooled.
    pub async fn submit(&self, spans: Vec<SpanRow>, evaluations: Vec<EvaluationRow>) -> Ack {
        if spans.is_empty() && evaluations.is_empty() {
            return Ok(());
        }
        if self.status.closing.load(Relaxed) {
            return Err(IngestError::ShuttingDown);
        }
        let bytes =
            span_rows_bytes(&spans) + evaluations.iter().map(evaluation_row_bytes).sum::<usize>();
        let units = u32::try_from(bytes.div_ceil(PERMIT_BYTES))
            .unwrap_or(u32::MAX)
            .clamp(1, self.budget_units);
        let acquire = Arc::clone(&self.budget).acquire_many_owned(units);
        let permit = match tokio::time::timeout(self.queue_wait, acquire).await {
            Ok(Ok(p)) => p,
            Ok(Err(_)) => return Err(IngestError::ShuttingDown),
            Err(_) => return Err(IngestError::QueueFull),
        };
        let n = i64::try_from(spans.len()).unwrap_or(i64::MAX);
        let b = i64::try_from(bytes).unwrap_or(i64::MAX);
        self.metrics.queue_spans.fetch_add(n, Relaxed);
        self.metrics.queue_bytes.fetch_add(b, Relaxed);
        let (tx, rx) = oneshot::channel();
        let sub = Submission {
            spans,
            evaluations,
            bytes,
            waiter: Waiter {
                tx,
                _permit: permit,
                spans: n,
                bytes: b,
            },
        };
        if let Err(mpsc::error::SendError(sub)) = self.tx.send(sub).await {
            answer(&self.metrics, sub.waiter, Err(IngestError::ShuttingDown));
        }
        rx.await.unwrap_or(Err(IngestError::ShuttingDown))
    }
}

fn answer(metrics: &Metrics, w: Waiter, ack: Ack) {
    metrics.queue_spans.fetch_sub(w.spans, Relaxed);
    metrics.queue_bytes.fetch_sub(w.bytes, Relaxed);
    let _ = w.tx.send(ack);
}

struct Shared<W> {
    writer: W,
    spool: Arc<Mutex<SpoolState>>,
    metrics: Arc<Metrics>,
    insert_timeout: Duration,
    wake: tokio::sync::Notify,
}

/// The running side: batcher, writers and replayer.
pub struct Pipeline<W> {
    shared: Arc<Shared<W>>,
    rx: mpsc::Receiver<Submission<Waiter>>,
    batcher: Batcher<Waiter>,
    write_slots: Arc<Semaphore>,
    slots: u32,
    status: Arc<Status>,
}

pub fn pipeline<W: BatchWriter>(
    writer: W,
    spool: Spool,
    settings: PipelineSettings,
    metrics: Arc<Metrics>,
) -> (PipelineHandle, Pipeline<W>) {
    let spooling = !spool.is_empty();
    metrics.spool_bytes.store(spool.pending_bytes(), Relaxed);
    metrics
        .spool_segments
        .store(spool.segment_count() as u64, Relaxed);
    let spool = Arc::new(Mutex::new(SpoolState { spool, spooling }));
    let status = Arc::new(Status {
        spool: Arc::clone(&spool),
        closing: AtomicBool::new(false),
        spool_max: settings.spool_max_bytes,
    });
    let units = u32::try_from(settings.queue_capacity_bytes.div_ceil(PERMIT_BYTES))
        .unwrap_or(u32::MAX)
        .clamp(1, u32::try_from(Semaphore::MAX_PERMITS).unwrap_or(u32::MAX));
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let handle = PipelineHandle {
        tx,
        budget: Arc::new(Semaphore::new(units as usize)),
        budget_units: units,
        queue_wait: settings.queue_wait,
        metrics: Arc::clone(&metrics),
        status: Arc::clone(&status),
    };
    let slots = u32::try_from(settings.writer_concurrency.max(1)).unwrap_or(64);
    let token_prefix = format!("loupe-{:016x}", rand::random::<u64>());
    let pipeline = Pipeline {
        shared: Arc::new(Shared {
            writer,
            spool,
            metrics,
            insert_timeout: settings.insert_timeout,
            wake: tokio::sync::Notify::new(),
        }),
        rx,
        batcher: Batcher::new(settings.batch, token_prefix),
        write_slots: Arc::new(Semaphore::new(slots as usize)),
        slots,
        status,
    };
    (handle, pipeline)
}

impl<W: BatchWriter> Pipeline<W> {
    /// Run until `drain` resolves and every submission made before it is
    /// answered (inserted, spooled or refused). The replayer stops then;
    /// whatever is still spooled replays at the next start.
    pub async fn run(mut self, drain: impl std::future::Future<Output = ()> + Send) {
        let (stop_tx, stop_rx) = watch::channel(false);
        let replayer = tokio::spawn(replay_loop(Arc::clone(&self.shared), stop_rx));
        let mut drain = std::pin::pin!(drain);
        let mut draining = false;
        loop {
            let deadline = self.batcher.deadline();
            tokio::select! {
                biased;
                _ = &mut drain, if !draining => {
                    draining = true;
                    self.status.closing.store(true, Relaxed);
                    self.rx.close();
                }
                msg = self.rx.recv() => match msg {
                    Some(sub) => {
                        for sealed in self.batcher.push(sub, Instant::now()) {
                            self.dispatch(sealed).await;
                        }
                    }
                    None => break,
                },
                _ = sleep_until(deadline), if deadline.is_some() => {
                    if let Some(sealed) = self.batcher.seal() {
                        self.dispatch(sealed).await;
                    }
                }
            }
        }
        if let Some(sealed) = self.batcher.seal() {
            self.dispatch(sealed).await;
        }
        // Every write slot back means every batch is answered.
        let _all = self.write_slots.acquire_many(self.slots).await;
        let _ = stop_tx.send(true);
        let _ = replayer.await;
    }

    async fn dispatch(&self, sealed: Sealed<Waiter>) {
        let Ok(slot) = Arc::clone(&self.write_slots).acquire_owned().await else {
            for w in sealed.waiters {
                answer(&self.shared.metrics, w, Err(IngestError::ShuttingDown));
            }
            return;
        };
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            let ack = deliver(&shared, &sealed.batch).await;
            for w in sealed.waiters {
                answer(&shared.metrics, w, ack.clone());
            }
            drop(slot);
        });
    }
}

async fn sleep_until(deadline: Option<Instant>) {
    if let Some(d) = deadline {
        tokio::time::sleep_until(d.into()).await;
    }
}

/// Insert directly, or spool; see the module doc for the states.
async fn deliver<W: BatchWriter>(shared: &Shared<W>, batch: &Batch) -> Ack {
    if batch.spans.is_empty() && batch.evaluations.is_empty() {
        return Ok(());
    }
    if lock(&shared.spool).spooling {
        return spool_batch(shared, batch).await;
    }
    match write_timed(shared, batch).await {
        Ok(()) => {
            Metrics::add(&shared.metrics.batches_inserted, 1);
            Ok(())
        }
        Err(e) => {
            tracing::warn!(token = %batch.token, spans = batch.spans.len(), error = %e, "insert failed; spooling the batch");
            spool_batch(shared, batch).await
        }
    }
}

async fn write_timed<W: BatchWriter>(shared: &Shared<W>, batch: &Batch) -> Result<(), WriteError> {
    let started = Instant::now();
    let result = match tokio::time::timeout(shared.insert_timeout, shared.writer.write(batch)).await
    {
        Ok(r) => r,
        Err(_) => Err(WriteError::Retryable(format!(
            "insert timed out after {:?}",
            shared.insert_timeout
        ))),
    };
    match &result {
        Ok(()) => {
            shared.metrics.insert_latency.observe(started.elapsed());
            Metrics::add(&shared.metrics.rows_inserted, batch.spans.len() as u64);
        }
        Err(_) => Metrics::add(&shared.metrics.insert_failures, 1),
    }
    result
}

async fn spool_batch<W: BatchWriter>(shared: &Shared<W>, batch: &Batch) -> Ack {
    let payload = batch
        .encode()
        .map_err(|e| IngestError::Internal(e.to_string()))?;
    let state = Arc::clone(&shared.spool);
    let result = tokio::task::spawn_blocking(move || {
        let mut st = lock(&state);
        st.spooling = true;
        st.spool
            .append(&payload)
            .map(|()| (st.spool.pending_bytes(), st.spool.segment_count()))
    })
    .await;
    match result {
        Ok(Ok((bytes, segments))) => {
            Metrics::add(&shared.metrics.batches_spooled, 1);
            shared.metrics.spool_bytes.store(bytes, Relaxed);
            shared
                .metrics
                .spool_segments
                .store(segments as u64, Relaxed);
            shared.wake.notify_one();
            Ok(())
        }
        Ok(Err(SpoolError::Full { .. })) => {
            shared.wake.notify_one();
            Err(IngestError::SpoolFull)
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "spool append failed");
            Err(IngestError::Internal(e.to_string()))
        }
        Err(e) => Err(IngestError::Internal(e.to_string())),
    }
}

enum Next {
    Record(crate::spool::Record),
    Empty,
    Failed(String),
}

/// Take the next spooled record; when there is none, switch back to direct
/// inserts under the same lock.
async fn next_record(spool: &Arc<Mutex<SpoolState>>) -> Next {
    let state = Arc::clone(spool);
    let r = tokio::task::spawn_blocking(move || {
        let mut st = lock(&state);
        match st.spool.peek() {
            Ok(Some(rec)) => Next::Record(rec),
            Ok(None) => {
                st.spooling = false;
                Next::Empty
            }
            Err(e) => Next::Failed(e.to_string()),
        }
    })
    .await;
    r.unwrap_or_else(|e| Next::Failed(e.to_string()))
}

async fn commit<W: BatchWriter>(shared: &Shared<W>, next: crate::spool::Cursor) {
    let state = Arc::clone(&shared.spool);
    let r = tokio::task::spawn_blocking(move || {
        let mut st = lock(&state);
        st.spool
            .commit(next)
            .map(|()| (st.spool.pending_bytes(), st.spool.segment_count()))
    })
    .await;
    match r {
        Ok(Ok((bytes, segments))) => {
            shared.metrics.spool_bytes.store(bytes, Relaxed);
            shared
                .metrics
                .spool_segments
                .store(segments as u64, Relaxed);
        }
        Ok(Err(e)) => tracing::error!(error = %e, "spool commit failed"),
        Err(e) => tracing::error!(error = %e, "spool commit panicked"),
    }
}

async fn dead_letter<W: BatchWriter>(shared: &Shared<W>, name: String, payload: Vec<u8>) {
    let state = Arc::clone(&shared.spool);
    let r =
        tokio::task::spawn_blocking(move || lock(&state).spool.dead_letter(&name, &payload)).await;
    match r {
        Ok(Ok(path)) => {
            Metrics::add(&shared.metrics.batches_dead_lettered, 1);
            tracing::error!(path = %path.display(), "batch refused by the store; kept in the dead-letter directory");
        }
        Ok(Err(e)) => tracing::error!(error = %e, "dead-lettering a batch failed"),
        Err(e) => tracing::error!(error = %e, "dead-lettering a batch panicked"),
    }
}

/// Replays the spool in order whenever it holds records.
async fn replay_loop<W: BatchWriter>(shared: Arc<Shared<W>>, mut stop: watch::Receiver<bool>) {
    let mut backoff = BACKOFF_MIN;
    let mut rejections = 0u32;
    loop {
        if *stop.borrow() {
            return;
        }
        let wait = match next_record(&shared.spool).await {
            Next::Empty => None,
            Next::Failed(e) => {
                tracing::error!(error = %e, "spool read failed");
                Some(BACKOFF_MAX)
            }
            Next::Record(rec) => match Batch::decode(&rec.payload) {
                Err(e) => {
                    tracing::error!(error = %e, "undecodable spool record");
                    dead_letter(
                        &shared,
                        format!("undecodable-{}", rand::random::<u64>()),
                        rec.payload,
                    )
                    .await;
                    commit(&shared, rec.next).await;
                    continue;
                }
                Ok(batch) => match write_timed(&shared, &batch).await {
                    Ok(()) => {
                        Metrics::add(&shared.metrics.batches_replayed, 1);
                        Metrics::add(&shared.metrics.spans_replayed, batch.spans.len() as u64);
                        commit(&shared, rec.next).await;
                        backoff = BACKOFF_MIN;
                        rejections = 0;
                        continue;
                    }
                    Err(WriteError::Rejected(e)) if rejections + 1 >= MAX_REJECTIONS => {
                        tracing::error!(token = %batch.token, error = %e, "spooled batch refused again");
                        dead_letter(&shared, batch.token.clone(), rec.payload).await;
                        commit(&shared, rec.next).await;
                        rejections = 0;
                        continue;
                    }
                    Err(e) => {
                        if matches!(e, WriteError::Rejected(_)) {
                            rejections += 1;
                        }
                        tracing::warn!(token = %batch.token, error = %e, retry_in = ?backoff, "replay failed");
                        let w = backoff;
                        backoff = (backoff * 2).min(BACKOFF_MAX);
                        Some(w)
                    }
                },
            },
        };
        // An empty spool waits for the next spooled batch; a failed replay
        // waits out its backoff (new batches spooled meanwhile must not cut it
        // short, or a down store is retried at the rate batches arrive).
        tokio::select! {
            _ = stop.changed() => {}
            _ = shared.wake.notified(), if wait.is_none() => {}
            _ = tokio::time::sleep(wait.unwrap_or(BACKOFF_MAX)), if wait.is_some() => {}
        }
    }
}

#[cfg(test)]
mod tests;
