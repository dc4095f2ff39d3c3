//! The BMS dashboard: consumes what any number of gateways publish on MQTT
//! (`docs/mqtt.md`), keeps the live picture, and serves the wall page, the
//! ticket pages and a JSON API (`docs/api.md`, `docs/dashboard.md`).
//!
//! - [`config`]: the configuration file.
//! - [`model`]: the live picture built from MQTT messages.
//! - [`mqtt`]: the subscriber; [`broker`]: the embedded broker.
//! - [`http`]: pages, API, server-sent events; [`auth`]: logins;
//!   [`kiosk`]: the wall screens' token; [`listener`]: connections, their
//!   timeouts and cap; [`headers`]: security headers; [`snapcache`]: the
//!   shared snapshot views.
//! - [`commands`]: ticket actions as signed commands to the gateways.
//! - [`history`]: telemetry and state history in SQLite for the charts.
//! - [`demo`]: `dashboard demo`, the whole system in one process.
//! - [`load`]: `dashboard load`, synthetic gateways for performance figures.

pub mod auth;
pub mod broker;
pub mod commands;
pub mod config;
pub mod demo;
pub mod headers;
pub mod history;
pub mod http;
pub mod kiosk;
// central ledger and monthly reports (issue 7)
pub mod ledger;
pub mod reports;
// end issue 7
pub mod listener;
pub mod load;
pub mod model;
pub mod mqtt;
pub mod snapcache;
pub mod state;

use std::sync::Arc;

use tokio_util::sync::CancellationToken;

pub use state::Shared;

/// Exit code for a configuration or usage error.
pub const EXIT_CONFIG: u8 = 64;
/// Exit code when an address is taken or a peer cannot be used.
pub const EXIT_UNAVAILABLE: u8 = 69;

/// Runs the dashboard service (`dashboard serve`) until `stop`: the
/// embedded broker when configured, the subscriber and the web server.
/// Errors (busy port, bad broker URL) carry the exit code and the message.
pub async fn serve(
    settings: config::Settings,
    stop: CancellationToken,
) -> Result<(), (u8, String)> {
    if let Some(addr) = settings.embedded {
        broker::start(addr).map_err(|e| (EXIT_UNAVAILABLE, e))?;
        tracing::info!(%addr, "embedded MQTT broker listening");
    }
    let listener = http::bind(settings.listen)
        .await
        .map_err(|e| (EXIT_UNAVAILABLE, e))?;
    if let Err(e) = std::fs::create_dir_all(&settings.data_dir) {
        return Err((
            EXIT_UNAVAILABLE,
            format!(
                "cannot create the data folder {}: {e}",
                settings.data_dir.display()
            ),
        ));
    }
    let shared = Arc::new(Shared::open(settings).map_err(|e| (EXIT_UNAVAILABLE, e))?);
    let client = mqtt::start(shared.clone(), stop.clone()).map_err(|e| (EXIT_CONFIG, e))?;
    if let Ok(mut c) = shared.client.lock() {
        *c = Some(client);
    }
    crate::state::spawn_intact_refresh(shared.clone(), stop.clone());
    tracing::info!(
        listen = %shared.settings.listen,
        broker = %shared.settings.broker_url,
        "dashboard serving"
    );
    http::serve(listener, shared, stop)
        .await
        .map_err(|e| (EXIT_UNAVAILABLE, format!("the web server stopped: {e}")))
}
