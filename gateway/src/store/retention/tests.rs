//! Retention against a real database: what goes, what stays, batch sizes,
//! the remembered cutoff and ticket ids.

use gateway_core::config::TicketsConfig;
use gateway_core::maintenance::{Schedule, Target, Window};
use gateway_core::model::DeviceClass;
use gateway_core::state::{DeviceState, HardAlarm, Interval, Transition, UnixMs};
use gateway_core::tickets::{DeviceRef, TicketBook, TicketState};

use super::*;
use crate::store::Command;
use crate::store::TicketFilter;

use DeviceState::{Down, Maintenance, Unknown, Up};

/// The cutoff of the tests (any instant will do for the store).
const C: UnixMs = 1_790_000_000_000;
const DAY: i64 = 86_400_000;

fn step(s: &mut Store, device: &str, from: DeviceState, to: DeviceState, at_ms: UnixMs) {
    s.record_transition(&Transition {
        device: device.to_owned(),
        from,
        to,
        reason: None,
        at_ms,
    })
    .unwrap();
}

fn intervals_of(s: &Store, device: &str) -> Vec<(DeviceState, UnixMs, UnixMs)> {
    s.intervals(Some(device), i64::MIN, i64::MAX, C + 100 * DAY)
        .unwrap()
        .into_iter()
        .map(|i: Interval| (i.state, i.from_ms, i.to_ms))
        .collect()
}

fn count(s: &Store, table: &str) -> i64 {
    s.conn
        .query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
        .unwrap()
}

fn once(id: &str, from_ms: UnixMs, to_ms: UnixMs) -> Window {
    Window {
        id: id.to_owned(),
        target: Target::Device("a".to_owned()),
        schedule: Schedule::Once { from_ms, to_ms },
        note: String::new(),
    }
}

fn prune_all(s: &Store, cutoff: &Cutoff, limit: usize) -> (Pruned, usize) {
    let mut total = Pruned::default();
    let mut batches = 0;
    loop {
        let b = s.prune_batch(cutoff, limit).unwrap();
        if b.total() == 0 {
            return (total, batches);
        }
        assert!(
            b.intervals <= limit as u64 && b.commands <= limit as u64 && b.windows <= limit as u64,
            "{b:?}"
        );
        assert!(b.tickets <= (limit / 10) as u64, "{b:?}");
        total += b;
        batches += 1;
    }
}

#[test]
fn only_rows_entirely_before_the_cutoff_go_and_each_device_keeps_its_last_up_or_down() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();

    // a: a long history, the last Up/Down before the cutoff ends at C-20d.
    step(&mut s, "a", Unknown, Up, C - 200 * DAY);
    let mut state = Up;
    for k in 0..30 {
        let next = if state == Up { Down } else { Up };
        step(&mut s, "a", state, next, C - 199 * DAY + k * DAY);
        state = next;
    }
    step(&mut s, "a", state, Up, C - 30 * DAY);
    step(&mut s, "a", Up, Maintenance, C - 20 * DAY);
    step(&mut s, "a", Maintenance, Unknown, C - 10 * DAY);
    step(&mut s, "a", Unknown, Up, C + 5 * DAY);
    // b: its Up ends exactly at the cutoff (not before it): all stays.
    step(&mut s, "b", Unknown, Down, C - 30 * DAY);
    step(&mut s, "b", Down, Up, C - 20 * DAY);
    step(&mut s, "b", Up, Down, C);
    // c: open since long before the cutoff.
    step(&mut s, "c", Unknown, Up, C - 300 * DAY);
    // d: never Up or Down before the cutoff.
    step(&mut s, "d", Unknown, Unknown, C - 30 * DAY);
    s.conn
        .execute(
            "UPDATE intervals SET reason = 'startup' WHERE device = 'd' AND to_ms IS NOT NULL",
            [],
        )
        .unwrap();
    let b_before = intervals_of(&s, "b");
    let c_before = intervals_of(&s, "c");
    let d_before = intervals_of(&s, "d");

    // Tickets: 1 open since long ago, 2 resolved (not closed) before the
    // cutoff, 3 closed after it, 4 closed before it (the newest id).
    let cfg = TicketsConfig::default();
    let mut book = TicketBook::new(&cfg, chrono_tz::Asia::Shanghai, Vec::new(), 1);
    let dev = DeviceRef {
        id: "a",
        class: DeviceClass::Pump,
    };
    let alarm = |point: &str, at_ms| HardAlarm {
        device: "a".to_owned(),
        point: point.to_owned(),
        active: true,
        at_ms,
    };
    let mut events = book.on_alarm(dev, &alarm("p1", C - 100 * DAY));
    events.extend(book.on_alarm(dev, &alarm("p2", C - 90 * DAY)));
    events.extend(book.resolve(2, "li", "", C - 89 * DAY).unwrap());
    events.extend(book.on_alarm(dev, &alarm("p3", C - 5 * DAY)));
    events.extend(book.resolve(3, "li", "", C - 4 * DAY).unwrap());
    events.extend(book.close(3, "li", "", C + DAY).unwrap());
    events.extend(book.on_alarm(dev, &alarm("p4", C - 20 * DAY)));
    events.extend(book.ack(4, "li", "", C - 19 * DAY).unwrap());
    events.extend(book.resolve(4, "li", "", C - 18 * DAY).unwrap());
    events.extend(book.close(4, "li", "", C - DAY).unwrap());
    s.save_ticket_events(&events).unwrap();
    let events_of_4 = s.ticket_events(4).unwrap().len();
    assert_eq!(events_of_4, 4);

    // Commands: finished before, finished at the cutoff, pending.
    let cmd = Command::RemoveWindow { id: "x".into() };
    let c1 = s.enqueue_command(&cmd).unwrap();
    let c2 = s.enqueue_command(&cmd).unwrap();
    let c3 = s.enqueue_command(&cmd).unwrap();
    s.finish_command(c1, &Ok("done".into()), C - 1).unwrap();
    s.finish_command(c2, &Ok("done".into()), C).unwrap();

    // Windows: ended before, ends after, weekly.
    s.add_window(&once("old", C - 3 * DAY, C - 2 * DAY))
        .unwrap();
    s.add_window(&once("across", C - DAY, C + DAY)).unwrap();
    s.add_window(&Window {
        id: "weekly".into(),
        target: Target::Class(DeviceClass::Pump),
        schedule: Schedule::Weekly {
            days: vec![chrono::Weekday::Tue],
            start: chrono::NaiveTime::from_hms_opt(20, 0, 0).unwrap(),
            end: chrono::NaiveTime::from_hms_opt(22, 0, 0).unwrap(),
        },
        note: String::new(),
    })
    .unwrap();

    // Not retention's: nonces, devices, alerts.
    s.remember_nonce("abcdefgh", C - 50 * DAY, C - 60 * DAY)
        .unwrap();
    s.conn
        .execute(
            "INSERT INTO alerts (key, ticket, kind, tier, channel, recipients, json, state, created_ms, next_ms)
             VALUES ('k', 4, 'page', 1, 'wecom', 'li', '{}', 'sent', ?1, ?1)",
            [C - 20 * DAY],
        )
        .unwrap();
    let (nonces, alerts) = (count(&s, "nonces"), count(&s, "alerts"));

    assert_eq!(s.retained_from().unwrap(), None);
    s.begin_prune(C).unwrap();
    assert_eq!(s.retained_from().unwrap(), Some(C));
    let cutoff = Cutoff {
        before_ms: C,
        tickets_before_ms: C,
    };
    let (pruned, batches) = prune_all(&s, &cutoff, 10);

    // a: the 31 intervals before C-30d go; the last Up before the cutoff stays,
    // and everything after it.
    assert_eq!(
        intervals_of(&s, "a"),
        vec![
            (Up, C - 30 * DAY, C - 20 * DAY),
            (Maintenance, C - 20 * DAY, C - 10 * DAY),
            (Unknown, C - 10 * DAY, C + 5 * DAY),
            (Up, C + 5 * DAY, C + 100 * DAY),
        ]
    );
    assert_eq!(intervals_of(&s, "b"), b_before);
    assert_eq!(intervals_of(&s, "c"), c_before);
    assert_eq!(intervals_of(&s, "d"), d_before);
    assert_eq!(s.open_intervals().unwrap().len(), 4);

    let ids: Vec<u64> = s
        .tickets(&TicketFilter::default())
        .unwrap()
        .iter()
        .map(|t| t.id)
        .collect();
    assert_eq!(ids, vec![1, 2, 3]);
    assert_eq!(s.ticket(2).unwrap().unwrap().state, TicketState::Resolved);
    assert!(s.ticket_events(4).unwrap().is_empty());
    assert_eq!(s.ticket_events(1).unwrap().len(), 1);
    assert_eq!(
        s.next_ticket_id().unwrap(),
        5,
        "a deleted ticket's id is never reused"
    );
    assert!(s.ticket_deleted(4).unwrap());
    assert!(!s.ticket_deleted(1).unwrap());
    assert!(!s.ticket_deleted(5).unwrap());

    assert_eq!(s.command_result(c1).unwrap(), None);
    assert_eq!(s.command_result(c2).unwrap(), Some(Ok("done".into())));
    assert_eq!(s.pending_commands().unwrap().len(), 1);
    assert_eq!(s.pending_commands().unwrap()[0].0, c3);

    let windows: Vec<String> = s.windows().unwrap().into_iter().map(|w| w.id).collect();
    assert_eq!(windows, vec!["across", "weekly"]);

    assert_eq!((count(&s, "nonces"), count(&s, "alerts")), (nonces, alerts));
    assert_eq!(
        pruned,
        Pruned {
            intervals: 31,
            tickets: 1,
            ticket_events: 4,
            commands: 1,
            windows: 1,
        }
    );
    // 31 intervals in batches of 10, then one batch per other table.
    assert_eq!(batches, 4 + 1 + 1 + 1);

    // A second run deletes nothing; the cutoff never moves back.
    assert_eq!(prune_all(&s, &cutoff, 10).0, Pruned::default());
    s.begin_prune(C - 40 * DAY).unwrap();
    assert_eq!(s.retained_from().unwrap(), Some(C));
}

#[test]
fn a_closed_ticket_within_the_rework_period_stays() {
    let dir = tempfile::tempdir().unwrap();
    let mut s = Store::open(dir.path()).unwrap();
    let cfg = TicketsConfig::default();
    let mut book = TicketBook::new(&cfg, chrono_tz::Asia::Shanghai, Vec::new(), 1);
    let dev = DeviceRef {
        id: "a",
        class: DeviceClass::Pump,
    };
    let mut events = book.on_alarm(
        dev,
        &HardAlarm {
            device: "a".into(),
            point: "p".into(),
            active: true,
            at_ms: C - 10 * DAY,
        },
    );
    events.extend(book.resolve(1, "li", "", C - 9 * DAY).unwrap());
    events.extend(book.close(1, "li", "", C - 8 * DAY).unwrap());
    s.save_ticket_events(&events).unwrap();
    let rework_start = C - 9 * DAY - 1;
    let cutoff = Cutoff {
        before_ms: C,
        tickets_before_ms: rework_start,
    };
    assert_eq!(prune_all(&s, &cutoff, 100).0, Pruned::default());
    assert!(s.ticket(1).unwrap().is_some());
}

#[test]
fn commands_finished_before_the_upgrade_count_as_finished_when_it_ran() {
    let dir = tempfile::tempdir().unwrap();
    {
        let c = rusqlite::Connection::open(dir.path().join(crate::store::DB_FILE)).unwrap();
        for step in &crate::store::db::MIGRATIONS[..3] {
            c.execute_batch(step).unwrap();
        }
        c.pragma_update(None, "user_version", 3).unwrap();
        c.execute(
            "INSERT INTO commands (json, finished, ok, result) VALUES ('{}', 1, 1, 'done')",
            [],
        )
        .unwrap();
        c.execute("INSERT INTO commands (json) VALUES ('{}')", [])
            .unwrap();
    }
    let s = Store::open(dir.path()).unwrap();
    let done: Vec<Option<i64>> = s
        .conn
        .prepare("SELECT done_ms FROM commands ORDER BY id")
        .unwrap()
        .query_map([], |r| r.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let first = done[0].unwrap();
    assert!((now - first).abs() < 10_000, "{first} vs {now}");
    assert_eq!(done[1], None);
    // Not deleted by a cutoff before the upgrade.
    let cutoff = Cutoff {
        before_ms: first,
        tickets_before_ms: first,
    };
    assert_eq!(prune_all(&s, &cutoff, 10).0, Pruned::default());
}
