//! Fuzzes the sshd parsers (`trailwatch-sources::sshd`), which read log files and journald
//! streams written by other programs (`trailwatch import`, `trailwatch collect`).
//!
//! The input is read as text (lossy UTF-8, as the collector does) and parsed both as syslog
//! (RFC 3164 / ISO / RFC 5424) and as `journalctl -o json` lines.
//!
//! Checked, for both parsers: no panic; every trace passes `Trace::from_value` (the parser
//! promises traces ready for ingest); the same input gives the same result twice; and parsing
//! the text in two pieces split at a line boundary, with the open sessions carried from the
//! first call into the second (what the collector does with its checkpoint), gives exactly the
//! traces, problems (line numbers shifted) and skipped count of parsing it whole.

#![no_main]

use chrono::{DateTime, Utc};
use libfuzzer_sys::fuzz_target;
use trailwatch_sources::Parsed;
use trailwatch_sources::sshd::{self, OpenSession};

/// 2026-01-02T12:00:00Z: the reference that fixes the year of RFC 3164 timestamps.
const REFERENCE_SECS: i64 = 1_767_355_200;
const HOST_DEFAULT: &str = "fuzzhost";

fuzz_target!(|data: &[u8]| {
    let Some(reference) = DateTime::<Utc>::from_timestamp(REFERENCE_SECS, 0) else {
        return;
    };
    let text = String::from_utf8_lossy(data);
    // Where to split: the newline closest after a position the input's first byte picks.
    let split_hint = data.first().map_or(0, |b| *b as usize * text.len() / 256);

    let syslog = |t: &str, sessions: &mut Vec<OpenSession>| {
        sshd::parse_syslog_continued(t, Some(HOST_DEFAULT), reference, sessions)
    };
    let whole = sshd::parse_syslog(&text, Some(HOST_DEFAULT), reference);
    check("syslog", &text, split_hint, &whole, syslog);

    let journald =
        |t: &str, sessions: &mut Vec<OpenSession>| sshd::parse_journald_json_continued(t, sessions);
    let whole = sshd::parse_journald_json(&text);
    check("journald", &text, split_hint, &whole, journald);
});

fn check(
    what: &str,
    text: &str,
    split_hint: usize,
    whole: &Parsed,
    parse: impl Fn(&str, &mut Vec<OpenSession>) -> Parsed,
) {
    for t in &whole.traces {
        if let Err(e) = trailwatch_trace::Trace::from_value(t.clone()) {
            panic!("{what}: the parser emitted a trace that does not validate: {e:?}\n{t}");
        }
    }
    let again = parse(text, &mut Vec::new());
    assert_eq!(&again, whole, "{what}: same input, different result");

    // Split after a '\n' at or after split_hint (if any): line boundaries only.
    let Some(nl) = text.get(split_hint..).and_then(|rest| rest.find('\n')) else {
        return;
    };
    let cut = split_hint + nl + 1;
    let (first, second) = text.split_at(cut);
    let mut sessions = Vec::new();
    let a = parse(first, &mut sessions);
    let b = parse(second, &mut sessions);
    let lines_in_first = first.matches('\n').count() as u64;

    let mut traces = a.traces.clone();
    traces.extend(b.traces.iter().cloned());
    assert_eq!(
        traces, whole.traces,
        "{what}: parsing in two pieces (cut at byte {cut}) gives other traces"
    );
    let mut problems = a.problems.clone();
    problems.extend(b.problems.iter().map(|p| trailwatch_sources::Problem {
        line: p.line + lines_in_first,
        reason: p.reason.clone(),
    }));
    assert_eq!(
        problems, whole.problems,
        "{what}: parsing in two pieces (cut at byte {cut}) gives other problems"
    );
    assert_eq!(
        a.skipped + b.skipped,
        whole.skipped,
        "{what}: parsing in two pieces (cut at byte {cut}) skips another number of records"
    );
}
