//! Helpers shared by the append tests: deterministic calls and the exactly-once check.

#![allow(dead_code)]

pub mod moto;

use std::collections::HashMap;

/// The lines of call `call` of writer `writer`: 1 to 3 lines, unique across all calls.
pub fn lines_for(writer: usize, call: usize) -> Vec<String> {
    (0..(call % 3 + 1))
        .map(|l| format!("w{writer}-c{call}-l{l} alarm: login from 203.0.113.{writer}"))
        .collect()
}

/// The idempotency key of a call.
pub fn key_for(writer: usize, call: usize) -> String {
    format!("invocation-w{writer}-c{call}")
}

/// Asserts that `text` holds exactly the lines of `calls` (writer, call): every line exactly
/// once, nothing else, and each call's lines contiguous and in order.
pub fn assert_exactly_once(text: &str, calls: &[(usize, usize)]) {
    assert!(
        text.is_empty() || text.ends_with('\n'),
        "object must end with a newline"
    );
    let lines: Vec<&str> = text.lines().collect();
    let mut position: HashMap<&str, usize> = HashMap::new();
    for (i, line) in lines.iter().enumerate() {
        if let Some(first) = position.insert(line, i) {
            panic!("line {line:?} appears twice (lines {first} and {i})");
        }
    }
    let mut expected_total = 0;
    for &(w, c) in calls {
        let call_lines = lines_for(w, c);
        expected_total += call_lines.len();
        let positions: Vec<usize> = call_lines
            .iter()
            .map(|l| {
                *position
                    .get(l.as_str())
                    .unwrap_or_else(|| panic!("line {l:?} of call w{w}-c{c} is missing"))
            })
            .collect();
        for pair in positions.windows(2) {
            assert_eq!(
                pair[1],
                pair[0] + 1,
                "lines of call w{w}-c{c} are not contiguous: {positions:?}"
            );
        }
    }
    assert_eq!(
        lines.len(),
        expected_total,
        "the object has lines that no call wrote"
    );
}

/// The calls (writer, call) in the order their lines appear in `text`.
pub fn calls_in_order(text: &str) -> Vec<(usize, usize)> {
    let mut out: Vec<(usize, usize)> = Vec::new();
    for line in text.lines() {
        let id = line.split_whitespace().next().unwrap_or_default();
        let mut parts = id.split('-');
        let w = parts.next().and_then(|p| p.strip_prefix('w')?.parse().ok());
        let c = parts.next().and_then(|p| p.strip_prefix('c')?.parse().ok());
        if let (Some(w), Some(c)) = (w, c)
            && out.last() != Some(&(w, c))
        {
            out.push((w, c));
        }
    }
    out
}
