//! Trace queries: the CTS list filters, newest first, with marker paging.

use ipnet::IpNet;
use rusqlite::types::Value as SqlValue;
use rusqlite::{Connection, OptionalExtension};

use crate::{Result, StoreError, StoredTrace, ip_key};

/// Which tracker's traces a query covers (CTS `trace_type` + `tracker_name`).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum TrackerFilter {
    /// Traces of exactly this tracker (`system` is the management tracker).
    Exact(String),
    /// Data traces: every tracker except `system`.
    AllData,
    /// No tracker condition.
    #[default]
    Any,
}

/// Equality filters on indexed trace fields. `None` means "no condition".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TraceFilter {
    pub service_type: Option<String>,
    pub user: Option<String>,
    pub resource_id: Option<String>,
    pub resource_name: Option<String>,
    pub resource_type: Option<String>,
    pub trace_name: Option<String>,
    pub trace_rating: Option<String>,
    /// An address (a /32 or /128) or a CIDR range; IPv4-mapped IPv6 is the same as IPv4.
    pub source_ip: Option<IpNet>,
}

#[derive(Debug, Clone, Default)]
pub struct TraceQuery {
    pub project_id: String,
    /// Inclusive lower bound on `time` (ms).
    pub from: Option<i64>,
    /// Inclusive upper bound on `time` (ms).
    pub to: Option<i64>,
    pub limit: u32,
    /// Continue after this trace (the `marker` of the previous page): only older traces.
    pub marker: Option<String>,
    /// When set, every other condition is ignored (CTS semantics).
    pub trace_id: Option<String>,
    pub tracker: TrackerFilter,
    pub filter: TraceFilter,
}

#[derive(Debug, Clone, Default)]
pub struct TracePage {
    pub traces: Vec<StoredTrace>,
    /// The `trace_id` of the last trace returned when more traces match, else `None`.
    pub next_marker: Option<String>,
}

/// The inclusive index-key range covered by an address or CIDR range.
pub(crate) fn ip_range(net: &IpNet) -> ([u8; 16], [u8; 16]) {
    let (lo, hi) = match net.trunc() {
        IpNet::V4(n) => (
            std::net::IpAddr::V4(n.network()),
            std::net::IpAddr::V4(n.broadcast()),
        ),
        IpNet::V6(n) => (
            std::net::IpAddr::V6(n.network()),
            std::net::IpAddr::V6(n.broadcast()),
        ),
    };
    (ip_key(lo), ip_key(hi))
}

/// The conditions of a query as SQL over the `traces` row `t`, shared by the indexed part and
/// the tail scan so that both apply exactly the same filters.
struct Conditions {
    sql: String,
    args: Vec<SqlValue>,
}

impl Conditions {
    fn push(&mut self, sql: &str, args: impl IntoIterator<Item = SqlValue>) {
        self.sql.push_str(sql);
        self.args.extend(args);
    }
}

/// The posting list that drives the indexed part of a query: the most selective text filter
/// given (ids and names pick out few traces; a trace name or service type can match most of
/// them). Without one, an address filter drives through its buckets, else the time order.
fn driving_posting(f: &TraceFilter) -> Option<(u8, &str)> {
    use crate::postings::{
        RESOURCE_ID, RESOURCE_NAME, RESOURCE_TYPE, SERVICE_TYPE, TRACE_NAME, USER,
    };
    [
        (RESOURCE_ID, &f.resource_id),
        (RESOURCE_NAME, &f.resource_name),
        (USER, &f.user),
        (TRACE_NAME, &f.trace_name),
        (SERVICE_TYPE, &f.service_type),
        (RESOURCE_TYPE, &f.resource_type),
    ]
    .into_iter()
    .find_map(|(field, v)| v.as_deref().map(|v| (field, v)))
}

pub(crate) fn run(conn: &Connection, project_key: i64, q: &TraceQuery) -> Result<TracePage> {
    let limit = q.limit.max(1) as usize;
    let fetch = limit as i64 + 1;
    if let Some(id) = &q.trace_id {
        // The acknowledgment index answers this one directly, indexed or not.
        let mut stmt = conn.prepare_cached(
            "SELECT seq, trace_id, body, time FROM traces WHERE project_key = ?1 AND trace_id = ?2",
        )?;
        let rows = stmt.query_map(rusqlite::params![project_key, id], |r| row(r, q))?;
        let traces = rows
            .map(|r| r.map(|(t, _)| t))
            .collect::<Result<Vec<_>, _>>()?;
        return Ok(TracePage {
            traces,
            next_marker: None,
        });
    }

    let mut cond = Conditions {
        sql: String::new(),
        args: Vec::new(),
    };
    // `+` keeps SQLite from answering the tail scan through the (project, trace_id) index,
    // which walks every trace of the project: the tail must be a rowid range (`seq > ?`).
    cond.push(" AND +t.project_key = ?", [SqlValue::Integer(project_key)]);
    if let Some(from) = q.from {
        cond.push(" AND t.time >= ?", [SqlValue::Integer(from)]);
    }
    if let Some(to) = q.to {
        cond.push(" AND t.time <= ?", [SqlValue::Integer(to)]);
    }
    match &q.tracker {
        TrackerFilter::Exact(name) => {
            cond.push(" AND t.tracker_name = ?", [SqlValue::Text(name.clone())]);
        }
        TrackerFilter::AllData => cond.push(" AND t.tracker_name <> 'system'", []),
        TrackerFilter::Any => {}
    }
    let f = &q.filter;
    let eq = [
        ("t.service_type", &f.service_type),
        ("t.user_name", &f.user),
        ("t.resource_id", &f.resource_id),
        ("t.resource_name", &f.resource_name),
        ("t.resource_type", &f.resource_type),
        ("t.trace_name", &f.trace_name),
        ("t.trace_rating", &f.trace_rating),
    ];
    for (column, value) in eq {
        if let Some(v) = value {
            cond.push(&format!(" AND {column} = ?"), [SqlValue::Text(v.clone())]);
        }
    }
    let ip_range = f.source_ip.as_ref().map(ip_range);
    if let Some((lo, hi)) = &ip_range {
        cond.push(
            " AND t.source_ip BETWEEN ? AND ?",
            [SqlValue::Blob(lo.to_vec()), SqlValue::Blob(hi.to_vec())],
        );
    }
    let mut before = None;
    if let Some(marker) = &q.marker {
        let pos: Option<(i64, i64)> = conn
            .query_row(
                "SELECT time, seq FROM traces WHERE project_key = ?1 AND trace_id = ?2",
                rusqlite::params![project_key, marker],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let Some((time, seq)) = pos else {
            return Err(StoreError::MarkerNotFound(marker.clone()));
        };
        cond.push(
            " AND (t.time, t.seq) < (?, ?)",
            [SqlValue::Integer(time), SqlValue::Integer(seq)],
        );
        before = Some((time, seq));
    }
    let indexed = crate::index::indexed(conn)? as i64;

    // 1. The indexed part: walk the driving posting list (or the address index) newest first,
    //    fetch each row by seq, check the other conditions on it.
    let (field, values, addresses) = match driving_posting(f) {
        Some((field, value)) => (field, vec![value.to_owned()], None),
        None => match ip_range
            .as_ref()
            .and_then(|(lo, hi)| Some((crate::postings::ip_buckets(lo, hi)?, (*lo, *hi))))
        {
            Some((buckets, range)) => (crate::postings::IP, buckets, Some(range)),
            // No filter with a posting list of its own (or an address range wider than its
            // buckets): the time order, every condition checked on rows.
            None => (crate::postings::TIME, vec![String::new()], None),
        },
    };
    let bounds = crate::postings::Bounds {
        from: q.from,
        to: q.to,
        before,
        indexed,
        addresses,
    };
    let mut found = indexed_part(conn, project_key, field, &values, &bounds, q, &cond, fetch)?;

    // 2. The tail the indexer has not reached: a range scan of the log from its position.
    let mut sql =
        String::from("SELECT t.seq, t.trace_id, t.body, t.time FROM traces t WHERE t.seq > ?");
    let mut args = vec![SqlValue::Integer(indexed)];
    sql.push_str(&cond.sql);
    args.extend(cond.args);
    sql.push_str(" ORDER BY t.time DESC, t.seq DESC LIMIT ?");
    args.push(SqlValue::Integer(fetch));
    found.extend(select(conn, &sql, args, q)?);

    // Newest first across both parts; seq breaks ties in time, as the index keys do.
    found.sort_by_key(|(t, time)| std::cmp::Reverse((*time, t.seq)));
    let mut traces: Vec<StoredTrace> = found.into_iter().map(|(t, _)| t).collect();
    let next_marker = if traces.len() > limit {
        traces.truncate(limit);
        traces.last().map(|t| t.trace_id.clone())
    } else {
        None
    };
    Ok(TracePage {
        traces,
        next_marker,
    })
}

/// The indexed part: the driving posting list's candidates newest first, each row fetched by
/// seq and kept when it meets every condition, until `fetch` are kept.
#[allow(clippy::too_many_arguments)]
fn indexed_part(
    conn: &Connection,
    project_key: i64,
    field: u8,
    values: &[String],
    bounds: &crate::postings::Bounds,
    q: &TraceQuery,
    cond: &Conditions,
    fetch: i64,
) -> Result<Vec<(StoredTrace, i64)>> {
    let mut by_seq = conn.prepare_cached(&format!(
        "SELECT t.seq, t.trace_id, t.body, t.time FROM traces t WHERE t.seq = ?{}",
        cond.sql
    ))?;
    let values: Vec<&str> = values.iter().map(String::as_str).collect();
    let mut found = Vec::new();
    crate::postings::newest_first(conn, project_key, field, &values, bounds, |_, seq| {
        let args = std::iter::once(SqlValue::Integer(seq)).chain(cond.args.iter().cloned());
        // A missing row is a trace retention deleted while this chunk was trimmed.
        if let Some(hit) = by_seq
            .query_row(rusqlite::params_from_iter(args), |r| row(r, q))
            .optional()?
        {
            found.push(hit);
        }
        Ok((found.len() as i64) < fetch)
    })?;
    Ok(found)
}

/// A result row and its `time` (the sort key across the indexed part and the tail).
fn row(r: &rusqlite::Row<'_>, q: &TraceQuery) -> rusqlite::Result<(StoredTrace, i64)> {
    Ok((
        StoredTrace {
            seq: r.get::<_, i64>(0)? as u64,
            project_id: q.project_id.clone(),
            trace_id: r.get(1)?,
            body: r.get(2)?,
        },
        r.get(3)?,
    ))
}

fn select(
    conn: &Connection,
    sql: &str,
    args: Vec<SqlValue>,
    q: &TraceQuery,
) -> Result<Vec<(StoredTrace, i64)>> {
    let mut stmt = conn.prepare_cached(sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| row(r, q))?;
    Ok(rows.collect::<Result<Vec<_>, _>>()?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ipv4_cidr_maps_into_the_ipv4_mapped_range() {
        let net: IpNet = "10.0.0.0/24".parse().unwrap_or_else(|_| unreachable!());
        let (lo, hi) = ip_range(&net);
        assert_eq!(&lo[..12], &[0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff]);
        assert_eq!(&lo[12..], &[10, 0, 0, 0]);
        assert_eq!(&hi[12..], &[10, 0, 0, 255]);
    }
}
