//! The `[simulator]` section: how `gateway simulate` serves the building.
//!
//! The simulator reads the same file as the gateway: it serves every bus of
//! the file (TCP buses on their `address`, RTU buses on a pseudo-terminal
//! symlinked at their `port`) with the devices configured on it. This
//! section only adds what the gateway does not need: a seed, wire timing,
//! the control interface, per-device quirks and scripted faults.
//!
//! Faults have one shape in the file and on the control interface
//! ([`FaultConfig`]); [`FaultConfig::spec`] turns it into the typed
//! [`FaultSpec`] and says what is missing when a field a fault needs is
//! absent. [`SimulatorConfig::check`] collects every problem of the section
//! (unknown device, missing field) with its path, like the main validator.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::ConfigError;
use crate::HumanDuration;

/// How the simulator serves this configuration's buses (see `docs/simulator.md`).
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorConfig {
    /// Seed of the random wander of values; the same seed and the same
    /// sequence of ticks give the same values. Absent = seeded from the clock.
    #[serde(default)]
    pub seed: Option<u64>,
    /// Delay RTU answers (on `rtu` and `rtu_over_tcp` buses) by their real
    /// duration on the wire at the bus baud rate, so throughput is honest.
    #[serde(default)]
    pub wire_time: bool,
    /// How often device behaviours advance (pumps ramp, meters count energy).
    #[serde(default = "default_tick")]
    pub tick: HumanDuration,
    /// Loopback address of the HTTP control interface; port 0 picks a free one.
    #[serde(default = "default_control")]
    pub control: String,
    /// Default for every device: answer exception 2 (illegal data address)
    /// for registers inside the device's span that no point maps, instead of
    /// reading them as 0. Per-device override in `[simulator.device.<id>]`.
    #[serde(default)]
    pub strict_holes: bool,
    /// Per-bus serving options, by bus id.
    #[serde(default)]
    pub bus: BTreeMap<String, SimBusConfig>,
    /// Per-device simulation options, by device id.
    #[serde(default)]
    pub device: BTreeMap<String, SimDeviceConfig>,
    /// Faults injected at a time offset from the simulator's start.
    #[serde(default)]
    pub scenario: Vec<ScenarioConfig>,
}

/// The same defaults as an empty `[simulator]` section (a file without the
/// section at all must behave like one with an empty section).
impl Default for SimulatorConfig {
    fn default() -> Self {
        Self {
            seed: None,
            wire_time: false,
            tick: default_tick(),
            control: default_control(),
            strict_holes: false,
            bus: BTreeMap::new(),
            device: BTreeMap::new(),
            scenario: Vec::new(),
        }
    }
}

fn default_tick() -> HumanDuration {
    HumanDuration::from_millis(500)
}

fn default_control() -> String {
    "127.0.0.1:0".to_owned()
}

/// Serving options of one bus.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimBusConfig {
    /// `tcp`/`rtu_over_tcp`: listen here instead of the bus `address`
    /// (e.g. `0.0.0.0:502` while the gateway connects to a LAN address).
    #[serde(default)]
    pub listen: Option<String>,
    /// `rtu`: serve on this real serial port (e.g. a USB adapter looped to the
    /// gateway's) instead of creating a pseudo-terminal.
    #[serde(default)]
    pub serial: Option<String>,
    /// `rtu`: where to symlink the pseudo-terminal instead of the bus `port`.
    #[serde(default)]
    pub link: Option<String>,
}

/// Simulation options of one device.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimDeviceConfig {
    /// Overrides `[simulator] strict_holes` for this device.
    #[serde(default)]
    pub strict_holes: Option<bool>,
}

/// Fault names accepted in `fault = "…"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Deserialize, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum FaultName {
    /// The device stays silent: the master times out.
    NoResponse,
    /// Every request is answered with exception `code`.
    Exception,
    /// Answers come `delay` late.
    Slow,
    /// RTU: the answer's CRC is wrong. TCP has no CRC: treated as `garbage`.
    CorruptCrc,
    /// Random bytes are sent instead of the answer.
    Garbage,
    /// The device's fault point (or `point`) reads as active.
    FaultBit,
    /// `point` reads outside its `min`/`max` (or `value`).
    OutOfRange,
    /// TCP: the connection is closed on the next request. RTU on a serial
    /// line cannot be closed: treated as `no_response`.
    ConnectionReset,
}

impl FaultName {
    /// The configuration name (`snake_case`).
    pub const fn as_str(self) -> &'static str {
        match self {
            FaultName::NoResponse => "no_response",
            FaultName::Exception => "exception",
            FaultName::Slow => "slow",
            FaultName::CorruptCrc => "corrupt_crc",
            FaultName::Garbage => "garbage",
            FaultName::FaultBit => "fault_bit",
            FaultName::OutOfRange => "out_of_range",
            FaultName::ConnectionReset => "connection_reset",
        }
    }
}

/// One fault as written: in `[[simulator.scenario]]` or as the JSON body of
/// `POST /faults` on the control interface.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct FaultConfig {
    /// Device id the fault applies to.
    pub device: String,
    /// What goes wrong.
    pub fault: FaultName,
    /// When it starts, after the simulator's start (scenario) or after the
    /// request (control interface). Default: at once.
    #[serde(default)]
    pub start: Option<HumanDuration>,
    /// How long it lasts. Default: until cleared.
    #[serde(default)]
    pub duration: Option<HumanDuration>,
    /// `exception`: the exception code (1–255; 2 = illegal data address,
    /// 4 = server device failure, 6 = busy, 11 = gateway target failed).
    #[serde(default)]
    pub code: Option<u8>,
    /// `slow`: how late answers come.
    #[serde(default)]
    pub delay: Option<HumanDuration>,
    /// `fault_bit`: the point to set (default: the device's first alarm bit,
    /// critical first). `out_of_range`: the point to push out of range.
    #[serde(default)]
    pub point: Option<String>,
    /// `out_of_range`: the value to show (default: 10 % beyond `max`, or
    /// below `min` when the point has no `max`).
    #[serde(default)]
    pub value: Option<f64>,
}

/// A scripted fault in `[[simulator.scenario]]`.
pub type ScenarioConfig = FaultConfig;

/// A fault with the fields it needs, checked.
#[derive(Clone, Debug, PartialEq, Serialize)]
#[serde(rename_all = "snake_case", tag = "fault")]
pub enum FaultSpec {
    /// Stay silent.
    NoResponse,
    /// Answer exception `code`.
    Exception {
        /// Modbus exception code.
        code: u8,
    },
    /// Answer late.
    Slow {
        /// Extra delay before the answer.
        #[serde(with = "millis")]
        delay: Duration,
    },
    /// Flip the CRC (RTU) / send garbage (TCP).
    CorruptCrc,
    /// Send random bytes instead of the answer.
    Garbage,
    /// Force a fault point active.
    FaultBit {
        /// Point name; `None` = the device's first alarm bit.
        point: Option<String>,
    },
    /// Force a point outside its range.
    OutOfRange {
        /// Point name.
        point: String,
        /// Value to show; `None` = 10 % beyond the range.
        value: Option<f64>,
    },
    /// Close the TCP connection on the next request.
    ConnectionReset,
}

mod millis {
    use std::time::Duration;

    use serde::Serializer;

    pub(super) fn serialize<S: Serializer>(d: &Duration, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&crate::HumanDuration(*d).to_string())
    }
}

impl FaultConfig {
    /// The typed fault, or what is missing (e.g. `exception` without `code`).
    pub fn spec(&self) -> Result<FaultSpec, String> {
        Ok(match self.fault {
            FaultName::NoResponse => FaultSpec::NoResponse,
            FaultName::Exception => match self.code {
                Some(code) if code > 0 && code < 0x80 => FaultSpec::Exception { code },
                Some(code) => {
                    return Err(format!(
                        "exception code {code} is not valid; use 1..=127 (e.g. 2 illegal data address, 4 server device failure)"
                    ));
                }
                None => return Err("fault \"exception\" needs `code` (e.g. code = 4)".to_owned()),
            },
            FaultName::Slow => match self.delay {
                Some(d) => FaultSpec::Slow { delay: d.get() },
                None => return Err("fault \"slow\" needs `delay` (e.g. delay = \"2s\")".to_owned()),
            },
            FaultName::CorruptCrc => FaultSpec::CorruptCrc,
            FaultName::Garbage => FaultSpec::Garbage,
            FaultName::FaultBit => FaultSpec::FaultBit {
                point: self.point.clone(),
            },
            FaultName::OutOfRange => match &self.point {
                Some(p) => FaultSpec::OutOfRange {
                    point: p.clone(),
                    value: self.value,
                },
                None => {
                    return Err(
                        "fault \"out_of_range\" needs `point` (the point to push out of range)"
                            .to_owned(),
                    );
                }
            },
            FaultName::ConnectionReset => FaultSpec::ConnectionReset,
        })
    }
}

impl SimulatorConfig {
    /// Checks the section against the configured bus and device ids and
    /// returns every problem found (empty = fine). `file` prefixes paths.
    pub fn check(&self, file: &str, bus_ids: &[&str], device_ids: &[&str]) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut err = |path: String, message: String| {
            errors.push(ConfigError {
                path: if file.is_empty() {
                    path
                } else {
                    format!("{file}: {path}")
                },
                message,
            });
        };
        if self.tick.get().is_zero() {
            err(
                "simulator.tick".to_owned(),
                "must be longer than 0 (e.g. \"500ms\")".to_owned(),
            );
        }
        if self.control.parse::<std::net::SocketAddr>().is_err() {
            err(
                "simulator.control".to_owned(),
                format!(
                    "{:?} is not an IP:port address (e.g. \"127.0.0.1:0\")",
                    self.control
                ),
            );
        }
        for (id, bus) in &self.bus {
            if !bus_ids.contains(&id.as_str()) {
                err(
                    format!("simulator.bus \"{id}\""),
                    format!("no bus has id {id:?}; known: {}", bus_ids.join(", ")),
                );
            }
            if let Some(listen) = &bus.listen
                && listen.parse::<std::net::SocketAddr>().is_err()
            {
                err(
                    format!("simulator.bus \"{id}\".listen"),
                    format!("{listen:?} is not an IP:port address (e.g. \"0.0.0.0:502\")"),
                );
            }
        }
        for id in self.device.keys() {
            if !device_ids.contains(&id.as_str()) {
                err(
                    format!("simulator.device \"{id}\""),
                    format!("no device has id {id:?}"),
                );
            }
        }
        for (i, s) in self.scenario.iter().enumerate() {
            let path = format!(
                "simulator.scenario[{i}] (device \"{}\", {})",
                s.device,
                s.fault.as_str()
            );
            if !device_ids.contains(&s.device.as_str()) {
                err(path.clone(), format!("no device has id {:?}", s.device));
            }
            if let Err(e) = s.spec() {
                err(path, e);
            }
        }
        errors
    }

    /// Whether `device` answers exception 2 for unmapped registers.
    pub fn strict_holes_for(&self, device: &str) -> bool {
        self.device
            .get(device)
            .and_then(|d| d.strict_holes)
            .unwrap_or(self.strict_holes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Deserialize)]
    struct File {
        simulator: SimulatorConfig,
    }

    #[test]
    fn a_missing_section_has_the_same_defaults_as_an_empty_one() {
        let empty: SimulatorConfig = toml::from_str("").unwrap();
        let missing = SimulatorConfig::default();
        assert_eq!(empty.tick, missing.tick);
        assert_eq!(empty.control, missing.control);
        assert!(missing.check("", &[], &[]).is_empty());
    }

    #[test]
    fn parses_a_full_section_and_checks_it_clean() {
        let text = r#"
            [simulator]
            seed = 7
            wire_time = true
            tick = "250ms"
            control = "127.0.0.1:0"
            [simulator.bus.rs485-1]
            link = "/tmp/x/ttyA"
            [simulator.device.meter-main]
            strict_holes = true
            [[simulator.scenario]]
            device = "pump-1"
            fault = "exception"
            code = 4
            start = "10s"
            duration = "30s"
        "#;
        let f: File = toml::from_str(text).unwrap();
        let s = f.simulator;
        assert_eq!(s.seed, Some(7));
        assert!(s.strict_holes_for("meter-main"));
        assert!(!s.strict_holes_for("pump-1"));
        assert_eq!(
            s.scenario[0].spec().unwrap(),
            FaultSpec::Exception { code: 4 }
        );
        assert!(
            s.check("demo.toml", &["rs485-1"], &["pump-1", "meter-main"])
                .is_empty()
        );
    }

    #[test]
    fn check_reports_every_problem_with_its_path() {
        let text = r#"
            [simulator]
            [[simulator.scenario]]
            device = "nope"
            fault = "slow"
            [[simulator.scenario]]
            device = "pump-1"
            fault = "out_of_range"
        "#;
        let f: File = toml::from_str(text).unwrap();
        let errors = f.simulator.check("demo.toml", &[], &["pump-1"]);
        assert_eq!(errors.len(), 3, "{errors:?}");
        assert!(errors[0].path.contains("scenario[0]"));
        assert!(errors[1].message.contains("delay"));
        assert!(errors[2].message.contains("point"));
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = toml::from_str::<File>("[simulator]\nwire_tme = true\n")
            .err()
            .unwrap();
        assert!(err.to_string().contains("wire_tme"), "{err}");
    }
}
