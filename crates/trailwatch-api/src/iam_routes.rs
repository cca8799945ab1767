//! IAM routes: tokens (Keystone-style, as OTC IAM), projects, users and AK/SK credentials.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use trailwatch_iam::token::{self, TokenClaims};
use trailwatch_iam::{ids, password};
use trailwatch_store::{StoreError, iam as iam_db, now_ms};

use crate::AppState;
use crate::auth::{AuthMethod, Caller, fmt_ms, internal_iam, truncate};
use crate::error::ApiError;

/// Password hashes verified or computed at once (each argon2 run holds ~19 MiB).
static ARGON2_PERMITS: tokio::sync::Semaphore = tokio::sync::Semaphore::const_new(4);

fn bad_request(msg: impl Into<String>) -> ApiError {
    ApiError::iam(StatusCode::BAD_REQUEST, msg)
}

fn unauthorized(msg: impl Into<String>) -> ApiError {
    ApiError::iam(StatusCode::UNAUTHORIZED, msg)
}

fn forbidden(msg: impl Into<String>) -> ApiError {
    ApiError::iam(StatusCode::FORBIDDEN, msg)
}

fn store_err(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(msg) => ApiError::iam(StatusCode::CONFLICT, msg),
        StoreError::NotFound(msg) => ApiError::iam(StatusCode::NOT_FOUND, msg),
        other => internal_iam(&other),
    }
}

fn parse_body(body: &Bytes) -> Result<Value, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad_request("The request body is empty"));
    }
    serde_json::from_slice(body)
        .map_err(|e| bad_request(format!("The request body is not valid JSON: {e}")))
}

/// A string member at a JSON pointer, or a precise error naming it.
fn str_at<'a>(v: &'a Value, pointer: &str) -> Result<&'a str, ApiError> {
    match v.pointer(pointer) {
        Some(Value::String(s)) if !s.is_empty() => Ok(s),
        Some(Value::String(_)) => Err(bad_request(format!("`{pointer}` must not be empty"))),
        Some(_) => Err(bad_request(format!("`{pointer}` must be a string"))),
        None => Err(bad_request(format!("`{pointer}` is required"))),
    }
}

fn opt_str_at<'a>(v: &'a Value, pointer: &str) -> Result<Option<&'a str>, ApiError> {
    match v.pointer(pointer) {
        None | Some(Value::Null) => Ok(None),
        Some(_) => str_at(v, pointer).map(Some),
    }
}

/// Names of domains, projects and users: 1–64 characters, letters, digits, `-`, `_`, `.`.
fn check_name(what: &str, name: &str) -> Result<(), ApiError> {
    let ok = !name.is_empty()
        && name.len() <= 64
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'));
    if ok {
        Ok(())
    } else {
        Err(bad_request(format!(
            "{what} name `{}` is invalid: use 1–64 letters, digits, `-`, `_` or `.`",
            truncate(name, 64)
        )))
    }
}

/// `POST /v3/auth/tokens` with the `password` method.
pub async fn issue_token(State(app): State<AppState>, body: Bytes) -> Result<Response, ApiError> {
    let req = parse_body(&body)?;
    let methods = req
        .pointer("/auth/identity/methods")
        .and_then(Value::as_array)
        .ok_or_else(|| bad_request("`/auth/identity/methods` is required and must be an array"))?;
    if !methods.iter().any(|m| m == "password") {
        return Err(bad_request(
            "only the `password` identity method is supported; AK/SK callers sign each request instead",
        ));
    }
    let user_name = opt_str_at(&req, "/auth/identity/password/user/name")?;
    let user_id = opt_str_at(&req, "/auth/identity/password/user/id")?;
    let password = str_at(&req, "/auth/identity/password/user/password")?.to_owned();
    let domain_name = opt_str_at(&req, "/auth/identity/password/user/domain/name")?;
    let domain_id = opt_str_at(&req, "/auth/identity/password/user/domain/id")?;
    if user_name.is_none() && user_id.is_none() {
        return Err(bad_request(
            "`/auth/identity/password/user` needs `name` (with `domain`) or `id`",
        ));
    }
    if user_name.is_some() && domain_name.is_none() && domain_id.is_none() {
        return Err(bad_request(
            "`/auth/identity/password/user/domain` with `name` or `id` is required with a user name",
        ));
    }
    let scope_project_id = opt_str_at(&req, "/auth/scope/project/id")?.map(str::to_owned);
    let scope_project_name = opt_str_at(&req, "/auth/scope/project/name")?.map(str::to_owned);

    let (user_name, user_id) = (user_name.map(str::to_owned), user_id.map(str::to_owned));
    let (domain_name, domain_id) = (domain_name.map(str::to_owned), domain_id.map(str::to_owned));
    let found = app
        .store
        .read(move |c| {
            let domain = match (&domain_id, &domain_name) {
                (Some(id), _) => iam_db::domain_by_id(c, id)?,
                (None, Some(name)) => iam_db::domain_by_name(c, name)?,
                (None, None) => None,
            };
            let user = match (&user_id, &user_name, &domain) {
                (Some(id), _, _) => iam_db::user_by_id(c, id)?,
                (None, Some(name), Some(d)) => iam_db::user_by_name(c, &d.id, name)?,
                _ => None,
            };
            let domain = match (&user, domain) {
                (Some(u), None) => iam_db::domain_by_id(c, &u.domain_id)?,
                (_, d) => d,
            };
            Ok((user, domain))
        })
        .await
        .map_err(store_err)?;

    let now = now_ms();
    let (Some(user), Some(domain)) = found else {
        return Err(unauthorized("The username or password is wrong."));
    };
    if user.domain_id != domain.id {
        return Err(unauthorized("The username or password is wrong."));
    }
    let lock_key = format!("user:{}", user.id);
    if app.iam.lockout.check(&lock_key, now).is_err() {
        return Err(unauthorized(
            "The account is locked after too many failed logins; try again in 5 minutes.",
        ));
    }
    let hash = user.password_hash.clone().unwrap_or_default();
    // argon2 takes tens of milliseconds and ~19 MiB on purpose: keep it off the async workers,
    // and bound how many run at once so that a flood of logins cannot exhaust memory.
    let ok = {
        let _permit = ARGON2_PERMITS.acquire().await;
        tokio::task::spawn_blocking(move || password::verify_password(&password, &hash))
            .await
            .unwrap_or(false)
    };
    if !ok || !user.enabled {
        app.iam.lockout.record_failure(&lock_key, now);
        return Err(unauthorized("The username or password is wrong."));
    }
    app.iam.lockout.record_success(&lock_key);

    let project = match (scope_project_id, scope_project_name) {
        (None, None) => None,
        (id, name) => {
            let did = domain.id.clone();
            let project = app
                .store
                .read(move |c| match (id, name) {
                    (Some(id), _) => iam_db::project_by_id(c, &id),
                    (None, Some(name)) => iam_db::project_by_name(c, &did, &name),
                    (None, None) => Ok(None),
                })
                .await
                .map_err(store_err)?;
            match project {
                Some(p) if p.domain_id == domain.id => Some(p),
                _ => {
                    return Err(unauthorized(
                        "The requested project does not exist or is not in the user's domain.",
                    ));
                }
            }
        }
    };
    let claims = TokenClaims {
        jti: ids::new_id32(),
        user_id: user.id.clone(),
        user_name: user.name.clone(),
        domain_id: domain.id.clone(),
        domain_name: domain.name.clone(),
        project_id: project.as_ref().map(|p| p.id.clone()),
        project_name: project.as_ref().map(|p| p.name.clone()),
        methods: vec!["password".into()],
        issued_at: now,
        expires_at: now + app.iam.token_ttl_ms,
        agency: None,
    };
    let token = token::issue(&app.iam.token_key, &claims);
    let body = token_body(&app, &claims);
    let mut response = (StatusCode::CREATED, Json(body)).into_response();
    let value = HeaderValue::from_str(&token)
        .map_err(|_| ApiError::iam(StatusCode::INTERNAL_SERVER_ERROR, "token encoding failed"))?;
    response.headers_mut().insert("x-subject-token", value);
    Ok(response)
}

/// The §7.1 token body.
fn token_body(app: &AppState, c: &TokenClaims) -> Value {
    let base = app.config.public_url.trim_end_matches('/');
    let mut token = json!({
        "methods": c.methods,
        "expires_at": fmt_ms(c.expires_at),
        "issued_at": fmt_ms(c.issued_at),
        "user": {
            "domain": {"id": c.domain_id, "name": c.domain_name},
            "id": c.user_id,
            "name": c.user_name,
        },
        "catalog": [
            {"type": "identity", "id": "iam", "name": "iam",
             "endpoints": [{"url": format!("{base}/v3"), "region": "*", "region_id": "*", "interface": "public", "id": "iam-public"}]},
            {"type": "cts", "id": "cts", "name": "cts",
             "endpoints": [{"url": format!("{base}/v3/$(tenant_id)s"), "region": app.config.region, "region_id": app.config.region, "interface": "public", "id": "cts-public"}]},
        ],
        "roles": [],
    });
    if let (Some(id), Some(name)) = (&c.project_id, &c.project_name) {
        token["project"] =
            json!({"domain": {"id": c.domain_id, "name": c.domain_name}, "id": id, "name": name});
    } else {
        token["domain"] = json!({"id": c.domain_id, "name": c.domain_name});
    }
    json!({"token": token})
}

fn subject_token(app: &AppState, headers: &HeaderMap) -> Result<TokenClaims, ApiError> {
    let value = headers
        .get("x-subject-token")
        .and_then(|v| v.to_str().ok())
        .ok_or_else(|| bad_request("the `X-Subject-Token` header is required"))?;
    app.iam.verify_token(value, now_ms()).map_err(|_| {
        ApiError::iam(
            StatusCode::NOT_FOUND,
            "The subject token is invalid, expired or revoked.",
        )
    })
}

/// `GET /v3/auth/tokens`: verify the `X-Subject-Token` and describe it.
pub async fn verify_token(
    State(app): State<AppState>,
    _caller: Caller,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let claims = subject_token(&app, &headers)?;
    Ok(Json(token_body(&app, &claims)).into_response())
}

/// `HEAD /v3/auth/tokens`: 200 when the subject token is valid.
pub async fn check_token(
    State(app): State<AppState>,
    _caller: Caller,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    subject_token(&app, &headers).map(|_| StatusCode::OK)
}

/// `DELETE /v3/auth/tokens`: revoke the `X-Subject-Token`. A user may revoke their own tokens;
/// an administrator any token of their domain.
pub async fn revoke_token(
    State(app): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
) -> Result<StatusCode, ApiError> {
    let claims = subject_token(&app, &headers)?;
    let allowed = claims.user_id == caller.user_id
        || (claims.domain_id == caller.domain_id && is_admin(&app, &caller).await?);
    if !allowed {
        return Err(forbidden("You may revoke only your own tokens."));
    }
    app.iam.revoke(&claims).await?;
    Ok(StatusCode::NO_CONTENT)
}

async fn is_admin(app: &AppState, caller: &Caller) -> Result<bool, ApiError> {
    let uid = caller.user_id.clone();
    let user = app
        .store
        .read(move |c| iam_db::user_by_id(c, &uid))
        .await
        .map_err(store_err)?;
    Ok(user.is_some_and(|u| u.is_admin && u.enabled))
}

async fn require_admin(app: &AppState, caller: &Caller) -> Result<(), ApiError> {
    if is_admin(app, caller).await? {
        Ok(())
    } else {
        Err(forbidden("This operation needs a domain administrator."))
    }
}

fn project_json(p: &iam_db::Project) -> Value {
    json!({
        "id": p.id, "name": p.name, "domain_id": p.domain_id, "parent_id": p.domain_id,
        "enabled": true, "is_domain": false, "description": "",
    })
}

/// `GET /v3/auth/projects`: the projects the caller can act in.
pub async fn my_projects(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    let did = caller.domain_id.clone();
    let mut projects = app
        .store
        .read(move |c| iam_db::projects_of_domain(c, &did))
        .await
        .map_err(store_err)?;
    match &caller.method {
        AuthMethod::Token {
            project_id: Some(p),
            ..
        }
        | AuthMethod::AkSk {
            project_id: Some(p),
            ..
        } => projects.retain(|x| &x.id == p),
        _ => {}
    }
    let list: Vec<Value> = projects.iter().map(project_json).collect();
    Ok(Json(
        json!({"projects": list, "links": {"self": format!("{}/v3/auth/projects", app.config.public_url.trim_end_matches('/'))}}),
    ))
}

/// `GET /v3/projects[?name=]` (administrators): the projects of the caller's domain.
pub async fn list_projects(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    require_admin(&app, &caller).await?;
    let name = crate::cts::parse_query(q.as_deref().unwrap_or(""))
        .map_err(|_| bad_request("invalid query string"))?
        .get("name")
        .and_then(Value::as_str)
        .map(str::to_owned);
    let did = caller.domain_id.clone();
    let mut projects = app
        .store
        .read(move |c| iam_db::projects_of_domain(c, &did))
        .await
        .map_err(store_err)?;
    if let Some(name) = name {
        projects.retain(|p| p.name == name);
    }
    let list: Vec<Value> = projects.iter().map(project_json).collect();
    Ok(Json(json!({"projects": list})))
}

/// `POST /v3/projects` (administrators): `{"project":{"name":…}}` in the caller's domain.
pub async fn create_project(
    State(app): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&app, &caller).await?;
    let req = parse_body(&body)?;
    let name = str_at(&req, "/project/name")?.to_owned();
    check_name("project", &name)?;
    if let Some(d) = opt_str_at(&req, "/project/domain_id")?
        && d != caller.domain_id
    {
        return Err(forbidden(
            "Projects can be created only in your own domain.",
        ));
    }
    let did = caller.domain_id.clone();
    let project = app
        .store
        .write(move |tx| iam_db::create_project(tx, &ids::new_id32(), &did, &name))
        .await
        .map_err(store_err)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"project": project_json(&project)})),
    )
        .into_response())
}

fn user_json(u: &iam_db::User) -> Value {
    json!({
        "id": u.id, "name": u.name, "domain_id": u.domain_id, "enabled": u.enabled,
        "is_domain_admin": u.is_admin, "create_time": fmt_ms(u.created_at),
    })
}

/// `GET /v3/users` (administrators).
pub async fn list_users(
    State(app): State<AppState>,
    caller: Caller,
) -> Result<Json<Value>, ApiError> {
    require_admin(&app, &caller).await?;
    let did = caller.domain_id.clone();
    let users = app
        .store
        .read(move |c| iam_db::users_of_domain(c, &did))
        .await
        .map_err(store_err)?;
    let list: Vec<Value> = users.iter().map(user_json).collect();
    Ok(Json(json!({"users": list})))
}

/// `POST /v3/users` (administrators): `{"user":{"name","password","is_domain_admin"?}}`.
pub async fn create_user(
    State(app): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&app, &caller).await?;
    let req = parse_body(&body)?;
    let name = str_at(&req, "/user/name")?.to_owned();
    check_name("user", &name)?;
    let pw = str_at(&req, "/user/password")?.to_owned();
    password::check_password_policy(&pw).map_err(|e| bad_request(e.to_string()))?;
    if let Some(d) = opt_str_at(&req, "/user/domain_id")?
        && d != caller.domain_id
    {
        return Err(forbidden("Users can be created only in your own domain."));
    }
    let is_admin = match req.pointer("/user/is_domain_admin") {
        None | Some(Value::Null) => false,
        Some(Value::Bool(b)) => *b,
        Some(_) => return Err(bad_request("`/user/is_domain_admin` must be a boolean")),
    };
    let hash = tokio::task::spawn_blocking(move || password::hash_password(&pw))
        .await
        .map_err(|_| ApiError::iam(StatusCode::INTERNAL_SERVER_ERROR, "password hashing failed"))?
        .map_err(|e| bad_request(e.to_string()))?;
    let did = caller.domain_id.clone();
    let user = app
        .store
        .write(move |tx| {
            iam_db::create_user(
                tx,
                iam_db::NewUser {
                    id: &ids::new_id32(),
                    domain_id: &did,
                    name: &name,
                    password_hash: Some(&hash),
                    is_admin,
                },
            )
        })
        .await
        .map_err(store_err)?;
    Ok((StatusCode::CREATED, Json(json!({"user": user_json(&user)}))).into_response())
}

fn credential_json(c: &iam_db::Credential) -> Value {
    json!({
        "user_id": c.user_id, "access": c.access, "status": c.status,
        "create_time": fmt_ms(c.created_at), "description": c.description,
    })
}

/// Resolves the user a credential call is about: the caller, or (administrators) a user of
/// their domain.
async fn target_user(
    app: &AppState,
    caller: &Caller,
    user_id: Option<&str>,
) -> Result<String, ApiError> {
    match user_id {
        None => Ok(caller.user_id.clone()),
        Some(id) if id == caller.user_id => Ok(id.to_owned()),
        Some(id) => {
            require_admin(app, caller).await?;
            let uid = id.to_owned();
            let user = app
                .store
                .read(move |c| iam_db::user_by_id(c, &uid))
                .await
                .map_err(store_err)?;
            match user {
                Some(u) if u.domain_id == caller.domain_id => Ok(u.id),
                _ => Err(ApiError::iam(
                    StatusCode::NOT_FOUND,
                    format!("user `{}` does not exist in your domain", truncate(id, 64)),
                )),
            }
        }
    }
}

/// `POST /v3.0/OS-CREDENTIAL/credentials`: `{"credential":{"user_id","description"?}}`.
/// The secret key is returned once, here, and never again.
pub async fn create_credential(
    State(app): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = parse_body(&body)?;
    let user_id = opt_str_at(&req, "/credential/user_id")?;
    let description = opt_str_at(&req, "/credential/description")?
        .unwrap_or("")
        .to_owned();
    if description.chars().count() > 255 {
        return Err(bad_request(
            "`/credential/description` is longer than 255 characters",
        ));
    }
    let uid = target_user(&app, &caller, user_id).await?;
    let access = ids::new_access_key();
    let secret = ids::new_secret_key();
    let sealed = app.iam.seal_key.seal(secret.as_bytes(), access.as_bytes());
    let cred = app
        .store
        .write({
            let access = access.clone();
            move |tx| iam_db::create_credential(tx, &access, &uid, &sealed, &description)
        })
        .await
        .map_err(store_err)?;
    let mut body = credential_json(&cred);
    body["secret"] = Value::String(secret);
    Ok((StatusCode::CREATED, Json(json!({"credential": body}))).into_response())
}

/// `GET /v3.0/OS-CREDENTIAL/credentials[?user_id=]`.
pub async fn list_credentials(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let params = crate::cts::parse_query(q.as_deref().unwrap_or(""))
        .map_err(|_| bad_request("invalid query string"))?;
    let user_id = params.get("user_id").and_then(Value::as_str);
    let uid = target_user(&app, &caller, user_id).await?;
    let creds = app
        .store
        .read(move |c| iam_db::credentials_of_user(c, &uid))
        .await
        .map_err(store_err)?;
    let list: Vec<Value> = creds.iter().map(credential_json).collect();
    Ok(Json(json!({"credentials": list})))
}

/// `DELETE /v3.0/OS-CREDENTIAL/credentials/{access_key}`.
pub async fn delete_credential(
    State(app): State<AppState>,
    caller: Caller,
    Path(access): Path<String>,
) -> Result<StatusCode, ApiError> {
    let ak = access.clone();
    let cred = app
        .store
        .read(move |c| iam_db::credential(c, &ak))
        .await
        .map_err(store_err)?;
    let Some(cred) = cred else {
        return Err(ApiError::iam(
            StatusCode::NOT_FOUND,
            format!("access key `{}` does not exist", truncate(&access, 64)),
        ));
    };
    target_user(&app, &caller, Some(&cred.user_id)).await?;
    app.store
        .write(move |tx| iam_db::delete_credential(tx, &access))
        .await
        .map_err(store_err)?;
    Ok(StatusCode::NO_CONTENT)
}
