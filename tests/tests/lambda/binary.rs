//! The host build of a function binary, for running it against the local runtime API.

use std::path::PathBuf;
use std::process::Command;

/// `target/<profile>/` of this test run (the test executable sits in its `deps/`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("the test executable's path");
    exe.parent()
        .and_then(|deps| deps.parent())
        .expect("target/<profile>/deps/<test>")
        .to_path_buf()
}

/// Builds `package` (a no-op when it is fresh) into this run's target directory and returns
/// the path of its binary.
pub fn build(package: &str) -> PathBuf {
    let profile = profile_dir();
    let target_dir = profile.parent().expect("target/").to_path_buf();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .args(["build", "--quiet", "-p", package, "--target-dir"])
        .arg(&target_dir)
        .current_dir(concat!(env!("CARGO_MANIFEST_DIR"), "/.."));
    if profile.file_name().is_some_and(|p| p == "release") {
        command.arg("--release");
    }
    let status = command.status().expect("run cargo build");
    assert!(status.success(), "cargo build -p {package} failed");
    let binary = profile.join(package);
    assert!(binary.is_file(), "no binary at {}", binary.display());
    binary
}
