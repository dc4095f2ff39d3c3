//! `gateway run`: the daemon.

use std::io::Write as _;
use std::path::PathBuf;

use tokio_util::sync::CancellationToken;
use tracing::{error, info, warn};

use crate::engine::Engine;
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
}

/// Runs `gateway run`; returns the exit code.
pub async fn run(args: RunArgs) -> u8 {
    let cfg = match crate::files::load_config(&args.config) {
        Ok(c) => c,
        Err(errors) => {
            super::print_config_errors(&args.config, &errors);
            return super::EXIT_CONFIG;
        }
    };
    // The engine (health, ledger, tickets) runs unless this is a one-shot read.
    let engine = if args.once {
        None
    } else {
        let data_dir = data_dir_of(&args.config, &cfg.data_dir);
        match Engine::open(&cfg, &data_dir, unix_now_ms()) {
            Ok(e) => Some(e),
            Err(e) => {
                error!(error = %e, "cannot start the engine");
                eprintln!("gateway run: {e}");
                return super::EXIT_UNAVAILABLE;
            }
        }
    };
    let shutdown = CancellationToken::new();
    let stop = shutdown.clone();
    tokio::spawn(async move {
        crate::logging::shutdown_signal().await;
        info!("stopping: signal received");
        stop.cancel();
    });
    let opts = RunOptions {
        once: args.once,
        ..RunOptions::default()
    };
    let stdout = std::io::stdout();
    let mut out = std::io::BufWriter::with_capacity(64 * 1024, stdout.lock());
    let to_stdout = args.stdout || args.once;
    let summary = run_loop(
        &cfg,
        opts,
        engine.map(Core::new),
        |ev| {
            if !to_stdout {
                return true;
            }
            let line = match ev {
                Event::Poll(o) => outcome_json_line(&cfg, o),
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
        },
        shutdown,
    )
    .await;
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
