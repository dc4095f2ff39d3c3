//! Attacks on the MQTT transport, against real Mosquitto: an oversized
//! retained message aimed at the dashboard and at a gateway's commands, the
//! same under the SHIPPED `deploy/mosquitto` configuration, a client-id
//! takeover, the dashboard login's rights on commands and replies, and the
//! dashboard over `mqtts://` with the CA made by
//! `deploy/central/make-certs.sh`. The shipped broker runs from
//! `deploy/mosquitto/mosquitto.conf` itself, with only its paths and port
//! moved (its size limit, TLS listener, `use_username_as_clientid` and ACL
//! are kept), and logins made by `deploy/mosquitto/bms-mqtt-user`.
//! `#[ignore]`d: `.ci/run` installs mosquitto and runs them.

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use bms_e2e::{
    Proc, bin, demo_config, demo_env, free_port, http, require_tool, run_with_timeout,
    start_dashboard, start_mosquitto, start_sim, until, workspace_root,
};

/// How long a client is watched under the oversized message.
const WINDOW: Duration = Duration::from_secs(30);
/// The oversized message: twice the clients' default limit of 1 MiB.
const BIG: usize = 2 << 20;

const CMD_SECRET: &str = "transport-test-command-secret-0123456789";
const KIOSK: &str = "transport-test-kiosk-token-0123456789";

fn big_file(d: &Path) -> PathBuf {
    let f = d.join("big.bin");
    std::fs::write(&f, vec![b'x'; BIG]).unwrap();
    f
}

/// The shipped broker: certificates by make-certs.sh, logins by
/// bms-mqtt-user, deploy/mosquitto/mosquitto.conf with its paths moved
/// into `d` and its TLS listener onto a free loopback port.
struct Shipped {
    broker: Proc,
    port: u16,
    ca: PathBuf,
}

fn shipped_broker(d: &Path, users: &[&[&str]]) -> Shipped {
    require_tool("mosquitto", "apt-get install mosquitto").unwrap();
    require_tool("mosquitto_sub", "apt-get install mosquitto-clients").unwrap();
    let certs = d.join("certs");
    let (code, out, err) = run_with_timeout(
        Command::new(workspace_root().join("deploy/central/make-certs.sh"))
            .arg("--out")
            .arg(&certs)
            .args(["--broker", "localhost", "--broker", "127.0.0.1"])
            .args(["--web", "localhost"]),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(code, Some(0), "make-certs.sh: {out}{err}");
    std::fs::copy(workspace_root().join("deploy/mosquitto/acl"), d.join("acl")).unwrap();
    for args in users {
        let (code, out, err) = run_with_timeout(
            Command::new(workspace_root().join("deploy/mosquitto/bms-mqtt-user"))
                .arg("--passwd")
                .arg(d.join("passwd"))
                .arg("--acl")
                .arg(d.join("acl"))
                .args(*args),
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(code, Some(0), "bms-mqtt-user {args:?}: {out}{err}");
    }
    let data = d.join("mosquitto-data");
    std::fs::create_dir_all(&data).unwrap();
    let port = free_port();
    let shipped =
        std::fs::read_to_string(workspace_root().join("deploy/mosquitto/mosquitto.conf")).unwrap();
    // What the attacks rely on is in the shipped file.
    for setting in [
        "max_packet_size 262144",
        "use_username_as_clientid true",
        "allow_anonymous false",
    ] {
        assert!(
            shipped.lines().any(|l| l.trim() == setting),
            "{setting} missing"
        );
    }
    assert!(
        !shipped.lines().any(|l| l.trim() == "listener 1883"),
        "a plain listener"
    );
    let mut conf = format!("user root\n{shipped}");
    for (from, to) in [
        (
            "/mosquitto/config/passwd".to_owned(),
            d.join("passwd").display().to_string(),
        ),
        (
            "/mosquitto/config/acl".to_owned(),
            d.join("acl").display().to_string(),
        ),
        (
            "/mosquitto/data/".to_owned(),
            format!("{}/", data.display()),
        ),
        (
            "/mosquitto/certs/".to_owned(),
            format!("{}/", certs.display()),
        ),
        (
            "listener 8883".to_owned(),
            format!("listener {port} 127.0.0.1"),
        ),
    ] {
        assert!(conf.contains(&from), "{from} not in the shipped conf");
        conf = conf.replace(&from, &to);
    }
    let file = d.join("mosquitto.conf");
    std::fs::write(&file, conf).unwrap();
    // Line-buffered, so that its log (on stdout, as shipped) arrives at once.
    let broker = Proc::spawn(
        "mosquitto",
        Command::new("stdbuf")
            .args(["-oL", "mosquitto", "-c"])
            .arg(&file),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "mosquitto did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Shipped {
        broker,
        port,
        ca: certs.join("ca.pem"),
    }
}

/// Connection arguments of the mosquitto clients: the anonymous broker on
/// `port`, or the shipped one over TLS with a login.
fn conn(port: u16, tls: Option<(&Path, &str, &str)>) -> Vec<String> {
    let mut a = vec!["-p".to_owned(), port.to_string()];
    match tls {
        Some((ca, user, pass)) => a.extend(
            [
                "-h",
                "localhost",
                "--cafile",
                &ca.display().to_string(),
                "-u",
                user,
                "-P",
                pass,
            ]
            .map(str::to_owned),
        ),
        None => a.extend(["-h", "127.0.0.1"].map(str::to_owned)),
    }
    a
}

/// `mosquitto_sub -v` on `topic`, once subscribed (its standard output
/// made line-buffered, so that the SUBACK line arrives at once).
fn sub(conn: &[String], extra: &[&str], topic: &str) -> Proc {
    let mut p = Proc::spawn(
        "mosquitto_sub",
        Command::new("stdbuf")
            .args(["-oL", "mosquitto_sub"])
            .args(conn)
            .args(extra)
            .args(["-v", "-d", "-t", topic]),
    )
    .unwrap();
    p.wait_for("SUBACK", Duration::from_secs(10)).unwrap();
    p
}

fn publish(conn: &[String], extra: &[&str]) -> (Option<i32>, String) {
    let (code, out, err) = run_with_timeout(
        Command::new("mosquitto_pub").args(conn).args(extra),
        Duration::from_secs(20),
    )
    .unwrap();
    (code, format!("{out}{err}"))
}

/// The demo building's gateway (`demo-sales-centre/gw-1`), with commands
/// on, publishing to `mqtt` (an `[mqtt]` section body).
fn gateway(d: &Path, mqtt: &str, password: Option<&str>) -> (Proc, Proc) {
    let (mut env, _) = demo_env(d);
    env.push(("BMS_CMD_SECRET".into(), CMD_SECRET.into()));
    if let Some(p) = password {
        env.push(("BMS_MQTT_PASSWORD".into(), p.into()));
    }
    let cfg = demo_config(
        d,
        &format!("[commands]\nsecret = {{ env = \"BMS_CMD_SECRET\" }}\n\n[mqtt]\n{mqtt}\n"),
    )
    .unwrap();
    let sim = start_sim(&cfg, &env).unwrap();
    let mut gw = Proc::spawn(
        "gateway run",
        Command::new(bin("gateway"))
            .args(["run", "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .envs(env.iter().cloned()),
    )
    .unwrap();
    gw.wait_for("connected to the MQTT broker", Duration::from_secs(30))
        .unwrap();
    (sim, gw)
}

fn count(text: &str, needle: &str) -> usize {
    text.lines().filter(|l| l.contains(needle)).count()
}

/// Waits until the dashboard on `listen` says it is connected to the broker.
fn connected(listen: &str) {
    until(
        "the dashboard connected to the broker",
        Duration::from_secs(15),
        || {
            http("GET", listen, &format!("/api/health?kiosk={KIOSK}"), "")
                .ok()
                .filter(|(_, b)| b.contains("\"broker_connected\":true"))
        },
    );
}

fn snapshot(listen: &str) -> String {
    http("GET", listen, &format!("/api/snapshot?kiosk={KIOSK}"), "")
        .map(|(_, b)| b)
        .unwrap_or_default()
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn a_retained_message_over_the_limit_does_not_cut_the_dashboard_off() {
    require_tool("mosquitto_pub", "apt-get install mosquitto-clients").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    // Anonymous and without a size limit: only the clients defend.
    let (_broker, port) = start_mosquitto(d).unwrap();
    let c = conn(port, None);
    let big = big_file(d);
    let (code, out) = publish(
        &c,
        &[
            "-r",
            "-q",
            "1",
            "-t",
            "bms/s1/gw-1/pump-1/state",
            "-f",
            big.to_str().unwrap(),
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    let listen = format!("127.0.0.1:{}", free_port());
    let cfg = d.join("dashboard.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\n[mqtt]\nurl = \"mqtt://127.0.0.1:{port}\"\n[http]\nlisten = \"{listen}\"\nkiosk_token = {{ env = \"KIOSK\" }}\n",
            d.join("dash").display().to_string()
        ),
    )
    .unwrap();
    let mut dash = start_dashboard(&cfg, &[("KIOSK", KIOSK), ("RUST_LOG", "info")]).unwrap();
    connected(&listen);
    let started = Instant::now();
    // A leak alarm raised meanwhile reaches the snapshot.
    std::thread::sleep(Duration::from_secs(3));
    let now = 1_796_000_000_000_i64;
    let (code, out) = publish(
        &c,
        &[
            "-q",
            "1",
            "-t",
            "bms/s1/gw-1/alarm",
            "-m",
            &format!(
                r#"{{"active":true,"at":{now},"device":"leak-b1-1","point":"leak","seq":1,"ts":{now}}}"#
            ),
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    until(
        "the leak alarm in /api/snapshot",
        Duration::from_secs(10),
        || {
            let s = snapshot(&listen);
            (s.contains("leak-b1-1") && s.contains("\"leak\"")).then_some(())
        },
    );
    std::thread::sleep(WINDOW.saturating_sub(started.elapsed()));
    let log = dash.output();
    let connects = count(&log, "connected to the broker");
    eprintln!(
        "dashboard: {connects} connection(s) in {:?} with a {BIG}-byte retained message",
        started.elapsed()
    );
    assert!(connects <= 1, "the dashboard reconnected:\n{log}");
    let (_, health) = http("GET", &listen, &format!("/api/health?kiosk={KIOSK}"), "").unwrap();
    assert!(health.contains("\"broker_connected\":true"), "{health}");
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn a_command_over_the_limit_does_not_cut_the_gateway_off() {
    require_tool("mosquitto_pub", "apt-get install mosquitto-clients").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (_broker, port) = start_mosquitto(d).unwrap();
    let c = conn(port, None);
    let big = big_file(d);
    let topic = "bms/demo-sales-centre/gw-1/cmd/ack";
    // Retained before the gateway connects, and again live afterwards.
    let (code, out) = publish(
        &c,
        &["-r", "-q", "1", "-t", topic, "-f", big.to_str().unwrap()],
    );
    assert_eq!(code, Some(0), "{out}");
    let (_sim, mut gw) = gateway(d, &format!("url = \"mqtt://127.0.0.1:{port}\""), None);
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(2));
    let (code, out) = publish(&c, &["-q", "1", "-t", topic, "-f", big.to_str().unwrap()]);
    assert_eq!(code, Some(0), "{out}");
    std::thread::sleep(WINDOW.saturating_sub(started.elapsed()));
    let log = gw.output();
    let connects = count(&log, "connected to the MQTT broker");
    eprintln!(
        "gateway: {connects} connection(s) in {:?} with a {BIG}-byte command",
        started.elapsed()
    );
    assert_eq!(connects, 1, "the gateway reconnected:\n{log}");
    // It keeps publishing, and says it is online.
    let mut s = sub(&c, &[], "bms/demo-sales-centre/gw-1/#");
    s.wait_for("gw-1/status {", Duration::from_secs(10))
        .unwrap();
    assert!(
        s.output().contains("\"state\":\"online\""),
        "{}",
        s.output()
    );
    s.wait_for("/telemetry {", Duration::from_secs(20)).unwrap();
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn the_shipped_broker_refuses_an_oversized_publish() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let b = shipped_broker(
        d,
        &[
            &["gateway", "demo-sales-centre", "gw-1", "gw1-pass"],
            &["dashboard", "dashboard-1", "dash1-pass"],
            &["dashboard", "dashboard-2", "dash2-pass"],
        ],
    );
    let watcher = conn(b.port, Some((&b.ca, "dashboard-2", "dash2-pass")));
    let mut all = sub(&watcher, &[], "bms/#");
    let big = big_file(d);
    let gw = conn(b.port, Some((&b.ca, "demo-sales-centre.gw-1", "gw1-pass")));
    let dash = conn(b.port, Some((&b.ca, "dashboard-1", "dash1-pass")));
    // A gateway's retained state and a dashboard's command, each 2 MiB.
    publish(
        &gw,
        &[
            "-r",
            "-q",
            "1",
            "-t",
            "bms/demo-sales-centre/gw-1/pump-1/state",
            "-f",
            big.to_str().unwrap(),
        ],
    );
    publish(
        &dash,
        &[
            "-q",
            "1",
            "-t",
            "bms/demo-sales-centre/gw-1/cmd/ack",
            "-f",
            big.to_str().unwrap(),
        ],
    );
    // A small one afterwards is delivered: the watcher works.
    let (code, out) = publish(
        &gw,
        &[
            "-q",
            "1",
            "-t",
            "bms/demo-sales-centre/gw-1/probe",
            "-m",
            "small",
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    all.wait_for("gw-1/probe small", Duration::from_secs(10))
        .unwrap();
    let seen = all.output();
    assert!(!seen.contains("pump-1/state"), "{seen}");
    assert!(!seen.contains("cmd/ack"), "{seen}");
    // Nothing was stored: a new subscriber gets no retained state.
    let (_, out, _) = run_with_timeout(
        Command::new("mosquitto_sub")
            .args(&watcher)
            .args(["-v", "-W", "2", "-t", "bms/#"]),
        Duration::from_secs(10),
    )
    .unwrap();
    assert!(!out.contains("pump-1/state"), "{out}");
    let mut broker = b.broker;
    let log = broker.output();
    assert!(count(&log, "oversize packet") >= 1, "{log}");
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn another_login_cannot_take_over_a_gateway_or_the_dashboard_by_client_id() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let b = shipped_broker(
        d,
        &[
            &["gateway", "demo-sales-centre", "gw-1", "gw1-pass"],
            &["gateway", "other-site", "gw-9", "gw9-pass"],
            &["dashboard", "dashboard-1", "dash1-pass"],
            &["dashboard", "dashboard-2", "dash2-pass"],
        ],
    );
    let watcher = conn(b.port, Some((&b.ca, "dashboard-2", "dash2-pass")));
    let mut status = sub(&watcher, &[], "bms/demo-sales-centre/gw-1/status");
    let (_sim, mut gw) = gateway(
        d,
        &format!(
            "url = \"mqtts://127.0.0.1:{}\"\nca_file = {:?}\nusername = \"demo-sales-centre.gw-1\"\npassword = {{ env = \"BMS_MQTT_PASSWORD\" }}\nclient_id = \"gw-1-client\"",
            b.port,
            b.ca.display().to_string()
        ),
        Some("gw1-pass"),
    );
    status
        .wait_for("\"state\":\"online\"", Duration::from_secs(10))
        .unwrap();
    // The dashboard, over TLS with its own login.
    let listen = format!("127.0.0.1:{}", free_port());
    let cfg = d.join("dashboard.toml");
    std::fs::write(
        &cfg,
        format!(
            "data_dir = {:?}\n[mqtt]\nurl = \"mqtts://127.0.0.1:{}\"\nca_file = {:?}\nclient_id = \"dashboard-1\"\nusername = \"dashboard-1\"\npassword = {{ env = \"PASS\" }}\n[http]\nlisten = \"{listen}\"\nkiosk_token = {{ env = \"KIOSK\" }}\n",
            d.join("dash").display().to_string(),
            b.port,
            b.ca.display().to_string()
        ),
    )
    .unwrap();
    let mut dash = start_dashboard(
        &cfg,
        &[
            ("KIOSK", KIOSK),
            ("PASS", "dash1-pass"),
            ("RUST_LOG", "info"),
        ],
    )
    .unwrap();
    connected(&listen);
    // Another gateway's login, ten times with each victim's client id.
    let attacker = conn(b.port, Some((&b.ca, "other-site.gw-9", "gw9-pass")));
    for i in 0..10 {
        let id = if i % 2 == 0 {
            "gw-1-client"
        } else {
            "dashboard-1"
        };
        let (code, out) = publish(
            &attacker,
            &[
                "-i",
                id,
                "-q",
                "1",
                "-t",
                "bms/other-site/gw-9/x",
                "-m",
                "x",
            ],
        );
        assert_eq!(code, Some(0), "{out}");
        std::thread::sleep(Duration::from_millis(500));
    }
    std::thread::sleep(Duration::from_secs(2));
    let flips = status.output();
    let gw_log = gw.output();
    let dash_log = dash.output();
    eprintln!(
        "after 10 takeover attempts: {} offline status, gateway connections {}, dashboard connections {}",
        count(&flips, "\"state\":\"offline\""),
        count(&gw_log, "connected to the MQTT broker"),
        count(&dash_log, "connected to the broker")
    );
    assert_eq!(count(&flips, "\"state\":\"offline\""), 0, "{flips}");
    assert_eq!(
        count(&gw_log, "connected to the MQTT broker"),
        1,
        "{gw_log}"
    );
    assert_eq!(count(&dash_log, "connected to the broker"), 1, "{dash_log}");
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn the_dashboard_login_cannot_forge_a_reply_and_a_retained_command_never_reaches_the_gateway() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let b = shipped_broker(
        d,
        &[
            &["gateway", "demo-sales-centre", "gw-1", "gw1-pass"],
            &["dashboard", "dashboard-1", "dash1-pass"],
            &["dashboard", "dashboard-2", "dash2-pass"],
        ],
    );
    let watcher = conn(b.port, Some((&b.ca, "dashboard-2", "dash2-pass")));
    let mut replies = sub(&watcher, &[], "bms/demo-sales-centre/gw-1/cmd/#");
    let dash = conn(b.port, Some((&b.ca, "dashboard-1", "dash1-pass")));
    // A retained command, stored before the gateway connects (Mosquitto's
    // ACL cannot refuse the retain flag).
    let (code, out) = publish(
        &dash,
        &[
            "-r",
            "-q",
            "1",
            "-t",
            "bms/demo-sales-centre/gw-1/cmd/ack",
            "-m",
            &unsigned("retained-0001"),
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    let (_sim, mut gw) = gateway(
        d,
        &format!(
            "url = \"mqtts://localhost:{}\"\nca_file = {:?}\nusername = \"demo-sales-centre.gw-1\"\npassword = {{ env = \"BMS_MQTT_PASSWORD\" }}",
            b.port,
            b.ca.display().to_string()
        ),
        Some("gw1-pass"),
    );
    // The gateway does not get the retained command: no reply to it.
    std::thread::sleep(Duration::from_secs(3));
    let before = replies.output();
    assert_eq!(count(&before, "/cmd/reply "), 0, "{before}");
    // A forged reply from the dashboard login is dropped by the broker.
    let (code, out) = publish(
        &dash,
        &[
            "-q",
            "1",
            "-t",
            "bms/demo-sales-centre/gw-1/cmd/reply",
            "-m",
            r#"{"id":"forged-1","ok":true,"op":"ack","result":"FORGED","seq":1,"ts":1}"#,
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    // A live (unsigned) command is answered: the gateway listens.
    let (code, out) = publish(
        &dash,
        &[
            "-q",
            "1",
            "-t",
            "bms/demo-sales-centre/gw-1/cmd/ack",
            "-m",
            &unsigned("live-0001"),
        ],
    );
    assert_eq!(code, Some(0), "{out}");
    replies
        .wait_for("/cmd/reply {", Duration::from_secs(15))
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let seen = replies.output();
    assert!(
        !seen.contains("FORGED"),
        "a forged reply was delivered:\n{seen}"
    );
    assert_eq!(count(&seen, "/cmd/reply "), 1, "{seen}");
    assert!(
        !seen
            .lines()
            .any(|l| l.contains("/cmd/reply ") && l.contains("retained-0001")),
        "the gateway answered the retained command:\n{seen}"
    );
    let log = gw.output();
    assert!(!log.contains("retained-0001"), "{log}");
}

/// An unsigned ticket command with this id (the gateway answers it with a
/// refusal: proof that it received it).
fn unsigned(id: &str) -> String {
    let body = format!(
        r#"{{"op":"ack","id":"{id}","ts":1,"by":"mallory","ticket":1,"note":"","site":"demo-sales-centre","gateway":"gw-1"}}"#
    );
    serde_json::json!({ "body": body }).to_string()
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it)"]
fn the_shipped_dashboard_config_reads_a_gateway_over_mqtts_with_the_made_ca() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let b = shipped_broker(
        d,
        &[
            &["gateway", "demo-sales-centre", "gw-1", "gw1-pass"],
            &["dashboard", "dashboard-1", "dash1-pass"],
        ],
    );
    let (_sim, _gw) = gateway(
        d,
        &format!(
            "url = \"mqtts://localhost:{}\"\nca_file = {:?}\nusername = \"demo-sales-centre.gw-1\"\npassword = {{ env = \"BMS_MQTT_PASSWORD\" }}",
            b.port,
            b.ca.display().to_string()
        ),
        Some("gw1-pass"),
    );
    // deploy/central/dashboard.toml with the broker's host and port, the
    // data folder and the listen address moved; ca.pem beside it, as the
    // compose file mounts it.
    let dash_dir = d.join("dashboard");
    std::fs::create_dir_all(&dash_dir).unwrap();
    std::fs::copy(&b.ca, dash_dir.join("ca.pem")).unwrap();
    let listen = format!("127.0.0.1:{}", free_port());
    let mut text =
        std::fs::read_to_string(workspace_root().join("deploy/central/dashboard.toml")).unwrap();
    for (from, to) in [
        (
            "url = \"mqtts://mosquitto:8883\"".to_owned(),
            format!("url = \"mqtts://localhost:{}\"", b.port),
        ),
        (
            "data_dir = \"/var/lib/bms\"".to_owned(),
            format!(
                "data_dir = {:?}",
                dash_dir.join("data").display().to_string()
            ),
        ),
        (
            "listen = \"0.0.0.0:8080\"".to_owned(),
            format!("listen = \"{listen}\""),
        ),
    ] {
        assert!(
            text.contains(&from),
            "{from} not in deploy/central/dashboard.toml"
        );
        text = text.replace(&from, &to);
    }
    assert!(text.contains("ca_file = \"ca.pem\""), "{text}");
    assert!(text.contains("secure_cookie = true"), "{text}");
    let cfg = dash_dir.join("dashboard.toml");
    std::fs::write(&cfg, text).unwrap();
    let _dash = start_dashboard(
        &cfg,
        &[
            ("BMS_KIOSK_TOKEN", KIOSK),
            ("BMS_MQTT_PASSWORD", "dash1-pass"),
            ("RUST_LOG", "info"),
        ],
    )
    .unwrap();
    connected(&listen);
    until(
        "the gateway's devices in /api/snapshot",
        Duration::from_secs(30),
        || {
            let s = snapshot(&listen);
            (s.contains("demo-sales-centre") && s.contains("pump-1")).then_some(())
        },
    );
    // Without the CA the broker's certificate is not trusted.
    let (code, out, err) = run_with_timeout(
        Command::new("mosquitto_sub").args([
            "-h",
            "localhost",
            "-p",
            &b.port.to_string(),
            "--capath",
            "/nonexistent",
            "-u",
            "dashboard-1",
            "-P",
            "dash1-pass",
            "-W",
            "2",
            "-t",
            "bms/#",
        ]),
        Duration::from_secs(10),
    )
    .unwrap();
    assert_ne!(code, Some(0), "{out}{err}");
}

#[test]
#[ignore = "needs docker-compose (.ci/run installs it)"]
fn the_compose_stack_publishes_only_https_and_mqtt_over_tls() {
    require_tool("docker-compose", "apt-get install docker-compose").unwrap();
    let central = workspace_root().join("deploy/central");
    let (code, out, err) = run_with_timeout(
        Command::new("docker-compose")
            .arg("--env-file")
            .arg(central.join("env.example"))
            .arg("-f")
            .arg(central.join("compose.yaml"))
            .arg("config"),
        Duration::from_secs(60),
    )
    .unwrap();
    assert_eq!(code, Some(0), "{out}\n{err}");
    let published: Vec<&str> = out
        .lines()
        .filter_map(|l| {
            l.trim()
                .trim_start_matches("- ")
                .strip_prefix("published: ")
        })
        .map(|p| p.trim_matches('"'))
        .collect();
    assert_eq!(published, ["443", "8883"], "{out}");
    assert!(out.contains("image: caddy:2"), "{out}");
    // The CA key is mounted in no container.
    assert!(!out.contains("ca.key"), "{out}");
    // The script the compose file names exists and runs.
    let text = std::fs::read_to_string(central.join("compose.yaml")).unwrap();
    assert!(text.contains("./make-certs.sh"), "{text}");
    assert!(central.join("make-certs.sh").is_file());
    let dash = std::fs::read_to_string(central.join("dashboard.toml")).unwrap();
    for line in [
        "url = \"mqtts://mosquitto:8883\"",
        "ca_file = \"ca.pem\"",
        "secure_cookie = true",
        "kiosk_token = { env = \"BMS_KIOSK_TOKEN\" }",
    ] {
        assert!(dash.lines().any(|l| l.trim() == line), "{line} missing");
    }
}
