//! The interface runtimes plug into: what an invocation receives ([`Context`] and the event),
//! what it returns ([`Outcome`]), and the side effects it asks for ([`Effect`]).
//!
//! A function is pure here: it does not publish or write anything itself. It returns effects,
//! and the engine executes them after checking that the function's agency may perform each
//! effect's [`Effect::required_action`], de-duplicating by [`Effect::idempotency_key`] (which
//! the engine prefixes with the function's identity), so a retried invocation of the same event
//! has no second effect.
//!
//! Built-in functions implement [`Builtin`] and are looked up by handler with [`builtin`]:
//!
//! | handler | function |
//! |---|---|
//! | `login_audit` (or `index.login_audit`) | [`crate::builtins::login_audit`] |
//! | `log_alarm` (or `index.log_alarm`) | [`crate::builtins::log_alarm`] |
//!
//! FunctionGraph handlers are written `file.function` and the console's default file is
//! `index`, so a function created with `"handler": "index.login_audit"` (what a user copying
//! the console default would write) resolves to the same built-in as `login_audit`. No other
//! prefix is accepted, so a typo is not silently mapped.

use std::collections::BTreeMap;
use std::fmt;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use crate::builtins::log_alarm::LogAlarmFunction;
use crate::builtins::login_audit::LoginAuditFunction;
use crate::urn::FunctionRef;
use crate::user_data::UserData;

/// What kind of trigger caused an invocation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TriggerKind {
    /// A CTS trigger (`{"cts": ...}`).
    Cts,
    /// An LTS trigger (`{"lts": {"data": ...}}`).
    Lts,
    /// A TIMER trigger.
    Timer,
    /// An SMN trigger.
    Smn,
    /// An API gateway trigger.
    Apig,
    /// An OBS trigger.
    Obs,
    /// A direct call of the invocation API (sync or async).
    Direct,
}

impl TriggerKind {
    /// The FunctionGraph `trigger_type_code` (`CTS`, `LTS`, `TIMER`, `SMN`, `APIG`, `OBS`), or
    /// `DIRECT` for an invocation-API call, which has none.
    pub fn as_str(self) -> &'static str {
        match self {
            TriggerKind::Cts => "CTS",
            TriggerKind::Lts => "LTS",
            TriggerKind::Timer => "TIMER",
            TriggerKind::Smn => "SMN",
            TriggerKind::Apig => "APIG",
            TriggerKind::Obs => "OBS",
            TriggerKind::Direct => "DIRECT",
        }
    }
}

impl fmt::Display for TriggerKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What an invocation knows besides its event. Time is passed in (`now`, `remaining_ms`) so
/// functions stay pure and testable.
#[derive(Debug, Clone, PartialEq)]
pub struct Context {
    /// The invocation's request id.
    pub request_id: String,
    /// The project the function belongs to.
    pub project_id: String,
    /// The function (with the version or alias invoked).
    pub function: FunctionRef,
    /// Its environment variables.
    pub user_data: UserData,
    /// The engine's clock at the start of the invocation.
    pub now: DateTime<Utc>,
    /// Milliseconds left before the timeout, as of `now`.
    pub remaining_ms: u64,
    /// What triggered the invocation.
    pub trigger: TriggerKind,
}

impl Context {
    /// When the invocation times out.
    pub fn deadline(&self) -> DateTime<Utc> {
        let ms = i64::try_from(self.remaining_ms).unwrap_or(i64::MAX);
        TimeDelta::try_milliseconds(ms)
            .and_then(|d| self.now.checked_add_signed(d))
            .unwrap_or(DateTime::<Utc>::MAX_UTC)
    }

    /// Milliseconds left at `at` (0 once past the deadline), like `getRemainingTimeInMilliSeconds`.
    pub fn remaining_ms_at(&self, at: DateTime<Utc>) -> u64 {
        let left = self.deadline().signed_duration_since(at).num_milliseconds();
        u64::try_from(left).unwrap_or(0)
    }
}

/// A side effect a function asks the engine to perform.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Effect {
    /// Publish a message to an SMN topic.
    Publish {
        /// Topic URN (`urn:smn:{region}:{project}:{name}`) or, if the function could not
        /// resolve one, a topic name in the function's project.
        topic: String,
        /// The subject.
        subject: String,
        /// The message text.
        message: String,
        /// Facts about the alarm (user, source_ip, …) for templates, filters and logs.
        tags: BTreeMap<String, String>,
        /// Same key ⇒ same effect: the engine performs it at most once (per function).
        idempotency_key: String,
    },
    /// Append lines to an object (creating it if absent).
    AppendObject {
        /// The bucket.
        bucket: String,
        /// The object key.
        key: String,
        /// Lines to append, without trailing newlines (the engine adds `\n` after each).
        lines: Vec<String>,
        /// Same key ⇒ same effect: the engine performs it at most once (per function).
        idempotency_key: String,
    },
}

impl Effect {
    /// The IAM action the function's agency needs for this effect.
    pub fn required_action(&self) -> &'static str {
        match self {
            Effect::Publish { .. } => "smn:topic:publish",
            Effect::AppendObject { .. } => "obs:object:putObject",
        }
    }

    /// The effect's idempotency key (before the engine adds the function identity).
    pub fn idempotency_key(&self) -> &str {
        match self {
            Effect::Publish {
                idempotency_key, ..
            }
            | Effect::AppendObject {
                idempotency_key, ..
            } => idempotency_key,
        }
    }
}

/// The result of an invocation.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// `Ok(value)` is the function's return value (the invocation `result`); `Err(message)` a
    /// function error (the invocation fails with that message).
    pub result: Result<Value, String>,
    /// Log lines, in order, without trailing newlines.
    pub log: Vec<String>,
    /// Effects to perform, in order.
    pub effects: Vec<Effect>,
}

impl Outcome {
    /// A successful outcome returning `value`, no log, no effects.
    pub fn ok(value: impl Into<Value>) -> Outcome {
        Outcome {
            result: Ok(value.into()),
            log: Vec::new(),
            effects: Vec::new(),
        }
    }

    /// A failed outcome; `message` is also logged.
    pub fn error(message: impl Into<String>) -> Outcome {
        let message = message.into();
        Outcome {
            log: vec![message.clone()],
            result: Err(message),
            effects: Vec::new(),
        }
    }

    /// Adds a log line.
    pub fn with_log(mut self, line: impl Into<String>) -> Outcome {
        self.log.push(line.into());
        self
    }
}

/// A `user_data` variable is missing or invalid.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("user_data {key}: {reason}")]
pub struct ConfigError {
    /// The variable name, e.g. `IP`.
    pub key: String,
    /// What is wrong (for lists: which entry and why).
    pub reason: String,
}

impl ConfigError {
    /// An error about `key`.
    pub fn new(key: &str, reason: impl Into<String>) -> ConfigError {
        ConfigError {
            key: key.to_owned(),
            reason: reason.into(),
        }
    }
}

/// A function implemented in Rust inside trailwatch.
pub trait Builtin: Send + Sync + fmt::Debug {
    /// The handler name, e.g. `login_audit`.
    fn name(&self) -> &'static str;

    /// Checks the function's environment variables; the engine calls this when the function
    /// is created or its configuration changes, so a bad `IP` list is refused up front.
    fn validate_config(&self, user_data: &UserData) -> Result<(), ConfigError>;

    /// Runs one invocation. Never panics on outside data; problems become an `Err` result with
    /// a log line.
    fn invoke(&self, ctx: &Context, event: &Value) -> Outcome;
}

static LOGIN_AUDIT: LoginAuditFunction = LoginAuditFunction;
static LOG_ALARM: LogAlarmFunction = LogAlarmFunction;

/// The built-in handler names.
pub const BUILTIN_NAMES: [&str; 2] = ["login_audit", "log_alarm"];

/// The built-in function for `handler` (`name` or `index.name`; module docs), if any.
pub fn builtin(handler: &str) -> Option<&'static dyn Builtin> {
    let name = handler.strip_prefix("index.").unwrap_or(handler);
    match name {
        "login_audit" => Some(&LOGIN_AUDIT),
        "log_alarm" => Some(&LOG_ALARM),
        _ => None,
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn registry_resolves_names() {
        for name in BUILTIN_NAMES {
            assert_eq!(builtin(name).unwrap().name(), name);
            assert_eq!(builtin(&format!("index.{name}")).unwrap().name(), name);
        }
        assert!(builtin("handler").is_none());
        assert!(builtin("index.handler").is_none());
        assert!(builtin("main.login_audit").is_none());
        assert!(builtin("Login_Audit").is_none());
        assert!(builtin("").is_none());
    }

    #[test]
    fn effects_declare_actions_and_keys() {
        let p = Effect::Publish {
            topic: "t".into(),
            subject: "s".into(),
            message: "m".into(),
            tags: BTreeMap::new(),
            idempotency_key: "k1".into(),
        };
        let a = Effect::AppendObject {
            bucket: "b".into(),
            key: "o".into(),
            lines: vec![],
            idempotency_key: "k2".into(),
        };
        assert_eq!(p.required_action(), "smn:topic:publish");
        assert_eq!(a.required_action(), "obs:object:putObject");
        assert_eq!((p.idempotency_key(), a.idempotency_key()), ("k1", "k2"));
    }

    #[test]
    fn deadline_and_remaining_time() {
        let now = DateTime::from_timestamp(1_700_000_000, 0).unwrap();
        let ctx = Context {
            request_id: "r".into(),
            project_id: "p".into(),
            function: FunctionRef::new("p", "default", "f").unwrap(),
            user_data: UserData::new(),
            now,
            remaining_ms: 3_000,
            trigger: TriggerKind::Direct,
        };
        assert_eq!(
            ctx.deadline(),
            DateTime::from_timestamp(1_700_000_003, 0).unwrap()
        );
        assert_eq!(
            ctx.remaining_ms_at(now + TimeDelta::milliseconds(1_250)),
            1_750
        );
        assert_eq!(ctx.remaining_ms_at(now + TimeDelta::seconds(10)), 0);
        assert_eq!(TriggerKind::Timer.to_string(), "TIMER");
    }

    #[test]
    fn outcome_helpers() {
        let o = Outcome::error("bad").with_log("more");
        assert_eq!(o.result, Err("bad".to_owned()));
        assert_eq!(o.log, vec!["bad", "more"]);
        assert_eq!(Outcome::ok("x").result, Ok(Value::from("x")));
        assert_eq!(
            ConfigError::new("IP", "is required").to_string(),
            "user_data IP: is required"
        );
    }
}
