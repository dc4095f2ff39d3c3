//! Every screen of the wall (and the device page) in real headless
//! Chromium over WebDriver, in Chinese and English at 390×844, 1366×768,
//! 1920×1080 and 3840×2160, with a hard alarm on the wall: no text
//! overflows its box, nothing lies outside the viewport, the wall does not
//! scroll (the phone size may scroll vertically, never sideways), buttons
//! are on screen, and the visible text has no snake_case identifier and no
//! word of the other language. Then the alarm clears and stays on the
//! banner as "cleared, not acknowledged" until the ticket is acknowledged
//! in the ticket page, when it leaves the banner. Screenshots of every size and
//! language go to `target/<profile>/browser-artifacts/screens/`.
//! `#[ignore]`d like the other browser test: needs Debian's `chromium` and
//! `chromium-driver`.

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
                     "--hide-scrollbars", "--force-device-scale-factor=1", format!("--user-data-dir={}", profile.path().display())],
        }}}});
        let (code, body) = wd_http("POST", &driver, "/session", &caps.to_string());
        assert_eq!(code, 200, "new session: {body}");
        let v: Value = serde_json::from_str(&body).unwrap();
        let session = v["value"]["sessionId"].as_str().unwrap().to_owned();
        Browser {
            driver,
            session,
            _proc: proc,
            _profile: profile,
        }
    }

    /// Makes the viewport `w`×`h` (the window's own bars come on top).
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

/// The page's problems, as text (empty: none). `wall`: the page must not
/// scroll (vertically only allowed below 700 px wide).
const CHECK: &str = r#"
const wall = !!document.querySelector('.wall');
const vw = innerWidth, vh = innerHeight, narrow = vw < 700;
const bad = [];
const name = (e) => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className && typeof e.className === 'string' ? '.' + e.className.trim().replace(/\s+/g, '.') : '');
for (const e of document.body.querySelectorAll('*')) {
  const cs = getComputedStyle(e);
  if (cs.display === 'none' || cs.visibility === 'hidden' || e.closest('.uplot, script, style')) continue;
  const r = e.getBoundingClientRect();
  if (r.width === 0 && r.height === 0) continue;
  const text = [...e.childNodes].some((n) => n.nodeType === 3 && n.textContent.trim());
  if (text && cs.display !== 'inline' && (e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1))
    bad.push('overflows its box: ' + name(e) + ' ' + JSON.stringify(e.textContent.slice(0, 50)) + ' ' + [e.scrollWidth, e.clientWidth, e.scrollHeight, e.clientHeight]);
  if (!text && cs.overflow !== 'visible' && e.tagName !== 'HTML' && e.tagName !== 'BODY' && (e.scrollWidth > e.clientWidth + 1 || e.scrollHeight > e.clientHeight + 1))
    bad.push('clips its content: ' + name(e) + ' ' + [e.scrollWidth, e.clientWidth, e.scrollHeight, e.clientHeight]);
  const outX = r.left < -1 || r.right > vw + 1, outY = r.top < -1 || r.bottom > vh + 1;
  if ((wall && !narrow && (outX || outY)) || (outX && text)) bad.push('outside the viewport: ' + name(e) + ' ' + JSON.stringify([r.left, r.top, r.right, r.bottom].map(Math.round)));
  if (e.tagName === 'BUTTON' && (outX || (wall && !narrow && outY))) bad.push('button outside the viewport: ' + name(e));
}
const de = document.documentElement;
if (de.scrollWidth > vw + 1) bad.push('scrolls sideways: ' + de.scrollWidth + ' > ' + vw + ' ' +
  [...document.body.querySelectorAll('*')].filter((e) => e.getBoundingClientRect().right > vw + 1).slice(0, 3).map(name).join(' '));
if (wall && !narrow && de.scrollHeight > vh + 1) bad.push('the wall scrolls: ' + de.scrollHeight + ' > ' + vh);
const txt = document.body.innerText;
const snake = txt.match(/\b[A-Za-z0-9]+_[A-Za-z0-9_]+\b/g);
if (snake) bad.push('identifiers: ' + [...new Set(snake)].join(', '));
const zh = de.lang !== 'en';
if (zh) {
  // Units and names that stay as they are in Chinese text.
  const keep = new Set(['English', 'BMS', 'MQTT', 'VIP', 'Hz', 'kWh', 'kW', 'MPa', 'bar', 'lx', 'SPD']);
  const words = (txt.match(/[A-Za-z]{2,}/g) || []).filter((w) => !keep.has(w));
  if (words.length) bad.push('English on the Chinese page: ' + [...new Set(words)].join(', '));
} else {
  const han = txt.match(/[\u3400-\u9fff]+/g) || [];
  const other = han.filter((w) => w !== '中文');
  if (other.length) bad.push('Chinese on the English page: ' + [...new Set(other)].join(', '));
}
return bad;
"#;

const SIZES: [(i64, i64); 4] = [(390, 844), (1366, 768), (1920, 1080), (3840, 2160)];

fn check(b: &Browser, what: &str, shots: &std::path::Path, file: &str) -> Vec<String> {
    // Let the page settle (fit to the screen, the next snapshot).
    std::thread::sleep(Duration::from_millis(1500));
    b.screenshot(&shots.join(file));
    let found = b.js(CHECK);
    found
        .as_array()
        .unwrap()
        .iter()
        .map(|p| format!("{what}: {}", p.as_str().unwrap()))
        .collect()
}

#[test]
#[ignore = "needs chromium and chromium-driver (.ci/run installs them)"]
fn every_wall_screen_fits_and_speaks_one_language_and_alarms_stay_until_acknowledged() {
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
    let shots = bin("dashboard")
        .parent()
        .unwrap()
        .join("browser-artifacts")
        .join("screens");
    std::fs::create_dir_all(&shots).unwrap();

    let b = Browser::start();
    b.viewport(1920, 1080);
    let base = format!("http://{listen}");
    b.go(&format!("{base}/?lang=zh-CN"));
    b.wait(
        "19 tiles with values",
        "return document.querySelectorAll('.tile').length >= 19 && !!document.querySelector('.tile[data-device=\"pump-1\"][data-state=\"up\"]');",
        Duration::from_secs(60),
    );
    // A hard alarm: the fire panel's fault bit.
    let (code, body) = http(
        "POST",
        &control,
        "/faults",
        r#"{"device":"fire-panel-1","fault":"fault_bit","point":"fault"}"#,
    )
    .unwrap();
    assert!(code / 100 == 2, "{code} {body}");
    b.wait(
        "the alarm banner and its ticket",
        "return document.getElementById('banner').classList.contains('active') && !!document.querySelector('.tk.critical.unack');",
        Duration::from_secs(30),
    );
    // The site's display name, not its id.
    assert_eq!(
        b.js("return document.getElementById('site').textContent;"),
        json!("示范售楼处")
    );

    let mut problems = Vec::new();
    for lang in ["zh-CN", "en"] {
        for (w, h) in SIZES {
            b.viewport(w, h);
            b.go(&format!("{base}/?lang={lang}"));
            b.wait(
                "the wall with its tickets",
                "return document.querySelectorAll('.tile').length >= 19 && !!document.querySelector('.tk');",
                Duration::from_secs(20),
            );
            problems.extend(check(
                &b,
                &format!("wall {lang} {w}×{h}"),
                &shots,
                &format!("wall-{lang}-{w}x{h}.png"),
            ));
            b.go(&format!(
                "{base}/devices/demo-sales-centre/gw-1/pump-1?lang={lang}"
            ));
            b.wait(
                "the device page with its points",
                "return document.querySelectorAll('#body td').length > 3;",
                Duration::from_secs(20),
            );
            problems.extend(check(
                &b,
                &format!("device {lang} {w}×{h}"),
                &shots,
                &format!("device-{lang}-{w}x{h}.png"),
            ));
        }
    }
    // The banner speaks each language: the rule's and point's labels.
    b.viewport(1920, 1080);
    b.go(&format!("{base}/?lang=zh-CN"));
    b.wait(
        "the banner",
        "return document.getElementById('banner').classList.contains('on');",
        Duration::from_secs(20),
    );
    let banner = b.js("return document.getElementById('banner').innerText;");
    assert!(banner.as_str().unwrap().contains("主机故障"), "{banner}");

    // The condition clears; nobody acknowledged: the alarm stays on the
    // banner as cleared, not acknowledged (it used to vanish).
    let (code, body) = http("DELETE", &control, "/faults", "").unwrap();
    assert!(code / 100 == 2, "{code} {body}");
    for lang in ["zh-CN", "en"] {
        b.go(&format!("{base}/?lang={lang}"));
        let word = if lang == "en" {
            "Cleared, not acknowledged"
        } else {
            "已恢复未确认"
        };
        b.wait(
            "the cleared alarm still on the banner",
            &format!(
                "const b = document.getElementById('banner');
                 return b.classList.contains('on') && !b.classList.contains('active')
                   && !!b.querySelector('.al.cleared') && b.innerText.includes('{word}');"
            ),
            Duration::from_secs(40),
        );
        problems.extend(check(
            &b,
            &format!("cleared wall {lang}"),
            &shots,
            &format!("wall-cleared-{lang}.png"),
        ));
    }
    assert!(
        problems.is_empty(),
        "{} problems:\n{}",
        problems.len(),
        problems.join("\n")
    );
    // Acknowledged in the ticket page: the cleared alarm leaves the banner.
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
        // The list names devices in the page's language (English after the
        // last wall screens).
        "const r = [...document.querySelectorAll('#rows tr')].find(r => ['fire-panel-1', '火灾报警控制器', 'Fire alarm control panel'].some(n => r.textContent.includes(n)));
         if (!r) return false; r.click(); return !!document.getElementById('do-ack');",
        Duration::from_secs(20),
    );
    b.js("document.getElementById('do-ack').click(); return true;");
    b.wait(
        "the gateway's confirmation",
        "const m = document.getElementById('act-msg'); return !!m && m.classList.contains('ok');",
        Duration::from_secs(20),
    );
    b.go(&format!("{base}/?lang=zh-CN"));
    b.wait(
        "the banner gone once acknowledged",
        "return window.__lastSnapshotAt !== undefined && document.querySelectorAll('.tile').length >= 19
           && !document.getElementById('banner').classList.contains('on');",
        Duration::from_secs(30),
    );
    println!("screenshots in {}", shots.display());
    drop(b);
    assert_eq!(demo.interrupt(Duration::from_secs(15)).unwrap(), Some(0));
}
