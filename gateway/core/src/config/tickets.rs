//! The `[tickets]` section and `[[maintenance]]` windows (issue #3).
//! Owned by the ticket layer; see `docs/config.md`.

use serde::Deserialize;

use super::ConfigError;

/// Ticket deadlines, rework period, auto-resolve.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketsConfig {}

impl TicketsConfig {
    /// Every problem in the section.
    pub fn check(&self) -> Vec<ConfigError> {
        Vec::new()
    }
}

/// A planned maintenance window declared in the configuration file
/// (`[[maintenance]]`); windows can also be added at run time with
/// `gateway maintenance add`.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MaintenanceWindowConfig {}
