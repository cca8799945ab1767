//! Ingest and query through the real server over HTTP.
#![allow(clippy::unwrap_used)]

mod common;

use common::{Server, ids, list_all, login_trace};
use reqwest::Method;
use serde_json::{Value, json};

const T0: i64 = 1_731_161_042_113;

#[tokio::test]
async fn batch_ingest_answers_each_record_in_order() {
    let server = Server::start();
    let client = server.admin().await;
    let batch = vec![
        login_trace("alice", "203.0.113.17", T0),
        json!({"trace_name": "login"}),
        login_trace("bob", "2001:db8::7", T0 + 1),
        json!("not an object"),
        json!({"trace_name": "bad name!", "trace_type": "ApiCall", "service_type": "IAM", "resource_type": "user", "time": T0}),
        json!({"trace_name": "logout", "trace_type": "ConsoleAction", "service_type": "IAM", "resource_type": "user",
               "time": T0, "source_ip": "253.252.51.07"}),
    ];
    let resp = client.put_traces(&batch).await.unwrap();
    assert_eq!(resp.status, 201);
    let results = resp.body["results"].as_array().unwrap();
    assert_eq!(results.len(), 6);
    assert!(results[0]["trace_id"].is_string());
    assert!(results[2]["trace_id"].is_string());
    for (i, field) in [
        (1, "trace_type"),
        (3, ""),
        (4, "trace_name"),
        (5, "source_ip"),
    ] {
        assert_eq!(results[i]["index"], i, "{results:?}");
        assert_eq!(results[i]["error_code"], "CTS.0003");
        let msg = results[i]["error_msg"].as_str().unwrap();
        assert!(msg.contains(field), "record {i}: {msg}");
    }
    assert_eq!(resp.body["accepted"], 2);
    assert_eq!(resp.body["rejected"], 4);

    let stored = list_all(&client, &[]).await;
    assert_eq!(stored.len(), 2);
    // Ingest fills the defaults CTS would have set.
    for t in &stored {
        assert_eq!(t["tracker_name"], "system");
        assert!(t["record_time"].as_i64().unwrap() > T0);
        assert_eq!(t["code"], "302", "code is rendered as a string");
    }
}

#[tokio::test]
async fn single_trace_body_and_duplicates() {
    let server = Server::start();
    let client = server.admin().await;
    let path = format!("/v3/{}/traces", client.project_id());
    let mut trace = login_trace("alice", "10.0.0.1", T0);
    trace["trace_id"] = json!("8c2d6a10-9e41-11ef-b3a7-0255ac10003f");
    let first = client
        .send(Method::POST, &path, "", Some(trace.clone()))
        .await
        .unwrap();
    assert_eq!(first.status, 201);
    assert_eq!(
        first.body["results"][0]["trace_id"],
        "8c2d6a10-9e41-11ef-b3a7-0255ac10003f"
    );
    // A retry after a lost response must not store the trace twice.
    let again = client
        .send(Method::POST, &path, "", Some(trace))
        .await
        .unwrap();
    assert_eq!(again.body["results"][0]["duplicate"], true);
    assert_eq!(list_all(&client, &[]).await.len(), 1);

    // A single invalid object is a plain 400 with the compatible body.
    let err = client
        .send(
            Method::POST,
            &path,
            "",
            Some(json!({"trace_name": "login", "time": "yesterday"})),
        )
        .await
        .unwrap_err();
    assert_eq!(err.status().unwrap(), 400);
    let trailwatch_client::ClientError::Api { body, .. } = err else {
        panic!()
    };
    assert_eq!(body["error_code"], "CTS.0003");
}

/// Loads a fixed set of traces and checks every filter against what it must select.
#[tokio::test]
async fn every_filter_selects_exactly_its_traces() {
    let server = Server::start();
    let client = server.admin().await;
    let mut traces = Vec::new();
    let users = ["alice", "bob", "carol"];
    let ips = [
        "10.0.0.1",
        "10.0.0.11",
        "192.168.1.5",
        "2001:db8::1",
        "::ffff:10.0.0.200",
        "",
    ];
    for i in 0..60 {
        let mut t = login_trace(users[i % 3], ips[i % 6], T0 + i as i64 * 1000);
        t["trace_id"] = json!(format!("t-{i:03}"));
        if i % 4 == 0 {
            t["trace_name"] = json!("logout");
        }
        if i % 5 == 0 {
            t["service_type"] = json!("ECS");
            t["resource_type"] = json!("ecs");
            t["resource_name"] = json!(format!("vm-{i}"));
            t["resource_id"] = json!(format!("rid-{i}"));
        }
        if i % 7 == 0 {
            t["trace_rating"] = json!("warning");
        }
        if i == 59 {
            t["tracker_name"] = json!("data-tracker");
        }
        traces.push(t);
    }
    let resp = client.put_traces(&traces).await.unwrap();
    assert_eq!(resp.body["accepted"], 60);

    let expect = |pred: &dyn Fn(usize) -> bool| -> Vec<String> {
        let mut v: Vec<usize> = (0..59).filter(|i| pred(*i)).collect();
        v.reverse(); // newest first
        v.into_iter().map(|i| format!("t-{i:03}")).collect()
    };
    let check = |params: Vec<(&'static str, String)>, want: Vec<String>| {
        let client = &client;
        async move {
            let got = ids(&list_all(client, &params).await);
            assert_eq!(got, want, "filter {params:?}");
        }
    };
    check(vec![], expect(&|_| true)).await;
    check(vec![("user", "bob".into())], expect(&|i| i % 3 == 1)).await;
    check(
        vec![("trace_name", "logout".into())],
        expect(&|i| i % 4 == 0),
    )
    .await;
    check(
        vec![("service_type", "ECS".into())],
        expect(&|i| i % 5 == 0),
    )
    .await;
    check(
        vec![("resource_type", "ecs".into())],
        expect(&|i| i % 5 == 0),
    )
    .await;
    check(
        vec![("resource_name", "vm-10".into())],
        vec!["t-010".into()],
    )
    .await;
    check(vec![("resource_id", "rid-15".into())], vec!["t-015".into()]).await;
    check(
        vec![("trace_rating", "warning".into())],
        expect(&|i| i % 7 == 0),
    )
    .await;
    // Exact address: 10.0.0.1 must not match 10.0.0.11 (the tutorial's substring bug).
    check(
        vec![("source_ip", "10.0.0.1".into())],
        expect(&|i| i % 6 == 0),
    )
    .await;
    // A CIDR range covers IPv4 and IPv4-mapped IPv6 alike.
    check(
        vec![("source_ip", "10.0.0.0/24".into())],
        expect(&|i| matches!(i % 6, 0 | 1 | 4)),
    )
    .await;
    check(
        vec![("source_ip", "2001:db8::/32".into())],
        expect(&|i| i % 6 == 3),
    )
    .await;
    check(
        vec![
            ("from", (T0 + 10_000).to_string()),
            ("to", (T0 + 20_000).to_string()),
        ],
        expect(&|i| (10..=20).contains(&i)),
    )
    .await;
    check(
        vec![
            ("user", "alice".into()),
            ("trace_name", "logout".into()),
            ("from", (T0 + 30_000).to_string()),
        ],
        expect(&|i| i % 3 == 0 && i % 4 == 0 && i >= 30),
    )
    .await;
    // The data tracker's trace is only visible when asked for.
    check(vec![("trace_type", "data".into())], vec!["t-059".into()]).await;
    check(
        vec![("tracker_name", "data-tracker".into())],
        vec!["t-059".into()],
    )
    .await;
    // trace_id wins over every other condition (CTS semantics).
    check(
        vec![("trace_id", "t-007".into()), ("user", "nobody".into())],
        vec!["t-007".into()],
    )
    .await;
}

#[tokio::test]
async fn paging_follows_markers_without_gaps_or_repeats() {
    let server = Server::start();
    let client = server.admin().await;
    // Equal times on purpose: ties are broken by sequence, so paging is still total.
    let traces: Vec<Value> = (0..45)
        .map(|i| login_trace("alice", "10.1.2.3", T0 + (i / 10) as i64))
        .collect();
    client.put_traces(&traces).await.unwrap();
    let mut seen = Vec::new();
    let mut marker: Option<String> = None;
    let mut pages = 0;
    loop {
        let mut p = vec![("limit", "7".to_string())];
        if let Some(m) = &marker {
            p.push(("next", m.clone()));
        }
        let page = client.list_traces(&p).await.unwrap();
        let items = page["traces"].as_array().unwrap();
        assert_eq!(page["meta_data"]["count"], items.len());
        seen.extend(ids(items));
        pages += 1;
        marker = page["meta_data"]["marker"].as_str().map(str::to_owned);
        if let Some(m) = &marker {
            assert_eq!(
                Some(m),
                seen.last(),
                "the marker is the last trace returned"
            );
        } else {
            break;
        }
    }
    assert_eq!(pages, 7);
    let mut unique = seen.clone();
    unique.sort();
    unique.dedup();
    assert_eq!(unique.len(), 45);
    assert_eq!(seen.len(), 45);
    let times: Vec<i64> = list_all(&client, &[])
        .await
        .iter()
        .map(|t| t["time"].as_i64().unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] >= w[1]), "newest first");

    let err = client
        .list_traces(&[("next", "no-such-trace".into())])
        .await
        .unwrap_err();
    assert_eq!(err.status().unwrap(), 400);
}

#[tokio::test]
async fn legacy_v1_path_and_v3_rendering() {
    let server = Server::start();
    let client = server.admin().await;
    let mut t = login_trace("alice", "10.0.0.1", T0);
    t["request"] = json!({"login_type": "password"});
    t["response"] = json!("plain text");
    t["trace_status"] = json!("normal");
    client.put_traces(&[t]).await.unwrap();
    let path = format!("/v1.0/{}/system/trace", client.project_id());
    let resp = client
        .send(Method::GET, &path, "trace_name=login", None)
        .await
        .unwrap();
    let trace = &resp.body["traces"][0];
    assert_eq!(resp.body["meta_data"]["count"], 1);
    // The v3 model gives request/response as JSON text; extras are preserved.
    assert_eq!(trace["request"], "{\"login_type\":\"password\"}");
    assert_eq!(trace["response"], "plain text");
    assert_eq!(trace["trace_status"], "normal");
    let none = client
        .send(
            Method::GET,
            &format!("/v1.0/{}/other/trace", client.project_id()),
            "",
            None,
        )
        .await
        .unwrap();
    assert_eq!(none.body["traces"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn health_and_metrics() {
    let server = Server::start();
    let client = server.admin().await;
    client
        .put_traces(&[login_trace("a", "10.0.0.1", T0), json!({})])
        .await
        .unwrap();
    let http = server.http();
    let health = http
        .get(format!("{}/healthz", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    let metrics = http
        .get(format!("{}/metrics", server.url))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert!(
        metrics.contains("trailwatch_traces_ingested_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("trailwatch_traces_rejected_total 1"),
        "{metrics}"
    );
    assert!(
        metrics.contains("trailwatch_trace_append_seconds_count 1"),
        "{metrics}"
    );
    let size_line = metrics
        .lines()
        .find(|l| l.starts_with("trailwatch_store_size_bytes "))
        .unwrap();
    let size: u64 = size_line.split(' ').nth(1).unwrap().parse().unwrap();
    assert!(size > 0);
}
