use super::*;

const MIN: i64 = 60_000;
/// 2026-11-10 00:00 Asia/Shanghai.
const T0: i64 = 1_794_240_000_000;

fn writer() -> (tempfile::TempDir, Writer) {
    let dir = tempfile::tempdir().unwrap();
    let conn = open(&dir.path().join(FILE)).unwrap();
    (dir, Writer::new(conn))
}

fn topic(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| (*s).to_owned()).collect()
}

fn transition(w: &mut Writer, gw: &str, seq: i64, device: &str, at: i64, from: &str, to: &str) {
    let p = json!({"type":"transition","seq":seq,"device":device,"at":at,"from":from,"to":to,
        "reason": if to == "down" { Json::from("comms") } else { Json::Null },"ts":at + 5});
    w.record(
        &topic(&["s1", gw, device, "event"]),
        p.to_string().as_bytes(),
        at + 10,
    )
    .unwrap();
}

fn site() -> SiteInfo {
    SiteInfo {
        id: "s1".to_owned(),
        name: "s1".to_owned(),
        timezone: "Asia/Shanghai".to_owned(),
    }
}

fn intervals(w: &Writer, now: i64) -> Vec<(String, DeviceState, i64, i64)> {
    let mut v: Vec<_> = input(w.conn(), &site(), 2026, 11, now)
        .unwrap()
        .unwrap()
        .intervals
        .into_iter()
        .map(|i| (i.device, i.state, i.from_ms, i.to_ms))
        .collect();
    v.sort_by(|a, b| (&a.0, a.2).cmp(&(&b.0, b.2)));
    v
}

use DeviceState::{Down, Unknown, Up};
use serde_json::json;

#[test]
fn a_resent_transition_is_counted_once() {
    let (_d, mut w) = writer();
    transition(&mut w, "gw", 1, "p1", T0, "unknown", "up");
    transition(&mut w, "gw", 2, "p1", T0 + 10 * MIN, "up", "down");
    // The same seq again after a reconnect (even with other content).
    transition(&mut w, "gw", 2, "p1", T0 + 11 * MIN, "up", "down");
    transition(&mut w, "gw", 3, "p1", T0 + 20 * MIN, "down", "up");
    let n: i64 = w
        .conn()
        .query_row("SELECT COUNT(*) FROM transitions", [], |r| r.get(0))
        .unwrap();
    assert_eq!(n, 3);
    assert_eq!(
        intervals(&w, T0 + 30 * MIN),
        vec![
            ("p1".to_owned(), Up, T0, T0 + 10 * MIN),
            ("p1".to_owned(), Down, T0 + 10 * MIN, T0 + 20 * MIN),
            ("p1".to_owned(), Up, T0 + 20 * MIN, T0 + 30 * MIN),
        ]
    );
}

#[test]
fn the_same_seq_from_two_gateways_is_two_transitions() {
    let (_d, mut w) = writer();
    transition(&mut w, "gw-a", 1, "p1", T0, "unknown", "up");
    transition(&mut w, "gw-b", 1, "p2", T0, "unknown", "down");
    let v = intervals(&w, T0 + MIN);
    assert_eq!(v.len(), 2);
}

#[test]
fn transitions_received_out_of_order_give_the_same_intervals() {
    let (_d, mut a) = writer();
    let (_e, mut b) = writer();
    let list = [
        (1, T0, "unknown", "up"),
        (2, T0 + 5 * MIN, "up", "down"),
        (3, T0 + 7 * MIN, "down", "up"),
        (4, T0 + 9 * MIN, "up", "down"),
    ];
    for (seq, at, f, t) in list {
        transition(&mut a, "gw", seq, "p1", at, f, t);
    }
    for (seq, at, f, t) in list.into_iter().rev() {
        transition(&mut b, "gw", seq, "p1", at, f, t);
    }
    assert_eq!(intervals(&a, T0 + 10 * MIN), intervals(&b, T0 + 10 * MIN));
    assert_eq!(intervals(&a, T0 + 10 * MIN).len(), 4);
}

#[test]
fn an_offline_gateway_ends_its_devices_at_the_time_it_went_offline() {
    let (_d, mut w) = writer();
    transition(&mut w, "gw", 1, "p1", T0, "unknown", "up");
    transition(&mut w, "gw", 2, "p2", T0, "unknown", "up");
    // Another gateway of the site stays online.
    transition(&mut w, "gw-2", 1, "p3", T0, "unknown", "up");
    // A clean stop at T0 + 30 min.
    let off = json!({"gateway":"gw","site":"s1","state":"offline","seq":9,"ts":T0 + 30 * MIN,"started_at":T0});
    w.record(
        &topic(&["s1", "gw", "status"]),
        off.to_string().as_bytes(),
        T0 + 30 * MIN + 20,
    )
    .unwrap();
    let now = T0 + 60 * MIN;
    let v = intervals(&w, now);
    assert_eq!(
        v,
        vec![
            ("p1".to_owned(), Up, T0, T0 + 30 * MIN),
            ("p1".to_owned(), Unknown, T0 + 30 * MIN, now),
            ("p2".to_owned(), Up, T0, T0 + 30 * MIN),
            ("p2".to_owned(), Unknown, T0 + 30 * MIN, now),
            ("p3".to_owned(), Up, T0, now),
        ]
    );
    let i = input(w.conn(), &site(), 2026, 11, now).unwrap().unwrap();
    assert!(
        i.intervals
            .iter()
            .filter(|i| i.state == Unknown)
            .all(|i| i.reason.as_deref() == Some("gateway_down"))
    );

    // The last will carries the time of its connection: the offline time
    // is the last time anything was heard from the gateway.
    let (_e, mut w) = writer();
    transition(&mut w, "gw", 1, "p1", T0, "unknown", "up");
    w.record(&topic(&["s1", "gw", "p1", "telemetry"]), b"", T0 + 40 * MIN)
        .unwrap();
    let will = json!({"gateway":"gw","site":"s1","state":"offline","seq":0,"ts":T0 - MIN,"started_at":T0 - MIN});
    w.record(
        &topic(&["s1", "gw", "status"]),
        will.to_string().as_bytes(),
        T0 + 41 * MIN,
    )
    .unwrap();
    assert_eq!(
        intervals(&w, now),
        vec![
            ("p1".to_owned(), Up, T0, T0 + 40 * MIN),
            ("p1".to_owned(), Unknown, T0 + 40 * MIN, now),
        ]
    );

    // Back online: its own gateway_down transitions fill the gap, the
    // dashboard adds nothing.
    let on = json!({"gateway":"gw","site":"s1","state":"online","seq":3,"ts":T0 + 50 * MIN,"started_at":T0 + 50 * MIN});
    w.record(
        &topic(&["s1", "gw", "status"]),
        on.to_string().as_bytes(),
        T0 + 50 * MIN,
    )
    .unwrap();
    assert_eq!(intervals(&w, now), vec![("p1".to_owned(), Up, T0, now)]);
}

#[test]
fn the_latest_ticket_message_wins_and_the_catalogue_comes_from_state() {
    let (_d, mut w) = writer();
    transition(&mut w, "gw", 1, "pump-1", T0, "unknown", "up");
    let ticket = |state: &str, seq: i64| {
        json!({"at":T0,"event":"x","seq":seq,"ts":T0,"ticket":{"id":1,"device":"pump-1","class":"pump","kind":"alarm:fault",
            "severity":"critical","state":state,"summary":"s","opened_ms":T0,"deadline_ms":T0 + 7_200_000,
            "acknowledged":null,"recovered_ms":null,"resolved":null,"closed":null,"reworks":0,"reopened_ms":null,
            "history":[{"kind":"opened","at_ms":T0,"by":"auto","note":"","deadline_ms":T0 + 7_200_000}]}})
        .to_string()
    };
    let tp = topic(&["s1", "gw", "tickets", "1"]);
    w.record(&tp, ticket("acknowledged", 5).as_bytes(), T0)
        .unwrap();
    // An older message delivered late does not replace the newer one.
    w.record(&tp, ticket("open", 4).as_bytes(), T0).unwrap();
    let state = json!({"device":"pump-1","class":"pump","name_zh":"1号泵","name_en":"Pump 1","location":"B1",
        "state":"up","since":T0,"reason":null,"seq":6,"ts":T0,"availability":{"threshold":97.5}});
    w.record(
        &topic(&["s1", "gw", "pump-1", "state"]),
        state.to_string().as_bytes(),
        T0,
    )
    .unwrap();
    let i = input(w.conn(), &site(), 2026, 11, T0 + MIN)
        .unwrap()
        .unwrap();
    assert_eq!(i.tickets.len(), 1);
    assert_eq!(
        serde_json::to_value(&i.tickets[0]).unwrap()["state"],
        "acknowledged"
    );
    assert_eq!(i.devices.len(), 1);
    let d = &i.devices[0];
    assert_eq!(
        (d.name_zh.as_str(), d.class, d.target_percent),
        ("1号泵", DeviceClass::Pump, 97.5)
    );
    assert_eq!(d.known_from_ms, Some(T0));
    assert_eq!(sites(w.conn()).unwrap(), vec!["s1".to_owned()]);
    assert!(
        input(
            w.conn(),
            &SiteInfo {
                id: "other".to_owned(),
                ..site()
            },
            2026,
            11,
            T0
        )
        .unwrap()
        .is_none()
    );
}

#[test]
fn offer_queues_only_what_the_ledger_needs() {
    let dir = tempfile::tempdir().unwrap();
    let l = Ledger::start(dir.path()).unwrap();
    l.offer("/s1/gw/cmd/ack", b"{}", 0);
    l.offer("/s1/gw/p1/alarm", b"{}", 0);
    l.offer("/s1/gw/p1/event", b"{}", 0);
    assert_eq!(l.dropped.load(Ordering::Relaxed), 0);
    assert!(l.path().ends_with(FILE));
}

#[test]
fn a_device_the_gateway_no_longer_publishes_ends_with_its_last_state() {
    let (_d, mut w) = writer();
    transition(&mut w, "gw", 1, "p1", T0, "unknown", "up");
    transition(&mut w, "gw", 2, "p2", T0, "unknown", "up");
    let state = |w: &mut Writer, device: &str, ts: i64| {
        let p = json!({"device":device,"class":"pump","name_zh":device,"name_en":device,"location":"",
            "state":"up","since":T0,"reason":null,"seq":9,"ts":ts});
        w.record(
            &topic(&["s1", "gw", device, "state"]),
            p.to_string().as_bytes(),
            ts + 1,
        )
        .unwrap();
    };
    state(&mut w, "p1", T0 + 60 * MIN);
    state(&mut w, "p2", T0 + 60 * MIN);
    // p2 removed from the configuration: p1 goes on publishing.
    state(&mut w, "p1", T0 + 300 * MIN);
    let now = T0 + 301 * MIN;
    let i = input(w.conn(), &site(), 2026, 11, now).unwrap().unwrap();
    let p2 = i.devices.iter().find(|d| d.id == "p2").unwrap();
    assert_eq!(p2.known_until_ms, Some(T0 + 60 * MIN));
    assert_eq!(
        i.devices
            .iter()
            .find(|d| d.id == "p1")
            .unwrap()
            .known_until_ms,
        None
    );
    assert_eq!(
        intervals(&w, now),
        vec![
            ("p1".to_owned(), Up, T0, now),
            ("p2".to_owned(), Up, T0, T0 + 60 * MIN),
        ]
    );
}

#[test]
fn a_retained_last_will_after_a_restart_of_the_dashboard_keeps_the_offline_time() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    let will = json!({"gateway":"gw","site":"s1","state":"offline","seq":0,"ts":T0 - MIN,"started_at":T0 - MIN});
    let state = json!({"device":"p1","class":"pump","name_zh":"p1","name_en":"p1","location":"",
        "state":"up","since":T0,"reason":null,"seq":2,"ts":T0 + 20 * MIN});
    {
        let mut w = Writer::new(open(&path).unwrap());
        transition(&mut w, "gw", 1, "p1", T0, "unknown", "up");
        w.record(
            &topic(&["s1", "gw", "p1", "state"]),
            state.to_string().as_bytes(),
            T0 + 20 * MIN,
        )
        .unwrap();
        w.record(&topic(&["s1", "gw", "p1", "telemetry"]), b"", T0 + 30 * MIN)
            .unwrap();
        w.record(
            &topic(&["s1", "gw", "status"]),
            will.to_string().as_bytes(),
            T0 + 31 * MIN,
        )
        .unwrap();
    }
    // Restarted: the retained state and last will come again.
    let mut w = Writer::new(open(&path).unwrap());
    w.record(
        &topic(&["s1", "gw", "p1", "state"]),
        state.to_string().as_bytes(),
        T0 + 50 * MIN,
    )
    .unwrap();
    w.record(
        &topic(&["s1", "gw", "status"]),
        will.to_string().as_bytes(),
        T0 + 50 * MIN,
    )
    .unwrap();
    let now = T0 + 60 * MIN;
    assert_eq!(
        intervals(&w, now),
        vec![
            ("p1".to_owned(), Up, T0, T0 + 30 * MIN),
            ("p1".to_owned(), Unknown, T0 + 30 * MIN, now),
        ]
    );
    // Without the earlier row, the newest state bounds it.
    let (_e, mut w) = writer();
    transition(&mut w, "gw", 1, "p1", T0, "unknown", "up");
    w.record(
        &topic(&["s1", "gw", "p1", "state"]),
        state.to_string().as_bytes(),
        T0 + 50 * MIN,
    )
    .unwrap();
    w.record(
        &topic(&["s1", "gw", "status"]),
        will.to_string().as_bytes(),
        T0 + 50 * MIN,
    )
    .unwrap();
    assert_eq!(
        intervals(&w, now)[0],
        ("p1".to_owned(), Up, T0, T0 + 20 * MIN)
    );
}
