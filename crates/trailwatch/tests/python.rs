//! The Python runtime through the real binary and the FunctionGraph API only: the tutorial's
//! own function (examples/functions/login_audit_py, its logic corrected) deployed as a base64
//! zip behind a CTS trigger alarms exactly the disallowed logins at an HTTP subscriber; a real
//! handler calls every `context` method and uses its agency token against this server (which
//! holds it to the agency's roles); bad functions each fail one invocation with a precise log
//! line while the server carries on; an LTS trigger and async invocations reach Python functions
//! too; and workers die with a `kill -9`ed server.
//!
//! Needs `python3` (or `TW_PYTHON`) with `requests` installed (`.ci/run` installs it).
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::HashSet;
use std::time::Duration;

use base64::Engine as _;
use common::Server;
use common::fgs::{agency_with_roles, call, log_group_and_stream, lts_trigger, records, zip_b64};
use common::receiver::Receiver;
use common::smn::{create_topic, subscribe_confirmed};
use reqwest::Method;
use serde_json::{Value, json};
use trailwatch_client::{Client, RawResponse};

const TUTORIAL: &str = include_str!("../../../examples/functions/login_audit_py/index.py");

fn start() -> Server {
    match std::env::var("TW_PYTHON") {
        Ok(p) => Server::start_with_config(&format!(
            "version = 1\n[python]\ninterpreter = {}\n",
            toml_string(&p)
        )),
        Err(_) => Server::start(),
    }
}

fn toml_string(s: &str) -> String {
    Value::String(s.to_owned()).to_string()
}

async fn create_python(
    c: &Client,
    name: &str,
    files: &[(&str, &str)],
    extra: Value,
) -> RawResponse {
    let mut body = json!({"func_name": name, "package": "default", "runtime": "Python3.11",
                          "handler": "index.handler", "memory_size": 128, "timeout": 10,
                          "code_type": "zip", "func_code": {"file": zip_b64(files)}});
    for (k, v) in extra.as_object().unwrap() {
        body[k] = v.clone();
    }
    call(
        c,
        Method::POST,
        &format!("/v2/{}/fgs/functions", c.project_id()),
        Some(body),
    )
    .await
}

/// A sync invocation with `X-Cff-Log-Type: tail`: (the body, the decoded log header).
async fn invoke(server: &Server, c: &Client, name: &str, event: Value) -> Value {
    let token = admin_token(server).await;
    let r = server
        .http()
        .post(format!(
            "{}/v2/{}/fgs/functions/{name}/invocations",
            server.url,
            c.project_id()
        ))
        .header("X-Auth-Token", token)
        .header("X-Cff-Log-Type", "tail")
        .body(event.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    r.json().await.unwrap()
}

/// A project-scoped token of the bootstrap administrator (for calls with extra headers).
async fn admin_token(server: &Server) -> String {
    let body = json!({"auth": {
        "identity": {"methods": ["password"], "password": {"user": {
            "name": "admin", "password": common::ADMIN_PASSWORD, "domain": {"name": "default"}}}},
        "scope": {"project": {"name": "default"}}}});
    let r = server
        .http()
        .post(format!("{}/v3/auth/tokens", server.url))
        .body(body.to_string())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 201);
    r.headers()["x-subject-token"].to_str().unwrap().to_owned()
}

fn trace(name: &str, ip: &str, n: usize) -> Value {
    json!({
        "trace_id": format!("py-trace-{n:03}"),
        "trace_name": name,
        "trace_type": "ConsoleAction",
        "trace_rating": "normal",
        "service_type": "IAM",
        "resource_type": "user",
        "resource_name": "alice",
        "source_ip": ip,
        "code": 302,
        "time": 1_764_000_000_000_i64 + n as i64,
        "user": {"name": "alice", "id": "id-alice", "domain": {"name": "acme", "id": "d1"}},
    })
}

#[tokio::test]
async fn the_tutorial_python_function_alarms_exactly_the_disallowed_logins() {
    let server = start();
    let c = server.admin_password().await;
    let pid = c.project_id().to_owned();
    let receiver = Receiver::start().await;
    let topic = create_topic(&c, "cts_test", "login audit").await;
    subscribe_confirmed(&c, &topic, &receiver, json!({})).await;
    agency_with_roles(&c, "serverless_trust", &["SMN Administrator"]).await;

    // Deployed as the tutorial says: Python, zip upload, environment variables, agency. The
    // runtime name is the tutorial-era Python3.9, run by this machine's Python 3 with a note.
    let user_data = json!({"SMN_Topic": "cts_test", "RegionName": "local",
                           "IP": "10.0.0.1, 192.168.0.0/24; 2001:db8::/32"})
    .to_string();
    let r = create_python(
        &c,
        "login_audit_py",
        &[("index.py", TUTORIAL)],
        json!({"runtime": "Python3.9", "memory_size": 256, "timeout": 30,
               "user_data": user_data, "xrole": "serverless_trust"}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    assert_eq!(r.body["runtime"], "Python3.9");
    assert_eq!(r.body["code_type"], "zip");
    assert_eq!(r.body["digest"].as_str().unwrap().len(), 128);
    match r.body["runtime_note"].as_str() {
        Some(note) => assert!(
            note.starts_with("Python3.9 runs on this server's Python 3."),
            "{note}"
        ),
        None => assert!(r.body["runtime_note"].is_null()), // the machine's Python is 3.9
    }
    let fn_urn = r.body["func_urn"].as_str().unwrap().to_owned();
    let r = call(
        &c,
        Method::POST,
        &format!("/v2/{pid}/fgs/triggers/{fn_urn}"),
        Some(json!({"trigger_type_code": "CTS", "trigger_status": "ACTIVE",
                    "event_type_code": "MessageCreated",
                    "event_data": {"name": "login_audit", "operations": ["IAM:user:login;logout"]}})),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);

    // (name, address, should alarm)
    let cases = [
        ("login", "10.0.0.1", false),
        ("login", "10.0.0.11", true), // the original substring test would pass this one
        ("logout", "10.0.0.11", true), // and would never alarm on a logout
        ("login", "192.168.0.77", false),
        ("logout", "192.168.1.5", true),
        ("loginfailed", "203.0.113.9", false), // not in the trigger's operations
        ("login", "2001:db8::5", false),
        ("login", "2001:db9::5", true),
        ("logout", "::ffff:10.0.0.1", false), // IPv4-mapped form of an allowed address
        ("login", "::ffff:10.0.0.2", true),
    ];
    let traces: Vec<Value> = cases
        .iter()
        .enumerate()
        .map(|(i, (name, ip, _))| trace(name, ip, i))
        .collect();
    let r = c.put_traces(&traces).await.unwrap();
    assert_eq!(r.body["accepted"], 10, "{}", r.body);

    let expected: HashSet<String> = cases
        .iter()
        .filter(|c| c.2)
        .map(|(name, ip, _)| format!("Illegal operation[  IP:{ip},  Action:{name}]"))
        .collect();
    let got = receiver
        .wait_for("Notification", expected.len(), Duration::from_secs(60))
        .await;
    let messages: HashSet<String> = got
        .iter()
        .map(|m| m.body["message"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(messages, expected);
    assert!(got.iter().all(|m| m.body["subject"] == "CTSTrigger"));

    // Every login/logout trace ran once (9: loginfailed is not an operation of the trigger),
    // with the function's own return values, and nothing more arrives.
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let mut recs = records(&c, "login_audit_py").await;
    while recs.len() < 9 && tokio::time::Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(200)).await;
        recs = records(&c, "login_audit_py").await;
    }
    assert_eq!(recs.len(), 9, "{recs:#?}");
    let mut results: Vec<&str> = recs.iter().map(|r| r["result"].as_str().unwrap()).collect();
    results.sort();
    assert_eq!(
        results,
        [
            "reasonable login",
            "reasonable login",
            "reasonable login",
            "reasonable logout",
            "send email success",
            "send email success",
            "send email success",
            "send email success",
            "send email success",
        ]
    );
    assert!(
        recs.iter()
            .all(|r| r["trigger"].as_str().unwrap().starts_with("CTS"))
    );
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.of_type("Notification").len(), expected.len());
}

const CONTEXT_HANDLER: &str = r#"
import datetime, hashlib, hmac, json, os, sys, urllib.parse, urllib.request, urllib.error

def _enc(s):
    return urllib.parse.quote(s, safe="-_.~")

def sdk_sign(method, url, ak, sk, body=b"", extra=None, unsigned=None):
    """SDK-HMAC-SHA256 (cloud-apis.md 7.2), as the Huawei SDK signer does it."""
    u = urllib.parse.urlsplit(url)
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    headers = {"Host": u.netloc, "X-Sdk-Date": date}
    headers.update(extra or {})
    path = "/".join(_enc(urllib.parse.unquote(p)) for p in u.path.split("/"))
    if not path.endswith("/"):
        path += "/"
    query = "&".join(sorted(_enc(k) + "=" + _enc(v) for k, v in urllib.parse.parse_qsl(u.query)))
    lower = {k.lower(): v.strip() for k, v in headers.items()}
    names = sorted(lower)
    canonical = "\n".join([method, path, query, "".join(n + ":" + lower[n] + "\n" for n in names),
                           ";".join(names), hashlib.sha256(body).hexdigest()])
    to_sign = "SDK-HMAC-SHA256\n" + date + "\n" + hashlib.sha256(canonical.encode()).hexdigest()
    sig = hmac.new(sk.encode(), to_sign.encode(), hashlib.sha256).hexdigest()
    headers["Authorization"] = "SDK-HMAC-SHA256 Access=%s, SignedHeaders=%s, Signature=%s" % (ak, ";".join(names), sig)
    headers.update(unsigned or {})  # sent, but not covered by the signature
    return headers

def handler(event, context):
    print("hello from the handler")
    context.getLogger().info("via the logger")
    token = context.getToken()
    base = os.environ["TRAILWATCH_ENDPOINT"]

    def send(method, path, headers, body=None):
        req = urllib.request.Request(base + path, data=body, method=method, headers=headers)
        try:
            with urllib.request.urlopen(req, timeout=10) as r:
                return r.status
        except urllib.error.HTTPError as e:
            return e.code

    def get(path):
        return send("GET", path, {"X-Auth-Token": token})

    ak, sk, st = context.getSecurityAccessKey(), context.getSecuritySecretKey(), context.getSecurityToken()

    def signed(method, path, body=b"", **kw):
        headers = sdk_sign(method, base + path, ak, sk, body, **kw)
        if body:
            headers["Content-Type"] = "application/json"
        return send(method, path, headers, body or None)

    status = denied = iam = None
    aksk = {}
    if token:
        pid = context.getProjectID()
        status = get("/v2/" + pid + "/notifications/topics")  # the agency's role allows this
        denied = get("/v2/" + pid + "/fgs/functions")  # but not this
        iam = get("/v3/users")  # and never IAM
        # The temporary AK/SK with its security token: the same rights as the token.
        sec = {"X-Security-Token": st}
        aksk = {
            "list": signed("GET", "/v2/" + pid + "/notifications/topics", extra=sec),
            "publish": signed("POST", "/v2/" + pid + "/notifications/topics/" + event["topic"] + "/publish",
                              json.dumps({"subject": "s", "message": "signed with a temporary AK/SK"}).encode(),
                              extra=sec),
            "denied": signed("GET", "/v2/" + pid + "/fgs/functions", extra=sec),
            "iam": signed("GET", "/v3/users", extra=sec),
            "no_token": signed("GET", "/v2/" + pid + "/notifications/topics"),
            "token_not_signed": signed("GET", "/v2/" + pid + "/notifications/topics", unsigned=sec),
            "deprecated_pair": [context.getAccessKey() == ak, context.getSecretKey() == sk],
        }
    return {
        "aksk": aksk,
        "getRequestID": context.getRequestID(),
        "getRemainingTimeInMilliSeconds": context.getRemainingTimeInMilliSeconds(),
        "getUserData": context.getUserData("Greeting"),
        "getFunctionName": context.getFunctionName(),
        "getRunningTimeInSeconds": context.getRunningTimeInSeconds(),
        "getVersion": context.getVersion(),
        "getMemorySize": context.getMemorySize(),
        "getCPUNumber": context.getCPUNumber(),
        "getPackage": context.getPackage(),
        "getProjectID": context.getProjectID(),
        "token_set": bool(token),
        "getAccessKey": context.getAccessKey(),
        "getSecretKey": context.getSecretKey(),
        "getSecurityAccessKey": context.getSecurityAccessKey(),
        "getSecuritySecretKey": context.getSecuritySecretKey(),
        "getSecurityToken": context.getSecurityToken(),
        "getAlias": context.getAlias(),
        "api_status": status,
        "api_denied": [denied, iam],
        "endpoints": [os.environ.get(k) for k in ("TRAILWATCH_ENDPOINT", "SMN_ENDPOINT", "CTS_ENDPOINT", "FUNCTIONGRAPH_ENDPOINT")],
        "env_greeting": os.environ.get("Greeting"),
        "secrets": sorted(k for k in os.environ if "ADMIN" in k or k.startswith("TRAILWATCH_LOG")),
    }
"#;

/// `GET path` signed (SDK-HMAC-SHA256) with a temporary AK/SK, with `security_token` in a
/// signed `X-Security-Token` when given. Answers the status and the JSON body.
async fn temp_signed(
    server: &Server,
    path: &str,
    ak: &str,
    sk: &str,
    security_token: Option<&str>,
) -> (u16, Value) {
    use trailwatch_iam::signing;
    let host = server.url.trim_start_matches("http://").to_owned();
    let mut headers = vec![
        ("Host".to_owned(), host),
        (
            "X-Sdk-Date".to_owned(),
            signing::format_sdk_date(chrono::Utc::now()),
        ),
    ];
    if let Some(t) = security_token {
        headers.push(("X-Security-Token".to_owned(), t.to_owned()));
    }
    let req = signing::SignableRequest {
        method: "GET",
        path,
        query: "",
        headers: &headers,
        body: b"",
    };
    let authorization = signing::sign(&req, ak, sk).unwrap();
    let mut rb = reqwest::Client::new()
        .get(format!("{}{path}", server.url))
        .header("Authorization", authorization);
    for (k, v) in &headers {
        rb = rb.header(k.as_str(), v.as_str());
    }
    let r = rb.send().await.unwrap();
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

#[tokio::test]
async fn a_real_handler_sees_every_context_method_and_its_agency_token_works() {
    let server = start();
    let c = server.admin_password().await;
    let pid = c.project_id().to_owned();
    agency_with_roles(&c, "fn_agency", &["SMN Administrator"]).await;
    let topic = common::smn::create_topic(&c, "ctx_topic", "ctx").await;
    let r = create_python(
        &c,
        "ctx",
        &[("index.py", CONTEXT_HANDLER)],
        json!({"user_data": json!({"Greeting": "hi"}).to_string(), "xrole": "fn_agency",
               "package": "tools", "memory_size": 256, "timeout": 20}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let body = invoke(&server, &c, "tools:ctx", json!({"x": 1, "topic": topic})).await;
    assert_eq!(body["status"], 200, "{body}");
    let v: Value = serde_json::from_str(body["result"].as_str().unwrap()).unwrap();
    assert_eq!(v["getRequestID"], body["request_id"]);
    let left = v["getRemainingTimeInMilliSeconds"].as_i64().unwrap();
    assert!(left > 10_000 && left <= 20_000, "{left}");
    assert_eq!(v["getUserData"], "hi");
    assert_eq!(v["env_greeting"], "hi");
    assert_eq!(v["getFunctionName"], "ctx");
    assert_eq!(v["getRunningTimeInSeconds"], 20);
    assert_eq!(v["getVersion"], "latest");
    assert_eq!(v["getMemorySize"], 256);
    assert_eq!(v["getCPUNumber"], 400);
    assert_eq!(v["getPackage"], "tools");
    assert_eq!(v["getProjectID"], pid.as_str());
    assert_eq!(v["token_set"], true);
    // The agency's token is accepted by this server's API.
    assert_eq!(v["api_status"], 200, "{v}");
    // It acts with exactly the agency's roles: other services and IAM are refused.
    assert_eq!(v["api_denied"], json!([403, 403]), "{v}");
    assert_eq!(v["getAlias"], "");
    // The temporary AK/SK + security token of the agency, used by the handler's own
    // SDK-HMAC-SHA256 signer: what the agency grants works (publishing too, body signed), the
    // rest is 403, and without a signed X-Security-Token the signature is refused (401).
    assert_eq!(
        v["aksk"],
        json!({"list": 200, "publish": 200, "denied": 403, "iam": 403, "no_token": 401,
               "token_not_signed": 401, "deprecated_pair": [true, true]}),
        "{v}"
    );
    let (ak, sk, st) = (
        v["getSecurityAccessKey"].as_str().unwrap(),
        v["getSecuritySecretKey"].as_str().unwrap(),
        v["getSecurityToken"].as_str().unwrap(),
    );
    assert!(ak.starts_with("TWTMP") && ak.len() == 25, "{ak}");
    assert!(!sk.is_empty() && !st.is_empty());
    // The same from here: signed with the security token it works; without it, or with a
    // tampered one, it is a 401 in the gateway's shape; the security token is no X-Auth-Token.
    let topics = format!("/v2/{pid}/notifications/topics");
    let (status, _) = temp_signed(&server, &topics, ak, sk, Some(st)).await;
    assert_eq!(status, 200);
    let (status, err) = temp_signed(&server, &topics, ak, sk, None).await;
    assert_eq!(status, 401, "{err}");
    assert_eq!(err["error_code"], "APIGW.0301", "{err}");
    assert!(
        err["error_msg"]
            .as_str()
            .unwrap()
            .contains("X-Security-Token"),
        "{err}"
    );
    let mut tampered = st.to_owned();
    let flip = if tampered.as_bytes()[10] == b'A' {
        "B"
    } else {
        "A"
    };
    tampered.replace_range(10..11, flip);
    let (status, err) = temp_signed(&server, &topics, ak, sk, Some(&tampered)).await;
    assert_eq!(status, 401, "{err}");
    assert_eq!(err["error_code"], "APIGW.0301", "{err}");
    let r = reqwest::Client::new()
        .get(format!("{}{topics}", server.url))
        .header("X-Auth-Token", st)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 401);
    // The secrets reach the handler only: not the invocation's log.
    let log = body["log"].as_str().unwrap();
    for secret in [sk, st] {
        assert!(!log.contains(secret), "{log}");
    }
    assert_eq!(
        v["endpoints"],
        json!([server.url, server.url, server.url, server.url])
    );
    // The server runs with TRAILWATCH_ADMIN_* secrets in its environment; none reach the code.
    assert_eq!(v["secrets"], json!([]));
    let log = body["log"].as_str().unwrap();
    assert!(log.contains("hello from the handler"), "{log}");
    assert!(log.contains(" INFO via the logger"), "{log}");
    assert!(log.contains("Start invoke request"), "{log}");
    assert!(log.contains("Finish invoke request"), "{log}");

    // Without an agency the credentials are empty strings.
    let r = create_python(
        &c,
        "ctx_noagency",
        &[("index.py", CONTEXT_HANDLER)],
        json!({}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let body = invoke(&server, &c, "ctx_noagency", json!({})).await;
    let v: Value = serde_json::from_str(body["result"].as_str().unwrap()).unwrap();
    assert_eq!(v["token_set"], false);
    assert_eq!(v["api_status"], Value::Null);
    for k in [
        "getAccessKey",
        "getSecretKey",
        "getSecurityAccessKey",
        "getSecuritySecretKey",
        "getSecurityToken",
    ] {
        assert_eq!(v[k], "", "{k}");
    }

    // Async invocation runs the same way and is recorded.
    let r = call(
        &c,
        Method::POST,
        &format!("/v2/{pid}/fgs/functions/ctx_noagency/invocations-async"),
        Some(json!({})),
    )
    .await;
    assert_eq!(r.status, 202, "{}", r.body);
    let id = r.body["request_id"].as_str().unwrap().to_owned();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let recs = records(&c, "ctx_noagency").await;
        if let Some(rec) = recs.iter().find(|r| r["request_id"] == id.as_str())
            && rec["state"] == "succeeded"
        {
            break;
        }
        assert!(tokio::time::Instant::now() < deadline, "{recs:#?}");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

#[tokio::test]
async fn bad_python_functions_fail_alone_with_precise_log_lines() {
    let server = start();
    let c = server.admin_password().await;
    let pid = c.project_id().to_owned();

    // Refused up front: Python 2, a package that is not a zip, a handler that is not
    // `module.function`, code from OBS.
    let r = create_python(
        &c,
        "py2",
        &[("index.py", "")],
        json!({"runtime": "Python2.7"}),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error_msg"]
            .as_str()
            .unwrap()
            .contains("is Python 2"),
        "{}",
        r.body
    );
    let r = call(
        &c,
        Method::POST,
        &format!("/v2/{pid}/fgs/functions"),
        Some(json!({"func_name": "notzip", "runtime": "Python3.10", "handler": "index.handler",
                    "memory_size": 128, "timeout": 3, "code_type": "zip",
                    "func_code": {"file": base64::engine::general_purpose::STANDARD.encode("def handler(e, c): pass")}})),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error_msg"]
            .as_str()
            .unwrap()
            .starts_with("the code package is not a valid zip archive"),
        "{}",
        r.body
    );
    let r = create_python(&c, "h", &[("index.py", "")], json!({"handler": "handler"})).await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error_msg"]
            .as_str()
            .unwrap()
            .contains("must be `module.function`")
    );

    let r = call(
        &c,
        Method::POST,
        &format!("/v2/{pid}/fgs/functions"),
        Some(
            json!({"func_name": "nocode", "runtime": "Python3.12", "handler": "index.handler",
                    "memory_size": 128, "timeout": 3}),
        ),
    )
    .await;
    assert_eq!(r.status, 400);
    assert!(
        r.body["error_msg"].as_str().unwrap().contains("needs code"),
        "{}",
        r.body
    );

    let fine = "def handler(event, context):\n    return 'fine'\n";
    let body =
        |text: &'static str| -> Vec<(&'static str, &'static str)> { vec![("index.py", text)] };
    // (name, files, handler, expected error)
    type Case<'a> = (&'a str, Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            "nohandler",
            body(fine),
            "main.handler",
            "handler `main.handler`: module `main` not found in the code package",
        ),
        (
            "syntax",
            body("def handler(event, context)\n    return 1\n"),
            "index.handler",
            "handler `index.handler`: importing `index` failed:",
        ),
        (
            "notjson",
            body("def handler(event, context):\n    return object()\n"),
            "index.handler",
            "the handler's return value is not JSON-serialisable: TypeError: Object of type object is not JSON serializable",
        ),
        (
            "hang",
            body(
                "import time\ndef handler(event, context):\n    while True:\n        time.sleep(0.1)\n",
            ),
            "index.handler",
            "Invoke task timed out after 3 s; the worker was stopped",
        ),
        (
            "memory",
            body("def handler(event, context):\n    return len(bytearray(1024 * 1024 * 1024))\n"),
            "index.handler",
            "MemoryError: the function exceeded its memory limit",
        ),
        (
            "flood",
            body(
                "import sys\ndef handler(event, context):\n    line = 'y' * 1023 + '\\n'\n    for _ in range(100 * 1024):\n        sys.stdout.write(line)\n    return 'done'\n",
            ),
            "index.handler",
            "the function wrote more than 8 MB to stdout/stderr; the worker was stopped",
        ),
    ];
    for (name, files, handler, want) in &cases {
        let r = create_python(&c, name, files, json!({"handler": handler, "timeout": 3})).await;
        assert_eq!(r.status, 201, "{name}: {}", r.body);
        let body = invoke(&server, &c, name, json!({})).await;
        assert_eq!(body["status"], 500, "{name}: {body}");
        let result: Value = serde_json::from_str(body["result"].as_str().unwrap()).unwrap();
        let msg = result["errorMessage"].as_str().unwrap();
        assert!(msg.starts_with(want), "{name}: {msg}");
        let log = body["log"].as_str().unwrap();
        assert!(
            log.contains(&format!("ERROR {}", want.lines().next().unwrap())),
            "{name}: {log}"
        );
        // The server is unaffected.
        assert!(
            server
                .http()
                .get(format!("{}/healthz", server.url))
                .send()
                .await
                .unwrap()
                .status()
                .is_success()
        );
    }
    // The syntax error names its file and line.
    let body = invoke(&server, &c, "syntax", json!({})).await;
    let log = body["log"].as_str().unwrap();
    assert!(
        log.contains("SyntaxError") && log.contains("index.py\", line 1"),
        "{log}"
    );

    // A code update (the FunctionGraph update-code API) fixes the broken one; the next
    // invocation runs the new code on a fresh worker.
    let r = call(
        &c,
        Method::PUT,
        &format!("/v2/{pid}/fgs/functions/hang/code"),
        Some(json!({"code_type": "zip", "func_code": {"file": zip_b64(&[("index.py", fine)])}})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let digest = r.body["digest"].as_str().unwrap().to_owned();
    let r = call(
        &c,
        Method::PUT,
        &format!("/v2/{pid}/fgs/functions/hang/config"),
        Some(json!({"func_code": {"file": zip_b64(&[("index.py", "")])}})),
    )
    .await;
    assert_eq!(r.status, 400, "{}", r.body);
    assert!(
        r.body["error_msg"]
            .as_str()
            .unwrap()
            .contains("PUT …/functions/{urn}/code")
    );
    let body = invoke(&server, &c, "hang", json!({})).await;
    assert_eq!(
        (body["status"].clone(), body["result"].clone()),
        (json!(200), json!("fine"))
    );
    let r = call(
        &c,
        Method::GET,
        &format!("/v2/{pid}/fgs/functions/hang/code"),
        None,
    )
    .await;
    assert_eq!(r.body["digest"], digest.as_str());
    assert_eq!(
        r.body["func_code"]["file"],
        zip_b64(&[("index.py", fine)]).as_str()
    );
    // Statistics count the failures.
    let r = call(
        &c,
        Method::GET,
        &format!("/v2/{pid}/fgs/functions/memory/statistics/60"),
        None,
    )
    .await;
    let fails: f64 = r.body["fail_count"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["value"].as_f64().unwrap())
        .sum();
    assert_eq!(fails, 1.0, "{}", r.body);
}

#[tokio::test]
async fn workers_do_not_outlive_a_killed_server() {
    let mut server = start();
    let c = server.admin_password().await;
    let r = create_python(
        &c,
        "sleeper",
        &[(
            "index.py",
            "import os, subprocess, time\n\
             def handler(event, context):\n\
             \x20   child = subprocess.Popen(['sleep', '600'])\n\
             \x20   with open(event['pidfile'], 'w') as f:\n\
             \x20       f.write('%d %d' % (os.getpid(), child.pid))\n\
             \x20   time.sleep(600)\n",
        )],
        json!({"timeout": 900}),
    )
    .await;
    assert_eq!(r.status, 201, "{}", r.body);
    let dir = tempfile::tempdir().unwrap();
    let pidfile = dir.path().join("pids");
    let call = {
        let (url, pid, token) = (
            server.url.clone(),
            c.project_id().to_owned(),
            admin_token(&server).await,
        );
        let event = json!({"pidfile": pidfile}).to_string();
        tokio::spawn(async move {
            let _ = reqwest::Client::new()
                .post(format!("{url}/v2/{pid}/fgs/functions/sleeper/invocations"))
                .header("X-Auth-Token", token)
                .body(event)
                .send()
                .await;
        })
    };
    let deadline = std::time::Instant::now() + Duration::from_secs(20);
    let pids: Vec<u32> = loop {
        if let Ok(text) = std::fs::read_to_string(&pidfile)
            && let Ok(p) = text
                .split(' ')
                .map(str::parse)
                .collect::<Result<Vec<u32>, _>>()
            && p.len() == 2
        {
            break p;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "the handler never started"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let alive = |pid: u32| {
        std::path::Path::new(&format!("/proc/{pid}")).exists()
            && !std::fs::read_to_string(format!("/proc/{pid}/stat"))
                .unwrap_or_default()
                .contains(") Z ")
    };
    assert!(pids.iter().all(|p| alive(*p)));
    server.kill9();
    call.abort();
    // The worker notices its parent is gone within a second or two and takes its process group
    // (the handler's own child included) with it.
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while pids.iter().any(|p| alive(*p)) {
        assert!(
            std::time::Instant::now() < deadline,
            "worker processes {pids:?} outlived the server"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The LTS variant of the tutorial's idea in Python: the trigger hands the §4.2 payload
/// (base64 JSON whose `logs` is a JSON string) to the handler, which decodes it itself.
#[tokio::test]
async fn an_lts_trigger_feeds_a_python_function() {
    let server = start();
    let c = server.admin_password().await;
    let pid = c.project_id().to_owned();
    let (gid, sid) = log_group_and_stream(&c, &pid, "app", "web").await;
    let handler = "import base64, json\n\
                   def handler(event, context):\n\
                   \x20   text = json.loads(base64.b64decode(event['lts']['data']))\n\
                   \x20   logs = json.loads(text['logs'])\n\
                   \x20   errors = [l['message'] for l in logs if 'ERROR' in l['message']]\n\
                   \x20   print('lines: %d' % len(logs))\n\
                   \x20   return {'group': text['log_group_id'], 'errors': errors}\n";
    let r = create_python(&c, "lts_fn", &[("index.py", handler)], json!({})).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let r = lts_trigger(&c, &pid, "lts_fn", &gid, &sid).await;
    assert_eq!(r.status, 201, "{}", r.body);
    let now_ns = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as i64;
    let r = call(
        &c,
        Method::POST,
        &format!("/v2/{pid}/lts/groups/{gid}/streams/{sid}/tenant/contents"),
        Some(json!({"log_time_ns": now_ns, "contents": ["INFO fine", "ERROR db down", "INFO ok"]})),
    )
    .await;
    assert_eq!(r.status, 200, "{}", r.body);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    let recs = loop {
        let recs = records(&c, "lts_fn").await;
        if !recs.is_empty() {
            break recs;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the LTS trigger never ran"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    assert_eq!(recs.len(), 1, "{recs:#?}");
    assert_eq!(recs[0]["state"], "succeeded", "{recs:#?}");
    assert!(
        recs[0]["trigger"].as_str().unwrap().starts_with("LTS"),
        "{recs:#?}"
    );
    let result: Value = serde_json::from_str(recs[0]["result"].as_str().unwrap()).unwrap();
    assert_eq!(result, json!({"group": gid, "errors": ["ERROR db down"]}));
    assert!(
        recs[0]["log"].as_str().unwrap().contains("lines: 3"),
        "{recs:#?}"
    );
}
