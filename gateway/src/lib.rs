//! The BMS edge gateway library. The `gateway` binary is a thin shell over it,
//! so that tests, benchmarks and the (later) dashboard demo can start a
//! gateway in-process.
//!
//! - [`south`]: Modbus transports and the per-bus poll tasks.
//! - [`run`]: the main loop, buses → outcomes → sinks.
//! - [`files`]: reading a configuration and its profiles from disk.
//! - [`sheets`]: point-list spreadsheets (.xlsx, .csv) on disk.
//! - [`cli`]: the subcommands of the `gateway` binary.
//! - [`cmdin`]: signed commands arriving over MQTT (verification, replays, replies).

pub mod admin;
pub mod alerts;
pub mod buildinfo;
pub mod cli;
pub mod cmdin;
pub mod engine;
pub mod files;
pub mod influx;
pub mod logging;
pub mod north;
pub mod output;
pub mod run;
pub mod sdnotify;
pub mod sheets;
pub mod south;
pub mod store;
pub mod wire;
