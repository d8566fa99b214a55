//! The dashboard over an embedded store seeded with a realistic dataset, for
//! the browser tests and for looking at the pages by hand:
//!
//! ```text
//! cargo run -p dashboard --example seeded_dashboard -- --port 0 [--traces-per-day 6] [--big-trace 2000]
//! ```
//!
//! Prints `listening on http://ADDR` once ready; on SIGTERM or Ctrl-C it stops
//! serving and shuts the embedded engine down (chDB must be closed before the
//! process exits).
#![allow(clippy::unwrap_used, clippy::expect_used)]

#[path = "../tests/common/mod.rs"]
mod common;

use std::net::SocketAddr;
use std::sync::Arc;

use dashboard::{Dashboard, DashboardConfig};

fn arg(name: &str, default: u64) -> u64 {
    let args: Vec<String> = std::env::args().collect();
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .map(|v| {
            v.parse()
                .unwrap_or_else(|_| panic!("{name} takes a number"))
        })
        .unwrap_or(default)
}

#[tokio::main]
async fn main() {
    let port = u16::try_from(arg("--port", 0)).expect("--port fits in u16");
    let per_day = arg("--traces-per-day", 6);
    let big = arg("--big-trace", 2000);
    let dir = tempfile::tempdir().expect("temp dir");
    let store = common::migrated_store(dir.path()).await;
    let spans = common::seed::build(common::seed::now_ns(), per_day, big);
    common::seed::insert(&store, &spans).await;

    let mut cfg = DashboardConfig {
        listen: SocketAddr::from(([127, 0, 0, 1], port)),
        ..Default::default()
    };
    cfg.budgets.insert("acme".into(), "25.00".into());
    cfg.budgets.insert("globex".into(), "0.50".into());
    let bound = Dashboard::bind(&cfg).await.expect("bind");
    let addr = bound.local_addr().expect("local addr");
    #[allow(clippy::print_stdout)]
    {
        println!("listening on http://{addr}");
    }
    let store = Arc::new(store);
    let shutdown = async {
        let mut term = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate())
            .expect("SIGTERM handler");
        tokio::select! {
            _ = term.recv() => {}
            _ = tokio::signal::ctrl_c() => {}
        }
    };
    bound
        .serve(Arc::clone(&store), shutdown)
        .await
        .expect("serve");
    match Arc::try_unwrap(store) {
        Ok(store) => store.close().await,
        Err(_) => panic!("the store is still shared after the server stopped"),
    }
}
