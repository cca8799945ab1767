//! A real SMTP server for the email tests: Debian's `aiosmtpd` (package `python3-aiosmtpd`,
//! installed by `.ci/run`) with its `Mailbox` handler, which stores every accepted mail as a file
//! in `DIR/new/` (a maildir, created by the handler). Plus a small RFC 5322 reader for those files.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine;

pub const AIOSMTPD: &str = "/usr/bin/aiosmtpd";
/// The interpreter `/usr/bin/aiosmtpd` runs with (the Debian package's).
const SYSTEM_PYTHON: &str = "/usr/bin/python3";

fn check_installed() {
    assert!(
        Path::new(AIOSMTPD).exists(),
        "{AIOSMTPD} is missing: install the Debian package python3-aiosmtpd (.ci/run does)"
    );
}

/// A free TCP port on 127.0.0.1 (bound and released at once).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap().port()
}

fn wait_listening(port: u16, child: &mut Child, log: &Path) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return;
        }
        if let Ok(Some(status)) = child.try_wait() {
            panic!(
                "aiosmtpd exited ({status}) before listening on {port}:\n{}",
                std::fs::read_to_string(log).unwrap_or_default()
            );
        }
        assert!(
            Instant::now() < deadline,
            "aiosmtpd did not listen on {port} in 15 s"
        );
        std::thread::sleep(Duration::from_millis(10));
    }
}

fn args(port: u16, dir: &Path) -> Vec<String> {
    vec![
        "-n".into(),
        "-l".into(),
        format!("127.0.0.1:{port}"),
        "-c".into(),
        "aiosmtpd.handlers.Mailbox".into(),
        dir.display().to_string(),
    ]
}

/// A running `aiosmtpd`. Killed (SIGKILL) on drop.
pub struct SmtpServer {
    child: Child,
    pub port: u16,
    pub dir: PathBuf,
}

impl SmtpServer {
    /// `/usr/bin/aiosmtpd -n -l 127.0.0.1:PORT -c aiosmtpd.handlers.Mailbox DIR`; returns once
    /// the port accepts connections.
    pub fn start(port: u16, dir: &Path) -> SmtpServer {
        check_installed();
        let log = dir.with_extension("aiosmtpd.log");
        let mut child = Command::new(AIOSMTPD)
            .args(args(port, dir))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        wait_listening(port, &mut child, &log);
        SmtpServer {
            child,
            port,
            dir: dir.to_owned(),
        }
    }

    /// Stops the server at once (SIGKILL): the port refuses connections afterwards.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    pub fn mails(&self) -> Vec<Mail> {
        read_maildir(&self.dir)
    }

    /// Waits (bounded) until `n` mails satisfying `pred` are in the maildir; returns them all.
    pub async fn wait_mails(
        &self,
        n: usize,
        timeout: Duration,
        pred: impl Fn(&Mail) -> bool,
    ) -> Vec<Mail> {
        wait_mails(&self.dir, n, timeout, pred).await
    }
}

impl Drop for SmtpServer {
    fn drop(&mut self) {
        self.kill();
    }
}

/// The same `aiosmtpd` entry point, started ahead of time with its modules already imported and
/// waiting for [`SmtpStandby::go`] to bind: a restart then takes milliseconds, not the 0.1–0.5 s
/// of a Python start, so a test can bring the server back at a precise moment.
pub struct SmtpStandby {
    child: Option<Child>,
    stdin: Option<ChildStdin>,
    port: u16,
    dir: PathBuf,
    log: PathBuf,
}

impl SmtpStandby {
    pub fn prepare(port: u16, dir: &Path) -> SmtpStandby {
        check_installed();
        let log = dir.with_extension("aiosmtpd-standby.log");
        let script = "import os, sys\nfrom aiosmtpd.main import main\nimport aiosmtpd.handlers\nprint('ready', flush=True)\nsys.stdout = open(os.devnull, 'w')\nsys.stdin.readline()\nmain(sys.argv[1:])\n";
        let mut child = Command::new(SYSTEM_PYTHON)
            .arg("-c")
            .arg(script)
            .args(args(port, dir))
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let stdin = child.stdin.take();
        // Returns once the modules are imported.
        let mut ready = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut ready)
            .unwrap();
        assert_eq!(
            ready.trim(),
            "ready",
            "the aiosmtpd standby did not start:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        SmtpStandby {
            child: Some(child),
            stdin,
            port,
            dir: dir.to_owned(),
            log,
        }
    }

    /// Binds the port and serves; returns once it accepts connections.
    pub fn go(mut self) -> SmtpServer {
        let mut stdin = self.stdin.take().unwrap();
        stdin.write_all(b"go\n").unwrap();
        stdin.flush().unwrap();
        let mut child = self.child.take().unwrap();
        wait_listening(self.port, &mut child, &self.log);
        SmtpServer {
            child,
            port: self.port,
            dir: self.dir.clone(),
        }
    }
}

impl Drop for SmtpStandby {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// One mail as stored by the `Mailbox` handler.
#[derive(Debug, Clone)]
pub struct Mail {
    pub file: PathBuf,
    /// Unfolded header fields, in order.
    pub headers: Vec<(String, String)>,
    /// The body with its Content-Transfer-Encoding undone.
    pub body: String,
    /// The body as stored (still transfer-encoded).
    pub raw_body: String,
}

impl Mail {
    /// Parses RFC 5322 text: header fields (folded lines joined) up to the first empty line,
    /// then the body, decoded per `Content-Transfer-Encoding` (7bit, 8bit, quoted-printable or
    /// base64).
    pub fn parse(file: &Path, text: &str) -> Mail {
        let text = text.replace("\r\n", "\n");
        let (head, raw_body) = text.split_once("\n\n").unwrap_or((text.as_str(), ""));
        let mut headers: Vec<(String, String)> = Vec::new();
        for line in head.lines() {
            if line.starts_with([' ', '\t']) {
                if let Some((_, v)) = headers.last_mut() {
                    v.push(' ');
                    v.push_str(line.trim());
                }
            } else if let Some((k, v)) = line.split_once(':') {
                headers.push((k.trim().to_owned(), v.trim().to_owned()));
            }
        }
        let mut mail = Mail {
            file: file.to_owned(),
            headers,
            body: String::new(),
            raw_body: raw_body.to_owned(),
        };
        let encoding = mail
            .header("content-transfer-encoding")
            .unwrap_or("7bit")
            .to_ascii_lowercase();
        mail.body = match encoding.as_str() {
            "quoted-printable" => decode_quoted_printable(raw_body),
            "base64" => {
                let compact: String = raw_body.split_whitespace().collect();
                String::from_utf8(
                    base64::engine::general_purpose::STANDARD
                        .decode(compact)
                        .unwrap(),
                )
                .unwrap()
            }
            _ => raw_body.to_owned(),
        };
        mail
    }

    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// The first `http(s)://` link in the body containing `needle`.
    pub fn link_containing(&self, needle: &str) -> Option<String> {
        find_link(&self.body, needle)
    }
}

/// The first `http(s)://` link in `text` containing `needle` (links end at whitespace).
pub fn find_link(text: &str, needle: &str) -> Option<String> {
    text.split_whitespace()
        .filter_map(|w| w.find("http").map(|i| &w[i..]))
        .filter(|w| w.starts_with("http://") || w.starts_with("https://"))
        .find(|w| w.contains(needle))
        .map(str::to_owned)
}

/// RFC 2045 quoted-printable: `=` at a line end is a soft break, `=XX` one byte.
pub fn decode_quoted_printable(s: &str) -> String {
    let joined = s.replace("=\n", "");
    let b = joined.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'='
            && let Some(hex) = joined.get(i + 1..i + 3)
            && let Ok(v) = u8::from_str_radix(hex, 16)
        {
            out.push(v);
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8(out).unwrap()
}

/// Every mail in `DIR/new/`, oldest first (maildir names start with the delivery time).
pub fn read_maildir(dir: &Path) -> Vec<Mail> {
    let Ok(entries) = std::fs::read_dir(dir.join("new")) else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries.filter_map(|e| e.ok().map(|e| e.path())).collect();
    files.sort();
    files
        .iter()
        .filter_map(|f| std::fs::read_to_string(f).ok().map(|t| Mail::parse(f, &t)))
        .collect()
}

/// Waits (bounded) until `n` mails in `dir` satisfy `pred`; returns those.
pub async fn wait_mails(
    dir: &Path,
    n: usize,
    timeout: Duration,
    pred: impl Fn(&Mail) -> bool,
) -> Vec<Mail> {
    let deadline = Instant::now() + timeout;
    loop {
        let got: Vec<Mail> = read_maildir(dir).into_iter().filter(|m| pred(m)).collect();
        if got.len() >= n || Instant::now() > deadline {
            return got;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}
