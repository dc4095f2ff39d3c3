//! Retention of the central ledger (`[ledger] keep_months`,
//! `docs/dashboard.md`): what lies entirely before a site's cutoff is
//! deleted in small batches on the writer thread, keeping every row the
//! reports of the months from the cutoff's on read, so those reports do
//! not change.
//!
//! # What goes, what stays
//!
//! - **Transitions** of a device before the cutoff, up to (not including)
//!   its last `up`/`down` transition whose interval ends before the cutoff
//!   (a later transition, strictly later in time, comes before the cutoff
//!   too). What stays is a suffix of the device's transitions in report
//!   order (`at`, gateway, `seq`), so [`super::input`] rebuilds the same
//!   intervals from there on, including the `up`/`down` interval a report
//!   needs to tell a fault running into its month from one starting at
//!   midnight. A device with no such transition keeps them all.
//! - **Tickets** that are `closed`, closed before the cutoff. Open,
//!   acknowledged and resolved tickets stay whatever their age. A gateway
//!   that republishes an old closed ticket (a retained message) adds it
//!   again, and the next run deletes it again.
//! - Not touched: the device catalogue and each gateway's online state
//!   (`gateways`: one row per gateway, holding the time it last went
//!   offline): both are bounded by the number of devices and gateways.
//!
//! # Cutoff and schedule
//!
//! The cutoff of a site is local midnight of the 1st of the month
//! `keep_months` months before the current one, in the site's report time
//! zone (`[[report_site]] timezone`, default Asia/Shanghai). A run starts
//! with the dashboard and then every [`PRUNE_EVERY_MS`]; it records each
//! site's cutoff in the `retention` table first (never moving it back), so
//! that `/reports` refuses a month before it, then deletes at most
//! [`PRUNE_BATCH`] rows per step, one step every [`STEP_EVERY`] between
//! messages.

use std::collections::BTreeMap;
use std::time::Duration;

use chrono_tz::Tz;
use rusqlite::{Connection, OptionalExtension, params};
use tracing::{info, warn};

/// How often a run starts (the first when the dashboard starts).
pub const PRUNE_EVERY_MS: i64 = 24 * 3_600_000;
/// Rows deleted per step at most.
pub const PRUNE_BATCH: i64 = 500;
/// How often the writer takes a step while a run is in progress.
pub const STEP_EVERY: Duration = Duration::from_millis(100);
/// How long after a failed step the next run starts.
const RETRY_MS: i64 = 3_600_000;

/// The settings of retention: months kept and each site's zone.
#[derive(Clone, Debug)]
pub struct Retention {
    /// `[ledger] keep_months`.
    pub keep_months: u32,
    /// `[[report_site]] timezone` by site.
    pub zones: BTreeMap<String, Tz>,
    /// The zone of a site without one.
    pub default_zone: Tz,
}

impl Retention {
    /// From the checked configuration (zones as the reports use them).
    pub fn of(settings: &crate::config::Settings) -> Retention {
        let zones = settings
            .file
            .report_sites
            .iter()
            .filter_map(|s| {
                let tz = gateway_core::ledger::parse_tz(s.timezone.as_deref()?).ok()?;
                Some((s.site.clone(), tz))
            })
            .collect();
        Retention {
            keep_months: settings.file.ledger.keep_months,
            zones,
            default_zone: crate::reports::zone(),
        }
    }

    /// The zone of `site`'s calendar months.
    pub fn zone(&self, site: &str) -> Tz {
        self.zones.get(site).copied().unwrap_or(self.default_zone)
    }
}

/// The run in progress.
#[derive(Debug)]
struct Run {
    /// Each site with its cutoff; `next` is the one being pruned.
    sites: Vec<(String, i64)>,
    next: usize,
    transitions: u64,
    tickets: u64,
}

/// The schedule and the run in progress (owned by the writer).
#[derive(Debug)]
pub struct Pruner {
    cfg: Retention,
    next_run_ms: i64,
    run: Option<Run>,
}

impl Pruner {
    /// A pruner whose first run starts at the first step.
    pub fn new(cfg: Retention) -> Pruner {
        Pruner {
            cfg,
            next_run_ms: i64::MIN,
            run: None,
        }
    }

    /// Whether a run is in progress.
    pub fn running(&self) -> bool {
        self.run.is_some()
    }

    /// One step: starts a run when due (recording each site's cutoff), or
    /// deletes one batch of the run in progress; logs one line when a run
    /// that deleted anything ends.
    pub fn step(&mut self, conn: &Connection, now_ms: i64) {
        let Some(run) = &mut self.run else {
            if now_ms < self.next_run_ms {
                return;
            }
            self.next_run_ms = now_ms.saturating_add(PRUNE_EVERY_MS);
            match begin(conn, &self.cfg, now_ms) {
                Ok(sites) => {
                    self.run = Some(Run {
                        sites,
                        next: 0,
                        transitions: 0,
                        tickets: 0,
                    });
                }
                Err(e) => {
                    warn!(error = %e, "cannot start deleting old data of the central ledger; retrying in an hour");
                    self.next_run_ms = now_ms.saturating_add(RETRY_MS);
                }
            }
            return;
        };
        let Some((site, cutoff)) = run.sites.get(run.next) else {
            if run.transitions + run.tickets > 0 {
                info!(
                    keep_months = self.cfg.keep_months,
                    sites = run.sites.len(),
                    transitions = run.transitions,
                    tickets = run.tickets,
                    "deleted central ledger data older than [ledger] keep_months"
                );
            }
            self.run = None;
            return;
        };
        match prune_batch(conn, site, *cutoff, PRUNE_BATCH) {
            Ok((0, 0)) => run.next += 1,
            Ok((t, k)) => {
                run.transitions += t;
                run.tickets += k;
            }
            Err(e) => {
                warn!(
                    error = %e, site = %site,
                    "cannot delete old data of the central ledger; the run stops and is retried in an hour"
                );
                self.run = None;
                self.next_run_ms = now_ms.saturating_add(RETRY_MS);
            }
        }
    }
}

/// Every site with data, and its cutoff, recorded in `retention`.
fn begin(conn: &Connection, cfg: &Retention, now_ms: i64) -> Result<Vec<(String, i64)>, String> {
    // Distinct sites of the transitions by their primary key, one index
    // probe per site (not a scan of every row), plus the tickets'.
    let mut st = conn
        .prepare(
            "WITH RECURSIVE s(site) AS (
                 SELECT MIN(site) FROM transitions
                 UNION ALL
                 SELECT (SELECT MIN(site) FROM transitions WHERE site > s.site) FROM s WHERE s.site IS NOT NULL)
             SELECT site FROM s WHERE site IS NOT NULL
             UNION SELECT site FROM tickets ORDER BY 1",
        )
        .map_err(|e| e.to_string())?;
    let sites: Vec<String> = st
        .query_map([], |r| r.get(0))
        .and_then(|rows| rows.collect())
        .map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(sites.len());
    for site in sites {
        let cutoff =
            gateway_core::ledger::retention_cutoff(cfg.zone(&site), now_ms, cfg.keep_months)
                .map_err(|e| e.to_string())?;
        conn.execute(
            "INSERT INTO retention (site, from_ms) VALUES (?1, ?2)
             ON CONFLICT (site) DO UPDATE SET from_ms = MAX(from_ms, ?2)",
            params![site, cutoff],
        )
        .map_err(|e| e.to_string())?;
        out.push((site, cutoff));
    }
    Ok(out)
}

/// Deletes at most `limit` transitions of `site` before `cutoff` (see the
/// module doc), or when none is left, at most `limit` closed tickets;
/// returns (transitions, tickets) deleted.
pub fn prune_batch(
    conn: &Connection,
    site: &str,
    cutoff: i64,
    limit: i64,
) -> rusqlite::Result<(u64, u64)> {
    // A device is (site, gateway, device).
    // t goes when a later up/down transition u of its device exists whose
    // interval is not empty (nothing else at its instant after it) and
    // ends before the cutoff (a transition strictly later than u, before
    // the cutoff).
    let n = conn.execute(
        "DELETE FROM transitions WHERE (site, gateway, seq) IN (
             SELECT t.site, t.gateway, t.seq FROM transitions t
             WHERE t.site = ?1 AND t.at_ms < ?2
               AND EXISTS (
                 SELECT 1 FROM transitions u
                 WHERE u.site = t.site AND u.gateway = t.gateway AND u.device = t.device AND u.at_ms >= t.at_ms
                   AND (u.at_ms, u.gateway, u.seq) > (t.at_ms, t.gateway, t.seq)
                   AND u.to_state IN ('up', 'down')
                   AND NOT EXISTS (
                     SELECT 1 FROM transitions w
                     WHERE w.site = u.site AND w.gateway = u.gateway AND w.device = u.device AND w.at_ms = u.at_ms
                       AND (w.gateway, w.seq) > (u.gateway, u.seq))
                   AND EXISTS (
                     SELECT 1 FROM transitions v
                     WHERE v.site = u.site AND v.gateway = u.gateway AND v.device = u.device
                       AND v.at_ms > u.at_ms AND v.at_ms < ?2))
             ORDER BY t.at_ms LIMIT ?3)",
        params![site, cutoff, limit],
    )?;
    if n > 0 {
        return Ok((u64::try_from(n).unwrap_or(0), 0));
    }
    let n = conn.execute(
        "DELETE FROM tickets WHERE (site, gateway, id) IN (
             SELECT site, gateway, id FROM tickets
             WHERE site = ?1 AND json_extract(ticket, '$.state') = 'closed'
               AND json_extract(ticket, '$.closed.at_ms') < ?2
             LIMIT ?3)",
        params![site, cutoff, limit],
    )?;
    Ok((0, u64::try_from(n).unwrap_or(0)))
}

/// The cutoff recorded for `site`: what lay entirely before it may have
/// been deleted. `None` when nothing was ever pruned there.
pub fn retained_from(conn: &Connection, site: &str) -> rusqlite::Result<Option<i64>> {
    conn.query_row(
        "SELECT from_ms FROM retention WHERE site = ?1",
        [site],
        |r| r.get(0),
    )
    .optional()
}
