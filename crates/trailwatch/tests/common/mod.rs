//! Test harness: runs the real `trailwatch` binary on port 0 with a temporary data directory,
//! and connects clients to it.
#![allow(dead_code, clippy::unwrap_used)]

pub mod fgs;
pub mod receiver;
pub mod smn;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use trailwatch_client::{Client, ClientConfig, Credentials};

pub const ADMIN_PASSWORD: &str = "Admin-password-1";
pub const ADMIN_AK: &str = "TESTADMINAK000000001";
pub const ADMIN_SK: &str = "test-admin-secret-key-0000000000000001";

/// The test servers' webhook receivers, SMS gateways and S3 stores listen on loopback, which the
/// default outbound policy refuses: every server the harness starts allows it, as an operator
/// would with `[outbound] allow`. [`Server::start_with_default_outbound`] does not.
pub const OUTBOUND_ALLOW_LOOPBACK: (&str, &str) =
    ("TRAILWATCH_OUTBOUND_ALLOW", "127.0.0.0/8,::1/128");

pub fn bin() -> &'static str {
    env!("CARGO_BIN_EXE_trailwatch")
}

/// A running server process. Killed (SIGKILL) on drop.
pub struct Server {
    pub child: Child,
    pub url: String,
    pub data_dir: PathBuf,
    config: Option<PathBuf>,
    _tmp: Option<tempfile::TempDir>,
    stderr_log: PathBuf,
    /// PEM certificates the harness's clients trust (a TLS server's self-signed certificate).
    pub ca_cert_pem: Option<Vec<u8>>,
}

impl Server {
    pub fn start() -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let mut s = Server::spawn(&data_dir, None, "127.0.0.1:0");
        s._tmp = Some(tmp);
        s
    }

    /// Starts without the harness's loopback allowance: the outbound policy is the default
    /// (loopback refused) or what `config` says.
    pub fn start_with_default_outbound(config: Option<&str>) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let path = config.map(|text| {
            let path = tmp.path().join("trailwatch.toml");
            std::fs::write(&path, text).unwrap();
            path
        });
        let mut s = Server::spawn_with(&data_dir, path, "127.0.0.1:0", false);
        s._tmp = Some(tmp);
        s
    }

    /// Starts with a configuration file whose text is `config`.
    pub fn start_with_config(config: &str) -> Server {
        let tmp = tempfile::tempdir().unwrap();
        let data_dir = tmp.path().join("data");
        let path = tmp.path().join("trailwatch.toml");
        std::fs::write(&path, config).unwrap();
        let mut s = Server::spawn(&data_dir, Some(path), "127.0.0.1:0");
        s._tmp = Some(tmp);
        s
    }

    fn spawn(data_dir: &Path, config: Option<PathBuf>, listen: &str) -> Server {
        Server::spawn_with(data_dir, config, listen, true)
    }

    fn spawn_with(
        data_dir: &Path,
        config: Option<PathBuf>,
        listen: &str,
        allow_loopback: bool,
    ) -> Server {
        let stderr_log = data_dir.with_extension(format!("stderr.{}.log", std::process::id()));
        let mut cmd = Command::new(bin());
        cmd.arg("serve")
            .arg("--listen")
            .arg(listen)
            .arg("--data-dir")
            .arg(data_dir);
        if let Some(c) = &config {
            cmd.arg("--config").arg(c);
        }
        cmd.env("TRAILWATCH_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("TRAILWATCH_ADMIN_AK", ADMIN_AK)
            .env("TRAILWATCH_ADMIN_SK", ADMIN_SK)
            .env("TRAILWATCH_LOG", "info")
            .env_remove(OUTBOUND_ALLOW_LOOPBACK.0)
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&stderr_log).unwrap());
        if allow_loopback {
            cmd.env(OUTBOUND_ALLOW_LOOPBACK.0, OUTBOUND_ALLOW_LOOPBACK.1);
        }
        let mut child = cmd.spawn().unwrap();
        let stdout = child.stdout.take().unwrap();
        let mut lines = BufReader::new(stdout).lines();
        let deadline = Instant::now() + Duration::from_secs(30);
        let url = loop {
            assert!(Instant::now() < deadline, "server did not start in 30 s");
            match lines.next() {
                Some(Ok(line)) => {
                    if let Some(u) = line.strip_prefix("listening on ") {
                        break u.trim().to_owned();
                    }
                }
                _ => {
                    let log = std::fs::read_to_string(&stderr_log).unwrap_or_default();
                    panic!("server exited before listening; stderr:\n{log}");
                }
            }
        };
        // Keep draining stdout so the child never blocks on a full pipe.
        std::thread::spawn(move || for _ in lines {});
        let s = Server {
            child,
            url,
            data_dir: data_dir.to_owned(),
            config,
            _tmp: None,
            stderr_log,
            ca_cert_pem: None,
        };
        s.wait_healthy();
        s
    }

    fn wait_healthy(&self) {
        if !self.url.starts_with("http://") {
            // HTTPS: `listening on` is printed once the listener serves; the TLS tests probe it.
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            let ok = http_ok(&format!("{}/healthz", self.url));
            if ok {
                return;
            }
            assert!(Instant::now() < deadline, "server never became healthy");
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// SIGTERM, then waits (at most `limit`) for the process to exit: the archiver makes its
    /// last pass and closes the current digest period on the way out.
    pub async fn stop_gracefully(&mut self, limit: Duration) {
        let status = std::process::Command::new("kill")
            .arg("-TERM")
            .arg(self.child.id().to_string())
            .status()
            .unwrap();
        assert!(status.success());
        let deadline = Instant::now() + limit;
        while self.child.try_wait().unwrap().is_none() {
            assert!(
                Instant::now() < deadline,
                "the server did not stop in {limit:?}"
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL, no chance to clean up.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGKILL and start again on the same data directory (new port).
    pub fn restart_after_kill9(mut self) -> Server {
        self.kill9();
        let tmp = self._tmp.take();
        let mut s = Server::spawn(&self.data_dir, self.config.clone(), "127.0.0.1:0");
        s._tmp = tmp;
        s
    }

    /// SIGKILL (if still running) and start again on the same data directory and the same
    /// address: clients that only know the address (a running collector) find it again.
    pub fn restart_on_same_port(mut self) -> Server {
        self.kill9();
        let tmp = self._tmp.take();
        let listen = self.url.trim_start_matches("http://").to_owned();
        let (data_dir, config) = (self.data_dir.clone(), self.config.clone());
        // Dropped before the new process starts: its log file has the same name.
        drop(self);
        let mut s = Server::spawn(&data_dir, config, &listen);
        s._tmp = tmp;
        s
    }

    /// SIGKILL and start again on the same data directory with the configuration text
    /// `config` (new port): the same topics, subscriptions and outbox, other settings.
    pub fn restart_with_config(mut self, config: &str) -> Server {
        self.kill9();
        let tmp = self._tmp.take();
        let data_dir = self.data_dir.clone();
        let path = match &tmp {
            Some(t) => t.path().join("trailwatch.toml"),
            None => data_dir.with_extension("toml"),
        };
        // Dropped before the new process starts: its log file has the same name.
        drop(self);
        std::fs::write(&path, config).unwrap();
        let mut s = Server::spawn(&data_dir, Some(path), "127.0.0.1:0");
        s._tmp = tmp;
        s
    }

    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr_log).unwrap_or_default()
    }

    pub async fn admin(&self) -> Client {
        self.client(Credentials::AkSk {
            access_key: ADMIN_AK.into(),
            secret_key: ADMIN_SK.into(),
        })
        .await
    }

    pub async fn admin_password(&self) -> Client {
        self.client(Credentials::Password {
            user: "admin".into(),
            password: ADMIN_PASSWORD.into(),
        })
        .await
    }

    pub async fn client(&self, credentials: Credentials) -> Client {
        Client::connect(ClientConfig {
            endpoint: self.url.clone(),
            credentials,
            project: "default".into(),
            domain: "default".into(),
            ca_cert_pem: self.ca_cert_pem.clone(),
        })
        .await
        .unwrap()
    }

    pub fn http(&self) -> reqwest::Client {
        reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("---- server stderr ----\n{}", self.stderr());
        }
        let _ = std::fs::remove_file(&self.stderr_log);
    }
}

/// A blocking `GET` that says whether the answer was 200, with plain std networking so that
/// the harness needs no blocking HTTP client.
fn http_ok(url: &str) -> bool {
    use std::io::{Read, Write};
    let Some(rest) = url.strip_prefix("http://") else {
        return false;
    };
    let (host, path) = rest.split_once('/').unwrap_or((rest, ""));
    let Ok(mut s) = std::net::TcpStream::connect(host) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        s,
        "GET /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200")
}

/// An IAM login trace as CTS records it.
pub fn login_trace(user: &str, ip: &str, time: i64) -> Value {
    json!({
        "trace_name": "login",
        "trace_type": "ConsoleAction",
        "trace_rating": "normal",
        "service_type": "IAM",
        "resource_type": "user",
        "resource_name": user,
        "source_ip": ip,
        "code": 302,
        "time": time,
        "user": {"name": user, "id": format!("id-{user}"), "domain": {"name": "acme", "id": "d1"}},
    })
}

/// All traces of the project matching `params`, following markers to the end.
pub async fn list_all(client: &Client, params: &[(&str, String)]) -> Vec<Value> {
    let mut out = Vec::new();
    let mut marker: Option<String> = None;
    for _ in 0..100_000 {
        let mut p: Vec<(&str, String)> = params.to_vec();
        p.push(("limit", "200".into()));
        if let Some(m) = &marker {
            p.push(("next", m.clone()));
        }
        let page = client.list_traces(&p).await.unwrap();
        out.extend(page["traces"].as_array().unwrap().iter().cloned());
        marker = page["meta_data"]["marker"].as_str().map(str::to_owned);
        if marker.is_none() {
            return out;
        }
    }
    panic!("paging did not end");
}

pub fn ids(traces: &[Value]) -> Vec<String> {
    traces
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap().to_owned())
        .collect()
}
