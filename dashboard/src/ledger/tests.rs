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
    // Two gateways on the site: each device is named with its gateway.
    assert_eq!(
        v,
        vec![
            ("gw-2/p3".to_owned(), Up, T0, now),
            ("gw/p1".to_owned(), Up, T0, T0 + 30 * MIN),
            ("gw/p1".to_owned(), Unknown, T0 + 30 * MIN, now),
            ("gw/p2".to_owned(), Up, T0, T0 + 30 * MIN),
            ("gw/p2".to_owned(), Unknown, T0 + 30 * MIN, now),
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
    let l = Ledger::start(
        dir.path(),
        Retention {
            keep_months: 24,
            zones: BTreeMap::new(),
            default_zone: chrono_tz::Asia::Shanghai,
        },
    )
    .unwrap();
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

// ---------------------------------------------------------------- retention

/// Local midnight in Asia/Shanghai (UTC+8, no DST) of a date.
fn day_ms(y: i32, m: u32, d: u32) -> i64 {
    use chrono::TimeZone;
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(y, m, d, 0, 0, 0)
        .unwrap()
        .timestamp_millis()
}

fn ticket_msg(id: u64, seq: i64, opened: i64, closed: Option<i64>) -> String {
    let step = |at: i64| json!({"by":"li","at_ms":at,"note":""});
    let mut history = vec![
        json!({"kind":"opened","at_ms":opened,"by":"auto","note":"","deadline_ms":opened + 7_200_000}),
    ];
    if let Some(c) = closed {
        history.push(json!({"kind":"resolved","at_ms":c - 3_600_000,"by":"li","note":""}));
        history.push(json!({"kind":"closed","at_ms":c,"by":"li","note":""}));
    }
    json!({"at":opened,"event":"x","seq":seq,"ts":opened,"ticket":{"id":id,"device":"pump-1","class":"pump",
        "kind":"availability","severity":"ordinary","state": if closed.is_some() { "closed" } else { "open" },
        "summary":"s","opened_ms":opened,"deadline_ms":opened + 7_200_000,"acknowledged":null,"recovered_ms":null,
        "resolved": closed.map(|c| step(c - 3_600_000)),"closed": closed.map(step),"reworks":0,"reopened_ms":null,
        "history":history}})
    .to_string()
}

fn report_json(w: &Writer, (y, m): (i32, u32), now: i64) -> String {
    let i = input(w.conn(), &site(), y, m, now).unwrap().unwrap();
    gateway_core::report::to_json(&gateway_core::report::build(&i).unwrap()).unwrap()
}

fn count(w: &Writer, table: &str) -> i64 {
    w.conn()
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

#[test]
fn retention_deletes_old_transitions_and_tickets_and_every_kept_month_reports_as_before() {
    let (_d, mut w) = writer();
    let now = day_ms(2026, 11, 27) + 10 * 3_600_000;
    let cutoff = day_ms(2024, 11, 1);
    let hour = 3_600_000;
    let mut seq = 0;
    let mut state: BTreeMap<&str, &str> = BTreeMap::new();
    let mut go = |w: &mut Writer, d: &'static str, to: &'static str, at: i64| {
        seq += 1;
        let from = state.get(d).copied().unwrap_or("unknown");
        transition(w, "gw", seq, d, at, from, to);
        state.insert(d, to);
    };
    let mut day = day_ms(2024, 5, 1);
    for d in ["pump-1", "fp-1"] {
        go(&mut w, d, "up", day);
    }
    let mut tickets = vec![ticket_msg(1, 1, day + hour, None)];
    let mut k: i64 = 0;
    while day + 24 * hour < now {
        k += 1;
        if day == cutoff {
            // A fault across the cutoff, the gateway down at midnight.
            go(&mut w, "pump-1", "down", cutoff - 2 * hour);
            go(&mut w, "pump-1", "unknown", cutoff - hour);
            go(&mut w, "pump-1", "down", cutoff + hour);
            go(&mut w, "pump-1", "up", cutoff + 3 * hour);
        } else if (day - cutoff).abs() >= 3 * 24 * hour {
            let a = day + 8 * hour + (k * 37 % 480) * 60_000;
            go(&mut w, "pump-1", "down", a);
            go(&mut w, "pump-1", "up", a + (1 + k * 13 % 180) * 60_000);
            if k % 3 == 0 {
                go(&mut w, "fp-1", "down", day + 2 * hour);
                go(&mut w, "fp-1", "up", day + 2 * hour + (1 + k % 50) * 60_000);
            }
            if k % 7 == 0 {
                go(&mut w, "pump-1", "maintenance", day + 20 * hour);
                go(&mut w, "pump-1", "up", day + 22 * hour);
            }
            if k % 11 == 0 {
                for d in ["pump-1", "fp-1"] {
                    go(&mut w, d, "unknown", day + 22 * hour + 30 * 60_000);
                }
                for d in ["pump-1", "fp-1"] {
                    go(&mut w, d, "up", day + 23 * hour);
                }
            }
            if k % 10 == 0 {
                let id = tickets.len() as u64 + 1;
                tickets.push(ticket_msg(
                    id,
                    id as i64,
                    day + 9 * hour,
                    Some(day + 30 * hour),
                ));
            }
        }
        day += 24 * hour;
    }
    for (i, t) in tickets.iter().enumerate() {
        w.record(
            &topic(&["s1", "gw", "tickets", &(i + 1).to_string()]),
            t.as_bytes(),
            now,
        )
        .unwrap();
    }
    let kept: Vec<(i32, u32)> = (0..25)
        .map(|i| (2024 + (10 + i) / 12, (10 + i) as u32 % 12 + 1))
        .collect();
    let before: Vec<String> = kept.iter().map(|m| report_json(&w, *m, now)).collect();
    let first: Json = serde_json::from_str(&before[0]).unwrap();
    let pump = first["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "pump-1")
        .unwrap();
    // One fault a day from 4 November (27), and the fault across the
    // cutoff, which began in October: an incident of November too, once.
    assert_eq!(pump["figures"]["incidents"].as_u64(), Some(28));
    let (transitions, all_tickets) = (count(&w, "transitions"), count(&w, "tickets"));

    let mut p = retention::Pruner::new(Retention {
        keep_months: 24,
        zones: BTreeMap::new(),
        default_zone: chrono_tz::Asia::Shanghai,
    });
    assert_eq!(retention::retained_from(w.conn(), "s1").unwrap(), None);
    p.step(w.conn(), now);
    assert!(p.running());
    assert_eq!(
        retention::retained_from(w.conn(), "s1").unwrap(),
        Some(cutoff)
    );
    let mut steps = 0;
    while p.running() {
        p.step(w.conn(), now);
        steps += 1;
    }
    let gone = transitions - count(&w, "transitions");
    assert!(gone > 500, "{gone}");
    assert!(
        steps > gone / retention::PRUNE_BATCH,
        "{steps} steps for {gone}"
    );
    // 18 tickets closed before the cutoff go; the open one stays.
    assert_eq!(all_tickets - count(&w, "tickets"), 18);
    let open: i64 = w
        .conn()
        .query_row("SELECT COUNT(*) FROM tickets WHERE id = 1", [], |r| {
            r.get(0)
        })
        .unwrap();
    assert_eq!(open, 1);

    for (m, was) in kept.iter().zip(&before) {
        assert_eq!(&report_json(&w, *m, now), was, "{m:?} changed");
    }
    // The next run, a day later, finds nothing; the cutoff never moves back.
    p.step(w.conn(), now + retention::PRUNE_EVERY_MS);
    while p.running() {
        p.step(w.conn(), now + retention::PRUNE_EVERY_MS);
    }
    assert_eq!(transitions - count(&w, "transitions"), gone);
    let mut longer = retention::Pruner::new(Retention {
        keep_months: 60,
        zones: BTreeMap::new(),
        default_zone: chrono_tz::Asia::Shanghai,
    });
    longer.step(w.conn(), now);
    assert_eq!(
        retention::retained_from(w.conn(), "s1").unwrap(),
        Some(cutoff)
    );
}

/// A `state` message of `device` on `gw` at `ts`.
fn state_msg(w: &mut Writer, gw: &str, device: &str, name: &str, ts: i64) {
    let state = json!({"device":device,"class":"pump","name_zh":name,"name_en":name,"location":"",
        "state":"up","since":T0,"reason":null,"seq":1,"ts":ts,"availability":{"threshold":97.5}});
    w.record(
        &topic(&["s1", gw, device, "state"]),
        state.to_string().as_bytes(),
        ts,
    )
    .unwrap();
}

#[test]
fn the_same_device_id_on_two_gateways_of_a_site_is_two_devices_in_the_report() {
    let (_d, mut w) = writer();
    // gw-a's pump-1 is up all along; gw-b's goes down for 30 minutes.
    transition(&mut w, "gw-a", 1, "pump-1", T0, "unknown", "up");
    transition(&mut w, "gw-b", 1, "pump-1", T0, "unknown", "up");
    transition(&mut w, "gw-b", 2, "pump-1", T0 + 10 * MIN, "up", "down");
    transition(&mut w, "gw-b", 3, "pump-1", T0 + 40 * MIN, "down", "up");
    state_msg(&mut w, "gw-a", "pump-1", "A 1号泵", T0 + MIN);
    state_msg(&mut w, "gw-b", "pump-1", "B 1号泵", T0 + MIN);
    w.record(
        &topic(&["s1", "gw-b", "tickets", "1"]),
        ticket_msg(1, 4, T0 + 10 * MIN, None).as_bytes(),
        T0 + 10 * MIN,
    )
    .unwrap();
    let now = T0 + 100 * MIN;
    let i = input(w.conn(), &site(), 2026, 11, now).unwrap().unwrap();
    let mut names: Vec<_> = i
        .devices
        .iter()
        .map(|d| (d.id.as_str(), d.name_zh.as_str()))
        .collect();
    names.sort_unstable();
    assert_eq!(
        names,
        vec![("gw-a/pump-1", "A 1号泵"), ("gw-b/pump-1", "B 1号泵")]
    );
    assert_eq!(i.tickets[0].device, "gw-b/pump-1");
    let r = gateway_core::report::build(&i).unwrap();
    let down = |id: &str| {
        let d = r.devices.iter().find(|d| d.id == id).unwrap();
        d.figures.downtime_ms
    };
    assert_eq!(down("gw-a/pump-1"), 0);
    assert_eq!(down("gw-b/pump-1"), 30 * MIN);
}

/// The ledger's tables as schema version 1 made them.
const SCHEMA_V1: &str = "CREATE TABLE transitions (site TEXT NOT NULL, gateway TEXT NOT NULL, seq INTEGER NOT NULL,
        device TEXT NOT NULL, at_ms INTEGER NOT NULL, from_state TEXT NOT NULL, to_state TEXT NOT NULL, reason TEXT,
        PRIMARY KEY (site, gateway, seq)) WITHOUT ROWID;
    CREATE INDEX transitions_by_site ON transitions (site, at_ms);
    CREATE TABLE tickets (site TEXT NOT NULL, gateway TEXT NOT NULL, id INTEGER NOT NULL,
        seq INTEGER NOT NULL, ticket TEXT NOT NULL, PRIMARY KEY (site, gateway, id)) WITHOUT ROWID;
    CREATE TABLE devices (site TEXT NOT NULL, device TEXT NOT NULL, gateway TEXT NOT NULL,
        name_zh TEXT NOT NULL, name_en TEXT NOT NULL, class TEXT NOT NULL, location TEXT NOT NULL,
        target REAL, seen_ms INTEGER NOT NULL, PRIMARY KEY (site, device)) WITHOUT ROWID;
    CREATE TABLE gateways (site TEXT NOT NULL, gateway TEXT NOT NULL, online INTEGER NOT NULL,
        status_ts INTEGER NOT NULL, offline_ms INTEGER, PRIMARY KEY (site, gateway)) WITHOUT ROWID;
    CREATE INDEX transitions_by_device ON transitions (site, device, at_ms);
    CREATE TABLE retention (site TEXT PRIMARY KEY, from_ms INTEGER NOT NULL) WITHOUT ROWID;";

#[test]
fn a_version_1_ledger_opens_and_reports_the_same_figures_for_a_single_gateway_site() {
    // A month of one gateway, recorded by this version: the reference.
    let (_d, mut w) = writer();
    transition(&mut w, "gw", 1, "pump-1", T0, "unknown", "up");
    transition(&mut w, "gw", 2, "pump-1", T0 + 10 * MIN, "up", "down");
    transition(&mut w, "gw", 3, "pump-1", T0 + 25 * MIN, "down", "up");
    transition(&mut w, "gw", 4, "pump-2", T0, "unknown", "up");
    state_msg(&mut w, "gw", "pump-1", "1号泵", T0 + MIN);
    state_msg(&mut w, "gw", "pump-2", "2号泵", T0 + MIN);
    w.record(
        &topic(&["s1", "gw", "tickets", "1"]),
        ticket_msg(1, 5, T0 + 10 * MIN, Some(T0 + 90 * MIN)).as_bytes(),
        T0 + 90 * MIN,
    )
    .unwrap();
    let now = T0 + 120 * MIN;
    let want = report_json(&w, (2026, 11), now);

    // The same rows in a file with the version 1 catalogue.
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join(FILE);
    {
        let old = Connection::open(&path).unwrap();
        old.execute_batch(SCHEMA_V1).unwrap();
        old.execute("ATTACH DATABASE ?1 AS new", [w.conn().path().unwrap()])
            .unwrap();
        old.execute_batch(
            "INSERT INTO transitions SELECT * FROM new.transitions;
             INSERT INTO tickets SELECT * FROM new.tickets;
             INSERT INTO gateways SELECT * FROM new.gateways;
             INSERT INTO devices SELECT site, device, gateway, name_zh, name_en, class, location, target, seen_ms FROM new.devices;
             DETACH DATABASE new;",
        )
        .unwrap();
        let v: i64 = old
            .query_row("PRAGMA user_version", [], |r| r.get(0))
            .unwrap();
        assert_eq!(v, 0);
    }
    let migrated = Writer::new(open(&path).unwrap());
    let pk: Vec<String> = migrated
        .conn()
        .prepare("SELECT name FROM pragma_table_info('devices') WHERE pk > 0 ORDER BY pk")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert_eq!(pk, ["site", "gateway", "device"]);
    assert_eq!(count(&migrated, "devices"), 2);
    assert_eq!(report_json(&migrated, (2026, 11), now), want);
    // And it keeps recording: a state of a second gateway's pump-1 is a
    // new device, not an update of the first.
    let mut migrated = migrated;
    state_msg(
        &mut migrated,
        "gw-2",
        "pump-1",
        "二号楼 1号泵",
        T0 + 2 * MIN,
    );
    assert_eq!(count(&migrated, "devices"), 3);
}
