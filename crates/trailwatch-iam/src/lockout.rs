//! Consecutive-failure lockout, as the API gateway applies to AKs (5 failures → 5 min, §7.2) and
//! IAM to user logins.
//!
//! The clock is an argument everywhere, so behaviour is deterministic under test.

use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard};

/// Above this many tracked keys, idle entries are evicted so an attacker spraying random keys
/// cannot grow the map without bound.
const MAX_ENTRIES: usize = 100_000;

/// The key is locked until this instant (unix ms, exclusive).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LockedUntil(pub i64);

#[derive(Debug, Clone, Copy)]
struct State {
    failures: u32,
    locked_until: Option<i64>,
    last_seen: i64,
}

/// After `max_failures` consecutive failures for a key, the key is locked for `lock_ms`; a success
/// resets the count.
///
/// Keys are whatever the caller rate-limits on (an AK, `domain/user`, …). Thread-safe; share it
/// behind an `Arc`.
#[derive(Debug)]
pub struct Lockout {
    max_failures: u32,
    lock_ms: i64,
    entries: Mutex<HashMap<String, State>>,
}

impl Lockout {
    /// Locks a key for `lock_ms` after `max_failures` consecutive failures (a `max_failures` of 0
    /// behaves like 1).
    pub fn new(max_failures: u32, lock_ms: i64) -> Self {
        Lockout {
            max_failures: max_failures.max(1),
            lock_ms: lock_ms.max(0),
            entries: Mutex::new(HashMap::new()),
        }
    }

    /// The map holds only counters, which stay consistent even if a holder panicked, so a
    /// poisoned lock is simply taken over.
    fn entries(&self) -> MutexGuard<'_, HashMap<String, State>> {
        self.entries
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// `Err` while `key` is locked at `now_ms`. Call before checking credentials.
    pub fn check(&self, key: &str, now_ms: i64) -> Result<(), LockedUntil> {
        match self.entries().get(key).and_then(|s| s.locked_until) {
            Some(until) if now_ms < until => Err(LockedUntil(until)),
            _ => Ok(()),
        }
    }

    /// Records a failed attempt. Returns `Some` exactly when this failure locks the key.
    ///
    /// Failures while the key is already locked neither extend the lock nor count towards the next
    /// one (callers should have refused them via [`Lockout::check`]).
    pub fn record_failure(&self, key: &str, now_ms: i64) -> Option<LockedUntil> {
        let mut entries = self.entries();
        if !entries.contains_key(key) && entries.len() >= MAX_ENTRIES {
            self.evict(&mut entries, now_ms);
        }
        let state = entries.entry(key.to_owned()).or_insert(State {
            failures: 0,
            locked_until: None,
            last_seen: now_ms,
        });
        match state.locked_until {
            Some(until) if now_ms < until => return None,
            // A served lock wipes the slate: the next lock needs a full new run of failures.
            Some(_) => {
                state.locked_until = None;
                state.failures = 0;
            }
            None => {}
        }
        state.last_seen = now_ms;
        state.failures = state.failures.saturating_add(1);
        if state.failures >= self.max_failures {
            let until = now_ms.saturating_add(self.lock_ms);
            state.locked_until = Some(until);
            state.failures = 0;
            Some(LockedUntil(until))
        } else {
            None
        }
    }

    /// Records a successful attempt, clearing the key's failure count.
    pub fn record_success(&self, key: &str) {
        self.entries().remove(key);
    }

    /// Drops entries idle for more than `lock_ms` (their lock, if any, has expired). If the map is
    /// still full, also drops unlocked entries: losing a partial failure count is better than
    /// unbounded memory, and active locks are kept.
    fn evict(&self, entries: &mut HashMap<String, State>, now_ms: i64) {
        let horizon = now_ms.saturating_sub(self.lock_ms);
        entries.retain(|_, s| s.last_seen >= horizon);
        if entries.len() >= MAX_ENTRIES {
            entries.retain(|_, s| s.locked_until.is_some_and(|until| now_ms < until));
        }
    }

    #[cfg(test)]
    fn len(&self) -> usize {
        self.entries().len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const FIVE_MIN: i64 = 5 * 60 * 1000;

    #[test]
    fn fifth_failure_locks_for_five_minutes() {
        let l = Lockout::new(5, FIVE_MIN);
        let t0 = 1_000_000;
        for i in 0..4 {
            assert_eq!(l.record_failure("AK", t0 + i), None);
            assert_eq!(l.check("AK", t0 + i), Ok(()));
        }
        let locked = l.record_failure("AK", t0 + 4);
        assert_eq!(locked, Some(LockedUntil(t0 + 4 + FIVE_MIN)));
        assert_eq!(l.check("AK", t0 + 5), Err(LockedUntil(t0 + 4 + FIVE_MIN)));
        assert_eq!(
            l.check("AK", t0 + 4 + FIVE_MIN - 1),
            Err(LockedUntil(t0 + 4 + FIVE_MIN))
        );
        assert_eq!(l.check("AK", t0 + 4 + FIVE_MIN), Ok(()));
        // Other keys are unaffected.
        assert_eq!(l.check("other", t0 + 5), Ok(()));
    }

    #[test]
    fn failures_during_lock_do_not_extend_it() {
        let l = Lockout::new(5, FIVE_MIN);
        for i in 0..5 {
            l.record_failure("AK", i);
        }
        assert_eq!(l.record_failure("AK", 100), None);
        assert_eq!(l.check("AK", 4 + FIVE_MIN), Ok(()));
    }

    #[test]
    fn after_lock_expires_a_full_new_run_is_needed() {
        let l = Lockout::new(5, FIVE_MIN);
        for i in 0..5 {
            l.record_failure("AK", i);
        }
        let after = 10 + FIVE_MIN;
        for i in 0..4 {
            assert_eq!(l.record_failure("AK", after + i), None);
        }
        assert_eq!(l.check("AK", after + 4), Ok(()));
        assert_eq!(
            l.record_failure("AK", after + 4),
            Some(LockedUntil(after + 4 + FIVE_MIN))
        );
    }

    #[test]
    fn success_resets() {
        let l = Lockout::new(5, FIVE_MIN);
        for i in 0..4 {
            l.record_failure("AK", i);
        }
        l.record_success("AK");
        for i in 0..4 {
            assert_eq!(l.record_failure("AK", 10 + i), None);
        }
        assert_eq!(l.check("AK", 20), Ok(()));
        assert!(l.record_failure("AK", 21).is_some());
    }

    #[test]
    fn bounded_by_eviction() {
        let l = Lockout::new(5, FIVE_MIN);
        for i in 0..MAX_ENTRIES {
            l.record_failure(&format!("k{i}"), 0);
        }
        // Lock one key so we can see active locks survive.
        for _ in 0..4 {
            l.record_failure("k0", 2);
        }
        assert_eq!(l.len(), MAX_ENTRIES);
        // Everything but k0 (touched at t=2 and locked) is idle for > lock_ms at this point.
        let later = FIVE_MIN + 1;
        l.record_failure("new", later);
        assert_eq!(l.len(), 2);
        assert!(l.check("k0", later).is_err());

        // Map full of recently active unlocked keys: those are dropped, locks kept.
        let l = Lockout::new(5, FIVE_MIN);
        for i in 0..MAX_ENTRIES {
            l.record_failure(&format!("k{i}"), 0);
        }
        for _ in 0..4 {
            l.record_failure("k1", 0);
        }
        l.record_failure("new", 1);
        assert_eq!(l.len(), 2);
        assert!(l.check("k1", 1).is_err());
    }
}
