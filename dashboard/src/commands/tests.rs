#![allow(clippy::unwrap_used)]

use gateway::cmdin::{Outcome, Verifier};
use gateway_core::config::Secret;
use serde_json::{Value, json};

use super::*;
use crate::config::{Config, check};

/// One key shared by both gateways of site `s1`, as a site-wide key is.
const KEY: &str = "0123456789abcdef0123456789abcdef-site-s1";

fn shared() -> (tempfile::TempDir, Shared) {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("s1.key"), KEY).unwrap();
    let file: Config =
        toml::from_str("[[gateway]]\nsite = \"s1\"\ncommand_secret = { file = \"s1.key\" }\n")
            .unwrap();
    let settings = check(file, dir.path()).unwrap();
    (dir, Shared::new(settings))
}

/// What gateway `gw` of `s1` publishes on its reply topic for command `id`.
fn reply_of(gw: &str, secret: &str, op: &str, id: &str, ok: bool, seq: u64) -> Vec<u8> {
    let v = Verifier::new(
        Secret::new(secret),
        Duration::from_secs(300),
        chrono_tz::UTC,
        "s1",
        gw,
    );
    let outcome = if ok {
        Outcome::Done {
            id,
            result: "ticket #1 acknowledged by 张工",
        }
    } else {
        Outcome::Refused {
            id,
            detail: "ticket #1 is closed",
        }
    };
    let mut m = v.reply(op, outcome, 1);
    m.insert("seq".into(), json!(seq));
    Value::Object(m).to_string().into_bytes()
}

fn refused(s: &Shared) -> std::collections::BTreeMap<&'static str, u64> {
    s.model.lock().unwrap().counters.replies_refused.clone()
}

fn seq_of(s: &Shared, gw: &str) -> Option<u64> {
    s.model
        .lock()
        .unwrap()
        .sites
        .get("s1")
        .and_then(|g| g.get(gw))
        .map(|g| g.seq)
}

#[test]
fn reply_topics_are_recognised_exactly() {
    assert_eq!(
        reply_topic("bms", "bms/s1/gw-1/cmd/reply"),
        Some(("s1", "gw-1"))
    );
    assert_eq!(reply_topic("bms", "bms/s1/gw-1/cmd/ack"), None);
    assert_eq!(reply_topic("bms", "bms/s1/gw-1/cmd/reply/x"), None);
    assert_eq!(reply_topic("bms", "bmsx/s1/gw-1/cmd/reply"), None);
    assert_eq!(reply_topic("bms", "bms/s1/cmd/reply"), None);
}

#[test]
fn a_reply_from_another_gateways_topic_is_refused_and_the_real_one_completes_the_command() {
    let (_d, s) = shared();
    let mut rx = s.pending.wait("cmd-0001", "s1", "gw-1", "ack");
    // gw-2 shares the key; its (well-signed) refusal of the command
    // replayed on its topic must not answer the command sent to gw-1.
    s.take(
        "bms/s1/gw-2/cmd/reply",
        &reply_of("gw-2", KEY, "ack", "cmd-0001", false, 7),
        false,
        1,
    );
    assert!(rx.try_recv().is_err(), "a reply from gw-2 was believed");
    assert_eq!(refused(&s).get("wrong_topic"), Some(&1));
    // gw-2's reply moved gw-2's numbering only.
    assert_eq!(seq_of(&s, "gw-2"), Some(7));
    assert_eq!(seq_of(&s, "gw-1"), None);
    // gw-2's signed reply replayed on gw-1's topic: its signed gateway is not the topic's.
    s.take(
        "bms/s1/gw-1/cmd/reply",
        &reply_of("gw-2", KEY, "ack", "cmd-0001", true, 8),
        false,
        1,
    );
    assert!(rx.try_recv().is_err());
    assert_eq!(refused(&s).get("wrong_binding"), Some(&1));
    assert_eq!(seq_of(&s, "gw-1"), None);
    // The real reply still completes the command.
    s.take(
        "bms/s1/gw-1/cmd/reply",
        &reply_of("gw-1", KEY, "ack", "cmd-0001", true, 3),
        false,
        1,
    );
    let r = rx.try_recv().unwrap();
    assert!(r.ok);
    assert_eq!(r.text, "ticket #1 acknowledged by 张工");
    assert!(s.pending.is_empty());
    assert_eq!(s.model.lock().unwrap().counters.replies, 2);
    assert_eq!(seq_of(&s, "gw-1"), Some(3));
}

#[test]
fn unsigned_and_forged_replies_are_refused_and_the_command_keeps_waiting() {
    let (_d, s) = shared();
    let mut rx = s.pending.wait("cmd-0002", "s1", "gw-1", "ack");
    let topic = "bms/s1/gw-1/cmd/reply";
    // The reply of the old format: believed before, by id alone.
    let flat = json!({"id": "cmd-0002", "ok": true, "op": "ack", "result": "acknowledged (FORGED)", "seq": u64::MAX, "ts": 1});
    s.take(topic, flat.to_string().as_bytes(), false, 1);
    // Signed-looking but with a guessed key, and with no signature.
    let body = json!({"gateway": "gw-1", "id": "cmd-0002", "ok": true, "op": "ack",
                      "result": "acknowledged (FORGED)", "site": "s1", "ts": 1})
    .to_string();
    let guessed =
        json!({"body": body, "sig": gateway::cmdin::signature_hex("guess", &body), "seq": 99});
    s.take(topic, guessed.to_string().as_bytes(), false, 1);
    s.take(
        topic,
        json!({"body": body, "seq": 99}).to_string().as_bytes(),
        false,
        1,
    );
    // A reply for a gateway without a key.
    s.take(
        "bms/s9/gw-1/cmd/reply",
        &reply_of("gw-1", KEY, "ack", "cmd-0002", true, 5),
        false,
        1,
    );
    s.take(topic, b"not json", false, 1);
    assert!(rx.try_recv().is_err(), "a forged reply was believed");
    let r = refused(&s);
    assert_eq!(r.get("malformed"), Some(&2), "{r:?}");
    assert_eq!(r.get("bad_signature"), Some(&1), "{r:?}");
    assert_eq!(r.get("unsigned"), Some(&1), "{r:?}");
    assert_eq!(r.get("no_secret"), Some(&1), "{r:?}");
    // Nothing forged moved the numbering (seq 2^64-1 above).
    assert_eq!(seq_of(&s, "gw-1"), None);
    assert_eq!(s.pending.len(), 1);
    // The gateway's real refusal arrives: that is what the command gets.
    s.take(
        topic,
        &reply_of("gw-1", KEY, "ack", "cmd-0002", false, 4),
        false,
        1,
    );
    let r = rx.try_recv().unwrap();
    assert!(!r.ok);
    assert_eq!(r.text, "refused: ticket #1 is closed");
    assert_eq!(
        (r.reason.as_str(), r.detail.as_str()),
        ("refused", "ticket #1 is closed")
    );
}

#[test]
fn a_signed_reply_with_another_id_or_op_does_not_answer_the_command() {
    let (_d, s) = shared();
    let mut rx = s.pending.wait("cmd-0003", "s1", "gw-1", "resolve");
    let topic = "bms/s1/gw-1/cmd/reply";
    // Well signed by gw-1, but for another id: nobody here waits for it.
    s.take(
        topic,
        &reply_of("gw-1", KEY, "resolve", "cmd-9999", true, 1),
        false,
        1,
    );
    // The right id, but the op signed is not the command's.
    s.take(
        topic,
        &reply_of("gw-1", KEY, "ack", "cmd-0003", true, 2),
        false,
        1,
    );
    assert!(rx.try_recv().is_err());
    let r = refused(&s);
    assert_eq!(r.get("unmatched"), Some(&1), "{r:?}");
    assert_eq!(r.get("wrong_binding"), Some(&1), "{r:?}");
    // Signed with another gateway's key on gw-1's topic.
    let other = "another-key-of-at-least-thirty-two-bytes";
    s.take(
        topic,
        &reply_of("gw-1", other, "resolve", "cmd-0003", true, 3),
        false,
        1,
    );
    assert!(rx.try_recv().is_err());
    assert_eq!(refused(&s).get("bad_signature"), Some(&1));
    s.take(
        topic,
        &reply_of("gw-1", KEY, "resolve", "cmd-0003", true, 4),
        false,
        1,
    );
    assert!(rx.try_recv().unwrap().ok);
}

#[test]
fn refused_replies_are_logged_at_most_once_per_interval() {
    let p = Pending::default();
    let t0 = Instant::now();
    for i in 0..100 {
        p.log_refused(
            ReplyRefusal::BadSignature,
            "s1",
            "gw-1",
            t0 + Duration::from_millis(i),
        );
    }
    // One line at t0, the other 99 counted for the next line.
    assert_eq!(p.log.lock().unwrap().1, 99);
    p.log_refused(ReplyRefusal::Unsigned, "s1", "gw-1", t0 + LOG_EVERY);
    assert_eq!(p.log.lock().unwrap().1, 0);
}
