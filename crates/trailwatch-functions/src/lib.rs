//! The decision logic of trailwatch's FunctionGraph-compatible function service.
//!
//! A pure core and an IO edge, as in `trailwatch-notify`. The core modules are pure: data in,
//! data out, the current time passed in; no IO, no threads, no HTTP. They tell the IO edge
//! *what* to do; the edge ([`service`]: functions, triggers, the invoker and its effects;
//! [`engine`]: the trigger and async-invocation loops) owns storage, scheduling, delivery and
//! IAM checks:
//!
//! | module | what it decides |
//! |---|---|
//! | [`urn`] | function URNs and the short forms accepted in API paths ([`FunctionRef`]) |
//! | [`user_data`] | the `user_data` environment-variable object ([`UserData`]) |
//! | [`allowlist`] | the `IP` allowlist ([`IpList`]): exact address and CIDR matching |
//! | [`operations`] | CTS trigger `operations` ([`OperationSet`]) and key-event filters ([`KeyEventFilter`]) |
//! | [`schedule`] | TIMER trigger schedules ([`Schedule`]), next tick, missed-tick policy |
//! | [`events`] | the trigger event payloads handed to functions (cloud-apis.md §4.2) |
//! | [`lts`] | decoding an LTS trigger event ([`LtsData`]) |
//! | [`levels`] | which log lines count as alarms ([`LevelMatcher`]) |
//! | [`runtime`] | the interface built-in functions implement ([`Builtin`], [`Context`], [`Outcome`], [`Effect`]) |
//! | [`builtins`] | `login_audit` and `log_alarm`, the tutorial's two functions done right |
//!
//! A built-in function never performs a side effect itself: it returns [`Effect`]s (publish to a
//! topic, append lines to an object), each carrying the IAM action it needs and an idempotency
//! key, and the engine executes them, so a retried invocation cannot alarm twice.
//!
//! ```
//! use trailwatch_functions::runtime::{builtin, Context, TriggerKind};
//! use trailwatch_functions::{FunctionRef, UserData};
//!
//! let user_data = UserData::parse(
//!     r#"{"SMN_Topic":"cts_test","RegionName":"eu-de","IP":"10.0.0.0/8, 192.0.2.7"}"#,
//! )?;
//! let f = builtin("login_audit").ok_or("no such builtin")?;
//! f.validate_config(&user_data)?;
//!
//! let ctx = Context {
//!     request_id: "req-1".into(),
//!     project_id: "0123456789abcdef0123456789abcdef".into(),
//!     function: FunctionRef::new("0123456789abcdef0123456789abcdef", "default", "audit")?,
//!     user_data,
//!     now: chrono::DateTime::UNIX_EPOCH,
//!     remaining_ms: 3_000,
//!     trigger: TriggerKind::Cts,
//! };
//! let event = serde_json::json!({"cts": {
//!     "trace_name": "logout", "trace_type": "ConsoleAction", "service_type": "IAM",
//!     "resource_type": "user", "source_ip": "203.0.113.9", "time": 1732390000000_i64,
//!     "trace_id": "t-1", "user": {"name": "alice"}}});
//! let outcome = f.invoke(&ctx, &event);
//! assert_eq!(outcome.effects.len(), 1); // 203.0.113.9 is not in the allowlist
//! assert_eq!(outcome.effects[0].required_action(), "smn:topic:publish");
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

pub mod allowlist;
pub mod builtins;
pub mod engine;
pub mod events;
pub mod key_events;
pub mod levels;
pub mod lts;
pub mod operations;
pub mod runtime;
pub mod schedule;
pub mod service;
pub mod urn;
pub mod user_data;

mod text;

pub use allowlist::{IpList, IpListError};
pub use levels::LevelMatcher;
pub use lts::{LogRecord, LtsData, LtsError};
pub use operations::{KeyEventFilter, OperationSet};
pub use runtime::{Builtin, ConfigError, Context, Effect, Outcome, TriggerKind};
pub use schedule::{Schedule, ScheduleError};
pub use urn::{FunctionRef, FunctionUrn, Qualifier, UrnError};
pub use user_data::{UserData, UserDataError};
