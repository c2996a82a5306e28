//! The functions' Secrets Manager side against moto: credentials read from the two secrets,
//! and a rotated Partner Center refresh token written back without touching the other keys.

// The same moto launcher as the store and queue contract suites.
#[path = "../../shared/tests/moto_server/mod.rs"]
mod moto;

use cosell::entra::RefreshTokenStore;
use cosell::store::aws_local;
use cosell::Secret;
use cosell_edge::secrets::{
    read_secret, settings_from, SecretsManagerRefreshStore, PARTNER_CENTER_KEYS,
};
use serde_json::json;

async fn client(moto: &str) -> aws_sdk_secretsmanager::Client {
    aws_sdk_secretsmanager::Client::new(&aws_local::sdk_config(moto, moto::REGION).await)
}

async fn create(client: &aws_sdk_secretsmanager::Client, value: &str) -> String {
    client
        .create_secret()
        .name(moto::unique("cosell/pc"))
        .secret_string(value)
        .send()
        .await
        .unwrap()
        .arn()
        .unwrap()
        .to_string()
}

#[tokio::test]
async fn a_rotated_refresh_token_is_stored_and_the_other_keys_kept() {
    let Some(moto) = moto::url() else { return };
    let sm = client(&moto).await;
    let arn = create(
        &sm,
        &json!({"client_id": "pc-app", "client_secret": "pc-secret", "refresh_token": "rt-old"})
            .to_string(),
    )
    .await;

    let secret = read_secret(&sm, &arn).await.unwrap();
    let settings = settings_from(&arn, &secret, &PARTNER_CENTER_KEYS).unwrap();
    assert!(settings.contains(&("COSELL_PC_REFRESH_TOKEN".into(), "rt-old".into())));

    SecretsManagerRefreshStore::new(sm.clone(), &arn)
        .save(&Secret::new("rt-new"))
        .await
        .unwrap();
    let after = read_secret(&sm, &arn).await.unwrap();
    assert_eq!(after["refresh_token"], "rt-new");
    assert_eq!(after["client_id"], "pc-app");
    assert_eq!(after["client_secret"], "pc-secret");
}

#[tokio::test]
async fn an_unreadable_secret_is_named_without_its_value() {
    let Some(moto) = moto::url() else { return };
    let sm = client(&moto).await;
    let arn = create(&sm, "client_secret=hunter2").await;
    let err = read_secret(&sm, &arn).await.unwrap_err().to_string();
    assert!(err.contains(&arn) && err.contains("not JSON"), "{err}");
    assert!(!err.contains("hunter2"), "{err}");

    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:cosell/none-AbCdEf";
    let err = read_secret(&sm, missing).await.unwrap_err().to_string();
    assert!(
        err.contains(missing) && err.contains("GetSecretValue"),
        "{err}"
    );

    // Saving into a secret that is gone fails with the reason, for the token provider to log.
    let err = SecretsManagerRefreshStore::new(sm, missing)
        .save(&Secret::new("rt-new"))
        .await
        .unwrap_err();
    assert!(err.contains(missing), "{err}");
}
