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
    bms_e2e::start_gateway(config, env).unwrap()
}

/// A fire-panel fault injected, and its critical ticket stored.
fn fire_panel_ticket(control: &str, data: &Path) {
    let (status, body) = http(
        "POST",
        control,
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
}

/// The two tests each start a simulator and a gateway on ports picked with
/// `free_port`; run side by side they could pick the same port between its
/// release and its use (seen once in CI: the fault injection reached a
/// closing socket). One at a time.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

#[test]
fn backup_of_a_running_gateway_restores_into_an_empty_data_dir() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), "").unwrap();
    let (env, control) = demo_env(dir.path());
    let data = dir.path().join("data");
    let cfg = config.to_str().unwrap();
    let _sim = start_sim(&config, &env).unwrap();
    let mut gw = start_gateway(&config, &env);

    // A critical ticket to carry through the backup.
    fire_panel_ticket(&control, &data);

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

/// Outbox records (seq, topic) in time order, read with SQL.
fn outbox(data: &Path) -> Vec<(i64, String)> {
    let c = rusqlite::Connection::open(data.join("outbox.db")).unwrap();
    let mut st = c
        .prepare("SELECT seq, topic FROM records ORDER BY seq")
        .unwrap();
    st.query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .map(Result::unwrap)
        .collect()
}

fn hup(p: &Proc) {
    let status = Command::new("kill")
        .args(["-HUP", &p.id().to_string()])
        .status()
        .unwrap();
    assert!(status.success());
}

#[test]
fn sighup_applies_a_new_device_list_and_keeps_ledger_tickets_and_outbox() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    // MQTT towards a port where nobody listens: everything stays in the outbox.
    let nobody = bms_e2e::free_port();
    let config = demo_config(
        dir.path(),
        &format!("[mqtt]\nurl = \"mqtt://127.0.0.1:{nobody}\"\n"),
    )
    .unwrap();
    let (env, control) = demo_env(dir.path());
    let data = dir.path().join("data");
    let _sim = start_sim(&config, &env).unwrap();
    let mut gw = start_gateway(&config, &env);
    fire_panel_ticket(&control, &data);
    std::thread::sleep(Duration::from_secs(2));
    let before = snapshot(&data.join("gateway.db"));
    let queued = outbox(&data);
    assert!(!queued.is_empty());

    // A new device list: the show-flat lighting is removed.
    let text = std::fs::read_to_string(&config).unwrap();
    let block = "[[device]]\nid = \"lights-show-flat\"";
    let at = text.find(block).expect("the demo has lights-show-flat");
    let end = at + text[at..][1..].find("[[device]]").unwrap() + 1;
    let changed = format!("{}{}", &text[..at], &text[end..]);
    std::fs::write(&config, &changed).unwrap();
    hup(&gw);
    gw.wait_for("configuration reloaded", Duration::from_secs(20))
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));

    // The ledger and the tickets are those of before plus what followed.
    let after = snapshot(&data.join("gateway.db"));
    let tickets = |rows: &[String]| -> Vec<String> {
        rows.iter()
            .filter(|r| r.starts_with("ticket|"))
            .cloned()
            .collect()
    };
    assert_eq!(tickets(&after), tickets(&before), "tickets changed");
    let closed_before: Vec<&String> = before
        .iter()
        .filter(|r| r.starts_with("interval|") && !r.ends_with("|-1"))
        .collect();
    for r in &closed_before {
        assert!(after.contains(r), "interval lost: {r}");
    }
    // Every device has one open interval; the removed one's is Unknown
    // (no longer watched), the others are watched again.
    let open: Vec<&String> = after
        .iter()
        .filter(|r| r.starts_with("interval|") && r.ends_with("|-1"))
        .collect();
    assert_eq!(open.len(), 19, "{open:?}");
    for r in &open {
        if r.starts_with("interval|lights-show-flat|") {
            assert!(r.contains("|unknown|"), "{r}");
        } else {
            assert!(!r.contains("|unknown|"), "not polled again: {r}");
        }
    }
    // The outbox kept everything and its seq goes on.
    let queued_after = outbox(&data);
    for q in &queued {
        assert!(queued_after.contains(q), "outbox record lost: {q:?}");
    }
    assert!(queued_after.last().unwrap().0 > queued.last().unwrap().0);

    // An invalid configuration is refused with every error; the gateway runs on.
    std::fs::write(
        &config,
        changed.replace("profile = \"pump-vfd\"", "profile = \"no-such-profile\""),
    )
    .unwrap();
    hup(&gw);
    gw.wait_for("the new configuration is refused", Duration::from_secs(20))
        .unwrap();
    let log = gw.output();
    let errors: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("the new configuration has an error"))
        .collect();
    assert_eq!(errors.len(), 2, "{log}");
    assert!(
        errors.iter().all(|l| l.contains("no-such-profile")),
        "{errors:?}"
    );
    // A restart-only change is refused too.
    std::fs::write(
        &config,
        changed.replace("[mqtt]\n", "[mqtt]\nkeep_alive = \"20s\"\n"),
    )
    .unwrap();
    hup(&gw);
    gw.wait_for("change only at a restart", Duration::from_secs(20))
        .unwrap();
    let n = outbox(&data).len();
    std::thread::sleep(Duration::from_secs(3));
    assert!(outbox(&data).len() > n, "the gateway stopped publishing");
    assert_eq!(gw.interrupt(Duration::from_secs(15)).unwrap(), Some(0));
}

/// A device held Down keeps one unbroken Down interval through 25 reloads
/// of an unchanged configuration: a reload keeps the state and the open
/// interval of every device whose configuration did not change. (Before,
/// each reload closed every interval and marked every device Unknown until
/// its next poll: 25 reloads cost such a device about 12 s of Down time.)
#[test]
fn twenty_five_sighups_leave_a_device_held_down_one_unbroken_down_interval() {
    let _one = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    let dir = tempfile::tempdir().unwrap();
    let config = demo_config(dir.path(), "").unwrap();
    let (env, control) = demo_env(dir.path());
    let data = dir.path().join("data");
    let db = data.join("gateway.db");
    let _sim = start_sim(&config, &env).unwrap();
    let mut gw = start_gateway(&config, &env);
    // Pump 1 trips for good: Down by its fault rule.
    let (status, body) = http(
        "POST",
        &control,
        "/faults",
        r#"{"device":"pump-1","fault":"fault_bit"}"#,
    )
    .unwrap();
    assert_eq!(status, 201, "{body}");
    let down_since = bms_e2e::until("pump-1 Down", Duration::from_secs(30), || {
        let c = rusqlite::Connection::open(&db).ok()?;
        c.query_row(
            "SELECT from_ms FROM intervals WHERE device = 'pump-1' AND state = 'down' AND to_ms IS NULL",
            [],
            |r| r.get::<_, i64>(0),
        )
        .ok()
    });
    for k in 0..25 {
        hup(&gw);
        gw.wait_for("configuration reloaded", Duration::from_secs(20))
            .unwrap_or_else(|e| panic!("reload {k}: {e}"));
        std::thread::sleep(Duration::from_millis(300));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(gw.interrupt(Duration::from_secs(15)).unwrap(), Some(0));

    let c = rusqlite::Connection::open(&db).unwrap();
    let mut st = c
        .prepare(
            "SELECT state, COALESCE(reason, ''), from_ms, COALESCE(to_ms, -1) FROM intervals \
             WHERE device = 'pump-1' AND COALESCE(to_ms, 9223372036854775807) > ?1 ORDER BY from_ms",
        )
        .unwrap();
    let rows: Vec<(String, String, i64, i64)> = st
        .query_map([down_since], |r| {
            Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
        })
        .unwrap()
        .map(Result::unwrap)
        .collect();
    let unknown_ms: i64 = rows
        .iter()
        .filter(|r| r.0 == "unknown" && r.3 >= 0)
        .map(|r| r.3 - r.2)
        .sum();
    eprintln!("pump-1 after it went Down: {rows:?}; Unknown time {unknown_ms} ms");
    // One Down interval from the trip up to the stop, then the stop's gap.
    assert_eq!(rows[0].0, "down", "{rows:?}");
    assert_eq!(rows[0].1, "rule:fault", "{rows:?}");
    assert_eq!(rows[0].2, down_since, "{rows:?}");
    assert!(
        rows[1..].iter().all(|r| r.1 == "gateway_down"),
        "the Down interval was broken by a reload: {rows:?}"
    );
    // The other devices were not restarted either: no `startup` interval
    // after the first minute of the run.
    let restarts: i64 = c
        .query_row(
            "SELECT COUNT(*) FROM intervals WHERE reason = 'startup' AND from_ms > ?1",
            [down_since],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(restarts, 0, "devices restarted by a reload");
}
