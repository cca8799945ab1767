//! sshd syslog parsing throughput, and the peer `fail2ban-regex` over the same file.
//!
//! ```text
//! python3 ../shared/bench-peers/gen_authlog.py 500000 /tmp/authlog-500k.log
//! cargo run --release -p trailwatch-sources --example sshd_bench -- /tmp/authlog-500k.log
//! ```
//!
//! One core: `parse_syslog` is single-threaded. The best of 5 runs is reported. The peer runs
//! `fail2ban-regex FILE /etc/fail2ban/filter.d/sshd.conf` once, if it is installed.

use std::process::{Command, Stdio};
use std::time::Instant;

use chrono::{TimeZone, Utc};
use trailwatch_sources::sshd::parse_syslog;

fn main() {
    let path = std::env::args()
        .nth(1)
        .unwrap_or_else(|| "/tmp/authlog-500k.log".to_owned());
    let text = match std::fs::read(&path) {
        Ok(b) => String::from_utf8_lossy(&b).into_owned(),
        Err(e) => {
            eprintln!(
                "cannot read {path}: {e}\nmake it with: python3 ../shared/bench-peers/gen_authlog.py 500000 {path}"
            );
            std::process::exit(2);
        }
    };
    let lines = text.lines().count();
    let reference = Utc
        .with_ymd_and_hms(2026, 11, 25, 0, 0, 0)
        .single()
        .expect("valid date");
    let mut best = f64::INFINITY;
    let mut summary = String::new();
    for _ in 0..5 {
        let t = Instant::now();
        let p = parse_syslog(&text, Some("localhost"), reference);
        let secs = t.elapsed().as_secs_f64();
        if secs < best {
            best = secs;
            summary = format!(
                "{} traces, {} skipped, {} problems",
                p.traces.len(),
                p.skipped,
                p.problems.len()
            );
        }
    }
    let ours = lines as f64 / best;
    println!(
        "trailwatch parse_syslog: {lines} lines, {:.1} MB in {:.3} s (best of 5) = {:.0} lines/s, {:.1} MB/s ({summary})",
        text.len() as f64 / 1e6,
        best,
        ours,
        text.len() as f64 / 1e6 / best
    );

    let filter = "/etc/fail2ban/filter.d/sshd.conf";
    let t = Instant::now();
    match Command::new("fail2ban-regex")
        .args([path.as_str(), filter])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
    {
        Ok(status) => {
            let secs = t.elapsed().as_secs_f64();
            let peer = lines as f64 / secs;
            println!(
                "peer fail2ban-regex {path} {filter}: {secs:.3} s = {peer:.0} lines/s (exit {status})"
            );
            println!("ratio: trailwatch / fail2ban-regex = {:.1}x", ours / peer);
        }
        Err(e) => {
            println!("peer fail2ban-regex: not run ({e}); it is not installed here");
            println!(
                "ratio against the issue's quoted fail2ban-regex figure (~32,000 lines/s, not measured here): {:.1}x",
                ours / 32_000.0
            );
        }
    }
}
