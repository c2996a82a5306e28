//! Signed webhook deliveries made the way the Partner Center stand-in makes them: the same
//! committed test key, the same headers and the same event body. Lets security and fuzz
//! tests sign bodies the stand-in would never send (malformed JSON, unknown events, stale
//! dates) so they reach the checks behind the signature.

use base64::Engine as _;
use http::{HeaderMap, HeaderValue};
use rsa::pkcs1v15::SigningKey;
use rsa::pkcs8::DecodePrivateKey;
use rsa::signature::{SignatureEncoding, Signer};
use rsa::RsaPrivateKey;
use sha2::Sha256;
use time::format_description::well_known::Rfc3339;
use time::OffsetDateTime;

/// The stand-in's fixed test identity (see its keys/README.md); protects nothing real.
const STANDIN_KEY_PEM: &str =
    include_str!("../../infra/partner-center-standin/keys/standin.key.pem");

pub struct DeliverySigner {
    key: SigningKey<Sha256>,
    cert_url: String,
    base_url: String,
}

impl DeliverySigner {
    /// Signs as the stand-in at `base_url` does (its certificate is served there).
    pub fn for_standin(base_url: &url::Url) -> Self {
        let key = RsaPrivateKey::from_pkcs8_pem(STANDIN_KEY_PEM).expect("stand-in key parses");
        DeliverySigner {
            key: SigningKey::new(key),
            cert_url: base_url
                .join("cert/standin.cer")
                .expect("static path")
                .to_string(),
            base_url: base_url.to_string(),
        }
    }

    pub fn cert_url(&self) -> &str {
        &self.cert_url
    }

    /// `Signature <base64>` over exactly `body`.
    pub fn authorization(&self, body: &[u8]) -> String {
        let sig = self.key.sign(body).to_bytes();
        format!(
            "Signature {}",
            base64::engine::general_purpose::STANDARD.encode(sig)
        )
    }

    /// The three headers Partner Center sends, signing `body`.
    pub fn headers(&self, body: &[u8]) -> HeaderMap {
        let mut h = HeaderMap::new();
        h.insert("content-type", HeaderValue::from_static("application/json"));
        h.insert(
            "authorization",
            HeaderValue::from_str(&self.authorization(body)).expect("base64 is a header value"),
        );
        h.insert(
            "x-ms-certificate-url",
            HeaderValue::from_str(&self.cert_url).expect("URL is a header value"),
        );
        h.insert(
            "x-ms-signature-algorithm",
            HeaderValue::from_static("rsa-sha256"),
        );
        h
    }

    /// An event body in Partner Center's shape, changed at `changed`.
    pub fn event_body(
        &self,
        event_name: &str,
        referral_id: &str,
        changed: OffsetDateTime,
    ) -> String {
        serde_json::json!({
            "EventName": event_name,
            "ResourceUri": format!("{}v1.0/engagements/referrals/{referral_id}", self.base_url),
            "ResourceName": "referral",
            "AuditUri": null,
            "ResourceChangeUtcDate": changed.format(&Rfc3339).expect("UTC time formats"),
        })
        .to_string()
    }

    /// A fresh `referral-updated` event for `referral_id` and its headers.
    pub fn referral_updated(&self, referral_id: &str) -> (HeaderMap, Vec<u8>) {
        let body = self
            .event_body("referral-updated", referral_id, OffsetDateTime::now_utc())
            .into_bytes();
        (self.headers(&body), body)
    }
}
