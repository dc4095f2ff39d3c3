//! `gateway scan`: which unit ids answer on a line, and with `--propose
//! FILE` what each one is (see `south::identify` and `gateway_core::identify`)
//! and a draft site configuration for them (`propose.rs`).

use std::io::Write as _;
use std::ops::RangeInclusive;
use std::time::{Duration, Instant};

use std::path::{Path, PathBuf};

use gateway_core::HumanDuration;
use gateway_core::config::load::parse_profile;
use gateway_core::identify::Model;

use super::propose::{self, Proposal};
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
    /// Also identify every answering unit against the profile library and
    /// write a draft site configuration to FILE (refused if FILE exists,
    /// unless `--force`).
    #[arg(long, value_name = "FILE")]
    pub propose: Option<PathBuf>,
    /// With `--propose`: overwrite FILE if it exists.
    #[arg(long, requires = "propose")]
    pub force: bool,
    /// With `--propose`: the profile library (default: the packaged
    /// /usr/share/bms-gateway/profiles, else ./config/profiles).
    #[arg(long, value_name = "DIR", requires = "propose")]
    pub profiles: Option<PathBuf>,
}

/// Where the library is looked for when `--profiles` is not given.
const DEFAULT_LIBRARIES: [&str; 2] = ["/usr/share/bms-gateway/profiles", "config/profiles"];

/// Reads every `*.toml` profile of `dir` into models, by name; every
/// problem (folder, file, profile) is an error line.
fn read_library(dir: &Path) -> Result<Vec<Model>, Vec<String>> {
    let entries = std::fs::read_dir(dir).map_err(|e| {
        vec![format!(
            "cannot read the profile library {}: {e}; give the folder with --profiles DIR",
            dir.display()
        )]
    })?;
    let mut files: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    let mut models = Vec::new();
    let mut errors = Vec::new();
    for f in files {
        let Some(name) = f.file_stem().and_then(|s| s.to_str()) else {
            continue;
        };
        let text = match std::fs::read_to_string(&f) {
            Ok(t) => t,
            Err(e) => {
                errors.push(format!("{}: {e}", f.display()));
                continue;
            }
        };
        let parsed =
            parse_profile(&f.display().to_string(), &text).and_then(|p| Model::new(name, &p));
        match parsed {
            Ok(m) => models.push(m),
            Err(e) => errors.extend(e.into_iter().map(|e| e.to_string())),
        }
    }
    if models.is_empty() && errors.is_empty() {
        errors.push(format!(
            "no *.toml profile in {}; give the library with --profiles DIR",
            dir.display()
        ));
    }
    if errors.is_empty() {
        Ok(models)
    } else {
        Err(errors)
    }
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
    // With --propose, everything that can be refused is refused before
    // the line is touched.
    let mut library = None;
    if let Some(file) = &a.propose {
        if file.exists() && !a.force {
            eprintln!(
                "gateway scan: {} exists; give another --propose FILE or add --force to overwrite it",
                file.display()
            );
            return super::EXIT_CONFIG;
        }
        let dir = a.profiles.clone().unwrap_or_else(|| {
            DEFAULT_LIBRARIES
                .iter()
                .map(PathBuf::from)
                .find(|d| d.is_dir())
                .unwrap_or_else(|| PathBuf::from(DEFAULT_LIBRARIES[0]))
        });
        match read_library(&dir) {
            Ok(models) => library = Some((std::path::absolute(&dir).unwrap_or(dir), models)),
            Err(errors) => {
                for e in errors {
                    eprintln!("gateway scan: {e}");
                }
                return super::EXIT_CONFIG;
            }
        }
    }
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
            if tally.answered.is_empty() {
                return 1;
            }
            match (&a.propose, &library) {
                (Some(file), Some((dir, models))) => {
                    propose(&a, file, dir, models, &tally.answered, timeout, is_tty).await
                }
                _ => 0,
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

/// Identifies the answering units, prints one line per unit and writes
/// the draft.
async fn propose(
    a: &ScanArgs,
    file: &Path,
    profiles_dir: &Path,
    models: &[Model],
    answered: &[u8],
    timeout: Duration,
    is_tty: bool,
) -> u8 {
    let endpoint = match south::url::Endpoint::parse(&a.url) {
        Ok(e) => e,
        Err(e) => {
            eprintln!("gateway scan: {e}");
            return super::EXIT_CONFIG;
        }
    };
    let total = answered.len();
    let mut seen = 0usize;
    let started = Instant::now();
    let mut requests = 0usize;
    let result = south::identify(&a.url, answered, timeout, models, |unit, v, asked| {
        seen += 1;
        requests += asked;
        let name = |i: usize| models.get(i).map_or("?", |m| m.name.as_str());
        let line = match (v.choice(), v.matched.is_empty()) {
            (None, _) => format!("unit {unit:>3}: no profile of the library fits"),
            (Some(c), false) => format!(
                "unit {unit:>3}: {} (identified by {})",
                name(c),
                v.matched
                    .iter()
                    .find(|m| m.model == c)
                    .map_or("?", |m| m.evidence.as_str())
            ),
            (Some(c), true) => {
                let score = v.score_of(c).map(|s| format!("{} of {}", s.score, s.max));
                let second = v
                    .runner_up()
                    .map(|r| format!("; runner-up {} {} of {}", name(r.model), r.score, r.max))
                    .unwrap_or_default();
                format!(
                    "unit {unit:>3}: {} (score {}{second}; review)",
                    name(c),
                    score.unwrap_or_default()
                )
            }
        };
        if is_tty {
            eprint!("\r\x1b[K");
        }
        println!("{line}");
        if is_tty {
            eprint!("\r\x1b[K{}", bar_identify(seen, total));
            let _ = std::io::stderr().flush();
        } else {
            eprintln!("identifying: {seen}/{total} units, {requests} requests");
        }
    })
    .await;
    if is_tty {
        eprint!("\r\x1b[K");
    }
    let verdicts = match result {
        Ok(v) => v,
        Err(e) => {
            eprintln!("gateway scan: {e}");
            return super::EXIT_UNAVAILABLE;
        }
    };
    let text = propose::draft(&Proposal {
        endpoint: &endpoint,
        profiles_dir,
        models,
        verdicts: &verdicts,
        scanned: format!("{}-{}", a.units.start(), a.units.end()),
    });
    let written = if a.force {
        std::fs::write(file, text)
    } else {
        // Refused above when it existed; create_new closes the race.
        std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .open(file)
            .and_then(|mut f| f.write_all(text.as_bytes()))
    };
    match written {
        Ok(()) => {
            let unsure = verdicts
                .iter()
                .filter(|(_, v)| !v.doubts(models).is_empty())
                .count();
            println!(
                "draft written to {} ({} devices, {unsure} marked REVIEW; {requests} requests in {:.1} s); check it with `gateway check --config {}`",
                file.display(),
                verdicts
                    .iter()
                    .filter(|(_, v)| v.choice().is_some())
                    .count(),
                started.elapsed().as_secs_f64(),
                file.display()
            );
            0
        }
        Err(e) => {
            eprintln!("gateway scan: cannot write {}: {e}", file.display());
            super::EXIT_CONFIG
        }
    }
}

/// `[#####-----]  2/6 units identified`
fn bar_identify(seen: usize, total: usize) -> String {
    const W: usize = 30;
    let done = (seen * W).checked_div(total).unwrap_or(W);
    format!(
        "[{}{}] {seen:>3}/{total} units identified",
        "#".repeat(done),
        "-".repeat(W - done)
    )
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
