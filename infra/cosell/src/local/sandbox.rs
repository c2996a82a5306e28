//! `cosell sandbox`: both stand-ins on fixed loopback ports and the connector wired to them,
//! for poking by hand.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Args;
use cosell::config::{Config, Source};

use super::runtime::{self, Runtime, RuntimeOptions};
use super::socket_addr;
use super::standins::{overlay, Standins};

#[derive(Args, Debug, Clone)]
pub struct SandboxArgs {
    /// Partner Center stand-in address.
    #[arg(long, default_value = "127.0.0.1:7071", value_parser = socket_addr)]
    pub pc: SocketAddr,
    /// Dataverse stand-in address.
    #[arg(long, default_value = "127.0.0.1:7072", value_parser = socket_addr)]
    pub dv: SocketAddr,
    /// The connector's webhook endpoint address.
    #[arg(long, default_value = "127.0.0.1:7070", value_parser = socket_addr)]
    pub listen: SocketAddr,
    /// Store and queues.
    #[arg(long, default_value = ".cosell-sandbox")]
    pub data_dir: PathBuf,
    /// Outbound poll interval (e.g. 500ms, 2s).
    #[arg(long, default_value = "2s")]
    pub poll_interval: String,
    /// Only the stand-ins: print the settings for running `cosell run` against them yourself.
    #[arg(long)]
    pub standins_only: bool,
}

pub async fn run(args: SandboxArgs) -> anyhow::Result<()> {
    // As in a new org: the connector's columns are not there until `cosell setup dataverse`.
    let dv_config = dataverse_standin::StandinConfig {
        connector_columns: false,
        ..Default::default()
    };
    let standins = Standins::start_with(args.pc, args.dv, Default::default(), dv_config).await?;
    // The stand-ins start empty: a token saved by an earlier sandbox is void.
    let stale = args.data_dir.join(super::refresh_file::REFRESH_TOKEN_FILE);
    if stale.exists() {
        std::fs::remove_file(&stale)?;
    }
    let settings = overlay(
        standins.settings(&args.data_dir),
        &[
            ("COSELL_LISTEN", args.listen.to_string()),
            ("COSELL_POLL_INTERVAL", args.poll_interval.clone()),
        ],
    );
    let (pc, dv) = (standins.pc_url(), standins.dv_url());
    println!("Partner Center stand-in  {pc}");
    println!("Dataverse stand-in       {dv}");
    if args.standins_only {
        println!();
        println!("Settings for `cosell run` against them (stand-in credentials, not secrets):");
        for (k, v) in &settings {
            println!("  export {k}='{v}'");
        }
        println!();
        print_pokes(&pc, &dv);
        runtime::shutdown_signal().await;
        standins.shutdown().await;
        return Ok(());
    }
    let config = Config::load(&Source::from_pairs(settings.clone()))?;
    let options = RuntimeOptions {
        register_own_url: true,
        ..RuntimeOptions::default()
    };
    let connector = match Runtime::start(&config, options).await {
        Ok(r) => r,
        Err(e) => {
            standins.shutdown().await;
            return Err(e);
        }
    };
    println!("connector webhook        {}", connector.intake_url());
    println!(
        "connector health         http://{}/healthz",
        connector.addr()
    );
    println!("data                     {}", args.data_dir.display());
    println!();
    print_next_steps(&settings);
    print_pokes(&pc, &dv);
    println!("Ctrl-C to stop.");
    runtime::shutdown_signal().await;
    connector.shutdown().await;
    standins.shutdown().await;
    Ok(())
}

/// The same next steps as on a real tenant, with the settings of this sandbox.
pub fn print_next_steps(settings: &[(String, String)]) {
    println!("Next steps (in another terminal, with the settings above exported):");
    println!("  cosell setup dataverse    # creates the connector's opportunity columns, key and change tracking");
    println!("  cosell doctor             # checks both tenants");
    println!("Settings:");
    for (k, v) in settings {
        println!("  export {k}='{v}'");
    }
    println!();
}

fn print_pokes(pc: &url::Url, dv: &url::Url) {
    println!("Try:");
    println!("  # Microsoft shares a referral (the webhook follows)");
    println!(
        "  curl -s -X POST {pc}_standin/referrals/incoming -H 'content-type: application/json' \\\n    -d '{{\"name\":\"Contoso ERP\",\"customerName\":\"Contoso Ltd\"}}'"
    );
    println!("  # the opportunities in the CRM");
    println!("  curl -s {dv}_standin/rows/opportunities");
    println!("  # referrals, registration and webhook deliveries in Partner Center");
    println!("  curl -s {pc}_standin/state");
    println!();
}
