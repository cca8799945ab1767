//! The archive's Ed25519 key pair, its text forms and its key id.
//!
//! - The **private key** is 32 random bytes (the Ed25519 seed). [`SigningKey::from_seed`] takes
//!   them from the caller (the server reads them from the OS); on disk it is a PKCS#8 PEM
//!   (`-----BEGIN PRIVATE KEY-----`, RFC 8410), the form `openssl genpkey -algorithm ed25519`
//!   writes and reads.
//! - The **public key** travels as a SubjectPublicKeyInfo PEM (`-----BEGIN PUBLIC KEY-----`,
//!   RFC 8410): `trailwatch keys export` prints it, `openssl pkey -pubin` reads it. Its DER is
//!   always the 12 bytes `30 2a 30 05 06 03 2b 65 70 03 21 00` followed by the 32 key bytes.
//! - The **key id** is the first 8 bytes of SHA-256 over the 32 raw public-key bytes, as 16
//!   lowercase hex digits. Every digest records the id of the key that signed it, so a digest
//!   signed by another key is reported as such rather than as a bad signature.
//!
//! `Debug` of a [`SigningKey`] shows only its key id.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use ed25519_dalek::Signer as _;
use sha2::{Digest as _, Sha256};

/// DER prefix of an Ed25519 SubjectPublicKeyInfo (RFC 8410 §4).
const SPKI_PREFIX: [u8; 12] = [
    0x30, 0x2a, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x03, 0x21, 0x00,
];
/// DER prefix of an Ed25519 PKCS#8 v1 private key (RFC 8410 §7).
const PKCS8_PREFIX: [u8; 16] = [
    0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22, 0x04, 0x20,
];

/// A key that cannot be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyError {
    /// Not PEM with the expected label.
    #[error("not a PEM {label} block: {reason}")]
    NotPem {
        /// `PUBLIC KEY` or `PRIVATE KEY`.
        label: &'static str,
        /// What is wrong.
        reason: String,
    },
    /// PEM that holds something other than an Ed25519 key.
    #[error("the {label} is not an Ed25519 key (RFC 8410)")]
    NotEd25519 {
        /// `PUBLIC KEY` or `PRIVATE KEY`.
        label: &'static str,
    },
    /// 32 bytes that are not a valid Ed25519 public key (not a curve point).
    #[error("the public key is not a valid Ed25519 point")]
    InvalidPoint,
}

/// The server's private signing key. Never printed.
#[derive(Clone)]
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("key_id", &self.public_key().key_id())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// The key whose seed is these 32 bytes. For a new key, pass 32 bytes from a
    /// cryptographically secure random source (e.g. `rand::rngs::OsRng` or `getrandom`).
    pub fn from_seed(seed: &[u8; 32]) -> SigningKey {
        SigningKey {
            inner: ed25519_dalek::SigningKey::from_bytes(seed),
        }
    }

    /// The public half.
    pub fn public_key(&self) -> PublicKey {
        PublicKey {
            inner: self.inner.verifying_key(),
        }
    }

    /// Signs `message` (Ed25519, RFC 8032).
    pub fn sign(&self, message: &[u8]) -> [u8; 64] {
        self.inner.sign(message).to_bytes()
    }

    /// The PKCS#8 PEM form (RFC 8410) for the key file. The caller writes it with mode 0600.
    pub fn to_pkcs8_pem(&self) -> String {
        let mut der = Vec::with_capacity(48);
        der.extend_from_slice(&PKCS8_PREFIX);
        der.extend_from_slice(self.inner.as_bytes());
        pem_encode("PRIVATE KEY", &der)
    }

    /// Reads the PKCS#8 PEM form (as written by [`SigningKey::to_pkcs8_pem`] or
    /// `openssl genpkey -algorithm ed25519`).
    pub fn from_pkcs8_pem(pem: &str) -> Result<SigningKey, KeyError> {
        const LABEL: &str = "PRIVATE KEY";
        let der = pem_decode(LABEL, pem)?;
        let seed: [u8; 32] = der
            .strip_prefix(&PKCS8_PREFIX[..])
            .and_then(|rest| rest.try_into().ok())
            .ok_or(KeyError::NotEd25519 { label: LABEL })?;
        Ok(SigningKey::from_seed(&seed))
    }
}

/// The public key that verifies digests.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct PublicKey {
    inner: ed25519_dalek::VerifyingKey,
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("PublicKey")
            .field(&hex::encode(self.inner.as_bytes()))
            .finish()
    }
}

impl PublicKey {
    /// The key from its 32 raw bytes.
    pub fn from_bytes(bytes: &[u8; 32]) -> Result<PublicKey, KeyError> {
        ed25519_dalek::VerifyingKey::from_bytes(bytes)
            .map(|inner| PublicKey { inner })
            .map_err(|_| KeyError::InvalidPoint)
    }

    /// The 32 raw bytes.
    pub fn to_bytes(&self) -> [u8; 32] {
        self.inner.to_bytes()
    }

    /// The key id: the first 8 bytes of SHA-256 over the raw key.
    pub fn key_id(&self) -> KeyId {
        let hash = Sha256::digest(self.inner.as_bytes());
        let mut id = [0u8; 8];
        id.copy_from_slice(&hash[..8]);
        KeyId(id)
    }

    /// The SubjectPublicKeyInfo PEM (RFC 8410), ending in a newline.
    pub fn to_pem(&self) -> String {
        let mut der = Vec::with_capacity(44);
        der.extend_from_slice(&SPKI_PREFIX);
        der.extend_from_slice(self.inner.as_bytes());
        pem_encode("PUBLIC KEY", &der)
    }

    /// Reads the SubjectPublicKeyInfo PEM. Text around the block (comments) is ignored.
    pub fn from_pem(pem: &str) -> Result<PublicKey, KeyError> {
        const LABEL: &str = "PUBLIC KEY";
        let der = pem_decode(LABEL, pem)?;
        let raw: [u8; 32] = der
            .strip_prefix(&SPKI_PREFIX[..])
            .and_then(|rest| rest.try_into().ok())
            .ok_or(KeyError::NotEd25519 { label: LABEL })?;
        PublicKey::from_bytes(&raw)
    }

    /// Checks an Ed25519 signature strictly (RFC 8032 with the canonical-encoding and small-order
    /// checks of `verify_strict`).
    pub fn verify(&self, message: &[u8], signature: &[u8; 64]) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        self.inner.verify_strict(message, &sig).is_ok()
    }
}

/// A key id: 8 bytes, shown as 16 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct KeyId(pub [u8; 8]);

impl fmt::Display for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&hex::encode(self.0))
    }
}

impl fmt::Debug for KeyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "KeyId({self})")
    }
}

fn pem_encode(label: &str, der: &[u8]) -> String {
    let b64 = STANDARD.encode(der);
    let mut out = format!("-----BEGIN {label}-----\n");
    for chunk in b64.as_bytes().chunks(64) {
        // Base64 output is ASCII, so every chunk is valid UTF-8.
        out.push_str(std::str::from_utf8(chunk).unwrap_or_default());
        out.push('\n');
    }
    out.push_str(&format!("-----END {label}-----\n"));
    out
}

fn pem_decode(label: &'static str, pem: &str) -> Result<Vec<u8>, KeyError> {
    let fail = |reason: &str| KeyError::NotPem {
        label,
        reason: reason.to_owned(),
    };
    let begin = format!("-----BEGIN {label}-----");
    let end = format!("-----END {label}-----");
    let start = pem
        .find(&begin)
        .ok_or_else(|| fail(&format!("no {begin:?} line")))?;
    let body = &pem[start + begin.len()..];
    let stop = body
        .find(&end)
        .ok_or_else(|| fail(&format!("no {end:?} line")))?;
    let b64: String = body[..stop]
        .chars()
        .filter(|c| !c.is_ascii_whitespace())
        .collect();
    STANDARD
        .decode(b64)
        .map_err(|e| fail(&format!("bad base64 ({e})")))
}

#[cfg(test)]
mod tests {
    use super::*;

    // RFC 8032 §7.1, TEST 1.
    const SEED: &str = "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60";
    const PUBLIC: &str = "d75a980182b10ab7d54bfed3c964073a0ee172f3daa62325af021a68f707511a";
    const SIG_EMPTY: &str = "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b";

    fn seed() -> [u8; 32] {
        let mut s = [0u8; 32];
        hex::decode_to_slice(SEED, &mut s).unwrap_or_else(|e| panic!("{e}"));
        s
    }

    #[test]
    fn rfc8032_vector() {
        let key = SigningKey::from_seed(&seed());
        assert_eq!(hex::encode(key.public_key().to_bytes()), PUBLIC);
        let sig = key.sign(b"");
        assert_eq!(hex::encode(sig), SIG_EMPTY);
        assert!(key.public_key().verify(b"", &sig));
        assert!(!key.public_key().verify(b"x", &sig));
        let mut bad = sig;
        bad[5] ^= 1;
        assert!(!key.public_key().verify(b"", &bad));
    }

    #[test]
    fn pem_forms_round_trip_and_match_openssl() -> Result<(), KeyError> {
        let key = SigningKey::from_seed(&seed());
        let public_pem = key.public_key().to_pem();
        // `openssl pkey -in rfc8032-test1.pem -pubout` prints exactly this.
        assert_eq!(
            public_pem,
            "-----BEGIN PUBLIC KEY-----\nMCowBQYDK2VwAyEA11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo=\n-----END PUBLIC KEY-----\n"
        );
        assert_eq!(
            PublicKey::from_pem(&format!("comment\n{public_pem}trailer"))?,
            key.public_key()
        );
        let private_pem = key.to_pkcs8_pem();
        assert_eq!(
            private_pem,
            "-----BEGIN PRIVATE KEY-----\nMC4CAQAwBQYDK2VwBCIEIJ1hsZ3v/VpguoRK9JLsLMREScVpezJpGXA7rAMcrn9g\n-----END PRIVATE KEY-----\n"
        );
        let back = SigningKey::from_pkcs8_pem(&private_pem)?;
        assert_eq!(back.public_key(), key.public_key());
        Ok(())
    }

    #[test]
    fn key_id_is_the_first_8_bytes_of_sha256_of_the_raw_key() {
        let key = SigningKey::from_seed(&seed()).public_key();
        let full = hex::encode(Sha256::digest(key.to_bytes()));
        assert_eq!(key.key_id().to_string(), full[..16]);
        let other = SigningKey::from_seed(&[7; 32]).public_key();
        assert_ne!(key.key_id(), other.key_id());
    }

    #[test]
    fn bad_pem_says_why() {
        let err = |s: &str| match PublicKey::from_pem(s) {
            Err(e) => e.to_string(),
            Ok(k) => panic!("accepted {k:?}"),
        };
        assert!(err("").contains("no \"-----BEGIN PUBLIC KEY-----\" line"));
        assert!(err("-----BEGIN PUBLIC KEY-----\nAAAA\n").contains("END"));
        assert!(err("-----BEGIN PUBLIC KEY-----\n!!\n-----END PUBLIC KEY-----").contains("base64"));
        // An RSA SubjectPublicKeyInfo (the CTS key's first bytes) is not Ed25519.
        assert!(
            err("-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8AMIIBCgKCAQEAsjQDkl8COPRhOCvm\n-----END PUBLIC KEY-----")
                .contains("not an Ed25519 key")
        );
        let private = SigningKey::from_seed(&seed()).to_pkcs8_pem();
        assert!(err(&private).contains("BEGIN PUBLIC KEY"));
        assert!(
            SigningKey::from_pkcs8_pem(&SigningKey::from_seed(&seed()).public_key().to_pem())
                .is_err()
        );
    }

    #[test]
    fn debug_never_shows_the_seed() {
        let key = SigningKey::from_seed(&seed());
        let shown = format!("{key:?}");
        assert!(
            !shown.contains(SEED) && !shown.contains(&SEED[..8]),
            "{shown}"
        );
        assert!(shown.contains(&key.public_key().key_id().to_string()));
    }
}
