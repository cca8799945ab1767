//! The server configuration file (TOML, `version = 1`).
//!
//! Every field has a default, so `trailwatch serve` runs with no file at all. Unknown keys are
//! errors. Loading reports every problem it finds at once, each with its location (`line N,
//! [section] key`), rather than stopping at the first. Secrets never live in this file: they come
//! from the environment (`TRAILWATCH_ADMIN_PASSWORD`, `TRAILWATCH_ADMIN_AK`, `TRAILWATCH_ADMIN_SK`).

use std::net::SocketAddr;
use std::path::PathBuf;

use serde::Deserialize;
use trailwatch_store::Durability;

pub use resources::{
    AgencyDecl, FunctionDecl, Resources, TopicDecl, TriggerDecl, trigger_identity,
};

mod resources;
pub mod sources;

pub const CURRENT_VERSION: i64 = 1;

const TOP_LEVEL_KEYS: &[&str] = &[
    "version",
    "server",
    "storage",
    "iam",
    "notify",
    "objects",
    "archive",
    "topics",
    "agencies",
    "functions",
    "source",
    "python",
    "outbound",
];

#[derive(Debug, Clone, PartialEq, Default)]
pub struct Config {
    pub server: ServerSection,
    pub storage: StorageSection,
    pub iam: IamSection,
    pub notify: NotifySection,
    /// `[objects]`: where functions read and write objects (`None`: the folder `objects` in the
    /// data directory).
    pub objects: Option<trailwatch_archive::ObjectStoreConfig>,
    pub archive: ArchiveSection,
    /// Topics, agencies and functions declared in the file, applied at start.
    pub resources: Resources,
    /// `[[source]]`: log files and journald followed by the server (`trailwatch-collect`).
    pub sources: Vec<trailwatch_collect::SourceConfig>,
    /// `[python]`: the Python function runtime.
    pub python: PythonSection,
    /// `[outbound]`: where HTTP(S) subscribers and the SMS gateway may be reached.
    pub outbound: OutboundSection,
}

/// `[outbound]`: addresses added to the default refusals (`deny`) or exempted from them
/// (`allow`), as CIDR ranges or single addresses. See `trailwatch_notify::outbound`.
#[derive(Debug, Clone, PartialEq, Default, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct OutboundSection {
    pub allow: Vec<String>,
    pub deny: Vec<String>,
}

/// `[python]`: the interpreter Python functions run on. (Not `[functions]`: that name is the
/// `[[functions]]` array of declared functions.)
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PythonSection {
    /// `python3` on `PATH`, or a virtualenv's `bin/python` whose packages every function can
    /// import (a runtime-wide virtualenv).
    pub interpreter: std::path::PathBuf,
}

impl Default for PythonSection {
    fn default() -> Self {
        PythonSection {
            interpreter: std::path::PathBuf::from("python3"),
        }
    }
}

/// `[notify]`: delivery of notifications.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct NotifySection {
    /// First retry delay; each later one doubles, with full jitter, up to `retry_cap_ms`.
    pub retry_base_ms: u64,
    pub retry_cap_ms: u64,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    pub connect_timeout_ms: u64,
    pub response_timeout_ms: u64,
    /// PEM file of extra CA certificates trusted for HTTPS subscribers (besides the system's).
    pub extra_ca_file: Option<PathBuf>,
    pub smtp: Option<SmtpSection>,
    pub sms: Option<SmsSection>,
}

impl Default for NotifySection {
    fn default() -> Self {
        NotifySection {
            retry_base_ms: 1000,
            retry_cap_ms: 300_000,
            concurrency: 64,
            connect_timeout_ms: 5000,
            response_timeout_ms: 15_000,
            extra_ca_file: None,
            smtp: None,
            sms: None,
        }
    }
}

/// `[notify.smtp]`: the mail server for email subscriptions. The password comes from
/// `TRAILWATCH_SMTP_PASSWORD`, never from this file.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpSection {
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    /// `none`, `starttls` or `tls`.
    #[serde(default = "default_smtp_security")]
    pub security: trailwatch_notify::service::SmtpSecurity,
    pub username: Option<String>,
    pub from: String,
}

fn default_smtp_port() -> u16 {
    25
}

fn default_smtp_security() -> trailwatch_notify::service::SmtpSecurity {
    trailwatch_notify::service::SmtpSecurity::Starttls
}

/// `[notify.sms]`: an HTTP SMS gateway. `url` and `body_template` may use `{to}` and `{message}`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmsSection {
    pub url: String,
    #[serde(default = "default_sms_method")]
    pub method: String,
    #[serde(default)]
    pub headers: std::collections::BTreeMap<String, String>,
    #[serde(default)]
    pub body_template: String,
    /// Confirm SMS subscriptions at once (no confirmation text).
    #[serde(default = "default_true")]
    pub auto_confirm: bool,
}

fn default_sms_method() -> String {
    "POST".into()
}

fn default_true() -> bool {
    true
}

/// `[server]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ServerSection {
    /// Address to listen on.
    pub listen: String,
    /// Where the database, keys and objects live.
    pub data_dir: PathBuf,
    /// The URL clients use to reach this server; defaults to `http://<listen>`, or
    /// `https://<listen>` with TLS.
    pub public_url: Option<String>,
    /// Region name used in URNs and token catalogs.
    pub region: String,
    /// Largest request body accepted, in bytes.
    pub max_body_bytes: usize,
    /// PEM file with the server's certificate chain (leaf first). With `tls_key`, the listener
    /// serves HTTPS only.
    pub tls_cert: Option<PathBuf>,
    /// PEM file with the private key of `tls_cert` (PKCS#8, PKCS#1 or SEC1).
    pub tls_key: Option<PathBuf>,
    /// Serve plain HTTP on a non-loopback `listen` address. Without TLS and without this, the
    /// server refuses to start on such an address (credentials would cross the network in
    /// clear); set it only behind a TLS-terminating proxy on a trusted network.
    pub allow_plain_http: bool,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: "127.0.0.1:8840".into(),
            data_dir: PathBuf::from("./trailwatch-data"),
            public_url: None,
            region: "local".into(),
            max_body_bytes: 12 * 1024 * 1024,
            tls_cert: None,
            tls_key: None,
            allow_plain_http: false,
        }
    }
}

/// `[storage]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageSection {
    /// `full`: every commit is fsynced (survives power loss); `normal`: survives process crashes.
    pub durability: Durability,
    /// Delete traces from the local log this many days after ingest; 0 keeps them forever.
    pub trace_retention_days: u32,
    /// How many acknowledged traces the query index may trail the log by while ingest is busy;
    /// past it ingest waits for the indexer (queries scan that tail, so it bounds their cost).
    pub index_max_lag: u64,
}

impl Default for StorageSection {
    fn default() -> Self {
        StorageSection {
            durability: Durability::Full,
            trace_retention_days: 0,
            index_max_lag: 200_000,
        }
    }
}

/// `[iam]`
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct IamSection {
    /// How long an issued token is valid.
    pub token_ttl_hours: u32,
}

impl Default for IamSection {
    fn default() -> Self {
        IamSection {
            token_ttl_hours: 24,
        }
    }
}

/// `[archive]`: the transfer of trackers' traces to their buckets.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ArchiveSection {
    /// Seconds between two transfers (CTS: 300).
    pub transfer_cycle_seconds: u64,
}

impl Default for ArchiveSection {
    fn default() -> Self {
        ArchiveSection {
            transfer_cycle_seconds: 300,
        }
    }
}

/// One problem in a configuration file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// `line N` when known, then the key path.
    pub location: String,
    pub message: String,
}

impl std::fmt::Display for ConfigError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}: {}", self.location, self.message)
    }
}

/// The line (1-based) where `key` is set inside `[section]` (or the section header when `key` is
/// None). A plain scan: good enough to point a person at the right line.
fn locate(src: &str, section: Option<&str>, key: Option<&str>) -> Option<usize> {
    let mut current: Option<String> = None;
    for (i, line) in src.lines().enumerate() {
        let t = line.trim();
        if let Some(name) = t.strip_prefix('[').and_then(|r| r.strip_suffix(']')) {
            current = Some(name.trim().to_owned());
            if key.is_none() && section == Some(name.trim()) {
                return Some(i + 1);
            }
            continue;
        }
        if let Some(k) = key
            && current.as_deref() == section
            && let Some((lhs, _)) = t.split_once('=')
            && lhs.trim().trim_matches('"') == k
        {
            return Some(i + 1);
        }
    }
    None
}

fn location(src: &str, section: Option<&str>, key: Option<&str>) -> String {
    let path = match (section, key) {
        (Some(s), Some(k)) => format!("[{s}] {k}"),
        (Some(s), None) => format!("[{s}]"),
        (None, Some(k)) => k.to_owned(),
        (None, None) => "file".to_owned(),
    };
    match locate(src, section, key) {
        Some(line) => format!("line {line}, {path}"),
        None => path,
    }
}

fn section<T: for<'de> Deserialize<'de> + Default>(
    src: &str,
    table: &toml::Table,
    name: &str,
    known: &[&str],
    errors: &mut Vec<ConfigError>,
) -> T {
    let Some(value) = table.get(name) else {
        return T::default();
    };
    let Some(t) = value.as_table() else {
        errors.push(ConfigError {
            location: location(src, None, Some(name)),
            message: format!("`{name}` must be a table (`[{name}]`)"),
        });
        return T::default();
    };
    let mut has_unknown = false;
    for key in t.keys() {
        if !known.contains(&key.as_str()) {
            has_unknown = true;
            errors.push(ConfigError {
                location: location(src, Some(name), Some(key)),
                message: format!(
                    "unknown key `{key}`; known keys in [{name}]: {}",
                    known.join(", ")
                ),
            });
        }
    }
    if has_unknown {
        // Check the known keys' types too, so that every error is reported in one pass.
        let mut known_only = t.clone();
        known_only.retain(|k, _| known.iter().any(|n| **n == *k));
        return deserialize_section(src, name, toml::Value::Table(known_only), errors);
    }
    deserialize_section(src, name, value.clone(), errors)
}

fn deserialize_section<T: for<'de> Deserialize<'de> + Default>(
    src: &str,
    name: &str,
    value: toml::Value,
    errors: &mut Vec<ConfigError>,
) -> T {
    deserialize_at(value, errors, &|key| location(src, Some(name), key))
}

/// Deserializes a table whose every field has a default; each bad key is reported at
/// `at(Some(key))`, a problem with no key at `at(None)`.
fn deserialize_at<T: for<'de> Deserialize<'de> + Default>(
    value: toml::Value,
    errors: &mut Vec<ConfigError>,
    at: &dyn Fn(Option<&str>) -> String,
) -> T {
    match value.clone().try_into::<T>() {
        Ok(v) => v,
        Err(whole) => {
            // serde stops at the first bad field and does not say which key it was: try each
            // key on its own so that every bad key is reported, each at its own line.
            let mut found = false;
            let mut good = toml::Table::new();
            if let toml::Value::Table(table) = value {
                for (key, v) in table {
                    let mut single = toml::Table::new();
                    single.insert(key.clone(), v.clone());
                    if let Err(e) = toml::Value::Table(single).try_into::<T>() {
                        found = true;
                        errors.push(ConfigError {
                            location: at(Some(&key)),
                            message: e.message().to_owned(),
                        });
                    } else {
                        good.insert(key, v);
                    }
                }
            }
            if !found {
                errors.push(ConfigError {
                    location: at(None),
                    message: whole.message().to_owned(),
                });
            }
            // The good keys, so that checks of the other fields still see their values.
            toml::Value::Table(good).try_into::<T>().unwrap_or_default()
        }
    }
}

/// Parses and validates a configuration file's text.
pub fn parse(src: &str) -> Result<Config, Vec<ConfigError>> {
    let table: toml::Table = src.parse().map_err(|e: toml::de::Error| {
        let line = e
            .span()
            .map(|s| src[..s.start.min(src.len())].matches('\n').count() + 1);
        vec![ConfigError {
            location: line
                .map(|l| format!("line {l}"))
                .unwrap_or_else(|| "file".into()),
            message: format!("not valid TOML: {}", e.message()),
        }]
    })?;
    let mut errors = Vec::new();
    for key in table.keys() {
        if !TOP_LEVEL_KEYS.contains(&key.as_str()) {
            errors.push(ConfigError {
                location: location(src, None, Some(key)),
                message: format!(
                    "unknown key `{key}`; known top-level keys: {}",
                    TOP_LEVEL_KEYS.join(", ")
                ),
            });
        }
    }
    match table.get("version") {
        None => {}
        Some(toml::Value::Integer(CURRENT_VERSION)) => {}
        Some(other) => errors.push(ConfigError {
            location: location(src, None, Some("version")),
            message: format!(
                "unsupported version {other}; this trailwatch reads version {CURRENT_VERSION}"
            ),
        }),
    }
    let mut config = Config {
        server: section(
            src,
            &table,
            "server",
            &[
                "listen",
                "data_dir",
                "public_url",
                "region",
                "max_body_bytes",
                "tls_cert",
                "tls_key",
                "allow_plain_http",
            ],
            &mut errors,
        ),
        storage: section(
            src,
            &table,
            "storage",
            &["durability", "trace_retention_days", "index_max_lag"],
            &mut errors,
        ),
        iam: section(src, &table, "iam", &["token_ttl_hours"], &mut errors),
        notify: section(
            src,
            &table,
            "notify",
            &[
                "retry_base_ms",
                "retry_cap_ms",
                "concurrency",
                "connect_timeout_ms",
                "response_timeout_ms",
                "extra_ca_file",
                "smtp",
                "sms",
            ],
            &mut errors,
        ),
        objects: objects_section(src, &table, &mut errors),
        archive: section(
            src,
            &table,
            "archive",
            &["transfer_cycle_seconds"],
            &mut errors,
        ),
        resources: Resources::default(),
        sources: Vec::new(),
        python: section(src, &table, "python", &["interpreter"], &mut errors),
        outbound: section(src, &table, "outbound", &["allow", "deny"], &mut errors),
    };
    validate(src, &config, &mut errors);
    config.resources = resources::parse(src, &table, &config, &mut errors);
    config.sources = sources::parse(src, &table, false, &mut errors);
    if errors.is_empty() {
        Ok(config)
    } else {
        Err(errors)
    }
}

/// `[objects]`: `type = "local"` with `root`, or `type = "s3"` with `endpoint`, `region`,
/// `access_key_id`, `secret_access_key`, `allow_http`, `virtual_hosted_style`.
fn objects_section(
    src: &str,
    table: &toml::Table,
    errors: &mut Vec<ConfigError>,
) -> Option<trailwatch_archive::ObjectStoreConfig> {
    let value = table.get("objects")?;
    match value
        .clone()
        .try_into::<trailwatch_archive::ObjectStoreConfig>()
    {
        Ok(c) => Some(c),
        Err(e) => {
            errors.push(ConfigError {
                location: location(src, Some("objects"), None),
                message: format!(
                    "{} (expected type = \"local\" with root, or type = \"s3\" with endpoint, region, access_key_id, secret_access_key)",
                    e.message()
                ),
            });
            None
        }
    }
}

fn validate(src: &str, c: &Config, errors: &mut Vec<ConfigError>) {
    if let Err(e) =
        trailwatch_notify::outbound::OutboundPolicy::new(&c.outbound.allow, &c.outbound.deny)
    {
        errors.push(ConfigError {
            location: location(src, Some("outbound"), None),
            message: e,
        });
    }
    if !(1..=3600).contains(&c.archive.transfer_cycle_seconds) {
        errors.push(ConfigError {
            location: location(src, Some("archive"), Some("transfer_cycle_seconds")),
            message: format!(
                "must be 1 to 3600 seconds, got {}",
                c.archive.transfer_cycle_seconds
            ),
        });
    }
    let n = &c.notify;
    if n.retry_base_ms == 0 || n.retry_cap_ms < n.retry_base_ms || n.retry_cap_ms > 86_400_000 {
        errors.push(ConfigError {
            location: location(src, Some("notify"), Some("retry_cap_ms")),
            message: format!(
                "retry_base_ms ({}) must be > 0 and retry_cap_ms ({}) between it and one day",
                n.retry_base_ms, n.retry_cap_ms
            ),
        });
    }
    if !(1..=4096).contains(&n.concurrency) {
        errors.push(ConfigError {
            location: location(src, Some("notify"), Some("concurrency")),
            message: format!("{} is out of range (1 – 4096)", n.concurrency),
        });
    }
    if let Some(sms) = &n.sms
        && !(sms.url.starts_with("http://") || sms.url.starts_with("https://"))
    {
        errors.push(ConfigError {
            location: location(src, Some("notify.sms"), Some("url")),
            message: format!("`{}` must start with http:// or https://", sms.url),
        });
    }
    let mut err = |section: &str, key: &str, message: String| {
        errors.push(ConfigError {
            location: location(src, Some(section), Some(key)),
            message,
        })
    };
    if c.server.listen.parse::<SocketAddr>().is_err() {
        err(
            "server",
            "listen",
            format!(
                "`{}` is not an address:port such as 127.0.0.1:8840",
                c.server.listen
            ),
        );
    }
    match (&c.server.tls_cert, &c.server.tls_key) {
        (Some(_), None) => err(
            "server",
            "tls_cert",
            "tls_cert is set without tls_key: set both (PEM files) or neither".into(),
        ),
        (None, Some(_)) => err(
            "server",
            "tls_key",
            "tls_key is set without tls_cert: set both (PEM files) or neither".into(),
        ),
        _ => {}
    }
    if let Some(url) = &c.server.public_url
        && !(url.starts_with("http://") || url.starts_with("https://"))
    {
        err(
            "server",
            "public_url",
            format!("`{url}` must start with http:// or https://"),
        );
    }
    let region_ok = !c.server.region.is_empty()
        && c.server.region.len() <= 64
        && c.server
            .region
            .chars()
            .all(|ch| ch.is_ascii_alphanumeric() || ch == '-');
    if !region_ok {
        err(
            "server",
            "region",
            format!("`{}` must be 1–64 letters, digits or `-`", c.server.region),
        );
    }
    if !(1024..=1024 * 1024 * 1024).contains(&c.server.max_body_bytes) {
        err(
            "server",
            "max_body_bytes",
            format!(
                "{} is out of range (1 KiB – 1 GiB)",
                c.server.max_body_bytes
            ),
        );
    }
    if c.iam.token_ttl_hours == 0 || c.iam.token_ttl_hours > 24 * 30 {
        err(
            "iam",
            "token_ttl_hours",
            format!("{} is out of range (1 – 720 hours)", c.iam.token_ttl_hours),
        );
    }
}

/// Reads and parses a configuration file.
pub fn load(path: &std::path::Path) -> Result<Config, Vec<ConfigError>> {
    let src = std::fs::read_to_string(path).map_err(|e| {
        vec![ConfigError {
            location: path.display().to_string(),
            message: format!("cannot read the file: {e}"),
        }]
    })?;
    parse(&src)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn empty_file_gives_defaults() {
        assert_eq!(parse("").unwrap(), Config::default());
    }

    #[test]
    fn every_error_is_reported_with_its_line() {
        let src = "version = 1\n[server]\nlisten = \"nope\"\nbogus = 1\n[iam]\ntoken_ttl_hours = 0\n[extra]\n";
        let errors = parse(src).unwrap_err();
        let text: Vec<String> = errors.iter().map(ToString::to_string).collect();
        assert_eq!(errors.len(), 4, "{text:#?}");
        assert!(
            text.iter()
                .any(|e| e.starts_with("line 4, [server] bogus: unknown key")),
            "{text:#?}"
        );
        assert!(
            text.iter()
                .any(|e| e.starts_with("line 3, [server] listen:")),
            "{text:#?}"
        );
        assert!(
            text.iter()
                .any(|e| e.starts_with("line 6, [iam] token_ttl_hours:")),
            "{text:#?}"
        );
        assert!(
            text.iter().any(|e| e.contains("unknown key `extra`")),
            "{text:#?}"
        );
    }

    #[test]
    fn wrong_types_name_the_key() {
        let errors = parse("[storage]\ndurability = \"sometimes\"\ntrace_retention_days = \"x\"\n")
            .unwrap_err();
        assert_eq!(errors.len(), 2, "{errors:?}");
        assert_eq!(errors[0].location, "line 2, [storage] durability");
        assert!(errors[0].message.contains("sometimes"), "{errors:?}");
        assert_eq!(errors[1].location, "line 3, [storage] trace_retention_days");
    }

    #[test]
    fn python_section_names_the_interpreter() {
        assert_eq!(
            parse("").unwrap().python.interpreter,
            std::path::PathBuf::from("python3")
        );
        let c = parse("[python]\ninterpreter = \"/opt/fn-venv/bin/python\"\n").unwrap();
        assert_eq!(
            c.python.interpreter,
            std::path::PathBuf::from("/opt/fn-venv/bin/python")
        );
        let errors = parse("[python]\nversion = \"3.11\"\n").unwrap_err();
        assert_eq!(errors[0].location, "line 2, [python] version", "{errors:?}");
    }

    #[test]
    fn syntax_errors_have_a_line() {
        let errors = parse("[server]\nlisten = \n").unwrap_err();
        assert!(errors[0].location.starts_with("line 2"), "{errors:?}");
    }

    #[test]
    fn objects_section_is_checked() {
        let ok = parse(
            "[objects]\ntype = \"s3\"\nendpoint = \"http://127.0.0.1:9000\"\nregion = \"us-east-1\"\naccess_key_id = \"ak\"\nsecret_access_key = \"sk\"\nallow_http = true\n",
        );
        assert!(matches!(
            ok.map(|c| c.objects),
            Ok(Some(trailwatch_archive::ObjectStoreConfig::S3 { .. }))
        ));
        let Err(errors) = parse("[objects]\ntype = \"ftp\"\n") else {
            panic!("an unknown object store type must be refused");
        };
        assert!(errors[0].message.contains("ftp"), "{errors:?}");
        assert_eq!(errors[0].location, "line 1, [objects]");
    }

    #[test]
    fn tls_needs_both_cert_and_key() {
        let c = parse("[server]\ntls_cert = \"/etc/tw/cert.pem\"\ntls_key = \"/etc/tw/key.pem\"\n")
            .unwrap();
        assert_eq!(
            c.server.tls_cert.as_deref(),
            Some(std::path::Path::new("/etc/tw/cert.pem"))
        );
        assert!(!c.server.allow_plain_http);
        let errors =
            parse("[server]\nlisten = \"0.0.0.0:8840\"\ntls_cert = \"/etc/tw/cert.pem\"\n")
                .unwrap_err();
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert_eq!(errors[0].location, "line 3, [server] tls_cert");
        assert!(errors[0].message.contains("without tls_key"), "{errors:?}");
        let errors = parse("[server]\ntls_key = \"/etc/tw/key.pem\"\n").unwrap_err();
        assert_eq!(errors[0].location, "line 2, [server] tls_key");
        assert!(errors[0].message.contains("without tls_cert"), "{errors:?}");
        let c = parse("[server]\nallow_plain_http = true\n").unwrap();
        assert!(c.server.allow_plain_http);
        let errors = parse("[server]\nallow_plain_http = \"yes\"\n").unwrap_err();
        assert_eq!(errors[0].location, "line 2, [server] allow_plain_http");
    }

    #[test]
    fn future_versions_are_refused() {
        assert!(parse("version = 2").is_err());
    }
}
