//! Waiting out a reconnection backoff without missing the broker's return.
//!
//! Full MQTT attempts (TCP, TLS, CONNECT and its CONNACK) are spaced out by
//! the exponential backoff (`[mqtt] reconnect_min` … `reconnect_max`), so a
//! broker that stays down is not hammered. Between two of them a cheap
//! probe, a bare TCP connect to the broker's port closed at once, runs
//! every [`PROBE_EVERY`] (jittered). The wait ends early, for a full
//! attempt at once, when a probe gets through after the port was seen
//! closed: the broker has come back. So the gateway is back within about a
//! second of its broker, however long the outage was, and a broker that is
//! away sees one TCP connection attempt a second.
//!
//! "Seen closed" means a probe during this wait failed, or the attempt
//! before the wait could not open a TCP connection ([`Watch::new`]). A port
//! that stays open while MQTT fails (the broker refuses our login, TLS
//! fails, a proxy answers in front of a dead broker) never ends a wait
//! early: those failures keep the backoff's pace.
//!
//! [`Watch`] is the decision, without IO or clock; [`wait_for_broker`] does
//! the waiting and probing. Shared by the gateway's publisher and the
//! dashboard's subscriber.

use std::time::Duration;

use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

/// How often the broker's port is probed during a backoff wait (±20 %).
pub const PROBE_EVERY: Duration = Duration::from_secs(1);

/// How long one probe may take (a host that drops packets).
pub const PROBE_TIMEOUT: Duration = Duration::from_secs(1);

/// What the probes of one wait have seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Watch {
    seen_closed: bool,
}

impl Watch {
    /// A new wait; `closed` when the attempt before it could not open a TCP
    /// connection (refused, host or network unreachable).
    pub fn new(closed: bool) -> Watch {
        Watch {
            seen_closed: closed,
        }
    }

    /// Feeds one probe result; true when the wait should end now (the port
    /// is open again after it was seen closed).
    pub fn observe(&mut self, open: bool) -> bool {
        if open {
            self.seen_closed
        } else {
            self.seen_closed = true;
            false
        }
    }
}

/// How a wait ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Wake {
    /// The whole wait passed.
    Elapsed,
    /// A probe found the broker back before the wait was over.
    Back,
    /// `stop` was cancelled.
    Stopped,
}

/// Waits up to `wait`, probing `host:port` every [`PROBE_EVERY`]; see the
/// module doc. `closed`: the last attempt could not open a TCP connection.
pub async fn wait_for_broker(
    host: &str,
    port: u16,
    wait: Duration,
    closed: bool,
    stop: &CancellationToken,
) -> Wake {
    let deadline = Instant::now() + wait;
    let mut watch = Watch::new(closed);
    loop {
        let next = Instant::now() + PROBE_EVERY.mul_f64(rand::random::<f64>() * 0.4 + 0.8);
        if next >= deadline {
            return tokio::select! {
                _ = stop.cancelled() => Wake::Stopped,
                _ = tokio::time::sleep_until(deadline) => Wake::Elapsed,
            };
        }
        tokio::select! {
            _ = stop.cancelled() => return Wake::Stopped,
            _ = tokio::time::sleep_until(next) => {}
        }
        let open = tokio::select! {
            _ = stop.cancelled() => return Wake::Stopped,
            r = tokio::time::timeout(PROBE_TIMEOUT, tokio::net::TcpStream::connect((host, port))) => {
                matches!(r, Ok(Ok(_)))
            }
        };
        if watch.observe(open) {
            return Wake::Back;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_port_seen_closed_then_open_ends_the_wait() {
        let mut w = Watch::new(false);
        assert!(!w.observe(true), "open from the start: no news");
        assert!(!w.observe(false));
        assert!(!w.observe(false));
        assert!(w.observe(true), "back after being seen closed");
    }

    #[test]
    fn a_refused_attempt_counts_as_seen_closed() {
        let mut w = Watch::new(true);
        assert!(w.observe(true));
    }

    #[test]
    fn a_port_that_stays_open_never_ends_the_wait() {
        let mut w = Watch::new(false);
        for _ in 0..100 {
            assert!(!w.observe(true));
        }
    }

    #[tokio::test]
    async fn the_wait_ends_soon_after_the_port_opens() {
        // A port that was free a moment ago: closed, then opened.
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .map(|a| a.port())
            .unwrap();
        let stop = CancellationToken::new();
        let opener = tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(1500)).await;
            tokio::net::TcpListener::bind(("127.0.0.1", port)).await
        });
        let started = std::time::Instant::now();
        let wake = wait_for_broker("127.0.0.1", port, Duration::from_secs(60), false, &stop).await;
        assert_eq!(wake, Wake::Back);
        assert!(started.elapsed() < Duration::from_secs(30));
        drop(opener.await);
    }

    #[tokio::test(start_paused = true)]
    async fn a_stop_ends_the_wait() {
        let stop = CancellationToken::new();
        stop.cancel();
        let wake = wait_for_broker("127.0.0.1", 9, Duration::from_secs(60), false, &stop).await;
        assert_eq!(wake, Wake::Stopped);
    }
}
