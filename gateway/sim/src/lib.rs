//! The simulated building.
