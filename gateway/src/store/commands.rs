//! The command queue: how a CLI (and later MQTT) asks a running gateway to
//! change tickets or maintenance windows. The engine owns the ticket book in
//! memory, so a change made behind its back would be overwritten; instead
//! the CLI enqueues a [`Command`], the engine applies it (about once a
//! second) and records the outcome, and the CLI waits for that outcome.

use gateway_core::maintenance::Window;
use rusqlite::{OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::db::{from_json, to_json};
use super::{Store, StoreError};

/// A change asked of the gateway.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Command {
    /// Acknowledge a ticket.
    Ack {
        /// Ticket id.
        id: u64,
        /// Who.
        by: String,
        /// Free text.
        note: String,
    },
    /// Resolve a ticket.
    Resolve {
        /// Ticket id.
        id: u64,
        /// Who.
        by: String,
        /// Free text.
        note: String,
    },
    /// Close a resolved ticket.
    Close {
        /// Ticket id.
        id: u64,
        /// Who.
        by: String,
        /// Free text.
        note: String,
    },
    /// Add a maintenance window (already checked against the others by the
    /// sender; the engine checks again).
    AddWindow(Window),
    /// Remove a stored maintenance window.
    RemoveWindow {
        /// Window id.
        id: String,
    },
}

impl Store {
    /// Queues a command for the running gateway; returns its id (strictly
    /// increasing, never reused).
    pub fn enqueue_command(&self, cmd: &Command) -> Result<i64, StoreError> {
        let json = to_json("command", cmd)?;
        self.write(|c| {
            c.execute("INSERT INTO commands (json) VALUES (?1)", [json])?;
            Ok(c.last_insert_rowid())
        })
    }

    /// Commands not yet finished, oldest first. A stored command that no
    /// longer decodes is returned as an error for the whole call; finish it
    /// with an error to get past it (see [`Store::fail_undecodable_commands`]).
    pub fn pending_commands(&self) -> Result<Vec<(i64, Command)>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, json FROM commands WHERE finished = 0 ORDER BY id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row?;
            out.push((id, from_json(|| format!("command {id}"), &json)?));
        }
        Ok(out)
    }

    /// Finishes every pending command whose JSON does not decode (written by
    /// another build) with an error result; returns how many.
    pub fn fail_undecodable_commands(&self) -> Result<usize, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, json FROM commands WHERE finished = 0 ORDER BY id")?;
        let bad: Vec<i64> = stmt
            .query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, String>(1)?)))?
            .filter_map(|row| match row {
                Ok((id, json)) if serde_json::from_str::<Command>(&json).is_err() => Some(Ok(id)),
                Ok(_) => None,
                Err(e) => Some(Err(e)),
            })
            .collect::<Result<_, _>>()?;
        for id in &bad {
            self.finish_command(
                *id,
                &Err(
                    "this gateway cannot read the command (written by another version)".to_owned(),
                ),
            )?;
        }
        Ok(bad.len())
    }

    /// Records a command's outcome (a message for the person who sent it).
    /// Finishing a command twice keeps the first outcome.
    pub fn finish_command(
        &self,
        id: i64,
        result: &Result<String, String>,
    ) -> Result<(), StoreError> {
        let (ok, text) = match result {
            Ok(t) => (true, t),
            Err(t) => (false, t),
        };
        self.write(|c| {
            c.execute(
                "UPDATE commands SET finished = 1, ok = ?2, result = ?3 WHERE id = ?1 AND finished = 0",
                params![id, ok, text],
            )?;
            Ok(())
        })
    }

    /// A command's outcome: `None` while pending (or for an unknown id).
    pub fn command_result(&self, id: i64) -> Result<Option<Result<String, String>>, StoreError> {
        let row: Option<(bool, Option<bool>, Option<String>)> = self
            .conn
            .query_row(
                "SELECT finished, ok, result FROM commands WHERE id = ?1",
                [id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        Ok(match row {
            Some((true, Some(true), text)) => Some(Ok(text.unwrap_or_default())),
            Some((true, _, text)) => Some(Err(text.unwrap_or_default())),
            _ => None,
        })
    }
}
