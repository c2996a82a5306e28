//! The cold start of a function that syncs: settings and secrets read, clients built, once
//! per process. Every invocation then shares what this returns.

use std::sync::Arc;

use aws_config::SdkConfig;
use cosell::engine::Engine;
use cosell::entra::RefreshTokenStore;
use cosell::store::dynamodb::DynamoStore;
use cosell::Config;

use crate::secrets::SecretsManagerRefreshStore;
use crate::settings::{load_config, required_var, Services, PC_SECRET_ARN};
use crate::{aws, EdgeError};

pub struct Started {
    pub sdk: SdkConfig,
    pub config: Config,
    pub http: reqwest::Client,
    pub store: Arc<DynamoStore>,
    /// Where rotated Partner Center refresh tokens go (the Partner Center secret).
    pub refresh_store: Option<Arc<dyn RefreshTokenStore>>,
}

impl Started {
    /// Reads the settings and the secrets of `services` and builds the shared clients.
    pub async fn load(services: Services) -> Result<Started, EdgeError> {
        let sdk = aws::sdk_config().await;
        let secrets = aws::secrets_client(&sdk);
        // The store's client is made while the secrets read waits on the network (the read
        // is polled first, so its request is on its way before).
        let (config, store) =
            tokio::join!(load_config(&secrets, services), async { aws::store(&sdk) });
        let (config, store) = (config?, Arc::new(store?));
        // After the secrets read: the root certificates it needed are read by then, so this
        // only builds the client (see `tls`).
        let http = crate::tls::engine_http_client(&config)?;
        let refresh_store: Option<Arc<dyn RefreshTokenStore>> = if services.partner_center {
            Some(Arc::new(SecretsManagerRefreshStore::new(
                secrets,
                required_var(PC_SECRET_ARN)?,
            )))
        } else {
            None
        };
        tracing::info!(
            tenant = %config.tenant_id,
            dataverse = %config.dataverse_url,
            "settings loaded"
        );
        Ok(Started {
            sdk,
            config,
            http,
            store,
            refresh_store,
        })
    }

    /// The sync engine on these clients.
    pub fn engine(&self) -> Result<Engine, EdgeError> {
        Ok(Engine::from_config(
            &self.config,
            &self.http,
            self.store.clone(),
            self.refresh_store.clone(),
        )?)
    }

    /// The sync engine with its tokens fetched, the mapping parsed meanwhile.
    pub async fn warmed_up_engine(&self) -> Result<Engine, EdgeError> {
        Ok(Engine::from_config_warmed_up(
            &self.config,
            &self.http,
            self.store.clone(),
            self.refresh_store.clone(),
        )
        .await?)
    }
}
