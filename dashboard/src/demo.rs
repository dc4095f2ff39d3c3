//! `dashboard demo`: the embedded broker, the simulated building of
//! `config/demo.toml`, a gateway polling it and publishing to the broker,
//! and the dashboard, in one process. Nothing to install or configure.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use gateway::cli::start_north;
use gateway::engine::Engine;
use gateway::run::{Core, RunOptions, run as run_gateway, unix_now_ms};
use gateway_core::HumanDuration;
use gateway_core::config::{BusKind, CommandsConfig, MqttConfig, SecretSource};
use gateway_sim::SimOptions;
use tokio_util::sync::CancellationToken;

use crate::{EXIT_CONFIG, EXIT_UNAVAILABLE, Shared, broker, http, mqtt};

/// The demo's login.
pub const DEMO_USER: &str = "demo";
/// The demo's password.
pub const DEMO_PASSWORD: &str = "demo-2026";

/// Arguments of `dashboard demo`.
#[derive(Debug, clap::Args)]
pub struct DemoArgs {
    /// Where the pages are served.
    #[arg(long, default_value = "127.0.0.1:8080", value_name = "ADDR")]
    pub listen: String,
    /// Where the embedded MQTT broker listens.
    #[arg(long, default_value = "127.0.0.1:18830", value_name = "ADDR")]
    pub mqtt_listen: String,
    /// Keep the gateway's and the dashboard's data in this folder (default:
    /// a temporary folder removed at exit).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// The building to simulate and poll.
    #[arg(long, short, default_value = default_demo_config())]
    pub config: PathBuf,
    /// Stop after this many seconds (default: run until Ctrl-C).
    #[arg(long)]
    pub seconds: Option<u64>,
}

const fn default_demo_config() -> &'static str {
    concat!(env!("CARGO_MANIFEST_DIR"), "/../config/demo.toml")
}

fn addr(flag: &str, s: &str) -> Result<SocketAddr, (u8, String)> {
    s.parse().map_err(|e| {
        (
            EXIT_CONFIG,
            format!("{flag} {s:?}: {e}; write an address like 127.0.0.1:8080"),
        )
    })
}

/// Runs `dashboard demo`; returns the exit code.
pub async fn run(a: DemoArgs) -> u8 {
    // Before anything says "up": an early SIGINT must stop us in order.
    let signals = gateway::logging::ShutdownSignals::install();
    match demo(a, signals).await {
        Ok(()) => 0,
        Err((code, e)) => {
            eprintln!("dashboard demo: {e}");
            code
        }
    }
}

async fn demo(a: DemoArgs, signals: gateway::logging::ShutdownSignals) -> Result<(), (u8, String)> {
    let listen = addr("--listen", &a.listen)?;
    let mqtt_listen = addr("--mqtt-listen", &a.mqtt_listen)?;
    let mut cfg = gateway::files::load_config(&a.config).map_err(|errors| {
        let list: Vec<String> = errors.iter().map(|e| format!("  - {e}")).collect();
        (
            EXIT_CONFIG,
            format!("{}:\n{}", a.config.display(), list.join("\n")),
        )
    })?;
    // Both ports first: a busy one is reported before anything starts.
    let listener = http::bind(listen)
        .await
        .map_err(|e| (EXIT_UNAVAILABLE, e))?;
    broker::start(mqtt_listen).map_err(|e| (EXIT_UNAVAILABLE, e))?;
    let broker_url = format!("mqtt://{mqtt_listen}");

    let temp;
    let data_dir = match &a.data_dir {
        Some(d) => d.clone(),
        None => {
            temp = tempfile::Builder::new()
                .prefix("bms-dashboard-demo-")
                .tempdir()
                .map_err(|e| {
                    (
                        EXIT_UNAVAILABLE,
                        format!("cannot create a temporary folder: {e}"),
                    )
                })?;
            temp.path().to_path_buf()
        }
    };
    let gw_dir = data_dir.join("gateway");
    let dash_dir = data_dir.join("dashboard");
    for d in [&gw_dir, &dash_dir] {
        std::fs::create_dir_all(d).map_err(|e| {
            (
                EXIT_UNAVAILABLE,
                format!("cannot create {}: {e}", d.display()),
            )
        })?;
    }
    // The gateway and the dashboard share a fresh command key: 32 random
    // bytes as 64 hex digits, as `openssl rand -hex 32` makes.
    let key_file = data_dir.join("command.key");
    let key = format!("{}{}", crate::auth::token(), crate::auth::token());
    write_private(&key_file, &key)?;

    // The simulated building, on free loopback ports.
    let mut opts = SimOptions::loopback();
    opts.control = Some(SocketAddr::from(([127, 0, 0, 1], 0)));
    let sim = gateway_sim::start(&cfg, opts).await.map_err(|e| {
        (
            EXIT_UNAVAILABLE,
            format!("cannot start the simulated building: {e}"),
        )
    })?;
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
    cfg.raw.mqtt = Some(MqttConfig::for_url(&broker_url));
    cfg.raw.commands = Some(CommandsConfig {
        enabled: true,
        secret: SecretSource {
            file: Some(key_file.display().to_string()),
            env: None,
        },
        max_age: HumanDuration::from_secs(300),
    });

    // The dashboard's configuration.
    let hash = crate::auth::hash_password(DEMO_PASSWORD).map_err(|e| (EXIT_UNAVAILABLE, e))?;
    let toml_text = format!(
        "data_dir = {dd:?}\nrotate_every = \"20s\"\n[mqtt]\nurl = {broker_url:?}\nclient_id = \"bms-dashboard-demo\"\n[http]\nlisten = \"{listen}\"\n[[user]]\nname = {DEMO_USER:?}\npassword_hash = {hash:?}\n[[gateway]]\nsite = {site:?}\ncommand_secret = {{ file = {key:?} }}\n",
        dd = dash_dir.display().to_string(),
        site = cfg.site,
        key = key_file.display().to_string(),
    );
    let file: crate::config::Config = toml::from_str(&toml_text).map_err(|e| {
        (
            EXIT_UNAVAILABLE,
            format!("internal demo configuration: {e}"),
        )
    })?;
    let settings = crate::config::check(file, &data_dir).map_err(|e| {
        (
            EXIT_UNAVAILABLE,
            format!("internal demo configuration: {}", e.join("; ")),
        )
    })?;

    let stop = CancellationToken::new();
    let shared = Arc::new(Shared::open(settings).map_err(|e| (EXIT_UNAVAILABLE, e))?);
    let client = mqtt::start(shared.clone(), stop.clone()).map_err(|e| (EXIT_CONFIG, e))?;
    if let Ok(mut c) = shared.client.lock() {
        *c = Some(client);
    }
    crate::state::spawn_intact_refresh(shared.clone(), stop.clone());

    // The gateway.
    let engine = Engine::open(&cfg, &gw_dir, unix_now_ms())
        .map_err(|e| (EXIT_UNAVAILABLE, e.to_string()))?;
    let mut core = Core::new(engine);
    let publisher_stop = CancellationToken::new();
    let mut publisher = None;
    if let Some((north, state_every, task, replies, _)) = start_north(
        &cfg,
        &a.config,
        &gw_dir,
        unix_now_ms(),
        None,
        // The demo's gateway writes nothing (its configuration has no
        // [writes]): a router with nothing installed refuses every write.
        gateway::south::writes::Router::new(),
        publisher_stop.clone(),
    )? {
        core.north = Some(north);
        core.state_every = state_every;
        core.replies = replies;
        core.rbe = Some(gateway_core::rbe::Rbe::new(
            &cfg.devices,
            Duration::from_secs(300),
        ));
        publisher = Some(task);
    }

    // `gateway status --data-dir <data>` finds the configuration so.
    if let Err(e) = gateway::cli::record_config(&gw_dir, &a.config) {
        eprintln!("dashboard demo: cannot record the configuration's path: {e}");
    }
    let tz = gateway_core::ledger::parse_tz(&cfg.timezone).unwrap_or(chrono_tz::Asia::Shanghai);
    let look: String = gateway::cli::look_commands(&data_dir, tz, unix_now_ms())
        .iter()
        .map(|c| format!("    {c}\n"))
        .collect();
    println!(
        "\n  BMS dashboard demo\n\n  wall page:      http://{listen}/\n  tickets, login: http://{listen}/tickets   user {DEMO_USER:?}, password {DEMO_PASSWORD:?}\n  MQTT broker:    {broker_url} (topics bms/{site}/{gw}/…)\n  simulator:      http://{ctl}/faults (inject faults, docs/simulator.md)\n  data:           {dd}{temp_note}\n  its gateway's ledger and tickets:\n{look}\n  Within two minutes pump-2 trips, then the fire panel reports a fault and recovers.\n  Ctrl-C stops.\n",
        site = cfg.site,
        gw = cfg.gateway,
        ctl = sim.control_addr(),
        dd = data_dir.display(),
        temp_note = if a.data_dir.is_none() {
            " (temporary, removed at exit)"
        } else {
            ""
        },
    );

    let s = stop.clone();
    let limit = a.seconds.map(Duration::from_secs);
    tokio::spawn(async move {
        gateway::logging::shutdown_signal_or(signals, limit).await;
        s.cancel();
    });
    let web = http::serve(listener, shared, stop.clone());
    let gw = run_gateway(
        &cfg,
        RunOptions::default(),
        Some(core),
        |_| true,
        stop.clone(),
    );
    let (web, _) = tokio::join!(web, gw);
    publisher_stop.cancel();
    if let Some(task) = publisher {
        let _ = tokio::time::timeout(Duration::from_secs(5), task).await;
    }
    sim.shutdown().await;
    web.map_err(|e| (EXIT_UNAVAILABLE, format!("the web server stopped: {e}")))
}

fn write_private(path: &Path, text: &str) -> Result<(), (u8, String)> {
    use std::io::Write as _;
    let mut o = std::fs::OpenOptions::new();
    o.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt as _;
        o.mode(0o600);
    }
    o.open(path)
        .and_then(|mut f| f.write_all(text.as_bytes()))
        .map_err(|e| {
            (
                EXIT_UNAVAILABLE,
                format!("cannot write {}: {e}", path.display()),
            )
        })
}
