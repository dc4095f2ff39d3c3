//! Untrusted MQTT input, against a real Mosquitto and the real dashboard:
//! anyone who may publish under the prefix sends what they like. Forged
//! payloads with markup or wrong types are refused and counted and never
//! reach the snapshot; a forged `seq` of 2^64−1 does not freeze a real
//! gateway's view; floods of fake sites and of near-1 MB telemetry are
//! capped and the dashboard's peak memory stays bounded; two gateways of a
//! site with the same device id stay two devices; the wall page (in
//! headless Chromium) rotates only through the configured sites.
//! `#[ignore]`d: `.ci/run` installs mosquitto and chromium and runs them.
//!
//! Messages are published with a minimal MQTT 3.1.1 client written here
//! (CONNECT, PUBLISH QoS 0, DISCONNECT), so that a flood of ten thousand
//! topics takes a second instead of ten thousand `mosquitto_pub` runs.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::process::Command;
use std::time::Duration;

use bms_e2e::{
    Proc, bin, demo_config, demo_env, free_port, http, start_dashboard, start_sim, until,
};
use serde_json::{Value, json};

const T: i64 = 1_795_750_631_938;
const MARKUP: &str = "<img src=x onerror=alert(1)>";

/// A bare MQTT 3.1.1 publisher (QoS 0).
struct Publisher {
    s: TcpStream,
}

fn remaining_length(mut n: usize, out: &mut Vec<u8>) {
    loop {
        let mut b = (n % 128) as u8;
        n /= 128;
        if n > 0 {
            b |= 0x80;
        }
        out.push(b);
        if n == 0 {
            break;
        }
    }
}

fn string(s: &[u8], out: &mut Vec<u8>) {
    out.extend_from_slice(&(s.len() as u16).to_be_bytes());
    out.extend_from_slice(s);
}

impl Publisher {
    fn connect(port: u16, client_id: &str) -> Publisher {
        let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        // Protocol "MQTT", level 4, clean session, keep-alive 60 s.
        let mut body = Vec::new();
        string(b"MQTT", &mut body);
        body.extend_from_slice(&[4, 0x02, 0, 60]);
        string(client_id.as_bytes(), &mut body);
        let mut pkt = vec![0x10];
        remaining_length(body.len(), &mut pkt);
        pkt.extend_from_slice(&body);
        s.write_all(&pkt).unwrap();
        let mut ack = [0u8; 4];
        s.read_exact(&mut ack).unwrap();
        assert_eq!((ack[0], ack[3]), (0x20, 0), "CONNACK refused: {ack:?}");
        Publisher { s }
    }

    fn publish(&mut self, topic: &str, payload: &[u8], retain: bool) {
        let mut body = Vec::with_capacity(payload.len() + topic.len() + 2);
        string(topic.as_bytes(), &mut body);
        body.extend_from_slice(payload);
        let mut pkt = vec![0x30 | u8::from(retain)];
        remaining_length(body.len(), &mut pkt);
        pkt.extend_from_slice(&body);
        self.s.write_all(&pkt).unwrap();
    }

    /// DISCONNECT, then waits for the broker to close: everything sent
    /// before has been taken by it.
    fn close(mut self) {
        self.s.write_all(&[0xE0, 0]).unwrap();
        let mut rest = Vec::new();
        let _ = self.s.read_to_end(&mut rest);
    }
}

fn get(addr: &str, path: &str) -> Value {
    let (code, body) = http("GET", addr, path, "").unwrap();
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// Peak resident memory (VmHWM) of a process, in KiB.
fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

struct Setup {
    _dir: tempfile::TempDir,
    _broker: Proc,
    port: u16,
    dash: Proc,
    listen: String,
}

/// Mosquitto (anonymous) and a dashboard reading it, with `extra` TOML at
/// the end of the dashboard's configuration.
fn setup(extra: &str) -> Setup {
    let dir = tempfile::tempdir().unwrap();
    let (broker, port) = bms_e2e::start_mosquitto(dir.path()).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let cfg = dir.path().join("dashboard.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"dash-data\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n[http]\nlisten = \"{listen}\"\n{extra}"
        ),
    )
    .unwrap();
    let dash = start_dashboard(&cfg, &[]).unwrap();
    until(
        "the dashboard on the broker",
        Duration::from_secs(20),
        || {
            get(&listen, "/api/health")["broker_connected"]
                .as_bool()
                .filter(|c| *c)
        },
    );
    Setup {
        _dir: dir,
        _broker: broker,
        port,
        dash,
        listen,
    }
}

fn state(site: &str, gw: &str, dev: &str, seq: u64, st: &str) -> (String, Value) {
    (
        format!("bms/{site}/{gw}/{dev}/state"),
        json!({"seq": seq, "ts": T, "device": dev, "class": "pump", "name_zh": "1号泵",
               "name_en": "Pump 1", "location": "B1", "state": st, "since": T, "reason": null,
               "availability": {"month": 0.97, "rolling": 0.9, "threshold": 98.0, "below": true,
                                "rolling_window_s": 900},
               "alarms": []}),
    )
}

fn counter(h: &Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(&h["counters"], |v, k| &v[*k])
        .as_u64()
        .unwrap_or(0)
}

/// Every value under `v` whose key is `key`.
fn all_of<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                if k == key {
                    out.push(x);
                }
                all_of(x, key, out);
            }
        }
        Value::Array(a) => a.iter().for_each(|x| all_of(x, key, out)),
        _ => {}
    }
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn forged_payloads_with_markup_or_wrong_types_are_refused_counted_and_never_shown() {
    let s = setup("");
    let mut p = Publisher::connect(s.port, "attacker-a");
    // The stored-XSS attack: markup where the pages expect a number.
    let (topic, mut v) = state("evil", "gw-1", "pump-1", 5, "up");
    v["availability"]["threshold"] = json!(MARKUP);
    p.publish(&topic, v.to_string().as_bytes(), true);
    // Markup in every id field; wrong types in every other field.
    let mut forged = Vec::new();
    for field in ["device", "class"] {
        let (topic, mut v) = state("evil", "gw-1", "pump-2", 6, "up");
        v[field] = json!(MARKUP);
        forged.push((topic, v));
    }
    for (field, bad) in [
        ("name_zh", json!({"html": MARKUP})),
        ("name_en", json!([MARKUP])),
        ("location", json!(7)),
        ("reason", json!(["comms"])),
        ("state", json!("on-fire")),
        ("since", json!(MARKUP)),
        ("alarms", json!(MARKUP)),
    ] {
        let (topic, mut v) = state("evil", "gw-1", "pump-3", 7, "up");
        v[field] = bad;
        forged.push((topic, v));
    }
    let (topic, mut v) = state("evil", "gw-1", "pump-4", 8, "up");
    v["availability"]["month"] = json!(MARKUP);
    forged.push((topic, v));
    // A transition to a state that does not exist; a ticket whose history
    // is not a list; an alarm naming a markup point; markup in a topic.
    forged.push((
        "bms/evil/gw-1/pump-1/event".into(),
        json!({"seq": 9, "ts": T, "type": "transition", "device": "pump-1", "from": "up",
               "to": "on-fire", "reason": null, "at": T}),
    ));
    forged.push((
        "bms/evil/gw-1/tickets/1".into(),
        json!({"seq": 10, "ts": T, "event": "opened", "at": T, "ticket": {"id": 1,
               "device": "pump-1", "class": "pump", "kind": "availability", "severity": "critical",
               "state": "open", "summary": MARKUP, "opened_ms": T, "deadline_ms": T,
               "acknowledged": null, "recovered_ms": null, "resolved": null, "closed": null,
               "reworks": 0, "reopened_ms": null, "history": MARKUP}}),
    ));
    forged.push((
        "bms/evil/gw-1/alarm".into(),
        json!({"seq": 11, "ts": T, "device": "pump-1", "point": MARKUP, "active": true, "at": T}),
    ));
    forged.push((
        "bms/<svg onload=alert(1)>/gw-1/status".into(),
        json!({"seq": 1, "ts": T, "state": "online"}),
    ));
    let n = forged.len();
    for (topic, v) in &forged {
        p.publish(topic, v.to_string().as_bytes(), true);
    }
    // One good message last: once it shows, everything before was taken.
    let (topic, good) = state("evil", "gw-1", "pump-9", 12, "down");
    p.publish(&topic, good.to_string().as_bytes(), true);
    p.close();
    let h = until(
        "the good state after the forged ones",
        Duration::from_secs(20),
        || {
            let snap = get(&s.listen, "/api/snapshot");
            let shown = snap["sites"][0]["devices"]
                .as_array()?
                .iter()
                .any(|d| d["id"] == "pump-9");
            shown.then(|| get(&s.listen, "/api/health"))
        },
    );
    eprintln!(
        "counters after {} forged messages: {}",
        n + 1,
        h["counters"]
    );
    assert_eq!(counter(&h, &["malformed"]), n as u64, "{h}");
    assert_eq!(counter(&h, &["unknown_topics"]), 1, "{h}");
    assert!(
        counter(&h, &["malformed_by_kind", "state", "shape"]) >= 8,
        "{h}"
    );
    assert_eq!(
        counter(&h, &["malformed_by_kind", "state", "bad_text"]),
        2,
        "{h}"
    );
    assert_eq!(
        counter(&h, &["malformed_by_kind", "event", "shape"]),
        1,
        "{h}"
    );
    assert_eq!(
        counter(&h, &["malformed_by_kind", "ticket", "shape"]),
        1,
        "{h}"
    );
    assert_eq!(
        counter(&h, &["malformed_by_kind", "alarm", "bad_text"]),
        1,
        "{h}"
    );

    let snap = get(&s.listen, "/api/snapshot");
    let text = snap.to_string();
    assert!(
        !text.contains("onerror") && !text.contains("<svg"),
        "{text}"
    );
    let site = &snap["sites"][0];
    let devs = site["devices"].as_array().unwrap();
    assert_eq!(devs.len(), 1, "only the good device: {site}");
    let mut thresholds = Vec::new();
    all_of(&snap, "threshold", &mut thresholds);
    assert!(thresholds.iter().all(|t| t.is_number()), "{thresholds:?}");
    assert!(site["tickets"].as_array().unwrap().is_empty());
    assert!(site["alarms"].as_array().unwrap().is_empty());

    // The same counters for Prometheus, grouped per metric.
    let (code, metrics) = http("GET", &s.listen, "/metrics", "").unwrap();
    assert_eq!(code, 200);
    assert!(
        metrics.contains("# TYPE bms_dashboard_malformed_total counter\n"),
        "{metrics}"
    );
    assert!(
        metrics.contains("bms_dashboard_malformed_total{kind=\"ticket\",reason=\"shape\"} 1\n"),
        "{metrics}"
    );
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn a_forged_seq_of_u64_max_does_not_freeze_a_real_gateways_view() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = bms_e2e::start_mosquitto(dir.path()).unwrap();
    let url = format!("mqtt://127.0.0.1:{port}");
    let gdir = dir.path().join("site");
    std::fs::create_dir_all(&gdir).unwrap();
    let (env, _control) = demo_env(&gdir);
    let config = demo_config(&gdir, "").unwrap();
    let _sim = start_sim(&config, &env).unwrap();
    let mut gw = Proc::spawn(
        "gateway run",
        Command::new(bin("gateway"))
            .args(["run", "--mqtt-url", &url, "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .envs(env.iter().cloned()),
    )
    .unwrap();
    gw.wait_for("connected to the MQTT broker", Duration::from_secs(20))
        .unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let cfg = dir.path().join("dashboard.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"dash-data\"\n[mqtt]\nurl = \"{url}\"\n[http]\nlisten = \"{listen}\"\n"
        ),
    )
    .unwrap();
    let _dash = start_dashboard(&cfg, &[]).unwrap();
    // The real gateway's numbering, once live messages flow.
    let (site, gateway, device, seq) = until(
        "live messages of the real gateway",
        Duration::from_secs(60),
        || {
            let snap = get(&listen, "/api/snapshot");
            let site = &snap["sites"][0];
            let g = &site["gateways"][0];
            let seq = g["seq"].as_u64().filter(|s| *s > 0)?;
            let dev = site["devices"]
                .as_array()?
                .iter()
                .find(|d| d["state"].is_string())?;
            Some((
                site["id"].as_str()?.to_owned(),
                g["id"].as_str()?.to_owned(),
                dev["id"].as_str()?.to_owned(),
                seq,
            ))
        },
    );
    // The attack: one well-formed state on the real gateway's topic, seq 2^64−1.
    let mut p = Publisher::connect(port, "attacker-b");
    let (topic, v) = state(&site, &gateway, &device, u64::MAX, "maintenance");
    p.publish(&topic, v.to_string().as_bytes(), false);
    p.close();
    // Real messages keep applying: the high mark moves on, and is real.
    let after = until(
        "real messages after the forged one",
        Duration::from_secs(60),
        || {
            let snap = get(&listen, "/api/snapshot");
            let s = snap["sites"][0]["gateways"][0]["seq"].as_u64()?;
            (s > seq + 20 && s < 1 << 40).then_some(s)
        },
    );
    let h = get(&listen, "/api/health");
    eprintln!(
        "seq before {seq}, after {after}; counters {}",
        h["counters"]
    );
    let snap = get(&listen, "/api/snapshot");
    let d = snap["sites"][0]["devices"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["id"] == device.as_str())
        .unwrap()
        .clone();
    assert_ne!(
        d["state"], "maintenance",
        "the forged state was believed: {d}"
    );
    assert!(counter(&h, &["missing"]) < 1 << 40, "{h}");
    gw.interrupt(Duration::from_secs(10)).unwrap();
}

fn flood_sites(port: u16, n: usize) {
    let mut p = Publisher::connect(port, "attacker-c");
    for i in 0..n {
        let (topic, v) = state(&format!("fake-{i}"), "gw-1", "pump-1", 1, "up");
        p.publish(&topic, v.to_string().as_bytes(), false);
    }
    p.close();
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn ten_thousand_fake_sites_are_capped_and_memory_stays_bounded() {
    let s = setup("");
    let pid = s.dash.id();
    let before = vm_hwm_kib(pid);
    flood_sites(s.port, 10_000);
    let h = until("the flood taken", Duration::from_secs(60), || {
        let h = get(&s.listen, "/api/health");
        (counter(&h, &["messages"]) >= 9_900).then_some(h)
    });
    // Let the rest in, then measure.
    std::thread::sleep(Duration::from_secs(2));
    let h2 = get(&s.listen, "/api/health");
    let snap = get(&s.listen, "/api/snapshot");
    let after = vm_hwm_kib(pid);
    eprintln!(
        "10 000 fake sites: VmHWM {before} KiB → {after} KiB; sites kept {}; refused {} (first look {})",
        snap["sites"].as_array().unwrap().len(),
        counter(&h2, &["refused_by_cap", "sites"]),
        counter(&h, &["refused_by_cap", "sites"]),
    );
    assert_eq!(snap["sites"].as_array().unwrap().len(), 200);
    assert!(counter(&h2, &["refused_by_cap", "sites"]) >= 9_700, "{h2}");
    assert!(after < before + 40 * 1024, "{before} → {after} KiB");
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn near_one_megabyte_telemetry_is_refused_by_the_bytes_cap_and_memory_stays_bounded() {
    let s = setup("");
    let pid = s.dash.id();
    let before = vm_hwm_kib(pid);
    let mut p = Publisher::connect(s.port, "attacker-d");
    // Valid telemetry in all but size, of 50 devices: 2 000 points of 450
    // bytes each (0.9 MB).
    for k in 0..50 {
        let points: serde_json::Map<String, Value> = (0..2000)
            .map(|i| (format!("p{i}"), json!(format!("{k}{}", "x".repeat(450)))))
            .collect();
        let dev = format!("pump-{k}");
        let v = json!({"seq": k + 1, "ts": T, "device": dev, "points": points});
        let bytes = v.to_string().into_bytes();
        assert!(bytes.len() > 900_000 && bytes.len() < 1_000_000);
        p.publish(&format!("bms/site-1/gw-1/{dev}/telemetry"), &bytes, false);
    }
    p.close();
    let h = until("50 messages taken", Duration::from_secs(120), || {
        let h = get(&s.listen, "/api/health");
        (counter(&h, &["messages"]) >= 50).then_some(h)
    });
    let (code, body) = http("GET", &s.listen, "/api/snapshot", "").unwrap();
    let after = vm_hwm_kib(pid);
    eprintln!(
        "50 × 0.9 MB telemetry: VmHWM {before} KiB → {after} KiB; snapshot {} bytes; counters {}",
        body.len(),
        h["counters"]
    );
    assert_eq!(code, 200);
    assert!(body.len() < 10_000, "{}", body.len());
    assert_eq!(counter(&h, &["refused_by_cap", "payload_bytes"]), 50, "{h}");
    assert!(after < before + 64 * 1024, "{before} → {after} KiB");
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn two_gateways_of_one_site_with_the_same_device_id_stay_two_devices() {
    let s = setup("");
    let mut p = Publisher::connect(s.port, "two-gateways");
    for (gw, st) in [("gw-1", "up"), ("gw-2", "down")] {
        let (topic, v) = state("site-x", gw, "pump-1", 3, st);
        p.publish(&topic, v.to_string().as_bytes(), true);
    }
    p.close();
    let devs = until("both devices", Duration::from_secs(20), || {
        let snap = get(&s.listen, "/api/snapshot");
        let devs = snap["sites"][0]["devices"].as_array()?.clone();
        (devs.len() == 2).then_some(devs)
    });
    let mut seen: Vec<(String, String)> = devs
        .iter()
        .map(|d| {
            assert_eq!(d["id"], "pump-1");
            (
                d["gateway"].as_str().unwrap().to_owned(),
                d["state"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    seen.sort();
    assert_eq!(
        seen,
        [
            ("gw-1".to_owned(), "up".to_owned()),
            ("gw-2".to_owned(), "down".to_owned())
        ]
    );
}

/// The wall page's DOM after its scripts ran in headless Chromium.
fn wall_dom(listen: &str) -> String {
    bms_e2e::require_tool("chromium", "apt-get install chromium").unwrap();
    let profile = tempfile::tempdir().unwrap();
    let (code, out, err) = bms_e2e::run_with_timeout(
        Command::new("chromium")
            .args([
                "--headless",
                "--no-sandbox",
                "--disable-gpu",
                "--timeout=15000",
                "--dump-dom",
            ])
            .arg(format!("--user-data-dir={}", profile.path().display()))
            .arg(format!("http://{listen}/")),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(code, Some(0), "{err}");
    out
}

#[test]
#[ignore = "needs mosquitto and chromium (.ci/run installs them)"]
fn the_wall_rotates_only_through_the_configured_sites() {
    let s = setup("[[report_site]]\nsite = \"real\"\n");
    let mut p = Publisher::connect(s.port, "fake-sites");
    for site in ["fake-1", "fake-2", "real", "fake-3"] {
        let (topic, v) = state(site, "gw-1", "pump-1", 1, "up");
        p.publish(&topic, v.to_string().as_bytes(), true);
    }
    p.close();
    until("four sites heard", Duration::from_secs(20), || {
        let snap = get(&s.listen, "/api/snapshot");
        (snap["sites"].as_array()?.len() == 4).then_some(())
    });
    // Headless Chromium dumps the DOM soon after load; try until the first
    // snapshot had arrived and was drawn.
    let dom = until("the wall drawn", Duration::from_secs(90), || {
        let dom = wall_dom(&s.listen);
        (!dom.contains(r#"id="site">…<"#)).then_some(dom)
    });
    // The real site is shown, and it is the only one in the rotation (no
    // dots: the dots mark the rotated sites when there are several).
    // (The wall writes the site's full name in a title attribute too.)
    assert!(dom.contains(r#"id="site" title="real">real<"#), "{dom}");
    assert!(dom.contains(r#"id="dots"></div>"#), "{dom}");
}
