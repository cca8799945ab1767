//! The CTS (Cloud Trace Service) trace record: parsing, validation and serialization.
//!
//! One [`Trace`] is one audited operation, in the JSON shape used by the CTS v3 list API, CTS
//! trace files and the FunctionGraph CTS-trigger event (`{"cts": <trace>}`). Parsing is lenient
//! where real payloads disagree (`code` as string or integer, `time` in seconds, milliseconds or
//! the console rendering, `user` as a legacy string, `trace_status` instead of `trace_rating`)
//! and strict where later stages depend on it (trace names, addresses, timestamps). Unknown
//! members are kept in [`Trace::extra`] and written back out unchanged.
//!
//! ```
//! use trailwatch_trace::{RenderStyle, Trace, TraceRating};
//!
//! let trace = Trace::from_json_str(
//!     r#"{"trace_name": "login", "trace_type": "ConsoleAction", "service_type": "IAM",
//!         "resource_type": "user", "source_ip": "::ffff:203.0.113.17", "code": 302,
//!         "time": 1731161042, "user": {"name": "alice"}, "content_length": 12}"#,
//! )?;
//! assert_eq!(trace.trace_rating, TraceRating::Normal); // default when absent
//! assert_eq!(trace.code.as_deref(), Some("302")); // integers become strings
//! assert_eq!(trace.time, 1_731_161_042_000); // 10 digits are seconds
//! assert_eq!(trace.user_name(), Some("alice"));
//! assert_eq!(trace.source_addr(), "203.0.113.17".parse().ok()); // IPv4-mapped → IPv4
//!
//! let json = trace.to_json_string(RenderStyle::Stored);
//! assert!(json.starts_with(r#"{"trace_name":"login","trace_rating":"normal""#));
//! assert!(json.ends_with(r#""user":{"name":"alice"},"content_length":12}"#));
//!
//! let err = Trace::from_json_str(r#"{"trace_name": "9lives"}"#).unwrap_err();
//! assert_eq!(err.field, "trace_name");
//! # Ok::<(), trailwatch_trace::TraceError>(())
//! ```
//!
//! Member order: [`Trace::to_json_string`] and the [`serde::Serialize`] impl always write the
//! documented order. [`Trace::to_value`] builds a [`Map`], which keeps that order only when
//! serde_json's `preserve_order` feature is enabled somewhere in the build; otherwise the
//! members come out sorted by key.

use std::fmt;
use std::net::IpAddr;
use std::str::FromStr;

pub use serde_json::{Map, Value};

mod fast;
mod parse;
mod render;
mod time;

/// The CTS trace record.
#[derive(Debug, Clone, PartialEq)]
pub struct Trace {
    /// Filled by ingest ([`Trace::fill_defaults`]) when absent.
    pub trace_id: Option<String>,
    /// Required; 1–64 chars `[A-Za-z0-9._-]`, first char a letter.
    pub trace_name: String,
    /// If absent, taken from `trace_status` (FunctionGraph payloads), else [`TraceRating::Normal`].
    pub trace_rating: TraceRating,
    /// Required, non-empty (`ConsoleAction`, `ApiCall`, `SystemAction`, `ObsSDK`, ...).
    pub trace_type: String,
    /// Required, non-empty.
    pub service_type: String,
    /// Required, non-empty.
    pub resource_type: String,
    pub resource_name: Option<String>,
    pub resource_id: Option<String>,
    /// As given (trimmed). When present and non-empty it parses as an IPv4/IPv6 address;
    /// `SystemAction` traces carry an empty string.
    pub source_ip: Option<String>,
    /// The HTTP status of the recorded call; JSON integers are stored as decimal strings.
    pub code: Option<String>,
    pub api_version: Option<String>,
    /// Usually a string; any JSON value is kept as given.
    pub message: Option<Value>,
    /// String or object (or any JSON) kept as given.
    pub request: Option<Value>,
    /// String or object (or any JSON) kept as given.
    pub response: Option<Value>,
    /// When the operation happened, milliseconds since the epoch (UTC).
    pub time: i64,
    /// When CTS recorded it, milliseconds since the epoch. Filled by ingest when absent.
    pub record_time: Option<i64>,
    pub user: Option<UserInfo>,
    pub request_id: Option<String>,
    pub location_info: Option<String>,
    pub endpoint: Option<String>,
    pub resource_url: Option<String>,
    pub enterprise_project_id: Option<String>,
    pub resource_account_id: Option<String>,
    pub read_only: Option<bool>,
    pub operation_id: Option<String>,
    /// Filled by ingest (`"system"`) when absent.
    pub tracker_name: Option<String>,
    pub event_type: Option<String>,
    pub project_id: Option<String>,
    pub domain_id: Option<String>,
    pub user_agent: Option<String>,
    /// Every member not listed above (e.g. content_length, total_time, trace_status, future
    /// fields), preserved.
    pub extra: Map<String, Value>,
}

/// How serious the recorded operation was.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TraceRating {
    /// The operation succeeded.
    Normal,
    /// The operation failed.
    Warning,
    /// The operation had serious consequences.
    Incident,
}

impl TraceRating {
    /// All ratings, in increasing severity.
    pub const ALL: [TraceRating; 3] = [
        TraceRating::Normal,
        TraceRating::Warning,
        TraceRating::Incident,
    ];

    /// The wire name: `normal`, `warning` or `incident`.
    pub fn as_str(self) -> &'static str {
        match self {
            TraceRating::Normal => "normal",
            TraceRating::Warning => "warning",
            TraceRating::Incident => "incident",
        }
    }
}

impl fmt::Display for TraceRating {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TraceRating {
    type Err = TraceError;

    /// Exact lower-case names only; CTS itself never sends other spellings, so anything else
    /// is more likely a mistake than a variant worth accepting.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TraceRating::ALL
            .into_iter()
            .find(|r| r.as_str() == s)
            .ok_or_else(|| {
                TraceError::new(
                    "trace_rating",
                    format!(
                        "expected one of \"normal\", \"warning\", \"incident\" (lower case), found {}",
                        quote(s)
                    ),
                )
            })
    }
}

/// The `user` member: who performed the operation.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct UserInfo {
    pub id: Option<String>,
    pub name: Option<String>,
    pub domain: Option<DomainRef>,
    /// HW extras: user_name, account_id, access_key_id, principal_urn, session_context,
    /// invoked_by, ...
    pub extra: Map<String, Value>,
}

/// The account (domain) a user belongs to.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct DomainRef {
    pub id: Option<String>,
    pub name: Option<String>,
    pub extra: Map<String, Value>,
}

/// An ingest body (`POST /v3/{project_id}/traces`) split into its records, each parsed.
///
/// Built by [`parse_batch`]. The envelope errors (empty body, not JSON, not an object, a
/// `traces` member that is not an array or has siblings, no records or too many) are a
/// [`BatchError`]; each record has its own verdict here.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    /// The body was one trace object rather than `{"traces":[…]}`.
    pub single: bool,
    /// One verdict per record, in input order; never empty.
    pub records: Vec<Result<Trace, TraceError>>,
}

/// Why a whole ingest body is refused. `message` is the user-facing text (CTS.0003).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{message}")]
pub struct BatchError {
    pub message: String,
}

impl BatchError {
    fn empty() -> Self {
        BatchError {
            message: "The message body is empty".to_owned(),
        }
    }

    fn not_an_object(kind: &str) -> Self {
        BatchError {
            message: format!("the body must be a trace object or {{\"traces\":[…]}}, found {kind}"),
        }
    }

    fn no_records() -> Self {
        BatchError {
            message: "`traces` is empty: send at least one trace".to_owned(),
        }
    }

    fn too_many(max: usize, got: usize) -> Self {
        BatchError {
            message: format!("at most {max} traces per request, got {got}"),
        }
    }

    fn traces_not_an_array(kind: &str) -> Self {
        BatchError {
            message: format!("`traces` must be an array of trace objects, found {kind}"),
        }
    }
}

/// Parses an ingest body: one trace object, or `{"traces":[…]}` with 1 to `max_records`
/// records, in one pass over the bytes and without a `Value` tree per record (see
/// [`Trace::from_json_str`]).
///
/// The result is exactly that of [`parse_batch_slow`]: the same [`BatchError`] message, or the
/// same `single` flag and the same verdict per record. The whole body is always checked as
/// JSON, but records beyond `max_records` are only counted, never turned into traces.
pub fn parse_batch(body: &[u8], max_records: usize) -> Result<Batch, BatchError> {
    fast::parse_batch(body, max_records)
}

/// The reference for [`parse_batch`]: the whole body as a `Value`, the envelope and size
/// checks the ingest handler has always made (in its order), then [`Trace::from_value`] per
/// record. Kept for the differential tests and as the fast path's fallback.
pub fn parse_batch_slow(body: &[u8], max_records: usize) -> Result<Batch, BatchError> {
    fast::parse_batch_slow(body, max_records)
}

/// Test hooks: the fast paths without their fallback, so the differential tests can check that
/// the fast code itself (not just the fallback) agrees with the reference, and that it decides
/// most inputs. None means "left to the slow path". Not part of the API.
#[doc(hidden)]
pub mod __fast_only {
    use crate::{Batch, BatchError, Trace, TraceError};

    pub fn from_json_str(s: &str) -> Option<Result<Trace, TraceError>> {
        crate::fast::fast_trace_from_json_str(s)
    }

    pub fn parse_batch(body: &[u8], max_records: usize) -> Option<Result<Batch, BatchError>> {
        crate::fast::fast_parse_batch(body, max_records)
    }
}

/// A precise, user-facing parse error naming the field.
///
/// `field` is the member path (`trace_name`, `user.domain.id`), or empty when the whole
/// document is at fault (not JSON, not an object).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("field `{field}`: {message}")]
pub struct TraceError {
    pub field: String,
    pub message: String,
}

impl TraceError {
    pub(crate) fn new(field: &str, message: impl Into<String>) -> Self {
        TraceError {
            field: field.to_owned(),
            message: message.into(),
        }
    }
}

/// Which JSON shape [`Trace::to_value`] produces.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RenderStyle {
    /// As ingested: request/response/message kept as given (objects stay objects). Used for
    /// storage and the FunctionGraph CTS-trigger event.
    Stored,
    /// The CTS v3 list-API shape: `request` and `response` that are not strings are rendered as
    /// compact JSON text strings; everything else as Stored.
    CtsV3,
}

impl Trace {
    /// Parse one trace from a JSON value (must be an object).
    pub fn from_value(v: Value) -> Result<Trace, TraceError> {
        match v {
            Value::Object(m) => Trace::from_map(m),
            other => Err(TraceError::new(
                "",
                format!("expected a JSON object, found {}", describe(&other)),
            )),
        }
    }

    /// Parse one trace from the members of a JSON object.
    pub fn from_map(m: Map<String, Value>) -> Result<Trace, TraceError> {
        parse::trace_from_map(m)
    }

    /// Parse from JSON text. Syntax errors keep serde_json's line/column.
    ///
    /// The result (trace, or error field and message) is exactly that of
    /// `Trace::from_value(serde_json::from_str(s)?)`, but the document is read without building
    /// a [`Value`] for it: only non-string `request`/`response`/`message` values and unknown
    /// members become values, which takes about a third less time on real traces. Duplicate
    /// keys: the last one wins, as in a [`Map`].
    pub fn from_json_str(s: &str) -> Result<Trace, TraceError> {
        fast::trace_from_json_str(s)
    }

    /// Serialize back to the CTS JSON shape. Member order: the §1.1 table order, then `user`,
    /// then extras in their map order (see the crate docs on `preserve_order`). Absent fields
    /// are omitted, `code` is a string and `trace_rating` its name.
    pub fn to_value(&self, style: RenderStyle) -> Value {
        render::to_value(self, style)
    }

    /// Compact JSON text in the documented member order.
    pub fn to_json_string(&self, style: RenderStyle) -> String {
        render::to_json_string(self, style)
    }

    /// Fill ingest defaults: `trace_id` (a UUID v7, hyphenated lower-case) if None or empty,
    /// `record_time = now_ms` if None, `tracker_name = "system"` if None. Version 7 ids start
    /// with their creation time, so the store's unique `(project, trace_id)` index grows at its
    /// right edge instead of touching a random page per trace; the rest is random.
    pub fn fill_defaults(&mut self, now_ms: i64) {
        if self.trace_id.as_deref().is_none_or(str::is_empty) {
            self.trace_id = Some(uuid::Uuid::now_v7().hyphenated().to_string());
        }
        if self.record_time.is_none() {
            self.record_time = Some(now_ms);
        }
        if self.tracker_name.is_none() {
            self.tracker_name = Some("system".to_owned());
        }
    }

    /// The parsed source address, IPv4-mapped IPv6 (`::ffff:a.b.c.d`) normalised to IPv4;
    /// None when absent, empty or (for hand-built traces) not an address.
    pub fn source_addr(&self) -> Option<IpAddr> {
        let s = self.source_ip.as_deref()?.trim();
        if s.is_empty() {
            return None;
        }
        s.parse::<IpAddr>().ok().map(normalize_ip)
    }

    /// `user.name`, if any.
    pub fn user_name(&self) -> Option<&str> {
        self.user.as_ref()?.name.as_deref()
    }
}

/// IPv4-mapped IPv6 → IPv4; everything else unchanged.
///
/// Dual-stack front ends report IPv4 callers as `::ffff:a.b.c.d`; allow-lists and reports
/// should see the same address either way.
pub fn normalize_ip(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

impl serde::Serialize for Trace {
    /// The [`RenderStyle::Stored`] shape, in the documented member order.
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        render::Styled(self, RenderStyle::Stored).serialize(serializer)
    }
}

impl<'de> serde::Deserialize<'de> for Trace {
    /// Goes through [`Trace::from_value`] so embedded traces get the same rules and messages.
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let v = Value::deserialize(deserializer)?;
        Trace::from_value(v).map_err(serde::de::Error::custom)
    }
}

impl serde::Serialize for UserInfo {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        render::serialize_user(self, serializer)
    }
}

impl serde::Serialize for DomainRef {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        render::serialize_domain(self, serializer)
    }
}

/// Longest excerpt of a user-supplied string quoted in an error message.
const QUOTE_MAX: usize = 64;

/// Quotes (and escapes) a user-supplied string for an error message, truncated so a huge
/// payload cannot produce a huge error.
pub(crate) fn quote(s: &str) -> String {
    let mut chars = s.chars();
    let head: String = chars.by_ref().take(QUOTE_MAX).collect();
    if chars.next().is_some() {
        format!("{head:?}… (truncated)")
    } else {
        format!("{head:?}")
    }
}

/// What a JSON value is, for "expected X, found Y" messages.
pub(crate) fn describe(v: &Value) -> String {
    match v {
        Value::Null => "null".to_owned(),
        Value::Bool(b) => format!("boolean {b}"),
        Value::Number(n) => format!("number {n}"),
        Value::String(s) => format!("string {}", quote(s)),
        Value::Array(a) => format!("an array of {} element(s)", a.len()),
        Value::Object(_) => "an object".to_owned(),
    }
}
