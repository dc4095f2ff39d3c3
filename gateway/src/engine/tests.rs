use std::path::Path;

use gateway_core::config::Resolved;
use gateway_core::model::{DataType, FailureKind, PollClass, PollOutcome, Quality, Sample, Value};
use gateway_core::state::{DeviceState, Interval, UnixMs};
use gateway_core::tickets::{KIND_AVAILABILITY, Severity, TicketState};

use super::*;
use crate::store::{Command, Store, TicketFilter};

use DeviceState::{Down, Maintenance, Unknown, Up};

const T0: UnixMs = 1_790_000_000_000;
const S: i64 = 1000;

/// A pump and a fire panel on one RTU line, with a 1-minute rolling window.
fn config(dir: &Path, extra: &str) -> Resolved {
    let profiles = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/profiles");
    let text = format!(
        r#"
site = "test-site"
gateway = "gw-1"
data_dir = "data"
profiles_dir = "{profiles}"

[health]
comms_failures = 3
up_hold = "0s"

[availability]
rolling_window = "1m"
min_coverage = 0.1

[[bus]]
id = "rs485-1"
kind = "rtu"
port = "/dev/null"

[[device]]
id = "pump-1"
name_zh = "1号泵"
class = "pump"
bus = "rs485-1"
unit = 1
profile = "pump-vfd"

[[device]]
id = "fire-1"
name_zh = "消防主机"
class = "fire_alarm"
bus = "rs485-1"
unit = 2
profile = "fire-panel"
{extra}
"#
    );
    let file = dir.join("gateway.toml");
    std::fs::write(&file, text).expect("write config");
    crate::files::load_config(&file).expect("valid config")
}

fn data(dir: &Path) -> std::path::PathBuf {
    dir.join("data")
}

/// A full poll with every point good: the named values set, others 0/false.
fn poll(cfg: &Resolved, device: usize, ts_ms: UnixMs, values: &[(&str, f64)]) -> PollOutcome {
    let d = &cfg.devices[device];
    let samples = d
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let v = values
                .iter()
                .find(|(n, _)| *n == p.name)
                .map_or(0.0, |(_, v)| *v);
            let value = if matches!(p.data_type, DataType::Bool | DataType::Bit(_)) {
                Value::Bool(v != 0.0)
            } else {
                Value::Float(v)
            };
            Sample {
                point: i,
                value: Some(value),
                quality: Quality::Good,
            }
        })
        .collect();
    PollOutcome {
        device,
        ts_ms,
        class: PollClass::Full,
        samples,
        failure: None,
        requests: 1,
        failed_requests: 0,
        elapsed_us: 1000,
    }
}

/// A poll with no answer.
fn timeout(device: usize, ts_ms: UnixMs) -> PollOutcome {
    PollOutcome {
        device,
        ts_ms,
        class: PollClass::Full,
        samples: Vec::new(),
        failure: Some(FailureKind::Timeout),
        requests: 1,
        failed_requests: 1,
        elapsed_us: 1000,
    }
}

const PUMP_OK: &[(&str, f64)] = &[("running", 1.0), ("outlet_pressure", 3.0)];
const PANEL_OK: &[(&str, f64)] = &[("mains_ok", 1.0), ("battery_ok", 1.0)];

fn intervals(dir: &Path, device: &str, now: UnixMs) -> Vec<Interval> {
    let s = Store::open_existing(&data(dir)).expect("store");
    s.intervals(Some(device), i64::MIN, i64::MAX, now)
        .expect("intervals")
}

fn states(ivs: &[Interval]) -> Vec<(DeviceState, Option<&str>)> {
    ivs.iter().map(|i| (i.state, i.reason.as_deref())).collect()
}

fn assert_contiguous(ivs: &[Interval]) {
    for w in ivs.windows(2) {
        assert_eq!(w[0].to_ms, w[1].from_ms, "hole or overlap: {ivs:?}");
    }
}

fn transitions(events: &[CoreEvent]) -> Vec<(String, DeviceState, DeviceState)> {
    events
        .iter()
        .filter_map(|e| match e {
            CoreEvent::Transition(t) => Some((t.device.clone(), t.from, t.to)),
            _ => None,
        })
        .collect()
}

#[test]
fn a_pump_that_stops_answering_goes_down_and_gets_an_availability_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let (mut e, ev) = Engine::open(&cfg, &data(dir.path()), T0).unwrap();
    assert_eq!(
        transitions(&ev),
        vec![
            ("pump-1".to_owned(), Unknown, Unknown),
            ("fire-1".to_owned(), Unknown, Unknown)
        ]
    );
    let mut t = T0;
    for _ in 0..20 {
        t += S;
        e.observe(&poll(&cfg, 0, t, PUMP_OK));
        e.observe(&poll(&cfg, 1, t, PANEL_OK));
        e.tick(t);
    }
    assert_eq!(e.status(0).state, Up);
    // Three timeouts: Down from the first of them.
    let first_failure = t + S;
    let mut announced = Vec::new();
    for _ in 0..3 {
        t += S;
        announced.extend(e.observe(&timeout(0, t)));
    }
    assert_eq!(
        transitions(&announced),
        vec![("pump-1".to_owned(), Up, Down)]
    );
    assert_eq!(e.status(0).since_ms, first_failure);
    // Stored before it was announced.
    let ivs = intervals(dir.path(), "pump-1", t);
    assert_eq!(
        states(&ivs),
        vec![
            (Unknown, Some("startup")),
            (Up, None),
            (Down, Some("comms"))
        ]
    );
    assert_contiguous(&ivs);

    // 20 s Up, then Down: the 1-minute availability falls below 98 % at
    // the next check, and one ordinary ticket opens (no duplicate later).
    let mut opened = Vec::new();
    for _ in 0..15 {
        t += S;
        e.observe(&timeout(0, t));
        e.observe(&poll(&cfg, 1, t, PANEL_OK));
        for ev in e.tick(t) {
            if let CoreEvent::Ticket(te) = ev {
                opened.push(te);
            }
        }
    }
    assert_eq!(opened.len(), 1, "{opened:?}");
    let ticket = &opened[0].ticket;
    assert_eq!(
        (ticket.device.as_str(), ticket.kind.as_str()),
        ("pump-1", KIND_AVAILABILITY)
    );
    assert_eq!(ticket.severity, Severity::Ordinary);
    assert!(ticket.summary.contains("通讯中断"), "{}", ticket.summary);
    let s = Store::open_existing(&data(dir.path())).unwrap();
    assert_eq!(s.tickets(&TicketFilter::default()).unwrap().len(), 1);

    // Back Up: the ticket records the recovery but stays open for a person.
    t += S;
    let ev = e.observe(&poll(&cfg, 0, t, PUMP_OK));
    assert_eq!(transitions(&ev), vec![("pump-1".to_owned(), Down, Up)]);
    let recovered = ev.iter().any(|e| {
        matches!(e, CoreEvent::Ticket(te) if te.ticket.recovered_ms == Some(t) && te.ticket.state == TicketState::Open)
    });
    assert!(recovered, "{ev:?}");
}

#[test]
fn a_fire_panel_alarm_opens_a_critical_ticket_at_once_and_a_restart_does_not_repeat_it() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let (mut e, _) = Engine::open(&cfg, &data(dir.path()), T0).unwrap();
    e.observe(&poll(&cfg, 1, T0 + S, PANEL_OK));
    let ev = e.observe(&poll(
        &cfg,
        1,
        T0 + 2 * S,
        &[("mains_ok", 1.0), ("battery_ok", 1.0), ("fault", 1.0)],
    ));
    assert!(
        matches!(ev.first(), Some(CoreEvent::Alarm(a)) if a.point == "fault" && a.active),
        "{ev:?}"
    );
    let tickets: Vec<_> = ev
        .iter()
        .filter_map(|e| match e {
            CoreEvent::Ticket(t) => Some(t.ticket.clone()),
            _ => None,
        })
        .collect();
    assert_eq!(tickets.len(), 1);
    assert_eq!(tickets[0].kind, "alarm:fault");
    assert_eq!(tickets[0].severity, Severity::Critical);
    // The panel_fault rule makes the panel Down too.
    assert_eq!(e.status(1).state, Down);
    e.tick(T0 + 3 * S);
    drop(e); // a crash: no stop, no last heartbeat

    let (mut e, ev) = Engine::open(&cfg, &data(dir.path()), T0 + 60 * S).unwrap();
    assert!(transitions(&ev).contains(&("fire-1".to_owned(), Down, Unknown)));
    // Still in fault after the restart: no new alarm, no second ticket, no rework.
    let ev = e.observe(&poll(
        &cfg,
        1,
        T0 + 61 * S,
        &[("mains_ok", 1.0), ("battery_ok", 1.0), ("fault", 1.0)],
    ));
    assert!(
        !ev.iter()
            .any(|e| matches!(e, CoreEvent::Alarm(_) | CoreEvent::Ticket(_))),
        "{ev:?}"
    );
    let t = e.book().tickets().next().unwrap();
    assert_eq!((t.state, t.reworks), (TicketState::Open, 0));
    // The gap is Unknown/gateway_down from the last moment known: the last
    // heartbeat was at T0, but the transition to Down at T0+2s is later, so
    // nothing is known after it (the Down stretch has no length).
    let ivs = intervals(dir.path(), "fire-1", T0 + 62 * S);
    assert_contiguous(&ivs);
    assert_eq!(
        states(&ivs),
        vec![
            (Unknown, Some("startup")),
            (Up, None),
            (Unknown, Some("gateway_down")),
            (Unknown, Some("startup")),
            (Down, Some("rule:panel_fault")),
        ]
    );
    assert_eq!(ivs[2].from_ms, T0 + 2 * S);
    assert_eq!(ivs[3].from_ms, T0 + 60 * S);
}

#[test]
fn a_second_gateway_on_the_same_data_dir_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let (_e, _) = Engine::open(&cfg, &data(dir.path()), T0).unwrap();
    let err = Engine::open(&cfg, &data(dir.path()), T0 + S).unwrap_err();
    assert!(matches!(err, EngineError::Locked(_)), "{err}");
    assert!(err.to_string().contains("another gateway is running"));
}

#[test]
fn maintenance_suppresses_tickets_until_the_window_ends() {
    let dir = tempfile::tempdir().unwrap();
    // Windows are local time (Asia/Shanghai): T0 is 2026-09-21 22:13:20 +08.
    let cfg = config(
        dir.path(),
        r#"
[[maintenance]]
id = "panel-service"
device = "fire-1"
from = "2026-09-21 22:00"
to = "2026-09-21 22:15"
"#,
    );
    let (mut e, ev) = Engine::open(&cfg, &data(dir.path()), T0).unwrap();
    assert!(transitions(&ev).contains(&("fire-1".to_owned(), Unknown, Maintenance)));
    let fault = &[("mains_ok", 1.0), ("battery_ok", 1.0), ("fault", 1.0)];
    let ev = e.observe(&poll(&cfg, 1, T0 + S, fault));
    assert!(matches!(ev.as_slice(), [CoreEvent::Alarm(_)]), "{ev:?}");
    assert_eq!(e.book().tickets().count(), 0);
    // 22:15 local: the window ends with the fault still there → ticket.
    let end = T0 + 100 * S;
    let ev = e.tick(end);
    assert!(
        ev.iter()
            .any(|e| matches!(e, CoreEvent::Ticket(t) if t.ticket.kind == "alarm:fault")),
        "{ev:?}"
    );
    let ivs = intervals(dir.path(), "fire-1", end + S);
    assert_eq!(
        states(&ivs),
        vec![
            (Maintenance, Some("maintenance:panel-service")),
            (Down, Some("rule:panel_fault")),
        ]
    );
    assert_eq!((ivs[0].from_ms, ivs[1].from_ms), (T0, end));
}

#[test]
fn commands_queued_by_the_cli_are_applied_and_answered() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let (mut e, _) = Engine::open(&cfg, &data(dir.path()), T0).unwrap();
    e.observe(&poll(
        &cfg,
        1,
        T0 + S,
        &[("mains_ok", 1.0), ("battery_ok", 1.0), ("fire_alarm", 1.0)],
    ));
    let id = e.book().tickets().next().unwrap().id;
    // A fire alarm is not a device fault: the panel is Up.
    assert_eq!(e.status(1).state, Up);

    let cli = Store::open_existing(&data(dir.path())).unwrap();
    let ack = cli
        .enqueue_command(&Command::Ack {
            id,
            by: "张工".to_owned(),
            note: "到场".to_owned(),
        })
        .unwrap();
    let bad = cli
        .enqueue_command(&Command::Resolve {
            id: 999,
            by: "张工".to_owned(),
            note: String::new(),
        })
        .unwrap();
    let ev = e.tick(T0 + 2 * S);
    assert!(
        ev.iter().any(
            |e| matches!(e, CoreEvent::Ticket(t) if t.ticket.state == TicketState::Acknowledged)
        )
    );
    assert_eq!(
        cli.command_result(ack).unwrap(),
        Some(Ok(format!("ticket #{id} acknowledged by 张工")))
    );
    assert_eq!(
        cli.command_result(bad).unwrap(),
        Some(Err("no ticket #999".to_owned()))
    );
    let stored = cli.ticket(id).unwrap().unwrap();
    assert_eq!(stored.state, TicketState::Acknowledged);
    assert_eq!(stored.acknowledged.unwrap().by, "张工");
}

#[test]
fn a_clean_stop_closes_the_intervals_at_the_stop() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let (mut e, _) = Engine::open(&cfg, &data(dir.path()), T0).unwrap();
    e.observe(&poll(&cfg, 0, T0 + S, PUMP_OK));
    e.stop(T0 + 3 * S);
    drop(e);
    let (_e, _) = Engine::open(&cfg, &data(dir.path()), T0 + 10 * S).unwrap();
    let ivs = intervals(dir.path(), "pump-1", T0 + 11 * S);
    assert_contiguous(&ivs);
    assert_eq!(
        states(&ivs),
        vec![
            (Unknown, Some("startup")),
            (Up, None),
            (Unknown, Some("gateway_down")),
            (Unknown, Some("startup")),
        ]
    );
    assert_eq!(ivs[2].from_ms, T0 + 3 * S);
    assert_eq!(ivs[3].from_ms, T0 + 10 * S);
}

#[test]
fn a_device_with_an_active_alarm_ticket_gets_no_availability_ticket_too() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let (mut e, _) = Engine::open(&cfg, &data(dir.path()), T0).unwrap();
    let fault = &[("mains_ok", 1.0), ("battery_ok", 1.0), ("fault", 1.0)];
    let mut t = T0;
    for _ in 0..10 {
        t += S;
        e.observe(&poll(&cfg, 1, t, PANEL_OK));
        e.tick(t);
    }
    for _ in 0..20 {
        t += S;
        e.observe(&poll(&cfg, 1, t, fault));
        e.tick(t);
    }
    assert!(e.rolling_availability(1, t).unwrap() < 0.99);
    let kinds: Vec<&str> = e.book().tickets().map(|t| t.kind.as_str()).collect();
    assert_eq!(kinds, vec!["alarm:fault"]);
}

#[test]
fn old_history_is_deleted_in_bounded_batches_from_the_first_ticks_then_daily() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "[store]\nkeep_months = 2\n");
    let tz = parse_tz("Asia/Shanghai").unwrap();
    let cutoff = retention_cutoff(tz, T0, 2).unwrap();
    const HOUR: i64 = 3_600_000;
    // 1 200 hourly faults of the pump, all more than 3 months old.
    {
        let mut s = Store::open(&data(dir.path())).unwrap();
        let start = cutoff - 100 * 24 * HOUR;
        let mut state = Unknown;
        for k in 0..1_201 {
            let to = if state == Up { Down } else { Up };
            s.record_transition(&gateway_core::state::Transition {
                device: "pump-1".into(),
                from: state,
                to,
                reason: None,
                at_ms: start + k * HOUR,
            })
            .unwrap();
            state = to;
        }
        s.heartbeat(T0 - 60 * S).unwrap();
    }
    let count = |dir: &Path| {
        Store::open_existing(&data(dir))
            .unwrap()
            .intervals(Some("pump-1"), i64::MIN, cutoff, T0)
            .unwrap()
            .len()
    };
    assert_eq!(count(dir.path()), 1_201);

    let (mut e, _) = Engine::open(&cfg, &data(dir.path()), T0).unwrap();
    // The start records the cutoff; nothing is deleted before the loop runs.
    let store = Store::open_existing(&data(dir.path())).unwrap();
    assert_eq!(store.retained_from().unwrap(), Some(cutoff));
    assert_eq!(count(dir.path()), 1_201);
    let mut left = vec![count(dir.path())];
    for k in 1..=4 {
        e.tick(T0 + k * S);
        left.push(count(dir.path()));
    }
    // At most PRUNE_BATCH per tick. What stays before the cutoff: the last
    // interval ending before it (Down, the last Up/Down) and the Up one
    // running across it.
    assert_eq!(left, vec![1_201, 701, 201, 2, 2]);
    let kept = Store::open_existing(&data(dir.path()))
        .unwrap()
        .intervals(Some("pump-1"), i64::MIN, i64::MAX, T0 + 5 * S)
        .unwrap();
    assert_eq!((kept[0].state, kept[1].state), (Down, Up));
    assert!(kept[0].to_ms < cutoff && kept[1].to_ms > cutoff);
    assert_contiguous(&kept);

    // The next run starts a day later and finds nothing to delete.
    e.tick(T0 + PRUNE_EVERY - S);
    assert!(e.retention.run.is_none());
    e.tick(T0 + PRUNE_EVERY);
    assert!(e.retention.run.is_some());
    e.tick(T0 + PRUNE_EVERY + S);
    assert!(e.retention.run.is_none());
    assert_eq!(count(dir.path()), 2);
}

#[test]
fn the_state_view_lists_an_active_hard_alarm_until_it_clears_and_after_a_restart() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let fault = &[("mains_ok", 1.0), ("battery_ok", 1.0), ("fault", 1.0)];
    let (mut e, _) = Engine::open(&cfg, &data(dir.path()), T0).unwrap();
    e.observe(&poll(&cfg, 1, T0 + S, PANEL_OK));
    assert_eq!(e.state_view(1, T0 + S).unwrap().alarms, vec![]);
    e.observe(&poll(&cfg, 1, T0 + 2 * S, fault));
    let want = vec![ActiveAlarm {
        point: "fault".to_owned(),
        since_ms: T0 + 2 * S,
    }];
    assert_eq!(e.state_view(1, T0 + 3 * S).unwrap().alarms, want);
    assert_eq!(e.state_views(T0 + 3 * S)[1].alarms, want);
    // The pump has no alarm.
    assert_eq!(e.state_view(0, T0 + 3 * S).unwrap().alarms, vec![]);
    e.tick(T0 + 3 * S);
    drop(e); // a crash

    // After the restart the engine knows the alarm (from its ticket) before
    // any poll, with the time it began.
    let (mut e, _) = Engine::open(&cfg, &data(dir.path()), T0 + 60 * S).unwrap();
    assert_eq!(e.state_view(1, T0 + 60 * S).unwrap().alarms, want);
    // It clears: the list is empty.
    let ev = e.observe(&poll(&cfg, 1, T0 + 61 * S, PANEL_OK));
    assert!(
        ev.iter()
            .any(|e| matches!(e, CoreEvent::Alarm(a) if !a.active)),
        "{ev:?}"
    );
    assert_eq!(e.state_view(1, T0 + 61 * S).unwrap().alarms, vec![]);
    drop(e);
    // And stays cleared after another restart (the ticket is recovered).
    let (e, _) = Engine::open(&cfg, &data(dir.path()), T0 + 90 * S).unwrap();
    assert_eq!(e.state_view(1, T0 + 90 * S).unwrap().alarms, vec![]);
}

#[test]
fn a_ledger_found_damaged_while_running_stops_the_engine_instead_of_polling_on_unrecorded() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = config(dir.path(), "");
    let (mut e, _) = Engine::open(&cfg, &data(dir.path()), T0).unwrap();
    assert!(e.fatal().is_none());
    // Another connection breaks the intervals table's root page pointer:
    // the next ledger write meets SQLITE_CORRUPT.
    let c = rusqlite::Connection::open(data(dir.path()).join(crate::store::DB_FILE)).unwrap();
    let version: i64 = c
        .query_row("PRAGMA schema_version", [], |r| r.get(0))
        .unwrap();
    c.execute_batch(&format!(
        "PRAGMA writable_schema = ON;
         UPDATE sqlite_master SET rootpage = 99999 WHERE name = 'intervals';
         PRAGMA schema_version = {};
         PRAGMA writable_schema = OFF;",
        version + 1
    ))
    .unwrap();
    drop(c);
    let mut t = T0;
    for _ in 0..5 {
        t += S;
        e.observe(&poll(&cfg, 0, t, PUMP_OK));
        e.tick(t);
    }
    let why = e.fatal().expect("the damage is reported");
    assert!(why.contains("gateway.db"), "{why}");
    assert!(e.stop(t).is_empty(), "nothing more is written or announced");
}

#[test]
fn a_reload_keeps_the_state_and_open_interval_of_devices_whose_configuration_did_not_change() {
    let dir = tempfile::tempdir().expect("tempdir");
    let cfg = config(dir.path(), "");
    let (mut e, _) = Engine::open(&cfg, &data(dir.path()), T0).expect("open");
    // The pump is held Down (comms), the panel Up.
    for k in 0..3 {
        e.observe(&timeout(0, T0 + k * S));
    }
    e.observe(&poll(&cfg, 1, T0 + S, PANEL_OK));
    assert_eq!(e.status(0).state, Down);
    let mut e = e;
    let mut now = T0 + 10 * S;
    // 25 reloads of the same configuration (each with a clean stop first,
    // as the run loop does): nothing changes, nothing is written.
    for _ in 0..25 {
        e.stop(now);
        let (next, events) = e.reload(&cfg, now + 300).expect("reload");
        assert_eq!(transitions(&events), [], "a reload of an unchanged device");
        e = next;
        assert_eq!(e.status(0).state, Down);
        assert_eq!(e.status(0).since_ms, T0);
        e.observe(&timeout(0, now + 500));
        e.observe(&poll(&cfg, 1, now + 500, PANEL_OK));
        e.tick(now + 600);
        now += S;
    }
    e.stop(now);
    let pump = intervals(dir.path(), "pump-1", now);
    assert_contiguous(&pump);
    assert_eq!(
        states(&pump),
        [(Down, Some("comms"))],
        "one unbroken Down interval"
    );
    assert_eq!((pump[0].from_ms, pump[0].to_ms), (T0, now));
    let panel = intervals(dir.path(), "fire-1", now);
    assert_eq!(
        states(&panel),
        [(Unknown, Some("startup")), (Up, None)],
        "one unbroken Up interval"
    );

    // The pump's rules change: it starts again (Unknown, startup); the
    // panel keeps its state.
    let changed = {
        let mut c = cfg.clone();
        if let Some(r) = c.devices[0].health.get_mut("low_pressure") {
            r.hold = Some(std::time::Duration::from_secs(60));
        }
        c
    };
    let (e, events) = e.reload(&changed, now + 100).expect("reload");
    assert_eq!(
        transitions(&events),
        [("pump-1".to_owned(), Down, Unknown)],
        "only the changed device restarts"
    );
    assert_eq!(e.status(0).state, Unknown);
    assert_eq!(e.status(1).state, Up);

    // A device removed from the configuration is no longer watched.
    let mut fewer = changed.clone();
    fewer.devices.truncate(1);
    let (_e, events) = e.reload(&fewer, now + 200).expect("reload");
    assert_eq!(transitions(&events), [("fire-1".to_owned(), Up, Unknown)]);
    let panel = intervals(dir.path(), "fire-1", now + 300);
    assert_eq!(
        panel.last().map(|i| (i.state, i.reason.as_deref())),
        Some((Unknown, Some("gateway_down")))
    );
}
