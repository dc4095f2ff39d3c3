//! `gateway demo`: the simulated building and the gateway polling it, in one
//! process, with the decoded values shown live. Nothing to install, nothing
//! to configure: every port is picked free on loopback.

use std::fmt::Write as _;
use std::io::{IsTerminal, Write as _};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use gateway_core::config::{BusKind, Resolved};
use gateway_core::model::{PollClass, PollOutcome, Value};
use gateway_sim::SimOptions;
use tokio_util::sync::CancellationToken;

use crate::output::value_text;
use crate::run::{RunOptions, run};

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
}

const fn default_demo_config() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../config/demo.toml")
}

/// Runs `gateway demo`; returns the exit code.
pub async fn demo(a: DemoArgs) -> u8 {
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

    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    let limit = a.seconds.map(Duration::from_secs);
    tokio::spawn(async move {
        match limit {
            Some(d) => {
                tokio::select! {
                    _ = crate::logging::shutdown_signal() => {}
                    _ = tokio::time::sleep(d) => {}
                }
            }
            None => crate::logging::shutdown_signal().await,
        }
        stop.cancel();
    });
    let mut latest: Vec<Option<PollOutcome>> = vec![None; cfg.devices.len()];
    let every = Duration::from_secs(a.every.max(1));
    let mut last_print = Instant::now();
    let tty = std::io::stdout().is_terminal();
    run(
        &cfg,
        RunOptions::default(),
        |o| {
            if o.class == PollClass::Full || latest[o.device].is_none() {
                latest[o.device] = Some(o.clone());
            }
            if last_print.elapsed() >= every {
                last_print = Instant::now();
                let screen = render(&cfg, &latest);
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
    sim.shutdown().await;
    0
}

/// One screen: a line per device with its state and key readings.
fn render(cfg: &Resolved, latest: &[Option<PollOutcome>]) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "{} / {}  ({} devices)",
        cfg.site,
        cfg.gateway,
        cfg.devices.len()
    );
    let _ = writeln!(s, "{:<18} {:<22} {:<8} readings", "device", "name", "state");
    for (i, d) in cfg.devices.iter().enumerate() {
        let (state, readings) = match &latest[i] {
            None => ("waiting".to_owned(), String::new()),
            Some(o) => {
                let state = match o.failure {
                    None => "ok".to_owned(),
                    Some(f) => f.to_string(),
                };
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
                (state, r)
            }
        };
        let _ = writeln!(
            s,
            "{:<18} {} {:<8} {}",
            d.id,
            pad(&d.name_zh, 22),
            state,
            readings
        );
    }
    s
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
