//! CTS key-event notifications (§2.3) through the real server: selected traces are published
//! straight to an SMN topic, once each; bad bodies get CTS errors.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::Duration;

use common::receiver::Receiver;
use common::smn::{create_topic, subscribe_confirmed};
use common::{Server, login_trace};
use reqwest::Method;
use serde_json::{Value, json};
use trailwatch_client::{Client, RawResponse};

async fn call(
    c: &Client,
    method: Method,
    path: &str,
    query: &str,
    body: Option<Value>,
) -> RawResponse {
    c.raw(
        method,
        path,
        query,
        body.map(|b| b.to_string().into_bytes()),
        true,
    )
    .await
    .unwrap()
}

#[tokio::test]
async fn selected_traces_are_published_once_and_bad_bodies_are_refused() {
    let server = Server::start();
    let c = server.admin().await;
    let pid = c.project_id().to_owned();
    let receiver = Receiver::start().await;
    let topic = create_topic(&c, "key_events", "").await;
    subscribe_confirmed(&c, &topic, &receiver, json!({})).await;
    let path = format!("/v3/{pid}/notifications");

    let body = json!({
        "notification_name": "logins",
        "operation_type": "customized",
        "operations": [{"service_type": "IAM", "resource_type": "user", "trace_names": ["login"]}],
        "topic_id": topic,
        "filter": {"condition": "AND", "is_support_filter": true, "rule": ["code != 200"]},
    });
    let r = call(&c, Method::POST, &path, "", Some(body.clone())).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["notification_type"], "smn");
    assert_eq!(r.body["status"], "enabled");
    let id = r.body["notification_id"].as_str().unwrap().to_owned();

    // Duplicate name, bad operation type, unknown topic, bad rule.
    let dup = call(&c, Method::POST, &path, "", Some(body.clone())).await;
    assert_eq!(dup.status, 409, "{}", dup.body);
    for (k, v, needle) in [
        ("operation_type", json!("some"), "operation_type"),
        (
            "topic_id",
            json!(format!("urn:smn:local:{pid}:nope")),
            "topic_id",
        ),
        ("filter", json!({"rule": ["code ~ 200"]}), "code ~ 200"),
        ("notification_name", json!("bad name"), "notification_name"),
    ] {
        let mut b = body.clone();
        b[k] = v;
        b["notification_name"] = if k == "notification_name" {
            b[k].clone()
        } else {
            json!("other")
        };
        let r = call(&c, Method::POST, &path, "", Some(b)).await;
        assert_eq!(r.status, 400, "{k}: {}", r.body);
        assert_eq!(r.body["error_code"], "CTS.0003");
        assert!(
            r.body["error_msg"].as_str().unwrap().contains(needle),
            "{needle}: {}",
            r.body
        );
    }

    let mut ok302 = login_trace("alice", "203.0.113.5", 1_764_000_000_000);
    ok302["trace_id"] = json!("t-302");
    let mut ok200 = login_trace("bob", "203.0.113.6", 1_764_000_000_001);
    ok200["code"] = json!(200);
    let mut logout = login_trace("carol", "203.0.113.7", 1_764_000_000_002);
    logout["trace_name"] = json!("logout");
    let r = c.put_traces(&[ok302, ok200, logout]).await.unwrap();
    assert_eq!(r.body["accepted"], 3);

    let got = receiver
        .wait_for("Notification", 1, Duration::from_secs(15))
        .await;
    assert_eq!(got[0].body["subject"], "CTS key event: IAM user login");
    let trace: Value = serde_json::from_str(got[0].body["message"].as_str().unwrap()).unwrap();
    assert_eq!(trace["trace_id"], "t-302");
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.of_type("Notification").len(), 1);

    // Listed, disabled (no more alarms), deleted.
    let list = call(
        &c,
        Method::GET,
        &format!("{path}/smn"),
        "notification_name=logins",
        None,
    )
    .await;
    assert_eq!(list.body["notifications"].as_array().unwrap().len(), 1);
    let mut upd = body.clone();
    upd["notification_id"] = json!(id);
    upd["status"] = json!("disabled");
    let r = call(&c, Method::PUT, &path, "", Some(upd)).await;
    assert_eq!(r.status, 200, "{}", r.body);
    let mut again = login_trace("dave", "203.0.113.8", 1_764_000_000_003);
    again["trace_id"] = json!("t-later");
    c.put_traces(&[again]).await.unwrap();
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.of_type("Notification").len(), 1);
    let r = call(
        &c,
        Method::DELETE,
        &path,
        &format!("notification_id={id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    let r = call(
        &c,
        Method::DELETE,
        &path,
        &format!("notification_id={id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 404);
}
