//! The dashboard as a server: binding fails early on a busy port, and a bound
//! dashboard serves over TCP until its shutdown future completes.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::Arc;

use dashboard::{Dashboard, DashboardConfig, ServeError};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

#[tokio::test]
async fn a_busy_port_is_an_error_at_bind_time() {
    let taken = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let cfg = DashboardConfig {
        listen: taken.local_addr().unwrap(),
        ..Default::default()
    };
    match Dashboard::bind(&cfg).await {
        Err(ServeError::Bind { addr, .. }) => assert_eq!(addr, cfg.listen),
        other => panic!("expected a bind error, got {:?}", other.err()),
    }
    let mut bad = DashboardConfig::default();
    bad.budgets.insert("acme".into(), "a lot".into());
    assert!(matches!(
        Dashboard::bind(&bad).await,
        Err(ServeError::Config(_))
    ));
}

#[tokio::test]
async fn a_bound_dashboard_serves_until_shutdown() {
    let dir = tempfile::tempdir().unwrap();
    let store = Arc::new(common::migrated_store(dir.path()).await);
    let cfg = DashboardConfig {
        listen: "127.0.0.1:0".parse().unwrap(),
        ..Default::default()
    };
    let bound = Dashboard::bind(&cfg).await.unwrap();
    let addr = bound.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(bound.serve(Arc::clone(&store), async {
        let _ = stopped.await;
    }));
    let mut conn = tokio::net::TcpStream::connect(addr).await.unwrap();
    conn.write_all(b"GET /alerts HTTP/1.1\r\nHost: loupe\r\nConnection: close\r\n\r\n")
        .await
        .unwrap();
    let mut reply = String::new();
    conn.read_to_string(&mut reply).await.unwrap();
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(
        reply
            .to_ascii_lowercase()
            .contains("content-security-policy")
    );
    stop.send(()).unwrap();
    server.await.unwrap().unwrap();
    Arc::try_unwrap(store)
        .ok()
        .expect("server released the store")
        .close()
        .await;
}
