//! Identifier and credential generators shaped like Huawei/OTC ones.
//!
//! All randomness comes from the thread-local CSPRNG, since AKs, SKs and initial passwords are
//! credentials, not just labels.

use rand::Rng as _;
use rand::seq::SliceRandom as _;

const UPPER: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ";
const LOWER: &[u8] = b"abcdefghijklmnopqrstuvwxyz";
const DIGITS: &[u8] = b"0123456789";
const PASSWORD_SPECIALS: &[u8] = b"-_.";

/// `len` characters drawn uniformly from the union of `sets`.
fn random_from(sets: &[&[u8]], len: usize) -> Vec<u8> {
    let alphabet: Vec<u8> = sets.concat();
    let mut rng = rand::rng();
    (0..len)
        .filter_map(|_| alphabet.get(rng.random_range(0..alphabet.len())).copied())
        .collect()
}

/// ASCII bytes from the alphabets above are always valid UTF-8.
fn ascii_string(bytes: Vec<u8>) -> String {
    bytes.into_iter().map(char::from).collect()
}

/// A new 32-character lower-case hex id (UUID v4, simple form), like OTC project/domain/user ids.
pub fn new_id32() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// True if `s` is exactly 32 lower-case hex characters.
pub fn is_id32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A new access key: 20 upper-case letters and digits, like Huawei AKs.
pub fn new_access_key() -> String {
    ascii_string(random_from(&[UPPER, DIGITS], 20))
}

/// A new secret key: 40 letters (both cases) and digits, like Huawei SKs (~238 bits).
pub fn new_secret_key() -> String {
    ascii_string(random_from(&[UPPER, LOWER, DIGITS], 40))
}

/// A new 20-character password: upper- and lower-case letters and digits (each at least once) plus
/// exactly one of `-_.`, so it also passes stricter multi-class policies than ours.
pub fn new_password() -> String {
    let mut chars = random_from(&[UPPER, LOWER, DIGITS], 16);
    chars.extend(random_from(&[UPPER], 1));
    chars.extend(random_from(&[LOWER], 1));
    chars.extend(random_from(&[DIGITS], 1));
    chars.extend(random_from(&[PASSWORD_SPECIALS], 1));
    chars.shuffle(&mut rand::rng());
    ascii_string(chars)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::password::check_password_policy;

    #[test]
    fn id32() {
        for _ in 0..100 {
            let id = new_id32();
            assert!(is_id32(&id), "{id}");
        }
        assert_ne!(new_id32(), new_id32());
        assert!(is_id32("0123456789abcdef0123456789abcdef"));
        assert!(!is_id32("0123456789ABCDEF0123456789abcdef"));
        assert!(!is_id32("0123456789abcdef0123456789abcde"));
        assert!(!is_id32("0123456789abcdef0123456789abcdefa"));
        assert!(!is_id32("0123456789abcdef-123456789abcdef"));
        assert!(!is_id32("0123456789abcdeg0123456789abcdef"));
        assert!(!is_id32(""));
    }

    #[test]
    fn access_and_secret_keys() {
        for _ in 0..100 {
            let ak = new_access_key();
            assert_eq!(ak.len(), 20);
            assert!(
                ak.bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit()),
                "{ak}"
            );
            let sk = new_secret_key();
            assert_eq!(sk.len(), 40);
            assert!(sk.bytes().all(|b| b.is_ascii_alphanumeric()), "{sk}");
        }
        assert_ne!(new_access_key(), new_access_key());
        assert_ne!(new_secret_key(), new_secret_key());
    }

    #[test]
    fn passwords() {
        for _ in 0..200 {
            let p = new_password();
            assert_eq!(p.len(), 20);
            assert!(check_password_policy(&p).is_ok(), "{p}");
            assert!(p.bytes().any(|b| b.is_ascii_uppercase()), "{p}");
            assert!(p.bytes().any(|b| b.is_ascii_lowercase()), "{p}");
            assert!(p.bytes().any(|b| b.is_ascii_digit()), "{p}");
            assert_eq!(
                p.bytes().filter(|b| PASSWORD_SPECIALS.contains(b)).count(),
                1,
                "{p}"
            );
            assert!(
                p.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || PASSWORD_SPECIALS.contains(&b))
            );
        }
    }
}
