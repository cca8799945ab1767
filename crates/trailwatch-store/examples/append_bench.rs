//! Appends a JSON Lines file of traces straight into a store (no HTTP), reporting the rate every
//! 100,000 traces: isolates the writer's cost as the log grows.
//!
//! `cargo run --release -p trailwatch-store --example append_bench -- traces.jsonl DATA_DIR`
//! (`APPEND_INDEX=off` leaves the query index out)
#![allow(clippy::unwrap_used)]

use std::io::BufRead;
use std::time::Instant;

use trailwatch_store::{NewTrace, Store, StoreOptions, now_ms};
use trailwatch_trace::Trace;

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().collect();
    let (path, dir) = (&args[1], &args[2]);
    let mut options = StoreOptions::new(dir);
    // `APPEND_INDEX=off`: no query index at all, to see the cost of the log alone.
    if std::env::var("APPEND_INDEX").as_deref() == Ok("off") {
        options.index_eagerly = false;
        options.index_max_lag = u64::MAX;
    }
    let store = Store::open(options).unwrap();
    let file = std::io::BufReader::new(std::fs::File::open(path).unwrap());
    // Parse and render everything first, so that the timing below is the store's alone.
    let parse_started = Instant::now();
    let rows: Vec<NewTrace> = file
        .lines()
        .map(|l| NewTrace::from_trace(&Trace::from_json_str(&l.unwrap()).unwrap(), now_ms()))
        .collect();
    eprintln!(
        "parsed and rendered {} traces in {:.1} s",
        rows.len(),
        parse_started.elapsed().as_secs_f64()
    );
    let started = Instant::now();
    let mut window = Instant::now();
    let mut n = 0u64;
    let mut batch = Vec::with_capacity(1000);
    let mut tasks = tokio::task::JoinSet::new();
    for row in rows {
        batch.push(row);
        if batch.len() == 1000 {
            while tasks.len() >= 4 {
                tasks.join_next().await.unwrap().unwrap();
            }
            let s = store.clone();
            let b = std::mem::take(&mut batch);
            tasks.spawn(async move { s.append("p", b).await.unwrap() });
            n += 1000;
            if n.is_multiple_of(100_000) {
                let rate = 100_000.0 / window.elapsed().as_secs_f64();
                eprintln!("{n:>9} traces  {rate:>9.0}/s");
                window = Instant::now();
            }
        }
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    eprintln!(
        "total {n} in {:.1} s = {:.0}/s",
        started.elapsed().as_secs_f64(),
        n as f64 / started.elapsed().as_secs_f64()
    );
    // The query index catches up on its own thread: how long until it has everything.
    let lag = store.index_lag().await.unwrap();
    let catch_up = Instant::now();
    while store.index_lag().await.unwrap() > 0
        && std::env::var("APPEND_INDEX").as_deref() != Ok("off")
    {
        tokio::time::sleep(std::time::Duration::from_millis(20)).await;
    }
    eprintln!(
        "index: {lag} behind at the end, caught up in {:.1} s; everything indexed {:.1} s after the start",
        catch_up.elapsed().as_secs_f64(),
        started.elapsed().as_secs_f64()
    );
}
