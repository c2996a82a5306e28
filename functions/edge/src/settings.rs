//! Settings of a function: the template's environment variables, with the credentials read
//! from the Secrets Manager secrets that `COSELL_PC_SECRET_ARN` and `COSELL_DV_SECRET_ARN`
//! name (never from plain variables), layered on top.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use cosell::config::{Source, DEFAULT_CERT_HOSTS, DEFAULT_CERT_ORGANIZATION};
use cosell::partner_center::webhook_verify::{HttpCertificateSource, TrustRoots, WebhookVerifier};
use cosell::Config;

use crate::secrets::{read_secrets, settings_from, SecretKey, DATAVERSE_KEYS, PARTNER_CENTER_KEYS};
use crate::EdgeError;

pub const PC_SECRET_ARN: &str = "COSELL_PC_SECRET_ARN";
pub const DV_SECRET_ARN: &str = "COSELL_DV_SECRET_ARN";

/// Stands in for the credentials of a service a function never calls, so that `Config`
/// validates without the function being granted that service's secret.
pub const NOT_USED: &str = "not-used-by-this-function";

/// The value of a variable the template sets, trimmed; a clear error when it is missing.
pub fn required_var(name: &'static str) -> Result<String, EdgeError> {
    std::env::var(name)
        .ok()
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .ok_or(EdgeError::MissingSetting(name))
}

/// The services whose credentials a function needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Services {
    pub partner_center: bool,
    pub dataverse: bool,
}

impl Services {
    pub const BOTH: Services = Services {
        partner_center: true,
        dataverse: true,
    };
    pub const PARTNER_CENTER: Services = Services {
        partner_center: true,
        dataverse: false,
    };
}

/// The settings that stand in for the credentials of services not in `services`.
pub fn placeholders(services: Services) -> Vec<(String, String)> {
    let mut pairs = Vec::new();
    if !services.partner_center {
        for k in PARTNER_CENTER_KEYS.iter().filter(|k| k.required) {
            pairs.push((k.setting.to_string(), NOT_USED.to_string()));
        }
    }
    if !services.dataverse {
        for k in DATAVERSE_KEYS.iter().filter(|k| k.required) {
            pairs.push((k.setting.to_string(), NOT_USED.to_string()));
        }
    }
    pairs
}

/// Reads the secrets of `services` and returns the validated config: the environment with
/// the secrets' values on top.
pub async fn load_config(
    secrets: &aws_sdk_secretsmanager::Client,
    services: Services,
) -> Result<Config, EdgeError> {
    let mut pairs = placeholders(services);
    let mut wanted: Vec<(String, &[SecretKey])> = Vec::new();
    if services.partner_center {
        wanted.push((required_var(PC_SECRET_ARN)?, &PARTNER_CENTER_KEYS));
    }
    if services.dataverse {
        wanted.push((required_var(DV_SECRET_ARN)?, &DATAVERSE_KEYS));
    }
    // Every secret in one call: each read is a network round trip of the cold start.
    let arns: Vec<String> = wanted.iter().map(|(arn, _)| arn.clone()).collect();
    let values = read_secrets(secrets, &arns).await?;
    for ((arn, keys), secret) in wanted.iter().zip(&values) {
        pairs.extend(settings_from(arn, secret, keys)?);
    }
    Ok(Config::load(&Source::from_env_with(pairs))?)
}

/// What the webhook intake needs, and no more: it holds no Partner Center or Dataverse
/// credentials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IntakeSettings {
    pub cert_hosts: Vec<String>,
    pub cert_organizations: Vec<String>,
    /// `COSELL_WEBHOOK_CERT_ROOTS`: a PEM file of the roots trusted instead of the built-in
    /// ones (a local stand-in's test CA; unset in a real deployment).
    pub cert_roots: Option<PathBuf>,
    /// Timeout of each certificate download.
    pub http_timeout: Duration,
}

/// A comma-separated list; `None` when the variable is unset or blank.
fn list(raw: Option<String>, lowercase: bool) -> Option<Vec<String>> {
    let raw = raw.filter(|v| !v.trim().is_empty())?;
    Some(
        raw.split(',')
            .map(|v| v.trim())
            .filter(|v| !v.is_empty())
            .map(|v| {
                if lowercase {
                    v.to_ascii_lowercase()
                } else {
                    v.to_string()
                }
            })
            .collect(),
    )
}

impl IntakeSettings {
    /// From `COSELL_WEBHOOK_CERT_HOSTS`, `COSELL_WEBHOOK_CERT_ORGS` and `COSELL_HTTP_TIMEOUT`
    /// (the same variables and defaults as the full config).
    pub fn from_lookup(var: impl Fn(&str) -> Option<String>) -> Result<Self, EdgeError> {
        let cert_hosts = list(var("COSELL_WEBHOOK_CERT_HOSTS"), true)
            .unwrap_or_else(|| vec![DEFAULT_CERT_HOSTS.to_string()]);
        if cert_hosts.is_empty() {
            return Err(EdgeError::BadSetting {
                name: "COSELL_WEBHOOK_CERT_HOSTS",
                reason: "needs at least one host".into(),
            });
        }
        let cert_organizations = list(var("COSELL_WEBHOOK_CERT_ORGS"), false)
            .unwrap_or_else(|| vec![DEFAULT_CERT_ORGANIZATION.to_string()]);
        let http_timeout = match var("COSELL_HTTP_TIMEOUT").filter(|v| !v.trim().is_empty()) {
            None => Duration::from_secs(5),
            Some(raw) => cosell::duration_text::parse_duration(&raw)
                .ok()
                .filter(|d| !d.is_zero())
                .ok_or_else(|| EdgeError::BadSetting {
                    name: "COSELL_HTTP_TIMEOUT",
                    reason: format!("'{raw}' is not a duration such as 5s"),
                })?,
        };
        let cert_roots = var("COSELL_WEBHOOK_CERT_ROOTS")
            .map(|v| v.trim().to_string())
            .filter(|v| !v.is_empty())
            .map(PathBuf::from);
        Ok(IntakeSettings {
            cert_hosts,
            cert_organizations,
            cert_roots,
            http_timeout,
        })
    }

    pub fn from_env() -> Result<Self, EdgeError> {
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// The verifier, downloading certificates with this timeout (a client of its own that
    /// follows no redirect).
    pub fn verifier(&self) -> Result<WebhookVerifier, EdgeError> {
        let source =
            HttpCertificateSource::with_builder(self.http_timeout, crate::tls::reqwest_builder()?)
                .map_err(|e| EdgeError::BadSetting {
                    name: "COSELL_HTTP_TIMEOUT",
                    reason: format!("cannot build the HTTP client: {e}"),
                })?;
        let verifier = WebhookVerifier::new(self.cert_hosts.clone(), Arc::new(source))
            .with_organizations(self.cert_organizations.clone());
        Ok(match &self.cert_roots {
            None => verifier,
            Some(path) => verifier.with_roots(TrustRoots::from_file(path).map_err(|reason| {
                EdgeError::BadSetting {
                    name: "COSELL_WEBHOOK_CERT_ROOTS",
                    reason: format!("{}: {reason}", path.display()),
                }
            })?),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars<'a>(pairs: &'a [(&'a str, &'a str)]) -> impl Fn(&str) -> Option<String> + 'a {
        move |name| {
            pairs
                .iter()
                .find(|(k, _)| *k == name)
                .map(|(_, v)| v.to_string())
        }
    }

    #[test]
    fn intake_defaults_to_microsofts_certificate_host() {
        let s = IntakeSettings::from_lookup(vars(&[])).unwrap();
        assert_eq!(s.cert_hosts, vec![DEFAULT_CERT_HOSTS.to_string()]);
        assert_eq!(
            s.cert_organizations,
            vec![DEFAULT_CERT_ORGANIZATION.to_string()]
        );
        assert_eq!(s.http_timeout, Duration::from_secs(5));
    }

    #[test]
    fn intake_reads_lists_and_rejects_bad_values() {
        let s = IntakeSettings::from_lookup(vars(&[
            (
                "COSELL_WEBHOOK_CERT_HOSTS",
                " A.example.com, b.example.com ,",
            ),
            ("COSELL_WEBHOOK_CERT_ORGS", "Contoso Ltd"),
            ("COSELL_HTTP_TIMEOUT", "3s"),
        ]))
        .unwrap();
        assert_eq!(s.cert_hosts, vec!["a.example.com", "b.example.com"]);
        assert_eq!(s.cert_organizations, vec!["Contoso Ltd"]);
        assert_eq!(s.http_timeout, Duration::from_secs(3));

        let err = IntakeSettings::from_lookup(vars(&[("COSELL_WEBHOOK_CERT_HOSTS", ",")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("COSELL_WEBHOOK_CERT_HOSTS"), "{err}");
        let err = IntakeSettings::from_lookup(vars(&[("COSELL_HTTP_TIMEOUT", "soon")]))
            .unwrap_err()
            .to_string();
        assert!(err.contains("COSELL_HTTP_TIMEOUT"), "{err}");
    }

    #[test]
    fn only_services_not_used_get_placeholders() {
        assert!(placeholders(Services::BOTH).is_empty());
        let p = placeholders(Services::PARTNER_CENTER);
        let names: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(names, ["COSELL_DV_CLIENT_ID", "COSELL_DV_CLIENT_SECRET"]);
        assert!(p.iter().all(|(_, v)| v == NOT_USED));
    }

    #[test]
    fn the_config_takes_the_secrets_values() {
        let config = Config::load(&Source::from_env_with([
            ("COSELL_TENANT_ID", "contoso.onmicrosoft.com"),
            ("COSELL_DATAVERSE_URL", "https://contoso.crm.dynamics.com"),
            ("COSELL_PC_CLIENT_ID", "pc-app"),
            ("COSELL_PC_CLIENT_SECRET", "pc-secret"),
            ("COSELL_DV_CLIENT_ID", "dv-app"),
            ("COSELL_DV_CLIENT_SECRET", "dv-secret"),
        ]))
        .unwrap();
        assert_eq!(config.pc_client_id, "pc-app");
        assert_eq!(config.dv_client_secret.expose(), "dv-secret");
        assert_eq!(config.tenant_id, "contoso.onmicrosoft.com");
    }
}
