//! The two Secrets Manager secrets: the Partner Center app
//! (`{"client_id","client_secret","refresh_token"}`) and the Dataverse app
//! (`{"client_id","client_secret"}`), read once at cold start and turned into the `COSELL_*`
//! settings they stand for. Rotated Partner Center refresh tokens are written back with
//! [`SecretsManagerRefreshStore`] so the next cold start uses the newest one.

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
    let out = client
        .get_secret_value()
        .secret_id(arn)
        .send()
        .await
        .map_err(|e| secret_error(arn, format!("GetSecretValue: {}", DisplayErrorContext(&e))))?;
    let text = out
        .secret_string()
        .ok_or_else(|| secret_error(arn, "has no string value (binary secrets are not read)"))?;
    parse_secret(arn, text)
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
/// keys (client id and secret) as they are.
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

    async fn write(&self, token: &Secret) -> Result<(), EdgeError> {
        // Read-modify-write: the client id and secret may have been changed by hand since
        // cold start, and must not be reverted.
        let mut secret = read_secret(&self.client, &self.arn).await?;
        secret.insert(
            REFRESH_TOKEN_KEY.to_string(),
            Value::String(token.expose().to_string()),
        );
        let text = Value::Object(secret).to_string();
        self.client
            .put_secret_value()
            .secret_id(&self.arn)
            .secret_string(text)
            .send()
            .await
            .map_err(|e| {
                secret_error(
                    &self.arn,
                    format!("PutSecretValue: {}", DisplayErrorContext(&e)),
                )
            })?;
        Ok(())
    }
}

#[async_trait]
impl RefreshTokenStore for SecretsManagerRefreshStore {
    async fn save(&self, token: &Secret) -> Result<(), String> {
        self.write(token).await.map_err(|e| e.to_string())?;
        tracing::info!(secret = %self.arn, "stored the rotated Partner Center refresh token");
        Ok(())
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
