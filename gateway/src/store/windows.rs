//! Maintenance windows added at run time (the CLI's `maintenance add`), and
//! the configured devices (so that a CLI can show names and thresholds).
//! Windows from the configuration file are not stored: the engine combines
//! both lists.

use gateway_core::maintenance::Window;
use gateway_core::model::DeviceClass;
use rusqlite::params;
use serde::{Deserialize, Serialize};

use super::db::{from_json, to_json};
use super::{Store, StoreError};

/// A device as the running gateway last configured it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct DeviceRow {
    /// Device id.
    pub id: String,
    /// Chinese display name.
    pub name_zh: String,
    /// English display name.
    pub name_en: String,
    /// Equipment class.
    pub class: DeviceClass,
    /// Availability target in per cent.
    pub threshold_percent: f64,
}

impl DeviceRow {
    /// The row of a configured device.
    pub fn of(d: &gateway_core::config::ResolvedDevice) -> DeviceRow {
        DeviceRow {
            id: d.id.clone(),
            name_zh: d.name_zh.clone(),
            name_en: d.name_en.clone(),
            class: d.class,
            threshold_percent: d.threshold_percent,
        }
    }
}

impl Store {
    /// Stores a window; [`StoreError::WindowExists`] when its id is taken.
    /// Overlaps are the caller's to check (`check_windows`).
    pub fn add_window(&self, w: &Window) -> Result<(), StoreError> {
        let json = to_json("maintenance window", w)?;
        self.write(|c| {
            let n = c.execute(
                "INSERT INTO windows (id, json) VALUES (?1, ?2) ON CONFLICT (id) DO NOTHING",
                params![w.id, json],
            )?;
            if n == 0 {
                return Err(StoreError::WindowExists(w.id.clone()));
            }
            Ok(())
        })
    }

    /// Removes a stored window; false when there was none with this id.
    pub fn remove_window(&self, id: &str) -> Result<bool, StoreError> {
        self.write(|c| Ok(c.execute("DELETE FROM windows WHERE id = ?1", [id])? > 0))
    }

    /// Stored windows, in the order they were added.
    pub fn windows(&self) -> Result<Vec<Window>, StoreError> {
        let mut stmt = self
            .conn
            .prepare("SELECT id, json FROM windows ORDER BY seq")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, json) = row?;
            out.push(from_json(|| format!("maintenance window {id:?}"), &json)?);
        }
        Ok(out)
    }

    /// Inserts or updates devices by id (devices no longer configured are
    /// kept: their history still refers to them).
    pub fn upsert_devices(&self, devices: &[DeviceRow]) -> Result<(), StoreError> {
        self.write(|c| {
            let mut stmt = c.prepare(
                "INSERT INTO devices (id, name_zh, name_en, class, threshold_percent)
                 VALUES (?1, ?2, ?3, ?4, ?5)
                 ON CONFLICT (id) DO UPDATE SET name_zh = excluded.name_zh, name_en = excluded.name_en,
                     class = excluded.class, threshold_percent = excluded.threshold_percent",
            )?;
            for d in devices {
                stmt.execute(params![
                    d.id,
                    d.name_zh,
                    d.name_en,
                    d.class.as_str(),
                    d.threshold_percent
                ])?;
            }
            Ok(())
        })
    }

    /// Stored devices, by id.
    pub fn devices(&self) -> Result<Vec<DeviceRow>, StoreError> {
        let mut stmt = self.conn.prepare(
            "SELECT id, name_zh, name_en, class, threshold_percent FROM devices ORDER BY id",
        )?;
        let rows = stmt.query_map([], |r| {
            Ok((
                r.get::<_, String>(0)?,
                r.get::<_, String>(1)?,
                r.get::<_, String>(2)?,
                r.get::<_, String>(3)?,
                r.get::<_, f64>(4)?,
            ))
        })?;
        let mut out = Vec::new();
        for row in rows {
            let (id, name_zh, name_en, class, threshold_percent) = row?;
            let class = DeviceClass::ALL
                .into_iter()
                .find(|c| c.as_str() == class)
                .ok_or_else(|| StoreError::Corrupt {
                    what: format!("device {id:?}"),
                    reason: format!("unknown class {class:?}"),
                })?;
            out.push(DeviceRow {
                id,
                name_zh,
                name_en,
                class,
                threshold_percent,
            });
        }
        Ok(out)
    }
}
