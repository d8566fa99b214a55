//! End-to-end tests of the `loupe` binary on the embedded engine: start-up,
//! `loupe sql` and `loupe migrate` against a running instance, persistence
//! across a clean stop and a SIGKILL, and one clear line for bad configuration.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_loupe");

fn loupe(data: &Path) -> Command {
    let mut c = Command::new(BIN);
    c.arg("--data-dir")
        .arg(data)
        .env("LOUPE_ENGINE_LISTEN", "127.0.0.1:0")
        .env("LOUPE_COLLECTOR_GRPC_LISTEN", "127.0.0.1:0")
        .env("LOUPE_COLLECTOR_HTTP_LISTEN", "127.0.0.1:0")
        .env("LOUPE_DASHBOARD_LISTEN", "127.0.0.1:0")
        .env("LOUPE_SHIM_LISTEN", "127.0.0.1:0")
        .env_remove("LOUPE_CLICKHOUSE_URL")
        .env_remove("LOUPE_CONFIG")
        .env("LOUPE_LOG", "warn")
        .current_dir(data.ancestors().find(|p| p.is_dir()).unwrap());
    c
}

/// A running `loupe up`, stopped with SIGTERM on drop.
struct Up {
    child: Child,
    ready_after: Duration,
    banner: Vec<String>,
}

impl Up {
    fn start(data: &Path) -> Up {
        Self::start_with(data, &[])
    }

    fn start_with(data: &Path, args: &[&str]) -> Up {
        let t = Instant::now();
        let mut child = loupe(data)
            .arg("up")
            .args(args)
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .unwrap();
        let out = child.stdout.take().unwrap();
        let mut lines = BufReader::new(out).lines();
        let mut banner = Vec::new();
        loop {
            let line = lines
                .next()
                .expect("loupe up exited before it was ready")
                .unwrap();
            banner.push(line.clone());
            if line.contains("ready in") {
                break;
            }
            assert!(
                t.elapsed() < Duration::from_secs(60),
                "not ready after 60 s"
            );
        }
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        Up {
            child,
            ready_after: t.elapsed(),
            banner,
        }
    }

    /// The address after `what` in the banner, e.g. "dashboard on http://".
    fn announced(&self, what: &str) -> String {
        let line = self
            .banner
            .iter()
            .find(|l| l.contains(what))
            .expect("announced in the banner");
        let rest = line.split(what).nth(1).unwrap();
        rest.split(|c: char| c.is_whitespace() || c == ')')
            .next()
            .unwrap()
            .to_string()
    }

    /// The OTLP/HTTP base URL the banner announced.
    fn otlp_http(&self) -> String {
        let line = self
            .banner
            .iter()
            .find(|l| l.contains("OTLP HTTP on"))
            .expect("banner names OTLP HTTP");
        let url = line.split("OTLP HTTP on ").nth(1).unwrap();
        url.split_whitespace().next().unwrap().to_string()
    }

    fn rss_kib(&self) -> u64 {
        let status = std::fs::read_to_string(format!("/proc/{}/status", self.child.id())).unwrap();
        status
            .lines()
            .find(|l| l.starts_with("VmRSS:"))
            .and_then(|l| l.split_whitespace().nth(1))
            .unwrap()
            .parse()
            .unwrap()
    }

    fn stop(mut self) -> std::process::ExitStatus {
        unsafe_kill(self.child.id(), "TERM");
        let status = self.child.wait().unwrap();
        std::mem::forget(self);
        status
    }

    fn kill9(mut self) {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        std::mem::forget(self);
    }
}

impl Drop for Up {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn unsafe_kill(pid: u32, sig: &str) {
    let ok = Command::new("kill")
        .arg(format!("-{sig}"))
        .arg(pid.to_string())
        .status()
        .unwrap();
    assert!(ok.success());
}

fn sql(data: &Path, query: &str, extra: &[&str]) -> Output {
    loupe(data)
        .arg("sql")
        .arg(query)
        .args(extra)
        .output()
        .unwrap()
}

fn sql_ok(data: &Path, query: &str, extra: &[&str]) -> String {
    let out = sql(data, query, extra);
    assert!(
        out.status.success(),
        "loupe sql {query:?} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn one_error_line(out: &Output) -> String {
    assert!(!out.status.success(), "must fail");
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    let lines: Vec<&str> = err
        .lines()
        .filter(|l| l.starts_with("loupe: error:"))
        .collect();
    assert_eq!(lines.len(), 1, "one error line expected, got: {err}");
    assert!(!err.contains("panicked"), "{err}");
    lines[0].to_string()
}

#[test]
fn up_serves_sql_and_migrate_while_running_and_persists() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let up = Up::start(&data);
    assert_eq!(
        sql_ok(
            &data,
            "SELECT count() FROM loupe.spans",
            &["--format", "TSV"]
        )
        .trim(),
        "0"
    );
    let migrate = loupe(&data).arg("migrate").output().unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert!(String::from_utf8_lossy(&migrate.stdout).contains("0 migration(s) applied"));

    // Read-only unless --write; the filesystem is out of reach.
    let denied = sql(
        &data,
        "CREATE TABLE loupe.t (a UInt8) ENGINE = MergeTree ORDER BY a",
        &[],
    );
    assert!(one_error_line(&denied).contains("readonly"));
    let denied = sql(
        &data,
        "SELECT * FROM file('/etc/passwd', 'LineAsString')",
        &[],
    );
    assert!(one_error_line(&denied).contains("readonly"));
    let outfile = dir.path().join("out.tsv");
    let denied = sql(
        &data,
        &format!("SELECT 1 INTO OUTFILE '{}'", outfile.display()),
        &[],
    );
    assert!(one_error_line(&denied).contains("readonly"));
    assert!(!outfile.exists());
    sql_ok(
        &data,
        "CREATE TABLE loupe.t (a UInt8) ENGINE = MergeTree ORDER BY a",
        &["--write"],
    );
    sql_ok(
        &data,
        "INSERT INTO loupe.t VALUES (1), (2), (3)",
        &["--write"],
    );
    assert_eq!(
        sql_ok(&data, "SELECT sum(a) FROM loupe.t", &["--format", "TSV"]).trim(),
        "6"
    );
    assert!(up.stop().success(), "a clean stop exits 0");

    // Data survives a restart, and then a SIGKILL.
    let up = Up::start(&data);
    assert_eq!(
        sql_ok(&data, "SELECT sum(a) FROM loupe.t", &["--format", "TSV"]).trim(),
        "6"
    );
    sql_ok(&data, "INSERT INTO loupe.t VALUES (4)", &["--write"]);
    up.kill9();
    let up = Up::start(&data);
    assert_eq!(
        sql_ok(&data, "SELECT sum(a) FROM loupe.t", &["--format", "TSV"]).trim(),
        "10"
    );
    drop(up);
}

#[test]
fn up_is_quick_and_small_when_idle() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    Up::start(&data).stop();
    // Second start: the library is in the page cache, migrations are done.
    let up = Up::start(&data);
    assert!(
        up.ready_after < Duration::from_secs(5),
        "ready after {:?}",
        up.ready_after
    );
    std::thread::sleep(Duration::from_secs(2));
    let rss = up.rss_kib();
    assert!(rss < 400 * 1024, "idle RSS {rss} KiB");
    up.stop();
}

#[test]
fn sql_without_a_running_instance_opens_the_data_directly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let migrate = loupe(&data).arg("migrate").output().unwrap();
    assert!(
        migrate.status.success(),
        "{}",
        String::from_utf8_lossy(&migrate.stderr)
    );
    assert_eq!(
        sql_ok(
            &data,
            "SELECT count() FROM loupe.spans",
            &["--format", "TSV"]
        )
        .trim(),
        "0"
    );
}

#[test]
fn missing_library_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let out = loupe(&dir.path().join("data"))
        .env("LOUPE_CHDB_LIB", dir.path().join("nope.so"))
        .arg("up")
        .output()
        .unwrap();
    let line = one_error_line(&out);
    assert!(line.contains("scripts/fetch-chdb.sh"), "{line}");
}

#[test]
fn unwritable_data_dir_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("plain-file");
    std::fs::write(&file, "x").unwrap();
    let out = loupe(&file.join("data")).arg("up").output().unwrap();
    assert!(one_error_line(&out).contains("plain-file"));
}

#[test]
fn unreachable_server_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let free = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let out = loupe(&dir.path().join("data"))
        .env("LOUPE_CLICKHOUSE_URL", format!("http://{free}"))
        .arg("up")
        .output()
        .unwrap();
    let line = one_error_line(&out);
    assert!(
        line.contains("cannot reach ClickHouse") && line.contains(&free.to_string()),
        "{line}"
    );
}

#[test]
fn port_in_use_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let out = loupe(&dir.path().join("data"))
        .env(
            "LOUPE_ENGINE_LISTEN",
            taken.local_addr().unwrap().to_string(),
        )
        .arg("up")
        .output()
        .unwrap();
    assert!(one_error_line(&out).contains("cannot listen"));
}

#[test]
fn a_second_instance_on_the_same_data_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let up = Up::start(&data);
    let out = loupe(&data).arg("up").output().unwrap();
    assert!(one_error_line(&out).contains("in use by another Loupe process"));
    up.stop();
}

#[test]
fn bad_config_file_is_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("loupe.toml");
    std::fs::write(&cfg, "[storage]\nengine_listen = 12\n").unwrap();
    let out = loupe(&dir.path().join("data"))
        .arg("--config")
        .arg(&cfg)
        .arg("up")
        .output()
        .unwrap();
    let line = one_error_line(&out);
    assert!(
        line.contains("loupe.toml") && line.contains("line 2"),
        "{line}"
    );
}

#[test]
fn cluster_migrations_print() {
    let dir = tempfile::tempdir().unwrap();
    let out = loupe(&dir.path().join("data"))
        .args(["migrate", "--cluster", "prod", "--print"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(text.contains("CREATE TABLE IF NOT EXISTS loupe.spans_local ON CLUSTER prod"));
    assert!(text.contains("ENGINE = Distributed(prod, loupe, spans_local,"));
}

/// `loupe key`: the key, and the config block to paste, as printed.
fn new_key(data: &Path, tenant: &str) -> (String, String) {
    let out = loupe(data)
        .args(["key", "--tenant", tenant])
        .output()
        .unwrap();
    assert!(out.status.success());
    let text = String::from_utf8(out.stdout).unwrap();
    let key = text
        .split_whitespace()
        .find(|w| w.starts_with("loupe_"))
        .unwrap()
        .to_string();
    let config = text.split_once("):\n").unwrap().1.to_string();
    (key, config)
}

#[test]
fn key_new_prints_a_key_and_its_hash() {
    let dir = tempfile::tempdir().unwrap();
    let (key, config) = new_key(&dir.path().join("data"), "acme");
    let hash = config
        .lines()
        .find_map(|l| l.strip_prefix("sha256 = "))
        .unwrap()
        .trim_matches('"');
    assert_eq!(hash, schemas::ingest_keys::hash_key(&key));
    assert!(
        config.contains("[[collector.keys]]\ntenant = \"acme\""),
        "{config}"
    );
    assert!(
        config.contains("[[shim.keys]]\ntenant = \"acme\""),
        "{config}"
    );
    assert!(!config.contains(&key), "only the hash goes into config");
}

#[test]
fn user_prints_a_config_block_that_signs_in() {
    use std::io::Write;
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let user = |password: &str| {
        let mut child = loupe(&data)
            .args([
                "user", "--name", "ana", "--role", "viewer", "--tenant", "acme",
            ])
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap();
        child
            .stdin
            .take()
            .unwrap()
            .write_all(format!("{password}\n").as_bytes())
            .unwrap();
        child.wait_with_output().unwrap()
    };
    let short = user("short");
    assert!(one_error_line(&short).contains("at least 12 characters"));
    let password = "correct horse battery staple";
    let out = user(password);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(!text.contains(password), "the password is never printed");
    let config = text.split_once("):\n").unwrap().1;
    assert!(config.contains("$argon2id$"), "{config}");
    assert!(config.contains("tenants = [\"acme\"]"), "{config}");
    let cfg = dir.path().join("loupe.toml");
    std::fs::write(&cfg, config).unwrap();

    let up = Up::start_with(&data, &["--config", cfg.to_str().unwrap()]);
    let dashboard = up.announced("dashboard on http://");
    let (status, _) = get(&dashboard, "/api/v1");
    assert_eq!(status, 401, "sign-in is now required");
    let (status, head) = post_form(
        &dashboard,
        "/login",
        "user=ana&password=wrong+password+here&next=/",
    );
    assert_eq!(status, 303);
    assert!(head.contains("location: /login?failed=1"), "{head}");
    let (status, head) = post_form(
        &dashboard,
        "/login",
        "user=ana&password=correct+horse+battery+staple&next=/",
    );
    assert_eq!(status, 303, "{head}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap();
    assert!(cookie.starts_with("loupe_session="), "{head}");
    let (status, _, body) = exchange(
        &dashboard,
        &format!(
            "GET /api/v1 HTTP/1.1\r\nHost: x\r\nCookie: {cookie}\r\nConnection: close\r\n\r\n"
        ),
    );
    assert_eq!(status, 200, "{body}");
    assert!(up.stop().success());
}

#[test]
fn demo_traffic_lands_through_otlp_and_is_queryable() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let up = Up::start(&data);
    let out = loupe(&data)
        .args(["demo", "--spans", "3000", "--endpoint", &up.otlp_http()])
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let sent: u64 = String::from_utf8_lossy(&out.stdout)
        .split_whitespace()
        .skip_while(|w| *w != "sent")
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    assert!(sent >= 2990, "{sent}");
    // Acknowledged means stored (or spooled): wait for the batcher's age limit.
    let mut stored = 0;
    for _ in 0..50 {
        stored = sql_ok(
            &data,
            "SELECT count() FROM loupe.spans",
            &["--format", "TSV"],
        )
        .trim()
        .parse()
        .unwrap();
        if stored == sent {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(stored, sent, "every acknowledged span is stored once");
    let tenants = sql_ok(
        &data,
        "SELECT DISTINCT tenant_id FROM loupe.spans ORDER BY 1",
        &["--format", "TSV"],
    );
    assert_eq!(
        tenants.lines().collect::<Vec<_>>(),
        vec!["acme", "globex", "initech"]
    );
    let unpriced = sql_ok(
        &data,
        "SELECT sum(calls) FROM loupe.usage_hourly WHERE price_status = 'unpriced_model'",
        &["--format", "TSV"],
    );
    assert!(unpriced.trim().parse::<u64>().unwrap() > 0);
    assert!(up.stop().success());
}

/// GET over plain HTTP/1.1: (status, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    let (status, _, body) = exchange(
        addr,
        &format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"),
    );
    (status, body)
}

/// Posts a urlencoded form; returns status and response head.
fn post_form(addr: &str, path: &str, form: &str) -> (u16, String) {
    let (status, head, _) = exchange(
        addr,
        &format!(
            "POST {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\
             Content-Type: application/x-www-form-urlencoded\r\nContent-Length: {}\r\n\r\n{form}",
            form.len()
        ),
    );
    (status, head)
}

/// One raw HTTP/1.1 exchange: status, head, body.
fn exchange(addr: &str, request: &str) -> (u16, String, String) {
    use std::io::{Read, Write};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out[9..12].parse().unwrap();
    let (head, body) = out.split_once("\r\n\r\n").unwrap_or((&out, ""));
    (status, head.to_string(), body.to_string())
}

#[test]
fn up_runs_every_role_and_demo_populates_an_empty_store() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let up = Up::start_with(&data, &["--demo"]);
    let dashboard = up.announced("dashboard on http://");
    let shim = up.announced("shim on http://");
    // The demo runs in the background: wait for its spans.
    let mut spans = 0u64;
    for _ in 0..300 {
        spans = sql_ok(
            &data,
            "SELECT count() FROM loupe.spans",
            &["--format", "TSV"],
        )
        .trim()
        .parse()
        .unwrap();
        if spans > 5_000 {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(spans > 5_000, "demo traffic stored: {spans}");
    let (status, page) = get(&dashboard, "/");
    assert_eq!(status, 200);
    assert!(
        page.contains("acme") || page.contains("Overview"),
        "overview renders"
    );
    let (status, metrics) = get(&dashboard, "/metrics");
    assert_eq!(status, 200);
    assert!(
        metrics.contains("loupe_alert_evaluator_leader 1"),
        "{metrics}"
    );
    let (status, _) = get(&shim, "/healthz");
    assert_eq!(status, 200);
    assert!(up.stop().success());
}

#[test]
fn a_keyed_collector_refuses_anonymous_traffic_and_attributes_keyed_traffic() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    // The config exactly as `loupe key` prints it.
    let (key, config) = new_key(&data, "acme");
    let key = key.as_str();
    let cfg = dir.path().join("loupe.toml");
    std::fs::write(&cfg, config).unwrap();
    let cfg = cfg.to_str().unwrap();
    let up = Up::start_with(&data, &["--config", cfg]);
    let endpoint = up.otlp_http();
    let demo = |extra: &[&str]| {
        loupe(&data)
            .args([
                "--config",
                cfg,
                "demo",
                "--spans",
                "500",
                "--endpoint",
                &endpoint,
            ])
            .args(extra)
            .output()
            .unwrap()
    };
    let refused = demo(&[]);
    let line = one_error_line(&refused);
    assert!(line.contains("401"), "{line}");
    let sent = demo(&["--key", key]);
    assert!(
        sent.status.success(),
        "{}",
        String::from_utf8_lossy(&sent.stderr)
    );
    let mut tenants = String::new();
    for _ in 0..50 {
        tenants = sql_ok(
            &data,
            "SELECT DISTINCT tenant_id FROM loupe.spans",
            &["--format", "TSV"],
        );
        if !tenants.trim().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert_eq!(tenants.trim(), "acme", "every span is the key's tenant");
    assert!(up.stop().success());
}
