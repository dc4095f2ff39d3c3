//! The gateway's main loop: buses → poll outcomes → sinks.
//!
//! Until the core (health, ledger, tickets) and the north side (MQTT,
//! InfluxDB) exist, outcomes go to a caller-supplied sink: `run --stdout`
//! writes them as JSON lines, `demo` shows them in a table.

use std::collections::BTreeMap;
use std::time::Duration;

use gateway_core::config::Resolved;
use gateway_core::model::{FailureKind, PollClass, PollOutcome};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use crate::south::{self, BusHandle};

/// Outcomes waiting between the buses and the consumer. Bounded: a slow
/// consumer slows the buses down rather than growing memory.
pub const OUTCOME_QUEUE: usize = 1024;

/// How `run` behaves.
#[derive(Clone, Copy, Debug)]
pub struct RunOptions {
    /// Poll every device until it has answered one full poll cleanly (or
    /// `once_attempts` full polls failed), hand the sink that one outcome
    /// per device, and return.
    pub once: bool,
    /// Full polls tried per device in `once` mode. More than one lets a
    /// device that refuses a coalesced range teach the planner to split it.
    pub once_attempts: u32,
    /// How often bus counters are logged (info level); zero = never.
    pub stats_every: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            once: false,
            once_attempts: 3,
            stats_every: Duration::from_secs(60),
        }
    }
}

/// What a run did, for the exit code and the final log line.
#[derive(Debug, Default)]
pub struct RunSummary {
    /// Outcomes received.
    pub outcomes: u64,
    /// `once` mode: devices whose final poll still failed, with how.
    pub failed: Vec<(String, FailureKind)>,
    /// `once` mode: devices never polled before shutdown.
    pub missing: Vec<String>,
}

/// Polls every bus of `cfg` until `shutdown` is cancelled (or, in `once`
/// mode, until every device has a final answer), giving each outcome to
/// `sink`. Returns `false` from the sink to stop early (e.g. stdout closed).
pub async fn run(
    cfg: &Resolved,
    opts: RunOptions,
    mut sink: impl FnMut(&PollOutcome) -> bool,
    shutdown: CancellationToken,
) -> RunSummary {
    let (tx, mut rx) = mpsc::channel(OUTCOME_QUEUE);
    let buses_stop = shutdown.child_token();
    let buses = south::spawn_buses(cfg, tx, buses_stop.clone());
    info!(
        buses = buses.len(),
        devices = cfg.devices.len(),
        site = %cfg.site,
        gateway = %cfg.gateway,
        "polling started"
    );
    let mut summary = RunSummary::default();
    let mut once = OnceTracker::new(cfg.devices.len(), opts.once_attempts.max(1));
    let mut stats = if opts.stats_every.is_zero() {
        None
    } else {
        Some(tokio::time::interval_at(
            tokio::time::Instant::now() + opts.stats_every,
            opts.stats_every,
        ))
    };
    loop {
        let tick = async {
            match stats.as_mut() {
                Some(s) => {
                    s.tick().await;
                }
                None => std::future::pending::<()>().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            _ = tick => log_stats(&buses),
            o = rx.recv() => {
                let Some(o) = o else { break };
                summary.outcomes += 1;
                if opts.once {
                    if let Some(final_outcome) = once.offer(o) {
                        if !sink(&final_outcome) { break; }
                        if once.all_done() { break; }
                    }
                } else if !sink(&o) {
                    break;
                }
            }
        }
    }
    buses_stop.cancel();
    for b in buses {
        let _ = b.task.await;
    }
    if opts.once {
        for (i, d) in cfg.devices.iter().enumerate() {
            match once.state.get(&i) {
                Some(s) if s.done => {
                    if let Some(f) = s.failure {
                        summary.failed.push((d.id.clone(), f));
                    }
                }
                _ => summary.missing.push(d.id.clone()),
            }
        }
    }
    summary
}

fn log_stats(buses: &[BusHandle]) {
    for b in buses {
        info!(bus = %b.bus, stats = %b.counters.snapshot(), "bus counters");
    }
}

#[derive(Debug, Default)]
struct OnceState {
    attempts: u32,
    done: bool,
    failure: Option<FailureKind>,
}

/// Chooses, per device, the outcome that `run --once` reports.
#[derive(Debug)]
struct OnceTracker {
    devices: usize,
    attempts: u32,
    state: BTreeMap<usize, OnceState>,
    finished: usize,
}

impl OnceTracker {
    fn new(devices: usize, attempts: u32) -> Self {
        Self {
            devices,
            attempts,
            state: BTreeMap::new(),
            finished: 0,
        }
    }

    /// Returns the outcome when it is the device's final one.
    fn offer(&mut self, o: PollOutcome) -> Option<PollOutcome> {
        if o.class != PollClass::Full {
            return None;
        }
        let s = self.state.entry(o.device).or_default();
        if s.done {
            return None;
        }
        s.attempts += 1;
        // A device that refuses a coalesced range answers its first poll
        // with exception 2 and is read in split requests from then on: the
        // next attempt is clean.
        let clean = o.failure.is_none();
        if clean || s.attempts >= self.attempts {
            s.done = true;
            s.failure = if clean { None } else { o.failure };
            self.finished += 1;
            return Some(o);
        }
        None
    }

    fn all_done(&self) -> bool {
        self.finished >= self.devices
    }
}
