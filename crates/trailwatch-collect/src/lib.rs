//! Live collection: log sources are followed as they grow and their records become traces
//! (`trailwatch-sources`), delivered to a [`Sink`] — the server's CTS API for
//! `trailwatch collect`, the local store for `trailwatch serve` with `[[source]]` blocks.
//!
//! IO at the edges, a core that unit tests drive on real temporary files:
//!
//! * [`lines`] — complete lines only, a cap per line, invalid UTF-8 replaced per line (pure);
//! * [`tail`] — one path followed across rotation and truncation;
//! * [`state`] — checkpoints written atomically (temp file, fsync, rename, fsync directory);
//! * [`spool`] — a bounded directory of parsed batches waiting for the sink;
//! * [`run`] — the loop per source: read → parse → deliver (or spool) → checkpoint;
//! * [`journald`] — `journalctl -f -o json` as a source.
//!
//! The rules (rotation, truncation, checkpoint and spool formats and bounds) are in
//! `docs/specs/sources.md`, "Live collection".

pub mod journald;
pub mod lines;
pub mod run;
pub mod spool;
pub mod state;
pub mod tail;

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

pub use run::{Delivery, Sink, run_source};

/// What a source reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum SourceKind {
    /// An sshd syslog file (RFC 3164 / RFC 5424), e.g. `/var/log/auth.log`.
    Sshd,
    /// `journalctl -f -o json`.
    Journald,
    /// AWS CloudTrail records, one JSON object per line.
    Cloudtrail,
    /// Windows Security events as JSON Lines (`evtx_dump -o jsonl`, winlogbeat, NXLog).
    WindowsSecurity,
    /// Kubernetes audit events (JSON Lines).
    K8sAudit,
}

impl SourceKind {
    pub const ALL: [SourceKind; 5] = [
        SourceKind::Sshd,
        SourceKind::Journald,
        SourceKind::Cloudtrail,
        SourceKind::WindowsSecurity,
        SourceKind::K8sAudit,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            SourceKind::Sshd => "sshd",
            SourceKind::Journald => "journald",
            SourceKind::Cloudtrail => "cloudtrail",
            SourceKind::WindowsSecurity => "windows-security",
            SourceKind::K8sAudit => "k8s-audit",
        }
    }

    /// Sources that follow a file (all but journald).
    pub fn is_file(self) -> bool {
        self != SourceKind::Journald
    }
}

/// Where reading starts when a source has no checkpoint yet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StartAt {
    /// The whole file (journald: the whole journal).
    #[default]
    Beginning,
    /// Only what is written from now on.
    End,
}

pub const DEFAULT_POLL_INTERVAL_MS: u64 = 250;
pub const DEFAULT_MAX_LINE_BYTES: usize = 1024 * 1024;
pub const DEFAULT_MAX_SPOOL_BYTES: u64 = 256 * 1024 * 1024;

/// One `[[source]]` block (or the flags of `trailwatch collect`). Every field but `name` and
/// `kind` (and `path` for files) has a default.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SourceConfig {
    /// Names the source's checkpoint and spool: letters, digits, `-`, `_`, `.`; unique.
    pub name: String,
    pub kind: Option<SourceKind>,
    /// The file to follow (all kinds but journald).
    pub path: Option<PathBuf>,
    /// sshd: the host name for lines that carry none.
    pub host: Option<String>,
    /// `trailwatch serve`: the project the traces go to (default: the bootstrap project
    /// `default`). `trailwatch collect` sends to the project of its credentials.
    pub project_id: Option<String>,
    /// Checkpoint and spool directory (default: `<data_dir>/collect` for serve, `--state-dir`
    /// for collect).
    pub state_dir: Option<PathBuf>,
    pub start_at: StartAt,
    /// journald: `-u UNIT` filters (e.g. `ssh`, `sshd`).
    pub units: Vec<String>,
    /// journald: field matches passed to journalctl (e.g. `_COMM=sshd`).
    pub matches: Vec<String>,
    /// journald: the journalctl program.
    pub journalctl: PathBuf,
    /// How often a file is looked at when nothing is new.
    pub poll_interval_ms: u64,
    /// Longest line kept; longer lines are reported (file and line) and skipped.
    pub max_line_bytes: usize,
    /// Bound of the disk spool; when full, reading pauses.
    pub max_spool_bytes: u64,
}

impl Default for SourceConfig {
    fn default() -> Self {
        SourceConfig {
            name: String::new(),
            kind: None,
            path: None,
            host: None,
            project_id: None,
            state_dir: None,
            start_at: StartAt::Beginning,
            units: Vec::new(),
            matches: Vec::new(),
            journalctl: PathBuf::from("journalctl"),
            poll_interval_ms: DEFAULT_POLL_INTERVAL_MS,
            max_line_bytes: DEFAULT_MAX_LINE_BYTES,
            max_spool_bytes: DEFAULT_MAX_SPOOL_BYTES,
        }
    }
}

/// Whether `name` may name a source (it becomes part of file names).
pub fn valid_source_name(name: &str) -> bool {
    !name.is_empty()
        && name.len() <= 64
        && !name.starts_with('.')
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
}

impl SourceConfig {
    /// Every problem of this block on its own, each with the key it is about (None: the
    /// block). Uniqueness of names across blocks is the caller's check.
    pub fn problems(&self) -> Vec<(Option<&'static str>, String)> {
        let mut out = Vec::new();
        if self.name.is_empty() {
            out.push((Some("name"), "`name` is required".to_owned()));
        } else if !valid_source_name(&self.name) {
            out.push((
                Some("name"),
                format!(
                    "`{}` is not a valid source name (1 to 64 letters, digits, `-`, `_`, `.`; \
                     not starting with `.`)",
                    self.name
                ),
            ));
        }
        let Some(kind) = self.kind else {
            let kinds: Vec<&str> = SourceKind::ALL.iter().map(|k| k.as_str()).collect();
            out.push((
                Some("kind"),
                format!("`kind` is required: one of {}", kinds.join(", ")),
            ));
            return out;
        };
        match (kind.is_file(), &self.path) {
            (true, None) => out.push((
                Some("path"),
                format!("`path` is required for kind `{}`", kind.as_str()),
            )),
            (false, Some(_)) => out.push((
                Some("path"),
                "journald has no `path` (use `units` or `matches` to choose records)".to_owned(),
            )),
            _ => {}
        }
        if self.host.is_some() && kind != SourceKind::Sshd {
            out.push((Some("host"), "`host` is only for kind `sshd`".to_owned()));
        }
        if kind != SourceKind::Journald && (!self.units.is_empty() || !self.matches.is_empty()) {
            out.push((
                Some(if self.units.is_empty() {
                    "matches"
                } else {
                    "units"
                }),
                "`units` and `matches` are only for kind `journald`".to_owned(),
            ));
        }
        if let Some(m) = self.matches.iter().find(|m| {
            let (k, _) = m.split_once('=').unwrap_or(("", ""));
            k.is_empty()
                || !k
                    .bytes()
                    .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        }) {
            out.push((
                Some("matches"),
                format!("`{m}` is not a journal match (FIELD=value, e.g. _COMM=sshd)"),
            ));
        }
        if !(10..=60_000).contains(&self.poll_interval_ms) {
            out.push((
                Some("poll_interval_ms"),
                format!("{} is out of range (10 – 60000)", self.poll_interval_ms),
            ));
        }
        if !(1024..=16 * 1024 * 1024).contains(&self.max_line_bytes) {
            out.push((
                Some("max_line_bytes"),
                format!("{} is out of range (1024 – 16777216)", self.max_line_bytes),
            ));
        }
        if self.max_spool_bytes < 1024 * 1024 {
            out.push((
                Some("max_spool_bytes"),
                format!("{} is below the minimum of 1048576", self.max_spool_bytes),
            ));
        }
        out
    }
}

/// Why a source stopped.
#[derive(Debug, thiserror::Error)]
pub enum CollectError {
    #[error("source {source_name}: {message}")]
    Config {
        source_name: String,
        message: String,
    },
    #[error("source {source_name}: {error}")]
    State {
        source_name: String,
        error: state::StateError,
    },
    #[error(
        "source {source_name}: cannot run {program}: {error} (journald sources need journalctl; \
         on a host without systemd, follow the syslog file with kind = \"sshd\")"
    )]
    Journalctl {
        source_name: String,
        program: String,
        error: std::io::Error,
    },
}
