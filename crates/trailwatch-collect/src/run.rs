//! The loop of one source: read what is new, parse it, deliver it (or spool it while the sink
//! is unavailable), and only then advance the checkpoint.
//!
//! Ordering, which is what makes a crash at any point safe:
//!
//! 1. a chunk of complete lines is read and parsed into a [`Batch`] that carries the position
//!    *after* it (and the sshd sessions open there);
//! 2. if nothing is spooled before it, the batch is delivered at once; otherwise — or if the
//!    delivery fails — it is appended to the spool (durably) and delivered later, in order;
//! 3. after the sink acknowledged every trace of a batch, its position becomes the checkpoint
//!    (atomic write), and then the spooled file (if any) is removed.
//!
//! A crash before 3 resends the batch after the restart: from the spool, or by reading the
//! same bytes again from the checkpoint; trace ids are derived from the records themselves, so
//! the server answers the resent traces as duplicates and stores nothing twice. After a
//! restart, reading resumes after the newest spooled batch (or at the checkpoint when the
//! spool is empty), so spooled data is neither lost nor read twice.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;
use tokio::sync::watch;
use trailwatch_sources::Parsed;
use trailwatch_sources::sshd::OpenSession;

use crate::spool::{Batch, Spool};
use crate::state::{self, CHECKPOINT_VERSION, Checkpoint, Position};
use crate::tail::{Line, TailEvent, TailOptions, Tailer};
use crate::{CollectError, SourceConfig, SourceKind, StartAt};

/// Most traces per delivery (the CTS ingest API's limit per request).
pub const MAX_REQUEST_TRACES: usize = 1000;
/// Most bytes of trace JSON per delivery, well under the server's default body limit (12 MiB).
pub const MAX_REQUEST_BYTES: usize = 4 * 1024 * 1024;
/// Retry delays after a failed delivery: doubling from the first to the cap.
pub const RETRY_FIRST: Duration = Duration::from_millis(500);
pub const RETRY_CAP: Duration = Duration::from_secs(10);

/// What the sink did with a delivery.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Delivery {
    /// Newly stored.
    pub stored: u64,
    /// Already stored (the same `trace_id` in the project): a resend.
    pub duplicates: u64,
    /// Refused for good, with why (trace id, reason); reported, not retried.
    pub refused: Vec<(String, String)>,
}

/// Where traces go.
pub trait Sink: Send + Sync + 'static {
    /// Delivers at most [`MAX_REQUEST_TRACES`] traces. `Err`: nothing is known to be stored;
    /// the same traces are delivered again later (so a sink must be idempotent by `trace_id`).
    fn deliver(&self, traces: &[Value]) -> impl Future<Output = Result<Delivery, String>> + Send;
}

/// Runs one source until `stop` turns true. Returns an error when the source cannot run at all
/// (bad configuration, unreadable state, no journalctl); passing failures (an unreadable file,
/// the sink down) are logged and retried.
pub async fn run_source<S: Sink>(
    config: SourceConfig,
    default_state_dir: PathBuf,
    sink: std::sync::Arc<S>,
    stop: watch::Receiver<bool>,
) -> Result<(), CollectError> {
    let name = config.name.clone();
    let cfg_err = |message: String| CollectError::Config {
        source_name: name.clone(),
        message,
    };
    if let Some((key, msg)) = config.problems().into_iter().next() {
        return Err(cfg_err(match key {
            Some(k) => format!("{k}: {msg}"),
            None => msg,
        }));
    }
    let Some(kind) = config.kind else {
        return Err(cfg_err("`kind` is required".into()));
    };
    let state_dir = config.state_dir.clone().unwrap_or(default_state_dir);
    let state_err = |error| CollectError::State {
        source_name: name.clone(),
        error,
    };
    std::fs::create_dir_all(&state_dir).map_err(|e| {
        state_err(state::StateError::Io {
            path: state_dir.clone(),
            source: e,
        })
    })?;
    let checkpoint_path = state::checkpoint_path(&state_dir, &name);
    let checkpoint = state::load_checkpoint(&checkpoint_path).map_err(state_err)?;
    let spool = Spool::open(
        state_dir.join(format!("{name}.spool")),
        config.max_spool_bytes,
    )
    .map_err(state_err)?;
    // Reading resumes after what is already spooled, else at the checkpoint.
    let resume = match spool.newest().map_err(state_err)? {
        Some(b) => Some((b.position, b.sessions)),
        None => checkpoint.map(|c| (c.position, c.sessions)),
    };
    let (position, sessions) = match resume {
        Some((p, s)) => (Some(p), s),
        None => (None, Vec::new()),
    };
    let mut pipeline = Pipeline {
        name: name.clone(),
        kind,
        sink,
        spool,
        checkpoint_path,
        retry_at: None,
        delay: RETRY_FIRST,
    };
    let parser = RecordParser {
        kind,
        host: config.host.clone(),
        sessions,
    };
    match (kind, position) {
        (SourceKind::Journald, p) => {
            let cursor = match p {
                None => None,
                Some(Position::Journald { cursor }) => Some(cursor),
                Some(Position::File(_)) => {
                    return Err(cfg_err(
                        "the checkpoint is a file position, but the source is journald; \
                         remove the checkpoint (or rename the source)"
                            .into(),
                    ));
                }
            };
            crate::journald::run(&config, cursor, parser, &mut pipeline, stop).await
        }
        (_, Some(Position::Journald { .. })) => Err(cfg_err(
            "the checkpoint is a journald cursor, but the source follows a file; remove the \
             checkpoint (or rename the source)"
                .into(),
        )),
        (_, p) => {
            let p = match p {
                Some(Position::File(f)) => Some(f),
                _ => None,
            };
            run_file(&config, p, parser, &mut pipeline, stop).await
        }
    }
}

async fn run_file<S: Sink>(
    config: &SourceConfig,
    position: Option<crate::tail::FilePosition>,
    mut parser: RecordParser,
    pipeline: &mut Pipeline<S>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), CollectError> {
    let path = config.path.clone().unwrap_or_default();
    let label = path.display().to_string();
    let mut tailer = Tailer::new(
        &path,
        position,
        TailOptions {
            max_line: config.max_line_bytes,
            max_chunk: 1024 * 1024,
            start_at_end: config.start_at == StartAt::End,
        },
    );
    let mut last = position;
    let interval = Duration::from_millis(config.poll_interval_ms);
    let mut read_failing = false;
    loop {
        if *stop.borrow() {
            return Ok(());
        }
        let mut more = false;
        if !pipeline.spool.is_full() {
            match blocking(|| tailer.poll()) {
                Ok(chunk) => {
                    read_failing = false;
                    more = chunk.more;
                    for event in &chunk.events {
                        log_event(&pipeline.name, &label, event);
                    }
                    if chunk.position.is_some() && chunk.position != last {
                        last = chunk.position;
                        let traces = parser.parse(&label, &chunk.lines);
                        if let Some(p) = chunk.position {
                            pipeline
                                .submit(Position::File(p), parser.sessions.clone(), traces)
                                .await?;
                        }
                    }
                }
                Err(e) => {
                    // Passing (permissions being fixed, a disk hiccup): said once, retried.
                    if !read_failing {
                        tracing::warn!(source = %pipeline.name, "cannot read {label}: {e}; retrying");
                    }
                    read_failing = true;
                }
            }
        }
        pipeline.drain().await?;
        if !more {
            tokio::select! {
                () = tokio::time::sleep(interval) => {}
                _ = stop.changed() => {}
            }
        }
    }
}

fn log_event(source: &str, label: &str, event: &TailEvent) {
    match event {
        TailEvent::Opened { file, offset } => {
            tracing::info!(source, "following {label} ({file}) from byte {offset}")
        }
        TailEvent::Rotated { from, to } => {
            tracing::info!(
                source,
                "{label} was rotated ({from} → {to}); the old file was read to its end"
            )
        }
        TailEvent::Truncated { size, offset, .. } => {
            tracing::warn!(
                source,
                "{label} was truncated ({size} bytes < {offset} read); reading from the start"
            )
        }
        TailEvent::LineTooLong { line, bytes } => {
            tracing::warn!(
                source,
                "{label}:{line}: line of {bytes} bytes is longer than max_line_bytes; skipped"
            )
        }
        TailEvent::Lost { file, offset } => tracing::warn!(
            source,
            "{label}: the checkpointed file ({file}) is gone; what followed byte {offset} in it was not read"
        ),
        TailEvent::Missing => {
            tracing::warn!(source, "{label} does not exist (yet); waiting for it")
        }
    }
}

/// Turns lines into traces, carrying sshd sessions from one chunk to the next.
pub(crate) struct RecordParser {
    pub kind: SourceKind,
    pub host: Option<String>,
    pub sessions: Vec<OpenSession>,
}

impl RecordParser {
    /// The traces of `lines`; every record that does not parse is reported as
    /// `<label>:<line>: <reason>`.
    pub fn parse(&mut self, label: &str, lines: &[Line]) -> Vec<Value> {
        use trailwatch_sources::cloud;
        if lines.is_empty() {
            return Vec::new();
        }
        let parsed = match self.kind {
            SourceKind::Sshd | SourceKind::Journald => {
                // One text so that the parser sees sessions open and close in order; its
                // problem lines are indexes into `lines`.
                let mut text = String::with_capacity(lines.iter().map(|l| l.text.len() + 1).sum());
                for l in lines {
                    text.push_str(&l.text);
                    text.push('\n');
                }
                let mut p = if self.kind == SourceKind::Sshd {
                    trailwatch_sources::sshd::parse_syslog_continued(
                        &text,
                        self.host.as_deref(),
                        chrono::Utc::now(),
                        &mut self.sessions,
                    )
                } else {
                    trailwatch_sources::sshd::parse_journald_json_continued(
                        &text,
                        &mut self.sessions,
                    )
                };
                for problem in &mut p.problems {
                    let i = usize::try_from(problem.line).unwrap_or(0).saturating_sub(1);
                    problem.line = lines.get(i).map_or(problem.line, |l| l.line);
                }
                p
            }
            // JSON Lines: each line alone, so one line can never be read as part of a
            // multi-line document.
            kind => {
                let mut all = Parsed::default();
                for l in lines {
                    let mut p = match kind {
                        SourceKind::Cloudtrail => cloud::cloudtrail::parse(&l.text),
                        SourceKind::WindowsSecurity => cloud::windows::parse_json(&l.text),
                        _ => cloud::k8s::parse(&l.text),
                    };
                    all.traces.append(&mut p.traces);
                    all.skipped += p.skipped;
                    all.problems.extend(p.problems.into_iter().map(|mut pr| {
                        pr.line = l.line;
                        pr
                    }));
                }
                all
            }
        };
        for p in &parsed.problems {
            tracing::warn!("{label}:{}: {}", p.line, p.reason);
        }
        parsed.traces
    }
}

/// Delivery, spool and checkpoint of one source.
pub(crate) struct Pipeline<S> {
    pub name: String,
    pub kind: SourceKind,
    pub sink: std::sync::Arc<S>,
    pub spool: Spool,
    pub checkpoint_path: PathBuf,
    /// After a failed delivery, nothing is tried before this.
    pub retry_at: Option<tokio::time::Instant>,
    pub delay: Duration,
}

impl<S: Sink> Pipeline<S> {
    fn state_err(&self, error: state::StateError) -> CollectError {
        CollectError::State {
            source_name: self.name.clone(),
            error,
        }
    }

    fn ready(&self) -> bool {
        self.retry_at
            .is_none_or(|t| tokio::time::Instant::now() >= t)
    }

    /// A new batch: delivered now if nothing waits before it, else spooled behind the rest.
    pub async fn submit(
        &mut self,
        position: Position,
        sessions: Vec<OpenSession>,
        traces: Vec<Value>,
    ) -> Result<(), CollectError> {
        let batch = Batch {
            seq: 0,
            position,
            sessions,
            traces,
        };
        if self.spool.is_empty() && self.ready() {
            match self.deliver(&batch.traces).await {
                Ok(()) => return self.checkpoint(&batch),
                Err(e) => self.failed(&e),
            }
        }
        let spooled = blocking(|| self.spool.push(batch)).map_err(|e| self.state_err(e))?;
        tracing::debug!(source = %self.name, seq = spooled, "spooled a batch");
        if self.spool.is_full() {
            tracing::warn!(
                source = %self.name,
                "the spool is full ({} bytes in {} batches); reading pauses until it drains",
                self.spool.bytes(),
                self.spool.len()
            );
        }
        Ok(())
    }

    /// Delivers spooled batches in order until one fails or none is left.
    pub async fn drain(&mut self) -> Result<(), CollectError> {
        while self.ready() {
            let batch = match self.spool.oldest() {
                Ok(Some(b)) => b,
                Ok(None) => break,
                Err(e) => {
                    tracing::error!(source = %self.name, "{e}; the batch was set aside as .bad");
                    continue;
                }
            };
            match self.deliver(&batch.traces).await {
                Ok(()) => {
                    self.checkpoint(&batch)?;
                    self.spool.pop().map_err(|e| self.state_err(e))?;
                    if self.spool.is_empty() {
                        tracing::info!(source = %self.name, "the spool is empty again");
                    }
                }
                Err(e) => {
                    self.failed(&e);
                    break;
                }
            }
        }
        Ok(())
    }

    fn failed(&mut self, error: &str) {
        tracing::warn!(
            source = %self.name,
            "delivery failed ({error}); spooling, next try in {} ms",
            self.delay.as_millis()
        );
        self.retry_at = Some(tokio::time::Instant::now() + self.delay);
        self.delay = (self.delay * 2).min(RETRY_CAP);
    }

    async fn deliver(&mut self, traces: &[Value]) -> Result<(), String> {
        let mut total = Delivery::default();
        for piece in request_pieces(traces) {
            let d = self.sink.deliver(piece).await?;
            total.stored += d.stored;
            total.duplicates += d.duplicates;
            total.refused.extend(d.refused);
        }
        for (id, reason) in &total.refused {
            tracing::warn!(source = %self.name, "trace {id} was refused: {reason}");
        }
        if !traces.is_empty() {
            // Debug: a busy log delivers several batches a second.
            tracing::debug!(
                source = %self.name,
                "delivered {} traces: {} stored, {} already stored, {} refused",
                traces.len(),
                total.stored,
                total.duplicates,
                total.refused.len()
            );
        }
        self.retry_at = None;
        self.delay = RETRY_FIRST;
        Ok(())
    }

    fn checkpoint(&self, batch: &Batch) -> Result<(), CollectError> {
        let c = Checkpoint {
            version: CHECKPOINT_VERSION,
            source: self.name.clone(),
            kind: self.kind.as_str().to_owned(),
            position: batch.position.clone(),
            sessions: batch.sessions.clone(),
            updated_ms: chrono::Utc::now().timestamp_millis(),
        };
        blocking(|| state::save_checkpoint(&self.checkpoint_path, &c))
            .map_err(|e| self.state_err(e))
    }
}

/// Runs file IO that may block (reads, fsyncs) without stalling the other tasks of a
/// multi-threaded runtime (the server's); on a current-thread runtime it simply runs.
fn blocking<T>(f: impl FnOnce() -> T) -> T {
    match tokio::runtime::Handle::try_current().map(|h| h.runtime_flavor()) {
        Ok(tokio::runtime::RuntimeFlavor::MultiThread) => tokio::task::block_in_place(f),
        _ => f(),
    }
}

/// Splits traces into deliveries of at most [`MAX_REQUEST_TRACES`] traces and about
/// [`MAX_REQUEST_BYTES`] bytes (a single larger trace goes alone).
pub fn request_pieces(traces: &[Value]) -> Vec<&[Value]> {
    let mut out = Vec::new();
    let (mut start, mut bytes) = (0usize, 0usize);
    for (i, t) in traces.iter().enumerate() {
        let size = serde_json::to_string(t).map_or(0, |s| s.len()) + 1;
        if i > start && (i - start >= MAX_REQUEST_TRACES || bytes + size > MAX_REQUEST_BYTES) {
            out.push(&traces[start..i]);
            start = i;
            bytes = 0;
        }
        bytes += size;
    }
    if start < traces.len() {
        out.push(&traces[start..]);
    }
    out
}

/// The default state directory of `trailwatch serve`.
pub fn serve_state_dir(data_dir: &Path) -> PathBuf {
    data_dir.join("collect")
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, Ordering};

    use serde_json::json;

    use super::*;

    #[test]
    fn deliveries_respect_the_count_and_size_limits() {
        let traces: Vec<Value> = (0..2500).map(|i| json!({"i": i})).collect();
        let pieces = request_pieces(&traces);
        assert_eq!(
            pieces.iter().map(|p| p.len()).collect::<Vec<_>>(),
            [1000, 1000, 500]
        );
        let big = "x".repeat(MAX_REQUEST_BYTES / 2);
        let traces: Vec<Value> = (0..3).map(|_| json!({"r": big})).collect();
        assert_eq!(request_pieces(&traces).len(), 3);
        assert!(request_pieces(&[]).is_empty());
    }

    /// A sink that stores by trace id and can be switched off.
    #[derive(Default)]
    struct TestSink {
        down: AtomicBool,
        stored: Mutex<Vec<String>>,
    }

    impl Sink for TestSink {
        async fn deliver(&self, traces: &[Value]) -> Result<Delivery, String> {
            if self.down.load(Ordering::SeqCst) {
                return Err("down".into());
            }
            let mut s = self.stored.lock().unwrap();
            let mut d = Delivery::default();
            for t in traces {
                let id = t["trace_id"].as_str().unwrap().to_owned();
                if s.contains(&id) {
                    d.duplicates += 1;
                } else {
                    s.push(id);
                    d.stored += 1;
                }
            }
            Ok(d)
        }
    }

    fn line(user: &str, pid: u32) -> String {
        format!(
            "2026-11-25T10:00:{:02}Z web sshd[{pid}]: Accepted password for {user} from 10.0.0.{} port 22 ssh2\n",
            pid % 60,
            pid % 250
        )
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_source_follows_a_file_spools_while_the_sink_is_down_and_resumes_after_a_restart() {
        let dir = tempfile::tempdir().unwrap();
        let log = dir.path().join("auth.log");
        std::fs::write(&log, line("a", 1)).unwrap();
        let sink = std::sync::Arc::new(TestSink::default());
        let config = SourceConfig {
            name: "auth".into(),
            kind: Some(SourceKind::Sshd),
            path: Some(log.clone()),
            poll_interval_ms: 10,
            ..SourceConfig::default()
        };
        let state_dir = dir.path().join("state");
        let (stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run_source(
            config.clone(),
            state_dir.clone(),
            sink.clone(),
            stop_rx,
        ));
        let wait_for = |n: usize| {
            let sink = sink.clone();
            async move {
                for _ in 0..500 {
                    if sink.stored.lock().unwrap().len() >= n {
                        return;
                    }
                    tokio::time::sleep(Duration::from_millis(10)).await;
                }
                panic!("{n} traces were never stored");
            }
        };
        wait_for(1).await;
        // The sink goes down: new lines are spooled on disk.
        sink.down.store(true, Ordering::SeqCst);
        std::fs::OpenOptions::new()
            .append(true)
            .open(&log)
            .and_then(|mut f| std::io::Write::write_all(&mut f, line("b", 2).as_bytes()))
            .unwrap();
        let spool_dir = state_dir.join("auth.spool");
        for _ in 0..500 {
            if std::fs::read_dir(&spool_dir).unwrap().count() > 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert!(std::fs::read_dir(&spool_dir).unwrap().count() > 0);
        // Stopped while the batch is spooled, restarted with the sink up: delivered once.
        stop_tx.send(true).unwrap();
        task.await.unwrap().unwrap();
        sink.down.store(false, Ordering::SeqCst);
        let (_stop_tx, stop_rx) = watch::channel(false);
        let task = tokio::spawn(run_source(config, state_dir.clone(), sink.clone(), stop_rx));
        wait_for(2).await;
        for _ in 0..500 {
            if std::fs::read_dir(&spool_dir).unwrap().count() == 0 {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
        assert_eq!(std::fs::read_dir(&spool_dir).unwrap().count(), 0);
        assert_eq!(sink.stored.lock().unwrap().len(), 2);
        let c = state::load_checkpoint(&state::checkpoint_path(&state_dir, "auth"))
            .unwrap()
            .unwrap();
        let Position::File(p) = c.position else {
            panic!("not a file position")
        };
        assert_eq!(p.offset, std::fs::metadata(&log).unwrap().len());
        // Both sessions are open at the checkpoint (no logout yet).
        assert_eq!(c.sessions.len(), 2);
        task.abort();
    }
}
