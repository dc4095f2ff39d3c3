//! The `[health]` section: how poll outcomes become Up/Down (issue #3).
//! Owned by the health layer; see `docs/config.md`.

use serde::Deserialize;

use super::ConfigError;

/// How device health is judged.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {}

impl HealthConfig {
    /// Every problem in the section (paths like `health.comms_failures`).
    pub fn check(&self) -> Vec<ConfigError> {
        Vec::new()
    }
}
