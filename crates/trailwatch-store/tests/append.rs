//! Sequence numbers, idempotent ingest and durability across reopen.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::{HashMap, HashSet};

use common::{Rng, T0, all_traces, open, simple};
use trailwatch_store::{AppendOutcome, TraceQuery, now_ms};

/// 20 tasks × 50 appends of 1–20 traces each, concurrently on a multi-thread runtime.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_appends_get_unique_increasing_seqs_in_input_order() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert_eq!(store.head(), 0);

    let mut head_rx = store.subscribe_head();
    assert_eq!(*head_rx.borrow_and_update(), 0);
    let waiter = {
        let mut rx = store.subscribe_head();
        tokio::spawn(async move {
            rx.changed().await.unwrap();
            *rx.borrow_and_update()
        })
    };

    let seed = Rng::seed_from_env(0x5eed_0001);
    let mut tasks = Vec::new();
    for task in 0..20u64 {
        let store = store.clone();
        tasks.push(tokio::spawn(async move {
            let mut rng = Rng::new(seed ^ (task * 7919));
            let project = format!("proj-{}", task % 3);
            let mut assigned: Vec<(String, String, u64)> = Vec::new();
            let mut last_seq = 0u64;
            for call in 0..50 {
                let n = 1 + rng.below(20) as usize;
                let ids: Vec<String> = (0..n).map(|k| format!("t{task}-{call}-{k}")).collect();
                let traces = ids
                    .iter()
                    .map(|id| simple(id, T0 + rng.below(1_000_000) as i64))
                    .collect();
                let outcomes = store.append(&project, traces).await.unwrap();
                assert_eq!(outcomes.len(), n, "one outcome per input trace");
                for (id, outcome) in ids.into_iter().zip(&outcomes) {
                    let AppendOutcome::Inserted { seq } = *outcome else {
                        panic!("fresh trace {id} reported as {outcome:?}");
                    };
                    // Strictly increasing within a call and across this task's sequential calls.
                    assert!(seq > last_seq, "seq {seq} after {last_seq} (task {task})");
                    last_seq = seq;
                    assigned.push((project.clone(), id, seq));
                }
                // Acknowledged means visible in head.
                assert!(
                    store.head() >= last_seq,
                    "head behind an acknowledged append"
                );
            }
            assigned
        }));
    }
    let mut assigned = Vec::new();
    for t in tasks {
        assigned.extend(t.await.unwrap());
    }

    let total = assigned.len();
    let seqs: HashSet<u64> = assigned.iter().map(|(_, _, s)| *s).collect();
    assert_eq!(seqs.len(), total, "a seq was handed out twice");
    let max = *seqs.iter().max().unwrap();
    assert_eq!(store.head(), max);
    assert_eq!(store.trace_count().await.unwrap(), total as u64);

    // Outcomes were in input order: the row stored at each seq is the trace we were told.
    let by_seq: HashMap<u64, (String, String)> = assigned
        .into_iter()
        .map(|(p, id, s)| (s, (p, id)))
        .collect();
    let stored = all_traces(&store).await;
    assert_eq!(stored.len(), total);
    assert!(
        stored.windows(2).all(|w| w[0].seq < w[1].seq),
        "read_after not in seq order"
    );
    for st in &stored {
        let (project, id) = &by_seq[&st.seq];
        assert_eq!(&st.trace_id, id, "seq {} holds another trace", st.seq);
        assert_eq!(&st.project_id, project);
        assert!(st.body.contains(id.as_str()));
    }

    // read_after pages in seq order without gaps or overlaps.
    let mut after = 0;
    let mut paged = Vec::new();
    loop {
        let page = store.read_after(after, 777).await.unwrap();
        if page.is_empty() {
            break;
        }
        after = page.last().unwrap().seq;
        paged.extend(page.into_iter().map(|t| t.seq));
    }
    assert_eq!(paged, stored.iter().map(|t| t.seq).collect::<Vec<_>>());

    assert!(
        head_rx.has_changed().unwrap(),
        "subscribe_head did not observe the appends"
    );
    assert_eq!(*head_rx.borrow_and_update(), max);
    let first_seen = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert!(first_seen > 0 && first_seen <= max);
}

#[tokio::test]
async fn head_notification_wakes_a_waiting_consumer() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut rx = store.subscribe_head();
    let waiter = tokio::spawn(async move { *rx.wait_for(|h| *h >= 3).await.unwrap() });
    store
        .append("p", vec![simple("a", T0), simple("b", T0)])
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    assert!(!waiter.is_finished(), "woke before head reached 3");
    store.append("p", vec![simple("c", T0)]).await.unwrap();
    let seen = tokio::time::timeout(std::time::Duration::from_secs(5), waiter)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(seen, 3);
    assert_eq!(store.head(), 3);
}

#[tokio::test]
async fn duplicate_trace_id_in_same_project_is_idempotent() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());

    let first = store
        .append("p1", vec![simple("a", T0), simple("b", T0 + 1)])
        .await
        .unwrap();
    let (AppendOutcome::Inserted { seq: sa }, AppendOutcome::Inserted { seq: sb }) =
        (first[0], first[1])
    else {
        panic!("expected two inserts, got {first:?}");
    };
    assert!(sa < sb);
    let head = store.head();
    let mut rx = store.subscribe_head();
    rx.borrow_and_update();

    // A retried "b" with different content, then a new "c".
    let mut b_again = simple("b", T0 + 99_000);
    b_again.trace_name = "deleteServer".into();
    b_again.body = b_again.body.replace("createServer", "deleteServer");
    let second = store
        .append("p1", vec![b_again, simple("c", T0 + 2)])
        .await
        .unwrap();
    assert_eq!(second[0], AppendOutcome::Duplicate { seq: sb });
    let AppendOutcome::Inserted { seq: sc } = second[1] else {
        panic!("c should be new: {second:?}");
    };
    assert!(sc > sb);
    assert_eq!(store.trace_count().await.unwrap(), 3);

    // The original "b" is what is stored.
    let page = store
        .query(TraceQuery {
            project_id: "p1".into(),
            trace_id: Some("b".into()),
            limit: 10,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.traces.len(), 1);
    assert_eq!(page.traces[0].seq, sb);
    assert!(page.traces[0].body.contains("createServer"));
    assert!(!page.traces[0].body.contains("deleteServer"));

    // An append of duplicates only stores nothing and does not move head.
    let head_after_c = store.head();
    assert_eq!(head_after_c, sc);
    rx.borrow_and_update();
    let dups = store
        .append("p1", vec![simple("a", T0), simple("c", T0)])
        .await
        .unwrap();
    assert_eq!(
        dups,
        vec![
            AppendOutcome::Duplicate { seq: sa },
            AppendOutcome::Duplicate { seq: sc }
        ]
    );
    assert_eq!(store.head(), head_after_c);
    assert!(
        !rx.has_changed().unwrap(),
        "head notified for a duplicates-only append"
    );
    assert_eq!(store.trace_count().await.unwrap(), 3);
    assert!(head < head_after_c);
}

#[tokio::test]
async fn same_trace_id_in_another_project_is_a_separate_trace() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let a1 = store.append("p1", vec![simple("x", T0)]).await.unwrap();
    let a2 = store.append("p2", vec![simple("x", T0)]).await.unwrap();
    let (AppendOutcome::Inserted { seq: s1 }, AppendOutcome::Inserted { seq: s2 }) = (a1[0], a2[0])
    else {
        panic!("both should be inserted: {a1:?} {a2:?}");
    };
    assert_ne!(s1, s2);
    assert_eq!(store.trace_count().await.unwrap(), 2);
    for (project, seq) in [("p1", s1), ("p2", s2)] {
        let page = store
            .query(TraceQuery {
                project_id: project.into(),
                limit: 10,
                ..Default::default()
            })
            .await
            .unwrap();
        assert_eq!(page.traces.len(), 1, "{project}");
        assert_eq!(page.traces[0].seq, seq);
        assert_eq!(page.traces[0].project_id, project);
    }
}

#[tokio::test]
async fn duplicate_within_one_append_call() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let out = store
        .append(
            "p",
            vec![simple("d", T0), simple("e", T0), simple("d", T0 + 5)],
        )
        .await
        .unwrap();
    let AppendOutcome::Inserted { seq } = out[0] else {
        panic!("{out:?}");
    };
    assert!(matches!(out[1], AppendOutcome::Inserted { .. }));
    assert_eq!(out[2], AppendOutcome::Duplicate { seq });
    assert_eq!(out[2].seq(), seq);
    assert_eq!(store.trace_count().await.unwrap(), 2);
}

#[tokio::test]
async fn duplicates_across_concurrent_appends_resolve_to_one_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let mut handles = Vec::new();
    for _ in 0..10 {
        let store = store.clone();
        handles.push(tokio::spawn(async move {
            store
                .append("p", vec![simple("same", T0), simple("other", T0)])
                .await
                .unwrap()
        }));
    }
    let mut inserted = 0;
    let mut seqs = HashSet::new();
    for h in handles {
        for o in h.await.unwrap() {
            if matches!(o, AppendOutcome::Inserted { .. }) {
                inserted += 1;
            }
            seqs.insert(o.seq());
        }
    }
    assert_eq!(inserted, 2);
    assert_eq!(seqs.len(), 2);
    assert_eq!(store.trace_count().await.unwrap(), 2);
}

#[tokio::test]
async fn empty_append_is_a_no_op() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    assert!(store.append("p", Vec::new()).await.unwrap().is_empty());
    assert_eq!(store.head(), 0);
    assert_eq!(store.trace_count().await.unwrap(), 0);
}

#[tokio::test]
async fn everything_survives_reopen_and_seqs_continue() {
    let dir = tempfile::tempdir().unwrap();
    let mut expected = Vec::new();
    {
        let store = open(dir.path());
        let clone = store.clone();
        for i in 0..30 {
            let project = if i % 2 == 0 { "even" } else { "odd" };
            let id = format!("r{i}");
            let out = clone
                .append(project, vec![simple(&id, T0 + i)])
                .await
                .unwrap();
            expected.push((out[0].seq(), project, id));
        }
        store.commit_cursor("consumer", 7).await.unwrap();
        drop(clone);
        drop(store);
    }
    let old_max = expected.iter().map(|e| e.0).max().unwrap();

    let store = open(dir.path());
    assert_eq!(store.head(), old_max, "head not restored");
    assert_eq!(store.trace_count().await.unwrap(), 30);
    assert_eq!(store.cursor("consumer").await.unwrap(), 7);
    let stored = all_traces(&store).await;
    let got: Vec<(u64, &str, &str)> = stored
        .iter()
        .map(|t| (t.seq, t.project_id.as_str(), t.trace_id.as_str()))
        .collect();
    let want: Vec<(u64, &str, &str)> = expected
        .iter()
        .map(|(s, p, i)| (*s, *p, i.as_str()))
        .collect();
    assert_eq!(got, want);

    // Project keys are restored: queries and duplicate detection still work.
    let page = store
        .query(TraceQuery {
            project_id: "odd".into(),
            limit: 100,
            ..Default::default()
        })
        .await
        .unwrap();
    assert_eq!(page.traces.len(), 15);
    assert_eq!(page.traces[0].trace_id, "r29", "newest first");
    let dup = store.append("even", vec![simple("r0", T0)]).await.unwrap();
    assert_eq!(dup[0], AppendOutcome::Duplicate { seq: expected[0].0 });

    let new = store.append("even", vec![simple("new", T0)]).await.unwrap();
    assert!(new[0].seq() > old_max, "seq {} reused", new[0].seq());
    assert_eq!(store.head(), new[0].seq());
}

#[tokio::test]
async fn seqs_are_never_reused_after_retention_and_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut max_seen;
    {
        let store = open(dir.path());
        let out = store
            .append("p", (0..10).map(|i| simple(&format!("a{i}"), T0)).collect())
            .await
            .unwrap();
        max_seen = out.last().unwrap().seq();
        // No cursors: everything ingested before the cutoff goes, the newest rows included.
        let deleted = store.apply_retention(now_ms() + 60_000).await.unwrap();
        assert_eq!(deleted, 10);
        assert_eq!(store.trace_count().await.unwrap(), 0);

        let out = store.append("p", vec![simple("b", T0)]).await.unwrap();
        assert!(out[0].seq() > max_seen, "seq reused after retention");
        max_seen = out[0].seq();
        // The old ids are gone, so they insert again (with new seqs).
        let again = store.append("p", vec![simple("a0", T0)]).await.unwrap();
        assert!(matches!(again[0], AppendOutcome::Inserted { seq } if seq > max_seen));
        max_seen = again[0].seq();
        assert_eq!(store.apply_retention(now_ms() + 60_000).await.unwrap(), 2);
    }
    let store = open(dir.path());
    assert_eq!(store.trace_count().await.unwrap(), 0);
    let out = store.append("p", vec![simple("c", T0)]).await.unwrap();
    assert!(
        out[0].seq() > max_seen,
        "seq {} reused after reopen (max before {max_seen})",
        out[0].seq()
    );
}

/// After retention purged the whole log, a reopened store reports `head() == 0` while consumer
/// cursors (and the live store before the restart) are at the old head: head goes backwards.
#[tokio::test]
async fn head_does_not_go_backwards_across_reopen_after_full_retention() {
    let dir = tempfile::tempdir().unwrap();
    let head_before;
    {
        let store = open(dir.path());
        store
            .append("p", (0..5).map(|i| simple(&format!("a{i}"), T0)).collect())
            .await
            .unwrap();
        head_before = store.head();
        store.commit_cursor("consumer", head_before).await.unwrap();
        store.apply_retention(now_ms() + 60_000).await.unwrap();
        assert_eq!(store.trace_count().await.unwrap(), 0);
        // The live store keeps its head.
        assert_eq!(store.head(), head_before);
    }
    let store = open(dir.path());
    let cursor = store.cursor("consumer").await.unwrap();
    assert!(
        store.head() >= cursor,
        "head {} is behind consumer cursor {cursor} after reopen (was {head_before})",
        store.head()
    );
}
