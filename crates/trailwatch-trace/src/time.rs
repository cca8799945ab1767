//! Trace timestamps: the forms CTS and FunctionGraph actually send, normalised to UTC milliseconds.
//!
//! Real payloads disagree on the unit and even the type of `time` / `record_time`: the v3 API
//! sends 13-digit milliseconds, the FunctionGraph runtime sample sends 10-digit seconds, and the
//! OTC documentation examples carry the console rendering `"2016/12/08 11:07:28 GMT+08:00"`.

use serde_json::Value;

use crate::TraceError;
use crate::parse::{Member, describe_member};

/// Integers below this are taken as seconds: 100 000 000 000 ms is 1973-03-03, so no real trace
/// has a millisecond value this small, while every 10-digit seconds value (up to year 2286) is.
pub(crate) const SECONDS_LIMIT: u64 = 100_000_000_000;

/// Appended to every time error so the user learns all accepted forms at once.
const ACCEPTED: &str = "expected milliseconds since the epoch as a non-negative JSON integer \
    (values below 100000000000 are taken as seconds), a string of digits with the same rule, \
    or a console time like \"2016/12/08 11:07:28 GMT+08:00\", on or after 1973-03-03T09:46:40Z";

/// Parses a `time` / `record_time` member into UTC milliseconds.
///
/// The result is never before 1973-03-03T09:46:40Z (`SECONDS_LIMIT` ms): an earlier instant,
/// stored as milliseconds, would read back as seconds and change on every round trip. No trace
/// is that old, so such a value is refused rather than silently reinterpreted.
pub(crate) fn parse_time(field: &str, v: &Member<'_>) -> Result<i64, TraceError> {
    let ms = parse_time_unchecked(field, v)?;
    if ms < SECONDS_LIMIT as i64 {
        return Err(TraceError::new(
            field,
            format!(
                "{} is before 1973-03-03T09:46:40Z, which no trace can be; {ACCEPTED}",
                describe_member(v)
            ),
        ));
    }
    Ok(ms)
}

fn parse_time_unchecked(field: &str, v: &Member<'_>) -> Result<i64, TraceError> {
    match v {
        Member::Json(Value::Number(n)) => {
            if let Some(u) = n.as_u64() {
                from_integer(field, u, v)
            } else {
                Err(generic(field, v))
            }
        }
        Member::Str(s) => {
            let t = s.trim();
            if !t.is_empty() && t.bytes().all(|b| b.is_ascii_digit()) {
                match t.parse::<u64>() {
                    Ok(u) => from_integer(field, u, v),
                    Err(_) => Err(TraceError::new(
                        field,
                        format!("{} is too large; {ACCEPTED}", describe_member(v)),
                    )),
                }
            } else if t.contains("GMT") {
                parse_console(t).map_err(|reason| {
                    TraceError::new(
                        field,
                        format!("{reason} in {}; {ACCEPTED}", describe_member(v)),
                    )
                })
            } else {
                Err(generic(field, v))
            }
        }
        _ => Err(generic(field, v)),
    }
}

fn generic(field: &str, v: &Member<'_>) -> TraceError {
    TraceError::new(field, format!("{ACCEPTED}, found {}", describe_member(v)))
}

fn from_integer(field: &str, u: u64, v: &Member<'_>) -> Result<i64, TraceError> {
    let ms = if u < SECONDS_LIMIT { u * 1000 } else { u };
    i64::try_from(ms).map_err(|_| {
        TraceError::new(
            field,
            format!("{} is too large; {ACCEPTED}", describe_member(v)),
        )
    })
}

/// Parses `yyyy/MM/dd HH:mm:ss GMT±HH:MM` into UTC milliseconds. The error is a short reason.
pub(crate) fn parse_console(s: &str) -> Result<i64, String> {
    let b = s.as_bytes();
    // Fixed-width layout; checking the separators first gives a clearer reason than a
    // generic "bad number" further on.
    const LAYOUT: &[u8] = b"dddd/dd/dd dd:dd:dd GMTsdd:dd";
    let layout_ok = b.len() == LAYOUT.len()
        && b.iter().zip(LAYOUT).all(|(&c, &l)| match l {
            b'd' => c.is_ascii_digit(),
            b's' => c == b'+' || c == b'-',
            _ => c == l,
        });
    if !layout_ok {
        return Err("malformed console time (layout yyyy/MM/dd HH:mm:ss GMT±HH:MM)".to_owned());
    }
    let num = |from: usize, to: usize| -> i64 {
        b[from..to]
            .iter()
            .fold(0_i64, |acc, &c| acc * 10 + i64::from(c - b'0'))
    };
    let (year, month, day) = (num(0, 4), num(5, 7), num(8, 10));
    let (hour, minute, second) = (num(11, 13), num(14, 16), num(17, 19));
    let sign = if b[23] == b'-' { -1 } else { 1 };
    let (off_h, off_m) = (num(24, 26), num(27, 29));

    if !(1..=12).contains(&month) {
        return Err(format!("month {month} out of range 1-12"));
    }
    let dim = days_in_month(year, month);
    if !(1..=dim).contains(&day) {
        return Err(format!("day {day} out of range 1-{dim}"));
    }
    if hour > 23 || minute > 59 || second > 59 {
        return Err(format!(
            "time of day {hour:02}:{minute:02}:{second:02} out of range"
        ));
    }
    // Real zone offsets lie within -12:00..+14:00.
    if off_h > 14 || off_m > 59 {
        return Err(format!("zone offset {off_h:02}:{off_m:02} out of range"));
    }
    let local_secs =
        days_from_civil(year, month, day) * 86_400 + hour * 3600 + minute * 60 + second;
    // Local = UTC + offset, so UTC = local - offset.
    let utc_secs = local_secs - sign * (off_h * 3600 + off_m * 60);
    if utc_secs < 0 {
        return Err("date before 1970-01-01 UTC".to_owned());
    }
    Ok(utc_secs * 1000)
}

fn is_leap(y: i64) -> bool {
    (y % 4 == 0 && y % 100 != 0) || y % 400 == 0
}

fn days_in_month(y: i64, m: i64) -> i64 {
    match m {
        2 if is_leap(y) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 1970-01-01 for a proleptic Gregorian date (H. Hinnant's `days_from_civil`).
/// Eras of 400 years repeat exactly, so the year is shifted to start in March (leap day last).
pub(crate) fn days_from_civil(y: i64, m: i64, d: i64) -> i64 {
    let y = if m <= 2 { y - 1 } else { y };
    let era = y.div_euclid(400);
    let yoe = y - era * 400; // [0, 399]
    let mp = (m + 9) % 12; // March = 0
    let doy = (153 * mp + 2) / 5 + d - 1; // [0, 365]
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy; // [0, 146096]
    era * 146_097 + doe - 719_468
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn civil_days_known_points() {
        assert_eq!(days_from_civil(1970, 1, 1), 0);
        assert_eq!(days_from_civil(1970, 3, 1), 59);
        assert_eq!(days_from_civil(2000, 3, 1), 11_017);
        assert_eq!(days_from_civil(2016, 12, 8), 17_143);
        assert_eq!(days_from_civil(1969, 12, 31), -1);
    }

    #[test]
    fn civil_days_are_contiguous_across_leap_years() {
        let mut expected = days_from_civil(1999, 1, 1);
        for y in 1999..=2101 {
            for m in 1..=12 {
                for d in 1..=days_in_month(y, m) {
                    assert_eq!(days_from_civil(y, m, d), expected, "{y}-{m}-{d}");
                    expected += 1;
                }
            }
        }
    }

    #[test]
    fn console_time_offsets() {
        assert_eq!(
            parse_console("2016/12/08 11:07:28 GMT+08:00").unwrap(),
            1_481_166_448_000
        );
        assert_eq!(
            parse_console("2016/12/08 03:07:28 GMT+00:00").unwrap(),
            1_481_166_448_000
        );
        assert_eq!(
            parse_console("2016/12/07 21:37:28 GMT-05:30").unwrap(),
            1_481_166_448_000
        );
        assert_eq!(
            parse_console("2024/02/29 00:00:00 GMT+00:00").unwrap(),
            1_709_164_800_000
        );
    }

    #[test]
    fn console_time_rejects_bad_values() {
        assert!(
            parse_console("2016/13/08 11:07:28 GMT+08:00")
                .unwrap_err()
                .contains("month 13")
        );
        assert!(
            parse_console("2023/02/29 11:07:28 GMT+08:00")
                .unwrap_err()
                .contains("day 29")
        );
        assert!(
            parse_console("2016/12/08 24:00:00 GMT+08:00")
                .unwrap_err()
                .contains("time of day")
        );
        assert!(
            parse_console("2016/12/08 11:07:28 GMT+15:00")
                .unwrap_err()
                .contains("offset")
        );
        assert!(
            parse_console("1970/01/01 00:00:00 GMT+01:00")
                .unwrap_err()
                .contains("1970")
        );
        assert!(
            parse_console("2016-12-08 11:07:28 GMT+08:00")
                .unwrap_err()
                .contains("malformed")
        );
        assert!(
            parse_console("2016/12/08 11:07:28 GMT+8:00")
                .unwrap_err()
                .contains("malformed")
        );
    }
}
