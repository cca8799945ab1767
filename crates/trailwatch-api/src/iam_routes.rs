//! IAM routes: tokens (Keystone-style, as OTC IAM), projects, users and AK/SK credentials,
//! built-in roles, and agencies with their per-project role grants (`OS-AGENCY`).

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Path, RawQuery, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};
use trailwatch_iam::roles::{self, Role};
use trailwatch_iam::token::{self, TokenClaims};
use trailwatch_iam::{ids, password};
use trailwatch_store::{StoreError, agencies as agency_db, iam as iam_db, now_ms};

use crate::AppState;
use crate::auth::{AuthMethod, Caller, fmt_ms, internal_iam, truncate};
use crate::error::ApiError;

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
    // argon2 runs on its own thread, one at a time (passwords.rs).
    let ok = crate::passwords::run(move || password::verify_password(&password, &hash))
        .await
        .unwrap_or(false);
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
    let hash = crate::passwords::run(move || password::hash_password(&pw))
        .await
        .ok_or_else(|| ApiError::iam(StatusCode::INTERNAL_SERVER_ERROR, "password hashing failed"))?
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

// ---------------------------------------------------------------------------------------------
// Roles and agencies (OTC `GET /v3/roles`, `/v3.0/OS-AGENCY/…`). Administrators only.

fn not_found(msg: impl Into<String>) -> ApiError {
    ApiError::iam(StatusCode::NOT_FOUND, msg)
}

/// The query parameters of an IAM list call.
fn query_params(q: Option<&str>) -> Result<serde_json::Map<String, Value>, ApiError> {
    crate::cts::parse_query(q.unwrap_or("")).map_err(|_| bad_request("invalid query string"))
}

fn role_json(app: &AppState, r: &Role) -> Value {
    let base = app.config.public_url.trim_end_matches('/');
    json!({
        "id": r.id,
        "name": r.name,
        "display_name": r.display_name,
        "description": r.description,
        "catalog": r.catalog,
        "type": r.role_type.as_str(),
        "domain_id": null,
        "policy": r.policy(),
        "links": {"self": format!("{base}/v3/roles/{}", r.id)},
    })
}

fn known_role(role_id: &str) -> Result<&'static Role, ApiError> {
    roles::by_id(role_id)
        .ok_or_else(|| not_found(format!("role `{}` does not exist", truncate(role_id, 64))))
}

/// `GET /v3/roles[?name=][&display_name=][&catalog=]`: the built-in roles. `name` and `catalog`
/// match exactly, `display_name` as a substring (OTC: `Administrator` lists every
/// administrator role).
pub async fn list_roles(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    require_admin(&app, &caller).await?;
    let params = query_params(q.as_deref())?;
    let param = |k: &str| params.get(k).and_then(Value::as_str);
    let (name, display_name, catalog) = (param("name"), param("display_name"), param("catalog"));
    let list: Vec<Value> = roles::all()
        .iter()
        .filter(|r| name.is_none_or(|n| r.name == n))
        .filter(|r| display_name.is_none_or(|d| r.display_name.contains(d)))
        .filter(|r| catalog.is_none_or(|c| r.catalog == c))
        .map(|r| role_json(&app, r))
        .collect();
    let base = app.config.public_url.trim_end_matches('/');
    Ok(Json(json!({
        "roles": list,
        "links": {"self": format!("{base}/v3/roles"), "previous": null, "next": null},
        "total_number": list.len(),
    })))
}

/// `GET /v3/roles/{role_id}`.
pub async fn get_role(
    State(app): State<AppState>,
    caller: Caller,
    Path(role_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    require_admin(&app, &caller).await?;
    let role = known_role(&role_id)?;
    Ok(Json(json!({"role": role_json(&app, role)})))
}

fn agency_json(a: &agency_db::Agency) -> Value {
    json!({
        "id": a.id,
        "name": a.name,
        "domain_id": a.domain_id,
        "trust_domain_id": a.trust_domain_id,
        "trust_domain_name": a.trust_domain_name,
        "description": a.description,
        "duration": a.duration,
        "expire_time": a.expires_at.map(fmt_ms),
        "create_time": fmt_ms(a.created_at),
    })
}

/// How long a `ONEDAY` agency is valid.
const ONE_DAY_MS: i64 = 24 * 3600 * 1000;

/// `POST /v3.0/OS-AGENCY/agencies`: `{"agency":{"name","domain_id","trust_domain_id" |
/// "trust_domain_name","description"?,"duration"?}}`. The trusted party is another domain or the
/// function service (`op_svc_cff`); with both given, `trust_domain_name` wins (as OTC).
pub async fn create_agency(
    State(app): State<AppState>,
    caller: Caller,
    body: Bytes,
) -> Result<Response, ApiError> {
    require_admin(&app, &caller).await?;
    let req = parse_body(&body)?;
    match req.get("agency") {
        Some(Value::Object(_)) => {}
        Some(_) => return Err(bad_request("`/agency` must be an object")),
        None => return Err(bad_request("`/agency` is required")),
    }
    let name = str_at(&req, "/agency/name")?.to_owned();
    check_name("agency", &name)?;
    let domain_id = str_at(&req, "/agency/domain_id")?;
    if domain_id != caller.domain_id {
        return Err(forbidden(
            "Agencies can be created only in your own domain.",
        ));
    }
    let trust_name = opt_str_at(&req, "/agency/trust_domain_name")?.map(str::to_owned);
    let trust_id = opt_str_at(&req, "/agency/trust_domain_id")?.map(str::to_owned);
    let description = match req.pointer("/agency/description") {
        None | Some(Value::Null) => String::new(),
        Some(Value::String(s)) if s.chars().count() <= 255 => s.clone(),
        Some(Value::String(_)) => {
            return Err(bad_request(
                "`/agency/description` is longer than 255 characters",
            ));
        }
        Some(_) => return Err(bad_request("`/agency/description` must be a string")),
    };
    let duration = match req.pointer("/agency/duration") {
        None | Some(Value::Null) => "FOREVER",
        Some(Value::String(s)) if s == "FOREVER" => "FOREVER",
        Some(Value::String(s)) if s == "ONEDAY" => "ONEDAY",
        Some(Value::String(s)) => {
            return Err(bad_request(format!(
                "`/agency/duration` must be `FOREVER` or `ONEDAY`, not `{}`",
                truncate(s, 32)
            )));
        }
        Some(_) => return Err(bad_request("`/agency/duration` must be a string")),
    };

    // The trusted party. Domains are never renamed or deleted, so resolving it before the
    // write cannot go stale.
    let (trust_domain_id, trust_domain_name) = match (trust_name, trust_id) {
        (None, None) => {
            return Err(bad_request(
                "`/agency/trust_domain_id` or `/agency/trust_domain_name` is required",
            ));
        }
        (Some(n), _) if n == roles::FUNCTION_SERVICE_TRUST_NAME => (
            roles::FUNCTION_SERVICE_TRUST_ID.to_owned(),
            roles::FUNCTION_SERVICE_TRUST_NAME.to_owned(),
        ),
        (None, Some(i)) if i == roles::FUNCTION_SERVICE_TRUST_ID => (
            roles::FUNCTION_SERVICE_TRUST_ID.to_owned(),
            roles::FUNCTION_SERVICE_TRUST_NAME.to_owned(),
        ),
        (name, id) => {
            let shown = name.clone().or(id.clone()).unwrap_or_default();
            let domain = app
                .store
                .read(move |c| match (name, id) {
                    (Some(n), _) => iam_db::domain_by_name(c, &n),
                    (None, Some(i)) => iam_db::domain_by_id(c, &i),
                    (None, None) => Ok(None),
                })
                .await
                .map_err(store_err)?
                .ok_or_else(|| {
                    not_found(format!(
                        "the trust domain `{}` does not exist",
                        truncate(&shown, 64)
                    ))
                })?;
            if domain.id == caller.domain_id {
                return Err(bad_request(
                    "An agency cannot trust its own domain; trust another domain or `op_svc_cff` (the function service).",
                ));
            }
            (domain.id, domain.name)
        }
    };

    let did = caller.domain_id.clone();
    let created_at = now_ms();
    let expires_at = (duration == "ONEDAY").then_some(created_at + ONE_DAY_MS);
    let agency = app
        .store
        .write(move |tx| {
            agency_db::create_agency(
                tx,
                &agency_db::NewAgency {
                    id: &ids::new_id32(),
                    domain_id: &did,
                    name: &name,
                    trust_domain_id: &trust_domain_id,
                    trust_domain_name: &trust_domain_name,
                    description: &description,
                    duration,
                    expires_at,
                    created_at,
                },
            )
        })
        .await
        .map_err(store_err)?;
    Ok((
        StatusCode::CREATED,
        Json(json!({"agency": agency_json(&agency)})),
    )
        .into_response())
}

/// `GET /v3.0/OS-AGENCY/agencies[?domain_id=][&name=][&trust_domain_id=]`: the agencies of the
/// caller's domain, by name.
pub async fn list_agencies(
    State(app): State<AppState>,
    caller: Caller,
    RawQuery(q): RawQuery,
) -> Result<Json<Value>, ApiError> {
    require_admin(&app, &caller).await?;
    let params = query_params(q.as_deref())?;
    let param = |k: &str| params.get(k).and_then(Value::as_str);
    if let Some(d) = param("domain_id")
        && d != caller.domain_id
    {
        return Err(forbidden(
            "You may list only the agencies of your own domain.",
        ));
    }
    let did = caller.domain_id.clone();
    let mut agencies = app
        .store
        .read(move |c| agency_db::agencies_of_domain(c, &did))
        .await
        .map_err(store_err)?;
    if let Some(name) = param("name") {
        agencies.retain(|a| a.name == name);
    }
    if let Some(trust) = param("trust_domain_id") {
        agencies.retain(|a| a.trust_domain_id == trust);
    }
    let list: Vec<Value> = agencies.iter().map(agency_json).collect();
    Ok(Json(json!({"agencies": list})))
}

/// The agency with this id if it belongs to the caller's domain (administrators only). An
/// agency of another domain is answered like one that does not exist.
async fn own_agency(
    app: &AppState,
    caller: &Caller,
    agency_id: &str,
) -> Result<agency_db::Agency, ApiError> {
    require_admin(app, caller).await?;
    let id = agency_id.to_owned();
    let agency = app
        .store
        .read(move |c| agency_db::agency_by_id(c, &id))
        .await
        .map_err(store_err)?;
    match agency {
        Some(a) if a.domain_id == caller.domain_id => Ok(a),
        _ => Err(not_found(format!(
            "agency `{}` does not exist in your domain",
            truncate(agency_id, 64)
        ))),
    }
}

/// `GET /v3.0/OS-AGENCY/agencies/{agency_id}`.
pub async fn get_agency(
    State(app): State<AppState>,
    caller: Caller,
    Path(agency_id): Path<String>,
) -> Result<Json<Value>, ApiError> {
    let agency = own_agency(&app, &caller, &agency_id).await?;
    Ok(Json(json!({"agency": agency_json(&agency)})))
}

/// `DELETE /v3.0/OS-AGENCY/agencies/{agency_id}`: the agency and all its grants.
pub async fn delete_agency(
    State(app): State<AppState>,
    caller: Caller,
    Path(agency_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let agency = own_agency(&app, &caller, &agency_id).await?;
    let deleted = app
        .store
        .write(move |tx| agency_db::delete_agency(tx, &agency.id))
        .await
        .map_err(store_err)?;
    if !deleted {
        return Err(not_found(format!(
            "agency `{}` does not exist in your domain",
            truncate(&agency_id, 64)
        )));
    }
    Ok(StatusCode::NO_CONTENT)
}

/// Checks that the project and the agency of a grant path belong to the caller's domain
/// (administrators only); either of another domain is answered like one that does not exist.
async fn grant_target(
    app: &AppState,
    caller: &Caller,
    project_id: &str,
    agency_id: &str,
) -> Result<(), ApiError> {
    let agency = own_agency(app, caller, agency_id).await?;
    let pid = project_id.to_owned();
    let project = app
        .store
        .read(move |c| iam_db::project_by_id(c, &pid))
        .await
        .map_err(store_err)?;
    match project {
        Some(p) if p.domain_id == caller.domain_id && p.domain_id == agency.domain_id => Ok(()),
        _ => Err(not_found(format!(
            "project `{}` does not exist in your domain",
            truncate(project_id, 64)
        ))),
    }
}

/// `PUT /v3.0/OS-AGENCY/projects/{project_id}/agencies/{agency_id}/roles/{role_id}`: grant
/// (granting again is a no-op). 204.
pub async fn grant_agency_role(
    State(app): State<AppState>,
    caller: Caller,
    Path((project_id, agency_id, role_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    grant_target(&app, &caller, &project_id, &agency_id).await?;
    let role = known_role(&role_id)?;
    app.store
        .write(move |tx| agency_db::grant_role(tx, &agency_id, &project_id, role.id))
        .await
        .map_err(store_err)?;
    Ok(StatusCode::NO_CONTENT)
}

/// `GET /v3.0/OS-AGENCY/projects/{project_id}/agencies/{agency_id}/roles`: the roles granted
/// in this project, in catalogue order.
pub async fn list_agency_roles(
    State(app): State<AppState>,
    caller: Caller,
    Path((project_id, agency_id)): Path<(String, String)>,
) -> Result<Json<Value>, ApiError> {
    grant_target(&app, &caller, &project_id, &agency_id).await?;
    let ids = app
        .store
        .read(move |c| agency_db::granted_role_ids(c, &agency_id, &project_id))
        .await
        .map_err(store_err)?;
    let list: Vec<Value> = roles::all()
        .iter()
        .filter(|r| ids.iter().any(|id| id == r.id))
        .map(|r| role_json(&app, r))
        .collect();
    Ok(Json(json!({"roles": list})))
}

/// `DELETE …/roles/{role_id}`: revoke. 404 when it was not granted.
pub async fn revoke_agency_role(
    State(app): State<AppState>,
    caller: Caller,
    Path((project_id, agency_id, role_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    grant_target(&app, &caller, &project_id, &agency_id).await?;
    let role = known_role(&role_id)?;
    let (pid, aid) = (project_id.clone(), agency_id.clone());
    let revoked = app
        .store
        .write(move |tx| agency_db::revoke_role(tx, &aid, &pid, role.id))
        .await
        .map_err(store_err)?;
    if revoked {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_granted(role, &agency_id, &project_id))
    }
}

fn not_granted(role: &Role, agency_id: &str, project_id: &str) -> ApiError {
    not_found(format!(
        "role `{}` is not granted to agency `{}` in project `{}`",
        role.display_name,
        truncate(agency_id, 64),
        truncate(project_id, 64)
    ))
}

/// `HEAD …/roles/{role_id}`: 204 when granted in this project, 404 otherwise.
pub async fn check_agency_role(
    State(app): State<AppState>,
    caller: Caller,
    Path((project_id, agency_id, role_id)): Path<(String, String, String)>,
) -> Result<StatusCode, ApiError> {
    grant_target(&app, &caller, &project_id, &agency_id).await?;
    let role = known_role(&role_id)?;
    let (pid, aid) = (project_id.clone(), agency_id.clone());
    let granted = app
        .store
        .read(move |c| agency_db::is_granted(c, &aid, &pid, role.id))
        .await
        .map_err(store_err)?;
    if granted {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(not_granted(role, &agency_id, &project_id))
    }
}
