//! The trigger engine: long-running tasks that turn trace-log entries, LTS lines, timer ticks
//! and queued async invocations into function invocations.
//!
//! Every trigger reads its source with its own durable cursor (`fgs:cts:<trigger>`,
//! `fgs:lts:<trigger>`) and advances it in the same transaction that records the invocations it
//! made. A crash between an effect and that commit re-runs the invocation; the effects are
//! idempotent (a publish is keyed by function + trace, an append by function + event digest), so
//! at-least-once processing never alarms or appends twice.

use std::sync::Arc;
use std::time::Duration;

use chrono::DateTime;
use serde_json::{Value, json};
use trailwatch_store::functions::{self as db, InvocationRow, StatsEvent};
use trailwatch_trace::Trace;

use crate::events::{self, LtsMeta};
use crate::lts::LogRecord;
use crate::operations::OperationSet;
use crate::runtime::TriggerKind;
use crate::schedule::Schedule;
use crate::service::{FunctionService, InvocationResult, Loaded, cts_cursor, lts_cursor};

/// Traces read per trigger per pass. A pass waits for group commits (its alarms' publishes, then
/// the record of its invocations with the cursor), so under heavy ingest a pass lasts tens of
/// milliseconds whatever its size: the batch, not the CPU, bounded the traces per second a
/// trigger keeps up with (500 per pass fell behind above ≈ 4–5k traces/s).
const CTS_BATCH: usize = 2000;
/// LTS lines read per trigger per pass.
const LTS_BATCH: usize = 2000;
/// Largest LTS event handed to a function (FunctionGraph's 75 KB).
pub const LTS_EVENT_MAX_BYTES: usize = 75 * 1024;
/// Retries of a failed async invocation before it becomes a dead letter.
pub const ASYNC_RETRIES: i64 = 2;
/// How long a claimed async invocation is leased to the worker that runs it.
const ASYNC_LEASE_MS: i64 = 15 * 60 * 1000;

/// Runs every engine task until `stop` resolves.
pub async fn run(service: Arc<FunctionService>, stop: impl Future<Output = ()> + Send) {
    let tasks = async {
        tokio::join!(
            cts_loop(service.clone()),
            lts_loop(service.clone()),
            timer_loop(service.clone()),
            async_loop(service.clone()),
            crate::key_events::key_event_loop(service.clone()),
        )
    };
    tokio::select! {
        _ = tasks => {}
        () = stop => {}
    }
}

fn log_err(what: &str, e: &dyn std::fmt::Display) {
    tracing::warn!(error = %e, "{what} failed; will retry");
}

// ---- CTS triggers ----------------------------------------------------------------------

async fn cts_loop(service: Arc<FunctionService>) {
    let mut head = service.store.subscribe_head();
    loop {
        let busy = match cts_pass(&service).await {
            Ok(busy) => busy,
            Err(e) => {
                log_err("CTS trigger pass", &e);
                false
            }
        };
        if !busy {
            // New traces wake us; the timeout picks up triggers created meanwhile.
            let _ = tokio::time::timeout(Duration::from_secs(1), head.changed()).await;
        }
    }
}

/// One pass over every active CTS trigger; true when some trigger had a full batch (more may
/// be waiting).
pub async fn cts_pass(service: &FunctionService) -> Result<bool, crate::service::FssError> {
    let triggers = service
        .store
        .read(|c| db::active_triggers(c, "CTS"))
        .await
        .map_err(|e| crate::service::FssError::internal(e.to_string()))?;
    let mut busy = false;
    for (trigger, row) in triggers {
        let function = match service.load(row) {
            Ok(f) => f,
            Err(e) => {
                log_err("loading a CTS trigger's function", &e);
                continue;
            }
        };
        let ops = serde_json::from_str::<Value>(&trigger.event_data)
            .ok()
            .and_then(|ed| {
                ed.get("operations")
                    .and_then(|o| OperationSet::from_value(o).ok())
            });
        let Some(ops) = ops else {
            tracing::warn!(trigger = %trigger.trigger_id, "CTS trigger has unusable operations; skipped");
            continue;
        };
        let cursor_name = cts_cursor(&trigger.trigger_id);
        let cursor = service
            .store
            .cursor(&cursor_name)
            .await
            .map_err(|e| crate::service::FssError::internal(e.to_string()))?;
        let traces = service
            .store
            .read_after(cursor, CTS_BATCH)
            .await
            .map_err(|e| crate::service::FssError::internal(e.to_string()))?;
        let Some(last) = traces.last().map(|t| t.seq) else {
            continue;
        };
        busy |= traces.len() == CTS_BATCH;
        let mut matching: Vec<Value> = Vec::new();
        for stored in &traces {
            if stored.project_id != function.row.project_id {
                continue;
            }
            let Ok(trace) = Trace::from_json_str(&stored.body) else {
                tracing::warn!(
                    seq = stored.seq,
                    "stored trace does not parse; skipped by CTS trigger"
                );
                continue;
            };
            if !ops.matches_trace(&trace) {
                continue;
            }
            matching.push(events::cts_event(&trace));
        }
        // The batch's invocations run side by side, as many at once as the function's
        // instances allow (its slots); results come back in trace order.
        let runs = matching.iter().map(|event| async {
            let _slot = service.slot(&function, true).await?;
            let request_id = uuid::Uuid::new_v4().to_string();
            Ok::<_, crate::service::FssError>(
                service
                    .execute(&function, TriggerKind::Cts, event, &request_id)
                    .await,
            )
        });
        let mut finished: Vec<InvocationResult> = Vec::with_capacity(matching.len());
        let mut retry: Vec<Value> = Vec::new();
        for (event, r) in matching
            .iter()
            .zip(futures_util::future::join_all(runs).await)
        {
            let r = r?;
            if r.failed() {
                retry.push(event.clone());
            }
            finished.push(r);
        }
        // The invocations and the cursor advance commit together.
        let label = format!("CTS:{}", trigger.trigger_id);
        let trigger_id = trigger.trigger_id.clone();
        service
            .record_batch_retrying(&function, &label, "trigger", finished, retry, move |c| {
                if db::trigger_exists(c, &trigger_id)? {
                    trailwatch_store::set_cursor(c, &cursor_name, last)?;
                }
                Ok(())
            })
            .await?;
    }
    Ok(busy)
}

// ---- LTS triggers ----------------------------------------------------------------------

async fn lts_loop(service: Arc<FunctionService>) {
    let mut head = service.lts_head.subscribe();
    loop {
        let busy = match lts_pass(&service).await {
            Ok(busy) => busy,
            Err(e) => {
                log_err("LTS trigger pass", &e);
                false
            }
        };
        if !busy {
            let _ = tokio::time::timeout(Duration::from_secs(1), head.changed()).await;
        }
    }
}

fn log_record(line: &trailwatch_store::lts::LogLine) -> LogRecord {
    let labels: serde_json::Map<String, Value> =
        serde_json::from_str(&line.labels).unwrap_or_default();
    let label = |keys: &[&str]| {
        keys.iter()
            .find_map(|k| labels.get(*k).and_then(Value::as_str))
            .map(str::to_owned)
    };
    LogRecord {
        message: line.content.clone(),
        time: Some(line.time_ns.div_euclid(1_000_000)),
        host_name: label(&["hostName", "host_name"]),
        ip: label(&["hostIP", "ip"]),
        path: label(&["pathFile", "path"]),
        log_uid: Some(line.log_uid.clone()),
        line_no: i64::try_from(line.seq).ok(),
        extra: serde_json::Map::new(),
    }
}

/// One pass over every active LTS trigger.
pub async fn lts_pass(service: &FunctionService) -> Result<bool, crate::service::FssError> {
    let internal =
        |e: trailwatch_store::StoreError| crate::service::FssError::internal(e.to_string());
    let triggers = service
        .store
        .read(|c| db::active_triggers(c, "LTS"))
        .await
        .map_err(internal)?;
    let mut busy = false;
    for (trigger, row) in triggers {
        let function = match service.load(row) {
            Ok(f) => f,
            Err(e) => {
                log_err("loading an LTS trigger's function", &e);
                continue;
            }
        };
        let ed: Value = serde_json::from_str(&trigger.event_data).unwrap_or_default();
        let (Some(group), Some(stream)) = (
            ed.get("log_group_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
            ed.get("log_topic_id")
                .and_then(Value::as_str)
                .map(str::to_owned),
        ) else {
            continue;
        };
        let cursor_name = lts_cursor(&trigger.trigger_id);
        let name = cursor_name.clone();
        let cursor = service
            .store
            .read(move |c| trailwatch_store::position(c, &name))
            .await
            .map_err(internal)?;
        let s = stream.clone();
        let lines = service
            .store
            .read(move |c| trailwatch_store::lts::lines_after(c, &s, cursor, LTS_BATCH))
            .await
            .map_err(internal)?;
        if lines.is_empty() {
            continue;
        }
        busy |= lines.len() == LTS_BATCH;
        let records: Vec<LogRecord> = lines.iter().map(log_record).collect();
        let meta = LtsMeta {
            owner: function.row.project_id.clone(),
            log_group_id: group,
            log_topic_id: stream,
        };
        let batches = match events::lts_batches(&meta, &records, LTS_EVENT_MAX_BYTES) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!(error = %e, trigger = %trigger.trigger_id, "LTS trigger cannot pack its events");
                continue;
            }
        };
        let label = format!("LTS:{}", trigger.trigger_id);
        // One invocation per ≤ 75 KB event; each commits with the cursor at its last line.
        for batch in batches {
            let last_seq = lines[batch.records.end - 1].seq;
            let _slot = service.slot(&function, true).await?;
            let request_id = uuid::Uuid::new_v4().to_string();
            let r = service
                .execute(&function, TriggerKind::Lts, &batch.event, &request_id)
                .await;
            let (name, tid) = (cursor_name.clone(), trigger.trigger_id.clone());
            let retry = if r.failed() {
                vec![batch.event.clone()]
            } else {
                Vec::new()
            };
            service
                .record_batch_retrying(&function, &label, "trigger", vec![r], retry, move |c| {
                    if db::trigger_exists(c, &tid)? {
                        trailwatch_store::set_position(c, &name, last_seq)?;
                    }
                    Ok(())
                })
                .await?;
        }
    }
    Ok(busy)
}

// ---- TIMER triggers --------------------------------------------------------------------

async fn timer_loop(service: Arc<FunctionService>) {
    loop {
        let wait = match timer_pass(&service).await {
            Ok(wait) => wait,
            Err(e) => {
                log_err("timer trigger pass", &e);
                Duration::from_secs(1)
            }
        };
        tokio::time::sleep(wait).await;
    }
}

/// Fires every timer trigger that is due (one catch-up invocation for ticks missed while the
/// server was down, see [`Schedule::due`]); returns how long to sleep (at most one second, so
/// new triggers are picked up).
pub async fn timer_pass(service: &FunctionService) -> Result<Duration, crate::service::FssError> {
    let internal =
        |e: trailwatch_store::StoreError| crate::service::FssError::internal(e.to_string());
    let triggers = service
        .store
        .read(|c| db::active_triggers(c, "TIMER"))
        .await
        .map_err(internal)?;
    let now = service.clock.now();
    let mut wait = Duration::from_secs(1);
    for (trigger, row) in triggers {
        let ed: Value = serde_json::from_str(&trigger.event_data).unwrap_or_default();
        let field = |k: &str| ed.get(k).and_then(Value::as_str).unwrap_or("").to_owned();
        let Some(anchor) = DateTime::from_timestamp_millis(trigger.created_at) else {
            continue;
        };
        let schedule = match Schedule::parse(&field("schedule_type"), &field("schedule")) {
            Ok(s) => s.anchored_at(anchor),
            Err(e) => {
                tracing::warn!(error = %e, trigger = %trigger.trigger_id, "timer trigger has an unusable schedule");
                continue;
            }
        };
        let tid = trigger.trigger_id.clone();
        let last = service
            .store
            .read(move |c| db::timer_last_tick(c, &tid))
            .await
            .map_err(internal)?
            .and_then(DateTime::from_timestamp_millis);
        let due = schedule.due(last, now);
        if let Some(d) = due.next.and_then(|next| (next - now).to_std().ok()) {
            wait = wait.min(d.max(Duration::from_millis(10)));
        }
        let Some(tick) = due.fire else { continue };
        if due.skipped > 0 {
            tracing::info!(trigger = %trigger.trigger_id, skipped = due.skipped, "timer ticks missed while down were coalesced into one invocation");
        }
        let function = match service.load(row) {
            Ok(f) => f,
            Err(e) => {
                log_err("loading a timer trigger's function", &e);
                continue;
            }
        };
        let event = events::timer_event(tick, &field("name"), &field("user_event"));
        let _slot = service.slot(&function, true).await?;
        let request_id = uuid::Uuid::new_v4().to_string();
        let r = service
            .execute(&function, TriggerKind::Timer, &event, &request_id)
            .await;
        let (tid, tick_ms) = (trigger.trigger_id.clone(), tick.timestamp_millis());
        let retry = if r.failed() {
            vec![event.clone()]
        } else {
            Vec::new()
        };
        service
            .record_batch_retrying(
                &function,
                &format!("TIMER:{}", trigger.trigger_id),
                "trigger",
                vec![r],
                retry,
                move |c| {
                    if db::trigger_exists(c, &tid)? {
                        db::set_timer_last_tick(c, &tid, tick_ms)?;
                    }
                    Ok(())
                },
            )
            .await?;
    }
    Ok(wait)
}

// ---- async invocations -----------------------------------------------------------------

async fn async_loop(service: Arc<FunctionService>) {
    loop {
        let wait = match async_pass(&service).await {
            Ok(wait) => wait,
            Err(e) => {
                log_err("async invocation pass", &e);
                Duration::from_secs(1)
            }
        };
        let _ = tokio::time::timeout(wait, service.async_wake.notified()).await;
    }
}

/// Delay before retry `attempt` (1-based) of a failed async invocation.
pub fn async_backoff_ms(attempt: i64) -> i64 {
    1000 * 4_i64.pow(u32::try_from(attempt.clamp(1, 6) - 1).unwrap_or(0))
}

/// Runs the async invocations that are due; returns how long until the next one.
pub async fn async_pass(service: &FunctionService) -> Result<Duration, crate::service::FssError> {
    let internal =
        |e: trailwatch_store::StoreError| crate::service::FssError::internal(e.to_string());
    let now = service.clock.now_ms();
    let claimed = service
        .store
        .write(move |c| db::claim_due_invocations(c, now, now + ASYNC_LEASE_MS, 16))
        .await
        .map_err(internal)?;
    for inv in claimed {
        let row = service
            .store
            .read({
                let id = inv.function_id.clone();
                move |c| db::function_by_id(c, &id)
            })
            .await
            .map_err(internal)?;
        let Some(row) = row else {
            finish_async(service, inv, None, "the function was deleted").await?;
            continue;
        };
        let function = match service.load(row) {
            Ok(f) => f,
            Err(e) => {
                finish_async(service, inv, None, &e.message).await?;
                continue;
            }
        };
        let event: Value = inv
            .event
            .as_deref()
            .and_then(|e| serde_json::from_str(e).ok())
            .unwrap_or_else(|| json!({}));
        let _slot = service.slot(&function, true).await?;
        let r = service
            .execute(&function, kind_of(&inv.trigger), &event, &inv.request_id)
            .await;
        finish_async(service, inv, Some((&function, r)), "").await?;
    }
    let next = service
        .store
        .read(db::next_due_invocation)
        .await
        .map_err(internal)?;
    let now = service.clock.now_ms();
    Ok(match next {
        Some(at) if at > now => {
            Duration::from_millis(u64::try_from(at - now).unwrap_or(0)).min(Duration::from_secs(5))
        }
        Some(_) => Duration::ZERO,
        None => Duration::from_secs(5),
    })
}

fn kind_of(label: &str) -> TriggerKind {
    match label.split(':').next() {
        Some("CTS") => TriggerKind::Cts,
        Some("LTS") => TriggerKind::Lts,
        Some("TIMER") => TriggerKind::Timer,
        Some("SMN") => TriggerKind::Smn,
        _ => TriggerKind::Direct,
    }
}

/// Records one attempt of an async invocation: success, a retry with backoff, or a dead letter.
async fn finish_async(
    service: &FunctionService,
    mut inv: InvocationRow,
    ran: Option<(&Loaded, InvocationResult)>,
    error: &str,
) -> Result<(), crate::service::FssError> {
    let now = service.clock.now_ms();
    inv.attempts += 1;
    let stats = ran.as_ref().map(|(_, r)| StatsEvent::Ran {
        duration_ms: r.duration_ms,
        failed: r.failed(),
    });
    let failed = match &ran {
        Some((_, r)) => {
            inv.started_at = Some(now - r.duration_ms as i64);
            inv.duration_ms = Some(r.duration_ms);
            inv.status = Some(i64::from(r.status));
            inv.result = Some(r.result.clone());
            inv.log = Some(crate::service::log_tail(&r.log).to_owned());
            r.failed()
        }
        None => {
            inv.error = Some(error.to_owned());
            true
        }
    };
    if !failed {
        inv.state = "succeeded".into();
        inv.event = None;
        inv.next_at = None;
    } else if inv.attempts > ASYNC_RETRIES || ran.is_none() {
        inv.state = "dead".into();
        inv.next_at = None;
    } else {
        inv.state = "queued".into();
        inv.next_at = Some(now + async_backoff_ms(inv.attempts));
    }
    let fid = inv.function_id.clone();
    if let Some((f, r)) = &ran {
        service.count(f, r);
    }
    service
        .store
        .write(move |c| {
            db::update_invocation(c, &inv)?;
            if let Some(s) = stats {
                db::record_stats(c, &fid, now, s)?;
            }
            Ok(())
        })
        .await
        .map_err(|e| crate::service::FssError::internal(e.to_string()))
}
