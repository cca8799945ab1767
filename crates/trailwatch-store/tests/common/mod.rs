//! Helpers shared by the store's integration tests.
#![allow(dead_code, clippy::unwrap_used)]

use std::path::Path;

use serde_json::{Value, json};
use trailwatch_store::{NewTrace, Store, StoreOptions, StoredTrace, now_ms};
use trailwatch_trace::Trace;

/// Opens a store in `dir` with the default options.
pub fn open(dir: &Path) -> Store {
    Store::open(StoreOptions::new(dir)).unwrap()
}

/// Parses `v` as a trace, fills the ingest defaults and builds the append row.
pub fn new_trace(v: Value) -> NewTrace {
    let now = now_ms();
    let mut t = Trace::from_value(v).unwrap();
    t.fill_defaults(now);
    NewTrace::from_trace(&t, now)
}

/// A minimal valid trace with the given id and time (ms).
pub fn simple(id: &str, time: i64) -> NewTrace {
    new_trace(json!({
        "trace_id": id,
        "trace_name": "createServer",
        "trace_type": "ConsoleAction",
        "service_type": "ECS",
        "resource_type": "server",
        "time": time,
    }))
}

/// A fixed, plausible millisecond timestamp (2023-11-14).
pub const T0: i64 = 1_700_000_000_000;

/// Every stored trace, in seq order.
pub async fn all_traces(store: &Store) -> Vec<StoredTrace> {
    store.read_after(0, usize::MAX >> 1).await.unwrap()
}

/// A small deterministic PRNG (splitmix64), so that failures are reproducible from the seed.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    /// The seed from `TW_TEST_SEED` if set, else `default`.
    pub fn seed_from_env(default: u64) -> u64 {
        std::env::var("TW_TEST_SEED")
            .ok()
            .and_then(|s| s.parse().ok())
            .unwrap_or(default)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in `0..n` (n > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }

    /// True with probability `percent`/100.
    pub fn chance(&mut self, percent: u64) -> bool {
        self.below(100) < percent
    }

    pub fn pick<'a, T>(&mut self, xs: &'a [T]) -> &'a T {
        &xs[self.below(xs.len() as u64) as usize]
    }
}
