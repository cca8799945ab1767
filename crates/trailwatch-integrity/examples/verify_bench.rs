//! Benchmark: archive building (gzip -6 + SHA-256) and offline verification throughput, with
//! coreutils `sha256sum` over the same files as the peer.
//!
//! ```text
//! cargo run --release -p trailwatch-integrity --example verify_bench -- [MB] [THREADS] [DIR]
//! ```
//!
//! Writes about `MB` (default 512) of gzip trace files, CTS-like traces of ~850 bytes (the mix of
//! `../shared/bench-peers/gen_traces.py`), 20,000 per file, three services every 5 minutes and a
//! signed digest every hour, into a temporary folder (or `DIR`). Then, with the files in the page
//! cache, it times `verify` with 1 and `THREADS` (default: all cores) workers and `sha256sum` over
//! the same trace files, three runs each, and prints the best of each.

#[path = "../tests/common/folder.rs"]
mod folder;

use std::process::Command;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, TimeZone, Utc};
use folder::FolderSource;
use trailwatch_integrity::{
    Compression, DigestInput, Layout, PreviousDigest, SigningKey, TraceFileBuilder, VerifyOptions,
    sign_digest, verify_with,
};

type Res<T> = Result<T, Box<dyn std::error::Error>>;

const TRACES_PER_FILE: usize = 20_000;
const POOL: usize = 60_000;

/// splitmix64: deterministic and dependency-free.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len() as u64) as usize]
    }
    fn hex(&mut self, len: usize) -> String {
        let mut s = format!("{:016x}{:016x}", self.next(), self.next());
        s.truncate(len);
        s
    }
}

/// One CTS-like trace (about 850 bytes), as the trace log stores it.
fn trace(rng: &mut Rng, time: i64) -> String {
    const USERS: &[&str] = &[
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
        "ops-bot",
        "ci-deployer",
        "svc_backup",
        "admin",
    ];
    const OPS: &[(&str, &str, &str, &str)] = &[
        ("ECS", "ecs", "createServer", "200"),
        ("ECS", "ecs", "deleteServer", "204"),
        ("VPC", "vpc", "createVpc", "200"),
        ("OBS", "bucket", "createBucket", "200"),
        ("IAM", "user", "login", "302"),
        ("IAM", "user", "logout", "302"),
        ("IAM", "credential", "createCredential", "201"),
        ("RDS", "instance", "modifyInstance", "202"),
        ("KMS", "key", "disableKey", "200"),
    ];
    let (svc, rtype, name, code) = OPS[rng.below(OPS.len() as u64) as usize];
    let user = rng.pick(USERS);
    let ip = format!(
        "{}.{}.{}.{}",
        rng.below(223) + 1,
        rng.below(256),
        rng.below(256),
        rng.below(254) + 1
    );
    let rating = if rng.below(100) < 90 {
        "normal"
    } else {
        "warning"
    };
    serde_json::json!({
        "trace_id": format!("{}-{}-1{}-{}-{}", rng.hex(8), rng.hex(4), rng.hex(3), rng.hex(4), rng.hex(12)),
        "code": code,
        "trace_name": name,
        "resource_type": rtype,
        "trace_rating": rating,
        "api_version": "3.0",
        "message": "",
        "source_ip": ip,
        "domain_id": "4f2a9c0e1b7d4e6a8c3b5d7f9e1a2c4b",
        "trace_type": "ApiCall",
        "service_type": svc,
        "event_type": "system",
        "project_id": "0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "request": format!("{{\"server\":{{\"name\":\"{rtype}-{:04}\",\"flavorRef\":\"s6.large.2\",\"imageRef\":\"{}\",\"availability_zone\":\"eu-de-01a\"}}}}", rng.below(9999), rng.hex(16)),
        "response": format!("{{\"job_id\":\"{}\"}}", rng.hex(24)),
        "resource_id": rng.hex(32),
        "tracker_name": "system",
        "time": time,
        "resource_name": format!("{rtype}-{:04}", rng.below(9999)),
        "user": {"name": user, "id": rng.hex(32), "type": "User", "domain": {"name": "acme", "id": "4f2a9c0e1b7d4e6a8c3b5d7f9e1a2c4b"}},
        "record_time": time + 400,
    })
    .to_string()
}

fn best(runs: &[Duration]) -> Duration {
    runs.iter().copied().min().unwrap_or_default()
}

fn mb_per_s(bytes: u64, d: Duration) -> f64 {
    bytes as f64 / 1e6 / d.as_secs_f64()
}

fn main() -> Res<()> {
    let args: Vec<String> = std::env::args().collect();
    let target_mb: u64 = args.get(1).map_or(Ok(512), |s| s.parse())?;
    let threads: usize = match args.get(2) {
        Some(s) => s.parse()?,
        None => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    let tmp;
    let root = match args.get(3) {
        Some(dir) => std::path::PathBuf::from(dir),
        None => {
            tmp = tempfile::tempdir()?;
            tmp.path().to_path_buf()
        }
    };
    let store = FolderSource::new(&root);
    let key = SigningKey::from_seed(&[0x42; 32]);
    let layout = Layout::new("eu-de", "system", "")?;
    let start = Utc
        .with_ymd_and_hms(2026, 3, 5, 0, 0, 0)
        .single()
        .ok_or("start time")?;

    let mut rng = Rng(20_241_123);
    let pool: Vec<String> = (0..POOL).map(|_| trace(&mut rng, 0)).collect();
    let pool_bytes: usize = pool.iter().map(String::len).sum();
    println!(
        "trace pool: {POOL} traces, {:.0} bytes each on average",
        pool_bytes as f64 / POOL as f64
    );

    // Build and write: one file per service per 5-minute cycle, a digest every hour.
    let services = ["ECS", "IAM", "OBS"];
    let mut written = 0u64;
    let mut traces_in = 0u64;
    let mut json_in = 0u64;
    let mut build_time = Duration::ZERO;
    let mut files = Vec::new();
    let mut open = Vec::new();
    let mut previous: Option<PreviousDigest> = None;
    let mut period_start = start;
    let mut cycle = 0i64;
    let mut next = 0usize;
    while written < target_mb * 1_000_000 {
        let at = start + TimeDelta::minutes(5 * cycle + 1);
        for service in services {
            let t0 = Instant::now();
            let mut b = TraceFileBuilder::new(Compression::Gzip);
            for i in 0..TRACES_PER_FILE {
                let json = &pool[next % POOL];
                next += 1;
                json_in += json.len() as u64;
                b.push_json(json, at.timestamp_millis() - i as i64)?;
            }
            let built = b.finish()?;
            build_time += t0.elapsed();
            traces_in += TRACES_PER_FILE as u64;
            let k = layout.trace_file_key(
                Some(service),
                at,
                rng.next().to_be_bytes(),
                Compression::Gzip,
            )?;
            store.put(&k, &built.bytes)?;
            written += built.bytes.len() as u64;
            open.push(built.entry("bench", &k));
            files.push(store.path(&k));
        }
        cycle += 1;
        if cycle % 12 == 0 {
            let end = start + TimeDelta::minutes(5 * cycle);
            let d = sign_digest(
                DigestInput {
                    layout: &layout,
                    project_id: "p",
                    bucket: "bench",
                    start: period_start,
                    end,
                    ending: false,
                    previous: previous.as_ref(),
                    files: std::mem::take(&mut open),
                },
                &key,
            )?;
            store.put(&d.key, &d.bytes)?;
            previous = Some(d.previous());
            period_start = end;
        }
    }
    let end = start + TimeDelta::minutes(5 * cycle) + TimeDelta::seconds(1);
    let d = sign_digest(
        DigestInput {
            layout: &layout,
            project_id: "p",
            bucket: "bench",
            start: period_start,
            end,
            ending: true,
            previous: previous.as_ref(),
            files: std::mem::take(&mut open),
        },
        &key,
    )?;
    store.put(&d.key, &d.bytes)?;
    println!(
        "archive build (one core, gzip -6 + SHA-256): {} files, {:.1} MB of JSON -> {:.1} MB gzip (ratio {:.1}), {:.0} traces/s, {:.0} MB/s of JSON",
        files.len(),
        json_in as f64 / 1e6,
        written as f64 / 1e6,
        json_in as f64 / written as f64,
        traces_in as f64 / build_time.as_secs_f64(),
        mb_per_s(json_in, build_time)
    );

    let sha256sum = |files: &[std::path::PathBuf]| -> Res<Duration> {
        let t0 = Instant::now();
        for chunk in files.chunks(1000) {
            let out = Command::new("sha256sum").args(chunk).output()?;
            if !out.status.success() {
                return Err(
                    format!("sha256sum failed: {}", String::from_utf8_lossy(&out.stderr)).into(),
                );
            }
        }
        Ok(t0.elapsed())
    };
    // Warm the page cache so every contender reads from memory.
    sha256sum(&files)?;

    let now = end + TimeDelta::minutes(1);
    let mut results = Vec::new();
    for t in [1, threads] {
        let mut opts = VerifyOptions::new(key.public_key(), now);
        opts.threads = t;
        let mut runs = Vec::new();
        for _ in 0..3 {
            let t0 = Instant::now();
            let report = verify_with(&store, &opts, &|_| {})?;
            runs.push(t0.elapsed());
            if !report.valid() || report.counts.bytes != written {
                return Err(format!(
                    "unexpected report: {:?} {:?}",
                    report.counts,
                    report.problems.first()
                )
                .into());
            }
        }
        results.push((t, best(&runs)));
    }
    let mut peer = Vec::new();
    for _ in 0..3 {
        peer.push(sha256sum(&files)?);
    }
    let peer = best(&peer);
    let peer_rate = mb_per_s(written, peer);
    println!(
        "sha256sum (coreutils, one process): {:.1} MB in {:.3} s = {:.0} MB/s",
        written as f64 / 1e6,
        peer.as_secs_f64(),
        peer_rate
    );
    for (t, d) in results {
        let rate = mb_per_s(written, d);
        println!(
            "verify, {t} thread(s): {:.1} MB in {:.3} s = {:.0} MB/s ({:.2}x sha256sum)",
            written as f64 / 1e6,
            d.as_secs_f64(),
            rate,
            rate / peer_rate
        );
    }
    Ok(())
}
