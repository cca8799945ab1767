//! OpenSSH/sshd: syslog (RFC 3164, RFC 5424) and `journalctl -o json` records.
//!
//! Pure: text in, [`Parsed`] out. Only records from the programs `sshd` and `sshd-session`
//! are considered; every other program's line is counted in [`Parsed::skipped`]. Blank lines are
//! not records and are ignored.
//!
//! # Normalisation
//!
//! Every trace has `service_type` `SSH`, `resource_type` `host`, `trace_type` `SystemAction`,
//! `resource_name` the host (from the record; `host_default` when the record has none; omitted
//! when neither), `user.name`, `source_ip` (IPv4 or IPv6; `::ffff:a.b.c.d` becomes `a.b.c.d`),
//! `time` in ms, the original line (or JSON record) in `request` (a string), and a
//! deterministic `trace_id` (128-bit FNV-1a over host, time, pid, the line and a repeat index,
//! written as a UUID-shaped string) so that importing the same file twice deduplicates.
//!
//! | sshd message | trace |
//! |---|---|
//! | `Accepted <method> for USER from IP port N …` | `login` / `normal`; the (host, pid) session is remembered |
//! | `Failed <method> for [invalid user] USER from IP …` (password, keyboard-interactive[/pam], hostbased, unknown, …) | `loginfailed` / `warning` |
//! | `Failed publickey for invalid user USER from IP …` | `loginfailed` / `warning` |
//! | `Failed publickey for USER …` (valid user) and `Failed none for …` | skipped: clients offer every key they hold (and `none`) before the right one, so these are not failed logins |
//! | `message repeated N times: [ <message> ]` | N copies of what `<message>` maps to (syslog's "the previous line occurred N more times"); each copy is its own trace with its own `trace_id` (repeat index 1..=N) |
//! | `Invalid user USER from IP` | skipped: the attempt itself is the `Failed … for invalid user` line that follows, so tracing both would count one attempt twice; a probe that disconnects before trying a password is not a login attempt |
//! | `error: PAM: Authentication failure for USER from IP`, `error: PAM: User not known … for illegal user USER from IP` | `loginfailed` / `warning` (the PAM-only form of a failed password) |
//! | `ROOT LOGIN REFUSED FROM IP` | `loginfailed` / `warning`, user `root` |
//! | `User USER from IP not allowed because …` | `loginfailed` / `warning` (refused by AllowUsers/DenyUsers/groups) |
//! | `pam_unix(sshd:auth): authentication failure; …` | skipped: the same attempt is the `Failed password` line |
//! | `pam_unix(sshd:session): session opened for user X` | skipped: the `Accepted` line is the login |
//! | `pam_unix(sshd:session): session closed for user X` | `logout` / `normal` when the pid has an open authenticated session (else skipped) |
//! | `Disconnected from user X IP port N` (or an older `Disconnected from …` without a user) | `logout` when the pid has an open session, or (named form) exactly one open session of X from IP on that host exists |
//! | `Received disconnect from IP …` without `[preauth]` | `logout` when the pid has an open session |
//! | any disconnect/close with `[preauth]`, `Connection closed by …`, `Too many authentication failures`, `maximum authentication attempts exceeded`, … | skipped (an unauthenticated probe never logged in, so it cannot log out) |
//! | anything else | skipped |
//!
//! A session produces at most one `logout`: the first of its closing messages closes it, the
//! later ones find no open session and are skipped. Sessions are tracked by (host, pid) within
//! one call, or across calls with [`parse_syslog_continued`] / [`parse_journald_json_continued`]
//! (a tailer's pieces; the collector keeps them in its checkpoint).
//!
//! # Problems
//!
//! A line becomes a [`Problem`] (never a trace, never a panic) when: it is longer than
//! [`MAX_LINE`] bytes; its header (timestamp, host, program) cannot be parsed (e.g. truncated);
//! an event message is recognised (`Accepted`, `Failed`, …) but its address is not a valid IPv4
//! or IPv6 literal (`253.252.51.07`, `192.030.0.6`, a host name such as `example.com`) or it is
//! cut off; the user name exceeds 256 characters or the host name 1024 (the trace model's
//! limits); its time is before 1973-03-03T09:46:40Z, the earliest the trace model accepts (an
//! RFC 5424 year 1396, a journald timestamp of a few microseconds); a journald record is not a
//! JSON object (e.g. truncated) or lacks a string `MESSAGE` (journald writes non-UTF-8 messages
//! as byte arrays) or `__REALTIME_TIMESTAMP`.
//!
//! # Time
//!
//! RFC 3164 timestamps (`Dec 10 06:55:46`) have no year and no zone. They are read as **UTC**
//! and the year is inferred from `reference`: the latest year Y (at most `reference`'s year + 1)
//! for which the timestamp in Y is at or before `reference` + 1 day. The day of grace absorbs
//! clock skew between hosts, so a line stamped a few seconds after `reference` stays in the
//! current year. Consequences: a `Dec 31` line read with reference `2025-01-02` is 2024-12-31;
//! `Jan 1 00:00:10` read with reference `2024-12-31T23:59:59Z` is 2025-01-01; `Feb 29` goes to
//! the latest leap year that qualifies. Each line is placed on its own, so a file spanning
//! New Year read in January gets December lines in the previous year and January lines in the
//! current one. RFC 5424 and ISO-8601-stamped lines (`2015-04-16T18:02:50.321974+00:00 host
//! sshd[1]: …`) carry their own year and offset; journald uses `__REALTIME_TIMESTAMP` (µs).

use std::collections::HashMap;
use std::net::IpAddr;

use chrono::{DateTime, Datelike, NaiveDate, Utc};
use serde_json::{Map, Value};

use crate::{Parsed, Problem};

/// Longest line accepted, in bytes; longer lines are reported as a [`Problem`].
pub const MAX_LINE: usize = 64 * 1024;

/// Longest `user.name` and `resource_name` the trace model accepts, in characters.
const MAX_USER: usize = 256;
const MAX_HOST: usize = 1024;

/// Most copies a `message repeated N times` line may expand to.
const MAX_REPEAT: u64 = 10_000;

/// Parse RFC 3164 (`Dec 10 06:55:46 host sshd[24200]: …`), ISO-stamped and RFC 5424 syslog
/// lines. `host_default` names the host for lines without one; `reference` fixes the year of
/// RFC 3164 timestamps (see the module docs).
pub fn parse_syslog(text: &str, host_default: Option<&str>, reference: DateTime<Utc>) -> Parsed {
    parse_syslog_continued(text, host_default, reference, &mut Vec::new())
}

/// An authenticated session still open after a call, carried into the next one: a tailer
/// (`trailwatch collect`) parses a log in pieces, and a `logout` needs the `login` of its pid,
/// which may have been in an earlier piece (or before a restart, so it is serializable).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct OpenSession {
    pub host: String,
    pub pid: u32,
    pub user: String,
    pub ip: IpAddr,
}

/// Most open sessions carried between calls; beyond it the lowest (host, pid) are dropped, so
/// sessions whose close was never logged (a crashed host) cannot grow the state without end.
pub const MAX_OPEN_SESSIONS: usize = 4096;

/// [`parse_syslog`] on one piece of a longer log: `sessions` holds the sessions open before
/// `text` and, on return, those open after it. Problem line numbers are relative to `text`.
pub fn parse_syslog_continued(
    text: &str,
    host_default: Option<&str>,
    reference: DateTime<Utc>,
    sessions: &mut Vec<OpenSession>,
) -> Parsed {
    let mut st = State::new(reference);
    st.load_sessions(sessions);
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = i as u64 + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > MAX_LINE {
            st.problem(
                line_no,
                format!("line is {} bytes long; the limit is {MAX_LINE}", line.len()),
            );
            continue;
        }
        match parse_header(line, &mut st.years) {
            Ok(h) => {
                if !is_sshd(h.program) {
                    st.out.skipped += 1;
                    continue;
                }
                let host = h.host.or(host_default);
                let rec = Record {
                    line_no,
                    host,
                    pid: h.pid,
                    time: h.time,
                    original: line,
                };
                st.message(&rec, h.message);
            }
            Err(reason) => st.problem(line_no, reason),
        }
    }
    st.save_sessions(sessions);
    st.out
}

/// Parse `journalctl -o json` output: one JSON object per line. Records whose
/// `SYSLOG_IDENTIFIER` (or, without it, `_COMM`) is not `sshd` / `sshd-session` are skipped.
pub fn parse_journald_json(text: &str) -> Parsed {
    parse_journald_json_continued(text, &mut Vec::new())
}

/// [`parse_journald_json`] on one piece of a longer stream, with the open `sessions` carried
/// in and out as in [`parse_syslog_continued`].
pub fn parse_journald_json_continued(text: &str, sessions: &mut Vec<OpenSession>) -> Parsed {
    let mut st = State::new(DateTime::<Utc>::UNIX_EPOCH);
    st.load_sessions(sessions);
    for (i, raw) in text.split('\n').enumerate() {
        let line_no = i as u64 + 1;
        let line = raw.strip_suffix('\r').unwrap_or(raw);
        if line.trim().is_empty() {
            continue;
        }
        if line.len() > MAX_LINE {
            st.problem(
                line_no,
                format!("line is {} bytes long; the limit is {MAX_LINE}", line.len()),
            );
            continue;
        }
        let obj = match serde_json::from_str::<Value>(line) {
            Ok(Value::Object(m)) => m,
            Ok(_) => {
                st.problem(line_no, "not a JSON object".to_owned());
                continue;
            }
            Err(e) => {
                st.problem(line_no, format!("not valid JSON (truncated?): {e}"));
                continue;
            }
        };
        let ident = str_field(&obj, "SYSLOG_IDENTIFIER").or_else(|| str_field(&obj, "_COMM"));
        if !ident.is_some_and(is_sshd) {
            st.out.skipped += 1;
            continue;
        }
        let Some(message) = str_field(&obj, "MESSAGE") else {
            st.problem(
                line_no,
                "MESSAGE is missing or not a string (binary journal field)".to_owned(),
            );
            continue;
        };
        let Some(us) = str_field(&obj, "__REALTIME_TIMESTAMP").and_then(|s| s.parse::<i64>().ok())
        else {
            st.problem(
                line_no,
                "__REALTIME_TIMESTAMP is missing or not a number of microseconds".to_owned(),
            );
            continue;
        };
        let pid = str_field(&obj, "_PID")
            .or_else(|| str_field(&obj, "SYSLOG_PID"))
            .and_then(|p| p.parse::<u32>().ok());
        let rec = Record {
            line_no,
            host: str_field(&obj, "_HOSTNAME"),
            pid,
            time: us.div_euclid(1000),
            original: line,
        };
        st.message(&rec, message);
    }
    st.save_sessions(sessions);
    st.out
}

fn str_field<'a>(m: &'a Map<String, Value>, k: &str) -> Option<&'a str> {
    m.get(k).and_then(Value::as_str)
}

fn is_sshd(program: &str) -> bool {
    program == "sshd" || program == "sshd-session"
}

/// One record's context.
struct Record<'a> {
    line_no: u64,
    host: Option<&'a str>,
    pid: Option<u32>,
    time: i64,
    original: &'a str,
}

/// An open authenticated session.
#[derive(Clone)]
struct Session {
    user: String,
    ip: IpAddr,
}

struct State {
    out: Parsed,
    years: YearCache,
    /// (host, pid) → session.
    sessions: HashMap<(String, u32), Session>,
}

/// What a message means.
enum Event<'a> {
    Login {
        user: &'a str,
        ip: IpAddr,
    },
    Failed {
        user: &'a str,
        ip: IpAddr,
    },
    /// Session end: by pid, optionally with the user (and ip) named in the message.
    Close {
        user: Option<&'a str>,
        ip: Option<IpAddr>,
    },
    Repeated {
        n: u64,
        inner: &'a str,
    },
    Skip,
}

impl State {
    fn new(reference: DateTime<Utc>) -> State {
        State {
            out: Parsed::default(),
            years: YearCache::new(reference),
            sessions: HashMap::new(),
        }
    }

    fn load_sessions(&mut self, sessions: &[OpenSession]) {
        for s in sessions {
            let session = Session {
                user: s.user.clone(),
                ip: s.ip,
            };
            self.sessions.insert((s.host.clone(), s.pid), session);
        }
    }

    /// Sorted, so that the same input always gives the same saved state.
    fn save_sessions(&mut self, out: &mut Vec<OpenSession>) {
        out.clear();
        out.extend(self.sessions.drain().map(|((host, pid), s)| OpenSession {
            host,
            pid,
            user: s.user,
            ip: s.ip,
        }));
        out.sort_by(|a, b| (&a.host, a.pid).cmp(&(&b.host, b.pid)));
        if out.len() > MAX_OPEN_SESSIONS {
            let excess = out.len() - MAX_OPEN_SESSIONS;
            out.drain(..excess);
        }
    }

    fn problem(&mut self, line: u64, reason: String) {
        self.out.problems.push(Problem { line, reason });
    }

    fn message(&mut self, rec: &Record<'_>, message: &str) {
        match classify(message) {
            Ok(Event::Repeated { n, inner }) => match classify(inner) {
                Ok(Event::Failed { user, ip }) => {
                    for k in 1..=n {
                        self.emit(rec, "loginfailed", "warning", user, ip, k);
                    }
                }
                Ok(_) => self.out.skipped += 1,
                Err(reason) => self.problem(rec.line_no, reason),
            },
            Ok(ev) => self.event(rec, ev),
            Err(reason) => self.problem(rec.line_no, reason),
        }
    }

    fn event(&mut self, rec: &Record<'_>, ev: Event<'_>) {
        match ev {
            Event::Login { user, ip } => {
                if let Some(pid) = rec.pid {
                    let key = (rec.host.unwrap_or_default().to_owned(), pid);
                    let s = Session {
                        user: user.to_owned(),
                        ip,
                    };
                    self.sessions.insert(key, s);
                }
                self.emit(rec, "login", "normal", user, ip, 0);
            }
            Event::Failed { user, ip } => self.emit(rec, "loginfailed", "warning", user, ip, 0),
            Event::Close { user, ip } => {
                let host = rec.host.unwrap_or_default();
                let mut key = rec
                    .pid
                    .map(|p| (host.to_owned(), p))
                    .filter(|k| self.sessions.contains_key(k));
                if key.is_none()
                    && let (Some(u), Some(ip)) = (user, ip)
                {
                    let mut found = self
                        .sessions
                        .iter()
                        .filter(|((h, _), s)| h == host && s.user == u && s.ip == ip);
                    if let (Some((k, _)), None) = (found.next(), found.next()) {
                        key = Some(k.clone());
                    }
                }
                match key.and_then(|k| self.sessions.remove(&k)) {
                    Some(s) => self.emit(rec, "logout", "normal", &s.user, s.ip, 0),
                    None => self.out.skipped += 1,
                }
            }
            Event::Repeated { .. } | Event::Skip => self.out.skipped += 1,
        }
    }

    fn emit(
        &mut self,
        rec: &Record<'_>,
        name: &str,
        rating: &str,
        user: &str,
        ip: IpAddr,
        repeat: u64,
    ) {
        // The trace model's limits (user.name ≤ 256, resource_name ≤ 1024 characters, no NUL):
        // a record outside them is a Problem, never an invalid trace.
        let host = rec.host.unwrap_or_default();
        if let Some(reason) = crate::time_out_of_range(rec.time) {
            return self.problem(rec.line_no, reason);
        }
        if user.contains('\0') || (user.len() > MAX_USER && user.chars().count() > MAX_USER) {
            let reason = format!("user name is longer than {MAX_USER} characters or contains NUL");
            return self.problem(rec.line_no, reason);
        }
        if host.contains('\0') || (host.len() > MAX_HOST && host.chars().count() > MAX_HOST) {
            let reason = format!("host name is longer than {MAX_HOST} characters or contains NUL");
            return self.problem(rec.line_no, reason);
        }
        let mut m = Map::new();
        m.insert("trace_id".into(), Value::String(trace_id(rec, repeat)));
        m.insert("trace_name".into(), Value::String(name.into()));
        m.insert("trace_rating".into(), Value::String(rating.into()));
        m.insert("trace_type".into(), Value::String("SystemAction".into()));
        m.insert("service_type".into(), Value::String("SSH".into()));
        m.insert("resource_type".into(), Value::String("host".into()));
        if let Some(h) = rec.host {
            m.insert("resource_name".into(), Value::String(h.into()));
        }
        m.insert("source_ip".into(), Value::String(ip.to_string()));
        m.insert("request".into(), Value::String(rec.original.into()));
        m.insert("time".into(), Value::from(rec.time));
        let mut u = Map::new();
        u.insert("name".into(), Value::String(user.into()));
        m.insert("user".into(), Value::Object(u));
        self.out.traces.push(Value::Object(m));
    }
}

/// 128-bit FNV-1a over the identifying parts, as a UUID-shaped string.
fn trace_id(rec: &Record<'_>, repeat: u64) -> String {
    const OFFSET: u128 = 0x6c62272e07bb014262b821756295c58d;
    const PRIME: u128 = 0x0000000001000000000000000000013B;
    let mut h = OFFSET;
    let mut feed = |bytes: &[u8]| {
        for &b in bytes {
            h ^= u128::from(b);
            h = h.wrapping_mul(PRIME);
        }
        h ^= 0xff;
        h = h.wrapping_mul(PRIME);
    };
    feed(rec.host.unwrap_or_default().as_bytes());
    feed(&rec.time.to_le_bytes());
    feed(&rec.pid.map_or(-1, i64::from).to_le_bytes());
    feed(rec.original.as_bytes());
    feed(&repeat.to_le_bytes());
    let s = format!("{h:032x}");
    format!(
        "{}-{}-{}-{}-{}",
        &s[0..8],
        &s[8..12],
        &s[12..16],
        &s[16..20],
        &s[20..32]
    )
}

// ---------------------------------------------------------------------------------------------
// Message classification

fn classify(msg: &str) -> Result<Event<'_>, String> {
    let mut m = msg.trim();
    // Solaris: `[ID 800047 auth.info] ` before the message.
    if m.starts_with("[ID ")
        && let Some(end) = m.find("] ")
    {
        m = &m[end + 2..];
    }
    let m = m.strip_prefix("error: ").unwrap_or(m);

    if let Some(rest) = m.strip_prefix("Accepted ") {
        let (method, after) = split_word(rest);
        let Some(after) = after.strip_prefix("for ") else {
            return Err(format!("truncated `Accepted {method}` message"));
        };
        let (user, ip) = user_from_ip(after, "Accepted")?;
        return Ok(Event::Login { user, ip });
    }
    if let Some(rest) = m.strip_prefix("Failed ") {
        let (method, after) = split_word(rest);
        let Some(after) = after.strip_prefix("for ") else {
            return Err(format!("truncated `Failed {method}` message"));
        };
        let (user, invalid) = match after.strip_prefix("invalid user ") {
            Some(u) => (u, true),
            None => (after, false),
        };
        if method == "none" || (method == "publickey" && !invalid) {
            return Ok(Event::Skip);
        }
        let (user, ip) = user_from_ip(user, "Failed")?;
        return Ok(Event::Failed { user, ip });
    }
    if let Some(rest) = m.strip_prefix("message repeated ") {
        let (n, after) = split_word(rest);
        let n: u64 = n
            .parse()
            .map_err(|_| format!("`message repeated`: {n:?} is not a count"))?;
        if n > MAX_REPEAT {
            return Err(format!(
                "`message repeated {n} times`: more than {MAX_REPEAT}"
            ));
        }
        let inner = after
            .strip_prefix("times: [")
            .and_then(|s| s.trim_end().strip_suffix(']'))
            .ok_or_else(|| "truncated `message repeated` line".to_owned())?;
        return Ok(Event::Repeated {
            n,
            inner: inner.trim(),
        });
    }
    if let Some(rest) = m.strip_prefix("PAM: ") {
        let lower = rest.get(..24).unwrap_or(rest).to_ascii_lowercase();
        if lower.starts_with("authentication failure f")
            || lower.starts_with("authentication error for")
        {
            let after = rest.split_once(" for ").map(|x| x.1).unwrap_or_default();
            let (user, ip) = user_from_ip(strip_via(after), "PAM")?;
            return Ok(Event::Failed { user, ip });
        }
        if let Some((_, after)) = rest.split_once(" for illegal user ") {
            let (user, ip) = user_from_ip(after, "PAM")?;
            return Ok(Event::Failed { user, ip });
        }
        return Ok(Event::Skip);
    }
    if let Some(rest) = m.strip_prefix("ROOT LOGIN REFUSED FROM ") {
        let (tok, _) = split_word(rest);
        let ip = parse_ip(tok)?;
        return Ok(Event::Failed { user: "root", ip });
    }
    if let Some(rest) = m.strip_prefix("User ")
        && let Some((head, _)) = rest.split_once(" not allowed because ")
    {
        if let Some((user, host)) = head.rsplit_once(" from ") {
            let ip = parse_ip(host)?;
            return Ok(Event::Failed { user, ip });
        }
        return Ok(Event::Skip);
    }
    if let Some(rest) = m.strip_prefix("pam_unix(sshd:session): session closed for user ") {
        let (user, _) = split_word(rest);
        return Ok(Event::Close {
            user: Some(user),
            ip: None,
        });
    }
    if m.ends_with("[preauth]") {
        return Ok(Event::Skip);
    }
    if let Some(rest) = m.strip_prefix("Disconnected from ") {
        // `Disconnected from user X IP port N` (OpenSSH ≥ 7.5); older forms carry no user and
        // close by pid only.
        let named = rest.strip_prefix("user ").and_then(|r| {
            let mut it = r.rsplitn(4, ' ');
            let (_port, kw, ip, user) = (it.next(), it.next(), it.next(), it.next());
            let ip = parse_ip(ip?).ok()?;
            (kw == Some("port")).then_some((user?, ip))
        });
        return Ok(Event::Close {
            user: named.map(|n| n.0),
            ip: named.map(|n| n.1),
        });
    }
    if m.starts_with("Received disconnect from ") {
        return Ok(Event::Close {
            user: None,
            ip: None,
        });
    }
    Ok(Event::Skip)
}

fn split_word(s: &str) -> (&str, &str) {
    match s.split_once(' ') {
        Some((a, b)) => (a, b),
        None => (s, ""),
    }
}

fn strip_via(s: &str) -> &str {
    match s.rfind(" via ") {
        Some(i) => &s[..i],
        None => s,
    }
}

/// `USER from ADDR[ port N][ sshN][: info| [preauth]]`; the user may itself contain ` from `
/// (injection attempts), so the first ` from ` whose tail has that exact shape wins. If none
/// has a valid address, the last ` from ` is reported with its (invalid) address.
fn user_from_ip<'a>(s: &'a str, what: &str) -> Result<(&'a str, IpAddr), String> {
    let s = s.trim_end();
    let mut search = 0;
    while let Some(off) = s[search..].find(" from ") {
        let at = search + off;
        let tail = &s[at + 6..];
        if let Some(ip) = addr_tail(tail) {
            return Ok((&s[..at], ip));
        }
        search = at + 1;
    }
    match s.rfind(" from ") {
        Some(at) => {
            let (tok, _) = split_word(&s[at + 6..]);
            parse_ip(tok).map(|ip| (&s[..at], ip))
        }
        None => Err(format!("truncated `{what}` message: no `from ADDRESS`")),
    }
}

fn addr_tail(tail: &str) -> Option<IpAddr> {
    let (tok, mut rest) = split_word(tail);
    let ip = parse_ip(tok).ok()?;
    if let Some(r) = rest.strip_prefix("port ") {
        let (port, r2) = split_word(r);
        let port = port.trim_end_matches(':');
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return None;
        }
        rest = r2;
    }
    if let Some(r) = rest
        .strip_prefix("ssh2")
        .or_else(|| rest.strip_prefix("ssh1"))
    {
        rest = r;
    }
    let rest = rest.trim_start();
    (rest.is_empty() || rest.starts_with(':') || rest.starts_with("[preauth]")).then_some(ip)
}

/// A strict IPv4/IPv6 literal (no leading zeros), IPv4-mapped IPv6 normalised to IPv4.
fn parse_ip(tok: &str) -> Result<IpAddr, String> {
    let t = tok.trim_end_matches([',', ':']);
    match t.parse::<IpAddr>() {
        Ok(ip) => Ok(ip.to_canonical()),
        Err(_) => Err(format!(
            "source address {:?} is not a valid IPv4 or IPv6 address",
            t.chars().take(64).collect::<String>()
        )),
    }
}

// ---------------------------------------------------------------------------------------------
// Headers

struct Header<'a> {
    time: i64,
    host: Option<&'a str>,
    program: &'a str,
    pid: Option<u32>,
    message: &'a str,
}

fn parse_header<'a>(line: &'a str, years: &mut YearCache) -> Result<Header<'a>, String> {
    let b = line.as_bytes();
    if b.first() == Some(&b'<') {
        return parse_5424(line);
    }
    let (time, rest) = if b.len() >= 4 && b[..4].iter().all(u8::is_ascii_digit) {
        let (ts, rest) = split_word(line);
        let t = DateTime::parse_from_rfc3339(ts)
            .map_err(|e| format!("bad ISO-8601 timestamp {ts:?}: {e}"))?;
        (t.timestamp_millis(), rest)
    } else {
        parse_3164_time(line, years)?
    };
    let rest = rest.trim_start();
    // Optional host: the first token, unless it already is the tag.
    let (first, after) = split_word(rest);
    let (host, tag_and_msg) = if looks_like_tag(first) {
        (None, rest)
    } else {
        (Some(first), after)
    };
    let (tag, message) = split_word(tag_and_msg);
    if tag.is_empty() {
        return Err("truncated line: no program tag".to_owned());
    }
    let tag = tag.strip_suffix(':').unwrap_or(tag);
    let tag = tag
        .strip_prefix('[')
        .and_then(|t| t.strip_suffix(']'))
        .unwrap_or(tag);
    let (program, pid) = match tag.split_once('[') {
        Some((p, rest)) => {
            let pid = rest
                .strip_suffix(']')
                .and_then(|x| x.parse::<u32>().ok())
                .ok_or_else(|| format!("truncated or malformed program tag {tag:?}"))?;
            (p, Some(pid))
        }
        None => (tag, None),
    };
    Ok(Header {
        time,
        host,
        program,
        pid,
        message,
    })
}

fn looks_like_tag(tok: &str) -> bool {
    tok.ends_with(':') || tok.starts_with('[') || tok.ends_with(']')
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

/// `Mmm dd hh:mm:ss` (day space- or zero-padded, or unpadded) → ms and the rest of the line.
fn parse_3164_time<'a>(line: &'a str, years: &mut YearCache) -> Result<(i64, &'a str), String> {
    let bad = || {
        format!(
            "unparseable or truncated RFC 3164 header {:?}",
            line.chars().take(40).collect::<String>()
        )
    };
    let month = line.get(..3).ok_or_else(bad)?;
    let month = MONTHS.iter().position(|m| *m == month).ok_or_else(bad)? as u32 + 1;
    let rest = line.get(3..).ok_or_else(bad)?.trim_start_matches(' ');
    let (day, rest) = split_word(rest);
    let day: u32 = day.parse().map_err(|_| bad())?;
    let (hms, rest) = split_word(rest);
    let hb = hms.as_bytes();
    if hb.len() != 8 || hb[2] != b':' || hb[5] != b':' {
        return Err(bad());
    }
    let num = |i: usize| -> Option<i64> {
        let (a, b) = (hb[i], hb[i + 1]);
        (a.is_ascii_digit() && b.is_ascii_digit()).then(|| i64::from((a - b'0') * 10 + (b - b'0')))
    };
    let (h, mi, s) = match (num(0), num(3), num(6)) {
        (Some(h), Some(mi), Some(s)) if h < 24 && mi < 60 && s < 61 => (h, mi, s),
        _ => return Err(bad()),
    };
    let day_start = years
        .day_start_ms(month, day, (h * 3600 + mi * 60 + s) * 1000)
        .ok_or_else(|| format!("no such date: month {month} day {day}"))?;
    Ok((day_start + (h * 3600 + mi * 60 + s) * 1000, rest))
}

/// Year inference for RFC 3164 dates (see the module docs), with a one-entry cache.
struct YearCache {
    limit_ms: i64,
    reference_year: i32,
    /// (month, day) → start of that day, kept only when the answer is the same for every time
    /// of that day (the day lies wholly before the limit and the next candidate year wholly
    /// after it), so the cache can never change a result.
    last: Option<((u32, u32), i64)>,
}

const DAY_MS: i64 = 86_400_000;

impl YearCache {
    fn new(reference: DateTime<Utc>) -> YearCache {
        YearCache {
            limit_ms: reference.timestamp_millis().saturating_add(DAY_MS),
            reference_year: reference.year(),
            last: None,
        }
    }

    /// Start (ms) of the day `month`/`day` in the latest year Y ≤ reference year + 1 (looking
    /// back at most 8 years, enough for Feb 29) with `start + ms_in_day` ≤ reference + 1 day.
    fn day_start_ms(&mut self, month: u32, day: u32, ms_in_day: i64) -> Option<i64> {
        if let Some((k, v)) = self.last
            && k == (month, day)
        {
            return Some(v);
        }
        let mut later_start: Option<i64> = None;
        for year in (self.reference_year - 8..=self.reference_year + 1).rev() {
            let Some(d) = NaiveDate::from_ymd_opt(year, month, day) else {
                continue;
            };
            let start = d.and_hms_opt(0, 0, 0)?.and_utc().timestamp_millis();
            if start + ms_in_day <= self.limit_ms {
                let stable = start + DAY_MS <= self.limit_ms
                    && later_start.is_none_or(|l| l > self.limit_ms);
                if stable {
                    self.last = Some(((month, day), start));
                }
                return Some(start);
            }
            later_start = Some(start);
        }
        None
    }
}

/// `<PRI>1 TIMESTAMP HOST APP PROCID MSGID [SD]… MSG`
fn parse_5424(line: &str) -> Result<Header<'_>, String> {
    let bad = |what: &str| format!("malformed RFC 5424 line: {what}");
    let close = line.find('>').ok_or_else(|| bad("no `>` after PRI"))?;
    let rest = &line[close + 1..];
    let rest = rest
        .strip_prefix("1 ")
        .ok_or_else(|| bad("version is not 1"))?;
    let (ts, rest) = split_word(rest);
    let (host, rest) = split_word(rest);
    let (app, rest) = split_word(rest);
    let (procid, rest) = split_word(rest);
    let (_msgid, rest) = split_word(rest);
    if rest.is_empty() && _msgid.is_empty() {
        return Err(bad("truncated header"));
    }
    let time = DateTime::parse_from_rfc3339(ts)
        .map_err(|e| bad(&format!("timestamp {ts:?}: {e}")))?
        .timestamp_millis();
    let message = if let Some(r) = rest.strip_prefix('-') {
        r
    } else if rest.starts_with('[') {
        skip_sd(rest).ok_or_else(|| bad("unterminated structured data"))?
    } else {
        return Err(bad("structured data is neither `-` nor `[…]`"));
    };
    let message = message.strip_prefix(' ').unwrap_or(message);
    let message = message.strip_prefix('\u{feff}').unwrap_or(message);
    Ok(Header {
        time,
        host: (host != "-").then_some(host),
        program: app,
        pid: procid.parse().ok(),
        message,
    })
}

/// Skips `[id k="v" …][…]…`, honouring quotes and backslash escapes.
fn skip_sd(s: &str) -> Option<&str> {
    let b = s.as_bytes();
    let mut i = 0;
    while b.get(i) == Some(&b'[') {
        let mut in_q = false;
        i += 1;
        loop {
            match *b.get(i)? {
                b'\\' if in_q => i += 1,
                b'"' => in_q = !in_q,
                b']' if !in_q => break,
                _ => {}
            }
            i += 1;
        }
        i += 1;
    }
    s.get(i..)
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::TimeZone;

    #[test]
    fn sessions_carry_from_one_piece_of_a_log_to_the_next() {
        let reference = at(2026, 11, 25, 12, 0, 0);
        let login = "Nov 25 10:00:01 web sshd[100]: Accepted password for alice from 10.0.0.5 port 1 ssh2\n";
        let close = "Nov 25 10:00:09 web sshd[100]: pam_unix(sshd:session): session closed for user alice\n";
        let whole = parse_syslog(&format!("{login}{close}"), None, reference);
        let mut sessions = Vec::new();
        let first = parse_syslog_continued(login, None, reference, &mut sessions);
        assert_eq!(
            sessions,
            [OpenSession {
                host: "web".into(),
                pid: 100,
                user: "alice".into(),
                ip: "10.0.0.5".parse().unwrap_or(IpAddr::from([0, 0, 0, 0])),
            }]
        );
        let second = parse_syslog_continued(close, None, reference, &mut sessions);
        assert!(sessions.is_empty());
        // In pieces, the same traces (and ids) as in one call.
        let pieces: Vec<Value> = first.traces.into_iter().chain(second.traces).collect();
        assert_eq!(pieces, whole.traces);
        assert_eq!(pieces.len(), 2);
        // Without the carried session, the close is not a logout.
        assert!(parse_syslog(close, None, reference).traces.is_empty());
    }

    fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
        Utc.with_ymd_and_hms(y, mo, d, h, mi, s)
            .single()
            .expect("valid date")
    }

    fn names(p: &Parsed) -> Vec<&str> {
        p.traces
            .iter()
            .map(|t| t["trace_name"].as_str().unwrap_or_default())
            .collect()
    }

    fn all_valid(p: &Parsed) {
        for t in &p.traces {
            trailwatch_trace::Trace::from_value(t.clone()).expect("valid trace");
        }
    }

    #[test]
    fn year_rollover() {
        let line = "Dec 31 23:59:50 h sshd[1]: Failed password for root from 192.0.2.1 port 1 ssh2";
        let p = parse_syslog(line, None, at(2025, 1, 2, 0, 0, 0));
        assert_eq!(
            p.traces[0]["time"],
            at(2024, 12, 31, 23, 59, 50).timestamp_millis()
        );
        let p = parse_syslog(line, None, at(2025, 12, 31, 23, 59, 59));
        assert_eq!(
            p.traces[0]["time"],
            at(2025, 12, 31, 23, 59, 50).timestamp_millis()
        );
        // Clock skew around New Year: within a day after the reference stays "now".
        let jan = "Jan  1 00:00:10 h sshd[1]: Failed password for root from 192.0.2.1";
        let p = parse_syslog(jan, None, at(2024, 12, 31, 23, 59, 59));
        assert_eq!(
            p.traces[0]["time"],
            at(2025, 1, 1, 0, 0, 10).timestamp_millis()
        );
        // Feb 29 goes to the latest leap year.
        let feb = "Feb 29 12:00:00 h sshd[1]: Failed password for root from 192.0.2.1";
        let p = parse_syslog(feb, None, at(2026, 6, 1, 0, 0, 0));
        assert_eq!(
            p.traces[0]["time"],
            at(2024, 2, 29, 12, 0, 0).timestamp_millis()
        );
        all_valid(&p);
    }

    #[test]
    fn ipv6_and_mapped() {
        let t = "Feb 25 14:34:10 belka sshd[31603]: Failed password for invalid user ROOT from aaaa:bbbb:cccc:1234::1:1 port 50273 ssh2\n\
                 Jan  5 01:31:41 www sshd[1643]: ROOT LOGIN REFUSED FROM ::ffff:1.2.3.4";
        let p = parse_syslog(t, None, at(2005, 12, 1, 0, 0, 0));
        assert_eq!(p.traces.len(), 2);
        assert_eq!(p.traces[0]["source_ip"], "aaaa:bbbb:cccc:1234::1:1");
        assert_eq!(p.traces[0]["user"]["name"], "ROOT");
        assert_eq!(p.traces[1]["source_ip"], "1.2.3.4");
        all_valid(&p);
    }

    #[test]
    fn invalid_ip_is_a_problem() {
        let t = "Dec 10 06:55:48 h sshd[1]: Failed password for root from 253.252.51.07 port 1 ssh2\n\
                 Dec 10 06:55:48 h sshd[1]: error: PAM: Authentication failure for x from 192.030.0.6";
        let p = parse_syslog(t, None, at(2016, 12, 31, 0, 0, 0));
        assert!(p.traces.is_empty());
        assert_eq!(p.problems.len(), 2);
        assert_eq!(p.problems[0].line, 1);
        assert!(p.problems[0].reason.contains("253.252.51.07"));
        assert!(p.problems[1].reason.contains("192.030.0.6"));
    }

    #[test]
    fn truncated_and_huge_lines() {
        let huge = format!("Dec 10 06:55:48 h sshd[1]: {}", "x".repeat(MAX_LINE));
        let t = format!(
            "Dec 10 06:5\nDec 10 06:55:48 h sshd[12\nDec 10 06:55:48 h sshd[1]: Failed password for root fr\n{huge}\nDec\u{e9}"
        );
        let p = parse_syslog(&t, None, at(2016, 12, 31, 0, 0, 0));
        assert!(p.traces.is_empty());
        let lines: Vec<u64> = p.problems.iter().map(|x| x.line).collect();
        assert_eq!(lines, [1, 2, 3, 4, 5]);
    }

    #[test]
    fn every_prefix_is_handled_without_panic() {
        let lines = [
            "Dec 10 09:32:20 LabSZ sshd[24680]: Accepted password for fztu from 119.137.62.142 port 49116 ssh2",
            "Dec 10 07:13:56 LabSZ sshd[24227]: message repeated 5 times: [ Failed password for root from 5.36.59.76 port 42393 ssh2]",
            r#"<38>1 2019-07-08T17:40:17.954167-04:00 h sshd 5 - [a b="[\"]"] Failed unknown for invalid user r from 2001:db8::1 port 5 ssh2"#,
            "Mar 29 05:59:23 dusky sshd[20878]: [ID 800047 auth.info] Failed keyboard-interactive for <invalid username> from 205.186.180.55 port 42742 ssh2",
            "2015-04-16T18:02:50.321974+00:00 host sshd[2716]: Disconnected from user é 192.0.2.1 port 1",
        ];
        for line in lines {
            for (i, _) in line.char_indices() {
                let _ = parse_syslog(&line[..i], Some("h"), at(2020, 1, 1, 0, 0, 0));
                let j = format!(
                    r#"{{"MESSAGE":"{}","__REALTIME_TIMESTAMP":"1","_COMM":"sshd"}}"#,
                    &line[..i].replace(['"', '\\'], "")
                );
                let _ = parse_journald_json(&j);
                let cut = j.floor_char_boundary(i + 10);
                let _ = parse_journald_json(&j[..cut]);
            }
        }
    }

    #[test]
    fn overlong_user_is_a_problem() {
        let t = format!(
            "Dec 10 06:55:48 h sshd[1]: Failed password for invalid user {} from 192.0.2.1 port 1 ssh2",
            "u".repeat(300)
        );
        let p = parse_syslog(&t, None, at(2016, 12, 31, 0, 0, 0));
        assert!(p.traces.is_empty());
        assert_eq!(p.problems.len(), 1);
    }

    #[test]
    fn rfc5424() {
        let t = r#"<38>1 2019-07-08T17:40:17.954167-04:00 hostname.example.com sshd 55555 - [timeQuality tzKnown="1"][x@1 t="[b]"] Failed unknown for invalid user redmond from 192.0.2.2 port 55555 ssh2"#;
        let p = parse_syslog(t, None, at(2000, 1, 1, 0, 0, 0));
        assert_eq!(names(&p), ["loginfailed"]);
        assert_eq!(p.traces[0]["time"], 1_562_622_017_954_i64);
        assert_eq!(p.traces[0]["resource_name"], "hostname.example.com");
        all_valid(&p);
    }

    #[test]
    fn journald_json() {
        let t = concat!(
            r#"{"MESSAGE":"Accepted publickey for alice from 2001:db8::7 port 5 ssh2: ED25519 SHA256:x","_HOSTNAME":"web1","__REALTIME_TIMESTAMP":"1700000000123456","SYSLOG_IDENTIFIER":"sshd-session","_PID":"77"}"#,
            "\n",
            r#"{"MESSAGE":"Started session","_HOSTNAME":"web1","__REALTIME_TIMESTAMP":"1700000000123456","SYSLOG_IDENTIFIER":"systemd"}"#,
            "\n",
            r#"{"MESSAGE":"pam_unix(sshd:session): session closed for user alice","_HOSTNAME":"web1","__REALTIME_TIMESTAMP":"1700000001000000","_COMM":"sshd","_PID":"77"}"#,
            "\n",
            r#"{"MESSAGE":"Failed password for root from"#,
        );
        let p = parse_journald_json(t);
        assert_eq!(names(&p), ["login", "logout"]);
        assert_eq!(p.traces[0]["time"], 1_700_000_000_123_i64);
        assert_eq!(p.traces[0]["resource_name"], "web1");
        assert_eq!(p.skipped, 1);
        assert_eq!(p.problems.len(), 1);
        assert_eq!(p.problems[0].line, 4);
        all_valid(&p);
    }

    #[test]
    fn message_repeated() {
        let t = "Dec 10 07:13:43 LabSZ sshd[24227]: Failed password for root from 5.36.59.76 port 42393 ssh2\n\
                 Dec 10 07:13:56 LabSZ sshd[24227]: message repeated 5 times: [ Failed password for root from 5.36.59.76 port 42393 ssh2]";
        let p = parse_syslog(t, None, at(2016, 12, 31, 0, 0, 0));
        assert_eq!(p.traces.len(), 6);
        let ids: std::collections::HashSet<_> =
            p.traces.iter().map(|t| t["trace_id"].clone()).collect();
        assert_eq!(ids.len(), 6);
        // Deterministic: a re-import yields the same ids.
        assert_eq!(p, parse_syslog(t, None, at(2016, 12, 31, 0, 0, 0)));
        all_valid(&p);
    }

    #[test]
    fn logout_only_after_login() {
        let t = "Nov 23 00:00:02 b sshd[9]: Received disconnect from 192.0.2.9 port 1:11: Bye Bye [preauth]\n\
                 Nov 23 00:00:02 b sshd[9]: Disconnected from user bob 192.0.2.9 port 1\n\
                 Nov 23 00:00:03 b sshd[34146]: Accepted password for bob from 198.51.100.222 port 10334 ssh2\n\
                 Nov 23 00:00:03 b sshd[34146]: pam_unix(sshd:session): session opened for user bob(uid=1001) by (uid=0)\n\
                 Nov 23 00:00:03 b sshd[34150]: Received disconnect from 198.51.100.222 port 10334:11: disconnected by user\n\
                 Nov 23 00:00:03 b sshd[34150]: Disconnected from user bob 198.51.100.222 port 10334\n\
                 Nov 23 00:00:03 b sshd[34146]: pam_unix(sshd:session): session closed for user bob";
        let p = parse_syslog(t, None, at(2026, 11, 25, 0, 0, 0));
        assert_eq!(names(&p), ["login", "logout"]);
        assert_eq!(p.traces[1]["user"]["name"], "bob");
        assert_eq!(p.skipped, 5);
        all_valid(&p);
    }
}
