//! The archiver over several simulated hours (controlled clock): trace files and hourly signed
//! digests written to a local-folder bucket verify clean offline with only the public key; a
//! pass redone after a crash archives nothing twice; an unwritable bucket puts the tracker in
//! `error` until it recovers.
#![allow(clippy::unwrap_used, clippy::expect_used)]

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::json;
use trailwatch_archive::archiver::{self, ArchiverConfig};
use trailwatch_archive::source::FolderSource;
use trailwatch_archive::{ObjectStoreConfig, Objects};
use trailwatch_integrity::{SigningKey, verify};
use trailwatch_store::trackers::{
    self, CompressType, ObsInfo, Tracker, TrackerStatus, TrackerType,
};
use trailwatch_store::{NewTrace, Store, StoreOptions};
use trailwatch_trace::Trace;

struct Setup {
    _dir: tempfile::TempDir,
    root: std::path::PathBuf,
    store: Store,
    cfg: ArchiverConfig,
    clock: Arc<Mutex<DateTime<Utc>>>,
    key: Arc<SigningKey>,
}

fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 5, 10, 0, 0).single().unwrap()
}

async fn setup() -> Setup {
    setup_on(None).await
}

/// The archiver writing to a local folder, or to `s3` when given.
async fn setup_on(s3: Option<ObjectStoreConfig>) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let root = dir.path().join("objects");
    let store = Store::open(StoreOptions::new(dir.path().join("data"))).unwrap();
    let objects =
        Objects::open(&s3.unwrap_or(ObjectStoreConfig::Local { root: root.clone() })).unwrap();
    let key = Arc::new(SigningKey::from_seed(&[42; 32]));
    let clock = Arc::new(Mutex::new(t0()));
    let c = clock.clone();
    let cfg = ArchiverConfig {
        store: store.clone(),
        objects: Arc::new(objects),
        key: key.clone(),
        region: "eu-de".into(),
        cycle: Duration::from_secs(300),
        period: TimeDelta::hours(1),
        now: Arc::new(move || *c.lock().unwrap()),
    };
    let tracker = Tracker {
        tracker_id: "tr-1".into(),
        project_id: "p1".into(),
        domain_id: "d1".into(),
        tracker_name: "system".into(),
        tracker_type: TrackerType::System,
        status: TrackerStatus::Enabled,
        detail: None,
        obs_info: Some(ObsInfo {
            bucket_name: "audit-bucket".into(),
            file_prefix_name: "acme".into(),
            is_obs_created: true,
            bucket_lifecycle: None,
            compress_type: CompressType::Gzip,
            is_sort_by_service: true,
        }),
        is_support_validate: true,
        is_lts_enabled: false,
        data_bucket: None,
        agency_name: None,
        exclude_services: vec![],
        create_time: t0().timestamp_millis(),
        update_time: t0().timestamp_millis(),
    };
    store
        .write(move |c| trackers::create_tracker(c, &tracker))
        .await
        .unwrap();
    Setup {
        _dir: dir,
        root,
        store,
        cfg,
        clock,
        key,
    }
}

fn trace(n: usize, at: DateTime<Utc>) -> NewTrace {
    let service = ["IAM", "ECS", "OBS"][n % 3];
    let mut t = Trace::from_value(json!({
        "trace_id": format!("t-{n:05}"),
        "trace_name": if service == "IAM" { "login" } else { "update" },
        "trace_type": "ConsoleAction",
        "service_type": service,
        "resource_type": "thing",
        "source_ip": "203.0.113.9",
        "time": at.timestamp_millis(),
    }))
    .unwrap();
    t.fill_defaults(at.timestamp_millis());
    NewTrace::from_trace(&t, at.timestamp_millis())
}

fn set_now(s: &Setup, t: DateTime<Utc>) {
    *s.clock.lock().unwrap() = t;
}

/// Three hours and a bit of traces, a pass every 5 minutes, then a shutdown; returns the end
/// time and how many traces of the tracked project were appended.
async fn simulate_hours(s: &Setup) -> (DateTime<Utc>, usize) {
    let mut n = 0;
    // Three hours and a bit, a pass every 5 minutes, traces arriving in between; another
    // project's traces (no tracker) are not archived.
    for step in 1..=40 {
        let now = t0() + TimeDelta::minutes(5 * step);
        let batch: Vec<NewTrace> = (0..7)
            .map(|k| trace(n + k, now - TimeDelta::minutes(1)))
            .collect();
        n += 7;
        s.store.append("p1", batch).await.unwrap();
        s.store
            .append("p2", vec![trace(90_000 + step as usize, now)])
            .await
            .unwrap();
        set_now(s, now);
        archiver::transfer_pass(&s.cfg).await.unwrap();
        archiver::digest_pass(&s.cfg, false).await.unwrap();
    }
    // Shutdown: the current period is closed early.
    let end = t0() + TimeDelta::minutes(5 * 40 + 2);
    set_now(s, end);
    archiver::transfer_pass(&s.cfg).await.unwrap();
    let closed = archiver::digest_pass(&s.cfg, true).await.unwrap();
    assert_eq!(closed, 1, "the partial hour is closed at shutdown");
    (end, n)
}

#[tokio::test]
async fn hours_of_archive_verify_clean_with_only_the_public_key() {
    let s = setup().await;
    let (end, n) = simulate_hours(&s).await;

    let source = FolderSource::new(s.root.join("audit-bucket"));
    let report = verify(&source, &s.key.public_key(), None, None, end).unwrap();
    assert!(report.valid(), "{:#?}", report.problems);
    assert_eq!(report.counts.traces, n as u64, "{:?}", report.counts);
    assert_eq!(report.chains.len(), 1, "{:?}", report.chains);

    // Another key does not verify it.
    let other = SigningKey::from_seed(&[1; 32]);
    let report = verify(&source, &other.public_key(), None, None, end).unwrap();
    assert!(!report.valid());
}

#[tokio::test]
async fn a_pass_redone_after_a_crash_archives_nothing_twice() {
    let s = setup().await;
    let now = t0() + TimeDelta::minutes(5);
    s.store
        .append("p1", (0..30).map(|k| trace(k, now)).collect())
        .await
        .unwrap();
    set_now(&s, now);
    assert_eq!(archiver::transfer_pass(&s.cfg).await.unwrap(), 30);
    // The crash: the files were written, but the cursor and file records were not committed.
    s.store
        .write(|c| {
            let cursor = trailwatch_store::archive::traces_cursor("tr-1");
            c.execute("UPDATE cursors SET seq = 0 WHERE name = ?1", [&cursor])?;
            c.execute("DELETE FROM archive_files", [])?;
            trailwatch_store::archive::begin_pass(
                c,
                "tr-1",
                "traces",
                trailwatch_store::archive::Pass {
                    from_seq: 0,
                    upto_seq: 30,
                    pass_time: (t0() + TimeDelta::minutes(5)).timestamp_millis(),
                },
            )
        })
        .await
        .unwrap();
    // More traces arrived meanwhile; the redone pass still covers exactly the first 30.
    s.store
        .append("p1", (30..40).map(|k| trace(k, now)).collect())
        .await
        .unwrap();
    set_now(&s, now + TimeDelta::minutes(1));
    assert_eq!(archiver::transfer_pass(&s.cfg).await.unwrap(), 30);
    assert_eq!(archiver::transfer_pass(&s.cfg).await.unwrap(), 10);
    let end = t0() + TimeDelta::hours(1) + TimeDelta::minutes(1);
    set_now(&s, end);
    archiver::digest_pass(&s.cfg, false).await.unwrap();
    let report = verify(
        &FolderSource::new(s.root.join("audit-bucket")),
        &s.key.public_key(),
        None,
        None,
        end,
    )
    .unwrap();
    assert!(report.valid(), "{:#?}", report.problems);
    assert_eq!(report.counts.traces, 40);
}

#[tokio::test]
async fn an_unwritable_bucket_sets_error_and_loses_nothing() {
    let s = setup().await;
    // The bucket's folder is a file: every write fails.
    std::fs::create_dir_all(&s.root).unwrap();
    std::fs::write(s.root.join("audit-bucket"), b"not a folder").unwrap();
    let now = t0() + TimeDelta::minutes(5);
    s.store
        .append("p1", (0..5).map(|k| trace(k, now)).collect())
        .await
        .unwrap();
    set_now(&s, now);
    assert!(archiver::transfer_pass(&s.cfg).await.is_err());
    let t = s
        .store
        .read(|c| trackers::tracker(c, "p1", "system"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.status, TrackerStatus::Error);
    // A CTS detail code; the full reason (with paths or endpoints) stays in the server log.
    assert!(
        matches!(t.detail.as_deref(), Some("bucketPolicyError" | "noBucket")),
        "{:?}",
        t.detail
    );
    assert_eq!(
        s.store
            .cursor(&trailwatch_store::archive::traces_cursor("tr-1"))
            .await
            .unwrap(),
        0
    );

    // Repaired: the same traces are archived, the tracker is enabled again.
    std::fs::remove_file(s.root.join("audit-bucket")).unwrap();
    assert_eq!(archiver::transfer_pass(&s.cfg).await.unwrap(), 5);
    let t = s
        .store
        .read(|c| trackers::tracker(c, "p1", "system"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(t.status, TrackerStatus::Enabled);
    assert_eq!(t.detail, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_s3_compatible_bucket_holds_the_same_verifiable_archive() {
    let moto = common::moto::start_moto("audit-bucket");
    let s = setup_on(Some(common::moto::s3_config(moto.port))).await;
    let (end, n) = simulate_hours(&s).await;
    let source = trailwatch_archive::source::StoreSource {
        store: s.cfg.objects.bucket("audit-bucket").unwrap(),
        handle: tokio::runtime::Handle::current(),
    };
    let public = s.key.public_key();
    let report = tokio::task::spawn_blocking(move || verify(&source, &public, None, None, end))
        .await
        .unwrap()
        .unwrap();
    assert!(report.valid(), "{:#?}", report.problems);
    assert_eq!(report.counts.traces, n as u64);
    assert_eq!(
        report.counts.digests, 4,
        "three hours and the early shutdown digest"
    );
}

#[tokio::test]
async fn bucket_lifecycle_expires_trace_files_and_the_retained_range_still_verifies() {
    let s = setup().await;
    s.store
        .write(|c| {
            let mut t = trackers::tracker(c, "p1", "system")?.unwrap();
            if let Some(o) = t.obs_info.as_mut() {
                o.bucket_lifecycle = Some(1);
            }
            trackers::update_tracker(c, &t).map(|_| ())
        })
        .await
        .unwrap();
    let (_, n) = simulate_hours(&s).await;
    // Two days later, with a few traces in the last hour.
    let later = t0() + TimeDelta::days(2) + TimeDelta::minutes(30);
    set_now(&s, later - TimeDelta::minutes(20));
    s.store
        .append("p1", (0..6).map(|k| trace(50_000 + k, later)).collect())
        .await
        .unwrap();
    archiver::transfer_pass(&s.cfg).await.unwrap();
    // The hour holding them closes.
    let later = later + TimeDelta::hours(1);
    set_now(&s, later);
    archiver::digest_pass(&s.cfg, false).await.unwrap();
    let deleted = archiver::retention_pass(&s.cfg).await.unwrap();
    assert!(deleted > 0);
    let source = FolderSource::new(s.root.join("audit-bucket"));
    // Only the newest traces remain; the retained range verifies clean.
    let from = later - TimeDelta::days(1);
    let report = verify(&source, &s.key.public_key(), Some(from), None, later).unwrap();
    assert!(report.valid(), "{:#?}", report.problems);
    assert_eq!(report.counts.traces, 6);
    // Over the whole chain the expired files are named as missing (digests were kept).
    let report = verify(&source, &s.key.public_key(), None, None, later).unwrap();
    assert!(!report.valid());
    assert!(
        report.problems.iter().all(|p| p.kind.as_str() == "missing"),
        "{:#?}",
        report.problems
    );
    assert_eq!(report.problems.len() as u64, deleted);
    assert!(n > 0);
}

#[tokio::test]
async fn one_trackers_broken_bucket_holds_back_no_other_project() {
    let s = setup().await;
    // A second project whose bucket cannot be written.
    let broken = Tracker {
        tracker_id: "tr-2".into(),
        project_id: "p2".into(),
        obs_info: Some(ObsInfo {
            bucket_name: "broken-bucket".into(),
            file_prefix_name: String::new(),
            is_obs_created: true,
            bucket_lifecycle: None,
            compress_type: CompressType::Gzip,
            is_sort_by_service: true,
        }),
        ..s.store
            .read(|c| trackers::tracker(c, "p1", "system"))
            .await
            .unwrap()
            .unwrap()
    };
    s.store
        .write(move |c| trackers::create_tracker(c, &broken))
        .await
        .unwrap();
    std::fs::create_dir_all(&s.root).unwrap();
    std::fs::write(s.root.join("broken-bucket"), b"not a folder").unwrap();
    let now = t0() + TimeDelta::minutes(5);
    s.store
        .append("p1", (0..4).map(|k| trace(k, now)).collect())
        .await
        .unwrap();
    s.store
        .append("p2", (4..8).map(|k| trace(k, now)).collect())
        .await
        .unwrap();
    set_now(&s, now);
    assert!(
        archiver::transfer_pass(&s.cfg).await.is_err(),
        "p2's failure is reported"
    );
    let end = t0() + TimeDelta::hours(1) + TimeDelta::minutes(1);
    set_now(&s, end);
    assert!(archiver::digest_pass(&s.cfg, false).await.is_err());
    // p1's archive is complete and verifies; p2's tracker shows the error.
    let report = verify(
        &FolderSource::new(s.root.join("audit-bucket")),
        &s.key.public_key(),
        None,
        None,
        end,
    )
    .unwrap();
    assert!(report.valid(), "{:#?}", report.problems);
    assert_eq!(report.counts.traces, 4);
    let p2 = s
        .store
        .read(|c| trackers::tracker(c, "p2", "system"))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(p2.status, TrackerStatus::Error);
}

/// Every trace file the archiver wrote under `dir` (digest files are elsewhere), read back.
fn archived_traces(dir: &std::path::Path) -> Vec<serde_json::Value> {
    let mut found = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(d) = pending.pop() {
        for entry in std::fs::read_dir(&d).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else if path.to_string_lossy().contains("CloudTraces") {
                let bytes = std::fs::read(&path).unwrap();
                found.extend(trailwatch_integrity::read_file(&bytes).unwrap().items);
            }
        }
    }
    found
}

#[tokio::test]
async fn request_objects_are_archived_as_json_text_and_strings_as_they_are() {
    let s = setup().await;
    let now = t0() + TimeDelta::minutes(5);
    let traces = [
        json!({"trace_id": "obj", "request": {"user_name": "alice"}, "response": [1, 2]}),
        json!({"trace_id": "text", "request": "{\"user_name\":\"bob\"}", "code": "200"}),
    ]
    .into_iter()
    .map(|mut v| {
        let m = v.as_object_mut().unwrap();
        for (k, val) in [
            ("trace_name", json!("login")),
            ("trace_type", json!("ConsoleAction")),
            ("service_type", json!("IAM")),
            ("resource_type", json!("user")),
            ("time", json!(now.timestamp_millis())),
        ] {
            m.insert(k.into(), val);
        }
        let mut t = Trace::from_value(v).unwrap();
        t.fill_defaults(now.timestamp_millis());
        NewTrace::from_trace(&t, now.timestamp_millis())
    })
    .collect();
    s.store.append("p1", traces).await.unwrap();
    set_now(&s, now);
    assert_eq!(archiver::transfer_pass(&s.cfg).await.unwrap(), 2);

    let archived = archived_traces(&s.root.join("audit-bucket"));
    let by_id = |id: &str| {
        archived
            .iter()
            .find(|t| t["trace_id"] == id)
            .unwrap_or_else(|| panic!("{id} not archived: {archived:?}"))
            .clone()
    };
    let obj = by_id("obj");
    assert_eq!(obj["request"], json!("{\"user_name\":\"alice\"}"));
    assert_eq!(obj["response"], json!("[1,2]"));
    let text = by_id("text");
    assert_eq!(text["request"], json!("{\"user_name\":\"bob\"}"));
    assert_eq!(text["code"], json!("200"));
    assert_eq!(archived.len(), 2);
}
