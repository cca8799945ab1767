//! HTTPS for the tests: a throwaway CA and a server certificate for `127.0.0.1`/`localhost`
//! (rcgen), and a real HTTPS receiver (Python's `http.server` wrapped with `ssl`) that appends
//! every POST it gets as one JSON line to a file.
#![allow(dead_code, clippy::unwrap_used)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

// Mounted next to `mod common` (`#[path = "common/tls.rs"] mod tls;`).
use crate::common::receiver::Received;

/// A CA and one server certificate it issued, all PEM.
pub struct TestPki {
    pub ca_pem: String,
    pub server_cert_pem: String,
    pub server_key_pem: String,
}

/// A new CA, and a server certificate signed by it for `127.0.0.1` and `localhost`.
pub fn test_pki() -> TestPki {
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DistinguishedName, DnType,
        ExtendedKeyUsagePurpose, IsCa, KeyPair, KeyUsagePurpose,
    };
    let mut ca_params = CertificateParams::new(Vec::<String>::new()).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "trailwatch test CA");
    ca_params.distinguished_name = dn;
    ca_params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca_params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca = CertifiedIssuer::self_signed(ca_params, KeyPair::generate().unwrap()).unwrap();

    let mut params =
        CertificateParams::new(vec!["127.0.0.1".to_owned(), "localhost".to_owned()]).unwrap();
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, "127.0.0.1");
    params.distinguished_name = dn;
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, &ca).unwrap();
    TestPki {
        ca_pem: ca.pem(),
        server_cert_pem: cert.pem(),
        server_key_pem: key.serialize_pem(),
    }
}

const HTTPS_RECEIVER: &str = r#"
import http.server, json, ssl, sys
cert, key, out = sys.argv[1:4]

class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_POST(self):
        n = int(self.headers.get("content-length") or 0)
        body = self.rfile.read(n).decode("utf-8")
        record = {"path": self.path,
                  "headers": [[k, v] for k, v in self.headers.items()],
                  "body": body}
        with open(out, "a", encoding="utf-8") as f:
            f.write(json.dumps(record) + "\n")
        self.send_response(200)
        self.send_header("content-length", "0")
        self.end_headers()

    def log_message(self, *args):
        pass

server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
ctx.load_cert_chain(cert, key)
server.socket = ctx.wrap_socket(server.socket, server_side=True)
print(server.server_address[1], flush=True)
server.serve_forever()
"#;

/// A real HTTPS receiver on 127.0.0.1. Killed on drop.
pub struct HttpsReceiver {
    child: Child,
    pub url: String,
    out: PathBuf,
    _dir: tempfile::TempDir,
}

impl HttpsReceiver {
    /// Serves `POST /hook` over TLS with the given certificate and key (PEM).
    pub fn start(cert_pem: &str, key_pem: &str) -> HttpsReceiver {
        let dir = tempfile::tempdir().unwrap();
        let cert = dir.path().join("server.pem");
        let key = dir.path().join("server.key");
        let out = dir.path().join("received.jsonl");
        std::fs::write(&cert, cert_pem).unwrap();
        std::fs::write(&key, key_pem).unwrap();
        let log = dir.path().join("receiver.log");
        let mut child = Command::new("python3")
            .arg("-c")
            .arg(HTTPS_RECEIVER)
            .arg(&cert)
            .arg(&key)
            .arg(&out)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(std::fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let port: u16 = line.trim().parse().unwrap_or_else(|_| {
            panic!(
                "the HTTPS receiver did not start:\n{}",
                std::fs::read_to_string(&log).unwrap_or_default()
            )
        });
        HttpsReceiver {
            child,
            url: format!("https://127.0.0.1:{port}/hook"),
            out,
            _dir: dir,
        }
    }

    pub fn path(&self) -> &Path {
        &self.out
    }

    /// Every complete request recorded so far.
    pub fn all(&self) -> Vec<Received> {
        let text = std::fs::read_to_string(&self.out).unwrap_or_default();
        let complete = match text.rfind('\n') {
            Some(i) => &text[..=i],
            None => "",
        };
        complete
            .lines()
            .map(|l| {
                let r: Value = serde_json::from_str(l).unwrap();
                let headers = r["headers"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|h| {
                        (
                            h[0].as_str().unwrap().to_owned(),
                            h[1].as_str().unwrap().to_owned(),
                        )
                    })
                    .collect();
                Received {
                    headers,
                    body: serde_json::from_str(r["body"].as_str().unwrap()).unwrap_or(Value::Null),
                }
            })
            .collect()
    }

    pub fn of_type(&self, t: &str) -> Vec<Received> {
        self.all()
            .into_iter()
            .filter(|r| r.body["type"] == t)
            .collect()
    }

    /// Waits (bounded) until `n` messages of type `t` arrived.
    pub async fn wait_for(&self, t: &str, n: usize, timeout: Duration) -> Vec<Received> {
        let deadline = Instant::now() + timeout;
        loop {
            let got = self.of_type(t);
            if got.len() >= n || Instant::now() > deadline {
                return got;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    }
}

impl Drop for HttpsReceiver {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
