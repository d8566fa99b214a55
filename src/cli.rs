//! The command line: subcommands and their flags (clap). No behaviour here.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "loupe",
    version,
    about = "LLM observability: OTLP collector, cost dashboard, provider shim"
)]
pub struct Cli {
    /// Config file (default: ./loupe.toml when present; also LOUPE_CONFIG).
    #[arg(long, global = true)]
    pub config: Option<PathBuf>,
    /// Data directory of the embedded engine (also LOUPE_DATA_DIR).
    #[arg(long, global = true)]
    pub data_dir: Option<PathBuf>,
    /// Use this ClickHouse server instead of the embedded engine (also LOUPE_CLICKHOUSE_URL).
    #[arg(long, global = true)]
    pub clickhouse_url: Option<String>,
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Collector, dashboard, shim and alerts in one process (embedded ClickHouse unless a server URL is given).
    Up {
        /// Once ready, send two weeks of demo traffic if the store holds no spans yet.
        #[arg(long)]
        demo: bool,
    },
    /// The OTLP collector alone, against the configured store.
    Collector,
    /// The dashboard alone, against the configured store.
    Dashboard,
    /// The provider proxy alone.
    Shim,
    /// Applies pending migrations (idempotent).
    Migrate {
        /// Render the migrations for this ClickHouse cluster (ON CLUSTER, Replicated*, Distributed).
        #[arg(long)]
        cluster: Option<String>,
        /// Print the rendered migrations instead of applying them.
        #[arg(long)]
        print: bool,
    },
    /// Sends a realistic demo workload through OTLP to a running Loupe.
    Demo {
        /// The collector's OTLP/HTTP address.
        #[arg(long, default_value = "http://127.0.0.1:4318")]
        endpoint: String,
        /// Days of history to generate.
        #[arg(long, default_value_t = 14)]
        days: u64,
        /// Generate about this many spans instead (for benchmarks), spread over the same days.
        #[arg(long)]
        spans: Option<u64>,
        /// Ingest key, when the collector requires one (also LOUPE_KEY).
        #[arg(long, env = "LOUPE_KEY")]
        key: Option<String>,
    },
    /// Makes a new ingest API key for a tenant and prints it with its config line.
    Key {
        /// The tenant the key writes as.
        #[arg(long)]
        tenant: String,
    },
    /// Makes a dashboard user: reads the password from stdin (one line) and
    /// prints the user's config block with its argon2id hash.
    User {
        /// The name the user logs in with.
        #[arg(long)]
        name: String,
        /// admin, finance or viewer.
        #[arg(long)]
        role: dashboard::auth::Role,
        /// A tenant a viewer may see (repeat for several).
        #[arg(long = "tenant")]
        tenants: Vec<String>,
    },
    /// Runs one SQL statement against the store and prints the result.
    Sql {
        /// The statement.
        query: String,
        /// Any ClickHouse output format (default PrettyCompactMonoBlock).
        #[arg(long, default_value = "PrettyCompactMonoBlock")]
        format: String,
        /// Allow statements that write (read-only otherwise).
        #[arg(long)]
        write: bool,
    },
}
