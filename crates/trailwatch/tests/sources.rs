//! `trailwatch import sshd`: an sshd log becomes traces that the CTS trigger and `login_audit`
//! judge exactly like IAM logins; re-importing stores nothing twice; bad lines are reported.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::receiver::Receiver;
use common::smn::{create_topic, subscribe_confirmed};
use common::{ADMIN_AK, ADMIN_SK, Server, bin};
use reqwest::Method;
use serde_json::json;

const AUTH_LOG: &str = "\
Nov 25 10:00:01 web-01 sshd[100]: Accepted password for alice from 10.0.0.5 port 50000 ssh2
Nov 25 10:00:02 web-01 sshd[101]: Accepted publickey for bob from 203.0.113.9 port 50001 ssh2: RSA SHA256:abc
Nov 25 10:00:03 web-01 sshd[102]: Failed password for invalid user admin from 198.51.100.7 port 50002 ssh2
Nov 25 10:00:04 web-01 sshd[103]: Failed password for root from 253.252.51.07 port 50003 ssh2
Nov 25 10:00:05 web-01 sshd[101]: pam_unix(sshd:session): session closed for user bob
Nov 25 10:00:06 web-01 sshd[104]: Connection closed by 192.0.2.1 port 50004 [preauth]
";

fn import(server: &Server, file: &std::path::Path, extra: &[&str]) -> std::process::Output {
    Command::new(bin())
        .args(["import", "sshd"])
        .arg(file)
        .args(["--reference-time", "2026-11-25T12:00:00Z"])
        .args(extra)
        .env("TRAILWATCH_ENDPOINT", &server.url)
        .env("TRAILWATCH_AK", ADMIN_AK)
        .env("TRAILWATCH_SK", ADMIN_SK)
        .env_remove("TRAILWATCH_USER")
        .env_remove("TRAILWATCH_PASSWORD")
        .env_remove("TRAILWATCH_PROFILE")
        .env("HOME", "/nonexistent-home")
        .output()
        .unwrap()
}

#[tokio::test]
async fn an_sshd_login_from_a_disallowed_address_raises_the_login_audit_alarm() {
    let server = Server::start();
    let c = server.admin().await;
    let pid = c.project_id().to_owned();
    let receiver = Receiver::start().await;
    let topic = create_topic(&c, "ssh_alarms", "").await;
    subscribe_confirmed(&c, &topic, &receiver, json!({})).await;
    let domain = c
        .send(Method::GET, "/v3/auth/projects", "", None)
        .await
        .unwrap()
        .body["projects"][0]["domain_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let agency = c
        .send(
            Method::POST,
            "/v3.0/OS-AGENCY/agencies",
            "",
            Some(json!({"agency": {"name": "ssh_trust", "domain_id": domain, "trust_domain_name": "op_svc_cff"}})),
        )
        .await
        .unwrap()
        .body["agency"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let smn_admin = trailwatch_iam::roles::by_display_name("SMN Administrator")
        .unwrap()
        .id;
    c.send(
        Method::PUT,
        &format!("/v3.0/OS-AGENCY/projects/{pid}/agencies/{agency}/roles/{smn_admin}"),
        "",
        None,
    )
    .await
    .unwrap();
    let user_data = json!({"SMN_Topic": "ssh_alarms", "RegionName": "local", "IP": "10.0.0.0/8"});
    c.send(
        Method::POST,
        &format!("/v2/{pid}/fgs/functions"),
        "",
        Some(
            json!({"func_name": "ssh_audit", "runtime": "builtin", "handler": "login_audit",
                    "memory_size": 128, "timeout": 10, "user_data": user_data.to_string(),
                    "xrole": "ssh_trust"}),
        ),
    )
    .await
    .unwrap();
    c.send(
        Method::POST,
        &format!("/v2/{pid}/fgs/triggers/ssh_audit"),
        "",
        Some(json!({"trigger_type_code": "CTS",
                    "event_data": {"name": "ssh", "operations": ["SSH:host:login;logout"]}})),
    )
    .await
    .unwrap();

    let file = server.data_dir.join("auth.log");
    std::fs::write(&file, AUTH_LOG).unwrap();
    // Dry run: the traces are printed, nothing is sent.
    let dry = import(&server, &file, &["--dry-run"]);
    let printed = String::from_utf8_lossy(&dry.stdout).to_string();
    assert_eq!(printed.lines().count(), 4, "{printed}");
    // The invalid address is a reported problem (exit 1), the rest is stored.
    let out = import(&server, &file, &[]);
    let err = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(err.contains("auth.log:4:"), "{err}");
    assert!(err.contains("4 traces: 4 stored"), "{err}");
    // bob's login and logout from 203.0.113.9 alarm; alice (10.0.0.5) does not.
    let alarms = receiver
        .wait_for("Notification", 2, Duration::from_secs(15))
        .await;
    let mut messages: Vec<String> = alarms
        .iter()
        .map(|m| m.body["message"].as_str().unwrap().to_owned())
        .collect();
    messages.sort();
    assert_eq!(
        messages,
        vec![
            "Illegal operation[  IP:203.0.113.9,  Action:login]",
            "Illegal operation[  IP:203.0.113.9,  Action:logout]",
        ]
    );
    // Importing again stores nothing twice (deterministic trace ids).
    let again = import(&server, &file, &[]);
    let err = String::from_utf8_lossy(&again.stderr).to_string();
    assert!(err.contains("0 stored, 4 already stored"), "{err}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.of_type("Notification").len(), 2);
}
