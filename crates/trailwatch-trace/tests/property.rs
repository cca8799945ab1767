//! Property-style round-trip check over many generated traces, using a tiny seeded PRNG
//! instead of a proptest dependency (failures are reproducible from the printed seed).

#![allow(clippy::unwrap_used)]

use serde_json::{Map, Value, json};
use trailwatch_trace::{DomainRef, RenderStyle, Trace, TraceRating, UserInfo};

/// xorshift64*: small, deterministic and good enough to vary test inputs.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
    fn coin(&mut self) -> bool {
        self.below(2) == 0
    }
    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[usize::try_from(self.below(items.len() as u64)).unwrap()]
    }
    fn text(&mut self) -> String {
        let alphabet = [
            "a", "Z", "0", " ", "-", "é", "\"", "\\", "\n", "{", "ü", "/", "漢",
        ];
        (0..self.below(12)).map(|_| self.pick(&alphabet)).collect()
    }
    fn opt_text(&mut self) -> Option<String> {
        self.coin().then(|| self.text())
    }
    fn json(&mut self, depth: u32) -> Value {
        match self.below(if depth == 0 { 4 } else { 6 }) {
            0 => Value::from(self.text()),
            1 => Value::from(self.next() as i64),
            2 => Value::Bool(self.coin()),
            3 => Value::Null,
            4 => Value::Array((0..self.below(3)).map(|_| self.json(depth - 1)).collect()),
            _ => Value::Object(self.map(depth - 1)),
        }
    }
    fn map(&mut self, depth: u32) -> Map<String, Value> {
        (0..self.below(4))
            .map(|i| (format!("x_{i}_{}", self.below(100)), self.json(depth)))
            .collect()
    }
}

fn generate(r: &mut Rng) -> Trace {
    let name_chars = "abcXYZ019._-";
    let trace_name: String = std::iter::once('a')
        .chain((0..r.below(20)).map(|_| {
            let i = usize::try_from(r.below(name_chars.len() as u64)).unwrap();
            char::from(name_chars.as_bytes()[i])
        }))
        .collect();
    let ips = [
        "",
        "10.0.0.1",
        "::ffff:192.0.2.1",
        "2001:db8::7",
        "255.255.255.255",
    ];
    let user = match r.below(3) {
        0 => None,
        1 => Some(UserInfo {
            name: r.opt_text(),
            ..UserInfo::default()
        }),
        _ => Some(UserInfo {
            id: r.opt_text(),
            name: r.opt_text(),
            domain: r.coin().then(|| DomainRef {
                id: r.opt_text(),
                name: r.opt_text(),
                extra: r.map(1),
            }),
            extra: r.map(2),
        }),
    };
    // Times are kept at or above the seconds threshold: smaller millisecond values cannot
    // round-trip by design (they are read back as seconds).
    let time = |r: &mut Rng| i64::try_from(100_000_000_000 + r.below(5_000_000_000_000)).unwrap();
    let non_null = |r: &mut Rng| loop {
        let v = r.json(2);
        if !v.is_null() {
            break v;
        }
    };
    Trace {
        trace_id: r.coin().then(|| format!("{:x}-{:x}", r.next(), r.next())),
        trace_name,
        trace_rating: TraceRating::ALL[usize::try_from(r.below(3)).unwrap()],
        trace_type: r
            .pick(&["ConsoleAction", "ApiCall", "SystemAction", "ObsSDK"])
            .into(),
        service_type: r.pick(&["IAM", "CTS", "FunctionGraph"]).into(),
        resource_type: r.pick(&["user", "tracker", "Functions"]).into(),
        resource_name: r.opt_text(),
        resource_id: r.opt_text(),
        source_ip: r.coin().then(|| r.pick(&ips).to_owned()),
        code: r.coin().then(|| r.below(600).to_string()),
        api_version: r.opt_text(),
        message: r.coin().then(|| non_null(r)),
        request: r.coin().then(|| non_null(r)),
        response: r.coin().then(|| non_null(r)),
        time: time(r),
        record_time: r.coin().then(|| time(r)),
        user,
        request_id: r.opt_text(),
        location_info: r.opt_text(),
        endpoint: r.opt_text(),
        resource_url: r.opt_text(),
        enterprise_project_id: r.opt_text(),
        resource_account_id: r.opt_text(),
        read_only: r.coin().then(|| r.coin()),
        operation_id: r.opt_text(),
        tracker_name: r.opt_text(),
        event_type: r.opt_text(),
        project_id: r.opt_text(),
        domain_id: r.opt_text(),
        user_agent: r.opt_text(),
        extra: r.map(2),
    }
}

#[test]
fn generated_traces_round_trip() {
    for seed in 1..=2000_u64 {
        let mut r = Rng(seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1);
        let t = generate(&mut r);
        let via_value = Trace::from_value(t.to_value(RenderStyle::Stored));
        assert_eq!(via_value.as_ref(), Ok(&t), "seed {seed}");
        let text = t.to_json_string(RenderStyle::Stored);
        assert_eq!(
            Trace::from_json_str(&text).as_ref(),
            Ok(&t),
            "seed {seed}: {text}"
        );
        // The v3 shape always parses, with string bodies.
        let v3 = Trace::from_json_str(&t.to_json_string(RenderStyle::CtsV3)).unwrap();
        for body in [&v3.request, &v3.response] {
            assert!(body.as_ref().is_none_or(Value::is_string), "seed {seed}");
        }
        assert_eq!(v3.message, t.message, "seed {seed}");
    }
}

#[test]
fn parsing_arbitrary_objects_never_panics() {
    // Random members with random values: the parser must return Ok or Err, never panic.
    let keys = [
        "trace_id",
        "trace_name",
        "trace_rating",
        "trace_type",
        "service_type",
        "resource_type",
        "source_ip",
        "code",
        "time",
        "record_time",
        "user",
        "read_only",
        "trace_status",
    ];
    let mut r = Rng(0x1234_5678_9ABC_DEF1);
    let mut ok = 0;
    for _ in 0..5000 {
        let mut v = json!({
            "trace_name": "login", "trace_type": "ApiCall", "service_type": "IAM",
            "resource_type": "user", "time": 1_700_000_000_000_i64
        });
        for _ in 0..r.below(3) {
            let k = r.pick(&keys);
            v[k] = r.json(2);
        }
        if Trace::from_value(v).is_ok() {
            ok += 1;
        }
    }
    assert!(ok > 0);
}
