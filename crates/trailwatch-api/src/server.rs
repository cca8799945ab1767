//! Starting the server: the data directory, the server's key material, the first-start
//! bootstrap of the administrator, background tasks, and the serve loop with graceful shutdown.

use std::future::Future;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use trailwatch_functions::service::{
    Clock, CredentialMinter, FunctionService, FunctionServiceParts, PythonSetup, RightsLookup,
};
use trailwatch_iam::keys::MasterKey;
use trailwatch_iam::secret::Secret;
use trailwatch_iam::{ids, password};
use trailwatch_notify::Signer;
use trailwatch_notify::service::{Notifier, NotifyConfig};
use trailwatch_store::{Durability, Store, StoreOptions, iam as iam_db};

use crate::auth::Iam;
use crate::metrics::Metrics;
use crate::{ApiConfig, AppState};

/// Credentials for the first start, normally from `TRAILWATCH_ADMIN_PASSWORD`,
/// `TRAILWATCH_ADMIN_AK` and `TRAILWATCH_ADMIN_SK`.
#[derive(Debug, Clone, Default)]
pub struct BootstrapSecrets {
    pub admin_password: Option<Secret>,
    pub admin_access_key: Option<String>,
    pub admin_secret_key: Option<Secret>,
}

#[derive(Debug, Clone)]
pub struct ServerOptions {
    pub data_dir: PathBuf,
    pub durability: Durability,
    /// How far the query index may trail the trace log under load (`[storage] index_max_lag`).
    pub index_max_lag: u64,
    pub api: ApiConfig,
    pub token_ttl_ms: i64,
    /// Traces older than this (by ingest time) are deleted from the local log; `None` keeps all.
    pub retention_days: Option<u32>,
    pub bootstrap: BootstrapSecrets,
    /// The notification service; its region and public URL are taken from `api`.
    pub notify: NotifyConfig,
    /// Where functions read and write objects; `None` = the folder `objects` in the data
    /// directory.
    pub objects: Option<trailwatch_archive::ObjectStoreConfig>,
    /// How often the archiver transfers traces to trackers' buckets (CTS: 5 minutes).
    pub archive_cycle: std::time::Duration,
    /// The interpreter of the Python runtime (`python3` on `PATH`, or a virtualenv's
    /// `bin/python` for runtime-wide libraries; `[python] interpreter`).
    pub python: PathBuf,
    /// TLS on the listener (`[server] tls_cert` / `tls_key`); `None` serves plain HTTP.
    pub tls: Option<crate::tls::TlsSettings>,
}

impl ServerOptions {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        ServerOptions {
            data_dir: data_dir.into(),
            durability: Durability::Full,
            index_max_lag: StoreOptions::new("").index_max_lag,
            api: ApiConfig::default(),
            token_ttl_ms: 24 * 3600 * 1000,
            retention_days: None,
            bootstrap: BootstrapSecrets::default(),
            notify: NotifyConfig::new("local", "http://127.0.0.1:8840"),
            objects: None,
            archive_cycle: std::time::Duration::from_secs(300),
            python: PathBuf::from("python3"),
            tls: None,
        }
    }
}

#[derive(Debug, thiserror::Error)]
pub enum ServerError {
    #[error(transparent)]
    Store(#[from] trailwatch_store::StoreError),
    #[error("object store: {0}")]
    Objects(String),
    #[error("I/O error: {0}")]
    Io(#[from] std::io::Error),
    #[error("key file {path}: {reason}")]
    KeyFile { path: PathBuf, reason: String },
    #[error("bootstrap: {0}")]
    Bootstrap(String),
    #[error("notification service: {0}")]
    Notify(String),
    /// The startup hook failed (its message).
    #[error("{0}")]
    Startup(String),
}

/// Serves `listener` until `shutdown` completes, then drains in-flight requests and closes the
/// store (its last commit finishes before this returns).
pub async fn run(
    listener: tokio::net::TcpListener,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ServerError> {
    run_with_startup(listener, options, shutdown, None).await
}

/// Handed to a [`StartupHook`] once the server accepts requests.
#[derive(Debug)]
pub struct Started {
    /// `http://{address}` of the listener, or `https://` with TLS (an unspecified address is
    /// replaced by loopback).
    pub url: String,
    /// With TLS, the server's certificate chain (PEM): a client of the startup work pins its
    /// first (leaf) certificate to reach [`Started::url`] (`Client::connect_pinned`).
    pub tls_roots: Option<Vec<u8>>,
    /// The id of the bootstrap project `default`.
    pub project_id: String,
    /// A token of the bootstrap administrator (`admin` of domain `default`) scoped to that
    /// project, valid for an hour and revoked as soon as the hook returns.
    pub admin_token: Secret,
    /// The server's store, for work that stays in process after the hook returns (the
    /// collectors of `[[source]]` blocks append their traces to it).
    pub store: Store,
}

/// Work done once at start, through the API, as the bootstrap administrator (the binary applies
/// the resources declared in its configuration file). An `Err` stops the server: the message is
/// returned as [`ServerError::Startup`].
pub type StartupHook = Box<
    dyn FnOnce(Started) -> std::pin::Pin<Box<dyn Future<Output = Result<(), String>> + Send>>
        + Send,
>;

/// [`run`], and once the listener serves, `startup` (if any) runs beside the server. When it
/// fails, the server shuts down gracefully and this returns [`ServerError::Startup`].
pub async fn run_with_startup(
    listener: tokio::net::TcpListener,
    options: ServerOptions,
    shutdown: impl Future<Output = ()> + Send + 'static,
    startup: Option<StartupHook>,
) -> Result<(), ServerError> {
    let state = prepare(&options).await?;
    if let Some(days) = options.retention_days {
        tokio::spawn(retention_loop(state.store.clone(), days));
    }
    tokio::spawn(housekeeping_loop(state.store.clone()));
    let (stop_tx, mut stop_rx) = tokio::sync::watch::channel(false);
    let outbox = tokio::spawn(state.notifier.clone().run_outbox(async move {
        let _ = stop_rx.wait_for(|stop| *stop).await;
    }));
    let (engine_stop_tx, mut engine_stop_rx) = tokio::sync::watch::channel(false);
    let engine = tokio::spawn(trailwatch_functions::engine::run(
        state.functions.clone(),
        async move {
            let _ = engine_stop_rx.wait_for(|stop| *stop).await;
        },
    ));
    let (archive_stop_tx, mut archive_stop_rx) = tokio::sync::watch::channel(false);
    let archiver = tokio::spawn(trailwatch_archive::archiver::run(
        trailwatch_archive::archiver::ArchiverConfig {
            store: state.store.clone(),
            objects: state.objects.clone(),
            key: state.archive_key.clone(),
            region: options.api.region.clone(),
            cycle: options.archive_cycle,
            period: chrono::TimeDelta::hours(1),
            now: Arc::new(chrono::Utc::now),
        },
        async move {
            let _ = archive_stop_rx.wait_for(|stop| *stop).await;
        },
    ));
    let local = listener.local_addr()?;
    let scheme = if options.tls.is_some() {
        "https"
    } else {
        "http"
    };
    state
        .functions
        .set_endpoint(format!("{scheme}://{}", loopback_if_unspecified(local)));
    let startup_failure = Arc::new(std::sync::Mutex::new(None::<String>));
    let (failed_tx, failed_rx) = tokio::sync::oneshot::channel::<()>();
    if let Some(hook) = startup {
        let (mut started, claims) = startup_context(&state, local).await?;
        if let Some(tls) = &options.tls {
            started.url = format!("https://{}", loopback_if_unspecified(local));
            started.tls_roots = Some(tls.chain_pem().to_vec());
        }
        let iam = state.iam.clone();
        let slot = startup_failure.clone();
        tokio::spawn(async move {
            let result = hook(started).await;
            if iam.revoke(&claims).await.is_err() {
                tracing::warn!("could not revoke the startup token; it expires within the hour");
            }
            if let Err(message) = result {
                if let Ok(mut s) = slot.lock() {
                    *s = Some(message);
                }
                let _ = failed_tx.send(());
            }
        });
    }
    let app = crate::router(state);
    tracing::info!(address = %local, tls = options.tls.is_some(), "trailwatch is listening");
    let stop = async move {
        tokio::select! {
            () = shutdown => {}
            Ok(()) = failed_rx => {}
        }
    };
    // The same graceful shutdown either way: stop accepting, finish in-flight requests.
    match &options.tls {
        None => {
            axum::serve(listener, app)
                .with_graceful_shutdown(stop)
                .await?
        }
        Some(tls) => {
            axum::serve(crate::tls::TlsListener::new(listener, tls), app)
                .with_graceful_shutdown(stop)
                .await?
        }
    }
    // Deliveries still in flight stay pending in the outbox and resume at the next start.
    let _ = stop_tx.send(true);
    let _ = engine_stop_tx.send(true);
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), engine).await;
    let _ = tokio::time::timeout(std::time::Duration::from_secs(5), outbox).await;
    // The archiver flushes: pending traces are written and every chain gets an ending digest.
    let _ = archive_stop_tx.send(true);
    if tokio::time::timeout(std::time::Duration::from_secs(30), archiver)
        .await
        .is_err()
    {
        tracing::warn!("the archive flush did not finish in 30 s; it resumes at the next start");
    }
    tracing::info!("trailwatch stopped");
    let failure = startup_failure.lock().ok().and_then(|mut s| s.take());
    match failure {
        Some(message) => Err(ServerError::Startup(message)),
        None => Ok(()),
    }
}

/// The listener's URL and a short-lived token of the bootstrap administrator for a startup hook.
async fn startup_context(
    state: &AppState,
    local: std::net::SocketAddr,
) -> Result<(Started, trailwatch_iam::token::TokenClaims), ServerError> {
    let found = state
        .store
        .read(|c| {
            let Some(domain) = iam_db::domain_by_name(c, "default")? else {
                return Ok(None);
            };
            let user = iam_db::user_by_name(c, &domain.id, "admin")?;
            let project = iam_db::project_by_name(c, &domain.id, "default")?;
            Ok(Some((domain, user, project)))
        })
        .await?;
    let Some((domain, Some(user), Some(project))) = found else {
        return Err(ServerError::Startup(
            "startup work runs as the bootstrap administrator `admin` in project `default` of \
             domain `default`, and one of them no longer exists"
                .into(),
        ));
    };
    let now = trailwatch_store::now_ms();
    let claims = trailwatch_iam::token::TokenClaims {
        jti: ids::new_id32(),
        user_id: user.id,
        user_name: user.name,
        domain_id: domain.id,
        domain_name: domain.name,
        project_id: Some(project.id.clone()),
        project_name: Some(project.name),
        methods: vec!["password".into()],
        issued_at: now,
        expires_at: now + 3_600_000,
        agency: None,
    };
    let token = trailwatch_iam::token::issue(&state.iam.token_key, &claims);
    let started = Started {
        url: format!("http://{}", loopback_if_unspecified(local)),
        tls_roots: None,
        project_id: project.id,
        admin_token: Secret::new(token),
        store: state.store.clone(),
    };
    Ok((started, claims))
}

/// `local` with an unspecified address (`0.0.0.0`, `::`) replaced by loopback: where this
/// server can be reached from the same machine.
fn loopback_if_unspecified(local: std::net::SocketAddr) -> std::net::SocketAddr {
    let ip = match local.ip() {
        std::net::IpAddr::V4(a) if a.is_unspecified() => std::net::Ipv4Addr::LOCALHOST.into(),
        std::net::IpAddr::V6(a) if a.is_unspecified() => std::net::Ipv6Addr::LOCALHOST.into(),
        other => other,
    };
    std::net::SocketAddr::new(ip, local.port())
}

/// Mints what a Python function's `context` hands out for its agency, for an agency of the
/// project's domain that trusts the function service and has not expired: the token of
/// `getToken()` (project-scoped, carrying the agency's name, `methods: ["assume_role"]`) and a
/// temporary AK/SK with its security token (`getSecurityAccessKey()`/… and the deprecated
/// `getAccessKey()`/`getSecretKey()`; `trailwatch_iam::temporary`) carrying the same claims
/// under another `jti`. Everything is signed with (or derived from) this server's token key, so
/// it is valid against this server's API only, with exactly the agency's rights there.
fn agency_token_minter(store: Store, iam: Arc<Iam>) -> CredentialMinter {
    Arc::new(move |project_id: String, agency: String, ttl_ms: i64| {
        let (store, iam) = (store.clone(), iam.clone());
        Box::pin(async move {
            let pid = project_id.clone();
            let found = store
                .read(move |c| {
                    let Some(project) = iam_db::project_by_id(c, &pid)? else {
                        return Ok(None);
                    };
                    let domain = iam_db::domain_by_id(c, &project.domain_id)?;
                    let a =
                        trailwatch_store::agencies::agency_by_name(c, &project.domain_id, &agency)?;
                    Ok(Some((project, domain, a)))
                })
                .await
                .map_err(|e| e.to_string())?;
            let Some((project, Some(domain), a)) = found else {
                return Err(format!("project {project_id} does not exist"));
            };
            let now = trailwatch_store::now_ms();
            let a = a
                .filter(|a| {
                    a.trust_domain_name == trailwatch_iam::roles::FUNCTION_SERVICE_TRUST_NAME
                })
                .ok_or_else(|| {
                    format!(
                        "the agency does not exist or does not trust the function service ({})",
                        trailwatch_iam::roles::FUNCTION_SERVICE_TRUST_NAME
                    )
                })?;
            if a.expires_at.is_some_and(|t| t <= now) {
                return Err("the agency has expired".into());
            }
            let claims = trailwatch_iam::token::TokenClaims {
                jti: ids::new_id32(),
                user_id: a.id,
                user_name: a.name.clone(),
                domain_id: domain.id,
                domain_name: domain.name,
                project_id: Some(project.id),
                project_name: Some(project.name),
                methods: vec!["assume_role".into()],
                issued_at: now,
                expires_at: now + ttl_ms,
                agency: Some(a.name),
            };
            let token = trailwatch_iam::token::issue(&iam.token_key, &claims);
            let temporary = trailwatch_iam::temporary::issue(
                &iam.token_key,
                trailwatch_iam::token::TokenClaims {
                    jti: ids::new_id32(),
                    ..claims
                },
            );
            // FunctionGraph deprecated getAccessKey()/getSecretKey() in favour of the security
            // pair; both answer the same temporary credentials.
            Ok(trailwatch_python::Credentials {
                token,
                access_key: temporary.access_key.clone(),
                secret_key: temporary.secret_key.clone(),
                security_access_key: temporary.access_key,
                security_secret_key: temporary.secret_key,
                security_token: temporary.security_token,
            })
        })
    })
}

/// The rights a function's agency grants in its project (IAM agencies, `docs/specs/auth.md`).
fn agency_rights_lookup(store: Store) -> RightsLookup {
    Arc::new(move |project_id: String, agency: String| {
        let store = store.clone();
        Box::pin(async move {
            let pid = project_id.clone();
            let project = store
                .read(move |c| trailwatch_store::iam::project_by_id(c, &pid))
                .await
                .map_err(|e| e.to_string())?
                .ok_or_else(|| format!("project {project_id} does not exist"))?;
            // A function may assume only an agency that trusts the function service, not one
            // made to delegate to another account.
            let (domain, name) = (project.domain_id.clone(), agency.clone());
            let trusted = store
                .read(move |c| trailwatch_store::agencies::agency_by_name(c, &domain, &name))
                .await
                .map_err(|e| e.to_string())?
                .is_some_and(|a| {
                    a.trust_domain_name == trailwatch_iam::roles::FUNCTION_SERVICE_TRUST_NAME
                });
            if !trusted {
                return Err(format!(
                    "agency `{agency}` does not exist or does not trust the function service ({})",
                    trailwatch_iam::roles::FUNCTION_SERVICE_TRUST_NAME
                ));
            }
            trailwatch_store::agencies::agency_rights(
                &store,
                &project.domain_id,
                &project_id,
                &agency,
            )
            .await
            .map_err(|e| e.to_string())
        })
    })
}

/// Opens the store, loads the keys and bootstraps IAM: everything but the listener.
pub async fn prepare(options: &ServerOptions) -> Result<AppState, ServerError> {
    let mut store_options = StoreOptions::new(&options.data_dir);
    store_options.durability = options.durability;
    store_options.index_max_lag = options.index_max_lag;
    let store = Store::open(store_options)?;
    let master = load_or_create_master_key(&options.data_dir.join("keys").join("master.key"))?;
    let iam = Iam::new(
        store.clone(),
        master.token_key(),
        master.seal_key(),
        options.token_ttl_ms,
    )
    .await?;
    let signer = load_or_create_signer(&options.data_dir.join("keys"))?;
    let mut notify = options.notify.clone();
    notify.region = options.api.region.clone();
    notify.public_url = options.api.public_url.clone();
    let notifier = Notifier::new(
        store.clone(),
        notify,
        signer,
        derive_key(&master, b"trailwatch smn links v1"),
    )
    .map_err(ServerError::Notify)?;
    let lts_head = Arc::new(tokio::sync::watch::Sender::new(0));
    let objects_config =
        options
            .objects
            .clone()
            .unwrap_or_else(|| trailwatch_archive::ObjectStoreConfig::Local {
                root: options.data_dir.join("objects"),
            });
    let objects = Arc::new(
        trailwatch_archive::Objects::open(&objects_config)
            .map_err(|e| ServerError::Objects(e.to_string()))?,
    );
    let archive_key = Arc::new(load_or_create_archive_key(
        &options.data_dir.join("keys").join(ARCHIVE_KEY_FILE),
    )?);
    let functions = Arc::new(FunctionService::new(FunctionServiceParts {
        store: store.clone(),
        notifier: notifier.clone(),
        objects: objects.clone(),
        seal: trailwatch_iam::secret::SealKey::from_bytes(derive_key(
            &master,
            b"trailwatch fgs user data v1",
        )),
        region: options.api.region.clone(),
        rights: agency_rights_lookup(store.clone()),
        clock: Clock::System,
        lts_head: lts_head.clone(),
    }));
    // The Python runtime: a server without a usable Python 3 still starts; creating a Python
    // function then answers why the runtime is unavailable.
    let python = trailwatch_python::PythonRuntime::start(trailwatch_python::PythonConfig {
        python: options.python.clone(),
        work_root: options.data_dir.join("functions").join("python"),
        max_log_bytes: trailwatch_python::DEFAULT_MAX_LOG_BYTES,
    })
    .await
    .map(Arc::new);
    match &python {
        Ok(rt) => tracing::info!(
            python = %rt.interpreter().executable.display(),
            version = %rt.interpreter().runtime_name(),
            "Python runtime ready"
        ),
        Err(e) => tracing::warn!(error = %e, "the Python runtime is not available"),
    }
    functions.set_python(PythonSetup {
        runtime: python,
        minter: agency_token_minter(store.clone(), iam.clone()),
    });
    notifier.set_function_deliverer(Arc::new(
        trailwatch_functions::service::SmnTriggerDeliverer(functions.clone()),
    ));
    let state = AppState {
        store,
        iam,
        metrics: Arc::new(Metrics::default()),
        config: Arc::new(options.api.clone()),
        notifier,
        lts_head,
        functions,
        objects,
        archive_key,
    };
    bootstrap(&state, &options.data_dir, &options.bootstrap).await?;
    Ok(state)
}

#[cfg(unix)]
fn restrict(path: &Path, mode: u32) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
}

#[cfg(not(unix))]
fn restrict(_path: &Path, _mode: u32) -> std::io::Result<()> {
    Ok(())
}

/// Writes `contents` to a new file that only the owner can read; fails if it exists.
fn write_private(path: &Path, contents: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(contents)?;
    file.sync_all()
}

/// The server's master key (32 random bytes, hex, mode 0600), created on first start.
/// Token signing and secret sealing keys are derived from it.
pub fn load_or_create_master_key(path: &Path) -> Result<MasterKey, ServerError> {
    let key_err = |reason: String| ServerError::KeyFile {
        path: path.to_owned(),
        reason,
    };
    if path.exists() {
        let text = std::fs::read_to_string(path).map_err(|e| key_err(e.to_string()))?;
        let bytes =
            hex::decode(text.trim()).map_err(|_| key_err("not a hex-encoded key".into()))?;
        let bytes: [u8; 32] = bytes
            .try_into()
            .map_err(|_| key_err("the key must be 32 bytes (64 hex characters)".into()))?;
        return Ok(MasterKey::from_bytes(bytes));
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        restrict(dir, 0o700)?;
    }
    let key = MasterKey::generate();
    write_private(path, hex::encode(key.as_bytes()).as_bytes())
        .map_err(|e| key_err(e.to_string()))?;
    Ok(key)
}

/// The archive signing key's file name in `<data-dir>/keys/`.
pub const ARCHIVE_KEY_FILE: &str = "archive-signing.pem";

/// The archive's Ed25519 signing key (PKCS#8 PEM, mode 0600), created on first start. It is
/// separate from the master key so that its public half can be handed to auditors
/// (`trailwatch keys export`).
pub fn load_or_create_archive_key(
    path: &Path,
) -> Result<trailwatch_integrity::SigningKey, ServerError> {
    if let Some(key) = load_archive_key(path)? {
        return Ok(key);
    }
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir)?;
        restrict(dir, 0o700)?;
    }
    // 32 bytes from the OS generator (the same one the master key uses).
    let seed = *MasterKey::generate().as_bytes();
    let key = trailwatch_integrity::SigningKey::from_seed(&seed);
    write_private(path, key.to_pkcs8_pem().as_bytes()).map_err(|e| ServerError::KeyFile {
        path: path.to_owned(),
        reason: e.to_string(),
    })?;
    Ok(key)
}

/// The archive signing key if it exists.
pub fn load_archive_key(
    path: &Path,
) -> Result<Option<trailwatch_integrity::SigningKey>, ServerError> {
    let pem = match std::fs::read_to_string(path) {
        Ok(p) => p,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => {
            return Err(ServerError::KeyFile {
                path: path.to_owned(),
                reason: e.to_string(),
            });
        }
    };
    trailwatch_integrity::SigningKey::from_pkcs8_pem(&pem)
        .map(Some)
        .map_err(|e| ServerError::KeyFile {
            path: path.to_owned(),
            reason: e.to_string(),
        })
}

/// A purpose-specific key derived from the master key.
fn derive_key(master: &MasterKey, purpose: &[u8]) -> [u8; 32] {
    use hmac::{Hmac, Mac};
    let mut out = [0u8; 32];
    if let Ok(mut mac) = Hmac::<sha2::Sha256>::new_from_slice(master.as_bytes()) {
        mac.update(purpose);
        out.copy_from_slice(&mac.finalize().into_bytes());
    }
    out
}

/// The SMN notification signing key and certificate (`keys/smn-signing-key.pem`, 0600, and
/// `keys/smn-signing-cert.pem`), created on first start and kept so that receivers can pin it.
fn load_or_create_signer(dir: &Path) -> Result<Signer, ServerError> {
    let key_path = dir.join("smn-signing-key.pem");
    let cert_path = dir.join("smn-signing-cert.pem");
    let err = |path: &Path, reason: String| ServerError::KeyFile {
        path: path.to_owned(),
        reason,
    };
    if key_path.exists() && cert_path.exists() {
        let key = std::fs::read_to_string(&key_path).map_err(|e| err(&key_path, e.to_string()))?;
        let cert =
            std::fs::read_to_string(&cert_path).map_err(|e| err(&cert_path, e.to_string()))?;
        return Signer::from_pem(&key, &cert).map_err(|e| err(&key_path, e.to_string()));
    }
    std::fs::create_dir_all(dir)?;
    let signer = Signer::generate("trailwatch SMN notifications")
        .map_err(|e| err(&key_path, e.to_string()))?;
    let _ = std::fs::remove_file(&key_path);
    let _ = std::fs::remove_file(&cert_path);
    write_private(&key_path, signer.key_pem().as_bytes())
        .map_err(|e| err(&key_path, e.to_string()))?;
    std::fs::write(&cert_path, signer.cert_pem()).map_err(|e| err(&cert_path, e.to_string()))?;
    Ok(signer)
}

/// On first start (no users yet): domain `default`, project `default`, and the administrator
/// `admin` with the given or a generated password. An AK/SK from the environment is added on any
/// start if it does not exist yet; generated secrets are written once to
/// `<data-dir>/initial-credentials` (mode 0600) and never logged.
async fn bootstrap(
    state: &AppState,
    data_dir: &Path,
    secrets: &BootstrapSecrets,
) -> Result<(), ServerError> {
    let users = state.store.read(iam_db::count_users).await?;
    let mut generated: Vec<(&str, String)> = Vec::new();
    if users == 0 {
        let password = match &secrets.admin_password {
            Some(p) => {
                password::check_password_policy(p.expose()).map_err(|e| {
                    ServerError::Bootstrap(format!("TRAILWATCH_ADMIN_PASSWORD: {e}"))
                })?;
                p.expose().to_owned()
            }
            None => {
                let p = ids::new_password();
                generated.push(("admin_password", p.clone()));
                p
            }
        };
        let hash = crate::passwords::run(move || password::hash_password(&password))
            .await
            .ok_or_else(|| ServerError::Bootstrap("password hashing failed".into()))?
            .map_err(|e| ServerError::Bootstrap(e.to_string()))?;
        state
            .store
            .write(move |tx| {
                let domain = iam_db::create_domain(tx, &ids::new_id32(), "default")?;
                iam_db::create_project(tx, &ids::new_id32(), &domain.id, "default")?;
                iam_db::create_user(
                    tx,
                    iam_db::NewUser {
                        id: &ids::new_id32(),
                        domain_id: &domain.id,
                        name: "admin",
                        password_hash: Some(&hash),
                        is_admin: true,
                    },
                )?;
                Ok(())
            })
            .await?;
        tracing::info!("first start: created domain `default`, project `default` and user `admin`");
    }

    let (access, secret) = match (&secrets.admin_access_key, &secrets.admin_secret_key) {
        (Some(ak), Some(sk)) => (ak.clone(), sk.expose().to_owned()),
        (None, None) if users == 0 => {
            let (ak, sk) = (ids::new_access_key(), ids::new_secret_key());
            generated.push(("admin_access_key", ak.clone()));
            generated.push(("admin_secret_key", sk.clone()));
            (ak, sk)
        }
        (None, None) => (String::new(), String::new()),
        _ => {
            return Err(ServerError::Bootstrap(
                "set both TRAILWATCH_ADMIN_AK and TRAILWATCH_ADMIN_SK, or neither".into(),
            ));
        }
    };
    if !access.is_empty() {
        let valid = access.len() <= 128 && access.chars().all(|c| c.is_ascii_alphanumeric());
        if !valid || secret.len() < 16 {
            return Err(ServerError::Bootstrap(
                "TRAILWATCH_ADMIN_AK must be 1–128 letters or digits and TRAILWATCH_ADMIN_SK at least 16 characters".into(),
            ));
        }
        let sealed = state
            .iam
            .seal_key
            .seal(secret.as_bytes(), access.as_bytes());
        let created = state
            .store
            .write(move |tx| {
                if iam_db::credential(tx, &access)?.is_some() {
                    return Ok(false);
                }
                let domain = iam_db::domain_by_name(tx, "default")?.ok_or_else(|| {
                    trailwatch_store::StoreError::NotFound("domain `default`".into())
                })?;
                let admin = iam_db::user_by_name(tx, &domain.id, "admin")?
                    .ok_or_else(|| trailwatch_store::StoreError::NotFound("user `admin`".into()))?;
                iam_db::create_credential(tx, &access, &admin.id, &sealed, "bootstrap")?;
                Ok(true)
            })
            .await?;
        if created {
            tracing::info!("added the administrator's AK/SK credential");
        }
    }

    if !generated.is_empty() {
        let path = data_dir.join("initial-credentials");
        let mut text = String::from(
            "# trailwatch first-start credentials for user `admin` in domain `default`.\n",
        );
        for (k, v) in &generated {
            text.push_str(&format!("{k} = \"{v}\"\n"));
        }
        write_private(&path, text.as_bytes())?;
        tracing::warn!(path = %path.display(), "generated administrator credentials; they are in this file (mode 0600)");
        eprintln!(
            "trailwatch: generated administrator credentials were written to {}",
            path.display()
        );
    }
    Ok(())
}

/// How long finished invocation records, function statistics and publish idempotency keys are
/// kept.
const RECORDS_KEPT_MS: i64 = 30 * 86_400_000;

/// Deletes LTS lines older than their group's `ttl_in_days`, and old invocation records,
/// every ten minutes.
async fn housekeeping_loop(store: Store) {
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        let now = trailwatch_store::now_ms();
        match store
            .write(move |c| trailwatch_store::lts::apply_retention(c, now))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "retention removed expired log lines"),
            Err(e) => tracing::warn!(error = %e, "log retention pass failed; will retry"),
        }
        // Function invocation records, statistics and publish idempotency keys: 30 days.
        let before = now - RECORDS_KEPT_MS;
        match store
            .write(move |c| trailwatch_store::functions::prune(c, before))
            .await
        {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "housekeeping removed old invocation records"),
            Err(e) => tracing::warn!(error = %e, "housekeeping failed; will retry"),
        }
    }
}

async fn retention_loop(store: Store, days: u32) {
    let keep_ms = i64::from(days) * 24 * 3600 * 1000;
    let mut tick = tokio::time::interval(std::time::Duration::from_secs(600));
    loop {
        tick.tick().await;
        let cutoff = trailwatch_store::now_ms() - keep_ms;
        match store.apply_retention(cutoff).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "retention removed expired traces"),
            Err(e) => tracing::warn!(error = %e, "retention pass failed; will retry"),
        }
    }
}
