//! On-call alerts (issue #6): the dispatcher that turns stored ticket
//! events into notices (policy in [`gateway_core::alerts`], rotation in
//! [`gateway_core::oncall`]), records each in the database's `alerts`
//! table before sending it, and delivers it on its channels with retries,
//! backoff, expiry and fallback.
//!
//! # Delivery that survives faults
//!
//! - A notice is **recorded before it is sent** (`Store::record_notices`,
//!   unique key: recording again is a no-op) and leaves the `pending` state
//!   only when the channel accepted it (`sent`) or it is older than
//!   `expire_after` (`expired`).
//! - A failed attempt is retried after `retry_min`, doubling up to
//!   `retry_max`. After `fallback_after` failed attempts a copy is recorded
//!   for the channel's `fallback` (once); the original keeps trying.
//! - A restart loses nothing: pending notices are in the database, and the
//!   policy's timers (escalation, deferral, digests) are rebuilt from the
//!   active tickets and the recorded notices (`Policy::restore`); a page or
//!   follow-up whose ticket change was stored but whose notice was not yet
//!   recorded is made then (tickets not closed, or changed within the
//!   lookback, are read for that), under the key it would have had. A crash
//!   between a channel accepting and the `sent` mark means one more
//!   delivery of that notice after the restart (at least once); webhooks
//!   get the notice's key in `X-BMS-Alert-Key` to drop such a repeat.
//! - The table is pruned (`Store::prune_alerts`): notices sent, expired
//!   or digested longer than `[alerts] keep` ago are deleted at start and
//!   hourly, a bounded batch per transaction; never a pending or held one,
//!   nor one of a ticket not closed (the restore reads those).
//! - Failures are counted per channel in `/metrics`
//!   (`bms_alert_failures_total{channel}`), logged with the channel and the
//!   error, and kept with each notice (`gateway alerts log`,
//!   `Store::alert_channels` for the dashboard).

pub mod channels;
mod dispatch;
mod start;
#[cfg(test)]
mod tests;

pub use dispatch::{AlertStats, ChannelCounters, Clock, Dispatcher};
pub use start::{Started, build_channels, device_infos, start};
