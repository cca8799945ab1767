//! The tutorial end to end through the compatible APIs only: an SMN topic with an HTTP
//! subscription, an agency, the `login_audit` function and a CTS trigger; then traces from
//! allowed and disallowed IPv4/IPv6 addresses. Plus the FunctionGraph API's bad input, sync and
//! async invocation, and the LTS log-alarm function with overlapping invocations.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use common::Server;
use common::fgs::{agency_with_roles, call, log_group_and_stream, lts_trigger};
use common::receiver::Receiver;
use common::smn::{create_topic, subscribe_confirmed};
use reqwest::Method;
use serde_json::{Value, json};
use trailwatch_client::Client;

fn trace(name: &str, ip: &str, n: usize) -> Value {
    json!({
        "trace_id": format!("trace-{n:03}"),
        "trace_name": name,
        "trace_type": "ConsoleAction",
        "trace_rating": "normal",
        "service_type": "IAM",
        "resource_type": "user",
        "resource_name": "alice",
        "source_ip": ip,
        "code": 302,
        "time": 1_764_000_000_000_i64 + n as i64,
        "user": {"name": "alice", "id": "id-alice", "domain": {"name": "acme", "id": "d1"}},
    })
}

async fn invocation_count(c: &Client, fn_urn: &str) -> f64 {
    let r = call(
        c,
        Method::GET,
        &format!(
            "/v2/{}/fgs/functions/{fn_urn}/statistics/60",
            c.project_id()
        ),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["count"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .sum()
}

#[tokio::test]
async fn tutorial_login_audit_alarms_exactly_the_disallowed_logins_and_logouts_once() {
    let server = Server::start();
    let c = server.admin_password().await;
    let pid = c.project_id().to_owned();
    let receiver = Receiver::start().await;

    // SMN topic + confirmed HTTP subscription, agency with SMN rights.
    let topic = create_topic(&c, "cts_test", "login audit").await;
    subscribe_confirmed(&c, &topic, &receiver, json!({})).await;
    agency_with_roles(&c, "serverless_trust", &["SMN Administrator"]).await;

    // The function, configured exactly like the tutorial's environment variables.
    let user_data = json!({"SMN_Topic": "cts_test", "RegionName": "local",
                           "IP": "10.0.0.1, 192.168.0.0/24; 2001:db8::/32"})
    .to_string();
    let r = call(
        &c,
        Method::POST,
        &format!("/v2/{pid}/fgs/functions"),
        Some(
            json!({"func_name": "login_audit", "package": "default", "runtime": "builtin",
                    "handler": "login_audit", "memory_size": 128, "timeout": 30,
                    "user_data": user_data, "xrole": "serverless_trust"}),
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let fn_urn = r.body["func_urn"].as_str().unwrap().to_owned();
    assert_eq!(
        fn_urn,
        format!("urn:fss:local:{pid}:function:default:login_audit:latest")
    );

    let r = call(
        &c,
        Method::POST,
        &format!("/v2/{pid}/fgs/triggers/{fn_urn}"),
        Some(json!({"trigger_type_code": "CTS", "trigger_status": "ACTIVE",
                    "event_type_code": "MessageCreated",
                    "event_data": {"name": "login_audit", "operations": ["IAM:user:login;logout"]}})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["trigger_type_code"], "CTS");
    let listed = call(
        &c,
        Method::GET,
        &format!("/v2/{pid}/fgs/triggers/{fn_urn}"),
        None,
    )
    .await;
    assert_eq!(listed.body.as_array().unwrap().len(), 1);

    // (name, address, should alarm)
    let cases = [
        ("login", "10.0.0.1", false),
        ("login", "10.0.0.11", true), // the tutorial's substring check would pass this one
        ("logout", "10.0.0.11", true), // and would never alarm on a logout
        ("login", "192.168.0.77", false),
        ("logout", "192.168.1.5", true),
        ("loginfailed", "203.0.113.9", false), // not in the trigger's operations
        ("login", "2001:db8::5", false),
        ("login", "2001:db9::5", true),
        ("logout", "::ffff:10.0.0.1", false), // IPv4-mapped form of an allowed address
        ("login", "::ffff:10.0.0.2", true),
    ];
    let traces: Vec<Value> = cases
        .iter()
        .enumerate()
        .map(|(i, (name, ip, _))| trace(name, ip, i))
        .collect();
    // Other services' traces do not invoke the function.
    let mut batch = traces.clone();
    let mut other = trace("createServer", "203.0.113.1", 99);
    other["service_type"] = json!("ECS");
    other["resource_type"] = json!("server");
    batch.push(other);
    let r = c.put_traces(&batch).await.unwrap();
    assert_eq!(r.body["accepted"], 11, "{}", r.body);

    let expected: HashSet<String> = cases
        .iter()
        .filter(|c| c.2)
        .map(|(name, ip, _)| {
            let shown = ip.strip_prefix("::ffff:").unwrap_or(ip);
            format!("Illegal operation[  IP:{shown},  Action:{name}]")
        })
        .collect();
    let got = receiver
        .wait_for("Notification", expected.len(), Duration::from_secs(20))
        .await;
    let messages: Vec<String> = got
        .iter()
        .map(|m| m.body["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        messages.iter().cloned().collect::<HashSet<_>>(),
        expected,
        "{messages:#?}"
    );
    assert!(got.iter().all(|m| m.body["subject"] == "CTSTrigger"));

    // Statistics count every invocation: 9 login/logout traces (loginfailed and ECS excluded).
    let deadline = tokio::time::Instant::now() + Duration::from_secs(10);
    while invocation_count(&c, &fn_urn).await < 9.0 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(invocation_count(&c, &fn_urn).await, 9.0);
    let metrics = reqwest::get(format!("{}/metrics", server.url))
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("trailwatch_function_invocations_total 9\n"),
        "{metrics}"
    );

    // Exactly once: nothing more arrives, even after a restart re-reads the log.
    let server = server.restart_after_kill9();
    let c = server.admin_password().await;
    tokio::time::sleep(Duration::from_secs(2)).await;
    assert_eq!(receiver.of_type("Notification").len(), expected.len());
    let records = call(
        &c,
        Method::GET,
        &format!("/v2/{pid}/fgs/functions/{fn_urn}/invocations"),
        None,
    )
    .await;
    assert_eq!(records.body["count"], 9, "{}", records.body);
}

#[tokio::test]
async fn a_function_without_the_right_fails_with_a_clear_log_line() {
    let server = Server::start();
    let c = server.admin_password().await;
    let pid = c.project_id().to_owned();
    create_topic(&c, "alarms", "").await;
    let r = call(
        &c,
        Method::POST,
        &format!("/v2/{pid}/fgs/functions"),
        Some(json!({"func_name": "audit", "package": "default", "runtime": "builtin",
                    "handler": "login_audit", "memory_size": 128, "timeout": 3,
                    "user_data": json!({"SMN_Topic": "alarms", "RegionName": "local", "IP": "10.0.0.0/8"}).to_string()})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = c
        .raw(
            Method::POST,
            &format!("/v2/{pid}/fgs/functions/audit/invocations"),
            "",
            Some(
                json!({"cts": trace("login", "203.0.113.7", 1)})
                    .to_string()
                    .into_bytes(),
            ),
            true,
        )
        .await;
    let r = r.unwrap();
    assert_eq!(r.status, 200, "{}", r.body);
    assert_eq!(r.body["status"], 500, "{}", r.body);
    assert!(
        r.body["result"]
            .as_str()
            .unwrap()
            .contains("permission denied"),
        "{}",
        r.body
    );
    // With `X-Cff-Log-Type: tail` the log is returned too; it is kept in the record either way.
    let records = call(
        &c,
        Method::GET,
        &format!("/v2/{pid}/fgs/functions/audit/invocations"),
        None,
    )
    .await;
    let log = records.body["invocations"][0]["log"].as_str().unwrap();
    assert!(log.contains("no agency"), "{log}");
    assert!(log.contains("Finish invoke request"), "{log}");
}

#[tokio::test]
async fn bad_function_definitions_get_precise_fss_errors() {
    let server = Server::start();
    let c = server.admin_password().await;
    let pid = c.project_id().to_owned();
    let path = format!("/v2/{pid}/fgs/functions");
    let base = json!({"func_name": "f", "package": "default", "runtime": "builtin",
                      "handler": "login_audit", "memory_size": 128, "timeout": 3,
                      "user_data": json!({"SMN_Topic": "t", "RegionName": "local", "IP": "10.0.0.1"}).to_string()});
    let with = |k: &str, v: Value| {
        let mut b = base.clone();
        b[k] = v;
        b
    };
    let cases: Vec<(Value, &str)> = vec![
        (
            with("runtime", json!("Node.js16.17")),
            "runtime `Node.js16.17`",
        ),
        // Python is a runtime now (tests/python.rs); its handlers are `module.function` and it
        // needs code.
        (
            with("runtime", json!("Python3.9")),
            "must be `module.function`",
        ),
        (with("runtime", json!("Python2.7")), "is Python 2"),
        (with("handler", json!("index.handler")), "unknown handler"),
        (with("memory_size", json!(100)), "memory_size"),
        (with("timeout", json!(1000)), "timeout"),
        (with("user_data", json!("[1,2]")), "user_data"),
        (
            with(
                "user_data",
                json!(json!({"SMN_Topic": "t", "RegionName": "r", "IP": "10.0.0.300"}).to_string()),
            ),
            "10.0.0.300",
        ),
        (with("func_name", json!("9starts-with-digit")), "func_name"),
    ];
    for (body, needle) in cases {
        let r = call(&c, Method::POST, &path, Some(body.clone())).await;
        assert_eq!(r.status, 400, "{body} -> {}", r.body);
        assert_eq!(r.body["error_code"], "FSS.0400");
        assert!(
            r.body["error_msg"].as_str().unwrap().contains(needle),
            "{needle}: {}",
            r.body
        );
    }
    let r = c
        .raw(Method::POST, &path, "", Some(b"{nope".to_vec()), true)
        .await
        .unwrap();
    assert_eq!(
        (r.status.as_u16(), r.body["error_code"].as_str()),
        (400, Some("FSS.0400"))
    );

    // A good one, then a duplicate, a bad trigger, an unknown function.
    assert_eq!(
        call(&c, Method::POST, &path, Some(base.clone()))
            .await
            .status,
        201
    );
    let dup = call(&c, Method::POST, &path, Some(base)).await;
    assert_eq!(
        (dup.status.as_u16(), dup.body["error_code"].as_str()),
        (409, Some("FSS.0409"))
    );
    let trig = format!("/v2/{pid}/fgs/triggers/f");
    for (event_data, ty, needle) in [
        (json!({"operations": ["IAM:user"]}), "CTS", "IAM:user"),
        (
            json!({"schedule_type": "Rate", "schedule": "61m"}),
            "TIMER",
            "61m",
        ),
        (
            json!({"schedule_type": "Cron", "schedule": "* * *"}),
            "TIMER",
            "Cron",
        ),
        (json!({"name": "x"}), "KAFKA", "KAFKA"),
    ] {
        let r = call(
            &c,
            Method::POST,
            &trig,
            Some(json!({"trigger_type_code": ty, "event_data": event_data})),
        )
        .await;
        assert_eq!(r.status, 400, "{}", r.body);
        assert!(
            r.body["error_msg"].as_str().unwrap().contains(needle),
            "{needle}: {}",
            r.body
        );
    }
    let r = call(
        &c,
        Method::GET,
        &format!("/v2/{pid}/fgs/functions/nope/config"),
        None,
    )
    .await;
    assert_eq!(
        (r.status.as_u16(), r.body["error_code"].as_str()),
        (404, Some("FSS.0404"))
    );
    // Encrypted user data is never returned in clear.
    let r = call(
        &c,
        Method::PUT,
        &format!("/v2/{pid}/fgs/functions/f/config"),
        Some(json!({"encrypted_user_data": json!({"IP": "10.9.9.9"}).to_string()})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    assert!(!r.body.to_string().contains("10.9.9.9"));
    let got = call(
        &c,
        Method::GET,
        &format!("/v2/{pid}/fgs/functions/f/config"),
        None,
    )
    .await;
    assert!(!got.body.to_string().contains("10.9.9.9"), "{}", got.body);
}

#[tokio::test]
async fn log_alarm_with_eight_overlapping_invocations_appends_every_line_exactly_once() {
    let server = Server::start();
    let c = std::sync::Arc::new(server.admin_password().await);
    let pid = c.project_id().to_owned();
    let receiver = Receiver::start().await;
    let topic = create_topic(&c, "log_alarms", "").await;
    subscribe_confirmed(&c, &topic, &receiver, json!({})).await;
    agency_with_roles(&c, "log_trust", &["SMN Administrator", "OBS Administrator"]).await;
    let user_data = json!({"SMN_Topic": "log_alarms", "RegionName": "local",
                           "obs_store_bucket": "alarm-logs", "obs_store_objName": "alarms.log"})
    .to_string();
    let r = call(
        &c,
        Method::POST,
        &format!("/v2/{pid}/fgs/functions"),
        Some(
            json!({"func_name": "log_alarm", "package": "default", "runtime": "builtin",
                    "handler": "log_alarm", "memory_size": 128, "timeout": 30,
                    "user_data": user_data, "xrole": "log_trust", "max_instance_num": 8}),
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);

    // Eight LTS events, each with its own warning and error lines, invoked at the same time.
    let mut tasks = Vec::new();
    for i in 0..8 {
        let logs = json!([
            {"message": format!("2026-11-25 10:00:0{i} INFO request {i} ok"), "time": 1, "line_no": 1},
            {"message": format!("2026-11-25 10:00:0{i} [WRN] disk {i} at 91%"), "time": 2, "line_no": 2},
            {"message": format!("2026-11-25 10:00:0{i} ERROR job {i} failed"), "time": 3, "line_no": 3},
        ]);
        let data = json!({"logs": logs.to_string(), "owner": pid, "log_group_id": "g", "log_topic_id": "t"});
        use base64::Engine as _;
        let event = json!({"lts": {"data": base64::engine::general_purpose::STANDARD.encode(data.to_string())}});
        let c = c.clone();
        let path = format!("/v2/{pid}/fgs/functions/log_alarm/invocations");
        tasks.push(tokio::spawn(async move {
            c.raw(
                Method::POST,
                &path,
                "",
                Some(event.to_string().into_bytes()),
                true,
            )
            .await
            .unwrap()
        }));
    }
    for t in tasks {
        let r = t.await.unwrap();
        assert_eq!(r.body["status"], 200, "{}", r.body);
    }
    let object =
        std::fs::read_to_string(server.data_dir.join("objects/alarm-logs/alarms.log")).unwrap();
    let lines: Vec<&str> = object.lines().collect();
    assert_eq!(lines.len(), 16, "{object}");
    for i in 0..8 {
        for needle in [format!("disk {i} at 91%"), format!("job {i} failed")] {
            assert_eq!(
                lines.iter().filter(|l| l.contains(&needle)).count(),
                1,
                "{needle}\n{object}"
            );
        }
    }
    assert!(!object.contains("INFO"));
    let alarms = receiver
        .wait_for("Notification", 8, Duration::from_secs(20))
        .await;
    assert!(alarms.iter().all(|m| m.body["subject"] == "TimeTrigger"));
}

#[tokio::test]
async fn lts_trigger_feeds_reported_lines_to_log_alarm_in_order_and_once() {
    let server = Server::start();
    let c = server.admin_password().await;
    let pid = c.project_id().to_owned();
    let receiver = Receiver::start().await;
    let topic = create_topic(&c, "log_alarms", "").await;
    subscribe_confirmed(&c, &topic, &receiver, json!({})).await;
    agency_with_roles(&c, "log_trust", &["SMN Administrator", "OBS Administrator"]).await;
    let (gid, sid) = log_group_and_stream(&c, &pid, "app", "web").await;
    let report = format!("/v2/{pid}/lts/groups/{gid}/streams/{sid}/tenant/contents");
    let now_ns = || {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_nanos() as i64
    };
    // Lines reported before the trigger exists are not fed to it.
    let r = call(
        &c,
        Method::POST,
        &report,
        Some(json!({"log_time_ns": now_ns(), "contents": ["ERROR before the trigger"]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);

    let user_data = json!({"SMN_Topic": "log_alarms", "RegionName": "local",
                           "obs_store_bucket": "alarm-logs", "obs_store_objName": "web.log"})
    .to_string();
    let r = call(
        &c,
        Method::POST,
        &format!("/v2/{pid}/fgs/functions"),
        Some(
            json!({"func_name": "log_alarm", "package": "default", "runtime": "builtin",
                    "handler": "log_alarm", "memory_size": 128, "timeout": 30,
                    "user_data": user_data, "xrole": "log_trust"}),
        ),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = lts_trigger(&c, &pid, "log_alarm", &gid, &sid).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["event_data"]["log_topic_name"], "web");

    let mut expected = Vec::new();
    for batch in 0..5 {
        let mut lines = Vec::new();
        for i in 0..20 {
            let n = batch * 20 + i;
            let line = match n % 4 {
                0 => format!("{n:03} level=error msg=\"db down\""),
                1 => format!("{n:03} [WRN] slow request"),
                2 => format!("{n:03} INFO ERRORS_TOTAL=0"),
                _ => format!("{n:03} terror is not a level"),
            };
            if n % 4 < 2 {
                expected.push(line.clone());
            }
            lines.push(line);
        }
        let r = call(
            &c,
            Method::POST,
            &report,
            Some(json!({"log_time_ns": now_ns(), "contents": lines})),
        )
        .await;
        assert_eq!(r.body["accepted"], 20, "{}", r.body);
    }
    let path = server.data_dir.join("objects/alarm-logs/web.log");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut object = String::new();
    while tokio::time::Instant::now() < deadline {
        object = std::fs::read_to_string(&path).unwrap_or_default();
        if object.lines().count() >= expected.len() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let got: Vec<String> = object
        .lines()
        .map(|l| {
            let v: Value = serde_json::from_str(l).unwrap_or_else(|_| json!({"message": l}));
            v["message"].as_str().unwrap_or(l).to_owned()
        })
        .collect();
    assert_eq!(got, expected, "{object}");
    assert!(!object.contains("before the trigger"));
}

#[tokio::test]
async fn async_invocations_are_retried_then_dead_lettered_and_can_be_replayed() {
    let server = Server::start();
    let c = server.admin_password().await;
    let pid = c.project_id().to_owned();
    create_topic(&c, "alarms", "").await;
    let r = call(
        &c,
        Method::POST,
        &format!("/v2/{pid}/fgs/functions"),
        Some(json!({"func_name": "audit", "package": "default", "runtime": "builtin",
                    "handler": "login_audit", "memory_size": 128, "timeout": 3,
                    "user_data": json!({"SMN_Topic": "alarms", "RegionName": "local", "IP": "10.0.0.0/8"}).to_string()})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let invoke = format!("/v2/{pid}/fgs/functions/audit/invocations-async");
    // Allowed address: succeeds at once. Disallowed: the function has no agency to publish
    // with, so every attempt fails.
    let ok = call(
        &c,
        Method::POST,
        &invoke,
        Some(json!({"cts": trace("login", "10.1.2.3", 1)})),
    )
    .await;
    assert_eq!(ok.status, 202, "{}", ok.body);
    let bad = call(
        &c,
        Method::POST,
        &invoke,
        Some(json!({"cts": trace("login", "203.0.113.1", 2)})),
    )
    .await;
    assert_eq!(bad.status, 202);
    let bad_id = bad.body["request_id"].as_str().unwrap().to_owned();

    // Two retries (after 1 s and 4 s), then a dead letter.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let dead = loop {
        let d = call(
            &c,
            Method::GET,
            &format!("/v2/{pid}/fgs/dead-letters"),
            None,
        )
        .await;
        if d.body["count"] == 1 || tokio::time::Instant::now() > deadline {
            break d;
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(dead.body["count"], 1, "{}", dead.body);
    let letter = &dead.body["dead_letters"][0];
    assert_eq!(letter["request_id"], bad_id.as_str());
    assert_eq!(letter["attempts"], 3);
    assert_eq!(letter["event"]["cts"]["source_ip"], "203.0.113.1");
    assert!(
        letter["log"]
            .as_str()
            .unwrap()
            .contains("permission denied"),
        "{letter}"
    );
    let records = call(
        &c,
        Method::GET,
        &format!("/v2/{pid}/fgs/functions/audit/invocations"),
        None,
    )
    .await;
    let states: Vec<&str> = records.body["invocations"]
        .as_array()
        .unwrap()
        .iter()
        .map(|i| i["state"].as_str().unwrap())
        .collect();
    assert!(
        states.contains(&"succeeded") && states.contains(&"dead"),
        "{states:?}"
    );

    // Replay queues it again with a fresh budget (it fails again: still no agency).
    let r = call(
        &c,
        Method::POST,
        &format!("/v2/{pid}/fgs/dead-letters/replay"),
        Some(json!({"request_ids": [bad_id]})),
    )
    .await;
    assert_eq!(r.body["replayed"], 1, "{}", r.body);
    let d = call(
        &c,
        Method::GET,
        &format!("/v2/{pid}/fgs/dead-letters"),
        None,
    )
    .await;
    assert_eq!(d.body["count"], 0);
}

#[tokio::test]
async fn smn_trigger_hands_each_published_message_to_the_function_once() {
    let server = Server::start();
    let c = server.admin_password().await;
    let pid = c.project_id().to_owned();
    let topic = create_topic(&c, "to_function", "").await;
    let r = call(
        &c,
        Method::POST,
        &format!("/v2/{pid}/fgs/functions"),
        Some(json!({"func_name": "audit", "package": "default", "runtime": "builtin",
                    "handler": "login_audit", "memory_size": 128, "timeout": 3,
                    "user_data": json!({"SMN_Topic": "to_function", "RegionName": "local", "IP": "10.0.0.0/8"}).to_string()})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = call(
        &c,
        Method::POST,
        &format!("/v2/{pid}/fgs/triggers/audit"),
        Some(json!({"trigger_type_code": "SMN", "event_data": {"topic_urn": topic}})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["event_data"]["subscription_status"], "Confirmed");
    let trigger_id = r.body["trigger_id"].as_str().unwrap().to_owned();
    // A second SMN trigger on the same topic would share the subscription: refused.
    let again = call(
        &c,
        Method::POST,
        &format!("/v2/{pid}/fgs/triggers/audit"),
        Some(json!({"trigger_type_code": "SMN", "event_data": {"topic_urn": topic}})),
    )
    .await;
    assert_eq!(again.status, 409, "{}", again.body);
    let subs = call(
        &c,
        Method::GET,
        &format!("/v2/{pid}/notifications/topics/{topic}/subscriptions"),
        None,
    )
    .await;
    assert_eq!(
        subs.body["subscriptions"][0]["protocol"], "functionstage",
        "{}",
        subs.body
    );

    let message_id = common::smn::publish(
        &c,
        &topic,
        json!({"subject": "hello", "message": "from SMN"}),
    )
    .await;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(15);
    let record = loop {
        let r = call(
            &c,
            Method::GET,
            &format!("/v2/{pid}/fgs/functions/audit/invocations"),
            None,
        )
        .await;
        if let Some(i) = r.body["invocations"]
            .as_array()
            .and_then(|a| a.first().cloned())
        {
            break i;
        }
        assert!(tokio::time::Instant::now() < deadline, "no invocation");
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        record["request_id"].as_str().unwrap().contains(&message_id),
        "{record}"
    );
    assert!(
        record["trigger"].as_str().unwrap().starts_with("SMN:"),
        "{record}"
    );
    // login_audit is a CTS function: the SMN event is refused with a clear line, not passed.
    assert!(
        record["log"].as_str().unwrap_or_default().contains("cts"),
        "{record}"
    );

    // Deleting the trigger removes the subscription.
    let r = call(
        &c,
        Method::DELETE,
        &format!("/v2/{pid}/fgs/triggers/audit/SMN/{trigger_id}"),
        None,
    )
    .await;
    assert_eq!(r.status, 204);
    let subs = call(
        &c,
        Method::GET,
        &format!("/v2/{pid}/notifications/topics/{topic}/subscriptions"),
        None,
    )
    .await;
    assert_eq!(
        subs.body["subscriptions"].as_array().unwrap().len(),
        0,
        "{}",
        subs.body
    );
}
