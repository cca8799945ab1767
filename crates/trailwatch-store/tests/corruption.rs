//! Deliberately damaged database files: the store must answer with errors, never panic.
//!
//! Panics on the store's own threads (the writer, the blocking reader tasks) would not reach the
//! test as a panic (a dead writer turns into `Closed`, a panicked reader task into `Corrupt`), so
//! a process-wide panic hook counts every panic and each test asserts the count stayed at zero.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeMap;
use std::io::{Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Once;
use std::sync::atomic::{AtomicUsize, Ordering};

use common::{Rng, T0, new_trace};
use serde_json::json;
use trailwatch_store::{Store, StoreOptions, TraceFilter, TraceQuery, now_ms, rusqlite};

static PANICS: AtomicUsize = AtomicUsize::new(0);

fn count_panics() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            PANICS.fetch_add(1, Ordering::SeqCst);
            previous(info);
        }));
    });
}

/// Fills a store with enough traces for a few hundred pages, closes it, and folds the WAL into
/// the main file so that damaging `trailwatch.db` damages the data.
async fn populated_db(dir: &Path) -> PathBuf {
    let store = Store::open(StoreOptions::new(dir)).unwrap();
    for batch in 0..6 {
        let traces = (0..500)
            .map(|i| {
                new_trace(json!({
                    "trace_id": format!("b{batch}-{i}"),
                    "trace_name": "createServer",
                    "trace_type": "ApiCall",
                    "service_type": "ECS",
                    "resource_type": "server",
                    "resource_name": format!("server-{i}"),
                    "source_ip": format!("10.0.{}.{}", batch, i % 250),
                    "user": {"name": format!("user-{}", i % 7)},
                    "time": T0 + i64::from(i) * 1000,
                    "message": "x".repeat(200),
                }))
            })
            .collect();
        store
            .append(&format!("proj-{}", batch % 3), traces)
            .await
            .unwrap();
    }
    store.commit_cursor("consumer", 100).await.unwrap();
    let path = store.db_path().to_owned();
    drop(store);
    let c = rusqlite::Connection::open(&path).unwrap();
    c.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))
        .unwrap();
    let mode: String = c
        .query_row("PRAGMA journal_mode = DELETE", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "delete");
    drop(c);
    assert!(!path.with_extension("db-wal").exists());
    path
}

/// Outcome of poking at a damaged store.
#[derive(Debug, Default)]
struct Outcome {
    opened: bool,
    ok: BTreeMap<&'static str, usize>,
    errors: Vec<String>,
}

fn note<T>(o: &mut Outcome, what: &'static str, r: trailwatch_store::Result<T>) -> Option<T> {
    match r {
        Ok(v) => {
            *o.ok.entry(what).or_default() += 1;
            Some(v)
        }
        Err(e) => {
            o.errors.push(format!("{what}: {e}"));
            None
        }
    }
}

/// Opens the damaged store and runs every kind of operation on it, recording the results.
async fn exercise(dir: PathBuf) -> Outcome {
    let mut o = Outcome::default();
    let Some(store) = note(&mut o, "open", Store::open(StoreOptions::new(&dir))) else {
        return o;
    };
    o.opened = true;
    let _ = store.head();
    note(&mut o, "trace_count", store.trace_count().await);
    note(&mut o, "size_bytes", store.size_bytes().await);
    note(&mut o, "read_after", store.read_after(0, 100_000).await);
    note(&mut o, "read_after_mid", store.read_after(1500, 10).await);
    note(&mut o, "cursor", store.cursor("consumer").await);
    for project in ["proj-0", "proj-1", "proj-2"] {
        let mut marker = None;
        for _ in 0..50 {
            let q = TraceQuery {
                project_id: project.into(),
                limit: 20,
                marker: marker.take(),
                ..Default::default()
            };
            match note(&mut o, "query", store.query(q).await) {
                Some(page) => match page.next_marker {
                    Some(m) => marker = Some(m),
                    None => break,
                },
                None => break,
            }
        }
        let filtered = TraceQuery {
            project_id: project.into(),
            limit: 1000,
            filter: TraceFilter {
                user: Some("user-3".into()),
                source_ip: Some("10.0.0.0/16".parse().unwrap()),
                ..Default::default()
            },
            ..Default::default()
        };
        note(&mut o, "filtered query", store.query(filtered).await);
        let by_id = TraceQuery {
            project_id: project.into(),
            trace_id: Some("b1-250".into()),
            limit: 1,
            ..Default::default()
        };
        note(&mut o, "query by id", store.query(by_id).await);
    }
    let fresh = vec![new_trace(json!({
        "trace_id": "after-damage", "trace_name": "login", "trace_type": "ConsoleAction",
        "service_type": "IAM", "resource_type": "user", "time": T0,
    }))];
    note(&mut o, "append", store.append("proj-0", fresh).await);
    note(
        &mut o,
        "commit_cursor",
        store.commit_cursor("consumer", 200).await,
    );
    note(
        &mut o,
        "retention",
        store.apply_retention(now_ms() + 3_600_000).await,
    );
    note(&mut o, "trace_count again", store.trace_count().await);
    o
}

/// Runs `exercise` on its own task so that a panic on the calling side shows up as a JoinError.
async fn exercise_without_panic(dir: &Path) -> Outcome {
    let result = tokio::spawn(exercise(dir.to_owned())).await;
    let outcome = match result {
        Ok(o) => o,
        Err(e) => panic!("the store panicked on a damaged file: {e}"),
    };
    eprintln!("{outcome:#?}");
    assert_eq!(
        PANICS.load(Ordering::SeqCst),
        0,
        "a store thread panicked: {outcome:#?}"
    );
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn truncated_database_gives_errors_not_panics() {
    count_panics();
    let dir = tempfile::tempdir().unwrap();
    let path = populated_db(dir.path()).await;
    let len = std::fs::metadata(&path).unwrap().len();
    assert!(
        len > 400_000,
        "database too small to damage meaningfully: {len}"
    );
    let f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.set_len(len / 2).unwrap();
    f.sync_all().unwrap();
    drop(f);

    let o = exercise_without_panic(dir.path()).await;
    assert!(
        !o.errors.is_empty(),
        "half the file is gone and nothing noticed: {o:#?}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_in_the_middle_gives_errors_not_panics() {
    count_panics();
    let dir = tempfile::tempdir().unwrap();
    let path = populated_db(dir.path()).await;
    let len = std::fs::metadata(&path).unwrap().len();
    let mut rng = Rng::new(Rng::seed_from_env(0xbad_da7a));
    let garbage: Vec<u8> = (0..3 * 4096).map(|_| rng.next_u64() as u8).collect();
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    // Not page-aligned, so page headers and cell contents are both hit.
    f.seek(SeekFrom::Start(len / 2 - 1234)).unwrap();
    f.write_all(&garbage).unwrap();
    f.sync_all().unwrap();
    drop(f);
    assert_eq!(std::fs::metadata(&path).unwrap().len(), len);

    let o = exercise_without_panic(dir.path()).await;
    // No panic is the requirement; SQLite may or may not notice every damaged page.
    assert!(o.opened || !o.errors.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn garbage_header_fails_to_open() {
    count_panics();
    let dir = tempfile::tempdir().unwrap();
    let path = populated_db(dir.path()).await;
    let mut f = std::fs::OpenOptions::new().write(true).open(&path).unwrap();
    f.write_all(&[0xA5; 100]).unwrap();
    f.sync_all().unwrap();
    drop(f);

    let o = exercise_without_panic(dir.path()).await;
    assert!(!o.opened, "opened a file whose header is garbage: {o:#?}");
    assert_eq!(o.errors.len(), 1);
}
