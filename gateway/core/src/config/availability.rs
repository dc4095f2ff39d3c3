//! The `[availability]` section: targets (thresholds) and windows (issue #3).
//! Owned by the ledger layer; see `docs/config.md`.

use serde::Deserialize;

use super::ConfigError;
use crate::model::DeviceClass;

/// Availability targets and the rolling window, per class.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AvailabilityConfig {}

impl AvailabilityConfig {
    /// Every problem in the section.
    pub fn check(&self) -> Vec<ConfigError> {
        Vec::new()
    }

    /// The target in per cent for a device of `class`, with the device's own
    /// override when it has one.
    pub fn threshold_percent(&self, class: DeviceClass, device_override: Option<f64>) -> f64 {
        device_override.unwrap_or(class.default_target_percent())
    }
}
