//! Telemetry to InfluxDB with the outbox discipline: every poll's line
//! (all good samples, not reduced by report by exception: a time-series
//! store wants the whole series) is appended to its own outbox file,
//! `<data_dir>/influx-outbox.db`, and a task writes batches of up to
//! `[influx] batch` lines, removing them only when the server accepted
//! them.
//!
//! Failures: a retryable one (no answer, 408, 429, 5xx) is retried with
//! backoff from 1 s to 60 s. A refusal (other 4xx: a bad token, an unknown
//! bucket) is a configuration problem that every batch would meet, so the
//! lines are kept, not dropped: it is logged as an error and retried every
//! 60 s, while the outbox's size limit drops the oldest lines if it lasts.

use std::sync::Arc;
use std::time::Duration;

use gateway_core::config::Resolved;
use gateway_core::model::PollOutcome;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

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

/// Writes the outbox to the server until `shutdown`.
pub async fn run(
    writer: InfluxWriter,
    mut outbox: OutboxReader,
    wake: Arc<Notify>,
    batch: usize,
    flush_every: Duration,
    shutdown: CancellationToken,
) {
    let mut backoff = Duration::from_secs(1);
    let mut failing = false;
    loop {
        let records = match outbox.after(0, batch.max(1)) {
            Ok(r) => r,
            Err(e) => {
                error!(error = %e, "cannot read the InfluxDB outbox");
                Vec::new()
            }
        };
        if records.len() < batch {
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
        let records = match outbox.after(0, batch.max(1)) {
            Ok(r) if !r.is_empty() => r,
            _ => continue,
        };
        let mut body = String::new();
        for r in &records {
            body.push_str(&String::from_utf8_lossy(&r.payload));
            body.push('\n');
        }
        let wait = tokio::select! {
            _ = shutdown.cancelled() => return,
            r = writer.write(&body) => match r {
                Ok(()) => {
                    let seqs: Vec<u64> = records.iter().map(|r| r.seq).collect();
                    if let Err(e) = outbox.remove(&seqs) {
                        error!(error = %e, "cannot remove written lines from the InfluxDB outbox");
                    }
                    if failing {
                        info!("InfluxDB accepts writes again");
                        failing = false;
                    }
                    backoff = Duration::from_secs(1);
                    None
                }
                Err(WriteError::Retry(e)) => {
                    if !failing {
                        warn!(error = %e, lines = records.len(), "InfluxDB write failed; the lines are kept and retried");
                        failing = true;
                    }
                    let w = backoff;
                    backoff = (backoff * 2).min(Duration::from_secs(60));
                    Some(w)
                }
                Err(WriteError::Reject(e)) => {
                    error!(error = %e, lines = records.len(), "InfluxDB refused the write; the lines are kept and retried every 60 s (check [influx] url, org, bucket and token)");
                    failing = true;
                    Some(Duration::from_secs(60))
                }
            },
        };
        if let Some(w) = wait {
            tokio::select! {
                _ = shutdown.cancelled() => return,
                _ = tokio::time::sleep(w) => {}
            }
        }
    }
}
