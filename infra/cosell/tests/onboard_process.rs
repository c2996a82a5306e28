//! A new user's path as processes: `cosell sandbox` starts an org without the connector's
//! columns and prints `cosell setup dataverse` then `cosell doctor` as next steps; run with
//! the settings it prints, setup creates the columns and doctor then passes end to end.

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};

const BIN: &str = env!("CARGO_BIN_EXE_cosell");

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn cosell(args: &[&str], env: &[(String, String)], cwd: &std::path::Path) -> std::process::Output {
    Command::new(BIN)
        .args(args)
        .env_clear()
        .envs(env.iter().map(|(k, v)| (k.as_str(), v.as_str())))
        .current_dir(cwd)
        .output()
        .expect("run cosell")
}

#[test]
fn sandbox_then_setup_then_doctor() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(BIN)
        .args([
            "sandbox",
            "--pc",
            "127.0.0.1:0",
            "--dv",
            "127.0.0.1:0",
            "--listen",
            "127.0.0.1:0",
            "--poll-interval",
            "1s",
        ])
        .env_clear()
        .env("RUST_LOG", "error")
        .current_dir(dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("spawn cosell sandbox");
    let stdout = child.stdout.take().unwrap();
    let _guard = Killed(child);
    let mut lines = Vec::new();
    for line in BufReader::new(stdout).lines() {
        let line = line.unwrap();
        let done = line.starts_with("Ctrl-C to stop");
        lines.push(line);
        if done {
            break;
        }
    }
    let text = lines.join("\n");
    let setup_at = text.find("cosell setup dataverse").expect(&text);
    let doctor_at = text.find("cosell doctor").expect(&text);
    assert!(setup_at < doctor_at, "{text}");
    let mut env: Vec<(String, String)> = lines
        .iter()
        .filter_map(|l| l.trim().strip_prefix("export "))
        .filter_map(|kv| kv.split_once('='))
        .map(|(k, v)| (k.to_string(), v.trim_matches('\'').to_string()))
        .collect();
    let webhook = lines
        .iter()
        .find_map(|l| l.strip_prefix("connector webhook"))
        .map(|u| u.trim().to_string())
        .expect(&text);
    env.push(("COSELL_WEBHOOK_URL".into(), webhook));
    // The stand-in's Referrals admin token, as `cosell login partner-center` would store it.
    env.push(("COSELL_PC_REFRESH_TOKEN".into(), "standin-refresh-0".into()));

    let before = cosell(&["doctor"], &env, dir.path());
    assert_eq!(before.status.code(), Some(1));
    let report = String::from_utf8_lossy(&before.stdout);
    assert!(
        report.contains("missing: cosell_syncwithpartnercenter"),
        "{report}"
    );

    let setup = cosell(
        &["setup", "dataverse", "--key-poll", "100ms"],
        &env,
        dir.path(),
    );
    assert!(
        setup.status.success(),
        "{}",
        String::from_utf8_lossy(&setup.stderr)
    );

    let after = cosell(&["doctor", "--test-event-wait", "10"], &env, dir.path());
    let report = String::from_utf8_lossy(&after.stdout);
    assert_eq!(after.status.code(), Some(0), "{report}");
    assert!(report.contains("webhook test event"), "{report}");
}
