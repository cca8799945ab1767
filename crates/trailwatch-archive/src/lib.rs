//! trailwatch's object storage: a local folder or any S3-compatible store (OBS, MinIO, AWS S3)
//! through one code path ([`object_store`] 0.14).
//!
//! - [`ObjectStoreConfig`] says where objects live (`type = "local"` or `type = "s3"`);
//! - [`Objects`] opens it: [`Objects::bucket`] (the cached `object_store` client),
//!   [`Objects::get`], [`Objects::put_if_absent`] (immutable objects), [`Objects::list`], and
//!   [`Objects::append_lines`], the alarm log's safe concurrent, idempotent append
//!   ([`append`] holds the algorithm and its proof, `local` the local folder's part);
//! - names are checked the same way for every backend ([`validate_bucket_name`],
//!   [`validate_key`]).
//!
//! Module layout: `objects` (the facade), `append` (conditional-write appends), `local` (the
//! local folder's lock-and-rename conditional update), `names`, `config`, `error`, and
//! [`archiver`]: the CTS trace-file archiver (a trace-log consumer writing trace files and
//! hourly signed digests with `trailwatch-integrity`) on top of `Objects::put_if_absent`.

pub mod append;
pub mod archiver;
mod config;
mod error;
mod local;
mod names;
mod objects;
pub mod source;

pub use append::{
    APPLIED_KEYS_REMEMBERED, AppendOutcome, AppendPolicy, MAX_APPEND_OBJECT_BYTES,
    MAX_IDEMPOTENCY_KEY_BYTES,
};
pub use config::{ObjectStoreConfig, SecretKey};
pub use error::ObjectsError;
pub use names::{
    MAX_KEY_BYTES, MAX_SEGMENT_BYTES, validate_bucket_name, validate_key, validate_prefix,
};
pub use objects::{ObjectInfo, Objects, PutIfAbsent};

/// The `object_store` crate, re-exported so callers of [`Objects::bucket`] use the same version.
pub use object_store;
