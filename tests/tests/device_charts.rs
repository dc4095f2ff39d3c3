//! The device page's charts in real headless Chromium over WebDriver
//! (Debian's `chromium` + `chromium-driver`, plain HTTP as in
//! `browser.rs`): on fresh data (`dashboard demo` just started) the page
//! opens on the 1 h range, its axes speak the page's language (24-hour
//! "16:00", dates "12月4日" / "Dec 4") and no y label is cut; screenshots
//! zh-CN and en at 1366×768 go under `target/<profile>/browser-artifacts/`.
//! `#[ignore]`d: needs chromium and chromium-driver.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::process::Command;
use std::time::{Duration, Instant};

use bms_e2e::{Proc, bin, free_port, http, require_tool};
use serde_json::{Value, json};

/// One WebDriver exchange; reads exactly `Content-Length` bytes.
fn wd(method: &str, addr: &str, path: &str, body: &str) -> (u16, String) {
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

struct Browser {
    driver: String,
    session: String,
    _proc: Proc,
    _profile: tempfile::TempDir,
}

impl Browser {
    /// A headless Chromium with a 1366×768 viewport.
    fn start() -> Browser {
        require_tool("chromedriver", "apt-get install chromium chromium-driver").unwrap();
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
        let chromium = ["/usr/bin/chromium", "/usr/bin/chromium-browser"]
            .into_iter()
            .find(|p| std::path::Path::new(p).exists())
            .unwrap_or("chromium");
        let profile = tempfile::tempdir().unwrap();
        let caps = json!({"capabilities": {"alwaysMatch": {"goog:chromeOptions": {
            "binary": chromium,
            "args": ["--headless", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     "--disable-background-networking", "--disable-component-update",
                     "--disable-sync", "--no-first-run", "--window-size=1366,768",
                     "--hide-scrollbars", format!("--user-data-dir={}", profile.path().display())],
        }}}});
        let (code, body) = wd("POST", &driver, "/session", &caps.to_string());
        assert_eq!(code, 200, "new session: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let session = v["value"]["sessionId"].as_str().unwrap().to_owned();
        let b = Browser {
            driver,
            session,
            _proc: proc,
            _profile: profile,
        };
        b.go("about:blank");
        let inner = b.js("return [innerWidth, innerHeight];");
        let (w, h) = (inner[0].as_i64().unwrap(), inner[1].as_i64().unwrap());
        b.cmd(
            "POST",
            "/window/rect",
            json!({"width": 1366 + 1366 - w, "height": 768 + 768 - h}),
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
        let (code, text) = wd(method, &self.driver, &p, &body);
        assert_eq!(code, 200, "{method} {path}: {text}");
        serde_json::from_str::<Value>(&text).unwrap()["value"].take()
    }

    fn go(&self, url: &str) {
        self.cmd("POST", "/url", json!({ "url": url }));
    }

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

    fn screenshot(&self, file: &std::path::Path) {
        let b64 = self.cmd("GET", "/screenshot", Value::Null);
        let png = base64(b64.as_str().unwrap());
        assert!(png.starts_with(b"\x89PNG"), "not a PNG");
        std::fs::write(file, png).unwrap();
        println!("screenshot: {}", file.display());
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = wd(
            "DELETE",
            &self.driver,
            &format!("/session/{}", self.session),
            "",
        );
    }
}

/// Standard base64, padding allowed.
fn base64(s: &str) -> Vec<u8> {
    let val = |c: u8| -> Option<u32> {
        Some(u32::from(match c {
            b'A'..=b'Z' => c - b'A',
            b'a'..=b'z' => c - b'a' + 26,
            b'0'..=b'9' => c - b'0' + 52,
            b'+' => 62,
            b'/' => 63,
            _ => return None,
        }))
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

/// The chart state the page shows: the range selected, the axis texts,
/// the legend's first label, and whether every y label fits its axis.
const CHART_STATE: &str = "
    const on = document.querySelector('#ranges button.on');
    const charts = document.querySelectorAll('#charts .uplot').length;
    const t = window.__axisTexts || {x: [], y: []};
    const label = document.querySelector('#charts .u-legend .u-series:first-child .u-label');
    let fits = true;
    const c = document.createElement('canvas').getContext('2d');
    c.font = '13px sans-serif';
    for (const u of document.querySelectorAll('#charts .uplot')) {
      const axis = u.querySelector('.u-axis:nth-of-type(2)');
      if (!axis) continue;
      const w = axis.getBoundingClientRect().width;
      for (const v of t.y) if (c.measureText(v).width > w) fits = false;
    }
    return {range: on ? on.dataset.range : null, charts, x: t.x, y: t.y,
            legend: label ? label.textContent : null, fits,
            buttons: [...document.querySelectorAll('#ranges button')].map(b => b.textContent)};";

#[test]
#[ignore = "needs chromium and chromium-driver (.ci/run installs them)"]
fn the_device_page_opens_fresh_data_on_the_1h_range_with_chinese_axes() {
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
    let artifacts = bin("dashboard").parent().unwrap().join("browser-artifacts");
    std::fs::create_dir_all(&artifacts).unwrap();
    let device = "/api/sites/demo-sales-centre/gateways/gw-1/devices/pump-1";
    // The API: the short ranges, `auto`, and a clear 400 for anything else.
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let (code, body) =
            http("GET", &listen, &format!("{device}/history?range=auto"), "").unwrap();
        let v: Value = serde_json::from_str(&body).unwrap_or(Value::Null);
        if code == 200
            && v["range"] == "1h"
            && v["points"].as_object().is_some_and(|p| !p.is_empty())
        {
            break;
        }
        assert!(Instant::now() < deadline, "no fresh history: {code} {body}");
        std::thread::sleep(Duration::from_millis(500));
    }
    let (code, body) = http("GET", &listen, &format!("{device}/history?range=6h"), "").unwrap();
    assert_eq!(code, 200, "{body}");
    let (code, body) = http("GET", &listen, &format!("{device}/history?range=1y"), "").unwrap();
    assert_eq!(code, 400, "{body}");
    assert!(body.contains("1h, 6h, 24h, 7d, 30d"), "{body}");
    let (_, health) = http("GET", &listen, "/api/health", "").unwrap();
    let health: Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["history_ranges_refused"], 1, "{health}");

    let b = Browser::start();
    let page = format!("http://{listen}/devices/demo-sales-centre/gw-1/pump-1");
    b.go(&format!("{page}?lang=zh-CN"));
    b.wait(
        "the charts on the 1 h range",
        "const on = document.querySelector('#ranges button.on');
         return !!on && on.dataset.range === '1h' && document.querySelectorAll('#charts .uplot').length > 0
           && (window.__axisTexts || {x: []}).x.length > 0;",
        Duration::from_secs(30),
    );
    std::thread::sleep(Duration::from_millis(500));
    let zh = b.js(CHART_STATE);
    b.js("document.getElementById('h-trend').scrollIntoView(); return true;");
    b.screenshot(&artifacts.join("device-zh.png"));
    let hhmm = |s: &str| {
        let b = s.as_bytes();
        b.len() >= 5 && b[2] == b':' && b[..2].iter().chain(&b[3..5]).all(u8::is_ascii_digit)
    };
    let xs: Vec<&str> = zh["x"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        !xs.is_empty() && xs.iter().all(|s| hhmm(s)),
        "zh x axis: {zh}"
    );
    assert!(
        xs[0].contains('月') && xs[0].ends_with('日'),
        "zh x axis: {zh}"
    );
    assert!(
        !xs.iter().any(|s| s.contains("am") || s.contains("pm")),
        "{zh}"
    );
    assert_eq!(zh["legend"], "时间", "{zh}");
    assert_eq!(zh["buttons"][0], "1小时", "{zh}");
    let ys = zh["y"].as_array().unwrap();
    assert!(
        !ys.is_empty() && ys.iter().all(|v| !v.as_str().unwrap().contains(',')),
        "{zh}"
    );
    assert_eq!(zh["fits"], true, "a y label wider than its axis: {zh}");

    b.go(&format!("{page}?lang=en"));
    b.wait(
        "the English charts",
        "const on = document.querySelector('#ranges button.on');
         const l = document.querySelector('#charts .u-legend .u-label');
         return !!on && on.dataset.range === '1h' && !!l && l.textContent === 'Time';",
        Duration::from_secs(30),
    );
    std::thread::sleep(Duration::from_millis(500));
    let en = b.js(CHART_STATE);
    b.js("document.getElementById('h-trend').scrollIntoView(); return true;");
    b.screenshot(&artifacts.join("device-en.png"));
    let xs: Vec<&str> = en["x"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(xs.iter().all(|s| hhmm(s)), "en x axis: {en}");
    assert!(!xs[0].contains('月'), "en x axis: {en}");
    assert_eq!(en["buttons"][0], "1 h", "{en}");
    assert_eq!(en["fits"], true, "{en}");
    println!("browser artifacts in {}", artifacts.display());
    drop(b);
    assert_eq!(demo.interrupt(Duration::from_secs(15)).unwrap(), Some(0));
}
