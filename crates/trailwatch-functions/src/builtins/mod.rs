//! The built-in functions: the two functions of the OTC tutorial "Auditing logins and logouts
//! with FunctionGraph", with its bugs fixed (cloud-apis.md §4.8).
//!
//! - [`login_audit`]: CTS trigger → alarm on logins/logouts from addresses outside (or inside)
//!   an IP list.
//! - [`log_alarm`]: LTS trigger → alarm on warning/error log lines and archive them to OBS.
//!
//! Both read their configuration from `user_data` and share two variables:
//! `SMN_Topic` (a topic name in the function's project, or a full `urn:smn:…` URN) and
//! `RegionName` (used to build the topic URN from a name, as the tutorial did).

pub mod log_alarm;
pub mod login_audit;

use crate::runtime::ConfigError;
use crate::text::{check_project_id, check_region, check_topic_name, quote};
use crate::user_data::UserData;

/// A required variable, trimmed: "is required" when absent, "is empty" when blank.
pub(crate) fn required<'a>(ud: &'a UserData, key: &str) -> Result<&'a str, ConfigError> {
    match ud.get(key) {
        None => Err(ConfigError::new(key, "is required")),
        Some(v) if v.trim().is_empty() => Err(ConfigError::new(key, "is empty")),
        Some(v) => Ok(v.trim()),
    }
}

/// An optional variable, trimmed; blank counts as absent.
pub(crate) fn optional<'a>(ud: &'a UserData, key: &str) -> Option<&'a str> {
    ud.get_non_blank(key)
}

/// `SMN_Topic`: a topic name or `urn:smn:{region}:{project_id}:{name}`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum TopicRef {
    Name(String),
    Urn(String),
}

impl TopicRef {
    pub(crate) fn parse(key: &str, s: &str) -> Result<TopicRef, ConfigError> {
        if s.starts_with("urn:") {
            let parts: Vec<&str> = s.split(':').collect();
            let ["urn", "smn", region, project, name] = parts[..] else {
                return Err(ConfigError::new(
                    key,
                    format!(
                        "{} is not a topic URN urn:smn:{{region}}:{{project_id}}:{{topic_name}}",
                        quote(s)
                    ),
                ));
            };
            check_region(region).map_err(|why| ConfigError::new(key, format!("region {why}")))?;
            check_project_id(project)
                .map_err(|why| ConfigError::new(key, format!("project id {why}")))?;
            check_topic_name(name)
                .map_err(|why| ConfigError::new(key, format!("topic name {why}")))?;
            return Ok(TopicRef::Urn(s.to_owned()));
        }
        check_topic_name(s).map_err(|why| ConfigError::new(key, format!("topic name {why}")))?;
        Ok(TopicRef::Name(s.to_owned()))
    }

    /// The topic URN; a name is placed in `project_id` at `region`.
    pub(crate) fn urn(&self, region: &str, project_id: &str) -> String {
        match self {
            TopicRef::Urn(u) => u.clone(),
            TopicRef::Name(n) => format!("urn:smn:{region}:{project_id}:{n}"),
        }
    }
}

/// `RegionName`.
pub(crate) fn region(ud: &UserData) -> Result<String, ConfigError> {
    let r = required(ud, "RegionName")?;
    check_region(r).map_err(|why| ConfigError::new("RegionName", why))?;
    Ok(r.to_owned())
}

/// `SMN_Topic`.
pub(crate) fn topic(ud: &UserData) -> Result<TopicRef, ConfigError> {
    TopicRef::parse("SMN_Topic", required(ud, "SMN_Topic")?)
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn topic_names_and_urns() {
        let t = TopicRef::parse("SMN_Topic", "cts_test").unwrap();
        assert_eq!(t.urn("eu-de", "p1"), "urn:smn:eu-de:p1:cts_test");
        let t = TopicRef::parse("SMN_Topic", "urn:smn:eu-nl:p2:alarms").unwrap();
        assert_eq!(t.urn("eu-de", "p1"), "urn:smn:eu-nl:p2:alarms");
        let e = TopicRef::parse("SMN_Topic", "urn:smn:eu-de:p1").unwrap_err();
        assert!(e.to_string().contains("is not a topic URN"), "{e}");
        let e = TopicRef::parse("SMN_Topic", "my topic").unwrap_err();
        assert!(
            e.to_string().starts_with("user_data SMN_Topic: topic name"),
            "{e}"
        );
        let e = TopicRef::parse("SMN_Topic", "urn:smn:eu-de:p-1:t").unwrap_err();
        assert!(e.to_string().contains("project id"), "{e}");
    }

    #[test]
    fn required_says_absent_or_empty() {
        let ud = UserData::from_pairs([("A", " "), ("B", " x ")]).unwrap();
        assert_eq!(required(&ud, "A").unwrap_err().reason, "is empty");
        assert_eq!(required(&ud, "C").unwrap_err().reason, "is required");
        assert_eq!(required(&ud, "B").unwrap(), "x");
        assert_eq!(optional(&ud, "A"), None);
    }
}
