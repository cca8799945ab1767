//! trailwatch's FunctionGraph-compatible Python runtime (`docs/specs/python-runtime.md`).
//!
//! Runs FunctionGraph-style `handler(event, context)` functions unchanged in warm worker
//! processes of the machine's Python 3:
//!
//! - **Code** ([`code`]): a zip package or inline source, extracted on demand into a
//!   per-function directory named by the code's digest, first on the worker's `sys.path`, so
//!   libraries vendored next to the handler import.
//! - **Workers**: one pool per function, at most its concurrency limit of processes, one
//!   invocation at a time per process. A worker runs `bootstrap.py` (shipped in this crate with
//!   `include_str!`), which loads the handler and runs the initializer once, then answers
//!   length-prefixed JSON requests on its stdin/stdout. What the handler prints (stdout and
//!   stderr) goes to a separate pipe and becomes the invocation's log.
//! - **Rolling over**: a new code digest or configuration starts a new *generation*; idle
//!   workers of the old one stop at once, busy ones finish their invocation first and then stop.
//! - **Limits**: the function's timeout (the worker's process group is killed and replaced),
//!   `RLIMIT_AS` = `memory_size` MB, a cap on printed output, a scrubbed environment
//!   (`env_clear`, then only the documented variables), a per-invocation temporary directory.
//!
//! This isolates functions from each other and from the server's secrets *as processes*; it is
//! not a security sandbox: a worker runs as the server's user and can read what that user can.

pub mod code;
mod limits;
mod worker;

use std::collections::HashMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use serde::Serialize;
use serde_json::Value;
use sha2::{Digest as _, Sha256};

pub use code::{Code, CodeKind, check_handler};

use worker::{Failure, Worker};

/// The worker program, written to the runtime's directory at start.
pub const BOOTSTRAP: &str = include_str!("bootstrap.py");
/// Default cap on what one invocation may print before its worker is stopped.
pub const DEFAULT_MAX_LOG_BYTES: u64 = 8 * 1024 * 1024;

/// How to run Python.
#[derive(Debug, Clone)]
pub struct PythonConfig {
    /// The interpreter (`python3`, or a virtualenv's `bin/python` for runtime-wide libraries).
    pub python: PathBuf,
    /// A directory owned by the runtime (emptied at start): code, homes, temporary files.
    pub work_root: PathBuf,
    /// Bytes an invocation may print before its worker is stopped.
    pub max_log_bytes: u64,
}

/// The interpreter found at start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Interpreter {
    /// `sys.executable`, resolved once with the server's environment (a pyenv shim needs it;
    /// workers then run the real executable with a scrubbed environment).
    pub executable: PathBuf,
    /// `(major, minor)`.
    pub version: (u32, u32),
}

impl Interpreter {
    /// `Python3.11` style name of this interpreter.
    pub fn runtime_name(&self) -> String {
        format!("Python{}.{}", self.version.0, self.version.1)
    }
}

/// Everything about a function that its workers are started with. A change of any field
/// starts a new generation of workers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct FunctionSetup {
    pub function_id: String,
    /// The code's digest ([`Code::digest`]); the code is loaded only when it is not extracted yet.
    pub code_digest: String,
    /// `module.function`.
    pub handler: String,
    pub initializer: Option<String>,
    /// Bounds loading the handler and running the initializer.
    pub initializer_timeout: Duration,
    pub memory_mb: u32,
    /// Idle workers kept (the function's concurrency limit).
    pub max_workers: usize,
    /// Environment variables of the worker (RUNTIME_*, user data, endpoints), in order.
    pub env: Vec<(String, String)>,
}

impl FunctionSetup {
    fn key(&self) -> String {
        let text = serde_json::to_string(self).unwrap_or_default();
        hex::encode(Sha256::digest(text.as_bytes()))
    }
}

/// Short-lived credentials handed to `context` (empty strings when the function has none).
#[derive(Clone, Default, PartialEq, Eq, Serialize)]
pub struct Credentials {
    pub token: String,
    pub access_key: String,
    pub secret_key: String,
    pub security_access_key: String,
    pub security_secret_key: String,
    pub security_token: String,
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Credentials(<redacted>)")
    }
}

/// One invocation.
#[derive(Debug, Clone)]
pub struct Invocation {
    pub request_id: String,
    pub event: Value,
    pub timeout: Duration,
    pub credentials: Credentials,
    pub alias: String,
}

/// What an invocation produced.
#[derive(Debug, Clone, PartialEq)]
pub struct Outcome {
    /// The handler's return value, or the error message.
    pub result: Result<Value, String>,
    /// What the handler printed (and, first, what loading it printed on a fresh worker), then
    /// on failure the error and its traceback.
    pub log: String,
    /// The worker was stopped after this invocation (or never started).
    pub worker_replaced: bool,
}

/// An extracted code directory; removed when the last generation using it is gone.
#[derive(Debug)]
pub(crate) struct CodeDir {
    pub(crate) path: PathBuf,
}

impl Drop for CodeDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// Workers started with one [`FunctionSetup`].
#[derive(Debug)]
pub(crate) struct Generation {
    key: String,
    pub(crate) setup: FunctionSetup,
    pub(crate) code: Arc<CodeDir>,
    /// The function's home directory (HOME, default TMPDIR).
    pub(crate) home: PathBuf,
}

#[derive(Debug, Default)]
struct Pool {
    current: Option<Arc<Generation>>,
    idle: Vec<Worker>,
}

#[derive(Debug, Default)]
struct FunctionEntry {
    pool: Mutex<Pool>,
    /// Serialises switching generations (extracting code) per function.
    switching: tokio::sync::Mutex<()>,
    /// Extracted code by digest, shared by generations that differ only in configuration.
    codes: Mutex<HashMap<String, Weak<CodeDir>>>,
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    match m.lock() {
        Ok(g) => g,
        Err(p) => p.into_inner(),
    }
}

/// The Python runtime: one worker pool per function.
#[derive(Debug)]
pub struct PythonRuntime {
    interpreter: Interpreter,
    bootstrap: PathBuf,
    root: PathBuf,
    max_log_bytes: u64,
    functions: Mutex<HashMap<String, Arc<FunctionEntry>>>,
}

impl PythonRuntime {
    /// Finds the interpreter (refusing Python 2) and prepares `work_root` (emptied: nothing in
    /// it outlives a restart; code is extracted again from the store on demand).
    pub async fn start(config: PythonConfig) -> Result<PythonRuntime, String> {
        if !cfg!(target_os = "linux") {
            return Err("the Python runtime needs Linux (prlimit memory limits)".into());
        }
        let interpreter = probe(&config.python).await?;
        let root = config.work_root.clone();
        let prepared = tokio::task::spawn_blocking(move || -> std::io::Result<PathBuf> {
            if root.exists() {
                std::fs::remove_dir_all(&root)?;
            }
            std::fs::create_dir_all(&root)?;
            let bootstrap = root.join("bootstrap.py");
            std::fs::write(&bootstrap, BOOTSTRAP)?;
            Ok(bootstrap)
        })
        .await
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("preparing {}: {e}", config.work_root.display()))?;
        Ok(PythonRuntime {
            interpreter,
            bootstrap: prepared,
            root: config.work_root,
            max_log_bytes: config.max_log_bytes,
            functions: Mutex::new(HashMap::new()),
        })
    }

    pub fn interpreter(&self) -> &Interpreter {
        &self.interpreter
    }

    fn entry(&self, function_id: &str) -> Arc<FunctionEntry> {
        lock(&self.functions)
            .entry(function_id.to_owned())
            .or_default()
            .clone()
    }

    /// Idle workers of a function (for tests and metrics).
    pub fn idle_workers(&self, function_id: &str) -> usize {
        lock(&self.functions)
            .get(function_id)
            .map(|e| lock(&e.pool).idle.len())
            .unwrap_or(0)
    }

    /// Stops a deleted function's idle workers and forgets it (busy ones stop when they finish).
    pub fn forget(&self, function_id: &str) {
        let entry = lock(&self.functions).remove(function_id);
        if let Some(entry) = entry {
            let idle = {
                let mut pool = lock(&entry.pool);
                pool.current = None;
                std::mem::take(&mut pool.idle)
            };
            for w in idle {
                w.kill();
            }
        }
    }

    /// The generation for `setup`, switching to it (and extracting its code, loaded with
    /// `load_code` only if needed) when it is new.
    async fn generation<F, Fut>(
        &self,
        entry: &FunctionEntry,
        setup: &FunctionSetup,
        load_code: F,
    ) -> Result<Arc<Generation>, String>
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Code, String>>,
    {
        let key = setup.key();
        let current =
            |entry: &FunctionEntry| lock(&entry.pool).current.clone().filter(|g| g.key == key);
        if let Some(g) = current(entry) {
            return Ok(g);
        }
        let _switching = entry.switching.lock().await;
        if let Some(g) = current(entry) {
            return Ok(g);
        }
        let existing = lock(&entry.codes)
            .get(&setup.code_digest)
            .and_then(Weak::upgrade);
        let fn_dir = self.root.join(safe_name(&setup.function_id));
        let code = match existing {
            Some(c) => c,
            None => {
                let code = load_code().await?;
                if code.digest() != setup.code_digest {
                    return Err("the stored code does not match its digest".into());
                }
                let dir = fn_dir.join(format!("code-{}", uuid::Uuid::new_v4().simple()));
                let handler = setup.handler.clone();
                let target = dir.clone();
                let extracted = tokio::task::spawn_blocking(move || {
                    let r = code.extract(&target, &handler);
                    if r.is_err() {
                        let _ = std::fs::remove_dir_all(&target);
                    }
                    r
                })
                .await
                .map_err(|e| format!("extracting the code failed: {e}"))?;
                extracted?;
                let c = Arc::new(CodeDir { path: dir });
                let mut codes = lock(&entry.codes);
                codes.retain(|_, w| w.strong_count() > 0);
                codes.insert(setup.code_digest.clone(), Arc::downgrade(&c));
                c
            }
        };
        let home = fn_dir.join("home");
        std::fs::create_dir_all(&home)
            .and_then(|()| std::fs::create_dir_all(fn_dir.join("tmp")))
            .map_err(|e| format!("creating {}: {e}", home.display()))?;
        let g = Arc::new(Generation {
            key,
            setup: setup.clone(),
            code,
            home,
        });
        let old_idle = {
            let mut pool = lock(&entry.pool);
            pool.current = Some(g.clone());
            std::mem::take(&mut pool.idle)
        };
        for w in old_idle {
            w.kill();
        }
        Ok(g)
    }

    /// Runs one invocation of a function on a warm worker (starting one if none is idle).
    /// The caller bounds concurrency (the function's slots); this never blocks on the pool.
    pub async fn invoke<F, Fut>(
        &self,
        setup: &FunctionSetup,
        load_code: F,
        invocation: &Invocation,
    ) -> Outcome
    where
        F: FnOnce() -> Fut,
        Fut: Future<Output = Result<Code, String>>,
    {
        let entry = self.entry(&setup.function_id);
        let generation = match self.generation(&entry, setup, load_code).await {
            Ok(g) => g,
            Err(e) => {
                return Outcome {
                    log: format!("ERROR {e}"),
                    result: Err(e),
                    worker_replaced: true,
                };
            }
        };
        let reused = {
            let mut pool = lock(&entry.pool);
            let i = pool
                .idle
                .iter()
                .rposition(|w| Arc::ptr_eq(&w.generation, &generation));
            i.map(|i| pool.idle.swap_remove(i))
        };
        let mut worker = match reused {
            Some(w) => w,
            None => {
                match Worker::start(
                    &self.interpreter.executable,
                    &self.bootstrap,
                    generation.clone(),
                    self.max_log_bytes,
                )
                .await
                {
                    Ok(w) => w,
                    Err((failure, output)) => {
                        let (message, log) = describe(failure, output);
                        return Outcome {
                            result: Err(message),
                            log,
                            worker_replaced: true,
                        };
                    }
                }
            }
        };
        let tmp = generation
            .home
            .with_file_name("tmp")
            .join(uuid::Uuid::new_v4().simple().to_string());
        if let Err(e) = std::fs::create_dir_all(&tmp) {
            worker.kill();
            let message = format!("creating the invocation's temporary directory failed: {e}");
            return Outcome {
                log: format!("ERROR {message}"),
                result: Err(message),
                worker_replaced: true,
            };
        }
        let ran = worker.invoke(invocation, &tmp, self.max_log_bytes).await;
        // Removed before answering, so the next invocation never sees this one's files.
        let _ = tokio::task::spawn_blocking(move || std::fs::remove_dir_all(tmp)).await;
        let init_log = std::mem::take(&mut worker.init_log);
        let keep = match &ran.result {
            Ok(_) => true,
            Err(Failure::Function { keep, .. }) => *keep,
            Err(Failure::Stopped(_)) => false,
        };
        let output = format!("{init_log}{}", ran.output);
        let (result, log) = match ran.result {
            Ok(v) => (Ok(v), output),
            Err(f) => {
                let (message, log) = describe(f, output);
                (Err(message), log)
            }
        };
        let mut replaced = !keep;
        if keep {
            let mut pool = lock(&entry.pool);
            let current = pool
                .current
                .as_ref()
                .is_some_and(|g| Arc::ptr_eq(g, &worker.generation));
            if current && pool.idle.len() < setup.max_workers.max(1) {
                pool.idle.push(worker);
            } else {
                drop(pool);
                worker.kill();
                replaced = true;
            }
        } else {
            worker.kill();
        }
        Outcome {
            result,
            log,
            worker_replaced: replaced,
        }
    }
}

/// The error message and the log (output, then the error and its traceback).
fn describe(f: Failure, output: String) -> (String, String) {
    let mut log = output;
    if !log.is_empty() && !log.ends_with('\n') {
        log.push('\n');
    }
    let message = match f {
        Failure::Function {
            message, traceback, ..
        } => {
            log.push_str(&format!("ERROR {message}\n"));
            if !traceback.is_empty() {
                log.push_str(&traceback);
            }
            message
        }
        Failure::Stopped(message) => {
            log.push_str(&format!("ERROR {message}\n"));
            message
        }
    };
    (message, log.trim_end().to_owned())
}

/// A function id as a directory name (ids are UUIDs; anything else is hashed).
fn safe_name(id: &str) -> String {
    if !id.is_empty() && id.len() <= 64 && id.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
    {
        id.to_owned()
    } else {
        hex::encode(Sha256::digest(id.as_bytes()))
    }
}

/// Runs the configured interpreter once (with the server's environment) to learn its real
/// executable and version.
async fn probe(python: &Path) -> Result<Interpreter, String> {
    let out = tokio::time::timeout(
        Duration::from_secs(30),
        tokio::process::Command::new(python)
            .arg("-c")
            .arg("import sys; print(sys.executable); print('%d.%d' % sys.version_info[:2])")
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .map_err(|_| format!("{} did not answer within 30 s", python.display()))?
    .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
    if !out.status.success() {
        return Err(format!(
            "{} failed: {}",
            python.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    let text = String::from_utf8_lossy(&out.stdout);
    let mut lines = text.lines();
    let exe = lines.next().unwrap_or_default().trim();
    let version = lines.next().unwrap_or_default().trim();
    let parsed = version
        .split_once('.')
        .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)));
    let Some(version) = parsed else {
        return Err(format!(
            "{} is not a Python interpreter (version `{version}`)",
            python.display()
        ));
    };
    if version < (3, 6) {
        return Err(format!(
            "{} is Python {}.{}; the runtime needs Python 3.6 or newer",
            python.display(),
            version.0,
            version.1
        ));
    }
    if exe.is_empty() {
        return Err(format!(
            "{} did not report its executable",
            python.display()
        ));
    }
    Ok(Interpreter {
        executable: PathBuf::from(exe),
        version,
    })
}
