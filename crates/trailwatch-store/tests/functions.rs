//! Function records: housekeeping keeps queued invocations and dead letters, drops old finished
//! records, statistics and publish keys.
#![allow(clippy::unwrap_used)]

mod common;

use common::open;
use trailwatch_store::functions::{self, InvocationRow, StatsEvent};

fn invocation(id: &str, state: &str, created_at: i64) -> InvocationRow {
    InvocationRow {
        request_id: id.into(),
        function_id: "f1".into(),
        project_id: "p1".into(),
        trigger: "API".into(),
        mode: "async".into(),
        state: state.into(),
        event: Some("{}".into()),
        attempts: 1,
        next_at: Some(created_at),
        started_at: None,
        duration_ms: None,
        status: None,
        result: None,
        log: None,
        error: None,
        created_at,
    }
}

#[tokio::test]
async fn prune_drops_old_finished_records_and_keeps_work_and_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let (old, new) = (1_000_000_i64, 9_000_000_i64);
    store
        .write(move |c| {
            for (id, state, at) in [
                ("old-ok", "succeeded", old),
                ("old-failed", "failed", old),
                ("old-queued", "queued", old),
                ("old-dead", "dead", old),
                ("new-ok", "succeeded", new),
            ] {
                functions::insert_invocation(c, &invocation(id, state, at))?;
            }
            functions::record_stats(c, "f1", old, StatsEvent::Rejected)?;
            functions::record_stats(c, "f1", new, StatsEvent::Rejected)?;
            Ok(())
        })
        .await
        .unwrap();
    let removed = store
        .write(move |c| functions::prune(c, 5_000_000))
        .await
        .unwrap();
    assert_eq!(removed, 3, "two finished records and one statistics minute");
    let left = store
        .read(|c| {
            let mut ids: Vec<String> = ["old-ok", "old-failed", "old-queued", "old-dead", "new-ok"]
                .iter()
                .filter(|id| functions::invocation(c, id).ok().flatten().is_some())
                .map(|id| (*id).to_owned())
                .collect();
            ids.sort();
            Ok((ids, functions::stats_since(c, "f1", 0)?.len()))
        })
        .await
        .unwrap();
    assert_eq!(left.0, vec!["new-ok", "old-dead", "old-queued"]);
    assert_eq!(left.1, 1);
}
