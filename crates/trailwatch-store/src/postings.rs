//! Posting chunks: the query index for the time order and the text filters.
//!
//! One row of `ix.ix_post` lists the traces of one index batch that share a field value: the
//! key is `(project, field, value, max_time, last_seq)` and `entries` holds their `(time, seq)`
//! pairs, sorted, delta- and varint-encoded. A batch of 10,000 IAM logins with 20 users writes
//! a few dozen rows per field instead of 10,000 B-tree entries per field, which is what made
//! the indexer, not the log, the limit of durable ingest.
//!
//! A query walks the chunks of its value newest `max_time` first and merges their entries through
//! a heap: an entry is final once it is newer than every entry the unread chunks can hold (their
//! `max_time` is an upper bound). `max_time` and `min_time` stay bounds, not exact values, after
//! retention trims a chunk.
//!
//! `source_ip` is not here: addresses are nearly unique per trace (a chunk per address would
//! save nothing) and CIDR filters need the ordered address key, so `ix_ip` keeps one entry per
//! trace.

use std::collections::{BinaryHeap, HashMap};

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

use crate::{Result, StoreError};

/// The fields listed in posting chunks: the `field` number stored in `ix_post` and the `traces`
/// column it copies. Field 0 is the time order itself (every trace, value `''`).
pub(crate) const FIELDS: [(u8, &str); 6] = [
    (1, "user_name"),
    (2, "trace_name"),
    (3, "service_type"),
    (4, "resource_type"),
    (5, "resource_name"),
    (6, "resource_id"),
];

/// The field number of the time order (every trace).
pub(crate) const TIME: u8 = 0;

pub(crate) fn create_table(c: &Connection) -> Result<()> {
    c.execute_batch(
        "CREATE TABLE IF NOT EXISTS ix.ix_post (
             project_key INTEGER NOT NULL, field INTEGER NOT NULL, v TEXT NOT NULL,
             max_time INTEGER NOT NULL, last_seq INTEGER NOT NULL,
             min_time INTEGER NOT NULL, first_seq INTEGER NOT NULL, entries BLOB NOT NULL,
             PRIMARY KEY (project_key, field, v, max_time, last_seq)) WITHOUT ROWID;
         CREATE INDEX IF NOT EXISTS ix.ix_post_first ON ix_post(first_seq);",
    )?;
    Ok(())
}

/// Appends `v` as an unsigned LEB128 varint.
fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn get_varint(data: &[u8], at: &mut usize) -> Option<u64> {
    let mut v = 0u64;
    for shift in (0..64).step_by(7) {
        let byte = *data.get(*at)?;
        *at += 1;
        v |= u64::from(byte & 0x7f) << shift;
        if byte & 0x80 == 0 {
            return Some(v);
        }
    }
    None
}

/// Encodes entries sorted by `(time, seq)`: each time as its distance from the previous one
/// (the first from `min_time`), each seq zigzag-encoded from the previous seq.
pub(crate) fn encode(min_time: i64, entries: &[(i64, i64)]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * 3);
    let (mut time, mut seq) = (min_time, 0i64);
    for &(t, s) in entries {
        put_varint(&mut out, t.wrapping_sub(time) as u64);
        let d = s.wrapping_sub(seq);
        put_varint(&mut out, ((d << 1) ^ (d >> 63)) as u64);
        (time, seq) = (t, s);
    }
    out
}

pub(crate) fn decode(min_time: i64, data: &[u8]) -> Result<Vec<(i64, i64)>> {
    let mut out = Vec::with_capacity(data.len() / 3);
    let (mut time, mut seq, mut at) = (min_time, 0i64, 0usize);
    while at < data.len() {
        let (Some(dt), Some(z)) = (get_varint(data, &mut at), get_varint(data, &mut at)) else {
            return Err(StoreError::Corrupt(
                "a posting chunk of the query index is truncated".into(),
            ));
        };
        time = time.wrapping_add(dt as i64);
        seq = seq.wrapping_add(((z >> 1) as i64) ^ -((z & 1) as i64));
        out.push((time, seq));
    }
    Ok(out)
}

/// The chunks of one index batch, grouped by project, field and value.
#[derive(Default)]
pub(crate) struct Batch {
    groups: HashMap<(i64, u8, String), Vec<(i64, i64)>>,
}

impl Batch {
    pub(crate) fn add(&mut self, project_key: i64, field: u8, value: String, time: i64, seq: i64) {
        self.groups
            .entry((project_key, field, value))
            .or_default()
            .push((time, seq));
    }

    /// Writes one `ix_post` row per group.
    pub(crate) fn write(self, c: &Connection) -> Result<()> {
        let mut insert = c.prepare_cached(
            "INSERT OR IGNORE INTO ix.ix_post
                 (project_key, field, v, max_time, last_seq, min_time, first_seq, entries)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        for ((project_key, field, value), mut entries) in self.groups {
            entries.sort_unstable();
            let (Some(&(min_time, _)), Some(&(max_time, _))) = (entries.first(), entries.last())
            else {
                continue;
            };
            let (first_seq, last_seq) = entries
                .iter()
                .fold((i64::MAX, i64::MIN), |(lo, hi), &(_, s)| {
                    (lo.min(s), hi.max(s))
                });
            insert.execute(rusqlite::params![
                project_key,
                field,
                value,
                max_time,
                last_seq,
                min_time,
                first_seq,
                encode(min_time, &entries),
            ])?;
        }
        Ok(())
    }
}

/// Drops the entries with `seq <= bound` (retention deleted their traces): chunks wholly at or
/// below it go, chunks that straddle it are rewritten without them. Both are found through the
/// `first_seq` index, so this costs what is removed, not a scan of the index.
pub(crate) fn forget_upto(c: &Connection, bound: i64) -> Result<()> {
    let straddling: Vec<(Vec<SqlValue>, i64, Vec<u8>)> = {
        let mut stmt = c.prepare_cached(
            "SELECT project_key, field, v, max_time, last_seq, min_time, entries FROM ix.ix_post
             WHERE first_seq <= ?1 AND last_seq > ?1",
        )?;
        let rows = stmt.query_map([bound], |r| {
            Ok((
                vec![
                    SqlValue::Integer(r.get(0)?),
                    SqlValue::Integer(r.get(1)?),
                    SqlValue::Text(r.get(2)?),
                    SqlValue::Integer(r.get(3)?),
                    SqlValue::Integer(r.get(4)?),
                ],
                r.get(5)?,
                r.get(6)?,
            ))
        })?;
        rows.collect::<rusqlite::Result<_>>()?
    };
    let mut update = c.prepare_cached(
        "UPDATE ix.ix_post SET first_seq = ?6, entries = ?7
         WHERE project_key = ?1 AND field = ?2 AND v = ?3 AND max_time = ?4 AND last_seq = ?5",
    )?;
    for (key, min_time, data) in straddling {
        let kept: Vec<(i64, i64)> = decode(min_time, &data)?
            .into_iter()
            .filter(|&(_, s)| s > bound)
            .collect();
        let first_seq = kept.iter().map(|&(_, s)| s).min().unwrap_or(bound + 1);
        // `min_time` stays as it was: still a lower bound, and the base of the encoding.
        let mut args = key;
        args.push(SqlValue::Integer(first_seq));
        args.push(SqlValue::Blob(encode(min_time, &kept)));
        update.execute(rusqlite::params_from_iter(args))?;
    }
    c.prepare_cached("DELETE FROM ix.ix_post WHERE first_seq <= ?1")?
        .execute([bound])?;
    Ok(())
}

/// Which entries of the chunks a query may return.
pub(crate) struct Bounds {
    pub from: Option<i64>,
    pub to: Option<i64>,
    /// Only entries strictly older than this `(time, seq)` (the page marker).
    pub before: Option<(i64, i64)>,
    /// Only entries the index's position covers (newer traces are found by the tail scan).
    pub indexed: i64,
}

impl Bounds {
    fn admits(&self, (time, seq): (i64, i64)) -> bool {
        seq <= self.indexed
            && self.from.is_none_or(|f| time >= f)
            && self.to.is_none_or(|t| time <= t)
            && self.before.is_none_or(|b| (time, seq) < b)
    }

    /// Whether a chunk with entries from `min_time` on can hold an admitted entry (its
    /// `max_time` is checked by the SQL).
    fn may_hold(&self, min_time: i64) -> bool {
        self.to.is_none_or(|t| min_time <= t) && self.before.is_none_or(|(t, _)| min_time <= t)
    }
}

/// The entries of `(project, field, value)` within `bounds`, newest first, handed to `accept`
/// one by one until it returns `Ok(false)` (enough found) or the entries run out.
pub(crate) fn newest_first(
    conn: &Connection,
    project_key: i64,
    field: u8,
    value: &str,
    bounds: &Bounds,
    mut accept: impl FnMut(i64, i64) -> Result<bool>,
) -> Result<()> {
    let mut chunks = conn.prepare_cached(
        "SELECT max_time, min_time, entries FROM ix.ix_post
         WHERE project_key = ?1 AND field = ?2 AND v = ?3 AND max_time >= ?4
         ORDER BY max_time DESC, last_seq DESC",
    )?;
    let mut rows = chunks.query(rusqlite::params![
        project_key,
        field,
        value,
        bounds.from.unwrap_or(i64::MIN)
    ])?;
    let mut heap: BinaryHeap<(i64, i64)> = BinaryHeap::new();
    let mut last = None;
    loop {
        let row = rows.next()?;
        let ceiling = match row {
            Some(r) => Some(r.get::<_, i64>(0)?),
            None => None,
        };
        // Everything newer than what the next chunk can hold is in its final place.
        while let Some(&top) = heap.peek() {
            if ceiling.is_some_and(|c| top.0 <= c) {
                break;
            }
            heap.pop();
            if last == Some(top) {
                continue;
            }
            last = Some(top);
            if !accept(top.0, top.1)? {
                return Ok(());
            }
        }
        let Some(r) = row else {
            return Ok(());
        };
        let min_time: i64 = r.get(1)?;
        if !bounds.may_hold(min_time) {
            continue;
        }
        let data = r
            .get_ref(2)?
            .as_blob()
            .map_err(|e| StoreError::Corrupt(format!("a posting chunk of the query index: {e}")))?;
        heap.extend(
            decode(min_time, data)?
                .into_iter()
                .filter(|&e| bounds.admits(e)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_round_trip_through_the_encoding() {
        let entries = vec![
            (-5_000_000_000_000, 7),
            (0, 3),
            (1_732_390_000_014, 1),
            (1_732_390_000_014, 2),
            (1_732_390_000_999, i64::MAX - 1),
            (i64::MAX, 9),
        ];
        let data = encode(-5_000_000_000_000, &entries);
        assert_eq!(decode(-5_000_000_000_000, &data).ok(), Some(entries));
    }

    #[test]
    fn a_truncated_chunk_is_reported_as_corrupt() {
        let data = encode(0, &[(1_000_000, 1_000_000)]);
        let cut = &data[..data.len() - 1];
        assert!(matches!(decode(0, cut), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn consecutive_logins_take_about_three_bytes_each() {
        let entries: Vec<(i64, i64)> = (0..10_000)
            .map(|i| (1_732_390_000_000 + i * 7, i))
            .collect();
        let data = encode(1_732_390_000_000, &entries);
        assert!(data.len() <= 3 * entries.len(), "{} bytes", data.len());
    }
}
