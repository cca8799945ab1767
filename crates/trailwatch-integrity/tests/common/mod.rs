//! A simulated archiver: several trackers writing trace and record files every 15 minutes and a
//! signed digest every hour, on a controlled clock.

#![allow(dead_code)]

pub mod folder;

use chrono::{DateTime, TimeDelta, TimeZone, Utc};
use serde_json::json;
use trailwatch_integrity::{
    Compression, DigestInput, FileEntry, Layout, MemorySource, ObjectSource, PreviousDigest,
    RecordFileBuilder, RecordKind, Report, SignedDigest, SigningKey, TraceFileBuilder, sign_digest,
    verify,
};

pub type TestResult = Result<(), Box<dyn std::error::Error>>;
pub type Res<T> = Result<T, Box<dyn std::error::Error>>;

pub const BUCKET: &str = "audit";
pub const PROJECT: &str = "0a1b2c3d4e5f60718293a4b5c6d7e8f9";

/// 2026-03-05 at `h:m:s` UTC.
pub fn t(h: u32, m: u32, s: u32) -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 3, 5, h, m, s)
        .single()
        .unwrap_or_else(|| panic!("bad test time {h}:{m}:{s}"))
}

pub fn server_key() -> SigningKey {
    SigningKey::from_seed(&[0x5a; 32])
}

pub fn attacker_key() -> SigningKey {
    SigningKey::from_seed(&[0xa5; 32])
}

/// One tracker's archiver state and what it wrote.
#[derive(Debug)]
pub struct Tracker {
    pub layout: Layout,
    /// `None`: the tracker does not sort by service.
    pub services: Vec<Option<&'static str>>,
    pub with_records: bool,
    pub compression: Compression,
    /// Every digest written, oldest first.
    pub digests: Vec<SignedDigest>,
    /// Files written since the last digest.
    pub open_files: Vec<FileEntry>,
    pub period_start: DateTime<Utc>,
    pub previous: Option<PreviousDigest>,
}

impl Tracker {
    pub fn digest_key(&self, i: usize) -> String {
        self.digests[i].key.clone()
    }

    /// The files listed by digest `i`.
    pub fn listed(&self, i: usize) -> Vec<String> {
        self.digests[i]
            .digest
            .log_files
            .iter()
            .map(|f| f.object.clone())
            .collect()
    }
}

/// The simulated archive: the bucket's objects plus what each tracker wrote.
#[derive(Debug)]
pub struct Archive {
    pub key: SigningKey,
    pub objects: MemorySource,
    pub trackers: Vec<Tracker>,
    pub now: DateTime<Utc>,
    counter: u64,
}

pub const SYSTEM: usize = 0;
pub const DATA: usize = 1;

impl Archive {
    pub fn new(start: DateTime<Utc>) -> Res<Archive> {
        let system = Tracker {
            layout: Layout::new("eu-de", "system", "")?,
            services: vec![Some("ECS"), Some("IAM"), Some("OBS")],
            with_records: true,
            compression: Compression::Gzip,
            digests: vec![],
            open_files: vec![],
            period_start: start,
            previous: None,
        };
        let data = Tracker {
            layout: Layout::new("eu-de", "data-obs", "audit")?,
            services: vec![None],
            with_records: false,
            compression: Compression::Json,
            digests: vec![],
            open_files: vec![],
            period_start: start,
            previous: None,
        };
        Ok(Archive {
            key: server_key(),
            objects: MemorySource::default(),
            trackers: vec![system, data],
            now: start,
            counter: 0,
        })
    }

    /// The standard archive of the tamper suite, 06:00 to 12:25:
    /// - `system` (3 services + alarm and receipt records, gzip): files at :05 :20 :35 :50, hourly
    ///   digests 07:00 … 12:00, then a shutdown digest at 12:20:30 (`digest_end`).
    /// - `data-obs` (prefix `audit`, not sorted by service, plain JSON): the same cycles but
    ///   nothing at all between 08:00 and 09:00 (an empty digest), hourly digests 07:00 … 12:00,
    ///   still running at 12:25 with files at 12:05 and 12:20 pending.
    pub fn standard() -> Res<Archive> {
        let mut a = Archive::new(t(6, 0, 0))?;
        for hour in 6..12 {
            for minute in [5, 20, 35, 50] {
                a.write_cycle(SYSTEM, t(hour, minute, 0))?;
                if hour != 8 {
                    a.write_cycle(DATA, t(hour, minute, 0))?;
                }
            }
            a.close_period(SYSTEM, t(hour + 1, 0, 0), false)?;
            a.close_period(DATA, t(hour + 1, 0, 0), false)?;
        }
        a.write_cycle(SYSTEM, t(12, 5, 0))?;
        a.write_cycle(SYSTEM, t(12, 20, 0))?;
        a.close_period(SYSTEM, t(12, 20, 30), true)?;
        a.write_cycle(DATA, t(12, 5, 0))?;
        a.write_cycle(DATA, t(12, 20, 0))?;
        a.now = t(12, 25, 0);
        Ok(a)
    }

    fn random(&mut self) -> [u8; 8] {
        self.counter += 1;
        self.counter
            .wrapping_mul(0x9e37_79b9_7f4a_7c15)
            .to_be_bytes()
    }

    /// One transfer cycle of tracker `i` at `at`: one trace file per service, plus one alarm and
    /// one receipt file when the tracker archives records.
    pub fn write_cycle(&mut self, i: usize, at: DateTime<Utc>) -> TestResult {
        let services = self.trackers[i].services.clone();
        let compression = self.trackers[i].compression;
        for (n, service) in services.into_iter().enumerate() {
            let mut b = TraceFileBuilder::new(compression);
            let traces = 3 + (self.counter % 5);
            for k in 0..traces {
                let time = at - TimeDelta::seconds(240) + TimeDelta::seconds(k as i64 * 7);
                b.push(&json!({
                    "trace_id": format!("{}-{}-{k}", at.timestamp(), n),
                    "time": time.timestamp_millis(),
                    "service_type": service.unwrap_or("OBS"),
                    "resource_type": "bucket",
                    "trace_name": "createBucket",
                    "trace_rating": "normal",
                    "trace_type": "ConsoleAction",
                    "source_ip": "192.0.2.10",
                    "user": {"name": "alice", "domain": {"name": "acme"}},
                }))?;
            }
            let built = b.finish()?;
            let random = self.random();
            let key = self.trackers[i]
                .layout
                .trace_file_key(service, at, random, compression)?;
            self.trackers[i].open_files.push(built.entry(BUCKET, &key));
            self.objects.objects.insert(key, built.bytes);
        }
        if self.trackers[i].with_records {
            for kind in [RecordKind::Alarm, RecordKind::Receipt] {
                let mut b = RecordFileBuilder::new(kind, compression);
                b.push(
                    &json!({"message_id": format!("m-{}", at.timestamp()), "topic_urn": "urn:smn:eu-de:p:alarms", "subject": "login from unknown address"}),
                    at.timestamp_millis() - 1000,
                )?;
                let built = b.finish()?;
                let random = self.random();
                let key = self.trackers[i]
                    .layout
                    .record_file_key(kind, at, random, compression)?;
                self.trackers[i].open_files.push(built.entry(BUCKET, &key));
                self.objects.objects.insert(key, built.bytes);
            }
        }
        Ok(())
    }

    /// Closes tracker `i`'s period at `end` with a signed digest.
    pub fn close_period(&mut self, i: usize, end: DateTime<Utc>, ending: bool) -> TestResult {
        let tr = &mut self.trackers[i];
        let digest = sign_digest(
            DigestInput {
                layout: &tr.layout,
                project_id: PROJECT,
                bucket: BUCKET,
                start: tr.period_start,
                end,
                ending,
                previous: tr.previous.as_ref(),
                files: std::mem::take(&mut tr.open_files),
            },
            &self.key,
        )?;
        tr.period_start = end;
        tr.previous = Some(digest.previous());
        self.objects
            .objects
            .insert(digest.key.clone(), digest.bytes.clone());
        tr.digests.push(digest);
        Ok(())
    }

    pub fn verify(&self, source: &dyn ObjectSource) -> Res<Report> {
        Ok(verify(
            source,
            &self.key.public_key(),
            None,
            None,
            self.now,
        )?)
    }

    pub fn tracker(&self, i: usize) -> &Tracker {
        &self.trackers[i]
    }
}

/// Every problem as `(kind, object)`, for assertions with readable failures.
pub fn kinds(report: &Report) -> Vec<(String, String)> {
    report
        .problems
        .iter()
        .map(|p| (p.kind.to_string(), p.object.clone()))
        .collect()
}

/// The report as text, for assertion messages.
pub fn show(report: &Report) -> String {
    let mut s = String::new();
    for p in &report.problems {
        s.push_str(&format!("  {p}\n"));
    }
    s
}
