//! Password hashing (argon2id, PHC strings) and the password policy.

use std::cell::RefCell;

use argon2::password_hash::{Output, ParamsString, PasswordHash, SaltString};
use argon2::{Algorithm, Argon2, Block, Params, Version};
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

thread_local! {
    /// argon2's working memory (19 MiB with the default cost), kept for the thread's next run.
    /// Allocating it per run made the allocator keep a growing set of 19 MiB blocks around
    /// (the server's memory grew with each login); reused, it is one block per hashing thread.
    static MEMORY: RefCell<Vec<Block>> = const { RefCell::new(Vec::new()) };
}

/// `argon` over `password` and `salt` into `out`, in this thread's reused working memory.
fn hash_into(
    argon: &Argon2<'_>,
    password: &[u8],
    salt: &[u8],
    out: &mut [u8],
) -> argon2::Result<()> {
    let blocks = argon.params().block_count();
    MEMORY.with(|memory| {
        let mut memory = memory.borrow_mut();
        if memory.len() < blocks {
            memory.resize(blocks, Block::default());
        }
        argon.hash_password_into_with_memory(password, salt, out, &mut memory[..blocks])
    })
}

/// Hashes `password` with a fresh random salt and returns the PHC string (`$argon2id$v=19$…`).
///
/// Does not apply the policy; call [`check_password_policy`] first when setting a password.
pub fn hash_password(password: &str) -> Result<String, PasswordError> {
    let err = |e: &dyn std::fmt::Display| PasswordError::Hash(e.to_string());
    let mut salt = [0u8; 16];
    rand::rng().fill_bytes(&mut salt);
    let salt_b64 = SaltString::encode_b64(&salt).map_err(|e| err(&e))?;
    let argon = hasher();
    let mut out = [0u8; Params::DEFAULT_OUTPUT_LEN];
    hash_into(&argon, password.as_bytes(), &salt, &mut out).map_err(|e| err(&e))?;
    let phc = PasswordHash {
        algorithm: Algorithm::Argon2id.ident(),
        version: Some(Version::V0x13.into()),
        params: ParamsString::try_from(argon.params()).map_err(|e| err(&e))?,
        salt: Some(salt_b64.as_salt()),
        hash: Some(Output::new(&out).map_err(|e| err(&e))?),
    };
    Ok(phc.to_string())
}

/// True if `password` matches the PHC string `phc`; false on mismatch or a malformed PHC string.
///
/// Cost parameters come from `phc` itself, so old hashes keep verifying after a parameter change.
pub fn verify_password(password: &str, phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    let (Some(salt), Some(expected)) = (parsed.salt, parsed.hash) else {
        return false;
    };
    let Ok(algorithm) = Algorithm::try_from(parsed.algorithm) else {
        return false;
    };
    let version = match parsed.version.map(Version::try_from).transpose() {
        Ok(v) => v.unwrap_or_default(),
        Err(_) => return false,
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return false;
    };
    let mut salt_buf = [0u8; 64];
    let Ok(salt) = salt.decode_b64(&mut salt_buf) else {
        return false;
    };
    let argon = Argon2::new(algorithm, version, params);
    let mut out = vec![0u8; expected.len()];
    if hash_into(&argon, password.as_bytes(), salt, &mut out).is_err() {
        return false;
    }
    // `Output` compares in constant time.
    Output::new(&out).is_ok_and(|computed| computed == expected)
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

    /// The hashes are the argon2 crate's own: each side verifies the other's PHC strings.
    #[test]
    fn interoperates_with_the_argon2_crate() {
        use argon2::password_hash::{PasswordHasher, PasswordVerifier};
        let ours = hash_password("interop password").unwrap();
        let parsed = PasswordHash::new(&ours).unwrap();
        assert!(
            hasher()
                .verify_password(b"interop password", &parsed)
                .is_ok()
        );
        assert!(
            hasher()
                .verify_password(b"interop passworD", &parsed)
                .is_err()
        );
        let salt = SaltString::encode_b64(b"0123456789abcdef").unwrap();
        let theirs = hasher()
            .hash_password(b"interop password", &salt)
            .unwrap()
            .to_string();
        assert!(verify_password("interop password", &theirs));
        assert!(!verify_password("interop passworD", &theirs));
        // Other cost parameters come from the string itself.
        let cheap = Argon2::new(
            Algorithm::Argon2id,
            Version::V0x13,
            Params::new(1024, 1, 1, None).unwrap(),
        )
        .hash_password(b"interop password", &salt)
        .unwrap()
        .to_string();
        assert!(verify_password("interop password", &cheap));
        assert!(!verify_password("other", &cheap));
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
