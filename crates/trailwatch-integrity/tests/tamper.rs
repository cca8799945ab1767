//! The tamper suite (issue 5): an archive written over several simulated hours by two trackers,
//! tampered with in each way an attacker (or a broken disk) might, must fail verification with
//! the right kind of problem naming the right object — and verify clean when untouched.

mod common;

use std::collections::BTreeSet;

use common::folder::FolderSource;
use common::*;
use trailwatch_integrity::{
    DigestInput, MemorySource, ObjectSource, ProblemKind, Report, TraceFileBuilder, VerifyOptions,
    sign_digest, verify, verify_with,
};

fn archive() -> Archive {
    Archive::standard().unwrap_or_else(|e| panic!("building the archive: {e}"))
}

/// The problems of `report` other than `unlisted` ones.
fn non_unlisted(report: &Report) -> Vec<(String, String)> {
    kinds(report)
        .into_iter()
        .filter(|(k, _)| k != "unlisted")
        .collect()
}

fn unlisted(report: &Report) -> BTreeSet<String> {
    report
        .of_kind(ProblemKind::Unlisted)
        .map(|p| p.object.clone())
        .collect()
}

fn pair(kind: &str, object: &str) -> (String, String) {
    (kind.to_owned(), object.to_owned())
}

#[test]
fn untouched_archive_verifies_clean() -> TestResult {
    let a = archive();
    let report = a.verify(&a.objects)?;
    assert!(report.valid(), "problems:\n{}", show(&report));
    // 6 hours x 4 cycles x (3 services + 2 record kinds) + 2 cycles after 12:00 for `system`;
    // 5 of 6 hours x 4 cycles for `data-obs` (12:05 and 12:20 are pending).
    assert_eq!(report.counts.files, 6 * 4 * 5 + 2 * 5 + 5 * 4);
    assert_eq!(report.counts.pending_files, 2);
    assert_eq!(report.counts.digests, 7 + 6);
    assert!(report.counts.traces > 100, "{:?}", report.counts);
    assert_eq!(report.counts.records, (6 * 4 + 2) * 2);
    let total: u64 = a
        .objects
        .objects
        .iter()
        .filter(|(k, _)| !k.contains("/Digest/"))
        .map(|(_, v)| v.len() as u64)
        .sum();
    let pending: u64 = a.tracker(DATA).open_files.iter().map(|f| f.size).sum();
    assert_eq!(report.counts.bytes, total - pending);
    let system = &report.chains[1];
    assert_eq!(system.tracker, "system");
    assert_eq!(
        (system.first_sequence, system.last_sequence),
        (Some(0), Some(6))
    );
    assert!(system.ended);
    let data = &report.chains[0];
    assert_eq!(
        (data.tracker.as_str(), data.file_prefix.as_str()),
        ("data-obs", "audit")
    );
    assert_eq!(data.last_sequence, Some(5));
    assert!(!data.ended);
    Ok(())
}

#[test]
fn untouched_archive_verifies_clean_from_a_folder_and_later() -> TestResult {
    let a = archive();
    let dir = tempfile::tempdir()?;
    let folder = FolderSource::new(dir.path());
    for (k, v) in &a.objects.objects {
        folder.put(k, v)?;
    }
    let report = a.verify(&folder)?;
    assert!(report.valid(), "problems:\n{}", show(&report));
    // The `system` chain was closed on shutdown: still clean a week later. `data-obs` was not:
    // a week later its tail is stale and its unlisted 12:05 and 12:20 files are overdue.
    let later = t(12, 25, 0) + chrono::TimeDelta::days(7);
    let report = verify(&folder, &a.key.public_key(), None, None, later)?;
    let data_head = a.tracker(DATA).digest_key(5);
    assert_eq!(non_unlisted(&report), vec![pair("stale-tail", &data_head)]);
    let open: BTreeSet<String> = a
        .tracker(DATA)
        .open_files
        .iter()
        .map(|f| f.object.clone())
        .collect();
    assert_eq!(unlisted(&report), open);
    Ok(())
}

#[test]
fn flipped_byte_in_a_trace_file_is_altered() -> TestResult {
    let a = archive();
    let victim = a.tracker(SYSTEM).listed(2)[4].clone();
    let mut s = a.objects.clone();
    let bytes = s.objects.get_mut(&victim).ok_or("victim")?;
    let at = bytes.len() / 2;
    bytes[at] ^= 0x01;
    let report = a.verify(&s)?;
    assert_eq!(
        kinds(&report),
        vec![pair("altered", &victim)],
        "{}",
        show(&report)
    );
    let p = &report.problems[0];
    let entry = &a.tracker(SYSTEM).digests[2].digest.log_files[4];
    assert_eq!(
        p.expected.as_deref(),
        Some(format!("{} bytes, sha256 {}", entry.size, entry.log_hash_value).as_str())
    );
    assert!(
        p.actual
            .as_deref()
            .is_some_and(|x| x.starts_with(&format!("{} bytes, sha256 ", entry.size)))
    );
    assert!(
        p.detail.contains(&a.tracker(SYSTEM).digest_key(2)),
        "{}",
        p.detail
    );
    Ok(())
}

#[test]
fn flipped_byte_in_a_plain_json_file_is_altered() -> TestResult {
    let a = archive();
    let victim = a.tracker(DATA).listed(0)[1].clone();
    assert!(victim.ends_with(".json"));
    let mut s = a.objects.clone();
    s.objects.get_mut(&victim).ok_or("victim")?[30] ^= 0x20;
    let report = a.verify(&s)?;
    assert_eq!(
        kinds(&report),
        vec![pair("altered", &victim)],
        "{}",
        show(&report)
    );
    Ok(())
}

#[test]
fn deleted_trace_file_is_missing() -> TestResult {
    let a = archive();
    let victim = a.tracker(DATA).listed(3)[0].clone();
    let mut s = a.objects.clone();
    s.objects.remove(&victim).ok_or("victim")?;
    let report = a.verify(&s)?;
    assert_eq!(
        kinds(&report),
        vec![pair("missing", &victim)],
        "{}",
        show(&report)
    );
    assert!(report.problems[0].detail.contains("does not exist"));
    Ok(())
}

#[test]
fn deleted_record_file_is_missing() -> TestResult {
    let a = archive();
    let victim = a
        .tracker(SYSTEM)
        .listed(1)
        .into_iter()
        .find(|k| k.contains("/Records/receipt/"))
        .ok_or("no receipt file")?;
    let mut s = a.objects.clone();
    s.objects.remove(&victim);
    let report = a.verify(&s)?;
    assert_eq!(
        kinds(&report),
        vec![pair("missing", &victim)],
        "{}",
        show(&report)
    );
    assert!(report.problems[0].detail.contains("receipt file"));
    Ok(())
}

#[test]
fn deleted_digest_is_missing_and_its_files_unlisted() -> TestResult {
    let a = archive();
    let sys = a.tracker(SYSTEM);
    let victim = sys.digest_key(2);
    let mut s = a.objects.clone();
    s.objects.remove(&victim);
    let report = a.verify(&s)?;
    assert_eq!(
        non_unlisted(&report),
        vec![
            pair("missing", &victim),
            pair("sequence-gap", &sys.digest_key(3))
        ],
        "{}",
        show(&report)
    );
    assert_eq!(unlisted(&report), sys.listed(2).into_iter().collect());
    let gap = report
        .of_kind(ProblemKind::SequenceGap)
        .next()
        .ok_or("gap")?;
    assert_eq!(gap.expected.as_deref(), Some("sequence 2"));
    assert_eq!(gap.actual.as_deref(), Some("sequence 3"));
    Ok(())
}

#[test]
fn deleted_first_digest_is_missing() -> TestResult {
    let a = archive();
    let data = a.tracker(DATA);
    let mut s = a.objects.clone();
    s.objects.remove(&data.digest_key(0));
    let report = a.verify(&s)?;
    assert_eq!(
        non_unlisted(&report),
        vec![
            pair("missing", &data.digest_key(0)),
            pair("sequence-gap", &data.digest_key(1))
        ],
        "{}",
        show(&report)
    );
    assert_eq!(unlisted(&report), data.listed(0).into_iter().collect());
    Ok(())
}

#[test]
fn deleted_two_newest_digests_leave_a_stale_tail() -> TestResult {
    let a = archive();
    // `data-obs` is still running: its newest digests are 11:00 (sequence 4) and 12:00 (5).
    let data = a.tracker(DATA);
    let mut s = a.objects.clone();
    s.objects.remove(&data.digest_key(5));
    s.objects.remove(&data.digest_key(4));
    let report = a.verify(&s)?;
    assert_eq!(
        non_unlisted(&report),
        vec![pair("stale-tail", &data.digest_key(3))],
        "{}",
        show(&report)
    );
    let stale = &report
        .problems
        .iter()
        .find(|p| p.kind == ProblemKind::StaleTail)
        .ok_or("stale")?;
    assert_eq!(
        stale.actual.as_deref(),
        Some("the newest digest (sequence 3) ends at 2026-03-05T10:00:00Z")
    );
    assert_eq!(
        stale.expected.as_deref(),
        Some("a digest ending at or after 2026-03-05T11:10:00Z")
    );
    // The files of the deleted periods are no longer covered: those whose digest is overdue are
    // unlisted, the younger ones pending.
    let deleted: BTreeSet<String> = data.listed(4).into_iter().chain(data.listed(5)).collect();
    let u = unlisted(&report);
    assert!(!u.is_empty() && u.is_subset(&deleted), "{u:?}");
    Ok(())
}

#[test]
fn deleted_shutdown_digest_and_the_one_before_leave_a_stale_tail() -> TestResult {
    let a = archive();
    // `system` ended with a shutdown digest (sequence 6); without it the chain looks cut off.
    let sys = a.tracker(SYSTEM);
    let mut s = a.objects.clone();
    s.objects.remove(&sys.digest_key(6));
    s.objects.remove(&sys.digest_key(5));
    let report = a.verify(&s)?;
    assert_eq!(
        non_unlisted(&report),
        vec![pair("stale-tail", &sys.digest_key(4))],
        "{}",
        show(&report)
    );
    Ok(())
}

#[test]
fn swapped_digests_are_reordered() -> TestResult {
    let a = archive();
    let sys = a.tracker(SYSTEM);
    let (k2, k3) = (sys.digest_key(2), sys.digest_key(3));
    let mut s = a.objects.clone();
    let b2 = s.objects.remove(&k2).ok_or("k2")?;
    let b3 = s.objects.remove(&k3).ok_or("k3")?;
    s.objects.insert(k2.clone(), b3);
    s.objects.insert(k3.clone(), b2);
    let report = a.verify(&s)?;
    let mut expected = vec![pair("reordered", &k2), pair("reordered", &k3)];
    expected.sort();
    assert_eq!(kinds(&report), expected, "{}", show(&report));
    assert!(
        report.problems[0]
            .actual
            .as_deref()
            .is_some_and(|x| x.contains(&k3))
    );
    Ok(())
}

#[test]
fn digest_replaced_by_one_signed_with_another_key_is_wrong_key() -> TestResult {
    let a = archive();
    let sys = a.tracker(SYSTEM);
    let victim = &sys.digests[3];
    // The attacker rebuilds the period's digest without one file, chained exactly like the
    // original, and signs it with their own key.
    let mut files = victim.digest.log_files.clone();
    let dropped = files.remove(0);
    let prev = sys.digests[2].previous();
    let forged = sign_digest(
        DigestInput {
            layout: &sys.layout,
            project_id: PROJECT,
            bucket: BUCKET,
            start: victim.digest.digest_start_time,
            end: victim.digest.digest_end_time,
            ending: false,
            previous: Some(&prev),
            files,
        },
        &attacker_key(),
    )?;
    assert_eq!(forged.key, victim.key);
    let mut s = a.objects.clone();
    s.objects.insert(forged.key.clone(), forged.bytes.clone());
    s.objects.remove(&dropped.object);
    let report = a.verify(&s)?;
    assert_eq!(
        non_unlisted(&report),
        vec![
            pair("chain-broken", &victim.key),
            pair("wrong-key", &victim.key)
        ],
        "{}",
        show(&report)
    );
    let wrong = report
        .of_kind(ProblemKind::WrongKey)
        .next()
        .ok_or("wrong-key")?;
    assert_eq!(
        wrong.expected.as_deref(),
        Some(format!("key id {}", a.key.public_key().key_id()).as_str())
    );
    assert_eq!(
        wrong.actual.as_deref(),
        Some(format!("key id {}", attacker_key().public_key().key_id()).as_str())
    );
    // What the forged digest lists is untrusted: the files of that hour are unlisted, and say why.
    let listed: BTreeSet<String> = sys
        .listed(3)
        .into_iter()
        .filter(|k| *k != dropped.object)
        .collect();
    assert_eq!(unlisted(&report), listed);
    assert!(
        report
            .of_kind(ProblemKind::Unlisted)
            .all(|p| p.detail.contains("untrusted digest"))
    );
    Ok(())
}

#[test]
fn digest_re_signed_under_our_key_id_is_bad_signature() -> TestResult {
    let a = archive();
    let sys = a.tracker(SYSTEM);
    let victim = sys.digest_key(1);
    // Change one listed hash inside the digest and re-compress it: the content no longer matches
    // the signature.
    let text = String::from_utf8(trailwatch_integrity::file::decompress(
        &a.objects.objects[&victim],
    )?)?;
    let hash = &sys.digests[1].digest.log_files[0].log_hash_value;
    let changed = text.replacen(hash.as_str(), &"0".repeat(64), 1);
    assert_ne!(changed, text);
    let mut s = a.objects.clone();
    s.objects.insert(victim.clone(), changed.into_bytes());
    let report = a.verify(&s)?;
    assert_eq!(
        non_unlisted(&report),
        vec![
            pair("bad-signature", &victim),
            pair("chain-broken", &victim)
        ],
        "{}",
        show(&report)
    );
    assert_eq!(unlisted(&report), sys.listed(1).into_iter().collect());
    Ok(())
}

#[test]
fn flipped_byte_in_a_digest_is_named() -> TestResult {
    let a = archive();
    let victim = a.tracker(DATA).digest_key(2);
    let mut s = a.objects.clone();
    let bytes = s.objects.get_mut(&victim).ok_or("victim")?;
    let at = bytes.len() / 2;
    bytes[at] ^= 0x10;
    let report = a.verify(&s)?;
    let named: Vec<(String, String)> = non_unlisted(&report);
    assert!(
        named.contains(&pair("chain-broken", &victim)),
        "{}",
        show(&report)
    );
    assert!(
        named.contains(&pair("malformed", &victim))
            || named.contains(&pair("bad-signature", &victim)),
        "{}",
        show(&report)
    );
    assert!(named.iter().all(|(_, o)| *o == victim), "{}", show(&report));
    Ok(())
}

#[test]
fn truncated_trace_file_is_truncated() -> TestResult {
    let a = archive();
    let victim = a.tracker(SYSTEM).listed(4)[1].clone();
    let mut s = a.objects.clone();
    let bytes = s.objects.get_mut(&victim).ok_or("victim")?;
    let keep = bytes.len() * 2 / 3;
    bytes.truncate(keep);
    let report = a.verify(&s)?;
    assert_eq!(
        kinds(&report),
        vec![pair("truncated", &victim)],
        "{}",
        show(&report)
    );
    let p = &report.problems[0];
    assert!(p.detail.contains("gzip stream ends early"), "{}", p.detail);
    assert!(
        p.actual
            .as_deref()
            .is_some_and(|x| x.starts_with(&format!("{keep} bytes")))
    );
    Ok(())
}

#[test]
fn truncated_digest_is_truncated() -> TestResult {
    let a = archive();
    let victim = a.tracker(SYSTEM).digest_key(4);
    let mut s = a.objects.clone();
    let bytes = s.objects.get_mut(&victim).ok_or("victim")?;
    let keep = bytes.len() - 10;
    bytes.truncate(keep);
    let report = a.verify(&s)?;
    assert_eq!(
        non_unlisted(&report),
        vec![pair("chain-broken", &victim), pair("truncated", &victim)],
        "{}",
        show(&report)
    );
    assert_eq!(
        unlisted(&report),
        a.tracker(SYSTEM).listed(4).into_iter().collect()
    );
    Ok(())
}

#[test]
fn forged_trace_file_is_unlisted() -> TestResult {
    let a = archive();
    let sys = a.tracker(SYSTEM);
    let at = t(9, 41, 13);
    let mut b = TraceFileBuilder::new(trailwatch_integrity::Compression::Gzip);
    b.push(&serde_json::json!({"trace_id": "forged", "time": at.timestamp_millis(), "trace_name": "deleteBucket"}))?;
    let forged = b.finish()?;
    let key = sys.layout.trace_file_key(
        Some("OBS"),
        at,
        [0xfe; 8],
        trailwatch_integrity::Compression::Gzip,
    )?;
    let mut s = a.objects.clone();
    s.objects.insert(key.clone(), forged.bytes);
    // And an object that is not even an archive key.
    s.objects
        .insert("CloudTraces/eu-de/notes.txt".to_owned(), b"hello".to_vec());
    let report = a.verify(&s)?;
    assert_eq!(
        kinds(&report),
        vec![
            pair("unlisted", &key),
            pair("unlisted", "CloudTraces/eu-de/notes.txt")
        ],
        "{}",
        show(&report)
    );
    assert!(
        report.problems[0].detail.contains("forged"),
        "{}",
        report.problems[0].detail
    );
    assert!(report.problems[1].detail.contains("not an archive key"));
    Ok(())
}

#[test]
fn tampering_in_a_folder_is_found_the_same_way() -> TestResult {
    let a = archive();
    let dir = tempfile::tempdir()?;
    let folder = FolderSource::new(dir.path());
    for (k, v) in &a.objects.objects {
        folder.put(k, v)?;
    }
    let altered = a.tracker(SYSTEM).listed(0)[0].clone();
    let deleted = a.tracker(DATA).listed(1)[0].clone();
    let mut bytes = std::fs::read(folder.path(&altered))?;
    bytes[12] ^= 0x80;
    std::fs::write(folder.path(&altered), bytes)?;
    std::fs::remove_file(folder.path(&deleted))?;
    let report = a.verify(&folder)?;
    let mut expected = vec![pair("altered", &altered), pair("missing", &deleted)];
    expected.sort_by(|x, y| x.1.cmp(&y.1));
    assert_eq!(kinds(&report), expected, "{}", show(&report));
    Ok(())
}

#[test]
fn a_window_skips_expired_files_and_ignores_later_digests() -> TestResult {
    let a = archive();
    let mut s = a.objects.clone();
    // Retention expired every trace and record file before 08:00 (digests are kept).
    let expired: Vec<String> = s
        .objects
        .keys()
        .filter(|k| !k.contains("/Digest/"))
        .filter(|k| trailwatch_integrity::parse_key(k).is_ok_and(|p| p.time < t(8, 0, 0)))
        .cloned()
        .collect();
    assert!(!expired.is_empty());
    for k in &expired {
        s.objects.remove(k);
    }
    let pk = a.key.public_key();
    let whole = verify(&s, &pk, None, None, a.now)?;
    assert_eq!(whole.of_kind(ProblemKind::Missing).count(), expired.len());
    let windowed = verify(&s, &pk, Some(t(8, 0, 0)), None, a.now)?;
    assert!(windowed.valid(), "{}", show(&windowed));
    // Up to 10:30 only: later tampering does not count, and the tail is judged at 10:30.
    let late = a.tracker(SYSTEM).listed(5)[0].clone();
    s.objects.remove(&late);
    let to = verify(&s, &pk, Some(t(8, 0, 0)), Some(t(10, 30, 0)), a.now)?;
    assert!(to.valid(), "{}", show(&to));
    assert!(to.counts.files < windowed.counts.files);
    // The link into the window is still checked: the digest before it must exist.
    s.objects.remove(&a.tracker(DATA).digest_key(1));
    let linked = verify(&s, &pk, Some(t(8, 30, 0)), Some(t(10, 30, 0)), a.now)?;
    assert_eq!(
        kinds(&linked),
        vec![pair("missing", &a.tracker(DATA).digest_key(1))],
        "{}",
        show(&linked)
    );
    Ok(())
}

#[test]
fn a_new_tracker_without_its_first_digest_is_pending() -> TestResult {
    let mut a = Archive::new(t(6, 0, 0))?;
    a.write_cycle(SYSTEM, t(6, 5, 0))?;
    a.write_cycle(SYSTEM, t(6, 20, 0))?;
    a.now = t(6, 30, 0);
    let report = a.verify(&a.objects)?;
    assert!(report.valid(), "{}", show(&report));
    assert_eq!(report.counts.pending_files, 10);
    // Once the first digest is overdue, the files are unlisted. Without any digest the period
    // of a file is unknown, so a file is overdue one period plus the grace after it was written:
    // at 07:30 the 06:05 files are (due 07:20), the 06:20 ones not yet (due 07:35).
    a.now = t(7, 30, 0);
    let report = a.verify(&a.objects)?;
    assert_eq!(
        report.of_kind(ProblemKind::Unlisted).count(),
        5,
        "{}",
        show(&report)
    );
    assert!(
        report
            .problems
            .iter()
            .all(|p| p.object.contains("T06-05-00Z"))
    );
    assert_eq!(report.counts.pending_files, 5);
    a.now = t(7, 36, 0);
    let report = a.verify(&a.objects)?;
    assert_eq!(
        report.of_kind(ProblemKind::Unlisted).count(),
        10,
        "{}",
        show(&report)
    );
    assert!(
        report
            .problems
            .iter()
            .all(|p| p.detail.contains("no trusted digest of tracker system"))
    );
    Ok(())
}

#[test]
fn threads_and_progress_do_not_change_the_report() -> TestResult {
    let a = archive();
    let mut s = a.objects.clone();
    let victim = a.tracker(SYSTEM).listed(3)[2].clone();
    s.objects.get_mut(&victim).ok_or("victim")?[40] ^= 4;
    let one = a.verify(&s)?;
    let mut opts = VerifyOptions::new(a.key.public_key(), a.now);
    opts.threads = 4;
    let calls = std::sync::atomic::AtomicU64::new(0);
    let last = std::sync::Mutex::new(0u64);
    let four = verify_with(&s, &opts, &|p| {
        calls.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let mut l = last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        *l = (*l).max(p.bytes_done);
        assert!(p.files_done <= p.files_total);
    })?;
    assert_eq!(one, four);
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::Relaxed),
        one.counts.digests + one.counts.files
    );
    assert_eq!(
        *last
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner),
        one.counts.bytes
    );
    Ok(())
}

#[test]
fn the_report_serializes_for_machines() -> TestResult {
    let a = archive();
    let mut s = a.objects.clone();
    let victim = a.tracker(DATA).listed(3)[0].clone();
    s.objects.remove(&victim);
    let report = a.verify(&s)?;
    let json = serde_json::to_value(&report)?;
    assert_eq!(json["valid"], false);
    assert_eq!(json["now"], "2026-03-05T12:25:00Z");
    assert_eq!(json["problems"][0]["kind"], "missing");
    assert_eq!(json["problems"][0]["object"], victim.as_str());
    assert!(
        json["problems"][0]["expected"]
            .as_str()
            .is_some_and(|e| e.contains("sha256"))
    );
    assert_eq!(json["counts"]["pending_files"], 2);
    assert_eq!(json["chains"][1]["tracker"], "system");
    let clean = serde_json::to_value(a.verify(&a.objects)?)?;
    assert_eq!(clean["valid"], true);
    assert_eq!(clean["problems"], serde_json::json!([]));
    Ok(())
}

/// A source that fails: verification could not run, which is not the same as "invalid".
struct Broken;

impl ObjectSource for Broken {
    fn list(
        &self,
        _: &str,
    ) -> Result<Vec<trailwatch_integrity::ListedObject>, trailwatch_integrity::SourceError> {
        Err(trailwatch_integrity::SourceError(
            "connection refused".to_owned(),
        ))
    }
    fn get(&self, _: &str) -> Result<Option<Vec<u8>>, trailwatch_integrity::SourceError> {
        Err(trailwatch_integrity::SourceError(
            "connection refused".to_owned(),
        ))
    }
}

#[test]
fn a_failing_source_is_an_error_not_a_report() {
    let a = archive();
    let err = verify(&Broken, &a.key.public_key(), None, None, a.now);
    assert!(
        matches!(&err, Err(e) if e.to_string() == "cannot list CloudTraces/: connection refused"),
        "{err:?}"
    );
    let empty = verify(
        &MemorySource::default(),
        &a.key.public_key(),
        None,
        None,
        a.now,
    );
    assert!(empty.is_ok_and(|r| r.valid() && r.chains.is_empty()));
}

/// Counts the objects fetched.
struct Counting<'a> {
    inner: &'a MemorySource,
    fetched: std::sync::Mutex<Vec<String>>,
}

impl ObjectSource for Counting<'_> {
    fn list(
        &self,
        prefix: &str,
    ) -> Result<Vec<trailwatch_integrity::ListedObject>, trailwatch_integrity::SourceError> {
        self.inner.list(prefix)
    }
    fn get(&self, key: &str) -> Result<Option<Vec<u8>>, trailwatch_integrity::SourceError> {
        self.fetched
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .push(key.to_owned());
        self.inner.get(key)
    }
}

#[test]
fn a_grown_trace_file_is_altered_and_never_read() -> TestResult {
    let a = archive();
    let victim = a.tracker(SYSTEM).listed(1)[0].clone();
    let mut s = a.objects.clone();
    let size = {
        let bytes = s.objects.get_mut(&victim).ok_or("victim")?;
        bytes.extend_from_slice(&[0u8; 4096]);
        bytes.len()
    };
    let counting = Counting {
        inner: &s,
        fetched: std::sync::Mutex::new(Vec::new()),
    };
    let report = a.verify(&counting)?;
    assert_eq!(
        kinds(&report),
        vec![pair("altered", &victim)],
        "{}",
        show(&report)
    );
    assert_eq!(
        report.problems[0].actual.as_deref(),
        Some(format!("{size} bytes (not read: larger than listed)").as_str())
    );
    let fetched = counting
        .fetched
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .clone();
    assert!(!fetched.contains(&victim));
    // Everything else was fetched exactly once.
    let unique: BTreeSet<&String> = fetched.iter().collect();
    assert_eq!(unique.len(), fetched.len());
    Ok(())
}
