//! Routes a write to the bus task of its device.
//!
//! The command handler lives as long as the gateway; the bus tasks live as
//! long as one configuration (a reload starts new ones). [`Router`] is the
//! meeting point: each run of the poll loop [`install`](Router::install)s
//! its configuration and bus handles, and the handler asks the router to
//! [`check`](Router::check) a request (the checks of
//! [`gateway_core::write::check`] against the configuration in force) and
//! then to [`write`](Router::write) it.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use gateway_core::config::{Resolved, ResolvedDevice};
use gateway_core::model::{Point, Value};
use gateway_core::write::{Checked, Outcome, Refusal, Refused, check};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;

use super::bus::{BusHandle, WriteJob, WriteReport};

/// The configuration in force, as writes need it.
#[derive(Debug, Default)]
struct Routes {
    enabled: bool,
    timeout: Duration,
    /// By device id: the device, its bus's write queue and its bus timeout.
    devices: BTreeMap<String, Route>,
}

#[derive(Debug)]
struct Route {
    index: usize,
    device: ResolvedDevice,
    bus_timeout: Duration,
    tx: Option<mpsc::Sender<WriteJob>>,
}

/// A write that passed the checks, ready for [`Router::write`].
#[derive(Debug, Clone)]
pub struct Ready {
    /// The device id.
    pub device: String,
    /// The point.
    pub point: Point,
    checked: Checked,
    index: usize,
    bus_timeout: Duration,
    timeout: Duration,
    tx: Option<mpsc::Sender<WriteJob>>,
}

impl Ready {
    /// The value the device should hold after the write.
    pub fn value(&self) -> &Value {
        &self.checked.value
    }
}

/// Shared between the poll loop (which installs) and the command handler
/// (which checks and writes).
#[derive(Debug, Default)]
pub struct Router {
    routes: RwLock<Arc<Routes>>,
}

impl Router {
    /// A router with writes off until [`Router::install`].
    pub fn new() -> Arc<Router> {
        Arc::new(Router::default())
    }

    /// Makes `cfg` and the write queues of its running `buses` the ones in
    /// force.
    pub fn install(&self, cfg: &Resolved, buses: &[BusHandle]) {
        let devices = cfg
            .devices
            .iter()
            .enumerate()
            .map(|(i, d)| {
                let bus = cfg.buses.get(d.bus);
                let tx = bus.and_then(|b| {
                    buses
                        .iter()
                        .find(|h| h.bus == b.id)
                        .map(|h| h.writes.clone())
                });
                let route = Route {
                    index: i,
                    device: d.clone(),
                    bus_timeout: bus.map_or(Duration::from_secs(1), |b| b.timeout),
                    tx,
                };
                (d.id.clone(), route)
            })
            .collect();
        let routes = Routes {
            enabled: cfg.raw.writes.enabled,
            timeout: cfg.raw.writes.timeout.get(),
            devices,
        };
        if let Ok(mut r) = self.routes.write() {
            *r = Arc::new(routes);
        }
    }

    fn current(&self) -> Arc<Routes> {
        match self.routes.read() {
            Ok(r) => Arc::clone(&r),
            // A panic while installing: nothing is in force.
            Err(_) => Arc::new(Routes::default()),
        }
    }

    /// Checks a requested write against the configuration in force.
    pub fn check(&self, device: &str, point: &str, value: &Value) -> Result<Ready, Refused> {
        let routes = self.current();
        let route = routes.devices.get(device);
        let checked = check(
            routes.enabled,
            device,
            route.map(|r| &r.device),
            point,
            value,
        )?;
        // `check` found the device.
        let Some(route) = route else {
            return Err(Refused {
                refusal: Refusal::UnknownDevice,
                detail: format!("no device {device:?}"),
            });
        };
        let Some(p) = route.device.points.get(checked.point).cloned() else {
            return Err(Refused {
                refusal: Refusal::UnknownPoint,
                detail: format!("no point {point:?}"),
            });
        };
        Ok(Ready {
            device: device.to_owned(),
            point: p,
            checked,
            index: route.index,
            bus_timeout: route.bus_timeout,
            timeout: routes.timeout,
            tx: route.tx.clone(),
        })
    }

    /// Sends a checked write to its bus and waits for its report: at most
    /// `[writes] timeout` for the line, then the three transactions of the
    /// write itself (each bounded by the bus timeout). `Err` when the bus
    /// cannot take it (not running, queue full): nothing was sent.
    pub async fn write(&self, ready: &Ready) -> Result<WriteReport, Refused> {
        let busy = |detail: &str| Refused {
            refusal: Refusal::Busy,
            detail: detail.to_owned(),
        };
        let Some(tx) = ready.tx.as_ref() else {
            return Err(busy("the device's bus is not running; try again later"));
        };
        let deadline = Instant::now() + ready.timeout;
        let (reply, rx) = oneshot::channel();
        let job = WriteJob {
            device: ready.index,
            point: ready.checked.point,
            value: ready.checked.value.clone(),
            deadline,
            reply,
        };
        tx.try_send(job).map_err(|e| match e {
            mpsc::error::TrySendError::Full(_) => {
                busy("other writes are waiting for this device's bus; try again in a moment")
            }
            mpsc::error::TrySendError::Closed(_) => {
                busy("the device's bus is restarting (configuration reload); try again")
            }
        })?;
        // Three transactions, plus their silences, after the deadline at most.
        let wait = ready.timeout + ready.bus_timeout.saturating_mul(3) + Duration::from_secs(1);
        match tokio::time::timeout(wait, rx).await {
            Ok(Ok(report)) => Ok(report),
            Ok(Err(_)) => Ok(WriteReport {
                outcome: Outcome::Timeout,
                old: None,
                read_back: None,
                detail: "the bus task stopped before the write (configuration reload or shutdown); nothing is known to have been written".to_owned(),
            }),
            Err(_) => Ok(WriteReport {
                outcome: Outcome::Timeout,
                old: None,
                read_back: None,
                detail: "no report from the bus in time; check the point's value before retrying".to_owned(),
            }),
        }
    }
}
