//! Our own binaries end to end, with nothing from outside the toolchain:
//! `gateway check` on the shipped configs, `gateway simulate` + `gateway run --once`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;
use std::time::Duration;

use bms_e2e::{Proc, bin, demo_env, run_with_timeout, workspace_root};

#[test]
fn check_accepts_the_demo_and_prints_the_plan() {
    let demo = workspace_root().join("config/demo.toml");
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(["check", "--config"])
            .arg(&demo),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(out.contains("OK"), "{out}");
    for bus in ["rs485-1", "tcp-power", "tcp-bas"] {
        assert!(
            out.contains(&format!("bus {bus}")),
            "bus {bus} missing:\n{out}"
        );
    }
    assert!(out.contains("requests per full cycle"), "{out}");
}

#[test]
fn check_lists_every_error_with_its_path_and_exits_64() {
    let dir = tempfile::tempdir().unwrap();
    let profiles = workspace_root().join("config/profiles");
    let cfg = dir.path().join("bad.toml");
    std::fs::write(
        &cfg,
        format!(
            r#"
site = "s"
gateway = "g"
profiles_dir = "{}"

[[bus]]
id = "line"
kind = "rtu"
port = "/dev/null"

[[device]]
id = "pump-1"
name_zh = "水泵"
class = "pump"
bus = "line"
unit = 0
profile = "pump-vfd"

[[device]]
id = "pump-1"
name_zh = "水泵"
class = "pump"
bus = "nowhere"
unit = 2
profile = "no-such-profile"
"#,
            profiles.display()
        ),
    )
    .unwrap();
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(["check", "--config"])
            .arg(&cfg),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(code, Some(64), "stdout:\n{out}\nstderr:\n{err}");
    for needle in ["pump-1", "unit", "nowhere", "no-such-profile", "duplicate"] {
        assert!(err.contains(needle), "{needle:?} missing from:\n{err}");
    }
}

#[test]
fn check_points_at_line_and_column_of_a_syntax_error() {
    let dir = tempfile::tempdir().unwrap();
    let cfg = dir.path().join("broken.toml");
    std::fs::write(&cfg, "site = \"s\"\ngateway = \n").unwrap();
    let (code, _out, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(["check", "--config"])
            .arg(&cfg),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("broken.toml:2:11"), "{err}");
}

#[test]
fn run_once_reads_every_demo_device_from_the_simulator() {
    let dir = tempfile::tempdir().unwrap();
    let (env, _) = demo_env(dir.path());
    let demo = workspace_root().join("config/demo.toml");
    let mut sim = Proc::spawn(
        "gateway simulate",
        Command::new(bin("gateway"))
            .args(["simulate", "--config"])
            .arg(&demo)
            .envs(env.clone()),
    )
    .unwrap();
    sim.wait_for("ready", Duration::from_secs(20)).unwrap();

    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(["run", "--once", "--stdout", "--config"])
            .arg(&demo)
            .envs(env),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(
        code,
        Some(0),
        "stdout:\n{out}\nstderr:\n{err}\nsim:\n{}",
        sim.output()
    );
    let lines: Vec<serde_json::Value> = out
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect();
    let devices: std::collections::BTreeSet<&str> =
        lines.iter().filter_map(|v| v["device"].as_str()).collect();
    assert_eq!(
        devices.len(),
        19,
        "one line per device expected, got {devices:?}\n{out}"
    );
    for l in &lines {
        assert!(
            l["failure"].is_null(),
            "a device failed: {l}\nstderr:\n{err}"
        );
    }
    let pump = lines.iter().find(|v| v["device"] == "meter-main").unwrap();
    let v = pump["points"]["voltage_l1"].as_f64().unwrap();
    assert!((180.0..260.0).contains(&v), "implausible mains voltage {v}");
    assert_eq!(sim.interrupt(Duration::from_secs(10)).unwrap(), Some(0));
}

#[test]
fn scan_finds_exactly_the_simulated_units_and_read_decodes_one() {
    let dir = tempfile::tempdir().unwrap();
    let (env, _) = demo_env(dir.path());
    let demo = workspace_root().join("config/demo.toml");
    let mut sim = Proc::spawn(
        "gateway simulate",
        Command::new(bin("gateway"))
            .args(["simulate", "--config"])
            .arg(&demo)
            .args(["--control", "127.0.0.1:0"])
            .envs(env.clone()),
    )
    .unwrap();
    sim.wait_for("ready", Duration::from_secs(20)).unwrap();
    let power = &env[0].1;

    // tcp-power carries units 1-6; 7-12 are absent.
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway")).args([
            "scan",
            &format!("tcp://{power}"),
            "--units",
            "1-12",
            "--timeout",
            "200ms",
        ]),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    assert!(
        out.contains("6 of 12 units answered: 1, 2, 3, 4, 5, 6"),
        "{out}"
    );

    // The main meter's L1 voltage: SDM630 input register 0, f32 ABCD.
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway")).args([
            "read",
            &format!("tcp://{power}"),
            "--unit",
            "1",
            "--area",
            "input",
            "--address",
            "0",
            "--count",
            "2",
            "--type",
            "f32",
        ]),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(code, Some(0), "stdout:\n{out}\nstderr:\n{err}");
    let v: f64 = out
        .lines()
        .find_map(|l| l.strip_prefix("f32 @0: "))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no decoded value in:\n{out}"));
    assert!((180.0..260.0).contains(&v), "implausible voltage {v}");

    // A unit that is not there: a clear message and exit 69.
    let (code, _out, err) = run_with_timeout(
        Command::new(bin("gateway")).args([
            "read",
            &format!("tcp://{power}"),
            "--unit",
            "9",
            "--address",
            "0",
            "--timeout",
            "200ms",
        ]),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(code, Some(69), "{err}");
    assert!(err.contains("no answer within"), "{err}");
}

#[test]
fn run_refuses_at_start_a_tls_file_it_cannot_read_or_a_bad_mqtt_url() {
    let dir = tempfile::tempdir().unwrap();
    let (env, _) = demo_env(dir.path());
    let cfg = bms_e2e::demo_config(
        dir.path(),
        "[mqtt]\nurl = \"mqtts://127.0.0.1:8883\"\nca_file = \"missing-ca.pem\"\n",
    )
    .unwrap();
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(["run", "--config"])
            .arg(&cfg)
            .envs(env.clone()),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(code, Some(64), "{out}\n{err}");
    assert!(
        err.contains("[mqtt] ca_file: cannot read") && err.contains("missing-ca.pem"),
        "{err}"
    );
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(["run", "--mqtt-url", "http://broker:1883", "--config"])
            .arg(&cfg)
            .envs(env),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(code, Some(64), "{out}\n{err}");
    assert!(err.contains("not a broker URL"), "{err}");
}
