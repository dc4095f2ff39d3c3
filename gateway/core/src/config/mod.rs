//! Gateway configuration and device profiles.
//!
//! Two phases, as in `shared/STYLE.md`: serde checks the shape
//! (`deny_unknown_fields`, typed enums, humane durations), then
//! [`validate`](validate::validate) resolves profiles and collects **every**
//! error with its path before returning. Nothing here reads files: the
//! caller passes text in ([`load`]), so the same code serves the CLI, the
//! daemon and the tests.

// On-call alerts (issue #6).
mod alerts;
mod availability;
mod gateway;
mod health;
pub mod load;
pub mod north;
mod profile;
mod sim;
mod store;
pub mod subst;
mod tickets;
pub mod validate;
mod writes;

pub use alerts::*;
pub use availability::*;
pub use gateway::*;
pub use health::*;
pub use north::{
    AdminConfig, BrokerUrl, CommandsConfig, DEFAULT_MAX_PACKET, Fsync, InfluxConfig,
    MIN_COMMAND_SECRET_BYTES, MqttConfig, OutboxConfig, Qos, Secret, SecretSource,
    check_command_secret, parse_broker_url, parse_packet_size, parse_size, redact_url,
};
pub use profile::*;
pub use sim::*;
pub use store::*;
pub use tickets::*;
pub use validate::{ConfigError, Resolved, ResolvedBus, ResolvedDevice, Rule};
pub use writes::*;
