//! The notification service: SMN operations over the store, and publish with a durable fan-out.
//!
//! This is the IO side of the crate. A publish resolves the text every protocol of the topic's
//! confirmed subscriptions receives, then stores the message and one delivery per subscription in
//! one transaction; only then is the `message_id` returned, and the outbox worker woken.

use std::sync::Arc;
use std::time::Duration;

use hmac::{Hmac, Mac};
use serde_json::{Map, Value, json};
use sha2::Sha256;
use trailwatch_store::smn::{
    self as db, NewDelivery, NewMessage, NewSubscription, Subscription, TemplateRow, Topic,
};
use trailwatch_store::{Store, StoreError, now_ms};

use crate::error::{SmnError, codes};
use crate::model::{
    Endpoint, ExtensionHeaders, Protocol, SubscriptionStatus, SubscriptionUrn, TopicName, TopicUrn,
};
use crate::notification::Signer;
use crate::publish::{Content, PublishRequest, cut_for, text_for};
use crate::retry::Backoff;
use crate::template::Template;

/// How outgoing email is sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SmtpSecurity {
    /// No TLS (a local relay).
    None,
    /// Plain connection upgraded with STARTTLS.
    Starttls,
    /// TLS from the first byte (port 465).
    Tls,
}

#[derive(Clone)]
pub struct SmtpConfig {
    pub host: String,
    pub port: u16,
    pub security: SmtpSecurity,
    pub username: Option<String>,
    pub password: Option<String>,
    /// The sender address; the topic's display name becomes the sender name.
    pub from: String,
}

impl std::fmt::Debug for SmtpConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SmtpConfig")
            .field("host", &self.host)
            .field("port", &self.port)
            .field("security", &self.security)
            .field("username", &self.username)
            .field("from", &self.from)
            .finish_non_exhaustive()
    }
}

/// An HTTP SMS gateway: `body_template` (and `url`) may use `{to}` and `{message}`.
#[derive(Debug, Clone)]
pub struct SmsConfig {
    pub url: String,
    pub method: String,
    pub headers: Vec<(String, String)>,
    pub body_template: String,
    /// Confirm SMS subscriptions at once instead of texting a confirmation link.
    pub auto_confirm: bool,
}

#[derive(Debug, Clone)]
pub struct NotifyConfig {
    pub region: String,
    /// Base URL of this server as subscribers reach it: links and `signing_cert_url`.
    pub public_url: String,
    pub backoff: Backoff,
    pub smtp: Option<SmtpConfig>,
    pub sms: Option<SmsConfig>,
    pub connect_timeout: Duration,
    pub response_timeout: Duration,
    /// Extra trusted CA certificates (PEM) for HTTPS subscribers.
    pub extra_ca_pem: Option<Vec<u8>>,
    /// Deliveries in flight at once.
    pub concurrency: usize,
    /// How long a confirmation link is valid.
    pub confirm_ttl_ms: i64,
    /// Which addresses HTTP(S) subscribers and the SMS gateway may be reached at.
    pub outbound: crate::outbound::OutboundPolicy,
}

impl NotifyConfig {
    pub fn new(region: impl Into<String>, public_url: impl Into<String>) -> Self {
        NotifyConfig {
            region: region.into(),
            public_url: public_url.into(),
            backoff: Backoff::default(),
            smtp: None,
            sms: None,
            connect_timeout: Duration::from_secs(5),
            response_timeout: Duration::from_secs(15),
            extra_ca_pem: None,
            concurrency: 64,
            confirm_ttl_ms: 48 * 3600 * 1000,
            outbound: crate::outbound::OutboundPolicy::default(),
        }
    }
}

/// The notification service. Cheap to share (`Arc`).
pub struct Notifier {
    pub(crate) store: Store,
    pub(crate) config: NotifyConfig,
    pub(crate) signer: Signer,
    link_key: [u8; 32],
    pub(crate) wake: Arc<tokio::sync::Notify>,
    pub(crate) outbox: crate::outbox::OutboxState,
    /// Delivers `functionstage` subscriptions; set once by the server when the function
    /// service exists (the notification crate does not depend on it).
    pub(crate) functions: std::sync::OnceLock<Arc<dyn FunctionDeliverer>>,
}

/// A message for a `functionstage` subscription, as the function service needs it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FunctionDelivery {
    pub project_id: String,
    /// The subscription's endpoint: the function URN.
    pub function_urn: String,
    /// `{topic_urn}:{subscription_id}`.
    pub subscription_urn: String,
    pub topic_urn: String,
    pub message_id: String,
    pub subject: String,
    pub message: String,
    pub published_at_ms: i64,
}

/// What [`FunctionDeliverer::deliver`] resolves to: `Ok` = durably accepted (a short note for
/// the attempt log); `Err((retriable, reason))`.
pub type DeliveryFuture<'a> =
    std::pin::Pin<Box<dyn Future<Output = Result<String, (bool, String)>> + Send + 'a>>;

/// Hands `functionstage` deliveries to the function service.
pub trait FunctionDeliverer: Send + Sync {
    fn deliver(&self, d: FunctionDelivery) -> DeliveryFuture<'_>;
}

impl std::fmt::Debug for Notifier {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notifier")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

fn store_err(e: StoreError) -> SmnError {
    match e {
        StoreError::Conflict(msg) => SmnError::bad_request(codes::TEMPLATE_EXISTS, msg),
        other => {
            tracing::error!(error = %other, "notification store failure");
            SmnError::new(
                500,
                "SMN.0016",
                "The notification store failed; the request was not completed",
            )
        }
    }
}

fn new_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// Time to live of subscription confirmation messages (they are only useful while the link is).
const CONFIRMATION_TTL_MS: i64 = 48 * 3600 * 1000;

/// Confirmation messages per endpoint and window (§5.2): (protocol, window ms, limit).
const CONFIRM_LIMITS: [(&str, i64, i64); 5] = [
    ("email", 3_600_000, 20),
    ("email", 2 * 86_400_000, 40),
    ("sms", 3_600_000, 10),
    ("sms", 2 * 86_400_000, 20),
    ("http", 600_000, 200),
];

impl Notifier {
    pub fn new(
        store: Store,
        config: NotifyConfig,
        signer: Signer,
        link_key: [u8; 32],
    ) -> Result<Arc<Notifier>, String> {
        let outbox = crate::outbox::OutboxState::new(&config)?;
        Ok(Arc::new(Notifier {
            store,
            config,
            signer,
            link_key,
            wake: Arc::new(tokio::sync::Notify::new()),
            outbox,
            functions: std::sync::OnceLock::new(),
        }))
    }

    /// Connects the function service, which delivers `functionstage` subscriptions. A second
    /// call is ignored.
    pub fn set_function_deliverer(&self, deliverer: Arc<dyn FunctionDeliverer>) {
        let _ = self.functions.set(deliverer);
    }

    pub fn config(&self) -> &NotifyConfig {
        &self.config
    }

    pub fn base_url(&self) -> &str {
        self.config.public_url.trim_end_matches('/')
    }

    /// Where the signing certificate is served (`GET /smn/signing-cert.pem`).
    pub fn signing_cert_url(&self) -> String {
        format!("{}/smn/signing-cert.pem", self.base_url())
    }

    pub fn cert_pem(&self) -> &str {
        self.signer.cert_pem()
    }

    fn topic_urn(&self, project_id: &str, name: &TopicName) -> TopicUrn {
        TopicUrn::new(&self.config.region, project_id, name.clone())
    }

    /// Parses a topic URN from a path and checks it names this region and project.
    fn own_topic(&self, project_id: &str, urn: &str) -> Result<TopicUrn, SmnError> {
        let parsed = TopicUrn::parse(urn)?;
        if parsed.project_id != project_id || parsed.region != self.config.region {
            return Err(SmnError::topic_not_found(urn));
        }
        Ok(parsed)
    }

    async fn topic(&self, project_id: &str, urn: &str) -> Result<(TopicUrn, Topic), SmnError> {
        let parsed = self.own_topic(project_id, urn)?;
        let (pid, name) = (project_id.to_owned(), parsed.name.as_str().to_owned());
        let topic = self
            .store
            .read(move |c| db::topic_by_name(c, &pid, &name))
            .await
            .map_err(store_err)?
            .ok_or_else(|| SmnError::topic_not_found(urn))?;
        Ok((parsed, topic))
    }

    /// The token in an unsubscribe link: an HMAC of the subscription URN, so that only someone
    /// who received a notification can cancel the subscription.
    pub fn unsubscribe_token(&self, subscription_urn: &str) -> String {
        let mut mac = match Hmac::<Sha256>::new_from_slice(&self.link_key) {
            Ok(m) => m,
            Err(_) => return String::new(),
        };
        mac.update(b"unsubscribe\0");
        mac.update(subscription_urn.as_bytes());
        hex::encode(mac.finalize().into_bytes())
    }

    pub fn unsubscribe_url(&self, subscription_urn: &str) -> String {
        format!(
            "{}/smn/subscription/unsubscribe?subscription_urn={}&token={}",
            self.base_url(),
            encode(subscription_urn),
            self.unsubscribe_token(subscription_urn)
        )
    }

    fn subscribe_url(&self, topic_urn: &str, token: &str) -> String {
        format!(
            "{}/smn/subscription/confirm?token={token}&topic_urn={}",
            self.base_url(),
            encode(topic_urn)
        )
    }

    // ---- topics -------------------------------------------------------------------------

    /// Creates a topic (`true`), or returns the existing one of that name (`false`).
    pub async fn create_topic(
        &self,
        project_id: &str,
        name: &str,
        display_name: &str,
    ) -> Result<(TopicUrn, Topic, bool), SmnError> {
        let name = TopicName::parse(name)?;
        crate::model::check_display_name(display_name)?;
        let urn = self.topic_urn(project_id, &name);
        let (pid, n, d) = (
            project_id.to_owned(),
            name.as_str().to_owned(),
            display_name.to_owned(),
        );
        let (topic, created) = self
            .store
            .write(move |tx| db::create_topic(tx, &new_id(), &pid, &n, &d))
            .await
            .map_err(store_err)?;
        Ok((urn, topic, created))
    }

    pub async fn list_topics(
        &self,
        project_id: &str,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<(TopicUrn, Topic)>, u64), SmnError> {
        let pid = project_id.to_owned();
        let (topics, total) = self
            .store
            .read(move |c| db::list_topics(c, &pid, offset, limit))
            .await
            .map_err(store_err)?;
        let mut out = Vec::with_capacity(topics.len());
        for t in topics {
            let name = TopicName::parse(&t.name)?;
            out.push((self.topic_urn(project_id, &name), t));
        }
        Ok((out, total))
    }

    pub async fn get_topic(
        &self,
        project_id: &str,
        urn: &str,
    ) -> Result<(TopicUrn, Topic), SmnError> {
        self.topic(project_id, urn).await
    }

    pub async fn update_topic(
        &self,
        project_id: &str,
        urn: &str,
        display_name: &str,
    ) -> Result<(), SmnError> {
        crate::model::check_display_name(display_name)?;
        let (parsed, _) = self.topic(project_id, urn).await?;
        let (pid, name, d) = (
            project_id.to_owned(),
            parsed.name.as_str().to_owned(),
            display_name.to_owned(),
        );
        self.store
            .write(move |tx| db::update_topic(tx, &pid, &name, &d))
            .await
            .map_err(store_err)?;
        Ok(())
    }

    pub async fn delete_topic(&self, project_id: &str, urn: &str) -> Result<(), SmnError> {
        let (parsed, _) = self.topic(project_id, urn).await?;
        let (pid, name) = (project_id.to_owned(), parsed.name.as_str().to_owned());
        self.store
            .write(move |tx| db::delete_topic(tx, &pid, &name))
            .await
            .map_err(store_err)?;
        Ok(())
    }

    /// Topic attributes (`access_policy`, `introduction`) as stored JSON text values.
    pub async fn topic_attributes(
        &self,
        project_id: &str,
        urn: &str,
    ) -> Result<Map<String, Value>, SmnError> {
        let (_, topic) = self.topic(project_id, urn).await?;
        Ok(serde_json::from_str(&topic.attributes).unwrap_or_default())
    }

    /// Sets (`Some`) or deletes (`None`) one attribute; `name = None` with `value = None` deletes all.
    pub async fn set_topic_attribute(
        &self,
        project_id: &str,
        urn: &str,
        name: Option<&str>,
        value: Option<String>,
    ) -> Result<(), SmnError> {
        if let Some(n) = name
            && !matches!(n, "access_policy" | "introduction")
        {
            return Err(SmnError::bad_request(
                "SMN.0035",
                format!("attribute `{n}` is unknown; use access_policy or introduction"),
            ));
        }
        if let Some(v) = &value
            && v.len() > 30 * 1024
        {
            return Err(SmnError::bad_request(
                "SMN.0035",
                "attribute value is longer than 30 KB",
            ));
        }
        let mut attrs = self.topic_attributes(project_id, urn).await?;
        match (name, value) {
            (Some(n), Some(v)) => {
                attrs.insert(n.to_owned(), Value::String(v));
            }
            (Some(n), None) => {
                attrs.remove(n);
            }
            (None, _) => attrs.clear(),
        }
        let parsed = self.own_topic(project_id, urn)?;
        let (pid, tname, text) = (
            project_id.to_owned(),
            parsed.name.as_str().to_owned(),
            Value::Object(attrs).to_string(),
        );
        self.store
            .write(move |tx| db::set_topic_attributes(tx, &pid, &tname, &text))
            .await
            .map_err(store_err)?;
        Ok(())
    }

    // ---- subscriptions ------------------------------------------------------------------

    /// Adds a subscription. Email, SMS (unless the gateway auto-confirms) and HTTP(S) start
    /// unconfirmed and are sent a confirmation; functionstage is confirmed at once.
    pub async fn subscribe(
        &self,
        project_id: &str,
        topic_urn: &str,
        protocol: &str,
        endpoint: &str,
        remark: &str,
        headers: Option<&Value>,
    ) -> Result<(SubscriptionUrn, Subscription, bool), SmnError> {
        let protocol = Protocol::parse(protocol)?;
        let endpoint = Endpoint::parse(protocol, endpoint)?;
        if matches!(protocol, Protocol::Http | Protocol::Https)
            && let Err(refused) = self.config.outbound.check_url(endpoint.as_str())
        {
            return Err(SmnError::forbidden(
                codes::INTERNAL_ENDPOINT,
                format!("The endpoint is not allowed: {refused}."),
            ));
        }
        crate::model::check_remark(remark)?;
        let headers = match headers {
            Some(h) => ExtensionHeaders::parse(h)?,
            None => ExtensionHeaders::parse(&Value::Null)?,
        };
        if !headers.is_empty() && !matches!(protocol, Protocol::Http | Protocol::Https) {
            return Err(SmnError::bad_request(
                codes::SUBSCRIPTION_INVALID,
                "extension.header is only allowed for http and https subscriptions",
            ));
        }
        if protocol == Protocol::Sms && self.config.sms.is_none() {
            return Err(SmnError::bad_request(
                codes::PROTOCOL_INVALID,
                "no SMS gateway is configured on this server ([notify.sms])",
            ));
        }
        if protocol == Protocol::Email && self.config.smtp.is_none() {
            return Err(SmnError::bad_request(
                codes::PROTOCOL_INVALID,
                "no SMTP server is configured on this server ([notify.smtp])",
            ));
        }
        let (parsed_topic, topic) = self.topic(project_id, topic_urn).await?;
        let auto_confirm = match protocol {
            Protocol::FunctionStage => true,
            Protocol::Sms => self.config.sms.as_ref().is_some_and(|s| s.auto_confirm),
            _ => false,
        };
        let now = now_ms();
        let sub_urn = SubscriptionUrn::generate(&parsed_topic);
        let token = if auto_confirm {
            None
        } else {
            Some(new_id() + &new_id())
        };
        let status = if auto_confirm {
            SubscriptionStatus::Confirmed
        } else {
            SubscriptionStatus::Unconfirmed
        };
        let topic_urn_text = parsed_topic.to_string();
        let confirmation_text = format!(
            "You are invited to subscribe to topic: {topic_urn_text}. To confirm this subscription, please visit the subscribe_url included in this message. The subscribe_url is valid only within 48 hours."
        );
        let (sub_id, pid, topic_id) = (
            sub_urn.id.clone(),
            project_id.to_owned(),
            topic.topic_id.clone(),
        );
        let (proto, ep, rem, hdr) = (
            protocol.as_str().to_owned(),
            endpoint.as_str().to_owned(),
            remark.to_owned(),
            headers.to_json().to_string(),
        );
        let confirm_expires = now + self.config.confirm_ttl_ms;
        let message_text = match &token {
            Some(t) => {
                let url = self.subscribe_url(&topic_urn_text, t);
                match protocol {
                    Protocol::Http | Protocol::Https => confirmation_text.clone(),
                    // Link first: SMS text is cut to 490 characters, which a long topic URN
                    // (it is in the text and in the link) would otherwise take the link's end.
                    Protocol::Sms => format!("{url}\n\n{confirmation_text}"),
                    _ => format!("{confirmation_text}\n\n{url}"),
                }
            }
            None => String::new(),
        };
        let subscribe_url = token
            .as_ref()
            .map(|t| self.subscribe_url(&topic_urn_text, t));
        let (sub, created) = self
            .store
            .write(move |tx| {
                let (sub, created) = db::add_subscription(
                    tx,
                    NewSubscription {
                        subscription_id: &sub_id,
                        topic_id: &topic_id,
                        project_id: &pid,
                        protocol: &proto,
                        endpoint: &ep,
                        remark: &rem,
                        headers: &hdr,
                        status: status.as_i64(),
                        confirm_token: token.as_deref(),
                        confirm_expires: token.as_ref().map(|_| confirm_expires),
                    },
                )?;
                if created && token.is_some() {
                    let family = if proto.starts_with("http") { "http" } else { proto.as_str() };
                    for (p, window, limit) in CONFIRM_LIMITS {
                        if p != family {
                            continue;
                        }
                        let sent: i64 = tx.query_row(
                            "SELECT count(*) FROM smn_deliveries WHERE kind = 'subscription_confirmation'
                             AND endpoint = ?1 AND next_at >= ?2",
                            rusqlite_params(&ep, now - window),
                            |r| r.get(0),
                        )?;
                        if sent >= limit {
                            return Err(StoreError::Conflict(format!(
                                "RATE:confirmation messages to this endpoint are limited to {limit} per {} minutes",
                                window / 60_000
                            )));
                        }
                    }
                    let texts = json!({ proto.as_str(): message_text, "subscribe_url": subscribe_url });
                    let message_id = new_id();
                    db::insert_message(
                        tx,
                        &NewMessage {
                            message_id: &message_id,
                            project_id: &pid,
                            topic_urn: &topic_urn_text,
                            subject: Some("SMN subscription confirmation"),
                            texts: &texts,
                            created_at: now,
                            expires_at: now + CONFIRMATION_TTL_MS,
                        },
                        &[NewDelivery {
                            subscription_id: &sub_id,
                            kind: "subscription_confirmation",
                            protocol: &proto,
                            endpoint: &ep,
                        }],
                    )?;
                }
                Ok((sub, created))
            })
            .await
            .map_err(|e| match e {
                StoreError::Conflict(msg) if msg.starts_with("RATE:") => {
                    SmnError::forbidden("SMN.0057", msg.trim_start_matches("RATE:").to_owned())
                }
                other => store_err(other),
            })?;
        if created && sub.status == SubscriptionStatus::Unconfirmed.as_i64() {
            self.wake.notify_one();
        }
        let urn = SubscriptionUrn::parse(&format!("{}:{}", parsed_topic, sub.subscription_id))?;
        Ok((urn, sub, created))
    }

    pub async fn list_subscriptions(
        &self,
        project_id: &str,
        topic_urn: Option<&str>,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<(String, Subscription)>, u64), SmnError> {
        let topic_id = match topic_urn {
            Some(urn) => Some(self.topic(project_id, urn).await?.1.topic_id),
            None => None,
        };
        let pid = project_id.to_owned();
        let (subs, total) = self
            .store
            .read(move |c| db::list_subscriptions(c, &pid, topic_id.as_deref(), offset, limit))
            .await
            .map_err(store_err)?;
        let out = subs
            .into_iter()
            .map(|s| {
                let urn = format!(
                    "urn:smn:{}:{}:{}:{}",
                    self.config.region, s.project_id, s.topic_name, s.subscription_id
                );
                (urn, s)
            })
            .collect();
        Ok((out, total))
    }

    pub async fn unsubscribe(
        &self,
        project_id: &str,
        subscription_urn: &str,
    ) -> Result<(), SmnError> {
        let parsed = SubscriptionUrn::parse(subscription_urn)?;
        if parsed.topic.project_id != project_id {
            return Err(SmnError::subscription_not_found(subscription_urn));
        }
        let (id, pid, topic_name) = (
            parsed.id.clone(),
            project_id.to_owned(),
            parsed.topic.name.as_str().to_owned(),
        );
        let deleted = self
            .store
            .write(move |tx| db::delete_subscription(tx, &pid, &topic_name, &id))
            .await
            .map_err(store_err)?;
        if !deleted {
            return Err(SmnError::subscription_not_found(subscription_urn));
        }
        Ok(())
    }

    /// The confirmation link: confirms the subscription whose token it carries.
    pub async fn confirm(&self, topic_urn: &str, token: &str) -> Result<String, SmnError> {
        let parsed = TopicUrn::parse(topic_urn)?;
        let (token, now) = (token.to_owned(), now_ms());
        let topic = parsed.clone();
        let sub = self
            .store
            .write(move |tx| {
                let found: Option<(String, Option<i64>)> = tx
                    .query_row(
                        "SELECT s.subscription_id, s.confirm_expires FROM smn_subscriptions s
                         JOIN smn_topics t ON t.topic_id = s.topic_id
                         WHERE s.confirm_token = ?1 AND t.project_id = ?2 AND t.name = ?3",
                        [
                            token.as_str(),
                            topic.project_id.as_str(),
                            topic.name.as_str(),
                        ],
                        |r| Ok((r.get(0)?, r.get(1)?)),
                    )
                    .ok();
                let Some((id, expires)) = found else {
                    return Ok(None);
                };
                if expires.is_some_and(|e| e < now) {
                    return Ok(None);
                }
                db::set_subscription_status(tx, &id, SubscriptionStatus::Confirmed.as_i64())?;
                Ok(Some(id))
            })
            .await
            .map_err(store_err)?;
        match sub {
            Some(id) => Ok(format!("{parsed}:{id}")),
            None => Err(SmnError::not_found(
                codes::SUBSCRIPTION_NOT_FOUND,
                "The confirmation link is invalid, already used, or expired (links are valid for 48 hours).",
            )),
        }
    }

    /// The unsubscribe link of a notification: cancels the subscription (status 3).
    pub async fn cancel_by_link(
        &self,
        subscription_urn: &str,
        token: &str,
    ) -> Result<(), SmnError> {
        let expected = self.unsubscribe_token(subscription_urn);
        let ok = expected.len() == token.len()
            && expected
                .bytes()
                .zip(token.bytes())
                .fold(0u8, |acc, (a, b)| acc | (a ^ b))
                == 0;
        if !ok {
            return Err(SmnError::not_found(
                codes::SUBSCRIPTION_NOT_FOUND,
                "The unsubscribe link is invalid.",
            ));
        }
        let parsed = SubscriptionUrn::parse(subscription_urn)?;
        let id = parsed.id.clone();
        let done = self
            .store
            .write(move |tx| {
                db::set_subscription_status(tx, &id, SubscriptionStatus::Canceled.as_i64())
            })
            .await
            .map_err(store_err)?;
        if done {
            Ok(())
        } else {
            Err(SmnError::subscription_not_found(subscription_urn))
        }
    }

    // ---- templates ----------------------------------------------------------------------

    pub async fn create_template(
        &self,
        project_id: &str,
        name: &str,
        protocol: &str,
        content: &str,
    ) -> Result<String, SmnError> {
        crate::template::check_template_name(name)?;
        let protocol = parse_template_protocol(protocol)?;
        let template = Template::parse(content)?;
        let row = TemplateRow {
            template_id: new_id(),
            project_id: project_id.to_owned(),
            name: name.to_owned(),
            protocol,
            content: content.to_owned(),
            tag_names: json!(template.tag_names()).to_string(),
            create_time: 0,
            update_time: 0,
        };
        let id = row.template_id.clone();
        self.store
            .write(move |tx| db::create_template(tx, &row))
            .await
            .map_err(store_err)?;
        Ok(id)
    }

    pub async fn template(&self, project_id: &str, id: &str) -> Result<TemplateRow, SmnError> {
        let (pid, tid) = (project_id.to_owned(), id.to_owned());
        self.store
            .read(move |c| db::template(c, &pid, &tid))
            .await
            .map_err(store_err)?
            .ok_or_else(|| SmnError::template_not_found(id))
    }

    pub async fn list_templates(
        &self,
        project_id: &str,
        name: Option<String>,
        protocol: Option<String>,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<TemplateRow>, u64), SmnError> {
        let pid = project_id.to_owned();
        self.store
            .read(move |c| {
                db::list_templates(c, &pid, name.as_deref(), protocol.as_deref(), offset, limit)
            })
            .await
            .map_err(store_err)
    }

    pub async fn update_template(
        &self,
        project_id: &str,
        id: &str,
        content: &str,
    ) -> Result<(), SmnError> {
        let template = Template::parse(content)?;
        let (pid, tid, c, tags) = (
            project_id.to_owned(),
            id.to_owned(),
            content.to_owned(),
            json!(template.tag_names()).to_string(),
        );
        let done = self
            .store
            .write(move |tx| db::update_template(tx, &pid, &tid, &c, &tags))
            .await
            .map_err(store_err)?;
        if done {
            Ok(())
        } else {
            Err(SmnError::template_not_found(id))
        }
    }

    pub async fn delete_template(&self, project_id: &str, id: &str) -> Result<(), SmnError> {
        let (pid, tid) = (project_id.to_owned(), id.to_owned());
        let done = self
            .store
            .write(move |tx| db::delete_template(tx, &pid, &tid))
            .await
            .map_err(store_err)?;
        if done {
            Ok(())
        } else {
            Err(SmnError::template_not_found(id))
        }
    }

    // ---- publish ------------------------------------------------------------------------

    /// Accepts a message for the topic's confirmed subscriptions. Returns the `message_id` only
    /// once the message and all its deliveries are durable.
    ///
    /// Alarm hygiene is decided in the same write transaction (so in commit order): a message
    /// matching an active silence of the topic, or repeating a message within the topic's dedup
    /// window, is stored without deliveries and with a record of why ([`Notifier::message_hygiene`]);
    /// a counted repeat updates the pending summary of its window.
    pub async fn publish(
        &self,
        project_id: &str,
        topic_urn: &str,
        body: &Value,
    ) -> Result<String, SmnError> {
        Ok(self
            .publish_keyed(project_id, topic_urn, body, None)
            .await?
            .0)
    }

    /// [`Notifier::publish`] made idempotent by `key` within the project: the first call stores
    /// the message and remembers the key in the same transaction; later calls with the same key
    /// store nothing and answer the first `message_id`. The bool says whether this call
    /// published. Function effects use it so that a retried invocation never alarms twice.
    pub async fn publish_once(
        &self,
        project_id: &str,
        topic_urn: &str,
        body: &Value,
        key: &str,
    ) -> Result<(String, bool), SmnError> {
        self.publish_keyed(project_id, topic_urn, body, Some(key.to_owned()))
            .await
    }

    async fn publish_keyed(
        &self,
        project_id: &str,
        topic_urn: &str,
        body: &Value,
        key: Option<String>,
    ) -> Result<(String, bool), SmnError> {
        let request = PublishRequest::from_json(body)?;
        let (parsed, topic) = self.topic(project_id, topic_urn).await?;
        let topic_id = topic.topic_id.clone();
        let subs = self
            .store
            .read(move |c| db::confirmed_subscriptions(c, &topic_id))
            .await
            .map_err(store_err)?;
        let (texts, match_text) = self.resolve_texts(project_id, &request, &subs).await?;
        let message_id = new_id();
        let ttl_ms = i64::from(request.time_to_live_s) * 1000;
        let fingerprint = hygiene::fingerprint(request.subject.as_deref(), &request.content);
        let (mid, pid, urn, subject, topic_id) = (
            message_id.clone(),
            project_id.to_owned(),
            parsed.to_string(),
            request.subject.clone(),
            topic.topic_id.clone(),
        );
        let topic_display = topic.display_name.clone();
        let outcome = self
            .store
            .write(move |tx| {
                // Taken on the writer thread: windows and silences are judged in commit order.
                let now = now_ms();
                if let Some(k) = &key {
                    if let Some(earlier) = db::published_with_key(tx, &pid, k)? {
                        return Ok((earlier, false));
                    }
                    db::remember_publish_key(tx, &pid, k, &mid, now)?;
                }
                let mut texts = texts;
                if let Value::Object(m) = &mut texts {
                    m.insert("display_name".into(), Value::String(topic_display));
                }
                let deliveries: Vec<NewDelivery<'_>> = subs
                    .iter()
                    .map(|s| NewDelivery {
                        subscription_id: &s.subscription_id,
                        kind: "notification",
                        protocol: &s.protocol,
                        endpoint: &s.endpoint,
                    })
                    .collect();
                let mut record = db::MessageHygiene::default();
                let silence = db::active_silences(tx, &pid, &urn, now)?
                    .into_iter()
                    .find(|s| hygiene::silence_matches(s, subject.as_deref(), &match_text));
                if let Some(s) = silence {
                    record.silenced_by = Some(s.silence_id);
                } else {
                    let window_ms = db::dedup_window_ms(tx, &topic_id)?;
                    if window_ms > 0 {
                        match db::open_dedup_window(tx, &topic_id, &fingerprint, now)? {
                            None => db::start_dedup_window(
                                tx,
                                &topic_id,
                                &fingerprint,
                                &mid,
                                now,
                                now + window_ms,
                            )?,
                            Some(w) => {
                                let repeat = Repeat {
                                    topic_id: &topic_id,
                                    fingerprint: &fingerprint,
                                    project_id: &pid,
                                    topic_urn: &urn,
                                    subject: subject.as_deref(),
                                    texts: &texts,
                                    ttl_ms,
                                    now,
                                };
                                record = count_repeat(tx, w, &repeat, &deliveries)?;
                            }
                        }
                    }
                }
                let held = record != db::MessageHygiene::default();
                db::insert_message(
                    tx,
                    &NewMessage {
                        message_id: &mid,
                        project_id: &pid,
                        topic_urn: &urn,
                        subject: subject.as_deref(),
                        texts: &texts,
                        created_at: now,
                        expires_at: now + ttl_ms,
                    },
                    if held { &[] } else { &deliveries },
                )?;
                if held {
                    db::set_message_hygiene(tx, &mid, &record)?;
                }
                Ok((mid, true))
            })
            .await
            .map_err(store_err)?;
        if outcome.1 {
            self.wake.notify_one();
        }
        Ok(outcome)
    }

    /// The text each protocol of `subs` receives (structure > template > message), and the text
    /// silences match `message_contains` against: the `message`, the `default` text of a
    /// `message_structure`, or the `default`-protocol template rendered with the tags.
    async fn resolve_texts(
        &self,
        project_id: &str,
        request: &PublishRequest,
        subs: &[Subscription],
    ) -> Result<(Value, String), SmnError> {
        let mut protocols: Vec<Protocol> = subs
            .iter()
            .filter_map(|s| Protocol::parse(&s.protocol).ok())
            .collect();
        protocols.sort_by_key(|p| p.as_str());
        protocols.dedup();
        let mut texts = Map::new();
        let match_text = match &request.content {
            Content::Message(_) | Content::Structure(_) => {
                for p in protocols {
                    texts.insert(
                        p.as_str().to_owned(),
                        Value::String(text_for(p, &request.content)),
                    );
                }
                match &request.content {
                    Content::Message(m) => m.clone(),
                    Content::Structure(s) => s.get("default").cloned().unwrap_or_default(),
                    Content::Template { .. } => String::new(),
                }
            }
            Content::Template { name, tags } => {
                // The default-protocol template must exist even when every subscriber has its own.
                let default = self.template_text(project_id, name, "default").await?;
                let Some(default) = default else {
                    return Err(SmnError::default_template_not_found(name));
                };
                for p in protocols {
                    let own = self.template_text(project_id, name, p.as_str()).await?;
                    let template = Template::parse(own.as_deref().unwrap_or(&default))?;
                    let rendered = template.render(tags)?;
                    texts.insert(p.as_str().to_owned(), Value::String(cut_for(p, &rendered)));
                }
                // Only for matching: a default template that no subscriber receives must not fail
                // the publish, so one that does not render is matched as written.
                Template::parse(&default)
                    .and_then(|t| t.render(tags))
                    .unwrap_or(default)
            }
        };
        Ok((Value::Object(texts), match_text))
    }

    async fn template_text(
        &self,
        project_id: &str,
        name: &str,
        protocol: &str,
    ) -> Result<Option<String>, SmnError> {
        let (pid, n, p) = (project_id.to_owned(), name.to_owned(), protocol.to_owned());
        Ok(self
            .store
            .read(move |c| db::template_by_name(c, &pid, &n, &p))
            .await
            .map_err(store_err)?
            .map(|t| t.content))
    }

    // ---- deliveries and dead letters ----------------------------------------------------

    pub async fn deliveries(
        &self,
        project_id: &str,
        message_id: &str,
    ) -> Result<Vec<(db::DeliveryInfo, Vec<db::Attempt>)>, SmnError> {
        let (pid, mid) = (project_id.to_owned(), message_id.to_owned());
        self.store
            .read(move |c| {
                let mut out = Vec::new();
                for d in db::deliveries_of_message(c, &pid, &mid)? {
                    let attempts = db::attempts(c, d.delivery_id)?;
                    out.push((d, attempts));
                }
                Ok(out)
            })
            .await
            .map_err(store_err)
    }

    /// What alarm hygiene did to one of the project's messages (all `None` when nothing).
    pub async fn message_hygiene(
        &self,
        project_id: &str,
        message_id: &str,
    ) -> Result<db::MessageHygiene, SmnError> {
        let (pid, mid) = (project_id.to_owned(), message_id.to_owned());
        self.store
            .read(move |c| db::message_hygiene(c, &pid, &mid))
            .await
            .map_err(store_err)
    }

    pub async fn dead_letters(
        &self,
        project_id: &str,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<db::DeliveryInfo>, u64), SmnError> {
        let pid = project_id.to_owned();
        self.store
            .read(move |c| db::dead_letters(c, &pid, offset, limit))
            .await
            .map_err(store_err)
    }

    /// Re-queues dead letters (all of the project's, or the given ids) with a fresh hour to live.
    pub async fn replay(&self, project_id: &str, ids: Option<Vec<i64>>) -> Result<usize, SmnError> {
        let pid = project_id.to_owned();
        let n = self
            .store
            .write(move |tx| db::replay_dead_letters(tx, &pid, ids.as_deref(), now_ms(), 3_600_000))
            .await
            .map_err(store_err)?;
        self.wake.notify_one();
        Ok(n)
    }
}

/// A publish that repeats the first message of an open dedup window.
struct Repeat<'a> {
    topic_id: &'a str,
    fingerprint: &'a str,
    project_id: &'a str,
    topic_urn: &'a str,
    subject: Option<&'a str>,
    /// The texts this publish resolved (display name included).
    texts: &'a Value,
    ttl_ms: i64,
    now: i64,
}

/// Counts a repeat into its window (inside the publish transaction). The first repeat stores the
/// window's summary with `deliveries`, due after the window closes; every repeat rewrites the
/// summary's text with the new count. Returns the repeat's own record.
fn count_repeat(
    tx: &trailwatch_store::rusqlite::Connection,
    mut w: db::DedupWindow,
    r: &Repeat<'_>,
    deliveries: &[NewDelivery<'_>],
) -> trailwatch_store::Result<db::MessageHygiene> {
    w.repeats += 1;
    let first_repeat_at = *w.first_repeat_at.get_or_insert(r.now);
    w.last_repeat_at = Some(r.now);
    // The summary is rendered from the texts of the first repeat, whose subscribers it goes to.
    let base = match &w.base_texts {
        Some(b) => serde_json::from_str(b).unwrap_or(Value::Null),
        None => {
            w.base_texts = Some(r.texts.to_string());
            r.texts.clone()
        }
    };
    let texts = hygiene::summary_texts(
        &base,
        w.repeats,
        first_repeat_at,
        r.now,
        w.ends_at - w.started_at,
    );
    let summary_id = match &w.summary_message_id {
        Some(id) => {
            db::set_message_texts(tx, id, &texts)?;
            id.clone()
        }
        None => {
            let due = w.ends_at + hygiene::SUMMARY_SETTLE_MS;
            let id = new_id();
            db::insert_message_due(
                tx,
                &NewMessage {
                    message_id: &id,
                    project_id: r.project_id,
                    topic_urn: r.topic_urn,
                    subject: r.subject,
                    texts: &texts,
                    created_at: r.now,
                    expires_at: due + r.ttl_ms,
                },
                deliveries,
                due,
            )?;
            let of = db::MessageHygiene {
                summary_of: Some(w.first_message_id.clone()),
                ..Default::default()
            };
            db::set_message_hygiene(tx, &id, &of)?;
            w.summary_message_id = Some(id.clone());
            id
        }
    };
    db::update_dedup_window(tx, r.topic_id, r.fingerprint, &w)?;
    Ok(db::MessageHygiene {
        deduplicated_into: Some(w.first_message_id),
        summary_message_id: Some(summary_id),
        ..Default::default()
    })
}

/// A silence as requested (`POST …/notifications/silences`), before validation.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SilenceRequest {
    pub topic_urn: String,
    pub subject_contains: Option<String>,
    pub message_contains: Option<String>,
    /// Milliseconds since 1970; now when absent.
    pub starts_at: Option<i64>,
    /// Milliseconds since 1970; required.
    pub ends_at: Option<i64>,
    pub comment: String,
}

// ---- alarm hygiene ----------------------------------------------------------------------
impl Notifier {
    /// The topic's dedup window in seconds (0 = off).
    pub async fn topic_hygiene(
        &self,
        project_id: &str,
        urn: &str,
    ) -> Result<(TopicUrn, u32), SmnError> {
        let (parsed, topic) = self.topic(project_id, urn).await?;
        let window_ms = self
            .store
            .read(move |c| db::dedup_window_ms(c, &topic.topic_id))
            .await
            .map_err(store_err)?;
        Ok((
            parsed,
            (window_ms / 1000).clamp(0, i64::from(u32::MAX)) as u32,
        ))
    }

    /// Sets the topic's dedup window (0 turns deduplication off). Windows already open keep
    /// their length; the new one applies to windows opened from now on.
    pub async fn set_topic_hygiene(
        &self,
        project_id: &str,
        urn: &str,
        dedup_window_seconds: i64,
    ) -> Result<(TopicUrn, u32), SmnError> {
        let seconds = hygiene::check_dedup_window(dedup_window_seconds)?;
        let (parsed, topic) = self.topic(project_id, urn).await?;
        self.store
            .write(move |tx| {
                db::set_dedup_window_ms(tx, &topic.topic_id, i64::from(seconds) * 1000)
            })
            .await
            .map_err(store_err)?;
        Ok((parsed, seconds))
    }

    /// Creates a silence of one of the project's topics.
    pub async fn create_silence(
        &self,
        project_id: &str,
        request: SilenceRequest,
    ) -> Result<db::Silence, SmnError> {
        let now = now_ms();
        let (starts_at, ends_at) = hygiene::check_silence(&request, now)?;
        if request.topic_urn.is_empty() {
            return Err(SmnError::bad_request(
                codes::TOPIC_URN_INVALID,
                "`topic_urn` is required: the topic whose messages the silence mutes",
            ));
        }
        let (parsed, _) = self.topic(project_id, &request.topic_urn).await?;
        let silence = db::Silence {
            silence_id: new_id(),
            project_id: project_id.to_owned(),
            topic_urn: parsed.to_string(),
            subject_contains: request.subject_contains,
            message_contains: request.message_contains,
            starts_at,
            ends_at,
            comment: request.comment,
            created_at: now,
            silenced_messages: 0,
        };
        let row = silence.clone();
        self.store
            .write(move |tx| {
                let open = db::unexpired_silences(tx, &row.project_id, &row.topic_urn, now)?;
                if open >= hygiene::MAX_UNEXPIRED_SILENCES {
                    return Err(StoreError::Conflict(format!(
                        "LIMIT:the topic has {open} silences that have not ended, at most {} are allowed; expire some first",
                        hygiene::MAX_UNEXPIRED_SILENCES
                    )));
                }
                db::insert_silence(tx, &row)
            })
            .await
            .map_err(|e| match e {
                StoreError::Conflict(msg) if msg.starts_with("LIMIT:") => SmnError::forbidden(
                    hygiene::PARAMETER_INVALID,
                    msg.trim_start_matches("LIMIT:").to_owned(),
                ),
                other => store_err(other),
            })?;
        Ok(silence)
    }

    /// A page of the project's silences (of one topic URN when given), newest first.
    pub async fn list_silences(
        &self,
        project_id: &str,
        topic_urn: Option<String>,
        offset: u32,
        limit: u32,
    ) -> Result<(Vec<db::Silence>, u64), SmnError> {
        let pid = project_id.to_owned();
        self.store
            .read(move |c| db::list_silences(c, &pid, topic_urn.as_deref(), offset, limit))
            .await
            .map_err(store_err)
    }

    /// Ends a silence now. `false` when it had already ended (nothing changes).
    pub async fn expire_silence(
        &self,
        project_id: &str,
        silence_id: &str,
    ) -> Result<bool, SmnError> {
        let (pid, id) = (project_id.to_owned(), silence_id.to_owned());
        self.store
            .write(move |tx| db::expire_silence(tx, &pid, &id, now_ms()))
            .await
            .map_err(store_err)?
            .ok_or_else(|| {
                SmnError::not_found(
                    hygiene::SILENCE_NOT_FOUND,
                    format!("Silence not found: {silence_id}."),
                )
            })
    }
}

/// The pure rules of alarm hygiene: request validation, silence matching, the dedup
/// fingerprint and the summary text.
pub mod hygiene {
    use serde_json::{Map, Value, json};
    use sha2::{Digest, Sha256};
    use trailwatch_store::smn::Silence;

    use super::SilenceRequest;
    use crate::error::SmnError;
    use crate::model::Protocol;
    use crate::publish::Content;

    /// The longest dedup window: a day.
    pub const MAX_DEDUP_WINDOW_S: u32 = 86_400;
    /// How far ahead a silence may end: 30 days.
    pub const MAX_SILENCE_MS: i64 = 30 * 86_400_000;
    /// Silences of one topic that have not ended (each publish checks the active ones).
    pub const MAX_UNEXPIRED_SILENCES: i64 = 100;
    pub const MAX_SUBJECT_MATCHER_BYTES: usize = 512;
    pub const MAX_MESSAGE_MATCHER_BYTES: usize = 4096;
    pub const MAX_COMMENT_CHARS: usize = 256;
    /// A dedup summary is due this long after its window closes, so that a repeat counted at
    /// the very end of the window is committed before the summary is read for sending.
    pub const SUMMARY_SETTLE_MS: i64 = 500;
    /// 400: a hygiene or silence parameter is invalid. SMN has neither; this is trailwatch's
    /// code for an invalid request body (also used for unparseable JSON).
    pub const PARAMETER_INVALID: &str = "SMN.0010";
    /// 404: no such silence. SMN documents no silences; trailwatch's own code.
    pub const SILENCE_NOT_FOUND: &str = "SMN.0910";

    fn invalid(message: impl Into<String>) -> SmnError {
        SmnError::bad_request(PARAMETER_INVALID, message)
    }

    fn time(ms: i64) -> String {
        chrono::DateTime::from_timestamp_millis(ms)
            .map(|t| t.format("%Y-%m-%dT%H:%M:%SZ").to_string())
            .unwrap_or_else(|| ms.to_string())
    }

    /// A valid dedup window in seconds.
    pub fn check_dedup_window(seconds: i64) -> Result<u32, SmnError> {
        if !(0..=i64::from(MAX_DEDUP_WINDOW_S)).contains(&seconds) {
            return Err(invalid(format!(
                "`dedup_window_seconds` is {seconds}; it must be from 0 (off) to {MAX_DEDUP_WINDOW_S} (one day)"
            )));
        }
        Ok(seconds as u32)
    }

    /// Checks a silence request at time `now`; returns its `(starts_at, ends_at)`.
    pub fn check_silence(r: &SilenceRequest, now: i64) -> Result<(i64, i64), SmnError> {
        for (name, value, max) in [
            (
                "subject_contains",
                &r.subject_contains,
                MAX_SUBJECT_MATCHER_BYTES,
            ),
            (
                "message_contains",
                &r.message_contains,
                MAX_MESSAGE_MATCHER_BYTES,
            ),
        ] {
            if let Some(v) = value {
                if v.is_empty() {
                    return Err(invalid(format!(
                        "`{name}` is empty, which would match every message; leave it out or give the text to match"
                    )));
                }
                if v.len() > max {
                    return Err(invalid(format!(
                        "`{name}` is {} bytes; at most {max} are allowed",
                        v.len()
                    )));
                }
            }
        }
        if r.subject_contains.is_none() && r.message_contains.is_none() {
            return Err(invalid(
                "a silence needs at least one matcher: `subject_contains` or `message_contains`",
            ));
        }
        if r.comment.chars().count() > MAX_COMMENT_CHARS {
            return Err(invalid(format!(
                "`comment` is {} characters; at most {MAX_COMMENT_CHARS} are allowed",
                r.comment.chars().count()
            )));
        }
        let Some(ends_at) = r.ends_at else {
            return Err(invalid(
                "`ends_at` is required: when the silence ends, in milliseconds since 1970-01-01",
            ));
        };
        let starts_at = r.starts_at.unwrap_or(now);
        if ends_at <= now {
            return Err(invalid(format!(
                "`ends_at` {ends_at} ({}) is in the past; a silence must end in the future",
                time(ends_at)
            )));
        }
        if ends_at <= starts_at {
            return Err(invalid(format!(
                "`ends_at` {ends_at} ({}) must be after `starts_at` {starts_at} ({})",
                time(ends_at),
                time(starts_at)
            )));
        }
        if ends_at > now + MAX_SILENCE_MS {
            return Err(invalid(format!(
                "`ends_at` {ends_at} ({}) is more than 30 days ahead; a silence may last until {} at most",
                time(ends_at),
                time(now + MAX_SILENCE_MS)
            )));
        }
        Ok((starts_at, ends_at))
    }

    /// Whether a message (its subject, and the text described on `resolve_texts`) is muted by
    /// `s`: every matcher that is set is a case-sensitive substring of its field. A matcher on
    /// the subject never matches a message without one.
    pub fn silence_matches(s: &Silence, subject: Option<&str>, message: &str) -> bool {
        let subject_ok = match &s.subject_contains {
            None => true,
            Some(m) => subject.is_some_and(|subj| subj.contains(m.as_str())),
        };
        let message_ok = match &s.message_contains {
            None => true,
            Some(m) => message.contains(m.as_str()),
        };
        (s.subject_contains.is_some() || s.message_contains.is_some()) && subject_ok && message_ok
    }

    /// What makes two publishes "the same message": subject and content as requested (the
    /// message, the whole structure, or the template name with its tags), hashed.
    pub fn fingerprint(subject: Option<&str>, content: &Content) -> String {
        let content = match content {
            Content::Message(m) => json!({ "message": m }),
            Content::Structure(s) => json!({ "message_structure": s }),
            Content::Template { name, tags } => json!({ "template": name, "tags": tags }),
        };
        let key = json!([subject, content]).to_string();
        hex::encode(Sha256::digest(key.as_bytes()))
    }

    /// The line a dedup summary adds to the first message's text.
    pub fn summary_note(repeats: i64, first_at: i64, last_at: i64, window_ms: i64) -> String {
        format!(
            "[trailwatch] this message was repeated {repeats} more time{} between {} and {} (dedup window {} s)",
            if repeats == 1 { "" } else { "s" },
            time(first_at),
            time(last_at),
            window_ms / 1000
        )
    }

    /// The texts of a dedup summary: each protocol's text of the message with the note after it
    /// (before it for SMS, whose text is cut to 490 characters). Other members are kept.
    pub fn summary_texts(
        base: &Value,
        repeats: i64,
        first_at: i64,
        last_at: i64,
        window_ms: i64,
    ) -> Value {
        let note = summary_note(repeats, first_at, last_at, window_ms);
        let mut out = Map::new();
        for (k, v) in base.as_object().into_iter().flatten() {
            let text = match (Protocol::parse(k), v.as_str()) {
                (Ok(Protocol::Sms), Some(t)) => Value::String(format!("{note}\n{t}")),
                (Ok(_), Some(t)) => Value::String(format!("{t}\n\n{note}")),
                _ => v.clone(),
            };
            out.insert(k.clone(), text);
        }
        Value::Object(out)
    }

    #[cfg(test)]
    #[allow(clippy::unwrap_used)]
    mod tests {
        use super::*;

        fn silence(subject: Option<&str>, message: Option<&str>) -> Silence {
            Silence {
                silence_id: "s".into(),
                project_id: "p".into(),
                topic_urn: "urn:smn:local:p:t".into(),
                subject_contains: subject.map(str::to_owned),
                message_contains: message.map(str::to_owned),
                starts_at: 0,
                ends_at: 10,
                comment: String::new(),
                created_at: 0,
                silenced_messages: 0,
            }
        }

        #[test]
        fn matchers_are_case_sensitive_substrings_and_all_must_match() {
            let s = silence(Some("CTSTrigger"), None);
            assert!(s.is_active(0));
            assert!(silence_matches(&s, Some("x CTSTrigger y"), "anything"));
            assert!(!silence_matches(&s, Some("ctstrigger"), "anything"));
            assert!(!silence_matches(&s, None, "CTSTrigger"));
            let both = silence(Some("CTS"), Some("login"));
            assert!(silence_matches(&both, Some("CTS"), "a login b"));
            assert!(!silence_matches(&both, Some("CTS"), "a logout b"));
            assert!(!silence_matches(&silence(None, None), Some("a"), "b"));
        }

        #[test]
        fn fingerprint_depends_on_subject_and_content_only() {
            let m = |t: &str| Content::Message(t.into());
            assert_eq!(
                fingerprint(Some("a"), &m("x")),
                fingerprint(Some("a"), &m("x"))
            );
            assert_ne!(
                fingerprint(Some("a"), &m("x")),
                fingerprint(Some("b"), &m("x"))
            );
            assert_ne!(fingerprint(None, &m("x")), fingerprint(Some(""), &m("x")));
            assert_ne!(
                fingerprint(Some("a"), &m("x")),
                fingerprint(Some("a"), &m("y"))
            );
        }

        #[test]
        fn summary_states_the_count_and_keeps_sms_note_first() {
            let base = json!({"http": "disk full", "sms": "disk full", "display_name": "Ops"});
            let t = summary_texts(&base, 4, 1_700_000_000_000, 1_700_000_001_000, 120_000);
            assert_eq!(
                t["http"],
                "disk full\n\n[trailwatch] this message was repeated 4 more times between 2023-11-14T22:13:20Z and 2023-11-14T22:13:21Z (dedup window 120 s)"
            );
            assert!(
                t["sms"]
                    .as_str()
                    .unwrap()
                    .starts_with("[trailwatch] this message was repeated 4")
            );
            assert_eq!(t["display_name"], "Ops");
            assert!(summary_note(1, 0, 0, 1000).contains("repeated 1 more time between"));
        }

        #[test]
        fn silence_requests_are_checked() {
            let now = 1_700_000_000_000;
            let ok = SilenceRequest {
                topic_urn: "urn:smn:local:p:t".into(),
                subject_contains: Some("CTS".into()),
                ends_at: Some(now + 3_600_000),
                ..Default::default()
            };
            assert_eq!(check_silence(&ok, now).unwrap(), (now, now + 3_600_000));
            let err = |r: SilenceRequest| check_silence(&r, now).unwrap_err().message;
            assert!(
                err(SilenceRequest {
                    subject_contains: None,
                    ..ok.clone()
                })
                .contains("at least one matcher")
            );
            assert!(
                err(SilenceRequest {
                    subject_contains: Some(String::new()),
                    ..ok.clone()
                })
                .contains("is empty")
            );
            assert!(
                err(SilenceRequest {
                    ends_at: None,
                    ..ok.clone()
                })
                .contains("`ends_at` is required")
            );
            assert!(
                err(SilenceRequest {
                    ends_at: Some(now - 1),
                    ..ok.clone()
                })
                .contains("is in the past")
            );
            assert!(
                err(SilenceRequest {
                    starts_at: Some(now + 7_200_000),
                    ..ok.clone()
                })
                .contains("must be after `starts_at`")
            );
            assert!(
                err(SilenceRequest {
                    ends_at: Some(now + 31 * 86_400_000),
                    ..ok.clone()
                })
                .contains("more than 30 days ahead")
            );
            assert!(
                check_dedup_window(86_401)
                    .unwrap_err()
                    .message
                    .contains("from 0 (off) to 86400")
            );
            assert_eq!(check_dedup_window(0).unwrap(), 0);
        }
    }
}

fn rusqlite_params(endpoint: &str, since: i64) -> (String, i64) {
    (endpoint.to_owned(), since)
}

fn parse_template_protocol(p: &str) -> Result<String, SmnError> {
    if p == "default" {
        return Ok(p.to_owned());
    }
    Protocol::parse(p).map(|p| p.as_str().to_owned())
}

/// Percent-encodes a query value (unreserved characters kept).
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}
