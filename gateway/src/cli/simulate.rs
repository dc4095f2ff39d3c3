//! `gateway simulate`: serve the building of a configuration as Modbus slaves.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;

use gateway_core::config::{BusKind, Resolved, SimBusConfig};
use gateway_sim::{SimHandle, SimOptions};

/// Arguments of `gateway simulate`.
#[derive(Debug, clap::Args)]
pub struct SimulateArgs {
    /// The gateway configuration whose buses and devices are simulated.
    #[arg(long, short)]
    pub config: PathBuf,
    /// Control interface (HTTP) address, over `[simulator] control`; port 0 picks a free port.
    #[arg(long)]
    pub control: Option<SocketAddr>,
    /// Random seed, for reproducible values.
    #[arg(long)]
    pub seed: Option<u64>,
    /// Delay RTU answers by their real wire time at the bus baud rate (`true`/`false`).
    #[arg(long)]
    pub wire_time: Option<bool>,
    /// Every register read answers a changed value (load runs of the publish path).
    #[arg(long)]
    pub churn: bool,
    /// Serve an `rtu` bus on this serial port instead of a pseudo-terminal: `BUS=PATH` (repeatable).
    #[arg(long, value_parser = parse_pair)]
    pub serial: Vec<(String, String)>,
    /// Listen for a `tcp`/`rtu_over_tcp` bus on this address: `BUS=HOST:PORT` (repeatable).
    #[arg(long, value_parser = parse_pair)]
    pub listen: Vec<(String, String)>,
}

fn parse_pair(s: &str) -> Result<(String, String), String> {
    s.split_once('=')
        .map(|(a, b)| (a.trim().to_owned(), b.trim().to_owned()))
        .filter(|(a, b)| !a.is_empty() && !b.is_empty())
        .ok_or_else(|| format!("{s:?}: write BUS=VALUE, e.g. rs485-1=/dev/ttyUSB1"))
}

/// Prints where each bus is served, one line each (tests parse these).
pub fn print_endpoints(cfg: &Resolved, sim: &SimHandle) {
    for bus in &cfg.buses {
        match bus.kind {
            BusKind::Tcp | BusKind::RtuOverTcp => {
                if let Some(a) = sim.tcp_addr(&bus.id) {
                    let kind = if bus.kind == BusKind::Tcp {
                        "Modbus TCP"
                    } else {
                        "RTU over TCP"
                    };
                    println!("simulator: bus {} serving {kind} on {a}", bus.id);
                }
            }
            BusKind::Rtu => {
                if let Some(p) = sim.pty_path(&bus.id) {
                    println!(
                        "simulator: bus {} serving Modbus RTU on {}",
                        bus.id,
                        p.display()
                    );
                }
            }
        }
    }
    for (link, target) in sim.links() {
        println!("simulator: {} -> {}", link.display(), target.display());
    }
    println!("simulator: control http://{}", sim.control_addr());
}

/// Runs `gateway simulate`; returns the exit code.
pub async fn simulate(a: SimulateArgs) -> u8 {
    // Before anything says "up": an early SIGINT must stop us in order.
    let signals = crate::logging::ShutdownSignals::install();
    let mut cfg = match crate::files::load_config(&a.config) {
        Ok(c) => c,
        Err(errors) => {
            super::print_config_errors(&a.config, &errors);
            return super::EXIT_CONFIG;
        }
    };
    let mut unknown = Vec::new();
    for (bus, path) in &a.serial {
        if !cfg
            .buses
            .iter()
            .any(|b| &b.id == bus && b.kind == BusKind::Rtu)
        {
            unknown.push(format!(
                "--serial {bus}=…: no rtu bus {bus:?} in the configuration"
            ));
            continue;
        }
        let entry: &mut SimBusConfig = cfg.raw.simulator.bus.entry(bus.clone()).or_default();
        entry.serial = Some(path.clone());
    }
    let mut listen = BTreeMap::new();
    for (bus, addr) in &a.listen {
        if !cfg
            .buses
            .iter()
            .any(|b| &b.id == bus && b.kind != BusKind::Rtu)
        {
            unknown.push(format!(
                "--listen {bus}=…: no tcp or rtu_over_tcp bus {bus:?} in the configuration"
            ));
            continue;
        }
        listen.insert(bus.clone(), addr.clone());
    }
    if !unknown.is_empty() {
        for u in unknown {
            eprintln!("gateway simulate: {u}");
        }
        return super::EXIT_CONFIG;
    }
    let opts = SimOptions {
        listen,
        control: a.control,
        seed: a.seed,
        wire_time: a.wire_time,
        churn: a.churn,
        ..SimOptions::default()
    };
    let sim = match gateway_sim::start(&cfg, opts).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("gateway simulate: {e}");
            return match e {
                gateway_sim::SimError::Config(_) => super::EXIT_CONFIG,
                _ => super::EXIT_UNAVAILABLE,
            };
        }
    };
    print_endpoints(&cfg, &sim);
    println!(
        "simulator: ready: {} devices on {} buses; Ctrl-C stops",
        cfg.devices.len(),
        cfg.buses.len()
    );
    signals.recv().await;
    sim.shutdown().await;
    0
}
