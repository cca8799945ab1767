//! Offline verification of an archive: every file against the signed digest chain.
//!
//! [`verify`] reads the objects under `CloudTraces/` through an [`ObjectSource`] (a folder, a
//! bucket, or a [`MemorySource`] in tests) and needs nothing but the public key. It checks:
//!
//! 1. **Digests**: each digest decompresses and parses (`truncated`, `malformed`), names our key
//!    (`wrong-key`) and carries a valid Ed25519 signature over its content (`bad-signature`), and
//!    is stored at the key it names (`reordered`: moved or swapped digests).
//! 2. **The chain** of each tracker ([`Layout`]), in sequence order: each digest's
//!    `previous_digest_object` exists (`missing`, naming the deleted digest), its stored bytes
//!    hash to `previous_digest_hash_value` (`chain-broken`: replaced or altered), and its
//!    signature and `digest_end` are the ones recorded (`chain-broken`); sequence numbers go up by
//!    one (`sequence-gap`); periods are contiguous (`sequence-gap` for a gap, `reordered` for an
//!    overlap or a period that ends before it starts); the first digest of a chain has
//!    sequence 0.
//! 3. **The tail**: the newest trusted digest of each chain ended at most one period plus a grace
//!    before `min(to, now)` (`stale-tail`: the newest digests were deleted, or the archiver
//!    stopped without closing the chain). A digest with `digest_end: true` (written on shutdown
//!    or when the tracker was disabled) closes the chain and is never stale.
//! 4. **Listed files**: every trace and record file listed by a trusted digest exists
//!    (`missing`) and its stored bytes have the listed SHA-256 (`altered`, or `truncated` when
//!    it is shorter than listed, with the gzip error).
//! 5. **Unlisted files**: every other object under `CloudTraces/` is listed by a trusted digest
//!    (`unlisted`: forged, or its digest is missing or untrusted). A file newer than its chain's
//!    newest digest and younger than one period plus the grace is *pending* (its digest is not
//!    due yet): counted, not a problem.
//!
//! `from`/`to` limit the check to files whose key time falls in `[from, to]`, the digests whose
//! periods overlap that window, and the link into the first of them. Digests are never expired
//! by retention, so `--from` set to the retention horizon verifies an archive whose oldest trace
//! files were deleted by the lifecycle rule.
//!
//! Hashing runs over each object's bytes once (SHA-256 with SHA-NI where the CPU has it), on
//! `threads` worker threads that fetch and hash in parallel.
//!
//! What cannot be detected offline: an attacker who deletes a tracker's entire archive (every
//! digest and every file), or every digest and file written after a shutdown digest, leaves an
//! archive that is consistent in itself. The report lists each chain's newest digest so that it
//! can be compared with what the server says (`GET …/tracker`) or with an earlier report.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::fmt;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};

use chrono::{DateTime, SecondsFormat, TimeDelta, Utc};
use serde::Serialize;
use sha2::{Digest as _, Sha256};

use crate::digest::{DigestError, DigestFile, FileEntry, read_digest};
use crate::file::{self, ReadError};
use crate::keys::PublicKey;
use crate::layout::{self, FileKind, Layout, ObjectKind, ParsedKey};

/// The prefix verification lists.
pub const LIST_PREFIX: &str = "CloudTraces/";

/// How long a digest period normally is.
pub const DEFAULT_PERIOD: TimeDelta = TimeDelta::hours(1);

/// How late a digest may be written after its period ends (transfer cycle plus slack).
pub const DEFAULT_GRACE: TimeDelta = TimeDelta::minutes(15);

/// An object in a listing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ListedObject {
    /// Its key.
    pub key: String,
    /// Its size in bytes.
    pub size: u64,
}

/// An error of the object source (IO, network): verification could not run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct SourceError(pub String);

/// Where the archive's objects come from. The binary implements it for a folder and for an
/// `object_store` bucket; [`MemorySource`] is an in-memory map.
pub trait ObjectSource: Sync {
    /// Every object whose key starts with `prefix` (which ends in `/`), at any depth.
    fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, SourceError>;
    /// The object's bytes, `None` when it does not exist.
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SourceError>;
}

/// An archive in memory.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MemorySource {
    /// Key → bytes.
    pub objects: BTreeMap<String, Vec<u8>>,
}

impl ObjectSource for MemorySource {
    fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, SourceError> {
        Ok(self
            .objects
            .range(prefix.to_owned()..)
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| ListedObject {
                key: k.clone(),
                size: v.len() as u64,
            })
            .collect())
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SourceError> {
        Ok(self.objects.get(key).cloned())
    }
}

/// Verification could not run (the report would be meaningless).
#[derive(Debug, thiserror::Error)]
pub enum VerifyError {
    /// Listing failed.
    #[error("cannot list {prefix}: {source}")]
    List {
        /// The prefix.
        prefix: String,
        /// Why.
        source: SourceError,
    },
    /// Reading an object failed (other than "does not exist").
    #[error("cannot read {key}: {source}")]
    Get {
        /// The object.
        key: String,
        /// Why.
        source: SourceError,
    },
}

/// What to verify and how.
#[derive(Debug, Clone)]
pub struct VerifyOptions {
    /// The archive's public key.
    pub public_key: PublicKey,
    /// Oldest file time to check (`--from`); `None`: from the start of each chain.
    pub from: Option<DateTime<Utc>>,
    /// Newest file time to check (`--to`); `None`: up to `now`.
    pub to: Option<DateTime<Utc>>,
    /// The current time (for the stale-tail and pending checks).
    pub now: DateTime<Utc>,
    /// Normal digest period ([`DEFAULT_PERIOD`]).
    pub period: TimeDelta,
    /// Allowed delay of a digest after its period ([`DEFAULT_GRACE`]).
    pub grace: TimeDelta,
    /// Worker threads that fetch and hash files (at least 1).
    pub threads: usize,
}

impl VerifyOptions {
    /// The whole archive, default period and grace, one thread.
    pub fn new(public_key: PublicKey, now: DateTime<Utc>) -> VerifyOptions {
        VerifyOptions {
            public_key,
            from: None,
            to: None,
            now,
            period: DEFAULT_PERIOD,
            grace: DEFAULT_GRACE,
            threads: 1,
        }
    }
}

/// Progress, reported after each digest and each file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Progress {
    /// Digests read so far.
    pub digests_done: u64,
    /// Digests to read (predecessors fetched on demand come on top).
    pub digests_total: u64,
    /// Files hashed so far.
    pub files_done: u64,
    /// Files to hash (known once every digest is read).
    pub files_total: u64,
    /// Bytes of files hashed so far.
    pub bytes_done: u64,
    /// Bytes of files to hash, as the digests list them.
    pub bytes_total: u64,
}

/// The kinds of problem verification names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum ProblemKind {
    /// A file listed by a digest, or a digest the chain refers to, does not exist.
    Missing,
    /// A file's bytes are not the ones the digest lists.
    Altered,
    /// A file that no trusted digest lists (forged, or its digest is missing or untrusted).
    Unlisted,
    /// A digest whose signature does not verify (or that has none).
    BadSignature,
    /// A digest signed by another key.
    WrongKey,
    /// Sequence numbers or periods of a chain that skip.
    SequenceGap,
    /// A digest not stored where it says it belongs, or periods out of order.
    Reordered,
    /// A file or digest cut short.
    Truncated,
    /// A digest whose record of its predecessor (hash, signature, end flag) does not match it.
    ChainBroken,
    /// A chain whose newest digest is older than one period plus the grace.
    StaleTail,
    /// A digest that is not a readable digest.
    Malformed,
}

impl ProblemKind {
    /// The kebab-case name used in reports.
    pub fn as_str(self) -> &'static str {
        match self {
            ProblemKind::Missing => "missing",
            ProblemKind::Altered => "altered",
            ProblemKind::Unlisted => "unlisted",
            ProblemKind::BadSignature => "bad-signature",
            ProblemKind::WrongKey => "wrong-key",
            ProblemKind::SequenceGap => "sequence-gap",
            ProblemKind::Reordered => "reordered",
            ProblemKind::Truncated => "truncated",
            ProblemKind::ChainBroken => "chain-broken",
            ProblemKind::StaleTail => "stale-tail",
            ProblemKind::Malformed => "malformed",
        }
    }
}

impl fmt::Display for ProblemKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One problem, naming the object it concerns.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Problem {
    /// What is wrong.
    pub kind: ProblemKind,
    /// The object concerned (for `missing`, the key that should exist).
    pub object: String,
    /// What the digest chain says should be there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub expected: Option<String>,
    /// What is there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub actual: Option<String>,
    /// A sentence that explains it.
    pub detail: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: {}", self.kind, self.object, self.detail)?;
        match (&self.expected, &self.actual) {
            (Some(e), Some(a)) => write!(f, " (expected {e}; actual {a})"),
            (Some(e), None) => write!(f, " (expected {e})"),
            (None, Some(a)) => write!(f, " (actual {a})"),
            (None, None) => Ok(()),
        }
    }
}

/// Totals of what was checked.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize)]
pub struct Counts {
    /// Digests read.
    pub digests: u64,
    /// Trace and record files hashed.
    pub files: u64,
    /// Bytes of those files.
    pub bytes: u64,
    /// Traces in the files that verified.
    pub traces: u64,
    /// Records (alarms, receipts) in the files that verified.
    pub records: u64,
    /// Files not listed yet because their digest is not due.
    pub pending_files: u64,
}

/// One digest chain as found.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ChainSummary {
    /// Region.
    pub region: String,
    /// Tracker.
    pub tracker: String,
    /// File prefix.
    pub file_prefix: String,
    /// Trusted digests checked in the window.
    pub digests: u64,
    /// Lowest sequence checked.
    pub first_sequence: Option<u64>,
    /// Highest sequence checked (the chain's newest trusted digest in the window).
    pub last_sequence: Option<u64>,
    /// Key of that digest.
    pub newest_digest: Option<String>,
    /// Its period end (RFC 3339).
    pub newest_end: Option<String>,
    /// Whether it closed the chain (`digest_end`).
    pub ended: bool,
}

/// The outcome of [`verify`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Report {
    /// `from` (RFC 3339), if given.
    pub from: Option<String>,
    /// `to` (RFC 3339), if given.
    pub to: Option<String>,
    /// `now` (RFC 3339).
    pub now: String,
    /// Totals.
    pub counts: Counts,
    /// The chains found.
    pub chains: Vec<ChainSummary>,
    /// Every problem, sorted by object, then kind name.
    pub problems: Vec<Problem>,
}

impl Report {
    /// Whether the archive verified: no problem at all.
    pub fn valid(&self) -> bool {
        self.problems.is_empty()
    }

    /// Problems of one kind.
    pub fn of_kind(&self, kind: ProblemKind) -> impl Iterator<Item = &Problem> {
        self.problems.iter().filter(move |p| p.kind == kind)
    }
}

impl Serialize for Report {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        #[derive(Serialize)]
        struct Wire<'a> {
            valid: bool,
            from: &'a Option<String>,
            to: &'a Option<String>,
            now: &'a str,
            counts: &'a Counts,
            chains: &'a [ChainSummary],
            problems: &'a [Problem],
        }
        Wire {
            valid: self.valid(),
            from: &self.from,
            to: &self.to,
            now: &self.now,
            counts: &self.counts,
            chains: &self.chains,
            problems: &self.problems,
        }
        .serialize(s)
    }
}

/// Verifies the whole archive (or `[from, to]`) with the default options.
pub fn verify(
    source: &dyn ObjectSource,
    public_key: &PublicKey,
    from: Option<DateTime<Utc>>,
    to: Option<DateTime<Utc>>,
    now: DateTime<Utc>,
) -> Result<Report, VerifyError> {
    let mut options = VerifyOptions::new(*public_key, now);
    options.from = from;
    options.to = to;
    verify_with(source, &options, &|_| {})
}

/// Verifies with explicit options, calling `progress` as it goes (from worker threads too).
pub fn verify_with(
    source: &dyn ObjectSource,
    options: &VerifyOptions,
    progress: &(dyn Fn(&Progress) + Sync),
) -> Result<Report, VerifyError> {
    Verifier {
        source,
        opts: options,
        progress,
        sizes: HashMap::new(),
        digests: HashMap::new(),
        problems: Vec::new(),
        counts: Counts::default(),
        status: Progress::default(),
    }
    .run()
}

fn rfc3339(t: DateTime<Utc>) -> String {
    t.to_rfc3339_opts(SecondsFormat::Secs, true)
}

fn problem(
    kind: ProblemKind,
    object: &str,
    expected: Option<String>,
    actual: Option<String>,
    detail: String,
) -> Problem {
    Problem {
        kind,
        object: object.to_owned(),
        expected,
        actual,
        detail,
    }
}

/// A digest object as read.
struct DigestRecord {
    key: String,
    sha256: [u8; 32],
    file: Option<DigestFile>,
    trusted: bool,
}

impl DigestRecord {
    /// The content of a trusted digest.
    fn trusted_file(&self) -> Option<&DigestFile> {
        self.file.as_ref().filter(|_| self.trusted)
    }
}

/// A file to hash, as a trusted digest lists it.
struct FileJob {
    entry: FileEntry,
    listed_by: String,
}

enum FileOutcome {
    Verified,
    Missing,
    /// The bytes differ from the listing. `sha256` is `None` when the object is larger than
    /// listed and was not read at all; `gzip` is the decompression error of a shorter object.
    Mismatch {
        size: u64,
        sha256: Option<[u8; 32]>,
        gzip: Option<String>,
    },
}

struct Verifier<'a> {
    source: &'a dyn ObjectSource,
    opts: &'a VerifyOptions,
    progress: &'a (dyn Fn(&Progress) + Sync),
    sizes: HashMap<String, u64>,
    digests: HashMap<String, DigestRecord>,
    problems: Vec<Problem>,
    counts: Counts,
    status: Progress,
}

/// The digest keys of one chain, oldest first.
type ChainKeys = BTreeMap<Layout, Vec<(DateTime<Utc>, String)>>;

/// Every object that is not a digest, with its parsed key (or why it is not an archive key).
type Others = Vec<(String, Result<ParsedKey, String>)>;

/// What the trusted digests list.
#[derive(Default)]
struct Listings {
    /// Every object a trusted digest lists.
    listed: HashSet<String>,
    /// Objects listed by untrusted digests → that digest.
    untrusted: HashMap<String, String>,
    /// The files to hash (listed and in the window), by key.
    jobs: BTreeMap<String, FileJob>,
    /// Each chain's newest trusted digest: period end.
    heads: HashMap<Layout, DateTime<Utc>>,
}

impl Verifier<'_> {
    fn run(mut self) -> Result<Report, VerifyError> {
        let (chains, others) = self.list()?;
        let selected = self.select(chains);
        self.status.digests_total = selected.iter().map(|(_, k, _)| k.len() as u64).sum();
        for (_, keys, _) in &selected {
            for key in keys {
                self.load_digest(key)?;
            }
        }
        let mut listings = Listings::default();
        let mut summaries = Vec::new();
        for (layout, keys, from_start) in &selected {
            let nodes = self.check_chain(layout, keys, *from_start)?;
            self.check_tail(layout, &nodes, &mut listings);
            summaries.push(self.collect_listings(layout, keys, &nodes, &mut listings));
        }
        self.check_files(std::mem::take(&mut listings.jobs).into_values().collect())?;
        self.check_unlisted(others, &listings);

        self.problems.sort_by(|a, b| {
            (a.object.as_str(), a.kind.as_str(), &a.detail).cmp(&(
                b.object.as_str(),
                b.kind.as_str(),
                &b.detail,
            ))
        });
        self.problems.dedup();
        let opts = self.opts;
        Ok(Report {
            from: opts.from.map(rfc3339),
            to: opts.to.map(rfc3339),
            now: rfc3339(opts.now),
            counts: self.counts,
            chains: summaries,
            problems: self.problems,
        })
    }

    /// Lists `CloudTraces/`: digest keys by chain, and every other object with its parsed key.
    fn list(&mut self) -> Result<(ChainKeys, Others), VerifyError> {
        let listing = self
            .source
            .list(LIST_PREFIX)
            .map_err(|source| VerifyError::List {
                prefix: LIST_PREFIX.to_owned(),
                source,
            })?;
        let mut chains = ChainKeys::new();
        let mut others = Vec::new();
        for obj in listing {
            match layout::parse_key(&obj.key) {
                Ok(p) if p.kind == ObjectKind::Digest => {
                    chains
                        .entry(p.layout)
                        .or_default()
                        .push((p.time, obj.key.clone()));
                }
                Ok(p) => others.push((obj.key.clone(), Ok(p))),
                Err(e) => others.push((obj.key.clone(), Err(e.to_string()))),
            }
            self.sizes.insert(obj.key, obj.size);
        }
        Ok((chains, others))
    }

    /// The digests of each chain whose periods overlap the window: from the first ending at or
    /// after `from` (or the newest, if all end before) to the first ending after `to`. The flag
    /// says whether the selection starts with the chain's oldest stored digest.
    fn select(&self, chains: ChainKeys) -> Vec<(Layout, Vec<String>, bool)> {
        let mut selected = Vec::new();
        for (layout, mut keys) in chains {
            keys.sort();
            let len = keys.len();
            let lo = self
                .opts
                .from
                .map_or(0, |from| keys.partition_point(|(t, _)| *t < from))
                .min(len.saturating_sub(1));
            let hi = self.opts.to.map_or(len, |to| {
                (keys.partition_point(|(t, _)| *t <= to) + 1).min(len)
            });
            let keys = keys
                .get(lo..hi.max(lo))
                .unwrap_or_default()
                .iter()
                .map(|(_, k)| k.clone())
                .collect();
            selected.push((layout, keys, lo == 0));
        }
        selected
    }

    /// `min(to, now)`: the time the archive is judged at.
    fn horizon(&self) -> DateTime<Utc> {
        self.opts
            .to
            .map_or(self.opts.now, |to| to.min(self.opts.now))
    }

    fn in_window(&self, t: DateTime<Utc>) -> bool {
        self.opts.from.is_none_or(|from| t >= from) && self.opts.to.is_none_or(|to| t <= to)
    }

    /// The newest trusted digest must not be older than one period plus the grace, unless it
    /// closed the chain.
    fn check_tail(&mut self, layout: &Layout, nodes: &[String], listings: &mut Listings) {
        let Some(head) = nodes.last().and_then(|k| self.digests.get(k)) else {
            return;
        };
        let Some(file) = head.trusted_file() else {
            return;
        };
        let d = &file.digest;
        listings.heads.insert(layout.clone(), d.digest_end_time);
        let due = self.horizon() - self.opts.period - self.opts.grace;
        if d.digest_end || d.digest_end_time >= due {
            return;
        }
        let stale = problem(
            ProblemKind::StaleTail,
            &head.key,
            Some(format!("a digest ending at or after {}", rfc3339(due))),
            Some(format!(
                "the newest digest (sequence {}) ends at {}",
                d.sequence,
                rfc3339(d.digest_end_time)
            )),
            format!(
                "no digest of tracker {} follows this one: newer digests were deleted, or the archiver stopped without closing the chain",
                layout.tracker()
            ),
        );
        self.problems.push(stale);
    }

    /// Records what the chain's trusted digests list (and schedules the files in the window),
    /// what its untrusted digests list, and summarizes the chain.
    fn collect_listings(
        &self,
        layout: &Layout,
        keys: &[String],
        nodes: &[String],
        listings: &mut Listings,
    ) -> ChainSummary {
        let mut summary = ChainSummary {
            region: layout.region().to_owned(),
            tracker: layout.tracker().to_owned(),
            file_prefix: layout.file_prefix().to_owned(),
            digests: nodes.len() as u64,
            first_sequence: None,
            last_sequence: None,
            newest_digest: None,
            newest_end: None,
            ended: false,
        };
        for key in nodes {
            let Some(file) = self.digests.get(key).and_then(DigestRecord::trusted_file) else {
                continue;
            };
            let d = &file.digest;
            summary.first_sequence = summary.first_sequence.or(Some(d.sequence));
            summary.last_sequence = Some(d.sequence);
            summary.newest_digest = Some(key.clone());
            summary.newest_end = Some(rfc3339(d.digest_end_time));
            summary.ended = d.digest_end;
            for entry in &d.log_files {
                listings.listed.insert(entry.object.clone());
                let in_window =
                    layout::parse_key(&entry.object).map_or(true, |p| self.in_window(p.time));
                if in_window && !listings.jobs.contains_key(&entry.object) {
                    listings.jobs.insert(
                        entry.object.clone(),
                        FileJob {
                            entry: entry.clone(),
                            listed_by: key.clone(),
                        },
                    );
                }
            }
        }
        for key in keys {
            if let Some(rec) = self.digests.get(key)
                && !rec.trusted
                && let Some(file) = &rec.file
            {
                for entry in &file.digest.log_files {
                    listings.untrusted.insert(entry.object.clone(), key.clone());
                }
            }
        }
        summary
    }

    /// Every object in the window that no trusted digest lists is unlisted, unless its digest is
    /// not due yet (pending).
    fn check_unlisted(&mut self, others: Others, listings: &Listings) {
        let horizon = self.horizon();
        for (key, parsed) in others {
            if listings.listed.contains(&key) {
                continue;
            }
            let p = match parsed {
                Ok(p) => p,
                Err(reason) => {
                    self.problems.push(problem(
                        ProblemKind::Unlisted,
                        &key,
                        Some("only archive objects listed by a digest".to_owned()),
                        Some("not an archive key".to_owned()),
                        format!("no digest lists this object and {reason}"),
                    ));
                    continue;
                }
            };
            if !self.in_window(p.time) {
                continue;
            }
            let head_end = listings.heads.get(&p.layout).copied();
            let after_head = head_end.is_none_or(|end| p.time >= end);
            if after_head && p.time + self.opts.period + self.opts.grace >= horizon {
                self.counts.pending_files += 1;
                continue;
            }
            let detail = if let Some(d) = listings.untrusted.get(&key) {
                format!("only the untrusted digest {d} lists this file")
            } else if head_end.is_none() {
                format!(
                    "no trusted digest of tracker {} covers this file",
                    p.layout.tracker()
                )
            } else if after_head {
                "this file is newer than the newest digest of its tracker, and its digest is overdue"
                    .to_owned()
            } else {
                "no digest lists this file: it was added (forged), or the digest of its period is missing or untrusted".to_owned()
            };
            self.problems.push(problem(
                ProblemKind::Unlisted,
                &key,
                Some(format!(
                    "listed by the digest whose period covers {}",
                    rfc3339(p.time)
                )),
                Some("listed by no trusted digest".to_owned()),
                detail,
            ));
        }
    }

    /// Fetches, parses and checks the signature of one digest (once).
    fn load_digest(&mut self, key: &str) -> Result<(), VerifyError> {
        if self.digests.contains_key(key) {
            return Ok(());
        }
        let bytes = self.source.get(key).map_err(|source| VerifyError::Get {
            key: key.to_owned(),
            source,
        })?;
        self.status.digests_done += 1;
        (self.progress)(&self.status);
        let Some(bytes) = bytes else {
            self.problems.push(problem(
                ProblemKind::Missing,
                key,
                None,
                None,
                "the digest was listed but could not be fetched".to_owned(),
            ));
            return Ok(());
        };
        self.counts.digests += 1;
        let sha256: [u8; 32] = Sha256::digest(&bytes).into();
        let mut record = DigestRecord {
            key: key.to_owned(),
            sha256,
            file: None,
            trusted: false,
        };
        match read_digest(&bytes) {
            Err(DigestError::Read(ReadError::Truncated(reason))) => {
                self.problems.push(problem(
                    ProblemKind::Truncated,
                    key,
                    None,
                    Some(format!("{} bytes", bytes.len())),
                    format!("the digest is cut short: {reason}"),
                ));
            }
            Err(e) => self.problems.push(problem(
                ProblemKind::Malformed,
                key,
                None,
                None,
                format!("not a readable digest: {e}"),
            )),
            Ok(file) => {
                match file.check_signature(&self.opts.public_key) {
                    Ok(()) => record.trusted = true,
                    Err(DigestError::WrongKey { expected, found }) => {
                        self.problems.push(problem(
                            ProblemKind::WrongKey,
                            key,
                            Some(format!("key id {expected}")),
                            Some(format!("key id {found}")),
                            "the digest is signed by another key".to_owned(),
                        ));
                    }
                    Err(_) => self.problems.push(problem(
                        ProblemKind::BadSignature,
                        key,
                        Some(format!(
                            "a valid Ed25519 signature by key {}",
                            self.opts.public_key.key_id()
                        )),
                        Some(match file.signature {
                            Some(sig) => format!("signature {}…", &hex::encode(sig)[..16]),
                            None => "no signature".to_owned(),
                        }),
                        "the digest's content is not what was signed (altered)".to_owned(),
                    )),
                }
                record.file = Some(file);
            }
        }
        self.digests.insert(key.to_owned(), record);
        Ok(())
    }

    /// Checks one chain. Returns the keys of its trusted digests in sequence order, one per
    /// claimed location (a digest stored at its own key wins over a copy stored elsewhere).
    /// `from_start`: `keys` begin with the chain's oldest stored digest.
    fn check_chain(
        &mut self,
        layout: &Layout,
        keys: &[String],
        from_start: bool,
    ) -> Result<Vec<String>, VerifyError> {
        // Digests stored where they do not belong.
        let mut by_claim: BTreeMap<String, String> = BTreeMap::new();
        for key in keys {
            let Some(file) = self.digests.get(key).and_then(DigestRecord::trusted_file) else {
                continue;
            };
            let claim = &file.digest.digest_object;
            if claim != key {
                self.problems.push(problem(
                    ProblemKind::Reordered,
                    key,
                    Some(format!("the digest that belongs at {key}")),
                    Some(format!(
                        "the digest of sequence {} that belongs at {claim}",
                        file.digest.sequence
                    )),
                    "this object holds another digest (digests were swapped, moved or copied)"
                        .to_owned(),
                ));
            }
            let same_chain = layout::parse_key(claim).is_ok_and(|p| p.layout == *layout);
            let placed = by_claim.get(claim).is_some_and(|k| k == claim);
            if same_chain && !placed {
                by_claim.insert(claim.clone(), key.clone());
            }
        }
        let mut nodes: Vec<(u64, DateTime<Utc>, String)> = by_claim
            .values()
            .filter_map(|k| {
                let d = &self.digests.get(k)?.trusted_file()?.digest;
                Some((d.sequence, d.digest_end_time, k.clone()))
            })
            .collect();
        nodes.sort();

        // Predecessors outside the window (the link into it) are fetched on demand.
        let mut wanted = Vec::new();
        for (_, _, k) in &nodes {
            if let Some(file) = self.digests.get(k).and_then(DigestRecord::trusted_file) {
                let prev = &file.digest.previous_digest_object;
                if !prev.is_empty()
                    && !by_claim.contains_key(prev)
                    && !self.digests.contains_key(prev)
                    && self.sizes.contains_key(prev)
                {
                    wanted.push(prev.clone());
                }
            }
        }
        for prev in wanted {
            self.load_digest(&prev)?;
        }

        let mut found = Vec::new();
        let mut previous_node: Option<(u64, String)> = None;
        for (_, _, key) in &nodes {
            let Some(c) = self
                .digests
                .get(key)
                .and_then(DigestRecord::trusted_file)
                .map(|f| f.digest.clone())
            else {
                continue;
            };
            let mut new = Vec::new();
            if c.digest_end_time <= c.digest_start_time {
                new.push(problem(
                    ProblemKind::Reordered,
                    key,
                    Some(format!(
                        "a period ending after {}",
                        rfc3339(c.digest_start_time)
                    )),
                    Some(format!("ends at {}", rfc3339(c.digest_end_time))),
                    "the digest's period ends before it starts".to_owned(),
                ));
            }
            if let Some((seq, other)) = &previous_node
                && *seq == c.sequence
            {
                new.push(problem(
                    ProblemKind::ChainBroken,
                    key,
                    Some(format!("one digest with sequence {seq}")),
                    Some(format!("also {other}")),
                    "two digests of the chain have the same sequence number".to_owned(),
                ));
            }
            let prev_obj = c.previous_digest_object.clone();
            if prev_obj.is_empty() {
                if c.sequence != 0 {
                    new.push(problem(
                        ProblemKind::SequenceGap,
                        key,
                        Some("sequence 0 for a chain's first digest".to_owned()),
                        Some(format!("sequence {}", c.sequence)),
                        "the digest names no predecessor but is not the first".to_owned(),
                    ));
                }
                if previous_node.is_some() {
                    new.push(problem(
                        ProblemKind::ChainBroken,
                        key,
                        Some("one chain start".to_owned()),
                        Some("a second chain start".to_owned()),
                        "the digest starts a new chain although earlier digests exist".to_owned(),
                    ));
                }
            } else {
                let p_key = by_claim.get(&prev_obj).cloned().or_else(|| {
                    self.digests
                        .contains_key(&prev_obj)
                        .then(|| prev_obj.clone())
                });
                match p_key.as_ref().and_then(|k| self.digests.get(k)) {
                    None => {
                        new.push(problem(
                            ProblemKind::Missing,
                            &prev_obj,
                            Some(format!(
                                "the digest of sequence {} (sha256 {})",
                                c.sequence.saturating_sub(1),
                                c.previous_digest_hash_value
                            )),
                            Some("no such object".to_owned()),
                            format!("the digest {key} chains to this digest, which was deleted"),
                        ));
                        let expected = match &previous_node {
                            Some((seq, _)) => Some(seq + 1),
                            None if from_start => Some(0),
                            None => None,
                        };
                        if let Some(expected) = expected
                            && expected != c.sequence
                        {
                            new.push(problem(
                                ProblemKind::SequenceGap,
                                key,
                                Some(format!("sequence {expected}")),
                                Some(format!("sequence {}", c.sequence)),
                                "digests are missing before this one".to_owned(),
                            ));
                        }
                    }
                    Some(p) if hex::encode(p.sha256) != c.previous_digest_hash_value => {
                        new.push(problem(
                            ProblemKind::ChainBroken,
                            &p.key,
                            Some(format!("sha256 {}", c.previous_digest_hash_value)),
                            Some(format!("sha256 {}", hex::encode(p.sha256))),
                            format!(
                                "the digest {key} (sequence {}) chains to another version of this digest: it was replaced or altered",
                                c.sequence
                            ),
                        ));
                    }
                    Some(p) => {
                        if let Some(pf) = p.trusted_file() {
                            let pd = &pf.digest;
                            let p_sig = pf.signature.map(hex::encode).unwrap_or_default();
                            if c.previous_digest_signature != p_sig {
                                new.push(problem(
                                    ProblemKind::ChainBroken,
                                    key,
                                    Some(format!("previous_digest_signature {p_sig}")),
                                    Some(format!(
                                        "previous_digest_signature {}",
                                        c.previous_digest_signature
                                    )),
                                    "the digest records another signature for its predecessor"
                                        .to_owned(),
                                ));
                            }
                            if c.previous_digest_end != pd.digest_end {
                                new.push(problem(
                                    ProblemKind::ChainBroken,
                                    key,
                                    Some(format!("previous_digest_end {}", pd.digest_end)),
                                    Some(format!("previous_digest_end {}", c.previous_digest_end)),
                                    "the digest records another end flag for its predecessor"
                                        .to_owned(),
                                ));
                            }
                            if pd.sequence + 1 != c.sequence {
                                new.push(problem(
                                    ProblemKind::SequenceGap,
                                    key,
                                    Some(format!("sequence {}", pd.sequence + 1)),
                                    Some(format!("sequence {}", c.sequence)),
                                    format!(
                                        "the previous digest {} has sequence {}",
                                        p.key, pd.sequence
                                    ),
                                ));
                            }
                            if c.digest_start_time > pd.digest_end_time {
                                new.push(problem(
                                    ProblemKind::SequenceGap,
                                    key,
                                    Some(format!("period start {}", rfc3339(pd.digest_end_time))),
                                    Some(format!("period start {}", rfc3339(c.digest_start_time))),
                                    "the periods of this digest and the previous one leave a gap"
                                        .to_owned(),
                                ));
                            } else if c.digest_start_time < pd.digest_end_time {
                                new.push(problem(
                                    ProblemKind::Reordered,
                                    key,
                                    Some(format!("period start {}", rfc3339(pd.digest_end_time))),
                                    Some(format!("period start {}", rfc3339(c.digest_start_time))),
                                    "the period of this digest overlaps the previous one"
                                        .to_owned(),
                                ));
                            }
                        }
                    }
                }
            }
            self.problems.append(&mut new);
            previous_node = Some((c.sequence, key.clone()));
            found.push(key.clone());
        }
        Ok(found)
    }

    /// Fetches and hashes every listed file, on `threads` workers.
    fn check_files(&mut self, jobs: Vec<FileJob>) -> Result<(), VerifyError> {
        self.status.files_total = jobs.len() as u64;
        self.status.bytes_total = jobs.iter().map(|j| j.entry.size).sum();
        let next = AtomicUsize::new(0);
        let files_done = AtomicU64::new(0);
        let bytes_done = AtomicU64::new(0);
        let results: Mutex<Vec<(usize, Result<FileOutcome, VerifyError>)>> =
            Mutex::new(Vec::with_capacity(jobs.len()));
        let threads = self.opts.threads.clamp(1, jobs.len().max(1));
        let source = self.source;
        let sizes = &self.sizes;
        let progress = self.progress;
        let base = self.status;
        let jobs_ref = &jobs;
        let work = || {
            let mut local = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                let Some(job) = jobs_ref.get(i) else { break };
                let outcome = check_one(source, sizes, &job.entry);
                let failed = outcome.is_err();
                let bytes = job.entry.size;
                local.push((i, outcome));
                let mut status = base;
                status.files_done = files_done.fetch_add(1, Ordering::Relaxed) + 1;
                status.bytes_done = bytes_done.fetch_add(bytes, Ordering::Relaxed) + bytes;
                progress(&status);
                if failed {
                    // Stop every worker: the source is failing and the report cannot be complete.
                    next.store(usize::MAX / 2, Ordering::Relaxed);
                    break;
                }
            }
            results
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .append(&mut local);
        };
        std::thread::scope(|s| {
            for _ in 1..threads {
                s.spawn(work);
            }
            work();
        });
        let mut results = results
            .into_inner()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        results.sort_by_key(|(i, _)| *i);
        for (i, outcome) in results {
            let Some(job) = jobs.get(i) else { continue };
            self.record_outcome(job, outcome?);
        }
        Ok(())
    }

    fn record_outcome(&mut self, job: &FileJob, outcome: FileOutcome) {
        let e = &job.entry;
        match outcome {
            FileOutcome::Verified => {
                self.counts.files += 1;
                self.counts.bytes += e.size;
                match e.kind {
                    FileKind::Trace => self.counts.traces += e.count,
                    FileKind::Alarm | FileKind::Receipt => self.counts.records += e.count,
                }
            }
            FileOutcome::Missing => self.problems.push(problem(
                ProblemKind::Missing,
                &e.object,
                Some(format!("{} bytes, sha256 {}", e.size, e.log_hash_value)),
                Some("no such object".to_owned()),
                format!(
                    "the digest {} lists this {} file ({} {}), but it does not exist",
                    job.listed_by,
                    e.kind,
                    e.count,
                    if e.kind == FileKind::Trace {
                        "traces"
                    } else {
                        "records"
                    }
                ),
            )),
            FileOutcome::Mismatch { size, sha256, gzip } => {
                self.counts.files += 1;
                self.counts.bytes += if sha256.is_some() { size } else { 0 };
                let expected = Some(format!("{} bytes, sha256 {}", e.size, e.log_hash_value));
                let actual = match sha256 {
                    Some(h) => format!("{size} bytes, sha256 {}", hex::encode(h)),
                    None => format!("{size} bytes (not read: larger than listed)"),
                };
                if size < e.size {
                    let why = gzip.unwrap_or_else(|| "it still decompresses".to_owned());
                    self.problems.push(problem(
                        ProblemKind::Truncated,
                        &e.object,
                        expected,
                        Some(actual),
                        format!(
                            "the file is shorter than listed by {} ({why})",
                            job.listed_by
                        ),
                    ));
                } else {
                    self.problems.push(problem(
                        ProblemKind::Altered,
                        &e.object,
                        expected,
                        Some(actual),
                        format!(
                            "the file's bytes are not the ones listed by {}",
                            job.listed_by
                        ),
                    ));
                }
            }
        }
    }
}

/// Fetches and hashes one listed file. An object larger than listed is not read at all (it
/// cannot match, and a forged huge object must not exhaust memory).
fn check_one(
    source: &dyn ObjectSource,
    sizes: &HashMap<String, u64>,
    entry: &FileEntry,
) -> Result<FileOutcome, VerifyError> {
    let Some(&listed_size) = sizes.get(&entry.object) else {
        return Ok(FileOutcome::Missing);
    };
    if listed_size > entry.size {
        return Ok(FileOutcome::Mismatch {
            size: listed_size,
            sha256: None,
            gzip: None,
        });
    }
    let Some(bytes) = source
        .get(&entry.object)
        .map_err(|source| VerifyError::Get {
            key: entry.object.clone(),
            source,
        })?
    else {
        return Ok(FileOutcome::Missing);
    };
    let sha256: [u8; 32] = Sha256::digest(&bytes).into();
    let mut expected = [0u8; 32];
    let size = bytes.len() as u64;
    if hex::decode_to_slice(&entry.log_hash_value, &mut expected).is_ok()
        && expected == sha256
        && size == entry.size
    {
        return Ok(FileOutcome::Verified);
    }
    let gzip = if size < entry.size {
        file::decompress(&bytes).err().map(|e| e.to_string())
    } else {
        None
    };
    Ok(FileOutcome::Mismatch {
        size,
        sha256: Some(sha256),
        gzip,
    })
}
