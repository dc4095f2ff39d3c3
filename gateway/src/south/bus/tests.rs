//! Scheduler tests on a paused clock with scripted links.
