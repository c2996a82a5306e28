//! `cosell login partner-center`: a Referrals admin signs in once with the device
//! authorization grant; the refresh token is checked (it is redeemed with the app's secret,
//! as the connector will, and one referral page is read) and only then stored: in the local
//! data dir (0600), or in the stack's Partner Center secret (the `refresh_token` key only,
//! written as a new version made current only over the version it read).

use std::io::Write;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use clap::{Args, Subcommand};
use cosell::config::Config;
use cosell::device_code::{account_from_jwt, DeviceCodeClient, DeviceCodeError};
use cosell::engine::wiring;
use cosell::entra::{Grant, RefreshTokenStore, TokenProvider};
use cosell::partner_center::{ListQuery, PartnerCenterClient};
use cosell::Secret;
use cosell_edge::secrets::{
    read_current, settings_from, write_key_versioned, SaveError, PARTNER_CENTER_KEYS,
    REFRESH_TOKEN_KEY,
};

use super::stack::{self, AwsArgs};
use crate::local::refresh_file::FileRefreshTokenStore;
use crate::ops::{OpsError, Settings};

#[derive(Debug, Clone, Subcommand)]
pub enum LoginService {
    /// Sign in as a Partner Center Referrals admin (device code) and store the refresh token.
    PartnerCenter(LoginArgs),
}

#[derive(Debug, Clone, Args)]
pub struct LoginArgs {
    #[command(flatten)]
    pub aws: AwsArgs,
    /// Store into this Secrets Manager secret (its refresh_token key) instead of a stack's.
    #[arg(long, value_name = "ARN", conflicts_with = "stack")]
    pub secret_arn: Option<String>,
    /// The local data directory to store the token in [default: $COSELL_DATA_DIR or ./.cosell].
    #[arg(long, value_name = "DIR", conflicts_with_all = ["stack", "secret_arn"])]
    pub data_dir: Option<PathBuf>,
}

/// Placeholders for the Dataverse settings, which login does not use.
const NOT_USED: [(&str, &str); 3] = [
    ("COSELL_DATAVERSE_URL", "https://dataverse.not-used.invalid"),
    ("COSELL_DV_CLIENT_ID", "not-used"),
    ("COSELL_DV_CLIENT_SECRET", "not-used"),
];

/// Keeps the token Entra rotates while the check runs, to store that one.
#[derive(Default)]
struct Rotated(Mutex<Option<Secret>>);

#[async_trait]
impl RefreshTokenStore for Rotated {
    async fn save(&self, token: &Secret) -> Result<(), String> {
        *self.0.lock().unwrap_or_else(|e| e.into_inner()) = Some(token.clone());
        Ok(())
    }
}

enum Destination {
    File(PathBuf),
    Secret {
        client: aws_sdk_secretsmanager::Client,
        arn: String,
    },
}

pub async fn run(
    service: LoginService,
    settings: &Settings,
    out: &mut (dyn Write + Send),
) -> Result<(), OpsError> {
    let LoginService::PartnerCenter(args) = service;
    let (config, destination) = prepare(&args, settings).await?;
    let http = wiring::http_client(&config).map_err(|e| OpsError::failed(e.to_string()))?;
    let policy = wiring::retry_policy(&config);
    // The referrals API's audience, whatever URL it is reached at (the token names it).
    let resource = cosell::partner_center::REFERRALS_SCOPE;
    let device = DeviceCodeClient::new(
        http.clone(),
        config.pc_token_url(),
        config.pc_client_id.clone(),
        Some(config.pc_client_secret.clone()),
        policy.clone(),
    );
    let scope = format!("{resource} offline_access openid profile");
    let auth = device.start(&scope).await.map_err(explain)?;
    writeln!(
        out,
        "To sign in, open {} and enter the code {}",
        auth.verification_uri, auth.user_code
    )?;
    writeln!(
        out,
        "Sign in as a Partner Center Referrals admin (with MFA). The code is valid for {} minutes; waiting...",
        auth.expires_in.as_secs().div_ceil(60)
    )?;
    out.flush()?;
    let tokens = device.wait(&auth).await.map_err(explain)?;
    let refresh = tokens
        .refresh_token
        .clone()
        .ok_or_else(|| explain(DeviceCodeError::NoRefreshToken))?;
    let account = tokens
        .id_token
        .as_ref()
        .and_then(|t| account_from_jwt(t.expose()))
        .or_else(|| account_from_jwt(tokens.access_token.expose()));

    // Redeem it as the connector will (refresh grant, app secret), and read one page.
    let rotated = Arc::new(Rotated::default());
    let provider = TokenProvider::new(
        http.clone(),
        config.pc_token_url(),
        config.pc_client_id.clone(),
        config.pc_client_secret.clone(),
        resource,
        Grant::RefreshToken(refresh.clone()),
        policy.clone(),
    )
    .with_refresh_store(rotated.clone());
    let pc = PartnerCenterClient::new(
        http,
        Arc::new(provider),
        config.pc_api_url.clone(),
        config.pc_webhook_api_url.clone(),
        policy,
    );
    let query = ListQuery {
        top: Some(1),
        ..ListQuery::default()
    };
    let page = pc.list_first_page(&query).await.map_err(|e| {
        OpsError::failed(format!(
            "the sign-in worked but reading referrals failed, so nothing was stored: {e}\n  fix: sign in with an account that has the Referrals admin (or Referrals user) role in Partner Center, and check that the app has the Partner Center API permission (user_impersonation) with admin consent"
        ))
    })?;
    let keep = rotated
        .0
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone()
        .unwrap_or(refresh);
    let who = account
        .map(|a| a.display())
        .unwrap_or_else(|| "an account the tokens do not name".into());
    writeln!(out, "Signed in as {who}.")?;
    writeln!(
        out,
        "Partner Center answered: {} referral(s) on the first page.",
        page.referrals.len()
    )?;
    let place = store(destination, &keep).await?;
    writeln!(out, "Stored the refresh token in {place}.")?;
    writeln!(
        out,
        "Entra retires it after 90 days unused; the connector renews it with every use."
    )?;
    Ok(())
}

/// The settings to sign in with and where the token will go. A secret is read first, so
/// the sign-in uses its client id and secret.
async fn prepare(args: &LoginArgs, settings: &Settings) -> Result<(Config, Destination), OpsError> {
    let mut arn = args.secret_arn.clone();
    let mut overrides: Vec<(String, String)> = Vec::new();
    let needs_aws = arn.is_some() || args.aws.stack.is_some();
    if !needs_aws {
        let config = settings.config_with(&NOT_USED, &overrides)?;
        let dir = args
            .data_dir
            .clone()
            .unwrap_or_else(|| config.data_dir.clone());
        return Ok((config, Destination::File(dir)));
    }
    let sdk = args.aws.sdk_config().await;
    if let Some(name) = &args.aws.stack {
        let info = stack::describe(&sdk, name).await?;
        arn = info.pc_secret_arn.clone();
        if let Some(t) = info.tenant_id {
            overrides.push(("COSELL_TENANT_ID".into(), t));
        }
    }
    let arn = arn.ok_or_else(|| OpsError::failed("the stack names no PartnerCenterSecretArn"))?;
    let client = aws_sdk_secretsmanager::Client::new(&sdk);
    let read = read_current(&client, &arn)
        .await
        .map_err(|e| OpsError::failed(e.to_string()))?;
    let pairs = settings_from(&arn, &read.value, &PARTNER_CENTER_KEYS)
        .map_err(|e| OpsError::failed(e.to_string()))?;
    overrides.extend(
        pairs
            .into_iter()
            .filter(|(k, _)| k != "COSELL_PC_REFRESH_TOKEN"),
    );
    let config = settings.config_with(&NOT_USED, &overrides)?;
    Ok((config, Destination::Secret { client, arn }))
}

async fn store(destination: Destination, token: &Secret) -> Result<String, OpsError> {
    match destination {
        Destination::File(dir) => {
            create_private_dir(&dir)?;
            let file = FileRefreshTokenStore::new(&dir);
            file.write(token).map_err(|e| {
                OpsError::failed(format!("cannot write {}: {e}", file.path().display()))
            })?;
            Ok(file.path().display().to_string())
        }
        // Read again just before writing: the sign-in took minutes, and the functions may
        // have rotated the token (or someone the client secret) meanwhile; those other keys
        // are kept, and the write still applies only over the version it read.
        Destination::Secret { client, arn } => {
            match write_key_versioned(&client, &arn, REFRESH_TOKEN_KEY, token).await {
                Ok(version) => Ok(format!("secret {arn} (key {REFRESH_TOKEN_KEY}, version {version})")),
                Err(e @ SaveError::LostRace { .. }) => Err(OpsError::failed(format!(
                    "{e}\n  fix: someone changed the secret while you signed in; run `cosell login partner-center` again"
                ))),
                Err(e) => Err(OpsError::failed(format!(
                    "{e}\n  fix: your AWS identity needs secretsmanager:GetSecretValue, PutSecretValue and UpdateSecretVersionStage on the secret"
                ))),
            }
        }
    }
}

/// The data dir, owner-only (it holds the token and customer data).
fn create_private_dir(dir: &std::path::Path) -> Result<(), OpsError> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::DirBuilderExt;
        builder.mode(0o700);
    }
    builder
        .create(dir)
        .map_err(|e| OpsError::failed(format!("cannot create {}: {e}", dir.display())))
}

/// The sign-in's failures, each with its fix; nothing was stored.
fn explain(e: DeviceCodeError) -> OpsError {
    let fix = match &e {
        DeviceCodeError::Declined => "run the command again and approve the sign-in",
        DeviceCodeError::Expired { .. } => "run the command again and enter the code sooner",
        DeviceCodeError::BadVerificationCode => "run the command again (the device code was not accepted)",
        DeviceCodeError::NoRefreshToken => "report this: the request asks for offline_access",
        DeviceCodeError::Rejected { error, .. } if error == "invalid_client" => {
            "COSELL_PC_CLIENT_SECRET (or the secret's client_secret) is wrong or expired: create a new client secret for the app registration"
        }
        DeviceCodeError::Rejected { error, .. } if error == "unauthorized_client" => {
            "COSELL_PC_CLIENT_ID names no app in this tenant (check COSELL_TENANT_ID and the app's client id)"
        }
        DeviceCodeError::Rejected { .. } => {
            "check the app registration: the Partner Center API permission and the tenant"
        }
        DeviceCodeError::Call(_) | DeviceCodeError::Malformed(_) => {
            "check the network path to the Entra token endpoint and try again"
        }
    };
    OpsError::failed(format!(
        "sign-in failed: {e}; nothing was stored\n  fix: {fix}"
    ))
}
