//! `shim-bench`: direct calls vs calls through the shim (capture on, spans exported
//! to a null OTLP receiver), non-streaming and streaming, at fixed concurrency;
//! added latency p50/p99, requests/s, and the shim's RSS. See bench/README.md.
//!
//! `shim-bench run [--concurrency N] [--seconds S] [--mock-port P] [--target NAME=URL]...`
//! starts the mock and the shim as child processes of this binary (so the shim's RSS
//! is its own), then loads each target. `--target` adds other proxies (their chat
//! completions URL, set up in front of the mock on `--mock-port`) side by side.

mod load;
mod mock;

use std::io::Write;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, bail};

const JSON_BODY: &str =
    r#"{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Say hello"}]}"#;
const STREAM_BODY: &str =
    r#"{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"Say hello"}]}"#;

fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    match args.first().map(String::as_str) {
        Some("mock") => rt.block_on(serve_mock(args.get(1).map(String::as_str).unwrap_or("0"))),
        Some("shim") => rt.block_on(serve_shim(&args[1..])),
        Some("run") => rt.block_on(run(&args[1..])),
        _ => bail!(
            "usage: shim-bench run [--concurrency N] [--seconds S] [--mock-port P] [--target NAME=URL]..."
        ),
    }
}

/// Child: the mock upstream + null OTLP receiver on `port` (0: any); prints its port.
async fn serve_mock(port: &str) -> anyhow::Result<()> {
    let listener = tokio::net::TcpListener::bind(format!("127.0.0.1:{port}")).await?;
    let port = listener.local_addr()?.port();
    writeln!(std::io::stdout(), "{port}")?;
    std::io::stdout().flush()?;
    axum::serve(listener, mock::router()).await?;
    Ok(())
}

/// Child: the shim in front of the mock at `args[0]`; prints its port on stdout.
async fn serve_shim(args: &[String]) -> anyhow::Result<()> {
    let mock = args.first().context("mock port")?;
    let cfg = sdk_shim::ShimConfig {
        listen: "127.0.0.1:0".parse()?,
        openai_base_url: format!("http://127.0.0.1:{mock}/v1"),
        otlp_endpoint: format!("http://127.0.0.1:{mock}"),
        ..sdk_shim::ShimConfig::default()
    };
    let bound = sdk_shim::Shim::bind(&cfg).await?;
    writeln!(std::io::stdout(), "{}", bound.addr().port())?;
    std::io::stdout().flush()?;
    bound.serve(std::future::pending()).await?;
    Ok(())
}

struct Kid(Child);

impl Drop for Kid {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn spawn_child(args: &[&str]) -> anyhow::Result<(Kid, String)> {
    let exe = std::env::current_exe()?;
    let mut child = Command::new(exe)
        .args(args)
        .stdout(Stdio::piped())
        .spawn()?;
    let mut out = child.stdout.take().context("child stdout")?;
    let kid = Kid(child);
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while std::io::Read::read(&mut out, &mut byte)? == 1 && byte[0] != b'\n' {
        line.push(byte[0]);
    }
    Ok((kid, String::from_utf8(line)?.trim().to_owned()))
}

fn rss_kib(pid: u32) -> (u64, u64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .and_then(|v| v.split_whitespace().next())
            .and_then(|v| v.parse().ok())
            .unwrap_or(0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

async fn run(args: &[String]) -> anyhow::Result<()> {
    let mut concurrency = 32usize;
    let mut seconds = 10u64;
    let mut extra: Vec<(String, String)> = Vec::new();
    let mut mock_port = "0".to_owned();
    let mut it = args.iter();
    while let Some(a) = it.next() {
        match a.as_str() {
            "--concurrency" => concurrency = it.next().context("--concurrency N")?.parse()?,
            "--seconds" => seconds = it.next().context("--seconds S")?.parse()?,
            "--mock-port" => mock_port = it.next().context("--mock-port P")?.clone(),
            "--target" => {
                let t = it.next().context("--target NAME=URL")?;
                let (n, u) = t.split_once('=').context("--target NAME=URL")?;
                extra.push((n.to_owned(), u.to_owned()));
            }
            other => bail!("unknown argument {other}"),
        }
    }
    let (_mock, mock_port) = spawn_child(&["mock", &mock_port])?;
    let (shim, shim_port) = spawn_child(&["shim", &mock_port])?;
    let shim_pid = shim.0.id();
    let mut targets = vec![
        (
            "direct".to_owned(),
            format!("http://127.0.0.1:{mock_port}/v1/chat/completions"),
        ),
        (
            "shim".to_owned(),
            format!("http://127.0.0.1:{shim_port}/v1/chat/completions"),
        ),
    ];
    targets.extend(extra);
    let duration = Duration::from_secs(seconds);
    let mut out = std::io::stdout();
    writeln!(
        out,
        "concurrency {concurrency}, {seconds} s per run, {} cores",
        std::thread::available_parallelism().map_or(0, |n| n.get())
    )?;
    writeln!(
        out,
        "| mode | target | requests | errors | req/s | p50 ms | p99 ms | added p50 ms | added p99 ms |"
    )?;
    writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|")?;
    for (mode, body) in [("json", JSON_BODY), ("stream", STREAM_BODY)] {
        let mut base: Option<(Duration, Duration)> = None;
        for (name, url) in &targets {
            let o = load::run(url, body, concurrency, duration).await?;
            let (p50, p99) = (o.quantile(0.50), o.quantile(0.99));
            let ms = |d: Duration| d.as_secs_f64() * 1e3;
            let added = match base {
                None => {
                    base = Some((p50, p99));
                    ("–".to_owned(), "–".to_owned())
                }
                Some((b50, b99)) => (
                    format!("{:.3}", ms(p50) - ms(b50)),
                    format!("{:.3}", ms(p99) - ms(b99)),
                ),
            };
            writeln!(
                out,
                "| {mode} | {name} | {} | {} | {:.0} | {:.3} | {:.3} | {} | {} |",
                o.requests,
                o.errors,
                o.rps(),
                ms(p50),
                ms(p99),
                added.0,
                added.1
            )?;
        }
    }
    let (rss, hwm) = rss_kib(shim_pid);
    writeln!(
        out,
        "\nshim RSS after the runs: {} MiB (peak {} MiB)",
        rss / 1024,
        hwm / 1024
    )?;
    Ok(())
}
