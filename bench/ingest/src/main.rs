//! `ingest-bench`: end-to-end OTLP ingest into the embedded engine vs the
//! engine's own insert rate for the same rows. See bench/README.md.
//!
//! `ingest-bench [--spans N] [--concurrency C] [--spans-per-request R] [--tenants T]
//!  [--protocol http|grpc|both] [--batch-rows N] [--batch-mib N] [--batch-age-ms MS]
//!  [--writer-concurrency N] [--max-requests N] [--ceiling-concurrency N] [--data-dir DIR] [--timeout-secs S]
//!  [--setup-sql SQL]... [--rounds N] [--warmup N] [--normalize-only N]`
//!  (`--setup-sql`: statements run after the migrations, for schema
//!  experiments; `--rounds`: the end-to-end runs repeated, protocols taking
//!  turns; `--warmup`: untimed end-to-end runs first (default 1), reported
//!  apart: the process's first run pays the kernel for zeroing every page it
//!  touches for the first time, once in its life; `--normalize-only`: decode,
//!  normalise and build rows N times on one core, nothing else, for profiling)
//!
//! One process: pre-encodes the requests, opens the embedded engine, then per
//! protocol starts a collector on loopback, sends everything, and waits until
//! `count()` of `loupe.spans` reaches N; before the first round and after
//! each, inserts the same rows (normalised once, as the collector would)
//! straight into the engine: the ceiling. A round's runs are compared with
//! the mean of the two ceilings around it.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::print_stdout)]

#[global_allocator]
static ALLOC: store::alloc::Allocator = store::alloc::Allocator;

mod load;
mod spans;

use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use load::Protocol;
use schemas::pricing::PriceTable;
use store::rows::{Retention, SpanRow, tables};
use store::{EmbeddedConfig, Store, StoreConfig};

struct Args {
    spans: u64,
    concurrency: usize,
    spans_per_request: u64,
    tenants: usize,
    protocols: Vec<Protocol>,
    batch_rows: usize,
    batch_bytes: usize,
    batch_age_ms: u64,
    writer_concurrency: usize,
    max_requests: usize,
    ceiling_concurrency: usize,
    data_dir: PathBuf,
    timeout: Duration,
    /// Statements run after the migrations (schema experiments).
    setup_sql: Vec<String>,
    /// Only decode and normalise the requests this many times, for profiling.
    normalize_only: u32,
    /// End-to-end runs per protocol (protocols take turns).
    rounds: usize,
    /// Untimed end-to-end runs (of the first protocol) before the rounds.
    warmup: usize,
}

fn parse_args() -> anyhow::Result<Args> {
    let defaults = collector::CollectorConfig::default();
    let mut a = Args {
        spans: 400_000,
        concurrency: 8,
        spans_per_request: 512,
        tenants: 4,
        protocols: vec![Protocol::Http, Protocol::Grpc],
        batch_rows: defaults.batch_max_rows,
        batch_bytes: defaults.batch_max_bytes,
        batch_age_ms: defaults.batch_max_age_ms,
        writer_concurrency: defaults.writer_concurrency,
        max_requests: defaults.max_concurrent_requests,
        ceiling_concurrency: 0,
        data_dir: std::env::temp_dir(),
        timeout: Duration::from_secs(600),
        setup_sql: Vec::new(),
        normalize_only: 0,
        rounds: 1,
        warmup: 1,
    };
    let args: Vec<String> = std::env::args().skip(1).collect();
    for pair in args.chunks(2) {
        let [k, v] = pair else {
            bail!("flag without a value: {}", pair[0]);
        };
        match k.as_str() {
            "--spans" => a.spans = v.parse()?,
            "--concurrency" => a.concurrency = v.parse()?,
            "--spans-per-request" => a.spans_per_request = v.parse()?,
            "--tenants" => a.tenants = v.parse()?,
            "--protocol" => {
                a.protocols = match v.as_str() {
                    "http" => vec![Protocol::Http],
                    "grpc" => vec![Protocol::Grpc],
                    "both" => vec![Protocol::Http, Protocol::Grpc],
                    _ => bail!("--protocol http|grpc|both"),
                }
            }
            "--batch-rows" => a.batch_rows = v.parse()?,
            "--batch-mib" => a.batch_bytes = v.parse::<usize>()? << 20,
            "--batch-age-ms" => a.batch_age_ms = v.parse()?,
            "--writer-concurrency" => a.writer_concurrency = v.parse()?,
            "--max-requests" => a.max_requests = v.parse()?,
            "--ceiling-concurrency" => a.ceiling_concurrency = v.parse()?,
            "--data-dir" => a.data_dir = v.into(),
            "--timeout-secs" => a.timeout = Duration::from_secs(v.parse()?),
            "--setup-sql" => a.setup_sql.push(v.clone()),
            "--normalize-only" => a.normalize_only = v.parse()?,
            "--rounds" => a.rounds = v.parse::<usize>()?.max(1),
            "--warmup" => a.warmup = v.parse()?,
            _ => bail!("unknown flag {k}; see the top of bench/ingest/src/main.rs"),
        }
    }
    if a.ceiling_concurrency == 0 {
        a.ceiling_concurrency = a.writer_concurrency;
    }
    Ok(a)
}

fn main() -> anyhow::Result<()> {
    store::alloc::tune();
    let args = parse_args()?;
    tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?
        .block_on(run(args))
}

/// Peak VmRSS seen by a sampler thread since the last reset, in KiB.
struct RssSampler {
    peak_kib: AtomicU64,
    stop: AtomicBool,
}

fn status_kib(field: &str) -> u64 {
    let s = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    s.lines()
        .find_map(|l| l.strip_prefix(field))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

impl RssSampler {
    fn start() -> Arc<Self> {
        let me = Arc::new(Self {
            peak_kib: AtomicU64::new(0),
            stop: AtomicBool::new(false),
        });
        let s = Arc::clone(&me);
        std::thread::spawn(move || {
            while !s.stop.load(Relaxed) {
                s.peak_kib.fetch_max(status_kib("VmRSS:"), Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        me
    }

    fn reset(&self) -> u64 {
        let now = status_kib("VmRSS:");
        self.peak_kib.store(now, Relaxed);
        now
    }

    fn peak(&self) -> u64 {
        self.peak_kib.load(Relaxed).max(status_kib("VmRSS:"))
    }
}

async fn count(store: &Store) -> anyhow::Result<u64> {
    Ok(store
        .reader()
        .query("SELECT count() FROM loupe.spans")
        .fetch_one::<u64>()
        .await?)
}

/// The spans table's parts right now: active parts, their rows, the highest
/// merge level, and parts merged away but not yet removed.
async fn parts(store: &Store) -> anyhow::Result<String> {
    let (active, level, merged): (u64, u32, u64) = store
        .reader()
        .query(
            "SELECT countIf(active), maxIf(level, active), countIf(NOT active) FROM system.parts \
             WHERE database = 'loupe' AND table = 'spans'",
        )
        .fetch_one()
        .await?;
    Ok(format!(
        "{active} active parts (max level {level}), {merged} merged away"
    ))
}

async fn truncate(store: &Store) -> anyhow::Result<()> {
    for t in [
        tables::SPANS,
        tables::EVALUATIONS,
        tables::TRACE_INDEX,
        tables::USAGE_HOURLY,
        tables::VALIDATION_HOURLY,
        tables::LATENCY_HOURLY,
    ] {
        store
            .execute(&format!("TRUNCATE TABLE IF EXISTS {t}"))
            .await?;
    }
    Ok(())
}

/// User + system CPU time of this process so far, in seconds.
fn cpu_secs() -> f64 {
    let s = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    let after = s.rsplit_once(')').map(|(_, r)| r).unwrap_or("");
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Fields 14 and 15 of stat (utime, stime), counted from `state` (field 3).
    (ticks(11) + ticks(12)) / 100.0
}

/// CLOCK_MONOTONIC now, in seconds (what `perf record -k CLOCK_MONOTONIC`
/// stamps samples with), printed at phase boundaries so a profile can be cut
/// by phase.
fn mono() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: clock_gettime writes one timespec we own.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &mut ts) };
    if rc != 0 {
        return f64::NAN;
    }
    ts.tv_sec as f64 + ts.tv_nsec as f64 / 1e9
}

fn mib(kib: u64) -> u64 {
    kib / 1024
}

fn pct(sorted: &[u64], p: usize) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() - 1) * p).div_ceil(100);
    sorted[i.min(sorted.len() - 1)] as f64 / 1000.0
}

struct E2e {
    /// Batches the collector inserted (its `/metrics`).
    batches: u64,
    run: usize,
    protocol: Protocol,
    secs: f64,
    acked_secs: f64,
    p50_ms: f64,
    p99_ms: f64,
    retries: u64,
    rss_before_mib: u64,
    rss_peak_mib: u64,
    cores: f64,
}

/// The median (the mean of the middle two for an even count); NaN when empty.
fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        len if len % 2 == 1 => v[len / 2],
        len => (v[len / 2 - 1] + v[len / 2]) / 2.0,
    }
}

/// Decode + normalise + row building, as the collector does it, timed on
/// one core: the Rust share of ingest, without the engine.
fn normalize_only(requests: &[bytes::Bytes], rounds: u32, n: u64) -> anyhow::Result<()> {
    let prices = PriceTable::bundled()?;
    let redactors = schemas::redact::TenantRedactors::new(
        &schemas::redact::RedactionConfig::default(),
        &Default::default(),
    )?;
    let ctx = schemas::NormalizeContext::default();
    let t = Instant::now();
    let mut rows = 0usize;
    for _ in 0..rounds {
        for r in requests {
            let req = collector::decode::traces_protobuf(r.clone())?;
            let mut spans = schemas::process_batch(req, None, &ctx, &prices);
            for s in spans.iter_mut() {
                redactors.redact_span(s);
            }
            let batch: Vec<SpanRow> = spans
                .into_iter()
                .map(|s| SpanRow::from_owned(s, Retention::default(), 0))
                .collect();
            rows += batch.len();
        }
    }
    let secs = t.elapsed().as_secs_f64();
    println!(
        "normalised {rows} spans ({} per round) in {secs:.2}s: {:.1} µs per span on one core",
        n,
        secs * 1e6 / rows as f64
    );
    Ok(())
}

/// The ceiling: the same rows, normalised once (not timed), inserted straight
/// into the engine in batches of `batch_rows`, `ceiling_concurrency` at once.
/// Returns rows/s.
async fn ceiling(
    store: &Arc<Store>,
    requests: &[bytes::Bytes],
    args: &Args,
    prices: &PriceTable,
    now_ns: u64,
    n: u64,
) -> anyhow::Result<f64> {
    truncate(store).await?;
    let t = Instant::now();
    let ctx = schemas::NormalizeContext::default();
    let ingested_at_ms = i64::try_from(now_ns / 1_000_000)?;
    let mut rows = Vec::with_capacity(usize::try_from(n)?);
    for r in requests {
        let req = collector::decode::traces_protobuf(r.clone())?;
        for s in schemas::process_batch(req, None, &ctx, prices) {
            rows.push(SpanRow::from_owned(s, Retention::default(), ingested_at_ms));
        }
    }
    let built_secs = t.elapsed().as_secs_f64();
    let mut chunks: Vec<Vec<SpanRow>> = Vec::new();
    while !rows.is_empty() {
        let rest = rows.split_off(rows.len().saturating_sub(args.batch_rows.max(1)));
        chunks.push(rest);
    }
    let k = args.ceiling_concurrency.max(1);
    let mut groups: Vec<Vec<Vec<SpanRow>>> = (0..k).map(|_| Vec::new()).collect();
    for (i, c) in chunks.into_iter().enumerate() {
        groups[i % k].push(c);
    }
    let cpu0 = cpu_secs();
    let m0 = mono();
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for g in groups {
        let store = Arc::clone(store);
        tasks.push(tokio::spawn(async move {
            for chunk in g {
                let mut ins = store.insert::<SpanRow>(tables::SPANS, None).await?;
                for r in &chunk {
                    ins.write(r).await?;
                }
                ins.end().await?;
            }
            anyhow::Ok(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    let ceiling_secs = t0.elapsed().as_secs_f64();
    let ceiling_cores = (cpu_secs() - cpu0) / ceiling_secs;
    let c = count(store).await?;
    if c != n {
        bail!("ceiling: {c} rows visible for {n}");
    }
    let rate = n as f64 / ceiling_secs;
    let parts = parts(store).await?;
    println!(
        "engine ceiling: {n} rows in {ceiling_secs:.2}s ({rate:.0} rows/s; batches of {}, {k} at once; {ceiling_cores:.2} cores busy; rows built in {built_secs:.1}s, not timed), spans table: {parts} [monotonic {:.3}..{:.3}]",
        args.batch_rows,
        m0,
        mono()
    );
    Ok(rate)
}

async fn run(args: Args) -> anyhow::Result<()> {
    let now_ns = u64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)?
            .as_nanos(),
    )?;
    let t = Instant::now();
    let generated = spans::generate(&spans::GenConfig {
        spans: args.spans,
        spans_per_request: args.spans_per_request,
        tenants: args.tenants,
        seed: 42,
        now_ns,
    });
    let n = generated.spans;
    println!(
        "generated {n} spans in {} requests ({} MiB encoded, {:.0} B/span) in {:.1}s",
        generated.requests.len(),
        generated.bytes >> 20,
        generated.bytes as f64 / n as f64,
        t.elapsed().as_secs_f64()
    );
    let requests = Arc::new(generated.requests);
    let grpc_framed = Arc::new(generated.grpc_framed);
    if args.normalize_only > 0 {
        return normalize_only(&requests, args.normalize_only, n);
    }

    let dir = tempfile::Builder::new()
        .prefix("ingest-bench-")
        .tempdir_in(&args.data_dir)?;
    let lib = store::chdb::installed_lib_path().map_err(anyhow::Error::msg)?;
    let store = Store::open(&StoreConfig::Embedded(EmbeddedConfig {
        lib_path: lib,
        data_dir: dir.path().join("data"),
        listen: "127.0.0.1:0".parse()?,
        max_memory_bytes: 2 << 30,
        mark_cache_bytes: 64 << 20,
    }))
    .await
    .context("embedded store starts")?;
    store::migrate::apply(&store, None).await?;
    for sql in &args.setup_sql {
        println!("setup: {sql}");
        store.execute(sql).await?;
    }
    let store = Arc::new(store);
    let prices = Arc::new(PriceTable::bundled()?);
    let rss = RssSampler::start();

    let mut results = Vec::new();
    let mut ceilings: Vec<f64> = Vec::new();
    // (measured run number, or None for a warm-up; protocol)
    let runs: Vec<(Option<usize>, Protocol)> = std::iter::repeat_n(args.protocols[0], args.warmup)
        .map(|p| (None, p))
        .chain(
            (0..args.rounds)
                .flat_map(|_| args.protocols.iter().copied())
                .enumerate()
                .map(|(i, p)| (Some(i), p)),
        )
        .collect();
    for (step, &(measured, protocol)) in runs.iter().enumerate() {
        let run = measured.unwrap_or(step);
        if measured == Some(0) {
            // The ceiling before the first round.
            ceilings.push(ceiling(&store, &requests, &args, &prices, now_ns, n).await?);
        }
        truncate(&store).await?;
        let cfg = collector::CollectorConfig {
            grpc_listen: "127.0.0.1:0".parse()?,
            http_listen: "127.0.0.1:0".parse()?,
            spool_dir: dir.path().join(format!("spool-{step}-{protocol:?}")),
            batch_max_rows: args.batch_rows,
            batch_max_bytes: args.batch_bytes,
            batch_max_age_ms: args.batch_age_ms,
            writer_concurrency: args.writer_concurrency,
            max_concurrent_requests: args.max_requests,
            ..collector::CollectorConfig::default()
        };
        let bound = collector::Collector::bind(&cfg).await?;
        let metrics_addr = bound.http_addr();
        let addr = match protocol {
            Protocol::Http => bound.http_addr(),
            Protocol::Grpc => bound.grpc_addr(),
        };
        let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(bound.serve(Arc::clone(&store), Arc::clone(&prices), async {
            let _ = stop_rx.await;
        }));
        let rss_before = rss.reset();
        let cpu0 = cpu_secs();
        let m0 = mono();
        let t0 = Instant::now();
        let loaded = tokio::time::timeout(
            args.timeout,
            load::run(
                protocol,
                addr,
                Arc::clone(match protocol {
                    Protocol::Http => &requests,
                    Protocol::Grpc => &grpc_framed,
                }),
                args.concurrency,
            ),
        )
        .await
        .context("load timed out")??;
        let acked_secs = t0.elapsed().as_secs_f64();
        let deadline = t0 + args.timeout;
        loop {
            let c = count(&store).await?;
            if c >= n {
                if c > n {
                    bail!("{c} rows for {n} spans sent");
                }
                break;
            }
            if Instant::now() > deadline {
                bail!("only {c} of {n} spans visible after {:?}", args.timeout);
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        let secs = t0.elapsed().as_secs_f64();
        let cores = (cpu_secs() - cpu0) / secs;
        let window = (m0, mono());
        let parts = parts(&store).await?;
        let rss_peak = rss.peak();
        let batches = load::metric(metrics_addr, "loupe_collector_batches_inserted_total").await?;
        let _ = stop_tx.send(());
        task.await??;
        let mut lat = loaded.latencies_us;
        lat.sort_unstable();
        let r = E2e {
            batches,
            run: run + 1,
            protocol,
            secs,
            acked_secs,
            p50_ms: pct(&lat, 50),
            p99_ms: pct(&lat, 99),
            retries: loaded.retries,
            rss_before_mib: mib(rss_before),
            rss_peak_mib: mib(rss_peak),
            cores,
        };
        let label = match measured {
            Some(_) => format!("run {}", r.run),
            None => format!("warm-up {} (not in the table)", step + 1),
        };
        println!(
            "{label}, {}: {n} spans visible in {:.2}s ({:.0} spans/s; all acked at {:.2}s), p50 {:.1} ms, p99 {:.1} ms, {} retries, RSS {} → peak {} MiB, {:.2} cores busy, {} batches ({:.0} rows each), spans table: {parts} [monotonic {:.3}..{:.3}]",
            protocol.name(),
            r.secs,
            n as f64 / r.secs,
            r.acked_secs,
            r.p50_ms,
            r.p99_ms,
            r.retries,
            r.rss_before_mib,
            r.rss_peak_mib,
            r.cores,
            r.batches,
            n as f64 / r.batches.max(1) as f64,
            window.0,
            window.1
        );
        if measured.is_none() {
            continue;
        }
        results.push(r);
        if (run + 1) % args.protocols.len() == 0 {
            // The ceiling after each round (and before the first, below):
            // the host's speed drifts by minutes, so each round is compared
            // with the mean of the two ceilings that bracket it.
            ceilings.push(ceiling(&store, &requests, &args, &prices, now_ns, n).await?);
        }
    }
    // Round r's ceiling: the mean of the ceilings before and after it.
    let round_ceiling = |run: usize| -> f64 {
        let r = (run - 1) / args.protocols.len();
        match (ceilings.get(r), ceilings.get(r + 1)) {
            (Some(before), Some(after)) => (before + after) / 2.0,
            _ => f64::NAN,
        }
    };
    let hwm_e2e = status_kib("VmHWM:");
    drop(requests);
    drop(grpc_framed);

    rss.stop.store(true, Relaxed);
    let mut store = store;
    for _ in 0..200 {
        match Arc::try_unwrap(store) {
            Ok(s) => {
                s.close().await;
                break;
            }
            Err(shared) => store = shared,
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }

    println!();
    println!(
        "spans {n}, concurrency {}, {} spans/request, {} tenants, batch_max_rows {}, batch_max_age_ms {}, writer_concurrency {}, max_concurrent_requests {}",
        args.concurrency,
        args.spans_per_request,
        args.tenants,
        args.batch_rows,
        args.batch_age_ms,
        args.writer_concurrency,
        args.max_requests
    );
    println!();
    println!(
        "| run | transport | spans/s end to end | engine ceiling rows/s (mean of the two around its round) | ratio | p50 ms | p99 ms | retries | CPU cores busy | RSS before → peak (MiB) |"
    );
    println!("|---:|---|---:|---:|---:|---:|---:|---:|---:|---|");
    for r in &results {
        let rate = n as f64 / r.secs;
        let ceiling = round_ceiling(r.run);
        println!(
            "| {} | {} | {rate:.0} | {ceiling:.0} | {:.0} % | {:.1} | {:.1} | {} | {:.2} | {} → {} |",
            r.run,
            r.protocol.name(),
            100.0 * rate / ceiling,
            r.p50_ms,
            r.p99_ms,
            r.retries,
            r.cores,
            r.rss_before_mib,
            r.rss_peak_mib
        );
    }
    let rates: Vec<f64> = results.iter().map(|r| n as f64 / r.secs).collect();
    let ratios: Vec<f64> = results
        .iter()
        .zip(&rates)
        .map(|(r, rate)| rate / round_ceiling(r.run))
        .collect();
    println!();
    println!(
        "medians: end to end {:.0} spans/s, ceiling {:.0} rows/s, ratio {:.1} % (runs: {} of {} at ≥ 40,000 spans/s, {} of {} at ≥ 75 %)",
        median(&rates),
        median(&ceilings),
        100.0 * median(&ratios),
        rates.iter().filter(|&&r| r >= 40_000.0).count(),
        rates.len(),
        ratios.iter().filter(|&&r| r >= 0.75).count(),
        ratios.len()
    );
    println!();
    println!(
        "process VmHWM: {} MiB (the engine, the pre-encoded requests and, from the first ceiling on, the pages its rows took, which the allocator keeps)",
        mib(hwm_e2e)
    );
    Ok(())
}
