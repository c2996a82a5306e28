//! Builds the engine's clients from a validated [`Config`], the same way for every edge
//! (each Lambda function's init, the local runner, the CLI).

use crate::telemetry::Service;
use std::sync::Arc;
use std::time::Duration;

use url::Url;

use crate::config::Config;
use crate::dataverse::DataverseClient;
use crate::engine::{Engine, SyncOptions};
use crate::entra::{Grant, RefreshTokenStore, TokenProvider};
use crate::mapping::Mapping;
use crate::partner_center::webhook_verify::{HttpCertificateSource, WebhookVerifier};
use crate::partner_center::{PartnerCenterClient, REFERRALS_SCOPE};
use crate::retry::RetryPolicy;
use crate::store::Store;

#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    #[error("mapping is invalid:\n{0}")]
    Mapping(String),
    #[error("cannot build the HTTP client: {0}")]
    Http(String),
}

/// One HTTP client (one connection pool) per process; every request also has the
/// per-attempt timeout of [`RetryPolicy::attempt_timeout`].
pub fn http_client(config: &Config) -> Result<reqwest::Client, WiringError> {
    http_client_from(reqwest::Client::builder(), config)
}

/// [`http_client`]'s settings on a builder of the caller's (the Lambda functions pass one on
/// the root certificates they read once per process).
pub fn http_client_from(
    builder: reqwest::ClientBuilder,
    config: &Config,
) -> Result<reqwest::Client, WiringError> {
    builder
        .connect_timeout(Duration::from_secs(5).min(config.http_timeout))
        .timeout(config.http_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("cosell-sync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| WiringError::Http(e.to_string()))
}

pub fn retry_policy(config: &Config) -> RetryPolicy {
    RetryPolicy {
        max_retries: config.max_retries,
        attempt_timeout: config.http_timeout,
        ..RetryPolicy::default()
    }
}

/// `{scheme}://{host[:port]}/.default`: the Entra scope of the resource that serves `url`.
pub fn resource_scope(url: &Url) -> String {
    let origin = url.origin().ascii_serialization();
    format!("{origin}/.default")
}

pub fn partner_center_client(
    config: &Config,
    http: &reqwest::Client,
    refresh_store: Option<Arc<dyn RefreshTokenStore>>,
) -> PartnerCenterClient {
    let grant = match &config.pc_refresh_token {
        Some(rt) => Grant::RefreshToken(rt.clone()),
        None => Grant::ClientCredentials,
    };
    let mut tokens = TokenProvider::new(
        http.clone(),
        config.pc_token_url(),
        config.pc_client_id.clone(),
        config.pc_client_secret.clone(),
        // The documented audience, whatever host serves it (a local stand-in checks it);
        // the client derives the webhook API's token from the same grant.
        REFERRALS_SCOPE,
        grant,
        retry_policy(config),
    )
    .for_service(Service::PartnerCenter);
    if let Some(store) = refresh_store {
        tokens = tokens.with_refresh_store(store);
    }
    PartnerCenterClient::new(
        http.clone(),
        Arc::new(tokens),
        config.pc_api_url.clone(),
        config.pc_webhook_api_url.clone(),
        retry_policy(config),
    )
}

pub fn dataverse_client(config: &Config, http: &reqwest::Client) -> DataverseClient {
    // Reads select the mapped columns; a broken mapping is reported where it is used.
    let client = plain_dataverse_client(config, http);
    match mapping(config) {
        Ok(m) => client.with_mapping(&m),
        Err(_) => client,
    }
}

/// The Dataverse client before the mapping's columns are added to its reads.
fn plain_dataverse_client(config: &Config, http: &reqwest::Client) -> DataverseClient {
    let tokens = TokenProvider::new(
        http.clone(),
        config.dv_token_url(),
        config.dv_client_id.clone(),
        config.dv_client_secret.clone(),
        DataverseClient::scope_for(&config.dataverse_url),
        Grant::ClientCredentials,
        retry_policy(config),
    )
    .for_service(Service::Dataverse);
    DataverseClient::new(
        http.clone(),
        Arc::new(tokens),
        config.dataverse_url.clone(),
        config.columns.clone(),
        retry_policy(config),
    )
}

/// The verifier downloads certificates with a client of its own (no redirects), never the
/// API client.
pub fn webhook_verifier(config: &Config) -> Result<WebhookVerifier, WiringError> {
    let source = HttpCertificateSource::new(config.http_timeout.min(Duration::from_secs(5)))
        .map_err(|e| WiringError::Http(e.to_string()))?;
    let verifier = WebhookVerifier::new(config.webhook_cert_hosts.clone(), Arc::new(source))
        .with_organizations(config.webhook_cert_organizations.clone());
    Ok(match &config.webhook_cert_roots {
        Some(roots) => verifier.with_roots(roots.clone()),
        None => verifier,
    })
}

/// Loads and validates the mapping the config names (or the default one), with the
/// Services taxonomy it names (or the shipped one).
pub fn mapping(config: &Config) -> Result<Mapping, WiringError> {
    let mut mapping =
        Mapping::load(config.mapping_file.as_deref(), &config.columns).map_err(|errors| {
            WiringError::Mapping(
                errors
                    .iter()
                    .map(|e| format!("  - {e}"))
                    .collect::<Vec<_>>()
                    .join("\n"),
            )
        })?;
    if let Some(path) = &config.services_taxonomy_file {
        mapping.services = crate::mapping::taxonomy::Taxonomy::from_file(path)
            .map_err(|e| WiringError::Mapping(format!("  - {e}")))?;
    }
    Ok(mapping)
}

impl Engine {
    pub fn from_config(
        config: &Config,
        http: &reqwest::Client,
        store: Arc<dyn Store>,
        refresh_store: Option<Arc<dyn RefreshTokenStore>>,
    ) -> Result<Engine, WiringError> {
        let mapping = mapping(config)?;
        let pc = partner_center_client(config, http, refresh_store);
        let dv = plain_dataverse_client(config, http).with_mapping(&mapping);
        Ok(Engine::of_parts(config, pc, dv, store, mapping))
    }

    /// [`Engine::from_config`] with both services' tokens fetched (as [`Engine::warm_up`]
    /// does) while the mapping and its taxonomy are parsed on a thread of their own: the
    /// cold start of a function waits for the longer of the two, not for both.
    pub async fn from_config_warmed_up(
        config: &Config,
        http: &reqwest::Client,
        store: Arc<dyn Store>,
        refresh_store: Option<Arc<dyn RefreshTokenStore>>,
    ) -> Result<Engine, WiringError> {
        let parsed = tokio::task::spawn_blocking({
            let config = config.clone();
            move || mapping(&config)
        });
        let pc = partner_center_client(config, http, refresh_store);
        let dv = plain_dataverse_client(config, http);
        tokio::join!(pc.warm_up(), dv.warm_up());
        let mapping = parsed
            .await
            .map_err(|e| WiringError::Mapping(format!("  - the parse stopped: {e}")))??;
        let dv = dv.with_mapping(&mapping);
        Ok(Engine::of_parts(config, pc, dv, store, mapping))
    }

    fn of_parts(
        config: &Config,
        pc: PartnerCenterClient,
        dv: DataverseClient,
        store: Arc<dyn Store>,
        mapping: Mapping,
    ) -> Engine {
        Engine {
            pc: Arc::new(pc),
            dv: Arc::new(dv),
            store,
            mapping: Arc::new(mapping),
            columns: config.columns.clone(),
            options: SyncOptions {
                cosell_only: config.sync_cosell_only,
                checkmark: config.checkmark,
            },
            currencies: Default::default(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn scope_keeps_scheme_host_and_port_only() {
        let u = Url::parse("https://api.partner.microsoft.com/v1.0/engagements/").unwrap();
        assert_eq!(
            resource_scope(&u),
            "https://api.partner.microsoft.com/.default"
        );
        let local = Url::parse("http://127.0.0.1:8081/x").unwrap();
        assert_eq!(resource_scope(&local), "http://127.0.0.1:8081/.default");
    }
}
