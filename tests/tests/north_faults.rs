//! The north side when its peers misbehave, with real processes: the
//! broker comes back after a long outage, the time-series store refuses a
//! batch, and a real Prometheus scrapes `/metrics`. `#[ignore]`d: they need
//! Mosquitto, VictoriaMetrics and Prometheus (`.ci/run` installs them).

#![allow(clippy::unwrap_used)] // test code: a panic is the failure report

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use bms_e2e::{
    Proc, bin, demo_config, demo_env, free_port, http, require_tool, run_with_timeout, start_sim,
};
use serde_json::Value;

/// A Mosquitto of our own that can be stopped and started again on the
/// same port.
struct Broker {
    port: u16,
    conf: PathBuf,
    proc: Option<Proc>,
}

impl Broker {
    fn start(dir: &Path) -> Broker {
        require_tool("mosquitto", "apt-get install mosquitto").unwrap();
        let port = free_port();
        let conf = dir.join(format!("mosquitto-{port}.conf"));
        // `user root`: when the tests run as root, Mosquitto would
        // otherwise drop to its own user, who cannot read our temp dir.
        std::fs::write(
            &conf,
            format!(
                "listener {port} 127.0.0.1\nuser root\nallow_anonymous true\npersistence false\nlog_type error\n"
            ),
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

    /// Starts Mosquitto; returns once it accepts connections.
    fn restart(&mut self) {
        let proc = Proc::spawn(
            "mosquitto",
            Command::new("mosquitto").arg("-c").arg(&self.conf),
        )
        .unwrap();
        self.proc = Some(proc);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            if Instant::now() >= deadline {
                let out = self.proc.as_mut().map(Proc::output).unwrap_or_default();
                panic!("mosquitto did not listen on {}: {out}", self.port);
            }
            std::thread::sleep(Duration::from_millis(20));
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

fn env_value<'a>(env: &'a [(String, String)], key: &str) -> &'a str {
    env.iter()
        .find(|(k, _)| k == key)
        .map(|(_, v)| v.as_str())
        .unwrap()
}

/// One sample of `/metrics` (the first line starting with `prefix`).
fn metric(admin: &str, prefix: &str) -> Option<f64> {
    let (code, body) = http("GET", admin, "/metrics", "").ok()?;
    if code != 200 {
        return None;
    }
    body.lines()
        .find(|l| l.starts_with(prefix))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// How long the broker stays away at least: 80 s by default (the backoff
/// reaches its 60 s ceiling after 63 s of failures, so every longer outage
/// leaves the gateway in the same state); `BMS_E2E_OUTAGE_SECS=180`
/// measures the three-minute figure. The broker then comes back just after
/// the next full attempt failed.
fn outage() -> Duration {
    Duration::from_secs(
        std::env::var("BMS_E2E_OUTAGE_SECS")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(80),
    )
}

#[test]
#[ignore = "needs mosquitto (.ci/run installs it); takes two to three minutes"]
fn the_gateway_is_back_within_five_seconds_of_the_broker_after_a_long_outage() {
    require_tool("mosquitto_sub", "apt-get install mosquitto-clients").unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (env, _) = demo_env(dir.path());
    let admin = env_value(&env, "BMS_ADMIN_LISTEN").to_owned();
    let mut broker = Broker::start(dir.path());
    let cfg = demo_config(dir.path(), "").unwrap();
    let _sim = start_sim(&cfg, &env).unwrap();
    let mut gw = Proc::spawn(
        "gateway run",
        Command::new(bin("gateway"))
            .args(["run", "--mqtt-url", &broker.url(), "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .envs(env.iter().cloned()),
    )
    .unwrap();
    gw.wait_for("connected to the MQTT broker", Duration::from_secs(20))
        .unwrap();

    broker.stop();
    gw.wait_for("lost the MQTT connection", Duration::from_secs(10))
        .unwrap();
    let errors_before = metric(&admin, "bms_mqtt_errors_total").unwrap();
    let outage = outage();
    std::thread::sleep(outage);
    // Full MQTT attempts while the broker was away: the backoff still
    // spaces them out (1, 2, 4 … 60 s); only cheap TCP probes go between.
    let attempts = metric(&admin, "bms_mqtt_errors_total").unwrap() - errors_before;
    let ceiling = 1.0 + (outage.as_secs_f64() / 60.0).ceil() + 7.0;
    assert!(
        attempts <= ceiling,
        "{attempts} full connection attempts during a {outage:?} outage (at most {ceiling} expected)"
    );

    // The worst moment for a backoff: just after a full attempt failed.
    // Without probes the next attempt is a whole backoff away (up to 60 s
    // ±15 %); the broker must be found within 5 s all the same.
    let seen = metric(&admin, "bms_mqtt_errors_total").unwrap();
    bms_e2e::until("a full connection attempt", Duration::from_secs(90), || {
        (metric(&admin, "bms_mqtt_errors_total").unwrap() > seen).then_some(())
    });
    broker.restart();
    let back = Instant::now();
    gw.wait_for("connected to the MQTT broker", Duration::from_secs(90))
        .unwrap();
    let delay = back.elapsed();
    eprintln!(
        "reconnected {:.2} s after the broker's return from a {} s outage ({attempts} full attempts during it)",
        delay.as_secs_f64(),
        outage.as_secs()
    );
    // The session is back: the retained `status` of this connection says
    // online.
    let (code, out, err) = run_with_timeout(
        Command::new("mosquitto_sub").args([
            "-h",
            "127.0.0.1",
            "-p",
            &broker.port.to_string(),
            "-t",
            "bms/demo-sales-centre/gw-1/status",
            "-C",
            "1",
            "-W",
            "10",
        ]),
        Duration::from_secs(15),
    )
    .unwrap();
    assert_eq!(code, Some(0), "{err}");
    let status: Value = serde_json::from_str(out.trim()).unwrap();
    assert_eq!(status["state"], "online", "{status}");
    assert!(
        delay < Duration::from_secs(5),
        "the gateway reconnected {delay:?} after the broker came back (at most 5 s)"
    );
    assert_eq!(gw.interrupt(Duration::from_secs(10)).unwrap(), Some(0));
}

/// Reads one HTTP/1.1 request (head and `Content-Length` body).
fn read_request(s: &mut TcpStream) -> Option<(String, String)> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 8192];
    let head_end = loop {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
        if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break i + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..head_end]).into_owned();
    let len: usize = head
        .lines()
        .find_map(|l| {
            let (k, v) = l.split_once(':')?;
            k.eq_ignore_ascii_case("content-length")
                .then(|| v.trim().parse().ok())
                .flatten()
        })
        .unwrap_or(0);
    while buf.len() < head_end + len {
        let n = s.read(&mut chunk).ok()?;
        if n == 0 {
            return None;
        }
        buf.extend_from_slice(&chunk[..n]);
    }
    let body = String::from_utf8_lossy(&buf[head_end..head_end + len]).into_owned();
    Some((head, body))
}

/// What the refusing proxy saw.
#[derive(Default)]
struct ProxyLog {
    /// The lines of the refused batch.
    refused: Vec<String>,
    /// Requests refused (the first batch and any that carries one of its lines).
    refusals: usize,
    /// Requests forwarded after the refusal, and how many were accepted.
    forwarded_after: usize,
    accepted_after: usize,
    /// The highest timestamp of the lines accepted after the refusal.
    last_ts_after: i64,
}

/// A store in front of VictoriaMetrics that refuses, with a 400 like
/// InfluxDB's field type conflict, the third batch it is sent and any later
/// one with a line of it (a store refuses the same lines again), and
/// forwards everything else to `vm`.
fn refusing_proxy(vm: String) -> (String, Arc<Mutex<ProxyLog>>) {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap().to_string();
    let log = Arc::new(Mutex::new(ProxyLog::default()));
    let seen = Arc::new(AtomicUsize::new(0));
    let l = Arc::clone(&log);
    std::thread::spawn(move || {
        for conn in listener.incoming() {
            let Ok(mut s) = conn else { continue };
            let Some((head, body)) = read_request(&mut s) else {
                continue;
            };
            let lines: Vec<String> = body.lines().map(str::to_owned).collect();
            let n = seen.fetch_add(1, Ordering::SeqCst);
            let refuse = {
                let mut g = l.lock().unwrap();
                if n == 2 {
                    g.refused = lines.clone();
                }
                let refuse = n == 2 || lines.iter().any(|x| g.refused.contains(x));
                if refuse {
                    g.refusals += 1;
                }
                refuse
            };
            let answer = if refuse {
                let text = r#"{"code":"invalid","message":"partial write: field type conflict: input field \"outlet_pressure\" on measurement \"pump\" is type integer, already exists as type float dropped=1"}"#;
                format!(
                    "HTTP/1.1 400 Bad Request\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{text}",
                    text.len()
                )
            } else {
                let path = head
                    .lines()
                    .next()
                    .and_then(|l| l.split_whitespace().nth(1))
                    .unwrap_or("/api/v2/write")
                    .to_owned();
                let status = http("POST", &vm, &path, &body).map(|r| r.0).unwrap_or(502);
                let mut g = l.lock().unwrap();
                if !g.refused.is_empty() {
                    g.forwarded_after += 1;
                    if (200..300).contains(&status) {
                        g.accepted_after += 1;
                        for x in &lines {
                            if let Some(ts) = x.rsplit(' ').next().and_then(|t| t.parse().ok()) {
                                g.last_ts_after = g.last_ts_after.max(ts);
                            }
                        }
                    }
                }
                format!("HTTP/1.1 {status} X\r\nContent-Length: 0\r\nConnection: close\r\n\r\n")
            };
            let _ = s.write_all(answer.as_bytes());
        }
    });
    (addr, log)
}

fn start_vm(dir: &Path) -> (Proc, String) {
    require_tool("victoria-metrics", "apt-get install victoria-metrics").unwrap();
    let vm_addr = format!("127.0.0.1:{}", free_port());
    let vm = Proc::spawn(
        "victoria-metrics",
        Command::new("victoria-metrics")
            .arg(format!("-httpListenAddr={vm_addr}"))
            .arg(format!("-storageDataPath={}", dir.join("vm").display()))
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
    (vm, vm_addr)
}

#[test]
#[ignore = "needs victoria-metrics (.ci/run installs it)"]
fn a_refused_batch_is_set_aside_and_everything_after_it_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let (env, _) = demo_env(dir.path());
    let admin = env_value(&env, "BMS_ADMIN_LISTEN").to_owned();
    let (_vm, vm_addr) = start_vm(dir.path());
    let (proxy, log) = refusing_proxy(vm_addr.clone());
    let cfg = demo_config(
        dir.path(),
        &format!(
            "[influx]\nurl = \"http://{proxy}\"\norg = \"o\"\nbucket = \"b\"\nflush_every = \"200ms\"\n"
        ),
    )
    .unwrap();
    let _sim = start_sim(&cfg, &env).unwrap();
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
    // Writing goes on after the refusal: ten more batches accepted.
    bms_e2e::until(
        "ten batches accepted after the refused one",
        Duration::from_secs(40),
        || (log.lock().unwrap().accepted_after >= 10).then_some(()),
    );
    let (refused, refusals, last_ts) = {
        let g = log.lock().unwrap();
        (g.refused.clone(), g.refusals, g.last_ts_after)
    };
    assert!(!refused.is_empty());
    assert_eq!(refusals, 1, "the refused batch was sent again");
    // Counted, and logged once with the store's reason.
    let counted = metric(&admin, "bms_influx_refused_lines_total").unwrap();
    assert_eq!(counted as usize, refused.len());
    let out = gw.output();
    assert_eq!(out.matches("InfluxDB refused lines").count(), 1, "{out}");
    assert!(out.contains("field type conflict"), "{out}");
    // The lines after the refused batch are in the store.
    get_vm(&vm_addr, "/internal/force_flush");
    let body = get_vm(
        &vm_addr,
        "/api/v1/export?match%5B%5D=%7B__name__%3D~%22pump_.%2A%22%7D",
    );
    let stored_last = body
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .flat_map(|v| {
            v["timestamps"]
                .as_array()
                .cloned()
                .unwrap_or_default()
                .into_iter()
                .filter_map(|t| t.as_i64())
        })
        .max()
        .unwrap_or(0);
    let refused_last = refused
        .iter()
        .filter_map(|x| x.rsplit(' ').next().and_then(|t| t.parse::<i64>().ok()))
        .max()
        .unwrap();
    assert!(
        stored_last > refused_last && stored_last <= last_ts,
        "stored up to {stored_last}, refused batch up to {refused_last}"
    );
    assert_eq!(gw.interrupt(Duration::from_secs(10)).unwrap(), Some(0));
    // The refused lines are kept and shown by `gateway dead-letters`.
    let (code, shown, err) = run_with_timeout(
        Command::new(bin("gateway"))
            .args(["dead-letters", "--config"])
            .arg(&cfg)
            .envs(env.iter().cloned()),
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(code, Some(0), "{err}");
    let shown: Vec<&str> = shown.lines().collect();
    assert_eq!(
        shown,
        refused.iter().map(String::as_str).collect::<Vec<_>>()
    );
    assert!(err.contains("400"), "{err}");
    eprintln!(
        "{} lines refused once and set aside; {} batches written after them",
        refused.len(),
        log.lock().unwrap().accepted_after
    );
}

fn get_vm(addr: &str, path: &str) -> String {
    let (code, body) = http("GET", addr, path, "").unwrap();
    assert_eq!(code, 200, "{body}");
    body
}

/// Every line of a text exposition in its family's group: `# HELP name`,
/// `# TYPE name`, then only samples of `name` (`name_sum`, `name_count`…
/// for summaries) until the next family; no family twice. The problems
/// found, empty when the text is well grouped.
fn grouping_problems(text: &str) -> Vec<String> {
    let mut problems = Vec::new();
    let mut current: Option<String> = None;
    let mut seen = std::collections::BTreeSet::new();
    let mut announced: Option<String> = None;
    for (n, line) in text.lines().enumerate() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap_or("").to_owned();
            if !seen.insert(name.clone()) {
                problems.push(format!("line {}: family {name} again", n + 1));
            }
            announced = Some(name);
            current = None;
        } else if let Some(rest) = line.strip_prefix("# TYPE ") {
            let name = rest.split(' ').next().unwrap_or("").to_owned();
            if announced.as_deref() != Some(name.as_str()) {
                problems.push(format!(
                    "line {}: TYPE {name} without its HELP just before",
                    n + 1
                ));
            }
            current = Some(name);
        } else if !line.is_empty() && !line.starts_with('#') {
            let name = line.split(['{', ' ']).next().unwrap_or("");
            let ok = current.as_deref().is_some_and(|c| {
                name == c
                    || [("_sum"), ("_count"), ("_bucket")]
                        .iter()
                        .any(|s| name == format!("{c}{s}"))
            });
            if !ok {
                problems.push(format!(
                    "line {}: sample {name} under family {:?}",
                    n + 1,
                    current
                ));
            }
        }
    }
    problems
}

/// A Prometheus of our own scraping `target` every second.
fn start_prometheus(dir: &Path, target: &str) -> (Proc, String) {
    require_tool("prometheus", "apt-get install prometheus").unwrap();
    require_tool("curl", "apt-get install curl").unwrap();
    let addr = format!("127.0.0.1:{}", free_port());
    let conf = dir.join("prometheus.yml");
    std::fs::write(
        &conf,
        format!(
            "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: gateway\n    static_configs:\n      - targets: ['{target}']\n"
        ),
    )
    .unwrap();
    let p = Proc::spawn(
        "prometheus",
        Command::new("prometheus")
            .arg(format!("--config.file={}", conf.display()))
            .arg(format!(
                "--storage.tsdb.path={}",
                dir.join("tsdb").display()
            ))
            .arg(format!("--web.listen-address={addr}")),
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    while http("GET", &addr, "/-/ready", "").map(|r| r.0).unwrap_or(0) != 200 {
        assert!(Instant::now() < deadline, "prometheus did not start");
        std::thread::sleep(Duration::from_millis(200));
    }
    (p, addr)
}

/// `GET` with curl (Prometheus answers in chunks, which [`http`] does not
/// decode); the body as JSON.
fn prom_get(addr: &str, path: &str) -> Option<Value> {
    let (code, out, _) = run_with_timeout(
        Command::new("curl").args(["-sf", &format!("http://{addr}{path}")]),
        Duration::from_secs(10),
    )
    .ok()?;
    if code != Some(0) {
        return None;
    }
    serde_json::from_str(&out).ok()
}

/// The value of an instant query's first result, if any.
fn prom_query(addr: &str, query: &str) -> Option<f64> {
    let v = prom_get(addr, &format!("/api/v1/query?query={query}"))?;
    v["data"]["result"][0]["value"][1].as_str()?.parse().ok()
}

#[test]
#[ignore = "needs prometheus (.ci/run installs it)"]
fn metrics_are_grouped_per_family_and_scraped_by_a_real_prometheus() {
    let dir = tempfile::tempdir().unwrap();
    let (env, _) = demo_env(dir.path());
    let admin = env_value(&env, "BMS_ADMIN_LISTEN").to_owned();
    let (_vm, vm_addr) = start_vm(dir.path());
    let mut broker = Broker::start(dir.path());
    // Every part that reports metrics: buses, MQTT, both outboxes.
    let cfg = demo_config(
        dir.path(),
        &format!(
            "[influx]\nurl = \"http://{vm_addr}\"\norg = \"o\"\nbucket = \"b\"\nflush_every = \"200ms\"\n"
        ),
    )
    .unwrap();
    let _sim = start_sim(&cfg, &env).unwrap();
    let mut gw = Proc::spawn(
        "gateway run",
        Command::new(bin("gateway"))
            .args(["run", "--mqtt-url", &broker.url(), "--config"])
            .arg(&cfg)
            .env("RUST_LOG", "info")
            .envs(env.iter().cloned()),
    )
    .unwrap();
    gw.wait_for("connected to the MQTT broker", Duration::from_secs(20))
        .unwrap();
    std::thread::sleep(Duration::from_secs(2));
    let (code, text) = http("GET", &admin, "/metrics", "").unwrap();
    assert_eq!(code, 200);
    let problems = grouping_problems(&text);
    assert!(
        problems.is_empty(),
        "/metrics is not grouped per family:\n{}\n\n{text}",
        problems.join("\n")
    );
    // promtool, when installed with Prometheus, lints the exposition.
    if let Ok((Some(c), out, err)) = run_with_timeout(
        Command::new("sh").arg("-c").arg(format!(
            "command -v promtool >/dev/null || exit 99; curl -s http://{admin}/metrics | promtool check metrics"
        )),
        Duration::from_secs(20),
    ) {
        if c == 99 {
            eprintln!("promtool not installed: lint skipped");
        } else {
            assert_eq!(c, 0, "promtool check metrics: {out}{err}");
        }
    }
    let (_prom, prom) = start_prometheus(dir.path(), &admin);
    bms_e2e::until(
        "Prometheus to scrape the gateway",
        Duration::from_secs(30),
        || (prom_query(&prom, "up") == Some(1.0)).then_some(()),
    );
    let polls = bms_e2e::until(
        "a gateway metric in Prometheus",
        Duration::from_secs(30),
        || prom_query(&prom, "sum(bms_polls_total)"),
    );
    assert!(polls > 0.0);
    let connected = prom_query(&prom, "bms_mqtt_connected").unwrap();
    assert_eq!(connected, 1.0);
    // The target's metadata: each family with its declared type.
    let meta = prom_get(
        &prom,
        "/api/v1/targets/metadata?match_target=%7Bjob%3D%22gateway%22%7D",
    )
    .unwrap();
    let type_of = |name: &str| {
        meta["data"]
            .as_array()
            .unwrap()
            .iter()
            .find(|m| m["metric"] == name)
            .map(|m| m["type"].as_str().unwrap_or("").to_owned())
    };
    assert_eq!(type_of("bms_polls_total").as_deref(), Some("counter"));
    assert_eq!(type_of("bms_outbox_records").as_deref(), Some("gauge"));
    assert_eq!(
        type_of("bms_mqtt_publish_ack_seconds").as_deref(),
        Some("summary")
    );
    eprintln!("Prometheus scraped the gateway: up = 1, sum(bms_polls_total) = {polls}");
    assert_eq!(gw.interrupt(Duration::from_secs(10)).unwrap(), Some(0));
    broker.stop();
}
