//! `gateway scan --propose` against `gateway simulate` of the demo: on each
//! of the demo's lines (Modbus TCP, RTU over TCP, RTU on the simulator's
//! pseudo-terminal) every simulated device gets the profile the demo gives
//! it, and the draft passes `gateway check` as written.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bms_e2e::{Proc, bin, demo_env, run_with_timeout, workspace_root};
use gateway_core::config::load::parse_config;

/// unit → profile of the devices on `bus` in the config at `file`.
fn profiles_by_unit(
    file: &Path,
    bus: Option<&str>,
    env: &[(String, String)],
) -> BTreeMap<u8, String> {
    let text = std::fs::read_to_string(file).unwrap();
    let lookup = |k: &str| env.iter().find(|(n, _)| n == k).map(|(_, v)| v.clone());
    let config = parse_config(&file.display().to_string(), &text, &lookup).unwrap();
    config
        .devices
        .iter()
        .filter(|d| bus.is_none_or(|b| d.bus == b))
        .map(|d| (d.unit, d.profile.clone()))
        .collect()
}

#[test]
fn scan_proposes_the_demo_profile_of_every_simulated_device_on_every_line() {
    let dir = tempfile::tempdir().unwrap();
    let (env, _) = demo_env(dir.path());
    let demo = workspace_root().join("config/demo.toml");
    let profiles = workspace_root().join("config/profiles");
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
    let var = |k: &str| env.iter().find(|(n, _)| n == k).unwrap().1.clone();

    let lines = [
        ("tcp-power", format!("tcp://{}", var("BMS_DEMO_TCP_POWER"))),
        ("tcp-bas", format!("rtu+tcp://{}", var("BMS_DEMO_TCP_BAS"))),
        (
            "rs485-1",
            format!("rtu://{}?baud=19200&parity=even", var("BMS_DEMO_RTU")),
        ),
    ];
    for (bus, url) in &lines {
        let draft = dir.path().join(format!("{bus}.toml"));
        let (code, out, err) = run_with_timeout(
            Command::new(bin("gateway"))
                .args([
                    "scan",
                    url,
                    "--units",
                    "1-9",
                    "--timeout",
                    "300ms",
                    "--propose",
                ])
                .arg(&draft)
                .arg("--profiles")
                .arg(&profiles),
            Duration::from_secs(120),
        )
        .unwrap();
        assert_eq!(
            code,
            Some(0),
            "{bus}: stdout:\n{out}\nstderr:\n{err}\nsim:\n{}",
            sim.output()
        );
        // The existing summary and the progress are kept.
        assert!(out.contains("units answered: "), "{bus}: {out}");
        assert!(err.contains("identifying: "), "{bus}: {err}");
        assert!(out.contains("draft written to"), "{bus}: {out}");

        let want = profiles_by_unit(&demo, Some(bus), &env);
        let got = profiles_by_unit(&draft, None, &[]);
        let text = std::fs::read_to_string(&draft).unwrap();
        assert_eq!(got, want, "{bus}: the draft:\n{text}\nstdout:\n{out}");
        for unit in want.keys() {
            assert!(
                text.contains(&format!("name_zh = \"待命名 unit {unit}\"")),
                "{bus}: {text}"
            );
        }
        assert!(text.contains("# REVIEW: "), "{bus}: {text}");
        assert!(text.contains("# Score "), "{bus}: {text}");

        // The draft passes the project's validation as it is.
        let (code, out, err) = run_with_timeout(
            Command::new(bin("gateway"))
                .args(["check", "--config"])
                .arg(&draft),
            Duration::from_secs(30),
        )
        .unwrap();
        assert_eq!(code, Some(0), "{bus}: check:\n{out}\n{err}\n{text}");
    }

    // An existing file is kept without --force, and replaced with it.
    let (bus, url) = &lines[0];
    let draft = dir.path().join(format!("{bus}.toml"));
    std::fs::write(&draft, "# mine\n").unwrap();
    let scan = |force: bool| {
        let mut c = Command::new(bin("gateway"));
        c.args(["scan", url, "--units", "1-2", "--propose"])
            .arg(&draft)
            .arg("--profiles")
            .arg(&profiles);
        if force {
            c.arg("--force");
        }
        run_with_timeout(&mut c, Duration::from_secs(60)).unwrap()
    };
    let (code, _, err) = scan(false);
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("--force"), "{err}");
    assert_eq!(std::fs::read_to_string(&draft).unwrap(), "# mine\n");
    let (code, out, err) = scan(true);
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(profiles_by_unit(&draft, None, &[]).len(), 2);

    assert_eq!(sim.interrupt(Duration::from_secs(10)).unwrap(), Some(0));
}
