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
        }))
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
        let id = parsed.id.clone();
        let deleted = self
            .store
            .write(move |tx| db::delete_subscription(tx, &id))
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
    pub async fn publish(
        &self,
        project_id: &str,
        topic_urn: &str,
        body: &Value,
    ) -> Result<String, SmnError> {
        let request = PublishRequest::from_json(body)?;
        let (parsed, topic) = self.topic(project_id, topic_urn).await?;
        let topic_id = topic.topic_id.clone();
        let subs = self
            .store
            .read(move |c| db::confirmed_subscriptions(c, &topic_id))
            .await
            .map_err(store_err)?;
        let texts = self.resolve_texts(project_id, &request, &subs).await?;
        let now = now_ms();
        let message_id = new_id();
        let expires_at = now + i64::from(request.time_to_live_s) * 1000;
        let (mid, pid, urn, subject) = (
            message_id.clone(),
            project_id.to_owned(),
            parsed.to_string(),
            request.subject.clone(),
        );
        let topic_display = topic.display_name.clone();
        self.store
            .write(move |tx| {
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
                db::insert_message(
                    tx,
                    &NewMessage {
                        message_id: &mid,
                        project_id: &pid,
                        topic_urn: &urn,
                        subject: subject.as_deref(),
                        texts: &texts,
                        created_at: now,
                        expires_at,
                    },
                    &deliveries,
                )
            })
            .await
            .map_err(store_err)?;
        self.wake.notify_one();
        Ok(message_id)
    }

    /// The text each protocol of `subs` receives (structure > template > message).
    async fn resolve_texts(
        &self,
        project_id: &str,
        request: &PublishRequest,
        subs: &[Subscription],
    ) -> Result<Value, SmnError> {
        let mut protocols: Vec<Protocol> = subs
            .iter()
            .filter_map(|s| Protocol::parse(&s.protocol).ok())
            .collect();
        protocols.sort_by_key(|p| p.as_str());
        protocols.dedup();
        let mut texts = Map::new();
        match &request.content {
            Content::Message(_) | Content::Structure(_) => {
                for p in protocols {
                    texts.insert(
                        p.as_str().to_owned(),
                        Value::String(text_for(p, &request.content)),
                    );
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
            }
        }
        Ok(Value::Object(texts))
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
