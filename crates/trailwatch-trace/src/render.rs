//! [`Trace`] → JSON. One member walk ([`visit`]) feeds both `to_value` and `Serialize`, so the
//! two outputs cannot drift apart in order or content.

use std::convert::Infallible;

use serde::Serialize;
use serde::ser::{SerializeMap, Serializer};
use serde_json::{Map, Value};

use crate::parse::{DOMAIN_FIELDS, KNOWN_FIELDS, USER_FIELDS};
use crate::{DomainRef, RenderStyle, Trace, UserInfo};

/// One member's value, borrowed from the trace.
enum Member<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    Json(&'a Value),
    /// A JSON value written as its compact JSON text (the CTS v3 `request`/`response` shape).
    JsonText(&'a Value),
    User(&'a UserInfo),
}

impl Serialize for Member<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Member::Str(v) => s.serialize_str(v),
            Member::Int(v) => s.serialize_i64(*v),
            Member::Bool(v) => s.serialize_bool(*v),
            Member::Json(v) => v.serialize(s),
            Member::JsonText(v) => s.serialize_str(&v.to_string()),
            Member::User(u) => u.serialize(s),
        }
    }
}

impl Member<'_> {
    fn into_value(self) -> Value {
        match self {
            Member::Str(v) => Value::String(v.to_owned()),
            Member::Int(v) => Value::from(v),
            Member::Bool(v) => Value::Bool(v),
            Member::Json(v) => v.clone(),
            Member::JsonText(v) => Value::String(v.to_string()),
            Member::User(u) => user_to_value(u),
        }
    }
}

/// Calls `f` for every member to write, in output order: the known fields in table order
/// (`user` last), then the extras. Extras that shadow a known name are skipped: they can only
/// come from hand-built traces, and writing them would produce duplicate JSON keys.
fn visit<'a, E>(
    t: &'a Trace,
    style: RenderStyle,
    f: &mut dyn FnMut(&'a str, Member<'a>) -> Result<(), E>,
) -> Result<(), E> {
    let body = |v: &'a Value| match (style, v) {
        (RenderStyle::CtsV3, v) if !v.is_string() => Member::JsonText(v),
        (_, v) => Member::Json(v),
    };
    let s = |v: &'a Option<String>| v.as_deref().map(Member::Str);
    for name in KNOWN_FIELDS {
        let member = match name {
            "trace_id" => s(&t.trace_id),
            "trace_name" => Some(Member::Str(&t.trace_name)),
            "trace_rating" => Some(Member::Str(t.trace_rating.as_str())),
            "trace_type" => Some(Member::Str(&t.trace_type)),
            "service_type" => Some(Member::Str(&t.service_type)),
            "resource_type" => Some(Member::Str(&t.resource_type)),
            "resource_name" => s(&t.resource_name),
            "resource_id" => s(&t.resource_id),
            "source_ip" => s(&t.source_ip),
            "request" => t.request.as_ref().map(body),
            "response" => t.response.as_ref().map(body),
            "code" => s(&t.code),
            "api_version" => s(&t.api_version),
            "message" => t.message.as_ref().map(Member::Json),
            "time" => Some(Member::Int(t.time)),
            "record_time" => t.record_time.map(Member::Int),
            "request_id" => s(&t.request_id),
            "location_info" => s(&t.location_info),
            "endpoint" => s(&t.endpoint),
            "resource_url" => s(&t.resource_url),
            "enterprise_project_id" => s(&t.enterprise_project_id),
            "resource_account_id" => s(&t.resource_account_id),
            "read_only" => t.read_only.map(Member::Bool),
            "operation_id" => s(&t.operation_id),
            "tracker_name" => s(&t.tracker_name),
            "event_type" => s(&t.event_type),
            "project_id" => s(&t.project_id),
            "domain_id" => s(&t.domain_id),
            "user_agent" => s(&t.user_agent),
            "user" => t.user.as_ref().map(Member::User),
            // Unreachable: the arms above cover KNOWN_FIELDS (checked by a unit test).
            _ => None,
        };
        if let Some(m) = member {
            f(name, m)?;
        }
    }
    for (k, v) in &t.extra {
        if !KNOWN_FIELDS.contains(&k.as_str()) {
            f(k, Member::Json(v))?;
        }
    }
    Ok(())
}

pub(crate) fn to_value(t: &Trace, style: RenderStyle) -> Value {
    let mut m = Map::new();
    let _ = visit::<Infallible>(t, style, &mut |k, v| {
        m.insert(k.to_owned(), v.into_value());
        Ok(())
    });
    Value::Object(m)
}

pub(crate) fn to_json_string(t: &Trace, style: RenderStyle) -> String {
    // Writing JSON into a String cannot fail (all keys are strings, all values plain data);
    // the fallback only keeps this function total without a panic path.
    serde_json::to_string(&Styled(t, style)).unwrap_or_else(|_| to_value(t, style).to_string())
}

/// A trace paired with the style to serialize it in.
pub(crate) struct Styled<'a>(pub(crate) &'a Trace, pub(crate) RenderStyle);

impl Serialize for Styled<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut len = 0;
        let _ = visit::<Infallible>(self.0, self.1, &mut |_, _| {
            len += 1;
            Ok(())
        });
        let mut map = s.serialize_map(Some(len))?;
        visit(self.0, self.1, &mut |k, v| map.serialize_entry(k, &v))?;
        map.end()
    }
}

fn user_to_value(u: &UserInfo) -> Value {
    let mut m = Map::new();
    if let Some(id) = &u.id {
        m.insert("id".to_owned(), Value::String(id.clone()));
    }
    if let Some(name) = &u.name {
        m.insert("name".to_owned(), Value::String(name.clone()));
    }
    if let Some(d) = &u.domain {
        m.insert("domain".to_owned(), domain_to_value(d));
    }
    extend_extras(&mut m, &u.extra, &USER_FIELDS);
    Value::Object(m)
}

fn domain_to_value(d: &DomainRef) -> Value {
    let mut m = Map::new();
    if let Some(id) = &d.id {
        m.insert("id".to_owned(), Value::String(id.clone()));
    }
    if let Some(name) = &d.name {
        m.insert("name".to_owned(), Value::String(name.clone()));
    }
    extend_extras(&mut m, &d.extra, &DOMAIN_FIELDS);
    Value::Object(m)
}

fn extend_extras(m: &mut Map<String, Value>, extra: &Map<String, Value>, known: &[&str]) {
    for (k, v) in extra {
        if !known.contains(&k.as_str()) {
            m.insert(k.clone(), v.clone());
        }
    }
}

fn unshadowed<'a>(
    extra: &'a Map<String, Value>,
    known: &'a [&str],
) -> impl Iterator<Item = (&'a String, &'a Value)> {
    extra.iter().filter(|(k, _)| !known.contains(&k.as_str()))
}

pub(crate) fn serialize_user<S: Serializer>(u: &UserInfo, s: S) -> Result<S::Ok, S::Error> {
    let len = usize::from(u.id.is_some())
        + usize::from(u.name.is_some())
        + usize::from(u.domain.is_some())
        + unshadowed(&u.extra, &USER_FIELDS).count();
    let mut map = s.serialize_map(Some(len))?;
    if let Some(id) = &u.id {
        map.serialize_entry("id", id)?;
    }
    if let Some(name) = &u.name {
        map.serialize_entry("name", name)?;
    }
    if let Some(d) = &u.domain {
        map.serialize_entry("domain", d)?;
    }
    for (k, v) in unshadowed(&u.extra, &USER_FIELDS) {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

pub(crate) fn serialize_domain<S: Serializer>(d: &DomainRef, s: S) -> Result<S::Ok, S::Error> {
    let len = usize::from(d.id.is_some())
        + usize::from(d.name.is_some())
        + unshadowed(&d.extra, &DOMAIN_FIELDS).count();
    let mut map = s.serialize_map(Some(len))?;
    if let Some(id) = &d.id {
        map.serialize_entry("id", id)?;
    }
    if let Some(name) = &d.name {
        map.serialize_entry("name", name)?;
    }
    for (k, v) in unshadowed(&d.extra, &DOMAIN_FIELDS) {
        map.serialize_entry(k, v)?;
    }
    map.end()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::TraceRating;

    /// A trace with every known field set, so a missing `visit` arm shows up as a missing key.
    fn full() -> Trace {
        let s = |v: &str| Some(v.to_owned());
        Trace {
            trace_id: s("id"),
            trace_name: "login".into(),
            trace_rating: TraceRating::Warning,
            trace_type: "ConsoleAction".into(),
            service_type: "IAM".into(),
            resource_type: "user".into(),
            resource_name: s("alice"),
            resource_id: s("rid"),
            source_ip: s("192.0.2.1"),
            code: s("302"),
            api_version: s("v3"),
            message: Some(Value::from("m")),
            request: Some(serde_json::json!({"a": 1})),
            response: Some(Value::from("r")),
            time: 1_700_000_000_000,
            record_time: Some(1_700_000_000_001),
            user: Some(UserInfo {
                name: s("alice"),
                ..UserInfo::default()
            }),
            request_id: s("req"),
            location_info: s("loc"),
            endpoint: s("ep"),
            resource_url: s("url"),
            enterprise_project_id: s("0"),
            resource_account_id: s("acc"),
            read_only: Some(true),
            operation_id: s("Login"),
            tracker_name: s("system"),
            event_type: s("system"),
            project_id: s("pid"),
            domain_id: s("did"),
            user_agent: s("ua"),
            extra: Map::new(),
        }
    }

    #[test]
    fn every_known_field_is_rendered_in_table_order() {
        let t = full();
        let json = t.to_json_string(RenderStyle::Stored);
        let mut last = 0;
        for name in KNOWN_FIELDS {
            let pos = json.find(&format!("\"{name}\":")).unwrap();
            assert!(pos >= last, "{name} out of order in {json}");
            last = pos;
        }
        assert_eq!(
            t.to_value(RenderStyle::Stored).as_object().unwrap().len(),
            30
        );
    }

    #[test]
    fn shadowing_extras_are_not_duplicated() {
        let mut t = full();
        t.extra.insert("trace_name".into(), Value::from("other"));
        t.extra.insert("user".into(), Value::from("other"));
        let mut u = UserInfo::default();
        u.extra.insert("name".into(), Value::from("x"));
        u.extra
            .insert("principal_urn".into(), Value::from("iam::1:user:x"));
        t.user = Some(u);
        let json = t.to_json_string(RenderStyle::Stored);
        assert_eq!(json.matches("\"trace_name\":").count(), 1, "{json}");
        assert_eq!(json.matches("\"user\":").count(), 1, "{json}");
        assert!(
            json.contains(r#""user":{"principal_urn":"iam::1:user:x"}"#),
            "{json}"
        );
        let v = t.to_value(RenderStyle::Stored);
        assert_eq!(v["trace_name"], "login");
        assert_eq!(
            v["user"],
            serde_json::json!({"principal_urn": "iam::1:user:x"})
        );
    }

    #[test]
    fn json_text_and_value_agree() {
        let mut t = full();
        t.extra.insert("content_length".into(), Value::from(5));
        for style in [RenderStyle::Stored, RenderStyle::CtsV3] {
            let from_text: Value = serde_json::from_str(&t.to_json_string(style)).unwrap();
            assert_eq!(from_text, t.to_value(style));
        }
    }
}
