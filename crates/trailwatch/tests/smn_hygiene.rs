//! Alarm hygiene end to end: the dedup window (one delivery, then one summary with the count),
//! silences (recorded, not delivered, visible on the message), their bad inputs, and the CLI.
#![allow(clippy::unwrap_used)]

mod common;

use common::smn::{create_topic, publish, subscribe_confirmed};

use std::process::Command;
use std::time::{Duration, Instant};

use common::receiver::{Receiver, verify_signed};
use common::{ADMIN_AK, ADMIN_SK, Server};
use reqwest::Method;
use serde_json::{Value, json};
use trailwatch_client::Client;

/// Fast retries so that a delivery that fails once is retried at once.
const FAST_RETRIES: &str = "[notify]\nretry_base_ms = 20\nretry_cap_ms = 200\n";

fn now_ms() -> i64 {
    trailwatch_store::now_ms()
}

fn path(client: &Client, rest: &str) -> String {
    format!("/v2/{}/notifications{rest}", client.project_id())
}

async fn message_record(client: &Client, message_id: &str) -> Value {
    client
        .send(
            Method::GET,
            &path(client, &format!("/messages/{message_id}/deliveries")),
            "",
            None,
        )
        .await
        .unwrap()
        .body
}

/// Any request, answered as is (error statuses included).
async fn raw(client: &Client, method: Method, p: &str, body: Option<Value>) -> (u16, Value) {
    let r = client
        .raw(
            method,
            p,
            "",
            body.map(|b| b.to_string().into_bytes()),
            true,
        )
        .await
        .unwrap();
    (r.status.as_u16(), r.body)
}

/// The SMN error shape, with its code and a message containing `text`.
fn assert_smn_error(got: &(u16, Value), status: u16, code: &str, text: &str) {
    let (s, body) = got;
    assert_eq!(*s, status, "{body}");
    assert_eq!(body["code"], code, "{body}");
    assert!(body["request_id"].is_string(), "{body}");
    let message = body["message"].as_str().unwrap_or_default();
    assert!(message.contains(text), "`{message}` lacks `{text}`");
}

fn messages(receiver: &Receiver) -> Vec<Value> {
    receiver
        .of_type("Notification")
        .into_iter()
        .map(|r| r.body)
        .collect()
}

#[tokio::test]
async fn dedup_window_delivers_once_then_one_summary_with_the_count() {
    let server = Server::start_with_config(FAST_RETRIES);
    let client = server.admin().await;
    let receiver = Receiver::start().await;
    let topic = create_topic(&client, "dedup", "").await;
    subscribe_confirmed(&client, &topic, &receiver, json!({})).await;
    let hygiene = path(&client, &format!("/topics/{topic}/hygiene"));
    let (status, body) = raw(&client, Method::GET, &hygiene, None).await;
    assert_eq!((status, &body["dedup_window_seconds"]), (200, &json!(0)));
    let (status, body) = raw(
        &client,
        Method::PUT,
        &hygiene,
        Some(json!({"dedup_window_seconds": 2})),
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["dedup_window_seconds"], 2);
    assert_eq!(body["topic_urn"], topic.as_str());

    let alarm = json!({"subject": "CTSTrigger", "message": "Illegal operation[  IP:198.51.100.7,  Action:login]"});
    let started = Instant::now();
    let first = publish(&client, &topic, alarm.clone()).await;
    let mut repeats = Vec::new();
    for _ in 0..4 {
        repeats.push(publish(&client, &topic, alarm.clone()).await);
    }
    // The same text with another subject is another message.
    let other = publish(
        &client,
        &topic,
        json!({"subject": "Other", "message": alarm["message"]}),
    )
    .await;
    let got = receiver
        .wait_for("Notification", 2, Duration::from_secs(5))
        .await;
    assert!(
        started.elapsed() < Duration::from_millis(1500),
        "the first message is not held back: {:?}",
        started.elapsed()
    );
    tokio::time::sleep(Duration::from_millis(300)).await;
    let mut got_ids: Vec<String> = messages(&receiver)
        .iter()
        .map(|m| m["message_id"].as_str().unwrap().to_owned())
        .collect();
    got_ids.sort();
    let mut expected = vec![first.clone(), other.clone()];
    expected.sort();
    assert_eq!(got.len(), 2);
    assert_eq!(
        got_ids, expected,
        "the first alarm and the other message, once each"
    );

    // Every repeat is durable and says where it went.
    let record = message_record(&client, &repeats[3]).await;
    assert_eq!(record["deduplicated_into"], first.as_str(), "{record}");
    assert_eq!(record["silenced_by"], Value::Null);
    assert_eq!(record["deliveries"], json!([]));
    let summary_id = record["summary_message_id"].as_str().unwrap().to_owned();
    let first_record = message_record(&client, &first).await;
    assert_eq!(first_record["deduplicated_into"], Value::Null);
    assert_eq!(first_record["deliveries"][0]["state"], "delivered");
    let pending = message_record(&client, &summary_id).await;
    assert_eq!(pending["summary_of"], first.as_str(), "{pending}");
    assert_eq!(pending["deliveries"][0]["state"], "pending");

    // One summary once the window has closed, stating the count.
    let got = receiver
        .wait_for("Notification", 3, Duration::from_secs(6))
        .await;
    assert_eq!(got.len(), 3);
    assert!(
        started.elapsed() >= Duration::from_secs(2),
        "the summary waits for the window: {:?}",
        started.elapsed()
    );
    let summary = &got[2];
    verify_signed(summary).await.unwrap();
    assert_eq!(summary.body["message_id"], summary_id.as_str());
    assert_eq!(summary.body["subject"], "CTSTrigger");
    let text = summary.body["message"].as_str().unwrap();
    assert!(
        text.starts_with(alarm["message"].as_str().unwrap()),
        "{text}"
    );
    assert!(
        text.contains("[trailwatch] this message was repeated 4 more times between "),
        "{text}"
    );
    assert!(text.ends_with("(dedup window 2 s)"), "{text}");

    // After the window the same alarm is delivered at once again, and starts a new window.
    let again = publish(&client, &topic, alarm.clone()).await;
    let got = receiver
        .wait_for("Notification", 4, Duration::from_secs(5))
        .await;
    assert_eq!(got.len(), 4);
    assert_eq!(got[3].body["message_id"], again.as_str());
    assert_eq!(got[3].body["message"], alarm["message"]);

    // Turned off, repeats are delivered as they come.
    let (status, _) = raw(
        &client,
        Method::PUT,
        &hygiene,
        Some(json!({"dedup_window_seconds": 0})),
    )
    .await;
    assert_eq!(status, 200);
    publish(&client, &topic, alarm.clone()).await;
    let got = receiver
        .wait_for("Notification", 5, Duration::from_secs(5))
        .await;
    assert_eq!(got.len(), 5);
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(messages(&receiver).len(), 5, "no second summary");
}

#[tokio::test]
async fn silenced_messages_are_recorded_not_delivered() {
    let server = Server::start_with_config(FAST_RETRIES);
    let client = server.admin().await;
    let receiver = Receiver::start().await;
    let topic = create_topic(&client, "silenced", "").await;
    subscribe_confirmed(&client, &topic, &receiver, json!({})).await;
    let silences = path(&client, "/silences");
    let (status, created) = raw(
        &client,
        Method::POST,
        &silences,
        Some(json!({
            "topic_urn": topic, "subject_contains": "CTSTrigger",
            "ends_at": now_ms() + 3_600_000, "comment": "maintenance window",
        })),
    )
    .await;
    assert_eq!(status, 201, "{created}");
    assert!(created["request_id"].is_string());
    let silence_id = created["silence_id"].as_str().unwrap().to_owned();
    assert_eq!(created["active"], true);

    let muted = publish(
        &client,
        &topic,
        json!({"subject": "CTSTrigger", "message": "Illegal operation"}),
    )
    .await;
    // Case-sensitive: another subject, and a lower-case one, are delivered.
    let loud = publish(
        &client,
        &topic,
        json!({"subject": "ctstrigger", "message": "Illegal operation"}),
    )
    .await;
    let got = receiver
        .wait_for("Notification", 1, Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(got.len(), 1);
    assert_eq!(messages(&receiver).len(), 1);
    assert_eq!(got[0].body["message_id"], loud.as_str());

    let record = message_record(&client, &muted).await;
    assert_eq!(record["silenced_by"], silence_id.as_str(), "{record}");
    assert_eq!(record["deduplicated_into"], Value::Null);
    assert_eq!(record["deliveries"], json!([]));
    let record = message_record(&client, &loud).await;
    assert_eq!(record["silenced_by"], Value::Null);

    let (status, list) = raw(&client, Method::GET, &silences, None).await;
    assert_eq!(status, 200);
    assert_eq!(list["silence_count"], 1);
    let s = &list["silences"][0];
    assert_eq!(s["silence_id"], silence_id.as_str());
    assert_eq!(
        (
            &s["active"],
            &s["silenced_messages"],
            &s["comment"],
            &s["topic_urn"]
        ),
        (
            &json!(true),
            &json!(1),
            &json!("maintenance window"),
            &json!(topic)
        )
    );

    // Expired, the silence mutes nothing any more; it stays listed, inactive.
    let (status, body) = raw(
        &client,
        Method::DELETE,
        &format!("{silences}/{silence_id}"),
        None,
    )
    .await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["already_ended"], false);
    let (_, list) = raw(&client, Method::GET, &silences, None).await;
    assert_eq!(list["silences"][0]["active"], false);
    let after = publish(
        &client,
        &topic,
        json!({"subject": "CTSTrigger", "message": "Illegal operation"}),
    )
    .await;
    let got = receiver
        .wait_for("Notification", 2, Duration::from_secs(5))
        .await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].body["message_id"], after.as_str());

    // A message matcher: both matchers must match when both are given.
    let (status, _) = raw(
        &client,
        Method::POST,
        &silences,
        Some(json!({
            "topic_urn": topic, "subject_contains": "CTS", "message_contains": "login",
            "ends_at": now_ms() + 60_000,
        })),
    )
    .await;
    assert_eq!(status, 201);
    let muted = publish(
        &client,
        &topic,
        json!({"subject": "CTSTrigger", "message": "Action:login"}),
    )
    .await;
    let loud = publish(
        &client,
        &topic,
        json!({"subject": "CTSTrigger", "message": "Action:logout"}),
    )
    .await;
    let got = receiver
        .wait_for("Notification", 3, Duration::from_secs(5))
        .await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(messages(&receiver).len(), 3);
    assert_eq!(got[2].body["message_id"], loud.as_str());
    assert!(message_record(&client, &muted).await["silenced_by"].is_string());
}

#[tokio::test]
async fn bad_hygiene_and_silence_requests_are_answered_precisely() {
    let server = Server::start_with_config(FAST_RETRIES);
    let client = server.admin().await;
    let topic = create_topic(&client, "strict", "").await;
    let silences = path(&client, "/silences");
    let now = now_ms();
    let silence = |extra: Value| {
        let mut body =
            json!({"topic_urn": topic, "subject_contains": "CTS", "ends_at": now + 60_000});
        for (k, v) in extra.as_object().unwrap() {
            if v.is_null() {
                body.as_object_mut().unwrap().remove(k);
            } else {
                body[k] = v.clone();
            }
        }
        body
    };
    let post = |body: Value| {
        let (client, silences) = (&client, &silences);
        async move { raw(client, Method::POST, silences, Some(body)).await }
    };
    assert_smn_error(
        &post(silence(json!({"ends_at": now - 60_000}))).await,
        400,
        "SMN.0010",
        "is in the past; a silence must end in the future",
    );
    assert_smn_error(
        &post(silence(json!({"subject_contains": null}))).await,
        400,
        "SMN.0010",
        "a silence needs at least one matcher: `subject_contains` or `message_contains`",
    );
    assert_smn_error(
        &post(silence(json!({"message_contains": ""}))).await,
        400,
        "SMN.0010",
        "`message_contains` is empty",
    );
    assert_smn_error(
        &post(silence(json!({"ends_at": null}))).await,
        400,
        "SMN.0010",
        "`ends_at` is required",
    );
    assert_smn_error(
        &post(silence(json!({"ends_at": "tomorrow"}))).await,
        400,
        "SMN.0010",
        "`ends_at` must be a time in milliseconds",
    );
    assert_smn_error(
        &post(silence(json!({"ends_at": now + 31 * 86_400_000_i64}))).await,
        400,
        "SMN.0010",
        "is more than 30 days ahead",
    );
    assert_smn_error(
        &post(silence(
            json!({"starts_at": now + 120_000, "ends_at": now + 60_000}),
        ))
        .await,
        400,
        "SMN.0010",
        "must be after `starts_at`",
    );
    let missing_topic = topic.replace(":strict", ":nosuchtopic");
    assert_smn_error(
        &post(silence(json!({"topic_urn": missing_topic}))).await,
        404,
        "SMN.0006",
        &format!("Topic not found: {missing_topic}"),
    );
    assert_smn_error(
        &post(silence(json!({"topic_urn": null}))).await,
        400,
        "SMN.0005",
        "`topic_urn` is required",
    );
    assert_smn_error(
        &raw(
            &client,
            Method::DELETE,
            &format!("{silences}/0123456789abcdef0123456789abcdef"),
            None,
        )
        .await,
        404,
        "SMN.0910",
        "Silence not found: 0123456789abcdef0123456789abcdef",
    );

    let hygiene = |urn: &str| path(&client, &format!("/topics/{urn}/hygiene"));
    assert_smn_error(
        &raw(
            &client,
            Method::PUT,
            &hygiene(&topic),
            Some(json!({"dedup_window_seconds": 86_401})),
        )
        .await,
        400,
        "SMN.0010",
        "`dedup_window_seconds` is 86401; it must be from 0 (off) to 86400 (one day)",
    );
    assert_smn_error(
        &raw(
            &client,
            Method::PUT,
            &hygiene(&topic),
            Some(json!({"dedup_window_seconds": -1})),
        )
        .await,
        400,
        "SMN.0010",
        "from 0 (off) to 86400",
    );
    assert_smn_error(
        &raw(
            &client,
            Method::PUT,
            &hygiene(&topic),
            Some(json!({"dedup_window_seconds": "60"})),
        )
        .await,
        400,
        "SMN.0010",
        "must be a whole number of seconds",
    );
    assert_smn_error(
        &raw(&client, Method::PUT, &hygiene(&topic), Some(json!({}))).await,
        400,
        "SMN.0010",
        "`dedup_window_seconds` is required",
    );
    assert_smn_error(
        &raw(
            &client,
            Method::PUT,
            &hygiene(&missing_topic),
            Some(json!({"dedup_window_seconds": 60})),
        )
        .await,
        404,
        "SMN.0006",
        "Topic not found",
    );
    assert_smn_error(
        &raw(&client, Method::GET, &hygiene(&missing_topic), None).await,
        404,
        "SMN.0006",
        "Topic not found",
    );
    // Nothing was created by the bad requests.
    let (_, list) = raw(&client, Method::GET, &silences, None).await;
    assert_eq!(list["silence_count"], 0, "{list}");
    let (_, h) = raw(&client, Method::GET, &hygiene(&topic), None).await;
    assert_eq!(h["dedup_window_seconds"], 0);
}

/// Runs the CLI against the server; returns stdout, asserting success (or failure).
fn cli(server: &Server, args: &[&str], succeed: bool) -> (String, String) {
    let out = Command::new(common::bin())
        .args(args)
        .env("TRAILWATCH_ENDPOINT", &server.url)
        .env("TRAILWATCH_AK", ADMIN_AK)
        .env("TRAILWATCH_SK", ADMIN_SK)
        .env("HOME", "/nonexistent-home")
        .env_remove("TRAILWATCH_PROFILE")
        .output()
        .unwrap();
    let (stdout, stderr) = (
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    );
    assert_eq!(
        out.status.success(),
        succeed,
        "{args:?}: {stdout}\n{stderr}"
    );
    (stdout, stderr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn hygiene_and_silence_commands() {
    let server = Server::start_with_config(FAST_RETRIES);
    let client = server.admin().await;
    let receiver = Receiver::start().await;
    let topic = create_topic(&client, "alarms", "").await;
    subscribe_confirmed(&client, &topic, &receiver, json!({})).await;
    let run = |args: &[&str], succeed: bool| {
        let args: Vec<String> = args.iter().map(|a| a.to_string()).collect();
        let server = &server;
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        cli(server, &refs, succeed)
    };

    let (out, _) = run(&["topics", "hygiene", "alarms"], true);
    assert_eq!(out.trim(), format!("{topic}: dedup window off"));
    let (out, _) = run(
        &["topics", "hygiene", "alarms", "--dedup-window", "600"],
        true,
    );
    assert_eq!(out.trim(), format!("{topic}: dedup window 600 s"));
    let (out, _) = run(&["topics", "hygiene", &topic], true);
    assert_eq!(out.trim(), format!("{topic}: dedup window 600 s"));
    let (_, err) = run(
        &["topics", "hygiene", "alarms", "--dedup-window", "90000"],
        false,
    );
    assert!(err.contains("it must be from 0 (off) to 86400"), "{err}");
    run(
        &["topics", "hygiene", "alarms", "--dedup-window", "0"],
        true,
    );

    let (id, _) = run(
        &[
            "silences",
            "create",
            "alarms",
            "--ends-in",
            "2h",
            "--subject-contains",
            "CTSTrigger",
            "--comment",
            "planned maintenance",
        ],
        true,
    );
    let id = id.trim().to_owned();
    assert_eq!(id.len(), 32, "{id}");
    let (_, err) = run(&["silences", "create", "alarms", "--ends-at", "2h"], false);
    assert!(err.contains("at least one matcher"), "{err}");
    let (_, err) = run(
        &[
            "silences",
            "create",
            "alarms",
            "--ends-in",
            "soon",
            "--subject-contains",
            "x",
        ],
        false,
    );
    assert!(err.contains("`soon` is not a duration"), "{err}");

    let (muted, _) = run(
        &[
            "publish",
            "alarms",
            "Illegal operation",
            "--subject",
            "CTSTrigger",
        ],
        true,
    );
    let (record, _) = run(&["deliveries", "list", "--message-id", muted.trim()], true);
    assert!(
        record.contains(&format!("silenced by {id}: recorded, not delivered")),
        "{record}"
    );

    let (table, _) = run(&["silences", "list"], true);
    let lines: Vec<&str> = table.lines().collect();
    assert!(lines[0].starts_with("SILENCE_ID"), "{table}");
    assert!(lines[1].starts_with(&id), "{table}");
    assert!(lines[1].contains("subject~\"CTSTrigger\""), "{table}");
    assert!(lines[1].contains("true"), "{table}");
    assert!(lines[1].contains("planned maintenance"), "{table}");
    let (json_list, _) = run(
        &["silences", "list", "--topic", "alarms", "--output", "json"],
        true,
    );
    let list: Vec<Value> = serde_json::from_str(&json_list).unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["silenced_messages"], 1);
    let ends_at = list[0]["ends_at"].as_i64().unwrap();
    let expected = now_ms() + 7_200_000;
    assert!(
        (ends_at - expected).abs() < 60_000,
        "{ends_at} vs {expected}"
    );

    let (out, _) = run(&["silences", "expire", &id], true);
    assert_eq!(out.trim(), format!("expired {id}"));
    let (out, _) = run(&["silences", "expire", &id], true);
    assert_eq!(out.trim(), format!("{id} had already ended"));
    let (_, err) = run(&["silences", "expire", "nosuchsilence"], false);
    assert!(err.contains("Silence not found: nosuchsilence"), "{err}");
    let (json_list, _) = run(&["silences", "list", "--output", "json"], true);
    let list: Vec<Value> = serde_json::from_str(&json_list).unwrap();
    assert_eq!(list[0]["active"], false);

    let (loud, _) = run(
        &[
            "publish",
            "alarms",
            "Illegal operation",
            "--subject",
            "CTSTrigger",
        ],
        true,
    );
    let got = receiver
        .wait_for("Notification", 1, Duration::from_secs(10))
        .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["message_id"], loud.trim());
}
