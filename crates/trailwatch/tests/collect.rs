//! `trailwatch collect` and `[[source]]`: files followed live across appends, partial lines,
//! rotation and truncation; `kill -9` of the collector mid-file; the server down while
//! collecting; an sshd login appended live raising the `login_audit` alarm at a real HTTP
//! receiver. Real binary, real files, loopback only; every wait is bounded.
#![allow(clippy::unwrap_used)]

mod common;

use std::collections::BTreeSet;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::receiver::Receiver;
use common::smn::{create_topic, subscribe_confirmed};
use common::{ADMIN_AK, ADMIN_SK, Server, bin, list_all};
use reqwest::Method;
use serde_json::{Value, json};

/// A running `trailwatch collect`; SIGKILLed on drop.
struct Collector {
    child: Child,
    log: PathBuf,
}

impl Collector {
    fn start(server_url: &str, state_dir: &Path, log: &Path, args: &[&str]) -> Collector {
        let child = Command::new(bin())
            .arg("collect")
            .arg("--state-dir")
            .arg(state_dir)
            .args(args)
            .env("TRAILWATCH_ENDPOINT", server_url)
            .env("TRAILWATCH_AK", ADMIN_AK)
            .env("TRAILWATCH_SK", ADMIN_SK)
            .env("TRAILWATCH_LOG", "info,trailwatch_collect=debug")
            .env_remove("TRAILWATCH_USER")
            .env_remove("TRAILWATCH_PASSWORD")
            .env_remove("TRAILWATCH_PROFILE")
            .env("HOME", "/nonexistent-home")
            .stdout(Stdio::null())
            .stderr(std::fs::File::create(log).unwrap())
            .spawn()
            .unwrap();
        Collector {
            child,
            log: log.to_owned(),
        }
    }

    fn stderr(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Collector {
    fn drop(&mut self) {
        self.kill9();
        if std::thread::panicking() {
            eprintln!("---- collector stderr ----\n{}", self.stderr());
        }
    }
}

/// A distinct failed-login sshd line (ISO timestamp: no year inference).
fn failed_line(i: u64) -> String {
    format!(
        "2026-11-25T{:02}:{:02}:{:02}.{:06}Z web-01 sshd[{}]: Failed password for invalid user u{i} from 198.51.100.{} port {} ssh2\n",
        (i / 3600) % 24,
        (i / 60) % 60,
        i % 60,
        i % 1_000_000,
        1000 + i % 30_000,
        i % 250,
        1024 + i % 60_000
    )
}

fn append(path: &Path, text: &str) {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .unwrap();
    f.write_all(text.as_bytes()).unwrap();
}

/// The trace ids the parser gives `text` (what the server must end up holding).
fn expected_ids(text: &str) -> BTreeSet<String> {
    let parsed = trailwatch_sources::sshd::parse_syslog(text, None, chrono::Utc::now());
    assert!(parsed.problems.is_empty(), "{:?}", parsed.problems);
    parsed
        .traces
        .iter()
        .map(|t| t["trace_id"].as_str().unwrap().to_owned())
        .collect()
}

async fn stored_ids(server: &Server) -> Vec<String> {
    let c = server.admin().await;
    let traces = list_all(&c, &[("service_type", "SSH".to_string())]).await;
    common::ids(&traces)
}

/// Waits until the server holds `n` SSH traces (bounded).
async fn wait_count(server: &Server, n: usize, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let got = stored_ids(server).await.len();
        if got == n {
            return;
        }
        assert!(
            got < n,
            "{what}: {got} traces stored, more than the {n} expected"
        );
        assert!(
            Instant::now() < deadline,
            "{what}: {got} of {n} traces after 30 s"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn checkpoint(state_dir: &Path, source: &str) -> Option<Value> {
    let bytes = std::fs::read(state_dir.join(format!("{source}.checkpoint.json"))).ok()?;
    Some(serde_json::from_slice(&bytes).unwrap())
}

fn checkpoint_offset(state_dir: &Path, source: &str) -> Option<u64> {
    checkpoint(state_dir, source)?["position"]["file"]["offset"].as_u64()
}

/// Waits until the checkpoint of `source` is at `offset` (everything before it acknowledged).
async fn wait_checkpoint(state_dir: &Path, source: &str, offset: u64, limit: Duration) {
    let deadline = Instant::now() + limit;
    while checkpoint_offset(state_dir, source) != Some(offset) {
        assert!(
            Instant::now() < deadline,
            "checkpoint of {source} is at {:?}, not {offset}",
            checkpoint_offset(state_dir, source)
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn spooled(state_dir: &Path, source: &str) -> usize {
    std::fs::read_dir(state_dir.join(format!("{source}.spool")))
        .map(|d| {
            d.filter(|e| {
                e.as_ref()
                    .is_ok_and(|e| e.file_name().to_string_lossy().ends_with(".json"))
            })
            .count()
        })
        .unwrap_or(0)
}

#[tokio::test]
async fn appends_partial_lines_rotation_and_truncation_end_with_exactly_the_expected_traces() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let state = dir.path().join("state");
    let mut all = String::new();
    for i in 1..=3 {
        all.push_str(&failed_line(i));
    }
    std::fs::write(&log, &all).unwrap();
    // A config file with the sshd file and a journald source whose journalctl does not exist:
    // that source fails alone, with an error naming the program.
    let config = dir.path().join("collect.toml");
    std::fs::write(
        &config,
        format!(
            "version = 1\n\n[[source]]\nname = \"auth\"\nkind = \"sshd\"\npath = \"{}\"\npoll_interval_ms = 50\n\n\
             [[source]]\nname = \"journal\"\nkind = \"journald\"\njournalctl = \"/nonexistent/journalctl\"\n",
            log.display()
        ),
    )
    .unwrap();
    let collector = Collector::start(
        &server.url,
        &state,
        &dir.path().join("collect.log"),
        &["--config", config.to_str().unwrap()],
    );
    wait_count(&server, 3, "initial lines").await;

    // An append with a partial last line: only the complete line is sent until the rest comes.
    let (l4, l5) = (failed_line(4), failed_line(5));
    append(&log, &format!("{l4}{}", &l5[..40]));
    wait_count(&server, 4, "append with a partial line").await;
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        stored_ids(&server).await.len(),
        4,
        "a partial line was sent"
    );
    append(&log, &l5[40..]);
    wait_count(&server, 5, "completed line").await;
    all.push_str(&l4);
    all.push_str(&l5);

    // Rotation: rename, the writer's last lines still go to the old file, then a new file.
    let rotated = dir.path().join("auth.log.1");
    std::fs::rename(&log, &rotated).unwrap();
    let l6 = failed_line(6);
    append(&rotated, &l6);
    let (l7, l8) = (failed_line(7), failed_line(8));
    append(&log, &format!("{l7}{l8}"));
    wait_count(&server, 8, "rotation").await;
    all.push_str(&l6);
    all.push_str(&l7);
    all.push_str(&l8);

    // Truncation: the file is emptied and one (shorter) line written.
    let l9 = failed_line(9);
    std::fs::write(&log, &l9).unwrap();
    wait_count(&server, 9, "truncation").await;
    all.push_str(&l9);

    let mut got = stored_ids(&server).await;
    got.sort();
    let want: Vec<String> = expected_ids(&all).into_iter().collect();
    assert_eq!(got, want);
    // The checkpoint ends at the new file's end; the journald source failed on its own.
    wait_checkpoint(&state, "auth", l9.len() as u64, Duration::from_secs(10)).await;
    let err = collector.stderr();
    assert!(
        err.contains("source journal: cannot run /nonexistent/journalctl"),
        "{err}"
    );
    assert!(err.contains("was rotated"), "{err}");
    assert!(err.contains("was truncated"), "{err}");
}

#[tokio::test]
async fn kill9_of_the_collector_mid_file_then_restart_leaves_no_gap_and_no_duplicate() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("big.log");
    let state = dir.path().join("state");
    let n = 40_000u64;
    let mut text = String::new();
    for i in 1..=n {
        text.push_str(&failed_line(i));
    }
    std::fs::write(&log, &text).unwrap();
    let size = text.len() as u64;
    let args = [
        "--kind",
        "sshd",
        "--path",
        log.to_str().unwrap(),
        "--name",
        "big",
    ];
    let mut first = Collector::start(&server.url, &state, &dir.path().join("c1.log"), &args);
    // Killed a little after the first batch (of about 8,700 traces, sent as 1,000-trace
    // requests) was acknowledged: the next batch is being sent, partly stored.
    let deadline = Instant::now() + Duration::from_secs(60);
    while !first.stderr().contains("delivered") {
        assert!(Instant::now() < deadline, "nothing delivered in 60 s");
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    tokio::time::sleep(Duration::from_millis(300)).await;
    first.kill9();
    let at_kill = checkpoint_offset(&state, "big").unwrap_or(0);
    assert!(
        at_kill < size,
        "the collector finished before it was killed"
    );

    let second = Collector::start(&server.url, &state, &dir.path().join("c2.log"), &args);
    wait_checkpoint(&state, "big", size, Duration::from_secs(120)).await;
    let got = stored_ids(&server).await;
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len() as u64, n, "stored count");
    assert_eq!(unique.len() as u64, n, "a trace was stored twice");
    assert_eq!(unique, expected_ids(&text));
    // The restart resumed at the checkpoint, not at the beginning.
    let err = second.stderr();
    assert!(
        err.contains(&format!("from byte {at_kill}")),
        "resumed elsewhere than {at_kill}: {err}"
    );
}

#[tokio::test]
async fn the_server_down_while_collecting_spools_and_everything_arrives_exactly_once() {
    let mut server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("auth.log");
    let state = dir.path().join("state");
    let mut all = String::new();
    for i in 1..=2 {
        all.push_str(&failed_line(i));
    }
    std::fs::write(&log, &all).unwrap();
    let args = [
        "--kind",
        "sshd",
        "--path",
        log.to_str().unwrap(),
        "--name",
        "auth",
    ];
    let collector = Collector::start(&server.url, &state, &dir.path().join("c.log"), &args);
    wait_count(&server, 2, "before the outage").await;

    server.kill9();
    // Three appends while the server is down: each becomes a spooled batch.
    for i in 3..=5 {
        let l = failed_line(i);
        append(&log, &l);
        all.push_str(&l);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    while spooled(&state, "auth") == 0 {
        assert!(Instant::now() < deadline, "nothing was spooled");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(checkpoint_offset(&state, "auth").unwrap() < all.len() as u64);

    let server = server.restart_on_same_port();
    wait_checkpoint(&state, "auth", all.len() as u64, Duration::from_secs(60)).await;
    assert_eq!(spooled(&state, "auth"), 0, "the spool did not drain");
    let got = stored_ids(&server).await;
    let unique: BTreeSet<String> = got.iter().cloned().collect();
    assert_eq!(got.len(), 5, "stored count");
    assert_eq!(unique, expected_ids(&all));
    let err = collector.stderr();
    assert!(err.contains("delivery failed"), "{err}");
}

/// The login_audit function with a CTS trigger on SSH logins, publishing to a topic that a
/// real HTTP receiver is subscribed to (as in tests/sources.rs).
async fn login_audit_to(server: &Server, receiver: &Receiver) {
    let c = server.admin().await;
    let pid = c.project_id().to_owned();
    let topic = create_topic(&c, "ssh_alarms", "").await;
    subscribe_confirmed(&c, &topic, receiver, json!({})).await;
    let domain = c
        .send(Method::GET, "/v3/auth/projects", "", None)
        .await
        .unwrap()
        .body["projects"][0]["domain_id"]
        .as_str()
        .unwrap()
        .to_owned();
    let agency = c
        .send(
            Method::POST,
            "/v3.0/OS-AGENCY/agencies",
            "",
            Some(json!({"agency": {"name": "ssh_trust", "domain_id": domain, "trust_domain_name": "op_svc_cff"}})),
        )
        .await
        .unwrap()
        .body["agency"]["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let smn_admin = trailwatch_iam::roles::by_display_name("SMN Administrator")
        .unwrap()
        .id;
    c.send(
        Method::PUT,
        &format!("/v3.0/OS-AGENCY/projects/{pid}/agencies/{agency}/roles/{smn_admin}"),
        "",
        None,
    )
    .await
    .unwrap();
    let user_data = json!({"SMN_Topic": "ssh_alarms", "RegionName": "local", "IP": "10.0.0.0/8"});
    c.send(
        Method::POST,
        &format!("/v2/{pid}/fgs/functions"),
        "",
        Some(
            json!({"func_name": "ssh_audit", "runtime": "builtin", "handler": "login_audit",
                    "memory_size": 128, "timeout": 10, "user_data": user_data.to_string(),
                    "xrole": "ssh_trust"}),
        ),
    )
    .await
    .unwrap();
    c.send(
        Method::POST,
        &format!("/v2/{pid}/fgs/triggers/ssh_audit"),
        "",
        Some(json!({"trigger_type_code": "CTS",
                    "event_data": {"name": "ssh", "operations": ["SSH:host:login;logout"]}})),
    )
    .await
    .unwrap();
}

#[tokio::test]
async fn an_sshd_login_appended_live_to_a_served_source_raises_the_login_audit_alarm() {
    let server = Server::start();
    let receiver = Receiver::start().await;
    login_audit_to(&server, &receiver).await;
    let log = server.data_dir.with_extension("auth.log");
    // Something already there (an allowed login) and the server restarted with the source.
    append(
        &log,
        "Nov 25 10:00:01 web-01 sshd[100]: Accepted password for bob from 10.0.0.5 port 50000 ssh2\n",
    );
    let server = server.restart_with_config(&format!(
        "version = 1\n\n[[source]]\nname = \"auth\"\nkind = \"sshd\"\npath = \"{}\"\npoll_interval_ms = 50\n",
        log.display()
    ));
    wait_count(&server, 1, "the allowed login").await;
    // Appended live: a login from outside the allowlist, then its logout (same pid).
    append(
        &log,
        "Nov 25 10:05:00 web-01 sshd[200]: Accepted password for alice from 203.0.113.7 port 50001 ssh2\n\
         Nov 25 10:06:00 web-01 sshd[200]: pam_unix(sshd:session): session closed for user alice\n",
    );
    let alarms = receiver
        .wait_for("Notification", 2, Duration::from_secs(30))
        .await;
    let mut messages: Vec<String> = alarms
        .iter()
        .map(|m| m.body["message"].as_str().unwrap().to_owned())
        .collect();
    messages.sort();
    assert_eq!(
        messages,
        vec![
            "Illegal operation[  IP:203.0.113.7,  Action:login]",
            "Illegal operation[  IP:203.0.113.7,  Action:logout]",
        ]
    );
    wait_count(&server, 3, "all three traces").await;
    // The collector's state lives under the data directory.
    assert!(
        server
            .data_dir
            .join("collect/auth.checkpoint.json")
            .exists()
    );
    // bob (10.0.0.5) is allowed: no third alarm.
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert_eq!(receiver.of_type("Notification").len(), 2);
}

/// A journald record as `journalctl -o json` prints it.
fn journal_record(cursor: &str, pid: u32, ident: &str, message: &str, second: u64) -> String {
    json!({
        "__CURSOR": cursor,
        "__REALTIME_TIMESTAMP": format!("{}", (1_764_064_800 + second) * 1_000_000),
        "_HOSTNAME": "web-02",
        "SYSLOG_IDENTIFIER": ident,
        "_PID": pid.to_string(),
        "MESSAGE": message,
    })
    .to_string()
        + "\n"
}

#[tokio::test]
async fn journald_resumes_after_its_cursor_and_a_logout_finds_its_login_across_a_kill9() {
    let server = Server::start();
    let dir = tempfile::tempdir().unwrap();
    let journal = dir.path().join("journal.jsonl");
    let args_log = dir.path().join("args.log");
    // A stand-in for journalctl: prints the records after --after-cursor (all without it),
    // then "follows" (sleeps), and records its arguments.
    let fake = dir.path().join("journalctl");
    std::fs::write(
        &fake,
        format!(
            "#!/bin/sh\necho \"$*\" >> '{args}'\nafter=''\nfor a in \"$@\"; do case \"$a\" in --after-cursor=*) after=\"${{a#--after-cursor=}}\";; esac; done\n\
             if [ -z \"$after\" ]; then cat '{j}'; else sed -n \"/\\\"__CURSOR\\\":\\\"$after\\\"/,\\$p\" '{j}' | tail -n +2; fi\nexec sleep 20\n",
            args = args_log.display(),
            j = journal.display()
        ),
    )
    .unwrap();
    std::fs::set_permissions(&fake, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    let mut text = journal_record(
        "c1",
        300,
        "sshd",
        "Accepted password for alice from 203.0.113.7 port 50001 ssh2",
        1,
    );
    text.push_str(&journal_record("c2", 1, "systemd", "Started session", 2));
    std::fs::write(&journal, &text).unwrap();
    let config = dir.path().join("collect.toml");
    std::fs::write(
        &config,
        format!(
            "[[source]]\nname = \"journal\"\nkind = \"journald\"\nunits = [\"ssh\"]\njournalctl = \"{}\"\npoll_interval_ms = 50\n",
            fake.display()
        ),
    )
    .unwrap();
    let state = dir.path().join("state");
    let args = ["--config", config.to_str().unwrap()];
    let mut first = Collector::start(&server.url, &state, &dir.path().join("c1.log"), &args);
    wait_count(&server, 1, "the login").await;
    let deadline = Instant::now() + Duration::from_secs(20);
    while checkpoint(&state, "journal").is_none_or(|c| c["position"]["journald"]["cursor"] != "c2")
    {
        assert!(Instant::now() < deadline, "the cursor never reached c2");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    first.kill9();
    // The session's end arrives while the collector is down.
    std::fs::write(
        &journal,
        text + &journal_record(
            "c3",
            300,
            "sshd",
            "pam_unix(sshd:session): session closed for user alice",
            3,
        ),
    )
    .unwrap();
    let _second = Collector::start(&server.url, &state, &dir.path().join("c2.log"), &args);
    wait_count(&server, 2, "the logout").await;
    let c = server.admin().await;
    let traces = list_all(&c, &[("service_type", "SSH".to_string())]).await;
    let mut names: Vec<&str> = traces
        .iter()
        .map(|t| t["trace_name"].as_str().unwrap())
        .collect();
    names.sort();
    assert_eq!(names, ["login", "logout"]);
    let calls = std::fs::read_to_string(&args_log).unwrap();
    let calls: Vec<&str> = calls.lines().collect();
    assert_eq!(
        calls,
        [
            "--follow --output=json --no-pager --no-tail --unit=ssh",
            "--follow --output=json --no-pager --after-cursor=c2 --no-tail --unit=ssh",
        ]
    );
}

#[test]
fn a_source_naming_a_project_that_does_not_exist_stops_the_server_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("trailwatch.toml");
    let missing = "0".repeat(32);
    std::fs::write(
        &config,
        format!(
            "version = 1\n\n[[source]]\nname = \"auth\"\nkind = \"sshd\"\npath = \"{}\"\nproject_id = \"{missing}\"\n",
            dir.path().join("auth.log").display()
        ),
    )
    .unwrap();
    let log = dir.path().join("serve.log");
    let mut child = Command::new(bin())
        .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
        .arg(dir.path().join("data"))
        .arg("--config")
        .arg(&config)
        .env("TRAILWATCH_ADMIN_PASSWORD", common::ADMIN_PASSWORD)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            panic!("the server kept running with a source in a missing project");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let err = std::fs::read_to_string(&log).unwrap();
    assert_eq!(status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!(
            "[[source]] auth: project_id {missing} does not exist"
        )),
        "{err}"
    );
}
