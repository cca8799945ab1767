//! Cloud and platform audit records: AWS CloudTrail, Windows Security logon events, Kubernetes audit, generic JSON.
//!
//! Each submodule is a pure parser (text in, [`crate::Parsed`] out). The mapping of every source to
//! the CTS trace model is documented in `docs/specs/sources.md`; the short version:
//!
//! * [`cloudtrail::parse`]: `{"Records":[…]}` files and JSON Lines.
//! * [`windows::parse_json`] / [`windows::parse_xml`]: Security log events 4624, 4625, 4634, 4647,
//!   4648 and 4672 (other event IDs are counted in [`crate::Parsed::skipped`]).
//! * [`k8s::parse`]: `audit.k8s.io` Event JSON Lines.
//! * [`generic::parse`]: JSON Lines with a configurable [`generic::Mapping`].
//!
//! Every trace keeps the original record as a JSON string in `request`, carries a deterministic
//! `trace_id`, and passes `trailwatch_trace::Trace::from_value`.

pub mod cloudtrail;
mod common;
pub mod generic;
pub mod k8s;
pub mod windows;

pub use common::MAX_RECORD_BYTES;
