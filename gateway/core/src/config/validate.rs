//! Second phase: resolve profiles and check everything, collecting every error.
//!
//! [`validate`] never stops at the first problem: it walks the whole
//! configuration and every profile it was given, records each problem as a
//! [`ConfigError`] with a path a person can find (`bus "rs485-1"`,
//! `device "pump-3" point "pressure"`, `profile "pump-vfd" health "fault"`),
//! and returns them all. Only when the list is empty is a [`Resolved`]
//! configuration returned.
//!
//! Invariants a [`Resolved`] guarantees to the rest of the system (so that
//! no library precondition can fire at run time):
//!
//! - ids are non-empty `[a-z0-9_-]` and unique; every device's bus exists
//!   (`ResolvedDevice::bus` is a valid index) and its profile was found;
//! - unit ids are 1–247 on RTU kinds (0–255 on TCP); no two devices share a
//!   unit id on one bus;
//! - timeouts are in (0, 60 s]; poll and alarm intervals are ≥ 10 ms;
//! - every point fits one request: width ≤ 125 registers / 2000 bits and ≤
//!   the device's effective maximum; `address + width ≤ 65536` after the
//!   device's `address_offset` (or at the device's `address` override of
//!   the point); a device's moved points do not read another point's
//!   register or bit;
//! - `ratio` marks numeric points only; a device's `ct_ratio` / `pt_ratio`
//!   are in (0, 100000], name a ratio its profile uses, and are present
//!   where the profile `requires_ct_ratio`; they are applied to the points'
//!   scale/offset (unless `primary_values`), range and absolute deadband;
//! - no two points of a profile read the same register or bit, unless one
//!   names the other in `alias_of` (bit points on different bits of one
//!   register do not overlap);
//! - a bit area holds only `bool` points; `bit` points have a bit 0–15 in a
//!   register area; strings have a length;
//! - scale is finite and non-zero, offset finite, `min ≤ max`;
//! - report by exception: a deadband is finite and ≥ 0 (a percentage at
//!   most 100) and only on numeric points; a heartbeat is ≥ 1 s;
//! - health hints parse (see [`Condition`]) and name
//!   existing points.
//!
//! Profile problems are reported once per profile (path `profile "…"`);
//! problems that depend on the device (offset, limits, overrides) once per
//! device.

use std::collections::{BTreeMap, BTreeSet};
use std::time::Duration;

use super::north::{CommandsConfig, InfluxConfig, MqttConfig};
use super::{BusConfig, BusKind, Condition, Config, Parity, PointDef, Profile, TypeName};
use crate::HumanDuration;
use crate::model::{Area, DataType, Deadband, DeviceClass, Point, WriteRange};

/// One problem found in a configuration, with where it is.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error("{path}: {message}")]
pub struct ConfigError {
    /// Where: file, and a path such as `device "pump-3" point "pressure"` or `bus[2].timeout`.
    pub path: String,
    /// What is wrong and what to do.
    pub message: String,
}

impl ConfigError {
    /// Builds an error from a path and a message.
    pub fn new(path: impl Into<String>, message: impl Into<String>) -> Self {
        ConfigError {
            path: path.into(),
            message: message.into(),
        }
    }
}

/// A validated configuration, ready for the planner, the buses and the simulator.
#[derive(Clone, Debug)]
pub struct Resolved {
    /// Site id.
    pub site: String,
    /// Gateway id within the site.
    pub gateway: String,
    /// IANA time zone name.
    pub timezone: String,
    /// State directory.
    pub data_dir: String,
    /// Every bus, in file order.
    pub buses: Vec<ResolvedBus>,
    /// Enabled devices only, in file order.
    pub devices: Vec<ResolvedDevice>,
    /// The raw config, for sections read by other layers (simulator).
    pub raw: Config,
}

/// A validated bus.
#[derive(Clone, Debug)]
pub struct ResolvedBus {
    /// Bus id.
    pub id: String,
    /// Transport.
    pub kind: BusKind,
    /// `host:port` (tcp, rtu_over_tcp) or serial path (rtu).
    pub target: String,
    /// Baud rate (meaningful on RTU kinds).
    pub baud: u32,
    /// Serial parity.
    pub parity: Parity,
    /// 1 or 2.
    pub stop_bits: u8,
    /// 7 or 8.
    pub data_bits: u8,
    /// Whole-answer timeout, in (0, 60 s].
    pub timeout: Duration,
    /// Silence between transactions (the default is filled in).
    pub inter_frame_delay: Duration,
    /// Largest register count per request.
    pub max_registers: u16,
    /// Largest bit count per request.
    pub max_bits: u16,
    /// Default largest gap the planner may bridge.
    pub max_gap: u16,
}

impl ResolvedBus {
    /// Bits on the wire per character (start + data + parity + stop).
    pub fn bits_per_char(&self) -> u32 {
        bits_per_char(self.parity, self.data_bits, self.stop_bits)
    }

    /// Time one character takes on the wire at this bus's baud rate.
    pub fn char_time(&self) -> Duration {
        char_time(self.baud, self.bits_per_char())
    }
}

/// A validated device with its profile's points resolved (overrides applied).
#[derive(Clone, Debug)]
pub struct ResolvedDevice {
    /// Device id.
    pub id: String,
    /// Chinese display name.
    pub name_zh: String,
    /// English display name (the id when none is configured).
    pub name_en: String,
    /// Equipment class.
    pub class: DeviceClass,
    /// Free-text location (empty when none).
    pub location: String,
    /// The location in English (`location` when none is configured).
    pub location_en: String,
    /// Display labels of the enabled points and of the rules (profile
    /// `label_zh` / `label_en`, a device rule's own when given).
    pub labels: std::sync::Arc<super::Labels>,
    /// Index into [`Resolved::buses`].
    pub bus: usize,
    /// Modbus unit id.
    pub unit: u8,
    /// Profile name.
    pub profile: String,
    /// Normal poll interval.
    pub poll_interval: Duration,
    /// Fast interval for alarm points.
    pub alarm_interval: Duration,
    /// Effective limits: device override, else bus value.
    pub max_gap: u16,
    /// Effective register limit per request.
    pub max_registers: u16,
    /// Effective bit limit per request (the bus's).
    pub max_bits: u16,
    /// Enabled points, in profile order, with overrides, offset and order applied.
    pub points: std::sync::Arc<Vec<Point>>,
    /// Fault rules by name: the profile's `[health]` rules with the
    /// device's overrides applied (each condition parses with
    /// `Condition::parse` and names only existing points).
    pub health: BTreeMap<String, Rule>,
    /// Availability target in per cent (device override, else class target).
    pub threshold_percent: f64,
    /// Names of the points that may be written: empty unless `[writes]
    /// enabled`; else those of the device's `writes` that its profile marks
    /// `writable` (their range is [`Point::write`]).
    pub writable: BTreeSet<String>,
}

/// A resolved fault rule: its condition and how long it must hold.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Rule {
    /// The condition text (parses with `Condition::parse`).
    pub when: String,
    /// How long the condition must stay true before the device counts as
    /// Down; `None` = the `[health] down_hold`.
    pub hold: Option<Duration>,
}

impl Rule {
    /// A rule with the default hold.
    pub fn new(when: impl Into<String>) -> Self {
        Rule {
            when: when.into(),
            hold: None,
        }
    }
}

/// The shortest poll or alarm interval accepted.
pub const MIN_INTERVAL: Duration = Duration::from_millis(10);
/// The longest request timeout accepted.
pub const MAX_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest inter-frame delay accepted.
pub const MAX_INTER_FRAME_DELAY: Duration = Duration::from_secs(1);
/// The Modbus spec's fixed inter-frame silence above 19200 baud.
pub const MIN_RTU_INTER_FRAME_DELAY: Duration = Duration::from_micros(1750);

/// Bits on the wire per serial character: start + data + parity + stop.
pub const fn bits_per_char(parity: Parity, data_bits: u8, stop_bits: u8) -> u32 {
    let parity_bits = match parity {
        Parity::None => 0,
        Parity::Even | Parity::Odd => 1,
    };
    1 + data_bits as u32 + parity_bits + stop_bits as u32
}

/// Wire time of one character; zero when `baud` is zero.
pub fn char_time(baud: u32, bits_per_char: u32) -> Duration {
    if baud == 0 {
        return Duration::ZERO;
    }
    Duration::from_nanos(u64::from(bits_per_char) * 1_000_000_000 / u64::from(baud))
}

/// The inter-frame delay used when a bus does not set one: none on `tcp`;
/// on RTU kinds 3.5 character times at the baud rate, at least 1.75 ms
/// (the Modbus serial line spec's fixed value above 19200 baud).
pub fn default_inter_frame_delay(
    kind: BusKind,
    baud: u32,
    parity: Parity,
    data_bits: u8,
    stop_bits: u8,
) -> Duration {
    match kind {
        BusKind::Tcp => Duration::ZERO,
        BusKind::Rtu | BusKind::RtuOverTcp => {
            if baud == 0 {
                return MIN_RTU_INTER_FRAME_DELAY;
            }
            // 3.5 characters, in nanoseconds: bits × 3.5 × 10⁹ / baud.
            let bits = u64::from(bits_per_char(parity, data_bits, stop_bits));
            let t35 = Duration::from_nanos(bits * 3_500_000_000 / u64::from(baud));
            t35.max(MIN_RTU_INTER_FRAME_DELAY)
        }
    }
}

/// Collects errors.
#[derive(Debug, Default)]
struct Errors(Vec<ConfigError>);

impl Errors {
    fn push(&mut self, path: impl Into<String>, message: impl Into<String>) {
        self.0.push(ConfigError::new(path, message));
    }
}

/// `[a-z0-9_-]+`: ids used in topics and file names.
fn is_id(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_' || b == b'-')
}

/// `[a-z0-9_]+`: point and hint names.
fn is_point_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
}

/// True when `name` can be a profile file name (`[a-z0-9_-]+`, no path).
pub fn is_profile_name(name: &str) -> bool {
    is_id(name)
}

fn check_id(errs: &mut Errors, path: &str, what: &str, id: &str) {
    if id.is_empty() {
        errs.push(
            path,
            format!("{what} is empty; use lowercase letters, digits, '-' and '_'"),
        );
    } else if !is_id(id) {
        errs.push(
            path,
            format!("{what} {id:?} may only contain lowercase letters, digits, '-' and '_'"),
        );
    }
}

/// `host:port` with a non-empty host (name, IPv4, or `[IPv6]`) and port 1–65535.
fn check_host_port(addr: &str) -> Result<(), String> {
    let Some((host, port)) = addr.rsplit_once(':') else {
        return Err(format!(
            "address {addr:?} must be host:port, e.g. \"192.168.1.20:502\""
        ));
    };
    let host_ok = if let Some(inner) = host.strip_prefix('[') {
        inner
            .strip_suffix(']')
            .is_some_and(|h| h.parse::<std::net::Ipv6Addr>().is_ok())
    } else {
        !host.is_empty()
            && !host.contains(':')
            && host
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'.' | b'-' | b'_'))
    };
    if !host_ok {
        return Err(format!(
            "address {addr:?} has an invalid host {host:?}; write a name, an IPv4 address or [IPv6]"
        ));
    }
    match port.parse::<u16>() {
        Ok(p) if p > 0 => Ok(()),
        _ => Err(format!(
            "address {addr:?} has an invalid port {port:?} (use 1–65535)"
        )),
    }
}

/// Checks `config` against the profiles and returns the resolved form, or
/// every error found (never just the first).
pub fn validate(
    config: &Config,
    profiles: &BTreeMap<String, Profile>,
) -> Result<Resolved, Vec<ConfigError>> {
    let mut errs = Errors::default();

    check_id(&mut errs, "site", "site id", &config.site);
    check_id(&mut errs, "gateway", "gateway id", &config.gateway);
    // The very parser the ledger, the reports and the command verifier use
    // at run time: a name that passes here is one `run` can use.
    if config.timezone.trim() != config.timezone
        || crate::ledger::parse_tz(&config.timezone).is_err()
    {
        errs.push(
            "timezone",
            format!(
                "{:?} is not an IANA time zone name (the time zone database has no such zone); write Area/City such as \"Asia/Shanghai\", or \"UTC\"",
                config.timezone
            ),
        );
    }
    if config.data_dir.trim().is_empty() {
        errs.push(
            "data_dir",
            "is empty; give the folder where the gateway keeps its state",
        );
    }
    if config.profiles_dir.trim().is_empty() {
        errs.push(
            "profiles_dir",
            "is empty; give the folder of device profiles",
        );
    }

    // Buses: always resolved (even with errors) so that indices match the file.
    let mut bus_index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut buses = Vec::with_capacity(config.buses.len());
    for (i, bus) in config.buses.iter().enumerate() {
        let path = entity_path("bus", i, &bus.id);
        check_id(&mut errs, &path, "bus id", &bus.id);
        if !bus.id.is_empty() {
            if let Some(first) = bus_index.get(bus.id.as_str()) {
                errs.push(
                    &path,
                    format!("duplicate bus id (first defined as bus[{first}])"),
                );
            } else {
                bus_index.insert(&bus.id, i);
            }
        }
        buses.push(resolve_bus(bus, &path, &mut errs));
    }

    // Profiles: checked once each.
    let mut prepared: BTreeMap<&str, Vec<Option<Point>>> = BTreeMap::new();
    for (name, profile) in profiles {
        prepared.insert(name, prepare_profile(name, profile, &mut errs));
    }

    let known = Known {
        config,
        buses: &buses,
        bus_index: &bus_index,
        profiles,
        prepared: &prepared,
    };
    let mut seen = Seen::default();
    let mut devices = Vec::new();
    // Devices whose points came out the same (same profile, same
    // overrides: the usual case for a building's many pumps or meters)
    // share one table: 500 devices of one profile hold one copy, not 500.
    let mut tables: BTreeMap<&str, Vec<std::sync::Arc<Vec<Point>>>> = BTreeMap::new();
    // Their display labels likewise (a few kB a device).
    let mut label_sets: BTreeMap<&str, Vec<std::sync::Arc<super::Labels>>> = BTreeMap::new();
    for (i, dev) in config.devices.iter().enumerate() {
        let mut resolved = resolve_device(i, dev, &known, &mut seen, &mut errs);
        let same = tables.entry(dev.profile.as_str()).or_default();
        match same.iter().find(|t| **t == resolved.points) {
            Some(t) => resolved.points = std::sync::Arc::clone(t),
            None => same.push(std::sync::Arc::clone(&resolved.points)),
        }
        let same = label_sets.entry(dev.profile.as_str()).or_default();
        match same.iter().find(|l| **l == resolved.labels) {
            Some(l) => resolved.labels = std::sync::Arc::clone(l),
            None => same.push(std::sync::Arc::clone(&resolved.labels)),
        }
        if dev.enabled {
            devices.push(resolved);
        }
    }

    for e in config
        .health
        .check()
        .into_iter()
        .chain(config.availability.check())
        .chain(config.tickets.check())
        .chain(config.mqtt.iter().flat_map(MqttConfig::check))
        .chain(config.outbox.check())
        .chain(config.store.check())
        .chain(config.influx.iter().flat_map(InfluxConfig::check))
        .chain(config.commands.iter().flat_map(CommandsConfig::check))
        .chain(config.writes.check())
        .chain(config.admin.check())
        .chain(
            config
                .alerts
                .iter()
                .flat_map(|a| a.check(&config.timezone, config.mqtt.is_some())),
        )
        .chain(super::check_maintenance(
            &config.maintenance,
            &config.timezone,
            &config
                .devices
                .iter()
                .map(|d| d.id.as_str())
                .collect::<Vec<_>>(),
        ))
    {
        errs.push(e.path, e.message);
    }

    if !errs.0.is_empty() {
        return Err(errs.0);
    }
    Ok(Resolved {
        site: config.site.clone(),
        gateway: config.gateway.clone(),
        timezone: config.timezone.clone(),
        data_dir: config.data_dir.clone(),
        buses,
        devices,
        raw: config.clone(),
    })
}

/// What device checks need to know about the rest of the file.
struct Known<'a> {
    config: &'a Config,
    buses: &'a [ResolvedBus],
    bus_index: &'a BTreeMap<&'a str, usize>,
    profiles: &'a BTreeMap<String, Profile>,
    prepared: &'a BTreeMap<&'a str, Vec<Option<Point>>>,
}

/// Device ids and (bus, unit) pairs seen so far, with their first owner.
#[derive(Default)]
struct Seen<'a> {
    devices: BTreeMap<&'a str, usize>,
    units: BTreeMap<(usize, u8), &'a str>,
}

/// Checks device `i` and resolves it (the result is only meaningful when
/// no error was recorded).
fn resolve_device<'a>(
    i: usize,
    dev: &'a super::DeviceConfig,
    known: &Known<'_>,
    seen: &mut Seen<'a>,
    errs: &mut Errors,
) -> ResolvedDevice {
    let path = entity_path("device", i, &dev.id);
    check_id(errs, &path, "device id", &dev.id);
    if !dev.id.is_empty() {
        if let Some(first) = seen.devices.get(dev.id.as_str()) {
            errs.push(
                &path,
                format!("duplicate device id (first defined as device[{first}])"),
            );
        } else {
            seen.devices.insert(&dev.id, i);
        }
    }
    if dev.name_zh.trim().is_empty() {
        errs.push(&path, "name_zh is empty; give the Chinese display name");
    }

    let bus = known.bus_index.get(dev.bus.as_str()).copied();
    match bus {
        None => {
            let ids: Vec<&str> = known.config.buses.iter().map(|b| b.id.as_str()).collect();
            let listed = if ids.is_empty() {
                "no bus is defined".to_owned()
            } else {
                format!("known: {}", ids.join(", "))
            };
            errs.push(&path, format!("unknown bus {:?} ({listed})", dev.bus));
        }
        Some(b) => {
            let kind = known.config.buses[b].kind;
            if kind != BusKind::Tcp && !(1..=247).contains(&dev.unit) {
                let msg = if dev.unit == 0 {
                    "unit id 0 is the broadcast address and cannot be polled on an RTU bus (use 1–247)".to_owned()
                } else {
                    format!("unit id {} is reserved on an RTU bus (use 1–247)", dev.unit)
                };
                errs.push(&path, msg);
            }
            if let Some(other) = seen.units.get(&(b, dev.unit)) {
                errs.push(
                    &path,
                    format!(
                        "unit id {} on bus {:?} is already used by device {other:?}",
                        dev.unit, dev.bus
                    ),
                );
            } else {
                seen.units.insert((b, dev.unit), &dev.id);
            }
        }
    }

    for (key, d) in [
        ("poll_interval", dev.poll_interval),
        ("alarm_interval", dev.alarm_interval),
    ] {
        if d.get() < MIN_INTERVAL {
            errs.push(&path, format!("{key} {d} is below the minimum of 10ms"));
        }
    }
    let bus_max_registers = bus.map_or(125, |b| known.buses[b].max_registers);
    let max_registers = match dev.max_registers {
        None => bus_max_registers,
        Some(m) => {
            if !(1..=125).contains(&m) {
                errs.push(&path, format!("max_registers {m} is outside 1..=125"));
            } else if m > bus_max_registers {
                errs.push(
                    &path,
                    format!(
                        "max_registers {m} exceeds the bus's max_registers of {bus_max_registers}"
                    ),
                );
            }
            m
        }
    };
    let max_bits = bus.map_or(2000, |b| known.buses[b].max_bits);
    let max_gap = dev
        .max_gap
        .unwrap_or_else(|| bus.map_or(0, |b| known.buses[b].max_gap));

    if !is_profile_name(&dev.profile) {
        errs.push(
            &path,
            format!(
                "profile name {:?} may only contain lowercase letters, digits, '-' and '_'",
                dev.profile
            ),
        );
    }
    let points = match (
        known.profiles.get(&dev.profile),
        known.prepared.get(dev.profile.as_str()),
    ) {
        (Some(profile), Some(prepared)) => {
            resolve_points(&path, dev, profile, prepared, max_registers, max_bits, errs)
        }
        _ => {
            if is_profile_name(&dev.profile) {
                let available: Vec<&str> = known.profiles.keys().map(String::as_str).collect();
                let available = if available.is_empty() {
                    "no profiles were loaded; check profiles_dir".to_owned()
                } else {
                    format!("available: {}", available.join(", "))
                };
                errs.push(
                    &path,
                    format!("profile {:?} not found ({available})", dev.profile),
                );
            }
            Vec::new()
        }
    };

    let health = merge_rules(&path, dev, known.profiles.get(&dev.profile), &points, errs);
    let writable = device_writable(&path, dev, known, &points, errs);
    if let Some(t) = dev.threshold
        && !(t.is_finite() && t > 0.0 && t <= 100.0)
    {
        errs.push(
            &path,
            format!(
                "threshold {t} is not a percentage; write e.g. 98 or 99.5 (0 < threshold ≤ 100)"
            ),
        );
    }
    let threshold_percent = known
        .config
        .availability
        .threshold_percent(dev.class, dev.threshold);

    ResolvedDevice {
        id: dev.id.clone(),
        name_zh: dev.name_zh.clone(),
        name_en: dev.name_en.clone().unwrap_or_else(|| dev.id.clone()),
        class: dev.class,
        location: dev.location.clone().unwrap_or_default(),
        location_en: dev
            .location_en
            .clone()
            .or_else(|| dev.location.clone())
            .unwrap_or_default(),
        labels: std::sync::Arc::new(device_labels(
            dev,
            known.profiles.get(&dev.profile),
            &points,
            &health,
        )),
        bus: bus.unwrap_or(0),
        unit: dev.unit,
        profile: dev.profile.clone(),
        poll_interval: dev.poll_interval.get(),
        alarm_interval: dev.alarm_interval.get(),
        max_gap,
        max_registers,
        max_bits,
        points: std::sync::Arc::new(points),
        health,
        threshold_percent,
        writable,
    }
}

/// The points of a device that may be written: none unless `[writes]
/// enabled`; then those its `writes` names (all for `true`) among the
/// points its profile marks `writable`. A named point that is not writable
/// (or not enabled) is an error whether writes are on or not, so that
/// turning them on later meets no surprise.
fn device_writable(
    path: &str,
    dev: &super::DeviceConfig,
    known: &Known<'_>,
    points: &[Point],
    errs: &mut Errors,
) -> BTreeSet<String> {
    let writable = |name: &str| points.iter().any(|p| p.name == name && p.write.is_some());
    let chosen: BTreeSet<String> = match &dev.writes {
        super::DeviceWrites::All(false) => BTreeSet::new(),
        super::DeviceWrites::All(true) => points
            .iter()
            .filter(|p| p.write.is_some())
            .map(|p| p.name.clone())
            .collect(),
        super::DeviceWrites::Points(names) => {
            let mut out = BTreeSet::new();
            for name in names {
                if writable(name) {
                    out.insert(name.clone());
                    continue;
                }
                let why = if points.iter().any(|p| &p.name == name) {
                    format!(
                        "is not writable in profile {:?}; mark it `writable = true` there (only coil and holding points)",
                        dev.profile
                    )
                } else {
                    format!("names no enabled point of profile {:?}", dev.profile)
                };
                errs.push(format!("{path} writes {name:?}"), why);
            }
            out
        }
    };
    if known.config.writes.enabled {
        chosen
    } else {
        BTreeSet::new()
    }
}

/// A profile point's `writable`, `write_min` and `write_max`: writable only
/// on a coil or holding point of a type a write can set (not text), the
/// range only on a writable point, finite and in order.
fn check_writable(path: &str, def: &PointDef, data_type: DataType, errs: &mut Errors) {
    if !def.writable {
        if def.write_min.is_some() || def.write_max.is_some() {
            errs.push(
                path,
                "write_min/write_max are set but the point is not `writable = true`",
            );
        }
        return;
    }
    if !matches!(def.area, Area::Coil | Area::Holding) {
        errs.push(
            path,
            format!(
                "a {} point cannot be written; only coil and holding points may be `writable`",
                def.area
            ),
        );
    }
    if matches!(data_type, DataType::String(_)) {
        errs.push(
            path,
            "a string point cannot be `writable`; writes set numbers and booleans",
        );
    }
    for (key, v) in [("write_min", def.write_min), ("write_max", def.write_max)] {
        if let Some(v) = v
            && !v.is_finite()
        {
            errs.push(path, format!("{key} {v} is not a finite number"));
        }
    }
    if let (Some(lo), Some(hi)) = (def.write_min, def.write_max)
        && lo > hi
    {
        errs.push(
            path,
            format!("write_min {lo} is above write_max {hi}; give write_min ≤ write_max"),
        );
    }
}

/// The labels of a device's enabled points and its rules: the profile's
/// (a device rule's own `label_zh` / `label_en` first), falling back as
/// [`super::Label::or_fallback`] says.
fn device_labels(
    dev: &super::DeviceConfig,
    profile: Option<&Profile>,
    points: &[Point],
    rules: &BTreeMap<String, Rule>,
) -> super::Labels {
    let def = |name: &str| profile.and_then(|p| p.points.iter().find(|d| d.name == name));
    let blank = |s: Option<&str>| s.is_none_or(|s| s.trim().is_empty());
    let mut missing = Vec::new();
    let points = points
        .iter()
        .map(|p| {
            let d = def(&p.name);
            if blank(d.and_then(|d| d.label_zh.as_deref()))
                || blank(d.and_then(|d| d.label_en.as_deref()))
            {
                missing.push(format!("point {}", p.name));
            }
            let l = super::Label::or_fallback(
                d.and_then(|d| d.label_zh.as_deref()),
                d.and_then(|d| d.label_en.as_deref()),
                &p.name,
            );
            (p.name.clone(), l)
        })
        .collect();
    let rules = rules
        .keys()
        .map(|name| {
            let own = dev.health.get(name);
            let prof = profile.and_then(|p| p.health.get(name));
            let pick = |f: fn(&super::RuleDef) -> Option<&String>| {
                own.and_then(f)
                    .or_else(|| prof.and_then(f))
                    .map(String::as_str)
            };
            if blank(pick(|r| r.label_zh.as_ref())) || blank(pick(|r| r.label_en.as_ref())) {
                missing.push(format!("rule {name}"));
            }
            let l = super::Label::or_fallback(
                pick(|r| r.label_zh.as_ref()),
                pick(|r| r.label_en.as_ref()),
                name,
            );
            (name.clone(), l)
        })
        .collect();
    super::Labels {
        points,
        rules,
        missing,
    }
}

/// The device's fault rules: the profile's `[health]` rules, changed by
/// the device's `health` entries of the same name (a condition text
/// replaces the condition and keeps the profile's hold; a table replaces
/// what it gives), added when new, removed by an empty string. Device
/// entries are checked here (profile rules are checked once per profile).
fn merge_rules(
    path: &str,
    dev: &super::DeviceConfig,
    profile: Option<&Profile>,
    points: &[Point],
    errs: &mut Errors,
) -> BTreeMap<String, Rule> {
    let mut rules: BTreeMap<String, Rule> = profile
        .map(|p| {
            p.health
                .iter()
                .filter_map(|(name, def)| {
                    def.when.as_ref().map(|w| {
                        (
                            name.clone(),
                            Rule {
                                when: w.clone(),
                                hold: def.hold.map(HumanDuration::get),
                            },
                        )
                    })
                })
                .collect()
        })
        .unwrap_or_default();
    for (name, def) in &dev.health {
        let rpath = format!("{path} health {name:?}");
        if !is_point_name(name) {
            errs.push(
                &rpath,
                "rule names use only lowercase letters, digits and '_'",
            );
        }
        if def.is_disable() {
            if rules.remove(name).is_none() {
                errs.push(
                    &rpath,
                    format!(
                        "an empty rule disables a profile rule, but profile {:?} has no rule {name:?}",
                        dev.profile
                    ),
                );
            }
            continue;
        }
        check_hold(&rpath, def.hold, errs);
        let when = match (&def.when, rules.get(name)) {
            (Some(w), _) => w.clone(),
            (None, Some(r)) => r.when.clone(),
            (None, None) => {
                errs.push(
                    &rpath,
                    format!(
                        "gives only `for`, but profile {:?} has no rule {name:?} whose condition it would keep; \
                         add `when = \"<condition>\"`",
                        dev.profile
                    ),
                );
                continue;
            }
        };
        if def.when.is_some() {
            if when.trim().is_empty() {
                errs.push(
                    &rpath,
                    "`when` is empty; give a condition, e.g. \"fault == true\"",
                );
                continue;
            }
            match Condition::parse(&when) {
                Err(e) => {
                    errs.push(&rpath, format!("{e} in {when:?}"));
                    continue;
                }
                Ok(cond) => {
                    for p in cond.points() {
                        if !points.is_empty() && !points.iter().any(|q| q.name == p) {
                            errs.push(
                                &rpath,
                                format!("condition {when:?} names an unknown point {p:?}"),
                            );
                        }
                    }
                }
            }
        }
        let hold = def
            .hold
            .map(HumanDuration::get)
            .or_else(|| rules.get(name).and_then(|r| r.hold));
        rules.insert(name.clone(), Rule { when, hold });
    }
    // Profile rules the device keeps must read points the device polls: a
    // point disabled on this device leaves such a rule unable to decide.
    if !points.is_empty() {
        for (name, rule) in &rules {
            if dev.health.get(name).is_some_and(|d| d.when.is_some()) {
                continue;
            }
            let Ok(cond) = Condition::parse(&rule.when) else {
                continue; // reported once, by the profile's own check
            };
            for p in cond.points() {
                if !points.iter().any(|q| q.name == p) {
                    errs.push(
                        format!("{path} health {name:?}"),
                        format!(
                            "profile {:?} rule {name:?} reads point {p:?}, which this device disables; \
                             enable the point or disable the rule with `health = {{ {name} = \"\" }}`",
                            dev.profile
                        ),
                    );
                }
            }
        }
    }
    rules
}

/// A rule's `for`: at most [`super::MAX_HOLD`].
fn check_hold(path: &str, hold: Option<HumanDuration>, errs: &mut Errors) {
    if let Some(h) = hold
        && h.get() > super::MAX_HOLD
    {
        errs.push(
            path,
            format!("`for = \"{h}\"` is longer than 24h; give a shorter hold, e.g. \"30s\""),
        );
    }
}

/// Checks one profile on its own (points, types, ranges, health hints):
/// every problem, with paths `profile "<name>" …`.
pub fn validate_profile(name: &str, profile: &Profile) -> Vec<ConfigError> {
    let mut errs = Errors::default();
    prepare_profile(name, profile, &mut errs);
    errs.0
}

/// The points of a profile on its own, as a device without overrides
/// would poll them (what `gateway scan --propose` compares devices with),
/// or every problem of the profile.
pub fn profile_points(name: &str, profile: &Profile) -> Result<Vec<Point>, Vec<ConfigError>> {
    let mut errs = Errors::default();
    let points = prepare_profile(name, profile, &mut errs);
    if errs.0.is_empty() {
        Ok(points.into_iter().flatten().collect())
    } else {
        Err(errs.0)
    }
}

/// `kind "id"`, or `kind[i]` when the id is empty.
fn entity_path(kind: &str, index: usize, id: &str) -> String {
    if id.is_empty() {
        format!("{kind}[{index}]")
    } else {
        format!("{kind} {id:?}")
    }
}

fn resolve_bus(bus: &BusConfig, path: &str, errs: &mut Errors) -> ResolvedBus {
    let tcp_like = matches!(bus.kind, BusKind::Tcp | BusKind::RtuOverTcp);
    let kind_name = match bus.kind {
        BusKind::Tcp => "tcp",
        BusKind::Rtu => "rtu",
        BusKind::RtuOverTcp => "rtu_over_tcp",
    };
    let target = if tcp_like {
        if bus.port.is_some() {
            errs.push(
                path,
                format!("a {kind_name} bus takes `address` (host:port), not `port`; remove `port`"),
            );
        }
        match &bus.address {
            None => {
                errs.push(
                    path,
                    format!("a {kind_name} bus needs `address = \"host:port\"`"),
                );
                String::new()
            }
            Some(a) => {
                if let Err(e) = check_host_port(a) {
                    errs.push(path, e);
                }
                a.clone()
            }
        }
    } else {
        if bus.address.is_some() {
            errs.push(
                path,
                "an rtu bus takes `port` (a serial device path), not `address`; for a serial device server use kind = \"rtu_over_tcp\"",
            );
        }
        match &bus.port {
            None => {
                errs.push(
                    path,
                    "an rtu bus needs `port`, the serial device path, e.g. \"/dev/ttyUSB0\"",
                );
                String::new()
            }
            Some(p) if p.trim().is_empty() => {
                errs.push(
                    path,
                    "port is empty; give the serial device path, e.g. \"/dev/ttyUSB0\"",
                );
                String::new()
            }
            Some(p) => p.clone(),
        }
    };
    if bus.baud == 0 {
        errs.push(path, "baud must be above 0 (typically 9600 or 19200)");
    }
    if !matches!(bus.stop_bits, 1 | 2) {
        errs.push(path, format!("stop_bits {} must be 1 or 2", bus.stop_bits));
    }
    if !matches!(bus.data_bits, 7 | 8) {
        errs.push(path, format!("data_bits {} must be 7 or 8", bus.data_bits));
    }
    let timeout = bus.timeout.get();
    if timeout.is_zero() {
        errs.push(path, "timeout must be above 0");
    } else if timeout > MAX_TIMEOUT {
        errs.push(
            path,
            format!("timeout {} exceeds the maximum of 60s", bus.timeout),
        );
    }
    let inter_frame_delay = match bus.inter_frame_delay {
        Some(d) => {
            if d.get() > MAX_INTER_FRAME_DELAY {
                errs.push(
                    path,
                    format!("inter_frame_delay {d} exceeds the maximum of 1s"),
                );
            }
            d.get()
        }
        None => {
            default_inter_frame_delay(bus.kind, bus.baud, bus.parity, bus.data_bits, bus.stop_bits)
        }
    };
    if !(1..=125).contains(&bus.max_registers) {
        errs.push(
            path,
            format!(
                "max_registers {} is outside 1..=125 (the Modbus limit)",
                bus.max_registers
            ),
        );
    }
    if !(1..=2000).contains(&bus.max_bits) {
        errs.push(
            path,
            format!(
                "max_bits {} is outside 1..=2000 (the Modbus limit)",
                bus.max_bits
            ),
        );
    }
    ResolvedBus {
        id: bus.id.clone(),
        kind: bus.kind,
        target,
        baud: bus.baud,
        parity: bus.parity,
        stop_bits: bus.stop_bits,
        data_bits: bus.data_bits,
        timeout,
        inter_frame_delay,
        max_registers: bus.max_registers,
        max_bits: bus.max_bits,
        max_gap: bus.max_gap,
    }
}

/// Checks scale/offset/min/max; shared by profile points and overrides.
fn check_numbers(
    path: &str,
    scale: f64,
    offset: f64,
    min: Option<f64>,
    max: Option<f64>,
    errs: &mut Errors,
) {
    if !scale.is_finite() || scale == 0.0 {
        errs.push(
            path,
            format!("scale {scale} must be a finite, non-zero number"),
        );
    }
    if !offset.is_finite() {
        errs.push(path, format!("offset {offset} must be a finite number"));
    }
    for (key, v) in [("min", min), ("max", max)] {
        if let Some(v) = v
            && !v.is_finite()
        {
            errs.push(path, format!("{key} {v} must be a finite number"));
        }
    }
    if let (Some(lo), Some(hi)) = (min, max)
        && lo > hi
    {
        errs.push(path, format!("min {lo} is above max {hi}"));
    }
}

/// The shortest per-point report-by-exception heartbeat accepted.
pub const MIN_HEARTBEAT: Duration = Duration::from_secs(1);

/// Checks a point's report-by-exception settings; shared by profile points
/// and overrides.
fn check_rbe(
    path: &str,
    data_type: DataType,
    deadband: Option<Deadband>,
    heartbeat: Option<HumanDuration>,
    errs: &mut Errors,
) {
    match deadband {
        Some(Deadband::Absolute(d)) if !(d.is_finite() && d >= 0.0) => errs.push(
            path,
            format!("deadband {d} must be a finite number ≥ 0 in the point's unit, e.g. 0.05"),
        ),
        Some(Deadband::Percent(p)) if !(p.is_finite() && (0.0..=100.0).contains(&p)) => errs.push(
            path,
            format!("deadband \"{p}%\" must be a percentage from 0 to 100, e.g. \"2%\""),
        ),
        Some(db)
            if matches!(
                data_type,
                DataType::Bool | DataType::Bit(_) | DataType::String(_)
            ) =>
        {
            errs.push(
                path,
                format!(
                    "deadband {db} applies to numbers only; a {} point is published on every change, remove the deadband",
                    data_type.name()
                ),
            );
        }
        _ => {}
    }
    if let Some(h) = heartbeat
        && h.get() < MIN_HEARTBEAT
    {
        errs.push(path, format!("heartbeat {h} is below the minimum of 1s"));
    }
}

/// Checks a profile; returns each point resolved at its profile address
/// (`None` for a point with errors, which are recorded).
fn prepare_profile(name: &str, profile: &Profile, errs: &mut Errors) -> Vec<Option<Point>> {
    let ppath = format!("profile {name:?}");
    if !is_profile_name(name) {
        errs.push(
            &ppath,
            "profile names may only contain lowercase letters, digits, '-' and '_'",
        );
    }
    if profile.points.is_empty() {
        errs.push(&ppath, "a profile needs at least one [[point]]");
    }
    let mut seen: BTreeMap<&str, usize> = BTreeMap::new();
    let mut out = Vec::with_capacity(profile.points.len());
    for (i, def) in profile.points.iter().enumerate() {
        let path = if def.name.is_empty() {
            format!("{ppath} point[{i}]")
        } else {
            format!("{ppath} point {:?}", def.name)
        };
        let mut ok = true;
        if !is_point_name(&def.name) {
            errs.push(
                &path,
                "point names must be non-empty and use only lowercase letters, digits and '_'",
            );
            ok = false;
        } else if let Some(first) = seen.get(def.name.as_str()) {
            errs.push(
                &path,
                format!("duplicate point name (first defined as point[{first}])"),
            );
            ok = false;
        } else {
            seen.insert(&def.name, i);
        }
        match point_type(def) {
            Ok(data_type) => {
                let end = u32::from(def.address) + u32::from(data_type.width());
                if end > 65536 {
                    errs.push(
                        &path,
                        format!(
                            "address {} + {} {} runs past the last address 65535",
                            def.address,
                            data_type.width(),
                            unit_word(def.area)
                        ),
                    );
                    ok = false;
                }
                let errors_before = errs.0.len();
                if let Some(kind) = def.ratio
                    && matches!(
                        data_type,
                        DataType::Bool | DataType::Bit(_) | DataType::String(_)
                    )
                {
                    errs.push(
                        &path,
                        format!(
                            "ratio = {:?} scales numbers only; a {} point cannot be behind a transformer, remove `ratio`",
                            kind.as_str(),
                            data_type.name()
                        ),
                    );
                }
                check_numbers(&path, def.scale, def.offset, def.min, def.max, errs);
                check_rbe(&path, data_type, def.deadband, def.heartbeat, errs);
                check_writable(&path, def, data_type, errs);
                ok &= errs.0.len() == errors_before;
                out.push(ok.then(|| Point {
                    name: def.name.clone(),
                    unit: def.unit.clone(),
                    area: def.area,
                    address: def.address,
                    data_type,
                    order: def.order.unwrap_or(profile.order),
                    scale: def.scale,
                    offset: def.offset,
                    min: def.min,
                    max: def.max,
                    alarm: def.alarm,
                    critical: def.critical,
                    deadband: def.deadband,
                    heartbeat: def.heartbeat.map(HumanDuration::get),
                    write: def.writable.then_some(WriteRange {
                        min: def.write_min,
                        max: def.write_max,
                    }),
                }));
            }
            Err(msg) => {
                errs.push(&path, msg);
                out.push(None);
            }
        }
    }
    check_overlaps(&ppath, profile, &out, errs);
    let names: BTreeSet<&str> = profile.points.iter().map(|p| p.name.as_str()).collect();
    for (hint, def) in &profile.health {
        let path = format!("{ppath} health {hint:?}");
        if !is_point_name(hint) {
            errs.push(
                &path,
                "health hint names use only lowercase letters, digits and '_'",
            );
        }
        check_hold(&path, def.hold, errs);
        let Some(text) = def.when.as_deref() else {
            errs.push(
                &path,
                "a profile rule needs its condition: `{ when = \"<condition>\", for = \"30s\" }`",
            );
            continue;
        };
        match Condition::parse(text) {
            Err(e) => errs.push(&path, format!("{e} in {text:?}")),
            Ok(cond) => {
                for p in cond.points() {
                    if !names.contains(p) {
                        errs.push(
                            &path,
                            format!("condition {text:?} names an unknown point {p:?}"),
                        );
                    }
                }
            }
        }
    }
    out
}

/// Two points of a profile that read the same register or bit are an
/// error (a copy-paste slip in an address is the usual cause, and the two
/// would silently show the same data), unless one names the other in
/// `alias_of`. Bit points on different bits of one register share the
/// register but not the data: no overlap. `points` are the prepared points
/// (`None` for those with errors already reported).
fn check_overlaps(ppath: &str, profile: &Profile, points: &[Option<Point>], errs: &mut Errors) {
    let names: BTreeMap<&str, usize> = profile
        .points
        .iter()
        .enumerate()
        .map(|(i, p)| (p.name.as_str(), i))
        .collect();
    for (i, def) in profile.points.iter().enumerate() {
        let Some(target) = &def.alias_of else {
            continue;
        };
        let path = format!("{ppath} point {:?}", def.name);
        match names.get(target.as_str()) {
            None => errs.push(&path, format!("alias_of names an unknown point {target:?}")),
            Some(&j) if j == i => errs.push(&path, "alias_of names the point itself"),
            Some(_) => {}
        }
    }
    let aliased = |a: usize, b: usize| {
        let named = |x: usize, y: usize| {
            profile.points[x].alias_of.as_deref() == Some(profile.points[y].name.as_str())
        };
        named(a, b) || named(b, a)
    };
    // (area, start, end exclusive, bit) of each valid point, by start.
    let mut spans: Vec<(Area, u32, u32, Option<u8>, usize)> = points
        .iter()
        .enumerate()
        .filter_map(|(i, p)| {
            let p = p.as_ref()?;
            let start = u32::from(p.address);
            let bit = match p.data_type {
                DataType::Bit(b) => Some(b),
                _ => None,
            };
            Some((
                p.area,
                start,
                start + u32::from(p.data_type.width()),
                bit,
                i,
            ))
        })
        .collect();
    spans.sort_by_key(|s| (s.0, s.1, s.4));
    for (k, &(area, start, end, bit, i)) in spans.iter().enumerate() {
        for &(area2, start2, _, bit2, j) in &spans[k + 1..] {
            if area2 != area || start2 >= end {
                break;
            }
            let distinct_bits = matches!((bit, bit2), (Some(a), Some(b)) if a != b);
            if distinct_bits || aliased(i, j) {
                continue;
            }
            let (first, second) = (&profile.points[i], &profile.points[j]);
            errs.push(
                format!("{ppath} point {:?}", second.name),
                format!(
                    "reads {} {} {start2}, which point {:?} (address {start}) reads too; fix the address, \
                     or write alias_of = {:?} if both are meant to read it",
                    area_word(area),
                    if area.is_bits() { "bit" } else { "register" },
                    first.name,
                    first.name
                ),
            );
        }
    }
}

/// The area's name as written in profiles.
fn area_word(area: Area) -> &'static str {
    match area {
        Area::Coil => "coil",
        Area::Discrete => "discrete",
        Area::Holding => "holding",
        Area::Input => "input",
    }
}

/// `registers` or `bits`, for messages.
fn unit_word(area: Area) -> &'static str {
    if area.is_bits() { "bits" } else { "registers" }
}

/// The data type of a point definition, or why it is invalid.
fn point_type(def: &PointDef) -> Result<DataType, String> {
    if def.length.is_some() && def.type_name != TypeName::String {
        return Err(format!(
            "`length` only applies to type \"string\", not {:?}",
            type_str(def.type_name)
        ));
    }
    if def.bit.is_some() && def.type_name != TypeName::Bit {
        return Err(format!(
            "`bit` only applies to type \"bit\", not {:?}",
            type_str(def.type_name)
        ));
    }
    if def.area.is_bits() && def.type_name != TypeName::Bool {
        return Err(format!(
            "a {} area holds single bits: the type must be \"bool\", not {:?}",
            def.area,
            type_str(def.type_name)
        ));
    }
    Ok(match def.type_name {
        TypeName::Bool => DataType::Bool,
        TypeName::Bit => match def.bit {
            None => return Err("type \"bit\" needs `bit` (0–15, 0 = least significant)".to_owned()),
            Some(b) if b > 15 => return Err(format!("bit {b} is outside 0–15")),
            Some(b) => DataType::Bit(b),
        },
        TypeName::U16 => DataType::U16,
        TypeName::I16 => DataType::I16,
        TypeName::U32 => DataType::U32,
        TypeName::I32 => DataType::I32,
        TypeName::U64 => DataType::U64,
        TypeName::I64 => DataType::I64,
        TypeName::F32 => DataType::F32,
        TypeName::F64 => DataType::F64,
        TypeName::String => match def.length {
            None | Some(0) => {
                return Err("type \"string\" needs `length` (bytes, at least 1)".to_owned());
            }
            Some(n) => DataType::String(n),
        },
    })
}

fn type_str(t: TypeName) -> &'static str {
    match t {
        TypeName::Bool => "bool",
        TypeName::Bit => "bit",
        TypeName::U16 => "u16",
        TypeName::I16 => "i16",
        TypeName::U32 => "u32",
        TypeName::I32 => "i32",
        TypeName::U64 => "u64",
        TypeName::I64 => "i64",
        TypeName::F32 => "f32",
        TypeName::F64 => "f64",
        TypeName::String => "string",
    }
}

/// Applies a device's overrides, order and offset to its profile's points.
fn resolve_points(
    dpath: &str,
    dev: &super::DeviceConfig,
    profile: &Profile,
    prepared: &[Option<Point>],
    max_registers: u16,
    max_bits: u16,
    errs: &mut Errors,
) -> Vec<Point> {
    for name in dev.points.keys() {
        if !profile.points.iter().any(|p| &p.name == name) {
            errs.push(
                format!("{dpath} point {name:?}"),
                format!("override names no point of profile {:?}", dev.profile),
            );
        }
    }
    let (ct, pt) = check_ratios(dpath, dev, profile, errs);
    let mut points = Vec::with_capacity(prepared.len());
    // Points whose address a device override moved: they are checked for
    // overlaps on this device (the profile's own overlaps are checked once
    // per profile).
    let mut moved = false;
    for (def, point) in profile.points.iter().zip(prepared) {
        let Some(point) = point else { continue };
        let path = format!("{dpath} point {:?}", point.name);
        let mut p = point.clone();
        if def.order.is_none()
            && let Some(order) = dev.order
        {
            p.order = order;
        }
        let o = dev.points.get(&p.name);
        if o.is_some_and(|o| o.enabled == Some(false)) {
            continue;
        }
        if let Some(o) = o {
            p.scale = o.scale.unwrap_or(p.scale);
            p.offset = o.offset.unwrap_or(p.offset);
        }
        // Transformer ratios: the value (unless the device reports primary
        // values itself), the profile's range and an absolute deadband.
        // A device's own min/max/deadband below are taken as written: they
        // are in the primary-side unit already.
        if let Some(kind) = def.ratio {
            let k = kind.factor(ct, pt);
            if !profile.primary_values {
                p.scale *= k;
                p.offset *= k;
            }
            p.min = p.min.map(|v| v * k);
            p.max = p.max.map(|v| v * k);
            if let Some(Deadband::Absolute(d)) = p.deadband {
                p.deadband = Some(Deadband::Absolute(d * k));
            }
        }
        if let Some(o) = o {
            p.unit = o.unit.clone().unwrap_or(p.unit);
            p.min = o.min.or(p.min);
            p.max = o.max.or(p.max);
            p.alarm = o.alarm.unwrap_or(p.alarm);
            p.critical = o.critical.unwrap_or(p.critical);
            p.order = o.order.unwrap_or(p.order);
            p.deadband = o.deadband.or(p.deadband);
            p.heartbeat = o.heartbeat.map(HumanDuration::get).or(p.heartbeat);
            check_numbers(&path, p.scale, p.offset, p.min, p.max, errs);
            check_rbe(&path, p.data_type, o.deadband, o.heartbeat, errs);
        }
        let width = p.width();
        let limit = p.area.protocol_max();
        let words = unit_word(p.area);
        if width > limit {
            errs.push(
                &path,
                format!("{width} {words} exceed the Modbus limit of {limit}"),
            );
        } else if p.area.is_bits() && width > max_bits {
            errs.push(
                &path,
                format!("{width} {words} exceed this bus's max_bits of {max_bits}"),
            );
        } else if !p.area.is_bits() && width > max_registers {
            errs.push(
                &path,
                format!("{width} {words} exceed this device's max_registers of {max_registers}"),
            );
        }
        if let Some(address) = o.and_then(|o| o.address) {
            moved = true;
            let end = u32::from(address) + u32::from(width);
            if end > 65536 {
                errs.push(
                    &path,
                    format!("address {address} + {width} {words} runs past the last address 65535"),
                );
                continue;
            }
            p.address = address;
            points.push(p);
            continue;
        }
        let start = i64::from(p.address) + i64::from(dev.address_offset);
        let end = start + i64::from(width);
        match u16::try_from(start) {
            Ok(a) if end <= 65536 => p.address = a,
            _ => {
                errs.push(
                    &path,
                    format!(
                        "address {} with address_offset {} gives {start}..{end}, outside the Modbus range 0..65536",
                        point.address, dev.address_offset
                    ),
                );
                continue;
            }
        }
        points.push(p);
    }
    if moved {
        check_moved_overlaps(dpath, dev, profile, &points, errs);
    }
    points
}

/// The largest CT or PT ratio accepted (a 50 000/1 A CT is beyond any
/// building's switchboard; a typo such as 2000000 is caught).
pub const MAX_RATIO: f64 = 100_000.0;

/// Checks a device's `ct_ratio` / `pt_ratio` against its profile; returns
/// the factors to use (1 when not given or invalid).
fn check_ratios(
    dpath: &str,
    dev: &super::DeviceConfig,
    profile: &Profile,
    errs: &mut Errors,
) -> (f64, f64) {
    use super::RatioKind;
    let uses = |want: RatioKind| {
        profile
            .points
            .iter()
            .any(|p| p.ratio == Some(want) || p.ratio == Some(RatioKind::CtPt))
    };
    let mut factor = |key: &str, value: Option<f64>, used: bool, what: &str| -> f64 {
        let Some(v) = value else { return 1.0 };
        if !(v.is_finite() && v > 0.0 && v <= MAX_RATIO) {
            errs.push(
                dpath,
                format!(
                    "{key} {v} must be a number above 0 and at most {MAX_RATIO} \
                     (primary ÷ secondary, e.g. 200 for a {what})"
                ),
            );
            return 1.0;
        }
        if !used {
            errs.push(
                dpath,
                format!(
                    "{key} is set but profile {:?} marks no point with ratio = \"{}\" or \"ct_pt\"; \
                     remove {key}, or mark the profile's points",
                    dev.profile,
                    &key[..2]
                ),
            );
        }
        v
    };
    let ct = factor("ct_ratio", dev.ct_ratio, uses(RatioKind::Ct), "1000/5 A CT");
    let pt = factor(
        "pt_ratio",
        dev.pt_ratio,
        uses(RatioKind::Pt),
        "10 kV/100 V PT",
    );
    if profile.requires_ct_ratio && dev.ct_ratio.is_none() {
        errs.push(
            dpath,
            format!(
                "profile {:?} reads a CT-connected meter whose ranges follow its CTs: \
                 give ct_ratio (primary ÷ secondary as programmed into the meter, e.g. 200 for 1000/5 A)",
                dev.profile
            ),
        );
    }
    (ct, pt)
}

/// After a device moved points with an `address` override: two of its
/// points reading the same register or bit are an error, as in a profile.
fn check_moved_overlaps(
    dpath: &str,
    dev: &super::DeviceConfig,
    profile: &Profile,
    points: &[Point],
    errs: &mut Errors,
) {
    let aliased = |a: &str, b: &str| {
        let alias = |x: &str| {
            profile
                .points
                .iter()
                .find(|p| p.name == x)
                .and_then(|p| p.alias_of.as_deref())
        };
        alias(a) == Some(b) || alias(b) == Some(a)
    };
    let bit = |p: &Point| match p.data_type {
        DataType::Bit(b) => Some(b),
        _ => None,
    };
    for (i, a) in points.iter().enumerate() {
        for b in &points[i + 1..] {
            if a.area != b.area {
                continue;
            }
            let (a0, b0) = (u32::from(a.address), u32::from(b.address));
            let overlap = a0 < b0 + u32::from(b.width()) && b0 < a0 + u32::from(a.width());
            let distinct_bits = matches!((bit(a), bit(b)), (Some(x), Some(y)) if x != y);
            if !overlap || distinct_bits || aliased(&a.name, &b.name) {
                continue;
            }
            // Name the point the device moved, so the message points at the override.
            let (moved, other) = if dev.points.get(&b.name).is_some_and(|o| o.address.is_some()) {
                (b, a)
            } else {
                (a, b)
            };
            errs.push(
                format!("{dpath} point {:?}", moved.name),
                format!(
                    "address {} on this device reads {} {} {}, which point {:?} (address {}) reads too; fix the address override",
                    moved.address,
                    area_word(moved.area),
                    if moved.area.is_bits() { "bit" } else { "register" },
                    other.address.max(moved.address),
                    other.name,
                    other.address
                ),
            );
        }
    }
}
