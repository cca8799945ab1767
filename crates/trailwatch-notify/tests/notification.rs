#![allow(clippy::unwrap_used)]

use std::sync::LazyLock;

use chrono::{TimeZone, Utc};
use serde_json::{Value, json};
use trailwatch_notify::{
    MessageType, NotificationBody, Signer, SignerError, format_timestamp, verify_notification,
};

/// RSA key generation is the slow part: one signer for the whole file.
static SIGNER: LazyLock<Signer> =
    LazyLock::new(|| Signer::generate("trailwatch SMN test").unwrap());

const CERT_URL: &str = "https://smn.region01.example.com/smn/SMN_region01_test.pem";

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32, s: u32) -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(y, mo, d, h, mi, s).single().unwrap()
}

fn notification() -> NotificationBody {
    NotificationBody {
        message_type: MessageType::Notification,
        topic_urn: "urn:smn:region01:0a419ac94f80f2c62f14c01e34aaaaaa:test_topic".into(),
        message_id: "d84bd6629ef04513ad2e37bffd6e17cb".into(),
        subject: Some("SMN".into()),
        message: "{\"alarm\": \"login\", \"ip\": \"1.2.3.4\"}\nsecond line".into(),
        subscribe_url: None,
        unsubscribe_url: Some(
            "https://console.example.com/smn/subscription/unsubscribe?region=region01&subscription_urn=urn:smn:region01:0a419ac94f80f2c62f14c01e34aaaaaa:test_topic:23cf104593284665a1f98691b1aaaaaa".into(),
        ),
        timestamp: at(2024, 7, 10, 9, 45, 0),
    }
}

fn confirmation(t: MessageType) -> NotificationBody {
    NotificationBody {
        message_type: t,
        topic_urn: "urn:smn:region01:0a419ac94f80f2c62f14c01e34aaaaaa:test_topic".into(),
        message_id: "54bb04eddfc842e9b44ca36393f77cd3".into(),
        subject: None,
        message: "You are invited to subscribe to topic: urn:smn:region01:0a419ac94f80f2c62f14c01e34aaaaaa:test_topic.".into(),
        subscribe_url: Some(
            "https://console.example.com/smn/subscription/confirm?token=abc123&topic_urn=urn:smn:region01:0a419ac94f80f2c62f14c01e34aaaaaa:test_topic".into(),
        ),
        unsubscribe_url: None,
        timestamp: at(2024, 7, 10, 9, 43, 44),
    }
}

#[test]
fn string_to_sign_matches_the_documented_example() {
    let body = NotificationBody {
        message_type: MessageType::Notification,
        topic_urn: "urn:smn:regionId:74dc…:xxxx".into(),
        message_id: "88c726942175432bac921eafd0036163".into(),
        subject: Some("demo".into()),
        message: "My test message".into(),
        subscribe_url: None,
        unsubscribe_url: Some("https://example.com/unsubscribe".into()),
        timestamp: at(2016, 8, 15, 7, 29, 16),
    };
    assert_eq!(
        body.string_to_sign(),
        "message\nMy test message\nmessage_id\n88c726942175432bac921eafd0036163\nsubject\ndemo\ntimestamp\n2016-08-15T07:29:16Z\ntopic_urn\nurn:smn:regionId:74dc…:xxxx\ntype\nNotification\n"
    );

    // No subject, or an empty one, leaves the pair out entirely.
    let without = "message\nMy test message\nmessage_id\n88c726942175432bac921eafd0036163\ntimestamp\n2016-08-15T07:29:16Z\ntopic_urn\nurn:smn:regionId:74dc…:xxxx\ntype\nNotification\n";
    for subject in [None, Some(String::new())] {
        let b = NotificationBody {
            subject,
            ..body.clone()
        };
        assert_eq!(b.string_to_sign(), without);
    }
}

#[test]
fn string_to_sign_of_confirmations() {
    for t in [
        MessageType::SubscriptionConfirmation,
        MessageType::UnsubscribeConfirmation,
    ] {
        let mut b = confirmation(t);
        // A subject is not part of a confirmation's signature.
        b.subject = Some("ignored".into());
        assert_eq!(
            b.string_to_sign(),
            format!(
                "message\n{}\nmessage_id\n54bb04eddfc842e9b44ca36393f77cd3\nsubscribe_url\n{}\ntimestamp\n2024-07-10T09:43:44Z\ntopic_urn\nurn:smn:region01:0a419ac94f80f2c62f14c01e34aaaaaa:test_topic\ntype\n{}\n",
                b.message,
                b.subscribe_url.clone().unwrap(),
                t.as_str()
            )
        );
    }
}

#[test]
fn message_types() {
    for (t, s) in [
        (
            MessageType::SubscriptionConfirmation,
            "SubscriptionConfirmation",
        ),
        (MessageType::Notification, "Notification"),
        (
            MessageType::UnsubscribeConfirmation,
            "UnsubscribeConfirmation",
        ),
    ] {
        assert_eq!(t.as_str(), s);
        assert_eq!(t.to_string(), s);
        assert_eq!(MessageType::parse(s), Some(t));
    }
    assert_eq!(MessageType::parse("notification"), None);
}

#[test]
fn timestamps_are_whole_seconds_utc() {
    let t = at(2024, 1, 2, 3, 4, 5) + chrono::Duration::milliseconds(678);
    assert_eq!(format_timestamp(t), "2024-01-02T03:04:05Z");
}

fn keys(v: &Value) -> Vec<&str> {
    let mut k: Vec<&str> = v.as_object().unwrap().keys().map(String::as_str).collect();
    k.sort_unstable();
    k
}

#[test]
fn json_shapes() {
    let n = notification().to_json(&SIGNER, CERT_URL);
    assert_eq!(
        keys(&n),
        [
            "message",
            "message_id",
            "signature",
            "signature_version",
            "signing_cert_url",
            "subject",
            "timestamp",
            "topic_urn",
            "type",
            "unsubscribe_url"
        ]
    );
    assert_eq!(n["type"], "Notification");
    assert_eq!(n["signature_version"], "v1");
    assert_eq!(n["signing_cert_url"], CERT_URL);
    assert_eq!(n["timestamp"], "2024-07-10T09:45:00Z");
    assert_eq!(n["subject"], "SMN");
    assert_eq!(n["message"], notification().message);

    let c = confirmation(MessageType::SubscriptionConfirmation).to_json(&SIGNER, CERT_URL);
    assert_eq!(
        keys(&c),
        [
            "message",
            "message_id",
            "signature",
            "signature_version",
            "signing_cert_url",
            "subscribe_url",
            "timestamp",
            "topic_urn",
            "type"
        ]
    );
    assert_eq!(c["type"], "SubscriptionConfirmation");

    let no_subject = NotificationBody {
        subject: None,
        ..notification()
    }
    .to_json(&SIGNER, CERT_URL);
    assert!(no_subject.get("subject").is_none());

    let headers = notification().headers();
    assert_eq!(
        headers,
        [
            ("x-smn-message-type", "Notification".to_owned()),
            (
                "x-smn-message-id",
                "d84bd6629ef04513ad2e37bffd6e17cb".to_owned()
            ),
            (
                "x-smn-topic-urn",
                "urn:smn:region01:0a419ac94f80f2c62f14c01e34aaaaaa:test_topic".to_owned()
            ),
        ]
    );
}

#[test]
fn sign_and_verify_round_trip() {
    let cert = SIGNER.cert_pem();
    for body in [
        notification(),
        NotificationBody {
            subject: None,
            ..notification()
        },
        NotificationBody {
            subject: Some(String::new()),
            ..notification()
        },
        confirmation(MessageType::SubscriptionConfirmation),
        confirmation(MessageType::UnsubscribeConfirmation),
    ] {
        let json = body.to_json(&SIGNER, CERT_URL);
        verify_notification(&json, cert).unwrap();
        // It survives the wire: serialized and parsed again.
        let reparsed: Value = serde_json::from_str(&json.to_string()).unwrap();
        verify_notification(&reparsed, cert).unwrap();
    }
}

#[track_caller]
fn assert_rejected(json: &Value) {
    assert!(
        verify_notification(json, SIGNER.cert_pem()).is_err(),
        "accepted: {json}"
    );
}

#[test]
fn tampering_with_a_signed_member_fails() {
    let good = notification().to_json(&SIGNER, CERT_URL);
    for (key, value) in [
        ("message", json!("My test message!")),
        ("subject", json!("SMN ")),
        ("subject", json!("")),
        (
            "topic_urn",
            json!("urn:smn:region01:0a419ac94f80f2c62f14c01e34aaaaaa:other"),
        ),
        ("timestamp", json!("2024-07-10T09:45:01Z")),
        ("message_id", json!("d84bd6629ef04513ad2e37bffd6e17cc")),
        ("type", json!("SubscriptionConfirmation")),
    ] {
        let mut j = good.clone();
        j[key] = value;
        assert_rejected(&j);
    }
    // Dropping the signed subject, or adding one that was not signed, is tampering too.
    let mut j = good.clone();
    j.as_object_mut().unwrap().remove("subject");
    assert_rejected(&j);
    let mut unsigned = NotificationBody {
        subject: None,
        ..notification()
    }
    .to_json(&SIGNER, CERT_URL);
    unsigned["subject"] = json!("injected");
    assert_rejected(&unsigned);

    let good = confirmation(MessageType::SubscriptionConfirmation).to_json(&SIGNER, CERT_URL);
    for (key, value) in [
        ("subscribe_url", json!("https://evil.example.com/confirm")),
        ("message", json!("Please confirm.")),
        ("type", json!("UnsubscribeConfirmation")),
    ] {
        let mut j = good.clone();
        j[key] = value;
        assert_rejected(&j);
    }
}

#[test]
fn unsigned_members_do_not_matter() {
    let mut j = notification().to_json(&SIGNER, CERT_URL);
    j["unsubscribe_url"] = json!("https://elsewhere.example.com/unsubscribe");
    j["signing_cert_url"] = json!("https://elsewhere.example.com/cert.pem");
    j["extra"] = json!({"anything": 1});
    verify_notification(&j, SIGNER.cert_pem()).unwrap();
    j.as_object_mut().unwrap().remove("unsubscribe_url");
    verify_notification(&j, SIGNER.cert_pem()).unwrap();

    let mut c = confirmation(MessageType::SubscriptionConfirmation).to_json(&SIGNER, CERT_URL);
    c["subject"] = json!("not signed for confirmations");
    verify_notification(&c, SIGNER.cert_pem()).unwrap();
}

#[test]
fn malformed_bodies_and_signatures_fail() {
    let good = notification().to_json(&SIGNER, CERT_URL);
    let cert = SIGNER.cert_pem();

    // "V1" is how one SMN page spells the version; another version is refused.
    let mut j = good.clone();
    j["signature_version"] = json!("V1");
    verify_notification(&j, cert).unwrap();
    j["signature_version"] = json!("v2");
    assert!(
        verify_notification(&j, cert)
            .unwrap_err()
            .contains("signature_version")
    );

    for key in [
        "signature",
        "signature_version",
        "message",
        "message_id",
        "timestamp",
        "topic_urn",
        "type",
    ] {
        let mut j = good.clone();
        j.as_object_mut().unwrap().remove(key);
        let e = verify_notification(&j, cert).unwrap_err();
        assert!(e.contains(key), "{key}: {e}");
    }
    let mut c = confirmation(MessageType::SubscriptionConfirmation).to_json(&SIGNER, CERT_URL);
    c.as_object_mut().unwrap().remove("subscribe_url");
    assert!(
        verify_notification(&c, cert)
            .unwrap_err()
            .contains("subscribe_url")
    );

    let mut j = good.clone();
    j["signature"] = json!("not base64!");
    assert!(
        verify_notification(&j, cert)
            .unwrap_err()
            .contains("base64")
    );
    let mut j = good.clone();
    j["signature"] = json!("AAAA");
    assert_rejected(&j);
    // Flip one bit of a valid signature.
    let mut sig = j.clone();
    let mut bytes = base64_decode(good["signature"].as_str().unwrap());
    bytes[10] ^= 1;
    sig["signature"] = json!(base64_encode(&bytes));
    assert_rejected(&sig);

    let mut j = good.clone();
    j["subject"] = json!(5);
    assert_rejected(&j);
    j["type"] = json!("Bogus");
    assert!(verify_notification(&j, cert).unwrap_err().contains("Bogus"));
    assert_rejected(&json!([]));
    assert_rejected(&json!("body"));
}

fn base64_decode(s: &str) -> Vec<u8> {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.decode(s).unwrap()
}

fn base64_encode(b: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(b)
}

#[test]
fn certificates_that_cannot_verify() {
    let good = notification().to_json(&SIGNER, CERT_URL);
    // Another key's certificate.
    let other = Signer::generate("other").unwrap();
    assert!(verify_notification(&good, other.cert_pem()).is_err());

    // Not a certificate at all, or a damaged one.
    for bad in [
        String::new(),
        "-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n".to_owned(),
        "-----BEGIN CERTIFICATE-----\n!!!!\n-----END CERTIFICATE-----\n".to_owned(),
        "-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n".to_owned(),
        SIGNER.cert_pem().replace("CERTIFICATE", "PUBLIC KEY"),
        SIGNER.key_pem(),
        truncate_der(SIGNER.cert_pem()),
    ] {
        assert!(verify_notification(&good, &bad).is_err(), "{bad}");
    }

    // A valid certificate with a non-RSA key.
    let ec_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let ec_cert = rcgen::CertificateParams::default()
        .self_signed(&ec_key)
        .unwrap();
    let e = verify_notification(&good, &ec_cert.pem()).unwrap_err();
    assert!(e.contains("not an RSA key"), "{e}");
}

/// The certificate PEM with its DER cut short, re-encoded.
fn truncate_der(pem: &str) -> String {
    let body: String = pem.lines().filter(|l| !l.starts_with("-----")).collect();
    let der = base64_decode(&body);
    format!(
        "-----BEGIN CERTIFICATE-----\n{}\n-----END CERTIFICATE-----\n",
        base64_encode(&der[..der.len() / 2])
    )
}

#[test]
fn signer_pem_round_trip() {
    let key_pem = SIGNER.key_pem();
    assert!(
        key_pem.starts_with("-----BEGIN PRIVATE KEY-----\n"),
        "{key_pem}"
    );
    assert!(key_pem.ends_with("-----END PRIVATE KEY-----\n"));
    assert!(SIGNER.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));

    let restored = Signer::from_pem(&key_pem, SIGNER.cert_pem()).unwrap();
    assert_eq!(restored.key_pem(), key_pem);
    assert_eq!(restored.cert_pem(), SIGNER.cert_pem());
    // A body signed by the restored signer verifies with the original certificate.
    let json = notification().to_json(&restored, CERT_URL);
    verify_notification(&json, SIGNER.cert_pem()).unwrap();
    // PKCS#1 v1.5 is deterministic: both produce the same signature.
    assert_eq!(restored.sign(b"abc"), SIGNER.sign(b"abc"));
    assert_eq!(SIGNER.try_sign(b"abc").unwrap(), SIGNER.sign(b"abc"));

    // CRLF line endings (a PEM edited on Windows) still load.
    let crlf = Signer::from_pem(
        &key_pem.replace('\n', "\r\n"),
        &SIGNER.cert_pem().replace('\n', "\r\n"),
    );
    assert!(crlf.is_ok());
}

#[test]
fn signer_from_bad_pem() {
    let other = Signer::generate("other").unwrap();
    assert_eq!(
        Signer::from_pem(&SIGNER.key_pem(), other.cert_pem()).unwrap_err(),
        SignerError::Mismatch
    );
    assert!(matches!(
        Signer::from_pem("", SIGNER.cert_pem()),
        Err(SignerError::Key(_))
    ));
    assert!(matches!(
        Signer::from_pem(
            "-----BEGIN PRIVATE KEY-----\nAAAA\n-----END PRIVATE KEY-----\n",
            SIGNER.cert_pem()
        ),
        Err(SignerError::Key(_))
    ));
    // An EC key is not an RSA key.
    let ec_key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    assert!(matches!(
        Signer::from_pem(&ec_key.serialize_pem(), SIGNER.cert_pem()),
        Err(SignerError::Key(_))
    ));
    assert!(matches!(
        Signer::from_pem(&SIGNER.key_pem(), "not a certificate"),
        Err(SignerError::Certificate(_))
    ));
}

#[test]
fn signer_debug_is_redacted() {
    let debug = format!("{:?}", *SIGNER);
    assert!(debug.contains("<redacted>"), "{debug}");
    assert!(!debug.contains("PRIVATE"), "{debug}");
    let key_body: String = SIGNER.key_pem().lines().nth(1).unwrap().to_owned();
    assert!(!debug.contains(&key_body[..20]));
}

#[test]
fn signer_is_shareable_between_threads() {
    fn assert_send_sync<T: Send + Sync>() {}
    assert_send_sync::<Signer>();
}
