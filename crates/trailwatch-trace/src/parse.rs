//! JSON object → [`Trace`], with the leniency and strictness rules from the crate docs.

use std::borrow::Cow;
use std::net::IpAddr;

use serde_json::{Map, Value};

use crate::time::parse_time;
use crate::{DomainRef, Trace, TraceError, TraceRating, UserInfo, describe, quote};

/// Known top-level members in the §1.1 table order, `user` last; rendering uses the same
/// order, so parse and render cannot disagree on what counts as "extra".
pub(crate) const KNOWN_FIELDS: [&str; 30] = [
    "trace_id",
    "trace_name",
    "trace_rating",
    "trace_type",
    "service_type",
    "resource_type",
    "resource_name",
    "resource_id",
    "source_ip",
    "request",
    "response",
    "code",
    "api_version",
    "message",
    "time",
    "record_time",
    "request_id",
    "location_info",
    "endpoint",
    "resource_url",
    "enterprise_project_id",
    "resource_account_id",
    "read_only",
    "operation_id",
    "tracker_name",
    "event_type",
    "project_id",
    "domain_id",
    "user_agent",
    "user",
];

/// Members of `user` and `user.domain` that have their own struct fields.
pub(crate) const USER_FIELDS: [&str; 3] = ["id", "name", "domain"];
pub(crate) const DOMAIN_FIELDS: [&str; 2] = ["id", "name"];

/// Limits, stated in the error message when exceeded. They keep one hostile trace from
/// bloating indexes and reports; real values are far shorter.
const MAX_TRACE_ID: usize = 128;
const MAX_TRACE_NAME: usize = 64;
const MAX_NAME: usize = 256;
/// OBS data traces name objects (`bucket/key`), and object keys may be up to 1024 bytes.
const MAX_RESOURCE_NAME: usize = 1024;

/// One member value as the field rules see it. Strings are kept apart from [`Value`] so the
/// fast path ([`crate::fast`]) can hand over text borrowed from the input without building a
/// `Value`; every other kind is the `Value` serde_json would build. Both parse paths feed the
/// same rules through this type, which is what makes their results identical.
#[derive(Debug)]
pub(crate) enum Member<'a> {
    Str(Cow<'a, str>),
    /// Never a `Value::String` (see [`Member::from_value`]), so each rule has one string case.
    Json(Value),
    /// An object already split into known members and extras. The fast path builds this for
    /// `user` and `user.domain` only, instead of a `Value` that the rules would split anyway.
    Split(Box<Members<'a, 3>>),
}

impl<'a> Member<'a> {
    pub(crate) fn from_value(v: Value) -> Member<'a> {
        match v {
            Value::String(s) => Member::Str(Cow::Owned(s)),
            v => Member::Json(v),
        }
    }

    pub(crate) fn into_value(self) -> Value {
        match self {
            Member::Str(s) => Value::String(s.into_owned()),
            Member::Json(v) => v,
            // Not reached (only `user` and `user.domain` are split, and their rules take the
            // members directly); rebuilt anyway so the conversion is total.
            Member::Split(m) => {
                let Members {
                    schema,
                    slots,
                    extra,
                } = *m;
                let mut map = Map::new();
                for (name, slot) in schema.names.iter().zip(slots) {
                    if let Some(v) = slot {
                        map.insert((*name).to_owned(), v.into_value());
                    }
                }
                map.extend(extra);
                Value::Object(map)
            }
        }
    }

    fn is_null(&self) -> bool {
        matches!(self, Member::Json(Value::Null))
    }
}

/// [`describe`] for a [`Member`]: the same words the `Value` would get.
pub(crate) fn describe_member(m: &Member<'_>) -> String {
    match m {
        Member::Str(s) => format!("string {}", quote(s)),
        Member::Json(v) => describe(v),
        Member::Split(_) => "an object".to_owned(),
    }
}

/// Position of `name` in [`KNOWN_FIELDS`]. A `match` on string literals compiles to length
/// checks and fixed-size compares, several times faster than a scan over the table with
/// `memcmp`; it runs for every member on the hot ingest path. A unit test checks it against
/// the table.
pub(crate) fn known_index(name: &str) -> Option<usize> {
    Some(match name {
        "trace_id" => 0,
        "trace_name" => 1,
        "trace_rating" => 2,
        "trace_type" => 3,
        "service_type" => 4,
        "resource_type" => 5,
        "resource_name" => 6,
        "resource_id" => 7,
        "source_ip" => 8,
        "request" => 9,
        "response" => 10,
        "code" => 11,
        "api_version" => 12,
        "message" => 13,
        "time" => 14,
        "record_time" => 15,
        "request_id" => 16,
        "location_info" => 17,
        "endpoint" => 18,
        "resource_url" => 19,
        "enterprise_project_id" => 20,
        "resource_account_id" => 21,
        "read_only" => 22,
        "operation_id" => 23,
        "tracker_name" => 24,
        "event_type" => 25,
        "project_id" => 26,
        "domain_id" => 27,
        "user_agent" => 28,
        "user" => 29,
        _ => return None,
    })
}

/// Position of `name` in [`USER_FIELDS`].
pub(crate) fn user_index(name: &str) -> Option<usize> {
    match name {
        "id" => Some(0),
        "name" => Some(1),
        "domain" => Some(2),
        _ => None,
    }
}

/// Position of `name` in [`DOMAIN_FIELDS`].
pub(crate) fn domain_index(name: &str) -> Option<usize> {
    match name {
        "id" => Some(0),
        "name" => Some(1),
        _ => None,
    }
}

/// Known members pulled out of an object, plus the rest ("extras") in input order. Filled by
/// [`Members::split`] (slow path, from a `Map`) or member by member with [`Members::set`] and
/// [`Members::extra`] (fast path, while deserializing).
#[derive(Debug)]
pub(crate) struct Members<'a, const N: usize> {
    schema: &'static Schema,
    slots: [Option<Member<'a>>; N],
    pub(crate) extra: Map<String, Value>,
}

/// The known members of one kind of object.
#[derive(Debug)]
pub(crate) struct Schema {
    pub(crate) names: &'static [&'static str],
    /// Where a known name goes: [`known_index`], [`user_index`] or [`domain_index`].
    pub(crate) index: fn(&str) -> Option<usize>,
}

pub(crate) static TRACE: Schema = Schema {
    names: &KNOWN_FIELDS,
    index: known_index,
};
pub(crate) static USER: Schema = Schema {
    names: &USER_FIELDS,
    index: user_index,
};
pub(crate) static DOMAIN: Schema = Schema {
    names: &DOMAIN_FIELDS,
    index: domain_index,
};

impl<'a, const N: usize> Members<'a, N> {
    pub(crate) fn new(schema: &'static Schema) -> Self {
        Members {
            schema,
            slots: std::array::from_fn(|_| None),
            extra: Map::new(),
        }
    }

    /// A single pass (instead of `Map::remove`) keeps the extras in their original order even
    /// when serde_json's `preserve_order` feature makes `remove` a swap-remove.
    pub(crate) fn split(m: Map<String, Value>, schema: &'static Schema) -> Self {
        let mut f = Members::new(schema);
        for (k, v) in m {
            match f.index(&k) {
                Some(i) => f.set(i, Member::from_value(v)),
                None => {
                    f.extra.insert(k, v);
                }
            }
        }
        f
    }

    /// Back to empty, for reuse.
    pub(crate) fn clear(&mut self) {
        self.slots.iter_mut().for_each(|slot| *slot = None);
        self.extra.clear();
    }

    pub(crate) fn index(&self, name: &str) -> Option<usize> {
        (self.schema.index)(name)
    }

    /// Stores a known member; a later duplicate replaces an earlier one, as in a `Map`.
    pub(crate) fn set(&mut self, i: usize, m: Member<'a>) {
        if let Some(slot) = self.slots.get_mut(i) {
            *slot = Some(m);
        }
    }

    /// The member's value; JSON `null` counts as absent.
    fn take(&mut self, name: &str) -> Option<Member<'a>> {
        let i = self.index(name)?;
        match self.slots.get_mut(i)?.take() {
            Some(m) if m.is_null() => None,
            m => m,
        }
    }
}

/// The members of a trace object.
pub(crate) type TraceMembers<'a> = Members<'a, 30>;

pub(crate) fn trace_from_map(m: Map<String, Value>) -> Result<Trace, TraceError> {
    trace_from_members(&mut Members::split(m, &TRACE))
}

/// The field rules, applied in table order so the first error reported does not depend on the
/// member order of the input or on which parse path collected the members.
///
/// Takes what it uses out of `f`, which the fast path then reuses for the next record.
pub(crate) fn trace_from_members(f: &mut TraceMembers<'_>) -> Result<Trace, TraceError> {
    let trace_id = f.take("trace_id").map(trace_id).transpose()?;

    // The charset rule also covers emptiness and length, with a message that shows the value.
    let Some(trace_name) = f.take("trace_name") else {
        return Err(TraceError::new("trace_name", "is required"));
    };
    let trace_name = string("trace_name", trace_name, None)?;
    check_trace_name(&trace_name)?;

    let trace_rating = match f.take("trace_rating") {
        Some(Member::Str(s)) => s.parse::<TraceRating>()?,
        Some(other) => {
            return Err(TraceError::new(
                "trace_rating",
                format!(
                    "expected one of \"normal\", \"warning\", \"incident\", found {}",
                    describe_member(&other)
                ),
            ));
        }
        // FunctionGraph template payloads carry only `trace_status`, mirroring the rating.
        None => f
            .extra
            .get("trace_status")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok())
            .unwrap_or(TraceRating::Normal),
    };

    let trace_type = required_string(f, "trace_type", MAX_NAME)?;
    let service_type = required_string(f, "service_type", MAX_NAME)?;
    let resource_type = required_string(f, "resource_type", MAX_NAME)?;
    let resource_name = opt_string(f, "resource_name", Some(MAX_RESOURCE_NAME))?;
    let resource_id = opt_string(f, "resource_id", None)?;
    let source_ip = f.take("source_ip").map(source_ip).transpose()?;
    let request = f.take("request").map(Member::into_value);
    let response = f.take("response").map(Member::into_value);
    let code = f.take("code").map(code).transpose()?;
    let api_version = opt_string(f, "api_version", None)?;
    let message = f.take("message").map(Member::into_value);

    let time = match f.take("time") {
        Some(v) => parse_time("time", &v)?,
        None => return Err(TraceError::new("time", "is required")),
    };
    let record_time = f
        .take("record_time")
        .map(|v| parse_time("record_time", &v))
        .transpose()?;

    let request_id = opt_string(f, "request_id", None)?;
    let location_info = opt_string(f, "location_info", None)?;
    let endpoint = opt_string(f, "endpoint", None)?;
    let resource_url = opt_string(f, "resource_url", None)?;
    let enterprise_project_id = opt_string(f, "enterprise_project_id", None)?;
    let resource_account_id = opt_string(f, "resource_account_id", None)?;
    let read_only = f.take("read_only").map(read_only).transpose()?;
    let operation_id = opt_string(f, "operation_id", Some(MAX_NAME))?;
    let tracker_name = opt_string(f, "tracker_name", Some(MAX_NAME))?;
    let event_type = opt_string(f, "event_type", Some(MAX_NAME))?;
    let project_id = opt_string(f, "project_id", None)?;
    let domain_id = opt_string(f, "domain_id", None)?;
    let user_agent = opt_string(f, "user_agent", None)?;
    let user = f.take("user").map(user).transpose()?;

    Ok(Trace {
        trace_id,
        trace_name,
        trace_rating,
        trace_type,
        service_type,
        resource_type,
        resource_name,
        resource_id,
        source_ip,
        code,
        api_version,
        message,
        request,
        response,
        time,
        record_time,
        user,
        request_id,
        location_info,
        endpoint,
        resource_url,
        enterprise_project_id,
        resource_account_id,
        read_only,
        operation_id,
        tracker_name,
        event_type,
        project_id,
        domain_id,
        user_agent,
        extra: std::mem::take(&mut f.extra),
    })
}

/// Type check plus the rules every known string obeys: no NUL (it truncates C strings and
/// breaks some stores) and an optional length limit in characters.
fn string(field: &str, v: Member<'_>, max: Option<usize>) -> Result<String, TraceError> {
    match v {
        Member::Str(s) => {
            check_string(field, &s, max)?;
            Ok(s.into_owned())
        }
        other => Err(TraceError::new(
            field,
            format!("expected a string, found {}", describe_member(&other)),
        )),
    }
}

fn check_string(field: &str, s: &str, max: Option<usize>) -> Result<(), TraceError> {
    if s.contains('\0') {
        return Err(TraceError::new(
            field,
            format!("must not contain NUL characters, found {}", quote(s)),
        ));
    }
    if let Some(max) = max {
        // A string of at most `max` bytes has at most `max` characters: skip the count.
        if s.len() > max {
            let len = s.chars().count();
            if len > max {
                return Err(TraceError::new(
                    field,
                    format!("is {len} characters long; the limit is {max}"),
                ));
            }
        }
    }
    Ok(())
}

fn opt_string<const N: usize>(
    f: &mut Members<'_, N>,
    field: &str,
    max: Option<usize>,
) -> Result<Option<String>, TraceError> {
    f.take(field).map(|v| string(field, v, max)).transpose()
}

fn required_string<const N: usize>(
    f: &mut Members<'_, N>,
    field: &str,
    max: usize,
) -> Result<String, TraceError> {
    let Some(v) = f.take(field) else {
        return Err(TraceError::new(field, "is required"));
    };
    let s = string(field, v, Some(max))?;
    if s.trim().is_empty() {
        return Err(TraceError::new(field, "must not be empty"));
    }
    Ok(s)
}

/// Trace IDs end up in URLs, file names and `next` markers, so only visible ASCII is allowed.
fn trace_id(v: Member<'_>) -> Result<String, TraceError> {
    let s = string("trace_id", v, Some(MAX_TRACE_ID))?;
    if s.is_empty() {
        return Err(TraceError::new("trace_id", "must not be empty"));
    }
    if !s.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(TraceError::new(
            "trace_id",
            format!(
                "{} must consist of printable ASCII characters without spaces",
                quote(&s)
            ),
        ));
    }
    Ok(s)
}

fn check_trace_name(s: &str) -> Result<(), TraceError> {
    let mut chars = s.chars();
    let valid = chars.next().is_some_and(|c| c.is_ascii_alphabetic())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && s.len() <= MAX_TRACE_NAME;
    if valid {
        Ok(())
    } else {
        Err(TraceError::new(
            "trace_name",
            format!(
                "{} is not a valid trace name: it must be 1 to {MAX_TRACE_NAME} characters \
                 from [A-Za-z0-9._-] and start with a letter",
                quote(s)
            ),
        ))
    }
}

fn source_ip(v: Member<'_>) -> Result<String, TraceError> {
    let s = string("source_ip", v, None)?;
    let t = s.trim();
    // SystemAction traces have no caller, and CTS sends "" for them.
    if !t.is_empty() && t.parse::<IpAddr>().is_err() {
        return Err(TraceError::new(
            "source_ip",
            format!("{} is not a valid IPv4 or IPv6 address", quote(t)),
        ));
    }
    if t.len() == s.len() {
        // Nothing to trim: keep the allocation.
        Ok(s)
    } else {
        Ok(t.to_owned())
    }
}

/// The v3 model says string, but samples send integers (`200`, `0`, `302`).
fn code(v: Member<'_>) -> Result<String, TraceError> {
    match v {
        Member::Str(s) => {
            check_string("code", &s, None)?;
            Ok(s.into_owned())
        }
        Member::Json(Value::Number(n)) => {
            if let Some(i) = n.as_i64() {
                Ok(i.to_string())
            } else if let Some(u) = n.as_u64() {
                Ok(u.to_string())
            } else {
                Err(TraceError::new(
                    "code",
                    format!("expected a string or an integer, found number {n}"),
                ))
            }
        }
        other => Err(TraceError::new(
            "code",
            format!(
                "expected a string or an integer, found {}",
                describe_member(&other)
            ),
        )),
    }
}

/// HW sends a bool; string forms appear in HW user attributes, so they are accepted here too.
fn read_only(v: Member<'_>) -> Result<bool, TraceError> {
    match v {
        Member::Json(Value::Bool(b)) => Ok(b),
        Member::Str(s) if s == "true" => Ok(true),
        Member::Str(s) if s == "false" => Ok(false),
        other => Err(TraceError::new(
            "read_only",
            format!(
                "expected a boolean or the string \"true\" or \"false\", found {}",
                describe_member(&other)
            ),
        )),
    }
}

fn user(v: Member<'_>) -> Result<UserInfo, TraceError> {
    match v {
        // Older clients (and the otcextensions fixture) send the user as a bare string.
        Member::Str(s) => {
            check_string("user", &s, Some(MAX_NAME))?;
            Ok(UserInfo {
                name: Some(s.into_owned()),
                ..UserInfo::default()
            })
        }
        Member::Json(Value::Object(m)) => user_from_members(Members::split(m, &USER)),
        Member::Split(m) => user_from_members(*m),
        other => Err(TraceError::new(
            "user",
            format!(
                "expected an object or a string, found {}",
                describe_member(&other)
            ),
        )),
    }
}

fn user_from_members(mut f: Members<'_, 3>) -> Result<UserInfo, TraceError> {
    let id = f
        .take("id")
        .map(|v| string("user.id", v, None))
        .transpose()?;
    let name = f
        .take("name")
        .map(|v| string("user.name", v, Some(MAX_NAME)))
        .transpose()?;
    let domain = f.take("domain").map(domain).transpose()?;
    Ok(UserInfo {
        id,
        name,
        domain,
        extra: f.extra,
    })
}

fn domain(v: Member<'_>) -> Result<DomainRef, TraceError> {
    let mut f = match v {
        Member::Json(Value::Object(m)) => Members::split(m, &DOMAIN),
        Member::Split(m) => *m,
        other => {
            return Err(TraceError::new(
                "user.domain",
                format!("expected an object, found {}", describe_member(&other)),
            ));
        }
    };
    let id = f
        .take("id")
        .map(|v| string("user.domain.id", v, None))
        .transpose()?;
    let name = f
        .take("name")
        .map(|v| string("user.domain.name", v, Some(MAX_NAME)))
        .transpose()?;
    Ok(DomainRef {
        id,
        name,
        extra: f.extra,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The index functions must agree with the tables: the fast and slow paths route members
    /// to slots through them, and rendering walks the tables.
    #[test]
    fn index_functions_match_the_tables() {
        for schema in [&TRACE, &USER, &DOMAIN] {
            let (names, index) = (schema.names, schema.index);
            for (i, n) in names.iter().enumerate() {
                assert_eq!(index(n), Some(i), "{n}");
            }
            for other in ["", "trace_status", "Trace_id", "user ", "type"] {
                assert_eq!(index(other), None, "{other}");
            }
        }
    }
}
