//! Which log lines are alarms: level selection for `log_alarm`.
//!
//! The tutorial flagged a record when `"WARN" in json.dumps(log)` or `"ERR" in …`: a substring
//! test over the whole record, so `ERRORS_TOTAL=0`, `terror`, `WARNINGS: none` and any path
//! containing `err` raised alarms, while lower-case `error` did not. [`LevelMatcher`] decides
//! on the message text alone, with these rules, applied in order (the first that applies
//! decides):
//!
//! 1. **JSON object.** If the message, trimmed, is a JSON object that has a `level`,
//!    `severity` or `lvl` member (key compared ASCII-case-insensitively; first of those three
//!    in that order), only that member counts: the line is selected iff it is a string equal,
//!    case-insensitively and trimmed, to one of the levels. Numeric levels (pino's `50`) are
//!    not levels here. A JSON object without such a member falls through to rule 3.
//! 2. **logfmt.** If the message has a `level=`, `lvl=` or `severity=` key (at the start or
//!    after whitespace; key case-insensitive), only its value counts (the first such key; the
//!    value ends at whitespace and may be double-quoted): selected iff it equals a level
//!    case-insensitively.
//! 3. **Text.** Otherwise the line is selected iff one of the levels occurs as a **whole word**,
//!    case-insensitively. A word is a maximal run of ASCII letters, digits and `_`; anything
//!    else separates words. So `[WRN]`, ` ERROR `, `error:`, `<ERR>` and `WARN|` match, while
//!    `ERRORS_TOTAL=0` (one word), `terror`, `WARNINGS` and `errno` do not.
//!
//! The levels default to [`DEFAULT_LEVELS`] (`WARN, WARNING, WRN, ERROR, ERR, FATAL,
//! CRITICAL`) and can be replaced through the `Levels` variable: comma-separated, surrounding
//! whitespace ignored, each 1–32 characters of `[A-Za-z0-9_]` (so that rule 3 can find it as a
//! word); empty items and an empty list are errors.

use serde_json::Value;

use crate::text::quote;

/// The levels selected when `Levels` is not set.
pub const DEFAULT_LEVELS: [&str; 7] = [
    "WARN", "WARNING", "WRN", "ERROR", "ERR", "FATAL", "CRITICAL",
];

/// The longest level name.
pub const LEVEL_MAX: usize = 32;

/// Decides whether a log message is at one of the configured levels (module docs).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LevelMatcher {
    /// Upper-case level names.
    levels: Vec<String>,
}

/// Why a `Levels` value was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LevelsError {
    /// No levels at all.
    #[error("Levels is empty; list level names separated by commas, e.g. \"ERROR,FATAL\"")]
    Empty,
    /// One item is bad.
    #[error("Levels item {position} {item}: {reason}")]
    Item {
        /// 1-based position.
        position: usize,
        /// The item, quoted.
        item: String,
        /// What is wrong.
        reason: String,
    },
}

impl Default for LevelMatcher {
    fn default() -> Self {
        LevelMatcher {
            levels: DEFAULT_LEVELS.iter().map(|s| (*s).to_owned()).collect(),
        }
    }
}

/// Where the decision came from, for logs and tests.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Basis {
    /// Rule 1: a JSON `level`/`severity`/`lvl` member.
    JsonField,
    /// Rule 2: a logfmt `level=`/`lvl=`/`severity=` key.
    Logfmt,
    /// Rule 3: whole-word search of the text.
    Text,
}

fn is_word_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b == b'_'
}

impl LevelMatcher {
    /// Parses the `Levels` variable (module docs).
    pub fn parse(text: &str) -> Result<LevelMatcher, LevelsError> {
        if text.trim().is_empty() {
            return Err(LevelsError::Empty);
        }
        let mut levels: Vec<String> = Vec::new();
        for (i, item) in text.split(',').enumerate() {
            let err = |reason: &str| LevelsError::Item {
                position: i + 1,
                item: quote(item),
                reason: reason.to_owned(),
            };
            let level = item.trim();
            if level.is_empty() {
                return Err(err("is empty"));
            }
            if level.len() > LEVEL_MAX {
                return Err(err("is longer than 32 characters"));
            }
            if !level.bytes().all(is_word_byte) {
                return Err(err(
                    "may only contain letters, digits and '_' (a level is matched as a whole word)",
                ));
            }
            let upper = level.to_ascii_uppercase();
            if !levels.contains(&upper) {
                levels.push(upper);
            }
        }
        Ok(LevelMatcher { levels })
    }

    /// The configured levels, upper-case.
    pub fn levels(&self) -> &[String] {
        &self.levels
    }

    fn is_level(&self, s: &str) -> bool {
        let s = s.trim();
        self.levels.iter().any(|l| l.eq_ignore_ascii_case(s))
    }

    /// Whether the message is at one of the levels.
    pub fn matches(&self, message: &str) -> bool {
        self.decide(message).0
    }

    /// [`LevelMatcher::matches`] plus which rule decided.
    pub fn decide(&self, message: &str) -> (bool, Basis) {
        let trimmed = message.trim();
        if trimmed.starts_with('{')
            && trimmed.ends_with('}')
            && let Ok(Value::Object(obj)) = serde_json::from_str::<Value>(trimmed)
        {
            for key in ["level", "severity", "lvl"] {
                if let Some((_, v)) = obj.iter().find(|(k, _)| k.eq_ignore_ascii_case(key)) {
                    let hit = v.as_str().is_some_and(|s| self.is_level(s));
                    return (hit, Basis::JsonField);
                }
            }
        }
        if let Some(value) = logfmt_level(message) {
            return (self.is_level(value), Basis::Logfmt);
        }
        (self.has_word(message), Basis::Text)
    }

    /// Rule 3: a level as a whole word, case-insensitively.
    fn has_word(&self, text: &str) -> bool {
        let bytes = text.as_bytes();
        let mut i = 0;
        while i < bytes.len() {
            if !is_word_byte(bytes[i]) {
                i += 1;
                continue;
            }
            let start = i;
            while i < bytes.len() && is_word_byte(bytes[i]) {
                i += 1;
            }
            let word = &bytes[start..i];
            if word.len() <= LEVEL_MAX
                && self
                    .levels
                    .iter()
                    .any(|l| l.as_bytes().eq_ignore_ascii_case(word))
            {
                return true;
            }
        }
        false
    }
}

/// The value of the first logfmt `level=` / `lvl=` / `severity=` key, if any.
fn logfmt_level(message: &str) -> Option<&str> {
    let bytes = message.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        // at a token start: beginning or after whitespace
        if i == 0 || bytes[i - 1].is_ascii_whitespace() {
            let rest = &message[i..];
            for key in ["level=", "lvl=", "severity="] {
                if rest.len() >= key.len()
                    && rest.as_bytes()[..key.len()].eq_ignore_ascii_case(key.as_bytes())
                {
                    let value = &rest[key.len()..];
                    if let Some(quoted) = value.strip_prefix('"') {
                        let end = quoted.find('"').unwrap_or(quoted.len());
                        return Some(&quoted[..end]);
                    }
                    let end = value
                        .find(|c: char| c.is_whitespace())
                        .unwrap_or(value.len());
                    return Some(&value[..end]);
                }
            }
        }
        i += 1;
    }
    None
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn word_bounded_defaults() {
        let m = LevelMatcher::default();
        for hit in [
            "2018-08-08/08:08:08 [WRN] [test.go:08]This is a test message.",
            "2024-01-01 12:00:00 ERROR something broke",
            " ERROR ",
            "error: disk full",
            "<ERR> x",
            "WARN|db",
            "Fatal crash",
            "kernel: CRITICAL temperature",
            "warning",
        ] {
            assert!(m.matches(hit), "{hit}");
        }
        for miss in [
            "ERRORS_TOTAL=0",
            "metrics errors_total=0 warnings_total=0",
            "terror in the night",
            "WARNINGS: none",
            "errno 0",
            "INFO all good",
            "",
            "ERROR_CODE_NONE",
        ] {
            assert!(!m.matches(miss), "{miss}");
        }
        // Punctuation separates words, so a path segment named `err` is a word: documented.
        assert!(m.matches("/var/log/err.d/app INFO started"));
    }

    #[test]
    fn logfmt_level_field_decides_alone() {
        let m = LevelMatcher::default();
        assert_eq!(m.decide("ts=1 level=error msg=boom"), (true, Basis::Logfmt));
        assert_eq!(m.decide("level=ERROR"), (true, Basis::Logfmt));
        assert_eq!(m.decide("ts=1 lvl=warn msg=x"), (true, Basis::Logfmt));
        assert_eq!(
            m.decide("ts=1 LEVEL=\"Error\" msg=x"),
            (true, Basis::Logfmt)
        );
        // the text mentions an error but the level says info: not selected
        assert_eq!(
            m.decide("ts=1 level=info msg=\"retrying after ERROR\""),
            (false, Basis::Logfmt)
        );
        // `errlevel=` is not `level=`
        assert_eq!(m.decide("errlevel=3 all fine"), (false, Basis::Text));
    }

    #[test]
    fn json_level_field_decides_alone() {
        let m = LevelMatcher::default();
        assert_eq!(
            m.decide(r#"{"level":"error","msg":"x"}"#),
            (true, Basis::JsonField)
        );
        assert_eq!(
            m.decide(r#" {"Severity":"WARNING","msg":"x"} "#),
            (true, Basis::JsonField)
        );
        assert_eq!(
            m.decide(r#"{"lvl":"info","msg":"ERROR in upstream"}"#),
            (false, Basis::JsonField)
        );
        assert_eq!(
            m.decide(r#"{"level":50,"msg":"x"}"#),
            (false, Basis::JsonField)
        );
        // level takes precedence over severity
        assert_eq!(
            m.decide(r#"{"severity":"ERROR","level":"info"}"#),
            (false, Basis::JsonField)
        );
        // no level member: text rule over the whole line
        assert_eq!(m.decide(r#"{"msg":"ERROR x"}"#), (true, Basis::Text));
        assert_eq!(m.decide(r#"{"msg":"terror"}"#), (false, Basis::Text));
        // not valid JSON: text rule
        assert_eq!(m.decide("{ERROR}"), (true, Basis::Text));
    }

    #[test]
    fn configured_levels() {
        let m = LevelMatcher::parse(" fatal , Panic,FATAL").unwrap();
        assert_eq!(m.levels(), &["FATAL".to_owned(), "PANIC".to_owned()]);
        assert!(m.matches("PANIC: x"));
        assert!(m.matches("panic x"));
        assert!(!m.matches("ERROR x"));
        assert!(!m.matches("panicked"));

        assert_eq!(LevelMatcher::parse(" "), Err(LevelsError::Empty));
        let e = LevelMatcher::parse("ERROR,,FATAL").unwrap_err();
        assert_eq!(e.to_string(), "Levels item 2 \"\": is empty");
        let e = LevelMatcher::parse("ERROR,WARN-ING").unwrap_err();
        assert!(
            e.to_string()
                .starts_with("Levels item 2 \"WARN-ING\": may only"),
            "{e}"
        );
        let e = LevelMatcher::parse(&"X".repeat(33)).unwrap_err();
        assert!(e.to_string().contains("longer than 32"), "{e}");
    }
}
