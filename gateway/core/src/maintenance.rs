//! Planned maintenance windows: one-off or weekly, per device or class, in
//! the site's time zone (issue #3).
