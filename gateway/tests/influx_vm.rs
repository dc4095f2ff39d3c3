//! The InfluxDB writer against real servers.
//!
//! - Debian's VictoriaMetrics (`apt-get install victoria-metrics`), which
//!   accepts InfluxDB line protocol on `/api/v2/write`: lines written through
//!   [`InfluxWriter`] are read back with `/api/v1/export` and checked exactly
//!   (values, labels, millisecond timestamps); a 401 (HTTP auth on) is
//!   `Reject` and a 400 (a line over `-influx.maxLineSize`) is `Refused`. These tests are
//!   ignored by default; `.ci/run` installs the server.
//! - A closed port is `Retry`; statuses VictoriaMetrics cannot be made to
//!   send (429, 503, 404, 200, …) come from a small in-test HTTP responder.
//!
//! Every server listens on a free port of 127.0.0.1 and is waited for
//! (`GET /health`), never slept for; VictoriaMetrics is killed when its
//! test ends, however it ends.

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener as StdListener};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway::influx::{InfluxWriter, WriteError, line};
use gateway_core::HumanDuration;
use gateway_core::config::load::load;
use gateway_core::config::{InfluxConfig, Resolved, Secret};
use gateway_core::model::{BadReason, PollClass, PollOutcome, Quality, Sample, Value};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::Instant;

const VM: &str = "/usr/bin/victoria-metrics";

const CONFIG: &str = r#"
site = "hq"
gateway = "gw-1"

[[bus]]
id = "line-1"
kind = "rtu"
port = "/dev/null"

[[device]]
id = "pump-1"
name_zh = "1号泵"
class = "pump"
bus = "line-1"
unit = 1
profile = "drive"

[[device]]
id = "pump-2"
name_zh = "2号泵"
class = "pump"
bus = "line-1"
unit = 2
profile = "drive"

[[device]]
id = "fan-1"
name_zh = "风机盘管"
class = "hvac"
bus = "line-1"
unit = 3
profile = "drive"
"#;

const PROFILE: &str = r#"
description = "a drive: a float, an integer and a flag"

[[point]]
name = "pressure"
area = "holding"
address = 0
type = "f32"

[[point]]
name = "run_hours"
area = "holding"
address = 2
type = "u32"

[[point]]
name = "running"
area = "coil"
address = 0
type = "bool"
"#;

fn resolved() -> Resolved {
    let mut profiles = BTreeMap::new();
    profiles.insert(
        "drive".to_owned(),
        ("drive.toml".to_owned(), PROFILE.to_owned()),
    );
    load("test.toml", CONFIG, &profiles, &|_| None).expect("valid config")
}

fn influx(url: String) -> InfluxConfig {
    InfluxConfig {
        enabled: true,
        url,
        org: "bms".to_owned(),
        bucket: "telemetry".to_owned(),
        token: Default::default(),
        batch: 5000,
        flush_every: HumanDuration::from_secs(1),
    }
}

fn writer(addr: SocketAddr) -> InfluxWriter {
    InfluxWriter::new(
        &influx(format!("http://{addr}")),
        Some(Secret::new("test-token")),
    )
    .expect("writer")
    .with_timeout(Duration::from_secs(10))
}

fn outcome(device: usize, ts_ms: i64, samples: Vec<Sample>) -> PollOutcome {
    PollOutcome {
        device,
        ts_ms,
        class: PollClass::Full,
        samples,
        failure: None,
        requests: 2,
        failed_requests: 0,
        elapsed_us: 1500,
    }
}

fn good(point: usize, value: Value) -> Sample {
    Sample {
        point,
        value: Some(value),
        quality: Quality::Good,
    }
}

fn now_ms() -> i64 {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("clock after 1970");
    i64::try_from(d.as_millis()).expect("ms fit i64")
}

fn free_port() -> u16 {
    StdListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .expect("bind 127.0.0.1:0")
        .port()
}

/// A VictoriaMetrics of our own, killed on drop.
struct Vm {
    child: Child,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Vm {
    /// Starts it on a free port with `extra` flags and waits for `/health`.
    async fn start(extra: &[&str]) -> Vm {
        assert!(
            Path::new(VM).exists(),
            "{VM} is missing: apt-get install victoria-metrics (Debian), or run .ci/run"
        );
        // A free port can be taken by someone else before the server binds
        // it: then the server exits and another port is tried.
        for _ in 0..3 {
            let dir = tempfile::tempdir().expect("temp dir");
            let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
                .parse()
                .expect("address");
            let log = std::fs::File::create(dir.path().join("vm.log")).expect("log file");
            let child = Command::new(VM)
                .arg(format!("-httpListenAddr={addr}"))
                .arg(format!(
                    "-storageDataPath={}",
                    dir.path().join("data").display()
                ))
                .arg("-search.latencyOffset=0s")
                .args(extra)
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(log)
                .spawn()
                .expect("start victoria-metrics");
            let mut vm = Vm { child, addr, dir };
            if vm.wait_ready().await {
                return vm;
            }
        }
        panic!("victoria-metrics did not start on three free ports");
    }

    /// True once `/health` answers 200; false when the process exited.
    async fn wait_ready(&mut self) -> bool {
        let deadline = Instant::now() + Duration::from_secs(30);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                eprintln!("victoria-metrics exited ({status}):\n{}", self.log());
                return false;
            }
            if let Ok((200, _)) = http_get(self.addr, "/health").await {
                return true;
            }
            assert!(
                Instant::now() < deadline,
                "victoria-metrics not ready after 30 s:\n{}",
                self.log()
            );
            // Polling interval of the readiness check.
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("vm.log")).unwrap_or_default()
    }

    /// `/api/v1/export` of every `pump_*` series, keyed by (name, device).
    async fn export_pumps(&self) -> BTreeMap<(String, String), Series> {
        // match[]={__name__=~"pump_.*"}, percent-encoded.
        let path = "/api/v1/export?match%5B%5D=%7B__name__%3D~%22pump_.%2A%22%7D";
        let (status, body) = http_get(self.addr, path).await.expect("export");
        assert_eq!(status, 200, "export: {body}");
        let mut out = BTreeMap::new();
        for l in body.lines().filter(|l| !l.trim().is_empty()) {
            let v: serde_json::Value = serde_json::from_str(l).expect("export line is JSON");
            let labels: BTreeMap<String, String> = v["metric"]
                .as_object()
                .expect("metric")
                .iter()
                .map(|(k, v)| (k.clone(), v.as_str().expect("label").to_owned()))
                .collect();
            let values = v["values"]
                .as_array()
                .expect("values")
                .iter()
                .map(|x| x.as_f64().expect("number"))
                .collect();
            let timestamps = v["timestamps"]
                .as_array()
                .expect("timestamps")
                .iter()
                .map(|x| x.as_i64().expect("integer"))
                .collect();
            let key = (labels["__name__"].clone(), labels["device"].clone());
            out.insert(
                key,
                Series {
                    labels,
                    values,
                    timestamps,
                },
            );
        }
        out
    }
}

impl Drop for Vm {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

#[derive(Debug)]
struct Series {
    labels: BTreeMap<String, String>,
    values: Vec<f64>,
    timestamps: Vec<i64>,
}

/// A plain HTTP/1.0 GET (so that the answer is not chunked): status and body.
async fn http_get(addr: SocketAddr, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect(addr).await?;
    s.write_all(format!("GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").as_bytes())
        .await?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).await?;
    let text = String::from_utf8_lossy(&raw);
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((status, body.to_owned()))
}

#[tokio::test]
#[ignore = "needs victoria-metrics (.ci/run installs it)"]
async fn victoria_metrics_reads_back_values_tags_and_timestamps_exactly() {
    let vm = Vm::start(&[]).await;
    let cfg = resolved();
    // Recent times: VictoriaMetrics drops samples outside its retention.
    let t0 = now_ms() - 60_000;
    let outcomes = [
        outcome(
            0,
            t0,
            vec![
                good(0, Value::Float(3.25)),
                good(1, Value::UInt(123_456_789)),
                good(2, Value::Bool(true)),
            ],
        ),
        outcome(
            1,
            t0 + 7,
            vec![
                // Out of range: not written.
                Sample {
                    point: 0,
                    value: Some(Value::Float(99.0)),
                    quality: Quality::Bad(BadReason::OutOfRange),
                },
                good(1, Value::UInt(0)),
                good(2, Value::Bool(false)),
            ],
        ),
        outcome(
            0,
            t0 + 1001,
            vec![good(0, Value::Float(-0.125)), good(2, Value::Bool(false))],
        ),
        // Another class: measurement hvac, not matched by pump_.*.
        outcome(2, t0, vec![good(0, Value::Float(21.5))]),
        // Nothing good: no line at all.
        outcome(
            1,
            t0 + 2000,
            vec![Sample {
                point: 0,
                value: None,
                quality: Quality::Bad(BadReason::NotRead),
            }],
        ),
    ];
    let lines: Vec<String> = outcomes.iter().filter_map(|o| line(&cfg, o)).collect();
    assert_eq!(lines.len(), 4, "{lines:#?}");
    writer(vm.addr)
        .write(&lines.join("\n"))
        .await
        .expect("VictoriaMetrics accepts the batch");

    // (metric, device) → (values, timestamps).
    let want = [
        (
            ("pump_pressure", "pump-1"),
            (vec![3.25, -0.125], vec![t0, t0 + 1001]),
        ),
        (
            ("pump_run_hours", "pump-1"),
            (vec![123_456_789.0], vec![t0]),
        ),
        (
            ("pump_running", "pump-1"),
            (vec![1.0, 0.0], vec![t0, t0 + 1001]),
        ),
        (("pump_run_hours", "pump-2"), (vec![0.0], vec![t0 + 7])),
        (("pump_running", "pump-2"), (vec![0.0], vec![t0 + 7])),
    ];

    // Ingestion is asynchronous: make the buffered samples searchable, and
    // wait until every series is visible.
    let deadline = Instant::now() + Duration::from_secs(20);
    let got = loop {
        let (status, body) = http_get(vm.addr, "/internal/force_flush")
            .await
            .expect("force_flush");
        assert_eq!(status, 200, "force_flush: {body}");
        let got = vm.export_pumps().await;
        let complete = got.len() >= want.len()
            && want.iter().all(|((name, dev), (values, _))| {
                got.get(&(name.to_string(), dev.to_string()))
                    .is_some_and(|s| s.values.len() >= values.len())
            });
        if complete {
            break got;
        }
        assert!(
            Instant::now() < deadline,
            "not all series arrived: {got:#?}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    };

    assert_eq!(got.len(), want.len(), "{got:#?}");
    for ((name, device), (values, timestamps)) in &want {
        let s = &got[&(name.to_string(), device.to_string())];
        assert_eq!(&s.values, values, "{name} {device}");
        assert_eq!(&s.timestamps, timestamps, "{name} {device}");
        let labels: BTreeMap<&str, &str> = s
            .labels
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        assert_eq!(
            labels,
            BTreeMap::from([
                ("__name__", *name),
                ("device", *device),
                ("gateway", "gw-1"),
                ("site", "hq"),
            ])
        );
    }
}

#[tokio::test]
#[ignore = "needs victoria-metrics (.ci/run installs it)"]
async fn a_bad_token_is_reject_and_a_bad_line_is_refused() {
    let cfg = resolved();
    let one = line(
        &cfg,
        &outcome(0, now_ms(), vec![good(0, Value::Float(1.0))]),
    )
    .expect("a line");

    // 401: HTTP auth is on and the writer sends a token, not the password.
    let locked = Vm::start(&["-httpAuth.username=bms", "-httpAuth.password=secret"]).await;
    match writer(locked.addr).write(&one).await {
        Err(WriteError::Reject(m)) => assert!(m.contains("401"), "{m}"),
        other => panic!("401 must be Reject, got {other:?}"),
    }
    drop(locked);

    // 400: a line longer than the server accepts.
    let strict = Vm::start(&["-influx.maxLineSize=200"]).await;
    let samples = (0..40).map(|i| good(1, Value::UInt(i))).collect();
    let long = line(&cfg, &outcome(0, now_ms(), samples)).expect("a line");
    assert!(long.len() > 200);
    // The lines are refused, not the request: they are set aside, not retried.
    match writer(strict.addr).write(&long).await {
        Err(WriteError::Refused {
            status: 400,
            message,
        }) => {
            assert!(message.contains("400"), "{message}")
        }
        other => panic!("400 must be Refused, got {other:?}"),
    }
    // The same server takes a short line.
    writer(strict.addr).write(&one).await.expect("short line");
}

#[tokio::test]
async fn a_closed_port_is_retry() {
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("address");
    match writer(addr).write("pump,site=hq x=1 1").await {
        Err(e @ WriteError::Retry(_)) => {
            assert!(e.is_retry());
            assert!(e.to_string().contains(&addr.to_string()), "{e}");
        }
        other => panic!("a closed port must be Retry, got {other:?}"),
    }
}

/// The requests a [`responder`] received, each whole (head and body).
type Received = std::sync::Arc<std::sync::Mutex<Vec<String>>>;

/// Answers every request with `status` and a short text, after reading it;
/// keeps what it read.
async fn responder(status: &'static str) -> (SocketAddr, Received) {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    let received = Received::default();
    let keep = received.clone();
    tokio::spawn(async move {
        while let Ok((mut s, _)) = listener.accept().await {
            let keep = keep.clone();
            tokio::spawn(async move {
                let mut buf = Vec::new();
                let mut chunk = [0u8; 4096];
                // Read the head, then as much body as Content-Length says.
                let body_len = loop {
                    let Ok(n) = s.read(&mut chunk).await else {
                        return;
                    };
                    if n == 0 {
                        return;
                    }
                    buf.extend_from_slice(&chunk[..n]);
                    let text = String::from_utf8_lossy(&buf).to_ascii_lowercase();
                    if let Some(end) = text.find("\r\n\r\n") {
                        let len = text[..end]
                            .lines()
                            .find_map(|l| l.strip_prefix("content-length:"))
                            .and_then(|v| v.trim().parse::<usize>().ok())
                            .unwrap_or(0);
                        break end + 4 + len;
                    }
                };
                while buf.len() < body_len {
                    match s.read(&mut chunk).await {
                        Ok(0) | Err(_) => return,
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                    }
                }
                keep.lock()
                    .expect("not poisoned")
                    .push(String::from_utf8_lossy(&buf).into_owned());
                let text = "answer from the test responder";
                let answer = format!(
                    "HTTP/1.1 {status}\r\nContent-Type: text/plain\r\nContent-Length: {}\r\n\
                     Connection: close\r\n\r\n{text}",
                    text.len()
                );
                let _ = s.write_all(answer.as_bytes()).await;
                let _ = s.shutdown().await;
            });
        }
    });
    (addr, received)
}

#[tokio::test]
async fn statuses_are_sorted_into_retry_and_reject() {
    let cases = [
        ("429 Too Many Requests", Some(true)),
        ("503 Service Unavailable", Some(true)),
        ("500 Internal Server Error", Some(true)),
        ("408 Request Timeout", Some(true)),
        ("404 Not Found", Some(false)),
        ("413 Payload Too Large", Some(false)),
        ("403 Forbidden", Some(false)),
        // Not followed: a POST turned into a GET would lose the batch.
        ("307 Temporary Redirect", Some(false)),
        ("301 Moved Permanently", Some(false)),
        ("200 OK", None),
        ("204 No Content", None),
    ];
    for (status, retry) in cases {
        let (addr, _) = responder(status).await;
        let got = writer(addr).write("pump,site=hq x=1 1").await;
        match (retry, &got) {
            (None, Ok(())) => {}
            (Some(r), Err(e)) if e.is_retry() == r => {
                let code = &status[..3];
                assert!(e.to_string().contains(code), "{status}: {e}");
                assert!(
                    e.to_string().contains("answer from the test responder"),
                    "the server's text is kept: {e}"
                );
            }
            _ => panic!("{status}: got {got:?}"),
        }
    }
}

#[tokio::test]
async fn a_write_is_the_influxdb2_write_api_over_http_1_1() {
    let (addr, received) = responder("204 No Content").await;
    let lines = "pump,site=hq x=1 1\npump,site=hq x=2 2";
    assert_eq!(writer(addr).write(lines).await, Ok(()));
    let got = received.lock().expect("not poisoned").clone();
    assert_eq!(got.len(), 1, "{got:?}");
    let (head, body) = got[0].split_once("\r\n\r\n").expect("a head and a body");
    let mut head_lines = head.lines();
    assert_eq!(
        head_lines.next(),
        Some("POST /api/v2/write?org=bms&bucket=telemetry&precision=ms HTTP/1.1")
    );
    let headers: Vec<String> = head_lines.map(str::to_ascii_lowercase).collect();
    for want in [
        "authorization: token test-token",
        "content-type: text/plain; charset=utf-8",
    ] {
        assert!(headers.iter().any(|h| h == want), "{want}: {headers:?}");
    }
    assert_eq!(body, lines);

    // Without a token there is no Authorization header at all.
    let (addr, received) = responder("204 No Content").await;
    let w = InfluxWriter::new(&influx(format!("http://{addr}")), None).expect("writer");
    assert_eq!(w.write(lines).await, Ok(()));
    let got = received.lock().expect("not poisoned").clone();
    assert!(
        !got[0].to_ascii_lowercase().contains("authorization"),
        "{got:?}"
    );
}

#[tokio::test]
async fn an_empty_batch_sends_nothing() {
    // Nothing listens there: any request would fail.
    let addr: SocketAddr = format!("127.0.0.1:{}", free_port())
        .parse()
        .expect("address");
    assert_eq!(writer(addr).write("").await, Ok(()));
    assert_eq!(writer(addr).write("\n \n").await, Ok(()));
}
