//! Getting a tenant ready, in the order a new user does it: `cosell login partner-center`,
//! `cosell setup dataverse`, `cosell doctor`, and `cosell adopt` when moving off
//! Microsoft's connector. Like the operator commands, each writes to
//! the writers it is given, so tests run them in-process ([`run_args`]).

pub mod adopt;
mod adopt_plan;
pub mod columns;
pub mod doctor;
pub mod login;
pub mod setup;
pub mod stack;

use std::io::Write;
use std::process::ExitCode;

use clap::{Parser, Subcommand};

use crate::ops::{Exit, OpsError, Outcome, Settings};

#[derive(Debug, Clone, Subcommand)]
pub enum OnboardCommand {
    /// Sign in once and keep the credential the connector needs.
    Login {
        #[command(subcommand)]
        service: login::LoginService,
    },
    /// Create what the connector needs in a tenant.
    Setup {
        #[command(subcommand)]
        service: SetupService,
    },
    /// Check credentials, rights, columns, change tracking, mapping and webhook; exit 0 when all are ok.
    Doctor(doctor::DoctorArgs),
    /// Move off Microsoft's co-sell connector: link its synced opportunities to their referrals in the crosswalk (a dry run unless --apply; writes nothing to either tenant).
    Adopt(adopt::AdoptArgs),
}

#[derive(Debug, Clone, Subcommand)]
pub enum SetupService {
    /// Create the connector's opportunity columns, the referral id key and change tracking.
    Dataverse(setup::SetupArgs),
}

pub async fn run(command: OnboardCommand) -> ExitCode {
    let mut out = std::io::stdout();
    let mut err = std::io::stderr();
    run_with(command, &Settings::Env, &mut out, &mut err)
        .await
        .into()
}

pub async fn run_with(
    command: OnboardCommand,
    settings: &Settings,
    out: &mut (dyn Write + Send),
    err: &mut (dyn Write + Send),
) -> Exit {
    let result = match command {
        OnboardCommand::Login { service } => login::run(service, settings, out).await,
        OnboardCommand::Setup {
            service: SetupService::Dataverse(a),
        } => setup::run(a, settings, out).await,
        OnboardCommand::Doctor(a) => doctor::run(a, settings, out).await,
        OnboardCommand::Adopt(a) => adopt::run(a, settings, out).await,
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

#[derive(Parser)]
#[command(name = "cosell")]
struct OnboardCli {
    #[command(subcommand)]
    command: OnboardCommand,
}

/// Parses `args` as the command line would and runs the command, capturing its output.
pub async fn run_args(args: &[&str], settings: &Settings) -> Outcome {
    let argv = std::iter::once("cosell").chain(args.iter().copied());
    let command = match OnboardCli::try_parse_from(argv) {
        Ok(cli) => cli.command,
        Err(e) => {
            return Outcome {
                exit: if e.use_stderr() {
                    Exit::Usage
                } else {
                    Exit::Ok
                },
                stdout: String::new(),
                stderr: e.render().to_string(),
            }
        }
    };
    let mut out = Vec::new();
    let mut err = Vec::new();
    let exit = run_with(command, settings, &mut out, &mut err).await;
    Outcome {
        exit,
        stdout: String::from_utf8_lossy(&out).into_owned(),
        stderr: String::from_utf8_lossy(&err).into_owned(),
    }
}
