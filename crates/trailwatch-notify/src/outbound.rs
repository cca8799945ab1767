//! Where trailwatch may send requests on a subscriber's or an operator's behalf (server-side
//! request forgery defence).
//!
//! Anyone who can create an HTTP(S) subscription chooses a URL the server will POST to. Without
//! a policy, that URL could be the cloud metadata service (`169.254.169.254`, which hands out
//! credentials), trailwatch's own admin listener on loopback, or another local service. The
//! default policy refuses loopback, link-local, unspecified and cloud-metadata addresses and
//! allows everything else, private ranges included (webhook receivers in the same VPC are the
//! normal case). `allow` entries win over the refusals, `deny` entries add to them.
//!
//! Names are checked when a connection is made, against every address DNS returns
//! ([`PolicyResolver`]): a name that resolved to a public address at subscribe time and to
//! `127.0.0.1` later is refused then. Literal addresses are checked before the request (the
//! HTTP client does not resolve them), and at subscribe time (`SMN.0069`).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

use ipnet::IpNet;

/// Part of every refusal's message; a failed request whose error chain carries it was refused
/// by the policy (permanent), not by the network (retried).
pub const REFUSED_MARK: &str = "refused by the outbound policy";

/// The environment variable whose comma-separated CIDRs are added to `allow`.
pub const ALLOW_ENV: &str = "TRAILWATCH_OUTBOUND_ALLOW";

/// Refused unless allowed: loopback, unspecified ("this host"), link-local (which holds the
/// AWS/OpenStack/Huawei metadata address 169.254.169.254) and the metadata addresses that are
/// not link-local (AWS IPv6 `fd00:ec2::254`, Alibaba `100.100.100.200`).
const REFUSED_BY_DEFAULT: [&str; 8] = [
    "127.0.0.0/8",
    "::1/128",
    "0.0.0.0/8",
    "::/128",
    "169.254.0.0/16",
    "fe80::/10",
    "fd00:ec2::254/128",
    "100.100.100.200/32",
];

/// Which destination addresses outbound requests may reach.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutboundPolicy {
    allow: Vec<IpNet>,
    deny: Vec<IpNet>,
}

impl Default for OutboundPolicy {
    fn default() -> Self {
        OutboundPolicy {
            allow: Vec::new(),
            deny: REFUSED_BY_DEFAULT
                .iter()
                .filter_map(|n| n.parse().ok())
                .collect(),
        }
    }
}

/// A destination the policy refuses, for the error message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refused {
    pub addr: IpAddr,
    pub rule: IpNet,
}

impl std::fmt::Display for Refused {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} is {REFUSED_MARK} (it is in {}; add it to [outbound] allow or {ALLOW_ENV} to \
             permit it)",
            self.addr, self.rule
        )
    }
}

impl OutboundPolicy {
    /// The default policy with `allow` and `deny` (CIDRs or single addresses) added. Every
    /// entry that does not parse is named in the error.
    pub fn new(allow: &[String], deny: &[String]) -> Result<OutboundPolicy, String> {
        let mut policy = OutboundPolicy::default();
        let mut bad = Vec::new();
        for (list, into) in [(allow, &mut policy.allow), (deny, &mut policy.deny)] {
            for entry in list {
                match parse_net(entry) {
                    Some(net) => into.push(net),
                    None => bad.push(entry.clone()),
                }
            }
        }
        if bad.is_empty() {
            Ok(policy)
        } else {
            Err(format!(
                "not an address or CIDR range: {}",
                bad.iter()
                    .map(|b| format!("{b:?}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ))
        }
    }

    /// Adds the CIDRs of [`ALLOW_ENV`] (comma-separated) when it is set.
    pub fn with_env_allow(mut self, value: Option<&str>) -> Result<OutboundPolicy, String> {
        let Some(value) = value else { return Ok(self) };
        let entries: Vec<String> = value
            .split(',')
            .map(str::trim)
            .filter(|e| !e.is_empty())
            .map(str::to_owned)
            .collect();
        let extra = OutboundPolicy::new(&entries, &[]).map_err(|e| format!("{ALLOW_ENV}: {e}"))?;
        self.allow.extend(extra.allow);
        Ok(self)
    }

    /// Whether a request may go to `addr` (IPv4-mapped IPv6 is judged as the IPv4 address).
    pub fn check(&self, addr: IpAddr) -> Result<(), Refused> {
        let addr = match addr {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
            v4 => v4,
        };
        if self.allow.iter().any(|n| n.contains(&addr)) {
            return Ok(());
        }
        match self.deny.iter().find(|n| n.contains(&addr)) {
            Some(rule) => Err(Refused { addr, rule: *rule }),
            None => Ok(()),
        }
    }

    /// Checks a URL's host when it is a literal address; names are checked at connect time.
    pub fn check_url(&self, url: &str) -> Result<(), Refused> {
        match literal_host(url) {
            Some(addr) => self.check(addr),
            None => Ok(()),
        }
    }
}

fn parse_net(entry: &str) -> Option<IpNet> {
    let entry = entry.trim();
    entry
        .parse::<IpNet>()
        .ok()
        .or_else(|| entry.parse::<IpAddr>().ok().map(IpNet::from))
        .map(|n| n.trunc())
}

/// The address of a URL whose host is a literal IPv4 or `[IPv6]` address.
pub fn literal_host(url: &str) -> Option<IpAddr> {
    let parsed = reqwest::Url::parse(url).ok()?;
    let host = parsed.host_str()?;
    // IPv6 hosts come bracketed; the URL parser has already normalised both families.
    host.trim_start_matches('[')
        .trim_end_matches(']')
        .parse()
        .ok()
}

/// A DNS resolver for the HTTP client that drops refused addresses from every answer and fails
/// when none is left, so the check holds at the moment of connecting (no DNS rebinding).
#[derive(Debug, Clone)]
pub struct PolicyResolver {
    pub policy: Arc<OutboundPolicy>,
}

impl reqwest::dns::Resolve for PolicyResolver {
    fn resolve(&self, name: reqwest::dns::Name) -> reqwest::dns::Resolving {
        let policy = self.policy.clone();
        Box::pin(async move {
            let host = name.as_str().to_owned();
            let answers: Vec<SocketAddr> =
                tokio::net::lookup_host((host.as_str(), 0)).await?.collect();
            let mut refused = None;
            let allowed: Vec<SocketAddr> = answers
                .into_iter()
                .filter(|a| match policy.check(a.ip()) {
                    Ok(()) => true,
                    Err(r) => {
                        refused.get_or_insert(r);
                        false
                    }
                })
                .collect();
            if allowed.is_empty() {
                let why = match refused {
                    Some(r) => format!("{host} resolves to {r}"),
                    None => format!("{host} has no address"),
                };
                return Err(why.into());
            }
            let addrs: reqwest::dns::Addrs = Box::new(allowed.into_iter());
            Ok(addrs)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse()
            .unwrap_or_else(|_| unreachable!("test address {s}"))
    }

    #[test]
    fn default_refuses_loopback_link_local_metadata_and_allows_the_rest() {
        let p = OutboundPolicy::default();
        for refused in [
            "127.0.0.1",
            "127.8.9.10",
            "::1",
            "0.0.0.0",
            "::",
            "169.254.169.254",
            "fe80::1",
            "fd00:ec2::254",
            "100.100.100.200",
            "::ffff:127.0.0.1",
            "::ffff:169.254.169.254",
        ] {
            assert!(p.check(ip(refused)).is_err(), "{refused} should be refused");
        }
        for allowed in [
            "10.0.0.5",
            "192.168.1.1",
            "172.16.0.1",
            "203.0.113.7",
            "2001:db8::1",
            "fd00::1",
            "100.100.100.201",
        ] {
            assert!(p.check(ip(allowed)).is_ok(), "{allowed} should be allowed");
        }
    }

    #[test]
    fn allow_wins_over_refusals_and_deny_adds_to_them() {
        let p = OutboundPolicy::new(
            &["127.0.0.0/8".into(), "::1".into()],
            &["10.0.0.0/8".into()],
        )
        .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(p.check(ip("127.0.0.1")).is_ok());
        assert!(p.check(ip("::1")).is_ok());
        assert!(p.check(ip("169.254.169.254")).is_err());
        let refused = p.check(ip("10.1.2.3")).err();
        assert_eq!(
            refused.map(|r| r.rule.to_string()),
            Some("10.0.0.0/8".to_owned())
        );
    }

    #[test]
    fn env_allow_is_comma_separated_and_bad_entries_are_named() {
        let p = OutboundPolicy::default()
            .with_env_allow(Some("127.0.0.0/8, ::1/128,"))
            .unwrap_or_else(|e| unreachable!("{e}"));
        assert!(p.check(ip("127.0.0.1")).is_ok());
        let err = OutboundPolicy::default()
            .with_env_allow(Some("127.0.0.0/8,localhost,10.0.0.0/33"))
            .err()
            .unwrap_or_default();
        assert!(err.contains(ALLOW_ENV), "{err}");
        assert!(err.contains("\"localhost\""), "{err}");
        assert!(err.contains("\"10.0.0.0/33\""), "{err}");
        assert!(OutboundPolicy::default().with_env_allow(None).is_ok());
    }

    #[test]
    fn literal_hosts_are_checked_and_names_are_left_to_connect_time() {
        let p = OutboundPolicy::default();
        assert!(p.check_url("http://127.0.0.1:8080/hook").is_err());
        assert!(p.check_url("https://[::1]/hook").is_err());
        assert!(p.check_url("http://[::ffff:7f00:1]/hook").is_err());
        assert!(
            p.check_url("http://169.254.169.254/latest/meta-data")
                .is_err()
        );
        assert!(p.check_url("http://example.com/hook").is_ok());
        assert!(p.check_url("http://10.0.0.5/hook").is_ok());
    }

    #[tokio::test]
    async fn the_resolver_drops_refused_answers_at_connect_time() {
        use reqwest::dns::Resolve;
        let resolver = PolicyResolver {
            policy: Arc::new(OutboundPolicy::default()),
        };
        let name: reqwest::dns::Name = "localhost"
            .parse()
            .unwrap_or_else(|_| unreachable!("a valid name"));
        let err = resolver.resolve(name).await.err().map(|e| e.to_string());
        let err = err.unwrap_or_default();
        assert!(
            err.contains("localhost resolves to") && err.contains("refused"),
            "{err}"
        );
        let allowing = PolicyResolver {
            policy: Arc::new(
                OutboundPolicy::new(&["127.0.0.0/8".into(), "::1".into()], &[])
                    .unwrap_or_else(|e| unreachable!("{e}")),
            ),
        };
        let name: reqwest::dns::Name = "localhost"
            .parse()
            .unwrap_or_else(|_| unreachable!("a valid name"));
        let addrs: Vec<SocketAddr> = allowing
            .resolve(name)
            .await
            .map(|a| a.collect())
            .unwrap_or_default();
        assert!(!addrs.is_empty());
        assert!(addrs.iter().all(|a| a.ip().is_loopback()));
    }
}
