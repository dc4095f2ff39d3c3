//! Report tests: a scripted month (the worked example of
//! `docs/availability.md` plus tickets) whose every figure is computed here
//! by hand and checked in the JSON, the CSV and the HTML; edge cases (no
//! data, a device added or removed mid-month, DST months, a leap-year
//! February, a month in progress) and bad input.

use std::collections::BTreeMap;

use chrono::{NaiveDateTime, TimeZone};
use chrono_tz::Tz;
use serde_json::Value;

use super::render::{BOM, duration_text, percent_text};
use super::*;
use crate::config::TicketsConfig;
use crate::maintenance::{Schedule, Target, Window};
use crate::model::DeviceClass;
use crate::state::{DeviceState, HardAlarm, Interval, UnixMs};
use crate::tickets::{DeviceRef, Ticket, TicketBook};

use DeviceState::{Down, Maintenance, Unknown, Up};

const MIN: i64 = 60_000;
const HOUR: i64 = 3_600_000;

fn tz(name: &str) -> Tz {
    crate::ledger::parse_tz(name).unwrap()
}

/// A local time, `"2026-11-03 14:00"`, as Unix ms.
fn at(zone: Tz, s: &str) -> UnixMs {
    let naive = NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M").unwrap();
    zone.from_local_datetime(&naive)
        .earliest()
        .unwrap()
        .timestamp_millis()
}

fn sh(s: &str) -> UnixMs {
    at(tz("Asia/Shanghai"), s)
}

/// Contiguous intervals from `start` through `(state, reason, until)` steps.
fn chain(
    device: &str,
    start: UnixMs,
    steps: &[(DeviceState, Option<&str>, UnixMs)],
) -> Vec<Interval> {
    let mut from = start;
    steps
        .iter()
        .map(|(state, reason, to)| {
            let i = Interval {
                device: device.to_owned(),
                state: *state,
                reason: reason.map(str::to_owned),
                from_ms: from,
                to_ms: *to,
            };
            from = *to;
            i
        })
        .collect()
}

fn device(id: &str, class: DeviceClass, target: f64) -> CatalogueDevice {
    CatalogueDevice {
        id: id.to_owned(),
        name_zh: format!("{id} 中文"),
        name_en: format!("{id} English"),
        class,
        location: "B1".to_owned(),
        target_percent: target,
        known_from_ms: None,
        known_until_ms: None,
    }
}

fn input(zone: &str, year: i32, month: u32, now_ms: UnixMs) -> ReportInput {
    ReportInput {
        site: SiteInfo {
            id: "site-a".to_owned(),
            name: "示范项目".to_owned(),
            timezone: zone.to_owned(),
        },
        year,
        month,
        now_ms,
        devices: Vec::new(),
        intervals: Vec::new(),
        tickets: Vec::new(),
        windows: Vec::new(),
        class_targets: BTreeMap::new(),
    }
}

/// The worked example of `docs/availability.md` (November 2026, Shanghai).
fn worked_example_intervals() -> Vec<Interval> {
    let mut v = chain(
        "pump-1",
        sh("2026-10-01 00:00"),
        &[
            (Up, None, sh("2026-11-03 14:00")),
            (Down, Some("rule:fault"), sh("2026-11-03 17:00")),
            (Up, None, sh("2026-11-10 20:00")),
            (
                Maintenance,
                Some("maintenance:pump-monthly"),
                sh("2026-11-10 22:00"),
            ),
            (Up, None, sh("2026-11-15 02:00")),
            (Unknown, Some("gateway_down"), sh("2026-11-15 06:00")),
            (Up, None, sh("2026-11-20 09:30")),
            (Down, Some("comms"), sh("2026-11-20 10:00")),
            (Up, None, sh("2026-12-05 00:00")),
        ],
    );
    v.extend(chain(
        "pump-2",
        sh("2026-10-01 00:00"),
        &[
            (Up, None, sh("2026-11-15 01:00")),
            (Down, Some("rule:fault"), sh("2026-11-15 02:00")),
            (Unknown, Some("gateway_down"), sh("2026-11-15 06:00")),
            (Down, Some("rule:fault"), sh("2026-11-15 07:00")),
            (Up, None, sh("2026-12-05 00:00")),
        ],
    ));
    v.extend(chain(
        "fire-panel-1",
        sh("2026-10-01 00:00"),
        &[
            (Up, None, sh("2026-10-31 22:00")),
            (Down, Some("comms"), sh("2026-11-01 08:00")),
            (Up, None, sh("2026-11-15 02:00")),
            (Unknown, Some("gateway_down"), sh("2026-11-15 06:00")),
            (Up, None, sh("2026-11-25 10:00")),
            (Down, Some("rule:fault"), sh("2026-11-25 10:20")),
            (Up, None, sh("2026-12-05 00:00")),
        ],
    ));
    v
}

/// Tickets of the scripted month, driven through the real ticket book.
fn scripted_tickets() -> Vec<Ticket> {
    let cfg = TicketsConfig::default();
    let mut book = TicketBook::new(&cfg, tz("Asia/Shanghai"), Vec::new(), 1);
    let pump1 = DeviceRef {
        id: "pump-1",
        class: DeviceClass::Pump,
    };
    let pump2 = DeviceRef {
        id: "pump-2",
        class: DeviceClass::Pump,
    };
    let panel = DeviceRef {
        id: "fire-panel-1",
        class: DeviceClass::FireAlarm,
    };
    let alarm = |active: bool, s: &str| HardAlarm {
        device: "fire-panel-1".to_owned(),
        point: "fault".to_owned(),
        active,
        at_ms: sh(s),
    };
    // #1: an October ticket, resolved in October: not in November's figures.
    book.on_availability_below(pump1, 0.9, 98.0, None, sh("2026-10-20 09:00"));
    book.ack(1, "li", "", sh("2026-10-20 09:10")).unwrap();
    book.resolve(1, "li", "", sh("2026-10-20 10:00")).unwrap();
    book.close(1, "li", "", sh("2026-10-20 11:00")).unwrap();
    // #2: pump-1, 3 Nov: response 10 min, repair 2 h 20 min, on time (due 18:00).
    book.on_availability_below(pump1, 0.9, 98.0, Some("rule:fault"), sh("2026-11-03 14:30"));
    book.ack(2, "wang", "", sh("2026-11-03 14:40")).unwrap();
    book.resolve(2, "wang", "换接触器", sh("2026-11-03 16:50"))
        .unwrap();
    // #3: pump-2, 15 Nov 01:10: response 5 h 50 min, repair 6 h 20 min, on time.
    book.on_availability_below(pump2, 0.5, 98.0, None, sh("2026-11-15 01:10"));
    book.ack(3, "zhao", "", sh("2026-11-15 07:00")).unwrap();
    book.resolve(3, "zhao", "", sh("2026-11-15 07:30")).unwrap();
    // #4: pump-1, 20 Nov 17:30, due 18:00, repaired next morning: late, overnight.
    book.on_availability_below(pump1, 0.9, 98.0, Some("comms"), sh("2026-11-20 17:30"));
    book.ack(4, "wang", "", sh("2026-11-20 17:45")).unwrap();
    book.resolve(4, "wang", "", sh("2026-11-21 09:00")).unwrap();
    // #5: fire panel fault, 25 Nov 10:00 (critical, due 12:00): 5 min, 25 min.
    book.on_alarm(panel, &alarm(true, "2026-11-25 10:00"));
    book.ack(5, "chen", "", sh("2026-11-25 10:05")).unwrap();
    book.on_alarm(panel, &alarm(false, "2026-11-25 10:20"));
    book.resolve(5, "chen", "复位", sh("2026-11-25 10:25"))
        .unwrap();
    // ... the same fault two days later: rework, due 11:00, repaired 13:00 (late).
    book.on_alarm(panel, &alarm(true, "2026-11-27 09:00"));
    book.ack(5, "chen", "", sh("2026-11-27 09:30")).unwrap();
    book.resolve(5, "chen", "更换模块", sh("2026-11-27 13:00"))
        .unwrap();
    let tickets: Vec<Ticket> = book.tickets().cloned().collect();
    assert_eq!(tickets.len(), 5);
    assert_eq!(tickets[4].reworks, 1);
    tickets
}

fn scripted_input(now_ms: UnixMs) -> ReportInput {
    let mut i = input("Asia/Shanghai", 2026, 11, now_ms);
    i.devices = vec![
        device("pump-1", DeviceClass::Pump, 98.0),
        device("pump-2", DeviceClass::Pump, 98.0),
        device("fire-panel-1", DeviceClass::FireAlarm, 99.0),
    ];
    i.intervals = worked_example_intervals();
    i.tickets = scripted_tickets();
    i.windows = vec![Window {
        id: "pump-monthly".to_owned(),
        target: Target::Device("pump-1".to_owned()),
        schedule: Schedule::Once {
            from_ms: sh("2026-11-10 20:00"),
            to_ms: sh("2026-11-10 22:00"),
        },
        note: "月度保养".to_owned(),
    }];
    i
}

fn close(a: &Value, b: f64) {
    let a = a.as_f64().unwrap_or_else(|| panic!("not a number: {a}"));
    assert!((a - b).abs() < 1e-12, "{a} != {b}");
}

fn by_id<'a>(list: &'a Value, key: &str, id: &str) -> &'a Value {
    list.as_array()
        .unwrap()
        .iter()
        .find(|x| x[key] == id)
        .unwrap_or_else(|| panic!("{id} not in {list}"))
}

#[test]
fn every_figure_of_the_scripted_month_matches_a_hand_computation() {
    let report = build(&scripted_input(sh("2026-12-02 09:00"))).unwrap();
    let json: Value = serde_json::from_str(&to_json(&report).unwrap()).unwrap();

    // Period: 720 h, ended.
    let p = &json["period"];
    assert_eq!(p["month"], "2026-11");
    assert_eq!(p["from_ms"], 1_793_462_400_000_i64);
    assert_eq!(p["to_ms"], 1_796_054_400_000_i64);
    assert_eq!(p["until_ms"], p["to_ms"]);
    assert_eq!(p["length_ms"], 720 * HOUR);
    assert_eq!(p["in_progress"], false);

    // Per device, by hand (hours).
    let d = &json["devices"];
    let ids: Vec<&str> = d
        .as_array()
        .unwrap()
        .iter()
        .map(|x| x["id"].as_str().unwrap())
        .collect();
    assert_eq!(
        ids,
        ["fire-panel-1", "pump-1", "pump-2"],
        "missed target first, then lowest availability"
    );
    let p1 = by_id(d, "id", "pump-1");
    let f = &p1["figures"];
    let (up, down, maint, unknown) = (710.5, 3.5, 2.0, 4.0);
    assert_eq!(f["totals"]["up_ms"], (up * HOUR as f64) as i64);
    assert_eq!(f["totals"]["down_ms"], (down * HOUR as f64) as i64);
    assert_eq!(f["totals"]["maintenance_ms"], (maint * HOUR as f64) as i64);
    assert_eq!(f["totals"]["unknown_ms"], (unknown * HOUR as f64) as i64);
    close(&f["availability"], up / (up + down));
    assert_eq!(f["downtime_ms"], 3 * HOUR + 30 * MIN);
    assert_eq!(f["incidents"], 2);
    assert_eq!(f["mtbf_ms"], 355 * HOUR + 15 * MIN);
    assert_eq!(f["mttr_ms"], HOUR + 45 * MIN);
    assert_eq!(f["maintenance_ms"], 2 * HOUR);
    close(&f["coverage"], 716.0 / 720.0);
    close(&p1["service_coverage"], 716.0 / 720.0);
    assert_eq!(p1["met"], true);
    assert_eq!(p1["target_percent"], 98.0);
    let days = p1["days"].as_array().unwrap();
    assert_eq!(days.len(), 30);
    assert_eq!(days[2]["date"], "2026-11-03");
    close(&days[2]["availability"], 21.0 / 24.0);
    assert_eq!(days[2]["down_ms"], 3 * HOUR);
    assert_eq!(days[9]["maintenance_ms"], 2 * HOUR);
    close(&days[9]["availability"], 1.0);
    assert_eq!(days[14]["unknown_ms"], 4 * HOUR);
    close(&days[19]["availability"], 23.5 / 24.0);

    let p2 = &by_id(d, "id", "pump-2")["figures"];
    close(&p2["availability"], 714.0 / 716.0);
    assert_eq!(p2["incidents"], 1, "one fault across the gateway outage");
    assert_eq!(p2["mttr_ms"], 2 * HOUR);
    assert_eq!(p2["mtbf_ms"], 714 * HOUR);

    let fp = by_id(d, "id", "fire-panel-1");
    let ff = &fp["figures"];
    let fp_up = 716.0 - 8.0 - 1.0 / 3.0;
    close(&ff["availability"], fp_up / 716.0);
    assert_eq!(ff["downtime_ms"], 8 * HOUR + 20 * MIN);
    assert_eq!(
        ff["incidents"], 2,
        "the October outage is an incident of November too, with its 8 h"
    );
    assert_eq!(ff["mttr_ms"], 4 * HOUR + 10 * MIN);
    assert_eq!(fp["met"], false);
    close(&fp["days"][0]["availability"], 16.0 / 24.0);

    // Classes.
    let classes = &json["classes"];
    assert_eq!(classes.as_array().unwrap().len(), 2);
    let pump = by_id(classes, "class", "pump");
    assert_eq!(pump["devices"], 2);
    assert_eq!(pump["target_percent"], 98.0);
    close(&pump["figures"]["availability"], 1424.5 / 1430.0);
    close(&pump["intact_rate"], 713.25 / 716.0);
    assert_eq!(pump["figures"]["incidents"], 3);
    assert_eq!(pump["figures"]["mttr_ms"], 110 * MIN);
    assert_eq!(pump["availability_met"], true);
    assert_eq!(pump["intact_met"], true);
    let fire = by_id(classes, "class", "fire_alarm");
    assert_eq!(fire["target_percent"], 99.0);
    close(&fire["intact_rate"], fp_up / 716.0);
    assert_eq!(fire["availability_met"], false);
    assert_eq!(fire["intact_met"], false);

    // Tickets, by hand: response 10, 350, 15, 5, 30 min; repair 140, 380,
    // 930, 25, 240 min; on time #2, #3, #5 (first cycle); late #4, #5 (rework).
    let t = &json["tickets"]["figures"];
    assert_eq!(t["opened"], 4);
    assert_eq!(t["critical"], 1);
    assert_eq!(t["ordinary"], 3);
    assert_eq!(t["response_median_ms"], 15 * MIN);
    assert_eq!(t["response_p90_ms"], 350 * MIN);
    assert_eq!(t["repair_median_ms"], 240 * MIN);
    assert_eq!(t["repair_p90_ms"], 930 * MIN);
    assert_eq!(t["resolved"], 5);
    assert_eq!(t["on_time"], 3);
    close(&t["timeliness"], 0.6);
    assert_eq!(t["reworks"], 1);
    close(&t["rework_rate"], 0.2);
    assert_eq!(t["overnight"], 1);
    let k = &json["kpis"];
    close(&k["timeliness"], 0.6);
    assert_eq!(k["timeliness_met"], false);
    close(&k["rework_rate"], 0.2);
    assert_eq!(k["rework_met"], false);
    assert_eq!(k["overnight"], 1);
    assert_eq!(k["overnight_met"], false);
    let by_class = &json["tickets"]["by_class"];
    assert_eq!(by_id(by_class, "class", "pump")["ordinary"], 3);
    assert_eq!(by_id(by_class, "class", "fire_alarm")["critical"], 1);
    let missed = json["tickets"]["missed"].as_array().unwrap();
    assert_eq!(missed.len(), 2);
    assert_eq!(missed[0]["ticket"], 4);
    assert_eq!(missed[0]["deadline_ms"], sh("2026-11-20 18:00"));
    assert_eq!(missed[0]["resolved_ms"], sh("2026-11-21 09:00"));
    assert_eq!(missed[1]["ticket"], 5);
    assert_eq!(missed[1]["deadline_ms"], sh("2026-11-27 11:00"));
    let reworks = json["tickets"]["reworks"].as_array().unwrap();
    assert_eq!(reworks.len(), 1);
    assert_eq!(reworks[0]["ticket"], 5);
    assert_eq!(reworks[0]["reworks_in_period"], 1);
    let trail: Vec<&str> = reworks[0]["trail"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        trail,
        [
            "opened",
            "acknowledged",
            "recovered",
            "resolved",
            "reopened",
            "acknowledged",
            "resolved"
        ]
    );

    // Coverage: the 4 h gateway outage of all three devices.
    let c = &json["coverage"];
    assert_eq!(c["in_service_ms"], 3 * 720 * HOUR);
    assert_eq!(c["known_ms"], 3 * 716 * HOUR);
    close(&c["coverage"], 716.0 / 720.0);
    let gaps = c["gaps"].as_array().unwrap();
    assert_eq!(gaps.len(), 1, "{gaps:?}");
    assert_eq!(gaps[0]["from_ms"], sh("2026-11-15 02:00"));
    assert_eq!(gaps[0]["to_ms"], sh("2026-11-15 06:00"));
    assert_eq!(gaps[0]["reason"], "gateway_down");
    assert_eq!(
        gaps[0]["devices"],
        serde_json::json!(["fire-panel-1", "pump-1", "pump-2"])
    );
    assert_eq!(c["short_gaps"], 0);
    assert_eq!(c["windows"][0]["id"], "pump-monthly");
    assert_eq!(
        c["windows"][0]["schedule"],
        "2026-11-10 20:00 – 2026-11-10 22:00"
    );
}

/// A CSV file parsed: RFC 4180 quoting, CRLF line ends, the BOM required.
pub(super) fn parse_csv(text: &str) -> Vec<Vec<String>> {
    let body = text
        .strip_prefix(BOM)
        .expect("a CSV starts with the UTF-8 BOM");
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, body.chars().peekable());
    while let Some(c) = chars.next() {
        match (quoted, c) {
            (true, '"') if chars.peek() == Some(&'"') => {
                chars.next();
                cell.push('"');
            }
            (true, '"') => quoted = false,
            (true, c) => cell.push(c),
            (false, '"') => quoted = true,
            (false, ',') => row.push(std::mem::take(&mut cell)),
            (false, '\r') => {
                assert_eq!(chars.next(), Some('\n'), "CRLF line ends");
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    assert!(
        cell.is_empty() && row.is_empty(),
        "the last line ends with CRLF"
    );
    rows
}

/// One section's CSV as `(header, rows)`.
fn csv_section(r: &MonthReport, section: &str, lang: Lang) -> (Vec<String>, Vec<Vec<String>>) {
    let mut rows = parse_csv(&to_csv(r, section, lang).unwrap());
    let header = rows.remove(0);
    for row in &rows {
        assert_eq!(row.len(), header.len(), "{section}: {row:?}");
    }
    (header, rows)
}

fn pct2(f: Option<f64>) -> String {
    format!("{:.2}", f.unwrap() * 100.0)
}

fn min2(ms: i64) -> String {
    format!("{:.2}", ms as f64 / 60_000.0)
}

fn h2(ms: i64) -> String {
    format!("{:.2}", ms as f64 / 3_600_000.0)
}

#[test]
fn csv_and_html_carry_the_same_figures_as_the_json() {
    let report = build(&scripted_input(sh("2026-12-02 09:00"))).unwrap();
    // One table per file, every file with its BOM, zh and en headers.
    let files = csv_files(&report, Lang::En);
    let ids: Vec<&str> = files.iter().map(|f| f.0).collect();
    assert_eq!(ids, SECTIONS);
    assert!(to_csv(&report, "everything", Lang::Zh).is_none());
    let (zh_header, _) = csv_section(&report, "devices", Lang::Zh);
    assert_eq!(zh_header[5], "设备完好率（%）");
    let table = |section: &str| csv_section(&report, section, Lang::En);
    let field = |section: &str, key: &str, name: &str| -> String {
        let (h, rows) = table(section);
        let i = h
            .iter()
            .position(|x| x == name)
            .unwrap_or_else(|| panic!("{section}: no column {name:?} in {h:?}"));
        let row = rows
            .iter()
            .find(|r| r[0] == key)
            .unwrap_or_else(|| panic!("{section}: no row {key:?} in {rows:?}"));
        row[i].clone()
    };
    for d in &report.devices {
        let f = &d.figures;
        let get = |name| field("devices", &d.id, name);
        assert_eq!(get("Availability (%)"), pct2(f.availability));
        assert_eq!(get("Downtime (min)"), min2(f.downtime_ms));
        assert_eq!(get("Incidents"), f.incidents.to_string());
        assert_eq!(get("MTBF (h)"), h2(f.mtbf_ms.unwrap()));
        assert_eq!(get("MTTR (min)"), min2(f.mttr_ms.unwrap()));
        assert_eq!(get("Maintenance (min)"), min2(f.maintenance_ms));
        assert_eq!(get("Coverage (%)"), pct2(f.coverage));
        assert_eq!(get("Result"), if d.met.unwrap() { "met" } else { "missed" });
    }
    // The worked example's figures, as people read them.
    assert_eq!(field("devices", "pump-1", "Availability (%)"), "99.51");
    assert_eq!(field("devices", "pump-1", "Downtime (min)"), "210.00");
    assert_eq!(field("devices", "pump-1", "MTBF (h)"), "355.25");
    assert_eq!(field("devices", "fire-panel-1", "MTTR (min)"), "250.00");
    for c in &report.classes {
        let name = super::render::class_name(c.class, Lang::En);
        assert_eq!(
            field("classes", name, "Availability (time) (%)"),
            pct2(c.figures.availability)
        );
        assert_eq!(
            field("classes", name, "Intact rate (%)"),
            pct2(c.intact_rate)
        );
    }
    assert_eq!(
        field("kpis", "Repair timeliness", "This month (%)"),
        "60.00"
    );
    assert_eq!(field("kpis", "Rework rate", "This month (%)"), "20.00");
    assert_eq!(
        field("kpis", "Small repairs left overnight", "This month (count)"),
        "1"
    );
    let (h, rows) = table("tickets");
    let col = |name: &str| h.iter().position(|x| x == name).unwrap();
    assert_eq!(rows[0][col("Repair time, p90 (min)")], min2(930 * MIN));
    assert_eq!(rows[0][col("Response time, median (min)")], min2(15 * MIN));
    let (h, rows) = table("days");
    let day = rows
        .iter()
        .find(|r| r[0] == "pump-1" && r[1] == "2026-11-03")
        .unwrap();
    assert_eq!(
        day[h.iter().position(|x| x == "Downtime (min)").unwrap()],
        "180.00"
    );
    let (_, gaps) = table("gaps");
    assert_eq!(gaps.len(), 1);
    assert_eq!(gaps[0][0], "2026-11-15 02:00:00");
    assert_eq!(gaps[0][2], "240.00");
    assert!(gaps[0][3].starts_with("gateway offline"), "{:?}", gaps[0]);
    assert_eq!(table("reworks").1.len(), 7, "the whole trail");
    assert_eq!(table("missed").1.len(), 2);
    // No raw ratio or millisecond count anywhere.
    for (_, text) in &files {
        assert!(!text.contains("0.99"), "{text}");
        assert!(!text.contains("_ms"), "{text}");
    }

    for lang in [Lang::Zh, Lang::En] {
        let html = to_html(&report, lang);
        let has = |s: &str| assert!(html.contains(s), "{lang:?}: {s:?} missing");
        for d in &report.devices {
            has(&percent_text(d.figures.availability));
            has(&duration_text(d.figures.downtime_ms, lang));
            has(&duration_text(d.figures.mtbf_ms.unwrap(), lang));
            has(&duration_text(d.figures.mttr_ms.unwrap(), lang));
            has(&percent_text(d.figures.coverage));
        }
        for c in &report.classes {
            has(&percent_text(c.figures.availability));
            has(&percent_text(c.intact_rate));
        }
        has("99.51 %");
        has("99.72 %");
        has("98.84 %");
        has("99.62 %");
        has("60.00 %");
        has("20.00 %");
        let t = &report.tickets.figures;
        for ms in [
            t.response_median_ms,
            t.response_p90_ms,
            t.repair_median_ms,
            t.repair_p90_ms,
        ] {
            has(&duration_text(ms.unwrap(), lang));
        }
        has("2026-11-15 02:00");
        has("<svg");
        has("@page");
        has("counter(pages)");
        assert!(!html.contains("<script"), "no script needed to print");
        assert_eq!(html.matches("class=\"strip\"").count(), 3);
    }
    let zh = to_html(&report, Lang::Zh);
    assert!(zh.contains("355小时15分") && zh.contains("设备设施完好率月报"));
    assert!(zh.contains("lang=\"zh-CN\""));
    let en = to_html(&report, Lang::En);
    assert!(en.contains("355 h 15 min") && en.contains("Monthly equipment availability report"));
    assert!(!en.contains("本月尚未结束"));
}

#[test]
fn a_month_in_progress_is_reported_up_to_now_and_marked() {
    let now = sh("2026-11-27 12:00");
    let mut i = scripted_input(now);
    // The store gives open intervals ending at now.
    for iv in &mut i.intervals {
        iv.to_ms = iv.to_ms.min(now);
    }
    i.intervals.retain(|iv| iv.from_ms < now);
    let r = build(&i).unwrap();
    assert!(r.period.in_progress);
    assert_eq!(r.period.until_ms, now);
    let p1 = r.devices.iter().find(|d| d.id == "pump-1").unwrap();
    let elapsed_h = 26.0 * 24.0 + 12.0;
    assert_eq!(
        p1.figures.totals.total_ms(),
        (elapsed_h * HOUR as f64) as i64
    );
    assert_eq!(
        p1.figures.totals.unknown_ms,
        4 * HOUR,
        "the future is not unknown"
    );
    assert!(p1.days[26].availability.is_some() && !p1.days[26].future);
    assert!(p1.days[27].future && p1.days[27].availability.is_none());
    assert_eq!(p1.days.iter().filter(|d| d.future).count(), 3);
    // Ticket #5's rework (27 Nov 13:00) has not been resolved yet at noon.
    assert_eq!(r.tickets.figures.resolved, 4);
    let zh = to_html(&r, Lang::Zh);
    assert!(zh.contains("本月尚未结束") && zh.contains("2026-11-27 12:00"));
    assert!(to_html(&r, Lang::En).contains("still in progress"));
    let (h, rows) = csv_section(&r, "period", Lang::En);
    assert_eq!(
        rows[0][h.iter().position(|x| x == "In progress").unwrap()],
        "yes"
    );
    assert_eq!(
        rows[0][h.iter().position(|x| x == "Reported until").unwrap()],
        "2026-11-27 12:00:00"
    );
}

#[test]
fn a_month_with_no_data_at_all_still_renders_and_says_so() {
    let mut i = input("Asia/Shanghai", 2026, 10, sh("2026-11-05 08:00"));
    i.devices = vec![
        device("pump-1", DeviceClass::Pump, 98.0),
        device("lights-1", DeviceClass::Lighting, 99.0),
    ];
    let r = build(&i).unwrap();
    assert_eq!(r.devices.len(), 2);
    for d in &r.devices {
        assert_eq!(d.figures.availability, None);
        assert_eq!(d.figures.coverage, Some(0.0));
        assert_eq!(d.met, None);
        assert_eq!(d.figures.totals.unknown_ms, 31 * 24 * HOUR);
        assert!(d.days.iter().all(|x| x.availability.is_none() && !x.future));
    }
    assert!(r.classes.iter().all(|c| c.availability_met.is_none()
        && c.intact_rate.is_none()
        && c.intact_met.is_none()));
    assert_eq!(r.coverage.coverage, Some(0.0));
    assert_eq!(r.coverage.gaps.len(), 1);
    assert_eq!(r.coverage.gaps[0].reason, "no_record");
    assert_eq!(r.coverage.gaps[0].devices, ["lights-1", "pump-1"]);
    assert_eq!(r.tickets.figures.opened, 0);
    assert_eq!(r.kpis.timeliness, None);
    assert!(r.kpis.overnight_met);
    let zh = to_html(&r, Lang::Zh);
    assert!(zh.contains("无记录") && zh.contains("全部设备"));
    let (_, rows) = csv_section(&r, "devices", Lang::En);
    assert!(rows.iter().any(|row| row[0] == "pump-1"));

    // No devices at all: a report that says so.
    let empty = build(&input("Asia/Shanghai", 2026, 10, sh("2026-11-05 08:00"))).unwrap();
    assert!(empty.devices.is_empty() && empty.classes.is_empty());
    assert_eq!(empty.coverage.coverage, None);
    assert!(to_html(&empty, Lang::En).contains("No device was in service this month."));
}

#[test]
fn a_device_added_mid_month_is_judged_on_its_time_in_service() {
    let mut i = input("Asia/Shanghai", 2026, 11, sh("2026-12-01 09:00"));
    let added = sh("2026-11-20 00:00");
    let mut d = device("pump-9", DeviceClass::Pump, 98.0);
    d.known_from_ms = Some(added);
    i.devices = vec![d];
    i.intervals = chain(
        "pump-9",
        added,
        &[
            (Up, None, sh("2026-11-25 08:00")),
            (Down, Some("comms"), sh("2026-11-25 09:00")),
            (Up, None, sh("2026-12-01 09:00")),
        ],
    );
    let r = build(&i).unwrap();
    let d = &r.devices[0];
    assert_eq!(d.in_service_from_ms, added);
    assert_eq!(d.in_service_to_ms, sh("2026-12-01 00:00"));
    let in_service_h = 11.0 * 24.0;
    assert_eq!(
        d.figures.availability,
        Some((in_service_h - 1.0) / in_service_h)
    );
    assert_eq!(
        d.figures.incidents, 1,
        "its first fault after being added is an incident"
    );
    assert_eq!(d.figures.coverage, Some(in_service_h / 720.0));
    assert_eq!(d.service_coverage, Some(1.0));
    assert!(r.coverage.gaps.is_empty(), "{:?}", r.coverage.gaps);
    assert_eq!(r.coverage.in_service_ms, 11 * 24 * HOUR);
    assert_eq!(r.coverage.coverage, Some(1.0));
    assert!(d.days[18].availability.is_none() && d.days[19].availability == Some(1.0));
    assert!(to_html(&r, Lang::Zh).contains("在用期 自 11-20 00:00 起"));
}

#[test]
fn a_device_removed_mid_month_counts_until_it_was_removed() {
    let mut i = input("Asia/Shanghai", 2026, 11, sh("2026-12-01 09:00"));
    let removed = sh("2026-11-10 12:00");
    let mut d = device("fcu-1", DeviceClass::Hvac, 98.0);
    d.known_until_ms = Some(removed);
    // Removed long before: not in this month's report.
    let mut gone = device("fcu-0", DeviceClass::Hvac, 98.0);
    gone.known_until_ms = Some(sh("2026-09-01 00:00"));
    i.devices = vec![d, gone];
    // The store keeps the removed device's last interval open as unknown.
    i.intervals = chain(
        "fcu-1",
        sh("2026-10-01 00:00"),
        &[
            (Up, None, sh("2026-11-05 10:00")),
            (Down, Some("rule:fault"), sh("2026-11-05 16:00")),
            (Up, None, removed),
            (Unknown, Some("gateway_down"), sh("2026-12-01 09:00")),
        ],
    );
    let r = build(&i).unwrap();
    assert_eq!(
        r.devices.len(),
        1,
        "a device removed before the month is left out"
    );
    let d = &r.devices[0];
    assert_eq!(d.in_service_to_ms, removed);
    let service_h = 9.0 * 24.0 + 12.0;
    assert_eq!(d.figures.availability, Some((service_h - 6.0) / service_h));
    assert_eq!(d.figures.incidents, 1);
    assert_eq!(d.service_coverage, Some(1.0));
    assert!(r.coverage.gaps.is_empty(), "after removal is no gap");
    assert_eq!(r.coverage.in_service_ms, (service_h * HOUR as f64) as i64);
    assert_eq!(d.days[9].availability, Some(1.0));
    assert_eq!(d.days[10].availability, None);
    assert_eq!(r.classes[0].devices, 1);
}

#[test]
fn dst_months_in_berlin_hold_745_and_743_hours_and_their_change_days_25_and_23() {
    let berlin = tz("Europe/Berlin");
    // October 2026: clocks go back on Sunday 25 Oct (03:00 CEST → 02:00 CET).
    let mut i = input("Europe/Berlin", 2026, 10, at(berlin, "2026-11-02 00:00"));
    i.devices = vec![device("lights-1", DeviceClass::Lighting, 99.0)];
    i.intervals = chain(
        "lights-1",
        at(berlin, "2026-09-01 00:00"),
        &[
            (Up, None, at(berlin, "2026-10-25 01:00")),
            // 01:00 CEST to 02:30 CET is 2.5 h of real time.
            (
                Down,
                Some("comms"),
                at(berlin, "2026-10-25 01:00") + 150 * MIN,
            ),
            (Up, None, at(berlin, "2026-11-02 00:00")),
        ],
    );
    let r = build(&i).unwrap();
    assert_eq!(r.period.length_ms, 745 * HOUR);
    assert_eq!(r.period.from_ms, at(berlin, "2026-10-01 00:00"));
    let d = &r.devices[0];
    assert_eq!(d.days.len(), 31);
    assert_eq!(d.figures.availability, Some((745.0 - 2.5) / 745.0));
    let change = &d.days[24];
    assert_eq!(change.date, "2026-10-25");
    assert_eq!(change.availability, Some((25.0 - 2.5) / 25.0));
    assert_eq!(d.figures.totals.unknown_ms, 0);
    assert_eq!(d.met, Some(true), "99.66 % ≥ 99 %");

    // March 2026: clocks go forward on Sunday 29 Mar (02:00 → 03:00).
    let mut i = input("Europe/Berlin", 2026, 3, at(berlin, "2026-04-02 00:00"));
    i.devices = vec![device("lights-1", DeviceClass::Lighting, 99.0)];
    i.intervals = chain(
        "lights-1",
        at(berlin, "2026-02-01 00:00"),
        &[
            (Up, None, at(berlin, "2026-03-29 00:00")),
            (Down, Some("comms"), at(berlin, "2026-03-29 06:00")),
            (Up, None, at(berlin, "2026-04-02 00:00")),
        ],
    );
    let r = build(&i).unwrap();
    assert_eq!(r.period.length_ms, 743 * HOUR);
    let d = &r.devices[0];
    assert_eq!(
        d.figures.downtime_ms,
        5 * HOUR,
        "00:00 to 06:00 local is 5 h that night"
    );
    assert_eq!(d.figures.availability, Some(738.0 / 743.0));
    assert_eq!(d.days[28].availability, Some(18.0 / 23.0));
    assert_eq!(d.met, Some(true), "99.33 % ≥ 99 %");
}

#[test]
fn a_leap_year_february_has_29_days_and_696_hours() {
    let mut i = input("Asia/Shanghai", 2028, 2, sh("2028-03-10 00:00"));
    i.devices = vec![device("pump-1", DeviceClass::Pump, 98.0)];
    i.intervals = chain(
        "pump-1",
        sh("2028-01-01 00:00"),
        &[
            (Up, None, sh("2028-02-29 10:00")),
            (Down, Some("rule:fault"), sh("2028-02-29 22:00")),
            (Up, None, sh("2028-03-10 00:00")),
        ],
    );
    let r = build(&i).unwrap();
    assert_eq!(r.period.length_ms, 696 * HOUR);
    assert_eq!(r.period.to_ms, sh("2028-03-01 00:00"));
    let d = &r.devices[0];
    assert_eq!(d.days.len(), 29);
    assert_eq!(d.days[28].date, "2028-02-29");
    assert_eq!(d.days[28].availability, Some(0.5));
    assert_eq!(d.figures.availability, Some(684.0 / 696.0));
    assert_eq!(d.figures.mttr_ms, Some(12 * HOUR));
    // 2026 is not a leap year.
    let r = build(&input("Asia/Shanghai", 2026, 2, sh("2026-03-10 00:00"))).unwrap();
    assert_eq!(r.period.length_ms, 672 * HOUR);
}

#[test]
fn bad_months_future_months_and_unknown_zones_are_refused_clearly() {
    for bad in [
        "2026-13", "2026-00", "2026-1x", "26-11", "2026/11", "", "2026-111",
    ] {
        let e = parse_month(bad).unwrap_err();
        assert_eq!(e, ReportError::BadMonth(bad.to_owned()));
        assert!(e.to_string().contains("YYYY-MM"), "{e}");
    }
    assert_eq!(parse_month("2026-11").unwrap(), (2026, 11));
    assert_eq!(parse_month(" 2028-2 ").unwrap(), (2028, 2));

    let e = build(&input("Asia/Shanghai", 2026, 12, sh("2026-11-27 10:00"))).unwrap_err();
    assert!(matches!(e, ReportError::FutureMonth { .. }), "{e:?}");
    assert_eq!(
        e.to_string(),
        "month 2026-12 has not begun yet (it starts 2026-12-01 00:00 in Asia/Shanghai); give this month or an earlier one"
    );
    // The first instant of the month is enough.
    assert!(build(&input("Asia/Shanghai", 2026, 12, sh("2026-12-01 00:00"))).is_ok());

    let e = build(&input("Mars/Olympus", 2026, 11, sh("2026-11-27 10:00"))).unwrap_err();
    assert!(e.to_string().contains("unknown time zone"), "{e}");
    let e = build(&input("Asia/Shanghai", 2026, 13, sh("2026-11-27 10:00"))).unwrap_err();
    assert!(e.to_string().contains("does not exist"), "{e}");
}

#[test]
fn lang_parses_the_usual_spellings() {
    assert_eq!(Lang::parse("zh"), Some(Lang::Zh));
    assert_eq!(Lang::parse("zh-CN"), Some(Lang::Zh));
    assert_eq!(Lang::parse("EN"), Some(Lang::En));
    assert_eq!(Lang::parse("fr"), None);
    assert_eq!(Lang::default(), Lang::Zh);
}

#[test]
fn html_escapes_names_and_css_strings() {
    let mut i = input("Asia/Shanghai", 2026, 11, sh("2026-12-01 09:00"));
    i.site.name = "A \"quoted\" <site> & co\\".to_owned();
    let mut d = device("x", DeviceClass::Other, 98.0);
    d.name_zh = "<script>alert(1)</script>".to_owned();
    i.devices = vec![d];
    let html = to_html(&build(&i).unwrap(), Lang::Zh);
    assert!(!html.contains("<script>"));
    assert!(html.contains("&lt;script&gt;"));
    assert!(
        html.contains(r#"A \"quoted\" \3C site\3E  & co\\"#),
        "CSS string escaped"
    );
    assert!(html.contains("A &quot;quoted&quot; &lt;site&gt; &amp; co\\"));
}

mod properties {
    use proptest::prelude::*;

    use super::*;

    fn state() -> impl Strategy<Value = DeviceState> {
        prop_oneof![Just(Up), Just(Down), Just(Maintenance), Just(Unknown)]
    }

    proptest! {
        /// Whatever the history, in a zone with DST: the daily strip adds up
        /// to the month, the month's four totals to its length, and the
        /// device figures are the ledger's.
        #[test]
        fn days_add_up_to_the_month_and_figures_are_the_ledgers(
            steps in proptest::collection::vec((state(), 1_i64..(72 * HOUR)), 1..40),
            start_offset in 0_i64..(40 * 24 * HOUR),
        ) {
            let berlin = tz("Europe/Berlin");
            let start = at(berlin, "2026-09-25 00:00") + start_offset;
            let mut t = start;
            let steps: Vec<(DeviceState, Option<&str>, UnixMs)> = steps
                .iter()
                .map(|(s, len)| {
                    t += len;
                    (*s, None, t)
                })
                .collect();
            let ivs = chain("d", start, &steps);
            let mut i = input("Europe/Berlin", 2026, 10, at(berlin, "2026-11-05 00:00"));
            i.devices = vec![device("d", DeviceClass::Hvac, 98.0)];
            i.intervals = ivs.clone();
            let r = build(&i).unwrap();
            let d = &r.devices[0];
            let f = &d.figures;
            prop_assert_eq!(f.totals.total_ms(), 745 * HOUR);
            let sum = |g: fn(&DayFigure) -> i64| d.days.iter().map(g).sum::<i64>();
            prop_assert_eq!(sum(|x| x.down_ms), f.totals.down_ms);
            prop_assert_eq!(sum(|x| x.maintenance_ms), f.totals.maintenance_ms);
            prop_assert_eq!(sum(|x| x.unknown_ms), f.totals.unknown_ms);
            let ledger = crate::ledger::device_figures(&ivs, r.period.from_ms, r.period.to_ms);
            prop_assert_eq!(f, &ledger);
            let gaps: i64 = r.coverage.gaps.iter().map(|g| g.to_ms - g.from_ms).sum();
            prop_assert_eq!(gaps + r.coverage.short_gaps_ms, f.totals.unknown_ms);
            prop_assert_eq!(r.coverage.known_ms + f.totals.unknown_ms, 745 * HOUR);
        }
    }
}

/// The ticket example of `docs/availability.md`: a ticket falling due in
/// the next month, never touched.
#[test]
fn the_ticket_example_of_the_availability_doc_holds() {
    let cfg = TicketsConfig::default();
    let mut book = TicketBook::new(&cfg, tz("Asia/Shanghai"), Vec::new(), 1);
    let pump = |id| DeviceRef {
        id,
        class: DeviceClass::Pump,
    };
    book.on_availability_below(pump("pump-3"), 0.9, 98.0, None, sh("2026-04-30 20:00"));
    assert_eq!(book.get(1).unwrap().deadline_ms, sh("2026-05-01 18:00"));
    let untouched: Vec<Ticket> = book.tickets().cloned().collect();
    let report = |year, month, now, tickets: &[Ticket]| {
        let mut i = input("Asia/Shanghai", year, month, now);
        i.tickets = tickets.to_vec();
        build(&i).unwrap()
    };

    let april = report(2026, 4, sh("2026-05-02 09:00"), &untouched);
    assert_eq!(april.tickets.figures.opened, 1);
    assert_eq!(april.kpis.overnight, 0);
    assert!(april.tickets.missed.is_empty());
    let may = report(2026, 5, sh("2026-05-02 09:00"), &untouched);
    assert_eq!(may.tickets.figures.opened, 0);
    assert_eq!(may.kpis.overnight, 1);
    assert_eq!(
        may.tickets.missed,
        [MissedDeadline {
            ticket: 1,
            device: "pump-3".to_owned(),
            class: DeviceClass::Pump,
            severity: crate::tickets::Severity::Ordinary,
            summary: book.get(1).unwrap().summary.clone(),
            start_ms: sh("2026-04-30 20:00"),
            deadline_ms: sh("2026-05-01 18:00"),
            resolved_ms: None,
        }]
    );

    // The whole of May, with #2 opened 6 May 09:00 and resolved 7 May 08:30.
    book.on_availability_below(pump("pump-4"), 0.9, 98.0, None, sh("2026-05-06 09:00"));
    book.resolve(2, "li", "", sh("2026-05-07 08:30")).unwrap();
    let all: Vec<Ticket> = book.tickets().cloned().collect();
    let may = report(2026, 5, sh("2026-06-01 09:00"), &all);
    let f = &may.tickets.figures;
    assert_eq!((f.opened, f.resolved, f.on_time), (1, 1, 0));
    assert_eq!(f.timeliness, Some(0.0));
    assert_eq!(f.repair_median_ms, Some(23 * HOUR + 30 * MIN));
    assert_eq!(may.kpis.overnight, 2);
    let missed: Vec<(u64, UnixMs, Option<UnixMs>)> = may
        .tickets
        .missed
        .iter()
        .map(|m| (m.ticket, m.deadline_ms, m.resolved_ms))
        .collect();
    assert_eq!(
        missed,
        [
            (1, sh("2026-05-01 18:00"), None),
            (2, sh("2026-05-06 18:00"), Some(sh("2026-05-07 08:30"))),
        ]
    );
}

#[test]
fn the_report_names_classes_and_figures_as_the_glossary_does() {
    use crate::glossary;
    let report = build(&scripted_input(sh("2026-12-02 09:00"))).unwrap();
    for (lang, zh) in [(Lang::Zh, true), (Lang::En, false)] {
        let html = to_html(&report, lang);
        for c in &report.classes {
            let name = glossary::class(c.class).pick(zh);
            assert!(html.contains(name), "{lang:?}: class {name:?} missing");
        }
        for t in [
            glossary::AVAILABILITY,
            glossary::INTACT_RATE,
            glossary::DAILY_AVAILABILITY,
        ] {
            assert!(html.contains(t.pick(zh)), "{lang:?}: {t:?} missing");
        }
        for old in glossary::RETIRED {
            assert!(!html.contains(old), "{lang:?}: retired name {old:?}");
        }
    }
}

#[test]
fn the_method_section_states_the_time_resolution_of_comms_outages() {
    let report = build(&scripted_input(sh("2026-12-02 09:00"))).unwrap();
    for (lang, heading) in [(Lang::Zh, "时间精度"), (Lang::En, "Time resolution")] {
        let html = to_html(&report, lang);
        assert!(html.contains(heading), "{lang:?}: {heading} missing");
        assert!(html.contains("recovery_resolution"), "{lang:?}");
        assert!(html.contains("probe_interval_max"), "{lang:?}");
    }
}
