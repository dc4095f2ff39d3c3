//! Helpers for the end-to-end suite: find binaries, free ports, start and stop peers.
