//! Device states, transitions, ledger intervals and hard alarms: the
//! vocabulary of the core (health → ledger → tickets), shared by the store,
//! the engine and (later) the MQTT wire types.
//!
//! Time is Unix milliseconds ([`UnixMs`]), always passed in by the caller.

use std::fmt;

use serde::{Deserialize, Serialize};

/// Unix time in milliseconds (UTC).
pub type UnixMs = i64;

/// The state of one device, as availability accounting sees it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeviceState {
    /// Working: reachable and no fault rule true.
    Up,
    /// Not working: unreachable (`comms`) or a fault rule is true.
    Down,
    /// Inside a planned maintenance window: excluded from availability.
    Maintenance,
    /// No data: the gateway was not running, or the device was never reached
    /// since start. Excluded from availability, reported as lost coverage.
    Unknown,
}

impl DeviceState {
    /// The name used in storage, MQTT and the CLI.
    pub const fn as_str(self) -> &'static str {
        match self {
            DeviceState::Up => "up",
            DeviceState::Down => "down",
            DeviceState::Maintenance => "maintenance",
            DeviceState::Unknown => "unknown",
        }
    }

    /// Parses [`as_str`](Self::as_str) back.
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "up" => DeviceState::Up,
            "down" => DeviceState::Down,
            "maintenance" => DeviceState::Maintenance,
            "unknown" => DeviceState::Unknown,
            _ => return None,
        })
    }
}

impl fmt::Display for DeviceState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A change of a device's state. `reason` says why the new state holds:
/// `comms` (no answer), `rule:<name>` (a fault rule of the profile is true),
/// `maintenance:<window id>`, `startup`, `gateway_down` (recovered gap).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Transition {
    /// Device id (stable across configuration changes, unlike an index).
    pub device: String,
    pub from: DeviceState,
    pub to: DeviceState,
    pub reason: Option<String>,
    /// When the new state began (after debounce: the time of the first
    /// observation that led to it, not the time the hold expired).
    pub at_ms: UnixMs,
}

/// One stretch of time in one state. Intervals of a device never overlap and,
/// from the device's first interval on, leave no hole: every millisecond is
/// in exactly one state (a gateway outage is an `Unknown` interval).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Interval {
    pub device: String,
    pub state: DeviceState,
    pub reason: Option<String>,
    /// Inclusive start.
    pub from_ms: UnixMs,
    /// Exclusive end.
    pub to_ms: UnixMs,
}

impl Interval {
    /// Length in milliseconds (0 for a malformed interval).
    pub fn len_ms(&self) -> i64 {
        (self.to_ms - self.from_ms).max(0)
    }
}

/// A hard alarm seen on a critical point (fire panel in alarm or fault, leak
/// sensor wet…), raised the moment it is seen, before any debounce.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct HardAlarm {
    pub device: String,
    /// The critical point's name, e.g. `fire_alarm`, `leak`.
    pub point: String,
    /// true when the alarm became active, false when it cleared.
    pub active: bool,
    pub at_ms: UnixMs,
}
