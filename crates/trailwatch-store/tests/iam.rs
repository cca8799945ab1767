//! The IAM metadata functions, run through `Store::write` / `Store::read`.
#![allow(clippy::unwrap_used)]

mod common;

use common::open;
use trailwatch_store::iam::{self, NewUser};
use trailwatch_store::{Store, StoreError, now_ms};

const HASH: &str = "$argon2id$v=19$m=19456,t=2,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2g";
const SEALED: &str = "sealed-v1:AAAAsecretSECRETsecret==";

async fn setup(store: &Store) {
    store
        .write(|tx| {
            iam::create_domain(tx, "d1", "acme")?;
            iam::create_domain(tx, "d2", "globex")?;
            iam::create_project(tx, "p1", "d1", "eu-de")?;
            iam::create_project(tx, "p2", "d1", "eu-nl")?;
            iam::create_project(tx, "p3", "d2", "eu-de")?;
            iam::create_user(
                tx,
                NewUser {
                    id: "u1",
                    domain_id: "d1",
                    name: "alice",
                    password_hash: Some(HASH),
                    is_admin: true,
                },
            )?;
            iam::create_user(
                tx,
                NewUser {
                    id: "u2",
                    domain_id: "d1",
                    name: "bob",
                    password_hash: None,
                    is_admin: false,
                },
            )?;
            iam::create_credential(tx, "AK1", "u1", SEALED, "ci key")?;
            Ok(())
        })
        .await
        .unwrap();
}

#[tokio::test]
async fn create_and_look_up() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    setup(&store).await;

    let (d, dn, missing) = store
        .read(|c| {
            Ok((
                iam::domain_by_id(c, "d1")?,
                iam::domain_by_name(c, "globex")?,
                iam::domain_by_name(c, "nope")?,
            ))
        })
        .await
        .unwrap();
    assert_eq!(d.unwrap().name, "acme");
    assert_eq!(dn.unwrap().id, "d2");
    assert!(missing.is_none());

    let (p, pn, same_name_other_domain, listed) = store
        .read(|c| {
            Ok((
                iam::project_by_id(c, "p2")?,
                iam::project_by_name(c, "d1", "eu-de")?,
                iam::project_by_name(c, "d2", "eu-de")?,
                iam::projects_of_domain(c, "d1")?,
            ))
        })
        .await
        .unwrap();
    let p = p.unwrap();
    assert_eq!((p.name.as_str(), p.domain_id.as_str()), ("eu-nl", "d1"));
    assert_eq!(pn.unwrap().id, "p1");
    assert_eq!(same_name_other_domain.unwrap().id, "p3");
    let names: Vec<&str> = listed.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(names, ["eu-de", "eu-nl"]);

    let (u, un, users, count, wrong_domain) = store
        .read(|c| {
            Ok((
                iam::user_by_id(c, "u1")?,
                iam::user_by_name(c, "d1", "bob")?,
                iam::users_of_domain(c, "d1")?,
                iam::count_users(c)?,
                iam::user_by_name(c, "d2", "alice")?,
            ))
        })
        .await
        .unwrap();
    let u = u.unwrap();
    assert_eq!(u.name, "alice");
    assert_eq!(u.password_hash.as_deref(), Some(HASH));
    assert!(u.is_admin && u.enabled);
    let bob = un.unwrap();
    assert_eq!(bob.id, "u2");
    assert!(bob.password_hash.is_none() && !bob.is_admin);
    assert_eq!(
        users.iter().map(|u| u.name.as_str()).collect::<Vec<_>>(),
        ["alice", "bob"]
    );
    assert_eq!(count, 2);
    assert!(wrong_domain.is_none());

    let (cred, creds) = store
        .read(|c| {
            Ok((
                iam::credential(c, "AK1")?,
                iam::credentials_of_user(c, "u1")?,
            ))
        })
        .await
        .unwrap();
    let cred = cred.unwrap();
    assert_eq!(cred.user_id, "u1");
    assert_eq!(cred.secret_sealed, SEALED);
    assert_eq!(cred.status, "active");
    assert_eq!(cred.description, "ci key");
    assert_eq!(creds, vec![cred]);
}

#[tokio::test]
async fn duplicates_are_conflicts() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    setup(&store).await;

    let attempts: Vec<(&str, Result<(), StoreError>)> = vec![
        (
            "domain name",
            store
                .write(|tx| iam::create_domain(tx, "d9", "acme").map(drop))
                .await,
        ),
        (
            "domain id",
            store
                .write(|tx| iam::create_domain(tx, "d1", "other").map(drop))
                .await,
        ),
        (
            "project name in domain",
            store
                .write(|tx| iam::create_project(tx, "p9", "d1", "eu-nl").map(drop))
                .await,
        ),
        (
            "user name in domain",
            store
                .write(|tx| {
                    iam::create_user(
                        tx,
                        NewUser {
                            id: "u9",
                            domain_id: "d1",
                            name: "alice",
                            password_hash: None,
                            is_admin: false,
                        },
                    )
                    .map(drop)
                })
                .await,
        ),
        (
            "access key",
            store
                .write(|tx| iam::create_credential(tx, "AK1", "u2", "x", "").map(drop))
                .await,
        ),
    ];
    for (what, r) in attempts {
        assert!(matches!(r, Err(StoreError::Conflict(_))), "{what}: {r:?}");
    }

    // Same user name in another domain is fine.
    store
        .write(|tx| {
            iam::create_user(
                tx,
                NewUser {
                    id: "u3",
                    domain_id: "d2",
                    name: "alice",
                    password_hash: None,
                    is_admin: false,
                },
            )
        })
        .await
        .unwrap();

    // Referential integrity: no project in a missing domain, no key for a missing user.
    let orphan = store
        .write(|tx| iam::create_project(tx, "p8", "no-such-domain", "x"))
        .await;
    assert!(orphan.is_err(), "{orphan:?}");
    let orphan = store
        .write(|tx| iam::create_credential(tx, "AK8", "no-such-user", "x", ""))
        .await;
    assert!(orphan.is_err(), "{orphan:?}");

    // A failed write leaves nothing behind, even what it created before failing.
    let r = store
        .write(|tx| {
            iam::create_domain(tx, "d7", "initech")?;
            iam::create_domain(tx, "d8", "initech")?;
            Ok(())
        })
        .await;
    assert!(matches!(r, Err(StoreError::Conflict(_))));
    let gone = store.read(|c| iam::domain_by_id(c, "d7")).await.unwrap();
    assert!(gone.is_none(), "half of a failed write was committed");
    assert_eq!(store.read(iam::count_users).await.unwrap(), 3);
}

#[tokio::test]
async fn delete_credential() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    setup(&store).await;
    store
        .write(|tx| iam::create_credential(tx, "AK2", "u1", "s2", "second"))
        .await
        .unwrap();
    let both = store
        .read(|c| iam::credentials_of_user(c, "u1"))
        .await
        .unwrap();
    assert_eq!(both.len(), 2);
    assert!(
        store
            .write(|tx| iam::delete_credential(tx, "AK1"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .write(|tx| iam::delete_credential(tx, "AK1"))
            .await
            .unwrap()
    );
    assert!(
        !store
            .write(|tx| iam::delete_credential(tx, "nope"))
            .await
            .unwrap()
    );
    let (gone, left) = store
        .read(|c| {
            Ok((
                iam::credential(c, "AK1")?,
                iam::credentials_of_user(c, "u1")?,
            ))
        })
        .await
        .unwrap();
    assert!(gone.is_none());
    assert_eq!(
        left.iter().map(|c| c.access.as_str()).collect::<Vec<_>>(),
        ["AK2"]
    );
    // The access key can be reused after deletion.
    store
        .write(|tx| iam::create_credential(tx, "AK1", "u2", "s3", ""))
        .await
        .unwrap();
}

#[tokio::test]
async fn revoked_tokens() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let future = now_ms() + 3_600_000;
    assert!(
        !store
            .read(|c| iam::is_token_revoked(c, "j1"))
            .await
            .unwrap()
    );
    store
        .write(move |tx| {
            iam::revoke_token(tx, "j1", future)?;
            iam::revoke_token(tx, "j2", future)?;
            // Revoking twice is fine.
            iam::revoke_token(tx, "j1", future)
        })
        .await
        .unwrap();
    let (r1, r2, r3, mut list) = store
        .read(|c| {
            Ok((
                iam::is_token_revoked(c, "j1")?,
                iam::is_token_revoked(c, "j2")?,
                iam::is_token_revoked(c, "j3")?,
                iam::revoked_tokens(c)?,
            ))
        })
        .await
        .unwrap();
    assert!(r1 && r2 && !r3);
    list.sort();
    assert_eq!(list, ["j1", "j2"]);

    // A token that has expired anyway is not listed (and is purged).
    store
        .write(|tx| iam::revoke_token(tx, "old", now_ms() - 1_000))
        .await
        .unwrap();
    let (old, mut list) = store
        .read(|c| Ok((iam::is_token_revoked(c, "old")?, iam::revoked_tokens(c)?)))
        .await
        .unwrap();
    assert!(!old);
    list.sort();
    assert_eq!(list, ["j1", "j2"]);

    // Revocations survive a restart.
    drop(store);
    let store = open(dir.path());
    assert!(
        store
            .read(|c| iam::is_token_revoked(c, "j2"))
            .await
            .unwrap()
    );
}

#[tokio::test]
async fn debug_output_hides_secrets() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    setup(&store).await;
    let (user, cred) = store
        .read(|c| Ok((iam::user_by_id(c, "u1")?, iam::credential(c, "AK1")?)))
        .await
        .unwrap();
    let (user, cred) = (user.unwrap(), cred.unwrap());
    for shown in [
        format!("{user:?}"),
        format!("{user:#?}"),
        format!("{:?}", Some(&user)),
    ] {
        assert!(!shown.contains(HASH), "{shown}");
        assert!(!shown.contains("argon2"), "{shown}");
        assert!(!shown.contains("aGFzaGhhc2g"), "{shown}");
        assert!(shown.contains("alice"), "{shown}");
    }
    for shown in [
        format!("{cred:?}"),
        format!("{cred:#?}"),
        format!("{:?}", vec![&cred]),
    ] {
        assert!(!shown.contains(SEALED), "{shown}");
        assert!(!shown.contains("secret"), "{shown}");
        assert!(shown.contains("AK1"), "{shown}");
    }
    // Also what create_* returns.
    let created = store
        .write(|tx| {
            let u = iam::create_user(
                tx,
                NewUser {
                    id: "u5",
                    domain_id: "d1",
                    name: "eve",
                    password_hash: Some(HASH),
                    is_admin: false,
                },
            )?;
            let c = iam::create_credential(tx, "AK5", "u5", SEALED, "")?;
            Ok(format!("{u:?} {c:?}"))
        })
        .await
        .unwrap();
    assert!(
        !created.contains(HASH) && !created.contains(SEALED),
        "{created}"
    );
}

/// `User` and `Credential` keep the password hash out of `Debug`, but the `NewUser` argument
/// of `create_user` derives `Debug` and prints it.
#[test]
fn new_user_debug_hides_the_password_hash() {
    let u = NewUser {
        id: "u1",
        domain_id: "d1",
        name: "alice",
        password_hash: Some(HASH),
        is_admin: false,
    };
    let shown = format!("{u:?}");
    assert!(!shown.contains(HASH), "{shown}");
}

/// A project in a domain that does not exist fails (foreign key), but is reported as
/// `Conflict("project ... already exists in this domain")`, which an API would turn into a 409
/// with a false message. Same for a credential of a missing user.
#[tokio::test]
async fn missing_parent_is_not_reported_as_already_exists() {
    let dir = tempfile::tempdir().unwrap();
    let store = open(dir.path());
    let project = store
        .write(|tx| iam::create_project(tx, "p8", "no-such-domain", "x"))
        .await;
    assert!(
        project.is_err() && !matches!(project, Err(StoreError::Conflict(_))),
        "{project:?}"
    );
    let cred = store
        .write(|tx| iam::create_credential(tx, "AK8", "no-such-user", "x", ""))
        .await;
    assert!(
        cred.is_err() && !matches!(cred, Err(StoreError::Conflict(_))),
        "{cred:?}"
    );
}
