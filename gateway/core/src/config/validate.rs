//! Second phase: resolve profiles and check everything, collecting every error.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

use super::{BusKind, Config, Parity, Profile};
use crate::model::{DeviceClass, Point};

/// One problem found in a configuration, with where it is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    /// Where: file, and a path such as `device "pump-3" point "pressure"` or `bus[2].timeout`.
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.path, self.message)
    }
}

impl std::error::Error for ConfigError {}

/// A validated configuration, ready for the planner, the buses and the simulator.
#[derive(Clone, Debug)]
pub struct Resolved {
    pub site: String,
    pub gateway: String,
    pub timezone: String,
    pub data_dir: String,
    pub buses: Vec<ResolvedBus>,
    /// Enabled devices only, in file order.
    pub devices: Vec<ResolvedDevice>,
    /// The raw config, for sections read by other layers (simulator).
    pub raw: Config,
}

/// A validated bus.
#[derive(Clone, Debug)]
pub struct ResolvedBus {
    pub id: String,
    pub kind: BusKind,
    /// `host:port` (tcp, rtu_over_tcp) or serial path (rtu).
    pub target: String,
    pub baud: u32,
    pub parity: Parity,
    pub stop_bits: u8,
    pub data_bits: u8,
    pub timeout: Duration,
    pub inter_frame_delay: Duration,
    pub max_registers: u16,
    pub max_bits: u16,
    pub max_gap: u16,
}

/// A validated device with its profile's points resolved (overrides applied).
#[derive(Clone, Debug)]
pub struct ResolvedDevice {
    pub id: String,
    pub name_zh: String,
    pub name_en: String,
    pub class: DeviceClass,
    pub location: String,
    /// Index into [`Resolved::buses`].
    pub bus: usize,
    pub unit: u8,
    pub profile: String,
    pub poll_interval: Duration,
    pub alarm_interval: Duration,
    /// Effective limits: device override, else bus value.
    pub max_gap: u16,
    pub max_registers: u16,
    pub max_bits: u16,
    pub points: Vec<Point>,
    /// Health hints from the profile.
    pub health: BTreeMap<String, String>,
}

/// Checks `config` against the profiles and returns the resolved form, or
/// every error found (never just the first).
pub fn validate(
    config: &Config,
    profiles: &BTreeMap<String, Profile>,
) -> Result<Resolved, Vec<ConfigError>> {
    let _ = (config, profiles);
    todo!("issue #2: config validation")
}
