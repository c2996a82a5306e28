//! The connector in one process: `demo`, `run`, `sandbox`.

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum LocalCommand {
    /// Start both stand-ins and the connector, sync a few deals both ways, print what happened.
    Demo,
}

pub async fn run(command: LocalCommand) -> ExitCode {
    match command {
        LocalCommand::Demo => {
            eprintln!("not built yet");
            ExitCode::FAILURE
        }
    }
}
