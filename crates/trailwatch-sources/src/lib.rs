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

/// A record that did not parse.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line number (or record index for JSON arrays).
    pub line: u64,
    /// Why, for a person.
    pub reason: String,
}
