//! Soak with fault injection, through the real binary and the compatible APIs only.
//!
//! The tutorial's setup (an SMN topic with a confirmed HTTP subscription to a webhook receiver
//! run here and a confirmed email subscription to a real SMTP server, the `login_audit` builtin
//! behind a CTS trigger with an IP allowlist) plus a management tracker archiving to the
//! local-folder object store every second. A sender drives a steady rate of IAM login/logout
//! traces (10% logins from disallowed addresses, each with an address of its own so that an
//! alarm names its trace), retries every batch until it is acknowledged (and resends every 50th
//! acknowledged batch on purpose), and records exactly which traces were. Meanwhile, with periods that scale with the duration
//! (`TW_SOAK_MINUTES`, default 2; the periods below are for 10 minutes):
//!
//! - the webhook receiver goes down for 30 s and comes back for 30 s, over and over (down: its
//!   port refuses connections, and connections kept alive from before answer 503);
//! - the SMTP server (aiosmtpd) is killed for a minute and started again on its port, twice;
//! - the object store is unwritable for a minute: the bucket folder is swapped (atomically, with
//!   `renameat2(RENAME_EXCHANGE)`) with a regular file, so every write under it fails with
//!   `ENOTDIR` — root ignores permissions, so `chmod` would not do — then swapped back;
//! - trailwatch is `kill -9`ed and restarted on the same port every 60 s.
//!
//! Then the faults stop and, after a bounded drain, every acknowledged trace must be stored once,
//! every disallowed login must have produced exactly one alarm at each subscriber, the archive
//! must verify clean with `trailwatch verify` and hold every acknowledged trace once, and the
//! server's RSS must not grow without bound. Copies of one delivery are at least once across a
//! `kill -9` by design (`docs/specs/smn.md`): the webhook's carry the same `message_id` and are
//! counted apart from a trace published twice (which must not happen); a mail copy carries the
//! Message-ID of the first (derived from its delivery), so every alarm has exactly one distinct
//! Message-ID, and copies are counted, printed with their delivery's attempt log, and held to the
//! bound of the deliveries in flight at each kill (`BENCHMARKS.md`, "Soak with fault injection").
//!
//! `TW_SOAK_MINUTES=10 cargo test --release -p trailwatch --test soak -- --nocapture`
#![allow(clippy::unwrap_used)]

mod common;
#[path = "common/smtp.rs"]
mod smtp;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::body::Bytes;
use axum::extract::State;
use axum::http::StatusCode;
use common::{Server, bin, list_all, login_trace};
use reqwest::Method;
use serde_json::{Value, json};
use smtp::{Mail, SmtpServer, free_port, read_maildir};
use trailwatch_client::Client;

const SENDER: &str = "alarms@trailwatch.test";
const MAILBOX: &str = "soc@example.com";
const BUCKET: &str = "soak-archive";
/// The outbox's delivery concurrency (`[notify] concurrency`, default 64): at most this many
/// deliveries are in flight in one process, so at most this many can be sent again after one
/// `kill -9` (at least once across crashes, `docs/specs/smn.md`).
const OUTBOX_CONCURRENCY: usize = 64;

/// The fault schedule for a run of `total`, scaled from the 10-minute one.
#[derive(Debug, Clone)]
struct Plan {
    total: Duration,
    rate_per_s: u32,
    /// The webhook receiver is up this long, then down this long, and so on.
    flap_half: Duration,
    kill_every: Duration,
    smtp_down: Vec<(Duration, Duration)>,
    store_down: (Duration, Duration),
    drain: Duration,
}

impl Plan {
    fn from_env() -> Plan {
        let minutes: f64 = std::env::var("TW_SOAK_MINUTES")
            .ok()
            .and_then(|v| v.parse().ok())
            .filter(|m: &f64| *m > 0.0)
            .unwrap_or(2.0);
        let rate_per_s: u32 = std::env::var("TW_SOAK_RATE")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(100);
        let total = Duration::from_secs_f64(minutes * 60.0);
        let scale = minutes / 10.0;
        let scaled = |secs: f64, min: f64| Duration::from_secs_f64((secs * scale).max(min));
        let window = scaled(60.0, 5.0);
        Plan {
            total,
            rate_per_s,
            flap_half: scaled(30.0, 3.0),
            kill_every: scaled(60.0, 8.0),
            smtp_down: vec![(total.mul_f64(0.2), window), (total.mul_f64(0.65), window)],
            store_down: (total.mul_f64(0.4), window),
            // The circuit breaker leaves a failing endpoint alone for 30 s, whatever the scale.
            drain: Duration::from_secs(150),
        }
    }

    fn in_window(t: Duration, (start, len): (Duration, Duration)) -> bool {
        t >= start && t < start + len
    }
}

// ---- the webhook receiver ----

/// Everything the webhook received, across its restarts.
#[derive(Default)]
struct Hook {
    up: AtomicBool,
    got: Mutex<Vec<Value>>,
}

async fn hook(State(h): State<Arc<Hook>>, body: Bytes) -> StatusCode {
    // Connections opened before the receiver went down are still served by their tasks.
    if !h.up.load(Ordering::SeqCst) {
        return StatusCode::SERVICE_UNAVAILABLE;
    }
    let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    h.got.lock().unwrap().push(v);
    StatusCode::OK
}

/// A receiver that can go down (its port refuses connections) and come back on the same port.
struct Webhook {
    hook: Arc<Hook>,
    port: u16,
    task: Option<tokio::task::JoinHandle<()>>,
}

impl Webhook {
    async fn start() -> Webhook {
        let mut w = Webhook {
            hook: Arc::new(Hook::default()),
            port: free_port(),
            task: None,
        };
        w.up().await;
        w
    }

    fn url(&self) -> String {
        format!("http://127.0.0.1:{}/hook", self.port)
    }

    fn is_up(&self) -> bool {
        self.task.is_some()
    }

    async fn up(&mut self) {
        if self.is_up() {
            return;
        }
        let deadline = Instant::now() + Duration::from_secs(10);
        let listener = loop {
            match tokio::net::TcpListener::bind(("127.0.0.1", self.port)).await {
                Ok(l) => break l,
                Err(e) => {
                    assert!(Instant::now() < deadline, "webhook port {}: {e}", self.port);
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
            }
        };
        let app = axum::Router::new()
            .route("/hook", axum::routing::post(hook))
            .with_state(self.hook.clone());
        self.hook.up.store(true, Ordering::SeqCst);
        self.task = Some(tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        }));
    }

    async fn down(&mut self) {
        self.hook.up.store(false, Ordering::SeqCst);
        if let Some(t) = self.task.take() {
            t.abort();
            let _ = t.await;
        }
    }

    fn of_type(&self, t: &str) -> Vec<Value> {
        self.hook
            .got
            .lock()
            .unwrap()
            .iter()
            .filter(|v| v["type"] == t)
            .cloned()
            .collect()
    }
}

// ---- the object store fault ----

/// Swaps two paths atomically (`renameat2(RENAME_EXCHANGE)`, through Python's ctypes: the test
/// crate has no libc binding).
fn exchange(a: &Path, b: &Path) {
    let script = "import ctypes, os, sys\nlibc = ctypes.CDLL(None, use_errno=True)\nr = libc.renameat2(-100, os.fsencode(sys.argv[1]), -100, os.fsencode(sys.argv[2]), 2)\nif r != 0:\n    sys.exit('renameat2: ' + os.strerror(ctypes.get_errno()))\n";
    let out = Command::new("/usr/bin/python3")
        .arg("-c")
        .arg(script)
        .arg(a)
        .arg(b)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "exchange {a:?} {b:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

/// The bucket folder of the local object store, made unwritable by swapping it with a regular
/// file: every object write under it fails with `ENOTDIR`.
struct Bucket {
    dir: PathBuf,
    blocker: PathBuf,
    down: bool,
}

impl Bucket {
    fn new(data_dir: &Path) -> Bucket {
        let objects = data_dir.join("objects");
        let blocker = objects.join(format!("{BUCKET}.blocker"));
        std::fs::write(
            &blocker,
            b"the bucket is unwritable during the soak's store outage\n",
        )
        .unwrap();
        Bucket {
            dir: objects.join(BUCKET),
            blocker,
            down: false,
        }
    }

    fn set_down(&mut self, down: bool) {
        if self.down != down {
            assert!(self.dir.exists(), "{:?} is missing", self.dir);
            exchange(&self.dir, &self.blocker);
            self.down = down;
            assert_eq!(self.dir.is_dir(), !down);
        }
    }
}

// ---- traffic ----

/// What the sender sent and which traces were acknowledged.
#[derive(Default)]
struct Ledger {
    /// Every trace id generated, with the disallowed address of a disallowed login.
    sent: Vec<(String, Option<String>)>,
    acked: HashSet<String>,
    /// Batches sent more than once (a refused connection, a timeout, an error answer).
    resent_batches: usize,
    /// Attempts that were not acknowledged (the server was down or restarting).
    failed_attempts: usize,
    /// Records answered `duplicate` (a resend of a batch stored before its answer was lost).
    duplicate_answers: usize,
    /// Every 50th acknowledged batch is sent once more on purpose: records sent again, and
    /// how many of them were answered `duplicate` (all of them, if resends are idempotent).
    deliberate_resent: usize,
    deliberate_duplicates: usize,
    /// Batches given up on (never acknowledged in 120 s).
    unacked_batches: usize,
}

/// The `k`-th disallowed address: 100.64.0.0/10, one address per alarm.
fn disallowed_ip(k: u64) -> String {
    format!("100.{}.{}.{}", 64 + (k >> 16), (k >> 8) & 255, k & 255)
}

fn trace(n: u64, name: &str, ip: &str) -> Value {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let mut trace = login_trace(&format!("user{}", n % 50), ip, now);
    trace["trace_id"] = json!(format!("soak-{n:08}"));
    trace["trace_name"] = json!(name);
    trace
}

/// Sends `rate` traces a second in batches every 100 ms until `stop`, each batch retried until
/// acknowledged (a resend of acknowledged ids is answered `duplicate`, not stored twice).
async fn send_traffic(
    client: Client,
    rate: u32,
    stop: Arc<AtomicBool>,
    ledger: Arc<Mutex<Ledger>>,
) {
    let per_batch = u64::from((rate / 10).max(1));
    let mut n: u64 = 0;
    let mut disallowed: u64 = 0;
    let started = Instant::now();
    let mut batch_no: u32 = 0;
    while !stop.load(Ordering::SeqCst) {
        let mut batch = Vec::new();
        {
            let mut l = ledger.lock().unwrap();
            for _ in 0..per_batch {
                n += 1;
                let t = if n % 10 == 3 {
                    disallowed += 1;
                    let ip = disallowed_ip(disallowed);
                    l.sent.push((format!("soak-{n:08}"), Some(ip.clone())));
                    trace(n, "login", &ip)
                } else {
                    let ip = format!("10.{}.{}.{}", (n >> 16) & 255, (n >> 8) & 255, n & 255);
                    l.sent.push((format!("soak-{n:08}"), None));
                    trace(
                        n,
                        if n.is_multiple_of(2) {
                            "login"
                        } else {
                            "logout"
                        },
                        &ip,
                    )
                };
                batch.push(t);
            }
        }
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut attempts = 0;
        let mut duplicates = 0;
        let acked = loop {
            attempts += 1;
            let r = tokio::time::timeout(Duration::from_secs(15), client.put_traces(&batch)).await;
            if let Ok(Ok(resp)) = r
                && resp.status == 201
                && resp.body["accepted"].as_u64() == Some(batch.len() as u64)
            {
                duplicates = resp.body["results"]
                    .as_array()
                    .map_or(0, |r| r.iter().filter(|r| r["duplicate"] == true).count());
                break true;
            }
            if Instant::now() > deadline {
                break false;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        {
            let mut l = ledger.lock().unwrap();
            if attempts > 1 {
                l.resent_batches += 1;
            }
            l.failed_attempts += attempts - 1;
            l.duplicate_answers += duplicates;
            if acked {
                for t in &batch {
                    l.acked.insert(t["trace_id"].as_str().unwrap().to_owned());
                }
            } else {
                l.unacked_batches += 1;
            }
        }
        // A client that lost an answer resends: the same ids are answered `duplicate`.
        if acked && batch_no % 50 == 49 {
            let r = tokio::time::timeout(Duration::from_secs(15), client.put_traces(&batch)).await;
            if let Ok(Ok(resp)) = r
                && resp.status == 201
            {
                let dups = resp.body["results"]
                    .as_array()
                    .map_or(0, |r| r.iter().filter(|r| r["duplicate"] == true).count());
                let mut l = ledger.lock().unwrap();
                l.deliberate_resent += batch.len();
                l.deliberate_duplicates += dups;
            }
        }
        batch_no += 1;
        // Steady pace: batch k leaves at k × 100 ms (late batches are not made up in a burst).
        let due = started + Duration::from_millis(100) * batch_no;
        let now = Instant::now();
        if due > now {
            tokio::time::sleep(due - now).await;
        } else {
            batch_no = (now - started).as_millis() as u32 / 100;
        }
    }
}

// ---- RSS ----

fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

// ---- setup through the APIs ----

async fn send(c: &Client, method: Method, path: &str, body: Option<Value>) -> Value {
    let r = c.send(method, path, "", body).await.unwrap();
    assert!(r.status.is_success(), "{path}: {} {}", r.status, r.body);
    r.body
}

async fn agency_with_smn_rights(c: &Client, name: &str) {
    let projects = send(c, Method::GET, "/v3/auth/projects", None).await;
    let domain = projects["projects"][0]["domain_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let r = send(
        c,
        Method::POST,
        "/v3.0/OS-AGENCY/agencies",
        Some(json!({"agency": {"name": name, "domain_id": domain, "trust_domain_name": "op_svc_cff"}})),
    )
    .await;
    let agency = r["agency"]["id"].as_str().unwrap().to_owned();
    let roles = send(c, Method::GET, "/v3/roles", None).await;
    let role = roles["roles"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["display_name"] == "SMN Administrator")
        .unwrap()["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let path = format!(
        "/v3.0/OS-AGENCY/projects/{}/agencies/{agency}/roles/{role}",
        c.project_id()
    );
    send(c, Method::PUT, &path, None).await;
}

async fn subscribe(c: &Client, topic: &str, protocol: &str, endpoint: &str) {
    let path = format!(
        "/v2/{}/notifications/topics/{topic}/subscriptions",
        c.project_id()
    );
    send(
        c,
        Method::POST,
        &path,
        Some(json!({"protocol": protocol, "endpoint": endpoint, "remark": "soak"})),
    )
    .await;
}

async fn get_ok(url: &str) {
    let status = reqwest::get(url).await.unwrap().status();
    assert_eq!(status, 200, "{url}");
}

async fn setup(c: &Client, webhook: &Webhook, smtp: &SmtpServer) {
    let pid = c.project_id().to_owned();
    // The archive: a management tracker writing to the local-folder object store.
    send(
        c,
        Method::POST,
        &format!("/v3/{pid}/tracker"),
        Some(json!({"tracker_type": "system", "tracker_name": "system",
                    "is_support_validate": true,
                    "obs_info": {"bucket_name": BUCKET, "file_prefix_name": "tw",
                                 "is_obs_created": true}})),
    )
    .await;

    // The topic, a confirmed HTTP subscription and a confirmed email subscription.
    let topic = send(
        c,
        Method::POST,
        &format!("/v2/{pid}/notifications/topics"),
        Some(json!({"name": "soak_alarms", "display_name": "Soak alarms"})),
    )
    .await["topic_urn"]
        .as_str()
        .unwrap()
        .to_owned();
    subscribe(c, &topic, "http", &webhook.url()).await;
    let deadline = Instant::now() + Duration::from_secs(20);
    let confirmation = loop {
        if let Some(v) = webhook.of_type("SubscriptionConfirmation").pop() {
            break v;
        }
        assert!(Instant::now() < deadline, "no subscription confirmation");
        tokio::time::sleep(Duration::from_millis(50)).await;
    };
    get_ok(confirmation["subscribe_url"].as_str().unwrap()).await;
    subscribe(c, &topic, "email", MAILBOX).await;
    let mails = smtp
        .wait_mails(1, Duration::from_secs(20), |m| {
            m.header("subject")
                .is_some_and(|s| s.to_ascii_lowercase().contains("confirm"))
        })
        .await;
    assert_eq!(mails.len(), 1, "one confirmation mail: {:?}", smtp.mails());
    let link = mails[0]
        .link_containing("/smn/subscription/confirm?token=")
        .unwrap();
    get_ok(&link).await;

    // login_audit behind a CTS trigger, allowing 10.0.0.0/8 only.
    agency_with_smn_rights(c, "serverless_trust").await;
    let user_data =
        json!({"SMN_Topic": "soak_alarms", "RegionName": "local", "IP": "10.0.0.0/8"}).to_string();
    let f = send(
        c,
        Method::POST,
        &format!("/v2/{pid}/fgs/functions"),
        Some(
            json!({"func_name": "login_audit", "package": "default", "runtime": "builtin",
                    "handler": "login_audit", "memory_size": 128, "timeout": 30,
                    "user_data": user_data, "xrole": "serverless_trust"}),
        ),
    )
    .await;
    let fn_urn = f["func_urn"].as_str().unwrap().to_owned();
    send(
        c,
        Method::POST,
        &format!("/v2/{pid}/fgs/triggers/{fn_urn}"),
        Some(json!({"trigger_type_code": "CTS", "trigger_status": "ACTIVE",
                    "event_type_code": "MessageCreated",
                    "event_data": {"name": "login_audit", "operations": ["IAM:user:login;logout"]}})),
    )
    .await;
}

// ---- counting ----

/// The address an alarm names: `Illegal operation[  IP:<ip>,  Action:<action>]`.
fn alarm_ip(text: &str) -> Option<String> {
    let rest = text.split("IP:").nth(1)?;
    Some(rest.split(',').next()?.trim().to_owned())
}

/// Per expected address: missing, and copies beyond the first; plus addresses not expected.
#[derive(Debug, Default)]
struct Tally {
    received: usize,
    missing: Vec<String>,
    duplicates: usize,
    unexpected: usize,
}

fn tally(expected: &HashSet<String>, got: &HashMap<String, usize>) -> Tally {
    let mut t = Tally {
        received: got.values().sum(),
        ..Tally::default()
    };
    for ip in expected {
        match got.get(ip) {
            None => t.missing.push(ip.clone()),
            Some(n) => t.duplicates += n - 1,
        }
    }
    t.unexpected = got.keys().filter(|ip| !expected.contains(*ip)).count();
    t.missing.sort();
    t
}

fn alarm_mails(dir: &Path) -> Vec<Mail> {
    read_maildir(dir)
        .into_iter()
        .filter(|m| m.header("subject") == Some("CTSTrigger"))
        .collect()
}

fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    if let Ok(entries) = std::fs::read_dir(dir) {
        for e in entries.flatten() {
            let p = e.path();
            if p.is_dir() {
                files_under(&p, out);
            } else {
                out.push(p);
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn soak_with_fault_injection_loses_and_duplicates_nothing() {
    let plan = Plan::from_env();
    eprintln!("soak plan: {plan:?}");
    let tmp = tempfile::tempdir().unwrap();
    let maildir = tmp.path().join("maildir");
    let smtp_port = free_port();
    let mut smtp = Some(SmtpServer::start(smtp_port, &maildir));
    let config = format!(
        "[notify]\nretry_base_ms = 200\nretry_cap_ms = 2000\n\
         [notify.smtp]\nhost = \"127.0.0.1\"\nport = {smtp_port}\nsecurity = \"none\"\nfrom = \"{SENDER}\"\n\
         [archive]\ntransfer_cycle_seconds = 1\n"
    );
    let mut server = Server::start_with_config(&config);
    let mut webhook = Webhook::start().await;
    let admin = server.admin().await;
    setup(&admin, &webhook, smtp.as_ref().unwrap()).await;
    // The tracker's bucket folder exists once the first pass has run.
    let bucket_dir = server.data_dir.join("objects").join(BUCKET);
    let deadline = Instant::now() + Duration::from_secs(30);
    while !bucket_dir.is_dir() {
        assert!(
            Instant::now() < deadline,
            "the archiver never created {bucket_dir:?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut bucket = Bucket::new(&server.data_dir);

    // Traffic and RSS sampling.
    let stop = Arc::new(AtomicBool::new(false));
    let ledger = Arc::new(Mutex::new(Ledger::default()));
    let sender = tokio::spawn(send_traffic(
        server.admin().await,
        plan.rate_per_s,
        stop.clone(),
        ledger.clone(),
    ));
    let pid = Arc::new(AtomicU32::new(server.child.id()));
    let samples: Arc<Mutex<Vec<(f64, u64)>>> = Arc::default();
    let started = Instant::now();
    let sampler = {
        let (pid, samples, stop) = (pid.clone(), samples.clone(), stop.clone());
        tokio::spawn(async move {
            while !stop.load(Ordering::SeqCst) {
                if let Some(kib) = rss_kib(pid.load(Ordering::SeqCst)) {
                    samples
                        .lock()
                        .unwrap()
                        .push((started.elapsed().as_secs_f64(), kib));
                }
                tokio::time::sleep(Duration::from_millis(500)).await;
            }
        })
    };

    // The fault schedule.
    let (mut kills, mut flaps, mut smtp_stops, mut store_outages) = (0, 0, 0, 0);
    // Kill i comes at (i + 1) × kill_every, moved by a quarter period every other time so that
    // kills land as the webhook comes back, while it is down and while it is up.
    let kill_at = |i: usize| {
        let shift = [0.0, -0.25, 0.25][i % 3];
        plan.kill_every.mul_f64((i + 1) as f64 + shift)
    };
    let mut next_kill = kill_at(0);
    let mut restart_times: Vec<Duration> = Vec::new();
    let event = |what: &str| eprintln!("soak {:6.1}s: {what}", started.elapsed().as_secs_f64());
    while started.elapsed() < plan.total {
        let t = started.elapsed();
        let hook_up = (t.as_millis() / plan.flap_half.as_millis()).is_multiple_of(2);
        if hook_up != webhook.is_up() {
            if hook_up {
                webhook.up().await;
                event("webhook up");
            } else {
                webhook.down().await;
                flaps += 1;
                event("webhook down");
            }
        }
        let smtp_down = plan.smtp_down.iter().any(|w| Plan::in_window(t, *w));
        if smtp_down && smtp.is_some() {
            drop(smtp.take());
            smtp_stops += 1;
            event("SMTP server killed");
        } else if !smtp_down && smtp.is_none() {
            smtp = Some(SmtpServer::start(smtp_port, &maildir));
            event("SMTP server started");
        }
        let store_down = Plan::in_window(t, plan.store_down);
        if store_down != bucket.down {
            bucket.set_down(store_down);
            if store_down {
                store_outages += 1;
                event("object store unwritable (bucket folder swapped with a file)");
            } else {
                event("object store writable again");
            }
        }
        if t >= next_kill {
            let begun = Instant::now();
            server = tokio::task::spawn_blocking(move || server.restart_on_same_port())
                .await
                .unwrap();
            restart_times.push(begun.elapsed());
            pid.store(server.child.id(), Ordering::SeqCst);
            kills += 1;
            next_kill = kill_at(kills);
            event(&format!(
                "kill -9 and restart (healthy again after {:?})",
                begun.elapsed()
            ));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // Faults stop: everything is up; the sender finishes its batch.
    stop.store(true, Ordering::SeqCst);
    webhook.up().await;
    let _smtp = smtp.unwrap_or_else(|| SmtpServer::start(smtp_port, &maildir));
    bucket.set_down(false);
    tokio::time::timeout(Duration::from_secs(150), sender)
        .await
        .expect("the sender did not finish")
        .unwrap();
    let _ = sampler.await;
    let fault_time = started.elapsed();
    let ledger = Arc::try_unwrap(ledger).ok().unwrap().into_inner().unwrap();
    let expected_ips: HashSet<String> = ledger
        .sent
        .iter()
        .filter(|(id, _)| ledger.acked.contains(id))
        .filter_map(|(_, ip)| ip.clone())
        .collect();

    // Bounded drain: every expected alarm at both subscribers.
    let drain_started = Instant::now();
    let http_counts = |w: &Webhook| {
        let mut by_ip: HashMap<String, usize> = HashMap::new();
        let mut by_message: HashMap<String, HashSet<String>> = HashMap::new();
        for n in w.of_type("Notification") {
            let Some(ip) = n["message"].as_str().and_then(alarm_ip) else {
                continue;
            };
            *by_ip.entry(ip.clone()).or_default() += 1;
            by_message
                .entry(ip)
                .or_default()
                .insert(n["message_id"].as_str().unwrap_or("").to_owned());
        }
        (by_ip, by_message)
    };
    let mail_counts = || {
        let mut by_ip: HashMap<String, usize> = HashMap::new();
        for m in alarm_mails(&maildir) {
            if let Some(ip) = alarm_ip(&m.body) {
                *by_ip.entry(ip).or_default() += 1;
            }
        }
        by_ip
    };
    loop {
        let http = http_counts(&webhook).0;
        let mail = mail_counts();
        let done = expected_ips
            .iter()
            .all(|ip| http.contains_key(ip) && mail.contains_key(ip));
        if done || drain_started.elapsed() > plan.drain {
            break;
        }
        tokio::time::sleep(Duration::from_secs(1)).await;
    }
    // Late copies, if any, have a moment to arrive.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let drain_time = drain_started.elapsed();

    // (1) Every acknowledged trace is stored exactly once.
    let client = server.admin().await;
    let stored = common::ids(&list_all(&client, &[]).await);
    let stored_set: HashSet<&String> = stored.iter().collect();
    let stored_twice = stored.len() - stored_set.len();
    let lost: Vec<&String> = ledger
        .acked
        .iter()
        .filter(|id| !stored_set.contains(id))
        .collect();
    let sent_ids: HashSet<&String> = ledger.sent.iter().map(|(id, _)| id).collect();
    let stored_unsent = stored_set
        .iter()
        .filter(|id| !sent_ids.contains(*id))
        .count();

    // (2) One alarm per disallowed login at each subscriber.
    let (http_by_ip, http_by_message) = http_counts(&webhook);
    let http = tally(&expected_ips, &http_by_ip);
    // Copies with the same SMN message_id are redeliveries (the receiver dedups on it); copies
    // with different message ids would be two alarms for one trace.
    let http_distinct_dups: usize = expected_ips
        .iter()
        .filter_map(|ip| http_by_message.get(ip))
        .map(|ids| ids.len().saturating_sub(1))
        .sum();
    let mail_by_ip = mail_counts();
    let mail = tally(&expected_ips, &mail_by_ip);
    // Where mail copies come from: the email delivery of the alarm (found by the message id the
    // webhook saw) and its recorded attempts.
    for (ip, n) in mail_by_ip.iter().filter(|(_, n)| **n > 1).take(20) {
        let Some(message_id) = http_by_message.get(ip).and_then(|ids| ids.iter().next()) else {
            continue;
        };
        let path = format!(
            "/v2/{}/notifications/messages/{message_id}/deliveries",
            client.project_id()
        );
        let d = client
            .send(Method::GET, &path, "", None)
            .await
            .unwrap()
            .body;
        let email: Vec<Value> = d["deliveries"]
            .as_array()
            .into_iter()
            .flatten()
            .filter(|d| d["protocol"] == "email")
            .map(|d| {
                json!({"state": d["state"], "attempts": d["attempts"],
                       "log": d["attempt_log"].as_array().into_iter().flatten()
                           .map(|a| json!([a["outcome"], a["result"]])).collect::<Vec<_>>()})
            })
            .collect();
        eprintln!(
            "mail copies: {ip} x{n}, message {message_id}: {}",
            json!(email)
        );
    }
    let dead = client
        .send(
            Method::GET,
            &format!("/v2/{}/notifications/dead-letters", client.project_id()),
            "",
            None,
        )
        .await
        .unwrap()
        .body;

    // (3) The archive verifies clean and holds every acknowledged trace once. A graceful stop
    // makes the last pass and closes the digest period early.
    server.stop_gracefully(Duration::from_secs(60)).await;
    let exported = Command::new(bin())
        .args(["keys", "export", "--data-dir"])
        .arg(&server.data_dir)
        .output()
        .unwrap();
    assert!(exported.status.success(), "{exported:?}");
    let key_file = tmp.path().join("audit.pub");
    std::fs::write(&key_file, &exported.stdout).unwrap();
    let verify = Command::new(bin())
        .args(["verify", "--store"])
        .arg(&bucket_dir)
        .arg("--public-key")
        .arg(&key_file)
        .args(["--output", "json"])
        .output()
        .unwrap();
    let report: Value = serde_json::from_slice(&verify.stdout).unwrap_or_else(|_| {
        json!({"unparsed": String::from_utf8_lossy(&verify.stdout),
               "stderr": String::from_utf8_lossy(&verify.stderr)})
    });
    let mut archived: BTreeMap<String, usize> = BTreeMap::new();
    let mut files = Vec::new();
    files_under(&bucket_dir, &mut files);
    let mut trace_files = 0;
    for f in &files {
        let key = f
            .strip_prefix(&bucket_dir)
            .unwrap()
            .to_string_lossy()
            .to_string();
        let is_trace_file = trailwatch_integrity::parse_key(&key)
            .is_ok_and(|k| matches!(k.kind, trailwatch_integrity::ObjectKind::Trace { .. }));
        if !is_trace_file {
            continue;
        }
        // A trace file that does not read is counted by `verify` as a problem.
        let Ok(contents) = trailwatch_integrity::read_file(&std::fs::read(f).unwrap()) else {
            continue;
        };
        trace_files += 1;
        for item in &contents.items {
            if let Some(id) = item["trace_id"].as_str() {
                *archived.entry(id.to_owned()).or_default() += 1;
            }
        }
    }
    let archived_missing = ledger
        .acked
        .iter()
        .filter(|id| !archived.contains_key(*id))
        .count();
    let archived_twice = archived.values().filter(|n| **n > 1).count();

    // (4) RSS does not grow without bound: max of the last third against the first third.
    let samples = samples.lock().unwrap().clone();
    let span = fault_time.as_secs_f64();
    let max_in = |from: f64, to: f64| {
        samples
            .iter()
            .filter(|(t, _)| *t >= from && *t < to)
            .map(|(_, k)| *k)
            .max()
            .unwrap_or(0)
    };
    let rss_first = max_in(0.0, span / 3.0);
    let rss_last = max_in(2.0 * span / 3.0, f64::MAX);
    let rss_limit = rss_first * 3 / 2 + 64 * 1024;

    let acked_disallowed = expected_ips.len();
    eprintln!(
        "\n== soak summary ({:.1} min of faults, drain {:.1} s) ==\n\
         | what | count |\n|---|---|\n\
         | traces sent / acknowledged / stored | {} / {} / {} |\n\
         | batches resent / never acknowledged | {} / {} |\n\
         | send attempts failed / records answered duplicate | {} / {} |\n\
         | deliberately resent records / answered duplicate | {} / {} |\n\
         | restart to healthy: max / mean | {:?} / {:?} |\n\
         | stored twice / acknowledged but lost / stored but never sent | {} / {} / {} |\n\
         | disallowed logins acknowledged | {} |\n\
         | webhook alarms received / missing / duplicates (same message_id) / two message ids / unexpected | {} / {} / {} / {} / {} |\n\
         | email alarms received / missing / duplicates / unexpected | {} / {} / {} / {} |\n\
         | dead letters | {} |\n\
         | kill -9 + restart / webhook flaps (down) / SMTP stops / object-store outages | {} / {} / {} / {} |\n\
         | archive: verify exit / problems / counts.traces / trace files | {:?} / {} / {} / {} |\n\
         | archive: acknowledged traces missing / archived more than once | {} / {} |\n\
         | RSS max first third / last third / limit (KiB), samples | {} / {} / {} , {} |\n",
        fault_time.as_secs_f64() / 60.0,
        drain_time.as_secs_f64(),
        ledger.sent.len(),
        ledger.acked.len(),
        stored.len(),
        ledger.resent_batches,
        ledger.unacked_batches,
        ledger.failed_attempts,
        ledger.duplicate_answers,
        ledger.deliberate_resent,
        ledger.deliberate_duplicates,
        restart_times.iter().max().copied().unwrap_or_default(),
        restart_times
            .iter()
            .sum::<Duration>()
            .checked_div(restart_times.len().max(1) as u32)
            .unwrap_or_default(),
        stored_twice,
        lost.len(),
        stored_unsent,
        acked_disallowed,
        http.received,
        http.missing.len(),
        http.duplicates - http_distinct_dups,
        http_distinct_dups,
        http.unexpected,
        mail.received,
        mail.missing.len(),
        mail.duplicates,
        mail.unexpected,
        dead["dead_letter_count"],
        kills,
        flaps,
        smtp_stops,
        store_outages,
        verify.status.code(),
        report["problems"].as_array().map_or(usize::MAX, Vec::len),
        report["counts"]["traces"],
        trace_files,
        archived_missing,
        archived_twice,
        rss_first,
        rss_last,
        rss_limit,
        samples.len(),
    );

    // The run exercised what it claims to.
    assert!(kills >= 2, "{kills} kills");
    assert!(flaps >= 2, "{flaps} flaps");
    assert!(smtp_stops >= 1 && store_outages >= 1);
    assert!(
        acked_disallowed >= 10,
        "the load ran: {acked_disallowed} alarms expected"
    );
    assert_eq!(
        ledger.unacked_batches, 0,
        "every batch was acknowledged in time"
    );
    assert!(
        ledger.deliberate_resent > 0,
        "acknowledged batches were resent"
    );
    assert_eq!(
        ledger.deliberate_duplicates, ledger.deliberate_resent,
        "a resent acknowledged trace is answered duplicate"
    );

    // (1)
    assert_eq!(stored_twice, 0, "no trace is stored twice");
    assert!(
        lost.is_empty(),
        "{} acknowledged traces lost, e.g. {:?}",
        lost.len(),
        &lost[..lost.len().min(5)]
    );
    assert_eq!(stored_unsent, 0);
    assert_eq!(
        stored.len(),
        ledger.acked.len(),
        "exactly the acknowledged traces"
    );
    // (2)
    assert!(
        http.missing.is_empty(),
        "{} alarms never reached the webhook, e.g. {:?}",
        http.missing.len(),
        &http.missing[..http.missing.len().min(5)]
    );
    assert!(
        mail.missing.is_empty(),
        "{} alarms never reached the mailbox, e.g. {:?}",
        mail.missing.len(),
        &mail.missing[..mail.missing.len().min(5)]
    );
    assert_eq!(
        http.unexpected + mail.unexpected,
        0,
        "alarms for allowed logins"
    );
    assert_eq!(
        http_distinct_dups, 0,
        "a disallowed login was published more than once (different message ids)"
    );
    // Redeliveries are at least once across crashes by design (`docs/specs/smn.md`): at most the
    // deliveries in flight at each kill -9 (and, for mail, at each SMTP kill, which can drop the
    // 250 of a mail already stored). A webhook dedups them on `message_id`; a mail copy carries
    // the Message-ID of the first (derived from the delivery), so copies are bounded and every
    // one is recognisable: one distinct Message-ID per alarm.
    let mut mail_ids: HashMap<String, HashSet<String>> = HashMap::new();
    for m in alarm_mails(&maildir) {
        if let Some(ip) = alarm_ip(&m.body) {
            let id = m.header("message-id").unwrap_or_default().to_owned();
            mail_ids.entry(ip).or_default().insert(id);
        }
    }
    let unrecognisable: Vec<_> = mail_ids
        .iter()
        .filter(|(_, ids)| ids.len() > 1 || ids.contains(""))
        .take(5)
        .collect();
    assert!(
        unrecognisable.is_empty(),
        "mail copies with different or no Message-IDs: {unrecognisable:?}"
    );
    let http_redelivered = http.duplicates - http_distinct_dups;
    assert!(
        http_redelivered <= (kills + flaps) * OUTBOX_CONCURRENCY,
        "{http_redelivered} webhook redeliveries"
    );
    assert!(
        mail.duplicates <= (kills + smtp_stops) * OUTBOX_CONCURRENCY,
        "{} mail copies",
        mail.duplicates
    );
    assert_eq!(dead["dead_letter_count"], 0, "{dead}");
    // (3)
    assert_eq!(
        verify.status.code(),
        Some(0),
        "trailwatch verify: {}",
        serde_json::to_string_pretty(&report).unwrap()
    );
    assert_eq!(
        report["problems"].as_array().map(Vec::len),
        Some(0),
        "{report}"
    );
    assert_eq!(
        archived_missing, 0,
        "acknowledged traces missing from the archive"
    );
    assert_eq!(archived_twice, 0, "traces archived more than once");
    assert_eq!(
        report["counts"]["traces"].as_u64(),
        Some(ledger.acked.len() as u64),
        "{report}"
    );
    // (4)
    assert!(samples.len() >= 10, "RSS was sampled");
    assert!(
        rss_last <= rss_limit,
        "RSS grew: {rss_first} KiB max in the first third, {rss_last} KiB in the last"
    );
}

/// The counting the soak's verdict rests on: an alarm's address, and missing, extra and
/// unexpected alarms.
#[test]
fn tally_names_missing_duplicate_and_unexpected_alarms() {
    assert_eq!(
        alarm_ip("Illegal operation[  IP:100.64.1.2,  Action:login]").as_deref(),
        Some("100.64.1.2")
    );
    assert_eq!(alarm_ip("no address here"), None);
    assert_eq!(disallowed_ip(1), "100.64.0.1");
    assert_eq!(disallowed_ip(65_536 + 258), "100.65.1.2");
    let expected: HashSet<String> = ["a", "b", "c"].iter().map(|s| s.to_string()).collect();
    let got: HashMap<String, usize> = [("a", 1), ("b", 3), ("x", 1)]
        .iter()
        .map(|(k, v)| (k.to_string(), *v))
        .collect();
    let t = tally(&expected, &got);
    assert_eq!(t.received, 5);
    assert_eq!(t.missing, vec!["c".to_string()]);
    assert_eq!(t.duplicates, 2);
    assert_eq!(t.unexpected, 1);
}
