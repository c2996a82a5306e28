//! Runs the Dataverse stand-in until Ctrl-C, for local runs of the connector.

use std::net::SocketAddr;

use clap::Parser;
use dataverse_standin::{StandinConfig, StandinHandle};

#[derive(Parser)]
#[command(about = "Local stand-in for Entra tokens and the Dataverse Web API")]
struct Args {
    /// Address to listen on (loopback).
    #[arg(long, default_value = "127.0.0.1:8091")]
    listen: SocketAddr,
    #[arg(long, env = "DATAVERSE_STANDIN_TENANT")]
    tenant: Option<String>,
    #[arg(long, env = "DATAVERSE_STANDIN_CLIENT_ID")]
    client_id: Option<String>,
    #[arg(long, env = "DATAVERSE_STANDIN_CLIENT_SECRET", hide_env_values = true)]
    client_secret: Option<String>,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let mut config = StandinConfig::default();
    if let Some(t) = args.tenant {
        config.tenant = t;
    }
    if let Some(c) = args.client_id {
        config.client_id = c;
    }
    if let Some(s) = args.client_secret {
        config.client_secret = s;
    }
    let (handle, url) = StandinHandle::start_with(args.listen, config).await?;
    println!(
        "dataverse stand-in: org URL {url}, token URL {}",
        handle.token_url()
    );
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}
