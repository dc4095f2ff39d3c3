//! The simulated building.

pub mod bank;
pub mod behaviour;
pub mod building;
pub mod error;
pub mod faults;
pub mod frame;
pub mod wire;
