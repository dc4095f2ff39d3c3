//! The core end to end: `gateway simulate` + `gateway run` with its engine
//! (health, ledger, tickets in SQLite), faults injected through the
//! simulator's control interface, the CLI against the running gateway, and
//! SIGKILL in the middle of it all. The database is read here with SQL,
//! independently of the gateway's own store code.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bms_e2e::{Proc, bin, demo_config, demo_env, http, run_with_timeout, workspace_root};

fn test_config(dir: &Path) -> PathBuf {
    demo_config(dir, "").unwrap()
}

fn start_sim(config: &Path, env: &[(String, String)]) -> Proc {
    bms_e2e::start_sim(config, env).unwrap()
}

fn start_gateway(config: &Path, env: &[(String, String)]) -> Proc {
    bms_e2e::start_gateway(config, env).unwrap()
}

fn inject(control: &str, body: &str) {
    let (status, answer) = http("POST", control, "/faults", body).unwrap();
    assert_eq!(status, 201, "{answer}");
}

/// `gateway <args> --config F` with the test's environment; JSON stdout.
fn cli_json(config: &Path, env: &[(String, String)], args: &[&str]) -> serde_json::Value {
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(args)
            .arg("--config")
            .arg(config)
            .envs(env.iter().cloned()),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(code, Some(0), "gateway {args:?}:\n{out}\n{err}");
    serde_json::from_str(&out).unwrap_or_else(|e| panic!("not JSON ({e}): {out}"))
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

#[derive(Debug, Clone, PartialEq)]
struct Row {
    state: String,
    reason: Option<String>,
    from: i64,
    to: Option<i64>,
}

/// Every interval by device, in time order, read with SQL.
fn intervals(data: &Path) -> BTreeMap<String, Vec<Row>> {
    let db = rusqlite::Connection::open(data.join("gateway.db")).unwrap();
    let mut stmt = db
        .prepare(
            "SELECT device, state, reason, from_ms, to_ms FROM intervals ORDER BY device, from_ms",
        )
        .unwrap();
    let mut out: BTreeMap<String, Vec<Row>> = BTreeMap::new();
    let rows = stmt
        .query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                Row {
                    state: r.get(1)?,
                    reason: r.get(2)?,
                    from: r.get(3)?,
                    to: r.get(4)?,
                },
            ))
        })
        .unwrap();
    for row in rows {
        let (device, row) = row.unwrap();
        out.entry(device).or_default().push(row);
    }
    out
}

#[test]
fn faults_in_the_building_become_tickets_that_the_cli_can_acknowledge() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let (env, control) = demo_env(dir.path());
    let _sim = start_sim(&config, &env);
    let mut gw = start_gateway(&config, &env);

    // Some Up time first, then pump 1 stops answering and the fire panel
    // reports a fault.
    std::thread::sleep(Duration::from_secs(8));
    inject(&control, r#"{"device":"pump-1","fault":"no_response"}"#);
    let injected_ms = now_ms();
    inject(
        &control,
        r#"{"device":"fire-panel-1","fault":"fault_bit","point":"fault"}"#,
    );

    let deadline = Instant::now() + Duration::from_secs(60);
    let (availability, alarm) = loop {
        let list = cli_json(&config, &env, &["tickets", "list", "--json"]);
        let find = |device: &str, kind: &str| {
            list.as_array()
                .unwrap()
                .iter()
                .find(|t| t["device"] == device && t["kind"] == kind && t["state"] == "open")
                .cloned()
        };
        if let (Some(a), Some(b)) = (
            find("pump-1", "availability"),
            find("fire-panel-1", "alarm:fault"),
        ) {
            break (a, b);
        }
        assert!(
            Instant::now() < deadline,
            "no tickets within 60 s: {list:#}\n{}",
            gw.output()
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    assert_eq!(availability["severity"], "ordinary");
    assert!(
        availability["summary"]
            .as_str()
            .unwrap()
            .contains("低于目标 98%"),
        "{availability}"
    );
    assert_eq!(alarm["severity"], "critical");
    // Within one fast poll (250 ms for the panel) of the register changing,
    // which the simulator does at its next tick (500 ms); 250 ms of slack.
    let took = alarm["opened_ms"].as_i64().unwrap() - injected_ms;
    eprintln!("critical ticket opened {took} ms after the fault was injected");
    assert!(took <= 1_000, "critical ticket after {took} ms");
    // Critical: due two hours after opening.
    assert_eq!(
        alarm["deadline_ms"].as_i64().unwrap() - alarm["opened_ms"].as_i64().unwrap(),
        2 * 3600 * 1000
    );

    // The pump is Down (comms), the panel too (its panel_fault rule).
    let status = cli_json(&config, &env, &["status", "--json"]);
    let row = |id: &str| {
        status["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["device"] == id)
            .cloned()
            .unwrap()
    };
    assert_eq!(row("pump-1")["state"], "down", "{status:#}");
    assert_eq!(row("pump-1")["reason"], "comms");
    assert_eq!(row("fire-panel-1")["reason"], "rule:panel_fault");
    assert_eq!(row("meter-main")["state"], "up");

    // Acknowledged through the running gateway (queued command, answered).
    let id = alarm["id"].as_u64().unwrap().to_string();
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(["tickets", "ack", &id, "--by", "张工", "--note", "到场处理"])
            .arg("--config")
            .arg(&config)
            .envs(env.iter().cloned()),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(code, Some(0), "{out}\n{err}");
    let shown = cli_json(&config, &env, &["tickets", "show", &id, "--json"]);
    assert_eq!(shown["ticket"]["state"], "acknowledged", "{shown:#}");
    assert_eq!(shown["ticket"]["acknowledged"]["by"], "张工");

    // The fault clears: the panel's ticket records the recovery, stays for a person.
    let (status, _) = http("DELETE", &control, "/faults", "").unwrap();
    assert_eq!(status, 204);
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let t = cli_json(&config, &env, &["tickets", "show", &id, "--json"]);
        if !t["ticket"]["recovered_ms"].is_null() {
            assert_eq!(t["ticket"]["state"], "acknowledged");
            break;
        }
        assert!(Instant::now() < deadline, "no recovery: {t:#}");
        std::thread::sleep(Duration::from_millis(500));
    }
    assert_eq!(gw.interrupt(Duration::from_secs(10)).unwrap(), Some(0));
}

#[test]
fn sigkill_four_times_loses_no_interval_and_duplicates_no_ticket() {
    let dir = tempfile::tempdir().unwrap();
    let config = test_config(dir.path());
    let (env, control) = demo_env(dir.path());
    let data = dir.path().join("data");
    let _sim = start_sim(&config, &env);
    // A fault that lasts through every restart: its ticket must stay one.
    inject(
        &control,
        r#"{"device":"fire-panel-1","fault":"fault_bit","point":"fault"}"#,
    );

    let kills = 4;
    for round in 0..kills {
        let mut gw = start_gateway(&config, &env);
        // Long enough for heartbeats and transitions, varied per round.
        std::thread::sleep(Duration::from_millis(3_000 + 1_700 * round));
        gw.kill9().unwrap();
    }
    let mut gw = start_gateway(&config, &env);
    std::thread::sleep(Duration::from_secs(4));
    assert_eq!(gw.interrupt(Duration::from_secs(10)).unwrap(), Some(0));

    let all = intervals(&data);
    assert_eq!(all.len(), 19, "{:?}", all.keys());
    for (device, rows) in &all {
        for w in rows.windows(2) {
            assert_eq!(
                w[0].to,
                Some(w[1].from),
                "{device}: a hole or an overlap between {:?} and {:?}",
                w[0],
                w[1]
            );
            assert!(w[0].to.unwrap() > w[0].from, "{device}: empty {:?}", w[0]);
        }
        let open: Vec<&Row> = rows.iter().filter(|r| r.to.is_none()).collect();
        assert_eq!(open.len(), 1, "{device}: one open interval, the last");
        assert!(rows.last().unwrap().to.is_none());
        let gaps = rows
            .iter()
            .filter(|r| r.state == "unknown" && r.reason.as_deref() == Some("gateway_down"))
            .count();
        assert!(
            gaps >= kills as usize,
            "{device}: {gaps} gateway_down gaps for {kills} kills: {rows:#?}"
        );
        assert!(
            rows.iter().any(|r| r.state != "unknown"),
            "{device} was never seen: {rows:#?}"
        );
    }

    let db = rusqlite::Connection::open(data.join("gateway.db")).unwrap();
    let duplicates: i64 = db
        .query_row(
            "SELECT COUNT(*) FROM (SELECT device, kind FROM tickets
             WHERE state IN ('open', 'acknowledged') GROUP BY device, kind HAVING COUNT(*) > 1)",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(duplicates, 0);
    let panel: Vec<(String, String)> = db
        .prepare("SELECT kind, state FROM tickets WHERE device = 'fire-panel-1'")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    assert!(
        panel.contains(&("alarm:fault".to_owned(), "open".to_owned())),
        "{panel:?}"
    );
    assert_eq!(
        panel.iter().filter(|(k, _)| k == "alarm:fault").count(),
        1,
        "one ticket across five starts: {panel:?}"
    );
    let reworks: i64 = db
        .query_row(
            "SELECT COALESCE(SUM(json_extract(json, '$.reworks')), 0) FROM tickets",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(reworks, 0, "a restart is not a rework");
}

/// `test_config` with `old` replaced by `new` (which must be found).
fn variant(dir: &Path, name: &str, old: &str, new: &str) -> PathBuf {
    let text = std::fs::read_to_string(test_config(dir)).unwrap();
    assert!(text.contains(old), "{old:?} not in the demo config");
    let file = dir.join(name);
    std::fs::write(&file, text.replacen(old, new, 1)).unwrap();
    file
}

fn gateway(args: &[&str], config: &Path, env: &[(String, String)]) -> (Option<i32>, String) {
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(args)
            .arg("--config")
            .arg(config)
            .envs(env.iter().cloned()),
        Duration::from_secs(30),
    )
    .unwrap();
    (code, format!("{out}{err}"))
}

#[test]
fn bad_rules_windows_and_commands_are_refused_clearly_and_change_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let (env, _) = demo_env(dir.path());
    let pump = "unit = 1\nprofile = \"pump-vfd\"\n";

    // A malformed rule: where, what, and what was expected.
    let f = variant(
        dir.path(),
        "malformed.toml",
        pump,
        &format!("{pump}health = {{ dry = \"outlet_pressure <> 2\" }}\n"),
    );
    let (code, out) = gateway(&["check"], &f, &env);
    assert_eq!(code, Some(64), "{out}");
    assert!(
        out.contains(r#"device "pump-1" health "dry""#) && out.contains("\"outlet_pressure <> 2\""),
        "{out}"
    );

    // A rule naming a point the profile does not have.
    let f = variant(
        dir.path(),
        "unknown-point.toml",
        pump,
        &format!("{pump}health = {{ dry = \"inlet_pressure < 0.5\" }}\n"),
    );
    let (code, out) = gateway(&["check"], &f, &env);
    assert_eq!(code, Some(64), "{out}");
    assert!(out.contains("unknown point \"inlet_pressure\""), "{out}");

    // Overlapping and inverted maintenance windows in the file.
    let windows = "[[maintenance]]\nid = \"a\"\ndevice = \"pump-1\"\nweekly = \"Tue 20:00-22:00\"\n\n\
                   [[maintenance]]\nid = \"b\"\ndevice = \"pump-1\"\nweekly = \"Tue 21:00-23:00\"\n\n\
                   [[maintenance]]\nid = \"c\"\ndevice = \"pump-2\"\nfrom = \"2026-12-01 22:00\"\nto = \"2026-12-01 20:00\"\n\n\
                   # ---------------------------------------------------------------- buses";
    let f = variant(
        dir.path(),
        "windows.toml",
        "# ---------------------------------------------------------------- buses",
        windows,
    );
    let (code, out) = gateway(&["check"], &f, &env);
    assert_eq!(code, Some(64), "{out}");
    assert!(
        out.contains("\"a\"") && out.contains("\"b\"") && out.contains("overlap"),
        "{out}"
    );
    assert!(out.contains("maintenance[2]"), "{out}");

    // A stopped gateway's database (a short run with nothing to poll).
    let config = test_config(dir.path());
    let mut gw = start_gateway(&config, &env);
    assert_eq!(gw.interrupt(Duration::from_secs(10)).unwrap(), Some(0));
    let db = dir.path().join("data/gateway.db");
    let counts = || -> (i64, i64, i64) {
        let c = rusqlite::Connection::open(&db).unwrap();
        let n = |table: &str| -> i64 {
            c.query_row(&format!("SELECT COUNT(*) FROM {table}"), [], |r| r.get(0))
                .unwrap()
        };
        (n("tickets"), n("ticket_events"), n("windows"))
    };
    let before = counts();

    let (code, out) = gateway(&["tickets", "ack", "42", "--by", "张工"], &config, &env);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.contains("no ticket #42"), "{out}");

    let add = [
        "maintenance",
        "add",
        "--device",
        "pump-1",
        "--from",
        "2026-12-01 22:00",
        "--to",
        "2026-12-01 20:00",
    ];
    let (code, out) = gateway(&add, &config, &env);
    assert_eq!(code, Some(1), "{out}");
    assert!(out.to_lowercase().contains("end"), "{out}");

    let (code, out) = gateway(
        &[
            "maintenance",
            "add",
            "--id",
            "tue",
            "--device",
            "pump-1",
            "--weekly",
            "Tue 20:00-22:00",
        ],
        &config,
        &env,
    );
    assert_eq!(code, Some(0), "{out}");
    let (code, out) = gateway(
        &[
            "maintenance",
            "add",
            "--id",
            "tue-late",
            "--device",
            "pump-1",
            "--weekly",
            "Tue 21:00-23:00",
        ],
        &config,
        &env,
    );
    assert_eq!(code, Some(1), "{out}");
    assert!(
        out.contains("\"tue\"") && out.contains("\"tue-late\""),
        "{out}"
    );

    let (tickets, events, windows) = counts();
    assert_eq!((tickets, events), (before.0, before.1));
    assert_eq!(windows, before.2 + 1, "only the valid window was added");
}

#[test]
fn the_demo_story_opens_an_availability_and_a_critical_ticket_within_two_minutes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let demo = workspace_root().join("config/demo.toml");
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(["demo", "--seconds", "100", "--every", "20", "--data-dir"])
            .arg(&data)
            .arg("--config")
            .arg(&demo),
        Duration::from_secs(160),
    )
    .unwrap();
    assert_eq!(code, Some(0), "{out}\n{err}");
    let env = vec![("BMS_DATA_DIR".to_owned(), data.display().to_string())];
    let list = cli_json(&demo, &env, &["tickets", "list", "--json"]);
    let has = |device: &str, kind: &str, severity: &str| {
        list.as_array()
            .unwrap()
            .iter()
            .any(|t| t["device"] == device && t["kind"] == kind && t["severity"] == severity)
    };
    assert!(has("pump-2", "availability", "ordinary"), "{list:#}");
    assert!(has("fire-panel-1", "alarm:fault", "critical"), "{list:#}");
    let (code, table) = gateway(&["tickets", "list"], &demo, &env);
    assert_eq!(code, Some(0));
    assert!(
        table.contains("pump-2") && table.contains("fire-panel-1"),
        "{table}"
    );
}
