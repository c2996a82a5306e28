//! The functions' Secrets Manager side against moto: credentials read from the two secrets,
//! and a rotated Partner Center refresh token written back without touching the other keys.

// The same moto launcher as the store and queue contract suites.
#[path = "../../shared/tests/moto_server/mod.rs"]
mod moto;

use cosell::entra::RefreshTokenStore;
use cosell::store::aws_local;
use cosell::Secret;
use cosell_edge::secrets::{
    batch_read, read_secret, read_secrets, settings_from, SecretsManagerRefreshStore,
    PARTNER_CENTER_KEYS,
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

#[tokio::test]
async fn several_secrets_come_back_in_order_from_one_batch_call() {
    let Some(moto) = moto::url() else { return };
    let sm = client(&moto).await;
    let pc = create(&sm, &json!({"client_id": "pc-app"}).to_string()).await;
    let dv = create(&sm, &json!({"client_id": "dv-app"}).to_string()).await;

    let arns = vec![dv.clone(), pc.clone()];
    let batch = batch_read(&sm, &arns)
        .await
        .expect("one call answers for both");
    assert_eq!(batch[0]["client_id"], "dv-app");
    assert_eq!(batch[1]["client_id"], "pc-app");
    let read = read_secrets(&sm, &arns).await.unwrap();
    assert_eq!(read, batch);
}

#[tokio::test]
async fn a_batch_with_a_bad_secret_falls_back_and_names_it() {
    let Some(moto) = moto::url() else { return };
    let sm = client(&moto).await;
    let good = create(&sm, &json!({"client_id": "pc-app"}).to_string()).await;
    let unreadable = create(&sm, "client_secret=hunter2").await;
    let missing =
        "arn:aws:secretsmanager:us-east-1:123456789012:secret:cosell/none-AbCdEf".to_string();

    for bad in [&unreadable, &missing] {
        let arns = vec![good.clone(), bad.clone()];
        assert!(batch_read(&sm, &arns).await.is_none(), "{bad}");
        let err = read_secrets(&sm, &arns).await.unwrap_err().to_string();
        assert!(err.contains(bad.as_str()), "{err}");
        assert!(!err.contains("hunter2"), "{err}");
    }
}
