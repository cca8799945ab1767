//! Edge cases the corpus lacks: year rollover, IPv6 and IPv4-mapped sources, invalid IPs, invalid
//! UTF-8, truncated lines, `sshd-session`, `message repeated`, RFC 5424, logout only after login.

use chrono::{TimeZone, Utc};
use trailwatch_sources::sshd::parse_syslog;

#[test]
fn edge_cases_fixture() {
    let bytes = include_bytes!("data/sshd/edge_cases.log");
    // The caller turns invalid UTF-8 into U+FFFD; the parser only sees &str.
    let text = String::from_utf8_lossy(bytes);
    let reference = Utc
        .with_ymd_and_hms(2026, 1, 2, 12, 0, 0)
        .single()
        .expect("date");
    let p = parse_syslog(&text, None, reference);
    for t in &p.traces {
        trailwatch_trace::Trace::from_value(t.clone()).expect("every trace validates");
    }
    let got: Vec<(String, String, String)> = p
        .traces
        .iter()
        .map(|t| {
            (
                t["trace_name"].as_str().unwrap_or_default().to_owned(),
                t["user"]["name"].as_str().unwrap_or_default().to_owned(),
                t["source_ip"].as_str().unwrap_or_default().to_owned(),
            )
        })
        .collect();
    let want = [
        ("login", "alice", "2001:db8::10"),
        ("logout", "alice", "2001:db8::10"),
        ("loginfailed", "admin", "198.51.100.7"),
        ("loginfailed", "r\u{fffd}ot", "203.0.113.9"),
        ("loginfailed", "bob", "203.0.113.10"),
        ("loginfailed", "root", "203.0.113.11"),
        ("loginfailed", "root", "203.0.113.11"),
        ("loginfailed", "root", "203.0.113.11"),
        ("loginfailed", "root", "203.0.113.11"),
        ("login", "carol", "192.0.2.44"),
        ("logout", "carol", "192.0.2.44"),
    ];
    let want: Vec<(String, String, String)> = want
        .iter()
        .map(|(a, b, c)| ((*a).to_owned(), (*b).to_owned(), (*c).to_owned()))
        .collect();
    assert_eq!(got, want);
    // Year rollover: the Dec 31 line read on 2026-01-02 is 2025-12-31, the Jan 1 lines 2026.
    let dec31 = Utc.with_ymd_and_hms(2025, 12, 31, 23, 59, 58).single();
    assert_eq!(p.traces[0]["time"], dec31.expect("date").timestamp_millis());
    let jan1 = Utc.with_ymd_and_hms(2026, 1, 1, 0, 10, 0).single();
    assert_eq!(p.traces[1]["time"], jan1.expect("date").timestamp_millis());
    // RFC 5424 with an offset: 00:12:00.5+01:00 is 23:12:00.500Z the day before.
    let t5424 = Utc.with_ymd_and_hms(2025, 12, 31, 23, 12, 0).single();
    assert_eq!(
        p.traces[9]["time"],
        t5424.expect("date").timestamp_millis() + 500
    );
    assert_eq!(p.traces[9]["resource_name"], "web2");
    assert_eq!(p.traces[0]["resource_name"], "bastion");
    let problem_lines: Vec<u64> = p.problems.iter().map(|x| x.line).collect();
    assert_eq!(problem_lines, [6, 7, 9]);
    assert!(p.problems[0].reason.contains("253.252.51.07"));
    assert!(p.problems[1].reason.contains("192.030.0.6"));
    // Lines 2, 4, 11, 12 (line 13 is blank and not a record).
    assert_eq!(p.skipped, 4);
    // Re-importing yields identical traces (ids included): the store can deduplicate.
    assert_eq!(p, parse_syslog(&text, None, reference));
}

/// Found by `fuzz/fuzz_targets/sshd_parse.rs`: a time the trace model refuses (before
/// 1973-03-03T09:46:40Z) is a problem, not an invalid trace.
#[test]
fn times_before_1973_are_problems() {
    let reference = Utc
        .with_ymd_and_hms(2026, 1, 2, 12, 0, 0)
        .single()
        .expect("date");
    let syslog = "<86>1 1396-01-01T00:12:00Z web2 sshd 300 - - Accepted password for carol from 192.0.2.44 port 7 ssh2\n";
    let p = parse_syslog(syslog, None, reference);
    assert!(p.traces.is_empty(), "{p:?}");
    assert_eq!(p.problems.len(), 1, "{p:?}");
    assert!(p.problems[0].reason.contains("before 1973-03-03"), "{p:?}");

    let journald = r#"{"__REALTIME_TIMESTAMP":"0000001433567393","_HOSTNAME":"bastion","SYSLOG_IDENTIFIER":"sshd","_PID":"4242","MESSAGE":"Accepted password for alice from 192.0.2.10 port 51000 ssh2"}"#;
    let p = trailwatch_sources::sshd::parse_journald_json(journald);
    assert!(p.traces.is_empty(), "{p:?}");
    assert_eq!(p.problems.len(), 1, "{p:?}");
    assert!(p.problems[0].reason.contains("before 1973-03-03"), "{p:?}");
}
