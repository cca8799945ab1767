//! Bad input gets a precise error in the compatible shape; nothing crashes; nothing healthy is lost.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, list_all, login_trace};
use serde_json::{Value, json};

async fn post_raw(server: &Server, token: &str, pid: &str, body: Vec<u8>) -> (u16, Value) {
    let r = server
        .http()
        .post(format!("{}/v3/{pid}/traces", server.url))
        .header("X-Auth-Token", token)
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn token(server: &Server) -> (String, String) {
    let client = server.admin_password().await;
    let (token, body) = client.password_token(Some("default")).await.unwrap();
    (
        token,
        body["token"]["project"]["id"].as_str().unwrap().to_owned(),
    )
}

#[tokio::test]
async fn malformed_bodies_get_cts_errors() {
    let server = Server::start_with_config("[server]\nmax_body_bytes = 65536\n");
    let (token, pid) = token(&server).await;
    let cases: Vec<(Vec<u8>, u16, &str)> = vec![
        (b"".to_vec(), 400, "empty"),
        (b"   ".to_vec(), 400, "empty"),
        (b"{\"trace_name\": ".to_vec(), 400, "not valid JSON"),
        (b"[1,2,3]".to_vec(), 400, "found an array"),
        (b"42".to_vec(), 400, "found a number"),
        (b"{\"traces\": {}}".to_vec(), 400, "must be an array"),
        (b"{\"traces\": []}".to_vec(), 400, "empty"),
        (
            b"{\"traces\": [], \"x\": 1}".to_vec(),
            400,
            "only the member",
        ),
        (vec![0xff, 0xfe, b'{', b'}'], 400, "not valid JSON"),
        (
            json!({"trace_name": "login", "trace_type": 5})
                .to_string()
                .into_bytes(),
            400,
            "trace_type",
        ),
        (vec![b' '; 70_000], 413, "larger than the limit"),
    ];
    for (body, status, needle) in cases {
        let preview = String::from_utf8_lossy(&body[..body.len().min(40)]).into_owned();
        let (s, b) = post_raw(&server, &token, &pid, body).await;
        assert_eq!(s, status, "body {preview:?}: {b}");
        let msg = b["error_msg"].as_str().unwrap_or_default();
        assert!(msg.contains(needle), "body {preview:?}: {b}");
        assert!(b["error_code"].as_str().unwrap().starts_with(if s == 413 {
            "APIGW"
        } else {
            "CTS."
        }));
    }
    let too_many: Vec<Value> = (0..1001).map(|_| json!({})).collect();
    let (s, b) = post_raw(
        &server,
        &token,
        &pid,
        json!({"traces": too_many}).to_string().into_bytes(),
    )
    .await;
    assert_eq!(s, 400);
    assert!(b["error_msg"].as_str().unwrap().contains("at most 1000"));

    // The server is still fine, and healthy records of a mixed batch were stored.
    let mixed = json!({"traces": [login_trace("ok", "10.0.0.1", 1_731_161_042_001), {"trace_name": 7}, login_trace("ok2", "10.0.0.2", 1_731_161_042_002)]});
    let (s, b) = post_raw(&server, &token, &pid, mixed.to_string().into_bytes()).await;
    assert_eq!(s, 201, "{b}");
    let all = list_all(&server.admin().await, &[]).await;
    assert_eq!(all.len(), 2);
}

#[tokio::test]
async fn all_invalid_batch_is_400_with_every_reason() {
    let server = Server::start();
    let (token, pid) = token(&server).await;
    let body = json!({"traces": [{"trace_name": "x"}, {"time": -1}]});
    let (s, b) = post_raw(&server, &token, &pid, body.to_string().into_bytes()).await;
    assert_eq!(s, 400);
    assert_eq!(b["error_code"], "CTS.0003");
    assert_eq!(b["results"].as_array().unwrap().len(), 2);
    assert_eq!(b["results"][1]["index"], 1);
}

#[tokio::test]
async fn hostile_query_strings_get_precise_errors() {
    let server = Server::start();
    let (token, pid) = token(&server).await;
    let long = "a".repeat(5000);
    let cases = [
        ("limit=0", "limit"),
        ("limit=999", "limit"),
        ("limit=-1", "limit"),
        ("from=abc", "from"),
        ("from=10&to=5", "later than"),
        ("source_ip=not-an-ip", "source_ip"),
        ("source_ip=10.0.0.0/33", "source_ip"),
        ("trace_rating=fatal", "trace_rating"),
        ("trace_type=weird", "trace_type"),
        ("user=%00", "control"),
        ("user=%E0%80", "UTF-8"),
        ("user=a&user=b", "more than once"),
        ("access_key_id=AK", "not supported"),
    ];
    let http = server.http();
    for (q, needle) in cases {
        let r = http
            .get(format!("{}/v3/{pid}/traces?{q}", server.url))
            .header("X-Auth-Token", &token)
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 400, "{q}");
        let b: Value = r.json().await.unwrap();
        assert_eq!(b["error_code"], "CTS.0300", "{q}: {b}");
        assert!(
            b["error_msg"].as_str().unwrap().contains(needle),
            "{q}: {b}"
        );
    }
    let r = http
        .get(format!("{}/v3/{pid}/traces?user={long}", server.url))
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    // SQL-looking values are just values.
    let r = http
        .get(format!(
            "{}/v3/{pid}/traces?user=%27%20OR%201%3D1%20--",
            server.url
        ))
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["traces"].as_array().unwrap().len(), 0);
    // Unknown routes answer in the gateway shape.
    let r = http
        .get(format!("{}/v9/nothing", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 404);
    let b: Value = r.json().await.unwrap();
    assert_eq!(b["error_code"], "APIGW.0101");
}

#[tokio::test]
async fn invalid_configuration_is_reported_at_start() {
    let tmp = tempfile::tempdir().unwrap();
    let cfg = tmp.path().join("bad.toml");
    std::fs::write(
        &cfg,
        "[server]\nlisten = \"nowhere\"\nfoo = 1\n[storage]\ndurability = \"maybe\"\n",
    )
    .unwrap();
    let out = std::process::Command::new(common::bin())
        .arg("serve")
        .arg("--config")
        .arg(&cfg)
        .arg("--data-dir")
        .arg(tmp.path().join("d"))
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("line 2, [server] listen"), "{err}");
    assert!(err.contains("line 3, [server] foo: unknown key"), "{err}");
    assert!(err.contains("[storage] durability"), "{err}");
}
