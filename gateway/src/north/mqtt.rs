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
//!
//! The client speaks MQTT 5 for its limits: the CONNECT carries `[mqtt]
//! max_packet_size` as Maximum Packet Size, so a compliant broker
//! (Mosquitto 2) drops, for this client only, any message that would be
//! bigger instead of sending it; MQTT 3.1.1 has no such field and a client
//! can only disconnect, receive the (retained) message again at once and
//! disconnect again. The command subscription asks for no retained
//! messages (a command is never legitimately retained), and a command
//! still delivered with the retain flag is ignored and counted. A packet
//! over the limit that a non-compliant broker sends anyway ends the
//! connection (rumqttc cannot skip it); it is logged, counted, and the
//! reconnection then waits with growing backoff as after a failure, never
//! in a tight loop. A record bigger than the broker's own Maximum Packet
//! Size (in its CONNACK) could never be delivered: it is dropped from the
//! outbox with an error and counted, instead of cutting the connection at
//! every attempt. A PubAck with a failure reason (e.g. not authorised by
//! the ACL) ends the record's journey as with MQTT 3.1.1, where the broker
//! acknowledges and drops it; it is logged and counted.
//!
//! 4. On any connection error: log why (a refused connection names its
//!    reason, e.g. bad user name or password), drop the client, wait with
//!    exponential backoff (`reconnect_min` … `reconnect_max`, jittered),
//!    and start again from 1 with the whole outbox: records whose PubAck was
//!    lost are sent again, so a consumer may see a `seq` twice (and drops
//!    it), never a gap. During the wait a bare TCP connect probes the
//!    broker's port about once a second; when the port opens again after it
//!    was seen closed, the wait ends and the next attempt starts at once
//!    ([`probe`]): the gateway is back within about a second of its broker
//!    whatever the outage's length, while full attempts keep the backoff's
//!    pace.

use std::collections::{BTreeMap, VecDeque};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use std::path::Path;

use bytes::Bytes;
use gateway_core::config::{MqttConfig, Secret, parse_broker_url};
use rumqttc::v5::mqttbytes::v5::{
    ConnAck, ConnectReturnCode, Filter, LastWill, PubAckReason, Publish, RetainForwardRule,
};
use rumqttc::v5::mqttbytes::{self, QoS};
use rumqttc::v5::{
    AsyncClient, ConnectionError, Event, EventLoop, Incoming, MqttOptions, StateError,
};
use rumqttc::{Outgoing, TlsConfiguration, Transport};
use tokio::sync::{Notify, mpsc};
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::outbox::{OutboxReader, OutboxStats};
use super::probe;
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
    /// Connections ended by a packet over `[mqtt] max_packet_size` (a
    /// broker that ignores the MQTT 5 Maximum Packet Size).
    pub oversized: AtomicU64,
    /// Commands ignored because they came with the retain flag.
    pub retained_commands: AtomicU64,
    /// Outbox records dropped as bigger than the broker's Maximum Packet Size.
    pub too_large: AtomicU64,
    /// PubAcks with a failure reason (the broker refused the message).
    pub refused: AtomicU64,
    /// Commands refused before anything was done, by reason (indexed by
    /// `RejectReason::index`).
    pub commands_rejected: [AtomicU64; 8],
    /// Verified `write` commands refused before the bus, by reason (indexed
    /// by `gateway_core::write::Refusal::index`).
    pub writes_refused: [AtomicU64; 9],
    /// Writes that went to a bus, by outcome (ok, mismatch, device_error,
    /// timeout).
    pub write_results: [AtomicU64; 4],
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
    /// The broker's Maximum Packet Size (from its CONNACK), if any.
    broker_max: Option<u32>,
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

/// Whether a connection ended because the broker sent a packet over our
/// Maximum Packet Size: `(its size, the limit)`.
fn oversized(e: &ConnectionError) -> Option<(usize, u32)> {
    match e {
        ConnectionError::MqttState(StateError::Deserialization(
            mqttbytes::Error::PayloadSizeLimitExceeded { pkt_size, max },
        )) => Some((*pkt_size, *max)),
        _ => None,
    }
}

/// How a connection ended (when not by a stop).
#[derive(Debug, Clone, Copy)]
struct Ended {
    /// It had been established (a CONNACK came): the backoff starts again
    /// from `reconnect_min`.
    established: bool,
    /// No TCP connection could be opened (see [`port_closed`]).
    closed: bool,
}

/// Whether `e` says the broker's port could not be reached at all (refused,
/// host or network unreachable), as opposed to an MQTT or TLS failure on an
/// open port: then a probe that gets through means the broker is back
/// ([`probe`]).
pub fn port_closed(e: &ConnectionError) -> bool {
    use std::io::ErrorKind;
    matches!(
        e,
        ConnectionError::Io(io) if matches!(
            io.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::HostUnreachable
                | ErrorKind::NetworkUnreachable
                | ErrorKind::AddrNotAvailable
        )
    )
}

/// Why a connection ended, for people.
fn explain(e: &ConnectionError) -> String {
    if let Some((size, max)) = oversized(e) {
        return format!(
            "the broker sent a packet of {size} bytes, over [mqtt] max_packet_size ({max} bytes), \
             although this client announced that limit (MQTT 5 Maximum Packet Size); \
             set max_packet_size on the broker below the clients' limit (deploy/mosquitto/mosquitto.conf)"
        );
    }
    match e {
        ConnectionError::ConnectionRefused(code) => match code {
            ConnectReturnCode::BadUserNamePassword => {
                "the broker refused the connection: bad user name or password (check [mqtt] username and password)".to_owned()
            }
            ConnectReturnCode::NotAuthorized => {
                "the broker refused the connection: not authorised, i.e. a wrong user name or password (Mosquitto answers so for both) or a user the broker does not allow (check [mqtt] username and password, and the broker's password file and ACL)".to_owned()
            }
            ConnectReturnCode::BadClientId | ConnectReturnCode::ClientIdentifierNotValid => {
                "the broker refused the connection: client id rejected (set [mqtt] client_id)".to_owned()
            }
            ConnectReturnCode::ServiceUnavailable | ConnectReturnCode::ServerUnavailable => {
                "the broker refused the connection: service unavailable".to_owned()
            }
            ConnectReturnCode::UnsupportedProtocolVersion
            | ConnectReturnCode::RefusedProtocolVersion => {
                "the broker refused the connection: it does not speak MQTT 5 (use Mosquitto 2 or another MQTT 5 broker)".to_owned()
            }
            other => format!("the broker refused the connection: {other:?}"),
        },
        ConnectionError::Io(io) => format!("cannot reach the broker: {io}"),
        ConnectionError::Tls(t) => format!("TLS with the broker failed: {t}"),
        other => other.to_string(),
    }
}

/// The TLS transport of an `mqtts://` broker: trusted roots from `ca_file`
/// (PEM, relative to `base_dir`), else the system's; a client certificate
/// and key when both are given. Shared by the gateway and the dashboard.
pub fn tls_transport(
    base_dir: &Path,
    ca_file: Option<&str>,
    client_auth: Option<(&str, &str)>,
) -> Result<Transport, String> {
    let read = |f: &str| {
        let p = base_dir.join(f);
        std::fs::read(&p).map_err(|e| format!("cannot read {}: {e}", p.display()))
    };
    Ok(match ca_file {
        Some(ca) => {
            let client_auth = match client_auth {
                Some((c, k)) => Some((read(c)?, read(k)?)),
                None => None,
            };
            Transport::tls_with_config(TlsConfiguration::Simple {
                ca: read(ca)?,
                alpn: None,
                client_auth,
            })
        }
        None => Transport::tls_with_default_config(),
    })
}

/// The broker's Maximum Packet Size from its CONNACK, if it gave one.
fn broker_max(ack: &ConnAck) -> Option<u32> {
    ack.properties.as_ref().and_then(|p| p.max_packet_size)
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
        o.set_clean_start(true);
        o.set_outgoing_inflight_upper_limit(self.mqtt.max_inflight.max(1));
        o.set_request_channel_capacity(usize::from(self.mqtt.max_inflight.max(1)) + 16);
        o.set_max_packet_size(Some(self.mqtt.max_packet_bytes()));
        let will = wire::with_seq(
            wire::status(cfg, false, self.started_ms, self.started_ms),
            0,
        );
        o.set_last_will(LastWill::new(
            topics.status(),
            will,
            QoS::AtLeastOnce,
            true,
            None,
        ));
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
            let client_auth = match (&self.mqtt.client_cert_file, &self.mqtt.client_key_file) {
                (Some(c), Some(k)) => Some((c.as_str(), k.as_str())),
                _ => None,
            };
            o.set_transport(tls_transport(
                &self.base_dir,
                self.mqtt.ca_file.as_deref(),
                client_auth,
            )?);
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
            let ended = match self
                .connection(&client, eventloop, &topics, &shutdown)
                .await
            {
                Some(c) => c,
                None => return, // stopped
            };
            self.stats.connected.store(false, Ordering::Relaxed);
            if ended.established {
                backoff = self.mqtt.reconnect_min.get();
            }
            let jitter = rand::random::<f64>() * 0.3 + 0.85;
            let wait = backoff.mul_f64(jitter);
            debug!(
                wait_ms = wait.as_millis() as u64,
                "reconnecting to the broker after"
            );
            // The URL parsed in `options()` above.
            let (host, port) = match parse_broker_url(&self.mqtt.url) {
                Ok(u) => (u.host, u.port),
                Err(_) => return,
            };
            match probe::wait_for_broker(&host, port, wait, ended.closed, &shutdown).await {
                probe::Wake::Stopped => return,
                probe::Wake::Back => {
                    info!(broker = %self.mqtt.url, "the broker accepts connections again; reconnecting now");
                }
                probe::Wake::Elapsed => {}
            }
            backoff = (backoff * 2).min(self.mqtt.reconnect_max.get());
        }
    }

    /// One connection; returns how it ended, or `None`
    /// when `shutdown` ended it (after a last `status` offline and a clean
    /// disconnect, waited for up to 2 s).
    async fn connection(
        &mut self,
        client: &AsyncClient,
        mut el: EventLoop,
        topics: &Topics,
        shutdown: &CancellationToken,
    ) -> Option<Ended> {
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
            Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                connected = true;
                flight.broker_max = broker_max(&ack);
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
                return Some(Ended {
                    established: false,
                    closed: port_closed(&e),
                });
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
                                Ok(Ok(Event::Incoming(Incoming::PubAck(ack)))) => self.on_acked(ack.pkid, ack.reason, &mut flight),
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
                                    self.on_acked(ack.pkid, ack.reason, &mut flight);
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
                    Ok(Event::Incoming(Incoming::ConnAck(ack))) => {
                        connected = true;
                        flight.broker_max = broker_max(&ack);
                        self.on_connected(client, &mut flight, topics);
                    }
                    Ok(Event::Outgoing(Outgoing::Publish(pkid))) => {
                        self.on_written(pkid, &mut flight);
                        self.fill(client, &mut flight);
                    }
                    Ok(Event::Incoming(Incoming::PubAck(ack))) => {
                        self.on_acked(ack.pkid, ack.reason, &mut flight);
                        if flight.done.len() >= 64 { self.remove_done(&mut flight); }
                        self.fill(client, &mut flight);
                    }
                    Ok(Event::Incoming(Incoming::Publish(p))) => self.on_publish(&p, topics),
                    Ok(_) => {}
                    Err(e) => {
                        self.remove_done(&mut flight);
                        self.stats.errors.fetch_add(1, Ordering::Relaxed);
                        let too_big = oversized(&e).is_some();
                        if too_big {
                            self.stats.oversized.fetch_add(1, Ordering::Relaxed);
                            // Not a healthy connection: reconnect with
                            // growing backoff, as after a failure.
                            error!(error = %explain(&e), unacked = flight.in_flight(), "lost the MQTT connection to an oversized message; reconnecting with backoff");
                            return Some(Ended { established: false, closed: false });
                        }
                        if connected {
                            warn!(error = %explain(&e), unacked = flight.in_flight(), "lost the MQTT connection; unacknowledged messages will be sent again");
                        } else {
                            error!(broker = %self.mqtt.url, error = %explain(&e), "cannot connect to the MQTT broker");
                        }
                        return Some(Ended {
                            established: connected,
                            closed: !connected && port_closed(&e),
                        });
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

    /// A message from the broker: a command goes to the command task,
    /// unless it came with the retain flag (commands are never retained; a
    /// retained one is an attack or a mistake, and would be replayed at every
    /// reconnection).
    fn on_publish(&self, p: &Publish, topics: &Topics) {
        let Some(tx) = &self.commands_tx else { return };
        let Ok(topic) = std::str::from_utf8(&p.topic) else {
            return;
        };
        let Some(op) = topics.command_op(topic) else {
            return;
        };
        if p.retain {
            self.stats.retained_commands.fetch_add(1, Ordering::Relaxed);
            warn!(%topic, "retained command ignored (commands are never retained; counted in /metrics)");
            return;
        }
        let cmd = CommandIn {
            op: op.to_owned(),
            payload: p.payload.to_vec(),
        };
        if tx.try_send(cmd).is_err() {
            warn!(%topic, "command dropped: too many commands waiting");
        }
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
        // Retained messages are not sent at subscription: a command is
        // never retained.
        let filter = Filter {
            retain_forward_rule: RetainForwardRule::Never,
            ..Filter::new(topics.commands(), QoS::AtLeastOnce)
        };
        if self.commands && client.try_subscribe_many([filter]).is_err() {
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

    /// The broker acknowledged packet `pkid`: its record is done. A failure
    /// reason (MQTT 5) is logged and counted; the record is done all the
    /// same, as with MQTT 3.1.1 where the broker acknowledges what it drops:
    /// sending it again would be refused again.
    fn on_acked(&mut self, pkid: u16, reason: PubAckReason, flight: &mut Flight) {
        if !matches!(
            reason,
            PubAckReason::Success | PubAckReason::NoMatchingSubscribers
        ) {
            self.stats.refused.fetch_add(1, Ordering::Relaxed);
            warn!(
                ?reason,
                "the broker refused a message (check its ACL for this gateway's user)"
            );
        }
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
        // The live path from memory; the outbox is read when the live
        // tail does not hold everything after the cursor (a new
        // connection's replay, a tail that overflowed): see `live`.
        let mut records = Vec::new();
        if !self
            .outbox_stats
            .live
            .take(flight.cursor, want, &mut records)
        {
            records = match self.outbox.after(flight.cursor, want) {
                Ok(r) => r,
                Err(e) => {
                    error!(error = %e, "cannot read the outbox");
                    return;
                }
            };
        }
        for r in records {
            let seq = r.seq;
            let payload = Bytes::from(r.payload);
            if let Some(max) = flight.broker_max {
                let size = Publish::new(r.topic.as_str(), qos(r.qos), payload.clone(), None).size();
                if size > max as usize {
                    // It could never be delivered: the broker would cut the
                    // connection at every attempt.
                    self.stats.too_large.fetch_add(1, Ordering::Relaxed);
                    error!(seq, topic = %r.topic, size, broker_max = max, "outbox record dropped: bigger than the broker's maximum packet size");
                    flight.done.push(seq);
                    flight.cursor = seq;
                    continue;
                }
            }
            match client.try_publish(r.topic, qos(r.qos), r.retain, payload) {
                Ok(()) => {
                    flight
                        .queued
                        .push_back((Some(seq), r.qos, std::time::Instant::now()));
                    flight.cursor = seq;
                }
                Err(_) => {
                    // The request channel is full: next time. Taken from
                    // the live tail, the rest is read from the outbox
                    // then (the cursor is below the tail's start now).
                    break;
                }
            }
        }
    }

    fn remove_done(&mut self, flight: &mut Flight) {
        if flight.done.is_empty() {
            return;
        }
        // A failure is logged by the outbox once, not at every retry; the
        // seqs are kept for the next try.
        if self.outbox.remove(&flight.done).is_ok() {
            flight.done.clear();
        }
    }
}

/// One request over MQTT, for the command line (`gateway write`): connects
/// to the broker of `mqtt` as `client_id` (credentials and TLS as the
/// gateway's own), subscribes to `reply_topic`, publishes `payload` on
/// `topic` once the subscription is acknowledged, and returns the first
/// message on `reply_topic` that `accept` takes. `Err` says what failed:
/// the connection, or no accepted reply within `wait`.
#[allow(clippy::too_many_arguments)]
pub async fn request(
    mqtt: &MqttConfig,
    password: Option<&Secret>,
    base_dir: &Path,
    client_id: &str,
    topic: &str,
    payload: Vec<u8>,
    reply_topic: &str,
    wait: Duration,
    accept: &dyn Fn(&[u8]) -> bool,
) -> Result<Vec<u8>, String> {
    let url = parse_broker_url(&mqtt.url)?;
    let mut o = MqttOptions::new(client_id, url.host.clone(), url.port);
    o.set_keep_alive(Duration::from_secs(30));
    o.set_clean_start(true);
    if let Some(user) = &mqtt.username {
        o.set_credentials(
            user.clone(),
            password.map(|p| p.expose().to_owned()).unwrap_or_default(),
        );
    }
    if url.tls {
        let client_auth = match (&mqtt.client_cert_file, &mqtt.client_key_file) {
            (Some(c), Some(k)) => Some((c.as_str(), k.as_str())),
            _ => None,
        };
        o.set_transport(tls_transport(
            base_dir,
            mqtt.ca_file.as_deref(),
            client_auth,
        )?);
    }
    let (client, mut events) = AsyncClient::new(o, 16);
    let deadline = tokio::time::Instant::now() + wait;
    let mut payload = Some(payload);
    loop {
        let event = tokio::time::timeout_at(deadline, events.poll())
            .await
            .map_err(|_| {
                format!(
                    "no reply on {reply_topic} within {} s; is the gateway running with [commands] on?",
                    wait.as_secs()
                )
            })?;
        match event {
            Ok(Event::Incoming(Incoming::ConnAck(_))) => {
                client
                    .subscribe(reply_topic, QoS::AtLeastOnce)
                    .await
                    .map_err(|e| format!("cannot subscribe to {reply_topic}: {e}"))?;
            }
            Ok(Event::Incoming(Incoming::SubAck(_))) => {
                if let Some(p) = payload.take() {
                    client
                        .publish(topic, QoS::AtLeastOnce, false, p)
                        .await
                        .map_err(|e| format!("cannot publish on {topic}: {e}"))?;
                }
            }
            Ok(Event::Incoming(Incoming::Publish(p))) => {
                if p.topic.as_ref() == reply_topic.as_bytes() && accept(&p.payload) {
                    let _ = client.disconnect().await;
                    return Ok(p.payload.to_vec());
                }
            }
            Ok(_) => {}
            Err(e) => {
                return Err(format!(
                    "MQTT broker {}: {}",
                    redact(&mqtt.url),
                    explain(&e)
                ));
            }
        }
    }
}

/// The broker URL as it may be printed (no credentials).
fn redact(url: &str) -> String {
    gateway_core::config::redact_url(url)
}
