//! Serves the Partner Center stand-in until Ctrl-C.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use partner_center_standin::{StandinConfig, StandinHandle};

#[derive(Parser)]
#[command(about = "Local stand-in for Entra tokens, Partner Center referrals and webhooks")]
struct Args {
    /// Address to listen on (keep it on loopback).
    #[arg(long, env = "STANDIN_ADDR", default_value = "127.0.0.1:7071")]
    addr: SocketAddr,
    #[arg(long, env = "STANDIN_CLIENT_ID", default_value = "standin-client")]
    client_id: String,
    #[arg(long, env = "STANDIN_CLIENT_SECRET", default_value = "standin-secret")]
    client_secret: String,
    #[arg(
        long,
        env = "STANDIN_REFRESH_TOKEN",
        default_value = "standin-refresh-0"
    )]
    refresh_token: String,
    /// Where to write the test CA that issued the signing certificate (PEM): point the
    /// connector's COSELL_WEBHOOK_CERT_ROOTS at it.
    #[arg(long, env = "STANDIN_ROOT_FILE", default_value = "standin-root.pem")]
    root_file: PathBuf,
}

#[tokio::main]
async fn main() -> std::io::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .init();
    let args = Args::parse();
    let config = StandinConfig {
        client_id: args.client_id,
        client_secret: args.client_secret,
        refresh_token: args.refresh_token,
        ..StandinConfig::default()
    };
    let (handle, url) = StandinHandle::start_with(args.addr, config).await?;
    handle.write_root_pem(&args.root_file)?;
    println!("partner center stand-in at {url}");
    println!(
        "webhook signing CA written to {} (set COSELL_WEBHOOK_CERT_ROOTS to it)",
        args.root_file.display()
    );
    tokio::signal::ctrl_c().await?;
    handle.shutdown().await;
    Ok(())
}
