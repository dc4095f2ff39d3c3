//! The MQTT payloads a consumer (the dashboard) takes from the gateways,
//! typed and bounded (schema: `docs/mqtt.md`).
//!
//! Everything that arrives over MQTT is untrusted: any holder of broker
//! credentials that may publish under the prefix can send anything. A
//! payload becomes one of these structs only through its `parse_*`
//! function, which first lets serde check the shape (fields of the right
//! type, lists that are lists, states from their fixed set) and then holds
//! every field to its bound ([`check`]): ids of at most 64 characters of
//! `[A-Za-z0-9_.-]`, free text of at most [`check::MAX_TEXT`] characters
//! and no control characters, times plausible Unix ms, fractions 0–1,
//! thresholds 0–100 per cent, maps and lists of bounded length. A consumer
//! that only ever uses the structs cannot show a field of the wrong type.
//!
//! Unknown fields are ignored (and dropped), so that a newer gateway can add
//! a field without older dashboards refusing its messages.
//!
//! No IO and no clock here: plausibility against the consumer's clock, the
//! caps on how many sites or devices a consumer keeps, and `seq` policy are
//! the consumer's.

pub mod check;
mod payload;
mod topic;

pub use check::{Reason, Refusal};
pub use payload::*;
pub use topic::{Kind, Topic, parse_topic};

#[cfg(test)]
mod tests;
