use chrono_tz::Asia::Shanghai;
use proptest::prelude::*;

use super::figures::{median, percentile};
use super::*;
use crate::HumanDuration;
use crate::maintenance::parse_local;

const MIN: i64 = 60 * 1000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

const PUMP: DeviceRef<'static> = DeviceRef {
    id: "pump-1",
    class: DeviceClass::Pump,
};
const PUMP2: DeviceRef<'static> = DeviceRef {
    id: "pump-2",
    class: DeviceClass::Pump,
};
const FIRE: DeviceRef<'static> = DeviceRef {
    id: "fire-1",
    class: DeviceClass::FireAlarm,
};
const LAMP: DeviceRef<'static> = DeviceRef {
    id: "lamp-1",
    class: DeviceClass::Lighting,
};

/// A local time in Shanghai as Unix ms (the fake clock).
fn sh(s: &str) -> UnixMs {
    parse_local(s, Shanghai).unwrap()
}

fn book() -> TicketBook {
    TicketBook::new(&TicketsConfig::default(), Shanghai, Vec::new(), 1)
}

fn below(b: &mut TicketBook, d: DeviceRef<'_>, at: UnixMs) -> Vec<TicketEvent> {
    b.on_availability_below(d, 0.962, 98.0, None, at)
}

fn alarm(
    b: &mut TicketBook,
    d: DeviceRef<'_>,
    point: &str,
    active: bool,
    at: UnixMs,
) -> Vec<TicketEvent> {
    b.on_alarm(
        d,
        &HardAlarm {
            device: d.id.into(),
            point: point.into(),
            active,
            at_ms: at,
        },
    )
}

fn up(b: &mut TicketBook, d: DeviceRef<'_>, at: UnixMs) -> Vec<TicketEvent> {
    b.on_transition(
        d,
        &Transition {
            device: d.id.into(),
            from: DeviceState::Down,
            to: DeviceState::Up,
            reason: None,
            at_ms: at,
        },
    )
}

fn kinds(events: &[TicketEvent]) -> Vec<TicketEventKind> {
    events.iter().map(|e| e.kind).collect()
}

fn snapshot(b: &TicketBook) -> (Vec<Ticket>, u64) {
    (b.tickets().cloned().collect(), b.next_id())
}

#[test]
fn a_second_fault_of_the_same_kind_adds_to_the_open_ticket() {
    let mut b = book();
    let t0 = sh("2026-12-01 09:00");
    let opened = below(&mut b, PUMP, t0);
    assert_eq!(kinds(&opened), vec![TicketEventKind::Opened]);
    assert_eq!(opened[0].ticket.id, 1);
    assert!(below(&mut b, PUMP, t0 + HOUR).is_empty());
    b.ack(1, "张工", "", t0 + 2 * HOUR).unwrap();
    assert!(
        below(&mut b, PUMP, t0 + 3 * HOUR).is_empty(),
        "acknowledged is still active"
    );

    // Another kind or another device is another ticket.
    assert_eq!(alarm(&mut b, PUMP, "fault", true, t0)[0].ticket.id, 2);
    assert!(alarm(&mut b, PUMP, "fault", true, t0 + MIN).is_empty());
    assert_eq!(below(&mut b, PUMP2, t0)[0].ticket.id, 3);
    assert_eq!(b.tickets().count(), 3);
}

#[test]
fn tickets_carry_a_chinese_summary_and_a_machine_readable_kind() {
    let mut b = book();
    let t0 = sh("2026-12-01 09:00");
    let e = below(&mut b, PUMP, t0);
    assert_eq!(e[0].ticket.summary, "滚动设备完好率 96.2% 低于目标 98%");
    assert_eq!(e[0].ticket.kind, "availability");
    let e = b.on_availability_below(LAMP, 0.9849, 99.5, Some("comms"), t0);
    assert_eq!(
        e[0].ticket.summary,
        "滚动设备完好率 98.5% 低于目标 99.5%（通讯中断）"
    );
    let e = b.on_availability_below(PUMP2, 0.5, 98.0, Some("rule:fault"), t0);
    assert_eq!(
        e[0].ticket.summary,
        "滚动设备完好率 50.0% 低于目标 98%（故障规则 fault）"
    );
    let e = alarm(&mut b, FIRE, "fire_alarm", true, t0);
    assert_eq!(e[0].ticket.summary, "火警 fire_alarm");
    assert_eq!(e[0].ticket.kind, "alarm:fire_alarm");
    assert_eq!(e[0].ticket.severity, Severity::Critical);
    assert_eq!(
        alarm(&mut b, PUMP, "leak", true, t0)[0].ticket.summary,
        "漏水 leak"
    );
}

#[test]
fn the_same_fault_within_the_rework_period_reopens_the_ticket_as_rework() {
    let mut b = book();
    let t0 = sh("2026-12-01 09:00");
    below(&mut b, PUMP, t0);
    b.ack(1, "张工", "on my way", t0 + 10 * MIN).unwrap();
    b.resolve(1, "张工", "replaced contactor", t0 + HOUR)
        .unwrap();
    up(&mut b, PUMP, t0 + 50 * MIN);

    let again = sh("2026-12-07 20:00"); // 6 days 11 h later
    let e = below(&mut b, PUMP, again);
    assert_eq!(kinds(&e), vec![TicketEventKind::Reopened]);
    let t = &e[0].ticket;
    assert_eq!((t.id, t.state, t.reworks), (1, TicketState::Open, 1));
    assert_eq!(t.opened_ms, t0);
    assert_eq!(t.reopened_ms, Some(again));
    assert_eq!(t.cycle_start_ms(), again);
    // Opened after the day end: due at the end of the next day.
    assert_eq!(t.deadline_ms, sh("2026-12-08 18:00"));
    assert_eq!(
        (&t.acknowledged, &t.resolved, t.recovered_ms),
        (&None, &None, None)
    );
    let hist: Vec<_> = t.history.iter().map(|h| h.kind).collect();
    use TicketEventKind::*;
    assert_eq!(hist, vec![Opened, Acknowledged, Resolved, Reopened]);
    assert_eq!(b.get(1), Some(t));
    assert_eq!(b.next_id(), 2);
}

#[test]
fn a_closed_ticket_is_reopened_too_within_the_rework_period() {
    let cfg = TicketsConfig {
        close_after: Some(HumanDuration::from_secs(3600)),
        ..TicketsConfig::default()
    };
    let mut b = TicketBook::new(&cfg, Shanghai, Vec::new(), 1);
    let t0 = sh("2026-12-01 09:00");
    below(&mut b, PUMP, t0);
    b.resolve(1, "张工", "", t0 + HOUR).unwrap();
    assert_eq!(kinds(&b.tick(t0 + 2 * HOUR)), vec![TicketEventKind::Closed]);
    let e = below(&mut b, PUMP, t0 + DAY);
    assert_eq!(kinds(&e), vec![TicketEventKind::Reopened]);
    assert_eq!(e[0].ticket.closed, None);
    assert_eq!(e[0].ticket.reworks, 1);
}

#[test]
fn the_same_fault_after_the_rework_period_opens_a_new_ticket() {
    let mut b = book();
    let t0 = sh("2026-12-01 09:00");
    below(&mut b, PUMP, t0);
    b.resolve(1, "张工", "", t0 + HOUR).unwrap();
    // Exactly 7 days after the resolution is outside the period.
    let e = below(&mut b, PUMP, t0 + HOUR + 7 * DAY);
    assert_eq!(kinds(&e), vec![TicketEventKind::Opened]);
    assert_eq!((e[0].ticket.id, e[0].ticket.reworks), (2, 0));
    assert_eq!(b.get(1).unwrap().state, TicketState::Resolved);
}

#[test]
fn rework_detection_is_off_with_a_zero_period() {
    let cfg = TicketsConfig {
        rework_period: HumanDuration::from_secs(0),
        ..TicketsConfig::default()
    };
    let mut b = TicketBook::new(&cfg, Shanghai, Vec::new(), 1);
    let t0 = sh("2026-12-01 09:00");
    below(&mut b, PUMP, t0);
    b.resolve(1, "张工", "", t0 + HOUR).unwrap();
    assert_eq!(
        kinds(&below(&mut b, PUMP, t0 + HOUR)),
        vec![TicketEventKind::Opened]
    );
}

#[test]
fn an_ordinary_ticket_is_due_at_the_end_of_its_working_day() {
    let mut b = book();
    let cases = [
        ("2026-12-01 09:00", "2026-12-01 18:00"),
        // Just before the day end: still today.
        ("2026-12-01 17:59", "2026-12-01 18:00"),
        // At or after the day end: the end of the next day.
        ("2026-12-01 18:00", "2026-12-02 18:00"),
        ("2026-12-01 23:30", "2026-12-02 18:00"),
        // After local midnight (still the previous day in UTC): today.
        ("2026-12-02 00:30", "2026-12-02 18:00"),
        ("2026-12-02 07:59", "2026-12-02 18:00"),
        // Across the end of a month and a year.
        ("2026-11-30 19:00", "2026-12-01 18:00"),
        ("2026-12-31 18:30", "2027-01-01 18:00"),
    ];
    for (opened, due) in cases {
        assert_eq!(
            b.deadline(Severity::Ordinary, sh(opened)),
            sh(due),
            "opened {opened}"
        );
    }
    assert_eq!(
        below(&mut b, PUMP, sh("2026-12-02 00:30"))[0]
            .ticket
            .deadline_ms,
        sh("2026-12-02 18:00")
    );
    assert_eq!(
        b.deadline(Severity::Ordinary, sh("2026-12-01 18:00") - 1),
        sh("2026-12-01 18:00")
    );
}

#[test]
fn the_working_day_end_is_configurable_and_read_in_the_site_zone() {
    let cfg: TicketsConfig = toml::from_str("working_day_end = \"17:30\"").unwrap();
    let b = TicketBook::new(&cfg, Shanghai, Vec::new(), 1);
    assert_eq!(
        b.deadline(Severity::Ordinary, sh("2026-12-01 17:29")),
        sh("2026-12-01 17:30")
    );
    assert_eq!(
        b.deadline(Severity::Ordinary, sh("2026-12-01 17:30")),
        sh("2026-12-02 17:30")
    );
    // In Berlin a 02:30 day end does not exist on 2026-03-29: an hour later.
    let berlin = chrono_tz::Europe::Berlin;
    let end = NaiveTime::from_hms_opt(2, 30, 0).unwrap();
    let at = parse_local("2026-03-29 01:00", berlin).unwrap();
    assert_eq!(
        ordinary_deadline(berlin, end, at),
        parse_local("2026-03-29 03:30", berlin).unwrap()
    );
}

#[test]
fn a_critical_ticket_is_due_the_critical_deadline_after_opening() {
    let mut b = book();
    let t0 = sh("2026-12-01 23:10");
    let e = alarm(&mut b, FIRE, "fire_alarm", true, t0);
    assert_eq!(e[0].ticket.deadline_ms, t0 + 2 * HOUR);
    let cfg: TicketsConfig = toml::from_str("critical_deadline = \"30m\"").unwrap();
    let mut b = TicketBook::new(&cfg, Shanghai, Vec::new(), 1);
    assert_eq!(
        alarm(&mut b, FIRE, "fault", true, t0)[0].ticket.deadline_ms,
        t0 + 30 * MIN
    );
}

#[test]
fn a_ticket_goes_from_open_to_acknowledged_to_resolved_to_closed() {
    let mut b = book();
    let t0 = sh("2026-12-01 09:00");
    below(&mut b, PUMP, t0);
    let e = b.ack(1, "张工", "收到", t0 + 5 * MIN).unwrap();
    assert_eq!(kinds(&e), vec![TicketEventKind::Acknowledged]);
    let t = &e[0].ticket;
    assert_eq!(t.state, TicketState::Acknowledged);
    assert_eq!(
        t.acknowledged,
        Some(Step {
            by: "张工".into(),
            at_ms: t0 + 5 * MIN,
            note: "收到".into()
        })
    );
    let e = b.resolve(1, "李工", "换了接触器", t0 + HOUR).unwrap();
    assert_eq!(e[0].ticket.state, TicketState::Resolved);
    assert_eq!(e[0].ticket.resolved.as_ref().unwrap().by, "李工");
    let e = b.close(1, "王经理", "已验收", t0 + 2 * HOUR).unwrap();
    assert_eq!(e[0].kind, TicketEventKind::Closed);
    assert_eq!(e[0].at_ms, t0 + 2 * HOUR);
    assert_eq!(e[0].ticket.state, TicketState::Closed);
    assert_eq!(e[0].ticket.history.len(), 4);

    // Resolving straight from open is allowed.
    below(&mut b, PUMP2, t0);
    assert_eq!(
        b.resolve(2, "张工", "", t0 + MIN).unwrap()[0].ticket.state,
        TicketState::Resolved
    );
}

#[test]
fn arrival_is_a_step_on_open_and_acknowledged_tickets_that_keeps_the_state() {
    let mut b = book();
    let t0 = sh("2026-12-01 09:00");
    below(&mut b, PUMP, t0);
    let e = b.arrive(1, "张工", "在泵房", None, t0 + 10 * MIN).unwrap();
    assert_eq!(kinds(&e), vec![TicketEventKind::Arrived]);
    let t = &e[0].ticket;
    assert_eq!(t.state, TicketState::Open);
    let first = Step {
        by: "张工".into(),
        at_ms: t0 + 10 * MIN,
        note: "在泵房".into(),
    };
    assert_eq!(t.arrived, Some(first.clone()));
    assert_eq!(t.history.last().unwrap().kind, TicketEventKind::Arrived);

    // Acknowledged: still allowed; a second arrival is in the history only.
    b.ack(1, "张工", "", t0 + 12 * MIN).unwrap();
    let e = b.arrive(1, "李工", "", None, t0 + 20 * MIN).unwrap();
    let t = &e[0].ticket;
    assert_eq!(t.state, TicketState::Acknowledged);
    assert_eq!(t.arrived, Some(first));
    let steps: Vec<_> = t.history.iter().map(|h| (h.kind, h.by.as_str())).collect();
    assert_eq!(
        steps,
        vec![
            (TicketEventKind::Opened, AUTO),
            (TicketEventKind::Arrived, "张工"),
            (TicketEventKind::Acknowledged, "张工"),
            (TicketEventKind::Arrived, "李工"),
        ]
    );
}

#[test]
fn an_arrival_time_given_is_kept_within_now_and_the_previous_step() {
    let mut b = book();
    let t0 = sh("2026-12-01 09:00");
    below(&mut b, PUMP, t0);
    below(&mut b, PUMP2, t0);
    below(&mut b, LAMP, t0);
    let at = |e: Vec<TicketEvent>| e[0].ticket.arrived.as_ref().unwrap().at_ms;
    // Sent late from a phone without signal: the time given is kept.
    assert_eq!(
        at(b.arrive(1, "张工", "", Some(t0 + 5 * MIN), t0 + 30 * MIN)
            .unwrap()),
        t0 + 5 * MIN
    );
    // Never in the future, never before the opening.
    assert_eq!(
        at(b.arrive(2, "张工", "", Some(t0 + DAY), t0 + 30 * MIN)
            .unwrap()),
        t0 + 30 * MIN
    );
    assert_eq!(
        at(b.arrive(3, "张工", "", Some(t0 - HOUR), t0 + 30 * MIN)
            .unwrap()),
        t0
    );
}

#[test]
fn arrival_is_refused_on_resolved_and_closed_tickets_and_changes_nothing() {
    let mut b = book();
    let t0 = sh("2026-12-01 09:00");
    below(&mut b, PUMP, t0);
    b.resolve(1, "张工", "", t0 + HOUR).unwrap();
    let before = snapshot(&b);
    let err = b.arrive(1, "李工", "", None, t0 + 2 * HOUR).unwrap_err();
    assert_eq!(
        err.to_string(),
        "ticket #1 is resolved; it cannot be marked as arrived on site"
    );
    b.close(1, "王经理", "", t0 + 2 * HOUR).unwrap();
    let closed = snapshot(&b);
    assert_eq!(
        b.arrive(1, "李工", "", None, t0 + 3 * HOUR).unwrap_err(),
        TicketError::WrongState {
            id: 1,
            state: TicketState::Closed,
            action: Action::Arrive
        }
    );
    assert_eq!(
        b.arrive(99, "李工", "", None, t0).unwrap_err(),
        TicketError::Unknown(99)
    );
    below(&mut b, PUMP2, t0);
    assert_eq!(
        b.arrive(2, " ", "", None, t0).unwrap_err(),
        TicketError::NoActor { id: 2 }
    );
    assert_ne!(before, closed);
}

#[test]
fn a_reopening_clears_the_arrival_of_the_previous_cycle_and_a_reload_keeps_it() {
    let mut b = book();
    let t0 = sh("2026-12-01 09:00");
    below(&mut b, PUMP, t0);
    b.arrive(1, "张工", "", None, t0 + MIN).unwrap();
    // Replayed from the store (the engine restarts): the arrival is kept.
    let json = serde_json::to_string(b.get(1).unwrap()).unwrap();
    let reloaded: Ticket = serde_json::from_str(&json).unwrap();
    let mut b = TicketBook::new(&TicketsConfig::default(), Shanghai, vec![reloaded], 2);
    assert_eq!(b.get(1).unwrap().arrived.as_ref().unwrap().by, "张工");
    // A ticket stored before arrivals existed reads without one.
    let mut old: serde_json::Value = serde_json::from_str(&json).unwrap();
    old.as_object_mut().unwrap().remove("arrived");
    let old: Ticket = serde_json::from_value(old).unwrap();
    assert_eq!(old.arrived, None);

    b.resolve(1, "张工", "", t0 + HOUR).unwrap();
    let e = below(&mut b, PUMP, t0 + 2 * HOUR);
    assert_eq!(kinds(&e), vec![TicketEventKind::Reopened]);
    assert_eq!(e[0].ticket.arrived, None);
    let arrived = e[0]
        .ticket
        .history
        .iter()
        .filter(|h| h.kind == TicketEventKind::Arrived)
        .count();
    assert_eq!(arrived, 1);
}

#[test]
fn a_step_never_predates_the_previous_one() {
    let mut b = book();
    let t0 = sh("2026-12-01 09:00");
    below(&mut b, PUMP, t0);
    let e = b.ack(1, "张工", "", t0 - MIN).unwrap();
    assert_eq!(e[0].at_ms, t0);
}

#[test]
fn wrong_state_unknown_id_and_missing_actor_are_refused_and_change_nothing() {
    let mut b = book();
    let t0 = sh("2026-12-01 09:00");
    below(&mut b, PUMP, t0);
    below(&mut b, PUMP2, t0);
    b.resolve(2, "张工", "", t0 + HOUR).unwrap();
    let before = snapshot(&b);
    let now = t0 + 2 * HOUR;

    let cases: Vec<(Result<Vec<TicketEvent>, TicketError>, &str)> = vec![
        (b.ack(99, "张工", "", now), "no ticket #99"),
        (b.resolve(99, "张工", "", now), "no ticket #99"),
        (b.close(99, "张工", "", now), "no ticket #99"),
        (
            b.ack(2, "张工", "", now),
            "ticket #2 is resolved; it cannot be acknowledged",
        ),
        (
            b.resolve(2, "张工", "", now),
            "ticket #2 is resolved; it cannot be resolved",
        ),
        (
            b.close(1, "张工", "", now),
            "ticket #1 is open; it cannot be closed",
        ),
        (
            b.ack(1, "  ", "", now),
            "ticket #1: say who is acting (by is empty)",
        ),
        (
            b.resolve(1, "", "", now),
            "ticket #1: say who is acting (by is empty)",
        ),
    ];
    for (result, message) in cases {
        assert_eq!(result.unwrap_err().to_string(), message);
    }
    assert_eq!(snapshot(&b), before);

    b.ack(1, "张工", "", now).unwrap();
    let before = snapshot(&b);
    assert_eq!(
        b.ack(1, "李工", "", now).unwrap_err(),
        TicketError::WrongState {
            id: 1,
            state: TicketState::Acknowledged,
            action: Action::Acknowledge
        }
    );
    b.close(2, "王经理", "", now).unwrap();
    let after_close = snapshot(&b);
    assert!(b.resolve(2, "张工", "", now).is_err());
    assert!(b.close(2, "张工", "", now).is_err());
    assert_eq!(snapshot(&b), after_close);
    assert_ne!(before, after_close);
}

#[test]
fn recovery_is_recorded_once_and_resolves_only_for_auto_resolve_classes() {
    let cfg: TicketsConfig = toml::from_str("auto_resolve = [\"lighting\"]").unwrap();
    let mut b = TicketBook::new(&cfg, Shanghai, Vec::new(), 1);
    let t0 = sh("2026-12-01 09:00");
    below(&mut b, PUMP, t0);
    below(&mut b, LAMP, t0);

    let e = up(&mut b, PUMP, t0 + HOUR);
    assert_eq!(kinds(&e), vec![TicketEventKind::Recovered]);
    assert_eq!(e[0].ticket.recovered_ms, Some(t0 + HOUR));
    assert_eq!(
        e[0].ticket.state,
        TicketState::Open,
        "a person resolves a pump"
    );
    assert!(up(&mut b, PUMP, t0 + 2 * HOUR).is_empty(), "recorded once");

    let e = up(&mut b, LAMP, t0 + HOUR);
    assert_eq!(
        kinds(&e),
        vec![TicketEventKind::Recovered, TicketEventKind::Resolved]
    );
    let resolved = e[1].ticket.resolved.as_ref().unwrap();
    assert_eq!((resolved.by.as_str(), resolved.at_ms), (AUTO, t0 + HOUR));

    // Going down, or up with no ticket, changes nothing.
    let down = Transition {
        device: "pump-2".into(),
        from: DeviceState::Up,
        to: DeviceState::Down,
        reason: Some("comms".into()),
        at_ms: t0,
    };
    assert!(b.on_transition(PUMP2, &down).is_empty());
    assert!(up(&mut b, PUMP2, t0).is_empty());
}

#[test]
fn an_alarm_clearing_records_the_recovery_of_its_ticket() {
    let mut b = book();
    let t0 = sh("2026-12-01 09:00");
    alarm(&mut b, FIRE, "fire_alarm", true, t0);
    assert!(
        alarm(&mut b, FIRE, "fault", false, t0 + MIN).is_empty(),
        "another point"
    );
    assert!(
        up(&mut b, FIRE, t0 + MIN).is_empty(),
        "a transition is not the alarm"
    );
    let e = alarm(&mut b, FIRE, "fire_alarm", false, t0 + 3 * MIN);
    assert_eq!(kinds(&e), vec![TicketEventKind::Recovered]);
    assert_eq!(e[0].ticket.state, TicketState::Open);
}

#[test]
fn resolved_tickets_close_by_themselves_and_are_forgotten_after_the_rework_period() {
    let mut b = book();
    let t0 = sh("2026-12-01 09:00");
    below(&mut b, PUMP, t0);
    let resolved_at = t0 + HOUR;
    b.resolve(1, "张工", "", resolved_at).unwrap();
    // close_after defaults to the rework period (7 d).
    assert!(b.tick(resolved_at + 7 * DAY - 1).is_empty());
    let e = b.tick(resolved_at + 7 * DAY + 5 * MIN);
    assert_eq!(kinds(&e), vec![TicketEventKind::Closed]);
    assert_eq!(e[0].at_ms, resolved_at + 7 * DAY, "closed when due");
    assert_eq!(e[0].ticket.closed.as_ref().unwrap().by, AUTO);
    assert!(b.get(1).is_none(), "no longer reopenable: forgotten");
    assert!(b.tick(resolved_at + 8 * DAY).is_empty());

    let cfg: TicketsConfig = toml::from_str("close_after = \"1d\"").unwrap();
    let mut b = TicketBook::new(&cfg, Shanghai, Vec::new(), 1);
    below(&mut b, PUMP, t0);
    b.resolve(1, "张工", "", resolved_at).unwrap();
    assert_eq!(
        kinds(&b.tick(resolved_at + DAY)),
        vec![TicketEventKind::Closed]
    );
    assert!(b.get(1).is_some(), "still reopenable");
    b.tick(resolved_at + 7 * DAY);
    assert!(b.get(1).is_none());
    // Active tickets are never forgotten.
    below(&mut b, PUMP2, t0);
    b.tick(t0 + 100 * DAY);
    assert!(b.get(2).is_some());
}

#[test]
fn a_book_loaded_from_the_store_never_reuses_an_id() {
    let mut b = book();
    below(&mut b, PUMP, 0);
    let t = b.get(1).unwrap().clone();
    let mut t5 = t.clone();
    t5.id = 5;
    let mut b = TicketBook::new(&TicketsConfig::default(), Shanghai, vec![t5], 3);
    assert_eq!(b.next_id(), 6);
    assert!(
        below(&mut b, PUMP, HOUR).is_empty(),
        "the loaded ticket is active"
    );
    assert_eq!(below(&mut b, PUMP2, HOUR)[0].ticket.id, 6);
    let b = TicketBook::new(&TicketsConfig::default(), Shanghai, vec![t], 40);
    assert_eq!(b.next_id(), 40);
}

#[test]
fn tickets_survive_a_json_round_trip() {
    let mut b = book();
    let e = alarm(&mut b, FIRE, "fire_alarm", true, 1000);
    let json = serde_json::to_string(&e[0]).unwrap();
    assert!(
        json.contains("\"state\":\"open\"") && json.contains("\"severity\":\"critical\""),
        "{json}"
    );
    assert_eq!(serde_json::from_str::<TicketEvent>(&json).unwrap(), e[0]);
}

#[test]
fn median_and_p90_follow_their_documented_definitions() {
    assert_eq!(median(&mut []), None);
    assert_eq!(median(&mut [7]), Some(7));
    assert_eq!(median(&mut [5, 1, 3]), Some(3));
    assert_eq!(median(&mut [4, 1, 3, 2]), Some(2)); // (2 + 3) / 2 rounded down
    assert_eq!(median(&mut [10, 40, 20, 30]), Some(25));
    let mut ten: Vec<i64> = (1..=10).rev().collect();
    assert_eq!(percentile(&mut ten, 90), Some(9)); // rank ⌈9⌉ = 9
    let mut twenty: Vec<i64> = (1..=20).collect();
    assert_eq!(percentile(&mut twenty, 90), Some(18));
    let mut eleven: Vec<i64> = (1..=11).collect();
    assert_eq!(percentile(&mut eleven, 90), Some(10)); // rank ⌈9.9⌉ = 10
    assert_eq!(percentile(&mut [7], 90), Some(7));
    assert_eq!(percentile(&mut [], 90), None);
}

/// The December scenario of `ticket_figures_of_a_month_are_exact`.
fn december() -> Vec<Ticket> {
    let mut b = book();
    // #1 pump-1: ack after 10 min, repaired in 1 h (on time)…
    below(&mut b, PUMP, sh("2026-12-01 09:00"));
    b.ack(1, "张工", "", sh("2026-12-01 09:10")).unwrap();
    b.resolve(1, "张工", "", sh("2026-12-01 10:00")).unwrap();
    // …back two days later (rework), ack after 30 min, repaired after the day end.
    below(&mut b, PUMP, sh("2026-12-03 09:00"));
    b.ack(1, "张工", "", sh("2026-12-03 09:30")).unwrap();
    b.resolve(1, "张工", "", sh("2026-12-03 19:00")).unwrap();
    // #2 fire panel: critical, due 12:00, ack after 5 min, repaired in 1 h.
    alarm(&mut b, FIRE, "fire_alarm", true, sh("2026-12-02 10:00"));
    b.ack(2, "李工", "", sh("2026-12-02 10:05")).unwrap();
    b.resolve(2, "李工", "", sh("2026-12-02 11:00")).unwrap();
    // #3 lamp: opened in the evening, due next day 18:00, resolved at 17:00
    // without acknowledgement (22 h).
    below(&mut b, LAMP, sh("2026-12-04 19:00"));
    b.resolve(3, "王工", "", sh("2026-12-05 17:00")).unwrap();
    // #4 pump-2: opened, never resolved; due 12-05 18:00.
    below(&mut b, PUMP2, sh("2026-12-05 10:00"));
    // #5 in November: outside the month.
    let mut old = book();
    below(&mut old, PUMP2, sh("2026-11-20 10:00"));
    old.resolve(1, "张工", "", sh("2026-11-20 11:00")).unwrap();
    let mut nov = old.get(1).unwrap().clone();
    nov.id = 5;
    b.tickets().cloned().chain([nov]).collect()
}

#[test]
fn ticket_figures_of_a_month_are_exact() {
    let f = ticket_figures(&december(), sh("2026-12-01 00:00"), sh("2027-01-01 00:00"));
    assert_eq!(
        f,
        TicketFigures {
            opened: 4,
            critical: 1,
            ordinary: 3,
            // responses 5, 10, 30 min
            response_median_ms: Some(10 * MIN),
            response_p90_ms: Some(30 * MIN),
            // repairs 1 h, 1 h, 10 h, 22 h
            repair_median_ms: Some(5 * HOUR + 30 * MIN),
            repair_p90_ms: Some(22 * HOUR),
            resolved: 4,
            on_time: 3,
            timeliness: Some(0.75),
            reworks: 1,
            rework_rate: Some(0.25),
            // the late rework and the unresolved pump-2
            overnight: 2,
        }
    );
}

#[test]
fn ticket_figures_count_each_event_in_the_period_it_falls_in() {
    let f = ticket_figures(&december(), sh("2026-12-03 00:00"), sh("2026-12-04 00:00"));
    assert_eq!((f.opened, f.reworks, f.resolved, f.on_time), (0, 1, 1, 0));
    assert_eq!(
        (f.timeliness, f.rework_rate, f.overnight),
        (Some(0.0), Some(1.0), 1)
    );
    assert_eq!(f.response_median_ms, Some(30 * MIN));
    assert_eq!(f.repair_median_ms, Some(10 * HOUR));

    let empty = ticket_figures(&december(), sh("2027-02-01 00:00"), sh("2027-03-01 00:00"));
    assert_eq!(empty, TicketFigures::default());
    assert_eq!(empty.timeliness, None);
}

#[test]
fn tickets_config_defaults_match_an_empty_section_and_bad_values_are_reported() {
    let parsed: TicketsConfig = toml::from_str("").unwrap();
    let default = TicketsConfig::default();
    assert_eq!(parsed.rework_period, default.rework_period);
    assert_eq!(
        parsed.rework_period,
        HumanDuration::from_secs(7 * 24 * 3600)
    );
    assert_eq!(parsed.critical_deadline, HumanDuration::from_secs(2 * 3600));
    assert_eq!(parsed.working_day_end.to_string(), "18:00");
    assert_eq!(parsed.close_after(), default.rework_period.get());
    assert!(parsed.check().is_empty());

    let err = toml::from_str::<TicketsConfig>("working_day_end = \"6pm\"").unwrap_err();
    assert!(err.to_string().contains("write HH:MM"), "{err}");
    assert!(toml::from_str::<TicketsConfig>("deadline = \"2h\"").is_err());

    let bad: TicketsConfig = toml::from_str(
        "critical_deadline = \"0s\"\nauto_resolve = [\"pump\", \"pump\"]\nclose_after = \"400d\"",
    )
    .unwrap();
    let errs: Vec<String> = bad.check().iter().map(ToString::to_string).collect();
    assert_eq!(
        errs,
        vec![
            "tickets.critical_deadline: is 0; give the time allowed to repair a critical fault, e.g. \"2h\"",
            "tickets.close_after: is longer than a year; give a shorter duration",
            "tickets.auto_resolve[1]: class pump is listed twice",
        ]
    );
}

#[derive(Clone, Debug)]
enum Op {
    Below(usize),
    Alarm(usize, bool),
    Up(usize),
    Ack(u64),
    Arrive(u64),
    Resolve(u64),
    Close(u64),
    Tick,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        (0..3usize).prop_map(Op::Below),
        (0..3usize, any::<bool>()).prop_map(|(d, a)| Op::Alarm(d, a)),
        (0..3usize).prop_map(Op::Up),
        (1..8u64).prop_map(Op::Ack),
        (1..8u64).prop_map(Op::Arrive),
        (1..8u64).prop_map(Op::Resolve),
        (1..8u64).prop_map(Op::Close),
        Just(Op::Tick),
    ]
}

proptest! {
    #[test]
    fn the_book_keeps_its_invariants_under_any_sequence(ops in prop::collection::vec((op(), 0..(3 * DAY)), 1..60)) {
        let devices = [PUMP, PUMP2, LAMP];
        let cfg: TicketsConfig = toml::from_str("auto_resolve = [\"lighting\"]\nclose_after = \"1d\"").unwrap();
        let mut b = TicketBook::new(&cfg, Shanghai, Vec::new(), 1);
        let mut now = sh("2026-12-01 00:00");
        let mut last_id = 0;
        for (op, step) in ops {
            now += step;
            let before = snapshot(&b);
            let result = match op {
                Op::Below(d) => Ok(below(&mut b, devices[d], now)),
                Op::Alarm(d, active) => Ok(alarm(&mut b, devices[d], "fault", active, now)),
                Op::Up(d) => Ok(up(&mut b, devices[d], now)),
                Op::Ack(id) => b.ack(id, "张工", "", now),
                Op::Arrive(id) => b.arrive(id, "张工", "", None, now),
                Op::Resolve(id) => b.resolve(id, "张工", "", now),
                Op::Close(id) => b.close(id, "张工", "", now),
                Op::Tick => Ok(b.tick(now)),
            };
            match result {
                Err(_) => prop_assert_eq!(snapshot(&b), before),
                Ok(events) => for e in events {
                    prop_assert!(e.at_ms <= now);
                    if e.kind == TicketEventKind::Opened {
                        prop_assert!(e.ticket.id > last_id);
                        last_id = e.ticket.id;
                    }
                },
            }
            let mut active = std::collections::BTreeSet::new();
            for t in b.tickets() {
                if t.state.is_active() {
                    prop_assert!(active.insert((t.device.clone(), t.kind.clone())), "two active tickets for one fault");
                }
                prop_assert!(t.history.windows(2).all(|w| w[0].at_ms <= w[1].at_ms));
                prop_assert!(t.id < b.next_id());
            }
            let f = ticket_figures(&b.tickets().cloned().collect::<Vec<_>>(), 0, i64::MAX);
            prop_assert!(f.on_time <= f.resolved);
            prop_assert!(f.timeliness.is_none_or(|x| (0.0..=1.0).contains(&x)));
            prop_assert_eq!(f.critical + f.ordinary, f.opened);
        }
    }
}

#[test]
fn only_active_resolved_and_recently_resolved_closed_tickets_are_still_needed() {
    let cfg = TicketsConfig::default();
    let mut b = book();
    let t0 = sh("2026-12-01 09:00");
    let open = below(&mut b, PUMP, t0).remove(0).ticket;
    b.resolve(1, "张工", "", t0 + HOUR).unwrap();
    let closed = b
        .close(1, "张工", "", t0 + 2 * HOUR)
        .unwrap()
        .remove(0)
        .ticket;
    assert!(still_needed(&open, &cfg, t0 + 100 * DAY));
    assert!(still_needed(&closed, &cfg, t0 + HOUR + 7 * DAY - 1));
    assert!(!still_needed(&closed, &cfg, t0 + HOUR + 7 * DAY));
}
