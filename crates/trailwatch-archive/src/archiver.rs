//! The trace archiver: a consumer of the trace log (cursor `archive:traces`) that writes each
//! enabled management (`system`) tracker's traces to its bucket as CTS trace files, one file per
//! service per transfer pass, and closes one signed digest per tracker per hour
//! (`trailwatch-integrity`, `docs/specs/archive.md`).
//!
//! # Crash safety
//! A pass first records `(from_seq, upto_seq, pass_time)` durably, then writes the files, then
//! — in one transaction — records the files for their digest, advances the cursor and clears the
//! pass. File keys and bytes are functions of the traces and `pass_time` only (the key's random
//! part is the content hash), so a pass redone after a crash writes the same objects; they
//! already exist byte for byte and are accepted. Digests are deterministic too (Ed25519 signs
//! deterministically), so a digest redone after a crash is the same object.
//!
//! # Failures
//! If the bucket cannot be written, nothing advances: the tracker is set to `status = error`
//! with the reason as `detail`, and the pass is retried with backoff; the first success sets it
//! back to `enabled` (a tracker the user disabled stays disabled).

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::value::RawValue;
use serde_json::{Value, json};
use trailwatch_integrity::{
    Compression, DigestInput, FileEntry, Layout, PreviousDigest, SigningKey, TraceFileBuilder,
    sign_digest,
};
use trailwatch_store::Store;
use trailwatch_store::archive::{self as state, Pass};
use trailwatch_store::trackers::{self, CompressType, Tracker, TrackerStatus, TrackerType};

use crate::{Objects, PutIfAbsent};

/// Traces read per pass at most (the rest waits for the next pass).
const MAX_PASS_TRACES: u64 = 200_000;

/// What the archiver reads from a stored trace body (the rest is archived as it is).
#[derive(serde::Deserialize)]
struct ArchivedView<'a> {
    #[serde(borrow, default)]
    service_type: std::borrow::Cow<'a, str>,
    time: i64,
    #[serde(borrow, default)]
    request: Option<&'a RawValue>,
    #[serde(borrow, default)]
    response: Option<&'a RawValue>,
}

/// What the archiver needs.
#[derive(Clone)]
pub struct ArchiverConfig {
    pub store: Store,
    pub objects: Arc<Objects>,
    pub key: Arc<SigningKey>,
    pub region: String,
    /// How often traces are transferred (CTS: 5 minutes).
    pub cycle: Duration,
    /// Digest period (one hour).
    pub period: TimeDelta,
    /// The clock (tests pass a controlled one).
    pub now: Arc<dyn Fn() -> DateTime<Utc> + Send + Sync>,
}

impl std::fmt::Debug for ArchiverConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ArchiverConfig")
            .field("region", &self.region)
            .field("cycle", &self.cycle)
            .finish_non_exhaustive()
    }
}

/// Why a pass did not complete.
#[derive(Debug, thiserror::Error)]
pub enum ArchiveError {
    #[error("store: {0}")]
    Store(#[from] trailwatch_store::StoreError),
    #[error("tracker {tracker}: {reason}")]
    Tracker { tracker: String, reason: String },
}

fn archived_trackers(all: Vec<Tracker>) -> Vec<Tracker> {
    all.into_iter()
        .filter(|t| {
            t.tracker_type == TrackerType::System
                && t.obs_info
                    .as_ref()
                    .is_some_and(|o| !o.bucket_name.is_empty())
        })
        .collect()
}

fn compression(t: &Tracker) -> Compression {
    match t.obs_info.as_ref().map(|o| o.compress_type) {
        Some(CompressType::Json) => Compression::Json,
        _ => Compression::Gzip,
    }
}

fn layout(cfg: &ArchiverConfig, t: &Tracker) -> Result<Layout, ArchiveError> {
    let prefix = t
        .obs_info
        .as_ref()
        .map(|o| o.file_prefix_name.as_str())
        .unwrap_or("");
    Layout::new(&cfg.region, &t.tracker_name, prefix).map_err(|e| ArchiveError::Tracker {
        tracker: t.tracker_name.clone(),
        reason: e.to_string(),
    })
}

fn sort_by_service(t: &Tracker) -> bool {
    t.obs_info.as_ref().is_none_or(|o| o.is_sort_by_service)
}

fn bucket(t: &Tracker) -> &str {
    t.obs_info
        .as_ref()
        .map(|o| o.bucket_name.as_str())
        .unwrap_or("")
}

/// The CTS `detail` code for a failure to write a tracker's bucket (§2.2: `noBucket`,
/// `bucketPolicyError`); the full reason goes to the server log, not to API callers (it may name
/// internal endpoints).
fn detail_code(reason: &str) -> String {
    let lower = reason.to_ascii_lowercase();
    let missing = lower.contains("nosuchbucket")
        || lower.contains("no such bucket")
        || lower.contains("does not exist")
        || (lower.contains("bucket") && lower.contains("not found"));
    if missing {
        "noBucket"
    } else {
        "bucketPolicyError"
    }
    .into()
}

async fn set_status(cfg: &ArchiverConfig, t: &Tracker, error: Option<String>) {
    if let Some(reason) = &error {
        tracing::warn!(tracker = %t.tracker_id, project = %t.project_id, reason = %reason, "archive transfer failed");
    }
    let error = error.map(|r| detail_code(&r));
    let (id, was_error) = (t.tracker_id.clone(), t.status == TrackerStatus::Error);
    if error.is_none() && !was_error {
        return;
    }
    let result = cfg
        .store
        .write(move |c| match error {
            Some(detail) => {
                trackers::set_tracker_status(c, &id, TrackerStatus::Error, Some(&detail))
            }
            None => trackers::set_tracker_status(c, &id, TrackerStatus::Enabled, None),
        })
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "could not record a tracker's status");
    }
}

/// Writes `file` to the tracker's bucket at `key` (an existing identical object is fine: a redone
/// pass) and returns its digest entry (JSON).
async fn put_file(
    cfg: &ArchiverConfig,
    t: &Tracker,
    key: &str,
    file: &trailwatch_integrity::BuiltFile,
) -> Result<String, String> {
    match cfg
        .objects
        .put_if_absent(bucket(t), key, file.bytes.clone().into())
        .await
    {
        Ok(PutIfAbsent::Created) | Ok(PutIfAbsent::AlreadyExists { identical: true }) => {}
        Ok(PutIfAbsent::AlreadyExists { identical: false }) => {
            return Err(format!("{key} already exists with other content"));
        }
        Err(e) => return Err(format!("cannot write to bucket {}: {e}", bucket(t))),
    }
    serde_json::to_string(&file.entry(bucket(t), key)).map_err(|e| e.to_string())
}

/// Runs `one` for every archived tracker; a tracker that fails is marked `error` and holds back
/// no other. Returns the total, or the first failure after every tracker had its turn.
async fn each_tracker<'a, F, Fut>(cfg: &'a ArchiverConfig, one: F) -> Result<u64, ArchiveError>
where
    F: Fn(&'a ArchiverConfig, Tracker) -> Fut,
    Fut: Future<Output = Result<u64, ArchiveError>> + 'a,
{
    let trackers = archived_trackers(cfg.store.read(trackers::list_enabled_trackers).await?);
    let mut total = 0;
    let mut first_error = None;
    for t in trackers {
        match one(cfg, t).await {
            Ok(n) => total += n,
            Err(e) => {
                first_error.get_or_insert(e);
            }
        }
    }
    match first_error {
        Some(e) => Err(e),
        None => Ok(total),
    }
}

/// One transfer pass: for every archived tracker, archives its project's traces after its cursor
/// (or redoes its interrupted pass). Returns how many traces were archived.
pub async fn transfer_pass(cfg: &ArchiverConfig) -> Result<u64, ArchiveError> {
    each_tracker(cfg, transfer_tracker).await
}

async fn transfer_tracker(cfg: &ArchiverConfig, t: Tracker) -> Result<u64, ArchiveError> {
    let store = &cfg.store;
    let id = t.tracker_id.clone();
    let pass = match store.read(move |c| state::pass(c, &id, "traces")).await? {
        Some(p) => p,
        None => {
            let from = store.cursor(&state::traces_cursor(&t.tracker_id)).await?;
            let head = store.head();
            if head <= from {
                return Ok(0);
            }
            let p = Pass {
                from_seq: from,
                upto_seq: head.min(from + MAX_PASS_TRACES),
                pass_time: (cfg.now)().timestamp() * 1000,
            };
            let id = t.tracker_id.clone();
            store
                .write(move |c| state::begin_pass(c, &id, "traces", p))
                .await?;
            p
        }
    };
    let pass_time = DateTime::from_timestamp_millis(pass.pass_time).unwrap_or_default();
    let mut groups: BTreeMap<String, TraceFileBuilder> = BTreeMap::new();
    let mut after = pass.from_seq;
    let mut archived = 0;
    while after < pass.upto_seq {
        let batch = store
            .read_after(after, ((pass.upto_seq - after) as usize).min(10_000))
            .await?;
        let Some(last) = batch.last().map(|t| t.seq) else {
            break;
        };
        for stored in batch.iter().filter(|s| s.seq <= pass.upto_seq) {
            if stored.project_id != t.project_id {
                continue;
            }
            // One pass over the stored body reads what the archive needs and checks that it is
            // JSON: a full `Trace` parse (and a render) per trace cost ingest more than the gzip.
            let Ok(view) = serde_json::from_str::<ArchivedView<'_>>(&stored.body) else {
                continue;
            };
            if t.exclude_services.iter().any(|s| *s == view.service_type) {
                continue;
            }
            let service = if view.service_type.is_empty() {
                "unknown".to_owned()
            } else {
                view.service_type.clone().into_owned()
            };
            let file = groups
                .entry(service)
                .or_insert_with(|| TraceFileBuilder::new(compression(&t)));
            // The stored body is the `Stored` rendering, which differs from the CTS v3 one only
            // in `request`/`response` objects (v3 gives them as JSON text): without those it is
            // archived as it is.
            let is_text = |v: Option<&RawValue>| v.is_none_or(|v| v.get().starts_with('"'));
            let pushed = if is_text(view.request) && is_text(view.response) {
                file.push_parsed_object(&stored.body, view.time)
            } else {
                match trailwatch_trace::Trace::from_json_str(&stored.body) {
                    Ok(trace) => file.push_json(
                        &trace.to_json_string(trailwatch_trace::RenderStyle::CtsV3),
                        trace.time,
                    ),
                    Err(_) => continue,
                }
            };
            if pushed.is_ok() {
                archived += 1;
            }
        }
        after = last;
    }
    let fail = |reason: String| ArchiveError::Tracker {
        tracker: t.tracker_name.clone(),
        reason,
    };
    let layout = layout(cfg, &t)?;
    let mut written: Vec<(String, String)> = Vec::new();
    for (service, builder) in groups {
        let file = builder.finish().map_err(|e| fail(e.to_string()))?;
        let mut random = [0u8; 8];
        random.copy_from_slice(&file.sha256[..8]);
        let key = layout
            .trace_file_key(
                sort_by_service(&t).then_some(service.as_str()),
                pass_time,
                random,
                file.compression,
            )
            .map_err(|e| fail(e.to_string()))?;
        match put_file(cfg, &t, &key, &file).await {
            Ok(entry) => written.push((key, entry)),
            Err(reason) => {
                set_status(cfg, &t, Some(reason.clone())).await;
                return Err(fail(reason));
            }
        }
    }
    let (id, upto, at) = (t.tracker_id.clone(), pass.upto_seq, pass.pass_time);
    store
        .write(move |c| {
            for (object, entry) in &written {
                state::add_file(c, &id, object, at, entry)?;
            }
            trailwatch_store::set_cursor(c, &state::traces_cursor(&id), upto)?;
            state::end_pass(c, &id, "traces")
        })
        .await?;
    set_status(cfg, &t, None).await;
    Ok(archived)
}

/// Archives the alarms published and the delivery attempts (receipts) since the last pass as
/// record files of each project's tracker, listed in the digests like trace files: the archive
/// proves who was told what, and when. Each tracker has its own positions and records its pass
/// before writing, as for traces, so a crash redoes it into the same objects.
pub async fn records_pass(cfg: &ArchiverConfig) -> Result<u64, ArchiveError> {
    each_tracker(cfg, |cfg, t| async move {
        let mut n = 0;
        for stream in ["alarms", "receipts"] {
            n += records_tracker(cfg, &t, stream).await?;
        }
        Ok(n)
    })
    .await
}

async fn records_tracker(
    cfg: &ArchiverConfig,
    t: &Tracker,
    stream: &'static str,
) -> Result<u64, ArchiveError> {
    use trailwatch_integrity::RecordFileBuilder;
    use trailwatch_integrity::layout::RecordKind;
    let kind = if stream == "alarms" {
        RecordKind::Alarm
    } else {
        RecordKind::Receipt
    };
    let fetch = move |c: &trailwatch_store::rusqlite::Connection, after: u64, limit: usize| {
        if stream == "alarms" {
            state::alarms_after(c, after, limit)
        } else {
            state::receipts_after(c, after, limit)
        }
    };
    let store = &cfg.store;
    let position = state::records_position(&t.tracker_id, stream);
    let id = t.tracker_id.clone();
    let pass = match store.read(move |c| state::pass(c, &id, stream)).await? {
        Some(p) => p,
        None => {
            let name = position.clone();
            let from = store
                .read(move |c| trailwatch_store::position(c, &name))
                .await?;
            let newest = store
                .read(move |c| Ok(fetch(c, from, 10_000)?.last().map(|r| r.position)))
                .await?;
            let Some(upto) = newest else {
                return Ok(0);
            };
            let p = Pass {
                from_seq: from,
                upto_seq: upto,
                pass_time: (cfg.now)().timestamp() * 1000,
            };
            let id = t.tracker_id.clone();
            store
                .write(move |c| state::begin_pass(c, &id, stream, p))
                .await?;
            p
        }
    };
    let (from, upto) = (pass.from_seq, pass.upto_seq);
    let records = store
        .read(move |c| {
            let mut out = fetch(c, from, (upto - from) as usize)?;
            out.retain(|r| r.position <= upto);
            Ok(out)
        })
        .await?;
    let mut builder = RecordFileBuilder::new(kind, compression(t));
    let mut archived = 0;
    for r in records.iter().filter(|r| r.project_id == t.project_id) {
        if builder.push(&r.record, r.time_ms).is_ok() {
            archived += 1;
        }
    }
    let fail = |reason: String| ArchiveError::Tracker {
        tracker: t.tracker_name.clone(),
        reason,
    };
    let mut written = None;
    if !builder.is_empty() {
        let file = builder.finish().map_err(|e| fail(e.to_string()))?;
        let mut random = [0u8; 8];
        random.copy_from_slice(&file.sha256[..8]);
        let time = DateTime::from_timestamp_millis(pass.pass_time).unwrap_or_default();
        let key = layout(cfg, t)?
            .record_file_key(kind, time, random, file.compression)
            .map_err(|e| fail(e.to_string()))?;
        match put_file(cfg, t, &key, &file).await {
            Ok(entry) => written = Some((key, entry)),
            Err(reason) => {
                set_status(cfg, t, Some(reason.clone())).await;
                return Err(fail(reason));
            }
        }
    }
    let (id, at) = (t.tracker_id.clone(), pass.pass_time);
    store
        .write(move |c| {
            if let Some((object, entry)) = &written {
                state::add_file(c, &id, object, at, entry)?;
            }
            trailwatch_store::set_position(c, &position, upto)?;
            state::end_pass(c, &id, stream)
        })
        .await?;
    Ok(archived)
}

fn previous_to_json(p: &PreviousDigest) -> String {
    json!({
        "bucket": p.bucket, "object": p.object, "sha256": hex::encode(p.sha256),
        "signature": hex::encode(p.signature), "sequence": p.sequence,
        "end_time": p.end_time.timestamp_millis(), "ending": p.ending,
    })
    .to_string()
}

fn previous_from_json(s: &str) -> Option<PreviousDigest> {
    let v: Value = serde_json::from_str(s).ok()?;
    let sha: [u8; 32] = hex::decode(v["sha256"].as_str()?).ok()?.try_into().ok()?;
    let sig: [u8; 64] = hex::decode(v["signature"].as_str()?)
        .ok()?
        .try_into()
        .ok()?;
    Some(PreviousDigest {
        bucket: v["bucket"].as_str()?.to_owned(),
        object: v["object"].as_str()?.to_owned(),
        sha256: sha,
        signature: sig,
        sequence: v["sequence"].as_u64()?,
        end_time: DateTime::from_timestamp_millis(v["end_time"].as_i64()?)?,
        ending: v["ending"].as_bool()?,
    })
}

/// The start of the period holding `t` (periods are aligned to the epoch).
fn period_floor(t: DateTime<Utc>, period: TimeDelta) -> DateTime<Utc> {
    let p = period.num_seconds().max(1);
    DateTime::from_timestamp(t.timestamp().div_euclid(p) * p, 0).unwrap_or(t)
}

/// Closes every digest period of every archived tracker that has ended by now (written even
/// when empty). With `ending`, also closes the current period early (shutdown). Returns how
/// many digests were written.
pub async fn digest_pass(cfg: &ArchiverConfig, ending: bool) -> Result<u64, ArchiveError> {
    each_tracker(cfg, |cfg, t| async move {
        digest_tracker(cfg, &t, ending).await
    })
    .await
}

async fn digest_tracker(
    cfg: &ArchiverConfig,
    t: &Tracker,
    ending: bool,
) -> Result<u64, ArchiveError> {
    let now = (cfg.now)();
    let mut written = 0;
    {
        let id = t.tracker_id.clone();
        let head = cfg.store.read(move |c| state::chain_head(c, &id)).await?;
        let mut previous = head.as_ref().and_then(|(p, _)| previous_from_json(p));
        // A new chain starts at the period holding the tracker's creation.
        let mut start = match &previous {
            Some(p) => p.end_time,
            None => period_floor(
                DateTime::from_timestamp_millis(t.create_time).unwrap_or(now),
                cfg.period,
            ),
        };
        let layout = layout(cfg, t)?;
        loop {
            let natural_end = period_floor(start, cfg.period) + cfg.period;
            let (end, closes_early) = if natural_end <= now {
                (natural_end, false)
            } else if ending && now > start + TimeDelta::seconds(1) {
                (trailwatch_integrity::layout::whole_seconds(now), true)
            } else {
                break;
            };
            let id = t.tracker_id.clone();
            let end_ms = end.timestamp_millis();
            // Period ends are inclusive for file times (docs/specs/archive.md).
            let files = cfg
                .store
                .read(move |c| state::files_before(c, &id, end_ms + 1))
                .await?;
            let entries: Vec<FileEntry> = files
                .iter()
                .filter_map(|(_, e)| serde_json::from_str(e).ok())
                .collect();
            let signed = sign_digest(
                DigestInput {
                    layout: &layout,
                    project_id: &t.project_id,
                    bucket: bucket(t),
                    start,
                    end,
                    ending: closes_early,
                    previous: previous.as_ref(),
                    files: entries,
                },
                &cfg.key,
            )
            .map_err(|e| ArchiveError::Tracker {
                tracker: t.tracker_name.clone(),
                reason: e.to_string(),
            })?;
            match cfg
                .objects
                .put_if_absent(bucket(t), &signed.key, signed.bytes.clone().into())
                .await
            {
                Ok(PutIfAbsent::Created) | Ok(PutIfAbsent::AlreadyExists { identical: true }) => {}
                Ok(PutIfAbsent::AlreadyExists { identical: false }) => {
                    let reason = format!("digest {} already exists with other content", signed.key);
                    set_status(cfg, t, Some(reason.clone())).await;
                    return Err(ArchiveError::Tracker {
                        tracker: t.tracker_name.clone(),
                        reason,
                    });
                }
                Err(e) => {
                    let reason = format!("cannot write to bucket {}: {e}", bucket(t));
                    set_status(cfg, t, Some(reason.clone())).await;
                    return Err(ArchiveError::Tracker {
                        tracker: t.tracker_name.clone(),
                        reason,
                    });
                }
            }
            let p = signed.previous();
            let (id, objects, prev_json) = (
                t.tracker_id.clone(),
                files.into_iter().map(|(o, _)| o).collect::<Vec<_>>(),
                previous_to_json(&p),
            );
            cfg.store
                .write(move |c| {
                    state::remove_files(c, &id, &objects)?;
                    state::set_chain_head(c, &id, &prev_json, end_ms)
                })
                .await?;
            written += 1;
            start = end;
            previous = Some(p);
            if closes_early {
                break;
            }
        }
    }
    Ok(written)
}

/// Deletes the trace files of every archived tracker with a `bucket_lifecycle` whose time (in the
/// key) is more than that many days ago. Digests and record files are kept, so the chain stays
/// checkable and `trailwatch verify --from <start of the retained range>` still passes. Returns
/// how many files were deleted.
pub async fn retention_pass(cfg: &ArchiverConfig) -> Result<u64, ArchiveError> {
    let now = (cfg.now)();
    let trackers = archived_trackers(cfg.store.read(trackers::list_enabled_trackers).await?);
    let mut deleted = 0;
    for t in &trackers {
        let Some(days) = t.obs_info.as_ref().and_then(|o| o.bucket_lifecycle) else {
            continue;
        };
        let cutoff = now - TimeDelta::days(i64::from(days));
        let tracker_layout = layout(cfg, t)?;
        let prefix = format!("CloudTraces/{}/", cfg.region);
        let objects =
            cfg.objects
                .list(bucket(t), &prefix)
                .await
                .map_err(|e| ArchiveError::Tracker {
                    tracker: t.tracker_name.clone(),
                    reason: e.to_string(),
                })?;
        for o in objects {
            let Ok(parsed) = trailwatch_integrity::parse_key(&o.key) else {
                continue;
            };
            let is_trace = matches!(
                parsed.kind,
                trailwatch_integrity::layout::ObjectKind::Trace { .. }
            );
            if is_trace && parsed.layout == tracker_layout && parsed.time < cutoff {
                cfg.objects
                    .delete(bucket(t), &o.key)
                    .await
                    .map_err(|e| ArchiveError::Tracker {
                        tracker: t.tracker_name.clone(),
                        reason: e.to_string(),
                    })?;
                deleted += 1;
            }
        }
    }
    Ok(deleted)
}

/// Runs transfer and digest passes every `cycle` until `stop` resolves; then flushes: a last
/// transfer pass and an early, ending digest for every tracker, so a stopped server leaves a
/// fully verifiable archive.
pub async fn run(cfg: ArchiverConfig, stop: impl Future<Output = ()> + Send) {
    let mut backoff = Duration::from_secs(1);
    tokio::pin!(stop);
    loop {
        let transferred = match transfer_pass(&cfg).await {
            Ok(_) => records_pass(&cfg).await,
            Err(e) => Err(e),
        };
        let ok = match transferred {
            Ok(_) => match digest_pass(&cfg, false).await {
                // Retention runs when a period closes (about hourly).
                Ok(n) if n > 0 => retention_pass(&cfg).await.map(|_| ()),
                Ok(_) => Ok(()),
                Err(e) => Err(e),
            },
            Err(e) => Err(e),
        };
        let wait = match ok {
            Ok(()) => {
                backoff = Duration::from_secs(1);
                cfg.cycle
            }
            Err(e) => {
                tracing::warn!(error = %e, "archive pass failed; will retry");
                backoff = (backoff * 2).min(Duration::from_secs(60));
                backoff.min(cfg.cycle)
            }
        };
        tokio::select! {
            () = tokio::time::sleep(wait) => {}
            () = &mut stop => break,
        }
    }
    if let Err(e) = transfer_pass(&cfg).await {
        tracing::warn!(error = %e, "final archive transfer failed; the traces stay in the log and are archived at the next start");
    }
    if let Err(e) = records_pass(&cfg).await {
        tracing::warn!(error = %e, "final archive of alarms and receipts failed; they are archived at the next start");
    }
    match digest_pass(&cfg, true).await {
        Ok(n) => tracing::info!(digests = n, "archive flushed"),
        Err(e) => {
            tracing::warn!(error = %e, "final digests failed; they are written at the next start")
        }
    }
}
