//! The `[simulator]` section: how `gateway simulate` serves the building.

use serde::Deserialize;

/// How the simulator serves this configuration's buses (see `docs/config.md`).
#[derive(Clone, Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SimulatorConfig {}
