//! CloudTrail parsing throughput, one core.
//!
//! ```text
//! cargo run --release -p trailwatch-sources --example cloudtrail_bench [CORPUS_JSONL] [MB]
//! ```
//!
//! Builds ~200 MB (default) of CloudTrail JSON Lines in memory by repeating the records of the
//! corpus file (default `../shared/corpus/cloudtrail/invictus-ir_aws_dataset_records.jsonl`)
//! with a varied `eventID`, then times `cloudtrail::parse` over it; also the same data as one
//! `{"Records":[…]}` envelope.

use std::time::Instant;

use trailwatch_sources::cloud::cloudtrail;

fn main() {
    let mut args = std::env::args().skip(1);
    let path = args.next().unwrap_or_else(|| {
        concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../../shared/corpus/cloudtrail/invictus-ir_aws_dataset_records.jsonl"
        )
        .to_owned()
    });
    let target_mb: usize = args.next().and_then(|s| s.parse().ok()).unwrap_or(200);
    let src = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    let lines: Vec<&str> = src.lines().filter(|l| !l.trim().is_empty()).collect();
    let target = target_mb * 1_000_000;

    let mut jsonl = String::with_capacity(target + 1_000_000);
    let mut n = 0u64;
    'outer: loop {
        for l in &lines {
            // Vary the eventID (same length, so the records keep their shape).
            let varied = match l.find("\"eventID\":\"") {
                Some(i) => {
                    let s = i + 11;
                    format!("{}{:08x}{}", &l[..s], n as u32, &l[s + 8..])
                }
                None => (*l).to_owned(),
            };
            jsonl.push_str(&varied);
            jsonl.push('\n');
            n += 1;
            if jsonl.len() >= target {
                break 'outer;
            }
        }
    }
    let mb = jsonl.len() as f64 / 1e6;
    println!("input: {n} records, {mb:.1} MB of JSON Lines (from {path})");

    // Baseline: the JSON syntax scan alone (serde_json, nothing kept).
    for round in 1..=2 {
        let t0 = Instant::now();
        let mut ok = 0u64;
        for l in jsonl.lines() {
            ok += u64::from(serde_json::from_str::<serde::de::IgnoredAny>(l).is_ok());
        }
        let s = t0.elapsed().as_secs_f64();
        assert_eq!(ok, n);
        println!(
            "baseline round {round}: {s:.3} s, {:.0} MB/s (serde_json scan only)",
            mb / s
        );
    }
    for round in 1..=5 {
        let t0 = Instant::now();
        let p = cloudtrail::parse(&jsonl);
        let s = t0.elapsed().as_secs_f64();
        assert_eq!(p.traces.len() as u64, n);
        assert!(p.problems.is_empty());
        println!(
            "jsonl    round {round}: {s:.3} s, {:.0} MB/s, {:.0} records/s",
            mb / s,
            n as f64 / s
        );
    }

    let mut env = String::with_capacity(jsonl.len() + 64);
    env.push_str("{\"Records\":[");
    for (i, l) in jsonl.lines().enumerate() {
        if i > 0 {
            env.push(',');
        }
        env.push_str(l);
    }
    env.push_str("]}");
    let mb = env.len() as f64 / 1e6;
    for round in 1..=2 {
        let t0 = Instant::now();
        let p = cloudtrail::parse(&env);
        let s = t0.elapsed().as_secs_f64();
        assert_eq!(p.traces.len() as u64, n);
        println!(
            "envelope round {round}: {s:.3} s, {:.0} MB/s, {:.0} records/s",
            mb / s,
            n as f64 / s
        );
    }
}
