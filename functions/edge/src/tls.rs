//! The system's root certificates, read once per process and shared by every HTTP client of
//! a function: the AWS SDK's and each reqwest client. Left to themselves, each reqwest
//! client walks `/etc/ssl/certs` and parses every root (rustls-platform-verifier), and the
//! SDK does it again (plus a parse for every SDK client made) — milliseconds of a cold start
//! each. [`preload`] starts the read on a thread of its own as the first thing a function
//! does, so it overlaps the rest of the set-up; whoever needs the roots first waits for it.
//!
//! Which roots: with `SSL_CERT_FILE` or `SSL_CERT_DIR` set, exactly what they name (through
//! `rustls-native-certs`); otherwise the platform's root bundle alone (Amazon Linux's
//! `/etc/pki/ca-trust/extracted/pem/tls-ca-bundle.pem`, Debian's
//! `/etc/ssl/certs/ca-certificates.crt`), and the platform's directories only where there is
//! no bundle. The directories hold the same roots once more (Debian: one file per root, made
//! from the same list by `update-ca-certificates`; Amazon Linux: links to the bundles), and
//! walking Debian's costs 4-8 ms of a cold start against about 1 ms for the bundle. A
//! certificate dropped into the directory without regenerating the bundle is no longer
//! trusted unless `SSL_CERT_DIR` names the directory. Checked by rustls' WebPKI verifier.

use std::ffi::OsString;
use std::path::PathBuf;
use std::sync::{Arc, OnceLock};

use aws_sdk_secretsmanager::config::SharedHttpClient;
use aws_smithy_http_client::proxy::ProxyConfig;
use aws_smithy_http_client::tls::{rustls_provider::CryptoMode, Provider, TlsContext, TrustStore};
use aws_smithy_http_client::Connector;
use base64::Engine as _;
use rustls::RootCertStore;

use crate::EdgeError;

/// The roots as both clients take them.
struct Roots {
    /// For reqwest (through a rustls config of ours).
    store: Arc<RootCertStore>,
    /// For the AWS SDK, which takes PEM: only the certificates `store` accepted, so the SDK's
    /// own parse (which panics on a bad one) sees nothing it would refuse.
    pem: Vec<u8>,
}

static ROOTS: OnceLock<Roots> = OnceLock::new();

/// Where the roots are read from.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Source {
    /// `SSL_CERT_FILE` / `SSL_CERT_DIR`, as `rustls-native-certs` reads them.
    Environment,
    /// The platform's bundle file, alone.
    Bundle(PathBuf),
    /// The platform's bundle and directories (`rustls-native-certs`' own probe).
    Platform,
}

const CERT_VARIABLES: [&str; 2] = ["SSL_CERT_FILE", "SSL_CERT_DIR"];

/// The source for these variables and the platform's bundle file (if it has one).
fn source(var: impl Fn(&str) -> Option<OsString>, bundle: Option<PathBuf>) -> Source {
    if CERT_VARIABLES.iter().any(|name| var(name).is_some()) {
        return Source::Environment;
    }
    match bundle {
        Some(file) => Source::Bundle(file),
        None => Source::Platform,
    }
}

/// Reads `source`; a bundle that yields no root falls back to the platform's whole probe.
fn read(source: &Source) -> rustls_native_certs::CertificateResult {
    if let Source::Bundle(file) = source {
        let found = rustls_native_certs::load_certs_from_paths(Some(file), None);
        if !found.certs.is_empty() {
            return found;
        }
    }
    rustls_native_certs::load_native_certs()
}

fn load() -> Roots {
    // The probe only looks for the locations (a few `stat`s); it reads nothing.
    let from = source(
        |name| std::env::var_os(name),
        openssl_probe::probe().cert_file,
    );
    let found = read(&from);
    for error in &found.errors {
        tracing::warn!(%error, "could not load a root certificate");
    }
    let mut store = RootCertStore::empty();
    let mut pem = Vec::new();
    for cert in found.certs {
        let written = pem.len();
        push_pem(&mut pem, cert.as_ref());
        if store.add(cert).is_err() {
            pem.truncate(written);
        }
    }
    if store.is_empty() {
        tracing::warn!("no root certificates were found; TLS connections will fail");
    }
    Roots {
        store: Arc::new(store),
        pem,
    }
}

/// Appends one certificate to `pem`, in 64-column base64 lines.
fn push_pem(pem: &mut Vec<u8>, der: &[u8]) {
    let b64 = base64::engine::general_purpose::STANDARD.encode(der);
    pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
    for line in b64.as_bytes().chunks(64) {
        pem.extend_from_slice(line);
        pem.push(b'\n');
    }
    pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
}

/// The roots, read by the first caller (or the preload thread); others wait for that read.
fn roots() -> &'static Roots {
    ROOTS.get_or_init(load)
}

/// Starts reading the roots on a thread of its own; call it first thing in `main`. Without
/// it the first client to need them reads them itself.
pub fn preload() {
    // If the thread cannot be made, the first client reads them instead.
    let _ = std::thread::Builder::new()
        .name("root-certificates".into())
        .spawn(|| {
            roots();
        });
}

/// A reqwest builder on the shared roots (what reqwest's own verifier would load), with the
/// ALPN protocols reqwest offers by itself (HTTP/2, then HTTP/1.1).
pub fn reqwest_builder() -> Result<reqwest::ClientBuilder, EdgeError> {
    let roots = roots();
    if roots.store.is_empty() {
        return Err(EdgeError::Tls(
            "no root certificates were loaded from the system".into(),
        ));
    }
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| EdgeError::Tls(e.to_string()))?
        .with_root_certificates(roots.store.clone())
        .with_no_client_auth();
    tls.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(reqwest::Client::builder().tls_backend_preconfigured(tls))
}

/// The engine's HTTP client: `cosell::engine::wiring::http_client`'s settings on the shared
/// roots.
pub fn engine_http_client(config: &cosell::Config) -> Result<reqwest::Client, EdgeError> {
    Ok(cosell::engine::wiring::http_client_from(
        reqwest_builder()?,
        config,
    )?)
}

/// The AWS SDK's HTTP client: the SDK's default one (rustls with aws-lc, proxies from the
/// environment, the connector settings and sleep of each client), trusting the shared roots.
pub fn aws_http_client() -> SharedHttpClient {
    aws_smithy_http_client::Builder::new().build_with_connector_fn(|settings, components| {
        // Without settings this is the throwaway connector each SDK client makes when it is
        // created, to check its config; it never sends anything, so it needs no roots (the
        // default one parses them all again, once per SDK client).
        let Some(settings) = settings else {
            return Connector::builder().build_http();
        };
        let context = TlsContext::builder()
            .with_trust_store(TrustStore::empty().with_pem_certificate(roots().pem.clone()))
            .build()
            .expect("a TLS context of a trust store always builds");
        let mut builder = Connector::builder()
            .tls_provider(Provider::Rustls(CryptoMode::AwsLc))
            .tls_context(context);
        builder.set_connector_settings(Some(settings.clone()));
        if let Some(components) = components {
            builder.set_sleep_impl(components.sleep_impl());
        }
        builder.set_proxy_config(Some(ProxyConfig::from_env()));
        builder.build()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use rustls_pki_types::pem::PemObject;

    #[test]
    fn the_sdk_gets_the_same_roots_as_reqwest() {
        let roots = roots();
        let pem_certs = rustls_pki_types::CertificateDer::pem_slice_iter(&roots.pem)
            .collect::<Result<Vec<_>, _>>()
            .expect("the PEM we wrote parses");
        assert_eq!(pem_certs.len(), roots.store.len());
    }

    fn vars(set: &'static [&'static str]) -> impl Fn(&str) -> Option<OsString> {
        move |name| set.contains(&name).then(|| OsString::from("/somewhere"))
    }

    #[test]
    fn the_variables_win_then_the_bundle_then_the_whole_probe() {
        let file = PathBuf::from("ca-bundle.crt");
        let bundle = Some(file.clone());
        assert_eq!(
            source(vars(&["SSL_CERT_FILE"]), bundle.clone()),
            Source::Environment
        );
        assert_eq!(
            source(vars(&["SSL_CERT_DIR"]), bundle.clone()),
            Source::Environment
        );
        assert_eq!(source(vars(&[]), bundle), Source::Bundle(file));
        assert_eq!(source(vars(&[]), None), Source::Platform);
    }

    #[test]
    fn a_bundle_is_read_alone_and_an_empty_one_falls_back() {
        let dir = tempfile::tempdir().unwrap();
        // Two of the system's roots (whatever this host has) in a bundle of our own.
        let system = rustls_native_certs::load_native_certs().certs;
        if system.len() < 2 {
            return;
        }
        let mut pem = Vec::new();
        for cert in &system[..2] {
            push_pem(&mut pem, cert.as_ref());
        }
        let bundle = dir.path().join("bundle.pem");
        std::fs::write(&bundle, pem).unwrap();
        assert_eq!(read(&Source::Bundle(bundle)).certs.len(), 2);
        let empty = dir.path().join("empty.pem");
        std::fs::write(&empty, "").unwrap();
        assert_eq!(
            read(&Source::Bundle(empty)).certs.len(),
            rustls_native_certs::load_native_certs().certs.len()
        );
    }

    #[tokio::test]
    async fn clients_build_on_the_shared_roots() {
        preload();
        let client =
            reqwest_builder().and_then(|b| b.build().map_err(|e| EdgeError::Tls(e.to_string())));
        // A build host without any roots cannot build one; that is the error to get.
        match client {
            Ok(_) => assert!(!roots().store.is_empty()),
            Err(e) => assert!(roots().store.is_empty(), "{e}"),
        }
        let _ = aws_http_client();
    }
}
