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

use bms_e2e::{Proc, bin, demo_env, http, run_with_timeout, workspace_root};

/// The demo building with a 1-minute rolling window that may decide after
/// 6 s of data, written into `dir` (profiles from the repository).
fn test_config(dir: &Path) -> PathBuf {
    let text = std::fs::read_to_string(workspace_root().join("config/demo.toml")).unwrap();
    let profiles = workspace_root().join("config/profiles");
    let text = text
        .replace(
            "profiles_dir = \"profiles\"",
            &format!("profiles_dir = {:?}", profiles.display().to_string()),
        )
        .replace("rolling_window = \"15m\"", "rolling_window = \"1m\"");
    assert!(text.contains("rolling_window = \"1m\""));
    let file = dir.join("site.toml");
    std::fs::write(&file, text).unwrap();
    file
}

fn start_sim(config: &Path, env: &[(String, String)]) -> Proc {
    let mut sim = Proc::spawn(
        "gateway simulate",
        Command::new(bin("gateway"))
            .args(["simulate", "--config"])
            .arg(config)
            .envs(env.iter().cloned()),
    )
    .unwrap();
    sim.wait_for("ready", Duration::from_secs(20)).unwrap();
    sim
}

fn start_gateway(config: &Path, env: &[(String, String)]) -> Proc {
    let mut gw = Proc::spawn(
        "gateway run",
        Command::new(bin("gateway"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .envs(env.iter().cloned()),
    )
    .unwrap();
    gw.wait_for("ledger and tickets loaded", Duration::from_secs(20))
        .unwrap();
    gw
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
