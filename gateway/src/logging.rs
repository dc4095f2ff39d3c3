//! Logging set-up: human-readable text or JSON lines on stderr, or
//! journald's native protocol (`--log-format`), and the shutdown signals.
//!
//! The embedded MQTT broker (rumqttd, `dashboard demo` and `dashboard
//! serve` with `[mqtt] embedded_listen`) logs two ERROR records on every
//! ordinary client disconnect, which are dropped here ([`BrokerNoise`]):
//! `no-connection id N is already gone` (the router sees a client's
//! DISCONNECT packet and then its closed socket, and reports the second as
//! an error; rumqttd's own source says clients lead to this double
//! disconnect) and `router-drop` with `Recv(Disconnected)` (the link finds
//! its channel closed by the router that just removed that client). Every
//! other record of the broker, errors included, is logged as before.

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
                    .with(BrokerNoise)
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
    use std::io::IsTerminal as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_ansi(std::io::stderr().is_terminal())
        .with_writer(std::io::stderr);
    let _ = if format == LogFormat::Json {
        builder
            .json()
            .flatten_event(true)
            .finish()
            .with(BrokerNoise)
            .try_init()
    } else {
        builder.compact().finish().with(BrokerNoise).try_init()
    };
    if let Some(e) = fallback {
        tracing::warn!(
            error = %e,
            "cannot reach journald at /run/systemd/journal/socket; logging text on stderr instead"
        );
    }
}

/// Drops the embedded broker's two ERROR records of an ordinary client
/// disconnect (see the module doc); everything else passes.
#[derive(Clone, Copy, Debug, Default)]
pub struct BrokerNoise;

impl BrokerNoise {
    /// Whether a record of `target` at `level` with this message and
    /// `error` field is the expected disconnect noise.
    pub fn is_noise(
        target: &str,
        level: tracing::Level,
        message: &str,
        error: Option<&str>,
    ) -> bool {
        if level != tracing::Level::ERROR || !target.starts_with("rumqttd") {
            return false;
        }
        let gone = message
            .strip_prefix("no-connection id ")
            .and_then(|r| r.strip_suffix(" is already gone"))
            .is_some_and(|id| !id.is_empty() && id.bytes().all(|b| b.is_ascii_digit()));
        let dropped = message == "router-drop" && error == Some("Recv(Disconnected)");
        gone || dropped
    }
}

/// The `message` and `error` fields of an event, as text.
#[derive(Default)]
struct NoiseFields {
    message: String,
    error: Option<String>,
}

impl tracing::field::Visit for NoiseFields {
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        match field.name() {
            "message" => self.message = format!("{value:?}"),
            "error" => self.error = Some(format!("{value:?}")),
            _ => {}
        }
    }

    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        match field.name() {
            "message" => self.message = value.to_owned(),
            "error" => self.error = Some(value.to_owned()),
            _ => {}
        }
    }
}

impl<S: tracing::Subscriber> tracing_subscriber::Layer<S> for BrokerNoise {
    fn event_enabled(
        &self,
        event: &tracing::Event<'_>,
        _ctx: tracing_subscriber::layer::Context<'_, S>,
    ) -> bool {
        let meta = event.metadata();
        if *meta.level() != tracing::Level::ERROR || !meta.target().starts_with("rumqttd") {
            return true;
        }
        let mut f = NoiseFields::default();
        event.record(&mut f);
        !BrokerNoise::is_noise(meta.target(), *meta.level(), &f.message, f.error.as_deref())
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
    fn only_the_brokers_disconnect_noise_is_dropped() {
        use tracing::Level;
        let r = "rumqttd::router::routing";
        let b = "rumqttd::server::broker";
        assert!(BrokerNoise::is_noise(
            r,
            Level::ERROR,
            "no-connection id 0 is already gone",
            None
        ));
        assert!(BrokerNoise::is_noise(
            b,
            Level::ERROR,
            "router-drop",
            Some("Recv(Disconnected)")
        ));
        // Real errors of the broker still show.
        assert!(!BrokerNoise::is_noise(
            b,
            Level::ERROR,
            "router-drop",
            Some("Send(Full)")
        ));
        assert!(!BrokerNoise::is_noise(
            b,
            Level::ERROR,
            "Remote link error",
            None
        ));
        assert!(!BrokerNoise::is_noise(
            b,
            Level::ERROR,
            "connection-stop",
            None
        ));
        assert!(!BrokerNoise::is_noise(
            r,
            Level::ERROR,
            "no-connection id x is already gone",
            None
        ));
        // The same words from elsewhere, or at another level, are not touched.
        assert!(!BrokerNoise::is_noise(
            "gateway::north",
            Level::ERROR,
            "router-drop",
            Some("Recv(Disconnected)")
        ));
        assert!(!BrokerNoise::is_noise(
            r,
            Level::WARN,
            "no-connection id 0 is already gone",
            None
        ));
    }

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
