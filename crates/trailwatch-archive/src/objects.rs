//! [`Objects`]: trailwatch's one door to object storage, a local folder or any S3-compatible
//! store behind the same calls.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use futures_util::TryStreamExt as _;
use object_store::aws::{AmazonS3Builder, S3ConditionalPut};
use object_store::local::LocalFileSystem;
use object_store::path::Path;
use object_store::{
    GetOptions, ObjectStore, ObjectStoreExt as _, PutMode, PutOptions, PutPayload, UpdateVersion,
};
use url::Url;

use crate::append::{
    self, AppendOutcome, AppendPolicy, AppliedKeys, MAX_APPEND_OBJECT_BYTES, MAX_UNCERTAIN_WRITES,
    Snapshot, WriteError,
};
use crate::config::{ObjectStoreConfig, SecretKey};
use crate::error::{ObjectsError, is_no_such_bucket};
use crate::local::{self, LocalObject, LocalVersion, StopAfter};
use crate::names::{validate_bucket_name, validate_key, validate_prefix};

/// One listed object.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ObjectInfo {
    /// Its key.
    pub key: String,
    /// Size in bytes.
    pub size: u64,
    /// Last modification time.
    pub last_modified: DateTime<Utc>,
    /// ETag, when the store gives one.
    pub e_tag: Option<String>,
}

/// What [`Objects::put_if_absent`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutIfAbsent {
    /// The object did not exist and now holds the bytes.
    Created,
    /// An object already existed under the key; it was left untouched. `identical` tells whether
    /// it holds exactly the bytes given (e.g. this is a retry of a put whose answer was lost).
    AlreadyExists {
        /// The existing object's bytes equal the ones given.
        identical: bool,
    },
}

/// Access to the configured object store. Cheap to share behind an `Arc`; per-bucket clients are
/// built once and cached.
#[derive(Debug)]
pub struct Objects {
    backend: Backend,
    buckets: Mutex<HashMap<String, BucketHandle>>,
    policy: AppendPolicy,
}

#[derive(Debug)]
enum Backend {
    Local {
        root: PathBuf,
    },
    S3 {
        endpoint: Url,
        region: String,
        access_key_id: String,
        secret_access_key: SecretKey,
        allow_http: bool,
        virtual_hosted_style: bool,
    },
}

#[derive(Debug, Clone)]
struct BucketHandle {
    store: Arc<dyn ObjectStore>,
    /// Set for the local backend, whose appends run on files directly.
    local: Option<Arc<LocalFileSystem>>,
}

impl Objects {
    /// Checks the configuration and prepares the store. A local root is created if absent. No
    /// network call is made: a wrong S3 credential shows on the first operation (or with
    /// [`Objects::verify_conditional_writes`]).
    pub fn open(config: &ObjectStoreConfig) -> Result<Self, ObjectsError> {
        let backend = match config {
            ObjectStoreConfig::Local { root } => {
                if root.as_os_str().is_empty() {
                    return Err(invalid("local root must not be empty"));
                }
                local::ensure_dir(root)?;
                let root = root
                    .canonicalize()
                    .map_err(|e| ObjectsError::io("resolve local root", root, e))?;
                Backend::Local { root }
            }
            ObjectStoreConfig::S3 {
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                allow_http,
                virtual_hosted_style,
            } => {
                let endpoint = parse_endpoint(endpoint, *allow_http, *virtual_hosted_style)?;
                if region.trim().is_empty() {
                    return Err(invalid("s3 region must not be empty"));
                }
                if access_key_id.trim().is_empty() {
                    return Err(invalid("s3 access_key_id must not be empty"));
                }
                if secret_access_key.expose().is_empty() {
                    return Err(invalid("s3 secret_access_key must not be empty"));
                }
                Backend::S3 {
                    endpoint,
                    region: region.clone(),
                    access_key_id: access_key_id.clone(),
                    secret_access_key: secret_access_key.clone(),
                    allow_http: *allow_http,
                    virtual_hosted_style: *virtual_hosted_style,
                }
            }
        };
        Ok(Objects {
            backend,
            buckets: Mutex::new(HashMap::new()),
            policy: AppendPolicy::default(),
        })
    }

    /// Replaces the retry bounds of [`Objects::append_lines`].
    #[must_use]
    pub fn with_append_policy(mut self, policy: AppendPolicy) -> Self {
        self.policy = policy;
        self
    }

    /// The `object_store` client of a bucket (built once, then cached). A local bucket's folder
    /// is created on first use; an S3 bucket must exist.
    pub fn bucket(&self, name: &str) -> Result<Arc<dyn ObjectStore>, ObjectsError> {
        Ok(self.handle(name)?.store)
    }

    fn handle(&self, name: &str) -> Result<BucketHandle, ObjectsError> {
        validate_bucket_name(name)?;
        let mut buckets = self.buckets.lock().unwrap_or_else(PoisonError::into_inner);
        if let Some(h) = buckets.get(name) {
            return Ok(h.clone());
        }
        let handle = match &self.backend {
            Backend::Local { root } => {
                let dir = root.join(name);
                local::ensure_dir(&dir)?;
                let fs = LocalFileSystem::new_with_prefix(&dir)
                    .map_err(|e| ObjectsError::store("open bucket", name, "", e))?
                    .with_fsync(true);
                let fs = Arc::new(fs);
                BucketHandle {
                    store: fs.clone(),
                    local: Some(fs),
                }
            }
            Backend::S3 {
                endpoint,
                region,
                access_key_id,
                secret_access_key,
                allow_http,
                virtual_hosted_style,
            } => {
                let endpoint = if *virtual_hosted_style {
                    bucket_host_endpoint(endpoint, name)?
                } else {
                    endpoint.as_str().trim_end_matches('/').to_owned()
                };
                let s3 = AmazonS3Builder::new()
                    .with_endpoint(endpoint)
                    .with_region(region)
                    .with_bucket_name(name)
                    .with_access_key_id(access_key_id)
                    .with_secret_access_key(secret_access_key.expose())
                    .with_allow_http(*allow_http)
                    .with_virtual_hosted_style_request(*virtual_hosted_style)
                    .with_conditional_put(S3ConditionalPut::ETagMatch)
                    .build()
                    .map_err(|e| invalid(format!("s3 client for bucket {name}: {e}")))?;
                BucketHandle {
                    store: Arc::new(s3),
                    local: None,
                }
            }
        };
        buckets.insert(name.to_owned(), handle.clone());
        Ok(handle)
    }

    /// The object's bytes, or `None` when there is no such object.
    pub async fn get(&self, bucket: &str, key: &str) -> Result<Option<Bytes>, ObjectsError> {
        let handle = self.handle(bucket)?;
        let path = object_path(key)?;
        if let Some(fs) = &handle.local {
            // Finish an append interrupted by a crash, so reads see every committed append.
            let obj = local_object(fs, bucket, key, &path)?;
            blocking(move || obj.recover_if_interrupted()).await?;
        }
        match handle.store.get_opts(&path, GetOptions::default()).await {
            Ok(r) => r
                .bytes()
                .await
                .map(Some)
                .map_err(|e| ObjectsError::store("get", bucket, key, e)),
            Err(e @ object_store::Error::NotFound { .. }) if !is_no_such_bucket(&e) => Ok(None),
            Err(e) => Err(ObjectsError::store("get", bucket, key, e)),
        }
    }

    /// Writes an immutable object: only if no object has the key yet (S3 `If-None-Match: *`; a
    /// local hard link that fails if the file exists), durably. An existing object is never
    /// replaced.
    pub async fn put_if_absent(
        &self,
        bucket: &str,
        key: &str,
        bytes: Bytes,
    ) -> Result<PutIfAbsent, ObjectsError> {
        let handle = self.handle(bucket)?;
        let path = object_path(key)?;
        let opts = PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        match handle
            .store
            .put_opts(&path, PutPayload::from(bytes.clone()), opts)
            .await
        {
            Ok(_) => Ok(PutIfAbsent::Created),
            Err(object_store::Error::AlreadyExists { .. }) => {
                let existing = self.get(bucket, key).await?;
                Ok(PutIfAbsent::AlreadyExists {
                    identical: existing.as_ref() == Some(&bytes),
                })
            }
            Err(e) => Err(ObjectsError::store("put_if_absent", bucket, key, e)),
        }
    }

    /// Deletes an object (retention); deleting one that does not exist is not an error.
    pub async fn delete(&self, bucket: &str, key: &str) -> Result<(), ObjectsError> {
        use object_store::ObjectStoreExt as _;
        let handle = self.handle(bucket)?;
        let path = object_path(key)?;
        match handle.store.delete(&path).await {
            Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
            Err(e) => Err(ObjectsError::store("delete", bucket, key, e)),
        }
    }

    /// The objects whose key lies under `prefix` (whole segments: `logs/2026` lists
    /// `logs/2026/...`, not `logs/2026-old`; `""` lists the bucket), sorted by key.
    pub async fn list(&self, bucket: &str, prefix: &str) -> Result<Vec<ObjectInfo>, ObjectsError> {
        validate_prefix(prefix)?;
        let handle = self.handle(bucket)?;
        let trimmed = prefix.trim_end_matches('/');
        let path = if trimmed.is_empty() {
            None
        } else {
            Some(Path::parse(trimmed).map_err(|e| invalid_key(prefix, e.to_string()))?)
        };
        let metas: Vec<_> = handle
            .store
            .list(path.as_ref())
            .try_collect()
            .await
            .map_err(|e| ObjectsError::store("list", bucket, prefix, e))?;
        let mut out: Vec<ObjectInfo> = metas
            .into_iter()
            .map(|m| ObjectInfo {
                key: m.location.to_string(),
                size: m.size,
                last_modified: m.last_modified,
                e_tag: m.e_tag,
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    /// Appends `lines` (each followed by `\n`) to the object, creating it if absent; safe when
    /// callers overlap (threads, processes, nodes) and when a call is retried with the same
    /// `idempotency_key`. See [`crate::append`] for the algorithm and its proof.
    ///
    /// Lines must not contain `\n` or `\r`. A call whose key is among the object's last
    /// [`crate::APPLIED_KEYS_REMEMBERED`] applied keys writes nothing and answers
    /// [`AppendOutcome::AlreadyApplied`]. An empty `lines` writes nothing.
    pub async fn append_lines(
        &self,
        bucket: &str,
        key: &str,
        lines: &[String],
        idempotency_key: &str,
    ) -> Result<AppendOutcome, ObjectsError> {
        let chunk = append::render_chunk(lines, idempotency_key)?;
        let handle = self.handle(bucket)?;
        let path = object_path(key)?;
        if chunk.is_empty() {
            return Ok(AppendOutcome::Appended { attempts: 0 });
        }
        let token = append::token_for(idempotency_key);
        let target = match &handle.local {
            Some(fs) => Target::Local(local_object(fs, bucket, key, &path)?),
            None => Target::S3 {
                store: handle.store.clone(),
                path,
            },
        };

        let mut uncertain: u32 = 0;
        let mut last_uncertain: Option<ObjectsError> = None;
        for attempt in 1..=self.policy.max_attempts {
            let (content, applied, version) = match target.read(bucket, key).await? {
                Some(s) => (s.content, s.applied, Some(s.version)),
                None => (Bytes::new(), AppliedKeys::default(), None),
            };
            if applied.contains(&token) {
                // Our own earlier write whose answer was lost, or an earlier call with this key.
                return Ok(if uncertain > 0 {
                    AppendOutcome::Appended {
                        attempts: attempt - 1,
                    }
                } else {
                    AppendOutcome::AlreadyApplied
                });
            }
            let size = (content.len() + chunk.len()) as u64;
            if size > MAX_APPEND_OBJECT_BYTES {
                return Err(ObjectsError::AppendObjectTooLarge {
                    bucket: bucket.to_owned(),
                    key: key.to_owned(),
                    size,
                    limit: MAX_APPEND_OBJECT_BYTES,
                });
            }
            let mut next = Vec::with_capacity(content.len() + chunk.len());
            next.extend_from_slice(&content);
            next.extend_from_slice(&chunk);
            let applied = applied.with(&token);
            match target
                .write(bucket, key, version, Bytes::from(next), &applied)
                .await
            {
                Ok(()) => return Ok(AppendOutcome::Appended { attempts: attempt }),
                Err(WriteError::Conflict) => last_uncertain = None,
                Err(WriteError::Uncertain(e)) => {
                    uncertain += 1;
                    tracing::warn!(bucket, key, attempt, error = %e, "append write outcome unknown; re-reading");
                    if uncertain >= MAX_UNCERTAIN_WRITES {
                        return Err(e);
                    }
                    last_uncertain = Some(e);
                }
                Err(WriteError::Fatal(e)) => return Err(e),
            }
            if attempt < self.policy.max_attempts {
                tokio::time::sleep(self.policy.backoff(attempt)).await;
            }
        }
        // A write that failed by conflict cannot land later (its version is gone for good), so
        // nothing was written, unless the very last write's outcome is unknown.
        Err(last_uncertain.unwrap_or_else(|| ObjectsError::Contention {
            bucket: bucket.to_owned(),
            key: key.to_owned(),
            attempts: self.policy.max_attempts,
        }))
    }

    /// Checks that the store enforces conditional writes, which [`Objects::append_lines`] and
    /// [`Objects::put_if_absent`] rely on: writes a probe object under
    /// `.trailwatch/conditional-write-probe/`, expects a second create to be refused
    /// (`If-None-Match: *`) and an update with a wrong ETag to be refused (`If-Match`), then
    /// deletes it. The local backend implements both itself and always passes.
    pub async fn verify_conditional_writes(&self, bucket: &str) -> Result<(), ObjectsError> {
        let handle = self.handle(bucket)?;
        if handle.local.is_some() {
            return Ok(());
        }
        let key = format!(
            ".trailwatch/conditional-write-probe/{}",
            uuid::Uuid::new_v4()
        );
        let path = object_path(&key)?;
        let store = handle.store.as_ref();
        let create = || PutOptions {
            mode: PutMode::Create,
            ..PutOptions::default()
        };
        let result = async {
            store
                .put_opts(&path, PutPayload::from_static(b"probe 1"), create())
                .await
                .map_err(|e| ObjectsError::store("probe (create)", bucket, &key, e))?;
            match store
                .put_opts(&path, PutPayload::from_static(b"probe 2"), create())
                .await
            {
                Err(object_store::Error::AlreadyExists { .. }) => {}
                Ok(_) => {
                    return Err(ObjectsError::ConditionalWritesUnsupported {
                        bucket: bucket.to_owned(),
                        header: "If-None-Match",
                        detail: "a create over an existing object succeeded".to_owned(),
                    });
                }
                Err(e) => {
                    return Err(ObjectsError::store(
                        "probe (second create)",
                        bucket,
                        &key,
                        e,
                    ));
                }
            }
            let stale = PutOptions {
                mode: PutMode::Update(UpdateVersion {
                    e_tag: Some("\"00000000000000000000000000000000\"".to_owned()),
                    version: None,
                }),
                ..PutOptions::default()
            };
            match store
                .put_opts(&path, PutPayload::from_static(b"probe 3"), stale)
                .await
            {
                Err(object_store::Error::Precondition { .. }) => Ok(()),
                Ok(_) => Err(ObjectsError::ConditionalWritesUnsupported {
                    bucket: bucket.to_owned(),
                    header: "If-Match",
                    detail: "an update with a wrong ETag succeeded".to_owned(),
                }),
                Err(e) => Err(ObjectsError::store("probe (stale update)", bucket, &key, e)),
            }
        }
        .await;
        if let Err(e) = store.delete(&path).await {
            tracing::warn!(bucket, key, error = %e, "could not delete the conditional-write probe");
        }
        result
    }
}

/// Where an append reads and writes: S3 (conditional PUT) or local files (lock + rename).
enum Target {
    S3 {
        store: Arc<dyn ObjectStore>,
        path: Path,
    },
    Local(LocalObject),
}

enum AnyVersion {
    S3(UpdateVersion),
    Local(LocalVersion),
}

impl Target {
    async fn read(
        &self,
        bucket: &str,
        key: &str,
    ) -> Result<Option<Snapshot<AnyVersion>>, ObjectsError> {
        Ok(match self {
            Target::S3 { store, path } => append::s3_read(store.as_ref(), bucket, key, path)
                .await?
                .map(|s| Snapshot {
                    content: s.content,
                    applied: s.applied,
                    version: AnyVersion::S3(s.version),
                }),
            Target::Local(obj) => {
                let obj = obj.clone();
                blocking(move || obj.read()).await?.map(|s| Snapshot {
                    content: s.content,
                    applied: s.applied,
                    version: AnyVersion::Local(s.version),
                })
            }
        })
    }

    async fn write(
        &self,
        bucket: &str,
        key: &str,
        expected: Option<AnyVersion>,
        content: Bytes,
        applied: &AppliedKeys,
    ) -> Result<(), WriteError> {
        match self {
            Target::S3 { store, path } => {
                let expected = match expected {
                    None => None,
                    Some(AnyVersion::S3(v)) => Some(v),
                    Some(AnyVersion::Local(_)) => return Err(WriteError::Conflict),
                };
                append::s3_write(
                    store.as_ref(),
                    bucket,
                    key,
                    path,
                    expected,
                    content,
                    applied,
                )
                .await
            }
            Target::Local(obj) => {
                let expected = match expected {
                    None => None,
                    Some(AnyVersion::Local(v)) => Some(v),
                    Some(AnyVersion::S3(_)) => return Err(WriteError::Conflict),
                };
                let obj = obj.clone();
                let applied = applied.clone();
                match blocking(move || {
                    obj.write(expected.as_ref(), &content, &applied, StopAfter::Never)
                })
                .await
                {
                    Ok(true) => Ok(()),
                    Ok(false) => Err(WriteError::Conflict),
                    Err(e) => Err(WriteError::Fatal(e)),
                }
            }
        }
    }
}

async fn blocking<T, F>(f: F) -> Result<T, ObjectsError>
where
    F: FnOnce() -> Result<T, ObjectsError> + Send + 'static,
    T: Send + 'static,
{
    tokio::task::spawn_blocking(f)
        .await
        .map_err(|e| ObjectsError::Task(e.to_string()))?
}

fn local_object(
    fs: &LocalFileSystem,
    bucket: &str,
    key: &str,
    path: &Path,
) -> Result<LocalObject, ObjectsError> {
    let file = fs
        .path_to_filesystem(path)
        .map_err(|e| ObjectsError::store("resolve", bucket, key, e))?;
    Ok(LocalObject::new(file))
}

fn object_path(key: &str) -> Result<Path, ObjectsError> {
    validate_key(key)?;
    Path::parse(key).map_err(|e| invalid_key(key, e.to_string()))
}

fn invalid(reason: impl Into<String>) -> ObjectsError {
    ObjectsError::InvalidConfig {
        reason: reason.into(),
    }
}

fn invalid_key(key: &str, reason: String) -> ObjectsError {
    ObjectsError::InvalidObjectKey {
        key: key.to_owned(),
        reason,
    }
}

fn parse_endpoint(raw: &str, allow_http: bool, virtual_hosted: bool) -> Result<Url, ObjectsError> {
    let url = Url::parse(raw.trim())
        .map_err(|e| invalid(format!("s3 endpoint {raw:?} is not a URL: {e}")))?;
    match url.scheme() {
        "https" => {}
        "http" if allow_http => {}
        "http" => {
            return Err(invalid(format!(
                "s3 endpoint {raw:?} uses http but allow_http is false"
            )));
        }
        other => {
            return Err(invalid(format!(
                "s3 endpoint {raw:?}: scheme {other:?} is not http or https"
            )));
        }
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(invalid(format!("s3 endpoint {raw:?} has no host")));
    }
    if !url.username().is_empty() || url.password().is_some() {
        return Err(invalid(
            "s3 endpoint must not carry credentials; use access_key_id and secret_access_key",
        ));
    }
    if url.query().is_some() || url.fragment().is_some() {
        return Err(invalid(format!(
            "s3 endpoint {raw:?} must not have a query or fragment"
        )));
    }
    if virtual_hosted && url.path() != "/" && !url.path().is_empty() {
        return Err(invalid(format!(
            "s3 endpoint {raw:?} has a path; with virtual_hosted_style the endpoint is only \
             scheme://host[:port]"
        )));
    }
    Ok(url)
}

/// `https://host` → `https://bucket.host` for virtual-hosted-style requests.
fn bucket_host_endpoint(endpoint: &Url, bucket: &str) -> Result<String, ObjectsError> {
    let host = endpoint
        .host_str()
        .ok_or_else(|| invalid("s3 endpoint has no host"))?;
    let mut url = endpoint.clone();
    url.set_host(Some(&format!("{bucket}.{host}")))
        .map_err(|e| invalid(format!("s3 endpoint host for bucket {bucket}: {e}")))?;
    Ok(url.as_str().trim_end_matches('/').to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(endpoint: &str, allow_http: bool, vhs: bool) -> ObjectStoreConfig {
        ObjectStoreConfig::S3 {
            endpoint: endpoint.to_owned(),
            region: "us-east-1".to_owned(),
            access_key_id: "AKEXAMPLE".to_owned(),
            secret_access_key: SecretKey::new("sk-must-never-show"),
            allow_http,
            virtual_hosted_style: vhs,
        }
    }

    fn open_err(config: &ObjectStoreConfig) -> String {
        let e = Objects::open(config).expect_err("should fail").to_string();
        assert!(!e.contains("sk-must-never-show"), "{e}");
        e
    }

    #[test]
    fn endpoint_checks_are_precise() {
        assert!(
            open_err(&s3("http://127.0.0.1:9000", false, false)).contains("allow_http is false")
        );
        assert!(open_err(&s3("ftp://x", true, false)).contains("scheme \"ftp\""));
        assert!(open_err(&s3("not a url", true, false)).contains("is not a URL"));
        assert!(
            open_err(&s3("https://u:p@host", true, false)).contains("must not carry credentials")
        );
        assert!(open_err(&s3("https://host/base", false, true)).contains("has a path"));
        Objects::open(&s3("https://host/base", false, false)).expect("path style may have a path");
    }

    #[test]
    fn debug_never_shows_the_secret() {
        let objects = Objects::open(&s3("http://127.0.0.1:9000", true, false)).expect("open");
        objects.bucket("alarm-logs").expect("bucket");
        let debug = format!("{objects:?}");
        assert!(!debug.contains("sk-must-never-show"), "{debug}");
        assert!(debug.contains("***"), "{debug}");
    }

    #[test]
    fn virtual_hosted_endpoint_puts_the_bucket_in_the_host() {
        let url = Url::parse("https://obs.cn-north-4.myhuaweicloud.com").expect("url");
        assert_eq!(
            bucket_host_endpoint(&url, "alarm-logs").expect("host"),
            "https://alarm-logs.obs.cn-north-4.myhuaweicloud.com"
        );
    }

    #[test]
    fn bucket_clients_are_cached_and_names_checked() {
        let dir = tempfile::tempdir().expect("tempdir");
        let objects = Objects::open(&ObjectStoreConfig::Local {
            root: dir.path().join("objects"),
        })
        .expect("open");
        let a = objects.bucket("alarm-logs").expect("bucket");
        let b = objects.bucket("alarm-logs").expect("bucket");
        assert!(Arc::ptr_eq(&a, &b));
        assert!(dir.path().join("objects/alarm-logs").is_dir());
        assert!(matches!(
            objects.bucket("../etc"),
            Err(ObjectsError::InvalidBucketName { .. })
        ));
    }
}
