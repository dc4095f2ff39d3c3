//! The simulated building: real Modbus servers that behave like the
//! building's equipment, with fault injection and honest wire timing.
//!
//! `gateway simulate --config FILE` serves the same configuration the
//! gateway polls: every `tcp` bus is a Modbus TCP server on its address,
//! every `rtu_over_tcp` bus an RTU-over-TCP server (a serial device server),
//! every `rtu` bus an RTU slave on a pseudo-terminal symlinked at its `port`
//! (or on a real serial port). Each device is a register bank built from
//! its profile, animated by the behaviour of its profile.
//!
//! Layout, by concern:
//! - [`frame`]: Modbus bytes (PDU, RTU with CRC16, MBAP), pure.
//! - [`bank`]: the register map of one device, via the core's encoder.
//! - [`behaviour`]: device models (pumps, meters, fire panel, lighting…).
//! - [`faults`]: active faults and their effect on answers.
//! - [`building`]: all devices and faults behind one lock; answering a request.
//! - [`wire`]: RS-485 timing maths.
//! - `server_tcp`, `server_rtu`: the servers (framing, fault mangling, delays).
//! - `control`: the HTTP control interface.
//! - [`simulator`]: [`start`] / [`SimHandle`].
//!
//! Invariants: no lock is held across an `.await`; every listener and port
//! is opened before any task starts, so start-up errors are returned.

pub mod bank;
pub mod behaviour;
pub mod building;
mod bus;
mod control;
pub mod error;
pub mod faults;
pub mod frame;
mod server_rtu;
mod server_tcp;
pub mod simulator;
pub mod wire;

pub use error::SimError;
pub use faults::{FaultId, FaultInfo};
pub use simulator::{SimHandle, SimOptions, Simulator, start};
