//! Building the dispatcher from the configuration, and starting it.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use gateway_core::alerts::{DeviceInfo, Policy, Settings};
use gateway_core::config::{AlertsConfig, ChannelKind, Language, Resolved};
use gateway_core::oncall::Roster;
use gateway_core::state::UnixMs;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::info;

use super::channels::{ChannelRef, EmailChannel, HttpChannel, MqttAlert, MqttChannel};
use super::dispatch::{AlertStats, ChannelCounters, Clock, Dispatcher, Handover, Retry};
use crate::engine::CoreEvent;
use crate::store::Store;

/// What [`start`] returns to `gateway run`.
#[derive(Debug)]
pub struct Started {
    /// Give this to `Core::events`: every stored event goes to the dispatcher.
    pub events: mpsc::Sender<CoreEvent>,
    /// Counters for `/metrics` (`Metrics::alerts`).
    pub stats: Arc<AlertStats>,
    /// The dispatcher task.
    pub task: tokio::task::JoinHandle<()>,
    /// Alerts for the MQTT topic `…/alert`, when an `mqtt` channel is
    /// configured: the run loop appends each to its outbox (`Core::alerts`).
    pub mqtt: Option<mpsc::Receiver<MqttAlert>>,
}

/// The run loop's end of an `mqtt` channel, if one is configured.
pub type MqttIntake = Option<mpsc::Receiver<MqttAlert>>;

/// Core events waiting for the dispatcher, at most (then the run loop waits).
const EVENTS: usize = 1024;
/// How far back the restore reads recorded notices.
const LOOKBACK_MS: i64 = 7 * 24 * 3600 * 1000;

/// What messages say about each configured device.
pub fn device_infos(cfg: &Resolved, lang: Language) -> BTreeMap<String, DeviceInfo> {
    cfg.devices
        .iter()
        .map(|d| {
            (
                d.id.clone(),
                DeviceInfo {
                    name: match lang {
                        Language::Zh => d.name_zh.clone(),
                        Language::En => d.name_en.clone(),
                    },
                    location: (!d.location.is_empty()).then(|| d.location.clone()),
                },
            )
        })
        .collect()
}

/// Builds every channel (secrets read now, no network). The second value
/// is the receiver of the MQTT channel, if one is configured.
pub fn build_channels(
    a: &AlertsConfig,
    cfg: &Resolved,
    base: &Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<(BTreeMap<String, ChannelRef>, MqttIntake), String> {
    let mut out: BTreeMap<String, ChannelRef> = BTreeMap::new();
    let mut mqtt_rx = None;
    for c in &a.channels {
        let ch: ChannelRef = match c.kind {
            ChannelKind::Email => {
                let pw = c
                    .password
                    .read(base, env)
                    .map_err(|e| format!("[alerts] channel {:?} password: {e}", c.id))?;
                let ca = match &c.ca_file {
                    Some(f) => {
                        let path = base.join(f);
                        Some(std::fs::read(&path).map_err(|e| {
                            format!(
                                "[alerts] channel {:?} ca_file: cannot read {}: {e}",
                                c.id,
                                path.display()
                            )
                        })?)
                    }
                    None => None,
                };
                Arc::new(EmailChannel::new(c, pw, ca.as_deref())?)
            }
            ChannelKind::Mqtt => {
                if cfg.raw.mqtt.as_ref().is_none_or(|m| !m.enabled) {
                    return Err(format!(
                        "[alerts] channel {:?} is mqtt but [mqtt] is not configured or not enabled",
                        c.id
                    ));
                }
                let (tx, rx) = mpsc::channel(64);
                if mqtt_rx.is_some() {
                    return Err(format!(
                        "[alerts] channel {:?}: only one mqtt channel is possible",
                        c.id
                    ));
                }
                mqtt_rx = Some(rx);
                Arc::new(MqttChannel::new(&c.id, tx))
            }
            _ => {
                let secret = c
                    .secret
                    .read(base, env)
                    .map_err(|e| format!("[alerts] channel {:?} secret: {e}", c.id))?;
                Arc::new(HttpChannel::new(c, secret, &cfg.site, &cfg.gateway)?)
            }
        };
        out.insert(c.id.clone(), ch);
    }
    Ok((out, mqtt_rx))
}

/// Builds the dispatcher for `[alerts]` without starting it.
pub fn dispatcher(
    cfg: &Resolved,
    config_file: &Path,
    data_dir: &Path,
    clock: Clock,
) -> Result<Option<(Dispatcher, MqttIntake)>, String> {
    let Some(a) = cfg.raw.alerts.clone().filter(|a| a.enabled) else {
        return Ok(None);
    };
    let tz = gateway_core::ledger::parse_tz(&cfg.timezone).map_err(|e| e.to_string())?;
    let roster = Roster::from_config(&a, tz).map_err(|errs| {
        errs.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ")
    })?;
    let settings = Settings::new(&a, &cfg.site, &cfg.gateway)?;
    let base = config_file
        .parent()
        .unwrap_or_else(|| Path::new("."))
        .to_path_buf();
    let (channels, mqtt) = build_channels(&a, cfg, &base, &|v| std::env::var(v).ok())?;
    let store = Store::open(data_dir).map_err(|e| e.to_string())?;
    let ms = |d: std::time::Duration| i64::try_from(d.as_millis()).unwrap_or(i64::MAX);
    let stats = AlertStats {
        channels: a
            .channels
            .iter()
            .map(|c| (c.id.clone(), ChannelCounters::default()))
            .collect(),
        ..AlertStats::default()
    };
    let d = Dispatcher {
        store,
        policy: Policy::new(settings, roster),
        channels,
        fallback: a
            .channels
            .iter()
            .filter_map(|c| c.fallback.clone().map(|f| (c.id.clone(), f)))
            .collect(),
        devices: device_infos(cfg, a.language),
        stats: Arc::new(stats),
        retry: Retry {
            min_ms: ms(a.retry_min.get()),
            max_ms: ms(a.retry_max.get()),
            expire_ms: ms(a.expire_after.get()),
            fallback_after: a.fallback_after,
        },
        clock,
        lookback_ms: LOOKBACK_MS,
        unrecorded: Vec::new(),
        keep_ms: ms(a.keep.get()),
        next_prune_ms: UnixMs::MIN,
        pruned: 0,
        handover: match gateway_core::alerts::handover::parse_at(&a.handover_at) {
            Ok(at) if a.handover => Some(Handover {
                at,
                channels: a.handover_channel_ids(),
                tz,
                lang: a.language,
                site: cfg.site.clone(),
                last: None,
                started_ms: UnixMs::MIN,
            }),
            Ok(_) => None,
            Err(e) => return Err(format!("[alerts] handover_at: {e}")),
        },
    };
    Ok(Some((d, mqtt)))
}

/// Starts the alert dispatcher when `[alerts]` is on (see
/// [`crate::alerts`]); `None` when it is absent or disabled. Errors carry
/// the exit code (64: configuration, 69: the database).
pub fn start(
    cfg: &Resolved,
    config_file: &Path,
    data_dir: &Path,
    shutdown: CancellationToken,
) -> Result<Option<Started>, (u8, String)> {
    let clock: Clock = Arc::new(crate::run::unix_now_ms);
    let Some((d, mqtt)) =
        dispatcher(cfg, config_file, data_dir, clock).map_err(|e| (crate::cli::EXIT_CONFIG, e))?
    else {
        return Ok(None);
    };
    let stats = Arc::clone(&d.stats);
    let (tx, rx) = mpsc::channel(EVENTS);
    info!(channels = d.channels.len(), "on-call alerts on");
    let task = tokio::spawn(d.run(rx, shutdown));
    Ok(Some(Started {
        events: tx,
        stats,
        task,
        mqtt,
    }))
}
