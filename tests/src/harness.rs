//! Both stand-ins, an embedded store and queues in a temp dir, and an [`Engine`] wired to
//! them the way the connector wires itself from its settings.

use std::sync::Arc;

use cosell::config::{Config, Source};
use cosell::engine::wiring;
use cosell::engine::{reconcile_pair, Engine, Origin, PairOutcome, SyncMessage};
use cosell::queue::sqlite::SqliteQueue;
use cosell::retry::RetryPolicy;
use cosell::store::sqlite::SqliteStore;
use cosell::store::Store;

pub const TENANT: &str = "contoso-tenant";

pub struct Harness {
    pub pc: partner_center_standin::StandinHandle,
    pub dv: dataverse_standin::StandinHandle,
    pub config: Config,
    pub store: Arc<SqliteStore>,
    /// The FIFO sync queue (grouped by pair key), as the local runner has it.
    pub queue: Arc<SqliteQueue>,
    pub engine: Engine,
    pub http: reqwest::Client,
    /// Holds the store and queue files; removed on drop.
    pub dir: tempfile::TempDir,
}

/// The settings that point the connector at the two stand-ins (plus `extra`, which win).
pub fn standin_settings(
    pc: &partner_center_standin::StandinHandle,
    dv: &dataverse_standin::StandinHandle,
    data_dir: &std::path::Path,
) -> Vec<(String, String)> {
    let pc_cfg = pc.config();
    let dv_cfg = dv.config();
    let pc_host = pc.base_url().host_str().unwrap_or("127.0.0.1").to_string();
    // The stand-in's signing certificate is trusted only through its CA, given explicitly.
    let roots = data_dir.join("standin-root.pem");
    pc.write_root_pem(&roots).expect("write the stand-in's CA");
    [
        ("COSELL_TENANT_ID", TENANT.to_string()),
        ("COSELL_PC_TOKEN_URL", pc.token_url(TENANT).to_string()),
        ("COSELL_PC_CLIENT_ID", pc_cfg.client_id.clone()),
        ("COSELL_PC_CLIENT_SECRET", pc_cfg.client_secret.clone()),
        ("COSELL_PC_API_URL", pc.base_url().to_string()),
        ("COSELL_PC_WEBHOOK_API_URL", pc.base_url().to_string()),
        ("COSELL_WEBHOOK_CERT_HOSTS", pc_host),
        (
            "COSELL_WEBHOOK_CERT_ORGS",
            partner_center_standin::CERT_ORGANIZATION.to_string(),
        ),
        ("COSELL_WEBHOOK_CERT_ROOTS", roots.display().to_string()),
        ("COSELL_DATAVERSE_URL", dv.base_url().to_string()),
        ("COSELL_DV_TOKEN_URL", dv.token_url().to_string()),
        ("COSELL_DV_CLIENT_ID", dv_cfg.client_id.clone()),
        ("COSELL_DV_CLIENT_SECRET", dv_cfg.client_secret.clone()),
        ("COSELL_DATA_DIR", data_dir.display().to_string()),
        ("COSELL_HTTP_TIMEOUT", "5s".to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

impl Harness {
    pub async fn start() -> Harness {
        Harness::start_with(&[]).await
    }

    /// `extra` settings override the defaults (e.g. `("COSELL_SYNC_COSELL_ONLY", "true")`).
    pub async fn start_with(extra: &[(&str, &str)]) -> Harness {
        let loopback = "127.0.0.1:0".parse().expect("loopback address");
        let (pc, _) = partner_center_standin::StandinHandle::start(loopback)
            .await
            .expect("start the Partner Center stand-in");
        let (dv, _) = dataverse_standin::StandinHandle::start(loopback)
            .await
            .expect("start the Dataverse stand-in");
        let dir = tempfile::tempdir().expect("temp dir");
        let mut settings = standin_settings(&pc, &dv, dir.path());
        for (k, v) in extra {
            settings.retain(|(key, _)| key != k);
            settings.push((k.to_string(), v.to_string()));
        }
        let config = Config::load(&Source::from_pairs(settings)).expect("valid settings");
        let db = dir.path().join("cosell.db");
        let store = Arc::new(SqliteStore::open(&db).expect("open store"));
        let queue = Arc::new(SqliteQueue::open_fifo(&db, "sync", 10).expect("open the sync queue"));
        let http = wiring::http_client(&config).expect("http client");
        let mut engine = Engine::from_config(&config, &http, store.clone() as Arc<dyn Store>, None)
            .expect("engine from settings");
        // Same retry logic as production, with test-sized waits.
        engine.pc = Arc::new(cosell::partner_center::PartnerCenterClient::new(
            http.clone(),
            Arc::new(token_provider(&config, &http, true)),
            config.pc_api_url.clone(),
            config.pc_webhook_api_url.clone(),
            RetryPolicy::fast(),
        ));
        engine.dv = Arc::new(
            cosell::dataverse::DataverseClient::new(
                http.clone(),
                Arc::new(token_provider(&config, &http, false)),
                config.dataverse_url.clone(),
                config.columns.clone(),
                RetryPolicy::fast(),
            )
            // As the wiring does: reads select every column the mapping reads.
            .with_mapping(&engine.mapping),
        );
        Harness {
            pc,
            dv,
            config,
            store,
            queue,
            engine,
            http,
            dir,
        }
    }

    /// A referral as Microsoft sends it, reconciled by its webhook's message into a new
    /// opportunity: (referral id, opportunity id).
    pub async fn synced_incoming_referral(&self, name: &str, customer: &str) -> (String, String) {
        let created = self.pc.create_incoming_referral(name, customer);
        let rid = created["id"].as_str().expect("referral id").to_string();
        let m = SyncMessage::for_referral(self.store.as_ref(), &rid, Origin::Referral, None)
            .await
            .expect("key the message");
        match reconcile_pair(&self.engine, &m).await {
            Ok(PairOutcome::OpportunityCreated { opportunity_id, .. }) => (rid, opportunity_id),
            other => panic!("expected an opportunity created, got {other:?}"),
        }
    }
}

pub fn token_provider(
    config: &Config,
    http: &reqwest::Client,
    partner_center: bool,
) -> cosell::entra::TokenProvider {
    let (url, id, secret, scope) = if partner_center {
        (
            config.pc_token_url(),
            config.pc_client_id.clone(),
            config.pc_client_secret.clone(),
            cosell::partner_center::REFERRALS_SCOPE.to_string(),
        )
    } else {
        (
            config.dv_token_url(),
            config.dv_client_id.clone(),
            config.dv_client_secret.clone(),
            cosell::dataverse::DataverseClient::scope_for(&config.dataverse_url),
        )
    };
    cosell::entra::TokenProvider::new(
        http.clone(),
        url,
        id,
        secret,
        scope,
        cosell::entra::Grant::ClientCredentials,
        RetryPolicy::fast(),
    )
}
