//! The north side against real Mosquitto (Debian's package, started here on
//! a free port with its own configuration): message schema, retained state
//! for a late subscriber, the last will, signed commands, TLS with a test
//! CA and credentials, and no loss across a broker outage and a gateway
//! SIGKILL. `#[ignore]`d: `.ci/run` installs mosquitto and runs them.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bms_e2e::{
    Proc, bin, demo_config, demo_env, free_port, http, require_tool, run_with_timeout, start_sim,
};
use hmac::{Hmac, Mac};
use serde_json::Value;

const PREFIX: &str = "bms/demo-sales-centre/gw-1";
/// The `[commands] secret` of the command tests (at least 32 bytes).
const SECRET: &str = "s3cret-for-the-mqtt-end-to-end-tests";

/// A Mosquitto of our own.
struct Broker {
    port: u16,
    conf: PathBuf,
    proc: Option<Proc>,
}

impl Broker {
    /// Starts Mosquitto with `listener PORT 127.0.0.1` plus `extra` lines.
    fn start(dir: &Path, extra: &str) -> Broker {
        require_tool("mosquitto", "apt-get install mosquitto").unwrap();
        let port = free_port();
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        std::fs::write(
            &conf,
            // `user root`: when the tests run as root, Mosquitto would
            // otherwise drop to its own user, who cannot read our temp dir.
            format!("listener {port} 127.0.0.1\nuser root\n{extra}\nlog_type error\nlog_type warning\nlog_type notice\n"),
        )
        .unwrap();
        let mut b = Broker {
            port,
            conf,
            proc: None,
        };
        b.restart();
        b
    }

    fn restart(&mut self) {
        let proc = Proc::spawn(
            "mosquitto",
            Command::new("mosquitto").arg("-c").arg(&self.conf),
        )
        .unwrap();
        self.proc = Some(proc);
        let deadline = Instant::now() + Duration::from_secs(10);
        while std::net::TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() >= deadline {
                let out = self.proc.as_mut().map(Proc::output).unwrap_or_default();
                panic!("mosquitto did not listen on {}: {out}", self.port);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn stop(&mut self) {
        if let Some(mut p) = self.proc.take() {
            p.interrupt(Duration::from_secs(10)).unwrap();
        }
    }

    fn url(&self) -> String {
        format!("mqtt://127.0.0.1:{}", self.port)
    }
}

/// `mosquitto_sub -v` on `topic` with extra arguments, lines collected.
fn subscribe(port: u16, topic: &str, extra: &[&str]) -> Proc {
    require_tool("mosquitto_sub", "apt-get install mosquitto-clients").unwrap();
    let mut p = Proc::spawn(
        "mosquitto_sub",
        Command::new("mosquitto_sub")
            .args([
                "-h",
                "127.0.0.1",
                "-p",
                &port.to_string(),
                "-v",
                "-t",
                topic,
            ])
            .args(extra),
    )
    .unwrap();
    // mosquitto_sub prints nothing when subscribed; give it a moment to be.
    std::thread::sleep(Duration::from_millis(300));
    let _ = p.output();
    p
}

/// (topic, payload) of every line seen.
fn messages(sub: &mut Proc) -> Vec<(String, Value)> {
    sub.output()
        .lines()
        .filter_map(|l| l.split_once(' '))
        .filter_map(|(t, p)| Some((t.to_owned(), serde_json::from_str(p).ok()?)))
        .collect()
}

fn config(dir: &Path, extra: &str) -> PathBuf {
    demo_config(dir, extra).unwrap()
}

fn gateway(config: &Path, env: &[(String, String)], url: &str) -> Proc {
    let mut gw = Proc::spawn(
        "gateway run",
        Command::new(bin("gateway"))
            .args(["run", "--mqtt-url", url, "--config"])
            .arg(config)
            .env("RUST_LOG", "info")
            .envs(env.iter().cloned()),
    )
    .unwrap();
    gw.wait_for("connected to the MQTT broker", Duration::from_secs(20))
        .unwrap();
    gw
}

fn sim(config: &Path, env: &[(String, String)]) -> Proc {
    start_sim(config, env).unwrap()
}

/// Checks one message against the schema of docs/mqtt.md, by topic.
fn check_schema(topic: &str, v: &Value) {
    let rest = topic
        .strip_prefix(PREFIX)
        .unwrap_or_else(|| panic!("topic outside the prefix: {topic}"))
        .trim_start_matches('/');
    assert!(v["seq"].is_u64(), "{topic}: seq {v}");
    assert!(
        v["ts"].as_i64().unwrap_or(0) > 1_700_000_000_000,
        "{topic}: ts {v}"
    );
    let parts: Vec<&str> = rest.split('/').collect();
    match parts.as_slice() {
        ["status"] => {
            assert!(["online", "offline"].contains(&v["state"].as_str().unwrap()));
            assert!(v["version"].is_string() && v["started_at"].is_i64());
        }
        ["alarm"] => {
            assert!(v["device"].is_string() && v["point"].is_string());
            assert!(v["active"].is_boolean() && v["at"].is_i64());
        }
        ["tickets", id] => {
            let t = &v["ticket"];
            assert_eq!(t["id"].as_u64().unwrap().to_string(), *id);
            assert!(v["event"].is_string() && v["at"].is_i64());
            for k in ["device", "kind", "severity", "state", "summary"] {
                assert!(t[k].is_string(), "ticket {k}: {v}");
            }
            assert!(t["opened_ms"].is_i64() && t["deadline_ms"].is_i64());
        }
        ["alert"] => {
            assert!(v["key"].is_string() && v["kind"].is_string() && v["title"].is_string());
            assert!(v["lines"].is_array() && v["to"].is_array() && v["urgent"].is_boolean());
        }
        ["cmd", "reply"] => {
            assert!(v["ok"].is_boolean() && v["op"].is_string());
        }
        [device, "telemetry"] => {
            assert_eq!(v["device"], *device);
            assert!(v["class"].is_string());
            assert!(v["points"].is_object() && v["units"].is_object() && v["quality"].is_object());
        }
        [device, "state"] => {
            assert_eq!(v["device"], *device);
            assert!(
                ["up", "down", "maintenance", "unknown"].contains(&v["state"].as_str().unwrap())
            );
            assert!(v["since"].is_i64());
            for k in ["name_zh", "name_en", "location"] {
                assert!(v[k].is_string(), "{k} in {v}");
            }
            let alarms = v["alarms"]
                .as_array()
                .unwrap_or_else(|| panic!("alarms in {v}"));
            for a in alarms {
                assert!(a["point"].is_string() && a["since"].is_i64(), "{v}");
            }
            let a = &v["availability"];
            assert!(
                a["threshold"].is_f64()
                    && a["below"].is_boolean()
                    && a["rolling_window_s"].is_i64()
            );
            for k in ["rolling", "month"] {
                assert!(
                    a[k].is_null() || (0.0..=1.0).contains(&a[k].as_f64().unwrap()),
                    "{v}"
                );
            }
        }
        [device, "event"] => {
            assert_eq!(v["device"], *device);
            match v["type"].as_str().unwrap() {
                "transition" => {
                    assert!(v["from"].is_string() && v["to"].is_string() && v["at"].is_i64())
                }
                "threshold" => assert!(v["crossing"].is_string() && v["availability"].is_f64()),
                other => panic!("unknown event type {other}"),
            }
        }
        _ => panic!("unexpected topic {topic}"),
    }
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn messages_follow_the_schema_state_is_retained_and_the_will_says_offline() {
    let dir = tempfile::tempdir().unwrap();
    let (env, control) = demo_env(dir.path());
    let broker = Broker::start(dir.path(), "allow_anonymous true\npersistence false");
    let cfg = config(dir.path(), "");
    let _sim = sim(&cfg, &env);
    let mut all = subscribe(broker.port, "bms/#", &["-q", "1"]);
    let mut gw = gateway(&cfg, &env, &broker.url());
    all.wait_for("/pump-1/telemetry", Duration::from_secs(20))
        .unwrap();
    // The admin listener: health and Prometheus metrics.
    let admin = env
        .iter()
        .find(|(k, _)| k == "BMS_ADMIN_LISTEN")
        .map(|(_, v)| v.clone())
        .unwrap();
    let (code, body) = http("GET", &admin, "/healthz", "").unwrap();
    assert_eq!(code, 200, "{body}");
    let health: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(health["mqtt_connected"], true, "{body}");
    let (code, metrics) = http("GET", &admin, "/metrics", "").unwrap();
    assert_eq!(code, 200);
    for needle in [
        "# TYPE bms_polls_total counter",
        "bms_polls_total{bus=\"rs485-1\"}",
        "bms_request_failures_total{bus=\"tcp-power\",kind=\"timeout\"}",
        "bms_mqtt_connected 1",
        "bms_outbox_records{sink=\"mqtt\"}",
        "bms_outbox_delivered_total{sink=\"mqtt\"}",
        "bms_mqtt_publish_ack_seconds_count",
    ] {
        assert!(metrics.contains(needle), "no {needle} in\n{metrics}");
    }
    let (code, body) = http(
        "POST",
        &control,
        "/faults",
        r#"{"device":"fire-panel-1","fault":"fault_bit","point":"fault"}"#,
    )
    .unwrap();
    assert_eq!(code, 201, "{body}");
    all.wait_for(&format!("{PREFIX}/alarm "), Duration::from_secs(10))
        .unwrap();
    all.wait_for(&format!("{PREFIX}/tickets/1 "), Duration::from_secs(10))
        .unwrap();

    // A late subscriber gets every device's retained state at once.
    let (code, out, err) = run_with_timeout(
        Command::new("mosquitto_sub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "-v",
            "-t",
            &format!("{PREFIX}/+/state"),
            "-C",
            "19",
            "-W",
            "10",
        ]),
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(code, Some(0), "{out}\n{err}");
    let devices: BTreeSet<&str> = out
        .lines()
        .filter_map(|l| {
            l.split_once(' ')?
                .0
                .strip_prefix(PREFIX)?
                .strip_suffix("/state")
        })
        .collect();
    assert_eq!(devices.len(), 19, "{out}");
    // …and the retained ticket.
    let (code, out, _) = run_with_timeout(
        Command::new("mosquitto_sub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "-t",
            &format!("{PREFIX}/tickets/+"),
            "-C",
            "1",
            "-W",
            "5",
        ]),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(code, Some(0));
    let t: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(t["ticket"]["kind"], "alarm:fault");

    // SIGKILL: the broker publishes the will.
    gw.kill9().unwrap();
    all.wait_for("\"state\":\"offline\"", Duration::from_secs(10))
        .unwrap();

    let msgs = messages(&mut all);
    assert!(msgs.len() > 50, "{}", msgs.len());
    let mut last = 0;
    for (topic, v) in &msgs {
        check_schema(topic, v);
        if !topic.ends_with("/status") {
            let seq = v["seq"].as_u64().unwrap();
            assert!(
                seq > last,
                "seq not increasing: {last} then {seq} on {topic}"
            );
            last = seq;
        }
    }
    let kinds: BTreeSet<&str> = msgs
        .iter()
        .map(|(t, _)| t.rsplit('/').next().unwrap())
        .collect();
    for k in ["status", "telemetry", "state", "event", "alarm"] {
        assert!(kinds.contains(k), "no {k} message: {kinds:?}");
    }
    let ticket = msgs
        .iter()
        .find(|(t, _)| t.contains("/tickets/"))
        .map(|(_, v)| v)
        .unwrap();
    assert_eq!(ticket["ticket"]["severity"], "critical");
    assert_eq!(ticket["event"], "opened");
    let state = msgs
        .iter()
        .rev()
        .find(|(t, _)| t.ends_with("/fire-panel-1/state"))
        .map(|(_, v)| v)
        .unwrap();
    assert_eq!(state["state"], "down");
    assert_eq!(state["reason"], "rule:panel_fault");
    assert_eq!(state["availability"]["threshold"], 99.0);
}

/// A signed command payload, computed here independently of the gateway.
fn signed(secret: &str, body: &Value) -> String {
    let text = body.to_string();
    let mut mac = Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(text.as_bytes());
    let sig = hex::encode(mac.finalize().into_bytes());
    serde_json::json!({"body": text, "sig": sig}).to_string()
}

fn now_ms() -> i64 {
    i64::try_from(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_millis(),
    )
    .unwrap()
}

fn publish(port: u16, topic: &str, payload: &str) {
    let (code, out, err) = run_with_timeout(
        Command::new("mosquitto_pub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &port.to_string(),
            "-q",
            "1",
            "-t",
            topic,
            "-m",
            payload,
        ]),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(code, Some(0), "{out}\n{err}");
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn signed_commands_are_applied_and_every_bad_one_is_refused_with_a_reason() {
    let dir = tempfile::tempdir().unwrap();
    let (mut env, control) = demo_env(dir.path());
    env.push(("BMS_CMD_SECRET".into(), SECRET.into()));
    let broker = Broker::start(dir.path(), "allow_anonymous true\npersistence false");
    let cfg = config(
        dir.path(),
        "[commands]\nsecret = { env = \"BMS_CMD_SECRET\" }\n",
    );
    let _sim = sim(&cfg, &env);
    let mut replies = subscribe(broker.port, &format!("{PREFIX}/cmd/reply"), &["-q", "1"]);
    let mut gw = gateway(&cfg, &env, &broker.url());
    http(
        "POST",
        &control,
        "/faults",
        r#"{"device":"fire-panel-1","fault":"fault_bit","point":"fault"}"#,
    )
    .unwrap();
    gw.wait_for("ticket opened", Duration::from_secs(15))
        .unwrap();
    let db = dir.path().join("data/gateway.db");
    let events = || -> i64 {
        rusqlite::Connection::open(&db)
            .unwrap()
            .query_row("SELECT COUNT(*) FROM ticket_events", [], |r| r.get(0))
            .unwrap()
    };
    // The log line comes just before the ticket is stored: wait for it.
    let deadline = Instant::now() + Duration::from_secs(10);
    while events() == 0 {
        assert!(Instant::now() < deadline, "the ticket was not stored");
        std::thread::sleep(Duration::from_millis(100));
    }
    let before = events();
    let ack = |id: &str, ts: i64| serde_json::json!({"op":"ack","id":id,"ts":ts,"by":"张工","site":"demo-sales-centre","gateway":"gw-1","ticket":1,"note":"到场"});
    let topic = |op: &str| format!("{PREFIX}/cmd/{op}");
    let secret = SECRET;
    // Rejected, each with its reason; nothing changes.
    let bad: Vec<(&str, String, &str)> = vec![
        (
            "unsigned",
            serde_json::json!({"body": ack("nonce-unsigned", now_ms()).to_string()}).to_string(),
            "ack",
        ),
        (
            "bad_signature",
            signed("wrong-secret", &ack("nonce-badsig", now_ms())),
            "ack",
        ),
        (
            "stale",
            signed(secret, &ack("nonce-stale", now_ms() - 3_600_000)),
            "ack",
        ),
        ("malformed", "{not json".to_owned(), "ack"),
        (
            "unknown",
            signed(
                secret,
                &serde_json::json!({"op":"frobnicate","id":"nonce-unknown","ts":now_ms(),"by":"张工","site":"demo-sales-centre","gateway":"gw-1"}),
            ),
            "frobnicate",
        ),
    ];
    for (reason, payload, op) in &bad {
        publish(broker.port, &topic(op), payload);
        replies
            .wait_for(
                &format!(r#"\"reason\":\"{reason}\""#),
                Duration::from_secs(10),
            )
            .unwrap_or_else(|e| panic!("{reason}: {e}"));
    }
    assert_eq!(events(), before, "a rejected command changed the tickets");

    // A valid ack is applied; its replay is refused.
    let good = signed(secret, &ack("nonce-good-1", now_ms()));
    publish(broker.port, &topic("ack"), &good);
    let line = replies
        .wait_for("nonce-good-1", Duration::from_secs(15))
        .unwrap();
    assert!(
        line.contains(r#"\"ok\":true"#)
            && line.contains("acknowledged by 张工")
            && line.contains("\"sig\":"),
        "{line}"
    );
    let state: String = rusqlite::Connection::open(&db)
        .unwrap()
        .query_row("SELECT state FROM tickets WHERE id = 1", [], |r| r.get(0))
        .unwrap();
    assert_eq!(state, "acknowledged");
    publish(broker.port, &topic("ack"), &good);
    replies
        .wait_for(r#"\"reason\":\"replayed\""#, Duration::from_secs(10))
        .unwrap();
    assert_eq!(gw.interrupt(Duration::from_secs(10)).unwrap(), Some(0));
}

/// Every seq (non-status) seen by a subscriber, deduplicated.
fn seqs(msgs: &[(String, Value)]) -> BTreeSet<u64> {
    msgs.iter()
        .filter(|(t, _)| !t.ends_with("/status"))
        .map(|(_, v)| v["seq"].as_u64().unwrap())
        .collect()
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it); takes about three minutes"]
fn nothing_is_lost_across_a_two_minute_broker_outage_and_a_gateway_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let (env, _) = demo_env(dir.path());
    let persist = dir.path().join("mosquitto-data");
    std::fs::create_dir_all(&persist).unwrap();
    let mut broker = Broker::start(
        dir.path(),
        &format!(
            "allow_anonymous true\npersistence true\npersistence_location {}/\nautosave_interval 1\nmax_queued_messages 0\nmax_inflight_messages 0",
            persist.display()
        ),
    );
    let cfg = config(dir.path(), "");
    let _sim = sim(&cfg, &env);
    // A persistent session (clean session off, QoS 1): the broker keeps
    // what arrives for it while it is away.
    let sub_args = ["-q", "1", "-c", "-i", "e2e-no-loss"];
    let mut sub = subscribe(broker.port, "bms/#", &sub_args);
    let mut gw = gateway(&cfg, &env, &broker.url());
    std::thread::sleep(Duration::from_secs(10));

    broker.stop();
    let outage_from = now_ms();
    gw.wait_for("lost the MQTT connection", Duration::from_secs(10))
        .unwrap();
    std::thread::sleep(Duration::from_secs(120));
    let outage_to = now_ms();
    broker.restart();
    gw.wait_for("connected to the MQTT broker", Duration::from_secs(90))
        .unwrap();
    std::thread::sleep(Duration::from_secs(15));

    // SIGKILL while publishing, then a restart delivers the rest.
    gw.kill9().unwrap();
    let mut gw = gateway(&cfg, &env, &broker.url());
    std::thread::sleep(Duration::from_secs(10));
    assert_eq!(gw.interrupt(Duration::from_secs(10)).unwrap(), Some(0));
    std::thread::sleep(Duration::from_secs(3));

    let msgs = messages(&mut sub);
    let during = msgs
        .iter()
        .filter(|(t, v)| {
            !t.ends_with("/status")
                && (outage_from..outage_to).contains(&v["ts"].as_i64().unwrap_or(0))
        })
        .count();
    assert!(
        during > 20,
        "only {during} messages made during the outage arrived"
    );
    let got = seqs(&msgs);
    let (first, last) = (*got.first().unwrap(), *got.last().unwrap());
    let missing: Vec<u64> = (first..=last).filter(|s| !got.contains(s)).collect();
    assert!(
        missing.is_empty(),
        "{} of {} seqs missing between {first} and {last}: {:?}",
        missing.len(),
        last - first + 1,
        &missing[..missing.len().min(20)]
    );
    assert!(last - first > 200, "too few messages: {first}..{last}");
    eprintln!(
        "no loss: seqs {first}..={last} all delivered, {during} of them made during the outage"
    );
    // The outbox is empty: everything was acknowledged.
    let left: i64 = rusqlite::Connection::open(dir.path().join("data/outbox.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))
        .unwrap();
    assert_eq!(left, 0);
    drop(sub);
}

fn openssl(args: &[&str], dir: &Path) {
    let (code, out, err) = run_with_timeout(
        Command::new("openssl").args(args).current_dir(dir),
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(code, Some(0), "openssl {args:?}: {out}\n{err}");
}

#[test]
#[ignore = "needs mosquitto and openssl (.ci/run installs them)"]
fn tls_with_a_test_ca_and_a_password_works_and_a_wrong_password_says_so() {
    require_tool("openssl", "apt-get install openssl").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    openssl(
        &[
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "ca.key",
            "-out",
            "ca.pem",
            "-days",
            "2",
            "-subj",
            "/CN=bms-test-ca",
        ],
        d,
    );
    openssl(
        &[
            "req",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-keyout",
            "server.key",
            "-out",
            "server.csr",
            "-subj",
            "/CN=localhost",
        ],
        d,
    );
    std::fs::write(
        d.join("san.ext"),
        "subjectAltName=IP:127.0.0.1,DNS:localhost\n",
    )
    .unwrap();
    openssl(
        &[
            "x509",
            "-req",
            "-in",
            "server.csr",
            "-CA",
            "ca.pem",
            "-CAkey",
            "ca.key",
            "-CAcreateserial",
            "-out",
            "server.pem",
            "-days",
            "2",
            "-extfile",
            "san.ext",
        ],
        d,
    );
    let (code, _, err) = run_with_timeout(
        Command::new("mosquitto_passwd")
            .args(["-b", "-c"])
            .arg(d.join("passwd"))
            .args(["gw-1", "right-pass"]),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_eq!(code, Some(0), "{err}");
    let broker = Broker::start(
        d,
        &format!(
            "allow_anonymous false\npassword_file {p}/passwd\ncafile {p}/ca.pem\ncertfile {p}/server.pem\nkeyfile {p}/server.key\npersistence false",
            p = d.display()
        ),
    );
    let (mut env, _) = demo_env(d);
    env.push(("BMS_MQTT_PASSWORD".into(), "right-pass".into()));
    let url = format!("mqtts://127.0.0.1:{}", broker.port);
    let cfg = config(
        d,
        &format!(
            "[mqtt]\nurl = {url:?}\nusername = \"gw-1\"\npassword = {{ env = \"BMS_MQTT_PASSWORD\" }}\nca_file = {:?}\n",
            d.join("ca.pem").display().to_string()
        ),
    );
    let mut sub = subscribe(
        broker.port,
        &format!("{PREFIX}/status"),
        &[
            "--cafile",
            &d.join("ca.pem").display().to_string(),
            "-u",
            "gw-1",
            "-P",
            "right-pass",
        ],
    );
    let mut gw = Proc::spawn(
        "gateway run",
        Command::new(bin("gateway"))
            .args(["run", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .envs(env.iter().cloned()),
    )
    .unwrap();
    gw.wait_for("connected to the MQTT broker", Duration::from_secs(20))
        .unwrap();
    sub.wait_for("\"state\":\"online\"", Duration::from_secs(10))
        .unwrap();
    assert!(
        !gw.output().contains("right-pass"),
        "the password was logged"
    );
    assert_eq!(gw.interrupt(Duration::from_secs(10)).unwrap(), Some(0));

    // The wrong password: a clear line, and the gateway keeps running.
    let env_bad: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| {
            if k == "BMS_MQTT_PASSWORD" {
                (k.clone(), "wrong-pass".to_owned())
            } else {
                (k.clone(), v.clone())
            }
        })
        .collect();
    let mut gw = Proc::spawn(
        "gateway run",
        Command::new(bin("gateway"))
            .args(["run", "--config"])
            .arg(&cfg)
            .envs(env_bad),
    )
    .unwrap();
    gw.wait_for("a wrong user name or password", Duration::from_secs(20))
        .unwrap();
    assert!(
        !gw.output().contains("wrong-pass"),
        "the password was logged"
    );
    assert_eq!(gw.interrupt(Duration::from_secs(10)).unwrap(), Some(0));
}

/// `GET` on loopback; (status, body).
fn get(addr: &str, path: &str) -> (u16, String) {
    http("GET", addr, path, "").unwrap()
}

#[test]
#[ignore = "needs victoria-metrics (.ci/run installs it)"]
fn telemetry_reaches_victoria_metrics_through_the_influx_outbox() {
    require_tool("victoria-metrics", "apt-get install victoria-metrics").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (env, _) = demo_env(dir.path());
    let vm_addr = format!("127.0.0.1:{}", free_port());
    let _vm = Proc::spawn(
        "victoria-metrics",
        Command::new("victoria-metrics")
            .arg(format!("-httpListenAddr={vm_addr}"))
            .arg(format!(
                "-storageDataPath={}",
                dir.path().join("vm").display()
            ))
            .arg("-search.latencyOffset=0s"),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http("GET", &vm_addr, "/health", "")
        .map(|r| r.0)
        .unwrap_or(0)
        != 200
    {
        assert!(Instant::now() < deadline, "victoria-metrics did not start");
        std::thread::sleep(Duration::from_millis(100));
    }
    let cfg = config(
        dir.path(),
        &format!(
            "[influx]\nurl = \"http://{vm_addr}\"\norg = \"o\"\nbucket = \"b\"\nflush_every = \"200ms\"\n"
        ),
    );
    let _sim = sim(&cfg, &env);
    let started = now_ms();
    let mut gw = Proc::spawn(
        "gateway run",
        Command::new(bin("gateway"))
            .args(["run", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .envs(env.iter().cloned()),
    )
    .unwrap();
    gw.wait_for("writing telemetry to InfluxDB", Duration::from_secs(20))
        .unwrap();
    // Lines are written within flush_every; VictoriaMetrics makes them
    // searchable after a flush.
    let deadline = Instant::now() + Duration::from_secs(30);
    let series = loop {
        std::thread::sleep(Duration::from_millis(500));
        get(&vm_addr, "/internal/force_flush");
        let (code, body) = get(
            &vm_addr,
            "/api/v1/export?match%5B%5D=%7B__name__%3D%22pump_outlet_pressure%22%7D",
        );
        assert_eq!(code, 200, "{body}");
        let lines: Vec<Value> = body
            .lines()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if lines.len() >= 2 {
            break lines;
        }
        assert!(
            Instant::now() < deadline,
            "no pump series in VictoriaMetrics: {body}\n{}",
            gw.output()
        );
    };
    for s in &series {
        let m = &s["metric"];
        assert_eq!(m["site"], "demo-sales-centre", "{s}");
        assert_eq!(m["gateway"], "gw-1");
        assert!(m["device"] == "pump-1" || m["device"] == "pump-2", "{s}");
        for (v, t) in s["values"]
            .as_array()
            .unwrap()
            .iter()
            .zip(s["timestamps"].as_array().unwrap())
        {
            let v = v.as_f64().unwrap();
            assert!(
                (0.0..=16.0).contains(&v),
                "pressure {v} out of the profile's range"
            );
            let t = t.as_i64().unwrap();
            assert!(
                t >= started - 1000 && t <= now_ms(),
                "timestamp {t} outside the run"
            );
        }
    }
    assert_eq!(gw.interrupt(Duration::from_secs(10)).unwrap(), Some(0));
    // Everything written was removed from the outbox.
    std::thread::sleep(Duration::from_millis(500));
    let left: i64 = rusqlite::Connection::open(dir.path().join("data/influx-outbox.db"))
        .unwrap()
        .query_row("SELECT COUNT(*) FROM records", [], |r| r.get(0))
        .unwrap();
    assert!(left < 40, "{left} lines still waiting after a clean stop");
}
