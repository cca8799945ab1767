//! A TIMER trigger fires on schedule under paused time: the engine's clock follows tokio's, so
//! the test moves time by hand and runs the timer pass, with the real store underneath.
#![allow(clippy::unwrap_used)]

use std::sync::Arc;
use std::time::Duration;

use serde_json::json;
use trailwatch_functions::engine;
use trailwatch_functions::service::{Clock, FunctionService, FunctionServiceParts};
use trailwatch_iam::roles::Rights;
use trailwatch_notify::Signer;
use trailwatch_notify::service::{Notifier, NotifyConfig};
use trailwatch_store::{Store, StoreOptions};

const PROJECT: &str = "0123456789abcdef0123456789abcdef";

fn service(dir: &std::path::Path) -> Arc<FunctionService> {
    let store = Store::open(StoreOptions::new(dir.join("data"))).unwrap();
    let notifier = Notifier::new(
        store.clone(),
        NotifyConfig::new("local", "http://127.0.0.1:9"),
        Signer::generate("test").unwrap(),
        [7; 32],
    )
    .unwrap();
    let objects =
        trailwatch_archive::Objects::open(&trailwatch_archive::ObjectStoreConfig::Local {
            root: dir.join("objects"),
        })
        .unwrap();
    let base = chrono::DateTime::parse_from_rfc3339("2026-11-25T10:00:00Z")
        .unwrap()
        .to_utc();
    Arc::new(FunctionService::new(FunctionServiceParts {
        store,
        notifier,
        objects: Arc::new(objects),
        seal: trailwatch_iam::secret::SealKey::from_bytes([9; 32]),
        region: "local".into(),
        rights: Arc::new(|_, _| Box::pin(async { Ok(Rights::none()) })),
        clock: Clock::following_tokio(base),
        lts_head: Arc::new(tokio::sync::watch::Sender::new(0)),
    }))
}

async fn timer_invocations(s: &FunctionService) -> Vec<serde_json::Value> {
    let v = s.invocations(PROJECT, "ticker", 100).await.unwrap();
    v["invocations"].as_array().unwrap().clone()
}

#[tokio::test(start_paused = true)]
async fn a_rate_trigger_fires_every_period_and_coalesces_missed_ticks() {
    let dir = tempfile::tempdir().unwrap();
    let s = service(dir.path());
    let user_data = json!({"SMN_Topic": "t", "RegionName": "local",
                           "obs_store_bucket": "alarm-logs", "obs_store_objName": "o.log"});
    s.create_function(
        PROJECT,
        &json!({"func_name": "ticker", "package": "default", "runtime": "builtin",
                "handler": "log_alarm", "memory_size": 128, "timeout": 3,
                "user_data": user_data.to_string()}),
    )
    .await
    .unwrap();
    s.create_trigger(
        PROJECT,
        "ticker",
        &json!({"trigger_type_code": "TIMER", "trigger_status": "ACTIVE",
                "event_data": {"name": "every-3m", "schedule_type": "Rate", "schedule": "3m",
                               "user_event": "tick"}}),
    )
    .await
    .unwrap();

    // Before the first period ends: nothing, and the pass asks to be woken in time.
    tokio::time::advance(Duration::from_secs(179)).await;
    let wait = engine::timer_pass(&s).await.unwrap();
    assert!(wait <= Duration::from_secs(1));
    assert!(timer_invocations(&s).await.is_empty());

    // At 3 minutes: one invocation with the timer event of §4.2.
    tokio::time::advance(Duration::from_secs(1)).await;
    engine::timer_pass(&s).await.unwrap();
    let got = timer_invocations(&s).await;
    assert_eq!(got.len(), 1, "{got:?}");
    assert_eq!(
        got[0]["trigger"].as_str().unwrap().split(':').next(),
        Some("TIMER")
    );
    assert_eq!(got[0]["status"], 200);
    // The same tick never fires twice.
    engine::timer_pass(&s).await.unwrap();
    assert_eq!(timer_invocations(&s).await.len(), 1);

    // Each later period fires once.
    for n in 2..=4 {
        tokio::time::advance(Duration::from_secs(180)).await;
        engine::timer_pass(&s).await.unwrap();
        assert_eq!(timer_invocations(&s).await.len(), n);
    }

    // Down for ten periods (no passes): one catch-up invocation, not ten.
    tokio::time::advance(Duration::from_secs(1800)).await;
    engine::timer_pass(&s).await.unwrap();
    engine::timer_pass(&s).await.unwrap();
    assert_eq!(timer_invocations(&s).await.len(), 5);

    // Disabled: no more ticks.
    let triggers = s.list_triggers(PROJECT, "ticker").await.unwrap();
    let id = triggers[0]["trigger_id"].as_str().unwrap().to_owned();
    s.update_trigger(
        PROJECT,
        "ticker",
        "TIMER",
        &id,
        &json!({"trigger_status": "DISABLED"}),
    )
    .await
    .unwrap();
    tokio::time::advance(Duration::from_secs(360)).await;
    engine::timer_pass(&s).await.unwrap();
    assert_eq!(timer_invocations(&s).await.len(), 5);
}
