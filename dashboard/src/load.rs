//! `dashboard load`: a load generator for performance figures
//! (`docs/performance.md`). It plays N gateways × M devices publishing
//! telemetry every period, as real gateways would (status and state
//! retained, telemetry QoS 1, per-gateway `seq`), and measures the latency
//! from an MQTT publish to the dashboard's server-sent event that carries it.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use rumqttc::v5::mqttbytes::QoS;
use rumqttc::v5::{AsyncClient, MqttOptions};
use serde_json::json;
use tokio::io::{AsyncBufReadExt as _, AsyncWriteExt as _, BufReader};

/// Arguments of `dashboard load`.
#[derive(Debug, clap::Args)]
pub struct LoadArgs {
    /// The broker the dashboard reads.
    #[arg(long, default_value = "mqtt://127.0.0.1:1883")]
    pub broker: String,
    /// The dashboard (for latency probes over `/events`); none: no probes.
    #[arg(long, value_name = "ADDR")]
    pub dashboard: Option<String>,
    /// Topic prefix.
    #[arg(long, default_value = "bms")]
    pub prefix: String,
    /// Gateways (each its own site `load-site-N`).
    #[arg(long, default_value_t = 10)]
    pub gateways: usize,
    /// Devices per gateway.
    #[arg(long, default_value_t = 50)]
    pub devices: usize,
    /// Milliseconds between two telemetry messages of a device.
    #[arg(long, default_value_t = 1000)]
    pub every_ms: u64,
    /// How long to run, in seconds.
    #[arg(long, default_value_t = 60)]
    pub seconds: u64,
    /// Points per telemetry message: 0 for a pump's two (`value` with a
    /// unit, `running`); N for N integer registers `r00`… without units, as
    /// the gateways of `tests/load/fleet.sh` publish them with
    /// `heartbeat = "1s"`.
    #[arg(long, default_value_t = 0)]
    pub points: usize,
}

const CLASSES: [&str; 8] = [
    "pump",
    "distribution",
    "fire_alarm",
    "lighting",
    "hvac",
    "lightning_protection",
    "elevator",
    "plumbing",
];

/// Runs the load; prints what was sent and the latency figures.
pub async fn run(a: LoadArgs) -> u8 {
    let url = match gateway_core::config::parse_broker_url(&a.broker) {
        Ok(u) => u,
        Err(e) => {
            eprintln!("dashboard load: --broker: {e}");
            return crate::EXIT_CONFIG;
        }
    };
    let mut o = MqttOptions::new("bms-dashboard-load", url.host, url.port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_outgoing_inflight_upper_limit(1000);
    o.set_request_channel_capacity(10_000);
    let (client, mut ev) = AsyncClient::new(o, 10_000);
    tokio::spawn(async move {
        loop {
            if ev.poll().await.is_err() {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
    });
    let now = || gateway::run::unix_now_ms();
    let mut seq = vec![0u64; a.gateways];
    let topic = |g: usize, rest: &str| format!("{}/load-site-{g}/gw-1/{rest}", a.prefix);
    let pub1 = |t: String, retain: bool, body: serde_json::Value| {
        let c = client.clone();
        async move {
            let _ = c
                .publish(t, QoS::AtLeastOnce, retain, body.to_string())
                .await;
        }
    };
    for g in 0..a.gateways {
        pub1(
            topic(g, "status"),
            true,
            json!({"gateway": "gw-1", "site": format!("load-site-{g}"), "state": "online", "seq": 0, "ts": now(), "started_at": now(), "version": "load"}),
        )
        .await;
    }
    // Latency probes: publish time by probe value.
    let pending: Arc<Mutex<HashMap<u64, Instant>>> = Arc::default();
    let lat: Arc<Mutex<Vec<f64>>> = Arc::default();
    if let Some(addr) = a.dashboard.clone() {
        let (pending, lat) = (pending.clone(), lat.clone());
        tokio::spawn(async move {
            if let Err(e) = sse_reader(&addr, pending, lat).await {
                eprintln!("dashboard load: /events: {e}");
            }
        });
    }
    let start = Instant::now();
    let mut tick = tokio::time::interval(Duration::from_millis(a.every_ms.max(10)));
    let (mut sent, mut round, mut probe) = (0u64, 0u64, 1_000_000u64);
    let mut last_probe = Instant::now();
    while start.elapsed() < Duration::from_secs(a.seconds) {
        tick.tick().await;
        let states = round % 60 == 0;
        for (g, s) in seq.iter_mut().enumerate() {
            for d in 0..a.devices {
                let dev = format!("dev-{d:03}");
                let class = CLASSES[d % CLASSES.len()];
                if states {
                    *s += 1;
                    pub1(
                        topic(g, &format!("{dev}/state")),
                        true,
                        json!({"seq": *s, "ts": now(), "device": dev, "class": class, "name_zh": format!("设备{d}"), "name_en": format!("Device {d}"), "location": "", "state": "up", "since": now(), "reason": null,
                               "availability": {"month": 0.995, "rolling": 1.0, "rolling_window_s": 86400, "threshold": 98.0, "below": false}}),
                    )
                    .await;
                }
                *s += 1;
                let v = 20.0 + ((round as f64 + d as f64) * 0.37).sin() * 5.0;
                let (mut points, units) = if a.points == 0 {
                    (
                        json!({"value": (v * 100.0).round() / 100.0, "running": true}),
                        json!({"value": "bar"}),
                    )
                } else {
                    let regs: serde_json::Map<String, serde_json::Value> = (0..a.points)
                        .map(|i| (format!("r{i:02}"), json!((round + (d + i) as u64) % 65_536)))
                        .collect();
                    (serde_json::Value::Object(regs), json!({}))
                };
                if g == 0
                    && d == 0
                    && a.dashboard.is_some()
                    && last_probe.elapsed() >= Duration::from_secs(2)
                {
                    probe += 1;
                    points["probe"] = json!(probe);
                    if let Ok(mut p) = pending.lock() {
                        p.insert(probe, Instant::now());
                    }
                    last_probe = Instant::now();
                }
                pub1(
                    topic(g, &format!("{dev}/telemetry")),
                    false,
                    json!({"seq": *s, "ts": now(), "device": dev, "class": class, "points": points, "units": units, "quality": {}}),
                )
                .await;
                sent += 1;
            }
        }
        round += 1;
    }
    let secs = start.elapsed().as_secs_f64();
    println!(
        "sent {sent} telemetry messages in {secs:.1} s ({:.0}/s) for {} gateways × {} devices",
        sent as f64 / secs,
        a.gateways,
        a.devices
    );
    let mut l = lat.lock().map(|l| l.clone()).unwrap_or_default();
    if !l.is_empty() {
        l.sort_by(f64::total_cmp);
        let q = |f: f64| l[((l.len() - 1) as f64 * f).round() as usize];
        println!(
            "MQTT publish → SSE event latency over {} probes: median {:.0} ms, p90 {:.0} ms, max {:.0} ms",
            l.len(),
            q(0.5),
            q(0.9),
            q(1.0)
        );
    }
    let _ = client.disconnect().await;
    0
}

/// Reads `/events`; for each snapshot, finds the probe value and records
/// the time since it was published.
async fn sse_reader(
    addr: &str,
    pending: Arc<Mutex<HashMap<u64, Instant>>>,
    lat: Arc<Mutex<Vec<f64>>>,
) -> std::io::Result<()> {
    let mut s = tokio::net::TcpStream::connect(addr).await?;
    s.write_all(
        format!("GET /events HTTP/1.1\r\nHost: {addr}\r\nAccept: text/event-stream\r\n\r\n")
            .as_bytes(),
    )
    .await?;
    let mut r = BufReader::new(s);
    let mut line = String::new();
    loop {
        line.clear();
        if r.read_line(&mut line).await? == 0 {
            return Ok(());
        }
        let Some(i) = line.find("\"probe\":") else {
            continue;
        };
        let digits: String = line[i + 8..]
            .chars()
            .take_while(char::is_ascii_digit)
            .collect();
        if let Ok(n) = digits.parse::<u64>()
            && let Ok(mut p) = pending.lock()
            && let Some(t) = p.remove(&n)
            && let Ok(mut l) = lat.lock()
        {
            l.push(t.elapsed().as_secs_f64() * 1000.0);
        }
    }
}
