//! The shift handover digest end to end: `gateway run` with `[alerts]
//! handover_at` a minute or two ahead posts the digest at that time to a
//! real HTTP receiver, in Chinese; after a restart the same day it is not
//! sent again.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::process::Command;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bms_e2e::{demo_config, demo_env, run_with_timeout, start_gateway, start_sim};

/// (X-BMS-Alert-Key, body) of every request.
type Hits = Arc<Mutex<Vec<(String, String)>>>;

/// A webhook receiver on 127.0.0.1:0 answering 200 to every request.
fn receiver() -> (String, Hits) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let url = format!("http://{}/alerts", l.local_addr().unwrap());
    let hits: Hits = Arc::default();
    let h = Arc::clone(&hits);
    std::thread::spawn(move || {
        for conn in l.incoming() {
            let Ok(mut c) = conn else { continue };
            let mut r = BufReader::new(c.try_clone().unwrap());
            let (mut len, mut key) = (0usize, String::new());
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
                if let Some(v) = l.strip_prefix("x-bms-alert-key:") {
                    key = v.trim().to_owned();
                }
            }
            let mut body = vec![0; len];
            let _ = r.read_exact(&mut body);
            h.lock()
                .unwrap()
                .push((key, String::from_utf8_lossy(&body).into_owned()));
            let _ = write!(
                c,
                "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
            );
        }
    });
    (url, hits)
}

/// `date` in Shanghai with `args`.
fn shanghai(args: &[&str]) -> String {
    let (code, out, err) = run_with_timeout(
        Command::new("date").env("TZ", "Asia/Shanghai").args(args),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(code, Some(0), "{err}");
    out.trim().to_owned()
}

/// `HH:MM` of the next minute that begins at least 20 s from now, in
/// Shanghai (the gateway must be up before it).
fn soon_in_shanghai() -> String {
    let secs: u32 = shanghai(&["+%S"]).parse().unwrap();
    let ahead = if secs < 40 { "1 minute" } else { "2 minutes" };
    shanghai(&["-d", ahead, "+%H:%M"])
}

fn handovers(hits: &Hits) -> Vec<(String, String)> {
    hits.lock()
        .unwrap()
        .iter()
        .filter(|(k, _)| k.starts_with("handover:"))
        .cloned()
        .collect()
}

#[test]
fn the_handover_digest_reaches_the_webhook_once_across_a_restart() {
    let (url, hits) = receiver();
    let dir = tempfile::tempdir().unwrap();
    let alerts = format!(
        r#"
[alerts]
handover_at = "{at}"
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
url = "{url}"

[[alerts.person]]
id = "zhang"
name = "张工"
mobile = "13800000001"

[alerts.rotation]
every = "week"
start = "2026-11-02"

[[alerts.rotation.tier]]
name = "值班工程师"
people = ["zhang"]
"#,
        at = soon_in_shanghai()
    );
    let cfg = demo_config(dir.path(), &alerts).unwrap();
    let (env, _) = demo_env(dir.path());
    let _sim = start_sim(&cfg, &env).unwrap();
    let mut gw = start_gateway(&cfg, &env).unwrap();
    let deadline = Instant::now() + Duration::from_secs(150);
    while handovers(&hits).is_empty() {
        assert!(
            Instant::now() < deadline,
            "no handover digest at its time; the receiver got {:?}\n{}",
            hits.lock().unwrap(),
            gw.output()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let got = handovers(&hits);
    assert_eq!(got.len(), 1, "{got:?}");
    let body = &got[0].1;
    assert!(body.contains("【交接班摘要】demo-sales-centre"), "{body}");
    assert!(body.contains("未关闭工单"), "{body}");
    assert!(body.contains("今日到期"), "{body}");
    assert!(body.contains("张工"), "{body}");
    assert_eq!(gw.interrupt(Duration::from_secs(20)).unwrap(), Some(0));

    // Restarted the same day: the digest is not sent again.
    let mut gw = start_gateway(&cfg, &env).unwrap();
    std::thread::sleep(Duration::from_secs(5));
    assert_eq!(handovers(&hits).len(), 1, "{:?}", handovers(&hits));
    assert_eq!(gw.interrupt(Duration::from_secs(20)).unwrap(), Some(0));
}
