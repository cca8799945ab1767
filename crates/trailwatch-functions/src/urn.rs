//! Function URNs and the short forms accepted in API paths (cloud-apis.md §4.4).
//!
//! The full form is `urn:fss:{region}:{project_id}:function:{package}:{func_name}` optionally
//! followed by `:{version}` or `:!{alias}`. API paths also accept, in place of the URN:
//!
//! | fields | form | package | project |
//! |---|---|---|---|
//! | 1 | `name` | `default` | the caller's |
//! | 2 | `package:name` | given | the caller's |
//! | 3 | `project:package:name` | given | given (must be the caller's) |
//! | 4 | `project:package:name:ver` (or `:!alias`) | given | given (must be the caller's) |
//! | 7 | `urn:fss:region:project:function:package:name` | given | given (must be the caller's) |
//! | 8 | the 7-field form + `:ver` or `:!alias` | given | given (must be the caller's) |
//!
//! 5- and 6-field strings are refused. In the URN forms the region must be the server's region:
//! a URN naming another region does not address a function here, so it is refused rather than
//! silently re-targeted.
//!
//! Name rules (ours, following the FunctionGraph console):
//! - `func_name`: 1–60 characters `[A-Za-z0-9_-]`, starting with a letter.
//! - `package`: 1–64 characters `[A-Za-z0-9_-]`, starting with a letter.
//! - version: 1–64 characters `[A-Za-z0-9._-]`, starting with a letter or digit (`latest`, `v1`,
//!   `1.0.2`).
//! - alias: 1–63 characters `[A-Za-z0-9_-]`, starting with a letter.
//! - project id: 1–64 letters and digits; region: 1–64 `[A-Za-z0-9_-]` starting with a letter or
//!   digit (the same rules as SMN URNs).
//!
//! ```
//! use trailwatch_functions::urn::{FunctionRef, FunctionUrn, Qualifier};
//!
//! let err = FunctionRef::resolve("p2:default:audit", "p1", "eu-de").unwrap_err();
//! assert_eq!(err.to_string(), "function belongs to project p2, but the request is scoped to project p1");
//!
//! let f = FunctionRef::resolve("audit", "p1", "eu-de")?;
//! assert_eq!(f.urn("eu-de"), "urn:fss:eu-de:p1:function:default:audit:latest");
//!
//! let u: FunctionUrn = "urn:fss:eu-de:p1:function:default:audit:!prod".parse()?;
//! assert_eq!(u.function.qualifier, Some(Qualifier::Alias("prod".into())));
//! assert_eq!(u.to_string(), "urn:fss:eu-de:p1:function:default:audit:!prod");
//! # Ok::<(), trailwatch_functions::UrnError>(())
//! ```

use std::fmt;
use std::str::FromStr;

use crate::text::{check_name, check_project_id, check_region, is_name_char, quote};

/// The package a 1-field short form (`name`) lives in.
pub const DEFAULT_PACKAGE: &str = "default";
/// The version a URN without qualifier is rendered with by [`FunctionRef::urn`].
pub const LATEST: &str = "latest";

/// Longest function name, in characters.
pub const FUNC_NAME_MAX: usize = 60;
/// Longest package name, in characters.
pub const PACKAGE_MAX: usize = 64;
/// Longest version name, in characters.
pub const VERSION_MAX: usize = 64;
/// Longest alias name, in characters.
pub const ALIAS_MAX: usize = 63;

/// What follows the function name: a version (`latest`, `v1`) or an alias (`!prod`).
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Qualifier {
    /// A published version or `latest`.
    Version(String),
    /// An alias, written `!name` in URNs.
    Alias(String),
}

impl Qualifier {
    /// Parses a qualifier field: `!alias` or a version name.
    pub fn parse(s: &str) -> Result<Qualifier, UrnError> {
        match s.strip_prefix('!') {
            Some(alias) => {
                check_name(
                    alias,
                    ALIAS_MAX,
                    |c| c.is_ascii_alphabetic(),
                    "a letter",
                    is_name_char,
                    "letters, digits, '_' and '-'",
                )
                .map_err(|why| UrnError::field("alias", why))?;
                Ok(Qualifier::Alias(alias.to_owned()))
            }
            None => {
                check_name(
                    s,
                    VERSION_MAX,
                    |c| c.is_ascii_alphanumeric(),
                    "a letter or digit",
                    |c| is_name_char(c) || c == '.',
                    "letters, digits, '.', '_' and '-'",
                )
                .map_err(|why| UrnError::field("version", why))?;
                Ok(Qualifier::Version(s.to_owned()))
            }
        }
    }
}

impl fmt::Display for Qualifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Qualifier::Version(v) => f.write_str(v),
            Qualifier::Alias(a) => write!(f, "!{a}"),
        }
    }
}

/// A function within a project, as addressed by an API path: project, package, name and an
/// optional version or alias. Every constructor validates, so a value you hold is valid.
///
/// (The brief asked for `version: Option<String>`; URNs can also carry `!alias`, which a plain
/// string could only express with a sentinel, hence [`Qualifier`]. [`FunctionRef::version`] gives
/// the version name when that is all a caller needs.)
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionRef {
    /// The owning project's id.
    pub project_id: String,
    /// The package (app/group), e.g. `default`.
    pub package: String,
    /// The function name (`func_name`).
    pub name: String,
    /// Version or alias; `None` means unqualified (rendered as `latest`).
    pub qualifier: Option<Qualifier>,
}

/// A parsed full URN: the function plus the region it names.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct FunctionUrn {
    /// The region id, e.g. `eu-de`.
    pub region: String,
    /// The function.
    pub function: FunctionRef,
}

/// Why a function URN or name was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrnError {
    /// One field broke its rule.
    #[error("function {field}: {reason}")]
    Field {
        /// `func_name`, `package`, `version`, `alias`, `project_id`, `region` or `urn`.
        field: &'static str,
        /// What is wrong, quoting the value.
        reason: String,
    },
    /// The string has a number of `:`-separated fields no form uses.
    #[error(
        "{value} has {count} ':'-separated field(s); expected 1, 2, 3 or 4 (name, package:name, \
         project:package:name[:version]) or a URN urn:fss:{{region}}:{{project_id}}:function:{{package}}:{{name}}[:{{version}}|:!{{alias}}]"
    )]
    Shape {
        /// The string, quoted.
        value: String,
        /// How many fields it has.
        count: usize,
    },
    /// The path names another project than the caller's.
    #[error("function belongs to project {found}, but the request is scoped to project {expected}")]
    ProjectMismatch {
        /// The caller's project.
        expected: String,
        /// The project in the path.
        found: String,
    },
    /// The URN names another region than this server's.
    #[error("function URN is for region {found}, but this service is region {expected}")]
    RegionMismatch {
        /// This server's region.
        expected: String,
        /// The region in the URN.
        found: String,
    },
}

impl UrnError {
    fn field(field: &'static str, reason: String) -> UrnError {
        UrnError::Field { field, reason }
    }
}

fn check_func_name(s: &str) -> Result<(), UrnError> {
    check_name(
        s,
        FUNC_NAME_MAX,
        |c| c.is_ascii_alphabetic(),
        "a letter",
        is_name_char,
        "letters, digits, '_' and '-'",
    )
    .map_err(|why| UrnError::field("func_name", why))
}

fn check_package(s: &str) -> Result<(), UrnError> {
    check_name(
        s,
        PACKAGE_MAX,
        |c| c.is_ascii_alphabetic(),
        "a letter",
        is_name_char,
        "letters, digits, '_' and '-'",
    )
    .map_err(|why| UrnError::field("package", why))
}

fn check_project(s: &str) -> Result<(), UrnError> {
    check_project_id(s).map_err(|why| UrnError::field("project_id", why))
}

impl FunctionRef {
    /// An unqualified function reference; validates every part.
    pub fn new(project_id: &str, package: &str, name: &str) -> Result<FunctionRef, UrnError> {
        check_project(project_id)?;
        check_package(package)?;
        check_func_name(name)?;
        Ok(FunctionRef {
            project_id: project_id.to_owned(),
            package: package.to_owned(),
            name: name.to_owned(),
            qualifier: None,
        })
    }

    /// The same function with a version or alias.
    pub fn with_qualifier(mut self, qualifier: Qualifier) -> FunctionRef {
        self.qualifier = Some(qualifier);
        self
    }

    /// Resolves the function part of an API path (any form of the module table) for a request
    /// scoped to `default_project` on a server serving `region`.
    ///
    /// Refuses a project other than `default_project` ([`UrnError::ProjectMismatch`]) and a URN
    /// for another region ([`UrnError::RegionMismatch`]).
    pub fn resolve(
        path_segment: &str,
        default_project: &str,
        region: &str,
    ) -> Result<FunctionRef, UrnError> {
        let parts: Vec<&str> = path_segment.split(':').collect();
        let (project, package, name, qualifier) = match parts[..] {
            [name] => (default_project, DEFAULT_PACKAGE, name, None),
            [package, name] => (default_project, package, name, None),
            [project, package, name] => (project, package, name, None),
            [project, package, name, q] => (project, package, name, Some(q)),
            [_, _, _, _, _, _, _] | [_, _, _, _, _, _, _, _] => {
                let u = FunctionUrn::parse(path_segment)?;
                if u.region != region {
                    return Err(UrnError::RegionMismatch {
                        expected: region.to_owned(),
                        found: u.region,
                    });
                }
                if u.function.project_id != default_project {
                    return Err(UrnError::ProjectMismatch {
                        expected: default_project.to_owned(),
                        found: u.function.project_id,
                    });
                }
                return Ok(u.function);
            }
            _ => {
                return Err(UrnError::Shape {
                    value: quote(path_segment),
                    count: parts.len(),
                });
            }
        };
        let mut f = FunctionRef::new(project, package, name)?;
        if project != default_project {
            return Err(UrnError::ProjectMismatch {
                expected: default_project.to_owned(),
                found: project.to_owned(),
            });
        }
        if let Some(q) = qualifier {
            f.qualifier = Some(Qualifier::parse(q)?);
        }
        Ok(f)
    }

    /// The version name, if the reference is qualified by a version (not an alias).
    pub fn version(&self) -> Option<&str> {
        match &self.qualifier {
            Some(Qualifier::Version(v)) => Some(v),
            _ => None,
        }
    }

    /// The alias name, if the reference is qualified by an alias.
    pub fn alias(&self) -> Option<&str> {
        match &self.qualifier {
            Some(Qualifier::Alias(a)) => Some(a),
            _ => None,
        }
    }

    /// The full 8-field URN; an unqualified reference is rendered with version `latest`.
    pub fn urn(&self, region: &str) -> String {
        let q = match &self.qualifier {
            Some(q) => q.to_string(),
            None => LATEST.to_owned(),
        };
        format!("{}:{q}", self.unqualified_urn(region))
    }

    /// The 7-field URN (no version or alias).
    pub fn unqualified_urn(&self, region: &str) -> String {
        format!(
            "urn:fss:{region}:{}:function:{}:{}",
            self.project_id, self.package, self.name
        )
    }
}

impl FunctionUrn {
    /// Parses the full 7- or 8-field form. Unlike [`FunctionRef::resolve`] nothing is compared
    /// with a caller; the region is returned as found.
    pub fn parse(s: &str) -> Result<FunctionUrn, UrnError> {
        let parts: Vec<&str> = s.split(':').collect();
        let (region, project, package, name, q) = match parts[..] {
            ["urn", "fss", region, project, "function", package, name] => {
                (region, project, package, name, None)
            }
            ["urn", "fss", region, project, "function", package, name, q] => {
                (region, project, package, name, Some(q))
            }
            [_, _, _, _, _, _, _] | [_, _, _, _, _, _, _, _] => {
                return Err(UrnError::field(
                    "urn",
                    format!(
                        "{} must look like urn:fss:{{region}}:{{project_id}}:function:{{package}}:{{name}}[:{{version}}|:!{{alias}}]",
                        quote(s)
                    ),
                ));
            }
            _ => {
                return Err(UrnError::Shape {
                    value: quote(s),
                    count: parts.len(),
                });
            }
        };
        check_region(region).map_err(|why| UrnError::field("region", why))?;
        let mut function = FunctionRef::new(project, package, name)?;
        if let Some(q) = q {
            function.qualifier = Some(Qualifier::parse(q)?);
        }
        Ok(FunctionUrn {
            region: region.to_owned(),
            function,
        })
    }
}

impl FromStr for FunctionUrn {
    type Err = UrnError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        FunctionUrn::parse(s)
    }
}

impl fmt::Display for FunctionUrn {
    /// The URN as given: 7 fields when unqualified, 8 otherwise.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.function.unqualified_urn(&self.region))?;
        match &self.function.qualifier {
            Some(q) => write!(f, ":{q}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    const P: &str = "0123456789abcdef0123456789abcdef";
    const R: &str = "eu-de";

    fn r(s: &str) -> Result<FunctionRef, UrnError> {
        FunctionRef::resolve(s, P, R)
    }

    #[test]
    fn short_forms_resolve() {
        let f = r("audit").unwrap();
        assert_eq!((f.project_id.as_str(), f.package.as_str()), (P, "default"));
        assert_eq!(f.name, "audit");
        assert_eq!(f.qualifier, None);

        let f = r("ops:audit").unwrap();
        assert_eq!(f.package, "ops");

        let f = r(&format!("{P}:ops:audit")).unwrap();
        assert_eq!((f.package.as_str(), f.name.as_str()), ("ops", "audit"));

        let f = r(&format!("{P}:ops:audit:v2")).unwrap();
        assert_eq!(f.version(), Some("v2"));
        let f = r(&format!("{P}:ops:audit:!prod")).unwrap();
        assert_eq!(f.alias(), Some("prod"));
        assert_eq!(f.version(), None);
    }

    #[test]
    fn urn_forms_resolve_and_round_trip() {
        let seven = format!("urn:fss:{R}:{P}:function:default:audit");
        let f = r(&seven).unwrap();
        assert_eq!(f.urn(R), format!("{seven}:latest"));
        assert_eq!(f.unqualified_urn(R), seven);

        for q in ["latest", "1.0.2", "!prod"] {
            let eight = format!("{seven}:{q}");
            let f = r(&eight).unwrap();
            assert_eq!(f.urn(R), eight);
            let u: FunctionUrn = eight.parse().unwrap();
            assert_eq!(u.to_string(), eight);
            assert_eq!(u.region, R);
        }
        let u = FunctionUrn::parse(&seven).unwrap();
        assert_eq!(u.to_string(), seven);
    }

    #[test]
    fn project_and_region_mismatch_are_refused() {
        let other = "ffffffffffffffffffffffffffffffff";
        assert_eq!(
            r(&format!("{other}:default:audit")),
            Err(UrnError::ProjectMismatch {
                expected: P.into(),
                found: other.into()
            })
        );
        assert!(matches!(
            r(&format!(
                "urn:fss:{R}:{other}:function:default:audit:latest"
            )),
            Err(UrnError::ProjectMismatch { .. })
        ));
        let e = r(&format!("urn:fss:cn-north-4:{P}:function:default:audit")).unwrap_err();
        assert!(matches!(e, UrnError::RegionMismatch { .. }), "{e}");
        assert!(e.to_string().contains("cn-north-4"), "{e}");
    }

    #[test]
    fn bad_shapes_and_names_say_which_field() {
        let e = r("a:b:c:d:e").unwrap_err();
        assert!(matches!(e, UrnError::Shape { count: 5, .. }), "{e}");
        let e = r(&format!("urx:fss:{R}:{P}:function:default:audit")).unwrap_err();
        assert!(matches!(e, UrnError::Field { field: "urn", .. }), "{e}");
        let e = r(&format!("urn:fss:{R}:{P}:functions:default:audit")).unwrap_err();
        assert!(matches!(e, UrnError::Field { field: "urn", .. }), "{e}");

        let e = r("9audit").unwrap_err();
        assert!(
            matches!(
                e,
                UrnError::Field {
                    field: "func_name",
                    ..
                }
            ),
            "{e}"
        );
        assert!(e.to_string().contains("start with a letter"), "{e}");
        let e = r(&"a".repeat(61)).unwrap_err();
        assert!(e.to_string().contains("61 characters"), "{e}");
        assert!(r(&"a".repeat(60)).is_ok());
        let e = r("my pkg:audit").unwrap_err();
        assert!(
            matches!(
                e,
                UrnError::Field {
                    field: "package",
                    ..
                }
            ),
            "{e}"
        );
        let e = r(":audit").unwrap_err();
        assert!(
            matches!(
                e,
                UrnError::Field {
                    field: "package",
                    ..
                }
            ),
            "{e}"
        );
        let e = r(&format!("{P}:default:audit:!9x")).unwrap_err();
        assert!(matches!(e, UrnError::Field { field: "alias", .. }), "{e}");
        let e = r(&format!("{P}:default:audit:")).unwrap_err();
        assert!(
            matches!(
                e,
                UrnError::Field {
                    field: "version",
                    ..
                }
            ),
            "{e}"
        );
        let e = FunctionUrn::parse(&format!("urn:fss:e u:{P}:function:default:audit")).unwrap_err();
        assert!(
            matches!(
                e,
                UrnError::Field {
                    field: "region",
                    ..
                }
            ),
            "{e}"
        );
        let e = r("p-1:default:audit").unwrap_err();
        assert!(
            matches!(
                e,
                UrnError::Field {
                    field: "project_id",
                    ..
                }
            ),
            "{e}"
        );
    }

    #[test]
    fn with_qualifier_renders_alias() {
        let f = FunctionRef::new(P, "default", "audit")
            .unwrap()
            .with_qualifier(Qualifier::Alias("blue".into()));
        assert!(f.urn(R).ends_with(":audit:!blue"));
    }
}
