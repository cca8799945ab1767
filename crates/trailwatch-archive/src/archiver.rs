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
use serde_json::{Value, json};
use trailwatch_integrity::{
    Compression, DigestInput, FileEntry, Layout, PreviousDigest, SigningKey, TraceFileBuilder,
    sign_digest,
};
use trailwatch_store::Store;
use trailwatch_store::archive::{self as state, Pass};
use trailwatch_store::trackers::{self, CompressType, Tracker, TrackerStatus, TrackerType};

use crate::{Objects, PutIfAbsent};

/// The archive cursor in the trace log.
pub const CURSOR: &str = "archive:traces";
/// Traces read per pass at most (the rest waits for the next pass).
const MAX_PASS_TRACES: u64 = 200_000;

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

async fn set_status(cfg: &ArchiverConfig, t: &Tracker, error: Option<String>) {
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

/// One transfer pass: archives the traces after the cursor (or redoes an interrupted pass).
/// Returns how many traces were archived.
pub async fn transfer_pass(cfg: &ArchiverConfig) -> Result<u64, ArchiveError> {
    let store = &cfg.store;
    let pass = match store.read(state::pass).await? {
        Some(p) => p,
        None => {
            let from = store.cursor(CURSOR).await?;
            let head = store.head();
            if head <= from {
                return Ok(0);
            }
            let p = Pass {
                from_seq: from,
                upto_seq: head.min(from + MAX_PASS_TRACES),
                pass_time: (cfg.now)().timestamp() * 1000,
            };
            store.write(move |c| state::begin_pass(c, p)).await?;
            p
        }
    };
    let trackers = archived_trackers(store.read(trackers::list_enabled_trackers).await?);
    let pass_time = DateTime::from_timestamp_millis(pass.pass_time).unwrap_or_default();
    // project → tracker, then (tracker index, service) → traces in log order.
    let by_project: BTreeMap<&str, usize> = trackers
        .iter()
        .enumerate()
        .map(|(i, t)| (t.project_id.as_str(), i))
        .collect();
    let mut groups: BTreeMap<(usize, String), TraceFileBuilder> = BTreeMap::new();
    let mut after = pass.from_seq;
    let mut archived = 0;
    while after < pass.upto_seq {
        let batch = store
            .read_after(after, ((pass.upto_seq - after) as usize).min(10_000))
            .await?;
        let Some(last) = batch.last().map(|t| t.seq) else {
            break;
        };
        for t in batch.iter().filter(|t| t.seq <= pass.upto_seq) {
            let Some(&i) = by_project.get(t.project_id.as_str()) else {
                continue;
            };
            let Ok(trace) = trailwatch_trace::Trace::from_json_str(&t.body) else {
                continue;
            };
            if trackers[i].exclude_services.contains(&trace.service_type) {
                continue;
            }
            let service = if trace.service_type.is_empty() {
                "unknown".to_owned()
            } else {
                trace.service_type.clone()
            };
            let value = trace.to_value(trailwatch_trace::RenderStyle::CtsV3);
            let file = groups
                .entry((i, service))
                .or_insert_with(|| TraceFileBuilder::new(compression(&trackers[i])));
            if file.push(&value).is_ok() {
                archived += 1;
            }
        }
        after = last;
    }
    let mut written: Vec<(String, String, String)> = Vec::new(); // (tracker_id, object, entry)
    let mut failed: BTreeMap<usize, String> = BTreeMap::new();
    for ((i, service), builder) in groups {
        if failed.contains_key(&i) {
            continue;
        }
        let t = &trackers[i];
        let result = async {
            let file = builder.finish().map_err(|e| e.to_string())?;
            let mut random = [0u8; 8];
            random.copy_from_slice(&file.sha256[..8]);
            let key = layout(cfg, t)
                .map_err(|e| e.to_string())?
                .trace_file_key(
                    sort_by_service(t).then_some(service.as_str()),
                    pass_time,
                    random,
                    file.compression,
                )
                .map_err(|e| e.to_string())?;
            match cfg
                .objects
                .put_if_absent(bucket(t), &key, file.bytes.clone().into())
                .await
            {
                Ok(PutIfAbsent::Created) | Ok(PutIfAbsent::AlreadyExists { identical: true }) => {}
                Ok(PutIfAbsent::AlreadyExists { identical: false }) => {
                    return Err(format!("{key} already exists with other content"));
                }
                Err(e) => return Err(e.to_string()),
            }
            let entry =
                serde_json::to_string(&file.entry(bucket(t), &key)).map_err(|e| e.to_string())?;
            Ok::<_, String>((key, entry))
        }
        .await;
        match result {
            Ok((key, entry)) => written.push((t.tracker_id.clone(), key, entry)),
            Err(reason) => {
                failed.insert(i, reason);
            }
        }
    }
    if let Some((i, reason)) = failed.into_iter().next() {
        let t = &trackers[i];
        set_status(
            cfg,
            t,
            Some(format!("cannot write to bucket {}: {reason}", bucket(t))),
        )
        .await;
        return Err(ArchiveError::Tracker {
            tracker: t.tracker_name.clone(),
            reason,
        });
    }
    let upto = pass.upto_seq;
    let at = pass.pass_time;
    store
        .write(move |c| {
            for (tracker, object, entry) in &written {
                state::add_file(c, tracker, object, at, entry)?;
            }
            trailwatch_store::set_cursor(c, CURSOR, upto)?;
            state::end_pass(c)
        })
        .await?;
    for t in &trackers {
        set_status(cfg, t, None).await;
    }
    Ok(archived)
}

/// Archives the alarms published and the delivery attempts (receipts) since the last pass as
/// record files of each project's tracker, listed in the digests like trace files: the archive
/// proves who was told what, and when. Records of projects without an archived tracker are
/// passed over. A crash between writing a record file and committing its cursor writes the same
/// records again at the next pass (in a second file): records are archived at least once.
pub async fn records_pass(cfg: &ArchiverConfig) -> Result<u64, ArchiveError> {
    use trailwatch_integrity::RecordFileBuilder;
    use trailwatch_integrity::layout::RecordKind;
    let trackers = archived_trackers(cfg.store.read(trackers::list_enabled_trackers).await?);
    let now = trailwatch_integrity::layout::whole_seconds((cfg.now)());
    let mut archived = 0;
    for (kind, cursor) in [
        (RecordKind::Alarm, "archive:alarms"),
        (RecordKind::Receipt, "archive:receipts"),
    ] {
        let after = cfg.store.cursor(cursor).await?;
        let records = cfg
            .store
            .read(move |c| match kind {
                RecordKind::Alarm => state::alarms_after(c, after, 10_000),
                RecordKind::Receipt => state::receipts_after(c, after, 10_000),
            })
            .await?;
        let Some(last) = records.last().map(|r| r.position) else {
            continue;
        };
        let mut written: Vec<(String, String, String)> = Vec::new();
        for t in &trackers {
            let mut builder = RecordFileBuilder::new(kind, compression(t));
            for r in records.iter().filter(|r| r.project_id == t.project_id) {
                if builder.push(&r.record, r.time_ms).is_ok() {
                    archived += 1;
                }
            }
            if builder.is_empty() {
                continue;
            }
            let fail = |reason: String| ArchiveError::Tracker {
                tracker: t.tracker_name.clone(),
                reason,
            };
            let file = builder.finish().map_err(|e| fail(e.to_string()))?;
            let mut random = [0u8; 8];
            random.copy_from_slice(&file.sha256[..8]);
            let key = layout(cfg, t)?
                .record_file_key(kind, now, random, file.compression)
                .map_err(|e| fail(e.to_string()))?;
            match cfg
                .objects
                .put_if_absent(bucket(t), &key, file.bytes.clone().into())
                .await
            {
                Ok(PutIfAbsent::Created) | Ok(PutIfAbsent::AlreadyExists { identical: true }) => {}
                Ok(PutIfAbsent::AlreadyExists { identical: false }) => {
                    return Err(fail(format!("{key} already exists with other content")));
                }
                Err(e) => {
                    let reason = format!("cannot write to bucket {}: {e}", bucket(t));
                    set_status(cfg, t, Some(reason.clone())).await;
                    return Err(fail(reason));
                }
            }
            let entry = serde_json::to_string(&file.entry(bucket(t), &key))
                .map_err(|e| fail(e.to_string()))?;
            written.push((t.tracker_id.clone(), key, entry));
        }
        let at = now.timestamp_millis();
        cfg.store
            .write(move |c| {
                for (tracker, object, entry) in &written {
                    state::add_file(c, tracker, object, at, entry)?;
                }
                trailwatch_store::set_cursor(c, cursor, last)
            })
            .await?;
    }
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
    let now = (cfg.now)();
    let trackers = archived_trackers(cfg.store.read(trackers::list_enabled_trackers).await?);
    let mut written = 0;
    for t in &trackers {
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
            if is_trace && parsed.layout.tracker() == t.tracker_name && parsed.time < cutoff {
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
