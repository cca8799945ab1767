//! The pure core of trailwatch's SMN-compatible notification service (Simple Message
//! Notification, cloud-apis.md §5).
//!
//! It decides everything about a notification that does not need IO: which topic and
//! subscription names, URNs, protocols and endpoints are valid ([`model`]); how message templates
//! are parsed and rendered ([`template`]); what a publish request means and what text each
//! protocol receives ([`publish`]); the signed JSON body of an HTTP(S) delivery and its
//! verification ([`notification`]); and when a failed delivery is retried ([`retry`]). Errors
//! carry SMN's own codes ([`SmnError`]) so the API layer can answer exactly as SMN does.
//!
//! Storage, HTTP, SMTP and the clock live outside: functions here take the current time as an
//! argument and never touch the network.
//!
//! # Example
//!
//! ```
//! use chrono::{TimeZone, Utc};
//! use serde_json::json;
//! use trailwatch_notify::{
//!     MessageType, NotificationBody, Protocol, PublishRequest, Signer, SubscriptionUrn,
//!     TopicName, TopicUrn, text_for, verify_notification,
//! };
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let topic = TopicUrn::new("eu-de", "0a419ac94f80f2c62f14c01e34aaaaaa", TopicName::parse("alerts")?);
//! assert_eq!(topic.to_string(), "urn:smn:eu-de:0a419ac94f80f2c62f14c01e34aaaaaa:alerts");
//! let subscription = SubscriptionUrn::generate(&topic);
//! assert_eq!(SubscriptionUrn::parse(&subscription.to_string())?, subscription);
//!
//! // A publish body: message_structure wins over message.
//! let request = PublishRequest::from_json(&json!({
//!     "subject": "Login alert",
//!     "message": "ignored",
//!     "message_structure": "{\"default\":\"Illegal login\",\"sms\":\"Login!\"}",
//! }))?;
//! assert_eq!(text_for(Protocol::Sms, &request.content), "Login!");
//! assert_eq!(text_for(Protocol::Https, &request.content), "Illegal login");
//!
//! // The signed body an https endpoint receives, and the receiver's check.
//! let signer = Signer::generate("trailwatch SMN eu-de")?;
//! let body = NotificationBody {
//!     message_type: MessageType::Notification,
//!     topic_urn: topic.to_string(),
//!     message_id: "d84bd6629ef04513ad2e37bffd6e17cb".into(),
//!     subject: request.subject.clone(),
//!     message: text_for(Protocol::Https, &request.content),
//!     subscribe_url: None,
//!     unsubscribe_url: Some("https://smn.example.com/unsubscribe?...".into()),
//!     timestamp: Utc.with_ymd_and_hms(2024, 7, 10, 9, 45, 0).single().ok_or("time")?,
//! };
//! let json = body.to_json(&signer, "https://smn.example.com/smn/SMN_eu-de.pem");
//! assert!(verify_notification(&json, signer.cert_pem()).is_ok());
//! # Ok(())
//! # }
//! ```

pub mod error;
pub mod model;
pub mod notification;
pub mod outbound;
mod outbox;
pub mod publish;
pub mod retry;
pub mod service;
pub mod template;
mod x509;

pub use error::{SmnError, codes};
pub use model::{
    Endpoint, ExtensionHeaders, Protocol, SubscriptionStatus, SubscriptionUrn, TopicName, TopicUrn,
    check_display_name, check_remark,
};
pub use notification::{
    MessageType, NotificationBody, Signer, SignerError, format_timestamp, verify_notification,
};
pub use publish::{Content, PublishRequest, cut_for, text_for};
pub use retry::{Backoff, Failure, classify_http_status, classify_smtp_code};
pub use template::{Template, check_tags, check_template_name};
