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
        "const r = [...document.querySelectorAll('#rows tr')].find(r => r.textContent.includes('fire-panel-1'));
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
