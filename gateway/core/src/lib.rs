//! Pure logic of the BMS edge gateway.
//!
//! Nothing in this crate performs IO or reads a clock: time is passed in by
//! the caller, bytes arrive as slices. The compiler enforces this because the
//! crate depends on no async runtime, socket or file library.
//!
//! - [`model`]: the vocabulary shared by every layer (register areas, data
//!   types, word orders, device classes, decoded values, poll outcomes).
//! - [`config`]: the gateway configuration and device profiles: serde shapes,
//!   `${VAR}` substitution and validation that collects every error.
//! - [`decode`]: registers/bits → typed values with scale, offset and quality.
//! - [`plan`]: points → the fewest Modbus requests that cover them.
//! - [`identify`]: which profile a device on the line most likely is.
//! - [`rbe`]: report by exception: which samples are worth publishing.
//! - [`state`]: device states, transitions, intervals, hard alarms.
//! - [`health`]: poll outcomes → device state, with debounce.
//! - [`ledger`]: intervals → availability and figures over any window.
//! - [`maintenance`]: planned maintenance windows.
//! - [`tickets`]: the fault-ticket machine and ticket figures.
//! - [`write`]: the checks a write to a device passes, and its read-back.
//! - [`report`]: the monthly availability report and its JSON, CSV and HTML.
//! - [`pointlist`]: profiles as spreadsheet tables (`gateway profile import/export`).

pub mod alerts;
pub mod config;
pub mod decode;
pub mod duration;
pub mod glossary;
pub mod health;
pub mod identify;
pub mod ledger;
pub mod maintenance;
pub mod model;
pub mod oncall;
pub mod plan;
pub mod pointlist;
pub mod rbe;
pub mod report;
pub mod state;
pub mod tickets;
pub mod write;

pub use duration::HumanDuration;
