//! Authentication and project scoping through the real server: tokens, AK/SK signatures,
//! cross-project access, lockouts, users and credentials.
#![allow(clippy::unwrap_used)]

mod common;

use common::{ADMIN_AK, ADMIN_PASSWORD, ADMIN_SK, Server, login_trace};
use reqwest::Method;
use serde_json::{Value, json};
use trailwatch_client::Credentials;
use trailwatch_iam::signing::{self, SignableRequest};

fn token_request(user: &str, password: &str, project: Option<&str>) -> Value {
    let mut body = json!({"auth": {"identity": {"methods": ["password"],
        "password": {"user": {"name": user, "password": password, "domain": {"name": "default"}}}}}});
    if let Some(p) = project {
        body["auth"]["scope"] = json!({"project": {"name": p}});
    }
    body
}

async fn issue_token(
    server: &Server,
    user: &str,
    password: &str,
    project: Option<&str>,
) -> reqwest::Response {
    server
        .http()
        .post(format!("{}/v3/auth/tokens", server.url))
        .body(token_request(user, password, project).to_string())
        .send()
        .await
        .unwrap()
}

#[tokio::test]
async fn token_lifecycle() {
    let server = Server::start();
    let resp = issue_token(&server, "admin", ADMIN_PASSWORD, Some("default")).await;
    assert_eq!(resp.status(), 201);
    let token = resp.headers()["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let body: Value = resp.json().await.unwrap();
    let project_id = body["token"]["project"]["id"].as_str().unwrap().to_owned();
    assert_eq!(project_id.len(), 32);
    assert_eq!(body["token"]["user"]["name"], "admin");
    assert_eq!(body["token"]["methods"][0], "password");
    assert!(body["token"]["expires_at"].as_str().unwrap().ends_with('Z'));
    assert!(!body.to_string().contains(ADMIN_PASSWORD));

    let http = server.http();
    let traces_url = format!("{}/v3/{project_id}/traces", server.url);
    let ok = http
        .get(&traces_url)
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(ok.status(), 200);

    // Verify: GET /v3/auth/tokens with the subject token.
    let verify = http
        .get(format!("{}/v3/auth/tokens", server.url))
        .header("X-Auth-Token", &token)
        .header("X-Subject-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(verify.status(), 200);
    let v: Value = verify.json().await.unwrap();
    assert_eq!(v["token"]["project"]["id"], project_id.as_str());

    // A forged token (payload changed, MAC kept) is refused with the gateway shape.
    let mut parts: Vec<&str> = token.split('.').collect();
    let forged_payload = parts[1].replacen('e', "f", 1);
    parts[1] = &forged_payload;
    let forged = parts.join(".");
    let resp = http
        .get(&traces_url)
        .header("X-Auth-Token", &forged)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 401);
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error_code"], "APIGW.0301");
    assert!(e["request_id"].is_string());

    // Revoke, then the token no longer works.
    let revoke = http
        .delete(format!("{}/v3/auth/tokens", server.url))
        .header("X-Auth-Token", &token)
        .header("X-Subject-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(revoke.status(), 204);
    let after = http
        .get(&traces_url)
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(after.status(), 401);
    let e: Value = after.json().await.unwrap();
    assert!(e["error_msg"].as_str().unwrap().contains("revoked"), "{e}");
}

#[tokio::test]
async fn revocation_survives_a_restart() {
    let server = Server::start();
    let resp = issue_token(&server, "admin", ADMIN_PASSWORD, Some("default")).await;
    let token = resp.headers()["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let http = server.http();
    let r = http
        .delete(format!("{}/v3/auth/tokens", server.url))
        .header("X-Auth-Token", &token)
        .header("X-Subject-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let server = server.restart_after_kill9();
    let r = server
        .http()
        .get(format!("{}/v3/auth/projects", server.url))
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
}

#[tokio::test]
async fn wrong_password_gets_iam_error_and_locks_after_five() {
    let server = Server::start();
    for _ in 0..5 {
        let resp = issue_token(&server, "admin", "wrong-password", Some("default")).await;
        assert_eq!(resp.status(), 401);
        let e: Value = resp.json().await.unwrap();
        assert_eq!(e["error"]["code"], 401);
        assert_eq!(e["error"]["title"], "Unauthorized");
    }
    // Locked now: even the right password is refused, and says why.
    let resp = issue_token(&server, "admin", ADMIN_PASSWORD, Some("default")).await;
    assert_eq!(resp.status(), 401);
    let e: Value = resp.json().await.unwrap();
    assert!(
        e["error"]["message"].as_str().unwrap().contains("locked"),
        "{e}"
    );
    // An unknown user is refused with the same words as a wrong password.
    let resp = issue_token(&server, "nobody", ADMIN_PASSWORD, None).await;
    let e: Value = resp.json().await.unwrap();
    assert_eq!(e["error"]["message"], "The username or password is wrong.");
}

/// A request to sign with an AK/SK, which the test may tamper with after signing.
struct Signed<'a> {
    method: &'a str,
    path: String,
    body: &'a str,
    ak: &'a str,
    sk: &'a str,
    date: chrono::DateTime<chrono::Utc>,
    tamper_body: Option<&'a str>,
    extra: Vec<(&'a str, &'a str)>,
}

impl<'a> Signed<'a> {
    fn new(method: &'a str, path: impl Into<String>) -> Self {
        Signed {
            method,
            path: path.into(),
            body: "",
            ak: ADMIN_AK,
            sk: ADMIN_SK,
            date: chrono::Utc::now(),
            tamper_body: None,
            extra: Vec::new(),
        }
    }

    async fn send(&self, server: &Server) -> (u16, Value) {
        let host = server.url.trim_start_matches("http://").to_owned();
        let mut headers: Vec<(String, String)> = vec![
            ("host".into(), host),
            ("x-sdk-date".into(), signing::format_sdk_date(self.date)),
            ("content-type".into(), "application/json".into()),
        ];
        for (k, v) in &self.extra {
            headers.push((k.to_string(), v.to_string()));
        }
        let (p, q) = self.path.split_once('?').unwrap_or((&self.path, ""));
        let req = SignableRequest {
            method: self.method,
            path: p,
            query: q,
            headers: &headers,
            body: self.body.as_bytes(),
        };
        let authorization = signing::sign(&req, self.ak, self.sk).unwrap();
        let mut builder = server
            .http()
            .request(
                self.method.parse().unwrap(),
                format!("{}{}", server.url, self.path),
            )
            .header("authorization", authorization);
        for (k, v) in &headers {
            builder = builder.header(k.as_str(), v.as_str());
        }
        let resp = builder
            .body(self.tamper_body.unwrap_or(self.body).to_owned())
            .send()
            .await
            .unwrap();
        let status = resp.status().as_u16();
        (status, resp.json().await.unwrap_or(Value::Null))
    }
}

#[tokio::test]
async fn aksk_signatures_are_checked_exactly() {
    let server = Server::start();
    let client = server.admin().await;
    let pid = client.project_id().to_owned();
    let path = format!("/v3/{pid}/traces");
    let body = json!({"traces": [login_trace("alice", "10.0.0.1", 1_731_161_042_113)]}).to_string();
    let now = chrono::Utc::now();

    let (s, b) = Signed {
        body: &body,
        ..Signed::new("POST", &path)
    }
    .send(&server)
    .await;
    assert_eq!(s, 201, "{b}");
    // Query strings are part of the signature (sorted canonical form).
    let (s, b) = Signed::new("GET", format!("{path}?user=alice&limit=5"))
        .send(&server)
        .await;
    assert_eq!(s, 200, "{b}");
    assert_eq!(b["traces"].as_array().unwrap().len(), 1);

    // A body changed after signing.
    let tampered = body.replace("alice", "mallory");
    let (s, b) = Signed {
        body: &body,
        tamper_body: Some(&tampered),
        ..Signed::new("POST", &path)
    }
    .send(&server)
    .await;
    assert_eq!(s, 401);
    assert_eq!(b["error_code"], "APIGW.0301");
    assert!(
        b["error_msg"]
            .as_str()
            .unwrap()
            .contains("verify aksk signature fail"),
        "{b}"
    );
    // The wrong secret key.
    let (s, _) = Signed {
        sk: "not-the-secret-key-at-all",
        ..Signed::new("GET", &path)
    }
    .send(&server)
    .await;
    assert_eq!(s, 401);
    // An unknown access key.
    let (s, b) = Signed {
        ak: "UNKNOWNAK00000000000",
        ..Signed::new("GET", &path)
    }
    .send(&server)
    .await;
    assert_eq!(s, 401);
    assert!(
        b["error_msg"]
            .as_str()
            .unwrap()
            .contains("Get secretKey failed"),
        "{b}"
    );
    // A date 16 minutes off; 14 minutes is fine.
    let (s, b) = Signed {
        date: now - chrono::Duration::minutes(16),
        ..Signed::new("GET", &path)
    }
    .send(&server)
    .await;
    assert_eq!(s, 401, "{b}");
    let (s, _) = Signed {
        date: now + chrono::Duration::minutes(14),
        ..Signed::new("GET", &path)
    }
    .send(&server)
    .await;
    assert_eq!(s, 200);
    // Nothing of the secret key leaks into the server's output.
    assert!(!server.stderr().contains(ADMIN_SK));
}

#[tokio::test]
async fn aksk_lockout_after_five_bad_signatures() {
    let server = Server::start();
    let pid = server.admin().await.project_id().to_owned();
    let path = format!("/v3/{pid}/traces");
    for _ in 0..5 {
        let (s, _) = Signed {
            sk: "wrong-secret-key-xxxxxxxx",
            ..Signed::new("GET", &path)
        }
        .send(&server)
        .await;
        assert_eq!(s, 401);
    }
    let (s, b) = Signed::new("GET", &path).send(&server).await;
    assert_eq!(s, 401);
    assert!(
        b["error_msg"]
            .as_str()
            .unwrap()
            .contains("AK access failed to reach the limit"),
        "{b}"
    );
}

#[tokio::test]
async fn cross_project_access_is_forbidden() {
    let server = Server::start();
    let admin = server.admin().await;
    let default_pid = admin.project_id().to_owned();
    let created = admin
        .send(
            Method::POST,
            "/v3/projects",
            "",
            Some(json!({"project": {"name": "team-b"}})),
        )
        .await
        .unwrap();
    assert_eq!(created.status, 201);
    let other_pid = created.body["project"]["id"].as_str().unwrap().to_owned();
    let other_path = format!("/v3/{other_pid}/traces");

    // A token scoped to `default` cannot touch `team-b`.
    let resp = issue_token(&server, "admin", ADMIN_PASSWORD, Some("default")).await;
    let token = resp.headers()["x-subject-token"]
        .to_str()
        .unwrap()
        .to_owned();
    let http = server.http();
    let r = http
        .get(format!("{}{other_path}", server.url))
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error_code"], "APIGW.0302");
    assert!(
        e["error_msg"]
            .as_str()
            .unwrap()
            .contains("scoped to project"),
        "{e}"
    );
    // Nor an unknown project.
    let r = http
        .get(format!("{}/v3/{}/traces", server.url, "0".repeat(32)))
        .header("X-Auth-Token", &token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);

    // An AK/SK whose signed X-Project-Id names another project than the path.
    let (s, b) = Signed {
        extra: vec![("x-project-id", default_pid.as_str())],
        ..Signed::new("GET", &other_path)
    }
    .send(&server)
    .await;
    assert_eq!(s, 403, "{b}");
    // Without the header the AK/SK acts in every project of its domain.
    let (s, _) = Signed::new("GET", &other_path).send(&server).await;
    assert_eq!(s, 200);

    // Traces of one project never show in another.
    admin
        .put_traces(&[login_trace("alice", "10.0.0.1", 1_731_161_042_113)])
        .await
        .unwrap();
    let (_, b) = Signed::new("GET", &other_path).send(&server).await;
    assert_eq!(b["traces"].as_array().unwrap().len(), 0);
}

#[tokio::test]
async fn missing_credentials_are_refused() {
    let server = Server::start();
    let pid = server.admin().await.project_id().to_owned();
    let r = server
        .http()
        .get(format!("{}/v3/{pid}/traces", server.url))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let e: Value = r.json().await.unwrap();
    assert_eq!(e["error_code"], "APIGW.0301");
    assert!(
        e["error_msg"]
            .as_str()
            .unwrap()
            .contains("x-auth-token not found")
    );
}

#[tokio::test]
async fn users_and_credentials() {
    let server = Server::start();
    let admin = server.admin_password().await;
    let created = admin
        .send(
            Method::POST,
            "/v3/users",
            "",
            Some(json!({"user": {"name": "bob", "password": "Bob-password-1"}})),
        )
        .await
        .unwrap();
    assert_eq!(created.status, 201);
    let bob_id = created.body["user"]["id"].as_str().unwrap().to_owned();
    let dup = admin
        .send(
            Method::POST,
            "/v3/users",
            "",
            Some(json!({"user": {"name": "bob", "password": "Bob-password-1"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(dup.status().unwrap(), 409);
    let weak = admin
        .send(
            Method::POST,
            "/v3/users",
            "",
            Some(json!({"user": {"name": "eve", "password": "short"}})),
        )
        .await
        .unwrap_err();
    assert_eq!(weak.status().unwrap(), 400);

    // Bob (not an administrator) creates his own AK/SK and uses it.
    let bob = server
        .client(Credentials::Password {
            user: "bob".into(),
            password: "Bob-password-1".into(),
        })
        .await;
    let cred = bob
        .send(
            Method::POST,
            "/v3.0/OS-CREDENTIAL/credentials",
            "",
            Some(json!({"credential": {"description": "ci"}})),
        )
        .await
        .unwrap();
    assert_eq!(cred.status, 201);
    let ak = cred.body["credential"]["access"]
        .as_str()
        .unwrap()
        .to_owned();
    let sk = cred.body["credential"]["secret"]
        .as_str()
        .unwrap()
        .to_owned();
    assert_eq!(cred.body["credential"]["user_id"], bob_id.as_str());
    let bob_ak = server
        .client(Credentials::AkSk {
            access_key: ak.clone(),
            secret_key: sk.clone(),
        })
        .await;
    bob_ak
        .put_traces(&[login_trace("bob", "10.9.9.9", 1_731_161_042_113)])
        .await
        .unwrap();
    // The secret is shown once: listing never returns it.
    let list = bob_ak
        .send(Method::GET, "/v3.0/OS-CREDENTIAL/credentials", "", None)
        .await
        .unwrap();
    assert_eq!(list.body["credentials"][0]["access"], ak.as_str());
    assert!(!list.body.to_string().contains(&sk));

    // Bob may not administer.
    let e = bob
        .send(Method::GET, "/v3/users", "", None)
        .await
        .unwrap_err();
    assert_eq!(e.status().unwrap(), 403);
    let e = bob
        .send(
            Method::POST,
            "/v3.0/OS-CREDENTIAL/credentials",
            "",
            Some(json!({"credential": {"user_id": "0".repeat(32)}})),
        )
        .await
        .unwrap_err();
    assert_eq!(e.status().unwrap(), 403);

    // Deleting the credential stops it working.
    let del = bob
        .send(
            Method::DELETE,
            &format!("/v3.0/OS-CREDENTIAL/credentials/{ak}"),
            "",
            None,
        )
        .await
        .unwrap();
    assert_eq!(del.status, 204);
    let e = bob_ak
        .send(Method::GET, "/v3/auth/projects", "", None)
        .await
        .unwrap_err();
    assert_eq!(e.status().unwrap(), 401);

    let users = admin
        .send(Method::GET, "/v3/users", "", None)
        .await
        .unwrap();
    let names: Vec<&str> = users.body["users"]
        .as_array()
        .unwrap()
        .iter()
        .map(|u| u["name"].as_str().unwrap())
        .collect();
    assert_eq!(names, ["admin", "bob"]);
    assert!(!server.stderr().contains("Bob-password-1"));
    assert!(!server.stderr().contains(&sk));
}

#[tokio::test]
async fn first_start_without_env_writes_private_credentials_file() {
    let tmp = tempfile::tempdir().unwrap();
    let data = tmp.path().join("data");
    let mut child = std::process::Command::new(common::bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(&data)
        .env_remove("TRAILWATCH_ADMIN_PASSWORD")
        .env_remove("TRAILWATCH_ADMIN_AK")
        .env_remove("TRAILWATCH_ADMIN_SK")
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    let file = data.join("initial-credentials");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    while !file.exists() {
        assert!(
            std::time::Instant::now() < deadline,
            "no initial-credentials file"
        );
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    std::thread::sleep(std::time::Duration::from_millis(200));
    let _ = child.kill();
    let output = child.wait_with_output().unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let value = |key: &str| -> String {
        let line = text.lines().find(|l| l.starts_with(key)).unwrap();
        line.split('"').nth(1).unwrap().to_owned()
    };
    let (password, sk) = (value("admin_password"), value("admin_secret_key"));
    assert!(password.len() >= 12);
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(
        std::fs::metadata(&file).unwrap().permissions().mode() & 0o777,
        0o600
    );
    let logs = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        logs.contains("initial-credentials"),
        "the path is printed: {logs}"
    );
    assert!(
        !logs.contains(&password) && !logs.contains(&sk),
        "secrets never logged"
    );
}
