//! Throughput of the `login_audit` decision on one thread.
//!
//! ```text
//! python3 ../shared/bench-peers/gen_traces.py 200000 /tmp/traces.jsonl /tmp/allowlist.txt
//! cargo run --release -p trailwatch-functions --example decision_bench -- /tmp/traces.jsonl /tmp/allowlist.txt
//! ```
//!
//! Parses every trace first (timed separately, traces/s), then runs `LoginAudit::decide` over
//! all of them repeatedly until at least 2 s have passed, and prints decisions/s and the
//! decision counts of one pass. Last, `IpList::contains` alone on the traces' addresses. The allowlist file is the generator's: one CIDR per line, which
//! the `IP` syntax accepts as is. Mode is `allowlist`, Actions the default `login,logout`.

use std::error::Error;
use std::hint::black_box;
use std::time::{Duration, Instant};

use trailwatch_functions::UserData;
use trailwatch_functions::builtins::login_audit::{Decision, LoginAudit};
use trailwatch_trace::Trace;

const MIN_RUN: Duration = Duration::from_secs(2);

fn main() -> Result<(), Box<dyn Error>> {
    let mut args = std::env::args().skip(1);
    let (Some(traces_path), Some(allow_path)) = (args.next(), args.next()) else {
        return Err("usage: decision_bench <traces.jsonl> <allowlist.txt>".into());
    };
    let text = std::fs::read_to_string(&traces_path)
        .map_err(|e| format!("cannot read {traces_path}: {e}"))?;
    let allow = std::fs::read_to_string(&allow_path)
        .map_err(|e| format!("cannot read {allow_path}: {e}"))?;

    let user_data = UserData::from_pairs([
        ("SMN_Topic", "cts_test"),
        ("RegionName", "eu-de"),
        ("IP", allow.as_str()),
    ])?;
    let audit = LoginAudit::from_config(&user_data)?;
    println!(
        "allowlist: {} entries from {allow_path}; actions {:?}, mode {:?}",
        audit.ips().len(),
        audit.actions(),
        audit.mode()
    );

    // 1. parse
    let start = Instant::now();
    let mut traces = Vec::new();
    let mut bad = 0usize;
    for (i, line) in text.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        match Trace::from_json_str(line) {
            Ok(t) => traces.push(t),
            Err(e) => {
                bad += 1;
                if bad <= 3 {
                    eprintln!("line {}: {e}", i + 1);
                }
            }
        }
    }
    let parse = start.elapsed();
    if traces.is_empty() {
        return Err(format!("no traces parsed from {traces_path}").into());
    }
    println!(
        "parse:  {} traces ({bad} rejected, {:.1} MB) in {:.3} s = {:.0} traces/s",
        traces.len(),
        text.len() as f64 / 1e6,
        parse.as_secs_f64(),
        traces.len() as f64 / parse.as_secs_f64()
    );

    // one counted pass
    let (mut alarms, mut allowed, mut not_audited, mut no_ip) = (0usize, 0usize, 0usize, 0usize);
    for t in &traces {
        match audit.decide(t) {
            Decision::Alarm(_) => alarms += 1,
            Decision::Allowed(_) => allowed += 1,
            Decision::NotAudited => not_audited += 1,
            Decision::NoSourceIp | Decision::BadSourceIp => no_ip += 1,
        }
    }
    println!(
        "decisions per pass: {alarms} alarm, {allowed} allowed, {not_audited} not audited, {no_ip} without source_ip"
    );

    // 2. decide, repeated until MIN_RUN
    let start = Instant::now();
    let mut decisions = 0u64;
    let mut alarm_total = 0u64;
    let mut passes = 0u32;
    while start.elapsed() < MIN_RUN {
        for t in &traces {
            if matches!(audit.decide(black_box(t)), Decision::Alarm(_)) {
                alarm_total += 1;
            }
        }
        decisions += traces.len() as u64;
        passes += 1;
    }
    let run = start.elapsed();
    println!(
        "decide: {decisions} decisions ({passes} passes) in {:.3} s = {:.0} decisions/s, {} alarms per pass",
        run.as_secs_f64(),
        decisions as f64 / run.as_secs_f64(),
        alarm_total / u64::from(passes.max(1))
    );

    // 3. the allowlist lookup alone, on the traces' (normalised) source addresses
    let addrs: Vec<std::net::IpAddr> = traces.iter().filter_map(Trace::source_addr).collect();
    let ips = audit.ips();
    let start = Instant::now();
    let mut lookups = 0u64;
    let mut hits = 0u64;
    while start.elapsed() < MIN_RUN {
        for a in &addrs {
            hits += u64::from(ips.contains(black_box(*a)));
        }
        lookups += addrs.len() as u64;
    }
    let run = start.elapsed();
    println!(
        "lookup: {lookups} IpList::contains in {:.3} s = {:.0} lookups/s ({:.1} % listed)",
        run.as_secs_f64(),
        lookups as f64 / run.as_secs_f64(),
        100.0 * hits as f64 / lookups.max(1) as f64
    );
    Ok(())
}
