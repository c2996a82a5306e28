//! The two Secrets Manager secrets: the Partner Center app
//! (`{"client_id","client_secret","refresh_token"}`) and the Dataverse app
//! (`{"client_id","client_secret"}`), read once at cold start and turned into the `COSELL_*`
//! settings they stand for. Rotated Partner Center refresh tokens are written back with
//! [`SecretsManagerRefreshStore`] so the next cold start uses the newest one, through
//! [`write_key_versioned`]: a new version that becomes `AWSCURRENT` only if the version read
//! still is, so a concurrent writer or a manual rotation is never reverted.

use async_trait::async_trait;
use aws_sdk_secretsmanager::error::DisplayErrorContext;
use aws_sdk_secretsmanager::Client;
use cosell::entra::RefreshTokenStore;
use cosell::Secret;
use serde_json::{Map, Value};

use crate::EdgeError;

/// Which JSON key of a secret stands for which setting, and whether it must be there.
pub struct SecretKey {
    pub key: &'static str,
    pub setting: &'static str,
    pub required: bool,
}

pub const PARTNER_CENTER_KEYS: [SecretKey; 3] = [
    SecretKey {
        key: "client_id",
        setting: "COSELL_PC_CLIENT_ID",
        required: true,
    },
    SecretKey {
        key: "client_secret",
        setting: "COSELL_PC_CLIENT_SECRET",
        required: true,
    },
    // Without one the app-only grant is used (enough for some Partner Center calls only).
    SecretKey {
        key: "refresh_token",
        setting: "COSELL_PC_REFRESH_TOKEN",
        required: false,
    },
];

pub const DATAVERSE_KEYS: [SecretKey; 2] = [
    SecretKey {
        key: "client_id",
        setting: "COSELL_DV_CLIENT_ID",
        required: true,
    },
    SecretKey {
        key: "client_secret",
        setting: "COSELL_DV_CLIENT_SECRET",
        required: true,
    },
];

/// The JSON key of the Partner Center secret that holds the refresh token.
pub const REFRESH_TOKEN_KEY: &str = "refresh_token";

fn secret_error(arn: &str, reason: impl Into<String>) -> EdgeError {
    EdgeError::Secret {
        arn: arn.to_string(),
        reason: reason.into(),
    }
}

/// Parses a secret's text as a JSON object. The error names what is wrong, never the value.
pub fn parse_secret(arn: &str, text: &str) -> Result<Map<String, Value>, EdgeError> {
    match serde_json::from_str::<Value>(text) {
        Ok(Value::Object(map)) => Ok(map),
        Ok(_) => Err(secret_error(arn, "is JSON but not an object")),
        Err(_) => Err(secret_error(
            arn,
            "is not JSON (expected an object such as {\"client_id\":\"...\",\"client_secret\":\"...\"})",
        )),
    }
}

/// The settings a secret's JSON stands for, as `(COSELL_*, value)` pairs.
pub fn settings_from(
    arn: &str,
    secret: &Map<String, Value>,
    keys: &[SecretKey],
) -> Result<Vec<(String, String)>, EdgeError> {
    let mut pairs = Vec::new();
    for k in keys {
        match secret.get(k.key) {
            Some(Value::String(v)) if !v.trim().is_empty() => {
                pairs.push((k.setting.to_string(), v.trim().to_string()))
            }
            None | Some(Value::Null) if !k.required => {}
            Some(Value::String(_)) if !k.required => {}
            None | Some(Value::Null) => {
                return Err(secret_error(arn, format!("has no \"{}\" key", k.key)))
            }
            Some(_) => {
                return Err(secret_error(
                    arn,
                    format!("\"{}\" must be a non-empty string", k.key),
                ))
            }
        }
    }
    Ok(pairs)
}

/// Reads the secret's current value as a JSON object.
pub async fn read_secret(client: &Client, arn: &str) -> Result<Map<String, Value>, EdgeError> {
    Ok(read_current(client, arn).await?.value)
}

/// A secret's `AWSCURRENT` value and the version it is.
#[derive(Debug, Clone)]
pub struct VersionedSecret {
    pub version_id: String,
    /// When this version was written (the refresh token's last rotation, for `doctor`).
    pub created: Option<std::time::SystemTime>,
    pub value: Map<String, Value>,
}

/// Reads the `AWSCURRENT` version. The stage is named explicitly: it is the default on AWS,
/// and moto's default does not follow `UpdateSecretVersionStage`.
pub async fn read_current(client: &Client, arn: &str) -> Result<VersionedSecret, EdgeError> {
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .version_stage(CURRENT_STAGE)
        .send()
        .await
        .map_err(|e| secret_error(arn, format!("GetSecretValue: {}", DisplayErrorContext(&e))))?;
    let text = out
        .secret_string()
        .ok_or_else(|| secret_error(arn, "has no string value (binary secrets are not read)"))?;
    let version_id = out
        .version_id()
        .ok_or_else(|| secret_error(arn, "GetSecretValue returned no VersionId"))?
        .to_string();
    let created = out
        .created_date()
        .and_then(|d| std::time::SystemTime::try_from(*d).ok());
    Ok(VersionedSecret {
        version_id,
        created,
        value: parse_secret(arn, text)?,
    })
}

/// The stage Secrets Manager serves by default.
pub const CURRENT_STAGE: &str = "AWSCURRENT";

/// The label a new version carries until it is made current (a version needs a label to
/// stay; Secrets Manager moves it off the previous pending version by itself).
pub const PENDING_STAGE: &str = "COSELL_PENDING";

/// The `event` field of the log line written when a rotated refresh token could not be
/// saved; template.yaml's metric filter counts these lines and alarms on them.
pub const SAVE_FAILED_EVENT: &str = "refresh_token_save_failed";

/// Why a versioned write did not become current.
#[derive(Debug, thiserror::Error)]
pub enum SaveError {
    /// Reading or writing failed (no access, no such secret, not JSON, network).
    #[error(transparent)]
    Failed(#[from] EdgeError),
    /// Someone made another version current after ours was read: theirs is kept, ours is
    /// left as a non-current version. Not retried: the other value may be a manual rotation.
    #[error("secret {arn}: another version ({current}) became current after version {read} was read; it was kept and this write was not applied")]
    LostRace {
        arn: String,
        read: String,
        current: String,
    },
}

/// Sets `key` to `value` in the secret's JSON, keeping its other keys: reads the current
/// version, writes the new JSON as a pending version, then moves `AWSCURRENT` onto it only
/// from the version read. Returns the new version id.
pub async fn write_key_versioned(
    client: &Client,
    arn: &str,
    key: &str,
    value: &Secret,
) -> Result<String, SaveError> {
    let read = read_current(client, arn).await?;
    write_over(client, arn, read, key, value).await
}

/// The write half of [`write_key_versioned`], on a version read earlier: `AWSCURRENT` moves
/// to the new version only if it is still on `read`.
pub async fn write_over(
    client: &Client,
    arn: &str,
    read: VersionedSecret,
    key: &str,
    value: &Secret,
) -> Result<String, SaveError> {
    let mut json = read.value;
    json.insert(key.to_string(), Value::String(value.expose().to_string()));
    let new_version = uuid::Uuid::new_v4().to_string();
    client
        .put_secret_value()
        .secret_id(arn)
        .client_request_token(&new_version)
        .secret_string(Value::Object(json).to_string())
        .version_stages(PENDING_STAGE)
        .send()
        .await
        .map_err(|e| secret_error(arn, format!("PutSecretValue: {}", DisplayErrorContext(&e))))?;
    let moved = client
        .update_secret_version_stage()
        .secret_id(arn)
        .version_stage(CURRENT_STAGE)
        .move_to_version_id(&new_version)
        .remove_from_version_id(&read.version_id)
        .send()
        .await;
    match moved {
        Ok(_) => Ok(new_version),
        Err(e) => {
            // Refused because the stage left the version read? Then it is a lost race.
            let invalid = e
                .as_service_error()
                .is_some_and(|s| s.is_invalid_parameter_exception());
            if invalid {
                if let Ok(now) = read_current(client, arn).await {
                    if now.version_id != read.version_id {
                        return Err(SaveError::LostRace {
                            arn: arn.to_string(),
                            read: read.version_id,
                            current: now.version_id,
                        });
                    }
                }
            }
            Err(secret_error(
                arn,
                format!("UpdateSecretVersionStage: {}", DisplayErrorContext(&e)),
            )
            .into())
        }
    }
}

/// Reads several secrets, in the order of `arns`: one `BatchGetSecretValue` call (a single
/// round trip at cold start) when it answers for every ARN, else one `GetSecretValue` per
/// secret, all at once. The fallback keeps roles without `secretsmanager:BatchGetSecretValue`
/// working, and names the secret that fails.
pub async fn read_secrets(
    client: &Client,
    arns: &[String],
) -> Result<Vec<Map<String, Value>>, EdgeError> {
    if arns.len() > 1 {
        if let Some(all) = batch_read(client, arns).await {
            return Ok(all);
        }
    }
    let reads = arns.iter().map(|arn| read_secret(client, arn));
    futures_util::future::try_join_all(reads).await
}

/// The values of `arns` from one `BatchGetSecretValue` call, in order; `None` unless it gave
/// a JSON string value for every one of them (then [`read_secrets`] reads them one by one).
pub async fn batch_read(client: &Client, arns: &[String]) -> Option<Vec<Map<String, Value>>> {
    let out = match client
        .batch_get_secret_value()
        .set_secret_id_list(Some(arns.to_vec()))
        .send()
        .await
    {
        Ok(out) => out,
        Err(e) => {
            tracing::debug!(error = %DisplayErrorContext(&e), "BatchGetSecretValue refused; reading the secrets one by one");
            return None;
        }
    };
    if !out.errors().is_empty() {
        return None;
    }
    let values = out.secret_values();
    arns.iter()
        .map(|arn| {
            let found = values
                .iter()
                .find(|v| v.arn() == Some(arn.as_str()) || v.name() == Some(arn.as_str()))?;
            parse_secret(arn, found.secret_string()?).ok()
        })
        .collect()
}

/// Writes rotated Partner Center refresh tokens back into their secret, keeping its other
/// keys (client id and secret) as they are, with [`write_key_versioned`].
pub struct SecretsManagerRefreshStore {
    client: Client,
    arn: String,
}

impl SecretsManagerRefreshStore {
    pub fn new(client: Client, arn: impl Into<String>) -> Self {
        SecretsManagerRefreshStore {
            client,
            arn: arn.into(),
        }
    }
}

#[async_trait]
impl RefreshTokenStore for SecretsManagerRefreshStore {
    async fn save(&self, token: &Secret) -> Result<(), String> {
        match write_key_versioned(&self.client, &self.arn, REFRESH_TOKEN_KEY, token).await {
            Ok(version) => {
                tracing::info!(secret = %self.arn, %version, "stored the rotated Partner Center refresh token");
                Ok(())
            }
            Err(e @ SaveError::LostRace { .. }) => {
                // Another instance (or a person) saved a token meanwhile; both are valid.
                tracing::warn!(event = "refresh_token_save_lost_race", error = %e, "kept the refresh token saved meanwhile");
                Err(e.to_string())
            }
            Err(e) => {
                tracing::error!(event = SAVE_FAILED_EVENT, error = %e, "could not save the rotated Partner Center refresh token");
                Err(e.to_string())
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ARN: &str = "arn:aws:secretsmanager:us-east-1:123456789012:secret:cosell/pc-AbCdEf";

    #[test]
    fn partner_center_secret_becomes_its_settings() {
        let s = parse_secret(
            ARN,
            r#"{"client_id":"app-1","client_secret":"s3cr3t","refresh_token":"rt-1","note":"x"}"#,
        )
        .unwrap();
        let pairs = settings_from(ARN, &s, &PARTNER_CENTER_KEYS).unwrap();
        assert_eq!(
            pairs,
            vec![
                ("COSELL_PC_CLIENT_ID".to_string(), "app-1".to_string()),
                ("COSELL_PC_CLIENT_SECRET".to_string(), "s3cr3t".to_string()),
                ("COSELL_PC_REFRESH_TOKEN".to_string(), "rt-1".to_string()),
            ]
        );
    }

    #[test]
    fn the_refresh_token_is_optional_but_the_client_is_not() {
        let s = parse_secret(ARN, r#"{"client_id":"app-1","client_secret":"s3cr3t"}"#).unwrap();
        assert_eq!(
            settings_from(ARN, &s, &PARTNER_CENTER_KEYS).unwrap().len(),
            2
        );

        let s = parse_secret(ARN, r#"{"client_id":"app-1"}"#).unwrap();
        let err = settings_from(ARN, &s, &DATAVERSE_KEYS)
            .unwrap_err()
            .to_string();
        assert!(err.contains("client_secret") && err.contains(ARN), "{err}");

        let s = parse_secret(ARN, r#"{"client_id":"app-1","client_secret":42}"#).unwrap();
        let err = settings_from(ARN, &s, &DATAVERSE_KEYS)
            .unwrap_err()
            .to_string();
        assert!(err.contains("non-empty string"), "{err}");
    }

    #[test]
    fn a_malformed_secret_is_named_without_its_value() {
        let err = parse_secret(ARN, "client_secret=hunter2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("is not JSON"), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
        let err = parse_secret(ARN, r#"["hunter2"]"#).unwrap_err().to_string();
        assert!(
            err.contains("not an object") && !err.contains("hunter2"),
            "{err}"
        );
    }
}
