//! The runtime against the machine's real Python 3 (`TW_PYTHON`, default `python3`): the
//! context object, warm workers, the initializer, code roll-over, and every kind of bad code
//! failing one invocation with a precise message while the runtime carries on.
#![allow(clippy::unwrap_used)]

use std::io::Write as _;
use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use trailwatch_python::{
    Code, CodeKind, Credentials, FunctionSetup, Invocation, Outcome, PythonConfig, PythonRuntime,
};

fn python() -> std::path::PathBuf {
    std::env::var_os("TW_PYTHON")
        .map(Into::into)
        .unwrap_or_else(|| "python3".into())
}

async fn runtime(dir: &tempfile::TempDir) -> PythonRuntime {
    PythonRuntime::start(PythonConfig {
        python: python(),
        work_root: dir.path().join("py"),
        max_log_bytes: 4 * 1024 * 1024,
    })
    .await
    .unwrap()
}

fn zip_of(files: &[(&str, &str)]) -> Code {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    for (name, body) in files {
        w.start_file(*name, zip::write::SimpleFileOptions::default())
            .unwrap();
        w.write_all(body.as_bytes()).unwrap();
    }
    Code {
        kind: CodeKind::Zip,
        bytes: w.finish().unwrap().into_inner(),
    }
}

fn setup(id: &str, code: &Code, handler: &str) -> FunctionSetup {
    FunctionSetup {
        function_id: id.into(),
        code_digest: code.digest(),
        handler: handler.into(),
        initializer: None,
        initializer_timeout: Duration::from_secs(10),
        memory_mb: 128,
        max_workers: 4,
        env: vec![
            ("RUNTIME_FUNC_NAME".into(), "ctxfn".into()),
            ("RUNTIME_PACKAGE".into(), "default".into()),
            ("RUNTIME_PROJECT_ID".into(), "p0123".into()),
            ("RUNTIME_FUNC_VERSION".into(), "latest".into()),
            ("RUNTIME_MEMORY".into(), "128".into()),
            ("RUNTIME_CPU".into(), "300".into()),
            ("RUNTIME_TIMEOUT".into(), "5".into()),
            (
                "RUNTIME_USERDATA".into(),
                json!({"SMN_Topic": "cts_test"}).to_string(),
            ),
            ("SMN_ENDPOINT".into(), "http://127.0.0.1:1".into()),
        ],
    }
}

fn call(id: &str, event: Value, timeout_s: u64) -> Invocation {
    Invocation {
        request_id: id.into(),
        event,
        timeout: Duration::from_secs(timeout_s),
        credentials: Credentials::default(),
        alias: String::new(),
    }
}

async fn run(rt: &PythonRuntime, s: &FunctionSetup, code: &Code, inv: &Invocation) -> Outcome {
    let code = code.clone();
    rt.invoke(s, move || async move { Ok(code) }, inv).await
}

const CONTEXT_HANDLER: &str = r#"
import os, sys, tempfile

def handler(event, context):
    print("to stdout")
    print("to stderr", file=sys.stderr)
    log = context.getLogger()
    log.info("info line")
    log.warn("warn line")
    log.error("error line")
    log.debug("debug line")
    return {
        "event": event,
        "getRequestID": context.getRequestID(),
        "getRemainingTimeInMilliSeconds": context.getRemainingTimeInMilliSeconds(),
        "getUserData": context.getUserData("SMN_Topic"),
        "getUserData_missing": context.getUserData("nope"),
        "getUserData_default": context.getUserData("nope", "dflt"),
        "getFunctionName": context.getFunctionName(),
        "getRunningTimeInSeconds": context.getRunningTimeInSeconds(),
        "getVersion": context.getVersion(),
        "getMemorySize": context.getMemorySize(),
        "getCPUNumber": context.getCPUNumber(),
        "getPackage": context.getPackage(),
        "getProjectID": context.getProjectID(),
        "getToken": context.getToken(),
        "getAccessKey": context.getAccessKey(),
        "getSecretKey": context.getSecretKey(),
        "getSecurityAccessKey": context.getSecurityAccessKey(),
        "getSecuritySecretKey": context.getSecuritySecretKey(),
        "getSecurityToken": context.getSecurityToken(),
        "getAlias": context.getAlias(),
        "env": sorted(os.environ.keys()),
        "env_values": "\n".join(os.environ.values()),
        "tmp": tempfile.gettempdir(),
        "cwd": os.getcwd(),
        "pid": os.getpid(),
    }
"#;

#[tokio::test]
async fn every_context_method_and_a_scrubbed_environment() {
    // The test process has plenty of variables (CARGO_*, HOME, a pyenv PATH): none may reach
    // the worker.
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(&dir).await;
    let code = zip_of(&[("index.py", CONTEXT_HANDLER)]);
    let s = setup("f-ctx", &code, "index.handler");
    let mut inv = call("req-1", json!({"k": [1, 2]}), 5);
    inv.credentials = Credentials {
        token: "tok-abc".into(),
        access_key: "ak-deprecated".into(),
        secret_key: "sk-deprecated".into(),
        security_access_key: "ak-security".into(),
        security_secret_key: "sk-security".into(),
        security_token: "st-security".into(),
    };
    inv.alias = "prod".into();
    let o = run(&rt, &s, &code, &inv).await;
    let v = o.result.clone().unwrap();
    assert_eq!(v["event"], json!({"k": [1, 2]}));
    assert_eq!(v["getRequestID"], "req-1");
    let left = v["getRemainingTimeInMilliSeconds"].as_i64().unwrap();
    assert!(left > 3000 && left <= 5000, "{left}");
    assert_eq!(v["getUserData"], "cts_test");
    assert_eq!(v["getUserData_missing"], Value::Null);
    assert_eq!(v["getUserData_default"], "dflt");
    assert_eq!(v["getFunctionName"], "ctxfn");
    assert_eq!(v["getRunningTimeInSeconds"], 5);
    assert_eq!(v["getVersion"], "latest");
    assert_eq!(v["getMemorySize"], 128);
    assert_eq!(v["getCPUNumber"], 300);
    assert_eq!(v["getPackage"], "default");
    assert_eq!(v["getProjectID"], "p0123");
    let secrets = [
        ("getToken", "tok-abc"),
        ("getAccessKey", "ak-deprecated"),
        ("getSecretKey", "sk-deprecated"),
        ("getSecurityAccessKey", "ak-security"),
        ("getSecuritySecretKey", "sk-security"),
        ("getSecurityToken", "st-security"),
    ];
    for (k, want) in secrets {
        assert_eq!(v[k], want, "{k}");
        // Handed to `context` only: never in the environment or the invocation's log.
        let env = v["env_values"].as_str().unwrap();
        assert!(!env.contains(want), "{k} in the environment");
        assert!(!o.log.contains(want), "{k} in the log:\n{}", o.log);
    }
    assert_eq!(v["getAlias"], "prod");
    // Only the documented variables (plus what the interpreter itself adds, e.g. LC_CTYPE).
    let env: Vec<&str> = v["env"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    for name in &env {
        assert!(
            name.starts_with("RUNTIME_")
                || ["PATH", "HOME", "TMPDIR", "LANG", "LC_CTYPE", "SMN_ENDPOINT"].contains(name),
            "unexpected variable {name} in {env:?}"
        );
    }
    let tmp = v["tmp"].as_str().unwrap();
    assert!(
        tmp.starts_with(dir.path().join("py").to_str().unwrap()),
        "{tmp}"
    );
    assert!(
        !std::path::Path::new(tmp).exists(),
        "the per-invocation tmp dir is removed afterwards"
    );
    // The handler's output is in the log, in order; the protocol never is.
    let log = &o.log;
    let order = [
        "to stdout",
        "to stderr",
        "req-1 INFO info line",
        "req-1 WARN warn line",
        "req-1 ERROR error line",
        "req-1 DEBUG debug line",
    ];
    let mut at = 0;
    for line in order {
        let i = log[at..]
            .find(line)
            .unwrap_or_else(|| panic!("`{line}` missing or out of order in:\n{log}"));
        at += i + line.len();
    }
    assert!(!log.contains("TW-END"), "{log}");

    // Warm: the second invocation runs in the same process, and the pool kept one worker.
    let again = run(&rt, &s, &code, &call("req-2", json!({}), 5)).await;
    assert_eq!(again.result.unwrap()["pid"], v["pid"]);
    assert_eq!(rt.idle_workers("f-ctx"), 1);
}

#[tokio::test]
async fn the_initializer_runs_once_per_worker_and_vendored_packages_import() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(&dir).await;
    let code = zip_of(&[
        (
            "main.py",
            "import vendored\nSTATE = {'init': 0, 'calls': 0}\n\
             def init(context):\n    STATE['init'] += 1\n    print('initialised')\n\
             def run(event, context):\n    STATE['calls'] += 1\n    return dict(STATE, lib=vendored.NAME)\n",
        ),
        ("vendored/__init__.py", "NAME = 'vendored-lib'\n"),
    ]);
    let mut s = setup("f-init", &code, "main.run");
    s.initializer = Some("main.init".into());
    let first = run(&rt, &s, &code, &call("r1", json!({}), 5)).await;
    assert_eq!(
        first.result.unwrap(),
        json!({"init": 1, "calls": 1, "lib": "vendored-lib"})
    );
    assert!(first.log.contains("initialised"), "{}", first.log);
    let second = run(&rt, &s, &code, &call("r2", json!({}), 5)).await;
    assert_eq!(
        second.result.unwrap(),
        json!({"init": 1, "calls": 2, "lib": "vendored-lib"})
    );
    assert!(!second.log.contains("initialised"), "{}", second.log);

    // A failing initializer fails the invocation with its traceback.
    let bad = zip_of(&[(
        "main.py",
        "def init(context):\n    raise RuntimeError('no database')\ndef run(e, c):\n    return 1\n",
    )]);
    let mut s = setup("f-init-bad", &bad, "main.run");
    s.initializer = Some("main.init".into());
    let o = run(&rt, &s, &bad, &call("r3", json!({}), 5)).await;
    let e = o.result.unwrap_err();
    assert_eq!(
        e,
        "initializer `main.init` failed: RuntimeError: no database"
    );
    assert!(o.log.contains("Traceback"), "{}", o.log);
    assert!(o.worker_replaced);
}

#[tokio::test]
async fn bad_code_fails_one_invocation_precisely_and_the_worker_is_replaced() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(&dir).await;
    let fine = "def handler(event, context):\n    return 'ok'\n";

    // (files, handler, expected error prefix)
    type Case<'a> = (Vec<(&'a str, &'a str)>, &'a str, &'a str);
    let cases: Vec<Case> = vec![
        (
            vec![("index.py", fine)],
            "main.handler",
            "handler `main.handler`: module `main` not found in the code package",
        ),
        (
            vec![("index.py", fine)],
            "index.nothere",
            "handler `index.nothere`: module `index` has no function `nothere`",
        ),
        (
            vec![("index.py", "def handler(event, context)\n    return 1\n")],
            "index.handler",
            "handler `index.handler`: importing `index` failed:",
        ),
        (
            vec![(
                "index.py",
                "def handler(event, context):\n    return {1, 2}\n",
            )],
            "index.handler",
            "the handler's return value is not JSON-serialisable: TypeError: Object of type set is not JSON serializable",
        ),
        (
            vec![(
                "index.py",
                "def handler(event, context):\n    raise ValueError('bad event')\n",
            )],
            "index.handler",
            "ValueError: bad event",
        ),
    ];
    for (i, (files, handler, want)) in cases.iter().enumerate() {
        let code = zip_of(files);
        let s = setup(&format!("f-bad-{i}"), &code, handler);
        let o = run(&rt, &s, &code, &call("r", json!({}), 5)).await;
        let e = o.result.clone().unwrap_err();
        assert!(e.starts_with(want), "case {i}: {e}");
        assert!(
            o.log.contains(&format!("ERROR {want}")),
            "case {i}: {}",
            o.log
        );
    }
    // The syntax error's log names it with the line.
    let code = zip_of(&[("index.py", "def handler(event, context)\n    return 1\n")]);
    let o = run(
        &rt,
        &setup("f-syntax", &code, "index.handler"),
        &code,
        &call("r", json!({}), 5),
    )
    .await;
    assert!(o.log.contains("SyntaxError"), "{}", o.log);
    assert!(o.log.contains("index.py\", line 1"), "{}", o.log);
    assert!(o.worker_replaced);

    // An exception keeps the worker (its state is intact); the traceback is in the log.
    let code = zip_of(&[(
        "index.py",
        "def handler(event, context):\n    if event.get('fail'):\n        raise KeyError('x')\n    return 'fine'\n",
    )]);
    let s = setup("f-exc", &code, "index.handler");
    let o = run(&rt, &s, &code, &call("r1", json!({"fail": true}), 5)).await;
    assert_eq!(o.result.unwrap_err(), "KeyError: 'x'");
    assert!(
        o.log.contains("Traceback (most recent call last)"),
        "{}",
        o.log
    );
    assert!(o.log.contains("in handler"), "{}", o.log);
    assert!(!o.worker_replaced);
    let o = run(&rt, &s, &code, &call("r2", json!({}), 5)).await;
    assert_eq!(o.result.unwrap(), json!("fine"));
}

#[tokio::test]
async fn timeouts_memory_and_output_floods_stop_the_worker_and_the_next_call_works() {
    let dir = tempfile::tempdir().unwrap();
    let rt = runtime(&dir).await;
    let code = zip_of(&[(
        "index.py",
        r#"
import os, sys, time
def handler(event, context):
    mode = event.get("mode")
    if mode == "hang":
        while True:
            time.sleep(0.05)
    if mode == "memory":
        blocks = []
        for _ in range(64):
            blocks.append(bytearray(16 * 1024 * 1024))
        return len(blocks)
    if mode == "flood":
        chunk = "x" * 1023 + "\n"
        for _ in range(100 * 1024):
            sys.stdout.write(chunk)
        return "printed 100 MB"
    if mode == "exit":
        os._exit(3)
    if mode == "big":
        return "x" * (17 * 1024 * 1024)
    return os.getpid()
"#,
    )]);
    let mut s = setup("f-limits", &code, "index.handler");
    s.memory_mb = 256;
    let pid = run(&rt, &s, &code, &call("warm", json!({}), 3))
        .await
        .result
        .unwrap();

    let started = std::time::Instant::now();
    let o = run(&rt, &s, &code, &call("t", json!({"mode": "hang"}), 1)).await;
    assert_eq!(
        o.result.clone().unwrap_err(),
        "Invoke task timed out after 1 s; the worker was stopped"
    );
    assert!(started.elapsed() < Duration::from_secs(3));
    assert!(o.worker_replaced);
    assert!(
        o.log.contains("ERROR Invoke task timed out after 1 s"),
        "{}",
        o.log
    );

    let o = run(&rt, &s, &code, &call("m", json!({"mode": "memory"}), 10)).await;
    assert_eq!(
        o.result.clone().unwrap_err(),
        "MemoryError: the function exceeded its memory limit"
    );
    assert!(o.worker_replaced);

    let o = run(&rt, &s, &code, &call("f", json!({"mode": "flood"}), 30)).await;
    assert_eq!(
        o.result.clone().unwrap_err(),
        "the function wrote more than 4 MB to stdout/stderr; the worker was stopped"
    );
    assert!(
        o.log.len() <= 70 * 1024,
        "the log is bounded: {}",
        o.log.len()
    );

    let o = run(&rt, &s, &code, &call("x", json!({"mode": "exit"}), 5)).await;
    assert_eq!(
        o.result.clone().unwrap_err(),
        "the worker exited with status 3 during the invocation"
    );

    let o = run(&rt, &s, &code, &call("b", json!({"mode": "big"}), 10)).await;
    assert_eq!(
        o.result.clone().unwrap_err(),
        "the result is larger than 16 MB; the worker was stopped"
    );
    assert!(o.worker_replaced);

    // After all that, a fresh worker answers (a different process than the first one).
    let o = run(&rt, &s, &code, &call("after", json!({}), 5)).await;
    let new_pid = o.result.unwrap();
    assert_ne!(new_pid, pid);
    assert_eq!(rt.idle_workers("f-limits"), 1);
}

#[tokio::test]
async fn a_code_update_rolls_workers_over_without_losing_running_invocations() {
    let dir = tempfile::tempdir().unwrap();
    let rt = Arc::new(runtime(&dir).await);
    let v1 = zip_of(&[(
        "index.py",
        "import time\ndef handler(event, context):\n    time.sleep(event.get('sleep', 0))\n    return 'v1'\n",
    )]);
    let v2 = zip_of(&[(
        "index.py",
        "def handler(event, context):\n    return 'v2'\n",
    )]);
    let s1 = setup("f-roll", &v1, "index.handler");
    let s2 = setup("f-roll", &v2, "index.handler");
    assert_eq!(
        run(&rt, &s1, &v1, &call("a", json!({}), 5))
            .await
            .result
            .unwrap(),
        "v1"
    );
    let slow = {
        let (rt, s1, v1) = (rt.clone(), s1.clone(), v1.clone());
        tokio::spawn(
            async move { run(&rt, &s1, &v1, &call("slow", json!({"sleep": 1.5}), 10)).await },
        )
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    // The update: new invocations run the new code at once.
    assert_eq!(
        run(&rt, &s2, &v2, &call("b", json!({}), 5))
            .await
            .result
            .unwrap(),
        "v2"
    );
    // The one already running on v1 finishes on v1, and its worker is retired afterwards.
    let slow = slow.await.unwrap();
    assert_eq!(slow.result.unwrap(), "v1");
    assert!(slow.worker_replaced);
    assert_eq!(rt.idle_workers("f-roll"), 1);
    assert_eq!(
        run(&rt, &s2, &v2, &call("c", json!({}), 5))
            .await
            .result
            .unwrap(),
        "v2"
    );

    // Inline code is written as the handler's module.
    let inline = Code {
        kind: CodeKind::Inline,
        bytes: b"def go(event, context):\n    return event['x'] * 2\n".to_vec(),
    };
    let s = setup("f-inline", &inline, "app.go");
    assert_eq!(
        run(&rt, &s, &inline, &call("i", json!({"x": 21}), 5))
            .await
            .result
            .unwrap(),
        42
    );
}
