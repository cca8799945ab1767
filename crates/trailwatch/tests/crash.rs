//! Crash safety: `kill -9` during a load of acknowledged traces, restart, and every acknowledged
//! trace is present exactly once.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::{Server, ids, list_all, login_trace};
use serde_json::{Value, json};

/// What the loaders sent: acknowledged trace ids, and batches whose answer never came.
#[derive(Default)]
struct Ledger {
    acked: Vec<String>,
    unacked: Vec<Vec<Value>>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_during_load_loses_no_acknowledged_trace_and_duplicates_none() {
    let server = Server::start();
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let mut tasks = Vec::new();
    for worker in 0..4 {
        let client = server.admin().await;
        let ledger = ledger.clone();
        tasks.push(tokio::spawn(async move {
            for batch_no in 0..100_000 {
                let batch: Vec<Value> = (0..50)
                    .map(|i| {
                        let mut t = login_trace("load", "10.0.0.1", 1_700_000_000_000 + batch_no);
                        t["trace_id"] = json!(format!("w{worker}-b{batch_no}-{i}"));
                        t
                    })
                    .collect();
                match client.put_traces(&batch).await {
                    Ok(resp) if resp.status == 201 => {
                        let results = resp.body["results"].as_array().unwrap();
                        assert_eq!(results.len(), 50);
                        let mut l = ledger.lock().unwrap();
                        for r in results {
                            l.acked.push(r["trace_id"].as_str().unwrap().to_owned());
                        }
                    }
                    Ok(resp) => panic!("unexpected answer {}: {}", resp.status, resp.body),
                    Err(_) => {
                        // The server died under us: this batch may or may not be stored.
                        ledger.lock().unwrap().unacked.push(batch);
                        return;
                    }
                }
            }
        }));
    }
    // Let the load run, then pull the plug while requests are in flight.
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let server = tokio::task::spawn_blocking(move || server.restart_after_kill9())
        .await
        .unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
    assert!(
        ledger.acked.len() >= 500,
        "the load ran: {} acknowledged",
        ledger.acked.len()
    );
    assert!(
        !ledger.unacked.is_empty(),
        "the kill landed during the load"
    );

    let client = server.admin().await;
    let stored = ids(&list_all(&client, &[]).await);
    let unique: HashSet<&String> = stored.iter().collect();
    assert_eq!(unique.len(), stored.len(), "no trace is stored twice");
    let missing: Vec<&String> = ledger
        .acked
        .iter()
        .filter(|id| !unique.contains(id))
        .collect();
    assert!(
        missing.is_empty(),
        "{} acknowledged traces lost, e.g. {:?}",
        missing.len(),
        &missing[..missing.len().min(5)]
    );

    // The client retries the batches it never heard back about: nothing is stored twice.
    let mut expected: HashSet<String> = ledger.acked.iter().cloned().collect();
    for batch in &ledger.unacked {
        let resp = client.put_traces(batch).await.unwrap();
        assert_eq!(resp.status, 201);
        for r in resp.body["results"].as_array().unwrap() {
            expected.insert(r["trace_id"].as_str().unwrap().to_owned());
        }
    }
    let stored = ids(&list_all(&client, &[]).await);
    let unique: HashSet<String> = stored.iter().cloned().collect();
    assert_eq!(stored.len(), unique.len(), "no duplicates after the retry");
    assert_eq!(
        unique, expected,
        "exactly the acknowledged and retried traces"
    );
    eprintln!(
        "crash test: {} acknowledged before kill -9, {} batches retried, {} stored",
        ledger.acked.len(),
        ledger.unacked.len(),
        stored.len()
    );
}
