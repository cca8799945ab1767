//! Built-in roles and the rights they give: what an agency (and later a function acting through
//! it) may do.
//!
//! # Actions
//! An action is `service:resource:verb`, e.g. `smn:topic:publish` or `obs:object:putObject`
//! (OTC's fine-grained action format). A role is a policy document: `Allow` patterns and,
//! for the tenant-wide roles, `Deny` patterns. A pattern has the same three segments, each of
//! which may contain `*` (any run of characters inside that segment): `smn:*:*`, `*:*:get*`,
//! `*:*:*`. Matching is ASCII case-insensitive, as OTC's ("resource type and operation are not
//! case-sensitive"), so `obs:object:PutObject` and `obs:object:putObject` are the same action.
//!
//! # Rights
//! [`Rights`] is the union of a set of roles: an action is allowed when some role allows it and
//! no role denies it (an explicit `Deny` wins, as in OTC). [`Rights::none`] allows nothing.
//! A malformed action (not three non-empty segments, or containing `*`) is never allowed.
//!
//! ```
//! use trailwatch_iam::roles::{self, Rights};
//! let smn = roles::by_display_name("SMN Administrator").ok_or("no such role")?;
//! let invoker = roles::by_display_name("FunctionGraph Invoker").ok_or("no such role")?;
//! let rights = Rights::from_roles([smn, invoker]);
//! assert!(rights.allows("smn:topic:publish"));
//! assert!(rights.allows("functiongraph:function:invoke"));
//! assert!(!rights.allows("obs:object:putObject"));
//! assert!(!Rights::none().allows("smn:topic:publish"));
//! # Ok::<(), &'static str>(())
//! ```
//!
//! Role ids are fixed 32-hex strings: they are stored in grants and must never change.

use serde_json::{Value, json};

/// Where OTC displays a role: `AX` at account (domain) level, `XA` at project level.
/// In trailwatch every role can be granted in a project; the type is informational.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RoleType {
    /// `AX`: account level (OTC global services and tenant-wide roles).
    Account,
    /// `XA`: project level (regional services).
    Project,
}

impl RoleType {
    /// The OTC code, `AX` or `XA`.
    pub fn as_str(self) -> &'static str {
        match self {
            RoleType::Account => "AX",
            RoleType::Project => "XA",
        }
    }
}

/// A built-in role.
#[derive(Debug, PartialEq, Eq)]
pub struct Role {
    /// Fixed 32-hex id.
    pub id: &'static str,
    /// Internal name (OTC `name`, e.g. `te_admin`).
    pub name: &'static str,
    /// The name shown to people (OTC `display_name`, e.g. `Tenant Administrator`).
    pub display_name: &'static str,
    pub description: &'static str,
    /// Service catalog (OTC `catalog`, e.g. `BASE`, `SMN`).
    pub catalog: &'static str,
    pub role_type: RoleType,
    /// Action patterns this role allows.
    pub allow: &'static [&'static str],
    /// Action patterns this role denies, whatever any role allows.
    pub deny: &'static [&'static str],
}

/// The trusted party of a cloud-service agency for FunctionGraph, as OTC names it
/// (`trust_domain_name`). An agency that trusts it may be assumed by trailwatch's function
/// service, and only by it.
pub const FUNCTION_SERVICE_TRUST_NAME: &str = "op_svc_cff";

/// The fixed `trust_domain_id` reported for [`FUNCTION_SERVICE_TRUST_NAME`]. It names no real
/// domain; it is accepted as `trust_domain_id` in place of the name.
pub const FUNCTION_SERVICE_TRUST_ID: &str = "f94392fa8207bb9af437f5e0e5bc83dd";

/// IAM administration, which the tenant-wide roles exclude (trailwatch's IAM actions are
/// `iam:…`; `identity:…` is OTC's name for the same service).
const IAM_DENY: &[&str] = &["iam:*:*", "identity:*:*"];

/// Every built-in role, in the order `GET /v3/roles` lists them.
pub static ROLES: &[Role] = &[
    Role {
        id: "ffab2d788439cc2b41a6240cd93982eb",
        name: "te_admin",
        display_name: "Tenant Administrator",
        description: "Tenant Administrator (Exclude IAM): every action of every service except \
                      IAM administration.",
        catalog: "BASE",
        role_type: RoleType::Account,
        allow: &["*:*:*"],
        deny: IAM_DENY,
    },
    Role {
        id: "06bfa5c12ff203a1315c0b854382afd0",
        name: "readonly_all",
        display_name: "Tenant Guest",
        description: "Tenant Guest (Exclude IAM): read-only access (get, list, head) to every \
                      service except IAM.",
        catalog: "BASE",
        role_type: RoleType::Account,
        allow: &["*:*:get*", "*:*:list*", "*:*:head*"],
        deny: IAM_DENY,
    },
    Role {
        id: "cf49b74a4751d6d17efa58fa99ffb32f",
        name: "smn_adm",
        display_name: "SMN Administrator",
        description: "All SMN operations: topics, subscriptions, templates, publishing.",
        catalog: "SMN",
        role_type: RoleType::Project,
        allow: &["smn:*:*"],
        deny: &[],
    },
    Role {
        id: "640525842c478920fb81d2d8e6bb3199",
        name: "smn_readonly",
        display_name: "SMN ReadOnlyAccess",
        description: "Read-only access to SMN topics, subscriptions and templates.",
        catalog: "SMN",
        role_type: RoleType::Project,
        allow: &["smn:*:get*", "smn:*:list*"],
        deny: &[],
    },
    Role {
        id: "c2a8dcb2da5f55e0c851e891233cf5b3",
        name: "obs_adm",
        display_name: "OBS Administrator",
        description: "All OBS operations on buckets and objects.",
        catalog: "OBS",
        role_type: RoleType::Account,
        allow: &["obs:*:*"],
        deny: &[],
    },
    Role {
        id: "6c657655a69662629a4a8229af6db98d",
        name: "obs_readonly",
        display_name: "OBS ReadOnlyAccess",
        description: "List buckets and objects, read objects and their metadata.",
        catalog: "OBS",
        role_type: RoleType::Account,
        allow: &["obs:*:get*", "obs:*:list*", "obs:*:head*"],
        deny: &[],
    },
    Role {
        id: "1c8ef70497de6379debb40acd82375dc",
        name: "cts_adm",
        display_name: "CTS Administrator",
        description: "All CTS operations: traces, trackers, key event notifications.",
        catalog: "CTS",
        role_type: RoleType::Project,
        allow: &["cts:*:*"],
        deny: &[],
    },
    Role {
        id: "aafed95c37de555d446b38850f3629cb",
        name: "cts_readonly",
        display_name: "CTS ReadOnlyAccess",
        description: "Read-only access to CTS traces, trackers and notifications.",
        catalog: "CTS",
        role_type: RoleType::Project,
        allow: &["cts:*:get*", "cts:*:list*"],
        deny: &[],
    },
    Role {
        id: "15946d0aec38cec0961774a67e9a7f10",
        name: "fgs_invoker",
        display_name: "FunctionGraph Invoker",
        description: "Invoke FunctionGraph functions, nothing else.",
        catalog: "FunctionGraph",
        role_type: RoleType::Project,
        allow: &["functiongraph:function:invoke"],
        deny: &[],
    },
    Role {
        id: "37aed4f380e51b15b7bf81af4d2ca376",
        name: "fgs_adm",
        display_name: "FunctionGraph Administrator",
        description: "All FunctionGraph operations: functions, triggers, invocation.",
        catalog: "FunctionGraph",
        role_type: RoleType::Project,
        allow: &["functiongraph:*:*"],
        deny: &[],
    },
    Role {
        id: "c46ba8308bdb9f45c3d64fe3e8aa1035",
        name: "fgs_readonly",
        display_name: "FunctionGraph ReadOnlyAccess",
        description: "Read-only access to FunctionGraph functions and triggers.",
        catalog: "FunctionGraph",
        role_type: RoleType::Project,
        allow: &["functiongraph:*:get*", "functiongraph:*:list*"],
        deny: &[],
    },
    Role {
        id: "ad32966454a8583318027073b419124b",
        name: "lts_adm",
        display_name: "LTS Administrator",
        description: "All LTS operations: log groups, log streams, writing and reading logs.",
        catalog: "LTS",
        role_type: RoleType::Project,
        allow: &["lts:*:*"],
        deny: &[],
    },
    Role {
        id: "00938655b233acfb9b0d51a2fa43c302",
        name: "lts_readonly",
        display_name: "LTS ReadOnlyAccess",
        description: "Read-only access to LTS log groups, log streams and logs.",
        catalog: "LTS",
        role_type: RoleType::Project,
        allow: &["lts:*:get*", "lts:*:list*"],
        deny: &[],
    },
];

/// The actions trailwatch's services check (or will check). Documentation, and the universe the
/// tests check every role against; [`Rights::allows`] does not require an action to be listed.
pub const ACTIONS: &[&str] = &[
    "cts:trace:create",
    "cts:trace:list",
    "cts:tracker:create",
    "cts:tracker:list",
    "cts:tracker:get",
    "cts:tracker:update",
    "cts:tracker:delete",
    "cts:notification:create",
    "cts:notification:list",
    "cts:notification:update",
    "cts:notification:delete",
    "smn:topic:create",
    "smn:topic:list",
    "smn:topic:get",
    "smn:topic:update",
    "smn:topic:delete",
    "smn:topic:publish",
    "smn:subscription:create",
    "smn:subscription:list",
    "smn:subscription:delete",
    "smn:template:create",
    "smn:template:list",
    "smn:template:get",
    "smn:template:update",
    "smn:template:delete",
    "obs:bucket:createBucket",
    "obs:bucket:listAllMyBuckets",
    "obs:bucket:listBucket",
    "obs:bucket:headBucket",
    "obs:bucket:deleteBucket",
    "obs:object:putObject",
    "obs:object:getObject",
    "obs:object:deleteObject",
    "functiongraph:function:create",
    "functiongraph:function:list",
    "functiongraph:function:get",
    "functiongraph:function:update",
    "functiongraph:function:delete",
    "functiongraph:function:invoke",
    "functiongraph:trigger:create",
    "functiongraph:trigger:list",
    "functiongraph:trigger:delete",
    "lts:groups:create",
    "lts:groups:list",
    "lts:groups:delete",
    "lts:topics:create",
    "lts:topics:list",
    "lts:topics:delete",
    "lts:logs:put",
    "lts:logs:list",
    "iam:agencies:create",
    "iam:agencies:list",
    "iam:agencies:get",
    "iam:agencies:delete",
    "iam:roles:list",
    "iam:users:create",
    "iam:users:list",
    "iam:projects:create",
    "iam:credentials:create",
];

/// Every built-in role.
pub fn all() -> &'static [Role] {
    ROLES
}

/// The role with this id.
pub fn by_id(id: &str) -> Option<&'static Role> {
    ROLES.iter().find(|r| r.id == id)
}

/// The role with this internal name (`te_admin`).
pub fn by_name(name: &str) -> Option<&'static Role> {
    ROLES.iter().find(|r| r.name == name)
}

/// The role with this display name (`Tenant Administrator`).
pub fn by_display_name(display_name: &str) -> Option<&'static Role> {
    ROLES.iter().find(|r| r.display_name == display_name)
}

impl Role {
    /// True if this role alone allows `action`.
    pub fn allows(&self, action: &str) -> bool {
        Rights::from_roles([self]).allows(action)
    }

    /// The OTC policy document: `{"Version":"1.1","Statement":[{"Effect":"Allow","Action":[…]},
    /// {"Effect":"Deny","Action":[…]}]}` (the `Deny` statement only when there is one).
    pub fn policy(&self) -> Value {
        let mut statements = vec![json!({"Effect": "Allow", "Action": self.allow})];
        if !self.deny.is_empty() {
            statements.push(json!({"Effect": "Deny", "Action": self.deny}));
        }
        json!({"Version": "1.1", "Statement": statements})
    }
}

/// The characters of one segment of an action: letters, digits, `_`, `-`, `.`.
fn segment_char(b: u8) -> bool {
    b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.')
}

/// True if `action` is a concrete action: three non-empty segments of letters, digits, `_`, `-`
/// or `.` (no wildcards).
pub fn is_valid_action(action: &str) -> bool {
    let segments: Vec<&str> = action.split(':').collect();
    segments.len() == 3
        && segments
            .iter()
            .all(|s| !s.is_empty() && s.bytes().all(segment_char))
}

/// True if `pattern` is a well-formed action pattern: three non-empty segments that may also
/// contain `*`.
pub fn is_valid_pattern(pattern: &str) -> bool {
    let segments: Vec<&str> = pattern.split(':').collect();
    segments.len() == 3
        && segments
            .iter()
            .all(|s| !s.is_empty() && s.bytes().all(|b| b == b'*' || segment_char(b)))
}

/// True if the action pattern `pattern` covers the concrete `action` (segment by segment, `*`
/// never crossing a `:`, ASCII case-insensitive). Malformed actions or patterns match nothing.
pub fn pattern_matches(pattern: &str, action: &str) -> bool {
    if !is_valid_action(action) || !is_valid_pattern(pattern) {
        return false;
    }
    pattern
        .split(':')
        .zip(action.split(':'))
        .all(|(p, a)| glob(p.as_bytes(), a.as_bytes()))
}

/// `*` matches any run of bytes (including none); everything else matches itself, ignoring
/// ASCII case. Linear-time greedy matching with one backtrack point.
fn glob(pattern: &[u8], text: &[u8]) -> bool {
    let (mut p, mut t) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while t < text.len() {
        match pattern.get(p) {
            Some(b'*') => {
                star = Some((p, t));
                p += 1;
            }
            Some(&c) if c.eq_ignore_ascii_case(&text[t]) => {
                p += 1;
                t += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    p = sp + 1;
                    t = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    pattern[p.min(pattern.len())..].iter().all(|&b| b == b'*')
}

/// The rights of a principal (an agency in one project): the union of its roles.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Rights {
    /// In catalogue order, each role once.
    roles: Vec<&'static Role>,
}

/// A role id that names no built-in role.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("role `{0}` does not exist")]
pub struct UnknownRole(pub String);

impl Rights {
    /// No rights at all: every [`Rights::allows`] is false. What a function without an agency has.
    pub fn none() -> Rights {
        Rights::default()
    }

    /// The union of `roles` (duplicates are ignored).
    pub fn from_roles<'a>(roles: impl IntoIterator<Item = &'a Role>) -> Rights {
        let wanted: Vec<&str> = roles.into_iter().map(|r| r.id).collect();
        Rights {
            roles: ROLES.iter().filter(|r| wanted.contains(&r.id)).collect(),
        }
    }

    /// The union of the roles with these ids; fails on the first id that names no role.
    pub fn from_role_ids<'a>(
        ids: impl IntoIterator<Item = &'a str>,
    ) -> Result<Rights, UnknownRole> {
        let mut roles = Vec::new();
        for id in ids {
            roles.push(by_id(id).ok_or_else(|| UnknownRole(id.to_owned()))?);
        }
        Ok(Rights::from_roles(roles))
    }

    /// True if some role allows `action` and none denies it.
    pub fn allows(&self, action: &str) -> bool {
        if !is_valid_action(action) {
            return false;
        }
        let any = |pick: fn(&Role) -> &'static [&'static str]| {
            self.roles
                .iter()
                .flat_map(|r| pick(r).iter())
                .any(|p| pattern_matches(p, action))
        };
        any(|r| r.allow) && !any(|r| r.deny)
    }

    /// The roles these rights are made of, in catalogue order.
    pub fn roles(&self) -> &[&'static Role] {
        &self.roles
    }

    /// True when no role is granted (nothing is allowed).
    pub fn is_empty(&self) -> bool {
        self.roles.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ids::is_id32;

    fn role(display_name: &str) -> &'static Role {
        match by_display_name(display_name) {
            Some(r) => r,
            None => panic!("no role {display_name}"),
        }
    }

    /// The actions of [`ACTIONS`] that `rights` allows.
    fn allowed(rights: &Rights) -> Vec<&'static str> {
        ACTIONS
            .iter()
            .copied()
            .filter(|a| rights.allows(a))
            .collect()
    }

    fn with_prefix(prefix: &str) -> Vec<&'static str> {
        ACTIONS
            .iter()
            .copied()
            .filter(|a| a.starts_with(prefix))
            .collect()
    }

    #[test]
    fn ids_and_names_are_unique_and_well_formed() {
        for (i, r) in ROLES.iter().enumerate() {
            assert!(is_id32(r.id), "{}", r.id);
            for other in &ROLES[i + 1..] {
                assert_ne!(r.id, other.id);
                assert_ne!(r.name, other.name);
                assert_ne!(r.display_name, other.display_name);
            }
            assert!(!r.allow.is_empty(), "{} allows nothing", r.name);
            for p in r.allow.iter().chain(r.deny) {
                assert!(is_valid_pattern(p), "{}: bad pattern {p}", r.name);
            }
            assert_eq!(by_id(r.id), Some(r));
            assert_eq!(by_name(r.name), Some(r));
            assert_eq!(by_display_name(r.display_name), Some(r));
        }
        for a in ACTIONS {
            assert!(is_valid_action(a), "{a}");
        }
    }

    #[test]
    fn role_ids_never_change() {
        // Grants store these ids: changing one silently revokes every grant of that role.
        let pinned = [
            ("te_admin", "ffab2d788439cc2b41a6240cd93982eb"),
            ("readonly_all", "06bfa5c12ff203a1315c0b854382afd0"),
            ("smn_adm", "cf49b74a4751d6d17efa58fa99ffb32f"),
            ("smn_readonly", "640525842c478920fb81d2d8e6bb3199"),
            ("obs_adm", "c2a8dcb2da5f55e0c851e891233cf5b3"),
            ("obs_readonly", "6c657655a69662629a4a8229af6db98d"),
            ("cts_adm", "1c8ef70497de6379debb40acd82375dc"),
            ("cts_readonly", "aafed95c37de555d446b38850f3629cb"),
            ("fgs_invoker", "15946d0aec38cec0961774a67e9a7f10"),
            ("fgs_adm", "37aed4f380e51b15b7bf81af4d2ca376"),
            ("fgs_readonly", "c46ba8308bdb9f45c3d64fe3e8aa1035"),
            ("lts_adm", "ad32966454a8583318027073b419124b"),
            ("lts_readonly", "00938655b233acfb9b0d51a2fa43c302"),
        ];
        assert_eq!(ROLES.len(), pinned.len());
        for (name, id) in pinned {
            assert_eq!(by_name(name).map(|r| r.id), Some(id), "{name}");
        }
    }

    #[test]
    fn the_otc_roles_exist() {
        for name in [
            "Tenant Administrator",
            "Tenant Guest",
            "SMN Administrator",
            "OBS Administrator",
            "CTS Administrator",
            "FunctionGraph Invoker",
            "FunctionGraph Administrator",
            "LTS Administrator",
        ] {
            assert!(by_display_name(name).is_some(), "{name}");
        }
    }

    #[test]
    fn no_rights_allow_nothing() {
        let none = Rights::none();
        assert!(none.is_empty());
        assert!(allowed(&none).is_empty());
        assert!(!none.allows("smn:topic:publish"));
        assert_eq!(Rights::from_roles([]), none);
    }

    #[test]
    fn wildcards_stay_inside_their_segment() {
        assert!(pattern_matches("smn:*:*", "smn:topic:publish"));
        assert!(pattern_matches("*:*:*", "obs:object:putObject"));
        assert!(pattern_matches("*:*:get*", "obs:object:getObject"));
        assert!(pattern_matches("obs:*:*Object", "obs:object:putObject"));
        assert!(pattern_matches("o*s:ob*ct:p*t*", "obs:object:putObject"));
        assert!(!pattern_matches("smn:*:*", "smns:topic:publish"));
        assert!(!pattern_matches("smn:*", "smn:topic:publish"));
        assert!(!pattern_matches("*", "smn:topic:publish"));
        assert!(!pattern_matches("*:*:get*", "obs:object:putObject"));
        assert!(!pattern_matches("*:*:get*", "obs:get:putObject"));
        assert!(!pattern_matches("smn:topic:publish", "smn:topic:publishx"));
        assert!(!pattern_matches("smn:topic:publish", "smn:topic:publis"));
        assert!(!pattern_matches("smn:topic:pub*x", "smn:topic:publish"));
        // Resource and verb case does not matter (OTC); neither does the service's here.
        assert!(pattern_matches(
            "obs:object:putObject",
            "obs:object:PutObject"
        ));
        assert!(pattern_matches("OBS:*:PUT*", "obs:object:putObject"));
    }

    #[test]
    fn malformed_actions_are_never_allowed() {
        let all = Rights::from_roles([role("Tenant Administrator")]);
        assert!(all.allows("smn:topic:publish"));
        for bad in [
            "",
            "smn",
            "smn:topic",
            "smn:topic:publish:x",
            "smn::publish",
            ":topic:publish",
            "smn:topic:",
            "smn:*:publish",
            "*:*:*",
            "smn:topic:pub lish",
            "smn:topic:publish\n",
        ] {
            assert!(!all.allows(bad), "{bad:?}");
            assert!(!is_valid_action(bad), "{bad:?}");
        }
    }

    #[test]
    fn tenant_administrator_is_everything_but_iam() {
        let rights = Rights::from_roles([role("Tenant Administrator")]);
        let expected: Vec<&str> = ACTIONS
            .iter()
            .copied()
            .filter(|a| !a.starts_with("iam:"))
            .collect();
        assert_eq!(allowed(&rights), expected);
        assert!(
            rights.allows("ecs:server:create"),
            "services we do not know"
        );
        assert!(!rights.allows("iam:agencies:create"));
        assert!(!rights.allows("identity:users:create"));
    }

    #[test]
    fn tenant_guest_reads_everything_but_iam() {
        let rights = Rights::from_roles([role("Tenant Guest")]);
        let expected: Vec<&str> = ACTIONS
            .iter()
            .copied()
            .filter(|a| !a.starts_with("iam:"))
            .filter(|a| {
                let verb = a.rsplit(':').next().unwrap_or("");
                verb.starts_with("get") || verb.starts_with("list") || verb.starts_with("head")
            })
            .collect();
        assert_eq!(allowed(&rights), expected);
        assert!(rights.allows("smn:topic:list"));
        assert!(rights.allows("obs:object:getObject"));
        assert!(!rights.allows("smn:topic:publish"));
        assert!(!rights.allows("iam:roles:list"));
    }

    #[test]
    fn service_administrators_cover_exactly_their_service() {
        for (role_name, prefix) in [
            ("SMN Administrator", "smn:"),
            ("OBS Administrator", "obs:"),
            ("CTS Administrator", "cts:"),
            ("FunctionGraph Administrator", "functiongraph:"),
            ("LTS Administrator", "lts:"),
        ] {
            let rights = Rights::from_roles([role(role_name)]);
            assert_eq!(allowed(&rights), with_prefix(prefix), "{role_name}");
        }
    }

    #[test]
    fn read_only_roles_only_read() {
        let smn = Rights::from_roles([role("SMN ReadOnlyAccess")]);
        assert_eq!(
            allowed(&smn),
            [
                "smn:topic:list",
                "smn:topic:get",
                "smn:subscription:list",
                "smn:template:list",
                "smn:template:get"
            ]
        );
        let obs = Rights::from_roles([role("OBS ReadOnlyAccess")]);
        assert_eq!(
            allowed(&obs),
            [
                "obs:bucket:listAllMyBuckets",
                "obs:bucket:listBucket",
                "obs:bucket:headBucket",
                "obs:object:getObject"
            ]
        );
        let cts = Rights::from_roles([role("CTS ReadOnlyAccess")]);
        assert_eq!(
            allowed(&cts),
            [
                "cts:trace:list",
                "cts:tracker:list",
                "cts:tracker:get",
                "cts:notification:list"
            ]
        );
        let fgs = Rights::from_roles([role("FunctionGraph ReadOnlyAccess")]);
        assert_eq!(
            allowed(&fgs),
            [
                "functiongraph:function:list",
                "functiongraph:function:get",
                "functiongraph:trigger:list"
            ]
        );
        let lts = Rights::from_roles([role("LTS ReadOnlyAccess")]);
        assert_eq!(
            allowed(&lts),
            ["lts:groups:list", "lts:topics:list", "lts:logs:list"]
        );
    }

    #[test]
    fn invoker_only_invokes() {
        let rights = Rights::from_roles([role("FunctionGraph Invoker")]);
        assert_eq!(allowed(&rights), ["functiongraph:function:invoke"]);
    }

    #[test]
    fn rights_are_the_union_of_their_roles() {
        let rights = Rights::from_roles([
            role("SMN Administrator"),
            role("FunctionGraph Invoker"),
            role("SMN Administrator"),
        ]);
        let mut expected = with_prefix("smn:");
        expected.push("functiongraph:function:invoke");
        expected.sort();
        let mut got = allowed(&rights);
        got.sort();
        assert_eq!(got, expected);
        let names: Vec<&str> = rights.roles().iter().map(|r| r.name).collect();
        assert_eq!(
            names,
            ["smn_adm", "fgs_invoker"],
            "catalogue order, once each"
        );
    }

    #[test]
    fn a_deny_wins_over_any_allow() {
        // Tenant Guest allows `*:*:list*` but denies IAM; Tenant Administrator allows all but
        // denies IAM: together they still cannot list IAM roles.
        let rights = Rights::from_roles([role("Tenant Guest"), role("Tenant Administrator")]);
        assert!(!rights.allows("iam:roles:list"));
        assert!(rights.allows("lts:logs:put"));
    }

    #[test]
    fn from_role_ids_is_strict() {
        let smn = role("SMN Administrator");
        let ok = Rights::from_role_ids([smn.id]);
        assert_eq!(ok, Ok(Rights::from_roles([smn])));
        let bad = Rights::from_role_ids([smn.id, "0123456789abcdef0123456789abcdef"]);
        assert_eq!(
            bad,
            Err(UnknownRole("0123456789abcdef0123456789abcdef".into()))
        );
        assert_eq!(Rights::from_role_ids([]), Ok(Rights::none()));
    }

    #[test]
    fn a_single_role_answers_for_itself() {
        assert!(role("FunctionGraph Invoker").allows("functiongraph:function:invoke"));
        assert!(!role("FunctionGraph Invoker").allows("functiongraph:function:create"));
    }

    #[test]
    fn policy_documents_have_the_otc_shape() {
        let admin = role("Tenant Administrator").policy();
        assert_eq!(
            admin,
            json!({"Version": "1.1", "Statement": [
                {"Effect": "Allow", "Action": ["*:*:*"]},
                {"Effect": "Deny", "Action": ["iam:*:*", "identity:*:*"]},
            ]})
        );
        let invoker = role("FunctionGraph Invoker").policy();
        assert_eq!(
            invoker,
            json!({"Version": "1.1", "Statement": [
                {"Effect": "Allow", "Action": ["functiongraph:function:invoke"]},
            ]})
        );
        assert_eq!(RoleType::Account.as_str(), "AX");
        assert_eq!(RoleType::Project.as_str(), "XA");
    }
}
