//! The archive through the real server: a management tracker with a bucket, traces transferred
//! as trace files with signed digests; after a graceful stop the archive verifies clean offline
//! with only the exported public key (`trailwatch verify`), and a flipped byte is named.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::{Duration, Instant};

use common::{Server, bin, login_trace};
use reqwest::Method;
use serde_json::{Value, json};

fn files_under(dir: &std::path::Path, out: &mut Vec<std::path::PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                files_under(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

#[tokio::test]
async fn a_stopped_server_leaves_an_archive_that_verifies_offline() {
    let mut server = Server::start_with_config("[archive]\ntransfer_cycle_seconds = 1\n");
    let c = server.admin().await;
    let pid = c.project_id().to_owned();
    let r = c
        .send(
            Method::POST,
            &format!("/v3/{pid}/tracker"),
            "",
            Some(json!({"tracker_type": "system", "tracker_name": "system",
                        "is_support_validate": true,
                        "obs_info": {"bucket_name": "audit-archive", "file_prefix_name": "tw",
                                     "is_obs_created": true}})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201, "{}", r.body);
    let key = c
        .send(
            Method::GET,
            &format!("/v3/{pid}/tracker/public-key"),
            "",
            None,
        )
        .await
        .unwrap()
        .body;
    assert_eq!(key["algorithm"], "Ed25519");
    let pem = key["public_key_pem"].as_str().unwrap().to_owned();

    // An alarm and its delivery: archived as record files (who was told what, and when).
    let receiver = common::receiver::Receiver::start().await;
    let topic = common::smn::create_topic(&c, "audit_alarms", "").await;
    common::smn::subscribe_confirmed(&c, &topic, &receiver, json!({})).await;
    common::smn::publish(&c, &topic, json!({"subject": "CTSTrigger", "message": "Illegal operation[  IP:203.0.113.10,  Action:login]"})).await;
    receiver
        .wait_for("Notification", 1, Duration::from_secs(10))
        .await;

    let traces: Vec<Value> = (0..50)
        .map(|i| {
            let mut t = login_trace(&format!("user{i}"), "203.0.113.10", 1_764_000_000_000 + i);
            t["trace_id"] = json!(format!("arch-{i:03}"));
            t
        })
        .collect();
    assert_eq!(c.put_traces(&traces).await.unwrap().body["accepted"], 50);

    // A transfer happens within a cycle (1 s here).
    let bucket = server.data_dir.join("objects").join("audit-archive");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let mut files = Vec::new();
        files_under(&bucket.join("CloudTraces"), &mut files);
        if files
            .iter()
            .any(|f| f.to_string_lossy().contains("_CloudTrace_"))
        {
            break;
        }
        assert!(Instant::now() < deadline, "no trace file was written");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Graceful stop (SIGTERM): the archiver closes the current digest period early.
    server.stop_gracefully(Duration::from_secs(40)).await;

    // The public key without a server, equal to the served one.
    let exported = Command::new(bin())
        .args(["keys", "export", "--data-dir"])
        .arg(&server.data_dir)
        .output()
        .unwrap();
    assert!(exported.status.success(), "{exported:?}");
    assert_eq!(String::from_utf8_lossy(&exported.stdout), pem);
    let key_file = server.data_dir.join("audit.pub");
    std::fs::write(&key_file, &exported.stdout).unwrap();

    let verify = |output: &str| {
        Command::new(bin())
            .args(["verify", "--store"])
            .arg(&bucket)
            .arg("--public-key")
            .arg(&key_file)
            .args(["--output", output])
            .output()
            .unwrap()
    };
    let out = verify("json");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
    let report: Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(report["counts"]["traces"], 50, "{report}");
    // The alarm (and the confirmation request) and their delivery attempts.
    assert!(
        report["counts"]["records"].as_u64().unwrap() >= 3,
        "{report}"
    );
    assert_eq!(report["problems"].as_array().unwrap().len(), 0);

    // The archive imports into another server's trace log; importing again stores nothing twice.
    let other = Server::start();
    let import = || {
        Command::new(bin())
            .args(["import", "cts-archive"])
            .arg(&bucket)
            .env("TRAILWATCH_ENDPOINT", &other.url)
            .env("TRAILWATCH_AK", common::ADMIN_AK)
            .env("TRAILWATCH_SK", common::ADMIN_SK)
            .env_remove("TRAILWATCH_USER")
            .env_remove("TRAILWATCH_PASSWORD")
            .env_remove("TRAILWATCH_PROFILE")
            .env("HOME", "/nonexistent-home")
            .output()
            .unwrap()
    };
    let out = import();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        out.status.success(),
        "{text} {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(text.contains("imported 50 traces"), "{text}");
    let out = import();
    let text = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(
        text.contains("imported 0 traces") && text.contains("50 already stored"),
        "{text}"
    );
    let imported = common::list_all(&other.admin().await, &[("trace_name", "login".into())]).await;
    assert_eq!(imported.len(), 50);

    // Flip one byte of a trace file: exit 1, the file named as altered.
    let mut files = Vec::new();
    files_under(&bucket.join("CloudTraces"), &mut files);
    let victim = files
        .iter()
        .find(|f| f.to_string_lossy().contains("_CloudTrace_"))
        .unwrap();
    let mut bytes = std::fs::read(victim).unwrap();
    let middle = bytes.len() / 2;
    bytes[middle] ^= 0x40;
    std::fs::write(victim, bytes).unwrap();
    let out = verify("table");
    let text = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{text}");
    assert!(text.contains("INVALID"), "{text}");
    let name = victim.file_name().unwrap().to_string_lossy().to_string();
    assert!(text.contains(&name), "{text}");

    // A missing key is "could not run": exit 2.
    let out = Command::new(bin())
        .args(["verify", "--store"])
        .arg(&bucket)
        .args(["--public-key", "/nonexistent.pem"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    server.kill9();
}
