//! The dashboard against real Mosquitto and two real gateways (two sites,
//! each `gateway run` polling its own simulated building): both sites,
//! their devices, states and tickets through the API; an acknowledge made
//! through the dashboard reaches the gateway's ticket store; bad input
//! (wrong login and its rate limit, missing or wrong CSRF token, unknown
//! device or ticket, malformed broker messages). `#[ignore]`d: `.ci/run`
//! installs mosquitto and runs them.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use bms_e2e::{
    Proc, bin, demo_config, demo_env, free_port, http, run_with_timeout, start_dashboard,
    start_sim, until,
};
use serde_json::Value;

/// One site: its folder, environment, configuration, simulator and gateway.
struct Site {
    env: Vec<(String, String)>,
    control: String,
    config: PathBuf,
    _sim: Proc,
    gw: Proc,
}

/// The command key of a site's gateway (at least 32 bytes, as required).
fn secret_of(name: &str) -> String {
    format!("command-secret-of-{name}-for-the-end-to-end-tests")
}

fn site(root: &Path, name: &str, broker: &str) -> Site {
    let dir = root.join(name);
    std::fs::create_dir_all(&dir).unwrap();
    let (mut env, control) = demo_env(&dir);
    env.push(("BMS_CMD_SECRET".into(), secret_of(name)));
    let config = demo_config(&dir, "[commands]\nsecret = { env = \"BMS_CMD_SECRET\" }\n").unwrap();
    let text = std::fs::read_to_string(&config).unwrap();
    let text = text.replace(
        "site = \"demo-sales-centre\"",
        &format!("site = \"{name}\""),
    );
    assert!(text.contains(&format!("site = \"{name}\"")));
    std::fs::write(&config, text).unwrap();
    let sim = start_sim(&config, &env).unwrap();
    let mut gw = Proc::spawn(
        "gateway run",
        Command::new(bin("gateway"))
            .args(["run", "--mqtt-url", broker, "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .envs(env.iter().cloned()),
    )
    .unwrap();
    gw.wait_for("connected to the MQTT broker", Duration::from_secs(20))
        .unwrap();
    Site {
        env,
        control,
        config,
        _sim: sim,
        gw,
    }
}

/// An HTTP request with headers; returns status, response headers, body.
fn request(
    method: &str,
    addr: &str,
    path: &str,
    headers: &[(&str, &str)],
    body: &str,
) -> (u16, String, String) {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut h = String::new();
    for (k, v) in headers {
        h.push_str(&format!("{k}: {v}\r\n"));
    }
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json\r\nContent-Length: {}\r\n{h}Connection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let status = resp.split_whitespace().nth(1).unwrap().parse().unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    (status, head.to_owned(), body.to_owned())
}

fn json(addr: &str, path: &str) -> Value {
    let (code, body) = http("GET", addr, path, "").unwrap();
    assert_eq!(code, 200, "{path}: {body}");
    serde_json::from_str(&body).unwrap()
}

/// The first server-sent snapshot of `path` (HTTP/1.0: no chunking).
fn first_event(addr: &str, path: &str) -> Value {
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(s, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut got = Vec::new();
    let mut chunk = [0u8; 65536];
    loop {
        let n = s.read(&mut chunk).unwrap();
        assert!(n > 0, "{path}: closed before a snapshot");
        got.extend_from_slice(&chunk[..n]);
        let text = String::from_utf8_lossy(&got);
        if let Some(at) = text.find("\ndata: ")
            && let Some(end) = text[at + 7..].find('\n')
        {
            return serde_json::from_str(&text[at + 7..at + 7 + end]).unwrap();
        }
    }
}

fn site_of<'a>(snap: &'a Value, name: &str) -> Option<&'a Value> {
    snap["sites"].as_array()?.iter().find(|s| s["id"] == name)
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn two_gateways_one_dashboard_and_an_acknowledge_that_reaches_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let (_broker, port) = bms_e2e::start_mosquitto(dir.path()).unwrap();
    let url = format!("mqtt://127.0.0.1:{port}");
    let mut a = site(dir.path(), "site-a", &url);
    let b = site(dir.path(), "site-b", &url);

    // The dashboard, with a user and the two gateways' command keys.
    let out = Command::new("sh")
        .arg("-c")
        .arg("echo 'pass-of-zhang' | \"$0\" hash-password")
        .arg(bin("dashboard"))
        .output()
        .unwrap();
    let out = (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).trim().to_owned(),
    );
    assert!(out.0 && out.1.starts_with("$argon2"), "{out:?}");
    let listen = format!("127.0.0.1:{}", free_port());
    let dcfg = dir.path().join("dashboard.toml");
    std::fs::write(
        &dcfg,
        format!(
            "data_dir = \"dash-data\"\nstale_after = \"30s\"\n[mqtt]\nurl = \"{url}\"\n[http]\nlisten = \"{listen}\"\n\
             [[user]]\nname = \"张工\"\npassword_hash = \"{}\"\n\
             [[gateway]]\nsite = \"site-a\"\ncommand_secret = {{ env = \"KEY_A\" }}\n\
             [[gateway]]\nsite = \"site-b\"\ngateway = \"gw-1\"\ncommand_secret = {{ env = \"KEY_B\" }}\n",
            out.1
        ),
    )
    .unwrap();
    let mut dash = start_dashboard(
        &dcfg,
        &[
            ("KEY_A", secret_of("site-a").as_str()),
            ("KEY_B", secret_of("site-b").as_str()),
        ],
    )
    .unwrap();

    // Both sites, every device with a state.
    let snap = until(
        "both sites with 19 devices in state",
        Duration::from_secs(60),
        || {
            let s = json(&listen, "/api/snapshot");
            let ok = ["site-a", "site-b"].iter().all(|n| {
                site_of(&s, n).is_some_and(|x| {
                    let devs = x["devices"].as_array().unwrap();
                    devs.len() == 19 && devs.iter().all(|d| d["state"].is_string())
                })
            });
            ok.then_some(s)
        },
    );
    for n in ["site-a", "site-b"] {
        let s = site_of(&snap, n).unwrap();
        assert_eq!(s["gateways"][0]["status"], "online");
        let pump = s["devices"]
            .as_array()
            .unwrap()
            .iter()
            .find(|d| d["id"] == "pump-1")
            .unwrap();
        assert_eq!(pump["name_zh"], "1号生活水泵");
        assert_eq!(pump["class"], "pump");
        assert!(s["classes"]["pump"]["target"].as_f64().is_some(), "{s:#}");
    }

    // A fire-panel fault on site A: the device goes down, a ticket opens.
    http(
        "POST",
        &a.control,
        "/faults",
        r#"{"device":"fire-panel-1","fault":"fault_bit","point":"fault"}"#,
    )
    .unwrap();
    let ticket = until(
        "site A's fire-panel ticket",
        Duration::from_secs(60),
        || {
            let s = json(&listen, "/api/snapshot");
            let x = site_of(&s, "site-a")?;
            let down = x["devices"]
                .as_array()?
                .iter()
                .any(|d| d["id"] == "fire-panel-1" && d["shown"] == "down");
            let t = x["tickets"]
                .as_array()?
                .iter()
                .find(|t| t["device"] == "fire-panel-1")?
                .clone();
            down.then_some(t)
        },
    );
    let n = ticket["id"].as_u64().unwrap();
    assert_eq!(ticket["severity"], "critical");
    // Site B is untouched.
    let s = json(&listen, "/api/snapshot");
    assert!(
        site_of(&s, "site-b").unwrap()["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["device"] != "fire-panel-1")
    );
    let (code, body) = http("GET", &listen, &format!("/api/tickets/site-a/gw-1/{n}"), "").unwrap();
    assert_eq!(code, 200, "{body}");

    // One building's wall (`/?site=…`): only that site, in the snapshot
    // and in the event stream; a site never heard gives no site at all.
    let ids = |s: &Value| -> Vec<String> {
        s["sites"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x["id"].as_str().unwrap().to_owned())
            .collect()
    };
    let only_a = json(&listen, "/api/snapshot?site=site-a");
    assert_eq!(ids(&only_a), ["site-a"]);
    assert!(
        only_a["events"]
            .as_array()
            .unwrap()
            .iter()
            .all(|e| e["site"] == "site-a"),
        "{}",
        only_a["events"]
    );
    assert!(ids(&json(&listen, "/api/snapshot?site=nowhere")).is_empty());
    assert_eq!(ids(&json(&listen, "/api/snapshot")).len(), 2);
    let only_b = first_event(&listen, "/events?site=site-b");
    assert_eq!(ids(&only_b), ["site-b"]);
    assert!(
        site_of(&only_b, "site-b").unwrap()["tickets"]
            .as_array()
            .unwrap()
            .iter()
            .all(|t| t["device"] != "fire-panel-1")
    );
    assert_eq!(ids(&first_event(&listen, "/events")).len(), 2);

    // Log in, then acknowledge through the dashboard.
    let (code, head, body) = request(
        "POST",
        &listen,
        "/api/login",
        &[],
        r#"{"user":"张工","password":"pass-of-zhang"}"#,
    );
    assert_eq!(code, 200, "{body}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let csrf = serde_json::from_str::<Value>(&body).unwrap()["csrf"]
        .as_str()
        .unwrap()
        .to_owned();
    let ack_path = format!("/api/tickets/site-a/gw-1/{n}/ack");
    let note = r#"{"note":"到场处理"}"#;
    // Missing and wrong CSRF tokens change nothing.
    let (code, _, body) = request("POST", &listen, &ack_path, &[("Cookie", &cookie)], note);
    assert_eq!(code, 403, "{body}");
    let (code, _, _) = request(
        "POST",
        &listen,
        &ack_path,
        &[("Cookie", &cookie), ("X-CSRF-Token", "forged")],
        note,
    );
    assert_eq!(code, 403);
    // No login at all.
    let (code, _, _) = request("POST", &listen, &ack_path, &[("X-CSRF-Token", &csrf)], note);
    assert_eq!(code, 401);
    let (code, _, body) = request(
        "POST",
        &listen,
        &ack_path,
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        note,
    );
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("acknowledged by 张工"), "{body}");
    // It is in the gateway's ticket store.
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(["tickets", "show", &n.to_string(), "--json", "--config"])
            .arg(&a.config)
            .envs(a.env.iter().cloned()),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(code, Some(0), "{out}\n{err}");
    let shown: Value = serde_json::from_str(&out).unwrap();
    assert_eq!(shown["ticket"]["state"], "acknowledged", "{shown:#}");
    assert_eq!(shown["ticket"]["acknowledged"]["by"], "张工");
    assert_eq!(shown["ticket"]["acknowledged"]["note"], "到场处理");
    // And back on the dashboard from the gateway's retained ticket.
    until(
        "the acknowledged ticket on the dashboard",
        Duration::from_secs(15),
        || {
            let t = json(&listen, &format!("/api/tickets/site-a/gw-1/{n}"));
            (t["state"] == "acknowledged").then_some(())
        },
    );
    // Acknowledging again is refused by the gateway, and said so.
    let (code, _, body) = request(
        "POST",
        &listen,
        &ack_path,
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        note,
    );
    assert_eq!(code, 409, "{body}");

    // Unknown device or ticket: 404, as JSON for the API, as a page otherwise.
    let (code, body) = http(
        "GET",
        &listen,
        "/api/sites/site-a/devices/no-such-device",
        "",
    )
    .unwrap();
    assert_eq!(code, 404);
    assert!(body.contains("no-such-device"), "{body}");
    let (code, body) = http("GET", &listen, "/devices/site-a/no-such-device", "").unwrap();
    assert_eq!(code, 404);
    assert!(body.contains("404"), "{body}");
    let (code, _) = http("GET", &listen, "/api/tickets/site-a/gw-1/99999", "").unwrap();
    assert_eq!(code, 404);
    let (code, _, _) = request(
        "POST",
        &listen,
        "/api/tickets/site-a/gw-1/99999/ack",
        &[("Cookie", &cookie), ("X-CSRF-Token", &csrf)],
        note,
    );
    assert_eq!(code, 404);
    let (code, _) = http("GET", &listen, "/devices/site-a/gw-1/pump-1", "").unwrap();
    assert_eq!(code, 200);
    // The URL without the gateway leads to the one gateway with the device.
    let (code, _) = http("GET", &listen, "/devices/site-a/pump-1", "").unwrap();
    assert_eq!(code, 308);

    // Malformed messages on the broker: counted, and the API keeps working.
    for payload in ["not json", "[1,2]", r#"{"seq":1,"state":"sideways"}"#] {
        let st = Command::new("mosquitto_pub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-t",
                "bms/site-a/gw-1/pump-1/state",
                "-m",
                payload,
            ])
            .status()
            .unwrap();
        assert!(st.success());
    }
    until(
        "three malformed messages counted",
        Duration::from_secs(10),
        || {
            let h = json(&listen, "/api/health");
            (h["counters"]["malformed"].as_u64()? >= 3).then_some(())
        },
    );
    let s = json(&listen, "/api/snapshot");
    assert_eq!(
        site_of(&s, "site-a").unwrap()["devices"]
            .as_array()
            .unwrap()
            .len(),
        19
    );

    // Wrong logins, then the limit: even the right password waits.
    for _ in 0..5 {
        let (code, _, _) = request(
            "POST",
            &listen,
            "/api/login",
            &[],
            r#"{"user":"张工","password":"wrong"}"#,
        );
        assert_eq!(code, 401);
    }
    let (code, head, _) = request(
        "POST",
        &listen,
        "/api/login",
        &[],
        r#"{"user":"张工","password":"pass-of-zhang"}"#,
    );
    assert_eq!(code, 429);
    assert!(head.to_ascii_lowercase().contains("retry-after"), "{head}");
    // The session made before still works.
    let (code, _, _) = request("GET", &listen, "/api/me", &[("Cookie", &cookie)], "");
    assert_eq!(code, 200);

    // A gateway stopping cleanly shows as offline, its devices stale.
    assert_eq!(a.gw.interrupt(Duration::from_secs(15)).unwrap(), Some(0));
    until("site A offline and stale", Duration::from_secs(20), || {
        let s = json(&listen, "/api/snapshot");
        let x = site_of(&s, "site-a")?;
        (x["gateways"][0]["status"] == "offline"
            && x["devices"]
                .as_array()?
                .iter()
                .all(|d| d["shown"] == "stale"))
        .then_some(())
    });
    let _ = b;
    assert_eq!(dash.interrupt(Duration::from_secs(10)).unwrap(), Some(0));
}

#[test]
fn busy_ports_and_bad_addresses_are_clear_errors_not_panics() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let busy = taken.local_addr().unwrap().to_string();
    let free = format!("127.0.0.1:{}", free_port());
    for (listen, mqtt, flag) in [(&busy, &free, "--listen"), (&free, &busy, "--mqtt-listen")] {
        let (code, out, err) = run_with_timeout(
            Command::new(bin("dashboard")).args([
                "demo",
                "--listen",
                listen,
                "--mqtt-listen",
                mqtt,
                "--seconds",
                "1",
            ]),
            Duration::from_secs(60),
        )
        .unwrap();
        assert_eq!(code, Some(69), "{out}\n{err}");
        assert!(err.contains(&busy) && err.contains(flag), "{err}");
        assert!(!err.contains("panicked"), "{err}");
    }
    let (code, _, err) = run_with_timeout(
        Command::new(bin("dashboard")).args(["demo", "--listen", "nowhere"]),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(code, Some(64), "{err}");
    assert!(err.contains("--listen"), "{err}");
}

#[test]
fn serve_with_the_embedded_broker_and_a_kiosk_token() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let broker = format!("127.0.0.1:{}", free_port());
    let cfg = dir.path().join("dashboard.toml");
    std::fs::write(
        &cfg,
        format!(
            "[mqtt]\nembedded_listen = \"{broker}\"\n[http]\nlisten = \"{listen}\"\nkiosk_token = {{ env = \"KIOSK\" }}\n"
        ),
    )
    .unwrap();
    let mut dash = start_dashboard(&cfg, &[("KIOSK", "wall-token-1")]).unwrap();
    until(
        "the subscriber connected to the embedded broker",
        Duration::from_secs(10),
        || {
            let (_, _, body) = request("GET", &listen, "/api/health?kiosk=wall-token-1", &[], "");
            body.contains("\"broker_connected\":true").then_some(())
        },
    );
    // Without the token: 401, as JSON for the API and as a page otherwise.
    let (code, _, body) = request("GET", &listen, "/api/snapshot", &[], "");
    assert_eq!(code, 401, "{body}");
    assert!(body.contains("kiosk"), "{body}");
    let (code, _, body) = request("GET", &listen, "/", &[], "");
    assert_eq!(code, 401);
    assert!(body.contains("登录"), "{body}");
    let (code, _, _) = request("GET", &listen, "/?kiosk=wrong", &[], "");
    assert_eq!(code, 401);
    // With it once: the page, and a cookie that opens the API.
    let (code, head, body) = request("GET", &listen, "/?kiosk=wall-token-1", &[], "");
    assert_eq!(code, 200);
    assert!(body.contains("/assets/wall.js"), "{body}");
    let cookie = head
        .lines()
        .find_map(|l| l.strip_prefix("set-cookie: "))
        .and_then(|c| c.split(';').next())
        .unwrap()
        .to_owned();
    let (code, _, body) = request("GET", &listen, "/api/snapshot", &[("Cookie", &cookie)], "");
    assert_eq!(code, 200, "{body}");
    assert!(body.contains("\"sites\":[]"), "{body}");
    // Assets need no token; writing needs a login whatever the kiosk cookie.
    let (code, _, _) = request("GET", &listen, "/assets/uPlot.iife.min.js", &[], "");
    assert_eq!(code, 200);
    let (code, _, _) = request(
        "POST",
        &listen,
        "/api/tickets/s/gw-1/1/ack",
        &[("Cookie", &cookie), ("X-CSRF-Token", "x")],
        "{}",
    );
    assert_eq!(code, 401);
    // No users configured: nobody can log in.
    let (code, _, _) = request(
        "POST",
        &listen,
        "/api/login",
        &[],
        r#"{"user":"a","password":"b"}"#,
    );
    assert_eq!(code, 401);
    assert_eq!(dash.interrupt(Duration::from_secs(10)).unwrap(), Some(0));
}
