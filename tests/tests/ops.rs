//! Operations: `gateway backup` of a running gateway, `gateway restore`
//! into an emptied data directory, and a restart on the restored data.
//! The databases are compared with plain SQL.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use bms_e2e::{Proc, bin, demo_config, demo_env, http, run_with_timeout, start_sim};

fn gateway(args: &[&str], env: &[(String, String)]) -> (Option<i32>, String, String) {
    run_with_timeout(
        Command::new(bin("gateway"))
            .args(args)
            .envs(env.iter().cloned()),
        Duration::from_secs(60),
    )
    .unwrap()
}

/// Tickets and intervals as text rows, read with SQL.
fn snapshot(db: &Path) -> Vec<String> {
    let c = rusqlite::Connection::open(db).unwrap();
    let mut rows = Vec::new();
    for q in [
        "SELECT 'ticket', id, device, kind, state FROM tickets ORDER BY id",
        "SELECT 'interval', device, state, COALESCE(reason, ''), from_ms, COALESCE(to_ms, -1) FROM intervals ORDER BY device, from_ms",
    ] {
        let mut st = c.prepare(q).unwrap();
        let n = st.column_count();
        let mut r = st.query([]).unwrap();
        while let Some(row) = r.next().unwrap() {
            let cols: Vec<String> = (0..n)
                .map(|i| match row.get_ref(i).unwrap() {
                    rusqlite::types::ValueRef::Integer(v) => v.to_string(),
                    rusqlite::types::ValueRef::Text(t) => String::from_utf8_lossy(t).into(),
                    other => format!("{other:?}"),
                })
                .collect();
            rows.push(cols.join("|"));
        }
    }
    rows
}

fn start_gateway(config: &Path, env: &[(String, String)]) -> Proc {
    let mut gw = Proc::spawn(
        "gateway run",
        Command::new(bin("gateway"))
            .args(["run", "--config"])
            .arg(config)
            .envs(env.iter().cloned()),
    )
    .unwrap();
    gw.wait_for("ledger and tickets loaded", Duration::from_secs(20))
        .unwrap();
    gw
}

#[test]
fn backup_of_a_running_gateway_restores_into_an_empty_data_dir() {
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), "").unwrap();
    let (env, control) = demo_env(dir.path());
    let data = dir.path().join("data");
    let cfg = config.to_str().unwrap();
    let _sim = start_sim(&config, &env).unwrap();
    let mut gw = start_gateway(&config, &env);

    // A critical ticket to carry through the backup.
    let (status, body) = http(
        "POST",
        &control,
        "/faults",
        r#"{"device":"fire-panel-1","fault":"fault_bit","point":"fault"}"#,
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let deadline = Instant::now() + Duration::from_secs(30);
    while snapshot(&data.join("gateway.db"))
        .iter()
        .all(|r| !r.starts_with("ticket|"))
    {
        assert!(Instant::now() < deadline, "no ticket opened");
        std::thread::sleep(Duration::from_millis(200));
    }

    // Online backup while the gateway writes.
    let online = dir.path().join("online");
    let (code, out, err) = gateway(
        &["backup", "--config", cfg, "--out", online.to_str().unwrap()],
        &env,
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert!(out.contains("gateway.db"), "{out}");
    let rows = snapshot(&online.join("gateway.db"));
    assert!(
        rows.iter().any(|r| r.contains("fire-panel-1|alarm:fault")),
        "{rows:?}"
    );
    assert!(rows.iter().filter(|r| r.starts_with("interval|")).count() >= 19);

    // A backup folder is never overwritten.
    let (code, _, err) = gateway(
        &["backup", "--config", cfg, "--out", online.to_str().unwrap()],
        &env,
    );
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("already holds a backup"), "{err}");

    // No restore under a running gateway.
    let (code, _, err) = gateway(
        &[
            "restore",
            "--config",
            cfg,
            "--from",
            online.to_str().unwrap(),
            "--force",
        ],
        &env,
    );
    assert_eq!(code, Some(1), "{err}");
    assert!(err.contains("stop it first"), "{err}");

    // Stopped: back up, lose the data directory, restore it.
    assert_eq!(gw.interrupt(Duration::from_secs(15)).unwrap(), Some(0));
    let before = snapshot(&data.join("gateway.db"));
    let offline = dir.path().join("offline");
    let (code, out, err) = gateway(
        &[
            "backup",
            "--data-dir",
            data.to_str().unwrap(),
            "--out",
            offline.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    std::fs::remove_dir_all(&data).unwrap();
    let (code, out, err) = gateway(
        &[
            "restore",
            "--config",
            cfg,
            "--from",
            offline.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    assert_eq!(snapshot(&data.join("gateway.db")), before);

    // A second restore would lose data: it needs --force.
    let (code, _, err) = gateway(
        &[
            "restore",
            "--config",
            cfg,
            "--from",
            offline.to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("--force"), "{err}");
    let (code, _, err) = gateway(
        &[
            "restore",
            "--config",
            cfg,
            "--from",
            dir.path().to_str().unwrap(),
        ],
        &env,
    );
    assert_eq!(code, Some(64), "{err}");
    assert!(
        err.contains("not a folder written by `gateway backup`"),
        "{err}"
    );

    // The restored gateway carries on: the same ticket, no duplicate.
    let mut gw = start_gateway(&config, &env);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(gw.interrupt(Duration::from_secs(15)).unwrap(), Some(0));
    let after: Vec<String> = snapshot(&data.join("gateway.db"))
        .into_iter()
        .filter(|r| r.starts_with("ticket|"))
        .collect();
    let tickets_before: Vec<&String> = before.iter().filter(|r| r.starts_with("ticket|")).collect();
    assert_eq!(after.len(), tickets_before.len(), "{after:?}");
}
