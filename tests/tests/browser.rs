//! The wall page in real headless Chromium, driven over WebDriver
//! (Debian's `chromium` + `chromium-driver`, spoken to in plain HTTP: no
//! browser-automation crate or npm package needed). `dashboard demo` runs
//! the whole system; the test trips the fire panel through the
//! simulator's control API, sees its tile turn red and the ticket appear,
//! logs in, acknowledges the ticket, and saves screenshots (zh-CN and en)
//! under `target/<profile>/browser-artifacts/`. `#[ignore]`d: `.ci/run`
//! installs chromium and chromium-driver.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use bms_e2e::{Proc, bin, free_port, http, require_tool};
use serde_json::{Value, json};

/// One HTTP/1.1 exchange that reads exactly `Content-Length` bytes
/// (chromedriver keeps connections open whatever the request says).
fn wd_http(method: &str, addr: &str, path: &str, body: &str) -> (u16, String) {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let mut s = std::net::TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .unwrap();
    let mut r = BufReader::new(s);
    let mut status = String::new();
    r.read_line(&mut status).unwrap();
    let code = status.split_whitespace().nth(1).unwrap().parse().unwrap();
    let mut len = 0usize;
    loop {
        let mut line = String::new();
        r.read_line(&mut line).unwrap();
        let line = line.trim_end();
        if line.is_empty() {
            break;
        }
        if let Some((k, v)) = line.split_once(':')
            && k.eq_ignore_ascii_case("content-length")
        {
            len = v.trim().parse().unwrap();
        }
    }
    let mut buf = vec![0u8; len];
    r.read_exact(&mut buf).unwrap();
    (code, String::from_utf8(buf).unwrap())
}

/// A WebDriver session on a chromedriver of our own.
struct Browser {
    driver: String,
    session: String,
    _proc: Proc,
    _profile: tempfile::TempDir,
}

impl Browser {
    fn start() -> Browser {
        require_tool("chromedriver", "apt-get install chromium chromium-driver").unwrap();
        require_tool("chromium", "apt-get install chromium").unwrap();
        let port = free_port();
        let proc = Proc::spawn(
            "chromedriver",
            Command::new("chromedriver").arg(format!("--port={port}")),
        )
        .unwrap();
        let driver = format!("127.0.0.1:{port}");
        let deadline = Instant::now() + Duration::from_secs(15);
        while std::net::TcpStream::connect(&driver).is_err() {
            assert!(Instant::now() < deadline, "chromedriver did not listen");
            std::thread::sleep(Duration::from_millis(100));
        }
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": chromium_path(),
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--window-size=1920,1080",
                     "--hide-scrollbars", format!("--user-data-dir={}", profile.path().display())],
        }}}});
        let (code, body) = wd_http("POST", &driver, "/session", &caps.to_string());
        assert_eq!(code, 200, "new session: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let session = v["value"]["sessionId"].as_str().unwrap().to_owned();
        let b = Browser {
            driver,
            session,
            _proc: proc,
            _profile: profile,
        };
        // A 1920×1080 viewport (the window's own bars come on top).
        b.cmd(
            "POST",
            "/window/rect",
            json!({"width": 1920, "height": 1080}),
        );
        b.go("about:blank");
        let inner = b.js("return [innerWidth, innerHeight];");
        let (w, h) = (inner[0].as_i64().unwrap(), inner[1].as_i64().unwrap());
        b.cmd(
            "POST",
            "/window/rect",
            json!({"width": 1920 + 1920 - w, "height": 1080 + 1080 - h}),
        );
        b
    }

    fn cmd(&self, method: &str, path: &str, body: Value) -> Value {
        let p = format!("/session/{}{path}", self.session);
        let body = if body.is_null() {
            String::new()
        } else {
            body.to_string()
        };
        let (code, text) = wd_http(method, &self.driver, &p, &body);
        assert_eq!(code, 200, "{method} {path}: {text}");
        serde_json::from_str::<Value>(&text).unwrap()["value"].take()
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url }));
    }

    /// Runs `script` (a function body; `return` a value) in the page.
    fn js(&self, script: &str) -> Value {
        self.cmd(
            "POST",
            "/execute/sync",
            json!({"script": script, "args": []}),
        )
    }

    /// Waits until `script` returns true.
    fn wait(&self, what: &str, script: &str, timeout: Duration) {
        let deadline = Instant::now() + timeout;
        while self.js(script) != json!(true) {
            assert!(
                Instant::now() < deadline,
                "timed out in the browser waiting for {what}"
            );
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Sets the viewport (the page's inner size) to `w`×`h`.
    fn viewport(&self, w: i64, h: i64) {
        self.cmd("POST", "/window/rect", json!({"width": w, "height": h}));
        let inner = self.js("return [innerWidth, innerHeight];");
        let (iw, ih) = (inner[0].as_i64().unwrap(), inner[1].as_i64().unwrap());
        self.cmd(
            "POST",
            "/window/rect",
            json!({"width": w + w - iw, "height": h + h - ih}),
        );
    }

    fn screenshot(&self, file: &PathBuf) {
        let b64 = self.cmd("GET", "/screenshot", Value::Null);
        let png = base64_decode(b64.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(file, png).unwrap();
        println!("screenshot: {}", file.display());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = wd_http(
            "DELETE",
            &self.driver,
            &format!("/session/{}", self.session),
            "",
        );
    }
}

fn chromium_path() -> String {
    for p in ["/usr/bin/chromium", "/usr/bin/chromium-browser"] {
        if std::path::Path::new(p).exists() {
            return p.to_owned();
        }
    }
    "chromium".to_owned()
}

/// Standard base64 (the WebDriver screenshot), padding allowed.
fn base64_decode(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        } as u32)
    };
    let mut out = Vec::with_capacity(s.len() * 3 / 4);
    let (mut acc, mut bits) = (0u32, 0);
    for c in s.bytes().filter_map(val) {
        acc = (acc << 6) | c;
        bits += 6;
        if bits >= 8 {
            bits -= 8;
            out.push((acc >> bits) as u8);
            acc &= (1 << bits) - 1;
        }
    }
    out
}

#[test]
#[ignore = "needs chromium and chromium-driver (.ci/run installs them)"]
fn the_wall_page_shows_a_trip_and_a_ticket_that_is_acknowledged_in_the_browser() {
    let dir = tempfile::tempdir().unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mqtt = format!("127.0.0.1:{}", free_port());
    let mut demo = Proc::spawn(
        "dashboard demo",
        Command::new(bin("dashboard"))
            .args([
                "demo",
                "--listen",
                &listen,
                "--mqtt-listen",
                &mqtt,
                "--data-dir",
            ])
            .arg(dir.path()),
    )
    .unwrap();
    demo.wait_for("Ctrl-C stops", Duration::from_secs(30))
        .unwrap();
    let control = demo
        .output()
        .lines()
        .find_map(|l| l.trim().strip_prefix("simulator:"))
        .and_then(|l| l.trim().strip_prefix("http://"))
        .and_then(|l| l.split('/').next())
        .unwrap()
        .to_owned();
    let artifacts = bin("dashboard").parent().unwrap().join("browser-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();

    let b = Browser::start();
    let base = format!("http://{listen}");
    b.go(&format!("{base}/?lang=zh-CN"));
    let tile = r#"document.querySelector('.tile[data-device="fire-panel-1"]')"#;
    b.wait(
        "the fire panel's tile, up",
        &format!("const t = {tile}; return !!t && t.dataset.state === 'up';"),
        Duration::from_secs(40),
    );
    // The whole building fits on a 1920×1080 screen without scrolling.
    b.wait(
        "19 tiles",
        "return document.querySelectorAll('.tile').length >= 19;",
        Duration::from_secs(30),
    );
    let fit = b.js(
        "const tiles = [...document.querySelectorAll('.tile')];
         return {tiles: tiles.length, inner: [innerWidth, innerHeight],
                 bottom: Math.max(...tiles.map(t => t.getBoundingClientRect().bottom)),
                 scroll: [document.documentElement.scrollWidth, document.documentElement.scrollHeight]};",
    );
    b.screenshot(&artifacts.join("wall-start.png"));
    let inner_h = fit["inner"][1].as_f64().unwrap();
    assert!(
        fit["inner"][0].as_f64().unwrap() >= 1900.0
            && inner_h >= 1080.0
            && fit["bottom"].as_f64().unwrap() <= inner_h
            && fit["scroll"][1].as_f64().unwrap() <= inner_h,
        "the wall page does not fit 1920×1080: {fit}"
    );

    // Trip the fire panel: its tile turns red, the banner and the ticket appear.
    let (code, body) = http(
        "POST",
        &control,
        "/faults",
        r#"{"device":"fire-panel-1","fault":"fault_bit","point":"fault"}"#,
    )
    .unwrap();
    assert!(code / 100 == 2, "{code} {body}");
    b.wait(
        "the fire panel's tile, red",
        &format!(
            "const t = {tile}; if (!t || t.dataset.state !== 'down') return false;
             const m = getComputedStyle(t).backgroundColor.match(/\\d+/g).map(Number);
             return m[0] > 150 && m[1] < 90 && m[2] < 90;"
        ),
        Duration::from_secs(30),
    );
    b.wait(
        "the ticket on the wall and the alarm banner",
        "return !!document.querySelector('.tk.critical') && document.getElementById('banner').classList.contains('on');",
        Duration::from_secs(30),
    );
    b.screenshot(&artifacts.join("wall-zh.png"));
    b.go(&format!("{base}/?lang=en"));
    b.wait(
        "the English wall",
        "return document.getElementById('tk-title').textContent === 'Open tickets' && !!document.querySelector('.tk.critical');",
        Duration::from_secs(20),
    );
    b.screenshot(&artifacts.join("wall-en.png"));

    // Log in and acknowledge the ticket in the ticket page.
    b.go(&format!("{base}/tickets"));
    b.wait(
        "the login form",
        "return !document.getElementById('login').hidden;",
        Duration::from_secs(10),
    );
    b.js("document.getElementById('user').value = 'demo';
         document.getElementById('password').value = 'demo-2026';
         document.getElementById('login').requestSubmit(); return true;");
    b.wait(
        "the login",
        "return document.getElementById('login').hidden && document.getElementById('who').textContent.includes('demo');",
        Duration::from_secs(20),
    );
    b.wait(
        "the fire panel's ticket in the list",
        // The list names devices by their display name, not their id.
        "const r = [...document.querySelectorAll('#rows tr')].find(r => r.textContent.includes('Fire alarm control panel'));
         if (!r) return false; r.click(); return !!document.getElementById('do-ack');",
        Duration::from_secs(20),
    );
    b.js("document.getElementById('note').value = 'on site';
         document.getElementById('do-ack').click(); return true;");
    b.wait(
        "the gateway's confirmation",
        "const m = document.getElementById('act-msg'); return !!m && m.classList.contains('ok');",
        Duration::from_secs(20),
    );
    b.screenshot(&artifacts.join("tickets-en.png"));
    // The wall shows who acknowledged it.
    b.go(&format!("{base}/?lang=zh-CN"));
    b.wait(
        "the acknowledgement on the wall",
        "const t = document.querySelector('.tk.critical'); return !!t && t.textContent.includes('demo');",
        Duration::from_secs(20),
    );
    // One building's wall: `/?site=` shows that site (by its display
    // name, `site_name_en`); an unknown one says
    // so by name instead of showing another building.
    b.go(&format!("{base}/?lang=en&site=demo-sales-centre"));
    b.wait(
        "the pinned site's wall",
        "return document.getElementById('site').textContent === 'Demo sales centre' \
         && document.querySelectorAll('.tile').length >= 19;",
        Duration::from_secs(20),
    );
    b.go(&format!("{base}/?lang=en&site=nowhere"));
    b.wait(
        "the unknown site named",
        "return window.__lastSnapshotAt !== undefined \
         && document.getElementById('site').textContent === 'nowhere · no data' \
         && document.querySelectorAll('.tile').length === 0;",
        Duration::from_secs(20),
    );
    println!("browser artifacts in {}", artifacts.display());
    drop(b);
    assert_eq!(demo.interrupt(Duration::from_secs(15)).unwrap(), Some(0));
}

/// A webhook receiver on 127.0.0.1:0 answering 200; the bodies it got.
fn webhook_receiver() -> (String, std::sync::Arc<std::sync::Mutex<Vec<String>>>) {
    use std::io::{BufRead as _, BufReader, Read as _, Write as _};
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alerts", l.local_addr().unwrap());
    let bodies: std::sync::Arc<std::sync::Mutex<Vec<String>>> = Default::default();
    let b = bodies.clone();
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let mut len = 0usize;
            loop {
                let mut line = String::new();
                if r.read_line(&mut line).unwrap_or(0) == 0 {
                    break;
                }
                let l = line.trim_end().to_ascii_lowercase();
                if l.is_empty() {
                    break;
                }
                if let Some(v) = l.strip_prefix("content-length:") {
                    len = v.trim().parse().unwrap_or(0);
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            b.lock()
                .unwrap()
                .push(String::from_utf8_lossy(&body).into_owned());
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    (url, bodies)
}

/// What the phone layout check finds wrong on the page now (empty: fine):
/// horizontal scrolling, an element wider than its box or outside the
/// viewport, text broken one character per line, a snake_case identifier
/// in the visible text, an action button outside the viewport.
const LAYOUT_PROBLEMS: &str = r#"
const W = innerWidth, H = innerHeight, bad = [];
const de = document.documentElement;
if (de.scrollWidth > W + 1) bad.push('horizontal scroll: ' + de.scrollWidth + ' > ' + W);
for (const e of document.body.querySelectorAll('*')) {
  if (!(e instanceof HTMLElement) || e.offsetParent === null && getComputedStyle(e).position !== 'fixed') continue;
  const r = e.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  const name = e.tagName + (e.id ? '#' + e.id : '') + (e.className ? '.' + String(e.className).split(' ')[0] : '');
  if (r.left < -1 || r.right > W + 1) bad.push(name + ' outside the viewport: ' + Math.round(r.left) + '–' + Math.round(r.right));
  if (e.scrollWidth > e.clientWidth + 1 && getComputedStyle(e).overflowX !== 'visible' && e.tagName !== 'TEXTAREA')
    bad.push(name + ' overflows its box: ' + e.scrollWidth + ' > ' + e.clientWidth);
  // A short word (no space inside: a label, a state, a date) on more than one line.
  for (const n of e.childNodes) {
    const w = n.nodeType === 3 ? n.textContent.trim() : '';
    if (w.length < 2 || w.length > 12 || /\s/.test(w)) continue;
    const range = document.createRange();
    range.selectNodeContents(n);
    const tops = new Set([...range.getClientRects()].filter(q => q.width > 0).map(q => Math.round(q.top)));
    if (tops.size > 1) bad.push(name + ' breaks the word "' + w + '" over ' + tops.size + ' lines');
  }
}
const snake = document.body.innerText.match(/\b[a-z][a-z0-9]*_[a-z0-9_]+\b/g);
if (snake) bad.push('snake_case in the text: ' + snake.join(', '));
const btns = [...document.querySelectorAll('#actions button')];
if (!btns.length) bad.push('no action buttons');
for (const b of btns) {
  const r = b.getBoundingClientRect();
  if (r.left < 0 || r.right > W || r.top < 0 || r.bottom > H) bad.push('button ' + b.id + ' outside the viewport: ' + JSON.stringify([r.left, r.top, r.right, r.bottom]));
}
return bad;
"#;

#[test]
#[ignore = "needs chromium, chromium-driver and mosquitto (.ci/run installs them)"]
fn the_alert_link_opens_the_phone_page_where_arrival_and_acknowledgement_reach_the_gateway() {
    use bms_e2e::{
        demo_config, demo_env, run_with_timeout, start_dashboard, start_mosquitto, start_sim, until,
    };
    const KEY: &str = "command-key-of-the-phone-ticket-page-test";
    let dir = tempfile::tempdir().unwrap();
    let (_mosquitto, port) = start_mosquitto(dir.path()).unwrap();
    let broker = format!("mqtt://127.0.0.1:{port}");
    let listen = format!("127.0.0.1:{}", free_port());
    let (hook, bodies) = webhook_receiver();

    // The gateway: the demo building, signed commands on, alerts to the hook
    // with the documented link form.
    let (mut env, control) = demo_env(dir.path());
    env.push(("BMS_CMD_SECRET".into(), KEY.into()));
    let extra = format!(
        r#"
[commands]
secret = {{ env = "BMS_CMD_SECRET" }}

[alerts]
dashboard_url = "http://{listen}/tickets/{{site}}/{{gateway}}/{{id}}"
retry_min = "200ms"
retry_max = "1s"

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
url = "{hook}"

[[alerts.person]]
id = "zhang"
name = "张工"
email = "zhang@example.com"
mobile = "13800000001"

[alerts.rotation]
every = "week"
start = "2026-11-02"

[[alerts.rotation.tier]]
name = "值班工程师"
people = ["zhang"]
"#
    );
    let config = demo_config(dir.path(), &extra).unwrap();
    let _sim = start_sim(&config, &env).unwrap();
    let mut gw = Proc::spawn(
        "gateway run",
        Command::new(bin("gateway"))
            .args(["run", "--mqtt-url", &broker, "--config"])
            .arg(&config)
            .env("RUST_LOG", "info")
            .envs(env.iter().cloned()),
    )
    .unwrap();
    gw.wait_for("connected to the MQTT broker", Duration::from_secs(30))
        .unwrap();

    // The dashboard, with the on-call engineer's login and the key.
    let out = Command::new("sh")
        .arg("-c")
        .arg("echo 'pass-of-zhang' | \"$0\" hash-password")
        .arg(bin("dashboard"))
        .output()
        .unwrap();
    let hash = String::from_utf8_lossy(&out.stdout).trim().to_owned();
    let dash_cfg = dir.path().join("dashboard.toml");
    std::fs::write(
        &dash_cfg,
        format!(
            "data_dir = \"dash-data\"\n[mqtt]\nurl = \"{broker}\"\n[http]\nlisten = \"{listen}\"\n\
             [[user]]\nname = \"zhang\"\npassword_hash = \"{hash}\"\n\
             [[gateway]]\nsite = \"demo-sales-centre\"\ncommand_secret = {{ env = \"KEY_A\" }}\n"
        ),
    )
    .unwrap();
    let mut dash = start_dashboard(&dash_cfg, &[("KEY_A", KEY), ("RUST_LOG", "info")]).unwrap();

    // A fire-panel fault: the alert reaches the hook with the link.
    std::thread::sleep(Duration::from_secs(3));
    let (code, body) = http(
        "POST",
        &control,
        "/faults",
        r#"{"device":"fire-panel-1","fault":"fault_bit","point":"fault"}"#,
    )
    .unwrap();
    assert!(code / 100 == 2, "{code} {body}");
    let link = until("the alert with its link", Duration::from_secs(60), || {
        bodies.lock().unwrap().iter().find_map(|b| {
            let v: Value = serde_json::from_str(b).ok()?;
            let text = v["text"].as_str()?.to_owned();
            let at = text.find("http://")?;
            Some(text[at..].split_whitespace().next()?.to_owned())
        })
    });
    let id: u64 = link.rsplit('/').next().unwrap().parse().unwrap();
    assert_eq!(
        link,
        format!("http://{listen}/tickets/demo-sales-centre/gw-1/{id}")
    );
    // The page answers (not 404) once the dashboard has the ticket.
    until(
        "the ticket on the dashboard",
        Duration::from_secs(30),
        || {
            let (code, _) = http(
                "GET",
                &listen,
                &format!("/api/tickets/demo-sales-centre/gw-1/{id}"),
                "",
            )
            .ok()?;
            (code == 200).then_some(())
        },
    );
    let (code, _) = http(
        "GET",
        &listen,
        &format!("/tickets/demo-sales-centre/gw-1/{id}"),
        "",
    )
    .unwrap();
    assert_eq!(code, 200);
    let (code, page) = http("GET", &listen, "/tickets/demo-sales-centre/gw-1/99999", "").unwrap();
    assert_eq!(code, 404);
    assert!(page.contains("找不到工单"), "{page}");

    let artifacts = bin("dashboard").parent().unwrap().join("browser-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let b = Browser::start();
    b.viewport(390, 844);
    b.go(&format!("{link}?lang=zh-CN"));
    b.wait(
        "the login form",
        "return !document.getElementById('login').hidden && !!document.querySelector('.ph-title');",
        Duration::from_secs(20),
    );
    b.js("document.getElementById('user').value = 'zhang';
         document.getElementById('password').value = 'pass-of-zhang';
         document.getElementById('login').requestSubmit(); return true;");
    b.wait(
        "the buttons and the device's values",
        "return !!document.getElementById('do-arrive') && !!document.getElementById('do-ack') \
         && document.querySelectorAll('#device tr').length > 0 && !!document.querySelector('#hour h2');",
        Duration::from_secs(20),
    );
    let problems = b.js(LAYOUT_PROBLEMS);
    b.screenshot(&artifacts.join("phone-ticket-zh-390.png"));
    assert_eq!(problems, json!([]), "zh at 390×844");
    assert_eq!(
        b.js("return document.getElementById('do-arrive').textContent;"),
        json!("到场")
    );

    // On site, then acknowledged: each confirmation stays until dismissed.
    b.js("document.getElementById('note').value = '已到消防控制室';
         document.getElementById('do-arrive').click(); return true;");
    b.wait(
        "the gateway's confirmation of the arrival",
        "const m = document.getElementById('act-msg'); return m.classList.contains('ok') && m.textContent.includes('已记录到场');",
        Duration::from_secs(20),
    );
    b.wait(
        "the arrival in the ticket's steps",
        "return [...document.querySelectorAll('#steps li')].some(li => li.textContent.includes('到场') && li.textContent.includes('zhang'));",
        Duration::from_secs(20),
    );
    // Still there after several refreshes of the page's data.
    std::thread::sleep(Duration::from_secs(6));
    assert_eq!(
        b.js("return document.getElementById('act-msg').classList.contains('ok');"),
        json!(true)
    );
    b.js("document.getElementById('do-ack').click(); return true;");
    b.wait(
        "the gateway's confirmation of the acknowledgement",
        "const m = document.getElementById('act-msg'); return m.classList.contains('ok') && m.textContent.includes('已确认') && !document.getElementById('do-ack');",
        Duration::from_secs(20),
    );
    b.screenshot(&artifacts.join("phone-ticket-zh-390-acked.png"));
    // A second acknowledgement (another phone still showing the button) is
    // refused by the gateway; the page says why, in Chinese, once.
    let refusal = b.js(
        "return sendOp(TK, 'ack', '', ME.csrf).then(r => [r.status, outcomeText(r, TK, 'ack')]);",
    );
    assert_eq!(refusal[0], json!(409), "{refusal}");
    assert_eq!(
        refusal[1],
        json!(format!("工单 #{id} 已确认，不能确认。")),
        "{refusal}"
    );

    // The gateway's store has both steps.
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(["tickets", "show", &id.to_string(), "--json", "--config"])
            .arg(&config)
            .envs(env.iter().cloned()),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(code, Some(0), "{out}\n{err}");
    let t = serde_json::from_str::<Value>(&out).unwrap()["ticket"].clone();
    assert_eq!(t["state"], "acknowledged", "{t}");
    assert_eq!(t["arrived"]["by"], "zhang", "{t}");
    assert_eq!(t["arrived"]["note"], "已到消防控制室", "{t}");
    assert_eq!(t["acknowledged"]["by"], "zhang", "{t}");
    let kinds: Vec<&str> = t["history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| h["kind"].as_str().unwrap())
        .collect();
    assert!(kinds.ends_with(&["arrived", "acknowledged"]), "{kinds:?}");

    // English at 390×844: the same checks (resolve is still possible).
    b.go(&format!("{link}?lang=en"));
    b.wait(
        "the English page",
        "return !!document.getElementById('do-resolve') && document.getElementById('do-arrive').textContent === 'On site' \
         && [...document.querySelectorAll('#steps li')].some(li => li.textContent.includes('arrived on site'));",
        Duration::from_secs(20),
    );
    let problems = b.js(LAYOUT_PROBLEMS);
    b.screenshot(&artifacts.join("phone-ticket-en-390.png"));
    assert_eq!(problems, json!([]), "en at 390×844");

    // A desk screen, both languages, and the list.
    b.viewport(1366, 768);
    for lang in ["zh-CN", "en"] {
        b.go(&format!("{link}?lang={lang}"));
        b.wait(
            "the buttons, and no login form once logged in",
            "return !!document.getElementById('do-resolve') && document.getElementById('login').offsetParent === null;",
            Duration::from_secs(20),
        );
        let problems = b.js(LAYOUT_PROBLEMS);
        b.screenshot(&artifacts.join(format!("phone-ticket-{lang}-1366.png")));
        assert_eq!(problems, json!([]), "{lang} at 1366×768");
    }
    b.viewport(390, 844);
    b.go(&format!(
        "http://{listen}/tickets?lang=zh-CN#demo-sales-centre/gw-1/{id}"
    ));
    b.wait(
        "the list with the display name",
        "return [...document.querySelectorAll('#rows tr')].some(r => r.textContent.includes('火灾报警控制器')) && !!document.getElementById('do-resolve');",
        Duration::from_secs(20),
    );
    // The same checks, but for the buttons (below the detail there).
    let problems = b.js(&LAYOUT_PROBLEMS.replace("#actions button", "#nothing"));
    b.screenshot(&artifacts.join("tickets-zh-390.png"));
    assert_eq!(
        problems,
        json!(["no action buttons"]),
        "the list at 390×844"
    );
    println!("browser artifacts in {}", artifacts.display());
    drop(b);
    assert_eq!(dash.interrupt(Duration::from_secs(15)).unwrap(), Some(0));
    assert_eq!(gw.interrupt(Duration::from_secs(15)).unwrap(), Some(0));
}
