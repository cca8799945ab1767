//! Parse speed of the old and the new trace parse paths, in µs per trace.
//!
//! ```sh
//! CARGO_BUILD_JOBS=1 cargo run --release -p trailwatch-trace --example parse_speed -- \
//!     [/tmp/t200k.jsonl] [lines]
//! ```
//!
//! Old: `serde_json::from_str::<Value>` + `Trace::from_value` per line. New:
//! `Trace::from_json_str`. Batch: bodies of 1000 lines as `{"traces":[…]}` through
//! `parse_batch_slow` (the ingest handler's current logic) and `parse_batch`. Each figure is the
//! best of several rounds, so a busy neighbour on a shared machine skews it less.

use std::hint::black_box;
use std::time::Instant;

use serde_json::Value;
use trailwatch_trace::{Trace, TraceError, parse_batch, parse_batch_slow};

const ROUNDS: usize = 5;
const BATCH: usize = 1000;

fn main() -> Result<(), String> {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| "/tmp/t200k.jsonl".to_owned());
    let limit: usize = match args.next() {
        Some(n) => n.parse().map_err(|e| format!("lines: {e}"))?,
        None => 50_000,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| format!("{path}: {e}"))?;
    let lines: Vec<&str> = text
        .lines()
        .filter(|l| !l.trim().is_empty())
        .take(limit)
        .collect();
    if lines.is_empty() {
        return Err(format!("{path}: no lines"));
    }
    let bytes: usize = lines.iter().map(|l| l.len()).sum();
    println!(
        "{} traces from {path}, {} bytes each on average",
        lines.len(),
        bytes / lines.len()
    );

    // Same verdicts, or the speed comparison means nothing.
    let differing = lines
        .iter()
        .filter(|l| Trace::from_json_str(l) != old(l))
        .count();
    if differing > 0 {
        return Err(format!("{differing} lines parse differently"));
    }

    let bodies: Vec<String> = lines
        .chunks(BATCH)
        .map(|c| format!("{{\"traces\":[{}]}}", c.join(",")))
        .collect();

    let per_trace = |f: &dyn Fn() -> usize| -> f64 {
        (0..ROUNDS)
            .map(|_| {
                let start = Instant::now();
                let n = black_box(f());
                start.elapsed().as_secs_f64() * 1e6 / n as f64
            })
            .fold(f64::INFINITY, f64::min)
    };

    // PARSE_SPEED_PROFILE=single|batch: only that new path, many rounds, for `perf record`.
    if let Ok(mode) = std::env::var("PARSE_SPEED_PROFILE") {
        let us = per_trace(&|| {
            for _ in 0..10 {
                if mode == "batch" {
                    bodies
                        .iter()
                        .for_each(|b| drop(black_box(parse_batch(b.as_bytes(), BATCH))));
                } else {
                    lines
                        .iter()
                        .for_each(|l| drop(black_box(Trace::from_json_str(l))));
                }
            }
            lines.len() * 10
        });
        println!("new {mode} only: {us:.2} µs/trace");
        return Ok(());
    }

    let old_us = per_trace(&|| {
        lines.iter().for_each(|l| drop(black_box(old(l))));
        lines.len()
    });
    let value_us = per_trace(&|| {
        lines
            .iter()
            .for_each(|l| drop(black_box(serde_json::from_str::<Value>(l))));
        lines.len()
    });
    let new_us = per_trace(&|| {
        lines
            .iter()
            .for_each(|l| drop(black_box(Trace::from_json_str(l))));
        lines.len()
    });
    println!(
        "old  (Value + from_value):     {old_us:.2} µs/trace (of which Value parse {value_us:.2})"
    );
    println!("new  (Trace::from_json_str):   {new_us:.2} µs/trace");

    for body in &bodies {
        if parse_batch(body.as_bytes(), BATCH) != parse_batch_slow(body.as_bytes(), BATCH) {
            return Err("a batch body parses differently".to_owned());
        }
    }
    let batch_old_us = per_trace(&|| {
        bodies
            .iter()
            .for_each(|b| drop(black_box(parse_batch_slow(b.as_bytes(), BATCH))));
        lines.len()
    });
    let batch_new_us = per_trace(&|| {
        bodies
            .iter()
            .for_each(|b| drop(black_box(parse_batch(b.as_bytes(), BATCH))));
        lines.len()
    });
    println!("batch old (parse_batch_slow):  {batch_old_us:.2} µs/trace");
    println!("batch new (parse_batch):       {batch_new_us:.2} µs/trace");
    Ok(())
}

fn old(s: &str) -> Result<Trace, TraceError> {
    match serde_json::from_str::<Value>(s) {
        Ok(v) => Trace::from_value(v),
        Err(e) => Err(TraceError {
            field: String::new(),
            message: e.to_string(),
        }),
    }
}
