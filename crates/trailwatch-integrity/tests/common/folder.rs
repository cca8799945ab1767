//! An [`ObjectSource`] over a local folder (the bucket root), as `trailwatch verify --store DIR`
//! reads a copied archive. Shared by the tests and the benchmark example.

use std::path::{Path, PathBuf};

use trailwatch_integrity::{ListedObject, ObjectSource, SourceError};

/// The objects under `root`; keys are paths relative to it with `/` separators.
#[derive(Debug, Clone)]
pub struct FolderSource {
    pub root: PathBuf,
}

impl FolderSource {
    pub fn new(root: impl Into<PathBuf>) -> FolderSource {
        FolderSource { root: root.into() }
    }

    pub fn path(&self, key: &str) -> PathBuf {
        self.root.join(key)
    }

    /// Writes an object, creating its folders.
    pub fn put(&self, key: &str, bytes: &[u8]) -> std::io::Result<()> {
        let path = self.path(key);
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        std::fs::write(path, bytes)
    }
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
        Ok(out)
    }

    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, SourceError> {
        match std::fs::read(self.path(key)) {
            Ok(bytes) => Ok(Some(bytes)),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
            Err(e) => Err(SourceError(format!("{key}: {e}"))),
        }
    }
}
