//! One task per bus: the poll scheduler.
//!
//! # Design
//!
//! A bus is an RS-485 line or a TCP endpoint; either way it carries one
//! transaction at a time (many TCP gateways accept a single connection), so
//! one task owns the bus's [`Link`] and polls its devices in turn, switching
//! the unit id per request. Between the end of one transaction and the next
//! request it keeps the bus's `inter_frame_delay` of silence.
//!
//! Each device has two schedules: a **full** poll of every point every
//! `poll_interval`, and an **alarm** poll of its alarm points
//! ([`Point::alarm`]) every `alarm_interval`. The task always serves the
//! device whose next poll is due earliest (ties: configuration order). When a
//! device's full poll is due, its alarm poll is not made separately: the
//! full poll reads the alarm points too.
//!
//! **Phases are spread.** Device `k` of the `n` on a bus is first due `k / n`
//! of its poll interval (and `k / n` of its alarm interval), at most `k / n`
//! of [`PHASE_SPREAD_MAX`], after the task starts, and keeps that phase: the
//! full polls of a line do not all fall due at the same instant and come as
//! one burst every interval. The cap keeps every device's first read within
//! a second of start whatever its interval: until then a device is
//! `unknown (startup)` in the ledger, and a restarted gateway must know its
//! devices at once.
//!
//! **Alarm polls go next.** Among the answering devices that are due, an
//! alarm poll goes before any full poll; and while a poll of several
//! requests runs, an alarm poll of another answering device that falls due
//! goes between two of its transactions (counted in `interleaved_alarms`)
//! rather than wait for its end. An alarm point is therefore read at most
//! one alarm interval plus one transaction (the one on the wire when it
//! fell due) after the previous read, as long as the line has the time. The
//! interrupted poll's outcome comes after the alarm poll's, and its
//! `elapsed_us` includes it.
//!
//! Requests come from [`gateway_core::plan::plan`], computed once per device
//! and class. When a device answers exception 2 ("illegal data address") to
//! a request carrying several points, [`Barriers::on_illegal_address`]
//! learns where to split, the device is re-planned, and the refused points
//! are read at once with the split requests (same poll).
//!
//! # Invariants
//!
//! - **No pile-up.** A poll that starts or ends after its next tick was due
//!   does not make up for the missed ticks: the schedule moves to the first
//!   tick after the poll ended (phase kept), the poll is counted in
//!   `late_polls` and the ticks dropped in `skipped_ticks`.
//! - **A failing device never starves its line.** A device whose last
//!   poll failed (timeout, framing or transport failure; an exception
//!   proves the device is alive) is *failing*, and its polls are budgeted:
//!   one goes when due if it would end (one bus timeout later) before any
//!   other device is due — idle time costs nobody — and otherwise waits
//!   for the line's failing share: every failed poll moves the line's
//!   budget instant on by its duration ÷ [`BusOptions::probe_share`] (20 %),
//!   so on a busy line failed polls take at most that share. A poll never
//!   waits past [`BusOptions::probe_max`] after the device's previous one.
//!   Devices never polled yet are polled when due: at start a silent unit
//!   costs one timeout, once. After [`BusOptions::degrade_after`]
//!   consecutive failed polls the device is *degraded*: only full polls,
//!   one every `max(poll_interval, recovery_resolution)` from the start of
//!   the previous one, so that its return is seen within that time when the
//!   line has it. One successful poll restores the normal schedule. Inside
//!   a poll, the first timeout/framing/transport failure ends it: the
//!   remaining requests are not sent (their points are `NotRead`), so a
//!   dead device costs one timeout per poll, not one per request.
//! - **A link that is down blames no device.** Polls that fall due while the
//!   transport waits out its reconnect backoff produce an outcome with
//!   failure `Transport` and zero requests, and do not count towards
//!   degradation.
//! - **Backpressure.** Every poll produces one [`PollOutcome`] sent with
//!   `Sender::send(..).await` on the bounded channel given to
//!   [`spawn_buses`]: when the consumer falls behind, the bus task waits
//!   (and its polls become late, which the counters show) rather than
//!   buffering without bound. When the receiver is dropped the task ends.
//!
//! Time: scheduling uses `tokio::time::Instant` (so tests run on a paused
//! clock); `PollOutcome::ts_ms` is wall-clock Unix milliseconds.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway_core::config::{BusKind, HealthConfig, Resolved, ResolvedBus, ResolvedDevice};
use gateway_core::decode::{decode_request, decode_request_bits, failed_request};
use gateway_core::model::{
    BadReason, EXCEPTION_ILLEGAL_DATA_ADDRESS, FailureKind, Point, PollClass, PollOutcome, Sample,
};
use gateway_core::plan::{Barriers, Cost, Limits, Request, SERIAL_TURNAROUND, plan_costed};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::{Instant, sleep_until};
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};

use super::link::{Data, Link, ReadError};
use super::transport::Transport;

#[cfg(test)]
mod tests;
mod write;

pub use write::{WriteJob, WriteReport};

/// How many writes may wait for one bus; more are refused as busy.
pub const WRITE_QUEUE: usize = 8;

/// Tunables of the scheduler.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BusOptions {
    /// Consecutive failed polls after which a device is degraded.
    pub degrade_after: u32,
    /// Target spacing of the probes of a degraded device (at least its poll
    /// interval): `[health] recovery_resolution`.
    pub recovery_resolution: Duration,
    /// Longest spacing between two probes of a degraded device, whatever
    /// the line's budget: `[health] probe_interval_max`.
    pub probe_max: Duration,
    /// Share of the line's time that polls of failing devices may take
    /// from healthy ones (the rest of their probes go in idle time).
    pub probe_share: f64,
}

impl Default for BusOptions {
    fn default() -> Self {
        Self {
            degrade_after: 3,
            recovery_resolution: Duration::from_secs(5),
            probe_max: Duration::from_secs(60),
            probe_share: PROBE_SHARE,
        }
    }
}

/// The documented share of a line's time that failing devices may take from
/// the devices that answer: 20 %, so that these keep at least 80 % of it.
pub const PROBE_SHARE: f64 = 0.2;

impl BusOptions {
    /// The options of a configuration's `[health]` section.
    pub fn from_health(health: &HealthConfig) -> Self {
        Self {
            recovery_resolution: health.recovery_resolution.get(),
            probe_max: health.probe_interval_max.get(),
            ..Self::default()
        }
    }
}

/// Live counters of one bus, updated by its task, read by anyone.
#[derive(Debug, Default)]
pub struct BusCounters {
    polls: AtomicU64,
    requests: AtomicU64,
    timeouts: AtomicU64,
    exceptions: AtomicU64,
    transport: AtomicU64,
    framing: AtomicU64,
    link_down: AtomicU64,
    late_polls: AtomicU64,
    skipped_ticks: AtomicU64,
    degraded: AtomicU64,
    deferred_probes: AtomicU64,
    probe_gap_ms: AtomicU64,
    alarm_polls: AtomicU64,
    interleaved_alarms: AtomicU64,
    /// Write requests sent (functions 5, 6 and 16).
    writes: AtomicU64,
    /// Writes confirmed by the device whose read-back differed.
    write_mismatches: AtomicU64,
}

impl BusCounters {
    /// A consistent-enough copy of the counters (each read atomically).
    pub fn snapshot(&self) -> BusStats {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        BusStats {
            polls: get(&self.polls),
            requests: get(&self.requests),
            timeouts: get(&self.timeouts),
            exceptions: get(&self.exceptions),
            transport: get(&self.transport),
            framing: get(&self.framing),
            link_down: get(&self.link_down),
            late_polls: get(&self.late_polls),
            skipped_ticks: get(&self.skipped_ticks),
            degraded_devices: get(&self.degraded),
            deferred_probes: get(&self.deferred_probes),
            probe_gap_ms: get(&self.probe_gap_ms),
            alarm_polls: get(&self.alarm_polls),
            interleaved_alarms: get(&self.interleaved_alarms),
        }
    }

    fn bump(c: &AtomicU64, n: u64) {
        c.fetch_add(n, Ordering::Relaxed);
    }

    fn failure(&self, error: ReadError) {
        let c = match error {
            ReadError::LinkDown => &self.link_down,
            ReadError::Failed(FailureKind::Timeout) => &self.timeouts,
            ReadError::Failed(FailureKind::Exception { .. }) => &self.exceptions,
            ReadError::Failed(FailureKind::Transport) => &self.transport,
            ReadError::Failed(FailureKind::Framing) => &self.framing,
        };
        Self::bump(c, 1);
    }
}

/// A snapshot of [`BusCounters`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, serde::Serialize)]
pub struct BusStats {
    /// Polls made (full and alarm).
    pub polls: u64,
    /// Requests sent.
    pub requests: u64,
    /// Requests that got no answer in time.
    pub timeouts: u64,
    /// Requests answered with a Modbus exception.
    pub exceptions: u64,
    /// Requests that failed on the connection (or could not connect).
    pub transport: u64,
    /// Requests whose answer was malformed.
    pub framing: u64,
    /// Requests not sent because the link was waiting to reconnect.
    pub link_down: u64,
    /// Polls that ended after their next tick was due.
    pub late_polls: u64,
    /// Ticks dropped because of late polls.
    pub skipped_ticks: u64,
    /// Devices currently degraded (a gauge).
    pub degraded_devices: u64,
    /// Polls of failing devices started later than due because the line had
    /// no time to spare (no idle gap and the failing share spent).
    pub deferred_probes: u64,
    /// The longest spacing between the last two probes of any degraded
    /// device, in ms (a gauge; 0 when none is degraded): the resolution of
    /// the recoveries on this line right now.
    pub probe_gap_ms: u64,
    /// Alarm polls made (also counted in `polls`).
    pub alarm_polls: u64,
    /// Alarm polls that went between two transactions of another device's
    /// poll rather than wait for its end.
    pub interleaved_alarms: u64,
}

impl fmt::Display for BusStats {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "polls={} requests={} timeouts={} exceptions={} transport={} framing={} link_down={} late_polls={} skipped_ticks={} degraded={} deferred_probes={} probe_gap_ms={} alarm_polls={} interleaved_alarms={}",
            self.polls,
            self.requests,
            self.timeouts,
            self.exceptions,
            self.transport,
            self.framing,
            self.link_down,
            self.late_polls,
            self.skipped_ticks,
            self.degraded_devices,
            self.deferred_probes,
            self.probe_gap_ms,
            self.alarm_polls,
            self.interleaved_alarms
        )
    }
}

/// A running bus task.
#[derive(Debug)]
pub struct BusHandle {
    /// The bus id from the configuration.
    pub bus: String,
    /// Its live counters.
    pub counters: Arc<BusCounters>,
    /// Where writes for its devices go (between two polls).
    pub writes: mpsc::Sender<WriteJob>,
    /// The task; it ends when `shutdown` is cancelled or the receiver of
    /// outcomes is dropped.
    pub task: JoinHandle<()>,
}

/// Spawns one task per bus that has devices, with the [`BusOptions`] of the
/// configuration's `[health]` section.
/// Every poll sends a [`PollOutcome`] on `tx` (awaiting when full:
/// backpressure). The tasks stop when `shutdown` is cancelled.
///
/// Must be called inside a tokio runtime.
pub fn spawn_buses(
    resolved: &Resolved,
    tx: mpsc::Sender<PollOutcome>,
    shutdown: CancellationToken,
) -> Vec<BusHandle> {
    spawn_buses_with(
        resolved,
        BusOptions::from_health(&resolved.raw.health),
        tx,
        shutdown,
    )
}

/// [`spawn_buses`] with explicit options.
pub fn spawn_buses_with(
    resolved: &Resolved,
    options: BusOptions,
    tx: mpsc::Sender<PollOutcome>,
    shutdown: CancellationToken,
) -> Vec<BusHandle> {
    let mut handles = Vec::new();
    for (b, bus) in resolved.buses.iter().enumerate() {
        let devices: Vec<(usize, &ResolvedDevice)> = resolved
            .devices
            .iter()
            .enumerate()
            .filter(|(_, d)| d.bus == b)
            .collect();
        if devices.is_empty() {
            continue;
        }
        let counters = Arc::new(BusCounters::default());
        let (writes, writes_rx) = mpsc::channel(WRITE_QUEUE);
        let task = BusTask::new(
            Transport::new(bus),
            bus,
            &devices,
            options,
            tx.clone(),
            shutdown.clone(),
            Arc::clone(&counters),
        )
        .with_writes(writes_rx);
        handles.push(BusHandle {
            bus: bus.id.clone(),
            counters,
            writes,
            task: tokio::spawn(task.run()),
        });
    }
    handles
}

/// The scheduler of one bus over any [`Link`]. [`spawn_buses`] builds these
/// over a [`Transport`]; tests build them over scripted links.
#[derive(Debug)]
pub struct BusTask<L> {
    bus: String,
    link: L,
    inter_frame_delay: Duration,
    devices: Vec<DeviceState>,
    options: BusOptions,
    tx: mpsc::Sender<PollOutcome>,
    shutdown: CancellationToken,
    counters: Arc<BusCounters>,
    /// When the last transaction ended (for the inter-frame delay).
    last_end: Option<Instant>,
    /// What one poll of a silent device costs the line: one timeout and
    /// the inter-frame silence.
    probe_cost: Duration,
    /// The failing share's theoretical time (a GCRA): a poll of a failing
    /// device that would delay a healthy one may start at this instant, not
    /// before. Each failed poll moves it on by its duration / `probe_share`.
    budget_at: Instant,
    /// True while the probes of some degraded device are spaced wider than
    /// their target (logged once per change).
    resolution_degraded: bool,
    /// Writes for this bus's devices, taken between polls (`None`: none).
    writes: Option<mpsc::Receiver<WriteJob>>,
}

#[derive(Debug)]
struct DeviceState {
    /// Index in [`Resolved::devices`].
    index: usize,
    id: String,
    unit: u8,
    points: Arc<Vec<Point>>,
    limits: Limits,
    /// The line's cost model: the planner minimises line time with it.
    cost: Cost,
    barriers: Barriers,
    full_plan: Arc<[Request]>,
    alarm_plan: Arc<[Request]>,
    poll_interval: Duration,
    alarm_interval: Duration,
    next_full: Instant,
    /// `None` when the device has no alarm points or is degraded.
    next_alarm: Option<Instant>,
    /// Consecutive failed polls.
    failures: u32,
    degraded: bool,
    /// When its last poll started (or the task started).
    last_start: Instant,
    /// Spacing of its probes while degraded: `max(poll_interval,
    /// recovery_resolution)`.
    probe_spacing: Duration,
    /// Longest spacing of its probes whatever the budget.
    probe_max: Duration,
    /// Spacing between its last two probes while degraded.
    probe_gap: Option<Duration>,
}

impl DeviceState {
    /// Device `k` of the `n` on its bus: its first full poll is due `k / n`
    /// of its poll interval after `now`, its first alarm poll `k / n` of its
    /// alarm interval after it (phases spread over the line).
    fn new(
        index: usize,
        d: &ResolvedDevice,
        options: BusOptions,
        now: Instant,
        (k, n): (usize, usize),
        cost: Cost,
    ) -> Self {
        let limits = Limits {
            max_registers: d.max_registers,
            max_bits: d.max_bits,
            max_gap: d.max_gap,
        };
        let poll_interval = nonzero(d.poll_interval);
        let probe_spacing = options.recovery_resolution.max(poll_interval);
        let mut state = Self {
            index,
            id: d.id.clone(),
            unit: d.unit,
            points: d.points.clone(),
            limits,
            cost,
            barriers: Barriers::default(),
            full_plan: Arc::from(Vec::new()),
            alarm_plan: Arc::from(Vec::new()),
            poll_interval,
            alarm_interval: nonzero(d.alarm_interval),
            next_full: now + phase(poll_interval, k, n),
            next_alarm: None,
            failures: 0,
            degraded: false,
            last_start: now,
            probe_spacing,
            probe_max: options.probe_max.max(probe_spacing),
            probe_gap: None,
        };
        state.replan();
        let alarm_phase = phase(state.alarm_interval, k, n);
        state.next_alarm = state.has_alarm().then_some(now + alarm_phase);
        state
    }

    fn replan(&mut self) {
        let (limits, barriers, cost) = (self.limits, &self.barriers, &self.cost);
        self.full_plan = plan_costed(&self.points, &|_| true, limits, barriers, cost).into();
        self.alarm_plan = plan_costed(&self.points, &|p| p.alarm, limits, barriers, cost).into();
    }

    fn has_alarm(&self) -> bool {
        !self.alarm_plan.is_empty()
    }

    /// A device whose last poll failed: its polls are budgeted.
    fn failing(&self) -> bool {
        self.failures > 0
    }

    /// When its alarm poll is due, if that comes before its full poll (which
    /// reads the alarm points too).
    fn alarm_due(&self) -> Option<Instant> {
        self.next_alarm.filter(|&a| a < self.next_full)
    }

    fn next_due(&self) -> Instant {
        match self.next_alarm {
            Some(a) if a < self.next_full => a,
            _ => self.next_full,
        }
    }
}

/// The planner's cost model of a bus: a TCP round trip, or the serial line
/// at its baud rate (behind a serial device server, plus a TCP round trip).
pub fn line_cost(bus: &ResolvedBus) -> Cost {
    match bus.kind {
        BusKind::Tcp => Cost::TCP,
        BusKind::Rtu | BusKind::RtuOverTcp => {
            let mut cost = Cost::serial(
                bus.baud,
                bus.bits_per_char(),
                bus.inter_frame_delay,
                SERIAL_TURNAROUND,
            );
            if bus.kind == BusKind::RtuOverTcp {
                cost.request_us += Cost::TCP.request_us;
            }
            cost
        }
    }
}

/// The longest span over which the first polls of a bus's devices are
/// spread: a device with a 10 s interval is still first read within a
/// second of start.
pub const PHASE_SPREAD_MAX: Duration = Duration::from_secs(1);

/// `k / n` of `interval` (of at most [`PHASE_SPREAD_MAX`]): the phase of
/// device `k` of `n` on one bus.
fn phase(interval: Duration, k: usize, n: usize) -> Duration {
    let interval = interval.min(PHASE_SPREAD_MAX);
    let n = n.max(1) as u128;
    let k = (k as u128).min(n);
    Duration::from_nanos(u64::try_from(interval.as_nanos() * k / n).unwrap_or(u64::MAX))
}

/// A zero interval would make the scheduler spin; validation refuses it,
/// this is the last line of defence.
fn nonzero(d: Duration) -> Duration {
    d.max(Duration::from_millis(1))
}

/// The first tick `due + k × interval` (k ≥ 1) strictly after `now`, and the
/// number of ticks skipped to reach it.
fn next_tick(due: Instant, interval: Duration, now: Instant) -> (Instant, u64) {
    let next = due + interval;
    if next > now {
        return (next, 0);
    }
    let behind = now.duration_since(next).as_nanos();
    let skipped = behind / interval.as_nanos() + 1;
    let skipped = u64::try_from(skipped).unwrap_or(u64::MAX);
    let step = interval.saturating_mul(u32::try_from(skipped).unwrap_or(u32::MAX));
    (next + step, skipped)
}

fn unix_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Orders failures for `PollOutcome::failure`: the worst one is reported.
const fn severity(kind: FailureKind) -> u8 {
    match kind {
        FailureKind::Exception { .. } => 1,
        FailureKind::Framing => 2,
        FailureKind::Timeout => 3,
        FailureKind::Transport => 4,
    }
}

/// What one poll produced, before it becomes a [`PollOutcome`].
struct PollResult {
    samples: Vec<Sample>,
    failure: Option<FailureKind>,
    requests: u16,
    failed_requests: u16,
    link_down: bool,
}

/// A poll in progress: what is left to send and what came back so far.
struct Job {
    slot: usize,
    class: PollClass,
    started: Instant,
    queue: VecDeque<Request>,
    result: PollResult,
    /// A timeout/framing/transport failure ended it: the rest is not sent.
    aborted: bool,
    /// At least one request went out.
    sent: bool,
}

impl<L: Link> BusTask<L> {
    /// A scheduler for the devices `(index in Resolved::devices, device)`
    /// of `bus`, their phases spread: device `k` of `n` is first due `k / n`
    /// of its interval after now.
    pub fn new(
        link: L,
        bus: &ResolvedBus,
        devices: &[(usize, &ResolvedDevice)],
        options: BusOptions,
        tx: mpsc::Sender<PollOutcome>,
        shutdown: CancellationToken,
        counters: Arc<BusCounters>,
    ) -> Self {
        let now = Instant::now();
        let n = devices.len();
        let cost = line_cost(bus);
        Self {
            bus: bus.id.clone(),
            link,
            inter_frame_delay: bus.inter_frame_delay,
            devices: devices
                .iter()
                .enumerate()
                .map(|(k, &(i, d))| DeviceState::new(i, d, options, now, (k, n), cost))
                .collect(),
            options,
            tx,
            shutdown,
            counters,
            last_end: None,
            probe_cost: bus.timeout.saturating_add(bus.inter_frame_delay),
            budget_at: now,
            resolution_degraded: false,
            writes: None,
        }
    }

    /// Takes writes from `rx` between polls (see `bus/write.rs`).
    #[must_use]
    pub fn with_writes(mut self, rx: mpsc::Receiver<WriteJob>) -> Self {
        self.writes = Some(rx);
        self
    }

    /// Polls until `shutdown` is cancelled or the outcome receiver is dropped.
    pub async fn run(mut self) {
        let shutdown = self.shutdown.clone();
        tokio::select! {
            biased;
            () = shutdown.cancelled() => {}
            () = self.poll_forever() => {}
        }
        debug!(bus = %self.bus, "bus task stopped");
    }

    async fn poll_forever(&mut self) {
        // The poll looked at before a write is the same one after it: its
        // deferral is counted once.
        let mut after_write = false;
        loop {
            let Some((slot, due)) = self.next_device() else {
                std::future::pending::<()>().await;
                return;
            };
            let device = &self.devices[slot];
            if device.failing() && due > device.next_due() && !after_write {
                BusCounters::bump(&self.counters.deferred_probes, 1);
            }
            after_write = false;
            // A write waiting for the line goes before the next poll; the
            // schedule is looked at again after it.
            let write = match self.writes.as_mut() {
                Some(rx) => tokio::select! {
                    biased;
                    job = rx.recv() => job.ok_or(()),
                    () = sleep_until(due) => Err(()),
                },
                None => {
                    sleep_until(due).await;
                    Err(())
                }
            };
            match write {
                Ok(job) => {
                    self.run_write(job).await;
                    after_write = true;
                    continue;
                }
                // The sender is gone (no writes any more): stop listening.
                Err(()) if self.writes.as_ref().is_some_and(mpsc::Receiver::is_closed) => {
                    self.writes = None;
                    sleep_until(due).await;
                }
                Err(()) => {}
            }
            let device = &self.devices[slot];
            let class = if device.next_full <= Instant::now() {
                PollClass::Full
            } else {
                PollClass::Alarm
            };
            if !self.poll_and_report(slot, class, true).await {
                debug!(bus = %self.bus, "outcome receiver dropped");
                return;
            }
        }
    }

    /// Polls one device, reschedules it and sends its outcome; false when
    /// the outcome receiver is gone. With `interleave`, the alarm polls of
    /// other devices that fall due meanwhile go between its transactions
    /// (each reported on its own, before this poll's outcome).
    async fn poll_and_report(&mut self, slot: usize, class: PollClass, interleave: bool) -> bool {
        let mut job = self.job(slot, class);
        while interleave && let Some(other) = self.run_job(&mut job, true).await {
            BusCounters::bump(&self.counters.interleaved_alarms, 1);
            let mut alarm = self.job(other, PollClass::Alarm);
            // Without interleaving it runs to its end.
            let _ = self.run_job(&mut alarm, false).await;
            if !self.report(alarm).await {
                return false;
            }
        }
        if !interleave {
            let _ = self.run_job(&mut job, false).await;
        }
        self.report(job).await
    }

    /// Reschedules the device of a finished poll and sends its outcome;
    /// false when the outcome receiver is gone.
    async fn report(&mut self, job: Job) -> bool {
        let ended = Instant::now();
        let Job {
            slot,
            class,
            started,
            mut result,
            ..
        } = job;
        result.samples.sort_by_key(|s| s.point);
        let outcome = PollOutcome {
            device: self.devices[slot].index,
            ts_ms: unix_ms(),
            class,
            samples: result.samples,
            failure: result.failure,
            requests: result.requests,
            failed_requests: result.failed_requests,
            elapsed_us: u64::try_from(ended.duration_since(started).as_micros())
                .unwrap_or(u64::MAX),
        };
        BusCounters::bump(&self.counters.polls, 1);
        if class == PollClass::Alarm {
            BusCounters::bump(&self.counters.alarm_polls, 1);
        }
        let failed = !result.link_down
            && outcome
                .failure
                .is_some_and(|k| !matches!(k, FailureKind::Exception { .. }));
        self.reschedule(slot, class, started, ended, failed, result.link_down);
        self.tx.send(outcome).await.is_ok()
    }

    /// The device (other than `busy`) whose alarm poll is due now and goes
    /// between two transactions of `busy`'s poll: answering devices only
    /// (a failing device's polls are budgeted), earliest due first.
    fn due_alarm(&self, busy: usize) -> Option<usize> {
        let now = Instant::now();
        self.devices
            .iter()
            .enumerate()
            .filter(|&(slot, d)| slot != busy && !d.failing())
            .filter_map(|(slot, d)| d.alarm_due().filter(|&a| a <= now).map(|a| (a, slot)))
            .min()
            .map(|(_, slot)| slot)
    }

    /// The device to poll next, and when.
    ///
    /// Devices that answer (and devices not polled yet) are served when due.
    /// A failing device is served when due only if its poll, costing one
    /// timeout, ends before any of those is due (idle time costs nobody);
    /// otherwise it waits for the failing share's budget ([`Self::budget_at`]),
    /// but never longer than its `probe_max` after its last poll. Among the
    /// answering devices that are due now, alarm polls go before full
    /// polls. Ties go to answering devices, then to the earliest due, then
    /// to the configuration order.
    fn next_device(&self) -> Option<(usize, Instant)> {
        let now = Instant::now();
        let next_sound = self
            .devices
            .iter()
            .filter(|d| !d.failing())
            .map(DeviceState::next_due)
            .min();
        self.devices
            .iter()
            .enumerate()
            .map(|(slot, d)| {
                let due = d.next_due();
                if !d.failing() {
                    // Every answering device that is due now is due "now":
                    // alarm polls go first, then full polls, earliest due first.
                    let rank = if d.alarm_due().is_some() { 0 } else { 1 };
                    return (slot, due.max(now), rank, due);
                }
                let fits = next_sound.is_none_or(|n| due.max(now) + self.probe_cost <= n);
                let at = if fits {
                    due
                } else {
                    due.max(self.budget_at.min(d.last_start + d.probe_max))
                };
                (slot, at, 2u8, due)
            })
            .min_by_key(|&(slot, at, rank, due)| (at, rank, due, slot))
            .map(|(slot, at, _, _)| (slot, at))
    }

    /// A poll of `slot`'s `class` plan, not started yet.
    fn job(&self, slot: usize, class: PollClass) -> Job {
        let device = &self.devices[slot];
        let plan = match class {
            PollClass::Full => &device.full_plan,
            PollClass::Alarm => &device.alarm_plan,
        };
        Job {
            slot,
            class,
            started: Instant::now(),
            queue: plan.iter().cloned().collect(),
            result: PollResult {
                samples: Vec::new(),
                failure: None,
                requests: 0,
                failed_requests: 0,
                link_down: false,
            },
            aborted: false,
            sent: false,
        }
    }

    /// Sends the requests of `job` until none is left (`None`), or, with
    /// `interleave`, until another device's alarm poll is due before its
    /// next transaction (`Some(that device)`; call again to go on).
    async fn run_job(&mut self, job: &mut Job, interleave: bool) -> Option<usize> {
        let slot = job.slot;
        let result = &mut job.result;
        while let Some(req) = job.queue.pop_front() {
            if job.aborted {
                result
                    .samples
                    .extend(failed_request(&req, BadReason::NotRead));
                continue;
            }
            if interleave
                && job.sent
                && let Some(other) = self.due_alarm(slot)
            {
                job.queue.push_front(req);
                return Some(other);
            }
            job.sent = true;
            let device = &self.devices[slot];
            quiet_gap(self.last_end, self.inter_frame_delay).await;
            let answer = self
                .link
                .read(device.unit, req.area, req.start, req.count)
                .await;
            self.last_end = Some(Instant::now());
            if answer != Err(ReadError::LinkDown) {
                result.requests = result.requests.saturating_add(1);
                BusCounters::bump(&self.counters.requests, 1);
            }
            let device = &mut self.devices[slot];
            match answer {
                Ok(Data::Words(words)) => {
                    result
                        .samples
                        .extend(decode_request(&device.points, &req, &words))
                }
                Ok(Data::Bits(bits)) => {
                    result
                        .samples
                        .extend(decode_request_bits(&device.points, &req, &bits))
                }
                Err(error) => {
                    self.counters.failure(error);
                    let kind = error.kind();
                    result.failed_requests = result.failed_requests.saturating_add(1);
                    if result.failure.is_none_or(|f| severity(kind) > severity(f)) {
                        result.failure = Some(kind);
                    }
                    match error {
                        ReadError::Failed(FailureKind::Exception { code }) => {
                            if code == EXCEPTION_ILLEGAL_DATA_ADDRESS
                                && device.barriers.on_illegal_address(&req, &device.points)
                            {
                                let refused: Vec<usize> = req.points.clone();
                                let retry = plan_subset(device, &refused);
                                info!(
                                    bus = %self.bus, device = %device.id, area = %req.area,
                                    start = req.start, count = req.count, split_into = retry.len(),
                                    "device refused a coalesced range; splitting it"
                                );
                                device.replan();
                                for r in retry.into_iter().rev() {
                                    job.queue.push_front(r);
                                }
                            } else {
                                result
                                    .samples
                                    .extend(failed_request(&req, BadReason::Exception { code }));
                            }
                        }
                        ReadError::LinkDown => {
                            result.link_down = true;
                            job.aborted = true;
                            result
                                .samples
                                .extend(failed_request(&req, BadReason::NotRead));
                        }
                        ReadError::Failed(_) => {
                            job.aborted = true;
                            result
                                .samples
                                .extend(failed_request(&req, BadReason::NotRead));
                        }
                    }
                }
            }
        }
        None
    }

    fn reschedule(
        &mut self,
        slot: usize,
        class: PollClass,
        started: Instant,
        now: Instant,
        failed: bool,
        link_down: bool,
    ) {
        let options = self.options;
        let counters = Arc::clone(&self.counters);
        if failed {
            // The failing share pays for the line time this poll took.
            let share = options.probe_share.clamp(0.01, 1.0);
            let spent = now.duration_since(started).as_secs_f64() / share;
            let spent = Duration::try_from_secs_f64(spent).unwrap_or(options.probe_max);
            self.budget_at = self.budget_at.max(started) + spent;
        }
        let d = &mut self.devices[slot];
        let previous_start = std::mem::replace(&mut d.last_start, started);
        if failed {
            d.failures = d.failures.saturating_add(1);
        } else if !link_down {
            if d.degraded {
                info!(bus = %self.bus, device = %d.id, "device answers again; normal polling resumed");
                counters.degraded.fetch_sub(1, Ordering::Relaxed);
                d.next_full = now;
                d.next_alarm = d.has_alarm().then_some(now);
            }
            d.failures = 0;
            d.degraded = false;
            d.probe_gap = None;
        }

        if d.failures >= options.degrade_after {
            if d.degraded {
                d.probe_gap = Some(started.duration_since(previous_start));
            } else {
                warn!(
                    bus = %self.bus, device = %d.id, failures = d.failures,
                    probe_every_ms = u64::try_from(d.probe_spacing.as_millis()).unwrap_or(u64::MAX),
                    "device keeps failing; probing it until it answers"
                );
                counters.degraded.fetch_add(1, Ordering::Relaxed);
                d.degraded = true;
            }
            // Spaced from the start of this probe: a return is seen at most
            // one spacing (and one answer) after it happens.
            d.next_full = started + d.probe_spacing;
            d.next_alarm = None;
            self.update_resolution();
            return;
        }
        if !failed {
            self.update_resolution();
        }
        let d = &mut self.devices[slot];

        let mut late = false;
        let mut skipped = 0;
        if class == PollClass::Full {
            let (next, s) = next_tick(d.next_full, d.poll_interval, now);
            d.next_full = next;
            late |= s > 0;
            skipped += s;
        }
        if let Some(alarm) = d.next_alarm {
            // A full poll read the alarm points too: an alarm tick that was
            // due is consumed by it (and not counted as skipped).
            if alarm <= now {
                let (next, s) = next_tick(alarm, d.alarm_interval, now);
                d.next_alarm = Some(next);
                if class == PollClass::Alarm {
                    late |= s > 0;
                    skipped += s;
                }
            }
        }
        if late {
            BusCounters::bump(&counters.late_polls, 1);
            BusCounters::bump(&counters.skipped_ticks, skipped);
        }
    }

    /// Updates the probe-gap gauge and logs when the line's resolution of
    /// recoveries degrades (probes spaced wider than their target because
    /// the line has no time for them) or is restored.
    fn update_resolution(&mut self) {
        let mut worst = Duration::ZERO;
        let mut late = None;
        for d in self.devices.iter().filter(|d| d.degraded) {
            if let Some(gap) = d.probe_gap {
                worst = worst.max(gap);
                if gap > d.probe_spacing + self.probe_cost {
                    late = Some((d.id.as_str(), gap, d.probe_spacing));
                }
            }
        }
        let ms = u64::try_from(worst.as_millis()).unwrap_or(u64::MAX);
        self.counters.probe_gap_ms.store(ms, Ordering::Relaxed);
        match late {
            Some((device, gap, target)) if !self.resolution_degraded => {
                self.resolution_degraded = true;
                let silent = self.devices.iter().filter(|d| d.degraded).count();
                warn!(
                    bus = %self.bus, device, silent,
                    probe_gap_ms = u64::try_from(gap.as_millis()).unwrap_or(u64::MAX),
                    target_ms = u64::try_from(target.as_millis()).unwrap_or(u64::MAX),
                    "too many silent devices for this line's time: their recoveries are seen later than the recovery resolution"
                );
            }
            None if self.resolution_degraded => {
                self.resolution_degraded = false;
                info!(bus = %self.bus, "silent devices probed at their resolution again");
            }
            _ => {}
        }
    }
}

/// Waits for the inter-frame silence after the previous transaction.
async fn quiet_gap(last_end: Option<Instant>, delay: Duration) {
    if let Some(end) = last_end
        && !delay.is_zero()
    {
        sleep_until(end + delay).await;
    }
}

/// Plans requests for just the points `subset` of `device`, with its
/// current barriers.
fn plan_subset(device: &DeviceState, subset: &[usize]) -> Vec<Request> {
    let mut selected = vec![false; device.points.len()];
    for &i in subset {
        if let Some(s) = selected.get_mut(i) {
            *s = true;
        }
    }
    // `plan` hands the selector references into `points`: identity is the index.
    let points = &device.points;
    let chosen: Vec<&Point> = points
        .iter()
        .zip(&selected)
        .filter_map(|(p, &s)| s.then_some(p))
        .collect();
    plan_costed(
        points,
        &|p| chosen.iter().any(|c| std::ptr::eq(*c, p)),
        device.limits,
        &device.barriers,
        &device.cost,
    )
}
