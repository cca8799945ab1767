//! trailwatch's benchmark harness. Each benchmark runs trailwatch (the release binary) and the
//! peer named by its issue under the same seeded workload in the same run, and prints the
//! figures and their ratio. Workloads come from `../shared/bench-peers/` (seeded generators).
//!
//! ```text
//! cargo build --release -p trailwatch -p trailwatch-bench
//! target/release/trailwatch-bench ingest          # durable ingest vs a parse-only axum server
//! target/release/trailwatch-bench query           # query latency and RSS over 5 M stored traces
//! target/release/trailwatch-bench python          # Python runtime: warm, cold, CTS trigger
//! target/release/trailwatch-bench all [--quick]   # the end-to-end table with every peer (all.rs)
//! ```
//! Results are appended to `bench/results/<date>.json`; BENCHMARKS.md quotes them.

use std::io::{BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use trailwatch_client::{Client, ClientConfig, Credentials};

mod all;
mod e2e;

const ADMIN_PASSWORD: &str = "Bench-password-1";

#[derive(Debug, Parser)]
#[command(name = "trailwatch-bench")]
struct Cli {
    #[command(subcommand)]
    command: Cmd,
}

#[derive(Debug, Subcommand)]
enum Cmd {
    /// Durable HTTP ingest (batches of 100 IAM traces) vs a minimal axum parse-only server.
    Ingest {
        /// wrk duration per server.
        #[arg(long, default_value = "20s")]
        duration: String,
        #[arg(long, default_value_t = 16)]
        connections: u32,
    },
    /// Query latency (user + time window, limit 100) and memory over N stored traces.
    Query {
        #[arg(long, default_value_t = 5_000_000)]
        traces: usize,
        #[arg(long, default_value_t = 300)]
        queries: usize,
    },
    /// Functions: trace ingest acknowledgment → alarm at the webhook through the CTS trigger and
    /// `login_audit`, at a fixed rate; the in-process decision rate; and the tutorial's Python
    /// handler (`peer_a.py ref|fixed`) on the same traces as the peer.
    Functions {
        /// Traces per second for the latency run; several (`--rate 1000,10000`) run one after
        /// the other on the same server.
        #[arg(long, value_delimiter = ',', default_values_t = [1000])]
        rate: Vec<u32>,
        /// Seconds of each latency run.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// The traces sent: `in-order` (gen_traces.py's file, all services, ~10 % of addresses
        /// disallowed) or `ten-percent` (IAM login/logout only, exactly every 10th disallowed).
        #[arg(long, default_value = "in-order")]
        mix: String,
    },
    /// The end-to-end table in one run: the tutorial's setup (webhook + email) at 1k/s, 10k/s
    /// and max with 10 % disallowed logins (latency, alarms, CPU, RSS), and the peers: the
    /// tutorial's handler in Python (`peer_a.py ref|fixed`), `fail2ban-regex`, the axum
    /// parse-only server, `sha256sum` vs `trailwatch verify`. Writes
    /// `bench/results/<date>-all.md`.
    All {
        /// Short phases (about two minutes in all), to check that it works.
        #[arg(long)]
        quick: bool,
    },
    /// SMN: publish → webhook latency at a fixed rate, durable publish throughput (wrk), and the
    /// tutorial's delivery path (one Python `requests.post` process per alarm) as the peer.
    Smn {
        /// Publishes per second for the latency run.
        #[arg(long, default_value_t = 1000)]
        rate: u32,
        /// Seconds of the latency run.
        #[arg(long, default_value_t = 10)]
        seconds: u32,
        /// Alarms sent through the Python peer.
        #[arg(long, default_value_t = 200)]
        peer_alarms: usize,
    },
    /// Python runtime (issue 7): warm invocation overhead of an empty handler, cold start of
    /// a new worker, and the tutorial's handler through the CTS trigger (concurrency 2) vs
    /// `peer_a.py fixed` in-process and the builtin `login_audit` on the same trigger path.
    Python {
        /// Timed warm invocations per function.
        #[arg(long, default_value_t = 2000)]
        warm: usize,
        /// Cold starts per variant.
        #[arg(long, default_value_t = 25)]
        cold: usize,
        /// Traces (gen_traces.py) for the trigger run.
        #[arg(long, default_value_t = 20_000)]
        traces: usize,
    },
    /// The peer: parse each POSTed batch with serde_json and answer 200. Runs until killed.
    PeerAxum {
        #[arg(long)]
        listen: String,
    },
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn work_dir() -> anyhow::Result<PathBuf> {
    let dir = root().join("bench/work");
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}

fn peers_dir() -> PathBuf {
    root().join("../shared/bench-peers")
}

fn release_binary(name: &str) -> anyhow::Result<PathBuf> {
    let path = root().join("target/release").join(name);
    if !path.exists() {
        bail!(
            "{} is missing: run `cargo build --release -p trailwatch -p trailwatch-bench` first",
            path.display()
        );
    }
    Ok(path)
}

/// A child process killed on drop.
struct Proc {
    child: Child,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Proc {
    fn pid(&self) -> u32 {
        self.child.id()
    }
}

/// Resident and peak resident memory of a process, in MiB (from /proc).
fn rss_mib(pid: u32) -> (f64, f64) {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    let field = |name: &str| {
        status
            .lines()
            .find(|l| l.starts_with(name))
            .and_then(|l| l.split_whitespace().nth(1))
            .and_then(|v| v.parse::<f64>().ok())
            .map(|kb| kb / 1024.0)
            .unwrap_or(0.0)
    };
    (field("VmRSS:"), field("VmHWM:"))
}

fn free_port() -> anyhow::Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn wait_http(url: &str) -> anyhow::Result<()> {
    let deadline = Instant::now() + Duration::from_secs(60);
    let addr = url
        .trim_start_matches("http://")
        .split('/')
        .next()
        .unwrap_or_default()
        .to_owned();
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(&addr).is_ok() {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    bail!("{url} did not come up")
}

fn start_trailwatch(data_dir: &Path) -> anyhow::Result<(Proc, String)> {
    start_trailwatch_with(data_dir, None)
}

/// Starts the release binary on `data_dir`, with the configuration text `config` if given.
fn start_trailwatch_with(data_dir: &Path, config: Option<&str>) -> anyhow::Result<(Proc, String)> {
    let port = free_port()?;
    let mut command = Command::new(release_binary("trailwatch")?);
    command
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(data_dir);
    if let Some(text) = config {
        std::fs::create_dir_all(data_dir)?;
        let path = data_dir.join("bench-config.toml");
        std::fs::write(&path, text)?;
        command.arg("--config").arg(path);
    }
    let child = command
        .env("TRAILWATCH_ADMIN_PASSWORD", ADMIN_PASSWORD)
        .env("TRAILWATCH_LOG", "warn")
        // The benchmarks' webhook receivers listen on loopback (refused by default).
        .env("TRAILWATCH_OUTBOUND_ALLOW", "127.0.0.0/8")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .context("starting trailwatch")?;
    let url = format!("http://127.0.0.1:{port}");
    let proc = Proc { child };
    wait_http(&url)?;
    Ok((proc, url))
}

async fn admin_client(url: &str) -> anyhow::Result<Client> {
    Ok(Client::connect(ClientConfig {
        endpoint: url.into(),
        credentials: Credentials::Password {
            user: "admin".into(),
            password: ADMIN_PASSWORD.into(),
        },
        project: "default".into(),
        domain: "default".into(),
        ca_cert_pem: None,
    })
    .await?)
}

/// Generates `n` traces with the shared seeded generator (cached in bench/work).
fn ensure_traces(n: usize) -> anyhow::Result<PathBuf> {
    let path = work_dir()?.join(format!("traces-{n}.jsonl"));
    if !path.exists() {
        eprintln!("generating {n} traces with gen_traces.py …");
        let tmp = path.with_extension("tmp");
        let status = Command::new("python3")
            .arg(peers_dir().join("gen_traces.py"))
            .arg(n.to_string())
            .arg(&tmp)
            .arg(work_dir()?.join("allowlist.txt"))
            .status()
            .context("running gen_traces.py")?;
        if !status.success() {
            bail!("gen_traces.py failed");
        }
        std::fs::rename(&tmp, &path)?;
    }
    Ok(path)
}

/// What wrk reported.
#[derive(Debug, Default)]
struct WrkResult {
    requests_per_s: f64,
    non_2xx: u64,
    p50_ms: f64,
    p99_ms: f64,
}

fn parse_ms(v: &str) -> f64 {
    let (num, unit) = v.split_at(v.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(v.len()));
    let x: f64 = num.parse().unwrap_or(f64::NAN);
    match unit {
        "us" => x / 1000.0,
        "ms" => x,
        "s" => x * 1000.0,
        _ => f64::NAN,
    }
}

fn run_wrk(
    url: &str,
    duration: &str,
    connections: u32,
    body_dir: &Path,
    count: usize,
    token: &str,
) -> anyhow::Result<WrkResult> {
    let script = root().join("bench/post_auth.lua");
    let out = Command::new("wrk")
        .args([
            "-t2",
            &format!("-c{connections}"),
            &format!("-d{duration}"),
            "--latency",
            "-s",
        ])
        .arg(&script)
        .arg(url)
        .arg("--")
        .arg(body_dir)
        .arg("body")
        .arg(count.to_string())
        .arg(token)
        .output()
        .context("running wrk (apt-get install wrk)")?;
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    eprintln!("{text}");
    let mut r = WrkResult::default();
    for line in text.lines() {
        let t = line.trim();
        if let Some(v) = t.strip_prefix("Requests/sec:") {
            r.requests_per_s = v.trim().parse().unwrap_or(0.0);
        } else if let Some(v) = t.strip_prefix("Non-2xx or 3xx responses:") {
            r.non_2xx = v.trim().parse().unwrap_or(0);
        } else if let Some(v) = t.strip_prefix("50%") {
            r.p50_ms = parse_ms(v.trim());
        } else if let Some(v) = t.strip_prefix("99%") {
            r.p99_ms = parse_ms(v.trim());
        }
    }
    if r.requests_per_s == 0.0 {
        bail!(
            "wrk reported no throughput:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(r)
}

/// Writes bodies of 100 IAM login/logout traces each (trace_id removed, so that every POST
/// stores new traces instead of being answered as a duplicate).
fn write_ingest_bodies(traces: &Path, dir: &Path, bodies: usize) -> anyhow::Result<usize> {
    std::fs::create_dir_all(dir)?;
    let reader = BufReader::new(std::fs::File::open(traces)?);
    let mut batch = Vec::with_capacity(100);
    let mut written = 0;
    for line in reader.lines() {
        let line = line?;
        let mut v: Value = serde_json::from_str(&line)?;
        let is_iam_login = v["service_type"] == "IAM"
            && matches!(v["trace_name"].as_str(), Some("login" | "logout"));
        if !is_iam_login {
            continue;
        }
        if let Some(m) = v.as_object_mut() {
            m.remove("trace_id");
        }
        batch.push(v);
        if batch.len() == 100 {
            let body = json!({"traces": batch}).to_string();
            std::fs::write(dir.join(format!("body{written}.json")), body)?;
            batch.clear();
            written += 1;
            if written == bodies {
                break;
            }
        }
    }
    Ok(written)
}

fn append_result(name: &str, result: &Value) -> anyhow::Result<()> {
    let dir = root().join("bench/results");
    std::fs::create_dir_all(&dir)?;
    let date = chrono_date();
    let path = dir.join(format!("{date}.json"));
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)?;
    writeln!(
        file,
        "{}",
        json!({"benchmark": name, "date": date, "result": result})
    )?;
    eprintln!("appended to {}", path.display());
    Ok(())
}

fn chrono_date() -> String {
    let out = Command::new("date").arg("-u").arg("+%Y-%m-%d").output();
    out.ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_else(|| "unknown-date".into())
}

async fn ingest(duration: &str, connections: u32) -> anyhow::Result<Value> {
    let traces = ensure_traces(200_000)?;
    let body_dir = work_dir()?.join("ingest-bodies");
    let count = write_ingest_bodies(&traces, &body_dir, 1000)?;
    let data = work_dir()?.join("tw-ingest");
    let _ = std::fs::remove_dir_all(&data);

    let (tw, url) = start_trailwatch(&data)?;
    let client = admin_client(&url).await?;
    let (token, _) = client.password_token(Some("default")).await?;
    let idle = rss_mib(tw.pid());
    let target = format!("{url}/v3/{}/traces", client.project_id());
    let wrk_started = Instant::now();
    let ours = run_wrk(&target, duration, connections, &body_dir, count, &token)?;
    let wrk_seconds = wrk_started.elapsed().as_secs_f64();
    let after = rss_mib(tw.pid());
    let stored = scrape(&url, "trailwatch_traces_ingested_total").await?;
    // The query index trails the log under load: how far, and how long until it has caught up.
    let lag_at_end = scrape(&url, "trailwatch_trace_index_lag").await?;
    let catch_up = Instant::now();
    while scrape(&url, "trailwatch_trace_index_lag").await? > 0 {
        if catch_up.elapsed() > Duration::from_secs(600) {
            bail!("the query index did not catch up within 10 minutes");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let catch_up_seconds = catch_up.elapsed().as_secs_f64();
    drop(tw);
    let _ = std::fs::remove_dir_all(&data);

    // The same with the archiver at work: a management tracker with a bucket and a transfer
    // every 2 s (instead of 5 min), so that gzip + SHA-256 run during the load.
    let (tw, url) = start_trailwatch_with(&data, Some("[archive]\ntransfer_cycle_seconds = 2\n"))?;
    let client = admin_client(&url).await?;
    let (token, _) = client.password_token(Some("default")).await?;
    let pid = client.project_id().to_owned();
    let tracker = reqwest::Client::new()
        .post(format!("{url}/v3/{pid}/tracker"))
        .header("X-Auth-Token", &token)
        .body(
            json!({"tracker_type": "system", "tracker_name": "system",
                   "obs_info": {"bucket_name": "bench-archive"}})
            .to_string(),
        )
        .send()
        .await?;
    if !tracker.status().is_success() {
        bail!("creating the tracker: {}", tracker.status());
    }
    let archived = run_wrk(
        &format!("{url}/v3/{pid}/traces"),
        duration,
        connections,
        &body_dir,
        count,
        &token,
    )?;
    drop(tw);
    let _ = std::fs::remove_dir_all(&data);
    let archived_tps = archived.requests_per_s * 100.0;

    let port = free_port()?;
    let peer = Proc {
        child: Command::new(release_binary("trailwatch-bench")?)
            .args(["peer-axum", "--listen", &format!("127.0.0.1:{port}")])
            .spawn()?,
    };
    let peer_url = format!("http://127.0.0.1:{port}");
    wait_http(&peer_url)?;
    let theirs = run_wrk(
        &format!("{peer_url}/v3/p/traces"),
        duration,
        connections,
        &body_dir,
        count,
        &token,
    )?;
    drop(peer);

    let ours_tps = ours.requests_per_s * 100.0;
    let theirs_tps = theirs.requests_per_s * 100.0;
    let result = json!({
        "workload": format!("gen_traces.py IAM login/logout, batches of 100, wrk -t2 -c{connections} -d{duration}"),
        "trailwatch_traces_per_s": ours_tps.round(),
        "trailwatch_p50_ms": ours.p50_ms, "trailwatch_p99_ms": ours.p99_ms,
        "trailwatch_non_2xx": ours.non_2xx,
        "trailwatch_traces_stored": stored,
        "index_lag_at_end": lag_at_end,
        "index_catch_up_s": (catch_up_seconds * 10.0).round() / 10.0,
        "indexed_traces_per_s": (stored as f64 / (wrk_seconds + catch_up_seconds)).round(),
        "trailwatch_rss_idle_mib": idle.0, "trailwatch_rss_after_mib": after.0, "trailwatch_rss_peak_mib": after.1,
        "peer_axum_parse_only_traces_per_s": theirs_tps.round(),
        "peer_p50_ms": theirs.p50_ms, "peer_p99_ms": theirs.p99_ms,
        "ratio": (ours_tps / theirs_tps * 1000.0).round() / 1000.0,
        "trailwatch_with_archiver_traces_per_s": archived_tps.round(),
        "archiver_ingest_change": ((archived_tps / ours_tps - 1.0) * 1000.0).round() / 1000.0,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    if ours.non_2xx > 0 {
        bail!(
            "trailwatch answered {} requests with an error status",
            ours.non_2xx
        );
    }
    Ok(result)
}

/// One unlabelled metric from `/metrics`.
async fn scrape(url: &str, name: &str) -> anyhow::Result<u64> {
    let text = reqwest::get(format!("{url}/metrics")).await?.text().await?;
    text.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.trim().parse().ok())
        .with_context(|| format!("/metrics has no {name}"))
}

async fn query(n: usize, queries: usize) -> anyhow::Result<()> {
    let traces = ensure_traces(n)?;
    let data = work_dir()?.join(format!("tw-query-{n}"));
    let (tw, url) = start_trailwatch(&data)?;
    let client = admin_client(&url).await?;
    let idle = rss_mib(tw.pid());
    let loaded = load_all(&client, &traces, n).await?;
    // Measure the index, not the tail scan: wait until the indexer has caught up.
    let catch_up = Instant::now();
    while scrape(&url, "trailwatch_trace_index_lag").await? > 0 {
        if catch_up.elapsed() > Duration::from_secs(1800) {
            bail!("the query index did not catch up within 30 minutes");
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    let index_catch_up_s = catch_up.elapsed().as_secs_f64();
    let after_load = rss_mib(tw.pid());
    let (token, _) = client.password_token(Some("default")).await?;
    let users = [
        "alice",
        "bob",
        "carol",
        "dave",
        "erin",
        "frank",
        "grace",
        "heidi",
        "ivan",
        "judy",
        "mallory",
        "oscar",
        "peggy",
        "trent",
        "victor",
        "walter",
        "ops-bot",
        "ci-deployer",
        "svc_backup",
        "admin",
    ];
    // gen_traces.py: time = T0 + i*37 ms (+ jitter): the log spans n*37 ms.
    let t0: i64 = 1_732_390_000_000;
    let span = n as i64 * 37;
    let http = reqwest::Client::new();
    let mut seed: u64 = 0x5eed;
    let mut next = || {
        seed = seed
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        seed >> 33
    };
    let mut latencies = Vec::with_capacity(queries);
    let mut returned = 0usize;
    for _ in 0..queries {
        let user = users[next() as usize % users.len()];
        let from = t0 + (next() as i64 % (span - 3_600_000).max(1));
        let to = from + 3_600_000;
        let q = format!(
            "{url}/v3/{}/traces?user={user}&from={from}&to={to}&limit=100",
            client.project_id()
        );
        let started = Instant::now();
        let resp = http.get(&q).header("X-Auth-Token", &token).send().await?;
        let body: Value = resp.json().await?;
        latencies.push(started.elapsed().as_secs_f64() * 1000.0);
        returned += body["traces"].as_array().map_or(0, Vec::len);
    }
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() as f64 - 1.0) * p).round() as usize];
    let after_queries = rss_mib(tw.pid());
    let size = |name: &str| std::fs::metadata(data.join(name)).map_or(0, |m| m.len());
    let (db_bytes, index_bytes) = (size("trailwatch.db"), size("index.db"));
    drop(tw);
    let result = json!({
        "stored_traces": loaded,
        "queries": queries,
        "avg_traces_returned": returned as f64 / queries as f64,
        "p50_ms": pct(0.5), "p90_ms": pct(0.9), "p99_ms": pct(0.99), "max_ms": pct(1.0),
        "rss_idle_mib": idle.0, "rss_after_load_mib": after_load.0, "rss_after_queries_mib": after_queries.0,
        "rss_peak_mib": after_queries.1,
        "db_size_gib": db_bytes as f64 / (1u64 << 30) as f64,
        "index_size_mib": index_bytes as f64 / (1u64 << 20) as f64,
        "index_catch_up_after_load_s": (index_catch_up_s * 10.0).round() / 10.0,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    append_result("query", &result)
}

/// Loads every trace of the file (batches of 1000, 4 in flight), unless already loaded.
async fn load_all(client: &Client, path: &Path, n: usize) -> anyhow::Result<u64> {
    let head = client.list_traces(&[("limit", "1".into())]).await?;
    if head["traces"].as_array().is_some_and(|t| !t.is_empty()) {
        eprintln!("data directory already loaded; reusing it");
        return Ok(n as u64);
    }
    let started = Instant::now();
    let reader = BufReader::new(std::fs::File::open(path)?);
    let mut lines = reader.lines();
    let mut in_flight = tokio::task::JoinSet::new();
    let mut stored = 0u64;
    let client = std::sync::Arc::new(client_clone(client).await?);
    loop {
        let mut batch = Vec::with_capacity(1000);
        for line in lines.by_ref().take(1000) {
            batch.push(serde_json::from_str::<Value>(&line?)?);
        }
        if batch.is_empty() {
            break;
        }
        while in_flight.len() >= 4 {
            if let Some(r) = in_flight.join_next().await {
                stored += r??;
            }
        }
        let c = client.clone();
        in_flight.spawn(async move {
            let resp = c.put_traces(&batch).await?;
            Ok::<u64, anyhow::Error>(resp.body["accepted"].as_u64().unwrap_or(0))
        });
    }
    while let Some(r) = in_flight.join_next().await {
        stored += r??;
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "loaded {stored} traces in {secs:.1} s ({:.0}/s)",
        stored as f64 / secs
    );
    Ok(stored)
}

async fn client_clone(c: &Client) -> anyhow::Result<Client> {
    admin_client(c.endpoint().as_str()).await
}

async fn peer_axum(listen: &str) -> anyhow::Result<()> {
    use axum::routing::post;
    async fn parse(body: bytes::Bytes) -> axum::http::StatusCode {
        match serde_json::from_slice::<Value>(&body) {
            Ok(v) if v["traces"].is_array() => axum::http::StatusCode::OK,
            _ => axum::http::StatusCode::BAD_REQUEST,
        }
    }
    let app = axum::Router::new()
        .route("/v3/{project_id}/traces", post(parse))
        .layer(axum::extract::DefaultBodyLimit::max(12 << 20));
    let listener = tokio::net::TcpListener::bind(listen).await?;
    axum::serve(listener, app).await?;
    Ok(())
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    match Cli::parse().command {
        Cmd::Ingest {
            duration,
            connections,
        } => append_result("ingest", &ingest(&duration, connections).await?),
        Cmd::Query { traces, queries } => query(traces, queries).await,
        Cmd::PeerAxum { listen } => peer_axum(&listen).await,
        Cmd::Smn {
            rate,
            seconds,
            peer_alarms,
        } => smn_bench(rate, seconds, peer_alarms).await,
        Cmd::Functions { rate, seconds, mix } => functions_bench(&rate, seconds, &mix).await,
        Cmd::All { quick } => all::all(quick).await,
        Cmd::Python { warm, cold, traces } => python_bench(warm, cold, traces).await,
    }
}

/// Arrival times (since `origin`) of notifications by message_id, recorded by the bench's
/// webhook receiver, which also confirms its subscription as a real receiver would.
#[derive(Clone)]
struct Arrivals {
    origin: Instant,
    seen: std::sync::Arc<std::sync::Mutex<std::collections::HashMap<String, f64>>>,
    count: std::sync::Arc<std::sync::atomic::AtomicUsize>,
}

async fn bench_receiver(arrivals: Arrivals) -> anyhow::Result<String> {
    use axum::routing::post;
    async fn hook(
        axum::extract::State(a): axum::extract::State<Arrivals>,
        body: bytes::Bytes,
    ) -> axum::http::StatusCode {
        let at = a.origin.elapsed().as_secs_f64() * 1000.0;
        let v: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
        match v["type"].as_str() {
            Some("SubscriptionConfirmation") => {
                if let Some(url) = v["subscribe_url"].as_str().map(str::to_owned) {
                    tokio::spawn(async move {
                        let _ = reqwest::get(url).await;
                    });
                }
            }
            Some("Notification") | None => {
                let id = v["message_id"].as_str().unwrap_or("peer").to_owned();
                if let Ok(mut m) = a.seen.lock() {
                    m.entry(id).or_insert(at);
                }
                a.count.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            _ => {}
        }
        axum::http::StatusCode::OK
    }
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let url = format!("http://{}/hook", listener.local_addr()?);
    let app = axum::Router::new()
        .route("/hook", post(hook))
        .with_state(arrivals);
    tokio::spawn(async move {
        let _ = axum::serve(listener, app).await;
    });
    Ok(url)
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

async fn smn_bench(rate: u32, seconds: u32, peer_alarms: usize) -> anyhow::Result<()> {
    let data = work_dir()?.join("tw-smn");
    let _ = std::fs::remove_dir_all(&data);
    let (tw, url) = start_trailwatch(&data)?;
    let client = admin_client(&url).await?;
    let (token, _) = client.password_token(Some("default")).await?;
    let pid = client.project_id().to_owned();
    let arrivals = Arrivals {
        origin: Instant::now(),
        seen: Default::default(),
        count: Default::default(),
    };
    let hook = bench_receiver(arrivals.clone()).await?;
    let http = reqwest::Client::new();
    let topic: Value = http
        .post(format!("{url}/v2/{pid}/notifications/topics"))
        .header("X-Auth-Token", &token)
        .body(json!({"name": "bench"}).to_string())
        .send()
        .await?
        .json()
        .await?;
    let topic_urn = topic["topic_urn"].as_str().unwrap_or_default().to_owned();
    http.post(format!(
        "{url}/v2/{pid}/notifications/topics/{topic_urn}/subscriptions"
    ))
    .header("X-Auth-Token", &token)
    .body(json!({"protocol": "http", "endpoint": hook}).to_string())
    .send()
    .await?;
    // Wait for the receiver to confirm.
    for _ in 0..200 {
        let subs: Value = http
            .get(format!("{url}/v2/{pid}/notifications/subscriptions"))
            .header("X-Auth-Token", &token)
            .send()
            .await?
            .json()
            .await?;
        if subs["subscriptions"][0]["status"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    let publish_url = format!("{url}/v2/{pid}/notifications/topics/{topic_urn}/publish");

    // 1. Latency at a fixed rate: acknowledgment → webhook arrival.
    let total = (rate * seconds) as usize;
    let acks = std::sync::Arc::new(std::sync::Mutex::new(Vec::with_capacity(total)));
    let mut tick = tokio::time::interval(Duration::from_secs_f64(1.0 / f64::from(rate)));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut tasks = tokio::task::JoinSet::new();
    let started = Instant::now();
    for i in 0..total {
        tick.tick().await;
        let (http, u, t, acks, origin) = (
            http.clone(),
            publish_url.clone(),
            token.clone(),
            acks.clone(),
            arrivals.origin,
        );
        tasks.spawn(async move {
            let body = json!({"subject": "CTSTrigger", "message": format!("Illegal operation[  IP:198.51.100.{},  Action:login]", i % 250)});
            if let Ok(r) = http.post(&u).header("X-Auth-Token", &t).body(body.to_string()).send().await
                && r.status().is_success()
                && let Ok(v) = r.json::<Value>().await
            {
                let at = origin.elapsed().as_secs_f64() * 1000.0;
                if let (Some(id), Ok(mut a)) = (v["message_id"].as_str(), acks.lock()) {
                    a.push((id.to_owned(), at));
                }
            }
        });
    }
    while tasks.join_next().await.is_some() {}
    let offered = total as f64 / started.elapsed().as_secs_f64();
    let deadline = Instant::now() + Duration::from_secs(30);
    while arrivals.count.load(std::sync::atomic::Ordering::Relaxed) < total
        && Instant::now() < deadline
    {
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let acks = acks.lock().map(|a| a.clone()).unwrap_or_default();
    let seen = arrivals.seen.lock().map(|s| s.clone()).unwrap_or_default();
    let mut latencies: Vec<f64> = acks
        .iter()
        .filter_map(|(id, ack)| seen.get(id).map(|arr| (arr - ack).max(0.0)))
        .collect();
    latencies.sort_by(f64::total_cmp);
    let delivered = latencies.len();

    // 2. Durable publish throughput with wrk (same script as ingest).
    let body_dir = work_dir()?.join("smn-bodies");
    std::fs::create_dir_all(&body_dir)?;
    for i in 0..100 {
        let body = json!({"subject": "CTSTrigger", "message": format!("Illegal operation[  IP:203.0.113.{i},  Action:logout]")});
        std::fs::write(body_dir.join(format!("body{i}.json")), body.to_string())?;
    }
    let wrk = run_wrk(&publish_url, "10s", 32, &body_dir, 100, &token)?;
    // The same on a topic without subscribers: the publish API alone (durable accept), without
    // the deliveries (and their RSA signatures) competing for the two cores.
    let bare: Value = http
        .post(format!("{url}/v2/{pid}/notifications/topics"))
        .header("X-Auth-Token", &token)
        .body(json!({"name": "bench-no-subscribers"}).to_string())
        .send()
        .await?
        .json()
        .await?;
    let bare_url = format!(
        "{url}/v2/{pid}/notifications/topics/{}/publish",
        bare["topic_urn"].as_str().unwrap_or_default()
    );
    let wrk_bare = run_wrk(&bare_url, "10s", 32, &body_dir, 100, &token)?;
    let (_, peak) = rss_mib(tw.pid());
    drop(tw);

    // 3. The peer: the tutorial's delivery path, one Python process with requests.post per alarm.
    let peer_hook = hook.clone();
    let script = "import json, sys, requests\nbody = {'message': 'Illegal operation[  IP:198.51.100.7,  Action:login]', 'subject': 'CTSTrigger'}\nr = requests.post(sys.argv[1], headers={'accept': 'application/json'}, data=json.dumps(body))\nsys.exit(0 if r.status_code == 200 else 1)\n";
    let before = arrivals.count.load(std::sync::atomic::Ordering::Relaxed);
    let peer_started = Instant::now();
    let mut peer_lat = Vec::with_capacity(peer_alarms);
    let mut peer_failed = 0;
    for _ in 0..peer_alarms {
        let t = Instant::now();
        let ok = Command::new("python3")
            .arg("-c")
            .arg(script)
            .arg(&peer_hook)
            .status()
            .map(|s| s.success())
            .unwrap_or(false);
        if ok {
            peer_lat.push(t.elapsed().as_secs_f64() * 1000.0);
        } else {
            peer_failed += 1;
        }
    }
    let peer_rate = peer_alarms as f64 / peer_started.elapsed().as_secs_f64();
    let peer_received = arrivals.count.load(std::sync::atomic::Ordering::Relaxed) - before;
    peer_lat.sort_by(f64::total_cmp);

    let result = json!({
        "latency_run": {
            "offered_publishes_per_s": offered.round(), "published": acks.len(), "delivered": delivered,
            "ack_to_webhook_p50_ms": percentile(&latencies, 0.5), "p99_ms": percentile(&latencies, 0.99),
            "p999_ms": percentile(&latencies, 0.999), "max_ms": percentile(&latencies, 1.0),
        },
        "publish_api_one_http_subscriber": {"messages_per_s": wrk.requests_per_s.round(), "p50_ms": wrk.p50_ms, "p99_ms": wrk.p99_ms, "non_2xx": wrk.non_2xx},
        "publish_api_no_subscriber": {"messages_per_s": wrk_bare.requests_per_s.round(), "p50_ms": wrk_bare.p50_ms, "p99_ms": wrk_bare.p99_ms, "non_2xx": wrk_bare.non_2xx},
        "trailwatch_rss_peak_mib": peak,
        "peer_python_requests_process_per_alarm": {
            "alarms": peer_alarms, "received": peer_received, "failed": peer_failed,
            "alarms_per_s": (peer_rate * 10.0).round() / 10.0,
            "p50_ms": percentile(&peer_lat, 0.5), "p99_ms": percentile(&peer_lat, 0.99),
        },
        "ratio_publish_throughput_vs_peer": (wrk.requests_per_s / peer_rate).round(),
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    append_result("smn", &result)
}

/// POSTs `body` with the token; fails on a non-2xx answer.
async fn post_json(
    http: &reqwest::Client,
    url: &str,
    token: &str,
    method: reqwest::Method,
    body: Value,
) -> anyhow::Result<Value> {
    let r = http
        .request(method, url)
        .header("X-Auth-Token", token)
        .body(body.to_string())
        .send()
        .await?;
    let status = r.status();
    let v: Value = r.json().await.unwrap_or(Value::Null);
    if !status.is_success() {
        bail!("{url}: {status} {v}");
    }
    Ok(v)
}

/// Runs `peer_a.py variant` and returns (loop events/s, total events/s incl. parse, alarms).
fn peer_a(variant: &str, traces: &Path, allowlist: &Path) -> anyhow::Result<(f64, f64, u64)> {
    let out = Command::new("python3")
        .arg(peers_dir().join("peer_a.py"))
        .arg(variant)
        .arg(traces)
        .arg(allowlist)
        .output()
        .context("running peer_a.py")?;
    let text = String::from_utf8_lossy(&out.stdout);
    let field = |k: &str| -> f64 {
        text.split_whitespace()
            .find_map(|w| w.strip_prefix(&format!("{k}=")))
            .and_then(|v| v.parse().ok())
            .unwrap_or(f64::NAN)
    };
    Ok((
        field("loop_events_per_s"),
        field("total_events_per_s"),
        field("alarms") as u64,
    ))
}

/// The `login_audit` decision in-process on one core: parses `lines` first, then decides in a
/// loop for at least `min_seconds`. Returns (parsed traces, parsed traces/s, decisions/s, alarms
/// per pass).
fn decision_rate(
    lines: &[String],
    audit: &trailwatch_functions::builtins::login_audit::LoginAudit,
    min_seconds: f64,
) -> (usize, f64, f64, u64) {
    use trailwatch_functions::builtins::login_audit::Decision;
    let parse_started = Instant::now();
    let parsed: Vec<trailwatch_trace::Trace> = lines
        .iter()
        .filter_map(|l| trailwatch_trace::Trace::from_json_str(l).ok())
        .collect();
    let parse_rate = parsed.len() as f64 / parse_started.elapsed().as_secs_f64();
    let mut decisions = 0u64;
    let mut alarms_per_pass = 0u64;
    let decide_started = Instant::now();
    while decide_started.elapsed() < Duration::from_secs_f64(min_seconds) {
        let mut alarms = 0u64;
        for t in &parsed {
            if matches!(std::hint::black_box(audit.decide(t)), Decision::Alarm(_)) {
                alarms += 1;
            }
        }
        alarms_per_pass = alarms;
        decisions += parsed.len() as u64;
    }
    let decide_rate = decisions as f64 / decide_started.elapsed().as_secs_f64();
    (parsed.len(), parse_rate, decide_rate, alarms_per_pass)
}

async fn functions_bench(rates: &[u32], seconds: u32, mix: &str) -> anyhow::Result<()> {
    use trailwatch_functions::builtins::login_audit::LoginAudit;
    use trailwatch_functions::user_data::UserData;

    let traces_path = ensure_traces(200_000)?;
    let allowlist_path = work_dir()?.join("allowlist.txt");
    let allow: Vec<String> = std::fs::read_to_string(&allowlist_path)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .map(str::to_owned)
        .collect();
    let ip_list = allow.join(",");
    let raw_lines: Vec<String> =
        std::io::BufRead::lines(std::io::BufReader::new(std::fs::File::open(&traces_path)?))
            .collect::<Result<_, _>>()?;

    // 1. The decision in-process, one core: parse first, then decide in a loop for ≥ 2 s.
    let user_data = UserData::parse(
        &json!({"SMN_Topic": "bench_alarms", "RegionName": "local", "IP": ip_list}).to_string(),
    )?;
    let audit = LoginAudit::from_config(&user_data).map_err(|e| anyhow::anyhow!("{e}"))?;
    let (n_parsed, parse_rate, decide_rate, alarms_per_pass) =
        decision_rate(&raw_lines, &audit, 2.0);

    // 2. The peers, on the same traces.
    let (ref_loop, ref_total, ref_alarms) = peer_a("ref", &traces_path, &allowlist_path)?;
    let (fixed_loop, fixed_total, fixed_alarms) = peer_a("fixed", &traces_path, &allowlist_path)?;

    // 3. End to end: ingest acknowledgment → alarm at the webhook, at each rate in turn.
    let workload = std::sync::Arc::new(match mix {
        "in-order" => e2e::Workload::in_order(&raw_lines, &audit)?,
        "ten-percent" => e2e::Workload::ten_percent(&raw_lines, &audit)?,
        other => bail!("--mix {other}: expected in-order or ten-percent"),
    });
    let mut rig = e2e::tutorial_rig(
        &work_dir()?.join("tw-functions"),
        &e2e::RigOptions {
            email: false,
            archive_cycle_seconds: None,
        },
        &ip_list,
    )
    .await?;
    let mut runs = Vec::new();
    for &rate in rates {
        let label = rate.to_string();
        let phase = e2e::Phase {
            label: &label,
            rate: Some(rate),
            seconds: f64::from(seconds),
            alarm_wait: Duration::from_secs(30),
        };
        runs.push(e2e::drive(&rig, &workload, &phase).await?);
    }
    let (_, peak) = rss_mib(rig.server_pid());
    rig.stop();

    let result = json!({
        "workload": workload.describe(),
        "end_to_end": runs,
        "decision_in_process": {
            "traces": n_parsed, "parse_traces_per_s": parse_rate.round(),
            "decisions_per_s_one_core": decide_rate.round(), "alarms_per_pass": alarms_per_pass,
        },
        "peer_a_ref": {"loop_events_per_s": ref_loop, "total_events_per_s": ref_total, "alarms": ref_alarms},
        "peer_a_fixed": {"loop_events_per_s": fixed_loop, "total_events_per_s": fixed_total, "alarms": fixed_alarms},
        "ratio_decision_vs_ref_loop": (decide_rate / ref_loop * 10.0).round() / 10.0,
        "ratio_decision_vs_fixed_loop": (decide_rate / fixed_loop * 10.0).round() / 10.0,
        "trailwatch_rss_peak_mib": peak,
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    append_result("functions", &result)
}

/// Creates topic `name`, subscribes the HTTP receiver `hook` to it and waits until the receiver
/// has confirmed; returns the topic's URN.
async fn alarm_topic(
    http: &reqwest::Client,
    url: &str,
    pid: &str,
    token: &str,
    name: &str,
    hook: &str,
) -> anyhow::Result<String> {
    let topic = post_json(
        http,
        &format!("{url}/v2/{pid}/notifications/topics"),
        token,
        reqwest::Method::POST,
        json!({"name": name}),
    )
    .await?;
    let topic_urn = topic["topic_urn"]
        .as_str()
        .context("the topic has no topic_urn")?
        .to_owned();
    post_json(
        http,
        &format!("{url}/v2/{pid}/notifications/topics/{topic_urn}/subscriptions"),
        token,
        reqwest::Method::POST,
        json!({"protocol": "http", "endpoint": hook}),
    )
    .await?;
    for _ in 0..200 {
        let subs = post_json(
            http,
            &format!("{url}/v2/{pid}/notifications/subscriptions"),
            token,
            reqwest::Method::GET,
            Value::Null,
        )
        .await?;
        if subs["subscriptions"][0]["status"] == 1 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    Ok(topic_urn)
}

/// Creates agency `name` trusting the function service (`op_svc_cff`) with *SMN Administrator*
/// in the project: what the tutorial's functions publish with.
async fn smn_agency(
    http: &reqwest::Client,
    url: &str,
    pid: &str,
    token: &str,
    name: &str,
) -> anyhow::Result<()> {
    let projects = post_json(
        http,
        &format!("{url}/v3/auth/projects"),
        token,
        reqwest::Method::GET,
        Value::Null,
    )
    .await?;
    let domain = projects["projects"][0]["domain_id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let agency = post_json(
        http,
        &format!("{url}/v3.0/OS-AGENCY/agencies"),
        token,
        reqwest::Method::POST,
        json!({"agency": {"name": name, "domain_id": domain, "trust_domain_name": "op_svc_cff"}}),
    )
    .await?;
    let agency_id = agency["agency"]["id"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let smn_admin = trailwatch_iam::roles::by_display_name("SMN Administrator")
        .map(|r| r.id)
        .unwrap_or_default();
    let grant = http
        .put(format!(
            "{url}/v3.0/OS-AGENCY/projects/{pid}/agencies/{agency_id}/roles/{smn_admin}"
        ))
        .header("X-Auth-Token", token)
        .send()
        .await?;
    if !grant.status().is_success() {
        bail!("granting SMN Administrator: {}", grant.status());
    }
    Ok(())
}

// ---- Python runtime (issue 7) ------------------------------------------------------------

/// The empty handler of issue 7's overhead target.
const EMPTY_HANDLER: &str = "def handler(event, context):\n    return {}\n";
/// The tutorial's handler, its logic corrected (`docs/specs/python-runtime.md`).
const TUTORIAL_HANDLER: &str = include_str!("../../../examples/functions/login_audit_py/index.py");
/// `requests` as `.ci/run` pins it.
const REQUESTS_PIN: &str = "requests==2.34.2";

/// CRC-32 (IEEE) of `data`, for the zip writer.
fn crc32(data: &[u8]) -> u32 {
    let mut crc = 0xffff_ffffu32;
    for &b in data {
        crc ^= u32::from(b);
        for _ in 0..8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ 0xedb8_8320
            } else {
                crc >> 1
            };
        }
    }
    !crc
}

/// A zip archive of `files`, stored (no compression), with fixed timestamps: the same input
/// always gives the same bytes. (The harness has no zip dependency; this is all it needs.)
fn zip_stored(files: &[(&str, &str)]) -> anyhow::Result<Vec<u8>> {
    const DOS_DATE_1980_01_01: u16 = (1 << 5) | 1;
    let u16_of = |n: usize| u16::try_from(n).context("zip: too many entries or a long name");
    let u32_of = |n: usize| u32::try_from(n).context("zip: file too large");
    let mut out = Vec::new();
    let mut central = Vec::new();
    for (name, body) in files {
        let (name, body) = (name.as_bytes(), body.as_bytes());
        let crc = crc32(body);
        let offset = u32_of(out.len())?;
        out.extend_from_slice(&0x0403_4b50u32.to_le_bytes());
        for v in [20u16, 0, 0, 0, DOS_DATE_1980_01_01] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, u32_of(body.len())?, u32_of(body.len())?] {
            out.extend_from_slice(&v.to_le_bytes());
        }
        out.extend_from_slice(&u16_of(name.len())?.to_le_bytes());
        out.extend_from_slice(&0u16.to_le_bytes());
        out.extend_from_slice(name);
        out.extend_from_slice(body);

        central.extend_from_slice(&0x0201_4b50u32.to_le_bytes());
        for v in [20u16, 20, 0, 0, 0, DOS_DATE_1980_01_01] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [crc, u32_of(body.len())?, u32_of(body.len())?] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [u16_of(name.len())?, 0, 0, 0, 0] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        for v in [0u32, offset] {
            central.extend_from_slice(&v.to_le_bytes());
        }
        central.extend_from_slice(name);
    }
    let central_offset = u32_of(out.len())?;
    let central_len = u32_of(central.len())?;
    out.extend_from_slice(&central);
    out.extend_from_slice(&0x0605_4b50u32.to_le_bytes());
    for v in [0u16, 0, u16_of(files.len())?, u16_of(files.len())?] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    for v in [central_len, central_offset] {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out.extend_from_slice(&0u16.to_le_bytes());
    Ok(out)
}

/// Standard base64 with padding.
fn base64_std(data: &[u8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(char::from(ALPHABET[((n >> (18 - 6 * i)) & 63) as usize]));
            } else {
                out.push('=');
            }
        }
    }
    out
}

/// The base64 zip of one `index.py`, as FunctionGraph's API takes it.
fn index_zip_b64(source: &str) -> anyhow::Result<String> {
    Ok(base64_std(&zip_stored(&[("index.py", source)])?))
}

/// The interpreter of the Python functions: a virtualenv at `bench/work/py-venv` with
/// `requests` (the tutorial's handler imports it), created with `python3 -m venv` and
/// `pip install requests==2.34.2` (PyPI) when missing.
fn ensure_python_venv() -> anyhow::Result<PathBuf> {
    let venv = std::fs::canonicalize(work_dir()?)?.join("py-venv");
    let python = venv.join("bin/python");
    let has_requests = |p: &Path| {
        Command::new(p)
            .args(["-I", "-c", "import requests"])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    };
    if python.exists() && has_requests(&python) {
        return Ok(python);
    }
    eprintln!("creating {} with {REQUESTS_PIN} …", venv.display());
    let status = Command::new("python3")
        .args(["-m", "venv"])
        .arg(&venv)
        .status()
        .context("running python3 -m venv")?;
    if !status.success() {
        bail!("python3 -m venv {} failed", venv.display());
    }
    let status = Command::new(&python)
        .args([
            "-m",
            "pip",
            "install",
            "-q",
            "--disable-pip-version-check",
            REQUESTS_PIN,
        ])
        .status()
        .context("running pip install")?;
    if !status.success() || !has_requests(&python) {
        bail!("pip install {REQUESTS_PIN} into {} failed", venv.display());
    }
    Ok(python)
}

/// `python` as the interpreter's `sys.version` (e.g. `3.11.7`).
fn python_version(python: &Path) -> String {
    Command::new(python)
        .args(["-c", "import platform; print(platform.python_version())"])
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// One sync invocation over HTTP: (client round trip in ms, the answer's body). With `tail`,
/// the answer carries the log, whose `Finish` line has the server's own duration.
async fn fgs_invoke(
    http: &reqwest::Client,
    url: &str,
    pid: &str,
    token: &str,
    name: &str,
    event: &str,
    tail: bool,
) -> anyhow::Result<(f64, Value)> {
    let mut request = http
        .post(format!("{url}/v2/{pid}/fgs/functions/{name}/invocations"))
        .header("X-Auth-Token", token)
        .body(event.to_owned());
    if tail {
        request = request.header("X-Cff-Log-Type", "tail");
    }
    let started = Instant::now();
    let r = request.send().await?;
    let status = r.status();
    let body: Value = r.json().await?;
    let ms = started.elapsed().as_secs_f64() * 1000.0;
    if !status.is_success() || body["status"] != 200 {
        bail!("invoking {name}: {status} {body}");
    }
    Ok((ms, body))
}

/// The server-side duration of an invocation, from its log's `Finish … duration: X ms` line.
fn logged_duration_ms(body: &Value) -> Option<f64> {
    let log = body["log"].as_str()?;
    let finish = &log[log.rfind("Finish invoke request")?..];
    let rest = &finish[finish.find("duration: ")? + "duration: ".len()..];
    rest[..rest.find("ms")?].trim().parse().ok()
}

/// p50/p99/max of `v` (sorted in place), rounded to µs.
fn summary_ms(v: &mut [f64]) -> Value {
    v.sort_by(f64::total_cmp);
    let r = |x: f64| (x * 1000.0).round() / 1000.0;
    json!({"n": v.len(), "p50_ms": r(percentile(v, 0.5)), "p90_ms": r(percentile(v, 0.9)),
           "p99_ms": r(percentile(v, 0.99)), "max_ms": r(percentile(v, 1.0))})
}

/// Python worker processes (`bootstrap.py`) whose parent is `server`.
fn python_workers(server: u32) -> usize {
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return 0;
    };
    dir.filter_map(Result::ok)
        .filter(|e| {
            e.file_name()
                .to_string_lossy()
                .bytes()
                .all(|b| b.is_ascii_digit())
        })
        .filter(|e| {
            let status = std::fs::read_to_string(e.path().join("status")).unwrap_or_default();
            let ppid = status
                .lines()
                .find_map(|l| l.strip_prefix("PPid:"))
                .and_then(|v| v.trim().parse::<u32>().ok());
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            ppid == Some(server) && String::from_utf8_lossy(&cmdline).contains("bootstrap.py")
        })
        .count()
}

/// Creates a Python function from one `index.py`; `extra` overrides fields of the body.
async fn create_python_fn(
    http: &reqwest::Client,
    url: &str,
    pid: &str,
    token: &str,
    name: &str,
    source: &str,
    extra: Value,
) -> anyhow::Result<Value> {
    let mut body = json!({"func_name": name, "package": "default", "runtime": "Python3.11",
                          "handler": "index.handler", "memory_size": 128, "timeout": 10,
                          "max_instance_num": 1, "code_type": "zip",
                          "func_code": {"file": index_zip_b64(source)?}});
    if let (Some(b), Some(e)) = (body.as_object_mut(), extra.as_object()) {
        for (k, v) in e {
            b.insert(k.clone(), v.clone());
        }
    }
    post_json(
        http,
        &format!("{url}/v2/{pid}/fgs/functions"),
        token,
        reqwest::Method::POST,
        body,
    )
    .await
}

/// Replaces a Python function's code with one `index.py`.
async fn update_python_code(
    http: &reqwest::Client,
    url: &str,
    pid: &str,
    token: &str,
    name: &str,
    source: &str,
) -> anyhow::Result<()> {
    post_json(
        http,
        &format!("{url}/v2/{pid}/fgs/functions/{name}/code"),
        token,
        reqwest::Method::PUT,
        json!({"code_type": "zip", "func_code": {"file": index_zip_b64(source)?}}),
    )
    .await?;
    Ok(())
}

/// Cold starts: `n` times, `prepare(i)` makes a function whose workers must start anew (a new
/// function, or new code), then after a pause of 100 ms (so that stopping the old worker is
/// not measured) its first sync invocation is timed, and a second, warm one right after it.
/// Returns (first: client ms, first: server ms, second: client ms).
async fn cold_starts<F, Fut>(
    http: &reqwest::Client,
    url: &str,
    pid: &str,
    token: &str,
    n: usize,
    event: &str,
    mut prepare: F,
) -> anyhow::Result<(Vec<f64>, Vec<f64>, Vec<f64>)>
where
    F: FnMut(usize) -> Fut,
    Fut: Future<Output = anyhow::Result<String>>,
{
    let (mut first, mut server, mut second) = (Vec::new(), Vec::new(), Vec::new());
    for i in 0..n {
        let name = prepare(i).await?;
        tokio::time::sleep(Duration::from_millis(100)).await;
        let (ms, body) = fgs_invoke(http, url, pid, token, &name, event, true).await?;
        first.push(ms);
        server.push(logged_duration_ms(&body).context("no duration in the invocation log")?);
        second.push(
            fgs_invoke(http, url, pid, token, &name, event, false)
                .await?
                .0,
        );
    }
    Ok((first, server, second))
}

/// The server's own duration (`execute`, from the invocation records) of a function's last 500
/// invocations, summarised.
async fn server_durations(
    http: &reqwest::Client,
    url: &str,
    pid: &str,
    token: &str,
    name: &str,
) -> anyhow::Result<Value> {
    let recs = post_json(
        http,
        &format!("{url}/v2/{pid}/fgs/functions/{name}/invocations?limit=500"),
        token,
        reqwest::Method::GET,
        Value::Null,
    )
    .await?;
    let mut server: Vec<f64> = recs["invocations"]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r["duration"].as_f64()).collect())
        .unwrap_or_default();
    Ok(summary_ms(&mut server))
}

/// What one trigger run measured.
struct TriggerRun {
    seconds: f64,
    invocations: u64,
    failures: u64,
    alarms: usize,
    alarms_seconds: f64,
    max_workers_seen: usize,
}

/// Enables a disabled CTS trigger whose cursor stands before the loaded traces, and times how
/// long it takes to run every matching trace (`expected` invocations, counted by
/// `trailwatch_function_invocations_total`) and to deliver the `expected_alarms`.
#[allow(clippy::too_many_arguments)]
async fn run_trigger(
    http: &reqwest::Client,
    client: &Client,
    url: &str,
    token: &str,
    function: &str,
    trigger_id: &str,
    expected: u64,
    expected_alarms: usize,
    arrivals: &Arrivals,
    server_pid: u32,
    wake_trace: Value,
) -> anyhow::Result<TriggerRun> {
    let pid = client.project_id().to_owned();
    let trigger_url = format!("{url}/v2/{pid}/fgs/triggers/{function}/CTS/{trigger_id}");
    let count = || arrivals.count.load(std::sync::atomic::Ordering::Relaxed);
    let base = scrape(url, "trailwatch_function_invocations_total").await?;
    let base_failures = scrape(url, "trailwatch_function_failures_total").await?;
    let base_alarms = count();
    let started = Instant::now();
    post_json(
        http,
        &trigger_url,
        token,
        reqwest::Method::PUT,
        json!({"trigger_status": "ACTIVE"}),
    )
    .await?;
    // A new trace wakes the trigger engine at once (it otherwise looks for new triggers every
    // second); it matches no trigger.
    client.put_traces(&[wake_trace]).await?;
    let (mut max_workers_seen, mut polls) = (0, 0u64);
    let deadline = started + Duration::from_secs(900);
    let mut done = base;
    while done < base + expected {
        if Instant::now() > deadline {
            bail!(
                "{function}: {} of {expected} invocations after 15 minutes",
                done - base
            );
        }
        polls += 1;
        if polls % 10 == 1 {
            max_workers_seen = max_workers_seen.max(python_workers(server_pid));
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
        done = scrape(url, "trailwatch_function_invocations_total").await?;
    }
    let seconds = started.elapsed().as_secs_f64();
    let alarm_deadline = Instant::now() + Duration::from_secs(60);
    while count() - base_alarms < expected_alarms && Instant::now() < alarm_deadline {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    let alarms_seconds = started.elapsed().as_secs_f64();
    post_json(
        http,
        &trigger_url,
        token,
        reqwest::Method::PUT,
        json!({"trigger_status": "DISABLED"}),
    )
    .await?;
    Ok(TriggerRun {
        seconds,
        invocations: done - base,
        failures: scrape(url, "trailwatch_function_failures_total").await? - base_failures,
        alarms: count() - base_alarms,
        alarms_seconds,
        max_workers_seen,
    })
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_default()
}

async fn python_bench(warm: usize, cold: usize, n_traces: usize) -> anyhow::Result<()> {
    use trailwatch_functions::builtins::login_audit::{Decision, LoginAudit};
    use trailwatch_functions::user_data::UserData;

    let load_at_start = load_average();
    let python = ensure_python_venv()?;
    let version = python_version(&python);
    let traces_path = ensure_traces(n_traces)?;
    let allowlist_path = work_dir()?.join("allowlist.txt");
    let ip_list = std::fs::read_to_string(&allowlist_path)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(",");
    let raw_lines: Vec<String> = BufReader::new(std::fs::File::open(&traces_path)?)
        .lines()
        .collect::<Result<_, _>>()?;
    let traces: Vec<Value> = raw_lines
        .iter()
        .map(|l| serde_json::from_str(l))
        .collect::<Result<_, _>>()?;

    // What the trigger should run and alarm: its operations and the builtin decision.
    let ops = trailwatch_functions::OperationSet::parse(["IAM:user:login;logout"])
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let user_data = json!({"SMN_Topic": "bench_alarms", "RegionName": "local", "IP": ip_list});
    let audit = LoginAudit::from_config(&UserData::parse(&user_data.to_string())?)
        .map_err(|e| anyhow::anyhow!("{e}"))?;
    let (mut expected, mut expected_alarms) = (0u64, 0usize);
    for line in &raw_lines {
        let t = trailwatch_trace::Trace::from_json_str(line)
            .map_err(|e| anyhow::anyhow!("a generated trace does not parse: {e}"))?;
        if ops.matches_trace(&t) {
            expected += 1;
            if matches!(audit.decide(&t), Decision::Alarm(_)) {
                expected_alarms += 1;
            }
        }
    }

    // The peer: the tutorial's corrected handler in-process over the same traces (median of 3).
    let mut peer_runs = Vec::new();
    for _ in 0..3 {
        peer_runs.push(peer_a("fixed", &traces_path, &allowlist_path)?);
    }
    peer_runs.sort_by(|a, b| a.0.total_cmp(&b.0));
    let (peer_loop, peer_total, peer_alarms) = peer_runs[1];

    let data = work_dir()?.join("tw-python");
    let _ = std::fs::remove_dir_all(&data);
    let config = format!(
        "version = 1\n[python]\ninterpreter = {}\n",
        Value::String(python.display().to_string())
    );
    let (tw, url) = start_trailwatch_with(&data, Some(&config))?;
    let client = admin_client(&url).await?;
    let (token, _) = client.password_token(Some("default")).await?;
    let pid = client.project_id().to_owned();
    let http = reqwest::Client::new();

    // 1. Warm invocation overhead: the empty handler, sequential sync invocations over HTTP
    // (one keep-alive connection), after 200 warm-up calls; the builtin `login_audit` on a
    // trace it ignores, the same way, as the runtime-free baseline.
    smn_agency(&http, &url, &pid, &token, "serverless_trust").await?;
    create_python_fn(&http, &url, &pid, &token, "empty", EMPTY_HANDLER, json!({})).await?;
    // The same with an agency: each invocation then also mints `context.getToken()`.
    create_python_fn(
        &http,
        &url,
        &pid,
        &token,
        "empty_agency",
        EMPTY_HANDLER,
        json!({"xrole": "serverless_trust"}),
    )
    .await?;
    post_json(
        &http,
        &format!("{url}/v2/{pid}/fgs/functions"),
        &token,
        reqwest::Method::POST,
        json!({"func_name": "builtin_noop", "package": "default", "runtime": "builtin",
               "handler": "login_audit", "memory_size": 128, "timeout": 10,
               "user_data": user_data.to_string()}),
    )
    .await?;
    let ignored = traces
        .iter()
        .find(|t| t["service_type"] != "IAM")
        .context("no non-IAM trace in the workload")?;
    let builtin_event = json!({"cts": ignored}).to_string();
    let mut warm_runs = Vec::new();
    for (name, event) in [
        ("empty", "{}"),
        ("builtin_noop", builtin_event.as_str()),
        ("empty_agency", "{}"),
    ] {
        for _ in 0..200 {
            fgs_invoke(&http, &url, &pid, &token, name, event, false).await?;
        }
        let mut lat = Vec::with_capacity(warm);
        for _ in 0..warm {
            lat.push(
                fgs_invoke(&http, &url, &pid, &token, name, event, false)
                    .await?
                    .0,
            );
        }
        let server = server_durations(&http, &url, &pid, &token, name).await?;
        warm_runs.push((summary_ms(&mut lat), server));
    }
    let workers_after_warm = python_workers(tw.pid());

    // 2. Cold starts of a new worker of the empty handler: the first invocation after creating
    // the function, and after each code update; then the tutorial's handler (which imports
    // `requests`) after each code update.
    let created = cold_starts(&http, &url, &pid, &token, cold, "{}", |i| {
        let (http, url, pid, token) = (http.clone(), url.clone(), pid.clone(), token.clone());
        async move {
            let name = format!("cold_new_{i}");
            create_python_fn(&http, &url, &pid, &token, &name, EMPTY_HANDLER, json!({})).await?;
            Ok(name)
        }
    })
    .await?;
    create_python_fn(
        &http,
        &url,
        &pid,
        &token,
        "cold_update",
        EMPTY_HANDLER,
        json!({}),
    )
    .await?;
    let updated = cold_starts(&http, &url, &pid, &token, cold, "{}", |i| {
        let (http, url, pid, token) = (http.clone(), url.clone(), pid.clone(), token.clone());
        async move {
            let source = format!("# generation {i}\n{EMPTY_HANDLER}");
            update_python_code(&http, &url, &pid, &token, "cold_update", &source).await?;
            Ok("cold_update".to_owned())
        }
    })
    .await?;
    create_python_fn(
        &http,
        &url,
        &pid,
        &token,
        "cold_tutorial",
        TUTORIAL_HANDLER,
        json!({"memory_size": 256, "user_data": user_data.to_string()}),
    )
    .await?;
    // An allowed login: the handler returns before publishing (no agency needed).
    let allowed = traces
        .iter()
        .find(|t| {
            t["trace_name"] == "login" && {
                trailwatch_trace::Trace::from_value((*t).clone())
                    .is_ok_and(|t| matches!(audit.decide(&t), Decision::Allowed(_)))
            }
        })
        .context("no allowed login in the workload")?;
    let allowed_event = json!({"cts": allowed}).to_string();
    let tutorial_cold = cold_starts(&http, &url, &pid, &token, cold, &allowed_event, |i| {
        let (http, url, pid, token) = (http.clone(), url.clone(), pid.clone(), token.clone());
        async move {
            let source = format!("# generation {i}\n{TUTORIAL_HANDLER}");
            update_python_code(&http, &url, &pid, &token, "cold_tutorial", &source).await?;
            Ok("cold_tutorial".to_owned())
        }
    })
    .await?;
    // Deleted, so that only the trigger's function has workers below.
    let others = ["empty", "empty_agency", "cold_update", "cold_tutorial"].map(str::to_owned);
    for name in (0..cold).map(|i| format!("cold_new_{i}")).chain(others) {
        post_json(
            &http,
            &format!("{url}/v2/{pid}/fgs/functions/{name}"),
            &token,
            reqwest::Method::DELETE,
            Value::Null,
        )
        .await?;
    }

    // 3. The tutorial's handler through the CTS trigger, vs the builtin `login_audit` on the
    // same trigger path: both publish to one topic with a confirmed HTTP subscriber (the
    // bench's receiver), concurrency 2 each. The traces are loaded while both triggers are
    // disabled, then each trigger is enabled in turn and drains the backlog.
    let arrivals = Arrivals {
        origin: Instant::now(),
        seen: Default::default(),
        count: Default::default(),
    };
    let hook = bench_receiver(arrivals.clone()).await?;
    alarm_topic(&http, &url, &pid, &token, "bench_alarms", &hook).await?;
    post_json(&http, &format!("{url}/v2/{pid}/fgs/functions"), &token, reqwest::Method::POST,
        json!({"func_name": "login_audit", "package": "default", "runtime": "builtin", "handler": "login_audit",
               "memory_size": 128, "timeout": 30, "max_instance_num": 2,
               "user_data": user_data.to_string(), "xrole": "serverless_trust"})).await?;
    create_python_fn(
        &http,
        &url,
        &pid,
        &token,
        "login_audit_py",
        TUTORIAL_HANDLER,
        json!({"runtime": "Python3.9", "memory_size": 256, "timeout": 30, "max_instance_num": 2,
               "user_data": user_data.to_string(), "xrole": "serverless_trust"}),
    )
    .await?;
    let mut trigger_ids = Vec::new();
    for name in ["login_audit", "login_audit_py"] {
        let t = post_json(&http, &format!("{url}/v2/{pid}/fgs/triggers/{name}"), &token, reqwest::Method::POST,
            json!({"trigger_type_code": "CTS", "trigger_status": "DISABLED", "event_type_code": "MessageCreated",
                   "event_data": {"name": "login_audit", "operations": ["IAM:user:login;logout"]}})).await?;
        trigger_ids.push(
            t["trigger_id"]
                .as_str()
                .context("the trigger has no trigger_id")?
                .to_owned(),
        );
    }
    let load_started = Instant::now();
    let mut loaded = 0u64;
    for batch in traces.chunks(1000) {
        let r = client.put_traces(batch).await?;
        loaded += r.body["accepted"].as_u64().unwrap_or(0);
    }
    let load_seconds = load_started.elapsed().as_secs_f64();
    if loaded != raw_lines.len() as u64 {
        bail!("loaded {loaded} of {} traces", raw_lines.len());
    }
    let wake = |k: usize| {
        let mut t = ignored.clone();
        t["trace_id"] = json!(format!("bench-wake-{k}"));
        t
    };
    let mut runs = Vec::new();
    for (k, name) in ["login_audit", "login_audit_py"].into_iter().enumerate() {
        let load = load_average();
        let run = run_trigger(
            &http,
            &client,
            &url,
            &token,
            name,
            &trigger_ids[k],
            expected,
            expected_alarms,
            &arrivals,
            tw.pid(),
            wake(k),
        )
        .await?;
        let server = server_durations(&http, &url, &pid, &token, name).await?;
        runs.push((run, load, server));
    }

    // 4. The same handler and events driven directly: two clients invoking it concurrently
    // (sync, over HTTP), so that both of its workers are busy: what the runtime gives with
    // concurrency 2 when the caller does not serialise (the CTS trigger does, see above).
    let events: Vec<String> = traces
        .iter()
        .filter(|t| {
            trailwatch_trace::Trace::from_value((*t).clone()).is_ok_and(|t| ops.matches_trace(&t))
        })
        .map(|t| json!({"cts": t}).to_string())
        .collect();
    let events = std::sync::Arc::new(events);
    let direct_started = Instant::now();
    let mut clients = tokio::task::JoinSet::new();
    for k in 0..2 {
        let (http, url, pid, token, events) = (
            http.clone(),
            url.clone(),
            pid.clone(),
            token.clone(),
            events.clone(),
        );
        clients.spawn(async move {
            let mut lat = Vec::new();
            for event in events.iter().skip(k).step_by(2) {
                lat.push(
                    fgs_invoke(&http, &url, &pid, &token, "login_audit_py", event, false)
                        .await?
                        .0,
                );
            }
            Ok::<Vec<f64>, anyhow::Error>(lat)
        });
    }
    let mut direct_lat = Vec::new();
    while let Some(r) = clients.join_next().await {
        direct_lat.extend(r??);
    }
    let direct_seconds = direct_started.elapsed().as_secs_f64();
    let direct_workers = python_workers(tw.pid());
    let (_, peak) = rss_mib(tw.pid());
    drop(tw);

    let n = raw_lines.len() as f64;
    let trigger_json = |(r, load, server): &(TriggerRun, String, Value)| {
        json!({
            "seconds": (r.seconds * 1000.0).round() / 1000.0,
            "traces_per_s": (n / r.seconds).round(),
            "invocations": r.invocations, "invocations_per_s": (r.invocations as f64 / r.seconds).round(),
            "failures": r.failures, "alarms_received": r.alarms,
            "seconds_until_all_alarms_received": (r.alarms_seconds * 1000.0).round() / 1000.0,
            "python_workers_seen": r.max_workers_seen, "load_average_before": load,
            "server_duration_last_500": server,
        })
    };
    let py = &runs[1].0;
    let builtin = &runs[0].0;
    let py_tps = n / py.seconds;
    let result = json!({
        "interpreter": format!("{} (Python {version}, virtualenv with {REQUESTS_PIN})", python.display()),
        "load_average_at_start": load_at_start,
        "warm_empty_handler": {
            "what": "POST …/invocations of `def handler(event, context): return {}`, sequential, one keep-alive connection, after 200 warm-up calls",
            "client_round_trip": warm_runs[0].0, "server_duration_last_500": warm_runs[0].1,
            "python_workers_after": workers_after_warm,
        },
        "warm_empty_handler_with_agency": {
            "what": "the empty handler with an agency (xrole): each invocation also mints its agency token",
            "client_round_trip": warm_runs[2].0, "server_duration_last_500": warm_runs[2].1,
        },
        "warm_builtin_baseline": {
            "what": "the same over builtin login_audit with a trace it ignores (no Python)",
            "client_round_trip": warm_runs[1].0, "server_duration_last_500": warm_runs[1].1,
        },
        "cold_start_empty_after_create": {
            "what": "first sync invocation of a just-created function (code extract + worker spawn + import + invoke), client round trip; server = the log's duration",
            "first_client": summary_ms(&mut created.0.clone()), "first_server": summary_ms(&mut created.1.clone()),
            "second_client": summary_ms(&mut created.2.clone()),
        },
        "cold_start_empty_after_code_update": {
            "first_client": summary_ms(&mut updated.0.clone()), "first_server": summary_ms(&mut updated.1.clone()),
            "second_client": summary_ms(&mut updated.2.clone()),
        },
        "cold_start_tutorial_after_code_update": {
            "what": "the tutorial's handler (imports requests, ipaddress) on an allowed login",
            "first_client": summary_ms(&mut tutorial_cold.0.clone()), "first_server": summary_ms(&mut tutorial_cold.1.clone()),
            "second_client": summary_ms(&mut tutorial_cold.2.clone()),
        },
        "cts_trigger": {
            "workload": format!("gen_traces.py {n_traces} traces ({expected} match IAM:user:login;logout, {expected_alarms} alarm), loaded while the triggers are disabled ({:.0} traces/s), then each trigger enabled alone to drain them; max_instance_num 2; alarms published to a topic with one confirmed HTTP subscriber", n / load_seconds),
            "builtin_login_audit": trigger_json(&runs[0]),
            "python_tutorial_handler": trigger_json(&runs[1]),
        },
        "direct_sync_two_clients": {
            "what": "the tutorial's handler on the trigger's events, sync over HTTP from 2 concurrent clients (max_instance_num 2), no trigger",
            "invocations": direct_lat.len(), "seconds": (direct_seconds * 1000.0).round() / 1000.0,
            "invocations_per_s": (direct_lat.len() as f64 / direct_seconds).round(),
            "traces_per_s_equivalent": (n / expected as f64 * direct_lat.len() as f64 / direct_seconds).round(),
            "latency": summary_ms(&mut direct_lat), "python_workers_after": direct_workers,
        },
        "peer_a_fixed_same_traces": {"loop_events_per_s": peer_loop, "total_events_per_s": peer_total, "alarms": peer_alarms, "runs": 3, "picked": "median by loop rate"},
        "ratio_python_traces_per_s_vs_peer_a_fixed_loop": (py_tps / peer_loop * 1000.0).round() / 1000.0,
        "ratio_python_traces_per_s_vs_peer_a_fixed_total": (py_tps / peer_total * 1000.0).round() / 1000.0,
        "ratio_python_vs_builtin_trigger": (builtin.seconds / py.seconds * 1000.0).round() / 1000.0,
        "trailwatch_rss_peak_mib": peak,
        "load_average_at_end": load_average(),
    });
    println!("{}", serde_json::to_string_pretty(&result)?);
    append_result("python", &result)?;
    if py.failures > 0 || py.alarms != expected_alarms || builtin.alarms != expected_alarms {
        bail!(
            "the trigger runs were not clean: python {} failures, {} of {expected_alarms} alarms; builtin {} alarms",
            py.failures,
            py.alarms,
            builtin.alarms
        );
    }
    Ok(())
}
