//! The core engine: poll outcomes → health → ledger → tickets, persisted in
//! the [`Store`] before anything is announced (issue #3).
//!
//! The engine is synchronous and takes the time as an argument; the run
//! loop ([`crate::run`]) feeds it every poll outcome ([`Engine::observe`])
//! and calls [`Engine::tick`] about once a second with the wall clock. Each
//! call returns the [`CoreEvent`]s that are now safely in the database, in
//! the order they happened, for the north side to announce.
//!
//! # Start ([`Engine::open`])
//!
//! 1. Takes an exclusive lock on `<data_dir>/gateway.lock`: two gateways on
//!    one data directory would write the same ledger.
//! 2. Opens the database; finishes queued commands it cannot read.
//! 3. **Recovery**: every interval left open by the previous run (a crash,
//!    a power cut or a stop) is closed at the last heartbeat and an
//!    `Unknown`/`gateway_down` interval opened there (`Store::recover`).
//! 4. Opens an `Unknown`/`startup` interval at the start time for every
//!    configured device (the gap closes here; until the first poll decides,
//!    the device is Unknown because it has not been reached yet), records
//!    the configured devices, and writes a heartbeat.
//! 5. Loads the in-memory [`Ledger`] (the longest rolling window of history)
//!    and the [`TicketBook`] (tickets not closed, or still within the rework
//!    period). Devices with an availability ticket that is not closed are
//!    marked below their threshold, and alarms of alarm tickets not yet
//!    recovered are seeded as active, so a restart reports neither a new
//!    fault nor a false rework.
//!
//! # Running
//!
//! - A **transition** from [`Health`] is written to the ledger
//!   (`Store::record_transition`), applied to the in-memory ledger, then
//!   given to the ticket book (a device back Up records the recovery of its
//!   availability ticket).
//! - A **hard alarm** opens (or reopens) a critical ticket at once, unless
//!   the device is in planned maintenance; when a device leaves maintenance
//!   with an alarm still active, the ticket opens then. The active alarms,
//!   with the time each began, are part of the device's state view
//!   ([`StateView::alarms`]), which the run loop republishes (retained) at
//!   each start and end of an alarm.
//! - Every [`AVAILABILITY_EVERY`] the rolling availability of each device
//!   not in maintenance is compared with its threshold; falling below opens
//!   an ordinary availability ticket (when the window's coverage is at least
//!   `availability.min_coverage`), unless the device has an active alarm
//!   ticket: one fault, one ticket (the device then stays marked below, so
//!   no availability ticket follows for the same dip).
//! - Every tick: maintenance windows (configured and stored) are applied,
//!   debounce holds expire, resolved tickets are closed when due, and the
//!   commands queued by the CLI are applied and answered.
//! - Every [`HEARTBEAT_EVERY`], when nothing is waiting to be written, a
//!   heartbeat is written: it vouches that the ledger is complete up to then.
//! - **Retention**: on the first tick and then every [`PRUNE_EVERY`], a run
//!   deletes what lies entirely before the cutoff (`[store] keep_months`
//!   full months before the current one, in the site's zone; see
//!   `store/retention.rs`), one batch of at most [`PRUNE_BATCH`] rows per
//!   tick while nothing waits to be written, so the loop is never held for
//!   more than a few milliseconds. A run that deleted anything logs one
//!   line with the counts.
//!
//! # Nothing lost on a database fault
//!
//! Every write goes through one ordered queue. A write that fails (disk
//! full, a lock held too long) stays at the head of the queue and is retried
//! on the next tick; the events behind it wait, so nothing is announced
//! before it is stored and the order is kept. No heartbeat is written while
//! the queue is not empty, so a crash meanwhile turns the unwritten stretch
//! into `gateway_down`. A write the database refuses as inconsistent (a
//! bug, never a transient fault) is logged and dropped.
//!
//! A full disk is such a transient fault: the data disk's spare file is
//! released ([`crate::store::Space`]) and the write tried again at once;
//! while writes fail, `/healthz` is degraded. A **damaged** database
//! (SQLite reports corruption) is not: retrying cannot help, so the engine
//! stops taking outcomes ([`Engine::fatal`]) and the gateway exits with a
//! code of its own, so that the service manager restarts it and the start
//! check refuses the file, naming the way back (`gateway restore`),
//! instead of polling on with a ledger that is no longer written.

use std::collections::{BTreeMap, VecDeque};
use std::path::{Path, PathBuf};

use chrono_tz::Tz;
use gateway_core::config::Resolved;
use gateway_core::health::{Health, HealthEvent, REASON_STARTUP};
use gateway_core::ledger::{
    Crossing, Ledger, ThresholdWatch, month_to_date, parse_tz, retention_cutoff, totals,
};
use gateway_core::maintenance::{Window, active_window};
use gateway_core::model::{DeviceClass, PollOutcome};
use gateway_core::state::{DeviceState, HardAlarm, Interval, Transition, UnixMs};
use gateway_core::tickets::{
    DeviceRef, KIND_AVAILABILITY, TicketBook, TicketError, TicketEvent, TicketEventKind,
    TicketState,
};
use serde::Serialize;
use tracing::{error, info, warn};

use crate::store::{
    Command, Cutoff, DataDirLock, DeviceRow, LOCK_FILE, Pruned, Store, StoreError,
    apply_ticket_command, apply_window_command,
};
use crate::wire::{ActiveAlarm, StateView};

#[cfg(test)]
mod tests;

/// How often a heartbeat is written (at most this much of a crash's gap
/// was watched but is counted as `gateway_down`).
pub const HEARTBEAT_EVERY: i64 = 5_000;
/// How often rolling availability is compared with the thresholds.
pub const AVAILABILITY_EVERY: i64 = 5_000;
/// How often a retention run starts (the first on the first tick).
pub const PRUNE_EVERY: i64 = 24 * 3_600_000;
/// Rows deleted per tick at most by a retention run (a few milliseconds
/// of the write lock on an edge box).
pub const PRUNE_BATCH: usize = 500;
/// How long after a failed retention step the next run starts.
const PRUNE_RETRY: i64 = 3_600_000;
/// How long a start waits for the data directory's lock.
pub const LOCK_WAIT: std::time::Duration = std::time::Duration::from_secs(3);

/// What the engine has stored and may now be announced.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum CoreEvent {
    /// A device's state changed (an interval closed and the next opened).
    Transition(Transition),
    /// A critical point's alarm became active or cleared.
    Alarm(HardAlarm),
    /// A device's rolling availability crossed its threshold.
    Threshold {
        /// Device id.
        device: String,
        /// Which way, with the availability (0–1) and threshold (per cent).
        crossing: Crossing,
        /// When it was seen.
        at_ms: UnixMs,
    },
    /// A ticket changed; the snapshot is the ticket after the change
    /// (boxed: a ticket with its history is large, and rare).
    Ticket(Box<TicketEvent>),
}

/// Why the engine cannot start.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    /// The site's time zone is not known.
    #[error("{0}")]
    Timezone(String),
    /// A fault rule cannot be built (validation should have caught it).
    #[error("{0}")]
    Health(#[from] gateway_core::health::HealthError),
    /// The lock file cannot be created.
    #[error("cannot create the lock file {path}: {source}")]
    LockFile {
        /// The lock file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// Another gateway holds the data directory.
    #[error(
        "another gateway is running with the data directory {0} (it holds {LOCK_FILE}); stop it, or give this one another data_dir"
    )]
    Locked(PathBuf),
    /// The database cannot be opened, recovered or loaded.
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// One ordered write, and what it announces once stored.
#[derive(Debug)]
enum Pending {
    Transition(Transition),
    Tickets(Vec<TicketEvent>),
    /// Not stored (an alarm, a threshold crossing); waits its turn so that
    /// the order of announcements holds.
    Announce(CoreEvent),
    /// A queued command's outcome and when it was applied, recorded after
    /// the events it caused.
    Finish(i64, Result<String, String>, UnixMs),
}

/// A configured device as the engine needs it.
#[derive(Clone, Debug)]
struct Dev {
    id: String,
    class: DeviceClass,
    /// Names and location, for the published state.
    name_zh: String,
    name_en: String,
    location: String,
    location_en: String,
    /// Point and rule labels, for the published state and tickets.
    labels: std::sync::Arc<gateway_core::config::Labels>,
    threshold_percent: f64,
    window_ms: i64,
    /// The maintenance window the device is in now.
    window: Option<String>,
    /// What decides its state, to tell on a reload whether it changed.
    judged: Judged,
}

/// The configuration that decides a device's state: where it is polled,
/// what is read and how it is judged. Names, location, threshold and poll
/// intervals are not part of it: a reload changing only those keeps the
/// device's state and open interval.
#[derive(Clone, Debug, PartialEq)]
struct Judged {
    bus: String,
    unit: u8,
    profile: String,
    points: std::sync::Arc<Vec<gateway_core::model::Point>>,
    rules: BTreeMap<String, gateway_core::config::Rule>,
    health: gateway_core::config::HealthConfig,
}

impl Judged {
    fn of(cfg: &Resolved, d: &gateway_core::config::ResolvedDevice) -> Judged {
        Judged {
            bus: cfg
                .buses
                .get(d.bus)
                .map(|b| b.id.clone())
                .unwrap_or_default(),
            unit: d.unit,
            profile: d.profile.clone(),
            points: std::sync::Arc::clone(&d.points),
            rules: d.health.clone(),
            health: cfg.raw.health.clone(),
        }
    }
}

/// The core engine; see the module doc.
pub struct Engine {
    store: Store,
    _lock: DataDirLock,
    tz: Tz,
    min_coverage: f64,
    devices: Vec<Dev>,
    health: Health,
    ledger: Ledger,
    watch: ThresholdWatch,
    book: TicketBook,
    /// Hard alarms active now: (device, point) → since when (Unix ms).
    alarm_since: BTreeMap<(String, String), UnixMs>,
    configured_windows: Vec<Window>,
    stored_windows: Vec<Window>,
    queue: VecDeque<Pending>,
    failing: bool,
    /// The data disk, when the run watches it.
    space: Option<std::sync::Arc<crate::store::Space>>,
    /// The database is damaged: why (the run stops).
    fatal: Option<String>,
    last_heartbeat_ms: UnixMs,
    last_availability_ms: UnixMs,
    retention: Retention,
}

/// What a reload carries from the old engine to the new one.
#[derive(Debug)]
struct Prior {
    /// Devices whose state was taken over.
    kept: std::collections::BTreeSet<String>,
    /// The maintenance window each old device was in.
    windows: BTreeMap<String, Option<String>>,
    /// Devices no longer configured.
    removed: Vec<String>,
    watch: ThresholdWatch,
    alarm_since: BTreeMap<(String, String), UnixMs>,
}

/// The retention runs' schedule and the run in progress.
#[derive(Debug)]
struct Retention {
    keep_months: u32,
    rework_ms: i64,
    /// When the next run starts.
    next_run_ms: UnixMs,
    /// The run in progress: where it cuts, what it deleted so far.
    run: Option<(Cutoff, Pruned)>,
}

impl std::fmt::Debug for Engine {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Engine")
            .field("store", &self.store.path())
            .field("devices", &self.devices.len())
            .field("queued_writes", &self.queue.len())
            .finish_non_exhaustive()
    }
}

impl Engine {
    /// Starts the engine for `cfg` with its database in `data_dir` (see the
    /// module doc); returns the engine and the events of the recovery.
    pub fn open(
        cfg: &Resolved,
        data_dir: &Path,
        now_ms: UnixMs,
    ) -> Result<(Engine, Vec<CoreEvent>), EngineError> {
        parse_tz(&cfg.timezone).map_err(|e| EngineError::Timezone(e.to_string()))?;
        let health = Health::new(&cfg.devices, &cfg.raw.health, now_ms)?;
        let lock = lock_data_dir(data_dir)?;
        let mut store = Store::open(data_dir)?;
        let undecodable = store.fail_undecodable_commands(now_ms)?;
        if undecodable > 0 {
            warn!(
                commands = undecodable,
                "queued commands written by another version were refused"
            );
        }

        let mut events = Vec::new();
        let recovered = store.recover(now_ms)?;
        if let Some(t) = recovered.first() {
            info!(
                devices = recovered.len(),
                since_ms = t.at_ms,
                "intervals left open by the previous run closed at its last heartbeat; the gap counts as Unknown (gateway_down)"
            );
        }
        events.extend(recovered.into_iter().map(CoreEvent::Transition));
        let (engine, more) = Self::assemble(store, lock, cfg, health, None, now_ms)?;
        events.extend(more);
        Ok((engine, events))
    }

    /// For a configuration reload: the same database and lock, the new
    /// configuration `cfg`. Every device whose [`Judged`] configuration is
    /// the same as before keeps its whole state (shown state and since
    /// when, holds under way, alarms, maintenance window) and its open
    /// interval: nothing is written for it. A device that is new or whose
    /// configuration changed starts again as at a start (`Unknown`,
    /// `startup`, until its first poll); a device no longer configured is
    /// closed into `Unknown`/`gateway_down` (no longer watched). The
    /// ledger, the tickets and the stored windows are read back from the
    /// database. Returns the engine and the events of the reload.
    pub fn reload(
        mut self,
        cfg: &Resolved,
        now_ms: UnixMs,
    ) -> Result<(Engine, Vec<CoreEvent>), EngineError> {
        let mut events = self.flush();
        let mut health = Health::new(&cfg.devices, &cfg.raw.health, now_ms)?;
        let before: BTreeMap<&str, &Dev> =
            self.devices.iter().map(|d| (d.id.as_str(), d)).collect();
        let judged: BTreeMap<&str, Judged> = cfg
            .devices
            .iter()
            .map(|d| (d.id.as_str(), Judged::of(cfg, d)))
            .collect();
        let kept = health.carry_over(&self.health, &|id| {
            matches!((before.get(id), judged.get(id)), (Some(old), Some(new)) if old.judged == *new)
        });
        let prior = Prior {
            kept: kept.into_iter().collect(),
            windows: self
                .devices
                .iter()
                .map(|d| (d.id.clone(), d.window.clone()))
                .collect(),
            removed: self
                .devices
                .iter()
                .filter(|d| !judged.contains_key(d.id.as_str()))
                .map(|d| d.id.clone())
                .collect(),
            watch: self.watch,
            alarm_since: self.alarm_since,
        };
        info!(
            kept = prior.kept.len(),
            restarted = cfg.devices.len() - prior.kept.len(),
            removed = prior.removed.len(),
            "reload: devices whose configuration did not change keep their state"
        );
        let (engine, more) =
            Self::assemble(self.store, self._lock, cfg, health, Some(prior), now_ms)?;
        events.extend(more);
        Ok((engine, events))
    }

    /// The part of a start shared with a reload: start-up intervals,
    /// devices, heartbeat, ledger, tickets, windows.
    fn assemble(
        mut store: Store,
        lock: DataDirLock,
        cfg: &Resolved,
        health: Health,
        prior: Option<Prior>,
        now_ms: UnixMs,
    ) -> Result<(Engine, Vec<CoreEvent>), EngineError> {
        let tz = parse_tz(&cfg.timezone).map_err(|e| EngineError::Timezone(e.to_string()))?;
        let mut events = Vec::new();
        let open: BTreeMap<String, (DeviceState, Option<String>, UnixMs)> = store
            .open_intervals()?
            .into_iter()
            .map(|(d, s, r, f)| (d, (s, r, f)))
            .collect();
        let is_kept = |id: &str| prior.as_ref().is_some_and(|p| p.kept.contains(id));
        let mut startups: Vec<Transition> = cfg
            .devices
            .iter()
            .filter(|d| !is_kept(&d.id))
            .filter(|d| {
                !matches!(open.get(&d.id), Some((DeviceState::Unknown, Some(r), _)) if r == REASON_STARTUP)
            })
            .map(|d| Transition {
                device: d.id.clone(),
                from: open.get(&d.id).map_or(DeviceState::Unknown, |o| o.0),
                to: DeviceState::Unknown,
                reason: Some(REASON_STARTUP.to_owned()),
                at_ms: now_ms,
            })
            .collect();
        for id in prior.iter().flat_map(|p| &p.removed) {
            match open.get(id) {
                Some((DeviceState::Unknown, Some(r), _))
                    if r == crate::store::REASON_GATEWAY_DOWN => {}
                Some((state, _, since)) => startups.push(Transition {
                    device: id.clone(),
                    from: *state,
                    to: DeviceState::Unknown,
                    reason: Some(crate::store::REASON_GATEWAY_DOWN.to_owned()),
                    at_ms: now_ms.max(*since),
                }),
                None => {}
            }
        }
        store.transaction(|s| -> Result<(), StoreError> {
            for t in &startups {
                s.record_transition(t)?;
            }
            s.upsert_devices(&cfg.devices.iter().map(DeviceRow::of).collect::<Vec<_>>())?;
            s.heartbeat(now_ms)
        })?;
        events.extend(startups.into_iter().map(CoreEvent::Transition));

        let avail = &cfg.raw.availability;
        let mut ledger = Ledger::new(avail.longest_rolling_window());
        let keep_ms = i64::try_from(avail.longest_rolling_window().as_millis()).unwrap_or(i64::MAX);
        let mut by_device: BTreeMap<String, Vec<Interval>> = BTreeMap::new();
        for i in store.intervals(None, now_ms.saturating_sub(keep_ms), now_ms, now_ms)? {
            by_device.entry(i.device.clone()).or_default().push(i);
        }
        let open: BTreeMap<String, (DeviceState, Option<String>, UnixMs)> = store
            .open_intervals()?
            .into_iter()
            .map(|(d, s, r, f)| (d, (s, r, f)))
            .collect();
        for d in &cfg.devices {
            ledger.load(
                &d.id,
                by_device.remove(&d.id).unwrap_or_default(),
                open.get(&d.id).cloned(),
            );
        }

        let tickets_cfg = &cfg.raw.tickets;
        let book = TicketBook::new(
            tickets_cfg,
            tz,
            store.tickets_for_book(tickets_cfg, now_ms)?,
            store.next_ticket_id()?,
        );
        let mut health = health;
        let (mut watch, mut alarm_since) = match &prior {
            // A reload: what the old engine knew of the devices kept.
            Some(p) => (
                p.watch.clone(),
                p.alarm_since
                    .iter()
                    .filter(|((d, _), _)| p.kept.contains(d))
                    .map(|(k, v)| (k.clone(), *v))
                    .collect(),
            ),
            None => (ThresholdWatch::new(), BTreeMap::new()),
        };
        for t in book.tickets() {
            if t.state == TicketState::Closed {
                continue;
            }
            if is_kept(&t.device) {
                continue;
            }
            if t.kind == KIND_AVAILABILITY {
                watch.set_below(&t.device, true);
            } else if let Some(point) = t.kind.strip_prefix("alarm:")
                && t.recovered_ms.is_none()
                && let Some(i) = health.index_of(&t.device)
                && health.restore_alarm(i, point, true)
            {
                alarm_since.insert((t.device.clone(), point.to_owned()), t.cycle_start_ms());
            }
        }

        let configured_windows = cfg
            .raw
            .maintenance
            .iter()
            .filter_map(|c| Window::from_config(c, tz).ok())
            .collect();
        let stored_windows = store.windows()?;
        let devices = cfg
            .devices
            .iter()
            .map(|d| Dev {
                id: d.id.clone(),
                class: d.class,
                name_zh: d.name_zh.clone(),
                name_en: d.name_en.clone(),
                location: d.location.clone(),
                location_en: d.location_en.clone(),
                labels: d.labels.clone(),
                threshold_percent: d.threshold_percent,
                window_ms: avail.rolling_window_ms(d.class),
                window: prior
                    .as_ref()
                    .filter(|p| p.kept.contains(&d.id))
                    .and_then(|p| p.windows.get(&d.id).cloned().flatten()),
                judged: Judged::of(cfg, d),
            })
            .collect();
        info!(
            database = %store.path().display(),
            open_tickets = book.tickets().filter(|t| t.state.is_active()).count(),
            "ledger and tickets loaded"
        );
        let mut engine = Engine {
            store,
            _lock: lock,
            tz,
            min_coverage: avail.min_coverage,
            devices,
            health,
            ledger,
            watch,
            book,
            alarm_since,
            configured_windows,
            stored_windows,
            queue: VecDeque::new(),
            failing: false,
            space: None,
            fatal: None,
            last_heartbeat_ms: now_ms,
            last_availability_ms: now_ms,
            retention: Retention {
                keep_months: cfg.raw.store.keep_months,
                rework_ms: i64::try_from(tickets_cfg.rework_period.get().as_millis())
                    .unwrap_or(i64::MAX),
                next_run_ms: now_ms,
                run: None,
            },
        };
        // Windows already active, tickets due while the gateway was off,
        // commands queued meanwhile.
        events.extend(engine.tick(now_ms));
        Ok((engine, events))
    }

    /// Watches the data disk: its spare file is released when a write
    /// fails for lack of space, and its condition refreshed every tick.
    pub fn set_space(&mut self, space: std::sync::Arc<crate::store::Space>) {
        self.space = Some(space);
    }

    /// Why the database cannot be written any more (it is damaged), if so:
    /// the run stops and the gateway exits.
    pub fn fatal(&self) -> Option<&str> {
        self.fatal.as_deref()
    }

    /// A write failed with `e`: damage is fatal, a full disk releases the
    /// spare file (true: try again now); logged once per failure spell.
    fn on_write_error(&mut self, e: &StoreError, what: &str) -> bool {
        if let Some(s) = &self.space {
            s.stats
                .ledger_failures
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            s.stats
                .ledger_failing
                .store(true, std::sync::atomic::Ordering::Relaxed);
        }
        if e.is_damage() {
            if self.fatal.is_none() {
                error!(
                    error = %e, database = %self.store.path().display(),
                    "the ledger database is damaged: stopping (exit code 74) so that the service manager restarts the gateway and the start check refuses the file; restore the last backup with `gateway restore`"
                );
                self.fatal = Some(format!("{}: {e}", self.store.path().display()));
            }
            return false;
        }
        let retry = e.is_disk_full() && self.space.as_ref().is_some_and(|s| s.on_full());
        if !self.failing {
            error!(
                error = %e, queued = self.queue.len(), what,
                "cannot write to the database; keeping the writes and retrying every second"
            );
            self.failing = true;
        }
        retry
    }

    /// A write went through after failures.
    fn on_write_ok(&mut self) {
        if self.failing {
            info!("the database accepts writes again");
            self.failing = false;
            if let Some(s) = &self.space {
                s.stats
                    .ledger_failing
                    .store(false, std::sync::atomic::Ordering::Relaxed);
            }
        }
    }

    /// Feeds one poll outcome; returns what is now stored.
    pub fn observe(&mut self, outcome: &PollOutcome) -> Vec<CoreEvent> {
        let events = self.health.observe(outcome);
        self.handle_health(events);
        self.flush()
    }

    /// The clock, about once a second: maintenance windows, debounce holds,
    /// availability thresholds, ticket deadlines, queued commands and the
    /// heartbeat. Returns what is now stored.
    pub fn tick(&mut self, now_ms: UnixMs) -> Vec<CoreEvent> {
        if let Some(s) = &self.space {
            s.maintain();
        }
        self.apply_windows(now_ms);
        let events = self.health.tick(now_ms);
        self.handle_health(events);
        if now_ms.saturating_sub(self.last_availability_ms) >= AVAILABILITY_EVERY {
            self.last_availability_ms = now_ms;
            self.check_availability(now_ms);
        }
        let closed = self.book.tick(now_ms);
        self.push_tickets(closed);
        self.apply_commands(now_ms);
        let out = self.flush();
        if self.queue.is_empty() && now_ms.saturating_sub(self.last_heartbeat_ms) >= HEARTBEAT_EVERY
        {
            self.write_heartbeat(now_ms);
        }
        if self.queue.is_empty() {
            self.prune_step(now_ms);
        }
        out
    }

    /// One step of retention: starts a run when due, else deletes one
    /// batch of the run in progress; logs the counts when a run ends.
    fn prune_step(&mut self, now_ms: UnixMs) {
        let r = &mut self.retention;
        let Some((cutoff, so_far)) = r.run else {
            if now_ms < r.next_run_ms {
                return;
            }
            let before_ms = match retention_cutoff(self.tz, now_ms, r.keep_months) {
                Ok(c) => c,
                Err(e) => {
                    warn!(error = %e, "cannot compute the retention cutoff; nothing deleted");
                    r.next_run_ms = now_ms.saturating_add(PRUNE_EVERY);
                    return;
                }
            };
            if let Err(e) = self.store.begin_prune(before_ms) {
                warn!(error = %e, "cannot start deleting old history; retrying in an hour");
                r.next_run_ms = now_ms.saturating_add(PRUNE_RETRY);
                return;
            }
            let cutoff = Cutoff {
                before_ms,
                tickets_before_ms: before_ms.min(now_ms.saturating_sub(r.rework_ms)),
            };
            r.run = Some((cutoff, Pruned::default()));
            r.next_run_ms = now_ms.saturating_add(PRUNE_EVERY);
            return;
        };
        match self.store.prune_batch(&cutoff, PRUNE_BATCH) {
            Ok(batch) if batch.total() > 0 => {
                let mut total = so_far;
                total += batch;
                r.run = Some((cutoff, total));
                if batch.windows > 0 {
                    match self.store.windows() {
                        Ok(w) => self.stored_windows = w,
                        Err(e) => warn!(error = %e, "cannot reload maintenance windows"),
                    }
                }
            }
            Ok(_) => {
                r.run = None;
                if so_far.total() > 0 {
                    info!(
                        before_ms = cutoff.before_ms,
                        keep_months = r.keep_months,
                        rows = so_far.total(),
                        intervals = so_far.intervals,
                        tickets = so_far.tickets,
                        ticket_events = so_far.ticket_events,
                        commands = so_far.commands,
                        windows = so_far.windows,
                        "deleted history older than [store] keep_months"
                    );
                }
            }
            Err(e) => {
                warn!(
                    error = %e, deleted = so_far.total(),
                    "cannot delete old history; the run stops and is retried in an hour"
                );
                r.run = None;
                r.next_run_ms = now_ms.saturating_add(PRUNE_RETRY);
            }
        }
    }

    /// A clean stop: everything queued is written if the database lets it,
    /// then a last heartbeat, so that the next start closes the intervals at
    /// this moment. Returns what was stored.
    pub fn stop(&mut self, now_ms: UnixMs) -> Vec<CoreEvent> {
        if self.fatal.is_some() {
            return Vec::new();
        }
        let out = self.flush();
        if self.queue.is_empty() {
            self.write_heartbeat(now_ms);
        } else {
            error!(
                writes = self.queue.len(),
                "stopping with writes the database refused; the time since the last heartbeat will count as gateway_down"
            );
        }
        out
    }

    /// The shown state of device `index` (file order of enabled devices).
    pub fn status(&self, index: usize) -> gateway_core::health::DeviceStatus {
        self.health.status(index)
    }

    /// The ticket book (tickets not closed, and recently closed ones).
    pub fn book(&self) -> &TicketBook {
        &self.book
    }

    /// Rolling availability (0–1) of device `index` at `now_ms`, if the
    /// window holds Up or Down time.
    pub fn rolling_availability(&self, index: usize, now_ms: UnixMs) -> Option<f64> {
        let d = self.devices.get(index)?;
        self.ledger
            .totals(&d.id, now_ms.saturating_sub(d.window_ms), now_ms)
            .availability()
    }

    /// The retained `state` of every device (file order): state, since,
    /// reason, rolling availability from the in-memory ledger and
    /// month-to-date availability from the store (one query).
    pub fn state_views(&self, now_ms: UnixMs) -> Vec<StateView> {
        let (from, _) = month_to_date(self.tz, now_ms);
        let mut month: BTreeMap<&str, Vec<Interval>> = BTreeMap::new();
        match self.store.intervals(None, from, now_ms, now_ms) {
            Ok(all) => {
                for i in all {
                    if let Some(d) = self.devices.iter().find(|d| d.id == i.device) {
                        month.entry(d.id.as_str()).or_default().push(i);
                    }
                }
            }
            Err(e) => warn!(error = %e, "cannot read the month's intervals"),
        }
        (0..self.devices.len())
            .map(|i| {
                let d = &self.devices[i];
                let m = month
                    .get(d.id.as_str())
                    .map(|ivs| totals(ivs, from, now_ms));
                self.view(i, now_ms, m)
            })
            .collect()
    }

    /// The retained `state` of device `index`, with the month-to-date
    /// availability read from the store.
    pub fn state_view(&self, index: usize, now_ms: UnixMs) -> Option<StateView> {
        let d = self.devices.get(index)?;
        let (from, _) = month_to_date(self.tz, now_ms);
        let month = match self.store.intervals(Some(&d.id), from, now_ms, now_ms) {
            Ok(ivs) => Some(totals(&ivs, from, now_ms)),
            Err(e) => {
                warn!(error = %e, "cannot read the month's intervals");
                None
            }
        };
        Some(self.view(index, now_ms, month))
    }

    fn view(
        &self,
        i: usize,
        now_ms: UnixMs,
        month: Option<gateway_core::ledger::Totals>,
    ) -> StateView {
        let d = &self.devices[i];
        let st = self.health.status(i);
        StateView {
            device: d.id.clone(),
            class: d.class.as_str(),
            name_zh: d.name_zh.clone(),
            name_en: d.name_en.clone(),
            location: d.location.clone(),
            location_en: d.location_en.clone(),
            labels: d.labels.clone(),
            state: st.state.as_str(),
            since_ms: st.since_ms,
            reason: st.reason,
            rolling: self.rolling_availability(i, now_ms),
            rolling_window_s: d.window_ms / 1000,
            month: month.and_then(|t| t.availability()),
            month_up_ms: month.map(|t| t.up_ms),
            month_down_ms: month.map(|t| t.down_ms),
            threshold: d.threshold_percent,
            alarms: self
                .health
                .active_alarms(i)
                .into_iter()
                .map(|point| ActiveAlarm {
                    since_ms: self
                        .alarm_since
                        .get(&(d.id.clone(), point.to_owned()))
                        .copied()
                        .unwrap_or(st.since_ms),
                    point: point.to_owned(),
                })
                .collect(),
        }
    }

    /// Writes waiting because the database refused them for now.
    pub fn queued_writes(&self) -> usize {
        self.queue.len()
    }

    /// The index of a configured device by id.
    pub fn index(&self, id: &str) -> Option<usize> {
        self.health.index_of(id)
    }

    fn in_maintenance(&self, index: usize) -> bool {
        self.health.status(index).state == DeviceState::Maintenance
    }

    fn push_tickets(&mut self, events: Vec<TicketEvent>) {
        if !events.is_empty() {
            for ev in &events {
                log_ticket(ev);
            }
            self.queue.push_back(Pending::Tickets(events));
        }
    }

    /// Health events → ledger and tickets (queued in order).
    fn handle_health(&mut self, events: Vec<HealthEvent>) {
        for ev in events {
            match ev {
                HealthEvent::Alarm(alarm) => {
                    let Some(i) = self.index(&alarm.device) else {
                        continue;
                    };
                    let key = (alarm.device.clone(), alarm.point.clone());
                    if alarm.active {
                        warn!(device = %alarm.device, point = %alarm.point, "hard alarm");
                        self.alarm_since.insert(key, alarm.at_ms);
                    } else {
                        info!(device = %alarm.device, point = %alarm.point, "hard alarm cleared");
                        self.alarm_since.remove(&key);
                    }
                    self.queue
                        .push_back(Pending::Announce(CoreEvent::Alarm(alarm.clone())));
                    if alarm.active && self.in_maintenance(i) {
                        info!(device = %alarm.device, "in planned maintenance: no ticket");
                        continue;
                    }
                    let d = DeviceRef {
                        id: &self.devices[i].id,
                        class: self.devices[i].class,
                    };
                    let tickets = self.book.on_alarm(d, &alarm);
                    self.push_tickets(tickets);
                }
                HealthEvent::Transition(t) => self.handle_transition(t),
            }
        }
    }

    fn handle_transition(&mut self, t: Transition) {
        info!(
            device = %t.device, from = %t.from, to = %t.to,
            reason = t.reason.as_deref().unwrap_or(""), at_ms = t.at_ms,
            "device state changed"
        );
        self.ledger.apply(&t);
        let Some(i) = self.index(&t.device) else {
            self.queue.push_back(Pending::Transition(t));
            return;
        };
        let d = DeviceRef {
            id: &self.devices[i].id,
            class: self.devices[i].class,
        };
        let mut tickets = self.book.on_transition(d, &t);
        // Leaving maintenance with an alarm still active: its ticket now.
        if t.from == DeviceState::Maintenance {
            let alarms: Vec<String> = self
                .health
                .active_alarms(i)
                .into_iter()
                .map(str::to_owned)
                .collect();
            for point in alarms {
                let alarm = HardAlarm {
                    device: t.device.clone(),
                    point,
                    active: true,
                    at_ms: t.at_ms,
                };
                let d = DeviceRef {
                    id: &self.devices[i].id,
                    class: self.devices[i].class,
                };
                tickets.extend(self.book.on_alarm(d, &alarm));
            }
        }
        self.queue.push_back(Pending::Transition(t));
        self.push_tickets(tickets);
    }

    /// Enters and leaves maintenance windows.
    fn apply_windows(&mut self, now_ms: UnixMs) {
        for i in 0..self.devices.len() {
            let (id, class) = (self.devices[i].id.clone(), self.devices[i].class);
            let now_window = active_window(&self.configured_windows, &id, class, self.tz, now_ms)
                .or_else(|| active_window(&self.stored_windows, &id, class, self.tz, now_ms))
                .map(|w| w.id.clone());
            if now_window != self.devices[i].window {
                self.devices[i].window = now_window.clone();
                let events = self
                    .health
                    .set_maintenance(i, now_window.as_deref(), now_ms);
                self.handle_health(events);
            }
        }
    }

    /// Rolling availability against each threshold.
    fn check_availability(&mut self, now_ms: UnixMs) {
        for i in 0..self.devices.len() {
            if self.in_maintenance(i) {
                continue;
            }
            let d = &self.devices[i];
            let a = self
                .ledger
                .totals(&d.id, now_ms.saturating_sub(d.window_ms), now_ms)
                .availability_if_covered(self.min_coverage);
            let Some(crossing) = self.watch.check(&d.id, a, d.threshold_percent) else {
                continue;
            };
            self.queue
                .push_back(Pending::Announce(CoreEvent::Threshold {
                    device: d.id.clone(),
                    crossing,
                    at_ms: now_ms,
                }));
            match crossing {
                Crossing::Below {
                    availability,
                    threshold,
                } => {
                    warn!(
                        device = %d.id,
                        availability = format!("{:.2}%", availability * 100.0),
                        threshold = format!("{threshold}%"),
                        "rolling availability fell below the target"
                    );
                    // One fault, one ticket: a hard alarm's ticket already
                    // covers the downtime it causes.
                    if let Some(t) = self.book.tickets().find(|t| {
                        t.device == d.id && t.kind.starts_with("alarm:") && t.state.is_active()
                    }) {
                        info!(
                            device = %d.id, ticket = t.id,
                            "no availability ticket: the active alarm ticket covers this fault"
                        );
                        continue;
                    }
                    let status = self.health.status(i);
                    let reason = (status.state == DeviceState::Down)
                        .then_some(status.reason)
                        .flatten();
                    let d = DeviceRef {
                        id: &self.devices[i].id,
                        class: self.devices[i].class,
                    };
                    let events = self.book.on_availability_below(
                        d,
                        availability,
                        threshold,
                        reason.as_deref(),
                        now_ms,
                    );
                    self.push_tickets(events);
                }
                Crossing::Recovered {
                    availability,
                    threshold,
                } => info!(
                    device = %d.id,
                    availability = format!("{:.2}%", availability * 100.0),
                    threshold = format!("{threshold}%"),
                    "rolling availability is back at the target"
                ),
            }
        }
    }

    /// Applies the commands the CLI queued; each outcome is recorded after
    /// the events it caused.
    fn apply_commands(&mut self, now_ms: UnixMs) {
        let commands = match self.store.pending_commands() {
            Ok(c) => c,
            Err(e) => {
                if e.is_damage() {
                    self.on_write_error(&e, "commands");
                } else {
                    warn!(error = %e, "cannot read queued commands; retrying");
                }
                return;
            }
        };
        for (id, cmd) in commands {
            let outcome = self.apply_command(&cmd, now_ms);
            match &outcome {
                Ok(text) => info!(command = id, "{text}"),
                Err(text) => warn!(command = id, "command refused: {text}"),
            }
            self.queue.push_back(Pending::Finish(id, outcome, now_ms));
        }
    }

    fn apply_command(&mut self, cmd: &Command, now_ms: UnixMs) -> Result<String, String> {
        if let Some(r) = apply_window_command(&self.store, &self.configured_windows, cmd) {
            let r = r.map_err(|e| e.to_string());
            match self.store.windows() {
                Ok(w) => self.stored_windows = w,
                Err(e) => warn!(error = %e, "cannot reload maintenance windows"),
            }
            return r;
        }
        match apply_ticket_command(&mut self.book, cmd, now_ms) {
            Some(Ok((events, text))) => {
                self.push_tickets(events);
                Ok(text)
            }
            Some(Err(TicketError::Unknown(id))) => {
                // Closed long ago (no longer in the book): a state error.
                match (self.store.ticket(id), cmd.ticket_action()) {
                    (Ok(Some(t)), Some((_, action, _, _))) => Err(TicketError::WrongState {
                        id,
                        state: t.state,
                        action,
                    }
                    .to_string()),
                    _ => Err(TicketError::Unknown(id).to_string()),
                }
            }
            Some(Err(e)) => Err(e.to_string()),
            None => Err("unknown command".to_owned()),
        }
    }

    fn write_heartbeat(&mut self, now_ms: UnixMs) {
        if self.fatal.is_some() {
            return;
        }
        let mut result = self.store.heartbeat(now_ms);
        if let Err(e) = &result
            && self.on_write_error(e, "heartbeat")
        {
            result = self.store.heartbeat(now_ms);
        }
        match result {
            Ok(()) => {
                self.last_heartbeat_ms = now_ms;
                self.on_write_ok();
            }
            Err(e) => {
                self.on_write_error(&e, "heartbeat");
            }
        }
    }

    /// Writes the queue in order; stops at the first write that fails for
    /// now (retried on the next call). Returns what was stored.
    fn flush(&mut self) -> Vec<CoreEvent> {
        let mut out = Vec::new();
        let mut retried = false;
        while let Some(p) = self.queue.front() {
            if self.fatal.is_some() {
                break;
            }
            let result = match p {
                Pending::Transition(t) => self.store.record_transition(t),
                Pending::Tickets(evs) => self.store.save_ticket_events(evs),
                Pending::Announce(_) => Ok(()),
                Pending::Finish(id, r, at_ms) => self.store.finish_command(*id, r, *at_ms),
            };
            match result {
                Ok(()) => self.on_write_ok(),
                Err(e @ StoreError::Inconsistent { .. }) => {
                    error!(error = %e, "the ledger refused a transition; dropped (please report this)");
                }
                Err(e) => {
                    // A full disk: once more at once with the spare's room.
                    if self.on_write_error(&e, "ledger") && !retried {
                        retried = true;
                        continue;
                    }
                    break;
                }
            }
            match self.queue.pop_front() {
                Some(Pending::Transition(t)) => out.push(CoreEvent::Transition(t)),
                Some(Pending::Tickets(evs)) => {
                    out.extend(
                        evs.into_iter()
                            .map(|e| CoreEvent::Ticket(Box::new(self.with_names(e)))),
                    );
                }
                Some(Pending::Announce(ev)) => out.push(ev),
                Some(Pending::Finish(..)) | None => {}
            }
        }
        out
    }
}

impl Engine {
    /// The ticket as published: its facts completed with the device's
    /// display names, locations and the labels of its rule or alarm point
    /// from the configuration (they are not stored: a renamed device is
    /// published with its new name).
    fn with_names(&self, mut ev: TicketEvent) -> TicketEvent {
        let t = &mut ev.ticket;
        let Some(d) = self.devices.iter().find(|d| d.id == t.device) else {
            return ev;
        };
        let f = &mut t.facts;
        let some = |s: &str| (!s.is_empty()).then(|| s.to_owned());
        f.device_zh = some(&d.name_zh);
        f.device_en = some(&d.name_en);
        f.location_zh = some(&d.location);
        f.location_en = some(&d.location_en);
        if let Some(l) = f
            .reason
            .as_deref()
            .and_then(|r| r.strip_prefix("rule:"))
            .and_then(|r| d.labels.rules.get(r))
        {
            f.rule_zh = Some(l.zh.clone());
            f.rule_en = Some(l.en.clone());
        }
        if let Some(l) = t
            .kind
            .strip_prefix("alarm:")
            .and_then(|p| d.labels.points.get(p))
        {
            f.point_zh = Some(l.zh.clone());
            f.point_en = Some(l.en.clone());
        }
        ev
    }
}

fn log_ticket(ev: &TicketEvent) {
    let t = &ev.ticket;
    match ev.kind {
        TicketEventKind::Opened | TicketEventKind::Reopened => warn!(
            ticket = t.id, device = %t.device, kind = %t.kind, severity = %t.severity,
            deadline_ms = t.deadline_ms, reworks = t.reworks,
            "ticket {}: {}", ev.kind, t.summary
        ),
        _ => info!(ticket = t.id, device = %t.device, kind = %t.kind, "ticket {}", ev.kind),
    }
}

/// Takes the data directory's lock, waiting up to [`LOCK_WAIT`] (a CLI
/// holds it for one transaction at most).
fn lock_data_dir(data_dir: &Path) -> Result<DataDirLock, EngineError> {
    let deadline = std::time::Instant::now() + LOCK_WAIT;
    loop {
        match DataDirLock::try_acquire(data_dir) {
            Ok(Some(lock)) => return Ok(lock),
            Ok(None) if std::time::Instant::now() < deadline => {
                std::thread::sleep(std::time::Duration::from_millis(100));
            }
            Ok(None) => return Err(EngineError::Locked(data_dir.to_path_buf())),
            Err(source) => {
                return Err(EngineError::LockFile {
                    path: data_dir.join(LOCK_FILE),
                    source,
                });
            }
        }
    }
}
