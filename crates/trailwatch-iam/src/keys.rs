//! One master key, from which every purpose-specific key is derived.
//!
//! Operators back up a single 32-byte secret; the token and seal keys are
//! `HMAC-SHA256(master, label)` with distinct labels, so compromising one derived key reveals
//! neither the master nor the other keys.

use std::fmt;

use aws_lc_rs::hmac;
use rand::RngCore as _;

use crate::secret::SealKey;
use crate::token::TokenKey;

const TOKEN_LABEL: &[u8] = b"trailwatch token v1";
const SEAL_LABEL: &[u8] = b"trailwatch seal v1";

/// The deployment's root secret: 32 random bytes.
#[derive(Clone, PartialEq, Eq)]
pub struct MasterKey([u8; 32]);

impl fmt::Debug for MasterKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("MasterKey(<redacted>)")
    }
}

impl MasterKey {
    /// A fresh key from the thread-local CSPRNG (ChaCha, seeded from the OS).
    pub fn generate() -> Self {
        let mut b = [0u8; 32];
        rand::rng().fill_bytes(&mut b);
        MasterKey(b)
    }

    /// Wraps stored key bytes.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        MasterKey(b)
    }

    /// The raw bytes, for persisting the key.
    pub fn as_bytes(&self) -> &[u8; 32] {
        &self.0
    }

    fn derive(&self, label: &[u8]) -> [u8; 32] {
        let key = hmac::Key::new(hmac::HMAC_SHA256, &self.0);
        let mut out = [0u8; 32];
        out.copy_from_slice(hmac::sign(&key, label).as_ref());
        out
    }

    /// Token MAC key: `HMAC-SHA256(master, "trailwatch token v1")`.
    pub fn token_key(&self) -> TokenKey {
        TokenKey::from_bytes(self.derive(TOKEN_LABEL))
    }

    /// Sealing key: `HMAC-SHA256(master, "trailwatch seal v1")`.
    pub fn seal_key(&self) -> SealKey {
        SealKey::from_bytes(self.derive(SEAL_LABEL))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::token::{self, TokenClaims};

    #[test]
    fn derivation_is_deterministic_and_separated() {
        let m = MasterKey::from_bytes([3; 32]);
        assert_ne!(m.derive(TOKEN_LABEL), m.derive(SEAL_LABEL));
        assert_eq!(
            m.derive(TOKEN_LABEL),
            MasterKey::from_bytes([3; 32]).derive(TOKEN_LABEL)
        );
        // Independent check of the construction with the `hmac` crate.
        use ::hmac::{Hmac, Mac};
        let mut mac = Hmac::<sha2::Sha256>::new_from_slice(&[3; 32]).unwrap();
        mac.update(b"trailwatch seal v1");
        assert_eq!(
            m.derive(SEAL_LABEL).as_slice(),
            mac.finalize().into_bytes().as_slice()
        );
    }

    #[test]
    fn derived_keys_work_across_instances() {
        let m = MasterKey::generate();
        let again = MasterKey::from_bytes(*m.as_bytes());
        let sealed = m.seal_key().seal(b"sk", b"aad");
        assert_eq!(again.seal_key().open(&sealed, b"aad").unwrap(), b"sk");

        let claims = TokenClaims {
            jti: "j".into(),
            user_id: "u".into(),
            user_name: "n".into(),
            domain_id: "d".into(),
            domain_name: "dn".into(),
            project_id: None,
            project_name: None,
            methods: vec!["password".into()],
            issued_at: 0,
            expires_at: 10,
            agency: None,
        };
        let t = token::issue(&m.token_key(), &claims);
        assert_eq!(token::verify(&again.token_key(), &t, 5).unwrap(), claims);
        let other = MasterKey::generate();
        assert!(token::verify(&other.token_key(), &t, 5).is_err());
    }

    #[test]
    fn generate_is_random() {
        assert_ne!(MasterKey::generate(), MasterKey::generate());
    }

    #[test]
    fn debug_is_redacted() {
        let m = MasterKey::from_bytes([0xC3; 32]);
        let dbg = format!("{m:?} {:?} {:?}", m.token_key(), m.seal_key());
        assert_eq!(
            dbg,
            "MasterKey(<redacted>) TokenKey(<redacted>) SealKey(<redacted>)"
        );
    }
}
