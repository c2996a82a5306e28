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

mod versioned {
    use super::*;
    use cosell_edge::secrets::{read_current, write_key_versioned, write_over, SaveError};

    async fn stages(sm: &aws_sdk_secretsmanager::Client, arn: &str, version: &str) -> Vec<String> {
        let d = sm.describe_secret().secret_id(arn).send().await.unwrap();
        d.version_ids_to_stages()
            .and_then(|m| m.get(version).cloned())
            .unwrap_or_default()
    }

    #[tokio::test]
    async fn a_write_makes_a_new_current_version_from_the_one_read() {
        let Some(moto) = moto::url() else { return };
        let sm = client(&moto).await;
        let arn = create(
            &sm,
            &json!({"client_id": "pc-app", "client_secret": "pc-secret", "refresh_token": "rt-old"})
                .to_string(),
        )
        .await;
        let before = read_current(&sm, &arn).await.unwrap();
        let new = write_key_versioned(&sm, &arn, "refresh_token", &Secret::new("rt-new"))
            .await
            .unwrap();
        assert_ne!(new, before.version_id);
        let after = read_current(&sm, &arn).await.unwrap();
        assert_eq!(after.version_id, new);
        assert_eq!(after.value["refresh_token"], "rt-new");
        assert_eq!(after.value["client_secret"], "pc-secret");
        assert!(stages(&sm, &arn, &new)
            .await
            .contains(&"AWSCURRENT".to_string()));
        assert_eq!(
            stages(&sm, &arn, &before.version_id).await,
            vec!["AWSPREVIOUS"]
        );
    }

    #[tokio::test]
    async fn a_manual_rotation_made_meanwhile_is_not_reverted() {
        let Some(moto) = moto::url() else { return };
        let sm = client(&moto).await;
        let arn = create(
            &sm,
            &json!({"client_id": "pc-app", "client_secret": "old-secret", "refresh_token": "rt-1"})
                .to_string(),
        )
        .await;
        let read = read_current(&sm, &arn).await.unwrap();
        // An operator rotates the client secret between our read and our write.
        sm.put_secret_value()
            .secret_id(&arn)
            .secret_string(
                json!({"client_id": "pc-app", "client_secret": "rotated", "refresh_token": "rt-1"})
                    .to_string(),
            )
            .send()
            .await
            .unwrap();
        let err = write_over(
            &sm,
            &arn,
            read.clone(),
            "refresh_token",
            &Secret::new("rt-2"),
        )
        .await
        .unwrap_err();
        assert!(matches!(err, SaveError::LostRace { .. }), "{err}");
        assert!(!err.to_string().contains("rt-2"), "{err}");
        let now = read_current(&sm, &arn).await.unwrap();
        assert_eq!(now.value["client_secret"], "rotated");
        assert_eq!(now.value["refresh_token"], "rt-1");
    }

    #[tokio::test]
    async fn of_two_writers_from_the_same_read_the_second_loses() {
        let Some(moto) = moto::url() else { return };
        let sm = client(&moto).await;
        let arn = create(
            &sm,
            &json!({"client_id": "pc-app", "client_secret": "s", "refresh_token": "rt-1"})
                .to_string(),
        )
        .await;
        let read = read_current(&sm, &arn).await.unwrap();
        let first = write_over(
            &sm,
            &arn,
            read.clone(),
            "refresh_token",
            &Secret::new("rt-a"),
        )
        .await
        .unwrap();
        let err = write_over(&sm, &arn, read, "refresh_token", &Secret::new("rt-b"))
            .await
            .unwrap_err();
        match err {
            SaveError::LostRace { current, .. } => assert_eq!(current, first),
            other => panic!("expected a lost race, got {other}"),
        }
        assert_eq!(
            read_current(&sm, &arn).await.unwrap().value["refresh_token"],
            "rt-a"
        );
        // The store reports the lost race to the token provider instead of overwriting.
        let stored = SecretsManagerRefreshStore::new(sm.clone(), &arn)
            .save(&Secret::new("rt-c"))
            .await;
        assert!(stored.is_ok(), "a fresh read writes again: {stored:?}");
        assert_eq!(
            read_current(&sm, &arn).await.unwrap().value["refresh_token"],
            "rt-c"
        );
    }
}

/// The line template.yaml's metric filter counts (`{ $.event = "refresh_token_save_failed" }`)
/// is written, in the functions' flattened JSON format, when a save fails; the secret's value
/// is not in it.
#[tokio::test(flavor = "current_thread")]
async fn a_failed_save_writes_the_line_the_alarm_counts() {
    let Some(moto) = moto::url() else { return };
    let capture = cosell_tests::log_capture::LogCapture::default();
    let subscriber = tracing_subscriber::fmt()
        .json()
        .flatten_event(true)
        .with_writer(capture.clone())
        .finish();
    let _guard = tracing::subscriber::set_default(subscriber);
    let sm = client(&moto).await;
    let missing = "arn:aws:secretsmanager:us-east-1:123456789012:secret:cosell/gone-AbCdEf";
    let saved = SecretsManagerRefreshStore::new(sm, missing)
        .save(&Secret::new("rt-never-logged"))
        .await;
    assert!(saved.is_err());
    let text = capture.text();
    let line = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == cosell_edge::secrets::SAVE_FAILED_EVENT)
        .unwrap_or_else(|| panic!("no save-failure line in:\n{text}"));
    assert_eq!(line["level"], "ERROR");
    assert!(!text.contains("rt-never-logged"));
}
