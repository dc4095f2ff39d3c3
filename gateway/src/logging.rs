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

/// Waits for Ctrl-C or SIGTERM.
pub async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

/// Waits for SIGINT/SIGTERM or, when `limit` is given, for that long
/// (the demos' `--seconds`), whichever comes first.
pub async fn shutdown_signal_or(limit: Option<std::time::Duration>) {
    match limit {
        Some(d) => {
            tokio::select! {
                _ = shutdown_signal() => {}
                _ = tokio::time::sleep(d) => {}
            }
        }
        None => shutdown_signal().await,
    }
}
