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
//! (every 100 ms), hands the stored records to the publisher's live tail
//! ([`live`]: the live path is served from memory, the outbox is read back
//! only on replay), then wakes the publisher. Anything but telemetry
//! (alarms, states, events, tickets, alerts, replies) is written through at
//! once: the run loop flushes right after the poll or tick that made it
//! ([`North::urgent`]), so an alarm never waits for the flush tick.
//! Telemetry is encoded straight into bytes ([`wire::TelemetryEncoder`]).
//!
//! When the outbox refuses appends (a full disk), the numbered messages
//! wait in a bounded backlog ([`MAX_BACKLOG`] messages, [`MAX_BACKLOG_BYTES`]),
//! tried again every [`RETRY_EVERY`] in chunks of [`APPEND_CHUNK`]. Over the
//! bound the oldest telemetry goes first, then (only if the disk stays full
//! that long) the oldest other messages, each counted; their seqs are never
//! handed out again — they are reserved in the outbox when the trouble
//! starts — so consumers see a gap. One log line when appends start
//! failing, one when they work again. The publisher
//! ([`mqtt::Publisher`]) is its own task with its own outbox connection.

pub mod commands;
pub mod dead_letters;
pub mod influx_feed;
pub mod live;
pub mod mqtt;
pub mod outbox;
pub mod probe;

use std::sync::Arc;
use std::sync::atomic::Ordering;

use gateway_core::config::{MqttConfig, Resolved};
use gateway_core::model::PollOutcome;
use gateway_core::state::UnixMs;
use tokio::sync::Notify;

use crate::engine::CoreEvent;
use crate::wire::{self, Body, StateView, Topics};
use outbox::{Kind, NewRecord, OutboxError, OutboxStats, OutboxWriter};

/// How often buffered messages are appended to the outbox.
pub const FLUSH_EVERY: std::time::Duration = std::time::Duration::from_millis(100);
/// The most messages waiting in memory while the outbox refuses appends.
pub const MAX_BACKLOG: usize = 20_000;
/// The most bytes (topic + payload) waiting in memory meanwhile.
pub const MAX_BACKLOG_BYTES: usize = 8 * 1024 * 1024;
/// How often a refused append is tried again.
pub const RETRY_EVERY: std::time::Duration = std::time::Duration::from_secs(1);
/// The most records appended in one transaction.
pub const APPEND_CHUNK: usize = 2_000;

/// A payload waiting for its seq.
#[derive(Debug)]
enum Payload {
    /// Serialised up to its seq (telemetry by its encoder, the rest from
    /// its JSON body at once, see [`wire::Encoded::from_body`]).
    Encoded(wire::Encoded),
}

/// A message waiting for its seq.
#[derive(Debug)]
struct Msg {
    topic: String,
    body: Payload,
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
    /// Numbered records a failed append left behind, in seq order.
    unwritten: std::collections::VecDeque<(u64, NewRecord)>,
    /// Their topic and payload bytes.
    unwritten_bytes: usize,
    /// The seq the next message gets.
    next_seq: u64,
    /// Seqs are reserved in the outbox up to (not including) this one.
    reserved_to: u64,
    /// Appends fail now: when the next try is due.
    retry_at: Option<std::time::Instant>,
    /// Telemetry and other messages dropped from the backlog meanwhile.
    dropped_run: (u64, u64),
    wake: Arc<Notify>,
    /// Something other than telemetry is buffered: flush at once.
    urgent: bool,
    encoder: wire::TelemetryEncoder,
    /// Per device index: its id and telemetry topic (made once).
    telemetry_topics: Vec<Option<(String, String)>>,
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
            topics: Topics::new(&mqtt.prefix, &cfg.site, &cfg.gateway),
            telemetry_qos: mqtt.telemetry_qos.as_u8(),
            buffer: Vec::new(),
            next_seq: writer.next_seq(),
            reserved_to: 0,
            writer,
            unwritten: std::collections::VecDeque::new(),
            unwritten_bytes: 0,
            retry_at: None,
            dropped_run: (0, 0),
            wake,
            urgent: false,
            encoder: wire::TelemetryEncoder::default(),
            telemetry_topics: Vec::new(),
        }
    }

    /// Whether something other than telemetry waits in the buffer: the
    /// caller flushes at once (write-through), see the module doc.
    pub fn urgent(&self) -> bool {
        self.urgent
    }

    /// Flushes when [`urgent`](Self::urgent).
    pub fn flush_urgent(&mut self) -> Result<(), OutboxError> {
        if self.urgent { self.flush() } else { Ok(()) }
    }

    fn telemetry_topic(&mut self, index: usize, id: &str) -> String {
        if self.telemetry_topics.len() <= index {
            self.telemetry_topics.resize(index + 1, None);
        }
        match &self.telemetry_topics[index] {
            Some((cached, topic)) if cached == id => topic.clone(),
            _ => {
                let topic = self.topics.telemetry(id);
                self.telemetry_topics[index] = Some((id.to_owned(), topic.clone()));
                topic
            }
        }
    }

    /// The outbox counters.
    pub fn stats(&self) -> Arc<OutboxStats> {
        self.writer.stats()
    }

    fn push(&mut self, topic: String, body: Body, qos: u8, retain: bool, kind: Kind) {
        let body = Payload::Encoded(wire::Encoded::from_body(body));
        self.push_payload(topic, body, qos, retain, kind);
    }

    fn push_payload(&mut self, topic: String, body: Payload, qos: u8, retain: bool, kind: Kind) {
        if kind != Kind::Telemetry {
            self.urgent = true;
        }
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
        let body = self.encoder.telemetry(dev, o, which);
        let topic = self.telemetry_topic(o.device, &dev.id);
        self.push_payload(
            topic,
            Payload::Encoded(body),
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

    /// Appends what is buffered (one transaction per [`APPEND_CHUNK`]) and
    /// wakes the publisher. On error the records (numbered) wait in the
    /// bounded backlog and are tried again first, no sooner than
    /// [`RETRY_EVERY`]; see the module doc.
    pub fn flush(&mut self) -> Result<(), OutboxError> {
        self.urgent = false;
        let mut buffer = std::mem::take(&mut self.buffer);
        for m in buffer.drain(..) {
            let seq = self.next_seq;
            self.next_seq += 1;
            let payload = match m.body {
                Payload::Encoded(e) => e.with_seq(seq),
            };
            let r = NewRecord {
                payload,
                topic: m.topic,
                qos: m.qos,
                retain: m.retain,
                kind: m.kind,
            };
            self.unwritten_bytes += r.topic.len() + r.payload.len();
            self.unwritten.push_back((seq, r));
        }
        // The buffer's room is kept for the next messages.
        self.buffer = buffer;
        if self.unwritten.is_empty() {
            return Ok(());
        }
        if let Some(at) = self.retry_at {
            self.bound_backlog();
            self.reserve_ahead();
            if std::time::Instant::now() < at {
                return Err(OutboxError::Waiting);
            }
        }
        while !self.unwritten.is_empty() {
            let n = self.unwritten.len().min(APPEND_CHUNK);
            let chunk = &self.unwritten.make_contiguous()[..n];
            let appended = self.writer.append_numbered(chunk);
            if let Err(e) = appended {
                if self.retry_at.is_none() {
                    tracing::error!(
                        error = %e, waiting = self.unwritten.len(),
                        max_backlog = MAX_BACKLOG,
                        "cannot append to the outbox; messages wait in memory (bounded: telemetry is dropped first, counted, a gap in seq) and are tried again every second"
                    );
                }
                self.retry_at = Some(std::time::Instant::now() + RETRY_EVERY);
                self.bound_backlog();
                self.reserve_ahead();
                return Err(e);
            }
            let mut bytes = 0;
            let stats = self.writer.stats();
            // Stored: to the publisher's live tail. An append that had to
            // drop telemetry empties the tail instead (the publisher then
            // reads what is really stored).
            let complete = matches!(appended, Ok(0));
            stats.live.push(
                self.unwritten.drain(..n).inspect(|(_, r)| {
                    bytes += r.topic.len() + r.payload.len();
                }),
                complete,
            );
            self.unwritten_bytes = self.unwritten_bytes.saturating_sub(bytes);
            self.wake.notify_one();
        }
        if self.retry_at.take().is_some() {
            self.reserved_to = 0;
            let (telemetry, other) = std::mem::take(&mut self.dropped_run);
            tracing::info!(
                dropped_telemetry = telemetry,
                dropped_other = other,
                "the outbox accepts appends again"
            );
        }
        Ok(())
    }

    /// Keeps the backlog within [`MAX_BACKLOG`] and [`MAX_BACKLOG_BYTES`]:
    /// the oldest telemetry first, then the oldest other messages.
    fn bound_backlog(&mut self) {
        let over = |n: usize, b: usize| n > MAX_BACKLOG || b > MAX_BACKLOG_BYTES;
        if !over(self.unwritten.len(), self.unwritten_bytes) {
            return;
        }
        let (mut n, mut bytes) = (self.unwritten.len(), self.unwritten_bytes);
        let mut telemetry = 0u64;
        self.unwritten.retain(|(_, r)| {
            if r.kind == Kind::Telemetry && over(n, bytes) {
                n -= 1;
                bytes = bytes.saturating_sub(r.topic.len() + r.payload.len());
                telemetry += 1;
                false
            } else {
                true
            }
        });
        let mut other = 0u64;
        while over(n, bytes) {
            let Some((_, r)) = self.unwritten.pop_front() else {
                break;
            };
            n -= 1;
            bytes = bytes.saturating_sub(r.topic.len() + r.payload.len());
            other += 1;
        }
        self.unwritten_bytes = bytes;
        let stats = self.writer.stats();
        stats.dropped.fetch_add(telemetry, Ordering::Relaxed);
        stats
            .dropped_for_space
            .fetch_add(telemetry, Ordering::Relaxed);
        stats.lost.fetch_add(other, Ordering::Relaxed);
        if other > 0 && self.dropped_run.1 == 0 {
            tracing::error!(
                dropped = other,
                "the outbox has refused appends for so long that the backlog is full of events, states and tickets: the oldest are dropped (counted in bms_outbox_lost_total, a gap in seq); the ledger still has them"
            );
        }
        self.dropped_run.0 += telemetry;
        self.dropped_run.1 += other;
    }

    /// While appends fail: seqs handed out are reserved in the outbox (a
    /// small write that the spare file leaves room for), so that a stop
    /// now shows the unwritten messages as a gap instead of reusing their
    /// seqs.
    fn reserve_ahead(&mut self) {
        if self.next_seq < self.reserved_to && self.writer.has_reservation() {
            return;
        }
        let handed_out = self.next_seq.saturating_sub(1);
        let ahead = MAX_BACKLOG as u64;
        if self.writer.reserve_through(handed_out, ahead).is_ok() {
            self.reserved_to = handed_out + 1 + ahead;
        }
    }

    /// Messages buffered or waiting to be written.
    pub fn waiting(&self) -> usize {
        self.buffer.len() + self.unwritten.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use gateway_core::config::load::load;
    use gateway_core::state::HardAlarm;

    fn north(dir: &std::path::Path) -> North {
        let cfg = load(
            "t.toml",
            "site = \"s\"\ngateway = \"g\"\n",
            &Default::default(),
            &|_| None,
        )
        .unwrap();
        let mqtt = MqttConfig::for_url("mqtt://127.0.0.1:1");
        let w = OutboxWriter::open(dir, gateway_core::config::Fsync::Off, 10_000_000).unwrap();
        North::new(&cfg, &mqtt, w, Arc::new(Notify::new()))
    }

    #[test]
    fn an_alarm_is_written_through_at_once_and_handed_to_the_live_tail() {
        let dir = tempfile::tempdir().unwrap();
        let mut n = north(dir.path());
        n.on_reply(Body::new());
        assert!(n.urgent(), "a reply is not telemetry");
        n.flush().unwrap();
        assert!(!n.urgent());
        let alarm = HardAlarm {
            device: "fire-1".into(),
            point: "fault".into(),
            active: true,
            at_ms: 5,
        };
        n.on_core(&CoreEvent::Alarm(alarm), 6);
        assert!(n.urgent(), "an alarm asks for a flush now");
        n.flush_urgent().unwrap();
        assert_eq!(n.waiting(), 0, "stored, not waiting for the flush tick");
        let stats = n.stats();
        let mut out = Vec::new();
        assert!(stats.live.take(0, 10, &mut out));
        assert_eq!(out.iter().map(|r| r.seq).collect::<Vec<_>>(), vec![1, 2]);
        assert!(out[1].topic.ends_with("/alarm"));
        let body: serde_json::Value = serde_json::from_slice(&out[1].payload).unwrap();
        assert_eq!(body["seq"], 2);
        assert_eq!(body["active"], true);
        // And the outbox holds them until delivered.
        let r = outbox::OutboxReader::open(dir.path(), gateway_core::config::Fsync::Off, stats)
            .unwrap();
        assert_eq!(r.len().unwrap(), 2);
    }
}
