//! trailwatch's HTTP API: axum routers per service (CTS and IAM so far), the authentication
//! middleware, and the one mapping from failures to each service's compatible error body.
//!
//! This is the only crate that knows HTTP status codes and wire JSON. [`server::run`] serves a
//! bound listener until a shutdown signal, which is how both the binary and the tests start it:
//!
//! ```no_run
//! # async fn demo() -> Result<(), trailwatch_api::server::ServerError> {
//! let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.map_err(trailwatch_api::server::ServerError::Io)?;
//! let options = trailwatch_api::server::ServerOptions::new("/tmp/tw-data");
//! trailwatch_api::server::run(listener, options, std::future::pending::<()>()).await
//! # }
//! ```

pub mod auth;
pub mod cts;
pub mod error;
pub mod fgs;
pub mod iam_routes;
pub mod key_events;
pub mod lts;
pub mod metrics;
mod passwords;
pub mod server;
pub mod smn;
pub mod tls;
pub mod trackers;

use std::sync::Arc;

use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{delete, get, post, put};
use trailwatch_store::Store;

use crate::auth::Iam;
use crate::error::ApiError;
use crate::metrics::Metrics;

/// Settings the handlers read.
#[derive(Debug, Clone)]
pub struct ApiConfig {
    /// Largest request body accepted (bytes).
    pub max_body_bytes: usize,
    /// The base URL clients use to reach this server (token catalogs, links).
    pub public_url: String,
    /// The region name used in URNs and catalogs.
    pub region: String,
}

impl Default for ApiConfig {
    fn default() -> Self {
        ApiConfig {
            max_body_bytes: 12 * 1024 * 1024,
            public_url: "http://127.0.0.1:8840".into(),
            region: "local".into(),
        }
    }
}

/// Everything a handler needs. Cheap to clone.
#[derive(Debug, Clone)]
pub struct AppState {
    pub store: Store,
    pub iam: Arc<Iam>,
    pub metrics: Arc<Metrics>,
    pub config: Arc<ApiConfig>,
    pub notifier: Arc<trailwatch_notify::service::Notifier>,
    /// The sequence number of the newest durable LTS log line; the LTS trigger engine waits on
    /// it instead of polling.
    pub lts_head: Arc<tokio::sync::watch::Sender<u64>>,
    pub functions: Arc<trailwatch_functions::service::FunctionService>,
    /// The object store (functions' objects, trackers' buckets).
    pub objects: Arc<trailwatch_archive::Objects>,
    /// Signs archive digests; its public half is served to auditors.
    pub archive_key: Arc<trailwatch_integrity::SigningKey>,
}

/// All routes. Every route except health, metrics and token issuance requires authentication.
pub fn router(state: AppState) -> Router {
    let auth = axum::middleware::from_fn_with_state(state.clone(), auth::authenticate);
    let protected = Router::new()
        .route("/v3/auth/projects", get(iam_routes::my_projects))
        .route(
            "/v3/projects",
            get(iam_routes::list_projects).post(iam_routes::create_project),
        )
        .route(
            "/v3/users",
            get(iam_routes::list_users).post(iam_routes::create_user),
        )
        .route(
            "/v3.0/OS-CREDENTIAL/credentials",
            get(iam_routes::list_credentials).post(iam_routes::create_credential),
        )
        .route(
            "/v3.0/OS-CREDENTIAL/credentials/{access_key}",
            delete(iam_routes::delete_credential),
        )
        .route("/v3/roles", get(iam_routes::list_roles))
        .route("/v3/roles/{role_id}", get(iam_routes::get_role))
        .route(
            "/v3.0/OS-AGENCY/agencies",
            get(iam_routes::list_agencies).post(iam_routes::create_agency),
        )
        .route(
            "/v3.0/OS-AGENCY/agencies/{agency_id}",
            get(iam_routes::get_agency).delete(iam_routes::delete_agency),
        )
        .route(
            "/v3.0/OS-AGENCY/projects/{project_id}/agencies/{agency_id}/roles",
            get(iam_routes::list_agency_roles),
        )
        .route(
            "/v3.0/OS-AGENCY/projects/{project_id}/agencies/{agency_id}/roles/{role_id}",
            put(iam_routes::grant_agency_role)
                .delete(iam_routes::revoke_agency_role)
                .head(iam_routes::check_agency_role),
        )
        .route("/v3/{project_id}/traces", get(cts::list).post(cts::ingest))
        .route(
            "/v3/{project_id}/tracker",
            post(trackers::create).put(trackers::update),
        )
        .route(
            "/v3/{project_id}/trackers",
            get(trackers::list).delete(trackers::delete),
        )
        .route(
            "/v3/{project_id}/tracker/public-key",
            get(trackers::public_key),
        )
        .route(
            "/v1.0/{project_id}/{tracker_name}/trace",
            get(cts::list_legacy),
        )
        .route(
            "/v2.0/{project_id}/{tracker_name}/trace",
            get(cts::list_legacy),
        )
        .route(
            "/v2/{project_id}/notifications/topics",
            get(smn::list_topics).post(smn::create_topic),
        )
        .route(
            "/v2/{project_id}/notifications/topics/{topic_urn}",
            get(smn::get_topic)
                .put(smn::update_topic)
                .delete(smn::delete_topic),
        )
        .route(
            "/v2/{project_id}/notifications/topics/{topic_urn}/attributes",
            get(smn::get_attributes).delete(smn::delete_attributes),
        )
        .route(
            "/v2/{project_id}/notifications/topics/{topic_urn}/attributes/{name}",
            put(smn::put_attribute).delete(smn::delete_attribute),
        )
        .route(
            "/v2/{project_id}/notifications/topics/{topic_urn}/subscriptions",
            get(smn::list_topic_subscriptions).post(smn::add_subscription),
        )
        .route(
            "/v2/{project_id}/notifications/topics/{topic_urn}/publish",
            post(smn::publish),
        )
        .route(
            "/v2/{project_id}/notifications/topics/{topic_urn}/hygiene",
            get(smn::get_hygiene).put(smn::put_hygiene),
        )
        .route(
            "/v2/{project_id}/notifications/silences",
            get(smn::list_silences).post(smn::create_silence),
        )
        .route(
            "/v2/{project_id}/notifications/silences/{silence_id}",
            delete(smn::expire_silence),
        )
        .route(
            "/v2/{project_id}/notifications/subscriptions",
            get(smn::list_subscriptions),
        )
        .route(
            "/v2/{project_id}/notifications/subscriptions/{subscription_urn}",
            delete(smn::delete_subscription),
        )
        .route(
            "/v2/{project_id}/notifications/message_template",
            get(smn::list_templates).post(smn::create_template),
        )
        .route(
            "/v2/{project_id}/notifications/message_template/{template_id}",
            get(smn::get_template)
                .put(smn::update_template)
                .delete(smn::delete_template),
        )
        .route(
            "/v2/{project_id}/notifications/messages/{message_id}/deliveries",
            get(smn::message_deliveries),
        )
        .route(
            "/v2/{project_id}/notifications/dead-letters",
            get(smn::dead_letters),
        )
        .route(
            "/v2/{project_id}/notifications/dead-letters/replay",
            post(smn::replay),
        )
        .route(
            "/v3/{project_id}/notifications",
            post(key_events::create)
                .put(key_events::update)
                .delete(key_events::delete),
        )
        .route(
            "/v3/{project_id}/notifications/{notification_type}",
            get(key_events::list),
        )
        .route(
            "/v2/{project_id}/fgs/functions",
            get(fgs::list_functions).post(fgs::create_function),
        )
        .route("/v2/{project_id}/fgs/dead-letters", get(fgs::dead_letters))
        .route("/v2/{project_id}/fgs/dead-letters/replay", post(fgs::replay))
        .route(
            "/v2/{project_id}/fgs/functions/{function_urn}",
            delete(fgs::delete_function),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{function_urn}/config",
            get(fgs::get_config).put(fgs::update_config),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{function_urn}/code",
            get(fgs::get_code).put(fgs::update_code),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{function_urn}/invocations",
            post(fgs::invoke).get(fgs::invocations),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{function_urn}/invocations-async",
            post(fgs::invoke_async),
        )
        .route(
            "/v2/{project_id}/fgs/functions/{function_urn}/statistics/{period}",
            get(fgs::statistics),
        )
        .route(
            "/v2/{project_id}/fgs/triggers/{function_urn}",
            get(fgs::list_triggers)
                .post(fgs::create_trigger)
                .delete(fgs::delete_all_triggers),
        )
        .route(
            "/v2/{project_id}/fgs/triggers/{function_urn}/{trigger_type_code}/{trigger_id}",
            get(fgs::get_trigger)
                .put(fgs::update_trigger)
                .delete(fgs::delete_trigger),
        )
        .route(
            "/v2/{project_id}/groups",
            get(lts::list_groups).post(lts::create_group),
        )
        .route(
            "/v2/{project_id}/groups/{group_id}",
            post(lts::update_group).delete(lts::delete_group),
        )
        .route(
            "/v2/{project_id}/groups/{group_id}/streams",
            get(lts::list_streams).post(lts::create_stream),
        )
        .route(
            "/v2/{project_id}/groups/{group_id}/streams/{stream_id}",
            delete(lts::delete_stream),
        )
        .route(
            "/v2/{project_id}/groups/{group_id}/streams/{stream_id}/content/query",
            post(lts::query),
        )
        .route(
            "/v2/{project_id}/lts/groups/{group_id}/streams/{stream_id}/tenant/contents",
            post(lts::report_lines),
        )
        .route(
            "/v2/{project_id}/lts/groups/{group_id}/streams/{stream_id}/tenant/contents/high-accuracy",
            post(lts::report_lines_high_accuracy),
        )
        .route_layer(auth.clone());
    Router::new()
        .route(
            "/v3/auth/tokens",
            get(iam_routes::verify_token)
                .head(iam_routes::check_token)
                .delete(iam_routes::revoke_token)
                .route_layer(auth)
                .post(iam_routes::issue_token),
        )
        .route("/healthz", get(healthz))
        .route("/smn/signing-cert.pem", get(smn::signing_cert))
        .route("/smn/subscription/confirm", get(smn::confirm))
        .route("/smn/subscription/unsubscribe", get(smn::unsubscribe_link))
        .route("/metrics", get(metrics))
        .merge(protected)
        .fallback(not_found)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .with_state(state)
}

async fn healthz(State(app): State<AppState>) -> Response {
    match app
        .store
        .read(|c| Ok(c.query_row("SELECT 1", [], |r| r.get::<_, i64>(0))?))
        .await
    {
        Ok(_) => (
            StatusCode::OK,
            axum::Json(serde_json::json!({"status": "ok", "head_seq": app.store.head()})),
        )
            .into_response(),
        Err(e) => {
            tracing::error!(error = %e, "health check failed");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                axum::Json(serde_json::json!({"status": "unavailable"})),
            )
                .into_response()
        }
    }
}

async fn metrics(State(app): State<AppState>) -> Response {
    let size = app.store.size_bytes().await.unwrap_or(0);
    let mut body = app.metrics.render(size, app.store.head());
    let lag = app.store.index_lag().await.unwrap_or(0);
    metrics::gauge(
        &mut body,
        "trailwatch_trace_index_lag",
        "Acknowledged traces not yet in the query index (queries scan them in the log).",
        lag,
    );
    let f = &app.functions.metrics;
    for (name, help, value) in [
        (
            "trailwatch_function_invocations_total",
            "Function invocations that ran (all functions).",
            &f.invocations,
        ),
        (
            "trailwatch_function_failures_total",
            "Function invocations that failed or timed out.",
            &f.failures,
        ),
        (
            "trailwatch_function_rejects_total",
            "Function invocations refused at the concurrency limit (throttles).",
            &f.rejects,
        ),
    ] {
        metrics::counter(
            &mut body,
            name,
            help,
            value.load(std::sync::atomic::Ordering::Relaxed),
        );
    }
    ([(header::CONTENT_TYPE, "text/plain; version=0.0.4")], body).into_response()
}

async fn not_found() -> ApiError {
    ApiError::Gateway {
        status: StatusCode::NOT_FOUND,
        code: "APIGW.0101",
        msg: "The API does not exist or has not been published in the environment".into(),
    }
}
