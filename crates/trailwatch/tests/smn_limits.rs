//! Confirmation messages to one endpoint are rate limited as SMN documents (§5.2): SMS 10 per hour.
#![allow(clippy::unwrap_used)]

mod common;

use common::Server;
use reqwest::Method;
use serde_json::json;

#[tokio::test]
async fn sms_confirmations_are_limited_to_ten_per_hour_per_number() {
    // A gateway that is never reached: confirmations only need to be queued to count.
    let server = Server::start_with_config(
        "[notify.sms]\nurl = \"http://127.0.0.1:9/sms\"\nbody_template = \"{message}\"\nauto_confirm = false\n",
    );
    let client = server.admin().await;
    let pid = client.project_id().to_owned();
    for i in 0..11 {
        let topic = client
            .send(
                Method::POST,
                &format!("/v2/{pid}/notifications/topics"),
                "",
                Some(json!({"name": format!("t{i}")})),
            )
            .await
            .unwrap()
            .body["topic_urn"]
            .as_str()
            .unwrap()
            .to_owned();
        let path = format!("/v2/{pid}/notifications/topics/{topic}/subscriptions");
        let r = client
            .send(
                Method::POST,
                &path,
                "",
                Some(json!({"protocol": "sms", "endpoint": "+4915112345678"})),
            )
            .await;
        if i < 10 {
            assert_eq!(r.unwrap().status, 201, "subscription {i}");
        } else {
            let e = r.unwrap_err();
            let trailwatch_client::ClientError::Api { status, body, .. } = e else {
                panic!()
            };
            assert_eq!(status, 403);
            assert_eq!(body["code"], "SMN.0057");
            assert!(
                body["message"]
                    .as_str()
                    .unwrap()
                    .contains("10 per 60 minutes"),
                "{body}"
            );
            // Nothing was half-created: the topic has no subscription.
            let subs = client.send(Method::GET, &path, "", None).await.unwrap();
            assert_eq!(subs.body["subscription_count"], 0);
        }
    }
    // Another number is not affected.
    let topic = format!("urn:smn:local:{pid}:t10");
    let r = client
        .send(
            Method::POST,
            &format!("/v2/{pid}/notifications/topics/{topic}/subscriptions"),
            "",
            Some(json!({"protocol": "sms", "endpoint": "+4915100000000"})),
        )
        .await
        .unwrap();
    assert_eq!(r.status, 201);
}
