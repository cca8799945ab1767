//! The `functions`, `triggers` and `agencies` commands run as a user would, and the tutorial's
//! whole setup declared in a configuration file: applied at start, alarming, idempotent across
//! restarts, and refused with a precise error when a declaration is wrong.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use common::receiver::{Receiver, verify_signed};
use common::smn::{create_topic, subscribe_confirmed};
use common::{ADMIN_AK, ADMIN_PASSWORD, ADMIN_SK, Server};
use reqwest::Method;
use serde_json::{Value, json};
use trailwatch_client::Client;

/// Runs the CLI against `server` as the administrator (AK/SK), off the async workers.
async fn cli(server: &Server, args: &[&str]) -> Output {
    let args: Vec<String> = args.iter().map(|s| s.to_string()).collect();
    let url = server.url.clone();
    tokio::task::spawn_blocking(move || {
        Command::new(common::bin())
            .args(&args)
            .env("TRAILWATCH_ENDPOINT", url)
            .env("TRAILWATCH_AK", ADMIN_AK)
            .env("TRAILWATCH_SK", ADMIN_SK)
            .env_remove("TRAILWATCH_USER")
            .env_remove("TRAILWATCH_PASSWORD")
            .env_remove("TRAILWATCH_PROFILE")
            .env("HOME", "/nonexistent-home")
            .output()
            .unwrap()
    })
    .await
    .unwrap()
}

fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Runs the CLI and expects success; returns stdout.
async fn ok(server: &Server, args: &[&str]) -> String {
    let o = cli(server, args).await;
    assert!(
        o.status.success(),
        "{args:?} failed ({:?}):\nstdout: {}\nstderr: {}",
        o.status.code(),
        stdout(&o),
        stderr(&o)
    );
    stdout(&o)
}

/// Runs the CLI and expects exit status `code`; returns stderr.
async fn fails(server: &Server, args: &[&str], code: i32) -> String {
    let o = cli(server, args).await;
    assert_eq!(
        o.status.code(),
        Some(code),
        "{args:?}:\nstdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    assert!(
        !stderr(&o).contains("panicked"),
        "{args:?} panicked: {}",
        stderr(&o)
    );
    stderr(&o)
}

fn json_list(text: &str) -> Vec<Value> {
    serde_json::from_str(text).unwrap_or_else(|e| panic!("not a JSON list ({e}): {text}"))
}

fn login(ip: &str, n: u32) -> Value {
    json!({
        "trace_id": format!("cli-trace-{n}"),
        "trace_name": "login",
        "trace_type": "ConsoleAction",
        "trace_rating": "normal",
        "service_type": "IAM",
        "resource_type": "user",
        "resource_name": "alice",
        "source_ip": ip,
        "code": 302,
        "time": 1_764_000_000_000_i64 + i64::from(n),
        "user": {"name": "alice", "id": "id-alice", "domain": {"name": "acme", "id": "d1"}},
    })
}

fn alarm(ip: &str) -> String {
    format!("Illegal operation[  IP:{ip},  Action:login]")
}

async fn wait_until<F, Fut>(what: &str, mut done: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let deadline = Instant::now() + Duration::from_secs(20);
    while !done().await {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn functions_triggers_and_agencies_round_trip_through_the_cli() {
    let server = Server::start();
    let c = server.admin_password().await;
    let pid = c.project_id().to_owned();
    let receiver = Receiver::start().await;
    let topic = create_topic(&c, "cts_test", "Login audit").await;
    subscribe_confirmed(&c, &topic, &receiver, json!({})).await;

    // Agencies: unknown roles create nothing; then one trusting the function service.
    let err = fails(&server, &["agencies", "create", "bad", "--role", "Root"], 2).await;
    assert!(err.contains("role `Root` does not exist"), "{err}");
    let out = ok(
        &server,
        &[
            "agencies",
            "create",
            "serverless_trust",
            "--role",
            "SMN Administrator",
        ],
    )
    .await;
    assert!(out.contains("created agency serverless_trust"), "{out}");
    assert!(
        out.contains(&format!("granted SMN Administrator in project {pid}")),
        "{out}"
    );
    let agencies = json_list(&ok(&server, &["agencies", "list", "--output", "json"]).await);
    assert_eq!(agencies.len(), 1, "{agencies:#?}");
    assert_eq!(agencies[0]["name"], "serverless_trust");
    assert_eq!(agencies[0]["trust_domain_name"], "op_svc_cff");
    assert_eq!(agencies[0]["roles"], json!(["SMN Administrator"]));
    let err = fails(&server, &["agencies", "create", "serverless_trust"], 2).await;
    assert!(err.contains("409"), "{err}");

    // Functions: the API's validation, with its message.
    let err = fails(
        &server,
        &[
            "functions",
            "create",
            "bad",
            "--handler",
            "login_audit",
            "--env",
            "SMN_Topic=cts_test",
            "--env",
            "RegionName=local",
            "--env",
            "IP=10.0.0.1, 10.0.0.300",
        ],
        2,
    )
    .await;
    assert!(err.contains("10.0.0.300") && err.contains("400"), "{err}");
    let err = fails(
        &server,
        &[
            "functions",
            "create",
            "bad",
            "--handler",
            "login_audit",
            "--env",
            "IP",
        ],
        2,
    )
    .await;
    assert!(err.contains("--env `IP` is not KEY=VALUE"), "{err}");
    let out = ok(
        &server,
        &[
            "functions",
            "create",
            "login_audit",
            "--handler",
            "login_audit",
            "--env",
            "SMN_Topic=cts_test",
            "--env",
            "RegionName=local",
            "--env",
            "IP=10.0.0.0/8, 192.168.0.0/16",
            "--agency",
            "serverless_trust",
            "--timeout",
            "10",
            "--description",
            "tutorial",
        ],
    )
    .await;
    assert_eq!(
        out.trim(),
        format!("created urn:fss:local:{pid}:function:default:login_audit:latest")
    );
    let listed = json_list(&ok(&server, &["functions", "list", "--output", "json"]).await);
    assert_eq!(listed.len(), 1, "{listed:#?}");
    assert_eq!(listed[0]["xrole"], "serverless_trust");
    assert_eq!(listed[0]["timeout"], 10);
    let table = ok(&server, &["functions", "list"]).await;
    assert!(table.starts_with("FUNC_NAME"), "{table}");
    assert!(
        table.lines().nth(1).unwrap().starts_with("login_audit"),
        "{table}"
    );

    // Invoke: an alarm (with the log), an allowed login from a file, a failure (exit 1).
    let event = json!({"cts": login("203.0.113.9", 1)}).to_string();
    let o = cli(
        &server,
        &[
            "functions",
            "invoke",
            "login_audit",
            "--event",
            &event,
            "--log",
        ],
    )
    .await;
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o).trim(), "alarm: illegal login from 203.0.113.9");
    assert!(stderr(&o).contains("--- log of request"), "{}", stderr(&o));
    assert!(stderr(&o).contains("published message"), "{}", stderr(&o));
    let got = receiver
        .wait_for("Notification", 1, Duration::from_secs(20))
        .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["message"], alarm("203.0.113.9"));

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("event.json");
    std::fs::write(&file, json!({"cts": login("10.1.2.3", 2)}).to_string()).unwrap();
    let out = ok(
        &server,
        &[
            "functions",
            "invoke",
            "login_audit",
            "--event-file",
            file.to_str().unwrap(),
        ],
    )
    .await;
    assert_eq!(out.trim(), "reasonable login");
    let o = cli(
        &server,
        &[
            "functions",
            "invoke",
            "login_audit",
            "--event",
            "{\"nope\": 1}",
        ],
    )
    .await;
    assert_eq!(o.status.code(), Some(1), "{} {}", stdout(&o), stderr(&o));
    assert!(stdout(&o).contains("errorMessage"), "{}", stdout(&o));
    assert!(
        stderr(&o).contains("the function failed (status 500"),
        "{}",
        stderr(&o)
    );
    let err = fails(
        &server,
        &["functions", "invoke", "login_audit", "--event", "{nope"],
        2,
    )
    .await;
    assert!(err.contains("--event is not valid JSON"), "{err}");

    // Async: a request id now, the record once it ran.
    let request_id = ok(
        &server,
        &[
            "functions",
            "invoke",
            "login_audit",
            "--async",
            "--event",
            &json!({"cts": login("10.0.0.7", 3)}).to_string(),
        ],
    )
    .await
    .trim()
    .to_owned();
    assert_eq!(request_id.len(), 36, "{request_id}");
    wait_until("the async invocation to run", || async {
        let logs = json_list(
            &ok(
                &server,
                &["functions", "logs", "login_audit", "--output", "json"],
            )
            .await,
        );
        logs.iter()
            .any(|l| l["request_id"] == request_id.as_str() && l["state"] == "succeeded")
    })
    .await;
    let logs = json_list(
        &ok(
            &server,
            &[
                "functions",
                "logs",
                "login_audit",
                "--output",
                "json",
                "--limit",
                "2",
            ],
        )
        .await,
    );
    assert_eq!(logs.len(), 2, "{logs:#?}");
    let table = ok(&server, &["functions", "logs", "login_audit"]).await;
    assert!(table.starts_with("TIME"), "{table}");
    assert_eq!(
        table.lines().count(),
        5,
        "a header and four invocations: {table}"
    );
    assert!(
        table.contains("alarm: illegal login from 203.0.113.9"),
        "{table}"
    );
    let stats = ok(
        &server,
        &["functions", "stats", "login_audit", "--minutes", "60"],
    )
    .await;
    assert!(stats.contains("invocations  4\n"), "{stats}");
    assert!(stats.contains("failures     1\n"), "{stats}");
    assert!(stats.contains("throttled    0\n"), "{stats}");
    assert!(stats.contains("duration     avg "), "{stats}");
    assert!(!stats.contains("avg -"), "{stats}");

    // Triggers: CTS, TIMER and LTS; bad ones refused with the reason.
    let err = fails(
        &server,
        &["triggers", "create", "login_audit", "--type", "CTS"],
        2,
    )
    .await;
    assert!(err.contains("needs operations"), "{err}");
    let err = fails(
        &server,
        &[
            "triggers",
            "create",
            "login_audit",
            "--type",
            "CTS",
            "--operations",
            "IAM:user",
        ],
        2,
    )
    .await;
    assert!(err.contains("IAM:user"), "{err}");
    let err = fails(
        &server,
        &[
            "triggers",
            "create",
            "login_audit",
            "--type",
            "LTS",
            "--log-group",
            "nope",
            "--log-stream",
            "nope",
        ],
        2,
    )
    .await;
    assert!(err.contains("does not exist"), "{err}");
    let cts_id = ok(
        &server,
        &[
            "triggers",
            "create",
            "login_audit",
            "--type",
            "CTS",
            "--operations",
            "IAM:user:login;logout",
        ],
    )
    .await
    .trim()
    .to_owned();
    ok(
        &server,
        &[
            "triggers",
            "create",
            "login_audit",
            "--type",
            "timer",
            "--schedule-type",
            "Rate",
            "--schedule",
            "5m",
            "--user-event",
            "tick",
            "--name",
            "every5",
            "--disabled",
        ],
    )
    .await;
    let group = c
        .send(
            Method::POST,
            &format!("/v2/{pid}/groups"),
            "",
            Some(json!({"log_group_name": "app"})),
        )
        .await
        .unwrap();
    let gid = group.body["log_group_id"].as_str().unwrap().to_owned();
    let stream = c
        .send(
            Method::POST,
            &format!("/v2/{pid}/groups/{gid}/streams"),
            "",
            Some(json!({"log_stream_name": "web"})),
        )
        .await
        .unwrap();
    let sid = stream.body["log_stream_id"].as_str().unwrap().to_owned();
    ok(
        &server,
        &[
            "triggers",
            "create",
            "login_audit",
            "--type",
            "LTS",
            "--log-group",
            &gid,
            "--log-stream",
            &sid,
        ],
    )
    .await;
    let triggers = json_list(
        &ok(
            &server,
            &["triggers", "list", "login_audit", "--output", "json"],
        )
        .await,
    );
    assert_eq!(triggers.len(), 3, "{triggers:#?}");
    let timer = triggers
        .iter()
        .find(|t| t["trigger_type_code"] == "TIMER")
        .unwrap();
    assert_eq!(timer["trigger_status"], "DISABLED");
    assert_eq!(timer["event_data"]["name"], "every5");
    assert_eq!(timer["event_data"]["user_event"], "tick");
    let cts = triggers
        .iter()
        .find(|t| t["trigger_type_code"] == "CTS")
        .unwrap();
    assert_eq!(cts["trigger_id"], cts_id.as_str());
    assert_eq!(cts["event_data"]["name"], "login_audit");
    let table = ok(&server, &["triggers", "list", "login_audit"]).await;
    assert!(table.contains("IAM:user:login;logout"), "{table}");
    assert!(table.contains("Rate 5m"), "{table}");
    assert!(table.contains("app/web"), "{table}");

    // The CLI-made CTS trigger runs the function for a disallowed login.
    let r = c.put_traces(&[login("198.51.100.4", 4)]).await.unwrap();
    assert_eq!(r.body["accepted"], 1, "{}", r.body);
    let got = receiver
        .wait_for("Notification", 2, Duration::from_secs(20))
        .await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].body["message"], alarm("198.51.100.4"));

    let out = ok(
        &server,
        &["triggers", "delete", "login_audit", "cts", &cts_id],
    )
    .await;
    assert!(
        out.contains(&format!("deleted CTS trigger {cts_id}")),
        "{out}"
    );
    let triggers = json_list(
        &ok(
            &server,
            &["triggers", "list", "login_audit", "--output", "json"],
        )
        .await,
    );
    assert_eq!(triggers.len(), 2, "{triggers:#?}");
    let err = fails(
        &server,
        &["triggers", "delete", "login_audit", "CTS", &cts_id],
        2,
    )
    .await;
    assert!(err.contains("404"), "{err}");

    // Delete: the function and its triggers are gone.
    let out = ok(&server, &["functions", "delete", "login_audit"]).await;
    assert!(out.contains("deleted login_audit"), "{out}");
    assert_eq!(
        json_list(&ok(&server, &["functions", "list", "--output", "json"]).await).len(),
        0
    );
    let err = fails(&server, &["functions", "invoke", "login_audit"], 2).await;
    assert!(err.contains("does not exist"), "{err}");
}

/// The tutorial's setup as configuration text, with `ips` as the allowlist.
fn tutorial_config(receiver_url: &str, ips: &str) -> String {
    format!(
        r#"version = 1

[[topics]]
name = "cts_test"
display_name = "Login audit"

[[topics.subscriptions]]
protocol = "http"
endpoint = "{receiver_url}"

[[agencies]]
name = "serverless_trust"
roles = ["SMN Administrator"]

[[functions]]
name = "login_audit"
handler = "login_audit"
agency = "serverless_trust"

[functions.env]
SMN_Topic = "cts_test"
RegionName = "local"
IP = "{ips}"

[[functions.triggers]]
type = "CTS"
operations = ["IAM:user:login;logout"]
"#
    )
}

async fn listed(c: &Client, path: &str, key: Option<&str>) -> Vec<Value> {
    let r = c.send(Method::GET, path, "", None).await.unwrap();
    let v = match key {
        Some(k) => r.body[k].clone(),
        None => r.body,
    };
    v.as_array().cloned().unwrap_or_default()
}

/// One of each resource, as declared.
async fn assert_one_of_each(c: &Client) {
    let pid = c.project_id().to_owned();
    let topics = listed(
        c,
        &format!("/v2/{pid}/notifications/topics"),
        Some("topics"),
    )
    .await;
    assert_eq!(topics.len(), 1, "{topics:#?}");
    let subs = listed(
        c,
        &format!("/v2/{pid}/notifications/subscriptions"),
        Some("subscriptions"),
    )
    .await;
    assert_eq!(subs.len(), 1, "{subs:#?}");
    let agencies = listed(c, "/v3.0/OS-AGENCY/agencies", Some("agencies")).await;
    assert_eq!(agencies.len(), 1, "{agencies:#?}");
    let aid = agencies[0]["id"].as_str().unwrap();
    let roles = listed(
        c,
        &format!("/v3.0/OS-AGENCY/projects/{pid}/agencies/{aid}/roles"),
        Some("roles"),
    )
    .await;
    assert_eq!(roles.len(), 1, "{roles:#?}");
    assert_eq!(roles[0]["display_name"], "SMN Administrator");
    let functions = listed(c, &format!("/v2/{pid}/fgs/functions"), Some("functions")).await;
    assert_eq!(functions.len(), 1, "{functions:#?}");
    assert_eq!(functions[0]["xrole"], "serverless_trust");
    let triggers = listed(c, &format!("/v2/{pid}/fgs/triggers/login_audit"), None).await;
    assert_eq!(triggers.len(), 1, "{triggers:#?}");
    assert_eq!(
        triggers[0]["event_data"]["operations"],
        json!(["IAM:user:login;logout"])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tutorial_declared_in_the_config_alarms_and_restarts_create_nothing_twice() {
    let receiver = Receiver::start().await;
    let config = tutorial_config(&receiver.url, "10.0.0.0/8, 192.168.0.0/16");
    let server = Server::start_with_config(&config);
    assert!(
        server
            .stderr()
            .contains("declared resources: 6 created, 0 updated, 0 unchanged"),
        "{}",
        server.stderr()
    );

    // The receiver confirms, as the tutorial's subscriber does.
    let confirmations = receiver
        .wait_for("SubscriptionConfirmation", 1, Duration::from_secs(20))
        .await;
    assert_eq!(confirmations.len(), 1);
    verify_signed(&confirmations[0]).await.unwrap();
    let link = confirmations[0].body["subscribe_url"].as_str().unwrap();
    assert_eq!(reqwest::get(link).await.unwrap().status(), 200);

    let c = server.admin_password().await;
    assert_one_of_each(&c).await;
    let r = c
        .put_traces(&[login("203.0.113.7", 1), login("10.9.8.7", 2)])
        .await
        .unwrap();
    assert_eq!(r.body["accepted"], 2, "{}", r.body);
    let got = receiver
        .wait_for("Notification", 1, Duration::from_secs(20))
        .await;
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].body["message"], alarm("203.0.113.7"));
    assert_eq!(got[0].body["subject"], "CTSTrigger");

    // Restart with the same file: everything is found, nothing is made twice.
    let server = server.restart_with_config(&config);
    let log = server.stderr();
    assert!(
        log.contains("declared resources: 0 created, 0 updated, 6 unchanged"),
        "{log}"
    );
    let c = server.admin_password().await;
    assert_one_of_each(&c).await;
    let r = c.put_traces(&[login("203.0.113.8", 3)]).await.unwrap();
    assert_eq!(r.body["accepted"], 1, "{}", r.body);
    let got = receiver
        .wait_for("Notification", 2, Duration::from_secs(20))
        .await;
    assert_eq!(got.len(), 2);
    assert_eq!(got[1].body["message"], alarm("203.0.113.8"));

    // A changed allowlist updates the function in place.
    let wider = tutorial_config(&receiver.url, "10.0.0.0/8, 192.168.0.0/16, 203.0.113.0/24");
    let server = server.restart_with_config(&wider);
    let log = server.stderr();
    assert!(
        log.contains("updated function default:login_audit"),
        "{log}"
    );
    assert!(
        log.contains("declared resources: 0 created, 1 updated, 5 unchanged"),
        "{log}"
    );
    let c = server.admin_password().await;
    assert_one_of_each(&c).await;
    let r = c
        .put_traces(&[login("203.0.113.9", 4), login("198.51.100.1", 5)])
        .await
        .unwrap();
    assert_eq!(r.body["accepted"], 2, "{}", r.body);
    let got = receiver
        .wait_for("Notification", 3, Duration::from_secs(20))
        .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    let got_now = receiver.of_type("Notification");
    assert_eq!(got.len(), 3);
    assert_eq!(
        got_now.len(),
        3,
        "only the address outside the new list alarms"
    );
    assert_eq!(got_now[2].body["message"], alarm("198.51.100.1"));
    // No second confirmation was ever sent: the subscription was found, not made again.
    assert_eq!(receiver.of_type("SubscriptionConfirmation").len(), 1);
}

/// Runs `trailwatch serve` with `config` until it exits (it must, within 30 s).
fn serve_until_exit(config: &str) -> Output {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("trailwatch.toml");
    std::fs::write(&path, config).unwrap();
    let mut child = Command::new(common::bin())
        .arg("serve")
        .arg("--listen")
        .arg("127.0.0.1:0")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&path)
        .env("TRAILWATCH_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("TRAILWATCH_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().unwrap().is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!(
                "the server did not stop: {:?}",
                child.wait_with_output().unwrap()
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    child.wait_with_output().unwrap()
}

#[test]
fn a_bad_allowlist_entry_stops_the_start_naming_the_function_and_the_entry() {
    let config = tutorial_config("http://127.0.0.1:9/hook", "10.0.0.0/8, 10.0.0.300");
    let out = serve_until_exit(&config);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("line 23, [[functions]] login_audit, env.IP: handler `login_audit`"),
        "{err}"
    );
    assert!(err.contains("10.0.0.300"), "{err}");
    assert!(!stdout(&out).contains("listening on"), "{}", stdout(&out));
}

#[test]
fn a_resource_the_api_refuses_stops_the_server_naming_it() {
    // Valid as a file, but the log group does not exist: only the API can tell.
    let config = r#"
[[topics]]
name = "log_alarms"

[[agencies]]
name = "log_trust"
roles = ["SMN Administrator", "OBS Administrator"]

[[functions]]
name = "log_alarm"
handler = "log_alarm"
agency = "log_trust"
env = { SMN_Topic = "log_alarms", RegionName = "local", obs_store_bucket = "alarm-logs", obs_store_objName = "alarms.log" }

[[functions.triggers]]
type = "LTS"
log_group_id = "no-such-group"
log_stream_id = "no-such-stream"
"#;
    let out = serve_until_exit(config);
    assert_eq!(out.status.code(), Some(2), "{out:?}");
    let err = stderr(&out);
    assert!(
        err.contains("cannot apply the resources declared in")
            && err.contains("function `log_alarm` (line 9): LTS trigger #1 (line 15): 404"),
        "{err}"
    );
    assert!(err.contains("no-such-group"), "{err}");
    assert!(!stdout(&out).contains("listening on"), "{}", stdout(&out));
}

fn example() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/login-audit.toml")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_example_passes_config_check_and_serves_the_tutorial() {
    let out = Command::new(common::bin())
        .args(["config", "check"])
        .arg(example())
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", stdout(&out));
    let text = stdout(&out);
    assert!(text.contains("login-audit.toml: ok"), "{text}");
    assert!(
        text.contains("declares 1 topic(s) with 1 subscription(s), 1 agency(ies), 1 function(s) with 1 trigger(s)"),
        "{text}"
    );

    // Served as is (the harness only picks the port and data directory).
    let server = Server::start_with_config(&std::fs::read_to_string(example()).unwrap());
    let c = server.admin_password().await;
    let pid = c.project_id().to_owned();
    let f = c
        .send(
            Method::GET,
            &format!("/v2/{pid}/fgs/functions/login_audit/config"),
            "",
            None,
        )
        .await
        .unwrap();
    assert_eq!(f.body["handler"], "login_audit");
    assert_eq!(f.body["xrole"], "serverless_trust");
    let triggers = listed(&c, &format!("/v2/{pid}/fgs/triggers/login_audit"), None).await;
    assert_eq!(triggers.len(), 1, "{triggers:#?}");
    assert_eq!(triggers[0]["trigger_type_code"], "CTS");
    let subs = listed(
        &c,
        &format!("/v2/{pid}/notifications/subscriptions"),
        Some("subscriptions"),
    )
    .await;
    assert_eq!(subs.len(), 1, "{subs:#?}");
}
