//! Fuzzes SDK-HMAC-SHA256 verification, which runs on every API request before authentication.
//!
//! The input is read as a small HTTP request, so seeds are readable and mutations stay close to
//! real traffic:
//!
//! ```text
//! METHOD /path?query
//! Header-Name: value
//! Authorization: SDK-HMAC-SHA256 Access=..., SignedHeaders=..., Signature=...
//!
//! body bytes
//! ```
//!
//! Checked: parsing the `Authorization` value and verifying the request never panic; the
//! canonicalisation helpers are total and idempotent; `parse_sdk_date` and `format_sdk_date` are
//! inverse; and a request signed with `sign` verifies at the same instant.

#![no_main]

use chrono::{DateTime, Duration, Utc};
use libfuzzer_sys::fuzz_target;
use sha2::{Digest, Sha256};
use trailwatch_iam::signing::{self, SignableRequest, SigningError};

/// The secret every verification uses; the seed requests are signed with it.
const SECRET_KEY: &str = "fuzz-secret-key";
const ACCESS_KEY: &str = "FUZZACCESSKEY";
/// 2024-11-09T14:04:02Z, the fixed server clock (the seeds carry this `X-Sdk-Date`).
const NOW_SECS: i64 = 1_731_161_042;
const MAX_SKEW_MINUTES: i64 = 15;
/// Mirrors the private limit in `signing.rs`: longer `Authorization` values are rejected.
const MAX_AUTHORIZATION_LEN: usize = 8 * 1024;

fuzz_target!(|data: &[u8]| {
    let Some(now) = DateTime::<Utc>::from_timestamp(NOW_SECS, 0) else {
        return;
    };
    let skew = Duration::minutes(MAX_SKEW_MINUTES);
    let input = Input::parse(data);

    // 1. The fuzzed request exactly as received.
    let req = input.request(&input.headers);
    if let Some(auth) = header(&input.headers, "authorization")
        && let Ok(parsed) = signing::parse_authorization(auth)
    {
        let _ = signing::verify(&req, &parsed, SECRET_KEY, now, skew);
    }

    // 2. The helpers on arbitrary strings. (Not on every header too: the percent-decoding
    // loops dominate the run time under instrumentation, and path and query already cover them.)
    check_canonical(&input.path);
    check_canonical(&input.query);
    for (_, value) in &input.headers {
        if let Ok(t) = signing::parse_sdk_date(value) {
            assert_eq!(
                signing::format_sdk_date(t),
                *value,
                "parse_sdk_date accepted a value format_sdk_date does not reproduce"
            );
        }
    }

    // 3. Sign and verify round trip.
    round_trip(&input, now, skew);
});

/// The fuzz input split into request parts.
struct Input<'a> {
    method: String,
    path: String,
    query: String,
    headers: Vec<(String, String)>,
    body: &'a [u8],
}

impl<'a> Input<'a> {
    /// Head up to the first blank line (lossy UTF-8, `\r\n` or `\n`), the rest is the body.
    fn parse(data: &'a [u8]) -> Self {
        let (head, body) = match data.windows(2).position(|w| w == b"\n\n") {
            Some(i) => (&data[..i], &data[i + 2..]),
            None => match data.windows(4).position(|w| w == b"\r\n\r\n") {
                Some(i) => (&data[..i], &data[i + 4..]),
                None => (data, &data[data.len()..]),
            },
        };
        let head = String::from_utf8_lossy(head);
        let mut lines = head.split('\n').map(|l| l.strip_suffix('\r').unwrap_or(l));
        let request_line = lines.next().unwrap_or_default();
        let (method, target) = request_line.split_once(' ').unwrap_or((request_line, "/"));
        let (path, query) = target.split_once('?').unwrap_or((target, ""));
        let headers = lines
            .map(|l| match l.split_once(':') {
                // Optional whitespace after the colon, as in HTTP; the rest is kept verbatim.
                Some((n, v)) => (n.to_owned(), v.trim_start_matches([' ', '\t']).to_owned()),
                None => (l.to_owned(), String::new()),
            })
            .collect();
        Input {
            method: method.to_owned(),
            path: path.to_owned(),
            query: query.to_owned(),
            headers,
            body,
        }
    }

    fn request<'r>(&'r self, headers: &'r [(String, String)]) -> SignableRequest<'r> {
        SignableRequest {
            method: &self.method,
            path: &self.path,
            query: &self.query,
            headers,
            body: self.body,
        }
    }
}

/// First value of header `name`, case-insensitive.
fn header<'h>(headers: &'h [(String, String)], name: &str) -> Option<&'h str> {
    headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case(name))
        .map(|(_, v)| v.as_str())
}

fn check_canonical(s: &str) {
    let uri = signing::canonical_uri(s);
    assert!(
        uri.starts_with('/') && uri.ends_with('/'),
        "canonical_uri({s:?}) = {uri:?} does not start and end with '/'"
    );
    assert_eq!(
        signing::canonical_uri(&uri),
        uri,
        "canonical_uri is not idempotent on {s:?}"
    );
    let query = signing::canonical_query(s);
    assert_eq!(
        signing::canonical_query(&query),
        query,
        "canonical_query is not idempotent on {s:?}"
    );
}

/// RFC 9110 token: the only header names HTTP can carry (and that `SignedHeaders` accepts).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "!#$%&'*+-.^_`|~".contains(c))
}

/// Signs the fuzzed request (with a valid `host` and the current `x-sdk-date`) and checks that
/// `verify` accepts it at the same instant.
fn round_trip(input: &Input<'_>, now: DateTime<Utc>, skew: Duration) {
    let mut headers: Vec<(String, String)> = input
        .headers
        .iter()
        .filter(|(n, _)| is_token(n) && !n.eq_ignore_ascii_case(signing::HEADER_SDK_DATE))
        .cloned()
        .collect();
    if header(&headers, "host").is_none() {
        headers.push(("Host".to_owned(), "fuzz.example.com".to_owned()));
    }
    headers.push(("X-Sdk-Date".to_owned(), signing::format_sdk_date(now)));
    let req = input.request(&headers);

    // `host` and a well-formed `x-sdk-date` are present, which is all `sign` documents requiring.
    let auth = match signing::sign(&req, ACCESS_KEY, SECRET_KEY) {
        Ok(auth) => auth,
        Err(e) => panic!("sign rejected a request with host and a valid x-sdk-date: {e}"),
    };
    let parsed = match signing::parse_authorization(&auth) {
        Ok(p) => p,
        Err(_) if auth.len() > MAX_AUTHORIZATION_LEN => return,
        Err(e) => panic!("parse_authorization rejects what sign produced: {e}; value: {auth:?}"),
    };
    assert_eq!(parsed.access_key, ACCESS_KEY);

    let got = signing::verify(&req, &parsed, SECRET_KEY, now, skew);
    assert_eq!(
        got,
        expected_verdict(&headers, input.body),
        "verify disagrees on a freshly signed request; Authorization: {auth:?}"
    );
}

/// What `verify` must say about a request `sign` just signed: accepted, unless it carries a
/// (signed) `x-sdk-content-sha256` that is neither `UNSIGNED-PAYLOAD` nor the body's hash; `sign`
/// does not check that claim, `verify` does.
fn expected_verdict(headers: &[(String, String)], body: &[u8]) -> Result<(), SigningError> {
    // Repeated headers are joined with ',' after trimming each value, as the library does.
    let claimed: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n.eq_ignore_ascii_case(signing::HEADER_CONTENT_SHA256))
        .map(|(_, v)| v.trim())
        .collect();
    if claimed.is_empty() {
        return Ok(());
    }
    let claimed = claimed.join(",");
    if claimed == signing::UNSIGNED_PAYLOAD
        || claimed.to_ascii_lowercase() == hex::encode(Sha256::digest(body))
    {
        Ok(())
    } else {
        Err(SigningError::PayloadHashMismatch)
    }
}
