//! Helpers for the FunctionGraph tests: raw API calls, code packages, agencies, invocation records.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::Write as _;

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use trailwatch_client::{Client, RawResponse};

/// Creates an LTS log group and a log stream in it; returns their ids.
pub async fn log_group_and_stream(
    c: &Client,
    pid: &str,
    group: &str,
    stream: &str,
) -> (String, String) {
    let g = call(
        c,
        Method::POST,
        &format!("/v2/{pid}/groups"),
        Some(json!({"log_group_name": group})),
    )
    .await;
    assert_eq!(g.status, 201, "{}", g.body);
    let gid = g.body["log_group_id"].as_str().unwrap().to_owned();
    let s = call(
        c,
        Method::POST,
        &format!("/v2/{pid}/groups/{gid}/streams"),
        Some(json!({"log_stream_name": stream})),
    )
    .await;
    assert_eq!(s.status, 201, "{}", s.body);
    let sid = s.body["log_stream_id"].as_str().unwrap().to_owned();
    (gid, sid)
}

/// Creates an LTS trigger (`MessageCreated`) on log group `gid`, log topic `sid` for function
/// `func`; the response whatever its status.
pub async fn lts_trigger(c: &Client, pid: &str, func: &str, gid: &str, sid: &str) -> RawResponse {
    call(
        c,
        Method::POST,
        &format!("/v2/{pid}/fgs/triggers/{func}"),
        Some(
            json!({"trigger_type_code": "LTS", "event_type_code": "MessageCreated",
                    "event_data": {"log_group_id": gid, "log_topic_id": sid}}),
        ),
    )
    .await
}

/// A signed call with an optional JSON body; the response whatever its status.
pub async fn call(c: &Client, method: Method, path: &str, body: Option<Value>) -> RawResponse {
    c.raw(
        method,
        path,
        "",
        body.map(|b| b.to_string().into_bytes()),
        true,
    )
    .await
    .unwrap()
}

/// A zip of `(name, content)` files, base64-encoded as the FunctionGraph API takes code.
pub fn zip_b64(files: &[(&str, &str)]) -> String {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in files {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(body.as_bytes()).unwrap();
    }
    base64::engine::general_purpose::STANDARD.encode(w.finish().unwrap().into_inner())
}

/// The caller's domain id, from the projects it can see.
pub async fn domain_id(c: &Client) -> String {
    let r = call(c, Method::GET, "/v3/auth/projects", None).await;
    r.body["projects"][0]["domain_id"]
        .as_str()
        .unwrap()
        .to_owned()
}

/// Creates agency `name` trusting the function service and grants it `roles` (display names)
/// in the client's project.
pub async fn agency_with_roles(c: &Client, name: &str, roles: &[&str]) {
    let domain = domain_id(c).await;
    let r = call(
        c,
        Method::POST,
        "/v3.0/OS-AGENCY/agencies",
        Some(json!({"agency": {"name": name, "domain_id": domain, "trust_domain_name": "op_svc_cff"}})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let agency = r.body["agency"]["id"].as_str().unwrap().to_owned();
    let listed = call(c, Method::GET, "/v3/roles", None).await;
    for role in roles {
        let id = listed.body["roles"]
            .as_array()
            .unwrap()
            .iter()
            .find(|r| r["display_name"] == *role)
            .unwrap_or_else(|| panic!("role {role} not listed"))["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = format!(
            "/v3.0/OS-AGENCY/projects/{}/agencies/{agency}/roles/{id}",
            c.project_id()
        );
        assert_eq!(call(c, Method::PUT, &path, None).await.status, 204);
    }
}

/// The invocation records of function `name`, as the invocations API lists them.
pub async fn records(c: &Client, name: &str) -> Vec<Value> {
    let r = call(
        c,
        Method::GET,
        &format!("/v2/{}/fgs/functions/{name}/invocations", c.project_id()),
        None,
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    r.body["invocations"].as_array().unwrap().clone()
}
