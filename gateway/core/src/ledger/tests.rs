//! Ledger tests with a fake clock (numbers): totals, figures, months in the
//! site's zone (with DST), the in-memory ledger, the threshold watch, the
//! worked example of `docs/availability.md`, and property tests.

use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use proptest::prelude::*;

use super::months::local_midnight;
use super::*;
use crate::state::{DeviceState, Interval, Transition, UnixMs};

use DeviceState::{Down, Maintenance, Unknown, Up};

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;
const DAY: i64 = 24 * HOUR;

fn shanghai() -> Tz {
    parse_tz("Asia/Shanghai").unwrap()
}

/// A local time of the zone, `"2026-11-03 14:00"`, as Unix ms.
fn local(tz: Tz, s: &str) -> UnixMs {
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
    tz.from_local_datetime(&naive)
        .single()
        .unwrap()
        .timestamp_millis()
}

fn iv(
    device: &str,
    state: DeviceState,
    reason: Option<&str>,
    from_ms: UnixMs,
    to_ms: UnixMs,
) -> Interval {
    Interval {
        device: device.to_owned(),
        state,
        reason: reason.map(str::to_owned),
        from_ms,
        to_ms,
    }
}

fn tr(device: &str, from: DeviceState, to: DeviceState, at_ms: UnixMs) -> Transition {
    Transition {
        device: device.to_owned(),
        from,
        to,
        reason: None,
        at_ms,
    }
}

/// Builds contiguous intervals from `(state, reason, until)` steps starting at `start`.
fn chain(
    device: &str,
    start: UnixMs,
    steps: &[(DeviceState, Option<&str>, UnixMs)],
) -> Vec<Interval> {
    let mut out = Vec::new();
    let mut at = start;
    for &(state, reason, until) in steps {
        out.push(iv(device, state, reason, at, until));
        at = until;
    }
    out
}

// ---------------------------------------------------------------- totals

#[test]
fn totals_clip_intervals_to_the_window_and_count_holes_as_unknown() {
    let ivs = [
        iv("p", Up, None, 0, 100),
        iv("p", Down, None, 100, 150),
        // hole 150..200
        iv("p", Maintenance, None, 200, 260),
        iv("p", Up, None, 260, 1_000),
    ];
    let t = totals(&ivs, 50, 300);
    assert_eq!(
        t,
        Totals {
            up_ms: 50 + 40,
            down_ms: 50,
            maintenance_ms: 60,
            unknown_ms: 50,
        }
    );
    assert_eq!(t.total_ms(), 250);
    assert_eq!(t.availability(), Some(90.0 / 140.0));
    assert_eq!(t.coverage(), Some(200.0 / 250.0));
}

#[test]
fn maintenance_and_unknown_are_excluded_from_availability() {
    let ivs = [
        iv("p", Up, None, 0, 90),
        iv("p", Maintenance, None, 90, 500),
        iv("p", Unknown, Some("gateway_down"), 500, 900),
        iv("p", Down, None, 900, 910),
    ];
    let t = totals(&ivs, 0, 1_000);
    assert_eq!(t.availability(), Some(0.9));
    assert_eq!(t.maintenance_ms, 410);
    assert_eq!(t.unknown_ms, 400 + 90);
}

#[test]
fn a_window_with_no_up_or_down_time_has_no_availability() {
    let ivs = [iv("p", Maintenance, None, 0, 10)];
    assert_eq!(totals(&ivs, 0, 20).availability(), None);
    assert_eq!(totals(&ivs, 0, 20).coverage(), Some(0.5));
    assert_eq!(totals(&[], 0, 20).unknown_ms, 20);
    assert_eq!(totals(&ivs, 20, 20), Totals::default());
    assert_eq!(totals(&ivs, 30, 20).coverage(), None);
}

#[test]
fn overlapping_intervals_are_never_counted_twice() {
    let ivs = [iv("p", Down, None, 50, 150), iv("p", Up, None, 0, 100)];
    let t = totals(&ivs, 0, 200);
    assert_eq!(t.up_ms, 100);
    assert_eq!(t.down_ms, 50);
    assert_eq!(t.total_ms(), 200);
}

#[test]
fn availability_needs_the_minimum_coverage_to_be_reported_for_tickets() {
    let ivs = [iv("p", Down, None, 0, 40)];
    assert_eq!(totals(&ivs, 0, 100).availability_if_covered(0.5), None);
    assert_eq!(totals(&ivs, 0, 80).availability_if_covered(0.5), Some(0.0));
}

// ---------------------------------------------------------------- figures

#[test]
fn incidents_count_down_intervals_starting_after_up_in_the_window() {
    let ivs = chain(
        "p",
        0,
        &[
            (Up, None, 100),
            (Down, Some("comms"), 110),
            (Down, Some("rule:fault"), 130), // same fault, another reason
            (Up, None, 200),
            (Down, Some("comms"), 210),
            (Unknown, Some("gateway_down"), 300),
            (Down, Some("comms"), 320), // still the same fault after the outage
            (Maintenance, Some("maintenance:w"), 400),
            (Down, None, 410), // down before and after maintenance: continues
            (Up, None, 500),
            (Unknown, Some("gateway_down"), 600),
            (Down, None, 650), // Up before the outage: a new fault
            (Up, None, 1_000),
        ],
    );
    let f = device_figures(&ivs, 0, 1_000);
    assert_eq!(f.incidents, 3);
    assert_eq!(f.downtime_ms, 30 + 10 + 20 + 10 + 50);
    assert_eq!(f.totals.up_ms, 100 + 70 + 90 + 350);
    assert_eq!(f.mttr_ms, Some(40));
    assert_eq!(f.mtbf_ms, Some(203));
    assert_eq!(f.maintenance_ms, 80);
}

#[test]
fn a_down_interval_running_in_is_an_incident_of_the_window_too() {
    // Before: an outage running in was downtime but no incident (0 incidents,
    // no MTTR for a window with downtime). Now a fault is an incident of
    // every window it has Down time in, with the time inside the window.
    let ivs = chain(
        "p",
        0,
        &[(Up, None, 50), (Down, None, 150), (Up, None, 300)],
    );
    let f = device_figures(&ivs, 100, 300);
    assert_eq!(f.incidents, 1);
    assert_eq!(f.downtime_ms, 50);
    assert_eq!(f.mtbf_ms, Some(150));
    assert_eq!(f.mttr_ms, Some(50));
    // The window before has the first part, and the fault as its incident.
    let before = device_figures(&ivs, 0, 100);
    assert_eq!(
        (before.incidents, before.downtime_ms, before.mttr_ms),
        (1, 50, Some(50))
    );
    // The same, clipped at the window's start as the store returns it.
    let clipped = [iv("p", Down, None, 100, 150), iv("p", Up, None, 150, 300)];
    assert_eq!(device_figures(&clipped, 100, 300), f);
    // A fault that begins exactly at the window's start after Up is counted.
    let at_start = chain(
        "p",
        0,
        &[(Up, None, 100), (Down, None, 150), (Up, None, 300)],
    );
    assert_eq!(device_figures(&at_start, 100, 300).incidents, 1);
    // One beginning at or after the window's end is not.
    assert_eq!(device_figures(&at_start, 0, 100).incidents, 0);
    // Nor is one that ended exactly at the window's start.
    assert_eq!(device_figures(&ivs, 150, 300).incidents, 0);
}

#[test]
fn a_fault_resumed_after_a_gap_at_the_window_start_is_one_incident_of_each_window() {
    // Down, then a gateway outage (or maintenance) across the boundary at
    // 100, then Down again: one fault, an incident of both windows.
    for gap in [Unknown, Maintenance] {
        let ivs = chain(
            "p",
            0,
            &[
                (Up, None, 40),
                (Down, None, 80),
                (gap, None, 120),
                (Down, None, 150),
                (Up, None, 300),
            ],
        );
        let before = device_figures(&ivs, 0, 100);
        let this = device_figures(&ivs, 100, 300);
        assert_eq!((before.incidents, before.mttr_ms), (1, Some(40)), "{gap:?}");
        assert_eq!((this.incidents, this.mttr_ms), (1, Some(30)), "{gap:?}");
        // As the report's store input has it: the last Up or Down interval
        // before the window, then what overlaps it, clipped.
        let stored = [
            iv("p", Down, None, 40, 80),
            iv("p", gap, None, 99, 120),
            iv("p", Down, None, 120, 150),
            iv("p", Up, None, 150, 300),
        ];
        assert_eq!(device_figures(&stored, 100, 300).incidents, 1);
        // The whole: still one fault.
        assert_eq!(device_figures(&ivs, 0, 300).incidents, 1);
        // A gap that ends in Up: no downtime after the boundary, no incident.
        let repaired = chain(
            "p",
            0,
            &[
                (Up, None, 40),
                (Down, None, 80),
                (gap, None, 120),
                (Up, None, 300),
            ],
        );
        let this = device_figures(&repaired, 100, 300);
        assert_eq!(
            (this.downtime_ms, this.incidents, this.mttr_ms),
            (0, 0, None)
        );
    }
}

#[test]
fn a_fault_over_three_windows_is_an_incident_of_each() {
    let ivs = chain(
        "p",
        0,
        &[(Up, None, 50), (Down, None, 250), (Up, None, 400)],
    );
    let parts: Vec<(u32, Option<i64>)> = [(0, 100), (100, 200), (200, 300)]
        .iter()
        .map(|&(a, b)| {
            let f = device_figures(&ivs, a, b);
            (f.incidents, f.mttr_ms)
        })
        .collect();
    assert_eq!(parts, [(1, Some(50)), (1, Some(100)), (1, Some(50))]);
}

#[test]
fn mtbf_and_mttr_are_rounded_to_the_nearest_millisecond() {
    let ivs = chain(
        "p",
        0,
        &[
            (Up, None, 10),
            (Down, None, 11),
            (Up, None, 20),
            (Down, None, 22),
            (Up, None, 30),
            (Down, None, 32),
        ],
    );
    let f = device_figures(&ivs, 0, 32);
    assert_eq!(f.incidents, 3);
    assert_eq!(f.mttr_ms, Some(2)); // 5 / 3 = 1.67
    assert_eq!(f.mtbf_ms, Some(9)); // 27 / 3 = 9
}

#[test]
fn intact_rate_averages_the_share_of_devices_up_over_time() {
    let a = [iv("a", Up, None, 0, 100)];
    let b = chain("b", 0, &[(Up, None, 50), (Down, None, 100)]);
    let c = [iv("c", Unknown, None, 0, 100)];
    // 0..50: 2 of 2 up; 50..100: 1 of 2 up.
    assert_eq!(intact_rate(&[&a, &b, &c], 0, 100), Some(0.75));
    // Instants with no device Up or Down are left out.
    let d = chain("d", 0, &[(Down, None, 10), (Maintenance, None, 100)]);
    assert_eq!(intact_rate(&[&d], 0, 100), Some(0.0));
    assert_eq!(intact_rate(&[&c], 0, 100), None);
    assert_eq!(intact_rate(&[], 0, 100), None);
}

#[test]
fn class_figures_pool_the_devices() {
    let a = chain("a", 0, &[(Up, None, 90), (Down, None, 100)]);
    let b = chain("b", 0, &[(Up, None, 70), (Down, None, 100)]);
    let f = class_figures(&[&a, &b], 0, 100);
    assert_eq!(f.totals.up_ms, 160);
    assert_eq!(f.downtime_ms, 40);
    assert_eq!(f.incidents, 2);
    assert_eq!(f.availability, Some(0.8));
    assert_eq!(f.mttr_ms, Some(20));
}

// ---------------------------------------------------------------- months

#[test]
fn months_run_from_local_midnight_in_the_site_zone() {
    let tz = shanghai();
    let (from, to) = month_window(tz, 2026, 11).unwrap();
    assert_eq!(from, 1_793_462_400_000); // 2026-10-31T16:00:00Z
    assert_eq!(to - from, 30 * DAY);
    assert_eq!(month_window(tz, 2026, 12).unwrap().0, to);
    assert_eq!(month_of(tz, from), (2026, 11));
    assert_eq!(month_of(tz, from - 1), (2026, 10));
    assert_eq!(month_of(tz, to - 1), (2026, 11));
    assert_eq!(month_of(tz, to), (2026, 12));
    let (dec, jan) = month_window(tz, 2026, 12).unwrap();
    assert_eq!(jan - dec, 31 * DAY);
    assert_eq!(month_window(tz, 2027, 1).unwrap().0, jan);
}

#[test]
fn the_retention_cutoff_is_the_first_of_the_month_keep_months_before_this_one() {
    let tz = shanghai();
    let now = local(tz, "2026-11-27 10:00");
    assert_eq!(
        retention_cutoff(tz, now, 24).unwrap(),
        local(tz, "2024-11-01 00:00")
    );
    assert_eq!(
        retention_cutoff(tz, now, 2).unwrap(),
        local(tz, "2026-09-01 00:00")
    );
    assert_eq!(
        retention_cutoff(tz, now, 11).unwrap(),
        local(tz, "2025-12-01 00:00")
    );
    // Across a year boundary, and at the first instant of a month.
    let jan = local(tz, "2027-01-01 00:00");
    assert_eq!(
        retention_cutoff(tz, jan, 2).unwrap(),
        local(tz, "2026-11-01 00:00")
    );
    assert_eq!(
        retention_cutoff(tz, jan - 1, 2).unwrap(),
        local(tz, "2026-10-01 00:00")
    );
    // In the site's zone, not UTC: 2026-12-01 03:00 in Shanghai is still
    // 30 November in UTC.
    let berlin: Tz = parse_tz("Europe/Berlin").unwrap();
    let early = local(tz, "2026-12-01 03:00");
    assert_eq!(
        retention_cutoff(tz, early, 2).unwrap(),
        local(tz, "2026-10-01 00:00")
    );
    assert_eq!(
        retention_cutoff(berlin, early, 2).unwrap(),
        local(berlin, "2026-09-01 00:00")
    );
}

#[test]
fn a_month_with_a_dst_change_has_an_hour_more_or_less() {
    let berlin = parse_tz("Europe/Berlin").unwrap();
    let (from, to) = month_window(berlin, 2026, 3).unwrap();
    assert_eq!(to - from, 31 * DAY - HOUR);
    assert_eq!(from, local(berlin, "2026-03-01 00:00"));
    let (from, to) = month_window(berlin, 2026, 10).unwrap();
    assert_eq!(to - from, 31 * DAY + HOUR);
    let (from, to) = month_window(berlin, 2026, 11).unwrap();
    assert_eq!(to - from, 30 * DAY);
    // Shanghai keeps no daylight saving.
    let (from, to) = month_window(shanghai(), 2026, 3).unwrap();
    assert_eq!(to - from, 31 * DAY);
}

#[test]
fn a_day_whose_midnight_is_skipped_starts_at_the_first_local_instant() {
    // Brazil moved clocks from 00:00 to 01:00 on 4 November 2018.
    let sp = parse_tz("America/Sao_Paulo").unwrap();
    let day = chrono::NaiveDate::from_ymd_opt(2018, 11, 4).unwrap();
    let start = local_midnight(sp, day).unwrap();
    assert_eq!(start, local(sp, "2018-11-04 01:00"));
    // 03:00 UTC: the last instant of 3 November is one millisecond before.
    assert_eq!(start, 1_541_300_400_000);
    assert_eq!(month_of(sp, start - 1), (2018, 11));
}

#[test]
fn month_to_date_runs_from_the_first_to_now() {
    let tz = shanghai();
    let now = local(tz, "2026-11-15 12:34");
    assert_eq!(
        month_to_date(tz, now),
        (month_window(tz, 2026, 11).unwrap().0, now)
    );
    let first = local(tz, "2026-12-01 00:00");
    assert_eq!(month_to_date(tz, first), (first, first));
}

#[test]
fn bad_months_and_zones_are_refused_with_a_clear_message() {
    let err = month_window(shanghai(), 2026, 13).unwrap_err();
    assert_eq!(
        err,
        LedgerError::NoSuchMonth {
            year: 2026,
            month: 13
        }
    );
    assert!(err.to_string().contains("2026-13"), "{err}");
    assert!(month_window(shanghai(), 2026, 0).is_err());
    let err = parse_tz("Asia/Shanghia").unwrap_err();
    assert!(err.to_string().contains("Asia/Shanghia"), "{err}");
    assert_eq!(parse_tz(" UTC ").unwrap(), chrono_tz::UTC);
}

#[test]
fn a_month_that_starts_while_a_device_is_down_is_split_at_local_midnight() {
    let tz = shanghai();
    let ivs = chain(
        "fp",
        local(tz, "2026-10-01 00:00"),
        &[
            (Up, None, local(tz, "2026-10-31 22:00")),
            (Down, Some("comms"), local(tz, "2026-11-01 08:00")),
            (Up, None, local(tz, "2026-12-01 00:00")),
        ],
    );
    let (oct_from, oct_to) = month_window(tz, 2026, 10).unwrap();
    let (nov_from, nov_to) = month_window(tz, 2026, 11).unwrap();
    let oct = device_figures(&ivs, oct_from, oct_to);
    let nov = device_figures(&ivs, nov_from, nov_to);
    assert_eq!(oct.downtime_ms, 2 * HOUR);
    assert_eq!(nov.downtime_ms, 8 * HOUR);
    // One fault, an incident of each month, each with its own part.
    assert_eq!((oct.incidents, nov.incidents), (1, 1));
    assert_eq!((oct.mttr_ms, nov.mttr_ms), (Some(2 * HOUR), Some(8 * HOUR)));
    assert_eq!(oct.totals.total_ms(), 31 * DAY);
    assert_eq!(nov.totals.total_ms(), 30 * DAY);
}

// ---------------------------------------------------------------- Ledger

#[test]
fn the_ledger_closes_the_open_interval_where_the_next_opens() {
    let mut l = Ledger::new(std::time::Duration::from_secs(3600));
    assert_eq!(l.apply(&tr("p", Unknown, Unknown, 0)), None);
    assert_eq!(
        l.apply(&tr("p", Unknown, Up, 100)),
        Some(iv("p", Unknown, None, 0, 100))
    );
    let mut down = tr("p", Up, Down, 400);
    down.reason = Some("comms".into());
    assert_eq!(l.apply(&down), Some(iv("p", Up, None, 100, 400)));
    assert_eq!(l.current("p"), Some((Down, Some("comms".into()), 400)));
    let t = l.totals("p", 0, 1_000);
    assert_eq!(
        t,
        Totals {
            up_ms: 300,
            down_ms: 600,
            maintenance_ms: 0,
            unknown_ms: 100,
        }
    );
    assert_eq!(l.figures("p", 0, 1_000).incidents, 1);
    assert_eq!(l.current("q"), None);
    assert_eq!(l.totals("q", 0, 10).unknown_ms, 10);
    assert_eq!(l.devices().collect::<Vec<_>>(), ["p"]);
}

#[test]
fn a_transition_at_the_open_intervals_start_records_no_empty_interval() {
    let mut l = Ledger::new(std::time::Duration::from_secs(3600));
    l.apply(&tr("p", Unknown, Unknown, 100));
    assert_eq!(l.apply(&tr("p", Unknown, Up, 100)), None);
    // Dated before the open interval: taken to happen at its start.
    assert_eq!(l.apply(&tr("p", Up, Down, 50)), None);
    assert_eq!(l.current("p"), Some((Down, None, 100)));
    assert_eq!(l.intervals("p", 0, 200), [iv("p", Down, None, 100, 200)]);
}

#[test]
fn the_ledger_keeps_at_least_the_requested_history() {
    let mut l = Ledger::new(std::time::Duration::from_millis(1_000));
    let mut state = Up;
    for i in 0..100 {
        state = if state == Up { Down } else { Up };
        l.apply(&tr("p", Unknown, state, i * 100));
    }
    // Newest transition at 9_900: everything after 8_900 is still there.
    let t = l.totals("p", 8_900, 9_900);
    assert_eq!(t.unknown_ms, 0);
    assert_eq!(t.up_ms + t.down_ms, 1_000);
    assert!(l.intervals("p", 0, 10_000).len() <= 12);
    l.prune(9_500);
    assert_eq!(l.totals("p", 8_900, 9_900).unknown_ms, 600);
}

#[test]
fn loading_stored_history_then_applying_continues_it() {
    let mut l = Ledger::new(std::time::Duration::from_secs(86_400));
    let stored = vec![
        iv("p", Up, None, 200, 300),
        iv("p", Unknown, Some("startup"), 0, 200),
        // Overlaps the open interval: trimmed.
        iv("p", Down, None, 300, 450),
    ];
    l.load("p", stored, Some((Up, None, 400)));
    assert_eq!(l.current("p"), Some((Up, None, 400)));
    assert_eq!(
        l.intervals("p", 0, 500),
        [
            iv("p", Unknown, Some("startup"), 0, 200),
            iv("p", Up, None, 200, 300),
            iv("p", Down, None, 300, 400),
            iv("p", Up, None, 400, 500),
        ]
    );
    assert_eq!(
        l.apply(&tr("p", Up, Down, 600)),
        Some(iv("p", Up, None, 400, 600))
    );
    let t = l.totals("p", 0, 700);
    assert_eq!((t.unknown_ms, t.up_ms, t.down_ms), (200, 300, 200));
    assert!(l.remove("p"));
    assert_eq!(l.current("p"), None);
}

// ---------------------------------------------------------------- ThresholdWatch

#[test]
fn the_threshold_watch_reports_each_crossing_once() {
    let mut w = ThresholdWatch::new();
    assert_eq!(w.check("p", Some(0.99), 98.0), None);
    assert_eq!(
        w.check("p", Some(0.975), 98.0),
        Some(Crossing::Below {
            availability: 0.975,
            threshold: 98.0
        })
    );
    assert!(w.is_below("p"));
    assert_eq!(w.check("p", Some(0.96), 98.0), None);
    assert_eq!(w.check("p", None, 98.0), None);
    assert!(w.is_below("p"));
    assert_eq!(
        w.check("p", Some(0.98), 98.0),
        Some(Crossing::Recovered {
            availability: 0.98,
            threshold: 98.0
        })
    );
    assert_eq!(w.check("p", Some(0.98), 98.0), None);
    assert_eq!(w.check("q", None, 98.0), None);
    assert!(!w.is_below("q"));
}

#[test]
fn exactly_at_the_threshold_is_not_below() {
    let mut w = ThresholdWatch::new();
    assert_eq!(w.check("p", Some(57.0 / 100.0), 57.0), None);
    assert_eq!(w.check("p", Some(49.0 / 50.0), 98.0), None);
}

#[test]
fn a_device_marked_below_after_a_restart_reports_no_new_crossing() {
    let mut w = ThresholdWatch::new();
    w.set_below("p", true);
    assert_eq!(w.check("p", Some(0.9), 98.0), None);
    assert!(matches!(
        w.check("p", Some(0.99), 98.0),
        Some(Crossing::Recovered { .. })
    ));
    w.set_below("p", true);
    w.set_below("p", false);
    assert!(matches!(
        w.check("p", Some(0.9), 98.0),
        Some(Crossing::Below { .. })
    ));
}

#[test]
fn with_hysteresis_a_device_recovers_only_above_the_margin() {
    let mut w = ThresholdWatch::with_hysteresis(0.5);
    assert!(matches!(
        w.check("p", Some(0.979), 98.0),
        Some(Crossing::Below { .. })
    ));
    assert_eq!(w.check("p", Some(0.982), 98.0), None);
    assert!(matches!(
        w.check("p", Some(0.985), 98.0),
        Some(Crossing::Recovered { .. })
    ));
    w.check("p", Some(0.5), 98.0);
    w.forget("p");
    assert!(!w.is_below("p"));
}

// ---------------------------------------------------------------- worked example

/// The worked example of `docs/availability.md`, number for number.
#[test]
fn the_worked_example_of_the_availability_doc_holds() {
    let tz = shanghai();
    let t = |s: &str| local(tz, s);
    let (from, to) = month_window(tz, 2026, 11).unwrap();
    assert_eq!((from, to), (t("2026-11-01 00:00"), t("2026-12-01 00:00")));
    assert_eq!(to - from, 720 * HOUR);

    let pump1 = chain(
        "pump-1",
        t("2026-10-01 00:00"),
        &[
            (Up, None, t("2026-11-03 14:00")),
            (Down, Some("rule:fault"), t("2026-11-03 17:00")),
            (Up, None, t("2026-11-10 20:00")),
            (
                Maintenance,
                Some("maintenance:pump-monthly"),
                t("2026-11-10 22:00"),
            ),
            (Up, None, t("2026-11-15 02:00")),
            (Unknown, Some("gateway_down"), t("2026-11-15 06:00")),
            (Up, None, t("2026-11-20 09:30")),
            (Down, Some("comms"), t("2026-11-20 10:00")),
            (Up, None, t("2026-12-01 00:00")),
        ],
    );
    let pump2 = chain(
        "pump-2",
        t("2026-10-01 00:00"),
        &[
            (Up, None, t("2026-11-15 01:00")),
            (Down, Some("rule:fault"), t("2026-11-15 02:00")),
            (Unknown, Some("gateway_down"), t("2026-11-15 06:00")),
            (Down, Some("rule:fault"), t("2026-11-15 07:00")),
            (Up, None, t("2026-12-01 00:00")),
        ],
    );
    let panel = chain(
        "fire-panel-1",
        t("2026-10-01 00:00"),
        &[
            (Up, None, t("2026-10-31 22:00")),
            (Down, Some("comms"), t("2026-11-01 08:00")),
            (Up, None, t("2026-11-15 02:00")),
            (Unknown, Some("gateway_down"), t("2026-11-15 06:00")),
            (Up, None, t("2026-11-25 10:00")),
            (Down, Some("rule:fault"), t("2026-11-25 10:20")),
            (Up, None, t("2026-12-01 00:00")),
        ],
    );

    // pump-1
    let f = device_figures(&pump1, from, to);
    assert_eq!(
        f.totals,
        Totals {
            up_ms: 2_557_800_000,
            down_ms: 12_600_000,
            maintenance_ms: 7_200_000,
            unknown_ms: 14_400_000,
        }
    );
    assert_eq!(f.availability, Some(203.0 / 204.0));
    assert_eq!(format!("{:.2}", f.availability.unwrap() * 100.0), "99.51");
    assert_eq!(f.incidents, 2);
    assert_eq!(f.mtbf_ms, Some(355 * HOUR + 15 * MIN));
    assert_eq!(f.mttr_ms, Some(HOUR + 45 * MIN));
    assert_eq!(f.coverage, Some(716.0 / 720.0));
    assert_eq!(format!("{:.2}", f.coverage.unwrap() * 100.0), "99.44");
    // Not up ÷ window, which would count maintenance and the outage as down.
    let naive = f.totals.up_ms as f64 / (to - from) as f64;
    assert_eq!(format!("{:.2}", naive * 100.0), "98.68");

    // pump-2: one fault, across the gateway outage
    let f = device_figures(&pump2, from, to);
    assert_eq!(
        f.totals,
        Totals {
            up_ms: 2_570_400_000,
            down_ms: 7_200_000,
            maintenance_ms: 0,
            unknown_ms: 14_400_000,
        }
    );
    assert_eq!(f.availability, Some(357.0 / 358.0));
    assert_eq!(format!("{:.2}", f.availability.unwrap() * 100.0), "99.72");
    assert_eq!(f.incidents, 1);
    assert_eq!(f.mtbf_ms, Some(714 * HOUR));
    assert_eq!(f.mttr_ms, Some(2 * HOUR));

    // fire-panel-1: 8 h of a fault that began in October, and one new one
    let f = device_figures(&panel, from, to);
    assert_eq!(
        f.totals,
        Totals {
            up_ms: 2_547_600_000,
            down_ms: 30_000_000,
            maintenance_ms: 0,
            unknown_ms: 14_400_000,
        }
    );
    assert_eq!(f.availability, Some(2123.0 / 2148.0));
    assert_eq!(format!("{:.2}", f.availability.unwrap() * 100.0), "98.84");
    // The October outage's 8 h and the new 20 min fault: two incidents.
    assert_eq!(f.incidents, 2);
    assert_eq!(f.mtbf_ms, Some(353 * HOUR + 50 * MIN));
    assert_eq!(f.mttr_ms, Some(4 * HOUR + 10 * MIN));
    let (oct_from, oct_to) = month_window(tz, 2026, 10).unwrap();
    let oct = device_figures(&panel, oct_from, oct_to);
    assert_eq!((oct.downtime_ms, oct.incidents), (2 * HOUR, 1));
    assert_eq!(oct.mttr_ms, Some(2 * HOUR));
    assert_eq!(oct.totals.up_ms, 742 * HOUR);

    // Against the targets: pumps 98 %, fire alarm 99 %.
    let mut watch = ThresholdWatch::new();
    assert_eq!(
        watch.check(
            "pump-1",
            device_figures(&pump1, from, to).availability,
            98.0
        ),
        None
    );
    assert_eq!(
        watch.check(
            "pump-2",
            device_figures(&pump2, from, to).availability,
            98.0
        ),
        None
    );
    assert!(matches!(
        watch.check(
            "fire-panel-1",
            device_figures(&panel, from, to).availability,
            99.0
        ),
        Some(Crossing::Below { .. })
    ));

    // The pump class: intact rate and pooled figures.
    let intact = intact_rate(&[&pump1, &pump2], from, to).unwrap();
    assert!((intact - 713.25 / 716.0).abs() < 1e-12, "{intact}");
    assert_eq!(format!("{:.2}", intact * 100.0), "99.62");
    let class = class_figures(&[&pump1, &pump2], from, to);
    assert_eq!(class.availability, Some(1424.5 / 1430.0));
    assert_eq!(
        format!("{:.3}", class.availability.unwrap() * 100.0),
        "99.615"
    );
    assert_eq!(format!("{:.3}", intact * 100.0), "99.616");
    assert_eq!(class.incidents, 3);
    assert_eq!(class.downtime_ms, 5 * HOUR + 30 * MIN);
    assert_eq!(class.mttr_ms, Some(HOUR + 50 * MIN));

    // The in-memory ledger, fed the same history, gives the same totals.
    let mut ledger = Ledger::new(std::time::Duration::from_secs(62 * 86_400));
    let mut prev = Unknown;
    for i in &pump1 {
        ledger.apply(&Transition {
            device: "pump-1".into(),
            from: prev,
            to: i.state,
            reason: i.reason.clone(),
            at_ms: i.from_ms,
        });
        prev = i.state;
    }
    assert_eq!(ledger.totals("pump-1", from, to), totals(&pump1, from, to));
    assert_eq!(
        ledger.figures("pump-1", from, to),
        device_figures(&pump1, from, to)
    );
}

/// The month-boundary example of `docs/availability.md`, number for number.
#[test]
fn the_month_boundary_example_of_the_availability_doc_holds() {
    let tz = shanghai();
    let t = |s: &str| local(tz, s);
    let s = 1_000;
    let off = (t("2026-10-31 23:30"), t("2026-11-01 00:10"));
    let pump3 = chain(
        "pump-3",
        t("2026-10-01 00:00"),
        &[
            (Up, None, t("2026-10-31 23:00")),
            (Down, Some("rule:fault"), off.0),
            (Unknown, Some("gateway_down"), off.1),
            (Down, Some("rule:fault"), t("2026-11-01 01:09") + 57 * s),
            (Up, None, t("2026-12-01 00:00")),
        ],
    );
    let pump4 = chain(
        "pump-4",
        t("2026-10-01 00:00"),
        &[
            (Up, None, t("2026-10-31 23:20")),
            (Down, Some("rule:fault"), off.0),
            (Unknown, Some("gateway_down"), off.1),
            (Up, None, t("2026-12-01 00:00")),
        ],
    );
    let (oct_from, oct_to) = month_window(tz, 2026, 10).unwrap();
    let (nov_from, nov_to) = month_window(tz, 2026, 11).unwrap();
    let pct = |f: &DeviceFigures| format!("{:.2}", f.availability.unwrap() * 100.0);

    let oct = device_figures(&pump3, oct_from, oct_to);
    assert_eq!(
        (oct.downtime_ms, oct.totals.unknown_ms, oct.incidents),
        (30 * MIN, 30 * MIN, 1)
    );
    assert_eq!(
        (oct.mttr_ms, oct.mtbf_ms),
        (Some(30 * MIN), Some(743 * HOUR))
    );
    assert_eq!(oct.availability, Some(743.0 / 743.5));
    assert_eq!(pct(&oct), "99.93");
    let nov = device_figures(&pump3, nov_from, nov_to);
    assert_eq!(nov.downtime_ms, 3_597_000);
    assert_eq!(nov.downtime_ms, 59 * MIN + 57 * s);
    assert_eq!((nov.totals.unknown_ms, nov.incidents), (10 * MIN, 1));
    assert_eq!(nov.mttr_ms, Some(59 * MIN + 57 * s));
    assert_eq!(nov.totals.up_ms, 2_587_803_000);
    assert_eq!(nov.mtbf_ms, Some(718 * HOUR + 50 * MIN + 3 * s));
    assert_eq!(nov.availability, Some(2_587_803_000.0 / 2_591_400_000.0));
    assert_eq!(pct(&nov), "99.86");

    let oct = device_figures(&pump4, oct_from, oct_to);
    assert_eq!(
        (oct.downtime_ms, oct.totals.unknown_ms, oct.incidents),
        (10 * MIN, 30 * MIN, 1)
    );
    assert_eq!(
        (oct.mttr_ms, oct.mtbf_ms),
        (Some(10 * MIN), Some(743 * HOUR + 20 * MIN))
    );
    assert_eq!(pct(&oct), "99.98");
    let nov = device_figures(&pump4, nov_from, nov_to);
    assert_eq!(
        (nov.downtime_ms, nov.totals.unknown_ms, nov.incidents),
        (0, 10 * MIN, 0)
    );
    assert_eq!((nov.mttr_ms, nov.mtbf_ms), (None, None));
    assert_eq!(nov.availability, Some(1.0));
}

/// The degraded-polling example of `docs/availability.md`: the figures of
/// the stored intervals of a 70 s comms outage.
#[test]
fn the_degraded_polling_example_of_the_availability_doc_holds() {
    let tz = shanghai();
    let t = |s: &str| local(tz, s);
    let s = 1_000;
    let real = (
        t("2026-11-20 10:00") + 500,
        t("2026-11-20 10:01") + 10 * s + 500,
    );
    assert_eq!(real.1 - real.0, 70 * s);
    let (poll, resolution) = (2 * s, 5 * s);
    let down = (
        t("2026-11-20 10:00") + 2 * s,
        t("2026-11-20 10:01") + 14 * s,
    );
    // Dated at the first failed poll; the return seen within the resolution.
    assert!(down.0 >= real.0 && down.0 - real.0 <= poll);
    assert!(down.1 >= real.1 && down.1 - real.1 <= poll.max(resolution));
    let (nov_from, nov_to) = month_window(tz, 2026, 11).unwrap();
    let ivs = chain(
        "ts-1",
        nov_from,
        &[
            (Up, None, down.0),
            (Down, Some("comms"), down.1),
            (Up, None, nov_to),
        ],
    );
    let (day_from, day_to) = (t("2026-11-20 00:00"), t("2026-11-21 00:00"));
    let day = device_figures(&ivs, day_from, day_to);
    let month = device_figures(&ivs, nov_from, nov_to);
    for f in [&day, &month] {
        assert_eq!(f.downtime_ms, 72 * s);
        assert_eq!((f.incidents, f.mttr_ms), (1, Some(72 * s)));
    }
    assert_eq!(day.availability, Some((86_400.0 - 72.0) / 86_400.0));
    assert_eq!(format!("{:.2}", day.availability.unwrap() * 100.0), "99.92");
    assert_eq!(month.availability, Some((2_592_000.0 - 72.0) / 2_592_000.0));
    assert_eq!(
        format!("{:.4}", month.availability.unwrap() * 100.0),
        "99.9972"
    );
    // The same silence stored as 112 s, as with the old 60 s probe ceiling.
    let old = chain(
        "ts-1",
        nov_from,
        &[
            (Up, None, down.0),
            (Down, Some("comms"), down.0 + 112 * s),
            (Up, None, nov_to),
        ],
    );
    let f = device_figures(&old, day_from, day_to);
    assert_eq!(format!("{:.2}", f.availability.unwrap() * 100.0), "99.87");
    let f = device_figures(&old, nov_from, nov_to);
    assert_eq!(format!("{:.4}", f.availability.unwrap() * 100.0), "99.9957");
}

// ---------------------------------------------------------------- properties

fn any_state() -> impl Strategy<Value = DeviceState> {
    prop_oneof![Just(Up), Just(Down), Just(Maintenance), Just(Unknown)]
}

/// Arbitrary intervals of one device: gaps and overlaps allowed.
fn any_intervals() -> impl Strategy<Value = Vec<Interval>> {
    prop::collection::vec((any_state(), -1_000_i64..10_000, 0_i64..3_000), 0..20).prop_map(|v| {
        v.into_iter()
            .map(|(s, from, len)| iv("d", s, None, from, from + len))
            .collect()
    })
}

/// A contiguous history from `(state, length)` steps starting at 0.
fn any_history() -> impl Strategy<Value = Vec<Interval>> {
    prop::collection::vec((any_state(), 1_i64..2_000), 1..30).prop_map(|v| {
        let mut at = 0;
        v.into_iter()
            .map(|(s, len)| {
                at += len;
                iv("d", s, None, at - len, at)
            })
            .collect()
    })
}

proptest! {
    #[test]
    fn availability_and_coverage_always_lie_between_0_and_1(
        ivs in any_intervals(), from in -2_000_i64..12_000, len in 0_i64..15_000,
    ) {
        let f = device_figures(&ivs, from, from + len);
        for x in [f.availability, f.coverage].into_iter().flatten() {
            prop_assert!((0.0..=1.0).contains(&x), "{x}");
        }
        if let Some(x) = intact_rate(&[&ivs, &ivs[ivs.len() / 2..]], from, from + len) {
            prop_assert!((0.0..=1.0).contains(&x), "{x}");
        }
    }

    #[test]
    fn totals_add_up_to_the_window_length(
        ivs in any_intervals(), from in -2_000_i64..12_000, len in 0_i64..15_000,
    ) {
        let t = totals(&ivs, from, from + len);
        prop_assert_eq!(t.total_ms(), len);
        prop_assert!(t.up_ms >= 0 && t.down_ms >= 0 && t.maintenance_ms >= 0 && t.unknown_ms >= 0);
    }

    #[test]
    fn splitting_a_window_anywhere_splits_its_totals_exactly(
        ivs in any_history(), from in 0_i64..5_000, a in 0_i64..10_000, b in 0_i64..10_000,
    ) {
        let (mid, to) = (from + a.min(b), from + a.max(b));
        let whole = totals(&ivs, from, to);
        prop_assert_eq!(totals(&ivs, from, mid) + totals(&ivs, mid, to), whole);
        // A fault across the split is an incident of both halves, any other
        // of one: faults never overlap, so at most one is counted twice.
        let (h1, h2, w) = (
            device_figures(&ivs, from, mid),
            device_figures(&ivs, mid, to),
            device_figures(&ivs, from, to),
        );
        prop_assert!(h1.incidents + h2.incidents >= w.incidents);
        prop_assert!(h1.incidents + h2.incidents <= w.incidents + 1);
        // A window with downtime has an incident; one without has none.
        for f in [h1, h2, w] {
            prop_assert_eq!(f.downtime_ms > 0, f.incidents > 0);
        }
    }

    #[test]
    fn the_ledger_never_overlaps_and_covers_the_whole_period(
        steps in prop::collection::vec((any_state(), -50_i64..1_000), 1..60),
        end_extra in 0_i64..1_000,
    ) {
        let mut l = Ledger::new(std::time::Duration::from_secs(86_400));
        let mut closed: Vec<Interval> = Vec::new();
        let mut at = 0_i64;
        let mut first = None;
        for (state, dt) in steps {
            at += dt; // may go backwards: the ledger must cope
            if let Some(c) = l.apply(&tr("d", Unknown, state, at)) {
                closed.push(c);
            }
            first.get_or_insert(at);
        }
        let (open_state, _, open_from) = l.current("d").unwrap();
        let start = closed.first().map_or(open_from, |c| c.from_ms);
        prop_assert_eq!(Some(start), first);
        let mut cursor = start;
        for c in &closed {
            prop_assert_eq!(c.from_ms, cursor, "hole or overlap at {}", cursor);
            prop_assert!(c.to_ms > c.from_ms, "empty interval {:?}", c);
            cursor = c.to_ms;
        }
        prop_assert_eq!(open_from, cursor);
        let end = open_from + end_extra;
        let t = l.totals("d", start, end);
        prop_assert_eq!(t.total_ms(), end - start);
        prop_assert_eq!(l.intervals("d", start, end), {
            let mut all = closed.clone();
            if end > open_from {
                all.push(iv("d", open_state, None, open_from, end));
            }
            all
        });
    }

    #[test]
    fn months_tile_time_in_any_zone(
        zone in prop::sample::select(vec!["Asia/Shanghai", "Europe/Berlin", "America/New_York", "Australia/Lord_Howe", "America/Sao_Paulo", "UTC"]),
        year in 1990_i32..2040, month in 1_u32..=12,
    ) {
        let tz = parse_tz(zone).unwrap();
        let (from, to) = month_window(tz, year, month).unwrap();
        let (ny, nm) = if month == 12 { (year + 1, 1) } else { (year, month + 1) };
        prop_assert_eq!(month_window(tz, ny, nm).unwrap().0, to);
        prop_assert_eq!(month_of(tz, from), (year, month));
        prop_assert_eq!(month_of(tz, to - 1), (year, month));
        prop_assert_eq!(month_of(tz, to), (ny, nm));
        let days = chrono::NaiveDate::from_ymd_opt(ny, nm, 1).unwrap()
            .signed_duration_since(chrono::NaiveDate::from_ymd_opt(year, month, 1).unwrap())
            .num_days();
        prop_assert!((to - from - days * DAY).abs() <= HOUR, "{} h", (to - from) / HOUR);
        prop_assert_eq!(month_to_date(tz, to - 1).0, from);
    }

    #[test]
    fn a_down_interval_across_a_month_start_is_split_at_local_midnight(
        zone in prop::sample::select(vec!["Asia/Shanghai", "Europe/Berlin", "America/New_York"]),
        year in 2000_i32..2040, month in 1_u32..=12,
        before in 1_i64..(5 * DAY), after in 1_i64..(5 * DAY),
    ) {
        let tz = parse_tz(zone).unwrap();
        let (from, to) = month_window(tz, year, month).unwrap();
        let ivs = chain("d", from - 10 * DAY, &[(Up, None, from - before), (Down, None, from + after), (Up, None, to)]);
        let (py, pm) = month_of(tz, from - 1);
        let (pfrom, pto) = month_window(tz, py, pm).unwrap();
        prop_assert_eq!(pto, from);
        let prev = device_figures(&ivs, pfrom, pto);
        let this = device_figures(&ivs, from, to);
        prop_assert_eq!(prev.downtime_ms, before);
        prop_assert_eq!(this.downtime_ms, after);
        prop_assert_eq!((prev.incidents, this.incidents), (1, 1));
        prop_assert_eq!((prev.mttr_ms, this.mttr_ms), (Some(before), Some(after)));
    }
}
