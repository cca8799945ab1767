//! The function service's IO edge: FunctionGraph operations over the store (functions,
//! triggers, invocations, statistics) and the invoker that runs a built-in function and carries
//! out its effects with exactly the rights of its agency.
//!
//! The wire shapes are built here as `serde_json::Value`s so that `trailwatch-api` only maps
//! [`FssError`] to a status and passes bodies through.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value, json};
use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};
use trailwatch_iam::roles::Rights;
use trailwatch_iam::secret::SealKey;
use trailwatch_store::Store;
use trailwatch_store::functions::{self as db, FunctionRow, InvocationRow, StatsEvent, TriggerRow};

use crate::operations::OperationSet;
use crate::runtime::{Builtin, Context, Effect, Outcome, TriggerKind, builtin};
use crate::schedule::Schedule;
use crate::urn::FunctionRef;
use crate::user_data::UserData;

/// A FunctionGraph error: HTTP status, `FSS.xxxx` code and a message for the caller.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct FssError {
    pub status: u16,
    pub code: &'static str,
    pub message: String,
}

impl FssError {
    pub fn bad(message: impl Into<String>) -> Self {
        FssError {
            status: 400,
            code: "FSS.0400",
            message: message.into(),
        }
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        FssError {
            status: 404,
            code: "FSS.0404",
            message: message.into(),
        }
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        FssError {
            status: 409,
            code: "FSS.0409",
            message: message.into(),
        }
    }
    pub fn throttled(message: impl Into<String>) -> Self {
        FssError {
            status: 429,
            code: "FSS.0429",
            message: message.into(),
        }
    }
    pub fn internal(message: impl Into<String>) -> Self {
        FssError {
            status: 500,
            code: "FSS.0500",
            message: message.into(),
        }
    }
}

fn store_err(e: trailwatch_store::StoreError) -> FssError {
    match e {
        trailwatch_store::StoreError::Conflict(m) => FssError::conflict(m),
        trailwatch_store::StoreError::NotFound(m) => FssError::not_found(m),
        other => {
            tracing::error!(error = %other, "store failure (functions)");
            FssError::internal("The function store failed; the request was not completed")
        }
    }
}

/// The memory sizes FunctionGraph offers (MB).
const MEMORY_SIZES: [u32; 13] = [
    128, 256, 512, 768, 1024, 1280, 1536, 1792, 2048, 2560, 3072, 3584, 4096,
];
/// The runtimes this server can run. Other FunctionGraph runtimes are refused at create time.
pub const RUNTIMES: [&str; 5] = [
    "builtin",
    "Python3.9",
    "Python3.10",
    "Python3.11",
    "Python3.12",
];
/// Older Python 3 names FunctionGraph accepts; they run on the machine's Python 3 too, with a
/// note in the function's configuration.
const LEGACY_PYTHON3: [&str; 3] = ["Python3.6", "Python3.7", "Python3.8"];

/// How a function is implemented.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum RuntimeKind {
    Builtin,
    /// `Python3.x`, with the minor version named.
    Python(u32),
}

fn runtime_kind(runtime: &str) -> Result<RuntimeKind, FssError> {
    if runtime == "builtin" {
        return Ok(RuntimeKind::Builtin);
    }
    if (RUNTIMES.contains(&runtime) || LEGACY_PYTHON3.contains(&runtime))
        && let Some(minor) = runtime
            .strip_prefix("Python3.")
            .and_then(|m| m.parse::<u32>().ok())
    {
        return Ok(RuntimeKind::Python(minor));
    }
    if runtime.starts_with("Python2") {
        return Err(FssError::bad(format!(
            "runtime `{runtime}` is Python 2, which this server does not run (it reached its end of life in 2020); use one of {}",
            RUNTIMES[1..].join(", ")
        )));
    }
    Err(FssError::bad(format!(
        "runtime `{runtime}` is not available on this server; available: {}",
        RUNTIMES.join(", ")
    )))
}

/// Mints the short-lived credentials of a Python function's agency: arguments are the project
/// id, the agency name and the lifetime in ms; the answer is the agency token
/// (`context.getToken()`, an `X-Auth-Token`) and a temporary AK/SK with its security token
/// (`getSecurityAccessKey()`/… and the deprecated `getAccessKey()`/`getSecretKey()`), all valid
/// against this server only, or why the agency cannot be assumed.
pub type CredentialMinter = Arc<
    dyn Fn(
            String,
            String,
            i64,
        ) -> std::pin::Pin<
            Box<dyn Future<Output = Result<trailwatch_python::Credentials, String>> + Send>,
        > + Send
        + Sync,
>;

/// The Python runtime and what it needs from the server, installed with
/// [`FunctionService::set_python`].
pub struct PythonSetup {
    /// The runtime, or why it is not available (answered when a Python function is created).
    pub runtime: Result<Arc<trailwatch_python::PythonRuntime>, String>,
    /// Mints agency credentials for `context.getToken()` / `getSecurityAccessKey()` / ….
    pub minter: CredentialMinter,
}

impl std::fmt::Debug for PythonSetup {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PythonSetup")
            .field("runtime", &self.runtime)
            .finish_non_exhaustive()
    }
}
const MAX_DESCRIPTION: usize = 512;
const DEFAULT_MAX_INSTANCES: u32 = 100;
/// The last bytes of log kept per invocation record and returned with `X-Cff-Log-Type: tail`.
pub const LOG_TAIL_BYTES: usize = 4096;

/// The stored configuration of a function (`fgs_functions.config`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionSpec {
    pub func_name: String,
    pub package: String,
    pub runtime: String,
    pub handler: String,
    pub memory_size: u32,
    pub timeout: u32,
    /// The `user_data` JSON-object text as given ("" when none).
    pub user_data: String,
    pub xrole: Option<String>,
    pub app_xrole: Option<String>,
    pub description: String,
    pub code_type: String,
    pub max_instance_num: u32,
    /// Python: run once per worker before its first invocation (`module.function`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initializer_handler: Option<String>,
    /// Python: seconds the initializer may take (1–300).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub initializer_timeout: Option<u32>,
    /// Python: SHA-512 of the stored code package ("" for built-ins).
    #[serde(default)]
    pub code_digest: String,
    /// Python: size of the stored code package in bytes.
    #[serde(default)]
    pub code_size: u64,
}

/// Clock the engine reads: the system clock, or one that follows tokio's (paused) time in tests.
#[derive(Debug, Clone, Copy)]
pub enum Clock {
    System,
    /// Wall time = `base` + how far tokio's clock has moved since `started`.
    Tokio {
        base: DateTime<Utc>,
        started: tokio::time::Instant,
    },
}

impl Clock {
    pub fn following_tokio(base: DateTime<Utc>) -> Clock {
        Clock::Tokio {
            base,
            started: tokio::time::Instant::now(),
        }
    }

    pub fn now(&self) -> DateTime<Utc> {
        match self {
            Clock::System => Utc::now(),
            Clock::Tokio { base, started } => {
                let d = tokio::time::Instant::now().duration_since(*started);
                *base + chrono::TimeDelta::from_std(d).unwrap_or_default()
            }
        }
    }

    pub fn now_ms(&self) -> i64 {
        self.now().timestamp_millis()
    }
}

/// Looks up the rights an agency grants in a project (IAM owns agencies).
pub type RightsLookup = Arc<
    dyn Fn(String, String) -> std::pin::Pin<Box<dyn Future<Output = Result<Rights, String>> + Send>>
        + Send
        + Sync,
>;

/// Everything the service needs from the rest of the server.
pub struct FunctionServiceParts {
    pub store: Store,
    pub notifier: Arc<trailwatch_notify::service::Notifier>,
    pub objects: Arc<trailwatch_archive::Objects>,
    pub seal: SealKey,
    pub region: String,
    pub rights: RightsLookup,
    pub clock: Clock,
    /// Changes when LTS lines become durable (the LTS trigger waits on it).
    pub lts_head: Arc<tokio::sync::watch::Sender<u64>>,
}

impl std::fmt::Debug for FunctionServiceParts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionServiceParts")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// Counters for `/metrics`.
#[derive(Debug, Default)]
pub struct FunctionMetrics {
    pub invocations: std::sync::atomic::AtomicU64,
    pub failures: std::sync::atomic::AtomicU64,
    pub rejects: std::sync::atomic::AtomicU64,
}

/// FunctionGraph operations and the invoker.
pub struct FunctionService {
    pub(crate) store: Store,
    pub(crate) notifier: Arc<trailwatch_notify::service::Notifier>,
    objects: Arc<trailwatch_archive::Objects>,
    seal: SealKey,
    pub(crate) region: String,
    rights: RightsLookup,
    pub(crate) clock: Clock,
    /// Per function: its concurrency limit and the semaphore enforcing it.
    slots: Mutex<HashMap<String, (usize, Arc<Semaphore>)>>,
    pub metrics: FunctionMetrics,
    /// Woken when an async invocation is queued.
    pub(crate) async_wake: Notify,
    pub(crate) lts_head: Arc<tokio::sync::watch::Sender<u64>>,
    /// The Python runtime, once the server installed it.
    python: std::sync::OnceLock<PythonSetup>,
    /// `http://host:port` of this server, handed to Python functions as their endpoints.
    endpoint: std::sync::OnceLock<String>,
}

impl std::fmt::Debug for FunctionService {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FunctionService")
            .field("region", &self.region)
            .finish_non_exhaustive()
    }
}

/// A function ready to run: its row, configuration, merged user data and implementation.
#[derive(Clone)]
pub struct Loaded {
    pub row: FunctionRow,
    pub spec: FunctionSpec,
    pub fref: FunctionRef,
    pub user_data: UserData,
    /// The built-in implementation; `None` for a Python function.
    pub builtin: Option<&'static dyn Builtin>,
}

impl std::fmt::Debug for Loaded {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Loaded")
            .field("function_id", &self.row.function_id)
            .field("handler", &self.spec.handler)
            .finish_non_exhaustive()
    }
}

/// What one invocation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationResult {
    pub request_id: String,
    /// The function's result as a string (JSON text unless the function returned a string).
    pub result: String,
    pub log: String,
    /// 200 when the function succeeded, 500 when it failed or timed out.
    pub status: u16,
    pub duration_ms: f64,
}

impl InvocationResult {
    pub fn failed(&self) -> bool {
        self.status != 200
    }
}

fn format_trigger_time(ms: i64) -> String {
    DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%d %H:%M:%S").to_string())
        .unwrap_or_default()
}

fn str_field<'a>(m: &'a Map<String, Value>, key: &str) -> Result<Option<&'a str>, FssError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(other) => Err(FssError::bad(format!(
            "`{key}` must be a string, got {}",
            kind(other)
        ))),
    }
}

fn u32_field(m: &Map<String, Value>, key: &str) -> Result<Option<u32>, FssError> {
    match m.get(key) {
        None | Some(Value::Null) => Ok(None),
        Some(v) => v
            .as_u64()
            .and_then(|n| u32::try_from(n).ok())
            .map(Some)
            .ok_or_else(|| FssError::bad(format!("`{key}` must be a positive integer, got {v}"))),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

/// The last [`LOG_TAIL_BYTES`] of an invocation log (what records keep).
pub fn log_tail(s: &str) -> &str {
    tail(s, LOG_TAIL_BYTES)
}

/// Ends a string at most `max` bytes long at a character boundary, keeping the end.
pub fn tail(s: &str, max: usize) -> &str {
    if s.len() <= max {
        return s;
    }
    let mut start = s.len() - max;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

impl FunctionService {
    pub fn new(parts: FunctionServiceParts) -> FunctionService {
        FunctionService {
            store: parts.store,
            notifier: parts.notifier,
            objects: parts.objects,
            seal: parts.seal,
            region: parts.region,
            rights: parts.rights,
            clock: parts.clock,
            slots: Mutex::new(HashMap::new()),
            metrics: FunctionMetrics::default(),
            async_wake: Notify::new(),
            lts_head: parts.lts_head,
            python: std::sync::OnceLock::new(),
            endpoint: std::sync::OnceLock::new(),
        }
    }

    /// Installs the Python runtime (once; later calls are ignored).
    pub fn set_python(&self, setup: PythonSetup) {
        let _ = self.python.set(setup);
    }

    /// Sets the URL Python functions reach this server at (once).
    pub fn set_endpoint(&self, url: String) {
        let _ = self.endpoint.set(url);
    }

    fn python_runtime(&self) -> Result<&Arc<trailwatch_python::PythonRuntime>, String> {
        match self.python.get() {
            Some(PythonSetup {
                runtime: Ok(rt), ..
            }) => Ok(rt),
            Some(PythonSetup {
                runtime: Err(why), ..
            }) => Err(format!(
                "the Python runtime is not available on this server: {why}"
            )),
            None => Err("the Python runtime is not enabled on this server".into()),
        }
    }

    pub fn region(&self) -> &str {
        &self.region
    }

    // ---- functions ---------------------------------------------------------------------

    /// Validates a create or update body into a spec and the sealed encrypted user data.
    /// `base` is the current spec on update (fields not given keep their value).
    fn spec_from_body(
        &self,
        project_id: &str,
        body: &Value,
        base: Option<(&FunctionSpec, Option<&str>)>,
    ) -> Result<(FunctionSpec, Option<String>, UserData), FssError> {
        let Value::Object(m) = body else {
            return Err(FssError::bad(format!(
                "the body must be a JSON object, got {}",
                kind(body)
            )));
        };
        let (func_name, package) = match base {
            Some((b, _)) => (b.func_name.clone(), b.package.clone()),
            None => {
                let name = str_field(m, "func_name")?
                    .ok_or_else(|| FssError::bad("`func_name` is required"))?;
                let package = str_field(m, "package")?.unwrap_or("default");
                FunctionRef::new(project_id, package, name)
                    .map_err(|e| FssError::bad(e.to_string()))?;
                (name.to_owned(), package.to_owned())
            }
        };
        let pick_str = |key: &str, old: Option<&str>| -> Result<Option<String>, FssError> {
            Ok(str_field(m, key)?
                .map(str::to_owned)
                .or(old.map(str::to_owned)))
        };
        let runtime = pick_str("runtime", base.map(|(b, _)| b.runtime.as_str()))?
            .ok_or_else(|| FssError::bad("`runtime` is required"))?;
        let kind = runtime_kind(&runtime)?;
        if let RuntimeKind::Python(_) = kind {
            self.python_runtime().map_err(FssError::bad)?;
        }
        let handler = pick_str("handler", base.map(|(b, _)| b.handler.as_str()))?
            .ok_or_else(|| FssError::bad("`handler` is required"))?;
        let implementation = match kind {
            RuntimeKind::Builtin => Some(builtin(&handler).ok_or_else(|| {
                FssError::bad(format!(
                    "unknown handler `{handler}` for runtime builtin; built-in handlers: login_audit, log_alarm"
                ))
            })?),
            RuntimeKind::Python(_) => {
                trailwatch_python::check_handler(&handler).map_err(FssError::bad)?;
                None
            }
        };
        let memory_size = u32_field(m, "memory_size")?
            .or(base.map(|(b, _)| b.memory_size))
            .ok_or_else(|| FssError::bad("`memory_size` is required"))?;
        if !MEMORY_SIZES.contains(&memory_size) {
            return Err(FssError::bad(format!(
                "`memory_size` must be one of {MEMORY_SIZES:?} (MB), got {memory_size}"
            )));
        }
        let timeout = u32_field(m, "timeout")?
            .or(base.map(|(b, _)| b.timeout))
            .ok_or_else(|| FssError::bad("`timeout` is required"))?;
        if !(3..=900).contains(&timeout) {
            return Err(FssError::bad(format!(
                "`timeout` must be 3 to 900 seconds, got {timeout}"
            )));
        }
        let user_data_text =
            pick_str("user_data", base.map(|(b, _)| b.user_data.as_str()))?.unwrap_or_default();
        let mut user_data = if user_data_text.trim().is_empty() {
            UserData::new()
        } else {
            UserData::parse(&user_data_text)
                .map_err(|e| FssError::bad(format!("`user_data`: {e}")))?
        };
        // Encrypted user data: given in clear, stored sealed, never returned.
        let sealed = match str_field(m, "encrypted_user_data")? {
            Some(text) if !text.trim().is_empty() => {
                let enc = UserData::parse(text)
                    .map_err(|e| FssError::bad(format!("`encrypted_user_data`: {e}")))?;
                Some((self.seal_user_data(&enc), enc))
            }
            Some(_) => None,
            None => match base.and_then(|(_, s)| s) {
                Some(old) => Some((old.to_owned(), self.open_user_data(old)?)),
                None => None,
            },
        };
        let sealed_text = match sealed {
            Some((text, enc)) => {
                user_data = merge(&user_data, &enc)
                    .map_err(|e| FssError::bad(format!("user data: {e}")))?;
                Some(text)
            }
            None => None,
        };
        if let Some(implementation) = implementation {
            implementation
                .validate_config(&user_data)
                .map_err(|e| FssError::bad(format!("handler `{handler}`: {e}")))?;
        }
        let initializer_handler = pick_str(
            "initializer_handler",
            base.and_then(|(b, _)| b.initializer_handler.as_deref()),
        )?
        .filter(|s| !s.is_empty());
        if let Some(init) = &initializer_handler {
            if implementation.is_some() {
                return Err(FssError::bad(
                    "`initializer_handler` is only available for Python functions",
                ));
            }
            trailwatch_python::check_handler(init)
                .map_err(|e| FssError::bad(format!("`initializer_handler`: {e}")))?;
        }
        let initializer_timeout =
            u32_field(m, "initializer_timeout")?.or(base.and_then(|(b, _)| b.initializer_timeout));
        if let Some(t) = initializer_timeout
            && !(1..=300).contains(&t)
        {
            return Err(FssError::bad(format!(
                "`initializer_timeout` must be 1 to 300 seconds, got {t}"
            )));
        }
        let description =
            pick_str("description", base.map(|(b, _)| b.description.as_str()))?.unwrap_or_default();
        if description.chars().count() > MAX_DESCRIPTION {
            return Err(FssError::bad(format!(
                "`description` is longer than {MAX_DESCRIPTION} characters"
            )));
        }
        let xrole = pick_str("xrole", base.and_then(|(b, _)| b.xrole.as_deref()))?
            .filter(|s| !s.is_empty());
        let app_xrole = pick_str("app_xrole", base.and_then(|(b, _)| b.app_xrole.as_deref()))?
            .filter(|s| !s.is_empty());
        let code_type = pick_str("code_type", base.map(|(b, _)| b.code_type.as_str()))?
            .unwrap_or_else(|| "inline".into());
        let max_instance_num = u32_field(m, "max_instance_num")?
            .or(base.map(|(b, _)| b.max_instance_num))
            .unwrap_or(DEFAULT_MAX_INSTANCES);
        if !(1..=1000).contains(&max_instance_num) {
            return Err(FssError::bad(format!(
                "`max_instance_num` must be 1 to 1000, got {max_instance_num}"
            )));
        }
        Ok((
            FunctionSpec {
                func_name,
                package,
                runtime,
                handler,
                memory_size,
                timeout,
                user_data: user_data_text,
                xrole,
                app_xrole,
                description,
                code_type,
                max_instance_num,
                initializer_handler,
                initializer_timeout,
                code_digest: base.map(|(b, _)| b.code_digest.clone()).unwrap_or_default(),
                code_size: base.map(|(b, _)| b.code_size).unwrap_or_default(),
            },
            sealed_text,
            user_data,
        ))
    }

    fn seal_user_data(&self, data: &UserData) -> String {
        self.seal
            .seal(data.to_json_string().as_bytes(), b"fgs-encrypted-user-data")
    }

    fn open_user_data(&self, sealed: &str) -> Result<UserData, FssError> {
        let clear = self
            .seal
            .open(sealed, b"fgs-encrypted-user-data")
            .map_err(|_| {
                FssError::internal(
                    "the function's encrypted user data cannot be opened with this server's key",
                )
            })?;
        let text = String::from_utf8(clear)
            .map_err(|_| FssError::internal("the function's encrypted user data is corrupt"))?;
        UserData::parse(&text)
            .map_err(|_| FssError::internal("the function's encrypted user data is corrupt"))
    }

    pub fn function_view(&self, row: &FunctionRow, spec: &FunctionSpec) -> Value {
        let fref = FunctionRef {
            project_id: row.project_id.clone(),
            package: row.package.clone(),
            name: row.name.clone(),
            qualifier: None,
        };
        let last_modified = DateTime::from_timestamp_millis(row.updated_at)
            .map(|t| t.to_rfc3339_opts(SecondsFormat::Secs, false))
            .unwrap_or_default();
        json!({
            "func_id": row.function_id,
            "func_urn": fref.urn(&self.region),
            "func_name": spec.func_name,
            "namespace": row.project_id,
            "project_name": self.region,
            "package": spec.package,
            "runtime": spec.runtime,
            "handler": spec.handler,
            "memory_size": spec.memory_size,
            "cpu": spec.memory_size / 128 * 100 + 200,
            "timeout": spec.timeout,
            "code_type": spec.code_type,
            "code_size": spec.code_size,
            "digest": spec.code_digest,
            "initializer_handler": spec.initializer_handler,
            "initializer_timeout": spec.initializer_timeout,
            "runtime_note": self.runtime_note(&spec.runtime),
            "version": "latest",
            "user_data": spec.user_data,
            "encrypted_user_data": row.encrypted_user_data.as_ref().map(|_| "******"),
            "xrole": spec.xrole,
            "app_xrole": spec.app_xrole.clone().or_else(|| spec.xrole.clone()),
            "description": spec.description,
            "last_modified": last_modified,
            "strategy_config": {"concurrency": -1},
            "max_instance_num": spec.max_instance_num,
        })
    }

    /// For a Python runtime whose version differs from the server's interpreter: what runs it.
    fn runtime_note(&self, runtime: &str) -> Option<String> {
        let RuntimeKind::Python(minor) = runtime_kind(runtime).ok()? else {
            return None;
        };
        let rt = self.python_runtime().ok()?;
        let version = rt.interpreter().version;
        (version != (3, minor)).then(|| {
            format!(
                "{runtime} runs on this server's Python {}.{} ({})",
                version.0,
                version.1,
                rt.interpreter().executable.display()
            )
        })
    }

    /// The code package in a create or update-code body (`func_code.file`, base64; `code_type`
    /// `zip` (default) or `inline`), checked against the handler.
    fn code_from_body(
        body: &Value,
        handler: &str,
    ) -> Result<Option<trailwatch_python::Code>, FssError> {
        use base64::Engine as _;
        let Some(fc) = body.get("func_code").filter(|v| !v.is_null()) else {
            return Ok(None);
        };
        let Value::Object(fc) = fc else {
            return Err(FssError::bad(format!(
                "`func_code` must be an object, got {}",
                kind(fc)
            )));
        };
        let file = str_field(fc, "file")?.filter(|f| !f.trim().is_empty());
        let Some(file) = file else {
            if str_field(fc, "link")?.is_some_and(|l| !l.is_empty()) {
                return Err(FssError::bad(
                    "code from `func_code.link` (OBS) is not supported by this server; send the zip as base64 in `func_code.file`",
                ));
            }
            return Ok(None);
        };
        let code_type = match body.get("code_type") {
            None | Some(Value::Null) => "zip",
            Some(Value::String(s)) => s.as_str(),
            Some(other) => {
                return Err(FssError::bad(format!(
                    "`code_type` must be a string, got {}",
                    kind(other)
                )));
            }
        };
        let kind = trailwatch_python::CodeKind::parse(code_type).ok_or_else(|| {
            FssError::bad(format!(
                "`code_type` `{code_type}` is not supported by this server; use `zip` or `inline`"
            ))
        })?;
        let cleaned: String = file.chars().filter(|c| !c.is_ascii_whitespace()).collect();
        let bytes = base64::engine::general_purpose::STANDARD
            .decode(cleaned.as_bytes())
            .map_err(|e| FssError::bad(format!("`func_code.file` is not valid base64: {e}")))?;
        let code = trailwatch_python::Code { kind, bytes };
        code.validate(handler).map_err(FssError::bad)?;
        Ok(Some(code))
    }

    pub async fn create_function(&self, project_id: &str, body: &Value) -> Result<Value, FssError> {
        let (mut spec, sealed, _) = self.spec_from_body(project_id, body, None)?;
        let code = match runtime_kind(&spec.runtime)? {
            RuntimeKind::Builtin => None,
            RuntimeKind::Python(_) => {
                let code = Self::code_from_body(body, &spec.handler)?.ok_or_else(|| {
                    FssError::bad(format!(
                        "runtime {} needs code: send the zip package as base64 in `func_code.file` (or `code_type` `inline` with the source)",
                        spec.runtime
                    ))
                })?;
                spec.code_digest = code.digest();
                spec.code_size = code.bytes.len() as u64;
                spec.code_type = code.kind.as_str().to_owned();
                Some(code)
            }
        };
        let now = self.clock.now_ms();
        let row = FunctionRow {
            function_id: uuid::Uuid::new_v4().to_string(),
            project_id: project_id.to_owned(),
            package: spec.package.clone(),
            name: spec.func_name.clone(),
            config: serde_json::to_string(&spec).map_err(|e| FssError::internal(e.to_string()))?,
            encrypted_user_data: sealed,
            created_at: now,
            updated_at: now,
        };
        let stored = row.clone();
        let code_row = code.map(|code| db::CodeRow {
            kind: code.kind.as_str().to_owned(),
            digest: spec.code_digest.clone(),
            code: code.bytes,
            updated_at: now,
        });
        self.store
            .write(move |c| {
                db::create_function(c, &stored)?;
                if let Some(code) = &code_row {
                    db::put_code(c, &stored.function_id, code)?;
                }
                Ok(())
            })
            .await
            .map_err(store_err)?;
        Ok(self.function_view(&row, &spec))
    }

    /// `PUT …/functions/{urn}/code`: replaces a Python function's code package. Workers roll
    /// over to it: new invocations start on the new code, running ones finish on the old.
    pub async fn update_code(
        &self,
        project_id: &str,
        urn: &str,
        body: &Value,
    ) -> Result<Value, FssError> {
        let f = self.lookup(project_id, urn).await?;
        if f.builtin.is_some() {
            return Err(FssError::bad(
                "a built-in function has no code package; only Python functions take code",
            ));
        }
        let code = Self::code_from_body(body, &f.spec.handler)?.ok_or_else(|| {
            FssError::bad("`func_code.file` (the base64 zip package) is required")
        })?;
        let mut spec = f.spec.clone();
        spec.code_digest = code.digest();
        spec.code_size = code.bytes.len() as u64;
        spec.code_type = code.kind.as_str().to_owned();
        let config = serde_json::to_string(&spec).map_err(|e| FssError::internal(e.to_string()))?;
        let now = self.clock.now_ms();
        let id = f.row.function_id.clone();
        let sealed = f.row.encrypted_user_data.clone();
        let row = db::CodeRow {
            kind: code.kind.as_str().to_owned(),
            digest: spec.code_digest.clone(),
            code: code.bytes,
            updated_at: now,
        };
        self.store
            .write(move |c| {
                db::update_function(c, &id, &config, sealed.as_deref(), now)?;
                db::put_code(c, &id, &row)
            })
            .await
            .map_err(store_err)?;
        let mut row = f.row;
        row.updated_at = now;
        Ok(self.code_view(&row, &spec, None))
    }

    /// `GET …/functions/{urn}/code`: the code package (base64) and its digest.
    pub async fn get_code(&self, project_id: &str, urn: &str) -> Result<Value, FssError> {
        use base64::Engine as _;
        let f = self.lookup(project_id, urn).await?;
        let id = f.row.function_id.clone();
        let code = self
            .store
            .read(move |c| db::code(c, &id))
            .await
            .map_err(store_err)?;
        let file = code.map(|c| base64::engine::general_purpose::STANDARD.encode(c.code));
        Ok(self.code_view(&f.row, &f.spec, file))
    }

    fn code_view(&self, row: &FunctionRow, spec: &FunctionSpec, file: Option<String>) -> Value {
        let mut v = self.function_view(row, spec);
        v["func_code"] = json!({"file": file.unwrap_or_default(), "link": ""});
        v
    }

    /// Resolves an API path's function reference to its row and spec.
    pub async fn lookup(&self, project_id: &str, urn: &str) -> Result<Loaded, FssError> {
        let row = self.lookup_row(project_id, urn).await?;
        self.load(row)
    }

    /// The stored row of an API path's function, without opening it (so a function whose
    /// configuration or encrypted data cannot be read can still be listed and deleted).
    async fn lookup_row(&self, project_id: &str, urn: &str) -> Result<FunctionRow, FssError> {
        let fref = FunctionRef::resolve(urn, project_id, &self.region)
            .map_err(|e| FssError::bad(e.to_string()))?;
        let (pid, pkg, name) = (
            fref.project_id.clone(),
            fref.package.clone(),
            fref.name.clone(),
        );
        let row = self
            .store
            .read(move |c| db::function(c, &pid, &pkg, &name))
            .await
            .map_err(store_err)?
            .ok_or_else(|| {
                FssError::not_found(format!(
                    "function {}:{} does not exist in this project",
                    fref.package, fref.name
                ))
            })?;
        Ok(row)
    }

    /// Parses a stored function into something runnable.
    pub fn load(&self, row: FunctionRow) -> Result<Loaded, FssError> {
        let spec: FunctionSpec = serde_json::from_str(&row.config).map_err(|e| {
            FssError::internal(format!("stored function configuration is corrupt: {e}"))
        })?;
        let mut user_data = if spec.user_data.trim().is_empty() {
            UserData::new()
        } else {
            UserData::parse(&spec.user_data)
                .map_err(|e| FssError::internal(format!("stored user data is corrupt: {e}")))?
        };
        if let Some(sealed) = &row.encrypted_user_data {
            let enc = self.open_user_data(sealed)?;
            user_data = merge(&user_data, &enc).map_err(FssError::internal)?;
        }
        let implementation = match runtime_kind(&spec.runtime) {
            Ok(RuntimeKind::Builtin) => Some(builtin(&spec.handler).ok_or_else(|| {
                FssError::internal(format!("handler `{}` is no longer available", spec.handler))
            })?),
            Ok(RuntimeKind::Python(_)) => None,
            Err(e) => {
                return Err(FssError::internal(format!(
                    "stored runtime is no longer available: {}",
                    e.message
                )));
            }
        };
        let fref = FunctionRef {
            project_id: row.project_id.clone(),
            package: row.package.clone(),
            name: row.name.clone(),
            qualifier: None,
        };
        Ok(Loaded {
            row,
            spec,
            fref,
            user_data,
            builtin: implementation,
        })
    }

    pub async fn get_config(&self, project_id: &str, urn: &str) -> Result<Value, FssError> {
        let f = self.lookup(project_id, urn).await?;
        Ok(self.function_view(&f.row, &f.spec))
    }

    pub async fn update_config(
        &self,
        project_id: &str,
        urn: &str,
        body: &Value,
    ) -> Result<Value, FssError> {
        let f = self.lookup(project_id, urn).await?;
        // Code changes go through their own API, so a config update never half-replaces code.
        if body.get("func_code").is_some_and(|v| !v.is_null()) {
            return Err(FssError::bad(
                "`func_code` cannot be changed with the configuration; use PUT …/functions/{urn}/code",
            ));
        }
        let (mut spec, sealed, _) = self.spec_from_body(
            project_id,
            body,
            Some((&f.spec, f.row.encrypted_user_data.as_deref())),
        )?;
        if !f.spec.code_digest.is_empty() {
            // The stored package decides its code type, not a configuration field.
            spec.code_type = f.spec.code_type.clone();
        }
        if matches!(runtime_kind(&spec.runtime)?, RuntimeKind::Python(_))
            && spec.code_digest.is_empty()
        {
            return Err(FssError::bad(format!(
                "runtime {} needs code: upload it first with PUT …/functions/{{urn}}/code",
                spec.runtime
            )));
        }
        let config = serde_json::to_string(&spec).map_err(|e| FssError::internal(e.to_string()))?;
        let now = self.clock.now_ms();
        let id = f.row.function_id.clone();
        let sealed_stored = sealed.clone();
        self.store
            .write(move |c| db::update_function(c, &id, &config, sealed_stored.as_deref(), now))
            .await
            .map_err(store_err)?;
        let mut row = f.row;
        row.updated_at = now;
        row.encrypted_user_data = sealed;
        Ok(self.function_view(&row, &spec))
    }

    pub async fn delete_function(&self, project_id: &str, urn: &str) -> Result<(), FssError> {
        let row = self.lookup_row(project_id, urn).await?;
        let id = row.function_id.clone();
        let fid = id.clone();
        let triggers = self
            .store
            .read(move |c| db::triggers_of(c, &fid))
            .await
            .map_err(store_err)?;
        for t in &triggers {
            self.unsubscribe_smn_trigger(project_id, t).await;
        }
        self.store
            .write(move |c| db::delete_function(c, &id))
            .await
            .map_err(store_err)?;
        if let Ok(mut slots) = self.slots.lock() {
            slots.remove(&row.function_id);
        }
        if let Ok(rt) = self.python_runtime() {
            rt.forget(&row.function_id);
        }
        Ok(())
    }

    /// `GET /v2/{pid}/fgs/functions?marker=&maxitems=`.
    pub async fn list_functions(
        &self,
        project_id: &str,
        marker: u64,
        maxitems: u64,
    ) -> Result<Value, FssError> {
        if !(1..=400).contains(&maxitems) {
            return Err(FssError::bad(format!(
                "`maxitems` must be 1 to 400, got {maxitems}"
            )));
        }
        let pid = project_id.to_owned();
        let (rows, total) = self
            .store
            .read(move |c| db::list_functions(c, &pid, marker, maxitems))
            .await
            .map_err(store_err)?;
        let mut list = Vec::with_capacity(rows.len());
        for row in &rows {
            // A function that cannot be opened is still listed (so it can be deleted).
            match serde_json::from_str::<FunctionSpec>(&row.config) {
                Ok(spec) => list.push(self.function_view(row, &spec)),
                Err(_) => list.push(json!({
                    "func_id": row.function_id, "func_name": row.name, "package": row.package,
                    "namespace": row.project_id, "status": "error",
                    "error_msg": "the stored configuration cannot be read",
                })),
            }
        }
        let next = marker + rows.len() as u64;
        Ok(json!({
            "functions": list,
            "next_marker": if next < total { next } else { 0 },
            "count": total,
        }))
    }

    // ---- triggers ----------------------------------------------------------------------

    pub fn trigger_view(&self, t: &TriggerRow) -> Value {
        let event_data: Value = serde_json::from_str(&t.event_data).unwrap_or_else(|_| json!({}));
        json!({
            "trigger_id": t.trigger_id,
            "trigger_type_code": t.type_code,
            "trigger_status": t.status,
            "event_type_code": t.event_type_code,
            "event_data": event_data,
            "last_updated_time": format_trigger_time(t.updated_at),
            "created_time": format_trigger_time(t.created_at),
        })
    }

    /// Checks a trigger's `event_data` for its type; returns it normalised.
    async fn check_event_data(
        &self,
        project_id: &str,
        type_code: &str,
        event_data: &Value,
    ) -> Result<Value, FssError> {
        let Value::Object(m) = event_data else {
            return Err(FssError::bad(format!(
                "`event_data` must be an object, got {}",
                kind(event_data)
            )));
        };
        match type_code {
            "CTS" => {
                let ops = m.get("operations").ok_or_else(|| {
                    FssError::bad("CTS trigger: `event_data.operations` is required")
                })?;
                OperationSet::from_value(ops)
                    .map_err(|e| FssError::bad(format!("CTS trigger: {e}")))?;
                str_field(m, "name")?;
                Ok(event_data.clone())
            }
            "TIMER" => {
                let schedule_type = str_field(m, "schedule_type")?.ok_or_else(|| {
                    FssError::bad("TIMER trigger: `event_data.schedule_type` is required")
                })?;
                let schedule = str_field(m, "schedule")?.ok_or_else(|| {
                    FssError::bad("TIMER trigger: `event_data.schedule` is required")
                })?;
                Schedule::parse(schedule_type, schedule)
                    .map_err(|e| FssError::bad(format!("TIMER trigger: {e}")))?;
                str_field(m, "name")?;
                str_field(m, "user_event")?;
                Ok(event_data.clone())
            }
            "LTS" => {
                let group = str_field(m, "log_group_id")?
                    .ok_or_else(|| {
                        FssError::bad("LTS trigger: `event_data.log_group_id` is required")
                    })?
                    .to_owned();
                let stream = str_field(m, "log_topic_id")?
                    .ok_or_else(|| {
                        FssError::bad("LTS trigger: `event_data.log_topic_id` is required")
                    })?
                    .to_owned();
                let (pid, g, s) = (project_id.to_owned(), group.clone(), stream.clone());
                let found = self
                    .store
                    .read(move |c| {
                        Ok((
                            trailwatch_store::lts::group(c, &pid, &g)?,
                            trailwatch_store::lts::stream(c, &pid, &g, &s)?,
                        ))
                    })
                    .await
                    .map_err(store_err)?;
                let (Some(g), Some(s)) = found else {
                    return Err(FssError::not_found(format!(
                        "LTS trigger: log group `{group}` with log stream `{stream}` does not exist in this project"
                    )));
                };
                let mut out = m.clone();
                out.insert("log_group_name".into(), Value::String(g.name));
                out.insert("log_topic_name".into(), Value::String(s.name));
                Ok(Value::Object(out))
            }
            "SMN" => {
                let topic = str_field(m, "topic_urn")?.ok_or_else(|| {
                    FssError::bad("SMN trigger: `event_data.topic_urn` is required")
                })?;
                self.notifier
                    .get_topic(project_id, topic)
                    .await
                    .map_err(|e| FssError::not_found(format!("SMN trigger: {}", e.message)))?;
                Ok(json!({"topic_urn": topic}))
            }
            other => Err(FssError::bad(format!(
                "trigger type `{other}` is not supported by this server; supported: CTS, LTS, TIMER, SMN"
            ))),
        }
    }

    pub async fn create_trigger(
        &self,
        project_id: &str,
        urn: &str,
        body: &Value,
    ) -> Result<Value, FssError> {
        let f = self.lookup(project_id, urn).await?;
        let Value::Object(m) = body else {
            return Err(FssError::bad("the body must be a JSON object"));
        };
        let type_code = str_field(m, "trigger_type_code")?
            .ok_or_else(|| FssError::bad("`trigger_type_code` is required"))?
            .to_owned();
        let status = str_field(m, "trigger_status")?
            .unwrap_or("ACTIVE")
            .to_owned();
        if !matches!(status.as_str(), "ACTIVE" | "DISABLED") {
            return Err(FssError::bad(format!(
                "`trigger_status` must be ACTIVE or DISABLED, got `{status}`"
            )));
        }
        let event_type_code = str_field(m, "event_type_code")?.unwrap_or("").to_owned();
        let event_data = m
            .get("event_data")
            .ok_or_else(|| FssError::bad("`event_data` is required"))?;
        let mut event_data = self
            .check_event_data(project_id, &type_code, event_data)
            .await?;
        if type_code == "SMN" {
            // One trigger per topic and function: a second would share (and on deletion remove)
            // the first one's subscription.
            let topic = event_data["topic_urn"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let fid = f.row.function_id.clone();
            let existing = self
                .store
                .read(move |c| db::triggers_of(c, &fid))
                .await
                .map_err(store_err)?;
            if existing.iter().any(|t| {
                t.type_code == "SMN"
                    && serde_json::from_str::<Value>(&t.event_data)
                        .is_ok_and(|ed| ed["topic_urn"] == topic.as_str())
            }) {
                return Err(FssError::conflict(format!(
                    "this function already has an SMN trigger on {topic}"
                )));
            }
            if status != "ACTIVE" {
                return Err(FssError::bad(
                    "SMN triggers cannot be disabled; create it ACTIVE",
                ));
            }
            // The trigger is a functionstage subscription of the topic (confirmed at once).
            let topic = event_data["topic_urn"]
                .as_str()
                .unwrap_or_default()
                .to_owned();
            let (sub, _, _) = self
                .notifier
                .subscribe(
                    project_id,
                    &topic,
                    "functionstage",
                    &f.fref.urn(&self.region),
                    "FunctionGraph SMN trigger",
                    None,
                )
                .await
                .map_err(|e| FssError::bad(format!("SMN trigger: {}", e.message)))?;
            event_data["subscription_urn"] = json!(sub.to_string());
            event_data["subscription_status"] = json!("Confirmed");
        }
        let now = self.clock.now_ms();
        let row = TriggerRow {
            trigger_id: uuid::Uuid::new_v4().to_string(),
            function_id: f.row.function_id.clone(),
            project_id: project_id.to_owned(),
            type_code: type_code.clone(),
            status,
            event_type_code,
            event_data: event_data.to_string(),
            created_at: now,
            updated_at: now,
        };
        let stored = row.clone();
        let lts_stream = event_data
            .get("log_topic_id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        self.store
            .write(move |c| {
                db::create_trigger(c, &stored)?;
                match stored.type_code.as_str() {
                    // Start at the head: a new trigger sees what arrives after it.
                    "CTS" => {
                        let head: i64 =
                            c.query_row("SELECT COALESCE(MAX(seq), 0) FROM traces", [], |r| {
                                r.get(0)
                            })?;
                        trailwatch_store::set_cursor(
                            c,
                            &cts_cursor(&stored.trigger_id),
                            head as u64,
                        )?;
                    }
                    "LTS" => {
                        if let Some(s) = &lts_stream {
                            let head = trailwatch_store::lts::stream_head(c, s)?;
                            trailwatch_store::set_position(
                                c,
                                &lts_cursor(&stored.trigger_id),
                                head,
                            )?;
                        }
                    }
                    "TIMER" => db::set_timer_last_tick(c, &stored.trigger_id, now)?,
                    _ => {}
                }
                Ok(())
            })
            .await
            .map_err(store_err)?;
        Ok(self.trigger_view(&row))
    }

    pub async fn list_triggers(&self, project_id: &str, urn: &str) -> Result<Value, FssError> {
        let f = self.lookup(project_id, urn).await?;
        let id = f.row.function_id.clone();
        let rows = self
            .store
            .read(move |c| db::triggers_of(c, &id))
            .await
            .map_err(store_err)?;
        Ok(Value::Array(
            rows.iter().map(|t| self.trigger_view(t)).collect(),
        ))
    }

    async fn find_trigger(
        &self,
        project_id: &str,
        urn: &str,
        type_code: &str,
        trigger_id: &str,
    ) -> Result<(Loaded, TriggerRow), FssError> {
        let f = self.lookup(project_id, urn).await?;
        let (fid, tid) = (f.row.function_id.clone(), trigger_id.to_owned());
        let t = self
            .store
            .read(move |c| db::trigger(c, &fid, &tid))
            .await
            .map_err(store_err)?
            .filter(|t| t.type_code == type_code)
            .ok_or_else(|| {
                FssError::not_found(format!(
                    "{type_code} trigger `{trigger_id}` does not exist for this function"
                ))
            })?;
        Ok((f, t))
    }

    pub async fn get_trigger(
        &self,
        project_id: &str,
        urn: &str,
        type_code: &str,
        trigger_id: &str,
    ) -> Result<Value, FssError> {
        let (_, t) = self
            .find_trigger(project_id, urn, type_code, trigger_id)
            .await?;
        Ok(self.trigger_view(&t))
    }

    pub async fn update_trigger(
        &self,
        project_id: &str,
        urn: &str,
        type_code: &str,
        trigger_id: &str,
        body: &Value,
    ) -> Result<Value, FssError> {
        let (_, mut t) = self
            .find_trigger(project_id, urn, type_code, trigger_id)
            .await?;
        let Value::Object(m) = body else {
            return Err(FssError::bad("the body must be a JSON object"));
        };
        if type_code == "SMN" {
            if str_field(m, "trigger_status")?.is_some_and(|s| s != "ACTIVE") {
                return Err(FssError::bad(
                    "SMN triggers cannot be disabled; delete the trigger instead",
                ));
            }
            if m.get("event_data").is_some_and(|v| !v.is_null()) {
                return Err(FssError::bad(
                    "an SMN trigger's topic cannot be changed; delete the trigger and create another",
                ));
            }
        }
        if let Some(status) = str_field(m, "trigger_status")? {
            if !matches!(status, "ACTIVE" | "DISABLED") {
                return Err(FssError::bad(format!(
                    "`trigger_status` must be ACTIVE or DISABLED, got `{status}`"
                )));
            }
            t.status = status.to_owned();
        }
        if let Some(ed) = m.get("event_data").filter(|v| !v.is_null()) {
            t.event_data = self
                .check_event_data(project_id, type_code, ed)
                .await?
                .to_string();
        }
        t.updated_at = self.clock.now_ms();
        let stored = t.clone();
        self.store
            .write(move |c| {
                db::update_trigger(
                    c,
                    &stored.trigger_id,
                    &stored.status,
                    &stored.event_data,
                    stored.updated_at,
                )
            })
            .await
            .map_err(store_err)?;
        Ok(self.trigger_view(&t))
    }

    pub async fn delete_trigger(
        &self,
        project_id: &str,
        urn: &str,
        type_code: &str,
        trigger_id: &str,
    ) -> Result<(), FssError> {
        let (f, t) = self
            .find_trigger(project_id, urn, type_code, trigger_id)
            .await?;
        self.unsubscribe_smn_trigger(project_id, &t).await;
        let fid = f.row.function_id;
        self.store
            .write(move |c| db::delete_trigger(c, &fid, &t.trigger_id))
            .await
            .map_err(store_err)?;
        Ok(())
    }

    /// Removes the functionstage subscription behind an SMN trigger (already gone is fine).
    async fn unsubscribe_smn_trigger(&self, project_id: &str, t: &TriggerRow) {
        if t.type_code != "SMN" {
            return;
        }
        let ed: Value = serde_json::from_str(&t.event_data).unwrap_or_default();
        if let Some(sub) = ed.get("subscription_urn").and_then(Value::as_str)
            && let Err(e) = self.notifier.unsubscribe(project_id, sub).await
        {
            tracing::info!(subscription = sub, error = %e.message, "SMN trigger's subscription was already gone");
        }
    }

    pub async fn delete_all_triggers(&self, project_id: &str, urn: &str) -> Result<(), FssError> {
        let f = self.lookup(project_id, urn).await?;
        let fid = f.row.function_id.clone();
        let id = fid.clone();
        let triggers = self
            .store
            .read(move |c| db::triggers_of(c, &id))
            .await
            .map_err(store_err)?;
        for t in &triggers {
            self.unsubscribe_smn_trigger(project_id, t).await;
        }
        self.store
            .write(move |c| {
                for t in db::triggers_of(c, &fid)? {
                    db::delete_trigger(c, &fid, &t.trigger_id)?;
                }
                Ok(())
            })
            .await
            .map_err(store_err)?;
        Ok(())
    }

    // ---- invocation --------------------------------------------------------------------

    fn slots(&self, f: &Loaded) -> Arc<Semaphore> {
        let mut slots = match self.slots.lock() {
            Ok(s) => s,
            Err(poisoned) => poisoned.into_inner(),
        };
        let limit = f.spec.max_instance_num as usize;
        let entry = slots
            .entry(f.row.function_id.clone())
            .or_insert_with(|| (limit, Arc::new(Semaphore::new(limit))));
        // A changed `max_instance_num` takes effect at once: runs holding the old semaphore's
        // permits finish, new ones count against the new limit.
        if entry.0 != limit {
            *entry = (limit, Arc::new(Semaphore::new(limit)));
        }
        entry.1.clone()
    }

    /// Takes a concurrency slot; `wait` false answers a throttle (counted as a reject) when the
    /// function is at its limit.
    pub async fn slot(&self, f: &Loaded, wait: bool) -> Result<OwnedSemaphorePermit, FssError> {
        let sem = self.slots(f);
        let permit = if wait {
            sem.acquire_owned().await.ok()
        } else {
            sem.try_acquire_owned().ok()
        };
        match permit {
            Some(p) => Ok(p),
            None => {
                self.metrics
                    .rejects
                    .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                let id = f.row.function_id.clone();
                let now = self.clock.now_ms();
                let _ = self
                    .store
                    .write(move |c| db::record_stats(c, &id, now, StatsEvent::Rejected))
                    .await;
                Err(FssError::throttled(format!(
                    "function {}:{} is at its limit of {} concurrent invocations",
                    f.spec.package, f.spec.func_name, f.spec.max_instance_num
                )))
            }
        }
    }

    /// Runs a function once (the caller holds a slot): decides, carries out the effects within
    /// the timeout, and returns the outcome. Nothing is recorded here (see [`Self::record`]).
    pub async fn execute(
        &self,
        f: &Loaded,
        trigger: TriggerKind,
        event: &Value,
        request_id: &str,
    ) -> InvocationResult {
        let Some(implementation) = f.builtin else {
            return self.execute_python(f, event, request_id).await;
        };
        let started = Instant::now();
        let timeout = std::time::Duration::from_secs(u64::from(f.spec.timeout));
        let ctx = Context {
            request_id: request_id.to_owned(),
            project_id: f.row.project_id.clone(),
            function: f.fref.clone(),
            user_data: f.user_data.clone(),
            now: self.clock.now(),
            remaining_ms: timeout.as_millis() as u64,
            trigger,
        };
        let mut log = vec![format!(
            "{} Start invoke request '{request_id}', version: latest",
            self.clock
                .now()
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        )];
        let outcome: Outcome = implementation.invoke(&ctx, event);
        log.extend(outcome.log.iter().cloned());
        let mut result = outcome.result;
        if result.is_ok() && !outcome.effects.is_empty() {
            let remaining = timeout.saturating_sub(started.elapsed());
            match tokio::time::timeout(remaining, self.apply_effects(f, &outcome.effects, &mut log))
                .await
            {
                Ok(Ok(())) => {}
                Ok(Err(e)) => result = Err(e),
                Err(_) => {
                    result = Err(format!(
                        "the invocation timed out after {} s while carrying out its effects",
                        f.spec.timeout
                    ))
                }
            }
        }
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let (status, result_text) = match &result {
            Ok(Value::String(s)) => (200, s.clone()),
            Ok(v) => (200, v.to_string()),
            Err(e) => {
                log.push(format!("ERROR {e}"));
                (500, json!({"errorMessage": e}).to_string())
            }
        };
        log.push(format!(
            "{} Finish invoke request '{request_id}', duration: {duration_ms:.3}ms, billing duration: {}ms, memory used: 0MB, billing memory: {}MB",
            self.clock.now().to_rfc3339_opts(SecondsFormat::Millis, true),
            duration_ms.ceil() as u64,
            f.spec.memory_size
        ));
        InvocationResult {
            request_id: request_id.to_owned(),
            result: result_text,
            log: log.join("\n"),
            status,
            duration_ms,
        }
    }

    /// The environment of a Python function's workers (FunctionGraph's `RUNTIME_*` variables,
    /// its user data, and this server's endpoints). Nothing else of the server's environment
    /// reaches the worker.
    fn python_env(&self, f: &Loaded) -> Vec<(String, String)> {
        let spec = &f.spec;
        let endpoint = self.endpoint.get().cloned().unwrap_or_default();
        let mut env: Vec<(String, String)> = vec![
            ("RUNTIME_FUNC_NAME".into(), spec.func_name.clone()),
            ("RUNTIME_PACKAGE".into(), spec.package.clone()),
            ("RUNTIME_PROJECT_ID".into(), f.row.project_id.clone()),
            ("RUNTIME_FUNC_VERSION".into(), "latest".into()),
            ("RUNTIME_MEMORY".into(), spec.memory_size.to_string()),
            (
                "RUNTIME_CPU".into(),
                (spec.memory_size / 128 * 100 + 200).to_string(),
            ),
            ("RUNTIME_TIMEOUT".into(), spec.timeout.to_string()),
            ("RUNTIME_HANDLER".into(), spec.handler.clone()),
            ("RUNTIME_USERDATA".into(), f.user_data.to_json_string()),
            ("RUNTIME_REGION".into(), self.region.clone()),
            ("TRAILWATCH_ENDPOINT".into(), endpoint.clone()),
            ("SMN_ENDPOINT".into(), endpoint.clone()),
            ("CTS_ENDPOINT".into(), endpoint.clone()),
            ("FUNCTIONGRAPH_ENDPOINT".into(), endpoint),
        ];
        // FunctionGraph also exposes environment variables (user data) as process environment;
        // they cannot replace the runtime's own variables.
        let reserved = |k: &str| {
            k.starts_with("RUNTIME_")
                || k.starts_with("TRAILWATCH_")
                || k.ends_with("_ENDPOINT")
                || matches!(k, "PATH" | "HOME" | "TMPDIR" | "LANG")
                || k.starts_with("PYTHON")
                || k.starts_with("LD_")
        };
        for (k, v) in f.user_data.iter() {
            if !reserved(k) && !k.contains('=') && !k.contains('\0') && !v.contains('\0') {
                env.push((k.to_owned(), v.to_owned()));
            }
        }
        env
    }

    /// Runs a Python function once (the caller holds a slot).
    async fn execute_python(
        &self,
        f: &Loaded,
        event: &Value,
        request_id: &str,
    ) -> InvocationResult {
        let started = Instant::now();
        let now = || {
            self.clock
                .now()
                .to_rfc3339_opts(SecondsFormat::Millis, true)
        };
        let mut log = vec![format!(
            "{} Start invoke request '{request_id}', version: latest",
            now()
        )];
        let timeout = std::time::Duration::from_secs(u64::from(f.spec.timeout));
        let result: Result<Value, String> = match self.python_runtime() {
            Err(e) => {
                log.push(format!("ERROR {e}"));
                Err(e)
            }
            Ok(rt) => match self.python_credentials(f).await {
                Err(e) => {
                    log.push(format!("ERROR {e}"));
                    Err(e)
                }
                Ok(credentials) => {
                    let setup = trailwatch_python::FunctionSetup {
                        function_id: f.row.function_id.clone(),
                        code_digest: f.spec.code_digest.clone(),
                        handler: f.spec.handler.clone(),
                        initializer: f.spec.initializer_handler.clone(),
                        initializer_timeout: std::time::Duration::from_secs(u64::from(
                            f.spec.initializer_timeout.unwrap_or(f.spec.timeout),
                        )),
                        memory_mb: f.spec.memory_size,
                        max_workers: f.spec.max_instance_num as usize,
                        env: self.python_env(f),
                    };
                    let invocation = trailwatch_python::Invocation {
                        request_id: request_id.to_owned(),
                        event: event.clone(),
                        timeout,
                        credentials,
                        alias: String::new(),
                    };
                    let store = self.store.clone();
                    let id = f.row.function_id.clone();
                    let load = move || async move {
                        let row = store
                            .read(move |c| db::code(c, &id))
                            .await
                            .map_err(|e| format!("loading the code package failed: {e}"))?
                            .ok_or_else(|| "the function has no code package".to_owned())?;
                        let kind = trailwatch_python::CodeKind::parse(&row.kind)
                            .ok_or_else(|| format!("stored code kind `{}` is unknown", row.kind))?;
                        Ok(trailwatch_python::Code {
                            kind,
                            bytes: row.code,
                        })
                    };
                    let outcome = rt.invoke(&setup, load, &invocation).await;
                    if !outcome.log.is_empty() {
                        log.push(outcome.log.trim_end().to_owned());
                    }
                    outcome.result
                }
            },
        };
        let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
        let (status, result_text) = match &result {
            Ok(Value::String(s)) => (200, s.clone()),
            Ok(v) => (200, v.to_string()),
            Err(e) => (500, json!({"errorMessage": e}).to_string()),
        };
        log.push(format!(
            "{} Finish invoke request '{request_id}', duration: {duration_ms:.3}ms, billing duration: {}ms, memory used: 0MB, billing memory: {}MB",
            now(),
            duration_ms.ceil() as u64,
            f.spec.memory_size
        ));
        InvocationResult {
            request_id: request_id.to_owned(),
            result: result_text,
            log: log.join("\n"),
            status,
            duration_ms,
        }
    }

    /// `context.getToken()` and the temporary AK/SK + security token for this invocation: the
    /// function's agency's, valid for the invocation's timeout plus 10 minutes; empty without an
    /// agency.
    async fn python_credentials(
        &self,
        f: &Loaded,
    ) -> Result<trailwatch_python::Credentials, String> {
        let Some(agency) = &f.spec.xrole else {
            return Ok(trailwatch_python::Credentials::default());
        };
        let Some(setup) = self.python.get() else {
            return Err("the Python runtime is not enabled on this server".into());
        };
        let ttl_ms = (i64::from(f.spec.timeout) + 600) * 1000;
        (setup.minter)(f.row.project_id.clone(), agency.clone(), ttl_ms)
            .await
            .map_err(|e| format!("cannot assume agency `{agency}`: {e}"))
    }

    async fn apply_effects(
        &self,
        f: &Loaded,
        effects: &[Effect],
        log: &mut Vec<String>,
    ) -> Result<(), String> {
        let rights = match &f.spec.xrole {
            None => Rights::none(),
            Some(agency) => (self.rights)(f.row.project_id.clone(), agency.clone())
                .await
                .map_err(|e| format!("cannot resolve the rights of agency `{agency}`: {e}"))?,
        };
        for effect in effects {
            let action = effect.required_action();
            if !rights.allows(action) {
                return Err(match &f.spec.xrole {
                    None => format!(
                        "permission denied: the function has no agency (xrole), so it may not `{action}`; create an agency with a role that grants it and set `xrole`"
                    ),
                    Some(a) => format!(
                        "permission denied: agency `{a}` grants no role with `{action}` in project {}",
                        f.row.project_id
                    ),
                });
            }
            match effect {
                Effect::Publish {
                    topic,
                    subject,
                    message,
                    tags,
                    idempotency_key,
                } => {
                    let urn = if topic.starts_with("urn:smn:") {
                        topic.clone()
                    } else {
                        format!("urn:smn:{}:{}:{topic}", self.region, f.row.project_id)
                    };
                    let body = match f.user_data.get_non_blank("SMN_Template") {
                        Some(template) => json!({
                            "subject": subject,
                            "message_template_name": template,
                            "tags": tags,
                        }),
                        None => json!({"subject": subject, "message": message}),
                    };
                    let key = format!("fgs:{}:{idempotency_key}", f.row.function_id);
                    match self
                        .notifier
                        .publish_once(&f.row.project_id, &urn, &body, &key)
                        .await
                    {
                        Ok((id, true)) => log.push(format!("published message {id} to {urn}")),
                        Ok((id, false)) => log.push(format!(
                            "already published as message {id} to {urn} (repeated invocation; not sent again)"
                        )),
                        Err(e) => {
                            return Err(format!("publish to {urn} failed: {}: {}", e.code, e.message));
                        }
                    }
                }
                Effect::AppendObject {
                    bucket,
                    key,
                    lines,
                    idempotency_key,
                } => {
                    // The archive's namespace is the archiver's alone, and a bucket belongs to
                    // the first project that uses it.
                    if key.starts_with("CloudTraces/") {
                        return Err(format!(
                            "object key {key}: keys under CloudTraces/ belong to the trace archive"
                        ));
                    }
                    let (b, pid, now) = (
                        bucket.clone(),
                        f.row.project_id.clone(),
                        self.clock.now_ms(),
                    );
                    let owned = self
                        .store
                        .write(move |c| trailwatch_store::archive::claim_bucket(c, &b, &pid, now))
                        .await
                        .map_err(|e| format!("bucket {bucket}: {e}"))?;
                    if !owned {
                        return Err(format!(
                            "permission denied: bucket `{bucket}` belongs to another project"
                        ));
                    }
                    let idem = format!("fgs:{}:{idempotency_key}", f.row.function_id);
                    match self.objects.append_lines(bucket, key, lines, &idem).await {
                        Ok(outcome) => log.push(format!(
                            "appended {} line(s) to {bucket}/{key} ({outcome:?})",
                            lines.len()
                        )),
                        Err(e) => return Err(format!("append to {bucket}/{key} failed: {e}")),
                    }
                }
            }
        }
        Ok(())
    }

    /// Counts an invocation in the in-memory metrics.
    pub(crate) fn count(&self, _f: &Loaded, r: &InvocationResult) {
        use std::sync::atomic::Ordering::Relaxed;
        self.metrics.invocations.fetch_add(1, Relaxed);
        if r.failed() {
            self.metrics.failures.fetch_add(1, Relaxed);
        }
    }

    /// Records finished invocations and their statistics in one transaction, with `extra` (a
    /// consumer's cursor advance) in the same commit.
    pub async fn record_batch<F>(
        &self,
        f: &Loaded,
        trigger_label: &str,
        mode: &str,
        results: Vec<InvocationResult>,
        extra: F,
    ) -> Result<(), FssError>
    where
        F: FnOnce(&rusqlite_conn::Connection) -> trailwatch_store::Result<()> + Send + 'static,
    {
        self.record_batch_retrying(f, trigger_label, mode, results, Vec::new(), extra)
            .await
    }

    /// [`Self::record_batch`], and in the same transaction the events of failed trigger
    /// invocations are queued as async invocations (retried with backoff, then dead letters), so
    /// advancing a trigger's cursor never drops a failed invocation.
    pub async fn record_batch_retrying<F>(
        &self,
        f: &Loaded,
        trigger_label: &str,
        mode: &str,
        results: Vec<InvocationResult>,
        retry_events: Vec<Value>,
        extra: F,
    ) -> Result<(), FssError>
    where
        F: FnOnce(&rusqlite_conn::Connection) -> trailwatch_store::Result<()> + Send + 'static,
    {
        let now = self.clock.now_ms();
        let retries: Vec<InvocationRow> = retry_events
            .into_iter()
            .map(|event| InvocationRow {
                request_id: uuid::Uuid::new_v4().to_string(),
                function_id: f.row.function_id.clone(),
                project_id: f.row.project_id.clone(),
                trigger: trigger_label.to_owned(),
                mode: "async".into(),
                state: "queued".into(),
                event: Some(event.to_string()),
                // The trigger's own run was the first attempt.
                attempts: 1,
                next_at: Some(now + crate::engine::async_backoff_ms(1)),
                started_at: None,
                duration_ms: None,
                status: None,
                result: None,
                log: None,
                error: None,
                created_at: now,
            })
            .collect();
        let queued = !retries.is_empty();
        let mut rows = Vec::with_capacity(results.len());
        for r in &results {
            self.count(f, r);
            rows.push(InvocationRow {
                request_id: r.request_id.clone(),
                function_id: f.row.function_id.clone(),
                project_id: f.row.project_id.clone(),
                trigger: trigger_label.to_owned(),
                mode: mode.to_owned(),
                state: if r.failed() { "failed" } else { "succeeded" }.into(),
                event: None,
                attempts: 1,
                next_at: None,
                started_at: Some(now - r.duration_ms as i64),
                duration_ms: Some(r.duration_ms),
                status: Some(i64::from(r.status)),
                result: Some(r.result.clone()),
                log: Some(log_tail(&r.log).to_owned()),
                error: None,
                created_at: now,
            });
        }
        self.store
            .write(move |c| {
                for row in &rows {
                    db::insert_invocation(c, row)?;
                    db::record_stats(
                        c,
                        &row.function_id,
                        now,
                        StatsEvent::Ran {
                            duration_ms: row.duration_ms.unwrap_or(0.0),
                            failed: row.state == "failed",
                        },
                    )?;
                }
                for retry in &retries {
                    db::insert_invocation(c, retry)?;
                }
                extra(c)
            })
            .await
            .map_err(store_err)?;
        if queued {
            self.async_wake.notify_one();
        }
        Ok(())
    }

    /// `POST …/invocations`: runs now and answers the outcome.
    pub async fn invoke_sync(
        &self,
        project_id: &str,
        urn: &str,
        event: &Value,
    ) -> Result<InvocationResult, FssError> {
        let f = self.lookup(project_id, urn).await?;
        let _slot = self.slot(&f, false).await?;
        let request_id = uuid::Uuid::new_v4().to_string();
        let r = self
            .execute(&f, TriggerKind::Direct, event, &request_id)
            .await;
        self.record_batch(&f, "API", "sync", vec![r.clone()], |_| Ok(()))
            .await?;
        Ok(r)
    }

    /// `POST …/invocations-async`: queues the event durably and answers its `request_id`.
    pub async fn invoke_async(
        &self,
        project_id: &str,
        urn: &str,
        event: &Value,
    ) -> Result<String, FssError> {
        let f = self.lookup(project_id, urn).await?;
        let request_id = uuid::Uuid::new_v4().to_string();
        self.queue_async(&f, &request_id, "API", event, self.clock.now_ms())
            .await?;
        Ok(request_id)
    }

    pub(crate) async fn queue_async(
        &self,
        f: &Loaded,
        request_id: &str,
        trigger_label: &str,
        event: &Value,
        due: i64,
    ) -> Result<(), FssError> {
        let row = InvocationRow {
            request_id: request_id.to_owned(),
            function_id: f.row.function_id.clone(),
            project_id: f.row.project_id.clone(),
            trigger: trigger_label.to_owned(),
            mode: "async".into(),
            state: "queued".into(),
            event: Some(event.to_string()),
            attempts: 0,
            next_at: Some(due),
            started_at: None,
            duration_ms: None,
            status: None,
            result: None,
            log: None,
            error: None,
            created_at: self.clock.now_ms(),
        };
        self.store
            .write(move |c| {
                // A repeated hand-over (SMN redelivery) of the same request id queues nothing.
                if db::invocation(c, &row.request_id)?.is_none() {
                    db::insert_invocation(c, &row)?;
                }
                Ok(())
            })
            .await
            .map_err(store_err)?;
        self.async_wake.notify_one();
        Ok(())
    }

    /// `GET …/invocations` (trailwatch extension): the newest invocation records.
    pub async fn invocations(
        &self,
        project_id: &str,
        urn: &str,
        limit: u64,
    ) -> Result<Value, FssError> {
        let f = self.lookup(project_id, urn).await?;
        let id = f.row.function_id.clone();
        let rows = self
            .store
            .read(move |c| db::recent_invocations(c, &id, limit.clamp(1, 500)))
            .await
            .map_err(store_err)?;
        let list: Vec<Value> = rows.iter().map(invocation_view).collect();
        Ok(json!({"invocations": list, "count": list.len()}))
    }

    /// `GET /v2/{pid}/fgs/dead-letters` (trailwatch extension): async invocations that failed
    /// every retry, newest first, with their event.
    pub async fn dead_letters(&self, project_id: &str, limit: u64) -> Result<Value, FssError> {
        let pid = project_id.to_owned();
        let rows = self
            .store
            .read(move |c| db::dead_invocations(c, &pid, limit.clamp(1, 500)))
            .await
            .map_err(store_err)?;
        let list: Vec<Value> = rows
            .iter()
            .map(|r| {
                let mut v = invocation_view(r);
                v["function_id"] = json!(r.function_id);
                v["event"] = r
                    .event
                    .as_deref()
                    .and_then(|e| serde_json::from_str(e).ok())
                    .unwrap_or(Value::Null);
                v
            })
            .collect();
        Ok(json!({"dead_letters": list, "count": list.len()}))
    }

    /// `POST /v2/{pid}/fgs/dead-letters/replay` `{"request_ids": [...]}` (all when absent):
    /// queues them again with a fresh retry budget; answers how many.
    pub async fn replay_dead_letters(
        &self,
        project_id: &str,
        request_ids: Option<Vec<String>>,
    ) -> Result<u64, FssError> {
        let pid = project_id.to_owned();
        let now = self.clock.now_ms();
        let n = self
            .store
            .write(move |c| db::replay_dead_invocations(c, &pid, request_ids.as_deref(), now))
            .await
            .map_err(store_err)?;
        self.async_wake.notify_one();
        Ok(n)
    }

    /// `GET …/statistics/{period}`: per-minute series over the last `period` minutes.
    pub async fn statistics(
        &self,
        project_id: &str,
        urn: &str,
        period_minutes: &str,
    ) -> Result<Value, FssError> {
        let minutes: i64 = period_minutes
            .parse()
            .ok()
            .filter(|m| (1..=43_200).contains(m))
            .ok_or_else(|| {
                FssError::bad(format!(
                    "`period` must be minutes from 1 to 43200, got `{period_minutes}`"
                ))
            })?;
        let f = self.lookup(project_id, urn).await?;
        let since = self.clock.now_ms() - minutes * 60_000;
        let id = f.row.function_id.clone();
        let rows = self
            .store
            .read(move |c| db::stats_since(c, &id, since.div_euclid(60_000) * 60_000))
            .await
            .map_err(store_err)?;
        let series = |value: &dyn Fn(&db::StatsRow) -> f64| -> Value {
            Value::Array(
                rows.iter()
                    .map(|r| json!({"timestamp": r.minute, "value": value(r)}))
                    .collect(),
            )
        };
        Ok(json!({
            "count": series(&|r| r.count as f64),
            "fail_count": series(&|r| r.fail_count as f64),
            "reject_count": series(&|r| r.reject_count as f64),
            "duration": series(&|r| if r.count > 0 { r.duration_sum / r.count as f64 } else { -1.0 }),
            "max_duration": series(&|r| if r.count > 0 { r.max_duration } else { -1.0 }),
            "min_duration": series(&|r| r.min_duration),
            "function_error_count": series(&|r| r.fail_count as f64),
            "system_error_count": series(&|_| 0.0),
        }))
    }
}

/// Re-exported so `record`'s callers name the connection type without a rusqlite dependency.
pub mod rusqlite_conn {
    pub use trailwatch_store::rusqlite::Connection;
}

pub(crate) use trailwatch_store::functions::{cts_cursor, lts_cursor};

fn invocation_view(r: &InvocationRow) -> Value {
    json!({
        "request_id": r.request_id,
        "trigger": r.trigger,
        "mode": r.mode,
        "state": r.state,
        "attempts": r.attempts,
        "start": r.started_at,
        "duration": r.duration_ms,
        "status": r.status,
        "result": r.result,
        "log": r.log,
        "error": r.error,
        "created_at": r.created_at,
    })
}

/// `base` with `over`'s entries added (encrypted user data wins on a shared key); errors when
/// the merged object breaks the 20-key limit.
fn merge(base: &UserData, over: &UserData) -> Result<UserData, String> {
    let mut all: Vec<(String, String)> = base
        .iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect();
    for (k, v) in over.iter() {
        all.retain(|(key, _)| key != k);
        all.push((k.to_owned(), v.to_owned()));
    }
    UserData::from_pairs(all).map_err(|e| e.to_string())
}

/// Delivers SMN `functionstage` subscriptions (SMN triggers) by queueing an async invocation
/// with the §4.2 SMN event. The request id is derived from the message and the subscription, so
/// a redelivery queues nothing twice.
#[derive(Debug)]
pub struct SmnTriggerDeliverer(pub Arc<FunctionService>);

impl trailwatch_notify::service::FunctionDeliverer for SmnTriggerDeliverer {
    fn deliver(
        &self,
        d: trailwatch_notify::service::FunctionDelivery,
    ) -> trailwatch_notify::service::DeliveryFuture<'_> {
        Box::pin(async move {
            let f = match self.0.lookup(&d.project_id, &d.function_urn).await {
                Ok(f) => f,
                Err(e) if e.status == 500 => return Err((true, e.message)),
                Err(e) => return Err((false, format!("{}: {}", e.code, e.message))),
            };
            let sub_id = d.subscription_urn.rsplit(':').next().unwrap_or_default();
            let request_id = format!("smn-{}-{sub_id}", d.message_id);
            let event = crate::events::smn_event(&crate::events::SmnDelivery {
                topic_urn: d.topic_urn.clone(),
                message_id: d.message_id.clone(),
                subject: d.subject.clone(),
                message: d.message.clone(),
                message_attributes: None,
                timestamp: DateTime::from_timestamp_millis(d.published_at_ms).unwrap_or_default(),
                subscription_urn: d.function_urn.clone(),
                function_name: f.spec.func_name.clone(),
                request_id: request_id.clone(),
            });
            let label = format!("SMN:{}", d.topic_urn);
            self.0
                .queue_async(&f, &request_id, &label, &event, self.0.clock.now_ms())
                .await
                .map_err(|e| (e.status >= 500, e.message))?;
            Ok(format!("queued as async invocation {request_id}"))
        })
    }
}
