//! Disk faults with real processes: a lost or damaged ledger at start, the
//! MQTT outbox's size on disk, and a full data disk (a tmpfs mounted for
//! the test: needs root, skipped with a message otherwise) with a real
//! Mosquitto coming back. `#[ignore]`d: `.ci/run` runs them with the tools.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bms_e2e::{
    Proc, bin, demo_config, demo_env, free_port, http, require_tool, run_with_timeout, start_sim,
    until,
};
use serde_json::Value;

/// The demo building with `extra` sections, every device polled every
/// 200 ms (so that the outbox fills within a minute or two).
fn config(dir: &Path, extra: &str) -> PathBuf {
    let file = demo_config(dir, extra).unwrap();
    let text = std::fs::read_to_string(&file).unwrap();
    let mut out = String::new();
    for line in text.lines() {
        if line.starts_with("poll_interval = ") {
            out.push_str("poll_interval = \"200ms\"\n");
        } else {
            out.push_str(line);
            out.push('\n');
        }
    }
    std::fs::write(&file, out).unwrap();
    file
}

fn env_get<'a>(env: &'a [(String, String)], key: &str) -> &'a str {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap()
}

fn gateway(config: &Path, env: &[(String, String)]) -> Proc {
    let mut gw = Proc::spawn(
        "gateway run",
        Command::new(bin("gateway"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .envs(env.iter().cloned()),
    )
    .unwrap();
    gw.wait_for("ledger and tickets loaded", Duration::from_secs(30))
        .unwrap();
    gw
}

fn inject(control: &str, body: &str) {
    let (status, answer) = http("POST", control, "/faults", body).unwrap();
    assert_eq!(status, 201, "{answer}");
}

fn cli(config: &Path, env: &[(String, String)], args: &[&str]) -> (Option<i32>, String, String) {
    run_with_timeout(
        Command::new(bin("gateway"))
            .args(args)
            .arg("--config")
            .arg(config)
            .envs(env.iter().cloned()),
        Duration::from_secs(40),
    )
    .unwrap()
}

/// Ticket ids by (device, kind).
fn tickets(config: &Path, env: &[(String, String)]) -> BTreeMap<(String, String), u64> {
    let (code, out, err) = cli(config, env, &["tickets", "list", "--json"]);
    assert_eq!(code, Some(0), "{out}\n{err}");
    let v: Value = serde_json::from_str(&out).unwrap();
    v.as_array()
        .unwrap()
        .iter()
        .map(|t| {
            (
                (
                    t["device"].as_str().unwrap().to_owned(),
                    t["kind"].as_str().unwrap().to_owned(),
                ),
                t["id"].as_u64().unwrap(),
            )
        })
        .collect()
}

fn wait_ticket(
    config: &Path,
    env: &[(String, String)],
    device: &str,
    kind: &str,
    gw: &mut Proc,
) -> u64 {
    let key = (device.to_owned(), kind.to_owned());
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        if let Some(id) = tickets(config, env).get(&key) {
            return *id;
        }
        assert!(
            Instant::now() < deadline,
            "no {kind} ticket for {device}: {}",
            gw.output()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

#[test]
#[ignore = "real processes (gateway, simulator); run by .ci/run"]
fn a_lost_ledger_is_refused_with_the_way_back_and_ticket_ids_are_never_reused() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let (env, control) = demo_env(dir.path());
    let data = dir.path().join("data");
    let _sim = start_sim(&config, &env).unwrap();

    // Ticket #1, a backup, then ticket #2 after it.
    let mut gw = gateway(&config, &env);
    inject(
        &control,
        r#"{"device":"fire-panel-1","fault":"fault_bit","point":"fault"}"#,
    );
    let first = wait_ticket(&config, &env, "fire-panel-1", "alarm:fault", &mut gw);
    assert_eq!(first, 1);
    assert_eq!(gw.interrupt(Duration::from_secs(20)).unwrap(), Some(0));
    let backup = dir.path().join("backup");
    let (code, out, err) = cli(
        &config,
        &env,
        &["backup", "--out", backup.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    let mut gw = gateway(&config, &env);
    inject(
        &control,
        r#"{"device":"leak-b1-1","fault":"fault_bit","point":"leak"}"#,
    );
    let second = wait_ticket(&config, &env, "leak-b1-1", "alarm:leak", &mut gw);
    assert_eq!(second, 2);
    assert_eq!(gw.interrupt(Duration::from_secs(20)).unwrap(), Some(0));

    // The ledger becomes a 0-byte file: refused, naming it and the way back.
    std::fs::write(data.join("gateway.db"), b"").unwrap();
    for f in ["gateway.db-wal", "gateway.db-shm"] {
        let _ = std::fs::remove_file(data.join(f));
    }
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(["run", "--config"])
            .arg(&config)
            .envs(env.iter().cloned()),
        Duration::from_secs(30),
    )
    .unwrap_or_else(|e| panic!("a 0-byte ledger was taken for a new one: {e}"));
    assert_eq!(code, Some(65), "{out}\n{err}");
    assert!(err.contains("gateway.db"), "{err}");
    assert!(err.contains("empty (0 bytes)"), "{err}");
    assert!(err.contains("gateway restore"), "{err}");
    assert_eq!(
        std::fs::metadata(data.join("gateway.db")).unwrap().len(),
        0,
        "the refused file is left as it was"
    );

    // The way back: the backup (ticket #1 only). The next ticket is #3:
    // #2 was handed out after the backup and is never handed out again.
    let (code, out, err) = cli(
        &config,
        &env,
        &["restore", "--from", backup.to_str().unwrap(), "--force"],
    );
    assert_eq!(code, Some(0), "{out}\n{err}");
    let mut gw = gateway(&config, &env);
    let t = tickets(&config, &env);
    assert_eq!(
        t.get(&("fire-panel-1".into(), "alarm:fault".into())),
        Some(&1)
    );
    inject(
        &control,
        r#"{"device":"leak-b1-2","fault":"fault_bit","point":"leak"}"#,
    );
    wait_ticket(&config, &env, "leak-b1-2", "alarm:leak", &mut gw);
    // The leak on leak-b1-1 is still active in the building: it opens a
    // ticket again, with a new id, as does the one on leak-b1-2.
    let leak1 = wait_ticket(&config, &env, "leak-b1-1", "alarm:leak", &mut gw);
    let t = tickets(&config, &env);
    let ids: BTreeSet<u64> = t.values().copied().collect();
    assert_eq!(ids.len(), t.len(), "an id twice: {t:?}");
    assert!(
        ids.iter().all(|&id| id == 1 || id > second),
        "ticket id {second} was issued again: {t:?}"
    );
    assert_ne!(leak1, second);
    assert_eq!(gw.interrupt(Duration::from_secs(20)).unwrap(), Some(0));
}

/// xorshift64: deterministic garbage for the corrupted pages.
fn garbage(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1;
    (0..n)
        .map(|_| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x >> 24) as u8
        })
        .collect()
}

fn integrity_ok(db: &Path) -> bool {
    let Ok(c) =
        rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return false;
    };
    c.query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))
        .is_ok_and(|s| s == "ok")
}

fn heartbeat(db: &Path) -> Option<i64> {
    let c = rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
        .ok()?;
    c.query_row(
        "SELECT value FROM meta WHERE key = 'heartbeat_ms'",
        [],
        |r| r.get(0),
    )
    .ok()
}

fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

#[test]
#[ignore = "real processes (gateway, simulator); run by .ci/run"]
fn every_single_page_corruption_is_refused_at_start_or_harmless() {
    let dir = tempfile::tempdir().unwrap();
    let config = config(dir.path(), "");
    let (env, control) = demo_env(dir.path());
    let data = dir.path().join("data");
    {
        let _sim = start_sim(&config, &env).unwrap();
        let mut gw = gateway(&config, &env);
        inject(
            &control,
            r#"{"device":"fire-panel-1","fault":"fault_bit","point":"fault"}"#,
        );
        wait_ticket(&config, &env, "fire-panel-1", "alarm:fault", &mut gw);
        std::thread::sleep(Duration::from_secs(6));
        assert_eq!(gw.interrupt(Duration::from_secs(20)).unwrap(), Some(0));
    }
    let original = std::fs::read(data.join("gateway.db")).unwrap();
    assert!(
        !data.join("gateway.db-wal").exists() || {
            std::fs::metadata(data.join("gateway.db-wal"))
                .unwrap()
                .len()
                == 0
        }
    );
    let page_size = usize::from(u16::from_be_bytes([original[16], original[17]]));
    let pages = original.len() / page_size;
    assert!(pages >= 10, "{pages} pages");
    // (page, damaged per integrity_check, outcome)
    let mut matrix = Vec::new();
    // Each page: overwritten with garbage, zeroed, or 16 bytes in its
    // middle flipped (the content of a row rather than the structure).
    let cases: Vec<(usize, &str)> = (1..=pages)
        .flat_map(|p| [(p, "garbage"), (p, "zeroed"), (p, "flipped")])
        .collect();
    for (page, how) in cases {
        let case = dir.path().join(format!("case-{page}-{how}"));
        std::fs::create_dir_all(&case).unwrap();
        let mut bytes = original.clone();
        let at = (page - 1) * page_size;
        match how {
            "garbage" => {
                bytes[at..at + page_size].copy_from_slice(&garbage(page as u64, page_size))
            }
            "zeroed" => bytes[at..at + page_size].fill(0),
            _ => {
                for b in &mut bytes[at + page_size / 2..at + page_size / 2 + 16] {
                    *b = !*b;
                }
            }
        }
        std::fs::write(case.join("gateway.db"), &bytes).unwrap();
        std::fs::copy(data.join("gateway.marks"), case.join("gateway.marks")).ok();
        let damaged = !integrity_ok(&case.join("gateway.db"));
        let mut case_env: Vec<(String, String)> = env
            .iter()
            .filter(|(k, _)| k != "BMS_DATA_DIR" && k != "BMS_ADMIN_LISTEN")
            .cloned()
            .collect();
        case_env.push(("BMS_DATA_DIR".into(), case.display().to_string()));
        case_env.push((
            "BMS_ADMIN_LISTEN".into(),
            format!("127.0.0.1:{}", free_port()),
        ));
        let started_ms = now_ms();
        let mut gw = Proc::spawn(
            "gateway run",
            Command::new(bin("gateway"))
                .args(["run", "--config"])
                .arg(&config)
                .env("RUST_LOG", "info")
                .envs(case_env.iter().cloned()),
        )
        .unwrap();
        let outcome = match gw.wait_for("ledger and tickets loaded", Duration::from_secs(20)) {
            Err(_) => {
                let code = gw.interrupt(Duration::from_secs(10)).unwrap();
                let out = gw.output();
                if code == Some(65) && out.contains("gateway.db") && out.contains("gateway restore")
                {
                    "refused"
                } else {
                    eprintln!("page {page} {how}: refused with {code:?} and no way back: {out}");
                    "refused without the way back"
                }
            }
            Ok(_) => {
                // Heartbeats come every 5 s.
                std::thread::sleep(Duration::from_secs(7));
                let code = gw.interrupt(Duration::from_secs(20)).unwrap();
                match code {
                    Some(74) => "stopped on damage",
                    Some(0) => {
                        let hb = heartbeat(&case.join("gateway.db"));
                        if hb.is_some_and(|h| h >= started_ms) {
                            "ran, ledger written"
                        } else {
                            "ran, ledger NOT written"
                        }
                    }
                    _ => "crashed",
                }
            }
        };
        matrix.push((format!("page {page} {how}"), damaged, outcome));
        let _ = std::fs::remove_dir_all(&case);
    }
    let mut counts: BTreeMap<(bool, &str), usize> = BTreeMap::new();
    for (_, damaged, outcome) in &matrix {
        *counts.entry((*damaged, outcome)).or_default() += 1;
    }
    eprintln!(
        "single-page corruptions of a {pages}-page gateway.db (damaged per integrity_check, outcome) → count: {counts:?}"
    );
    for (page, damaged, outcome) in &matrix {
        if *damaged {
            assert_eq!(
                *outcome, "refused",
                "{page}: a damaged ledger was not refused ({counts:?})"
            );
        } else {
            assert!(
                *outcome == "ran, ledger written" || *outcome == "refused",
                "{page}: {outcome} ({counts:?})"
            );
        }
    }
}

fn metric(admin: &str, name: &str) -> Option<f64> {
    let (_, body) = http("GET", admin, "/metrics", "").ok()?;
    body.lines()
        .find(|l| l.starts_with(name) && !l.starts_with('#'))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn outbox_files(data: &Path) -> u64 {
    ["outbox.db", "outbox.db-wal", "outbox.db-shm"]
        .iter()
        .map(|f| std::fs::metadata(data.join(f)).map_or(0, |m| m.len()))
        .sum()
}

#[test]
#[ignore = "real processes (gateway, simulator); about two minutes; run by .ci/run"]
fn outbox_max_size_bounds_its_files_on_disk() {
    let dir = tempfile::tempdir().unwrap();
    // No broker listens there: everything stays in the outbox.
    let dead = free_port();
    let config = config(
        dir.path(),
        &format!(
            "[mqtt]\nurl = \"mqtt://127.0.0.1:{dead}\"\nheartbeat = \"1s\"\n\n[outbox]\nmax_size = \"1MB\"\n"
        ),
    );
    let (env, _control) = demo_env(dir.path());
    let data = dir.path().join("data");
    let admin = env_get(&env, "BMS_ADMIN_LISTEN").to_owned();
    let _sim = start_sim(&config, &env).unwrap();
    let mut gw = gateway(&config, &env);
    let started = Instant::now();
    let mut peak = 0;
    let mut full_at = None;
    while started.elapsed() < Duration::from_secs(240) {
        peak = peak.max(outbox_files(&data));
        if peak > 1_000_000 {
            break;
        }
        let dropped = metric(&admin, "bms_outbox_dropped_total{sink=\"mqtt\"}").unwrap_or(0.0);
        if dropped > 0.0 && full_at.is_none() {
            full_at = Some(Instant::now());
        }
        // Keep watching well after the first drop.
        if full_at.is_some_and(|t| t.elapsed() > Duration::from_secs(30)) {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    eprintln!(
        "outbox files with max_size = 1MB: peak {peak} bytes; full after {:?}",
        full_at.map(|t| t - started)
    );
    assert!(
        peak <= 1_000_000,
        "outbox.db + WAL + index reached {peak} bytes, over max_size = 1MB"
    );
    assert!(
        full_at.is_some(),
        "the outbox never filled: {}",
        gw.output()
    );
    assert_eq!(gw.interrupt(Duration::from_secs(20)).unwrap(), Some(0));
}

/// Unmounts the tmpfs whatever happens.
struct Tmpfs(PathBuf);

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(&self.0).status();
    }
}

fn is_root() -> bool {
    Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

fn rss_kb(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// Fills the file system of `file`'s folder (appending zeros to `file`)
/// until a write fails.
fn fill(file: &Path) {
    use std::io::Write as _;
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(file)
        .unwrap();
    let chunk = vec![0u8; 4096];
    while f.write_all(&chunk).and_then(|()| f.sync_data()).is_ok() {}
}

fn healthz(admin: &str) -> (u16, Value) {
    // Not listening yet counts as no answer.
    let Ok((code, body)) = http("GET", admin, "/healthz", "") else {
        return (0, Value::Null);
    };
    (code, serde_json::from_str(&body).unwrap_or(Value::Null))
}

fn mosquitto_on(dir: &Path, port: u16) -> Proc {
    require_tool("mosquitto", "apt-get install mosquitto").unwrap();
    let conf = dir.join("mosquitto.conf");
    // No per-client queue limit: the gateway drains its backlog in a burst,
    // and with Mosquitto's default (1000 queued messages) the broker itself
    // would drop what the test subscriber has not taken yet, which the
    // gateway, whose messages were acknowledged, cannot count.
    std::fs::write(
        &conf,
        format!(
            "listener {port} 127.0.0.1\nuser root\nallow_anonymous true\npersistence false\nlog_type error\nmax_queued_messages 0\nmax_inflight_messages 0\n"
        ),
    )
    .unwrap();
    let p = Proc::spawn("mosquitto", Command::new("mosquitto").arg("-c").arg(&conf)).unwrap();
    until("mosquitto to listen", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port))
            .ok()
            .map(|_| ())
    });
    p
}

#[test]
#[ignore = "needs root (a tmpfs data dir) and mosquitto; about three minutes; run by .ci/run"]
fn a_full_data_disk_keeps_every_ticket_drops_telemetry_first_and_recovers_by_itself() {
    if !is_root() {
        eprintln!("SKIPPED: mounting a tmpfs data directory needs root");
        return;
    }
    require_tool("mosquitto_sub", "apt-get install mosquitto-clients").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let ok = Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=8m", "tmpfs"])
        .arg(&data)
        .status()
        .unwrap()
        .success();
    assert!(ok, "mount -t tmpfs failed");
    let _mount = Tmpfs(data.clone());
    let port = free_port();
    let config = config(
        dir.path(),
        &format!(
            "[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\nheartbeat = \"1s\"\nreconnect_max = \"2s\"\n\n[store]\nmin_free = \"2MB\"\n"
        ),
    );
    let (env, control) = demo_env(dir.path());
    let admin = env_get(&env, "BMS_ADMIN_LISTEN").to_owned();
    // Another program's file: 4 MB of the 8.
    let filler = data.join("someone-else.bin");
    std::fs::write(&filler, vec![0u8; 4_000_000]).unwrap();
    let _sim = start_sim(&config, &env).unwrap();
    let mut gw = gateway(&config, &env);

    // 1. The outbox grows to the reserve: telemetry gives way.
    until("the data disk to be low", Duration::from_secs(240), || {
        let (code, h) = healthz(&admin);
        (code == 503 && h["data_disk"] == "low").then_some(())
    });
    let low_rss = rss_kb(gw.id());

    // 2. Another program takes the rest: the disk is full. Faults now must
    //    still become tickets and ledger intervals.
    fill(&filler);
    std::thread::sleep(Duration::from_secs(2));
    inject(
        &control,
        r#"{"device":"fire-panel-1","fault":"fault_bit","point":"fault"}"#,
    );
    inject(&control, r#"{"device":"pump-1","fault":"no_response"}"#);
    inject(
        &control,
        r#"{"device":"leak-b1-1","fault":"fault_bit","point":"leak"}"#,
    );
    let mut max_rss = low_rss;
    let full_since = Instant::now();
    let mut saw_full = false;
    while full_since.elapsed() < Duration::from_secs(30) {
        max_rss = max_rss.max(rss_kb(gw.id()));
        let (code, h) = healthz(&admin);
        assert_eq!(code, 503, "{h}");
        saw_full |= h["data_disk"] == "full";
        std::thread::sleep(Duration::from_millis(500));
    }
    let t = tickets(&config, &env);
    let fire = *t
        .get(&("fire-panel-1".into(), "alarm:fault".into()))
        .unwrap_or_else(|| {
            panic!(
                "no fire panel ticket on a full disk: {t:?}\n{}",
                gw.output()
            )
        });
    let leak = *t
        .get(&("leak-b1-1".into(), "alarm:leak".into()))
        .unwrap_or_else(|| panic!("no leak ticket on a full disk: {t:?}"));
    let dropped_full = metric(&admin, "bms_outbox_dropped_total{sink=\"mqtt\"}").unwrap_or(0.0);
    eprintln!(
        "full disk: RSS {low_rss} kB when low → at most {max_rss} kB during 30 s full; saw full: {saw_full}; telemetry dropped so far: {dropped_full}"
    );
    assert!(
        max_rss < low_rss + 10_000,
        "memory grew from {low_rss} kB to {max_rss} kB on a full disk"
    );

    // 3. The room comes back and so does the broker: delivered within
    //    seconds, by itself.
    let _broker = mosquitto_on(dir.path(), port);
    let mut sub = Proc::spawn(
        "mosquitto_sub",
        Command::new("mosquitto_sub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            "bms/#",
            // The retain flag first: the gateway is back within a second of
            // the broker, possibly before this subscription; what it sent
            // before arrives only as retained messages (with older seqs),
            // and must not count as a gap in the live stream.
            "-F",
            "%r %t %p",
            "-q",
            "1",
        ]),
    )
    .unwrap();
    // mosquitto_sub prints nothing once subscribed: give it a moment.
    std::thread::sleep(Duration::from_secs(1));
    std::fs::remove_file(&filler).unwrap();
    let back = Instant::now();
    let recovered = until("the gateway to recover", Duration::from_secs(90), || {
        let (code, h) = healthz(&admin);
        let waiting = metric(&admin, "bms_outbox_records{sink=\"mqtt\"}").unwrap_or(f64::MAX);
        (code == 200 && waiting < 200.0).then(|| (back.elapsed(), h))
    });
    eprintln!(
        "recovered {:?} after the space and the broker came back: {}",
        recovered.0, recovered.1
    );
    assert!(recovered.0 < Duration::from_secs(30), "{:?}", recovered.0);
    std::thread::sleep(Duration::from_secs(3));
    let dropped = metric(&admin, "bms_outbox_dropped_total{sink=\"mqtt\"}").unwrap_or(0.0);
    let lost = metric(&admin, "bms_outbox_lost_total{sink=\"mqtt\"}").unwrap_or(0.0);
    assert_eq!(gw.interrupt(Duration::from_secs(20)).unwrap(), Some(0));
    std::thread::sleep(Duration::from_millis(500));

    // The tickets reached the broker; what is missing in seq is telemetry
    // the gateway counted as dropped.
    let out = sub.output();
    let mut seqs = BTreeSet::new();
    let mut ticket_topics = BTreeSet::new();
    for line in out.lines() {
        let Some((flag, rest)) = line.split_once(' ') else {
            continue;
        };
        let Some((topic, payload)) = rest.split_once(' ') else {
            continue;
        };
        let stale_retained = flag == "1";
        if topic.ends_with("/status") {
            continue;
        }
        let Ok(v) = serde_json::from_str::<Value>(payload) else {
            continue;
        };
        if let Some(s) = v["seq"].as_u64().filter(|_| !stale_retained) {
            seqs.insert(s);
        }
        if topic.contains("/tickets/") {
            ticket_topics.insert(topic.rsplit('/').next().unwrap().to_owned());
        }
    }
    assert!(
        ticket_topics.contains(&fire.to_string()),
        "{ticket_topics:?}"
    );
    assert!(
        ticket_topics.contains(&leak.to_string()),
        "{ticket_topics:?}"
    );
    let (lo, hi) = (*seqs.first().unwrap(), *seqs.last().unwrap());
    let missing = (hi - lo + 1) as usize - seqs.len();
    eprintln!(
        "seq {lo}..={hi}: {} received, {missing} missing; gateway counted {dropped} telemetry dropped, {lost} other messages lost",
        seqs.len()
    );
    assert_eq!(lost, 0.0);
    assert!(dropped > 0.0);
    assert!(
        missing as f64 <= dropped,
        "{missing} seqs missing but only {dropped} counted as dropped"
    );
    // The ledger kept every ticket.
    let t = tickets(&config, &env);
    assert_eq!(
        t.get(&("fire-panel-1".into(), "alarm:fault".into())),
        Some(&fire)
    );
    assert_eq!(
        t.get(&("leak-b1-1".into(), "alarm:leak".into())),
        Some(&leak)
    );
}
