//! TIMER trigger schedules (cloud-apis.md §4.5): parsing, the next tick, and what to do about
//! ticks missed while the engine was down.
//!
//! `schedule_type` is `Rate` or `Cron` (ASCII case-insensitive).
//!
//! **Rate** — `<n><unit>`: `m` minutes (1–60), `h` hours (1–24), `d` days (1–30). No spaces,
//! lower-case unit, no sign, no zero (`0m`, `61m`, `25h`, `31d`, `5M`, `5 m` are refused).
//!
//! **Cron** — one of:
//! - `@every <duration>`: Go-style duration, a sequence of `<number><unit>` with units `h`, `m`,
//!   `s` and optional decimals: `30m`, `2h30m`, `1.5h`. The total must be a whole number of
//!   seconds, at least 1 s. Sub-second units (`ms`, `us`, `µs`, `ns`) are refused.
//! - `sec min hour day-of-month month [day-of-week]`: 5 or 6 space-separated fields (the
//!   day-of-week may be omitted, meaning any day). The first field is always seconds, as on
//!   FunctionGraph: a Unix crontab line `*/5 * * * *` reads as "every 5 seconds". Per field: `*`, a value, a range `a-b`, a step
//!   `*/n`, `a/n` (from `a` to the end) or `a-b/n`, and comma lists of those. `?` (any) is
//!   allowed in day-of-month and day-of-week only. Ranges: seconds and minutes 0–59, hours 0–23,
//!   day-of-month 1–31, month 1–12 or `JAN`–`DEC`, day-of-week 0–6 or `SUN`–`SAT` (0 = Sunday),
//!   names case-insensitive. Quartz/croner extensions (`L`, `W`, `#`, `7` for Sunday, a year
//!   field) are refused so a schedule accepted here means the same on FunctionGraph. When both
//!   day fields are restricted a day matches if **either** matches (Vixie cron).
//!   Evaluated in **UTC** (FunctionGraph uses the region's zone); a leading `CRON_TZ=UTC ` is
//!   accepted, any other zone is refused. A pattern that never fires (`0 0 0 30 2 *`) is refused.
//!
//! **Ticks and the anchor.** A [`Schedule`] has an anchor, normally the trigger's creation
//! time ([`Schedule::anchored_at`]); only ticks strictly after it count. Fixed intervals (Rate,
//! `@every`) tick at `anchor + k·period`, k ≥ 1, so the phase survives restarts: a `3m` trigger
//! created at 10:00:20 fires at 10:03:20, 10:06:20, … whenever the engine happens to look.
//! Cron ticks are calendar instants (whole seconds). Without an explicit anchor it is the Unix
//! epoch, so intervals align to multiples of the period since 1970.
//!
//! **Missed ticks** ([`Schedule::due`]): the engine remembers the last tick it fired. When it
//! looks at `now` and several ticks have passed (it was down or busy), it fires **one**
//! catch-up invocation for the most recent passed tick — not one per missed tick, which would
//! flood the function after an outage — and then continues on schedule. [`Due::skipped`] counts
//! the ticks that were coalesced so the engine can log them.

use std::fmt;

use chrono::{DateTime, TimeDelta, Timelike, Utc};
use croner::Cron;
use croner::parser::{CronParser, Seconds, Year};

use crate::text::quote;

/// Why a schedule was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ScheduleError {
    /// `schedule_type` is neither `Rate` nor `Cron`.
    #[error("schedule_type {0} is not supported; expected \"Rate\" or \"Cron\"")]
    UnknownType(String),
    /// A Rate schedule is malformed or out of range.
    #[error("Rate schedule {value}: {reason}")]
    Rate {
        /// The schedule, quoted.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// An `@every` schedule is malformed or out of range.
    #[error("Cron schedule {value}: {reason}")]
    Every {
        /// The schedule, quoted.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// A cron field is malformed or out of range.
    #[error("Cron schedule {value}: {field} field {item}: {reason}")]
    CronField {
        /// The schedule, quoted.
        value: String,
        /// `seconds`, `minutes`, `hours`, `day-of-month`, `month` or `day-of-week`.
        field: &'static str,
        /// The field item at fault, quoted.
        item: String,
        /// What is wrong.
        reason: String,
    },
    /// The cron expression as a whole is wrong (field count, time zone, never fires).
    #[error("Cron schedule {value}: {reason}")]
    Cron {
        /// The schedule, quoted.
        value: String,
        /// What is wrong.
        reason: String,
    },
}

/// What a schedule is, once parsed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Spec {
    /// A `Rate` schedule: a fixed interval.
    Rate(TimeDelta),
    /// A Cron `@every` schedule: a fixed interval.
    Every(TimeDelta),
    /// A calendar cron expression, normalised to numeric croner syntax (6 fields).
    Cron {
        /// The normalised pattern handed to croner.
        pattern: String,
        /// The parsed pattern.
        cron: Box<Cron>,
    },
}

/// A parsed TIMER schedule with its anchor (see the module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Schedule {
    spec: Spec,
    anchor: DateTime<Utc>,
}

/// The result of [`Schedule::due`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Due {
    /// The tick to fire now: the most recent tick in `(last fired, now]`, if any.
    pub fire: Option<DateTime<Utc>>,
    /// How many earlier ticks in that window were coalesced into `fire` and are not invoked.
    pub skipped: u64,
    /// False when counting stopped at [`MAX_COUNTED_TICKS`] (then `skipped` is a lower bound).
    pub skipped_exact: bool,
    /// The first tick strictly after `now`: when to look again. `None` if there is none.
    pub next: Option<DateTime<Utc>>,
}

/// Cron ticks are counted one by one; past this many, [`Due::skipped`] is a lower bound.
pub const MAX_COUNTED_TICKS: u64 = 100_000;

const FIELD_NAMES: [&str; 6] = [
    "seconds",
    "minutes",
    "hours",
    "day-of-month",
    "month",
    "day-of-week",
];
const MONTHS: [&str; 12] = [
    "JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC",
];
const DAYS: [&str; 7] = ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"];

/// (min, max, names, `?` allowed) per field.
fn field_rules(i: usize) -> (u32, u32, &'static [&'static str], bool) {
    match i {
        0 | 1 => (0, 59, &[], false),
        2 => (0, 23, &[], false),
        3 => (1, 31, &[], true),
        4 => (1, 12, &MONTHS, false),
        _ => (0, 6, &DAYS, true),
    }
}

fn parse_rate(s: &str) -> Result<TimeDelta, ScheduleError> {
    let err = |reason: String| ScheduleError::Rate {
        value: quote(s),
        reason,
    };
    let format_hint =
        "expected <number><unit> with unit m (1-60), h (1-24) or d (1-30), e.g. \"3m\"";
    let Some(unit) = s.chars().last() else {
        return Err(err(format!("is empty; {format_hint}")));
    };
    let digits = &s[..s.len() - unit.len_utf8()];
    let (max, secs) = match unit {
        'm' => (60, 60),
        'h' => (24, 3600),
        'd' => (30, 86_400),
        _ => return Err(err(format!("unknown unit {unit:?}; {format_hint}"))),
    };
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return Err(err(format!(
            "{} is not a whole number; {format_hint}",
            quote(digits)
        )));
    }
    let n: i64 = match digits.parse() {
        Ok(n) if (1..=max).contains(&n) => n,
        _ => {
            return Err(err(format!(
                "{digits}{unit} is out of range: {unit} must be 1 to {max}"
            )));
        }
    };
    Ok(TimeDelta::seconds(n * secs))
}

fn parse_every(schedule: &str, d: &str) -> Result<TimeDelta, ScheduleError> {
    let err = |reason: String| ScheduleError::Every {
        value: quote(schedule),
        reason,
    };
    let hint = "expected a duration like \"30m\", \"2h30m\" or \"1.5h\" (units h, m, s)";
    if d.is_empty() {
        return Err(err(format!("@every needs a duration; {hint}")));
    }
    // Milliseconds, exact: components are n[.frac] × unit with unit ∈ {h, m, s}.
    let mut total_ms: u128 = 0;
    let mut rest = d;
    while !rest.is_empty() {
        let num_len = rest
            .find(|c: char| !(c.is_ascii_digit() || c == '.'))
            .unwrap_or(rest.len());
        let (num, tail) = rest.split_at(num_len);
        let unit_len = tail
            .find(|c: char| c.is_ascii_digit() || c == '.')
            .unwrap_or(tail.len());
        let (unit, tail) = tail.split_at(unit_len);
        let unit_ms: u128 = match unit {
            "h" => 3_600_000,
            "m" => 60_000,
            "s" => 1_000,
            "ms" | "us" | "µs" | "ns" => {
                return Err(err(format!(
                    "sub-second unit {} is not supported; the smallest unit is s",
                    quote(unit)
                )));
            }
            "" => return Err(err(format!("{} has no unit; {hint}", quote(num)))),
            other => return Err(err(format!("unknown unit {}; {hint}", quote(other)))),
        };
        let (int, frac) = num.split_once('.').unwrap_or((num, ""));
        let ok_digits = |s: &str| s.bytes().all(|b| b.is_ascii_digit());
        if (int.is_empty() && frac.is_empty())
            || !ok_digits(int)
            || !ok_digits(frac)
            || frac.len() > 9
            || int.len() > 12
            || (num.contains('.') && frac.is_empty())
        {
            return Err(err(format!("{} is not a number; {hint}", quote(num))));
        }
        let int_v: u128 = if int.is_empty() {
            0
        } else {
            int.parse()
                .map_err(|_| err(format!("{} is not a number", quote(num))))?
        };
        let frac_v: u128 = if frac.is_empty() {
            0
        } else {
            frac.parse()
                .map_err(|_| err(format!("{} is not a number", quote(num))))?
        };
        let scale = 10u128.pow(u32::try_from(frac.len()).unwrap_or(9));
        let frac_ms = frac_v * unit_ms;
        if !frac_ms.is_multiple_of(scale) {
            return Err(err(format!("{num}{unit} is not a whole number of seconds")));
        }
        total_ms += int_v * unit_ms + frac_ms / scale;
        rest = tail;
    }
    if !total_ms.is_multiple_of(1000) {
        return Err(err(format!("{d} is not a whole number of seconds")));
    }
    let secs = total_ms / 1000;
    if secs == 0 {
        return Err(err("the interval must be at least 1s".to_owned()));
    }
    // Ten years is far beyond any sensible timer and keeps all arithmetic in range.
    const MAX_SECS: u128 = 10 * 366 * 86_400;
    if secs > MAX_SECS {
        return Err(err(format!("{d} is longer than ten years")));
    }
    let secs = i64::try_from(secs).map_err(|_| err(format!("{d} is too long")))?;
    Ok(TimeDelta::seconds(secs))
}

/// One cron value: a number or (for month/day-of-week) a name.
fn cron_value(s: &str, min: u32, max: u32, names: &[&str]) -> Result<u32, String> {
    if let Ok(v) = s.parse::<u32>()
        && s.bytes().all(|b| b.is_ascii_digit())
    {
        if (min..=max).contains(&v) {
            return Ok(v);
        }
        return Err(format!("{v} is out of range {min}-{max}"));
    }
    if let Some(i) = names.iter().position(|n| n.eq_ignore_ascii_case(s)) {
        let offset = u32::try_from(i).unwrap_or(0);
        return Ok(min + offset);
    }
    if names.is_empty() {
        Err(format!("{} is not a number", quote(s)))
    } else {
        Err(format!(
            "{} is not a number {min}-{max} or one of {}",
            quote(s),
            names.join(",")
        ))
    }
}

/// Validates one field and rewrites it in croner's numeric syntax.
fn cron_field(schedule: &str, i: usize, field: &str) -> Result<String, ScheduleError> {
    let (min, max, names, question) = field_rules(i);
    let name = FIELD_NAMES.get(i).copied().unwrap_or("day-of-week");
    let mut out = Vec::new();
    for item in field.split(',') {
        let err = |reason: String| ScheduleError::CronField {
            value: quote(schedule),
            field: name,
            item: quote(item),
            reason,
        };
        if item.is_empty() {
            return Err(err("empty list item".to_owned()));
        }
        if item == "?" {
            if !question {
                return Err(err(
                    "'?' is only allowed in day-of-month and day-of-week".to_owned()
                ));
            }
            out.push("*".to_owned());
            continue;
        }
        let (range, step) = match item.split_once('/') {
            Some((r, s)) => {
                let step: u32 = match s.parse() {
                    Ok(n) if n >= 1 && n <= max && s.bytes().all(|b| b.is_ascii_digit()) => n,
                    _ => {
                        return Err(err(format!(
                            "step {} must be a number from 1 to {max}",
                            quote(s)
                        )));
                    }
                };
                (r, Some(step))
            }
            None => (item, None),
        };
        let rendered = if range == "*" {
            "*".to_owned()
        } else if let Some((a, b)) = range.split_once('-') {
            let a = cron_value(a, min, max, names).map_err(&err)?;
            let b = cron_value(b, min, max, names).map_err(&err)?;
            if a > b {
                return Err(err(format!("range {a}-{b} runs backwards")));
            }
            format!("{a}-{b}")
        } else {
            let a = cron_value(range, min, max, names).map_err(&err)?;
            match step {
                // `a/n` means from a to the end of the range, every n.
                Some(_) => format!("{a}-{max}"),
                None => a.to_string(),
            }
        };
        out.push(match step {
            Some(s) => format!("{rendered}/{s}"),
            None => rendered,
        });
    }
    Ok(out.join(","))
}

fn parse_cron(schedule: &str) -> Result<Spec, ScheduleError> {
    let whole = |reason: String| ScheduleError::Cron {
        value: quote(schedule),
        reason,
    };
    let mut text = schedule.trim();
    if let Some(rest) = text.strip_prefix("CRON_TZ=") {
        let (zone, pattern) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        if zone != "UTC" && zone != "Etc/UTC" {
            return Err(whole(format!(
                "time zone {} is not supported; schedules are evaluated in UTC (use CRON_TZ=UTC or omit it)",
                quote(zone)
            )));
        }
        text = pattern.trim();
    }
    if let Some(d) = text.strip_prefix("@every") {
        if !d.is_empty() && !d.starts_with(char::is_whitespace) {
            return Err(whole("expected \"@every <duration>\"".to_owned()));
        }
        return Ok(Spec::Every(parse_every(schedule, d.trim())?));
    }
    if text.starts_with('@') {
        return Err(whole(
            "the only @-form is \"@every <duration>\" (e.g. \"@every 30m\")".to_owned(),
        ));
    }
    let fields: Vec<&str> = text.split_whitespace().collect();
    if !(5..=6).contains(&fields.len()) {
        return Err(whole(format!(
            "has {} field(s); expected 6 (\"sec min hour day-of-month month day-of-week\") or 5 (day-of-week omitted)",
            fields.len()
        )));
    }
    let mut parts = Vec::with_capacity(6);
    for (i, f) in fields.iter().enumerate() {
        parts.push(cron_field(schedule, i, f)?);
    }
    if parts.len() == 5 {
        parts.push("*".to_owned());
    }
    let pattern = parts.join(" ");
    let cron = CronParser::builder()
        .seconds(Seconds::Required)
        .year(Year::Disallowed)
        .build()
        .parse(&pattern)
        .map_err(|e| whole(format!("{e}")))?;
    let spec = Spec::Cron {
        pattern,
        cron: Box::new(cron),
    };
    // Refuse patterns that never fire (30 February): one search from a fixed instant.
    let probe = Schedule {
        spec: spec.clone(),
        anchor: DateTime::UNIX_EPOCH,
    };
    let start = DateTime::from_timestamp(946_684_800, 0).unwrap_or(DateTime::UNIX_EPOCH);
    if probe.next_after(start).is_none() {
        return Err(whole(
            "never fires (no date matches the day and month fields)".to_owned(),
        ));
    }
    Ok(spec)
}

/// Whole seconds of `t`, rounded down.
fn floor_second(t: DateTime<Utc>) -> DateTime<Utc> {
    t.with_nanosecond(0).unwrap_or(t)
}

impl Schedule {
    /// Parses a TIMER trigger's `schedule_type` and `schedule` (rules in the module docs). The
    /// anchor is the Unix epoch until [`Schedule::anchored_at`] sets it.
    pub fn parse(schedule_type: &str, schedule: &str) -> Result<Schedule, ScheduleError> {
        let spec = if schedule_type.eq_ignore_ascii_case("Rate") {
            Spec::Rate(parse_rate(schedule)?)
        } else if schedule_type.eq_ignore_ascii_case("Cron") {
            parse_cron(schedule)?
        } else {
            return Err(ScheduleError::UnknownType(quote(schedule_type)));
        };
        Ok(Schedule {
            spec,
            anchor: DateTime::UNIX_EPOCH,
        })
    }

    /// The same schedule anchored at `anchor` (normally the trigger's creation time).
    pub fn anchored_at(mut self, anchor: DateTime<Utc>) -> Schedule {
        self.anchor = anchor;
        self
    }

    /// The anchor: only ticks strictly after it count, and fixed intervals are phased on it.
    pub fn anchor(&self) -> DateTime<Utc> {
        self.anchor
    }

    /// What was parsed.
    pub fn spec(&self) -> &Spec {
        &self.spec
    }

    /// The interval of a Rate or `@every` schedule; `None` for calendar cron.
    pub fn period(&self) -> Option<TimeDelta> {
        match &self.spec {
            Spec::Rate(p) | Spec::Every(p) => Some(*p),
            Spec::Cron { .. } => None,
        }
    }

    /// Index k of the last interval tick `anchor + k·p` at or before `t` (0 = none yet).
    fn interval_index(&self, p: TimeDelta, t: DateTime<Utc>) -> Option<i64> {
        if t <= self.anchor {
            return Some(0);
        }
        let diff = t.signed_duration_since(self.anchor).num_nanoseconds()?;
        let p = p.num_nanoseconds().filter(|p| *p > 0)?;
        Some(diff / p)
    }

    fn interval_tick(&self, p: TimeDelta, k: i64) -> Option<DateTime<Utc>> {
        // Periods are whole seconds (parse guarantees it).
        let offset = TimeDelta::try_seconds(p.num_seconds().checked_mul(k)?)?;
        self.anchor.checked_add_signed(offset)
    }

    /// The first tick strictly after `t` (and after the anchor); `None` when there is none
    /// (out of the representable range, or a cron pattern with no further match).
    pub fn next_after(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.spec {
            Spec::Rate(p) | Spec::Every(p) => {
                let k = self.interval_index(*p, t)?;
                self.interval_tick(*p, k.checked_add(1)?)
            }
            Spec::Cron { cron, .. } => {
                let from = floor_second(t.max(self.anchor));
                cron.find_next_occurrence(&from, false).ok()
            }
        }
    }

    /// The last tick at or before `t` that is strictly after the anchor, if any.
    pub fn last_at_or_before(&self, t: DateTime<Utc>) -> Option<DateTime<Utc>> {
        match &self.spec {
            Spec::Rate(p) | Spec::Every(p) => {
                let k = self.interval_index(*p, t)?;
                if k == 0 {
                    return None;
                }
                self.interval_tick(*p, k)
            }
            Spec::Cron { cron, .. } => {
                let tick = cron.find_previous_occurrence(&floor_second(t), true).ok()?;
                (tick > self.anchor).then_some(tick)
            }
        }
    }

    /// The missed-tick policy (module docs): given the last tick fired (`None` if never) and
    /// `now`, which tick to fire now, how many were coalesced, and when to look next.
    pub fn due(&self, last_fired: Option<DateTime<Utc>>, now: DateTime<Utc>) -> Due {
        let from = last_fired.map_or(self.anchor, |l| l.max(self.anchor));
        // Ticks up to `from` are done, even if the clock went back behind them.
        let next = self.next_after(now.max(from));
        let fire = self.last_at_or_before(now).filter(|t| *t > from);
        let Some(fire) = fire else {
            return Due {
                fire: None,
                skipped: 0,
                skipped_exact: true,
                next,
            };
        };
        let (skipped, skipped_exact) = match &self.spec {
            Spec::Rate(p) | Spec::Every(p) => {
                let k_fire = self.interval_index(*p, fire).unwrap_or(0);
                let k_from = self.interval_index(*p, from).unwrap_or(0);
                let n = k_fire.saturating_sub(k_from).saturating_sub(1);
                (u64::try_from(n).unwrap_or(0), true)
            }
            Spec::Cron { .. } => {
                let mut count = 0u64;
                let mut t = from;
                let mut exact = true;
                while let Some(tick) = self.next_after(t) {
                    if tick >= fire {
                        break;
                    }
                    count += 1;
                    if count >= MAX_COUNTED_TICKS {
                        exact = false;
                        break;
                    }
                    t = tick;
                }
                (count, exact)
            }
        };
        Due {
            fire: Some(fire),
            skipped,
            skipped_exact,
            next,
        }
    }
}

impl fmt::Display for Spec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Spec::Rate(p) => write!(f, "Rate every {}s", p.num_seconds()),
            Spec::Every(p) => write!(f, "@every {}s", p.num_seconds()),
            Spec::Cron { pattern, .. } => write!(f, "Cron {pattern} (UTC)"),
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    fn t(s: &str) -> DateTime<Utc> {
        DateTime::parse_from_rfc3339(s).unwrap().with_timezone(&Utc)
    }

    fn rate(s: &str) -> Result<Schedule, ScheduleError> {
        Schedule::parse("Rate", s)
    }

    fn cron(s: &str) -> Result<Schedule, ScheduleError> {
        Schedule::parse("Cron", s)
    }

    #[test]
    fn rate_bounds() {
        assert_eq!(rate("1m").unwrap().period(), Some(TimeDelta::minutes(1)));
        assert_eq!(rate("60m").unwrap().period(), Some(TimeDelta::minutes(60)));
        assert_eq!(rate("24h").unwrap().period(), Some(TimeDelta::hours(24)));
        assert_eq!(rate("30d").unwrap().period(), Some(TimeDelta::days(30)));
        for (bad, why) in [
            ("0m", "out of range: m must be 1 to 60"),
            ("61m", "out of range: m must be 1 to 60"),
            ("25h", "out of range: h must be 1 to 24"),
            ("0h", "out of range"),
            ("31d", "out of range: d must be 1 to 30"),
            ("99999999999999999999m", "out of range"),
            ("5M", "unknown unit 'M'"),
            ("5", "unknown unit '5'"),
            ("5 m", "is not a whole number"),
            ("-5m", "is not a whole number"),
            ("m", "is not a whole number"),
            ("", "is empty"),
            ("1.5h", "is not a whole number"),
        ] {
            let e = rate(bad).unwrap_err();
            assert!(matches!(e, ScheduleError::Rate { .. }), "{bad}: {e}");
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        assert!(matches!(
            Schedule::parse("Interval", "3m"),
            Err(ScheduleError::UnknownType(_))
        ));
        assert!(Schedule::parse("rate", "3m").is_ok());
    }

    #[test]
    fn rate_ticks_are_anchored() {
        let anchor = t("2024-01-01T10:00:20Z");
        let s = rate("3m").unwrap().anchored_at(anchor);
        assert_eq!(
            s.next_after(t("2023-12-31T00:00:00Z")),
            Some(t("2024-01-01T10:03:20Z"))
        );
        assert_eq!(s.next_after(anchor), Some(t("2024-01-01T10:03:20Z")));
        assert_eq!(
            s.next_after(t("2024-01-01T10:03:19.999Z")),
            Some(t("2024-01-01T10:03:20Z"))
        );
        assert_eq!(
            s.next_after(t("2024-01-01T10:03:20Z")),
            Some(t("2024-01-01T10:06:20Z"))
        );
        assert_eq!(
            s.next_after(t("2024-01-01T11:00:00Z")),
            Some(t("2024-01-01T11:00:20Z"))
        );
        // unanchored: aligned to the epoch
        let s = rate("1h").unwrap();
        assert_eq!(
            s.next_after(t("2024-01-01T10:30:00Z")),
            Some(t("2024-01-01T11:00:00Z"))
        );
    }

    #[test]
    fn every_parses_go_durations() {
        let p = |s: &str| cron(s).unwrap().period().unwrap().num_seconds();
        assert_eq!(p("@every 30m"), 1800);
        assert_eq!(p("@every 2h30m"), 9000);
        assert_eq!(p("@every 1.5h"), 5400);
        assert_eq!(p("@every 90s"), 90);
        assert_eq!(p("@every 1h0m1s"), 3601);
        for (bad, why) in [
            ("@every", "needs a duration"),
            ("@every 30", "has no unit"),
            ("@every 30x", "unknown unit"),
            ("@every 500ms", "sub-second unit"),
            ("@every 0.5s", "not a whole number of seconds"),
            ("@every 0m", "at least 1s"),
            ("@every 1..5h", "is not a number"),
            ("@every 5.h", "is not a number"),
            ("@every30m", "expected \"@every <duration>\""),
            ("@hourly", "the only @-form"),
            ("@every 100000h", "longer than ten years"),
        ] {
            let e = cron(bad).unwrap_err();
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        let s = cron("@every 2h30m")
            .unwrap()
            .anchored_at(t("2024-01-01T00:00:00Z"));
        assert_eq!(
            s.next_after(t("2024-01-01T02:00:00Z")),
            Some(t("2024-01-01T02:30:00Z"))
        );
        assert_eq!(
            s.next_after(t("2024-01-01T02:30:00Z")),
            Some(t("2024-01-01T05:00:00Z"))
        );
    }

    #[test]
    fn cron_six_fields_next_after() {
        // 08:30:00 Monday to Friday
        let s = cron("0 30 8 ? * MON-FRI").unwrap();
        // 2024-01-05 is a Friday
        assert_eq!(
            s.next_after(t("2024-01-05T08:29:59Z")),
            Some(t("2024-01-05T08:30:00Z"))
        );
        assert_eq!(
            s.next_after(t("2024-01-05T08:30:00Z")),
            Some(t("2024-01-08T08:30:00Z"))
        );
        assert_eq!(
            s.next_after(t("2024-01-05T08:30:00.5Z")),
            Some(t("2024-01-08T08:30:00Z"))
        );
        // every 15 s
        let s = cron("*/15 * * * * *").unwrap();
        assert_eq!(
            s.next_after(t("2024-01-01T00:00:00Z")),
            Some(t("2024-01-01T00:00:15Z"))
        );
        assert_eq!(
            s.next_after(t("2024-01-01T00:00:14.9Z")),
            Some(t("2024-01-01T00:00:15Z"))
        );
        // Quartz-style a/n, lists, month names, 5 fields (day-of-week omitted)
        let s = cron("0 0/20 9,17 1 jan").unwrap();
        assert_eq!(
            s.next_after(t("2024-06-01T00:00:00Z")),
            Some(t("2025-01-01T09:00:00Z"))
        );
        assert_eq!(
            s.next_after(t("2025-01-01T09:00:00Z")),
            Some(t("2025-01-01T09:20:00Z"))
        );
        assert_eq!(
            s.next_after(t("2025-01-01T09:40:00Z")),
            Some(t("2025-01-01T17:00:00Z"))
        );
        // 0 = Sunday; 2024-01-07 is a Sunday
        let s = cron("0 0 12 ? * 0").unwrap();
        assert_eq!(
            s.next_after(t("2024-01-03T00:00:00Z")),
            Some(t("2024-01-07T12:00:00Z"))
        );
        // leap day only
        let s = cron("0 0 0 29 2 ?").unwrap();
        assert_eq!(
            s.next_after(t("2024-03-01T00:00:00Z")),
            Some(t("2028-02-29T00:00:00Z"))
        );
        // anchor: nothing at or before it
        let s = cron("0 0 * * * *")
            .unwrap()
            .anchored_at(t("2024-01-01T10:00:00Z"));
        assert_eq!(
            s.next_after(t("2023-01-01T00:00:00Z")),
            Some(t("2024-01-01T11:00:00Z"))
        );
        // time zone prefix
        assert!(cron("CRON_TZ=UTC 0 0 * * * *").is_ok());
    }

    #[test]
    fn cron_errors_name_the_field() {
        for (bad, field, why) in [
            ("60 * * * * *", "seconds", "60 is out of range 0-59"),
            ("0 60 * * * *", "minutes", "out of range"),
            ("0 0 24 * * *", "hours", "out of range 0-23"),
            ("0 0 0 0 * *", "day-of-month", "out of range 1-31"),
            ("0 0 0 * 13 *", "month", "out of range 1-12"),
            ("0 0 0 * FOO *", "month", "one of JAN"),
            ("0 0 0 ? * 7", "day-of-week", "7 is out of range 0-6"),
            ("0 0 0 L * *", "day-of-month", "is not a number"),
            (
                "0 0 0 ? * MON#2",
                "day-of-week",
                "\"MON#2\" is not a number",
            ),
            ("? * * * * *", "seconds", "only allowed in day-of-month"),
            ("0 5-1 * * * *", "minutes", "runs backwards"),
            ("0 */0 * * * *", "minutes", "step \"0\""),
            ("0 1,,2 * * * *", "minutes", "empty list item"),
        ] {
            let e = cron(bad).unwrap_err();
            match &e {
                ScheduleError::CronField { field: f, .. } => assert_eq!(*f, field, "{bad}: {e}"),
                other => panic!("{bad}: {other}"),
            }
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
        for (bad, why) in [
            ("0 0 0 * *  * 2024", "has 7 field(s)"),
            ("* * * *", "has 4 field(s)"),
            ("0 0 0 30 2 *", "never fires"),
            ("CRON_TZ=Asia/Shanghai 0 0 * * * *", "not supported"),
        ] {
            let e = cron(bad).unwrap_err();
            assert!(matches!(e, ScheduleError::Cron { .. }), "{bad}: {e}");
            assert!(e.to_string().contains(why), "{bad}: {e}");
        }
    }

    #[test]
    fn missed_ticks_fire_once_and_count_the_rest() {
        let anchor = t("2024-01-01T00:00:00Z");
        let s = rate("5m").unwrap().anchored_at(anchor);

        // never fired, nothing due yet
        let d = s.due(None, t("2024-01-01T00:04:59Z"));
        assert_eq!((d.fire, d.skipped), (None, 0));
        assert_eq!(d.next, Some(t("2024-01-01T00:05:00Z")));

        // on time: one due, nothing skipped
        let d = s.due(None, t("2024-01-01T00:05:00Z"));
        assert_eq!(d.fire, Some(t("2024-01-01T00:05:00Z")));
        assert_eq!(d.skipped, 0);
        assert_eq!(d.next, Some(t("2024-01-01T00:10:00Z")));

        // already fired that tick
        let d = s.due(Some(t("2024-01-01T00:05:00Z")), t("2024-01-01T00:07:00Z"));
        assert_eq!(d.fire, None);

        // down from 00:07 to 01:02: ticks 00:10 … 01:00 passed (11); fire 01:00 once, skip 10
        let d = s.due(Some(t("2024-01-01T00:05:00Z")), t("2024-01-01T01:02:00Z"));
        assert_eq!(d.fire, Some(t("2024-01-01T01:00:00Z")));
        assert_eq!((d.skipped, d.skipped_exact), (10, true));
        assert_eq!(d.next, Some(t("2024-01-01T01:05:00Z")));

        // and after the catch-up, back on schedule
        let d = s.due(d.fire, t("2024-01-01T01:05:00Z"));
        assert_eq!((d.fire, d.skipped), (Some(t("2024-01-01T01:05:00Z")), 0));

        // cron: same policy, counted tick by tick
        let s = cron("0 0 * * * *").unwrap().anchored_at(anchor);
        let d = s.due(Some(t("2024-01-01T03:00:00Z")), t("2024-01-01T08:30:00Z"));
        assert_eq!(d.fire, Some(t("2024-01-01T08:00:00Z")));
        assert_eq!((d.skipped, d.skipped_exact), (4, true)); // 04, 05, 06, 07
        assert_eq!(d.next, Some(t("2024-01-01T09:00:00Z")));
        // the clock went back behind the last fired tick: nothing due, and the next tick is
        // after the one already fired
        let d = s.due(Some(t("2024-01-01T08:00:00Z")), t("2024-01-01T06:30:00Z"));
        assert_eq!((d.fire, d.skipped), (None, 0));
        assert_eq!(d.next, Some(t("2024-01-01T09:00:00Z")));
        // a last-fired time before the anchor counts from the anchor
        let d = s.due(Some(t("2023-01-01T00:00:00Z")), t("2024-01-01T02:00:00Z"));
        assert_eq!((d.fire, d.skipped), (Some(t("2024-01-01T02:00:00Z")), 1));
    }

    #[test]
    fn huge_cron_backlogs_are_capped() {
        let s = cron("* * * * * *")
            .unwrap()
            .anchored_at(t("2024-01-01T00:00:00Z"));
        let d = s.due(None, t("2024-01-03T00:00:00Z"));
        assert_eq!(d.fire, Some(t("2024-01-03T00:00:00Z")));
        assert!(!d.skipped_exact);
        assert_eq!(d.skipped, MAX_COUNTED_TICKS);
    }
}
