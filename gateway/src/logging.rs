//! Logging set-up: human-readable text on stderr, or JSON lines with `--log-json`.

use tracing_subscriber::EnvFilter;

/// Installs the global subscriber. `RUST_LOG` wins over `filter` when set.
pub fn init(filter: &str, json: bool) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    // A second call (tests) is harmless: the first subscriber stays.
    let _ = if json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.compact().try_init()
    };
}

/// SIGINT and SIGTERM handlers, registered when this is made.
///
/// Make it before anything that tells the outside world the process is up
/// (a log line, a listening socket, `READY=1`): until the handlers are
/// registered, a signal takes its default action and kills the process
/// without the orderly stop.
#[derive(Debug)]
pub struct ShutdownSignals {
    #[cfg(unix)]
    int: Option<tokio::signal::unix::Signal>,
    #[cfg(unix)]
    term: Option<tokio::signal::unix::Signal>,
}

impl ShutdownSignals {
    /// Registers the handlers now. Needs a running tokio runtime.
    pub fn install() -> Self {
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let int = signal(SignalKind::interrupt())
                .map_err(|e| tracing::warn!(error = %e, "cannot listen for SIGINT"))
                .ok();
            let term = signal(SignalKind::terminate())
                .map_err(|e| tracing::warn!(error = %e, "cannot listen for SIGTERM"))
                .ok();
            Self { int, term }
        }
        #[cfg(not(unix))]
        {
            Self {}
        }
    }

    /// Waits for the first SIGINT or SIGTERM.
    pub async fn recv(self) {
        #[cfg(unix)]
        {
            async fn next(s: Option<tokio::signal::unix::Signal>) {
                match s {
                    Some(mut s) => {
                        s.recv().await;
                    }
                    None => std::future::pending().await,
                }
            }
            tokio::select! {
                _ = next(self.int) => {}
                _ = next(self.term) => {}
            }
        }
        #[cfg(not(unix))]
        {
            let _ = tokio::signal::ctrl_c().await;
        }
    }
}

/// Waits for SIGINT/SIGTERM or, when `limit` is given, for that long
/// (the demos' `--seconds`), whichever comes first.
pub async fn shutdown_signal_or(signals: ShutdownSignals, limit: Option<std::time::Duration>) {
    match limit {
        Some(d) => {
            tokio::select! {
                _ = signals.recv() => {}
                _ = tokio::time::sleep(d) => {}
            }
        }
        None => signals.recv().await,
    }
}
