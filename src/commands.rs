//! The commands: each opens what it needs, does one job, and closes the store
//! (an embedded engine must be shut down before the process exits).

use std::io::Write;
use std::process::ExitCode;

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

pub async fn up(cfg: &Config) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let store = Store::open(&cfg.store_config()).await?;
    let result = async {
        let applied = store::migrate::apply(&store, None).await?;
        if !applied.applied.is_empty() {
            tracing::info!(versions = ?applied.applied, "migrations applied");
        }
        match store.engine_version() {
            Some(v) => say(&format!(
                "loupe: embedded ClickHouse {v} serving at {} (data: {})",
                store.url(),
                cfg.storage.data_dir.display()
            )),
            None => say(&format!("loupe: using ClickHouse at {}", store.url())),
        }
        say(&format!(
            "loupe: ready in {:.1}s; Ctrl-C stops",
            started.elapsed().as_secs_f64()
        ));
        shutdown_signal().await;
        tracing::info!("stopping");
        anyhow::Ok(())
    }
    .await;
    store.close().await;
    result.map(|_| ExitCode::SUCCESS)
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
