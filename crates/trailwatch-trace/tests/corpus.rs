//! Every CTS trace in the shared real-world corpus must parse, round-trip and keep its extras.
//!
//! The corpus lives outside the repository (`/work/shared/corpus`) and is read at test time;
//! when it is missing the tests say so and pass, so the crate still tests elsewhere.

#![allow(clippy::unwrap_used)]

use std::path::PathBuf;

use trailwatch_trace::{RenderStyle, Trace, TraceRating, Value};

fn corpus_dir() -> Option<PathBuf> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus/huaweicloud-cts");
    if dir.is_dir() {
        Some(dir)
    } else {
        println!(
            "SKIPPED: corpus folder {} does not exist; the corpus tests did not run",
            dir.display()
        );
        None
    }
}

/// Reads one corpus file; None (with a note) when the corpus is not available.
fn load(name: &str) -> Option<Value> {
    let dir = corpus_dir()?;
    let text = std::fs::read_to_string(dir.join(name)).unwrap();
    Some(serde_json::from_str(&text).unwrap())
}

/// The CTS traces a corpus document carries: a ListTraces response's `traces[]`, the `cts`
/// member of a FunctionGraph CTS-trigger event, or a bare trace. Other documents (LTS) have none.
fn traces_in(doc: &Value) -> Vec<Value> {
    if let Some(list) = doc.get("traces").and_then(Value::as_array) {
        list.clone()
    } else if let Some(cts) = doc.get("cts") {
        vec![cts.clone()]
    } else if doc.get("trace_name").is_some() {
        vec![doc.clone()]
    } else {
        Vec::new()
    }
}

/// Parses, checks the Stored round trip and that nothing given was lost.
fn check(raw: &Value, origin: &str) -> Trace {
    let trace =
        Trace::from_value(raw.clone()).unwrap_or_else(|e| panic!("{origin}: does not parse: {e}"));

    let stored = trace.to_value(RenderStyle::Stored);
    let again = Trace::from_value(stored.clone())
        .unwrap_or_else(|e| panic!("{origin}: Stored rendering does not parse: {e}"));
    assert_eq!(
        again, trace,
        "{origin}: Stored round trip changed the trace"
    );

    // Text rendering must agree with the value rendering.
    let text: Value = serde_json::from_str(&trace.to_json_string(RenderStyle::Stored)).unwrap();
    assert_eq!(
        text, stored,
        "{origin}: to_json_string and to_value disagree"
    );

    // Every non-null member given is still there; bodies and extras are byte-for-byte the same.
    let raw_obj = raw.as_object().unwrap();
    let out = stored.as_object().unwrap();
    for (k, v) in raw_obj {
        if v.is_null() {
            continue;
        }
        assert!(out.contains_key(k), "{origin}: member `{k}` was lost");
        if matches!(k.as_str(), "request" | "response" | "message") {
            assert_eq!(&out[k], v, "{origin}: `{k}` changed");
        }
    }
    for (k, v) in &trace.extra {
        assert_eq!(raw_obj.get(k), Some(v), "{origin}: extra `{k}` changed");
    }

    // The v3 list shape parses too (bodies become strings, so it is not equal).
    let v3 = trace.to_value(RenderStyle::CtsV3);
    for body in ["request", "response"] {
        if let Some(b) = v3.get(body) {
            assert!(b.is_string(), "{origin}: CtsV3 `{body}` is not a string");
        }
    }
    Trace::from_value(v3)
        .unwrap_or_else(|e| panic!("{origin}: CtsV3 rendering does not parse: {e}"));
    trace
}

#[test]
fn every_cts_trace_in_the_corpus_parses_and_round_trips() {
    let Some(dir) = corpus_dir() else { return };
    let mut names: Vec<_> = std::fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "json"))
        .collect();
    names.sort();
    let mut count = 0;
    for path in names {
        let doc: Value = serde_json::from_str(&std::fs::read_to_string(&path).unwrap())
            .unwrap_or_else(|e| panic!("{}: not JSON: {e}", path.display()));
        for (i, raw) in traces_in(&doc).iter().enumerate() {
            check(raw, &format!("{}#{i}", path.display()));
            count += 1;
        }
    }
    // ListTraces (2), two otc-docs examples, the IAM fixture and two FunctionGraph events.
    assert!(count >= 7, "only {count} traces found in {}", dir.display());
}

#[test]
fn list_traces_response() {
    let Some(doc) = load("otc-docs_cts-v3_ListTraces_response.json") else {
        return;
    };
    let traces = traces_in(&doc);
    assert_eq!(traces.len(), 2);
    for (i, raw) in traces.iter().enumerate() {
        let t = check(raw, &format!("ListTraces#{i}"));
        assert_eq!(t.code.as_deref(), Some("200"));
        assert_eq!(t.trace_rating, TraceRating::Warning);
        assert_eq!(t.trace_name, "deleteEip");
        assert_eq!(t.time, 1_472_148_708_232);
        assert_eq!(t.record_time, Some(1_481_066_128_032));
        assert_eq!(t.source_ip, None);
        assert_eq!(t.user_name(), Some("xxx"));
        assert_eq!(t.response.as_ref().unwrap()["code"], "VPC.0514");
        assert!(t.extra.is_empty());
    }
    // The marker is the trace_id of the last returned trace.
    let last = Trace::from_value(traces[1].clone()).unwrap();
    assert_eq!(
        last.trace_id.as_deref(),
        doc["meta_data"]["marker"].as_str()
    );
}

#[test]
fn ecs_example_with_console_time_and_empty_source_ip() {
    let Some(doc) = load("otc-docs_example-trace_ECS_createSingleServer.json") else {
        return;
    };
    let t = check(&doc, "ECS example");
    assert_eq!(t.time, 1_481_166_448_000);
    assert_eq!(t.record_time, Some(1_481_166_448_000));
    assert_eq!(t.trace_type, "SystemAction");
    assert_eq!(t.source_ip.as_deref(), Some(""));
    assert_eq!(t.source_addr(), None);
    assert_eq!(t.user_name(), Some("aaa/op_service"));
    // Nulls inside the request body are data, not "absent" fields.
    let nic = &t.request.as_ref().unwrap()["server"]["nics"][0];
    assert!(nic["nictype"].is_null());
}

#[test]
fn evs_example() {
    let Some(doc) = load("otc-docs_example-trace_EVS_deleteVolume.json") else {
        return;
    };
    let t = check(&doc, "EVS example");
    // 2016/12/08 11:24:04 GMT+08:00 = 03:24:04 UTC.
    assert_eq!(t.time, 1_481_167_444_000);
    assert_eq!(t.source_addr(), "10.146.230.124".parse().ok());
    assert_eq!(t.request, Some(Value::from("")));
}

#[test]
fn functiongraph_create_function_event() {
    let Some(doc) = load("otc-fg_cts-trigger-event_createFunction.json") else {
        return;
    };
    let t = check(&doc["cts"], "FG createFunction");
    assert_eq!(t.code.as_deref(), Some("0"));
    assert_eq!(t.trace_rating, TraceRating::Normal);
    assert_eq!(t.extra.get("trace_status"), Some(&Value::from("normal")));
    assert_eq!(t.request, Some(serde_json::json!({})));
    assert_eq!(t.read_only, Some(false));
    assert_eq!(t.operation_id.as_deref(), Some("CreateFunction"));
    assert_eq!(t.resource_account_id.as_deref(), Some(""));
    assert_eq!(t.time, 1_765_788_999_507);
    assert_eq!(t.source_addr(), "62.156.151.4".parse().ok());
    let user = t.user.as_ref().unwrap();
    assert_eq!(
        user.domain.as_ref().unwrap().name.as_deref(),
        Some("OTC00000000001000100974")
    );
    // Stored is the FunctionGraph event shape: objects stay objects.
    assert_eq!(
        t.to_value(RenderStyle::Stored)["request"],
        serde_json::json!({})
    );
    assert_eq!(t.to_value(RenderStyle::CtsV3)["request"], "{}");
}

#[test]
fn functiongraph_template_with_seconds_and_trace_status_only() {
    let Some(doc) = load("otc-fg_cts-trigger-event_template_deleteGraph.json") else {
        return;
    };
    let t = check(&doc["cts"], "FG deleteGraph template");
    assert_eq!(t.time, 1_529_996_047_000);
    assert_eq!(t.record_time, Some(1_529_996_047_000));
    assert_eq!(t.code.as_deref(), Some("204"));
    assert_eq!(t.trace_rating, TraceRating::Normal);
    assert_eq!(t.extra.get("trace_status"), Some(&Value::from("normal")));
    assert_eq!(t.source_ip, None);
}

#[test]
fn otcextensions_login_fixture_with_string_user() {
    let Some(doc) = load("otcextensions_unit-test-fixture_IAM_login_trace.json") else {
        return;
    };
    let t = check(&doc, "otcextensions fixture");
    assert_eq!(t.user_name(), Some("{some crazy used struct}"));
    assert_eq!(t.user.as_ref().unwrap().id, None);
    assert_eq!(t.code.as_deref(), Some("302"));
    assert_eq!(t.trace_name, "login");
    assert_eq!(t.source_addr(), "8.8.8.8".parse().ok());
    // The legacy string comes back as an object.
    assert_eq!(
        t.to_value(RenderStyle::Stored)["user"],
        serde_json::json!({"name": "{some crazy used struct}"})
    );
}

#[test]
fn lts_documents_carry_no_traces() {
    for name in [
        "otc-fg_lts-trigger-event.json",
        "otc-docs_lts_query-logs_response.json",
    ] {
        let Some(doc) = load(name) else { return };
        assert!(traces_in(&doc).is_empty(), "{name}");
    }
}
