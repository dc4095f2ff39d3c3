//! Commands over MQTT, end to end: the publisher hands each message on
//! `…/cmd/{op}` here; it is verified ([`crate::cmdin`]: signature, age,
//! nonce), queued in the store's command queue like a CLI command, and the
//! engine's answer (within its next tick) becomes the reply on
//! `…/cmd/reply`, which goes through the outbox like everything else.
//! Rejected commands are logged and answered with the reason; nothing is
//! queued for them.
//!
//! A `write` is not queued: it is checked against the configuration in
//! force ([`Router::check`]: writes on, device, point, writable, allowed,
//! range, representable), given to the device's bus task, which writes it
//! between two polls and reads it back, and recorded in the audit table
//! (`store::WriteRow`) whatever became of it; the reply carries the
//! result.

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
use crate::south::writes::Router;
use crate::store::{Command, Store, WriteRow, WriteValue};
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
    writes: Arc<Router>,
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
        let reply = handle(&verifier, &mut store, &cmd, &stats, &writes).await;
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
    writes: &Router,
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
    if let Command::Write {
        device,
        point,
        value,
        by,
    } = &v.command
    {
        return write(
            verifier, store, stats, writes, &v.id, by, device, point, *value,
        )
        .await;
    }
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

/// A verified `write` → its signed reply, with its audit row recorded.
#[allow(clippy::too_many_arguments)]
async fn write(
    verifier: &Verifier,
    store: &mut Store,
    stats: &MqttStats,
    router: &Router,
    id: &str,
    by: &str,
    device: &str,
    point: &str,
    value: WriteValue,
) -> Body {
    use gateway_core::write::{Outcome as W, show};
    let requested = value.to_value();
    let mut row = WriteRow {
        id: 0,
        ts_ms: 0,
        by: by.to_owned(),
        command_id: id.to_owned(),
        device: device.to_owned(),
        point: point.to_owned(),
        requested: value.to_json(),
        old: None,
        new: None,
        read_back: None,
        result: "refused".to_owned(),
        detail: String::new(),
    };
    let mut obj = serde_json::Map::new();
    obj.insert("device".into(), device.into());
    obj.insert("point".into(), point.into());
    obj.insert("value".into(), value.to_json());
    let checked = router.check(device, point, &requested);
    let outcome = match checked {
        Err(refused) => Err(refused),
        Ok(ready) => router.write(&ready).await.map(|r| (ready, r)),
    };
    let (ok, text) = match outcome {
        Err(refused) => {
            if let Some(n) = stats.writes_refused.get(refused.refusal.index()) {
                n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            warn!(
                id, by, device, point, value = %show(&requested),
                refusal = refused.refusal.as_str(), detail = %refused.detail,
                "write refused"
            );
            obj.insert("result".into(), "refused".into());
            obj.insert("refusal".into(), refused.refusal.as_str().into());
            row.detail = format!("{}: {}", refused.refusal, refused.detail);
            (false, row.detail.clone())
        }
        Ok((ready, report)) => {
            let json =
                |v: &Option<gateway_core::model::Value>| v.as_ref().map(crate::wire::value_json);
            row.old = json(&report.old);
            row.new = Some(crate::wire::value_json(ready.value()));
            row.read_back = json(&report.read_back);
            row.result = report.outcome.as_str().to_owned();
            row.detail.clone_from(&report.detail);
            if let Some(n) = stats.write_results.get(report.outcome as usize) {
                n.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            }
            obj.insert("result".into(), report.outcome.as_str().into());
            for (k, v) in [
                ("old", &row.old),
                ("new", &row.new),
                ("read_back", &row.read_back),
            ] {
                obj.insert(k.into(), v.clone().unwrap_or(serde_json::Value::Null));
            }
            let shown =
                |v: &Option<gateway_core::model::Value>| v.as_ref().map_or("?".to_owned(), show);
            let text = match report.outcome {
                W::Ok => format!(
                    "{device} {point}: {} → {} by {by}, read back {}",
                    shown(&report.old),
                    show(ready.value()),
                    shown(&report.read_back)
                ),
                other => format!("{other}: {}", report.detail),
            };
            info!(
                id,
                by,
                device,
                point,
                result = report.outcome.as_str(),
                "write finished"
            );
            (report.outcome == W::Ok, text)
        }
    };
    row.ts_ms = unix_now_ms();
    if let Err(e) = store.record_write(&row) {
        warn!(error = %e, id, device, point, "cannot record the write in the audit table");
    }
    verifier.reply(
        "write",
        Outcome::Write {
            id,
            ok,
            text: &text,
            write: &obj,
        },
        unix_now_ms(),
    )
}
