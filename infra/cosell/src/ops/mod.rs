//! Commands for people who operate the connector, against a local run's data directory or a
//! deployed stack: `status`, `audit`, `dlq`, `backfill`, `webhook`, `mapping`.
//!
//! Each command writes its result to a writer and its error to another, so tests run them
//! in-process ([`run_args`]) and read what an operator would see.

pub mod audit;
mod audit_table;
pub mod backfill;
pub mod dlq;
pub mod error;
pub mod logs_query;
pub mod mapping_check;
pub mod output;
pub mod settings;
pub mod since;
pub mod status;
mod status_metrics;
pub mod target;
pub mod webhook;

use std::io::{IsTerminal, Write};
use std::process::ExitCode;

use clap::{Parser, Subcommand};

pub use error::OpsError;
pub use output::Style;
pub use settings::Settings;

#[derive(Debug, Clone, Subcommand)]
pub enum OpsCommand {
    /// Show both ids, versions, last sync each way and the last audit entries of a referral or opportunity.
    Status(status::StatusArgs),
    /// Show the audit trail, filtered.
    Audit(audit::AuditArgs),
    /// List, show and replay dead letters.
    Dlq(dlq::DlqArgs),
    /// Queue existing Partner Center referrals for import (resumable).
    Backfill(backfill::BackfillArgs),
    /// Show, register or test the Partner Center webhook.
    Webhook(webhook::WebhookArgs),
    /// Check a mapping file.
    Mapping(mapping_check::MappingArgs),
}

/// How a command ended, as a process exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Exit {
    Ok = 0,
    Failure = 1,
    Usage = 2,
}

impl From<Exit> for ExitCode {
    fn from(e: Exit) -> Self {
        ExitCode::from(e as u8)
    }
}

/// The real command: settings from the environment, output to stdout/stderr, colours and
/// progress bars only on a terminal.
pub async fn run(command: OpsCommand) -> ExitCode {
    let style = Style {
        color: std::io::stdout().is_terminal(),
        progress: std::io::stderr().is_terminal(),
    };
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    run_with(command, &Settings::Env, &style, &mut out, &mut err)
        .await
        .into()
}

pub async fn run_with(
    command: OpsCommand,
    settings: &Settings,
    style: &Style,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Exit {
    let result = match command {
        OpsCommand::Status(a) => status::run(a, settings, style, out).await,
        OpsCommand::Audit(a) => audit::run(a, settings, style, out).await,
        OpsCommand::Dlq(a) => dlq::run(a, settings, style, out).await,
        OpsCommand::Backfill(a) => backfill::run(a, settings, style, out).await,
        OpsCommand::Webhook(a) => webhook::run(a, settings, style, out).await,
        OpsCommand::Mapping(a) => mapping_check::run(a, settings, style, out).await,
    };
    let _ = out.flush();
    match result {
        Ok(()) => Exit::Ok,
        Err(e) => {
            let _ = writeln!(err, "error: {e}");
            match e {
                OpsError::Usage(_) => Exit::Usage,
                OpsError::Failed(_) => Exit::Failure,
            }
        }
    }
}

/// What one in-process run printed.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub exit: Exit,
    pub stdout: String,
    pub stderr: String,
}

#[derive(Parser)]
#[command(name = "cosell")]
struct OpsCli {
    #[command(subcommand)]
    command: OpsCommand,
}

/// Parses `args` (without the program name) as the `cosell` command line would and runs the
/// command, capturing its output. Usage errors exit 2, as from the real binary.
pub async fn run_args(args: &[&str], settings: &Settings) -> Outcome {
    let argv = std::iter::once("cosell").chain(args.iter().copied());
    let command = match OpsCli::try_parse_from(argv) {
        Ok(cli) => cli.command,
        Err(e) => {
            let text = e.render().to_string();
            let (exit, stdout, stderr) = if e.use_stderr() {
                (Exit::Usage, String::new(), text)
            } else {
                (Exit::Ok, text, String::new())
            };
            return Outcome {
                exit,
                stdout,
                stderr,
            };
        }
    };
    let mut out = Vec::new();
    let mut err = Vec::new();
    let exit = run_with(command, settings, &Style::default(), &mut out, &mut err).await;
    Outcome {
        exit,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}
