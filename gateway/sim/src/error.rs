//! Errors of the simulator.

use std::io;
use std::net::SocketAddr;
use std::path::PathBuf;

use gateway_core::config::ConfigError;
use thiserror::Error;

use crate::bank::BankError;

/// Why the simulator could not start, or a control request failed.
#[derive(Debug, Error)]
pub enum SimError {
    /// The `[simulator]` section (or a fault given at run time) is invalid.
    #[error("invalid simulator configuration:\n{}", .0.iter().map(|e| format!("  {e}")).collect::<Vec<_>>().join("\n"))]
    Config(Vec<ConfigError>),
    /// A TCP bus could not listen on its address.
    #[error(
        "bus \"{bus}\": cannot listen on {addr}: {source} (is another simulator or device server running there?)"
    )]
    Bind {
        /// Bus id.
        bus: String,
        /// The address as configured.
        addr: String,
        /// The system error.
        source: io::Error,
    },
    /// The control interface could not listen.
    #[error("control interface: cannot listen on {addr}: {source}")]
    ControlBind {
        /// The address.
        addr: SocketAddr,
        /// The system error.
        source: io::Error,
    },
    /// A pseudo-terminal pair could not be created.
    #[error("bus \"{bus}\": cannot create a pseudo-terminal: {source}")]
    Pty {
        /// Bus id.
        bus: String,
        /// The serial library's error.
        source: tokio_serial::Error,
    },
    /// A real serial port could not be opened.
    #[error("bus \"{bus}\": cannot open serial port {path}: {source}")]
    Serial {
        /// Bus id.
        bus: String,
        /// The port.
        path: String,
        /// The serial library's error.
        source: tokio_serial::Error,
    },
    /// The link path is a real file or directory, which is never replaced.
    #[error("bus \"{bus}\": {} exists and is not a symlink; remove it or set [simulator.bus.{bus}] link elsewhere", path.display())]
    LinkOccupied {
        /// Bus id.
        bus: String,
        /// The path.
        path: PathBuf,
    },
    /// The symlink (or its folder) could not be made.
    #[error("bus \"{bus}\": cannot link {}: {source}", path.display())]
    Link {
        /// Bus id.
        bus: String,
        /// The path.
        path: PathBuf,
        /// The system error.
        source: io::Error,
    },
    /// No device has this id.
    #[error("no device {0:?} in the simulated building")]
    UnknownDevice(String),
    /// The device has no such point.
    #[error("device {device:?} has no point {point:?}")]
    UnknownPoint {
        /// Device id.
        device: String,
        /// Point name.
        point: String,
    },
    /// A fault cannot be applied to this device.
    #[error("device {device:?}: {message}")]
    Fault {
        /// Device id.
        device: String,
        /// What is wrong.
        message: String,
    },
    /// A value does not fit the point.
    #[error("device {device:?}: {source}")]
    Value {
        /// Device id.
        device: String,
        /// The encoder's reason.
        source: BankError,
    },
}
