//! Wiring of the `loupe` binary: configuration in, roles started, clean stop.
//! Each role lives in its own crate; this crate only connects them.

pub mod cli;
pub mod commands;
pub mod config;

use std::collections::HashMap;
use std::process::ExitCode;

use anyhow::Context;

use cli::{Cli, Command};
use config::{Config, Overrides};

/// Logs go to stderr, filtered by `LOUPE_LOG` (default `info`).
pub fn init_logging(env: &HashMap<String, String>) {
    let filter = env
        .get(config::env::LOG)
        .cloned()
        .unwrap_or_else(|| "info".to_string());
    let filter = tracing_subscriber::EnvFilter::try_new(&filter)
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_target(false)
        .try_init();
}

/// Runs one command to completion.
pub fn run(cli: Cli, env: HashMap<String, String>) -> anyhow::Result<ExitCode> {
    let overrides = Overrides {
        data_dir: cli.data_dir.clone(),
        clickhouse_url: cli.clickhouse_url.clone(),
    };
    let cfg = Config::load(cli.config.as_deref(), &env, &overrides)?;
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .context("cannot start the async runtime")?;
    runtime.block_on(async move {
        match cli.command {
            Command::Up { demo } => commands::up(&cfg, commands::Roles::All { demo }).await,
            Command::Collector => commands::up(&cfg, commands::Roles::Collector).await,
            Command::Migrate { cluster, print } => {
                commands::migrate(&cfg, cluster.as_deref(), print).await
            }
            Command::Sql {
                query,
                format,
                write,
            } => commands::sql(&cfg, &query, &format, write).await,
            Command::Key { tenant } => commands::new_key(&tenant),
            Command::User {
                name,
                role,
                tenants,
            } => commands::new_user(&name, role, &tenants, std::io::stdin().lock()),
            Command::Demo {
                endpoint,
                days,
                spans,
                key,
            } => commands::demo(&endpoint, days, spans, key).await,
            Command::Dashboard | Command::Shim => {
                anyhow::bail!(
                    "this role is not available in this build yet; `loupe up` runs what exists"
                )
            }
        }
    })
}
