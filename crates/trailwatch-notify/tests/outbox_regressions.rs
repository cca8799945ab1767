//! Regressions found in review: a delivery must never be sent twice from a stale due-list, and
//! a subscription URN crafted from another project's id must delete nothing.
#![allow(clippy::unwrap_used)]
use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use trailwatch_notify::notification::Signer;
use trailwatch_notify::service::{Notifier, NotifyConfig};
use trailwatch_store::smn::{self as db, NewDelivery, NewMessage, NewSubscription};
use trailwatch_store::{Store, StoreOptions, now_ms};

async fn receiver() -> (u16, Arc<Mutex<HashMap<String, u32>>>) {
    let l = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = l.local_addr().unwrap().port();
    let hits: Arc<Mutex<HashMap<String, u32>>> = Arc::default();
    let h = hits.clone();
    tokio::spawn(async move {
        loop {
            let (mut s, _) = l.accept().await.unwrap();
            let h = h.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut tmp = [0u8; 4096];
                loop {
                    let n = s.read(&mut tmp).await.unwrap();
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&tmp[..n]);
                    let text = String::from_utf8_lossy(&buf).to_string();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let cl = text[..end]
                            .lines()
                            .find_map(|l| {
                                let l = l.to_ascii_lowercase();
                                l.strip_prefix("content-length:")
                                    .map(|v| v.trim().parse::<usize>().unwrap())
                            })
                            .unwrap_or(0);
                        if buf.len() >= end + 4 + cl {
                            let path = text.split_whitespace().nth(1).unwrap().to_owned();
                            *h.lock().unwrap().entry(path.clone()).or_default() += 1;
                            if path == "/slow" {
                                tokio::time::sleep(Duration::from_millis(500)).await;
                            }
                            let _ = s.write_all(b"HTTP/1.1 200 OK\r\ncontent-length: 0\r\nconnection: close\r\n\r\n").await;
                            return;
                        }
                    }
                }
            });
        }
    });
    (port, hits)
}

#[tokio::test(flavor = "multi_thread")]
async fn stale_due_list_sends_a_delivery_twice() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::new(dir.path())).unwrap();
    let mut cfg = NotifyConfig::new("local", "http://127.0.0.1:1");
    cfg.concurrency = 1;
    // The receiver listens on loopback, which the default outbound policy refuses.
    cfg.outbound =
        trailwatch_notify::outbound::OutboundPolicy::new(&["127.0.0.0/8".into()], &[]).unwrap();
    let notifier =
        Notifier::new(store.clone(), cfg, Signer::generate("x").unwrap(), [7; 32]).unwrap();
    let (port, hits) = receiver().await;
    let pid = "0123456789abcdef0123456789abcdef".to_owned();
    let slow = format!("http://127.0.0.1:{port}/slow");
    let fast = format!("http://127.0.0.1:{port}/fast");
    {
        let (pid, slow, fast) = (pid.clone(), slow.clone(), fast.clone());
        store
            .write(move |tx| {
                db::create_topic(tx, "tid", &pid, "t", "")?;
                for (id, ep) in [("a".repeat(32), &slow), ("b".repeat(32), &fast)] {
                    db::add_subscription(
                        tx,
                        NewSubscription {
                            subscription_id: &id,
                            topic_id: "tid",
                            project_id: &pid,
                            protocol: "http",
                            endpoint: ep,
                            remark: "",
                            headers: "{}",
                            status: 1,
                            confirm_token: None,
                            confirm_expires: None,
                        },
                    )?;
                }
                Ok(())
            })
            .await
            .unwrap();
    }
    let insert = |mid: &'static str, sub: String, ep: String, created: i64| {
        let (store, pid) = (store.clone(), pid.clone());
        async move {
            store
                .write(move |tx| {
                    let texts = json!({"http": "hello"});
                    db::insert_message(
                        tx,
                        &NewMessage {
                            message_id: mid,
                            project_id: &pid,
                            topic_urn: "urn:smn:local:0123456789abcdef0123456789abcdef:t",
                            subject: None,
                            texts: &texts,
                            created_at: created,
                            expires_at: created + 3_600_000,
                        },
                        &[NewDelivery {
                            subscription_id: &sub,
                            kind: "notification",
                            protocol: "http",
                            endpoint: &ep,
                        }],
                    )
                })
                .await
                .unwrap();
        }
    };
    let now = now_ms();
    insert("m1", "a".repeat(32), slow.clone(), now - 500).await; // X: slow receiver
    assert_eq!(notifier.outbox_step().await.unwrap(), 1); // X in flight, holds the only permit
    insert("m2", "b".repeat(32), fast.clone(), now - 1000).await; // Y: due earlier than X
    let started = notifier.outbox_step().await.unwrap(); // reads [Y, X]; waits for X's permit, then ...
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let h = hits.lock().unwrap().clone();
    let log = store.read(|c| db::attempts(c, 1)).await.unwrap();
    assert_eq!(
        h.get("/slow").copied().unwrap_or(0),
        1,
        "X was sent more than once: {log:?} (second pass started {started})"
    );
    assert_eq!(h.get("/fast").copied().unwrap_or(0), 1, "Y was sent once");
    assert_eq!(log.len(), 1, "one attempt recorded for X: {log:?}");
}

#[tokio::test(flavor = "multi_thread")]
async fn other_project_deletes_subscription_by_crafted_urn() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(StoreOptions::new(dir.path())).unwrap();
    let notifier = Notifier::new(
        store.clone(),
        NotifyConfig::new("local", "http://127.0.0.1:1"),
        Signer::generate("x").unwrap(),
        [7; 32],
    )
    .unwrap();
    let a = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
    let b = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";
    let (topic, _, _) = notifier.create_topic(a, "victim", "").await.unwrap();
    let (sub, _, _) = notifier
        .subscribe(
            a,
            &topic.to_string(),
            "http",
            "http://10.9.9.9:9/x",
            "",
            None,
        )
        .await
        .unwrap();
    let id = sub.to_string().rsplit(':').next().unwrap().to_owned();
    let crafted = format!("urn:smn:local:{b}:whatever:{id}");
    let r = notifier.unsubscribe(b, &crafted).await;
    assert!(
        r.is_err(),
        "the crafted URN must not name a subscription of project B: {r:?}"
    );
    let (left, _) = notifier.list_subscriptions(a, None, 0, 100).await.unwrap();
    assert_eq!(left.len(), 1, "project B deleted project A's subscription");
}
