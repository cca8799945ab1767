//! The official Huawei Cloud Python SDKs (`huaweicloudsdkcts`, `huaweicloudsdksmn`, from PyPI;
//! `.ci/run` installs them) work unchanged against trailwatch: AK/SK signing, paths, bodies and
//! the error shapes they parse.
#![allow(clippy::unwrap_used)]

mod common;

use common::{ADMIN_AK, ADMIN_SK, Server, login_trace};
use serde_json::Value;

/// Runs a Python script with the SDK credentials in the environment; returns its stdout lines
/// parsed as JSON. Fails (never skips) when the SDKs are missing: run `bash .ci/run`.
fn python(server: &Server, project_id: &str, script: &str) -> Vec<Value> {
    let out = std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("TW_ENDPOINT", &server.url)
        .env("TW_AK", ADMIN_AK)
        .env("TW_SK", ADMIN_SK)
        .env("TW_PROJECT", project_id)
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "python failed (are huaweicloudsdkcts and huaweicloudsdksmn installed? `bash .ci/run` installs them):\n{stderr}"
    );
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|_| panic!("not JSON: {l}")))
        .collect()
}

const PRELUDE: &str = r#"
import json, os
from huaweicloudsdkcore.auth.credentials import BasicCredentials
from huaweicloudsdkcore.exceptions import exceptions
creds = BasicCredentials(os.environ["TW_AK"], os.environ["TW_SK"], os.environ["TW_PROJECT"])
def out(**kw): print(json.dumps(kw))
"#;

#[tokio::test]
async fn huawei_cts_sdk_lists_traces() {
    let server = Server::start();
    let client = server.admin().await;
    client
        .put_traces(&[
            login_trace("alice", "203.0.113.17", 1_731_161_042_113),
            login_trace("bob", "10.0.0.1", 1_731_161_043_113),
        ])
        .await
        .unwrap();
    let script = format!(
        r#"{PRELUDE}
from huaweicloudsdkcts.v3 import CtsClient, ListTracesRequest
client = CtsClient.new_builder().with_credentials(creds).with_endpoint(os.environ["TW_ENDPOINT"]).build()
resp = client.list_traces(ListTracesRequest(trace_type="system", trace_name="login", user="alice", limit=10))
out(count=resp.meta_data.count, traces=[[t.trace_name, t.source_ip, t.user.name, t.code] for t in resp.traces])
try:
    client.list_traces(ListTracesRequest(trace_type="system", limit=500))
except exceptions.ClientRequestException as e:
    out(status=e.status_code, error_code=e.error_code, error_msg=e.error_msg)
"#
    );
    let lines = python(&server, client.project_id(), &script);
    assert_eq!(lines[0]["count"], 1, "{lines:?}");
    assert_eq!(
        lines[0]["traces"][0],
        serde_json::json!(["login", "203.0.113.17", "alice", "302"])
    );
    assert_eq!(lines[1]["status"], 400, "{lines:?}");
    assert_eq!(lines[1]["error_code"], "CTS.0300");
    assert!(lines[1]["error_msg"].as_str().unwrap().contains("limit"));
}

#[tokio::test]
async fn huawei_smn_sdk_manages_topics_and_publishes() {
    let server = Server::start();
    let client = server.admin().await;
    let script = format!(
        r#"{PRELUDE}
from huaweicloudsdksmn.v2 import *
client = SmnClient.new_builder().with_credentials(creds).with_endpoint(os.environ["TW_ENDPOINT"]).build()
t = client.create_topic(CreateTopicRequest(body=CreateTopicRequestBody(name="cts_test", display_name="Audit")))
topics = client.list_topics(ListTopicsRequest())
r = client.publish_message(PublishMessageRequest(topic_urn=t.topic_urn, body=PublishMessageRequestBody(subject="CTSTrigger", message="Illegal operation")))
s = client.add_subscription(AddSubscriptionRequest(topic_urn=t.topic_urn, body=AddSubscriptionRequestBody(protocol="https", endpoint="https://alerts.example.com/hook", remark="ops")))
subs = client.list_subscriptions(ListSubscriptionsRequest())
out(topic=t.topic_urn, names=[x.name for x in topics.topics], count=topics.topic_count, message_id=r.message_id,
    sub=s.subscription_urn, subs=[[x.protocol, x.status, x.endpoint] for x in subs.subscriptions])
try:
    client.publish_message(PublishMessageRequest(topic_urn=t.topic_urn + "-missing", body=PublishMessageRequestBody(message="x")))
except exceptions.ClientRequestException as e:
    out(status=e.status_code, error_code=e.error_code, error_msg=e.error_msg)
"#
    );
    let lines = python(&server, client.project_id(), &script);
    let pid = client.project_id();
    assert_eq!(lines[0]["topic"], format!("urn:smn:local:{pid}:cts_test"));
    assert_eq!(lines[0]["names"], serde_json::json!(["cts_test"]));
    assert_eq!(lines[0]["count"], 1);
    assert_eq!(lines[0]["message_id"].as_str().unwrap().len(), 32);
    assert!(
        lines[0]["sub"]
            .as_str()
            .unwrap()
            .starts_with(&format!("urn:smn:local:{pid}:cts_test:"))
    );
    assert_eq!(
        lines[0]["subs"],
        serde_json::json!([["https", 0, "https://alerts.example.com/hook"]])
    );
    assert_eq!(lines[1]["status"], 404, "{lines:?}");
    assert_eq!(lines[1]["error_code"], "SMN.0006");
}
