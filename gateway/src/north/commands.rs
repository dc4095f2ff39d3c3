//! Commands over MQTT, end to end: the publisher hands each message on
//! `…/cmd/{op}` here; it is verified ([`crate::cmdin`]: signature, age,
//! nonce), queued in the store's command queue like a CLI command, and the
//! engine's answer (within its next tick) becomes the reply on
//! `…/cmd/reply`, which goes through the outbox like everything else.
//! Rejected commands are logged and answered with the reason; nothing is
//! queued for them.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use gateway_core::maintenance::Target;
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use super::mqtt::{CommandIn, MqttStats};
use crate::cmdin::{Outcome, Verifier};
use crate::run::unix_now_ms;
use crate::store::{Command, Store};
use crate::wire::Body;

/// How long a reply waits for the engine to apply a command.
pub const APPLY_WAIT: Duration = Duration::from_secs(10);

/// Serves commands until `shutdown` or until the publisher goes away.
pub async fn serve(
    verifier: Verifier,
    data_dir: PathBuf,
    mut rx: mpsc::Receiver<CommandIn>,
    replies: mpsc::Sender<Body>,
    stats: Arc<MqttStats>,
    shutdown: CancellationToken,
) {
    let mut store = match Store::open_existing(&data_dir) {
        Ok(s) => s,
        Err(e) => {
            warn!(error = %e, "commands over MQTT are off: cannot open the database");
            return;
        }
    };
    loop {
        let cmd = tokio::select! {
            _ = shutdown.cancelled() => return,
            c = rx.recv() => match c { Some(c) => c, None => return },
        };
        let reply = handle(&verifier, &mut store, &cmd, &stats).await;
        if replies.send(reply).await.is_err() {
            return;
        }
    }
}

/// Whether `device` is configured: the engine writes the configured
/// devices to the database at each start and reload, so a reload that adds
/// a device is seen here at once.
fn configured(store: &Store, device: &str) -> bool {
    match store.devices() {
        Ok(ds) => ds.iter().any(|d| d.id == device),
        // The engine checks again when it applies the command.
        Err(_) => true,
    }
}

/// One command → its signed reply.
async fn handle(
    verifier: &Verifier,
    store: &mut Store,
    cmd: &CommandIn,
    stats: &MqttStats,
) -> Body {
    let now = unix_now_ms();
    let v = match verifier.verify(&cmd.op, &cmd.payload, now, store) {
        Ok(v) => v,
        Err(rej) => {
            if let Some(n) = stats.commands_rejected.get(rej.reason.index()) {
                n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            warn!(op = %cmd.op, reason = rej.reason.as_str(), detail = %rej.detail, "command rejected");
            return verifier.reply(&cmd.op, Outcome::Rejected(&rej), now);
        }
    };
    let refused = |detail: &str| {
        verifier.reply(
            &cmd.op,
            Outcome::Refused { id: &v.id, detail },
            unix_now_ms(),
        )
    };
    if let Command::AddWindow(w) = &v.command
        && let Target::Device(d) = &w.target
        && !configured(store, d)
    {
        let detail = format!("no device {d:?} is configured on this gateway");
        warn!(op = %cmd.op, id = %v.id, by = %v.by, "command refused: {detail}");
        return refused(&detail);
    }
    let queued = match store.enqueue_command(&v.command) {
        Ok(q) => q,
        Err(e) => {
            let detail = format!("the gateway cannot queue the command: {e}");
            return refused(&detail);
        }
    };
    info!(op = %cmd.op, id = %v.id, by = %v.by, queued, "command accepted");
    let deadline = tokio::time::Instant::now() + APPLY_WAIT;
    loop {
        match store.command_result(queued) {
            Ok(Some(Ok(text))) => {
                return verifier.reply(
                    &cmd.op,
                    Outcome::Done {
                        id: &v.id,
                        result: &text,
                    },
                    unix_now_ms(),
                );
            }
            Ok(Some(Err(text))) => {
                return refused(&text);
            }
            Ok(None) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Ok(None) => {
                let detail = "the gateway has not applied the command yet; it stays queued";
                return refused(detail);
            }
            Err(e) => {
                let detail = format!("cannot read the command's outcome: {e}");
                return refused(&detail);
            }
        }
    }
}
