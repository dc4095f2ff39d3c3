//! The audit of writes to devices (table `writes`, schema step 5): who
//! asked (the signed command's `by` and nonce), when, which device and
//! point, the value asked for, the value read before, the value sent, the
//! value read back and the result. One row per signed `write` command
//! that passed the signature checks, refused ones included (`result =
//! "refused"`, `new` empty): an installer sees every attempt, not only the
//! ones that reached a device. Read by `gateway writes log` and the
//! dashboard.

use gateway_core::state::UnixMs;
use rusqlite::params;
use serde::Serialize;

use super::{Store, StoreError};

/// One audit row.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct WriteRow {
    /// Row id (increasing).
    pub id: i64,
    /// When the gateway finished with the write, Unix ms.
    pub ts_ms: UnixMs,
    /// The operator named by the signed command.
    pub by: String,
    /// The command's nonce.
    pub command_id: String,
    /// Device id.
    pub device: String,
    /// Point name.
    pub point: String,
    /// The value asked for (JSON).
    pub requested: serde_json::Value,
    /// The value read before the write (JSON), when it was read.
    pub old: Option<serde_json::Value>,
    /// The value sent, when the write went to the device.
    pub new: Option<serde_json::Value>,
    /// The value read back, when it could be read.
    pub read_back: Option<serde_json::Value>,
    /// `ok`, `mismatch`, `device_error`, `timeout` or `refused`.
    pub result: String,
    /// Why, for people (a refusal's reason and detail, an exception code).
    pub detail: String,
}

/// Which rows [`Store::write_log`] returns.
#[derive(Clone, Debug, Default)]
pub struct WriteFilter {
    /// Only this device's.
    pub device: Option<String>,
    /// Only rows at or after this time (Unix ms).
    pub since_ms: Option<UnixMs>,
    /// At most this many, the newest (0: no limit).
    pub limit: usize,
}

fn text(v: Option<&serde_json::Value>) -> Option<String> {
    v.map(ToString::to_string)
}

fn json(s: Option<String>) -> Option<serde_json::Value> {
    s.and_then(|s| serde_json::from_str(&s).ok())
}

impl Store {
    /// Records one write (its `id` is ignored); returns the new row's id.
    pub fn record_write(&self, row: &WriteRow) -> Result<i64, StoreError> {
        self.write(|c| {
            c.execute(
                "INSERT INTO writes (ts_ms, by, command_id, device, point, requested, old, new, read_back, result, detail)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)",
                params![
                    row.ts_ms,
                    row.by,
                    row.command_id,
                    row.device,
                    row.point,
                    row.requested.to_string(),
                    text(row.old.as_ref()),
                    text(row.new.as_ref()),
                    text(row.read_back.as_ref()),
                    row.result,
                    row.detail,
                ],
            )?;
            Ok(c.last_insert_rowid())
        })
    }

    /// The audit rows matching `f`, oldest first.
    pub fn write_log(&self, f: &WriteFilter) -> Result<Vec<WriteRow>, StoreError> {
        let limit = if f.limit == 0 {
            i64::MAX
        } else {
            i64::try_from(f.limit).unwrap_or(i64::MAX)
        };
        let mut stmt = self.conn.prepare(
            "SELECT id, ts_ms, by, command_id, device, point, requested, old, new, read_back, result, detail
             FROM writes
             WHERE (?1 IS NULL OR device = ?1) AND ts_ms >= ?2
             ORDER BY id DESC LIMIT ?3",
        )?;
        let rows = stmt.query_map(
            params![f.device, f.since_ms.unwrap_or(i64::MIN), limit],
            |r| {
                Ok(WriteRow {
                    id: r.get(0)?,
                    ts_ms: r.get(1)?,
                    by: r.get(2)?,
                    command_id: r.get(3)?,
                    device: r.get(4)?,
                    point: r.get(5)?,
                    requested: json(r.get(6)?).unwrap_or(serde_json::Value::Null),
                    old: json(r.get(7)?),
                    new: json(r.get(8)?),
                    read_back: json(r.get(9)?),
                    result: r.get(10)?,
                    detail: r.get(11)?,
                })
            },
        )?;
        let mut out = rows.collect::<Result<Vec<_>, _>>()?;
        out.reverse();
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn row(device: &str, ts_ms: i64, result: &str) -> WriteRow {
        WriteRow {
            id: 0,
            ts_ms,
            by: "张工".into(),
            command_id: "c0ffee42".into(),
            device: device.into(),
            point: "setpoint".into(),
            requested: serde_json::json!(21.5),
            old: Some(serde_json::json!(20.0)),
            new: Some(serde_json::json!(21.5)),
            read_back: Some(serde_json::json!(21.5)),
            result: result.into(),
            detail: String::new(),
        }
    }

    #[test]
    fn audit_rows_are_kept_and_filtered_by_device_and_time() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path()).unwrap();
        store.record_write(&row("ahu-1", 1000, "ok")).unwrap();
        store.record_write(&row("ahu-2", 2000, "mismatch")).unwrap();
        let mut refused = row("ahu-1", 3000, "refused");
        refused.new = None;
        refused.old = None;
        refused.read_back = None;
        store.record_write(&refused).unwrap();
        let all = store.write_log(&WriteFilter::default()).unwrap();
        assert_eq!(all.len(), 3);
        assert_eq!(all[0].by, "张工");
        assert_eq!(all[0].old, Some(serde_json::json!(20.0)));
        assert_eq!(all[2].new, None);
        let ahu1 = store
            .write_log(&WriteFilter {
                device: Some("ahu-1".into()),
                ..WriteFilter::default()
            })
            .unwrap();
        assert_eq!(
            ahu1.iter().map(|r| r.ts_ms).collect::<Vec<_>>(),
            [1000, 3000]
        );
        let late = store
            .write_log(&WriteFilter {
                since_ms: Some(2000),
                ..WriteFilter::default()
            })
            .unwrap();
        assert_eq!(late.len(), 2);
        let newest = store
            .write_log(&WriteFilter {
                limit: 1,
                ..WriteFilter::default()
            })
            .unwrap();
        assert_eq!(newest[0].ts_ms, 3000);
    }
}
