//! The MQTT subscriber: takes every gateway message under the prefix into
//! the live model; reconnects on its own, forever, with backoff.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::time::Duration;

use rumqttc::{AsyncClient, Event, MqttOptions, Packet, QoS};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::model::Applied;
use crate::state::{Shared, now_ms};

/// Connection options for the configured broker.
pub fn options(shared: &Shared) -> Result<MqttOptions, String> {
    let url = gateway_core::config::parse_broker_url(&shared.settings.broker_url)?;
    if url.tls {
        return Err(format!(
            "{}: the dashboard connects without TLS for now; run it next to the broker (mqtt://)",
            shared.settings.broker_url
        ));
    }
    let m = &shared.settings.file.mqtt;
    let mut o = MqttOptions::new(m.client_id.clone(), url.host, url.port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_session(true);
    o.set_max_packet_size(1 << 20, 1 << 20);
    o.set_request_channel_capacity(256);
    if let Some(u) = &m.username {
        o.set_credentials(
            u.clone(),
            shared.settings.mqtt_password.clone().unwrap_or_default(),
        );
    }
    Ok(o)
}

/// Runs the subscriber until `stop`; returns the client used to send commands.
pub fn start(shared: Arc<Shared>, stop: CancellationToken) -> Result<AsyncClient, String> {
    let (client, mut eventloop) = AsyncClient::new(options(&shared)?, 1024);
    let filter = format!("{}/#", shared.settings.file.mqtt.prefix);
    let c = client.clone();
    tokio::spawn(async move {
        let mut backoff = Duration::from_millis(500);
        let mut last_error = String::new();
        loop {
            let ev = tokio::select! {
                _ = stop.cancelled() => break,
                ev = eventloop.poll() => ev,
            };
            match ev {
                Ok(Event::Incoming(Packet::ConnAck(_))) => {
                    info!(broker = %shared.settings.broker_url, "connected to the broker");
                    shared.connected.store(true, Ordering::Relaxed);
                    backoff = Duration::from_millis(500);
                    last_error.clear();
                    if let Err(e) = c.subscribe(filter.clone(), QoS::AtLeastOnce).await {
                        warn!(error = %e, "cannot subscribe");
                    }
                }
                Ok(Event::Incoming(Packet::Publish(p))) => {
                    shared.take(&p.topic, &p.payload, p.retain, now_ms());
                }
                Ok(_) => {}
                Err(e) => {
                    shared.connected.store(false, Ordering::Relaxed);
                    let text = e.to_string();
                    // Log each kind of failure once, not every retry.
                    if text != last_error {
                        warn!(broker = %shared.settings.broker_url, error = %text, "broker connection lost; retrying");
                        last_error = text;
                    }
                    tokio::select! {
                        _ = stop.cancelled() => break,
                        _ = tokio::time::sleep(backoff) => {}
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
    /// the command waiting for it.
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
                        *m.counters.replies_refused.entry(why.as_str()).or_default() += 1;
                        if why.authentic() {
                            m.apply(topic, payload, retained, now);
                        } else {
                            m.counters.messages += 1;
                        }
                    }
                }
            }
            return;
        }
        // central ledger (issue 7): its own dedupe, off the receive path
        if let (Some(l), Some(rest)) = (
            &self.ledger,
            topic.strip_prefix(self.settings.file.mqtt.prefix.as_str()),
        ) {
            l.offer(rest, payload, now);
        }
        let applied = match self.model.lock() {
            Ok(mut m) => m.apply(topic, payload, retained, now),
            Err(_) => return,
        };
        match applied {
            Applied::Changed => {
                self.changed.send_modify(|v| *v += 1);
                if let Some(h) = &self.history {
                    // {prefix}/{site}/{gateway}/{device}/{telemetry|state|event}
                    let rest = topic
                        .strip_prefix(self.settings.file.mqtt.prefix.as_str())
                        .unwrap_or("");
                    if let [_, site, _, device, "telemetry" | "state" | "event"] =
                        rest.split('/').collect::<Vec<_>>()[..]
                    {
                        h.offer(site, device, payload);
                    }
                }
            }
            Applied::Malformed(why) => {
                warn!(%why, "malformed message ignored (counted in /api/health)");
            }
            Applied::Ignored => {}
        }
    }
}
