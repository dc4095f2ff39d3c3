//! The north side (issue #4): what the gateway tells the world.
//!
//! ```text
//!  run loop ── polls ──▶ North (report by exception, JSON, seq) ──append──▶ outbox.db
//!      └──── CoreEvents ─▶        (events, alarms, tickets, states)            │
//!                                                                              ▼
//!                                     MQTT publisher task ──QoS 1──▶ broker ──PubAck──▶ delete
//! ```
//!
//! [`North`] runs on the run loop (synchronous, like the engine): it turns
//! polls and core events into messages ([`crate::wire`]), buffers them and
//! appends them to the outbox in one transaction per [`North::flush`]
//! (every 100 ms), then wakes the publisher. The publisher
//! ([`mqtt::Publisher`]) is its own task with its own outbox connection.

pub mod commands;
pub mod dead_letters;
pub mod influx_feed;
pub mod mqtt;
pub mod outbox;
pub mod probe;

use std::sync::Arc;

use gateway_core::config::{MqttConfig, Resolved};
use gateway_core::model::PollOutcome;
use gateway_core::state::UnixMs;
use tokio::sync::Notify;

use crate::engine::CoreEvent;
use crate::wire::{self, Body, StateView, Topics};
use outbox::{Kind, NewRecord, OutboxError, OutboxStats, OutboxWriter};

/// How often buffered messages are appended to the outbox.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);

/// A message waiting for its seq.
#[derive(Debug)]
struct Msg {
    topic: String,
    body: Body,
    qos: u8,
    retain: bool,
    kind: Kind,
}

/// The writing half of the north side; see the module doc.
#[derive(Debug)]
pub struct North {
    writer: OutboxWriter,
    topics: Topics,
    telemetry_qos: u8,
    buffer: Vec<Msg>,
    /// Serialised records a failed append left behind, in seq order.
    unwritten: Vec<NewRecord>,
    wake: Arc<Notify>,
}

impl North {
    /// Over an open outbox, for `cfg` and its `[mqtt]` section.
    pub fn new(
        cfg: &Resolved,
        mqtt: &MqttConfig,
        writer: OutboxWriter,
        wake: Arc<Notify>,
    ) -> North {
        North {
            writer,
            topics: Topics::new(&mqtt.prefix, &cfg.site, &cfg.gateway),
            telemetry_qos: mqtt.telemetry_qos.as_u8(),
            buffer: Vec::new(),
            unwritten: Vec::new(),
            wake,
        }
    }

    /// The outbox counters.
    pub fn stats(&self) -> Arc<OutboxStats> {
        self.writer.stats()
    }

    fn push(&mut self, topic: String, body: Body, qos: u8, retain: bool, kind: Kind) {
        self.buffer.push(Msg {
            topic,
            body,
            qos,
            retain,
            kind,
        });
    }

    /// Telemetry of a poll: the samples `which` (indices into
    /// `o.samples`, from report by exception), or all when `None`. Nothing
    /// is published for an empty selection.
    pub fn on_poll(&mut self, cfg: &Resolved, o: &PollOutcome, which: Option<&[usize]>) {
        if which.is_some_and(<[usize]>::is_empty) {
            return;
        }
        let Some(dev) = cfg.devices.get(o.device) else {
            return;
        };
        let body = wire::telemetry(dev, o, which);
        self.push(
            self.topics.telemetry(&dev.id),
            body,
            self.telemetry_qos,
            false,
            Kind::Telemetry,
        );
    }

    /// A stored core event: transitions and threshold crossings on the
    /// device's `event` topic, alarms on `alarm`, tickets (retained) on
    /// `tickets/{id}`.
    pub fn on_core(&mut self, ev: &CoreEvent, now_ms: UnixMs) {
        match ev {
            CoreEvent::Transition(t) => {
                self.push(
                    self.topics.event(&t.device),
                    wire::transition(t, now_ms),
                    1,
                    false,
                    Kind::Other,
                );
            }
            CoreEvent::Threshold {
                device,
                crossing,
                at_ms,
            } => self.push(
                self.topics.event(device),
                wire::threshold(device, crossing, *at_ms, now_ms),
                1,
                false,
                Kind::Other,
            ),
            CoreEvent::Alarm(a) => {
                self.push(
                    self.topics.alarm(),
                    wire::alarm(a, now_ms),
                    1,
                    false,
                    Kind::Other,
                );
            }
            CoreEvent::Ticket(te) => self.push(
                self.topics.ticket(te.ticket.id),
                wire::ticket(te, now_ms),
                1,
                true,
                Kind::Other,
            ),
        }
    }

    /// An on-call alert (`…/alert`, issue #6).
    pub fn on_alert(&mut self, body: Body) {
        self.push(self.topics.alert(), body, 1, false, Kind::Other);
    }

    /// A reply to a command (`…/cmd/reply`).
    pub fn on_reply(&mut self, body: Body) {
        self.push(self.topics.reply(), body, 1, false, Kind::Other);
    }

    /// A device's retained state.
    pub fn on_state(&mut self, v: &StateView, now_ms: UnixMs) {
        self.push(
            self.topics.state(&v.device),
            wire::state(v, now_ms),
            1,
            true,
            Kind::Other,
        );
    }

    /// Appends what is buffered (one transaction) and wakes the publisher.
    /// On error nothing is lost: the records (with the seqs they were
    /// given, which the outbox has not handed out) are tried again first on
    /// the next call.
    pub fn flush(&mut self) -> Result<(), OutboxError> {
        if self.buffer.is_empty() && self.unwritten.is_empty() {
            return Ok(());
        }
        let first = self.writer.next_seq() + self.unwritten.len() as u64;
        for (i, m) in std::mem::take(&mut self.buffer).into_iter().enumerate() {
            self.unwritten.push(NewRecord {
                payload: wire::with_seq(m.body, first + i as u64),
                topic: m.topic,
                qos: m.qos,
                retain: m.retain,
                kind: m.kind,
            });
        }
        let records = std::mem::take(&mut self.unwritten);
        match self.writer.append(records.iter().cloned(), |_, r| r) {
            Ok(_) => {
                self.wake.notify_one();
                Ok(())
            }
            Err(e) => {
                self.unwritten = records;
                Err(e)
            }
        }
    }

    /// Messages buffered or waiting to be written.
    pub fn waiting(&self) -> usize {
        self.buffer.len() + self.unwritten.len()
    }
}
