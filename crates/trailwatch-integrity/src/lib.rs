//! The tamper-evident archive's pure core: where objects go, what trace, record and digest files
//! hold, how digests are signed and chained, and how an archive is verified offline.
//!
//! - [`layout`]: the CTS object keys (`CloudTraces/{region}/{Y}/{M}/{D}/{tracker}/…`), built by
//!   [`Layout`] and parsed back by [`parse_key`].
//! - [`file`](mod@file): trace files (`{"traces":[…]}`, gzip level 6) and record files (alarms, delivery
//!   receipts), with their SHA-256; [`read_file`] reads them back with precise errors.
//! - [`digest`]: the hourly digest of a tracker — CTS's digest fields with SHA-256 file hashes, a
//!   sequence number and the previous digest's hash and signature — signed with Ed25519 over
//!   its RFC 8785 canonical JSON ([`canonical`]).
//! - [`keys`]: the Ed25519 key pair, its PEM forms and its key id.
//! - [`verify`](mod@verify): [`verify()`] over an [`ObjectSource`], returning a [`Report`] that names
//!   every missing, altered, unlisted, reordered or truncated object.
//!
//! Nothing here does IO or reads the clock: callers pass bytes, randomness and `now`. The format
//! is specified in `docs/specs/archive.md`.
//!
//! # Example
//!
//! One hour of one tracker, written and verified:
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use trailwatch_integrity::*;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let key = SigningKey::from_seed(&[7; 32]); // use 32 bytes from the OS RNG
//! let layout = Layout::new("eu-de", "system", "")?;
//! let start = Utc.with_ymd_and_hms(2026, 3, 5, 10, 0, 0).single().ok_or("time")?;
//! let written = start + chrono::TimeDelta::minutes(5);
//!
//! let mut file = TraceFileBuilder::new(Compression::Gzip);
//! file.push(&serde_json::json!({"trace_id": "t1", "time": written.timestamp_millis()}))?;
//! let file = file.finish()?;
//! let file_key = layout.trace_file_key(Some("ECS"), written, [1; 8], Compression::Gzip)?;
//!
//! let digest = sign_digest(
//!     DigestInput {
//!         layout: &layout,
//!         project_id: "p1",
//!         bucket: "audit",
//!         start,
//!         end: start + chrono::TimeDelta::hours(1),
//!         ending: false,
//!         previous: None,
//!         files: vec![file.entry("audit", &file_key)],
//!     },
//!     &key,
//! )?;
//!
//! let mut archive = MemorySource::default();
//! archive.objects.insert(file_key.clone(), file.bytes.clone());
//! archive.objects.insert(digest.key.clone(), digest.bytes.clone());
//! let now = start + chrono::TimeDelta::minutes(70);
//! let report = verify(&archive, &key.public_key(), None, None, now)?;
//! assert!(report.valid(), "{:?}", report.problems);
//! assert_eq!(report.counts.traces, 1);
//!
//! archive.objects.get_mut(&file_key).ok_or("file")?[20] ^= 1;
//! let report = verify(&archive, &key.public_key(), None, None, now)?;
//! assert_eq!(report.problems[0].kind, ProblemKind::Altered);
//! assert_eq!(report.problems[0].object, file_key);
//! # Ok(())
//! # }
//! ```

pub mod canonical;
pub mod digest;
pub mod file;
pub mod keys;
pub mod layout;
pub mod verify;

pub use digest::{
    Digest, DigestError, DigestFile, DigestInput, FileEntry, PreviousDigest, SignedDigest,
    read_digest, sign_digest,
};
pub use file::{
    BuiltFile, FileContents, FileError, FileShape, ReadError, RecordFileBuilder, TraceFileBuilder,
    read_file,
};
pub use keys::{KeyError, KeyId, PublicKey, SigningKey};
pub use layout::{
    Compression, FileKind, Layout, LayoutError, ObjectKind, ParsedKey, RecordKind, parse_key,
};
pub use verify::{
    ChainSummary, Counts, ListedObject, MemorySource, ObjectSource, Problem, ProblemKind, Progress,
    Report, SourceError, VerifyError, VerifyOptions, verify, verify_with,
};
