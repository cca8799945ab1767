//! The delivery worker: takes due deliveries from the durable outbox, sends them (HTTP(S) with
//! signed notifications, email over SMTP, SMS through an HTTP gateway), records every attempt,
//! and reschedules failures with jittered exponential backoff until they succeed or their message
//! expires, when they become dead letters.
//!
//! [`Notifier::outbox_step`] is one pass and is what tests call; [`Notifier::run_outbox`] is the
//! loop that only decides how long to sleep. A delivery is in flight at most once per process
//! (exactly once in normal operation); after a crash, deliveries that were in flight are sent
//! again (at least once), and receivers deduplicate on `message_id`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use lettre::AsyncTransport;
use serde_json::Value;
use trailwatch_store::now_ms;
use trailwatch_store::smn::{self as db, AttemptOutcome, DueDelivery};

use crate::model::{Protocol, SubscriptionStatus};
use crate::notification::{MessageType, NotificationBody};
use crate::publish::cut_for;
use crate::retry::{Failure, classify_http_status, classify_smtp_code};
use crate::service::{Notifier, NotifyConfig, SmtpSecurity};

/// After this many consecutive failures an endpoint is left alone for `BREAKER_OPEN`: a dead
/// receiver must not tie up the workers that other receivers need.
const BREAKER_FAILURES: u32 = 5;
const BREAKER_OPEN: Duration = Duration::from_secs(30);

#[derive(Default)]
struct Breaker {
    failures: u32,
    open_until: Option<Instant>,
}

pub(crate) struct OutboxState {
    http: reqwest::Client,
    smtp: Option<lettre::AsyncSmtpTransport<lettre::Tokio1Executor>>,
    in_flight: Mutex<HashSet<i64>>,
    breakers: Mutex<HashMap<String, Breaker>>,
    permits: Arc<tokio::sync::Semaphore>,
}

impl OutboxState {
    pub(crate) fn new(config: &NotifyConfig) -> Result<OutboxState, String> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(config.connect_timeout)
            .timeout(config.response_timeout)
            .redirect(reqwest::redirect::Policy::none())
            .dns_resolver(Arc::new(crate::outbound::PolicyResolver {
                policy: Arc::new(config.outbound.clone()),
            }))
            .user_agent("trailwatch-smn/1");
        if let Some(pem) = &config.extra_ca_pem {
            for cert in reqwest::Certificate::from_pem_bundle(pem)
                .map_err(|e| format!("extra CA bundle: {e}"))?
            {
                builder = builder.add_root_certificate(cert);
            }
        }
        let http = builder.build().map_err(|e| format!("HTTP client: {e}"))?;
        let smtp = match &config.smtp {
            None => None,
            Some(s) => {
                use lettre::transport::smtp::client::{Tls, TlsParameters};
                let mut b = match s.security {
                    SmtpSecurity::None => {
                        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(
                            &s.host,
                        )
                    }
                    SmtpSecurity::Starttls | SmtpSecurity::Tls => {
                        let params = TlsParameters::new(s.host.clone())
                            .map_err(|e| format!("SMTP TLS: {e}"))?;
                        let tls = if s.security == SmtpSecurity::Tls {
                            Tls::Wrapper(params)
                        } else {
                            Tls::Required(params)
                        };
                        lettre::AsyncSmtpTransport::<lettre::Tokio1Executor>::builder_dangerous(
                            &s.host,
                        )
                        .tls(tls)
                    }
                };
                b = b.port(s.port).timeout(Some(config.response_timeout));
                if let (Some(u), Some(p)) = (&s.username, &s.password) {
                    b = b.credentials(lettre::transport::smtp::authentication::Credentials::new(
                        u.clone(),
                        p.clone(),
                    ));
                }
                Some(b.build())
            }
        };
        Ok(OutboxState {
            http,
            smtp,
            in_flight: Mutex::new(HashSet::new()),
            breakers: Mutex::new(HashMap::new()),
            permits: Arc::new(tokio::sync::Semaphore::new(config.concurrency.max(1))),
        })
    }
}

/// The key a circuit breaker is kept under: the HTTP authority, or the mail/SMS relay.
fn breaker_key(d: &DueDelivery) -> String {
    match d.protocol.as_str() {
        "http" | "https" => reqwest::Url::parse(&d.endpoint)
            .ok()
            .map(|u| {
                format!(
                    "{}://{}:{}",
                    u.scheme(),
                    u.host_str().unwrap_or(""),
                    u.port_or_known_default().unwrap_or(0)
                )
            })
            .unwrap_or_else(|| d.endpoint.clone()),
        // Per recipient: one bad address must not pause mail or SMS to everyone.
        other => format!("{other}:{}", d.endpoint),
    }
}

/// The Message-ID of an email delivery: the same for every attempt of it, so that a mail sent
/// again after a crash (the server accepted it, the attempt was not yet recorded) is recognisable
/// as a copy by the receiver; unique across servers because the SMN message id is a UUID.
fn email_message_id(message_id: &str, delivery_id: i64, config: &NotifyConfig) -> String {
    let domain = config
        .smtp
        .as_ref()
        .and_then(|s| {
            s.from
                .rsplit_once('@')
                .map(|(_, d)| d.trim_end_matches('>'))
        })
        .filter(|d| {
            !d.is_empty()
                && d.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-')
        })
        .unwrap_or("trailwatch.invalid");
    let local: String = message_id
        .chars()
        .filter(|c| c.is_ascii_alphanumeric() || *c == '-')
        .collect();
    format!("<{local}.{delivery_id}@{domain}>")
}

/// `e` and its causes, for the attempt log: reqwest's own text names only the URL, while why
/// the request failed (refused, certificate not trusted, ...) is in its sources.
fn with_causes(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut cause = e.source();
    while let Some(c) = cause {
        let t = c.to_string();
        if !text.contains(&t) {
            text.push_str(": ");
            text.push_str(&t);
        }
        cause = c.source();
    }
    text
}

impl Notifier {
    /// How long a claimed delivery stays invisible to other passes: longer than any attempt.
    fn lease_ms(&self) -> i64 {
        (self.config.connect_timeout + self.config.response_timeout).as_millis() as i64 + 5_000
    }

    /// Runs the outbox until `shutdown` resolves.
    pub async fn run_outbox(self: Arc<Self>, shutdown: impl std::future::Future<Output = ()>) {
        tokio::pin!(shutdown);
        loop {
            if let Err(e) = self.outbox_step().await {
                tracing::warn!(error = %e, "outbox pass failed; retrying in a second");
            }
            let next_due = self.store.read(db::next_due_at).await.ok().flatten();
            let wait = match next_due {
                Some(t) => Duration::from_millis((t - now_ms()).clamp(5, 1000) as u64),
                None => Duration::from_secs(1),
            };
            tokio::select! {
                () = &mut shutdown => return,
                () = self.wake.notified() => {},
                () = tokio::time::sleep(wait) => {},
            }
        }
    }

    /// One pass: starts every due delivery that is not already in flight. Returns how many
    /// were started (they finish in the background).
    ///
    /// Deliveries are claimed a chunk at a time (as many as there are free senders) in one
    /// write: under load every write waits for a group commit, and a claim per delivery made
    /// that wait, not the receivers, the limit on deliveries per second.
    pub async fn outbox_step(self: &Arc<Self>) -> Result<usize, String> {
        let due = self
            .store
            .read(|c| db::due_deliveries(c, now_ms(), 512))
            .await
            .map_err(|e| e.to_string())?;
        let mut fresh: Vec<DueDelivery> = Vec::with_capacity(due.len());
        for d in due {
            let is_new = self
                .outbox
                .in_flight
                .lock()
                .map(|mut s| s.insert(d.delivery_id))
                .unwrap_or(false);
            if is_new {
                fresh.push(d);
            }
        }
        let mut started = 0;
        let mut rest = fresh.into_iter().peekable();
        while rest.peek().is_some() {
            let free = self.outbox.permits.available_permits().max(1);
            let chunk: Vec<DueDelivery> = rest.by_ref().take(free).collect();
            let mut ready = Vec::with_capacity(chunk.len());
            for d in chunk {
                match self.outbox.permits.clone().acquire_owned().await {
                    Ok(permit) => ready.push((d, permit)),
                    Err(_) => {
                        self.forget_in_flight(d.delivery_id);
                    }
                }
            }
            started += self.claim_and_start(ready).await?;
        }
        Ok(started)
    }

    fn forget_in_flight(&self, id: i64) {
        if let Ok(mut s) = self.outbox.in_flight.lock() {
            s.remove(&id);
        }
    }

    /// Claims a chunk of due deliveries in one write and starts a sender for each one claimed.
    /// An endpoint whose breaker is open is not attempted: its deliveries are looked at again
    /// when it reopens.
    async fn claim_and_start(
        self: &Arc<Self>,
        ready: Vec<(DueDelivery, tokio::sync::OwnedSemaphorePermit)>,
    ) -> Result<usize, String> {
        let now = now_ms();
        let mut postponed: Vec<(i64, i64)> = Vec::new();
        let mut to_claim = Vec::with_capacity(ready.len());
        for (d, permit) in ready {
            let open_until = self
                .outbox
                .breakers
                .lock()
                .ok()
                .and_then(|b| b.get(&breaker_key(&d)).and_then(|x| x.open_until))
                .filter(|t| *t > Instant::now());
            match open_until {
                Some(until) => {
                    let next_at = now + until.duration_since(Instant::now()).as_millis() as i64;
                    postponed.push((d.delivery_id, next_at));
                    self.forget_in_flight(d.delivery_id);
                }
                None => to_claim.push((d, permit)),
            }
        }
        let claims: Vec<(i64, i64)> = to_claim
            .iter()
            .map(|(d, _)| (d.delivery_id, d.attempts))
            .collect();
        let lease = self.lease_ms();
        // Claim them (a lease on `next_at`): a stale due-list in another pass cannot send them
        // again, and a sender that crashed mid-attempt leaves them due again when it ends.
        let claimed = self
            .store
            .write(move |tx| {
                db::postpone_deliveries(tx, &postponed)?;
                db::claim_deliveries(tx, &claims, now_ms(), lease)
            })
            .await;
        let claimed: HashSet<i64> = match claimed {
            Ok(ids) => ids.into_iter().collect(),
            Err(e) => {
                for (d, _) in &to_claim {
                    self.forget_in_flight(d.delivery_id);
                }
                return Err(e.to_string());
            }
        };
        let mut started = 0;
        for (d, permit) in to_claim {
            if !claimed.contains(&d.delivery_id) {
                self.forget_in_flight(d.delivery_id);
                continue;
            }
            let me = self.clone();
            tokio::spawn(async move {
                let id = d.delivery_id;
                me.deliver_claimed(d, permit).await;
                me.forget_in_flight(id);
                // A retry may now be due sooner than the worker planned to wake.
                me.wake.notify_one();
            });
            started += 1;
        }
        Ok(started)
    }

    /// One attempt of a claimed delivery. The sender slot (`permit`) is given back as soon as
    /// the attempt is over; recording it waits for a group commit without holding a sender.
    async fn deliver_claimed(&self, d: DueDelivery, permit: tokio::sync::OwnedSemaphorePermit) {
        let key = breaker_key(&d);
        let (id, seen) = (d.delivery_id, d.attempts);
        // A subscription canceled or deleted since the publish receives nothing more.
        if d.kind == "notification" {
            let sub = d.subscription_id.clone();
            let status = self
                .store
                .read(move |c| Ok(db::subscription(c, &sub)?.map(|s| s.status)))
                .await
                .ok()
                .flatten();
            if status != Some(SubscriptionStatus::Confirmed.as_i64()) {
                let at = now_ms();
                let _ = self
                    .store
                    .write(move |tx| {
                        db::record_attempt(
                            tx,
                            id,
                            seen,
                            at,
                            0,
                            "subscription canceled or deleted",
                            &AttemptOutcome::Dead,
                        )
                    })
                    .await;
                return;
            }
        }
        let started = Instant::now();
        let result = self.send(&d).await;
        let latency_ms = started.elapsed().as_millis() as i64;
        drop(permit);
        let at = now_ms();
        let (outcome, text) = match &result {
            Ok(text) => (AttemptOutcome::Delivered, text.clone()),
            Err(Failure::Permanent(reason)) => {
                (AttemptOutcome::Dead, format!("permanent: {reason}"))
            }
            Err(Failure::Retriable(reason)) => {
                let delay = self
                    .config
                    .backoff
                    .delay(d.attempts.max(0) as u32, &mut rand::rng());
                let next_at = at + delay.as_millis() as i64;
                if next_at >= d.expires_at {
                    (
                        AttemptOutcome::Dead,
                        format!("{reason}; time to live expired"),
                    )
                } else {
                    (AttemptOutcome::Retry { next_at }, reason.clone())
                }
            }
        };
        if let Ok(mut breakers) = self.outbox.breakers.lock() {
            let b = breakers.entry(key).or_default();
            // Only failures that say "the endpoint is unwell" count: a permanent rejection of one
            // message (4xx, a bad address) must not pause the endpoint for everyone else.
            if !matches!(result, Err(Failure::Retriable(_))) {
                *b = Breaker::default();
            } else {
                b.failures += 1;
                if b.failures >= BREAKER_FAILURES {
                    b.open_until = Some(Instant::now() + BREAKER_OPEN);
                    b.failures = 0;
                }
            }
        }
        let recorded = self
            .store
            .write(move |tx| db::record_attempt(tx, id, seen, at, latency_ms, &text, &outcome))
            .await;
        if let Err(e) = recorded {
            // The delivery stays pending and is attempted again: at least once, never lost.
            tracing::error!(error = %e, delivery_id = id, "could not record a delivery attempt");
        }
    }

    /// Sends one delivery. `Ok` carries a short result for the attempt log.
    async fn send(&self, d: &DueDelivery) -> Result<String, Failure> {
        let texts: Value = serde_json::from_str(&d.texts).unwrap_or(Value::Null);
        let protocol =
            Protocol::parse(&d.protocol).map_err(|e| Failure::Permanent(e.to_string()))?;
        let text = texts
            .get(protocol.as_str())
            .or_else(|| texts.get("default"))
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_owned();
        let sub_urn = format!("{}:{}", d.topic_urn, d.subscription_id);
        let confirmation = d.kind == "subscription_confirmation";
        match protocol {
            Protocol::Http | Protocol::Https => {
                let body = NotificationBody {
                    message_type: if confirmation {
                        MessageType::SubscriptionConfirmation
                    } else {
                        MessageType::Notification
                    },
                    topic_urn: d.topic_urn.clone(),
                    message_id: d.message_id.clone(),
                    subject: if confirmation {
                        None
                    } else {
                        d.subject.clone()
                    },
                    message: text,
                    subscribe_url: texts
                        .get("subscribe_url")
                        .and_then(Value::as_str)
                        .map(str::to_owned),
                    unsubscribe_url: if confirmation {
                        None
                    } else {
                        Some(self.unsubscribe_url(&sub_urn))
                    },
                    timestamp: chrono::Utc::now(),
                };
                self.send_http(d, &body).await
            }
            Protocol::Email => {
                let display = texts
                    .get("display_name")
                    .and_then(Value::as_str)
                    .unwrap_or("");
                let (subject, body) = if confirmation {
                    (
                        format!("Confirm your subscription to {}", d.topic_urn),
                        text,
                    )
                } else {
                    (
                        d.subject
                            .clone()
                            .unwrap_or_else(|| "SMN notification".into()),
                        format!(
                            "{text}\n\n--\nTo stop receiving these messages, open:\n{}\n",
                            self.unsubscribe_url(&sub_urn)
                        ),
                    )
                };
                let message_id = email_message_id(&d.message_id, d.delivery_id, &self.config);
                self.send_email(&d.endpoint, display, &subject, &body, message_id)
                    .await
            }
            Protocol::Sms => {
                self.send_sms(&d.endpoint, &cut_for(Protocol::Sms, &text))
                    .await
            }
            Protocol::FunctionStage => {
                let Some(functions) = self.functions.get() else {
                    return Err(Failure::Retriable(
                        "the function service is not running".into(),
                    ));
                };
                let delivery = crate::service::FunctionDelivery {
                    project_id: d.project_id.clone(),
                    function_urn: d.endpoint.clone(),
                    subscription_urn: sub_urn,
                    topic_urn: d.topic_urn.clone(),
                    message_id: d.message_id.clone(),
                    subject: d.subject.clone().unwrap_or_default(),
                    message: text,
                    published_at_ms: d.created_at,
                };
                functions
                    .deliver(delivery)
                    .await
                    .map_err(|(retriable, why)| {
                        if retriable {
                            Failure::Retriable(why)
                        } else {
                            Failure::Permanent(why)
                        }
                    })
            }
        }
    }

    async fn send_http(&self, d: &DueDelivery, body: &NotificationBody) -> Result<String, Failure> {
        // Literal addresses never reach the resolver; names are checked there, at connect time.
        self.config
            .outbound
            .check_url(&d.endpoint)
            .map_err(|r| Failure::Permanent(r.to_string()))?;
        let json = body.to_json(&self.signer, &self.signing_cert_url());
        let mut request = self
            .outbox
            .http
            .post(&d.endpoint)
            .header("content-type", "application/json; charset=UTF-8");
        for (k, v) in body.headers() {
            request = request.header(k, v);
        }
        let headers: Vec<(String, String)> = self
            .store
            .read({
                let id = d.subscription_id.clone();
                move |c| Ok(db::subscription(c, &id)?.map(|s| s.headers))
            })
            .await
            .ok()
            .flatten()
            .and_then(|h| serde_json::from_str::<serde_json::Map<String, Value>>(&h).ok())
            .map(|m| {
                m.into_iter()
                    .filter_map(|(k, v)| v.as_str().map(|v| (k, v.to_owned())))
                    .collect()
            })
            .unwrap_or_default();
        for (k, v) in &headers {
            request = request.header(k.as_str(), v.as_str());
        }
        match request.body(json.to_string()).send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match classify_http_status(status) {
                    None => Ok(format!("http {status}")),
                    Some(Failure::Retriable(r)) => {
                        Err(Failure::Retriable(format!("http {status}: {r}")))
                    }
                    Some(Failure::Permanent(r)) => {
                        Err(Failure::Permanent(format!("http {status}: {r}")))
                    }
                }
            }
            Err(e) if e.is_builder() => Err(Failure::Permanent(format!("invalid request: {e}"))),
            Err(e) if with_causes(&e).contains(crate::outbound::REFUSED_MARK) => {
                Err(Failure::Permanent(with_causes(&e)))
            }
            Err(e) => Err(Failure::Retriable(format!(
                "{}: {}",
                if e.is_timeout() {
                    "timeout"
                } else {
                    "connection"
                },
                with_causes(&e)
            ))),
        }
    }

    async fn send_email(
        &self,
        to: &str,
        display_name: &str,
        subject: &str,
        body: &str,
        message_id: String,
    ) -> Result<String, Failure> {
        let (Some(transport), Some(smtp)) = (&self.outbox.smtp, &self.config.smtp) else {
            return Err(Failure::Permanent("no SMTP server is configured".into()));
        };
        let from = if display_name.is_empty() {
            smtp.from.clone()
        } else {
            format!(
                "{} <{}>",
                display_name.replace(['<', '>', '"', '\r', '\n'], ""),
                smtp.from
            )
        };
        let from = from
            .parse()
            .map_err(|e| Failure::Permanent(format!("sender address: {e}")))?;
        let to = to
            .parse()
            .map_err(|e| Failure::Permanent(format!("recipient address: {e}")))?;
        // A Message-ID (RFC 5322 SHOULD): some providers reject or downrank mail without one.
        let message = lettre::Message::builder()
            .message_id(Some(message_id))
            .from(from)
            .to(to)
            .subject(subject)
            .header(lettre::message::header::ContentType::TEXT_PLAIN)
            .body(body.to_owned())
            .map_err(|e| Failure::Permanent(format!("message: {e}")))?;
        match transport.send(message).await {
            Ok(resp) => Ok(format!("smtp {}", resp.code())),
            Err(e) => {
                if let Some(code) = e.status() {
                    let n = u16::from(code.severity as u8) * 100
                        + u16::from(code.category as u8) * 10
                        + u16::from(code.detail as u8);
                    Err(match classify_smtp_code(n) {
                        Failure::Retriable(r) => Failure::Retriable(format!("smtp {n}: {r}: {e}")),
                        Failure::Permanent(r) => Failure::Permanent(format!("smtp {n}: {r}: {e}")),
                    })
                } else {
                    Err(Failure::Retriable(format!("smtp connection: {e}")))
                }
            }
        }
    }

    async fn send_sms(&self, to: &str, text: &str) -> Result<String, Failure> {
        let Some(sms) = &self.config.sms else {
            return Err(Failure::Permanent("no SMS gateway is configured".into()));
        };
        let fill = |t: &str, json_escape: bool| {
            let msg = if json_escape {
                let quoted = Value::String(text.to_owned()).to_string();
                quoted[1..quoted.len() - 1].to_owned()
            } else {
                crate::service::encode(text)
            };
            t.replace("{to}", to).replace("{message}", &msg)
        };
        let url = fill(&sms.url, false);
        self.config
            .outbound
            .check_url(&url)
            .map_err(|r| Failure::Permanent(format!("SMS gateway: {r}")))?;
        let method =
            reqwest::Method::from_bytes(sms.method.as_bytes()).unwrap_or(reqwest::Method::POST);
        let mut request = self.outbox.http.request(method, &url);
        for (k, v) in &sms.headers {
            request = request.header(k.as_str(), v.as_str());
        }
        if !sms.body_template.is_empty() {
            let is_json = sms.body_template.trim_start().starts_with('{');
            request = request.body(fill(&sms.body_template, is_json));
        }
        match request.send().await {
            Ok(resp) => {
                let status = resp.status().as_u16();
                match classify_http_status(status) {
                    None => Ok(format!("gateway {status}")),
                    Some(Failure::Retriable(r)) => {
                        Err(Failure::Retriable(format!("gateway {status}: {r}")))
                    }
                    Some(Failure::Permanent(r)) => {
                        Err(Failure::Permanent(format!("gateway {status}: {r}")))
                    }
                }
            }
            // Without the URL: the operator's gateway URL (often with an API key in it) must not
            // reach tenants through attempt logs and dead letters.
            Err(e) => Err(Failure::Retriable(format!(
                "gateway connection: {}",
                with_causes(&e.without_url())
            ))),
        }
    }
}
