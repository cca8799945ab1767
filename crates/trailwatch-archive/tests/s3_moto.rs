//! The S3 backend against a real S3-compatible server on 127.0.0.1: moto (PyPI `moto[server]`,
//! tested with 5.2.5).
//!
//! The server is found through `TW_MOTO_SERVER` (path to `moto_server`) or `moto_server` on
//! `PATH`. If neither exists the test FAILS (it never passes silently); install it with
//!
//! ```sh
//! python3 -m venv /tmp/motovenv && /tmp/motovenv/bin/pip install 'moto[server]==5.2.5'
//! export TW_MOTO_SERVER=/tmp/motovenv/bin/moto_server
//! ```
//!
//! moto checks `If-Match` / `If-None-Match` on `PutObject`, but `moto_server` always serves
//! requests on several threads and the check and the store are not one atomic step: hammering it
//! with 16 conditional writers lost 1 update in about 9,600 commits. That would make this test
//! flaky for reasons that are not ours, so the test runs `moto_server`'s own `main` with the
//! interpreter `moto_server` was installed with (read from its `#!` line), single-threaded
//! (werkzeug `threaded=False`): each request is then handled alone, as atomic as on S3.

mod common;

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use common::{assert_exactly_once, key_for, lines_for};
use trailwatch_archive::object_store::{Attribute, GetOptions, path::Path as ObjectPath};
use trailwatch_archive::{
    APPLIED_KEYS_REMEMBERED, AppendOutcome, ObjectStoreConfig, Objects, ObjectsError, PutIfAbsent,
    SecretKey,
};

const BUCKET: &str = "trailwatch-alarms";
const KEY: &str = "functions/log-alarm/alarm.log";
const SECRET: &str = "moto-secret-that-must-not-leak";

const INSTALL_HINT: &str = "moto_server not found. Set TW_MOTO_SERVER=/path/to/moto_server or put \
    moto_server on PATH. Install it with: python3 -m venv /tmp/motovenv && \
    /tmp/motovenv/bin/pip install 'moto[server]==5.2.5' && \
    export TW_MOTO_SERVER=/tmp/motovenv/bin/moto_server";

/// Runs `moto.server.main` with werkzeug's `run_simple` forced to one thread.
const LAUNCHER: &str = r#"
import sys
import moto.server as server
import werkzeug.serving as serving

def run_simple(*args, **kwargs):
    kwargs["threaded"] = False
    return serving.run_simple(*args, **kwargs)

server.run_simple = run_simple
server.main(["-H", sys.argv[1], "-p", sys.argv[2]])
"#;

struct Moto {
    child: Child,
    port: u16,
    _logs: tempfile::TempDir,
}

impl Drop for Moto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn find_moto_server() -> PathBuf {
    if let Some(p) = std::env::var_os("TW_MOTO_SERVER") {
        let p = PathBuf::from(p);
        assert!(
            p.is_file(),
            "TW_MOTO_SERVER={} is not a file. {INSTALL_HINT}",
            p.display()
        );
        return p;
    }
    std::env::var_os("PATH")
        .and_then(|paths| {
            std::env::split_paths(&paths)
                .map(|d| d.join("moto_server"))
                .find(|p| p.is_file())
        })
        .unwrap_or_else(|| panic!("{INSTALL_HINT}"))
}

/// The Python interpreter of a pip console script: its `#!` line, or the `exec` line of pip's
/// `/bin/sh` trampoline (used when the interpreter path is long or has spaces). When the script
/// is not run by Python directly (a pyenv shim is a bash script), the `python3` beside it.
fn interpreter_of(script: &Path) -> PathBuf {
    let text = std::fs::read_to_string(script)
        .unwrap_or_else(|e| panic!("read {}: {e}. {INSTALL_HINT}", script.display()));
    let mut lines = text.lines();
    let shebang = lines
        .next()
        .and_then(|l| l.strip_prefix("#!"))
        .map(str::trim)
        .unwrap_or_default();
    let candidate = if shebang == "/bin/sh" {
        lines
            .next()
            .and_then(|exec| exec.split('"').nth(1))
            .map(PathBuf::from)
    } else {
        let mut words = shebang.split_whitespace();
        match words.next() {
            Some(p) if p.ends_with("/env") => words.next().map(PathBuf::from),
            Some(p) => Some(PathBuf::from(p)),
            None => None,
        }
    };
    let is_python = |p: &PathBuf| {
        p.file_name()
            .and_then(|n| n.to_str())
            .is_some_and(|n| n.starts_with("python"))
    };
    if let Some(p) = candidate.filter(is_python) {
        return p;
    }
    let sibling = script.with_file_name("python3");
    assert!(
        sibling.exists(),
        "cannot tell which Python runs {} (no python #! line, no python3 beside it). {INSTALL_HINT}",
        script.display()
    );
    sibling
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("free port")
        .port()
}

fn http(port: u16, request: &str) -> std::io::Result<String> {
    let mut s = TcpStream::connect(("127.0.0.1", port))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    s.write_all(request.as_bytes())?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}

fn start_moto() -> Moto {
    let script = find_moto_server();
    let python = interpreter_of(&script);
    let port = free_port();
    let logs = tempfile::tempdir().expect("tempdir");
    let log_path = logs.path().join("moto.log");
    let log = std::fs::File::create(&log_path).expect("log file");
    let child = Command::new(&python)
        .args(["-c", LAUNCHER, "127.0.0.1", &port.to_string()])
        .stdin(Stdio::null())
        .stdout(log.try_clone().expect("log"))
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "start moto with {} (interpreter of {}): {e}. {INSTALL_HINT}",
                python.display(),
                script.display()
            )
        });
    let mut moto = Moto {
        child,
        port,
        _logs: logs,
    };
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Ok(Some(status)) = moto.child.try_wait() {
            panic!(
                "moto exited ({status}) before answering:\n{}",
                std::fs::read_to_string(&log_path).unwrap_or_default()
            );
        }
        if let Ok(resp) = http(port, "GET / HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n")
            && resp.starts_with("HTTP/1.")
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "moto did not answer on 127.0.0.1:{port} within 60 s:\n{}",
            std::fs::read_to_string(&log_path).unwrap_or_default()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let resp = http(
        port,
        &format!(
            "PUT /{BUCKET} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        ),
    )
    .expect("create bucket");
    assert!(
        resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200"),
        "{resp}"
    );
    moto.port = port;
    moto
}

fn open(port: u16) -> Objects {
    Objects::open(&ObjectStoreConfig::S3 {
        endpoint: format!("http://127.0.0.1:{port}"),
        region: "us-east-1".to_owned(),
        access_key_id: "testing".to_owned(),
        secret_access_key: SecretKey::new(SECRET),
        allow_http: true,
        virtual_hosted_style: false,
    })
    .expect("open s3 store")
}

async fn text(objects: &Objects) -> String {
    let bytes = objects
        .get(BUCKET, KEY)
        .await
        .expect("get")
        .expect("object exists");
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn s3_compatible_store() {
    let moto = start_moto();
    let objects = Arc::new(open(moto.port));

    // The store enforces If-None-Match and If-Match on PutObject.
    objects
        .verify_conditional_writes(BUCKET)
        .await
        .expect("moto enforces conditional writes");

    // Immutable objects, get and list.
    let trace_key = "CloudTraces/us-east-1/2026/11/23/system/ECS/trace_1.json.gz";
    assert_eq!(objects.get(BUCKET, trace_key).await.expect("get"), None);
    let body = Bytes::from_static(b"gzip bytes");
    assert_eq!(
        objects
            .put_if_absent(BUCKET, trace_key, body.clone())
            .await
            .expect("put"),
        PutIfAbsent::Created
    );
    assert_eq!(
        objects
            .put_if_absent(BUCKET, trace_key, body.clone())
            .await
            .expect("put again"),
        PutIfAbsent::AlreadyExists { identical: true }
    );
    assert_eq!(
        objects
            .put_if_absent(BUCKET, trace_key, Bytes::from_static(b"different"))
            .await
            .expect("put different"),
        PutIfAbsent::AlreadyExists { identical: false }
    );
    assert_eq!(
        objects.get(BUCKET, trace_key).await.expect("get"),
        Some(body)
    );
    let listed = objects
        .list(BUCKET, "CloudTraces/us-east-1")
        .await
        .expect("list");
    assert_eq!(
        listed.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        [trace_key]
    );
    assert_eq!(listed[0].size, 10);
    assert!(
        objects
            .list(BUCKET, ".trailwatch")
            .await
            .expect("list")
            .is_empty(),
        "the conditional-write probe was deleted"
    );

    // 8 concurrent appenders × 20 calls.
    const TASKS: usize = 8;
    const CALLS: usize = 20;
    let started = Instant::now();
    let mut handles = Vec::new();
    for w in 0..TASKS {
        let objects = objects.clone();
        handles.push(tokio::spawn(async move {
            let mut attempts = 0;
            for c in 0..CALLS {
                match objects
                    .append_lines(BUCKET, KEY, &lines_for(w, c), &key_for(w, c))
                    .await
                    .expect("append")
                {
                    AppendOutcome::Appended { attempts: a } => attempts += a,
                    AppendOutcome::AlreadyApplied => panic!("fresh call w{w}-c{c} seen as applied"),
                }
            }
            attempts
        }));
    }
    let mut attempts = 0;
    for h in handles {
        attempts += h.await.expect("task");
    }
    println!(
        "{} calls took {attempts} conditional writes in {:?}",
        TASKS * CALLS,
        started.elapsed()
    );
    let calls: Vec<_> = (0..TASKS)
        .flat_map(|w| (0..CALLS).map(move |c| (w, c)))
        .collect();
    let after = text(&objects).await;
    assert_exactly_once(&after, &calls);

    // Retrying any of the last APPLIED_KEYS_REMEMBERED calls writes nothing.
    let order = common::calls_in_order(&after);
    assert_eq!(order.len(), TASKS * CALLS);
    for &(w, c) in &order[order.len() - APPLIED_KEYS_REMEMBERED..] {
        assert_eq!(
            objects
                .append_lines(BUCKET, KEY, &lines_for(w, c), &key_for(w, c))
                .await
                .expect("retry"),
            AppendOutcome::AlreadyApplied,
            "retry of w{w}-c{c}"
        );
    }
    assert_eq!(text(&objects).await, after);

    // The record travels with the object, as its user metadata.
    let store = objects.bucket(BUCKET).expect("bucket");
    let got = store
        .get_opts(&ObjectPath::from(KEY), GetOptions::default())
        .await
        .expect("raw get");
    let record = got
        .attributes
        .get(&Attribute::Metadata("tw-applied".into()))
        .expect("x-amz-meta-tw-applied")
        .to_string();
    assert_eq!(record.split(',').count(), APPLIED_KEYS_REMEMBERED);

    // Errors name what failed and never the secret.
    let errors = [
        objects.get("no-such-bucket", "x").await.map(|_| ()),
        objects.list("no-such-bucket", "").await.map(|_| ()),
        objects
            .append_lines("no-such-bucket", "x", &["a".into()], "k")
            .await
            .map(|_| ()),
        objects
            .put_if_absent("no-such-bucket", "x", Bytes::new())
            .await
            .map(|_| ()),
    ];
    for result in errors {
        let e = result.expect_err("missing bucket");
        assert!(matches!(e, ObjectsError::NoSuchBucket { .. }), "{e:?}");
        let msg = format!("{e} / {e:?}");
        assert!(
            msg.contains("bucket no-such-bucket does not exist"),
            "{msg}"
        );
        assert!(!msg.contains(SECRET), "{msg}");
    }
    assert!(!format!("{objects:?}").contains(SECRET));
}
