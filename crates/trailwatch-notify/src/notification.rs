//! The JSON body of an HTTP(S) delivery and its signature (cloud-apis.md §5.3).
//!
//! Every body is signed with RSA PKCS#1 v1.5 + SHA-256 over a fixed "string to sign" built from
//! some of its members; the receiver fetches our certificate from `signing_cert_url` and checks
//! the signature with [`verify_notification`] (or SMN's own Java/Go/Python samples, which build
//! the same string).

use std::fmt;

use aws_lc_rs::encoding::{AsDer, Pkcs8V1Der};
use aws_lc_rs::rand::SystemRandom;
use aws_lc_rs::rsa::{KeyPair as RsaKeyPair, KeySize};
use aws_lc_rs::signature::{
    KeyPair as _, RSA_PKCS1_2048_8192_SHA256, RSA_PKCS1_SHA256, UnparsedPublicKey,
};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use chrono::{DateTime, Utc};
use serde_json::{Map, Value};

use crate::x509;

/// The value of `signature_version` in every body we send.
pub const SIGNATURE_VERSION: &str = "v1";

/// The HTTP header carrying the message type.
pub const HEADER_MESSAGE_TYPE: &str = "x-smn-message-type";
/// The HTTP header carrying the message id.
pub const HEADER_MESSAGE_ID: &str = "x-smn-message-id";
/// The HTTP header carrying the topic URN.
pub const HEADER_TOPIC_URN: &str = "x-smn-topic-urn";

/// Formats a time the way SMN writes it: `YYYY-MM-DDTHH:MM:SSZ` (UTC, whole seconds).
pub fn format_timestamp(t: DateTime<Utc>) -> String {
    t.format("%Y-%m-%dT%H:%M:%SZ").to_string()
}

/// The kind of an HTTP(S) delivery: its `type` member and `X-SMN-MESSAGE-TYPE` header.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum MessageType {
    /// Sent when an http(s) subscription is added: GET `subscribe_url` to confirm.
    SubscriptionConfirmation,
    /// A published message.
    Notification,
    /// Sent when a subscription is removed: `subscribe_url` re-subscribes.
    UnsubscribeConfirmation,
}

impl MessageType {
    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            MessageType::SubscriptionConfirmation => "SubscriptionConfirmation",
            MessageType::Notification => "Notification",
            MessageType::UnsubscribeConfirmation => "UnsubscribeConfirmation",
        }
    }

    /// The type for a wire name (exact match), if it is one.
    pub fn parse(s: &str) -> Option<Self> {
        [
            MessageType::SubscriptionConfirmation,
            MessageType::Notification,
            MessageType::UnsubscribeConfirmation,
        ]
        .into_iter()
        .find(|t| t.as_str() == s)
    }
}

impl fmt::Display for MessageType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The members of an HTTP(S) delivery body before signing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NotificationBody {
    /// `type`.
    pub message_type: MessageType,
    /// `topic_urn`.
    pub topic_urn: String,
    /// `message_id`, 32 hex characters.
    pub message_id: String,
    /// `subject`: sent and signed for notifications when present and non-empty.
    pub subject: Option<String>,
    /// `message`: the text for this protocol (for confirmations, the invitation text).
    pub message: String,
    /// `subscribe_url`: required for both confirmation types, where it is signed.
    pub subscribe_url: Option<String>,
    /// `unsubscribe_url`: sent with notifications; never signed.
    pub unsubscribe_url: Option<String>,
    /// `timestamp`, sent and signed as `YYYY-MM-DDTHH:MM:SSZ`.
    pub timestamp: DateTime<Utc>,
}

/// `key\nvalue\n` for each pair, in the order given.
fn join_pairs(pairs: &[(&str, &str)]) -> String {
    let mut out = String::new();
    for (key, value) in pairs {
        out.push_str(key);
        out.push('\n');
        out.push_str(value);
        out.push('\n');
    }
    out
}

/// The §5.3 string to sign from the members as text. Shared by signer and verifier so the two
/// can never disagree on the order or the subject rule.
fn string_to_sign_of(
    message_type: MessageType,
    message: &str,
    message_id: &str,
    subject: Option<&str>,
    subscribe_url: &str,
    timestamp: &str,
    topic_urn: &str,
) -> String {
    let type_name = message_type.as_str();
    match message_type {
        MessageType::Notification => {
            let mut pairs = vec![("message", message), ("message_id", message_id)];
            // SMN leaves an empty subject out of the string entirely (not "subject\n\n").
            if let Some(subject) = subject.filter(|s| !s.is_empty()) {
                pairs.push(("subject", subject));
            }
            pairs.extend([
                ("timestamp", timestamp),
                ("topic_urn", topic_urn),
                ("type", type_name),
            ]);
            join_pairs(&pairs)
        }
        MessageType::SubscriptionConfirmation | MessageType::UnsubscribeConfirmation => {
            join_pairs(&[
                ("message", message),
                ("message_id", message_id),
                ("subscribe_url", subscribe_url),
                ("timestamp", timestamp),
                ("topic_urn", topic_urn),
                ("type", type_name),
            ])
        }
    }
}

impl NotificationBody {
    /// The §5.3 string to sign: `key\nvalue\n` pairs, in this order — notifications: `message`,
    /// `message_id`, `subject` (left out when `None` or empty), `timestamp`, `topic_urn`, `type`;
    /// confirmations: `message`, `message_id`, `subscribe_url`, `timestamp`, `topic_urn`, `type`.
    pub fn string_to_sign(&self) -> String {
        string_to_sign_of(
            self.message_type,
            &self.message,
            &self.message_id,
            self.subject.as_deref(),
            self.subscribe_url.as_deref().unwrap_or_default(),
            &format_timestamp(self.timestamp),
            &self.topic_urn,
        )
    }

    /// The signed JSON body. Member names are SMN's exactly; `subject`, `subscribe_url` and
    /// `unsubscribe_url` appear when set (a confirmation always has `subscribe_url`, empty if
    /// unset, because it is signed).
    pub fn to_json(&self, signer: &Signer, signing_cert_url: &str) -> Value {
        let mut body = Map::new();
        let mut put = |key: &str, value: &str| {
            body.insert(key.to_owned(), Value::String(value.to_owned()));
        };
        put("type", self.message_type.as_str());
        put("topic_urn", &self.topic_urn);
        put("message_id", &self.message_id);
        if let Some(subject) = &self.subject {
            put("subject", subject);
        }
        put("message", &self.message);
        match (&self.subscribe_url, self.message_type) {
            (Some(url), _) => put("subscribe_url", url),
            (None, MessageType::Notification) => {}
            (None, _) => put("subscribe_url", ""),
        }
        if let Some(url) = &self.unsubscribe_url {
            put("unsubscribe_url", url);
        }
        put("signature_version", SIGNATURE_VERSION);
        put("signature", &signer.sign(self.string_to_sign().as_bytes()));
        put("signing_cert_url", signing_cert_url);
        put("timestamp", &format_timestamp(self.timestamp));
        Value::Object(body)
    }

    /// The `X-SMN-*` headers of the delivery, lower-case as SMN sends them.
    pub fn headers(&self) -> [(&'static str, String); 3] {
        [
            (HEADER_MESSAGE_TYPE, self.message_type.as_str().to_owned()),
            (HEADER_MESSAGE_ID, self.message_id.clone()),
            (HEADER_TOPIC_URN, self.topic_urn.clone()),
        ]
    }
}

/// Why a [`Signer`] could not be made.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SignerError {
    /// The private key could not be generated, read or written.
    #[error("signing key: {0}")]
    Key(String),
    /// The certificate could not be made or read.
    #[error("signing certificate: {0}")]
    Certificate(String),
    /// The certificate's public key is not the private key's.
    #[error("the signing certificate does not belong to the signing key")]
    Mismatch,
}

/// RSA-2048 PKCS#1 v1.5 SHA-256 signer with a self-signed X.509 certificate whose PEM is served
/// at `signing_cert_url`.
///
/// `Debug` never shows the key. Generate once, persist [`Signer::key_pem`] (secret) and
/// [`Signer::cert_pem`] (public), and restore with [`Signer::from_pem`]: receivers pin or cache
/// the certificate, so it should not change on every restart.
pub struct Signer {
    key: RsaKeyPair,
    cert_pem: String,
}

impl fmt::Debug for Signer {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Signer")
            .field("key", &"<redacted>")
            .field("cert_pem_bytes", &self.cert_pem.len())
            .finish()
    }
}

fn pkcs8_pem(key: &RsaKeyPair) -> Result<String, SignerError> {
    let der: Pkcs8V1Der<'static> = key
        .as_der()
        .map_err(|_| SignerError::Key("cannot encode the key as PKCS#8".into()))?;
    Ok(x509::pem_encode("PRIVATE KEY", der.as_ref()))
}

impl Signer {
    /// A new RSA-2048 key and a self-signed certificate for it with this common name.
    ///
    /// The certificate uses rcgen's fixed validity (1975 to 4096), so making one needs no clock;
    /// receivers trust it by where they fetched it, not by its dates.
    pub fn generate(common_name: &str) -> Result<Signer, SignerError> {
        let key = RsaKeyPair::generate(KeySize::Rsa2048)
            .map_err(|_| SignerError::Key("RSA-2048 key generation failed".into()))?;
        let key_pem = pkcs8_pem(&key)?;
        let rc_key =
            rcgen::KeyPair::from_pkcs8_pem_and_sign_algo(&key_pem, &rcgen::PKCS_RSA_SHA256)
                .map_err(|e| SignerError::Key(e.to_string()))?;
        let mut params = rcgen::CertificateParams::default();
        let mut dn = rcgen::DistinguishedName::new();
        dn.push(rcgen::DnType::CommonName, common_name);
        params.distinguished_name = dn;
        params.key_usages = vec![rcgen::KeyUsagePurpose::DigitalSignature];
        let cert = params
            .self_signed(&rc_key)
            .map_err(|e| SignerError::Certificate(e.to_string()))?;
        Ok(Signer {
            key,
            cert_pem: cert.pem(),
        })
    }

    /// Restores a signer from its PKCS#8 private key PEM (`PRIVATE KEY`) and certificate PEM,
    /// checking that the certificate carries this key's public key.
    pub fn from_pem(key_pem: &str, cert_pem: &str) -> Result<Signer, SignerError> {
        let der = x509::pem_decode(key_pem, "PRIVATE KEY").map_err(SignerError::Key)?;
        let key = RsaKeyPair::from_pkcs8(&der)
            .map_err(|e| SignerError::Key(format!("not an RSA PKCS#8 key: {e}")))?;
        let cert_key = x509::certificate_rsa_key(cert_pem).map_err(SignerError::Certificate)?;
        if cert_key.as_slice() != key.public_key().as_ref() {
            return Err(SignerError::Mismatch);
        }
        Ok(Signer {
            key,
            cert_pem: cert_pem.to_owned(),
        })
    }

    /// The private key as PKCS#8 PEM. Secret: store it like a password.
    ///
    /// Empty if the key cannot be encoded, which aws-lc-rs only reports on allocation failure
    /// for a key it already holds.
    pub fn key_pem(&self) -> String {
        pkcs8_pem(&self.key).unwrap_or_default()
    }

    /// The certificate PEM to serve at `signing_cert_url`.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The base64 (standard alphabet) RSA PKCS#1 v1.5 SHA-256 signature of `data`, or an error
    /// if aws-lc-rs fails to sign.
    pub fn try_sign(&self, data: &[u8]) -> Result<String, SignerError> {
        let mut signature = vec![0; self.key.public_modulus_len()];
        self.key
            .sign(
                &RSA_PKCS1_SHA256,
                &SystemRandom::new(),
                data,
                &mut signature,
            )
            .map_err(|_| SignerError::Key("RSA signing failed".into()))?;
        Ok(STANDARD.encode(signature))
    }

    /// The base64 RSA PKCS#1 v1.5 SHA-256 signature of `data`.
    ///
    /// Signing with a valid key into a buffer of the modulus size does not fail in aws-lc-rs; if
    /// it ever did, this returns an empty string, which no receiver accepts, so a delivery fails
    /// closed instead of crashing the worker. Use [`Signer::try_sign`] to see the error.
    pub fn sign(&self, data: &[u8]) -> String {
        self.try_sign(data).unwrap_or_default()
    }
}

/// Receiver side: checks the `signature` of a parsed delivery body against the certificate PEM
/// (the one served at its `signing_cert_url`), over the §5.3 string to sign rebuilt from the
/// body's own members. Members that are not signed (`unsubscribe_url`, `signing_cert_url`) do not
/// affect the result; fetching and trusting the certificate is the caller's business.
pub fn verify_notification(json: &Value, cert_pem: &str) -> Result<(), String> {
    let body = json.as_object().ok_or("the body is not a JSON object")?;
    let text = |key: &str| -> Result<&str, String> {
        body.get(key)
            .and_then(Value::as_str)
            .ok_or_else(|| format!("the body has no string member {key:?}"))
    };
    let type_name = text("type")?;
    let message_type =
        MessageType::parse(type_name).ok_or_else(|| format!("unknown type {type_name:?}"))?;
    let version = text("signature_version")?;
    // The SMN docs write "V1" in one place and "v1" in another.
    if !version.eq_ignore_ascii_case(SIGNATURE_VERSION) {
        return Err(format!("unsupported signature_version {version:?}"));
    }
    let subject = match body.get("subject") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s.as_str()),
        Some(_) => return Err("the subject is not a string".into()),
    };
    let subscribe_url = match message_type {
        MessageType::Notification => "",
        _ => text("subscribe_url")?,
    };
    let to_sign = string_to_sign_of(
        message_type,
        text("message")?,
        text("message_id")?,
        subject,
        subscribe_url,
        text("timestamp")?,
        text("topic_urn")?,
    );
    let signature = STANDARD
        .decode(text("signature")?)
        .map_err(|e| format!("the signature is not base64: {e}"))?;
    let public_key = x509::certificate_rsa_key(cert_pem)?;
    UnparsedPublicKey::new(&RSA_PKCS1_2048_8192_SHA256, &public_key)
        .verify(to_sign.as_bytes(), &signature)
        .map_err(|_| "the signature does not match the body".to_owned())
}
