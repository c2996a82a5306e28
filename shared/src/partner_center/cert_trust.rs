//! What makes a fetched signing certificate trusted, as Microsoft's webhook docs prescribe:
//! a chain to a trusted root (rustls-webpki), its validity period and its subject
//! organization. The roots are the Mozilla set built in, unless a PEM file of roots is
//! configured instead (the local stand-in's test CA is trusted only that way).

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use aws_lc_rs::signature::{UnparsedPublicKey, RSA_PKCS1_2048_8192_SHA256};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, SignatureVerificationAlgorithm, TrustAnchor, UnixTime};
use time::OffsetDateTime;
use webpki::{EndEntityCert, ExtendedKeyUsageValidator, KeyPurposeIdIter};
use x509_cert::der::{oid::ObjectIdentifier, Decode};
use x509_cert::Certificate;

const ORGANIZATION_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("2.5.4.10");
const RSA_ENCRYPTION_OID: ObjectIdentifier = ObjectIdentifier::new_unwrap("1.2.840.113549.1.1.1");
/// A leaf and a few intermediates; more is not a certificate file.
const MAX_CHAIN: usize = 5;

static CHAIN_ALGORITHMS: &[&dyn SignatureVerificationAlgorithm] = &[
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA256,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA384,
    webpki::aws_lc_rs::RSA_PKCS1_2048_8192_SHA512,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA256_LEGACY_KEY,
    webpki::aws_lc_rs::RSA_PSS_2048_8192_SHA384_LEGACY_KEY,
    webpki::aws_lc_rs::ECDSA_P256_SHA256,
    webpki::aws_lc_rs::ECDSA_P256_SHA384,
    webpki::aws_lc_rs::ECDSA_P384_SHA256,
    webpki::aws_lc_rs::ECDSA_P384_SHA384,
];

/// Why a certificate is not trusted. Kept for logs; the caller answers with one fixed code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Untrusted {
    #[error("not a PEM or DER certificate")]
    Unreadable,
    #[error("no chain to a trusted root ({0})")]
    Chain(String),
    #[error("subject organization is not trusted")]
    Organization,
    #[error("not an RSA key")]
    NotRsa,
    #[error("validity out of range")]
    Validity,
}

/// The trust anchors for signing certificates.
#[derive(Clone)]
pub struct TrustRoots {
    anchors: Arc<Vec<TrustAnchor<'static>>>,
    origin: &'static str,
}

impl std::fmt::Debug for TrustRoots {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "TrustRoots({} {})", self.anchors.len(), self.origin)
    }
}

impl Default for TrustRoots {
    fn default() -> Self {
        Self::mozilla()
    }
}

impl TrustRoots {
    /// The Mozilla roots built into the binary (webpki-roots).
    pub fn mozilla() -> Self {
        TrustRoots {
            anchors: Arc::new(webpki_roots::TLS_SERVER_ROOTS.to_vec()),
            origin: "built-in roots",
        }
    }

    /// Every CERTIFICATE block of a PEM text; at least one.
    pub fn from_pem(pem: &[u8]) -> Result<Self, String> {
        let mut anchors = Vec::new();
        for der in CertificateDer::pem_slice_iter(pem) {
            let der = der.map_err(|_| "not a PEM certificate list".to_string())?;
            let anchor = webpki::anchor_from_trusted_cert(&der)
                .map_err(|e| format!("a certificate cannot be a root ({e})"))?;
            anchors.push(anchor.to_owned());
        }
        if anchors.is_empty() {
            return Err("holds no PEM certificate".into());
        }
        Ok(TrustRoots {
            anchors: Arc::new(anchors),
            origin: "configured roots",
        })
    }

    pub fn from_file(path: &Path) -> Result<Self, String> {
        let pem = std::fs::read(path).map_err(|e| format!("cannot read it ({e})"))?;
        Self::from_pem(&pem)
    }

    pub fn len(&self) -> usize {
        self.anchors.len()
    }

    pub fn is_empty(&self) -> bool {
        self.anchors.is_empty()
    }
}

/// A verified signing certificate: its key and validity, for each delivery's check.
pub struct TrustedCert {
    /// The PKCS#1 RSAPublicKey, verified with aws-lc (already linked for TLS): the pure-Rust
    /// `rsa` crate's public operation was a third of the intake's CPU time.
    pub key: UnparsedPublicKey<Vec<u8>>,
    pub not_before: OffsetDateTime,
    pub not_after: OffsetDateTime,
}

/// The certificate file's chain: a DER leaf, or PEM blocks leaf first, intermediates after.
fn chain_of(bytes: &[u8]) -> Result<Vec<CertificateDer<'static>>, Untrusted> {
    let chain: Vec<CertificateDer<'static>> = if bytes.starts_with(b"-----BEGIN") {
        CertificateDer::pem_slice_iter(bytes)
            .take(MAX_CHAIN + 1)
            .collect::<Result<_, _>>()
            .map_err(|_| Untrusted::Unreadable)?
    } else {
        vec![CertificateDer::from(bytes.to_vec())]
    };
    if chain.is_empty() || chain.len() > MAX_CHAIN {
        return Err(Untrusted::Unreadable);
    }
    Ok(chain)
}

/// Checks the chain at `now`, then the leaf's organization, and keeps its RSA key.
pub fn trust(
    bytes: &[u8],
    roots: &TrustRoots,
    organizations: &[String],
    now: OffsetDateTime,
) -> Result<TrustedCert, Untrusted> {
    let chain = chain_of(bytes)?;
    let leaf = EndEntityCert::try_from(&chain[0]).map_err(|_| Untrusted::Unreadable)?;
    let at = UnixTime::since_unix_epoch(Duration::from_secs(now.unix_timestamp().max(0) as u64));
    leaf.verify_for_usage(
        CHAIN_ALGORITHMS,
        &roots.anchors,
        &chain[1..],
        at,
        AnyPurpose,
        None,
        None,
    )
    .map_err(|e| Untrusted::Chain(e.to_string()))?;

    let cert = Certificate::from_der(&chain[0]).map_err(|_| Untrusted::Unreadable)?;
    let tbs = &cert.tbs_certificate;
    if !subject_organizations(&tbs.subject)
        .iter()
        .any(|o| organizations.iter().any(|a| a == o))
    {
        return Err(Untrusted::Organization);
    }
    let spki = &tbs.subject_public_key_info;
    if spki.algorithm.oid != RSA_ENCRYPTION_OID {
        return Err(Untrusted::NotRsa);
    }
    let key = spki
        .subject_public_key
        .as_bytes()
        .ok_or(Untrusted::NotRsa)?
        .to_vec();
    let to_time = |t: x509_cert::time::Time| {
        OffsetDateTime::from_unix_timestamp(t.to_unix_duration().as_secs() as i64)
            .map_err(|_| Untrusted::Validity)
    };
    Ok(TrustedCert {
        key: UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, key),
        not_before: to_time(tbs.validity.not_before)?,
        not_after: to_time(tbs.validity.not_after)?,
    })
}

/// The signing certificate is no TLS certificate: any extended key usage will do (the chain,
/// the organization and the RSA signature carry the trust). A malformed extension is refused.
struct AnyPurpose;

impl ExtendedKeyUsageValidator for AnyPurpose {
    fn validate(&self, iter: KeyPurposeIdIter<'_, '_>) -> Result<(), webpki::Error> {
        for purpose in iter {
            purpose?;
        }
        Ok(())
    }
}

/// The subject's O= values. The raw content works for UTF8String and PrintableString alike.
fn subject_organizations(name: &x509_cert::name::Name) -> Vec<String> {
    name.0
        .iter()
        .flat_map(|rdn| rdn.0.iter())
        .filter(|atv| atv.oid == ORGANIZATION_OID)
        .filter_map(|atv| {
            std::str::from_utf8(atv.value.value())
                .ok()
                .map(str::to_string)
        })
        .collect()
}
