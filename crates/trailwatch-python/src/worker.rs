//! One worker process: spawning it with a scrubbed environment and its limits, the
//! length-prefixed JSON protocol over its stdin/stdout, and the separate capture of what the
//! handler prints (its stdout and stderr both go to the worker's stderr pipe).

use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::process::{Child, ChildStdin, ChildStdout, Command};
use tokio::sync::Notify;
use tokio::time::Instant;

use crate::Generation;

/// Largest answer accepted from a worker (FunctionGraph's sync response limit is 6 MB).
pub const MAX_MESSAGE_BYTES: usize = 16 * 1024 * 1024;
/// How much of an invocation's output is kept (records keep 4 KB; the rest is a margin).
const KEPT_OUTPUT_BYTES: usize = 64 * 1024;
/// How long to wait for the end-of-output sentinel after the answer arrived.
const SENTINEL_GRACE: Duration = Duration::from_secs(2);

const SENTINEL_START: &[u8] = b"\x1eTW-END:";
const SENTINEL_END: &[u8] = b"\x1e\n";
/// Longest request id a sentinel may carry (ours are ≤ 100 characters).
const MAX_SENTINEL_ID: usize = 200;

/// Why an invocation failed, as seen from outside the worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Failure {
    /// The handler (or loading it) failed; the worker may be reused when `keep` is true.
    Function {
        message: String,
        traceback: String,
        keep: bool,
    },
    /// The worker had to be stopped (timeout, log flood, crash, protocol error).
    Stopped(String),
}

/// Output captured from a worker's log pipe, per invocation.
#[derive(Debug, Default)]
struct LogState {
    /// The last [`KEPT_OUTPUT_BYTES`] of the current invocation's output.
    kept: Vec<u8>,
    /// Bytes the current invocation printed in all.
    total: u64,
    /// The id of the last sentinel seen.
    last_sentinel: Option<String>,
    /// The pipe closed (the worker exited).
    closed: bool,
}

#[derive(Debug, Default)]
pub(crate) struct LogCollector {
    state: Mutex<LogState>,
    changed: Notify,
}

impl LogCollector {
    fn lock(&self) -> std::sync::MutexGuard<'_, LogState> {
        match self.state.lock() {
            Ok(g) => g,
            Err(p) => p.into_inner(),
        }
    }

    fn push_output(&self, bytes: &[u8]) {
        if bytes.is_empty() {
            return;
        }
        let mut s = self.lock();
        s.total += bytes.len() as u64;
        s.kept.extend_from_slice(bytes);
        if s.kept.len() > KEPT_OUTPUT_BYTES {
            let cut = s.kept.len() - KEPT_OUTPUT_BYTES;
            s.kept.drain(..cut);
        }
        drop(s);
        self.changed.notify_waiters();
    }

    fn sentinel(&self, id: String) {
        self.lock().last_sentinel = Some(id);
        self.changed.notify_waiters();
    }

    fn close(&self) {
        self.lock().closed = true;
        self.changed.notify_waiters();
    }

    /// Starts a new invocation's capture; answers the previous capture (init output).
    fn begin(&self) -> String {
        let mut s = self.lock();
        let text = String::from_utf8_lossy(&s.kept).into_owned();
        s.kept.clear();
        s.total = 0;
        s.last_sentinel = None;
        text
    }

    fn take(&self) -> (String, u64) {
        let mut s = self.lock();
        let text = String::from_utf8_lossy(&s.kept).into_owned();
        s.kept.clear();
        (text, std::mem::take(&mut s.total))
    }

    /// Waits until the sentinel `id` was seen, the pipe closed or `deadline` passed.
    async fn wait_sentinel(&self, id: &str, deadline: Instant) -> bool {
        loop {
            let notified = self.changed.notified();
            {
                let s = self.lock();
                if s.last_sentinel.as_deref() == Some(id) {
                    return true;
                }
                if s.closed {
                    return false;
                }
            }
            if tokio::time::timeout_at(deadline, notified).await.is_err() {
                return false;
            }
        }
    }

    /// Waits until the current invocation printed more than `limit` bytes.
    async fn wait_overflow(&self, limit: u64) {
        loop {
            let notified = self.changed.notified();
            if self.lock().total > limit {
                return;
            }
            notified.await;
        }
    }
}

/// Reads the log pipe until it closes, splitting out sentinels.
async fn collect_log<R: tokio::io::AsyncRead + Unpin>(mut pipe: R, log: Arc<LogCollector>) {
    let mut buf = vec![0u8; 64 * 1024];
    let mut carry: Vec<u8> = Vec::new();
    loop {
        let n = match pipe.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        carry.extend_from_slice(&buf[..n]);
        loop {
            match find(&carry, SENTINEL_START) {
                Some(start) => {
                    let after = start + SENTINEL_START.len();
                    match find(&carry[after..], SENTINEL_END) {
                        Some(len) if len <= MAX_SENTINEL_ID => {
                            log.push_output(&carry[..start]);
                            let id =
                                String::from_utf8_lossy(&carry[after..after + len]).into_owned();
                            carry.drain(..after + len + SENTINEL_END.len());
                            log.sentinel(id);
                        }
                        // Not a complete sentinel yet: keep it for the next read.
                        None if carry.len() - after <= MAX_SENTINEL_ID => {
                            log.push_output(&carry[..start]);
                            carry.drain(..start);
                            break;
                        }
                        // Something that only looks like one: it is output.
                        _ => {
                            log.push_output(&carry[..after]);
                            carry.drain(..after);
                        }
                    }
                }
                None => {
                    // Keep a possible start of a sentinel split across reads.
                    let keep = (SENTINEL_START.len() - 1).min(carry.len());
                    let cut = carry.len() - keep;
                    log.push_output(&carry[..cut]);
                    carry.drain(..cut);
                    break;
                }
            }
        }
    }
    log.push_output(&carry);
    log.close();
}

fn find(hay: &[u8], needle: &[u8]) -> Option<usize> {
    hay.windows(needle.len()).position(|w| w == needle)
}

/// A live worker process.
#[derive(Debug)]
pub(crate) struct Worker {
    child: Child,
    pid: Option<u32>,
    stdin: ChildStdin,
    stdout: ChildStdout,
    log: Arc<LogCollector>,
    pub(crate) generation: Arc<Generation>,
    /// Output of loading the handler and running the initializer, handed to the first
    /// invocation's log.
    pub(crate) init_log: String,
}

/// What an invocation returned, with its captured output.
#[derive(Debug)]
pub(crate) struct Ran {
    pub(crate) result: Result<Value, Failure>,
    pub(crate) output: String,
}

impl Worker {
    /// Starts a worker for `generation` and waits until its handler is loaded (and its
    /// initializer ran). A failure is returned with the output printed so far.
    pub(crate) async fn start(
        python: &Path,
        bootstrap: &Path,
        generation: Arc<Generation>,
        max_log_bytes: u64,
    ) -> Result<Worker, (Failure, String)> {
        let setup = &generation.setup;
        let code_dir = generation.code.path.clone();
        let mut cmd = Command::new(python);
        // -I: isolated (no PYTHON* variables, no user site, script dir not on sys.path);
        // -u: unbuffered; -B: no .pyc files written into the code directory.
        cmd.arg("-I").arg("-u").arg("-B").arg(bootstrap);
        cmd.env_clear();
        cmd.env("PATH", "/usr/local/bin:/usr/bin:/bin");
        cmd.env("LANG", "C.UTF-8");
        cmd.env("HOME", &generation.home);
        cmd.env("TMPDIR", &generation.home);
        cmd.env("RUNTIME_CODE_ROOT", &code_dir);
        for (k, v) in &setup.env {
            cmd.env(k, v);
        }
        cmd.current_dir(&code_dir);
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        // Its own process group, so a timeout kills whatever the handler started too.
        cmd.process_group(0);
        cmd.kill_on_drop(true);
        let mut child = cmd.spawn().map_err(|e| {
            (
                Failure::Stopped(format!(
                    "the Python interpreter {} could not be started: {e}",
                    python.display()
                )),
                String::new(),
            )
        })?;
        let pid = child.id();
        let stopped = |m: String| (Failure::Stopped(m), String::new());
        let (Some(stdin), Some(stdout), Some(stderr)) =
            (child.stdin.take(), child.stdout.take(), child.stderr.take())
        else {
            kill_group(pid);
            return Err(stopped("the worker's pipes could not be opened".into()));
        };
        // The limits are set before the worker is told to load any user code (it waits for the
        // start message), so no user code ever runs without them.
        if let Err(e) = crate::limits::apply(pid, setup.memory_mb) {
            kill_group(pid);
            return Err(stopped(format!("setting the worker's limits failed: {e}")));
        }
        let log = Arc::new(LogCollector::default());
        tokio::spawn(collect_log(stderr, log.clone()));
        let mut w = Worker {
            child,
            pid,
            stdin,
            stdout,
            log,
            generation: generation.clone(),
            init_log: String::new(),
        };
        let init_timeout = setup.initializer_timeout;
        let start = json!({
            "handler": setup.handler,
            "initializer": setup.initializer,
            "initializer_timeout_ms": init_timeout.as_millis() as u64,
        });
        let deadline = Instant::now() + init_timeout;
        let answer = w.exchange(&start, "init", deadline, max_log_bytes).await;
        let (output, _) = w.log.take();
        match answer {
            Ok(v) if v.get("ok") == Some(&Value::Bool(true)) => {
                w.init_log = output;
                Ok(w)
            }
            Ok(v) => {
                w.kill();
                Err((failure_of(&v, false), output))
            }
            Err(Failure::Stopped(m)) if m.starts_with("timed out") => {
                w.kill();
                let what = if setup.initializer.is_some() {
                    "the initializer"
                } else {
                    "loading the handler"
                };
                Err((
                    Failure::Stopped(format!(
                        "{what} timed out after {:.3} s; the worker was stopped",
                        init_timeout.as_secs_f64()
                    )),
                    output,
                ))
            }
            Err(f) => {
                w.kill();
                Err((f, output))
            }
        }
    }

    /// Sends `msg` and waits for the answer and the end of the output marked `id`, bounded by
    /// `deadline` and the log limit.
    async fn exchange(
        &mut self,
        msg: &Value,
        id: &str,
        deadline: Instant,
        max_log_bytes: u64,
    ) -> Result<Value, Failure> {
        let data = msg.to_string().into_bytes();
        let len = u32::try_from(data.len())
            .map_err(|_| Failure::Stopped("the event is too large to hand to the worker".into()))?;
        let mut frame = Vec::with_capacity(data.len() + 4);
        frame.extend_from_slice(&len.to_be_bytes());
        frame.extend_from_slice(&data);
        let log = self.log.clone();
        enum Waited {
            Io(std::io::Result<Value>),
            Overflow,
            Timeout,
        }
        let waited = {
            let stdin = &mut self.stdin;
            let stdout = &mut self.stdout;
            let io = async move {
                stdin.write_all(&frame).await?;
                stdin.flush().await?;
                read_frame(stdout).await
            };
            tokio::select! {
                r = io => Waited::Io(r),
                () = log.wait_overflow(max_log_bytes) => Waited::Overflow,
                () = tokio::time::sleep_until(deadline) => Waited::Timeout,
            }
        };
        let answer = match waited {
            Waited::Io(Ok(v)) => Ok(v),
            Waited::Io(Err(e)) => Err(self.died(&e).await),
            Waited::Overflow => Err(Failure::Stopped(format!(
                "the function wrote more than {} MB to stdout/stderr; the worker was stopped",
                max_log_bytes / (1024 * 1024)
            ))),
            Waited::Timeout => Err(Failure::Stopped("timed out".into())),
        };
        if answer.is_ok() {
            // The answer is written after the output's sentinel; give the log reader a moment.
            self.log
                .wait_sentinel(id, Instant::now() + SENTINEL_GRACE)
                .await;
        }
        answer
    }

    /// Describes why the protocol pipe failed (usually: the process died).
    async fn died(&mut self, e: &std::io::Error) -> Failure {
        // Our own refusals (an oversized or malformed answer) are not a dead process.
        if e.kind() == std::io::ErrorKind::Other {
            return Failure::Stopped(format!("{e}; the worker was stopped"));
        }
        // The pipe closes a moment before the process is gone: wait briefly for its status.
        let status = tokio::time::timeout(Duration::from_millis(500), self.child.wait())
            .await
            .ok()
            .and_then(Result::ok);
        Failure::Stopped(match status {
            Some(s) => describe_exit(s),
            None => format!("the worker's pipe failed: {e}"),
        })
    }

    /// Runs one invocation.
    pub(crate) async fn invoke(
        &mut self,
        request: &crate::Invocation,
        tmp_dir: &Path,
        max_log_bytes: u64,
    ) -> Ran {
        let _ = self.log.begin();
        let timeout = request.timeout;
        let msg = json!({
            "type": "invoke",
            "request_id": request.request_id,
            "event": request.event,
            "timeout_ms": timeout.as_millis() as u64,
            "credentials": request.credentials,
            "alias": request.alias,
            "tmp_dir": tmp_dir,
        });
        let deadline = Instant::now() + timeout;
        let answer = self
            .exchange(&msg, &request.request_id, deadline, max_log_bytes)
            .await;
        let (output, _) = self.log.take();
        let result = match answer {
            Ok(v) if v.get("ok") == Some(&Value::Bool(true)) => {
                Ok(v.get("result").cloned().unwrap_or(Value::Null))
            }
            Ok(v) => Err(failure_of(&v, true)),
            Err(Failure::Stopped(m)) if m == "timed out" => Err(Failure::Stopped(format!(
                "Invoke task timed out after {} s; the worker was stopped",
                timeout.as_secs_f64()
            ))),
            Err(f) => Err(f),
        };
        Ran { result, output }
    }

    /// Stops the process group now; the process is reaped in the background.
    pub(crate) fn kill(mut self) {
        kill_group(self.pid);
        let _ = self.child.start_kill();
        tokio::spawn(async move {
            let _ = self.child.wait().await;
        });
    }
}

fn kill_group(pid: Option<u32>) {
    if let Some(pid) = pid
        .and_then(|p| i32::try_from(p).ok())
        .and_then(rustix::process::Pid::from_raw)
    {
        // The worker leads its own group (process_group(0)), so its pid is the group id.
        let _ = rustix::process::kill_process_group(pid, rustix::process::Signal::KILL);
    }
}

fn describe_exit(s: std::process::ExitStatus) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match (s.code(), s.signal()) {
        (_, Some(9)) => {
            "the worker was killed (signal 9; the memory limit or the host's OOM killer?)".into()
        }
        (_, Some(sig)) => format!("the worker died from signal {sig}"),
        (Some(code), _) => format!("the worker exited with status {code} during the invocation"),
        _ => "the worker exited during the invocation".into(),
    }
}

/// The failure an error answer of the bootstrap describes. `kind` `exception` and `result`
/// keep the worker (its state is intact); anything else replaces it.
fn failure_of(v: &Value, may_keep: bool) -> Failure {
    let text = |k: &str| {
        v.get(k)
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned()
    };
    let kind = text("kind");
    Failure::Function {
        message: text("error"),
        traceback: text("traceback"),
        keep: may_keep && matches!(kind.as_str(), "exception" | "result"),
    }
}

async fn read_frame(r: &mut ChildStdout) -> std::io::Result<Value> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > MAX_MESSAGE_BYTES {
        return Err(std::io::Error::other(format!(
            "the result is larger than {} MB",
            MAX_MESSAGE_BYTES / (1024 * 1024)
        )));
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).await?;
    serde_json::from_slice(&buf)
        .map_err(|e| std::io::Error::other(format!("the worker sent a malformed answer: {e}")))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// Feeds `chunks` through the log reader one read at a time; answers (output, sentinels).
    async fn feed(chunks: &[&[u8]]) -> (String, Vec<String>) {
        let (mut tx, rx) = tokio::io::duplex(1 << 20);
        let log = Arc::new(LogCollector::default());
        let reader = tokio::spawn(collect_log(rx, log.clone()));
        let mut ids = Vec::new();
        for c in chunks {
            tx.write_all(c).await.unwrap();
            tx.flush().await.unwrap();
            // Let the reader see this chunk alone.
            tokio::time::sleep(Duration::from_millis(5)).await;
            if let Some(id) = log.lock().last_sentinel.take() {
                ids.push(id);
            }
        }
        drop(tx);
        reader.await.unwrap();
        if let Some(id) = log.lock().last_sentinel.take() {
            ids.push(id);
        }
        (log.take().0, ids)
    }

    #[tokio::test]
    async fn sentinels_are_split_out_even_across_reads() {
        let (out, ids) = feed(&[b"hello\n\x1eTW-EN", b"D:req-1\x1e\nafter\n"]).await;
        assert_eq!(out, "hello\nafter\n");
        assert_eq!(ids, ["req-1"]);
        // Something that merely starts like a sentinel is output.
        let (out, ids) = feed(&[b"a\x1eTW-END:", &[b'x'; 300], b"\n"]).await;
        assert_eq!(out.len(), 2 + 7 + 300 + 1, "{out:?}");
        assert!(ids.is_empty());
        // A lone separator byte at the end of a read is kept until it is known not to start one.
        let (out, _) = feed(&[b"x\x1e", b"y"]).await;
        assert_eq!(out, "x\u{1e}y");
    }

    #[test]
    fn finds_needles() {
        assert_eq!(find(b"abcTW", b"TW"), Some(3));
        assert_eq!(find(b"abc", b"TW"), None);
    }
}
