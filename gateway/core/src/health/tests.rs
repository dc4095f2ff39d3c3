//! Health machine tests: a fake clock (plain numbers), hand-made outcomes.

use std::collections::BTreeMap;
use std::time::Duration;

use proptest::prelude::*;

use super::*;
use crate::HumanDuration;
use crate::model::{
    Area, BadReason, DataType, DeviceClass, Point, PollClass, Quality, Sample, Value, WordOrder,
};

// Point indices of the test device.
const FAULT: usize = 0; // bool, alarm + critical
const PRESSURE: usize = 1; // f32
const RUNNING: usize = 2; // bool
const LEAK: usize = 3; // bool, alarm + critical, in no rule

fn point(name: &str, address: u16, data_type: DataType, alarm: bool, critical: bool) -> Point {
    Point {
        name: name.to_owned(),
        unit: String::new(),
        area: Area::Holding,
        address,
        data_type,
        order: WordOrder::Abcd,
        scale: 1.0,
        offset: 0.0,
        min: None,
        max: None,
        alarm,
        critical,
        deadband: None,
        heartbeat: None,
        write: None,
    }
}

fn device(id: &str, rules: &[(&str, &str)]) -> ResolvedDevice {
    ResolvedDevice {
        id: id.to_owned(),
        name_zh: format!("{id} 中文"),
        name_en: id.to_owned(),
        class: DeviceClass::Pump,
        location: String::new(),
        location_en: String::new(),
        labels: Default::default(),
        bus: 0,
        unit: 1,
        profile: "test".to_owned(),
        poll_interval: Duration::from_secs(1),
        alarm_interval: Duration::from_millis(500),
        max_gap: 8,
        max_registers: 125,
        max_bits: 2000,
        points: std::sync::Arc::new(vec![
            point("fault", 0, DataType::Bool, true, true),
            point("pressure", 1, DataType::F32, false, false),
            point("running", 3, DataType::Bool, false, false),
            point("leak", 4, DataType::Bool, true, true),
        ]),
        health: rules
            .iter()
            .map(|(n, t)| ((*n).to_owned(), crate::config::Rule::new(*t)))
            .collect::<BTreeMap<_, _>>(),
        threshold_percent: 98.0,
        writable: Default::default(),
    }
}

fn pump(id: &str) -> ResolvedDevice {
    device(
        id,
        &[
            ("fault", "fault == true"),
            ("low_pressure", "running == true and pressure < 1.5"),
        ],
    )
}

fn cfg(comms_failures: u32, down_hold_s: u64, up_hold_s: u64) -> HealthConfig {
    HealthConfig {
        comms_failures,
        down_hold: HumanDuration::from_secs(down_hold_s),
        up_hold: HumanDuration::from_secs(up_hold_s),
        exception_is_fault: false,
        ..HealthConfig::default()
    }
}

fn health(c: &HealthConfig) -> Health {
    Health::new(&[pump("pump-1"), pump("pump-2")], c, 0).unwrap()
}

/// A full, successful poll of device 0: fault, pressure, running, leak.
fn good(ts_ms: i64, fault: bool, pressure: f64, running: bool) -> PollOutcome {
    good_on(0, ts_ms, fault, pressure, running)
}

fn good_on(device: usize, ts_ms: i64, fault: bool, pressure: f64, running: bool) -> PollOutcome {
    PollOutcome {
        device,
        ts_ms,
        class: PollClass::Full,
        samples: vec![
            sample(FAULT, Value::Bool(fault)),
            sample(PRESSURE, Value::Float(pressure)),
            sample(RUNNING, Value::Bool(running)),
            sample(LEAK, Value::Bool(false)),
        ],
        failure: None,
        requests: 2,
        failed_requests: 0,
        elapsed_us: 1000,
    }
}

fn sample(point: usize, value: Value) -> Sample {
    Sample {
        point,
        value: Some(value),
        quality: Quality::Good,
    }
}

fn bad(point: usize) -> Sample {
    Sample {
        point,
        value: None,
        quality: Quality::Bad(BadReason::NotRead),
    }
}

/// An alarm-class poll of device 0 carrying only the alarm points.
fn alarm_poll(ts_ms: i64, fault: bool, leak: bool) -> PollOutcome {
    PollOutcome {
        device: 0,
        ts_ms,
        class: PollClass::Alarm,
        samples: vec![
            sample(FAULT, Value::Bool(fault)),
            sample(LEAK, Value::Bool(leak)),
        ],
        failure: None,
        requests: 1,
        failed_requests: 0,
        elapsed_us: 500,
    }
}

/// A poll of device 0 where every request failed with `kind`.
fn failed(ts_ms: i64, kind: FailureKind) -> PollOutcome {
    PollOutcome {
        device: 0,
        ts_ms,
        class: PollClass::Full,
        samples: vec![bad(FAULT), bad(PRESSURE), bad(RUNNING), bad(LEAK)],
        failure: Some(kind),
        requests: 2,
        failed_requests: 2,
        elapsed_us: 2_000_000,
    }
}

fn timeout(ts_ms: i64) -> PollOutcome {
    failed(ts_ms, FailureKind::Timeout)
}

fn transitions(events: &[HealthEvent]) -> Vec<(DeviceState, DeviceState, Option<&str>, i64)> {
    events
        .iter()
        .filter_map(|e| match e {
            HealthEvent::Transition(t) => Some((t.from, t.to, t.reason.as_deref(), t.at_ms)),
            HealthEvent::Alarm(_) => None,
        })
        .collect()
}

fn alarms(events: &[HealthEvent]) -> Vec<(&str, bool, i64)> {
    events
        .iter()
        .filter_map(|e| match e {
            HealthEvent::Alarm(a) => Some((a.point.as_str(), a.active, a.at_ms)),
            HealthEvent::Transition(_) => None,
        })
        .collect()
}

use DeviceState::{Down, Maintenance, Unknown, Up};

#[test]
fn every_device_starts_unknown_with_reason_startup() {
    let h = health(&HealthConfig::default());
    assert_eq!(h.len(), 2);
    assert!(!h.is_empty());
    for i in 0..2 {
        assert_eq!(
            h.status(i),
            DeviceStatus {
                state: Unknown,
                since_ms: 0,
                reason: Some("startup".to_owned())
            }
        );
    }
    assert_eq!(h.device_id(1), Some("pump-2"));
    assert_eq!(h.status(7).state, Unknown);
}

#[test]
fn the_first_good_poll_makes_the_device_up_at_once_even_with_an_up_hold() {
    let mut h = health(&cfg(3, 0, 10));
    let ev = h.observe(&good(1_000, false, 3.0, true));
    assert_eq!(transitions(&ev), [(Unknown, Up, None, 1_000)]);
    assert_eq!(h.status(0).state, Up);
    assert_eq!(h.status(0).since_ms, 1_000);
    assert_eq!(h.status(1).state, Unknown, "other devices are untouched");
}

#[test]
fn a_first_poll_with_a_rule_true_and_no_hold_makes_the_device_down_at_once() {
    let mut h = health(&cfg(3, 0, 10));
    let ev = h.observe(&good(1_000, true, 3.0, true));
    assert_eq!(
        transitions(&ev),
        [(Unknown, Down, Some("rule:fault"), 1_000)]
    );
}

// A start (or a restart) during a hold: the hold applies from Unknown too,
// so a gateway starting while a pump ramps up does not mark it Down. (The
// old machine went Down at the first poll whatever the hold.)
#[test]
fn a_first_poll_with_a_rule_within_its_hold_stays_unknown_until_the_hold_decides() {
    let mut h = health(&cfg(3, 30, 10));
    assert!(transitions(&h.observe(&good(1_000, true, 3.0, true))).is_empty());
    assert!(h.tick(30_999).is_empty());
    assert_eq!(h.status(0).state, Unknown);
    let ev = h.tick(31_000);
    assert_eq!(
        transitions(&ev),
        [(Unknown, Down, Some("rule:fault"), 1_000)]
    );
    // The rule clears within its hold: Up at the poll that shows it.
    let mut h = health(&cfg(3, 30, 10));
    h.observe(&good(1_000, true, 3.0, true));
    h.observe(&good(2_000, true, 3.0, true));
    let ev = h.observe(&good(3_000, false, 3.0, true));
    assert_eq!(transitions(&ev), [(Unknown, Up, None, 3_000)]);
    assert!(h.tick(60_000).is_empty());
}

#[test]
fn comms_down_needs_n_consecutive_failures_and_starts_at_the_first() {
    let mut h = health(&cfg(3, 0, 0));
    h.observe(&good(0, false, 3.0, true));
    assert!(h.observe(&timeout(1_000)).is_empty());
    assert!(h.observe(&timeout(2_000)).is_empty());
    let ev = h.observe(&timeout(3_000));
    assert_eq!(transitions(&ev), [(Up, Down, Some("comms"), 1_000)]);
    assert!(h.observe(&timeout(4_000)).is_empty(), "no repeat");
}

#[test]
fn a_reachable_poll_resets_the_failure_count() {
    let mut h = health(&cfg(3, 0, 0));
    h.observe(&good(0, false, 3.0, true));
    h.observe(&timeout(1_000));
    h.observe(&timeout(2_000));
    assert!(h.observe(&good(3_000, false, 3.0, true)).is_empty());
    h.observe(&timeout(4_000));
    h.observe(&timeout(5_000));
    assert_eq!(h.status(0).state, Up);
    let ev = h.observe(&timeout(6_000));
    assert_eq!(transitions(&ev), [(Up, Down, Some("comms"), 4_000)]);
}

#[test]
fn a_device_never_reached_goes_from_unknown_to_comms_down_after_n_failures() {
    let mut h = health(&cfg(2, 0, 10));
    assert!(h.observe(&timeout(500)).is_empty());
    assert_eq!(h.status(0).state, Unknown);
    let ev = h.observe(&timeout(1_500));
    assert_eq!(transitions(&ev), [(Unknown, Down, Some("comms"), 500)]);
}

#[test]
fn exceptions_prove_the_device_reachable_unless_configured_as_faults() {
    let mut h = health(&cfg(2, 0, 0));
    h.observe(&good(0, false, 3.0, true));
    for t in 1..10 {
        let ev = h.observe(&failed(t * 1_000, FailureKind::Exception { code: 2 }));
        assert!(ev.is_empty(), "exception poll {t} changed state: {ev:?}");
    }
    assert_eq!(h.status(0).state, Up);

    let mut strict = cfg(2, 0, 0);
    strict.exception_is_fault = true;
    let mut h = health(&strict);
    h.observe(&good(0, false, 3.0, true));
    h.observe(&failed(1_000, FailureKind::Exception { code: 4 }));
    let ev = h.observe(&failed(2_000, FailureKind::Exception { code: 4 }));
    assert_eq!(transitions(&ev), [(Up, Down, Some("comms"), 1_000)]);
}

#[test]
fn a_poll_where_only_some_requests_timed_out_shows_the_device_reachable() {
    let mut h = health(&cfg(1, 0, 0));
    h.observe(&good(0, false, 3.0, true));
    let mut partial = good(1_000, false, 3.0, true);
    partial.failure = Some(FailureKind::Timeout);
    partial.failed_requests = 1;
    partial.samples[PRESSURE] = bad(PRESSURE);
    assert!(h.observe(&partial).is_empty());
    assert_eq!(h.status(0).state, Up);
}

#[test]
fn a_dead_link_counts_as_failed_polls() {
    let mut h = health(&cfg(3, 0, 0));
    h.observe(&good(0, false, 3.0, true));
    let mut link_down = timeout(1_000);
    link_down.requests = 0;
    link_down.failed_requests = 0;
    link_down.failure = Some(FailureKind::Transport);
    for t in 0..2 {
        link_down.ts_ms = 1_000 + t;
        assert!(h.observe(&link_down).is_empty());
    }
    link_down.ts_ms = 1_002;
    let ev = h.observe(&link_down);
    assert_eq!(ev.len(), 1, "{ev:?}");
    assert_eq!(h.status(0).state, Down);
    assert_eq!(h.status(0).since_ms, 1_000);
    assert_eq!(h.status(0).reason.as_deref(), Some("comms"));
}

#[test]
fn outcomes_with_nothing_asked_and_no_failure_are_ignored() {
    let mut h = health(&cfg(1, 0, 0));
    h.observe(&good(0, false, 3.0, true));
    let mut empty = good(1_000, false, 3.0, true);
    empty.requests = 0;
    empty.failed_requests = 0;
    empty.samples.clear();
    assert!(h.observe(&empty).is_empty());
    assert_eq!(h.status(0).state, Up);
}

#[test]
fn a_rule_goes_down_only_after_down_hold_dated_when_it_became_true() {
    let mut h = health(&cfg(3, 5, 0));
    h.observe(&good(0, false, 3.0, true));
    assert!(h.observe(&good(1_000, false, 1.0, true)).is_empty());
    assert!(h.observe(&good(3_000, false, 1.0, true)).is_empty());
    assert!(h.tick(5_999).is_empty());
    let ev = h.tick(6_000);
    assert_eq!(
        transitions(&ev),
        [(Up, Down, Some("rule:low_pressure"), 1_000)]
    );
    assert!(h.tick(7_000).is_empty());
    assert_eq!(h.status(0).since_ms, 1_000);
}

#[test]
fn a_poll_past_the_hold_emits_the_transition_without_waiting_for_a_tick() {
    let mut h = health(&cfg(3, 5, 0));
    h.observe(&good(0, false, 3.0, true));
    h.observe(&good(1_000, true, 3.0, true));
    let ev = h.observe(&good(6_500, true, 3.0, true));
    assert_eq!(transitions(&ev), [(Up, Down, Some("rule:fault"), 1_000)]);
}

#[test]
fn a_rule_that_clears_before_down_hold_causes_no_transition() {
    let mut h = health(&cfg(3, 5, 0));
    h.observe(&good(0, false, 3.0, true));
    h.observe(&good(1_000, true, 3.0, true));
    assert!(transitions(&h.observe(&good(4_000, false, 3.0, true))).is_empty());
    assert!(h.tick(60_000).is_empty());
    assert_eq!(h.status(0).state, Up);
}

#[test]
fn recovery_needs_up_hold_of_good_polls_and_dates_from_the_first() {
    let mut h = health(&cfg(3, 0, 10));
    h.observe(&good(0, false, 3.0, true));
    h.observe(&good(1_000, true, 3.0, true));
    assert_eq!(h.status(0).state, Down);
    assert!(transitions(&h.observe(&good(2_000, false, 3.0, true))).is_empty());
    assert!(h.observe(&good(7_000, false, 3.0, true)).is_empty());
    assert!(h.tick(11_999).is_empty());
    let ev = h.tick(12_000);
    assert_eq!(transitions(&ev), [(Down, Up, None, 2_000)]);
}

#[test]
fn a_failed_poll_restarts_the_up_hold() {
    let mut h = health(&cfg(3, 0, 10));
    h.observe(&timeout(0));
    h.observe(&timeout(1_000));
    h.observe(&timeout(2_000));
    assert_eq!(h.status(0).state, Down);
    h.observe(&good(3_000, false, 3.0, true));
    h.observe(&timeout(8_000));
    assert!(h.tick(13_000).is_empty(), "the hold was interrupted");
    h.observe(&good(14_000, false, 3.0, true));
    assert!(h.tick(23_999).is_empty());
    let ev = h.tick(24_000);
    assert_eq!(transitions(&ev), [(Down, Up, None, 14_000)]);
}

#[test]
fn a_rule_toggling_faster_than_the_holds_causes_no_transitions() {
    // Up: the rule is true for 2 s at a time, down_hold is 5 s.
    let mut h = health(&cfg(3, 5, 5));
    h.observe(&good(0, false, 3.0, true));
    let mut events = Vec::new();
    for k in 1..=40 {
        let t = k * 1_000;
        let fault = (k / 2) % 2 == 1;
        events.extend(h.observe(&good(t, fault, 3.0, true)));
        events.extend(h.tick(t + 500));
    }
    assert_eq!(transitions(&events), []);
    assert_eq!(h.status(0).state, Up);

    // Down: the rule is false for 2 s at a time, up_hold is 5 s.
    let mut h = health(&cfg(3, 0, 5));
    h.observe(&good(0, true, 3.0, true));
    let mut events = Vec::new();
    for k in 1..=40 {
        let t = k * 1_000;
        let fault = (k / 2) % 2 == 0;
        events.extend(h.observe(&good(t, fault, 3.0, true)));
        events.extend(h.tick(t + 500));
    }
    assert_eq!(transitions(&events), []);
    assert_eq!(h.status(0).state, Down);
}

#[test]
fn a_rule_on_points_missing_from_alarm_polls_uses_the_last_good_values() {
    let mut h = health(&cfg(3, 0, 0));
    // Full poll: running with low pressure → Down.
    let ev = h.observe(&good(0, false, 1.0, true));
    assert_eq!(
        transitions(&ev),
        [(Unknown, Down, Some("rule:low_pressure"), 0)]
    );
    // Alarm-class polls carry no pressure/running: the rule stays true.
    for t in 1..5 {
        let ev = h.observe(&alarm_poll(t * 500, false, false));
        assert!(transitions(&ev).is_empty(), "{ev:?}");
    }
    // A full poll where pressure is bad quality keeps the last good 1.0.
    let mut p = good(3_000, false, 9.0, true);
    p.samples[PRESSURE] = bad(PRESSURE);
    assert!(transitions(&h.observe(&p)).is_empty());
    assert_eq!(h.status(0).state, Down);
    // A good pressure reading clears it.
    let ev = h.observe(&good(4_000, false, 3.0, true));
    assert_eq!(transitions(&ev), [(Down, Up, None, 4_000)]);
}

#[test]
fn a_rule_whose_points_were_never_read_is_not_true() {
    let mut h = health(&cfg(3, 0, 0));
    // Only alarm points known: low_pressure is unknown, fault false → Up.
    let ev = h.observe(&alarm_poll(0, false, false));
    assert_eq!(transitions(&ev), [(Unknown, Up, None, 0)]);
}

#[test]
fn an_or_rule_is_true_when_one_known_side_is_true() {
    let d = device("light-1", &[("any", "pressure > 5 or fault == true")]);
    let mut h = Health::new(&[d], &cfg(3, 0, 0), 0).unwrap();
    // pressure never read, fault true: true.
    let ev = h.observe(&alarm_poll(0, true, false));
    assert_eq!(transitions(&ev), [(Unknown, Down, Some("rule:any"), 0)]);
}

#[test]
fn the_first_true_rule_by_name_gives_the_reason() {
    let mut h = health(&cfg(3, 0, 0));
    let ev = h.observe(&good(0, true, 1.0, true));
    assert_eq!(transitions(&ev), [(Unknown, Down, Some("rule:fault"), 0)]);
}

#[test]
fn a_device_stays_down_with_its_first_reason_when_another_cause_appears() {
    let mut h = health(&cfg(2, 0, 0));
    h.observe(&good(0, true, 3.0, true));
    assert!(h.observe(&timeout(1_000)).is_empty());
    assert!(h.observe(&timeout(2_000)).is_empty());
    assert_eq!(h.status(0).reason.as_deref(), Some("rule:fault"));
}

#[test]
fn hard_alarms_are_edges_with_the_point_name_and_no_debounce() {
    let mut h = health(&cfg(3, 60, 60));
    let ev = h.observe(&alarm_poll(0, false, false));
    assert_eq!(alarms(&ev), []);
    let ev = h.observe(&alarm_poll(500, false, true));
    assert_eq!(alarms(&ev), [("leak", true, 500)]);
    assert_eq!(h.active_alarms(0), ["leak"]);
    assert_eq!(alarms(&h.observe(&alarm_poll(1_000, false, true))), []);
    assert_eq!(alarms(&h.observe(&alarm_poll(1_500, false, true))), []);
    let ev = h.observe(&alarm_poll(2_000, false, false));
    assert_eq!(alarms(&ev), [("leak", false, 2_000)]);
    assert!(h.active_alarms(0).is_empty());
    // The leak is in no rule: the device stayed Up throughout.
    assert_eq!(h.status(0).state, Up);
}

#[test]
fn a_critical_alarm_does_not_make_a_device_down_without_a_rule() {
    let d = device("panel-1", &[]);
    let mut h = Health::new(&[d], &cfg(3, 0, 0), 0).unwrap();
    let ev = h.observe(&alarm_poll(0, true, false));
    assert_eq!(alarms(&ev), [("fault", true, 0)]);
    assert_eq!(transitions(&ev), [(Unknown, Up, None, 0)]);
}

#[test]
fn an_alarm_keeps_its_state_across_bad_samples_and_failed_polls() {
    let mut h = health(&cfg(2, 0, 0));
    assert_eq!(
        alarms(&h.observe(&alarm_poll(0, false, true))),
        [("leak", true, 0)]
    );
    assert_eq!(alarms(&h.observe(&timeout(500))), []);
    assert_eq!(alarms(&h.observe(&timeout(1_000))), []);
    assert_eq!(alarms(&h.observe(&alarm_poll(1_500, false, true))), []);
}

#[test]
fn alarm_events_come_before_the_transition_of_the_same_poll() {
    let mut h = health(&cfg(3, 0, 0));
    let ev = h.observe(&alarm_poll(0, true, false));
    assert!(matches!(ev[0], HealthEvent::Alarm(_)), "{ev:?}");
    assert!(matches!(ev[1], HealthEvent::Transition(_)), "{ev:?}");
}

#[test]
fn maintenance_is_entered_and_left_back_to_the_polled_state() {
    let mut h = health(&cfg(3, 0, 10));
    h.observe(&good(0, false, 3.0, true));
    let ev = h.set_maintenance(0, Some("tue-evening"), 1_000);
    assert_eq!(
        transitions(&ev),
        [(Up, Maintenance, Some("maintenance:tue-evening"), 1_000)]
    );
    // Polls during the window are followed, but nothing is shown.
    assert!(transitions(&h.observe(&good(2_000, true, 3.0, true))).is_empty());
    assert_eq!(h.status(0).state, Maintenance);
    // Switching straight to another window emits nothing.
    assert!(h.set_maintenance(0, Some("other"), 2_500).is_empty());
    let ev = h.set_maintenance(0, None, 3_000);
    assert_eq!(
        transitions(&ev),
        [(Maintenance, Down, Some("rule:fault"), 3_000)]
    );
    assert!(h.set_maintenance(0, None, 3_500).is_empty(), "no repeat");
}

#[test]
fn leaving_maintenance_with_nothing_known_is_unknown_until_the_next_poll() {
    let mut h = health(&cfg(3, 0, 10));
    let ev = h.set_maintenance(1, Some("w1"), 100);
    assert_eq!(
        transitions(&ev),
        [(Unknown, Maintenance, Some("maintenance:w1"), 100)]
    );
    let ev = h.set_maintenance(1, None, 200);
    assert_eq!(
        transitions(&ev),
        [(Maintenance, Unknown, Some("startup"), 200)]
    );
    let ev = h.observe(&good_on(1, 300, false, 3.0, true));
    assert_eq!(transitions(&ev), [(Unknown, Up, None, 300)]);
}

#[test]
fn a_hold_expiring_during_maintenance_is_not_shown_and_never_dates_before_the_window_ends() {
    let mut h = health(&cfg(3, 5, 0));
    h.observe(&good(0, false, 3.0, true));
    h.set_maintenance(0, Some("w"), 1_000);
    h.observe(&good(2_000, true, 3.0, true));
    assert!(h.tick(3_000).is_empty());
    let ev = h.set_maintenance(0, None, 4_000);
    assert_eq!(transitions(&ev), [(Maintenance, Up, None, 4_000)]);
    // The rule began at 2 000, before the window ended: clamped to 4 000.
    let ev = h.tick(7_000);
    assert_eq!(transitions(&ev), [(Up, Down, Some("rule:fault"), 4_000)]);
}

#[test]
fn at_ms_never_goes_backwards_even_when_poll_times_do() {
    let mut h = health(&cfg(1, 0, 0));
    h.observe(&good(10_000, false, 3.0, true));
    let ev = h.observe(&timeout(9_000));
    assert_eq!(transitions(&ev), [(Up, Down, Some("comms"), 10_000)]);
}

#[test]
fn unknown_device_indices_are_ignored() {
    let mut h = health(&cfg(1, 0, 0));
    assert!(h.observe(&good_on(9, 0, true, 3.0, true)).is_empty());
    assert!(h.set_maintenance(9, Some("w"), 0).is_empty());
    assert!(h.active_alarms(9).is_empty());
}

#[test]
fn a_rule_naming_a_point_the_device_does_not_poll_is_refused() {
    let d = device("pump-9", &[("gone", "outlet_pressure < 1")]);
    let err = Health::new(&[d], &HealthConfig::default(), 0).unwrap_err();
    assert_eq!(
        err,
        HealthError::UnknownPoint {
            device: "pump-9".to_owned(),
            rule: "gone".to_owned(),
            point: "outlet_pressure".to_owned(),
        }
    );
    assert!(err.to_string().contains("disable the rule"), "{err}");
    let d = device("pump-9", &[("broken", "fault ==")]);
    let err = Health::new(&[d], &HealthConfig::default(), 0).unwrap_err();
    assert!(matches!(err, HealthError::Rule { .. }), "{err}");
}

// ---- property test over random outcome sequences ----

#[derive(Clone, Debug)]
enum Step {
    Good { fault: bool, pressure_low: bool },
    AlarmPoll { fault: bool, leak: bool },
    Timeout,
    Exception,
    LinkDown,
    Enter(u8),
    Leave,
    Tick,
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        4 => (any::<bool>(), any::<bool>()).prop_map(|(fault, pressure_low)| Step::Good { fault, pressure_low }),
        2 => (any::<bool>(), any::<bool>()).prop_map(|(fault, leak)| Step::AlarmPoll { fault, leak }),
        3 => Just(Step::Timeout),
        1 => Just(Step::Exception),
        1 => Just(Step::LinkDown),
        1 => (0u8..3).prop_map(Step::Enter),
        1 => Just(Step::Leave),
        2 => Just(Step::Tick),
    ]
}

proptest! {
    #[test]
    fn transitions_alternate_properly_and_never_go_back_in_time(
        comms in 1u32..5,
        down_hold in 0u64..8,
        up_hold in 0u64..8,
        exception_is_fault in any::<bool>(),
        steps in proptest::collection::vec((step(), -1_500i64..6_000, 0usize..2), 1..200),
    ) {
        let mut c = cfg(comms, down_hold, up_hold);
        c.exception_is_fault = exception_is_fault;
        let mut h = health(&c);
        let mut shown = [(Unknown, 0i64); 2];
        let mut alarm_state = [[false; 4]; 2];
        let mut t = 0i64;
        for (s, dt, dev) in steps {
            t += dt;
            let mut o = match s {
                Step::Good { fault, pressure_low } =>
                    good_on(dev, t, fault, if pressure_low { 1.0 } else { 3.0 }, true),
                Step::AlarmPoll { fault, leak } => alarm_poll(t, fault, leak),
                Step::Timeout => timeout(t),
                Step::Exception => failed(t, FailureKind::Exception { code: 2 }),
                Step::LinkDown => {
                    let mut o = failed(t, FailureKind::Transport);
                    o.requests = 0;
                    o.failed_requests = 0;
                    o
                }
                Step::Enter(_) | Step::Leave | Step::Tick => timeout(t),
            };
            o.device = dev;
            let events = match s {
                Step::Enter(w) => h.set_maintenance(dev, Some(&format!("w{w}")), t),
                Step::Leave => h.set_maintenance(dev, None, t),
                Step::Tick => h.tick(t),
                _ => h.observe(&o),
            };
            for e in &events {
                match e {
                    HealthEvent::Transition(tr) => {
                        let i = usize::from(tr.device == "pump-2");
                        let (state, since) = shown[i];
                        prop_assert_eq!(tr.from, state, "from must be the shown state");
                        prop_assert_ne!(tr.from, tr.to, "never the same state twice");
                        prop_assert!(tr.at_ms >= since, "at_ms went back: {} < {}", tr.at_ms, since);
                        prop_assert_eq!(tr.to == Maintenance,
                            tr.reason.as_deref().is_some_and(|r| r.starts_with("maintenance:")));
                        if tr.to == Down {
                            let r = tr.reason.as_deref().unwrap_or("");
                            prop_assert!(r == "comms" || r.starts_with("rule:"), "{}", r);
                        }
                        shown[i] = (tr.to, tr.at_ms);
                    }
                    HealthEvent::Alarm(a) => {
                        let i = usize::from(a.device == "pump-2");
                        let p = if a.point == "leak" { LEAK } else { FAULT };
                        prop_assert_ne!(alarm_state[i][p], a.active, "alarm repeated");
                        alarm_state[i][p] = a.active;
                    }
                }
            }
            for (i, (state, since)) in shown.iter().enumerate() {
                let st = h.status(i);
                prop_assert_eq!(st.state, *state);
                prop_assert_eq!(st.since_ms, *since);
            }
        }
    }
}

proptest! {
    #[test]
    fn whatever_came_before_the_state_ends_up_following_the_polls(
        comms in 1u32..5,
        down_hold in 0u64..8,
        up_hold in 0u64..8,
        steps in proptest::collection::vec((step(), 0i64..6_000), 0..80),
    ) {
        let mut h = health(&cfg(comms, down_hold, up_hold));
        let mut t = 0i64;
        for (s, dt) in steps {
            t += dt;
            match s {
                Step::Good { fault, pressure_low } => {
                    h.observe(&good(t, fault, if pressure_low { 1.0 } else { 3.0 }, true));
                }
                Step::AlarmPoll { fault, leak } => { h.observe(&alarm_poll(t, fault, leak)); }
                Step::Timeout | Step::LinkDown => { h.observe(&timeout(t)); }
                Step::Exception => { h.observe(&failed(t, FailureKind::Exception { code: 2 })); }
                Step::Enter(w) => { h.set_maintenance(0, Some(&format!("w{w}")), t); }
                Step::Leave => { h.set_maintenance(0, None, t); }
                Step::Tick => { h.tick(t); }
            }
        }
        h.set_maintenance(0, None, t);
        // Healthy polls for longer than the up hold: Up.
        for _ in 0..=up_hold + 1 {
            t += 1_000;
            h.observe(&good(t, false, 3.0, true));
        }
        h.tick(t);
        prop_assert_eq!(h.status(0).state, Up);
        // A fault for longer than the down hold: Down by that rule.
        for _ in 0..=down_hold + 1 {
            t += 1_000;
            h.observe(&good(t, true, 3.0, true));
        }
        h.tick(t);
        prop_assert_eq!(h.status(0).state, Down);
        prop_assert_eq!(h.status(0).reason, Some("rule:fault".to_owned()));
        // Healthy again, then silent: comms Down after `comms` failures.
        for _ in 0..=up_hold + 1 {
            t += 1_000;
            h.observe(&good(t, false, 3.0, true));
        }
        h.tick(t);
        prop_assert_eq!(h.status(0).state, Up);
        for _ in 0..comms {
            t += 1_000;
            h.observe(&timeout(t));
        }
        prop_assert_eq!(h.status(0).state, Down);
        prop_assert_eq!(h.status(0).reason, Some("comms".to_owned()));
    }
}

#[test]
fn a_restored_alarm_is_not_announced_again_but_its_clearing_is() {
    let mut h = health(&cfg(3, 0, 0));
    assert_eq!(h.index_of("pump-2"), Some(1));
    assert_eq!(h.index_of("nope"), None);
    assert!(h.restore_alarm(0, "leak", true));
    assert!(
        !h.restore_alarm(0, "pressure", true),
        "not a critical point"
    );
    assert!(!h.restore_alarm(0, "nope", true));
    assert!(!h.restore_alarm(5, "leak", true));
    assert_eq!(h.active_alarms(0), ["leak"]);
    assert_eq!(alarms(&h.observe(&alarm_poll(0, false, true))), []);
    assert_eq!(
        alarms(&h.observe(&alarm_poll(500, false, false))),
        [("leak", false, 500)]
    );
}

/// Every profile shipped in `config/profiles`, as `load` wants them.
fn shipped_profiles() -> BTreeMap<String, (String, String)> {
    macro_rules! profiles {
        ($($name:literal),*) => {
            [$(($name, include_str!(concat!("../../../../config/profiles/", $name, ".toml")))),*]
        };
    }
    profiles!(
        "breaker-di8",
        "elevator-status",
        "fan-coil",
        "fire-panel",
        "leak-sensor",
        "lighting-relay",
        "meter-sdm630",
        "pressure-transmitter",
        "pump-vfd",
        "spd-monitor"
    )
    .into_iter()
    .map(|(n, text)| (n.to_owned(), (format!("{n}.toml"), text.to_owned())))
    .collect()
}

#[test]
fn every_shipped_configuration_builds_a_health_machine() {
    // The defaults written in the files (`${VAR:-default}`); a variable
    // without one gets an address.
    let env = |name: &str| (name == "TOWER_A_BAS_SERVER").then(|| "10.0.0.9:502".to_owned());
    for (file, text) in [
        ("demo.toml", include_str!("../../../../config/demo.toml")),
        (
            "tower-a.toml",
            include_str!("../../../../config/examples/tower-a.toml"),
        ),
    ] {
        let resolved = crate::config::load::load(file, text, &shipped_profiles(), &env)
            .unwrap_or_else(|e| panic!("{file}: {e:?}"));
        let h = Health::new(&resolved.devices, &resolved.raw.health, 0)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        assert_eq!(h.len(), resolved.devices.len());
    }
}

// ---- rules with their own hold (`for`) ----

/// The test pump with `low_pressure` holding for `hold_s` and `fault` at once.
fn pump_with_grace(id: &str, hold_s: u64) -> ResolvedDevice {
    let mut d = pump(id);
    if let Some(r) = d.health.get_mut("low_pressure") {
        r.hold = Some(Duration::from_secs(hold_s));
    }
    d
}

fn graced(hold_s: u64) -> Health {
    Health::new(
        &[
            pump_with_grace("pump-1", hold_s),
            pump_with_grace("pump-2", hold_s),
        ],
        &cfg(3, 0, 10),
        0,
    )
    .unwrap()
}

/// One poll a second from `from_s` to `to_s` (inclusive) with the given
/// pressure and running state; returns the transitions.
fn run_polls(
    h: &mut Health,
    from_s: i64,
    to_s: i64,
    pressure: impl Fn(i64) -> f64,
    running: bool,
) -> Vec<(DeviceState, DeviceState, Option<String>, i64)> {
    let mut out = Vec::new();
    for s in from_s..=to_s {
        let t = s * 1_000;
        let mut ev = h.observe(&good(t, false, pressure(s), running));
        ev.extend(h.tick(t + 500));
        out.extend(
            transitions(&ev)
                .into_iter()
                .map(|(a, b, r, at)| (a, b, r.map(str::to_owned), at)),
        );
    }
    out
}

#[test]
fn a_start_up_ramp_shorter_than_the_rule_hold_is_no_fault() {
    // The old machine knew only the global down_hold (0 s here): the ramp
    // made the pump Down at every start.
    let mut h = graced(30);
    assert_eq!(
        run_polls(&mut h, 0, 10, |_| 3.0, true),
        [(Unknown, Up, None, 0)]
    );
    // Stopped, then started: 20 s below 1.5 bar while ramping up.
    assert!(run_polls(&mut h, 11, 60, |_| 0.6, false).is_empty());
    assert!(run_polls(&mut h, 61, 80, |s| 0.6 + (s - 61) as f64 * 0.045, true).is_empty());
    assert!(run_polls(&mut h, 81, 200, |_| 3.0, true).is_empty());
    assert_eq!(h.status(0).state, Up);
    // The fault bit, with no hold of its own, still counts at once.
    let ev = h.observe(&good(201_000, true, 3.0, true));
    assert_eq!(transitions(&ev), [(Up, Down, Some("rule:fault"), 201_000)]);
}

#[test]
fn a_rule_true_for_its_hold_is_down_from_the_first_true_poll() {
    let mut h = graced(30);
    run_polls(&mut h, 0, 10, |_| 3.0, true);
    // Low from 11 s on, for good: Down once 30 s have passed, dated 11 s.
    let tr = run_polls(&mut h, 11, 60, |_| 1.0, true);
    assert_eq!(
        tr,
        [(Up, Down, Some("rule:low_pressure".to_owned()), 11_000)]
    );
    // The hold elapsed on the poll at 41 s.
    let mut h = graced(30);
    run_polls(&mut h, 0, 10, |_| 3.0, true);
    assert!(run_polls(&mut h, 11, 40, |_| 1.0, true).is_empty());
    assert_eq!(h.status(0).state, Up);
    assert_eq!(run_polls(&mut h, 41, 41, |_| 1.0, true).len(), 1);
}

#[test]
fn a_rule_flapping_inside_its_hold_restarts_the_hold_each_time() {
    let mut h = graced(30);
    run_polls(&mut h, 0, 10, |_| 3.0, true);
    // 20 s low, 1 s good, 20 s low, 1 s good…: never 30 s in a row.
    let flap = |s: i64| if (s - 11) % 21 == 20 { 3.0 } else { 1.0 };
    assert!(run_polls(&mut h, 11, 400, flap, true).is_empty());
    assert_eq!(h.status(0).state, Up);
    // Then low for good: Down dated at the start of the last unbroken run.
    let tr = run_polls(&mut h, 401, 440, |_| 1.0, true);
    assert_eq!(tr.len(), 1, "{tr:?}");
    let last_good = (11..=400).rev().find(|s| flap(*s) > 1.5).unwrap();
    assert_eq!(tr[0].3, (last_good + 1) * 1_000);
}

#[test]
fn a_failed_poll_inside_the_hold_neither_restarts_nor_cancels_it() {
    let mut h = graced(30);
    run_polls(&mut h, 0, 10, |_| 3.0, true);
    run_polls(&mut h, 11, 20, |_| 1.0, true);
    h.observe(&timeout(21_000));
    let tr = run_polls(&mut h, 22, 45, |_| 1.0, true);
    assert_eq!(
        tr,
        [(Up, Down, Some("rule:low_pressure".to_owned()), 11_000)]
    );
}

#[test]
fn a_gateway_restart_during_a_hold_starts_the_hold_again_after_the_restart() {
    let mut h = graced(30);
    run_polls(&mut h, 0, 10, |_| 3.0, true);
    run_polls(&mut h, 11, 30, |_| 1.0, true); // 20 s into the hold
    // The gateway restarts at 35 s: a new machine knows nothing of the hold.
    let mut h = Health::new(
        &[pump_with_grace("pump-1", 30), pump_with_grace("pump-2", 30)],
        &cfg(3, 0, 10),
        35_000,
    )
    .unwrap();
    // Still low: Unknown for the whole hold, then Down from the first
    // poll after the restart (the gap before it is no data, not Down).
    assert!(run_polls(&mut h, 36, 65, |_| 1.0, true).is_empty());
    assert_eq!(h.status(0).state, Unknown);
    assert_eq!(
        run_polls(&mut h, 66, 66, |_| 1.0, true),
        [(Unknown, Down, Some("rule:low_pressure".to_owned()), 36_000)]
    );
    // Had the pressure come back within the hold: Up then, no Down at all.
    let mut h = graced(30);
    assert!(run_polls(&mut h, 0, 10, |_| 1.0, true).is_empty());
    assert_eq!(
        run_polls(&mut h, 11, 100, |_| 3.0, true),
        [(Unknown, Up, None, 11_000)]
    );
}

#[test]
fn a_hold_elapsing_in_maintenance_shows_down_only_when_the_window_ends() {
    let mut h = graced(30);
    run_polls(&mut h, 0, 10, |_| 3.0, true);
    run_polls(&mut h, 11, 20, |_| 1.0, true);
    let ev = h.set_maintenance(0, Some("w"), 21_000);
    assert_eq!(
        transitions(&ev),
        [(Up, Maintenance, Some("maintenance:w"), 21_000)]
    );
    // The hold elapses at 41 s inside the window: nothing is shown.
    assert!(run_polls(&mut h, 21, 90, |_| 1.0, true).is_empty());
    let ev = h.set_maintenance(0, None, 91_000);
    assert_eq!(
        transitions(&ev),
        [(Maintenance, Down, Some("rule:low_pressure"), 91_000)]
    );
    // A rule that clears inside the window leaves no trace.
    let mut h = graced(30);
    run_polls(&mut h, 0, 10, |_| 3.0, true);
    run_polls(&mut h, 11, 20, |_| 1.0, true);
    h.set_maintenance(0, Some("w"), 21_000);
    run_polls(&mut h, 21, 25, |_| 1.0, true);
    run_polls(&mut h, 26, 60, |_| 3.0, true);
    let ev = h.set_maintenance(0, None, 61_000);
    assert_eq!(transitions(&ev), [(Maintenance, Up, None, 61_000)]);
}

#[test]
fn a_rule_within_its_hold_keeps_a_down_device_from_recovering() {
    let mut h = graced(30);
    run_polls(&mut h, 0, 10, |_| 3.0, true);
    h.observe(&good(11_000, true, 3.0, true));
    assert_eq!(h.status(0).state, Down);
    // The trip clears at 12 s and the pump ramps for 15 s: it is back in
    // service once the pressure is there, after up_hold.
    let tr = run_polls(&mut h, 12, 60, |s| if s < 27 { 1.0 } else { 3.0 }, true);
    assert_eq!(tr, [(Down, Up, None, 27_000)]);
}

#[test]
fn the_rule_true_for_longest_gives_the_reason_when_holds_differ() {
    // `fault` counts after 5 s, `low_pressure` after 30 s.
    let mut d = pump_with_grace("pump-1", 30);
    d.health.get_mut("fault").unwrap().hold = Some(Duration::from_secs(5));
    let mut h = Health::new(&[d], &cfg(3, 0, 10), 0).unwrap();
    run_polls(&mut h, 0, 10, |_| 3.0, true);
    // Pressure low from 11 s, the fault bit from 38 s: low_pressure counts
    // at 41 s, before the fault (43 s).
    let mut tr = Vec::new();
    for s in 11..=50 {
        let t = s * 1_000;
        let mut ev = h.observe(&good(t, s >= 38, 1.0, true));
        ev.extend(h.tick(t + 500));
        tr.extend(
            transitions(&ev)
                .into_iter()
                .map(|(a, b, r, at)| (a, b, r.map(str::to_owned), at)),
        );
    }
    assert_eq!(
        tr,
        [(Up, Down, Some("rule:low_pressure".to_owned()), 11_000)]
    );
}

#[test]
fn carry_over_keeps_the_state_and_holds_of_kept_devices_only() {
    let mut old = graced(30);
    run_polls(&mut old, 0, 10, |_| 3.0, true);
    old.observe(&good_on(1, 10_500, true, 3.0, true));
    run_polls(&mut old, 11, 20, |_| 1.0, true); // pump-1 within its hold
    assert_eq!(old.status(1).state, Down);
    let mut new = graced(30);
    let kept = new.carry_over(&old, &|id| id == "pump-1");
    assert_eq!(kept, ["pump-1"]);
    assert_eq!(new.status(0), old.status(0));
    assert_eq!(new.status(1).state, Unknown, "pump-2 was not kept");
    // pump-1's hold goes on where it was: Down at 41 s, dated 11 s.
    assert_eq!(
        run_polls(&mut new, 21, 41, |_| 1.0, true),
        [(Up, Down, Some("rule:low_pressure".to_owned()), 11_000)]
    );
}
