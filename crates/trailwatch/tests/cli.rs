//! The CLI, run as a user would: the built binary against a running server.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output};

use common::{ADMIN_AK, ADMIN_PASSWORD, ADMIN_SK, Server, login_trace};
use serde_json::Value;

fn cli(server: &Server, args: &[&str], creds: &[(&str, &str)]) -> Output {
    let mut cmd = Command::new(common::bin());
    cmd.args(args)
        .env("TRAILWATCH_ENDPOINT", &server.url)
        .env_remove("TRAILWATCH_AK")
        .env_remove("TRAILWATCH_SK")
        .env_remove("TRAILWATCH_USER")
        .env_remove("TRAILWATCH_PASSWORD")
        .env("HOME", "/nonexistent-home");
    for (k, v) in creds {
        cmd.env(k, v);
    }
    cmd.env_remove("TRAILWATCH_PROFILE");
    cmd.output().unwrap()
}

const AKSK: [(&str, &str); 2] = [("TRAILWATCH_AK", ADMIN_AK), ("TRAILWATCH_SK", ADMIN_SK)];

#[test]
fn put_then_list_with_filters() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("traces.jsonl");
    let mut lines = Vec::new();
    for i in 0..30 {
        let ip = if i % 3 == 0 {
            "198.51.100.7"
        } else {
            "10.0.0.5"
        };
        lines.push(
            login_trace(
                if i % 2 == 0 { "alice" } else { "bob" },
                ip,
                1_731_161_042_000 + i,
            )
            .to_string(),
        );
    }
    lines.insert(10, "{ this line is broken".into());
    lines.insert(20, r#"{"trace_name":"login"}"#.into());
    std::fs::write(&file, lines.join("\n") + "\n").unwrap();

    let out = cli(
        &server,
        &["traces", "put", file.to_str().unwrap(), "--batch-size", "7"],
        &AKSK,
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        out.status.code(),
        Some(1),
        "rejected records make the exit status 1: {stdout} {stderr}"
    );
    assert!(
        stdout.contains("30 stored, 0 already stored, 2 rejected"),
        "{stdout}"
    );
    assert!(stderr.contains("line 11: not valid JSON"), "{stderr}");
    assert!(stderr.contains("line 21: field `trace_type`"), "{stderr}");

    // A trace without trace_id gets a fresh id on every send; one with an id is stored once.
    let with_ids = dir.path().join("with-ids.json");
    let mut t = login_trace("carol", "203.0.113.9", 1_731_161_043_000);
    t["trace_id"] = Value::String("fixed-id-1".into());
    std::fs::write(&with_ids, serde_json::to_string(&vec![t]).unwrap()).unwrap();
    for expected in ["1 stored, 0 already stored", "0 stored, 1 already stored"] {
        let out = cli(
            &server,
            &["traces", "put", with_ids.to_str().unwrap()],
            &AKSK,
        );
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains(expected));
    }

    // List as JSON with the user's password instead of an AK/SK.
    let out = cli(
        &server,
        &[
            "traces",
            "list",
            "--user",
            "alice",
            "--source-ip",
            "198.51.100.0/24",
            "--all",
            "--limit",
            "2",
            "--output",
            "json",
        ],
        &[
            ("TRAILWATCH_USER", "admin"),
            ("TRAILWATCH_PASSWORD", ADMIN_PASSWORD),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let traces: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    // i % 2 == 0 and i % 3 == 0 → i in {0, 6, 12, 18, 24}.
    assert_eq!(traces.len(), 5);
    assert!(
        traces
            .iter()
            .all(|t| t["user"]["name"] == "alice" && t["source_ip"] == "198.51.100.7")
    );

    let out = cli(
        &server,
        &["traces", "list", "--trace-id", "fixed-id-1"],
        &AKSK,
    );
    let table = String::from_utf8_lossy(&out.stdout);
    let mut rows = table.lines();
    assert!(rows.next().unwrap().starts_with("TIME"));
    let row = rows.next().unwrap();
    assert!(
        row.contains("carol") && row.contains("203.0.113.9") && row.contains("fixed-id-1"),
        "{table}"
    );
}

#[test]
fn missing_credentials_say_what_to_set() {
    let server = Server::start();
    let out = cli(&server, &["traces", "list"], &[]);
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("TRAILWATCH_AK") && err.contains("TRAILWATCH_USER"),
        "{err}"
    );
}

#[test]
fn iam_commands() {
    let server = Server::start();
    let out = cli(
        &server,
        &[
            "iam",
            "users",
            "create",
            "dave",
            "--password",
            "Dave-password-1",
        ],
        &AKSK,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let out = cli(
        &server,
        &["iam", "users", "list", "--output", "json"],
        &AKSK,
    );
    let users: Vec<Value> = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(users.len(), 2);
    let out = cli(
        &server,
        &["iam", "credentials", "create", "--description", "laptop"],
        &[
            ("TRAILWATCH_USER", "dave"),
            ("TRAILWATCH_PASSWORD", "Dave-password-1"),
        ],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8_lossy(&out.stdout);
    let ak = text
        .lines()
        .next()
        .unwrap()
        .split('"')
        .nth(1)
        .unwrap()
        .to_owned();
    let sk = text
        .lines()
        .nth(1)
        .unwrap()
        .split('"')
        .nth(1)
        .unwrap()
        .to_owned();
    // The new credential works for the CLI.
    let out = cli(
        &server,
        &["traces", "list"],
        &[("TRAILWATCH_AK", &ak), ("TRAILWATCH_SK", &sk)],
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn config_check_reports_every_problem() {
    let dir = tempfile::tempdir().unwrap();
    let good = dir.path().join("good.toml");
    std::fs::write(
        &good,
        "version = 1\n[server]\nlisten = \"127.0.0.1:9000\"\n",
    )
    .unwrap();
    let bad = dir.path().join("bad.toml");
    std::fs::write(
        &bad,
        "version = 1\n[server]\nlisten = \"x\"\nregion = \"a b\"\n[iam]\ntoken_ttl_hours = 0\n",
    )
    .unwrap();
    let out = Command::new(common::bin())
        .args(["config", "check"])
        .arg(&good)
        .output()
        .unwrap();
    assert!(out.status.success());
    assert!(String::from_utf8_lossy(&out.stdout).contains("ok"));
    let out = Command::new(common::bin())
        .args(["config", "check"])
        .arg(&bad)
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(text.contains("line 3, [server] listen"), "{text}");
    assert!(text.contains("line 4, [server] region"), "{text}");
    assert!(text.contains("line 6, [iam] token_ttl_hours"), "{text}");
    assert!(text.contains("3 problem(s) found"), "{text}");
}

/// The SMN commands end to end: topic, subscription, confirmation, publish, delivery record.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn notification_commands() {
    let server = Server::start();
    let receiver = common::receiver::Receiver::start().await;
    let run = |args: Vec<String>| {
        let url = server.url.clone();
        async move {
            tokio::task::spawn_blocking(move || {
                let out = Command::new(common::bin())
                    .args(&args)
                    .env("TRAILWATCH_ENDPOINT", url)
                    .env("TRAILWATCH_AK", ADMIN_AK)
                    .env("TRAILWATCH_SK", ADMIN_SK)
                    .env("HOME", "/nonexistent-home")
                    .env_remove("TRAILWATCH_PROFILE")
                    .output()
                    .unwrap();
                assert!(
                    out.status.success(),
                    "{args:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                String::from_utf8_lossy(&out.stdout).into_owned()
            })
            .await
            .unwrap()
        }
    };
    let s = |v: &[&str]| v.iter().map(|x| x.to_string()).collect::<Vec<_>>();
    let created = run(s(&[
        "topics",
        "create",
        "alarms",
        "--display-name",
        "Audit alarms",
    ]))
    .await;
    assert!(created.starts_with("created urn:smn:local:"), "{created}");
    let sub = run(s(&[
        "subscriptions",
        "add",
        "alarms",
        "http",
        &receiver.url,
        "--header",
        "x-team=secops",
    ]))
    .await;
    assert!(sub.trim().starts_with("urn:smn:local:"), "{sub}");
    let confirmation = receiver
        .wait_for(
            "SubscriptionConfirmation",
            1,
            std::time::Duration::from_secs(10),
        )
        .await;
    let link = confirmation[0].body["subscribe_url"]
        .as_str()
        .unwrap()
        .to_owned();
    let confirmed = run(s(&["subscriptions", "confirm", &link])).await;
    assert!(confirmed.contains(sub.trim()), "{confirmed}");
    let message_id = run(s(&[
        "publish",
        "alarms",
        "Illegal operation",
        "--subject",
        "CTSTrigger",
    ]))
    .await;
    let got = receiver
        .wait_for("Notification", 1, std::time::Duration::from_secs(10))
        .await;
    assert_eq!(got[0].body["message_id"], message_id.trim());
    assert_eq!(got[0].header("x-team"), Some("secops"));
    let deliveries = run(s(&[
        "deliveries",
        "list",
        "--message-id",
        message_id.trim(),
    ]))
    .await;
    assert!(
        deliveries.contains("delivered after 1 attempt(s)"),
        "{deliveries}"
    );
    let subs = run(s(&[
        "subscriptions",
        "list",
        "--topic",
        "alarms",
        "--output",
        "json",
    ]))
    .await;
    let subs: Vec<Value> = serde_json::from_str(&subs).unwrap();
    assert_eq!(subs[0]["status"], 1);
    let dead = run(s(&[
        "notifications",
        "dead-letters",
        "list",
        "--output",
        "json",
    ]))
    .await;
    assert_eq!(serde_json::from_str::<Vec<Value>>(&dead).unwrap().len(), 0);
    let topics = run(s(&["topics", "list", "--output", "json"])).await;
    assert!(
        topics.contains("\"display_name\": \"Audit alarms\""),
        "{topics}"
    );
}
