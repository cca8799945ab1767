//! The one error type of the SMN core: an SMN error code, the HTTP status SMN answers it with, and
//! a message precise enough to fix the request.
//!
//! The codes are SMN's own (cloud-apis.md §5). Where SMN documents no code for a rule we enforce,
//! the nearest documented code is reused; those choices are listed on the constants below
//! ([`codes::SUBSCRIPTION_INVALID`], [`codes::TAG_INVALID`], and the TTL rule on
//! [`codes::MESSAGE_INVALID`]) so the API layer and clients can rely on them.

/// An SMN error: the code (e.g. "SMN.0002"), an HTTP status number, and a precise message.
///
/// The status is carried as a plain number because only the API crate knows HTTP; it maps this
/// error to SMN's error body `{"request_id","code","message"}` with that status.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct SmnError {
    /// The HTTP status SMN answers this error with (400, 403 or 404 here).
    pub status: u16,
    /// The SMN error code, e.g. `"SMN.0002"`.
    pub code: &'static str,
    /// What exactly is wrong, phrased so the caller knows what to change.
    pub message: String,
}

impl SmnError {
    /// An error with an explicit status and code.
    pub fn new(status: u16, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
        }
    }

    /// A 400 Bad Request error.
    pub fn bad_request(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(400, code, message)
    }

    /// A 403 Forbidden error (SMN uses 403 for subject/message/quota violations).
    pub fn forbidden(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(403, code, message)
    }

    /// A 404 Not Found error.
    pub fn not_found(code: &'static str, message: impl Into<String>) -> Self {
        Self::new(404, code, message)
    }

    /// 404 `SMN.0006`: the topic does not exist.
    pub fn topic_not_found(topic_urn: &str) -> Self {
        Self::not_found(
            codes::TOPIC_NOT_FOUND,
            format!("Topic not found: {topic_urn}."),
        )
    }

    /// 404 `SMN.0013`: the subscription does not exist.
    pub fn subscription_not_found(subscription_urn: &str) -> Self {
        Self::not_found(
            codes::SUBSCRIPTION_NOT_FOUND,
            format!("Subscription not found: {subscription_urn}."),
        )
    }

    /// 404 `SMN.0027`: no template with this name (and protocol).
    pub fn template_not_found(name: &str) -> Self {
        Self::not_found(
            codes::TEMPLATE_NOT_FOUND,
            format!("Message template not found: {name}."),
        )
    }

    /// 404 `SMN.0076`: the template exists for some protocol but has no `default`-protocol
    /// version to fall back to.
    pub fn default_template_not_found(name: &str) -> Self {
        Self::not_found(
            codes::DEFAULT_TEMPLATE_NOT_FOUND,
            format!(
                "Default message template not found: create a template named {name} with protocol \"default\"."
            ),
        )
    }
}

/// The SMN error codes this crate produces (and the 404s the service layer produces with the
/// helpers on [`SmnError`]).
pub mod codes {
    /// 400: bad topic name.
    pub const TOPIC_NAME_INVALID: &str = "SMN.0002";
    /// 400: bad topic `display_name`.
    pub const DISPLAY_NAME_INVALID: &str = "SMN.0003";
    /// 400: bad topic URN.
    pub const TOPIC_URN_INVALID: &str = "SMN.0005";
    /// 404: topic not found.
    pub const TOPIC_NOT_FOUND: &str = "SMN.0006";
    /// 403: publish `subject` invalid (too long or not a string).
    pub const SUBJECT_INVALID: &str = "SMN.0008";
    /// 403: publish `message` invalid: missing, empty, too long, not a string.
    ///
    /// Also used for a bad `time_to_live` and for a rendered template that grows beyond the
    /// message limit: SMN documents no code for either, and both are properties of the message
    /// being published ("Parameter: Message is invalid.").
    pub const MESSAGE_INVALID: &str = "SMN.0009";
    /// 400: bad protocol.
    pub const PROTOCOL_INVALID: &str = "SMN.0011";
    /// 400: bad endpoint for the protocol.
    pub const ENDPOINT_INVALID: &str = "SMN.0012";
    /// 404: subscription not found.
    pub const SUBSCRIPTION_NOT_FOUND: &str = "SMN.0013";
    /// 400: bad subscription URN.
    pub const SUBSCRIPTION_URN_INVALID: &str = "SMN.0014";
    /// 400: bad offset or limit.
    pub const OFFSET_LIMIT_INVALID: &str = "SMN.0015";
    /// 400: bad subscription `remark`.
    pub const REMARK_INVALID: &str = "SMN.0017";
    /// 400: bad `message_structure`.
    pub const MESSAGE_STRUCTURE_INVALID: &str = "SMN.0021";
    /// 400: bad template `content` (empty, too long).
    pub const TEMPLATE_CONTENT_INVALID: &str = "SMN.0024";
    /// 404: template not found.
    pub const TEMPLATE_NOT_FOUND: &str = "SMN.0027";
    /// 400: bad template name (`message_template_name`).
    pub const TEMPLATE_NAME_INVALID: &str = "SMN.0032";
    /// 400: bad `tags` for a template: missing with a template, not an object of strings, a key
    /// longer than 21 characters, a value longer than 1 KB, or variables of the template without
    /// a tag (the message names all of them).
    ///
    /// SMN's documented "Parameter: tag is invalid." (`SMN.0038`) is the closest match; SMN
    /// documents no dedicated code for template tags.
    pub const TAG_INVALID: &str = "SMN.0038";
    /// 400: the subscription body is invalid. Used for a bad `extension.header`: SMN documents no
    /// code for it, and "Parameter: subscription is invalid." (`SMN.0043`) names the body the
    /// headers belong to, while `SMN.0012` would wrongly blame the endpoint.
    pub const SUBSCRIPTION_INVALID: &str = "SMN.0043";
    /// 403: a template has more than 90 distinct variables.
    pub const TOO_MANY_TEMPLATE_VARIABLES: &str = "SMN.0075";
    /// The endpoint is an internal address the outbound policy refuses (403).
    pub const INTERNAL_ENDPOINT: &str = "SMN.0069";
    /// 404: no `default`-protocol template of that name to fall back to.
    pub const DEFAULT_TEMPLATE_NOT_FOUND: &str = "SMN.0076";
    /// A template with this name and protocol exists already.
    pub const TEMPLATE_EXISTS: &str = "SMN.0025";
}
