//! Identities and credentials for trailwatch: everything IAM needs that is pure computation.
//!
//! - [`signing`]: `SDK-HMAC-SHA256` AK/SK request signing and verification, byte-compatible with the
//!   Huawei Cloud / Open Telekom Cloud SDKs (`cloud-apis.md` §7.2).
//! - [`token`]: signed bearer tokens (`X-Auth-Token`) verifiable without a database lookup.
//! - [`temporary`]: an agency's temporary AK/SK + `X-Security-Token`, derived and verified
//!   statelessly from the token key.
//! - [`password`]: argon2id password hashing and the password policy.
//! - [`secret`]: [`Secret`] strings that never print, and AES-256-GCM sealing of secrets at rest.
//! - [`keys`]: the single [`MasterKey`] from which token and seal keys are derived.
//! - [`ids`]: OTC-shaped ids, access keys, secret keys and initial passwords.
//! - [`lockout`]: consecutive-failure lockout (5 failures → 5 minutes at the real gateway).
//! - [`roles`]: the built-in roles (OTC names), action patterns, and [`Rights`] (what an agency
//!   may do in a project).
//!
//! Nothing here does IO or reads the clock in verification logic: callers pass `now`, so the same
//! code runs in the server and in tests with fixed times.
//!
//! # Example
//!
//! Sign a request as a client would, then verify it as the gateway does:
//!
//! ```
//! use chrono::{Duration, TimeZone, Utc};
//! use trailwatch_iam::signing::{self, SignableRequest};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let now = Utc.with_ymd_and_hms(2020, 6, 8, 2, 39, 0).single().ok_or("bad time")?;
//! let headers = vec![
//!     ("Host".to_string(), "service.endpoint.myhuaweicloud.com".to_string()),
//!     ("X-Sdk-Date".to_string(), signing::format_sdk_date(now)),
//! ];
//! let req = SignableRequest {
//!     method: "GET",
//!     path: "/resources",
//!     query: "size=1",
//!     headers: &headers,
//!     body: b"",
//! };
//! let authorization = signing::sign(&req, "AccessKey", "SecretKey")?;
//! assert!(authorization.ends_with(
//!     "Signature=cfb4171acec81de07d50e53d57eb77edd537414d66ddb1d7d780f128e12cd842"
//! ));
//!
//! // Server side: parse, look up the SK for `parsed.access_key`, verify against the server clock.
//! let parsed = signing::parse_authorization(&authorization)?;
//! assert_eq!(parsed.access_key, "AccessKey");
//! signing::verify(&req, &parsed, "SecretKey", now, Duration::minutes(15))?;
//!
//! // Tokens and sealed secrets hang off one master key.
//! let master = trailwatch_iam::MasterKey::generate();
//! let sealed = master.seal_key().seal(b"SecretKey", b"sk:AccessKey");
//! assert_eq!(master.seal_key().open(&sealed, b"sk:AccessKey")?, b"SecretKey");
//! # Ok(())
//! # }
//! ```

pub mod ids;
pub mod keys;
pub mod lockout;
pub mod password;
pub mod roles;
pub mod secret;
pub mod signing;
pub mod temporary;
pub mod token;

pub use keys::MasterKey;
pub use lockout::{LockedUntil, Lockout};
pub use password::{PasswordError, check_password_policy, hash_password, verify_password};
pub use roles::{Rights, Role};
pub use secret::{SealError, SealKey, Secret};
pub use signing::{ParsedAuthorization, SignableRequest, SigningError};
pub use token::{TokenClaims, TokenError, TokenKey};
