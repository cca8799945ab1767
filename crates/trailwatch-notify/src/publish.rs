//! The publish request: which content a message carries and what each protocol receives
//! (cloud-apis.md §5.4).

use std::collections::BTreeMap;

use serde_json::Value;

use crate::error::{SmnError, codes};
use crate::model::Protocol;
use crate::template::{check_tags, check_template_name};

/// The largest `subject`, in bytes.
pub const SUBJECT_MAX_BYTES: usize = 512;
/// The largest `message` (and `message_structure` text), in bytes: 256 KB.
pub const MESSAGE_MAX_BYTES: usize = 256 * 1024;
/// SMS text is cut to this many characters.
pub const SMS_MAX_CHARS: usize = 490;
/// `time_to_live` when the request has none, in seconds.
pub const DEFAULT_TTL_S: u32 = 3600;
/// The longest `time_to_live` (OTC's bound), in seconds: 7 days.
pub const MAX_TTL_S: u32 = 604_800;

/// The publish request body after validation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishRequest {
    /// The subject; `None` when absent, `null` or empty (an empty subject is not signed either).
    pub subject: Option<String>,
    /// What is published, after SMN's precedence rule.
    pub content: Content,
    /// How long undelivered copies are kept, in seconds (1..=604800).
    pub time_to_live_s: u32,
}

/// What a publish request carries.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Content {
    /// One text for every protocol.
    Message(String),
    /// Per-protocol texts keyed by protocol name; always has `"default"`.
    Structure(BTreeMap<String, String>),
    /// A template to render per protocol with these tags.
    Template {
        /// The template name (valid per [`check_template_name`]).
        name: String,
        /// The variables (keys ≤ 21 characters, values ≤ 1 KB).
        tags: BTreeMap<String, String>,
    },
}

/// A member that may be absent; JSON `null` counts as absent because SDKs send unset optional
/// members as `null`.
fn member<'a>(v: &'a Value, key: &str) -> Option<&'a Value> {
    v.get(key).filter(|m| !m.is_null())
}

impl PublishRequest {
    /// Validates the JSON body.
    ///
    /// Precedence is `message_structure` > `message_template_name` > `message`; at least one is
    /// required (`SMN.0009`). Only the winning member is validated: the others are ignored, as
    /// they would be by SMN.
    /// - `subject`: a string of at most 512 bytes (403 `SMN.0008`).
    /// - `message`: a non-empty string of at most 256 KB (403 `SMN.0009`).
    /// - `message_structure`: JSON-object text of at most 256 KB whose values are strings and
    ///   which has a non-empty `"default"` (`SMN.0021`, with the reason).
    /// - `message_template_name`: a valid template name (`SMN.0032`) and `tags`, an object of
    ///   strings within the tag limits (`SMN.0038`).
    /// - `time_to_live`: seconds as a string of digits or an integer, default 3600, within
    ///   1..=604800 (403 `SMN.0009`; the message names the bound).
    ///
    /// Unknown members (`locale`, `message_attributes`, …) are ignored.
    pub fn from_json(v: &Value) -> Result<PublishRequest, SmnError> {
        if !v.is_object() {
            return Err(SmnError::forbidden(
                codes::MESSAGE_INVALID,
                "Invalid request: the publish body must be a JSON object.",
            ));
        }
        let subject = parse_subject(member(v, "subject"))?;
        let time_to_live_s = parse_ttl(member(v, "time_to_live"))?;
        let content = if let Some(structure) = member(v, "message_structure") {
            parse_structure(structure)?
        } else if let Some(name) = member(v, "message_template_name") {
            parse_template(name, member(v, "tags"))?
        } else if let Some(message) = member(v, "message") {
            parse_message(message)?
        } else {
            return Err(SmnError::forbidden(
                codes::MESSAGE_INVALID,
                "Invalid message: one of message, message_structure or message_template_name is required.",
            ));
        };
        Ok(PublishRequest {
            subject,
            content,
            time_to_live_s,
        })
    }
}

fn parse_subject(v: Option<&Value>) -> Result<Option<String>, SmnError> {
    let Some(v) = v else { return Ok(None) };
    let Value::String(s) = v else {
        return Err(SmnError::forbidden(
            codes::SUBJECT_INVALID,
            "Invalid subject: it must be a string.",
        ));
    };
    if s.len() > SUBJECT_MAX_BYTES {
        return Err(SmnError::forbidden(
            codes::SUBJECT_INVALID,
            format!(
                "Invalid subject: it is {} bytes, at most {SUBJECT_MAX_BYTES} are allowed.",
                s.len()
            ),
        ));
    }
    Ok((!s.is_empty()).then(|| s.clone()))
}

fn parse_ttl(v: Option<&Value>) -> Result<u32, SmnError> {
    let bad = |why: String| {
        SmnError::forbidden(
            codes::MESSAGE_INVALID,
            format!("Invalid time_to_live: {why}."),
        )
    };
    let Some(v) = v else { return Ok(DEFAULT_TTL_S) };
    // SMN documents a string; SDKs and hand-written clients also send a number.
    let seconds: u64 = match v {
        Value::String(s) => {
            if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
                return Err(bad(format!("{s:?} is not a whole number of seconds")));
            }
            // All digits: the only failure left is overflow, which is above the bound anyway.
            s.parse().unwrap_or(u64::MAX)
        }
        Value::Number(n) => match n.as_u64() {
            Some(n) => n,
            None if n.is_i64() => {
                return Err(bad(format!("{n} is below the minimum of 1 second")));
            }
            None => return Err(bad(format!("{n} is not a whole number of seconds"))),
        },
        _ => return Err(bad("it must be a string or an integer of seconds".into())),
    };
    if seconds < 1 {
        return Err(bad(format!("{seconds} is below the minimum of 1 second")));
    }
    if seconds > u64::from(MAX_TTL_S) {
        return Err(bad(format!(
            "{seconds} is above the maximum of {MAX_TTL_S} seconds (7 days)"
        )));
    }
    // Within 1..=604800, so it fits.
    Ok(u32::try_from(seconds).unwrap_or(MAX_TTL_S))
}

fn parse_message(v: &Value) -> Result<Content, SmnError> {
    let Value::String(s) = v else {
        return Err(SmnError::forbidden(
            codes::MESSAGE_INVALID,
            "Invalid message: it must be a string.",
        ));
    };
    if s.is_empty() {
        return Err(SmnError::forbidden(
            codes::MESSAGE_INVALID,
            "Invalid message: it must not be empty.",
        ));
    }
    if s.len() > MESSAGE_MAX_BYTES {
        return Err(SmnError::forbidden(
            codes::MESSAGE_INVALID,
            format!(
                "Invalid message: it is {} bytes, at most {MESSAGE_MAX_BYTES} are allowed.",
                s.len()
            ),
        ));
    }
    Ok(Content::Message(s.clone()))
}

fn parse_structure(v: &Value) -> Result<Content, SmnError> {
    let bad = |why: String| {
        SmnError::bad_request(
            codes::MESSAGE_STRUCTURE_INVALID,
            format!("Invalid message_structure: {why}."),
        )
    };
    let Value::String(text) = v else {
        return Err(bad(
            "it must be a string holding a JSON object, e.g. \"{\\\"default\\\":\\\"text\\\"}\""
                .into(),
        ));
    };
    if text.len() > MESSAGE_MAX_BYTES {
        return Err(bad(format!(
            "it is {} bytes, at most {MESSAGE_MAX_BYTES} are allowed",
            text.len()
        )));
    }
    let parsed: Value =
        serde_json::from_str(text).map_err(|e| bad(format!("it is not valid JSON ({e})")))?;
    let Value::Object(map) = parsed else {
        return Err(bad(
            "it must be a JSON object of protocol names to texts".into()
        ));
    };
    let mut texts = BTreeMap::new();
    for (key, value) in map {
        let Value::String(s) = value else {
            return Err(bad(format!("the value of {key:?} must be a string")));
        };
        texts.insert(key, s);
    }
    match texts.get("default") {
        None => return Err(bad("the \"default\" key is required".into())),
        Some(d) if d.is_empty() => return Err(bad("\"default\" must not be empty".into())),
        Some(_) => {}
    }
    Ok(Content::Structure(texts))
}

fn parse_template(name: &Value, tags: Option<&Value>) -> Result<Content, SmnError> {
    let Value::String(name) = name else {
        return Err(SmnError::bad_request(
            codes::TEMPLATE_NAME_INVALID,
            "Invalid message_template_name: it must be a string.",
        ));
    };
    check_template_name(name)?;
    let bad_tags =
        |why: String| SmnError::bad_request(codes::TAG_INVALID, format!("Invalid tags: {why}."));
    let Some(tags) = tags else {
        return Err(bad_tags(
            "tags are required with message_template_name".into(),
        ));
    };
    let Value::Object(map) = tags else {
        return Err(bad_tags(
            "it must be an object of names to string values".into(),
        ));
    };
    let mut out = BTreeMap::new();
    for (key, value) in map {
        let Value::String(s) = value else {
            return Err(bad_tags(format!("the value of {key:?} must be a string")));
        };
        out.insert(key.clone(), s.clone());
    }
    check_tags(&out)?;
    Ok(Content::Template {
        name: name.clone(),
        tags: out,
    })
}

/// The text one protocol receives: for [`Content::Structure`], the protocol's own key (`email`,
/// `sms`, `http`, `https`, `functionstage`) else `"default"`. SMS text is cut to 490 characters
/// (characters, not bytes) as SMN does.
///
/// [`Content::Template`] must be rendered by the caller first ([`crate::Template::render`], then
/// [`cut_for`]); passed here it yields an empty string.
pub fn text_for(protocol: Protocol, structure_or_message: &Content) -> String {
    let text = match structure_or_message {
        Content::Message(m) => m.as_str(),
        Content::Structure(map) => map
            .get(protocol.as_str())
            .or_else(|| map.get("default"))
            .map_or("", String::as_str),
        Content::Template { .. } => "",
    };
    cut_for(protocol, text)
}

/// Applies the protocol's length limit to a final text: SMS is cut to 490 characters, other
/// protocols take the text as is. Use it on rendered templates.
pub fn cut_for(protocol: Protocol, text: &str) -> String {
    match protocol {
        Protocol::Sms => text.chars().take(SMS_MAX_CHARS).collect(),
        _ => text.to_owned(),
    }
}
