//! The dispatcher task: core events in, notices recorded, deliveries out.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use gateway_core::alerts::{DeviceInfo, Notice, NoticeKind, Policy, handover};
use gateway_core::state::UnixMs;
use gateway_core::tickets::Ticket;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::channels::{ChannelRef, SendError};
use crate::engine::CoreEvent;
use crate::store::{AlertRow, Store, TicketFilter};

/// Counters of one channel.
#[derive(Debug, Default)]
pub struct ChannelCounters {
    /// Accepted deliveries.
    pub sent: AtomicU64,
    /// Failed attempts.
    pub failures: AtomicU64,
    /// Notices given up.
    pub expired: AtomicU64,
    /// Copies handed to the fallback channel.
    pub fallbacks: AtomicU64,
}

/// Counters of every channel, for `/metrics`.
#[derive(Debug, Default)]
pub struct AlertStats {
    /// By channel id, in configuration order.
    pub channels: Vec<(String, ChannelCounters)>,
    /// Notices recorded and not yet sent or given up.
    pub pending: AtomicU64,
}

impl AlertStats {
    fn of(&self, ch: &str) -> Option<&ChannelCounters> {
        self.channels
            .iter()
            .find(|(id, _)| id == ch)
            .map(|(_, c)| c)
    }
}

/// Where the time comes from (the wall clock; tests pass a paused one).
pub type Clock = Arc<dyn Fn() -> UnixMs + Send + Sync>;

/// How deliveries are retried.
#[derive(Clone, Debug)]
pub struct Retry {
    /// First wait.
    pub min_ms: i64,
    /// Longest wait.
    pub max_ms: i64,
    /// Give up after this long.
    pub expire_ms: i64,
    /// Fallback after this many failed attempts.
    pub fallback_after: u32,
}

/// The dispatcher; see the module doc of [`crate::alerts`].
pub struct Dispatcher {
    pub(super) store: Store,
    pub(super) policy: Policy,
    pub(super) channels: BTreeMap<String, ChannelRef>,
    pub(super) fallback: BTreeMap<String, String>,
    pub(super) devices: BTreeMap<String, DeviceInfo>,
    pub(super) stats: Arc<AlertStats>,
    pub(super) retry: Retry,
    pub(super) clock: Clock,
    /// Longest time back the restore must look (escalation, dedupe).
    pub(super) lookback_ms: i64,
    /// Notices the database refused for now, recorded again next turn.
    pub(super) unrecorded: Vec<Notice>,
    /// How long finished notices stay in the log (`[alerts] keep`).
    pub(super) keep_ms: i64,
    /// When the next pruning batch runs (`UnixMs::MIN`: at start).
    pub(super) next_prune_ms: UnixMs,
    /// Notices deleted so far in the current pruning pass.
    pub(super) pruned: usize,
    /// The daily shift handover digest, when on.
    pub(super) handover: Option<Handover>,
}

/// The daily shift handover digest's settings and the last day sent
/// (`gateway_core::alerts::handover`).
#[derive(Clone, Debug)]
pub struct Handover {
    /// Local time of day it is sent.
    pub at: chrono::NaiveTime,
    /// The channels it goes on.
    pub channels: Vec<String>,
    /// The site's zone.
    pub tz: chrono_tz::Tz,
    /// Language of the message.
    pub lang: gateway_core::config::Language,
    /// Site id.
    pub site: String,
    /// The last day sent (read back from the recorded notices at start).
    pub last: Option<chrono::NaiveDate>,
    /// When the dispatcher started (with nothing sent yet, only later
    /// slots are due).
    pub started_ms: UnixMs,
}

/// How far back the start looks for the last handover digest sent.
const HANDOVER_LOOKBACK_MS: i64 = 3 * 24 * 3600 * 1000;

impl std::fmt::Debug for Dispatcher {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Dispatcher")
            .field("channels", &self.channels.keys().collect::<Vec<_>>())
            .finish_non_exhaustive()
    }
}

/// The result of one attempt, back from its task.
struct Outcome {
    row: AlertRow,
    result: Result<(), SendError>,
}

/// Pending notices attempted at once, at most.
const BATCH: usize = 64;
/// Old notices deleted per transaction, at most: a few milliseconds of
/// work, so a large backlog never holds up deliveries for long.
pub(super) const PRUNE_BATCH: usize = 500;
/// Time between pruning passes.
pub(super) const PRUNE_EVERY_MS: i64 = 3_600_000;
/// Pause between two batches of one pass (the loop serves deliveries and
/// events meanwhile).
const PRUNE_PAUSE_MS: i64 = 100;

impl Dispatcher {
    pub(super) fn info(&self, device: &str) -> DeviceInfo {
        self.devices
            .get(device)
            .cloned()
            .unwrap_or_else(|| DeviceInfo {
                name: device.to_owned(),
                location: None,
            })
    }

    fn record(&mut self, notices: &[Notice]) {
        if notices.is_empty() {
            return;
        }
        let now = (self.clock)();
        match self.store.record_notices(notices, now) {
            Ok(n) => {
                for x in notices.iter().filter(|x| !x.held) {
                    info!(
                        channel = %x.channel, kind = x.kind.as_str(), ticket = ?x.ticket, tier = x.tier,
                        to = %x.message.to.iter().map(|r| r.name.as_str()).collect::<Vec<_>>().join(", "),
                        "alert recorded"
                    );
                }
                if n > 0 {
                    self.stats.pending.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
            Err(e) => {
                // The policy will not produce them again: keep them until the
                // database takes them (retry at the next loop turn).
                error!(error = %e, count = notices.len(), "cannot record alerts; retrying");
                self.unrecorded.extend_from_slice(notices);
            }
        }
    }

    /// Rebuilds the policy from the database (see `Policy::restore`):
    /// the tickets not closed, and every ticket changed within the
    /// lookback (a resolution whose follow-up a crash lost may since have
    /// been closed).
    fn restore(&mut self) {
        let now = (self.clock)();
        let not_closed = TicketFilter {
            open_only: true,
            ..TicketFilter::default()
        };
        let recent = TicketFilter {
            since_ms: Some(now - self.lookback_ms),
            ..TicketFilter::default()
        };
        let mut tickets: BTreeMap<u64, Ticket> = BTreeMap::new();
        for f in [not_closed, recent] {
            match self.store.tickets(&f) {
                Ok(ts) => tickets.extend(ts.into_iter().map(|t| (t.id, t))),
                Err(e) => {
                    error!(error = %e, "cannot read the tickets; escalations and follow-ups resume only for new ones");
                }
            }
        }
        let tickets: Vec<(Ticket, DeviceInfo)> = tickets
            .into_values()
            .map(|t| {
                let i = self.info(&t.device);
                (t, i)
            })
            .collect();
        let recorded = self
            .store
            .recorded_since(now - self.lookback_ms)
            .unwrap_or_else(|e| {
                error!(error = %e, "cannot read the recorded alerts");
                Vec::new()
            });
        let due = self.policy.restore(tickets, &recorded, now);
        self.record(&due);
        if let Ok(n) = self.store.pending_alerts() {
            self.stats.pending.store(n, Ordering::Relaxed);
        }
    }

    /// Reads back the last day a handover digest was recorded.
    fn restore_handover(&mut self, now: UnixMs) {
        let Some(h) = self.handover.as_mut() else {
            return;
        };
        h.started_ms = now;
        match self.store.recorded_since(now - HANDOVER_LOOKBACK_MS) {
            Ok(rows) => {
                h.last = rows
                    .iter()
                    .filter(|r| r.notice.kind == NoticeKind::Handover)
                    .filter_map(|r| handover::day_of_key(&r.notice.key))
                    .max();
            }
            Err(e) => {
                // The notice keys still keep a day from being recorded twice.
                error!(error = %e, "cannot read the recorded alerts; the handover digest relies on its keys");
            }
        }
    }

    /// Records the handover digest of the day when it is due (once a day;
    /// the keys make a second recording of a day a no-op).
    fn handover(&mut self, now: UnixMs) {
        let Some(h) = self.handover.clone() else {
            return;
        };
        let Some(day) = handover::due(h.tz, h.at, now, h.last, h.started_ms) else {
            return;
        };
        let from = handover::period_start(h.tz, day, h.at).unwrap_or(now - 24 * 3600 * 1000);
        let read = self
            .store
            .tickets_for_period(from, now)
            .and_then(|t| self.store.intervals(None, from, now, now).map(|iv| (t, iv)));
        let (tickets, intervals) = match read {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "cannot read tickets and ledger for the handover digest; trying again shortly");
                return;
            }
        };
        let message = handover::message(&handover::Input {
            site: &h.site,
            day,
            tz: h.tz,
            lang: h.lang,
            from_ms: from,
            now_ms: now,
            tickets: &tickets,
            intervals: &intervals,
            devices: &self.devices,
            to: self.policy.on_duty(now),
        });
        let notices: Vec<Notice> = h
            .channels
            .iter()
            .map(|ch| Notice {
                key: handover::key(day, ch),
                ticket: None,
                kind: NoticeKind::Handover,
                tier: 0,
                channel: ch.clone(),
                message: message.clone(),
                at_ms: now,
                held: false,
                covers: Vec::new(),
            })
            .collect();
        info!(day = %day, channels = notices.len(), "shift handover digest made");
        self.record(&notices);
        if let Some(h) = self.handover.as_mut() {
            h.last = Some(day);
        }
    }

    /// Deletes one batch of notices older than `keep` when a pruning pass
    /// is due (at start, then hourly); a full batch means more are left,
    /// and the next batch follows after a short pause.
    fn prune(&mut self, now: UnixMs) {
        if now < self.next_prune_ms {
            return;
        }
        match self
            .store
            .prune_alerts(now.saturating_sub(self.keep_ms), PRUNE_BATCH)
        {
            Ok(n) if n >= PRUNE_BATCH => {
                self.pruned += n;
                self.next_prune_ms = now + PRUNE_PAUSE_MS;
                return;
            }
            Ok(n) => {
                self.pruned += n;
                if self.pruned > 0 {
                    info!(
                        deleted = self.pruned,
                        keep_days = self.keep_ms / 86_400_000,
                        "old alerts deleted from the log"
                    );
                }
            }
            Err(e) => {
                warn!(error = %e, "cannot delete old alerts from the log; trying again in an hour");
            }
        }
        self.pruned = 0;
        self.next_prune_ms = now + PRUNE_EVERY_MS;
    }

    /// Runs until `shutdown`: restores, then consumes core events, ticks
    /// the policy and delivers what is due.
    pub async fn run(mut self, mut events: mpsc::Receiver<CoreEvent>, shutdown: CancellationToken) {
        self.restore();
        self.restore_handover((self.clock)());
        let (done_tx, mut done_rx) = mpsc::channel::<Outcome>(BATCH);
        let mut inflight: BTreeSet<i64> = BTreeSet::new();
        let mut events_open = true;
        loop {
            let now = (self.clock)();
            if !self.unrecorded.is_empty() {
                let again = std::mem::take(&mut self.unrecorded);
                self.record(&again);
            }
            let due = self.policy.tick(now);
            self.record(&due);
            self.handover(now);
            self.deliver(now, &mut inflight, &done_tx);
            // After the restore: it reads what pruning would delete.
            self.prune(now);
            let wait = self.next_wake(now);
            tokio::select! {
                _ = shutdown.cancelled() => break,
                ev = events.recv(), if events_open => match ev {
                    Some(CoreEvent::Ticket(te)) => {
                        let info = self.info(&te.ticket.device);
                        let out = self.policy.on_ticket(&te, info, (self.clock)());
                        self.record(&out);
                    }
                    Some(_) => {}
                    None => events_open = false,
                },
                Some(o) = done_rx.recv() => {
                    inflight.remove(&o.row.id);
                    self.finish(o);
                }
                _ = tokio::time::sleep(wait) => {}
            }
        }
        // Attempts in flight finish on their own; their outcome is lost
        // and they are retried at the next start (at least once).
        debug!(inflight = inflight.len(), "alert dispatcher stopped");
    }

    fn next_wake(&self, now: UnixMs) -> Duration {
        let next = [
            self.policy.next_due(),
            self.store.next_alert_ms().ok().flatten(),
            Some(self.next_prune_ms),
            self.handover
                .as_ref()
                .and_then(|h| handover::next_slot_ms(h.tz, h.at, now)),
        ]
        .into_iter()
        .flatten()
        .min();
        // A row still due after `deliver` is in flight (or beyond the
        // batch): look again soon, not in a busy loop.
        // At most 10 s: the wall clock may jump (NTP) under a long sleep.
        let ms = next.map_or(10_000, |n| {
            if n <= now {
                250
            } else {
                (n - now).clamp(10, 10_000)
            }
        });
        Duration::from_millis(u64::try_from(ms).unwrap_or(10_000))
    }

    fn deliver(&mut self, now: UnixMs, inflight: &mut BTreeSet<i64>, done: &mpsc::Sender<Outcome>) {
        let rows = match self.store.due_alerts(now, BATCH) {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "cannot read the alert outbox");
                return;
            }
        };
        for row in rows {
            if inflight.contains(&row.id) {
                continue;
            }
            if now - row.created_ms > self.retry.expire_ms {
                let why = row
                    .last_error
                    .clone()
                    .unwrap_or_else(|| "not sent".to_owned());
                warn!(channel = %row.channel, key = %row.notice.key, error = %why, "alert expired undelivered");
                if self.store.alert_expired(row.id, &why, now).is_ok() {
                    self.stats.pending.fetch_sub(1, Ordering::Relaxed);
                    if let Some(c) = self.stats.of(&row.channel) {
                        c.expired.fetch_add(1, Ordering::Relaxed);
                    }
                }
                continue;
            }
            let Some(ch) = self.channels.get(&row.channel).cloned() else {
                // The channel was removed from the configuration.
                let _ =
                    self.store
                        .alert_expired(row.id, "the channel is no longer configured", now);
                continue;
            };
            inflight.insert(row.id);
            let done = done.clone();
            let clock = Arc::clone(&self.clock);
            tokio::spawn(async move {
                let result = ch.send(&row.notice, clock()).await;
                let _ = done.send(Outcome { row, result }).await;
            });
        }
    }

    fn finish(&mut self, o: Outcome) {
        let now = (self.clock)();
        let row = o.row;
        let counters = self.stats.of(&row.channel);
        match o.result {
            Ok(()) => {
                info!(channel = %row.channel, key = %row.notice.key, attempts = row.attempts + 1, "alert delivered");
                if let Err(e) = self.store.alert_sent(row.id, now) {
                    error!(error = %e, "cannot mark an alert sent; it will be sent again");
                    return;
                }
                self.stats.pending.fetch_sub(1, Ordering::Relaxed);
                if let Some(c) = counters {
                    c.sent.fetch_add(1, Ordering::Relaxed);
                }
            }
            Err(e) => {
                if let Some(c) = counters {
                    c.failures.fetch_add(1, Ordering::Relaxed);
                }
                let attempts = row.attempts + 1;
                warn!(channel = %row.channel, key = %row.notice.key, attempts, error = %e, "alert delivery failed");
                if let SendError::Permanent(m) = &e {
                    if self.store.alert_expired(row.id, m, now).is_ok() {
                        self.stats.pending.fetch_sub(1, Ordering::Relaxed);
                        if let Some(c) = counters {
                            c.expired.fetch_add(1, Ordering::Relaxed);
                        }
                    }
                } else {
                    let shift = attempts.saturating_sub(1).min(30);
                    let wait = self
                        .retry
                        .min_ms
                        .saturating_mul(1_i64 << shift)
                        .min(self.retry.max_ms);
                    if let Err(err) = self.store.alert_failed(row.id, &e.to_string(), now + wait) {
                        error!(error = %err, "cannot record a failed alert attempt");
                    }
                }
                if (attempts == self.retry.fallback_after || matches!(e, SendError::Permanent(_)))
                    && let Some(fb) = self.fallback.get(&row.channel).cloned()
                {
                    match self.store.record_fallback(&row, &fb, now) {
                        Ok(true) => {
                            warn!(channel = %row.channel, fallback = %fb, key = %row.notice.key, "alert handed to the fallback channel");
                            self.stats.pending.fetch_add(1, Ordering::Relaxed);
                            if let Some(c) = counters {
                                c.fallbacks.fetch_add(1, Ordering::Relaxed);
                            }
                        }
                        Ok(false) => {}
                        Err(err) => error!(error = %err, "cannot record the fallback copy"),
                    }
                }
            }
        }
    }
}
