//! Configuration: defaults, validation errors that name the bad setting, file + env layering,
//! and secrets that never print.

use std::time::Duration;

use cosell::config::{Config, ConfigError, Source};

fn base() -> Vec<(&'static str, String)> {
    vec![
        ("COSELL_TENANT_ID", "contoso.onmicrosoft.com".into()),
        ("COSELL_PC_CLIENT_ID", "pc-app".into()),
        ("COSELL_PC_CLIENT_SECRET", "pc-secret-value".into()),
        (
            "COSELL_DATAVERSE_URL",
            "https://contoso.crm.dynamics.com".into(),
        ),
        ("COSELL_DV_CLIENT_ID", "dv-app".into()),
        ("COSELL_DV_CLIENT_SECRET", "dv-secret-value".into()),
    ]
}

fn with(pairs: &[(&'static str, &str)]) -> Result<Config, ConfigError> {
    let mut all = base();
    for (k, v) in pairs {
        all.retain(|(n, _)| n != k);
        all.push((k, v.to_string()));
    }
    Config::load(&Source::from_pairs(all))
}

fn without(name: &str) -> Result<Config, ConfigError> {
    let all: Vec<_> = base().into_iter().filter(|(k, _)| *k != name).collect();
    Config::load(&Source::from_pairs(all))
}

#[test]
fn defaults_are_the_documented_ones() {
    let c = with(&[]).unwrap();
    assert_eq!(
        c.authority_url.as_str(),
        "https://login.microsoftonline.com/"
    );
    assert_eq!(c.pc_api_url.as_str(), "https://api.partner.microsoft.com/");
    assert_eq!(
        c.pc_webhook_api_url.as_str(),
        "https://api.partnercenter.microsoft.com/"
    );
    assert_eq!(
        c.webhook_cert_hosts,
        vec!["3psostorageacct.blob.core.windows.net"]
    );
    assert_eq!(c.listen.to_string(), "127.0.0.1:8080");
    assert_eq!(c.poll_interval, Duration::from_secs(60));
    assert_eq!(c.data_dir, std::path::PathBuf::from("./.cosell"));
    assert!(!c.sync_cosell_only);
    assert!(c.checkmark);
    assert!(c.pc_refresh_token.is_none());
    assert_eq!(c.columns.sync_flag, "cosell_syncwithpartnercenter");
    assert_eq!(
        c.token_url().as_str(),
        "https://login.microsoftonline.com/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
}

#[test]
fn each_required_setting_is_named_when_missing() {
    for name in [
        "COSELL_TENANT_ID",
        "COSELL_PC_CLIENT_ID",
        "COSELL_PC_CLIENT_SECRET",
        "COSELL_DATAVERSE_URL",
        "COSELL_DV_CLIENT_ID",
        "COSELL_DV_CLIENT_SECRET",
    ] {
        let err = without(name).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Missing { name: n, .. } if *n == name),
            "{name}: {err}"
        );
        assert!(
            err.to_string().contains(name),
            "message names {name}: {err}"
        );
    }
}

#[test]
fn malformed_values_are_rejected_with_the_setting_named() {
    let cases: &[(&'static str, &str)] = &[
        ("COSELL_DATAVERSE_URL", "contoso.crm.dynamics.com"),
        ("COSELL_AUTHORITY_URL", "ftp://login.example"),
        ("COSELL_POLL_INTERVAL", "soon"),
        ("COSELL_POLL_INTERVAL", "0s"),
        ("COSELL_LISTEN", "localhost"),
        ("COSELL_SYNC_COSELL_ONLY", "maybe"),
        ("COSELL_CHECKMARK", "2"),
        ("COSELL_TENANT_ID", "a/b"),
        ("COSELL_COL_SYNC", "bad name!"),
        ("COSELL_MAX_RETRIES", "many"),
        ("COSELL_WEBHOOK_CERT_HOSTS", " , "),
        ("COSELL_MAPPING_FILE", "/nonexistent/mapping.toml"),
        (
            "COSELL_SERVICES_TAXONOMY_FILE",
            "/nonexistent/taxonomy.toml",
        ),
    ];
    for (name, value) in cases {
        let err = with(&[(name, value)]).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { name: n, .. } if n == name),
            "{name}={value}: {err}"
        );
        let line = err.to_string();
        assert!(
            line.contains(name) && !line.contains('\n'),
            "one line naming {name}: {line}"
        );
    }
}

#[test]
fn values_parse_into_their_types() {
    let c = with(&[
        ("COSELL_POLL_INTERVAL", "500ms"),
        ("COSELL_SYNC_COSELL_ONLY", "yes"),
        ("COSELL_CHECKMARK", "false"),
        ("COSELL_WEBHOOK_CERT_HOSTS", "127.0.0.1, Certs.Example.com"),
        ("COSELL_PC_REFRESH_TOKEN", "rt-value"),
        ("COSELL_COL_SYNC", "Contoso_SyncFlag"),
        ("COSELL_AUTHORITY_URL", "http://127.0.0.1:9000"),
    ])
    .unwrap();
    assert_eq!(c.poll_interval, Duration::from_millis(500));
    assert!(c.sync_cosell_only);
    assert!(!c.checkmark);
    assert_eq!(c.webhook_cert_hosts, vec!["127.0.0.1", "certs.example.com"]);
    assert_eq!(c.pc_refresh_token.as_ref().unwrap().expose(), "rt-value");
    assert_eq!(c.columns.sync_flag, "contoso_syncflag");
    assert_eq!(
        c.token_url().as_str(),
        "http://127.0.0.1:9000/contoso.onmicrosoft.com/oauth2/v2.0/token"
    );
}

#[test]
fn secrets_never_print() {
    let c = with(&[("COSELL_PC_REFRESH_TOKEN", "rt-value")]).unwrap();
    let dump = format!("{c:?}");
    for secret in ["pc-secret-value", "dv-secret-value", "rt-value"] {
        assert!(!dump.contains(secret), "{secret} leaked into Debug output");
    }
    assert_eq!(c.pc_client_secret.to_string(), "***");
}

#[test]
fn file_sets_keys_and_environment_wins() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cosell.toml");
    std::fs::write(
        &path,
        "COSELL_TENANT_ID = \"from-file\"\nCOSELL_POLL_INTERVAL = \"5m\"\nCOSELL_CHECKMARK = false\n",
    )
    .unwrap();
    let env: Vec<_> = base()
        .into_iter()
        .filter(|(k, _)| *k != "COSELL_TENANT_ID")
        .collect();
    let c = Config::load(&Source::from_pairs(env).with_file(&path).unwrap()).unwrap();
    assert_eq!(c.tenant_id, "from-file");
    assert_eq!(c.poll_interval, Duration::from_secs(300));
    assert!(!c.checkmark);

    let c = Config::load(&Source::from_pairs(base()).with_file(&path).unwrap()).unwrap();
    assert_eq!(
        c.tenant_id, "contoso.onmicrosoft.com",
        "the environment wins over the file"
    );
}

#[test]
fn unreadable_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.toml");
    std::fs::write(&path, "COSELL_TENANT_ID = [1, 2").unwrap();
    let err = Source::from_pairs(base()).with_file(&path).err().unwrap();
    assert!(matches!(err, ConfigError::File { .. }));
    assert!(err.to_string().contains("bad.toml"));
}

#[test]
fn a_malformed_file_line_is_named_without_its_content() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cosell.toml");
    std::fs::write(
        &path,
        "COSELL_TENANT_ID = \"contoso\"\nCOSELL_PC_CLIENT_SECRET = \"s3cr3t-value-42\nCOSELL_CHECKMARK = true\n",
    )
    .unwrap();
    let err = Source::from_pairs(base()).with_file(&path).err().unwrap();
    let text = err.to_string();
    assert!(!text.contains("s3cr3t-value-42"), "{text}");
    assert!(
        text.contains("line 2") && text.contains("COSELL_PC_CLIENT_SECRET"),
        "{text}"
    );
    // A value of the wrong type: named by its key, the value not printed.
    std::fs::write(&path, "COSELL_PC_CLIENT_SECRET = [\"s3cr3t-value-42\"]\n").unwrap();
    let text = Source::from_pairs(base())
        .with_file(&path)
        .err()
        .unwrap()
        .to_string();
    assert!(!text.contains("s3cr3t-value-42"), "{text}");
    assert!(text.contains("COSELL_PC_CLIENT_SECRET"), "{text}");
}

#[test]
fn plain_http_is_refused_except_on_loopback() {
    for (name, value) in [
        ("COSELL_AUTHORITY_URL", "http://login.example.com"),
        ("COSELL_PC_API_URL", "http://api.partner.example"),
        ("COSELL_PC_TOKEN_URL", "http://10.0.0.5/token"),
        ("COSELL_DATAVERSE_URL", "http://contoso.crm.dynamics.com"),
        ("COSELL_DV_TOKEN_URL", "http://localhost:9000/token"),
    ] {
        let err = with(&[(name, value)]).unwrap_err();
        assert!(
            matches!(&err, ConfigError::Invalid { name: n, .. } if *n == name),
            "{name}={value}: {err}"
        );
    }
    for value in [
        "http://127.0.0.1:9000",
        "http://127.3.4.5/x",
        "http://[::1]:8080",
    ] {
        assert!(with(&[("COSELL_PC_API_URL", value)]).is_ok(), "{value}");
    }
}

#[test]
fn webhook_certificate_roots_come_from_a_pem_file_and_server_limits_parse() {
    let c = with(&[]).unwrap();
    assert!(
        c.webhook_cert_roots.is_none(),
        "the built-in roots by default"
    );
    assert_eq!(c.server, cosell::config::ServerLimits::default());
    let dir = tempfile::tempdir().unwrap();
    let bad = dir.path().join("roots.pem");
    std::fs::write(&bad, "not a certificate").unwrap();
    let err = with(&[("COSELL_WEBHOOK_CERT_ROOTS", bad.to_str().unwrap())]).unwrap_err();
    assert!(
        matches!(
            &err,
            ConfigError::Invalid {
                name: "COSELL_WEBHOOK_CERT_ROOTS",
                ..
            }
        ),
        "{err}"
    );
    let c = with(&[
        ("COSELL_HEADER_TIMEOUT", "500ms"),
        ("COSELL_MAX_CONNECTIONS", "64"),
    ])
    .unwrap();
    assert_eq!(c.server.header_timeout, Duration::from_millis(500));
    assert_eq!(c.server.max_connections, 64);
    assert!(with(&[("COSELL_MAX_REQUESTS", "0")]).is_err());
}
