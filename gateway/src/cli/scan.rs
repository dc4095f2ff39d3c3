//! `gateway scan`: which unit ids answer on a line.

use std::io::Write as _;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use gateway_core::HumanDuration;

use crate::south::{self, ScanResult};

/// Arguments of `gateway scan`.
#[derive(Debug, clap::Args)]
pub struct ScanArgs {
    /// `tcp://host:port`, `rtu:///dev/ttyUSB0?baud=9600&parity=even`, `rtu+tcp://host:port`.
    pub url: String,
    /// Unit ids to try, e.g. `1-247`, `1-10` or `5`.
    #[arg(long, default_value = "1-247", value_parser = parse_units)]
    pub units: RangeInclusive<u8>,
    /// How long to wait for each unit, e.g. `200ms`. Default: 100ms on
    /// Modbus TCP (`tcp://`), 200ms on RTU lines and RTU over TCP; a slow
    /// device may need more (the summary says how many units were silent).
    #[arg(long)]
    pub timeout: Option<HumanDuration>,
}

/// The per-unit wait on Modbus TCP: a device on the network answers within
/// a few milliseconds, and an absent unit costs this much.
pub const TCP_TIMEOUT: Duration = Duration::from_millis(100);
/// The per-unit wait on an RTU line: a one-register read and its answer
/// take under 20 ms of wire time at 9600 baud, plus the device's turnaround.
pub const RTU_TIMEOUT: Duration = Duration::from_millis(200);
/// Without a terminal, a progress line at most this often.
const PLAIN_EVERY: Duration = Duration::from_secs(5);

/// The default per-unit wait for `url`.
pub fn default_timeout(url: &str) -> Duration {
    if url.trim_start().to_ascii_lowercase().starts_with("tcp://") {
        TCP_TIMEOUT
    } else {
        RTU_TIMEOUT
    }
}

/// What a scan found, for the summary line.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Tally {
    /// Units that answered (data or an exception), in order.
    pub answered: Vec<u8>,
    /// Units that stayed silent within the timeout (or were absent behind a gateway).
    pub silent: usize,
    /// Units whose answer was garbled, or the link failed while asking.
    pub errors: usize,
}

impl Tally {
    fn take(&mut self, unit: u8, r: ScanResult) {
        match r {
            _ if r.answered() => self.answered.push(unit),
            ScanResult::Error(_) => self.errors += 1,
            _ => self.silent += 1,
        }
    }

    /// The one summary line.
    pub fn summary(&self, total: usize, took: Duration, timeout: Duration) -> String {
        let who = if self.answered.is_empty() {
            format!("no unit answered among {total} tried")
        } else {
            format!(
                "{} of {total} units answered: {}",
                self.answered.len(),
                self.answered
                    .iter()
                    .map(u8::to_string)
                    .collect::<Vec<_>>()
                    .join(", ")
            )
        };
        let errors = if self.errors > 0 {
            format!(", {} garbled or link errors", self.errors)
        } else {
            String::new()
        };
        format!(
            "{who} ({:.1} s; {} silent within {} ms each{errors})",
            took.as_secs_f64(),
            self.silent,
            timeout.as_millis()
        )
    }
}

/// `[#####-----]  42/247 units, 3 answered`
fn bar(seen: usize, total: usize, answered: usize) -> String {
    const W: usize = 30;
    let done = (seen * W).checked_div(total).unwrap_or(W);
    format!(
        "[{}{}] {seen:>3}/{total} units, {answered} answered",
        "#".repeat(done),
        "-".repeat(W - done)
    )
}

fn parse_units(s: &str) -> Result<RangeInclusive<u8>, String> {
    let err = || format!("{s:?} is not a unit range; write e.g. 1-247 or 5 (unit ids are 0-255)");
    let (a, b) = match s.split_once('-') {
        Some((a, b)) => (a.trim(), b.trim()),
        None => (s.trim(), s.trim()),
    };
    let a: u8 = a.parse().map_err(|_| err())?;
    let b: u8 = b.parse().map_err(|_| err())?;
    if a > b {
        return Err(format!(
            "{s:?}: the range runs backwards; write the smaller id first"
        ));
    }
    Ok(a..=b)
}

/// Runs `gateway scan`; returns the exit code (0 when at least one unit answered).
///
/// Progress goes to stderr: a bar redrawn in place on a terminal, else a
/// plain line every few seconds; each answering unit and the one summary
/// (who answered, how long, how many were silent) go to stdout.
pub async fn scan(a: ScanArgs) -> u8 {
    let total = a.units.clone().count();
    let timeout = a
        .timeout
        .map_or_else(|| default_timeout(&a.url), |t| t.get());
    let mut seen = 0usize;
    let mut tally = Tally::default();
    let is_tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let started = Instant::now();
    let mut last_line = Instant::now();
    let result = south::scan(&a.url, a.units.clone(), timeout, |unit, r| {
        seen += 1;
        tally.take(unit, r);
        let line = if r.answered() {
            Some(match r {
                ScanResult::Exception { code } => format!(
                    "unit {unit:>3}: answers with exception {code} ({})",
                    south::adhoc::exception_name(code)
                ),
                _ => format!("unit {unit:>3}: answers"),
            })
        } else if let ScanResult::Error(kind) = r {
            Some(format!(
                "unit {unit:>3}: garbled answer or link error ({kind})"
            ))
        } else {
            None
        };
        if let Some(line) = line {
            if is_tty {
                eprint!("\r\x1b[K");
            }
            println!("{line}");
        }
        if is_tty {
            eprint!(
                "\r\x1b[K{} (unit {unit})",
                bar(seen, total, tally.answered.len())
            );
            let _ = std::io::stderr().flush();
        } else if last_line.elapsed() >= PLAIN_EVERY && seen < total {
            last_line = Instant::now();
            eprintln!(
                "scanning: {seen}/{total} units, {} answered, {:.0} s",
                tally.answered.len(),
                started.elapsed().as_secs_f64()
            );
        }
    })
    .await;
    if is_tty {
        eprint!("\r\x1b[K");
    }
    match result {
        Ok(_) => {
            println!("{}", tally.summary(total, started.elapsed(), timeout));
            if tally.answered.is_empty() { 1 } else { 0 }
        }
        Err(e) => {
            eprintln!("gateway scan: {e}");
            match e {
                south::AdhocError::Url(_) => super::EXIT_CONFIG,
                _ => super::EXIT_UNAVAILABLE,
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_says_who_answered_how_long_and_how_many_were_silent() {
        let mut t = Tally::default();
        t.take(1, ScanResult::Data);
        t.take(2, ScanResult::Absent);
        t.take(5, ScanResult::Exception { code: 2 });
        let s = t.summary(3, Duration::from_millis(1500), Duration::from_millis(100));
        assert_eq!(
            s,
            "2 of 3 units answered: 1, 5 (1.5 s; 1 silent within 100 ms each)"
        );
        let s = Tally::default().summary(4, Duration::ZERO, TCP_TIMEOUT);
        assert!(s.starts_with("no unit answered among 4 tried"), "{s}");
    }

    #[test]
    fn the_default_wait_is_shorter_on_modbus_tcp() {
        assert_eq!(default_timeout("tcp://127.0.0.1:502"), TCP_TIMEOUT);
        assert_eq!(default_timeout("rtu:///dev/ttyUSB0?baud=9600"), RTU_TIMEOUT);
        assert_eq!(default_timeout("rtu+tcp://10.0.0.5:4001"), RTU_TIMEOUT);
    }

    #[test]
    fn the_bar_fills_with_the_units_tried() {
        assert!(bar(0, 247, 0).starts_with("[---"));
        assert!(bar(247, 247, 6).starts_with("[######"));
        assert!(bar(247, 247, 6).ends_with("247/247 units, 6 answered"));
    }
}
