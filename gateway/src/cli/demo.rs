//! `gateway demo`: the simulated building and the gateway polling it, in one
//! process, with the decoded values shown live. Nothing to install, nothing
//! to configure: every port is picked free on loopback.

use std::collections::{BTreeMap, VecDeque};
use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use gateway_core::config::{BusKind, Resolved};
use gateway_core::model::{PollClass, PollOutcome, Value};
use gateway_core::state::DeviceState;
use gateway_core::tickets::{Ticket, TicketState};
use gateway_sim::SimOptions;
use tokio_util::sync::CancellationToken;

use crate::engine::{CoreEvent, Engine};
use crate::output::value_text;
use crate::run::{Core, Event, RunOptions, run, unix_now_ms};

/// Arguments of `gateway demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// The building to simulate and poll.
    #[arg(long, short, default_value = default_demo_config())]
    pub config: PathBuf,
    /// Seconds between two screens of values.
    #[arg(long, default_value_t = 2)]
    pub every: u64,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub seconds: Option<u64>,
    /// Keep the ledger and tickets in this folder (default: a temporary
    /// folder removed at exit).
    #[arg(long)]
    pub data_dir: Option<PathBuf>,
    /// Also publish everything to this MQTT broker (`mqtt://host:port`),
    /// as `gateway run` would (see docs/mqtt.md).
    #[arg(long, value_name = "URL")]
    pub mqtt_url: Option<String>,
}

const fn default_demo_config() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../config/demo.toml")
}

/// Runs `gateway demo`; returns the exit code.
pub async fn demo(a: DemoArgs) -> u8 {
    // Before anything says "up": an early SIGINT must stop us in order.
    let signals = crate::logging::ShutdownSignals::install();
    let mut cfg = match crate::files::load_config(&a.config) {
        Ok(c) => c,
        Err(errors) => {
            super::print_config_errors(&a.config, &errors);
            return super::EXIT_CONFIG;
        }
    };
    // The demo never needs the fixed ports or paths of the file.
    let mut opts = SimOptions::loopback();
    opts.control = Some(std::net::SocketAddr::from(([127, 0, 0, 1], 0)));
    let sim = match gateway_sim::start(&cfg, opts).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gateway demo: cannot start the simulated building: {e}");
            return super::EXIT_UNAVAILABLE;
        }
    };
    for bus in &mut cfg.buses {
        match bus.kind {
            BusKind::Tcp | BusKind::RtuOverTcp => {
                if let Some(a) = sim.tcp_addr(&bus.id) {
                    bus.target = a.to_string();
                }
            }
            BusKind::Rtu => {
                if let Some(p) = sim.pty_path(&bus.id) {
                    bus.target = p.display().to_string();
                }
            }
        }
    }
    super::simulate::print_endpoints(&cfg, &sim);
    println!(
        "demo: polling {} devices on {} buses; inject faults with e.g.\n  curl -X POST http://{}/faults -H 'content-type: application/json' -d '{{\"device\":\"pump-1\",\"fault\":\"no_response\",\"duration\":\"30s\"}}'\nCtrl-C stops.\n",
        cfg.devices.len(),
        cfg.buses.len(),
        sim.control_addr()
    );

    let temp;
    let data_dir = match &a.data_dir {
        Some(d) => d.clone(),
        None => match tempfile::Builder::new().prefix("bms-demo-").tempdir() {
            Ok(t) => {
                temp = t;
                temp.path().to_path_buf()
            }
            Err(e) => {
                eprintln!("gateway demo: cannot create a temporary data folder: {e}");
                sim.shutdown().await;
                return super::EXIT_UNAVAILABLE;
            }
        },
    };
    let engine = match Engine::open(&cfg, &data_dir, unix_now_ms()) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("gateway demo: {e}");
            sim.shutdown().await;
            return super::EXIT_UNAVAILABLE;
        }
    };
    if let Err(e) = super::site::record_config(&data_dir, &a.config) {
        eprintln!(
            "gateway demo: cannot record the configuration's path in {}: {e}; the commands below will need --config {}",
            data_dir.display(),
            a.config.display()
        );
    }
    let tz = gateway_core::ledger::parse_tz(&cfg.timezone).unwrap_or(chrono_tz::Asia::Shanghai);
    println!(
        "demo: ledger and tickets in {dir}{note}; see them with\n{commands}",
        dir = data_dir.display(),
        note = if a.data_dir.is_none() {
            " (temporary, removed at exit)"
        } else {
            ""
        },
        commands = look_commands(&data_dir, tz, unix_now_ms())
            .iter()
            .map(|c| format!("  {c}\n"))
            .collect::<String>()
    );

    let shutdown = CancellationToken::new();
    let mut core = Core::new(engine);
    let publisher_stop = CancellationToken::new();
    let mut publisher = None;
    if let Some(url) = &a.mqtt_url {
        if let Err(e) = gateway_core::config::parse_broker_url(url) {
            eprintln!("gateway demo: --mqtt-url: {e}");
            sim.shutdown().await;
            return super::EXIT_CONFIG;
        }
        cfg.raw.mqtt = Some(gateway_core::config::MqttConfig::for_url(url));
        match super::run::start_north(
            &cfg,
            &a.config,
            &data_dir,
            unix_now_ms(),
            None,
            crate::south::writes::Router::new(),
            publisher_stop.clone(),
        ) {
            Ok(Some((north, state_every, task, replies, _))) => {
                core.north = Some(north);
                core.state_every = state_every;
                core.replies = replies;
                core.rbe = Some(gateway_core::rbe::Rbe::new(
                    &cfg.devices,
                    Duration::from_secs(300),
                ));
                publisher = Some(task);
                println!(
                    "demo: publishing to {url} (topics bms/{}/{}/…)\n",
                    cfg.site, cfg.gateway
                );
            }
            Ok(None) => {}
            Err((code, e)) => {
                eprintln!("gateway demo: {e}");
                sim.shutdown().await;
                return code;
            }
        }
    }
    let stop = shutdown.clone();
    let limit = a.seconds.map(Duration::from_secs);
    tokio::spawn(async move {
        crate::logging::shutdown_signal_or(signals, limit).await;
        stop.cancel();
    });
    let mut view = View::new(&cfg);
    let every = Duration::from_secs(a.every.max(1));
    let mut last_print = Instant::now();
    let tty = std::io::stdout().is_terminal();
    run(
        &cfg,
        RunOptions::default(),
        Some(core),
        |ev| {
            view.take(ev);
            if last_print.elapsed() >= every {
                last_print = Instant::now();
                let screen = view.render(&cfg);
                let mut out = std::io::stdout().lock();
                if tty {
                    let _ = write!(out, "\x1b[2J\x1b[H");
                }
                return writeln!(out, "{screen}").and_then(|_| out.flush()).is_ok();
            }
            true
        },
        shutdown,
    )
    .await;
    publisher_stop.cancel();
    if let Some(task) = publisher {
        let _ = tokio::time::timeout(Duration::from_secs(7), task).await;
    }
    sim.shutdown().await;
    0
}

/// The commands that show a demo's data in `data_dir` (as printed: the
/// folder is quoted for a POSIX shell when it needs it), for the month of
/// `now_ms` in the site's zone `tz`. `dashboard demo` prints them too.
pub fn look_commands(data_dir: &std::path::Path, tz: chrono_tz::Tz, now_ms: i64) -> Vec<String> {
    let dir = shell_word(&data_dir.display().to_string());
    let month = chrono::DateTime::from_timestamp_millis(now_ms)
        .map(|t| t.with_timezone(&tz).format("%Y-%m").to_string())
        .unwrap_or_else(|| "2026-12".to_owned());
    vec![
        format!("gateway status --data-dir {dir}"),
        format!("gateway tickets list --all --data-dir {dir}"),
        format!("gateway maintenance list --data-dir {dir}"),
        format!("gateway report --data-dir {dir} --month {month} --out report-{month}.html"),
    ]
}

/// `s` as one POSIX shell word: as it is when only safe characters, else in
/// single quotes.
fn shell_word(s: &str) -> String {
    let safe = |c: char| c.is_ascii_alphanumeric() || "/._-+:=@%,".contains(c);
    if !s.is_empty() && s.chars().all(safe) {
        s.to_owned()
    } else {
        format!("'{}'", s.replace('\'', r"'\''"))
    }
}

/// What the demo shows: the latest poll, state and open tickets.
struct View {
    latest: Vec<Option<PollOutcome>>,
    state: BTreeMap<String, (DeviceState, Option<String>)>,
    tickets: BTreeMap<u64, Ticket>,
    log: VecDeque<String>,
    tz: chrono_tz::Tz,
}

/// Lines of recent events kept on screen.
const LOG_LINES: usize = 8;

impl View {
    fn new(cfg: &Resolved) -> View {
        View {
            latest: vec![None; cfg.devices.len()],
            state: BTreeMap::new(),
            tickets: BTreeMap::new(),
            log: VecDeque::new(),
            tz: gateway_core::ledger::parse_tz(&cfg.timezone).unwrap_or(chrono_tz::Asia::Shanghai),
        }
    }

    fn take(&mut self, ev: Event<'_>) {
        match ev {
            Event::Poll(o) => {
                if let Some(slot) = self.latest.get_mut(o.device)
                    && (o.class == PollClass::Full || slot.is_none())
                {
                    *slot = Some(o.clone());
                }
            }
            Event::Core(CoreEvent::Transition(t)) => {
                self.state
                    .insert(t.device.clone(), (t.to, t.reason.clone()));
                if t.from != t.to {
                    self.push_log(
                        t.at_ms,
                        format!(
                            "{} {} → {}{}",
                            t.device,
                            t.from,
                            t.to,
                            t.reason
                                .as_deref()
                                .map(|r| format!(" ({r})"))
                                .unwrap_or_default()
                        ),
                    );
                }
            }
            Event::Core(CoreEvent::Alarm(a)) => self.push_log(
                a.at_ms,
                format!(
                    "{} alarm {} {}",
                    a.device,
                    a.point,
                    if a.active { "ACTIVE" } else { "cleared" }
                ),
            ),
            Event::Core(CoreEvent::Threshold {
                device,
                crossing,
                at_ms,
            }) => {
                let (below, a, t) = crossing.parts();
                let word = if below { "below" } else { "back at" };
                self.push_log(
                    *at_ms,
                    format!(
                        "{device} rolling availability {:.1}% {word} target {t}%",
                        a * 100.0
                    ),
                );
            }
            Event::Core(CoreEvent::Ticket(te)) => {
                let t = &te.ticket;
                self.push_log(
                    te.at_ms,
                    format!("ticket #{} {} {}: {}", t.id, te.kind, t.device, t.summary),
                );
                if t.state == TicketState::Closed {
                    self.tickets.remove(&t.id);
                } else {
                    self.tickets.insert(t.id, t.clone());
                }
            }
        }
    }

    fn push_log(&mut self, at_ms: i64, line: String) {
        if self.log.len() == LOG_LINES {
            self.log.pop_front();
        }
        self.log
            .push_back(format!("{}  {line}", clock(self.tz, at_ms)));
    }

    /// One screen: a line per device with its state and key readings, the
    /// tickets not closed, and the latest events.
    fn render(&self, cfg: &Resolved) -> String {
        let mut s = String::new();
        let _ = writeln!(
            s,
            "{} / {}  ({} devices)",
            cfg.site,
            cfg.gateway,
            cfg.devices.len()
        );
        let _ = writeln!(
            s,
            "{:<18} {:<22} {:<12} {:<9} readings",
            "device", "name", "state", "poll"
        );
        for (i, d) in cfg.devices.iter().enumerate() {
            let state = match self.state.get(&d.id) {
                Some((DeviceState::Down, Some(r))) => {
                    format!("down:{}", r.trim_start_matches("rule:"))
                }
                Some((st, _)) => st.to_string(),
                None => "unknown".to_owned(),
            };
            let (poll, readings) = match &self.latest[i] {
                None => ("waiting".to_owned(), String::new()),
                Some(o) => {
                    let poll = match o.failure {
                        None => "ok".to_owned(),
                        Some(f) => f.to_string(),
                    };
                    (poll, readings(d, o))
                }
            };
            let _ = writeln!(
                s,
                "{:<18} {} {:<12} {:<9} {}",
                d.id,
                pad(&d.name_zh, 22),
                state,
                poll,
                readings
            );
        }
        let _ = writeln!(s, "\ntickets ({} not closed)", self.tickets.len());
        for t in self.tickets.values() {
            let _ = writeln!(
                s,
                "  #{:<4} {:<12} {:<9} {:<14} due {}  {}",
                t.id,
                t.state.as_str(),
                t.severity.as_str(),
                t.device,
                clock(self.tz, t.deadline_ms),
                t.summary
            );
        }
        let _ = writeln!(s, "\nlatest events");
        for l in &self.log {
            let _ = writeln!(s, "  {l}");
        }
        s
    }
}

/// A device's key readings and active alarms.
fn readings(d: &gateway_core::config::ResolvedDevice, o: &PollOutcome) -> String {
    let mut alarms = Vec::new();
    let mut values = Vec::new();
    for smp in &o.samples {
        let Some(p) = d.points.get(smp.point) else {
            continue;
        };
        match &smp.value {
            Some(Value::Bool(true)) if p.alarm => alarms.push(p.name.as_str()),
            Some(v @ (Value::Float(_) | Value::Int(_) | Value::UInt(_)))
                if values.len() < 3 && !p.unit.is_empty() =>
            {
                values.push(format!("{} {}", p.name, value_text(v, &p.unit)));
            }
            _ => {}
        }
    }
    let mut r = values.join(", ");
    if !alarms.is_empty() {
        let _ = write!(r, "  ALARM: {}", alarms.join(" "));
    }
    r
}

/// `18:04:05` (or `11-27 18:04` on another day) in the site's zone.
fn clock(tz: chrono_tz::Tz, ms: i64) -> String {
    let Some(t) = chrono::DateTime::from_timestamp_millis(ms) else {
        return ms.to_string();
    };
    t.with_timezone(&tz).format("%m-%d %H:%M:%S").to_string()
}

/// Pads (or cuts) a name to `cols` terminal columns; CJK characters take two.
fn pad(s: &str, cols: usize) -> String {
    let mut out = String::new();
    let mut used = 0;
    for c in s.chars() {
        let w = if c.len_utf8() >= 3 { 2 } else { 1 };
        if used + w > cols {
            break;
        }
        out.push(c);
        used += w;
    }
    out.extend(std::iter::repeat_n(' ', cols - used));
    out
}
