//! Signed commands arriving over MQTT (`{prefix}/{site}/{gateway}/cmd/<op>`):
//! verification, replay protection and replies. Pure: no MQTT, no clock —
//! the caller passes the topic suffix, the payload, the time and a
//! [`NonceBook`], and publishes what comes back. The wire format is
//! specified in `docs/commands.md`.
//!
//! # Design
//!
//! A payload is `{"body": "<body JSON, as a string>", "sig": "<hex>"}`:
//! `sig` is the HMAC-SHA256, under the shared `[commands] secret`, of the
//! UTF-8 bytes of the `body` *string*. Signing a string rather than an
//! embedded object means nobody has to find or reproduce the exact bytes of
//! a JSON sub-value: every JSON library decodes a string to the same text
//! however it was escaped, so a Python or JavaScript sender signs what it
//! serialised and the gateway checks what it decoded, with no
//! canonicalisation rules to get wrong.
//!
//! [`Verifier::verify`] checks, in this order, and stops at the first
//! failure (each a [`RejectReason`]):
//!
//! 1. shape: the payload is such an object, `body` is a JSON object with
//!    `op`, `id` (the nonce), `ts` and `by`, and `op` equals the topic
//!    suffix (the topic is not signed; this binds it) — `Malformed`;
//! 2. a signature is present — `Unsigned`;
//! 3. the signature matches (constant-time comparison) — `BadSignature`;
//! 4. the op is known — `Unknown`;
//! 5. `ts` is within ± `max_age` of now — `Stale`;
//! 6. the nonce was not seen before — `Replayed`;
//! 7. the op's own fields make a [`Command`](crate::store::Command) —
//!    `Malformed`.
//!
//! A rejected command changes nothing, not even the nonce book: a nonce is
//! remembered only when the command is accepted (for a command whose fields
//! are bad, the book is only asked whether it knows the nonce, so that step
//! 6 still comes before step 7).
//!
//! # Replays
//!
//! The timestamp bounds how long a nonce must be remembered: a command is
//! accepted only while `|now − ts| ≤ max_age`, so its nonce is kept until
//! `ts + max_age` and pruned afterwards; a replay after that is stale. The
//! gateway's [`Store`](crate::store::Store) keeps nonces in SQLite, so a
//! replay right after a restart is still refused; [`MemoryNonces`] is for
//! tests. Raising `max_age` across a restart re-opens, for nonces already
//! pruned, at most the difference between the new and old value.
//!
//! # Replies
//!
//! The caller publishes [`reply_json`] on `…/cmd/reply` for every command:
//! applied, refused by the engine, or rejected here. The gateway subscribes
//! to `…/cmd/#`, so it receives its own replies: the caller must skip the
//! suffix [`REPLY_SUFFIX`] before verifying, or it would answer its own
//! answers forever.

mod nonces;
mod reply;
mod verify;

#[cfg(test)]
mod tests;

pub use nonces::{MemoryNonces, NonceBook};
pub use reply::{Outcome, reply_json};
pub use verify::{
    MAX_PAYLOAD_BYTES, OPS, RejectReason, Rejection, Verified, Verifier, sign, signature_hex,
};

/// The topic suffix (after `cmd/`) of replies; never a command.
pub const REPLY_SUFFIX: &str = "reply";
