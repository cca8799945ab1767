//! A subscriber that is down for a long time (2 minutes by default) then comes back receives
//! every message published meanwhile, none twice.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashMap;
use std::time::{Duration, Instant};

use common::Server;
use common::receiver::Receiver;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn receiver_down_for_two_minutes_then_back_gets_everything_once() {
    let outage = Duration::from_secs(
        std::env::var("TW_OUTAGE_SECONDS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(120),
    );
    let server = Server::start_with_config("[notify]\nretry_base_ms = 200\nretry_cap_ms = 5000\n");
    let client = server.admin().await;
    let pid = client.project_id().to_owned();
    let topic = client
        .send(
            Method::POST,
            &format!("/v2/{pid}/notifications/topics"),
            "",
            Some(json!({"name": "outage"})),
        )
        .await
        .unwrap()
        .body["topic_urn"]
        .as_str()
        .unwrap()
        .to_owned();
    // Subscribe and confirm while the receiver is up.
    let receiver = Receiver::start().await;
    let port: u16 = receiver
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .split('/')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    client
        .send(
            Method::POST,
            &format!("/v2/{pid}/notifications/topics/{topic}/subscriptions"),
            "",
            Some(json!({"protocol": "http", "endpoint": receiver.url})),
        )
        .await
        .unwrap();
    let confirmation = receiver
        .wait_for("SubscriptionConfirmation", 1, Duration::from_secs(10))
        .await;
    reqwest::get(confirmation[0].body["subscribe_url"].as_str().unwrap())
        .await
        .unwrap();

    // The receiver goes down: its port refuses connections.
    drop(receiver);
    tokio::time::sleep(Duration::from_millis(100)).await;
    let started = Instant::now();
    let mut published = Vec::new();
    let path = format!("/v2/{pid}/notifications/topics/{topic}/publish");
    // Publish throughout the outage (24 messages, spread over it).
    for i in 0..24 {
        let r = client
            .send(
                Method::POST,
                &path,
                "",
                Some(json!({"message": format!("during outage #{i}")})),
            )
            .await
            .unwrap();
        published.push(r.body["message_id"].as_str().unwrap().to_owned());
        tokio::time::sleep(outage / 25).await;
    }
    let remaining = outage.saturating_sub(started.elapsed());
    tokio::time::sleep(remaining).await;
    // Attempts were made and failed while it was down; nothing was given up.
    let dead = client
        .send(
            Method::GET,
            &format!("/v2/{pid}/notifications/dead-letters"),
            "",
            None,
        )
        .await
        .unwrap();
    assert_eq!(dead.body["dead_letter_count"], 0, "{}", dead.body);
    let d = client
        .send(
            Method::GET,
            &format!(
                "/v2/{pid}/notifications/messages/{}/deliveries",
                published[0]
            ),
            "",
            None,
        )
        .await
        .unwrap();
    assert!(
        d.body["deliveries"][0]["attempts"].as_i64().unwrap() >= 2,
        "{}",
        d.body
    );

    // Back on the same port.
    let receiver = Receiver::start_on(port).await;
    let got = receiver
        .wait_for("Notification", published.len(), Duration::from_secs(90))
        .await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for r in receiver.of_type("Notification") {
        *counts
            .entry(r.body["message_id"].as_str().unwrap().to_owned())
            .or_default() += 1;
    }
    for id in &published {
        assert_eq!(
            counts.get(id),
            Some(&1),
            "message {id} received {:?} times",
            counts.get(id)
        );
    }
    assert_eq!(counts.len(), published.len());
    assert!(got.iter().all(|r| {
        r.body["message"]
            .as_str()
            .is_some_and(|m| m.starts_with("during outage"))
    }));
    eprintln!(
        "outage of {outage:?}: {} messages delivered once each after the receiver came back",
        published.len()
    );
}
