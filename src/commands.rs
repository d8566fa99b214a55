//! The commands: each opens what it needs, does one job, and closes the store
//! (an embedded engine must be shut down before the process exits).

use std::io::Write;
use std::process::ExitCode;
use std::sync::Arc;

use anyhow::Context;
use store::{Store, StoreConfig};

use crate::config::Config;

/// Writes to stdout: the binary's one place that prints.
#[allow(clippy::print_stdout)]
fn say(line: &str) {
    println!("{line}");
}

/// Waits for Ctrl-C or SIGTERM.
async fn shutdown_signal() {
    let ctrl_c = tokio::signal::ctrl_c();
    #[cfg(unix)]
    {
        let mut term =
            match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                Ok(t) => t,
                Err(_) => {
                    let _ = ctrl_c.await;
                    return;
                }
            };
        tokio::select! {
            _ = ctrl_c => {},
            _ = term.recv() => {},
        }
    }
    #[cfg(not(unix))]
    {
        let _ = ctrl_c.await;
    }
}

/// A shutdown signal every role can wait on.
#[derive(Clone)]
struct Stop(tokio::sync::watch::Receiver<bool>);

impl Stop {
    fn new() -> (tokio::sync::watch::Sender<bool>, Self) {
        let (tx, rx) = tokio::sync::watch::channel(false);
        (tx, Self(rx))
    }

    async fn wait(mut self) {
        let _ = self.0.wait_for(|stopped| *stopped).await;
    }
}

/// Opens and migrates the store every role of this process shares.
async fn open_store(cfg: &Config) -> anyhow::Result<Arc<Store>> {
    let store = Store::open(&cfg.store_config()).await?;
    match store::migrate::apply(&store, None).await {
        Ok(applied) => {
            if !applied.applied.is_empty() {
                tracing::info!(versions = ?applied.applied, "migrations applied");
            }
            Ok(Arc::new(store))
        }
        Err(e) => {
            store.close().await;
            Err(e.into())
        }
    }
}

/// Closes the store once every role has let go of it (an embedded engine
/// must be shut down before the process exits).
async fn close_store(mut store: Arc<Store>) {
    for _ in 0..200 {
        match Arc::try_unwrap(store) {
            Ok(s) => return s.close().await,
            Err(shared) => store = shared,
        }
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
    }
    tracing::warn!("the store is still in use at exit; closing without a clean shutdown");
}

fn describe_store(cfg: &Config, store: &Store) -> String {
    match store.engine_version() {
        Some(v) => format!(
            "embedded ClickHouse {v} at {} (data: {})",
            store.url(),
            cfg.storage.data_dir.display()
        ),
        None => format!("ClickHouse at {}", store.url()),
    }
}

/// The roles `up` runs, chosen by the command.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Roles {
    All,
    Collector,
}

pub async fn up(cfg: &Config, roles: Roles) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let prices = Arc::new(cfg.prices()?);
    let store = open_store(cfg).await?;
    let result = serve_roles(cfg, roles, Arc::clone(&store), prices, started).await;
    close_store(store).await;
    result.map(|_| ExitCode::SUCCESS)
}

async fn serve_roles(
    cfg: &Config,
    roles: Roles,
    store: Arc<Store>,
    prices: Arc<schemas::pricing::PriceTable>,
    started: std::time::Instant,
) -> anyhow::Result<()> {
    // Bind everything first: a port in use fails before anything runs.
    let collector = collector::Collector::bind(&cfg.collector).await?;
    let (stop_tx, stop) = Stop::new();
    say(&format!("loupe: {}", describe_store(cfg, &store)));
    say(&format!(
        "loupe: OTLP gRPC on {}, OTLP HTTP on http://{} (metrics at /metrics)",
        collector.grpc_addr(),
        collector.http_addr()
    ));
    let _ = roles;
    let mut tasks: Vec<(&'static str, RoleTask)> = Vec::new();
    tasks.push((
        "collector",
        tokio::spawn({
            let serve = collector.serve(Arc::clone(&store), prices, stop.clone().wait());
            async move { serve.await.map_err(anyhow::Error::from) }
        }),
    ));
    drop(store);
    say(&format!(
        "loupe: ready in {:.1}s; Ctrl-C stops",
        started.elapsed().as_secs_f64()
    ));
    run_until_stopped(tasks, stop_tx).await
}

type RoleTask = tokio::task::JoinHandle<anyhow::Result<()>>;

/// Waits for Ctrl-C/SIGTERM, or for a role to end on its own (an error: the
/// others are stopped too); then stops every role and waits for each to
/// finish its drain.
async fn run_until_stopped(
    tasks: Vec<(&'static str, RoleTask)>,
    stop: tokio::sync::watch::Sender<bool>,
) -> anyhow::Result<()> {
    let (names, handles): (Vec<_>, Vec<_>) = tasks.into_iter().unzip();
    let mut first_error = None;
    let mut rest = handles;
    tokio::select! {
        _ = shutdown_signal() => tracing::info!("stopping"),
        (done, index, others) = futures_util::future::select_all(rest.iter_mut()) => {
            let name = names[index];
            first_error = Some(match done {
                Ok(Ok(())) => anyhow::anyhow!("the {name} stopped unexpectedly"),
                Ok(Err(e)) => e.context(format!("the {name} failed")),
                Err(e) => anyhow::anyhow!("the {name} crashed: {e}"),
            });
            let _ = others;
        }
    }
    let _ = stop.send(true);
    for (name, handle) in names.into_iter().zip(rest) {
        if handle.is_finished() && first_error.is_some() {
            continue;
        }
        match handle.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(role = name, error = %e, "role ended with an error"),
            Err(e) => tracing::warn!(role = name, error = %e, "role crashed"),
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(()),
    }
}

/// A store for a one-shot client command: a server, a running Loupe's
/// embedded engine, or (when none runs) the embedded engine opened here.
async fn open_for_client(cfg: &Config) -> anyhow::Result<Store> {
    if let StoreConfig::Embedded(e) = cfg.store_config()
        && let Some(store) = Store::attach(&e.data_dir).await?
    {
        return Ok(store);
    }
    Ok(Store::open(&cfg.store_config()).await?)
}

pub async fn migrate(cfg: &Config, cluster: Option<&str>, print: bool) -> anyhow::Result<ExitCode> {
    if print {
        let name = cluster.context("--print renders for a cluster: give --cluster NAME")?;
        say(&store::migrate::render_cluster_script(name));
        return Ok(ExitCode::SUCCESS);
    }
    let store = open_for_client(cfg).await?;
    let result = store::migrate::apply(&store, cluster).await;
    store.close().await;
    let applied = result?;
    say(&format!(
        "loupe: {} migration(s) applied, {} already applied",
        applied.applied.len(),
        applied.already.len()
    ));
    Ok(ExitCode::SUCCESS)
}

pub async fn sql(cfg: &Config, query: &str, format: &str, write: bool) -> anyhow::Result<ExitCode> {
    let store = open_for_client(cfg).await?;
    let result = async {
        let client = if write {
            store.client()
        } else {
            store.reader()
        };
        let mut cursor = client.query_raw(query).fetch_bytes(format)?;
        let mut out = std::io::stdout().lock();
        while let Some(chunk) = cursor.next().await? {
            out.write_all(&chunk)?;
        }
        out.flush()?;
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result.map(|_| ExitCode::SUCCESS)
}

pub async fn demo(endpoint: &str, days: u64, spans: Option<u64>) -> anyhow::Result<ExitCode> {
    let cfg = demo::DemoConfig {
        endpoint: endpoint.to_string(),
        workload: demo::WorkloadConfig {
            days: days.max(1),
            max_spans: spans,
            ..Default::default()
        },
        in_flight: 4,
    };
    say(&format!(
        "loupe demo: sending {days} days of traffic to {endpoint} ..."
    ));
    let summary = demo::run(&cfg).await?;
    say(&format!(
        "loupe demo: sent {} spans in {} requests in {:.1}s",
        summary.spans,
        summary.requests,
        summary.elapsed.as_secs_f64()
    ));
    Ok(ExitCode::SUCCESS)
}

pub fn new_key(tenant: &str) -> anyhow::Result<ExitCode> {
    let mut raw = [0u8; 32];
    rand::fill(&mut raw);
    let key = schemas::ingest_keys::new_key(raw);
    say(&format!(
        "key (give it to the service; it is not stored): {key}"
    ));
    say("config (add to loupe.toml):");
    say(&format!(
        "[[ingest.keys]]\ntenant = {tenant:?}\nsha256 = \"{}\"",
        schemas::ingest_keys::hash_key(&key)
    ));
    Ok(ExitCode::SUCCESS)
}
