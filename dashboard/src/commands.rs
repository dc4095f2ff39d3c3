//! Ticket actions sent to the owning gateway as signed commands
//! (`docs/commands.md`), confirmed by its signed `cmd/reply`.
//!
//! Whoever may publish on the broker may publish on `…/cmd/reply`, and
//! whoever may read sees every command's id: a reply is therefore believed
//! only when it arrives on the reply topic of the gateway the waiting
//! command went to, its signature verifies under that gateway's secret, and
//! its signed `site`, `gateway`, `id` and `op` are those of the topic and of
//! the waiting command ([`on_reply`]). Anything else is counted by reason
//! ([`ReplyRefusal`]) and logged at most every [`LOG_EVERY`]; the command
//! keeps waiting for the real reply.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use serde_json::json;
use tokio::sync::oneshot;
use tracing::{debug, warn};

use crate::config::Settings;
use crate::mqtt::QoS;
use crate::state::{Shared, now_ms};

/// How long to wait for the gateway's reply.
pub const REPLY_TIMEOUT: Duration = Duration::from_secs(10);

/// At most one warning about refused replies per this interval.
pub const LOG_EVERY: Duration = Duration::from_secs(10);

/// Why a command did not go through.
#[derive(Debug)]
pub enum CommandError {
    /// No command secret configured for this gateway.
    NoSecret,
    /// Not connected / the client refused the publish.
    Broker(String),
    /// No reply in time.
    Timeout,
    /// The gateway refused it.
    Refused {
        /// `refused` (the ticket book or the store said no) or why the
        /// command was rejected unapplied (`stale`, `bad_signature`…).
        reason: String,
        /// The gateway's explanation, in English.
        detail: String,
    },
}

/// A believed reply, for the command waiting for it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Reply {
    /// Applied (`true`) or refused by the gateway.
    pub ok: bool,
    /// `result` when ok, else `reason: detail`.
    pub text: String,
    /// When refused: the reason alone; empty when ok.
    pub reason: String,
    /// When refused: the detail alone; empty when ok.
    pub detail: String,
}

/// Why a `…/cmd/reply` message was not believed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyRefusal {
    /// Not a signed reply payload (not JSON, no body, fields missing).
    Malformed,
    /// No signature.
    Unsigned,
    /// The signature does not hold under the secret of the topic's gateway.
    BadSignature,
    /// No secret is configured for the topic's gateway: nothing can be
    /// checked, and no command of this dashboard went there.
    NoSecret,
    /// Well signed, but the command with that id went to another gateway
    /// (e.g. the refusal of a command replayed on another gateway's topic).
    WrongTopic,
    /// Well signed, but the signed site/gateway are not the topic's, or the
    /// signed op is not the waiting command's.
    WrongBinding,
    /// Well signed, but no command of this dashboard waits for that id (a
    /// late reply, a resend, another sender's command).
    Unmatched,
}

impl ReplyRefusal {
    /// The name counted in `/api/health` (`counters.replies_refused`).
    pub const fn as_str(self) -> &'static str {
        match self {
            ReplyRefusal::Malformed => "malformed",
            ReplyRefusal::Unsigned => "unsigned",
            ReplyRefusal::BadSignature => "bad_signature",
            ReplyRefusal::NoSecret => "no_secret",
            ReplyRefusal::WrongTopic => "wrong_topic",
            ReplyRefusal::WrongBinding => "wrong_binding",
            ReplyRefusal::Unmatched => "unmatched",
        }
    }

    /// Whether the reply was signed by the gateway of its topic (its `seq`
    /// may then be trusted, though no command takes it).
    pub const fn authentic(self) -> bool {
        matches!(self, ReplyRefusal::Unmatched | ReplyRefusal::WrongTopic)
    }
}

/// One command waiting for its reply.
#[derive(Debug)]
struct Waiter {
    site: String,
    gateway: String,
    op: String,
    tx: oneshot::Sender<Reply>,
}

/// The commands waiting for their reply, by command id, and the log limit
/// of refused replies.
#[derive(Debug, Default)]
pub struct Pending {
    waiting: Mutex<HashMap<String, Waiter>>,
    /// When the last warning was written, and how many refusals since.
    log: Mutex<(Option<Instant>, u64)>,
}

impl Pending {
    /// Registers command `id`, sent as `op` to `site/gateway`; the receiver
    /// gets its believed reply.
    pub fn wait(&self, id: &str, site: &str, gateway: &str, op: &str) -> oneshot::Receiver<Reply> {
        let (tx, rx) = oneshot::channel();
        if let Ok(mut w) = self.waiting.lock() {
            w.insert(
                id.to_owned(),
                Waiter {
                    site: site.to_owned(),
                    gateway: gateway.to_owned(),
                    op: op.to_owned(),
                    tx,
                },
            );
        }
        rx
    }

    /// Stops waiting for command `id`.
    pub fn forget(&self, id: &str) {
        if let Ok(mut w) = self.waiting.lock() {
            w.remove(id);
        }
    }

    /// How many commands wait.
    pub fn len(&self) -> usize {
        self.waiting.lock().map(|w| w.len()).unwrap_or(0)
    }

    /// Whether no command waits.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Logs a refused reply, at most once per [`LOG_EVERY`] (with the
    /// number of refusals since the last line); `unmatched` only at debug.
    pub fn log_refused(&self, why: ReplyRefusal, site: &str, gateway: &str, now: Instant) {
        if why == ReplyRefusal::Unmatched {
            debug!(%site, %gateway, "a signed command reply that no command here waits for");
            return;
        }
        let Ok(mut l) = self.log.lock() else { return };
        l.1 += 1;
        if l.0.is_some_and(|t| now.duration_since(t) < LOG_EVERY) {
            return;
        }
        warn!(
            %site,
            %gateway,
            reason = why.as_str(),
            refused = l.1,
            "command reply refused (counted in /api/health); the command waits for the gateway's signed reply"
        );
        *l = (Some(now), 0);
    }
}

/// `(site, gateway)` of a reply topic `{prefix}/{site}/{gateway}/cmd/reply`.
pub fn reply_topic<'a>(prefix: &str, topic: &'a str) -> Option<(&'a str, &'a str)> {
    let rest = topic.strip_prefix(prefix)?.strip_prefix('/')?;
    match rest.split('/').collect::<Vec<_>>()[..] {
        [site, gateway, "cmd", "reply"] => Some((site, gateway)),
        _ => None,
    }
}

/// Checks one message from `{prefix}/{site}/{gateway}/cmd/reply` (the
/// topic's `site` and `gateway`) and hands it to the command waiting for
/// it when it is believed (see the module documentation).
pub fn on_reply(
    settings: &Settings,
    pending: &Pending,
    site: &str,
    gateway: &str,
    payload: &[u8],
) -> Result<(), ReplyRefusal> {
    use gateway::cmdin::ReplyError;
    let secret = settings
        .secret_for(site, gateway)
        .ok_or(ReplyRefusal::NoSecret)?;
    let r = gateway::cmdin::open_reply(secret, payload).map_err(|e| match e {
        ReplyError::Malformed(_) => ReplyRefusal::Malformed,
        ReplyError::Unsigned => ReplyRefusal::Unsigned,
        ReplyError::BadSignature => ReplyRefusal::BadSignature,
    })?;
    if r.site != site || r.gateway != gateway {
        return Err(ReplyRefusal::WrongBinding);
    }
    let id = r.id.ok_or(ReplyRefusal::Unmatched)?;
    let mut waiting = pending
        .waiting
        .lock()
        .map_err(|_| ReplyRefusal::Unmatched)?;
    match waiting.get(&id) {
        None => return Err(ReplyRefusal::Unmatched),
        Some(w) if w.site != site || w.gateway != gateway => {
            return Err(ReplyRefusal::WrongTopic);
        }
        Some(w) if w.op != r.op => return Err(ReplyRefusal::WrongBinding),
        Some(_) => {}
    }
    if let Some(w) = waiting.remove(&id) {
        // The page may have given up meanwhile: nothing to do then.
        let _ = w.tx.send(Reply {
            ok: r.ok,
            text: r.text,
            reason: r.reason,
            detail: r.detail,
        });
    }
    Ok(())
}

/// The ticket ops a person may send from the pages, in the order the pages
/// show them (`docs/commands.md`).
pub const TICKET_OPS: [&str; 4] = ["arrive", "ack", "resolve", "close"];

/// Sends `op` (one of [`TICKET_OPS`]) for ticket `n` of `site/gateway`
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
    let body = json!({
        "op": op, "id": id, "ts": now_ms(), "by": by,
        "site": site, "gateway": gateway,
        "ticket": n, "note": note,
    })
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
    let rx = shared.pending.wait(&id, site, gateway, op);
    if let Err(e) = client
        .publish(topic, QoS::AtLeastOnce, false, payload)
        .await
    {
        shared.pending.forget(&id);
        return Err(CommandError::Broker(e.to_string()));
    }
    match tokio::time::timeout(REPLY_TIMEOUT, rx).await {
        Ok(Ok(r)) if r.ok => Ok(r.text),
        Ok(Ok(r)) => Err(CommandError::Refused {
            reason: r.reason,
            detail: r.detail,
        }),
        _ => {
            shared.pending.forget(&id);
            Err(CommandError::Timeout)
        }
    }
}

#[cfg(test)]
mod tests;
