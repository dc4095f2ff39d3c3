//! `gateway report` against a real store in a temporary data dir: the
//! gateway-local report equals the report a dashboard builds from the same
//! transitions and tickets as published (the `event` and `tickets/{id}`
//! payloads of `crate::wire`, parsed back) with the core ledger; a device removed
//! from the configuration counts until it was last watched; a stopped
//! gateway's silence after its last heartbeat is `gateway_down`; bad input.

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::TimeZone;
use gateway_core::ledger::Ledger;
use gateway_core::model::DeviceClass;
use gateway_core::report::{Lang, build, to_json};
use gateway_core::state::{DeviceState, Interval, Transition, UnixMs};
use gateway_core::tickets::{DeviceRef, TicketBook};

use super::*;
use crate::store::DeviceRow;

use DeviceState::{Down, Unknown, Up};

const HOUR: i64 = 3_600_000;

fn at(y: i32, mo: u32, d: u32, h: u32, mi: u32) -> UnixMs {
    chrono_tz::Asia::Shanghai
        .with_ymd_and_hms(y, mo, d, h, mi, 0)
        .unwrap()
        .timestamp_millis()
}

fn profiles() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/profiles")
}

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
"#,
        profiles().display()
    );
    let path = dir.join("gateway.toml");
    std::fs::write(&path, text).unwrap();
    let cfg = crate::files::load_config(&path).unwrap();
    Site::new(cfg, &path).unwrap()
}

/// Both sides of the comparison: the gateway's store, and the ledger a
/// dashboard rebuilds from the same transitions.
struct Both {
    store: Store,
    central: Ledger,
    closed: Vec<Interval>,
}

impl Both {
    fn apply(
        &mut self,
        device: &str,
        from: DeviceState,
        to: DeviceState,
        reason: &str,
        at_ms: UnixMs,
    ) {
        let t = Transition {
            device: device.to_owned(),
            from,
            to,
            reason: Some(reason.to_owned()),
            at_ms,
        };
        self.store.record_transition(&t).unwrap();
        self.central_only(&t);
    }

    /// What the dashboard does with an `event` message: the payload the
    /// gateway publishes, parsed back, applied to its ledger.
    fn central_only(&mut self, t: &Transition) {
        let bytes = crate::wire::with_seq(crate::wire::transition(t, t.at_ms), 1);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(v["type"], "transition");
        let parsed = Transition {
            device: v["device"].as_str().unwrap().to_owned(),
            from: DeviceState::parse(v["from"].as_str().unwrap()).unwrap(),
            to: DeviceState::parse(v["to"].as_str().unwrap()).unwrap(),
            reason: v["reason"].as_str().map(str::to_owned),
            at_ms: v["at"].as_i64().unwrap(),
        };
        self.closed.extend(self.central.apply(&parsed));
    }
}

/// What the dashboard keeps of the `tickets/{id}` messages: each ticket as
/// it last stood.
fn central_tickets(
    events: &[gateway_core::tickets::TicketEvent],
) -> Vec<gateway_core::tickets::Ticket> {
    let mut by_id = std::collections::BTreeMap::new();
    for ev in events {
        let bytes = crate::wire::with_seq(crate::wire::ticket(ev, ev.at_ms), 1);
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let t: gateway_core::tickets::Ticket = serde_json::from_value(v["ticket"].clone()).unwrap();
        by_id.insert(t.id, t);
    }
    by_id.into_values().collect()
}

#[test]
fn the_gateway_report_equals_the_one_rebuilt_from_events_and_counts_removed_devices_until_removed()
{
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let mut b = Both {
        store: Store::open(&site.data_dir).unwrap(),
        central: Ledger::new(Duration::from_secs(400 * 86_400)),
        closed: Vec::new(),
    };
    let mut rows: Vec<DeviceRow> = site.config.devices.iter().map(DeviceRow::of).collect();
    rows.push(DeviceRow {
        id: "pump-old".to_owned(),
        name_zh: "旧泵".to_owned(),
        name_en: "Old pump".to_owned(),
        class: DeviceClass::Pump,
        threshold_percent: 98.0,
    });
    b.store.upsert_devices(&rows).unwrap();

    for d in ["pump-1", "fp-1", "pump-old"] {
        b.apply(d, Unknown, Up, "startup", at(2026, 10, 31, 20, 0));
    }
    // A fault running across midnight: downtime in November, October's incident.
    b.apply("pump-1", Up, Down, "rule:fault", at(2026, 10, 31, 23, 0));
    b.apply("pump-1", Down, Up, "", at(2026, 11, 1, 2, 0));
    // The gateway stops on 8 Nov 10:00 and comes back at 12:00 without pump-old.
    let stop = at(2026, 11, 8, 10, 0);
    for (d, s) in [("pump-1", Up), ("fp-1", Up), ("pump-old", Up)] {
        b.apply(d, s, Unknown, "gateway_down", stop);
    }
    for d in ["pump-1", "fp-1"] {
        b.apply(d, Unknown, Up, "", at(2026, 11, 8, 12, 0));
    }
    b.apply("fp-1", Up, Down, "comms", at(2026, 11, 20, 9, 0));
    b.apply("fp-1", Down, Up, "", at(2026, 11, 20, 9, 30));
    // Stopped for good on 30 Nov 00:00 (its last heartbeat).
    let last_heartbeat = at(2026, 11, 30, 0, 0);
    b.store.heartbeat(last_heartbeat).unwrap();
    // The dashboard sees the gateway go offline (its last will); the store
    // learns it only at the next start (recovery), so only the central side.
    for d in ["pump-1", "fp-1"] {
        let t = Transition {
            device: d.to_owned(),
            from: Up,
            to: Unknown,
            reason: Some("gateway_down".to_owned()),
            at_ms: last_heartbeat,
        };
        b.central_only(&t);
    }
    let mut store = b.store;

    let tickets_cfg = gateway_core::config::TicketsConfig::default();
    let mut book = TicketBook::new(&tickets_cfg, site.tz, Vec::new(), 1);
    let fp = DeviceRef {
        id: "fp-1",
        class: DeviceClass::FireAlarm,
    };
    let mut events =
        book.on_availability_below(fp, 0.9, 99.0, Some("comms"), at(2026, 11, 20, 9, 10));
    events.extend(book.ack(1, "li", "", at(2026, 11, 20, 9, 20)).unwrap());
    events.extend(book.resolve(1, "li", "", at(2026, 11, 20, 9, 40)).unwrap());
    store.save_ticket_events(&events).unwrap();

    let now = at(2026, 12, 2, 9, 0);
    let local = input_from_store(&site, &store, Some("测试项目"), (2026, 11), now).unwrap();
    let report = build(&local).unwrap();

    // The dashboard's side: every closed interval, the open ones up to now.
    let mut central_input = local.clone();
    central_input.intervals = b.closed.clone();
    central_input.tickets = central_tickets(&events);
    for d in ["pump-1", "fp-1", "pump-old"] {
        let (state, reason, since) = b.central.current(d).unwrap();
        central_input.intervals.push(Interval {
            device: d.to_owned(),
            state,
            reason,
            from_ms: since,
            to_ms: now,
        });
    }
    let central = build(&central_input).unwrap();
    assert_eq!(to_json(&report).unwrap(), to_json(&central).unwrap());

    let pump = report.devices.iter().find(|d| d.id == "pump-1").unwrap();
    assert_eq!(pump.figures.downtime_ms, 2 * HOUR);
    assert_eq!(
        pump.figures.incidents, 1,
        "the fault began in October and is an incident of November too"
    );
    assert_eq!(pump.figures.mttr_ms, Some(2 * HOUR));
    assert_eq!(pump.figures.totals.unknown_ms, 2 * HOUR + 24 * HOUR);
    let old = report.devices.iter().find(|d| d.id == "pump-old").unwrap();
    assert_eq!(old.in_service_to_ms, stop);
    assert_eq!(old.service_coverage, Some(1.0));
    assert_eq!(old.name_zh, "旧泵");
    let gaps: Vec<(UnixMs, UnixMs, &str, usize)> = report
        .coverage
        .gaps
        .iter()
        .map(|g| (g.from_ms, g.to_ms, g.reason.as_str(), g.devices.len()))
        .collect();
    assert_eq!(
        gaps,
        [
            (stop, at(2026, 11, 8, 12, 0), "gateway_down", 2),
            (last_heartbeat, at(2026, 12, 1, 0, 0), "gateway_down", 2),
        ]
    );
    assert_eq!(report.tickets.figures.opened, 1);
    assert_eq!(report.tickets.figures.repair_median_ms, Some(30 * 60_000));
    assert_eq!(report.site.name, "测试项目");
    let html = render(&report, Format::Html, Lang::Zh, None).unwrap();
    assert!(String::from_utf8(html).unwrap().contains("测试项目"));
    let csv = render(&report, Format::Csv, Lang::Zh, Some("period")).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    assert!(csv.starts_with("\u{feff}项目编号,项目,月份,"), "{csv}");
    assert!(csv.contains("测试项目"), "{csv}");
    // The CSV figures are the JSON's, rounded for people.
    let csv = render(&report, Format::Csv, Lang::En, Some("devices")).unwrap();
    let csv = String::from_utf8(csv).unwrap();
    for d in &report.devices {
        let a = d
            .figures
            .availability
            .map_or_else(String::new, |a| format!("{:.2}", a * 100.0));
        let down = format!("{:.2}", d.figures.downtime_ms as f64 / 60_000.0);
        let line = csv
            .lines()
            .find(|l| l.starts_with(&format!("{},", d.id)))
            .unwrap_or_else(|| panic!("no row for {} in {csv}", d.id));
        assert!(line.contains(&format!(",{a},")), "{line} lacks {a}");
        assert!(line.contains(&format!(",{down},")), "{line} lacks {down}");
    }
    let xlsx = render(&report, Format::Xlsx, Lang::Zh, None).unwrap();
    assert!(xlsx.starts_with(b"PK\x03\x04"), "a zip container");
    assert!(matches!(
        render(&report, Format::Csv, Lang::Zh, None),
        Err(RenderFailure::NoSection)
    ));
    assert!(matches!(
        render(&report, Format::Csv, Lang::Zh, Some("all")),
        Err(RenderFailure::UnknownSection(_))
    ));
    assert!(matches!(
        render(&report, Format::Json, Lang::Zh, Some("devices")),
        Err(RenderFailure::SectionNotCsv)
    ));
    let files = folder_files(&report, Lang::Zh);
    assert_eq!(files.len(), gateway_core::report::SECTIONS.len());
    assert_eq!(files[3].0, "t-2026-11-devices.csv");
    assert!(files.iter().all(|(_, text)| text.starts_with('\u{feff}')));
}

#[test]
fn the_format_follows_the_out_file_unless_given() {
    let args = |format: Option<Format>, out: Option<&str>| ReportArgs {
        at: crate::cli::SiteArgs::config(PathBuf::from("x.toml")),
        month: "2026-11".to_owned(),
        format,
        out: out.map(PathBuf::from),
        section: None,
        lang: "zh".to_owned(),
        site: None,
        site_name: None,
    };
    assert_eq!(format_of(&args(None, None)), Format::Html);
    assert_eq!(format_of(&args(None, Some("r.CSV"))), Format::Csv);
    assert_eq!(format_of(&args(None, Some("r.json"))), Format::Json);
    assert_eq!(format_of(&args(None, Some("r.xlsx"))), Format::Xlsx);
    assert_eq!(format_of(&args(None, Some("reports/"))), Format::Csv);
    assert_eq!(format_of(&args(None, Some("r.pdf"))), Format::Html);
    assert_eq!(
        format_of(&args(Some(Format::Json), Some("r.csv"))),
        Format::Json
    );
}

#[test]
fn bad_months_languages_and_sites_exit_64_before_touching_the_store() {
    let dir = tempfile::tempdir().unwrap();
    let _ = site(dir.path());
    let config = dir.path().join("gateway.toml");
    let run = |month: &str, lang: &str, site: Option<&str>| {
        report(ReportArgs {
            at: crate::cli::SiteArgs::config(config.clone()),
            month: month.to_owned(),
            format: None,
            out: None,
            section: None,
            lang: lang.to_owned(),
            site: site.map(str::to_owned),
            site_name: None,
        })
    };
    assert_eq!(run("2026-13", "zh", None), EXIT_CONFIG);
    assert_eq!(run("2026-11", "fr", None), EXIT_CONFIG);
    assert_eq!(run("2026-11", "zh", Some("other-site")), EXIT_CONFIG);
    // A good month on a gateway that never ran: the store is missing.
    assert_eq!(run("2026-11", "zh", Some("t")), EXIT_REFUSED);
    assert!(!dir.path().join("data").join(crate::store::DB_FILE).exists());
}

/// 30 months of history for both devices: faults, maintenance, gateway
/// outages, tickets opened and closed, and a fault that runs across the
/// retention cutoff at midnight. Returns the store (heartbeat at `now`).
fn thirty_months(site: &Site, cutoff: UnixMs, now: UnixMs) -> Store {
    let mut store = Store::open(&site.data_dir).unwrap();
    store
        .upsert_devices(
            &site
                .config
                .devices
                .iter()
                .map(DeviceRow::of)
                .collect::<Vec<_>>(),
        )
        .unwrap();
    let mut state: std::collections::BTreeMap<&str, DeviceState> = Default::default();
    let mut go = |store: &mut Store, d: &'static str, to: DeviceState, reason: &str, at_ms| {
        let from = state.get(d).copied().unwrap_or(Unknown);
        store
            .record_transition(&Transition {
                device: d.to_owned(),
                from,
                to,
                reason: Some(reason.to_owned()),
                at_ms,
            })
            .unwrap();
        state.insert(d, to);
    };
    let start = at(2024, 5, 1, 0, 0);
    for d in ["pump-1", "fp-1"] {
        go(&mut store, d, Up, "startup", start);
    }
    let tickets_cfg = gateway_core::config::TicketsConfig::default();
    let mut book = TicketBook::new(&tickets_cfg, site.tz, Vec::new(), 1);
    let pump = DeviceRef {
        id: "pump-1",
        class: DeviceClass::Pump,
    };
    let fp = DeviceRef {
        id: "fp-1",
        class: DeviceClass::FireAlarm,
    };
    // One ticket open since the very start: never deleted, whatever its age.
    let mut events = book.on_availability_below(fp, 0.9, 99.0, Some("comms"), start + HOUR);
    let mut seed: u64 = 7;
    let mut rnd = |n: i64| {
        seed = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        i64::try_from(seed >> 33).unwrap() % n
    };
    let mut day = start + 24 * HOUR;
    let mut k = 0;
    while day + 24 * HOUR < now {
        k += 1;
        // Kept clear of the cutoff's day, which has its own story below.
        let near_cutoff = (day - cutoff).abs() < 3 * 24 * HOUR;
        if day == cutoff {
            // A fault running across the cutoff, with a gateway outage at midnight:
            // the first kept month must still see it as one fault (one incident).
            go(&mut store, "pump-1", Down, "rule:fault", cutoff - 2 * HOUR);
            go(&mut store, "pump-1", Unknown, "gateway_down", cutoff - HOUR);
            go(&mut store, "pump-1", Down, "rule:fault", cutoff + HOUR);
            go(&mut store, "pump-1", Up, "", cutoff + 3 * HOUR);
        }
        if !near_cutoff {
            let a = day + 8 * HOUR + rnd(480) * 60_000;
            go(&mut store, "pump-1", Down, "rule:fault", a);
            go(&mut store, "pump-1", Up, "", a + (1 + rnd(180)) * 60_000);
            if k % 3 == 0 {
                let b = day + 2 * HOUR + rnd(240) * 60_000;
                go(&mut store, "fp-1", Down, "comms", b);
                go(&mut store, "fp-1", Up, "", b + (1 + rnd(60)) * 60_000);
            }
            if k % 7 == 0 {
                let m = day + 20 * HOUR;
                go(
                    &mut store,
                    "pump-1",
                    DeviceState::Maintenance,
                    "maintenance:weekly",
                    m,
                );
                go(&mut store, "pump-1", Up, "", m + 2 * HOUR);
            }
            if k % 11 == 0 {
                let g = day + 22 * HOUR;
                for d in ["pump-1", "fp-1"] {
                    go(&mut store, d, Unknown, "gateway_down", g);
                }
                for d in ["pump-1", "fp-1"] {
                    go(&mut store, d, Up, "startup", g + HOUR);
                }
            }
            if k % 10 == 0 {
                let t = day + 9 * HOUR;
                let opened = book.on_availability_below(pump, 0.9, 98.0, Some("rule:fault"), t);
                let id = opened[0].ticket.id;
                events.extend(opened);
                events.extend(book.ack(id, "li", "", t + HOUR).unwrap());
                events.extend(book.resolve(id, "li", "", t + 3 * HOUR).unwrap());
                events.extend(book.close(id, "wang", "", t + 26 * HOUR).unwrap());
                events.extend(book.tick(t + 30 * 24 * HOUR));
            }
        }
        day += 24 * HOUR;
    }
    store.save_ticket_events(&events).unwrap();
    store.heartbeat(now - HOUR).unwrap();
    store
}

#[test]
fn retention_deletes_old_months_and_every_kept_month_reports_exactly_as_before() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let now = at(2026, 11, 27, 10, 0);
    assert_eq!(site.config.raw.store.keep_months, 24);
    let cutoff = gateway_core::ledger::retention_cutoff(site.tz, now, 24).unwrap();
    assert_eq!(cutoff, at(2024, 11, 1, 0, 0));
    let store = thirty_months(&site, cutoff, now);

    let kept: Vec<(i32, u32)> = (0..25)
        .map(|i| {
            (
                2024 + (10 + i) / 12,
                u32::try_from((10 + i) % 12 + 1).unwrap(),
            )
        })
        .collect();
    assert_eq!((kept[0], kept[24]), ((2024, 11), (2026, 11)));
    let report_of = |store: &Store, month: (i32, u32)| {
        let input = input_from_store(&site, store, None, month, now)?;
        Ok::<_, ReportFailure>(to_json(&build(&input).unwrap()).unwrap())
    };
    let before: Vec<String> = kept
        .iter()
        .map(|m| report_of(&store, *m).unwrap())
        .collect();
    let old_before = report_of(&store, (2024, 10)).unwrap();
    let first: serde_json::Value = serde_json::from_str(&before[0]).unwrap();
    let pump = first["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == "pump-1")
        .unwrap();
    // One fault a day from 4 November (the days around the cutoff are
    // quiet): 27, and the fault across the cutoff, which began in October:
    // an incident of November too, once, although its Down time there
    // follows a gateway outage at midnight (one fault, not two).
    assert_eq!(pump["figures"]["incidents"].as_u64(), Some(28));

    store.begin_prune(cutoff).unwrap();
    let c = crate::store::Cutoff {
        before_ms: cutoff,
        tickets_before_ms: cutoff,
    };
    let mut pruned = crate::store::Pruned::default();
    loop {
        let b = store.prune_batch(&c, crate::engine::PRUNE_BATCH).unwrap();
        if b.total() == 0 {
            break;
        }
        pruned += b;
    }
    assert!(pruned.intervals > 500, "{pruned:?}");
    assert!(
        pruned.tickets >= 15 && pruned.ticket_events == 4 * pruned.tickets,
        "{pruned:?}"
    );
    assert!(store.ticket(1).unwrap().is_some(), "the open ticket stays");

    for (month, was) in kept.iter().zip(&before) {
        let now_json = report_of(&store, *month).unwrap();
        assert_eq!(&now_json, was, "{month:?} changed");
    }
    // A month before the cutoff: refused, naming the setting, not an
    // empty report. Before pruning it was a real report.
    assert!(old_before.contains("\"pump-1\""));
    let err = report_of(&store, (2024, 10)).unwrap_err();
    assert!(
        matches!(
            err,
            ReportFailure::NotKept {
                month: (2024, 10),
                first_kept: (2024, 11),
                keep_months: 24
            }
        ),
        "{err:?}"
    );
    let text = err.to_string();
    assert!(text.contains("[store] keep_months"), "{text}");
    assert!(text.contains("2024-11"), "{text}");
    assert!(report_of(&store, (2023, 1)).is_err());
}

#[test]
fn a_month_before_the_retained_data_exits_64_with_the_reason() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let store = Store::open(&site.data_dir).unwrap();
    store.begin_prune(at(2024, 11, 1, 0, 0)).unwrap();
    let run = |month: &str| {
        report(ReportArgs {
            at: crate::cli::SiteArgs::config(dir.path().join("gateway.toml")),
            month: month.to_owned(),
            format: Some(Format::Json),
            out: Some(dir.path().join("r.json")),
            section: None,
            lang: "zh".to_owned(),
            site: None,
            site_name: None,
        })
    };
    assert_eq!(run("2024-10"), EXIT_CONFIG);
    assert!(!dir.path().join("r.json").exists());
    assert_eq!(run("2024-11"), 0);
    assert!(dir.path().join("r.json").exists());
}

#[test]
fn a_ticket_counts_in_the_month_it_falls_due_in_whatever_its_last_update() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let mut store = Store::open(&site.data_dir).unwrap();
    let cfg = gateway_core::config::TicketsConfig::default();
    let mut book = TicketBook::new(&cfg, site.tz, Vec::new(), 1);
    let dev = |id: &'static str| DeviceRef {
        id,
        class: DeviceClass::Pump,
    };
    // Opened 30 Apr 20:00, after the working day: due 1 May 18:00. Never
    // touched again, so its last update is in April.
    let mut events =
        book.on_availability_below(dev("pump-1"), 0.9, 98.0, None, at(2026, 4, 30, 20, 0));
    // Two more opened in May and left past their day's end.
    events.extend(book.on_availability_below(dev("pump-2"), 0.9, 98.0, None, at(2026, 5, 6, 9, 0)));
    events.extend(book.on_availability_below(dev("pump-3"), 0.9, 98.0, None, at(2026, 5, 7, 9, 0)));
    store.save_ticket_events(&events).unwrap();
    assert_eq!(
        book.get(1).unwrap().deadline_ms,
        at(2026, 5, 1, 18, 0),
        "due the next working day's end"
    );

    let input = input_from_store(&site, &store, None, (2026, 5), at(2026, 6, 2, 9, 0)).unwrap();
    let may = build(&input).unwrap();
    assert_eq!(may.kpis.overnight, 3, "April's ticket falls due in May");
    assert_eq!(may.tickets.figures.opened, 2);
    let missed: Vec<u64> = may.tickets.missed.iter().map(|m| m.ticket).collect();
    assert_eq!(missed, [1, 2, 3]);
    // April: opened there, not due there.
    let input = input_from_store(&site, &store, None, (2026, 4), at(2026, 6, 2, 9, 0)).unwrap();
    let april = build(&input).unwrap();
    assert_eq!(april.tickets.figures.opened, 1);
    assert_eq!(april.kpis.overnight, 0);
    // June: still open, but nothing falls due: loaded, counted nowhere.
    let input = input_from_store(&site, &store, None, (2026, 6), at(2026, 6, 2, 9, 0)).unwrap();
    assert_eq!(input.tickets.len(), 3, "open tickets are open in June too");
    let june = build(&input).unwrap();
    assert_eq!((june.kpis.overnight, june.tickets.figures.opened), (0, 0));
}

#[test]
fn csv_is_one_table_per_file_and_xlsx_one_workbook() {
    let dir = tempfile::tempdir().unwrap();
    let site = site(dir.path());
    let mut store = Store::open(&site.data_dir).unwrap();
    let t = |from, to, at_ms| Transition {
        device: "pump-1".to_owned(),
        from,
        to,
        reason: None,
        at_ms,
    };
    store
        .record_transition(&t(Unknown, Up, at(2026, 10, 1, 0, 0)))
        .unwrap();
    store
        .record_transition(&t(Up, Down, at(2026, 10, 3, 14, 0)))
        .unwrap();
    store
        .record_transition(&t(Down, Up, at(2026, 10, 3, 15, 30)))
        .unwrap();
    store.heartbeat(at(2026, 11, 2, 0, 0)).unwrap();
    drop(store);
    let config = dir.path().join("gateway.toml");
    let run = |format: Option<Format>, out: &Path, section: Option<&str>| {
        report(ReportArgs {
            at: crate::cli::SiteArgs::config(config.clone()),
            month: "2026-10".to_owned(),
            format,
            out: Some(out.to_owned()),
            section: section.map(str::to_owned),
            lang: "en".to_owned(),
            site: None,
            site_name: None,
        })
    };
    // A CSV without a section: refused with the way to get one.
    let one = dir.path().join("r.csv");
    assert_eq!(run(None, &one, None), EXIT_CONFIG);
    assert!(!one.exists());
    assert_eq!(run(None, &one, Some("rows")), EXIT_CONFIG);
    assert_eq!(run(None, &one, Some("devices")), 0);
    let text = std::fs::read_to_string(&one).unwrap();
    let mut lines = text.strip_prefix('\u{feff}').unwrap().split("\r\n");
    let header: Vec<&str> = lines.next().unwrap().split(',').collect();
    assert_eq!(header[..3], ["Device id", "Device name", "Class"]);
    let pump: Vec<&str> = lines
        .find(|l| l.starts_with("pump-1,"))
        .unwrap()
        .split(',')
        .collect();
    let col = |name: &str| header.iter().position(|h| *h == name).unwrap();
    assert_eq!(pump[col("Downtime (min)")], "90.00");
    assert_eq!(pump[col("Incidents")], "1");
    assert_eq!(pump[col("MTTR (min)")], "90.00");
    assert_eq!(
        pump[col("Availability (%)")],
        format!("{:.2}", 100.0 - 1.5 / 744.0 * 100.0)
    );
    // A folder: one file per section.
    let folder = dir.path().join("r");
    assert_eq!(
        run(None, &PathBuf::from(format!("{}/", folder.display())), None),
        0
    );
    let mut names: Vec<String> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    names.sort();
    assert_eq!(names.len(), gateway_core::report::SECTIONS.len());
    assert!(
        names.contains(&"t-2026-10-missed.csv".to_owned()),
        "{names:?}"
    );
    // An .xlsx by its extension.
    let book = dir.path().join("r.xlsx");
    assert_eq!(run(None, &book, None), 0);
    assert!(std::fs::read(&book).unwrap().starts_with(b"PK\x03\x04"));
    assert_eq!(run(Some(Format::Xlsx), &book, Some("devices")), EXIT_CONFIG);
}
