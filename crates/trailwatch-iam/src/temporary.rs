//! Temporary AK/SK + security token for an agency (`context.getSecurityAccessKey()` /
//! `getSecuritySecretKey()` / `getSecurityToken()` of a Python function), stateless.
//!
//! - The **access key** is `TWTMP` + 20 random upper-case letters and digits (25 characters).
//!   Stored AKs are always 20 characters ([`crate::ids::new_access_key`]), so the two sets never
//!   meet and the verifier knows from the AK alone which path to take.
//! - The **security token** is `tws1.` + base64url(json(claims)) + `.` + base64url(HMAC-SHA256(
//!   token key, everything before the last dot)) — the format of [`crate::token`] under another
//!   prefix. The MAC covers the prefix, so a security token is never accepted as an
//!   `X-Auth-Token` nor the other way round. Its claims are the agency token's
//!   ([`TokenClaims`]: agency, domain, project, expiry, a fresh `jti`) plus the access key.
//! - The **secret key** is `hex(HMAC-SHA256(token key, "trailwatch temporary sk v1\n" + AK +
//!   "\n" + jti))` (64 characters). The server recomputes it from the token; nothing is stored.
//!
//! A request signed with a temporary AK must carry `X-Security-Token`, list it in
//! `SignedHeaders` (cloud-apis §7.2: "when present, these headers are signed"), and the token's
//! MAC, expiry and embedded AK must hold before the signature itself is checked with
//! [`signing::verify`] (constant time). The caller then acts with the token claims — exactly what
//! presenting the agency's token would give.

use std::fmt;

use aws_lc_rs::hmac;
use chrono::{DateTime, Duration, Utc};

use crate::signing::{self, ParsedAuthorization, SignableRequest, SigningError};
use crate::token::{self, TokenClaims, TokenError, TokenKey};

/// Every temporary access key starts with this.
pub const ACCESS_KEY_PREFIX: &str = "TWTMP";
/// Length of a temporary access key (prefix included); stored AKs have 20 characters.
pub const ACCESS_KEY_LEN: usize = 25;
/// The header that carries the security token.
pub const HEADER_SECURITY_TOKEN: &str = "x-security-token";

const TOKEN_PREFIX: &str = "tws1.";
const SK_LABEL: &str = "trailwatch temporary sk v1";

/// What a security token asserts: the agency token's claims plus the temporary AK it belongs to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct SecurityClaims {
    /// The temporary access key this token was issued with.
    pub access_key: String,
    /// Who the holder acts as (an agency: `methods: ["assume_role"]`, `agency` set).
    #[serde(flatten)]
    pub claims: TokenClaims,
}

/// A temporary AK/SK and its security token. `Debug` hides the secret key and the token.
#[derive(Clone, PartialEq, Eq)]
pub struct TemporaryCredentials {
    pub access_key: String,
    pub secret_key: String,
    pub security_token: String,
    /// Unix ms from which none of the three is accepted.
    pub expires_at: i64,
}

impl fmt::Debug for TemporaryCredentials {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("TemporaryCredentials")
            .field("access_key", &self.access_key)
            .field("secret_key", &"<redacted>")
            .field("security_token", &"<redacted>")
            .field("expires_at", &self.expires_at)
            .finish()
    }
}

/// Why a request signed with a temporary access key was refused. Messages never contain the
/// token, the secret key or the expected signature.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TemporaryError {
    /// No `X-Security-Token` header.
    #[error("a temporary access key needs the X-Security-Token header")]
    MissingSecurityToken,
    /// `X-Security-Token` is present but not listed in `SignedHeaders`.
    #[error("SignedHeaders must include x-security-token")]
    SecurityTokenNotSigned,
    /// Not a security token of this server (bad format, forged, tampered with, other key).
    #[error("the security token is invalid")]
    InvalidSecurityToken,
    /// A genuine security token whose time is over.
    #[error("security token expired at {expires_at} (unix ms)")]
    Expired {
        /// The token's `expires_at`, unix milliseconds.
        expires_at: i64,
    },
    /// The token was issued for another access key.
    #[error("the security token was not issued for this access key")]
    WrongAccessKey,
    /// The token holds; the signature does not.
    #[error(transparent)]
    Signature(#[from] SigningError),
}

/// True for the access keys [`issue`] makes (and only those: stored AKs are shorter).
pub fn is_temporary_access_key(access_key: &str) -> bool {
    access_key.len() == ACCESS_KEY_LEN
        && access_key.starts_with(ACCESS_KEY_PREFIX)
        && access_key.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A new temporary access key: the prefix + 20 random upper-case letters and digits.
pub fn new_access_key() -> String {
    format!("{ACCESS_KEY_PREFIX}{}", crate::ids::new_access_key())
}

/// The secret key of `access_key` under the security token with id `jti`.
pub fn derive_secret_key(key: &TokenKey, access_key: &str, jti: &str) -> String {
    let data = format!("{SK_LABEL}\n{access_key}\n{jti}");
    let tag: hmac::Tag = key.mac(data.as_bytes());
    hex::encode(tag.as_ref())
}

/// Issues a temporary AK/SK and security token that carry `claims` (give them a fresh `jti`).
pub fn issue(key: &TokenKey, claims: TokenClaims) -> TemporaryCredentials {
    let access_key = new_access_key();
    let secret_key = derive_secret_key(key, &access_key, &claims.jti);
    let expires_at = claims.expires_at;
    let security = SecurityClaims {
        access_key: access_key.clone(),
        claims,
    };
    TemporaryCredentials {
        security_token: token::issue_with_prefix(key, TOKEN_PREFIX, &security),
        access_key,
        secret_key,
        expires_at,
    }
}

/// Checks a security token (MAC, then expiry at `now_ms`) and returns its claims.
pub fn verify_security_token(
    key: &TokenKey,
    security_token: &str,
    now_ms: i64,
) -> Result<SecurityClaims, TemporaryError> {
    let claims: SecurityClaims = token::open_with_prefix(key, TOKEN_PREFIX, security_token)
        .map_err(|e: TokenError| match e {
            TokenError::Expired { expires_at } => TemporaryError::Expired { expires_at },
            TokenError::Malformed | TokenError::BadSignature => {
                TemporaryError::InvalidSecurityToken
            }
        })?;
    if now_ms >= claims.claims.expires_at {
        return Err(TemporaryError::Expired {
            expires_at: claims.claims.expires_at,
        });
    }
    Ok(claims)
}

/// Verifies a request signed with a temporary access key (`parsed.access_key`): the signed
/// `X-Security-Token`, the token itself, its access key, then the signature with the derived
/// secret key. Returns the claims the caller acts with.
pub fn verify_request(
    key: &TokenKey,
    req: &SignableRequest,
    parsed: &ParsedAuthorization,
    now: DateTime<Utc>,
    max_skew: Duration,
) -> Result<TokenClaims, TemporaryError> {
    let security_token = signing::header_value(req.headers, HEADER_SECURITY_TOKEN)
        .filter(|t| !t.is_empty())
        .ok_or(TemporaryError::MissingSecurityToken)?;
    if !parsed
        .signed_headers
        .iter()
        .any(|h| h.eq_ignore_ascii_case(HEADER_SECURITY_TOKEN))
    {
        return Err(TemporaryError::SecurityTokenNotSigned);
    }
    let security = verify_security_token(key, &security_token, now.timestamp_millis())?;
    if security.access_key != parsed.access_key {
        return Err(TemporaryError::WrongAccessKey);
    }
    let secret_key = derive_secret_key(key, &security.access_key, &security.claims.jti);
    signing::verify(req, parsed, &secret_key, now, max_skew)?;
    Ok(security.claims)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use base64::Engine as _;
    use base64::engine::general_purpose::URL_SAFE_NO_PAD;
    use chrono::TimeZone;

    const NOW_S: i64 = 1_700_000_000;

    fn key(b: u8) -> TokenKey {
        TokenKey::from_bytes([b; 32])
    }

    fn now() -> DateTime<Utc> {
        Utc.timestamp_opt(NOW_S, 0).single().unwrap()
    }

    fn claims() -> TokenClaims {
        TokenClaims {
            jti: "0190b2f0c8a27d4e9b1f3c5a7e9d1b3f".into(),
            user_id: "a".repeat(32),
            user_name: "fn_agency".into(),
            domain_id: "b".repeat(32),
            domain_name: "domain".into(),
            project_id: Some("c".repeat(32)),
            project_name: Some("eu-de".into()),
            methods: vec!["assume_role".into()],
            issued_at: NOW_S * 1000,
            expires_at: NOW_S * 1000 + 600_000,
            agency: Some("fn_agency".into()),
        }
    }

    struct Signed {
        headers: Vec<(String, String)>,
        authorization: String,
    }

    /// Signs `GET /v3/{pid}/traces` as a client would, with `token` in `X-Security-Token` when
    /// given (signed, since the SDK signs every header it sends).
    fn sign(ak: &str, sk: &str, token: Option<&str>) -> Signed {
        let mut headers = vec![
            ("Host".to_owned(), "127.0.0.1:8840".to_owned()),
            ("X-Sdk-Date".to_owned(), signing::format_sdk_date(now())),
        ];
        if let Some(t) = token {
            headers.push(("X-Security-Token".to_owned(), t.to_owned()));
        }
        let authorization = signing::sign(&request(&headers), ak, sk).unwrap();
        Signed {
            headers,
            authorization,
        }
    }

    fn request(headers: &[(String, String)]) -> SignableRequest<'_> {
        SignableRequest {
            method: "GET",
            path: "/v3/cccc/traces",
            query: "limit=10",
            headers,
            body: b"",
        }
    }

    fn check(k: &TokenKey, s: &Signed, at: DateTime<Utc>) -> Result<TokenClaims, TemporaryError> {
        let parsed = signing::parse_authorization(&s.authorization).unwrap();
        verify_request(k, &request(&s.headers), &parsed, at, Duration::minutes(15))
    }

    #[test]
    fn access_keys_are_recognisable_and_never_stored_ones() {
        for _ in 0..50 {
            let ak = new_access_key();
            assert!(is_temporary_access_key(&ak), "{ak}");
            assert!(!is_temporary_access_key(&crate::ids::new_access_key()));
        }
        assert_ne!(new_access_key(), new_access_key());
        assert!(!is_temporary_access_key("TWTMPABCDEFGHIJKLMNO")); // 20: a stored AK's length
        assert!(!is_temporary_access_key("TWTMPABCDEFGHIJKLMNOP-QRS"));
        assert!(!is_temporary_access_key(""));
    }

    #[test]
    fn a_request_signed_with_the_issued_credentials_verifies_to_the_agency() {
        let k = key(1);
        let c = issue(&k, claims());
        assert!(is_temporary_access_key(&c.access_key));
        assert_eq!(c.secret_key.len(), 64);
        assert_eq!(c.expires_at, claims().expires_at);
        // The SK is the documented derivation, recomputable from AK and jti alone.
        assert_eq!(
            c.secret_key,
            derive_secret_key(&k, &c.access_key, &claims().jti)
        );
        let s = sign(&c.access_key, &c.secret_key, Some(&c.security_token));
        assert_eq!(check(&k, &s, now()).unwrap(), claims());
        // Another issue for the same claims gives another AK and so another SK.
        let other = issue(&k, claims());
        assert_ne!(other.access_key, c.access_key);
        assert_ne!(other.secret_key, c.secret_key);
    }

    #[test]
    fn a_tampered_security_token_is_refused() {
        let k = key(1);
        let c = issue(&k, claims());
        // Claims changed (another project), MAC kept.
        let mut forged = SecurityClaims {
            access_key: c.access_key.clone(),
            claims: claims(),
        };
        forged.claims.project_id = Some("d".repeat(32));
        let payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&forged).unwrap());
        let mac = c.security_token.rsplit_once('.').unwrap().1;
        let forged = format!("{TOKEN_PREFIX}{payload}.{mac}");
        let s = sign(&c.access_key, &c.secret_key, Some(&forged));
        assert_eq!(
            check(&k, &s, now()),
            Err(TemporaryError::InvalidSecurityToken)
        );
        // Flipped MAC bit; garbage.
        let (head, mac) = c.security_token.rsplit_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(mac).unwrap();
        raw[3] ^= 0x10;
        let flipped = format!("{head}.{}", URL_SAFE_NO_PAD.encode(raw));
        for bad in [flipped.as_str(), "tws1.x.y", "garbage"] {
            let s = sign(&c.access_key, &c.secret_key, Some(bad));
            assert_eq!(
                check(&k, &s, now()),
                Err(TemporaryError::InvalidSecurityToken),
                "{bad}"
            );
        }
        // Issued under another server's key.
        let s = sign(&c.access_key, &c.secret_key, Some(&c.security_token));
        assert_eq!(
            check(&key(2), &s, now()),
            Err(TemporaryError::InvalidSecurityToken)
        );
    }

    #[test]
    fn security_tokens_and_bearer_tokens_never_stand_in_for_each_other() {
        let k = key(1);
        let c = issue(&k, claims());
        assert!(c.security_token.starts_with(TOKEN_PREFIX));
        assert!(token::verify(&k, &c.security_token, 0).is_err());
        let bearer = token::issue(&k, &claims());
        let s = sign(&c.access_key, &c.secret_key, Some(&bearer));
        assert_eq!(
            check(&k, &s, now()),
            Err(TemporaryError::InvalidSecurityToken)
        );
    }

    #[test]
    fn an_expired_security_token_is_refused() {
        let k = key(1);
        let c = issue(&k, claims());
        let s = sign(&c.access_key, &c.secret_key, Some(&c.security_token));
        let expires = claims().expires_at;
        assert!(check(&k, &s, Utc.timestamp_millis_opt(expires - 1).unwrap()).is_ok());
        assert_eq!(
            check(&k, &s, Utc.timestamp_millis_opt(expires).unwrap()),
            Err(TemporaryError::Expired {
                expires_at: expires
            })
        );
    }

    #[test]
    fn the_token_must_belong_to_the_access_key_and_the_sk_to_both() {
        let k = key(1);
        let a = issue(&k, claims());
        let b = issue(&k, claims());
        // b's AK and SK with a's token.
        let s = sign(&b.access_key, &b.secret_key, Some(&a.security_token));
        assert_eq!(check(&k, &s, now()), Err(TemporaryError::WrongAccessKey));
        // a's AK and token, b's SK.
        let s = sign(&a.access_key, &b.secret_key, Some(&a.security_token));
        assert_eq!(
            check(&k, &s, now()),
            Err(TemporaryError::Signature(SigningError::SignatureMismatch))
        );
        // A tampered signature.
        let mut s = sign(&a.access_key, &a.secret_key, Some(&a.security_token));
        let last = s.authorization.pop().unwrap();
        s.authorization.push(if last == '0' { '1' } else { '0' });
        assert_eq!(
            check(&k, &s, now()),
            Err(TemporaryError::Signature(SigningError::SignatureMismatch))
        );
    }

    #[test]
    fn the_security_token_header_must_be_present_and_signed() {
        let k = key(1);
        let c = issue(&k, claims());
        let s = sign(&c.access_key, &c.secret_key, None);
        assert_eq!(
            check(&k, &s, now()),
            Err(TemporaryError::MissingSecurityToken)
        );
        // Signed without the token, the token added afterwards.
        let mut s = sign(&c.access_key, &c.secret_key, None);
        s.headers
            .push(("X-Security-Token".to_owned(), c.security_token.clone()));
        assert_eq!(
            check(&k, &s, now()),
            Err(TemporaryError::SecurityTokenNotSigned)
        );
        // An empty header counts as absent.
        let s = sign(&c.access_key, &c.secret_key, Some(""));
        assert_eq!(
            check(&k, &s, now()),
            Err(TemporaryError::MissingSecurityToken)
        );
    }

    #[test]
    fn debug_and_errors_hide_the_secrets() {
        let k = key(1);
        let c = issue(&k, claims());
        let dbg = format!("{c:?}");
        assert!(dbg.contains(&c.access_key));
        assert!(!dbg.contains(&c.secret_key));
        assert!(!dbg.contains(&c.security_token));
        let other = issue(&k, claims());
        let s = sign(&c.access_key, &other.secret_key, Some(&c.security_token));
        let e = check(&k, &s, now()).unwrap_err().to_string();
        for secret in [&c.secret_key, &other.secret_key, &c.security_token] {
            assert!(!e.contains(secret.as_str()), "{e}");
        }
    }
}
