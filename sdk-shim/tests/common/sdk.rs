//! Running the official Python SDKs' scenario script, and capturing the shim's logs.

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use tracing_subscriber::filter::LevelFilter;

use super::{Mock, Running};

/// Calls the script makes through the shim (see `Runner::run` in sdk_scenarios.py).
pub const SHIM_CALLS: usize = 21;

/// `.venv/bin/python` with `openai` and `anthropic`, or `None` (after failing under CI
/// or `LOUPE_REQUIRE_PYTHON_SDKS=1`, and noting the skip on stderr otherwise).
pub fn python_or_skip() -> Option<PathBuf> {
    let py = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../.venv/bin/python");
    let ok = std::process::Command::new(&py)
        .args(["-c", "import openai, anthropic"])
        .output()
        .is_ok_and(|o| o.status.success());
    if ok {
        return Some(py);
    }
    let required =
        std::env::var_os("CI").is_some() || std::env::var_os("LOUPE_REQUIRE_PYTHON_SDKS").is_some();
    assert!(
        !required,
        ".venv lacks openai/anthropic: run scripts/setup-python-shim.sh"
    );
    let _ = writeln!(
        std::io::stderr(),
        "SKIPPED: .venv lacks openai/anthropic; run scripts/setup-python-shim.sh"
    );
    None
}

/// Run every scenario directly against `mock` and through `shim`; panics on any difference.
pub async fn run_scenarios(
    py: PathBuf,
    mock: &Mock,
    shim: &Running,
    key: &str,
) -> serde_json::Value {
    let script = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/python/sdk_scenarios.py");
    let args = vec![
        script.display().to_string(),
        "--mock-openai".into(),
        mock.openai_base(),
        "--mock-anthropic".into(),
        mock.anthropic_base(),
        "--shim-openai".into(),
        shim.openai_base(),
        "--shim-anthropic".into(),
        shim.url(),
        "--key".into(),
        key.into(),
    ];
    let out = tokio::task::spawn_blocking(move || {
        std::process::Command::new(py).args(args).output().unwrap()
    })
    .await
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(
        out.status.success(),
        "SDK scenarios failed:\n{stderr}\n{stdout}"
    );
    let report: serde_json::Value = serde_json::from_str(&stdout).unwrap();
    assert_eq!(
        report["scenarios"].as_array().unwrap().len(),
        SHIM_CALLS,
        "{report}"
    );
    report
}

/// Everything the process logs, at trace level, for the key search.
#[derive(Clone, Default)]
pub struct Logs(Arc<Mutex<Vec<u8>>>);

impl Logs {
    /// Install as the global subscriber (one per test process under nextest).
    pub fn install() -> Logs {
        let logs = Logs::default();
        let writer = logs.clone();
        tracing_subscriber::fmt()
            .with_max_level(LevelFilter::TRACE)
            .with_ansi(false)
            .with_writer(move || writer.clone())
            .init();
        logs
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.0.lock().unwrap()).into_owned()
    }
}

impl Write for Logs {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
