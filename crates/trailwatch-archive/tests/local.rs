//! The local-folder backend for real: concurrent tasks, concurrent OS processes, retries, crash
//! leftovers and `kill -9` in the middle of appends.
//!
//! The multi-process tests run this test binary again as worker processes (see
//! [`worker_entry_point`]).

mod common;

use std::io::{BufRead as _, BufReader};
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use common::{assert_exactly_once, key_for, lines_for};
use rand::Rng as _;
use trailwatch_archive::{
    APPLIED_KEYS_REMEMBERED, AppendOutcome, ObjectStoreConfig, Objects, ObjectsError, PutIfAbsent,
};

const BUCKET: &str = "alarm-logs";
const KEY: &str = "functions/log-alarm/alarm.log";

fn open(root: &Path) -> Objects {
    Objects::open(&ObjectStoreConfig::Local {
        root: root.to_path_buf(),
    })
    .expect("open local store")
}

async fn text(objects: &Objects, key: &str) -> String {
    let bytes = objects
        .get(BUCKET, key)
        .await
        .expect("get")
        .expect("object exists");
    String::from_utf8(bytes.to_vec()).expect("utf-8")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn eight_tasks_append_every_line_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    let objects = Arc::new(open(dir.path()));
    const TASKS: usize = 8;
    const CALLS: usize = 50;
    let mut handles = Vec::new();
    for w in 0..TASKS {
        let objects = objects.clone();
        handles.push(tokio::spawn(async move {
            let mut attempts = 0;
            for c in 0..CALLS {
                match objects
                    .append_lines(BUCKET, KEY, &lines_for(w, c), &key_for(w, c))
                    .await
                    .expect("append")
                {
                    AppendOutcome::Appended { attempts: a } => attempts += a,
                    AppendOutcome::AlreadyApplied => panic!("fresh call w{w}-c{c} seen as applied"),
                }
            }
            attempts
        }));
    }
    let mut attempts = 0;
    for h in handles {
        attempts += h.await.expect("task");
    }
    println!("{} calls took {attempts} conditional writes", TASKS * CALLS);
    let calls: Vec<_> = (0..TASKS)
        .flat_map(|w| (0..CALLS).map(move |c| (w, c)))
        .collect();
    assert_exactly_once(&text(&objects, KEY).await, &calls);

    // No helper file is listed as an object.
    let listed = objects.list(BUCKET, "").await.expect("list");
    assert_eq!(
        listed.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        [KEY]
    );
}

#[tokio::test]
async fn retry_with_the_same_key_is_a_no_op() {
    let dir = tempfile::tempdir().expect("tempdir");
    let objects = open(dir.path());
    let first = objects
        .append_lines(BUCKET, KEY, &lines_for(0, 2), &key_for(0, 2))
        .await
        .expect("append");
    assert_eq!(first, AppendOutcome::Appended { attempts: 1 });
    let before = text(&objects, KEY).await;
    for _ in 0..3 {
        let again = objects
            .append_lines(BUCKET, KEY, &lines_for(0, 2), &key_for(0, 2))
            .await
            .expect("retry");
        assert_eq!(again, AppendOutcome::AlreadyApplied);
    }
    assert_eq!(text(&objects, KEY).await, before, "a retry writes nothing");

    // The record is bounded: after APPLIED_KEYS_REMEMBERED later calls the key is forgotten
    // (documented limit), but not one call sooner.
    for c in 0..APPLIED_KEYS_REMEMBERED - 1 {
        objects
            .append_lines(BUCKET, KEY, &lines_for(1, c), &key_for(1, c))
            .await
            .expect("append");
    }
    assert_eq!(
        objects
            .append_lines(BUCKET, KEY, &lines_for(0, 2), &key_for(0, 2))
            .await
            .expect("retry"),
        AppendOutcome::AlreadyApplied,
        "still remembered after {} later calls",
        APPLIED_KEYS_REMEMBERED - 1
    );
}

#[tokio::test]
async fn bad_input_gets_precise_errors_and_writes_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let objects = open(dir.path());
    let e = objects
        .append_lines(BUCKET, KEY, &["ok".into(), "two\nlines".into()], "k")
        .await
        .expect_err("line feed");
    assert!(
        matches!(e, ObjectsError::InvalidLine { index: 1, .. }),
        "{e}"
    );
    let e = objects
        .append_lines(BUCKET, "../escape.log", &["x".into()], "k")
        .await
        .expect_err("traversal");
    assert!(e.to_string().contains("\"..\" segment"), "{e}");
    let e = objects
        .append_lines("Bad_Bucket", KEY, &["x".into()], "k")
        .await
        .expect_err("bucket");
    assert!(
        e.to_string().contains("invalid bucket name \"Bad_Bucket\""),
        "{e}"
    );
    let e = objects
        .append_lines(BUCKET, KEY, &["x".into()], "")
        .await
        .expect_err("empty key");
    assert!(
        matches!(e, ObjectsError::InvalidIdempotencyKey { .. }),
        "{e}"
    );
    assert_eq!(objects.get(BUCKET, KEY).await.expect("get"), None);
    assert_eq!(
        objects
            .append_lines(BUCKET, KEY, &[], "k")
            .await
            .expect("empty call"),
        AppendOutcome::Appended { attempts: 0 }
    );
    assert_eq!(objects.get(BUCKET, KEY).await.expect("get"), None);
    assert!(!dir.path().join("escape.log").exists());
}

#[tokio::test]
async fn get_put_if_absent_and_list() {
    let dir = tempfile::tempdir().expect("tempdir");
    let objects = open(dir.path());
    let key = "CloudTraces/cn-north-4/2026/11/23/system/ECS/trace 1 = ü.json.gz";
    assert_eq!(objects.get(BUCKET, key).await.expect("get"), None);
    let body = Bytes::from_static(b"trace file");
    assert_eq!(
        objects
            .put_if_absent(BUCKET, key, body.clone())
            .await
            .expect("put"),
        PutIfAbsent::Created
    );
    assert_eq!(
        objects
            .put_if_absent(BUCKET, key, body.clone())
            .await
            .expect("put"),
        PutIfAbsent::AlreadyExists { identical: true }
    );
    assert_eq!(
        objects
            .put_if_absent(BUCKET, key, Bytes::from_static(b"other"))
            .await
            .expect("put"),
        PutIfAbsent::AlreadyExists { identical: false }
    );
    assert_eq!(objects.get(BUCKET, key).await.expect("get"), Some(body));

    objects
        .put_if_absent(BUCKET, "CloudTraces/cn-north-4/2026/11/24/x", Bytes::new())
        .await
        .expect("put");
    objects
        .put_if_absent(BUCKET, "CloudTraces/cn-north-4/2026/11/2/y", Bytes::new())
        .await
        .expect("put");
    let listed = objects
        .list(BUCKET, "CloudTraces/cn-north-4/2026/11/2")
        .await
        .expect("list");
    assert_eq!(
        listed.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        ["CloudTraces/cn-north-4/2026/11/2/y"],
        "prefixes match whole segments"
    );
    let all = objects.list(BUCKET, "CloudTraces/").await.expect("list");
    assert_eq!(
        all.iter().map(|o| o.key.as_str()).collect::<Vec<_>>(),
        [
            "CloudTraces/cn-north-4/2026/11/2/y",
            key,
            "CloudTraces/cn-north-4/2026/11/24/x"
        ],
        "sorted by key, exact key round trip"
    );
    assert_eq!(all[1].size, 10);
    assert!(
        objects
            .list(BUCKET, "no/such/prefix")
            .await
            .expect("list")
            .is_empty()
    );
    assert!(
        objects
            .list("empty-bucket", "")
            .await
            .expect("list")
            .is_empty()
    );
}

/// Leftovers of crashed writers: a `LocalFileSystem` staging file (`#1`) and an uncommitted
/// append journal (`#000`) from a writer killed before its commit.
#[tokio::test]
async fn crash_leftovers_are_ignored_and_recovered() {
    let dir = tempfile::tempdir().expect("tempdir");
    let objects = open(dir.path());
    objects
        .append_lines(BUCKET, KEY, &lines_for(0, 0), &key_for(0, 0))
        .await
        .expect("append");
    let object = dir.path().join(BUCKET).join(KEY);
    let sibling = |suffix: &str| {
        let mut s = object.clone().into_os_string();
        s.push(suffix);
        std::path::PathBuf::from(s)
    };
    std::fs::write(sibling("#1"), b"half a staged upl").expect("staging leftover");
    std::fs::write(sibling("#000"), b"w0-c0-l0 torn jour").expect("journal leftover");

    assert_exactly_once(&text(&objects, KEY).await, &[(0, 0)]);
    assert!(
        !sibling("#000").exists(),
        "uncommitted journal rolled back by get"
    );
    let listed = objects.list(BUCKET, "").await.expect("list");
    assert_eq!(
        listed.len(),
        1,
        "staging leftovers are not objects: {listed:?}"
    );

    objects
        .append_lines(BUCKET, KEY, &lines_for(0, 1), &key_for(0, 1))
        .await
        .expect("append after leftovers");
    assert_exactly_once(&text(&objects, KEY).await, &[(0, 0), (0, 1)]);
}

/// Four OS processes append 50 calls each to the same object.
#[test]
fn four_processes_append_every_line_exactly_once() {
    let dir = tempfile::tempdir().expect("tempdir");
    const PROCS: usize = 4;
    const CALLS: usize = 50;
    let children: Vec<_> = (0..PROCS)
        .map(|w| {
            worker(dir.path(), w, 0, Some(CALLS))
                .stdout(Stdio::null())
                .spawn()
                .expect("spawn worker")
        })
        .collect();
    for mut child in children {
        let status = child.wait().expect("wait");
        assert!(status.success(), "worker failed: {status}");
    }
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let objects = open(dir.path());
    let calls: Vec<_> = (0..PROCS)
        .flat_map(|w| (0..CALLS).map(move |c| (w, c)))
        .collect();
    assert_exactly_once(&rt.block_on(text(&objects, KEY)), &calls);
}

/// A worker appends calls 0, 1, 2, ... and prints `TW-ACK N` after each returns; it is killed with
/// SIGKILL at random moments (usually mid-append: most of an append is fsync). Every
/// acknowledged call must survive, exactly once; the call in flight at the kill is re-run with
/// the same idempotency key by the next worker and must end up exactly once too.
#[test]
fn kill_9_mid_append_loses_and_duplicates_nothing() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut rng = rand::rng();
    let mut next = 0usize;
    let journal = {
        let mut s = dir.path().join(BUCKET).join(KEY).into_os_string();
        s.push("#000");
        std::path::PathBuf::from(s)
    };
    let mut killed_mid_commit = 0;
    for _round in 0..6 {
        let mut child = worker(dir.path(), 0, next, None)
            .stdout(Stdio::piped())
            .spawn()
            .expect("spawn worker");
        let stdout = child.stdout.take().expect("stdout");
        let mut acks = BufReader::new(stdout).lines();
        let wanted = rng.random_range(3..12);
        let mut seen = 0;
        while seen < wanted {
            let line = acks
                .next()
                .expect("worker ended early")
                .expect("read worker output");
            if let Some(n) = ack_of(&line) {
                assert_eq!(n, next, "acks come in order");
                next += 1;
                seen += 1;
            }
        }
        std::thread::sleep(Duration::from_micros(rng.random_range(0..3000)));
        child.kill().expect("SIGKILL");
        child.wait().expect("reap");
        if journal.exists() {
            killed_mid_commit += 1;
        }
        // Acks printed between our last read and the kill count too.
        for line in acks.map_while(Result::ok) {
            if let Some(n) = ack_of(&line) {
                assert_eq!(n, next, "acks come in order");
                next += 1;
            }
        }
    }
    // The call in flight at the last kill: retry it, as its caller would.
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let objects = open(dir.path());
    let outcome = rt
        .block_on(objects.append_lines(BUCKET, KEY, &lines_for(0, next), &key_for(0, next)))
        .expect("retry of the in-flight call");
    println!(
        "{next} acknowledged calls; {killed_mid_commit} of 6 kills left a journal; \
         in-flight call on retry: {outcome:?}"
    );
    let calls: Vec<_> = (0..=next).map(|c| (0, c)).collect();
    assert_exactly_once(&rt.block_on(text(&objects, KEY)), &calls);
}

/// Marks a worker's acknowledgement on stdout (libtest may print its own text on the same line).
const ACK: &str = "TW-ACK ";

fn ack_of(line: &str) -> Option<usize> {
    let at = line.find(ACK)?;
    Some(line[at + ACK.len()..].trim().parse().expect("ack number"))
}

fn worker(root: &Path, id: usize, start: usize, count: Option<usize>) -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "worker_entry_point",
        "--exact",
        "--nocapture",
        "--test-threads=1",
    ])
    .env("TW_ARCHIVE_WORKER_ROOT", root)
    .env("TW_ARCHIVE_WORKER_ID", id.to_string())
    .env("TW_ARCHIVE_WORKER_START", start.to_string())
    .env(
        "TW_ARCHIVE_WORKER_COUNT",
        count.map_or_else(|| "forever".to_owned(), |c| c.to_string()),
    );
    cmd
}

/// Not a test by itself: the body of the worker processes above. Without
/// `TW_ARCHIVE_WORKER_ROOT` it returns at once.
#[test]
fn worker_entry_point() {
    let Some(root) = std::env::var_os("TW_ARCHIVE_WORKER_ROOT") else {
        return;
    };
    let num =
        |name: &str| -> Option<usize> { std::env::var(name).ok().and_then(|v| v.parse().ok()) };
    let id = num("TW_ARCHIVE_WORKER_ID").expect("worker id");
    let start = num("TW_ARCHIVE_WORKER_START").expect("start");
    let count = num("TW_ARCHIVE_WORKER_COUNT");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let objects = open(Path::new(&root));
    rt.block_on(async {
        let mut c = start;
        while count.is_none_or(|n| c < start + n) {
            objects
                .append_lines(BUCKET, KEY, &lines_for(id, c), &key_for(id, c))
                .await
                .expect("worker append");
            println!("{ACK}{c}");
            c += 1;
        }
    });
}
