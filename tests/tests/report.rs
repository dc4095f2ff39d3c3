//! The monthly report end to end: the demo building runs for a while, then
//! `gateway report` renders the month to HTML, CSV and JSON, real headless
//! Chromium prints the HTML to an A4 PDF, and poppler's `pdfinfo` and
//! `pdftotext` check the page count, the page margins (site, period,
//! page n of N) and that no table is cut (every device row of a table on the
//! page of its table). Needs chromium, poppler-utils and a CJK font
//! (fonts-wqy-microhei); `.ci/run` installs them.
//!
//! And the report a dashboard rebuilds from what the demo published to a
//! real Mosquitto (`event` and `tickets/{id}` topics) with the core ledger
//! equals the gateway's own, figure for figure.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bms_e2e::{bin, require_tool, run_with_timeout, workspace_root};

/// The demo building's devices.
const DEVICES: [&str; 19] = [
    "pump-1",
    "pump-2",
    "fire-water-1",
    "leak-b1-1",
    "leak-b1-2",
    "spd-1",
    "meter-main",
    "meter-lighting",
    "meter-hvac",
    "breakers-1",
    "breakers-2",
    "lift-1",
    "fire-panel-1",
    "lights-lobby",
    "lights-garden",
    "lights-show-flat",
    "fcu-lobby",
    "fcu-vip",
    "fcu-office",
];

fn require_cjk_font() {
    let (code, out, _) = run_with_timeout(
        Command::new("fc-list").arg(":lang=zh"),
        Duration::from_secs(20),
    )
    .expect("fc-list (fontconfig) must run");
    assert!(
        code == Some(0) && !out.trim().is_empty(),
        "no Chinese font is installed; install fonts-wqy-microhei (.ci/run installs it)"
    );
}

/// `gateway report …` with the demo's data dir; (exit code, stdout, stderr).
fn report(env_data: &Path, args: &[&str]) -> (Option<i32>, String, String) {
    let demo = workspace_root().join("config/demo.toml");
    run_with_timeout(
        Command::new(bin("gateway"))
            .arg("report")
            .arg("--config")
            .arg(&demo)
            .args(args)
            .env("BMS_DATA_DIR", env_data),
        Duration::from_secs(60),
    )
    .unwrap()
}

/// Prints `html` to `pdf` with headless Chromium (its own profile dir).
fn print_pdf(html: &Path, pdf: &Path) {
    let profile = tempfile::tempdir().unwrap();
    let (code, out, err) = run_with_timeout(
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
                "--no-pdf-header-footer",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("--print-to-pdf={}", pdf.display()))
            .arg(format!("file://{}", html.display())),
        Duration::from_secs(120),
    )
    .unwrap();
    assert_eq!(code, Some(0), "chromium failed:\n{out}\n{err}");
    assert!(pdf.is_file(), "no PDF written:\n{out}\n{err}");
}

fn pages(pdf: &Path) -> usize {
    let (code, out, err) =
        run_with_timeout(Command::new("pdfinfo").arg(pdf), Duration::from_secs(30)).unwrap();
    assert_eq!(code, Some(0), "{err}");
    let line = out
        .lines()
        .find(|l| l.starts_with("Pages:"))
        .unwrap_or_else(|| panic!("no page count in\n{out}"));
    line["Pages:".len()..].trim().parse().unwrap()
}

fn page_text(pdf: &Path, page: usize) -> String {
    let n = page.to_string();
    let (code, out, err) = run_with_timeout(
        Command::new("pdftotext")
            .args(["-layout", "-f", &n, "-l", &n])
            .arg(pdf)
            .arg("-"),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(code, Some(0), "{err}");
    out
}

/// The footer of page n of N.
type Footer = fn(usize, usize) -> String;

/// Section titles and page footers per language: (sections by page, footer).
fn expected(lang: &str) -> ([&'static str; 5], Footer) {
    match lang {
        "zh" => (
            [
                "1. 概览",
                "2. 设备明细",
                "2.1 每日设备完好率",
                "3. 工单",
                "4. 数据覆盖与统计方法",
            ],
            |n, total| format!("第 {n} 页，共 {total} 页"),
        ),
        _ => (
            [
                "1. Summary",
                "2. Per device",
                "2.1 Daily availability",
                "3. Tickets",
                "4. Data coverage and method",
            ],
            |n, total| format!("page {n} of {total}"),
        ),
    }
}

/// CSV text (RFC 4180 quoting, CRLF line ends) as rows of cells.
fn csv_rows(text: &str) -> Vec<Vec<String>> {
    let (mut rows, mut row, mut cell) = (Vec::new(), Vec::new(), String::new());
    let (mut quoted, mut chars) = (false, text.chars().peekable());
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
            (false, '\r') => {}
            (false, '\n') => {
                row.push(std::mem::take(&mut cell));
                rows.push(std::mem::take(&mut row));
            }
            (false, c) => cell.push(c),
        }
    }
    rows
}

#[test]
#[ignore = "needs chromium, poppler-utils and a CJK font (.ci/run installs them)"]
fn the_demo_month_prints_to_five_a4_pages_with_no_table_cut() {
    require_tool("chromium", "apt-get install chromium").unwrap();
    require_tool("pdftotext", "apt-get install poppler-utils").unwrap();
    require_tool("fc-list", "apt-get install fontconfig").unwrap();
    require_cjk_font();

    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let demo = workspace_root().join("config/demo.toml");
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(["demo", "--seconds", "100", "--every", "50", "--data-dir"])
            .arg(&data)
            .arg("--config")
            .arg(&demo),
        Duration::from_secs(160),
    )
    .unwrap();
    assert_eq!(code, Some(0), "{out}\n{err}");

    let month = bms_e2e::this_month_in("Asia/Shanghai").unwrap();
    // JSON: the figures, for the month in progress.
    let (code, json, err) = report(&data, &["--month", &month, "--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let v: serde_json::Value = serde_json::from_str(&json).unwrap();
    assert_eq!(v["period"]["month"], month.as_str());
    assert_eq!(v["period"]["in_progress"], true);
    let devices = v["devices"].as_array().unwrap();
    assert_eq!(devices.len(), DEVICES.len(), "{json}");
    for id in DEVICES {
        assert!(devices.iter().any(|d| d["id"] == id), "{id} missing");
    }
    // The demo story trips pump-2 and the fire panel: below target, listed first.
    let worst: Vec<&str> = devices[..2]
        .iter()
        .map(|d| d["id"].as_str().unwrap())
        .collect();
    assert!(
        worst.contains(&"pump-2") && worst.contains(&"fire-panel-1"),
        "{worst:?}"
    );
    assert!(v["tickets"]["figures"]["opened"].as_u64().unwrap() >= 2);
    // The demo polled all the time it ran (the seconds after its start
    // before each device answers are the only stretches without data).
    let coverage = v["coverage"]["coverage"].as_f64().unwrap();
    assert!(coverage > 0.9, "{:#}", v["coverage"]);

    // CSV: one table per file, UTF-8 with a BOM; the same devices and
    // figures, rounded for people (two decimals of a percentage).
    let csv_path = dir.path().join("r.csv");
    let (code, _, err) = report(
        &data,
        &[
            "--month",
            &month,
            "--section",
            "devices",
            "--lang",
            "en",
            "--out",
            csv_path.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    let csv = std::fs::read_to_string(&csv_path).unwrap();
    let csv = csv_rows(csv.strip_prefix('\u{feff}').expect("a BOM"));
    let col = csv[0].iter().position(|h| h == "Availability (%)").unwrap();
    for d in devices {
        let id = d["id"].as_str().unwrap();
        let availability = d["figures"]["availability"]
            .as_f64()
            .map_or_else(String::new, |a| format!("{:.2}", a * 100.0));
        let row = csv
            .iter()
            .find(|r| r[0] == id)
            .unwrap_or_else(|| panic!("no CSV row for {id}"));
        assert_eq!(
            row[col], availability,
            "{id}: JSON availability {availability}, CSV row {row:?}"
        );
    }
    // A folder: one file per section.
    let folder = dir.path().join("csv");
    let (code, _, err) = report(
        &data,
        &[
            "--month",
            &month,
            "--out",
            &format!("{}/", folder.display()),
        ],
    );
    assert_eq!(code, Some(0), "{err}");
    assert_eq!(std::fs::read_dir(&folder).unwrap().count(), 12);

    // xlsx: one sheet per section, read back with openpyxl; the cells hold
    // the JSON's exact figures (percentages as fractions with a % format).
    let xlsx_path = dir.path().join("r.xlsx");
    let (code, _, err) = report(
        &data,
        &["--month", &month, "--out", xlsx_path.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{err}");
    let script = r#"
import json, sys, openpyxl
wb = openpyxl.load_workbook(sys.argv[1])
out = {"sheets": wb.sheetnames}
ws = wb["设备明细"]
rows = list(ws.iter_rows(values_only=True))
head = list(rows[0])
a, fmt = head.index("设备完好率（%）"), ws.cell(row=2, column=head.index("设备完好率（%）") + 1).number_format
out["format"] = fmt
out["devices"] = {r[0]: r[a] for r in rows[1:]}
print(json.dumps(out))
"#;
    let py = Command::new("python3")
        .arg("-c")
        .arg(script)
        .arg(&xlsx_path)
        .output()
        .unwrap();
    assert!(
        py.status.success(),
        "openpyxl (pip install openpyxl): {}",
        String::from_utf8_lossy(&py.stderr)
    );
    let book: serde_json::Value = serde_json::from_slice(&py.stdout).unwrap();
    assert_eq!(book["sheets"].as_array().unwrap().len(), 12, "{book}");
    assert_eq!(book["sheets"][3], "设备明细");
    assert_eq!(book["format"], "0.00%");
    for d in devices {
        let id = d["id"].as_str().unwrap();
        // (openpyxl reads a whole number as an int: compare as numbers.)
        assert_eq!(
            book["devices"][id].as_f64(),
            d["figures"]["availability"].as_f64(),
            "{id}: the sheet holds the exact figure"
        );
    }

    for lang in ["zh", "en"] {
        let html = dir.path().join(format!("r-{lang}.html"));
        let pdf = dir.path().join(format!("r-{lang}.pdf"));
        let (code, _, err) = report(
            &data,
            &[
                "--month",
                &month,
                "--lang",
                lang,
                "--out",
                html.to_str().unwrap(),
            ],
        );
        assert_eq!(code, Some(0), "{err}");
        print_pdf(&html, &pdf);
        let (sections, footer) = expected(lang);
        let total = pages(&pdf);
        assert_eq!(total, 5, "{lang}: one page per section");
        for (i, section) in sections.iter().enumerate() {
            let n = i + 1;
            let text = page_text(&pdf, n);
            assert!(
                text.contains(section),
                "{lang} page {n}: {section:?} missing:\n{text}"
            );
            assert!(
                text.contains(&footer(n, total)),
                "{lang} page {n}: footer missing:\n{text}"
            );
            assert!(
                text.contains("demo-sales-centre"),
                "{lang} page {n}: header missing"
            );
        }
        // Whole tables: every device row on the page of its table.
        for n in [2, 3] {
            let text = page_text(&pdf, n);
            for id in DEVICES {
                assert!(
                    text.contains(id),
                    "{lang} page {n}: row of {id} not on its table's page"
                );
            }
        }
        let summary = page_text(&pdf, 1);
        let kpi = if lang == "zh" {
            "维修及时率"
        } else {
            "Repair timeliness"
        };
        assert!(summary.contains(kpi), "{summary}");
    }
}

#[test]
fn bad_months_future_months_and_unknown_sites_are_refused_with_exit_64() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (code, _, err) = report(&data, &["--month", "2026-13"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("\"2026-13\" is not a calendar month; write it as YYYY-MM"),
        "{err}"
    );
    let (code, _, err) = report(&data, &["--month", "2026-11", "--site", "elsewhere"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("unknown site \"elsewhere\""), "{err}");
    let (code, _, err) = report(&data, &["--month", "2026-11", "--lang", "fr"]);
    assert_eq!(code, Some(64), "{err}");

    // A future month needs a store to get that far: make one by a short demo.
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(["demo", "--seconds", "3", "--every", "3", "--data-dir"])
            .arg(&data)
            .arg("--config")
            .arg(workspace_root().join("config/demo.toml")),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(code, Some(0), "{out}\n{err}");
    let (code, _, err) = report(&data, &["--month", "2999-01"]);
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains(
            "month 2999-01 has not begun yet (it starts 2999-01-01 00:00 in Asia/Shanghai)"
        ),
        "{err}"
    );
}

#[test]
#[ignore = "needs Mosquitto (.ci/run installs it)"]
fn the_report_rebuilt_from_mqtt_events_equals_the_gateways_own() {
    use gateway_core::ledger::Ledger;
    use gateway_core::model::DeviceClass;
    use gateway_core::report::{CatalogueDevice, ReportInput, SiteInfo, build, parse_month};
    use gateway_core::state::{DeviceState, Interval, Transition};
    use gateway_core::tickets::Ticket;

    require_tool("mosquitto_sub", "apt-get install mosquitto-clients").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let (_broker, port) = bms_e2e::start_mosquitto(dir.path()).unwrap();
    let mut sub = bms_e2e::Proc::spawn(
        "mosquitto_sub",
        Command::new("mosquitto_sub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-v",
            "-t",
            "bms/+/+/+/event",
            "-t",
            "bms/+/+/tickets/+",
        ]),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(["demo", "--seconds", "100", "--every", "50", "--data-dir"])
            .arg(&data)
            .arg("--mqtt-url")
            .arg(format!("mqtt://127.0.0.1:{port}"))
            .arg("--config")
            .arg(workspace_root().join("config/demo.toml")),
        Duration::from_secs(160),
    )
    .unwrap();
    assert_eq!(code, Some(0), "{out}\n{err}");
    std::thread::sleep(Duration::from_secs(1));
    let lines = sub.output();

    // The gateway's own report (stopped: open intervals end at its last heartbeat).
    let month = bms_e2e::this_month_in("Asia/Shanghai").unwrap();
    let (code, json, err) = report(&data, &["--month", &month, "--format", "json"]);
    assert_eq!(code, Some(0), "{err}");
    let local: serde_json::Value = serde_json::from_str(&json).unwrap();
    let now = local["generated_ms"].as_i64().unwrap();
    let db = rusqlite::Connection::open(data.join("gateway.db")).unwrap();
    let heartbeat: i64 = db
        .query_row(
            "SELECT value FROM meta WHERE key = 'heartbeat_ms'",
            [],
            |r| r.get(0),
        )
        .unwrap();

    // The dashboard's side: the ledger rebuilt from the event topic, the
    // tickets as their topic last showed them.
    let mut ledger = Ledger::new(Duration::from_secs(400 * 86_400));
    let mut intervals: Vec<Interval> = Vec::new();
    let mut tickets = std::collections::BTreeMap::<u64, Ticket>::new();
    let mut seen_seq = std::collections::BTreeSet::new();
    for line in lines.lines() {
        let Some((topic, payload)) = line.split_once(' ') else {
            continue;
        };
        let v: serde_json::Value = serde_json::from_str(payload).unwrap();
        if !seen_seq.insert(v["seq"].as_u64().unwrap()) {
            continue;
        }
        if topic.contains("/tickets/") {
            let t: Ticket = serde_json::from_value(v["ticket"].clone()).unwrap();
            tickets.insert(t.id, t);
        } else if v["type"] == "transition" {
            let t = Transition {
                device: v["device"].as_str().unwrap().to_owned(),
                from: DeviceState::parse(v["from"].as_str().unwrap()).unwrap(),
                to: DeviceState::parse(v["to"].as_str().unwrap()).unwrap(),
                reason: v["reason"].as_str().map(str::to_owned),
                at_ms: v["at"].as_i64().unwrap(),
            };
            intervals.extend(ledger.apply(&t));
        }
    }
    // The gateway went offline at its last heartbeat.
    let devices: Vec<String> = ledger.devices().map(str::to_owned).collect();
    for d in &devices {
        let (state, _, _) = ledger.current(d).unwrap();
        let t = Transition {
            device: d.clone(),
            from: state,
            to: DeviceState::Unknown,
            reason: Some("gateway_down".to_owned()),
            at_ms: heartbeat,
        };
        intervals.extend(ledger.apply(&t));
        let (state, reason, since) = ledger.current(d).unwrap();
        intervals.push(Interval {
            device: d.clone(),
            state,
            reason,
            from_ms: since,
            to_ms: now,
        });
    }
    let class = |s: &str| {
        DeviceClass::ALL
            .into_iter()
            .find(|c| c.as_str() == s)
            .unwrap()
    };
    let catalogue = local["devices"]
        .as_array()
        .unwrap()
        .iter()
        .map(|d| {
            let id = d["id"].as_str().unwrap().to_owned();
            let first = intervals
                .iter()
                .filter(|i| i.device == id)
                .map(|i| i.from_ms)
                .min();
            CatalogueDevice {
                known_from_ms: first,
                known_until_ms: None,
                name_zh: d["name_zh"].as_str().unwrap().to_owned(),
                name_en: d["name_en"].as_str().unwrap().to_owned(),
                class: class(d["class"].as_str().unwrap()),
                location: d["location"].as_str().unwrap().to_owned(),
                target_percent: d["target_percent"].as_f64().unwrap(),
                id,
            }
        })
        .collect();
    let (year, month_no) = parse_month(&month).unwrap();
    let central = build(&ReportInput {
        site: SiteInfo {
            id: "demo-sales-centre".to_owned(),
            name: "demo-sales-centre".to_owned(),
            timezone: "Asia/Shanghai".to_owned(),
        },
        year,
        month: month_no,
        now_ms: now,
        devices: catalogue,
        intervals,
        tickets: tickets.into_values().collect(),
        windows: Vec::new(),
        class_targets: Default::default(),
    })
    .unwrap();
    let central: serde_json::Value =
        serde_json::from_str(&gateway_core::report::to_json(&central).unwrap()).unwrap();
    assert!(local["tickets"]["figures"]["opened"].as_u64().unwrap() >= 2);
    for key in [
        "period", "classes", "kpis", "devices", "tickets", "coverage",
    ] {
        assert_eq!(
            local[key], central[key],
            "{key}: the gateway's report and the one rebuilt from MQTT differ"
        );
    }
}
