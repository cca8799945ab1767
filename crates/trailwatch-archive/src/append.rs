//! Appending lines to an object: no lost lines, no duplicated lines, one call's lines together,
//! whether callers overlap in one process or on many nodes, and whether a call is retried after a
//! crash or a timeout.
//!
//! # The algorithm (the same for every backend)
//!
//! An append object is a pair *(content, applied record)* with a *version*. The applied record
//! holds the idempotency tokens of the last [`APPLIED_KEYS_REMEMBERED`] calls that appended to the
//! object (a token is the first 16 bytes of SHA-256 of the caller's idempotency key, base64url).
//! One call `append_lines(lines, key)` does:
//!
//! 1. read *(content, record, version)* (absent object: empty content, empty record, no version);
//! 2. if the call's token is in the record: return [`AppendOutcome::AlreadyApplied`];
//! 3. write *(content + lines, record + token)* **conditionally**: only if the object still has
//!    `version` (or, if it was absent, still does not exist). The content and the record change
//!    in this *one* conditional write;
//! 4. on a precondition failure, wait (full-jitter exponential backoff) and go to 1, at most
//!    [`AppendPolicy::max_attempts`] times, then fail with [`ObjectsError::Contention`]
//!    (nothing was written by the call). When the outcome of a write is unknown (a transport
//!    error after the request may have been applied), go to 1 as well: the re-read tells whether
//!    the write landed (the token is in the record) or not.
//!
//! # Why it is correct
//!
//! *No loss.* A write succeeds only if the object is still at the version that was read, and the
//! check and the write are one atomic step of the store. So every successful write replaces
//! exactly the state it was computed from, and that state's content is a prefix of the new
//! content. By induction the content is the concatenation, in commit order, of the chunks of the
//! calls that committed; nothing a committed call wrote is ever dropped.
//!
//! *Contiguity.* A call's lines (each ended by `\n`, none containing a line break) are one chunk
//! placed at the end of the content in one write, so nothing can come between them.
//!
//! *No duplicates.* The record and the content change together, so at every version "the token is
//! in the record" holds exactly when that call's chunk is in the content (for the last
//! [`APPLIED_KEYS_REMEMBERED`] calls). A call commits only from a state whose record lacks its
//! token, i.e. whose content lacks its chunk. Two attempts with the same key (a retry racing the
//! original, or a retry after a crash) cannot both commit from such a state: the first changes
//! the version, the second's conditional write fails, its re-read sees the token, and it answers
//! `AlreadyApplied`. A retry that comes after a successful but unacknowledged write (timeout,
//! crash of the caller) likewise sees the token and writes nothing.
//!
//! *Limits (documented, not hidden).* Only the newest [`APPLIED_KEYS_REMEMBERED`] tokens are kept:
//! a retry that arrives after more than that many later appends to the same object appends again.
//! A retry must carry the same lines as the original (the key identifies the call; the lines are
//! not compared). If something other than `append_lines` rewrites or deletes the object, the
//! record starts over from that content. An empty `lines` writes nothing.
//!
//! # S3-compatible stores
//!
//! The content is the object's body, the record its user metadata `x-amz-meta-tw-applied`
//! (64 × 23 bytes ≈ 1.5 KB, under AWS's 2 KB metadata limit), the version its ETag. Step 3 is one
//! `PutObject` with `If-Match: <etag>` (`If-None-Match: *` to create): body and metadata are
//! replaced by one request, atomically. S3's ETag is the MD5 of the body; since every commit makes
//! the body strictly longer and never otherwise changes it, an object never returns to an earlier
//! ETag (no ABA), and the record, which only changes together with the body, is covered by it.
//! The store must *enforce* `If-Match` and `If-None-Match` on `PutObject` (AWS S3 since 2024,
//! MinIO, Cloudflare R2; check OBS with [`crate::Objects::verify_conditional_writes`] before
//! relying on it: a store that ignores the headers would silently turn step 3 into a blind
//! overwrite).
//!
//! # Local folder
//!
//! `object_store`'s `LocalFileSystem` supports neither `PutMode::Update` nor attributes, so the
//! local backend (`crate::local`) implements step 1 and step 3 itself, across processes, with an
//! exclusive OS lock; see that module for the files and the crash-recovery proof.

use std::collections::VecDeque;
use std::time::Duration;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use bytes::Bytes;
use object_store::path::Path;
use object_store::{
    Attribute, Attributes, GetOptions, ObjectStore, PutMode, PutOptions, PutPayload, UpdateVersion,
};
use rand::Rng as _;
use sha2::{Digest as _, Sha256};

use crate::error::{ObjectsError, is_no_such_bucket};

/// How many of the newest idempotency keys an append object remembers.
pub const APPLIED_KEYS_REMEMBERED: usize = 64;

/// Largest size an append object may reach. Every append rewrites the whole object, so append
/// objects are meant to be rotated (e.g. one key per day).
pub const MAX_APPEND_OBJECT_BYTES: u64 = 256 * 1024 * 1024;

/// Longest idempotency key, in bytes.
pub const MAX_IDEMPOTENCY_KEY_BYTES: usize = 1024;

/// The user-metadata name of the applied record on S3 (`x-amz-meta-tw-applied`).
pub(crate) const APPLIED_METADATA: &str = "tw-applied";

/// Length of one token: 16 bytes in unpadded base64url.
const TOKEN_LEN: usize = 22;

/// What `append_lines` did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AppendOutcome {
    /// This call's lines are now in the object, exactly once.
    Appended {
        /// Conditional writes attempted (1 when nobody else was writing; 0 for an empty call).
        attempts: u32,
    },
    /// The call found its key's lines already in the object and wrote nothing more. They were
    /// appended by an earlier call with the same key (or, rarely, by this call's own write when
    /// the store's answer was lost and `object_store`'s transparent HTTP retry of it then failed
    /// its precondition). Either way the lines are in the object exactly once.
    AlreadyApplied,
}

/// Bounds of the conditional-write retry loop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendPolicy {
    /// Read-and-conditional-write attempts before giving up with [`ObjectsError::Contention`].
    pub max_attempts: u32,
    /// Upper bound of the first backoff; doubles per failed attempt (full jitter: the actual wait
    /// is uniform in `0..=bound`).
    pub base_delay: Duration,
    /// Cap of the backoff bound.
    pub max_delay: Duration,
}

impl Default for AppendPolicy {
    fn default() -> Self {
        AppendPolicy {
            max_attempts: 64,
            base_delay: Duration::from_millis(4),
            max_delay: Duration::from_millis(500),
        }
    }
}

impl AppendPolicy {
    /// The wait before attempt `attempt + 1` after `attempt` failed attempts (full jitter).
    pub(crate) fn backoff(&self, attempt: u32) -> Duration {
        let exp = attempt.saturating_sub(1).min(20);
        let bound = self
            .base_delay
            .saturating_mul(1u32 << exp)
            .min(self.max_delay);
        let micros = u64::try_from(bound.as_micros()).unwrap_or(u64::MAX);
        Duration::from_micros(rand::rng().random_range(0..=micros))
    }
}

/// The idempotency token of a key: base64url of the first 16 bytes of its SHA-256.
pub(crate) fn token_for(idempotency_key: &str) -> String {
    let digest = Sha256::digest(idempotency_key.as_bytes());
    URL_SAFE_NO_PAD.encode(&digest[..16])
}

/// The applied record: tokens of the newest calls, oldest first.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct AppliedKeys(VecDeque<String>);

impl AppliedKeys {
    /// Reads a record, keeping only well-formed tokens (a damaged entry is dropped, not fatal).
    pub(crate) fn from_tokens<I, S>(tokens: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let mut out = VecDeque::new();
        for t in tokens {
            let t = t.as_ref().trim();
            if t.len() == TOKEN_LEN
                && t.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
            {
                out.push_back(t.to_owned());
            }
        }
        while out.len() > APPLIED_KEYS_REMEMBERED {
            out.pop_front();
        }
        AppliedKeys(out)
    }

    /// Parses the S3 metadata value (comma-separated tokens).
    pub(crate) fn from_metadata(value: &str) -> Self {
        Self::from_tokens(value.split(','))
    }

    pub(crate) fn to_metadata(&self) -> String {
        self.0
            .iter()
            .map(String::as_str)
            .collect::<Vec<_>>()
            .join(",")
    }

    pub(crate) fn tokens(&self) -> impl Iterator<Item = &str> {
        self.0.iter().map(String::as_str)
    }

    pub(crate) fn contains(&self, token: &str) -> bool {
        self.0.iter().any(|t| t == token)
    }

    /// The record after one more call, trimmed to the newest [`APPLIED_KEYS_REMEMBERED`].
    pub(crate) fn with(&self, token: &str) -> Self {
        let mut next = self.0.clone();
        next.push_back(token.to_owned());
        while next.len() > APPLIED_KEYS_REMEMBERED {
            next.pop_front();
        }
        AppliedKeys(next)
    }
}

/// Checks the arguments of an append and renders its chunk (each line + `\n`).
pub(crate) fn render_chunk(
    lines: &[String],
    idempotency_key: &str,
) -> Result<Vec<u8>, ObjectsError> {
    if idempotency_key.is_empty() {
        return Err(ObjectsError::InvalidIdempotencyKey {
            reason: "must not be empty",
        });
    }
    if idempotency_key.len() > MAX_IDEMPOTENCY_KEY_BYTES {
        return Err(ObjectsError::InvalidIdempotencyKey {
            reason: "longer than 1024 bytes",
        });
    }
    let mut chunk = Vec::with_capacity(lines.iter().map(|l| l.len() + 1).sum());
    for (index, line) in lines.iter().enumerate() {
        if line.contains('\n') {
            return Err(ObjectsError::InvalidLine {
                index,
                what: "a line feed",
            });
        }
        if line.contains('\r') {
            return Err(ObjectsError::InvalidLine {
                index,
                what: "a carriage return",
            });
        }
        chunk.extend_from_slice(line.as_bytes());
        chunk.push(b'\n');
    }
    Ok(chunk)
}

/// One read of an append object.
#[derive(Debug)]
pub(crate) struct Snapshot<V> {
    pub(crate) content: Bytes,
    pub(crate) applied: AppliedKeys,
    pub(crate) version: V,
}

/// Why a conditional write did not happen.
#[derive(Debug)]
pub(crate) enum WriteError {
    /// The object is no longer at the version read: re-read and try again.
    Conflict,
    /// The write may or may not have been applied (transport error): re-read to find out.
    Uncertain(ObjectsError),
    /// The write cannot succeed (permissions, configuration): give up.
    Fatal(ObjectsError),
}

/// S3 step 1: body, record and ETag of the object; `None` when absent.
pub(crate) async fn s3_read(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    path: &Path,
) -> Result<Option<Snapshot<UpdateVersion>>, ObjectsError> {
    let result = match store.get_opts(path, GetOptions::default()).await {
        Ok(r) => r,
        Err(e @ object_store::Error::NotFound { .. }) if !is_no_such_bucket(&e) => return Ok(None),
        Err(e) => return Err(ObjectsError::store("append (read)", bucket, key, e)),
    };
    let applied = result
        .attributes
        .get(&Attribute::Metadata(APPLIED_METADATA.into()))
        .map(|v| AppliedKeys::from_metadata(v.as_ref()))
        .unwrap_or_default();
    let version = UpdateVersion {
        e_tag: result.meta.e_tag.clone(),
        version: result.meta.version.clone(),
    };
    let content = result
        .bytes()
        .await
        .map_err(|e| ObjectsError::store("append (read)", bucket, key, e))?;
    Ok(Some(Snapshot {
        content,
        applied,
        version,
    }))
}

/// S3 step 3: one `PutObject` carrying body and record, conditional on the ETag read
/// (`If-Match`) or on absence (`If-None-Match: *`).
pub(crate) async fn s3_write(
    store: &dyn ObjectStore,
    bucket: &str,
    key: &str,
    path: &Path,
    expected: Option<UpdateVersion>,
    content: Bytes,
    applied: &AppliedKeys,
) -> Result<(), WriteError> {
    let mut attributes = Attributes::new();
    attributes.insert(Attribute::ContentType, "text/plain; charset=utf-8".into());
    attributes.insert(
        Attribute::Metadata(APPLIED_METADATA.into()),
        applied.to_metadata().into(),
    );
    let mode = match expected {
        Some(v) if v.e_tag.is_none() => {
            return Err(WriteError::Fatal(ObjectsError::store(
                "append (write)",
                bucket,
                key,
                object_store::Error::NotSupported {
                    source: "the store returned no ETag for the object, so it cannot be \
                             updated conditionally"
                        .into(),
                },
            )));
        }
        Some(v) => PutMode::Update(v),
        None => PutMode::Create,
    };
    let opts = PutOptions {
        mode,
        attributes,
        ..PutOptions::default()
    };
    match store.put_opts(path, PutPayload::from(content), opts).await {
        Ok(_) => Ok(()),
        Err(
            object_store::Error::Precondition { .. } | object_store::Error::AlreadyExists { .. },
        ) => Err(WriteError::Conflict),
        Err(e @ (object_store::Error::Generic { .. } | object_store::Error::JoinError { .. })) => {
            Err(WriteError::Uncertain(ObjectsError::store(
                "append (write)",
                bucket,
                key,
                e,
            )))
        }
        Err(e) => Err(WriteError::Fatal(ObjectsError::store(
            "append (write)",
            bucket,
            key,
            e,
        ))),
    }
}

/// After how many uncertain writes (transport errors) a call stops and reports the error.
pub(crate) const MAX_UNCERTAIN_WRITES: u32 = 3;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_fixed_width_and_record_is_bounded() {
        let t = token_for("invocation-1");
        assert_eq!(t.len(), TOKEN_LEN);
        assert_eq!(t, token_for("invocation-1"));
        assert_ne!(t, token_for("invocation-2"));

        let mut rec = AppliedKeys::default();
        for i in 0..(APPLIED_KEYS_REMEMBERED + 10) {
            rec = rec.with(&token_for(&i.to_string()));
        }
        assert_eq!(rec.tokens().count(), APPLIED_KEYS_REMEMBERED);
        assert!(!rec.contains(&token_for("0")), "oldest dropped");
        assert!(rec.contains(&token_for(&(APPLIED_KEYS_REMEMBERED + 9).to_string())));
        let meta = rec.to_metadata();
        assert!(
            meta.len() < 2000,
            "fits S3's 2 KB user metadata: {}",
            meta.len()
        );
        assert_eq!(AppliedKeys::from_metadata(&meta), rec);
        assert_eq!(
            AppliedKeys::from_metadata("garbage,,").tokens().count(),
            0,
            "damaged entries dropped"
        );
    }

    #[test]
    fn chunk_rules() {
        let chunk = render_chunk(&["a".into(), "b c".into()], "k").expect("ok");
        assert_eq!(chunk, b"a\nb c\n");
        assert!(matches!(
            render_chunk(&["ok".into(), "x\ny".into()], "k"),
            Err(ObjectsError::InvalidLine { index: 1, .. })
        ));
        assert!(matches!(
            render_chunk(&["x\r".into()], "k"),
            Err(ObjectsError::InvalidLine {
                index: 0,
                what: "a carriage return"
            })
        ));
        assert!(matches!(
            render_chunk(&[], ""),
            Err(ObjectsError::InvalidIdempotencyKey { .. })
        ));
        assert!(render_chunk(&[], &"k".repeat(1025)).is_err());
    }

    #[test]
    fn backoff_is_bounded() {
        let p = AppendPolicy::default();
        for attempt in 0..100 {
            assert!(p.backoff(attempt) <= p.max_delay);
        }
        assert!(p.backoff(1) <= p.base_delay);
    }
}
