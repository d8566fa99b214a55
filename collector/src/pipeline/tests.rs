//! The pipeline against a fake writer that deduplicates by token like
//! ClickHouse does: acknowledged rows end stored exactly once whatever the
//! writer does.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, AtomicUsize};

use proptest::prelude::*;
use store::rows::Retention;

use super::*;

#[derive(Default)]
struct FakeStore {
    fail: AtomicBool,
    /// Insert succeeds in the store but the caller sees a failure (a timeout
    /// after commit): the case deduplication tokens exist for.
    fail_after_commit: AtomicBool,
    delay_ms: AtomicUsize,
    by_token: Mutex<HashMap<String, Vec<String>>>,
    attempts: AtomicUsize,
}

impl FakeStore {
    fn stored_ids(&self) -> Vec<String> {
        let g = self.by_token.lock().unwrap_or_else(PoisonError::into_inner);
        let mut ids: Vec<String> = g.values().flatten().cloned().collect();
        ids.sort();
        ids
    }
}

impl BatchWriter for Arc<FakeStore> {
    async fn write(&self, batch: &Batch) -> Result<(), WriteError> {
        self.attempts.fetch_add(1, Relaxed);
        let delay = self.delay_ms.load(Relaxed) as u64;
        if delay > 0 {
            tokio::time::sleep(Duration::from_millis(delay)).await;
        }
        if self.fail.load(Relaxed) {
            return Err(WriteError::Retryable("down".into()));
        }
        self.by_token
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .entry(batch.token.clone())
            .or_insert_with(|| batch.spans.iter().map(|r| r.span_id.clone()).collect());
        if self.fail_after_commit.load(Relaxed) {
            return Err(WriteError::Retryable("timeout after commit".into()));
        }
        Ok(())
    }
}

fn row(n: u64) -> SpanRow {
    let span = schemas::CanonicalSpan {
        trace_id: format!("{n:032x}"),
        span_id: format!("{n:016x}"),
        ..Default::default()
    };
    SpanRow::from_canonical(&span, Retention::default(), 0)
}

fn settings(queue: usize, spool_max: u64) -> PipelineSettings {
    PipelineSettings {
        batch: BatchLimits {
            max_rows: 5,
            max_bytes: 1 << 20,
            max_age: Duration::from_millis(5),
        },
        queue_capacity_bytes: queue,
        queue_wait: Duration::from_millis(50),
        writer_concurrency: 2,
        insert_timeout: Duration::from_secs(5),
        spool_max_bytes: spool_max,
    }
}

fn open_spool(dir: &std::path::Path, max: u64) -> Spool {
    match Spool::open(
        dir,
        crate::spool::SpoolLimits {
            max_bytes: max,
            segment_bytes: 4096,
        },
    ) {
        Ok((s, _)) => s,
        Err(e) => panic!("spool opens: {e}"),
    }
}

async fn eventually(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..500 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("timed out waiting for: {what}");
}

/// A running pipeline (1 MiB queue and spool in `dir`) over a store that is down.
struct Down {
    fake: Arc<FakeStore>,
    metrics: Arc<Metrics>,
    handle: PipelineHandle,
    drain_tx: oneshot::Sender<()>,
    task: tokio::task::JoinHandle<()>,
}

impl Down {
    async fn stop(self) {
        let _ = self.drain_tx.send(());
        let _ = self.task.await;
    }
}

fn store_down(dir: &std::path::Path) -> Down {
    let fake = Arc::new(FakeStore::default());
    fake.fail.store(true, Relaxed);
    let metrics = Arc::new(Metrics::default());
    let (handle, pipe) = pipeline(
        Arc::clone(&fake),
        open_spool(dir, 1 << 20),
        settings(1 << 20, 1 << 20),
        Arc::clone(&metrics),
    );
    let (drain_tx, drain_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(pipe.run(async move {
        let _ = drain_rx.await;
    }));
    Down {
        fake,
        metrics,
        handle,
        drain_tx,
        task,
    }
}

#[tokio::test]
async fn store_down_spools_then_replays_each_acknowledged_row_once() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let down = store_down(dir.path());
    let (fake, metrics, handle) = (&down.fake, &down.metrics, &down.handle);
    let mut acked = Vec::new();
    for i in 0..20u64 {
        let rows = vec![row(i * 2), row(i * 2 + 1)];
        assert_eq!(handle.submit(rows, vec![]).await, Ok(()));
        acked.extend([format!("{:016x}", i * 2), format!("{:016x}", i * 2 + 1)]);
    }
    assert!(fake.stored_ids().is_empty());
    assert!(metrics.batches_spooled.load(Relaxed) > 0);
    fake.fail.store(false, Relaxed);
    acked.sort();
    eventually("replay", || fake.stored_ids() == acked).await;
    eventually("spool drained", || metrics.spool_bytes.load(Relaxed) == 0).await;
    // back to direct inserts
    assert_eq!(handle.submit(vec![row(1000)], vec![]).await, Ok(()));
    eventually("direct insert", || {
        fake.stored_ids().len() == acked.len() + 1
    })
    .await;
    down.stop().await;
}

#[tokio::test]
async fn a_down_store_is_retried_at_the_backoff_not_at_the_traffic_rate() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let down = store_down(dir.path());
    let (fake, metrics, handle) = (&down.fake, &down.metrics, &down.handle);
    // ~1.2 s of traffic while the store is down: every batch is spooled and
    // each one wakes the replayer.
    for i in 0..60u64 {
        assert_eq!(handle.submit(vec![row(i)], vec![]).await, Ok(()));
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let spooled = metrics.batches_spooled.load(Relaxed);
    let attempts = fake.attempts.load(Relaxed);
    // Backoff from 100 ms, doubling: about five replays in 1.2 s, plus the
    // direct inserts that failed before the pipeline switched to spooling.
    assert!(spooled >= 50, "{spooled} batches spooled");
    assert!(
        attempts <= 12,
        "{attempts} insert attempts for {spooled} spooled batches"
    );
    down.stop().await;
}

#[tokio::test]
async fn full_spool_and_full_queue_are_retryable_refusals() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = Arc::new(FakeStore::default());
    fake.fail.store(true, Relaxed);
    let metrics = Arc::new(Metrics::default());
    let (handle, pipe) = pipeline(
        Arc::clone(&fake),
        open_spool(dir.path(), 3000),
        settings(1 << 20, 3000),
        metrics,
    );
    let (drain_tx, drain_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(pipe.run(async move {
        let _ = drain_rx.await;
    }));
    let mut results = Vec::new();
    for i in 0..40u64 {
        results.push(handle.submit(vec![row(i)], vec![]).await);
    }
    assert!(results.iter().any(Result::is_ok));
    assert!(results.contains(&Err(IngestError::SpoolFull)));
    assert!(handle.status.not_ready().is_some());
    let _ = drain_tx.send(());
    let _ = task.await;

    // queue: a slow writer and a tiny budget
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let slow = Arc::new(FakeStore::default());
    slow.delay_ms.store(300, Relaxed);
    let (handle, pipe) = pipeline(
        Arc::clone(&slow),
        open_spool(dir.path(), 1 << 20),
        settings(2048, 1 << 20),
        Arc::new(Metrics::default()),
    );
    let (drain_tx, drain_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(pipe.run(async move {
        let _ = drain_rx.await;
    }));
    let subs: Vec<_> = (0..10u64)
        .map(|i| {
            let h = handle.clone();
            tokio::spawn(async move { h.submit(vec![row(i)], vec![]).await })
        })
        .collect();
    let mut outcomes = Vec::new();
    for s in subs {
        outcomes.push(s.await.unwrap_or(Err(IngestError::Internal("join".into()))));
    }
    assert!(
        outcomes.contains(&Err(IngestError::QueueFull)),
        "{outcomes:?}"
    );
    assert!(outcomes.iter().any(Result::is_ok));
    let _ = drain_tx.send(());
    let _ = task.await;
}

#[tokio::test]
async fn drain_answers_everything_and_the_spool_replays_after_restart() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let fake = Arc::new(FakeStore::default());
    fake.fail_after_commit.store(true, Relaxed);
    {
        let (handle, pipe) = pipeline(
            Arc::clone(&fake),
            open_spool(dir.path(), 1 << 20),
            settings(1 << 20, 1 << 20),
            Arc::new(Metrics::default()),
        );
        let (drain_tx, drain_rx) = oneshot::channel::<()>();
        let task = tokio::spawn(pipe.run(async move {
            let _ = drain_rx.await;
        }));
        for i in 0..7u64 {
            assert_eq!(handle.submit(vec![row(i)], vec![]).await, Ok(()));
        }
        let _ = drain_tx.send(());
        let _ = task.await;
        assert_eq!(
            handle.submit(vec![row(99)], vec![]).await,
            Err(IngestError::ShuttingDown)
        );
    }
    // Every batch was stored once already (failure after commit) and spooled.
    fake.fail_after_commit.store(false, Relaxed);
    let spool = open_spool(dir.path(), 1 << 20);
    assert!(!spool.is_empty());
    let metrics = Arc::new(Metrics::default());
    let (_handle, pipe) = pipeline(
        Arc::clone(&fake),
        spool,
        settings(1 << 20, 1 << 20),
        Arc::clone(&metrics),
    );
    let (drain_tx, drain_rx) = oneshot::channel::<()>();
    let task = tokio::spawn(pipe.run(async move {
        let _ = drain_rx.await;
    }));
    eventually("replayed", || {
        metrics.spool_bytes.load(Relaxed) == 0 && metrics.batches_replayed.load(Relaxed) > 0
    })
    .await;
    let want: Vec<String> = (0..7u64).map(|i| format!("{i:016x}")).collect();
    assert_eq!(fake.stored_ids(), want, "replays deduplicated by token");
    let _ = drain_tx.send(());
    let _ = task.await;
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(12))]
    /// Whatever the store does between exports, acknowledged rows end stored
    /// exactly once and refused ones are the only ones missing.
    #[test]
    fn acknowledged_rows_stored_exactly_once(script in proptest::collection::vec((any::<bool>(), any::<bool>(), 1u64..4), 1..25)) {
        let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        rt.block_on(async move {
            let dir = tempfile::tempdir().map_err(|e| TestCaseError::fail(e.to_string()))?;
            let fake = Arc::new(FakeStore::default());
            let metrics = Arc::new(Metrics::default());
            let (handle, pipe) = pipeline(Arc::clone(&fake), open_spool(dir.path(), 1 << 20), settings(1 << 20, 1 << 20), Arc::clone(&metrics));
            let (drain_tx, drain_rx) = oneshot::channel::<()>();
            let task = tokio::spawn(pipe.run(async move { let _ = drain_rx.await; }));
            let mut next = 0u64;
            let mut acked = Vec::new();
            for (down, after_commit, n) in script {
                fake.fail.store(down, Relaxed);
                fake.fail_after_commit.store(after_commit, Relaxed);
                let rows: Vec<_> = (0..n).map(|_| { next += 1; row(next) }).collect();
                let ids: Vec<_> = rows.iter().map(|r| r.span_id.clone()).collect();
                if handle.submit(rows, vec![]).await.is_ok() {
                    acked.extend(ids);
                }
            }
            fake.fail.store(false, Relaxed);
            fake.fail_after_commit.store(false, Relaxed);
            acked.sort();
            eventually("all stored", || metrics.spool_bytes.load(Relaxed) == 0 && fake.stored_ids().len() >= acked.len()).await;
            prop_assert_eq!(fake.stored_ids(), acked);
            let _ = drain_tx.send(());
            let _ = task.await;
            Ok(())
        })?;
    }
}
