//! Outbox → MQTT throughput against a real Mosquitto on loopback (a bench
//! binary, `harness = false`): figures for `docs/performance.md`.
//!
//! ```sh
//! cargo bench -p gateway --bench outbox_mqtt            # needs `mosquitto` on PATH
//! BENCH_MESSAGES=50000 cargo bench -p gateway --bench outbox_mqtt
//! ```
//!
//! 1. **Append**: messages of a typical telemetry size appended in
//!    100 ms-sized batches (500 per transaction), `fsync = batch`.
//! 2. **Replay after an outage**: that backlog published from the outbox
//!    to Mosquitto, QoS 1, each record deleted on its PubAck; the time
//!    until the outbox is empty.
//! 3. **Steady flow**: appending and publishing at once; messages per
//!    second from the first append to the last PubAck.
//!
//! A broker, the outbox and the publisher run in this process's runtime
//! exactly as in `gateway run`; nothing is mocked.

#![allow(clippy::unwrap_used, clippy::expect_used)] // a bench: a panic is the report

use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

use gateway::north::mqtt::{MqttStats, Publisher};
use gateway::north::outbox::{Kind, NewRecord, OutboxReader, OutboxStats, OutboxWriter};
use gateway_core::config::{Fsync, MqttConfig, load::load};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

fn payload(seq: u64) -> Vec<u8> {
    // The size of a pump's telemetry message (≈ 330 bytes).
    format!(
        r#"{{"class":"pump","device":"pump-1","points":{{"dc_bus_voltage":542,"fault":false,"fault_code":0,"frequency":45.41,"outlet_pressure":3.21,"output_current":23.6,"output_voltage":345,"ready":true,"remote":true,"run_hours":10488,"running":true}},"quality":{{}},"seq":{seq},"ts":1795750631979,"units":{{"frequency":"Hz","outlet_pressure":"bar"}}}}"#
    )
    .into_bytes()
}

fn append(w: &mut OutboxWriter, n: u64) -> Duration {
    let start = Instant::now();
    let mut left = n;
    while left > 0 {
        let k = left.min(500);
        w.append(0..k, |seq, _| NewRecord {
            topic: "bms/bench/gw/pump-1/telemetry".to_owned(),
            payload: payload(seq),
            qos: 1,
            retain: false,
            kind: Kind::Telemetry,
        })
        .unwrap();
        left -= k;
    }
    start.elapsed()
}

async fn drained(stats: &OutboxStats) -> Instant {
    loop {
        if stats.records.load(Ordering::Relaxed) == 0 {
            return Instant::now();
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let n: u64 = std::env::var("BENCH_MESSAGES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(20_000);
    let dir = tempfile::tempdir().unwrap();
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let conf = dir.path().join("m.conf");
    std::fs::write(
        &conf,
        format!("listener {port} 127.0.0.1\nallow_anonymous true\npersistence false\nmax_queued_messages 0\n"),
    )
    .unwrap();
    let mut broker = Command::new("mosquitto")
        .arg("-c")
        .arg(&conf)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("mosquitto on PATH (apt-get install mosquitto)");
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        std::thread::sleep(Duration::from_millis(20));
    }
    let resolved = load(
        "bench.toml",
        "site = \"bench\"\ngateway = \"gw\"\n",
        &Default::default(),
        &|_| None,
    )
    .unwrap();
    let mqtt = MqttConfig::for_url(&format!("mqtt://127.0.0.1:{port}"));
    let data = dir.path().join("data");

    // 1. Append.
    let mut w = OutboxWriter::open(&data, Fsync::Batch, 4_000_000_000).unwrap();
    let took = append(&mut w, n);
    println!(
        "append:  {n} messages in {:.3} s = {:.0} msg/s (500 per transaction, fsync = batch)",
        took.as_secs_f64(),
        n as f64 / took.as_secs_f64()
    );

    // 2. Replay of the backlog.
    let stats = w.stats();
    let wake = Arc::new(Notify::new());
    let publisher = Publisher {
        mqtt,
        identity: gateway::wire::Identity::of(&resolved),
        data_dir: data.clone(),
        base_dir: dir.path().to_path_buf(),
        password: None,
        commands: false,
        outbox: OutboxReader::open(&data, Fsync::Batch, Arc::clone(&stats)).unwrap(),
        outbox_stats: Arc::clone(&stats),
        wake: Arc::clone(&wake),
        started_ms: 0,
        commands_tx: None,
        stats: Arc::new(MqttStats::default()),
        last_error: None,
    };
    let mqtt_stats = Arc::clone(&publisher.stats);
    let stop = CancellationToken::new();
    let task = tokio::spawn(publisher.run(stop.clone()));
    let start = Instant::now();
    let end = drained(&stats).await;
    let t = (end - start).as_secs_f64();
    println!(
        "replay:  {n} messages from the outbox to Mosquitto (QoS 1, deleted on PubAck) in {t:.3} s = {:.0} msg/s",
        n as f64 / t
    );

    // 3. Steady flow: append and publish at once.
    let start = Instant::now();
    let mut appended = 0;
    while appended < n {
        let k = (n - appended).min(500);
        append(&mut w, k);
        appended += k;
        wake.notify_one();
        tokio::task::yield_now().await;
    }
    let end = drained(&stats).await;
    let t = (end - start).as_secs_f64();
    let acks = mqtt_stats.acks.load(Ordering::Relaxed).max(1);
    println!(
        "flow:    {n} messages appended and delivered in {t:.3} s = {:.0} msg/s; mean publish→PubAck {:.2} ms",
        n as f64 / t,
        mqtt_stats.ack_latency_us.load(Ordering::Relaxed) as f64 / acks as f64 / 1000.0
    );
    stop.cancel();
    let _ = task.await;
    let _ = broker.kill();
    let _ = broker.wait();
}
