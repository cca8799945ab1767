#![allow(clippy::unwrap_used)]

use std::time::Duration;

use rand::SeedableRng;
use rand::rngs::StdRng;
use trailwatch_notify::{Backoff, Failure, classify_http_status, classify_smtp_code};

const S: Duration = Duration::from_secs(1);

#[test]
fn default_policy() {
    let b = Backoff::default();
    assert_eq!(b.base(), S);
    assert_eq!(b.cap(), Duration::from_secs(300));
    assert_eq!(Backoff::new(S, Duration::from_secs(300)).unwrap(), b);
}

#[test]
fn invalid_policies_are_rejected() {
    let day = Duration::from_secs(86_400);
    for (base, cap, reason) in [
        (Duration::ZERO, S, "greater than zero"),
        (Duration::ZERO, Duration::ZERO, "greater than zero"),
        (Duration::from_secs(2), S, "at least the base"),
        (S, day + Duration::from_nanos(1), "at most 1 day"),
        (day * 2, day * 3, "at most 1 day"),
    ] {
        let e = Backoff::new(base, cap).unwrap_err();
        assert!(e.contains(reason), "{e}");
    }
    assert!(Backoff::new(S, S).is_ok());
    assert!(Backoff::new(Duration::from_nanos(1), day).is_ok());
    assert!(Backoff::new(day, day).is_ok());
}

#[test]
fn max_delay_doubles_up_to_the_cap() {
    let b = Backoff::new(Duration::from_millis(500), Duration::from_secs(60)).unwrap();
    let want_ms = [500, 1000, 2000, 4000, 8000, 16_000, 32_000, 60_000, 60_000];
    for (attempt, ms) in want_ms.into_iter().enumerate() {
        assert_eq!(
            b.max_delay(u32::try_from(attempt).unwrap()),
            Duration::from_millis(ms)
        );
    }
    // Huge attempt numbers saturate at the cap instead of overflowing.
    for attempt in [31, 32, 33, 63, 64, 1000, u32::MAX] {
        assert_eq!(b.max_delay(attempt), Duration::from_secs(60));
    }
    let day = Backoff::new(Duration::from_secs(86_400), Duration::from_secs(86_400)).unwrap();
    assert_eq!(day.max_delay(u32::MAX), Duration::from_secs(86_400));
}

#[test]
fn full_jitter_stays_in_bounds_with_mean_near_half() {
    let b = Backoff::default();
    let mut rng = StdRng::seed_from_u64(0x5eed);
    for attempt in [0, 1, 3, 8, 9, 20, 100] {
        let max = b.max_delay(attempt);
        let n = 20_000u32;
        let mut sum = Duration::ZERO;
        let mut low = max;
        let mut high = Duration::ZERO;
        for _ in 0..n {
            let d = b.delay(attempt, &mut rng);
            assert!(d <= max, "attempt {attempt}: {d:?} > {max:?}");
            assert!(d <= b.cap());
            sum += d;
            low = low.min(d);
            high = high.max(d);
        }
        let mean = (sum / n).as_secs_f64();
        let half = max.as_secs_f64() / 2.0;
        assert!(
            (mean - half).abs() < half * 0.03,
            "attempt {attempt}: mean {mean} vs {half}"
        );
        // Full jitter really spans the range.
        assert!(low.as_secs_f64() < max.as_secs_f64() * 0.01, "{low:?}");
        assert!(high.as_secs_f64() > max.as_secs_f64() * 0.99, "{high:?}");
    }
}

#[test]
fn http_statuses() {
    for ok in [200, 201, 202, 204, 299] {
        assert_eq!(classify_http_status(ok), None, "{ok}");
    }
    for retriable in [408, 429, 500, 502, 503, 504, 599, 100, 199] {
        let f = classify_http_status(retriable).unwrap();
        assert!(f.is_retriable(), "{retriable}: {f}");
        assert!(f.reason().contains(&retriable.to_string()));
    }
    for permanent in [
        300, 301, 302, 307, 308, 400, 401, 403, 404, 405, 410, 413, 422, 499, 0, 99, 600, 999,
    ] {
        let f = classify_http_status(permanent).unwrap();
        assert!(matches!(f, Failure::Permanent(_)), "{permanent}: {f}");
    }
    let redirect = classify_http_status(302).unwrap();
    assert!(redirect.reason().contains("redirects are not followed"));
}

#[test]
fn smtp_codes() {
    for retriable in [421, 450, 451, 452, 454] {
        let f = classify_smtp_code(retriable);
        assert!(f.is_retriable(), "{retriable}");
        assert_eq!(f.to_string(), format!("retriable: SMTP reply {retriable}"));
    }
    for permanent in [500, 501, 550, 552, 553, 554, 250, 354, 0] {
        assert!(
            matches!(classify_smtp_code(permanent), Failure::Permanent(_)),
            "{permanent}"
        );
    }
}
