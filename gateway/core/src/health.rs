//! Device health: poll outcomes and fault rules → Up / Down / Maintenance /
//! Unknown, with debounce; hard alarms from critical points (issue #3).
