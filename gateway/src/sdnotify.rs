//! systemd's notification protocol (`sd_notify(3)`), without libsystemd:
//! one datagram per state change to the socket named in `NOTIFY_SOCKET`.
//! Nothing happens when the variable is unset (not started by systemd with
//! `Type=notify`), so the calls are free to make everywhere.
//!
//! The gateway says `READY=1` when its engine has loaded the ledger and
//! tickets and the buses poll, `WATCHDOG=1` on every engine tick (1 s: the
//! main loop is alive, not only the process), `RELOADING=1`/`READY=1`
//! around a configuration reload and `STOPPING=1` when it stops.

use std::os::unix::net::UnixDatagram;

/// Sends `state` (e.g. `"READY=1"`) to systemd if it asked for
/// notifications. Errors are ignored: a missing or closed socket must not
/// stop the gateway.
pub fn notify(state: &str) {
    if let Some(path) = std::env::var_os("NOTIFY_SOCKET") {
        let _ = notify_to(&path, state);
    }
}

/// Sends `state` to the notification socket `path` (a file path, or
/// `@name` for an abstract socket).
pub fn notify_to(path: &std::ffi::OsStr, state: &str) -> std::io::Result<()> {
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket (Linux): "@name" means a leading NUL byte.
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), std::path::Path::new(path))?;
    }
    Ok(())
}

/// `READY=1` with a status line systemd shows in `systemctl status`.
pub fn ready(status: &str) {
    notify(&format!("READY=1\nSTATUS={status}"));
}

/// `WATCHDOG=1`: the main loop is alive.
pub fn watchdog() {
    notify("WATCHDOG=1");
}

/// `STOPPING=1`.
pub fn stopping() {
    notify("STOPPING=1");
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn sends_to_a_socket_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let rx = UnixDatagram::bind(&path).unwrap();
        notify_to(path.as_os_str(), "READY=1\nSTATUS=ok").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\nSTATUS=ok");
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("bms-test-{}", std::process::id());
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let rx = UnixDatagram::bind_addr(&addr).unwrap();
        notify_to(std::ffi::OsStr::new(&format!("@{name}")), "WATCHDOG=1").unwrap();
        let mut buf = [0u8; 64];
        let n = rx.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"WATCHDOG=1");
    }
}
