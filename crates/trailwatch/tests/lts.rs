//! LTS over HTTP against the real binary: log groups and streams, the log-reporting API (batch
//! and high-accuracy forms), queries, bad input, and durability across `kill -9`.
#![allow(clippy::unwrap_used)]

mod common;

use common::Server;
use reqwest::Method;
use serde_json::{Value, json};
use trailwatch_client::{Client, ClientError};

fn now_ns() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64
}

async fn api_err(r: Result<trailwatch_client::RawResponse, ClientError>) -> (u16, Value) {
    match r {
        Err(ClientError::Api { status, body, .. }) => (status.as_u16(), body),
        Ok(r) => panic!("expected an error, got {} {}", r.status, r.body),
        Err(e) => panic!("expected an API error, got {e}"),
    }
}

/// Creates a group with one stream; returns (group_id, stream_id).
async fn group_and_stream(c: &Client, group: &str, stream: &str) -> (String, String) {
    let pid = c.project_id().to_owned();
    let g = c
        .send(
            Method::POST,
            &format!("/v2/{pid}/groups"),
            "",
            Some(json!({"log_group_name": group, "ttl_in_days": 7})),
        )
        .await
        .unwrap();
    assert_eq!(g.status, 201);
    let gid = g.body["log_group_id"].as_str().unwrap().to_owned();
    let s = c
        .send(
            Method::POST,
            &format!("/v2/{pid}/groups/{gid}/streams"),
            "",
            Some(json!({"log_stream_name": stream})),
        )
        .await
        .unwrap();
    assert_eq!(s.status, 201);
    (gid, s.body["log_stream_id"].as_str().unwrap().to_owned())
}

async fn query(c: &Client, gid: &str, sid: &str, body: Value) -> Value {
    let pid = c.project_id().to_owned();
    c.send(
        Method::POST,
        &format!("/v2/{pid}/groups/{gid}/streams/{sid}/content/query"),
        "",
        Some(body),
    )
    .await
    .unwrap()
    .body
}

fn window() -> Value {
    let now_ms = now_ns() / 1_000_000;
    json!({"start_time": now_ms - 3_600_000, "end_time": now_ms + 3_600_000, "limit": 5000})
}

fn contents(v: &Value) -> Vec<String> {
    v["logs"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l["content"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn groups_and_streams_are_managed_with_lts_shapes() {
    let server = Server::start();
    let c = server.admin().await;
    let pid = c.project_id().to_owned();
    let (gid, sid) = group_and_stream(&c, "app-logs", "web-01").await;

    let groups = c
        .send(Method::GET, &format!("/v2/{pid}/groups"), "", None)
        .await
        .unwrap();
    let list = groups.body["log_groups"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["log_group_name"], "app-logs");
    assert_eq!(list[0]["log_group_id"], gid.as_str());
    assert_eq!(list[0]["ttl_in_days"], 7);

    // Same name again is refused; a bad name and a bad TTL are named.
    let (status, body) = api_err(
        c.send(
            Method::POST,
            &format!("/v2/{pid}/groups"),
            "",
            Some(json!({"log_group_name": "app-logs"})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["error_code"], "LTS.0104");
    let (status, body) = api_err(
        c.send(
            Method::POST,
            &format!("/v2/{pid}/groups"),
            "",
            Some(json!({"log_group_name": "bad name!"})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("LTS.0009"))
    );
    assert!(
        body["error_msg"]
            .as_str()
            .unwrap()
            .contains("log_group_name")
    );
    let (_, body) = api_err(
        c.send(
            Method::POST,
            &format!("/v2/{pid}/groups/{gid}"),
            "",
            Some(json!({"ttl_in_days": 0})),
        )
        .await,
    )
    .await;
    assert!(body["error_msg"].as_str().unwrap().contains("ttl_in_days"));

    let updated = c
        .send(
            Method::POST,
            &format!("/v2/{pid}/groups/{gid}"),
            "",
            Some(json!({"ttl_in_days": 30})),
        )
        .await
        .unwrap();
    assert_eq!(updated.body["ttl_in_days"], 30);

    let streams = c
        .send(
            Method::GET,
            &format!("/v2/{pid}/groups/{gid}/streams"),
            "",
            None,
        )
        .await
        .unwrap();
    let list = streams.body["log_streams"].as_array().unwrap();
    assert_eq!(list.len(), 1);
    assert_eq!(list[0]["log_stream_id"], sid.as_str());
    assert_eq!(list[0]["log_stream_name"], "web-01");

    // Unknown group: 404 with the LTS code.
    let (status, body) = api_err(
        c.send(
            Method::GET,
            &format!("/v2/{pid}/groups/00000000-0000-0000-0000-000000000000/streams"),
            "",
            None,
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (404, Some("LTS.0201"))
    );

    let deleted = c
        .send(
            Method::DELETE,
            &format!("/v2/{pid}/groups/{gid}/streams/{sid}"),
            "",
            None,
        )
        .await
        .unwrap();
    assert_eq!(deleted.status, 204);
    let deleted = c
        .send(Method::DELETE, &format!("/v2/{pid}/groups/{gid}"), "", None)
        .await
        .unwrap();
    assert_eq!(deleted.status, 204);
    let groups = c
        .send(Method::GET, &format!("/v2/{pid}/groups"), "", None)
        .await
        .unwrap();
    assert_eq!(groups.body["log_groups"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn reported_lines_are_queryable_and_bad_lines_are_named_not_dropped_with_the_rest() {
    let server = Server::start();
    let c = server.admin().await;
    let pid = c.project_id().to_owned();
    let (gid, sid) = group_and_stream(&c, "g", "s").await;
    let report = format!("/v2/{pid}/lts/groups/{gid}/streams/{sid}/tenant/contents");

    let base = now_ns();
    let r = c
        .send(
            Method::POST,
            &report,
            "",
            Some(json!({
                "log_time_ns": base.to_string(),
                "contents": ["first INFO line", 42, "second ERROR line", "", "third WARN line"],
                "labels": {"hostName": "web-01", "hostIP": "10.0.0.5"},
            })),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    assert_eq!(r.body["errorCode"], "SVCSTG.ALS.200.200");
    assert_eq!(r.body["accepted"], 3);
    let rejected = r.body["rejected"].as_array().unwrap();
    let indexes: Vec<i64> = rejected
        .iter()
        .map(|e| e["index"].as_i64().unwrap())
        .collect();
    assert_eq!(indexes, vec![1, 3]);
    assert!(
        rejected[0]["error_msg"]
            .as_str()
            .unwrap()
            .contains("must be a string")
    );

    // High-accuracy form: each line has its own time.
    let r = c
        .send(
            Method::POST,
            &format!("{report}/high-accuracy"),
            "",
            Some(json!({
                "contents": [
                    {"log_time_ns": base + 10, "log": "fourth line"},
                    {"log_time_ns": "not-a-time", "log": "bad time"},
                    {"log_time_ns": (base - 5).to_string(), "log": "zeroth line"}
                ],
                "labels": {},
            })),
        )
        .await
        .unwrap();
    assert_eq!(r.body["accepted"], 2);
    assert_eq!(r.body["rejected"][0]["index"], 1);

    let all = query(&c, &gid, &sid, window()).await;
    assert_eq!(
        contents(&all),
        vec![
            "zeroth line",
            "first INFO line",
            "second ERROR line",
            "third WARN line",
            "fourth line"
        ]
    );
    assert_eq!(all["isQueryComplete"], true);
    assert_eq!(all["logs"][1]["labels"]["hostName"], "web-01");

    // Keywords (case-insensitive, every one), descending order, and paging by line_num.
    let mut q = window();
    q["keywords"] = json!("line error");
    assert_eq!(
        contents(&query(&c, &gid, &sid, q).await),
        vec!["second ERROR line"]
    );
    let mut q = window();
    q["is_desc"] = json!(true);
    q["limit"] = json!(2);
    let page1 = query(&c, &gid, &sid, q.clone()).await;
    assert_eq!(contents(&page1), vec!["fourth line", "third WARN line"]);
    assert_eq!(page1["isQueryComplete"], false);
    q["search_type"] = json!("forwards");
    q["line_num"] = page1["logs"][1]["line_num"].clone();
    let page2 = query(&c, &gid, &sid, q).await;
    assert_eq!(
        contents(&page2),
        vec!["second ERROR line", "first INFO line"]
    );

    // Whole-body problems: every line bad, missing time, time too far away, unknown stream.
    let (status, body) = api_err(
        c.send(
            Method::POST,
            &report,
            "",
            Some(json!({"log_time_ns": base, "contents": [1, 2]})),
        )
        .await,
    )
    .await;
    assert_eq!(status, 400);
    assert_eq!(body["rejected"].as_array().unwrap().len(), 2);
    let (_, body) = api_err(
        c.send(Method::POST, &report, "", Some(json!({"contents": ["x"]})))
            .await,
    )
    .await;
    assert!(body["error_msg"].as_str().unwrap().contains("log_time_ns"));
    let (_, body) = api_err(
        c.send(
            Method::POST,
            &report,
            "",
            Some(json!({"log_time_ns": 1_000_000_000_i64, "contents": ["x"]})),
        )
        .await,
    )
    .await;
    assert!(body["error_msg"].as_str().unwrap().contains("two days"));
    let (status, body) = api_err(
        c.send(
            Method::POST,
            &format!("/v2/{pid}/lts/groups/{gid}/streams/00000000-0000-0000-0000-000000000000/tenant/contents"),
            "",
            Some(json!({"log_time_ns": base, "contents": ["x"]})),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (404, Some("LTS.0208"))
    );
    let raw = c
        .raw(Method::POST, &report, "", Some(b"{not json".to_vec()), true)
        .await
        .unwrap();
    let (status, body) = (raw.status.as_u16(), raw.body);
    assert_eq!(
        (status, body["error_code"].as_str()),
        (400, Some("LTS.0009"))
    );
}

#[tokio::test]
async fn acknowledged_lines_survive_kill_9() {
    let server = Server::start();
    let c = server.admin().await;
    let pid = c.project_id().to_owned();
    let (gid, sid) = group_and_stream(&c, "g", "s").await;
    let report = format!("/v2/{pid}/lts/groups/{gid}/streams/{sid}/tenant/contents");
    let lines: Vec<String> = (0..200).map(|i| format!("line {i:03}")).collect();
    for chunk in lines.chunks(20) {
        let r = c
            .send(
                Method::POST,
                &report,
                "",
                Some(json!({"log_time_ns": now_ns(), "contents": chunk})),
            )
            .await
            .unwrap();
        assert_eq!(r.body["accepted"], 20);
    }
    let server = server.restart_after_kill9();
    let c = server.admin().await;
    let got = contents(&query(&c, &gid, &sid, window()).await);
    assert_eq!(got, lines);
}
