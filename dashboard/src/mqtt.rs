//! The MQTT subscriber: takes every gateway message under the prefix into
//! the live model; reconnects on its own, forever, with backoff (0.5 s
//! doubling to 15 s), and within about a second of the broker's return: a
//! bare TCP probe of the broker's port runs about once a second during each
//! wait (`gateway::north::probe`).
//!
//! It speaks MQTT 5 for its limits: the CONNECT carries `[mqtt]
//! max_packet_size` as Maximum Packet Size, so that a compliant broker
//! (Mosquitto 2) drops a bigger message for this client instead of sending
//! it. With MQTT 3.1.1 one retained message over the client's limit cut the
//! client off at every reconnection (the broker sends it again at once). A
//! packet over the limit that a non-compliant broker sends anyway ends the
//! connection (rumqttc cannot skip it): it is logged and counted
//! (`mqtt_oversized` in `/api/health`), and the reconnection backoff then
//! keeps growing instead of starting again from its shortest wait.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rumqttc::v5::mqttbytes;
use rumqttc::v5::{ConnectionError, Event, Incoming, MqttOptions, StateError};
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use gateway::north::probe;

use crate::model::Applied;
use crate::state::{Shared, now_ms};

/// The MQTT client the dashboard publishes commands with.
pub type Client = rumqttc::v5::AsyncClient;
pub use rumqttc::v5::mqttbytes::QoS;

/// Connection options for the configured broker.
pub fn options(shared: &Shared) -> Result<MqttOptions, String> {
    let url = gateway_core::config::parse_broker_url(&shared.settings.broker_url)?;
    let m = &shared.settings.file.mqtt;
    let mut o = MqttOptions::new(m.client_id.clone(), url.host, url.port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_start(true);
    o.set_max_packet_size(Some(shared.settings.max_packet));
    o.set_request_channel_capacity(256);
    if let Some(u) = &m.username {
        o.set_credentials(
            u.clone(),
            shared.settings.mqtt_password.clone().unwrap_or_default(),
        );
    }
    if url.tls {
        o.set_transport(gateway::north::mqtt::tls_transport(
            &shared.settings.base_dir,
            m.ca_file.as_deref(),
            None,
        )?);
    }
    Ok(o)
}

/// The size of a packet over our limit that ended a connection, if that
/// is why it ended.
fn oversized(e: &ConnectionError) -> Option<usize> {
    match e {
        ConnectionError::MqttState(StateError::Deserialization(
            mqttbytes::Error::PayloadSizeLimitExceeded { pkt_size, .. },
        )) => Some(*pkt_size),
        _ => None,
    }
}

/// Runs the subscriber until `stop`; returns the client used to send commands.
pub fn start(shared: Arc<Shared>, stop: CancellationToken) -> Result<Client, String> {
    let (client, mut eventloop) = Client::new(options(&shared)?, 1024);
    let filter = format!("{}/#", shared.settings.file.mqtt.prefix);
    let c = client.clone();
    tokio::spawn(async move {
        let min_backoff = Duration::from_millis(500);
        let mut backoff = min_backoff;
        let mut last_error = String::new();
        // The last connection ended on an oversized packet: the next
        // ConnAck does not make the backoff short again.
        let mut after_oversized = false;
        let mut connected_at = std::time::Instant::now();
        // The broker's address, for the probes between attempts (`options`
        // above parsed the same URL).
        let target = gateway_core::config::parse_broker_url(&shared.settings.broker_url)
            .ok()
            .map(|u| (u.host, u.port));
        loop {
            let ev = tokio::select! {
                _ = stop.cancelled() => break,
                ev = eventloop.poll() => ev,
            };
            match ev {
                Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                    info!(broker = %shared.settings.broker_url, "connected to the broker");
                    shared.connected.store(true, Ordering::Relaxed);
                    connected_at = std::time::Instant::now();
                    if !after_oversized {
                        backoff = min_backoff;
                    }
                    last_error.clear();
                    if let Err(e) = c.subscribe(filter.clone(), QoS::AtLeastOnce).await {
                        warn!(error = %e, "cannot subscribe");
                    }
                }
                Ok(Event::Incoming(Incoming::Publish(p))) => match std::str::from_utf8(&p.topic) {
                    Ok(topic) => shared.take(topic, &p.payload, p.retain, now_ms()),
                    Err(_) => warn!("message with a topic that is not UTF-8 ignored"),
                },
                Ok(_) => {}
                Err(e) => {
                    shared.connected.store(false, Ordering::Relaxed);
                    if let Some(size) = oversized(&e) {
                        after_oversized = true;
                        shared.oversized.fetch_add(1, Ordering::Relaxed);
                        error!(
                            broker = %shared.settings.broker_url,
                            size,
                            max_packet_size = shared.settings.max_packet,
                            "the broker sent a packet over [mqtt] max_packet_size although the client announced it (MQTT 5 Maximum Packet Size); reconnecting with backoff. Set max_packet_size on the broker below the clients' limit"
                        );
                    } else {
                        // A connection that lasted after an oversized one
                        // was healthy: back to the shortest wait.
                        if after_oversized && connected_at.elapsed() > Duration::from_secs(60) {
                            backoff = min_backoff;
                        }
                        after_oversized = false;
                        let text = e.to_string();
                        // Log each kind of failure once, not every retry.
                        if text != last_error {
                            warn!(broker = %shared.settings.broker_url, error = %text, "broker connection lost; retrying");
                            last_error = text;
                        }
                    }
                    // A cheap TCP probe about once a second ends the wait
                    // as soon as the broker is back (gateway::north::probe).
                    let closed = gateway::north::mqtt::port_closed(&e);
                    let wake = match &target {
                        Some((host, port)) => {
                            probe::wait_for_broker(host, *port, backoff, closed, &stop).await
                        }
                        None => tokio::select! {
                            _ = stop.cancelled() => probe::Wake::Stopped,
                            _ = tokio::time::sleep(backoff) => probe::Wake::Elapsed,
                        },
                    };
                    match wake {
                        probe::Wake::Stopped => break,
                        probe::Wake::Back => {
                            info!(broker = %shared.settings.broker_url, "the broker accepts connections again; reconnecting now");
                        }
                        probe::Wake::Elapsed => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(15));
                }
            }
        }
        let _ = c.disconnect().await;
    });
    Ok(client)
}

impl Shared {
    /// Takes one message into the model; wakes the pages; hands a reply to
    /// the command waiting for it. A message the model refuses goes no
    /// further (not to the history nor the central ledger); refusals are
    /// logged at most once per kind every 10 s.
    pub fn take(&self, topic: &str, payload: &[u8], retained: bool, now: i64) {
        // Command replies first, before the ledger and the model: only a
        // reply signed by the gateway of its topic, for a command waiting
        // for it, is believed (`commands::on_reply`). A signed reply still
        // goes to the model, for its numbering; any other is counted and
        // goes nowhere, so a forged one can neither complete a command nor
        // move a gateway's seq.
        if let Some((site, gw)) =
            crate::commands::reply_topic(&self.settings.file.mqtt.prefix, topic)
        {
            let outcome =
                crate::commands::on_reply(&self.settings, &self.pending, site, gw, payload);
            if let Err(why) = outcome {
                self.pending
                    .log_refused(why, site, gw, std::time::Instant::now());
            }
            if let Ok(mut m) = self.model.lock() {
                match outcome {
                    Ok(()) => {
                        m.apply(topic, payload, retained, now);
                    }
                    Err(why) => {
                        let n = m.counters.replies_refused.entry(why.as_str()).or_default();
                        *n = n.saturating_add(1);
                        if why.authentic() {
                            m.apply(topic, payload, retained, now);
                        } else {
                            m.counters.messages = m.counters.messages.saturating_add(1);
                        }
                    }
                }
            }
            return;
        }
        let applied = match self.model.lock() {
            Ok(mut m) => m.apply(topic, payload, retained, now),
            Err(_) => return,
        };
        // The central ledger: its own dedupe, off the receive path;
        // only what the model did not refuse (untrusted input stops here).
        if !matches!(applied, Applied::Refused(_))
            && let (Some(l), Some(rest)) = (
                &self.ledger,
                topic.strip_prefix(self.settings.file.mqtt.prefix.as_str()),
            )
        {
            l.offer(rest, payload, now);
        }
        match applied {
            Applied::Changed => {
                self.changed.send_modify(|v| *v += 1);
                if let Some(h) = &self.history {
                    // {prefix}/{site}/{gateway}/{device}/{telemetry|state|event}
                    let rest = topic
                        .strip_prefix(self.settings.file.mqtt.prefix.as_str())
                        .unwrap_or("");
                    let mut parts = rest.split('/');
                    if let (Some(_), Some(site), Some(gateway), Some(device), Some(kind), None) = (
                        parts.next(),
                        parts.next(),
                        parts.next(),
                        parts.next(),
                        parts.next(),
                        parts.next(),
                    ) && matches!(kind, "telemetry" | "state" | "event")
                    {
                        h.offer(site, gateway, device, payload);
                    }
                }
            }
            Applied::Refused(Some(why)) => {
                warn!(%why, "MQTT message refused (counted in /api/health and /metrics)");
            }
            Applied::Refused(None) | Applied::Ignored => {}
        }
    }
}
