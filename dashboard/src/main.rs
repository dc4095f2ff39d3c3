//! The `dashboard` binary: `serve`, `demo`, `hash-password`.

use std::io::BufRead as _;
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use tokio_util::sync::CancellationToken;

/// BMS dashboard: the engineering-room wall page, tickets, and the demo.
#[derive(Debug, Parser)]
#[command(name = "dashboard", version, long_version = gateway::buildinfo::LONG_VERSION, about, long_about = None)]
struct Cli {
    /// Log filter (tracing EnvFilter syntax). Also `RUST_LOG`.
    #[arg(
        long,
        global = true,
        env = "DASHBOARD_LOG",
        default_value = "info,rumqttd=warn,rumqttc=warn"
    )]
    log: String,
    /// Log format: `auto` is journald's native protocol under systemd,
    /// text otherwise; `json` is one object per line on stderr.
    #[arg(
        long,
        global = true,
        env = "DASHBOARD_LOG_FORMAT",
        value_enum,
        default_value_t
    )]
    log_format: gateway::logging::LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the pages and API, reading the gateways from MQTT.
    Serve {
        /// The configuration file (docs/dashboard.md).
        #[arg(long, short)]
        config: PathBuf,
        /// Listen here instead of `[http] listen`.
        #[arg(long, value_name = "ADDR")]
        listen: Option<String>,
    },
    /// The whole system in one process: embedded broker, simulated building,
    /// gateway and dashboard.
    Demo(dashboard::demo::DemoArgs),
    /// Play many gateways publishing synthetic messages, and measure the
    /// latency to the dashboard's event stream (docs/performance.md).
    Load(dashboard::load::LoadArgs),
    /// Print the argon2 hash of a password read from standard input, for `[[user]] password_hash`.
    HashPassword,
}

#[tokio::main]
async fn main() -> ExitCode {
    let cli = Cli::parse();
    gateway::logging::init(&cli.log, cli.log_format, "bms-dashboard");
    let _ = rustls::crypto::ring::default_provider().install_default();
    let code = match cli.command {
        Command::Serve { config, listen } => serve(config, listen).await,
        Command::Demo(a) => dashboard::demo::run(a).await,
        Command::Load(a) => dashboard::load::run(a).await,
        Command::HashPassword => hash_password(),
    };
    ExitCode::from(code)
}

async fn serve(config: PathBuf, listen: Option<String>) -> u8 {
    // Before anything says "up": an early SIGINT must stop us in order.
    let signals = gateway::logging::ShutdownSignals::install();
    let mut settings = match dashboard::config::load(&config) {
        Ok(s) => s,
        Err(errors) => {
            eprintln!(
                "dashboard: {} has {} problem(s):",
                config.display(),
                errors.len()
            );
            for e in errors {
                eprintln!("  - {e}");
            }
            return dashboard::EXIT_CONFIG;
        }
    };
    if let Some(l) = listen {
        match l.parse() {
            Ok(a) => settings.listen = a,
            Err(e) => {
                eprintln!("dashboard: --listen {l:?}: {e}; write an address like 127.0.0.1:8080");
                return dashboard::EXIT_CONFIG;
            }
        }
    }
    let stop = CancellationToken::new();
    let s = stop.clone();
    tokio::spawn(async move {
        signals.recv().await;
        s.cancel();
    });
    match dashboard::serve(settings, stop).await {
        Ok(()) => 0,
        Err((code, e)) => {
            eprintln!("dashboard: {e}");
            code
        }
    }
}

fn hash_password() -> u8 {
    eprintln!("password (one line on standard input):");
    let mut line = String::new();
    if std::io::stdin().lock().read_line(&mut line).is_err() {
        eprintln!("dashboard: cannot read standard input");
        return dashboard::EXIT_CONFIG;
    }
    let pw = line.trim_end_matches(['\n', '\r']);
    if pw.is_empty() {
        eprintln!("dashboard: the password is empty");
        return dashboard::EXIT_CONFIG;
    }
    match dashboard::auth::hash_password(pw) {
        Ok(h) => {
            println!("{h}");
            0
        }
        Err(e) => {
            eprintln!("dashboard: {e}");
            1
        }
    }
}
