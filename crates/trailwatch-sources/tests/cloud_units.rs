//! Edge cases of the cloud parsers, over this repository's own fixtures (`tests/data/cloud/`,
//! written for these tests) and inline records.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use trailwatch_sources::Parsed;
use trailwatch_sources::cloud::{cloudtrail, generic, k8s, windows};

fn fixture(name: &str) -> String {
    let p = format!("{}/tests/data/cloud/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"))
}

fn valid(p: &Parsed) {
    for t in &p.traces {
        let tr = trailwatch_trace::Trace::from_value(t.clone())
            .unwrap_or_else(|e| panic!("invalid trace {e}: {t}"));
        assert!(tr.trace_id.as_deref().is_some_and(|s| !s.is_empty()));
        assert!(t["request"].is_string());
    }
}

fn names(p: &Parsed) -> Vec<&str> {
    p.traces
        .iter()
        .map(|t| t["trace_name"].as_str().unwrap())
        .collect()
}

fn lines(p: &Parsed) -> Vec<u64> {
    p.problems.iter().map(|p| p.line).collect()
}

#[test]
fn cloudtrail_edge_cases() {
    let text = fixture("cloudtrail_edge.jsonl");
    let p = cloudtrail::parse(&text);
    valid(&p);
    assert_eq!(names(&p), ["login", "loginfailed", "GetObject", "Decrypt"]);
    // Line 3 is blank; 6: no eventTime, 7: not an object, 8: truncated, 9: bad time, 10: bad name.
    assert_eq!(lines(&p), [6, 7, 8, 9, 10], "{:?}", p.problems);
    assert!(p.problems[0].reason.contains("eventTime"));
    assert!(p.problems[1].reason.contains("not a JSON object"));
    let [ok, failed, denied, kms] = &p.traces[..] else {
        unreachable!()
    };
    assert_eq!(ok["source_ip"], "2001:db8::7"); // IPv6
    assert_eq!(ok["trace_type"], "ConsoleAction");
    assert_eq!(ok["service_type"], "SIGNIN");
    assert_eq!(ok["resource_type"], "user");
    assert_eq!(ok["resource_name"], "alice");
    assert_eq!(ok["user"]["name"], "alice");
    assert_eq!(ok["user"]["id"], "AIDAEXAMPLE1");
    assert_eq!(ok["user"]["domain"]["id"], "111122223333");
    assert_eq!(ok["trace_id"], "11111111-1111-1111-1111-111111111111");
    assert_eq!(ok["time"], 1_767_323_045_000_i64);
    assert_eq!(ok["code"], "200");
    assert_eq!(ok["read_only"], false);
    assert_eq!(ok["trace_rating"], "normal");
    assert_eq!(failed["trace_rating"], "warning");
    assert_eq!(failed["code"], "401");
    assert_eq!(failed["message"], "Failed authentication");
    assert_eq!(denied["service_type"], "S3");
    assert_eq!(denied["resource_type"], "AWS::S3::Object");
    assert_eq!(denied["resource_name"], "arn:aws:s3:::bucket/key");
    assert_eq!(denied["code"], "AccessDenied");
    assert_eq!(denied["trace_rating"], "warning");
    assert_eq!(denied["user"]["name"], "Admin");
    assert!(denied.get("source_ip").is_none()); // 253.252.51.07 is not an IP
    assert!(kms.get("source_ip").is_none()); // a service host name
    assert_eq!(kms["user"]["name"], "ec2.amazonaws.com");
    assert_eq!(kms["resource_type"], "kms");
    // Nothing lost: request is the original line, byte for byte.
    assert_eq!(
        ok["request"].as_str().unwrap(),
        text.lines().next().unwrap()
    );
}

#[test]
fn cloudtrail_envelope_and_array() {
    let rec = r#"{"eventTime":"2026-01-02T03:04:05Z","eventSource":"iam.amazonaws.com","eventName":"CreateUser","eventID":"e1"}"#;
    let env = format!("{{\n  \"Records\": [\n {rec}, 42, {rec}\n]\n}}");
    let p = cloudtrail::parse(&env);
    valid(&p);
    assert_eq!(names(&p), ["CreateUser", "CreateUser"]);
    assert_eq!(lines(&p), [2]); // the record index
    assert_eq!(p.traces[0]["service_type"], "IAM");
    assert_eq!(p.traces[0]["request"], rec);
    let arr = format!("[{rec},{rec}]");
    assert_eq!(cloudtrail::parse(&arr).traces.len(), 2);
    // A truncated envelope is one problem, never a panic.
    let p = cloudtrail::parse(&env[..env.len() / 2]);
    assert!(p.traces.is_empty());
    assert_eq!(p.problems.len(), 1);
    // Empty input, garbage and invalid UTF-8 (lossily decoded by the caller).
    assert_eq!(cloudtrail::parse(""), Parsed::default());
    let junk = String::from_utf8_lossy(b"\xff\xfe{\"eventTime\n");
    assert_eq!(cloudtrail::parse(&junk).problems.len(), 1);
}

#[test]
fn cloudtrail_huge_record_is_a_problem() {
    let big = format!(
        r#"{{"eventTime":"2026-01-02T03:04:05Z","eventName":"X","pad":"{}"}}"#,
        "a".repeat(trailwatch_sources::cloud::MAX_RECORD_BYTES)
    );
    let p = cloudtrail::parse(&big);
    assert!(p.traces.is_empty());
    assert_eq!(lines(&p), [1]);
    assert!(p.problems[0].reason.contains("limit"));
}

#[test]
fn cloudtrail_trace_id_is_stable_without_event_id() {
    let rec = r#"{"eventTime":"2026-01-02T03:04:05Z","eventName":"X"}"#;
    let a = cloudtrail::parse(rec);
    let b = cloudtrail::parse(rec);
    valid(&a);
    assert_eq!(a.traces[0]["trace_id"], b.traces[0]["trace_id"]);
    assert_eq!(a.traces[0]["service_type"], "AWS");
    let other = cloudtrail::parse(r#"{"eventTime":"2026-01-02T03:04:06Z","eventName":"X"}"#);
    assert_ne!(a.traces[0]["trace_id"], other.traces[0]["trace_id"]);
}

#[test]
fn windows_xml_edge_cases() {
    let text = fixture("windows_edge.xml");
    let p = windows::parse_xml(&text);
    valid(&p);
    assert_eq!(names(&p), ["login", "loginfailed"]);
    assert_eq!(p.skipped, 1); // 4608
    // 4634 without a time (line 44), then the truncated 4647 (line 50).
    assert_eq!(lines(&p), [44, 50], "{:?}", p.problems);
    let login = &p.traces[0];
    assert_eq!(login["user"]["name"], "al&ice");
    assert_eq!(login["user"]["domain"]["name"], "EXAMPLE");
    assert_eq!(login["source_ip"], "fe80::1"); // zone dropped
    assert_eq!(login["trace_type"], "ConsoleAction"); // logon type 10
    assert_eq!(login["resource_name"], "HOST1.example.org");
    assert_eq!(login["resource_id"], "0x1234");
    assert_eq!(login["service_type"], "WINDOWS");
    assert_eq!(login["resource_type"], "host");
    assert_eq!(login["time"], 1_767_323_045_123_i64);
    assert!(
        login["message"]
            .as_str()
            .unwrap()
            .contains("logon type 10 (RemoteInteractive)")
    );
    assert!(login["request"].as_str().unwrap().starts_with("<Event "));
    assert!(login["request"].as_str().unwrap().ends_with("</Event>"));
    let failed = &p.traces[1];
    assert_eq!(failed["trace_rating"], "warning");
    assert_eq!(failed["code"], "401");
    assert!(failed.get("source_ip").is_none()); // invalid IP
    assert!(
        failed["message"]
            .as_str()
            .unwrap()
            .contains("status 0xc000006d")
    );
    assert_eq!(failed["trace_type"], "ApiCall"); // network logon
}

#[test]
fn windows_json_shapes() {
    // winlogbeat
    let beat = r#"{"@timestamp":"2026-01-02T03:04:05.000Z","event":{"code":"4624"},"host":{"name":"web1"},"winlog":{"channel":"Security","computer_name":"WEB1.corp","record_id":77,"event_id":"4624","event_data":{"TargetUserName":"svc","TargetDomainName":"CORP","LogonType":"5","IpAddress":"-"}}}"#;
    // EVTX-to-JSON with EventID carrying attributes
    let evtx = r##"{"Event":{"System":{"EventID":{"#attributes":{"Qualifiers":""},"#text":4672},"TimeCreated":{"#attributes":{"SystemTime":"2026-01-02T03:04:06Z"}},"EventRecordID":5,"Computer":"DC1"},"EventData":{"SubjectUserName":"admin","SubjectDomainName":"CORP","PrivilegeList":"SeDebugPrivilege\r\n\t\t\tSeBackupPrivilege"}}}"##;
    // flat NXLog, 4648
    let flat = r#"{"@timestamp":"2026-01-02T03:04:07Z","EventID":4648,"Hostname":"WS6","SubjectUserName":"pg","SubjectDomainName":"CORP","TargetUserName":"pg","TargetServerName":"WS6","IpAddress":"::1","RecordNumber":9}"#;
    let text = format!(
        "{beat}\n{evtx}\n{flat}\n{{\"EventID\":4624}}\n42\n{{\"EventID\":4624,\"@timestamp\":\"2026-01-02T03:04:07Z\""
    );
    let p = windows::parse_json(&text);
    valid(&p);
    assert_eq!(
        names(&p),
        ["login", "assignPrivileges", "explicitCredentialLogon"]
    );
    assert_eq!(lines(&p), [4, 5, 6], "{:?}", p.problems);
    assert_eq!(p.traces[0]["trace_type"], "SystemAction"); // service logon
    assert!(p.traces[0].get("source_ip").is_none());
    assert_eq!(p.traces[0]["resource_name"], "WEB1.corp");
    assert_eq!(p.traces[1]["user"]["name"], "admin");
    assert!(
        p.traces[1]["message"]
            .as_str()
            .unwrap()
            .ends_with("privileges SeDebugPrivilege SeBackupPrivilege")
    );
    assert_eq!(p.traces[2]["source_ip"], "::1"); // loopback kept
    assert!(
        p.traces[2]["message"]
            .as_str()
            .unwrap()
            .contains("by CORP\\pg")
    );
    // Array form
    let arr = format!("[{beat},{evtx}]");
    assert_eq!(windows::parse_json(&arr).traces.len(), 2);
}

#[test]
fn k8s_edge_cases() {
    let p = k8s::parse(&fixture("k8s_edge.jsonl"));
    valid(&p);
    assert_eq!(p.skipped, 1); // RequestReceived
    assert_eq!(names(&p), ["get", "loginfailed", "get"]);
    assert_eq!(lines(&p), [5, 6, 7], "{:?}", p.problems);
    let denied = &p.traces[0];
    assert_eq!(denied["trace_rating"], "warning");
    assert_eq!(denied["code"], "403");
    assert_eq!(denied["resource_type"], "secrets");
    assert_eq!(denied["resource_name"], "db");
    assert_eq!(denied["resource_id"], "prod");
    assert_eq!(denied["source_ip"], "2001:db8::5");
    assert_eq!(denied["service_type"], "KUBERNETES");
    assert_eq!(denied["trace_id"], "a1");
    assert_eq!(denied["message"], "secrets \"db\" is forbidden");
    let unauth = &p.traces[1];
    assert_eq!(unauth["trace_rating"], "warning");
    assert_eq!(unauth["resource_type"], "user");
    assert!(unauth.get("user").is_none());
    let health = &p.traces[2];
    assert_eq!(health["resource_type"], "nonResourceURL");
    assert_eq!(health["resource_name"], "/healthz");
    assert!(health.get("source_ip").is_none());
}

#[test]
fn generic_keycloak_and_okta() {
    let p = generic::parse(&fixture("keycloak.jsonl"), &generic::Mapping::keycloak());
    valid(&p);
    assert_eq!(
        names(&p),
        ["login", "loginfailed", "logout", "CODE_TO_TOKEN"]
    );
    assert_eq!(lines(&p), [5]);
    assert_eq!(p.traces[0]["user"]["name"], "alice");
    assert_eq!(p.traces[0]["user"]["domain"]["name"], "acme");
    assert_eq!(p.traces[0]["time"], 1_767_323_045_000_i64);
    assert_eq!(p.traces[0]["trace_id"], "kc-1");
    assert_eq!(p.traces[0]["service_type"], "KEYCLOAK");
    assert_eq!(p.traces[1]["trace_rating"], "warning");
    assert_eq!(p.traces[2]["source_ip"], "2001:db8::1");

    let p = generic::parse(&fixture("okta.jsonl"), &generic::Mapping::okta());
    valid(&p);
    assert_eq!(names(&p), ["login", "loginfailed", "logout"]);
    assert_eq!(p.traces[1]["source_ip"], "203.0.113.8");
    assert_eq!(p.traces[1]["code"], "401");
    assert!(p.traces[2].get("source_ip").is_none());
    assert_eq!(p.traces[0]["time"], 1_767_323_045_678_i64);
}

#[test]
fn generic_mapping_from_toml() {
    let m: generic::Mapping = toml::from_str(&fixture("generic_mapping.toml")).unwrap();
    assert_eq!(m.user, "who.name");
    assert_eq!(m.trace_type, generic::TraceType::ConsoleAction);
    let text = r#"{"who":{"name":"dave","tenant":"t1"},"where":"192.0.2.1","what":"sign in","when":1767323045,"ok":false}
{"who":{"name":"dave"},"where":"192.0.2.1","what":"sign out","when":"2026-01-02T03:04:05Z","ok":true}
{"who":{"name":"dave"},"what":"9 bad name","when":1767323045}
{"who":{"name":"dave"},"what":"sign in"}"#;
    let p = generic::parse(text, &m);
    valid(&p);
    assert_eq!(names(&p), ["loginfailed", "logout"]);
    assert_eq!(lines(&p), [3, 4]);
    assert_eq!(p.traces[0]["time"], 1_767_323_045_000_i64);
    assert_eq!(p.traces[0]["user"]["domain"]["name"], "t1");
    assert_eq!(p.traces[0]["service_type"], "MYAPP");
    assert!(toml::from_str::<generic::Mapping>("usr = \"x\"").is_err());
}

#[test]
fn no_panic_on_any_truncation_or_wrong_format() {
    let files = [
        "cloudtrail_edge.jsonl",
        "windows_edge.xml",
        "k8s_edge.jsonl",
        "keycloak.jsonl",
        "okta.jsonl",
        "generic_mapping.toml",
    ];
    let kc = generic::Mapping::keycloak();
    for f in files {
        let text = fixture(f);
        for cut in (0..=text.len()).filter(|&i| text.is_char_boundary(i)) {
            let t = &text[..cut];
            for p in [
                cloudtrail::parse(t),
                windows::parse_json(t),
                windows::parse_xml(t),
                k8s::parse(t),
                generic::parse(t, &kc),
            ] {
                valid(&p);
            }
        }
    }
}

/// Found by `fuzz/fuzz_targets/cloud_parse.rs`: a record's own id that the trace model refuses
/// as a `trace_id` (spaces, non-ASCII, longer than 128) gives the stable hash instead, so the
/// record still becomes a valid trace.
#[test]
fn ids_the_trace_model_refuses_fall_back_to_the_stable_hash() {
    let long = "x".repeat(129);
    for bad in ["has space", "n\u{e4}me", long.as_str()] {
        let id = serde_json::to_string(bad).unwrap();
        let ct = format!(
            r#"{{"eventTime":"2026-01-02T03:04:05Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","sourceIPAddress":"192.0.2.1","responseElements":{{"ConsoleLogin":"Success"}},"userIdentity":{{"type":"IAMUser","userName":"a"}},"eventID":{id}}}"#
        );
        let k8s_rec = format!(
            r#"{{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":{id},"stage":"ResponseComplete","requestURI":"/api/v1/namespaces/p/secrets/s","verb":"get","user":{{"username":"eve"}},"sourceIPs":["192.0.2.5"],"objectRef":{{"resource":"secrets","namespace":"p","name":"s"}},"requestReceivedTimestamp":"2026-01-02T03:04:05Z","responseStatus":{{"code":200}}}}"#
        );
        let kc = format!(
            r#"{{"id":{id},"time":1767323045000,"type":"LOGIN","realmId":"acme","clientId":"c","ipAddress":"192.0.2.10","details":{{"username":"alice"}}}}"#
        );
        for p in [
            cloudtrail::parse(&ct),
            k8s::parse(&k8s_rec),
            generic::parse(&kc, &generic::Mapping::keycloak()),
        ] {
            assert_eq!(p.traces.len(), 1, "{bad:?}: {p:?}");
            valid(&p);
            let tid = p.traces[0]["trace_id"].as_str().unwrap();
            assert_ne!(tid, bad);
            assert_eq!(tid.len(), 36, "the UUID-shaped stable hash: {tid}");
        }
    }
}

/// Found by `fuzz/fuzz_targets/cloud_parse.rs`: a time the trace model refuses (before
/// 1973-03-03T09:46:40Z) is a problem, not an invalid trace.
#[test]
fn times_before_1973_are_problems() {
    let ct = r#"{"eventTime":"1396-01-02T03:04:05Z","eventSource":"signin.amazonaws.com","eventName":"ConsoleLogin","sourceIPAddress":"192.0.2.1","userIdentity":{"type":"IAMUser","userName":"a"},"eventID":"e-1"}"#;
    let k8s_rec = r#"{"kind":"Event","apiVersion":"audit.k8s.io/v1","auditID":"a-1","stage":"ResponseComplete","requestURI":"/api/v1/namespaces/p/secrets/s","verb":"get","user":{"username":"eve"},"sourceIPs":["192.0.2.5"],"objectRef":{"resource":"secrets","namespace":"p","name":"s"},"requestReceivedTimestamp":"1970-01-01T00:00:01Z","responseStatus":{"code":200}}"#;
    let kc = r#"{"id":"k-1","time":1,"type":"LOGIN","realmId":"acme","clientId":"c","ipAddress":"192.0.2.10","details":{"username":"alice"}}"#;
    let win = r#"{"EventID":4624,"@timestamp":"1972-12-31T23:59:59Z","Hostname":"WS6","TargetUserName":"pg","IpAddress":"::1","RecordNumber":9}"#;
    for p in [
        cloudtrail::parse(ct),
        k8s::parse(k8s_rec),
        generic::parse(kc, &generic::Mapping::keycloak()),
        windows::parse_json(win),
    ] {
        assert!(p.traces.is_empty(), "{p:?}");
        assert_eq!(p.problems.len(), 1, "{p:?}");
        assert!(p.problems[0].reason.contains("before 1973-03-03"), "{p:?}");
    }
}

/// Found by `fuzz/fuzz_targets/cloud_parse.rs`: a field the trace model refuses (here a NUL in the
/// computer name) makes the record a problem, not an invalid trace.
#[test]
fn fields_the_trace_model_refuses_are_problems() {
    let xml = fixture("windows_edge.xml").replacen(
        "<Computer>HOST1.example.org</Computer>",
        "<Computer>HOST1.example.o\u{0}rg</Computer>",
        1,
    );
    let clean = windows::parse_xml(&fixture("windows_edge.xml"));
    let p = windows::parse_xml(&xml);
    valid(&p);
    assert_eq!(p.traces.len(), clean.traces.len() - 1, "{p:?}");
    assert!(
        p.problems
            .iter()
            .any(|x| x.reason.contains("resource_name")),
        "{:?}",
        p.problems
    );
}
