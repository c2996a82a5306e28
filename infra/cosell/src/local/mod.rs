//! The connector in one process: `run` (against whatever the settings say), `sandbox` (against
//! both stand-ins, in this process) and `demo` (a scripted walk-through on the sandbox).

pub mod data_dir;
pub mod demo;
mod demo_settled;
mod fd_limit;
pub mod handlers;
pub mod logging;
pub mod metrics_memory;
pub mod refresh_file;
pub mod runtime;
pub mod sandbox;
pub mod schedule;
pub mod server;
pub mod standins;
pub mod worker;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use clap::Subcommand;
use cosell::config::Config;

use runtime::{Runtime, RuntimeOptions};

#[derive(Subcommand)]
pub enum LocalCommand {
    /// Run the whole connector in this process with the settings from COSELL_* variables
    /// (and ./cosell.toml), until Ctrl-C.
    Run {
        /// How long a received message stays hidden (its pair waits behind it); after a
        /// crash, the messages that were in flight come back once it has passed (e.g. 30s,
        /// 2m) [default: COSELL_SYNC_LEASE].
        #[arg(long, value_parser = duration)]
        visibility_timeout: Option<Duration>,
    },
    /// Start both stand-ins and the connector wired to them, print the URLs, run until Ctrl-C.
    Sandbox(sandbox::SandboxArgs),
    /// Start both stand-ins and the connector, sync a deal both ways, print what happened.
    Demo {
        /// How long each step may take to show on the other side, in seconds.
        #[arg(long, default_value_t = 20)]
        step_timeout: u64,
        /// Keep the store and queues in this directory (default: a temp dir, removed after).
        #[arg(long)]
        data_dir: Option<PathBuf>,
    },
}

pub async fn run(command: LocalCommand) -> ExitCode {
    match command {
        LocalCommand::Run { visibility_timeout } => {
            logging::init("info");
            run_connector(visibility_timeout).await
        }
        LocalCommand::Sandbox(args) => {
            logging::init("info");
            report(sandbox::run(args).await)
        }
        LocalCommand::Demo {
            step_timeout,
            data_dir,
        } => {
            // The walk-through is the output; expected refusals (no registration yet) are noise.
            logging::init("error");
            let options = demo::DemoOptions {
                step_timeout: Duration::from_secs(step_timeout.max(1)),
                data_dir,
                ..demo::DemoOptions::default()
            };
            match demo::run(&options).await {
                Ok(r) if r.succeeded() => ExitCode::SUCCESS,
                Ok(r) => {
                    match r.first_failure() {
                        Some(f) => eprintln!("demo failed at step {}", f.title),
                        None => eprintln!("demo failed: not every step ran"),
                    }
                    ExitCode::FAILURE
                }
                Err(e) => report(Err(e)),
            }
        }
    }
}

async fn run_connector(visibility: Option<Duration>) -> ExitCode {
    let config = match Config::from_env() {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    let options = RuntimeOptions {
        visibility: visibility.unwrap_or(config.sync_lease),
        ..RuntimeOptions::default()
    };
    report(serve(&config, options).await)
}

/// Starts the runtime and runs it until Ctrl-C or SIGTERM.
pub async fn serve(config: &Config, options: RuntimeOptions) -> anyhow::Result<()> {
    let runtime = Runtime::start(config, options).await?;
    tracing::info!(
        data_dir = %runtime.data_dir().display(),
        poll_interval = ?config.poll_interval,
        "connector running; Ctrl-C to stop"
    );
    runtime::shutdown_signal().await;
    tracing::info!("stopping: finishing the syncs in flight");
    runtime.shutdown().await;
    Ok(())
}

fn report(result: anyhow::Result<()>) -> ExitCode {
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Parses `host:port` for the flags.
fn socket_addr(s: &str) -> Result<SocketAddr, String> {
    s.parse()
        .map_err(|_| format!("'{s}' is not host:port (e.g. 127.0.0.1:7071)"))
}

/// Parses a duration flag (`30s`, `10m`), refusing zero.
pub fn duration_arg(s: &str) -> Result<Duration, String> {
    duration(s)
}

fn duration(s: &str) -> Result<Duration, String> {
    cosell::duration_text::parse_duration(s).and_then(|d| {
        if d.is_zero() {
            Err("must be greater than zero".to_string())
        } else {
            Ok(d)
        }
    })
}
