//! IAM metadata: domains, projects, users, AK/SK credentials and revoked tokens.
//!
//! Plain functions over a connection: reads run on the reader pool ([`crate::Store::read`]),
//! writes inside [`crate::Store::write`]. Secret keys are stored sealed (the caller seals them
//! with the server's key); password hashes are argon2 PHC strings.

use rusqlite::{Connection, OptionalExtension, params};

use crate::sql::CachedStatements;

use crate::{Result, StoreError, now_ms};

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Domain {
    pub id: String,
    pub name: String,
    pub created_at: i64,
}

#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Project {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub created_at: i64,
}

#[derive(Clone, PartialEq, Eq)]
pub struct User {
    pub id: String,
    pub name: String,
    pub domain_id: String,
    pub password_hash: Option<String>,
    pub is_admin: bool,
    pub enabled: bool,
    pub created_at: i64,
}

// The password hash is not a secret in itself, but it has no business in logs either.
impl std::fmt::Debug for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("domain_id", &self.domain_id)
            .field("is_admin", &self.is_admin)
            .field("enabled", &self.enabled)
            .finish_non_exhaustive()
    }
}

#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub access: String,
    pub user_id: String,
    pub secret_sealed: String,
    pub status: String,
    pub description: String,
    pub created_at: i64,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("access", &self.access)
            .field("user_id", &self.user_id)
            .field("status", &self.status)
            .finish_non_exhaustive()
    }
}

/// Maps a uniqueness violation to `Conflict(what)` and a missing parent row (foreign key) to
/// `NotFound`; anything else stays a database error.
fn conflict(e: rusqlite::Error, what: String) -> StoreError {
    use rusqlite::ffi::{
        SQLITE_CONSTRAINT_FOREIGNKEY, SQLITE_CONSTRAINT_PRIMARYKEY, SQLITE_CONSTRAINT_UNIQUE,
    };
    match e {
        rusqlite::Error::SqliteFailure(f, _) if f.extended_code == SQLITE_CONSTRAINT_FOREIGNKEY => {
            StoreError::NotFound("the domain or user it belongs to does not exist".into())
        }
        rusqlite::Error::SqliteFailure(f, _)
            if f.extended_code == SQLITE_CONSTRAINT_UNIQUE
                || f.extended_code == SQLITE_CONSTRAINT_PRIMARYKEY =>
        {
            StoreError::Conflict(what)
        }
        other => StoreError::Sqlite(other),
    }
}

pub fn create_domain(c: &Connection, id: &str, name: &str) -> Result<Domain> {
    let created_at = now_ms();
    c.execute_cached(
        "INSERT INTO domains(id, name, created_at) VALUES (?1, ?2, ?3)",
        params![id, name, created_at],
    )
    .map_err(|e| conflict(e, format!("domain `{name}` already exists")))?;
    Ok(Domain {
        id: id.into(),
        name: name.into(),
        created_at,
    })
}

fn row_domain(r: &rusqlite::Row<'_>) -> rusqlite::Result<Domain> {
    Ok(Domain {
        id: r.get(0)?,
        name: r.get(1)?,
        created_at: r.get(2)?,
    })
}

pub fn domain_by_name(c: &Connection, name: &str) -> Result<Option<Domain>> {
    Ok(c.query_row_cached(
        "SELECT id, name, created_at FROM domains WHERE name = ?1",
        [name],
        row_domain,
    )
    .optional()?)
}

pub fn domain_by_id(c: &Connection, id: &str) -> Result<Option<Domain>> {
    Ok(c.query_row_cached(
        "SELECT id, name, created_at FROM domains WHERE id = ?1",
        [id],
        row_domain,
    )
    .optional()?)
}

pub fn create_project(c: &Connection, id: &str, domain_id: &str, name: &str) -> Result<Project> {
    let created_at = now_ms();
    c.execute_cached(
        "INSERT INTO projects(id, name, domain_id, created_at) VALUES (?1, ?2, ?3, ?4)",
        params![id, name, domain_id, created_at],
    )
    .map_err(|e| conflict(e, format!("project `{name}` already exists in this domain")))?;
    Ok(Project {
        id: id.into(),
        name: name.into(),
        domain_id: domain_id.into(),
        created_at,
    })
}

fn row_project(r: &rusqlite::Row<'_>) -> rusqlite::Result<Project> {
    Ok(Project {
        id: r.get(0)?,
        name: r.get(1)?,
        domain_id: r.get(2)?,
        created_at: r.get(3)?,
    })
}

pub fn project_by_id(c: &Connection, id: &str) -> Result<Option<Project>> {
    Ok(c.query_row_cached(
        "SELECT id, name, domain_id, created_at FROM projects WHERE id = ?1",
        [id],
        row_project,
    )
    .optional()?)
}

pub fn project_by_name(c: &Connection, domain_id: &str, name: &str) -> Result<Option<Project>> {
    Ok(c.query_row_cached(
        "SELECT id, name, domain_id, created_at FROM projects WHERE domain_id = ?1 AND name = ?2",
        [domain_id, name],
        row_project,
    )
    .optional()?)
}

pub fn projects_of_domain(c: &Connection, domain_id: &str) -> Result<Vec<Project>> {
    let mut stmt = c.prepare(
        "SELECT id, name, domain_id, created_at FROM projects WHERE domain_id = ?1 ORDER BY name",
    )?;
    let rows = stmt.query_map([domain_id], row_project)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub struct NewUser<'a> {
    pub id: &'a str,
    pub domain_id: &'a str,
    pub name: &'a str,
    pub password_hash: Option<&'a str>,
    pub is_admin: bool,
}

impl std::fmt::Debug for NewUser<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NewUser")
            .field("id", &self.id)
            .field("name", &self.name)
            .field("domain_id", &self.domain_id)
            .field("is_admin", &self.is_admin)
            .finish_non_exhaustive()
    }
}

pub fn create_user(c: &Connection, u: NewUser<'_>) -> Result<User> {
    let created_at = now_ms();
    c.execute_cached(
        "INSERT INTO users(id, name, domain_id, password_hash, is_admin, enabled, created_at)
         VALUES (?1, ?2, ?3, ?4, ?5, 1, ?6)",
        params![
            u.id,
            u.name,
            u.domain_id,
            u.password_hash,
            u.is_admin,
            created_at
        ],
    )
    .map_err(|e| {
        conflict(
            e,
            format!("user `{}` already exists in this domain", u.name),
        )
    })?;
    Ok(User {
        id: u.id.into(),
        name: u.name.into(),
        domain_id: u.domain_id.into(),
        password_hash: u.password_hash.map(str::to_owned),
        is_admin: u.is_admin,
        enabled: true,
        created_at,
    })
}

const USER_COLUMNS: &str = "id, name, domain_id, password_hash, is_admin, enabled, created_at";

fn row_user(r: &rusqlite::Row<'_>) -> rusqlite::Result<User> {
    Ok(User {
        id: r.get(0)?,
        name: r.get(1)?,
        domain_id: r.get(2)?,
        password_hash: r.get(3)?,
        is_admin: r.get(4)?,
        enabled: r.get(5)?,
        created_at: r.get(6)?,
    })
}

pub fn user_by_name(c: &Connection, domain_id: &str, name: &str) -> Result<Option<User>> {
    Ok(c.query_row_cached(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE domain_id = ?1 AND name = ?2"),
        [domain_id, name],
        row_user,
    )
    .optional()?)
}

pub fn user_by_id(c: &Connection, id: &str) -> Result<Option<User>> {
    Ok(c.query_row_cached(
        &format!("SELECT {USER_COLUMNS} FROM users WHERE id = ?1"),
        [id],
        row_user,
    )
    .optional()?)
}

pub fn users_of_domain(c: &Connection, domain_id: &str) -> Result<Vec<User>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {USER_COLUMNS} FROM users WHERE domain_id = ?1 ORDER BY name"
    ))?;
    let rows = stmt.query_map([domain_id], row_user)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub fn count_users(c: &Connection) -> Result<u64> {
    let n: i64 = c.query_row_cached("SELECT count(*) FROM users", [], |r| r.get(0))?;
    Ok(n.max(0) as u64)
}

pub fn create_credential(
    c: &Connection,
    access: &str,
    user_id: &str,
    secret_sealed: &str,
    description: &str,
) -> Result<Credential> {
    let created_at = now_ms();
    c.execute_cached(
        "INSERT INTO credentials(access, user_id, secret_sealed, status, description, created_at)
         VALUES (?1, ?2, ?3, 'active', ?4, ?5)",
        params![access, user_id, secret_sealed, description, created_at],
    )
    .map_err(|e| conflict(e, format!("access key `{access}` already exists")))?;
    Ok(Credential {
        access: access.into(),
        user_id: user_id.into(),
        secret_sealed: secret_sealed.into(),
        status: "active".into(),
        description: description.into(),
        created_at,
    })
}

const CREDENTIAL_COLUMNS: &str = "access, user_id, secret_sealed, status, description, created_at";

fn row_credential(r: &rusqlite::Row<'_>) -> rusqlite::Result<Credential> {
    Ok(Credential {
        access: r.get(0)?,
        user_id: r.get(1)?,
        secret_sealed: r.get(2)?,
        status: r.get(3)?,
        description: r.get(4)?,
        created_at: r.get(5)?,
    })
}

pub fn credential(c: &Connection, access: &str) -> Result<Option<Credential>> {
    Ok(c.query_row_cached(
        &format!("SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE access = ?1"),
        [access],
        row_credential,
    )
    .optional()?)
}

pub fn credentials_of_user(c: &Connection, user_id: &str) -> Result<Vec<Credential>> {
    let mut stmt = c.prepare(&format!(
        "SELECT {CREDENTIAL_COLUMNS} FROM credentials WHERE user_id = ?1 ORDER BY created_at"
    ))?;
    let rows = stmt.query_map([user_id], row_credential)?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

pub fn delete_credential(c: &Connection, access: &str) -> Result<bool> {
    Ok(c.execute_cached("DELETE FROM credentials WHERE access = ?1", [access])? == 1)
}

pub fn revoke_token(c: &Connection, jti: &str, expires_at: i64) -> Result<()> {
    c.execute_cached(
        "INSERT OR IGNORE INTO revoked_tokens(jti, expires_at) VALUES (?1, ?2)",
        params![jti, expires_at],
    )?;
    // Entries for tokens that have expired anyway are dead weight.
    c.execute_cached(
        "DELETE FROM revoked_tokens WHERE expires_at < ?1",
        [now_ms()],
    )?;
    Ok(())
}

pub fn is_token_revoked(c: &Connection, jti: &str) -> Result<bool> {
    Ok(
        c.query_row_cached("SELECT 1 FROM revoked_tokens WHERE jti = ?1", [jti], |_| {
            Ok(())
        })
        .optional()?
        .is_some(),
    )
}

pub fn revoked_tokens(c: &Connection) -> Result<Vec<String>> {
    let mut stmt = c.prepare("SELECT jti FROM revoked_tokens WHERE expires_at >= ?1")?;
    let rows = stmt.query_map([now_ms()], |r| r.get(0))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}
