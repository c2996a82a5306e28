//! `cosell`: run the whole connector in one process (`demo`, `run`, `sandbox`), connect it
//! to a tenant (`login`, `setup`, `doctor`, `adopt`) and operate a deployed or local connector
//! (`status`, `audit`, `dlq`, `backfill`, `webhook`, `mapping`).

use cosell_cli::{local, onboard, ops};

use std::process::ExitCode;

use clap::{Parser, Subcommand};

#[derive(Parser)]
#[command(
    name = "cosell",
    version,
    about = "Microsoft Partner Center co-sell <-> Dynamics 365 sync"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    #[command(flatten)]
    Local(local::LocalCommand),
    #[command(flatten)]
    Onboard(onboard::OnboardCommand),
    #[command(flatten)]
    Ops(ops::OpsCommand),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match cli.command {
            Command::Local(c) => local::run(c).await,
            Command::Onboard(c) => onboard::run(c).await,
            Command::Ops(c) => ops::run(c).await,
        }
    })
}
