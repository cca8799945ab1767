//! [`ObjectsError`]: every way an object-store operation can fail.
//!
//! Messages name the bucket, key and operation, never a credential: the secret key lives only in
//! [`crate::SecretKey`] and in the request signer, and no variant carries configuration values.

use std::path::PathBuf;

/// Why an object-store operation failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ObjectsError {
    /// The configuration cannot be used (bad endpoint, root folder not creatable, ...).
    #[error("object store configuration: {reason}")]
    InvalidConfig {
        /// What is wrong, naming the field.
        reason: String,
    },

    /// A bucket name breaks the S3 naming rules (applied to local buckets too).
    #[error("invalid bucket name {name:?}: {reason}")]
    InvalidBucketName {
        /// The rejected name.
        name: String,
        /// The rule it breaks.
        reason: String,
    },

    /// An object key (or list prefix) breaks the key rules ([`crate::validate_key`]).
    #[error("invalid object key {key:?}: {reason}")]
    InvalidObjectKey {
        /// The rejected key.
        key: String,
        /// The rule it breaks.
        reason: String,
    },

    /// An idempotency key is empty or too long.
    #[error("invalid idempotency key: {reason}")]
    InvalidIdempotencyKey {
        /// The rule it breaks.
        reason: &'static str,
    },

    /// A line handed to `append_lines` contains a line break.
    #[error("line {index} of the append contains {what}; each line must be one line")]
    InvalidLine {
        /// Zero-based index of the line in the call.
        index: usize,
        /// `"a line feed"` or `"a carriage return"`.
        what: &'static str,
    },

    /// Appending would grow the object beyond the size an append object may have.
    #[error(
        "appending to {bucket}/{key} would make it {size} bytes, more than the {limit}-byte limit \
         for append objects; start a new object (e.g. one per day)"
    )]
    AppendObjectTooLarge {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Size the object would have.
        size: u64,
        /// The limit.
        limit: u64,
    },

    /// Every attempt of a conditional append lost to a concurrent writer.
    #[error(
        "append to {bucket}/{key} gave up after {attempts} attempts: every conditional write \
         lost to a concurrent writer; nothing was written by this call"
    )]
    Contention {
        /// Bucket.
        bucket: String,
        /// Key.
        key: String,
        /// Attempts made.
        attempts: u32,
    },

    /// The store does not enforce conditional writes (found by
    /// [`crate::Objects::verify_conditional_writes`]); appends would not be safe on it.
    #[error(
        "bucket {bucket}: the store does not enforce {header} on PUT ({detail}); safe appends need it"
    )]
    ConditionalWritesUnsupported {
        /// Bucket probed.
        bucket: String,
        /// `If-Match` or `If-None-Match`.
        header: &'static str,
        /// What was observed.
        detail: String,
    },

    /// The S3 service says the bucket does not exist (trailwatch does not create S3 buckets).
    #[error(
        "{op} {bucket}/{key}: bucket {bucket} does not exist in the object store; create it first"
    )]
    NoSuchBucket {
        /// Operation.
        op: &'static str,
        /// Bucket.
        bucket: String,
        /// Key or prefix.
        key: String,
    },

    /// The object store (local folder or S3 service) answered an operation with an error.
    #[error("{op} {bucket}/{key}: {source}")]
    Store {
        /// Operation (`get`, `put`, `list`, `append`, ...).
        op: &'static str,
        /// Bucket.
        bucket: String,
        /// Key or prefix (may be empty for bucket-level operations).
        key: String,
        /// The store's error.
        #[source]
        source: Box<object_store::Error>,
    },

    /// A local file operation of the append protocol failed.
    #[error("{op} {}: {source}", path.display())]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },

    /// The local append state beside an object cannot be read. Deleting the named file resets
    /// only the idempotency record (retries of recent calls could then append twice); the
    /// object's lines are untouched.
    #[error("corrupt append state {}: {reason}", path.display())]
    CorruptState {
        /// The state file.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },

    /// A blocking task of the local backend panicked or was cancelled.
    #[error("local object-store task failed: {0}")]
    Task(String),
}

impl ObjectsError {
    /// Wraps a store error; an S3 `NoSuchBucket` answer becomes [`ObjectsError::NoSuchBucket`].
    pub(crate) fn store(
        op: &'static str,
        bucket: &str,
        key: &str,
        source: object_store::Error,
    ) -> Self {
        if is_no_such_bucket(&source) {
            return ObjectsError::NoSuchBucket {
                op,
                bucket: bucket.to_owned(),
                key: key.to_owned(),
            };
        }
        ObjectsError::Store {
            op,
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            source: Box::new(source),
        }
    }

    pub(crate) fn io(op: &'static str, path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        ObjectsError::Io {
            op,
            path: path.into(),
            source,
        }
    }
}

/// Whether an S3 error answer carries the `NoSuchBucket` code (object_store reports it as a plain
/// 404 `NotFound` or a generic error, with the response body in the message chain).
pub(crate) fn is_no_such_bucket(e: &object_store::Error) -> bool {
    let mut cur: Option<&dyn std::error::Error> = Some(e);
    while let Some(err) = cur {
        if err.to_string().contains("<Code>NoSuchBucket</Code>") {
            return true;
        }
        cur = err.source();
    }
    false
}
