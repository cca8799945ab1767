//! The notification service end to end: the real server, real HTTP receivers, signed messages,
//! confirmation, retries, dead letters, and the tutorial's own publish call.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::sync::atomic::Ordering;
use std::time::Duration;

use common::Server;
use common::receiver::{Receiver, verify_signed};
use common::smn::{create_topic, deliveries, publish, subscribe_confirmed};
use reqwest::Method;
use serde_json::{Value, json};

/// Fast retries so that tests see several attempts in well under a second.
const FAST_RETRIES: &str = "[notify]\nretry_base_ms = 20\nretry_cap_ms = 200\n";

#[tokio::test]
async fn http_subscriber_confirms_and_receives_signed_notifications() {
    let server = Server::start_with_config(FAST_RETRIES);
    let client = server.admin().await;
    let receiver = Receiver::start().await;
    let topic = create_topic(&client, "cts_test", "Audit alarms").await;
    assert_eq!(
        topic,
        format!("urn:smn:local:{}:cts_test", client.project_id())
    );
    // Creating it again is idempotent: 200 and the same URN.
    let again = client
        .send(
            Method::POST,
            &format!("/v2/{}/notifications/topics", client.project_id()),
            "",
            Some(json!({"name": "cts_test"})),
        )
        .await
        .unwrap();
    assert_eq!(again.status, 200);
    assert_eq!(again.body["topic_urn"], topic.as_str());

    // Before confirmation nothing is delivered.
    let path = format!(
        "/v2/{}/notifications/topics/{topic}/subscriptions",
        client.project_id()
    );
    let pending = client
        .send(
            Method::POST,
            &path,
            "",
            Some(json!({"protocol": "http", "endpoint": format!("{}?pending", receiver.url)})),
        )
        .await
        .unwrap();
    assert_eq!(pending.status, 201);
    // Its confirmation must have arrived before the next subscription's is awaited: both go to
    // the same receiver, and only arrival order tells them apart here.
    assert_eq!(
        receiver
            .wait_for("SubscriptionConfirmation", 1, Duration::from_secs(10))
            .await
            .len(),
        1
    );

    let sub = subscribe_confirmed(
        &client,
        &topic,
        &receiver,
        json!({"extension": {"header": {"x-team": "secops"}}}),
    )
    .await;
    let list = client
        .send(
            Method::GET,
            &format!("/v2/{}/notifications/subscriptions", client.project_id()),
            "",
            None,
        )
        .await
        .unwrap();
    let statuses: Vec<(String, i64)> = list.body["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| {
            (
                s["subscription_urn"].as_str().unwrap().to_owned(),
                s["status"].as_i64().unwrap(),
            )
        })
        .collect();
    assert!(statuses.contains(&(sub.clone(), 1)), "{statuses:?}");
    assert_eq!(statuses.iter().filter(|(_, s)| *s == 0).count(), 1);

    let message_id = publish(&client, &topic, json!({"subject": "CTSTrigger", "message": "Illegal operation[  IP:198.51.100.7,  Action:login]"})).await;
    let got = receiver
        .wait_for("Notification", 1, Duration::from_secs(10))
        .await;
    assert_eq!(got.len(), 1);
    let n = &got[0];
    verify_signed(n).await.unwrap();
    assert_eq!(n.body["message_id"], message_id.as_str());
    assert_eq!(n.body["subject"], "CTSTrigger");
    assert_eq!(
        n.body["message"],
        "Illegal operation[  IP:198.51.100.7,  Action:login]"
    );
    assert_eq!(n.body["topic_urn"], topic.as_str());
    assert_eq!(n.body["signature_version"], "v1");
    assert_eq!(n.header("x-smn-message-type"), Some("Notification"));
    assert_eq!(n.header("x-smn-message-id"), Some(message_id.as_str()));
    assert_eq!(n.header("x-smn-topic-urn"), Some(topic.as_str()));
    assert_eq!(n.header("x-team"), Some("secops"));
    // A tampered copy does not verify.
    let mut forged = n.clone();
    forged.body["message"] = json!("Everything is fine");
    assert!(verify_signed(&forged).await.is_err());

    // The delivery record shows one successful attempt.
    let d = deliveries(&client, &message_id).await;
    assert_eq!(
        d.len(),
        1,
        "only the confirmed subscription is delivered to"
    );
    assert_eq!(d[0]["state"], "delivered");
    assert_eq!(d[0]["attempt_log"].as_array().unwrap().len(), 1);

    // The unsubscribe link in the notification cancels the subscription.
    let unsubscribe = n.body["unsubscribe_url"].as_str().unwrap();
    assert_eq!(reqwest::get(unsubscribe).await.unwrap().status(), 200);
    let forged_link = unsubscribe.replace("token=", "token=00");
    assert_eq!(reqwest::get(forged_link).await.unwrap().status(), 404);
    publish(&client, &topic, json!({"message": "after unsubscribe"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.of_type("Notification").len(),
        1,
        "a canceled subscription receives nothing"
    );
}

#[tokio::test]
async fn failing_receiver_is_retried_until_delivered_exactly_once() {
    let server = Server::start_with_config(FAST_RETRIES);
    let client = server.admin().await;
    let receiver = Receiver::start().await;
    let topic = create_topic(&client, "retries", "Audit alarms").await;
    subscribe_confirmed(&client, &topic, &receiver, json!({})).await;
    receiver.behaviour.fail_first.store(4, Ordering::SeqCst);
    let message_id = publish(&client, &topic, json!({"message": "retry me"})).await;
    let got = receiver
        .wait_for("Notification", 1, Duration::from_secs(15))
        .await;
    assert_eq!(got.len(), 1);
    assert_eq!(receiver.behaviour.failed.load(Ordering::SeqCst), 4);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.of_type("Notification").len(),
        1,
        "delivered once, not again"
    );
    let d = deliveries(&client, &message_id).await;
    let log = d[0]["attempt_log"].as_array().unwrap().clone();
    assert_eq!(log.len(), 5, "{log:?}");
    assert!(
        log[..4]
            .iter()
            .all(|a| a["outcome"] == "retry" && a["result"].as_str().unwrap().contains("503"))
    );
    assert_eq!(log[4]["outcome"], "delivered");
}

#[tokio::test]
async fn permanent_failures_become_dead_letters_that_can_be_replayed() {
    let server = Server::start_with_config(FAST_RETRIES);
    let client = server.admin().await;
    let receiver = Receiver::start().await;
    let healthy = Receiver::start().await;
    let topic = create_topic(&client, "dead", "Audit alarms").await;
    subscribe_confirmed(&client, &topic, &receiver, json!({})).await;
    subscribe_confirmed(&client, &topic, &healthy, json!({})).await;
    receiver.behaviour.fail_status.store(410, Ordering::SeqCst);
    receiver.behaviour.fail_first.store(1, Ordering::SeqCst);
    publish(&client, &topic, json!({"message": "goes dead for one"})).await;
    // The healthy subscriber is not held up by the failing one.
    assert_eq!(
        healthy
            .wait_for("Notification", 1, Duration::from_secs(10))
            .await
            .len(),
        1
    );
    let dead_path = format!("/v2/{}/notifications/dead-letters", client.project_id());
    let mut dead = Value::Null;
    for _ in 0..200 {
        dead = client
            .send(Method::GET, &dead_path, "", None)
            .await
            .unwrap()
            .body;
        if dead["dead_letter_count"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(dead["dead_letter_count"], 1, "{dead}");
    assert_eq!(
        dead["dead_letters"][0]["attempts"], 1,
        "a 4xx is not retried"
    );
    assert!(
        dead["dead_letters"][0]["last_error"]
            .as_str()
            .unwrap()
            .contains("410")
    );
    assert_eq!(receiver.of_type("Notification").len(), 0);

    // The receiver is fixed; the user replays the dead letter.
    let r = client
        .send(
            Method::POST,
            &format!("{dead_path}/replay"),
            "",
            Some(json!({})),
        )
        .await
        .unwrap();
    assert_eq!(r.body["replayed"], 1);
    assert_eq!(
        receiver
            .wait_for("Notification", 1, Duration::from_secs(10))
            .await
            .len(),
        1
    );
    assert_eq!(
        healthy.of_type("Notification").len(),
        1,
        "replay does not re-send to others"
    );
}

#[tokio::test]
async fn message_structure_and_templates() {
    let server = Server::start_with_config(FAST_RETRIES);
    let client = server.admin().await;
    let receiver = Receiver::start().await;
    let topic = create_topic(&client, "templated", "Audit alarms").await;
    subscribe_confirmed(&client, &topic, &receiver, json!({})).await;
    let pid = client.project_id().to_owned();

    publish(&client, &topic, json!({"message_structure": "{\"default\":\"d\",\"http\":\"for http\"}", "message": "ignored"})).await;
    let t = client
        .send(
            Method::POST,
            &format!("/v2/{pid}/notifications/message_template"),
            "",
            Some(json!({
            "message_template_name": "login_alarm", "protocol": "default",
            "content": "User {user} logged in from {ip}"})),
        )
        .await
        .unwrap();
    assert_eq!(t.status, 201);
    let id = t.body["message_template_id"].as_str().unwrap().to_owned();
    let got = client
        .send(
            Method::GET,
            &format!("/v2/{pid}/notifications/message_template/{id}"),
            "",
            None,
        )
        .await
        .unwrap();
    assert_eq!(got.body["tag_names"], json!(["user", "ip"]));
    publish(&client, &topic, json!({"message_template_name": "login_alarm", "tags": {"user": "alice", "ip": "203.0.113.9"}})).await;
    let missing = client
        .send(
            Method::POST,
            &format!("/v2/{pid}/notifications/topics/{topic}/publish"),
            "",
            Some(json!({
            "message_template_name": "login_alarm", "tags": {"user": "alice"}})),
        )
        .await
        .unwrap_err();
    assert!(missing.to_string().contains("ip"), "{missing}");
    let messages: Vec<String> = receiver
        .wait_for("Notification", 2, Duration::from_secs(10))
        .await
        .iter()
        .map(|r| r.body["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        messages,
        ["for http", "User alice logged in from 203.0.113.9"]
    );
}

#[tokio::test]
async fn bad_input_gets_smn_errors_and_creates_nothing() {
    let server = Server::start();
    let client = server.admin().await;
    let pid = client.project_id().to_owned();
    let topic = create_topic(&client, "bad", "Audit alarms").await;
    let topics = format!("/v2/{pid}/notifications/topics");
    let subs = format!("{topics}/{topic}/subscriptions");
    let cases: Vec<(String, Value, &str)> = vec![
        (topics.clone(), json!({"name": "bad name!"}), "SMN.0002"),
        (topics.clone(), json!({"name": ""}), "SMN.0002"),
        (
            subs.clone(),
            json!({"protocol": "pigeon", "endpoint": "x"}),
            "SMN.0011",
        ),
        (
            subs.clone(),
            json!({"protocol": "http", "endpoint": "ftp://example.com/x"}),
            "SMN.0012",
        ),
        (
            subs.clone(),
            json!({"protocol": "https", "endpoint": "http://example.com/x"}),
            "SMN.0012",
        ),
        (
            subs.clone(),
            json!({"protocol": "http", "endpoint": "http://example.com/x", "extension": {"header": {"X-Bad Name": "v"}}}),
            "SMN.0043",
        ),
        (
            subs.clone(),
            json!({"protocol": "http", "endpoint": "http://example.com/x", "extension": {"header": {"x-smn-own": "v"}}}),
            "SMN.0043",
        ),
        (
            format!("{topics}/{topic}/publish"),
            json!({"message_structure": "not json"}),
            "SMN.0021",
        ),
        (
            format!("{topics}/{topic}/publish"),
            json!({"message_structure": "{\"sms\":\"x\"}"}),
            "SMN.0021",
        ),
        (format!("{topics}/{topic}/publish"), json!({}), "SMN.0009"),
        (
            format!("{topics}/{topic}/publish"),
            json!({"message": "x".repeat(300 * 1024)}),
            "SMN.0009",
        ),
        (
            format!("{topics}/urn:smn:local:{pid}:nope/publish"),
            json!({"message": "x"}),
            "SMN.0006",
        ),
        (
            format!("{topics}/not-a-urn/publish"),
            json!({"message": "x"}),
            "SMN.0005",
        ),
    ];
    for (path, body, code) in cases {
        let e = client
            .send(Method::POST, &path, "", Some(body.clone()))
            .await
            .unwrap_err();
        let trailwatch_client::ClientError::Api {
            body: b, status, ..
        } = e
        else {
            panic!()
        };
        assert_eq!(b["code"], code, "{path} {body}: {b}");
        assert!(b["request_id"].is_string() && b["message"].is_string());
        assert!(status.is_client_error());
    }
    // A batch with one bad item creates none of its subscriptions.
    let batch = json!({"subscriptions": [
        {"protocol": "http", "endpoint": "http://example.com/a"},
        {"protocol": "sms", "endpoint": "12345"},
    ]});
    let e = client
        .send(Method::POST, &subs, "", Some(batch))
        .await
        .unwrap_err();
    assert!(e.to_string().contains("subscriptions[1]"), "{e}");
    let list = client.send(Method::GET, &subs, "", None).await.unwrap();
    assert_eq!(list.body["subscription_count"], 0);
}

/// The tutorial's own call, replayed with Python `requests`: `data=json.dumps(body)` (no
/// Content-Type), raw `:` in the topic URN path segment, `X-Auth-Token`; it must get exactly 200.
#[tokio::test]
async fn the_tutorials_exact_publish_call_works() {
    let server = Server::start_with_config(FAST_RETRIES);
    let client = server.admin_password().await;
    let receiver = Receiver::start().await;
    let topic = create_topic(&client, "cts_test", "Audit alarms").await;
    subscribe_confirmed(&client, &topic, &receiver, json!({})).await;
    let (token, _) = client.password_token(Some("default")).await.unwrap();
    let script = r#"
import json, os, sys, requests
url = os.environ["SMN_ENDPOINT"] + "/v2/" + os.environ["PROJECT"] + "/notifications/topics/urn:smn:" + "local" + ":" + os.environ["PROJECT"] + ":" + "cts_test" + "/publish"
logInfo = "  IP:" + "198.51.100.7" + ",  Action:" + "login"
body = {"message": "Illegal operation[" + logInfo + "]", "subject": "CTSTrigger"}
headers = {'X-Auth-Token': os.environ["TOKEN"], "accept": "application/json"}
response = requests.post(url, headers=headers, data=json.dumps(body))
print(response.status_code)
print(response.text)
"#;
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("SMN_ENDPOINT", &server.url)
        .env("PROJECT", client.project_id())
        .env("TOKEN", &token)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "python failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let mut lines = stdout.lines();
    assert_eq!(lines.next(), Some("200"), "{stdout}");
    let answer: Value = serde_json::from_str(lines.next().unwrap()).unwrap();
    let got = receiver
        .wait_for("Notification", 1, Duration::from_secs(10))
        .await;
    assert_eq!(got[0].body["message_id"], answer["message_id"]);
    assert_eq!(
        got[0].body["message"],
        "Illegal operation[  IP:198.51.100.7,  Action:login]"
    );
    assert_eq!(got[0].body["subject"], "CTSTrigger");
}

/// `kill -9` during a publish burst: every acknowledged message still reaches the subscriber,
/// and the receiver can deduplicate on `message_id`.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn kill9_during_publish_burst_loses_no_acknowledged_message() {
    let server = Server::start_with_config(FAST_RETRIES);
    let client = server.admin().await;
    let receiver = Receiver::start().await;
    let topic = create_topic(&client, "burst", "Audit alarms").await;
    subscribe_confirmed(&client, &topic, &receiver, json!({})).await;
    let acked = std::sync::Arc::new(std::sync::Mutex::new(Vec::<String>::new()));
    let mut tasks = Vec::new();
    for w in 0..4 {
        let c = server.admin().await;
        let topic = topic.clone();
        let acked = acked.clone();
        tasks.push(tokio::spawn(async move {
            let path = format!(
                "/v2/{}/notifications/topics/{topic}/publish",
                c.project_id()
            );
            for i in 0..100_000 {
                match c
                    .send(
                        Method::POST,
                        &path,
                        "",
                        Some(json!({"message": format!("w{w}-{i}")})),
                    )
                    .await
                {
                    Ok(r) => acked
                        .lock()
                        .unwrap()
                        .push(r.body["message_id"].as_str().unwrap().to_owned()),
                    Err(_) => return,
                }
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(800)).await;
    let server = tokio::task::spawn_blocking(move || server.restart_after_kill9())
        .await
        .unwrap();
    for t in tasks {
        t.await.unwrap();
    }
    let acked: HashSet<String> = acked.lock().unwrap().iter().cloned().collect();
    assert!(acked.len() >= 20, "the burst ran: {}", acked.len());
    // The restarted server resumes the outbox and delivers what was acknowledged.
    let deadline = std::time::Instant::now() + Duration::from_secs(60);
    loop {
        let got: HashSet<String> = receiver
            .of_type("Notification")
            .iter()
            .map(|r| r.body["message_id"].as_str().unwrap().to_owned())
            .collect();
        let missing = acked.difference(&got).count();
        if missing == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{missing} of {} acknowledged messages never arrived",
            acked.len()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let all = receiver.of_type("Notification");
    let unique: HashSet<&str> = all
        .iter()
        .map(|r| r.body["message_id"].as_str().unwrap())
        .collect();
    eprintln!(
        "publish burst: {} acknowledged, {} notifications received, {} duplicates (sent again after the crash)",
        acked.len(),
        all.len(),
        all.len() - unique.len()
    );
    drop(server);
}
