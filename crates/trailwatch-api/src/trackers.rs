//! CTS tracker routes (`formats/cloud-apis.md` §2.2; rules and choices in
//! `docs/specs/trackers.md`):
//!
//! | route | success |
//! |---|---|
//! | `POST /v3/{project_id}/tracker` | 201 + the tracker |
//! | `PUT /v3/{project_id}/tracker` | 200 + the updated tracker |
//! | `GET /v3/{project_id}/trackers?tracker_name=&tracker_type=` | 200 `{"trackers":[…]}` |
//! | `DELETE /v3/{project_id}/trackers?tracker_name=&tracker_type=` | 204 |
//!
//! Every member of a body is checked; an unknown member, a wrong JSON type or a bad value is a
//! 400 with the CTS code of that field (`CTS.0202` tracker_type, `CTS.0203`/`0204`/`0207`
//! tracker_name, `CTS.0205` status, `CTS.0206` data_bucket on a management tracker, `CTS.0218`
//! file prefix, `CTS.0225` data_event, `CTS.0231` bucket name) or `CTS.0003`, naming the member.
//! JSON `null` is the same as an absent member. The tracker is stored here; the archiver reads
//! it through `trailwatch_store::trackers` and reports `status=error` back.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{RawQuery, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Map, Value, json};
use trailwatch_store::StoreError;
use trailwatch_store::trackers::{
    self as store, CompressType, DataBucket, DataEvent, ObsInfo, SYSTEM_TRACKER_NAME, Tracker,
    TrackerStatus, TrackerType,
};

use crate::AppState;
use crate::auth::{ProjectScope, truncate};
use crate::error::ApiError;

/// The most data trackers one project may have (`CTS.0200` beyond).
pub const MAX_DATA_TRACKERS: u64 = 100;
/// The `obs_info.bucket_lifecycle` values accepted (days), as the HW console offers them.
pub const BUCKET_LIFECYCLE_DAYS: [u32; 5] = [30, 60, 90, 180, 1095];
/// Longest data tracker name (`CTS.0203`).
pub const MAX_TRACKER_NAME_CHARS: usize = 32;
/// Longest `obs_info.file_prefix_name` (`CTS.0218`).
pub const MAX_FILE_PREFIX_CHARS: usize = 64;
/// The only `agency_name` HW accepts.
const CTS_AGENCY: &str = "cts_admin_trust";
/// The only service `management_event_selector.exclude_service` may name.
const EXCLUDABLE_SERVICE: &str = "KMS";

const TOP_MEMBERS: &[&str] = &[
    "tracker_type",
    "tracker_name",
    "status",
    "is_lts_enabled",
    "obs_info",
    "is_support_validate",
    "data_bucket",
    "agency_name",
    "management_event_selector",
    "is_support_trace_files_encryption",
    "kms_id",
    "is_organization_tracker",
];
const OBS_MEMBERS: &[&str] = &[
    "bucket_name",
    "file_prefix_name",
    "is_obs_created",
    "bucket_lifecycle",
    "compress_type",
    "is_sort_by_service",
];
const DATA_BUCKET_MEMBERS: &[&str] = &["data_bucket_name", "data_event", "search_enabled"];
const SELECTOR_MEMBERS: &[&str] = &["exclude_service"];
const QUERY_PARAMS: &[&str] = &["tracker_name", "tracker_type"];

fn bad(msg: impl Into<String>) -> ApiError {
    ApiError::cts_bad_body(msg)
}

fn code(code: &'static str, msg: impl Into<String>) -> ApiError {
    ApiError::cts(StatusCode::BAD_REQUEST, code, msg)
}

fn not_found(tracker_type: Option<TrackerType>, name: &str) -> ApiError {
    let kind = match tracker_type {
        Some(TrackerType::System) => "management tracker",
        Some(TrackerType::Data) => "data tracker",
        None => "tracker",
    };
    ApiError::cts(
        StatusCode::NOT_FOUND,
        "CTS.0214",
        format!(
            "the {kind} `{}` does not exist in this project",
            truncate(name, 64)
        ),
    )
}

fn store_err(e: StoreError) -> ApiError {
    match e {
        StoreError::Conflict(m) => code("CTS.0208", m),
        other => ApiError::from(other),
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "a boolean",
        Value::Number(_) => "a number",
        Value::String(_) => "a string",
        Value::Array(_) => "an array",
        Value::Object(_) => "an object",
    }
}

fn body_object(body: &Bytes) -> Result<Map<String, Value>, ApiError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("The message body is empty"));
    }
    match serde_json::from_slice(body) {
        Ok(Value::Object(m)) => Ok(m),
        Ok(other) => Err(bad(format!(
            "The message body must be a JSON object, found {}",
            kind(&other)
        ))),
        Err(e) => Err(bad(format!("The message body is not valid JSON: {e}"))),
    }
}

fn check_members(m: &Map<String, Value>, allowed: &[&str], place: &str) -> Result<(), ApiError> {
    match m.keys().find(|k| !allowed.contains(&k.as_str())) {
        None => Ok(()),
        Some(k) => Err(bad(format!(
            "unknown member `{}` in {place}; accepted members: {}",
            truncate(k, 64),
            allowed.join(", ")
        ))),
    }
}

/// A member's value; `null` counts as absent.
fn member<'a>(m: &'a Map<String, Value>, key: &str) -> Option<&'a Value> {
    m.get(key).filter(|v| !v.is_null())
}

fn opt_bool(m: &Map<String, Value>, key: &str, path: &str) -> Result<Option<bool>, ApiError> {
    match member(m, key) {
        None => Ok(None),
        Some(Value::Bool(b)) => Ok(Some(*b)),
        Some(v) => Err(bad(format!(
            "`{path}` must be a boolean, found {}",
            kind(v)
        ))),
    }
}

fn opt_str<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a str>, ApiError> {
    match member(m, key) {
        None => Ok(None),
        Some(Value::String(s)) => Ok(Some(s)),
        Some(v) => Err(bad(format!("`{path}` must be a string, found {}", kind(v)))),
    }
}

fn opt_object<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Map<String, Value>>, ApiError> {
    match member(m, key) {
        None => Ok(None),
        Some(Value::Object(o)) => Ok(Some(o)),
        Some(v) => Err(bad(format!(
            "`{path}` must be an object, found {}",
            kind(v)
        ))),
    }
}

fn opt_array<'a>(
    m: &'a Map<String, Value>,
    key: &str,
    path: &str,
) -> Result<Option<&'a Vec<Value>>, ApiError> {
    match member(m, key) {
        None => Ok(None),
        Some(Value::Array(a)) => Ok(Some(a)),
        Some(v) => Err(bad(format!("`{path}` must be an array, found {}", kind(v)))),
    }
}

/// The `obs_info` members given in a request; absent ones keep their current (or default) value.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct ObsPatch {
    /// `Some("")` turns the transfer off.
    bucket_name: Option<String>,
    file_prefix_name: Option<String>,
    is_obs_created: Option<bool>,
    bucket_lifecycle: Option<u32>,
    compress_type: Option<CompressType>,
    is_sort_by_service: Option<bool>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct DataBucketPatch {
    data_bucket_name: String,
    data_event: Option<Vec<DataEvent>>,
}

/// A create or update body, checked member by member.
#[derive(Debug, Clone, PartialEq, Eq)]
struct TrackerRequest {
    tracker_type: TrackerType,
    tracker_name: String,
    status: Option<TrackerStatus>,
    is_lts_enabled: Option<bool>,
    is_support_validate: Option<bool>,
    obs_info: Option<ObsPatch>,
    data_bucket: Option<DataBucketPatch>,
    agency_name: Option<String>,
    exclude_services: Option<Vec<String>>,
}

fn parse_tracker_type(v: Option<&str>) -> Result<TrackerType, ApiError> {
    let s = v.ok_or_else(|| bad("`tracker_type` is required: `system` or `data`"))?;
    TrackerType::parse(s).ok_or_else(|| {
        code(
            "CTS.0202",
            format!(
                "`tracker_type` must be `system` or `data`, got `{}`",
                truncate(s, 64)
            ),
        )
    })
}

/// CTS.0203: 1–32 characters of letters, digits, `_` and `-`, not starting with `_` or `-`.
fn check_data_tracker_name(name: &str) -> Result<(), ApiError> {
    if name == SYSTEM_TRACKER_NAME {
        return Err(code(
            "CTS.0207",
            "a data tracker cannot be named `system`; that name is the management tracker's",
        ));
    }
    let chars = name.chars().count();
    let problem = if chars == 0 {
        Some("must not be empty".to_owned())
    } else if chars > MAX_TRACKER_NAME_CHARS {
        Some(format!(
            "must be at most {MAX_TRACKER_NAME_CHARS} characters (it has {chars})"
        ))
    } else if let Some(c) = name
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '-')))
    {
        Some(format!(
            "contains {c:?}; only letters, digits, `_` and `-` are allowed"
        ))
    } else if name.starts_with(['_', '-']) {
        Some("must not start with `_` or `-`".to_owned())
    } else {
        None
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(code(
            "CTS.0203",
            format!("`tracker_name` `{}` {p}", truncate(name, 64)),
        )),
    }
}

fn parse_tracker_name(tracker_type: TrackerType, v: Option<&str>) -> Result<String, ApiError> {
    match (tracker_type, v) {
        (TrackerType::System, None) => Ok(SYSTEM_TRACKER_NAME.to_owned()),
        (TrackerType::System, Some(SYSTEM_TRACKER_NAME)) => Ok(SYSTEM_TRACKER_NAME.to_owned()),
        (TrackerType::System, Some(other)) => Err(code(
            "CTS.0204",
            format!(
                "the management tracker's `tracker_name` can only be `system`, got `{}`",
                truncate(other, 64)
            ),
        )),
        (TrackerType::Data, None) => Err(code(
            "CTS.0203",
            "`tracker_name` is required for a data tracker",
        )),
        (TrackerType::Data, Some(name)) => {
            check_data_tracker_name(name)?;
            Ok(name.to_owned())
        }
    }
}

fn parse_status(m: &Map<String, Value>) -> Result<Option<TrackerStatus>, ApiError> {
    let Some(s) = opt_str(m, "status", "status")? else {
        return Ok(None);
    };
    match TrackerStatus::parse(s) {
        Some(st @ (TrackerStatus::Enabled | TrackerStatus::Disabled)) => Ok(Some(st)),
        _ => Err(code(
            "CTS.0205",
            format!(
                "`status` can only be `enabled` or `disabled`, got `{}`",
                truncate(s, 64)
            ),
        )),
    }
}

/// CTS.0231: S3 bucket-name rules (`trailwatch_archive::validate_bucket_name`).
fn check_bucket_name(path: &str, name: &str) -> Result<(), ApiError> {
    trailwatch_archive::validate_bucket_name(name).map_err(|e| {
        let reason = match e {
            trailwatch_archive::ObjectsError::InvalidBucketName { reason, .. } => reason,
            other => other.to_string(),
        };
        code(
            "CTS.0231",
            format!(
                "`{path}` `{}` is not a valid bucket name: {reason}",
                truncate(name, 80)
            ),
        )
    })
}

/// CTS.0218: 0–64 characters of letters, digits, `.`, `_` and `-`.
fn check_file_prefix(prefix: &str) -> Result<(), ApiError> {
    let chars = prefix.chars().count();
    let problem = if chars > MAX_FILE_PREFIX_CHARS {
        Some(format!(
            "must be at most {MAX_FILE_PREFIX_CHARS} characters (it has {chars})"
        ))
    } else {
        prefix
            .chars()
            .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-')))
            .map(|c| format!("contains {c:?}; only letters, digits, `.`, `_` and `-` are allowed"))
    };
    match problem {
        None => Ok(()),
        Some(p) => Err(code(
            "CTS.0218",
            format!("`obs_info.file_prefix_name` `{}` {p}", truncate(prefix, 80)),
        )),
    }
}

fn parse_obs(o: &Map<String, Value>) -> Result<ObsPatch, ApiError> {
    check_members(o, OBS_MEMBERS, "`obs_info`")?;
    let bucket_name = opt_str(o, "bucket_name", "obs_info.bucket_name")?;
    if let Some(b) = bucket_name
        && !b.is_empty()
    {
        check_bucket_name("obs_info.bucket_name", b)?;
    }
    let file_prefix_name = opt_str(o, "file_prefix_name", "obs_info.file_prefix_name")?;
    if let Some(p) = file_prefix_name {
        check_file_prefix(p)?;
    }
    let bucket_lifecycle = match member(o, "bucket_lifecycle") {
        None => None,
        Some(v) => {
            let allowed = || {
                BUCKET_LIFECYCLE_DAYS
                    .iter()
                    .map(u32::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            };
            let Some(n) = v.as_u64() else {
                return Err(bad(format!(
                    "`obs_info.bucket_lifecycle` must be an integer number of days ({}), found {}",
                    allowed(),
                    if v.is_number() {
                        format!("{v}")
                    } else {
                        kind(v).to_owned()
                    }
                )));
            };
            match BUCKET_LIFECYCLE_DAYS.iter().find(|d| u64::from(**d) == n) {
                Some(d) => Some(*d),
                None => {
                    return Err(bad(format!(
                        "`obs_info.bucket_lifecycle` must be one of {} (days), got {n}",
                        allowed()
                    )));
                }
            }
        }
    };
    let compress_type = match opt_str(o, "compress_type", "obs_info.compress_type")? {
        None => None,
        Some(s) => Some(CompressType::parse(s).ok_or_else(|| {
            bad(format!(
                "`obs_info.compress_type` must be `gzip` or `json`, got `{}`",
                truncate(s, 64)
            ))
        })?),
    };
    Ok(ObsPatch {
        bucket_name: bucket_name.map(str::to_owned),
        file_prefix_name: file_prefix_name.map(str::to_owned),
        is_obs_created: opt_bool(o, "is_obs_created", "obs_info.is_obs_created")?,
        bucket_lifecycle,
        compress_type,
        is_sort_by_service: opt_bool(o, "is_sort_by_service", "obs_info.is_sort_by_service")?,
    })
}

fn parse_data_bucket(o: &Map<String, Value>) -> Result<DataBucketPatch, ApiError> {
    check_members(o, DATA_BUCKET_MEMBERS, "`data_bucket`")?;
    let name = opt_str(o, "data_bucket_name", "data_bucket.data_bucket_name")?
        .ok_or_else(|| bad("`data_bucket.data_bucket_name` is required"))?;
    check_bucket_name("data_bucket.data_bucket_name", name)?;
    let data_event = match opt_array(o, "data_event", "data_bucket.data_event")? {
        None => None,
        Some(items) => {
            let bad_event = |msg: String| code("CTS.0225", msg);
            if items.is_empty() {
                return Err(bad_event(
                    "`data_bucket.data_event` must name at least one of `READ`, `WRITE`".into(),
                ));
            }
            let mut events = Vec::with_capacity(items.len());
            for item in items {
                let e = item.as_str().and_then(DataEvent::parse).ok_or_else(|| {
                    bad_event(format!(
                        "`data_bucket.data_event` items must be `READ` or `WRITE`, got {}",
                        truncate(&item.to_string(), 64)
                    ))
                })?;
                if events.contains(&e) {
                    return Err(bad_event(format!(
                        "`data_bucket.data_event` names `{}` twice",
                        e.as_str()
                    )));
                }
                events.push(e);
            }
            Some(events)
        }
    };
    if opt_bool(o, "search_enabled", "data_bucket.search_enabled")? == Some(false) {
        return Err(bad(
            "`data_bucket.search_enabled` cannot be false: trailwatch keeps every data tracker's traces queryable",
        ));
    }
    Ok(DataBucketPatch {
        data_bucket_name: name.to_owned(),
        data_event,
    })
}

fn parse_selector(o: &Map<String, Value>) -> Result<Vec<String>, ApiError> {
    check_members(o, SELECTOR_MEMBERS, "`management_event_selector`")?;
    let mut out = Vec::new();
    for item in opt_array(
        o,
        "exclude_service",
        "management_event_selector.exclude_service",
    )?
    .map(Vec::as_slice)
    .unwrap_or_default()
    {
        match item.as_str() {
            Some(EXCLUDABLE_SERVICE) => {
                if !out.iter().any(|s| s == EXCLUDABLE_SERVICE) {
                    out.push(EXCLUDABLE_SERVICE.to_owned());
                }
            }
            _ => {
                return Err(bad(format!(
                    "`management_event_selector.exclude_service` may only name `{EXCLUDABLE_SERVICE}`, got {}",
                    truncate(&item.to_string(), 64)
                )));
            }
        }
    }
    Ok(out)
}

fn parse_request(body: &Bytes) -> Result<TrackerRequest, ApiError> {
    let m = body_object(body)?;
    check_members(&m, TOP_MEMBERS, "the tracker body")?;
    let tracker_type = parse_tracker_type(opt_str(&m, "tracker_type", "tracker_type")?)?;
    let tracker_name =
        parse_tracker_name(tracker_type, opt_str(&m, "tracker_name", "tracker_name")?)?;
    let status = parse_status(&m)?;

    let data_bucket = match opt_object(&m, "data_bucket", "data_bucket")? {
        None => None,
        Some(_) if tracker_type == TrackerType::System => {
            return Err(code(
                "CTS.0206",
                "a management tracker has no `data_bucket`; only data trackers track a bucket",
            ));
        }
        Some(o) => Some(parse_data_bucket(o)?),
    };
    let obs_info = opt_object(&m, "obs_info", "obs_info")?
        .map(parse_obs)
        .transpose()?;

    let exclude_services =
        match opt_object(&m, "management_event_selector", "management_event_selector")? {
            None => None,
            Some(_) if tracker_type == TrackerType::Data => {
                return Err(bad(
                    "`management_event_selector` applies to the management tracker only",
                ));
            }
            Some(o) => Some(parse_selector(o)?),
        };
    if opt_bool(
        &m,
        "is_support_trace_files_encryption",
        "is_support_trace_files_encryption",
    )? == Some(true)
    {
        return Err(bad(
            "`is_support_trace_files_encryption` is not supported by trailwatch (there is no KMS); trace files are protected by the signed digest chain instead",
        ));
    }
    if opt_str(&m, "kms_id", "kms_id")?.is_some_and(|s| !s.is_empty()) {
        return Err(bad(
            "`kms_id` is not supported by trailwatch (there is no KMS)",
        ));
    }
    if opt_bool(&m, "is_organization_tracker", "is_organization_tracker")? == Some(true) {
        return Err(bad(
            "`is_organization_tracker` is not supported by trailwatch (there are no organizations)",
        ));
    }
    let agency_name = match opt_str(&m, "agency_name", "agency_name")? {
        None => None,
        Some(CTS_AGENCY) => Some(CTS_AGENCY.to_owned()),
        Some(other) => {
            return Err(bad(format!(
                "`agency_name` can only be `{CTS_AGENCY}`, got `{}`",
                truncate(other, 64)
            )));
        }
    };
    Ok(TrackerRequest {
        tracker_type,
        tracker_name,
        status,
        is_lts_enabled: opt_bool(&m, "is_lts_enabled", "is_lts_enabled")?,
        is_support_validate: opt_bool(&m, "is_support_validate", "is_support_validate")?,
        obs_info,
        data_bucket,
        agency_name,
        exclude_services,
    })
}

/// Applies an `obs_info` patch to the current setting. An empty `bucket_name` turns the transfer
/// off; otherwise a bucket is needed, given now or already configured.
fn merge_obs(current: Option<&ObsInfo>, patch: ObsPatch) -> Result<Option<ObsInfo>, ApiError> {
    if patch.bucket_name.as_deref() == Some("") {
        return Ok(None);
    }
    let bucket_name = match (patch.bucket_name, current) {
        (Some(b), _) => b,
        (None, Some(c)) => c.bucket_name.clone(),
        (None, None) => {
            return Err(bad(
                "`obs_info.bucket_name` is required: the tracker has no bucket yet",
            ));
        }
    };
    Ok(Some(ObsInfo {
        bucket_name,
        file_prefix_name: patch
            .file_prefix_name
            .or_else(|| current.map(|c| c.file_prefix_name.clone()))
            .unwrap_or_default(),
        is_obs_created: patch
            .is_obs_created
            .or(current.map(|c| c.is_obs_created))
            .unwrap_or(false),
        bucket_lifecycle: patch
            .bucket_lifecycle
            .or(current.and_then(|c| c.bucket_lifecycle)),
        compress_type: patch
            .compress_type
            .or(current.map(|c| c.compress_type))
            .unwrap_or_default(),
        is_sort_by_service: patch
            .is_sort_by_service
            .or(current.map(|c| c.is_sort_by_service))
            .unwrap_or(true),
    }))
}

/// Rules that involve more than one member, or other trackers of the project.
fn check_tracker(t: &Tracker, others: &[Tracker]) -> Result<(), ApiError> {
    let Some(db) = &t.data_bucket else {
        return Ok(());
    };
    if let Some(obs) = &t.obs_info
        && obs.bucket_name == db.data_bucket_name
    {
        return Err(bad(format!(
            "`obs_info.bucket_name` cannot be the tracked bucket `{}`: writing trace files there would record the writes themselves",
            db.data_bucket_name
        )));
    }
    for other in others.iter().filter(|o| o.tracker_id != t.tracker_id) {
        let Some(odb) = &other.data_bucket else {
            continue;
        };
        if odb.data_bucket_name != db.data_bucket_name {
            continue;
        }
        if let Some(e) = db.data_event.iter().find(|e| odb.data_event.contains(e)) {
            return Err(code(
                "CTS.0209",
                format!(
                    "the {} operations on bucket `{}` are already tracked by data tracker `{}`; one kind of operation on a bucket can be tracked by one tracker only",
                    e.as_str(),
                    db.data_bucket_name,
                    other.tracker_name
                ),
            ));
        }
    }
    Ok(())
}

fn new_tracker(
    req: TrackerRequest,
    project_id: String,
    domain_id: String,
    now: i64,
) -> Result<Tracker, ApiError> {
    let data_bucket = match (req.tracker_type, req.data_bucket) {
        (TrackerType::System, _) => None,
        (TrackerType::Data, None) => {
            return Err(bad(
                "`data_bucket` is required for a data tracker: {\"data_bucket_name\": …, \"data_event\": [\"READ\", \"WRITE\"]}",
            ));
        }
        (TrackerType::Data, Some(p)) => Some(DataBucket {
            data_bucket_name: p.data_bucket_name,
            data_event: p
                .data_event
                .unwrap_or_else(|| vec![DataEvent::Read, DataEvent::Write]),
        }),
    };
    let obs_info = match req.obs_info {
        None => None,
        Some(p) => merge_obs(None, p)?,
    };
    Ok(Tracker {
        tracker_id: uuid::Uuid::new_v4().to_string(),
        project_id,
        domain_id,
        tracker_name: req.tracker_name,
        tracker_type: req.tracker_type,
        status: req.status.unwrap_or(TrackerStatus::Enabled),
        detail: None,
        obs_info,
        is_support_validate: req.is_support_validate.unwrap_or(false),
        is_lts_enabled: req.is_lts_enabled.unwrap_or(false),
        data_bucket,
        agency_name: req.agency_name,
        exclude_services: req.exclude_services.unwrap_or_default(),
        create_time: now,
        update_time: now,
    })
}

/// Applies an update request to the stored tracker; members not given keep their value.
fn apply_update(t: &mut Tracker, req: TrackerRequest, now: i64) -> Result<(), ApiError> {
    if let Some(s) = req.status {
        t.status = s;
        t.detail = None;
    }
    if let Some(p) = req.obs_info {
        t.obs_info = merge_obs(t.obs_info.as_ref(), p)?;
    }
    if let Some(p) = req.data_bucket {
        let Some(current) = &mut t.data_bucket else {
            return Err(ApiError::cts_internal(format!(
                "data tracker `{}` has no stored data_bucket",
                t.tracker_name
            )));
        };
        if p.data_bucket_name != current.data_bucket_name {
            return Err(bad(format!(
                "`data_bucket.data_bucket_name` cannot be changed (the tracker tracks `{}`); create another data tracker for `{}`",
                current.data_bucket_name,
                truncate(&p.data_bucket_name, 64)
            )));
        }
        if let Some(events) = p.data_event {
            current.data_event = events;
        }
    }
    if let Some(b) = req.is_support_validate {
        t.is_support_validate = b;
    }
    if let Some(b) = req.is_lts_enabled {
        t.is_lts_enabled = b;
    }
    if let Some(a) = req.agency_name {
        t.agency_name = Some(a);
    }
    if let Some(x) = req.exclude_services {
        t.exclude_services = x;
    }
    t.update_time = now;
    Ok(())
}

/// The §2.2 tracker body (create answer and list item).
pub(crate) fn tracker_json(t: &Tracker, region: &str) -> Value {
    let mut v = json!({
        "id": t.tracker_id,
        "create_time": t.create_time,
        "update_time": t.update_time,
        "domain_id": t.domain_id,
        "project_id": t.project_id,
        "tracker_name": t.tracker_name,
        "tracker_type": t.tracker_type.as_str(),
        "status": t.status.as_str(),
        "is_support_validate": t.is_support_validate,
        "is_support_trace_files_encryption": false,
        "is_organization_tracker": false,
        "lts": {
            "is_lts_enabled": t.is_lts_enabled,
            "log_group_name": "CTS",
            "log_topic_name": format!("{}-trace", t.tracker_name),
        },
    });
    let Some(map) = v.as_object_mut() else {
        return v;
    };
    if t.status == TrackerStatus::Error
        && let Some(d) = &t.detail
    {
        map.insert("detail".into(), json!(d));
    }
    if let Some(o) = &t.obs_info {
        let mut obs = json!({
            "bucket_name": o.bucket_name,
            "file_prefix_name": o.file_prefix_name,
            "is_obs_created": o.is_obs_created,
            "is_authorized_bucket": t.detail.as_deref() != Some("bucketPolicyError"),
            "bucket_location": region,
            "compress_type": o.compress_type.as_str(),
            "is_sort_by_service": o.is_sort_by_service,
        });
        if let (Some(days), Some(m)) = (o.bucket_lifecycle, obs.as_object_mut()) {
            m.insert("bucket_lifecycle".into(), json!(days));
        }
        map.insert("obs_info".into(), obs);
    }
    if let Some(db) = &t.data_bucket {
        map.insert(
            "data_bucket".into(),
            json!({
                "data_bucket_name": db.data_bucket_name,
                "search_enabled": true,
                "data_event": db.data_event.iter().map(|e| e.as_str()).collect::<Vec<_>>(),
            }),
        );
    }
    if let Some(a) = &t.agency_name {
        map.insert("agency_name".into(), json!(a));
    }
    if t.tracker_type == TrackerType::System {
        map.insert(
            "management_event_selector".into(),
            json!({"exclude_service": t.exclude_services}),
        );
    }
    v
}

/// `POST /v3/{project_id}/tracker`.
pub async fn create(
    scope: ProjectScope,
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Response, ApiError> {
    let req = parse_request(&body)?;
    let tracker = new_tracker(
        req,
        scope.project_id,
        scope.caller.domain_id,
        trailwatch_store::now_ms(),
    )?;
    let created = app
        .store
        .write(move |c| {
            let t = tracker;
            if store::tracker(c, &t.project_id, &t.tracker_name)?.is_some() {
                return Ok(Err(match t.tracker_type {
                    TrackerType::System => code(
                        "CTS.0201",
                        "this project already has its management tracker `system`; update it with PUT instead",
                    ),
                    TrackerType::Data => code(
                        "CTS.0208",
                        format!(
                            "a data tracker named `{}` already exists in this project",
                            t.tracker_name
                        ),
                    ),
                }));
            }
            if t.tracker_type == TrackerType::Data
                && store::count_trackers(c, &t.project_id, TrackerType::Data)? >= MAX_DATA_TRACKERS
            {
                return Ok(Err(code(
                    "CTS.0200",
                    format!(
                        "this project already has {MAX_DATA_TRACKERS} data trackers, the most allowed"
                    ),
                )));
            }
            let others = store::list_trackers(c, &t.project_id, None, Some(TrackerType::Data))?;
            if let Err(e) = check_tracker(&t, &others) {
                return Ok(Err(e));
            }
            if let Err(e) = claim_tracker_bucket(c, &t)? {
                return Ok(Err(e));
            }
            store::create_tracker(c, &t)?;
            Ok(Ok(t))
        })
        .await
        .map_err(store_err)??;
    Ok((
        StatusCode::CREATED,
        Json(tracker_json(&created, &app.config.region)),
    )
        .into_response())
}

/// Claims the tracker's transfer bucket for its project (buckets are one namespace for the whole
/// server): a bucket another project archives to or writes objects in is refused, so no project
/// can overwrite, expire or jam another's archive.
fn claim_tracker_bucket(
    c: &trailwatch_store::rusqlite::Connection,
    t: &Tracker,
) -> trailwatch_store::Result<Result<(), ApiError>> {
    let Some(bucket) = t
        .obs_info
        .as_ref()
        .map(|o| o.bucket_name.as_str())
        .filter(|b| !b.is_empty())
    else {
        return Ok(Ok(()));
    };
    if trailwatch_store::archive::claim_bucket(
        c,
        bucket,
        &t.project_id,
        trailwatch_store::now_ms(),
    )? {
        Ok(Ok(()))
    } else {
        Ok(Err(ApiError::cts(
            StatusCode::FORBIDDEN,
            "CTS.0232",
            format!("bucket `{bucket}` belongs to another project; choose another bucket"),
        )))
    }
}

/// `PUT /v3/{project_id}/tracker`: the tracker is named by `tracker_type` + `tracker_name`;
/// members not given keep their value.
pub async fn update(
    scope: ProjectScope,
    State(app): State<AppState>,
    body: Bytes,
) -> Result<Json<Value>, ApiError> {
    let req = parse_request(&body)?;
    let project_id = scope.project_id;
    let now = trailwatch_store::now_ms();
    let updated = app
        .store
        .write(move |c| {
            let current = store::tracker(c, &project_id, &req.tracker_name)?;
            let Some(mut t) = current.filter(|t| t.tracker_type == req.tracker_type) else {
                return Ok(Err(not_found(Some(req.tracker_type), &req.tracker_name)));
            };
            if let Err(e) = apply_update(&mut t, req, now) {
                return Ok(Err(e));
            }
            let others = store::list_trackers(c, &project_id, None, Some(TrackerType::Data))?;
            if let Err(e) = check_tracker(&t, &others) {
                return Ok(Err(e));
            }
            if let Err(e) = claim_tracker_bucket(c, &t)? {
                return Ok(Err(e));
            }
            if !store::update_tracker(c, &t)? {
                return Ok(Err(not_found(Some(t.tracker_type), &t.tracker_name)));
            }
            Ok(Ok(t))
        })
        .await
        .map_err(store_err)??;
    Ok(Json(tracker_json(&updated, &app.config.region)))
}

/// The `tracker_name` and `tracker_type` query parameters; anything else is refused.
fn tracker_params(raw: Option<&str>) -> Result<(Option<String>, Option<TrackerType>), ApiError> {
    let params = crate::cts::parse_query(raw.unwrap_or(""))?;
    if let Some(k) = params.keys().find(|k| !QUERY_PARAMS.contains(&k.as_str())) {
        return Err(ApiError::cts_bad_query(format!(
            "unknown query parameter `{}`; accepted: {}",
            truncate(k, 64),
            QUERY_PARAMS.join(", ")
        )));
    }
    let text = |name: &str| -> Result<Option<String>, ApiError> {
        match params.get(name).and_then(Value::as_str) {
            None | Some("") => Ok(None),
            Some(v) if v.chars().count() > 64 || v.chars().any(char::is_control) => {
                Err(ApiError::cts_bad_query(format!(
                    "parameter `{name}` must be at most 64 characters without control characters"
                )))
            }
            Some(v) => Ok(Some(v.to_owned())),
        }
    };
    let tracker_type = match text("tracker_type")? {
        None => None,
        Some(s) => Some(TrackerType::parse(&s).ok_or_else(|| {
            code(
                "CTS.0202",
                format!(
                    "parameter `tracker_type` must be `system` or `data`, got `{}`",
                    truncate(&s, 64)
                ),
            )
        })?),
    };
    Ok((text("tracker_name")?, tracker_type))
}

/// `GET /v3/{project_id}/trackers?tracker_name=&tracker_type=`.
pub async fn list(
    scope: ProjectScope,
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<Json<Value>, ApiError> {
    let (name, tracker_type) = tracker_params(raw.as_deref())?;
    let project_id = scope.project_id;
    let trackers = app
        .store
        .read(move |c| store::list_trackers(c, &project_id, name.as_deref(), tracker_type))
        .await?;
    let region = &app.config.region;
    Ok(Json(json!({
        "trackers": trackers.iter().map(|t| tracker_json(t, region)).collect::<Vec<_>>(),
    })))
}

/// Which trackers a delete names (`docs/specs/trackers.md`): a name alone decides its type
/// (`system` is the management tracker); neither means every data tracker.
fn delete_selection(
    name: Option<String>,
    tracker_type: Option<TrackerType>,
) -> Result<(Option<String>, TrackerType), ApiError> {
    match (name, tracker_type) {
        (None, t) => Ok((None, t.unwrap_or(TrackerType::Data))),
        (Some(n), Some(TrackerType::System)) if n != SYSTEM_TRACKER_NAME => Err(code(
            "CTS.0204",
            format!(
                "the management tracker's name can only be `system`, got `{}`",
                truncate(&n, 64)
            ),
        )),
        (Some(n), Some(TrackerType::Data)) if n == SYSTEM_TRACKER_NAME => Err(code(
            "CTS.0207",
            "a data tracker cannot be named `system`; use tracker_type=system to delete the management tracker",
        )),
        (Some(n), Some(t)) => Ok((Some(n), t)),
        (Some(n), None) => {
            let t = if n == SYSTEM_TRACKER_NAME {
                TrackerType::System
            } else {
                TrackerType::Data
            };
            Ok((Some(n), t))
        }
    }
}

/// `DELETE /v3/{project_id}/trackers?tracker_name=&tracker_type=` (204). A named tracker that
/// does not exist is a 404 `CTS.0214`; deleting "all data trackers" when there are none is 204.
pub async fn delete(
    scope: ProjectScope,
    State(app): State<AppState>,
    RawQuery(raw): RawQuery,
) -> Result<StatusCode, ApiError> {
    let (name, tracker_type) = tracker_params(raw.as_deref())?;
    let (name, tracker_type) = delete_selection(name, tracker_type)?;
    let project_id = scope.project_id;
    let wanted = name.clone();
    let deleted = app
        .store
        .write(move |c| {
            store::delete_trackers(c, &project_id, wanted.as_deref(), Some(tracker_type))
        })
        .await
        .map_err(store_err)?;
    match name {
        Some(n) if deleted.is_empty() => Err(not_found(Some(tracker_type), &n)),
        _ => Ok(StatusCode::NO_CONTENT),
    }
}

/// `GET /v3/{project_id}/tracker/public-key` (trailwatch extension): the public key that verifies
/// the archive's digests, for `trailwatch verify --public-key`.
pub async fn public_key(
    _scope: ProjectScope,
    State(app): State<AppState>,
) -> axum::Json<serde_json::Value> {
    let key = app.archive_key.public_key();
    axum::Json(serde_json::json!({
        "algorithm": "Ed25519",
        "key_id": key.key_id().to_string(),
        "public_key_pem": key.to_pem(),
    }))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn parse(v: Value) -> Result<TrackerRequest, ApiError> {
        parse_request(&Bytes::from(v.to_string()))
    }

    fn code_of(r: Result<TrackerRequest, ApiError>) -> (&'static str, String) {
        match r {
            Err(ApiError::Cts { code, msg, .. }) => (code, msg),
            other => panic!("expected a CTS error, got {other:?}"),
        }
    }

    #[test]
    fn a_full_system_body_parses() {
        let r = parse(json!({
            "tracker_type": "system", "tracker_name": "system", "is_lts_enabled": true,
            "is_support_validate": true, "status": "disabled", "agency_name": "cts_admin_trust",
            "management_event_selector": {"exclude_service": ["KMS"]},
            "is_support_trace_files_encryption": false, "kms_id": "", "is_organization_tracker": null,
            "obs_info": {"bucket_name": "audit-logs", "file_prefix_name": "a.b_c-1",
                         "is_obs_created": true, "bucket_lifecycle": 1095,
                         "compress_type": "json", "is_sort_by_service": false},
        }))
        .unwrap();
        assert_eq!(r.tracker_type, TrackerType::System);
        assert_eq!(r.status, Some(TrackerStatus::Disabled));
        assert_eq!(r.exclude_services, Some(vec!["KMS".to_owned()]));
        let obs = r.obs_info.unwrap();
        assert_eq!(obs.bucket_lifecycle, Some(1095));
        assert_eq!(obs.compress_type, Some(CompressType::Json));
        assert_eq!(obs.is_sort_by_service, Some(false));
        // The name of a management tracker may be left out.
        assert_eq!(
            parse(json!({"tracker_type": "system"}))
                .unwrap()
                .tracker_name,
            "system"
        );
    }

    #[test]
    fn each_bad_member_gets_its_code() {
        let cases: Vec<(Value, &str, &str)> = vec![
            (
                json!({"tracker_name": "x"}),
                "CTS.0003",
                "`tracker_type` is required",
            ),
            (json!({"tracker_type": "mgmt"}), "CTS.0202", "`mgmt`"),
            (json!({"tracker_type": 1}), "CTS.0003", "must be a string"),
            (
                json!({"tracker_type": "system", "tracker_name": "main"}),
                "CTS.0204",
                "`main`",
            ),
            (
                json!({"tracker_type": "data", "tracker_name": "system"}),
                "CTS.0207",
                "system",
            ),
            (json!({"tracker_type": "data"}), "CTS.0203", "required"),
            (
                json!({"tracker_type": "data", "tracker_name": "-x"}),
                "CTS.0203",
                "start",
            ),
            (
                json!({"tracker_type": "data", "tracker_name": "a b"}),
                "CTS.0203",
                "' '",
            ),
            (
                json!({"tracker_type": "data", "tracker_name": "a".repeat(33)}),
                "CTS.0203",
                "33",
            ),
            (
                json!({"tracker_type": "system", "status": "error"}),
                "CTS.0205",
                "`error`",
            ),
            (
                json!({"tracker_type": "system", "data_bucket": {}}),
                "CTS.0206",
                "data_bucket",
            ),
            (
                json!({"tracker_type": "system", "obs_info": {"bucket_name": "Bad_Bucket"}}),
                "CTS.0231",
                "'B'",
            ),
            (
                json!({"tracker_type": "system", "obs_info": {"bucket_name": "ab"}}),
                "CTS.0231",
                "3 to 63",
            ),
            (
                json!({"tracker_type": "system", "obs_info": {"bucket_name": 7}}),
                "CTS.0003",
                "obs_info.bucket_name` must be a string",
            ),
            (
                json!({"tracker_type": "system", "obs_info": {"file_prefix_name": "a/b"}}),
                "CTS.0218",
                "'/'",
            ),
            (
                json!({"tracker_type": "system", "obs_info": {"file_prefix_name": "p".repeat(65)}}),
                "CTS.0218",
                "65",
            ),
            (
                json!({"tracker_type": "system", "obs_info": {"bucket_lifecycle": 45}}),
                "CTS.0003",
                "got 45",
            ),
            (
                json!({"tracker_type": "system", "obs_info": {"bucket_lifecycle": "30"}}),
                "CTS.0003",
                "a string",
            ),
            (
                json!({"tracker_type": "system", "obs_info": {"bucket_lifecycle": 30.5}}),
                "CTS.0003",
                "30.5",
            ),
            (
                json!({"tracker_type": "system", "obs_info": {"compress_type": "zip"}}),
                "CTS.0003",
                "`zip`",
            ),
            (
                json!({"tracker_type": "system", "obs_info": {"region": "x"}}),
                "CTS.0003",
                "unknown member `region`",
            ),
            (
                json!({"tracker_type": "system", "obs_info": []}),
                "CTS.0003",
                "must be an object",
            ),
            (
                json!({"tracker_type": "system", "is_support_validate": "yes"}),
                "CTS.0003",
                "boolean",
            ),
            (
                json!({"tracker_type": "system", "foo": 1}),
                "CTS.0003",
                "unknown member `foo`",
            ),
            (
                json!({"tracker_type": "system", "is_support_trace_files_encryption": true}),
                "CTS.0003",
                "not supported",
            ),
            (
                json!({"tracker_type": "system", "kms_id": "k"}),
                "CTS.0003",
                "not supported",
            ),
            (
                json!({"tracker_type": "system", "is_organization_tracker": true}),
                "CTS.0003",
                "not supported",
            ),
            (
                json!({"tracker_type": "system", "agency_name": "other"}),
                "CTS.0003",
                "cts_admin_trust",
            ),
            (
                json!({"tracker_type": "system", "management_event_selector": {"exclude_service": ["IAM"]}}),
                "CTS.0003",
                "KMS",
            ),
            (
                json!({"tracker_type": "data", "tracker_name": "d", "management_event_selector": {}}),
                "CTS.0003",
                "management tracker only",
            ),
            (
                json!({"tracker_type": "data", "tracker_name": "d", "data_bucket": {}}),
                "CTS.0003",
                "data_bucket_name` is required",
            ),
            (
                json!({"tracker_type": "data", "tracker_name": "d", "data_bucket": {"data_bucket_name": "a..b"}}),
                "CTS.0231",
                "\"..\"",
            ),
            (
                json!({"tracker_type": "data", "tracker_name": "d", "data_bucket": {"data_bucket_name": "abc", "data_event": ["DELETE"]}}),
                "CTS.0225",
                "DELETE",
            ),
            (
                json!({"tracker_type": "data", "tracker_name": "d", "data_bucket": {"data_bucket_name": "abc", "data_event": []}}),
                "CTS.0225",
                "at least one",
            ),
            (
                json!({"tracker_type": "data", "tracker_name": "d", "data_bucket": {"data_bucket_name": "abc", "data_event": ["READ", "READ"]}}),
                "CTS.0225",
                "twice",
            ),
            (
                json!({"tracker_type": "data", "tracker_name": "d", "data_bucket": {"data_bucket_name": "abc", "search_enabled": false}}),
                "CTS.0003",
                "search_enabled",
            ),
        ];
        for (body, want_code, want_text) in cases {
            let (got_code, msg) = code_of(parse(body.clone()));
            assert_eq!(got_code, want_code, "{body}: {msg}");
            assert!(
                msg.contains(want_text),
                "{body}: {msg:?} lacks {want_text:?}"
            );
        }
        for raw in ["", "  ", "{", "[1]", "null", "\"x\""] {
            let (c, _) = code_of(parse_request(&Bytes::from(raw)));
            assert_eq!(c, "CTS.0003", "{raw:?}");
        }
    }

    #[test]
    fn obs_info_merges_and_an_empty_bucket_turns_transfer_off() {
        let first = merge_obs(
            None,
            ObsPatch {
                bucket_name: Some("bkt".into()),
                bucket_lifecycle: Some(60),
                ..ObsPatch::default()
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(first.file_prefix_name, "");
        assert!(first.is_sort_by_service);
        assert_eq!(first.compress_type, CompressType::Gzip);
        let second = merge_obs(
            Some(&first),
            ObsPatch {
                file_prefix_name: Some("p".into()),
                ..ObsPatch::default()
            },
        )
        .unwrap()
        .unwrap();
        assert_eq!(
            (second.bucket_name.as_str(), second.bucket_lifecycle),
            ("bkt", Some(60))
        );
        assert_eq!(second.file_prefix_name, "p");
        assert!(
            merge_obs(
                Some(&second),
                ObsPatch {
                    bucket_name: Some(String::new()),
                    ..ObsPatch::default()
                }
            )
            .unwrap()
            .is_none()
        );
        assert!(merge_obs(None, ObsPatch::default()).is_err());
    }

    #[test]
    fn delete_selection_follows_the_name() {
        assert_eq!(
            delete_selection(None, None).unwrap(),
            (None, TrackerType::Data)
        );
        assert_eq!(
            delete_selection(Some("system".into()), None).unwrap(),
            (Some("system".into()), TrackerType::System)
        );
        assert_eq!(
            delete_selection(Some("d1".into()), None).unwrap(),
            (Some("d1".into()), TrackerType::Data)
        );
        assert_eq!(
            delete_selection(None, Some(TrackerType::System)).unwrap(),
            (None, TrackerType::System)
        );
        assert!(delete_selection(Some("d1".into()), Some(TrackerType::System)).is_err());
        assert!(delete_selection(Some("system".into()), Some(TrackerType::Data)).is_err());
    }
}
