//! Agencies (OTC IAM `OS-AGENCY`) and the roles granted to them per project.
//!
//! # Tables and invariants
//! - `agencies`: one row per agency, unique `(domain_id, name)`. `trust_domain_id` /
//!   `trust_domain_name` name the trusted party: another domain, or the function service
//!   ([`trailwatch_iam::roles::FUNCTION_SERVICE_TRUST_NAME`]). `expires_at` (unix ms) is NULL
//!   for `FOREVER` agencies; an agency past it grants nothing.
//! - `agency_role_grants`: one row per (agency, project, role). Granting twice is a no-op;
//!   deleting an agency deletes its grants. Role ids are those of [`trailwatch_iam::roles`];
//!   a stored id this build does not know grants nothing.
//!
//! Tables only (no change to older ones), so older databases open unchanged.

use rusqlite::{Connection, OptionalExtension, params};

use crate::sql::CachedStatements;
use trailwatch_iam::roles::{self, Rights};

use crate::{Result, Store, StoreError, iam, now_ms};

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS agencies (
    id                TEXT PRIMARY KEY,
    domain_id         TEXT NOT NULL REFERENCES domains(id),
    name              TEXT NOT NULL,
    trust_domain_id   TEXT NOT NULL,
    trust_domain_name TEXT NOT NULL,
    description       TEXT NOT NULL DEFAULT '',
    duration          TEXT NOT NULL,
    expires_at        INTEGER,
    created_at        INTEGER NOT NULL,
    UNIQUE (domain_id, name)
);
CREATE TABLE IF NOT EXISTS agency_role_grants (
    agency_id  TEXT NOT NULL REFERENCES agencies(id) ON DELETE CASCADE,
    project_id TEXT NOT NULL REFERENCES projects(id),
    role_id    TEXT NOT NULL,
    granted_at INTEGER NOT NULL,
    PRIMARY KEY (agency_id, project_id, role_id)
) WITHOUT ROWID;
"#;

/// A stored agency.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Agency {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub trust_domain_id: String,
    pub trust_domain_name: String,
    pub description: String,
    /// `FOREVER` or `ONEDAY`.
    pub duration: String,
    /// Unix ms after which the agency grants nothing; `None` = never.
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

impl Agency {
    /// True once the agency's validity has ended.
    pub fn is_expired(&self, now_ms: i64) -> bool {
        self.expires_at.is_some_and(|t| now_ms >= t)
    }
}

/// What [`create_agency`] inserts; the caller has validated it.
#[derive(Debug, Clone)]
pub struct NewAgency<'a> {
    pub id: &'a str,
    pub domain_id: &'a str,
    pub name: &'a str,
    pub trust_domain_id: &'a str,
    pub trust_domain_name: &'a str,
    pub description: &'a str,
    pub duration: &'a str,
    pub expires_at: Option<i64>,
    pub created_at: i64,
}

fn constraint(e: rusqlite::Error, duplicate: String, missing: String) -> StoreError {
    use rusqlite::ffi::{
        SQLITE_CONSTRAINT_FOREIGNKEY, SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE,
    };
    match e {
        rusqlite::Error::SqliteFailure(f, _) if f.extended_code == SQLITE_CONSTRAINT_FOREIGNKEY => {
            StoreError::NotFound(missing)
        }
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict(duplicate)
        }
        other => StoreError::Sqlite(other),
    }
}

/// Inserts an agency. A second agency of the same name in the domain is a `Conflict`.
pub fn create_agency(c: &Connection, a: &NewAgency<'_>) -> Result<Agency> {
    c.execute_cached(
        "INSERT INTO agencies(id, domain_id, name, trust_domain_id, trust_domain_name,
                              description, duration, expires_at, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9)",
        params![
            a.id,
            a.domain_id,
            a.name,
            a.trust_domain_id,
            a.trust_domain_name,
            a.description,
            a.duration,
            a.expires_at,
            a.created_at
        ],
    )
    .map_err(|e| {
        constraint(
            e,
            format!("agency `{}` already exists in this domain", a.name),
            "the domain of the agency does not exist".into(),
        )
    })?;
    Ok(Agency {
        id: a.id.into(),
        name: a.name.into(),
        domain_id: a.domain_id.into(),
        trust_domain_id: a.trust_domain_id.into(),
        trust_domain_name: a.trust_domain_name.into(),
        description: a.description.into(),
        duration: a.duration.into(),
        expires_at: a.expires_at,
        created_at: a.created_at,
    })
}

const AGENCY_COLUMNS: &str = "id, name, domain_id, trust_domain_id, trust_domain_name, \
                              description, duration, expires_at, created_at";

fn row_agency(r: &rusqlite::Row<'_>) -> rusqlite::Result<Agency> {
    Ok(Agency {
        id: r.get(0)?,
        name: r.get(1)?,
        domain_id: r.get(2)?,
        trust_domain_id: r.get(3)?,
        trust_domain_name: r.get(4)?,
        description: r.get(5)?,
        duration: r.get(6)?,
        expires_at: r.get(7)?,
        created_at: r.get(8)?,
    })
}

pub fn agency_by_id(c: &Connection, id: &str) -> Result<Option<Agency>> {
    Ok(c.query_row_cached(
        &format!("SELECT {AGENCY_COLUMNS} FROM agencies WHERE id = ?1"),
        [id],
        row_agency,
    )
    .optional()?)
}

pub fn agency_by_name(c: &Connection, domain_id: &str, name: &str) -> Result<Option<Agency>> {
    Ok(c.query_row_cached(
        &format!("SELECT {AGENCY_COLUMNS} FROM agencies WHERE domain_id = ?1 AND name = ?2"),
        [domain_id, name],
        row_agency,
    )
    .optional()?)
}

/// The agencies of a domain, by name.
pub fn agencies_of_domain(c: &Connection, domain_id: &str) -> Result<Vec<Agency>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {AGENCY_COLUMNS} FROM agencies WHERE domain_id = ?1 ORDER BY name"
    ))?;
    let rows = stmt.query_map([domain_id], row_agency)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// Deletes an agency and its grants. False if there was none.
pub fn delete_agency(c: &Connection, id: &str) -> Result<bool> {
    // The cascade needs `foreign_keys=ON`, which the writer has; deleting the grants first
    // keeps this correct on any connection.
    c.execute_cached("DELETE FROM agency_role_grants WHERE agency_id = ?1", [id])?;
    Ok(c.execute_cached("DELETE FROM agencies WHERE id = ?1", [id])? == 1)
}

/// Grants `role_id` to the agency in the project. True if it was new, false if it was already
/// granted.
pub fn grant_role(
    c: &Connection,
    agency_id: &str,
    project_id: &str,
    role_id: &str,
) -> Result<bool> {
    let n = c
        .execute(
            "INSERT OR IGNORE INTO agency_role_grants(agency_id, project_id, role_id, granted_at)
             VALUES (?1, ?2, ?3, ?4)",
            params![agency_id, project_id, role_id, now_ms()],
        )
        .map_err(|e| {
            constraint(
                e,
                String::new(),
                "the agency or the project does not exist".into(),
            )
        })?;
    Ok(n == 1)
}

/// Revokes a grant. False if it was not granted.
pub fn revoke_role(
    c: &Connection,
    agency_id: &str,
    project_id: &str,
    role_id: &str,
) -> Result<bool> {
    Ok(c.execute_cached(
        "DELETE FROM agency_role_grants WHERE agency_id = ?1 AND project_id = ?2 AND role_id = ?3",
        [agency_id, project_id, role_id],
    )? == 1)
}

pub fn is_granted(
    c: &Connection,
    agency_id: &str,
    project_id: &str,
    role_id: &str,
) -> Result<bool> {
    Ok(c.query_row_cached(
        "SELECT 1 FROM agency_role_grants WHERE agency_id = ?1 AND project_id = ?2 AND role_id = ?3",
        [agency_id, project_id, role_id],
        |_| Ok(()),
    )
    .optional()?
    .is_some())
}

/// The role ids granted to the agency in this project (and only this project), in grant order.
pub fn granted_role_ids(c: &Connection, agency_id: &str, project_id: &str) -> Result<Vec<String>> {
    let mut stmt = c.prepare(
        "SELECT role_id FROM agency_role_grants WHERE agency_id = ?1 AND project_id = ?2
         ORDER BY granted_at, role_id",
    )?;
    let rows = stmt.query_map([agency_id, project_id], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

/// The rights of the agency named `agency_name` of domain `domain_id` in project `project_id`:
/// exactly the union of the roles granted to it in that project. See [`agency_rights`].
pub fn rights_in_project(
    c: &Connection,
    domain_id: &str,
    project_id: &str,
    agency_name: &str,
    now_ms: i64,
) -> Result<Rights> {
    let Some(agency) = agency_by_name(c, domain_id, agency_name)? else {
        return Err(StoreError::NotFound(format!(
            "agency `{agency_name}` does not exist in this domain"
        )));
    };
    if agency.is_expired(now_ms) {
        return Err(StoreError::NotFound(format!(
            "agency `{agency_name}` has expired"
        )));
    }
    match iam::project_by_id(c, project_id)? {
        Some(p) if p.domain_id == domain_id => {}
        _ => {
            return Err(StoreError::NotFound(format!(
                "project `{project_id}` does not exist in this domain"
            )));
        }
    }
    let ids = granted_role_ids(c, &agency.id, project_id)?;
    let mut granted = Vec::with_capacity(ids.len());
    for id in &ids {
        match roles::by_id(id) {
            Some(role) => granted.push(role),
            None => tracing::warn!(
                agency = %agency.id,
                role_id = %id,
                "a granted role id names no built-in role; it grants nothing"
            ),
        }
    }
    Ok(Rights::from_roles(granted))
}

/// What the agency `agency_name` of domain `domain_id` may do in project `project_id`: the union
/// of the roles granted to it in that project, nothing from other projects.
///
/// An unknown or expired agency, or a project outside the domain, is `StoreError::NotFound`
/// (with a message fit for the caller). A function without an agency uses
/// [`Rights::none`] instead of calling this.
pub async fn agency_rights(
    store: &Store,
    domain_id: &str,
    project_id: &str,
    agency_name: &str,
) -> Result<Rights> {
    let (d, p, n) = (
        domain_id.to_owned(),
        project_id.to_owned(),
        agency_name.to_owned(),
    );
    store
        .read(move |c| rights_in_project(c, &d, &p, &n, now_ms()))
        .await
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use crate::StoreOptions;

    fn role_id(display_name: &str) -> &'static str {
        roles::by_display_name(display_name).unwrap().id
    }

    struct Fixture {
        _tmp: tempfile::TempDir,
        store: Store,
        domain: String,
        project_a: String,
        project_b: String,
        other_domain: String,
        other_project: String,
    }

    async fn fixture() -> Fixture {
        let tmp = tempfile::tempdir().unwrap();
        let store = Store::open(StoreOptions::new(tmp.path())).unwrap();
        store
            .write(|c| {
                iam::create_domain(c, "d1", "default")?;
                iam::create_project(c, "pa", "d1", "a")?;
                iam::create_project(c, "pb", "d1", "b")?;
                iam::create_domain(c, "d2", "other")?;
                iam::create_project(c, "px", "d2", "x")?;
                Ok(())
            })
            .await
            .unwrap();
        Fixture {
            _tmp: tmp,
            store,
            domain: "d1".into(),
            project_a: "pa".into(),
            project_b: "pb".into(),
            other_domain: "d2".into(),
            other_project: "px".into(),
        }
    }

    fn new_agency<'a>(id: &'a str, domain_id: &'a str, name: &'a str) -> NewAgency<'a> {
        NewAgency {
            id,
            domain_id,
            name,
            trust_domain_id: roles::FUNCTION_SERVICE_TRUST_ID,
            trust_domain_name: roles::FUNCTION_SERVICE_TRUST_NAME,
            description: "",
            duration: "FOREVER",
            expires_at: None,
            created_at: 1,
        }
    }

    async fn create(f: &Fixture, id: &str, domain: &str, name: &str) -> Result<Agency> {
        let (id, domain, name) = (id.to_owned(), domain.to_owned(), name.to_owned());
        f.store
            .write(move |c| create_agency(c, &new_agency(&id, &domain, &name)))
            .await
    }

    async fn grant(f: &Fixture, agency: &str, project: &str, role: &str) -> Result<bool> {
        let (a, p, r) = (agency.to_owned(), project.to_owned(), role.to_owned());
        f.store.write(move |c| grant_role(c, &a, &p, &r)).await
    }

    #[tokio::test]
    async fn agencies_are_unique_per_domain() {
        let f = fixture().await;
        let a = create(&f, "a1", &f.domain, "fn_trust").await.unwrap();
        assert_eq!(a.name, "fn_trust");
        let dup = create(&f, "a2", &f.domain, "fn_trust").await;
        assert!(
            matches!(dup, Err(StoreError::Conflict(ref m)) if m.contains("fn_trust")),
            "{dup:?}"
        );
        // The same name in another domain is another agency.
        create(&f, "a3", &f.other_domain, "fn_trust").await.unwrap();
        let missing = create(&f, "a4", "nodomain", "x").await;
        assert!(
            matches!(missing, Err(StoreError::NotFound(_))),
            "{missing:?}"
        );

        let d = f.domain.clone();
        let listed = f
            .store
            .read(move |c| agencies_of_domain(c, &d))
            .await
            .unwrap();
        assert_eq!(listed, vec![a.clone()]);
        let found = f.store.read(|c| agency_by_id(c, "a1")).await.unwrap();
        assert_eq!(found, Some(a));
    }

    #[tokio::test]
    async fn rights_are_exactly_the_roles_granted_in_the_project() {
        let f = fixture().await;
        create(&f, "a1", &f.domain, "fn_trust").await.unwrap();
        create(&f, "a2", &f.domain, "bystander").await.unwrap();
        assert!(
            grant(&f, "a1", &f.project_a, role_id("SMN Administrator"))
                .await
                .unwrap()
        );
        assert!(
            !grant(&f, "a1", &f.project_a, role_id("SMN Administrator"))
                .await
                .unwrap(),
            "idempotent"
        );
        assert!(
            grant(&f, "a1", &f.project_a, role_id("FunctionGraph Invoker"))
                .await
                .unwrap()
        );
        assert!(
            grant(&f, "a1", &f.project_b, role_id("OBS Administrator"))
                .await
                .unwrap()
        );
        assert!(
            grant(&f, "a2", &f.project_a, role_id("Tenant Administrator"))
                .await
                .unwrap()
        );

        let in_a = agency_rights(&f.store, &f.domain, &f.project_a, "fn_trust")
            .await
            .unwrap();
        assert!(in_a.allows("smn:topic:publish"));
        assert!(in_a.allows("functiongraph:function:invoke"));
        assert!(
            !in_a.allows("obs:object:putObject"),
            "granted in project b only"
        );
        assert!(
            !in_a.allows("cts:trace:list"),
            "granted to another agency only"
        );
        let names: Vec<&str> = in_a.roles().iter().map(|r| r.name).collect();
        assert_eq!(names, ["smn_adm", "fgs_invoker"]);

        let in_b = agency_rights(&f.store, &f.domain, &f.project_b, "fn_trust")
            .await
            .unwrap();
        assert!(in_b.allows("obs:object:putObject"));
        assert!(!in_b.allows("smn:topic:publish"));

        // Revoking takes the rights away.
        let (pa, smn) = (f.project_a.clone(), role_id("SMN Administrator"));
        assert!(
            f.store
                .write(move |c| revoke_role(c, "a1", &pa, smn))
                .await
                .unwrap()
        );
        let pa = f.project_a.clone();
        assert!(
            !f.store
                .write(move |c| revoke_role(c, "a1", &pa, smn))
                .await
                .unwrap()
        );
        let in_a = agency_rights(&f.store, &f.domain, &f.project_a, "fn_trust")
            .await
            .unwrap();
        assert!(!in_a.allows("smn:topic:publish"));
        assert!(in_a.allows("functiongraph:function:invoke"));

        // An agency with no grant in a project has no rights there.
        let none = agency_rights(&f.store, &f.domain, &f.project_b, "bystander")
            .await
            .unwrap();
        assert_eq!(none, Rights::none());
    }

    #[tokio::test]
    async fn unknown_expired_and_foreign_give_not_found() {
        let f = fixture().await;
        create(&f, "a1", &f.domain, "fn_trust").await.unwrap();
        let unknown = agency_rights(&f.store, &f.domain, &f.project_a, "nope").await;
        assert!(
            matches!(unknown, Err(StoreError::NotFound(_))),
            "{unknown:?}"
        );
        // The agency's name in the other domain, and a project of the other domain.
        let wrong_domain =
            agency_rights(&f.store, &f.other_domain, &f.other_project, "fn_trust").await;
        assert!(
            matches!(wrong_domain, Err(StoreError::NotFound(_))),
            "{wrong_domain:?}"
        );
        let foreign = agency_rights(&f.store, &f.domain, &f.other_project, "fn_trust").await;
        assert!(
            matches!(foreign, Err(StoreError::NotFound(ref m)) if m.contains("project")),
            "{foreign:?}"
        );

        let d = f.domain.clone();
        f.store
            .write(move |c| {
                create_agency(
                    c,
                    &NewAgency {
                        duration: "ONEDAY",
                        expires_at: Some(now_ms() - 1),
                        ..new_agency("a2", &d, "expired")
                    },
                )
            })
            .await
            .unwrap();
        grant(&f, "a2", &f.project_a, role_id("Tenant Administrator"))
            .await
            .unwrap();
        let expired = agency_rights(&f.store, &f.domain, &f.project_a, "expired").await;
        assert!(
            matches!(expired, Err(StoreError::NotFound(ref m)) if m.contains("expired")),
            "{expired:?}"
        );
    }

    #[tokio::test]
    async fn grants_need_an_agency_and_a_project_and_die_with_the_agency() {
        let f = fixture().await;
        create(&f, "a1", &f.domain, "fn_trust").await.unwrap();
        let no_project = grant(&f, "a1", "nope", role_id("SMN Administrator")).await;
        assert!(
            matches!(no_project, Err(StoreError::NotFound(_))),
            "{no_project:?}"
        );
        let no_agency = grant(&f, "nope", &f.project_a, role_id("SMN Administrator")).await;
        assert!(
            matches!(no_agency, Err(StoreError::NotFound(_))),
            "{no_agency:?}"
        );

        grant(&f, "a1", &f.project_a, role_id("SMN Administrator"))
            .await
            .unwrap();
        let (pa, smn) = (f.project_a.clone(), role_id("SMN Administrator"));
        assert!(
            f.store
                .read(move |c| is_granted(c, "a1", &pa, smn))
                .await
                .unwrap()
        );
        assert!(f.store.write(|c| delete_agency(c, "a1")).await.unwrap());
        assert!(!f.store.write(|c| delete_agency(c, "a1")).await.unwrap());
        // A new agency of the same name starts with nothing.
        create(&f, "a9", &f.domain, "fn_trust").await.unwrap();
        let pa = f.project_a.clone();
        let left = f
            .store
            .read(move |c| {
                Ok((
                    granted_role_ids(c, "a1", &pa)?,
                    granted_role_ids(c, "a9", &pa)?,
                ))
            })
            .await
            .unwrap();
        assert_eq!(left, (vec![], vec![]));
        let rights = agency_rights(&f.store, &f.domain, &f.project_a, "fn_trust")
            .await
            .unwrap();
        assert!(rights.is_empty());
    }

    #[tokio::test]
    async fn unknown_stored_role_ids_grant_nothing() {
        let f = fixture().await;
        create(&f, "a1", &f.domain, "fn_trust").await.unwrap();
        grant(&f, "a1", &f.project_a, "0123456789abcdef0123456789abcdef")
            .await
            .unwrap();
        let rights = agency_rights(&f.store, &f.domain, &f.project_a, "fn_trust")
            .await
            .unwrap();
        assert_eq!(rights, Rights::none());
    }
}
