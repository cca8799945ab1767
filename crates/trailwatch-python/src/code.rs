//! Code packages: validating what the API receives (a base64-decoded zip, or inline source) and
//! extracting it into a function's working directory.
//!
//! A zip entry that would land outside the directory (`../x`, an absolute path) or is a symbolic
//! link refuses the whole package, and the sizes are bounded so a zip bomb cannot fill the disk.

use std::io::{Cursor, Read as _};
use std::path::Path;

use sha2::{Digest as _, Sha512};

/// At most this many entries in a package.
pub const MAX_ENTRIES: usize = 20_000;
/// At most this many bytes once extracted (FunctionGraph allows 1.5 GB unzipped on OBS; 512 MB
/// here, as the package is also kept in the database).
pub const MAX_UNPACKED_BYTES: u64 = 512 * 1024 * 1024;

/// How the code was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CodeKind {
    /// A zip archive (`code_type` `zip`, `func_code.file`).
    Zip,
    /// One source file (`code_type` `inline`), written as `<module>.py` of the handler.
    Inline,
}

impl CodeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            CodeKind::Zip => "zip",
            CodeKind::Inline => "inline",
        }
    }

    pub fn parse(s: &str) -> Option<CodeKind> {
        match s {
            "zip" => Some(CodeKind::Zip),
            "inline" => Some(CodeKind::Inline),
            _ => None,
        }
    }
}

/// A function's code as stored.
#[derive(Clone, PartialEq, Eq)]
pub struct Code {
    pub kind: CodeKind,
    pub bytes: Vec<u8>,
}

impl std::fmt::Debug for Code {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Code")
            .field("kind", &self.kind)
            .field("len", &self.bytes.len())
            .finish()
    }
}

impl Code {
    /// SHA-512 of the bytes, hex (FunctionGraph's `digest`).
    pub fn digest(&self) -> String {
        hex::encode(Sha512::digest(&self.bytes))
    }

    /// Checks the package without extracting it: a zip must open, every entry must stay inside
    /// the directory, and the declared sizes must fit the limits; inline source must be UTF-8.
    /// `handler` (`module.function`) names the file inline code is written to.
    pub fn validate(&self, handler: &str) -> Result<(), String> {
        match self.kind {
            CodeKind::Inline => {
                std::str::from_utf8(&self.bytes)
                    .map_err(|e| format!("inline code is not UTF-8 text: {e}"))?;
                inline_file_name(handler)?;
                Ok(())
            }
            CodeKind::Zip => {
                let mut zip = open_zip(&self.bytes)?;
                check_entries(&mut zip).map(|_| ())
            }
        }
    }

    /// Extracts into `dir` (which must not exist yet; it is created). On error, what was
    /// written is left for the caller to remove.
    pub fn extract(&self, dir: &Path, handler: &str) -> Result<(), String> {
        std::fs::create_dir_all(dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
        match self.kind {
            CodeKind::Inline => {
                let name = inline_file_name(handler)?;
                std::fs::write(dir.join(name), &self.bytes)
                    .map_err(|e| format!("writing the inline code: {e}"))
            }
            CodeKind::Zip => {
                let mut zip = open_zip(&self.bytes)?;
                check_entries(&mut zip)?;
                let mut left = MAX_UNPACKED_BYTES;
                for i in 0..zip.len() {
                    let mut entry = zip
                        .by_index(i)
                        .map_err(|e| format!("the code package's entry {i} cannot be read: {e}"))?;
                    let name = entry.name().unwrap_or_default().into_owned();
                    let Some(rel) = entry.enclosed_name() else {
                        return Err(format!(
                            "the code package's entry `{name}` would be written outside the function's directory"
                        ));
                    };
                    let target = dir.join(rel);
                    if entry.is_dir() {
                        std::fs::create_dir_all(&target)
                            .map_err(|e| format!("creating {}: {e}", target.display()))?;
                        continue;
                    }
                    if let Some(parent) = target.parent() {
                        std::fs::create_dir_all(parent)
                            .map_err(|e| format!("creating {}: {e}", parent.display()))?;
                    }
                    let mut out = std::fs::File::create(&target)
                        .map_err(|e| format!("creating {}: {e}", target.display()))?;
                    // The declared size can lie: count what is actually inflated.
                    let written = std::io::copy(&mut (&mut entry).take(left + 1), &mut out)
                        .map_err(|e| format!("extracting `{name}` from the code package: {e}"))?;
                    if written > left {
                        return Err(format!(
                            "the code package is larger than {} MB once extracted",
                            MAX_UNPACKED_BYTES / (1024 * 1024)
                        ));
                    }
                    left -= written;
                }
                Ok(())
            }
        }
    }
}

fn open_zip(bytes: &[u8]) -> Result<zip::ZipArchive<Cursor<&[u8]>>, String> {
    zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| format!("the code package is not a valid zip archive: {e}"))
}

/// Entry checks shared by validate and extract; answers the declared unpacked size.
fn check_entries(zip: &mut zip::ZipArchive<Cursor<&[u8]>>) -> Result<u64, String> {
    if zip.len() > MAX_ENTRIES {
        return Err(format!(
            "the code package has {} entries; at most {MAX_ENTRIES} are allowed",
            zip.len()
        ));
    }
    let mut total: u64 = 0;
    for i in 0..zip.len() {
        let entry = zip
            .by_index(i)
            .map_err(|e| format!("the code package's entry {i} cannot be read: {e}"))?;
        if entry.enclosed_name().is_none() {
            return Err(format!(
                "the code package's entry `{}` would be written outside the function's directory",
                entry.name().unwrap_or_default()
            ));
        }
        if entry.is_symlink() {
            return Err(format!(
                "the code package's entry `{}` is a symbolic link; links are not allowed",
                entry.name().unwrap_or_default()
            ));
        }
        total = total.saturating_add(entry.size());
    }
    if total > MAX_UNPACKED_BYTES {
        return Err(format!(
            "the code package is larger than {} MB once extracted",
            MAX_UNPACKED_BYTES / (1024 * 1024)
        ));
    }
    Ok(total)
}

/// `index.handler` → `index.py`; `pkg.mod.handler` → `pkg/mod.py` is not supported inline (one
/// file only), so the module must be one identifier.
fn inline_file_name(handler: &str) -> Result<String, String> {
    let (module, func) = handler
        .rsplit_once('.')
        .ok_or_else(|| format!("handler `{handler}` must be `module.function`"))?;
    let ident = |s: &str| {
        !s.is_empty()
            && !s.starts_with(|c: char| c.is_ascii_digit())
            && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    if !ident(module) || !ident(func) {
        return Err(format!(
            "handler `{handler}`: inline code needs `module.function` with a plain module name"
        ));
    }
    Ok(format!("{module}.py"))
}

/// Checks a handler string (`module.function`, module possibly dotted) for the Python runtime.
pub fn check_handler(handler: &str) -> Result<(), String> {
    let ok = handler.rsplit_once('.').is_some_and(|(m, f)| {
        !f.is_empty()
            && m.split('.').all(|p| {
                !p.is_empty()
                    && !p.starts_with(|c: char| c.is_ascii_digit())
                    && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
            })
            && f.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    });
    if ok {
        Ok(())
    } else {
        Err(format!(
            "handler `{handler}` must be `module.function` (for example `index.handler`)"
        ))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use std::io::Write as _;

    fn zip_of(files: &[(&str, &str)]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        for (name, body) in files {
            w.start_file(*name, zip::write::SimpleFileOptions::default())
                .unwrap();
            w.write_all(body.as_bytes()).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    #[test]
    fn zip_round_trip_and_traversal_refused() {
        let good = Code {
            kind: CodeKind::Zip,
            bytes: zip_of(&[("index.py", "x = 1\n"), ("lib/a.py", "")]),
        };
        good.validate("index.handler").unwrap();
        let dir = tempfile::tempdir().unwrap();
        good.extract(&dir.path().join("c"), "index.handler")
            .unwrap();
        assert_eq!(
            std::fs::read_to_string(dir.path().join("c/index.py")).unwrap(),
            "x = 1\n"
        );
        assert!(dir.path().join("c/lib/a.py").exists());

        let evil = Code {
            kind: CodeKind::Zip,
            bytes: zip_of(&[("../escape.py", "")]),
        };
        let e = evil.validate("index.handler").unwrap_err();
        assert!(e.contains("outside the function's directory"), "{e}");

        let not_zip = Code {
            kind: CodeKind::Zip,
            bytes: b"def handler(e, c): pass".to_vec(),
        };
        let e = not_zip.validate("index.handler").unwrap_err();
        assert!(
            e.starts_with("the code package is not a valid zip archive"),
            "{e}"
        );
    }

    #[test]
    fn inline_and_handlers() {
        let c = Code {
            kind: CodeKind::Inline,
            bytes: b"def handler(e, c):\n    return 1\n".to_vec(),
        };
        c.validate("index.handler").unwrap();
        assert!(c.validate("handler").is_err());
        assert!(c.validate("a.b.handler").is_err());
        let dir = tempfile::tempdir().unwrap();
        c.extract(&dir.path().join("x"), "main.run").unwrap();
        assert!(dir.path().join("x/main.py").exists());
        assert_eq!(c.digest().len(), 128);
        check_handler("index.handler").unwrap();
        check_handler("pkg.mod.handler").unwrap();
        for bad in ["handler", ".handler", "index.", "a..b", "1x.h", "a/b.h", ""] {
            assert!(check_handler(bad).is_err(), "{bad}");
        }
    }
}
