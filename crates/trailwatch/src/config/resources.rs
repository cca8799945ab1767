//! Resources declared in the configuration file: `[[topics]]` (with `[[topics.subscriptions]]`),
//! `[[agencies]]` and `[[functions]]` (with `[functions.env]` and `[[functions.triggers]]`).
//!
//! Parsing checks what can be judged from the file alone, with the same validators the API
//! uses (topic names, endpoints, `user_data` and the handler's variables, CTS operations, timer
//! schedules, role names), so that `trailwatch config check` catches a bad allowlist entry
//! before a start. The API remains the judge: at start every resource is sent through it
//! (`crate::apply`), and what needs the server's state (an existing agency, a log group) or is
//! only the API's rule (memory sizes, timeouts, agency names) is decided there.

use std::collections::{BTreeMap, HashSet};

use serde::Deserialize;

use super::{Config, ConfigError, deserialize_at, location};

/// What the file declares, in file order.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Resources {
    pub topics: Vec<TopicDecl>,
    pub agencies: Vec<AgencyDecl>,
    pub functions: Vec<FunctionDecl>,
}

impl Resources {
    pub fn is_empty(&self) -> bool {
        self.topics.is_empty() && self.agencies.is_empty() && self.functions.is_empty()
    }
}

/// `[[topics]]`: an SMN topic in the bootstrap project.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TopicDecl {
    pub name: String,
    /// Sender name of emails.
    pub display_name: String,
    #[serde(skip)]
    pub subscriptions: Vec<SubscriptionDecl>,
    #[serde(skip)]
    pub line: Option<usize>,
}

/// `[[topics.subscriptions]]`: an endpoint subscribed to the topic above it.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SubscriptionDecl {
    /// `email`, `sms`, `http`, `https` or `functionstage`.
    pub protocol: String,
    pub endpoint: String,
    pub remark: String,
    /// `x-…` headers added to every HTTP(S) delivery.
    pub headers: BTreeMap<String, String>,
    #[serde(skip)]
    pub line: Option<usize>,
}

/// `[[agencies]]`: an agency trusting the function service (`op_svc_cff`), granted `roles`
/// (display names such as `SMN Administrator`, or internal names such as `smn_adm`) in the
/// bootstrap project.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AgencyDecl {
    pub name: String,
    pub description: String,
    pub roles: Vec<String>,
    #[serde(skip)]
    pub line: Option<usize>,
}

/// `[[functions]]`: a built-in function and its triggers.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct FunctionDecl {
    pub name: String,
    pub package: String,
    /// `login_audit` or `log_alarm`.
    pub handler: String,
    pub runtime: String,
    /// MB.
    pub memory: u32,
    /// Seconds.
    pub timeout: u32,
    /// The function's environment variables (`user_data`).
    pub env: BTreeMap<String, String>,
    /// Encrypted environment variables: variable → the name of the environment variable of the
    /// server process that holds its value (secrets never live in this file).
    pub secret_env: BTreeMap<String, String>,
    /// The agency the function acts as (`xrole`).
    pub agency: Option<String>,
    pub description: String,
    /// Concurrency limit (`max_instance_num`); the API's default when absent.
    pub max_instances: Option<u32>,
    #[serde(skip)]
    pub triggers: Vec<TriggerDecl>,
    #[serde(skip)]
    pub line: Option<usize>,
}

impl Default for FunctionDecl {
    fn default() -> Self {
        FunctionDecl {
            name: String::new(),
            package: "default".into(),
            handler: String::new(),
            runtime: "builtin".into(),
            memory: 128,
            timeout: 30,
            env: BTreeMap::new(),
            secret_env: BTreeMap::new(),
            agency: None,
            description: String::new(),
            max_instances: None,
            triggers: Vec::new(),
            line: None,
        }
    }
}

/// `[[functions.triggers]]`: a trigger of the function above it.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TriggerDecl {
    /// `CTS`, `TIMER` or `LTS`.
    #[serde(rename = "type")]
    pub type_code: String,
    pub name: Option<String>,
    pub enabled: bool,
    /// CTS: `SERVICE:resType1;resType2:op1;op2` entries.
    pub operations: Vec<String>,
    /// TIMER: `Rate` (default) or `Cron`.
    pub schedule_type: Option<String>,
    pub schedule: Option<String>,
    pub user_event: Option<String>,
    /// LTS: the log group and stream (ids).
    pub log_group_id: Option<String>,
    pub log_stream_id: Option<String>,
    #[serde(skip)]
    pub line: Option<usize>,
}

impl Default for TriggerDecl {
    fn default() -> Self {
        TriggerDecl {
            type_code: String::new(),
            name: None,
            enabled: true,
            operations: Vec::new(),
            schedule_type: None,
            schedule: None,
            user_event: None,
            log_group_id: None,
            log_stream_id: None,
            line: None,
        }
    }
}

impl TriggerDecl {
    /// The schedule type, `Rate` when not given.
    pub fn schedule_type(&self) -> &str {
        self.schedule_type.as_deref().unwrap_or("Rate")
    }
}

/// An array of tables: its key, the keys its tables may have, and which of those are nested
/// arrays (read by the caller).
#[derive(Debug, Clone, Copy)]
pub(super) struct ArrayOf {
    pub(super) key: &'static str,
    pub(super) known: &'static [&'static str],
    pub(super) nested: &'static [&'static str],
}

const TOPICS: ArrayOf = ArrayOf {
    key: "topics",
    known: TOPIC_KEYS,
    nested: &["subscriptions"],
};
const SUBSCRIPTIONS: ArrayOf = ArrayOf {
    key: "subscriptions",
    known: SUBSCRIPTION_KEYS,
    nested: &[],
};
const AGENCIES: ArrayOf = ArrayOf {
    key: "agencies",
    known: AGENCY_KEYS,
    nested: &[],
};
const FUNCTIONS: ArrayOf = ArrayOf {
    key: "functions",
    known: FUNCTION_KEYS,
    nested: &["triggers"],
};
const TRIGGERS: ArrayOf = ArrayOf {
    key: "triggers",
    known: TRIGGER_KEYS,
    nested: &[],
};

const TOPIC_KEYS: &[&str] = &["name", "display_name", "subscriptions"];
const SUBSCRIPTION_KEYS: &[&str] = &["protocol", "endpoint", "remark", "headers"];
const AGENCY_KEYS: &[&str] = &["name", "description", "roles"];
const FUNCTION_KEYS: &[&str] = &[
    "name",
    "package",
    "handler",
    "runtime",
    "memory",
    "timeout",
    "env",
    "secret_env",
    "agency",
    "description",
    "max_instances",
    "triggers",
];
const TRIGGER_KEYS: &[&str] = &[
    "type",
    "name",
    "enabled",
    "operations",
    "schedule_type",
    "schedule",
    "user_event",
    "log_group_id",
    "log_stream_id",
];

/// Where an item of an array of tables is: the `index`-th `[[array]]` (named `name`), or with
/// `sub` the `sub.1`-th `[[array.<sub.0>]]` inside it.
#[derive(Debug, Clone)]
pub(super) struct ItemPath {
    pub(super) array: &'static str,
    pub(super) index: usize,
    pub(super) name: Option<String>,
    pub(super) sub: Option<(&'static str, usize)>,
}

fn singular(array: &str) -> &str {
    match array {
        "topics" => "topic",
        "agencies" => "agency",
        "functions" => "function",
        "subscriptions" => "subscription",
        "triggers" => "trigger",
        other => other,
    }
}

impl ItemPath {
    fn label(&self) -> String {
        let mut s = match &self.name {
            Some(n) if !n.is_empty() => format!("[[{}]] {n}", self.array),
            _ => format!("[[{}]] #{}", self.array, self.index + 1),
        };
        if let Some((sub, i)) = self.sub {
            s.push_str(&format!(", {} #{}", singular(sub), i + 1));
        }
        s
    }

    pub(super) fn line(&self, src: &str, key: Option<&str>) -> Option<usize> {
        locate_item(src, self.array, self.index, self.sub, key)
    }

    /// `line N, [[functions]] login_audit, env.IP`.
    fn at(&self, src: &str, key: Option<&str>) -> String {
        let mut path = self.label();
        if let Some(k) = key {
            path.push_str(&format!(", {k}"));
        }
        match self.line(src, key) {
            Some(line) => format!("line {line}, {path}"),
            None => path,
        }
    }

    fn sub(&self, sub: &'static str, index: usize) -> ItemPath {
        ItemPath {
            sub: Some((sub, index)),
            ..self.clone()
        }
    }
}

/// The key of a `key = value` line, unquoted.
fn line_key(t: &str) -> Option<&str> {
    let (lhs, _) = t.split_once('=')?;
    Some(lhs.trim().trim_matches('"').trim_matches('\''))
}

/// The line (1-based) of `key` inside the `index`-th `[[array]]` table — inside its
/// `sub.1`-th `[[array.<sub.0>]]` table with `sub` — or of that table's header when `key` is
/// None. A dotted key (`env.IP`) is looked up in a `[array.env]` table, else at the line that
/// sets `env`. A plain scan, like [`super::locate`]: good enough to point at the right line.
fn locate_item(
    src: &str,
    array: &str,
    index: usize,
    sub: Option<(&str, usize)>,
    key: Option<&str>,
) -> Option<usize> {
    let (first, rest) = match key.map(|k| k.split_once('.').unwrap_or((k, ""))) {
        Some((a, b)) => (Some(a), b),
        None => (None, ""),
    };
    // Where the scan is relative to the target: None = elsewhere, Some("") = the target table
    // itself, Some(x) = its sub-table `x`, Some("#") = inside the item at another level.
    let mut scope: Option<String> = None;
    let mut item: Option<usize> = None;
    let (mut items, mut subs) = (0usize, 0usize);
    let mut in_target_sub = false;
    let mut fallback = None;
    for (i, line) in src.lines().enumerate() {
        let t = line.trim();
        if t.starts_with('[') {
            let double = t.starts_with("[[");
            let name = t
                .trim_start_matches('[')
                .split(']')
                .next()
                .unwrap_or("")
                .trim();
            let nested = name
                .strip_prefix(array)
                .and_then(|r| r.strip_prefix('.'))
                .map(str::trim);
            let mut is_target = false;
            if double && name == array {
                item = Some(items);
                items += 1;
                subs = 0;
                in_target_sub = false;
                is_target = item == Some(index) && sub.is_none();
                scope = match sub {
                    _ if item != Some(index) => None,
                    None => Some(String::new()),
                    Some(_) => Some("#".into()),
                };
            } else if let Some(nested) = nested
                && item == Some(index)
            {
                scope = match (double, sub) {
                    (true, Some((s, si))) if nested == s => {
                        in_target_sub = subs == si;
                        subs += 1;
                        is_target = in_target_sub;
                        Some(if in_target_sub {
                            String::new()
                        } else {
                            "#".into()
                        })
                    }
                    (true, _) => {
                        in_target_sub = false;
                        Some("#".into())
                    }
                    (false, None) => Some(nested.to_owned()),
                    (false, Some((s, _))) => {
                        match nested.strip_prefix(s).and_then(|r| r.strip_prefix('.')) {
                            Some(x) if in_target_sub => Some(x.to_owned()),
                            _ => Some("#".into()),
                        }
                    }
                };
            } else {
                item = None;
                scope = None;
            }
            if is_target && key.is_none() {
                return Some(i + 1);
            }
            if let (Some(f), Some(s)) = (first, scope.as_deref())
                && s == f
            {
                if rest.is_empty() {
                    return Some(i + 1);
                }
                fallback = fallback.or(Some(i + 1));
            }
            continue;
        }
        let (Some(first), Some(scope), Some(k)) = (first, scope.as_deref(), line_key(t)) else {
            continue;
        };
        if scope.is_empty() {
            if Some(k) == key {
                return Some(i + 1);
            }
            if k == first {
                fallback = fallback.or(Some(i + 1));
            }
        } else if scope == first && k == rest {
            return Some(i + 1);
        }
    }
    fallback
}

/// The tables of the array `key` (`[[key]]`) in `parent`, each with its path and its raw
/// table (for nested arrays). Unknown keys and bad values are reported, and the item is still
/// returned (with defaults for what was bad) so that later checks run too.
pub(super) fn read_items<T: for<'de> Deserialize<'de> + Default>(
    src: &str,
    parent: &toml::Table,
    array: &ArrayOf,
    path_of: &dyn Fn(usize, Option<String>) -> ItemPath,
    parent_at: &dyn Fn(&str) -> String,
    errors: &mut Vec<ConfigError>,
) -> Vec<(T, ItemPath, toml::Table)> {
    let ArrayOf { key, known, nested } = *array;
    let Some(value) = parent.get(key) else {
        return Vec::new();
    };
    let Some(list) = value.as_array() else {
        errors.push(ConfigError {
            location: parent_at(key),
            message: format!("`{key}` must be an array of tables (`[[…{key}]]` sections)"),
        });
        return Vec::new();
    };
    let mut out = Vec::with_capacity(list.len());
    for (i, v) in list.iter().enumerate() {
        let Some(table) = v.as_table() else {
            errors.push(ConfigError {
                location: path_of(i, None).at(src, None),
                message: format!("each `{key}` entry must be a table"),
            });
            continue;
        };
        let name = table
            .get("name")
            .and_then(toml::Value::as_str)
            .map(str::to_owned);
        let path = path_of(i, name);
        for k in table.keys() {
            if !known.contains(&k.as_str()) {
                errors.push(ConfigError {
                    location: path.at(src, Some(k)),
                    message: format!(
                        "unknown key `{k}`; known keys in [[{}]]: {}",
                        match path.sub {
                            Some((s, _)) => format!("{}.{s}", path.array),
                            None => path.array.to_owned(),
                        },
                        known.join(", ")
                    ),
                });
            }
        }
        let mut own = table.clone();
        own.retain(|k, _| known.contains(&k) && !nested.contains(&k));
        let item: T = deserialize_at(toml::Value::Table(own), errors, &|k| path.at(src, k));
        out.push((item, path, table.clone()));
    }
    out
}

pub(super) fn err(
    errors: &mut Vec<ConfigError>,
    src: &str,
    path: &ItemPath,
    key: Option<&str>,
    message: String,
) {
    errors.push(ConfigError {
        location: path.at(src, key),
        message,
    });
}

/// Reads and checks `[[topics]]`, `[[agencies]]` and `[[functions]]`.
pub(super) fn parse(
    src: &str,
    table: &toml::Table,
    config: &Config,
    errors: &mut Vec<ConfigError>,
) -> Resources {
    let top_at = |k: &str| location(src, None, Some(k));
    Resources {
        topics: topics(src, table, config, &top_at, errors),
        agencies: agencies(src, table, &top_at, errors),
        functions: functions(src, table, config, &top_at, errors),
    }
}

fn topics(
    src: &str,
    table: &toml::Table,
    config: &Config,
    top_at: &dyn Fn(&str) -> String,
    errors: &mut Vec<ConfigError>,
) -> Vec<TopicDecl> {
    use trailwatch_notify::{Endpoint, ExtensionHeaders, Protocol, TopicName};
    let path_of = |index, name| ItemPath {
        array: "topics",
        index,
        name,
        sub: None,
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (mut topic, path, raw) in
        read_items::<TopicDecl>(src, table, &TOPICS, &path_of, top_at, errors)
    {
        topic.line = path.line(src, None);
        if topic.name.is_empty() {
            err(errors, src, &path, None, "`name` is required".into());
        } else if let Err(e) = TopicName::parse(&topic.name) {
            err(errors, src, &path, Some("name"), e.message);
        } else if !seen.insert(topic.name.clone()) {
            err(
                errors,
                src,
                &path,
                Some("name"),
                format!("topic `{}` is declared twice", topic.name),
            );
        }
        if let Err(e) = trailwatch_notify::check_display_name(&topic.display_name) {
            err(errors, src, &path, Some("display_name"), e.message);
        }
        let sub_at = |k: &str| path.at(src, Some(k));
        let sub_path = |i, _| path.sub("subscriptions", i);
        let mut endpoints = HashSet::new();
        for (mut s, sp, _) in
            read_items::<SubscriptionDecl>(src, &raw, &SUBSCRIPTIONS, &sub_path, &sub_at, errors)
        {
            s.line = sp.line(src, None);
            let protocol = match Protocol::parse(&s.protocol) {
                Ok(p) => Some(p),
                Err(e) => {
                    err(errors, src, &sp, Some("protocol"), e.message);
                    None
                }
            };
            if let Some(p) = protocol {
                match Endpoint::parse(p, &s.endpoint) {
                    Ok(e) => {
                        if !endpoints.insert((p, e.as_str().to_owned())) {
                            err(
                                errors,
                                src,
                                &sp,
                                Some("endpoint"),
                                format!("`{}` is subscribed twice to this topic", s.endpoint),
                            );
                        }
                    }
                    Err(e) => err(errors, src, &sp, Some("endpoint"), e.message),
                }
                let http = matches!(p, Protocol::Http | Protocol::Https);
                if !s.headers.is_empty() && !http {
                    err(
                        errors,
                        src,
                        &sp,
                        Some("headers"),
                        "headers are only allowed for http and https subscriptions".into(),
                    );
                }
                if p == Protocol::Email && config.notify.smtp.is_none() {
                    err(
                        errors,
                        src,
                        &sp,
                        Some("protocol"),
                        "an email subscription needs a mail server: add [notify.smtp]".into(),
                    );
                }
                if p == Protocol::Sms && config.notify.sms.is_none() {
                    err(
                        errors,
                        src,
                        &sp,
                        Some("protocol"),
                        "an sms subscription needs an SMS gateway: add [notify.sms]".into(),
                    );
                }
            }
            if let Err(e) = trailwatch_notify::check_remark(&s.remark) {
                err(errors, src, &sp, Some("remark"), e.message);
            }
            if !s.headers.is_empty() {
                let value = serde_json::to_value(&s.headers).unwrap_or_default();
                if let Err(e) = ExtensionHeaders::parse(&value) {
                    err(errors, src, &sp, Some("headers"), e.message);
                }
            }
            topic.subscriptions.push(s);
        }
        out.push(topic);
    }
    out
}

/// The built-in role with this display name (`SMN Administrator`) or internal name (`smn_adm`).
fn role_by_name(name: &str) -> Option<&'static trailwatch_iam::roles::Role> {
    trailwatch_iam::roles::all()
        .iter()
        .find(|r| r.display_name == name || r.name == name)
}

fn agencies(
    src: &str,
    table: &toml::Table,
    top_at: &dyn Fn(&str) -> String,
    errors: &mut Vec<ConfigError>,
) -> Vec<AgencyDecl> {
    let path_of = |index, name| ItemPath {
        array: "agencies",
        index,
        name,
        sub: None,
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (mut agency, path, _) in
        read_items::<AgencyDecl>(src, table, &AGENCIES, &path_of, top_at, errors)
    {
        agency.line = path.line(src, None);
        if agency.name.is_empty() {
            err(errors, src, &path, None, "`name` is required".into());
        } else if !seen.insert(agency.name.clone()) {
            err(
                errors,
                src,
                &path,
                Some("name"),
                format!("agency `{}` is declared twice", agency.name),
            );
        }
        for role in &agency.roles {
            if role_by_name(role).is_none() {
                let known: Vec<&str> = trailwatch_iam::roles::all()
                    .iter()
                    .map(|r| r.display_name)
                    .collect();
                err(
                    errors,
                    src,
                    &path,
                    Some("roles"),
                    format!("role `{role}` does not exist; roles: {}", known.join(", ")),
                );
            }
        }
        out.push(agency);
    }
    out
}

fn functions(
    src: &str,
    table: &toml::Table,
    config: &Config,
    top_at: &dyn Fn(&str) -> String,
    errors: &mut Vec<ConfigError>,
) -> Vec<FunctionDecl> {
    use trailwatch_functions::runtime::builtin;
    use trailwatch_functions::{FunctionRef, UserData};
    let path_of = |index, name| ItemPath {
        array: "functions",
        index,
        name,
        sub: None,
    };
    let mut seen = HashSet::new();
    let mut out = Vec::new();
    for (mut f, path, raw) in
        read_items::<FunctionDecl>(src, table, &FUNCTIONS, &path_of, top_at, errors)
    {
        f.line = path.line(src, None);
        // Any valid project id: only the package and name are checked here.
        const PROJECT: &str = "00000000000000000000000000000000";
        if f.name.is_empty() {
            err(errors, src, &path, None, "`name` is required".into());
        } else if let Err(e) = FunctionRef::new(PROJECT, &f.package, &f.name) {
            let key = if e.to_string().contains("package") {
                "package"
            } else {
                "name"
            };
            err(errors, src, &path, Some(key), e.to_string());
        } else if !seen.insert((f.package.clone(), f.name.clone())) {
            err(
                errors,
                src,
                &path,
                Some("name"),
                format!("function `{}:{}` is declared twice", f.package, f.name),
            );
        }
        if !trailwatch_functions::service::RUNTIMES.contains(&f.runtime.as_str()) {
            err(
                errors,
                src,
                &path,
                Some("runtime"),
                format!(
                    "runtime `{}` is not available; available: {}",
                    f.runtime,
                    trailwatch_functions::service::RUNTIMES.join(", ")
                ),
            );
        }
        let implementation = if f.handler.is_empty() {
            err(
                errors,
                src,
                &path,
                None,
                "`handler` is required (login_audit or log_alarm)".into(),
            );
            None
        } else {
            let b = builtin(&f.handler);
            if b.is_none() {
                err(
                    errors,
                    src,
                    &path,
                    Some("handler"),
                    format!(
                        "unknown handler `{}`; built-in handlers: login_audit, log_alarm",
                        f.handler
                    ),
                );
            }
            b
        };
        for (key, var) in &f.secret_env {
            if f.env.contains_key(key) {
                err(
                    errors,
                    src,
                    &path,
                    Some(&format!("secret_env.{key}")),
                    format!("`{key}` is set in both env and secret_env"),
                );
            }
            let valid = var.starts_with(|c: char| c.is_ascii_alphabetic() || c == '_')
                && var.chars().all(|c| c.is_ascii_alphanumeric() || c == '_');
            if !valid {
                err(
                    errors,
                    src,
                    &path,
                    Some(&format!("secret_env.{key}")),
                    format!("`{var}` is not the name of an environment variable"),
                );
            }
        }
        let all_keys = f
            .env
            .keys()
            .chain(f.secret_env.keys())
            .map(|k| (k.clone(), String::new()));
        let env = UserData::from_pairs(f.env.clone());
        match (&env, &UserData::from_pairs(all_keys)) {
            (Err(e), _) | (_, Err(e)) => err(errors, src, &path, Some("env"), format!("env: {e}")),
            // The handler's variables can be judged only when all of them are in the file.
            (Ok(ud), Ok(_)) if f.secret_env.is_empty() => {
                if let Some(b) = implementation
                    && let Err(e) = b.validate_config(ud)
                {
                    let key = format!("env.{}", e.key);
                    let at = if f.env.contains_key(&e.key) {
                        Some(key.as_str())
                    } else {
                        Some("env")
                    };
                    err(
                        errors,
                        src,
                        &path,
                        at,
                        format!("handler `{}`: {e}", f.handler),
                    );
                }
            }
            _ => {}
        }
        // A topic given by name is addressed in `RegionName`: another region's topic does not
        // exist on this server, and every alarm would fail.
        if let (Some(region), Some(topic)) = (f.env.get("RegionName"), f.env.get("SMN_Topic"))
            && !topic.starts_with("urn:")
            && region.trim() != config.server.region
        {
            err(
                errors,
                src,
                &path,
                Some("env.RegionName"),
                format!(
                    "`{region}` is not this server's region `{}` ([server] region): the alarms would go to topic `{topic}` of another region, which does not exist here",
                    config.server.region
                ),
            );
        }
        if f.agency.as_deref() == Some("") {
            err(
                errors,
                src,
                &path,
                Some("agency"),
                "`agency` is empty; leave it out for none".into(),
            );
        }
        let trig_at = |k: &str| path.at(src, Some(k));
        let trig_path = |i, _| path.sub("triggers", i);
        let mut identities = HashSet::new();
        for (mut t, tp, _) in
            read_items::<TriggerDecl>(src, &raw, &TRIGGERS, &trig_path, &trig_at, errors)
        {
            t.line = tp.line(src, None);
            check_trigger(src, &t, &tp, errors);
            if let Some(id) = trigger_identity(&t)
                && !identities.insert(id)
            {
                err(
                    errors,
                    src,
                    &tp,
                    None,
                    "the same trigger is declared twice for this function".into(),
                );
            }
            f.triggers.push(t);
        }
        out.push(f);
    }
    out
}

/// What makes a declared trigger the same as an existing one: its type and what it listens to
/// (CTS operations, a timer's schedule, an LTS stream).
pub fn trigger_identity(t: &TriggerDecl) -> Option<String> {
    match t.type_code.as_str() {
        "CTS" => {
            let mut ops: Vec<String> = t.operations.iter().map(|o| o.trim().to_owned()).collect();
            ops.sort();
            Some(format!("CTS {}", ops.join(" ")))
        }
        "TIMER" => Some(format!(
            "TIMER {} {}",
            t.schedule_type(),
            t.schedule.as_deref().unwrap_or_default().trim()
        )),
        "LTS" => Some(format!(
            "LTS {} {}",
            t.log_group_id.as_deref().unwrap_or_default(),
            t.log_stream_id.as_deref().unwrap_or_default()
        )),
        _ => None,
    }
}

fn check_trigger(src: &str, t: &TriggerDecl, path: &ItemPath, errors: &mut Vec<ConfigError>) {
    let mut not_for = |key: &str, given: bool| {
        if given {
            err(
                errors,
                src,
                path,
                Some(key),
                format!("`{key}` does not apply to a {} trigger", t.type_code),
            );
        }
    };
    match t.type_code.as_str() {
        "CTS" => {
            not_for("schedule_type", t.schedule_type.is_some());
            not_for("schedule", t.schedule.is_some());
            not_for("user_event", t.user_event.is_some());
            not_for("log_group_id", t.log_group_id.is_some());
            not_for("log_stream_id", t.log_stream_id.is_some());
            if t.operations.is_empty() {
                err(
                    errors,
                    src,
                    path,
                    None,
                    "a CTS trigger needs `operations`, e.g. [\"IAM:user:login;logout\"]".into(),
                );
            } else if let Err(e) =
                trailwatch_functions::OperationSet::parse(t.operations.iter().map(String::as_str))
            {
                err(errors, src, path, Some("operations"), e.to_string());
            }
        }
        "TIMER" => {
            not_for("operations", !t.operations.is_empty());
            not_for("log_group_id", t.log_group_id.is_some());
            not_for("log_stream_id", t.log_stream_id.is_some());
            match &t.schedule {
                None => err(
                    errors,
                    src,
                    path,
                    None,
                    "a TIMER trigger needs `schedule`, e.g. \"5m\"".into(),
                ),
                Some(s) => {
                    if let Err(e) = trailwatch_functions::Schedule::parse(t.schedule_type(), s) {
                        err(errors, src, path, Some("schedule"), e.to_string());
                    }
                }
            }
        }
        "LTS" => {
            not_for("operations", !t.operations.is_empty());
            not_for("schedule_type", t.schedule_type.is_some());
            not_for("schedule", t.schedule.is_some());
            not_for("user_event", t.user_event.is_some());
            for (key, v) in [
                ("log_group_id", &t.log_group_id),
                ("log_stream_id", &t.log_stream_id),
            ] {
                if v.as_deref().is_none_or(str::is_empty) {
                    err(
                        errors,
                        src,
                        path,
                        None,
                        format!("an LTS trigger needs `{key}`"),
                    );
                }
            }
        }
        "" => err(
            errors,
            src,
            path,
            None,
            "`type` is required: CTS, TIMER or LTS".into(),
        ),
        other => err(
            errors,
            src,
            path,
            Some("type"),
            format!("trigger type `{other}` is not supported; supported: CTS, TIMER, LTS"),
        ),
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::super::parse;

    const TUTORIAL: &str = r#"version = 1

[[topics]]
name = "cts_test"
display_name = "Login audit"

[[topics.subscriptions]]
protocol = "http"
endpoint = "http://127.0.0.1:9000/alarms"

[[agencies]]
name = "serverless_trust"
roles = ["SMN Administrator"]

[[functions]]
name = "login_audit"
handler = "login_audit"
agency = "serverless_trust"

[functions.env]
SMN_Topic = "cts_test"
RegionName = "local"
IP = "10.0.0.0/8, 192.168.0.0/16"

[[functions.triggers]]
type = "CTS"
operations = ["IAM:user:login;logout"]
"#;

    #[test]
    fn the_tutorial_parses_with_defaults() {
        let c = parse(TUTORIAL).unwrap();
        let r = &c.resources;
        assert_eq!(r.topics.len(), 1);
        assert_eq!(r.topics[0].subscriptions[0].protocol, "http");
        assert_eq!(r.topics[0].line, Some(3));
        assert_eq!(r.topics[0].subscriptions[0].line, Some(7));
        assert_eq!(r.agencies[0].roles, ["SMN Administrator"]);
        let f = &r.functions[0];
        assert_eq!(
            (f.package.as_str(), f.runtime.as_str(), f.memory, f.timeout),
            ("default", "builtin", 128, 30)
        );
        assert_eq!(f.env["IP"], "10.0.0.0/8, 192.168.0.0/16");
        assert_eq!(f.triggers[0].operations, ["IAM:user:login;logout"]);
        assert!(f.triggers[0].enabled);
        assert_eq!(f.line, Some(15));
    }

    fn problems(src: &str) -> Vec<String> {
        parse(src)
            .unwrap_err()
            .iter()
            .map(ToString::to_string)
            .collect()
    }

    #[test]
    fn a_bad_allowlist_entry_names_the_function_the_line_and_the_entry() {
        let src = TUTORIAL.replace("192.168.0.0/16", "192.168.0.300");
        let text = problems(&src);
        assert_eq!(text.len(), 1, "{text:#?}");
        assert!(
            text[0]
                .starts_with("line 23, [[functions]] login_audit, env.IP: handler `login_audit`"),
            "{text:#?}"
        );
        assert!(text[0].contains("192.168.0.300"), "{text:#?}");
    }

    #[test]
    fn every_problem_of_every_item_is_reported_at_its_line() {
        let src = r#"
[[topics]]
name = "bad name"
colour = "red"
[[topics.subscriptions]]
protocol = "email"
endpoint = "not-an-address"
[[agencies]]
name = "a"
roles = ["Root"]
[[functions]]
name = "f"
handler = "nope"
memory = "big"
[functions.env]
RegionName = "eu-de"
SMN_Topic = "t"
[[functions.triggers]]
type = "CTS"
operations = ["IAM:user"]
[[functions.triggers]]
type = "TIMER"
schedule = "61m"
operations = ["x:y:z"]
[[functions.triggers]]
type = "KAFKA"
"#;
        let text = problems(src);
        let has = |prefix: &str| text.iter().any(|e| e.starts_with(prefix));
        assert!(
            has("line 3, [[topics]] bad name, name: Invalid topic name"),
            "{text:#?}"
        );
        assert!(
            has("line 4, [[topics]] bad name, colour: unknown key `colour`"),
            "{text:#?}"
        );
        assert!(
            has(
                "line 6, [[topics]] bad name, subscription #1, protocol: an email subscription needs"
            ),
            "{text:#?}"
        );
        assert!(
            has("line 7, [[topics]] bad name, subscription #1, endpoint:"),
            "{text:#?}"
        );
        assert!(
            has("line 10, [[agencies]] a, roles: role `Root` does not exist"),
            "{text:#?}"
        );
        assert!(
            has("line 13, [[functions]] f, handler: unknown handler `nope`"),
            "{text:#?}"
        );
        assert!(has("line 14, [[functions]] f, memory:"), "{text:#?}");
        assert!(
            has(
                "line 16, [[functions]] f, env.RegionName: `eu-de` is not this server's region `local`"
            ),
            "{text:#?}"
        );
        assert!(
            has("line 20, [[functions]] f, trigger #1, operations:"),
            "{text:#?}"
        );
        assert!(
            has("line 23, [[functions]] f, trigger #2, schedule:"),
            "{text:#?}"
        );
        assert!(
            has("line 24, [[functions]] f, trigger #2, operations: `operations` does not apply"),
            "{text:#?}"
        );
        assert!(
            has("line 26, [[functions]] f, trigger #3, type: trigger type `KAFKA`"),
            "{text:#?}"
        );
        assert_eq!(text.len(), 12, "{text:#?}");
    }

    #[test]
    fn duplicates_are_refused() {
        let src = format!(
            "{TUTORIAL}\n[[functions.triggers]]\ntype = \"CTS\"\noperations = [\"IAM:user:login;logout\"]\n[[topics]]\nname = \"cts_test\"\n"
        );
        let text = problems(&src);
        assert!(
            text.iter()
                .any(|e| e.contains("trigger #2: the same trigger is declared twice")),
            "{text:#?}"
        );
        assert!(
            text.iter()
                .any(|e| e.contains("topic `cts_test` is declared twice")),
            "{text:#?}"
        );
    }

    #[test]
    fn secrets_are_named_not_given() {
        let src = TUTORIAL.replace(
            "[[functions.triggers]]",
            "[functions.secret_env]\nIP = \"LOGIN_AUDIT_IP\"\n\n[[functions.triggers]]",
        );
        let text = problems(&src);
        assert!(
            text.iter()
                .any(|e| e.contains("secret_env.IP: `IP` is set in both env and secret_env")),
            "{text:#?}"
        );
        let src = TUTORIAL
            .replace("IP = \"10.0.0.0/8, 192.168.0.0/16\"\n", "")
            .replace(
                "[[functions.triggers]]",
                "[functions.secret_env]\nIP = \"not a name\"\n\n[[functions.triggers]]",
            );
        let text = problems(&src);
        assert_eq!(text.len(), 1, "{text:#?}");
        assert!(
            text[0].contains("`not a name` is not the name of an environment variable"),
            "{text:#?}"
        );
    }

    #[test]
    fn arrays_must_be_arrays_of_tables() {
        let text = problems("topics = \"cts_test\"\n");
        assert_eq!(
            text,
            ["line 1, topics: `topics` must be an array of tables (`[[…topics]]` sections)"]
        );
    }
}
