//! Starting and stopping the simulated building.
//!
//! [`Simulator::start`] binds everything first (every TCP listener, every
//! pseudo-terminal or serial port, the control interface) and only then
//! spawns the tasks, so that a bind error is returned to the caller and never
//! lost inside a task (where a stale server on the same port would then
//! silently answer in its place). [`SimHandle::shutdown`] cancels every task,
//! waits for them and removes the symlinks it made.
//!
//! Tasks: one accept loop per TCP bus (with one task per connection), one
//! RTU server per serial bus, the control interface, and the tick that
//! advances every device's model.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use gateway_core::config::{BusKind, FaultConfig, Resolved};
use gateway_core::model::Value;
use tokio::net::TcpListener;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_serial::{SerialPort, SerialPortBuilderExt, SerialStream};
use tokio_util::sync::CancellationToken;

use crate::building::{Building, PointValue};
use crate::bus::{BusCtx, lock};
use crate::error::SimError;
use crate::faults::{FaultId, FaultInfo};
use crate::wire::Line;
use crate::{control, server_rtu, server_tcp};

/// Run-time overrides of the `[simulator]` section (tests, CLI flags).
#[derive(Clone, Debug, Default)]
pub struct SimOptions {
    /// Listen address per bus id, over `[simulator.bus.<id>] listen` and the bus address.
    pub listen: BTreeMap<String, String>,
    /// Listen on `127.0.0.1:0` for every TCP bus without a `listen` entry (tests).
    pub any_port: bool,
    /// Symlink path per `rtu` bus id, over `[simulator.bus.<id>] link` and the bus `port`.
    pub link: BTreeMap<String, PathBuf>,
    /// Make no symlinks at all; use [`SimHandle::pty_path`] (tests).
    pub no_links: bool,
    /// Control interface address, over `[simulator] control`.
    pub control: Option<SocketAddr>,
    /// Seed, over `[simulator] seed`.
    pub seed: Option<u64>,
    /// Wire timing, over `[simulator] wire_time`.
    pub wire_time: Option<bool>,
    /// Site clock at start, Unix ms (default: the system clock).
    pub start_unix_ms: Option<i64>,
    /// Tick period, over `[simulator] tick`.
    pub tick: Option<Duration>,
    /// Every register read answers a value different from the last read's
    /// (load runs of the publish path; see [`Building::set_churn`]).
    pub churn: bool,
}

impl SimOptions {
    /// Everything on loopback with free ports and no symlinks: for tests.
    pub fn loopback() -> Self {
        Self {
            any_port: true,
            no_links: true,
            control: Some(SocketAddr::from(([127, 0, 0, 1], 0))),
            ..Self::default()
        }
    }
}

/// The simulated building (see [`Simulator::start`]).
#[derive(Debug)]
pub struct Simulator;

impl Simulator {
    /// Starts serving `resolved`'s buses; see [`start`].
    pub async fn start(resolved: &Resolved, opts: SimOptions) -> Result<SimHandle, SimError> {
        start(resolved, opts).await
    }
}

/// A running simulator. Dropping it stops the tasks; prefer [`shutdown`](Self::shutdown).
#[derive(Debug)]
pub struct SimHandle {
    tcp: BTreeMap<String, SocketAddr>,
    pty: BTreeMap<String, PathBuf>,
    links: Vec<(PathBuf, PathBuf)>,
    control: SocketAddr,
    building: Arc<Mutex<Building>>,
    token: CancellationToken,
    tasks: JoinSet<()>,
}

/// A serial end being served, with what must stay open while it is.
struct SerialEnd {
    stream: SerialStream,
    /// The pty's slave side, kept open so the master never sees a hang-up
    /// between two gateway runs.
    keep: Option<SerialStream>,
}

/// Starts serving `resolved`'s buses with `opts` over its `[simulator]` section.
pub async fn start(resolved: &Resolved, opts: SimOptions) -> Result<SimHandle, SimError> {
    let sim = &resolved.raw.simulator;
    let bus_ids: Vec<&str> = resolved.buses.iter().map(|b| b.id.as_str()).collect();
    let device_ids: Vec<&str> = resolved.devices.iter().map(|d| d.id.as_str()).collect();
    let errors = sim.check("config", &bus_ids, &device_ids);
    if !errors.is_empty() {
        return Err(SimError::Config(errors));
    }
    let now = Instant::now();
    let seed = opts.seed.or(sim.seed).unwrap_or_else(rand::random);
    let start_ms = opts.start_unix_ms.unwrap_or_else(|| {
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(0))
    });
    let mut building = Building::new(resolved, seed, start_ms, now);
    building.set_churn(opts.churn);
    for s in &sim.scenario {
        building.inject(s, now, now)?;
    }
    let building = Arc::new(Mutex::new(building));
    let wire_time = opts.wire_time.unwrap_or(sim.wire_time);

    // Phase 1: bind and open everything; an error drops what was opened.
    let mut listeners = Vec::new();
    let mut serials = Vec::new();
    let mut tcp = BTreeMap::new();
    let mut pty = BTreeMap::new();
    let mut links = Vec::new();
    let mut handle_links = LinkGuard(Vec::new());
    for (index, bus) in resolved.buses.iter().enumerate() {
        let bus_sim = sim.bus.get(&bus.id);
        let ctx = Arc::new(BusCtx {
            index,
            id: bus.id.clone(),
            kind: bus.kind,
            building: Arc::clone(&building),
            line: Line::of(bus),
            wire_time,
            line_busy: tokio::sync::Mutex::new(()),
        });
        match bus.kind {
            BusKind::Tcp | BusKind::RtuOverTcp => {
                let addr = opts
                    .listen
                    .get(&bus.id)
                    .cloned()
                    .or_else(|| opts.any_port.then(|| "127.0.0.1:0".to_owned()))
                    .or_else(|| bus_sim.and_then(|b| b.listen.clone()))
                    .unwrap_or_else(|| bus.target.clone());
                let listener = TcpListener::bind(&addr)
                    .await
                    .map_err(|source| SimError::Bind {
                        bus: bus.id.clone(),
                        addr: addr.clone(),
                        source,
                    })?;
                let local = listener.local_addr().map_err(|source| SimError::Bind {
                    bus: bus.id.clone(),
                    addr: addr.clone(),
                    source,
                })?;
                tracing::info!(bus = %bus.id, addr = %local, kind = ?bus.kind, "simulated bus listening");
                tcp.insert(bus.id.clone(), local);
                listeners.push((listener, ctx));
            }
            BusKind::Rtu => {
                if let Some(path) = bus_sim.and_then(|b| b.serial.clone()) {
                    let stream = tokio_serial::new(&path, bus.baud)
                        .open_native_async()
                        .map_err(|source| SimError::Serial {
                            bus: bus.id.clone(),
                            path: path.clone(),
                            source,
                        })?;
                    tracing::info!(bus = %bus.id, %path, "simulated bus on serial port");
                    pty.insert(bus.id.clone(), PathBuf::from(&path));
                    serials.push((SerialEnd { stream, keep: None }, ctx));
                    continue;
                }
                let (master, slave) = SerialStream::pair().map_err(|source| SimError::Pty {
                    bus: bus.id.clone(),
                    source,
                })?;
                let slave_path = slave.name().map(PathBuf::from).unwrap_or_default();
                let link = if opts.no_links {
                    None
                } else {
                    Some(
                        opts.link
                            .get(&bus.id)
                            .cloned()
                            .or_else(|| bus_sim.and_then(|b| b.link.as_ref().map(PathBuf::from)))
                            .unwrap_or_else(|| PathBuf::from(&bus.target)),
                    )
                };
                if let Some(link) = link {
                    make_link(&bus.id, &slave_path, &link)?;
                    tracing::info!(bus = %bus.id, pty = %slave_path.display(), link = %link.display(), "simulated bus on a pseudo-terminal");
                    handle_links.0.push((link.clone(), slave_path.clone()));
                    links.push((link, slave_path.clone()));
                } else {
                    tracing::info!(bus = %bus.id, pty = %slave_path.display(), "simulated bus on a pseudo-terminal");
                }
                pty.insert(bus.id.clone(), slave_path);
                serials.push((
                    SerialEnd {
                        stream: master,
                        keep: Some(slave),
                    },
                    ctx,
                ));
            }
        }
    }
    let control_addr = opts
        .control
        .or_else(|| sim.control.parse().ok())
        .unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], 0)));
    let control_listener =
        TcpListener::bind(control_addr)
            .await
            .map_err(|source| SimError::ControlBind {
                addr: control_addr,
                source,
            })?;
    let control = control_listener
        .local_addr()
        .map_err(|source| SimError::ControlBind {
            addr: control_addr,
            source,
        })?;
    tracing::info!(addr = %control, "simulator control interface listening");
    // Everything is open: the links now belong to the handle.
    handle_links.0.clear();

    // Phase 2: spawn.
    let token = CancellationToken::new();
    let mut tasks = JoinSet::new();
    for (listener, ctx) in listeners {
        let t = token.clone();
        if ctx.kind == BusKind::Tcp {
            tasks.spawn(server_tcp::accept_loop(
                listener,
                ctx,
                t,
                server_tcp::serve_connection,
            ));
        } else {
            tasks.spawn(server_tcp::accept_loop(
                listener,
                ctx,
                t,
                server_rtu::serve_stream,
            ));
        }
    }
    for (end, ctx) in serials {
        let t = token.clone();
        tasks.spawn(async move {
            let _keep = end.keep;
            let bus = ctx.id.clone();
            tokio::select! {
                () = t.cancelled() => {}
                r = server_rtu::serve_stream(end.stream, ctx) => match r {
                    Ok(()) => tracing::warn!(%bus, "serial line closed"),
                    Err(error) => tracing::warn!(%bus, %error, "serial line failed"),
                },
            }
        });
    }
    tasks.spawn(control::serve(
        control_listener,
        Arc::clone(&building),
        token.clone(),
    ));
    let tick = opts
        .tick
        .unwrap_or(sim.tick.get())
        .max(Duration::from_millis(10));
    let (b, t) = (Arc::clone(&building), token.clone());
    tasks.spawn(async move {
        let mut every = tokio::time::interval(tick);
        every.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                () = t.cancelled() => break,
                _ = every.tick() => {
                    // Time is read under the lock: a scheduled tick instant can be
                    // older than a fault injected meanwhile, which would then be
                    // rendered as not yet active.
                    let mut building = lock(&b);
                    building.tick(Instant::now());
                }
            }
        }
    });
    Ok(SimHandle {
        tcp,
        pty,
        links,
        control,
        building,
        token,
        tasks,
    })
}

/// Removes links made so far if start fails half-way.
struct LinkGuard(Vec<(PathBuf, PathBuf)>);

impl Drop for LinkGuard {
    fn drop(&mut self) {
        remove_links(&self.0);
    }
}

/// Symlinks `link` → `target`, replacing a stale symlink but never a real file.
fn make_link(bus: &str, target: &Path, link: &Path) -> Result<(), SimError> {
    let err = |source| SimError::Link {
        bus: bus.to_owned(),
        path: link.to_owned(),
        source,
    };
    match std::fs::symlink_metadata(link) {
        Ok(meta) if meta.file_type().is_symlink() => std::fs::remove_file(link).map_err(err)?,
        Ok(_) => {
            return Err(SimError::LinkOccupied {
                bus: bus.to_owned(),
                path: link.to_owned(),
            });
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(err(e)),
    }
    if let Some(dir) = link.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).map_err(err)?;
    }
    std::os::unix::fs::symlink(target, link).map_err(err)
}

/// Removes each link that still points where we made it point.
fn remove_links(links: &[(PathBuf, PathBuf)]) {
    for (link, target) in links {
        if std::fs::read_link(link).is_ok_and(|t| t == *target) {
            let _ = std::fs::remove_file(link);
        }
    }
}

impl SimHandle {
    /// Bound address of a `tcp` or `rtu_over_tcp` bus.
    pub fn tcp_addr(&self, bus: &str) -> Option<SocketAddr> {
        self.tcp.get(bus).copied()
    }

    /// Bound addresses of every TCP-carried bus, by bus id.
    pub fn tcp_addrs(&self) -> &BTreeMap<String, SocketAddr> {
        &self.tcp
    }

    /// The gateway-facing serial path of an `rtu` bus (`/dev/pts/N`, or the
    /// configured real serial port).
    pub fn pty_path(&self, bus: &str) -> Option<&Path> {
        self.pty.get(bus).map(PathBuf::as_path)
    }

    /// Symlinks made, as (link, target).
    pub fn links(&self) -> &[(PathBuf, PathBuf)] {
        &self.links
    }

    /// Address of the HTTP control interface.
    pub fn control_addr(&self) -> SocketAddr {
        self.control
    }

    /// Injects a fault now (its `start` counts from now).
    pub fn inject(&self, fault: &FaultConfig) -> Result<FaultId, SimError> {
        let now = Instant::now();
        lock(&self.building).inject(fault, now, now)
    }

    /// Clears one fault; false when no fault has that id.
    pub fn clear(&self, id: FaultId) -> bool {
        lock(&self.building).clear(id, Instant::now())
    }

    /// Clears every fault.
    pub fn clear_all(&self) {
        lock(&self.building).clear_all(Instant::now());
    }

    /// Every fault, active or scheduled.
    pub fn faults(&self) -> Vec<FaultInfo> {
        lock(&self.building).faults(Instant::now())
    }

    /// Current values of a device's points.
    pub fn points(&self, device: &str) -> Result<Vec<PointValue>, SimError> {
        lock(&self.building).points(device)
    }

    /// Current value of one point.
    pub fn value(&self, device: &str, point: &str) -> Result<Option<Value>, SimError> {
        lock(&self.building).value(device, point)
    }

    /// Sets a point (held until [`release`](Self::release) when `hold`).
    pub fn set_point(
        &self,
        device: &str,
        point: &str,
        value: Value,
        hold: bool,
    ) -> Result<(), SimError> {
        lock(&self.building).set_point(device, point, &value, hold, Instant::now())
    }

    /// Releases a held point; false when it was not held.
    pub fn release(&self, device: &str, point: &str) -> Result<bool, SimError> {
        lock(&self.building).release(device, point, Instant::now())
    }

    /// Advances every model to now at once (tests that do not want to wait a tick).
    pub fn tick_now(&self) {
        lock(&self.building).tick(Instant::now());
    }

    /// Stops every task, waits for them, removes the symlinks.
    pub async fn shutdown(mut self) {
        self.token.cancel();
        while self.tasks.join_next().await.is_some() {}
        remove_links(&self.links);
        self.links.clear();
    }
}

impl Drop for SimHandle {
    fn drop(&mut self) {
        self.token.cancel();
        remove_links(&self.links);
    }
}
