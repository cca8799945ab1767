//! The tutorial's setup end to end, shared by `functions` and `all`: trailwatch on embedded
//! defaults with `login_audit` (builtin) behind a CTS trigger, an SMN topic with a confirmed HTTP
//! webhook subscription (an axum receiver in this process) and, optionally, a confirmed email
//! subscription delivered over real SMTP to a small receiver in this process; then IAM
//! login/logout traces driven at a fixed rate (or as fast as the server acknowledges them), with
//! every alarm matched to its trace and its acknowledgment.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use serde_json::{Value, json};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt};
use trailwatch_functions::builtins::login_audit::{Decision, LoginAudit};

use crate::{
    Proc, admin_client, alarm_topic, percentile, post_json, rss_mib, smn_agency,
    start_trailwatch_with,
};

/// The prefix of every trace id the driver makes; the alarm template puts the trace id first, so
/// the receivers find it as the first word of the message (webhook) or a word of the body (mail).
const ID_PREFIX: &str = "e2e-";

/// Alarms received on one channel: trace id → (first arrival in ms since `origin`, count).
#[derive(Clone)]
pub(crate) struct AlarmLog {
    origin: Instant,
    seen: Arc<Mutex<HashMap<String, (f64, u32)>>>,
    total: Arc<AtomicUsize>,
}

impl AlarmLog {
    fn new(origin: Instant) -> AlarmLog {
        AlarmLog {
            origin,
            seen: Default::default(),
            total: Default::default(),
        }
    }

    fn now_ms(&self) -> f64 {
        self.origin.elapsed().as_secs_f64() * 1000.0
    }

    fn record(&self, id: &str, at: f64) {
        if let Ok(mut m) = self.seen.lock() {
            m.entry(id.to_owned()).or_insert((at, 0)).1 += 1;
        }
        self.total.fetch_add(1, Ordering::Relaxed);
    }

    /// Distinct trace ids received that start with `prefix`.
    fn distinct_with(&self, prefix: &str) -> usize {
        self.seen
            .lock()
            .map(|m| m.keys().filter(|k| k.starts_with(prefix)).count())
            .unwrap_or(0)
    }

    fn snapshot(&self) -> HashMap<String, (f64, u32)> {
        self.seen.lock().map(|m| m.clone()).unwrap_or_default()
    }
}

/// The webhook: confirms its subscription (opens `subscribe_url`) and records each
/// notification by the first word of its message.
async fn webhook_receiver(log: AlarmLog) -> anyhow::Result<String> {
    use axum::routing::post;
    async fn hook(
        axum::extract::State(log): axum::extract::State<AlarmLog>,
        body: bytes::Bytes,
    ) -> axum::http::StatusCode {
        let at = log.now_ms();
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if v["type"] == "SubscriptionConfirmation" {
            if let Some(url) = v["subscribe_url"].as_str().map(str::to_owned) {
                tokio::spawn(async move {
                    let _ = reqwest::get(url).await;
                });
            }
        } else if let Some(id) = v["message"]
            .as_str()
            .and_then(|m| m.split_whitespace().next())
        {
            log.record(id, at);
        }
        axum::http::StatusCode::OK
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state(log);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

// ---- SMTP receiver --------------------------------------------------------------------------

/// A minimal SMTP server (RFC 5321: greeting, EHLO/HELO, MAIL, RCPT, DATA with dot-unstuffing,
/// RSET, NOOP, QUIT) on 127.0.0.1. Each mail's body is decoded (7bit, quoted-printable or
/// base64); a confirmation mail's link is opened, as a person confirming would; any other mail is
/// recorded by the first word of its body that is a benchmark trace id. Returns the port.
async fn smtp_receiver(log: AlarmLog) -> anyhow::Result<u16> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let port = listener.local_addr()?.port();
    tokio::spawn(async move {
        loop {
            let Ok((sock, _)) = listener.accept().await else {
                tokio::time::sleep(Duration::from_millis(10)).await;
                continue;
            };
            let log = log.clone();
            tokio::spawn(async move {
                let _ = smtp_session(sock, log).await;
            });
        }
    });
    Ok(port)
}

async fn smtp_session(sock: tokio::net::TcpStream, log: AlarmLog) -> std::io::Result<()> {
    let (r, mut w) = sock.into_split();
    let mut r = tokio::io::BufReader::new(r);
    w.write_all(b"220 trailwatch-bench ESMTP\r\n").await?;
    let mut buf = Vec::new();
    loop {
        buf.clear();
        if r.read_until(b'\n', &mut buf).await? == 0 {
            return Ok(());
        }
        let line = String::from_utf8_lossy(&buf);
        let verb = line
            .split_whitespace()
            .next()
            .unwrap_or("")
            .to_ascii_uppercase();
        match verb.as_str() {
            "EHLO" => {
                w.write_all(b"250-trailwatch-bench\r\n250-8BITMIME\r\n250 SIZE 10485760\r\n")
                    .await?;
            }
            "HELO" => w.write_all(b"250 trailwatch-bench\r\n").await?,
            "MAIL" | "RCPT" | "RSET" | "NOOP" => w.write_all(b"250 OK\r\n").await?,
            "DATA" => {
                w.write_all(b"354 End data with <CR><LF>.<CR><LF>\r\n")
                    .await?;
                let mut mail = String::new();
                loop {
                    buf.clear();
                    if r.read_until(b'\n', &mut buf).await? == 0 {
                        return Ok(());
                    }
                    let l = String::from_utf8_lossy(&buf);
                    let l = l.trim_end_matches(['\r', '\n']);
                    if l == "." {
                        break;
                    }
                    mail.push_str(l.strip_prefix('.').unwrap_or(l));
                    mail.push('\n');
                }
                let at = log.now_ms();
                handle_mail(&mail, &log, at);
                w.write_all(b"250 OK\r\n").await?;
            }
            "QUIT" => {
                w.write_all(b"221 Bye\r\n").await?;
                return Ok(());
            }
            _ => w.write_all(b"502 Command not implemented\r\n").await?,
        }
    }
}

fn handle_mail(mail: &str, log: &AlarmLog, at: f64) {
    let (head, raw_body) = mail.split_once("\n\n").unwrap_or((mail, ""));
    let encoding = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.trim()
                .eq_ignore_ascii_case("content-transfer-encoding")
                .then(|| v.trim().to_ascii_lowercase())
        })
        .unwrap_or_default();
    let body = match encoding.as_str() {
        "quoted-printable" => decode_quoted_printable(raw_body),
        "base64" => decode_base64(raw_body),
        _ => raw_body.to_owned(),
    };
    if let Some(link) = body
        .split_whitespace()
        .find(|w| w.starts_with("http") && w.contains("/smn/subscription/confirm?token="))
    {
        let link = link.to_owned();
        tokio::spawn(async move {
            let _ = reqwest::get(link).await;
        });
    } else if let Some(id) = body.split_whitespace().find(|w| w.starts_with(ID_PREFIX)) {
        log.record(id, at);
    }
}

/// RFC 2045 quoted-printable: `=` at a line end is a soft break, `=XX` one byte.
fn decode_quoted_printable(s: &str) -> String {
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
    String::from_utf8_lossy(&out).into_owned()
}

fn decode_base64(s: &str) -> String {
    let value = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
    };
    let mut out = Vec::new();
    let (mut acc, mut bits) = (0u32, 0u32);
    for v in s.bytes().filter_map(value) {
        acc = (acc << 6) | v;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

// ---- the rig ------------------------------------------------------------------------------

pub(crate) struct RigOptions {
    /// Also subscribe an email address, delivered over SMTP to the in-process receiver.
    pub email: bool,
    /// Archive the traces (a management tracker with a bucket) every so many seconds.
    pub archive_cycle_seconds: Option<u32>,
}

/// A running trailwatch with the tutorial's resources, and the receivers of its alarms.
pub(crate) struct Rig {
    pub tw: Option<Proc>,
    pub data: PathBuf,
    pub url: String,
    pub pid: String,
    pub token: String,
    pub http: reqwest::Client,
    pub webhook: AlarmLog,
    pub email: Option<AlarmLog>,
}

pub(crate) const ARCHIVE_BUCKET: &str = "bench-archive";

pub(crate) async fn tutorial_rig(
    data: &Path,
    options: &RigOptions,
    ip_list: &str,
) -> anyhow::Result<Rig> {
    let origin = Instant::now();
    let webhook = AlarmLog::new(origin);
    let email = options.email.then(|| AlarmLog::new(origin));
    let mut config = String::new();
    if let Some(log) = &email {
        let port = smtp_receiver(log.clone()).await?;
        config.push_str(&format!(
            "[notify.smtp]\nhost = \"127.0.0.1\"\nport = {port}\nsecurity = \"none\"\nfrom = \"alarms@trailwatch.bench\"\n"
        ));
    }
    if let Some(s) = options.archive_cycle_seconds {
        config.push_str(&format!("[archive]\ntransfer_cycle_seconds = {s}\n"));
    }
    let _ = std::fs::remove_dir_all(data);
    let (tw, url) = start_trailwatch_with(data, (!config.is_empty()).then_some(config.as_str()))?;
    let client = admin_client(&url).await?;
    let (token, _) = client.password_token(Some("default")).await?;
    let pid = client.project_id().to_owned();
    let http = reqwest::Client::new();
    let hook = webhook_receiver(webhook.clone()).await?;
    let topic_urn = alarm_topic(&http, &url, &pid, &token, "bench_alarms", &hook).await?;
    if email.is_some() {
        post_json(
            &http,
            &format!("{url}/v2/{pid}/notifications/topics/{topic_urn}/subscriptions"),
            &token,
            reqwest::Method::POST,
            json!({"protocol": "email", "endpoint": "secops@trailwatch.bench", "remark": "on-call"}),
        )
        .await?;
    }
    // Every subscription confirmed (the webhook by its subscribe_url, the mailbox by the link in
    // its confirmation mail), or fail.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let subs = post_json(
            &http,
            &format!("{url}/v2/{pid}/notifications/subscriptions"),
            &token,
            reqwest::Method::GET,
            Value::Null,
        )
        .await?;
        let list = subs["subscriptions"]
            .as_array()
            .cloned()
            .unwrap_or_default();
        let want = 1 + usize::from(email.is_some());
        if list.len() == want && list.iter().all(|s| s["status"] == 1) {
            break;
        }
        if Instant::now() > deadline {
            bail!("the subscriptions were not confirmed within 30 s: {subs}");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    // The template puts the trace id first, so the receivers can match alarms to traces.
    post_json(
        &http,
        &format!("{url}/v2/{pid}/notifications/message_template"),
        &token,
        reqwest::Method::POST,
        json!({"message_template_name": "login_audit", "protocol": "default",
               "content": "{trace_id} Illegal operation[  IP:{source_ip},  Action:{action}]"}),
    )
    .await?;
    smn_agency(&http, &url, &pid, &token, "serverless_trust").await?;
    let user_data = json!({"SMN_Topic": "bench_alarms", "RegionName": "local", "IP": ip_list,
                           "SMN_Template": "login_audit"});
    post_json(&http, &format!("{url}/v2/{pid}/fgs/functions"), &token, reqwest::Method::POST,
        json!({"func_name": "login_audit", "package": "default", "runtime": "builtin", "handler": "login_audit",
               "memory_size": 128, "timeout": 30, "user_data": user_data.to_string(), "xrole": "serverless_trust"})).await?;
    post_json(&http, &format!("{url}/v2/{pid}/fgs/triggers/login_audit"), &token, reqwest::Method::POST,
        json!({"trigger_type_code": "CTS", "event_data": {"name": "login_audit", "operations": ["IAM:user:login;logout"]}})).await?;
    if options.archive_cycle_seconds.is_some() {
        post_json(
            &http,
            &format!("{url}/v3/{pid}/tracker"),
            &token,
            reqwest::Method::POST,
            json!({"tracker_type": "system", "tracker_name": "system",
                   "obs_info": {"bucket_name": ARCHIVE_BUCKET}}),
        )
        .await?;
    }
    Ok(Rig {
        tw: Some(tw),
        data: data.to_owned(),
        url,
        pid,
        token,
        http,
        webhook,
        email,
    })
}

impl Rig {
    pub fn server_pid(&self) -> u32 {
        self.tw.as_ref().map_or(0, Proc::pid)
    }

    /// Stops the server with SIGTERM (so that the archiver closes its digest) and waits up to
    /// 30 s for it to exit; killed otherwise. Returns whether it exited by itself.
    pub fn stop(&mut self) -> bool {
        let Some(mut tw) = self.tw.take() else {
            return false;
        };
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &tw.pid().to_string()])
            .status();
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = tw.child.try_wait() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        drop(tw);
        false
    }
}

// ---- workload -------------------------------------------------------------------------------

/// Traces to send, each kept as its JSON object without `trace_id` and without the opening `{`
/// (the driver prepends `{"trace_id":"…",`), with whether `login_audit` alarms on it.
pub(crate) enum Workload {
    /// The generator's traces in file order (all services; ~10 % of addresses disallowed).
    InOrder(Vec<(String, bool)>),
    /// IAM login/logout traces only: nine allowed, then one disallowed, repeated — exactly 10 %
    /// of the traces alarm.
    TenPercent {
        allowed: Vec<String>,
        disallowed: Vec<String>,
    },
}

fn rest_of_object(line: &str) -> anyhow::Result<String> {
    let mut v: Value = serde_json::from_str(line)?;
    let m = v.as_object_mut().context("a trace is not an object")?;
    m.remove("trace_id");
    let text = v.to_string();
    Ok(text
        .strip_prefix('{')
        .context("a trace is not an object")?
        .to_owned())
}

impl Workload {
    pub fn in_order(lines: &[String], audit: &LoginAudit) -> anyhow::Result<Workload> {
        let mut items = Vec::with_capacity(lines.len());
        for l in lines {
            let alarm = trailwatch_trace::Trace::from_json_str(l)
                .ok()
                .is_some_and(|t| matches!(audit.decide(&t), Decision::Alarm(_)));
            items.push((rest_of_object(l)?, alarm));
        }
        Ok(Workload::InOrder(items))
    }

    pub fn ten_percent(lines: &[String], audit: &LoginAudit) -> anyhow::Result<Workload> {
        let (mut allowed, mut disallowed) = (Vec::new(), Vec::new());
        for l in lines {
            let Ok(t) = trailwatch_trace::Trace::from_json_str(l) else {
                continue;
            };
            if t.service_type != "IAM" || !matches!(t.trace_name.as_str(), "login" | "logout") {
                continue;
            }
            match audit.decide(&t) {
                Decision::Alarm(_) => disallowed.push(rest_of_object(l)?),
                Decision::Allowed(_) => allowed.push(rest_of_object(l)?),
                _ => {}
            }
        }
        if allowed.is_empty() || disallowed.is_empty() {
            bail!("the workload has no allowed or no disallowed IAM login/logout traces");
        }
        Ok(Workload::TenPercent {
            allowed,
            disallowed,
        })
    }

    /// Trace `i`: its JSON without the opening brace and trace id, and whether it alarms.
    fn get(&self, i: usize) -> (&str, bool) {
        match self {
            Workload::InOrder(items) => {
                let (t, a) = &items[i % items.len()];
                (t, *a)
            }
            Workload::TenPercent {
                allowed,
                disallowed,
            } => {
                if i % 10 == 9 {
                    (&disallowed[(i / 10) % disallowed.len()], true)
                } else {
                    (&allowed[i % allowed.len()], false)
                }
            }
        }
    }

    pub fn describe(&self) -> String {
        match self {
            Workload::InOrder(items) => format!(
                "gen_traces.py traces in file order ({} distinct, all services)",
                items.len()
            ),
            Workload::TenPercent {
                allowed,
                disallowed,
            } => format!(
                "gen_traces.py IAM login/logout traces, every 10th from a disallowed address ({} allowed and {} disallowed distinct traces, cycled; unique trace ids)",
                allowed.len(),
                disallowed.len()
            ),
        }
    }
}

fn body(w: &Workload, prefix: &str, start: usize, n: usize) -> String {
    let mut s = String::with_capacity(n * 900 + 16);
    s.push_str("{\"traces\":[");
    for i in start..start + n {
        if i > start {
            s.push(',');
        }
        let (rest, _) = w.get(i);
        s.push_str("{\"trace_id\":\"");
        s.push_str(prefix);
        s.push_str(&i.to_string());
        s.push_str("\",");
        s.push_str(rest);
    }
    s.push_str("]}");
    s
}

// ---- process figures ------------------------------------------------------------------------

/// CPU time (user + system) of a process in seconds, from /proc/<pid>/stat.
pub(crate) fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
        return f64::NAN;
    };
    // After the command: state is field 3; utime and stime are fields 14 and 15.
    let fields: Vec<&str> = after.split_whitespace().collect();
    let tick = |k: usize| fields.get(k).and_then(|v| v.parse::<f64>().ok());
    match (tick(11), tick(12)) {
        (Some(u), Some(s)) => (u + s) / clock_ticks(),
        _ => f64::NAN,
    }
}

fn clock_ticks() -> f64 {
    static TICKS: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TICKS.get_or_init(|| {
        std::process::Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .unwrap_or(100.0)
    })
}

/// Resets the process's peak RSS (VmHWM) so that the next reading is this phase's peak.
fn reset_peak_rss(pid: u32) -> bool {
    std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok()
}

// ---- the driver -----------------------------------------------------------------------------

pub(crate) struct Phase<'a> {
    pub label: &'a str,
    /// Traces per second, or as fast as acknowledged (`None`: 16 clients, batches of 100).
    pub rate: Option<u32>,
    pub seconds: f64,
    /// How long to wait for missing alarms after the last acknowledgment.
    pub alarm_wait: Duration,
}

/// One channel's alarms for the traces whose ids start with `prefix`.
fn channel_json(
    log: &AlarmLog,
    prefix: &str,
    expected: &[usize],
    acked_at: &[f64],
    total_sent: usize,
) -> Value {
    let seen = log.snapshot();
    let mut received = 0usize;
    let mut latencies = Vec::with_capacity(expected.len());
    let mut extra_deliveries = 0u64;
    let mut unexpected = 0usize;
    let mut is_expected = vec![false; total_sent];
    for &i in expected {
        is_expected[i] = true;
    }
    for (id, (at, count)) in &seen {
        let Some(i) = id
            .strip_prefix(prefix)
            .and_then(|n| n.parse::<usize>().ok())
        else {
            continue;
        };
        extra_deliveries += u64::from(count.saturating_sub(1));
        if is_expected.get(i).copied().unwrap_or(false) {
            received += 1;
            latencies.push((at - acked_at[i]).max(0.0));
        } else {
            unexpected += 1;
        }
    }
    latencies.sort_by(f64::total_cmp);
    let r = |x: f64| (x * 100.0).round() / 100.0;
    json!({
        "expected": expected.len(), "received": received, "missing": expected.len() - received,
        "unexpected": unexpected, "duplicate_deliveries": extra_deliveries,
        "ack_to_arrival_p50_ms": r(percentile(&latencies, 0.5)),
        "p99_ms": r(percentile(&latencies, 0.99)),
        "p999_ms": r(percentile(&latencies, 0.999)),
        "max_ms": r(percentile(&latencies, 1.0)),
    })
}

/// Sends the phase's traces, waits (bounded) for their alarms on every channel, and returns
/// the figures: acknowledged traces/s, per channel expected/received/missing/unexpected/duplicate
/// alarms and ack → arrival latency, and the server's CPU time and peak RSS over the phase.
pub(crate) async fn drive(
    rig: &Rig,
    w: &Arc<Workload>,
    phase: &Phase<'_>,
) -> anyhow::Result<Value> {
    let prefix = format!("{ID_PREFIX}{}-", phase.label);
    let server = rig.server_pid();
    let peak_reset = reset_peak_rss(server);
    let cpu_before = cpu_seconds(server);
    let load_before = crate::load_average();
    let ingest_url = format!("{}/v3/{}/traces", rig.url, rig.pid);
    // (first index, count, acknowledged at ms) of every acknowledged batch.
    let acks: Arc<Mutex<Vec<(usize, usize, f64)>>> = Default::default();
    let errors = Arc::new(AtomicUsize::new(0));
    let origin = rig.webhook.origin;
    let post = {
        let (http, url, token, prefix, w, acks, errors) = (
            rig.http.clone(),
            ingest_url.clone(),
            rig.token.clone(),
            prefix.clone(),
            w.clone(),
            acks.clone(),
            errors.clone(),
        );
        move |start: usize, n: usize| {
            let (http, url, token, acks, errors) = (
                http.clone(),
                url.clone(),
                token.clone(),
                acks.clone(),
                errors.clone(),
            );
            let b = body(&w, &prefix, start, n);
            async move {
                let ok = match http
                    .post(&url)
                    .header("X-Auth-Token", &token)
                    .timeout(Duration::from_secs(30))
                    .body(b)
                    .send()
                    .await
                {
                    Ok(r) => {
                        let good = r.status().is_success();
                        let _ = r.bytes().await;
                        good
                    }
                    Err(_) => false,
                };
                if ok {
                    let at = origin.elapsed().as_secs_f64() * 1000.0;
                    if let Ok(mut a) = acks.lock() {
                        a.push((start, n, at));
                    }
                } else {
                    errors.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    };
    let started = Instant::now();
    let sent = match phase.rate {
        Some(rate) => {
            let per_batch = (rate as usize / 100).max(10);
            let total = (f64::from(rate) * phase.seconds) as usize / per_batch * per_batch;
            let mut tick =
                tokio::time::interval(Duration::from_secs_f64(per_batch as f64 / f64::from(rate)));
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
            let mut tasks = tokio::task::JoinSet::new();
            for start in (0..total).step_by(per_batch) {
                tick.tick().await;
                tasks.spawn(post(start, per_batch));
            }
            let deadline = Instant::now() + Duration::from_secs(120);
            while Instant::now() < deadline {
                if let Ok(None) =
                    tokio::time::timeout(Duration::from_secs(1), tasks.join_next()).await
                {
                    break;
                }
            }
            tasks.abort_all();
            total
        }
        None => {
            let next = Arc::new(AtomicUsize::new(0));
            let until = started + Duration::from_secs_f64(phase.seconds);
            let mut tasks = tokio::task::JoinSet::new();
            for _ in 0..16 {
                let (next, post) = (next.clone(), post.clone());
                tasks.spawn(async move {
                    while Instant::now() < until {
                        let start = next.fetch_add(100, Ordering::Relaxed);
                        post(start, 100).await;
                    }
                });
            }
            while tasks.join_next().await.is_some() {}
            next.load(Ordering::Relaxed)
        }
    };
    let send_seconds = started.elapsed().as_secs_f64();
    let acks = acks.lock().map(|a| a.clone()).unwrap_or_default();
    let mut acked_at = vec![f64::NAN; sent];
    let mut acked = 0usize;
    let mut expected = Vec::new();
    for &(start, n, at) in &acks {
        let end = (start + n).min(sent);
        acked_at[start..end].fill(at);
        acked += end - start;
        expected.extend((start..end).filter(|&i| w.get(i).1));
    }
    // Alarms: wait until every channel has them all, or the phase's bound.
    let channels: Vec<(&str, &AlarmLog)> = std::iter::once(("webhook", &rig.webhook))
        .chain(rig.email.as_ref().map(|l| ("email", l)))
        .collect();
    let wait_started = Instant::now();
    while wait_started.elapsed() < phase.alarm_wait
        && channels
            .iter()
            .any(|(_, l)| l.distinct_with(&prefix) < expected.len())
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let alarms_wait_seconds = wait_started.elapsed().as_secs_f64();
    // A moment more, so that a late duplicate would be counted.
    tokio::time::sleep(Duration::from_millis(300)).await;
    let cpu = cpu_seconds(server) - cpu_before;
    let (rss, peak) = rss_mib(server);
    let mut per_channel = serde_json::Map::new();
    for (name, log) in &channels {
        per_channel.insert(
            (*name).to_owned(),
            channel_json(log, &prefix, &expected, &acked_at, sent),
        );
    }
    let r1 = |x: f64| (x * 10.0).round() / 10.0;
    Ok(json!({
        "label": phase.label,
        "rate": phase.rate.map_or_else(|| json!("max (16 clients, batches of 100)"), |r| json!(r)),
        "seconds": phase.seconds,
        "sent": sent, "acknowledged": acked, "failed_requests": errors.load(Ordering::Relaxed),
        "acknowledged_traces_per_s": (acked as f64 / send_seconds).round(),
        "send_seconds": (send_seconds * 1000.0).round() / 1000.0,
        "alarms_wait_seconds": (alarms_wait_seconds * 1000.0).round() / 1000.0,
        "alarms": per_channel,
        "server_cpu_seconds": (cpu * 100.0).round() / 100.0,
        "server_cpu_us_per_trace": r1(cpu * 1e6 / acked.max(1) as f64),
        "server_cpu_cores_busy": (cpu / (send_seconds + alarms_wait_seconds) * 100.0).round() / 100.0,
        "server_rss_mib_at_end": r1(rss),
        "server_rss_peak_mib": r1(peak), "peak_is_this_phase": peak_reset,
        "load_average_before": load_before, "load_average_after": crate::load_average(),
    }))
}
