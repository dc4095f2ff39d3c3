//! The MQTT publisher: outbox → broker, a record leaving the outbox only
//! when the broker has acknowledged it. The only module that uses rumqttc.
//!
//! One task owns the client and its event loop and polls the loop without
//! pause. Per connection:
//!
//! 1. Connect (clean session, last will = `status` offline, retained, QoS 1),
//!    publish `status` online (retained, QoS 1), subscribe to `…/cmd/#`
//!    when commands are on. Status messages are per connection and not
//!    kept in the outbox: their `seq` is the last seq appended so far (not
//!    their own; the will's is 0), so consumers dedupe every topic by
//!    `seq` except `status`.
//! 2. Publish outbox records in `seq` order, at most `max_inflight`
//!    unacknowledged at a time. rumqttc reports each publish as it is
//!    written (`Outgoing::Publish(pkid)`, in the order they were queued),
//!    and the broker's `PubAck(pkid)` later; a QoS 1 record is removed
//!    when its PubAck arrives, a QoS 0 one as soon as it is written.
//!    `publish()` returning proves nothing and is not used as a receipt.
//! 3. On a clean stop: deliver what waits in the outbox (up to
//!    [`DRAIN_WAIT`]), publish `status` offline, disconnect.
//! 4. On any connection error: log why (a refused connection names its
//!    reason, e.g. bad user name or password), drop the client, wait with
//!    exponential backoff (`reconnect_min` … `reconnect_max`, jittered),
//!    and start again from 1 with the whole outbox: records whose PubAck was
//!    lost are sent again, so a consumer may see a `seq` twice (and drops
//!    it), never a gap.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use gateway_core::config::{MqttConfig, Secret, parse_broker_url};
use rumqttc::{
    AsyncClient, ConnectReturnCode, ConnectionError, Event, EventLoop, Incoming, LastWill,
    MqttOptions, Outgoing, QoS, TlsConfiguration, Transport,
};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::outbox::{OutboxReader, OutboxStats};
use crate::wire::{self, Topics};

/// How long a clean stop waits for the outbox to be delivered.
pub const DRAIN_WAIT: Duration = Duration::from_secs(3);

/// A command that arrived on `…/cmd/{op}`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CommandIn {
    /// The part of the topic after `cmd/`.
    pub op: String,
    /// The payload.
    pub payload: Vec<u8>,
}

/// Connection state and counters, for logs, `/healthz` and `/metrics`.
#[derive(Debug, Default)]
pub struct MqttStats {
    /// Connected to the broker now.
    pub connected: AtomicBool,
    /// Connections made since start.
    pub connects: AtomicU64,
    /// Connection errors since start.
    pub errors: AtomicU64,
    /// Sum of publish → PubAck latencies (µs), and how many.
    pub ack_latency_us: AtomicU64,
    /// How many PubAcks the latency sum covers.
    pub acks: AtomicU64,
}

/// Everything the publisher task needs.
#[derive(Debug)]
pub struct Publisher {
    /// The configuration section.
    pub mqtt: MqttConfig,
    /// Which gateway this is (only site and gateway are needed: the
    /// publisher does not keep a copy of the whole configuration).
    pub identity: wire::Identity,
    /// The outbox folder.
    pub data_dir: PathBuf,
    /// The folder TLS file names are relative to.
    pub base_dir: PathBuf,
    /// The password, if any.
    pub password: Option<Secret>,
    /// Subscribe to commands.
    pub commands: bool,
    /// The outbox reader.
    pub outbox: OutboxReader,
    /// Shared outbox counters.
    pub outbox_stats: Arc<OutboxStats>,
    /// Wakes the publisher when records were appended.
    pub wake: Arc<Notify>,
    /// When the gateway started (for `status`).
    pub started_ms: i64,
    /// Commands received go here.
    pub commands_tx: Option<mpsc::Sender<CommandIn>>,
    /// Counters.
    pub stats: Arc<MqttStats>,
    /// The last connection failure logged (repeats go to debug).
    pub last_error: Option<String>,
}

/// What the publisher tracks per connection.
#[derive(Debug, Default)]
struct Flight {
    /// Publishes queued to rumqttc, waiting for their `Outgoing::Publish`,
    /// in order: `Some(seq)` for outbox records, `None` for others.
    queued: VecDeque<(Option<u64>, u8, std::time::Instant)>,
    /// Written QoS 1 records waiting for their PubAck, by packet id.
    unacked: BTreeMap<u16, (Option<u64>, std::time::Instant)>,
    /// The highest seq handed to rumqttc on this connection.
    cursor: u64,
    /// Delivered seqs not yet removed from the outbox.
    done: Vec<u64>,
}

impl Flight {
    fn in_flight(&self) -> usize {
        self.queued.len() + self.unacked.len()
    }
}

fn qos(q: u8) -> QoS {
    if q == 0 {
        QoS::AtMostOnce
    } else {
        QoS::AtLeastOnce
    }
}

/// Why a connection ended, for people.
fn explain(e: &ConnectionError) -> String {
    match e {
        ConnectionError::ConnectionRefused(code) => match code {
            ConnectReturnCode::BadUserNamePassword => {
                "the broker refused the connection: bad user name or password (check [mqtt] username and password)".to_owned()
            }
            ConnectReturnCode::NotAuthorized => {
                "the broker refused the connection: not authorised, i.e. a wrong user name or password (Mosquitto answers so for both) or a user the broker does not allow (check [mqtt] username and password, and the broker's password file and ACL)".to_owned()
            }
            ConnectReturnCode::BadClientId => {
                "the broker refused the connection: client id rejected (set [mqtt] client_id)".to_owned()
            }
            ConnectReturnCode::ServiceUnavailable => {
                "the broker refused the connection: service unavailable".to_owned()
            }
            other => format!("the broker refused the connection: {other:?}"),
        },
        ConnectionError::Io(io) => format!("cannot reach the broker: {io}"),
        ConnectionError::Tls(t) => format!("TLS with the broker failed: {t}"),
        other => other.to_string(),
    }
}

impl Publisher {
    fn options(&self) -> Result<MqttOptions, String> {
        let url = parse_broker_url(&self.mqtt.url)?;
        let cfg = &self.identity;
        let topics = Topics::new(&self.mqtt.prefix, &cfg.site, &cfg.gateway);
        let mut o = MqttOptions::new(
            self.mqtt.client_id_for(&cfg.site, &cfg.gateway),
            url.host.clone(),
            url.port,
        );
        o.set_keep_alive(self.mqtt.keep_alive.get().max(Duration::from_secs(5)));
        o.set_clean_session(true);
        o.set_inflight(self.mqtt.max_inflight.max(1));
        o.set_request_channel_capacity(usize::from(self.mqtt.max_inflight.max(1)) + 16);
        o.set_max_packet_size(1 << 20, 1 << 20);
        let will = wire::with_seq(
            wire::status(cfg, false, self.started_ms, self.started_ms),
            0,
        );
        o.set_last_will(LastWill::new(topics.status(), will, QoS::AtLeastOnce, true));
        if let Some(user) = &self.mqtt.username {
            o.set_credentials(
                user.clone(),
                self.password
                    .as_ref()
                    .map(|p| p.expose().to_owned())
                    .unwrap_or_default(),
            );
        }
        if url.tls {
            let read = |f: &str| {
                let p = self.base_dir.join(f);
                std::fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
            };
            let transport = match &self.mqtt.ca_file {
                Some(ca) => {
                    let client_auth =
                        match (&self.mqtt.client_cert_file, &self.mqtt.client_key_file) {
                            (Some(c), Some(k)) => Some((read(c)?, read(k)?)),
                            _ => None,
                        };
                    Transport::tls_with_config(TlsConfiguration::Simple {
                        ca: read(ca)?,
                        alpn: None,
                        client_auth,
                    })
                }
                None => Transport::tls_with_default_config(),
            };
            o.set_transport(transport);
        }
        Ok(o)
    }

    /// Runs until `shutdown`: connects, publishes, reconnects.
    pub async fn run(mut self, shutdown: CancellationToken) {
        // rustls needs a process-wide crypto provider; ring is the one built
        // in. An error means one is installed already, which is fine.
        let _ = rustls::crypto::ring::default_provider().install_default();
        let cfg = self.identity.clone();
        let topics = Topics::new(&self.mqtt.prefix, &cfg.site, &cfg.gateway);
        let mut backoff = self.mqtt.reconnect_min.get();
        loop {
            let opts = match self.options() {
                Ok(o) => o,
                Err(e) => {
                    error!(error = %e, "MQTT settings cannot be used; not publishing");
                    shutdown.cancelled().await;
                    return;
                }
            };
            let (client, eventloop) =
                AsyncClient::new(opts, usize::from(self.mqtt.max_inflight) + 16);
            let clean = match self
                .connection(&client, eventloop, &topics, &shutdown)
                .await
            {
                Some(c) => c,
                None => return, // stopped
            };
            self.stats.connected.store(false, Ordering::Relaxed);
            if clean {
                backoff = self.mqtt.reconnect_min.get();
            }
            let jitter = rand::random::<f64>() * 0.3 + 0.85;
            let wait = backoff.mul_f64(jitter);
            debug!(
                wait_ms = wait.as_millis() as u64,
                "reconnecting to the broker after"
            );
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            backoff = (backoff * 2).min(self.mqtt.reconnect_max.get());
        }
    }

    /// One connection; returns whether it had been established, or `None`
    /// when `shutdown` ended it (after a last `status` offline and a clean
    /// disconnect, waited for up to 2 s).
    async fn connection(
        &mut self,
        client: &AsyncClient,
        mut el: EventLoop,
        topics: &Topics,
        shutdown: &CancellationToken,
    ) -> Option<bool> {
        let mut flight = Flight::default();
        let mut connected = false;
        let mut flush = tokio::time::interval(Duration::from_millis(100));
        // Connecting is not cancel-safe (a dropped poll drops the half-made
        // connection and the next poll makes another, which makes the broker
        // close the first and send its will): poll alone until the ConnAck.
        let first = tokio::select! {
            _ = shutdown.cancelled() => return None,
            ev = el.poll() => ev,
        };
        match first {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                connected = true;
                self.on_connected(client, &mut flight, topics);
            }
            Ok(other) => debug!(event = ?other, "unexpected first MQTT event"),
            Err(e) => {
                self.stats.errors.fetch_add(1, Ordering::Relaxed);
                let why = explain(&e);
                // Said once per kind of failure, not at every retry.
                if self.last_error.as_deref() == Some(why.as_str()) {
                    debug!(broker = %self.mqtt.url, error = %why, "still cannot connect to the MQTT broker");
                } else {
                    error!(broker = %self.mqtt.url, error = %why, "cannot connect to the MQTT broker; retrying with backoff");
                    self.last_error = Some(why);
                }
                return Some(false);
            }
        }
        loop {
            tokio::select! {
                _ = shutdown.cancelled() => {
                    if connected {
                        // A clean stop first delivers what waits in the
                        // outbox (up to DRAIN_WAIT; the rest is sent at the
                        // next start).
                        let drain_until = tokio::time::Instant::now() + DRAIN_WAIT;
                        self.fill(client, &mut flight);
                        while flight.in_flight() > 0
                            || self.outbox.after(flight.cursor, 1).is_ok_and(|r| !r.is_empty())
                        {
                            match tokio::time::timeout_at(drain_until, el.poll()).await {
                                Ok(Ok(Event::Outgoing(Outgoing::Publish(pkid)))) => self.on_written(pkid, &mut flight),
                                Ok(Ok(Event::Incoming(Incoming::PubAck(ack)))) => self.on_acked(ack.pkid, &mut flight),
                                Ok(Ok(_)) => {}
                                Ok(Err(_)) | Err(_) => break,
                            }
                            self.fill(client, &mut flight);
                        }
                    }
                    self.remove_done(&mut flight);
                    if connected {
                        let _ = client.try_publish(topics.status(), QoS::AtLeastOnce, true, self.status_payload(false));
                        let _ = client.try_disconnect();
                        let deadline = tokio::time::Instant::now() + Duration::from_secs(2);
                        loop {
                            match tokio::time::timeout_at(deadline, el.poll()).await {
                                Ok(Ok(Event::Incoming(Incoming::PubAck(ack)))) => {
                                    self.on_acked(ack.pkid, &mut flight);
                                }
                                // After the DISCONNECT is queued, keep polling so that
                                // it is flushed; the broker then closes the socket.
                                Ok(Err(_)) | Err(_) => break,
                                Ok(Ok(_)) => {}
                            }
                        }
                        self.remove_done(&mut flight);
                        info!("disconnected from the MQTT broker");
                    }
                    self.stats.connected.store(false, Ordering::Relaxed);
                    return None;
                }
                ev = el.poll() => match ev {
                    Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                        connected = true;
                        self.on_connected(client, &mut flight, topics);
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        self.on_written(pkid, &mut flight);
                        self.fill(client, &mut flight);
                    }
                    Ok(Event::Incoming(Incoming::PubAck(ack))) => {
                        self.on_acked(ack.pkid, &mut flight);
                        if flight.done.len() >= 64 { self.remove_done(&mut flight); }
                        self.fill(client, &mut flight);
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => {
                        if let (Some(tx), Some(op)) = (&self.commands_tx, topics.command_op(&p.topic)) {
                            let cmd = CommandIn { op: op.to_owned(), payload: p.payload.to_vec() };
                            if tx.try_send(cmd).is_err() {
                                warn!(topic = %p.topic, "command dropped: too many commands waiting");
                            }
                        }
                    }
                    Ok(_) => {}
                    Err(e) => {
                        self.remove_done(&mut flight);
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        if connected {
                            warn!(error = %explain(&e), unacked = flight.in_flight(), "lost the MQTT connection; unacknowledged messages will be sent again");
                        } else {
                            error!(broker = %self.mqtt.url, error = %explain(&e), "cannot connect to the MQTT broker");
                        }
                        return Some(connected);
                    }
                },
                _ = self.wake.notified() => {
                    if connected { self.fill(client, &mut flight); }
                }
                _ = flush.tick() => {
                    self.remove_done(&mut flight);
                    if connected { self.fill(client, &mut flight); }
                }
            }
        }
    }

    /// A `status` message now; its seq is the last one appended (see the
    /// module doc).
    fn status_payload(&self, online: bool) -> Vec<u8> {
        let seq = self.outbox_stats.last_seq.load(Ordering::Relaxed);
        wire::with_seq(
            wire::status(
                &self.identity,
                online,
                self.started_ms,
                crate::run::unix_now_ms(),
            ),
            seq,
        )
    }

    /// Just connected: status online, the command subscription, the outbox.
    fn on_connected(&mut self, client: &AsyncClient, flight: &mut Flight, topics: &Topics) {
        self.last_error = None;
        self.stats.connected.store(true, Ordering::Relaxed);
        self.stats.connects.fetch_add(1, Ordering::Relaxed);
        info!(broker = %self.mqtt.url, waiting = self.outbox_stats.records.load(Ordering::Relaxed), "connected to the MQTT broker");
        let payload = self.status_payload(true);
        if client
            .try_publish(topics.status(), QoS::AtLeastOnce, true, payload)
            .is_ok()
        {
            flight
                .queued
                .push_back((None, 1, std::time::Instant::now()));
        }
        if self.commands
            && client
                .try_subscribe(topics.commands(), QoS::AtLeastOnce)
                .is_err()
        {
            warn!("cannot subscribe to commands");
        }
        self.fill(client, flight);
    }

    /// rumqttc wrote a publish (they are reported in the order queued): a
    /// QoS 0 record is done, a QoS 1 one waits for its PubAck.
    fn on_written(&mut self, pkid: u16, flight: &mut Flight) {
        if let Some((seq, q, at)) = flight.queued.pop_front() {
            if q == 0 {
                flight.done.extend(seq);
            } else {
                flight.unacked.insert(pkid, (seq, at));
            }
        }
    }

    /// The broker acknowledged packet `pkid`: its record is done.
    fn on_acked(&mut self, pkid: u16, flight: &mut Flight) {
        if let Some((seq, at)) = flight.unacked.remove(&pkid) {
            flight.done.extend(seq);
            self.stats
                .ack_latency_us
                .fetch_add(at.elapsed().as_micros() as u64, Ordering::Relaxed);
            self.stats.acks.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Hands records after the cursor to rumqttc, up to the window.
    fn fill(&mut self, client: &AsyncClient, flight: &mut Flight) {
        let window = usize::from(self.mqtt.max_inflight.max(1));
        if flight.in_flight() >= window {
            return;
        }
        let want = window - flight.in_flight();
        let records = match self.outbox.after(flight.cursor, want) {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "cannot read the outbox");
                return;
            }
        };
        for r in records {
            let seq = r.seq;
            match client.try_publish(r.topic, qos(r.qos), r.retain, r.payload) {
                Ok(()) => {
                    flight
                        .queued
                        .push_back((Some(seq), r.qos, std::time::Instant::now()));
                    flight.cursor = seq;
                }
                Err(_) => break, // the request channel is full: next time
            }
        }
    }

    fn remove_done(&mut self, flight: &mut Flight) {
        if flight.done.is_empty() {
            return;
        }
        match self.outbox.remove(&flight.done) {
            Ok(()) => flight.done.clear(),
            Err(e) => error!(error = %e, "cannot remove delivered records from the outbox"),
        }
    }
}
