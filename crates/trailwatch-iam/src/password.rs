//! Password hashing (argon2id, PHC strings) and the password policy.

use argon2::password_hash::{PasswordHash, PasswordHasher, PasswordVerifier, SaltString};
use argon2::{Algorithm, Argon2, Params, Version};
use rand::RngCore as _;

/// Shortest acceptable password, in characters.
pub const MIN_PASSWORD_CHARS: usize = 8;
/// Longest acceptable password, in characters; bounds hashing work per login attempt.
pub const MAX_PASSWORD_CHARS: usize = 128;

/// Why a password was refused or could not be hashed.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum PasswordError {
    /// Fewer than [`MIN_PASSWORD_CHARS`] characters.
    #[error("password must be at least {min} characters long")]
    TooShort {
        /// The minimum length.
        min: usize,
    },
    /// More than [`MAX_PASSWORD_CHARS`] characters.
    #[error("password must be at most {max} characters long")]
    TooLong {
        /// The maximum length.
        max: usize,
    },
    /// The hasher failed (should not happen with the fixed parameters used here).
    #[error("password hashing failed: {0}")]
    Hash(String),
}

/// argon2id v0x13 with the argon2 crate's defaults (19 MiB, t=2, p=1, the OWASP minimum).
/// Spelled out so a dependency upgrade cannot silently change the cost of new hashes.
fn hasher() -> Argon2<'static> {
    Argon2::new(Algorithm::Argon2id, Version::V0x13, Params::default())
}

/// Hashes `password` with a fresh random salt and returns the PHC string (`$argon2id$v=19$…`).
///
/// Does not apply the policy; call [`check_password_policy`] first when setting a password.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt = SaltString::encode_b64(&salt).map_err(|e| PasswordError::Hash(e.to_string()))?;
    hasher()
        .hash_password(password.as_bytes(), &salt)
        .map(|h| h.to_string())
        .map_err(|e| PasswordError::Hash(e.to_string()))
}

/// True if `password` matches the PHC string `phc`; false on mismatch or a malformed PHC string.
///
/// Cost parameters come from `phc` itself, so old hashes keep verifying after a parameter change.
pub fn verify_password(password: &str, phc: &str) -> bool {
    match PasswordHash::new(phc) {
        Ok(parsed) => hasher()
            .verify_password(password.as_bytes(), &parsed)
            .is_ok(),
        Err(_) => false,
    }
}

/// Checks the password policy: between [`MIN_PASSWORD_CHARS`] and [`MAX_PASSWORD_CHARS`]
/// characters (Unicode scalar values, not bytes).
pub fn check_password_policy(password: &str) -> Result<(), PasswordError> {
    let n = password.chars().count();
    if n < MIN_PASSWORD_CHARS {
        return Err(PasswordError::TooShort {
            min: MIN_PASSWORD_CHARS,
        });
    }
    if n > MAX_PASSWORD_CHARS {
        return Err(PasswordError::TooLong {
            max: MAX_PASSWORD_CHARS,
        });
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn hash_and_verify() {
        let phc = hash_password("correct horse battery").unwrap();
        assert!(phc.starts_with("$argon2id$v=19$"));
        assert!(verify_password("correct horse battery", &phc));
        assert!(!verify_password("correct horse batterY", &phc));
        assert!(!verify_password("", &phc));
    }

    #[test]
    fn salts_differ() {
        let a = hash_password("same password").unwrap();
        let b = hash_password("same password").unwrap();
        assert_ne!(a, b);
        assert!(verify_password("same password", &a));
        assert!(verify_password("same password", &b));
    }

    #[test]
    fn malformed_phc_is_false() {
        for phc in [
            "",
            "$",
            "plaintext",
            "$argon2id$",
            "$argon2id$v=19$m=19456,t=2,p=1$",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$",
            "$argon2id$v=19$m=x,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
            "$bcrypt$whatever",
            "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHQ$aGFzaA",
        ] {
            assert!(!verify_password("password1", phc), "{phc}");
        }
    }

    #[test]
    fn policy() {
        assert_eq!(
            check_password_policy("short"),
            Err(PasswordError::TooShort { min: 8 })
        );
        assert_eq!(
            check_password_policy("1234567"),
            Err(PasswordError::TooShort { min: 8 })
        );
        assert!(check_password_policy("12345678").is_ok());
        // Counted in characters: 8 multi-byte characters are enough.
        assert!(check_password_policy("ééééé∂∂∂").is_ok());
        assert!(check_password_policy(&"a".repeat(128)).is_ok());
        assert_eq!(
            check_password_policy(&"a".repeat(129)),
            Err(PasswordError::TooLong { max: 128 })
        );
        assert_eq!(
            PasswordError::TooShort { min: 8 }.to_string(),
            "password must be at least 8 characters long"
        );
    }
}
