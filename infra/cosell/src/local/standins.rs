//! Both stand-ins in this process, and the settings that point the connector at them.

use std::net::SocketAddr;
use std::path::Path;

use anyhow::Context;
use url::Url;

/// The tenant the stand-ins' token endpoints answer for.
pub const TENANT: &str = "contoso-tenant";

pub struct Standins {
    pub pc: partner_center_standin::StandinHandle,
    pub dv: dataverse_standin::StandinHandle,
}

impl Standins {
    /// Serves both on loopback (`port 0`: any free port).
    pub async fn start(pc_addr: SocketAddr, dv_addr: SocketAddr) -> anyhow::Result<Standins> {
        Self::start_with(pc_addr, dv_addr, Default::default(), Default::default()).await
    }

    /// As [`Standins::start`], with each stand-in's own settings (e.g. a Dataverse org
    /// whose connector columns are not created yet).
    pub async fn start_with(
        pc_addr: SocketAddr,
        dv_addr: SocketAddr,
        pc_config: partner_center_standin::StandinConfig,
        dv_config: dataverse_standin::StandinConfig,
    ) -> anyhow::Result<Standins> {
        let (pc, _) = partner_center_standin::StandinHandle::start_with(pc_addr, pc_config)
            .await
            .with_context(|| format!("cannot start the Partner Center stand-in on {pc_addr}"))?;
        let (dv, _) = dataverse_standin::StandinHandle::start_with(dv_addr, dv_config)
            .await
            .with_context(|| format!("cannot start the Dataverse stand-in on {dv_addr}"))?;
        Ok(Standins { pc, dv })
    }

    pub fn pc_url(&self) -> Url {
        self.pc.base_url()
    }

    pub fn dv_url(&self) -> Url {
        self.dv.base_url()
    }

    /// Every setting the connector needs to run against the stand-ins, with its data in
    /// `data_dir`. Add `COSELL_LISTEN`, `COSELL_POLL_INTERVAL`, ... as wanted.
    pub fn settings(&self, data_dir: &Path) -> Vec<(String, String)> {
        let pc_cfg = self.pc.config();
        let dv_cfg = self.dv.config();
        let pc_host = self.pc_url().host_str().unwrap_or("127.0.0.1").to_string();
        // Its signing certificate chains to a CA made at its start, trusted only explicitly.
        let roots = data_dir.join("standin-root.pem");
        if let Err(e) =
            super::data_dir::create(data_dir).and_then(|()| self.pc.write_root_pem(&roots))
        {
            tracing::error!(error = %e, "cannot write the stand-in's CA; webhooks will be refused");
        }
        [
            ("COSELL_TENANT_ID", TENANT.to_string()),
            ("COSELL_PC_TOKEN_URL", self.pc.token_url(TENANT).to_string()),
            ("COSELL_PC_CLIENT_ID", pc_cfg.client_id.clone()),
            ("COSELL_PC_CLIENT_SECRET", pc_cfg.client_secret.clone()),
            ("COSELL_PC_API_URL", self.pc_url().to_string()),
            ("COSELL_PC_WEBHOOK_API_URL", self.pc_url().to_string()),
            // The stand-in serves its own signing certificate.
            ("COSELL_WEBHOOK_CERT_HOSTS", pc_host),
            (
                "COSELL_WEBHOOK_CERT_ORGS",
                partner_center_standin::CERT_ORGANIZATION.to_string(),
            ),
            ("COSELL_WEBHOOK_CERT_ROOTS", roots.display().to_string()),
            ("COSELL_DATAVERSE_URL", self.dv_url().to_string()),
            ("COSELL_DV_TOKEN_URL", self.dv.token_url().to_string()),
            ("COSELL_DV_CLIENT_ID", dv_cfg.client_id.clone()),
            ("COSELL_DV_CLIENT_SECRET", dv_cfg.client_secret.clone()),
            ("COSELL_DATA_DIR", data_dir.display().to_string()),
            ("COSELL_HTTP_TIMEOUT", "5s".to_string()),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v))
        .collect()
    }

    pub async fn shutdown(self) {
        self.pc.shutdown().await;
        self.dv.shutdown().await;
    }
}

/// `settings` with `extra` replacing values of the same name.
pub fn overlay(
    mut settings: Vec<(String, String)>,
    extra: &[(&str, String)],
) -> Vec<(String, String)> {
    for (k, v) in extra {
        settings.retain(|(key, _)| key != k);
        settings.push((k.to_string(), v.clone()));
    }
    settings
}
