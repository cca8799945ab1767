//! The tutorial's second function (examples/functions/log_alarm_py: its LTS log alarm, logic
//! corrected, the OBS SDK replaced by boto3 S3 calls) through the real binary and the
//! FunctionGraph API only, against a real S3-compatible server (moto): deployed as a base64 zip
//! with user data and encrypted user data (the store's S3 credentials) behind an LTS trigger, it
//! alarms exactly the WARN/ERROR lines at an HTTP subscriber of its SMN topic — not the INFO
//! lines that merely contain `error` or `ERR` — and appends exactly those records to one object
//! in the bucket, a second batch after the first. moto checks signatures (`/moto-api/reset-auth`),
//! so the writes prove the function used the key from its encrypted user data.
//!
//! Needs `python3` (or `TW_PYTHON`) with `requests` and `boto3`, and `moto_server`
//! (`TW_MOTO_SERVER`, else on `PATH`; `.ci/run` installs `moto[server]`, which brings boto3).
//! Without moto the test fails saying how to install it.
#![allow(clippy::unwrap_used)]

mod common;

use std::process::Command;
use std::time::Duration;

use common::Server;
use common::fgs::{agency_with_roles, call, log_group_and_stream, lts_trigger, records, zip_b64};
use common::receiver::Receiver;
use common::smn::{create_topic, subscribe_confirmed};
use reqwest::Method;
use serde_json::{Value, json};
use trailwatch_client::Client;

const TUTORIAL: &str = include_str!("../../../examples/functions/log_alarm_py/index.py");
const BUCKET: &str = "alarm-logs";
const OBJECT: &str = "alarms/app.log";
const PREFIX: &str = "Get warning message.The content of message is:";

fn start() -> Server {
    match std::env::var("TW_PYTHON") {
        Ok(p) => Server::start_with_config(&format!(
            "version = 1\n[python]\ninterpreter = {}\n",
            Value::String(p)
        )),
        Err(_) => Server::start(),
    }
}

// moto is started as the archive's S3 tests start it.
#[path = "../../trailwatch-archive/tests/common/moto.rs"]
#[allow(dead_code, clippy::expect_used)]
mod moto;

use moto::Moto;

/// Makes moto check credentials from its 5th request on (`/moto-api/reset-auth`), then, with
/// the 4 requests left, creates the bucket and an IAM user allowed `s3:*` with an access key:
/// from then on only that key (and its secret) reads or writes. Prints `key_id secret`.
const SETUP: &str = r#"
import json, sys, urllib.request, boto3
url, bucket = sys.argv[1], sys.argv[2]
req = urllib.request.Request(url + "/moto-api/reset-auth", data=b"4", method="POST",
                             headers={"Content-Type": "text/plain"})
urllib.request.urlopen(req).read()
kw = dict(endpoint_url=url, aws_access_key_id="setup", aws_secret_access_key="setup",
          region_name="us-east-1")
boto3.client("s3", **kw).create_bucket(Bucket=bucket)
iam = boto3.client("iam", **kw)
iam.create_user(UserName="log-alarm")
iam.put_user_policy(UserName="log-alarm", PolicyName="s3", PolicyDocument=json.dumps(
    {"Version": "2012-10-17",
     "Statement": [{"Effect": "Allow", "Action": "s3:*", "Resource": "*"}]}))
key = iam.create_access_key(UserName="log-alarm")["AccessKey"]
print(key["AccessKeyId"], key["SecretAccessKey"])
"#;

/// Reads the object back with boto3 and the key: `None` when there is no such object.
const READ_OBJECT: &str = r#"
import sys, boto3, botocore.exceptions
s3 = boto3.client("s3", endpoint_url=sys.argv[1], aws_access_key_id=sys.argv[4],
                  aws_secret_access_key=sys.argv[5], region_name="us-east-1")
try:
    body = s3.get_object(Bucket=sys.argv[2], Key=sys.argv[3])["Body"].read()
except botocore.exceptions.ClientError as e:
    if e.response["Error"]["Code"] == "NoSuchKey":
        sys.exit(3)
    raise
sys.stdout.buffer.write(body)
"#;

fn python(moto: &Moto, script: &str, args: &[&str]) -> std::process::Output {
    Command::new(&moto.python)
        .arg("-c")
        .arg(script)
        .arg(moto.url())
        .arg(BUCKET)
        .args(args)
        .output()
        .unwrap()
}

/// Creates the bucket and the function's S3 key (`SETUP`): (key id, secret).
fn setup_store(moto: &Moto) -> (String, String) {
    let out = python(moto, SETUP, &[]);
    assert!(
        out.status.success(),
        "set up moto with boto3 ({}): {}",
        moto.python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let (id, secret) = text.trim().split_once(' ').unwrap();
    (id.to_owned(), secret.to_owned())
}

fn read_object(moto: &Moto, key: &(String, String)) -> Option<String> {
    let out = python(moto, READ_OBJECT, &[OBJECT, &key.0, &key.1]);
    if out.status.code() == Some(3) {
        return None;
    }
    assert!(
        out.status.success(),
        "read s3://{BUCKET}/{OBJECT} with boto3 ({}): {}",
        moto.python.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    Some(String::from_utf8(out.stdout).unwrap())
}

// ---- the FunctionGraph API (as tests/python.rs calls it) ----

/// Waits until the function has `n` invocation records, then returns them.
async fn wait_records(c: &Client, name: &str, n: usize) -> Vec<Value> {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let recs = records(c, name).await;
        if recs.len() >= n {
            return recs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} of {n} invocations after 60 s: {recs:#?}",
            recs.len()
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn push_lines(c: &Client, gid: &str, sid: &str, lines: &[&str]) {
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let r = call(
        c,
        Method::POST,
        &format!(
            "/v2/{}/lts/groups/{gid}/streams/{sid}/tenant/contents",
            c.project_id()
        ),
        Some(json!({"log_time_ns": now_ns, "contents": lines})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
}

/// The `message` of each record of a JSON array.
fn messages(records: &Value) -> Vec<String> {
    records
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["message"].as_str().unwrap().to_owned())
        .collect()
}

/// The messages of the records stored in the object, one JSON record per line.
fn stored(text: &str) -> Vec<String> {
    assert!(text.ends_with('\n'), "{text:?}");
    let records: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{e}: {l:?}")))
        .collect();
    messages(&Value::Array(records))
}

/// The records of one alarm notification.
fn alarmed(message: &Value) -> Vec<String> {
    let text = message["message"].as_str().unwrap();
    let json = text
        .strip_prefix(PREFIX)
        .unwrap_or_else(|| panic!("{text}"));
    messages(&serde_json::from_str(json).unwrap())
}

#[tokio::test]
async fn the_tutorial_lts_function_alarms_and_stores_exactly_the_warn_and_error_lines() {
    let moto = moto::start_moto_server();
    let key = setup_store(&moto);
    // moto now checks signatures: only this key works, not the agency's temporary AK/SK.
    let wrong = python(&moto, READ_OBJECT, &[OBJECT, &key.0, "not-the-secret"]);
    let stderr = String::from_utf8_lossy(&wrong.stderr);
    assert!(
        !wrong.status.success() && stderr.contains("SignatureDoesNotMatch"),
        "{stderr}"
    );

    let server = start();
    let c = server.admin_password().await;
    let pid = c.project_id().to_owned();
    let receiver = Receiver::start().await;
    let topic = create_topic(&c, "lts_alarm", "log alarm").await;
    let region = topic.split(':').nth(2).unwrap().to_owned();
    subscribe_confirmed(&c, &topic, &receiver, json!({})).await;
    agency_with_roles(&c, "serverless_trust", &["SMN Administrator"]).await;

    let (gid, sid) = log_group_and_stream(&c, &pid, "app", "web").await;

    // Deployed as the README says: a zip, user data for the topic and the store, the store's
    // S3 credentials as encrypted user data, an agency for the SMN token.
    let user_data = json!({"SMN_Topic": "lts_alarm", "RegionName": region,
                           "obs_address": moto.url(), "obs_store_bucket": BUCKET,
                           "obs_store_objName": OBJECT});
    let secrets = json!({"obs_access_key_id": key.0, "obs_secret_access_key": key.1});
    let body = json!({"func_name": "log_alarm_py", "package": "default", "runtime": "Python3.9",
                      "handler": "index.handler", "memory_size": 512, "timeout": 30,
                      "code_type": "zip", "func_code": {"file": zip_b64(&[("index.py", TUTORIAL)])},
                      "user_data": user_data.to_string(),
                      "encrypted_user_data": secrets.to_string(),
                      "xrole": "serverless_trust"});
    let r = call(
        &c,
        Method::POST,
        &format!("/v2/{pid}/fgs/functions"),
        Some(body),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = lts_trigger(&c, &pid, "log_alarm_py", &gid, &sid).await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(read_object(&moto, &key), None);

    // (line, alarms). The tutorial's `"ERR" in json.dumps(log)` alarmed on every line whose
    // record held those letters anywhere, and missed lower-case `error`.
    let first = [
        ("2026-11-26T01:00:00Z INFO service started", false),
        ("2026-11-26T01:00:01Z WARN disk 91% full", true),
        ("2026-11-26T01:00:02Z INFO TERRA sync finished", false),
        ("INFO ERRORS_TOTAL=0 WARNINGS: none, no terror", false),
        (
            "ts=3 level=info msg=\"retrying after ERROR from upstream\"",
            false,
        ),
        (r#"{"level":"info","msg":"error budget fine"}"#, false),
        ("error: disk full on /var", true),
        ("[WRN] slow query", true),
        (
            r#"{"level":"ERROR","msg":"db \"main\" down \\ restart"}"#,
            true,
        ),
        ("ts=4 level=warn msg=\"retry 2\"", true),
    ];
    push_lines(&c, &gid, &sid, &first.map(|l| l.0)).await;
    let expected1: Vec<String> = first
        .iter()
        .filter(|l| l.1)
        .map(|l| l.0.to_owned())
        .collect();
    let got = receiver
        .wait_for("Notification", 1, Duration::from_secs(60))
        .await;
    assert_eq!(got.len(), 1, "{got:#?}");
    assert_eq!(got[0].body["subject"], "TimeTrigger");
    assert_eq!(alarmed(&got[0].body), expected1);
    let recs = wait_records(&c, "log_alarm_py", 1).await;
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["state"], "succeeded", "{recs:#?}");
    assert_eq!(recs[0]["result"], "log store success", "{recs:#?}");
    let log = recs[0]["log"].as_str().unwrap();
    assert!(
        log.contains("store object not found. Create a new OBS object:alarms/app.log"),
        "{log}"
    );
    assert!(!log.contains(&key.1), "{log}");
    assert_eq!(stored(&read_object(&moto, &key).unwrap()), expected1);

    // A second batch appends to the same object; a batch without alarms changes nothing.
    let second = [
        ("INFO all good", false),
        ("2026-11-26T01:05:00Z FATAL out of memory", true),
        ("kernel: CRITICAL temperature", true),
        ("errno 0 after retry", false),
    ];
    push_lines(&c, &gid, &sid, &second.map(|l| l.0)).await;
    let expected2: Vec<String> = second
        .iter()
        .filter(|l| l.1)
        .map(|l| l.0.to_owned())
        .collect();
    let got = receiver
        .wait_for("Notification", 2, Duration::from_secs(60))
        .await;
    assert_eq!(got.len(), 2, "{got:#?}");
    assert_eq!(alarmed(&got[1].body), expected2);
    wait_records(&c, "log_alarm_py", 2).await;
    let all: Vec<String> = expected1.iter().chain(&expected2).cloned().collect();
    assert_eq!(stored(&read_object(&moto, &key).unwrap()), all);

    push_lines(&c, &gid, &sid, &["INFO quiet", "DEBUG TERRA ok"]).await;
    let recs = wait_records(&c, "log_alarm_py", 3).await;
    assert!(
        recs.iter()
            .any(|r| r["result"] == "no need to send alarm message"),
        "{recs:#?}"
    );
    assert!(recs.iter().all(|r| r["state"] == "succeeded"), "{recs:#?}");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.of_type("Notification").len(), 2);
    assert_eq!(stored(&read_object(&moto, &key).unwrap()), all);
}
