//! Ticket actions sent to the owning gateway as signed commands
//! (`docs/commands.md`), confirmed by its `cmd/reply`.

use std::time::Duration;

use serde_json::json;

use crate::mqtt::QoS;
use crate::state::{Shared, now_ms};

/// How long to wait for the gateway's reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a command did not go through.
#[derive(Debug)]
pub enum CommandError {
    /// No command secret configured for this gateway.
    NoSecret,
    /// Not connected / the client refused the publish.
    Broker(String),
    /// No reply in time.
    Timeout,
    /// The gateway refused it: `reason: detail`.
    Refused(String),
}

/// Sends `op` (`ack`, `resolve`, `close`) for ticket `n` of `site/gateway`
/// on behalf of `by`; returns the gateway's `result` text.
pub async fn ticket_op(
    shared: &Shared,
    site: &str,
    gateway: &str,
    op: &str,
    n: u64,
    by: &str,
    note: &str,
) -> Result<String, CommandError> {
    let secret = shared
        .settings
        .secret_for(site, gateway)
        .ok_or(CommandError::NoSecret)?
        .to_owned();
    let id = crate::auth::token();
    let body = json!({"op": op, "id": id, "ts": now_ms(), "by": by, "ticket": n, "note": note})
        .to_string();
    let payload = gateway::cmdin::sign(&secret, &body);
    let topic = format!(
        "{}/{site}/{gateway}/cmd/{op}",
        shared.settings.file.mqtt.prefix
    );
    let client = shared
        .client
        .lock()
        .ok()
        .and_then(|c| c.clone())
        .ok_or_else(|| CommandError::Broker("not started".to_owned()))?;
    let (tx, rx) = tokio::sync::oneshot::channel();
    if let Ok(mut p) = shared.pending.lock() {
        p.insert(id.clone(), tx);
    }
    let forget = || {
        if let Ok(mut p) = shared.pending.lock() {
            p.remove(&id);
        }
    };
    if let Err(e) = client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
    {
        forget();
        return Err(CommandError::Broker(e.to_string()));
    }
    match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
        Ok(Ok(r)) if r.ok => Ok(r.text),
        Ok(Ok(r)) => Err(CommandError::Refused(r.text)),
        _ => {
            forget();
            Err(CommandError::Timeout)
        }
    }
}
