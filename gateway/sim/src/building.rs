//! The simulated building's shared state: every device's registers and
//! model, the active faults, and the rules for answering one request.
//!
//! One `Building` sits behind a `std::sync::Mutex` shared by the servers,
//! the tick task and the control interface. Every method is synchronous and
//! short; no lock is ever held across an `.await`. Time comes in as a tokio
//! [`Instant`], so the whole building runs on a paused clock in tests.
//!
//! Answering ([`Building::serve`]): an unknown unit id stays silent (as on a
//! real line); the device's transport faults decide between silence, a
//! reset, an exception, a mangled or a delayed answer; otherwise the request
//! is executed against the bank. Writes are accepted only for points the
//! behaviour declares writable (others: exception 2) and are passed to the
//! model, so a fan coil's new setpoint steers its room temperature.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use gateway_core::config::{FaultConfig, FaultSpec, Resolved};
use gateway_core::model::{Area, DataType, Quality, Value};
use rand::rngs::StdRng;
use rand::{Rng, SeedableRng};
use serde::Serialize;
use tokio::time::Instant;

use crate::bank::Bank;
use crate::behaviour::{self, Behaviour, SiteTime, Writer};
use crate::error::SimError;
use crate::faults::{Effect, FaultId, FaultInfo, Faults, Force, Mangle};
use crate::frame::{self, ILLEGAL_DATA_ADDRESS, Request};

/// How to answer one request.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Answer {
    /// Say nothing.
    Silent,
    /// Close the connection (TCP); silence on a serial line.
    Reset,
    /// Send this PDU after `delay`, mangled as told.
    Reply {
        /// The answer PDU.
        pdu: Vec<u8>,
        /// Extra delay (the `slow` fault).
        delay: Duration,
        /// What to do to the bytes.
        mangle: Mangle,
    },
}

/// A point's current value, for the control interface.
#[derive(Clone, Debug, Serialize)]
pub struct PointValue {
    /// Point name.
    pub name: String,
    /// Decoded value (as the gateway would decode it).
    pub value: Option<Value>,
    /// Its quality (out of range while an `out_of_range` fault acts).
    pub quality: Quality,
    /// Engineering unit.
    pub unit: String,
    /// Held by the control interface until released.
    pub held: bool,
}

/// A device, for the control interface.
#[derive(Clone, Debug, Serialize)]
pub struct DeviceInfo {
    /// Device id.
    pub id: String,
    /// Bus id.
    pub bus: String,
    /// Unit id.
    pub unit: u8,
    /// Profile name.
    pub profile: String,
}

#[derive(Debug)]
struct SimDevice {
    id: String,
    bus: usize,
    unit: u8,
    profile: String,
    bank: Bank,
    behaviour: Box<dyn Behaviour>,
    rng: StdRng,
    held: BTreeMap<usize, Value>,
    /// Register reads answered so far (for churn).
    reads: u16,
}

/// Every simulated device, its faults and the site clock.
#[derive(Debug)]
pub struct Building {
    devices: Vec<SimDevice>,
    bus_ids: Vec<String>,
    by_addr: HashMap<(usize, u8), usize>,
    by_id: HashMap<String, usize>,
    faults: Faults,
    rng: StdRng,
    started: Instant,
    start_unix_ms: i64,
    utc_offset_s: i32,
    last_tick: Instant,
    /// Every register read changes every register (see [`Building::set_churn`]).
    churn: bool,
}

impl Building {
    /// Builds every device of `resolved` with its behaviour; values are
    /// rendered at once, so the first request already reads plausible data.
    pub fn new(resolved: &Resolved, seed: u64, start_unix_ms: i64, now: Instant) -> Self {
        let sim = &resolved.raw.simulator;
        let utc_offset_s = behaviour::utc_offset_of(&resolved.timezone).unwrap_or_else(|| {
            tracing::warn!(timezone = %resolved.timezone, "unknown time zone, simulating at UTC+8");
            8 * 3600
        });
        let mut devices = Vec::with_capacity(resolved.devices.len());
        let mut by_addr = HashMap::new();
        let mut by_id = HashMap::new();
        for (i, d) in resolved.devices.iter().enumerate() {
            let mut rng =
                StdRng::seed_from_u64(seed ^ (i as u64 + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
            let behaviour = behaviour::for_profile(&d.profile, &d.id, &d.points, &mut rng);
            by_addr.insert((d.bus, d.unit), i);
            by_id.insert(d.id.clone(), i);
            devices.push(SimDevice {
                id: d.id.clone(),
                bus: d.bus,
                unit: d.unit,
                profile: d.profile.clone(),
                bank: Bank::new(&d.points, sim.strict_holes_for(&d.id)),
                behaviour,
                rng,
                held: BTreeMap::new(),
                reads: 0,
            });
        }
        let mut building = Self {
            devices,
            bus_ids: resolved.buses.iter().map(|b| b.id.clone()).collect(),
            by_addr,
            by_id,
            faults: Faults::default(),
            rng: StdRng::seed_from_u64(seed),
            started: now,
            start_unix_ms,
            utc_offset_s,
            last_tick: now,
            churn: false,
        };
        let site = building.site_time(now);
        for d in &mut building.devices {
            d.behaviour.step(site, 0.0, &mut d.rng);
        }
        for i in 0..building.devices.len() {
            building.refresh(i, now);
        }
        building
    }

    /// Churn: each holding or input register read answers the model's
    /// value plus the device's count of reads (wrapping), so that every
    /// register changes at every poll. For load runs of the publish path
    /// (report by exception then sends every value); the bank and the
    /// model are untouched.
    pub fn set_churn(&mut self, on: bool) {
        self.churn = on;
    }

    fn site_time(&self, now: Instant) -> SiteTime {
        let elapsed = i64::try_from(now.saturating_duration_since(self.started).as_millis())
            .unwrap_or(i64::MAX);
        SiteTime {
            unix_ms: self.start_unix_ms.saturating_add(elapsed),
            utc_offset_s: self.utc_offset_s,
        }
    }

    /// Advances every device's model to `now` and re-renders its values.
    pub fn tick(&mut self, now: Instant) {
        let dt = now.saturating_duration_since(self.last_tick).as_secs_f64();
        self.last_tick = now;
        self.faults.prune(now);
        let site = self.site_time(now);
        for i in 0..self.devices.len() {
            let d = &mut self.devices[i];
            d.behaviour.step(site, dt, &mut d.rng);
            self.refresh(i, now);
        }
    }

    /// Renders device `i`: model, then held values, then fault forces.
    fn refresh(&mut self, i: usize, now: Instant) {
        let d = &mut self.devices[i];
        d.behaviour.render(&mut Writer::new(&mut d.bank));
        for (&p, v) in &d.held {
            let _ = d.bank.set(p, v);
        }
        for force in self.faults.forces(i, now) {
            if let Err(error) = d.bank.set(force.point, &force.value) {
                tracing::warn!(device = %d.id, %error, "fault value not stored");
            }
        }
    }

    /// How device `unit` on bus `bus` answers `pdu`.
    pub fn serve(&mut self, bus: usize, unit: u8, pdu: &[u8], now: Instant) -> Answer {
        let Some(&i) = self.by_addr.get(&(bus, unit)) else {
            return Answer::Silent;
        };
        let effect: Effect = self.faults.effect(i, now);
        if effect.reset {
            return Answer::Reset;
        }
        if effect.silent {
            return Answer::Silent;
        }
        let function = pdu.first().copied().unwrap_or(0);
        let pdu = match effect.exception {
            Some(code) => frame::exception_answer(function, code).to_vec(),
            None => match self.execute(i, pdu) {
                Ok(pdu) => pdu,
                Err(code) => frame::exception_answer(function, code).to_vec(),
            },
        };
        Answer::Reply {
            pdu,
            delay: effect.delay,
            mangle: effect.mangle,
        }
    }

    fn execute(&mut self, i: usize, pdu: &[u8]) -> Result<Vec<u8>, u8> {
        let req = frame::parse_request(pdu)?;
        let d = &mut self.devices[i];
        match &req {
            Request::ReadBits {
                area,
                address,
                count,
            } => {
                let bits: Vec<bool> = d
                    .bank
                    .read(*area, *address, *count)?
                    .iter()
                    .map(|v| *v != 0)
                    .collect();
                Ok(frame::bits_answer(req.function(), &bits))
            }
            Request::ReadRegisters {
                area,
                address,
                count,
            } => {
                let regs = d.bank.read(*area, *address, *count)?;
                if self.churn {
                    d.reads = d.reads.wrapping_add(1);
                    let n = d.reads;
                    let churned: Vec<u16> = regs.iter().map(|r| r.wrapping_add(n)).collect();
                    Ok(frame::registers_answer(req.function(), &churned))
                } else {
                    Ok(frame::registers_answer(req.function(), regs))
                }
            }
            Request::WriteCoil { address, value } => {
                self.write(i, Area::Coil, *address, &[u16::from(*value)], &req)
            }
            Request::WriteRegister { address, value } => {
                self.write(i, Area::Holding, *address, &[*value], &req)
            }
            Request::WriteCoils { address, values } => {
                let v: Vec<u16> = values.iter().map(|b| u16::from(*b)).collect();
                self.write(i, Area::Coil, *address, &v, &req)
            }
            Request::WriteRegisters { address, values } => {
                self.write(i, Area::Holding, *address, values, &req)
            }
        }
    }

    fn write(
        &mut self,
        i: usize,
        area: Area,
        address: u16,
        values: &[u16],
        req: &Request,
    ) -> Result<Vec<u8>, u8> {
        let d = &mut self.devices[i];
        let count = u16::try_from(values.len()).map_err(|_| ILLEGAL_DATA_ADDRESS)?;
        let touched = d.bank.covered(area, address, count)?;
        if !touched
            .iter()
            .all(|&p| d.behaviour.writable(&d.bank.points()[p].name))
        {
            return Err(ILLEGAL_DATA_ADDRESS);
        }
        d.bank.write(area, address, values)?;
        for p in touched {
            if let Some(v) = d.bank.get(p).and_then(|(v, _)| v) {
                let name = d.bank.points()[p].name.clone();
                d.behaviour.written(&name, &v);
            }
        }
        Ok(frame::write_answer(req))
    }

    /// `len` random bytes (for the `garbage` fault).
    pub fn garbage(&mut self, len: usize) -> Vec<u8> {
        (0..len).map(|_| self.rng.random()).collect()
    }

    fn device(&self, id: &str) -> Result<usize, SimError> {
        self.by_id
            .get(id)
            .copied()
            .ok_or_else(|| SimError::UnknownDevice(id.to_owned()))
    }

    /// Injects a fault; `start` counts from `base` (the simulator's start
    /// for scenarios, now for the control interface).
    pub fn inject(
        &mut self,
        cfg: &FaultConfig,
        base: Instant,
        now: Instant,
    ) -> Result<FaultId, SimError> {
        let i = self.device(&cfg.device)?;
        let spec = cfg.spec().map_err(|message| SimError::Fault {
            device: cfg.device.clone(),
            message,
        })?;
        let force = self.force_for(i, &spec)?;
        let from = base + cfg.start.map(|d| d.get()).unwrap_or_default();
        let until = cfg.duration.map(|d| from + d.get());
        let id = self.faults.add(i, &cfg.device, spec, force, from, until);
        self.refresh(i, now);
        Ok(id)
    }

    /// Resolves a value fault to a point and a value.
    fn force_for(&self, i: usize, spec: &FaultSpec) -> Result<Option<Force>, SimError> {
        let d = &self.devices[i];
        let fault = |message: String| SimError::Fault {
            device: d.id.clone(),
            message,
        };
        let named = |name: &str| {
            d.bank.index_of(name).ok_or_else(|| SimError::UnknownPoint {
                device: d.id.clone(),
                point: name.to_owned(),
            })
        };
        let force = match spec {
            FaultSpec::FaultBit { point: Some(name) } => {
                let point = named(name)?;
                let value = match d.bank.points()[point].data_type {
                    DataType::Bool | DataType::Bit(_) => Value::Bool(true),
                    _ => Value::Int(1),
                };
                Force { point, value }
            }
            FaultSpec::FaultBit { point: None } => {
                let is_bit = |p: &gateway_core::model::Point| {
                    matches!(p.data_type, DataType::Bool | DataType::Bit(_))
                };
                let points = d.bank.points();
                let point = points
                    .iter()
                    .position(|p| p.alarm && p.critical && is_bit(p))
                    .or_else(|| points.iter().position(|p| p.alarm && is_bit(p)))
                    .ok_or_else(|| {
                        fault(format!(
                            "profile {:?} has no alarm bit; name one with `point`",
                            d.profile
                        ))
                    })?;
                Force {
                    point,
                    value: Value::Bool(true),
                }
            }
            FaultSpec::OutOfRange { point, value } => {
                let index = named(point)?;
                let p = &d.bank.points()[index];
                let v = match (value, p.max, p.min) {
                    (Some(v), _, _) => *v,
                    (None, Some(max), _) => max + (max.abs() * 0.1).max(1.0),
                    (None, None, Some(min)) => min - (min.abs() * 0.1).max(1.0),
                    (None, None, None) => {
                        return Err(fault(format!(
                            "point {point:?} has no min/max; give the `value` to show"
                        )));
                    }
                };
                // Refuse at once a value the point's type cannot hold.
                let mut probe = d.bank.clone();
                probe
                    .set(index, &Value::Float(v))
                    .map_err(|source| SimError::Value {
                        device: d.id.clone(),
                        source,
                    })?;
                Force {
                    point: index,
                    value: Value::Float(v),
                }
            }
            _ => return Ok(None),
        };
        Ok(Some(force))
    }

    /// Clears one fault; false when no fault has that id.
    pub fn clear(&mut self, id: FaultId, now: Instant) -> bool {
        match self.faults.remove(id) {
            Some(i) => {
                self.refresh(i, now);
                true
            }
            None => false,
        }
    }

    /// Clears every fault.
    pub fn clear_all(&mut self, now: Instant) {
        self.faults.clear();
        for i in 0..self.devices.len() {
            self.refresh(i, now);
        }
    }

    /// Every fault, active or scheduled.
    pub fn faults(&self, now: Instant) -> Vec<FaultInfo> {
        self.faults.list(now)
    }

    /// Every device.
    pub fn devices(&self) -> Vec<DeviceInfo> {
        self.devices
            .iter()
            .map(|d| DeviceInfo {
                id: d.id.clone(),
                bus: self.bus_ids.get(d.bus).cloned().unwrap_or_default(),
                unit: d.unit,
                profile: d.profile.clone(),
            })
            .collect()
    }

    /// The current values of a device's points.
    pub fn points(&self, device: &str) -> Result<Vec<PointValue>, SimError> {
        let d = &self.devices[self.device(device)?];
        Ok(d.bank
            .points()
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let (value, quality) = d
                    .bank
                    .get(i)
                    .unwrap_or((None, Quality::Bad(gateway_core::model::BadReason::NotRead)));
                PointValue {
                    name: p.name.clone(),
                    value,
                    quality,
                    unit: p.unit.clone(),
                    held: d.held.contains_key(&i),
                }
            })
            .collect())
    }

    /// Sets a point as a master write would (the model takes it when it
    /// models that point); `hold` keeps it until [`release`](Self::release).
    pub fn set_point(
        &mut self,
        device: &str,
        point: &str,
        value: &Value,
        hold: bool,
        now: Instant,
    ) -> Result<(), SimError> {
        let i = self.device(device)?;
        let d = &mut self.devices[i];
        let p = d
            .bank
            .index_of(point)
            .ok_or_else(|| SimError::UnknownPoint {
                device: device.to_owned(),
                point: point.to_owned(),
            })?;
        d.bank.set(p, value).map_err(|source| SimError::Value {
            device: device.to_owned(),
            source,
        })?;
        d.behaviour.written(point, value);
        if hold {
            d.held.insert(p, value.clone());
        }
        self.refresh(i, now);
        Ok(())
    }

    /// Releases a held point; false when it was not held.
    pub fn release(&mut self, device: &str, point: &str, now: Instant) -> Result<bool, SimError> {
        let i = self.device(device)?;
        let d = &mut self.devices[i];
        let p = d
            .bank
            .index_of(point)
            .ok_or_else(|| SimError::UnknownPoint {
                device: device.to_owned(),
                point: point.to_owned(),
            })?;
        let was = d.held.remove(&p).is_some();
        self.refresh(i, now);
        Ok(was)
    }

    /// The value of one point (for tests and the handle).
    pub fn value(&self, device: &str, point: &str) -> Result<Option<Value>, SimError> {
        let d = &self.devices[self.device(device)?];
        let p = d
            .bank
            .index_of(point)
            .ok_or_else(|| SimError::UnknownPoint {
                device: device.to_owned(),
                point: point.to_owned(),
            })?;
        Ok(d.bank.get(p).and_then(|(v, _)| v))
    }
}

#[cfg(test)]
mod tests;
