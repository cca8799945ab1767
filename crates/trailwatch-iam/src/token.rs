//! Signed bearer tokens (`X-Auth-Token` / `X-Subject-Token`) that verify without a database lookup.
//!
//! Format: `"tw1." + base64url_nopad(json(claims)) + "." + base64url_nopad(HMAC-SHA256(key, "tw1." + payload))`.
//! The MAC also covers the `tw1.` prefix so a future format cannot be confused with this one.
//! Revocation (logout) is the caller's business, e.g. a deny-list of `jti`s until `expires_at`.

use std::fmt;

use aws_lc_rs::hmac;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use subtle::ConstantTimeEq;

/// Version prefix of every token issued by this module.
const PREFIX: &str = "tw1.";

/// Tokens are well under 1 KiB; refusing anything far larger bounds the work done on garbage.
const MAX_TOKEN_LEN: usize = 8 * 1024;

/// What a token asserts about its bearer.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct TokenClaims {
    /// Unique token id, for revocation lists and audit records.
    pub jti: String,
    /// 32-hex user id.
    pub user_id: String,
    /// User name.
    pub user_name: String,
    /// 32-hex domain (account) id.
    pub domain_id: String,
    /// Domain (account) name.
    pub domain_name: String,
    /// Project id when project-scoped; `None` for domain-scoped tokens.
    pub project_id: Option<String>,
    /// Project name (e.g. `eu-de`) when project-scoped.
    pub project_name: Option<String>,
    /// Authentication methods, e.g. `["password"]` or `["assume_role"]`.
    pub methods: Vec<String>,
    /// Issue time, unix milliseconds.
    pub issued_at: i64,
    /// Expiry time, unix milliseconds; the token is invalid from this instant on.
    pub expires_at: i64,
    /// Agency (`xrole_name`) name when the token was obtained by assuming an agency.
    pub agency: Option<String>,
}

/// 32-byte HMAC-SHA256 key for tokens. Derive it with [`crate::MasterKey::token_key`].
#[derive(Clone)]
pub struct TokenKey(hmac::Key);

impl TokenKey {
    /// Wraps raw key bytes.
    pub fn from_bytes(b: [u8; 32]) -> Self {
        TokenKey(hmac::Key::new(hmac::HMAC_SHA256, &b))
    }

    pub(crate) fn mac(&self, data: &[u8]) -> hmac::Tag {
        hmac::sign(&self.0, data)
    }
}

impl fmt::Debug for TokenKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TokenKey(<redacted>)")
    }
}

/// Why a token was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TokenError {
    /// Not a `tw1.` token, bad base64, wrong MAC length, or undecodable claims.
    #[error("malformed token")]
    Malformed,
    /// The MAC does not match: forged, tampered with, or issued under another key.
    #[error("token signature is invalid")]
    BadSignature,
    /// The token was genuine but has expired.
    #[error("token expired at {expires_at} (unix ms)")]
    Expired {
        /// The token's `expires_at`, unix milliseconds.
        expires_at: i64,
    },
}

/// Issues a token for `claims`.
pub fn issue(key: &TokenKey, claims: &TokenClaims) -> String {
    issue_with_prefix(key, PREFIX, claims)
}

/// `prefix + base64url(json(claims)) + "." + base64url(HMAC(key, prefix + payload))`. The MAC
/// covers the prefix, so tokens of different prefixes (formats) can never stand in for each
/// other even though they share the key.
pub(crate) fn issue_with_prefix<T: serde::Serialize>(
    key: &TokenKey,
    prefix: &str,
    claims: &T,
) -> String {
    // Serialising a struct of strings, integers and options cannot fail; the fallback keeps this
    // infallible without a panic path and would produce a token that simply fails to verify.
    let json = serde_json::to_vec(claims).unwrap_or_default();
    let mut token = String::with_capacity(prefix.len() + json.len() * 4 / 3 + 48);
    token.push_str(prefix);
    URL_SAFE_NO_PAD.encode_string(&json, &mut token);
    let tag = key.mac(token.as_bytes());
    token.push('.');
    URL_SAFE_NO_PAD.encode_string(tag.as_ref(), &mut token);
    token
}

/// Verifies `token` at time `now_ms` (unix ms) and returns its claims.
///
/// The MAC is checked (constant time) before the payload is parsed, so untrusted JSON is never
/// deserialised. Expired means `now_ms >= expires_at`.
pub fn verify(key: &TokenKey, token: &str, now_ms: i64) -> Result<TokenClaims, TokenError> {
    let claims: TokenClaims = open_with_prefix(key, PREFIX, token)?;
    if now_ms >= claims.expires_at {
        return Err(TokenError::Expired {
            expires_at: claims.expires_at,
        });
    }
    Ok(claims)
}

/// Checks the MAC of a token issued by [`issue_with_prefix`] with the same `prefix`, then
/// decodes its claims. Expiry is the caller's business.
pub(crate) fn open_with_prefix<T: serde::de::DeserializeOwned>(
    key: &TokenKey,
    prefix: &str,
    token: &str,
) -> Result<T, TokenError> {
    if token.len() > MAX_TOKEN_LEN {
        return Err(TokenError::Malformed);
    }
    let body = token.strip_prefix(prefix).ok_or(TokenError::Malformed)?;
    let (payload_b64, mac_b64) = body.split_once('.').ok_or(TokenError::Malformed)?;
    let mac = URL_SAFE_NO_PAD
        .decode(mac_b64)
        .map_err(|_| TokenError::Malformed)?;
    if mac.len() != 32 {
        return Err(TokenError::Malformed);
    }
    let signed_len = prefix.len() + payload_b64.len();
    let signed = token.get(..signed_len).ok_or(TokenError::Malformed)?;
    let expected = key.mac(signed.as_bytes());
    if !bool::from(expected.as_ref().ct_eq(&mac)) {
        return Err(TokenError::BadSignature);
    }
    let json = URL_SAFE_NO_PAD
        .decode(payload_b64)
        .map_err(|_| TokenError::Malformed)?;
    serde_json::from_slice(&json).map_err(|_| TokenError::Malformed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn claims() -> TokenClaims {
        TokenClaims {
            jti: "0190b2f0c8a27d4e9b1f3c5a7e9d1b3f".into(),
            user_id: "a".repeat(32),
            user_name: "some-rather-long-user-name@example".into(),
            domain_id: "b".repeat(32),
            domain_name: "OTC-EU-DE-00000000001000000001".into(),
            project_id: Some("c".repeat(32)),
            project_name: Some("eu-de_subproject".into()),
            methods: vec!["password".into()],
            issued_at: 1_700_000_000_000,
            expires_at: 1_700_086_400_000,
            agency: Some("agencytest".into()),
        }
    }

    fn key(b: u8) -> TokenKey {
        TokenKey::from_bytes([b; 32])
    }

    #[test]
    fn round_trip() {
        let t = issue(&key(1), &claims());
        assert!(t.starts_with("tw1."));
        assert_eq!(verify(&key(1), &t, 1_700_000_000_000).unwrap(), claims());
    }

    #[test]
    fn length_is_sane() {
        let t = issue(&key(1), &claims());
        assert!(t.len() < 1024, "token is {} bytes", t.len());
        // Header-safe: no padding, no '+' or '/'.
        assert!(
            t.chars()
                .all(|c| c.is_ascii_alphanumeric() || "-_.".contains(c))
        );
    }

    #[test]
    fn tampered_payload_rejected() {
        let t = issue(&key(1), &claims());
        let mut other = claims();
        other.user_name = "admin".into();
        let forged_payload = URL_SAFE_NO_PAD.encode(serde_json::to_vec(&other).unwrap());
        let mac = t.rsplit_once('.').unwrap().1;
        let forged = format!("tw1.{forged_payload}.{mac}");
        assert_eq!(verify(&key(1), &forged, 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn tampered_mac_rejected() {
        let t = issue(&key(1), &claims());
        let (head, mac) = t.rsplit_once('.').unwrap();
        let mut raw = URL_SAFE_NO_PAD.decode(mac).unwrap();
        raw[0] ^= 1;
        let forged = format!("{head}.{}", URL_SAFE_NO_PAD.encode(raw));
        assert_eq!(verify(&key(1), &forged, 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn wrong_key_rejected() {
        let t = issue(&key(1), &claims());
        assert_eq!(verify(&key(2), &t, 0), Err(TokenError::BadSignature));
    }

    #[test]
    fn expiry_boundary() {
        let c = claims();
        let t = issue(&key(1), &c);
        assert!(verify(&key(1), &t, c.expires_at - 1).is_ok());
        assert_eq!(
            verify(&key(1), &t, c.expires_at),
            Err(TokenError::Expired {
                expires_at: c.expires_at
            })
        );
    }

    #[test]
    fn garbage_never_panics() {
        let good = issue(&key(1), &claims());
        let mut inputs: Vec<String> = vec![
            String::new(),
            "tw1.".into(),
            "tw1..".into(),
            "tw1.a.b".into(),
            "tw1.é.é".into(),
            "tw2.".to_owned() + &good[4..],
            good.replace('.', ""),
            format!("{good}.extra"),
            good[..good.len() - 1].to_owned(),
            "x".repeat(MAX_TOKEN_LEN + 1),
        ];
        // A validly MACed token whose payload is not TokenClaims JSON.
        let payload = URL_SAFE_NO_PAD.encode(b"not json");
        let head = format!("tw1.{payload}");
        let mac = URL_SAFE_NO_PAD.encode(key(1).mac(head.as_bytes()).as_ref());
        inputs.push(format!("{head}.{mac}"));
        for i in 0..good.len() {
            inputs.push(good[..i].to_owned());
        }
        for s in &inputs {
            let r = verify(&key(1), s, 0);
            assert!(
                matches!(r, Err(TokenError::Malformed | TokenError::BadSignature)),
                "{s:?} -> {r:?}"
            );
        }
        assert_eq!(
            verify(&key(1), &format!("{head}.{mac}"), 0),
            Err(TokenError::Malformed)
        );
    }

    #[test]
    fn debug_is_redacted() {
        assert_eq!(format!("{:?}", key(0xAB)), "TokenKey(<redacted>)");
    }
}
