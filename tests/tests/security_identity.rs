//! Device identity and retained alarms, against a real Mosquitto.
//!
//! - Two gateways of one site with the same device ids are two sets of
//!   devices everywhere in the dashboard: the device API, the history and
//!   the central monthly report (they used to be merged by (site, device)).
//! - An active hard alarm is in the gateway's retained `state`, so whoever
//!   subscribes later (a restarted dashboard) learns of it at once, also
//!   after a restart of the gateway; it leaves the list when it clears.
//!
//! `#[ignore]`d: `.ci/run` installs mosquitto and runs them.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{Read as _, Write as _};
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use bms_e2e::{
    Proc, bin, demo_config, demo_env, free_port, require_tool, run_with_timeout, start_dashboard,
    start_mosquitto, start_sim, this_month_in, until,
};
use serde_json::{Value, json};

const SITE: &str = "demo-sales-centre";

/// GET: (status, lower-case head, body).
fn get(addr: &str, path: &str) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    (status, head.to_ascii_lowercase(), body.to_owned())
}

fn get_json(addr: &str, path: &str) -> Option<(u16, Value)> {
    let (code, _, body) = get(addr, path);
    Some((code, serde_json::from_str(&body).ok()?))
}

/// `mosquitto_pub` of one message.
fn publish(port: u16, topic: &str, payload: &Value, retain: bool) {
    let mut cmd = Command::new("mosquitto_pub");
    cmd.args(["-h", "127.0.0.1", "-p", &port.to_string(), "-q", "1"])
        .args(["-t", topic, "-m", &payload.to_string()]);
    if retain {
        cmd.arg("-r");
    }
    let (code, _, err) = run_with_timeout(&mut cmd, Duration::from_secs(10)).unwrap();
    assert_eq!(code, Some(0), "mosquitto_pub {topic}: {err}");
}

/// The retained message of `topic` (`None` when there is none).
fn retained(port: u16, topic: &str) -> Option<Value> {
    let (_, out, _) = run_with_timeout(
        Command::new("mosquitto_sub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-t",
            topic,
            "-C",
            "1",
            "-W",
            "2",
        ]),
        Duration::from_secs(10),
    )
    .unwrap();
    serde_json::from_str(out.trim()).ok()
}

/// `gateway run --mqtt-url URL --config F`, once connected.
fn gateway(url: &str, config: &Path, env: &[(String, String)]) -> Proc {
    let mut gw = Proc::spawn(
        "gateway run",
        Command::new(bin("gateway"))
            .args(["run", "--mqtt-url", url, "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .envs(env.iter().cloned()),
    )
    .unwrap();
    gw.wait_for("connected to the MQTT broker", Duration::from_secs(30))
        .unwrap();
    gw
}

fn dashboard(dir: &Path, url: &str) -> (Proc, String) {
    let listen = format!("127.0.0.1:{}", free_port());
    let cfg = dir.join("dashboard.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = \"dash-data\"\n[mqtt]\nurl = \"{url}\"\n[http]\nlisten = \"{listen}\"\n"
        ),
    )
    .unwrap();
    (start_dashboard(&cfg, &[]).unwrap(), listen)
}

/// The values of a point in a history answer (`[[ts, avg, min, max], …]`).
fn values(h: &Value, point: &str) -> Vec<f64> {
    h["points"][point]
        .as_array()
        .map(|a| a.iter().filter_map(|r| r[1].as_f64()).collect())
        .unwrap_or_default()
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn the_same_device_id_on_two_gateways_of_a_site_is_two_devices_in_api_history_and_report() {
    require_tool("mosquitto_pub", "apt-get install mosquitto-clients").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = start_mosquitto(dir.path()).unwrap();
    let url = format!("mqtt://127.0.0.1:{port}");
    let (_dash, listen) = dashboard(dir.path(), &url);

    // Gateway gw-1: the real demo building.
    let site_dir = dir.path().join("site");
    std::fs::create_dir_all(&site_dir).unwrap();
    let (env, _control) = demo_env(&site_dir);
    let config = demo_config(&site_dir, "").unwrap();
    let _sim = start_sim(&config, &env).unwrap();
    let _gw = gateway(&url, &config, &env);

    // Gateway gw-2 of the same site, also with a pump-1 (another building
    // of the site): its status, two transitions (down since a minute ago),
    // a telemetry value the demo never has, and its retained state.
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64;
    let base = format!("bms/{SITE}/gw-2");
    publish(
        port,
        &format!("{base}/status"),
        &json!({"state":"online","site":SITE,"gateway":"gw-2","version":"0.1.0","started_at":now - 180_000,"ts":now - 180_000,"seq":1}),
        true,
    );
    for (seq, at, from, to, reason) in [
        (2, now - 120_000, "unknown", "up", Value::Null),
        (3, now - 60_000, "up", "down", json!("comms")),
    ] {
        publish(
            port,
            &format!("{base}/pump-1/event"),
            &json!({"type":"transition","device":"pump-1","from":from,"to":to,"reason":reason,"at":at,"ts":now,"seq":seq}),
            false,
        );
    }
    publish(
        port,
        &format!("{base}/pump-1/telemetry"),
        &json!({"device":"pump-1","class":"pump","points":{"outlet_pressure":123.5},"units":{"outlet_pressure":"bar"},"quality":{},"ts":now,"seq":4}),
        false,
    );
    publish(
        port,
        &format!("{base}/pump-1/state"),
        &json!({"device":"pump-1","class":"pump","name_zh":"B栋1号泵","name_en":"Block B pump 1","location":"B栋",
            "state":"down","since":now - 60_000,"reason":"comms","alarms":[],
            "availability":{"rolling":0.5,"rolling_window_s":60,"month":0.5,"threshold":98.0,"below":true},"ts":now,"seq":5}),
        true,
    );

    // The device API: each gateway's own pump-1.
    let dev = |gw: &str| format!("/api/sites/{SITE}/gateways/{gw}/devices/pump-1");
    let (a, b) = until(
        "both pump-1 in the device API",
        Duration::from_secs(60),
        || {
            let (ca, a) = get_json(&listen, &dev("gw-1"))?;
            let (cb, b) = get_json(&listen, &dev("gw-2"))?;
            (ca == 200 && cb == 200 && a["state"].is_string()).then_some((a, b))
        },
    );
    assert_eq!(
        (a["gateway"].as_str(), a["name_zh"].as_str()),
        (Some("gw-1"), Some("1号生活水泵")),
        "{a}"
    );
    assert_eq!(
        (
            b["gateway"].as_str(),
            b["name_zh"].as_str(),
            b["state"].as_str()
        ),
        (Some("gw-2"), Some("B栋1号泵"), Some("down")),
        "{b}"
    );

    // The old URL without the gateway: ambiguous for pump-1 (409 naming
    // both), a redirect for pump-2 (only gw-1 has one).
    let (code, v) = get_json(&listen, &format!("/api/sites/{SITE}/devices/pump-1")).unwrap();
    assert_eq!(code, 409, "{v}");
    assert_eq!(v["gateways"], json!(["gw-1", "gw-2"]), "{v}");
    let (code, head, _) = get(
        &listen,
        &format!("/api/sites/{SITE}/devices/pump-2/history"),
    );
    assert_eq!(code, 308, "{head}");
    assert!(
        head.contains(&format!(
            "location: /api/sites/{SITE}/gateways/gw-1/devices/pump-2/history"
        )),
        "{head}"
    );

    // The history: each its own series and states.
    let hist = |gw: &str| format!("{}/history?range=24h", dev(gw));
    let (h1, h2) = until(
        "both histories with values",
        Duration::from_secs(60),
        || {
            let (_, h1) = get_json(&listen, &hist("gw-1"))?;
            let (_, h2) = get_json(&listen, &hist("gw-2"))?;
            (!values(&h1, "outlet_pressure").is_empty()
                && !values(&h2, "outlet_pressure").is_empty()
                && !h1["states"].as_array()?.is_empty())
            .then_some((h1, h2))
        },
    );
    assert_eq!(values(&h2, "outlet_pressure"), vec![123.5], "{h2}");
    assert!(
        values(&h1, "outlet_pressure").iter().all(|v| *v < 100.0),
        "gw-1's pump-1 has gw-2's value: {h1}"
    );
    let states = |h: &Value| -> Vec<String> {
        h["states"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s[1].as_str().unwrap().to_owned())
            .collect()
    };
    assert!(states(&h2).contains(&"down".to_owned()), "{h2}");
    assert!(!states(&h1).contains(&"down".to_owned()), "{h1}");

    // The central monthly report: the demo's 19 devices and gw-2's pump-1,
    // each named with its gateway; only gw-2's was down.
    let month = this_month_in("Asia/Shanghai").unwrap();
    let report = until(
        "20 devices in the central report",
        Duration::from_secs(60),
        || {
            let (code, v) = get_json(
                &listen,
                &format!("/reports/{month}?site={SITE}&format=json"),
            )?;
            (code == 200 && v["devices"].as_array()?.len() == 20).then_some(v)
        },
    );
    let device = |id: &str| {
        report["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == id)
            .unwrap_or_else(|| panic!("no {id} in {}", report["devices"]))
            .clone()
    };
    let (p1, p2) = (device("gw-1/pump-1"), device("gw-2/pump-1"));
    assert_eq!(p2["name_zh"], "B栋1号泵");
    assert_eq!(p1["figures"]["downtime_ms"], 0, "{p1}");
    assert!(
        p2["figures"]["downtime_ms"].as_i64().unwrap() >= 59_000,
        "{p2}"
    );
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn an_active_fire_panel_alarm_is_in_the_retained_state_also_after_a_gateway_restart() {
    require_tool("mosquitto_sub", "apt-get install mosquitto-clients").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = start_mosquitto(dir.path()).unwrap();
    let url = format!("mqtt://127.0.0.1:{port}");
    let site_dir = dir.path().join("site");
    std::fs::create_dir_all(&site_dir).unwrap();
    let (env, control) = demo_env(&site_dir);
    // The panel's fault rule never gets to make it Down (down_hold), and the
    // periodic republication is an hour away: a state that shows the alarm
    // (or its end) within seconds was published for the alarm's edge.
    let config = demo_config(
        &site_dir,
        &format!("[health]\ndown_hold = \"1h\"\n\n[mqtt]\nurl = \"{url}\"\nstate_every = \"1h\"\n"),
    )
    .unwrap();
    // The demo story's own fire panel fault (at 90 s) is moved out of the
    // way: the test injects its own and clears it.
    let text = std::fs::read_to_string(&config).unwrap();
    assert!(text.contains("start = \"90s\""));
    std::fs::write(&config, text.replace("start = \"90s\"", "start = \"10h\"")).unwrap();
    let _sim = start_sim(&config, &env).unwrap();
    let mut gw = gateway(&url, &config, &env);
    let topic = format!("bms/{SITE}/gw-1/fire-panel-1/state");

    // Before the fault: the list is there, empty.
    let quiet = until(
        "the panel's retained state",
        Duration::from_secs(30),
        || retained(port, &topic).filter(|v| v["state"] == "up"),
    );
    assert_eq!(quiet["alarms"], json!([]), "{quiet}");

    let (code, body) = bms_e2e::http(
        "POST",
        &control,
        "/faults",
        r#"{"device":"fire-panel-1","fault":"fault_bit","point":"fault"}"#,
    )
    .unwrap();
    assert!(code < 300, "{code} {body}");
    let active = until(
        "the fault in the retained state",
        Duration::from_secs(30),
        || retained(port, &topic).filter(|v| v["alarms"].as_array().is_some_and(|a| !a.is_empty())),
    );
    assert_eq!(active["alarms"][0]["point"], "fault", "{active}");
    assert_eq!(
        active["state"], "up",
        "not the alarm's own republication: {active}"
    );
    let since = active["alarms"][0]["since"].as_i64().unwrap();

    // A restart of the gateway: its fresh retained state (a later seq)
    // still lists the alarm, with the time it began.
    gw.interrupt(Duration::from_secs(15)).unwrap();
    let _gw = {
        let g = gateway(&url, &config, &env);
        let again = until(
            "the restarted gateway's state",
            Duration::from_secs(30),
            || retained(port, &topic).filter(|v| v["seq"].as_u64() > active["seq"].as_u64()),
        );
        assert_eq!(
            again["alarms"],
            json!([{"point": "fault", "since": since}]),
            "{again}"
        );

        // The fault clears: the list is empty again.
        let (code, body) = bms_e2e::http("DELETE", &control, "/faults", "").unwrap();
        assert!(code < 300, "{code} {body}");
        let cleared = until(
            "the cleared alarm in the retained state",
            Duration::from_secs(30),
            || retained(port, &topic).filter(|v| v["alarms"] == json!([])),
        );
        assert!(cleared["seq"].as_u64() > again["seq"].as_u64());
        // After the restart the panel's `panel_fault` rule (the same fault
        // bit) is true but within its hold, so the panel is `unknown` until
        // the hold decides; the fault clearing ends that: the panel is up.
        assert_eq!(cleared["state"], "up", "{again} then {cleared}");
        g
    };
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn a_restarted_dashboard_shows_an_active_alarm_at_once_from_retained_state() {
    require_tool("mosquitto_sub", "apt-get install mosquitto-clients").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = start_mosquitto(dir.path()).unwrap();
    let url = format!("mqtt://127.0.0.1:{port}");
    let site_dir = dir.path().join("site");
    std::fs::create_dir_all(&site_dir).unwrap();
    let (env, control) = demo_env(&site_dir);
    let config = demo_config(&site_dir, "").unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    std::fs::write(&config, text.replace("start = \"90s\"", "start = \"10h\"")).unwrap();
    let _sim = start_sim(&config, &env).unwrap();
    let _gw = gateway(&url, &config, &env);
    let (mut dash, listen) = dashboard(dir.path(), &url);
    bms_e2e::http(
        "POST",
        &control,
        "/faults",
        r#"{"device":"fire-panel-1","fault":"fault_bit","point":"fault"}"#,
    )
    .unwrap();
    let alarms = |listen: &str| -> Option<Vec<Value>> {
        let (_, v) = get_json(listen, &format!("/api/snapshot?site={SITE}"))?;
        v["sites"][0]["alarms"].as_array().cloned()
    };
    until(
        "the alarm on the first dashboard",
        Duration::from_secs(30),
        || alarms(&listen).filter(|a| !a.is_empty()),
    );
    dash.interrupt(Duration::from_secs(10)).unwrap();
    let t = std::time::Instant::now();
    let (_dash2, listen) = dashboard(dir.path(), &url);
    let a = until(
        "the alarm on the restarted dashboard",
        Duration::from_secs(5),
        || alarms(&listen).filter(|a| !a.is_empty()),
    );
    println!("alarm on the restarted dashboard after {:?}", t.elapsed());
    assert_eq!(a[0]["device"], "fire-panel-1", "{a:?}");
    assert_eq!(a[0]["point"], "fault", "{a:?}");
}
