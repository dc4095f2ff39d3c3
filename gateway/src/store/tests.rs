use chrono::{NaiveTime, Weekday};
use gateway_core::config::TicketsConfig;
use gateway_core::maintenance::{Schedule, Target, Window};
use gateway_core::model::DeviceClass;
use gateway_core::state::{DeviceState, HardAlarm, Interval, Transition, UnixMs};
use gateway_core::tickets::{DeviceRef, TicketBook, TicketEventKind, TicketState};
use proptest::prelude::*;

use super::*;

use DeviceState::{Down, Maintenance, Unknown, Up};

const T0: UnixMs = 1_790_000_000_000;
const S: i64 = 1000;

fn tr(device: &str, from: DeviceState, to: DeviceState, reason: &str, at_ms: UnixMs) -> Transition {
    Transition {
        device: device.to_owned(),
        from,
        to,
        reason: (!reason.is_empty()).then(|| reason.to_owned()),
        at_ms,
    }
}

fn iv(device: &str, state: DeviceState, reason: &str, from_ms: UnixMs, to_ms: UnixMs) -> Interval {
    Interval {
        device: device.to_owned(),
        state,
        reason: (!reason.is_empty()).then(|| reason.to_owned()),
        from_ms,
        to_ms,
    }
}

fn temp() -> (tempfile::TempDir, Store) {
    let dir = tempfile::tempdir().expect("temp dir");
    let store = Store::open(dir.path()).expect("open");
    (dir, store)
}

fn all_intervals(store: &Store, now: UnixMs) -> Vec<Interval> {
    store
        .intervals(None, i64::MIN, i64::MAX, now)
        .expect("intervals")
}

#[test]
fn transitions_become_contiguous_intervals_ending_at_now() {
    let (_d, mut s) = temp();
    s.record_transition(&tr("p1", Unknown, Up, "", T0)).unwrap();
    s.record_transition(&tr("p1", Up, Down, "comms", T0 + 10 * S))
        .unwrap();
    s.record_transition(&tr("p1", Down, Up, "", T0 + 25 * S))
        .unwrap();
    assert_eq!(
        all_intervals(&s, T0 + 60 * S),
        vec![
            iv("p1", Up, "", T0, T0 + 10 * S),
            iv("p1", Down, "comms", T0 + 10 * S, T0 + 25 * S),
            iv("p1", Up, "", T0 + 25 * S, T0 + 60 * S),
        ]
    );
    assert_eq!(
        s.open_intervals().unwrap(),
        vec![("p1".to_owned(), Up, None, T0 + 25 * S)]
    );
}

#[test]
fn intervals_are_clipped_to_the_window_and_filtered_by_device() {
    let (_d, mut s) = temp();
    s.record_transition(&tr("a", Unknown, Up, "", T0)).unwrap();
    s.record_transition(&tr("a", Up, Down, "rule:fault", T0 + 10 * S))
        .unwrap();
    s.record_transition(&tr("b", Unknown, Down, "comms", T0 + 5 * S))
        .unwrap();
    let got = s
        .intervals(Some("a"), T0 + 5 * S, T0 + 15 * S, T0 + 100 * S)
        .unwrap();
    assert_eq!(
        got,
        vec![
            iv("a", Up, "", T0 + 5 * S, T0 + 10 * S),
            iv("a", Down, "rule:fault", T0 + 10 * S, T0 + 15 * S),
        ]
    );
    // The open interval ends at now; a window after now sees nothing of it.
    assert!(
        s.intervals(Some("b"), T0 + 50 * S, T0 + 60 * S, T0 + 40 * S)
            .unwrap()
            .is_empty()
    );
    assert_eq!(
        s.intervals(None, T0, T0 + 20 * S, T0 + 20 * S)
            .unwrap()
            .len(),
        3
    );
}

#[test]
fn a_transition_from_the_wrong_state_is_refused_and_changes_nothing() {
    let (_d, mut s) = temp();
    s.record_transition(&tr("p1", Unknown, Up, "", T0)).unwrap();
    let before = all_intervals(&s, T0 + 100 * S);
    let err = s
        .record_transition(&tr("p1", Down, Up, "", T0 + 5 * S))
        .unwrap_err();
    assert!(matches!(err, StoreError::Inconsistent { .. }), "{err}");
    assert!(err.to_string().contains("open interval is up"), "{err}");
    assert_eq!(all_intervals(&s, T0 + 100 * S), before);
}

#[test]
fn a_transition_before_the_open_interval_began_is_refused_and_changes_nothing() {
    let (_d, mut s) = temp();
    s.record_transition(&tr("p1", Unknown, Up, "", T0)).unwrap();
    s.record_transition(&tr("p1", Up, Down, "comms", T0 + 10 * S))
        .unwrap();
    let before = all_intervals(&s, T0 + 100 * S);
    let err = s
        .record_transition(&tr("p1", Down, Up, "", T0 + 9 * S))
        .unwrap_err();
    assert!(matches!(err, StoreError::Inconsistent { .. }), "{err}");
    assert_eq!(all_intervals(&s, T0 + 100 * S), before);
}

#[test]
fn a_first_transition_cannot_reach_back_into_recorded_history() {
    let (_d, mut s) = temp();
    // History of p1 closed by hand: simulate a device whose open interval is gone.
    s.record_transition(&tr("p1", Unknown, Up, "", T0)).unwrap();
    s.conn
        .execute("UPDATE intervals SET to_ms = ?1", [T0 + 10 * S])
        .unwrap();
    let err = s
        .record_transition(&tr("p1", Unknown, Down, "comms", T0 + 5 * S))
        .unwrap_err();
    assert!(matches!(err, StoreError::Inconsistent { .. }), "{err}");
    s.record_transition(&tr("p1", Unknown, Down, "comms", T0 + 10 * S))
        .unwrap();
}

#[test]
fn a_transition_at_the_open_intervals_start_replaces_it_instead_of_leaving_an_empty_one() {
    let (_d, mut s) = temp();
    s.record_transition(&tr("p1", Unknown, Unknown, "startup", T0))
        .unwrap();
    s.record_transition(&tr("p1", Unknown, Up, "", T0)).unwrap();
    assert_eq!(
        all_intervals(&s, T0 + S),
        vec![iv("p1", Up, "", T0, T0 + S)]
    );
}

#[test]
fn recovery_closes_at_the_last_heartbeat_and_opens_unknown() {
    let (_d, mut s) = temp();
    s.record_transition(&tr("a", Unknown, Up, "", T0)).unwrap();
    s.record_transition(&tr("b", Unknown, Down, "comms", T0 + S))
        .unwrap();
    s.heartbeat(T0 + 30 * S).unwrap();
    assert_eq!(s.last_heartbeat().unwrap(), Some(T0 + 30 * S));
    // Crash; restart much later.
    let now = T0 + 3600 * S;
    let got = s.recover(now).unwrap();
    assert_eq!(
        got,
        vec![
            tr("a", Up, Unknown, REASON_GATEWAY_DOWN, T0 + 30 * S),
            tr("b", Down, Unknown, REASON_GATEWAY_DOWN, T0 + 30 * S),
        ]
    );
    assert_eq!(
        all_intervals(&s, now),
        vec![
            iv("a", Up, "", T0, T0 + 30 * S),
            iv("a", Unknown, REASON_GATEWAY_DOWN, T0 + 30 * S, now),
            iv("b", Down, "comms", T0 + S, T0 + 30 * S),
            iv("b", Unknown, REASON_GATEWAY_DOWN, T0 + 30 * S, now),
        ]
    );
    // The engine carries on from the Unknown interval.
    s.record_transition(&tr("a", Unknown, Up, "", now + 2 * S))
        .unwrap();
}

#[test]
fn recovery_is_idempotent() {
    let (_d, mut s) = temp();
    s.record_transition(&tr("a", Unknown, Up, "", T0)).unwrap();
    s.heartbeat(T0 + 5 * S).unwrap();
    assert_eq!(s.recover(T0 + 60 * S).unwrap().len(), 1);
    let once = all_intervals(&s, T0 + 120 * S);
    assert!(s.recover(T0 + 61 * S).unwrap().is_empty());
    assert!(s.recover(T0 + 90 * S).unwrap().is_empty());
    assert_eq!(all_intervals(&s, T0 + 120 * S), once);
}

#[test]
fn recovery_never_closes_an_interval_before_its_start() {
    let (_d, mut s) = temp();
    s.heartbeat(T0).unwrap();
    // A transition recorded after the last heartbeat, then a crash.
    s.record_transition(&tr("a", Unknown, Down, "comms", T0 + 3 * S))
        .unwrap();
    let got = s.recover(T0 + 60 * S).unwrap();
    assert_eq!(
        got,
        vec![tr("a", Down, Unknown, REASON_GATEWAY_DOWN, T0 + 3 * S)]
    );
    assert_eq!(
        all_intervals(&s, T0 + 60 * S),
        vec![iv(
            "a",
            Unknown,
            REASON_GATEWAY_DOWN,
            T0 + 3 * S,
            T0 + 60 * S
        )]
    );
}

#[test]
fn recovery_without_any_heartbeat_keeps_nothing_unproven() {
    let (_d, mut s) = temp();
    s.record_transition(&tr("a", Unknown, Up, "", T0)).unwrap();
    s.recover(T0 + 60 * S).unwrap();
    assert_eq!(
        all_intervals(&s, T0 + 60 * S),
        vec![iv("a", Unknown, REASON_GATEWAY_DOWN, T0, T0 + 60 * S)]
    );
}

#[test]
fn two_handles_on_one_file_see_each_others_writes() {
    let dir = tempfile::tempdir().unwrap();
    let mut engine = Store::open(dir.path()).unwrap();
    let cli = Store::open_existing(dir.path()).unwrap();
    engine
        .record_transition(&tr("a", Unknown, Up, "", T0))
        .unwrap();
    engine.heartbeat(T0 + S).unwrap();
    assert_eq!(cli.last_heartbeat().unwrap(), Some(T0 + S));
    assert_eq!(cli.open_intervals().unwrap().len(), 1);
    let id = cli
        .enqueue_command(&Command::RemoveWindow { id: "w".into() })
        .unwrap();
    assert_eq!(engine.pending_commands().unwrap().len(), 1);
    engine.finish_command(id, &Ok("done".into()), T0).unwrap();
    assert_eq!(cli.command_result(id).unwrap(), Some(Ok("done".into())));
}

#[test]
fn a_writer_is_told_busy_while_another_handle_holds_the_write_lock() {
    let dir = tempfile::tempdir().unwrap();
    let mut a = Store::open(dir.path()).unwrap();
    let b = Store::open(dir.path()).unwrap();
    b.conn.busy_timeout(std::time::Duration::ZERO).unwrap();
    a.transaction(|s| -> Result<(), StoreError> {
        assert_eq!(s.reserve_seq(10)?, 1);
        let err = b.reserve_seq(1).unwrap_err();
        assert!(err.is_busy(), "{err}");
        // Readers are not blocked, and do not see the uncommitted write.
        assert_eq!(b.last_heartbeat().unwrap(), None);
        Ok(())
    })
    .unwrap();
    assert_eq!(b.reserve_seq(1).unwrap(), 11);
}

#[test]
fn opening_an_absent_database_for_the_cli_creates_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let missing = dir.path().join("never-ran");
    let err = Store::open_existing(&missing).unwrap_err();
    assert!(matches!(err, StoreError::Missing { .. }));
    assert!(err.to_string().contains("no gateway has run"), "{err}");
    assert!(!missing.exists());
}

#[test]
fn a_database_from_a_newer_build_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let s = Store::open(dir.path()).unwrap();
        s.conn
            .pragma_update(None, "user_version", SCHEMA_VERSION + 1)
            .unwrap();
    }
    let err = Store::open(dir.path()).unwrap_err();
    assert!(matches!(err, StoreError::SchemaTooNew { .. }), "{err}");
}

#[test]
fn reopening_keeps_the_schema_and_the_data() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = Store::open_with(dir.path(), Durability::Full).unwrap();
        s.record_transition(&tr("a", Unknown, Up, "", T0)).unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    let v: i64 = s
        .conn
        .pragma_query_value(None, "user_version", |r| r.get(0))
        .unwrap();
    assert_eq!(v, SCHEMA_VERSION);
    let mode: String = s
        .conn
        .pragma_query_value(None, "journal_mode", |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    assert_eq!(s.open_intervals().unwrap().len(), 1);
}

#[test]
fn commands_round_trip() {
    let (_d, s) = temp();
    let window = Window {
        id: "pump-weekly".into(),
        target: Target::Device("pump-1".into()),
        schedule: Schedule::Weekly {
            days: vec![Weekday::Tue],
            start: NaiveTime::from_hms_opt(20, 0, 0).unwrap(),
            end: NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
        },
        note: "保养".into(),
    };
    let cmds = vec![
        Command::Ack {
            id: 12,
            by: "张工".into(),
            note: "在路上".into(),
        },
        Command::Resolve {
            id: 12,
            by: "张工".into(),
            note: String::new(),
        },
        Command::Close {
            id: 12,
            by: "李经理".into(),
            note: String::new(),
        },
        Command::AddWindow(window),
        Command::RemoveWindow {
            id: "pump-weekly".into(),
        },
    ];
    let ids: Vec<i64> = cmds.iter().map(|c| s.enqueue_command(c).unwrap()).collect();
    assert!(ids.windows(2).all(|w| w[0] < w[1]));
    let pending = s.pending_commands().unwrap();
    assert_eq!(
        pending,
        ids.iter().copied().zip(cmds.clone()).collect::<Vec<_>>()
    );
    assert_eq!(s.command_result(ids[0]).unwrap(), None);
    s.finish_command(ids[0], &Ok("ticket #12 acknowledged".into()), T0)
        .unwrap();
    s.finish_command(ids[1], &Err("no ticket #12".into()), T0)
        .unwrap();
    // A second outcome does not overwrite the first.
    s.finish_command(ids[1], &Ok("late".into()), T0).unwrap();
    assert_eq!(
        s.command_result(ids[0]).unwrap(),
        Some(Ok("ticket #12 acknowledged".into()))
    );
    assert_eq!(
        s.command_result(ids[1]).unwrap(),
        Some(Err("no ticket #12".into()))
    );
    assert_eq!(s.command_result(9999).unwrap(), None);
    assert_eq!(s.pending_commands().unwrap().len(), 3);
}

#[test]
fn an_undecodable_command_can_be_failed_and_skipped() {
    let (_d, s) = temp();
    s.conn
        .execute("INSERT INTO commands (json) VALUES ('{\"launch\":1}')", [])
        .unwrap();
    let good = s
        .enqueue_command(&Command::RemoveWindow { id: "x".into() })
        .unwrap();
    assert!(matches!(
        s.pending_commands(),
        Err(StoreError::Corrupt { .. })
    ));
    assert_eq!(s.fail_undecodable_commands(T0).unwrap(), 1);
    assert_eq!(
        s.pending_commands()
            .unwrap()
            .iter()
            .map(|p| p.0)
            .collect::<Vec<_>>(),
        vec![good]
    );
}

#[test]
fn seq_is_strictly_increasing_across_reopen() {
    let dir = tempfile::tempdir().unwrap();
    let mut seen = Vec::new();
    for _ in 0..3 {
        let s = Store::open(dir.path()).unwrap();
        seen.push(s.reserve_seq(5).unwrap());
        seen.push(s.reserve_seq(1).unwrap());
    }
    assert_eq!(seen, vec![1, 6, 7, 12, 13, 18]);
}

fn book() -> TicketBook {
    TicketBook::new(
        &TicketsConfig::default(),
        chrono_tz::Asia::Shanghai,
        Vec::new(),
        1,
    )
}

fn fire(at_ms: UnixMs, active: bool) -> HardAlarm {
    HardAlarm {
        device: "fp-1".into(),
        point: "fire_alarm".into(),
        active,
        at_ms,
    }
}

const FP: DeviceRef<'static> = DeviceRef {
    id: "fp-1",
    class: DeviceClass::FireAlarm,
};
const PUMP: DeviceRef<'static> = DeviceRef {
    id: "pump-1",
    class: DeviceClass::Pump,
};

#[test]
fn tickets_are_upserted_and_their_events_logged() {
    let (_d, mut s) = temp();
    let mut b = book();
    assert_eq!(s.next_ticket_id().unwrap(), 1);
    let opened = b.on_alarm(FP, &fire(T0, true));
    s.save_ticket_events(&opened).unwrap();
    let other = b.on_availability_below(PUMP, 0.95, 98.0, Some("comms"), T0 + S);
    s.save_ticket_events(&other).unwrap();
    let acked = b.ack(1, "张工", "到场", T0 + 60 * S).unwrap();
    s.save_ticket_events(&acked).unwrap();

    let t1 = s.ticket(1).unwrap().unwrap();
    assert_eq!(t1.state, TicketState::Acknowledged);
    assert_eq!(t1, *b.get(1).unwrap());
    assert_eq!(s.ticket(99).unwrap(), None);
    assert_eq!(s.next_ticket_id().unwrap(), 3);

    let events = s.ticket_events_after(0).unwrap();
    let kinds: Vec<_> = events.iter().map(|(_, e)| (e.ticket.id, e.kind)).collect();
    assert_eq!(
        kinds,
        vec![
            (1, TicketEventKind::Opened),
            (2, TicketEventKind::Opened),
            (1, TicketEventKind::Acknowledged)
        ]
    );
    let after_first = s.ticket_events_after(events[0].0).unwrap();
    assert_eq!(after_first.len(), 2);
    assert_eq!(s.ticket_events(1).unwrap().len(), 2);

    // Filters.
    let pump = s
        .tickets(&TicketFilter {
            device: Some("pump-1".into()),
            ..TicketFilter::default()
        })
        .unwrap();
    assert_eq!(pump.iter().map(|t| t.id).collect::<Vec<_>>(), vec![2]);
    let recent = s
        .tickets(&TicketFilter {
            since_ms: Some(T0 + 30 * S),
            ..TicketFilter::default()
        })
        .unwrap();
    assert_eq!(recent.iter().map(|t| t.id).collect::<Vec<_>>(), vec![1]);
}

#[test]
fn closed_tickets_leave_the_open_list_but_stay_in_the_book_within_the_rework_period() {
    let (_d, mut s) = temp();
    let cfg = TicketsConfig::default();
    let mut b = book();
    let mut evs = b.on_alarm(FP, &fire(T0, true));
    evs.extend(b.resolve(1, "张工", "换探头", T0 + 100 * S).unwrap());
    evs.extend(b.close(1, "李经理", "", T0 + 200 * S).unwrap());
    s.save_ticket_events(&evs).unwrap();
    assert_eq!(s.ticket(1).unwrap().unwrap().state, TicketState::Closed);
    assert!(
        s.tickets(&TicketFilter {
            open_only: true,
            ..TicketFilter::default()
        })
        .unwrap()
        .is_empty()
    );
    assert_eq!(s.tickets(&TicketFilter::default()).unwrap().len(), 1);
    assert_eq!(s.tickets_for_book(&cfg, T0 + 3600 * S).unwrap().len(), 1);
    let eight_days = T0 + 8 * 24 * 3600 * S;
    assert!(s.tickets_for_book(&cfg, eight_days).unwrap().is_empty());
}

#[test]
fn a_failed_batch_in_a_transaction_rolls_everything_back() {
    let (_d, mut s) = temp();
    let mut b = book();
    let evs = b.on_alarm(FP, &fire(T0, true));
    let r: Result<(), StoreError> = s.transaction(|s| {
        s.save_ticket_events(&evs)?;
        s.record_transition(&tr("fp-1", Unknown, Up, "", T0))?;
        s.record_transition(&tr("fp-1", Down, Up, "", T0 + S))?; // refused
        Ok(())
    });
    assert!(matches!(r, Err(StoreError::Inconsistent { .. })));
    assert_eq!(s.ticket(1).unwrap(), None);
    assert!(s.open_intervals().unwrap().is_empty());
    // The handle is usable afterwards.
    s.save_ticket_events(&evs).unwrap();
    assert!(s.ticket(1).unwrap().is_some());
}

#[test]
fn windows_are_added_listed_and_removed() {
    let (_d, s) = temp();
    let w = |id: &str, from: i64| Window {
        id: id.into(),
        target: Target::Class(DeviceClass::Pump),
        schedule: Schedule::Once {
            from_ms: from,
            to_ms: from + 3600 * S,
        },
        note: String::new(),
    };
    s.add_window(&w("b", T0)).unwrap();
    s.add_window(&w("a", T0 + 86_400 * S)).unwrap();
    assert!(matches!(s.add_window(&w("a", T0)), Err(StoreError::WindowExists(id)) if id == "a"));
    assert_eq!(
        s.windows().unwrap(),
        vec![w("b", T0), w("a", T0 + 86_400 * S)]
    );
    assert!(s.remove_window("b").unwrap());
    assert!(!s.remove_window("b").unwrap());
    assert_eq!(s.windows().unwrap(), vec![w("a", T0 + 86_400 * S)]);
}

#[test]
fn devices_are_upserted_by_id() {
    let (_d, s) = temp();
    let row = |id: &str, t: f64| DeviceRow {
        id: id.into(),
        name_zh: "一号泵".into(),
        name_en: "Pump 1".into(),
        class: DeviceClass::Pump,
        threshold_percent: t,
    };
    s.upsert_devices(&[row("p1", 98.0), row("p2", 98.0)])
        .unwrap();
    s.upsert_devices(&[row("p1", 99.5)]).unwrap();
    assert_eq!(s.devices().unwrap(), vec![row("p1", 99.5), row("p2", 98.0)]);
}

/// One step of a random history: a transition to a state after a gap, or a
/// bogus one (wrong `from` or going back in time) that must be refused.
#[derive(Clone, Debug)]
enum Step {
    Go {
        device: usize,
        to: usize,
        gap_ms: i64,
    },
    WrongFrom {
        device: usize,
    },
    Backwards {
        device: usize,
        by_ms: i64,
    },
    Crash {
        heartbeat_gap_ms: i64,
        down_ms: i64,
    },
}

fn step() -> impl Strategy<Value = Step> {
    prop_oneof![
        6 => (0..3usize, 0..4usize, 0..10_000i64).prop_map(|(device, to, gap_ms)| Step::Go { device, to, gap_ms }),
        1 => (0..3usize).prop_map(|device| Step::WrongFrom { device }),
        1 => (0..3usize, 1..5_000i64).prop_map(|(device, by_ms)| Step::Backwards { device, by_ms }),
        1 => (0..10_000i64, 0..100_000i64).prop_map(|(heartbeat_gap_ms, down_ms)| Step::Crash { heartbeat_gap_ms, down_ms }),
    ]
}

const STATES: [DeviceState; 4] = [Up, Down, Maintenance, Unknown];
const DEVICES: [&str; 3] = ["a", "b", "c"];

proptest! {
    #![proptest_config(ProptestConfig { cases: 48, ..ProptestConfig::default() })]

    /// Whatever arrives — good transitions, refused ones, crashes with
    /// recovery — each device's intervals never overlap, leave no hole and
    /// cover the span from its first transition to now.
    #[test]
    fn intervals_never_overlap_and_cover_the_span(steps in prop::collection::vec(step(), 1..40)) {
        let (_d, mut s) = temp();
        let mut now = T0;
        let mut first: [Option<UnixMs>; 3] = [None; 3];
        let mut current: [DeviceState; 3] = [Unknown; 3];
        let mut open_since: [UnixMs; 3] = [T0; 3];
        for st in steps {
            match st {
                Step::Go { device, to, gap_ms } => {
                    now += gap_ms;
                    let t = tr(DEVICES[device], current[device], STATES[to], "", now);
                    s.record_transition(&t).unwrap();
                    first[device].get_or_insert(now);
                    current[device] = STATES[to];
                    open_since[device] = now;
                }
                Step::WrongFrom { device } => {
                    let wrong = STATES.iter().copied().find(|x| *x != current[device]).unwrap();
                    let before = all_intervals(&s, now);
                    let t = tr(DEVICES[device], wrong, Up, "", now);
                    // With no open interval yet any `from` is accepted.
                    if first[device].is_some() {
                        prop_assert!(s.record_transition(&t).is_err());
                        prop_assert_eq!(all_intervals(&s, now), before);
                    }
                }
                Step::Backwards { device, by_ms } => {
                    if first[device].is_some() {
                        let before = all_intervals(&s, now);
                        let t = tr(DEVICES[device], current[device], Down, "", open_since[device] - by_ms);
                        prop_assert!(s.record_transition(&t).is_err());
                        prop_assert_eq!(all_intervals(&s, now), before);
                    }
                }
                Step::Crash { heartbeat_gap_ms, down_ms } => {
                    now += heartbeat_gap_ms;
                    s.heartbeat(now).unwrap();
                    now += down_ms;
                    for t in s.recover(now).unwrap() {
                        let i = DEVICES.iter().position(|d| *d == t.device).unwrap();
                        prop_assert_eq!(t.from, current[i]);
                        current[i] = Unknown;
                        open_since[i] = open_since[i].max(t.at_ms);
                    }
                    // Idempotent.
                    prop_assert!(s.recover(now).unwrap().is_empty());
                }
            }
        }
        let end = now + 1;
        for (i, d) in DEVICES.iter().enumerate() {
            let ivs = s.intervals(Some(d), i64::MIN, i64::MAX, end).unwrap();
            match first[i] {
                None => prop_assert!(ivs.is_empty()),
                Some(f) => {
                    prop_assert_eq!(ivs[0].from_ms, f);
                    prop_assert_eq!(ivs.last().unwrap().to_ms, end);
                    prop_assert_eq!(ivs.last().unwrap().state, current[i]);
                    for w in ivs.windows(2) {
                        prop_assert_eq!(w[0].to_ms, w[1].from_ms);
                    }
                    prop_assert!(ivs.iter().all(|x| x.from_ms < x.to_ms));
                }
            }
        }
    }
}

fn notice(key: &str, ticket: Option<u64>, held: bool) -> gateway_core::alerts::Notice {
    use gateway_core::alerts::{Message, Notice, NoticeKind};
    Notice {
        key: key.to_owned(),
        ticket,
        kind: NoticeKind::Page,
        tier: 1,
        channel: "hook".to_owned(),
        message: Message {
            title: key.to_owned(),
            lines: Vec::new(),
            link: None,
            link_text: String::new(),
            to: Vec::new(),
            urgent: false,
        },
        at_ms: 0,
        held,
        covers: Vec::new(),
    }
}

fn alert_id(s: &Store, key: &str) -> i64 {
    let log = s.alert_log(None, None, 100).unwrap();
    log.iter().find(|r| r.notice.key == key).unwrap().id
}

fn alert_keys(s: &Store) -> Vec<String> {
    let mut k: Vec<String> = s
        .alert_log(None, None, 100)
        .unwrap()
        .into_iter()
        .map(|r| r.notice.key)
        .collect();
    k.sort();
    k
}

#[test]
fn pruning_deletes_only_old_final_alerts_of_closed_tickets_in_bounded_batches() {
    const DAY: i64 = 86_400_000;
    let (_d, mut s) = temp();
    let mut b = book();
    // Ticket 1 closed; ticket 2 (the pump) still open.
    s.save_ticket_events(&b.on_alarm(FP, &fire(T0 - 20 * DAY, true)))
        .unwrap();
    s.save_ticket_events(&b.on_availability_below(PUMP, 0.95, 98.0, None, T0 - 20 * DAY))
        .unwrap();
    s.save_ticket_events(&b.resolve(1, "li", "", T0 - 19 * DAY).unwrap())
        .unwrap();
    s.save_ticket_events(&b.close(1, "li", "", T0 - 19 * DAY).unwrap())
        .unwrap();
    let old = T0 - 10 * DAY;
    let keys = [
        ("t1/sent", Some(1), false),
        ("t1/expired", Some(1), false),
        ("t1/digested", Some(1), true),
        ("t1/pending", Some(1), false),
        ("t1/held", Some(1), true),
        ("t2/sent", Some(2), false),
        ("t1/sent-late", Some(1), false),
    ];
    let ns: Vec<_> = keys.iter().map(|(k, t, h)| notice(k, *t, *h)).collect();
    s.record_notices(&ns, old).unwrap();
    let mut digest = notice("digest/hook", None, false);
    digest.covers = vec!["t1/digested".to_owned()];
    s.record_notices(&[digest], old).unwrap();
    s.alert_sent(alert_id(&s, "t1/sent"), old).unwrap();
    s.alert_expired(alert_id(&s, "t1/expired"), "gone", old)
        .unwrap();
    s.alert_sent(alert_id(&s, "digest/hook"), old).unwrap();
    s.alert_sent(alert_id(&s, "t2/sent"), old).unwrap();
    // Recorded long ago, sent only after the cutoff: kept.
    s.alert_sent(alert_id(&s, "t1/sent-late"), T0 + 1).unwrap();
    // Recorded and sent after the cutoff: kept.
    s.record_notices(&[notice("t1/young", Some(1), false)], T0 + 5)
        .unwrap();
    s.alert_sent(alert_id(&s, "t1/young"), T0 + 5).unwrap();

    // Four rows are old and final: two per call, then none.
    assert_eq!(s.prune_alerts(T0, 2).unwrap(), 2);
    assert_eq!(s.prune_alerts(T0, 2).unwrap(), 2);
    assert_eq!(s.prune_alerts(T0, 2).unwrap(), 0);
    assert_eq!(
        alert_keys(&s),
        vec![
            "t1/held",
            "t1/pending",
            "t1/sent-late",
            "t1/young",
            "t2/sent"
        ]
    );
    assert_eq!(s.pending_alerts().unwrap(), 1);
    // Ticket 2 closes: its notices may go too.
    s.save_ticket_events(&b.resolve(2, "li", "", T0).unwrap())
        .unwrap();
    assert_eq!(
        s.prune_alerts(T0, 100).unwrap(),
        0,
        "resolved is not closed"
    );
    s.save_ticket_events(&b.close(2, "li", "", T0).unwrap())
        .unwrap();
    assert_eq!(s.prune_alerts(T0, 100).unwrap(), 1);
    assert!(!alert_keys(&s).contains(&"t2/sent".to_owned()));
}

#[test]
fn a_zero_byte_or_missing_ledger_where_a_gateway_ran_is_refused_naming_the_way_back() {
    let dir = tempfile::tempdir().unwrap();
    // A new folder: a new ledger, and the marks file that says so.
    drop(Store::open(dir.path()).unwrap());
    assert!(dir.path().join(MARKS_FILE).is_file());
    for how in ["empty (0 bytes)", "missing"] {
        let db = dir.path().join(DB_FILE);
        if how == "missing" {
            std::fs::remove_file(&db).unwrap();
        } else {
            std::fs::write(&db, b"").unwrap();
        }
        let e = Store::open(dir.path()).unwrap_err();
        assert!(matches!(e, StoreError::Lost { .. }), "{e}");
        assert!(e.is_damage());
        let text = e.to_string();
        assert!(text.contains(how), "{text}");
        assert!(text.contains("gateway.db"), "{text}");
        assert!(text.contains("gateway restore"), "{text}");
        assert!(!db.is_file() || std::fs::metadata(&db).unwrap().len() == 0);
    }
    // A used outbox says so too, without a marks file.
    let other = tempfile::tempdir().unwrap();
    std::fs::write(other.path().join("outbox.db"), b"x").unwrap();
    let e = Store::open(other.path()).unwrap_err();
    assert!(matches!(e, StoreError::Lost { .. }), "{e}");
}

#[test]
fn a_file_that_is_not_sqlite_or_fails_the_integrity_check_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    {
        let mut s = Store::open(dir.path()).unwrap();
        let mut b = book();
        for i in 0..200 {
            s.save_ticket_events(&b.on_alarm(FP, &fire(T0 + i * S, i % 2 == 0)))
                .unwrap();
        }
    }
    let db = dir.path().join(DB_FILE);
    let good = std::fs::read(&db).unwrap();
    let mut bad = good.clone();
    bad[..16].copy_from_slice(b"not a database!\0");
    std::fs::write(&db, &bad).unwrap();
    let e = Store::open(dir.path()).unwrap_err();
    assert!(matches!(e, StoreError::Damaged { .. }), "{e}");
    assert!(e.to_string().contains("SQLite header"), "{e}");
    // Page 3 overwritten with zeros: structure gone.
    let mut bad = good.clone();
    bad[2 * 4096..3 * 4096].fill(0);
    std::fs::write(&db, &bad).unwrap();
    let e = Store::open(dir.path()).unwrap_err();
    assert!(e.is_damage(), "{e}");
    assert!(e.to_string().contains("gateway restore"), "{e}");
    std::fs::write(&db, &good).unwrap();
    Store::open(dir.path()).unwrap();
}

#[test]
fn ticket_ids_follow_the_marks_file_when_the_database_is_older() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let mut b = book();
    s.save_ticket_events(&b.on_alarm(FP, &fire(T0, true)))
        .unwrap();
    assert_eq!(s.next_ticket_id().unwrap(), 2);
    drop(s);
    let text = std::fs::read_to_string(dir.path().join(MARKS_FILE)).unwrap();
    assert!(text.contains("next_ticket_id 2"), "{text}");
    // A backup of this ledger restored after tickets up to #7 were issued.
    std::fs::write(dir.path().join(MARKS_FILE), "next_ticket_id 8\n").unwrap();
    let s = Store::open(dir.path()).unwrap();
    assert_eq!(s.next_ticket_id().unwrap(), 8);
}
