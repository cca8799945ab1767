//! [`ObjectStoreConfig`]: where objects live, as written in trailwatch's TOML.
//!
//! ```toml
//! [object_store]            # a folder; each bucket is a subfolder
//! type = "local"
//! root = "/var/lib/trailwatch/objects"
//! ```
//!
//! ```toml
//! [object_store]            # OBS, MinIO, AWS S3, ...
//! type = "s3"
//! endpoint = "https://obs.cn-north-4.myhuaweicloud.com"
//! region = "cn-north-4"
//! access_key_id = "AK..."
//! secret_access_key = "..."
//! allow_http = false            # default false: plain http only when asked
//! virtual_hosted_style = false  # default false: path-style (https://endpoint/bucket/key)
//! ```

use std::fmt;
use std::path::PathBuf;

use serde::Deserialize;

/// Where objects are stored.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case", deny_unknown_fields)]
pub enum ObjectStoreConfig {
    /// A local folder. Bucket `b` is the subfolder `root/b` (created on first use), key `k/x`
    /// the file `root/b/k/x`. Writes are fsynced (file and folder) before they are acknowledged.
    Local {
        /// The folder holding the buckets (created if absent).
        root: PathBuf,
    },
    /// An S3-compatible service (OBS, MinIO, AWS S3). Buckets must exist.
    S3 {
        /// Service address, e.g. `https://obs.cn-north-4.myhuaweicloud.com` or
        /// `http://127.0.0.1:9000`. Without the bucket: with `virtual_hosted_style` the bucket is
        /// put in front of the host name (`https://bucket.obs.../key`).
        endpoint: String,
        /// Signing region (`cn-north-4`, `us-east-1`, ...).
        region: String,
        /// Access key id (AK).
        access_key_id: String,
        /// Secret access key (SK). Never printed.
        secret_access_key: SecretKey,
        /// Accept an `http://` endpoint. Off by default.
        #[serde(default)]
        allow_http: bool,
        /// Virtual-hosted-style addressing (`bucket.host`) instead of path style (`host/bucket`).
        #[serde(default)]
        virtual_hosted_style: bool,
    },
}

/// A secret access key: `Debug` and `Display` print `***`. Read it with [`SecretKey::expose`].
#[derive(Clone, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct SecretKey(String);

impl SecretKey {
    /// Wraps a secret.
    pub fn new(secret: impl Into<String>) -> Self {
        SecretKey(secret.into())
    }

    /// The secret itself (for the request signer only).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

impl fmt::Display for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("***")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug, Deserialize)]
    struct Wrapper {
        object_store: ObjectStoreConfig,
    }

    #[test]
    fn parses_local_and_s3_from_toml() {
        let w: Wrapper =
            toml::from_str("[object_store]\ntype = \"local\"\nroot = \"/tmp/objects\"\n")
                .expect("local");
        assert!(
            matches!(&w.object_store, ObjectStoreConfig::Local { root } if root == &PathBuf::from("/tmp/objects"))
        );

        let w: Wrapper = toml::from_str(
            r#"
            [object_store]
            type = "s3"
            endpoint = "http://127.0.0.1:9000"
            region = "us-east-1"
            access_key_id = "AKEXAMPLE"
            secret_access_key = "sk-very-secret-value"
            allow_http = true
            "#,
        )
        .expect("s3");
        let ObjectStoreConfig::S3 {
            allow_http,
            virtual_hosted_style,
            secret_access_key,
            ..
        } = &w.object_store
        else {
            panic!("expected s3: {w:?}");
        };
        assert!(*allow_http);
        assert!(!*virtual_hosted_style, "defaults to path style");
        assert_eq!(secret_access_key.expose(), "sk-very-secret-value");
        let debug = format!("{w:?}");
        assert!(!debug.contains("sk-very-secret-value"), "{debug}");
        assert!(debug.contains("secret_access_key: ***"), "{debug}");
    }

    #[test]
    fn unknown_fields_and_types_are_rejected() {
        let e = toml::from_str::<Wrapper>(
            "[object_store]\ntype = \"local\"\nroot = \"/x\"\nbucket = \"b\"\n",
        )
        .expect_err("unknown field");
        assert!(e.to_string().contains("bucket"), "{e}");
        let e = toml::from_str::<Wrapper>("[object_store]\ntype = \"gcs\"\n").expect_err("type");
        assert!(e.to_string().contains("gcs"), "{e}");
    }
}
