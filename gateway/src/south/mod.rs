//! The south side: Modbus transports and the per-bus poll tasks.
//!
//! - [`url`]: `tcp://`, `rtu://` and `rtu+tcp://` endpoint URLs.
//! - [`transport`]: the only module using tokio-modbus/tokio-serial; every
//!   call has a timeout, failures are typed, connections re-made with backoff.
//! - [`mbtcp`]: our own Modbus TCP client framing (small, no per-connection
//!   buffers), used by [`transport`] for `kind = "tcp"` buses.
//! - [`link`]: the contract between the scheduler and a transport.
//! - [`bus`]: one task per bus; schedules, degrades failing devices, sends
//!   [`PollOutcome`](gateway_core::model::PollOutcome)s on a bounded channel.
//! - [`backoff`]: jittered exponential backoff.
//! - [`writes`]: routes a checked write to its device's bus task.
//! - [`adhoc`]: the library side of `gateway read` and `gateway scan`.

pub mod adhoc;
pub mod backoff;
pub mod bus;
pub mod link;
pub mod mbtcp;
pub mod transport;
pub mod url;
pub mod writes;

pub use adhoc::{AdhocError, ReadResult, ScanResult, identify, read, scan};
pub use bus::{
    BusCounters, BusHandle, BusOptions, BusStats, BusTask, WriteJob, WriteReport, line_cost,
    spawn_buses, spawn_buses_with,
};
pub use link::{Data, Link, ReadError, WriteData};
pub use transport::{Transport, TransportError, connect};
pub use url::{Endpoint, UrlError};
