//! The BMS edge gateway library. The `gateway` binary is a thin shell over it.

pub mod south;
