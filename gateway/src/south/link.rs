//! The seam between the bus scheduler and a transport.
//!
//! The bus task ([`super::bus`]) only needs "read this range from this unit
//! and tell me how it went". [`Link`] is that contract; the real
//! implementation is [`super::transport::Transport`], and tests drive the
//! scheduler with scripted links on a paused clock.

use std::future::Future;

use gateway_core::model::{Area, FailureKind};

/// The answer to one read request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Data {
    /// Registers (holding or input), exactly `count` of them.
    Words(Vec<u16>),
    /// Bits (coils or discrete inputs), exactly `count` of them.
    Bits(Vec<bool>),
}

impl Data {
    /// Number of registers or bits.
    pub fn len(&self) -> usize {
        match self {
            Data::Words(w) => w.len(),
            Data::Bits(b) => b.len(),
        }
    }

    /// True when no item was read.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// What one write request sets.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WriteData {
    /// One coil (function 5, write single coil).
    Coil(bool),
    /// One holding register (function 6, write single register).
    Register(u16),
    /// Consecutive holding registers (function 16, write multiple
    /// registers): a value of two or four registers goes in one request, so
    /// that the device never holds half of it.
    Registers(Vec<u16>),
}

impl WriteData {
    /// The Modbus function code of the request.
    pub const fn function(&self) -> u8 {
        match self {
            WriteData::Coil(_) => 5,
            WriteData::Register(_) => 6,
            WriteData::Registers(_) => 16,
        }
    }
}

/// Why a read gave no data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum ReadError {
    /// A transaction was attempted and failed this way.
    #[error("{0}")]
    Failed(FailureKind),
    /// Nothing was sent: the link is down and waiting out its reconnect
    /// backoff. Every device on the link is unreachable; none is at fault.
    #[error("link down, waiting to reconnect")]
    LinkDown,
}

impl ReadError {
    /// The failure kind reported in a poll outcome (`LinkDown` is a
    /// transport failure).
    pub const fn kind(self) -> FailureKind {
        match self {
            ReadError::Failed(kind) => kind,
            ReadError::LinkDown => FailureKind::Transport,
        }
    }
}

/// One Modbus line or connection: one transaction at a time.
pub trait Link: Send {
    /// Reads `count` items of `area` from `start` on unit `unit`, within the
    /// link's timeout. Must be cancel-safe in the sense that dropping the
    /// future leaves the link usable (it may reconnect on the next call).
    fn read(
        &mut self,
        unit: u8,
        area: Area,
        start: u16,
        count: u16,
    ) -> impl Future<Output = Result<Data, ReadError>> + Send;

    /// Writes `data` at `start` on unit `unit` (coils for
    /// [`WriteData::Coil`], holding registers otherwise), within the link's
    /// timeout; `Ok` when the device confirmed the write (its echo matched).
    /// The same failure kinds as [`Link::read`].
    fn write(
        &mut self,
        unit: u8,
        start: u16,
        data: &WriteData,
    ) -> impl Future<Output = Result<(), ReadError>> + Send;
}
