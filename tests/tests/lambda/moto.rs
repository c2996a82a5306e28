//! One `moto_server` (local DynamoDB, SQS and Secrets Manager) per test binary: the one at
//! `COSELL_MOTO_URL`, or one started from `$MOTO_SERVER` / `moto_server` on `PATH` on a free
//! loopback port, watched by a small shell loop that stops it when this process is gone.
//! Without moto, `url()` prints why and returns `None` (and panics when `CI` is set).

use std::io::Write;
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

pub const REGION: &str = "us-east-1";

pub fn url() -> Option<String> {
    static URL: OnceLock<Option<String>> = OnceLock::new();
    URL.get_or_init(launch).clone()
}

fn binary() -> Option<PathBuf> {
    if let Some(p) = std::env::var_os("MOTO_SERVER") {
        return Some(PathBuf::from(p));
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join("moto_server"))
        .find(|p| p.is_file())
}

fn launch() -> Option<String> {
    if let Ok(url) = std::env::var("COSELL_MOTO_URL") {
        return Some(url);
    }
    let Some(binary) = binary() else {
        let why = "moto_server not found (run through `bash .ci/test`, or set MOTO_SERVER)";
        assert!(std::env::var_os("CI").is_none(), "{why}");
        let _ = writeln!(std::io::stderr(), "SKIP Lambda function cases: {why}");
        return None;
    };
    let port = TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("a free loopback port")
        .port();
    // Runs moto in the background and kills it once the test process ($2) has exited.
    let watchdog = r#"
        "$0" -H 127.0.0.1 -p "$1" >/dev/null 2>&1 &
        server=$!
        while kill -0 "$2" 2>/dev/null && kill -0 "$server" 2>/dev/null; do sleep 0.5; done
        kill "$server" 2>/dev/null
    "#;
    let mut child = Command::new("sh")
        .arg("-c")
        .arg(watchdog)
        .arg(&binary)
        .arg(port.to_string())
        .arg(std::process::id().to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {}: {e}", binary.display()));
    std::thread::spawn(move || child.wait());
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let deadline = Instant::now() + Duration::from_secs(30);
    while TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_err() {
        assert!(
            Instant::now() < deadline,
            "moto_server not listening on {addr} after 30 s"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    Some(format!("http://{addr}"))
}

/// A name no other test of this run uses.
pub fn unique(prefix: &str) -> String {
    format!("{prefix}-{}", uuid::Uuid::new_v4().simple())
}
