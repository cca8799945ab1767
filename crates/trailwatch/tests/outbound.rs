//! The outbound policy through the real server: with the default policy an HTTP subscription to
//! a loopback, link-local or metadata address is refused with `SMN.0069`, a name that resolves
//! to loopback is accepted but refused when the notification is sent (DNS is checked at connect
//! time) and lands in the dead letters without reaching the receiver; `[outbound] allow` and
//! `TRAILWATCH_OUTBOUND_ALLOW` open it again.
#![allow(clippy::unwrap_used)]

mod common;

use std::time::{Duration, Instant};

use common::Server;
use common::receiver::Receiver;
use common::smn::create_topic;
use reqwest::Method;
use serde_json::{Value, json};
use trailwatch_client::Client;

async fn subscribe(client: &Client, topic: &str, endpoint: &str) -> (u16, Value) {
    let path = format!(
        "/v2/{}/notifications/topics/{topic}/subscriptions",
        client.project_id()
    );
    let body = json!({"protocol": "http", "endpoint": endpoint, "remark": ""});
    let r = client
        .raw(
            Method::POST,
            &path,
            "",
            Some(body.to_string().into_bytes()),
            true,
        )
        .await
        .unwrap();
    (r.status.as_u16(), r.body)
}

async fn dead_letters(client: &Client) -> Value {
    client
        .send(
            Method::GET,
            &format!("/v2/{}/notifications/dead-letters", client.project_id()),
            "",
            None,
        )
        .await
        .unwrap()
        .body
}

#[tokio::test]
async fn internal_addresses_are_refused_by_default_and_names_are_checked_at_connect_time() {
    let server = Server::start_with_default_outbound(None);
    let client = server.admin().await;
    let topic = create_topic(&client, "ssrf", "SSRF").await;
    let receiver = Receiver::start().await;
    // http://127.0.0.1:PORT/hook
    let port = receiver
        .url
        .split(':')
        .nth(2)
        .unwrap()
        .trim_end_matches("/hook");

    for endpoint in [
        receiver.url.clone(),
        format!("http://[::1]:{port}/hook"),
        format!("http://[::ffff:127.0.0.1]:{port}/hook"),
        "http://169.254.169.254/latest/meta-data/".to_owned(),
        "http://0.0.0.0/".to_owned(),
    ] {
        let (status, body) = subscribe(&client, &topic, &endpoint).await;
        assert_eq!(status, 403, "{endpoint}: {body}");
        // SMN's error shape: request_id, code, message.
        assert_eq!(body["code"], "SMN.0069", "{endpoint}: {body}");
        let msg = body["message"].as_str().unwrap();
        assert!(msg.contains("refused by the outbound policy"), "{msg}");
    }

    // A name is judged by what it resolves to when the request is made.
    let by_name = format!("http://localhost:{port}/hook");
    let (status, body) = subscribe(&client, &topic, &by_name).await;
    assert_eq!(status, 201, "{body}");
    let deadline = Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let dead = dead_letters(&client).await;
        if dead["dead_letter_count"].as_u64().unwrap_or(0) >= 1 {
            break dead;
        }
        assert!(
            Instant::now() < deadline,
            "the refused confirmation never reached the dead letters: {dead}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert_eq!(dead["dead_letter_count"], 1, "{dead}");
    assert!(
        dead.to_string().contains("refused by the outbound policy"),
        "{dead}"
    );
    assert!(
        receiver.all().is_empty(),
        "a refused request reached the receiver"
    );
}

#[tokio::test]
async fn the_allow_list_opens_loopback_again() {
    // The harness's usual servers allow loopback through TRAILWATCH_OUTBOUND_ALLOW; here the
    // config file does it.
    let server =
        Server::start_with_default_outbound(Some("[outbound]\nallow = [\"127.0.0.0/8\"]\n"));
    let client = server.admin().await;
    let topic = create_topic(&client, "allowed", "Allowed").await;
    let receiver = Receiver::start().await;
    let (status, body) = subscribe(&client, &topic, &receiver.url).await;
    assert_eq!(status, 201, "{body}");
    let got = receiver
        .wait_for("SubscriptionConfirmation", 1, Duration::from_secs(10))
        .await;
    assert_eq!(got.len(), 1);
}

#[test]
fn a_bad_outbound_entry_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailwatch.toml");
    std::fs::write(
        &path,
        "[outbound]\ndeny = [\"10.0.0.0/33\", \"example.com\"]\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["config", "check"])
        .arg(&path)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text =
        String::from_utf8_lossy(&out.stderr).into_owned() + &String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("[outbound]"), "{text}");
    assert!(text.contains("\"10.0.0.0/33\""), "{text}");
    assert!(text.contains("\"example.com\""), "{text}");
}

#[test]
fn an_s3_endpoint_on_a_refused_address_stops_the_server_at_start() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailwatch.toml");
    std::fs::write(
        &path,
        "[objects]\ntype = \"s3\"\nendpoint = \"http://169.254.169.254:9000\"\nregion = \"r\"\n\
         access_key_id = \"AK\"\nsecret_access_key = \"SK-never-printed\"\nallow_http = true\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&path)
        .env("TRAILWATCH_ADMIN_PASSWORD", common::ADMIN_PASSWORD)
        .env_remove(common::OUTBOUND_ALLOW_LOOPBACK.0)
        .output()
        .unwrap();
    assert!(!out.status.success());
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(text.contains("[objects] endpoint"), "{text}");
    assert!(text.contains("refused by the outbound policy"), "{text}");
    assert!(!text.contains("SK-never-printed"), "{text}");
}
