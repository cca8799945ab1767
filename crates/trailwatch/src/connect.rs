//! Resolving client connection settings: flags, then environment, then the profile file.

use std::path::PathBuf;

use anyhow::{Context, bail};
use serde::Deserialize;
use trailwatch_client::{Client, ClientConfig, Credentials};

use crate::cli::ConnectionArgs;

/// The profile file: the same settings as the environment variables.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct Profile {
    endpoint: Option<String>,
    project: Option<String>,
    domain: Option<String>,
    access_key: Option<String>,
    secret_key: Option<String>,
    user: Option<String>,
    password: Option<String>,
    /// PEM file of a CA certificate to trust (`--ca-cert`, `TRAILWATCH_CA_CERT`).
    ca_cert: Option<PathBuf>,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

fn load_profile(args: &ConnectionArgs) -> anyhow::Result<Profile> {
    let explicit = args
        .profile
        .clone()
        .or_else(|| env("TRAILWATCH_PROFILE").map(PathBuf::from));
    let path = match &explicit {
        Some(p) => p.clone(),
        None => match env("HOME") {
            Some(home) => PathBuf::from(home).join(".config/trailwatch/profile.toml"),
            None => return Ok(Profile::default()),
        },
    };
    if !path.exists() {
        if explicit.is_some() {
            bail!("profile file {} does not exist", path.display());
        }
        return Ok(Profile::default());
    }
    let text = std::fs::read_to_string(&path)
        .with_context(|| format!("reading profile {}", path.display()))?;
    toml::from_str(&text).with_context(|| format!("profile {} is invalid", path.display()))
}

/// Connects with the resolved settings; the error says which settings are missing.
pub async fn client(args: &ConnectionArgs) -> anyhow::Result<Client> {
    let profile = load_profile(args)?;
    let endpoint = args
        .endpoint
        .clone()
        .or_else(|| env("TRAILWATCH_ENDPOINT"))
        .or(profile.endpoint)
        .unwrap_or_else(|| "http://127.0.0.1:8840".into());
    let project = args
        .project
        .clone()
        .or_else(|| env("TRAILWATCH_PROJECT"))
        .or(profile.project)
        .unwrap_or_else(|| "default".into());
    let domain = args
        .domain
        .clone()
        .or_else(|| env("TRAILWATCH_DOMAIN"))
        .or(profile.domain)
        .unwrap_or_else(|| "default".into());
    let ak = env("TRAILWATCH_AK").or(profile.access_key);
    let sk = env("TRAILWATCH_SK").or(profile.secret_key);
    let user = env("TRAILWATCH_USER").or(profile.user);
    let password = env("TRAILWATCH_PASSWORD").or(profile.password);
    let credentials = match (ak, sk, user, password) {
        (Some(access_key), Some(secret_key), _, _) => Credentials::AkSk {
            access_key,
            secret_key,
        },
        (Some(_), None, _, _) | (None, Some(_), _, _) => {
            bail!(
                "set both TRAILWATCH_AK and TRAILWATCH_SK (or access_key and secret_key in the profile)"
            )
        }
        (None, None, Some(user), Some(password)) => Credentials::Password { user, password },
        _ => bail!(
            "no credentials: set TRAILWATCH_AK and TRAILWATCH_SK, or TRAILWATCH_USER and TRAILWATCH_PASSWORD \
             (a first start writes the administrator's to <data-dir>/initial-credentials)"
        ),
    };
    let ca_cert = args
        .ca_cert
        .clone()
        .or_else(|| env("TRAILWATCH_CA_CERT").map(PathBuf::from))
        .or(profile.ca_cert);
    let ca_cert_pem = match &ca_cert {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("reading the CA certificate {}", path.display()))?,
        ),
        None => None,
    };
    Client::connect(ClientConfig {
        endpoint: endpoint.clone(),
        credentials,
        project,
        domain,
        ca_cert_pem,
    })
    .await
    .with_context(|| format!("connecting to {endpoint}"))
}
