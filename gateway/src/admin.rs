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
    /// Lines the time-series store refused, if writing to it.
    pub influx_dead: Option<Arc<crate::north::dead_letters::DeadLetterStats>>,
}

/// Builds a text exposition: each metric family's `# HELP` and `# TYPE`
/// lines, then its samples, before the next family (the Prometheus text
/// format groups every family's lines together; a family announced apart
/// from its samples is refused or misread by strict parsers).
#[derive(Debug, Default)]
struct Exposition {
    text: String,
}

impl Exposition {
    /// Starts family `name`; returns the name for the samples that follow.
    fn family(&mut self, name: &'static str, kind: &str, help: &str) -> &'static str {
        let _ = writeln!(self.text, "# HELP {name} {help}\n# TYPE {name} {kind}");
        name
    }

    /// One sample of the family started last: `name{labels} value` (give
    /// `labels` with their braces, or empty).
    fn sample(&mut self, name: &str, labels: &str, value: impl std::fmt::Display) {
        let _ = writeln!(self.text, "{name}{labels} {value}");
    }
}

impl Metrics {
    /// The Prometheus text exposition of every metric.
    pub fn render(&self) -> String {
        let mut x = Exposition::default();
        let g = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
        let buses: Vec<(String, crate::south::BusStats)> = self
            .buses
            .lock()
            .map(|b| b.iter().map(|(id, c)| (id.clone(), c.snapshot())).collect())
            .unwrap_or_default();
        let build = x.family(
            "bms_build_info",
            "gauge",
            "The gateway's version and commit (always 1).",
        );
        x.sample(
            build,
            &format!(
                "{{version=\"{}\",commit=\"{}\"}}",
                crate::buildinfo::VERSION,
                crate::buildinfo::COMMIT
            ),
            1,
        );
        let polls = x.family("bms_polls_total", "counter", "Device polls made, by bus.");
        for (bus, st) in &buses {
            x.sample(polls, &format!("{{bus=\"{bus}\"}}"), st.polls);
        }
        let requests = x.family(
            "bms_requests_total",
            "counter",
            "Modbus requests sent, by bus.",
        );
        for (bus, st) in &buses {
            x.sample(requests, &format!("{{bus=\"{bus}\"}}"), st.requests);
        }
        let failures = x.family(
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
                x.sample(failures, &format!("{{bus=\"{bus}\",kind=\"{kind}\"}}"), n);
            }
        }
        let degraded = x.family(
            "bms_degraded_devices",
            "gauge",
            "Devices polled less often because they keep failing, by bus.",
        );
        for (bus, st) in &buses {
            x.sample(degraded, &format!("{{bus=\"{bus}\"}}"), st.degraded_devices);
        }
        let deferred = x.family(
            "bms_deferred_probes_total",
            "counter",
            "Polls of failing devices held back to keep the line's time for the devices that answer, by bus.",
        );
        for (bus, st) in &buses {
            x.sample(deferred, &format!("{{bus=\"{bus}\"}}"), st.deferred_probes);
        }
        let alarm = x.family(
            "bms_alarm_polls_total",
            "counter",
            "Alarm polls made (the fast polls of alarm points; also counted in bms_polls_total), by bus.",
        );
        for (bus, st) in &buses {
            x.sample(alarm, &format!("{{bus=\"{bus}\"}}"), st.alarm_polls);
        }
        let interleaved = x.family(
            "bms_interleaved_alarm_polls_total",
            "counter",
            "Alarm polls sent between two transactions of another device's poll instead of after it, by bus.",
        );
        for (bus, st) in &buses {
            x.sample(
                interleaved,
                &format!("{{bus=\"{bus}\"}}"),
                st.interleaved_alarms,
            );
        }
        let gap = x.family(
            "bms_probe_gap_seconds",
            "gauge",
            "The longest current spacing between probes of one silent device, by bus: the resolution comms recoveries are dated with.",
        );
        for (bus, st) in &buses {
            x.sample(
                gap,
                &format!("{{bus=\"{bus}\"}}"),
                st.probe_gap_ms as f64 / 1000.0,
            );
        }
        let sinks: Vec<(&str, &Arc<OutboxStats>)> =
            [("mqtt", &self.outbox), ("influx", &self.influx_outbox)]
                .into_iter()
                .filter_map(|(sink, o)| o.as_ref().map(|o| (sink, o)))
                .collect();
        if !sinks.is_empty() {
            type Field = fn(&OutboxStats) -> &std::sync::atomic::AtomicU64;
            let families: [(&'static str, &str, &str, Field); 4] = [
                (
                    "bms_outbox_records",
                    "gauge",
                    "Records waiting in the outbox, by sink.",
                    |o| &o.records,
                ),
                (
                    "bms_outbox_bytes",
                    "gauge",
                    "Bytes waiting in the outbox, by sink.",
                    |o| &o.bytes,
                ),
                (
                    "bms_outbox_dropped_total",
                    "counter",
                    "Telemetry records dropped because the outbox was full.",
                    |o| &o.dropped,
                ),
                (
                    "bms_outbox_delivered_total",
                    "counter",
                    "Records acknowledged by the broker or server and removed.",
                    |o| &o.delivered,
                ),
            ];
            for (name, kind, help, field) in families {
                let name = x.family(name, kind, help);
                for (sink, o) in &sinks {
                    x.sample(name, &format!("{{sink=\"{sink}\"}}"), g(field(o)));
                }
            }
        }
        if let Some(d) = &self.influx_dead {
            let name = x.family(
                "bms_influx_refused_lines_total",
                "counter",
                "Lines the time-series store refused (4xx) and that were set aside in the dead-letter table.",
            );
            x.sample(name, "", g(&d.refused));
            let name = x.family(
                "bms_influx_dead_letter_lines",
                "gauge",
                "Lines held in the dead-letter table (gateway dead-letters shows them).",
            );
            x.sample(name, "", g(&d.held));
        }
        if let Some(m) = &self.mqtt {
            let name = x.family(
                "bms_mqtt_connected",
                "gauge",
                "1 when connected to the broker.",
            );
            x.sample(name, "", u8::from(m.connected.load(Ordering::Relaxed)));
            let name = x.family("bms_mqtt_connects_total", "counter", "Connections made.");
            x.sample(name, "", g(&m.connects));
            let name = x.family("bms_mqtt_errors_total", "counter", "Connection errors.");
            x.sample(name, "", g(&m.errors));
            let name = x.family(
                "bms_mqtt_publish_ack_seconds",
                "summary",
                "Time from handing a QoS 1 publish to the client to its PubAck.",
            );
            x.sample(
                &format!("{name}_sum"),
                "",
                g(&m.ack_latency_us) as f64 / 1e6,
            );
            x.sample(&format!("{name}_count"), "", g(&m.acks));
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
                let name = x.family(name, "counter", help);
                x.sample(name, "", g(v));
            }
            let name = x.family(
                "bms_commands_rejected_total",
                "counter",
                "Commands refused before anything was done, by reason (docs/commands.md).",
            );
            for r in crate::cmdin::RejectReason::ALL {
                if let Some(n) = m.commands_rejected.get(r.index()) {
                    x.sample(name, &format!("{{reason=\"{}\"}}", r.as_str()), g(n));
                }
            }
            let name = x.family(
                "bms_writes_refused_total",
                "counter",
                "Signed write commands refused before the bus, by reason (docs/commands.md).",
            );
            for r in gateway_core::write::Refusal::ALL {
                if let Some(n) = m.writes_refused.get(r.index()) {
                    x.sample(name, &format!("{{reason=\"{}\"}}", r.as_str()), g(n));
                }
            }
            let name = x.family(
                "bms_writes_total",
                "counter",
                "Writes that went to a device, by result (ok, mismatch, device_error, timeout).",
            );
            for (i, o) in [
                gateway_core::write::Outcome::Ok,
                gateway_core::write::Outcome::Mismatch,
                gateway_core::write::Outcome::DeviceError,
                gateway_core::write::Outcome::Timeout,
            ]
            .into_iter()
            .enumerate()
            {
                if let Some(n) = m.write_results.get(i) {
                    x.sample(name, &format!("{{result=\"{}\"}}", o.as_str()), g(n));
                }
            }
        }
        // On-call alerts, by channel.
        if let Some(a) = &self.alerts {
            type Field = fn(&crate::alerts::ChannelCounters) -> &std::sync::atomic::AtomicU64;
            let families: [(&'static str, &str, Field); 4] = [
                (
                    "bms_alerts_sent_total",
                    "Alerts accepted by the channel, by channel.",
                    |c| &c.sent,
                ),
                (
                    "bms_alert_failures_total",
                    "Failed alert delivery attempts, by channel.",
                    |c| &c.failures,
                ),
                (
                    "bms_alerts_expired_total",
                    "Alerts given up undelivered, by channel.",
                    |c| &c.expired,
                ),
                (
                    "bms_alert_fallbacks_total",
                    "Alerts handed to the fallback channel, by channel.",
                    |c| &c.fallbacks,
                ),
            ];
            for (name, help, field) in families {
                let name = x.family(name, "counter", help);
                for (ch, c) in &a.channels {
                    x.sample(name, &format!("{{channel=\"{ch}\"}}"), g(field(c)));
                }
            }
            let name = x.family(
                "bms_alerts_pending",
                "gauge",
                "Alerts recorded and not yet delivered.",
            );
            x.sample(name, "", g(&a.pending));
        }
        // The data disk and the ledger's writes.
        if let Some(sp) = &self.space {
            let st = &sp.stats;
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
                let name = x.family(name, kind, help);
                x.sample(name, "", v);
            }
        }
        let sinks: Vec<(&str, &Arc<_>)> = [("mqtt", &self.outbox), ("influx", &self.influx_outbox)]
            .into_iter()
            .filter_map(|(sink, o)| o.as_ref().map(|o| (sink, o)))
            .collect();
        if !sinks.is_empty() {
            let name = x.family(
                "bms_outbox_dropped_for_space_total",
                "counter",
                "Telemetry dropped because the data disk was below [store] min_free or full (part of bms_outbox_dropped_total).",
            );
            for (sink, o) in &sinks {
                x.sample(
                    name,
                    &format!("{{sink=\"{sink}\"}}"),
                    g(&o.dropped_for_space),
                );
            }
            let name = x.family(
                "bms_outbox_lost_total",
                "counter",
                "Events, states and tickets dropped from the in-memory backlog because the outbox refused appends too long.",
            );
            for (sink, o) in &sinks {
                x.sample(name, &format!("{{sink=\"{sink}\"}}"), g(&o.lost));
            }
            let name = x.family(
                "bms_outbox_file_bytes",
                "gauge",
                "Bytes the outbox files take on disk (database, WAL, WAL index), bounded by [outbox] max_size.",
            );
            for (sink, o) in &sinks {
                x.sample(name, &format!("{{sink=\"{sink}\"}}"), g(&o.file_bytes));
            }
        }
        x.text
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

#[cfg(test)]
mod tests {
    use super::*;

    /// Each family's HELP and TYPE come right before its own samples.
    #[test]
    fn every_family_is_announced_right_before_its_samples() {
        let m = Metrics {
            outbox: Some(Arc::default()),
            influx_outbox: Some(Arc::default()),
            mqtt: Some(Arc::default()),
            influx_dead: Some(Arc::default()),
            ..Metrics::default()
        };
        let text = m.render();
        let mut family: Option<&str> = None;
        let mut families = Vec::new();
        for line in text.lines() {
            if let Some(rest) = line.strip_prefix("# HELP ") {
                family = rest.split(' ').next();
                families.push(family);
            } else if let Some(rest) = line.strip_prefix("# TYPE ") {
                assert_eq!(rest.split(' ').next(), family, "{line}\n{text}");
            } else {
                let name = line.split(['{', ' ']).next().unwrap_or("");
                let f = family.expect("a sample before any family");
                assert!(
                    name == f || name == format!("{f}_sum") || name == format!("{f}_count"),
                    "sample {name} under family {f}:\n{text}"
                );
            }
        }
        let unique: std::collections::BTreeSet<_> = families.iter().collect();
        assert_eq!(unique.len(), families.len(), "a family twice:\n{text}");
        assert!(
            text.contains("bms_outbox_records{sink=\"influx\"} 0"),
            "{text}"
        );
        assert!(text.contains("bms_influx_refused_lines_total 0"), "{text}");
    }

    /// The scheduler's alarm-poll counters reach `/metrics`, by bus.
    #[test]
    fn alarm_polls_and_interleaved_alarm_polls_are_exposed_by_bus() {
        let m = Metrics::default();
        if let Ok(mut b) = m.buses.lock() {
            b.push(("rs485-1".to_owned(), Arc::default()));
        }
        let text = m.render();
        assert!(
            text.contains("bms_alarm_polls_total{bus=\"rs485-1\"} 0"),
            "{text}"
        );
        assert!(
            text.contains("bms_interleaved_alarm_polls_total{bus=\"rs485-1\"} 0"),
            "{text}"
        );
    }
}
