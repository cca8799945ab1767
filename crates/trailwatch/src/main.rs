//! The `trailwatch` binary: parses arguments, loads configuration, wires the services from the
//! library crates and runs the chosen command. Data goes to stdout, logs and errors to stderr.

mod apply;
mod archive_cli;
mod cli;
mod collect_cli;
mod config;
mod connect;
mod functions_cli;
mod iam;
mod notify_cli;
mod sources_cli;
mod traces;

use std::process::ExitCode;

use anyhow::Context;
use clap::Parser;
use trailwatch_api::server::{BootstrapSecrets, ServerOptions, Started, StartupHook};
use trailwatch_iam::secret::Secret;
use trailwatch_notify::Backoff;
use trailwatch_notify::service::{NotifyConfig, SmsConfig, SmtpConfig};

use crate::cli::{
    Cli, Command, ConfigCommand, DeliveriesCommand, ImportCommand, KeysCommand,
    NotificationsCommand, ServeArgs, TracesCommand,
};

/// mimalloc instead of glibc malloc: the ingest path allocates per field of every trace from
/// several threads, and glibc's arenas spent ≈ 12 % of the request workers in malloc/free
/// (consolidation and chunk unlinking under contention); durable ingest ran 85–89k traces/s
/// with glibc and 103–106k with mimalloc (BENCHMARKS.md). Built with `no_thp`: with
/// transparent huge pages the idle server held 38 MiB of huge pages (62 MiB RSS instead of 44).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> ExitCode {
    let cli = Cli::parse();
    init_logging();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("error: cannot start the async runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(cli)) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_env("TRAILWATCH_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Runs a command; `Ok(false)` means it ran but found problems (exit status 1).
async fn run(cli: Cli) -> anyhow::Result<bool> {
    match &cli.command {
        Command::Serve(args) => serve(args).await.map(|()| true),
        Command::Config(ConfigCommand::Check { file }) => Ok(check_config(file)),
        Command::Traces(command) => match command.as_ref() {
            TracesCommand::Put(args) => {
                let client = connect::client(&cli.connection).await?;
                traces::put(&client, args).await
            }
            TracesCommand::List(args) => {
                let client = connect::client(&cli.connection).await?;
                traces::list(&client, args).await.map(|()| true)
            }
        },
        Command::Iam(command) => {
            let client = connect::client(&cli.connection).await?;
            iam::run(&client, command).await.map(|()| true)
        }
        Command::Topics(command) => {
            let client = connect::client(&cli.connection).await?;
            notify_cli::topics(&client, command).await.map(|()| true)
        }
        Command::Subscriptions(command) => {
            let client = connect::client(&cli.connection).await?;
            notify_cli::subscriptions(&client, command)
                .await
                .map(|()| true)
        }
        Command::Publish {
            topic,
            message,
            subject,
            ttl,
        } => {
            let client = connect::client(&cli.connection).await?;
            notify_cli::publish(&client, topic, subject.as_deref(), message, *ttl)
                .await
                .map(|()| true)
        }
        Command::Deliveries(DeliveriesCommand::List { message_id, output }) => {
            let client = connect::client(&cli.connection).await?;
            notify_cli::deliveries(&client, message_id, *output)
                .await
                .map(|()| true)
        }
        Command::Notifications(NotificationsCommand::DeadLetters(command)) => {
            let client = connect::client(&cli.connection).await?;
            notify_cli::dead_letters(&client, command)
                .await
                .map(|()| true)
        }
        Command::Silences(command) => {
            let client = connect::client(&cli.connection).await?;
            notify_cli::silences(&client, command).await.map(|()| true)
        }
        Command::Functions(command) => {
            let client = connect::client(&cli.connection).await?;
            functions_cli::functions(&client, command).await
        }
        Command::Triggers(command) => {
            let client = connect::client(&cli.connection).await?;
            functions_cli::triggers(&client, command)
                .await
                .map(|()| true)
        }
        Command::Agencies(command) => {
            let client = connect::client(&cli.connection).await?;
            functions_cli::agencies(&client, command)
                .await
                .map(|()| true)
        }
        Command::Verify(args) => archive_cli::verify(args).await,
        Command::Keys(KeysCommand::Export { data_dir }) => archive_cli::export_key(data_dir),
        Command::Import(ImportCommand::CtsArchive(args)) => {
            let client = connect::client(&cli.connection).await?;
            archive_cli::import(&client, args).await
        }
        Command::Import(ImportCommand::Sshd(args)) => {
            sources_cli::import(&cli.connection, sources_cli::Format::Sshd, args).await
        }
        Command::Import(ImportCommand::Journald(args)) => {
            sources_cli::import(&cli.connection, sources_cli::Format::Journald, args).await
        }
        Command::Import(ImportCommand::Cloudtrail(args)) => {
            sources_cli::import(&cli.connection, sources_cli::Format::Cloudtrail, args).await
        }
        Command::Import(ImportCommand::WindowsSecurity(args)) => {
            sources_cli::import(&cli.connection, sources_cli::Format::WindowsSecurity, args).await
        }
        Command::Import(ImportCommand::K8sAudit(args)) => {
            sources_cli::import(&cli.connection, sources_cli::Format::K8sAudit, args).await
        }
        Command::Import(ImportCommand::Evtx(args)) => {
            sources_cli::import(&cli.connection, sources_cli::Format::Evtx, args).await
        }
        Command::Import(ImportCommand::Json(args)) => {
            sources_cli::import_json(&cli.connection, args).await
        }
        Command::Collect(args) => collect_cli::collect(&cli.connection, args).await,
    }
}

fn check_config(file: &std::path::Path) -> bool {
    match config::load(file) {
        Ok(config) => {
            println!("{}: ok", file.display());
            let r = &config.resources;
            if !config.sources.is_empty() {
                println!("declares {} source(s)", config.sources.len());
            }
            if !r.is_empty() {
                let subscriptions: usize = r.topics.iter().map(|t| t.subscriptions.len()).sum();
                let triggers: usize = r.functions.iter().map(|f| f.triggers.len()).sum();
                println!(
                    "declares {} topic(s) with {subscriptions} subscription(s), {} agency(ies), \
                     {} function(s) with {triggers} trigger(s)",
                    r.topics.len(),
                    r.agencies.len(),
                    r.functions.len()
                );
            }
            true
        }
        Err(errors) => {
            for e in &errors {
                println!("{}: {e}", file.display());
            }
            println!("{} problem(s) found", errors.len());
            false
        }
    }
}

fn env_secret(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.is_empty())
}

async fn serve(args: &ServeArgs) -> anyhow::Result<()> {
    let mut config = match &args.config {
        Some(path) => config::load(path).map_err(|errors| {
            let list: Vec<String> = errors.iter().map(|e| format!("  {e}")).collect();
            anyhow::anyhow!(
                "configuration {} is invalid:\n{}",
                path.display(),
                list.join("\n")
            )
        })?,
        None => config::Config::default(),
    };
    if let Some(listen) = &args.listen {
        config.server.listen = listen.clone();
    }
    if let Some(dir) = &args.data_dir {
        config.server.data_dir = dir.clone();
    }
    if let (Some(cert), Some(key)) = (&args.tls_cert, &args.tls_key) {
        config.server.tls_cert = Some(cert.clone());
        config.server.tls_key = Some(key.clone());
    }
    if args.allow_plain_http {
        config.server.allow_plain_http = true;
    }
    let tls = match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(cert), Some(key)) => Some(trailwatch_api::tls::TlsSettings::load(cert, key)?),
        (None, None) => None,
        _ => anyhow::bail!("[server] tls_cert and tls_key must be set together (PEM files)"),
    };
    let listener = tokio::net::TcpListener::bind(&config.server.listen)
        .await
        .with_context(|| format!("cannot listen on {}", config.server.listen))?;
    let local = listener.local_addr()?;
    if tls.is_none() && !local.ip().is_loopback() && !config.server.allow_plain_http {
        anyhow::bail!(
            "refusing to serve plain HTTP on {local}, which is not a loopback address: \
             configure TLS ([server] tls_cert and tls_key, or --tls-cert and --tls-key), or set \
             [server] allow_plain_http = true (or --allow-plain-http) if a TLS-terminating proxy \
             protects this listener"
        );
    }
    let scheme = if tls.is_some() { "https" } else { "http" };
    let mut options = ServerOptions::new(&config.server.data_dir);
    options.tls = tls;
    options.durability = config.storage.durability;
    options.index_max_lag = config.storage.index_max_lag;
    options.api.max_body_bytes = config.server.max_body_bytes;
    options.api.region = config.server.region.clone();
    options.api.public_url = config
        .server
        .public_url
        .clone()
        .unwrap_or_else(|| format!("{scheme}://{local}"));
    options.token_ttl_ms = i64::from(config.iam.token_ttl_hours) * 3_600_000;
    options.retention_days = Some(config.storage.trace_retention_days).filter(|d| *d > 0);
    options.notify = notify_config(&config.notify, &config.outbound)?;
    options.objects = config.objects.clone();
    if let Some(trailwatch_archive::ObjectStoreConfig::S3 { endpoint, .. }) = &options.objects {
        check_s3_endpoint(&options.notify.outbound, endpoint).await?;
    }
    options.archive_cycle = std::time::Duration::from_secs(config.archive.transfer_cycle_seconds);
    options.python = config.python.interpreter.clone();
    // The S3 secret may come from the environment instead of the file.
    if let (
        Some(trailwatch_archive::ObjectStoreConfig::S3 {
            secret_access_key, ..
        }),
        Ok(secret),
    ) = (
        options.objects.as_mut(),
        std::env::var("TRAILWATCH_OBJECTS_SECRET_ACCESS_KEY"),
    ) {
        *secret_access_key = trailwatch_archive::SecretKey::new(secret);
    }
    options.bootstrap = BootstrapSecrets {
        admin_password: env_secret("TRAILWATCH_ADMIN_PASSWORD").map(Secret::new),
        admin_access_key: env_secret("TRAILWATCH_ADMIN_AK"),
        admin_secret_key: env_secret("TRAILWATCH_ADMIN_SK").map(Secret::new),
    };
    if config.resources.is_empty() && config.sources.is_empty() {
        // Print the bound address on stdout so that scripts (and tests) using port 0 can find it.
        println!("listening on {scheme}://{local}");
        return trailwatch_api::server::run(listener, options, shutdown_signal())
            .await
            .context("server failed");
    }
    // With declared resources, the address is printed once they are in place: whoever waits
    // for it finds them.
    let file = args
        .config
        .as_ref()
        .map(|p| p.display().to_string())
        .unwrap_or_default();
    let hook = declared_resources_hook(
        config.resources.clone(),
        collect_cli::ServeSources {
            sources: config.sources.clone(),
            data_dir: config.server.data_dir.clone(),
        },
        file,
        format!("{scheme}://{local}"),
    );
    trailwatch_api::server::run_with_startup(listener, options, shutdown_signal(), Some(hook))
        .await
        .context("server failed")
}

/// Applies the declared resources through the API once the server serves, then prints the
/// `listening on` line.
fn declared_resources_hook(
    resources: config::Resources,
    sources: collect_cli::ServeSources,
    file: String,
    listening: String,
) -> StartupHook {
    Box::new(move |started: Started| {
        Box::pin(async move {
            if resources.is_empty() {
                sources.start(&started).await?;
                println!("listening on {listening}");
                return Ok(());
            }
            let fail = |e: String| format!("cannot apply the resources declared in {file}: {e}");
            let config = trailwatch_client::ClientConfig {
                endpoint: started.url.clone(),
                credentials: trailwatch_client::Credentials::Token(
                    started.admin_token.expose().to_owned(),
                ),
                project: started.project_id.clone(),
                domain: "default".into(),
                ca_cert_pem: None,
            };
            // With TLS, the server's own certificate is the one trusted (whatever name it has
            // and whoever issued it: this is the server talking to itself on loopback).
            let client = match &started.tls_roots {
                Some(chain) => trailwatch_client::Client::connect_pinned(config, chain).await,
                None => trailwatch_client::Client::connect(config).await,
            }
            .map_err(|e| fail(e.to_string()))?;
            let report = apply::apply(&client, &resources).await.map_err(fail)?;
            for what in &report.created {
                tracing::info!("created {what}");
            }
            for what in &report.updated {
                tracing::info!("updated {what} to match {file}");
            }
            for note in &report.notes {
                tracing::warn!("{note}");
            }
            tracing::info!("{} ({file})", report.summary());
            // After the resources: a trigger declared beside a source sees its first traces.
            sources.start(&started).await?;
            println!("listening on {listening}");
            Ok(())
        })
    })
}

fn notify_config(
    n: &config::NotifySection,
    outbound: &config::OutboundSection,
) -> anyhow::Result<NotifyConfig> {
    use std::time::Duration;
    use trailwatch_notify::outbound::{ALLOW_ENV, OutboundPolicy};
    let mut c = NotifyConfig::new("local", "http://127.0.0.1:8840");
    let env_allow = std::env::var(ALLOW_ENV).ok();
    c.outbound = OutboundPolicy::new(&outbound.allow, &outbound.deny)
        .and_then(|p| p.with_env_allow(env_allow.as_deref()))
        .map_err(|e| anyhow::anyhow!("[outbound]: {e}"))?;
    c.backoff = Backoff::new(
        Duration::from_millis(n.retry_base_ms),
        Duration::from_millis(n.retry_cap_ms),
    )
    .map_err(|e| anyhow::anyhow!("[notify] retry: {e}"))?;
    c.concurrency = n.concurrency;
    c.connect_timeout = Duration::from_millis(n.connect_timeout_ms);
    c.response_timeout = Duration::from_millis(n.response_timeout_ms);
    if let Some(path) = &n.extra_ca_file {
        c.extra_ca_pem = Some(
            std::fs::read(path)
                .with_context(|| format!("[notify] extra_ca_file {}", path.display()))?,
        );
    }
    c.smtp = n.smtp.as_ref().map(|s| SmtpConfig {
        host: s.host.clone(),
        port: s.port,
        security: s.security,
        username: s.username.clone(),
        password: env_secret("TRAILWATCH_SMTP_PASSWORD"),
        from: s.from.clone(),
    });
    c.sms = n.sms.as_ref().map(|s| SmsConfig {
        url: s.url.clone(),
        method: s.method.clone(),
        headers: s
            .headers
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect(),
        body_template: s.body_template.clone(),
        auto_confirm: s.auto_confirm,
    });
    Ok(c)
}

/// The S3 endpoint under the outbound policy, checked once at start against every address it
/// resolves to. (The object-store client resolves names itself, so unlike webhook deliveries a
/// later DNS change is not caught; docs/security.md says so.)
async fn check_s3_endpoint(
    policy: &trailwatch_notify::outbound::OutboundPolicy,
    endpoint: &str,
) -> anyhow::Result<()> {
    let url = reqwest::Url::parse(endpoint)
        .map_err(|e| anyhow::anyhow!("[objects] endpoint {endpoint:?}: {e}"))?;
    let host = url
        .host_str()
        .ok_or_else(|| anyhow::anyhow!("[objects] endpoint {endpoint:?} has no host"))?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    let port = url.port_or_known_default().unwrap_or(443);
    let addrs = tokio::net::lookup_host((host, port))
        .await
        .with_context(|| format!("[objects] endpoint {endpoint:?}: cannot resolve {host}"))?;
    for addr in addrs {
        policy
            .check(addr.ip())
            .map_err(|r| anyhow::anyhow!("[objects] endpoint {endpoint:?}: {r}"))?;
    }
    Ok(())
}

/// Resolves on Ctrl-C or SIGTERM.
pub(crate) async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => {},
        () = term => {},
    }
    tracing::info!("shutdown requested; finishing in-flight requests");
}
