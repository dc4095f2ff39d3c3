#![allow(clippy::unwrap_used)]
use super::*;

const T: i64 = 1_795_750_631_938;

fn m() -> Model {
    Model::new("bms", vec![])
}

fn state_msg(seq: u64, st: &str) -> Vec<u8> {
    state_of("pump-1", seq, st)
}

fn state_of(dev: &str, seq: u64, st: &str) -> Vec<u8> {
    json!({"seq": seq, "ts": T, "device": dev, "class": "pump", "name_zh": "1号泵",
           "name_en": "Pump 1", "location": "B1", "state": st, "since": T, "reason": null,
           "availability": {"month": 0.97, "rolling": 0.9, "threshold": 98.0, "below": true, "rolling_window_s": 900}})
    .to_string()
    .into_bytes()
}

fn ticket_msg(seq: u64, id: u64) -> Vec<u8> {
    json!({"seq": seq, "ts": T, "event": "opened", "at": T, "ticket": {"id": id, "device": "fire-panel-1",
           "class": "fire_alarm", "kind": "alarm:fault", "severity": "critical", "state": "open",
           "summary": "故障 fault", "opened_ms": T, "deadline_ms": T, "acknowledged": null,
           "recovered_ms": null, "resolved": null, "closed": null, "reworks": 0, "reopened_ms": null,
           "history": [{"kind": "opened", "at_ms": T, "by": "auto", "note": ""}]}})
    .to_string()
    .into_bytes()
}

#[test]
fn state_then_snapshot() {
    let mut m = m();
    assert_eq!(
        m.apply(
            "bms/s1/gw-1/pump-1/state",
            &state_msg(5, "down"),
            true,
            1000
        ),
        Applied::Changed
    );
    let s = m.snapshot(1000, 150_000);
    let d = &s["sites"][0]["devices"][0];
    assert_eq!(d["name_zh"], "1号泵");
    assert_eq!(d["shown"], "down");
    let c = &s["sites"][0]["classes"]["pump"];
    assert_eq!(c["down"], 1);
    assert_eq!(c["target"], 98.0);
    assert_eq!(c["below"], true);
    // Stale once nothing is heard for stale_after.
    let s = m.snapshot(1000 + 150_001, 150_000);
    assert_eq!(s["sites"][0]["devices"][0]["shown"], "stale");
}

#[test]
fn duplicates_and_gaps_are_counted() {
    let mut m = m();
    m.apply("bms/s1/gw-1/pump-1/state", &state_msg(10, "up"), false, 1);
    assert_eq!(
        m.apply("bms/s1/gw-1/pump-1/state", &state_msg(10, "down"), false, 2),
        Applied::Ignored
    );
    assert_eq!(m.counters.duplicates, 1);
    m.apply("bms/s1/gw-1/pump-1/state", &state_msg(14, "down"), false, 3);
    assert_eq!((m.counters.gaps, m.counters.missing), (1, 3));
    assert_eq!(
        m.sites["s1"]["gw-1"].devices["pump-1"].state,
        Some(DeviceState::Down)
    );
}

#[test]
fn retained_messages_in_any_order_are_not_gaps() {
    let mut m = m();
    m.apply("bms/s1/gw-1/pump-1/state", &state_msg(50, "up"), true, 1);
    m.apply(
        "bms/s1/gw-1/pump-2/state",
        &state_of("pump-2", 7, "down"),
        true,
        1,
    );
    assert_eq!(m.counters.gaps + m.counters.duplicates, 0);
    assert_eq!(m.sites["s1"]["gw-1"].devices.len(), 2);
}

#[test]
fn malformed_messages_are_counted_and_harmless() {
    let mut m = m();
    let mut now = 0;
    let mut apply = |m: &mut Model, topic: &str, p: &[u8]| {
        now += LOG_EVERY_MS;
        m.apply(topic, p, false, now)
    };
    for p in [
        &b"{not json"[..],
        b"[1]",
        br#"{"seq":3,"state":"sideways"}"#,
    ] {
        assert!(matches!(
            apply(&mut m, "bms/s1/gw-1/pump-1/state", p),
            Applied::Refused(Some(_))
        ));
    }
    assert!(matches!(
        apply(&mut m, "bms/s1/gw-1/tickets/x", br#"{"seq":4}"#),
        Applied::Refused(Some(_))
    ));
    assert_eq!(m.counters.unknown_topics, 1);
    // A malformed message with a huge seq does not poison the numbering.
    apply(&mut m, "bms/s1/gw-1/pump-1/state", &state_msg(1, "up"));
    for p in [
        &br#"{"seq":999999999,"state":"sideways"}"#[..],
        br#"{"seq":1,"state":"sideways"}"#,
    ] {
        assert!(matches!(
            apply(&mut m, "bms/s1/gw-1/pump-1/state", p),
            Applied::Refused(Some(_))
        ));
    }
    assert_eq!(m.counters.malformed, 5);
    assert_eq!(m.counters.malformed_by_kind["state"]["not_json"], 1);
    assert_eq!(m.counters.malformed_by_kind["state"]["shape"], 4);
    assert_eq!(
        apply(&mut m, "bms/s1/gw-1/pump-1/state", &state_msg(5, "up")),
        Applied::Changed
    );
}

#[test]
fn tickets_alarms_and_replies() {
    let mut m = m();
    assert_eq!(
        m.apply("bms/s1/gw-1/tickets/1", &ticket_msg(3, 1), false, 1),
        Applied::Changed
    );
    let a = json!({"seq": 4, "ts": T, "device": "fire-panel-1", "point": "fault", "active": true, "at": T});
    m.apply("bms/s1/gw-1/alarm", a.to_string().as_bytes(), false, 1);
    let s = m.snapshot(1, 1000);
    assert_eq!(s["sites"][0]["tickets"][0]["id"], 1);
    assert_eq!(s["sites"][0]["alarms"][0]["point"], "fault");
    // A reply (its signature checked before the model, in commands.rs)
    // only counts and moves the numbering.
    let r = json!({"seq": 5, "body": "{}", "sig": "0".repeat(64)});
    assert_eq!(
        m.apply("bms/s1/gw-1/cmd/reply", r.to_string().as_bytes(), false, 1),
        Applied::Ignored
    );
    assert_eq!(m.counters.replies, 1);
    // Commands going out are not news, and other sites are filtered.
    assert_eq!(
        m.apply("bms/s1/gw-1/cmd/ack", b"{}", false, 1),
        Applied::Ignored
    );
    let mut f = Model::new("bms", vec!["s2".into()]);
    assert_eq!(
        f.apply("bms/s1/gw-1/pump-1/state", &state_msg(5, "up"), false, 1),
        Applied::Refused(None)
    );
}

fn status_msg(seq: u64, ts: i64, started_at: i64) -> Vec<u8> {
    json!({"gateway": "gw-1", "site": "s1", "seq": seq, "state": "online", "ts": ts,
           "started_at": started_at, "version": "0.1.0"})
    .to_string()
    .into_bytes()
}

fn shown(m: &Model) -> Option<DeviceState> {
    m.sites["s1"]["gw-1"].devices["pump-1"].state
}

const TOPIC: &str = "bms/s1/gw-1/pump-1/state";

#[test]
fn a_forged_seq_of_u64_max_does_not_make_later_real_messages_duplicates() {
    let mut m = m();
    m.apply(TOPIC, &state_msg(100, "up"), false, 1);
    assert_eq!(
        m.apply(TOPIC, &state_msg(u64::MAX, "down"), false, 2),
        Applied::Refused(Some(format!(
            "{TOPIC}: seq {} jumps more than {SEQ_BOUND} ahead; not believed (out_of_range)",
            u64::MAX
        )))
    );
    assert_eq!(m.counters.seq_jumps_refused, 1);
    assert_eq!(shown(&m), Some(DeviceState::Up));
    assert_eq!(
        m.apply(TOPIC, &state_msg(101, "down"), false, 3),
        Applied::Changed
    );
    assert_eq!(shown(&m), Some(DeviceState::Down));
    assert_eq!((m.counters.duplicates, m.counters.gaps), (0, 0));
}

#[test]
fn before_any_live_message_the_status_seq_bounds_a_jump() {
    let mut m = m();
    m.apply("bms/s1/gw-1/status", &status_msg(500, T, T - 10), true, 1);
    assert!(matches!(
        m.apply(TOPIC, &state_msg(u64::MAX, "down"), false, 2),
        Applied::Refused(Some(_))
    ));
    assert_eq!(m.counters.seq_jumps_refused, 1);
    assert_eq!(
        m.apply(TOPIC, &state_msg(501, "up"), false, 3),
        Applied::Changed
    );
}

#[test]
fn a_poisoned_high_mark_without_a_reference_heals_at_the_next_real_message() {
    // Nothing known of the gateway: the first live number is believed, even
    // a forged one; a real one far below is not a resend and is believed.
    let mut m = m();
    m.apply(TOPIC, &state_msg(u64::MAX, "down"), false, 1);
    assert_eq!(
        m.apply(TOPIC, &state_msg(42, "up"), false, 2),
        Applied::Changed
    );
    assert_eq!(m.counters.seq_rollbacks, 1);
    assert_eq!(shown(&m), Some(DeviceState::Up));
    assert_eq!(m.counters.missing, 0);
    // Resends just below stay duplicates.
    assert_eq!(
        m.apply(TOPIC, &state_msg(41, "down"), false, 3),
        Applied::Ignored
    );
    assert_eq!(m.counters.duplicates, 1);
}

#[test]
fn a_rollback_within_the_bound_is_a_resend() {
    let mut m = m();
    m.apply(TOPIC, &state_msg(2_000_000, "up"), false, 1);
    assert_eq!(
        m.apply(TOPIC, &state_msg(1_000_000, "down"), false, 2),
        Applied::Ignored
    );
    assert_eq!(m.counters.duplicates, 1);
    assert_eq!(
        m.apply(TOPIC, &state_msg(999_999, "down"), false, 3),
        Applied::Changed
    );
    assert_eq!(m.counters.seq_rollbacks, 1);
}

#[test]
fn a_real_restart_resets_the_window() {
    let mut m = m();
    m.apply("bms/s1/gw-1/status", &status_msg(10, T, T - 10), false, 1);
    m.apply(TOPIC, &state_msg(11, "up"), false, 2);
    // The gateway's disk was replaced: it starts again from 1, and says so.
    m.apply(
        "bms/s1/gw-1/status",
        &status_msg(0, T + 100, T + 50),
        false,
        3,
    );
    assert_eq!(m.counters.seq_restarts, 1);
    assert_eq!(
        m.apply(TOPIC, &state_msg(1, "down"), false, 4),
        Applied::Changed
    );
    assert_eq!(m.counters.duplicates, 0);
}

#[test]
fn a_status_from_the_far_future_does_not_freeze_the_status() {
    let mut m = m();
    let far = bms_wire::check::MAX_UNIX_MS;
    m.apply("bms/s1/gw-1/status", &status_msg(1, far, T - 10), true, T);
    let offline = json!({"gateway": "gw-1", "site": "s1", "seq": 0, "state": "offline",
                         "ts": T, "started_at": T - 10});
    m.apply(
        "bms/s1/gw-1/status",
        offline.to_string().as_bytes(),
        true,
        T,
    );
    assert_eq!(m.sites["s1"]["gw-1"].status, Some(Online::Offline));
}

#[test]
fn counters_saturate() {
    let mut m = m();
    m.apply(TOPIC, &state_msg(10, "up"), false, 1);
    m.counters.missing = u64::MAX - 1;
    m.counters.gaps = u64::MAX;
    m.apply(TOPIC, &state_msg(1000, "up"), false, 2);
    assert_eq!((m.counters.missing, m.counters.gaps), (u64::MAX, u64::MAX));
}

#[test]
fn markup_in_the_threshold_is_refused_and_never_shown() {
    let mut m = m();
    let mut v: Json = serde_json::from_slice(&state_msg(5, "up")).unwrap();
    v["availability"]["threshold"] = json!("<img src=x onerror=alert(1)>");
    let r = m.apply(TOPIC, v.to_string().as_bytes(), true, 1);
    assert!(matches!(r, Applied::Refused(Some(_))), "{r:?}");
    assert_eq!(m.counters.malformed_by_kind["state"]["shape"], 1);
    assert!(m.sites.is_empty());
    assert!(!m.snapshot(1, 1000).to_string().contains("onerror"));
}

#[test]
fn refusals_are_logged_at_most_once_per_kind_per_interval() {
    let mut m = m();
    let logged = (0..1000)
        .filter(|i| matches!(m.apply(TOPIC, b"[]", false, *i), Applied::Refused(Some(_))))
        .count();
    assert_eq!(logged, 1);
    assert_eq!(m.counters.malformed, 1000);
    match m.apply(TOPIC, b"[]", false, LOG_EVERY_MS) {
        Applied::Refused(Some(t)) => assert!(t.contains("999 more state refusals"), "{t}"),
        other => panic!("{other:?}"),
    }
}

fn small() -> Limits {
    Limits {
        max_sites: 2,
        max_gateways_per_site: 2,
        max_devices_per_gateway: 3,
        max_points_per_device: 4,
        max_tickets_per_gateway: 2,
        max_payload_bytes: 2048,
    }
}

#[test]
fn sites_gateways_and_devices_beyond_the_caps_are_refused_and_counted() {
    let mut m = m().with_limits(small());
    for s in 0..10 {
        for g in 0..10 {
            for d in 0..10 {
                let dev = format!("d{d}");
                m.apply(
                    &format!("bms/s{s}/gw{g}/{dev}/state"),
                    &state_of(&dev, 1, "up"),
                    true,
                    1,
                );
            }
        }
    }
    assert_eq!(m.sites.len(), 2);
    assert!(m.sites.values().all(|g| g.len() == 2));
    assert!(
        m.sites
            .values()
            .flat_map(|g| g.values())
            .all(|g| g.devices.len() == 3)
    );
    let c = &m.counters.refused_by_cap;
    assert_eq!(c["sites"], 8 * 10 * 10);
    assert_eq!(c["gateways"], 2 * 8 * 10);
    assert_eq!(c["devices"], 2 * 2 * 7);
}

#[test]
fn points_tickets_and_payload_bytes_beyond_the_caps_are_refused_and_counted() {
    let mut m = m().with_limits(small());
    let tel = |names: &[&str]| {
        let points: Map<String, Json> = names.iter().map(|n| (n.to_string(), json!(1))).collect();
        json!({"seq": 1, "ts": T, "device": "pump-1", "points": points})
            .to_string()
            .into_bytes()
    };
    let topic = "bms/s1/gw-1/pump-1/telemetry";
    assert_eq!(
        m.apply(topic, &tel(&["a", "b", "c"]), true, 1),
        Applied::Changed
    );
    assert!(matches!(
        m.apply(topic, &tel(&["d", "e"]), true, 1),
        Applied::Refused(Some(_))
    ));
    assert_eq!(m.apply(topic, &tel(&["a", "d"]), true, 1), Applied::Changed);
    assert_eq!(m.sites["s1"]["gw-1"].devices["pump-1"].points.len(), 4);
    let big = tel(&(0..400).map(|_| "a").collect::<Vec<_>>());
    let mut big = big;
    big.extend(std::iter::repeat_n(b' ', 4096));
    m.apply(topic, &big, true, 1);
    for n in 1..=3 {
        m.apply(
            &format!("bms/s1/gw-1/tickets/{n}"),
            &ticket_msg(n, n),
            true,
            1,
        );
    }
    assert_eq!(m.sites["s1"]["gw-1"].tickets.len(), 2);
    let c = &m.counters.refused_by_cap;
    assert_eq!((c["points"], c["payload_bytes"], c["tickets"]), (1, 1, 1));
}

#[test]
fn sites_and_gateways_outside_the_allow_list_are_refused_and_counted() {
    let file: crate::config::Config = toml::from_str("[mqtt]\ngateways = [\"s1/gw-1\"]\n").unwrap();
    let mut m = Model::configured(&file);
    m.apply(TOPIC, &state_msg(1, "up"), true, 1);
    m.apply("bms/s1/gw-2/pump-1/state", &state_msg(1, "up"), true, 1);
    m.apply("bms/s2/gw-1/pump-1/state", &state_msg(1, "up"), true, 1);
    assert_eq!(m.counters.not_allowed, 2);
    assert_eq!(m.sites.len(), 1);
    assert_eq!(m.snapshot(1, 1000)["rotate_sites"], json!(["s1"]));
}

#[test]
fn two_gateways_of_a_site_with_the_same_device_id_stay_two_devices() {
    let mut m = m();
    m.apply(TOPIC, &state_msg(1, "up"), true, 1);
    m.apply("bms/s1/gw-2/pump-1/state", &state_msg(1, "down"), true, 1);
    let s = m.snapshot(1, 1000);
    let devs = s["sites"][0]["devices"].as_array().unwrap();
    assert_eq!(devs.len(), 2);
    assert_eq!(
        (devs[0]["gateway"].clone(), devs[0]["state"].clone()),
        (json!("gw-1"), json!("up"))
    );
    assert_eq!(
        (devs[1]["gateway"].clone(), devs[1]["state"].clone()),
        (json!("gw-2"), json!("down"))
    );
    assert_eq!(
        m.device("s1", "gw-1", "pump-1", 1, 1000).unwrap()["state"],
        "up"
    );
    assert_eq!(
        m.device("s1", "gw-2", "pump-1", 1, 1000).unwrap()["state"],
        "down"
    );
    assert!(m.device("s1", "gw-3", "pump-1", 1, 1000).is_none());
}

#[test]
fn the_retained_alarms_list_brings_the_banner_back_after_a_restart() {
    let mut m = m();
    let mut v: Json = serde_json::from_slice(&state_msg(7, "down")).unwrap();
    v["alarms"] = json!([{"point": "leak", "since": T}]);
    m.apply(TOPIC, v.to_string().as_bytes(), true, 1);
    let s = m.snapshot(1, 1000);
    assert_eq!(s["sites"][0]["alarms"][0]["point"], "leak");
    assert_eq!(s["sites"][0]["alarms"][0]["gateway"], "gw-1");
    assert_eq!(s["sites"][0]["devices"][0]["alarms"], json!(["leak"]));
    // A later state without the alarm clears it; live alarms keep working.
    v["alarms"] = json!([]);
    v["seq"] = json!(8);
    m.apply(TOPIC, v.to_string().as_bytes(), false, 2);
    assert_eq!(m.snapshot(2, 1000)["sites"][0]["alarms"], json!([]));
    let a =
        json!({"seq": 9, "ts": T, "device": "pump-1", "point": "leak", "active": true, "at": T});
    m.apply("bms/s1/gw-1/alarm", a.to_string().as_bytes(), false, 3);
    assert_eq!(
        m.snapshot(3, 1000)["sites"][0]["alarms"][0]["point"],
        "leak"
    );
}

#[test]
fn the_metrics_text_is_grouped_per_metric() {
    let mut m = m().with_limits(small());
    m.apply(TOPIC, b"[]", false, 1);
    m.apply(TOPIC, &[b' '; 4096], false, 1);
    let text = prometheus(&m.counters, &[("history_dropped_total", "Dropped.", 3)]);
    assert!(text.contains(
        "# HELP bms_dashboard_malformed_total Payloads refused as not what docs/mqtt.md says, by kind and reason.\n# TYPE bms_dashboard_malformed_total counter\nbms_dashboard_malformed_total{kind=\"state\",reason=\"shape\"} 1\n"
    ), "{text}");
    assert!(text.contains("bms_dashboard_refused_by_cap_total{cap=\"payload_bytes\"} 1\n"));
    assert!(text.contains("bms_dashboard_history_dropped_total 3\n"));
    // Each metric's HELP comes once, right before its TYPE.
    let helps = text.lines().filter(|l| l.starts_with("# HELP")).count();
    let types = text.lines().filter(|l| l.starts_with("# TYPE")).count();
    assert_eq!(helps, types);
}

fn names(v: &[&str]) -> Vec<String> {
    v.iter().map(|s| (*s).to_owned()).collect()
}

#[test]
fn tile_names_drop_what_every_device_of_the_class_shares() {
    use crate::model::{Lang, shorten};
    let en = names(&["Domestic water pump 1", "Domestic water pump 2"]);
    assert_eq!(shorten(&en, Lang::En), names(&["Pump 1", "Pump 2"]));
    let en = names(&["Lobby fan coil", "VIP room fan coil", "Office fan coil"]);
    assert_eq!(
        shorten(&en, Lang::En),
        names(&["Lobby", "VIP room", "Office"])
    );
    let zh = names(&["大堂风机盘管", "VIP室风机盘管", "办公室风机盘管"]);
    assert_eq!(shorten(&zh, Lang::Zh), names(&["大堂", "VIP室", "办公室"]));
    // Too little would be left ("1", "2"): the names stay whole.
    let zh = names(&["1号生活水泵", "2号生活水泵"]);
    assert_eq!(shorten(&zh, Lang::Zh), zh);
    let en = names(&[
        "Leak detection, B1 pump room",
        "Leak detection, B1 switch room",
    ]);
    assert_eq!(
        shorten(&en, Lang::En),
        names(&["B1 pump room", "B1 switch room"])
    );
    // One device, or nothing shared: unchanged.
    assert_eq!(
        shorten(&names(&["Passenger lift 1"]), Lang::En),
        names(&["Passenger lift 1"])
    );
    let en = names(&["Main incomer meter", "Lighting board breakers"]);
    assert_eq!(shorten(&en, Lang::En), en);
    // Dropping would make two equal: unchanged.
    let en = names(&["Pump 1", "Pump 1"]);
    assert_eq!(shorten(&en, Lang::En), en);
}

const MIN: i64 = 60_000;

#[test]
fn downtime_left_is_the_month_allowance_less_the_downtime_so_far() {
    use crate::model::{DeviceMonth, budget};
    // A 30-day month, two pumps at 98 %: 2 × 2 % × 43 200 min = 1728 min.
    let (start, end) = (0i64, 30 * 1440 * MIN);
    let now = 10 * 1440 * MIN;
    let up = |month, ts| DeviceMonth {
        month: Some(month),
        threshold: 98.0,
        state_ts: Some(ts),
        down_now: false,
        up_ms: None,
        down_ms: None,
    };
    // Pump 1 was down 1 % of the 10 days so far (144 min), pump 2 never.
    let b = budget(&[up(0.99, now), up(1.0, now)], start, end, now).unwrap();
    assert_eq!(b.allowed_ms, 1728 * MIN);
    assert_eq!(b.down_ms, 144 * MIN);
    assert_eq!(b.left_ms, 1584 * MIN);
    assert_eq!(b.level(), "ok");
    // Down now since its last state an hour ago: the hour counts at once.
    let down = DeviceMonth {
        down_now: true,
        ..up(0.99, now - 60 * MIN)
    };
    let b = budget(&[down, up(1.0, now)], start, end, now).unwrap();
    let d0 = ((1.0 - 0.99) * (now - 60 * MIN) as f64).round() as i64;
    assert_eq!(b.down_ms, d0 + 60 * MIN);
    assert!(b.month_now.unwrap() < (0.99 + 1.0) / 2.0);
    // Target missed: more down than allowed.
    let b = budget(&[up(0.80, now), up(1.0, now)], start, end, now).unwrap();
    assert!(b.left_ms < 0);
    assert_eq!(b.level(), "missed");
    // A state with its Down time: taken as it is, not estimated (a
    // gateway that has run for ten minutes, down one of them).
    let exact = DeviceMonth {
        up_ms: Some(9 * MIN),
        down_ms: Some(MIN),
        ..up(0.9, now)
    };
    let b = budget(&[exact], start, end, now).unwrap();
    assert_eq!(b.down_ms, MIN);
    assert_eq!(b.month_now, Some(0.9));
    // Amber below half the allowance, red below a tenth.
    let b = budget(&[up(0.93, now)], start, end, now).unwrap();
    assert_eq!((b.allowed_ms, b.down_ms), (864 * MIN, 1008 * MIN));
    let amber = budget(&[up(0.95, now)], start, end, now).unwrap();
    assert_eq!(amber.level(), "amber", "{amber:?}");
    let red = budget(&[up(0.942, now)], start, end, now).unwrap();
    assert_eq!(red.level(), "red", "{red:?}");
}

#[test]
fn downtime_left_starts_afresh_at_the_month_boundary_and_needs_data() {
    use crate::model::{DeviceMonth, budget};
    let (start, end) = (1_000 * MIN, 1_000 * MIN + 30 * 1440 * MIN);
    // The latest state is last month's (its 90 % is last month's figure):
    // nothing of it counts, the whole allowance is left.
    let old = DeviceMonth {
        month: Some(0.90),
        threshold: 99.0,
        state_ts: Some(start - 5 * MIN),
        down_now: false,
        up_ms: None,
        down_ms: None,
    };
    let b = budget(&[old], start, end, start + MIN).unwrap();
    assert_eq!((b.down_ms, b.left_ms), (0, b.allowed_ms));
    // Down across midnight of the 1st: only this month's part counts.
    let across = DeviceMonth {
        down_now: true,
        ..old
    };
    let b = budget(&[across], start, end, start + 30 * MIN).unwrap();
    assert_eq!(b.down_ms, 30 * MIN);
    // No figures and nothing down: no data, no budget.
    let none = DeviceMonth {
        month: None,
        threshold: 99.0,
        state_ts: None,
        down_now: false,
        up_ms: None,
        down_ms: None,
    };
    assert_eq!(budget(&[none], start, end, start + MIN), None);
    assert_eq!(budget(&[], start, end, start + MIN), None);
}
