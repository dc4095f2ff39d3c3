//! `gateway scan`: which unit ids answer on a line.

use std::io::Write as _;
use std::ops::RangeInclusive;

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
    /// How long to wait for each unit, e.g. `200ms`.
    #[arg(long, default_value = "300ms")]
    pub timeout: HumanDuration,
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
pub async fn scan(a: ScanArgs) -> u8 {
    let total = a.units.clone().count();
    let mut seen = 0usize;
    let is_tty = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let result = south::scan(&a.url, a.units.clone(), a.timeout.get(), |unit, r| {
        seen += 1;
        if r.answered() {
            let what = match r {
                ScanResult::Exception { code } => format!(
                    "answers with exception {code} ({})",
                    south::adhoc::exception_name(code)
                ),
                _ => "answers".to_owned(),
            };
            if is_tty {
                eprint!("\r\x1b[K");
            }
            println!("unit {unit:>3}: {what}");
        } else if let ScanResult::Error(kind) = r {
            if is_tty {
                eprint!("\r\x1b[K");
            }
            println!("unit {unit:>3}: garbled answer or link error ({kind})");
        }
        if is_tty {
            eprint!("\rscanning: {seen}/{total} (unit {unit})");
            let _ = std::io::stderr().flush();
        }
    })
    .await;
    if is_tty {
        eprint!("\r\x1b[K");
    }
    match result {
        Ok(results) => {
            let found: Vec<String> = results
                .iter()
                .filter(|(_, r)| r.answered())
                .map(|(u, _)| u.to_string())
                .collect();
            if found.is_empty() {
                println!("no unit answered among {total} tried");
                1
            } else {
                println!(
                    "{} of {total} units answered: {}",
                    found.len(),
                    found.join(", ")
                );
                0
            }
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
