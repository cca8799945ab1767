//! CTS trackers over HTTP against the real binary: the management tracker's life, data
//! trackers, the archiver's status report as the API shows it, bad bodies with their precise
//! CTS codes, and project isolation.
#![allow(clippy::unwrap_used)]

mod common;

use common::Server;
use reqwest::Method;
use serde_json::{Value, json};
use trailwatch_client::{Client, ClientError, RawResponse};

async fn api_err(r: Result<RawResponse, ClientError>) -> (u16, Value) {
    match r {
        Err(ClientError::Api { status, body, .. }) => (status.as_u16(), body),
        Ok(r) => panic!("expected an error, got {} {}", r.status, r.body),
        Err(e) => panic!("expected an API error, got {e}"),
    }
}

/// Asserts a CTS error: status, code, and a piece of the message.
#[track_caller]
fn assert_cts(got: (u16, Value), status: u16, code: &str, text: &str) {
    let (s, body) = got;
    assert_eq!(s, status, "{body}");
    assert_eq!(body["error_code"], code, "{body}");
    let msg = body["error_msg"].as_str().unwrap_or_default();
    assert!(msg.contains(text), "{msg:?} does not contain {text:?}");
}

async fn create(c: &Client, pid: &str, body: Value) -> Result<RawResponse, ClientError> {
    c.send(Method::POST, &format!("/v3/{pid}/tracker"), "", Some(body))
        .await
}

async fn update(c: &Client, pid: &str, body: Value) -> Result<RawResponse, ClientError> {
    c.send(Method::PUT, &format!("/v3/{pid}/tracker"), "", Some(body))
        .await
}

async fn list(c: &Client, pid: &str, query: &str) -> Vec<Value> {
    let r = c
        .send(Method::GET, &format!("/v3/{pid}/trackers"), query, None)
        .await
        .unwrap();
    assert_eq!(r.status, 200);
    r.body["trackers"].as_array().unwrap().clone()
}

async fn delete(c: &Client, pid: &str, query: &str) -> Result<RawResponse, ClientError> {
    c.send(Method::DELETE, &format!("/v3/{pid}/trackers"), query, None)
        .await
}

fn names(trackers: &[Value]) -> Vec<&str> {
    trackers
        .iter()
        .map(|t| t["tracker_name"].as_str().unwrap())
        .collect()
}

#[tokio::test]
async fn management_tracker_lifecycle() {
    let server = Server::start();
    let c = server.admin().await;
    let pid = c.project_id().to_owned();
    assert!(list(&c, &pid, "").await.is_empty());

    let created = create(
        &c,
        &pid,
        json!({"tracker_type": "system", "tracker_name": "system", "is_lts_enabled": true,
               "is_support_validate": true,
               "obs_info": {"bucket_name": "audit-logs", "file_prefix_name": "tw",
                            "is_obs_created": true, "bucket_lifecycle": 30}}),
    )
    .await
    .unwrap();
    assert_eq!(created.status, 201);
    let t = created.body.clone();
    let id = t["id"].as_str().unwrap().to_owned();
    assert_eq!(id.len(), 36, "{t}");
    assert_eq!(t["project_id"], pid.as_str());
    assert!(!t["domain_id"].as_str().unwrap().is_empty());
    assert_eq!(t["tracker_name"], "system");
    assert_eq!(t["tracker_type"], "system");
    assert_eq!(t["status"], "enabled");
    assert!(t.get("detail").is_none(), "{t}");
    assert_eq!(t["is_support_validate"], true);
    assert!(t["create_time"].as_i64().unwrap() > 1_600_000_000_000);
    assert_eq!(
        t["lts"],
        json!({"is_lts_enabled": true, "log_group_name": "CTS", "log_topic_name": "system-trace"})
    );
    let obs = &t["obs_info"];
    assert_eq!(obs["bucket_name"], "audit-logs");
    assert_eq!(obs["file_prefix_name"], "tw");
    assert_eq!(obs["is_obs_created"], true);
    assert_eq!(obs["bucket_lifecycle"], 30);
    assert_eq!(obs["compress_type"], "gzip", "default");
    assert_eq!(obs["is_sort_by_service"], true, "default");
    assert_eq!(obs["is_authorized_bucket"], true);
    assert!(obs["bucket_location"].is_string());
    assert_eq!(
        t["management_event_selector"],
        json!({"exclude_service": []})
    );
    assert!(t.get("data_bucket").is_none());

    // The list item is the create answer.
    let listed = list(&c, &pid, "").await;
    assert_eq!(listed, vec![t.clone()]);

    // At most one management tracker, and it is named `system`.
    assert_cts(
        api_err(create(&c, &pid, json!({"tracker_type": "system"})).await).await,
        400,
        "CTS.0201",
        "management tracker",
    );
    assert_cts(
        api_err(
            create(
                &c,
                &pid,
                json!({"tracker_type": "system", "tracker_name": "main"}),
            )
            .await,
        )
        .await,
        400,
        "CTS.0204",
        "`main`",
    );

    // Update: status and part of obs_info; the rest of obs_info is kept.
    let u = update(
        &c,
        &pid,
        json!({"tracker_type": "system", "tracker_name": "system", "status": "disabled",
               "obs_info": {"file_prefix_name": "audit.v2", "compress_type": "json",
                            "is_sort_by_service": false, "bucket_lifecycle": 1095}}),
    )
    .await
    .unwrap();
    assert_eq!(u.status, 200);
    let got = &list(&c, &pid, "tracker_name=system").await[0];
    assert_eq!(&u.body, got);
    assert_eq!(got["status"], "disabled");
    assert_eq!(got["id"], id.as_str());
    assert_eq!(got["create_time"], t["create_time"]);
    assert!(got["update_time"].as_i64() >= t["update_time"].as_i64());
    assert_eq!(
        got["obs_info"]["bucket_name"], "audit-logs",
        "kept when not given"
    );
    assert_eq!(got["obs_info"]["file_prefix_name"], "audit.v2");
    assert_eq!(got["obs_info"]["compress_type"], "json");
    assert_eq!(got["obs_info"]["is_sort_by_service"], false);
    assert_eq!(got["obs_info"]["bucket_lifecycle"], 1095);
    assert_eq!(got["is_support_validate"], true, "kept when not given");

    // Status `error` belongs to the archiver; users may only enable or disable.
    assert_cts(
        api_err(
            update(
                &c,
                &pid,
                json!({"tracker_type": "system", "status": "error"}),
            )
            .await,
        )
        .await,
        400,
        "CTS.0205",
        "`error`",
    );
    // A new bucket; then an empty bucket name turns the transfer off.
    update(
        &c,
        &pid,
        json!({"tracker_type": "system", "status": "enabled",
               "obs_info": {"bucket_name": "audit-logs-2"}}),
    )
    .await
    .unwrap();
    let got = &list(&c, &pid, "").await[0];
    assert_eq!(got["status"], "enabled");
    assert_eq!(got["obs_info"]["bucket_name"], "audit-logs-2");
    assert_eq!(got["obs_info"]["file_prefix_name"], "audit.v2");
    let off = update(
        &c,
        &pid,
        json!({"tracker_type": "system", "obs_info": {"bucket_name": ""}}),
    )
    .await
    .unwrap();
    assert!(off.body.get("obs_info").is_none(), "{}", off.body);

    // Updating a tracker that does not exist.
    assert_cts(
        api_err(
            update(
                &c,
                &pid,
                json!({"tracker_type": "data", "tracker_name": "nope", "status": "enabled"}),
            )
            .await,
        )
        .await,
        404,
        "CTS.0214",
        "`nope`",
    );

    // A delete without parameters deletes data trackers only (there are none): 204, and the
    // management tracker stays.
    assert_eq!(delete(&c, &pid, "").await.unwrap().status, 204);
    assert_eq!(names(&list(&c, &pid, "").await), ["system"]);
    assert_eq!(
        delete(&c, &pid, "tracker_name=system")
            .await
            .unwrap()
            .status,
        204
    );
    assert!(list(&c, &pid, "").await.is_empty());
    assert_cts(
        api_err(delete(&c, &pid, "tracker_name=system").await).await,
        404,
        "CTS.0214",
        "management tracker `system`",
    );
    // It can be created again, as a new tracker.
    let again = create(&c, &pid, json!({"tracker_type": "system"}))
        .await
        .unwrap();
    assert_eq!(again.status, 201);
    assert_ne!(again.body["id"], id.as_str());
    assert!(again.body.get("obs_info").is_none());
    assert_eq!(
        delete(&c, &pid, "tracker_type=system")
            .await
            .unwrap()
            .status,
        204
    );
    assert!(list(&c, &pid, "").await.is_empty());
}

#[tokio::test]
async fn data_trackers() {
    let server = Server::start();
    let c = server.admin().await;
    let pid = c.project_id().to_owned();
    create(&c, &pid, json!({"tracker_type": "system"}))
        .await
        .unwrap();

    let reads = create(
        &c,
        &pid,
        json!({"tracker_type": "data", "tracker_name": "photo-reads",
               "data_bucket": {"data_bucket_name": "photos", "data_event": ["READ"]},
               "obs_info": {"bucket_name": "audit-data", "bucket_lifecycle": 60}}),
    )
    .await
    .unwrap();
    assert_eq!(reads.status, 201);
    assert_eq!(reads.body["tracker_type"], "data");
    assert_eq!(
        reads.body["data_bucket"],
        json!({"data_bucket_name": "photos", "search_enabled": true, "data_event": ["READ"]})
    );
    assert_eq!(reads.body["lts"]["log_topic_name"], "photo-reads-trace");
    assert!(reads.body.get("management_event_selector").is_none());

    // The READ operations of `photos` have their tracker already; WRITE ones do not.
    assert_cts(
        api_err(
            create(
                &c,
                &pid,
                json!({"tracker_type": "data", "tracker_name": "photo-all",
                       "data_bucket": {"data_bucket_name": "photos"}}),
            )
            .await,
        )
        .await,
        400,
        "CTS.0209",
        "`photo-reads`",
    );
    let writes = create(
        &c,
        &pid,
        json!({"tracker_type": "data", "tracker_name": "photo_writes",
               "data_bucket": {"data_bucket_name": "photos", "data_event": ["WRITE"]}}),
    )
    .await
    .unwrap();
    assert_eq!(writes.status, 201);
    // Without data_event both kinds are tracked.
    let docs = create(
        &c,
        &pid,
        json!({"tracker_type": "data", "tracker_name": "docs",
               "data_bucket": {"data_bucket_name": "docs-bucket"}}),
    )
    .await
    .unwrap();
    assert_eq!(
        docs.body["data_bucket"]["data_event"],
        json!(["READ", "WRITE"])
    );

    // Same name again.
    assert_cts(
        api_err(
            create(
                &c,
                &pid,
                json!({"tracker_type": "data", "tracker_name": "docs",
                       "data_bucket": {"data_bucket_name": "other-bucket"}}),
            )
            .await,
        )
        .await,
        400,
        "CTS.0208",
        "`docs`",
    );
    // A data tracker needs its bucket, which is not its own archive bucket.
    assert_cts(
        api_err(
            create(
                &c,
                &pid,
                json!({"tracker_type": "data", "tracker_name": "x"}),
            )
            .await,
        )
        .await,
        400,
        "CTS.0003",
        "`data_bucket` is required",
    );
    assert_cts(
        api_err(
            create(
                &c,
                &pid,
                json!({"tracker_type": "data", "tracker_name": "loop",
                       "data_bucket": {"data_bucket_name": "logs-b"},
                       "obs_info": {"bucket_name": "logs-b"}}),
            )
            .await,
        )
        .await,
        400,
        "CTS.0003",
        "tracked bucket",
    );

    // Listing: management tracker first, then data trackers in creation order; filters.
    assert_eq!(
        names(&list(&c, &pid, "").await),
        ["system", "photo-reads", "photo_writes", "docs"]
    );
    assert_eq!(
        names(&list(&c, &pid, "tracker_type=data").await),
        ["photo-reads", "photo_writes", "docs"]
    );
    assert_eq!(
        names(&list(&c, &pid, "tracker_type=system").await),
        ["system"]
    );
    assert_eq!(names(&list(&c, &pid, "tracker_name=docs").await), ["docs"]);
    assert!(
        list(&c, &pid, "tracker_name=docs&tracker_type=system")
            .await
            .is_empty()
    );
    assert!(list(&c, &pid, "tracker_name=unknown").await.is_empty());
    assert_cts(
        api_err(
            c.send(
                Method::GET,
                &format!("/v3/{pid}/trackers"),
                "tracker_type=mgmt",
                None,
            )
            .await,
        )
        .await,
        400,
        "CTS.0202",
        "`mgmt`",
    );
    assert_cts(
        api_err(
            c.send(Method::GET, &format!("/v3/{pid}/trackers"), "limit=5", None)
                .await,
        )
        .await,
        400,
        "CTS.0300",
        "`limit`",
    );

    // The tracked bucket cannot change; its events can, within the one-tracker rule.
    assert_cts(
        api_err(
            update(
                &c,
                &pid,
                json!({"tracker_type": "data", "tracker_name": "docs",
                       "data_bucket": {"data_bucket_name": "elsewhere"}}),
            )
            .await,
        )
        .await,
        400,
        "CTS.0003",
        "cannot be changed",
    );
    assert_cts(
        api_err(
            update(
                &c,
                &pid,
                json!({"tracker_type": "data", "tracker_name": "photo_writes",
                       "data_bucket": {"data_bucket_name": "photos", "data_event": ["WRITE", "READ"]}}),
            )
            .await,
        )
        .await,
        400,
        "CTS.0209",
        "READ",
    );
    let u = update(
        &c,
        &pid,
        json!({"tracker_type": "data", "tracker_name": "docs", "status": "disabled",
               "data_bucket": {"data_bucket_name": "docs-bucket", "data_event": ["WRITE"]}}),
    )
    .await
    .unwrap();
    assert_eq!(u.body["data_bucket"]["data_event"], json!(["WRITE"]));
    assert_eq!(u.body["status"], "disabled");
    // The type names the tracker: `docs` is not a management tracker.
    assert_cts(
        api_err(
            update(
                &c,
                &pid,
                json!({"tracker_type": "system", "tracker_name": "docs"}),
            )
            .await,
        )
        .await,
        400,
        "CTS.0204",
        "`docs`",
    );

    // Delete one by name, then every data tracker; the management tracker stays.
    assert_eq!(
        delete(&c, &pid, "tracker_name=photo-reads&tracker_type=data")
            .await
            .unwrap()
            .status,
        204
    );
    assert_cts(
        api_err(delete(&c, &pid, "tracker_name=photo-reads").await).await,
        404,
        "CTS.0214",
        "`photo-reads`",
    );
    assert_cts(
        api_err(delete(&c, &pid, "tracker_name=system&tracker_type=data").await).await,
        400,
        "CTS.0207",
        "system",
    );
    assert_eq!(
        names(&list(&c, &pid, "").await),
        ["system", "photo_writes", "docs"]
    );
    assert_eq!(delete(&c, &pid, "").await.unwrap().status, 204);
    assert_eq!(names(&list(&c, &pid, "").await), ["system"]);
}

#[tokio::test]
async fn archiver_status_report_shows_in_the_api() {
    let server = Server::start();
    let c = server.admin().await;
    let pid = c.project_id().to_owned();
    let t = create(
        &c,
        &pid,
        json!({"tracker_type": "system", "obs_info": {"bucket_name": "audit-logs"}}),
    )
    .await
    .unwrap()
    .body;
    let id = t["id"].as_str().unwrap().to_owned();

    // The archiver's report, made through the store function it uses, on the live database.
    let db = server.data_dir.join("trailwatch.db");
    let report = |status, detail: Option<&'static str>| {
        let conn = trailwatch_store::rusqlite::Connection::open(&db).unwrap();
        conn.busy_timeout(std::time::Duration::from_secs(10))
            .unwrap();
        trailwatch_store::trackers::set_tracker_status(&conn, &id, status, detail).unwrap()
    };
    use trailwatch_store::trackers::TrackerStatus;
    assert!(report(TrackerStatus::Error, Some("bucketPolicyError")));
    let got = &list(&c, &pid, "").await[0];
    assert_eq!(got["status"], "error");
    assert_eq!(got["detail"], "bucketPolicyError");
    assert_eq!(got["obs_info"]["is_authorized_bucket"], false);
    assert_eq!(got["update_time"], t["update_time"]);

    // The user re-enables it: the detail goes.
    update(
        &c,
        &pid,
        json!({"tracker_type": "system", "status": "enabled"}),
    )
    .await
    .unwrap();
    let got = &list(&c, &pid, "").await[0];
    assert_eq!(got["status"], "enabled");
    assert!(got.get("detail").is_none(), "{got}");

    // A tracker the user disabled is not revived by a late report.
    update(
        &c,
        &pid,
        json!({"tracker_type": "system", "status": "disabled"}),
    )
    .await
    .unwrap();
    assert!(!report(TrackerStatus::Error, Some("noBucket")));
    assert_eq!(list(&c, &pid, "").await[0]["status"], "disabled");
}

#[tokio::test]
async fn bad_bodies_get_precise_errors_and_change_nothing() {
    let server = Server::start();
    let c = server.admin().await;
    let pid = c.project_id().to_owned();
    let path = format!("/v3/{pid}/tracker");

    for method in [Method::POST, Method::PUT] {
        for (raw, text) in [
            ("", "empty"),
            ("{\"tracker_type\": \"system\",", "not valid JSON"),
            ("[{\"tracker_type\": \"system\"}]", "found an array"),
            ("\"system\"", "found a string"),
        ] {
            let r = c
                .raw(
                    method.clone(),
                    &path,
                    "",
                    Some(raw.as_bytes().to_vec()),
                    true,
                )
                .await
                .unwrap();
            assert_cts((r.status.as_u16(), r.body), 400, "CTS.0003", text);
        }
    }

    let cases: Vec<(Value, &str, &str)> = vec![
        (
            json!({"tracker_type": "system", "obs_info": {"bucket_name": "My_Bucket"}}),
            "CTS.0231",
            "'M' is not allowed",
        ),
        (
            json!({"tracker_type": "system", "obs_info": {"bucket_name": "192.168.1.1"}}),
            "CTS.0231",
            "IP address",
        ),
        (
            json!({"tracker_type": "system", "obs_info": {"bucket_name": "ok-bucket", "file_prefix_name": "a b"}}),
            "CTS.0218",
            "' '",
        ),
        (
            json!({"tracker_type": "system", "obs_info": {"bucket_name": "ok-bucket", "file_prefix_name": "x".repeat(65)}}),
            "CTS.0218",
            "at most 64",
        ),
        (
            json!({"tracker_type": "system", "obs_info": {"bucket_name": "ok-bucket", "bucket_lifecycle": 7}}),
            "CTS.0003",
            "one of 30, 60, 90, 180, 1095",
        ),
        (
            json!({"tracker_type": "system", "obs_info": {"bucket_name": "ok-bucket", "bucket_lifecycle": "30"}}),
            "CTS.0003",
            "found a string",
        ),
        (
            json!({"tracker_type": "system", "obs_info": {"bucket_name": "ok-bucket", "compress_type": "zip"}}),
            "CTS.0003",
            "`gzip` or `json`",
        ),
        (
            json!({"tracker_type": "system", "obs_info": {"file_prefix_name": "p"}}),
            "CTS.0003",
            "`obs_info.bucket_name` is required",
        ),
        (
            json!({"tracker_type": "system", "obs_info": "ok-bucket"}),
            "CTS.0003",
            "`obs_info` must be an object",
        ),
        (
            json!({"tracker_type": 5}),
            "CTS.0003",
            "`tracker_type` must be a string",
        ),
        (json!({"tracker_type": "audit"}), "CTS.0202", "`audit`"),
        (
            json!({"tracker_type": "system", "is_support_validate": "true"}),
            "CTS.0003",
            "`is_support_validate` must be a boolean",
        ),
        (
            json!({"tracker_type": "system", "status": "paused"}),
            "CTS.0205",
            "`paused`",
        ),
        (
            json!({"tracker_type": "system", "bucket_name": "ok-bucket"}),
            "CTS.0003",
            "unknown member `bucket_name`",
        ),
        (
            json!({"tracker_type": "system", "data_bucket": {"data_bucket_name": "x1y"}}),
            "CTS.0206",
            "data_bucket",
        ),
        (
            json!({"tracker_type": "data", "tracker_name": "_hidden", "data_bucket": {"data_bucket_name": "abc"}}),
            "CTS.0203",
            "must not start",
        ),
        (
            json!({"tracker_type": "data", "tracker_name": "d1", "data_bucket": {"data_bucket_name": "abc", "data_event": ["read"]}}),
            "CTS.0225",
            "\"read\"",
        ),
        (
            json!({"tracker_type": "system", "is_support_trace_files_encryption": true, "kms_id": "k1"}),
            "CTS.0003",
            "not supported",
        ),
    ];
    for (body, code, text) in cases {
        assert_cts(
            api_err(create(&c, &pid, body.clone()).await).await,
            400,
            code,
            text,
        );
    }
    assert!(list(&c, &pid, "").await.is_empty(), "nothing was created");

    // An update with a bad member changes nothing either.
    create(
        &c,
        &pid,
        json!({"tracker_type": "system", "obs_info": {"bucket_name": "good-bucket"}}),
    )
    .await
    .unwrap();
    let before = list(&c, &pid, "").await;
    assert_cts(
        api_err(
            update(
                &c,
                &pid,
                json!({"tracker_type": "system", "status": "disabled",
                       "obs_info": {"bucket_name": "bad..bucket"}}),
            )
            .await,
        )
        .await,
        400,
        "CTS.0231",
        "\"..\"",
    );
    assert_eq!(list(&c, &pid, "").await, before);
    assert!(server.stderr().find("panicked").is_none());
}

#[tokio::test]
async fn trackers_are_project_scoped() {
    let server = Server::start();
    let admin = server.admin().await;
    let default_pid = admin.project_id().to_owned();
    let created = admin
        .send(
            Method::POST,
            "/v3/projects",
            "",
            Some(json!({"project": {"name": "team-b"}})),
        )
        .await
        .unwrap();
    assert_eq!(created.status, 201);
    let other_pid = created.body["project"]["id"].as_str().unwrap().to_owned();

    create(
        &admin,
        &default_pid,
        json!({"tracker_type": "system", "obs_info": {"bucket_name": "default-audit"}}),
    )
    .await
    .unwrap();
    create(
        &admin,
        &default_pid,
        json!({"tracker_type": "data", "tracker_name": "shared-name",
               "data_bucket": {"data_bucket_name": "photos"}}),
    )
    .await
    .unwrap();
    assert!(list(&admin, &other_pid, "").await.is_empty());

    // Each project has its own management tracker and its own names and bucket rule.
    // A bucket belongs to the first project that archives to it: team-b cannot take
    // default's bucket (it could overwrite, expire or jam that archive).
    let (status, body) = api_err(
        create(
            &admin,
            &other_pid,
            json!({"tracker_type": "system", "obs_info": {"bucket_name": "default-audit"}}),
        )
        .await,
    )
    .await;
    assert_eq!(
        (status, body["error_code"].as_str()),
        (403, Some("CTS.0232")),
        "{body}"
    );
    let b_system = create(
        &admin,
        &other_pid,
        json!({"tracker_type": "system", "obs_info": {"bucket_name": "team-b-audit"}}),
    )
    .await
    .unwrap();
    assert_eq!(b_system.status, 201);
    assert_eq!(b_system.body["project_id"], other_pid.as_str());
    create(
        &admin,
        &other_pid,
        json!({"tracker_type": "data", "tracker_name": "shared-name",
               "data_bucket": {"data_bucket_name": "photos"}}),
    )
    .await
    .unwrap();

    // Changes in one project do not reach the other.
    update(
        &admin,
        &other_pid,
        json!({"tracker_type": "system", "status": "disabled"}),
    )
    .await
    .unwrap();
    assert_eq!(delete(&admin, &other_pid, "").await.unwrap().status, 204);
    let a = list(&admin, &default_pid, "").await;
    assert_eq!(names(&a), ["system", "shared-name"]);
    assert_eq!(a[0]["status"], "enabled");
    assert_eq!(a[0]["obs_info"]["bucket_name"], "default-audit");
    let b = list(&admin, &other_pid, "").await;
    assert_eq!(names(&b), ["system"]);
    assert_eq!(b[0]["status"], "disabled");

    // A token scoped to `default` cannot see or change team-b's trackers.
    let scoped = server.admin_password().await;
    assert_eq!(scoped.project_id(), default_pid);
    assert_eq!(list(&scoped, &default_pid, "").await.len(), 2);
    let (status, body) = api_err(
        scoped
            .send(Method::GET, &format!("/v3/{other_pid}/trackers"), "", None)
            .await,
    )
    .await;
    assert_eq!(status, 403, "{body}");
    assert_eq!(body["error_code"], "APIGW.0302");
    let (status, _) = api_err(delete(&scoped, &other_pid, "tracker_name=system").await).await;
    assert_eq!(status, 403);
    assert_eq!(names(&list(&admin, &other_pid, "").await), ["system"]);
}
