//! Comms recoveries are dated to the real return: `gateway simulate` serves
//! an RTU line on a pseudo-terminal, five sensors on it fall silent together
//! for 35, 50, 70, 130 and 190 s (faults injected through the simulator's
//! control interface), and each Down interval that `gateway run` stores in
//! its ledger must end within the documented resolution of the moment the
//! sensor answered again: `max(poll_interval, [health] recovery_resolution)`
//! plus one answer (docs/availability.md, "Resolution of comms outages").
//!
//! The line has the time for it: one healthy neighbour polled every second,
//! a 150 ms timeout, five silent units probed every 5 s.
//!
//! Runs for about four minutes of real time; `#[ignore]`d, run by `.ci/run`.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bms_e2e::{Proc, free_port, http, start_gateway, start_sim, until, workspace_root};

/// The documented resolution of this configuration: max(1 s, 5 s).
const RESOLUTION_MS: i64 = 5_000;
/// One answer on the line (a few ms) and the control request's own time,
/// generously.
const SLACK_MS: i64 = 500;
/// Silences, in seconds, by sensor.
const SILENCES: [(&str, u64); 5] = [
    ("press-1", 35),
    ("press-2", 50),
    ("press-3", 70),
    ("press-4", 130),
    ("press-5", 190),
];
/// Offset of the silences from their injection.
const START_S: u64 = 3;

fn config(dir: &Path, control: &str) -> String {
    let profiles = workspace_root().join("config/profiles");
    let mut text = format!(
        r#"site = "e2e-recovery"
gateway = "gw-1"
timezone = "Asia/Shanghai"
data_dir = {data:?}
profiles_dir = {profiles:?}

[health]
comms_failures = 3
up_hold = "10s"

[[bus]]
id = "rs485-1"
kind = "rtu"
port = {port:?}
baud = 19200
parity = "even"
timeout = "150ms"
"#,
        data = dir.join("data").display().to_string(),
        profiles = profiles.display().to_string(),
        port = dir.join("rs485-1").display().to_string(),
    );
    for unit in 1..=6 {
        text.push_str(&format!(
            r#"
[[device]]
id = "press-{unit}"
name_zh = "压力{unit}"
class = "fire_water"
bus = "rs485-1"
unit = {unit}
profile = "pressure-transmitter"
poll_interval = "1s"
"#
        ));
    }
    text.push_str(&format!(
        r#"
[simulator]
seed = 7
wire_time = true
control = {control:?}
"#
    ));
    text
}

fn now_ms() -> i64 {
    i64::try_from(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

/// Closed comms Down intervals of `device`: (from_ms, to_ms).
fn comms_down(db: &Path, device: &str) -> Vec<(i64, i64)> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut st = c
        .prepare(
            "SELECT from_ms, to_ms FROM intervals WHERE device = ?1 AND state = 'down' \
             AND reason = 'comms' AND to_ms IS NOT NULL ORDER BY from_ms",
        )
        .unwrap();
    st.query_map([device], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

/// The state of the open interval of `device`, if any.
fn open_state(db: &Path, device: &str) -> Option<String> {
    let c = rusqlite::Connection::open(db).ok()?;
    c.query_row(
        "SELECT state FROM intervals WHERE device = ?1 AND to_ms IS NULL",
        [device],
        |r| r.get(0),
    )
    .ok()
}

#[test]
#[ignore = "end-to-end: four minutes of real time; run by .ci/run"]
fn comms_recoveries_are_dated_within_the_resolution_of_the_real_return() {
    let dir = tempfile::tempdir().unwrap();
    let control = format!("127.0.0.1:{}", free_port());
    let file = dir.path().join("site.toml");
    std::fs::write(&file, config(dir.path(), &control)).unwrap();
    let env: Vec<(String, String)> = Vec::new();
    let _sim: Proc = start_sim(&file, &env).unwrap();
    let mut gw: Proc = start_gateway(&file, &env).unwrap();
    let db = dir.path().join("data/gateway.db");
    until("every sensor Up", Duration::from_secs(30), || {
        (1..=6)
            .all(|u| open_state(&db, &format!("press-{u}")).as_deref() == Some("up"))
            .then_some(())
    });

    // Real returns, bracketed by the time around each injection.
    let mut returns = Vec::new();
    for (device, secs) in SILENCES {
        let before = now_ms();
        let body = format!(
            r#"{{"device":"{device}","fault":"no_response","start":"{START_S}s","duration":"{secs}s"}}"#
        );
        let (status, answer) = http("POST", &control, "/faults", &body).unwrap();
        assert_eq!(status, 201, "{answer}");
        let after = now_ms();
        let offset = i64::try_from((START_S + secs) * 1000).unwrap();
        returns.push((device, secs, before + offset, after + offset));
    }

    // The longest silence, then the up_hold and a margin.
    let last = returns.iter().map(|r| r.3).max().unwrap();
    until("every sensor back Up", Duration::from_secs(400), || {
        (now_ms() > last + 12_000
            && (1..=6).all(|u| open_state(&db, &format!("press-{u}")).as_deref() == Some("up")))
        .then_some(())
    });

    let mut report = Vec::new();
    let mut wrong = Vec::new();
    for (device, secs, earliest, latest) in &returns {
        let downs = comms_down(&db, device);
        let [(from, to)] = downs[..] else {
            wrong.push(format!(
                "{device}: {} Down intervals {downs:?}",
                downs.len()
            ));
            continue;
        };
        let stored = to - from;
        let late = to - latest;
        report.push(format!(
            "{device}: silent {secs} s, stored Down {:.1} s, ended {:.2} s after the return",
            stored as f64 / 1000.0,
            (to - earliest) as f64 / 1000.0,
        ));
        if to < earliest - SLACK_MS || late > RESOLUTION_MS + SLACK_MS {
            wrong.push(format!(
                "{device}: Down ended at {to}, the sensor answered again at {earliest}..{latest}"
            ));
        }
    }
    eprintln!("{}", report.join("\n"));
    // The healthy neighbour never went Down.
    assert!(comms_down(&db, "press-6").is_empty());
    gw.interrupt(Duration::from_secs(10)).unwrap();
    assert!(wrong.is_empty(), "{}\n{}", wrong.join("\n"), gw.output());
}
