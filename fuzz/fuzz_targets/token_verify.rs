//! Fuzzes bearer-token and security-token verification (`trailwatch-iam::token::verify`,
//! `temporary::verify_security_token`): every `X-Auth-Token` and every `X-Security-Token` of a
//! request signed with a temporary AK reaches them before anything else is known about the
//! caller.
//!
//! Two uses of each input:
//!
//! 1. As a token (lossy UTF-8), verified under a fixed key at a fixed time by both verifiers: no
//!    panic, and a `tw1.` token is never accepted as a security token nor a `tws1.` token as a
//!    bearer token. Whatever verifies (the seeds are tokens issued under the fixed key) must
//!    round-trip: its claims, issued again, verify to the same claims.
//! 2. As JSON claims (`TokenClaims`; the fuzzer cannot forge a MAC, so this is how it reaches the
//!    code past the MAC check): `token::issue` → `verify` gives the claims back (or `Expired` at or
//!    after `expires_at`), and so does `temporary::issue` → `verify_security_token`, with an
//!    access key of the temporary shape and the secret key derived from it. A token issued
//!    under another key, cut short, or with one character changed never verifies, and neither
//!    kind of token is accepted by the other's verifier.

#![no_main]

use libfuzzer_sys::fuzz_target;
use trailwatch_iam::temporary::{self, TemporaryError};
use trailwatch_iam::token::{self, TokenClaims, TokenError, TokenKey};

/// 2024-11-09T14:04:02Z in unix ms; the seed tokens expire after it.
const NOW_MS: i64 = 1_731_161_042_000;
/// The fixed key the seed tokens are issued under: 32 bytes of 0x42.
const KEY_BYTE: u8 = 0x42;

fuzz_target!(|data: &[u8]| {
    let key = TokenKey::from_bytes([KEY_BYTE; 32]);
    let other_key = TokenKey::from_bytes([KEY_BYTE ^ 0xff; 32]);

    // 1. The input as a token.
    let text = String::from_utf8_lossy(data);
    let bearer = token::verify(&key, &text, NOW_MS);
    let security = temporary::verify_security_token(&key, &text, NOW_MS);
    assert!(
        !(bearer.is_ok() && security.is_ok()),
        "one string verified as both a bearer and a security token"
    );
    if let Ok(claims) = bearer {
        assert_eq!(
            token::verify(&key, &token::issue(&key, &claims), NOW_MS),
            Ok(claims),
            "re-issued bearer claims do not verify to themselves"
        );
    }
    if let Ok(sc) = security {
        let again = temporary::issue(&key, sc.claims.clone());
        let verified = temporary::verify_security_token(&key, &again.security_token, NOW_MS);
        assert_eq!(
            verified.map(|v| v.claims),
            Ok(sc.claims),
            "re-issued security claims do not verify to themselves"
        );
    }

    // 2. The input as claims.
    let Ok(claims) = serde_json::from_slice::<TokenClaims>(data) else {
        return;
    };
    let expired = NOW_MS >= claims.expires_at;
    let tamper_at = data
        .iter()
        .fold(0usize, |h, b| h.wrapping_mul(31).wrapping_add(*b as usize));

    let t = token::issue(&key, &claims);
    let want = if expired {
        Err(TokenError::Expired {
            expires_at: claims.expires_at,
        })
    } else {
        Ok(claims.clone())
    };
    assert_eq!(token::verify(&key, &t, NOW_MS), want, "bearer round trip");
    assert!(
        token::verify(&other_key, &t, NOW_MS).is_err(),
        "a bearer token verified under another key"
    );
    assert_eq!(
        temporary::verify_security_token(&key, &t, NOW_MS).err(),
        Some(TemporaryError::InvalidSecurityToken),
        "a bearer token was accepted as a security token"
    );
    for bad in mutations(&t, tamper_at) {
        assert!(
            token::verify(&key, &bad, NOW_MS).is_err(),
            "a changed bearer token verified: {bad}"
        );
    }

    let creds = temporary::issue(&key, claims.clone());
    assert!(temporary::is_temporary_access_key(&creds.access_key));
    assert_eq!(creds.expires_at, claims.expires_at);
    assert_eq!(
        creds.secret_key,
        temporary::derive_secret_key(&key, &creds.access_key, &claims.jti)
    );
    match temporary::verify_security_token(&key, &creds.security_token, NOW_MS) {
        Ok(sc) => {
            assert!(!expired, "an expired security token verified");
            assert_eq!(
                sc.claims, claims,
                "security token claims changed on the way"
            );
            assert_eq!(sc.access_key, creds.access_key);
        }
        Err(TemporaryError::Expired { expires_at }) => {
            assert!(expired, "a live security token was called expired");
            assert_eq!(expires_at, claims.expires_at);
        }
        Err(e) => panic!("a security token we issued did not verify: {e:?}"),
    }
    assert!(
        temporary::verify_security_token(&other_key, &creds.security_token, NOW_MS).is_err(),
        "a security token verified under another key"
    );
    assert_eq!(
        token::verify(&key, &creds.security_token, NOW_MS).err(),
        Some(TokenError::Malformed),
        "a security token was accepted as a bearer token"
    );
    for bad in mutations(&creds.security_token, tamper_at) {
        assert!(
            temporary::verify_security_token(&key, &bad, NOW_MS).is_err(),
            "a changed security token verified: {bad}"
        );
    }
});

/// `t` cut short by one character, and `t` with the character at `at % len` replaced by another
/// base64url character (or a dot by a letter).
fn mutations(t: &str, at: usize) -> Vec<String> {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    let mut out = vec![t[..t.len() - 1].to_owned()];
    let bytes = t.as_bytes();
    let i = at % bytes.len();
    let old = bytes[i];
    let pos = ALPHABET.iter().position(|&c| c == old).unwrap_or(0);
    let new = ALPHABET[(pos + 1 + at / bytes.len() % 63) % 64];
    if new != old {
        let mut changed = bytes.to_vec();
        changed[i] = new;
        if let Ok(s) = String::from_utf8(changed) {
            out.push(s);
        }
    }
    out
}
