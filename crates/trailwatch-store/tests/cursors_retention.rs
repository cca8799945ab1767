//! Consumer cursors, atomic effect + cursor writes, and retention.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::{T0, all_traces, open, simple};
use trailwatch_store::rusqlite::OptionalExtension;
use trailwatch_store::{Store, StoreError, now_ms, set_cursor};

const EFFECTS: &str =
    "CREATE TABLE IF NOT EXISTS effects(id INTEGER PRIMARY KEY, what TEXT NOT NULL)";

async fn effects(store: &Store) -> Vec<String> {
    store
        .read(|c| {
            let exists: Option<i64> = c
                .query_row(
                    "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'effects'",
                    [],
                    |r| r.get(0),
                )
                .optional()?;
            if exists.is_none() {
                return Ok(Vec::new());
            }
            let mut stmt = c.prepare("SELECT what FROM effects ORDER BY id")?;
            let rows = stmt.query_map([], |r| r.get(0))?;
            Ok(rows.collect::<Result<Vec<String>, _>>()?)
        })
        .await
        .unwrap()
}

#[tokio::test]
async fn commit_cursor_only_moves_forward() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.cursor("c").await.unwrap(), 0);
    store.commit_cursor("c", 5).await.unwrap();
    assert_eq!(store.cursor("c").await.unwrap(), 5);
    store.commit_cursor("c", 3).await.unwrap();
    assert_eq!(store.cursor("c").await.unwrap(), 5, "cursor moved back");
    store.commit_cursor("c", 5).await.unwrap();
    assert_eq!(store.cursor("c").await.unwrap(), 5);
    store.commit_cursor("c", 9).await.unwrap();
    assert_eq!(store.cursor("c").await.unwrap(), 9);
    // Cursors are independent.
    assert_eq!(store.cursor("d").await.unwrap(), 0);
    store.commit_cursor("d", 1).await.unwrap();
    assert_eq!(store.cursor("c").await.unwrap(), 9);
    assert_eq!(store.cursor("d").await.unwrap(), 1);
}

#[tokio::test]
async fn effect_and_cursor_commit_together_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());

    // Success: both visible.
    let v = store
        .write(|tx| {
            tx.execute_batch(EFFECTS)?;
            tx.execute("INSERT INTO effects(what) VALUES ('first')", [])?;
            set_cursor(tx, "eff", 10)?;
            Ok(42)
        })
        .await
        .unwrap();
    assert_eq!(v, 42);
    assert_eq!(effects(&store).await, vec!["first"]);
    assert_eq!(store.cursor("eff").await.unwrap(), 10);

    // The closure fails after set_cursor: neither effect nor cursor.
    let r: Result<(), _> = store
        .write(|tx| {
            tx.execute("INSERT INTO effects(what) VALUES ('lost')", [])?;
            set_cursor(tx, "eff", 20)?;
            set_cursor(tx, "other", 20)?;
            Err(StoreError::Conflict("consumer gave up".into()))
        })
        .await;
    assert!(
        matches!(&r, Err(StoreError::Conflict(m)) if m == "consumer gave up"),
        "{r:?}"
    );
    assert_eq!(effects(&store).await, vec!["first"]);
    assert_eq!(store.cursor("eff").await.unwrap(), 10);
    assert_eq!(store.cursor("other").await.unwrap(), 0);

    // An SQL error after set_cursor rolls back too.
    let r: Result<(), _> = store
        .write(|tx| {
            set_cursor(tx, "eff", 30)?;
            tx.execute("INSERT INTO effects(what) VALUES ('lost too')", [])?;
            tx.execute("INSERT INTO no_such_table VALUES (1)", [])?;
            Ok(())
        })
        .await;
    assert!(matches!(r, Err(StoreError::Sqlite(_))), "{r:?}");
    assert_eq!(effects(&store).await, vec!["first"]);
    assert_eq!(store.cursor("eff").await.unwrap(), 10);

    // The writer is healthy afterwards (no transaction left open): writes and appends work.
    store
        .write(|tx| {
            tx.execute("INSERT INTO effects(what) VALUES ('second')", [])?;
            set_cursor(tx, "eff", 11)?;
            Ok(())
        })
        .await
        .unwrap();
    store.append("p", vec![simple("a", T0)]).await.unwrap();
    assert_eq!(effects(&store).await, vec!["first", "second"]);
    assert_eq!(store.cursor("eff").await.unwrap(), 11);
    assert_eq!(store.trace_count().await.unwrap(), 1);

    // Effects and cursors survive a restart.
    drop(store);
    let store = open(dir.path());
    assert_eq!(effects(&store).await, vec!["first", "second"]);
    assert_eq!(store.cursor("eff").await.unwrap(), 11);
}

#[tokio::test]
async fn set_cursor_inside_write_does_not_move_back() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    store.commit_cursor("c", 50).await.unwrap();
    store
        .write(|tx| {
            tx.execute_batch(EFFECTS)?;
            tx.execute("INSERT INTO effects(what) VALUES ('replayed')", [])?;
            set_cursor(tx, "c", 40)
        })
        .await
        .unwrap();
    assert_eq!(store.cursor("c").await.unwrap(), 50);
    assert_eq!(effects(&store).await, vec!["replayed"]);
}

/// Appends `n` traces named `{prefix}{i}` in one call and returns their seqs.
async fn append_n(store: &Store, prefix: &str, n: usize) -> Vec<u64> {
    let out = store
        .append(
            "p",
            (0..n)
                .map(|i| simple(&format!("{prefix}{i}"), T0))
                .collect(),
        )
        .await
        .unwrap();
    out.into_iter().map(|o| o.seq()).collect()
}

/// A cutoff strictly between everything ingested so far and everything ingested afterwards.
async fn cutoff_now() -> i64 {
    tokio::time::sleep(Duration::from_millis(5)).await;
    let cutoff = now_ms();
    tokio::time::sleep(Duration::from_millis(5)).await;
    cutoff
}

async fn stored_seqs(store: &Store) -> Vec<u64> {
    all_traces(store).await.into_iter().map(|t| t.seq).collect()
}

#[tokio::test]
async fn retention_without_cursors_deletes_everything_older_than_the_cutoff() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut old = append_n(&store, "old-a", 5).await;
    old.extend(append_n(&store, "old-b", 7).await);
    let cutoff = cutoff_now().await;
    let new = append_n(&store, "new", 4).await;

    assert_eq!(store.apply_retention(cutoff).await.unwrap(), 12);
    assert_eq!(stored_seqs(&store).await, new);
    assert_eq!(store.trace_count().await.unwrap(), 4);
    // Idempotent.
    assert_eq!(store.apply_retention(cutoff).await.unwrap(), 0);
    // A cutoff in the past deletes nothing.
    assert_eq!(store.apply_retention(0).await.unwrap(), 0);
    assert_eq!(store.trace_count().await.unwrap(), 4);
    // Deleted traces are gone from queries too.
    let page = store
        .query(trailwatch_store::TraceQuery {
            project_id: "p".into(),
            trace_id: Some("old-a0".into()),
            limit: 1,
            ..Default::default()
        })
        .await
        .unwrap();
    assert!(page.traces.is_empty());
    assert!(old.iter().all(|s| !new.contains(s)));
}

#[tokio::test]
async fn retention_never_passes_the_slowest_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let old = append_n(&store, "old", 20).await;
    let cutoff = cutoff_now().await;
    let new = append_n(&store, "new", 3).await;

    store.commit_cursor("slow", old[6]).await.unwrap();
    store.commit_cursor("fast", old[17]).await.unwrap();
    assert_eq!(store.apply_retention(cutoff).await.unwrap(), 7);
    let expect: Vec<u64> = old[7..].iter().chain(&new).copied().collect();
    assert_eq!(
        stored_seqs(&store).await,
        expect,
        "old rows after the slow cursor must survive"
    );

    // The slow consumer catches up: now the fast one (at old[17]) is the slowest.
    store
        .commit_cursor("slow", *new.last().unwrap())
        .await
        .unwrap();
    assert_eq!(store.apply_retention(cutoff).await.unwrap(), 11);
    let expect: Vec<u64> = old[18..].iter().chain(&new).copied().collect();
    assert_eq!(stored_seqs(&store).await, expect);
    // Both past every old row: all old rows go, rows newer than the cutoff stay.
    store
        .commit_cursor("fast", *new.last().unwrap())
        .await
        .unwrap();
    assert_eq!(store.apply_retention(cutoff).await.unwrap(), 2);
    assert_eq!(stored_seqs(&store).await, new);
    assert_eq!(store.apply_retention(cutoff).await.unwrap(), 0);
}

#[tokio::test]
async fn a_cursor_at_zero_blocks_retention() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    append_n(&store, "old", 5).await;
    let cutoff = cutoff_now().await;
    store.commit_cursor("fresh-consumer", 0).await.unwrap();
    assert_eq!(store.apply_retention(cutoff).await.unwrap(), 0);
    assert_eq!(store.trace_count().await.unwrap(), 5);
}

#[tokio::test]
async fn retention_deletes_more_than_one_chunk_and_size_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let empty_size = store.size_bytes().await.unwrap();
    assert!(empty_size > 0);
    let n = 12_001;
    let seqs = append_n(&store, "bulk", n).await;
    assert_eq!(seqs.len(), n);
    assert_eq!(store.trace_count().await.unwrap(), n as u64);
    let full_size = store.size_bytes().await.unwrap();
    assert!(full_size > empty_size, "{full_size} <= {empty_size}");
    let cutoff = cutoff_now().await;
    let keep = append_n(&store, "keep", 2).await;
    assert_eq!(store.apply_retention(cutoff).await.unwrap(), n as u64);
    assert_eq!(stored_seqs(&store).await, keep);
}

/// A consumer closure that panics takes the writer thread down with it: every later append and
/// write of the process fails with `Closed` until restart.
#[tokio::test]
async fn a_panicking_write_closure_does_not_kill_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let r: Result<(), StoreError> = store
        .write(|_tx| -> Result<(), StoreError> { panic!("consumer bug") })
        .await;
    assert!(r.is_err());
    let after = store.append("p", vec![simple("a", T0)]).await;
    assert!(
        after.is_ok(),
        "store unusable after a panicking closure: {after:?}"
    );
    let w = store.write(|tx| set_cursor(tx, "c", 1)).await;
    assert!(w.is_ok(), "{w:?}");
}

#[tokio::test]
async fn write_errors_are_returned_not_swallowed() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let r = store
        .write(|tx| Ok(tx.execute("THIS IS NOT SQL", [])?))
        .await;
    assert!(matches!(r, Err(StoreError::Sqlite(_))), "{r:?}");
    assert!(store.write(|_| Ok(())).await.is_ok());
}
