//! The stand-in's signing identity, made at start: a test CA of its own (key in memory only)
//! and a signing certificate for the committed test key (keys/standin.key.pem), issued by
//! that CA with Microsoft's organization, as Partner Center's is. A verifier trusts it only
//! when given [`SigningIdentity::root_pem`] as its roots: never by default.

use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PKCS_ECDSA_P256_SHA256,
};
use time::{Duration, OffsetDateTime};

/// The organization on the signing certificate: the one the connector accepts by default.
pub const CERT_ORGANIZATION: &str = "Microsoft Corporation";

pub(crate) struct SigningIdentity {
    pub root_pem: String,
    pub leaf_der: Vec<u8>,
}

impl SigningIdentity {
    /// A fresh CA and a signing certificate for `leaf_key_pem` (PKCS#8 RSA).
    pub fn generate(leaf_key_pem: &str) -> Self {
        let now = OffsetDateTime::now_utc();
        let mut root = CertificateParams::default();
        root.distinguished_name = name("Cosell Stand-in Test Root CA", "Cosell Stand-in");
        root.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        root.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        root.not_before = now - Duration::days(1);
        root.not_after = now + Duration::days(3650);
        let root_key = KeyPair::generate_for(&PKCS_ECDSA_P256_SHA256).expect("P-256 key");
        let root_cert = root.self_signed(&root_key).expect("test root CA");

        let mut leaf = CertificateParams::default();
        leaf.distinguished_name = name("pcnotifications-dispatch.standin.local", CERT_ORGANIZATION);
        leaf.is_ca = IsCa::ExplicitNoCa;
        leaf.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        leaf.not_before = now - Duration::days(1);
        leaf.not_after = now + Duration::days(365);
        let leaf_key = KeyPair::from_pem(leaf_key_pem).expect("the committed stand-in key parses");
        let issuer = Issuer::new(root, root_key);
        let leaf_cert = leaf
            .signed_by(&leaf_key, &issuer)
            .expect("signing certificate");
        SigningIdentity {
            root_pem: root_cert.pem(),
            leaf_der: leaf_cert.der().to_vec(),
        }
    }
}

fn name(common: &str, organization: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common);
    dn.push(DnType::OrganizationName, organization);
    dn
}
