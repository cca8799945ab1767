//! The notification channels other than plain HTTP, end to end against real peers on
//! 127.0.0.1: email through a real SMTP server (aiosmtpd), SMS through an HTTP gateway, and
//! HTTPS subscribers whose certificate comes from a test CA.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/smtp.rs"]
mod smtp;
#[path = "common/tls.rs"]
mod tls;

use std::time::{Duration, Instant};

use common::Server;
use common::receiver::{Received, Receiver, verify_signed};
use common::smn::{create_topic, deliveries, publish};
use reqwest::Method;
use serde_json::{Value, json};
use smtp::{Mail, SmtpServer, SmtpStandby, find_link, free_port};
use tls::HttpsReceiver;
use trailwatch_client::Client;

/// Fast retries so that tests see several attempts in well under a second.
const FAST_RETRIES: &str = "[notify]\nretry_base_ms = 20\nretry_cap_ms = 300\n";
const SENDER: &str = "alarms@trailwatch.test";
const ALARM: &str = "Illegal operation[  IP:198.51.100.7,  Action:login]";

fn smtp_config(port: u16) -> String {
    format!(
        "{FAST_RETRIES}[notify.smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\nfrom = \"{SENDER}\"\n"
    )
}

async fn subscribe(client: &Client, topic: &str, protocol: &str, endpoint: &str) -> String {
    let path = format!(
        "/v2/{}/notifications/topics/{topic}/subscriptions",
        client.project_id()
    );
    let r = client
        .send(
            Method::POST,
            &path,
            "",
            Some(json!({"protocol": protocol, "endpoint": endpoint, "remark": "channels"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    r.body["subscription_urn"].as_str().unwrap().to_owned()
}

/// The subscription's `status` in the project's list (0 unconfirmed, 1 confirmed, 3 canceled).
async fn status_of(client: &Client, sub_urn: &str) -> i64 {
    let list = client
        .send(
            Method::GET,
            &format!("/v2/{}/notifications/subscriptions", client.project_id()),
            "",
            None,
        )
        .await
        .unwrap();
    list.body["subscriptions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["subscription_urn"] == sub_urn)
        .unwrap_or_else(|| panic!("{sub_urn} is not listed: {}", list.body))["status"]
        .as_i64()
        .unwrap()
}

/// Polls the single delivery of `message_id` (bounded) until `done` holds; returns it.
async fn wait_delivery(
    client: &Client,
    message_id: &str,
    timeout: Duration,
    done: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + timeout;
    loop {
        let d = deliveries(client, message_id).await;
        assert_eq!(d.len(), 1, "{d:?}");
        if done(&d[0]) || Instant::now() > deadline {
            return d[0].clone();
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

fn retries(delivery: &Value) -> Vec<Value> {
    delivery["attempt_log"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|a| a["outcome"] == "retry")
        .cloned()
        .collect()
}

async fn get_status(url: &str) -> u16 {
    reqwest::get(url).await.unwrap().status().as_u16()
}

fn subject_is(subject: &'static str) -> impl Fn(&Mail) -> bool {
    move |m| m.header("subject") == Some(subject)
}

fn is_confirmation(m: &Mail) -> bool {
    m.header("subject")
        .is_some_and(|s| s.to_ascii_lowercase().contains("confirm"))
}

/// Subscribes `address`, checks the confirmation mail, and opens its link.
async fn confirm_email(client: &Client, smtp: &SmtpServer, topic: &str, address: &str) -> String {
    let sub = subscribe(client, topic, "email", address).await;
    assert_eq!(status_of(client, &sub).await, 0, "unconfirmed at first");
    let mails = smtp
        .wait_mails(1, Duration::from_secs(10), is_confirmation)
        .await;
    assert_eq!(mails.len(), 1, "one confirmation mail: {:?}", smtp.mails());
    let mail = &mails[0];
    assert_eq!(mail.header("to"), Some(address), "{mail:?}");
    // aiosmtpd's handler records the envelope recipients too.
    assert_eq!(mail.header("x-rcptto"), Some(address), "{mail:?}");
    assert!(
        mail.body.contains(topic),
        "the mail names the topic: {}",
        mail.body
    );
    let link = mail
        .link_containing("/smn/subscription/confirm?token=")
        .unwrap_or_else(|| panic!("no confirmation link in {:?}", mail.body));
    assert!(link.contains("&topic_urn="), "{link}");
    assert_eq!(get_status(&link).await, 200, "{link}");
    assert_eq!(status_of(client, &sub).await, 1, "confirmed by the link");
    sub
}

/// Email end to end with a real SMTP server: confirmation mail and link, the notification's
/// headers and body, and its unsubscribe link.
#[tokio::test]
async fn email_subscription_is_confirmed_notified_and_unsubscribed_by_mail() {
    let tmp = tempfile::tempdir().unwrap();
    let port = free_port();
    let smtp = SmtpServer::start(port, &tmp.path().join("maildir"));
    let server = Server::start_with_config(&smtp_config(port));
    let client = server.admin().await;
    let topic = create_topic(&client, "cts_mail", "Audit alarms").await;
    let sub = confirm_email(&client, &smtp, &topic, "ops@example.com").await;

    let message_id = publish(
        &client,
        &topic,
        json!({"subject": "CTSTrigger", "message": ALARM}),
    )
    .await;
    let mails = smtp
        .wait_mails(1, Duration::from_secs(10), subject_is("CTSTrigger"))
        .await;
    assert_eq!(mails.len(), 1, "{:?}", smtp.mails());
    let mail = &mails[0];
    let from = mail.header("from").unwrap();
    assert!(
        from == format!("Audit alarms <{SENDER}>")
            || from == format!("\"Audit alarms\" <{SENDER}>"),
        "sender name is the topic's display name: {from}"
    );
    assert_eq!(mail.header("to"), Some("ops@example.com"));
    assert!(
        mail.header("content-type")
            .unwrap()
            .to_ascii_lowercase()
            .starts_with("text/plain"),
        "{mail:?}"
    );
    assert!(mail.header("date").is_some(), "{mail:?}");
    assert!(mail.body.contains(ALARM), "{:?}", mail.body);
    let d = deliveries(&client, &message_id).await;
    assert_eq!(d.len(), 1, "{d:?}");
    assert_eq!(d[0]["state"], "delivered", "{d:?}");
    assert_eq!(d[0]["attempt_log"][0]["result"], "smtp 250", "{d:?}");

    let unsubscribe = mail
        .link_containing("/smn/subscription/unsubscribe?")
        .unwrap_or_else(|| panic!("no unsubscribe link in {:?}", mail.body));
    assert_eq!(get_status(&unsubscribe).await, 200, "{unsubscribe}");
    assert_eq!(status_of(&client, &sub).await, 3, "canceled by the link");
    publish(&client, &topic, json!({"subject": "After", "message": "x"})).await;
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(
        smtp.mails()
            .iter()
            .all(|m| m.header("subject") != Some("After")),
        "a canceled subscription gets no mail"
    );
}

/// The SMTP server is down when a message is published: the attempts are recorded as retries,
/// and once the server is back the mail arrives exactly once.
#[tokio::test]
async fn email_is_retried_while_the_smtp_server_is_down_and_sent_once_when_back() {
    let tmp = tempfile::tempdir().unwrap();
    let maildir = tmp.path().join("maildir");
    let port = free_port();
    let mut smtp = SmtpServer::start(port, &maildir);
    let server = Server::start_with_config(&smtp_config(port));
    let client = server.admin().await;
    let topic = create_topic(&client, "cts_mail_down", "Audit alarms").await;
    confirm_email(&client, &smtp, &topic, "oncall@example.com").await;

    // The replacement is started (and its modules imported) before the outage, so that it can
    // take over the port within milliseconds of being told to.
    let standby = SmtpStandby::prepare(port, &maildir);
    smtp.kill();
    let message_id = publish(
        &client,
        &topic,
        json!({"subject": "CTSTrigger", "message": ALARM}),
    )
    .await;
    let d = wait_delivery(&client, &message_id, Duration::from_secs(10), |d| {
        retries(d).len() >= 2
    })
    .await;
    let restart = Instant::now();
    let smtp = standby.go();
    let back = Instant::now();
    let restart = back - restart;
    let failed = retries(&d);
    assert!(failed.len() >= 2, "{d}");
    assert_eq!(d["state"], "pending", "{d}");
    for a in &failed {
        let result = a["result"].as_str().unwrap();
        assert!(result.starts_with("smtp connection"), "{a}");
    }
    assert!(smtp.mails().iter().all(|m| !subject_is("CTSTrigger")(m)));

    // Five failures in a row open the email circuit breaker for 30 s; if the retries were quick
    // enough to get there before the restart, the mail comes when it closes again.
    let mails = smtp
        .wait_mails(1, Duration::from_secs(40), subject_is("CTSTrigger"))
        .await;
    assert_eq!(mails.len(), 1, "{:?}", smtp.mails());
    assert!(mails[0].body.contains(ALARM));
    eprintln!(
        "smtp outage: {} failed attempts seen before the restart, which took {restart:?}; the mail arrived {:?} after it",
        failed.len(),
        back.elapsed()
    );
    let d = wait_delivery(&client, &message_id, Duration::from_secs(5), |d| {
        d["state"] == "delivered"
    })
    .await;
    assert_eq!(d["state"], "delivered", "{d}");
    let log = d["attempt_log"].as_array().unwrap();
    assert_eq!(log.last().unwrap()["outcome"], "delivered", "{d}");
    assert!(
        log[..log.len() - 1].iter().all(|a| a["outcome"] == "retry"),
        "{d}"
    );
    tokio::time::sleep(Duration::from_millis(400)).await;
    let copies = smtp
        .mails()
        .into_iter()
        .filter(|m| subject_is("CTSTrigger")(m))
        .count();
    assert_eq!(copies, 1, "exactly once");
}

fn sms_config(gateway: &str, auto_confirm: Option<bool>) -> String {
    let mut c = format!(
        "{FAST_RETRIES}[notify.sms]\nurl = \"{gateway}\"\nbody_template = \"{{\\\"to\\\":\\\"{{to}}\\\",\\\"text\\\":\\\"{{message}}\\\"}}\"\nheaders = {{ x-api-key = \"gateway-key-1\" }}\n"
    );
    if let Some(a) = auto_confirm {
        c.push_str(&format!("auto_confirm = {a}\n"));
    }
    c
}

/// Waits (bounded) until the gateway got `n` requests.
async fn gateway_requests(gateway: &Receiver, n: usize) -> Vec<Received> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let got = gateway.all();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// SMS through an HTTP gateway: auto-confirmed, JSON body from the template with the text
/// escaped and cut to 490 characters.
#[tokio::test]
async fn sms_goes_through_the_http_gateway_escaped_and_cut_to_490_characters() {
    let gateway = Receiver::start().await;
    let server = Server::start_with_config(&sms_config(&gateway.url, None));
    let client = server.admin().await;
    let topic = create_topic(&client, "cts_sms", "Audit alarms").await;
    let phone = "+4915112345678";
    let sub = subscribe(&client, &topic, "sms", phone).await;
    assert_eq!(status_of(&client, &sub).await, 1, "auto-confirmed");

    // Quotes, backslashes, a newline, 2-, 3- and 4-byte characters, and template placeholders
    // that must stay literal.
    let unit = "Größe \"x\" \\ 日本語 😀 {to} {message}\n";
    let message: String = unit.chars().cycle().take(600).collect();
    assert_eq!(message.chars().count(), 600);
    let message_id = publish(
        &client,
        &topic,
        json!({"subject": "CTSTrigger", "message": message}),
    )
    .await;
    let got = gateway_requests(&gateway, 1).await;
    assert_eq!(got.len(), 1, "no confirmation text, one message");
    let r = &got[0];
    assert_ne!(r.body, Value::Null, "the gateway got valid JSON");
    assert_eq!(r.body["to"], phone, "{}", r.body);
    let expected: String = message.chars().take(490).collect();
    assert_eq!(r.body["text"].as_str().unwrap(), expected);
    assert_eq!(
        r.body.as_object().unwrap().len(),
        2,
        "only the template's fields: {}",
        r.body
    );
    assert_eq!(r.header("x-api-key"), Some("gateway-key-1"));
    let d = wait_delivery(&client, &message_id, Duration::from_secs(5), |d| {
        d["state"] == "delivered"
    })
    .await;
    assert_eq!(d["attempt_log"][0]["result"], "gateway 200", "{d}");
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(gateway.all().len(), 1, "sent once");
}

/// With `auto_confirm = false` the gateway sends a confirmation text whose link confirms the
/// subscription, even when a long topic name makes the text long.
#[tokio::test]
async fn sms_without_auto_confirm_texts_a_working_confirmation_link() {
    let gateway = Receiver::start().await;
    let server = Server::start_with_config(&sms_config(&gateway.url, Some(false)));
    let client = server.admin().await;
    let short = create_topic(&client, "cts_sms", "Audit alarms").await;
    let long_name = format!("cts_sms_{}", "x".repeat(200));
    let long = create_topic(&client, &long_name, "Audit alarms").await;
    let phone = "+4915112345678";
    for (i, topic) in [&short, &long].into_iter().enumerate() {
        let sub = subscribe(&client, topic, "sms", phone).await;
        assert_eq!(status_of(&client, &sub).await, 0, "waits for confirmation");
        let got = gateway_requests(&gateway, i + 1).await;
        assert_eq!(got.len(), i + 1);
        let r = &got[i];
        assert_eq!(r.body["to"], phone, "{}", r.body);
        let text = r.body["text"].as_str().unwrap();
        assert!(text.chars().count() <= 490, "{text}");
        let link = find_link(text, "/smn/subscription/confirm?token=")
            .unwrap_or_else(|| panic!("no confirmation link in {text:?}"));
        assert!(link.contains("&topic_urn="), "{link}");
        assert_eq!(
            get_status(&link).await,
            200,
            "the texted link works ({} characters of text): {text}",
            text.chars().count()
        );
        assert_eq!(status_of(&client, &sub).await, 1);
    }
    publish(&client, &short, json!({"message": "after confirmation"})).await;
    let got = gateway_requests(&gateway, 3).await;
    assert_eq!(got.len(), 3);
    assert_eq!(got[2].body["text"], "after confirmation");
}

/// HTTPS subscriber whose certificate comes from a test CA given as `extra_ca_file`: confirmed
/// and notified with verifiable signatures. Without that CA the server refuses the certificate
/// and keeps retrying, delivering nothing.
#[tokio::test]
async fn https_subscriber_with_a_private_ca() {
    let pki = tls::test_pki();
    let tmp = tempfile::tempdir().unwrap();
    let ca_file = tmp.path().join("test-ca.pem");
    std::fs::write(&ca_file, &pki.ca_pem).unwrap();
    let receiver = HttpsReceiver::start(&pki.server_cert_pem, &pki.server_key_pem);
    let with_ca = format!(
        "{FAST_RETRIES}extra_ca_file = {:?}\n",
        ca_file.display().to_string()
    );
    let server = Server::start_with_config(&with_ca);
    let client = server.admin().await;
    let topic = create_topic(&client, "cts_https", "Audit alarms").await;
    let sub = subscribe(&client, &topic, "https", &receiver.url).await;
    let confirmations = receiver
        .wait_for("SubscriptionConfirmation", 1, Duration::from_secs(10))
        .await;
    assert_eq!(confirmations.len(), 1, "{:?}", receiver.all());
    let c = &confirmations[0];
    verify_signed(c).await.unwrap();
    assert_eq!(
        c.header("x-smn-message-type"),
        Some("SubscriptionConfirmation")
    );
    let url = c.body["subscribe_url"].as_str().unwrap();
    assert_eq!(get_status(url).await, 200);
    assert_eq!(status_of(&client, &sub).await, 1);

    let message_id = publish(
        &client,
        &topic,
        json!({"subject": "CTSTrigger", "message": ALARM}),
    )
    .await;
    let got = receiver
        .wait_for("Notification", 1, Duration::from_secs(10))
        .await;
    assert_eq!(got.len(), 1, "{:?}", receiver.all());
    let n = &got[0];
    verify_signed(n).await.unwrap();
    assert_eq!(n.body["message_id"], message_id.as_str());
    assert_eq!(n.body["message"], ALARM);
    assert_eq!(n.body["subject"], "CTSTrigger");
    assert_eq!(n.header("x-smn-message-id"), Some(message_id.as_str()));
    let mut forged = n.clone();
    forged.body["message"] = json!("Everything is fine");
    assert!(verify_signed(&forged).await.is_err());

    // The same data (the confirmed subscription) on a server that does not trust the test CA.
    let server = server.restart_with_config(FAST_RETRIES);
    let client = server.admin().await;
    let message_id = publish(
        &client,
        &topic,
        json!({"subject": "CTSTrigger", "message": "untrusted"}),
    )
    .await;
    let d = wait_delivery(&client, &message_id, Duration::from_secs(10), |d| {
        retries(d).len() >= 2
    })
    .await;
    let failed = retries(&d);
    assert!(failed.len() >= 2, "{d}");
    assert_eq!(d["state"], "pending", "{d}");
    eprintln!("untrusted certificate: {}", failed[0]["result"]);
    for a in &failed {
        let result = a["result"].as_str().unwrap().to_ascii_lowercase();
        assert!(
            result.contains("certificate") || result.contains("tls"),
            "the attempt log names the TLS problem: {a}"
        );
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert_eq!(
        receiver.of_type("Notification").len(),
        1,
        "nothing reaches the receiver over an untrusted connection"
    );
}
