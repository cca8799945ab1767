//! The one mapping from failures to each service's compatible error body.
//!
//! | shape | used by | body |
//! |---|---|---|
//! | [`ApiError::Cts`] | CTS, FunctionGraph and LTS routes ([`ApiError::service`]) | `{"error_code":"CTS.xxxx","error_msg":"…"}` |
//! | [`ApiError::Gateway`] | authentication and project scope on every service | `{"error_code":"APIGW.xxxx","error_msg":"…","request_id":"…"}` |
//! | [`ApiError::Iam`] | IAM routes | `{"error":{"code":401,"message":"…","title":"Unauthorized"}}` |
//! | [`ApiError::Smn`] | SMN routes | `{"request_id":"…","code":"SMN.xxxx","message":"…"}` |
//!
//! Messages are written for the caller and never contain secrets.

use axum::http::{HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::json;

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ApiError {
    Cts {
        status: StatusCode,
        code: &'static str,
        msg: String,
    },
    Gateway {
        status: StatusCode,
        code: &'static str,
        msg: String,
    },
    Iam {
        status: StatusCode,
        msg: String,
    },
    /// SMN routes: `{"request_id","code":"SMN.xxxx","message"}`.
    Smn {
        status: StatusCode,
        code: &'static str,
        msg: String,
    },
}

impl ApiError {
    pub fn cts(status: StatusCode, code: &'static str, msg: impl Into<String>) -> Self {
        ApiError::Cts {
            status,
            code,
            msg: msg.into(),
        }
    }

    /// The `{"error_code","error_msg"}` body that CTS, FunctionGraph (`FSS.xxxx`) and LTS
    /// (`LTS.xxxx`) share.
    pub fn service(status: StatusCode, code: &'static str, msg: impl Into<String>) -> Self {
        Self::cts(status, code, msg)
    }

    /// CTS.0003: the body (or one record of it) is empty or invalid.
    pub fn cts_bad_body(msg: impl Into<String>) -> Self {
        Self::cts(StatusCode::BAD_REQUEST, "CTS.0003", msg)
    }

    /// CTS.0300: a query parameter is invalid.
    pub fn cts_bad_query(msg: impl Into<String>) -> Self {
        Self::cts(StatusCode::BAD_REQUEST, "CTS.0300", msg)
    }

    pub fn cts_internal(msg: impl Into<String>) -> Self {
        Self::cts(StatusCode::INTERNAL_SERVER_ERROR, "CTS.0004", msg)
    }

    /// 401 from the gateway: the request is not authenticated.
    pub fn unauthenticated(detail: impl std::fmt::Display) -> Self {
        ApiError::Gateway {
            status: StatusCode::UNAUTHORIZED,
            code: "APIGW.0301",
            msg: format!("Incorrect IAM authentication information: {detail}"),
        }
    }

    /// 403 from the gateway: authenticated, but not allowed here.
    pub fn forbidden(detail: impl Into<String>) -> Self {
        ApiError::Gateway {
            status: StatusCode::FORBIDDEN,
            code: "APIGW.0302",
            msg: detail.into(),
        }
    }

    pub fn body_too_large(limit: usize) -> Self {
        ApiError::Gateway {
            status: StatusCode::PAYLOAD_TOO_LARGE,
            code: "APIGW.0201",
            msg: format!("Request body is larger than the limit of {limit} bytes"),
        }
    }

    pub fn iam(status: StatusCode, msg: impl Into<String>) -> Self {
        ApiError::Iam {
            status,
            msg: msg.into(),
        }
    }

    pub fn status(&self) -> StatusCode {
        match self {
            ApiError::Cts { status, .. }
            | ApiError::Gateway { status, .. }
            | ApiError::Iam { status, .. }
            | ApiError::Smn { status, .. } => *status,
        }
    }
}

impl std::fmt::Display for ApiError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ApiError::Cts { code, msg, .. }
            | ApiError::Gateway { code, msg, .. }
            | ApiError::Smn { code, msg, .. } => write!(f, "{code}: {msg}"),
            ApiError::Iam { status, msg } => write!(f, "{}: {msg}", status.as_u16()),
        }
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let status = self.status();
        let request_id = uuid::Uuid::new_v4().simple().to_string();
        let body = match &self {
            ApiError::Cts { code, msg, .. } => json!({"error_code": code, "error_msg": msg}),
            ApiError::Gateway { code, msg, .. } => {
                json!({"error_code": code, "error_msg": msg, "request_id": request_id})
            }
            ApiError::Smn { code, msg, .. } => {
                json!({"request_id": request_id, "code": code, "message": msg})
            }
            ApiError::Iam { status, msg } => json!({"error": {
                "code": status.as_u16(),
                "message": msg,
                "title": status.canonical_reason().unwrap_or("Error"),
            }}),
        };
        let mut response = (status, axum::Json(body)).into_response();
        if let Ok(v) = HeaderValue::from_str(&request_id) {
            response.headers_mut().insert("x-request-id", v);
        }
        response
    }
}

impl From<trailwatch_store::StoreError> for ApiError {
    fn from(e: trailwatch_store::StoreError) -> Self {
        use trailwatch_store::StoreError as E;
        match e {
            E::MarkerNotFound(m) => ApiError::cts_bad_query(format!(
                "parameter `next`: marker `{m}` does not name a trace in this project"
            )),
            other => {
                tracing::error!(error = %other, "store failure");
                ApiError::cts_internal("The trace store failed; the request was not completed")
            }
        }
    }
}
