//! The commands as an engineer meets them: every command that reads a
//! gateway's store works with `--data-dir` alone (the configuration is the
//! one the gateway recorded at start), on the data directory or on the
//! folder a demo prints; the demos print commands that work as printed; a
//! clean demo start and stop logs no ERROR or WARN line.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bms_e2e::{
    Proc, bin, demo_config, demo_env, free_port, run_with_timeout, start_gateway, start_sim,
    this_month_in,
};

const T: Duration = Duration::from_secs(60);

/// `gateway ARGS…` to completion: (exit code, stdout, stderr).
fn gateway(args: &[&str], cwd: &Path) -> (Option<i32>, String, String) {
    run_with_timeout(Command::new(bin("gateway")).args(args).current_dir(cwd), T).unwrap()
}

fn ok(args: &[&str], cwd: &Path) -> String {
    let (code, out, err) = gateway(args, cwd);
    assert_eq!(
        code,
        Some(0),
        "gateway {}\nstdout:\n{out}\nstderr:\n{err}",
        args.join(" ")
    );
    out
}

const ALERTS: &str = r#"
[alerts]
dashboard_url = "http://127.0.0.1:8080/tickets/{site}/{gateway}/{id}"

[alerts.critical]
channels = ["hook"]
ack_within = "30m"
outside_hours = "page"

[alerts.ordinary]
channels = []
ack_within = "1h"
outside_hours = "defer"

[[alerts.channel]]
id = "hook"
kind = "webhook"
url = "http://127.0.0.1:9/alerts"

[[alerts.person]]
id = "zhang"
name = "张工"
mobile = "13800000001"

[alerts.rotation]
every = "week"
start = "2026-11-02"

[[alerts.rotation.tier]]
name = "值班工程师"
people = ["zhang"]
"#;

#[test]
fn every_store_command_works_with_data_dir_alone() {
    let dir = tempfile::tempdir().unwrap();
    let (env, _) = demo_env(dir.path());
    let cfg = demo_config(dir.path(), ALERTS).unwrap();
    let mut sim = start_sim(&cfg, &env).unwrap();
    let mut gw = start_gateway(&cfg, &env).unwrap();
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(gw.interrupt(Duration::from_secs(20)).unwrap(), Some(0));
    sim.interrupt(Duration::from_secs(10)).unwrap();

    // The config file moves out of sight of the commands: only the data
    // folder is given, and the commands run elsewhere.
    let data = dir.path().join("data");
    let d = data.to_str().unwrap();
    let elsewhere = tempfile::tempdir().unwrap();
    let cwd = elsewhere.path();

    let out = ok(&["status", "--data-dir", d], cwd);
    assert!(out.contains("pump-1"), "{out}");
    // The folder above the data directory (one store inside) does too.
    let out = ok(&["status", "--data-dir", dir.path().to_str().unwrap()], cwd);
    assert!(out.contains("pump-1"), "{out}");
    ok(&["tickets", "list", "--all", "--data-dir", d], cwd);
    let (code, _, err) = gateway(&["tickets", "show", "--data-dir", d, "999"], cwd);
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("999"), "{err}");
    let (code, _, err) = gateway(
        &["tickets", "ack", "--data-dir", d, "999", "--by", "张工"],
        cwd,
    );
    assert_eq!(code, Some(1), "{err}");
    ok(
        &[
            "maintenance",
            "add",
            "--data-dir",
            d,
            "--id",
            "mw-test",
            "--device",
            "pump-1",
            "--from",
            "2030-01-02 20:00",
            "--to",
            "2030-01-02 22:00",
        ],
        cwd,
    );
    let out = ok(&["maintenance", "list", "--data-dir", d], cwd);
    assert!(out.contains("mw-test"), "{out}");
    ok(&["maintenance", "remove", "--data-dir", d, "mw-test"], cwd);
    let out = ok(&["oncall", "--data-dir", d], cwd);
    assert!(out.contains("张工"), "{out}");
    ok(&["alerts", "log", "--data-dir", d], cwd);
    let month = this_month_in("Asia/Shanghai").unwrap();
    let out = ok(
        &[
            "report",
            "--data-dir",
            d,
            "--month",
            &month,
            "--format",
            "json",
        ],
        cwd,
    );
    let v: serde_json::Value = serde_json::from_str(&out).unwrap();
    assert_eq!(v["site"]["id"], "demo-sales-centre", "{out}");
    ok(&["dead-letters", "--data-dir", d], cwd);
    let backup = cwd.join("backup");
    ok(
        &["backup", "--data-dir", d, "--out", backup.to_str().unwrap()],
        cwd,
    );
    assert!(backup.join("gateway.db").is_file());
}

#[test]
fn a_data_dir_without_a_store_is_refused_saying_what_to_give() {
    let empty = tempfile::tempdir().unwrap();
    let e = empty.path().to_str().unwrap();
    for args in [
        vec!["status", "--data-dir", e],
        vec!["tickets", "list", "--data-dir", e],
        vec!["report", "--data-dir", e, "--month", "2026-12"],
        vec!["oncall", "--data-dir", e],
        vec!["alerts", "log", "--data-dir", e],
        vec!["maintenance", "list", "--data-dir", e],
    ] {
        let (code, out, err) = gateway(&args, empty.path());
        assert_eq!(code, Some(64), "{args:?}\nstdout:\n{out}\nstderr:\n{err}");
        assert!(err.contains("no gateway store"), "{args:?}: {err}");
        assert!(err.contains(e), "{args:?}: {err}");
        assert!(err.contains("--config FILE"), "{args:?}: {err}");
    }
    // Neither flag: clap says which are needed.
    let (code, _, err) = gateway(&["status"], empty.path());
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("--config"), "{err}");
}

/// The printed commands, as lines after `marker` that start with `gateway `.
fn printed_commands(out: &str) -> Vec<Vec<String>> {
    out.lines()
        .map(str::trim)
        .filter(|l| l.starts_with("gateway "))
        .map(|l| l.split_whitespace().skip(1).map(str::to_owned).collect())
        .collect()
}

/// ERROR and WARN lines of a log (text format: the level is a word; any
/// terminal colour codes are taken out first).
fn bad_lines(log: &str) -> Vec<String> {
    log.lines()
        .map(strip_ansi)
        .filter(|l| {
            let w: Vec<&str> = l.split_whitespace().take(3).collect();
            w.contains(&"ERROR") || w.contains(&"WARN")
        })
        .collect()
}

fn strip_ansi(line: &str) -> String {
    let mut out = String::new();
    let mut chars = line.chars();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            for c in chars.by_ref() {
                if c.is_ascii_alphabetic() {
                    break;
                }
            }
        } else {
            out.push(c);
        }
    }
    out
}

#[test]
fn the_gateway_demo_prints_commands_that_work_as_printed_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("demo-data");
    let mut demo = Proc::spawn(
        "gateway demo",
        Command::new(bin("gateway"))
            .args(["demo", "--every", "1", "--data-dir"])
            .arg(&data)
            .env("RUST_LOG", "info"),
    )
    .unwrap();
    demo.wait_for("latest events", T).unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert_eq!(demo.interrupt(Duration::from_secs(20)).unwrap(), Some(0));
    let log = demo.output();
    assert!(bad_lines(&log).is_empty(), "{:?}\n{log}", bad_lines(&log));
    let commands = printed_commands(&log);
    assert!(commands.len() >= 4, "{log}");
    let cwd = tempfile::tempdir().unwrap();
    for c in &commands {
        let args: Vec<&str> = c.iter().map(String::as_str).collect();
        assert!(
            args.contains(&"--data-dir") && args.contains(&data.to_str().unwrap()),
            "{args:?}"
        );
        ok(&args, cwd.path());
    }
}

#[test]
fn the_dashboard_demo_prints_commands_that_work_as_printed_and_stops_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("dash-demo");
    let mut demo = Proc::spawn(
        "dashboard demo",
        Command::new(bin("dashboard"))
            .args(["demo", "--data-dir"])
            .arg(&data)
            .arg("--listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .arg("--mqtt-listen")
            .arg(format!("127.0.0.1:{}", free_port()))
            .env("RUST_LOG", "info"),
    )
    .unwrap();
    demo.wait_for("Ctrl-C stops", T).unwrap();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(demo.interrupt(Duration::from_secs(20)).unwrap(), Some(0));
    let log = demo.output();
    assert!(bad_lines(&log).is_empty(), "{:?}\n{log}", bad_lines(&log));
    let commands = printed_commands(&log);
    assert!(commands.len() >= 4, "{log}");
    let cwd = tempfile::tempdir().unwrap();
    for c in &commands {
        let args: Vec<&str> = c.iter().map(String::as_str).collect();
        // The demo's folder, whose gateway store is one level down.
        assert!(args.contains(&data.to_str().unwrap()), "{args:?}");
        ok(&args, cwd.path());
    }
}
