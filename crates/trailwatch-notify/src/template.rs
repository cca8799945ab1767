//! Message templates: plain text with `{name}` variables filled from the publish request's `tags`
//! (cloud-apis.md §5.5).
//!
//! SMN templates have no escaping: `{{` and `}}` mean nothing special. A `{` that does not open a
//! valid variable (`{` + 1–21 of `[A-Za-z0-9_]` + `}`) is literal text, so JSON or code in a
//! template survives unchanged.

use std::collections::BTreeMap;

use crate::error::{SmnError, codes};
use crate::model::is_valid_name;

/// The longest template name, in characters.
pub const TEMPLATE_NAME_MAX: usize = 64;
/// The largest template content, in bytes (256 KB, the same as a message).
pub const TEMPLATE_CONTENT_MAX_BYTES: usize = 256 * 1024;
/// At most this many distinct variables in one template.
pub const TEMPLATE_VARIABLES_MAX: usize = 90;
/// The longest variable name and tag key, in characters.
pub const TAG_KEY_MAX: usize = 21;
/// The largest tag value, in bytes.
pub const TAG_VALUE_MAX_BYTES: usize = 1024;
/// The largest rendered message, in bytes: the publish message limit. Without it a template of
/// many repeated variables with 1 KB values could expand a 256 KB template a thousandfold.
pub const RENDERED_MAX_BYTES: usize = 256 * 1024;

/// Checks a template name: 1–64 characters of `[A-Za-z0-9_-]`, starting with a letter or digit
/// (`SMN.0032`).
pub fn check_template_name(s: &str) -> Result<(), SmnError> {
    if is_valid_name(s, TEMPLATE_NAME_MAX) {
        Ok(())
    } else {
        Err(SmnError::bad_request(
            codes::TEMPLATE_NAME_INVALID,
            format!(
                "Invalid message_template_name {s:?}: use 1 to {TEMPLATE_NAME_MAX} characters of letters, digits, '_' and '-', starting with a letter or digit."
            ),
        ))
    }
}

/// Checks the tags of a publish request against SMN's limits: keys of 1–21 characters, values of
/// at most 1 KB (`SMN.0038`).
pub fn check_tags(tags: &BTreeMap<String, String>) -> Result<(), SmnError> {
    for (key, value) in tags {
        let chars = key.chars().count();
        if chars == 0 || chars > TAG_KEY_MAX {
            return Err(SmnError::bad_request(
                codes::TAG_INVALID,
                format!("Invalid tags: key {key:?} must be 1 to {TAG_KEY_MAX} characters."),
            ));
        }
        if value.len() > TAG_VALUE_MAX_BYTES {
            return Err(SmnError::bad_request(
                codes::TAG_INVALID,
                format!(
                    "Invalid tags: the value of {key:?} is {} bytes, at most {TAG_VALUE_MAX_BYTES} are allowed.",
                    value.len()
                ),
            ));
        }
    }
    Ok(())
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Segment {
    Text(String),
    Variable(String),
}

/// Parsed template content: literal text and `{name}` variables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Template {
    content: String,
    segments: Vec<Segment>,
    /// Distinct variable names in order of first appearance (SMN's `tag_names`).
    tag_names: Vec<String>,
}

/// If `s` starts with `{name}` for a valid variable name, that name.
fn variable_at(s: &str) -> Option<&str> {
    let inner = s.strip_prefix('{')?;
    let end = inner.find(|c: char| !(c.is_ascii_alphanumeric() || c == '_'))?;
    let name = &inner[..end];
    (inner[end..].starts_with('}') && (1..=TAG_KEY_MAX).contains(&name.len())).then_some(name)
}

impl Template {
    /// Parses template content: non-empty, at most 256 KB (`SMN.0024`), at most 90 distinct
    /// variables (403 `SMN.0075`).
    pub fn parse(content: &str) -> Result<Template, SmnError> {
        if content.is_empty() {
            return Err(SmnError::bad_request(
                codes::TEMPLATE_CONTENT_INVALID,
                "Invalid content: a template must not be empty.",
            ));
        }
        if content.len() > TEMPLATE_CONTENT_MAX_BYTES {
            return Err(SmnError::bad_request(
                codes::TEMPLATE_CONTENT_INVALID,
                format!(
                    "Invalid content: it is {} bytes, at most {TEMPLATE_CONTENT_MAX_BYTES} are allowed.",
                    content.len()
                ),
            ));
        }
        let mut segments = Vec::new();
        let mut tag_names: Vec<String> = Vec::new();
        let mut text = String::new();
        let mut rest = content;
        while let Some(open) = rest.find('{') {
            text.push_str(&rest[..open]);
            rest = &rest[open..];
            match variable_at(rest) {
                Some(name) => {
                    if !text.is_empty() {
                        segments.push(Segment::Text(std::mem::take(&mut text)));
                    }
                    if !tag_names.iter().any(|n| n == name) {
                        tag_names.push(name.to_owned());
                    }
                    segments.push(Segment::Variable(name.to_owned()));
                    rest = &rest[name.len() + 2..];
                }
                None => {
                    // Not a variable: the brace is text, and scanning resumes right after it so
                    // that "{{a}" still finds the variable "{a}".
                    text.push('{');
                    rest = &rest[1..];
                }
            }
        }
        text.push_str(rest);
        if !text.is_empty() {
            segments.push(Segment::Text(text));
        }
        if tag_names.len() > TEMPLATE_VARIABLES_MAX {
            return Err(SmnError::forbidden(
                codes::TOO_MANY_TEMPLATE_VARIABLES,
                format!(
                    "Invalid content: it has {} distinct variables, at most {TEMPLATE_VARIABLES_MAX} are allowed.",
                    tag_names.len()
                ),
            ));
        }
        Ok(Template {
            content: content.to_owned(),
            segments,
            tag_names,
        })
    }

    /// The content as given.
    pub fn content(&self) -> &str {
        &self.content
    }

    /// Distinct variable names, in order of first appearance.
    pub fn tag_names(&self) -> Vec<String> {
        self.tag_names.clone()
    }

    /// Fills every variable from `tags`. Tags the template does not use are ignored. Errors:
    /// `SMN.0038` if a tag breaks the key/value limits or if variables have no tag (the message
    /// lists every missing name, in order of appearance); 403 `SMN.0009` if the result would
    /// exceed the 256 KB message limit.
    pub fn render(&self, tags: &BTreeMap<String, String>) -> Result<String, SmnError> {
        check_tags(tags)?;
        let missing: Vec<&str> = self
            .tag_names
            .iter()
            .filter(|n| !tags.contains_key(n.as_str()))
            .map(String::as_str)
            .collect();
        if !missing.is_empty() {
            return Err(SmnError::bad_request(
                codes::TAG_INVALID,
                format!(
                    "Invalid tags: the template needs a tag for each of its variables; missing: {}.",
                    missing.join(", ")
                ),
            ));
        }
        let mut out = String::with_capacity(self.content.len());
        for segment in &self.segments {
            let piece = match segment {
                Segment::Text(t) => t.as_str(),
                // Present: every variable name is in tag_names, which were all checked above.
                Segment::Variable(v) => tags.get(v).map_or("", String::as_str),
            };
            if out.len() + piece.len() > RENDERED_MAX_BYTES {
                return Err(SmnError::forbidden(
                    codes::MESSAGE_INVALID,
                    format!(
                        "Invalid message: the rendered template exceeds {RENDERED_MAX_BYTES} bytes."
                    ),
                ));
            }
            out.push_str(piece);
        }
        Ok(out)
    }
}
