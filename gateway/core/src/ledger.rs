//! The availability ledger: state intervals → availability and the other
//! figures over any window; month boundaries in the site's time zone (issue #3).
