//! The query index lives in its own file (`index.db`) and is derived data: missing, or belonging
//! to another log, it is rebuilt from the log, and queries stay exact meanwhile.
#![allow(clippy::unwrap_used)]

mod common;

use std::path::Path;
use std::time::Duration;

use common::{T0, new_trace};
use serde_json::json;
use trailwatch_store::{Store, StoreOptions, now_ms};
use trailwatch_store::{TraceFilter, TraceQuery};

fn login(id: &str, user: &str, time: i64) -> trailwatch_store::NewTrace {
    new_trace(json!({
        "trace_id": id,
        "trace_name": "login",
        "trace_type": "ConsoleAction",
        "service_type": "IAM",
        "resource_type": "user",
        "user": {"name": user},
        "source_ip": "203.0.113.9",
        "time": time,
    }))
}

/// Appends `n` logins of `user` to project `p`.
async fn append_logins(store: &Store, user: &str, n: usize) {
    let traces = (0..n)
        .map(|i| login(&format!("{user}-{i}"), user, T0 + i as i64))
        .collect();
    store.append("p", traces).await.unwrap();
}

async fn ids_of_user(store: &Store, user: &str) -> Vec<String> {
    let page = store
        .query(TraceQuery {
            project_id: "p".into(),
            limit: 1000,
            filter: TraceFilter {
                user: Some(user.into()),
                ..TraceFilter::default()
            },
            ..TraceQuery::default()
        })
        .await
        .unwrap();
    page.traces.into_iter().map(|t| t.trace_id).collect()
}

async fn wait_indexed(store: &Store) {
    for _ in 0..500 {
        if store.index_lag().await.unwrap() == 0 {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("the indexer never caught up");
}

/// Options under which nothing is ever indexed: queries are answered from the log alone.
fn never_index(dir: &Path) -> StoreOptions {
    let mut options = StoreOptions::new(dir);
    options.index_eagerly = false;
    options.index_max_lag = u64::MAX;
    options
}

fn remove_index_files(dir: &Path) {
    for name in ["index.db", "index.db-wal", "index.db-shm"] {
        let _ = std::fs::remove_file(dir.join(name));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_index_is_rebuilt_and_queries_stay_exact() {
    let dir = tempfile::tempdir().unwrap();
    let want = {
        let store = common::open(dir.path());
        append_logins(&store, "alice", 300).await;
        append_logins(&store, "bob", 50).await;
        wait_indexed(&store).await;
        let want = ids_of_user(&store, "alice").await;
        assert_eq!(want.len(), 300);
        want
    };
    remove_index_files(dir.path());

    // Nothing indexed yet: the whole log is the tail, and the answer is the same.
    {
        let store = Store::open(never_index(dir.path())).unwrap();
        assert_eq!(store.index_lag().await.unwrap(), 350);
        assert_eq!(ids_of_user(&store, "alice").await, want);
    }
    // The default options rebuild it.
    let store = common::open(dir.path());
    wait_indexed(&store).await;
    assert_eq!(ids_of_user(&store, "alice").await, want);
    assert_eq!(ids_of_user(&store, "bob").await.len(), 50);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_index_file_is_rebuilt() {
    let dir = tempfile::tempdir().unwrap();
    {
        let store = common::open(dir.path());
        append_logins(&store, "alice", 60).await;
        wait_indexed(&store).await;
    }
    remove_index_files(dir.path());
    std::fs::write(dir.path().join("index.db"), vec![0x5a; 8192]).unwrap();
    let store = common::open(dir.path());
    assert_eq!(ids_of_user(&store, "alice").await.len(), 60);
    wait_indexed(&store).await;
    assert_eq!(ids_of_user(&store, "alice").await.len(), 60);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_index_of_another_log_is_discarded() {
    let a = tempfile::tempdir().unwrap();
    let b = tempfile::tempdir().unwrap();
    {
        let store = common::open(a.path());
        append_logins(&store, "alice", 40).await;
        wait_indexed(&store).await;
    }
    {
        let store = common::open(b.path());
        append_logins(&store, "bob", 120).await;
        wait_indexed(&store).await;
    }
    // B's index replaced by A's: its position (40) is within B's log (120 traces), but its
    // entries describe traces B does not hold.
    remove_index_files(b.path());
    std::fs::copy(a.path().join("index.db"), b.path().join("index.db")).unwrap();

    let store = Store::open(never_index(b.path())).unwrap();
    assert_eq!(
        store.index_lag().await.unwrap(),
        120,
        "the foreign index was kept"
    );
    assert!(ids_of_user(&store, "alice").await.is_empty());
    assert_eq!(ids_of_user(&store, "bob").await.len(), 120);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_removes_the_index_entries_of_the_traces_it_deletes() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    append_logins(&store, "alice", 200).await;
    wait_indexed(&store).await;
    assert_eq!(store.apply_retention(now_ms() + 60_000).await.unwrap(), 200);
    assert!(ids_of_user(&store, "alice").await.is_empty());
    // Traces appended after retention are indexed and found.
    append_logins(&store, "carol", 10).await;
    wait_indexed(&store).await;
    assert_eq!(ids_of_user(&store, "carol").await.len(), 10);
    drop(store);

    let index = rusqlite::Connection::open(dir.path().join("index.db")).unwrap();
    let listed = |field: i64, v: &str| -> i64 {
        let chunks: Vec<Vec<u8>> = index
            .prepare("SELECT entries FROM ix_post WHERE field = ?1 AND v = ?2")
            .unwrap()
            .query_map(rusqlite::params![field, v], |r| r.get(0))
            .unwrap()
            .collect::<Result<_, _>>()
            .unwrap();
        // Each entry of these chunks is a time and a seq varint, the last byte of each below
        // 0x80.
        chunks
            .iter()
            .map(|c| c.iter().filter(|b| **b < 0x80).count() as i64 / 2)
            .sum()
    };
    assert_eq!(
        listed(0, ""),
        10,
        "entries of deleted traces were left behind"
    );
    assert_eq!(listed(1, "alice"), 0);
    assert_eq!(listed(1, "carol"), 10);
    let address_bytes: i64 = index
        .query_row(
            "SELECT sum(length(entries)) FROM ix_post WHERE field = 7",
            [],
            |r| r.get(0),
        )
        .unwrap();
    // 10 entries: two varints and an IPv4 address (a length byte and 4 bytes) each.
    assert!(
        address_bytes <= 10 * 9,
        "{address_bytes} bytes in address chunks"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_trims_the_index_chunk_it_cuts_through() {
    let dir = tempfile::tempdir().unwrap();
    let store = common::open(dir.path());
    // One append, one index batch: alice's 200 logins share one chunk per field.
    append_logins(&store, "alice", 200).await;
    wait_indexed(&store).await;
    // A consumer that has processed 120 traces holds retention back there.
    store.commit_cursor("slow-consumer", 120).await.unwrap();
    assert_eq!(store.apply_retention(now_ms() + 60_000).await.unwrap(), 120);
    let ids = ids_of_user(&store, "alice").await;
    let expected: Vec<String> = (120..200).rev().map(|i| format!("alice-{i}")).collect();
    assert_eq!(
        ids, expected,
        "the trimmed chunk lost or kept the wrong traces"
    );
    drop(store);

    let index = rusqlite::Connection::open(dir.path().join("index.db")).unwrap();
    let (first_seq, bytes): (i64, i64) = index
        .query_row(
            "SELECT min(first_seq), sum(length(entries)) FROM ix_post WHERE field = 1",
            [],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )
        .unwrap();
    assert_eq!(first_seq, 121, "the chunk still starts at a deleted trace");
    assert!(bytes < 3 * 80, "{bytes} bytes left for 80 entries");
}
