//! `gateway dead-letters`: the lines the time-series store refused (a 4xx
//! other than a wrong token, bucket or address), set aside so that writing
//! went on. Prints them as line protocol on stdout, oldest first, ready to
//! be fixed and written again (e.g. with `curl --data-binary @file`); a
//! summary by status and reason goes to stderr. `--clear` then deletes the
//! lines printed (works while the gateway runs).

use std::collections::BTreeMap;
use std::sync::Arc;

use crate::north::dead_letters::{DEAD_LETTERS_FILE, DeadLetters};

/// Arguments of `gateway dead-letters`.
#[derive(Debug, clap::Args)]
pub struct DeadLettersArgs {
    #[command(flatten)]
    pub site: super::site::SiteArgs,
    /// After printing them, delete the lines printed.
    #[arg(long)]
    pub clear: bool,
}

/// Runs `gateway dead-letters`; returns the exit code.
pub fn dead_letters(args: &DeadLettersArgs) -> u8 {
    let data_dir = match (&args.site.data_dir, &args.site.config) {
        (Some(d), _) => super::site::find_store_dir(d).unwrap_or_else(|_| d.clone()),
        (None, Some(file)) => match crate::files::load_config(file) {
            Ok(cfg) => crate::store::data_dir_of(file, &cfg.data_dir),
            Err(errors) => {
                super::print_config_errors(file, &errors);
                return super::EXIT_CONFIG;
            }
        },
        (None, None) => {
            eprintln!("gateway dead-letters: give --config FILE or --data-dir DIR");
            return super::EXIT_CONFIG;
        }
    };
    if !data_dir.join(DEAD_LETTERS_FILE).exists() {
        eprintln!(
            "no refused lines: {} does not exist (the store has refused nothing)",
            data_dir.join(DEAD_LETTERS_FILE).display()
        );
        return 0;
    }
    let mut dead = match DeadLetters::open(&data_dir, Arc::default()) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("gateway dead-letters: {e}");
            return super::EXIT_UNAVAILABLE;
        }
    };
    let all = match dead.list() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("gateway dead-letters: {e}");
            return super::EXIT_UNAVAILABLE;
        }
    };
    let mut out = String::new();
    let mut by_reason: BTreeMap<(u16, &str), usize> = BTreeMap::new();
    for d in &all {
        out.push_str(&d.line);
        out.push('\n');
        *by_reason.entry((d.status, d.reason.as_str())).or_default() += 1;
    }
    print!("{out}");
    eprintln!(
        "{} refused line{}",
        all.len(),
        if all.len() == 1 { "" } else { "s" }
    );
    for ((status, reason), n) in &by_reason {
        eprintln!("  {n} × {status}: {reason}");
    }
    if args.clear
        && let Some(last) = all.last()
    {
        match dead.clear_through(last.id) {
            Ok(n) => eprintln!("{n} deleted"),
            Err(e) => {
                eprintln!("gateway dead-letters: {e}");
                return super::EXIT_UNAVAILABLE;
            }
        }
    }
    0
}
