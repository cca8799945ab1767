//! Bucket-name and object-key rules, the same for every backend.
//!
//! Bucket names follow the S3 rules (a local bucket is a folder under the root, and the rules also
//! keep it one plain path component). Object keys are checked so that a key means the same object
//! on S3 and in a local folder: no path traversal, no empty segments, no characters that the
//! local backend reserves or that S3 asks to avoid.

use crate::error::ObjectsError;

/// Longest object key S3 accepts, in bytes of UTF-8.
pub const MAX_KEY_BYTES: usize = 1024;

/// Longest segment (text between two `/`) of a key, in bytes: a file name on common file systems.
pub const MAX_SEGMENT_BYTES: usize = 255;

/// Checks a bucket name against the S3 rules for general-purpose buckets:
/// 3 to 63 characters; lowercase letters, digits, `.` and `-`; starting and ending with a letter
/// or digit; no `..`, `.-` or `-.`; not shaped like an IPv4 address; none of S3's reserved
/// prefixes (`xn--`, `sthree-`, `amzn-s3-demo-`) or suffixes (`-s3alias`, `--ol-s3`, `.mrap`,
/// `--x-s3`, `--table-s3`).
pub fn validate_bucket_name(name: &str) -> Result<(), ObjectsError> {
    let fail = |reason: String| {
        Err(ObjectsError::InvalidBucketName {
            name: name.to_owned(),
            reason,
        })
    };
    let len = name.chars().count();
    if !(3..=63).contains(&len) {
        return fail(format!("must be 3 to 63 characters long (it has {len})"));
    }
    if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '.' || *c == '-'))
    {
        return fail(format!(
            "{c:?} is not allowed (only lowercase letters, digits, '.' and '-')"
        ));
    }
    let bytes = name.as_bytes();
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    if !bytes.first().copied().is_some_and(alnum) {
        return fail("must start with a lowercase letter or digit".to_owned());
    }
    if !bytes.last().copied().is_some_and(alnum) {
        return fail("must end with a lowercase letter or digit".to_owned());
    }
    for bad in ["..", ".-", "-."] {
        if name.contains(bad) {
            return fail(format!("must not contain {bad:?}"));
        }
    }
    if name.parse::<std::net::Ipv4Addr>().is_ok() {
        return fail("must not be formatted as an IP address".to_owned());
    }
    for prefix in ["xn--", "sthree-", "amzn-s3-demo-"] {
        if name.starts_with(prefix) {
            return fail(format!(
                "must not start with the reserved prefix {prefix:?}"
            ));
        }
    }
    for suffix in ["-s3alias", "--ol-s3", ".mrap", "--x-s3", "--table-s3"] {
        if name.ends_with(suffix) {
            return fail(format!("must not end with the reserved suffix {suffix:?}"));
        }
    }
    Ok(())
}

/// Checks an object key:
/// - 1 to [`MAX_KEY_BYTES`] bytes; segments (split at `/`) of at most [`MAX_SEGMENT_BYTES`];
/// - no leading or trailing `/`, no empty segment (`//`), no `.` or `..` segment;
/// - no control characters, and none of `\` (a path separator on Windows), `#` (the local
///   backend's staging and append-state files are `<key>#<digits>`), `%` (percent-encoding is
///   applied differently by S3 clients and file-URL conversion).
pub fn validate_key(key: &str) -> Result<(), ObjectsError> {
    check_key(key, false)
}

/// Checks a list prefix: empty (the whole bucket) or a key with an optional trailing `/`.
/// Prefixes match whole segments: `logs/2026` lists `logs/2026/...`, not `logs/2026-old/...`.
pub fn validate_prefix(prefix: &str) -> Result<(), ObjectsError> {
    if prefix.is_empty() {
        return Ok(());
    }
    check_key(prefix.strip_suffix('/').unwrap_or(prefix), true).map_err(|e| match e {
        ObjectsError::InvalidObjectKey { reason, .. } => ObjectsError::InvalidObjectKey {
            key: prefix.to_owned(),
            reason,
        },
        other => other,
    })
}

fn check_key(key: &str, is_prefix: bool) -> Result<(), ObjectsError> {
    let fail = |reason: String| {
        Err(ObjectsError::InvalidObjectKey {
            key: key.to_owned(),
            reason,
        })
    };
    if key.is_empty() {
        return fail("must not be empty".to_owned());
    }
    if key.len() > MAX_KEY_BYTES {
        return fail(format!(
            "is {} bytes long; at most {MAX_KEY_BYTES} are allowed",
            key.len()
        ));
    }
    if key.starts_with('/') {
        return fail("must not start with '/'".to_owned());
    }
    if !is_prefix && key.ends_with('/') {
        return fail("must not end with '/' (that names a folder, not an object)".to_owned());
    }
    if let Some(c) = key.chars().find(|c| c.is_control()) {
        return fail(format!("contains the control character {c:?}"));
    }
    for (c, why) in [
        ('\\', "'\\' (a path separator on Windows)"),
        (
            '#',
            "'#' (reserved for the local backend's staging and state files)",
        ),
        (
            '%',
            "'%' (percent-encoding differs between S3 and local paths)",
        ),
    ] {
        if key.contains(c) {
            return fail(format!("must not contain {why}"));
        }
    }
    for (i, segment) in key.split('/').enumerate() {
        if segment.is_empty() {
            return fail(format!("segment {} is empty ('//' in the key)", i + 1));
        }
        if segment == "." || segment == ".." {
            return fail(format!("must not contain a {segment:?} segment"));
        }
        if segment.len() > MAX_SEGMENT_BYTES {
            return fail(format!(
                "segment {} is {} bytes long; at most {MAX_SEGMENT_BYTES} are allowed",
                i + 1,
                segment.len()
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bucket_reason(name: &str) -> String {
        match validate_bucket_name(name) {
            Err(ObjectsError::InvalidBucketName { reason, .. }) => reason,
            other => panic!("{name:?}: expected InvalidBucketName, got {other:?}"),
        }
    }

    fn key_reason(key: &str) -> String {
        match validate_key(key) {
            Err(ObjectsError::InvalidObjectKey { reason, .. }) => reason,
            other => panic!("{key:?}: expected InvalidObjectKey, got {other:?}"),
        }
    }

    #[test]
    fn good_bucket_names() {
        for n in [
            "abc",
            "alarm-logs",
            "cts.archive.2026",
            "0ab",
            &"a".repeat(63),
        ] {
            validate_bucket_name(n).unwrap_or_else(|e| panic!("{n}: {e}"));
        }
    }

    #[test]
    fn bad_bucket_names_say_why() {
        assert!(bucket_reason("ab").contains("3 to 63"));
        assert!(bucket_reason(&"a".repeat(64)).contains("(it has 64)"));
        assert!(bucket_reason("Alarm").contains("'A' is not allowed"));
        assert!(bucket_reason("a_b").contains("'_' is not allowed"));
        assert!(bucket_reason("-ab").contains("start"));
        assert!(bucket_reason("ab-").contains("end"));
        assert!(bucket_reason("a..b").contains("\"..\""));
        assert!(bucket_reason("a.-b").contains("\".-\""));
        assert!(bucket_reason("192.168.5.4").contains("IP address"));
        assert!(bucket_reason("xn--abc").contains("prefix"));
        assert!(bucket_reason("abc-s3alias").contains("suffix"));
        let e = validate_bucket_name("../x").expect_err("traversal");
        assert!(
            e.to_string().starts_with("invalid bucket name \"../x\""),
            "{e}"
        );
    }

    #[test]
    fn good_keys() {
        for k in [
            "alarm.log",
            "logs/2026/11/23/alarm.log",
            "CloudTraces/cn-north-4/2026/11/23/system/ECS/trace_2026-11-23T10-00-00Z_ab12.json.gz",
            "dt=2026-11-23/part+1,a@b (copy).txt",
            ".hidden/x",
            "журнал.log",
        ] {
            validate_key(k).unwrap_or_else(|e| panic!("{k}: {e}"));
        }
    }

    #[test]
    fn bad_keys_say_why() {
        assert!(key_reason("").contains("empty"));
        assert!(key_reason("/abs").contains("start with '/'"));
        assert!(key_reason("dir/").contains("end with '/'"));
        assert!(key_reason("a//b").contains("segment 2 is empty"));
        assert!(key_reason("../etc/passwd").contains("\"..\" segment"));
        assert!(key_reason("a/../b").contains("\"..\" segment"));
        assert!(key_reason("a/./b").contains("\".\" segment"));
        assert!(key_reason("a\\b").contains("'\\'"));
        assert!(key_reason("a#1").contains("'#'"));
        assert!(key_reason("a%20b").contains("'%'"));
        assert!(key_reason("a\nb").contains("control character"));
        assert!(key_reason(&"a".repeat(1025)).contains("1025 bytes"));
        assert!(key_reason(&format!("x/{}", "a".repeat(256))).contains("segment 2 is 256 bytes"));
        // `..` inside a name is fine: only whole segments traverse.
        validate_key("a..b/c").expect("dots inside a segment");
    }

    #[test]
    fn prefixes() {
        validate_prefix("").expect("empty prefix = whole bucket");
        validate_prefix("logs/").expect("trailing slash");
        validate_prefix("logs/2026").expect("no trailing slash");
        assert!(validate_prefix("/logs").is_err());
        assert!(validate_prefix("logs//").is_err());
        let e = validate_prefix("../").expect_err("traversal");
        assert!(e.to_string().contains("\"../\""), "{e}");
    }
}
