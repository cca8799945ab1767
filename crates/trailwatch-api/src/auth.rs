//! Authentication (IAM token or AK/SK signature) and project scoping for every protected route.
//!
//! The middleware buffers the body (an AK/SK signature covers its hash), authenticates, and puts
//! a [`Caller`] into the request extensions. Handlers of project routes take a [`ProjectScope`],
//! which fails with 403 unless the caller may act in the project named in the path.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, RwLock};

use axum::body::{Body, Bytes};
use axum::extract::{FromRequestParts, Request, State};
use axum::http::request::Parts;
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::sync::atomic::Ordering;
use trailwatch_iam::lockout::Lockout;
use trailwatch_iam::secret::SealKey;
use trailwatch_iam::signing::{self, SignableRequest};
use trailwatch_iam::temporary;
use trailwatch_iam::token::{self, TokenClaims, TokenKey};
use trailwatch_store::{Store, iam as iam_db};

use crate::AppState;
use crate::error::ApiError;

/// Consecutive failures that lock an AK or a user, and for how long.
pub const LOCKOUT_FAILURES: u32 = 5;
pub const LOCKOUT_MS: i64 = 5 * 60 * 1000;

/// How the caller proved who it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AuthMethod {
    /// An IAM token, scoped to one project (or to the domain when `project_id` is None).
    Token {
        project_id: Option<String>,
        jti: String,
    },
    /// An AK/SK signature: acts in every project of the user's domain, or only in the one named
    /// by a signed `X-Project-Id` header.
    AkSk {
        access_key: String,
        project_id: Option<String>,
    },
}

/// The authenticated caller of a request.
#[derive(Debug, Clone)]
pub struct Caller {
    pub user_id: String,
    pub user_name: String,
    pub domain_id: String,
    pub domain_name: String,
    pub method: AuthMethod,
}

/// The IAM side of the server: keys, lockouts, revocations and the project → domain cache.
#[derive(Debug)]
pub struct Iam {
    pub(crate) store: Store,
    pub(crate) token_key: TokenKey,
    pub(crate) seal_key: SealKey,
    pub(crate) token_ttl_ms: i64,
    pub(crate) lockout: Lockout,
    revoked: RwLock<HashSet<String>>,
    project_domains: RwLock<HashMap<String, String>>,
}

impl Iam {
    /// Builds the IAM service; loads the revoked-token list from the store.
    pub async fn new(
        store: Store,
        token_key: TokenKey,
        seal_key: SealKey,
        token_ttl_ms: i64,
    ) -> Result<Arc<Iam>, trailwatch_store::StoreError> {
        let revoked = store.read(iam_db::revoked_tokens).await?;
        Ok(Arc::new(Iam {
            store,
            token_key,
            seal_key,
            token_ttl_ms,
            lockout: Lockout::new(LOCKOUT_FAILURES, LOCKOUT_MS),
            revoked: RwLock::new(revoked.into_iter().collect()),
            project_domains: RwLock::new(HashMap::new()),
        }))
    }

    pub(crate) fn is_revoked(&self, jti: &str) -> bool {
        self.revoked.read().map(|s| s.contains(jti)).unwrap_or(true)
    }

    pub(crate) async fn revoke(&self, claims: &TokenClaims) -> Result<(), ApiError> {
        let jti = claims.jti.clone();
        let exp = claims.expires_at;
        self.store
            .write(move |tx| iam_db::revoke_token(tx, &jti, exp))
            .await
            .map_err(|e| internal_iam(&e))?;
        if let Ok(mut s) = self.revoked.write() {
            s.insert(claims.jti.clone());
        }
        Ok(())
    }

    /// The domain that owns a project, cached (projects never move between domains).
    pub(crate) async fn project_domain(
        &self,
        project_id: &str,
    ) -> Result<Option<String>, ApiError> {
        if let Some(d) = self
            .project_domains
            .read()
            .ok()
            .and_then(|m| m.get(project_id).cloned())
        {
            return Ok(Some(d));
        }
        let pid = project_id.to_owned();
        let project = self
            .store
            .read(move |c| iam_db::project_by_id(c, &pid))
            .await
            .map_err(|e| internal_gateway(&e))?;
        let Some(project) = project else {
            return Ok(None);
        };
        if let Ok(mut m) = self.project_domains.write() {
            m.insert(project.id.clone(), project.domain_id.clone());
        }
        Ok(Some(project.domain_id))
    }

    /// Verifies an `X-Auth-Token` value.
    pub(crate) fn verify_token(&self, value: &str, now_ms: i64) -> Result<TokenClaims, String> {
        let claims = token::verify(&self.token_key, value.trim(), now_ms).map_err(|e| match e {
            token::TokenError::Expired { expires_at } => {
                format!("token expires, expires_at: {}", fmt_ms(expires_at))
            }
            _ => "decrypt token fail".to_owned(),
        })?;
        if self.is_revoked(&claims.jti) {
            return Err("token has been revoked".to_owned());
        }
        Ok(claims)
    }
}

pub(crate) fn fmt_ms(ms: i64) -> String {
    chrono::DateTime::from_timestamp_millis(ms)
        .map(|t| t.format("%Y-%m-%dT%H:%M:%S%.6fZ").to_string())
        .unwrap_or_else(|| ms.to_string())
}

pub(crate) fn internal_gateway(e: &trailwatch_store::StoreError) -> ApiError {
    tracing::error!(error = %e, "store failure during authentication");
    ApiError::Gateway {
        status: axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        code: "APIGW.0101",
        msg: "Authentication could not be completed; try again".into(),
    }
}

pub(crate) fn internal_iam(e: &trailwatch_store::StoreError) -> ApiError {
    tracing::error!(error = %e, "store failure in IAM");
    ApiError::iam(
        axum::http::StatusCode::INTERNAL_SERVER_ERROR,
        "The IAM store failed; the request was not completed",
    )
}

/// Middleware: authenticate the request and attach its [`Caller`].
pub async fn authenticate(State(app): State<AppState>, request: Request, next: Next) -> Response {
    match authenticate_inner(&app, request).await {
        Ok(request) => next.run(request).await,
        Err(e) => {
            if e.status() == axum::http::StatusCode::UNAUTHORIZED {
                app.metrics.auth_failures.fetch_add(1, Ordering::Relaxed);
            }
            e.into_response()
        }
    }
}

async fn authenticate_inner(app: &AppState, request: Request) -> Result<Request, ApiError> {
    let (mut parts, body) = request.into_parts();
    let limit = app.config.max_body_bytes;
    let bytes = axum::body::to_bytes(body, limit)
        .await
        .map_err(|_| ApiError::body_too_large(limit))?;
    let now = chrono::Utc::now();
    let caller = if let Some(token) = parts.headers.get("x-auth-token") {
        let token = token
            .to_str()
            .map_err(|_| ApiError::unauthenticated("decrypt token fail"))?;
        let claims = app
            .iam
            .verify_token(token, now.timestamp_millis())
            .map_err(ApiError::unauthenticated)?;
        if let Some(agency) = &claims.agency {
            check_agency_call(app, &claims, agency, &parts).await?;
        }
        caller_from_claims(claims)
    } else if let Some(auth) = parts.headers.get("authorization") {
        let auth = auth.to_str().map_err(|_| {
            ApiError::unauthenticated("verify aksk signature fail, malformed Authorization header")
        })?;
        verify_signature(app, &parts, &bytes, auth, now).await?
    } else {
        return Err(ApiError::unauthenticated("x-auth-token not found"));
    };
    parts.extensions.insert(caller);
    Ok(Request::from_parts(parts, Body::from(bytes)))
}

/// The IAM action an agency token's call needs (`None`: agency tokens may not make it).
/// Agency tokens are what Python functions get from `context.getToken()`; they act with
/// exactly their agency's roles, so every route they may call is named here and anything else
/// (IAM above all) is refused.
pub(crate) fn agency_action(method: &axum::http::Method, path: &str) -> Option<&'static str> {
    use axum::http::Method;
    let seg: Vec<&str> = path.trim_start_matches('/').split('/').collect();
    let read = method == Method::GET || method == Method::HEAD;
    match seg.as_slice() {
        ["v2", _, "notifications", "topics", _, "publish"] if method == Method::POST => {
            Some("smn:topic:publish")
        }
        ["v2", _, "notifications", rest @ ..] => Some(match (read, rest.last()) {
            (true, Some(&"subscriptions")) => "smn:subscription:list",
            (true, _) => "smn:topic:list",
            (false, Some(&"subscriptions")) => "smn:subscription:create",
            (false, _) if method == Method::DELETE => "smn:topic:delete",
            (false, _) => "smn:topic:update",
        }),
        ["v3", _, "traces"] => Some(if read {
            "cts:trace:list"
        } else {
            "cts:trace:create"
        }),
        ["v1.0" | "v2.0", _, _, "trace"] if method == Method::POST => Some("cts:trace:create"),
        ["v3", _, "tracker" | "trackers", ..] => Some(if read {
            "cts:tracker:list"
        } else {
            "cts:tracker:update"
        }),
        ["v3", _, "notifications", ..] => Some(if read {
            "cts:notification:list"
        } else {
            "cts:notification:update"
        }),
        [
            "v2",
            _,
            "fgs",
            "functions",
            _,
            "invocations" | "invocations-async",
        ] if method == Method::POST => Some("functiongraph:function:invoke"),
        ["v2", _, "fgs", ..] => Some(if read {
            "functiongraph:function:list"
        } else {
            "functiongraph:function:update"
        }),
        ["v2", _, "groups", .., "content", "query"] => Some("lts:logs:list"),
        ["v2", _, "lts", ..] if method == Method::POST => Some("lts:logs:put"),
        ["v2", _, "groups", ..] => Some(if read {
            "lts:groups:list"
        } else {
            "lts:groups:create"
        }),
        _ => None,
    }
}

/// Refuses an agency token's call unless its agency grants the route's action in the token's
/// project (403, the action and agency named).
async fn check_agency_call(
    app: &AppState,
    claims: &TokenClaims,
    agency: &str,
    parts: &Parts,
) -> Result<(), ApiError> {
    let denied = |why: String| ApiError::Gateway {
        status: axum::http::StatusCode::FORBIDDEN,
        code: "APIGW.0302",
        msg: why,
    };
    let Some(action) = agency_action(&parts.method, parts.uri.path()) else {
        return Err(denied(format!(
            "a token of agency `{agency}` cannot call {} {}",
            parts.method,
            parts.uri.path()
        )));
    };
    let Some(project) = &claims.project_id else {
        return Err(denied("an agency token must be project-scoped".into()));
    };
    let rights =
        trailwatch_store::agencies::agency_rights(&app.store, &claims.domain_id, project, agency)
            .await
            .map_err(|e| internal_gateway(&e))?;
    if rights.allows(action) {
        Ok(())
    } else {
        Err(denied(format!(
            "agency `{agency}` grants no role with `{action}` in project {project}"
        )))
    }
}

fn caller_from_claims(c: TokenClaims) -> Caller {
    Caller {
        user_id: c.user_id,
        user_name: c.user_name,
        domain_id: c.domain_id,
        domain_name: c.domain_name,
        method: AuthMethod::Token {
            project_id: c.project_id,
            jti: c.jti,
        },
    }
}

async fn verify_signature(
    app: &AppState,
    parts: &Parts,
    body: &Bytes,
    authorization: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Caller, ApiError> {
    let parsed = signing::parse_authorization(authorization)
        .map_err(|e| ApiError::unauthenticated(format!("verify aksk signature fail, {e}")))?;
    let now_ms = now.timestamp_millis();
    let lock_key = format!("ak:{}", parsed.access_key);
    if app.iam.lockout.check(&lock_key, now_ms).is_err() {
        return Err(ApiError::unauthenticated(
            "AK access failed to reach the limit,forbidden",
        ));
    }
    if temporary::is_temporary_access_key(&parsed.access_key) {
        return verify_temporary(app, parts, body, &parsed, &lock_key, now).await;
    }
    let access = parsed.access_key.clone();
    let found = app
        .iam
        .store
        .read(move |c| {
            let Some(cred) = iam_db::credential(c, &access)? else {
                return Ok(None);
            };
            let user = iam_db::user_by_id(c, &cred.user_id)?;
            let domain = match &user {
                Some(u) => iam_db::domain_by_id(c, &u.domain_id)?,
                None => None,
            };
            Ok(Some((cred, user, domain)))
        })
        .await
        .map_err(|e| internal_gateway(&e))?;
    let Some((cred, Some(user), Some(domain))) = found else {
        return Err(ApiError::unauthenticated("Get secretKey failed"));
    };
    if cred.status != "active" || !user.enabled {
        return Err(ApiError::unauthenticated("Get secretKey failed"));
    }
    let secret = app
        .iam
        .seal_key
        .open(&cred.secret_sealed, cred.access.as_bytes())
        .map_err(|_| {
            tracing::error!(access_key = %cred.access, "stored secret key cannot be unsealed with this server's key");
            ApiError::unauthenticated("Get secretKey failed")
        })?;
    let secret =
        String::from_utf8(secret).map_err(|_| ApiError::unauthenticated("Get secretKey failed"))?;
    let headers = signable_headers(parts);
    let req = signable_request(parts, &headers, body);
    if let Err(e) = signing::verify(&req, &parsed, &secret, now, max_skew()) {
        app.iam.lockout.record_failure(&lock_key, now_ms);
        return Err(ApiError::unauthenticated(format!(
            "verify aksk signature fail, {e}"
        )));
    }
    app.iam.lockout.record_success(&lock_key);
    let project_id = parts
        .headers
        .get("x-project-id")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    Ok(Caller {
        user_id: user.id,
        user_name: user.name,
        domain_id: domain.id,
        domain_name: domain.name,
        method: AuthMethod::AkSk {
            access_key: cred.access,
            project_id,
        },
    })
}

/// How far `X-Sdk-Date` may be from the server's clock (APIG: 15 minutes).
fn max_skew() -> chrono::Duration {
    chrono::Duration::minutes(15)
}

fn signable_headers(parts: &Parts) -> Vec<(String, String)> {
    parts
        .headers
        .iter()
        .filter_map(|(k, v)| {
            v.to_str()
                .ok()
                .map(|v| (k.as_str().to_owned(), v.to_owned()))
        })
        .collect()
}

fn signable_request<'a>(
    parts: &'a Parts,
    headers: &'a [(String, String)],
    body: &'a Bytes,
) -> SignableRequest<'a> {
    SignableRequest {
        method: parts.method.as_str(),
        path: parts.uri.path(),
        query: parts.uri.query().unwrap_or(""),
        headers,
        body,
    }
}

/// A request signed with a temporary AK (a Python function's `getSecurityAccessKey()`): the
/// signed `X-Security-Token` must be this server's, unexpired, unrevoked and issued for that AK;
/// the SK is recomputed from it and the signature checked. The caller then acts exactly as with
/// the agency's token: its project only, and only the routes the agency's roles grant.
/// Failures are 401 `APIGW.0301` like any bad signature; only signature mismatches (with a
/// genuine token) count toward the lockout, which is keyed by the temporary AK and so can lock
/// out nothing that outlives one invocation's credentials.
async fn verify_temporary(
    app: &AppState,
    parts: &Parts,
    body: &Bytes,
    parsed: &signing::ParsedAuthorization,
    lock_key: &str,
    now: chrono::DateTime<chrono::Utc>,
) -> Result<Caller, ApiError> {
    let now_ms = now.timestamp_millis();
    let headers = signable_headers(parts);
    let req = signable_request(parts, &headers, body);
    let claims = match temporary::verify_request(&app.iam.token_key, &req, parsed, now, max_skew())
    {
        Ok(claims) => claims,
        Err(temporary::TemporaryError::Expired { expires_at }) => {
            return Err(ApiError::unauthenticated(format!(
                "token expires, expires_at: {}",
                fmt_ms(expires_at)
            )));
        }
        Err(temporary::TemporaryError::InvalidSecurityToken) => {
            return Err(ApiError::unauthenticated("decrypt token fail"));
        }
        Err(e @ temporary::TemporaryError::Signature(_)) => {
            app.iam.lockout.record_failure(lock_key, now_ms);
            return Err(ApiError::unauthenticated(format!(
                "verify aksk signature fail, {e}"
            )));
        }
        Err(e) => {
            return Err(ApiError::unauthenticated(format!(
                "verify aksk signature fail, {e}"
            )));
        }
    };
    app.iam.lockout.record_success(lock_key);
    if app.iam.is_revoked(&claims.jti) {
        return Err(ApiError::unauthenticated("token has been revoked"));
    }
    // Only agencies get temporary credentials; anything else was not minted by this server.
    let Some(agency) = claims.agency.clone() else {
        return Err(ApiError::unauthenticated("decrypt token fail"));
    };
    check_agency_call(app, &claims, &agency, parts).await?;
    Ok(caller_from_claims(claims))
}

impl<S: Send + Sync> FromRequestParts<S> for Caller {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _state: &S) -> Result<Self, Self::Rejection> {
        parts
            .extensions
            .get::<Caller>()
            .cloned()
            .ok_or_else(|| ApiError::unauthenticated("x-auth-token not found"))
    }
}

/// The project named by the `{project_id}` path segment, checked against the caller's scope.
#[derive(Debug, Clone)]
pub struct ProjectScope {
    pub project_id: String,
    pub caller: Caller,
}

impl FromRequestParts<AppState> for ProjectScope {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        app: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let caller = Caller::from_request_parts(parts, app).await?;
        let params = axum::extract::RawPathParams::from_request_parts(parts, app)
            .await
            .map_err(|_| ApiError::forbidden("the request path names no project"))?;
        let project_id = params
            .iter()
            .find(|(k, _)| *k == "project_id")
            .map(|(_, v)| v.to_owned())
            .ok_or_else(|| ApiError::forbidden("the request path names no project"))?;
        let denied = || {
            ApiError::forbidden(format!(
                "project `{}` does not exist or is not accessible with this credential",
                truncate(&project_id, 64)
            ))
        };
        match &caller.method {
            AuthMethod::Token {
                project_id: scoped, ..
            } => {
                if scoped.as_deref() != Some(project_id.as_str()) {
                    return Err(match scoped {
                        Some(p) => ApiError::forbidden(format!(
                            "the token is scoped to project `{p}`, not to project `{}`",
                            truncate(&project_id, 64)
                        )),
                        None => ApiError::forbidden(
                            "the token is not scoped to a project; request a project-scoped token",
                        ),
                    });
                }
            }
            AuthMethod::AkSk {
                project_id: header, ..
            } => {
                if let Some(h) = header
                    && h != &project_id
                {
                    return Err(ApiError::forbidden(format!(
                        "X-Project-Id `{}` does not match the project `{}` in the path",
                        truncate(h, 64),
                        truncate(&project_id, 64)
                    )));
                }
            }
        }
        match app.iam.project_domain(&project_id).await? {
            Some(domain) if domain == caller.domain_id => Ok(ProjectScope { project_id, caller }),
            _ => Err(denied()),
        }
    }
}

/// Cuts hostile input before it is echoed in an error message.
pub(crate) fn truncate(s: &str, max_chars: usize) -> String {
    if s.chars().count() <= max_chars {
        return s.to_owned();
    }
    let mut out: String = s.chars().take(max_chars).collect();
    out.push('…');
    out
}

#[cfg(test)]
mod agency_action_tests {
    use super::agency_action;
    use axum::http::Method;

    #[test]
    fn agency_tokens_map_routes_to_actions_and_refuse_the_rest() {
        let p = "/v2/0123/notifications/topics/urn:smn:local:0123:cts_test/publish";
        assert_eq!(agency_action(&Method::POST, p), Some("smn:topic:publish"));
        assert_eq!(
            agency_action(&Method::GET, "/v2/0123/notifications/topics"),
            Some("smn:topic:list")
        );
        assert_eq!(
            agency_action(&Method::POST, "/v2/0123/fgs/functions/f/invocations"),
            Some("functiongraph:function:invoke")
        );
        assert_eq!(
            agency_action(&Method::DELETE, "/v2/0123/fgs/functions/f"),
            Some("functiongraph:function:update")
        );
        assert_eq!(
            agency_action(&Method::GET, "/v3/0123/traces"),
            Some("cts:trace:list")
        );
        for (m, path) in [
            (Method::GET, "/v3/users"),
            (Method::POST, "/v3.0/OS-AGENCY/agencies"),
            (Method::POST, "/v3/auth/tokens"),
            (Method::GET, "/v3/roles"),
        ] {
            assert_eq!(agency_action(&m, path), None, "{m} {path}");
        }
    }
}
