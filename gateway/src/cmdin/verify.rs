//! The envelope, the body, the signature and the order of the checks.

use std::fmt;
use std::time::Duration;

use chrono_tz::Tz;
use gateway_core::config::{MaintenanceWindowConfig, Secret};
use gateway_core::maintenance::Window;
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use sha2::Sha256;

use super::NonceBook;
use crate::store::{Command, WriteValue};

type HmacSha256 = Hmac<Sha256>;

/// The largest payload looked at; a larger one is `Malformed`.
pub const MAX_PAYLOAD_BYTES: usize = 16 * 1024;

/// The known ops, each also the topic suffix it is published on.
pub const OPS: [&str; 7] = [
    "ack",
    "arrive",
    "resolve",
    "close",
    "add_window",
    "remove_window",
    "write",
];

/// The longest operator name (`by`), in characters.
const MAX_BY_CHARS: usize = 64;
/// The longest ticket note, in characters.
const MAX_NOTE_CHARS: usize = 2000;

/// Why a command was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RejectReason {
    /// No `sig` (or an empty one).
    Unsigned,
    /// The signature does not match the body under the shared secret (or
    /// is not 64 hex digits, or the gateway has no secret).
    BadSignature,
    /// `ts` is further than `max_age` from the gateway's clock.
    Stale,
    /// The nonce (`id`) was seen before.
    Replayed,
    /// Not the wire format: bad JSON, a missing or wrong field, a topic
    /// that does not match the op, a window that cannot be built.
    Malformed,
    /// A well-signed command made for another site or gateway (the body's
    /// `site`/`gateway` are not this gateway's): a command captured on one
    /// gateway's topic and republished on another's, or sent to the wrong
    /// topic. Nothing is done.
    WrongTarget,
    /// A well-signed command with an op this gateway does not know.
    Unknown,
    /// The gateway could not check or record the nonce (its database
    /// failed); nothing was done, the sender may retry with a new id.
    Internal,
}

impl RejectReason {
    /// Every reason, in the order of [`RejectReason::index`] (for counters).
    pub const ALL: [RejectReason; 8] = [
        RejectReason::Unsigned,
        RejectReason::BadSignature,
        RejectReason::Stale,
        RejectReason::Replayed,
        RejectReason::Malformed,
        RejectReason::WrongTarget,
        RejectReason::Unknown,
        RejectReason::Internal,
    ];

    /// This reason's place in [`RejectReason::ALL`].
    pub const fn index(self) -> usize {
        self as usize
    }

    /// The wire name (`bad_signature`).
    pub const fn as_str(self) -> &'static str {
        match self {
            RejectReason::Unsigned => "unsigned",
            RejectReason::BadSignature => "bad_signature",
            RejectReason::Stale => "stale",
            RejectReason::Replayed => "replayed",
            RejectReason::Malformed => "malformed",
            RejectReason::WrongTarget => "wrong_target",
            RejectReason::Unknown => "unknown",
            RejectReason::Internal => "internal",
        }
    }
}

impl fmt::Display for RejectReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A refused command: why, in words for the sender, and its nonce when the
/// body named one (unverified when the reason is about the signature).
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("command refused ({reason}): {detail}")]
pub struct Rejection {
    /// The class of the refusal.
    pub reason: RejectReason,
    /// What was wrong and what to do.
    pub detail: String,
    /// The body's `id`, when it could be read.
    pub id: Option<String>,
}

/// A command that passed every check.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Verified {
    /// Its nonce, to quote in the reply.
    pub id: String,
    /// The operator who sent it.
    pub by: String,
    /// What to apply through the engine's command queue.
    pub command: Command,
}

/// Checks signed command payloads against the shared secret (see the module
/// documentation for the order of the checks).
pub struct Verifier {
    /// The keyed MAC, cloned per check; `None` for an empty secret.
    mac: Option<HmacSha256>,
    /// The same key, for signing replies (empty for an empty secret).
    pub(super) secret: Secret,
    max_age_ms: u64,
    tz: Tz,
    /// This gateway's site: a command's body must name it.
    pub(super) site: String,
    /// This gateway's id: a command's body must name it.
    pub(super) gateway: String,
}

impl fmt::Debug for Verifier {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Verifier")
            .field("secret", &"**REDACTED**")
            .field("max_age_ms", &self.max_age_ms)
            .field("tz", &self.tz)
            .field("site", &self.site)
            .field("gateway", &self.gateway)
            .finish()
    }
}

/// The body fields every op has.
#[derive(Deserialize)]
struct Head {
    op: String,
    id: String,
    ts: i64,
    by: String,
    /// The target site; optional here so that its absence gets its own
    /// message (a sender from before targets were signed).
    #[serde(default)]
    site: Option<String>,
    /// The target gateway; as `site`.
    #[serde(default)]
    gateway: Option<String>,
    #[serde(flatten)]
    rest: Map<String, Value>,
}

/// Fields of `ack`, `resolve` and `close`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct TicketFields {
    ticket: u64,
    #[serde(default)]
    note: String,
}

/// Fields of `arrive`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct ArriveFields {
    ticket: u64,
    #[serde(default)]
    note: String,
    /// When the sender arrived (Unix ms), if not when the gateway applies
    /// the command; the ticket book keeps it within now and the previous
    /// step.
    #[serde(default)]
    arrived_at: Option<i64>,
}

/// Fields of `add_window`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct AddWindowFields {
    window: MaintenanceWindowConfig,
}

/// Fields of `write`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct WriteFields {
    device: String,
    point: String,
    value: Value,
}

/// The longest device id or point name a `write` may name.
const MAX_NAME_CHARS: usize = 64;

/// Fields of `remove_window`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RemoveWindowFields {
    window_id: String,
}

fn reject(reason: RejectReason, id: Option<&str>, detail: impl Into<String>) -> Rejection {
    Rejection {
        reason,
        detail: detail.into(),
        id: id.map(str::to_owned),
    }
}

fn malformed(id: Option<&str>, detail: impl Into<String>) -> Rejection {
    reject(RejectReason::Malformed, id, detail)
}

/// A nonce: 8–64 of `[A-Za-z0-9_-]`.
fn is_nonce(s: &str) -> bool {
    (8..=64).contains(&s.len())
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl Verifier {
    /// A verifier for the gateway `gateway` of site `site` and its shared
    /// `secret`, accepting timestamps within `max_age` of now either way,
    /// reading window times in the site's `tz`. With an empty secret every
    /// command is refused (`bad_signature`).
    pub fn new(secret: Secret, max_age: Duration, tz: Tz, site: &str, gateway: &str) -> Verifier {
        let key = secret.expose().as_bytes();
        let mac = if key.is_empty() {
            None
        } else {
            // HMAC takes keys of any length; this never fails.
            HmacSha256::new_from_slice(key).ok()
        };
        Verifier {
            mac,
            secret,
            max_age_ms: u64::try_from(max_age.as_millis()).unwrap_or(u64::MAX),
            tz,
            site: site.to_owned(),
            gateway: gateway.to_owned(),
        }
    }

    /// Verifies one payload received on `…/cmd/<op>` (`op` = the topic
    /// suffix after `cmd/`) at `now_ms`. Checks, in this order: shape/JSON
    /// (`Malformed`), signature present (`Unsigned`), signature
    /// (`BadSignature`, constant-time), the body's `site` and `gateway` are
    /// this gateway's (`WrongTarget`), op known (`Unknown`), `ts` within
    /// ±`max_age` of now (`Stale`), nonce not seen (`Replayed`, via `seen`),
    /// op fields (`Malformed`). Only an accepted command's nonce is
    /// remembered.
    pub fn verify(
        &self,
        op: &str,
        payload: &[u8],
        now_ms: i64,
        seen: &mut dyn NonceBook,
    ) -> Result<Verified, Rejection> {
        // 1. Shape.
        let (body, sig) = envelope(payload)?;
        let body_value: Value = serde_json::from_str(&body)
            .map_err(|e| malformed(None, format!("body is not JSON: {e}")))?;
        let claimed_id = body_value
            .get("id")
            .and_then(Value::as_str)
            .map(str::to_owned);
        let cid = claimed_id.as_deref();
        if !body_value.is_object() {
            return Err(malformed(
                cid,
                "body must be a JSON object {\"op\":…,\"id\":…,\"ts\":…,\"by\":…,\"site\":…,\"gateway\":…}",
            ));
        }
        let head = Head::deserialize(body_value).map_err(|e| {
            malformed(
                cid,
                format!("body: {e}; every command has op, id, ts (Unix ms), by, site and gateway"),
            )
        })?;
        if !is_nonce(&head.id) {
            return Err(malformed(
                cid,
                format!(
                    "id {:?} is not a nonce; give 8–64 characters of A–Z, a–z, 0–9, '-' and '_', new for every command",
                    head.id
                ),
            ));
        }
        let id = Some(head.id.as_str());
        let by = head.by.trim();
        if by.is_empty() || by.chars().count() > MAX_BY_CHARS || by.chars().any(char::is_control) {
            return Err(malformed(
                id,
                format!("by must name the operator in 1–{MAX_BY_CHARS} characters"),
            ));
        }
        let (Some(target_site), Some(target_gw)) = (head.site.as_deref(), head.gateway.as_deref())
        else {
            return Err(malformed(
                id,
                "the body must name its target: \"site\" and \"gateway\" (a sender made before commands named their target; update it, docs/commands.md)",
            ));
        };
        if head.op != op {
            return Err(malformed(
                id,
                format!(
                    "the topic ends in cmd/{op} but the body's op is {:?}; publish each command on …/cmd/<its op>",
                    head.op
                ),
            ));
        }

        // 2. and 3. Signature.
        let Some(sig) = sig.filter(|s| !s.is_empty()) else {
            return Err(reject(
                RejectReason::Unsigned,
                id,
                "the command has no sig; sign the body string with HMAC-SHA256 and the shared [commands] secret (docs/commands.md)",
            ));
        };
        let Some(mac) = self.mac.clone() else {
            return Err(reject(
                RejectReason::BadSignature,
                id,
                "the gateway's [commands] secret is empty, so it accepts no command; set a secret on both sides",
            ));
        };
        let sig_bytes = match hex::decode(&sig) {
            Ok(b) if b.len() == 32 => b,
            _ => {
                return Err(reject(
                    RejectReason::BadSignature,
                    id,
                    "sig must be 64 lowercase hex digits (HMAC-SHA256 of the body string)",
                ));
            }
        };
        let mut mac = mac;
        mac.update(body.as_bytes());
        if mac.verify_slice(&sig_bytes).is_err() {
            return Err(reject(
                RejectReason::BadSignature,
                id,
                "the signature does not match the body; check the shared secret and sign the body string exactly as sent",
            ));
        }

        // 4. Target: signed for this very gateway. Checked after the
        // signature, so that an unsigned probe learns nothing.
        if target_site != self.site || target_gw != self.gateway {
            return Err(reject(
                RejectReason::WrongTarget,
                id,
                format!(
                    "the command is for site {target_site:?} gateway {target_gw:?}, but this is site {:?} gateway {:?}; publish it on the topic of the gateway it names",
                    self.site, self.gateway
                ),
            ));
        }

        // 5. Op known.
        if !OPS.contains(&op) {
            return Err(reject(
                RejectReason::Unknown,
                id,
                format!("unknown op {op:?}; this gateway knows {}", OPS.join(", ")),
            ));
        }

        // 6. Timestamp.
        let age = now_ms.abs_diff(head.ts);
        if age > self.max_age_ms {
            let when = if head.ts < now_ms {
                "in the past"
            } else {
                "in the future"
            };
            return Err(reject(
                RejectReason::Stale,
                id,
                format!(
                    "ts {} is {} s {when} of the gateway's clock ({now_ms}); at most {} s is accepted: send commands at once, and check both clocks (NTP)",
                    head.ts,
                    age / 1000,
                    self.max_age_ms / 1000
                ),
            ));
        }

        // 7. and 8. Nonce, then the op's fields (a bad command leaves the
        // nonce book as it was).
        let command = self.command(op, by, head.rest);
        let replayed = || {
            reject(
                RejectReason::Replayed,
                id,
                format!(
                    "command id {:?} was received before; give every command a new id",
                    head.id
                ),
            )
        };
        let internal = |e: String| {
            reject(
                RejectReason::Internal,
                id,
                format!("the gateway could not check the command id: {e}; try again with a new id"),
            )
        };
        match command {
            Ok(command) => {
                let keep_until = head
                    .ts
                    .saturating_add(i64::try_from(self.max_age_ms).unwrap_or(i64::MAX));
                match seen.remember(&head.id, keep_until, now_ms) {
                    Ok(true) => Ok(Verified {
                        id: head.id.clone(),
                        by: by.to_owned(),
                        command,
                    }),
                    Ok(false) => Err(replayed()),
                    Err(e) => Err(internal(e)),
                }
            }
            Err(detail) => match seen.contains(&head.id, now_ms) {
                Ok(true) => Err(replayed()),
                Ok(false) => Err(malformed(id, detail)),
                Err(e) => Err(internal(e)),
            },
        }
    }

    /// The command of a known op from its own fields (everything in the
    /// body but op, id, ts, by, site and gateway); the error is the
    /// `Malformed` detail.
    fn command(&self, op: &str, by: &str, rest: Map<String, Value>) -> Result<Command, String> {
        let rest = Value::Object(rest);
        match op {
            "ack" | "resolve" | "close" => {
                let f = TicketFields::deserialize(rest).map_err(|e| {
                    format!("{op}: {e}; give \"ticket\": <number> and optionally \"note\"")
                })?;
                if f.note.chars().count() > MAX_NOTE_CHARS {
                    return Err(format!(
                        "{op}: the note is longer than {MAX_NOTE_CHARS} characters"
                    ));
                }
                let (id, by, note) = (f.ticket, by.to_owned(), f.note);
                Ok(match op {
                    "ack" => Command::Ack { id, by, note },
                    "resolve" => Command::Resolve { id, by, note },
                    _ => Command::Close { id, by, note },
                })
            }
            "arrive" => {
                let f = ArriveFields::deserialize(rest).map_err(|e| {
                    format!(
                        "arrive: {e}; give \"ticket\": <number>, optionally \"note\" and \"arrived_at\": <Unix ms>"
                    )
                })?;
                if f.note.chars().count() > MAX_NOTE_CHARS {
                    return Err(format!(
                        "arrive: the note is longer than {MAX_NOTE_CHARS} characters"
                    ));
                }
                if f.arrived_at.is_some_and(|t| t <= 0) {
                    return Err("arrive: arrived_at must be a positive Unix time in ms".to_owned());
                }
                Ok(Command::Arrive {
                    id: f.ticket,
                    by: by.to_owned(),
                    note: f.note,
                    at_ms: f.arrived_at,
                })
            }
            "add_window" => {
                let f = AddWindowFields::deserialize(rest).map_err(|e| {
                    format!(
                        "add_window: {e}; give \"window\": {{\"id\", \"device\" or \"class\", \"from\"+\"to\" or \"weekly\", \"note\"}}"
                    )
                })?;
                Window::from_config(&f.window, self.tz)
                    .map(Command::AddWindow)
                    .map_err(|e| format!("add_window: {e}"))
            }
            "remove_window" => {
                let f = RemoveWindowFields::deserialize(rest)
                    .map_err(|e| format!("remove_window: {e}; give \"window_id\": \"<id>\""))?;
                if f.window_id.trim().is_empty() {
                    return Err("remove_window: window_id is empty".to_owned());
                }
                Ok(Command::RemoveWindow { id: f.window_id })
            }
            "write" => {
                let f = WriteFields::deserialize(rest).map_err(|e| {
                    format!(
                        "write: {e}; give \"device\": \"<id>\", \"point\": \"<name>\" and \"value\": <number or true/false>"
                    )
                })?;
                let name_ok = |s: &str| {
                    !s.is_empty()
                        && s.chars().count() <= MAX_NAME_CHARS
                        && s.bytes().all(|b| {
                            b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-'
                        })
                };
                if !name_ok(&f.device) || !name_ok(&f.point) {
                    return Err(format!(
                        "write: device and point are ids of 1–{MAX_NAME_CHARS} characters of a–z, 0–9, '_' and '-'"
                    ));
                }
                let Some(value) = WriteValue::from_json(&f.value) else {
                    return Err("write: value must be a finite number or true/false".to_owned());
                };
                Ok(Command::Write {
                    device: f.device,
                    point: f.point,
                    value,
                    by: by.to_owned(),
                })
            }
            other => Err(format!("unknown op {other:?}")),
        }
    }
}

/// Splits a payload into the body string and the signature, if any.
fn envelope(payload: &[u8]) -> Result<(String, Option<String>), Rejection> {
    const SHAPE: &str = "the payload must be {\"body\": \"<body JSON as a string>\", \"sig\": \"<hex HMAC-SHA256>\"} (docs/commands.md)";
    if payload.len() > MAX_PAYLOAD_BYTES {
        return Err(malformed(
            None,
            format!(
                "the payload has {} bytes, more than the {MAX_PAYLOAD_BYTES} accepted",
                payload.len()
            ),
        ));
    }
    let value: Value = serde_json::from_slice(payload)
        .map_err(|e| malformed(None, format!("the payload is not JSON ({e}); {SHAPE}")))?;
    let Value::Object(mut env) = value else {
        return Err(malformed(None, SHAPE));
    };
    if let Some(k) = env.keys().find(|k| *k != "body" && *k != "sig") {
        return Err(malformed(
            None,
            format!(
                "unexpected field {k:?} beside body and sig; put command fields inside the signed body"
            ),
        ));
    }
    let body = match env.remove("body") {
        Some(Value::String(s)) => s,
        Some(Value::Object(_)) => {
            return Err(malformed(
                None,
                "body must be a JSON string holding the body JSON (the exact text signed), not an object",
            ));
        }
        Some(_) | None => return Err(malformed(None, SHAPE)),
    };
    let sig = match env.remove("sig") {
        None | Some(Value::Null) => None,
        Some(Value::String(s)) => Some(s),
        Some(_) => return Err(malformed(None, "sig must be a string of hex digits")),
    };
    Ok((body, sig))
}

/// Whether `sig_hex` is the HMAC-SHA256 of `body` under `secret`
/// (64 hex digits, compared in constant time); always false for an empty
/// secret.
pub(super) fn signature_matches(secret: &str, body: &str, sig_hex: &str) -> bool {
    if secret.is_empty() {
        return false;
    }
    let Ok(sig) = hex::decode(sig_hex) else {
        return false;
    };
    match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body.as_bytes());
            sig.len() == 32 && mac.verify_slice(&sig).is_ok()
        }
        Err(_) => false,
    }
}

/// The lowercase hex HMAC-SHA256 of `body_json`'s UTF-8 bytes under
/// `secret`: the `sig` of a payload.
pub fn signature_hex(secret: &str, body_json: &str) -> String {
    match HmacSha256::new_from_slice(secret.as_bytes()) {
        Ok(mut mac) => {
            mac.update(body_json.as_bytes());
            hex::encode(mac.finalize().into_bytes())
        }
        // Unreachable: HMAC takes keys of any length.
        Err(_) => String::new(),
    }
}

/// For tests and the dashboard: the payload of a signed command,
/// `{"body":"<body_json>","sig":"<hex>"}`.
pub fn sign(secret: &str, body_json: &str) -> Vec<u8> {
    serde_json::json!({
        "body": body_json,
        "sig": signature_hex(secret, body_json),
    })
    .to_string()
    .into_bytes()
}
