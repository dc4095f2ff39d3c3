//! The reply published on `…/cmd/reply` for every command, signed like a
//! command, and its verification on the sender's side.
//!
//! A reply payload is `{"body": "<reply JSON, as a string>", "sig": "<hex>"}`
//! (plus the `seq` every gateway message carries, which is not signed):
//! `sig` is the HMAC-SHA256 of the body string under the same shared secret
//! as the commands. The body binds the command's `id`, the replying
//! gateway's `site` and `gateway`, the `op` and the outcome (`ok`,
//! `result` or `reason` and `detail`), so that a reply cannot be forged by
//! whoever may publish on the broker, nor moved from one gateway's topic to
//! another's.

use serde_json::{Map, Value, json};

use super::Rejection;
use super::Verifier;
use super::verify::{signature_hex, signature_matches};

/// What became of a command, for [`reply_json`].
#[derive(Clone, Copy, Debug)]
pub enum Outcome<'a> {
    /// Verified and applied by the engine.
    Done {
        /// The command's nonce.
        id: &'a str,
        /// The engine's message (`ticket #12 acknowledged by 张工`).
        result: &'a str,
    },
    /// Verified, but the engine refused it (no such ticket, wrong state,
    /// overlapping window); nothing changed. Reason `refused`.
    Refused {
        /// The command's nonce.
        id: &'a str,
        /// The engine's message.
        detail: &'a str,
    },
    /// Refused by [`Verifier::verify`].
    Rejected(&'a Rejection),
    /// A verified `write`: `ok` only when the read-back matched; otherwise
    /// reason `refused` with `detail`. `write` is the reply's `write`
    /// object (device, point, value, old, read_back, result, refusal).
    Write {
        /// The command's nonce.
        id: &'a str,
        /// The write was made and read back equal.
        ok: bool,
        /// The result (`ok`) or the detail (otherwise).
        text: &'a str,
        /// The `write` object of the reply.
        write: &'a Map<String, Value>,
    },
}

/// The body JSON of a reply from gateway `gateway` of site `site`, for the
/// command received on `…/cmd/<op>` (`op` as in the topic):
/// `{"gateway", "id", "ok": true, "op", "result", "site", "ts"}` when done,
/// `{"detail", "gateway", "id", "ok": false, "op", "reason", "site", "ts"}`
/// otherwise; `ts` = `now_ms`; `id` is `null` when the command's nonce could
/// not be read. Keys in alphabetical order. This is the text signed.
pub fn reply_json(
    site: &str,
    gateway: &str,
    op: &str,
    outcome: Outcome<'_>,
    now_ms: i64,
) -> String {
    let mut m = Map::new();
    m.insert("site".into(), json!(site));
    m.insert("gateway".into(), json!(gateway));
    m.insert("op".into(), json!(op));
    m.insert("ts".into(), json!(now_ms));
    match outcome {
        Outcome::Done { id, result } => {
            m.insert("id".into(), json!(id));
            m.insert("ok".into(), json!(true));
            m.insert("result".into(), json!(result));
        }
        Outcome::Refused { id, detail } => {
            m.insert("id".into(), json!(id));
            m.insert("ok".into(), json!(false));
            m.insert("reason".into(), json!("refused"));
            m.insert("detail".into(), json!(detail));
        }
        Outcome::Write {
            id,
            ok,
            text,
            write,
        } => {
            m.insert("id".into(), json!(id));
            m.insert("ok".into(), json!(ok));
            if ok {
                m.insert("result".into(), json!(text));
            } else {
                m.insert("reason".into(), json!("refused"));
                m.insert("detail".into(), json!(text));
            }
            m.insert("write".into(), Value::Object(write.clone()));
        }
        Outcome::Rejected(r) => {
            m.insert("id".into(), json!(r.id));
            m.insert("ok".into(), json!(false));
            m.insert("reason".into(), json!(r.reason.as_str()));
            m.insert("detail".into(), json!(r.detail));
        }
    }
    Value::Object(m).to_string()
}

impl Verifier {
    /// The signed reply to a command received on `…/cmd/<op>`, as the
    /// outbox takes it: `{"body": <reply_json text>, "sig": <hex>}` (the
    /// outbox adds `seq`).
    pub fn reply(&self, op: &str, outcome: Outcome<'_>, now_ms: i64) -> Map<String, Value> {
        let body = reply_json(&self.site, &self.gateway, op, outcome, now_ms);
        let mut m = Map::new();
        m.insert(
            "sig".into(),
            json!(signature_hex(self.secret.expose(), &body)),
        );
        m.insert("body".into(), Value::String(body));
        m
    }
}

/// A reply whose signature verified under the secret given to
/// [`open_reply`]; every field comes from the signed body.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SignedReply {
    /// The site of the gateway that signed it.
    pub site: String,
    /// The gateway that signed it.
    pub gateway: String,
    /// The command's nonce (`None` when the command had none readable).
    pub id: Option<String>,
    /// The op of the command (its topic suffix).
    pub op: String,
    /// Applied (`true`) or refused.
    pub ok: bool,
    /// `result` when ok, else `reason: detail`.
    pub text: String,
    /// When refused: the reason alone (`refused` for the engine's refusal,
    /// else a [`RejectReason`](super::RejectReason) name); empty when ok.
    pub reason: String,
    /// When refused: the detail alone; empty when ok.
    pub detail: String,
}

/// Why a reply is not believed (see [`open_reply`]).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ReplyError {
    /// Not `{"body": "<JSON object>", "sig": …}` with the reply fields.
    #[error("malformed reply: {0}")]
    Malformed(&'static str),
    /// No `sig`, or an empty one.
    #[error("the reply is not signed")]
    Unsigned,
    /// The signature does not match the body under the gateway's secret.
    #[error("the reply's signature does not match its body under the gateway's secret")]
    BadSignature,
}

impl ReplyError {
    /// A short name for counters and logs (`bad_signature`).
    pub const fn as_str(&self) -> &'static str {
        match self {
            ReplyError::Malformed(_) => "malformed",
            ReplyError::Unsigned => "unsigned",
            ReplyError::BadSignature => "bad_signature",
        }
    }
}

/// Checks a `…/cmd/reply` payload against the replying gateway's `secret`
/// and reads its signed body. It does not decide whether the reply belongs
/// to a command: the caller compares `site`, `gateway`, `id` and `op` with
/// the command it sent and with the topic the reply came on.
pub fn open_reply(secret: &str, payload: &[u8]) -> Result<SignedReply, ReplyError> {
    let Ok(Value::Object(env)) = serde_json::from_slice::<Value>(payload) else {
        return Err(ReplyError::Malformed("not a JSON object"));
    };
    if env
        .keys()
        .any(|k| !matches!(k.as_str(), "body" | "sig" | "seq"))
    {
        return Err(ReplyError::Malformed("a field beside body, sig and seq"));
    }
    let Some(Value::String(body)) = env.get("body") else {
        return Err(ReplyError::Malformed("no body string"));
    };
    let sig = match env.get("sig") {
        None | Some(Value::Null) => return Err(ReplyError::Unsigned),
        Some(Value::String(s)) if s.is_empty() => return Err(ReplyError::Unsigned),
        Some(Value::String(s)) => s,
        Some(_) => return Err(ReplyError::Malformed("sig is not a string")),
    };
    if !signature_matches(secret, body, sig) {
        return Err(ReplyError::BadSignature);
    }
    let Ok(Value::Object(b)) = serde_json::from_str::<Value>(body) else {
        return Err(ReplyError::Malformed("the body is not a JSON object"));
    };
    let text = |k: &str| b.get(k).and_then(Value::as_str);
    let (Some(site), Some(gateway), Some(op), Some(ok)) = (
        text("site"),
        text("gateway"),
        text("op"),
        b.get("ok").and_then(Value::as_bool),
    ) else {
        return Err(ReplyError::Malformed(
            "the body lacks site, gateway, op or ok",
        ));
    };
    let id = match b.get("id") {
        Some(Value::String(s)) => Some(s.clone()),
        None | Some(Value::Null) => None,
        Some(_) => return Err(ReplyError::Malformed("id is not a string")),
    };
    let (reason, detail) = if ok {
        (String::new(), String::new())
    } else {
        (
            text("reason").unwrap_or("?").to_owned(),
            text("detail").unwrap_or("").to_owned(),
        )
    };
    let text = if ok {
        text("result").unwrap_or("").to_owned()
    } else {
        format!("{reason}: {detail}")
    };
    Ok(SignedReply {
        site: site.to_owned(),
        gateway: gateway.to_owned(),
        id,
        op: op.to_owned(),
        ok,
        text,
        reason,
        detail,
    })
}
