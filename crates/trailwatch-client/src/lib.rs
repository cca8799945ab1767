//! A typed HTTP client for trailwatch's compatible APIs, used by the `trailwatch` CLI and by the
//! integration tests. It authenticates either by signing every request with an AK/SK
//! (`SDK-HMAC-SHA256`, exactly as the Huawei/OTC SDKs do) or with an IAM token obtained from a
//! user name and password.
//!
//! ```no_run
//! # async fn demo() -> Result<(), trailwatch_client::ClientError> {
//! use trailwatch_client::{Client, ClientConfig, Credentials};
//! let client = Client::connect(ClientConfig {
//!     endpoint: "http://127.0.0.1:8840".into(),
//!     credentials: Credentials::AkSk { access_key: "AK".into(), secret_key: "SK".into() },
//!     project: "default".into(),
//!     domain: "default".into(),
//!     ca_cert_pem: None,
//! }).await?;
//! let page = client.list_traces(&[("trace_name", "login".into())]).await?;
//! # let _ = page; Ok(()) }
//! ```

use reqwest::{Method, StatusCode, Url};
use serde_json::{Value, json};
use tokio::sync::Mutex;
use trailwatch_iam::signing::{self, SignableRequest};

mod pinned;

/// How the client proves who it is.
#[derive(Clone)]
pub enum Credentials {
    AkSk {
        access_key: String,
        secret_key: String,
    },
    Password {
        user: String,
        password: String,
    },
    Token(String),
}

impl std::fmt::Debug for Credentials {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Credentials::AkSk { access_key, .. } => write!(f, "AkSk({access_key}, <redacted>)"),
            Credentials::Password { user, .. } => write!(f, "Password({user}, <redacted>)"),
            Credentials::Token(_) => write!(f, "Token(<redacted>)"),
        }
    }
}

#[derive(Debug, Clone)]
pub struct ClientConfig {
    /// Base URL, e.g. `http://127.0.0.1:8840`.
    pub endpoint: String,
    pub credentials: Credentials,
    /// Project name or 32-hex id.
    pub project: String,
    /// Domain (account) name of the user, for password logins.
    pub domain: String,
    /// PEM certificates (a CA, or a server's self-signed certificate) trusted for `https://`
    /// endpoints besides the system's roots; `None` trusts the system's roots only.
    pub ca_cert_pem: Option<Vec<u8>>,
}

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach {endpoint}: {source}")]
    Transport {
        endpoint: String,
        #[source]
        source: reqwest::Error,
    },
    /// The server answered with an error status; `message` is its error text.
    #[error("{status}: {message}")]
    Api {
        status: StatusCode,
        message: String,
        body: Value,
    },
    #[error("{0}")]
    Config(String),
}

impl ClientError {
    pub fn status(&self) -> Option<StatusCode> {
        match self {
            ClientError::Api { status, .. } => Some(*status),
            _ => None,
        }
    }
}

/// A raw response: status and JSON body (`Value::Null` when empty or not JSON).
#[derive(Debug, Clone)]
pub struct RawResponse {
    pub status: StatusCode,
    pub headers: reqwest::header::HeaderMap,
    pub body: Value,
}

#[derive(Debug)]
pub struct Client {
    http: reqwest::Client,
    endpoint: Url,
    credentials: Credentials,
    domain: String,
    project_id: String,
    token: Mutex<Option<String>>,
}

fn is_id32(s: &str) -> bool {
    s.len() == 32 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// Pulls the human-readable message out of any of the compatible error shapes.
pub fn error_message(body: &Value) -> Option<String> {
    body.get("error_msg")
        .or_else(|| body.pointer("/error/message"))
        .or_else(|| body.get("message"))
        .and_then(Value::as_str)
        .map(str::to_owned)
}

impl Client {
    /// Builds a client and resolves the project name to its id (one request).
    pub async fn connect(config: ClientConfig) -> Result<Client, ClientError> {
        Client::connect_inner(config, None).await
    }

    /// [`Client::connect`] to a server that must present exactly the leaf certificate of
    /// `server_chain_pem` (the first certificate in it), whatever name the endpoint uses and
    /// whoever issued it: how a server reaches its own listener over TLS (`serve`'s start-up
    /// work). `ClientConfig::ca_cert_pem` is not used.
    pub async fn connect_pinned(
        config: ClientConfig,
        server_chain_pem: &[u8],
    ) -> Result<Client, ClientError> {
        let tls = pinned::client_config(server_chain_pem).map_err(ClientError::Config)?;
        Client::connect_inner(config, Some(tls)).await
    }

    async fn connect_inner(
        config: ClientConfig,
        pinned_tls: Option<rustls::ClientConfig>,
    ) -> Result<Client, ClientError> {
        let endpoint = Url::parse(config.endpoint.trim_end_matches('/')).map_err(|e| {
            ClientError::Config(format!("endpoint `{}` is not a URL: {e}", config.endpoint))
        })?;
        if !matches!(endpoint.scheme(), "http" | "https") {
            return Err(ClientError::Config(format!(
                "endpoint `{}` must start with http:// or https://",
                config.endpoint
            )));
        }
        let mut builder = reqwest::Client::builder()
            .timeout(std::time::Duration::from_secs(60))
            .connect_timeout(std::time::Duration::from_secs(5))
            .redirect(reqwest::redirect::Policy::none());
        if let Some(pem) = &config.ca_cert_pem {
            let certs = reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| ClientError::Config(format!("CA certificate: {e}")))?;
            if certs.is_empty() {
                return Err(ClientError::Config(
                    "CA certificate: no PEM certificate found (expected -----BEGIN CERTIFICATE-----)"
                        .into(),
                ));
            }
            builder = builder.tls_certs_merge(certs);
        }
        if let Some(tls) = pinned_tls {
            builder = builder.tls_backend_preconfigured(tls);
        }
        let http = builder
            .build()
            .map_err(|e| ClientError::Config(format!("HTTP client: {e}")))?;
        let mut client = Client {
            http,
            endpoint,
            credentials: config.credentials,
            domain: config.domain,
            project_id: String::new(),
            token: Mutex::new(None),
        };
        if let Credentials::Token(t) = &client.credentials {
            *client.token.lock().await = Some(t.clone());
        }
        client.project_id = if is_id32(&config.project) {
            config.project
        } else {
            client.resolve_project(&config.project).await?
        };
        Ok(client)
    }

    /// The id of the project this client acts in.
    pub fn project_id(&self) -> &str {
        &self.project_id
    }

    pub fn endpoint(&self) -> &Url {
        &self.endpoint
    }

    async fn resolve_project(&self, name: &str) -> Result<String, ClientError> {
        if let Credentials::Password { .. } = &self.credentials {
            let (token, body) = self.password_token(Some(name)).await?;
            *self.token.lock().await = Some(token);
            return body
                .pointer("/token/project/id")
                .and_then(Value::as_str)
                .map(str::to_owned)
                .ok_or_else(|| {
                    ClientError::Config(format!(
                        "the token for project `{name}` names no project id"
                    ))
                });
        }
        let resp = self
            .send(Method::GET, "/v3/auth/projects", "", None)
            .await?;
        let projects = resp
            .body
            .get("projects")
            .and_then(Value::as_array)
            .cloned()
            .unwrap_or_default();
        projects
            .iter()
            .find(|p| p.get("name").and_then(Value::as_str) == Some(name))
            .and_then(|p| p.get("id").and_then(Value::as_str))
            .map(str::to_owned)
            .ok_or_else(|| {
                ClientError::Config(format!(
                    "project `{name}` is not visible to these credentials"
                ))
            })
    }

    /// `POST /v3/auth/tokens` with the configured user and password; returns the token and body.
    pub async fn password_token(
        &self,
        project_name: Option<&str>,
    ) -> Result<(String, Value), ClientError> {
        let Credentials::Password { user, password } = &self.credentials else {
            return Err(ClientError::Config(
                "a password token needs user and password credentials".into(),
            ));
        };
        let mut body = json!({"auth": {"identity": {"methods": ["password"],
            "password": {"user": {"name": user, "password": password, "domain": {"name": self.domain}}}}}});
        if let Some(p) = project_name {
            body["auth"]["scope"] = json!({"project": {"name": p}});
        }
        let resp = self
            .transmit(
                Method::POST,
                "/v3/auth/tokens",
                "",
                body.to_string().into_bytes(),
                Vec::new(),
            )
            .await?;
        let resp = check(resp)?;
        let token = resp
            .headers
            .get("x-subject-token")
            .and_then(|v| v.to_str().ok())
            .ok_or_else(|| ClientError::Config("the server returned no X-Subject-Token".into()))?
            .to_owned();
        Ok((token, resp.body))
    }

    /// Sends an authenticated request; error statuses become [`ClientError::Api`].
    pub async fn send(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Option<Value>,
    ) -> Result<RawResponse, ClientError> {
        let bytes = body.map(|b| b.to_string().into_bytes());
        check(self.raw(method, path, query, bytes, true).await?)
    }

    /// Sends a request and returns whatever the server answered, error statuses included.
    pub async fn raw(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Option<Vec<u8>>,
        authenticate: bool,
    ) -> Result<RawResponse, ClientError> {
        let body = body.unwrap_or_default();
        let mut headers = Vec::new();
        if authenticate {
            match &self.credentials {
                Credentials::AkSk {
                    access_key,
                    secret_key,
                } => {
                    let url = self.url(path, query);
                    headers.push((
                        "x-sdk-date".to_owned(),
                        signing::format_sdk_date(chrono::Utc::now()),
                    ));
                    if !self.project_id.is_empty() && path.contains(&self.project_id) {
                        headers.push(("x-project-id".to_owned(), self.project_id.clone()));
                    }
                    let mut signed = self.base_headers(&url)?;
                    signed.extend(headers.iter().cloned());
                    let req = SignableRequest {
                        method: method.as_str(),
                        path: url.path(),
                        query: url.query().unwrap_or(""),
                        headers: &signed,
                        body: &body,
                    };
                    let authorization = signing::sign(&req, access_key, secret_key)
                        .map_err(|e| ClientError::Config(format!("signing failed: {e}")))?;
                    headers.push(("authorization".to_owned(), authorization));
                }
                Credentials::Password { .. } | Credentials::Token(_) => {
                    let mut token = self.token.lock().await;
                    if token.is_none() {
                        *token = Some(self.password_token(None).await?.0);
                    }
                    if let Some(t) = token.as_ref() {
                        headers.push(("x-auth-token".to_owned(), t.clone()));
                    }
                }
            }
        }
        self.transmit(method, path, query, body, headers).await
    }

    fn url(&self, path: &str, query: &str) -> Url {
        let mut url = self.endpoint.clone();
        url.set_path(path);
        url.set_query(if query.is_empty() { None } else { Some(query) });
        url
    }

    /// The headers every request carries (and an AK/SK signature covers).
    fn base_headers(&self, url: &Url) -> Result<Vec<(String, String)>, ClientError> {
        let host = match (url.host_str(), url.port()) {
            (Some(h), Some(p)) => format!("{h}:{p}"),
            (Some(h), None) => h.to_owned(),
            (None, _) => return Err(ClientError::Config("endpoint has no host".into())),
        };
        Ok(vec![
            ("content-type".to_owned(), "application/json".to_owned()),
            ("host".to_owned(), host),
        ])
    }

    /// Sends one request as given, without authentication of its own.
    async fn transmit(
        &self,
        method: Method,
        path: &str,
        query: &str,
        body: Vec<u8>,
        extra_headers: Vec<(String, String)>,
    ) -> Result<RawResponse, ClientError> {
        let url = self.url(path, query);
        let mut request = self.http.request(method, url.clone());
        for (k, v) in self.base_headers(&url)?.iter().chain(&extra_headers) {
            request = request.header(k.as_str(), v.as_str());
        }
        let response =
            request
                .body(body)
                .send()
                .await
                .map_err(|source| ClientError::Transport {
                    endpoint: self.endpoint.to_string(),
                    source,
                })?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response
            .bytes()
            .await
            .map_err(|source| ClientError::Transport {
                endpoint: self.endpoint.to_string(),
                source,
            })?;
        let body = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Ok(RawResponse {
            status,
            headers,
            body,
        })
    }

    /// `POST /v3/{project_id}/traces` with `{"traces":[…]}`; returns the per-record results.
    pub async fn put_traces(&self, traces: &[Value]) -> Result<RawResponse, ClientError> {
        let path = format!("/v3/{}/traces", self.project_id);
        let body = json!({"traces": traces});
        let resp = self
            .raw(
                Method::POST,
                &path,
                "",
                Some(body.to_string().into_bytes()),
                true,
            )
            .await?;
        // A batch in which no record is valid answers 400 with per-record results: hand those
        // back too, the caller reports them.
        if resp.status == StatusCode::BAD_REQUEST && resp.body.get("results").is_some() {
            return Ok(resp);
        }
        check(resp)
    }

    /// `GET /v3/{project_id}/traces` with the given query parameters.
    pub async fn list_traces(&self, params: &[(&str, String)]) -> Result<Value, ClientError> {
        let path = format!("/v3/{}/traces", self.project_id);
        let query = encode_query(params);
        Ok(self.send(Method::GET, &path, &query, None).await?.body)
    }
}

fn check(resp: RawResponse) -> Result<RawResponse, ClientError> {
    if resp.status.is_success() {
        return Ok(resp);
    }
    let message = error_message(&resp.body)
        .unwrap_or_else(|| resp.status.canonical_reason().unwrap_or("error").to_owned());
    Err(ClientError::Api {
        status: resp.status,
        message,
        body: resp.body,
    })
}

/// Encodes query parameters (unreserved characters kept, everything else percent-encoded).
pub fn encode_query(params: &[(&str, String)]) -> String {
    let enc = |s: &str| {
        let mut out = String::with_capacity(s.len());
        for b in s.bytes() {
            if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
                out.push(b as char);
            } else {
                out.push_str(&format!("%{b:02X}"));
            }
        }
        out
    };
    params
        .iter()
        .map(|(k, v)| format!("{}={}", enc(k), enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}
