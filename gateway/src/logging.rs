//! Logging set-up: human-readable text or JSON lines on stderr, or
//! journald's native protocol (`--log-format`), and the shutdown signals.

use tracing_subscriber::EnvFilter;
use tracing_subscriber::prelude::*;

/// Where and how log records go (`--log-format`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// journald's native protocol when stderr is connected to the journal
    /// (a systemd service: `JOURNAL_STREAM` names stderr), text otherwise.
    #[default]
    Auto,
    /// Human-readable lines on stderr.
    Text,
    /// One JSON object per line on stderr, every field flattened.
    Json,
    /// journald's native protocol: each field is a journal field
    /// (`BMS_DEVICE=pump-1`), the level is `PRIORITY`.
    Journald,
}

/// Prefix of our own fields in the journal: `device` becomes `BMS_DEVICE`.
pub const JOURNAL_FIELD_PREFIX: &str = "BMS";

/// Installs the global subscriber. `RUST_LOG` wins over `filter` when set.
/// `identifier` is the journal's `SYSLOG_IDENTIFIER` (`bms-gateway`).
pub fn init(filter: &str, format: LogFormat, identifier: &str) {
    let filter = EnvFilter::try_from_default_env()
        .or_else(|_| EnvFilter::try_new(filter))
        .unwrap_or_else(|_| EnvFilter::new("info"));
    let journald = match format {
        LogFormat::Journald => Some(true),
        LogFormat::Auto if stderr_is_journal() => Some(false),
        _ => None,
    };
    let mut fallback = None;
    if let Some(asked) = journald {
        match journald_layer(identifier) {
            Ok(layer) => {
                // A second call (tests) is harmless: the first subscriber stays.
                let _ = tracing_subscriber::registry()
                    .with(filter)
                    .with(layer)
                    .try_init();
                return;
            }
            // Asked for by name: say why it is not there. Detected: stderr
            // goes to the journal anyway, as text.
            Err(e) if asked => fallback = Some(e),
            Err(_) => {}
        }
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let _ = if format == LogFormat::Json {
        builder.json().flatten_event(true).try_init()
    } else {
        builder.compact().try_init()
    };
    if let Some(e) = fallback {
        tracing::warn!(
            error = %e,
            "cannot reach journald at /run/systemd/journal/socket; logging text on stderr instead"
        );
    }
}

#[cfg(unix)]
fn journald_layer(identifier: &str) -> std::io::Result<tracing_journald::Layer> {
    Ok(tracing_journald::layer()?
        .with_syslog_identifier(identifier.to_owned())
        .with_field_prefix(Some(JOURNAL_FIELD_PREFIX.to_owned())))
}

#[cfg(not(unix))]
fn journald_layer(_identifier: &str) -> std::io::Result<tracing_subscriber::layer::Identity> {
    Err(std::io::Error::from(std::io::ErrorKind::Unsupported))
}

/// True when stderr is the journal stream systemd set up for this service:
/// `JOURNAL_STREAM` is `<device>:<inode>` of that stream (systemd.exec(5)).
/// A child whose stderr was redirected elsewhere no longer matches.
fn stderr_is_journal() -> bool {
    #[cfg(unix)]
    {
        use std::os::fd::AsFd as _;
        use std::os::unix::fs::MetadataExt as _;
        let Ok(stream) = std::env::var("JOURNAL_STREAM") else {
            return false;
        };
        let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() else {
            return false;
        };
        let Ok(meta) = std::fs::File::from(fd).metadata() else {
            return false;
        };
        journal_stream_matches(&stream, meta.dev(), meta.ino())
    }
    #[cfg(not(unix))]
    {
        false
    }
}

/// `JOURNAL_STREAM`'s `<device>:<inode>` (decimal) against a stat.
fn journal_stream_matches(value: &str, dev: u64, ino: u64) -> bool {
    let Some((d, i)) = value.trim().split_once(':') else {
        return false;
    };
    d.parse() == Ok(dev) && i.parse() == Ok(ino)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_is_device_colon_inode_and_must_match_both() {
        assert!(journal_stream_matches("8:4711", 8, 4711));
        assert!(journal_stream_matches(" 8:4711\n", 8, 4711));
        assert!(!journal_stream_matches("8:4712", 8, 4711));
        assert!(!journal_stream_matches("9:4711", 8, 4711));
        assert!(!journal_stream_matches("8", 8, 4711));
        assert!(!journal_stream_matches("", 8, 4711));
        assert!(!journal_stream_matches("x:y", 8, 4711));
    }
}
