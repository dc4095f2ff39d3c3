//! The gateway's main loop: buses → poll outcomes → the core engine → sinks.
//!
//! Every outcome goes to the [`Engine`] (health, ledger, tickets; stored
//! before announced) when there is one, and to a caller-supplied sink with
//! what the engine stored: `run --stdout` writes outcomes as JSON lines,
//! `demo` shows a table. Until the north side (MQTT, InfluxDB) exists, the
//! sink is where announcements go.
//!
//! The engine's database writes are synchronous and short (SQLite in WAL
//! mode, no fsync per commit by default: tens to hundreds of microseconds,
//! a few per second at most in steady state); they run on this loop's task,
//! on the gateway's single runtime thread, well inside any Modbus timeout.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway_core::config::Resolved;
use gateway_core::model::{FailureKind, PollClass, PollOutcome};
use gateway_core::state::UnixMs;
use tokio::sync::mpsc;
use tokio::time::MissedTickBehavior;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::engine::{CoreEvent, Engine};
use crate::north::North;
use crate::south::{self, BusHandle};

/// How often the engine's clock ticks (windows, holds, thresholds,
/// deadlines, commands, heartbeat).
pub const ENGINE_TICK: Duration = Duration::from_secs(1);

/// What the sink is given.
#[derive(Clone, Copy, Debug)]
pub enum Event<'a> {
    /// A device poll.
    Poll(&'a PollOutcome),
    /// Something the engine stored: a transition, an alarm, a ticket change.
    Core(&'a CoreEvent),
}

/// The core engine for a run, with the events of its start and,
/// optionally, a bounded channel that receives every stored event (for the
/// north side and alerts). A full channel makes the loop wait (and the
/// buses with it, through the bounded outcome queue): nothing is dropped.
#[derive(Debug)]
pub struct Core {
    /// The engine, from [`Engine::open`].
    pub engine: Engine,
    /// The events [`Engine::open`] returned (recovery, start-up).
    pub startup: Vec<CoreEvent>,
    /// Where stored events go besides the sink.
    pub events: Option<mpsc::Sender<CoreEvent>>,
    /// The north side's writer (MQTT through the outbox), if publishing.
    pub north: Option<North>,
    /// How often every device's retained state is republished.
    pub state_every: Duration,
    /// Replies to MQTT commands, to publish.
    pub replies: Option<mpsc::Receiver<crate::wire::Body>>,
    /// Report by exception for telemetry (when publishing).
    pub rbe: Option<gateway_core::rbe::Rbe>,
    /// Telemetry lines for InfluxDB (when `[influx]` is on).
    pub influx: Option<crate::north::influx_feed::InfluxFeed>,
    /// The admin listener's metrics (the loop adds the bus counters).
    pub metrics: Option<Arc<crate::admin::Metrics>>,
    /// Alerts for the MQTT topic `…/alert` (an `mqtt` alert channel), to append to the outbox.
    pub alerts: Option<mpsc::Receiver<crate::alerts::channels::MqttAlert>>,
}

impl Core {
    /// An engine with no channel and no north side.
    pub fn new((engine, startup): (Engine, Vec<CoreEvent>)) -> Core {
        Core {
            engine,
            startup,
            events: None,
            north: None,
            state_every: Duration::from_secs(60),
            replies: None,
            rbe: None,
            influx: None,
            metrics: None,
            alerts: None,
        }
    }

    /// For a configuration reload, after a run with
    /// [`RunOptions::keep_core`]: the engine reloaded for `cfg`
    /// ([`Engine::reload`]: the devices whose configuration did not change
    /// keep their state and open interval; the ledger, tickets and windows
    /// are read back from the database), everything else kept: the north
    /// side and its outbox, the InfluxDB feed, the event channel, the
    /// metrics. Report by exception starts afresh for the new device list.
    pub fn reload(
        self,
        cfg: &Resolved,
        heartbeat: Duration,
        now_ms: UnixMs,
    ) -> Result<Core, crate::engine::EngineError> {
        let (engine, startup) = self.engine.reload(cfg, now_ms)?;
        let rbe = self
            .rbe
            .as_ref()
            .map(|_| gateway_core::rbe::Rbe::new(&cfg.devices, heartbeat));
        Ok(Core {
            engine,
            startup,
            rbe,
            ..self
        })
    }

    /// Gives stored events to the north side, the sink and the channel;
    /// false when the sink wants to stop. A closed channel (its receiver
    /// gone) is logged and then left out. Each transition and each start or
    /// end of a hard alarm also republishes its device's state (which lists
    /// the active alarms), unless `states` is false (at start, where every
    /// state is published once afterwards).
    async fn announce(
        &mut self,
        sink: &mut impl FnMut(Event<'_>) -> bool,
        events: Vec<CoreEvent>,
    ) -> bool {
        self.announce_with(sink, events, true).await
    }

    async fn announce_with(
        &mut self,
        sink: &mut impl FnMut(Event<'_>) -> bool,
        events: Vec<CoreEvent>,
        states: bool,
    ) -> bool {
        let now = unix_now_ms();
        for ev in events {
            if let Some(n) = self.north.as_mut() {
                n.on_core(&ev, now);
                let device = match &ev {
                    CoreEvent::Transition(t) => Some(&t.device),
                    CoreEvent::Alarm(a) => Some(&a.device),
                    _ => None,
                };
                if states
                    && let Some(device) = device
                    && let Some(i) = self.engine.index(device)
                    && let Some(v) = self.engine.state_view(i, now)
                {
                    n.on_state(&v, now);
                }
            }
            if !sink(Event::Core(&ev)) {
                return false;
            }
            if let Some(tx) = &self.events
                && !tx.is_closed()
                && tx.send(ev).await.is_err()
            {
                warn!("the core event receiver is gone; events go to the database only");
            }
        }
        true
    }

    /// Every device's retained state.
    fn publish_states(&mut self, cfg: &Resolved) {
        if self.north.is_none() && self.influx.is_none() {
            return;
        }
        let now = unix_now_ms();
        for v in self.engine.state_views(now) {
            if let Some(n) = self.north.as_mut() {
                n.on_state(&v, now);
            }
            if let Some(f) = self.influx.as_mut() {
                f.on_state(cfg, &v, now);
            }
        }
    }

    /// Appends what the north side buffered.
    fn flush(&mut self) {
        if let Some(f) = self.influx.as_mut() {
            // Logged by the feed once per failure, not at every retry.
            let _ = f.flush();
        }
        if let Some(n) = self.north.as_mut() {
            // The north side logs when appends start failing and when they
            // work again, not at every retry.
            let _ = n.flush();
        }
    }
}

/// Wall-clock now in Unix milliseconds.
pub fn unix_now_ms() -> UnixMs {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

/// Outcomes waiting between the buses and the consumer. Bounded: a slow
/// consumer slows the buses down rather than growing memory.
pub const OUTCOME_QUEUE: usize = 1024;

/// How `run` behaves.
#[derive(Clone, Debug)]
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
    /// Hand the core back in [`RunSummary::core`] instead of dropping it
    /// (a configuration reload runs the loop again with it).
    pub keep_core: bool,
    /// Where the command handler finds this run's buses for writes: the
    /// run installs its configuration and bus queues there.
    pub writes: Option<std::sync::Arc<crate::south::writes::Router>>,
}

impl Default for RunOptions {
    fn default() -> Self {
        Self {
            once: false,
            once_attempts: 3,
            stats_every: Duration::from_secs(60),
            keep_core: false,
            writes: None,
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
    /// The core, stopped, when [`RunOptions::keep_core`] asked for it.
    pub core: Option<Core>,
    /// The run stopped because the ledger database is damaged: why.
    pub fatal: Option<String>,
}

/// Polls every bus of `cfg` until `shutdown` is cancelled (or, in `once`
/// mode, until every device has a final answer), giving each outcome to
/// the engine, if any, and to `sink` with what the engine stored. `engine`
/// comes with the events of its start ([`Engine::open`]), given to the sink
/// first. Return `false` from the sink to stop early (e.g. stdout closed).
/// On the way out the engine is stopped cleanly (last heartbeat).
pub async fn run(
    cfg: &Resolved,
    opts: RunOptions,
    core: Option<Core>,
    mut sink: impl FnMut(Event<'_>) -> bool,
    shutdown: CancellationToken,
) -> RunSummary {
    let (tx, mut rx) = mpsc::channel(OUTCOME_QUEUE);
    let buses_stop = shutdown.child_token();
    let buses = south::spawn_buses(cfg, tx, buses_stop.clone());
    if let Some(w) = &opts.writes {
        w.install(cfg, &buses);
    }
    info!(
        buses = buses.len(),
        devices = cfg.devices.len(),
        site = %cfg.site,
        gateway = %cfg.gateway,
        "polling started"
    );
    let mut summary = RunSummary::default();
    let mut core = core;
    if let Some(m) = core.as_ref().and_then(|c| c.metrics.as_ref())
        && let Ok(mut b) = m.buses.lock()
    {
        // This run's buses only (a reload may have changed them).
        b.clear();
        b.extend(
            buses
                .iter()
                .map(|h| (h.bus.clone(), Arc::clone(&h.counters))),
        );
    }
    if let Some(c) = core.as_mut() {
        let startup = std::mem::take(&mut c.startup);
        if !c.announce_with(&mut sink, startup, false).await {
            shutdown.cancel();
        }
        c.publish_states(cfg);
        c.flush();
        crate::sdnotify::ready(&format!("polling {} devices", cfg.devices.len()));
    }
    let mut engine_tick = tokio::time::interval(ENGINE_TICK);
    engine_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let mut flush_tick = tokio::time::interval(crate::north::FLUSH_EVERY);
    flush_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let state_every = core
        .as_ref()
        .map_or(Duration::from_secs(60), |c| c.state_every);
    let mut state_tick =
        tokio::time::interval_at(tokio::time::Instant::now() + state_every, state_every);
    state_tick.set_missed_tick_behavior(MissedTickBehavior::Delay);
    let has_north = core
        .as_ref()
        .is_some_and(|c| c.north.is_some() || c.influx.is_some());
    let mut replies = core.as_mut().and_then(|c| c.replies.take());
    let mut alerts = core.as_mut().and_then(|c| c.alerts.take());
    let mut selected = Vec::new();
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
        let has_engine = core.is_some();
        let engine_due = async {
            if has_engine {
                engine_tick.tick().await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let north_due = async {
            if has_north {
                flush_tick.tick().await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let states_due = async {
            if has_north {
                state_tick.tick().await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let reply_due = async {
            match replies.as_mut() {
                Some(r) => r.recv().await,
                None => std::future::pending().await,
            }
        };
        let alert_due = async {
            match alerts.as_mut() {
                Some(r) => r.recv().await,
                None => std::future::pending().await,
            }
        };
        tokio::select! {
            _ = shutdown.cancelled() => break,
            a = alert_due => match (a, core.as_mut()) {
                // An alert on MQTT: accepted once it is in the outbox.
                (Some(a), Some(c)) => {
                    let ok = c.north.as_mut().is_some_and(|n| {
                        n.on_alert(a.body);
                        n.flush().is_ok()
                    });
                    let _ = a.done.send(ok);
                }
                (None, _) => alerts = None,
                _ => {}
            },
            _ = tick => log_stats(&buses),
            r = reply_due => {
                match (r, core.as_mut().and_then(|c| c.north.as_mut())) {
                    (Some(body), Some(n)) => n.on_reply(body),
                    (None, _) => replies = None,
                    _ => {}
                }
            }
            _ = engine_due => {
                if let Some(c) = core.as_mut() {
                    crate::sdnotify::watchdog();
                    let evs = c.engine.tick(unix_now_ms());
                    if !c.announce(&mut sink, evs).await {
                        break;
                    }
                }
            }
            _ = north_due => {
                if let Some(c) = core.as_mut() {
                    c.flush();
                }
            }
            _ = states_due => {
                if let Some(c) = core.as_mut() {
                    c.publish_states(cfg);
                }
            }
            o = rx.recv() => {
                let Some(o) = o else { break };
                summary.outcomes += 1;
                if opts.once {
                    if let Some(final_outcome) = once.offer(o) {
                        if !sink(Event::Poll(&final_outcome)) { break; }
                        if once.all_done() { break; }
                    }
                } else {
                    if let Some(c) = core.as_mut() {
                        let evs = c.engine.observe(&o);
                        if !evs.is_empty() && !c.announce(&mut sink, evs).await {
                            break;
                        }
                        if let Some(f) = c.influx.as_mut() {
                            f.on_poll(cfg, &o);
                        }
                        if let Some(n) = c.north.as_mut() {
                            match c.rbe.as_mut() {
                                Some(rbe) => {
                                    rbe.select_into(&o, &mut selected);
                                    n.on_poll(cfg, &o, Some(&selected));
                                }
                                None => n.on_poll(cfg, &o, None),
                            }
                        }
                    }
                    if !sink(Event::Poll(&o)) {
                        break;
                    }
                }
            }
        }
        // Write-through: an alarm, state, event, ticket or reply made by
        // what just happened is appended and the publisher woken now, not
        // at the next flush tick (telemetry waits for the tick).
        if let Some(n) = core.as_mut().and_then(|c| c.north.as_mut()) {
            let _ = n.flush_urgent();
        }
        // A damaged ledger: polling on would record nothing.
        if let Some(f) = core.as_ref().and_then(|c| c.engine.fatal()) {
            summary.fatal = Some(f.to_owned());
            break;
        }
    }
    if core.is_some() {
        crate::sdnotify::stopping();
    }
    buses_stop.cancel();
    for b in buses {
        let _ = b.task.await;
    }
    if let Some(c) = core.as_mut() {
        let evs = c.engine.stop(unix_now_ms());
        c.announce(&mut sink, evs).await;
        c.flush();
    }
    if let Some(c) = core.as_mut() {
        c.replies = replies;
        c.alerts = alerts;
    }
    if opts.keep_core {
        summary.core = core;
    } else {
        // Dropping the sender ends the receiver's stream.
        drop(core);
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
