//! `trailwatch-bench all [--quick]`: the end-to-end table in one command.
//!
//! 1. trailwatch on embedded defaults with the tutorial's setup (`login_audit` builtin behind a
//!    CTS trigger, an SMN topic with a confirmed HTTP webhook and a confirmed email subscription
//!    over SMTP, a management tracker archiving to a bucket), driven with IAM login/logout traces
//!    of which exactly 10 % come from disallowed addresses, at 1,000/s, 10,000/s and as fast as
//!    acknowledged: throughput, ack → webhook and ack → mail latency, alarms expected vs
//!    received per channel, the server's CPU time and peak RSS per phase.
//! 2. `trailwatch verify` on the archive that run produced vs `sha256sum` over its trace files.
//! 3. The `login_audit` decision in-process vs the tutorial's Python handler as written and
//!    corrected (`peer_a.py ref|fixed`, the handler called per event) on the same traces.
//! 4. sshd `auth.log` parsing vs Debian's `fail2ban-regex` on the same file (`gen_authlog.py`).
//! 5. The durable ingest ceiling vs the minimal axum parse-only server (the `ingest` benchmark).
//!
//! Writes `bench/results/<date>-all.md` (`<date>-all-quick.md` with `--quick`) and appends the
//! JSON to `bench/results/<date>.json`. A peer whose tool is missing gets a "peer not installed"
//! row; the run goes on.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use serde_json::{Value, json};
use trailwatch_functions::builtins::login_audit::LoginAudit;
use trailwatch_functions::user_data::UserData;

use crate::e2e::{self, Phase, RigOptions, Workload};
use crate::{
    append_result, chrono_date, decision_rate, ensure_traces, load_average, peer_a, peers_dir,
    release_binary, root, rss_mib, work_dir,
};

struct Plan {
    /// gen_traces.py traces behind the workload and the in-process comparisons.
    traces: usize,
    rate_seconds: f64,
    max_seconds: f64,
    alarm_wait: Duration,
    decide_seconds: f64,
    ingest_duration: &'static str,
    authlog_lines: usize,
    runs: usize,
}

impl Plan {
    fn new(quick: bool) -> Plan {
        if quick {
            Plan {
                traces: 20_000,
                rate_seconds: 4.0,
                max_seconds: 4.0,
                alarm_wait: Duration::from_secs(20),
                decide_seconds: 0.5,
                ingest_duration: "3s",
                authlog_lines: 50_000,
                runs: 1,
            }
        } else {
            Plan {
                traces: 200_000,
                rate_seconds: 30.0,
                max_seconds: 20.0,
                alarm_wait: Duration::from_secs(180),
                decide_seconds: 2.0,
                ingest_duration: "15s",
                authlog_lines: 500_000,
                runs: 3,
            }
        }
    }
}

const NOT_INSTALLED: &str = "peer not installed";

pub(crate) async fn all(quick: bool) -> anyhow::Result<()> {
    let plan = Plan::new(quick);
    let started = Instant::now();
    let load_at_start = load_average();
    let traces_path = ensure_traces(plan.traces)?;
    let allowlist_path = work_dir()?.join("allowlist.txt");
    let ip_list = std::fs::read_to_string(&allowlist_path)?
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(",");
    let raw_lines: Vec<String> =
        std::io::BufRead::lines(std::io::BufReader::new(std::fs::File::open(&traces_path)?))
            .collect::<Result<_, _>>()?;
    let user_data = UserData::parse(
        &json!({"SMN_Topic": "bench_alarms", "RegionName": "local", "IP": ip_list}).to_string(),
    )?;
    let audit = LoginAudit::from_config(&user_data).map_err(|e| anyhow::anyhow!("{e}"))?;

    // 1. End to end.
    eprintln!("[all] end to end: starting trailwatch with the tutorial's setup …");
    let mut rig = e2e::tutorial_rig(
        &work_dir()?.join("tw-all"),
        &RigOptions {
            email: true,
            archive_cycle_seconds: Some(5),
        },
        &ip_list,
    )
    .await?;
    let idle_rss = rss_mib(rig.server_pid());
    let workload = Arc::new(Workload::ten_percent(&raw_lines, &audit)?);
    let mut phases = Vec::new();
    for (label, rate, seconds) in [
        ("1k", Some(1000), plan.rate_seconds),
        ("10k", Some(10_000), plan.rate_seconds),
        ("max", None, plan.max_seconds),
    ] {
        eprintln!("[all] end to end at {label} traces/s for {seconds} s …");
        let phase = Phase {
            label,
            rate,
            seconds,
            alarm_wait: plan.alarm_wait,
        };
        let r = e2e::drive(&rig, &workload, &phase).await?;
        eprintln!("{r}");
        phases.push(r);
    }
    let db_mib = std::fs::metadata(rig.data.join("trailwatch.db"))
        .map(|m| m.len() as f64 / f64::from(1 << 20))
        .unwrap_or(f64::NAN);
    let exited_cleanly = rig.stop();

    // 2. Verify the archive of that run vs sha256sum.
    eprintln!("[all] trailwatch verify vs sha256sum …");
    let verify = verify_vs_sha256sum(&rig.data, plan.runs)
        .unwrap_or_else(|e| json!({"error": format!("{e:#}")}));
    // The run's database and archive (up to a few GB in a full run) are not kept.
    let _ = std::fs::remove_dir_all(&rig.data);

    // 3. The decision in-process vs the tutorial's handler in Python.
    eprintln!("[all] login_audit decision vs peer_a.py ref|fixed …");
    let decision = decision_rate(&raw_lines, &audit, plan.decide_seconds);
    let peer = |variant: &str| match peer_a(variant, &traces_path, &allowlist_path) {
        Ok((l, t, a)) if l.is_finite() => {
            json!({"loop_events_per_s": l, "total_events_per_s": t, "alarms": a})
        }
        Ok(_) => json!({"error": "peer_a.py printed no figures"}),
        Err(e) => json!({"error": format!("{NOT_INSTALLED}: {e:#}")}),
    };
    let peer_ref = peer("ref");
    let peer_fixed = peer("fixed");

    // 4. sshd auth.log vs fail2ban-regex.
    eprintln!("[all] sshd parse vs fail2ban-regex …");
    let sshd = sshd_vs_fail2ban(plan.authlog_lines, plan.runs)
        .unwrap_or_else(|e| json!({"error": format!("{e:#}")}));

    // 5. The ingest ceiling vs the axum parse-only server.
    eprintln!("[all] ingest ceiling (wrk) vs axum parse-only …");
    let ingest = match Command::new("wrk").arg("--version").output() {
        Err(_) => json!({"error": format!("{NOT_INSTALLED}: wrk (apt-get install wrk)")}),
        Ok(_) => crate::ingest(plan.ingest_duration, 16)
            .await
            .unwrap_or_else(|e| json!({"error": format!("{e:#}")})),
    };

    let date = chrono_date();
    let result = json!({
        "quick": quick,
        "command": if quick { "target/release/trailwatch-bench all --quick" } else { "target/release/trailwatch-bench all" },
        "commit": git_head(),
        "load_average_at_start": load_at_start,
        "load_average_at_end": load_average(),
        "seconds_total": started.elapsed().as_secs(),
        "end_to_end": {
            "setup": "embedded defaults (SQLite, durability full); topic bench_alarms with a confirmed HTTP webhook (axum, this process) and a confirmed email subscription (SMTP to a receiver in this process); agency with SMN Administrator; builtin login_audit with the 50-entry allowlist, CTS trigger IAM:user:login;logout; management tracker archiving to a local bucket every 5 s",
            "workload": workload.describe(),
            "idle_rss_mib": idle_rss.0,
            "phases": phases,
            "database_mib_at_end": db_mib,
            "exited_cleanly_on_sigterm": exited_cleanly,
        },
        "verify": verify,
        "decision": {
            "traces": decision.0, "parse_traces_per_s": decision.1.round(),
            "decisions_per_s_one_core": decision.2.round(), "alarms_per_pass": decision.3,
            "peer_a_ref": peer_ref, "peer_a_fixed": peer_fixed,
        },
        "sshd": sshd,
        "ingest": ingest,
    });
    let table = table(&result, &plan);
    let md_path = root().join("bench/results").join(if quick {
        format!("{date}-all-quick.md")
    } else {
        format!("{date}-all.md")
    });
    std::fs::create_dir_all(md_path.parent().context("no results dir")?)?;
    std::fs::write(&md_path, &table)?;
    println!("{table}");
    eprintln!("wrote {}", md_path.display());
    append_result(if quick { "all-quick" } else { "all" }, &result)
}

fn git_head() -> String {
    Command::new("git")
        .args(["rev-parse", "--short", "HEAD"])
        .current_dir(root())
        .output()
        .ok()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_owned())
        .unwrap_or_default()
}

/// Every file under `dir`, recursively.
fn files_under(dir: &Path, out: &mut Vec<PathBuf>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for e in entries.flatten() {
        let p = e.path();
        if p.is_dir() {
            files_under(&p, out);
        } else {
            out.push(p);
        }
    }
}

/// Best wall time of `runs` runs of `command()`; fails if a run cannot start.
fn best_of(runs: usize, mut command: impl FnMut() -> Command) -> anyhow::Result<(f64, bool)> {
    let mut best = f64::INFINITY;
    let mut ok = true;
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let status = command()
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()?;
        best = best.min(t.elapsed().as_secs_f64());
        ok &= status.success();
    }
    Ok((best, ok))
}

/// `trailwatch verify` (process start included, all cores) over the archive the end-to-end run
/// wrote, vs `sha256sum` over the same trace files; best of `runs` each, page cache warm.
fn verify_vs_sha256sum(data: &Path, runs: usize) -> anyhow::Result<Value> {
    let store = data.join("objects").join(e2e::ARCHIVE_BUCKET);
    let mut files = Vec::new();
    files_under(&store, &mut files);
    files.sort();
    let (digests, traces): (Vec<PathBuf>, Vec<PathBuf>) = files
        .into_iter()
        .filter(|p| p.to_string_lossy().contains("CloudTraces"))
        .partition(|p| p.components().any(|c| c.as_os_str() == "Digest"));
    if traces.is_empty() {
        anyhow::bail!("the run archived no trace files under {}", store.display());
    }
    let bytes: u64 = traces
        .iter()
        .filter_map(|p| std::fs::metadata(p).ok())
        .map(|m| m.len())
        .sum();
    let mb = bytes as f64 / 1e6;
    let tw = release_binary("trailwatch")?;
    let out = Command::new(&tw)
        .args(["keys", "export", "--data-dir"])
        .arg(data)
        .output()?;
    if !out.status.success() {
        anyhow::bail!(
            "trailwatch keys export failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let pem = data.join("archive-public.pem");
    std::fs::write(&pem, &out.stdout)?;
    // Once for the report (and to warm the page cache), then timed.
    let report = Command::new(&tw)
        .args(["verify", "--output", "json", "--store"])
        .arg(&store)
        .arg("--public-key")
        .arg(&pem)
        .output()?;
    let report_json: Value = serde_json::from_slice(&report.stdout).unwrap_or(Value::Null);
    let (verify_s, verify_ok) = best_of(runs.max(3), || {
        let mut c = Command::new(&tw);
        c.args(["verify", "--output", "json", "--store"])
            .arg(&store)
            .arg("--public-key")
            .arg(&pem);
        c
    })?;
    let sha = best_of(runs.max(3), || {
        let mut c = Command::new("sha256sum");
        c.args(&traces);
        c
    });
    let peer = match sha {
        Ok((s, _)) => json!({"seconds": s, "mb_per_s": (mb / s * 10.0).round() / 10.0}),
        Err(e) => json!({"error": format!("{NOT_INSTALLED}: sha256sum: {e}")}),
    };
    let tw_rate = mb / verify_s;
    Ok(json!({
        "archive": {"trace_files": traces.len(), "digests": digests.len(), "mb": (mb * 100.0).round() / 100.0},
        "trailwatch_verify": {"seconds": verify_s, "mb_per_s": (tw_rate * 10.0).round() / 10.0,
                              "valid": verify_ok && report.status.success(), "exit": report.status.code(),
                              "report": report_json},
        "sha256sum": peer,
        "note": "wall time of the whole command (process start included), best of 3, page cache warm; small archives make the start-up dominate",
    }))
}

/// sshd `auth.log` (gen_authlog.py, seeded) parsed by trailwatch-sources in-process on one core
/// (best of `runs`), vs `fail2ban-regex FILE /etc/fail2ban/filter.d/sshd.conf` once.
fn sshd_vs_fail2ban(lines: usize, runs: usize) -> anyhow::Result<Value> {
    use chrono::TimeZone;
    let path = work_dir()?.join(format!("authlog-{lines}.log"));
    if !path.exists() {
        let tmp = path.with_extension("tmp");
        let status = Command::new("python3")
            .arg(peers_dir().join("gen_authlog.py"))
            .arg(lines.to_string())
            .arg(&tmp)
            .status()
            .context("running gen_authlog.py")?;
        if !status.success() {
            anyhow::bail!("gen_authlog.py failed");
        }
        std::fs::rename(&tmp, &path)?;
    }
    let text = String::from_utf8_lossy(&std::fs::read(&path)?).into_owned();
    let n = text.lines().count();
    let reference = chrono::Utc
        .with_ymd_and_hms(2026, 11, 25, 0, 0, 0)
        .single()
        .context("reference date")?;
    let mut best = f64::INFINITY;
    let mut summary = json!({});
    for _ in 0..runs.max(1) {
        let t = Instant::now();
        let p = trailwatch_sources::sshd::parse_syslog(&text, Some("localhost"), reference);
        let s = t.elapsed().as_secs_f64();
        if s < best {
            best = s;
            summary = json!({"traces": p.traces.len(), "skipped": p.skipped, "problems": p.problems.len()});
        }
    }
    let ours = n as f64 / best;
    let filter = "/etc/fail2ban/filter.d/sshd.conf";
    let peer = if Command::new("fail2ban-regex")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_err()
        || !Path::new(filter).exists()
    {
        json!({"error": format!("{NOT_INSTALLED}: fail2ban-regex (apt-get install fail2ban)")})
    } else {
        let t = Instant::now();
        let out = Command::new("fail2ban-regex")
            .arg(&path)
            .arg(filter)
            .output()?;
        let s = t.elapsed().as_secs_f64();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let lines_line = stdout
            .lines()
            .find(|l| l.starts_with("Lines:"))
            .unwrap_or("")
            .to_owned();
        json!({"seconds": s, "lines_per_s": (n as f64 / s).round(), "exit": out.status.code(),
               "summary": lines_line})
    };
    Ok(json!({
        "file": format!("gen_authlog.py {lines}"), "lines": n, "mb": text.len() as f64 / 1e6,
        "trailwatch_lines_per_s": ours.round(), "trailwatch_parse": summary,
        "fail2ban_regex": peer,
    }))
}

// ---- the table ----------------------------------------------------------------------------

fn thousands(x: f64) -> String {
    if !x.is_finite() {
        return "—".into();
    }
    let n = x.round() as i64;
    let digits = n.abs().to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    if n < 0 { format!("-{out}") } else { out }
}

fn num(v: &Value) -> f64 {
    v.as_f64().unwrap_or(f64::NAN)
}

fn ratio(a: f64, b: f64) -> String {
    if a.is_finite() && b.is_finite() && b > 0.0 {
        let r = a / b;
        if r >= 10.0 {
            format!("{r:.0}×")
        } else {
            format!("{r:.2}×")
        }
    } else {
        "—".into()
    }
}

/// The peer's cell when it has an error (not installed, or failed).
fn peer_error(v: &Value) -> Option<String> {
    v["error"].as_str().map(|e| {
        if e.starts_with(NOT_INSTALLED) {
            e.split(':').take(2).collect::<Vec<_>>().join(":")
        } else {
            format!("failed: {}", e.lines().next().unwrap_or(e))
        }
    })
}

fn table(r: &Value, plan: &Plan) -> String {
    let mut rows: Vec<[String; 5]> = Vec::new();
    let mut row = |a: String, b: String, c: String, d: String, e: &str| {
        rows.push([a, b, c, d, e.to_owned()]);
    };
    let e2e = &r["end_to_end"];
    row(
        "RSS after setup, idle".into(),
        format!("{:.0} MiB", num(&e2e["idle_rss_mib"])),
        String::new(),
        String::new(),
        "< 50 MB",
    );
    for p in e2e["phases"].as_array().into_iter().flatten() {
        let label = p["label"].as_str().unwrap_or("?");
        let what = match p["rate"].as_u64() {
            Some(rate) => format!(
                "{} traces/s offered for {} s",
                thousands(rate as f64),
                p["seconds"]
            ),
            None => format!("max (16 clients × batches of 100) for {} s", p["seconds"]),
        };
        row(
            format!("**{label}**: ingest with the tutorial's setup, {what}"),
            format!(
                "{} traces/s acknowledged ({} of {}; {} failed requests)",
                thousands(num(&p["acknowledged_traces_per_s"])),
                thousands(num(&p["acknowledged"])),
                thousands(num(&p["sent"])),
                p["failed_requests"]
            ),
            String::new(),
            String::new(),
            if p["rate"].is_u64() {
                "= offered"
            } else {
                "≥ 100,000 traces/s"
            },
        );
        for (channel, name) in [("webhook", "HTTP webhook"), ("email", "email (SMTP)")] {
            let c = &p["alarms"][channel];
            if c.is_null() {
                continue;
            }
            row(
                format!("{label}: ack → {name} p50 / p99 / p99.9"),
                format!(
                    "{:.1} / {:.1} / {:.1} ms (max {:.1})",
                    num(&c["ack_to_arrival_p50_ms"]),
                    num(&c["p99_ms"]),
                    num(&c["p999_ms"]),
                    num(&c["max_ms"])
                ),
                String::new(),
                String::new(),
                if channel == "webhook" {
                    "p50 < 10 ms, p99 < 50 ms"
                } else {
                    ""
                },
            );
            row(
                format!(
                    "{label}: alarms at the {name}: received / expected (missing, unexpected, duplicates)"
                ),
                format!(
                    "{} / {} ({}, {}, {})",
                    c["received"],
                    c["expected"],
                    c["missing"],
                    c["unexpected"],
                    c["duplicate_deliveries"]
                ),
                String::new(),
                String::new(),
                "exactly one per disallowed login/logout",
            );
        }
        row(
            format!("{label}: trailwatch CPU time (utime+stime) over the phase; peak RSS"),
            format!(
                "{:.2} s = {:.1} µs/trace ({:.2} cores busy); {:.0} MiB",
                num(&p["server_cpu_seconds"]),
                num(&p["server_cpu_us_per_trace"]),
                num(&p["server_cpu_cores_busy"]),
                num(&p["server_rss_peak_mib"])
            ),
            String::new(),
            String::new(),
            "RSS < 200 MB",
        );
    }

    let ing = &r["ingest"];
    let ing_peer = num(&ing["peer_axum_parse_only_traces_per_s"]);
    let ing_tw = num(&ing["trailwatch_traces_per_s"]);
    row(
        format!(
            "durable ingest ceiling, no functions: batches of 100 IAM traces, `wrk -t2 -c16 -d{}`",
            plan.ingest_duration
        ),
        peer_error(ing).map_or_else(
            || format!("{} traces/s", thousands(ing_tw)),
            |_| "not measured".into(),
        ),
        peer_error(ing)
            .unwrap_or_else(|| format!("axum parse-only: {} traces/s", thousands(ing_peer))),
        ratio(ing_tw, ing_peer),
        "≥ 100,000 traces/s, ratio ≥ 0.5",
    );

    let d = &r["decision"];
    let decide = num(&d["decisions_per_s_one_core"]);
    for (key, what) in [
        ("peer_a_ref", "as written (`peer_a.py ref`)"),
        ("peer_a_fixed", "corrected (`peer_a.py fixed`)"),
    ] {
        let p = &d[key];
        let peer_rate = num(&p["loop_events_per_s"]);
        row(
            format!(
                "`login_audit` decision in-process, one core ({} traces) vs the tutorial's handler {what}, called per event",
                thousands(num(&d["traces"]))
            ),
            format!(
                "{} decisions/s ({} alarms)",
                thousands(decide),
                d["alarms_per_pass"]
            ),
            peer_error(p).unwrap_or_else(|| {
                format!(
                    "{} events/s in its loop, {} incl. JSON parse ({} alarms)",
                    thousands(peer_rate),
                    thousands(num(&p["total_events_per_s"])),
                    p["alarms"]
                )
            }),
            ratio(decide, peer_rate),
            "≥ 1,000,000/s",
        );
    }

    let s = &r["sshd"];
    let f2b = &s["fail2ban_regex"];
    row(
        format!(
            "sshd auth.log parse, one core (`gen_authlog.py {}`)",
            thousands(num(&s["lines"]))
        ),
        peer_error(s)
            .unwrap_or_else(|| format!("{} lines/s", thousands(num(&s["trailwatch_lines_per_s"])))),
        peer_error(f2b).unwrap_or_else(|| {
            format!(
                "`fail2ban-regex` (sshd filter): {} lines/s",
                thousands(num(&f2b["lines_per_s"]))
            )
        }),
        ratio(num(&s["trailwatch_lines_per_s"]), num(&f2b["lines_per_s"])),
        "≥ 500,000 lines/s",
    );

    let v = &r["verify"];
    row(
        format!(
            "`trailwatch verify` of this run's archive ({} MB in {} trace files, {} digests; whole command, start-up included)",
            v["archive"]["mb"], v["archive"]["trace_files"], v["archive"]["digests"]
        ),
        peer_error(v).unwrap_or_else(|| {
            format!(
                "{} MB/s ({})",
                thousands(num(&v["trailwatch_verify"]["mb_per_s"])),
                if v["trailwatch_verify"]["valid"] == true {
                    "valid"
                } else {
                    "NOT VALID"
                }
            )
        }),
        peer_error(&v["sha256sum"]).unwrap_or_else(|| {
            format!(
                "`sha256sum`: {} MB/s",
                thousands(num(&v["sha256sum"]["mb_per_s"]))
            )
        }),
        ratio(
            num(&v["trailwatch_verify"]["mb_per_s"]),
            num(&v["sha256sum"]["mb_per_s"]),
        ),
        "≥ 800 MB/s",
    );

    let mut out = String::new();
    let _ = writeln!(
        out,
        "# trailwatch-bench all{} — {}\n",
        if r["quick"] == true { " --quick" } else { "" },
        chrono_date()
    );
    let _ = writeln!(
        out,
        "`{}` at commit {}; {} s in all; load average {} at start, {} at end.{}\n",
        r["command"].as_str().unwrap_or(""),
        r["commit"].as_str().unwrap_or("?"),
        r["seconds_total"],
        r["load_average_at_start"].as_str().unwrap_or(""),
        r["load_average_at_end"].as_str().unwrap_or(""),
        if r["quick"] == true {
            " **Quick run: short phases, noisy figures — for checking that it works, not for quoting.**"
        } else {
            ""
        }
    );
    let _ = writeln!(
        out,
        "Setup: {}. Workload: {}. Latency is from the ingest request's answer (the trace is durable) to the alarm's arrival at the receiver, matched by trace id.\n",
        e2e["setup"].as_str().unwrap_or(""),
        e2e["workload"].as_str().unwrap_or("")
    );
    out.push_str("| measure | trailwatch | peer | ratio | target |\n|---|---|---|---|---|\n");
    for r in rows {
        let _ = writeln!(out, "| {} |", r.map(|c| c.replace('|', "\\|")).join(" | "));
    }
    out
}
