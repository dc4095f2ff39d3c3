//! The serde shape of one gateway's TOML file.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::availability::AvailabilityConfig;
use super::health::HealthConfig;
use super::north::{AdminConfig, CommandsConfig, InfluxConfig, MqttConfig, OutboxConfig};
use super::profile::PointOverride;
use super::sim::SimulatorConfig;
use super::store::StoreConfig;
use super::tickets::{MaintenanceWindowConfig, TicketsConfig};
use crate::HumanDuration;
use crate::model::{DeviceClass, WordOrder};

/// One gateway's configuration file.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Site (building) id, used in MQTT topics: `[a-z0-9_-]`.
    pub site: String,
    /// This gateway's id within the site: `[a-z0-9_-]`.
    pub gateway: String,
    /// The site's display name in Chinese (`售楼处`), shown on the wall
    /// instead of the id; published in `status`.
    #[serde(default)]
    pub site_name_zh: Option<String>,
    /// The site's display name in English (`Sales centre`).
    #[serde(default)]
    pub site_name_en: Option<String>,
    /// IANA time zone for month boundaries and working hours.
    #[serde(default = "default_timezone")]
    pub timezone: String,
    /// Where the gateway keeps its state (ledger, tickets, outbox).
    #[serde(default = "default_data_dir")]
    pub data_dir: String,
    /// Folder of device profiles (`*.toml`), relative to this file's folder.
    #[serde(default = "default_profiles_dir")]
    pub profiles_dir: String,
    /// Field buses: RS-485 lines and TCP endpoints.
    #[serde(default, rename = "bus")]
    pub buses: Vec<BusConfig>,
    /// Devices to poll.
    #[serde(default, rename = "device")]
    pub devices: Vec<DeviceConfig>,
    /// How poll outcomes become device states (debounce, comms failures).
    #[serde(default)]
    pub health: HealthConfig,
    /// Availability targets and windows per class.
    #[serde(default)]
    pub availability: AvailabilityConfig,
    /// Ticket deadlines, rework period, auto-resolve.
    #[serde(default)]
    pub tickets: TicketsConfig,
    /// Planned maintenance windows (more can be added at run time).
    #[serde(default)]
    pub maintenance: Vec<MaintenanceWindowConfig>,
    /// How `gateway simulate` serves this building (ignored by `gateway run`).
    #[serde(default)]
    pub simulator: SimulatorConfig,
    /// The MQTT broker and what is published (absent: nothing is published).
    #[serde(default)]
    pub mqtt: Option<MqttConfig>,
    /// The disk outbox in front of MQTT and InfluxDB.
    #[serde(default)]
    pub outbox: OutboxConfig,
    /// How long `gateway.db` keeps history (months).
    #[serde(default)]
    pub store: StoreConfig,
    /// Optional InfluxDB 2 telemetry sink.
    #[serde(default)]
    pub influx: Option<InfluxConfig>,
    /// Signed commands over MQTT (absent: none accepted).
    #[serde(default)]
    pub commands: Option<CommandsConfig>,
    /// Writes to devices (off by default).
    #[serde(default)]
    pub writes: super::WritesConfig,
    /// The loopback admin listener (`/healthz`, `/metrics`).
    #[serde(default)]
    pub admin: AdminConfig,
    /// On-call alerts: channels, people, rotation, policy (absent: nobody is paged).
    #[serde(default)]
    pub alerts: Option<super::alerts::AlertsConfig>,
}

fn default_timezone() -> String {
    "Asia/Shanghai".to_owned()
}
fn default_data_dir() -> String {
    "/var/lib/bms-gateway".to_owned()
}
fn default_profiles_dir() -> String {
    "profiles".to_owned()
}

/// Transport of a bus.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BusKind {
    /// Modbus TCP (MBAP header) to `address`.
    Tcp,
    /// Modbus RTU on a local serial port (`port`).
    Rtu,
    /// Modbus RTU frames carried over a TCP socket to a serial device server.
    RtuOverTcp,
}

/// Serial parity.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Parity {
    #[default]
    None,
    Even,
    Odd,
}

/// One field bus: a TCP endpoint or an RS-485 line. One transaction at a time.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BusConfig {
    /// Unique bus id, referred to by devices.
    pub id: String,
    pub kind: BusKind,
    /// `host:port` for `tcp` and `rtu_over_tcp`.
    #[serde(default)]
    pub address: Option<String>,
    /// Serial device path for `rtu`, e.g. `/dev/ttyUSB0`.
    #[serde(default)]
    pub port: Option<String>,
    /// Baud rate for `rtu` (also used for wire-time maths on `rtu_over_tcp`).
    #[serde(default = "default_baud")]
    pub baud: u32,
    #[serde(default)]
    pub parity: Parity,
    /// 1 or 2.
    #[serde(default = "default_stop_bits")]
    pub stop_bits: u8,
    /// 7 or 8.
    #[serde(default = "default_data_bits")]
    pub data_bits: u8,
    /// How long to wait for a whole answer.
    #[serde(default = "default_timeout")]
    pub timeout: HumanDuration,
    /// Silence kept between the end of one transaction and the next request.
    /// Default: none on `tcp`; 3.5 character times (at least 1.75 ms) on RTU.
    #[serde(default)]
    pub inter_frame_delay: Option<HumanDuration>,
    /// Largest register count per request on this bus (≤ 125).
    #[serde(default = "default_max_registers")]
    pub max_registers: u16,
    /// Largest bit count per request on this bus (≤ 2000).
    #[serde(default = "default_max_bits")]
    pub max_bits: u16,
    /// Cap on the unused registers the planner may read to join two ranges
    /// into one request; by default none (`u16::MAX`): the planner's cost
    /// model of the line decides.
    #[serde(default = "default_max_gap")]
    pub max_gap: u16,
}

const fn default_baud() -> u32 {
    9600
}
const fn default_stop_bits() -> u8 {
    1
}
const fn default_data_bits() -> u8 {
    8
}
const fn default_timeout() -> HumanDuration {
    HumanDuration::from_millis(1000)
}
const fn default_max_registers() -> u16 {
    125
}
const fn default_max_bits() -> u16 {
    2000
}
const fn default_max_gap() -> u16 {
    u16::MAX
}

/// One device to poll.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeviceConfig {
    /// Unique device id within the gateway: `[a-z0-9_-]`.
    pub id: String,
    /// Display name in Chinese (default language of the dashboard and reports).
    pub name_zh: String,
    /// Display name in English.
    #[serde(default)]
    pub name_en: Option<String>,
    pub class: DeviceClass,
    /// Where the device is, free text (e.g. `B1 水泵房`).
    #[serde(default)]
    pub location: Option<String>,
    /// The location in English (`B1 pump room`); default: `location`.
    #[serde(default)]
    pub location_en: Option<String>,
    /// Bus id.
    pub bus: String,
    /// Modbus unit id (slave address): 1–247 on RTU; 0–255 on TCP.
    pub unit: u8,
    /// Profile name: the file `profiles_dir/<profile>.toml` without extension.
    pub profile: String,
    /// Normal poll interval of all points.
    #[serde(default = "default_poll_interval")]
    pub poll_interval: HumanDuration,
    /// Fast poll interval of the profile's alarm points.
    #[serde(default = "default_alarm_interval")]
    pub alarm_interval: HumanDuration,
    /// Overrides the bus `max_gap` for this device.
    #[serde(default)]
    pub max_gap: Option<u16>,
    /// Overrides the bus `max_registers` for this device (some devices accept fewer).
    #[serde(default)]
    pub max_registers: Option<u16>,
    /// Added to every address of the profile (devices mapped at an offset).
    #[serde(default)]
    pub address_offset: i32,
    /// Current transformer ratio (primary ÷ secondary, e.g. 200 for
    /// 1000/5 A): scales the profile's points marked `ratio = "ct"` or
    /// `"ct_pt"`. Default 1.
    #[serde(default)]
    pub ct_ratio: Option<f64>,
    /// Voltage transformer ratio (e.g. 100 for 10 kV/100 V): scales the
    /// points marked `ratio = "pt"` or `"ct_pt"`. Default 1.
    #[serde(default)]
    pub pt_ratio: Option<f64>,
    /// Overrides the profile's default word order for this device.
    #[serde(default)]
    pub order: Option<WordOrder>,
    /// Per-point overrides, by point name.
    #[serde(default)]
    pub points: BTreeMap<String, PointOverride>,
    /// Availability target in per cent for this device (default: its class's).
    #[serde(default)]
    pub threshold: Option<f64>,
    /// Fault rules of this device, over the profile's `[health]` hints by
    /// name: `name = "condition"`, `name = { when = "condition", for = "30s" }`
    /// or `name = { for = "30s" }` (the profile's condition, another hold);
    /// an empty string disables a profile rule.
    #[serde(default)]
    pub health: BTreeMap<String, super::RuleDef>,
    /// Set false to keep the device in config but not poll it.
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// Which of its profile's `writable` points may be written: `false`
    /// (default), `true` (all) or a list of point names. Needs
    /// `[writes] enabled = true` too.
    #[serde(default)]
    pub writes: super::DeviceWrites,
}

const fn default_poll_interval() -> HumanDuration {
    HumanDuration::from_secs(1)
}
const fn default_alarm_interval() -> HumanDuration {
    HumanDuration::from_millis(500)
}
const fn default_true() -> bool {
    true
}
