//! Which traces reach a CTS trigger or a key-event notification.
//!
//! **CTS trigger** `event_data.operations` (cloud-apis.md §4.5) is a list of strings
//! `SERVICE:resType1;resType2:op1;op2`, e.g. `IAM:user:login;logout` or
//! `ECS:ecs;server:restartServer;deleteServer`. An entry matches a trace whose `service_type` is
//! `SERVICE`, whose `resource_type` is one of the listed types and whose `trace_name` is one of
//! the listed operations. [`OperationSet::parse`] is strict:
//!
//! - exactly three `:`-separated parts; no empty part and no empty `;` item;
//! - service: 1–64 `[A-Za-z0-9_-]`, starting with a letter (`IAM`, `FunctionGraph`);
//! - resource types and operations: 1–64 `[A-Za-z0-9._-]`, starting with a letter (the
//!   `trace_name` rule of `trailwatch-trace`);
//! - no surrounding whitespace anywhere (CTS names never have any, so it is a typo);
//! - at least one entry, at most [`MAX_SERVICES`] (10) distinct services and at most
//!   [`MAX_OPERATIONS`] (100) operation names over all entries (HW's 10 × 10).
//!
//! Every error names the entry (1-based position and text) and the part at fault. Matching is
//! exact and case-sensitive, as CTS names are (`login` ≠ `Login`).
//!
//! **Key-event notifications** (§2.3) select traces with `operation_type` (`complete` = every
//! operation, or `customized` with `operations: [{service_type, resource_type, trace_names}]`),
//! `notify_user_list` (whose operations notify) and an optional `filter`
//! `{condition: AND|OR, is_support_filter, rule: ["code != 200", "trace_type = ConsoleAction"]}`.
//! [`KeyEventFilter::from_value`] parses that body; rules are `field op value` with field one of
//! `api_version`, `code`, `trace_rating`, `trace_type`, `resource_id`, `resource_name`, op `=` or
//! `!=`, at most [`MAX_RULES`] (6). See [`Rule`] for how absent fields compare.

use std::collections::BTreeSet;
use std::fmt;

use serde_json::Value;
use trailwatch_trace::Trace;

use crate::text::{check_name, check_trace_name, describe, is_name_char, quote};

/// At most this many distinct services in a CTS trigger.
pub const MAX_SERVICES: usize = 10;
/// At most this many operation names over all entries of a CTS trigger.
pub const MAX_OPERATIONS: usize = 100;
/// At most this many filter rules in a key-event notification.
pub const MAX_RULES: usize = 6;
/// At most this many `notify_user_list` groups.
pub const MAX_USER_GROUPS: usize = 10;
/// At most this many users over all `notify_user_list` groups.
pub const MAX_USERS: usize = 50;

/// One `SERVICE:types:operations` entry.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationEntry {
    /// `service_type`, e.g. `IAM`.
    pub service_type: String,
    /// Resource types, at least one.
    pub resource_types: Vec<String>,
    /// Operation (trace) names, at least one.
    pub trace_names: Vec<String>,
}

impl OperationEntry {
    fn matches(&self, service_type: &str, resource_type: &str, trace_name: &str) -> bool {
        self.service_type == service_type
            && self.resource_types.iter().any(|r| r == resource_type)
            && self.trace_names.iter().any(|n| n == trace_name)
    }
}

impl fmt::Display for OperationEntry {
    /// The trigger string form `SERVICE:t1;t2:op1;op2`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}:{}:{}",
            self.service_type,
            self.resource_types.join(";"),
            self.trace_names.join(";")
        )
    }
}

/// The operations a CTS trigger (or key-event notification) subscribes to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OperationSet {
    entries: Vec<OperationEntry>,
}

/// Why `operations` (or a key-event body) was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OperationsError {
    /// No entries.
    #[error("operations must list at least one entry")]
    Empty,
    /// `operations` is not a list of strings.
    #[error("operations: {0}")]
    Shape(String),
    /// One entry is malformed.
    #[error("operations entry {position} {entry}: {reason}")]
    Entry {
        /// 1-based position.
        position: usize,
        /// The entry, quoted (or described when not a string).
        entry: String,
        /// What is wrong.
        reason: String,
    },
    /// A limit is exceeded; names the entry that crossed it.
    #[error("operations entry {position} {entry}: {reason}")]
    Limit {
        /// 1-based position of the entry that crossed the limit.
        position: usize,
        /// The entry, quoted.
        entry: String,
        /// Which limit.
        reason: String,
    },
    /// A key-event notification field is wrong.
    #[error("{field}: {reason}")]
    Field {
        /// The member path, e.g. `filter.rule[2]`.
        field: String,
        /// What is wrong.
        reason: String,
    },
}

fn check_service(s: &str) -> Result<(), String> {
    check_name(
        s,
        64,
        |c| c.is_ascii_alphabetic(),
        "a letter",
        is_name_char,
        "letters, digits, '_' and '-'",
    )
    .map_err(|why| format!("service {why}"))
}

/// Splits a `;` list, checking every item with `check`; `what` names the part in errors.
fn items(
    part: &str,
    what: &str,
    check: fn(&str) -> Result<(), String>,
) -> Result<Vec<String>, String> {
    let mut out: Vec<String> = Vec::new();
    for (i, item) in part.split(';').enumerate() {
        if item.is_empty() {
            return Err(format!("{what} item {} is empty", i + 1));
        }
        check(item).map_err(|why| format!("{what} {why}"))?;
        if !out.iter().any(|o| o == item) {
            out.push(item.to_owned());
        }
    }
    Ok(out)
}

fn parse_entry(entry: &str) -> Result<OperationEntry, String> {
    let parts: Vec<&str> = entry.split(':').collect();
    let [service, types, ops] = parts[..] else {
        return Err(format!(
            "expected SERVICE:resourceType[;resourceType…]:operation[;operation…] (3 ':'-separated parts), found {} part(s)",
            parts.len()
        ));
    };
    if service.is_empty() {
        return Err("the service part is empty".to_owned());
    }
    check_service(service)?;
    if types.is_empty() {
        return Err("the resource type part is empty".to_owned());
    }
    let resource_types = items(types, "resource type", check_trace_name)?;
    if ops.is_empty() {
        return Err("the operation part is empty".to_owned());
    }
    let trace_names = items(ops, "operation", check_trace_name)?;
    Ok(OperationEntry {
        service_type: service.to_owned(),
        resource_types,
        trace_names,
    })
}

impl OperationSet {
    /// Parses CTS trigger `operations` strings (rules in the module docs).
    pub fn parse<'a>(entries: impl IntoIterator<Item = &'a str>) -> Result<Self, OperationsError> {
        let mut out = Vec::new();
        let mut services: BTreeSet<String> = BTreeSet::new();
        let mut operations = 0usize;
        for (i, entry) in entries.into_iter().enumerate() {
            let position = i + 1;
            let parsed = parse_entry(entry).map_err(|reason| OperationsError::Entry {
                position,
                entry: quote(entry),
                reason,
            })?;
            services.insert(parsed.service_type.clone());
            if services.len() > MAX_SERVICES {
                return Err(OperationsError::Limit {
                    position,
                    entry: quote(entry),
                    reason: format!("more than {MAX_SERVICES} distinct services"),
                });
            }
            operations += parsed.trace_names.len();
            if operations > MAX_OPERATIONS {
                return Err(OperationsError::Limit {
                    position,
                    entry: quote(entry),
                    reason: format!(
                        "more than {MAX_OPERATIONS} operations in total ({operations} so far)"
                    ),
                });
            }
            out.push(parsed);
        }
        if out.is_empty() {
            return Err(OperationsError::Empty);
        }
        Ok(OperationSet { entries: out })
    }

    /// Parses the JSON `event_data.operations` member (an array of strings).
    pub fn from_value(v: &Value) -> Result<Self, OperationsError> {
        let Value::Array(a) = v else {
            return Err(OperationsError::Shape(format!(
                "expected an array of strings, found {}",
                describe(v)
            )));
        };
        let mut strs = Vec::with_capacity(a.len());
        for (i, item) in a.iter().enumerate() {
            match item {
                Value::String(s) => strs.push(s.as_str()),
                other => {
                    return Err(OperationsError::Entry {
                        position: i + 1,
                        entry: describe(other),
                        reason: "expected a string".to_owned(),
                    });
                }
            }
        }
        OperationSet::parse(strs)
    }

    /// Exact, case-sensitive match of a trace's service, resource type and operation.
    pub fn matches(&self, service_type: &str, resource_type: &str, trace_name: &str) -> bool {
        self.entries
            .iter()
            .any(|e| e.matches(service_type, resource_type, trace_name))
    }

    /// [`OperationSet::matches`] on a trace's fields.
    pub fn matches_trace(&self, t: &Trace) -> bool {
        self.matches(&t.service_type, &t.resource_type, &t.trace_name)
    }

    /// The entries, in input order.
    pub fn entries(&self) -> &[OperationEntry] {
        &self.entries
    }

    /// The entries in their trigger string form (`SERVICE:t1;t2:op1;op2`), for storing and
    /// returning `event_data`.
    pub fn to_strings(&self) -> Vec<String> {
        self.entries.iter().map(ToString::to_string).collect()
    }
}

/// A trace field a key-event filter rule can test.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleField {
    /// `api_version`
    ApiVersion,
    /// `code` (the HTTP status as a string, e.g. `200`)
    Code,
    /// `trace_rating` (`normal`, `warning`, `incident`)
    TraceRating,
    /// `trace_type` (`ConsoleAction`, `ApiCall`, `SystemAction`)
    TraceType,
    /// `resource_id`
    ResourceId,
    /// `resource_name`
    ResourceName,
}

impl RuleField {
    const ALL: [(&'static str, RuleField); 6] = [
        ("api_version", RuleField::ApiVersion),
        ("code", RuleField::Code),
        ("trace_rating", RuleField::TraceRating),
        ("trace_type", RuleField::TraceType),
        ("resource_id", RuleField::ResourceId),
        ("resource_name", RuleField::ResourceName),
    ];

    /// The field name as written in rules.
    pub fn as_str(self) -> &'static str {
        RuleField::ALL
            .iter()
            .find(|(_, f)| *f == self)
            .map_or("", |(n, _)| n)
    }

    fn value(self, t: &Trace) -> Option<&str> {
        match self {
            RuleField::ApiVersion => t.api_version.as_deref(),
            RuleField::Code => t.code.as_deref(),
            RuleField::TraceRating => Some(t.trace_rating.as_str()),
            RuleField::TraceType => Some(&t.trace_type),
            RuleField::ResourceId => t.resource_id.as_deref(),
            RuleField::ResourceName => t.resource_name.as_deref(),
        }
    }
}

/// `=` or `!=`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RuleOp {
    /// `=`
    Eq,
    /// `!=`
    Ne,
}

/// One filter rule, `field op value`.
///
/// Comparison is exact string equality (case-sensitive; `code` compares its decimal text, so
/// `code != 200` holds for `"302"`). A trace without the field (e.g. no `api_version`) never
/// equals a value: `=` is false and `!=` is true for it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rule {
    /// The tested field.
    pub field: RuleField,
    /// The operator.
    pub op: RuleOp,
    /// The compared value (surrounding whitespace removed).
    pub value: String,
}

impl Rule {
    /// Parses `field = value` / `field != value` (spaces around the operator optional).
    pub fn parse(s: &str) -> Result<Rule, String> {
        let (field, op, value) = if let Some((f, v)) = s.split_once("!=") {
            (f, RuleOp::Ne, v)
        } else if let Some((f, v)) = s.split_once('=') {
            (f, RuleOp::Eq, v)
        } else {
            return Err(format!(
                "{} has no operator; expected \"field = value\" or \"field != value\"",
                quote(s)
            ));
        };
        let field_name = field.trim();
        let Some(field) = RuleField::ALL
            .iter()
            .find(|(n, _)| *n == field_name)
            .map(|(_, f)| *f)
        else {
            return Err(format!(
                "unknown field {} in {}; allowed are api_version, code, trace_rating, trace_type, resource_id, resource_name",
                quote(field_name),
                quote(s)
            ));
        };
        let value = value.trim();
        if value.is_empty() {
            return Err(format!("{} has no value after the operator", quote(s)));
        }
        if value.starts_with('=') || value.contains("!=") {
            return Err(format!(
                "{} has more than one operator; only = and != exist",
                quote(s)
            ));
        }
        Ok(Rule {
            field,
            op,
            value: value.to_owned(),
        })
    }

    /// Whether the trace satisfies the rule.
    pub fn matches(&self, t: &Trace) -> bool {
        let equal = self.field.value(t) == Some(self.value.as_str());
        match self.op {
            RuleOp::Eq => equal,
            RuleOp::Ne => !equal,
        }
    }
}

impl fmt::Display for Rule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let op = match self.op {
            RuleOp::Eq => "=",
            RuleOp::Ne => "!=",
        };
        write!(f, "{} {op} {}", self.field.as_str(), self.value)
    }
}

/// How the rules combine.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Condition {
    /// Every rule must hold (the default).
    #[default]
    And,
    /// At least one rule must hold.
    Or,
}

/// The `filter` of a key-event notification.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RuleFilter {
    /// How the rules combine.
    pub condition: Condition,
    /// `is_support_filter`: when false the rules are kept but not applied.
    pub enabled: bool,
    /// 1..=6 rules when enabled (0..=6 otherwise).
    pub rules: Vec<Rule>,
}

impl RuleFilter {
    /// Whether the trace passes (always true when disabled).
    pub fn matches(&self, t: &Trace) -> bool {
        if !self.enabled {
            return true;
        }
        match self.condition {
            Condition::And => self.rules.iter().all(|r| r.matches(t)),
            Condition::Or => self.rules.iter().any(|r| r.matches(t)),
        }
    }
}

/// The trace selection of a key-event notification: operations, users and rules, all of which
/// must accept a trace.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KeyEventFilter {
    /// `None` for `operation_type: complete` (every operation).
    pub operations: Option<OperationSet>,
    /// User names from `notify_user_list`; `None` when the list is empty (every user).
    pub users: Option<BTreeSet<String>>,
    /// The `filter`, if given.
    pub filter: Option<RuleFilter>,
}

fn field_err(field: impl Into<String>, reason: impl Into<String>) -> OperationsError {
    OperationsError::Field {
        field: field.into(),
        reason: reason.into(),
    }
}

fn str_member<'a>(
    obj: &'a serde_json::Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, OperationsError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(field_err(
            format!("{path}{key}"),
            format!("expected a string, found {}", describe(other)),
        )),
    }
}

fn array_member<'a>(
    obj: &'a serde_json::Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<&'a [Value], OperationsError> {
    match obj.get(key) {
        None | Some(Value::Null) => Ok(&[]),
        Some(Value::Array(a)) => Ok(a),
        Some(other) => Err(field_err(
            format!("{path}{key}"),
            format!("expected an array, found {}", describe(other)),
        )),
    }
}

impl KeyEventFilter {
    /// Parses a key-event notification body (create/update request or stored form); only the
    /// selection members are read: `operation_type`, `operations`, `notify_user_list`, `filter`.
    ///
    /// - `operation_type` is required: `complete` (then `operations` and `notify_user_list`
    ///   must be absent or empty) or `customized` (then `operations` must list at least one
    ///   `{service_type, resource_type, trace_names}` with at least one trace name).
    /// - `notify_user_list`: at most 10 groups and 50 users; a group with an empty `user_list`
    ///   is refused, because a trace names its user, not the user's groups, so "every member of
    ///   group X" cannot be decided here.
    /// - `filter`: `condition` `AND` (default) or `OR` (case-insensitive); `is_support_filter`
    ///   (default true); `rule` at most 6, at least 1 when enabled.
    pub fn from_value(body: &Value) -> Result<KeyEventFilter, OperationsError> {
        let Value::Object(obj) = body else {
            return Err(field_err(
                "",
                format!("expected a JSON object, found {}", describe(body)),
            ));
        };
        let ops = array_member(obj, "operations", "")?;
        let user_groups = array_member(obj, "notify_user_list", "")?;
        let operations = match str_member(obj, "operation_type", "")? {
            Some("complete") => {
                if !ops.is_empty() {
                    return Err(field_err(
                        "operations",
                        "must be omitted when operation_type is \"complete\"",
                    ));
                }
                None
            }
            Some("customized") => Some(parse_key_operations(ops)?),
            Some(other) => {
                return Err(field_err(
                    "operation_type",
                    format!(
                        "expected \"complete\" or \"customized\", found {}",
                        quote(other)
                    ),
                ));
            }
            None => return Err(field_err("operation_type", "is required")),
        };
        let users = parse_users(user_groups)?;
        if operations.is_none() && users.is_some() {
            return Err(field_err(
                "notify_user_list",
                "must be omitted when operation_type is \"complete\"",
            ));
        }
        let filter = match obj.get("filter") {
            None | Some(Value::Null) => None,
            Some(f) => Some(parse_filter(f)?),
        };
        Ok(KeyEventFilter {
            operations,
            users,
            filter,
        })
    }

    /// Whether a trace is selected: its operation is listed (or `complete`), its user is listed
    /// (or no list), and the filter passes (or none / disabled).
    pub fn matches(&self, t: &Trace) -> bool {
        if let Some(ops) = &self.operations
            && !ops.matches_trace(t)
        {
            return false;
        }
        if let Some(users) = &self.users {
            match t.user_name() {
                Some(name) if users.contains(name) => {}
                _ => return false,
            }
        }
        self.filter.as_ref().is_none_or(|f| f.matches(t))
    }
}

fn parse_key_operations(ops: &[Value]) -> Result<OperationSet, OperationsError> {
    if ops.is_empty() {
        return Err(field_err(
            "operations",
            "must list at least one operation when operation_type is \"customized\"",
        ));
    }
    let mut entries = Vec::with_capacity(ops.len());
    for (i, op) in ops.iter().enumerate() {
        let path = format!("operations[{i}].");
        let Value::Object(o) = op else {
            return Err(field_err(
                format!("operations[{i}]"),
                format!("expected an object, found {}", describe(op)),
            ));
        };
        let service = str_member(o, "service_type", &path)?
            .ok_or_else(|| field_err(format!("{path}service_type"), "is required"))?;
        check_service(service).map_err(|why| field_err(format!("{path}service_type"), why))?;
        let rtype = str_member(o, "resource_type", &path)?
            .ok_or_else(|| field_err(format!("{path}resource_type"), "is required"))?;
        check_trace_name(rtype).map_err(|why| field_err(format!("{path}resource_type"), why))?;
        let names = array_member(o, "trace_names", &path)?;
        if names.is_empty() {
            return Err(field_err(
                format!("{path}trace_names"),
                "must list at least one trace name",
            ));
        }
        let mut trace_names: Vec<String> = Vec::with_capacity(names.len());
        for (j, n) in names.iter().enumerate() {
            let at = format!("{path}trace_names[{j}]");
            let Value::String(n) = n else {
                return Err(field_err(
                    at,
                    format!("expected a string, found {}", describe(n)),
                ));
            };
            check_trace_name(n).map_err(|why| field_err(at, why))?;
            if !trace_names.contains(n) {
                trace_names.push(n.clone());
            }
        }
        entries.push(OperationEntry {
            service_type: service.to_owned(),
            resource_types: vec![rtype.to_owned()],
            trace_names,
        });
    }
    Ok(OperationSet { entries })
}

fn parse_users(groups: &[Value]) -> Result<Option<BTreeSet<String>>, OperationsError> {
    if groups.len() > MAX_USER_GROUPS {
        return Err(field_err(
            "notify_user_list",
            format!(
                "has {} groups, at most {MAX_USER_GROUPS} are allowed",
                groups.len()
            ),
        ));
    }
    let mut users = BTreeSet::new();
    let mut count = 0usize;
    for (i, g) in groups.iter().enumerate() {
        let path = format!("notify_user_list[{i}].");
        let Value::Object(o) = g else {
            return Err(field_err(
                format!("notify_user_list[{i}]"),
                format!("expected an object, found {}", describe(g)),
            ));
        };
        str_member(o, "user_group", &path)?;
        let list = array_member(o, "user_list", &path)?;
        if list.is_empty() {
            return Err(field_err(
                format!("{path}user_list"),
                "is empty; list the user names (group membership is not evaluated)",
            ));
        }
        for (j, u) in list.iter().enumerate() {
            let at = format!("{path}user_list[{j}]");
            match u {
                Value::String(s) if !s.trim().is_empty() => {
                    users.insert(s.clone());
                }
                other => {
                    return Err(field_err(
                        at,
                        format!("expected a user name, found {}", describe(other)),
                    ));
                }
            }
            count += 1;
        }
    }
    if count > MAX_USERS {
        return Err(field_err(
            "notify_user_list",
            format!("lists {count} users, at most {MAX_USERS} are allowed"),
        ));
    }
    Ok((!users.is_empty()).then_some(users))
}

fn parse_filter(f: &Value) -> Result<RuleFilter, OperationsError> {
    let Value::Object(o) = f else {
        return Err(field_err(
            "filter",
            format!("expected an object, found {}", describe(f)),
        ));
    };
    let condition = match str_member(o, "condition", "filter.")? {
        None => Condition::And,
        Some(c) if c.eq_ignore_ascii_case("AND") => Condition::And,
        Some(c) if c.eq_ignore_ascii_case("OR") => Condition::Or,
        Some(c) => {
            return Err(field_err(
                "filter.condition",
                format!("expected \"AND\" or \"OR\", found {}", quote(c)),
            ));
        }
    };
    let enabled = match o.get("is_support_filter") {
        None | Some(Value::Null) => true,
        Some(Value::Bool(b)) => *b,
        Some(other) => {
            return Err(field_err(
                "filter.is_support_filter",
                format!("expected true or false, found {}", describe(other)),
            ));
        }
    };
    let raw = array_member(o, "rule", "filter.")?;
    if raw.len() > MAX_RULES {
        return Err(field_err(
            "filter.rule",
            format!("has {} rules, at most {MAX_RULES} are allowed", raw.len()),
        ));
    }
    if enabled && raw.is_empty() {
        return Err(field_err(
            "filter.rule",
            "must list at least one rule when is_support_filter is true",
        ));
    }
    let mut rules = Vec::with_capacity(raw.len());
    for (i, r) in raw.iter().enumerate() {
        let at = format!("filter.rule[{i}]");
        let Value::String(s) = r else {
            return Err(field_err(
                at,
                format!("expected a string, found {}", describe(r)),
            ));
        };
        rules.push(Rule::parse(s).map_err(|why| field_err(at, why))?);
    }
    Ok(RuleFilter {
        condition,
        enabled,
        rules,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use serde_json::json;

    fn trace(v: Value) -> Trace {
        let mut base = json!({"trace_name": "login", "trace_type": "ConsoleAction",
            "service_type": "IAM", "resource_type": "user", "time": 1_732_390_000_000_i64,
            "code": "302", "api_version": "3.0", "user": {"name": "alice"}});
        if let (Value::Object(b), Value::Object(extra)) = (&mut base, v) {
            for (k, v) in extra {
                b.insert(k, v);
            }
        }
        Trace::from_value(base).unwrap()
    }

    #[test]
    fn parses_and_matches_exactly() {
        let s = OperationSet::parse([
            "IAM:user:login;logout",
            "ECS:ecs;server:restartServer;deleteServer",
        ])
        .unwrap();
        assert!(s.matches("IAM", "user", "login"));
        assert!(s.matches("IAM", "user", "logout"));
        assert!(!s.matches("IAM", "user", "loginfailed"));
        assert!(!s.matches("IAM", "user", "Login"));
        assert!(!s.matches("iam", "user", "login"));
        assert!(!s.matches("IAM", "users", "login"));
        assert!(!s.matches("IAM", "user", "log"));
        assert!(s.matches("ECS", "server", "deleteServer"));
        assert!(s.matches("ECS", "ecs", "restartServer"));
        assert!(!s.matches("ECS", "user", "restartServer"));
        assert!(!s.matches("IAM", "user", "restartServer"));
        assert_eq!(
            s.to_strings(),
            vec![
                "IAM:user:login;logout",
                "ECS:ecs;server:restartServer;deleteServer"
            ]
        );
        assert!(s.matches_trace(&trace(json!({"trace_name": "logout"}))));
        assert!(!s.matches_trace(&trace(json!({"trace_name": "updateUser"}))));
    }

    #[test]
    fn parse_errors_name_the_entry_and_part() {
        let cases: &[(&str, &str)] = &[
            ("IAM:user", "found 2 part(s)"),
            ("IAM:user:login:x", "found 4 part(s)"),
            (":user:login", "service part is empty"),
            ("IAM::login", "resource type part is empty"),
            ("IAM:user:", "operation part is empty"),
            ("IAM:user:login;;logout", "operation item 2 is empty"),
            ("IAM:user;:login", "resource type item 2 is empty"),
            ("IAM:user:log in", "operation \"log in\" contains ' '"),
            ("I AM:user:login", "service \"I AM\" contains ' '"),
            ("IAM:user:*", "operation \"*\" must start with a letter"),
            (
                " IAM:user:login",
                "service \" IAM\" must start with a letter",
            ),
        ];
        for (entry, why) in cases {
            let e = OperationSet::parse(["IAM:user:login", entry]).unwrap_err();
            let msg = e.to_string();
            assert!(
                msg.starts_with(&format!("operations entry 2 {}", quote(entry))),
                "{entry}: {msg}"
            );
            assert!(msg.contains(why), "{entry}: {msg}");
        }
        assert_eq!(
            OperationSet::parse(Vec::<&str>::new()),
            Err(OperationsError::Empty)
        );
    }

    #[test]
    fn limits_name_the_entry_that_crosses_them() {
        let ten: Vec<String> = (0..10).map(|i| format!("S{i}:r:op")).collect();
        assert!(OperationSet::parse(ten.iter().map(String::as_str)).is_ok());
        let mut eleven = ten.clone();
        eleven.push("S10:r:op".into());
        let e = OperationSet::parse(eleven.iter().map(String::as_str)).unwrap_err();
        assert!(
            matches!(&e, OperationsError::Limit { position: 11, .. }),
            "{e}"
        );
        assert!(
            e.to_string().contains("more than 10 distinct services"),
            "{e}"
        );

        let ops = |n: usize| {
            (0..n)
                .map(|i| format!("op{i}"))
                .collect::<Vec<_>>()
                .join(";")
        };
        let hundred = [
            format!("IAM:user:{}", ops(60)),
            format!("IAM:agency:{}", ops(40)),
        ];
        assert!(OperationSet::parse(hundred.iter().map(String::as_str)).is_ok());
        let over = [
            format!("IAM:user:{}", ops(60)),
            format!("IAM:agency:{}", ops(41)),
        ];
        let e = OperationSet::parse(over.iter().map(String::as_str)).unwrap_err();
        assert!(
            matches!(&e, OperationsError::Limit { position: 2, .. }),
            "{e}"
        );
        assert!(e.to_string().contains("more than 100 operations"), "{e}");
    }

    #[test]
    fn from_value_wants_strings() {
        let s = OperationSet::from_value(&json!(["IAM:user:login;logout"])).unwrap();
        assert_eq!(s.entries().len(), 1);
        let e = OperationSet::from_value(&json!(["IAM:user:login", 5])).unwrap_err();
        assert!(
            matches!(e, OperationsError::Entry { position: 2, .. }),
            "{e}"
        );
        let e = OperationSet::from_value(&json!("IAM:user:login")).unwrap_err();
        assert!(
            e.to_string().contains("expected an array of strings"),
            "{e}"
        );
    }

    #[test]
    fn rule_parse() {
        let r = Rule::parse("code != 200").unwrap();
        assert_eq!(
            (r.field, r.op, r.value.as_str()),
            (RuleField::Code, RuleOp::Ne, "200")
        );
        let r = Rule::parse("trace_type=ConsoleAction").unwrap();
        assert_eq!((r.field, r.op), (RuleField::TraceType, RuleOp::Eq));
        assert_eq!(r.to_string(), "trace_type = ConsoleAction");
        assert!(
            Rule::parse("code == 200")
                .unwrap_err()
                .contains("more than one operator")
        );
        assert!(
            Rule::parse("code > 200")
                .unwrap_err()
                .contains("no operator")
        );
        assert!(
            Rule::parse("user = x")
                .unwrap_err()
                .contains("unknown field \"user\"")
        );
        assert!(Rule::parse("code = ").unwrap_err().contains("no value"));
    }

    fn key_filter(v: Value) -> KeyEventFilter {
        KeyEventFilter::from_value(&v).unwrap()
    }

    #[test]
    fn key_event_filter_and_or() {
        let ops = json!([{"service_type": "IAM", "resource_type": "user",
                          "trace_names": ["login", "logout"]}]);
        let and = key_filter(json!({"operation_type": "customized", "operations": ops,
            "filter": {"condition": "AND", "is_support_filter": true,
                       "rule": ["code != 200", "trace_type = ConsoleAction"]}}));
        let or = key_filter(json!({"operation_type": "customized", "operations": ops,
            "filter": {"condition": "OR", "is_support_filter": true,
                       "rule": ["code != 200", "trace_type = ConsoleAction"]}}));

        let failed_console = trace(json!({"code": "401"}));
        let ok_console = trace(json!({"code": "200"}));
        let failed_api = trace(json!({"code": "401", "trace_type": "ApiCall"}));
        let ok_api = trace(json!({"code": "200", "trace_type": "ApiCall"}));
        assert!(and.matches(&failed_console));
        assert!(!and.matches(&ok_console));
        assert!(!and.matches(&failed_api));
        assert!(!and.matches(&ok_api));
        assert!(or.matches(&failed_console));
        assert!(or.matches(&ok_console));
        assert!(or.matches(&failed_api));
        assert!(!or.matches(&ok_api));
        // the operation list still applies
        assert!(!or.matches(&trace(json!({"trace_name": "updateUser", "code": "500"}))));
    }

    #[test]
    fn key_event_rules_on_absent_fields_and_rating() {
        let f = key_filter(json!({"operation_type": "complete",
            "filter": {"rule": ["resource_name = bob"]}}));
        assert!(!f.matches(&trace(json!({}))));
        assert!(f.matches(&trace(json!({"resource_name": "bob"}))));
        let f = key_filter(json!({"operation_type": "complete",
            "filter": {"rule": ["resource_name != bob", "trace_rating = warning"]}}));
        assert!(f.matches(&trace(json!({"trace_rating": "warning"}))));
        assert!(!f.matches(&trace(json!({"trace_rating": "normal"}))));
        assert!(!f.matches(&trace(
            json!({"resource_name": "bob", "trace_rating": "warning"})
        )));
        // disabled filter lets everything through
        let f = key_filter(json!({"operation_type": "complete",
            "filter": {"is_support_filter": false, "rule": ["code = 999"]}}));
        assert!(f.matches(&trace(json!({}))));
        // complete without filter matches all
        assert!(key_filter(json!({"operation_type": "complete"})).matches(&trace(json!({}))));
    }

    #[test]
    fn key_event_users() {
        let f = key_filter(json!({"operation_type": "customized",
            "operations": [{"service_type": "IAM", "resource_type": "user", "trace_names": ["login"]}],
            "notify_user_list": [{"user_group": "admin", "user_list": ["alice", "bob"]}]}));
        assert!(f.matches(&trace(json!({}))));
        assert!(!f.matches(&trace(json!({"user": {"name": "carol"}}))));
        assert!(!f.matches(&trace(json!({"user": null}))));
    }

    #[test]
    fn key_event_errors_name_the_field() {
        let cases = [
            (json!({}), "operation_type: is required"),
            (json!({"operation_type": "all"}), "operation_type: expected"),
            (
                json!({"operation_type": "complete", "operations": [{}]}),
                "operations: must be omitted",
            ),
            (
                json!({"operation_type": "customized"}),
                "operations: must list at least one",
            ),
            (
                json!({"operation_type": "customized", "operations": [{"service_type": "IAM", "resource_type": "user", "trace_names": []}]}),
                "operations[0].trace_names: must list",
            ),
            (
                json!({"operation_type": "customized", "operations": [{"service_type": "IAM", "resource_type": "user", "trace_names": ["ok", 3]}]}),
                "operations[0].trace_names[1]: expected a string",
            ),
            (
                json!({"operation_type": "complete", "filter": {"condition": "XOR", "rule": ["code = 1"]}}),
                "filter.condition: expected",
            ),
            (
                json!({"operation_type": "complete", "filter": {"rule": ["code = 1", "bogus = 2"]}}),
                "filter.rule[1]: unknown field \"bogus\"",
            ),
            (
                json!({"operation_type": "complete", "filter": {"rule": ["code=1","code=2","code=3","code=4","code=5","code=6","code=7"]}}),
                "filter.rule: has 7 rules, at most 6",
            ),
            (
                json!({"operation_type": "complete", "filter": {"is_support_filter": true, "rule": []}}),
                "filter.rule: must list at least one rule",
            ),
            (
                json!({"operation_type": "customized",
                       "operations": [{"service_type": "IAM", "resource_type": "user", "trace_names": ["login"]}],
                       "notify_user_list": [{"user_group": "admin", "user_list": []}]}),
                "notify_user_list[0].user_list: is empty",
            ),
        ];
        for (body, want) in cases {
            let e = KeyEventFilter::from_value(&body).unwrap_err().to_string();
            assert!(e.starts_with(want), "{body}: {e}");
        }
    }
}
