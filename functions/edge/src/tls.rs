//! The system's root certificates, read once per process and shared by every HTTP client of
//! a function: the AWS SDK's and each reqwest client. Left to themselves, each reqwest
//! client walks `/etc/ssl/certs` and parses every root (rustls-platform-verifier), and the
//! SDK does it again (plus a parse for every SDK client made) — milliseconds of a cold start
//! each. [`preload`] starts the read on a thread of its own as the first thing a function
//! does, so it overlaps the rest of the set-up; whoever needs the roots first waits for it.
//!
//! What is trusted does not change: the same roots (`SSL_CERT_FILE` / `SSL_CERT_DIR` or the
//! platform's locations, through `rustls-native-certs`), checked by rustls' WebPKI verifier.

use std::sync::{Arc, OnceLock};
use std::time::Duration;

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

fn load() -> Roots {
    let found = rustls_native_certs::load_native_certs();
    for error in &found.errors {
        tracing::warn!(%error, "could not load a root certificate");
    }
    let mut store = RootCertStore::empty();
    let mut pem = Vec::new();
    let b64 = base64::engine::general_purpose::STANDARD;
    for cert in found.certs {
        let der = b64.encode(cert.as_ref());
        if store.add(cert).is_err() {
            continue;
        }
        pem.extend_from_slice(b"-----BEGIN CERTIFICATE-----\n");
        for line in der.as_bytes().chunks(64) {
            pem.extend_from_slice(line);
            pem.push(b'\n');
        }
        pem.extend_from_slice(b"-----END CERTIFICATE-----\n");
    }
    if store.is_empty() {
        tracing::warn!("no root certificates were found; TLS connections will fail");
    }
    Roots {
        store: Arc::new(store),
        pem,
    }
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

/// The engine's HTTP client: the settings of `cosell::engine::wiring::http_client` (keep
/// them alike), on the shared roots.
pub fn engine_http_client(config: &cosell::Config) -> Result<reqwest::Client, EdgeError> {
    reqwest_builder()?
        .connect_timeout(Duration::from_secs(5).min(config.http_timeout))
        .timeout(config.http_timeout)
        .pool_idle_timeout(Duration::from_secs(60))
        .user_agent(concat!("cosell-sync/", env!("CARGO_PKG_VERSION")))
        .build()
        .map_err(|e| cosell::engine::wiring::WiringError::Http(e.to_string()).into())
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
