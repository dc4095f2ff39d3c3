//! The command queue: how a CLI (and later MQTT) asks a running gateway to
//! change tickets or maintenance windows. The engine owns the ticket book in
//! memory, so a change made behind its back would be overwritten; instead
//! the CLI enqueues a [`Command`], the engine applies it (about once a
//! second) and records the outcome, and the CLI waits for that outcome.

use chrono_tz::Tz;
use gateway_core::config::TicketsConfig;
use gateway_core::maintenance::{MaintenanceError, Window, check_windows};
use gateway_core::state::UnixMs;
use gateway_core::tickets::{Action, TicketBook, TicketError, TicketEvent};
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
    /// Mark one's arrival on site for a ticket (到场).
    Arrive {
        /// Ticket id.
        id: u64,
        /// Who.
        by: String,
        /// Free text.
        note: String,
        /// When they arrived, if not when the command is applied.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        at_ms: Option<UnixMs>,
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
    /// Write a value to a device's point. Never queued: the command
    /// handler checks it against the configuration in force and gives it
    /// to the device's bus (`south::writes`); the engine refuses one found
    /// in the queue.
    Write {
        /// Device id.
        device: String,
        /// Point name.
        point: String,
        /// The value to set.
        value: WriteValue,
        /// Who.
        by: String,
    },
}

/// The value of a write, as the command carried it: a boolean or a finite
/// number (an integer is kept exact).
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum WriteValue {
    /// `true` / `false`.
    Bool(bool),
    /// An integer that fits `i64`.
    Int(i64),
    /// A non-negative integer beyond `i64`.
    UInt(u64),
    /// Any other number; always finite (the verifier refuses others).
    Float(f64),
}

// Floats in a `WriteValue` are finite (refused otherwise at the edge), so
// equality is reflexive.
impl Eq for WriteValue {}

impl WriteValue {
    /// From a JSON value: a boolean or a finite number; `None` otherwise.
    pub fn from_json(v: &serde_json::Value) -> Option<WriteValue> {
        match v {
            serde_json::Value::Bool(b) => Some(WriteValue::Bool(*b)),
            serde_json::Value::Number(n) => {
                if let Some(i) = n.as_i64() {
                    Some(WriteValue::Int(i))
                } else if let Some(u) = n.as_u64() {
                    Some(WriteValue::UInt(u))
                } else {
                    n.as_f64().filter(|f| f.is_finite()).map(WriteValue::Float)
                }
            }
            _ => None,
        }
    }

    /// From the command line: `true`, `false`, `on`, `off` or a number.
    pub fn parse(s: &str) -> Option<WriteValue> {
        match s.trim() {
            "true" | "on" => return Some(WriteValue::Bool(true)),
            "false" | "off" => return Some(WriteValue::Bool(false)),
            _ => {}
        }
        let n: serde_json::Value = serde_json::from_str(s.trim()).ok()?;
        match n {
            serde_json::Value::Number(_) => WriteValue::from_json(&n),
            _ => None,
        }
    }

    /// As the decoder's value type.
    pub fn to_value(self) -> gateway_core::model::Value {
        use gateway_core::model::Value;
        match self {
            WriteValue::Bool(b) => Value::Bool(b),
            WriteValue::Int(i) => Value::Int(i),
            WriteValue::UInt(u) => Value::UInt(u),
            WriteValue::Float(f) => Value::Float(f),
        }
    }

    /// As JSON.
    pub fn to_json(self) -> serde_json::Value {
        match self {
            WriteValue::Bool(b) => serde_json::Value::Bool(b),
            WriteValue::Int(i) => i.into(),
            WriteValue::UInt(u) => u.into(),
            WriteValue::Float(f) => serde_json::Number::from_f64(f)
                .map_or(serde_json::Value::Null, serde_json::Value::Number),
        }
    }
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
    /// another build) with an error result at `now_ms`; returns how many.
    pub fn fail_undecodable_commands(&self, now_ms: UnixMs) -> Result<usize, StoreError> {
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
                now_ms,
            )?;
        }
        Ok(bad.len())
    }

    /// Records a command's outcome (a message for the person who sent it)
    /// and when it finished (retention deletes it `[store] keep_months`
    /// later). Finishing a command twice keeps the first outcome.
    pub fn finish_command(
        &self,
        id: i64,
        result: &Result<String, String>,
        now_ms: UnixMs,
    ) -> Result<(), StoreError> {
        let (ok, text) = match result {
            Ok(t) => (true, t),
            Err(t) => (false, t),
        };
        self.write(|c| {
            c.execute(
                "UPDATE commands SET finished = 1, ok = ?2, result = ?3, done_ms = ?4
                 WHERE id = ?1 AND finished = 0",
                params![id, ok, text, now_ms],
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

/// Why a command was refused; nothing was changed. Its text is the outcome
/// the sender sees.
#[derive(Debug, thiserror::Error)]
pub enum CommandError {
    /// The ticket book refused (no such ticket, wrong state, no actor).
    #[error(transparent)]
    Ticket(#[from] TicketError),
    /// The new window does not fit with the others (each error names them).
    #[error("{}", .0.iter().map(ToString::to_string).collect::<Vec<_>>().join("; "))]
    Windows(Vec<MaintenanceError>),
    /// No stored window has this id.
    #[error("no maintenance window {0:?} was added with `gateway maintenance add`")]
    NoWindow(String),
    /// The window comes from the configuration file.
    #[error(
        "maintenance window {0:?} is in the configuration file; remove its [[maintenance]] entry there"
    )]
    ConfigWindow(String),
    /// The ticket was closed long ago and deleted by retention.
    #[error(
        "ticket #{0} was closed before the history this gateway keeps and has been deleted ([store] keep_months)"
    )]
    Deleted(u64),
    /// The database failed.
    #[error(transparent)]
    Store(#[from] StoreError),
}

impl Command {
    /// For a ticket command: (ticket id, action, by, note).
    pub fn ticket_action(&self) -> Option<(u64, Action, &str, &str)> {
        match self {
            Command::Ack { id, by, note } => Some((*id, Action::Acknowledge, by, note)),
            Command::Arrive { id, by, note, .. } => Some((*id, Action::Arrive, by, note)),
            Command::Resolve { id, by, note } => Some((*id, Action::Resolve, by, note)),
            Command::Close { id, by, note } => Some((*id, Action::Close, by, note)),
            Command::AddWindow(_) | Command::RemoveWindow { .. } | Command::Write { .. } => None,
        }
    }
}

/// Applies a ticket command to the book: the events to save and the
/// outcome for the sender (`ticket #12 acknowledged by 张工`). `None` for a
/// window command. Shared by the engine and the CLI of a stopped gateway.
pub fn apply_ticket_command(
    book: &mut TicketBook,
    cmd: &Command,
    now_ms: UnixMs,
) -> Option<Result<(Vec<TicketEvent>, String), TicketError>> {
    let (id, action, by, note) = cmd.ticket_action()?;
    let events = match action {
        Action::Acknowledge => book.ack(id, by, note, now_ms),
        Action::Arrive => {
            let at_ms = match cmd {
                Command::Arrive { at_ms, .. } => *at_ms,
                _ => None,
            };
            book.arrive(id, by, note, at_ms, now_ms)
        }
        Action::Resolve => book.resolve(id, by, note, now_ms),
        Action::Close => book.close(id, by, note, now_ms),
    };
    Some(events.map(|ev| (ev, format!("ticket #{id} {action} by {}", by.trim()))))
}

/// Checks that `new` fits with the configured and stored windows: the
/// problems `check_windows` finds in the combined list that it does not
/// find without `new`.
pub fn check_new_window(
    configured: &[Window],
    stored: &[Window],
    new: &Window,
) -> Result<(), CommandError> {
    let mut all: Vec<Window> = configured.iter().chain(stored).cloned().collect();
    let before = check_windows(&all);
    all.push(new.clone());
    let fresh: Vec<MaintenanceError> = check_windows(&all)
        .into_iter()
        .filter(|e| !before.contains(e))
        .collect();
    if fresh.is_empty() {
        Ok(())
    } else {
        Err(CommandError::Windows(fresh))
    }
}

/// Applies a window command to the stored windows (checked against the
/// configured ones): the outcome for the sender. `None` for a ticket
/// command. The caller reloads [`Store::windows`] afterwards.
pub fn apply_window_command(
    store: &Store,
    configured: &[Window],
    cmd: &Command,
) -> Option<Result<String, CommandError>> {
    let result = match cmd {
        Command::AddWindow(w) => store
            .windows()
            .map_err(CommandError::from)
            .and_then(|stored| {
                check_new_window(configured, &stored, w)?;
                store.add_window(w)?;
                Ok(format!("maintenance window {:?} added", w.id))
            }),
        Command::RemoveWindow { id } => {
            if configured.iter().any(|w| &w.id == id) {
                Err(CommandError::ConfigWindow(id.clone()))
            } else {
                match store.remove_window(id) {
                    Ok(true) => Ok(format!("maintenance window {id:?} removed")),
                    Ok(false) => Err(CommandError::NoWindow(id.clone())),
                    Err(e) => Err(e.into()),
                }
            }
        }
        _ => return None,
    };
    Some(result)
}

impl Store {
    /// Applies a command as a stopped gateway would, in one `BEGIN
    /// IMMEDIATE` transaction (the CLI's path when no gateway runs): a
    /// ticket command through a `TicketBook` loaded with
    /// [`tickets_for_book`](Self::tickets_for_book), its events saved; a
    /// window command through [`apply_window_command`]. Returns the outcome
    /// for the sender; on error nothing changed.
    pub fn apply_command_locally(
        &mut self,
        cfg: &TicketsConfig,
        tz: Tz,
        configured_windows: &[Window],
        cmd: &Command,
        now_ms: UnixMs,
    ) -> Result<String, CommandError> {
        self.transaction(|s| {
            if let Some(r) = apply_window_command(s, configured_windows, cmd) {
                return r;
            }
            let tickets = s.tickets_for_book(cfg, now_ms)?;
            let mut book = TicketBook::new(cfg, tz, tickets, s.next_ticket_id()?);
            match apply_ticket_command(&mut book, cmd, now_ms) {
                Some(Ok((events, text))) => {
                    s.save_ticket_events(&events)?;
                    Ok(text)
                }
                Some(Err(TicketError::Unknown(id))) => {
                    // Closed long ago: still a state error, not "no such ticket".
                    match (s.ticket(id)?, cmd.ticket_action()) {
                        (Some(t), Some((_, action, _, _))) => Err(TicketError::WrongState {
                            id,
                            state: t.state,
                            action,
                        }
                        .into()),
                        _ => Err(TicketError::Unknown(id).into()),
                    }
                }
                Some(Err(e)) => Err(e.into()),
                None => Ok(String::new()),
            }
        })
    }
}
