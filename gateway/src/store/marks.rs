//! The data directory's marks file (`gateway.marks`): proof that a gateway
//! has run with this directory, and the ticket id high-water mark kept
//! outside the database.
//!
//! A ledger that is lost (a 0-byte or deleted `gateway.db`) must not be
//! taken for a new installation: the history and the open tickets would
//! be gone without a word, and ticket #1 issued again. The marks file is
//! written by the gateway when it opens its database and whenever a ticket
//! with a new id is stored; at start, a missing or empty database beside a
//! marks file (or beside an outbox that has been used) is refused, and the
//! next ticket id is the higher of the database's and the file's, so that
//! a database restored from an older backup never hands out an id again.
//!
//! The file is small text, replaced atomically (written beside, then
//! renamed):
//!
//! ```text
//! # Written by the BMS gateway: a gateway has run with this data directory.
//! next_ticket_id 42
//! ```

use std::path::{Path, PathBuf};

/// The marks file's name inside the data directory.
pub const MARKS_FILE: &str = "gateway.marks";

/// What the marks file holds.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Marks {
    /// The lowest ticket id never handed out, as far as the file knows.
    pub next_ticket_id: u64,
}

/// The marks file of `data_dir`.
pub fn marks_path(data_dir: &Path) -> PathBuf {
    data_dir.join(MARKS_FILE)
}

/// Reads the marks of `data_dir`: `None` when there is no file; a file that
/// does not parse counts as present with no ticket id known.
pub fn read(data_dir: &Path) -> Option<Marks> {
    let text = std::fs::read_to_string(marks_path(data_dir)).ok()?;
    let mut m = Marks::default();
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        if let (Some("next_ticket_id"), Some(v)) = (parts.next(), parts.next())
            && let Ok(n) = v.parse::<u64>()
        {
            m.next_ticket_id = n;
        }
    }
    Some(m)
}

/// Replaces the marks file of `data_dir` (write beside, then rename).
pub fn write(data_dir: &Path, m: Marks) -> std::io::Result<()> {
    let tmp = data_dir.join(format!("{MARKS_FILE}.tmp"));
    let text = format!(
        "# Written by the BMS gateway: a gateway has run with this data directory.\n\
         # Do not delete it: without it a lost gateway.db is taken for a new installation.\n\
         next_ticket_id {}\n",
        m.next_ticket_id
    );
    std::fs::write(&tmp, text)?;
    std::fs::rename(&tmp, marks_path(data_dir))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marks_round_trip_and_an_unreadable_file_still_counts_as_present() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(read(dir.path()), None);
        write(dir.path(), Marks { next_ticket_id: 42 }).unwrap();
        assert_eq!(read(dir.path()), Some(Marks { next_ticket_id: 42 }));
        std::fs::write(marks_path(dir.path()), "garbage").unwrap();
        assert_eq!(read(dir.path()), Some(Marks::default()));
    }
}
