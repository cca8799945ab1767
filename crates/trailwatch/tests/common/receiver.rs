//! A real HTTP receiver for notifications: records every POST, can fail on purpose, and
//! verifies each message's signature with the certificate served at its `signing_cert_url`.
#![allow(dead_code, clippy::unwrap_used)]

use std::sync::atomic::{AtomicU16, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use serde_json::Value;

#[derive(Debug, Clone)]
pub struct Received {
    pub headers: Vec<(String, String)>,
    pub body: Value,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

#[derive(Default)]
pub struct Behaviour {
    /// Answer this many requests with `fail_status` before succeeding.
    pub fail_first: AtomicUsize,
    pub fail_status: AtomicU16,
    /// Requests that failed on purpose.
    pub failed: AtomicUsize,
}

pub struct Receiver {
    pub url: String,
    pub received: Arc<Mutex<Vec<Received>>>,
    pub behaviour: Arc<Behaviour>,
    task: tokio::task::JoinHandle<()>,
}

type Shared = (Arc<Mutex<Vec<Received>>>, Arc<Behaviour>);

async fn handle(
    State((received, behaviour)): State<Shared>,
    headers: HeaderMap,
    body: Bytes,
) -> StatusCode {
    let remaining = behaviour.fail_first.load(Ordering::SeqCst);
    if remaining > 0 {
        behaviour.fail_first.fetch_sub(1, Ordering::SeqCst);
        behaviour.failed.fetch_add(1, Ordering::SeqCst);
        return StatusCode::from_u16(behaviour.fail_status.load(Ordering::SeqCst))
            .unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
    }
    let body: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let headers = headers
        .iter()
        .map(|(k, v)| (k.as_str().to_owned(), v.to_str().unwrap_or("").to_owned()))
        .collect();
    received.lock().unwrap().push(Received { headers, body });
    StatusCode::OK
}

impl Receiver {
    pub async fn start() -> Receiver {
        Receiver::start_on(0).await
    }

    /// Starts on a given port (0 = any): a receiver can come back where it was.
    pub async fn start_on(port: u16) -> Receiver {
        let received = Arc::new(Mutex::new(Vec::new()));
        let behaviour = Arc::new(Behaviour::default());
        behaviour.fail_status.store(503, Ordering::SeqCst);
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(handle))
            .with_state((received.clone(), behaviour.clone()));
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", port))
            .await
            .unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        Receiver {
            url,
            received,
            behaviour,
            task,
        }
    }

    pub fn all(&self) -> Vec<Received> {
        self.received.lock().unwrap().clone()
    }

    /// Messages of one type (`Notification`, `SubscriptionConfirmation`).
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

impl Drop for Receiver {
    fn drop(&mut self) {
        self.task.abort();
    }
}

/// Verifies a received message against the certificate at its `signing_cert_url`.
pub async fn verify_signed(msg: &Received) -> Result<(), String> {
    let url = msg.body["signing_cert_url"]
        .as_str()
        .ok_or("no signing_cert_url")?;
    let pem = reqwest::get(url)
        .await
        .map_err(|e| e.to_string())?
        .text()
        .await
        .map_err(|e| e.to_string())?;
    trailwatch_notify::verify_notification(&msg.body, &pem)
}
