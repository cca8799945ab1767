//! Archives as [`ObjectSource`]s for `trailwatch verify`: a bucket copied to (or stored in) a
//! local folder, or a bucket of an `object_store`. In a folder, keys are paths relative to it with
//! `/` separators, and the local backend's helper files (`<name>#<digits>`, see `local`) are not
//! objects and are not listed; every other file is.

use std::path::{Path, PathBuf};

use trailwatch_integrity::{ListedObject, ObjectSource, SourceError};

/// The objects under `root` (the bucket root that holds `CloudTraces/`).
#[derive(Debug, Clone)]
pub struct FolderSource {
    pub root: PathBuf,
}

impl FolderSource {
    pub fn new(root: impl Into<PathBuf>) -> FolderSource {
        FolderSource { root: root.into() }
    }
}

/// The local backend's helper files beside an object: `<name>#<digits>` (lock, state, journal).
fn is_local_helper(name: &str) -> bool {
    name.rsplit_once('#')
        .is_some_and(|(_, tail)| !tail.is_empty() && tail.bytes().all(|b| b.is_ascii_digit()))
}

fn walk(dir: &Path, key: &str, out: &mut Vec<ListedObject>) -> Result<(), SourceError> {
    let entries = match std::fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(SourceError(format!("{}: {e}", dir.display()))),
    };
    for entry in entries {
        let entry = entry.map_err(|e| SourceError(format!("{}: {e}", dir.display())))?;
        let name = entry.file_name();
        let name = name
            .to_str()
            .ok_or_else(|| SourceError(format!("{}: a name that is not UTF-8", dir.display())))?;
        if is_local_helper(name) {
            continue;
        }
        let child = format!("{key}{name}");
        let meta = entry
            .metadata()
            .map_err(|e| SourceError(format!("{child}: {e}")))?;
        if meta.is_dir() {
            walk(&entry.path(), &format!("{child}/"), out)?;
        } else {
            out.push(ListedObject {
                key: child,
                size: meta.len(),
            });
        }
    }
    Ok(())
}

impl ObjectSource for FolderSource {
    fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, SourceError> {
        let mut out = Vec::new();
        walk(&self.root.join(prefix), prefix, &mut out)?;
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SourceError> {
        if key.split('/').any(|s| s == ".." || s.is_empty()) {
            return Err(SourceError(format!("{key}: not an object key")));
        }
        match std::fs::read(self.root.join(key)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SourceError(format!("{key}: {e}"))),
        }
    }
}

/// The objects of one bucket of an `object_store` (S3-compatible or local), read synchronously
/// for the verifier: each call blocks on `handle`, so use it from a blocking thread
/// (`tokio::task::spawn_blocking`), never from an async task.
#[derive(Debug, Clone)]
pub struct StoreSource {
    pub store: std::sync::Arc<dyn object_store::ObjectStore>,
    pub handle: tokio::runtime::Handle,
}

impl ObjectSource for StoreSource {
    fn list(&self, prefix: &str) -> Result<Vec<ListedObject>, SourceError> {
        use futures_util::TryStreamExt as _;
        let path = object_store::path::Path::from(prefix.trim_end_matches('/'));
        let metas: Vec<object_store::ObjectMeta> = self
            .handle
            .block_on(self.store.list(Some(&path)).try_collect())
            .map_err(|e| SourceError(format!("listing {prefix}: {e}")))?;
        let mut out: Vec<ListedObject> = metas
            .into_iter()
            .map(|m| ListedObject {
                key: m.location.to_string(),
                size: m.size,
            })
            .collect();
        out.sort_by(|a, b| a.key.cmp(&b.key));
        Ok(out)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SourceError> {
        use object_store::ObjectStoreExt as _;
        let path = object_store::path::Path::from(key);
        let result = self.handle.block_on(async {
            match self.store.get(&path).await {
                Ok(r) => r.bytes().await.map(Some),
                Err(object_store::Error::NotFound { .. }) => Ok(None),
                Err(e) => Err(e),
            }
        });
        result
            .map(|b| b.map(|b| b.to_vec()))
            .map_err(|e| SourceError(format!("{key}: {e}")))
    }
}
