//! Telemetry to InfluxDB with the outbox discipline: every poll's line
//! (all good samples, not reduced by report by exception: a time-series
//! store wants the whole series) is appended to its own outbox file,
//! `<data_dir>/influx-outbox.db`, and a task writes batches of up to
//! `[influx] batch` lines, removing them only when the server accepted
//! them.
//!
//! Failures, by the server's answer ([`WriteError`]):
//!
//! - no answer, 408, 429, 5xx: the lines are kept, in order, and retried
//!   with backoff from 1 s to 60 s (the server or the network recovers);
//! - a wrong setting (redirect, 401, 403, 404, 405: address, token, bucket)
//!   that every batch would meet: the lines are kept, logged once as an
//!   error, retried every 60 s, while the outbox's size limit drops the
//!   oldest lines if it lasts;
//! - 413: the batch is halved and sent again at once (down to one line;
//!   successes double it back to `[influx] batch`); one line still too
//!   large is refused like the next case;
//! - any other 4xx (400 a bad line or a field type conflict, 422…): the
//!   server refuses these lines and would refuse them again. They are set
//!   aside in the dead-letter table ([`super::dead_letters`]), counted
//!   (`bms_influx_refused_lines_total`), logged with the server's reason
//!   (at most once a minute at error level), and the next batch is written
//!   at once: one refused batch never holds up the lines behind it.
//!   Servers that write the valid lines of a refused batch (InfluxDB's
//!   "partial write") have stored them already; the dead letters keep the
//!   whole batch, so that nothing refused is lost from sight.

use std::sync::Arc;
use std::time::Duration;

use gateway_core::config::Resolved;
use gateway_core::model::PollOutcome;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{debug, error, info, warn};

use super::dead_letters::DeadLetters;
use super::outbox::{Kind, NewRecord, OutboxError, OutboxReader, OutboxWriter};
use crate::influx::{InfluxWriter, WriteError, line};

/// The run loop's half: buffers lines and appends them.
#[derive(Debug)]
pub struct InfluxFeed {
    writer: OutboxWriter,
    buffer: Vec<String>,
    /// Appends fail now (logged once).
    failing: bool,
    wake: Arc<Notify>,
}

/// The most lines waiting in memory while the InfluxDB outbox refuses appends.
pub const MAX_WAITING: usize = 20_000;

impl InfluxFeed {
    /// Over an open outbox.
    pub fn new(writer: OutboxWriter, wake: Arc<Notify>) -> InfluxFeed {
        InfluxFeed {
            writer,
            buffer: Vec::new(),
            failing: false,
            wake,
        }
    }

    /// The outbox counters.
    pub fn stats(&self) -> Arc<super::outbox::OutboxStats> {
        self.writer.stats()
    }

    /// The line of a poll, if it has good samples.
    pub fn on_poll(&mut self, cfg: &Resolved, o: &PollOutcome) {
        if let Some(l) = line(cfg, o) {
            self.buffer.push(l);
        }
    }

    /// The `bms_availability` line of a device's state.
    pub fn on_state(&mut self, cfg: &Resolved, v: &crate::wire::StateView, now_ms: i64) {
        self.buffer
            .push(crate::influx::availability_line(cfg, v, now_ms));
    }

    /// Appends what is buffered (kept on error for the next call, up to
    /// [`MAX_WAITING`] lines: the oldest go first, counted as dropped). A
    /// failure is logged once, and once when appends work again.
    pub fn flush(&mut self) -> Result<(), OutboxError> {
        if self.buffer.is_empty() {
            return Ok(());
        }
        let lines = std::mem::take(&mut self.buffer);
        let result = self.writer.append(lines.iter(), |_, l| NewRecord {
            topic: String::new(),
            payload: l.clone().into_bytes(),
            qos: 1,
            retain: false,
            kind: Kind::Telemetry,
        });
        match result {
            Ok(_) => {
                if self.failing {
                    self.failing = false;
                    tracing::info!("the InfluxDB outbox accepts appends again");
                }
                self.wake.notify_one();
                Ok(())
            }
            Err(e) => {
                if !self.failing {
                    self.failing = true;
                    tracing::error!(error = %e, "cannot append to the InfluxDB outbox; lines wait in memory (the oldest dropped past {MAX_WAITING}) and are tried again");
                }
                self.buffer = lines;
                if self.buffer.len() > MAX_WAITING {
                    let excess = self.buffer.len() - MAX_WAITING;
                    self.buffer.drain(..excess);
                    let stats = self.writer.stats();
                    stats
                        .dropped
                        .fetch_add(excess as u64, std::sync::atomic::Ordering::Relaxed);
                    stats
                        .dropped_for_space
                        .fetch_add(excess as u64, std::sync::atomic::Ordering::Relaxed);
                }
                Err(e)
            }
        }
    }
}

/// How long a wrong setting (token, bucket, address) waits between tries.
const REJECT_WAIT: Duration = Duration::from_secs(60);

/// Refusals within this time of the last one logged are logged at debug
/// level (they are counted all the same).
const REFUSAL_LOG_EVERY: Duration = Duration::from_secs(60);

/// What the writer does with the lines of one attempt, decided from the
/// server's answer (pure, for tests).
#[derive(Debug, Clone, PartialEq, Eq)]
enum Next {
    /// Written: remove them.
    Done,
    /// Keep them and try again after this wait.
    Wait(Duration),
    /// Set them aside (dead letters) with this status and reason, and go on.
    SetAside(u16, String),
    /// Try again at once with at most this many lines.
    Split(usize),
}

/// The writer's retry state between attempts.
#[derive(Debug)]
struct Pace {
    backoff: Duration,
    /// The most lines per request now: `[influx] batch`, halved by each
    /// 413 and doubled back by each success.
    limit: usize,
    batch: usize,
}

impl Pace {
    fn new(batch: usize) -> Pace {
        let batch = batch.max(1);
        Pace {
            backoff: Duration::from_secs(1),
            limit: batch,
            batch,
        }
    }

    /// The answer to a request of `lines` lines.
    fn on(&mut self, result: &Result<(), WriteError>, lines: usize) -> Next {
        match result {
            Ok(()) => {
                self.backoff = Duration::from_secs(1);
                self.limit = (self.limit.saturating_mul(2)).min(self.batch);
                Next::Done
            }
            Err(WriteError::Retry(_)) => {
                let w = self.backoff;
                self.backoff = (self.backoff * 2).min(Duration::from_secs(60));
                Next::Wait(w)
            }
            Err(WriteError::Reject(_)) => Next::Wait(REJECT_WAIT),
            Err(WriteError::Refused { status, message }) => {
                Next::SetAside(*status, message.clone())
            }
            Err(WriteError::TooLarge(m)) => {
                if lines <= 1 {
                    // One line the server finds too large: it never will.
                    Next::SetAside(413, m.clone())
                } else {
                    self.limit = (lines / 2).max(1);
                    Next::Split(self.limit)
                }
            }
        }
    }
}

/// Writes the outbox to the server until `shutdown`; lines the server
/// refuses go to `dead` (see the module doc).
pub async fn run(
    writer: InfluxWriter,
    mut outbox: OutboxReader,
    mut dead: DeadLetters,
    wake: Arc<Notify>,
    batch: usize,
    flush_every: Duration,
    shutdown: CancellationToken,
) {
    let mut pace = Pace::new(batch);
    let mut failing = false;
    let mut rejected_logged = false;
    let mut refusal_logged: Option<tokio::time::Instant> = None;
    let mut split = false;
    loop {
        let records = match outbox.after(0, pace.limit) {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "cannot read the InfluxDB outbox");
                Vec::new()
            }
        };
        if records.len() < pace.limit && !split {
            // Wait for a full batch or flush_every, whichever comes first.
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(flush_every) => {}
                _ = wake.notified(), if records.is_empty() => continue,
            }
            if records.is_empty() {
                continue;
            }
        }
        split = false;
        let records = match outbox.after(0, pace.limit) {
            Ok(r) if !r.is_empty() => r,
            _ => continue,
        };
        let lines: Vec<String> = records
            .iter()
            .map(|r| String::from_utf8_lossy(&r.payload).into_owned())
            .collect();
        let mut body = String::new();
        for l in &lines {
            body.push_str(l);
            body.push('\n');
        }
        let result = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = writer.write(&body) => r,
        };
        let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
        let wait = match pace.on(&result, records.len()) {
            Next::Done => {
                if let Err(e) = outbox.remove(&seqs) {
                    error!(error = %e, "cannot remove written lines from the InfluxDB outbox");
                }
                if failing {
                    info!("InfluxDB accepts writes again");
                    failing = false;
                    rejected_logged = false;
                }
                None
            }
            Next::Wait(w) => {
                match &result {
                    Err(WriteError::Retry(e)) if !failing => {
                        warn!(error = %e, lines = records.len(), "InfluxDB write failed; the lines are kept and retried");
                    }
                    Err(WriteError::Reject(e)) if !rejected_logged => {
                        error!(error = %e, lines = records.len(), "InfluxDB refused the write; the lines are kept and retried every 60 s (check [influx] url, org, bucket and token)");
                        rejected_logged = true;
                    }
                    _ => {}
                }
                failing = true;
                Some(w)
            }
            Next::Split(limit) => {
                warn!(
                    lines = records.len(),
                    now = limit,
                    "InfluxDB found the batch too large; writing smaller ones"
                );
                split = true;
                None
            }
            Next::SetAside(status, reason) => {
                let refs: Vec<&str> = lines.iter().map(String::as_str).collect();
                match dead.put(crate::run::unix_now_ms(), status, &reason, &refs) {
                    Ok(()) => {
                        if let Err(e) = outbox.remove(&seqs) {
                            error!(error = %e, "cannot remove refused lines from the InfluxDB outbox");
                        }
                        let now = tokio::time::Instant::now();
                        if refusal_logged.is_none_or(|t| now.duration_since(t) >= REFUSAL_LOG_EVERY)
                        {
                            error!(error = %reason, status, lines = refs.len(), "InfluxDB refused lines; they are set aside in the dead-letter table and writing goes on (gateway dead-letters shows them; counted in bms_influx_refused_lines_total)");
                            refusal_logged = Some(now);
                        } else {
                            debug!(error = %reason, status, lines = refs.len(), "InfluxDB refused lines; set aside");
                        }
                        None
                    }
                    Err(e) => {
                        // Nothing is lost: the lines stay at the head of
                        // the outbox until they can be set aside.
                        error!(error = %e, "cannot set refused InfluxDB lines aside; they are kept and tried again");
                        Some(REJECT_WAIT)
                    }
                }
            }
        };
        if let Some(w) = wait {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(w) => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn refused() -> Result<(), WriteError> {
        Err(WriteError::Refused {
            status: 400,
            message: "field type conflict".into(),
        })
    }

    #[test]
    fn refused_lines_are_set_aside_not_retried() {
        let mut p = Pace::new(100);
        assert_eq!(
            p.on(&refused(), 100),
            Next::SetAside(400, "field type conflict".into())
        );
        // The next batch goes at once, with the full size.
        assert_eq!(p.on(&Ok(()), 100), Next::Done);
        assert_eq!(p.limit, 100);
    }

    #[test]
    fn server_and_network_failures_keep_the_lines_with_growing_backoff() {
        let mut p = Pace::new(100);
        let retry = Err(WriteError::Retry("503".into()));
        assert_eq!(p.on(&retry, 100), Next::Wait(Duration::from_secs(1)));
        assert_eq!(p.on(&retry, 100), Next::Wait(Duration::from_secs(2)));
        for _ in 0..10 {
            p.on(&retry, 100);
        }
        assert_eq!(p.on(&retry, 100), Next::Wait(Duration::from_secs(60)));
        assert_eq!(p.on(&Ok(()), 100), Next::Done);
        assert_eq!(p.on(&retry, 100), Next::Wait(Duration::from_secs(1)));
    }

    #[test]
    fn a_wrong_setting_keeps_the_lines() {
        let mut p = Pace::new(100);
        let reject = Err(WriteError::Reject("401".into()));
        assert_eq!(p.on(&reject, 100), Next::Wait(REJECT_WAIT));
    }

    #[test]
    fn too_large_halves_the_batch_down_to_one_line_then_sets_it_aside() {
        let mut p = Pace::new(100);
        let big = Err(WriteError::TooLarge("413".into()));
        assert_eq!(p.on(&big, 100), Next::Split(50));
        assert_eq!(p.on(&big, 50), Next::Split(25));
        assert_eq!(p.on(&big, 2), Next::Split(1));
        assert_eq!(p.on(&big, 1), Next::SetAside(413, "413".into()));
        // Successes grow it back to the configured size.
        for _ in 0..10 {
            p.on(&Ok(()), 1);
        }
        assert_eq!(p.limit, 100);
    }
}
