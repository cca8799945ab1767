//! Helpers for the SMN tests: a topic, a confirmed HTTP subscription, a publish.
#![allow(dead_code, clippy::unwrap_used)]

use std::time::Duration;

use reqwest::Method;
use serde_json::{Value, json};
use trailwatch_client::Client;

use super::receiver::{Receiver, verify_signed};

/// Creates a topic (expects 201) and returns its URN.
pub async fn create_topic(client: &Client, name: &str, display_name: &str) -> String {
    let path = format!("/v2/{}/notifications/topics", client.project_id());
    let r = client
        .send(
            Method::POST,
            &path,
            "",
            Some(json!({"name": name, "display_name": display_name})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["topic_urn"].as_str().unwrap().to_owned()
}

/// Subscribes the receiver and completes the confirmation handshake as a receiver would.
pub async fn subscribe_confirmed(
    client: &Client,
    topic: &str,
    receiver: &Receiver,
    extra: Value,
) -> String {
    let path = format!(
        "/v2/{}/notifications/topics/{topic}/subscriptions",
        client.project_id()
    );
    let mut body = json!({"protocol": "http", "endpoint": receiver.url, "remark": "test"});
    if let Value::Object(m) = extra {
        for (k, v) in m {
            body[k] = v;
        }
    }
    let r = client
        .send(Method::POST, &path, "", Some(body))
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let sub_urn = r.body["subscription_urn"].as_str().unwrap().to_owned();
    let before = receiver.of_type("SubscriptionConfirmation").len();
    let confirmations = receiver
        .wait_for(
            "SubscriptionConfirmation",
            before + 1,
            Duration::from_secs(10),
        )
        .await;
    let confirmation = confirmations.last().unwrap();
    verify_signed(confirmation).await.unwrap();
    let url = confirmation.body["subscribe_url"].as_str().unwrap();
    let resp = reqwest::get(url).await.unwrap();
    assert_eq!(resp.status(), 200);
    let v: Value = resp.json().await.unwrap();
    assert_eq!(v["subscription_urn"], sub_urn.as_str());
    sub_urn
}

/// Publishes (expects 200) and returns the message_id.
pub async fn publish(client: &Client, topic: &str, body: Value) -> String {
    let path = format!(
        "/v2/{}/notifications/topics/{topic}/publish",
        client.project_id()
    );
    let r = client
        .send(Method::POST, &path, "", Some(body))
        .await
        .unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["message_id"].as_str().unwrap().to_owned()
}

/// `GET /v2/{pid}/notifications/messages/{id}/deliveries` → the `deliveries` array.
pub async fn deliveries(client: &Client, message_id: &str) -> Vec<Value> {
    let d = client
        .send(
            Method::GET,
            &format!(
                "/v2/{}/notifications/messages/{message_id}/deliveries",
                client.project_id()
            ),
            "",
            None,
        )
        .await
        .unwrap();
    d.body["deliveries"].as_array().unwrap().clone()
}
