//! Secrets that stay out of logs ([`Secret`]) and sealing of secrets at rest ([`SealKey`]).

use std::fmt;

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand::RngCore as _;

/// A secret string whose Debug and Display print `<redacted>`. Use [`Secret::expose`] to read it.
///
/// Putting SKs, passwords and tokens in this type means a stray `{:?}` in a log line or an error
/// cannot leak them.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// Wraps a secret value.
    pub fn new(s: impl Into<String>) -> Self {
        Secret(s.into())
    }

    /// The secret value itself. Call sites are easy to grep for.
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

impl fmt::Display for Secret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Version prefix of sealed strings, so the scheme can change without ambiguity.
const SEALED_PREFIX: &str = "v1:";

/// AES-GCM tag length in bytes.
const TAG_LEN: usize = 16;

/// Why a sealed value could not be opened.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SealError {
    /// Not a `v1:` value, bad base64, or too short to hold nonce and tag.
    #[error("malformed sealed value")]
    Malformed,
    /// Authentication failed: wrong key, wrong associated data, or tampered ciphertext.
    #[error("sealed value failed authentication (wrong key, wrong context, or tampered)")]
    Decrypt,
}

/// AES-256-GCM key for sealing secrets stored at rest (SKs, encrypted user data).
///
/// Each seal uses a fresh random 96-bit nonce; at the volumes of a single self-hosted deployment
/// the random-nonce collision bound (2^32 messages per key) is far away.
pub struct SealKey(LessSafeKey);

impl fmt::Debug for SealKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SealKey(<redacted>)")
    }
}

impl SealKey {
    /// Wraps raw key bytes. Derive them with [`crate::MasterKey::seal_key`].
    pub fn from_bytes(b: [u8; 32]) -> Self {
        // UnboundKey::new only fails on a key length other than 32 bytes, which the type rules out.
        #[allow(clippy::expect_used)]
        let key = UnboundKey::new(&AES_256_GCM, &b).expect("AES-256 key is 32 bytes");
        SealKey(LessSafeKey::new(key))
    }

    /// Encrypts `plaintext`, binding it to `aad` (e.g. `"sk:" + access_key`) so a sealed value cannot
    /// be moved to another row. Returns `"v1:" + base64(nonce || ciphertext || tag)`.
    ///
    /// # Panics
    ///
    /// Only if `plaintext` exceeds AES-GCM's per-message limit (about 64 GiB), which callers never
    /// approach since request bodies are bounded far below that.
    pub fn seal(&self, plaintext: &[u8], aad: &[u8]) -> String {
        let mut nonce = [0u8; NONCE_LEN];
        rand::rng().fill_bytes(&mut nonce);
        let mut buf = Vec::with_capacity(NONCE_LEN + plaintext.len() + TAG_LEN);
        buf.extend_from_slice(plaintext);
        #[allow(clippy::expect_used)]
        self.0
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad),
                &mut buf,
            )
            .expect("plaintext within the AES-GCM message size limit");
        let mut out = Vec::with_capacity(NONCE_LEN + buf.len());
        out.extend_from_slice(&nonce);
        out.extend_from_slice(&buf);
        let mut sealed = String::from(SEALED_PREFIX);
        STANDARD.encode_string(&out, &mut sealed);
        sealed
    }

    /// Decrypts a value produced by [`SealKey::seal`] with the same `aad`.
    pub fn open(&self, sealed: &str, aad: &[u8]) -> Result<Vec<u8>, SealError> {
        let b64 = sealed
            .strip_prefix(SEALED_PREFIX)
            .ok_or(SealError::Malformed)?;
        let raw = STANDARD.decode(b64).map_err(|_| SealError::Malformed)?;
        if raw.len() < NONCE_LEN + TAG_LEN {
            return Err(SealError::Malformed);
        }
        let (nonce, ciphertext) = raw.split_at(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| SealError::Malformed)?;
        let mut in_out = ciphertext.to_vec();
        let plain_len = self
            .0
            .open_in_place(nonce, Aad::from(aad), &mut in_out)
            .map_err(|_| SealError::Decrypt)?
            .len();
        in_out.truncate(plain_len);
        Ok(in_out)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        let k = SealKey::from_bytes([7; 32]);
        for msg in [&b""[..], b"x", b"SecretKey0123456789abcdefghijklmnopqrst"] {
            let s = k.seal(msg, b"sk:AK1");
            assert!(s.starts_with("v1:"));
            assert_eq!(k.open(&s, b"sk:AK1").unwrap(), msg);
        }
    }

    #[test]
    fn nonces_are_fresh() {
        let k = SealKey::from_bytes([7; 32]);
        assert_ne!(k.seal(b"same", b""), k.seal(b"same", b""));
    }

    #[test]
    fn wrong_aad_fails() {
        let k = SealKey::from_bytes([7; 32]);
        let s = k.seal(b"secret", b"sk:AK1");
        assert_eq!(k.open(&s, b"sk:AK2"), Err(SealError::Decrypt));
        assert_eq!(k.open(&s, b""), Err(SealError::Decrypt));
    }

    #[test]
    fn wrong_key_fails() {
        let s = SealKey::from_bytes([7; 32]).seal(b"secret", b"");
        assert_eq!(
            SealKey::from_bytes([8; 32]).open(&s, b""),
            Err(SealError::Decrypt)
        );
    }

    #[test]
    fn tamper_fails() {
        let k = SealKey::from_bytes([7; 32]);
        let s = k.seal(b"secret value", b"");
        let raw = STANDARD.decode(&s[3..]).unwrap();
        for i in 0..raw.len() {
            let mut t = raw.clone();
            t[i] ^= 0x01;
            let forged = format!("v1:{}", STANDARD.encode(&t));
            assert_eq!(k.open(&forged, b""), Err(SealError::Decrypt), "byte {i}");
        }
        let truncated = format!("v1:{}", STANDARD.encode(&raw[..raw.len() - 1]));
        assert_eq!(k.open(&truncated, b""), Err(SealError::Decrypt));
    }

    #[test]
    fn malformed_inputs() {
        let k = SealKey::from_bytes([7; 32]);
        for s in [
            "",
            "v1:",
            "v2:AAAA",
            "v1:not base64!",
            "v1:AAAA",
            "secret",
            "v1:é",
        ] {
            assert_eq!(k.open(s, b""), Err(SealError::Malformed), "{s}");
        }
    }

    #[test]
    fn debug_is_redacted() {
        let s = Secret::new("hunter2-super-secret");
        assert_eq!(format!("{s:?}"), "<redacted>");
        assert_eq!(format!("{s}"), "<redacted>");
        assert_eq!(format!("{:?}", Some(&s)), "Some(<redacted>)");
        assert_eq!(s.expose(), "hunter2-super-secret");

        let k = SealKey::from_bytes([0x5A; 32]);
        let dbg = format!("{k:?}");
        assert_eq!(dbg, "SealKey(<redacted>)");
        assert!(!dbg.contains("5a") && !dbg.contains("90"));
    }
}
