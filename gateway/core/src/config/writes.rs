//! `[writes]` and the devices' `writes`: whether the gateway may write to a
//! device at all. Off by default: a gateway that only reads cannot start a
//! pump by mistake, whatever its profiles say (see `docs/security.md`,
//! "Writes").

use std::time::Duration;

use serde::Deserialize;

use super::ConfigError;
use crate::HumanDuration;

/// The shortest `[writes] timeout` accepted.
pub const MIN_WRITE_TIMEOUT: Duration = Duration::from_millis(100);
/// The longest `[writes] timeout` accepted: a write command's reply must
/// come before a sender gives up on it.
pub const MAX_WRITE_TIMEOUT: Duration = Duration::from_secs(30);

const fn default_timeout() -> HumanDuration {
    HumanDuration::from_secs(5)
}

/// `[writes]`: the site's switch for writes to devices (see
/// `docs/config.md`, `## [writes]`).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WritesConfig {
    /// Writes are accepted only when this is `true` (and the device's
    /// `writes` and the profile's `writable` allow the point). Default
    /// `false`.
    #[serde(default)]
    pub enabled: bool,
    /// How long a write may take from the moment it is accepted: waiting
    /// for the bus (between two polls), the write and its read-back. Past
    /// it the result is `timeout`. Default `"5s"`, 100 ms – 30 s.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
}

impl Default for WritesConfig {
    fn default() -> Self {
        Self {
            enabled: false,
            timeout: default_timeout(),
        }
    }
}

impl WritesConfig {
    /// Every error of the section, with its path.
    pub fn check(&self) -> Vec<ConfigError> {
        let mut errs = Vec::new();
        let t = self.timeout.get();
        if !(MIN_WRITE_TIMEOUT..=MAX_WRITE_TIMEOUT).contains(&t) {
            errs.push(ConfigError::new(
                "[writes] timeout",
                format!("{} is outside 100ms–30s", self.timeout),
            ));
        }
        errs
    }
}

/// A device's `writes`: `false` (the default: none), `true` (every point
/// its profile marks `writable`) or a list of point names (only those; each
/// must be writable in the profile).
#[derive(Clone, Debug, PartialEq, Eq, Deserialize)]
#[serde(untagged)]
pub enum DeviceWrites {
    /// `true`: every writable point; `false`: none.
    All(bool),
    /// Only the points named.
    Points(Vec<String>),
}

impl Default for DeviceWrites {
    fn default() -> Self {
        DeviceWrites::All(false)
    }
}
