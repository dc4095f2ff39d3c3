//! On-call alerts end to end (issue #6): the demo building, `gateway run`
//! with `[alerts]`, a fault injected through the simulator.
//!
//! - A webhook receiver (plain Rust, loopback) that answers 500 while the
//!   gateway is SIGKILLed and restarted, then 200, gets the alert exactly
//!   once.
//! - A real SMTP server (Python `aiosmtpd`, loopback) receives the e-mail
//!   with a UTF-8 Chinese subject and body, decoded by Python's own e-mail
//!   parser (`#[ignore]`: needs aiosmtpd; `.ci/run` installs it).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpListener;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicU16, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bms_e2e::{Proc, bin, demo_config, demo_env, free_port, http, require_tool, run_with_timeout};

/// The people, rotation and policy shared by the tests; `channels` adds
/// the `[[alerts.channel]]`s and the critical policy's list.
fn alerts_section(channels: &str, ids: &str) -> String {
    format!(
        r#"
[alerts]
dashboard_url = "http://127.0.0.1:8080/tickets/{{site}}/{{gateway}}/{{id}}"
retry_min = "200ms"
retry_max = "1s"

[alerts.critical]
channels = [{ids}]
ack_within = "30m"
outside_hours = "page"

[alerts.ordinary]
channels = []
ack_within = "1h"
outside_hours = "defer"

{channels}

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
    )
}

fn start_gateway(config: &Path, env: &[(String, String)]) -> Proc {
    let mut gw = Proc::spawn(
        "gateway run",
        Command::new(bin("gateway"))
            .args(["run", "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .envs(env.iter().cloned()),
    )
    .unwrap();
    gw.wait_for("ledger and tickets loaded", Duration::from_secs(20))
        .unwrap();
    gw
}

fn inject_fire_fault(control: &str) {
    let (status, answer) = http(
        "POST",
        control,
        "/faults",
        r#"{"device":"fire-panel-1","fault":"fault_bit","point":"fault"}"#,
    )
    .unwrap();
    assert_eq!(status, 201, "{answer}");
}

/// One request the receiver got: its status answer and body.
#[derive(Clone, Debug)]
struct Hit {
    status: u16,
    key: String,
    body: String,
}

/// A tiny HTTP/1.1 receiver on 127.0.0.1:0 (one request per connection).
struct Receiver {
    url: String,
    hits: Arc<Mutex<Vec<Hit>>>,
    status: Arc<AtomicU16>,
}

impl Receiver {
    fn start() -> Receiver {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let url = format!("http://{}/alerts", l.local_addr().unwrap());
        let hits: Arc<Mutex<Vec<Hit>>> = Arc::default();
        let status = Arc::new(AtomicU16::new(500));
        let (h, s) = (Arc::clone(&hits), Arc::clone(&status));
        std::thread::spawn(move || {
            for conn in l.incoming() {
                let Ok(mut c) = conn else { continue };
                let mut r = BufReader::new(c.try_clone().unwrap());
                let mut len = 0usize;
                let mut key = String::new();
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
                let code = s.load(Ordering::SeqCst);
                h.lock().unwrap().push(Hit {
                    status: code,
                    key,
                    body: String::from_utf8_lossy(&body).into_owned(),
                });
                let _ = write!(
                    c,
                    "HTTP/1.1 {code} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"
                );
            }
        });
        Receiver { url, hits, status }
    }

    fn hits(&self) -> Vec<Hit> {
        self.hits.lock().unwrap().clone()
    }

    fn accepted(&self) -> Vec<Hit> {
        self.hits()
            .into_iter()
            .filter(|h| h.status == 200)
            .collect()
    }
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn a_failing_receiver_gets_the_alert_exactly_once_across_a_sigkill_and_restart() {
    let rx = Receiver::start();
    let dir = tempfile::tempdir().unwrap();
    let channel = format!(
        "[[alerts.channel]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        rx.url
    );
    let config = demo_config(dir.path(), &alerts_section(&channel, "\"hook\"")).unwrap();
    let (env, control) = demo_env(dir.path());
    let _sim = bms_e2e::start_sim(&config, &env).unwrap();
    let mut gw = start_gateway(&config, &env);
    std::thread::sleep(Duration::from_secs(3));
    inject_fire_fault(&control);
    // The receiver refuses (500) a few attempts; the gateway is then killed.
    wait_until("two refused attempts", Duration::from_secs(30), || {
        rx.hits().len() >= 2
    });
    gw.kill9().unwrap();
    let refused = rx.hits().len();
    assert!(rx.accepted().is_empty());
    // Restarted; the receiver recovers.
    let mut gw = start_gateway(&config, &env);
    rx.status.store(200, Ordering::SeqCst);
    wait_until(
        "the delivery after recovery",
        Duration::from_secs(30),
        || rx.accepted().len() == 1,
    );
    std::thread::sleep(Duration::from_secs(4));
    let ok = rx.accepted();
    assert_eq!(ok.len(), 1, "exactly once: {:?}", rx.hits());
    // The same notice as the refused attempts, with its fields in Chinese.
    assert_eq!(ok[0].key, rx.hits()[0].key);
    let v: serde_json::Value = serde_json::from_str(&ok[0].body).unwrap();
    assert_eq!(v["kind"], "page");
    let text = v["text"].as_str().unwrap();
    assert!(text.starts_with("【紧急告警】"), "{text}");
    assert!(
        text.contains("工单：#") && text.contains("时限："),
        "{text}"
    );
    assert!(text.contains("值班：张工"), "{text}");
    eprintln!(
        "refused before the kill: {refused}, total requests: {}",
        rx.hits().len()
    );
    // The log says so.
    let (code, out, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(["alerts", "log", "--json", "--config"])
            .arg(&config)
            .envs(env.iter().cloned()),
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(code, Some(0), "{out}{err}");
    let log: serde_json::Value = serde_json::from_str(&out).unwrap();
    let rows = log["alerts"].as_array().unwrap();
    assert_eq!(rows.len(), 1, "{out}");
    assert_eq!(rows[0]["state"], "sent");
    assert!(rows[0]["attempts"].as_u64().unwrap() >= 2, "{out}");
    assert!(
        rows[0]["last_error"].as_str().unwrap().contains("HTTP 500"),
        "{out}"
    );
    assert_eq!(gw.interrupt(Duration::from_secs(15)).unwrap(), Some(0));
}

const SMTP_SINK: &str = r#"
import asyncio, email, email.policy, json, os, sys
from aiosmtpd.controller import Controller

out = sys.argv[2]

def raw_header(content, name):
    # The header as it travelled (before any decoding).
    for line in content.split(b"\r\n"):
        if line.lower().startswith(name.lower() + b":"):
            return line.split(b":", 1)[1].strip().decode("ascii", "replace")
    return ""

class Sink:
    async def handle_DATA(self, server, session, envelope):
        msg = email.message_from_bytes(envelope.content, policy=email.policy.default)
        rec = {
            "mail_from": envelope.mail_from,
            "rcpt_tos": envelope.rcpt_tos,
            "subject": str(msg["subject"]),
            "raw_subject": raw_header(envelope.content, b"Subject"),
            "from": str(msg["from"]),
            "to": str(msg["to"]),
            "content_type": msg.get_content_type(),
            "charset": msg.get_content_charset(),
            "body": msg.get_content(),
        }
        n = len(os.listdir(out))
        with open(os.path.join(out, f"{n}.json"), "w", encoding="utf-8") as f:
            json.dump(rec, f, ensure_ascii=False)
        return "250 OK"

kw = {}
if len(sys.argv) > 3:
    # STARTTLS required, and AUTH (only after STARTTLS) as user/secret.
    import ssl
    from aiosmtpd.smtp import AuthResult, LoginPassword
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(sys.argv[3], sys.argv[4])
    def auth(server, session, envelope, mechanism, data):
        ok = isinstance(data, LoginPassword) and data.login == b"bms" and data.password == b"s3cret"
        return AuthResult(success=ok)
    kw = dict(tls_context=ctx, require_starttls=True, authenticator=auth, auth_require_tls=True, auth_required=True)

c = Controller(Sink(), hostname="127.0.0.1", port=int(sys.argv[1]), **kw)
c.start()
print("smtp ready", flush=True)
asyncio.get_event_loop().run_forever()
"#;

#[test]
#[ignore = "needs python3 with aiosmtpd (pip install aiosmtpd; .ci/run installs it)"]
fn an_email_reaches_a_real_smtp_server_with_a_utf8_chinese_subject_and_body() {
    require_tool("python3", "install python3").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let mails = dir.path().join("mails");
    std::fs::create_dir(&mails).unwrap();
    let script = dir.path().join("sink.py");
    std::fs::write(&script, SMTP_SINK).unwrap();
    let port = free_port();
    let mut smtp = Proc::spawn(
        "aiosmtpd",
        Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(&mails),
    )
    .unwrap();
    smtp.wait_for("smtp ready", Duration::from_secs(20))
        .unwrap();
    let channel = format!(
        "[[alerts.channel]]\nid = \"mail\"\nkind = \"email\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"none\"\nfrom = \"楼宇网关 <bms@example.com>\"\n"
    );
    let config = demo_config(dir.path(), &alerts_section(&channel, "\"mail\"")).unwrap();
    let (env, control) = demo_env(dir.path());
    let _sim = bms_e2e::start_sim(&config, &env).unwrap();
    let mut gw = start_gateway(&config, &env);
    std::thread::sleep(Duration::from_secs(3));
    inject_fire_fault(&control);
    wait_until("an e-mail", Duration::from_secs(30), || {
        std::fs::read_dir(&mails).unwrap().count() > 0
    });
    let text = std::fs::read_to_string(mails.join("0.json")).unwrap();
    let m: serde_json::Value = serde_json::from_str(&text).unwrap();
    assert_eq!(m["mail_from"], "bms@example.com");
    assert_eq!(m["rcpt_tos"][0], "zhang@example.com");
    let subject = m["subject"].as_str().unwrap();
    assert!(subject.starts_with("【紧急告警】"), "{m:#}");
    // On the wire the subject is RFC 2047 encoded UTF-8 (7-bit clean).
    let raw = m["raw_subject"].as_str().unwrap();
    assert!(raw.to_ascii_lowercase().starts_with("=?utf-8?"), "{raw}");
    assert!(m["from"].as_str().unwrap().contains("楼宇网关"), "{m:#}");
    assert!(m["to"].as_str().unwrap().contains("张工"), "{m:#}");
    assert_eq!(m["content_type"], "text/plain");
    assert_eq!(m["charset"], "utf-8");
    let body = m["body"].as_str().unwrap();
    for want in [
        "设备：",
        "类别：消防报警",
        "故障：",
        "工单：#",
        "时限：",
        "查看工单: http://127.0.0.1:8080/tickets/",
    ] {
        assert!(body.contains(want), "{want:?} missing in\n{body}");
    }
    assert_eq!(gw.interrupt(Duration::from_secs(15)).unwrap(), Some(0));
}

#[test]
#[ignore = "needs mosquitto and mosquitto-clients (apt-get install mosquitto mosquitto-clients)"]
fn the_mqtt_channel_publishes_the_page_on_the_alert_topic() {
    require_tool("mosquitto", "apt-get install mosquitto").unwrap();
    require_tool("mosquitto_sub", "apt-get install mosquitto-clients").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let conf = dir.path().join("mosquitto.conf");
    // `user root`: as root, Mosquitto would otherwise drop to its own user.
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\nuser root\n"),
    )
    .unwrap();
    let mut broker =
        Proc::spawn("mosquitto", Command::new("mosquitto").arg("-c").arg(&conf)).unwrap();
    wait_until("mosquitto", Duration::from_secs(10), || {
        std::net::TcpStream::connect(("127.0.0.1", port)).is_ok()
    });
    let mut sub = Proc::spawn(
        "mosquitto_sub",
        Command::new("mosquitto_sub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-v",
            "-t",
            "bms/+/+/alert",
        ]),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let extra = format!(
        "[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n{}",
        alerts_section(
            "[[alerts.channel]]\nid = \"bus\"\nkind = \"mqtt\"\n",
            "\"bus\""
        )
    );
    let config = demo_config(dir.path(), &extra).unwrap();
    let (env, control) = demo_env(dir.path());
    let _sim = bms_e2e::start_sim(&config, &env).unwrap();
    let mut gw = start_gateway(&config, &env);
    std::thread::sleep(Duration::from_secs(3));
    inject_fire_fault(&control);
    let line = sub
        .wait_for("/alert ", Duration::from_secs(30))
        .unwrap_or_else(|e| panic!("{e}\n{}", gw.output()));
    let (topic, payload) = line.split_once(' ').unwrap();
    assert_eq!(topic, "bms/demo-sales-centre/gw-1/alert");
    let v: serde_json::Value = serde_json::from_str(payload).unwrap();
    assert_eq!(v["kind"], "page");
    assert!(v["seq"].is_u64());
    assert!(
        v["title"].as_str().unwrap().starts_with("【紧急告警】"),
        "{v}"
    );
    assert_eq!(v["to"][0]["name"], "张工");
    assert_eq!(gw.interrupt(Duration::from_secs(15)).unwrap(), Some(0));
    let _ = broker.interrupt(Duration::from_secs(5));
}

#[test]
#[ignore = "needs python3 with aiosmtpd and openssl (.ci/run installs them)"]
fn an_email_goes_over_starttls_with_authentication_to_a_server_with_its_own_ca() {
    require_tool("python3", "install python3").unwrap();
    require_tool("openssl", "apt-get install openssl").unwrap();
    let dir = tempfile::tempdir().unwrap();
    // A test CA and a server certificate it signs for 127.0.0.1.
    let (code, out, err) = run_with_timeout(
        Command::new("sh").current_dir(dir.path()).arg("-c").arg(
            "set -e
             openssl req -x509 -newkey rsa:2048 -nodes -keyout ca.key -out ca.pem -days 2 -subj /CN=bms-test-ca
             openssl req -newkey rsa:2048 -nodes -keyout key.pem -out server.csr -subj /CN=127.0.0.1
             printf 'subjectAltName=IP:127.0.0.1\\nbasicConstraints=CA:FALSE\\n' > san.ext
             openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial -out cert.pem -days 2 -extfile san.ext",
        ),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(code, Some(0), "{out}{err}");
    let (ca, cert, key) = (
        dir.path().join("ca.pem"),
        dir.path().join("cert.pem"),
        dir.path().join("key.pem"),
    );
    let mails = dir.path().join("mails");
    std::fs::create_dir(&mails).unwrap();
    let script = dir.path().join("sink.py");
    std::fs::write(&script, SMTP_SINK).unwrap();
    let port = free_port();
    let mut smtp = Proc::spawn(
        "aiosmtpd",
        Command::new("python3")
            .arg(&script)
            .arg(port.to_string())
            .arg(&mails)
            .arg(&cert)
            .arg(&key),
    )
    .unwrap();
    smtp.wait_for("smtp ready", Duration::from_secs(20))
        .unwrap();
    let channel = format!(
        "[[alerts.channel]]\nid = \"mail\"\nkind = \"email\"\nhost = \"127.0.0.1\"\nport = {port}\ntls = \"starttls\"\nusername = \"bms\"\npassword = {{ env = \"BMS_TEST_SMTP_PASS\" }}\nca_file = {:?}\nfrom = \"bms@example.com\"\n",
        ca.display().to_string()
    );
    let config = demo_config(dir.path(), &alerts_section(&channel, "\"mail\"")).unwrap();
    let (mut env, control) = demo_env(dir.path());
    env.push(("BMS_TEST_SMTP_PASS".into(), "s3cret".into()));
    let _sim = bms_e2e::start_sim(&config, &env).unwrap();
    let mut gw = start_gateway(&config, &env);
    std::thread::sleep(Duration::from_secs(3));
    inject_fire_fault(&control);
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::fs::read_dir(&mails).unwrap().count() == 0 {
        assert!(
            Instant::now() < deadline,
            "no e-mail over STARTTLS within 30 s; gateway:\n{}\nsmtp:\n{}",
            gw.output(),
            smtp.output()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    let m: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(mails.join("0.json")).unwrap()).unwrap();
    assert!(
        m["subject"].as_str().unwrap().starts_with("【紧急告警】"),
        "{m:#}"
    );
    assert!(m["body"].as_str().unwrap().contains("设备："), "{m:#}");
    assert_eq!(gw.interrupt(Duration::from_secs(15)).unwrap(), Some(0));
}

#[test]
fn alerts_test_tries_each_channel_and_says_which_failed() {
    let rx = Receiver::start();
    rx.status.store(200, Ordering::SeqCst);
    let dir = tempfile::tempdir().unwrap();
    let channel = format!(
        "[[alerts.channel]]\nid = \"hook\"\nkind = \"webhook\"\nurl = \"{}\"\n",
        rx.url
    );
    let config = demo_config(dir.path(), &alerts_section(&channel, "\"hook\"")).unwrap();
    let run = || {
        run_with_timeout(
            Command::new(bin("gateway"))
                .args(["alerts", "test", "--config"])
                .arg(&config),
            Duration::from_secs(30),
        )
        .unwrap()
    };
    let (code, out, err) = run();
    assert_eq!(code, Some(0), "{out}{err}");
    assert!(out.contains("hook: accepted"), "{out}");
    let v: serde_json::Value = serde_json::from_str(&rx.hits()[0].body).unwrap();
    assert!(v["title"].as_str().unwrap().starts_with("【测试】"), "{v}");
    assert_eq!(v["to"][0]["name"], "张工");
    rx.status.store(503, Ordering::SeqCst);
    let (code, out, _) = run();
    assert_eq!(code, Some(69), "{out}");
    assert!(out.contains("hook: FAILED: HTTP 503"), "{out}");
}
