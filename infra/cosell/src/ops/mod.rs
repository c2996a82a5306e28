//! Commands for people who operate the connector.

use std::process::ExitCode;

use clap::Subcommand;

#[derive(Subcommand)]
pub enum OpsCommand {
    /// Show both ids, versions and the last audit entries of a referral or opportunity.
    Status { id: String },
}

pub async fn run(command: OpsCommand) -> ExitCode {
    match command {
        OpsCommand::Status { id } => {
            eprintln!("not built yet: {id}");
            ExitCode::FAILURE
        }
    }
}
