//! TLS on trailwatch's own listener (`[server] tls_cert` / `tls_key`): the real binary serves
//! HTTPS with a certificate made at test time (rcgen), clients that trust its CA work (library
//! and CLI `--ca-cert` / `TRAILWATCH_CA_CERT`), plain HTTP and untrusting clients fail without
//! disturbing other connections, and a plain-HTTP listener off loopback refuses to start unless
//! `allow_plain_http` says so.
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/tls.rs"]
mod pki;

use std::io::{Read, Write};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{ADMIN_AK, ADMIN_SK, Server, login_trace};
use trailwatch_client::{Client, ClientConfig, Credentials};

struct TlsServer {
    server: Server,
    ca_path: std::path::PathBuf,
    _dir: tempfile::TempDir,
}

/// A server with a certificate for 127.0.0.1 issued by a fresh test CA, and one declared topic
/// (so the start-up work, which goes through the API, runs over HTTPS too).
fn start_tls() -> TlsServer {
    let pki = pki::test_pki();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("server.pem");
    let key = dir.path().join("server.key");
    let ca_path = dir.path().join("ca.pem");
    std::fs::write(&cert, &pki.server_cert_pem).unwrap();
    std::fs::write(&key, &pki.server_key_pem).unwrap();
    std::fs::write(&ca_path, &pki.ca_pem).unwrap();
    let config = format!(
        "[server]\ntls_cert = {:?}\ntls_key = {:?}\n\n[[topics]]\nname = \"tls_declared\"\n",
        cert.display().to_string(),
        key.display().to_string()
    );
    let mut server = Server::start_with_config(&config);
    server.ca_cert_pem = Some(pki.ca_pem.into_bytes());
    TlsServer {
        server,
        ca_path,
        _dir: dir,
    }
}

fn aksk() -> Credentials {
    Credentials::AkSk {
        access_key: ADMIN_AK.into(),
        secret_key: ADMIN_SK.into(),
    }
}

fn cli(url: &str, args: &[&str], env: &[(&str, &str)]) -> std::process::Output {
    let mut cmd = Command::new(common::bin());
    cmd.args(args)
        .env("TRAILWATCH_ENDPOINT", url)
        .env("TRAILWATCH_AK", ADMIN_AK)
        .env("TRAILWATCH_SK", ADMIN_SK)
        .env_remove("TRAILWATCH_USER")
        .env_remove("TRAILWATCH_PASSWORD")
        .env_remove("TRAILWATCH_PROFILE")
        .env_remove("TRAILWATCH_CA_CERT")
        .env("HOME", "/nonexistent-home");
    for (k, v) in env {
        cmd.env(k, v);
    }
    cmd.output().unwrap()
}

/// What a plain-HTTP client gets from `addr`: the first bytes of the answer, if any.
fn plain_http_get(addr: &str) -> String {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    let _ = write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    );
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    String::from_utf8_lossy(&buf).into_owned()
}

#[tokio::test]
async fn https_ingest_and_query_with_the_ca_trusted() {
    let t = start_tls();
    let url = t.server.url.clone();
    assert!(url.starts_with("https://127.0.0.1:"), "{url}");

    // The declared topic was created through the API over HTTPS at start.
    let admin = t.server.admin().await;
    let topics = admin
        .raw(
            reqwest::Method::GET,
            &format!("/v2/{}/notifications/topics", admin.project_id()),
            "",
            None,
            true,
        )
        .await
        .unwrap();
    assert!(
        topics.body.to_string().contains("tls_declared"),
        "{}",
        topics.body
    );

    let r = admin
        .put_traces(&[login_trace("alice", "198.51.100.7", 1_731_161_042_000)])
        .await
        .unwrap();
    assert!(r.status.is_success(), "{}", r.body);
    let page = admin
        .list_traces(&[("user", "alice".into())])
        .await
        .unwrap();
    assert_eq!(page["traces"].as_array().unwrap().len(), 1, "{page}");

    // A password login over HTTPS.
    let by_password = t.server.admin_password().await;
    let page = by_password.list_traces(&[]).await.unwrap();
    assert_eq!(page["traces"].as_array().unwrap().len(), 1, "{page}");

    // The CLI with --ca-cert, and with TRAILWATCH_CA_CERT.
    let ca = t.ca_path.to_str().unwrap();
    let out = cli(
        &url,
        &["traces", "list", "--endpoint", &url, "--ca-cert", ca],
        &[],
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.contains("198.51.100.7"), "{stdout}");
    let out = cli(&url, &["traces", "list"], &[("TRAILWATCH_CA_CERT", ca)]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(String::from_utf8_lossy(&out.stdout).contains("198.51.100.7"));

    // Without the CA the CLI refuses the server's certificate.
    let out = cli(&url, &["traces", "list"], &[]);
    assert!(!out.status.success());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("connecting to https://"), "{stderr}");
}

#[tokio::test]
async fn plain_http_and_untrusting_clients_fail_and_others_keep_working() {
    let t = start_tls();
    let addr = t.server.url.trim_start_matches("https://").to_owned();

    // Plain HTTP to the TLS port gets no HTTP answer.
    let answer = plain_http_get(&addr);
    assert!(!answer.starts_with("HTTP/"), "{answer:?}");
    let http_url = format!("http://{addr}/healthz");
    let plain = reqwest::Client::new().get(&http_url).send().await;
    assert!(plain.is_err(), "{plain:?}");

    // A client that does not trust the certificate fails to connect.
    let untrusting = Client::connect(ClientConfig {
        endpoint: t.server.url.clone(),
        credentials: aksk(),
        project: "default".into(),
        domain: "default".into(),
        ca_cert_pem: None,
    })
    .await;
    let err = untrusting.unwrap_err().to_string();
    assert!(err.contains("cannot reach"), "{err}");
    // Trusting some other CA is no better.
    let other = pki::test_pki();
    let wrong_ca = Client::connect(ClientConfig {
        endpoint: t.server.url.clone(),
        credentials: aksk(),
        project: "default".into(),
        domain: "default".into(),
        ca_cert_pem: Some(other.ca_pem.into_bytes()),
    })
    .await;
    assert!(wrong_ca.is_err());

    // A client that opens a connection and never says anything does not hold up the others.
    let _silent = std::net::TcpStream::connect(&addr).unwrap();

    // The failed handshakes did not disturb anyone else.
    let admin = t.server.admin().await;
    let page = admin.list_traces(&[]).await.unwrap();
    assert!(page["traces"].as_array().unwrap().is_empty(), "{page}");
    let health = reqwest::Client::builder()
        .tls_certs_only(
            reqwest::Certificate::from_pem_bundle(t.server.ca_cert_pem.as_ref().unwrap()).unwrap(),
        )
        .build()
        .unwrap()
        .get(format!("{}/healthz", t.server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(health.status(), 200);
    // ... and were not logged as errors.
    let stderr = t.server.stderr();
    assert!(!stderr.contains("ERROR"), "{stderr}");
}

#[test]
fn sigterm_stops_a_tls_server_gracefully() {
    let mut t = start_tls();
    let pid = t.server.child.id().to_string();
    let status = Command::new("kill").args(["-TERM", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    let exit = loop {
        if let Some(s) = t.server.child.try_wait().unwrap() {
            break s;
        }
        assert!(Instant::now() < deadline, "no exit 30 s after SIGTERM");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(exit.success(), "{exit:?}\n{}", t.server.stderr());
    assert!(t.server.stderr().contains("trailwatch stopped"));
}

/// Runs `serve` with `args` and waits for it to exit (it must, within 30 s): status and stderr.
fn serve_expecting_exit(args: &[&str]) -> (std::process::ExitStatus, String) {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(common::bin())
        .arg("serve")
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .args(args)
        .env_remove("TRAILWATCH_CONFIG")
        .env("TRAILWATCH_ADMIN_PASSWORD", common::ADMIN_PASSWORD)
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if child.try_wait().unwrap().is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("serve {args:?} kept running");
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().unwrap();
    (
        out.status,
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

#[test]
fn plain_http_off_loopback_refuses_to_start_unless_allowed() {
    let (status, stderr) = serve_expecting_exit(&["--listen", "0.0.0.0:0"]);
    assert!(!status.success());
    assert!(
        stderr.contains("refusing to serve plain HTTP") && stderr.contains("allow_plain_http"),
        "{stderr}"
    );

    // The same in a configuration file, and allowed there.
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("tw.toml");
    std::fs::write(&config, "[server]\nlisten = \"0.0.0.0:0\"\n").unwrap();
    let (status, stderr) = serve_expecting_exit(&["--config", config.to_str().unwrap()]);
    assert!(!status.success());
    assert!(stderr.contains("allow_plain_http"), "{stderr}");

    std::fs::write(
        &config,
        "[server]\nlisten = \"0.0.0.0:0\"\nallow_plain_http = true\n",
    )
    .unwrap();
    let mut child = Command::new(common::bin())
        .args(["serve", "--config", config.to_str().unwrap(), "--data-dir"])
        .arg(dir.path().join("data"))
        .env("TRAILWATCH_ADMIN_PASSWORD", common::ADMIN_PASSWORD)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut first = String::new();
    let mut out = child.stdout.take().unwrap();
    let mut byte = [0u8; 1];
    while out.read(&mut byte).unwrap_or(0) == 1 && byte[0] != b'\n' {
        first.push(byte[0] as char);
    }
    let _ = child.kill();
    let _ = child.wait();
    assert!(
        first.starts_with("listening on http://0.0.0.0:"),
        "{first:?}"
    );
}

#[test]
fn unreadable_or_wrong_tls_files_are_clear_startup_errors() {
    let pki = pki::test_pki();
    let dir = tempfile::tempdir().unwrap();
    let cert = dir.path().join("server.pem");
    let key = dir.path().join("server.key");
    std::fs::write(&cert, &pki.server_cert_pem).unwrap();
    std::fs::write(&key, &pki.server_key_pem).unwrap();
    let (c, k) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let missing = dir.path().join("missing.pem");

    let (status, stderr) = serve_expecting_exit(&[
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        missing.to_str().unwrap(),
        "--tls-key",
        k,
    ]);
    assert!(!status.success());
    assert!(
        stderr.contains("tls_cert") && stderr.contains("cannot read"),
        "{stderr}"
    );
    // Cert and key swapped: neither file holds what it should.
    let (status, stderr) =
        serve_expecting_exit(&["--listen", "127.0.0.1:0", "--tls-cert", k, "--tls-key", c]);
    assert!(!status.success());
    assert!(
        stderr.contains("tls_cert") && stderr.contains("no certificate"),
        "{stderr}"
    );
    // The key file is never echoed.
    assert!(!stderr.contains("PRIVATE KEY-----\n"), "{stderr}");
    let (status, stderr) =
        serve_expecting_exit(&["--listen", "127.0.0.1:0", "--tls-cert", c, "--tls-key", c]);
    assert!(!status.success());
    assert!(
        stderr.contains("tls_key") && stderr.contains("no private key"),
        "{stderr}"
    );
    // A key that does not belong to the certificate.
    let other = pki::test_pki();
    let other_key = dir.path().join("other.key");
    std::fs::write(&other_key, &other.server_key_pem).unwrap();
    let (status, stderr) = serve_expecting_exit(&[
        "--listen",
        "127.0.0.1:0",
        "--tls-cert",
        c,
        "--tls-key",
        other_key.to_str().unwrap(),
    ]);
    assert!(!status.success());
    assert!(stderr.contains("tls_cert and tls_key"), "{stderr}");
}
