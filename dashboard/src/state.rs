//! What the HTTP handlers and the subscriber share.

use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use tokio::sync::watch;

use crate::auth::Auth;
use crate::commands::Pending;
use crate::config::Settings;
use crate::model::Model;

/// The dashboard's shared state.
#[derive(Debug)]
pub struct Shared {
    pub settings: Settings,
    pub model: Mutex<Model>,
    /// Bumped at every change of the model; the SSE streams watch it.
    pub changed: watch::Sender<u64>,
    /// Commands waiting for their signed reply, by command id.
    pub pending: Pending,
    /// Whether the subscriber is connected to the broker.
    pub connected: AtomicBool,
    pub auth: Auth,
    /// The MQTT client that sends commands (None until started).
    pub client: Mutex<Option<crate::mqtt::Client>>,
    /// Connections ended by a packet over `[mqtt] max_packet_size`.
    pub oversized: std::sync::atomic::AtomicU64,
    /// Local start time (ms).
    pub started_ms: i64,
    /// The history store (None when `[history] enabled = false`).
    pub history: Option<crate::history::History>,
    /// The latest serialized snapshots, whole or of one site, shared by
    /// every event stream and `/api/snapshot` (see [`crate::snapcache`]).
    pub snap_cache: crate::snapcache::SnapCache,
    /// Counters of the HTTP connections.
    pub http_stats: std::sync::Arc<crate::listener::Stats>,
    /// Month-to-date intact rate per site and class, refreshed every minute.
    pub intact: Mutex<std::collections::BTreeMap<String, std::collections::BTreeMap<String, f64>>>,
    /// The central ledger for the monthly reports (None until opened).
    pub ledger: Option<crate::ledger::Ledger>,
}

impl Shared {
    /// Fresh state for `settings`.
    pub fn new(settings: Settings) -> Shared {
        let model = Model::configured(&settings.file);
        let auth = Auth::new(&settings.file.users, &settings.login);
        Shared {
            settings,
            model: Mutex::new(model),
            changed: watch::channel(0).0,
            pending: Pending::default(),
            connected: AtomicBool::new(false),
            auth,
            client: Mutex::new(None),
            oversized: Default::default(),
            started_ms: now_ms(),
            history: None,
            intact: Mutex::new(Default::default()),
            snap_cache: Default::default(),
            http_stats: Default::default(),
            ledger: None,
        }
    }

    /// Recomputes the month-to-date intact rates from the history.
    pub fn refresh_intact(&self) {
        let Some(h) = &self.history else { return };
        let now = now_ms();
        let tz = gateway_core::ledger::parse_tz(&self.settings.file.timezone)
            .unwrap_or(chrono_tz::Asia::Shanghai);
        let (from, _) = gateway_core::ledger::month_to_date(tz, now);
        // site → class → devices (gateway, device id), from the live model.
        let mut sites: std::collections::BTreeMap<
            String,
            std::collections::BTreeMap<String, Vec<(String, String)>>,
        > = Default::default();
        if let Ok(m) = self.model.lock() {
            for (site, gws) in &m.sites {
                let classes = sites.entry(site.clone()).or_default();
                for g in gws.values() {
                    for d in g.devices.values() {
                        classes
                            .entry(d.class.clone())
                            .or_default()
                            .push((g.id.clone(), d.id.clone()));
                    }
                }
            }
        }
        let mut all = std::collections::BTreeMap::new();
        for (site, classes) in &sites {
            match h.intact_rates(site, classes, from, now) {
                Ok(r) => {
                    all.insert(site.clone(), r);
                }
                Err(e) => tracing::warn!(%site, error = %e, "cannot compute the intact rates"),
            }
        }
        if let Ok(mut i) = self.intact.lock() {
            *i = all;
        }
    }

    /// Fresh state with the history store opened in the data folder (when
    /// enabled); needs a tokio runtime.
    pub fn open(settings: Settings) -> Result<Shared, String> {
        let h = &settings.file.history;
        let history = if h.enabled {
            Some(crate::history::History::start(
                &settings.data_dir,
                crate::history::Retention {
                    raw: h.raw_retention.get(),
                    rollup: h.rollup_retention.get(),
                },
            )?)
        } else {
            None
        };
        let mut s = Shared::new(settings);
        s.history = history;
        // central ledger (issue 7)
        let retention = crate::ledger::Retention::of(&s.settings);
        s.ledger = Some(crate::ledger::Ledger::start(
            &s.settings.data_dir,
            retention,
        )?);
        Ok(s)
    }

    /// Stale-after in ms.
    pub fn stale_ms(&self) -> i64 {
        i64::try_from(self.settings.file.stale_after.get().as_millis()).unwrap_or(i64::MAX)
    }
}

/// Refreshes the month-to-date intact rates every minute (first after 5 s).
pub fn spawn_intact_refresh(
    shared: std::sync::Arc<Shared>,
    stop: tokio_util::sync::CancellationToken,
) {
    tokio::spawn(async move {
        let mut wait = std::time::Duration::from_secs(5);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(wait) => {}
            }
            let s = shared.clone();
            let _ = tokio::task::spawn_blocking(move || s.refresh_intact()).await;
            wait = std::time::Duration::from_secs(60);
        }
    });
}

/// Unix time now in ms.
pub fn now_ms() -> i64 {
    gateway::run::unix_now_ms()
}
