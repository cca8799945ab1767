//! When to try a failed delivery again: a per-channel "is this retriable?" and one validated
//! backoff policy for "when?". The outbox stores the attempt count and the next time itself; this
//! module only computes.

use std::fmt;
use std::time::Duration;

/// The longest base or cap a policy may have. Longer waits outlive any message's
/// `time_to_live` (at most 7 days) by too little to be useful and usually mean a unit mistake.
pub const MAX_BACKOFF: Duration = Duration::from_secs(24 * 60 * 60);

/// Exponential backoff with full jitter: `delay(attempt)` is uniformly random in
/// `[0, min(cap, base * 2^attempt)]`. Full jitter spreads the retries of many deliveries that
/// failed together (one receiver down) instead of sending them back in waves.
///
/// Validated: `base > 0`, `cap ≥ base`, `cap ≤ 1 day`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    base: Duration,
    cap: Duration,
}

impl Backoff {
    /// A policy; an error says which bound was broken.
    pub fn new(base: Duration, cap: Duration) -> Result<Backoff, String> {
        if base.is_zero() {
            return Err("backoff base must be greater than zero".into());
        }
        if cap < base {
            return Err(format!(
                "backoff cap ({cap:?}) must be at least the base ({base:?})"
            ));
        }
        if cap > MAX_BACKOFF {
            return Err(format!("backoff cap ({cap:?}) must be at most 1 day"));
        }
        Ok(Backoff { base, cap })
    }

    /// The first attempt's upper bound.
    pub fn base(&self) -> Duration {
        self.base
    }

    /// The largest delay ever returned.
    pub fn cap(&self) -> Duration {
        self.cap
    }

    /// The upper bound of the delay after failed attempt number `attempt` (0-based):
    /// `min(cap, base * 2^attempt)`, without overflow for any `attempt`.
    pub fn max_delay(&self, attempt: u32) -> Duration {
        1u32.checked_shl(attempt)
            .and_then(|factor| self.base.checked_mul(factor))
            .map_or(self.cap, |d| d.min(self.cap))
    }

    /// A random delay in `[0, max_delay(attempt)]`.
    pub fn delay(&self, attempt: u32, rng: &mut impl rand::Rng) -> Duration {
        // The cap is at most one day, about 8.6e13 ns, far inside u64.
        let max = u64::try_from(self.max_delay(attempt).as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(rng.random_range(0..=max))
    }
}

impl Default for Backoff {
    /// Base 1 s, cap 5 min.
    fn default() -> Self {
        Backoff {
            base: Duration::from_secs(1),
            cap: Duration::from_secs(300),
        }
    }
}

/// Classification of one delivery attempt's failure, per channel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Failure {
    /// Worth another attempt later (the receiver may recover): connection errors, timeouts,
    /// overload.
    Retriable(String),
    /// Another attempt would fail the same way: the delivery is given up.
    Permanent(String),
}

impl Failure {
    /// True for [`Failure::Retriable`].
    pub fn is_retriable(&self) -> bool {
        matches!(self, Failure::Retriable(_))
    }

    /// The reason, for logs and the delivery record.
    pub fn reason(&self) -> &str {
        match self {
            Failure::Retriable(r) | Failure::Permanent(r) => r,
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Failure::Retriable(r) => write!(f, "retriable: {r}"),
            Failure::Permanent(r) => write!(f, "permanent: {r}"),
        }
    }
}

/// Classifies an HTTP response status: `None` for 2xx (success); 408, 429 and 5xx are
/// retriable; other 4xx are permanent; 3xx is permanent because redirects are never followed
/// (following them would let a receiver point our signed POSTs anywhere). A 1xx final status is
/// a receiver glitch and retriable; numbers outside 100..=599 are not HTTP and are permanent.
///
/// Connection errors and timeouts never reach a status: the deliverer reports them as
/// [`Failure::Retriable`] directly.
pub fn classify_http_status(status: u16) -> Option<Failure> {
    match status {
        200..=299 => None,
        408 | 429 | 500..=599 => Some(Failure::Retriable(format!("HTTP status {status}"))),
        300..=399 => Some(Failure::Permanent(format!(
            "HTTP status {status}: redirects are not followed"
        ))),
        400..=499 => Some(Failure::Permanent(format!("HTTP status {status}"))),
        100..=199 => Some(Failure::Retriable(format!(
            "HTTP status {status} as a final response"
        ))),
        _ => Some(Failure::Permanent(format!("invalid HTTP status {status}"))),
    }
}

/// Classifies an SMTP reply code that ended a delivery attempt: 4xx (transient negative
/// completion, e.g. 421, 450, 451) is retriable; 5xx (permanent negative completion) and any
/// other code, which means the server broke the protocol, are permanent.
pub fn classify_smtp_code(code: u16) -> Failure {
    match code {
        400..=499 => Failure::Retriable(format!("SMTP reply {code}")),
        500..=599 => Failure::Permanent(format!("SMTP reply {code}")),
        _ => Failure::Permanent(format!("unexpected SMTP reply {code}")),
    }
}
