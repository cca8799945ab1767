//! Topics and subscriptions: names, URNs, protocols, endpoints and the small validated values
//! that come with them. Every type here is built by a `parse` that enforces SMN's rules, so a value
//! you hold is valid (cloud-apis.md §5.1, §5.2).

use std::fmt;

use serde_json::{Map, Value};

use crate::error::{SmnError, codes};

/// The longest topic name SMN accepts, in characters.
pub const TOPIC_NAME_MAX: usize = 255;
/// The longest `display_name`, in bytes.
pub const DISPLAY_NAME_MAX_BYTES: usize = 192;
/// The longest subscription `remark`, in bytes of UTF-8.
pub const REMARK_MAX_BYTES: usize = 128;
/// At most this many `extension.header` entries.
pub const EXTENSION_HEADERS_MAX: usize = 10;
/// At most this many characters over all header names and values together.
pub const EXTENSION_HEADERS_MAX_CHARS: usize = 1024;
/// The longest HTTP(S) endpoint URL.
pub const URL_MAX: usize = 2048;

/// `[A-Za-z0-9_-]`, the alphabet of topic and template names.
pub(crate) fn is_name_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || c == '_' || c == '-'
}

/// A name of 1..=`max` characters of `[A-Za-z0-9_-]` that starts with a letter or digit.
pub(crate) fn is_valid_name(s: &str, max: usize) -> bool {
    // All allowed characters are ASCII, so the byte length is the character count.
    !s.is_empty()
        && s.len() <= max
        && s.starts_with(|c: char| c.is_ascii_alphanumeric())
        && s.chars().all(is_name_char)
}

/// A topic name: 1–255 characters of `[A-Za-z0-9_-]`, starting with a letter or digit.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicName(String);

impl TopicName {
    /// Validates a topic name (`SMN.0002` otherwise).
    pub fn parse(s: &str) -> Result<Self, SmnError> {
        if is_valid_name(s, TOPIC_NAME_MAX) {
            Ok(Self(s.to_owned()))
        } else {
            Err(SmnError::bad_request(
                codes::TOPIC_NAME_INVALID,
                format!(
                    "Invalid topic name {s:?}: use 1 to {TOPIC_NAME_MAX} characters of letters, digits, '_' and '-', starting with a letter or digit."
                ),
            ))
        }
    }

    /// The name as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TopicName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A region id as it appears in URNs (`eu-de`, `cn-north-4`, `region01`, `regionId`):
/// 1–64 characters of `[A-Za-z0-9_-]`, starting with a letter or digit.
fn is_valid_region(s: &str) -> bool {
    is_valid_name(s, 64)
}

/// A project id as it appears in URNs: 1–64 ASCII letters and digits. OTC and trailwatch project
/// ids are 32 lower-case hex characters; the looser rule only keeps separators and spaces out.
fn is_valid_project_id(s: &str) -> bool {
    !s.is_empty() && s.len() <= 64 && s.bytes().all(|b| b.is_ascii_alphanumeric())
}

/// A topic URN: `urn:smn:{region}:{project_id}:{name}`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct TopicUrn {
    /// The region id, e.g. `eu-de`.
    pub region: String,
    /// The owning project's id.
    pub project_id: String,
    /// The topic name.
    pub name: TopicName,
}

impl TopicUrn {
    /// Builds the URN of a topic. The region and project id come from the server's configuration
    /// and the authenticated scope, so they are trusted here rather than re-validated.
    pub fn new(region: impl Into<String>, project_id: impl Into<String>, name: TopicName) -> Self {
        Self {
            region: region.into(),
            project_id: project_id.into(),
            name,
        }
    }

    /// Parses `urn:smn:{region}:{project_id}:{name}` (`SMN.0005` otherwise).
    pub fn parse(s: &str) -> Result<Self, SmnError> {
        let bad = |why: &str| {
            SmnError::bad_request(
                codes::TOPIC_URN_INVALID,
                format!(
                    "Invalid topic URN {s:?}: {why}; expected urn:smn:{{region}}:{{project_id}}:{{topic_name}}."
                ),
            )
        };
        let parts: Vec<&str> = s.split(':').collect();
        let [urn, smn, region, project_id, name] = parts[..] else {
            return Err(bad("it must have exactly 5 ':'-separated parts"));
        };
        if urn != "urn" || smn != "smn" {
            return Err(bad("it must start with \"urn:smn:\""));
        }
        if !is_valid_region(region) {
            return Err(bad(
                "the region must be 1 to 64 letters, digits, '_' or '-'",
            ));
        }
        if !is_valid_project_id(project_id) {
            return Err(bad("the project id must be 1 to 64 letters or digits"));
        }
        let name = TopicName::parse(name).map_err(|_| {
            bad("the topic name must be 1 to 255 letters, digits, '_' or '-', starting with a letter or digit")
        })?;
        Ok(Self::new(region, project_id, name))
    }
}

impl fmt::Display for TopicUrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "urn:smn:{}:{}:{}",
            self.region, self.project_id, self.name
        )
    }
}

// Lets `SubscriptionUrn::generate` take either a borrowed or an owned topic URN.
impl From<&TopicUrn> for TopicUrn {
    fn from(t: &TopicUrn) -> Self {
        t.clone()
    }
}

/// True if `s` is exactly 32 lower-case hex characters, the form of SMN's generated ids.
pub(crate) fn is_id32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'))
}

/// A subscription URN: `{topic_urn}:{id}` with a 32-character lower-case hex id.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SubscriptionUrn {
    /// The topic the subscription belongs to.
    pub topic: TopicUrn,
    /// 32 lower-case hex characters.
    pub id: String,
}

impl SubscriptionUrn {
    /// A new subscription URN under `topic` with a random id (UUID v4 in its 32-hex form, the same
    /// shape as SMN's ids).
    pub fn generate(topic: impl Into<TopicUrn>) -> Self {
        Self {
            topic: topic.into(),
            id: uuid::Uuid::new_v4().simple().to_string(),
        }
    }

    /// Parses `urn:smn:{region}:{project_id}:{topic_name}:{id}` (`SMN.0014` otherwise).
    pub fn parse(s: &str) -> Result<Self, SmnError> {
        let bad = |why: &str| {
            SmnError::bad_request(
                codes::SUBSCRIPTION_URN_INVALID,
                format!(
                    "Invalid subscription URN {s:?}: {why}; expected urn:smn:{{region}}:{{project_id}}:{{topic_name}}:{{32 hex id}}."
                ),
            )
        };
        let Some((topic, id)) = s.rsplit_once(':') else {
            return Err(bad("it has no ':'"));
        };
        if !is_id32(id) {
            return Err(bad("the id must be 32 lower-case hex characters"));
        }
        // The caller sent a subscription URN, so SMN.0014 is the code that points at the right
        // parameter; the topic part's reason is kept.
        let topic = TopicUrn::parse(topic).map_err(|e| {
            SmnError::bad_request(
                codes::SUBSCRIPTION_URN_INVALID,
                format!(
                    "Invalid subscription URN {s:?}: its topic part is invalid. {}",
                    e.message
                ),
            )
        })?;
        Ok(Self {
            topic,
            id: id.to_owned(),
        })
    }
}

impl fmt::Display for SubscriptionUrn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.topic, self.id)
    }
}

/// A subscription protocol this service delivers to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// SMTP mail.
    Email,
    /// Text message through the configured SMS gateway.
    Sms,
    /// Signed JSON POST over plain HTTP.
    Http,
    /// Signed JSON POST over HTTPS.
    Https,
    /// Invocation of a FunctionGraph function (the SMN trigger event).
    FunctionStage,
}

impl Protocol {
    /// Every protocol, in SMN's documentation order.
    pub const ALL: [Protocol; 5] = [
        Protocol::Email,
        Protocol::Sms,
        Protocol::Http,
        Protocol::Https,
        Protocol::FunctionStage,
    ];

    /// Parses the wire name (`SMN.0011` otherwise, listing the accepted values).
    pub fn parse(s: &str) -> Result<Self, SmnError> {
        Self::ALL
            .into_iter()
            .find(|p| p.as_str() == s)
            .ok_or_else(|| {
                SmnError::bad_request(
                    codes::PROTOCOL_INVALID,
                    format!(
                        "Invalid protocol {s:?}: use one of email, sms, http, https, functionstage."
                    ),
                )
            })
    }

    /// The wire name, also the key of this protocol in `message_structure`.
    pub fn as_str(self) -> &'static str {
        match self {
            Protocol::Email => "email",
            Protocol::Sms => "sms",
            Protocol::Http => "http",
            Protocol::Https => "https",
            Protocol::FunctionStage => "functionstage",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a subscription stands. The numbers are SMN's `status` values (2 is unused by SMN).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SubscriptionStatus {
    /// Waiting for the endpoint to confirm; nothing is delivered yet.
    Unconfirmed = 0,
    /// Confirmed; messages are delivered.
    Confirmed = 1,
    /// Unsubscribed by the endpoint's owner.
    Canceled = 3,
}

impl SubscriptionStatus {
    /// SMN's numeric `status`.
    pub fn as_i64(self) -> i64 {
        self as i64
    }

    /// The status for SMN's numeric `status`, or `None` for a number SMN does not use.
    pub fn from_i64(n: i64) -> Option<Self> {
        match n {
            0 => Some(Self::Unconfirmed),
            1 => Some(Self::Confirmed),
            3 => Some(Self::Canceled),
            _ => None,
        }
    }
}

/// A validated endpoint for a protocol:
/// - email: a sane RFC 5322 addr-spec check: one `@`, a non-empty local part of at most 64
///   bytes, a domain with a dot, no spaces or control characters, at most 254 bytes in total;
/// - sms: E.164, `+` then 8–15 digits, the first not 0;
/// - http/https: a URL whose scheme is exactly the protocol's, with a host; no userinfo, no
///   fragment, at most 2048 characters;
/// - functionstage: a FunctionGraph function URN
///   `urn:fss:{region}:{project}:function:{package}:{name}[:{version}]`.
///
/// Whether an HTTP host may be internal (SMN's `SMN.0069`) is a deployment policy and is
/// decided by the service, not here.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Endpoint(String);

impl Endpoint {
    /// Validates `raw` for `protocol` (`SMN.0012` otherwise, with the reason).
    pub fn parse(protocol: Protocol, raw: &str) -> Result<Endpoint, SmnError> {
        let checked = match protocol {
            Protocol::Email => check_email(raw),
            Protocol::Sms => check_phone(raw),
            Protocol::Http => check_url(raw, "http"),
            Protocol::Https => check_url(raw, "https"),
            Protocol::FunctionStage => check_function_urn(raw),
        };
        match checked {
            Ok(()) => Ok(Endpoint(raw.to_owned())),
            Err(why) => Err(SmnError::bad_request(
                codes::ENDPOINT_INVALID,
                format!("Invalid {protocol} endpoint {raw:?}: {why}."),
            )),
        }
    }

    /// The endpoint as text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A DNS host name: dot-separated labels of 1–63 letters, digits and hyphens, not starting or
/// ending with a hyphen, at most 253 bytes.
fn is_dns_name(host: &str) -> bool {
    !host.is_empty()
        && host.len() <= 253
        && host.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

fn check_email(raw: &str) -> Result<(), &'static str> {
    if raw.len() > 254 {
        return Err("an address is at most 254 bytes");
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("an address must not contain spaces or control characters");
    }
    let mut parts = raw.split('@');
    let (Some(local), Some(domain), None) = (parts.next(), parts.next(), parts.next()) else {
        return Err("an address has exactly one '@'");
    };
    if local.is_empty() || local.len() > 64 {
        return Err("the part before '@' must be 1 to 64 bytes");
    }
    // The dot-atom form of RFC 5322: no leading, trailing or doubled dots and none of the
    // "specials". Quoted local parts are legal but never seen in practice and easy to abuse in
    // SMTP commands, so they are refused.
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("the part before '@' must not start or end with '.' or contain \"..\"");
    }
    if local.chars().any(|c| "\"(),:;<>[\\]".contains(c)) {
        return Err("the part before '@' contains a character that needs quoting");
    }
    if !domain.contains('.') {
        return Err("the domain must contain a '.'");
    }
    if !is_dns_name(domain) {
        return Err("the domain must be dot-separated labels of letters, digits and '-'");
    }
    Ok(())
}

fn check_phone(raw: &str) -> Result<(), &'static str> {
    let Some(digits) = raw.strip_prefix('+') else {
        return Err("a phone number is in E.164 form and starts with '+'");
    };
    if !(8..=15).contains(&digits.len()) || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err("'+' must be followed by 8 to 15 digits");
    }
    if digits.starts_with('0') {
        return Err("a country code never starts with 0");
    }
    Ok(())
}

fn check_url(raw: &str, scheme: &str) -> Result<(), &'static str> {
    if raw.len() > URL_MAX {
        return Err("a URL is at most 2048 characters");
    }
    if raw.chars().any(|c| c.is_whitespace() || c.is_control()) {
        return Err("a URL must not contain spaces or control characters");
    }
    let rest = raw
        .strip_prefix(scheme)
        .and_then(|r| r.strip_prefix("://"))
        .ok_or(if scheme == "https" {
            "the URL must start with https://"
        } else {
            "the URL must start with http://"
        })?;
    if rest.contains('#') {
        return Err("a URL must not have a fragment ('#')");
    }
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    if authority.contains('@') {
        return Err("a URL must not contain a user name or password");
    }
    let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
        let Some((addr, after)) = v6.split_once(']') else {
            return Err("an IPv6 host must be closed with ']'");
        };
        if addr.parse::<std::net::Ipv6Addr>().is_err() {
            return Err("the IPv6 host is not a valid address");
        }
        match after {
            "" => (addr, None),
            p => match p.strip_prefix(':') {
                Some(port) => (addr, Some(port)),
                None => return Err("only a ':port' may follow an IPv6 host"),
            },
        }
    } else {
        match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err("the URL has no host");
    }
    if !authority.starts_with('[') && !is_dns_name(host) {
        // Dotted IPv4 addresses are DNS-shaped too, so they pass this check.
        return Err("the host must be a DNS name, an IPv4 address or a bracketed IPv6 address");
    }
    if let Some(port) = port
        && (port.is_empty()
            || !port.bytes().all(|b| b.is_ascii_digit())
            || !matches!(port.parse::<u16>(), Ok(1..)))
    {
        return Err("the port must be a number from 1 to 65535");
    }
    Ok(())
}

fn check_function_urn(raw: &str) -> Result<(), &'static str> {
    const SHAPE: &str =
        "a function URN is urn:fss:{region}:{project_id}:function:{package}:{name}[:{version}]";
    let parts: Vec<&str> = raw.split(':').collect();
    let (urn, fss, region, project, function, package, name, version) = match parts[..] {
        [a, b, c, d, e, f, g] => (a, b, c, d, e, f, g, None),
        [a, b, c, d, e, f, g, h] => (a, b, c, d, e, f, g, Some(h)),
        _ => return Err(SHAPE),
    };
    if urn != "urn" || fss != "fss" || function != "function" {
        return Err(SHAPE);
    }
    if !is_valid_region(region) {
        return Err("the function URN's region must be 1 to 64 letters, digits, '_' or '-'");
    }
    if !is_valid_project_id(project) {
        return Err("the function URN's project id must be 1 to 64 letters or digits");
    }
    if !is_valid_name(package, 64) {
        return Err("the function's package must be 1 to 64 letters, digits, '_' or '-'");
    }
    // FunctionGraph names start with a letter.
    if !is_valid_name(name, 64) || !name.starts_with(|c: char| c.is_ascii_alphabetic()) {
        return Err(
            "the function name must be 1 to 64 letters, digits, '_' or '-', starting with a letter",
        );
    }
    if let Some(v) = version
        && (v.is_empty()
            || v.len() > 64
            || !v
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')))
    {
        return Err("the function version must be 1 to 64 letters, digits, '_', '-' or '.'");
    }
    Ok(())
}

/// `extension.header` of an http(s) subscription: extra headers added to every delivery.
///
/// Rules: at most 10 headers; names match `^x-[A-Za-z0-9-]+$` and do not start with `x-smn`
/// (any case), which SMN reserves for its own headers; names are distinct ignoring case, since
/// HTTP header names are; values are printable ASCII; names and values together are at most 1024
/// characters. A violation is 400 `SMN.0043` ([`codes::SUBSCRIPTION_INVALID`]).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct ExtensionHeaders(Vec<(String, String)>);

impl ExtensionHeaders {
    /// Validates the `header` object of `extension`. JSON `null` is taken as no headers, since
    /// some clients send absent optional members as `null`.
    pub fn parse(v: &Value) -> Result<Self, SmnError> {
        let bad = |why: String| {
            SmnError::bad_request(
                codes::SUBSCRIPTION_INVALID,
                format!("Invalid extension.header: {why}."),
            )
        };
        let map = match v {
            Value::Null => return Ok(Self::default()),
            Value::Object(map) => map,
            _ => {
                return Err(bad(
                    "it must be an object of header names to string values".into()
                ));
            }
        };
        if map.len() > EXTENSION_HEADERS_MAX {
            return Err(bad(format!(
                "{} headers given, at most {EXTENSION_HEADERS_MAX} are allowed",
                map.len()
            )));
        }
        let mut headers: Vec<(String, String)> = Vec::with_capacity(map.len());
        let mut total = 0usize;
        for (name, value) in map {
            let valid_name = name.strip_prefix("x-").is_some_and(|rest| {
                !rest.is_empty() && rest.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            });
            if !valid_name {
                return Err(bad(format!(
                    "header name {name:?} must match x-[A-Za-z0-9-]+"
                )));
            }
            if name.to_ascii_lowercase().starts_with("x-smn") {
                return Err(bad(format!(
                    "header name {name:?} is reserved: names starting with x-smn belong to SMN"
                )));
            }
            if headers.iter().any(|(n, _)| n.eq_ignore_ascii_case(name)) {
                return Err(bad(format!(
                    "header name {name:?} is given twice (names are case-insensitive)"
                )));
            }
            let Value::String(value) = value else {
                return Err(bad(format!("the value of {name:?} must be a string")));
            };
            if !value.bytes().all(|b| (0x20..=0x7e).contains(&b)) {
                return Err(bad(format!(
                    "the value of {name:?} must be printable ASCII"
                )));
            }
            // Both parts are ASCII by now, so bytes are characters.
            total += name.len() + value.len();
            headers.push((name.clone(), value.clone()));
        }
        if total > EXTENSION_HEADERS_MAX_CHARS {
            return Err(bad(format!(
                "names and values total {total} characters, at most {EXTENSION_HEADERS_MAX_CHARS} are allowed"
            )));
        }
        Ok(Self(headers))
    }

    /// The headers as (name, value) pairs.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.0.iter().map(|(n, v)| (n.as_str(), v.as_str()))
    }

    /// The `header` object, as stored and as listed back to clients.
    pub fn to_json(&self) -> Value {
        Value::Object(
            self.0
                .iter()
                .map(|(n, v)| (n.clone(), Value::String(v.clone())))
                .collect::<Map<String, Value>>(),
        )
    }

    /// True if there are no headers.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// The number of headers.
    pub fn len(&self) -> usize {
        self.0.len()
    }
}

/// Checks a topic `display_name`: at most 192 bytes, no control characters (`SMN.0003`). It is
/// used as the email sender name, where a line break would inject headers.
pub fn check_display_name(s: &str) -> Result<(), SmnError> {
    if s.len() > DISPLAY_NAME_MAX_BYTES {
        return Err(SmnError::bad_request(
            codes::DISPLAY_NAME_INVALID,
            format!(
                "Invalid display_name: it is {} bytes, at most {DISPLAY_NAME_MAX_BYTES} are allowed.",
                s.len()
            ),
        ));
    }
    if s.chars().any(char::is_control) {
        return Err(SmnError::bad_request(
            codes::DISPLAY_NAME_INVALID,
            "Invalid display_name: it must not contain control characters.",
        ));
    }
    Ok(())
}

/// Checks a subscription `remark`: at most 128 bytes of UTF-8 (`SMN.0017`).
pub fn check_remark(s: &str) -> Result<(), SmnError> {
    if s.len() > REMARK_MAX_BYTES {
        return Err(SmnError::bad_request(
            codes::REMARK_INVALID,
            format!(
                "Invalid remark: it is {} bytes of UTF-8, at most {REMARK_MAX_BYTES} are allowed.",
                s.len()
            ),
        ));
    }
    Ok(())
}
