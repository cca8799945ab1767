//! A real S3-compatible server for the tests: moto (PyPI `moto[server]`, tested with 5.2.5),
//! started single-threaded (see `tests/s3_moto.rs` for why) on a free port with one bucket.

use std::io::{Read as _, Write as _};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use trailwatch_archive::{ObjectStoreConfig, Objects, SecretKey};

/// The secret the tests give moto; it must never appear in an error or `Debug` output.
pub const SECRET: &str = "moto-secret-that-must-not-leak";

pub const INSTALL_HINT: &str = "moto_server not found. Set TW_MOTO_SERVER=/path/to/moto_server or put \
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

pub struct Moto {
    pub child: Child,
    pub port: u16,
    /// The Python that runs moto (its packages include boto3).
    pub python: PathBuf,
    _logs: tempfile::TempDir,
}

impl Moto {
    /// The endpoint, `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }
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

/// Starts moto and creates `bucket` in it.
pub fn start_moto(bucket: &str) -> Moto {
    let moto = start_moto_server();
    let port = moto.port;
    let resp = http(
        port,
        &format!(
            "PUT /{bucket} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nContent-Length: 0\r\n\
             Connection: close\r\n\r\n"
        ),
    )
    .expect("create bucket");
    assert!(
        resp.starts_with("HTTP/1.1 200") || resp.starts_with("HTTP/1.0 200"),
        "{resp}"
    );
    moto
}

/// Starts moto (no bucket) and waits until it answers.
pub fn start_moto_server() -> Moto {
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
        python,
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
    moto
}

/// The store at moto's address.
pub fn s3_config(port: u16) -> ObjectStoreConfig {
    ObjectStoreConfig::S3 {
        endpoint: format!("http://127.0.0.1:{port}"),
        region: "us-east-1".to_owned(),
        access_key_id: "testing".to_owned(),
        secret_access_key: SecretKey::new(SECRET),
        allow_http: true,
        virtual_hosted_style: false,
    }
}

/// Opens the store at moto's address.
pub fn open(port: u16) -> Objects {
    Objects::open(&s3_config(port)).expect("open s3 store")
}
