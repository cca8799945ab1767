//! Planted secrets (docs/security.md, invariant 7, end to end): the real binary is started with
//! distinctive secret values — the administrator's password and AK/SK, an SMTP password, a
//! function's encrypted user data — and more are made at run time (a created credential's SK,
//! tokens). The test then drives the APIs through their good and failing paths (wrong passwords,
//! bad signatures with the real AK, forged and revoked tokens, invalid bodies, function get and
//! list, a Python function whose code fails, an SMTP delivery that fails, `config check`),
//! captures every response's status, headers and body and the server's stdout and stderr at
//! `debug`, and checks that no planted value appears anywhere — except where handing the
//! secret out is the point of the call (listed in `ALLOWED`).
#![allow(clippy::unwrap_used)]

mod common;

use common::fgs::zip_b64;

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use base64::Engine as _;
use reqwest::Method;
use serde_json::{Value, json};
use trailwatch_client::{Client, ClientConfig, Credentials};

const ADMIN_PASSWORD: &str = "Planted-AdminPw-4b7e19c2";
const ADMIN_AK: &str = "PLANTEDAK4B7E19C20001";
const ADMIN_SK: &str = "planted-admin-sk-4b7e19c2d8a35f60";
const SMTP_PASSWORD: &str = "planted-smtp-pw-4b7e19c2";
const USER_DATA_SECRET: &str = "planted-userdata-4b7e19c2";
/// Sent as a malformed `encrypted_user_data` (not JSON): refused, and must not be echoed.
const BAD_USER_DATA_SECRET: &str = "planted-baduserdata-4b7e19c2";
const USER_PASSWORD: &str = "Planted-UserPw-4b7e19c2";
/// Typed by mistake: a wrong password is as secret as a right one.
const WRONG_PASSWORD: &str = "Planted-WrongPw-4b7e19c2";
const WRONG_SK: &str = "planted-wrong-sk-4b7e19c2d8a35f60";
/// Shorter than the policy's 8 characters: refused, and must not be echoed.
const WEAK_PASSWORD: &str = "pl4ntwk";

/// The calls whose purpose is to hand out a secret, and the one secret each may contain:
/// - the credential-create response body carries the new SK (shown once, as IAM does);
/// - the login response's `X-Subject-Token` header carries the new token.
///
/// Nothing else may contain any planted value, and these may contain no other.
const ALLOWED: &[(&str, &str)] = &[
    ("create credential (body)", "credential SK"),
    ("login (header x-subject-token)", "token"),
    ("login as user (header x-subject-token)", "user token"),
];

/// One captured text: where it came from and what it says.
struct Captured {
    label: String,
    text: String,
}

#[derive(Default)]
struct Recorder {
    captured: Vec<Captured>,
}

impl Recorder {
    fn add(&mut self, label: &str, text: String) {
        self.captured.push(Captured {
            label: label.to_owned(),
            text,
        });
    }

    /// Records a response: its headers one by one (so that a single header can be allowed) and
    /// its body. Returns (status, the `x-subject-token` header if any, the body as JSON or Null).
    async fn response(
        &mut self,
        label: &str,
        r: reqwest::Response,
    ) -> (u16, Option<String>, Value) {
        let status = r.status().as_u16();
        let mut subject = None;
        for (name, value) in r.headers() {
            let v = String::from_utf8_lossy(value.as_bytes()).into_owned();
            if name.as_str() == "x-subject-token" {
                subject = Some(v.clone());
                self.add(&format!("{label} (header x-subject-token)"), v);
            } else {
                self.add(&format!("{label} (headers)"), format!("{name}: {v}"));
            }
        }
        let body = r.text().await.unwrap();
        self.add(&format!("{label} (body)"), body.clone());
        (
            status,
            subject,
            serde_json::from_str(&body).unwrap_or(Value::Null),
        )
    }

    fn raw(&mut self, label: &str, r: &trailwatch_client::RawResponse) {
        for (name, value) in &r.headers {
            let v = String::from_utf8_lossy(value.as_bytes());
            self.add(&format!("{label} (headers)"), format!("{name}: {v}"));
        }
        self.add(&format!("{label} (body)"), r.body.to_string());
    }
}

struct Running {
    child: Child,
    url: String,
    stdout: Arc<Mutex<String>>,
    stderr_path: PathBuf,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(data_dir: &Path, config: Option<&Path>, env: &[(&str, &str)]) -> Running {
    let stderr_path = data_dir.with_extension("stderr.log");
    let mut cmd = Command::new(common::bin());
    cmd.args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir);
    if let Some(c) = config {
        cmd.arg("--config").arg(c);
    }
    for name in [
        "TRAILWATCH_ADMIN_PASSWORD",
        "TRAILWATCH_ADMIN_AK",
        "TRAILWATCH_ADMIN_SK",
        "TRAILWATCH_SMTP_PASSWORD",
        "TRAILWATCH_CONFIG",
    ] {
        cmd.env_remove(name);
    }
    cmd.env("TRAILWATCH_LOG", "debug")
        .env("RUST_LOG", "debug")
        .stdout(Stdio::piped())
        .stderr(std::fs::File::create(&stderr_path).unwrap());
    for (k, v) in env {
        cmd.env(k, v);
    }
    let mut child = cmd.spawn().unwrap();
    let stdout = Arc::new(Mutex::new(String::new()));
    let (tx, rx) = std::sync::mpsc::channel();
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    let sink = stdout.clone();
    std::thread::spawn(move || {
        for line in lines.map_while(Result::ok) {
            sink.lock().unwrap().push_str(&line);
            sink.lock().unwrap().push('\n');
            if let Some(url) = line.strip_prefix("listening on ") {
                let _ = tx.send(url.trim().to_owned());
            }
        }
    });
    let url = rx
        .recv_timeout(Duration::from_secs(30))
        .unwrap_or_else(|_| {
            panic!(
                "server did not start; stderr:\n{}",
                std::fs::read_to_string(&stderr_path).unwrap_or_default()
            )
        });
    // `listening on` is printed before the store opens: wait until the server answers.
    let addr = url.trim_start_matches("http://").to_owned();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if healthy(&addr) {
            break;
        }
        assert!(Instant::now() < deadline, "server never became healthy");
        std::thread::sleep(Duration::from_millis(50));
    }
    Running {
        child,
        url,
        stdout,
        stderr_path,
    }
}

fn healthy(addr: &str) -> bool {
    use std::io::Read as _;
    let Ok(mut s) = std::net::TcpStream::connect(addr) else {
        return false;
    };
    let _ = s.set_read_timeout(Some(Duration::from_secs(2)));
    if write!(
        s,
        "GET /healthz HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .is_err()
    {
        return false;
    }
    let mut buf = String::new();
    let _ = s.read_to_string(&mut buf);
    buf.starts_with("HTTP/1.1 200")
}

/// SIGTERM and wait, so that shutdown logging is captured too.
fn stop(r: &mut Running) {
    let _ = Command::new("kill")
        .args(["-TERM", &r.child.id().to_string()])
        .status();
    let deadline = Instant::now() + Duration::from_secs(30);
    while r.child.try_wait().unwrap().is_none() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(50));
    }
    // The stdout reader ends with the process.
    std::thread::sleep(Duration::from_millis(100));
}

fn login_body(user: &str, password: &str) -> String {
    json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
        "name": user, "password": password, "domain": {"name": "default"}}}},
        "scope": {"project": {"name": "default"}}}})
    .to_string()
}

async fn signed(url: &str, ak: &str, sk: &str) -> Result<Client, trailwatch_client::ClientError> {
    Client::connect(ClientConfig {
        endpoint: url.to_owned(),
        credentials: Credentials::AkSk {
            access_key: ak.into(),
            secret_key: sk.into(),
        },
        project: "default".into(),
        domain: "default".into(),
        ca_cert_pem: None,
    })
    .await
}

/// An SMTP relay that offers AUTH, records every line it is sent and refuses the login (535):
/// proof that the SMTP password really left the server, and for the place it went.
fn fake_smtp_relay() -> (u16, Arc<Mutex<Vec<String>>>) {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let seen = Arc::new(Mutex::new(Vec::new()));
    let lines = seen.clone();
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            let Ok(mut out) = stream else { continue };
            let lines = lines.clone();
            std::thread::spawn(move || {
                let _ = out.set_read_timeout(Some(Duration::from_secs(10)));
                let Ok(input) = out.try_clone() else { return };
                let _ = out.write_all(b"220 fake.relay ESMTP\r\n");
                for line in BufReader::new(input).lines() {
                    let Ok(line) = line else { return };
                    lines.lock().unwrap().push(line.clone());
                    let upper = line.to_ascii_uppercase();
                    let answer: &[u8] = if upper.starts_with("EHLO") {
                        b"250-fake.relay\r\n250 AUTH PLAIN LOGIN\r\n"
                    } else if upper.starts_with("AUTH LOGIN") {
                        b"334 VXNlcm5hbWU6\r\n"
                    } else if upper.starts_with("AUTH") || upper.starts_with("QUIT") {
                        b"535 5.7.8 authentication failed\r\n"
                    } else {
                        b"334 UGFzc3dvcmQ6\r\n"
                    };
                    if out.write_all(answer).is_err() {
                        return;
                    }
                }
            });
        }
    });
    (port, seen)
}

/// Every planted value found in any captured text, other than the allowed ones.
fn leaks(captured: &[Captured], planted: &[(&str, String)]) -> Vec<String> {
    let mut found = Vec::new();
    for c in captured {
        for (name, value) in planted {
            if value.is_empty() || !c.text.contains(value.as_str()) {
                continue;
            }
            // A token's signature part is allowed where the whole token is.
            if ALLOWED
                .iter()
                .any(|(label, allowed)| c.label == *label && name.starts_with(allowed))
            {
                continue;
            }
            let at = c.text.find(value.as_str()).unwrap_or(0);
            let from = c.text[..at]
                .char_indices()
                .rev()
                .nth(120)
                .map_or(0, |(i, _)| i);
            found.push(format!(
                "{name} in {}: …{}…",
                c.label,
                &c.text[from..(at + value.len()).min(c.text.len())]
            ));
        }
    }
    found
}

#[tokio::test]
async fn planted_secrets_never_appear_in_answers_or_logs() {
    let tmp = tempfile::tempdir().unwrap();
    // An SMTP relay that refuses the login: the confirmation email fails, and is retried.
    let (smtp_port, smtp_lines) = fake_smtp_relay();
    let config = tmp.path().join("trailwatch.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\n[notify.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\n\
             security = \"none\"\nusername = \"alerts\"\nfrom = \"trailwatch@example.com\"\n"
        ),
    )
    .unwrap();
    let data_dir = tmp.path().join("data");
    let mut server = spawn(
        &data_dir,
        Some(&config),
        &[
            ("TRAILWATCH_ADMIN_PASSWORD", ADMIN_PASSWORD),
            ("TRAILWATCH_ADMIN_AK", ADMIN_AK),
            ("TRAILWATCH_ADMIN_SK", ADMIN_SK),
            ("TRAILWATCH_SMTP_PASSWORD", SMTP_PASSWORD),
        ],
    );
    let url = server.url.clone();
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(30))
        .build()
        .unwrap();
    let mut rec = Recorder::default();

    // --- Logins: right, wrong (twice: five would lock the user), malformed.
    let r = http
        .post(format!("{url}/v3/auth/tokens"))
        .body(login_body("admin", ADMIN_PASSWORD))
        .send()
        .await
        .unwrap();
    let (status, token, body) = rec.response("login", r).await;
    assert_eq!(status, 201, "{body}");
    let token = token.unwrap();
    let pid = body["token"]["project"]["id"].as_str().unwrap().to_owned();
    for i in 0..2 {
        let r = http
            .post(format!("{url}/v3/auth/tokens"))
            .body(login_body("admin", WRONG_PASSWORD))
            .send()
            .await
            .unwrap();
        let (status, subject, _) = rec.response(&format!("wrong password {i}"), r).await;
        assert_eq!(status, 401);
        assert!(subject.is_none());
    }
    let truncated = login_body("admin", ADMIN_PASSWORD);
    let r = http
        .post(format!("{url}/v3/auth/tokens"))
        .body(truncated[..truncated.len() - 3].to_owned())
        .send()
        .await
        .unwrap();
    assert_eq!(rec.response("truncated login body", r).await.0, 400);
    let r = http
        .post(format!("{url}/v3/auth/tokens"))
        .body(
            json!({"auth": {"identity": {"methods": ["password"], "password": {"user": {
                "name": "admin", "password": [ADMIN_PASSWORD], "domain": {"name": "default"}}}}}})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(rec.response("password of the wrong type", r).await.0, 400);

    // --- Tokens: good, forged, tampered, bogus.
    let traces = format!("{url}/v3/{pid}/traces");
    let r = http
        .get(&traces)
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(rec.response("traces with the token", r).await.0, 200);
    let mut tampered = token.clone();
    let last = tampered.pop().unwrap();
    tampered.push(if last == 'A' { 'B' } else { 'A' });
    for (label, bad) in [
        ("tampered token", tampered.as_str()),
        ("bogus token", "tw1.bm90LWEtdG9rZW4.AAAA"),
        ("garbage token", "not a token at all"),
    ] {
        let r = http
            .get(&traces)
            .header("X-Auth-Token", bad)
            .send()
            .await
            .unwrap();
        assert_eq!(rec.response(label, r).await.0, 401, "{label}");
    }

    // --- AK/SK: good, wrong SK with the real AK (twice: five would lock it), missing date.
    let admin = signed(&url, ADMIN_AK, ADMIN_SK).await.unwrap();
    let r = admin
        .raw(Method::GET, &format!("/v3/{pid}/traces"), "", None, true)
        .await
        .unwrap();
    rec.raw("signed traces", &r);
    assert_eq!(r.status, 200, "{}", r.body);
    for i in 0..2 {
        let err = signed(&url, ADMIN_AK, WRONG_SK).await.unwrap_err();
        rec.add(
            &format!("bad signature {i} (client error)"),
            err.to_string(),
        );
        assert_eq!(err.status().map(|s| s.as_u16()), Some(401), "{err}");
    }
    let r = http
        .get(&traces)
        .header(
            "Authorization",
            format!(
                "SDK-HMAC-SHA256 Access={ADMIN_AK}, SignedHeaders=host, Signature={}",
                "0".repeat(64)
            ),
        )
        .send()
        .await
        .unwrap();
    assert_eq!(rec.response("signature without date", r).await.0, 401);

    // --- IAM: a user (a weak password refused, a good one), its credential, its login.
    let r = admin
        .raw(
            Method::POST,
            "/v3/users",
            "",
            Some(
                json!({"user": {"name": "weak", "password": WEAK_PASSWORD}})
                    .to_string()
                    .into_bytes(),
            ),
            true,
        )
        .await
        .unwrap();
    rec.raw("weak password user", &r);
    assert_eq!(r.status, 400, "{}", r.body);
    let r = admin
        .raw(
            Method::POST,
            "/v3/users",
            "",
            Some(
                json!({"user": {"name": "carol", "password": USER_PASSWORD}})
                    .to_string()
                    .into_bytes(),
            ),
            true,
        )
        .await
        .unwrap();
    rec.raw("create user", &r);
    assert_eq!(r.status, 201, "{}", r.body);
    let r = http
        .post(format!("{url}/v3/auth/tokens"))
        .body(login_body("carol", USER_PASSWORD))
        .send()
        .await
        .unwrap();
    let (status, user_token, _) = rec.response("login as user", r).await;
    assert_eq!(status, 201);
    let user_token = user_token.unwrap();
    let r = http
        .post(format!("{url}/v3.0/OS-CREDENTIAL/credentials"))
        .header("X-Auth-Token", &user_token)
        .body(json!({"credential": {"description": "planted"}}).to_string())
        .send()
        .await
        .unwrap();
    let (status, _, cred) = rec.response("create credential", r).await;
    assert_eq!(status, 201, "{cred}");
    let new_ak = cred["credential"]["access"].as_str().unwrap().to_owned();
    let new_sk = cred["credential"]["secret"].as_str().unwrap().to_owned();
    assert!(new_sk.len() >= 16, "{cred}");
    let r = http
        .post(format!("{url}/v3.0/OS-CREDENTIAL/credentials"))
        .header("X-Auth-Token", &user_token)
        .body("{\"credential\": ")
        .send()
        .await
        .unwrap();
    assert_eq!(rec.response("credential invalid body", r).await.0, 400);
    for (label, path) in [(
        "list credentials",
        "/v3.0/OS-CREDENTIAL/credentials".to_owned(),
    )] {
        let r = http
            .get(format!("{url}{path}"))
            .header("X-Auth-Token", &user_token)
            .send()
            .await
            .unwrap();
        let (status, _, body) = rec.response(label, r).await;
        assert_eq!(status, 200, "{label}: {body}");
    }
    let carol = signed(&url, &new_ak, &new_sk).await.unwrap();
    let r = carol
        .raw(Method::GET, "/v3/auth/projects", "", None, true)
        .await
        .unwrap();
    rec.raw("signed with the new credential", &r);
    assert_eq!(r.status, 200, "{}", r.body);
    let err = signed(&url, &new_ak, WRONG_SK).await.unwrap_err();
    rec.add("new AK, wrong SK (client error)", err.to_string());
    // Revoke the user's token, then try it.
    let r = http
        .delete(format!("{url}/v3/auth/tokens"))
        .header("X-Auth-Token", &token)
        .header("X-Subject-Token", &user_token)
        .send()
        .await
        .unwrap();
    assert_eq!(rec.response("revoke token", r).await.0, 204);
    let r = http
        .get(format!("{url}/v3.0/OS-CREDENTIAL/credentials"))
        .header("X-Auth-Token", &user_token)
        .send()
        .await
        .unwrap();
    assert_eq!(rec.response("revoked token", r).await.0, 401);

    // --- FunctionGraph: encrypted user data, get, list, a malformed update, a failing run.
    let fgs = format!("{url}/v2/{pid}/fgs/functions");
    let failing =
        "def handler(event, context):\n    raise RuntimeError('the handler failed on purpose')\n";
    let r = http
        .post(&fgs)
        .header("X-Auth-Token", &token)
        .body(
            json!({"func_name": "leaky", "package": "default", "runtime": "Python3.11",
                   "handler": "index.handler", "memory_size": 128, "timeout": 10,
                   "code_type": "zip", "func_code": {"file": zip_b64(&[("index.py", failing)])},
                   "encrypted_user_data": json!({"DB_PASSWORD": USER_DATA_SECRET}).to_string()})
            .to_string(),
        )
        .send()
        .await
        .unwrap();
    let (status, _, body) = rec.response("create function", r).await;
    assert_eq!(status, 201, "{body}");
    let mut function_calls = vec![
        (
            "get function config",
            Method::GET,
            format!("{fgs}/leaky/config"),
            None,
        ),
        ("list functions", Method::GET, fgs.clone(), None),
        (
            "update function with bad user data",
            Method::PUT,
            format!("{fgs}/leaky/config"),
            Some(json!({"encrypted_user_data": format!("{{not json {BAD_USER_DATA_SECRET}")})),
        ),
        (
            "update function with a non-string user data",
            Method::PUT,
            format!("{fgs}/leaky/config"),
            Some(json!({"encrypted_user_data": {"DB_PASSWORD": BAD_USER_DATA_SECRET}})),
        ),
    ];
    function_calls.push((
        "get function config again",
        Method::GET,
        format!("{fgs}/leaky/config"),
        None,
    ));
    for (label, method, target, body) in function_calls {
        let mut req = http.request(method, &target).header("X-Auth-Token", &token);
        if let Some(b) = body {
            req = req.body(b.to_string());
        }
        let (status, _, body) = rec.response(label, req.send().await.unwrap()).await;
        if label.starts_with("update") {
            assert!((400..500).contains(&status), "{label}: {status} {body}");
        } else {
            assert_eq!(status, 200, "{label}: {body}");
        }
    }
    let r = http
        .post(format!("{fgs}/leaky/invocations"))
        .header("X-Auth-Token", &token)
        .header("X-Cff-Log-Type", "tail")
        .body(json!({"key": "value"}).to_string())
        .send()
        .await
        .unwrap();
    let (_, _, body) = rec.response("invoke failing function", r).await;
    assert!(
        body.to_string().contains("the handler failed on purpose")
            || rec.captured.iter().any(|c| {
                c.label.starts_with("invoke failing function")
                    && c.text.contains("the handler failed on purpose")
            })
            || body.to_string().contains("RuntimeError"),
        "the failure itself is reported: {body}"
    );
    let r = http
        .get(format!("{fgs}/leaky/invocations"))
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap();
    rec.response("list invocations", r).await;

    // --- SMN: an email subscription, whose confirmation fails at the missing relay.
    let r = admin
        .raw(
            Method::POST,
            &format!("/v2/{pid}/notifications/topics"),
            "",
            Some(
                json!({"name": "planted", "display_name": "x"})
                    .to_string()
                    .into_bytes(),
            ),
            true,
        )
        .await
        .unwrap();
    rec.raw("create topic", &r);
    assert!(r.status.is_success(), "{}", r.body);
    let urn = r.body["topic_urn"].as_str().unwrap().to_owned();
    let r = admin
        .raw(
            Method::POST,
            &format!("/v2/{pid}/notifications/topics/{urn}/subscriptions"),
            "",
            Some(
                json!({"protocol": "email", "endpoint": "ops@example.com", "remark": "x"})
                    .to_string()
                    .into_bytes(),
            ),
            true,
        )
        .await
        .unwrap();
    rec.raw("subscribe email", &r);
    assert!(r.status.is_success(), "{}", r.body);
    // The outbox tries the relay with the SMTP password, and fails.
    let deadline = Instant::now() + Duration::from_secs(20);
    let sent_password = || {
        smtp_lines.lock().unwrap().iter().any(|l| {
            let b64 = l.rsplit(' ').next().unwrap_or("");
            let decoded = base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap_or_default();
            String::from_utf8_lossy(&decoded).contains(SMTP_PASSWORD)
        })
    };
    while !sent_password() {
        assert!(
            Instant::now() < deadline,
            "the SMTP password never reached the relay: {:?}",
            smtp_lines.lock().unwrap()
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    // What the server recorded about the failed attempts, through the API.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let r = admin
        .raw(
            Method::GET,
            &format!("/v2/{pid}/notifications/dead-letters"),
            "",
            None,
            true,
        )
        .await
        .unwrap();
    rec.raw("dead letters", &r);

    // --- `config check` with the secrets in the environment.
    for (label, text) in [
        ("config check", std::fs::read_to_string(&config).unwrap()),
        (
            "config check (bad)",
            "[notify.smtp]\nhost = \"127.0.0.1\"\npassword = \"x\"\n".to_owned(),
        ),
    ] {
        let file = tmp.path().join("check.toml");
        std::fs::write(&file, text).unwrap();
        let out = Command::new(common::bin())
            .args(["config", "check"])
            .arg(&file)
            .env("TRAILWATCH_SMTP_PASSWORD", SMTP_PASSWORD)
            .env("TRAILWATCH_ADMIN_PASSWORD", ADMIN_PASSWORD)
            .env("TRAILWATCH_ADMIN_SK", ADMIN_SK)
            .env("TRAILWATCH_LOG", "debug")
            .output()
            .unwrap();
        rec.add(
            label,
            format!(
                "{}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            ),
        );
    }

    // --- Everything the server wrote.
    stop(&mut server);
    let stderr = std::fs::read_to_string(&server.stderr_path).unwrap();
    let stdout = server.stdout.lock().unwrap().clone();
    // The capture is real: requests were logged at debug, the failing paths were reached.
    assert!(stderr.contains("DEBUG"), "debug logging is on:\n{stderr}");
    assert!(stderr.contains("trailwatch stopped"), "{stderr}");
    assert!(stdout.contains("listening on"), "{stdout}");
    rec.add("server stderr", stderr);
    rec.add("server stdout", stdout);

    let token_mac = token.rsplit('.').next().unwrap().to_owned();
    let user_token_mac = user_token.rsplit('.').next().unwrap().to_owned();
    let planted: Vec<(&str, String)> = vec![
        ("admin password", ADMIN_PASSWORD.into()),
        ("admin SK", ADMIN_SK.into()),
        ("SMTP password", SMTP_PASSWORD.into()),
        (
            "SMTP password as sent (AUTH PLAIN)",
            base64::engine::general_purpose::STANDARD.encode(format!("\0alerts\0{SMTP_PASSWORD}")),
        ),
        ("encrypted user data", USER_DATA_SECRET.into()),
        ("malformed encrypted user data", BAD_USER_DATA_SECRET.into()),
        ("user password", USER_PASSWORD.into()),
        ("wrong password", WRONG_PASSWORD.into()),
        ("wrong SK", WRONG_SK.into()),
        ("weak password", WEAK_PASSWORD.into()),
        ("credential SK", new_sk.clone()),
        ("token", token.clone()),
        ("token (signature part)", token_mac),
        ("user token", user_token.clone()),
        ("user token (signature part)", user_token_mac),
    ];
    // The test can see what it looks for: the allowed places do hold their secret.
    for (label, name) in ALLOWED {
        let value = &planted.iter().find(|(n, _)| n == name).unwrap().1;
        assert!(
            rec.captured
                .iter()
                .any(|c| c.label == *label && c.text.contains(value.as_str())),
            "{label} should carry the {name}"
        );
    }
    let found = leaks(&rec.captured, &planted);
    assert!(
        found.is_empty(),
        "planted secrets leaked:\n{}",
        found.join("\n")
    );
}

#[test]
fn generated_bootstrap_credentials_stay_in_their_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data_dir = tmp.path().join("data");
    let mut server = spawn(&data_dir, None, &[]);
    let path = data_dir.join("initial-credentials");
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e}\n{}",
            path.display(),
            std::fs::read_to_string(&server.stderr_path).unwrap_or_default()
        )
    });
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "{mode:o}");
    }
    let values: Vec<(String, String)> = text
        .lines()
        .filter_map(|l| l.split_once(" = "))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().trim_matches('"').to_owned()))
        .collect();
    let names: Vec<&str> = values.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        names,
        ["admin_password", "admin_access_key", "admin_secret_key"],
        "{text}"
    );
    // Use them, wrongly and rightly, so that there is something to log.
    let rt = tokio::runtime::Runtime::new().unwrap();
    rt.block_on(async {
        let ok = signed(&server.url, &values[1].1, &values[2].1).await;
        assert!(ok.is_ok(), "{:?}", ok.err());
        let r = reqwest::Client::new()
            .post(format!("{}/v3/auth/tokens", server.url))
            .body(login_body("admin", &values[0].1))
            .send()
            .await
            .unwrap();
        assert_eq!(r.status(), 201);
    });
    stop(&mut server);
    let stderr = std::fs::read_to_string(&server.stderr_path).unwrap();
    let stdout = server.stdout.lock().unwrap().clone();
    assert!(
        stderr.contains("initial-credentials"),
        "the log says where they are:\n{stderr}"
    );
    for (name, value) in [&values[0], &values[2]] {
        assert!(
            !stderr.contains(value.as_str()) && !stdout.contains(value.as_str()),
            "{name} from the 0600 file was echoed to the log:\n{stderr}\n{stdout}"
        );
    }
}
