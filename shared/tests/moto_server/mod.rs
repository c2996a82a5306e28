//! One `moto_server` (local DynamoDB, SQS and Secrets Manager) per test binary, for the AWS
//! halves of the contract suites and the Lambda function tests (included by `#[path]`).
//!
//! `COSELL_MOTO_URL` points at a running server; otherwise one is started from `$MOTO_SERVER`
//! or `moto_server` on `PATH`, on a free loopback port. Statics are never dropped, so the
//! server runs under a small shell watchdog that kills it once this test process is gone.
//! Without moto the AWS cases print a skip line, or fail when `CI` is set.

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";

/// The server's URL, or `None` (after printing why) when AWS cases must be skipped.
pub fn url() -> Option<String> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(start).clone()
}

fn find_binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("moto_server"))
        .find(|p| p.is_file())
}

fn start() -> Option<String> {
    if let Ok(url) = std::env::var("COSELL_MOTO_URL") {
        return Some(url);
    }
    let Some(binary) = find_binary() else {
        let why = "moto_server not found (set MOTO_SERVER or COSELL_MOTO_URL, or pip install 'moto[server]')";
        if std::env::var_os("CI").is_some() {
            panic!("{why}");
        }
        // Straight to stderr: the harness hides `eprintln!` output of passing tests.
        let _ = writeln!(std::io::stderr(), "SKIP AWS (moto) cases: {why}");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    let script = r#"
        "$0" -H 127.0.0.1 -p "$1" >/dev/null 2>&1 &
        moto=$!
        while kill -0 "$2" 2>/dev/null && kill -0 "$moto" 2>/dev/null; do sleep 0.5; done
        kill "$moto" 2>/dev/null
    "#;
    let mut watchdog = Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(&binary)
        .arg(port.to_string())
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    // Reap the watchdog if it ends first (moto crashed); the process exit covers the rest.
    std::thread::spawn(move || watchdog.wait());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server did not listen on {addr} within 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(format!("http://{addr}"))
}

/// A name no other test in this run uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
