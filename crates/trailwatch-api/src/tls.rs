//! TLS on the server's own listener (rustls with the aws-lc-rs provider only).
//!
//! [`TlsSettings::load`] reads a PEM certificate chain and private key once at start and says
//! clearly what is wrong with either file. [`TlsListener`] wraps the TCP listener for
//! `axum::serve`: every handshake runs in its own task (bounded, with a timeout), so a slow or
//! failing client never holds up the others, and a failed handshake is only logged at `debug`.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};

/// A client has this long to complete its TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Handshakes in progress at once; beyond that the listener stops accepting until one ends.
const MAX_PENDING_HANDSHAKES: usize = 1024;

/// A TLS problem found at start (`[server] tls_cert` / `tls_key`).
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("[server] tls_cert {path}: {reason}")]
    Cert { path: PathBuf, reason: String },
    #[error("[server] tls_key {path}: {reason}")]
    Key { path: PathBuf, reason: String },
    #[error("[server] tls_cert and tls_key do not make a usable TLS configuration: {0}")]
    Config(String),
}

/// The server's certificate chain and key, ready for handshakes.
#[derive(Clone)]
pub struct TlsSettings {
    config: Arc<rustls::ServerConfig>,
    chain_pem: Vec<u8>,
}

impl std::fmt::Debug for TlsSettings {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("TlsSettings").finish_non_exhaustive()
    }
}

impl TlsSettings {
    /// Reads the PEM certificate chain (leaf first) and the PEM private key (PKCS#8, PKCS#1 or
    /// SEC1) and checks that they belong together.
    pub fn load(cert: &Path, key: &Path) -> Result<TlsSettings, TlsError> {
        let cert_err = |reason: String| TlsError::Cert {
            path: cert.to_owned(),
            reason,
        };
        let chain_pem = std::fs::read(cert).map_err(|e| cert_err(format!("cannot read: {e}")))?;
        let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&chain_pem)
            .collect::<Result<_, _>>()
            .map_err(|e| cert_err(format!("not a PEM certificate file: {e}")))?;
        if chain.is_empty() {
            return Err(cert_err(
                "no certificate in it (expected -----BEGIN CERTIFICATE-----)".into(),
            ));
        }
        let key_err = |reason: String| TlsError::Key {
            path: key.to_owned(),
            reason,
        };
        let key_pem = std::fs::read(key).map_err(|e| key_err(format!("cannot read: {e}")))?;
        // The error text of the PEM reader never contains the key material.
        let private = PrivateKeyDer::from_pem_slice(&key_pem).map_err(|e| {
            key_err(format!(
                "no private key in it (expected a PEM PRIVATE KEY, RSA PRIVATE KEY or EC PRIVATE KEY block): {e}"
            ))
        })?;
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Config(e.to_string()))?
            .with_no_client_auth()
            .with_single_cert(chain, private)
            .map_err(|e| TlsError::Config(e.to_string()))?;
        // The API is served over HTTP/1.1 only.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(TlsSettings {
            config: Arc::new(config),
            chain_pem,
        })
    }

    /// The certificate chain as read (PEM): what a client on this machine trusts to reach the
    /// server (the startup work uses it).
    pub fn chain_pem(&self) -> &[u8] {
        &self.chain_pem
    }
}

/// A TCP listener whose connections are TLS sessions, for `axum::serve`.
pub struct TlsListener {
    tcp: TcpListener,
    acceptor: TlsAcceptor,
    handshakes: JoinSet<
        Option<(
            tokio_rustls::server::TlsStream<TcpStream>,
            std::net::SocketAddr,
        )>,
    >,
}

impl std::fmt::Debug for TlsListener {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsListener")
            .field("tcp", &self.tcp)
            .field("pending_handshakes", &self.handshakes.len())
            .finish_non_exhaustive()
    }
}

impl TlsListener {
    pub fn new(tcp: TcpListener, settings: &TlsSettings) -> TlsListener {
        TlsListener {
            tcp,
            acceptor: TlsAcceptor::from(settings.config.clone()),
            handshakes: JoinSet::new(),
        }
    }

    fn start_handshake(&mut self, stream: TcpStream, peer: std::net::SocketAddr) {
        let acceptor = self.acceptor.clone();
        self.handshakes.spawn(async move {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(tls)) => Some((tls, peer)),
                Ok(Err(e)) => {
                    tracing::debug!(%peer, error = %e, "TLS handshake failed");
                    None
                }
                Err(_) => {
                    tracing::debug!(%peer, "TLS handshake timed out");
                    None
                }
            }
        });
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        loop {
            if self.handshakes.len() >= MAX_PENDING_HANDSHAKES {
                if let Some(Ok(Some(done))) = self.handshakes.join_next().await {
                    return done;
                }
                continue;
            }
            tokio::select! {
                // The TCP listener's own accept retries and logs accept errors.
                (stream, peer) = axum::serve::Listener::accept(&mut self.tcp) => {
                    self.start_handshake(stream, peer);
                }
                Some(joined) = self.handshakes.join_next() => {
                    if let Ok(Some(done)) = joined {
                        return done;
                    }
                }
            }
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        self.tcp.local_addr()
    }
}
