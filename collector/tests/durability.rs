//! Nothing acknowledged is lost, nothing is stored twice: ClickHouse failing
//! then back (embedded: inserts failing; server mode: endpoint unreachable),
//! and the collector killed with SIGKILL mid-load then restarted.
//! Each test opens the real engine, so each runs in its own process.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use collector::batch::Batch;
use collector::{BatchWriter, CollectorConfig, StoreWriter, WriteError};
use opentelemetry_proto::tonic::collector::trace::v1::ExportTraceServiceRequest;
use opentelemetry_proto::tonic::common::v1::{AnyValue, KeyValue, any_value::Value};
use opentelemetry_proto::tonic::resource::v1::Resource;
use opentelemetry_proto::tonic::trace::v1::{ResourceSpans, ScopeSpans, Span};
use prost::Message;
use store::{EmbeddedConfig, Store, StoreConfig};

const CHILD_ENV: &str = "LOUPE_COLLECTOR_TEST_CHILD_DIR";

fn now_ns() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
}

fn kv(k: &str, v: &str) -> KeyValue {
    KeyValue {
        key: k.into(),
        value: Some(AnyValue {
            value: Some(Value::StringValue(v.into())),
        }),
        ..Default::default()
    }
}

/// Export `n` spans numbered from `first` (span id = the number), a GenAI
/// chat each, tenant `load`.
fn export(first: u64, n: u64) -> Vec<u8> {
    let t = now_ns();
    let spans = (first..first + n)
        .map(|i| Span {
            trace_id: (u128::from(i / 4) + 1).to_be_bytes().to_vec(),
            span_id: (i + 1).to_be_bytes().to_vec(),
            name: "chat gpt-4o-mini".into(),
            start_time_unix_nano: t,
            end_time_unix_nano: t + 300_000_000,
            attributes: vec![
                kv("gen_ai.operation.name", "chat"),
                kv("gen_ai.provider.name", "openai"),
                kv("gen_ai.request.model", "gpt-4o-mini"),
                kv("gen_ai.response.id", &format!("chatcmpl-{i}")),
                kv(
                    "gen_ai.input.messages",
                    r#"[{"role":"user","parts":[{"type":"text","content":"hello"}]}]"#,
                ),
            ],
            ..Default::default()
        })
        .collect();
    ExportTraceServiceRequest {
        resource_spans: vec![ResourceSpans {
            resource: Some(Resource {
                attributes: vec![kv("service.name", "load"), kv("tenant.id", "load")],
                ..Default::default()
            }),
            scope_spans: vec![ScopeSpans {
                spans,
                ..Default::default()
            }],
            ..Default::default()
        }],
    }
    .encode_to_vec()
}

fn span_id_hex(i: u64) -> String {
    format!("{:016x}", i + 1)
}

/// Send `requests` exports of `per` spans from `workers` tasks; returns the
/// span numbers acknowledged (200). Refusals and connection errors are not acked.
async fn load(url: String, requests: u64, per: u64, workers: u64, base: u64) -> Vec<u64> {
    let client = common::http_client();
    let acked = Arc::new(std::sync::Mutex::new(Vec::new()));
    let mut tasks = Vec::new();
    for w in 0..workers {
        let (client, url, acked) = (client.clone(), url.clone(), Arc::clone(&acked));
        tasks.push(tokio::spawn(async move {
            let mut r = w;
            while r < requests {
                let first = base + r * per;
                let sent = client
                    .post(&url)
                    .header("content-type", "application/x-protobuf")
                    .body(export(first, per))
                    .send()
                    .await;
                if let Ok(resp) = sent
                    && resp.status() == 200
                {
                    acked.lock().unwrap().extend(first..first + per);
                }
                r += workers;
            }
        }));
    }
    for t in tasks {
        let _ = t.await;
    }
    let mut v = acked.lock().unwrap().clone();
    v.sort_unstable();
    v
}

/// Every acked span present exactly once, and no span stored twice at all.
async fn assert_exactly_once(store: &Store, acked: &[u64]) {
    let total = common::count(
        store,
        "SELECT count() FROM loupe.spans WHERE tenant_id = 'load'",
    )
    .await;
    let unique = common::count(
        store,
        "SELECT uniqExact(span_id) FROM loupe.spans WHERE tenant_id = 'load'",
    )
    .await;
    assert_eq!(total, unique, "a span was stored twice");
    let ids: Vec<String> = store
        .reader()
        .query("SELECT span_id FROM loupe.spans WHERE tenant_id = 'load'")
        .fetch_all()
        .await
        .unwrap();
    let stored: std::collections::HashSet<String> = ids.into_iter().collect();
    let missing: Vec<u64> = acked
        .iter()
        .copied()
        .filter(|i| !stored.contains(&span_id_hex(*i)))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged spans lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );
    // The rollup fed by a materialized view saw each span once too.
    let rollup = common::count(
        store,
        "SELECT toUInt64(sum(spans)) FROM loupe.usage_hourly WHERE tenant_id = 'load'",
    )
    .await;
    assert_eq!(
        rollup, total,
        "the rollup counts {rollup} spans for {total} stored"
    );
}

/// Flaky wrapper: inserts fail while `down`; with `fail_after_commit` they
/// succeed in ClickHouse but report failure (the case tokens exist for).
struct Flaky {
    inner: StoreWriter,
    down: Arc<AtomicBool>,
    fail_after_commit: Arc<AtomicBool>,
    writes: AtomicU64,
}

impl BatchWriter for Flaky {
    async fn write(&self, batch: &Batch) -> Result<(), WriteError> {
        self.writes.fetch_add(1, Relaxed);
        if self.down.load(Relaxed) {
            return Err(WriteError::Retryable("test: inserts failing".into()));
        }
        self.inner.write(batch).await?;
        if self.fail_after_commit.load(Relaxed) {
            return Err(WriteError::Retryable("test: lost the answer".into()));
        }
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn inserts_failing_then_back_keeps_every_acknowledged_span_exactly_once() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::store_at(dir.path()).await);
    let down = Arc::new(AtomicBool::new(true));
    let after = Arc::new(AtomicBool::new(false));
    let writer = Flaky {
        inner: StoreWriter::new(Arc::clone(&store)),
        down: Arc::clone(&down),
        fail_after_commit: Arc::clone(&after),
        writes: AtomicU64::new(0),
    };
    let cfg = common::test_config(dir.path());
    let run = common::start_with(&cfg, writer).await;
    let url = run.http_url("/v1/traces");

    // Phase 1: store down: everything acknowledged goes to the spool.
    let mut acked = load(url.clone(), 40, 25, 4, 0).await;
    assert_eq!(acked.len(), 1000, "all acknowledged via the spool");
    assert_eq!(
        common::count(&store, "SELECT count() FROM loupe.spans").await,
        0
    );
    // Phase 2: inserts commit but the answer is lost: spooled and replayed twice over.
    down.store(false, Relaxed);
    after.store(true, Relaxed);
    acked.extend(load(url.clone(), 20, 25, 4, 10_000).await);
    tokio::time::sleep(Duration::from_millis(500)).await;
    // Phase 3: healthy.
    after.store(false, Relaxed);
    acked.extend(load(url.clone(), 20, 25, 4, 20_000).await);
    let client = common::http_client();
    let metrics_url = run.http_url("/metrics");
    common::eventually("spool drained", 60, || {
        let (client, metrics_url) = (client.clone(), metrics_url.clone());
        async move {
            let text = client
                .get(&metrics_url)
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap();
            text.contains("\nloupe_collector_spool_bytes 0\n")
                && !text.contains("\nloupe_collector_spans_replayed_total 0\n")
        }
    })
    .await;
    run.stop().await;
    acked.sort_unstable();
    assert_eq!(acked.len(), 2000);
    assert_exactly_once(&store, &acked).await;
    common::close(store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn server_mode_unreachable_then_back_keeps_every_acknowledged_span_exactly_once() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let key = store::credential::load_or_create(&data).unwrap();
    // A port with nothing listening yet: ClickHouse "down".
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let remote = Arc::new(Store::connect(&url, "default", &key));
    let cfg = CollectorConfig {
        insert_timeout_ms: 2_000,
        ..common::test_config(dir.path())
    };
    let run = common::start(&cfg, Arc::clone(&remote)).await;
    let mut acked = load(run.http_url("/v1/traces"), 20, 25, 4, 0).await;
    assert_eq!(acked.len(), 500);
    // ClickHouse comes up on that address, migrated: the engine starts on a
    // port of its own, and the collector's address forwards to it once the
    // migrations are in (a batch inserted between two migrations would miss
    // the rollups the later one creates, which is not what this test is about).
    let store = Store::open(&StoreConfig::Embedded(EmbeddedConfig {
        lib_path: common::lib_path(),
        data_dir: data,
        listen: "127.0.0.1:0".parse().unwrap(),
        max_memory_bytes: 4 << 30,
        mark_cache_bytes: 64 << 20,
    }))
    .await
    .expect("store starts");
    store::migrate::apply(&store, None).await.unwrap();
    let engine: std::net::SocketAddr = store
        .url()
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .parse()
        .unwrap();
    let forwarder = tokio::net::TcpListener::bind(("127.0.0.1", port))
        .await
        .unwrap();
    let forwarding = tokio::spawn(async move {
        while let Ok((mut inbound, _)) = forwarder.accept().await {
            tokio::spawn(async move {
                if let Ok(mut outbound) = tokio::net::TcpStream::connect(engine).await {
                    let _ = tokio::io::copy_bidirectional(&mut inbound, &mut outbound).await;
                }
            });
        }
    });
    acked.extend(load(run.http_url("/v1/traces"), 20, 25, 4, 10_000).await);
    common::eventually("replayed", 60, || async {
        common::count(&store, "SELECT count() FROM loupe.spans").await >= 1000
    })
    .await;
    run.stop().await;
    forwarding.abort();
    acked.sort_unstable();
    assert_exactly_once(&store, &acked).await;
    drop(remote);
    store.close().await;
}

// ---- SIGKILL mid-load: the collector runs in a child process. ----

fn child_files(dir: &Path) -> (PathBuf, PathBuf) {
    (dir.join("child.addr"), dir.join("child.store"))
}

/// The child: an embedded store and a collector on `dir`, serving until killed.
/// Runs only when re-executed by the parent test.
#[test]
#[ignore = "child process of sigkill_mid_load_then_restart_keeps_every_acknowledged_span_exactly_once"]
fn child_collector_process() {
    let Some(dir) = std::env::var_os(CHILD_ENV).map(PathBuf::from) else {
        return;
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async move {
        let store = Arc::new(common::store_at(&dir).await);
        let cfg = CollectorConfig {
            batch_max_rows: 200,
            ..common::test_config(&dir)
        };
        // Half the time inserts fail, so both direct inserts and the spool are
        // in play when the kill comes.
        let flaky = std::env::var_os("LOUPE_CHILD_FLAKY").is_some();
        let writer = Flaky {
            inner: StoreWriter::new(Arc::clone(&store)),
            down: Arc::new(AtomicBool::new(false)),
            fail_after_commit: Arc::new(AtomicBool::new(false)),
            writes: AtomicU64::new(0),
        };
        let down = Arc::clone(&writer.down);
        let after = Arc::clone(&writer.fail_after_commit);
        if flaky {
            tokio::spawn(async move {
                let mut i = 0u64;
                loop {
                    down.store(i.is_multiple_of(3), Relaxed);
                    after.store(i % 3 == 1, Relaxed);
                    i += 1;
                    tokio::time::sleep(Duration::from_millis(150)).await;
                }
            });
        }
        let bound = collector::Collector::bind(&cfg).await.unwrap();
        let (addr_file, store_file) = child_files(&dir);
        std::fs::write(
            &store_file,
            format!(
                "{}\n{}",
                store.url(),
                store::credential::load_or_create(&dir.join("data")).unwrap()
            ),
        )
        .unwrap();
        std::fs::write(&addr_file, bound.http_addr().to_string()).unwrap();
        let _ = bound
            .serve_with(writer, common::prices(), std::future::pending())
            .await;
    });
}

fn spawn_child(dir: &Path, flaky: bool) -> std::process::Child {
    let (addr, st) = child_files(dir);
    let _ = std::fs::remove_file(&addr);
    let _ = std::fs::remove_file(&st);
    let mut cmd = std::process::Command::new(std::env::current_exe().unwrap());
    cmd.args([
        "--exact",
        "child_collector_process",
        "--ignored",
        "--nocapture",
    ])
    .env(CHILD_ENV, dir)
    .stdout(std::process::Stdio::null());
    if flaky {
        cmd.env("LOUPE_CHILD_FLAKY", "1");
    }
    cmd.spawn().unwrap()
}

async fn child_ready(dir: &Path) -> (String, Store) {
    let (addr, st) = child_files(dir);
    common::eventually("child collector up", 60, || async { addr.exists() }).await;
    let http = std::fs::read_to_string(&addr).unwrap();
    let text = std::fs::read_to_string(&st).unwrap();
    let mut lines = text.lines();
    let (url, key) = (
        lines.next().unwrap().to_owned(),
        lines.next().unwrap().to_owned(),
    );
    (
        format!("http://{http}"),
        Store::connect(&url, "default", &key),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_load_then_restart_keeps_every_acknowledged_span_exactly_once() {
    common::init_tracing();
    let dir = tempfile::tempdir().unwrap();
    let mut child = spawn_child(dir.path(), true);
    let (http, _) = child_ready(dir.path()).await;
    let loader = tokio::spawn(load(format!("{http}/v1/traces"), 4_000, 25, 8, 0));
    tokio::time::sleep(Duration::from_millis(2_500)).await;
    child.kill().unwrap(); // SIGKILL
    let _ = child.wait();
    let acked = loader.await.unwrap();
    assert!(
        acked.len() >= 100,
        "too little load before the kill: {}",
        acked.len()
    );

    let mut child = spawn_child(dir.path(), false);
    let (http, reader) = child_ready(dir.path()).await;
    let client = common::http_client();
    common::eventually("spool replayed after restart", 60, || {
        let (client, url) = (client.clone(), format!("{http}/metrics"));
        async move {
            let text = client.get(&url).send().await.unwrap().text().await.unwrap();
            text.contains("\nloupe_collector_spool_bytes 0\n")
        }
    })
    .await;
    let text = client
        .get(format!("{http}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    let replayed = text
        .lines()
        .find(|l| l.starts_with("loupe_collector_spans_replayed_total "))
        .unwrap_or("")
        .to_owned();
    eprintln!(
        "acked {} spans before the kill; after restart: {replayed}",
        acked.len()
    );
    assert_exactly_once(&reader, &acked).await;
    child.kill().unwrap();
    let _ = child.wait();
}
