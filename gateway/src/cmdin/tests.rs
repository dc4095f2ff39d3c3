use std::time::Duration;

use chrono::{NaiveTime, Weekday};
use gateway_core::config::Secret;
use gateway_core::maintenance::{Schedule, Target, Window};
use gateway_core::model::DeviceClass;
use serde_json::{Value, json};

use super::*;
use crate::store::{Command, Store};

const SECRET: &str = "test-secret";
const SITE: &str = "site1";
const GW: &str = "gw1";
const NOW: i64 = 1_796_126_700_000;
const MAX_AGE: Duration = Duration::from_secs(300);

fn verifier() -> Verifier {
    Verifier::new(
        Secret::new(SECRET),
        MAX_AGE,
        chrono_tz::Asia::Shanghai,
        SITE,
        GW,
    )
}

/// A body with the common fields (target: this test's gateway) and `extra`
/// merged in (which may override them).
fn body(op: &str, id: &str, ts: i64, extra: Value) -> String {
    let mut b = json!({"op": op, "id": id, "ts": ts, "by": "张工", "site": SITE, "gateway": GW});
    if let (Some(m), Value::Object(e)) = (b.as_object_mut(), extra) {
        m.extend(e);
    }
    b.to_string()
}

fn ack_body(id: &str, ts: i64) -> String {
    body("ack", id, ts, json!({"ticket": 12, "note": "on my way"}))
}

/// Verifies with a fresh memory book; asserts that a rejection left it empty.
fn check(op: &str, payload: &[u8]) -> Result<Verified, Rejection> {
    let mut book = MemoryNonces::new();
    let out = verifier().verify(op, payload, NOW, &mut book);
    match &out {
        Ok(_) => assert_eq!(book.len(), 1),
        Err(_) => assert!(book.is_empty(), "a rejection changed the nonce book"),
    }
    out
}

fn reason(op: &str, payload: &[u8]) -> RejectReason {
    match check(op, payload) {
        Ok(v) => panic!("accepted: {v:?}"),
        Err(r) => r.reason,
    }
}

fn payload_with(body: &str, sig: Value) -> Vec<u8> {
    json!({"body": body, "sig": sig}).to_string().into_bytes()
}

#[test]
fn the_worked_example_of_docs_commands_md_holds() {
    let doc = include_str!("../../../docs/commands.md");
    let secret = "example-secret-of-32-bytes-do-not-use";
    assert!(secret.len() >= MIN_SECRET_BYTES);
    let b = r#"{"op":"ack","id":"c0ffee42","ts":1796126700000,"by":"张工","site":"site1","gateway":"gw1","ticket":12,"note":"on my way"}"#;
    let sig = "30db857c75b6433d2ee38d655723e5e59b44d2312dbf7d1d10c5567eb621af73";

    // The secret, the body, its length and its bytes as the document shows them.
    assert!(doc.contains(&format!("The secret is `{secret}`")));
    assert!(doc.contains(&format!("```text\n{b}\n```")));
    assert_eq!(b.len(), 123);
    assert!(doc.contains("UTF-8 encoding, 123 bytes"));
    let hex_lines: Vec<String> = b
        .as_bytes()
        .chunks(24)
        .map(|c| {
            c.iter()
                .map(|x| format!("{x:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        })
        .collect();
    assert!(doc.contains(&format!("```text\n{}\n```", hex_lines.join("\n"))));
    // 2026-12-01 20:05 in Asia/Shanghai.
    let local = chrono::NaiveDate::from_ymd_opt(2026, 12, 1)
        .and_then(|d| d.and_hms_opt(20, 5, 0))
        .unwrap();
    assert_eq!(
        gateway_core::maintenance::local_to_ms(chrono_tz::Asia::Shanghai, local),
        Some(1_796_126_700_000)
    );

    // The signature and the payload.
    assert_eq!(signature_hex(secret, b), sig);
    assert!(doc.contains(&format!("```text\n{sig}\n```")));
    let payload = sign(secret, b);
    let text = String::from_utf8(payload.clone()).unwrap();
    assert!(doc.contains(&format!("```json\n{text}\n```")), "{text}");

    // Received one second later: verified, and the reply the document shows.
    let v = Verifier::new(
        Secret::new(secret),
        MAX_AGE,
        chrono_tz::Asia::Shanghai,
        "site1",
        "gw1",
    );
    let mut book = MemoryNonces::new();
    let ok = v
        .verify("ack", &payload, 1_796_126_701_000, &mut book)
        .unwrap();
    assert_eq!(ok.id, "c0ffee42");
    assert_eq!(ok.by, "张工");
    assert_eq!(
        ok.command,
        Command::Ack {
            id: 12,
            by: "张工".into(),
            note: "on my way".into()
        }
    );
    let result = "ticket #12 acknowledged by 张工";
    let done = reply_json(
        "site1",
        "gw1",
        "ack",
        Outcome::Done { id: &ok.id, result },
        1_796_126_701_000,
    );
    assert!(doc.contains(&format!("```text\n{done}\n")), "{done}");
    // The signed reply payload as the document shows it.
    let signed = Value::Object(v.reply(
        "ack",
        Outcome::Done { id: &ok.id, result },
        1_796_126_701_000,
    ))
    .to_string();
    assert!(doc.contains(&format!("```json\n{signed}\n```")), "{signed}");
    let opened = open_reply(secret, signed.as_bytes()).unwrap();
    assert_eq!(opened.id.as_deref(), Some("c0ffee42"));

    // Again: replayed, and the second reply of the document.
    let again = v
        .verify("ack", &payload, 1_796_126_702_000, &mut book)
        .unwrap_err();
    assert_eq!(again.reason, RejectReason::Replayed);
    let refused = reply_json(
        "site1",
        "gw1",
        "ack",
        Outcome::Rejected(&again),
        1_796_126_702_000,
    );
    assert!(doc.contains(&format!("{refused}\n```")), "{refused}");

    // Six minutes after ts: stale.
    let late = v
        .verify(
            "ack",
            &payload,
            1_796_126_700_000 + 360_000,
            &mut MemoryNonces::new(),
        )
        .unwrap_err();
    assert_eq!(late.reason, RejectReason::Stale);

    // Python's json.dumps escapes non-ASCII characters: the same signature holds.
    let escaped = format!(
        "{{\"body\": {}, \"sig\": \"{sig}\"}}",
        serde_json::to_string(b)
            .unwrap()
            .replace("张工", "\\u5f20\\u5de5")
    );
    assert!(escaped.contains("\\u5f20"));
    assert!(
        v.verify(
            "ack",
            escaped.as_bytes(),
            1_796_126_701_000,
            &mut MemoryNonces::new()
        )
        .is_ok()
    );
}

#[test]
fn ticket_commands_become_their_command() {
    for (op, want) in [
        (
            "ack",
            Command::Ack {
                id: 12,
                by: "张工".into(),
                note: "n".into(),
            },
        ),
        (
            "resolve",
            Command::Resolve {
                id: 12,
                by: "张工".into(),
                note: "n".into(),
            },
        ),
        (
            "close",
            Command::Close {
                id: 12,
                by: "张工".into(),
                note: "n".into(),
            },
        ),
    ] {
        let b = body(op, "nonce-0001", NOW, json!({"ticket": 12, "note": "n"}));
        let v = check(op, &sign(SECRET, &b)).unwrap();
        assert_eq!(v.command, want);
        assert_eq!(v.id, "nonce-0001");
    }
    // The note is optional.
    let b = body("ack", "nonce-0002", NOW, json!({"ticket": 3}));
    assert_eq!(
        check("ack", &sign(SECRET, &b)).unwrap().command,
        Command::Ack {
            id: 3,
            by: "张工".into(),
            note: String::new()
        }
    );
}

#[test]
fn window_commands_become_their_command() {
    let b = body(
        "add_window",
        "nonce-0003",
        NOW,
        json!({"window": {"id": "pump-1-service", "device": "pump-1",
                          "from": "2026-12-01 20:00", "to": "2026-12-01 22:00", "note": "bearing"}}),
    );
    let v = check("add_window", &sign(SECRET, &b)).unwrap();
    assert_eq!(
        v.command,
        Command::AddWindow(Window {
            id: "pump-1-service".into(),
            target: Target::Device("pump-1".into()),
            schedule: Schedule::Once {
                from_ms: NOW - 5 * 60_000,
                to_ms: NOW + 115 * 60_000
            },
            note: "bearing".into(),
        })
    );
    let b = body(
        "add_window",
        "nonce-0004",
        NOW,
        json!({"window": {"id": "lifts-weekly", "class": "elevator", "weekly": "Tue 20:00-22:00"}}),
    );
    let v = check("add_window", &sign(SECRET, &b)).unwrap();
    assert_eq!(
        v.command,
        Command::AddWindow(Window {
            id: "lifts-weekly".into(),
            target: Target::Class(DeviceClass::Elevator),
            schedule: Schedule::Weekly {
                days: vec![Weekday::Tue],
                start: NaiveTime::from_hms_opt(20, 0, 0).unwrap(),
                end: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
            },
            note: String::new(),
        })
    );
    let b = body(
        "remove_window",
        "nonce-0005",
        NOW,
        json!({"window_id": "lifts-weekly"}),
    );
    assert_eq!(
        check("remove_window", &sign(SECRET, &b)).unwrap().command,
        Command::RemoveWindow {
            id: "lifts-weekly".into()
        }
    );
}

#[test]
fn unsigned_commands_are_refused() {
    let b = ack_body("nonce-0001", NOW);
    let no_sig = json!({ "body": b }).to_string().into_bytes();
    assert_eq!(reason("ack", &no_sig), RejectReason::Unsigned);
    assert_eq!(
        reason("ack", &payload_with(&b, Value::Null)),
        RejectReason::Unsigned
    );
    assert_eq!(
        reason("ack", &payload_with(&b, json!(""))),
        RejectReason::Unsigned
    );
    let r = check("ack", &no_sig).unwrap_err();
    assert_eq!(r.id.as_deref(), Some("nonce-0001"));
    assert!(r.detail.contains("docs/commands.md"), "{}", r.detail);
}

#[test]
fn badly_signed_commands_are_refused() {
    let b = ack_body("nonce-0001", NOW);
    // Signed with another secret.
    assert_eq!(
        reason("ack", &sign("other-secret", &b)),
        RejectReason::BadSignature
    );
    // The body changed after signing (ticket 12 → 13).
    let sig = signature_hex(SECRET, &b);
    let tampered = b.replace("12", "13");
    assert_ne!(tampered, b);
    assert_eq!(
        reason("ack", &payload_with(&tampered, json!(sig))),
        RejectReason::BadSignature
    );
    // Not hex, too short, too long.
    for bad in ["zz".repeat(32), sig[..62].to_owned(), format!("{sig}00")] {
        assert_eq!(
            reason("ack", &payload_with(&b, json!(bad))),
            RejectReason::BadSignature
        );
    }
    // Spacing changed after signing.
    let ws = b.replace(",", ", ");
    assert_eq!(
        reason("ack", &payload_with(&ws, json!(sig))),
        RejectReason::BadSignature
    );
    // A gateway with an empty secret accepts nothing, not even an empty-key MAC.
    let open = Verifier::new(Secret::new(""), MAX_AGE, chrono_tz::UTC, SITE, GW);
    let r = open
        .verify("ack", &sign("", &b), NOW, &mut MemoryNonces::new())
        .unwrap_err();
    assert_eq!(r.reason, RejectReason::BadSignature);
    assert!(r.detail.contains("secret is empty"), "{}", r.detail);
}

#[test]
fn stale_commands_are_refused_in_the_past_and_the_future() {
    let max = i64::try_from(MAX_AGE.as_millis()).unwrap();
    for ts in [NOW - max - 1, NOW + max + 1, 0, i64::MIN, i64::MAX] {
        let r = check("ack", &sign(SECRET, &ack_body("nonce-0001", ts))).unwrap_err();
        assert_eq!(r.reason, RejectReason::Stale, "ts {ts}");
    }
    let past = check("ack", &sign(SECRET, &ack_body("nonce-0001", NOW - max - 1))).unwrap_err();
    assert!(past.detail.contains("in the past"), "{}", past.detail);
    let future = check("ack", &sign(SECRET, &ack_body("nonce-0001", NOW + max + 1))).unwrap_err();
    assert!(future.detail.contains("in the future"), "{}", future.detail);
    // Exactly max_age either way is accepted.
    assert!(check("ack", &sign(SECRET, &ack_body("nonce-0001", NOW - max))).is_ok());
    assert!(check("ack", &sign(SECRET, &ack_body("nonce-0001", NOW + max))).is_ok());
}

#[test]
fn replayed_commands_are_refused_and_the_first_one_stands() {
    let v = verifier();
    let mut book = MemoryNonces::new();
    let p = sign(SECRET, &ack_body("nonce-0001", NOW));
    assert!(v.verify("ack", &p, NOW, &mut book).is_ok());
    let r = v.verify("ack", &p, NOW + 1000, &mut book).unwrap_err();
    assert_eq!(r.reason, RejectReason::Replayed);
    assert_eq!(r.id.as_deref(), Some("nonce-0001"));
    // Another command reusing the nonce is refused too.
    let other = sign(
        SECRET,
        &body("close", "nonce-0001", NOW, json!({"ticket": 9})),
    );
    assert_eq!(
        v.verify("close", &other, NOW, &mut book)
            .unwrap_err()
            .reason,
        RejectReason::Replayed
    );
    // Past ts + max_age the book forgets it, and the timestamp refuses it.
    let later = NOW + i64::try_from(MAX_AGE.as_millis()).unwrap() + 1;
    assert_eq!(
        v.verify("ack", &p, later, &mut book).unwrap_err().reason,
        RejectReason::Stale
    );
    assert_eq!(book.len(), 1);
}

#[test]
fn a_replay_after_reopening_the_store_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let v = verifier();
    let p = sign(SECRET, &ack_body("nonce-0001", NOW));
    {
        let mut store = Store::open(dir.path()).unwrap();
        assert!(v.verify("ack", &p, NOW, &mut store).is_ok());
    }
    let mut store = Store::open(dir.path()).unwrap();
    let r = v.verify("ack", &p, NOW + 2000, &mut store).unwrap_err();
    assert_eq!(r.reason, RejectReason::Replayed);
    assert_eq!(store.nonce_count().unwrap(), 1);
    // A rejected command leaves the stored book as it was.
    let bad = sign(SECRET, &body("ack", "nonce-0002", NOW, json!({})));
    assert_eq!(
        v.verify("ack", &bad, NOW, &mut store).unwrap_err().reason,
        RejectReason::Malformed
    );
    assert_eq!(store.nonce_count().unwrap(), 1);
    assert!(!store.has_nonce("nonce-0002", NOW).unwrap());
}

#[test]
fn malformed_payloads_are_refused() {
    let good = ack_body("nonce-0001", NOW);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        ("not JSON", b"ack 12".to_vec()),
        ("empty", Vec::new()),
        ("not an object", b"[1,2]".to_vec()),
        ("no body", br#"{"sig":"00"}"#.to_vec()),
        (
            "body as an object",
            json!({"body": {"op": "ack"}, "sig": "00"})
                .to_string()
                .into_bytes(),
        ),
        (
            "a field beside body and sig",
            json!({"body": good, "sig": signature_hex(SECRET, &good), "ticket": 13})
                .to_string()
                .into_bytes(),
        ),
        (
            "sig not a string",
            json!({"body": good, "sig": 5}).to_string().into_bytes(),
        ),
        ("body not JSON", sign(SECRET, "ack 12")),
        ("body an array", sign(SECRET, "[]")),
        (
            "too large",
            sign(
                SECRET,
                &body(
                    "ack",
                    "nonce-0001",
                    NOW,
                    json!({"ticket": 1, "note": "x".repeat(MAX_PAYLOAD_BYTES)}),
                ),
            ),
        ),
    ];
    for (what, p) in cases {
        assert_eq!(reason("ack", &p), RejectReason::Malformed, "{what}");
    }
}

#[test]
fn bodies_missing_or_with_bad_common_fields_are_malformed() {
    let full = json!({"op": "ack", "id": "nonce-0001", "ts": NOW, "by": "张工", "site": SITE, "gateway": GW, "ticket": 12});
    for field in ["op", "id", "ts", "by", "site", "gateway"] {
        let mut b = full.clone();
        b.as_object_mut().unwrap().remove(field);
        let r = check("ack", &sign(SECRET, &b.to_string())).unwrap_err();
        assert_eq!(r.reason, RejectReason::Malformed, "without {field}");
        assert!(r.detail.contains(field), "{}", r.detail);
    }
    for (field, value) in [
        ("id", json!("short")),
        ("id", json!("has space!")),
        ("id", json!("x".repeat(65))),
        ("id", json!(12345678)),
        ("ts", json!("1796126700000")),
        ("ts", json!(1.5)),
        ("by", json!("  ")),
        ("by", json!("x".repeat(65))),
        ("op", json!(7)),
        ("site", json!(1)),
        ("gateway", json!(["gw1"])),
    ] {
        let mut b = full.clone();
        b[field] = value.clone();
        assert_eq!(
            reason("ack", &sign(SECRET, &b.to_string())),
            RejectReason::Malformed,
            "{field} = {value}"
        );
    }
}

#[test]
fn a_topic_that_does_not_match_the_op_is_malformed() {
    let p = sign(SECRET, &ack_body("nonce-0001", NOW));
    let r = check("close", &p).unwrap_err();
    assert_eq!(r.reason, RejectReason::Malformed);
    assert!(r.detail.contains("cmd/close"), "{}", r.detail);
    assert_eq!(r.id.as_deref(), Some("nonce-0001"));
}

#[test]
fn unknown_ops_are_refused_once_signed() {
    let b = body("reboot", "nonce-0001", NOW, json!({}));
    let r = check("reboot", &sign(SECRET, &b)).unwrap_err();
    assert_eq!(r.reason, RejectReason::Unknown);
    assert!(r.detail.contains("add_window"), "{}", r.detail);
    // Unsigned or badly signed, it is refused for that first.
    assert_eq!(
        reason("reboot", &payload_with(&b, Value::Null)),
        RejectReason::Unsigned
    );
    assert_eq!(
        reason("reboot", &sign("other", &b)),
        RejectReason::BadSignature
    );
}

#[test]
fn bad_op_fields_are_malformed() {
    let cases = [
        ("ack", json!({})),
        ("ack", json!({"ticket": "12"})),
        ("ack", json!({"ticket": -1})),
        ("resolve", json!({"ticket": 12, "colour": "red"})),
        ("close", json!({"ticket": 12, "note": "x".repeat(2001)})),
        ("add_window", json!({})),
        ("add_window", json!({"window": "pump-1"})),
        // Inverted.
        (
            "add_window",
            json!({"window": {"id": "w1", "device": "pump-1",
                              "from": "2026-12-01 22:00", "to": "2026-12-01 20:00"}}),
        ),
        // Device and class.
        (
            "add_window",
            json!({"window": {"id": "w1", "device": "pump-1", "class": "pump",
                              "weekly": "Tue 20:00-22:00"}}),
        ),
        // Bad id, bad weekly, unknown window field, unknown class.
        (
            "add_window",
            json!({"window": {"id": "W 1", "device": "pump-1", "weekly": "Tue 20:00-22:00"}}),
        ),
        (
            "add_window",
            json!({"window": {"id": "w1", "device": "pump-1", "weekly": "Tuesday evening"}}),
        ),
        (
            "add_window",
            json!({"window": {"id": "w1", "device": "pump-1", "weekly": "Tue 20:00-22:00", "x": 1}}),
        ),
        (
            "add_window",
            json!({"window": {"id": "w1", "class": "spaceship", "weekly": "Tue 20:00-22:00"}}),
        ),
        ("remove_window", json!({})),
        ("remove_window", json!({"window_id": " "})),
        ("remove_window", json!({"window_id": "w1", "ticket": 1})),
    ];
    for (op, extra) in cases {
        let b = body(op, "nonce-0001", NOW, extra.clone());
        let r = check(op, &sign(SECRET, &b)).unwrap_err();
        assert_eq!(r.reason, RejectReason::Malformed, "{op} {extra}");
        assert!(r.detail.starts_with(op), "{}", r.detail);
    }
}

#[test]
fn a_malformed_command_does_not_use_up_its_nonce_but_a_used_nonce_comes_first() {
    let v = verifier();
    let mut book = MemoryNonces::new();
    let bad = sign(SECRET, &body("ack", "nonce-0001", NOW, json!({})));
    assert_eq!(
        v.verify("ack", &bad, NOW, &mut book).unwrap_err().reason,
        RejectReason::Malformed
    );
    assert!(book.is_empty());
    // Fixed and sent again with the same id: accepted.
    let good = sign(SECRET, &ack_body("nonce-0001", NOW));
    assert!(v.verify("ack", &good, NOW, &mut book).is_ok());
    // Now the id is used: the bad one is refused as replayed (check 6 before 7).
    assert_eq!(
        v.verify("ack", &bad, NOW, &mut book).unwrap_err().reason,
        RejectReason::Replayed
    );
}

#[test]
fn checks_run_in_the_documented_order() {
    let max = i64::try_from(MAX_AGE.as_millis()).unwrap();
    // Malformed before unsigned: a topic mismatch without a signature.
    let b = ack_body("nonce-0001", NOW);
    assert_eq!(
        reason("close", &payload_with(&b, Value::Null)),
        RejectReason::Malformed
    );
    // Unsigned before stale, bad signature before stale.
    let old = ack_body("nonce-0001", NOW - 10 * max);
    assert_eq!(
        reason("ack", &payload_with(&old, Value::Null)),
        RejectReason::Unsigned
    );
    assert_eq!(
        reason("ack", &sign("other", &old)),
        RejectReason::BadSignature
    );
    // Unknown before stale.
    let odd = body("reboot", "nonce-0001", NOW - 10 * max, json!({}));
    assert_eq!(reason("reboot", &sign(SECRET, &odd)), RejectReason::Unknown);
    // Stale before replayed.
    let v = verifier();
    let mut book = MemoryNonces::new();
    assert!(v.verify("ack", &sign(SECRET, &b), NOW, &mut book).is_ok());
    let stale_replay = sign(SECRET, &ack_body("nonce-0001", NOW - max - 1));
    assert_eq!(
        v.verify("ack", &stale_replay, NOW, &mut book)
            .unwrap_err()
            .reason,
        RejectReason::Stale
    );
}

/// A book whose database is gone.
struct BrokenBook;

impl NonceBook for BrokenBook {
    fn remember(&mut self, _: &str, _: i64, _: i64) -> Result<bool, String> {
        Err("disk I/O error".into())
    }
    fn contains(&mut self, _: &str, _: i64) -> Result<bool, String> {
        Err("disk I/O error".into())
    }
}

#[test]
fn a_failing_nonce_book_refuses_the_command_as_internal() {
    let v = verifier();
    for p in [
        sign(SECRET, &ack_body("nonce-0001", NOW)),
        sign(SECRET, &body("ack", "nonce-0001", NOW, json!({}))),
    ] {
        let r = v.verify("ack", &p, NOW, &mut BrokenBook).unwrap_err();
        assert_eq!(r.reason, RejectReason::Internal);
        assert!(r.detail.contains("disk I/O error"), "{}", r.detail);
    }
}

#[test]
fn replies_carry_id_op_outcome_and_time() {
    let done: Value = serde_json::from_str(&reply_json(
        SITE,
        GW,
        "resolve",
        Outcome::Done {
            id: "nonce-0001",
            result: "ticket #3 resolved by 张工",
        },
        NOW,
    ))
    .unwrap();
    assert_eq!(
        done,
        json!({"id": "nonce-0001", "op": "resolve", "ok": true, "site": SITE, "gateway": GW,
               "result": "ticket #3 resolved by 张工", "ts": NOW})
    );
    let refused: Value = serde_json::from_str(&reply_json(
        SITE,
        GW,
        "close",
        Outcome::Refused {
            id: "nonce-0002",
            detail: "ticket #3 is open; resolve it first",
        },
        NOW,
    ))
    .unwrap();
    assert_eq!(refused["ok"], json!(false));
    assert_eq!(refused["reason"], json!("refused"));
    assert_eq!(
        refused["detail"],
        json!("ticket #3 is open; resolve it first")
    );
    let r = check("ack", b"garbage").unwrap_err();
    assert_eq!(r.id, None);
    let rejected: Value =
        serde_json::from_str(&reply_json(SITE, GW, "ack", Outcome::Rejected(&r), NOW)).unwrap();
    assert_eq!(rejected["id"], Value::Null);
    assert_eq!(rejected["reason"], json!("malformed"));
    assert_eq!(rejected["ok"], json!(false));
    assert!(rejected.get("result").is_none());
    // The wire names of the reasons are their serde names.
    for reason in [
        RejectReason::Unsigned,
        RejectReason::BadSignature,
        RejectReason::Stale,
        RejectReason::Replayed,
        RejectReason::Malformed,
        RejectReason::WrongTarget,
        RejectReason::Unknown,
        RejectReason::Internal,
    ] {
        assert_eq!(json!(reason), json!(reason.as_str()));
    }
}

#[test]
fn the_verifier_never_shows_its_secret() {
    let shown = format!("{:?}", verifier());
    assert!(!shown.contains(SECRET), "{shown}");
    assert!(shown.contains("REDACTED"));
}

#[test]
fn payloads_made_by_the_python_and_javascript_snippets_verify() {
    // Python 3 `json.dumps` as in docs/commands.md (spaces, \u escapes inside
    // the body text), secret "test-secret".
    let py = r#"{"body": "{\"op\": \"resolve\", \"id\": \"py-nonce-0001\", \"ts\": 1796126700000, \"by\": \"\\u5f20\\u5de5\", \"site\": \"site1\", \"gateway\": \"gw1\", \"ticket\": 7, \"note\": \"\\u6362\\u4e86\\u8f74\\u627f\"}", "sig": "b45866367d0989d68a4e2d495539fd35bdecd36fc4302ebcb849460da044db7f"}"#;
    assert_eq!(
        check("resolve", py.as_bytes()).unwrap().command,
        Command::Resolve {
            id: 7,
            by: "张工".into(),
            note: "换了轴承".into()
        }
    );
    // Node.js `JSON.stringify` + `crypto.createHmac` as in docs/commands.md.
    let js = r#"{"body":"{\"op\":\"add_window\",\"id\":\"js-nonce-0001\",\"ts\":1796126700000,\"by\":\"李工\",\"site\":\"site1\",\"gateway\":\"gw1\",\"window\":{\"id\":\"lifts-weekly\",\"class\":\"elevator\",\"weekly\":\"周二 20:00-22:00\"}}","sig":"278638b65b349f884c521d709d2a4afcac7c52acbad4f8fa853d1fda632db2f0"}"#;
    let v = check("add_window", js.as_bytes()).unwrap();
    assert_eq!(v.by, "李工");
    assert!(matches!(
        v.command,
        Command::AddWindow(Window { ref id, target: Target::Class(DeviceClass::Elevator), .. }) if id == "lifts-weekly"
    ));
}

#[test]
fn a_command_for_another_site_or_gateway_is_refused_as_wrong_target_naming_both() {
    for (site, gw) in [("site2", GW), (SITE, "gw2"), ("site2", "gw2")] {
        let b = body(
            "ack",
            "nonce-0001",
            NOW,
            json!({"ticket": 12, "site": site, "gateway": gw}),
        );
        let r = check("ack", &sign(SECRET, &b)).unwrap_err();
        assert_eq!(r.reason, RejectReason::WrongTarget, "{site}/{gw}");
        assert_eq!(r.id.as_deref(), Some("nonce-0001"));
        for name in [site, gw, SITE, GW] {
            assert!(r.detail.contains(&format!("{name:?}")), "{}", r.detail);
        }
    }
}

#[test]
fn a_command_captured_for_one_gateway_is_refused_by_another_sharing_the_secret() {
    // Two gateways of one site with one site-wide key.
    let gw2 = Verifier::new(
        Secret::new(SECRET),
        MAX_AGE,
        chrono_tz::Asia::Shanghai,
        SITE,
        "gw2",
    );
    let for_gw1 = sign(SECRET, &ack_body("nonce-0001", NOW));
    let mut book = MemoryNonces::new();
    let r = gw2.verify("ack", &for_gw1, NOW, &mut book).unwrap_err();
    assert_eq!(r.reason, RejectReason::WrongTarget);
    assert!(book.is_empty());
    // The gateway it was made for still takes it.
    assert!(verifier().verify("ack", &for_gw1, NOW, &mut book).is_ok());
}

#[test]
fn a_command_without_a_target_from_an_older_sender_is_malformed() {
    for missing in ["site", "gateway"] {
        let mut b: Value = serde_json::from_str(&ack_body("nonce-0001", NOW)).unwrap();
        b.as_object_mut().unwrap().remove(missing);
        let r = check("ack", &sign(SECRET, &b.to_string())).unwrap_err();
        assert_eq!(r.reason, RejectReason::Malformed, "without {missing}");
        assert!(r.detail.contains("target"), "{}", r.detail);
    }
}

#[test]
fn the_target_is_checked_only_once_the_signature_holds() {
    let b = body(
        "ack",
        "nonce-0001",
        NOW,
        json!({"ticket": 12, "gateway": "gw2"}),
    );
    assert_eq!(
        reason("ack", &payload_with(&b, Value::Null)),
        RejectReason::Unsigned
    );
    assert_eq!(
        reason("ack", &sign("other", &b)),
        RejectReason::BadSignature
    );
    // Wrong target before unknown op and before stale.
    let odd = body("reboot", "nonce-0001", 0, json!({"gateway": "gw2"}));
    assert_eq!(
        reason("reboot", &sign(SECRET, &odd)),
        RejectReason::WrongTarget
    );
}

#[test]
fn a_signed_command_republished_on_another_op_topic_is_refused() {
    let captured = sign(SECRET, &ack_body("nonce-0001", NOW));
    for op in ["close", "resolve", "remove_window"] {
        let r = check(op, &captured).unwrap_err();
        assert_eq!(r.reason, RejectReason::Malformed, "{op}");
        assert!(r.detail.contains(&format!("cmd/{op}")), "{}", r.detail);
    }
}

#[test]
fn a_signed_reply_opens_with_the_bound_fields_under_the_same_secret() {
    let v = verifier();
    let done = Value::Object(v.reply(
        "ack",
        Outcome::Done {
            id: "nonce-0001",
            result: "ticket #12 acknowledged by 张工",
        },
        NOW,
    ));
    assert_eq!(
        done.as_object().unwrap().keys().collect::<Vec<_>>(),
        ["body", "sig"]
    );
    // As published, with the seq the outbox adds.
    let mut published = done.clone();
    published["seq"] = json!(41);
    let r = open_reply(SECRET, published.to_string().as_bytes()).unwrap();
    assert_eq!(
        r,
        SignedReply {
            site: SITE.into(),
            gateway: GW.into(),
            id: Some("nonce-0001".into()),
            op: "ack".into(),
            ok: true,
            text: "ticket #12 acknowledged by 张工".into(),
            reason: String::new(),
            detail: String::new(),
        }
    );
    // A rejection is signed too, with its reason.
    let rej = check(
        "ack",
        &sign(
            SECRET,
            &body(
                "ack",
                "nonce-0002",
                NOW,
                json!({"gateway": "gw9", "ticket": 1}),
            ),
        ),
    )
    .unwrap_err();
    let refused = Value::Object(v.reply("ack", Outcome::Rejected(&rej), NOW)).to_string();
    let r = open_reply(SECRET, refused.as_bytes()).unwrap();
    assert!(!r.ok);
    assert!(r.text.starts_with("wrong_target: "), "{}", r.text);
    assert_eq!(r.reason, "wrong_target");
    assert_eq!(format!("{}: {}", r.reason, r.detail), r.text);
    assert_eq!(r.id.as_deref(), Some("nonce-0002"));
}

#[test]
fn forged_replies_are_refused() {
    let v = verifier();
    let real = v.reply(
        "ack",
        Outcome::Refused {
            id: "nonce-0001",
            detail: "ticket #12 is closed",
        },
        NOW,
    );
    let body = real["body"].as_str().unwrap().to_owned();
    let sig = real["sig"].as_str().unwrap().to_owned();
    // What an attacker on the broker can write: no signature, another key,
    // the real signature on an edited body (refused → acknowledged).
    let forged_ok = body.replace("\"ok\":false", "\"ok\":true").replace(
        "\"reason\":\"refused\"",
        "\"result\":\"acknowledged (FORGED)\"",
    );
    assert_ne!(forged_ok, body);
    let cases: Vec<(Vec<u8>, ReplyError)> = vec![
        (
            json!({"body": forged_ok, "seq": 9}).to_string().into_bytes(),
            ReplyError::Unsigned,
        ),
        (
            json!({"body": forged_ok, "sig": ""}).to_string().into_bytes(),
            ReplyError::Unsigned,
        ),
        (
            json!({"body": forged_ok, "sig": signature_hex("guessed-secret", &forged_ok)})
                .to_string()
                .into_bytes(),
            ReplyError::BadSignature,
        ),
        (
            json!({"body": forged_ok, "sig": sig}).to_string().into_bytes(),
            ReplyError::BadSignature,
        ),
        (
            json!({"body": body, "sig": "zz"}).to_string().into_bytes(),
            ReplyError::BadSignature,
        ),
        // The old, flat reply: no envelope at all.
        (
            br#"{"id":"nonce-0001","ok":true,"op":"ack","result":"acknowledged (FORGED)","seq":9,"ts":1}"#.to_vec(),
            ReplyError::Malformed("a field beside body, sig and seq"),
        ),
        (b"not json".to_vec(), ReplyError::Malformed("not a JSON object")),
    ];
    for (payload, want) in cases {
        assert_eq!(
            open_reply(SECRET, &payload).unwrap_err(),
            want,
            "{}",
            String::from_utf8_lossy(&payload)
        );
    }
    // Under an empty secret nothing opens, not even a reply signed with it.
    let empty = Value::Object(
        Verifier::new(Secret::new(""), MAX_AGE, chrono_tz::UTC, SITE, GW).reply(
            "ack",
            Outcome::Done {
                id: "nonce-0001",
                result: "x",
            },
            NOW,
        ),
    );
    assert_eq!(
        open_reply("", empty.to_string().as_bytes()).unwrap_err(),
        ReplyError::BadSignature
    );
    // The real one opens.
    assert!(open_reply(SECRET, Value::Object(real).to_string().as_bytes()).is_ok());
}

#[test]
fn arrive_commands_become_their_command_and_a_replay_is_refused() {
    let v = verifier();
    let mut book = MemoryNonces::new();
    let b = body(
        "arrive",
        "nonce-0001",
        NOW,
        json!({"ticket": 12, "note": "在泵房", "arrived_at": NOW - 60_000}),
    );
    let p = sign(SECRET, &b);
    let ok = v.verify("arrive", &p, NOW, &mut book).unwrap();
    assert_eq!(
        ok.command,
        Command::Arrive {
            id: 12,
            by: "张工".into(),
            note: "在泵房".into(),
            at_ms: Some(NOW - 60_000),
        }
    );
    assert_eq!(
        v.verify("arrive", &p, NOW + 1000, &mut book)
            .unwrap_err()
            .reason,
        RejectReason::Replayed
    );
    // Note and time are optional.
    let b = body("arrive", "nonce-0002", NOW, json!({"ticket": 3}));
    assert_eq!(
        check("arrive", &sign(SECRET, &b)).unwrap().command,
        Command::Arrive {
            id: 3,
            by: "张工".into(),
            note: String::new(),
            at_ms: None,
        }
    );
    for bad in [
        json!({}),
        json!({"ticket": 3, "arrived_at": -5}),
        json!({"ticket": 3, "arrived_at": "now"}),
        json!({"ticket": 3, "where": "B1"}),
    ] {
        let b = body("arrive", "nonce-0003", NOW, bad.clone());
        assert_eq!(
            reason("arrive", &sign(SECRET, &b)),
            RejectReason::Malformed,
            "{bad}"
        );
    }
}

#[test]
fn an_arrival_is_stored_on_an_open_ticket_and_refused_on_a_resolved_one() {
    use gateway_core::config::TicketsConfig;
    use gateway_core::tickets::{DeviceRef, TicketBook, TicketEventKind};
    let dir = tempfile::tempdir().unwrap();
    let mut store = Store::open(dir.path()).unwrap();
    let cfg = TicketsConfig::default();
    let tz = chrono_tz::Asia::Shanghai;
    let mut book = TicketBook::new(&cfg, tz, Vec::new(), 1);
    let pump = DeviceRef {
        id: "pump-1",
        class: DeviceClass::Pump,
    };
    let opened = book.on_availability_below(pump, 0.9, 98.0, None, NOW - 3_600_000);
    store.save_ticket_events(&opened).unwrap();

    let v = verifier();
    let arrive = |nonce: &str, store: &mut Store| {
        let b = body("arrive", nonce, NOW, json!({"ticket": 1, "note": "到了"}));
        let cmd = v
            .verify("arrive", &sign(SECRET, &b), NOW, store)
            .unwrap()
            .command;
        store.apply_command_locally(&cfg, tz, &[], &cmd, NOW)
    };
    assert_eq!(
        arrive("nonce-0001", &mut store).unwrap(),
        "ticket #1 marked as arrived on site by 张工"
    );
    let t = store.ticket(1).unwrap().unwrap();
    let a = t.arrived.unwrap();
    assert_eq!(
        (a.by.as_str(), a.at_ms, a.note.as_str()),
        ("张工", NOW, "到了")
    );
    assert_eq!(t.history.last().unwrap().kind, TicketEventKind::Arrived);

    let resolve = Command::Resolve {
        id: 1,
        by: "张工".into(),
        note: String::new(),
    };
    store
        .apply_command_locally(&cfg, tz, &[], &resolve, NOW)
        .unwrap();
    let err = arrive("nonce-0002", &mut store).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ticket #1 is resolved; it cannot be marked as arrived on site"
    );
}

fn write_body(extra: Value) -> String {
    body("write", "w8Qm2LxT0aZp4kRb", NOW, extra)
}

#[test]
fn a_signed_write_becomes_a_write_command_with_its_operator() {
    let b = write_body(json!({"device": "ahu-1", "point": "setpoint", "value": 21.5}));
    let v = check("write", &sign(SECRET, &b)).unwrap();
    assert_eq!(
        v.command,
        Command::Write {
            device: "ahu-1".into(),
            point: "setpoint".into(),
            value: crate::store::WriteValue::Float(21.5),
            by: "张工".into(),
        }
    );
    let b = write_body(json!({"device": "p-1", "point": "run_cmd", "value": true}));
    let v = check("write", &sign(SECRET, &b)).unwrap();
    assert!(matches!(
        v.command,
        Command::Write {
            value: crate::store::WriteValue::Bool(true),
            ..
        }
    ));
}

#[test]
fn an_unsigned_or_forged_write_is_refused_before_anything_else() {
    let b = write_body(json!({"device": "ahu-1", "point": "setpoint", "value": 21.5}));
    assert_eq!(
        reason("write", &payload_with(&b, Value::Null)),
        RejectReason::Unsigned
    );
    assert_eq!(
        reason("write", &sign("another-secret", &b)),
        RejectReason::BadSignature
    );
    // Signed for the ack topic's op but published on …/cmd/write.
    assert_eq!(
        reason("write", &sign(SECRET, &ack_body("abcdefgh", NOW))),
        RejectReason::Malformed
    );
}

#[test]
fn a_write_without_a_usable_value_or_target_is_malformed() {
    for extra in [
        json!({"device": "ahu-1", "point": "setpoint", "value": "21.5"}),
        json!({"device": "ahu-1", "point": "setpoint", "value": null}),
        json!({"device": "ahu-1", "point": "setpoint"}),
        json!({"device": "AHU 1", "point": "setpoint", "value": 1}),
        json!({"device": "ahu-1", "point": "setpoint", "value": 1, "unit": 2}),
    ] {
        let b = write_body(extra.clone());
        assert_eq!(
            reason("write", &sign(SECRET, &b)),
            RejectReason::Malformed,
            "{extra}"
        );
    }
}
