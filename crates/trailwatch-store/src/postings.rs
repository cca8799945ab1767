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
//! `source_ip` (field 7) is listed by address bucket, not by address: addresses are nearly
//! unique per trace, so a chunk per address would save nothing. The bucket is a hash of the
//! address's /24 (IPv4) or /48 (IPv6) network into 256 values, and each entry carries its
//! address. An address or a CIDR range of at least a /16 (IPv4) or /40 (IPv6) reads the chunks
//! of at most 256 buckets and keeps the entries inside the range; a wider range is answered by
//! the time order with the address checked on rows.

use std::collections::{BinaryHeap, HashMap};

use rusqlite::Connection;
use rusqlite::types::Value as SqlValue;

use crate::{Result, StoreError};

/// The fields listed in posting chunks: the `field` number stored in `ix_post` and the `traces`
/// column it copies. Field 0 is the time order itself (every trace, value `''`).
pub(crate) const FIELDS: [(u8, &str); 6] = [
    (USER, "user_name"),
    (TRACE_NAME, "trace_name"),
    (SERVICE_TYPE, "service_type"),
    (RESOURCE_TYPE, "resource_type"),
    (RESOURCE_NAME, "resource_name"),
    (RESOURCE_ID, "resource_id"),
];
pub(crate) const USER: u8 = 1;
pub(crate) const TRACE_NAME: u8 = 2;
pub(crate) const SERVICE_TYPE: u8 = 3;
pub(crate) const RESOURCE_TYPE: u8 = 4;
pub(crate) const RESOURCE_NAME: u8 = 5;
pub(crate) const RESOURCE_ID: u8 = 6;

/// The field number of the time order (every trace).
pub(crate) const TIME: u8 = 0;

/// The field number of `source_ip` (value: the address's bucket, entries carry the address).
pub(crate) const IP: u8 = 7;

/// `(time, seq, address)`; the address is all zeros in the chunks of other fields.
pub(crate) type Entry = (i64, i64, [u8; 16]);

/// The first 12 bytes of an IPv4 address's 16-byte key (IPv4-mapped IPv6).
const MAPPED: [u8; 12] = [0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff];

/// How many bytes of a key name its bucket's network: /24 of IPv4, /48 of IPv6.
fn network_len(key: &[u8; 16]) -> usize {
    if key[..12] == MAPPED { 15 } else { 6 }
}

/// The bucket of a network prefix: FNV-1a (stable across versions: it is stored) onto 256
/// values, as two hex digits.
fn bucket_of(network: &[u8]) -> String {
    let hash = network.iter().fold(0xcbf2_9ce4_8422_2325u64, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    });
    format!("{:02x}", hash % 256)
}

/// The bucket an address key is listed under.
pub(crate) fn ip_bucket(key: &[u8; 16]) -> String {
    bucket_of(&key[..network_len(key)])
}

/// The buckets that can hold the addresses `lo..=hi` (a network and its broadcast key), or
/// `None` when the range spans more than 256 bucket networks (or mixes IPv4-mapped and other
/// IPv6 keys): such a query is answered by the time order instead.
pub(crate) fn ip_buckets(lo: &[u8; 16], hi: &[u8; 16]) -> Option<Vec<String>> {
    let len = network_len(lo);
    if network_len(hi) != len || (len == 6 && lo[..6] == [0; 6]) {
        // `::/48`-like ranges can hold IPv4-mapped keys, which are bucketed by their /24.
        return None;
    }
    let last = len - 1;
    if lo[..last] != hi[..last] {
        return None;
    }
    let mut buckets: Vec<String> = (lo[last]..=hi[last])
        .map(|b| {
            let mut network = lo[..len].to_vec();
            network[last] = b;
            bucket_of(&network)
        })
        .collect();
    buckets.sort_unstable();
    buckets.dedup();
    Some(buckets)
}

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
/// (the first from `min_time`), each seq zigzag-encoded from the previous seq; in `source_ip`
/// chunks each address follows as 4 bytes (IPv4) or 16 bytes after a length byte.
pub(crate) fn encode(field: u8, min_time: i64, entries: &[Entry]) -> Vec<u8> {
    let mut out = Vec::with_capacity(entries.len() * if field == IP { 9 } else { 3 });
    let (mut time, mut seq) = (min_time, 0i64);
    for &(t, s, addr) in entries {
        put_varint(&mut out, t.wrapping_sub(time) as u64);
        let d = s.wrapping_sub(seq);
        put_varint(&mut out, ((d << 1) ^ (d >> 63)) as u64);
        if field == IP {
            if addr[..12] == MAPPED {
                out.push(4);
                out.extend_from_slice(&addr[12..]);
            } else {
                out.push(16);
                out.extend_from_slice(&addr);
            }
        }
        (time, seq) = (t, s);
    }
    out
}

pub(crate) fn decode(field: u8, min_time: i64, data: &[u8]) -> Result<Vec<Entry>> {
    let truncated =
        || StoreError::Corrupt("a posting chunk of the query index is truncated".into());
    let mut out = Vec::with_capacity(data.len() / if field == IP { 9 } else { 3 });
    let (mut time, mut seq, mut at) = (min_time, 0i64, 0usize);
    while at < data.len() {
        let (Some(dt), Some(z)) = (get_varint(data, &mut at), get_varint(data, &mut at)) else {
            return Err(truncated());
        };
        time = time.wrapping_add(dt as i64);
        seq = seq.wrapping_add(((z >> 1) as i64) ^ -((z & 1) as i64));
        let mut addr = [0u8; 16];
        if field == IP {
            let len = usize::from(*data.get(at).ok_or_else(truncated)?);
            let bytes = data.get(at + 1..at + 1 + len).ok_or_else(truncated)?;
            match len {
                4 => {
                    addr[..12].copy_from_slice(&MAPPED);
                    addr[12..].copy_from_slice(bytes);
                }
                16 => addr.copy_from_slice(bytes),
                _ => return Err(truncated()),
            }
            at += 1 + len;
        }
        out.push((time, seq, addr));
    }
    Ok(out)
}

/// The chunks of one index batch, grouped by project, field and value.
#[derive(Default)]
pub(crate) struct Batch {
    groups: HashMap<(i64, u8, String), Vec<Entry>>,
}

impl Batch {
    pub(crate) fn add(&mut self, project_key: i64, field: u8, value: String, entry: Entry) {
        self.groups
            .entry((project_key, field, value))
            .or_default()
            .push(entry);
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
            let (Some(&(min_time, ..)), Some(&(max_time, ..))) = (entries.first(), entries.last())
            else {
                continue;
            };
            let (first_seq, last_seq) = entries
                .iter()
                .fold((i64::MAX, i64::MIN), |(lo, hi), &(_, s, _)| {
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
                encode(field, min_time, &entries),
            ])?;
        }
        Ok(())
    }
}

/// Drops the entries with `seq <= bound` (retention deleted their traces): chunks wholly at or
/// below it go, chunks that straddle it are rewritten without them. Both are found through the
/// `first_seq` index, so this costs what is removed, not a scan of the index.
pub(crate) fn forget_upto(c: &Connection, bound: i64) -> Result<()> {
    let straddling: Vec<(Vec<SqlValue>, u8, i64, Vec<u8>)> = {
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
                r.get(1)?,
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
    for (key, field, min_time, data) in straddling {
        let kept: Vec<Entry> = decode(field, min_time, &data)?
            .into_iter()
            .filter(|&(_, s, _)| s > bound)
            .collect();
        let first_seq = kept.iter().map(|&(_, s, _)| s).min().unwrap_or(bound + 1);
        // `min_time` stays as it was: still a lower bound, and the base of the encoding.
        let mut args = key;
        args.push(SqlValue::Integer(first_seq));
        args.push(SqlValue::Blob(encode(field, min_time, &kept)));
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
    /// `source_ip` chunks: only addresses in this inclusive key range.
    pub addresses: Option<([u8; 16], [u8; 16])>,
}

impl Bounds {
    fn admits(&self, (time, seq, addr): Entry) -> bool {
        seq <= self.indexed
            && self
                .addresses
                .is_none_or(|(lo, hi)| lo <= addr && addr <= hi)
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

/// The entries of `(project, field, one of values)` within `bounds`, newest first, handed to
/// `accept` one by one until it returns `Ok(false)` (enough found) or the entries run out.
/// Chunk keys are walked first (sorted by SQLite when there are several values) and each
/// chunk's entries read only when the walk reaches it.
pub(crate) fn newest_first(
    conn: &Connection,
    project_key: i64,
    field: u8,
    values: &[&str],
    bounds: &Bounds,
    mut accept: impl FnMut(i64, i64) -> Result<bool>,
) -> Result<()> {
    let placeholders = vec!["?"; values.len()].join(", ");
    let mut chunks = conn.prepare_cached(&format!(
        "SELECT v, max_time, last_seq, min_time FROM ix.ix_post
         WHERE project_key = ? AND field = ? AND max_time >= ? AND v IN ({placeholders})
         ORDER BY max_time DESC, last_seq DESC"
    ))?;
    let mut entries = conn.prepare_cached(
        "SELECT entries FROM ix.ix_post
         WHERE project_key = ?1 AND field = ?2 AND v = ?3 AND max_time = ?4 AND last_seq = ?5",
    )?;
    let args = [
        SqlValue::Integer(project_key),
        SqlValue::Integer(i64::from(field)),
        SqlValue::Integer(bounds.from.unwrap_or(i64::MIN)),
    ]
    .into_iter()
    .chain(values.iter().map(|v| SqlValue::Text((*v).to_owned())));
    let mut rows = chunks.query(rusqlite::params_from_iter(args))?;
    let mut heap: BinaryHeap<(i64, i64)> = BinaryHeap::new();
    let mut last = None;
    loop {
        let row = rows.next()?;
        let ceiling = match row {
            Some(r) => Some(r.get::<_, i64>(1)?),
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
        let min_time: i64 = r.get(3)?;
        if !bounds.may_hold(min_time) {
            continue;
        }
        let (v, max_time, last_seq): (String, i64, i64) = (r.get(0)?, r.get(1)?, r.get(2)?);
        let data: Vec<u8> = entries.query_row(
            rusqlite::params![project_key, field, v, max_time, last_seq],
            |r| r.get(0),
        )?;
        heap.extend(
            decode(field, min_time, &data)?
                .into_iter()
                .filter(|&e| bounds.admits(e))
                .map(|(time, seq, _)| (time, seq)),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn plain(entries: &[(i64, i64)]) -> Vec<Entry> {
        entries.iter().map(|&(t, s)| (t, s, [0; 16])).collect()
    }

    #[test]
    fn entries_round_trip_through_the_encoding() {
        let entries = plain(&[
            (-5_000_000_000_000, 7),
            (0, 3),
            (1_732_390_000_014, 1),
            (1_732_390_000_014, 2),
            (1_732_390_000_999, i64::MAX - 1),
            (i64::MAX, 9),
        ]);
        let data = encode(TIME, -5_000_000_000_000, &entries);
        assert_eq!(decode(TIME, -5_000_000_000_000, &data).ok(), Some(entries));
    }

    #[test]
    fn addresses_round_trip_in_source_ip_chunks() {
        let v4 = crate::ip_key("203.0.113.9".parse().unwrap_or_else(|_| unreachable!()));
        let v6 = crate::ip_key("2001:db8::1".parse().unwrap_or_else(|_| unreachable!()));
        let entries = vec![(10, 1, v4), (10, 2, v6), (12, 3, v4)];
        let data = encode(IP, 10, &entries);
        assert_eq!(data.len(), 3 * 2 + 5 + 17 + 5);
        assert_eq!(decode(IP, 10, &data).ok(), Some(entries));
        assert!(matches!(
            decode(IP, 10, &data[..data.len() - 2]),
            Err(StoreError::Corrupt(_))
        ));
    }

    #[test]
    fn a_range_reads_the_buckets_of_its_networks() {
        let key = |s: &str| crate::ip_key(s.parse().unwrap_or_else(|_| unreachable!()));
        let range = |s: &str| {
            let net: ipnet::IpNet = s.parse().unwrap_or_else(|_| unreachable!());
            crate::query::ip_range(&net)
        };
        let (lo, hi) = range("203.0.113.9/32");
        assert_eq!(
            ip_buckets(&lo, &hi),
            Some(vec![ip_bucket(&key("203.0.113.200"))])
        );
        let (lo, hi) = range("10.1.0.0/16");
        let buckets = ip_buckets(&lo, &hi).unwrap_or_default();
        assert!(buckets.contains(&ip_bucket(&key("10.1.77.3"))));
        assert!(buckets.len() > 100, "{} buckets", buckets.len());
        for wide in ["10.0.0.0/15", "2001:db8::/32", "::/64", "0.0.0.0/0"] {
            let (lo, hi) = range(wide);
            assert_eq!(ip_buckets(&lo, &hi), None, "{wide}");
        }
        let (lo, hi) = range("2001:db8:1::/48");
        assert_eq!(
            ip_buckets(&lo, &hi),
            Some(vec![ip_bucket(&key("2001:db8:1:806f::8c"))])
        );
    }

    #[test]
    fn a_truncated_chunk_is_reported_as_corrupt() {
        let data = encode(TIME, 0, &plain(&[(1_000_000, 1_000_000)]));
        let cut = &data[..data.len() - 1];
        assert!(matches!(decode(TIME, 0, cut), Err(StoreError::Corrupt(_))));
    }

    #[test]
    fn consecutive_logins_take_about_three_bytes_each() {
        let entries: Vec<Entry> = (0..10_000)
            .map(|i| (1_732_390_000_000 + i * 7, i, [0; 16]))
            .collect();
        let data = encode(TIME, 1_732_390_000_000, &entries);
        assert!(data.len() <= 3 * entries.len(), "{} bytes", data.len());
    }
}
