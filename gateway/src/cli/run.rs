//! `gateway run`: the daemon.

use std::io::Write as _;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use gateway_core::config::{MqttConfig, Resolved, parse_broker_url};

use crate::engine::Engine;
use crate::north::North;
use crate::north::mqtt::{MqttStats, Publisher};
use crate::north::outbox::{OutboxReader, OutboxWriter};
use crate::output::outcome_json_line;
use crate::run::{Core, Event, RunOptions, run as run_loop, unix_now_ms};
use crate::store::data_dir_of;

/// Arguments of `gateway run`.
#[derive(Debug, clap::Args)]
pub struct RunArgs {
    /// The gateway configuration file.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Write one JSON line per device poll (`"type":"poll"`) and per stored
    /// engine event (`transition`, `alarm`, `ticket`) on stdout.
    #[arg(long)]
    pub stdout: bool,
    /// Poll every device once (up to 3 full polls until it answers cleanly),
    /// print one line per device and exit: 0 when every device answered, 1 otherwise.
    #[arg(long)]
    pub once: bool,
    /// Publish to this broker instead of `[mqtt] url` (`mqtt://host:port` or
    /// `mqtts://host:port`); turns MQTT on, with defaults, when the file has
    /// no `[mqtt]` section.
    #[arg(long, value_name = "URL")]
    pub mqtt_url: Option<String>,
    /// Keep the gateway's state (ledger, tickets, outbox) in this folder
    /// instead of the file's `data_dir`.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Runs `gateway run`; returns the exit code.
pub async fn run(args: RunArgs) -> u8 {
    // Before anything says "up": an early SIGINT must stop us in order.
    let signals = crate::logging::ShutdownSignals::install();
    // The command line first, then the very checks `gateway check` makes
    // (secrets and files included).
    if let Some(url) = &args.mqtt_url
        && let Err(e) = parse_broker_url(url)
    {
        eprintln!("gateway run: --mqtt-url: {e}");
        return super::EXIT_CONFIG;
    }
    let cfg = match super::check::validate_for_run(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            super::print_config_errors(&args.config, &errors);
            return super::EXIT_CONFIG;
        }
    };
    let mut cfg = cfg;
    if let Some(url) = &args.mqtt_url {
        override_mqtt_url(&mut cfg, url);
    }
    let data_dir = args
        .data_dir
        .clone()
        .unwrap_or_else(|| data_dir_of(&args.config, &cfg.data_dir));
    let shutdown = CancellationToken::new();
    // The publisher stops after the run loop's last append.
    let publisher_stop = CancellationToken::new();
    let mut publisher = None;
    let mut influx_task = None;
    let mut alerts_task = None;
    // The engine (health, ledger, tickets) and the north side run unless
    // this is a one-shot read.
    // Writes find this run's buses here (installed by each pass of the loop).
    let writes = crate::south::writes::Router::new();
    let core = if args.once {
        None
    } else {
        let started = unix_now_ms();
        let engine = match Engine::open(&cfg, &data_dir, started) {
            Ok(e) => e,
            Err(e) => {
                error!(error = %e, "cannot start the engine");
                eprintln!("gateway run: {e}");
                if let crate::engine::EngineError::Store(s) = &e
                    && s.is_damage()
                {
                    if !matches!(
                        s,
                        crate::store::StoreError::Lost { .. }
                            | crate::store::StoreError::Damaged { .. }
                    ) {
                        eprintln!(
                            "gateway run: the ledger {} is damaged; restore the last backup: gateway restore --data-dir {} --from BACKUP_DIR --force",
                            data_dir.join(crate::store::DB_FILE).display(),
                            data_dir.display()
                        );
                    }
                    return super::EXIT_DAMAGED;
                }
                return super::EXIT_UNAVAILABLE;
            }
        };
        // `gateway status --data-dir DIR` and the like find the
        // configuration through this record (cli::site).
        if let Err(e) = super::site::record_config(&data_dir, &args.config) {
            warn!(error = %e, dir = %data_dir.display(), "cannot record the configuration's path in the data directory; commands there will need --config");
        }
        // The data disk: telemetry stays out of the [store] min_free reserve.
        let space = std::sync::Arc::new(crate::store::Space::new(
            &data_dir,
            cfg.raw.store.min_free_bytes(),
        ));
        let mut engine = engine;
        engine.0.set_space(std::sync::Arc::clone(&space));
        let mut core = Core::new(engine);
        let mut metrics = crate::admin::Metrics {
            space: Some(std::sync::Arc::clone(&space)),
            ..crate::admin::Metrics::default()
        };
        // On-call alerts (issue #6): every stored event also goes to the dispatcher.
        match crate::alerts::start(&cfg, &args.config, &data_dir, publisher_stop.clone()) {
            Ok(Some(a)) => {
                core.events = Some(a.events);
                core.alerts = a.mqtt;
                metrics.alerts = Some(a.stats);
                alerts_task = Some(a.task);
            }
            Ok(None) => {}
            Err((code, e)) => {
                eprintln!("gateway run: {e}");
                return code;
            }
        }
        let mut mqtt_stats = None;
        match start_north(
            &cfg,
            &args.config,
            &data_dir,
            started,
            Some(std::sync::Arc::clone(&space)),
            std::sync::Arc::clone(&writes),
            publisher_stop.clone(),
        ) {
            Ok(Some((north, state_every, task, replies, stats))) => {
                mqtt_stats = Some(stats);
                core.north = Some(north);
                core.state_every = state_every;
                core.replies = replies;
                core.rbe = Some(gateway_core::rbe::Rbe::new(
                    &cfg.devices,
                    cfg.raw
                        .mqtt
                        .as_ref()
                        .map_or(std::time::Duration::from_secs(300), |m| m.heartbeat.get()),
                ));
                publisher = Some(task);
            }
            Ok(None) => info!("no [mqtt] section: nothing is published over MQTT"),
            Err((code, e)) => {
                eprintln!("gateway run: {e}");
                return code;
            }
        }
        match start_influx(
            &cfg,
            &args.config,
            &data_dir,
            &space,
            publisher_stop.clone(),
        ) {
            Ok(Some((feed, task, dead))) => {
                metrics.influx_outbox = Some(feed.stats());
                metrics.influx_dead = Some(dead);
                core.influx = Some(feed);
                influx_task = Some(task);
            }
            Ok(None) => {}
            Err((code, e)) => {
                eprintln!("gateway run: {e}");
                return code;
            }
        }
        if let Some(n) = &core.north {
            metrics.outbox = Some(n.stats());
        }
        metrics.mqtt = mqtt_stats.clone();
        let metrics = std::sync::Arc::new(metrics);
        if !cfg.raw.admin.listen.is_empty() {
            let addr = cfg.raw.admin.listen.clone();
            match tokio::net::TcpListener::bind(&addr).await {
                Ok(l) => {
                    info!(listen = %addr, "admin listener: /healthz, /metrics");
                    tokio::spawn(crate::admin::serve(
                        l,
                        std::sync::Arc::clone(&metrics),
                        shutdown.clone(),
                    ));
                }
                Err(e) => {
                    // Monitoring the building matters more than the admin
                    // page: keep running without it.
                    error!(
                        listen = %addr, error = %e,
                        "cannot listen for /healthz and /metrics; running without them (set [admin] listen to a free address, or \"\" to turn it off)"
                    );
                }
            }
        }
        core.metrics = Some(metrics);
        Some(core)
    };
    let stop = shutdown.clone();
    tokio::spawn(async move {
        signals.recv().await;
        info!("stopping: signal received");
        stop.cancel();
    });
    // SIGHUP (`systemctl reload`) re-reads the configuration; not for --once.
    let mut hup = if args.once {
        None
    } else {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()) {
            Ok(s) => Some(s),
            Err(e) => {
                warn!(error = %e, "cannot listen for SIGHUP: configuration reloads need a restart");
                None
            }
        }
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let to_stdout = args.stdout || args.once;
    let mut core = core;
    let summary = loop {
        let opts = RunOptions {
            once: args.once,
            keep_core: !args.once,
            writes: Some(std::sync::Arc::clone(&writes)),
            ..RunOptions::default()
        };
        // Each pass of the loop runs one configuration; a reload stops the
        // pass, not the gateway.
        let pass = shutdown.child_token();
        let mut next: Option<Resolved> = None;
        let mut summary = {
            let cfg = &cfg;
            let sink = |ev: Event<'_>| {
                if !to_stdout {
                    return true;
                }
                let line = match ev {
                    Event::Poll(o) => outcome_json_line(cfg, o),
                    Event::Core(c) => match serde_json::to_string(c) {
                        Ok(l) => l,
                        Err(_) => return true,
                    },
                };
                // Flush per line: consumers (pipes, `jq`, tests) see each poll at once.
                match writeln!(out, "{line}").and_then(|_| out.flush()) {
                    Ok(()) => true,
                    Err(e) => {
                        // A closed pipe (`| head`) ends the run quietly.
                        if e.kind() != std::io::ErrorKind::BrokenPipe {
                            error!(error = %e, "cannot write to stdout; stopping");
                        }
                        false
                    }
                }
            };
            let pass_run = run_loop(cfg, opts, core.take(), sink, pass.clone());
            tokio::pin!(pass_run);
            loop {
                tokio::select! {
                    s = &mut pass_run => break s,
                    Some(()) = next_hup(&mut hup) => {
                        if let Some(new) = reload_config(&args, cfg, &data_dir) {
                            crate::sdnotify::notify("RELOADING=1");
                            next = Some(new);
                            pass.cancel();
                        }
                    }
                }
            }
        };
        let (Some(new_cfg), false) = (next, shutdown.is_cancelled()) else {
            break summary;
        };
        let Some(old) = summary.core.take() else {
            break summary;
        };
        let heartbeat = new_cfg
            .raw
            .mqtt
            .as_ref()
            .map_or(std::time::Duration::from_secs(300), |m| m.heartbeat.get());
        match old.reload(&new_cfg, heartbeat, unix_now_ms()) {
            Ok(c) => {
                info!(
                    devices = new_cfg.devices.len(),
                    was = cfg.devices.len(),
                    "configuration reloaded: ledger, tickets and outbox kept"
                );
                core = Some(c);
                cfg = new_cfg;
            }
            Err(e) => {
                error!(error = %e, "cannot reopen the engine after a reload; stopping (the service manager restarts the gateway)");
                publisher_stop.cancel();
                return super::EXIT_UNAVAILABLE;
            }
        }
    };
    publisher_stop.cancel();
    if let Some(task) = alerts_task {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(2), task).await;
    }
    if let Some(task) = influx_task {
        let _ = tokio::time::timeout(std::time::Duration::from_secs(7), task).await;
    }
    if let Some(task) = publisher {
        // The publisher delivers the outbox (up to 3 s), says offline and disconnects (up to 2 s).
        let _ = tokio::time::timeout(std::time::Duration::from_secs(7), task).await;
    }
    if let Some(why) = &summary.fatal {
        error!(error = %why, "stopped: the ledger database is damaged");
        eprintln!(
            "gateway run: the ledger database is damaged ({why}); stopped. Restore the last backup: gateway restore --data-dir {} --from BACKUP_DIR --force",
            data_dir.display()
        );
        return super::EXIT_LEDGER_FAILED;
    }
    if !args.once {
        info!(outcomes = summary.outcomes, "stopped");
        return 0;
    }
    for (device, failure) in &summary.failed {
        warn!(%device, %failure, "device did not answer cleanly");
    }
    for device in &summary.missing {
        warn!(%device, "device was not polled before the run stopped");
    }
    if summary.failed.is_empty() && summary.missing.is_empty() {
        0
    } else {
        eprintln!(
            "gateway run --once: {} of {} devices did not answer cleanly",
            summary.failed.len() + summary.missing.len(),
            cfg.devices.len()
        );
        1
    }
}

/// The next SIGHUP, or never when there is no listener.
async fn next_hup(hup: &mut Option<tokio::signal::unix::Signal>) -> Option<()> {
    match hup.as_mut() {
        Some(h) => h.recv().await,
        None => std::future::pending().await,
    }
}

/// Settings a reload cannot change: they need a restart. (`[store]` is
/// not one: the reloaded engine reads `keep_months` and starts a retention
/// run on its first tick.)
fn restart_only(old: &Resolved, new: &Resolved) -> Vec<&'static str> {
    let mut changed = Vec::new();
    if old.site != new.site {
        changed.push("site");
    }
    if old.gateway != new.gateway {
        changed.push("gateway");
    }
    if old.timezone != new.timezone {
        changed.push("timezone");
    }
    if old.raw.mqtt != new.raw.mqtt {
        changed.push("[mqtt]");
    }
    if old.raw.outbox != new.raw.outbox {
        changed.push("[outbox]");
    }
    if old.raw.influx != new.raw.influx {
        changed.push("[influx]");
    }
    if old.raw.commands != new.raw.commands {
        changed.push("[commands]");
    }
    if old.raw.admin != new.raw.admin {
        changed.push("[admin]");
    }
    // Secrets compare by where they are read from, not by their value.
    if old.raw.alerts != new.raw.alerts {
        changed.push("[alerts]");
    }
    changed
}

/// Reads the configuration again for a reload: the new one when it is
/// valid and changes only what a reload can change; otherwise every reason
/// is logged and `None` keeps the running configuration.
fn reload_config(
    args: &RunArgs,
    running: &Resolved,
    data_dir: &std::path::Path,
) -> Option<Resolved> {
    let file = args.config.display().to_string();
    info!(config = %file, "SIGHUP: reading the configuration again");
    let mut new = match crate::files::load_config(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            for e in &errors {
                error!(config = %file, error = %e, "the new configuration has an error");
            }
            error!(
                config = %file,
                errors = errors.len(),
                "the new configuration is refused; the running one stays"
            );
            return None;
        }
    };
    if let Some(url) = &args.mqtt_url {
        override_mqtt_url(&mut new, url);
    }
    if args.data_dir.is_none() && data_dir_of(&args.config, &new.data_dir) != data_dir {
        error!(config = %file, "data_dir changed: that needs a restart; the running configuration stays");
        return None;
    }
    let changed = restart_only(running, &new);
    if !changed.is_empty() {
        error!(
            config = %file,
            settings = %changed.join(", "),
            "these settings change only at a restart (systemctl restart bms-gateway); the running configuration stays"
        );
        return None;
    }
    Some(new)
}

/// `--mqtt-url`: this broker instead of `[mqtt] url`, MQTT on.
fn override_mqtt_url(cfg: &mut Resolved, url: &str) {
    match cfg.raw.mqtt.as_mut() {
        Some(m) => {
            m.url = url.to_owned();
            m.enabled = true;
        }
        None => cfg.raw.mqtt = Some(MqttConfig::for_url(url)),
    }
}

/// The run loop's half of the north side, the state interval and the
/// publisher task.
pub type NorthParts = (
    North,
    std::time::Duration,
    tokio::task::JoinHandle<()>,
    Option<tokio::sync::mpsc::Receiver<crate::wire::Body>>,
    std::sync::Arc<MqttStats>,
);

/// Opens the outbox and starts the MQTT publisher when `[mqtt]` is on;
/// returns the writer half for the run loop and the state interval. Errors
/// carry the exit code.
pub fn start_north(
    cfg: &Resolved,
    config_file: &std::path::Path,
    data_dir: &std::path::Path,
    started_ms: i64,
    space: Option<std::sync::Arc<crate::store::Space>>,
    writes: std::sync::Arc<crate::south::writes::Router>,
    shutdown: CancellationToken,
) -> Result<Option<NorthParts>, (u8, String)> {
    let Some(mqtt) = cfg.raw.mqtt.clone().filter(|m| m.enabled) else {
        return Ok(None);
    };
    let base = config_base(config_file);
    let password = mqtt
        .password
        .read(&base, &|v| std::env::var(v).ok())
        .map_err(|e| (super::EXIT_CONFIG, format!("[mqtt] password: {e}")))?;
    // TLS files must be readable now, not discovered missing at the first
    // connection attempt.
    for (key, file) in [
        ("ca_file", &mqtt.ca_file),
        ("client_cert_file", &mqtt.client_cert_file),
        ("client_key_file", &mqtt.client_key_file),
    ] {
        if let Some(f) = file {
            let path = base.join(f);
            std::fs::File::open(&path).map_err(|e| {
                (
                    super::EXIT_CONFIG,
                    format!("[mqtt] {key}: cannot read {}: {e}", path.display()),
                )
            })?;
        }
    }
    let outbox = &cfg.raw.outbox;
    let mut writer = OutboxWriter::open(data_dir, outbox.fsync, outbox.max_bytes())
        .map_err(|e| (super::EXIT_UNAVAILABLE, e.to_string()))?;
    let stats = writer.stats();
    let mut reader = OutboxReader::open(data_dir, outbox.fsync, std::sync::Arc::clone(&stats))
        .map_err(|e| (super::EXIT_UNAVAILABLE, e.to_string()))?;
    if let Some(s) = space {
        writer = writer.with_space(std::sync::Arc::clone(&s));
        reader = reader.with_space(s);
    }
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    // Signed commands over MQTT, when [commands] is on.
    let mut commands_tx = None;
    let mut replies_rx = None;
    let mqtt_stats = std::sync::Arc::new(MqttStats::default());
    if let Some(c) = cfg.raw.commands.clone().filter(|c| c.enabled) {
        let secret = crate::cmdin::read_secret(&c, &base, &|v| std::env::var(v).ok())
            .map_err(|e| (super::EXIT_CONFIG, e))?;
        let tz = gateway_core::ledger::parse_tz(&cfg.timezone)
            .map_err(|e| (super::EXIT_CONFIG, e.to_string()))?;
        let verifier =
            crate::cmdin::Verifier::new(secret, c.max_age.get(), tz, &cfg.site, &cfg.gateway);
        let (tx, rx) = tokio::sync::mpsc::channel(64);
        let (rtx, rrx) = tokio::sync::mpsc::channel(64);
        tokio::spawn(crate::north::commands::serve(
            verifier,
            data_dir.to_path_buf(),
            rx,
            rtx,
            std::sync::Arc::clone(&mqtt_stats),
            writes,
            shutdown.clone(),
        ));
        commands_tx = Some(tx);
        replies_rx = Some(rrx);
    }
    let north = North::new(cfg, &mqtt, writer, std::sync::Arc::clone(&wake));
    let state_every = mqtt.state_every.get();
    let publisher = Publisher {
        mqtt,
        identity: crate::wire::Identity::of(cfg),
        data_dir: data_dir.to_path_buf(),
        base_dir: base,
        password,
        commands: commands_tx.is_some(),
        outbox: reader,
        outbox_stats: stats,
        wake,
        started_ms,
        commands_tx,
        stats: std::sync::Arc::clone(&mqtt_stats),
        last_error: None,
    };
    let task = tokio::spawn(publisher.run(shutdown));
    Ok(Some((north, state_every, task, replies_rx, mqtt_stats)))
}

/// The run loop's half of the InfluxDB sink and its writer task.
type InfluxParts = (
    crate::north::influx_feed::InfluxFeed,
    tokio::task::JoinHandle<()>,
    std::sync::Arc<crate::north::dead_letters::DeadLetterStats>,
);

/// Opens the InfluxDB outbox and starts its writer when `[influx]` is on.
fn start_influx(
    cfg: &Resolved,
    config_file: &std::path::Path,
    data_dir: &std::path::Path,
    space: &std::sync::Arc<crate::store::Space>,
    shutdown: CancellationToken,
) -> Result<Option<InfluxParts>, (u8, String)> {
    use crate::north::outbox::INFLUX_FILE;
    let Some(influx) = cfg.raw.influx.clone().filter(|i| i.enabled) else {
        return Ok(None);
    };
    let base = config_base(config_file);
    let token = influx
        .token
        .read(&base, &|v| std::env::var(v).ok())
        .map_err(|e| (super::EXIT_CONFIG, format!("[influx] token: {e}")))?;
    let writer = crate::influx::InfluxWriter::new(&influx, token)
        .map_err(|e| (super::EXIT_CONFIG, format!("[influx]: {e}")))?;
    let outbox = &cfg.raw.outbox;
    let file = data_dir.join(INFLUX_FILE);
    let w = OutboxWriter::open_at(&file, outbox.fsync, outbox.max_bytes())
        .map_err(|e| (super::EXIT_UNAVAILABLE, e.to_string()))?
        .with_space(std::sync::Arc::clone(space));
    let r = OutboxReader::open_at(&file, outbox.fsync, w.stats())
        .map_err(|e| (super::EXIT_UNAVAILABLE, e.to_string()))?
        .with_space(std::sync::Arc::clone(space));
    let dead_stats = std::sync::Arc::default();
    let dead =
        crate::north::dead_letters::DeadLetters::open(data_dir, std::sync::Arc::clone(&dead_stats))
            .map_err(|e| (super::EXIT_UNAVAILABLE, e.to_string()))?;
    let wake = std::sync::Arc::new(tokio::sync::Notify::new());
    let feed = crate::north::influx_feed::InfluxFeed::new(w, std::sync::Arc::clone(&wake));
    let task = tokio::spawn(crate::north::influx_feed::run(
        writer,
        r,
        dead,
        wake,
        usize::try_from(influx.batch).unwrap_or(5000),
        influx.flush_every.get(),
        shutdown,
    ));
    info!(url = %influx.url, bucket = %influx.bucket, "writing telemetry to InfluxDB");
    Ok(Some((feed, task, dead_stats)))
}

/// The folder secret and TLS file names are relative to: the config file's.
fn config_base(config_file: &std::path::Path) -> std::path::PathBuf {
    config_file
        .parent()
        .unwrap_or_else(|| std::path::Path::new("."))
        .to_path_buf()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn load(dir: &std::path::Path, alerts: &str) -> Resolved {
        let profiles = concat!(env!("CARGO_MANIFEST_DIR"), "/../config/profiles");
        let text = format!(
            r#"
site = "tower-a"
gateway = "gw-1"
profiles_dir = "{profiles}"
[[bus]]
id = "rs485-1"
kind = "rtu"
port = "/dev/null"
[[device]]
id = "fire-1"
name_zh = "1号消防主机"
class = "fire_alarm"
bus = "rs485-1"
unit = 2
profile = "fire-panel"
[alerts]
{alerts}
[[alerts.channel]]
id = "hook"
kind = "webhook"
url = "http://127.0.0.1:9/hook"
secret = {{ env = "HOOK_SECRET" }}
[alerts.critical]
channels = ["hook"]
ack_within = "10m"
outside_hours = "page"
[[alerts.person]]
id = "zhang"
name = "张工"
[alerts.rotation]
start = "2026-11-02"
[[alerts.rotation.tier]]
name = "值班工程师"
people = ["zhang"]
"#
        );
        let file = dir.join("gateway.toml");
        std::fs::write(&file, text).unwrap();
        crate::files::load_config(&file).unwrap()
    }

    #[test]
    fn a_change_to_the_alert_settings_needs_a_restart_and_the_same_ones_do_not() {
        let dir = tempfile::tempdir().unwrap();
        let a = load(dir.path(), "");
        let same = load(dir.path(), "");
        assert!(restart_only(&a, &same).is_empty());
        let keep = load(dir.path(), "keep = \"30d\"");
        assert_eq!(restart_only(&a, &keep), vec!["[alerts]"]);
    }
}
