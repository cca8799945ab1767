//! The `IP` environment variable: a list of addresses and CIDR ranges, and exact membership.
//!
//! The tutorial matched with `ip.find(source_ip)`, a *substring* test: `10.0.0.1` "contained"
//! `10.0.0.11`, and an empty source address matched everything. [`IpList::contains`] compares
//! addresses numerically against the listed ranges instead.
//!
//! Syntax accepted by [`IpList::parse`]:
//!
//! - entries are separated by commas, semicolons or whitespace (spaces, tabs, newlines), in any
//!   mix; a run of separators counts as one, so `a, b`, `a;b`, `a,\nb` and a trailing comma are
//!   all fine;
//! - an entry is an IPv4 or IPv6 address (`192.0.2.7`, `2001:db8::1`) or a CIDR range
//!   (`10.0.0.0/8`, `2001:db8::/32`);
//! - a CIDR range must not have host bits set: `10.0.0.1/24` is an error (it could mean
//!   `10.0.0.0/24` or a typo for `10.0.0.1/32`; the message suggests the former);
//! - IPv4-mapped IPv6 is normalised to IPv4: `::ffff:10.0.0.1` is `10.0.0.1`, and
//!   `::ffff:10.0.0.0/104` is `10.0.0.0/8` (prefix − 96). Lookups normalise the same way, so a
//!   dual-stack front end reporting `::ffff:10.0.0.1` matches `10.0.0.1` and vice versa. A range
//!   with a prefix shorter than 96 (e.g. `::/0`) stays an IPv6 range: it does not cover IPv4;
//! - zone ids (`fe80::1%eth0`), brackets, ports and leading zeros in IPv4 octets are errors.
//!
//! A bad entry is an error naming the entry and its 1-based position among the entries. An
//! empty list is an error unless the caller asks for [`IpList::parse_allow_empty`].
//!
//! Lookup: the ranges are merged into one sorted, non-overlapping table per address family and
//! searched with a binary search — a handful of comparisons for a 50-entry list.

use std::net::{IpAddr, Ipv4Addr};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};

use crate::text::quote;

/// A parsed allowlist (or denylist): IPv4 and IPv6 ranges with exact membership.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IpList {
    /// The entries as parsed (normalised), in input order.
    entries: Vec<IpNet>,
    /// Merged, sorted, non-overlapping inclusive ranges.
    v4: Vec<(u32, u32)>,
    v6: Vec<(u128, u128)>,
}

/// Why an `IP` list was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IpListError {
    /// The list has no entries and the caller did not allow that.
    #[error("the IP list is empty; give at least one address or CIDR range")]
    Empty,
    /// One entry is not an address or range.
    #[error("IP list entry {position} {entry}: {reason}")]
    BadEntry {
        /// 1-based position among the entries.
        position: usize,
        /// The entry, quoted.
        entry: String,
        /// What is wrong with it.
        reason: String,
    },
}

fn is_separator(c: char) -> bool {
    c == ',' || c == ';' || c.is_whitespace()
}

/// IPv4-mapped IPv6 `::ffff:a.b.c.d/len` with len ≥ 96 → IPv4 `/len-96`.
fn normalize_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(n) if n.prefix_len() >= 96 => match n.network().to_ipv4_mapped() {
            Some(v4) => match Ipv4Net::new(v4, n.prefix_len() - 96) {
                Ok(n4) => IpNet::V4(n4),
                Err(_) => net,
            },
            None => net,
        },
        other => other,
    }
}

fn parse_entry(entry: &str) -> Result<IpNet, String> {
    match entry.split_once('/') {
        Some((addr, len)) => {
            let addr: IpAddr = addr
                .parse()
                .map_err(|_| format!("{} is not an IPv4 or IPv6 address", quote(addr)))?;
            let max = if addr.is_ipv4() { 32 } else { 128 };
            let len: u8 = match len.parse() {
                Ok(l) if l <= max && !len.starts_with('+') => l,
                _ => {
                    return Err(format!(
                        "prefix length {} must be a number from 0 to {max}",
                        quote(len)
                    ));
                }
            };
            let net = match addr {
                IpAddr::V4(a) => Ipv4Net::new(a, len).map(IpNet::V4),
                IpAddr::V6(a) => Ipv6Net::new(a, len).map(IpNet::V6),
            }
            .map_err(|e| e.to_string())?;
            if net.addr() != net.network() {
                return Err(format!(
                    "host bits are set after the /{len} prefix; did you mean {}?",
                    net.trunc()
                ));
            }
            Ok(normalize_net(net))
        }
        None => {
            let addr: IpAddr = entry
                .parse()
                .map_err(|_| "not an IPv4 or IPv6 address or CIDR range".to_owned())?;
            let addr = addr.to_canonical();
            Ok(IpNet::from(addr))
        }
    }
}

/// Sorts and merges inclusive ranges (adjacent ones too).
fn merge<T: Ord + Copy>(mut ranges: Vec<(T, T)>, succ: fn(T) -> Option<T>) -> Vec<(T, T)> {
    ranges.sort_unstable();
    let mut out: Vec<(T, T)> = Vec::with_capacity(ranges.len());
    for (lo, hi) in ranges {
        if let Some(last) = out.last_mut() {
            let touches = succ(last.1).is_none_or(|next| lo <= next);
            if touches {
                if hi > last.1 {
                    last.1 = hi;
                }
                continue;
            }
        }
        out.push((lo, hi));
    }
    out
}

/// Whether `x` lies in one of the sorted, disjoint inclusive `ranges`.
#[inline]
fn in_ranges<T: Ord + Copy>(ranges: &[(T, T)], x: T) -> bool {
    // Index of the first range starting after x; the candidate is the one before it.
    let i = ranges.partition_point(|r| r.0 <= x);
    i > 0 && x <= ranges[i - 1].1
}

impl IpList {
    /// Parses a list; an empty (or all-separator) list is [`IpListError::Empty`].
    pub fn parse(text: &str) -> Result<IpList, IpListError> {
        let list = IpList::parse_allow_empty(text)?;
        if list.is_empty() {
            return Err(IpListError::Empty);
        }
        Ok(list)
    }

    /// Parses a list, accepting an empty one (which contains nothing).
    pub fn parse_allow_empty(text: &str) -> Result<IpList, IpListError> {
        let mut entries = Vec::new();
        for (i, entry) in text
            .split(is_separator)
            .filter(|e| !e.is_empty())
            .enumerate()
        {
            let net = parse_entry(entry).map_err(|reason| IpListError::BadEntry {
                position: i + 1,
                entry: quote(entry),
                reason,
            })?;
            entries.push(net);
        }
        Ok(IpList::from_nets(entries))
    }

    /// A list of the given ranges (normalised like parsed entries).
    pub fn from_nets(nets: impl IntoIterator<Item = IpNet>) -> IpList {
        let entries: Vec<IpNet> = nets.into_iter().map(|n| normalize_net(n.trunc())).collect();
        let mut v4 = Vec::new();
        let mut v6 = Vec::new();
        for net in &entries {
            match net {
                IpNet::V4(n) => v4.push((u32::from(n.network()), u32::from(n.broadcast()))),
                IpNet::V6(n) => v6.push((u128::from(n.network()), u128::from(n.broadcast()))),
            }
        }
        IpList {
            v4: merge(v4, |x: u32| x.checked_add(1)),
            v6: merge(v6, |x: u128| x.checked_add(1)),
            entries,
        }
    }

    /// Exact membership: is `addr` inside one of the listed addresses or ranges? IPv4-mapped
    /// IPv6 addresses are looked up as IPv4.
    #[inline]
    pub fn contains(&self, addr: IpAddr) -> bool {
        match addr {
            IpAddr::V4(a) => self.contains_v4(a),
            IpAddr::V6(a) => match a.to_ipv4_mapped() {
                Some(v4) => self.contains_v4(v4),
                None => in_ranges(&self.v6, u128::from(a)),
            },
        }
    }

    #[inline]
    fn contains_v4(&self, a: Ipv4Addr) -> bool {
        in_ranges(&self.v4, u32::from(a))
    }

    /// The entries as parsed (normalised), in input order, duplicates included.
    pub fn entries(&self) -> &[IpNet] {
        &self.entries
    }

    /// Number of entries.
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    /// True when the list has no entries (contains nothing).
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }
}

impl std::fmt::Display for IpList {
    /// The entries, comma-separated, single addresses without `/32` or `/128`.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, net) in self.entries.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            if net.prefix_len() == net.max_prefix_len() {
                write!(f, "{}", net.addr())?;
            } else {
                write!(f, "{net}")?;
            }
        }
        Ok(())
    }
}

/// Convenience for tests and callers holding text: parses `s` as an address, normalising
/// IPv4-mapped IPv6. `None` when it is not an address.
pub fn parse_addr(s: &str) -> Option<IpAddr> {
    s.trim().parse::<IpAddr>().ok().map(|a| a.to_canonical())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn single_address_is_exact_not_substring() {
        let l = IpList::parse("10.0.0.1").unwrap();
        assert!(l.contains(ip("10.0.0.1")));
        assert!(!l.contains(ip("10.0.0.11")));
        assert!(!l.contains(ip("10.0.0.10")));
        assert!(!l.contains(ip("110.0.0.1")));
        assert!(!l.contains(ip("10.0.0.0")));
        assert!(!l.contains(ip("10.0.0.2")));
    }

    #[test]
    fn cidr_v4_and_v6() {
        let l = IpList::parse("10.0.0.0/8, 2001:db8::/32").unwrap();
        assert!(l.contains(ip("10.255.255.255")));
        assert!(l.contains(ip("10.0.0.0")));
        assert!(!l.contains(ip("11.0.0.0")));
        assert!(!l.contains(ip("9.255.255.255")));
        assert!(l.contains(ip("2001:db8::1")));
        assert!(l.contains(ip("2001:db8:ffff:ffff:ffff:ffff:ffff:ffff")));
        assert!(!l.contains(ip("2001:db9::")));
        assert!(!l.contains(ip("2001:db7:ffff::1")));
        // families do not leak into each other: 10.0.0.1 as raw IPv6 bits is ::a00:1
        assert!(!l.contains(ip("::a00:1")));
    }

    #[test]
    fn mapped_ipv6_is_normalised_both_ways() {
        let l = IpList::parse("::ffff:10.0.0.1").unwrap();
        assert_eq!(l.entries(), &["10.0.0.1/32".parse::<IpNet>().unwrap()]);
        assert!(l.contains(ip("10.0.0.1")));
        assert!(l.contains(ip("::ffff:10.0.0.1")));
        assert!(!l.contains(ip("10.0.0.11")));

        let l = IpList::parse("::ffff:10.0.0.0/104").unwrap();
        assert_eq!(l.to_string(), "10.0.0.0/8");
        assert!(l.contains(ip("10.200.1.1")));
        assert!(l.contains(ip("::ffff:10.200.1.1")));
        assert!(!l.contains(ip("11.0.0.1")));

        let l = IpList::parse("192.0.2.0/24").unwrap();
        assert!(l.contains(ip("::ffff:192.0.2.9")));
        assert!(!l.contains(ip("::ffff:192.0.3.9")));

        // ::/0 is IPv6 only
        let l = IpList::parse("::/0").unwrap();
        assert!(l.contains(ip("2a00::1")));
        assert!(!l.contains(ip("10.0.0.1")));
        assert!(!l.contains(ip("::ffff:10.0.0.1")));
    }

    #[test]
    fn separators_mix_freely() {
        let l = IpList::parse(" 1.1.1.1,2.2.2.2;3.3.3.3 4.4.4.4\t5.5.5.5\n6.6.6.6 ,; 7.7.7.7,")
            .unwrap();
        assert_eq!(l.len(), 7);
        for i in 1..=7 {
            assert!(l.contains(ip(&format!("{i}.{i}.{i}.{i}"))), "{i}");
        }
        assert!(!l.contains(ip("8.8.8.8")));
    }

    #[test]
    fn bad_entries_are_named_with_position() {
        let e = IpList::parse("1.1.1.1, 10.0.0.300, 2.2.2.2").unwrap_err();
        assert_eq!(
            e,
            IpListError::BadEntry {
                position: 2,
                entry: "\"10.0.0.300\"".into(),
                reason: "not an IPv4 or IPv6 address or CIDR range".into()
            }
        );
        assert_eq!(
            e.to_string(),
            "IP list entry 2 \"10.0.0.300\": not an IPv4 or IPv6 address or CIDR range"
        );
        let e = IpList::parse("10.0.0.1/24").unwrap_err();
        assert!(e.to_string().contains("did you mean 10.0.0.0/24?"), "{e}");
        let e = IpList::parse("1.1.1.1;10.0.0.0/33").unwrap_err();
        assert!(e.to_string().contains("entry 2"), "{e}");
        assert!(e.to_string().contains("0 to 32"), "{e}");
        for bad in [
            "fe80::1%eth0",
            "[::1]",
            "1.2.3.4:80",
            "010.0.0.1",
            "10.0.0.0/",
            "10.0.0.0/+8",
            "/8",
            "example.com",
            "2001:db8::/129",
        ] {
            let e = IpList::parse(bad).unwrap_err();
            assert!(
                matches!(e, IpListError::BadEntry { position: 1, .. }),
                "{bad}: {e}"
            );
        }
    }

    #[test]
    fn empty_lists() {
        assert_eq!(IpList::parse(""), Err(IpListError::Empty));
        assert_eq!(IpList::parse(" ,; "), Err(IpListError::Empty));
        let l = IpList::parse_allow_empty(" , ").unwrap();
        assert!(l.is_empty());
        assert!(!l.contains(ip("1.1.1.1")));
        assert!(!l.contains(ip("::1")));
    }

    #[test]
    fn overlapping_and_adjacent_ranges_merge() {
        let l = IpList::parse("10.0.0.0/25 10.0.0.128/25 10.0.0.64/26 10.0.1.5 0.0.0.0/0").unwrap();
        assert_eq!(l.v4, vec![(0, u32::MAX)]);
        let l = IpList::parse("10.0.0.0/25 10.0.0.128/25 10.0.2.0/24").unwrap();
        assert_eq!(l.v4.len(), 2);
        assert!(l.contains(ip("10.0.0.255")));
        assert!(!l.contains(ip("10.0.1.0")));
        assert!(l.contains(ip("10.0.2.255")));
        let l = IpList::parse("::/0 ::1").unwrap();
        assert_eq!(l.v6, vec![(0, u128::MAX)]);
    }

    #[test]
    fn display_round_trips() {
        let text = "10.0.0.1,10.0.0.0/8,2001:db8::/32,::1";
        let l = IpList::parse(text).unwrap();
        assert_eq!(l.to_string(), text);
        assert_eq!(IpList::parse(&l.to_string()).unwrap(), l);
    }

    #[test]
    fn the_bench_allowlist_agrees_with_a_linear_scan() {
        // the 50-entry list of ../shared/bench-peers/allowlist.txt
        let text = "203.0.113.0/24 198.51.100.0/24 192.0.2.0/25 10.0.0.0/16 10.1.0.0/16 10.2.0.0/16 10.3.0.0/16 10.4.0.0/16 10.5.0.0/16 10.6.0.0/16 \
                    10.7.0.0/16 10.8.0.0/16 10.9.0.0/16 10.10.0.0/16 10.11.0.0/16 100.64.0.0/22 100.64.4.0/22 100.64.8.0/22 100.64.12.0/22 100.64.16.0/22 100.64.20.0/22 100.64.24.0/22 100.64.28.0/22 172.16.0.0/20 172.17.0.0/20 \
                    172.18.0.0/20 172.19.0.0/20 172.20.0.0/20 185.199.108.0/28 185.199.109.16/28 185.199.110.32/28 185.199.111.48/28 8.8.4.4/32 1.1.1.1/32 9.9.9.9/32 45.33.32.156/32 93.184.216.34/32 151.101.1.69/32 \
                    2001:db8:1::/48 2001:db8:2::/48 2001:db8:3::/48 2001:db8:4::/48 2001:db8:5::/48 2001:db8:6::/48 2001:db8:7::/48 2001:db8:8::/48 2400:cb00:2048::/48 2606:4700:10::/44 fd00:aaaa::/32 2a00:1450:4001:80b::/64";
        let l = IpList::parse(text).unwrap();
        assert_eq!(l.len(), 50);
        let nets: Vec<IpNet> = text
            .split_whitespace()
            .map(|s| s.parse().unwrap())
            .collect();
        // a deterministic sweep of addresses around every range edge
        let mut probes = Vec::new();
        for n in &nets {
            for a in [n.network(), n.broadcast()] {
                probes.push(a);
                match a {
                    IpAddr::V4(v) => {
                        let x = u32::from(v);
                        probes.push(IpAddr::V4(x.wrapping_sub(1).into()));
                        probes.push(IpAddr::V4(x.wrapping_add(1).into()));
                    }
                    IpAddr::V6(v) => {
                        let x = u128::from(v);
                        probes.push(IpAddr::V6(x.wrapping_sub(1).into()));
                        probes.push(IpAddr::V6(x.wrapping_add(1).into()));
                    }
                }
            }
        }
        let mut inside = 0;
        for p in probes {
            let expected = nets.iter().any(|n| n.contains(&p));
            assert_eq!(l.contains(p), expected, "{p}");
            inside += usize::from(expected);
        }
        assert!(inside > 100, "{inside}");
    }
}
