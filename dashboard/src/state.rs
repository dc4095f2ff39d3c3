//! What the HTTP handlers and the subscriber share.

use std::collections::HashMap;
use std::sync::Mutex;
use std::sync::atomic::AtomicBool;

use tokio::sync::{oneshot, watch};

use crate::auth::Auth;
use crate::config::Settings;
use crate::model::{Model, Reply};

/// The dashboard's shared state.
#[derive(Debug)]
pub struct Shared {
    pub settings: Settings,
    pub model: Mutex<Model>,
    /// Bumped at every change of the model; the SSE streams watch it.
    pub changed: watch::Sender<u64>,
    /// Commands waiting for their reply, by command id.
    pub pending: Mutex<HashMap<String, oneshot::Sender<Reply>>>,
    /// Whether the subscriber is connected to the broker.
    pub connected: AtomicBool,
    pub auth: Auth,
    /// The MQTT client that sends commands (None until started).
    pub client: Mutex<Option<rumqttc::AsyncClient>>,
    /// Local start time (ms).
    pub started_ms: i64,
    /// The history store (None when `[history] enabled = false`).
    pub history: Option<crate::history::History>,
    /// The central ledger for the monthly reports (None until opened).
    pub ledger: Option<crate::ledger::Ledger>,
}

impl Shared {
    /// Fresh state for `settings`.
    pub fn new(settings: Settings) -> Shared {
        let model = Model::new(&settings.file.mqtt.prefix, settings.file.mqtt.sites.clone());
        let auth = Auth::new(&settings.file.users);
        Shared {
            settings,
            model: Mutex::new(model),
            changed: watch::channel(0).0,
            pending: Mutex::new(HashMap::new()),
            connected: AtomicBool::new(false),
            auth,
            client: Mutex::new(None),
            started_ms: now_ms(),
            history: None,
            ledger: None,
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
        s.ledger = Some(crate::ledger::Ledger::start(&s.settings.data_dir)?);
        Ok(s)
    }

    /// Stale-after in ms.
    pub fn stale_ms(&self) -> i64 {
        i64::try_from(self.settings.file.stale_after.get().as_millis()).unwrap_or(i64::MAX)
    }
}

/// Unix time now in ms.
pub fn now_ms() -> i64 {
    gateway::run::unix_now_ms()
}
