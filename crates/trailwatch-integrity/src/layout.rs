//! Object keys of the archive: the CTS layout, built and parsed back.
//!
//! ```text
//! CloudTraces/{region}/{Y}/{M}/{D}/{tracker}/{service}/{prefix}_CloudTrace_{region}_{time}_{16 hex}.json.gz
//! CloudTraces/{region}/{Y}/{M}/{D}/{tracker}/{prefix}_CloudTrace_{region}_{time}_{16 hex}.json.gz   (not sorted by service)
//! CloudTraces/{region}/{Y}/{M}/{D}/{tracker}/Records/{kind}/{prefix}_CloudTrace-Records_{region}_{time}_{16 hex}.json.gz
//! CloudTraces/{region}/{Y}/{M}/{D}/{tracker}/Digest/{prefix}_CloudTrace-Digest_{region}_{time}.json.gz
//! ```
//!
//! `{time}` is `YYYY-MM-DDTHH-mm-ssZ` (UTC, whole seconds): the upload time of a trace or record
//! file, the period end of a digest. `{Y}/{M}/{D}` is the date of that same time.
//!
//! Choices where CTS's documentation is ambiguous (`formats/cloud-apis.md` §3.1, §3.3):
//! - **Month and day are not zero-padded** in the directory (`2017/3/28`), as in every CTS example.
//!   The parser also accepts zero-padded directories (`2017/03/28`), so archives written by other
//!   tools read back; it checks that the directory date is the date in the file name.
//! - **The region part of the file name is the region only** (no `-{project}` suffix and never the
//!   literal `/` of one CTS example). The project is recorded inside each digest (`project_id`).
//!   So one chain is identified by bucket, region, tracker name and file prefix ([`Layout`]); two
//!   projects must not share all four (the trackers API keeps them apart).
//! - **The file prefix is part of the file name** and is omitted together with its `_` when empty
//!   (`CloudTrace_eu-de_…`).
//! - **One digest chain per tracker, covering every service**, so the digest directory has no
//!   `{service}` segment (`…/{tracker}/Digest/{file}`). Per-service chains would let someone delete
//!   a whole service — its trace files and its entire digest chain — without leaving a trace;
//!   with one chain per tracker, every file of the tracker is listed by the same signed chain.
//! - **Record files** (alarms published, delivery receipts) live beside the trace files under
//!   `…/{tracker}/Records/{alarm|receipt}/` and are listed in the same digests with their `kind`.
//!   `Digest` and `Records` are therefore not valid service names.
//! - `compress_type=json` files end in `.json` instead of `.json.gz`; digests are always gzip.
//!
//! Keys are parsed from the right (random suffix, time, region), so a file prefix may itself
//! contain `_` or even `CloudTrace`.

use std::fmt;

use chrono::{DateTime, Datelike, NaiveDate, NaiveDateTime, NaiveTime, SubsecRound, Utc};
use serde::{Deserialize, Serialize};

/// The first segment of every archive key.
pub const ROOT: &str = "CloudTraces";
/// The directory (below the tracker) that holds a chain's digests.
pub const DIGEST_DIR: &str = "Digest";
/// The directory (below the tracker) that holds record files.
pub const RECORDS_DIR: &str = "Records";

const TRACE_MARKER: &str = "CloudTrace";
const DIGEST_MARKER: &str = "CloudTrace-Digest";
const RECORDS_MARKER: &str = "CloudTrace-Records";
const MAX_SEGMENT: usize = 64;

/// A key or a key part that does not fit the layout.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LayoutError {
    /// A name that goes into a key (region, tracker, service, file prefix) is not allowed.
    #[error("invalid {field} {value:?}: {reason}")]
    InvalidName {
        /// Which name (`region`, `tracker`, `service`, `file prefix`).
        field: &'static str,
        /// The rejected value.
        value: String,
        /// Why, as a sentence fragment.
        reason: String,
    },
    /// An object key that is not an archive key.
    #[error("{key:?} is not an archive key: {reason}")]
    NotAnArchiveKey {
        /// The key.
        key: String,
        /// What does not fit.
        reason: String,
    },
    /// A time outside the years 0000–9999 that the key format can hold.
    #[error("time {0} cannot be written as YYYY-MM-DDTHH-mm-ssZ")]
    TimeOutOfRange(String),
}

/// How a trace or record file is stored (`obs_info.compress_type`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    /// gzip (level 6), `.json.gz`. The default, and always used for digests.
    #[default]
    Gzip,
    /// Plain JSON, `.json`.
    Json,
}

impl Compression {
    /// The file name extension, with its leading dot.
    pub fn extension(self) -> &'static str {
        match self {
            Compression::Gzip => ".json.gz",
            Compression::Json => ".json",
        }
    }
}

/// The two kinds of record file chained beside the trace files.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RecordKind {
    /// Alarms published (SMN messages sent because of a trace or a log line).
    Alarm,
    /// Delivery receipts: who was sent an alarm, when, and with what outcome.
    Receipt,
}

impl RecordKind {
    /// The name used in keys and in digests (`alarm`, `receipt`).
    pub fn as_str(self) -> &'static str {
        match self {
            RecordKind::Alarm => "alarm",
            RecordKind::Receipt => "receipt",
        }
    }

    fn parse(s: &str) -> Option<RecordKind> {
        match s {
            "alarm" => Some(RecordKind::Alarm),
            "receipt" => Some(RecordKind::Receipt),
            _ => None,
        }
    }
}

/// What a file listed in a digest holds (`kind` of a `log_files` entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileKind {
    /// A CTS trace file.
    Trace,
    /// A record file of alarms.
    Alarm,
    /// A record file of delivery receipts.
    Receipt,
}

impl FileKind {
    /// `trace`, `alarm` or `receipt`.
    pub fn as_str(self) -> &'static str {
        match self {
            FileKind::Trace => "trace",
            FileKind::Alarm => "alarm",
            FileKind::Receipt => "receipt",
        }
    }
}

impl From<RecordKind> for FileKind {
    fn from(k: RecordKind) -> FileKind {
        match k {
            RecordKind::Alarm => FileKind::Alarm,
            RecordKind::Receipt => FileKind::Receipt,
        }
    }
}

impl fmt::Display for FileKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where one tracker's objects go: region, tracker name and file prefix. It identifies a digest
/// chain within a bucket. Built by [`Layout::new`], so every part is valid.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize)]
pub struct Layout {
    region: String,
    tracker: String,
    file_prefix: String,
}

impl fmt::Display for Layout {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{ROOT}/{}/…/{}", self.region, self.tracker)?;
        if !self.file_prefix.is_empty() {
            write!(f, " (prefix {})", self.file_prefix)?;
        }
        Ok(())
    }
}

impl Layout {
    /// Checks the parts:
    /// - `region`: 1–64 of `[a-z0-9-]` (`eu-de`, `local`);
    /// - `tracker`: 1–64 of `[A-Za-z0-9_-]` (`system`, data tracker names);
    /// - `file_prefix`: 0–64 of `[A-Za-z0-9._-]` (CTS `file_prefix_name`).
    pub fn new(region: &str, tracker: &str, file_prefix: &str) -> Result<Layout, LayoutError> {
        check_name("region", region, 1, |c| {
            c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-'
        })?;
        check_name("tracker", tracker, 1, |c| {
            c.is_ascii_alphanumeric() || c == '_' || c == '-'
        })?;
        check_name("file prefix", file_prefix, 0, |c| {
            c.is_ascii_alphanumeric() || c == '_' || c == '-' || c == '.'
        })?;
        Ok(Layout {
            region: region.to_owned(),
            tracker: tracker.to_owned(),
            file_prefix: file_prefix.to_owned(),
        })
    }

    /// The region.
    pub fn region(&self) -> &str {
        &self.region
    }

    /// The tracker name.
    pub fn tracker(&self) -> &str {
        &self.tracker
    }

    /// The file prefix (`obs_info.file_prefix_name`), possibly empty.
    pub fn file_prefix(&self) -> &str {
        &self.file_prefix
    }

    /// The key of a trace file uploaded at `time` (sub-seconds dropped). `service` is `None`
    /// when the tracker does not sort by service (`is_sort_by_service=false`); `random` becomes
    /// the 16 hex digits that make the name unique.
    pub fn trace_file_key(
        &self,
        service: Option<&str>,
        time: DateTime<Utc>,
        random: [u8; 8],
        compression: Compression,
    ) -> Result<String, LayoutError> {
        let mut key = self.directory(time)?;
        if let Some(service) = service {
            check_service(service)?;
            key.push_str(service);
            key.push('/');
        }
        self.push_name(&mut key, TRACE_MARKER, time, Some(random), compression)?;
        Ok(key)
    }

    /// The key of a record file of `kind` uploaded at `time`.
    pub fn record_file_key(
        &self,
        kind: RecordKind,
        time: DateTime<Utc>,
        random: [u8; 8],
        compression: Compression,
    ) -> Result<String, LayoutError> {
        let mut key = self.directory(time)?;
        key.push_str(RECORDS_DIR);
        key.push('/');
        key.push_str(kind.as_str());
        key.push('/');
        self.push_name(&mut key, RECORDS_MARKER, time, Some(random), compression)?;
        Ok(key)
    }

    /// The key of the digest whose period ends at `end`.
    pub fn digest_key(&self, end: DateTime<Utc>) -> Result<String, LayoutError> {
        let mut key = self.directory(end)?;
        key.push_str(DIGEST_DIR);
        key.push('/');
        self.push_name(&mut key, DIGEST_MARKER, end, None, Compression::Gzip)?;
        Ok(key)
    }

    /// `CloudTraces/{region}/{Y}/{M}/{D}/{tracker}/`.
    fn directory(&self, time: DateTime<Utc>) -> Result<String, LayoutError> {
        let y = time.year();
        if !(0..=9999).contains(&y) {
            return Err(LayoutError::TimeOutOfRange(time.to_rfc3339()));
        }
        Ok(format!(
            "{ROOT}/{}/{}/{}/{}/{}/",
            self.region,
            y,
            time.month(),
            time.day(),
            self.tracker
        ))
    }

    fn push_name(
        &self,
        key: &mut String,
        marker: &str,
        time: DateTime<Utc>,
        random: Option<[u8; 8]>,
        compression: Compression,
    ) -> Result<(), LayoutError> {
        if !self.file_prefix.is_empty() {
            key.push_str(&self.file_prefix);
            key.push('_');
        }
        key.push_str(marker);
        key.push('_');
        key.push_str(&self.region);
        key.push('_');
        key.push_str(&format_time(time)?);
        if let Some(random) = random {
            key.push('_');
            key.push_str(&hex::encode(random));
        }
        key.push_str(compression.extension());
        Ok(())
    }
}

/// What an archive key names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ObjectKind {
    /// A trace file; `service` is `None` when the tracker does not sort by service.
    Trace {
        /// The service directory.
        service: Option<String>,
    },
    /// A record file.
    Record(RecordKind),
    /// A digest file.
    Digest,
}

/// An archive key taken apart by [`parse_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedKey {
    /// Region, tracker and file prefix: the digest chain the object belongs to.
    pub layout: Layout,
    /// Trace, record or digest.
    pub kind: ObjectKind,
    /// The time in the file name: upload time of a trace or record file, period end of a digest.
    pub time: DateTime<Utc>,
    /// The 16-hex random suffix (trace and record files).
    pub random: Option<[u8; 8]>,
    /// `.json.gz` or `.json`.
    pub compression: Compression,
}

impl ParsedKey {
    /// The kind of file a digest lists this object as, `None` for a digest.
    pub fn file_kind(&self) -> Option<FileKind> {
        match self.kind {
            ObjectKind::Trace { .. } => Some(FileKind::Trace),
            ObjectKind::Record(k) => Some(k.into()),
            ObjectKind::Digest => None,
        }
    }
}

/// Takes an archive key apart; the inverse of the `Layout::*_key` functions (and lenient about
/// zero-padded month and day directories).
pub fn parse_key(key: &str) -> Result<ParsedKey, LayoutError> {
    let fail = |reason: &str| LayoutError::NotAnArchiveKey {
        key: key.to_owned(),
        reason: reason.to_owned(),
    };
    let segs: Vec<&str> = key.split('/').collect();
    if segs.first() != Some(&ROOT) {
        return Err(fail("it does not start with CloudTraces/"));
    }
    if segs.len() < 7 {
        return Err(fail("too few path segments"));
    }
    let region = segs[1];
    let date = parse_date(segs[2], segs[3], segs[4])
        .ok_or_else(|| fail("the year/month/day directories are not a date"))?;
    let tracker = segs[5];
    let name = segs[segs.len() - 1];
    let (kind, marker) = match (segs.len(), segs[6]) {
        (8, DIGEST_DIR) => (ObjectKind::Digest, DIGEST_MARKER),
        (9, RECORDS_DIR) => {
            let kind = RecordKind::parse(segs[7])
                .ok_or_else(|| fail("unknown record kind (alarm or receipt)"))?;
            (ObjectKind::Record(kind), RECORDS_MARKER)
        }
        (7, _) => (ObjectKind::Trace { service: None }, TRACE_MARKER),
        (8, service) => {
            check_service(service).map_err(|e| fail(&e.to_string()))?;
            (
                ObjectKind::Trace {
                    service: Some(service.to_owned()),
                },
                TRACE_MARKER,
            )
        }
        _ => return Err(fail("unexpected number of path segments")),
    };

    let (stem, compression) = if let Some(s) = name.strip_suffix(".json.gz") {
        (s, Compression::Gzip)
    } else if let Some(s) = name.strip_suffix(".json") {
        (s, Compression::Json)
    } else {
        return Err(fail("the file name does not end in .json.gz or .json"));
    };
    if kind == ObjectKind::Digest && compression != Compression::Gzip {
        return Err(fail("a digest file name must end in .json.gz"));
    }
    let (stem, random) = if kind == ObjectKind::Digest {
        (stem, None)
    } else {
        let (rest, hex16) = stem
            .rsplit_once('_')
            .ok_or_else(|| fail("no random suffix in the file name"))?;
        let mut random = [0u8; 8];
        if hex16.len() != 16
            || hex16.bytes().any(|b| b.is_ascii_uppercase())
            || hex::decode_to_slice(hex16, &mut random).is_err()
        {
            return Err(fail("the random suffix is not 16 lowercase hex digits"));
        }
        (rest, Some(random))
    };
    let (rest, time) = stem
        .rsplit_once('_')
        .ok_or_else(|| fail("no time in the file name"))?;
    let time = parse_time(time).ok_or_else(|| fail("the time is not YYYY-MM-DDTHH-mm-ssZ"))?;
    if time.date_naive() != date {
        return Err(fail(
            "the directory date is not the date of the time in the file name",
        ));
    }
    let rest = rest
        .strip_suffix(region)
        .and_then(|r| r.strip_suffix('_'))
        .ok_or_else(|| fail("the region in the file name is not the region directory"))?;
    let prefix = if rest == marker {
        ""
    } else {
        rest.strip_suffix(marker)
            .and_then(|r| r.strip_suffix('_'))
            .filter(|p| !p.is_empty())
            .ok_or_else(|| fail(&format!("the file name does not contain _{marker}_")))?
    };
    let layout = Layout::new(region, tracker, prefix).map_err(|e| fail(&e.to_string()))?;
    Ok(ParsedKey {
        layout,
        kind,
        time,
        random,
        compression,
    })
}

/// Formats a time as CTS does in names and digests: `YYYY-MM-DDTHH-mm-ssZ` (UTC, sub-seconds
/// dropped).
pub fn format_time(time: DateTime<Utc>) -> Result<String, LayoutError> {
    if !(0..=9999).contains(&time.year()) {
        return Err(LayoutError::TimeOutOfRange(time.to_rfc3339()));
    }
    Ok(time.format("%Y-%m-%dT%H-%M-%SZ").to_string())
}

/// Parses `YYYY-MM-DDTHH-mm-ssZ` strictly (every field zero-padded, UTC).
pub fn parse_time(s: &str) -> Option<DateTime<Utc>> {
    let b = s.as_bytes();
    if b.len() != 20
        || b[4] != b'-'
        || b[7] != b'-'
        || b[10] != b'T'
        || b[13] != b'-'
        || b[16] != b'-'
        || b[19] != b'Z'
    {
        return None;
    }
    let num = |from: usize, to: usize| -> Option<u32> {
        let part = s.get(from..to)?;
        if !part.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        part.parse().ok()
    };
    let date = NaiveDate::from_ymd_opt(i32::try_from(num(0, 4)?).ok()?, num(5, 7)?, num(8, 10)?)?;
    let time = NaiveTime::from_hms_opt(num(11, 13)?, num(14, 16)?, num(17, 19)?)?;
    Some(NaiveDateTime::new(date, time).and_utc())
}

/// Drops sub-seconds: every time in keys and digests has whole seconds.
pub fn whole_seconds(time: DateTime<Utc>) -> DateTime<Utc> {
    time.trunc_subsecs(0)
}

fn parse_date(y: &str, m: &str, d: &str) -> Option<NaiveDate> {
    let part = |s: &str, max_len: usize| -> Option<u32> {
        if s.is_empty() || s.len() > max_len || !s.bytes().all(|c| c.is_ascii_digit()) {
            return None;
        }
        s.parse().ok()
    };
    if y.len() != 4 {
        return None;
    }
    NaiveDate::from_ymd_opt(i32::try_from(part(y, 4)?).ok()?, part(m, 2)?, part(d, 2)?)
}

fn check_name(
    field: &'static str,
    value: &str,
    min: usize,
    allowed: impl Fn(char) -> bool,
) -> Result<(), LayoutError> {
    let fail = |reason: String| {
        Err(LayoutError::InvalidName {
            field,
            value: value.to_owned(),
            reason,
        })
    };
    if value.len() < min || value.len() > MAX_SEGMENT {
        return fail(format!(
            "must be {min} to {MAX_SEGMENT} characters long (it has {})",
            value.chars().count()
        ));
    }
    if let Some(c) = value.chars().find(|&c| !allowed(c)) {
        return fail(format!("{c:?} is not allowed"));
    }
    Ok(())
}

fn check_service(service: &str) -> Result<(), LayoutError> {
    check_name("service", service, 1, |c| {
        c.is_ascii_alphanumeric() || c == '_' || c == '-'
    })?;
    if service == DIGEST_DIR || service == RECORDS_DIR {
        return Err(LayoutError::InvalidName {
            field: "service",
            value: service.to_owned(),
            reason: "is reserved for the archive's own directories".to_owned(),
        });
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    fn t(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .unwrap_or_else(|| panic!("bad test time"))
    }

    const RND: [u8; 8] = [0x21, 0xd3, 0x6c, 0xed, 0x8c, 0x8a, 0xf7, 0x1e];

    #[test]
    fn trace_key_follows_the_cts_example() -> Result<(), LayoutError> {
        let layout = Layout::new("eu-de", "system", "mylog")?;
        let key = layout.trace_file_key(
            Some("ECS"),
            t(2016, 5, 30, 16, 20, 56),
            RND,
            Compression::Gzip,
        )?;
        assert_eq!(
            key,
            "CloudTraces/eu-de/2016/5/30/system/ECS/mylog_CloudTrace_eu-de_2016-05-30T16-20-56Z_21d36ced8c8af71e.json.gz"
        );
        let parsed = parse_key(&key)?;
        assert_eq!(parsed.layout, layout);
        assert_eq!(
            parsed.kind,
            ObjectKind::Trace {
                service: Some("ECS".into())
            }
        );
        assert_eq!(parsed.time, t(2016, 5, 30, 16, 20, 56));
        assert_eq!(parsed.random, Some(RND));
        assert_eq!(parsed.file_kind(), Some(FileKind::Trace));
        Ok(())
    }

    #[test]
    fn empty_prefix_is_omitted_with_its_underscore() -> Result<(), LayoutError> {
        let layout = Layout::new("eu-de", "system", "")?;
        let key =
            layout.trace_file_key(None, t(2017, 11, 15, 10, 12, 10), RND, Compression::Json)?;
        assert_eq!(
            key,
            "CloudTraces/eu-de/2017/11/15/system/CloudTrace_eu-de_2017-11-15T10-12-10Z_21d36ced8c8af71e.json"
        );
        let parsed = parse_key(&key)?;
        assert_eq!(parsed.layout, layout);
        assert_eq!(parsed.kind, ObjectKind::Trace { service: None });
        assert_eq!(parsed.compression, Compression::Json);
        Ok(())
    }

    #[test]
    fn digest_and_record_keys_round_trip() -> Result<(), LayoutError> {
        let layout = Layout::new("eu-de", "data_1", "a_CloudTrace_b")?;
        let end = t(2017, 3, 28, 2, 0, 0);
        let dkey = layout.digest_key(end)?;
        assert_eq!(
            dkey,
            "CloudTraces/eu-de/2017/3/28/data_1/Digest/a_CloudTrace_b_CloudTrace-Digest_eu-de_2017-03-28T02-00-00Z.json.gz"
        );
        let parsed = parse_key(&dkey)?;
        assert_eq!(parsed.layout, layout);
        assert_eq!(parsed.kind, ObjectKind::Digest);
        assert_eq!(parsed.time, end);
        assert_eq!(parsed.random, None);

        let rkey = layout.record_file_key(RecordKind::Receipt, end, RND, Compression::Gzip)?;
        assert_eq!(
            rkey,
            "CloudTraces/eu-de/2017/3/28/data_1/Records/receipt/a_CloudTrace_b_CloudTrace-Records_eu-de_2017-03-28T02-00-00Z_21d36ced8c8af71e.json.gz"
        );
        let parsed = parse_key(&rkey)?;
        assert_eq!(parsed.kind, ObjectKind::Record(RecordKind::Receipt));
        assert_eq!(parsed.file_kind(), Some(FileKind::Receipt));
        assert_eq!(parsed.layout, layout);
        Ok(())
    }

    #[test]
    fn zero_padded_directories_are_read_too() -> Result<(), LayoutError> {
        let key = "CloudTraces/eu-de/2016/05/09/system/ECS/CloudTrace_eu-de_2016-05-09T16-20-56Z_21d36ced8c8af71e.json.gz";
        assert_eq!(parse_key(key)?.time, t(2016, 5, 9, 16, 20, 56));
        Ok(())
    }

    #[test]
    fn foreign_keys_are_rejected_with_a_reason() {
        let reason = |key: &str| match parse_key(key) {
            Err(LayoutError::NotAnArchiveKey { reason, .. }) => reason,
            other => panic!("{key}: expected an error, got {other:?}"),
        };
        let good = "CloudTraces/eu-de/2016/5/9/system/ECS/CloudTrace_eu-de_2016-05-09T16-20-56Z_21d36ced8c8af71e.json.gz";
        assert!(parse_key(good).is_ok());
        assert!(reason("Other/eu-de/x").contains("CloudTraces/"));
        assert!(reason(&good.replace("/9/", "/10/")).contains("directory date"));
        assert!(reason(&good.replace("_21d36", "_21D36")).contains("16 lowercase hex"));
        assert!(reason(&good.replace("ced8c8af71e", "ced8c8af71")).contains("16 lowercase hex"));
        assert!(reason(&good.replace(".json.gz", ".txt")).contains(".json.gz"));
        assert!(reason(&good.replace("T16-20", "T16:20")).contains("YYYY"));
        assert!(reason(&good.replace("_eu-de_", "_eu-nl_")).contains("region"));
        assert!(reason(&good.replace("CloudTrace_", "CloudTrail_")).contains("_CloudTrace_"));
        let r = reason(&good.replace("/ECS/", "/Digest/"));
        // A trace file's name in the digest directory: its random suffix is taken for the time.
        assert!(r.contains("YYYY"), "{r}");
        assert!(reason(&good.replace("/ECS/", "/E/C/")).contains("segments"));
        assert!(reason(&good.replace("/2016/", "/16/")).contains("date"));
        // A record file with an unknown kind, and one whose name is a trace file's.
        assert!(reason(&good.replace("/ECS/", "/Records/mail/")).contains("record kind"));
        assert!(reason(&good.replace("/ECS/", "/Records/alarm/")).contains("CloudTrace-Records"));
    }

    #[test]
    fn bad_names_say_why() {
        let err = |r: Result<Layout, LayoutError>| match r {
            Err(e) => e.to_string(),
            Ok(l) => panic!("accepted {l:?}"),
        };
        assert!(err(Layout::new("EU", "system", "")).contains("'E' is not allowed"));
        assert!(err(Layout::new("", "system", "")).contains("1 to 64"));
        assert!(err(Layout::new("eu-de", "sys/tem", "")).contains("'/'"));
        assert!(err(Layout::new("eu-de", "system", "my prefix")).contains("' '"));
        assert!(err(Layout::new("eu-de", "system", &"p".repeat(65))).contains("(it has 65)"));
        let layout = Layout::new("eu-de", "system", "").unwrap_or_else(|e| panic!("{e}"));
        let now = t(2020, 1, 1, 0, 0, 0);
        for bad in ["Digest", "Records", "", "E/C"] {
            assert!(
                layout
                    .trace_file_key(Some(bad), now, RND, Compression::Gzip)
                    .is_err(),
                "{bad}"
            );
        }
    }

    #[test]
    fn times_are_whole_seconds_and_strict() {
        let time = t(2026, 3, 5, 7, 8, 9) + chrono::Duration::milliseconds(999);
        assert_eq!(format_time(time).as_deref(), Ok("2026-03-05T07-08-09Z"));
        assert_eq!(whole_seconds(time), t(2026, 3, 5, 7, 8, 9));
        assert_eq!(
            parse_time("2026-03-05T07-08-09Z"),
            Some(t(2026, 3, 5, 7, 8, 9))
        );
        for bad in [
            "2026-3-05T07-08-09Z",
            "2026-03-05T07-08-09",
            "2026-03-05T07:08:09Z",
            "2026-02-30T07-08-09Z",
            "2026-03-05T24-08-09Z",
            "+026-03-05T07-08-09Z",
        ] {
            assert_eq!(parse_time(bad), None, "{bad}");
        }
    }
}
