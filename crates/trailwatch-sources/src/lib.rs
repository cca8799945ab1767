//! Real sources become CTS traces: parsers from the records of other systems to the trace model
//! (`trailwatch-trace`), each with a documented mapping in `docs/specs/sources.md`. Pure: bytes
//! or text in, traces and problems out; no IO, the reference time passed in.
//!
//! Every parser returns a [`Parsed`]: the traces (CTS trace objects as JSON, ready for
//! `POST /v3/{project_id}/traces`) and the records that did not parse, each with its line (or
//! record index) and the reason — never a silent drop.

pub mod cloud;
pub mod sshd;

/// What a parser produced from one input.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Parsed {
    /// The traces, in input order.
    pub traces: Vec<serde_json::Value>,
    /// The records that did not become a trace, with why.
    pub problems: Vec<Problem>,
    /// Records that were understood but are not audit events (noise), counted, not traced.
    pub skipped: u64,
}

/// Earliest `time` the trace model accepts, in ms: 1973-03-03T09:46:40Z (`trailwatch-trace`
/// reads smaller integers as seconds, so an earlier millisecond value would not round-trip).
pub(crate) const MIN_TIME_MS: i64 = 100_000_000_000;

/// Why `time_ms` cannot be a trace's `time`, if it cannot (the record becomes a [`Problem`]).
pub(crate) fn time_out_of_range(time_ms: i64) -> Option<String> {
    (time_ms < MIN_TIME_MS).then(|| {
        format!("time {time_ms} ms is before 1973-03-03T09:46:40Z, the earliest a trace can have")
    })
}

/// A record that did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line number (or record index for JSON arrays).
    pub line: u64,
    /// Why, for a person.
    pub reason: String,
}
