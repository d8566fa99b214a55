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
async fn close_store(store: Arc<Store>) {
    if !Store::close_shared(store, std::time::Duration::from_secs(10)).await {
        tracing::warn!("the store is still in use at exit; closing without a clean shutdown");
    }
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
    /// Every role; `demo`: populate an empty store with demo traffic once ready.
    All {
        demo: bool,
    },
    Collector,
    /// The dashboard and the alert evaluator.
    Dashboard,
    Shim,
}

impl Roles {
    fn collector(self) -> bool {
        matches!(self, Roles::All { .. } | Roles::Collector)
    }
    fn dashboard(self) -> bool {
        matches!(self, Roles::All { .. } | Roles::Dashboard)
    }
    fn shim(self) -> bool {
        matches!(self, Roles::All { .. } | Roles::Shim)
    }
}

pub async fn up(cfg: &Config, roles: Roles) -> anyhow::Result<ExitCode> {
    let started = std::time::Instant::now();
    let prices = Arc::new(cfg.prices()?);
    // The shim alone needs no store: it reaches the collector over OTLP.
    if roles == Roles::Shim {
        serve_roles(cfg, roles, None, prices, started).await?;
        return Ok(ExitCode::SUCCESS);
    }
    let store = open_store(cfg).await?;
    let result = serve_roles(cfg, roles, Some(Arc::clone(&store)), prices, started).await;
    close_store(store).await;
    result.map(|_| ExitCode::SUCCESS)
}

async fn serve_roles(
    cfg: &Config,
    roles: Roles,
    store: Option<Arc<Store>>,
    prices: Arc<schemas::pricing::PriceTable>,
    started: std::time::Instant,
) -> anyhow::Result<()> {
    // When the collector requires keys, the in-process shim exports with a
    // forwarder key made for this run (its spans carry their own tenants).
    let mut collector_cfg = cfg.collector.clone();
    let mut shim_headers = cfg.shim.otlp_headers.clone();
    if roles.collector()
        && roles.shim()
        && !collector_cfg.keys.is_empty()
        && !shim_headers.contains_key("authorization")
    {
        let mut raw = [0u8; 32];
        rand::fill(&mut raw);
        let key = schemas::ingest_keys::new_key(raw);
        collector_cfg.keys.push(schemas::ingest_keys::KeyEntry {
            tenant: "loupe-shim".into(),
            sha256: schemas::ingest_keys::hash_key(&key),
            name: "in-process shim".into(),
            forwarder: true,
        });
        shim_headers.insert("authorization".into(), format!("Bearer {key}"));
    }
    // Bind everything first: a port in use fails before anything runs.
    let collector = match roles.collector() {
        true => Some(collector::Collector::bind(&collector_cfg).await?),
        false => None,
    };
    let dashboard = match roles.dashboard() {
        true => Some(dashboard::Dashboard::bind(&cfg.dashboard).await?),
        false => None,
    };
    let shim = match roles.shim() {
        true => {
            let mut shim_cfg = cfg.shim.clone();
            shim_cfg.otlp_headers = shim_headers;
            // In one process the shim exports to this collector, wherever it listens.
            if let Some(c) = &collector
                && shim_cfg.otlp_endpoint == sdk_shim::ShimConfig::default().otlp_endpoint
            {
                shim_cfg.otlp_endpoint = format!("http://{}", c.http_addr());
            }
            Some(sdk_shim::Shim::bind(&shim_cfg).await?)
        }
        false => None,
    };
    let (stop_tx, stop) = Stop::new();
    let mut tasks: Vec<(&'static str, RoleTask)> = Vec::new();
    if let Some(store) = &store {
        say(&format!("loupe: {}", describe_store(cfg, store)));
    }
    let otlp_http = collector
        .as_ref()
        .map(|c| format!("http://{}", c.http_addr()));
    if let (Some(c), Some(store)) = (collector, &store) {
        say(&format!(
            "loupe: OTLP gRPC on {}, OTLP HTTP on http://{} (metrics at /metrics)",
            c.grpc_addr(),
            c.http_addr()
        ));
        let serve = c.serve(Arc::clone(store), prices, stop.clone().wait());
        tasks.push((
            "collector",
            tokio::spawn(async move { serve.await.map_err(anyhow::Error::from) }),
        ));
    }
    if let (Some(d), Some(store)) = (dashboard, &store) {
        let (evaluator, handle) = alerts::Evaluator::new(cfg.alerts.clone(), Arc::clone(store))?;
        say(&format!("loupe: dashboard on http://{}", d.local_addr()?));
        let metrics = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let handle = handle.clone();
                async move {
                    (
                        [("content-type", "text/plain; version=0.0.4")],
                        handle.metrics(),
                    )
                }
            }),
        );
        let serve = d.serve_with(Arc::clone(store), metrics, stop.clone().wait());
        tasks.push((
            "dashboard",
            tokio::spawn(async move { serve.await.map_err(anyhow::Error::from) }),
        ));
        let evaluate = evaluator.run(stop.clone().wait());
        tasks.push((
            "alert evaluator",
            tokio::spawn(async move {
                evaluate.await;
                Ok(())
            }),
        ));
    }
    if let Some(s) = shim {
        say(&format!(
            "loupe: shim on http://{} (OpenAI base URL http://{}/v1, Anthropic base URL http://{})",
            s.addr(),
            s.addr(),
            s.addr()
        ));
        let serve = s.serve(stop.clone().wait());
        tasks.push((
            "shim",
            tokio::spawn(async move { serve.await.map_err(anyhow::Error::from) }),
        ));
    }
    say(&format!(
        "loupe: ready in {:.1}s; Ctrl-C stops",
        started.elapsed().as_secs_f64()
    ));
    if let (Roles::All { demo: true }, Some(store), Some(endpoint)) = (roles, &store, otlp_http) {
        let store = Arc::clone(store);
        tokio::spawn(async move {
            if let Err(e) = populate(&store, &endpoint).await {
                tracing::warn!(error = %e, "demo traffic failed");
            }
        });
    } else if matches!(roles, Roles::All { demo: false }) {
        say("loupe: to see demo data, run `loupe demo` in another terminal");
    }
    drop(store);
    run_until_stopped(tasks, stop_tx).await
}

/// Sends the demo workload to this process's collector when the store is empty.
async fn populate(store: &Store, endpoint: &str) -> anyhow::Result<()> {
    let spans: u64 = store
        .reader()
        .query("SELECT count() FROM loupe.spans")
        .fetch_one()
        .await?;
    if spans > 0 {
        say(&format!(
            "loupe: the store already holds {spans} spans; no demo traffic sent"
        ));
        return Ok(());
    }
    say("loupe: sending 14 days of demo traffic (3 tenants) ...");
    let summary = demo::run(&demo::DemoConfig {
        endpoint: endpoint.to_string(),
        workload: demo::WorkloadConfig::default(),
        in_flight: 2,
        key: None,
    })
    .await?;
    say(&format!(
        "loupe: demo traffic sent: {} spans; open the dashboard",
        summary.spans
    ));
    Ok(())
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
        (done, index, _) = futures_util::future::select_all(rest.iter_mut()) => {
            let name = names[index];
            first_error = Some(match done {
                Ok(Ok(())) => anyhow::anyhow!("the {name} stopped unexpectedly"),
                Ok(Err(e)) => e.context(format!("the {name} failed")),
                Err(e) => anyhow::anyhow!("the {name} crashed: {e}"),
            });
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

pub async fn demo(
    endpoint: &str,
    days: u64,
    spans: Option<u64>,
    key: Option<String>,
) -> anyhow::Result<ExitCode> {
    let cfg = demo::DemoConfig {
        endpoint: endpoint.to_string(),
        workload: demo::WorkloadConfig {
            days: days.max(1),
            max_spans: spans,
            ..Default::default()
        },
        in_flight: 4,
        key,
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
    let hash = schemas::ingest_keys::hash_key(&key);
    let tenant = toml_str(tenant);
    say("config (add to loupe.toml; the [[shim.keys]] block if apps call through the shim):");
    say(&format!(
        "[[collector.keys]]\ntenant = {tenant}\nsha256 = \"{hash}\"\n\n[[shim.keys]]\ntenant = {tenant}\nsha256 = \"{hash}\""
    ));
    Ok(ExitCode::SUCCESS)
}

/// `s` as a TOML string literal, escaped.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", u32::from(c))),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Shortest password `loupe user` accepts.
const MIN_PASSWORD_CHARS: usize = 12;

pub fn new_user(
    name: &str,
    role: dashboard::auth::Role,
    tenants: &[String],
    mut input: impl std::io::BufRead,
) -> anyhow::Result<ExitCode> {
    use dashboard::auth::Role;
    if name.trim().is_empty() {
        anyhow::bail!("--name is empty");
    }
    if role == Role::Viewer && tenants.is_empty() {
        anyhow::bail!("a viewer needs at least one --tenant");
    }
    let mut line = String::new();
    input
        .read_line(&mut line)
        .context("cannot read the password from stdin")?;
    let password = line.trim_end_matches(['\r', '\n']);
    if password.chars().count() < MIN_PASSWORD_CHARS {
        anyhow::bail!(
            "the password (first line of stdin) must have at least {MIN_PASSWORD_CHARS} characters"
        );
    }
    let hash = dashboard::auth::hash_password(password).map_err(anyhow::Error::msg)?;
    let mut block = format!(
        "[[dashboard.auth.users]]\nname = {}\npassword_hash = \"{hash}\"\nrole = \"{}\"",
        toml_str(name),
        role.as_str()
    );
    if role == Role::Viewer {
        let list: Vec<String> = tenants.iter().map(|t| toml_str(t)).collect();
        block.push_str(&format!("\ntenants = [{}]", list.join(", ")));
    }
    say("config (add to loupe.toml):");
    say(&block);
    Ok(ExitCode::SUCCESS)
}
