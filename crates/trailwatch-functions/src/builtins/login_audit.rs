//! `login_audit`: alarm on logins and logouts from unexpected addresses (the tutorial's
//! CTS-trigger function, fixed).
//!
//! What the tutorial got wrong and what this does instead:
//!
//! | tutorial | here |
//! |---|---|
//! | `action not in ("login" or "logout")` is a substring test against `"login"`: `logout` is never audited, `log` or `""` are | `trace_name` must equal one of `Actions` exactly (default `login,logout`) |
//! | `ip.find(source_ip)`: substring, `10.0.0.1` matches `10.0.0.11`, an empty address matches everything | [`IpList`] exact address / CIDR membership |
//! | alarms when the address **is** in `IP`, although `IP` is documented as a whitelist | `Mode=allowlist` (default): alarm when the address is **not** in `IP`; `Mode=denylist`: alarm when it is |
//! | a trace without `source_ip` crashes or matches | logged and reported, no alarm |
//!
//! **Configuration** (`user_data`):
//!
//! | key | | |
//! |---|---|---|
//! | `SMN_Topic` | required | topic name (in the function's project) or `urn:smn:…` URN |
//! | `RegionName` | required | region of the topic URN built from a name |
//! | `IP` | required | addresses and CIDR ranges ([`crate::allowlist`] syntax), at least one |
//! | `Actions` | optional | comma-separated exact trace names, default `login,logout` |
//! | `Mode` | optional | `allowlist` (default) or `denylist`, case-insensitive |
//!
//! **Invocation.** The event must be `{"cts": {...}}` (else an `Err` result). The trace is
//! parsed with `trailwatch-trace` (a bad trace is an `Err` result naming the field). Then
//! [`LoginAudit::decide`]; results (all `Ok` strings):
//!
//! | decision | result | effects |
//! |---|---|---|
//! | action not in `Actions` | `not audited: action "<name>" is not in Actions (<list>)` | none |
//! | no / empty `source_ip` | `not checked: <action> has no source_ip (trace <id>)` | none |
//! | `source_ip` not an address | `not checked: <action> has source_ip "<text>" which is not an IP address (trace <id>)` | none |
//! | address allowed | `reasonable <action>` (the tutorial's wording) | none |
//! | alarm | `alarm: illegal <action> from <ip>` | one [`Effect::Publish`] |
//!
//! The alarm publishes to the topic URN, subject `CTSTrigger`, message exactly
//! `Illegal operation[  IP:<ip>,  Action:<action>]` (the tutorial's text; `<ip>` is the
//! normalised address, so `::ffff:1.2.3.4` reads `1.2.3.4`), tags `user` (user name),
//! `domain` (domain name, else domain id), `time` (RFC 3339 UTC, ms), `trace_id`, `source_ip`,
//! `action` (tags whose value the trace lacks are omitted), and idempotency key
//! `login_audit:<trace_id>` — or `login_audit:sha256:<hex>` of the trace's stored JSON when it
//! has no id.

use std::collections::BTreeMap;
use std::net::IpAddr;

use chrono::{DateTime, SecondsFormat};
use serde_json::Value;
use sha2::{Digest, Sha256};
use trailwatch_trace::{RenderStyle, Trace};

use super::{TopicRef, optional, region, required, topic};
use crate::allowlist::IpList;
use crate::runtime::{Builtin, ConfigError, Context, Effect, Outcome};
use crate::text::{check_trace_name, describe, hex, quote};
use crate::user_data::UserData;

/// The `Actions` used when the variable is absent.
pub const DEFAULT_ACTIONS: [&str; 2] = ["login", "logout"];

/// How `IP` is used.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// Alarm when the source address is **not** in `IP` (the default; what the tutorial's
    /// documentation promises).
    Allowlist,
    /// Alarm when the source address **is** in `IP`.
    Denylist,
}

/// What to do about one trace.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// `trace_name` is not one of `Actions`.
    NotAudited,
    /// The trace has no (or an empty) `source_ip`.
    NoSourceIp,
    /// `source_ip` is not an address (only hand-built traces; parsing refuses them).
    BadSourceIp,
    /// The address is acceptable.
    Allowed(IpAddr),
    /// Raise an alarm for this (normalised) address.
    Alarm(IpAddr),
}

/// A validated `login_audit` configuration: the decision without IO.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoginAudit {
    topic: TopicRef,
    region: String,
    ips: IpList,
    actions: Vec<String>,
    mode: Mode,
}

fn parse_actions(s: &str) -> Result<Vec<String>, ConfigError> {
    let mut out: Vec<String> = Vec::new();
    for (i, item) in s.split(',').enumerate() {
        let name = item.trim();
        if name.is_empty() {
            return Err(ConfigError::new(
                "Actions",
                format!("entry {} is empty", i + 1),
            ));
        }
        check_trace_name(name)
            .map_err(|why| ConfigError::new("Actions", format!("entry {} {why}", i + 1)))?;
        if !out.iter().any(|a| a == name) {
            out.push(name.to_owned());
        }
    }
    Ok(out)
}

impl LoginAudit {
    /// Reads and validates the configuration (module docs).
    pub fn from_config(ud: &UserData) -> Result<LoginAudit, ConfigError> {
        let topic = topic(ud)?;
        let region = region(ud)?;
        let ips = IpList::parse(required(ud, "IP")?)
            .map_err(|e| ConfigError::new("IP", e.to_string()))?;
        let actions = match optional(ud, "Actions") {
            Some(s) => parse_actions(s)?,
            None => DEFAULT_ACTIONS.iter().map(|s| (*s).to_owned()).collect(),
        };
        let mode = match optional(ud, "Mode") {
            None => Mode::Allowlist,
            Some(m) if m.eq_ignore_ascii_case("allowlist") => Mode::Allowlist,
            Some(m) if m.eq_ignore_ascii_case("denylist") => Mode::Denylist,
            Some(m) => {
                return Err(ConfigError::new(
                    "Mode",
                    format!("{} is not \"allowlist\" or \"denylist\"", quote(m)),
                ));
            }
        };
        Ok(LoginAudit {
            topic,
            region,
            ips,
            actions,
            mode,
        })
    }

    /// The audited trace names.
    pub fn actions(&self) -> &[String] {
        &self.actions
    }

    /// The mode.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// The IP list.
    pub fn ips(&self) -> &IpList {
        &self.ips
    }

    /// The topic URN alarms go to, for a function in `project_id`.
    pub fn topic_urn(&self, project_id: &str) -> String {
        self.topic.urn(&self.region, project_id)
    }

    /// The decision for one trace: exact action match, then the source address against the
    /// list according to the mode. Allocation-free.
    #[inline]
    pub fn decide(&self, trace: &Trace) -> Decision {
        if !self.actions.contains(&trace.trace_name) {
            return Decision::NotAudited;
        }
        let raw = match trace.source_ip.as_deref().map(str::trim) {
            None | Some("") => return Decision::NoSourceIp,
            Some(s) => s,
        };
        let Ok(addr) = raw.parse::<IpAddr>() else {
            return Decision::BadSourceIp;
        };
        let addr = addr.to_canonical();
        let listed = self.ips.contains(addr);
        let alarm = match self.mode {
            Mode::Allowlist => !listed,
            Mode::Denylist => listed,
        };
        if alarm {
            Decision::Alarm(addr)
        } else {
            Decision::Allowed(addr)
        }
    }

    /// The tutorial's alarm text.
    pub fn alarm_message(addr: IpAddr, action: &str) -> String {
        format!("Illegal operation[  IP:{addr},  Action:{action}]")
    }

    /// Runs the decision on an event (module docs).
    pub fn invoke(&self, ctx: &Context, event: &Value) -> Outcome {
        let cts = match event {
            Value::Object(m) => match m.get("cts") {
                Some(c @ Value::Object(_)) => c,
                Some(other) => {
                    return Outcome::error(format!(
                        "login_audit: not a CTS trigger event: \"cts\" must be an object, found {}",
                        describe(other)
                    ));
                }
                None => {
                    let keys: Vec<&str> = m.keys().map(String::as_str).take(5).collect();
                    return Outcome::error(format!(
                        "login_audit: not a CTS trigger event: expected {{\"cts\": {{...}}}}, found an object with keys {keys:?}"
                    ));
                }
            },
            other => {
                return Outcome::error(format!(
                    "login_audit: not a CTS trigger event: expected {{\"cts\": {{...}}}}, found {}",
                    describe(other)
                ));
            }
        };
        let trace = match parse_trace(cts) {
            Ok(t) => t,
            Err(e) => {
                return Outcome::error(format!("login_audit: the CTS trace is invalid: {e}"));
            }
        };
        let id = trace.trace_id.as_deref().unwrap_or("-");
        let action = trace.trace_name.as_str();
        match self.decide(&trace) {
            Decision::NotAudited => Outcome::ok(format!(
                "not audited: action {} is not in Actions ({})",
                quote(action),
                self.actions.join(",")
            ))
            .with_log(format!(
                "trace {id}: {action} is not an audited action, ignored"
            )),
            Decision::NoSourceIp | Decision::BadSourceIp => {
                let what = match trace.source_ip.as_deref().map(str::trim) {
                    None | Some("") => "has no source_ip".to_owned(),
                    Some(s) => format!("has source_ip {} which is not an IP address", quote(s)),
                };
                Outcome::ok(format!("not checked: {action} {what} (trace {id})")).with_log(format!(
                    "trace {id}: {action} {what}; cannot check it against IP, no alarm"
                ))
            }
            Decision::Allowed(addr) => Outcome::ok(format!("reasonable {action}"))
                .with_log(format!("trace {id}: {action} from {addr} is allowed")),
            Decision::Alarm(addr) => {
                let topic = self.topic_urn(&ctx.project_id);
                let effect = Effect::Publish {
                    topic: topic.clone(),
                    subject: "CTSTrigger".to_owned(),
                    message: LoginAudit::alarm_message(addr, action),
                    tags: tags(&trace, addr),
                    idempotency_key: idempotency_key(&trace),
                };
                let why = match self.mode {
                    Mode::Allowlist => "not in IP",
                    Mode::Denylist => "in IP (denylist)",
                };
                let mut out = Outcome::ok(format!("alarm: illegal {action} from {addr}")).with_log(
                    format!("trace {id}: {action} from {addr} is {why}; alarm to {topic}"),
                );
                out.effects.push(effect);
                out
            }
        }
    }
}

/// Parses the trace. `trailwatch-trace` refuses a `source_ip` that is not an address; here
/// such a trace is still a valid operation record whose address cannot be checked, so it is
/// parsed without the address and the raw text put back, and [`LoginAudit::decide`] reports
/// [`Decision::BadSourceIp`] instead of the invocation failing.
fn parse_trace(cts: &Value) -> Result<Trace, trailwatch_trace::TraceError> {
    match Trace::from_value(cts.clone()) {
        Err(e) if e.field == "source_ip" => {
            let mut without = cts.clone();
            let raw = match without.get_mut("source_ip").map(Value::take) {
                Some(Value::String(s)) => s,
                Some(other) => other.to_string(),
                None => return Err(e),
            };
            let mut t = Trace::from_value(without)?;
            t.source_ip = Some(raw);
            Ok(t)
        }
        other => other,
    }
}

fn tags(t: &Trace, addr: IpAddr) -> BTreeMap<String, String> {
    let mut tags = BTreeMap::new();
    let mut put = |k: &str, v: Option<&str>| {
        if let Some(v) = v.filter(|v| !v.is_empty()) {
            tags.insert(k.to_owned(), v.to_owned());
        }
    };
    put("user", t.user_name());
    let domain = t.user.as_ref().and_then(|u| u.domain.as_ref());
    put(
        "domain",
        domain
            .and_then(|d| d.name.as_deref().or(d.id.as_deref()))
            .or(t.domain_id.as_deref()),
    );
    let time = DateTime::from_timestamp_millis(t.time)
        .map(|d| d.to_rfc3339_opts(SecondsFormat::Millis, true));
    put("time", time.as_deref());
    put("trace_id", t.trace_id.as_deref());
    put("source_ip", Some(&addr.to_string()));
    put("action", Some(&t.trace_name));
    tags
}

fn idempotency_key(t: &Trace) -> String {
    match t.trace_id.as_deref().filter(|s| !s.is_empty()) {
        Some(id) => format!("login_audit:{id}"),
        None => {
            let digest = Sha256::digest(t.to_json_string(RenderStyle::Stored).as_bytes());
            format!("login_audit:sha256:{}", hex(&digest))
        }
    }
}

/// The registered `login_audit` built-in (parses its configuration on every call; hold a
/// [`LoginAudit`] to decide many traces).
#[derive(Debug, Clone, Copy, Default)]
pub struct LoginAuditFunction;

impl Builtin for LoginAuditFunction {
    fn name(&self) -> &'static str {
        "login_audit"
    }

    fn validate_config(&self, user_data: &UserData) -> Result<(), ConfigError> {
        LoginAudit::from_config(user_data).map(|_| ())
    }

    fn invoke(&self, ctx: &Context, event: &Value) -> Outcome {
        match LoginAudit::from_config(&ctx.user_data) {
            Ok(audit) => audit.invoke(ctx, event),
            Err(e) => Outcome::error(format!("login_audit: configuration error: {e}")),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::runtime::{TriggerKind, builtin};
    use crate::urn::FunctionRef;
    use serde_json::json;

    const P: &str = "0123456789abcdef0123456789abcdef";

    fn ud(pairs: &[(&str, &str)]) -> UserData {
        let mut all = vec![("SMN_Topic", "cts_test"), ("RegionName", "eu-de")];
        for (k, v) in pairs {
            all.retain(|(key, _)| key != k);
            all.push((k, v));
        }
        UserData::from_pairs(all).unwrap()
    }

    fn ctx(user_data: UserData) -> Context {
        Context {
            request_id: "req-1".into(),
            project_id: P.into(),
            function: FunctionRef::new(P, "default", "audit").unwrap(),
            user_data,
            now: DateTime::UNIX_EPOCH,
            remaining_ms: 3_000,
            trigger: TriggerKind::Cts,
        }
    }

    fn trace_json(name: &str, ip: Option<&str>) -> Value {
        let mut t = json!({"trace_id": "t-1", "trace_name": name, "trace_type": "ConsoleAction",
            "service_type": "IAM", "resource_type": "user", "time": 1_732_390_000_000_i64,
            "user": {"name": "alice", "domain": {"name": "acme", "id": "d1"}}});
        if let Some(ip) = ip {
            t["source_ip"] = json!(ip);
        }
        t
    }

    fn trace(name: &str, ip: Option<&str>) -> Trace {
        Trace::from_value(trace_json(name, ip)).unwrap()
    }

    fn audit(pairs: &[(&str, &str)]) -> LoginAudit {
        LoginAudit::from_config(&ud(pairs)).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn allowlist_is_exact() {
        let a = audit(&[("IP", "10.0.0.1")]);
        assert_eq!(
            a.decide(&trace("login", Some("10.0.0.1"))),
            Decision::Allowed(ip("10.0.0.1"))
        );
        assert_eq!(
            a.decide(&trace("login", Some("10.0.0.11"))),
            Decision::Alarm(ip("10.0.0.11"))
        );
        assert_eq!(
            a.decide(&trace("login", Some("::ffff:10.0.0.1"))),
            Decision::Allowed(ip("10.0.0.1"))
        );
    }

    #[test]
    fn logout_is_audited_and_other_actions_are_not() {
        let a = audit(&[("IP", "10.0.0.0/8")]);
        // the tutorial never audited logout
        assert_eq!(
            a.decide(&trace("logout", Some("203.0.113.9"))),
            Decision::Alarm(ip("203.0.113.9"))
        );
        // substrings of "login" are not actions
        for name in ["log", "in", "loginfailed", "Login", "createServer"] {
            assert_eq!(
                a.decide(&trace(name, Some("203.0.113.9"))),
                Decision::NotAudited,
                "{name}"
            );
        }
        // unless configured
        let a = audit(&[("IP", "10.0.0.0/8"), ("Actions", "login, loginfailed")]);
        assert_eq!(
            a.decide(&trace("loginfailed", Some("203.0.113.9"))),
            Decision::Alarm(ip("203.0.113.9"))
        );
        assert_eq!(
            a.decide(&trace("logout", Some("203.0.113.9"))),
            Decision::NotAudited
        );
    }

    #[test]
    fn denylist_mode() {
        let a = audit(&[
            ("IP", "203.0.113.0/24, 2001:db8::/32"),
            ("Mode", "Denylist"),
        ]);
        assert_eq!(a.mode(), Mode::Denylist);
        assert_eq!(
            a.decide(&trace("login", Some("203.0.113.9"))),
            Decision::Alarm(ip("203.0.113.9"))
        );
        assert_eq!(
            a.decide(&trace("login", Some("2001:db8::5"))),
            Decision::Alarm(ip("2001:db8::5"))
        );
        assert_eq!(
            a.decide(&trace("login", Some("198.51.100.1"))),
            Decision::Allowed(ip("198.51.100.1"))
        );
    }

    #[test]
    fn missing_source_ip_is_reported_not_passed() {
        let a = audit(&[("IP", "10.0.0.0/8")]);
        assert_eq!(a.decide(&trace("login", None)), Decision::NoSourceIp);
        assert_eq!(a.decide(&trace("login", Some(""))), Decision::NoSourceIp);
        let mut t = trace("login", None);
        t.source_ip = Some("not-an-ip".into());
        assert_eq!(a.decide(&t), Decision::BadSourceIp);

        // an unparsable address in a real event is reported the same way, not an error
        let c = ctx(ud(&[("IP", "10.0.0.0/8")]));
        for (raw, shown) in [(json!("1.2.3"), "\"1.2.3\""), (json!(17), "\"17\"")] {
            let mut ev = trace_json("login", None);
            ev["source_ip"] = raw;
            let out = LoginAuditFunction.invoke(&c, &json!({"cts": ev}));
            assert_eq!(
                out.result,
                Ok(json!(format!(
                    "not checked: login has source_ip {shown} which is not an IP address (trace t-1)"
                )))
            );
            assert!(out.effects.is_empty());
            assert_eq!(out.log.len(), 1);
        }

        let c = ctx(ud(&[("IP", "10.0.0.0/8")]));
        let out = LoginAuditFunction.invoke(&c, &json!({"cts": trace_json("login", None)}));
        assert_eq!(
            out.result,
            Ok(json!("not checked: login has no source_ip (trace t-1)"))
        );
        assert!(out.effects.is_empty());
        assert!(
            out.log[0].contains("cannot check it against IP, no alarm"),
            "{:?}",
            out.log
        );
    }

    #[test]
    fn alarm_effect_is_complete() {
        let c = ctx(ud(&[("IP", "10.0.0.0/8")]));
        let out = builtin("login_audit").unwrap().invoke(
            &c,
            &json!({"cts": trace_json("logout", Some("::ffff:203.0.113.9"))}),
        );
        assert_eq!(
            out.result,
            Ok(json!("alarm: illegal logout from 203.0.113.9"))
        );
        assert_eq!(out.effects.len(), 1);
        let Effect::Publish {
            topic,
            subject,
            message,
            tags,
            idempotency_key,
        } = &out.effects[0]
        else {
            panic!("{:?}", out.effects);
        };
        assert_eq!(topic, &format!("urn:smn:eu-de:{P}:cts_test"));
        assert_eq!(subject, "CTSTrigger");
        assert_eq!(
            message,
            "Illegal operation[  IP:203.0.113.9,  Action:logout]"
        );
        assert_eq!(idempotency_key, "login_audit:t-1");
        let want: BTreeMap<String, String> = [
            ("action", "logout"),
            ("domain", "acme"),
            ("source_ip", "203.0.113.9"),
            ("time", "2024-11-23T19:26:40.000Z"),
            ("trace_id", "t-1"),
            ("user", "alice"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
        assert_eq!(tags, &want);
        assert_eq!(out.effects[0].required_action(), "smn:topic:publish");
    }

    #[test]
    fn allowed_and_not_audited_results() {
        let c = ctx(ud(&[("IP", "10.0.0.0/8")]));
        let out =
            LoginAuditFunction.invoke(&c, &json!({"cts": trace_json("login", Some("10.1.2.3"))}));
        assert_eq!(out.result, Ok(json!("reasonable login")));
        assert!(out.effects.is_empty());
        let out = LoginAuditFunction.invoke(
            &c,
            &json!({"cts": trace_json("updateUser", Some("1.2.3.4"))}),
        );
        assert_eq!(
            out.result,
            Ok(json!(
                "not audited: action \"updateUser\" is not in Actions (login,logout)"
            ))
        );
        assert!(out.effects.is_empty());
    }

    #[test]
    fn missing_trace_id_gets_a_content_key() {
        let c = ctx(ud(&[("IP", "10.0.0.0/8")]));
        let mut t = trace_json("login", Some("1.2.3.4"));
        t.as_object_mut().unwrap().remove("trace_id");
        let a = LoginAuditFunction.invoke(&c, &json!({"cts": t.clone()}));
        let b = LoginAuditFunction.invoke(&c, &json!({"cts": t}));
        let key = a.effects[0].idempotency_key();
        assert!(key.starts_with("login_audit:sha256:"), "{key}");
        assert_eq!(key.len(), "login_audit:sha256:".len() + 64);
        assert_eq!(key, b.effects[0].idempotency_key());
    }

    #[test]
    fn wrong_event_shapes_are_errors() {
        let c = ctx(ud(&[("IP", "10.0.0.0/8")]));
        for (event, want) in [
            (json!([1]), "expected {\"cts\": {...}}, found an array"),
            (json!({"lts": {}}), "found an object with keys [\"lts\"]"),
            (
                json!({"cts": "x"}),
                "\"cts\" must be an object, found string",
            ),
            (
                json!({"cts": {"trace_name": "login"}}),
                "the CTS trace is invalid: field `trace_type`",
            ),
        ] {
            let out = LoginAuditFunction.invoke(&c, &event);
            let err = out.result.unwrap_err();
            assert!(err.contains(want), "{event}: {err}");
            assert_eq!(out.log, vec![err.clone()]);
            assert!(out.effects.is_empty());
        }
    }

    #[test]
    fn config_errors_name_the_key_and_entry() {
        let f = LoginAuditFunction;
        let e = f
            .validate_config(
                &UserData::from_pairs([("RegionName", "eu-de"), ("IP", "1.1.1.1")]).unwrap(),
            )
            .unwrap_err();
        assert_eq!(e.to_string(), "user_data SMN_Topic: is required");
        let e = f.validate_config(&ud(&[])).unwrap_err();
        assert_eq!(e.to_string(), "user_data IP: is required");
        let e = f
            .validate_config(&ud(&[("IP", "1.1.1.1, 10.0.0.300")]))
            .unwrap_err();
        assert_eq!(e.key, "IP");
        assert!(e.reason.contains("entry 2 \"10.0.0.300\""), "{e}");
        let e = f
            .validate_config(&ud(&[("IP", "1.1.1.1"), ("Mode", "block")]))
            .unwrap_err();
        assert_eq!(
            e.to_string(),
            "user_data Mode: \"block\" is not \"allowlist\" or \"denylist\""
        );
        let e = f
            .validate_config(&ud(&[("IP", "1.1.1.1"), ("Actions", "login,,logout")]))
            .unwrap_err();
        assert_eq!(e.to_string(), "user_data Actions: entry 2 is empty");
        let e = f
            .validate_config(&ud(&[("IP", "1.1.1.1"), ("Actions", "login,log out")]))
            .unwrap_err();
        assert!(
            e.to_string()
                .starts_with("user_data Actions: entry 2 \"log out\""),
            "{e}"
        );
        let e = f
            .validate_config(&ud(&[("IP", "1.1.1.1"), ("RegionName", "eu de")]))
            .unwrap_err();
        assert_eq!(e.key, "RegionName");
        assert!(f.validate_config(&ud(&[("IP", "1.1.1.1")])).is_ok());

        // a bad configuration at invoke time is an error result, not a panic or an alarm
        let out = f.invoke(
            &ctx(ud(&[("IP", "")])),
            &json!({"cts": trace_json("login", Some("1.2.3.4"))}),
        );
        assert_eq!(
            out.result,
            Err("login_audit: configuration error: user_data IP: is empty".to_owned())
        );
        assert!(out.effects.is_empty());
    }
}
