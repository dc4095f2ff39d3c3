#![allow(clippy::unwrap_used)]
use serde_json::{Value, json};

use super::*;

const T: i64 = 1_795_750_631_938;

fn state() -> Value {
    json!({"availability":{"below":true,"month":0.9712,"rolling":0.8450,"rolling_window_s":86400,"threshold":98.0},
           "class":"pump","device":"pump-1","location":"B1 水泵房","name_en":"Domestic water pump 1",
           "name_zh":"1号生活水泵","reason":"comms","seq":95,"since":T,"state":"down","ts":T,
           "alarms":[{"point":"fault","since":T}]})
}

fn ticket() -> Value {
    json!({"at":T,"event":"opened","seq":790,"ts":T,"ticket":{"id":1,"device":"fire-panel-1","class":"fire_alarm",
      "kind":"alarm:fault","severity":"critical","state":"open","summary":"故障 fault","opened_ms":T,
      "deadline_ms":T,"acknowledged":null,"arrived":null,"recovered_ms":null,"resolved":null,"closed":null,"reworks":0,
      "reopened_ms":null,"history":[{"kind":"opened","at_ms":T,"by":"auto","note":"","deadline_ms":T}]}})
}

fn bytes(v: &Value) -> Vec<u8> {
    serde_json::to_vec(v).unwrap()
}

fn reason_of<T: std::fmt::Debug>(r: Result<T, Refusal>) -> &'static str {
    r.unwrap_err().reason().as_str()
}

#[test]
fn the_documented_examples_parse() {
    let s = parse_state(&bytes(&state())).unwrap();
    assert_eq!(s.state, DeviceState::Down);
    assert_eq!(s.alarms.as_ref().unwrap()[0].point, "fault");
    parse_ticket(&bytes(&ticket())).unwrap();
    parse_status(br#"{"gateway":"gw-1","seq":447,"site":"demo-sales-centre","started_at":1795750631908,"state":"online","ts":1795750631938,"version":"0.1.0"}"#).unwrap();
    parse_telemetry(br#"{"class":"pump","device":"pump-1","points":{"fault":false,"frequency":45.41,"run_hours":10488,"label":"x","bad":null},"quality":{"bad":"not_read"},"seq":471,"ts":1795750631979,"units":{"frequency":"Hz"}}"#).unwrap();
    parse_event(br#"{"at":1795750567592,"device":"breakers-1","from":"up","reason":"gateway_down","seq":353,"to":"unknown","ts":1795750631919,"type":"transition"}"#).unwrap();
    parse_event(br#"{"at":1795750664000,"availability":0.66,"crossing":"below","device":"pump-2","seq":812,"threshold":98.0,"ts":1795750664001,"type":"threshold"}"#).unwrap();
    parse_alarm(br#"{"active":true,"at":1795750663003,"device":"fire-panel-1","point":"fault","seq":789,"ts":1795750663004}"#).unwrap();
    let sig = "a".repeat(64);
    let reply = json!({"body": r#"{"gateway":"gw-1","id":"3f2a9c1e-77b0","ok":true,"op":"ack","result":"ticket #1 acknowledged by 张工","site":"demo-sales-centre","ts":1795750670100}"#, "sig": sig, "seq": 901});
    parse_reply(&bytes(&reply)).unwrap();
}

#[test]
fn a_reply_envelope_is_bounded_and_names_nothing_else() {
    let ok = json!({"body": "{}", "sig": "0".repeat(64), "seq": 1});
    parse_reply(&bytes(&ok)).unwrap();
    let mut v = ok.clone();
    v["sig"] = json!("<script>");
    assert_eq!(reason_of(parse_reply(&bytes(&v))), "shape");
    let mut v = ok.clone();
    v["body"] = json!("x".repeat(MAX_REPLY_BODY + 1));
    assert_eq!(reason_of(parse_reply(&bytes(&v))), "too_long");
    let mut v = ok;
    v["ok"] = json!(true);
    assert_eq!(reason_of(parse_reply(&bytes(&v))), "shape");
    // The old unsigned flat reply is not a reply any more.
    let flat = json!({"id": "x", "ok": true, "op": "ack", "result": "done", "seq": 2, "ts": 1_795_750_670_100_i64});
    assert_eq!(reason_of(parse_reply(&bytes(&flat))), "shape");
}

#[test]
fn markup_in_the_threshold_is_refused_as_the_wrong_type() {
    let mut v = state();
    v["availability"]["threshold"] = json!("<img src=x onerror=alert(1)>");
    assert_eq!(reason_of(parse_state(&bytes(&v))), "shape");
    v["availability"]["threshold"] = json!(100.5);
    assert_eq!(reason_of(parse_state(&bytes(&v))), "out_of_range");
    v["availability"]["threshold"] = json!(98);
    v["availability"]["month"] = json!(1.01);
    assert_eq!(reason_of(parse_state(&bytes(&v))), "out_of_range");
}

#[test]
fn ids_and_texts_are_bounded() {
    let mut v = state();
    v["device"] = json!("<b>pump</b>");
    assert_eq!(reason_of(parse_state(&bytes(&v))), "bad_text");
    v["device"] = json!("p".repeat(65));
    assert_eq!(reason_of(parse_state(&bytes(&v))), "too_long");
    let mut v = state();
    v["name_zh"] = json!("x".repeat(501));
    assert_eq!(reason_of(parse_state(&bytes(&v))), "too_long");
    v["name_zh"] = json!("a\u{1b}[31m");
    assert_eq!(reason_of(parse_state(&bytes(&v))), "bad_text");
    // Markup in free text is text (the pages escape it), within bounds.
    v["name_zh"] = json!("<script>alert(1)</script>");
    parse_state(&bytes(&v)).unwrap();
}

#[test]
fn states_and_transition_targets_come_from_the_fixed_sets() {
    let mut v = state();
    v["state"] = json!("on-fire");
    assert_eq!(reason_of(parse_state(&bytes(&v))), "shape");
    let e = br#"{"at":1795750567592,"device":"b","from":"up","reason":null,"seq":3,"to":"on-fire","ts":1795750631919,"type":"transition"}"#;
    assert_eq!(reason_of(parse_event(e)), "shape");
    let e = br#"{"at":1795750567592,"device":"b","seq":3,"ts":1795750631919,"type":"party"}"#;
    assert_eq!(reason_of(parse_event(e)), "shape");
    let s = br#"{"seq":1,"state":"sideways","ts":1795750631919}"#;
    assert_eq!(reason_of(parse_status(s)), "shape");
}

#[test]
fn times_must_be_plausible_unix_ms() {
    let mut v = state();
    v["ts"] = json!(1);
    assert_eq!(reason_of(parse_state(&bytes(&v))), "out_of_range");
    v["ts"] = json!(T);
    v["since"] = json!(i64::MAX);
    assert_eq!(reason_of(parse_state(&bytes(&v))), "out_of_range");
    v["since"] = json!(1.5e12);
    assert_eq!(reason_of(parse_state(&bytes(&v))), "shape");
}

#[test]
fn a_ticket_whose_history_is_not_a_list_is_refused() {
    let mut v = ticket();
    v["ticket"]["history"] = json!("<img src=x>");
    assert_eq!(reason_of(parse_ticket(&bytes(&v))), "shape");
    v["ticket"]["history"] = json!({"0": 1});
    assert_eq!(reason_of(parse_ticket(&bytes(&v))), "shape");
    let mut v = ticket();
    v["ticket"]["state"] = json!("burning");
    assert_eq!(reason_of(parse_ticket(&bytes(&v))), "shape");
    let mut v = ticket();
    v["ticket"]["history"] = Value::Array(vec![v["ticket"]["history"][0].clone(); 1001]);
    assert_eq!(reason_of(parse_ticket(&bytes(&v))), "too_many");
}

#[test]
fn lists_must_be_lists_and_maps_are_bounded() {
    let mut v = state();
    v["alarms"] = json!({"point": "fault"});
    assert_eq!(reason_of(parse_state(&bytes(&v))), "shape");
    let many: serde_json::Map<String, Value> =
        (0..4097).map(|i| (format!("p{i}"), json!(1))).collect();
    let t = json!({"seq":1,"ts":T,"device":"d","points":many});
    assert_eq!(reason_of(parse_telemetry(&bytes(&t))), "too_many");
    let t = json!({"seq":1,"ts":T,"device":"d","points":{"a":"x".repeat(1025)}});
    assert_eq!(reason_of(parse_telemetry(&bytes(&t))), "too_long");
    let t = json!({"seq":1,"ts":T,"device":"d","points":{"a":[1,2]}});
    assert_eq!(reason_of(parse_telemetry(&bytes(&t))), "shape");
    assert_eq!(reason_of(parse_telemetry(b"[1,2]")), "shape");
    assert_eq!(reason_of(parse_telemetry(b"{not json")), "not_json");
    let deep = format!("{{\"x\":{}", "[".repeat(10_000));
    assert_eq!(reason_of(parse_telemetry(deep.as_bytes())), "not_json");
}

#[test]
fn seq_must_be_an_unsigned_integer() {
    for seq in [json!(-1), json!(1.5), json!("7"), json!(null)] {
        let mut v = state();
        v["seq"] = seq;
        assert_eq!(reason_of(parse_state(&bytes(&v))), "shape");
    }
    let mut v = state();
    v["seq"] = json!(u64::MAX);
    assert_eq!(parse_state(&bytes(&v)).unwrap().seq, u64::MAX);
}

#[test]
fn topics_are_taken_apart_and_their_segments_checked() {
    let t = parse_topic("bms", "bms/s-1/gw-1/pump-1/state").unwrap();
    assert_eq!(
        (t.site, t.gateway, t.kind),
        ("s-1", "gw-1", Kind::State("pump-1"))
    );
    assert_eq!(
        parse_topic("bms", "bms/s/g/tickets/12").unwrap().kind,
        Kind::Ticket(12)
    );
    assert_eq!(
        parse_topic("bms", "bms/s/g/cmd/reply").unwrap().kind,
        Kind::Reply
    );
    for bad in [
        "other/s/g/status",
        "bms/s/status",
        "bms/<b>/g/status",
        "bms/s/g/tickets/+1",
        "bms/s/g/tickets/x",
        "bms/s/g/d/e/f/state",
        "bms/s/g/d%/state",
        "bms/s/g/d/nonsense",
        "bms//g/status",
    ] {
        assert_eq!(reason_of(parse_topic("bms", bad)), "bad_topic", "{bad}");
    }
}

#[test]
fn a_payload_must_agree_with_its_topic() {
    let t = parse_topic("bms", "bms/s/g/pump-2/state").unwrap();
    assert_eq!(reason_of(parse(&t, &bytes(&state()))), "inconsistent");
    let t = parse_topic("bms", "bms/s/g/tickets/2").unwrap();
    assert_eq!(reason_of(parse(&t, &bytes(&ticket()))), "inconsistent");
    let t = parse_topic("bms", "bms/s/g/pump-1/state").unwrap();
    assert!(matches!(
        parse(&t, &bytes(&state())).unwrap(),
        Message::State(_)
    ));
}

#[test]
fn a_parsed_payload_serialises_to_the_same_shape() {
    let s = parse_state(&bytes(&state())).unwrap();
    assert_eq!(serde_json::to_value(&s).unwrap(), state());
    let t = parse_ticket(&bytes(&ticket())).unwrap();
    assert_eq!(serde_json::to_value(&t).unwrap(), ticket());
}

#[test]
fn a_ticket_from_a_gateway_without_arrivals_reads_with_none_and_an_arrival_reads_back() {
    let mut v = ticket();
    v["ticket"].as_object_mut().unwrap().remove("arrived");
    assert_eq!(parse_ticket(&bytes(&v)).unwrap().ticket.arrived, None);
    v["event"] = json!("arrived");
    v["ticket"]["arrived"] = json!({"by": "张工", "at_ms": T, "note": "到了"});
    v["ticket"]["history"]
        .as_array_mut()
        .unwrap()
        .push(json!({"kind": "arrived", "at_ms": T, "by": "张工", "note": "到了"}));
    let m = parse_ticket(&bytes(&v)).unwrap();
    assert_eq!(m.event, TicketEventKind::Arrived);
    assert_eq!(m.ticket.arrived.unwrap().by, "张工");
    v["ticket"]["arrived"]["at_ms"] = json!("soon");
    assert!(parse_ticket(&bytes(&v)).is_err());
}

#[test]
fn figures_are_read_back_as_the_very_numbers_written() {
    // 90252 / (90252 + 9729): a ratio whose shortest text the default
    // serde_json parser reads 1 ulp too high.
    let month = 90_252.0 / (90_252.0 + 9_729.0);
    let mut v = state();
    v["availability"]["month"] = json!(month);
    let text = serde_json::to_string(&v).unwrap();
    assert!(text.contains("0.9026915113871635"), "{text}");
    let s = parse_state(text.as_bytes()).unwrap();
    assert_eq!(s.availability.unwrap().month, Some(month));
}
