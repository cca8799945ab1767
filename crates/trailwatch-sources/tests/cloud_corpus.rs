//! Golden tests over the shared corpus (`../shared/corpus`, read in place: some files there are
//! CC BY-SA and stay out of this repository). Expected counts are the corpus README's.
//!
//! When the corpus is absent the tests fail, unless `TW_SKIP_CORPUS=1`, in which case they print
//! that they did not run.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;

use serde_json::Value;
use trailwatch_sources::Parsed;
use trailwatch_sources::cloud::{cloudtrail, k8s, windows};

fn corpus_dir() -> Option<PathBuf> {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/corpus");
    if dir.join("README.md").is_file() {
        return Some(dir);
    }
    if std::env::var("TW_SKIP_CORPUS").as_deref() == Ok("1") {
        eprintln!(
            "corpus tests DID NOT RUN: {} is absent and TW_SKIP_CORPUS=1",
            dir.display()
        );
        return None;
    }
    panic!(
        "the shared corpus is missing at {} (set TW_SKIP_CORPUS=1 to skip these tests)",
        dir.display()
    );
}

fn read(rel: &str) -> Option<String> {
    let dir = corpus_dir()?;
    let p = dir.join(rel);
    Some(std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{}: {e}", p.display())))
}

fn check_all_valid(p: &Parsed) {
    for t in &p.traces {
        trailwatch_trace::Trace::from_value(t.clone())
            .unwrap_or_else(|e| panic!("invalid trace {e}: {t}"));
        let req = t["request"].as_str().expect("request is a string");
        assert!(!req.is_empty());
    }
}

fn count_by(p: &Parsed, field: &str) -> BTreeMap<String, usize> {
    let mut m = BTreeMap::new();
    for t in &p.traces {
        let k = match &t[field] {
            Value::String(s) => s.clone(),
            Value::Null => "<none>".to_owned(),
            v => v.to_string(),
        };
        *m.entry(k).or_default() += 1;
    }
    m
}

fn n(m: &BTreeMap<String, usize>, k: &str) -> usize {
    m.get(k).copied().unwrap_or(0)
}

fn req(t: &Value) -> Value {
    serde_json::from_str(t["request"].as_str().unwrap()).unwrap()
}

#[test]
fn cloudtrail_invictus_jsonl() {
    let Some(text) = read("cloudtrail/invictus-ir_aws_dataset_records.jsonl") else {
        return;
    };
    let p = cloudtrail::parse(&text);
    assert!(
        p.problems.is_empty(),
        "{:?}",
        &p.problems[..3.min(p.problems.len())]
    );
    assert_eq!(p.traces.len(), 2900);
    check_all_valid(&p);
    let names = count_by(&p, "trace_name");
    assert_eq!(n(&names, "login"), 2);
    assert_eq!(n(&names, "loginfailed"), 0);
    assert_eq!(n(&names, "AssumeRole"), 49);
    assert_eq!(names.len(), 260, "distinct eventName");
    let logins: Vec<_> = p
        .traces
        .iter()
        .filter(|t| t["trace_name"] == "login")
        .map(|t| {
            (
                t["user"]["name"].as_str().unwrap().to_owned(),
                t["source_ip"].as_str().unwrap().to_owned(),
                t["time"].as_i64().unwrap(),
            )
        })
        .collect();
    assert_eq!(
        logins,
        vec![
            (
                "stratus-red-team-nmfalu-gfjyeaypjt".to_owned(),
                "192.168.10.20".to_owned(),
                1_688_991_795_000
            ),
            (
                "bert-jan".to_owned(),
                "10.8.8.10".to_owned(),
                1_688_992_065_000
            ),
        ]
    );
    let types = count_by(&p, "trace_type");
    assert_eq!(n(&types, "ConsoleAction"), 3); // AwsConsoleSignIn
    assert_eq!(n(&types, "SystemAction"), 42); // AwsServiceEvent
    assert_eq!(n(&types, "ApiCall"), 2855);
    assert_eq!(n(&count_by(&p, "trace_rating"), "warning"), 300); // errorCode
    assert_eq!(n(&count_by(&p, "read_only"), "true"), 2326);
    // 353 records whose sourceIPAddress is not an IP have no source_ip.
    let non_ip: Vec<_> = p
        .traces
        .iter()
        .filter(|t| {
            req(t)["sourceIPAddress"]
                .as_str()
                .is_some_and(|s| s.parse::<std::net::IpAddr>().is_err())
        })
        .collect();
    assert_eq!(non_ip.len(), 353);
    assert!(non_ip.iter().all(|t| t.get("source_ip").is_none()));
    assert_eq!(
        n(&count_by(&p, "source_ip"), "192.168.10.20"),
        2154 - count_sysaction_ip(&p, "192.168.10.20")
    );
    // trace_id is the eventID: unique and stable.
    let ids: BTreeSet<_> = p.traces.iter().map(|t| t["trace_id"].to_string()).collect();
    assert_eq!(ids.len(), 2900);
    assert_eq!(cloudtrail::parse(&text), p, "deterministic");
}

fn count_sysaction_ip(p: &Parsed, ip: &str) -> usize {
    p.traces
        .iter()
        .filter(|t| t["trace_type"] == "SystemAction" && req(t)["sourceIPAddress"] == ip)
        .count()
}

#[test]
fn cloudtrail_envelope_file() {
    let Some(text) = read(
        "cloudtrail/invictus-ir_218007301253_CloudTrail_us-east-1_20230710T1225Z_4iD2boYSOwmb6sWd.json",
    ) else {
        return;
    };
    let p = cloudtrail::parse(&text);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_eq!(p.traces.len(), 12);
    check_all_valid(&p);
    let names = count_by(&p, "trace_name");
    assert_eq!(n(&names, "GetUser"), 4);
    assert_eq!(n(&names, "DescribeDBSnapshots"), 2);
    assert_eq!(n(&names, "login"), 1);
    let login = p
        .traces
        .iter()
        .find(|t| t["trace_name"] == "login")
        .unwrap();
    assert_eq!(login["source_ip"], "192.168.10.20");
    assert_eq!(login["time"], 1_688_991_795_000_i64);
    assert_eq!(login["service_type"], "SIGNIN");
    assert_eq!(login["trace_rating"], "normal");
    // The same records are lines of the JSONL export: same traces.
    let Some(all) = read("cloudtrail/invictus-ir_aws_dataset_records.jsonl") else {
        return;
    };
    let all = cloudtrail::parse(&all);
    for t in &p.traces {
        let twin = all
            .traces
            .iter()
            .find(|u| u["trace_id"] == t["trace_id"])
            .expect("record in JSONL");
        assert_eq!(req(twin), req(t));
    }
}

#[test]
fn cloudtrail_stratus() {
    let Some(text) = read("cloudtrail/stratus-red-team_detonation-logs.jsonl") else {
        return;
    };
    let p = cloudtrail::parse(&text);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_eq!(p.traces.len(), 310);
    check_all_valid(&p);
    let names = count_by(&p, "trace_name");
    assert_eq!(n(&names, "login"), 1);
    assert_eq!(n(&names, "AssumeRole"), 12);
    assert_eq!(n(&names, "DescribeInstanceInformation"), 112);
    assert_eq!(n(&names, "GetPasswordData"), 30);
    assert_eq!(n(&count_by(&p, "trace_rating"), "warning"), 52);
    let login = p
        .traces
        .iter()
        .find(|t| t["trace_name"] == "login")
        .unwrap();
    assert_eq!(login["user"]["name"], "stratus-red-team-nmfalu-jfzdtsvchl");
    // 225.01.00.16 is an anonymiser artefact, not an IP: no source_ip, kept in request.
    assert!(login.get("source_ip").is_none());
    assert_eq!(req(login)["sourceIPAddress"], "225.01.00.16");
    let invalid = p
        .traces
        .iter()
        .filter(|t| t.get("source_ip").is_none())
        .count();
    assert_eq!(invalid, 107);
}

#[test]
fn cloudtrail_otrf_logstash() {
    let Some(text) = read("cloudtrail/otrf_ec2_proxy_s3_exfiltration_2020-09-14011940.jsonl")
    else {
        return;
    };
    let p = cloudtrail::parse(&text);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_eq!(p.traces.len(), 103);
    check_all_valid(&p);
    let names = count_by(&p, "trace_name");
    assert_eq!(n(&names, "AssumeRole"), 5);
    assert_eq!(n(&names, "ListObjects"), 7);
    assert_eq!(n(&names, "GetObject"), 2);
    assert_eq!(names.len(), 26);
    assert_eq!(n(&count_by(&p, "source_ip"), "1.2.3.4"), 98);
    let times: Vec<i64> = p
        .traces
        .iter()
        .map(|t| t["time"].as_i64().unwrap())
        .collect();
    // @timestamp 2020-09-14T00:44:20.000Z → 01:13:20.000Z
    assert_eq!(times.iter().min(), Some(&1_600_044_260_000));
    assert_eq!(times.iter().max(), Some(&1_600_046_000_000));
}

#[test]
fn cloudtrail_awsdocs_signin_examples() {
    // CC BY-SA 4.0: read from the shared corpus only, never copied here.
    let Some(text) = read("cloudtrail/awsdocs_console-signin-example-records.json") else {
        return;
    };
    let p = cloudtrail::parse(&text);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_eq!(p.traces.len(), 10);
    check_all_valid(&p);
    let names = count_by(&p, "trace_name");
    assert_eq!(n(&names, "login"), 4);
    assert_eq!(n(&names, "loginfailed"), 2);
    assert_eq!(n(&names, "CheckMfa"), 2);
    for t in p.traces.iter().filter(|t| t["trace_name"] == "loginfailed") {
        assert_eq!(t["trace_rating"], "warning");
        assert_eq!(t["message"], "Failed authentication");
        assert_eq!(t["source_ip"], "192.0.2.0");
    }
}

fn win_names(p: &Parsed) -> BTreeMap<String, usize> {
    count_by(p, "trace_name")
}

#[test]
fn windows_evtx_jsonl() {
    let Some(text) = read("windows-security/evtx-rs_Security_with_size_t.evtx.jsonl") else {
        return;
    };
    let p = windows::parse_json(&text);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    check_all_valid(&p);
    let names = win_names(&p);
    assert_eq!(n(&names, "login"), 126);
    assert_eq!(n(&names, "loginfailed"), 15);
    assert_eq!(n(&names, "logout"), 17 + 1);
    assert_eq!(n(&names, "explicitCredentialLogon"), 92);
    assert_eq!(n(&names, "assignPrivileges"), 109);
    assert_eq!(p.traces.len() as u64 + p.skipped, 636);
    let student = p
        .traces
        .iter()
        .filter(|t| {
            t["trace_name"] == "loginfailed"
                && t["user"]["name"] == "Student"
                && t["source_ip"] == "10.20.0.118"
        })
        .count();
    assert_eq!(student, 4);
    let logins = p.traces.iter().filter(|t| t["trace_name"] == "login");
    let loopback = logins.filter(|t| t["source_ip"] == "127.0.0.1").count();
    assert_eq!(loopback, 19);
    let ids: BTreeSet<_> = p.traces.iter().map(|t| t["trace_id"].to_string()).collect();
    assert_eq!(ids.len(), p.traces.len());
}

#[test]
fn windows_xml_matches_json() {
    let Some(xml) = read("windows-security/evtx-rs_Security_with_size_t_logon-events.xml") else {
        return;
    };
    let p = windows::parse_xml(&xml);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_eq!(p.traces.len(), 251);
    check_all_valid(&p);
    let names = win_names(&p);
    assert_eq!(n(&names, "login"), 126);
    assert_eq!(n(&names, "loginfailed"), 15);
    assert_eq!(n(&names, "logout"), 18);
    assert_eq!(n(&names, "explicitCredentialLogon"), 92);
    // Same events as the JSON export: same ids, names, users, addresses, times.
    let Some(json) = read("windows-security/evtx-rs_Security_with_size_t.evtx.jsonl") else {
        return;
    };
    let j = windows::parse_json(&json);
    let strip = |t: &Value| {
        let mut t = t.clone();
        let o = t.as_object_mut().unwrap();
        o.remove("request");
        t
    };
    let from_json: Vec<Value> = j
        .traces
        .iter()
        .filter(|t| t["trace_name"] != "assignPrivileges")
        .map(strip)
        .collect();
    let from_xml: Vec<Value> = p.traces.iter().map(strip).collect();
    assert_eq!(from_xml, from_json);
}

#[test]
fn windows_otrf() {
    let cases = [
        (
            "windows-security/otrf_purplesharp_ad_playbook_I_2020-10-22042947_security-auth.jsonl",
            154,
            [49, 7, 31, 0, 43],
        ),
        (
            "windows-security/otrf_rdp_interactive_taskmanager_lsass_dump_2020-09-22043748_security-auth.jsonl",
            55,
            [18, 0, 14, 2, 14],
        ),
        (
            "windows-security/otrf_covenant_psremoting_command_2020-08-06115603_security-auth.jsonl",
            50,
            [16, 0, 14, 5, 13],
        ),
    ];
    for (file, records, [login, failed, logout, explicit, privs]) in cases {
        let Some(text) = read(file) else {
            return;
        };
        let p = windows::parse_json(&text);
        assert!(p.problems.is_empty(), "{file}: {:?}", p.problems);
        check_all_valid(&p);
        let names = win_names(&p);
        assert_eq!(n(&names, "login"), login, "{file}");
        assert_eq!(n(&names, "loginfailed"), failed, "{file}");
        assert_eq!(n(&names, "logout"), logout, "{file}");
        assert_eq!(n(&names, "explicitCredentialLogon"), explicit, "{file}");
        assert_eq!(n(&names, "assignPrivileges"), privs, "{file}");
        assert_eq!(p.traces.len() as u64 + p.skipped, records, "{file}");
    }
    // The password spray: 7 failures, 7 different users, logon type 2, no address.
    let Some(text) = read(cases[0].0) else {
        return;
    };
    let p = windows::parse_json(&text);
    let failed: Vec<_> = p
        .traces
        .iter()
        .filter(|t| t["trace_name"] == "loginfailed")
        .collect();
    let users: BTreeSet<_> = failed
        .iter()
        .map(|t| t["user"]["name"].to_string())
        .collect();
    assert_eq!(users.len(), 7);
    assert!(failed.iter().all(|t| t.get("source_ip").is_none()));
    assert!(
        failed
            .iter()
            .all(|t| t["resource_name"] == "WORKSTATION5.theshire.local")
    );
    assert!(failed.iter().all(|t| t["trace_type"] == "ConsoleAction"));
}

#[test]
fn k8s_falco() {
    let Some(text) = read("k8s-audit/falco_k8s_audit_trace-files.jsonl") else {
        return;
    };
    let p = k8s::parse(&text);
    assert!(p.problems.is_empty(), "{:?}", p.problems);
    assert_eq!(p.traces.len(), 51);
    assert_eq!(p.skipped, 0);
    check_all_valid(&p);
    let names = count_by(&p, "trace_name");
    assert_eq!(n(&names, "create"), 40);
    assert_eq!(n(&names, "delete"), 9);
    assert_eq!(n(&names, "get"), 1);
    assert_eq!(n(&names, "patch"), 1);
    let codes = count_by(&p, "code");
    assert_eq!(
        (n(&codes, "201"), n(&codes, "200"), n(&codes, "101")),
        (38, 11, 2)
    );
    assert_eq!(n(&count_by(&p, "trace_rating"), "warning"), 0);
    let ips = count_by(&p, "source_ip");
    assert_eq!(n(&ips, "192.168.99.1"), 36);
    assert_eq!(n(&ips, "::1"), 10);
    assert_eq!(n(&ips, "127.0.0.1"), 3);
    assert_eq!(n(&ips, "192.168.64.1"), 2);
    let res = count_by(&p, "resource_type");
    assert_eq!(n(&res, "configmaps"), 9);
    assert_eq!(n(&res, "clusterroles"), 8);
    assert_eq!(n(&res, "secrets"), 4);
    // exec/attach are traced at ResponseStarted (code 101): their ResponseComplete comes later.
    assert_eq!(n(&res, "pods/exec"), 1);
    assert_eq!(n(&res, "pods/attach"), 1);
    let users: BTreeMap<String, usize> = p.traces.iter().fold(BTreeMap::new(), |mut m, t| {
        *m.entry(t["user"]["name"].as_str().unwrap().to_owned())
            .or_default() += 1;
        m
    });
    assert_eq!(n(&users, "minikube-user"), 36);
    assert_eq!(n(&users, "system:anonymous"), 1);
}
