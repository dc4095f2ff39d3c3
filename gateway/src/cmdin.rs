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
//!    `op`, `id` (the nonce), `ts`, `by`, `site` and `gateway`, and `op`
//!    equals the topic suffix (the topic is not signed; this binds it) —
//!    `Malformed`;
//! 2. a signature is present — `Unsigned`;
//! 3. the signature matches (constant-time comparison) — `BadSignature`;
//! 4. the body's `site` and `gateway` are this gateway's — `WrongTarget`
//!    (one secret is often shared by the gateways of a site: without this,
//!    a command signed for one of them could be replayed on another's
//!    topic);
//! 5. the op is known — `Unknown`;
//! 6. `ts` is within ± `max_age` of now — `Stale`;
//! 7. the nonce was not seen before — `Replayed`;
//! 8. the op's own fields make a [`Command`](crate::store::Command) —
//!    `Malformed`.
//!
//! A rejected command changes nothing, not even the nonce book: a nonce is
//! remembered only when the command is accepted (for a command whose fields
//! are bad, the book is only asked whether it knows the nonce, so that step
//! 7 still comes before step 8).
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
//! The caller publishes [`Verifier::reply`] on `…/cmd/reply` for every
//! command: applied, refused by the engine, or rejected here. A reply is
//! signed with the same secret and scheme as a command, its body binding
//! the command's `id`, the gateway's `site` and `gateway`, the `op` and the
//! outcome; a sender checks it with [`open_reply`] before believing it.
//! The gateway subscribes
//! to `…/cmd/#`, so it receives its own replies: the caller must skip the
//! suffix [`REPLY_SUFFIX`] before verifying, or it would answer its own
//! answers forever.

mod nonces;
mod reply;
mod verify;

#[cfg(test)]
mod tests;

pub use nonces::{MemoryNonces, NonceBook};
pub use reply::{Outcome, ReplyError, SignedReply, open_reply, reply_json};
pub use verify::{
    MAX_PAYLOAD_BYTES, OPS, RejectReason, Rejection, Verified, Verifier, sign, signature_hex,
};

/// The topic suffix (after `cmd/`) of replies; never a command.
pub const REPLY_SUFFIX: &str = "reply";

/// The shortest command secret accepted, in bytes: 32 random bytes (64 hex
/// digits from `openssl rand -hex 32`) cannot be guessed, and HMAC-SHA256
/// gains nothing from more.
pub const MIN_SECRET_BYTES: usize = gateway_core::config::MIN_COMMAND_SECRET_BYTES;

/// Reads the `[commands] secret` of `c` (paths relative to `base`, variables
/// from `env`) and checks its length; the error names the setting and says
/// what to do. Used by `gateway check` and `gateway run`, which both refuse
/// to go on (exit 64) when it fails.
pub fn read_secret(
    c: &gateway_core::config::CommandsConfig,
    base: &std::path::Path,
    env: &dyn Fn(&str) -> Option<String>,
) -> Result<gateway_core::config::Secret, String> {
    let secret = c
        .secret
        .read(base, env)
        .map_err(|e| format!("[commands] secret: {e}"))?
        .ok_or_else(|| "[commands] secret is not set".to_owned())?;
    gateway_core::config::check_command_secret("[commands] secret", &secret)?;
    Ok(secret)
}
