//! What every server task of one bus shares.

use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use gateway_core::config::BusKind;

use crate::building::Building;
use crate::wire::Line;

/// One bus as the servers see it.
#[derive(Debug)]
pub(crate) struct BusCtx {
    /// Index into the resolved buses.
    pub index: usize,
    /// Bus id, for logs.
    pub id: String,
    pub kind: BusKind,
    pub building: Arc<Mutex<Building>>,
    pub line: Line,
    /// Delay RTU answers by their wire time.
    pub wire_time: bool,
    /// An RS-485 line carries one transaction at a time, even when a device
    /// server accepts several TCP clients: held while an answer is "on the wire".
    pub line_busy: tokio::sync::Mutex<()>,
}

/// Locks the building; a panic in another holder does not stop the simulator
/// (the building holds plain values, valid after any partial update).
pub(crate) fn lock(building: &Mutex<Building>) -> MutexGuard<'_, Building> {
    building.lock().unwrap_or_else(PoisonError::into_inner)
}
