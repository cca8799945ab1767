//! CTS trackers (`formats/cloud-apis.md` §2.2, `docs/specs/trackers.md`): which traces of a
//! project are transferred to which bucket, and how.
//!
//! # Table and invariants
//! - `cts_trackers`: one row per tracker, unique `(project_id, tracker_name)`; at most one
//!   `system` (management) tracker per project (a partial unique index), and it is the one named
//!   `system`. `tracker_type` is `system` or `data`, `status` is `enabled`, `disabled` or `error`
//!   (SQL `CHECK`s).
//! - `obs_info`, `data_bucket` and `exclude_services` are JSON texts of [`ObsInfo`],
//!   [`DataBucket`] and a list of service names; a row whose JSON cannot be read is reported as
//!   [`StoreError::Corrupt`], never guessed at.
//! - `detail` is set only together with `status = 'error'` (by [`set_tracker_status`], the
//!   archiver's report); any other status clears it.
//! - `update_time` is the time of the last configuration change (create or update); the
//!   archiver's status reports do not move it.
//!
//! Validation of names and values is the API's job (`trailwatch-api::trackers`); this module
//! stores what it is given and guards only the invariants above.

use rusqlite::{Connection, OptionalExtension, params};

use crate::sql::CachedStatements;
use serde::{Deserialize, Serialize};

use crate::{Result, StoreError};

pub(crate) const SCHEMA: &str = r#"
CREATE TABLE IF NOT EXISTS cts_trackers (
    tracker_id          TEXT PRIMARY KEY,
    project_id          TEXT NOT NULL,
    domain_id           TEXT NOT NULL,
    tracker_name        TEXT NOT NULL,
    tracker_type        TEXT NOT NULL CHECK (tracker_type IN ('system', 'data')),
    status              TEXT NOT NULL CHECK (status IN ('enabled', 'disabled', 'error')),
    detail              TEXT,
    obs_info            TEXT,
    is_support_validate INTEGER NOT NULL,
    is_lts_enabled      INTEGER NOT NULL,
    data_bucket         TEXT,
    agency_name         TEXT,
    exclude_services    TEXT NOT NULL DEFAULT '[]',
    create_time         INTEGER NOT NULL,
    update_time         INTEGER NOT NULL,
    UNIQUE (project_id, tracker_name)
);
CREATE UNIQUE INDEX IF NOT EXISTS cts_trackers_one_system
    ON cts_trackers(project_id) WHERE tracker_type = 'system';
CREATE INDEX IF NOT EXISTS cts_trackers_status ON cts_trackers(status);
"#;

/// The name of the management tracker, the only name a `system` tracker may have.
pub const SYSTEM_TRACKER_NAME: &str = "system";

/// `system` (management: every trace of the project) or `data` (a data tracker).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackerType {
    System,
    Data,
}

impl TrackerType {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackerType::System => "system",
            TrackerType::Data => "data",
        }
    }

    /// The exact wire value (`system` or `data`), nothing else.
    pub fn parse(s: &str) -> Option<TrackerType> {
        match s {
            "system" => Some(TrackerType::System),
            "data" => Some(TrackerType::Data),
            _ => None,
        }
    }
}

/// `enabled`, `disabled` (by the user), or `error` (reported by the archiver, with a `detail`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TrackerStatus {
    Enabled,
    Disabled,
    Error,
}

impl TrackerStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            TrackerStatus::Enabled => "enabled",
            TrackerStatus::Disabled => "disabled",
            TrackerStatus::Error => "error",
        }
    }

    /// The exact wire value, nothing else.
    pub fn parse(s: &str) -> Option<TrackerStatus> {
        match s {
            "enabled" => Some(TrackerStatus::Enabled),
            "disabled" => Some(TrackerStatus::Disabled),
            "error" => Some(TrackerStatus::Error),
            _ => None,
        }
    }
}

/// How trace files are written: `gzip` (`*.json.gz`, the CTS default) or `json` (uncompressed).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CompressType {
    #[default]
    Gzip,
    Json,
}

impl CompressType {
    pub fn as_str(self) -> &'static str {
        match self {
            CompressType::Gzip => "gzip",
            CompressType::Json => "json",
        }
    }

    pub fn parse(s: &str) -> Option<CompressType> {
        match s {
            "gzip" => Some(CompressType::Gzip),
            "json" => Some(CompressType::Json),
            _ => None,
        }
    }
}

/// Where and how a tracker's trace files are transferred (`obs_info`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ObsInfo {
    /// A bucket name valid under the S3 rules (checked by the API).
    pub bucket_name: String,
    /// The trace-file name prefix (may be empty): 0–64 of `[A-Za-z0-9._-]`.
    pub file_prefix_name: String,
    /// Whether trailwatch creates the bucket (`true`) or expects it to exist.
    pub is_obs_created: bool,
    /// Days trace files are kept in the bucket; `None` = kept until deleted by someone else.
    pub bucket_lifecycle: Option<u32>,
    pub compress_type: CompressType,
    /// Whether the `{service_type}/` directory is part of the object key (default `true`).
    pub is_sort_by_service: bool,
}

/// Which operation kinds of a tracked bucket a data tracker records.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum DataEvent {
    Read,
    Write,
}

impl DataEvent {
    pub fn as_str(self) -> &'static str {
        match self {
            DataEvent::Read => "READ",
            DataEvent::Write => "WRITE",
        }
    }

    pub fn parse(s: &str) -> Option<DataEvent> {
        match s {
            "READ" => Some(DataEvent::Read),
            "WRITE" => Some(DataEvent::Write),
            _ => None,
        }
    }
}

/// The bucket a data tracker tracks (`data_bucket`). The name cannot change after creation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataBucket {
    pub data_bucket_name: String,
    /// Non-empty, no repeats.
    pub data_event: Vec<DataEvent>,
}

/// A tracker as stored.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tracker {
    pub tracker_id: String,
    pub project_id: String,
    pub domain_id: String,
    pub tracker_name: String,
    pub tracker_type: TrackerType,
    pub status: TrackerStatus,
    /// Why `status` is `error` (CTS: `bucketPolicyError`, `noBucket`, `arrears`); `None`
    /// otherwise.
    pub detail: Option<String>,
    /// `None`: traces are not transferred to a bucket.
    pub obs_info: Option<ObsInfo>,
    pub is_support_validate: bool,
    pub is_lts_enabled: bool,
    /// Data trackers only.
    pub data_bucket: Option<DataBucket>,
    /// HW `agency_name` (`cts_admin_trust`), recorded as given.
    pub agency_name: Option<String>,
    /// `management_event_selector.exclude_service` (management tracker only).
    pub exclude_services: Vec<String>,
    /// Milliseconds since the epoch.
    pub create_time: i64,
    pub update_time: i64,
}

const COLUMNS: &str = "tracker_id, project_id, domain_id, tracker_name, tracker_type, status, \
     detail, obs_info, is_support_validate, is_lts_enabled, data_bucket, agency_name, \
     exclude_services, create_time, update_time";

/// A row as read, before its JSON columns are decoded.
struct Row {
    tracker_id: String,
    project_id: String,
    domain_id: String,
    tracker_name: String,
    tracker_type: String,
    status: String,
    detail: Option<String>,
    obs_info: Option<String>,
    is_support_validate: bool,
    is_lts_enabled: bool,
    data_bucket: Option<String>,
    agency_name: Option<String>,
    exclude_services: String,
    create_time: i64,
    update_time: i64,
}

fn read_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<Row> {
    Ok(Row {
        tracker_id: r.get(0)?,
        project_id: r.get(1)?,
        domain_id: r.get(2)?,
        tracker_name: r.get(3)?,
        tracker_type: r.get(4)?,
        status: r.get(5)?,
        detail: r.get(6)?,
        obs_info: r.get(7)?,
        is_support_validate: r.get(8)?,
        is_lts_enabled: r.get(9)?,
        data_bucket: r.get(10)?,
        agency_name: r.get(11)?,
        exclude_services: r.get(12)?,
        create_time: r.get(13)?,
        update_time: r.get(14)?,
    })
}

fn decode(row: Row) -> Result<Tracker> {
    let corrupt = |what: &str, e: &dyn std::fmt::Display| {
        StoreError::Corrupt(format!(
            "tracker `{}` ({}): {what}: {e}",
            row.tracker_name, row.tracker_id
        ))
    };
    let tracker_type = TrackerType::parse(&row.tracker_type)
        .ok_or_else(|| corrupt("tracker_type", &row.tracker_type))?;
    let status = TrackerStatus::parse(&row.status).ok_or_else(|| corrupt("status", &row.status))?;
    let obs_info = match &row.obs_info {
        None => None,
        Some(text) => Some(serde_json::from_str(text).map_err(|e| corrupt("obs_info", &e))?),
    };
    let data_bucket = match &row.data_bucket {
        None => None,
        Some(text) => Some(serde_json::from_str(text).map_err(|e| corrupt("data_bucket", &e))?),
    };
    let exclude_services: Vec<String> =
        serde_json::from_str(&row.exclude_services).map_err(|e| corrupt("exclude_services", &e))?;
    Ok(Tracker {
        tracker_id: row.tracker_id,
        project_id: row.project_id,
        domain_id: row.domain_id,
        tracker_name: row.tracker_name,
        tracker_type,
        status,
        detail: row.detail,
        obs_info,
        is_support_validate: row.is_support_validate,
        is_lts_enabled: row.is_lts_enabled,
        data_bucket,
        agency_name: row.agency_name,
        exclude_services,
        create_time: row.create_time,
        update_time: row.update_time,
    })
}

fn to_json<T: Serialize>(v: &T) -> Result<String> {
    serde_json::to_string(v).map_err(|e| StoreError::Corrupt(format!("cannot encode: {e}")))
}

/// The JSON columns of a tracker: (obs_info, data_bucket, exclude_services).
fn json_columns(t: &Tracker) -> Result<(Option<String>, Option<String>, String)> {
    let obs = t.obs_info.as_ref().map(to_json).transpose()?;
    let data = t.data_bucket.as_ref().map(to_json).transpose()?;
    Ok((obs, data, to_json(&t.exclude_services)?))
}

fn query(c: &Connection, sql: &str, params: impl rusqlite::Params) -> Result<Vec<Tracker>> {
    let mut st = c.prepare_cached(sql)?;
    let rows = st
        .query_map(params, read_row)?
        .collect::<rusqlite::Result<Vec<_>>>()?;
    rows.into_iter().map(decode).collect()
}

/// Stores a new tracker. A tracker of that name in the project, or a second `system` tracker,
/// is a [`StoreError::Conflict`]; a `system` tracker not named `system` is refused the same way.
pub fn create_tracker(c: &Connection, t: &Tracker) -> Result<()> {
    if t.tracker_type == TrackerType::System && t.tracker_name != SYSTEM_TRACKER_NAME {
        return Err(StoreError::Conflict(format!(
            "a management tracker must be named `{SYSTEM_TRACKER_NAME}`, not `{}`",
            t.tracker_name
        )));
    }
    if tracker(c, &t.project_id, &t.tracker_name)?.is_some() {
        return Err(StoreError::Conflict(format!(
            "a tracker named `{}` already exists in this project",
            t.tracker_name
        )));
    }
    if t.tracker_type == TrackerType::System
        && !list_trackers(c, &t.project_id, None, Some(TrackerType::System))?.is_empty()
    {
        return Err(StoreError::Conflict(
            "this project already has a management tracker".into(),
        ));
    }
    let (obs, data, exclude) = json_columns(t)?;
    c.execute_cached(
        &format!("INSERT INTO cts_trackers({COLUMNS}) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15)"),
        params![
            t.tracker_id,
            t.project_id,
            t.domain_id,
            t.tracker_name,
            t.tracker_type.as_str(),
            t.status.as_str(),
            status_detail(t.status, t.detail.as_deref()),
            obs,
            t.is_support_validate,
            t.is_lts_enabled,
            data,
            t.agency_name,
            exclude,
            t.create_time,
            t.update_time,
        ],
    )?;
    crate::archive::start_tracker(c, &t.tracker_id)?;
    Ok(())
}

/// `detail` is kept only with `status = error`.
fn status_detail(status: TrackerStatus, detail: Option<&str>) -> Option<&str> {
    match status {
        TrackerStatus::Error => detail,
        TrackerStatus::Enabled | TrackerStatus::Disabled => None,
    }
}

/// The tracker named `tracker_name` in the project (exact name).
pub fn tracker(c: &Connection, project_id: &str, tracker_name: &str) -> Result<Option<Tracker>> {
    let row = c
        .query_row(
            &format!(
                "SELECT {COLUMNS} FROM cts_trackers WHERE project_id = ?1 AND tracker_name = ?2"
            ),
            params![project_id, tracker_name],
            read_row,
        )
        .optional()?;
    row.map(decode).transpose()
}

/// The tracker with this id, in whatever project.
pub fn tracker_by_id(c: &Connection, tracker_id: &str) -> Result<Option<Tracker>> {
    let row = c
        .query_row(
            &format!("SELECT {COLUMNS} FROM cts_trackers WHERE tracker_id = ?1"),
            params![tracker_id],
            read_row,
        )
        .optional()?;
    row.map(decode).transpose()
}

/// The project's trackers, optionally only the one named `tracker_name` and/or of one type:
/// the management tracker first, then data trackers by creation time and name.
pub fn list_trackers(
    c: &Connection,
    project_id: &str,
    tracker_name: Option<&str>,
    tracker_type: Option<TrackerType>,
) -> Result<Vec<Tracker>> {
    query(
        c,
        &format!(
            "SELECT {COLUMNS} FROM cts_trackers
             WHERE project_id = ?1
               AND (?2 IS NULL OR tracker_name = ?2)
               AND (?3 IS NULL OR tracker_type = ?3)
             ORDER BY tracker_type = 'data', create_time, tracker_name"
        ),
        params![
            project_id,
            tracker_name,
            tracker_type.map(TrackerType::as_str)
        ],
    )
}

/// How many trackers of a type the project has.
pub fn count_trackers(c: &Connection, project_id: &str, tracker_type: TrackerType) -> Result<u64> {
    let n: i64 = c.query_row_cached(
        "SELECT COUNT(*) FROM cts_trackers WHERE project_id = ?1 AND tracker_type = ?2",
        params![project_id, tracker_type.as_str()],
        |r| r.get(0),
    )?;
    Ok(n.max(0) as u64)
}

/// Every tracker the archiver serves, across projects: status `enabled` or `error` (a tracker in
/// `error` is still retried until it recovers; only the user's `disabled` stops it). Ordered by
/// project, then name.
pub fn list_enabled_trackers(c: &Connection) -> Result<Vec<Tracker>> {
    query(
        c,
        &format!(
            "SELECT {COLUMNS} FROM cts_trackers WHERE status IN ('enabled', 'error')
             ORDER BY project_id, tracker_name"
        ),
        [],
    )
}

/// Writes the configuration of an existing tracker (found by `tracker_id` within
/// `project_id`): status, detail, obs_info, flags, data_bucket, agency, excluded services and
/// `update_time`. Its id, project, domain, name, type and `create_time` never change. Returns
/// false when no such tracker exists.
pub fn update_tracker(c: &Connection, t: &Tracker) -> Result<bool> {
    if let (TrackerType::System, Some(_)) = (t.tracker_type, &t.data_bucket) {
        return Err(StoreError::Conflict(
            "a management tracker has no data_bucket".into(),
        ));
    }
    let (obs, data, exclude) = json_columns(t)?;
    let n = c.execute_cached(
        "UPDATE cts_trackers SET status = ?3, detail = ?4, obs_info = ?5,
             is_support_validate = ?6, is_lts_enabled = ?7, data_bucket = ?8, agency_name = ?9,
             exclude_services = ?10, update_time = ?11
         WHERE project_id = ?1 AND tracker_id = ?2",
        params![
            t.project_id,
            t.tracker_id,
            t.status.as_str(),
            status_detail(t.status, t.detail.as_deref()),
            obs,
            t.is_support_validate,
            t.is_lts_enabled,
            data,
            t.agency_name,
            exclude,
            t.update_time,
        ],
    )?;
    Ok(n == 1)
}

/// The archiver's report on a tracker: `error` with a `detail` when its bucket cannot be
/// written, `enabled` (detail cleared) once it recovers.
///
/// A tracker the user disabled stays disabled: a report of `enabled` or `error` on a disabled
/// tracker changes nothing (a transfer that was already running when the user disabled it must
/// not revive it). Setting `disabled` always applies. `update_time` does not move. Returns
/// whether a tracker was changed.
pub fn set_tracker_status(
    c: &Connection,
    tracker_id: &str,
    status: TrackerStatus,
    detail: Option<&str>,
) -> Result<bool> {
    let n = c.execute_cached(
        "UPDATE cts_trackers SET status = ?2, detail = ?3
         WHERE tracker_id = ?1 AND (status <> 'disabled' OR ?2 = 'disabled')",
        params![tracker_id, status.as_str(), status_detail(status, detail)],
    )?;
    Ok(n == 1)
}

/// Deletes the project's trackers that match: the one named `tracker_name` (if given) and/or all
/// of `tracker_type` (if given). Returns the deleted trackers. The traces they recorded stay in
/// the trace log.
pub fn delete_trackers(
    c: &Connection,
    project_id: &str,
    tracker_name: Option<&str>,
    tracker_type: Option<TrackerType>,
) -> Result<Vec<Tracker>> {
    let doomed = list_trackers(c, project_id, tracker_name, tracker_type)?;
    let mut st = c.prepare_cached("DELETE FROM cts_trackers WHERE tracker_id = ?1")?;
    for t in &doomed {
        st.execute(params![t.tracker_id])?;
        crate::archive::forget_tracker(c, &t.tracker_id)?;
    }
    Ok(doomed)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn db() -> Connection {
        let c = Connection::open_in_memory().unwrap();
        crate::db::create_schema(&c).unwrap();
        c
    }

    fn system(project: &str) -> Tracker {
        Tracker {
            tracker_id: format!("id-{project}-system"),
            project_id: project.into(),
            domain_id: "d1".into(),
            tracker_name: SYSTEM_TRACKER_NAME.into(),
            tracker_type: TrackerType::System,
            status: TrackerStatus::Enabled,
            detail: None,
            obs_info: Some(ObsInfo {
                bucket_name: "audit-logs".into(),
                file_prefix_name: "tw".into(),
                is_obs_created: true,
                bucket_lifecycle: Some(30),
                compress_type: CompressType::Gzip,
                is_sort_by_service: true,
            }),
            is_support_validate: true,
            is_lts_enabled: false,
            data_bucket: None,
            agency_name: None,
            exclude_services: vec!["KMS".into()],
            create_time: 1,
            update_time: 1,
        }
    }

    fn data(project: &str, name: &str, time: i64) -> Tracker {
        Tracker {
            tracker_id: format!("id-{project}-{name}"),
            tracker_name: name.into(),
            tracker_type: TrackerType::Data,
            obs_info: None,
            is_support_validate: false,
            data_bucket: Some(DataBucket {
                data_bucket_name: "tracked".into(),
                data_event: vec![DataEvent::Write],
            }),
            exclude_services: vec![],
            create_time: time,
            update_time: time,
            ..system(project)
        }
    }

    #[test]
    fn round_trip_and_listing_order() {
        let c = db();
        create_tracker(&c, &data("p1", "zeta", 5)).unwrap();
        create_tracker(&c, &data("p1", "alpha", 7)).unwrap();
        create_tracker(&c, &system("p1")).unwrap();
        create_tracker(&c, &system("p2")).unwrap();
        let got = tracker(&c, "p1", "system").unwrap().unwrap();
        assert_eq!(got, system("p1"));
        let names: Vec<String> = list_trackers(&c, "p1", None, None)
            .unwrap()
            .into_iter()
            .map(|t| t.tracker_name)
            .collect();
        assert_eq!(names, ["system", "zeta", "alpha"]);
        assert_eq!(
            list_trackers(&c, "p1", None, Some(TrackerType::Data))
                .unwrap()
                .len(),
            2
        );
        assert_eq!(
            list_trackers(&c, "p1", Some("alpha"), Some(TrackerType::System))
                .unwrap()
                .len(),
            0
        );
        assert_eq!(count_trackers(&c, "p1", TrackerType::Data).unwrap(), 2);
        assert_eq!(count_trackers(&c, "p2", TrackerType::Data).unwrap(), 0);
        assert_eq!(
            tracker_by_id(&c, "id-p1-alpha")
                .unwrap()
                .unwrap()
                .tracker_name,
            "alpha"
        );
    }

    #[test]
    fn duplicates_and_a_second_management_tracker_conflict() {
        let c = db();
        create_tracker(&c, &system("p1")).unwrap();
        let again = Tracker {
            tracker_id: "other".into(),
            ..system("p1")
        };
        assert!(matches!(
            create_tracker(&c, &again),
            Err(StoreError::Conflict(_))
        ));
        let misnamed = Tracker {
            tracker_id: "x".into(),
            tracker_name: "mgmt".into(),
            ..system("p3")
        };
        assert!(matches!(
            create_tracker(&c, &misnamed),
            Err(StoreError::Conflict(_))
        ));
        create_tracker(&c, &data("p1", "d", 1)).unwrap();
        assert!(matches!(
            create_tracker(
                &c,
                &Tracker {
                    tracker_id: "y".into(),
                    ..data("p1", "d", 2)
                }
            ),
            Err(StoreError::Conflict(_))
        ));
        // The database refuses a second management tracker even without the check above.
        let raw = c.execute_cached(
            "INSERT INTO cts_trackers(tracker_id, project_id, domain_id, tracker_name,
                 tracker_type, status, is_support_validate, is_lts_enabled, create_time,
                 update_time)
             VALUES ('z', 'p1', 'd1', 'other', 'system', 'enabled', 0, 0, 1, 1)",
            [],
        );
        assert!(raw.is_err());
    }

    #[test]
    fn archiver_status_never_revives_a_disabled_tracker() {
        let c = db();
        create_tracker(&c, &system("p1")).unwrap();
        let id = "id-p1-system";
        assert!(set_tracker_status(&c, id, TrackerStatus::Error, Some("noBucket")).unwrap());
        let t = tracker_by_id(&c, id).unwrap().unwrap();
        assert_eq!(
            (t.status, t.detail.as_deref()),
            (TrackerStatus::Error, Some("noBucket"))
        );
        assert_eq!(t.update_time, 1);
        assert_eq!(list_enabled_trackers(&c).unwrap().len(), 1);
        assert!(set_tracker_status(&c, id, TrackerStatus::Enabled, Some("ignored")).unwrap());
        let t = tracker_by_id(&c, id).unwrap().unwrap();
        assert_eq!((t.status, t.detail), (TrackerStatus::Enabled, None));

        assert!(set_tracker_status(&c, id, TrackerStatus::Disabled, None).unwrap());
        assert!(!set_tracker_status(&c, id, TrackerStatus::Error, Some("arrears")).unwrap());
        assert!(!set_tracker_status(&c, id, TrackerStatus::Enabled, None).unwrap());
        let t = tracker_by_id(&c, id).unwrap().unwrap();
        assert_eq!((t.status, t.detail), (TrackerStatus::Disabled, None));
        assert!(list_enabled_trackers(&c).unwrap().is_empty());
        assert!(!set_tracker_status(&c, "nope", TrackerStatus::Enabled, None).unwrap());
    }

    #[test]
    fn update_keeps_identity_and_delete_selects() {
        let c = db();
        create_tracker(&c, &system("p1")).unwrap();
        create_tracker(&c, &data("p1", "a", 2)).unwrap();
        create_tracker(&c, &data("p1", "b", 3)).unwrap();
        create_tracker(&c, &data("p2", "a", 3)).unwrap();
        let mut t = tracker(&c, "p1", "a").unwrap().unwrap();
        t.status = TrackerStatus::Disabled;
        t.detail = Some("dropped: not an error".into());
        t.obs_info = system("p1").obs_info;
        t.update_time = 99;
        t.create_time = 12345; // not written
        assert!(update_tracker(&c, &t).unwrap());
        let got = tracker(&c, "p1", "a").unwrap().unwrap();
        assert_eq!(got.status, TrackerStatus::Disabled);
        assert_eq!(got.detail, None);
        assert_eq!(got.obs_info, system("p1").obs_info);
        assert_eq!((got.create_time, got.update_time), (2, 99));
        // Another project's id does not reach it.
        let foreign = Tracker {
            project_id: "p2".into(),
            ..t.clone()
        };
        assert!(!update_tracker(&c, &foreign).unwrap());

        let gone = delete_trackers(&c, "p1", None, Some(TrackerType::Data)).unwrap();
        assert_eq!(gone.len(), 2);
        assert!(tracker(&c, "p1", "system").unwrap().is_some());
        assert!(tracker(&c, "p2", "a").unwrap().is_some());
        assert!(
            delete_trackers(&c, "p1", Some("a"), None)
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            delete_trackers(&c, "p1", Some("system"), Some(TrackerType::System))
                .unwrap()
                .len(),
            1
        );
        assert!(list_trackers(&c, "p1", None, None).unwrap().is_empty());
    }

    #[test]
    fn unreadable_json_is_reported_as_corrupt() {
        let c = db();
        create_tracker(&c, &system("p1")).unwrap();
        c.execute_cached("UPDATE cts_trackers SET obs_info = '{not json'", [])
            .unwrap();
        assert!(matches!(
            tracker(&c, "p1", "system"),
            Err(StoreError::Corrupt(_))
        ));
    }
}
