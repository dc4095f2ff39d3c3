//! The CLI's ticket, maintenance and status commands, driven as library
//! functions against a temporary data dir, with a fake clock (numbers) and
//! tokio's paused clock for the waits.

use std::path::{Path, PathBuf};

use chrono::TimeZone;
use gateway_core::model::DeviceClass;
use gateway_core::state::{DeviceState, HardAlarm, Transition, UnixMs};
use gateway_core::tickets::{DeviceRef, TicketBook, TicketState};

use super::*;
use crate::cli::maintenance::{AddArgs, window_from_args, window_rows};
use crate::cli::status::status;
use crate::store::apply_ticket_command;

const MIN: i64 = 60_000;
const HOUR: i64 = 60 * MIN;
const DAY: i64 = 24 * HOUR;

/// A local time in Shanghai, as Unix ms.
fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> UnixMs {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .unwrap()
        .timestamp_millis()
}

fn profiles() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/profiles")
}

/// A site with a pump, a fire panel and a weekly class window, its data dir
/// in a temp dir.
fn site(dir: &Path) -> Site {
    let text = format!(
        r#"
site = "t"
gateway = "g"
timezone = "Asia/Shanghai"
data_dir = "data"
profiles_dir = "{}"

[[bus]]
id = "tcp-1"
kind = "tcp"
address = "127.0.0.1:1502"

[[device]]
id = "pump-1"
name_zh = "一号泵"
class = "pump"
bus = "tcp-1"
unit = 1
profile = "pump-vfd"

[[device]]
id = "fp-1"
name_zh = "消防主机"
class = "fire_alarm"
bus = "tcp-1"
unit = 2
profile = "fire-panel"

[[maintenance]]
id = "pumps-weekly"
class = "pump"
weekly = "Tue 20:00-22:00"
note = "例行保养"
"#,
        profiles().display()
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = crate::files::load_config(&path).unwrap();
    let site = Site::new(cfg, &path).unwrap();
    assert_eq!(site.data_dir, dir.join("data"));
    site
}

const FP: DeviceRef<'static> = DeviceRef {
    id: "fp-1",
    class: DeviceClass::FireAlarm,
};
const PUMP: DeviceRef<'static> = DeviceRef {
    id: "pump-1",
    class: DeviceClass::Pump,
};

/// A stopped gateway's store holding a critical ticket #1 (fire panel) and
/// an ordinary #2 (pump), opened at `t0`.
fn seeded(site: &Site, t0: UnixMs) -> Store {
    let mut store = Store::open(&site.data_dir).unwrap();
    let mut book = TicketBook::new(&site.config.raw.tickets, site.tz, Vec::new(), 1);
    let mut evs = book.on_alarm(
        FP,
        &HardAlarm {
            device: "fp-1".into(),
            point: "fire_alarm".into(),
            active: true,
            at_ms: t0,
        },
    );
    evs.extend(book.on_availability_below(PUMP, 0.95, 98.0, Some("comms"), t0 + MIN));
    store.save_ticket_events(&evs).unwrap();
    store
}

fn ack(id: u64, by: &str) -> Command {
    Command::Ack {
        id,
        by: by.into(),
        note: "在路上".into(),
    }
}

#[tokio::test]
async fn with_no_gateway_running_an_ack_is_applied_directly_and_saved() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let t0 = at(2026, 11, 10, 10, 0);
    let mut store = seeded(&site, t0);
    let got = send(&mut store, &site, &ack(1, "张工"), t0 + 10 * MIN, WAIT)
        .await
        .unwrap();
    assert_eq!(
        got,
        Delivery::Applied("ticket #1 acknowledged by 张工".into())
    );
    let t = store.ticket(1).unwrap().unwrap();
    assert_eq!(t.state, TicketState::Acknowledged);
    assert_eq!(t.acknowledged.unwrap().note, "在路上");
    assert_eq!(store.ticket_events(1).unwrap().len(), 2);
    assert!(store.pending_commands().unwrap().is_empty());
}

#[tokio::test]
async fn a_fresh_heartbeat_of_a_stopped_gateway_does_not_count_as_running() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let t0 = at(2026, 11, 10, 10, 0);
    let mut store = seeded(&site, t0);
    store.heartbeat(t0).unwrap();
    let got = send(&mut store, &site, &ack(2, "李工"), t0 + 1_000, WAIT)
        .await
        .unwrap();
    assert!(matches!(got, Delivery::Applied(_)), "{got:?}");
}

#[tokio::test]
async fn an_ack_of_a_ticket_that_does_not_exist_is_refused_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let t0 = at(2026, 11, 10, 10, 0);
    let mut store = seeded(&site, t0);
    let before = store.ticket_events_after(0).unwrap();
    let err = send(&mut store, &site, &ack(99, "张工"), t0 + MIN, WAIT)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "no ticket #99");
    assert_eq!(store.ticket_events_after(0).unwrap(), before);
}

#[tokio::test]
async fn a_command_in_the_wrong_state_is_refused_with_the_state_named() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let t0 = at(2026, 11, 10, 10, 0);
    let mut store = seeded(&site, t0);
    let resolve = Command::Resolve {
        id: 1,
        by: "张工".into(),
        note: "更换探头".into(),
    };
    send(&mut store, &site, &resolve, t0 + HOUR, WAIT)
        .await
        .unwrap();
    let err = send(&mut store, &site, &ack(1, "张工"), t0 + 2 * HOUR, WAIT)
        .await
        .unwrap_err();
    assert_eq!(
        err.to_string(),
        "ticket #1 is resolved; it cannot be acknowledged"
    );
    // Long after it was closed it is still a state error, not "no ticket".
    let close = Command::Close {
        id: 1,
        by: "王经理".into(),
        note: String::new(),
    };
    send(&mut store, &site, &close, t0 + 3 * HOUR, WAIT)
        .await
        .unwrap();
    let err = send(&mut store, &site, &close, t0 + 40 * DAY, WAIT)
        .await
        .unwrap_err();
    assert_eq!(err.to_string(), "ticket #1 is closed; it cannot be closed");
}

#[tokio::test]
async fn an_ack_without_a_name_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let t0 = at(2026, 11, 10, 10, 0);
    let mut store = seeded(&site, t0);
    let err = send(&mut store, &site, &ack(1, "  "), t0 + MIN, WAIT)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("say who is acting"), "{err}");
    assert_eq!(store.ticket(1).unwrap().unwrap().state, TicketState::Open);
}

/// A stand-in for the engine: applies queued ticket commands every second.
async fn fake_engine(
    data_dir: PathBuf,
    site_tickets: gateway_core::config::TicketsConfig,
    t0: UnixMs,
) {
    let mut store = Store::open(&data_dir).unwrap();
    let mut book = TicketBook::new(
        &site_tickets,
        chrono_tz::Asia::Shanghai,
        store.tickets_for_book(&site_tickets, t0).unwrap(),
        store.next_ticket_id().unwrap(),
    );
    loop {
        for (id, cmd) in store.pending_commands().unwrap() {
            let result = match apply_ticket_command(&mut book, &cmd, t0 + MIN) {
                Some(Ok((events, text))) => {
                    store.save_ticket_events(&events).unwrap();
                    Ok(text)
                }
                Some(Err(e)) => Err(e.to_string()),
                None => Err("not a ticket command".into()),
            };
            store.finish_command(id, &result, t0 + MIN).unwrap();
        }
        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
    }
}

#[tokio::test(start_paused = true)]
async fn with_a_gateway_running_the_command_is_queued_and_its_answer_awaited() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let t0 = at(2026, 11, 10, 10, 0);
    let mut store = seeded(&site, t0);
    store.heartbeat(t0).unwrap();
    let _running = DataDirLock::try_acquire(&site.data_dir).unwrap().unwrap();
    let engine = tokio::spawn(fake_engine(
        site.data_dir.clone(),
        site.config.raw.tickets.clone(),
        t0,
    ));
    let got = send(&mut store, &site, &ack(2, "李工"), t0 + 3_000, WAIT)
        .await
        .unwrap();
    assert_eq!(
        got,
        Delivery::Answered(Ok("ticket #2 acknowledged by 李工".into()))
    );
    let refused = send(&mut store, &site, &ack(2, "李工"), t0 + 4_000, WAIT)
        .await
        .unwrap();
    assert_eq!(
        refused,
        Delivery::Answered(Err(
            "ticket #2 is acknowledged; it cannot be acknowledged".into()
        ))
    );
    engine.abort();
    assert_eq!(
        store.ticket(2).unwrap().unwrap().state,
        TicketState::Acknowledged
    );
}

#[tokio::test(start_paused = true)]
async fn a_running_gateway_that_does_not_answer_leaves_the_command_queued() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let t0 = at(2026, 11, 10, 10, 0);
    let mut store = seeded(&site, t0);
    store.heartbeat(t0).unwrap();
    let _running = DataDirLock::try_acquire(&site.data_dir).unwrap().unwrap();
    let started = tokio::time::Instant::now();
    let got = send(&mut store, &site, &ack(1, "张工"), t0 + 1_000, WAIT)
        .await
        .unwrap();
    let Delivery::Pending(id) = got else {
        panic!("expected a pending command, got {got:?}");
    };
    assert!(started.elapsed() >= WAIT);
    assert_eq!(
        store.pending_commands().unwrap(),
        vec![(id, ack(1, "张工"))]
    );
    assert_eq!(store.ticket(1).unwrap().unwrap().state, TicketState::Open);
}

#[test]
fn the_list_shows_each_ticket_with_age_deadline_and_who_took_it() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let t0 = at(2026, 11, 10, 10, 0);
    let store = seeded(&site, t0);
    let list = store.tickets(&TicketFilter::default()).unwrap();
    let text = list_text(&site, &list, t0 + 5 * HOUR);
    let lines: Vec<&str> = text.lines().collect();
    assert_eq!(lines.len(), 3, "{text}");
    assert!(lines[0].starts_with("ID  DEVICE"), "{text}");
    // The critical ticket was due two hours after opening: overdue.
    assert!(
        lines[1].contains("#1") && lines[1].contains("alarm:fire_alarm"),
        "{text}"
    );
    assert!(
        lines[1].contains("critical") && lines[1].contains("5h 00m"),
        "{text}"
    );
    assert!(lines[1].contains("2026-11-10 12:00 overdue"), "{text}");
    // The ordinary one is due at the end of the working day.
    assert!(lines[2].contains("2026-11-10 18:00"), "{text}");
    assert!(!lines[2].contains("overdue"), "{text}");
    assert_eq!(list_text(&site, &[], t0), "no tickets\n");
}

#[tokio::test]
async fn closed_tickets_are_listed_only_with_all() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let t0 = at(2026, 11, 10, 10, 0);
    let mut store = seeded(&site, t0);
    for cmd in [
        Command::Resolve {
            id: 1,
            by: "张工".into(),
            note: String::new(),
        },
        Command::Close {
            id: 1,
            by: "王经理".into(),
            note: String::new(),
        },
    ] {
        send(&mut store, &site, &cmd, t0 + HOUR, WAIT)
            .await
            .unwrap();
    }
    let open = store
        .tickets(&TicketFilter {
            open_only: true,
            ..TicketFilter::default()
        })
        .unwrap();
    assert_eq!(open.iter().map(|t| t.id).collect::<Vec<_>>(), vec![2]);
    assert_eq!(store.tickets(&TicketFilter::default()).unwrap().len(), 2);
}

#[tokio::test]
async fn show_prints_the_whole_trail() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let t0 = at(2026, 11, 10, 10, 0);
    let mut store = seeded(&site, t0);
    send(&mut store, &site, &ack(1, "张工"), t0 + 10 * MIN, WAIT)
        .await
        .unwrap();
    let t = store.ticket(1).unwrap().unwrap();
    let text = show_text(&site, &t, t0 + 30 * MIN);
    assert!(
        text.starts_with("ticket #1  fp-1 (消防主机)  alarm:fire_alarm  critical  acknowledged"),
        "{text}"
    );
    assert!(
        text.contains("deadline:     2026-11-10 12:00 (in 1h 30m)"),
        "{text}"
    );
    assert!(
        text.contains("acknowledged: 2026-11-10 10:10 by 张工: 在路上"),
        "{text}"
    );
    assert!(text.contains("2026-11-10 10:00  opened"), "{text}");
    assert!(text.contains("due 2026-11-10 12:00"), "{text}");
    assert!(
        text.contains("2026-11-10 10:10  acknowledged  张工"),
        "{text}"
    );
}

fn add(site_args: impl FnOnce(&mut AddArgs)) -> AddArgs {
    let mut a = AddArgs::default();
    site_args(&mut a);
    a
}

#[tokio::test]
async fn maintenance_windows_are_added_listed_and_removed_on_a_stopped_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let mut store = Store::open(&site.data_dir).unwrap();
    let now = at(2026, 11, 10, 10, 0);
    let existing = site.configured_windows();
    let a = add(|a| {
        a.device = Some("pump-1".into());
        a.from = Some("2026-12-01 20:00".into());
        a.to = Some("2026-12-01 22:00".into());
        a.note = "换轴承".into();
    });
    let w = window_from_args(&a, &site, &existing).unwrap();
    assert_eq!(w.id, "mw-1");
    let got = send(&mut store, &site, &Command::AddWindow(w.clone()), now, WAIT)
        .await
        .unwrap();
    assert_eq!(
        got,
        Delivery::Applied("maintenance window \"mw-1\" added".into())
    );
    let rows = window_rows(&site, &store.windows().unwrap());
    let listed: Vec<(&str, &str, &str)> = rows
        .iter()
        .map(|r| (r.window.id.as_str(), r.source, r.when.as_str()))
        .collect();
    assert_eq!(
        listed,
        vec![
            ("pumps-weekly", "config", "Tue 20:00-22:00"),
            ("mw-1", "added", "2026-12-01 20:00 → 2026-12-01 22:00"),
        ]
    );
    let text = crate::cli::maintenance::list_text(&rows);
    assert!(
        text.contains("class pump") && text.contains("换轴承"),
        "{text}"
    );

    let err = send(
        &mut store,
        &site,
        &Command::RemoveWindow {
            id: "pumps-weekly".into(),
        },
        now,
        WAIT,
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("configuration file"), "{err}");
    let rm = Command::RemoveWindow { id: "mw-1".into() };
    assert_eq!(
        send(&mut store, &site, &rm, now, WAIT).await.unwrap(),
        Delivery::Applied("maintenance window \"mw-1\" removed".into())
    );
    let err = send(&mut store, &site, &rm, now, WAIT).await.unwrap_err();
    assert!(
        err.to_string().contains("no maintenance window \"mw-1\""),
        "{err}"
    );
}

#[test]
fn an_overlapping_window_is_refused_naming_the_overlap() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let a = add(|a| {
        a.id = Some("late".into());
        a.class = Some("pump".into());
        a.weekly = Some("Tue 21:00-23:00".into());
    });
    let err = window_from_args(&a, &site, &site.configured_windows()).unwrap_err();
    assert!(
        err.contains("\"pumps-weekly\"") && err.contains("\"late\"") && err.contains("overlap"),
        "{err}"
    );
}

#[test]
fn an_inverted_unknown_or_malformed_window_is_refused_with_a_clear_message() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let existing = site.configured_windows();
    let inverted = add(|a| {
        a.device = Some("pump-1".into());
        a.from = Some("2026-12-01 22:00".into());
        a.to = Some("2026-12-01 20:00".into());
    });
    let err = window_from_args(&inverted, &site, &existing).unwrap_err();
    assert!(err.contains("swap from and to"), "{err}");
    let unknown = add(|a| {
        a.device = Some("pump-9".into());
        a.weekly = Some("Mon 20:00-21:00".into());
    });
    let err = window_from_args(&unknown, &site, &existing).unwrap_err();
    assert!(err.contains("no device \"pump-9\""), "{err}");
    let class = add(|a| {
        a.class = Some("pumps".into());
        a.weekly = Some("Mon 20:00-21:00".into());
    });
    let err = window_from_args(&class, &site, &existing).unwrap_err();
    assert!(
        err.contains("unknown class \"pumps\"") && err.contains("fire_alarm"),
        "{err}"
    );
    let bad = add(|a| {
        a.device = Some("pump-1".into());
        a.weekly = Some("Someday 20:00-21:00".into());
    });
    let err = window_from_args(&bad, &site, &existing).unwrap_err();
    assert!(err.contains("not a day of the week"), "{err}");
}

fn tr(
    device: &str,
    from: DeviceState,
    to: DeviceState,
    reason: Option<&str>,
    at_ms: UnixMs,
) -> Transition {
    Transition {
        device: device.into(),
        from,
        to,
        reason: reason.map(Into::into),
        at_ms,
    }
}

#[test]
fn status_shows_state_since_and_availability_against_the_target() {
    use DeviceState::{Down, Unknown, Up};
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let mut store = Store::open(&site.data_dir).unwrap();
    // The pump has been Up since 1 November 00:00, Down for the last 2 h.
    let month = at(2026, 11, 1, 0, 0);
    let now = at(2026, 11, 10, 10, 0);
    store
        .record_transition(&tr("pump-1", Unknown, Up, None, month))
        .unwrap();
    store
        .record_transition(&tr("pump-1", Up, Down, Some("comms"), now - 2 * HOUR))
        .unwrap();
    store.heartbeat(now - 1_000).unwrap();
    let _running = DataDirLock::try_acquire(&site.data_dir).unwrap().unwrap();
    let s = status(&site, &store, now).unwrap();
    assert!(s.running);
    assert_eq!(s.month_from_ms, month);
    let pump = &s.devices[0];
    assert_eq!(pump.device, "pump-1");
    assert_eq!((pump.state, pump.since_ms), (Down, Some(now - 2 * HOUR)));
    assert_eq!(pump.reason.as_deref(), Some("comms"));
    assert_eq!(pump.rolling, Some(22.0 / 24.0));
    let month_ms = (now - month) as f64;
    assert_eq!(pump.month, Some((month_ms - 2.0 * HOUR as f64) / month_ms));
    assert_eq!(pump.threshold_percent, 98.0);
    assert!(pump.below());
    // Nothing recorded for the fire panel yet.
    let fp = &s.devices[1];
    assert_eq!((fp.state, fp.since_ms, fp.rolling), (Unknown, None, None));
    assert_eq!(fp.threshold_percent, 99.0);

    let text = crate::cli::status::status_text(&site, &s);
    assert!(
        text.starts_with("gateway running (heartbeat 1s ago)\n"),
        "{text}"
    );
    assert!(
        text.contains("month to date from 2026-11-01 00:00 (Asia/Shanghai)"),
        "{text}"
    );
    let pump_line = text.lines().find(|l| l.starts_with("pump-1")).unwrap();
    assert!(
        pump_line.contains("2026-11-10 08:00") && pump_line.contains("91.67%"),
        "{text}"
    );
    assert!(
        pump_line.contains("99.12%") && pump_line.ends_with("BELOW"),
        "{text}"
    );
    assert!(
        text.lines().nth(2).unwrap().contains("REASON  24h  "),
        "{text}"
    );
}

#[test]
fn error_json_is_valid_json_whatever_the_message_holds() {
    // A quote broke the report's `{"error":"…"}` and a control character
    // the tickets' `{:?}`-quoted one (Rust escapes are not JSON escapes).
    for message in [
        r#"key "site" must be a string"#,
        "tab\there, bell \u{7} and escape \u{1b}",
        r"back\slash",
        "引号 “中文” and \"ascii\"",
    ] {
        let text = error_json(message);
        let v: serde_json::Value =
            serde_json::from_str(&text).unwrap_or_else(|e| panic!("{text:?} is not JSON: {e}"));
        assert_eq!(v["error"], message, "{text}");
    }
}

#[test]
fn status_of_a_stopped_gateway_knows_nothing_after_its_last_heartbeat() {
    use DeviceState::{Down, Unknown, Up};
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let mut store = Store::open(&site.data_dir).unwrap();
    // Up from 1 Nov 00:00, Down at 20:00; the gateway's last heartbeat is
    // 2 Nov 00:00 and it has not run since (no lock held).
    let month = at(2026, 11, 1, 0, 0);
    let last_heartbeat = at(2026, 11, 2, 0, 0);
    let now = at(2026, 11, 3, 0, 0);
    store
        .record_transition(&tr("pump-1", Unknown, Up, None, month))
        .unwrap();
    store
        .record_transition(&tr(
            "pump-1",
            Up,
            Down,
            Some("comms"),
            at(2026, 11, 1, 20, 0),
        ))
        .unwrap();
    store.heartbeat(last_heartbeat).unwrap();
    let s = status(&site, &store, now).unwrap();
    assert!(!s.running);
    let pump = &s.devices[0];
    // The last recorded state is still shown as such …
    assert_eq!(pump.state, Down);
    // … but the 24 h after the heartbeat are unknown, not Down.
    assert_eq!(pump.month, Some(20.0 / 24.0));
    assert_eq!(pump.month_coverage, Some(0.5));
    assert_eq!(pump.rolling, None, "nothing is known of the last 24 h");
    assert_eq!(pump.rolling_coverage, Some(0.0));

    // The same figures as the report of the month in progress.
    let input = crate::cli::report::input_from_store(&site, &store, None, (2026, 11), now).unwrap();
    let report = gateway_core::report::build(&input).unwrap();
    let r = report.devices.iter().find(|d| d.id == "pump-1").unwrap();
    assert_eq!(r.figures.availability, pump.month);
    assert_eq!(r.figures.coverage, pump.month_coverage);
}
