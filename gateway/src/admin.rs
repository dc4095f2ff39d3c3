//! The admin listener (`[admin] listen`, loopback by default): `/healthz`
//! for supervisors and load balancers, `/metrics` in the Prometheus text
//! format for scraping. Labels are bounded (bus ids, failure kinds); no
//! device-level series, so the number of series does not grow with the
//! building.

use std::fmt::Write as _;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use axum::routing::get;
use tokio_util::sync::CancellationToken;

use crate::north::mqtt::MqttStats;
use crate::north::outbox::OutboxStats;
use crate::south::BusCounters;

/// Everything the listener reports, shared with the parts that count.
#[derive(Debug, Default)]
pub struct Metrics {
    /// Bus counters by bus id (filled when the buses start).
    pub buses: Mutex<Vec<(String, Arc<BusCounters>)>>,
    /// The MQTT outbox, if publishing.
    pub outbox: Option<Arc<OutboxStats>>,
    /// The InfluxDB outbox, if writing.
    pub influx_outbox: Option<Arc<OutboxStats>>,
    /// The MQTT connection, if publishing.
    pub mqtt: Option<Arc<MqttStats>>,
    /// On-call alert channels, if `[alerts]` is on.
    pub alerts: Option<Arc<crate::alerts::AlertStats>>,
    /// The data disk and the ledger's writes (`gateway run`).
    pub space: Option<Arc<crate::store::Space>>,
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut s = String::new();
        let mut family = |name: &str, kind: &str, help: &str| {
            let _ = writeln!(s, "# HELP {name} {help}\n# TYPE {name} {kind}");
            name.to_owned()
        };
        let buses: Vec<(String, crate::south::BusStats)> = self
            .buses
            .lock()
            .map(|b| b.iter().map(|(id, c)| (id.clone(), c.snapshot())).collect())
            .unwrap_or_default();
        let build = family(
            "bms_build_info",
            "gauge",
            "The gateway's version and commit (always 1).",
        );
        let mut lines = vec![format!(
            "{build}{{version=\"{}\",commit=\"{}\"}} 1",
            crate::buildinfo::VERSION,
            crate::buildinfo::COMMIT
        )];
        let polls = family("bms_polls_total", "counter", "Device polls made, by bus.");
        for (bus, st) in &buses {
            lines.push(format!("{polls}{{bus=\"{bus}\"}} {}", st.polls));
        }
        let requests = family(
            "bms_requests_total",
            "counter",
            "Modbus requests sent, by bus.",
        );
        for (bus, st) in &buses {
            lines.push(format!("{requests}{{bus=\"{bus}\"}} {}", st.requests));
        }
        let failures = family(
            "bms_request_failures_total",
            "counter",
            "Modbus requests that failed, by bus and kind.",
        );
        for (bus, st) in &buses {
            for (kind, n) in [
                ("timeout", st.timeouts),
                ("exception", st.exceptions),
                ("transport", st.transport),
                ("framing", st.framing),
                ("link_down", st.link_down),
            ] {
                lines.push(format!("{failures}{{bus=\"{bus}\",kind=\"{kind}\"}} {n}"));
            }
        }
        let degraded = family(
            "bms_degraded_devices",
            "gauge",
            "Devices polled less often because they keep failing, by bus.",
        );
        for (bus, st) in &buses {
            lines.push(format!(
                "{degraded}{{bus=\"{bus}\"}} {}",
                st.degraded_devices
            ));
        }
        for (sink, stats) in [("mqtt", &self.outbox), ("influx", &self.influx_outbox)] {
            let Some(o) = stats else { continue };
            let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            lines.push(format!(
                "bms_outbox_records{{sink=\"{sink}\"}} {}",
                g(&o.records)
            ));
            lines.push(format!(
                "bms_outbox_bytes{{sink=\"{sink}\"}} {}",
                g(&o.bytes)
            ));
            lines.push(format!(
                "bms_outbox_dropped_total{{sink=\"{sink}\"}} {}",
                g(&o.dropped)
            ));
            lines.push(format!(
                "bms_outbox_delivered_total{{sink=\"{sink}\"}} {}",
                g(&o.delivered)
            ));
        }
        family(
            "bms_outbox_records",
            "gauge",
            "Records waiting in the outbox, by sink.",
        );
        family(
            "bms_outbox_bytes",
            "gauge",
            "Bytes waiting in the outbox, by sink.",
        );
        family(
            "bms_outbox_dropped_total",
            "counter",
            "Telemetry records dropped because the outbox was full.",
        );
        family(
            "bms_outbox_delivered_total",
            "counter",
            "Records acknowledged by the broker or server and removed.",
        );
        if let Some(m) = &self.mqtt {
            let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            family(
                "bms_mqtt_connected",
                "gauge",
                "1 when connected to the broker.",
            );
            lines.push(format!(
                "bms_mqtt_connected {}",
                u8::from(m.connected.load(Ordering::Relaxed))
            ));
            family("bms_mqtt_connects_total", "counter", "Connections made.");
            lines.push(format!("bms_mqtt_connects_total {}", g(&m.connects)));
            family("bms_mqtt_errors_total", "counter", "Connection errors.");
            lines.push(format!("bms_mqtt_errors_total {}", g(&m.errors)));
            family(
                "bms_mqtt_publish_ack_seconds",
                "summary",
                "Time from handing a QoS 1 publish to the client to its PubAck.",
            );
            lines.push(format!(
                "bms_mqtt_publish_ack_seconds_sum {}",
                g(&m.ack_latency_us) as f64 / 1e6
            ));
            lines.push(format!("bms_mqtt_publish_ack_seconds_count {}", g(&m.acks)));
            for (name, help, v) in [
                (
                    "bms_mqtt_oversized_total",
                    "Connections ended by a packet over [mqtt] max_packet_size.",
                    &m.oversized,
                ),
                (
                    "bms_mqtt_retained_commands_total",
                    "Commands ignored because they came with the retain flag.",
                    &m.retained_commands,
                ),
                (
                    "bms_mqtt_too_large_total",
                    "Outbox records dropped as bigger than the broker's maximum packet size.",
                    &m.too_large,
                ),
                (
                    "bms_mqtt_refused_total",
                    "Messages the broker acknowledged with a failure reason.",
                    &m.refused,
                ),
            ] {
                family(name, "counter", help);
                lines.push(format!("{name} {}", g(v)));
            }
            family(
                "bms_commands_rejected_total",
                "counter",
                "Commands refused before anything was done, by reason (docs/commands.md).",
            );
            for r in crate::cmdin::RejectReason::ALL {
                if let Some(n) = m.commands_rejected.get(r.index()) {
                    lines.push(format!(
                        "bms_commands_rejected_total{{reason=\"{}\"}} {}",
                        r.as_str(),
                        g(n)
                    ));
                }
            }
        }
        // On-call alerts (issue #6), by channel.
        if let Some(a) = &self.alerts {
            let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            for (name, help) in [
                (
                    "bms_alerts_sent_total",
                    "Alerts accepted by the channel, by channel.",
                ),
                (
                    "bms_alert_failures_total",
                    "Failed alert delivery attempts, by channel.",
                ),
                (
                    "bms_alerts_expired_total",
                    "Alerts given up undelivered, by channel.",
                ),
                (
                    "bms_alert_fallbacks_total",
                    "Alerts handed to the fallback channel, by channel.",
                ),
            ] {
                family(name, "counter", help);
                for (ch, c) in &a.channels {
                    let v = match name {
                        "bms_alerts_sent_total" => g(&c.sent),
                        "bms_alert_failures_total" => g(&c.failures),
                        "bms_alerts_expired_total" => g(&c.expired),
                        _ => g(&c.fallbacks),
                    };
                    lines.push(format!("{name}{{channel=\"{ch}\"}} {v}"));
                }
            }
            family(
                "bms_alerts_pending",
                "gauge",
                "Alerts recorded and not yet delivered.",
            );
            lines.push(format!("bms_alerts_pending {}", g(&a.pending)));
        }
        // The data disk and the ledger's writes.
        if let Some(sp) = &self.space {
            let st = &sp.stats;
            let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            for (name, kind, help, v) in [
                (
                    "bms_data_disk_free_bytes",
                    "gauge",
                    "Bytes free on the data disk (last look).",
                    g(&st.free_bytes),
                ),
                (
                    "bms_data_disk_min_free_bytes",
                    "gauge",
                    "[store] min_free: the reserve telemetry may not use.",
                    sp.min_free(),
                ),
                (
                    "bms_data_disk_condition",
                    "gauge",
                    "The data disk: 0 ok, 1 low (below min_free: telemetry dropped first), 2 full (a write failed for lack of space).",
                    g(&st.condition),
                ),
                (
                    "bms_data_disk_full_total",
                    "counter",
                    "Writes that failed for lack of space on the data disk.",
                    g(&st.full_events),
                ),
                (
                    "bms_ledger_write_failing",
                    "gauge",
                    "1 while writes to the ledger database fail (they are kept and retried).",
                    u64::from(st.ledger_failing.load(Ordering::Relaxed)),
                ),
                (
                    "bms_ledger_write_failures_total",
                    "counter",
                    "Failed writes to the ledger database.",
                    g(&st.ledger_failures),
                ),
            ] {
                family(name, kind, help);
                lines.push(format!("{name} {v}"));
            }
        }
        for (sink, stats) in [("mqtt", &self.outbox), ("influx", &self.influx_outbox)] {
            let Some(o) = stats else { continue };
            let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
            lines.push(format!(
                "bms_outbox_dropped_for_space_total{{sink=\"{sink}\"}} {}",
                g(&o.dropped_for_space)
            ));
            lines.push(format!(
                "bms_outbox_lost_total{{sink=\"{sink}\"}} {}",
                g(&o.lost)
            ));
            lines.push(format!(
                "bms_outbox_file_bytes{{sink=\"{sink}\"}} {}",
                g(&o.file_bytes)
            ));
        }
        if self.outbox.is_some() || self.influx_outbox.is_some() {
            family(
                "bms_outbox_dropped_for_space_total",
                "counter",
                "Telemetry dropped because the data disk was below [store] min_free or full (part of bms_outbox_dropped_total).",
            );
            family(
                "bms_outbox_lost_total",
                "counter",
                "Events, states and tickets dropped from the in-memory backlog because the outbox refused appends too long.",
            );
            family(
                "bms_outbox_file_bytes",
                "gauge",
                "Bytes the outbox files take on disk (database, WAL, WAL index), bounded by [outbox] max_size.",
            );
        }
        for l in lines {
            s.push_str(&l);
            s.push('\n');
        }
        s
    }

    /// `/healthz`: JSON; 200 unless MQTT is configured and not connected,
    /// the data disk is low or full, or ledger writes are failing.
    pub fn health(&self) -> (bool, String) {
        let connected = self
            .mqtt
            .as_ref()
            .map(|m| m.connected.load(Ordering::Relaxed));
        let waiting = self
            .outbox
            .as_ref()
            .map_or(0, |o| o.records.load(Ordering::Relaxed));
        let disk = self
            .space
            .as_ref()
            .map(|s| match s.stats.condition.load(Ordering::Relaxed) {
                0 => crate::store::Condition::Ok,
                1 => crate::store::Condition::Low,
                _ => crate::store::Condition::Full,
            });
        let ledger_failing = self
            .space
            .as_ref()
            .is_some_and(|s| s.stats.ledger_failing.load(Ordering::Relaxed));
        let ok = connected != Some(false)
            && disk.is_none_or(|d| d == crate::store::Condition::Ok)
            && !ledger_failing;
        let body = serde_json::json!({
            "status": if ok { "ok" } else { "degraded" },
            "mqtt_connected": connected,
            "outbox_records": waiting,
            "data_disk": disk.map(crate::store::Condition::as_str),
            "ledger_writes_failing": ledger_failing,
            "version": crate::buildinfo::VERSION,
            "commit": crate::buildinfo::COMMIT,
        });
        (ok, body.to_string())
    }
}

async fn metrics(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        m.render(),
    )
}

async fn healthz(State(m): State<Arc<Metrics>>) -> impl IntoResponse {
    let (ok, body) = m.health();
    let code = if ok {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    (code, [(header::CONTENT_TYPE, "application/json")], body)
}

/// Serves `/healthz` and `/metrics` on `listener` until `shutdown`.
pub async fn serve(
    listener: tokio::net::TcpListener,
    metrics: Arc<Metrics>,
    shutdown: CancellationToken,
) {
    let app = Router::new()
        .route("/metrics", get(self::metrics))
        .route("/healthz", get(healthz))
        .with_state(metrics);
    let result = axum::serve(listener, app)
        .with_graceful_shutdown(async move { shutdown.cancelled().await })
        .await;
    if let Err(e) = result {
        tracing::warn!(error = %e, "the admin listener stopped");
    }
}
