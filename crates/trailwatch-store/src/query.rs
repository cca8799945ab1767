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

pub(crate) fn run(conn: &Connection, project_key: i64, q: &TraceQuery) -> Result<TracePage> {
    let mut sql =
        String::from("SELECT t.seq, t.trace_id, t.body FROM traces t WHERE t.project_key = ?");
    let mut args: Vec<SqlValue> = vec![SqlValue::Integer(project_key)];

    if let Some(id) = &q.trace_id {
        sql.push_str(" AND t.trace_id = ?");
        args.push(SqlValue::Text(id.clone()));
    } else {
        if let Some(from) = q.from {
            sql.push_str(" AND t.time >= ?");
            args.push(SqlValue::Integer(from));
        }
        if let Some(to) = q.to {
            sql.push_str(" AND t.time <= ?");
            args.push(SqlValue::Integer(to));
        }
        match &q.tracker {
            TrackerFilter::Exact(name) => {
                sql.push_str(" AND t.tracker_name = ?");
                args.push(SqlValue::Text(name.clone()));
            }
            TrackerFilter::AllData => sql.push_str(" AND t.tracker_name <> 'system'"),
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
                sql.push_str(" AND ");
                sql.push_str(column);
                sql.push_str(" = ?");
                args.push(SqlValue::Text(v.clone()));
            }
        }
        if let Some(net) = &f.source_ip {
            let (lo, hi) = ip_range(net);
            sql.push_str(" AND t.source_ip BETWEEN ? AND ?");
            args.push(SqlValue::Blob(lo.to_vec()));
            args.push(SqlValue::Blob(hi.to_vec()));
        }
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
            sql.push_str(" AND (t.time, t.seq) < (?, ?)");
            args.push(SqlValue::Integer(time));
            args.push(SqlValue::Integer(seq));
        }
    }
    sql.push_str(" ORDER BY t.time DESC, t.seq DESC LIMIT ?");
    let limit = q.limit.max(1) as usize;
    args.push(SqlValue::Integer(limit as i64 + 1));

    let mut stmt = conn.prepare_cached(&sql)?;
    let rows = stmt.query_map(rusqlite::params_from_iter(args), |r| {
        Ok(StoredTrace {
            seq: r.get::<_, i64>(0)? as u64,
            project_id: q.project_id.clone(),
            trace_id: r.get(1)?,
            body: r.get(2)?,
        })
    })?;
    let mut traces = rows.collect::<Result<Vec<_>, _>>()?;
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
