//! The serde shape of a device profile (`config/profiles/<name>.toml`).

use std::collections::BTreeMap;

use serde::Deserialize;

use crate::model::{Area, WordOrder};

/// A device model described once: its points and health hints.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Profile {
    /// Human description: maker, model, manual the map follows.
    pub description: String,
    /// Word order used by points that do not state their own.
    #[serde(default)]
    pub order: WordOrder,
    /// Points, in any order.
    #[serde(rename = "point")]
    pub points: Vec<PointDef>,
    /// Hints for health rules (condition text by name), used by the health layer.
    #[serde(default)]
    pub health: BTreeMap<String, String>,
}

/// Type names accepted in `type = "…"`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TypeName {
    Bool,
    Bit,
    U16,
    I16,
    U32,
    I32,
    U64,
    I64,
    F32,
    F64,
    String,
}

/// One point of a profile, as written.
#[derive(Clone, Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointDef {
    pub name: String,
    #[serde(default)]
    pub unit: String,
    pub area: Area,
    /// Protocol (0-based) address.
    pub address: u16,
    #[serde(rename = "type")]
    pub type_name: TypeName,
    /// For `string`: length in bytes (characters).
    #[serde(default)]
    pub length: Option<u16>,
    /// For `bit`: bit number in the register, 0 = least significant.
    #[serde(default)]
    pub bit: Option<u8>,
    /// Overrides the profile's word order.
    #[serde(default)]
    pub order: Option<WordOrder>,
    #[serde(default = "one")]
    pub scale: f64,
    #[serde(default)]
    pub offset: f64,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    /// Poll at the fast alarm interval.
    #[serde(default)]
    pub alarm: bool,
    /// A hard alarm point (opens a ticket at once when active).
    #[serde(default)]
    pub critical: bool,
    /// Free text shown in tooltips and docs.
    #[serde(default)]
    pub description: Option<String>,
}

const fn one() -> f64 {
    1.0
}

/// Per-device changes to one profile point.
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PointOverride {
    pub scale: Option<f64>,
    pub offset: Option<f64>,
    pub unit: Option<String>,
    pub min: Option<f64>,
    pub max: Option<f64>,
    pub alarm: Option<bool>,
    pub critical: Option<bool>,
    pub order: Option<WordOrder>,
    /// false = do not poll this point on this device.
    pub enabled: Option<bool>,
}
