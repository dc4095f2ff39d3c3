//! The reply published on `…/cmd/reply` for every command.

use serde_json::{Map, Value, json};

use super::Rejection;

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
    /// Refused by [`Verifier::verify`](super::Verifier::verify).
    Rejected(&'a Rejection),
}

/// The JSON of a reply on `…/cmd/reply`, for the command received on
/// `…/cmd/<op>` (`op` as in the topic): `{"id", "op", "ok", "result"}` when
/// done, `{"id", "op", "ok": false, "reason", "detail"}` otherwise, and
/// `"ts"` = `now_ms`; `id` is `null` when the command's nonce could not be
/// read. Keys in alphabetical order.
pub fn reply_json(op: &str, outcome: Outcome<'_>, now_ms: i64) -> String {
    let mut m = Map::new();
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
        Outcome::Rejected(r) => {
            m.insert("id".into(), json!(r.id));
            m.insert("ok".into(), json!(false));
            m.insert("reason".into(), json!(r.reason.as_str()));
            m.insert("detail".into(), json!(r.detail));
        }
    }
    Value::Object(m).to_string()
}
