//! Helpers shared by the cloud parsers.

use serde_json::{Map, Value};

use crate::{Parsed, Problem};

/// Records (or lines) longer than this are reported as a [`Problem`] instead of parsed.
pub const MAX_RECORD_BYTES: usize = 1 << 20;

/// RFC 3339 / ISO 8601 time → milliseconds since the epoch (UTC). A missing zone means UTC.
pub(crate) fn parse_time_ms(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(t) = chrono::DateTime::parse_from_rfc3339(s) {
        return Some(t.timestamp_millis());
    }
    // "2020-10-22 04:29:53" / "2020-10-22T04:29:53.123" without a zone: taken as UTC.
    for fmt in ["%Y-%m-%dT%H:%M:%S%.f", "%Y-%m-%d %H:%M:%S%.f"] {
        if let Ok(t) = chrono::NaiveDateTime::parse_from_str(s, fmt) {
            return Some(t.and_utc().timestamp_millis());
        }
    }
    None
}

/// The address if `s` is an IPv4/IPv6 literal (trimmed); `None` otherwise.
pub(crate) fn ip_or_none(s: &str) -> Option<String> {
    let t = s.trim();
    t.parse::<std::net::IpAddr>().ok().map(|_| t.to_owned())
}

/// Longest `trace_id` the trace model accepts (`trailwatch-trace`).
const MAX_TRACE_ID: usize = 128;

/// `id` if the trace model accepts it as a `trace_id` (1 to 128 visible ASCII characters: ids
/// end up in URLs, file names and `next` markers); `None` otherwise, so that the caller falls
/// back to [`stable_id`] and the record still becomes a valid trace.
pub(crate) fn usable_id(id: String) -> Option<String> {
    let ok = !id.is_empty() && id.len() <= MAX_TRACE_ID && id.bytes().all(|b| b.is_ascii_graphic());
    ok.then_some(id)
}

/// A deterministic id for records without one: a UUID-shaped hex string from two FNV-1a
/// 64-bit hashes of the source tag and the record text.
pub(crate) fn stable_id(tag: &str, text: &str) -> String {
    fn fnv(seed: u64, parts: &[&[u8]]) -> u64 {
        let mut h = seed;
        for p in parts {
            for &b in *p {
                h ^= u64::from(b);
                h = h.wrapping_mul(0x0000_0100_0000_01b3);
            }
            h ^= 0xff;
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    }
    let a = fnv(0xcbf2_9ce4_8422_2325, &[tag.as_bytes(), text.as_bytes()]);
    let b = fnv(0x6c62_272e_07bb_0142, &[text.as_bytes(), tag.as_bytes()]);
    let x = (u128::from(a) << 64) | u128::from(b);
    let h = format!("{x:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// Dotted path lookup (`a.b.c`; a numeric segment indexes an array).
pub(crate) fn path<'a>(v: &'a Value, p: &str) -> Option<&'a Value> {
    if let Some(x) = v.get(p) {
        return Some(x);
    }
    let mut cur = v;
    for seg in p.split('.') {
        cur = match cur {
            Value::Object(m) => m.get(seg)?,
            Value::Array(a) => a.get(seg.parse::<usize>().ok()?)?,
            _ => return None,
        };
    }
    Some(cur)
}

/// A scalar as text (strings as is, numbers and booleans rendered); `None` for null, empty
/// strings, objects and arrays.
pub(crate) fn text(v: Option<&Value>) -> Option<String> {
    match v? {
        Value::String(s) if !s.trim().is_empty() => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

/// The fields every trace needs, assembled into a CTS trace object.
pub(crate) struct TraceBuilder {
    pub trace_id: String,
    pub trace_name: String,
    pub trace_type: &'static str,
    pub rating: &'static str,
    pub service_type: String,
    pub resource_type: String,
    pub resource_name: Option<String>,
    pub resource_id: Option<String>,
    pub source_ip: Option<String>,
    pub code: String,
    pub time_ms: i64,
    pub user_name: Option<String>,
    pub user_id: Option<String>,
    pub domain_name: Option<String>,
    pub domain_id: Option<String>,
    pub message: Option<String>,
    pub request: String,
    pub read_only: Option<bool>,
    pub extra: Vec<(&'static str, Value)>,
}

impl TraceBuilder {
    pub(crate) fn new(trace_name: String, time_ms: i64, request: String) -> Self {
        TraceBuilder {
            trace_id: String::new(),
            trace_name,
            trace_type: "ApiCall",
            rating: "normal",
            service_type: String::new(),
            resource_type: String::new(),
            resource_name: None,
            resource_id: None,
            source_ip: None,
            code: "200".to_owned(),
            time_ms,
            user_name: None,
            user_id: None,
            domain_name: None,
            domain_id: None,
            message: None,
            request,
            read_only: None,
            extra: Vec::new(),
        }
    }

    /// The trace object, or why the trace model refuses it (a time before 1973-03-03, a NUL in
    /// a name, a name over the model's length limits, …): checked here with
    /// `Trace::from_value` itself, so that a record becomes a valid trace or a problem, never an
    /// invalid trace.
    pub(crate) fn build(self) -> Result<Value, String> {
        if let Some(reason) = crate::time_out_of_range(self.time_ms) {
            return Err(reason);
        }
        let mut m = Map::new();
        m.insert("trace_id".into(), Value::String(self.trace_id));
        m.insert("trace_name".into(), Value::String(self.trace_name));
        m.insert("trace_rating".into(), Value::from(self.rating));
        m.insert("trace_type".into(), Value::from(self.trace_type));
        m.insert("service_type".into(), Value::String(self.service_type));
        m.insert("resource_type".into(), Value::String(self.resource_type));
        if let Some(x) = self.resource_name {
            m.insert("resource_name".into(), Value::String(x));
        }
        if let Some(x) = self.resource_id {
            m.insert("resource_id".into(), Value::String(x));
        }
        if let Some(x) = self.source_ip {
            m.insert("source_ip".into(), Value::String(x));
        }
        m.insert("request".into(), Value::String(self.request));
        if !self.code.is_empty() {
            m.insert("code".into(), Value::String(self.code));
        }
        if let Some(x) = self.message {
            m.insert("message".into(), Value::String(x));
        }
        m.insert("time".into(), Value::from(self.time_ms));
        let mut user = Map::new();
        if let Some(x) = self.user_id {
            user.insert("id".into(), Value::String(x));
        }
        if let Some(x) = self.user_name {
            user.insert("name".into(), Value::String(x));
        }
        if self.domain_name.is_some() || self.domain_id.is_some() {
            let mut d = Map::new();
            if let Some(x) = self.domain_id {
                d.insert("id".into(), Value::String(x));
            }
            if let Some(x) = self.domain_name {
                d.insert("name".into(), Value::String(x));
            }
            user.insert("domain".into(), Value::Object(d));
        }
        if !user.is_empty() {
            m.insert("user".into(), Value::Object(user));
        }
        if let Some(x) = self.read_only {
            m.insert("read_only".into(), Value::Bool(x));
        }
        for (k, v) in self.extra {
            m.insert(k.into(), v);
        }
        let v = Value::Object(m);
        match trailwatch_trace::Trace::from_value(v.clone()) {
            Ok(_) => Ok(v),
            Err(e) => Err(format!("not a valid trace: {e}")),
        }
    }
}

/// Split JSON Lines: yields (1-based line number, line) for non-blank lines; a trailing `\r`
/// is dropped.
pub(crate) fn json_lines(text: &str) -> impl Iterator<Item = (u64, &str)> {
    text.split('\n').enumerate().filter_map(|(i, l)| {
        let l = l.strip_suffix('\r').unwrap_or(l);
        if l.trim().is_empty() {
            None
        } else {
            Some((i as u64 + 1, l))
        }
    })
}

pub(crate) fn problem(out: &mut Parsed, line: u64, reason: impl Into<String>) {
    out.problems.push(Problem {
        line,
        reason: reason.into(),
    });
}

/// Truncate a string for a problem message.
pub(crate) fn short(s: &str) -> String {
    let mut end = s.len().min(80);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    if end < s.len() {
        format!("{}…", &s[..end])
    } else {
        s.to_owned()
    }
}

/// Whether the text (after leading whitespace) starts a JSON array.
pub(crate) fn starts_array(text: &str) -> bool {
    text.trim_start_matches('\u{feff}')
        .trim_start()
        .starts_with('[')
}

/// A valid CTS trace name: 1–64 chars `[A-Za-z0-9._-]`, starting with a letter.
pub(crate) fn valid_trace_name(s: &str) -> bool {
    let mut c = s.chars();
    c.next().is_some_and(|c| c.is_ascii_alphabetic())
        && c.all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-'))
        && s.len() <= 64
}
