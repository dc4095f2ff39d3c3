//! `gateway backup` and `gateway restore`: copies of the data directory's
//! SQLite databases made with SQLite's online backup, so a backup can be
//! taken while the gateway runs (it keeps writing; the copy is a consistent
//! snapshot) and a restore writes a consistent database whatever state the
//! target file is in.
//!
//! What is copied: `gateway.db` (ledger, tickets, windows, command queue),
//! and when present the MQTT and InfluxDB outboxes (messages not yet
//! delivered). The lock file is not copied. A restore needs the gateway
//! stopped (it takes the data directory's lock) and checks each copy with
//! `PRAGMA integrity_check` before writing anything.

use std::path::{Path, PathBuf};
use std::time::Duration;

use rusqlite::{Connection, OpenFlags};

use crate::north::outbox::{INFLUX_FILE, OUTBOX_FILE};
use crate::store::{DB_FILE, DataDirLock, data_dir_of};

/// The databases a data directory may hold, in the order they are copied.
pub const FILES: [&str; 3] = [DB_FILE, OUTBOX_FILE, INFLUX_FILE];

/// Where the data directory is: from a configuration or given.
#[derive(Debug, clap::Args)]
#[group(required = true, multiple = false)]
pub struct DataDirArgs {
    /// The gateway configuration file (its `data_dir` is used).
    #[arg(long, short)]
    pub config: Option<PathBuf>,
    /// The data directory itself, or a folder with one inside it (such as
    /// the folder a demo prints).
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
}

/// Arguments of `gateway backup`.
#[derive(Debug, clap::Args)]
pub struct BackupArgs {
    #[command(flatten)]
    pub dir: DataDirArgs,
    /// The folder to write the copies into (created; must not hold a backup already).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// Arguments of `gateway restore`.
#[derive(Debug, clap::Args)]
pub struct RestoreArgs {
    #[command(flatten)]
    pub dir: DataDirArgs,
    /// The folder a `gateway backup` wrote.
    #[arg(long, value_name = "DIR")]
    pub from: PathBuf,
    /// Replace databases that exist in the data directory (they are lost).
    #[arg(long)]
    pub force: bool,
}

fn resolve(dir: &DataDirArgs) -> Result<PathBuf, String> {
    if let Some(d) = &dir.data_dir {
        // A folder holding one gateway store is taken for it; anything else
        // (a fresh folder to restore into) as it is.
        return Ok(super::site::find_store_dir(d).unwrap_or_else(|_| d.clone()));
    }
    let Some(file) = &dir.config else {
        return Err("give --config FILE or --data-dir DIR".into());
    };
    match crate::files::load_config(file) {
        Ok(cfg) => Ok(data_dir_of(file, &cfg.data_dir)),
        Err(errors) => {
            super::print_config_errors(file, &errors);
            Err(format!(
                "cannot find the data directory from {}: give it with --data-dir DIR",
                file.display()
            ))
        }
    }
}

/// Copies `src` into `dst` page by page, `step` pages at a time, reporting
/// progress on stderr for large files.
fn copy_db(src: &Connection, dst_path: &Path, label: &str) -> Result<(), String> {
    let mut dst = Connection::open(dst_path)
        .map_err(|e| format!("cannot open {}: {e}", dst_path.display()))?;
    let backup = rusqlite::backup::Backup::new(src, &mut dst)
        .map_err(|e| format!("cannot start copying {label}: {e}"))?;
    let mut last = 0;
    loop {
        use rusqlite::backup::StepResult;
        match backup.step(1024) {
            Ok(StepResult::Done) => break,
            Ok(StepResult::More) => {}
            // The running gateway holds a write lock for a moment: wait.
            Ok(StepResult::Busy | StepResult::Locked) => {
                std::thread::sleep(Duration::from_millis(5))
            }
            Ok(_) => std::thread::sleep(Duration::from_millis(5)),
            Err(e) => return Err(format!("copying {label} failed: {e}")),
        }
        let p = backup.progress();
        if p.pagecount > 25_000 {
            let done = 100 - (i64::from(p.remaining) * 100 / i64::from(p.pagecount.max(1)));
            if done >= last + 10 {
                last = done;
                eprintln!("  {label}: {done} %");
            }
        }
    }
    Ok(())
}

fn check_integrity(path: &Path) -> Result<(), String> {
    let c = Connection::open_with_flags(path, OpenFlags::SQLITE_OPEN_READ_ONLY)
        .map_err(|e| format!("cannot open {}: {e}", path.display()))?;
    let r: String = c
        .query_row("PRAGMA integrity_check", [], |r| r.get(0))
        .map_err(|e| format!("{}: integrity check failed: {e}", path.display()))?;
    if r == "ok" {
        Ok(())
    } else {
        Err(format!("{}: damaged: {r}", path.display()))
    }
}

fn size(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

/// Runs `gateway backup`; returns the exit code.
pub fn backup(a: &BackupArgs) -> u8 {
    match do_backup(a) {
        Ok(()) => 0,
        Err((code, e)) => {
            eprintln!("gateway backup: {e}");
            code
        }
    }
}

fn do_backup(a: &BackupArgs) -> Result<(), (u8, String)> {
    let dir = resolve(&a.dir).map_err(|e| (super::EXIT_CONFIG, e))?;
    let src_db = dir.join(DB_FILE);
    if !src_db.is_file() {
        return Err((
            super::EXIT_CONFIG,
            format!(
                "{} has no {DB_FILE}: no gateway has run with this data directory",
                dir.display()
            ),
        ));
    }
    if FILES.iter().any(|f| a.out.join(f).exists()) {
        return Err((
            super::EXIT_CONFIG,
            format!(
                "{} already holds a backup; give an empty or new folder",
                a.out.display()
            ),
        ));
    }
    std::fs::create_dir_all(&a.out)
        .map_err(|e| (1, format!("cannot create {}: {e}", a.out.display())))?;
    for f in FILES {
        let src = dir.join(f);
        if !src.is_file() {
            continue;
        }
        // Read-write so that SQLite can read the WAL of a running gateway.
        let conn = Connection::open_with_flags(&src, OpenFlags::SQLITE_OPEN_READ_WRITE)
            .map_err(|e| (1, format!("cannot open {}: {e}", src.display())))?;
        conn.busy_timeout(crate::store::BUSY_TIMEOUT)
            .map_err(|e| (1, e.to_string()))?;
        let dst = a.out.join(f);
        copy_db(&conn, &dst, f).map_err(|e| (1, e))?;
        check_integrity(&dst).map_err(|e| (1, e))?;
        println!("{f}: {} bytes → {}", size(&dst), dst.display());
    }
    println!(
        "backup of {} complete in {}",
        dir.display(),
        a.out.display()
    );
    Ok(())
}

/// Runs `gateway restore`; returns the exit code.
pub fn restore(a: &RestoreArgs) -> u8 {
    match do_restore(a) {
        Ok(()) => 0,
        Err((code, e)) => {
            eprintln!("gateway restore: {e}");
            code
        }
    }
}

fn do_restore(a: &RestoreArgs) -> Result<(), (u8, String)> {
    let dir = resolve(&a.dir).map_err(|e| (super::EXIT_CONFIG, e))?;
    let present: Vec<&str> = FILES
        .iter()
        .copied()
        .filter(|f| a.from.join(f).is_file())
        .collect();
    if !present.contains(&DB_FILE) {
        return Err((
            super::EXIT_CONFIG,
            format!(
                "{} holds no {DB_FILE}: not a folder written by `gateway backup`",
                a.from.display()
            ),
        ));
    }
    // Check every copy before touching the data directory.
    for f in &present {
        check_integrity(&a.from.join(f)).map_err(|e| (1, e))?;
    }
    let _lock = match DataDirLock::try_acquire(&dir) {
        Ok(Some(l)) => l,
        Ok(None) => {
            return Err((
                1,
                format!(
                    "a gateway is running with {}; stop it first (systemctl stop bms-gateway)",
                    dir.display()
                ),
            ));
        }
        Err(e) => return Err((1, format!("cannot lock {}: {e}", dir.display()))),
    };
    let existing: Vec<&str> = FILES
        .iter()
        .copied()
        .filter(|f| dir.join(f).is_file())
        .collect();
    if !existing.is_empty() && !a.force {
        return Err((
            super::EXIT_CONFIG,
            format!(
                "{} already holds {}; add --force to replace them (what they hold is lost)",
                dir.display(),
                existing.join(", ")
            ),
        ));
    }
    for f in FILES {
        let dst = dir.join(f);
        if present.contains(&f) {
            // The file replaced goes with its WAL and index: a damaged
            // database's WAL must not be replayed over the copy.
            for suffix in ["", "-wal", "-shm"] {
                let p = PathBuf::from(format!("{}{suffix}", dst.display()));
                match std::fs::remove_file(&p) {
                    Ok(()) => {}
                    Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
                    Err(e) => return Err((1, format!("cannot remove {}: {e}", p.display()))),
                }
            }
            let src = Connection::open_with_flags(a.from.join(f), OpenFlags::SQLITE_OPEN_READ_ONLY)
                .map_err(|e| (1, format!("cannot open {}: {e}", a.from.join(f).display())))?;
            copy_db(&src, &dst, f).map_err(|e| (1, e))?;
            check_integrity(&dst).map_err(|e| (1, e))?;
            println!("{f}: restored ({} bytes)", size(&dst));
        } else if dst.is_file() {
            // An outbox the backup did not have would replay messages
            // from after the backup: remove it with its WAL.
            for suffix in ["", "-wal", "-shm"] {
                let p = PathBuf::from(format!("{}{suffix}", dst.display()));
                let _ = std::fs::remove_file(p);
            }
            println!("{f}: removed (not in the backup)");
        }
    }
    println!(
        "restore of {} complete from {}",
        dir.display(),
        a.from.display()
    );
    Ok(())
}
