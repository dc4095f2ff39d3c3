//! Endpoint URLs for the ad-hoc commands (`gateway read`, `gateway scan`).
//!
//! Three forms are accepted:
//!
//! - `tcp://host:port` — Modbus TCP (port 502 when omitted);
//! - `rtu:///dev/ttyUSB0?baud=9600&parity=even&stop_bits=1&data_bits=8` —
//!   Modbus RTU on a local serial port (defaults: 9600 baud, no parity,
//!   1 stop bit, 8 data bits);
//! - `rtu+tcp://host:port` — RTU frames over a TCP socket to a serial device
//!   server (port 502 when omitted, although such servers often use 4001 or
//!   similar; say it).
//!
//! An [`Endpoint`] turns into the same [`ResolvedBus`] the configuration
//! produces, so ad-hoc reads go through exactly the transport the daemon uses.

use std::fmt;
use std::str::FromStr;
use std::time::Duration;

use gateway_core::config::{BusKind, Parity, ResolvedBus};

/// Default Modbus TCP port.
const DEFAULT_PORT: u16 = 502;

/// A URL that could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UrlError {
    /// The scheme is not one of `tcp`, `rtu`, `rtu+tcp`.
    #[error(
        "unknown scheme in {url:?}: use tcp://host:port, rtu:///dev/ttyUSB0?baud=9600 or rtu+tcp://host:port"
    )]
    Scheme {
        /// The URL as given.
        url: String,
    },
    /// `host:port` is missing or malformed.
    #[error("bad host:port {value:?} in {url:?}: expected e.g. tcp://192.168.1.10:502")]
    HostPort {
        /// The URL as given.
        url: String,
        /// The offending part.
        value: String,
    },
    /// The serial port path is empty.
    #[error("no serial port in {url:?}: expected e.g. rtu:///dev/ttyUSB0?baud=9600")]
    NoPort {
        /// The URL as given.
        url: String,
    },
    /// A query parameter is unknown or its value is invalid.
    #[error("bad parameter {key:?}={value:?} in {url:?}: {expected}")]
    Param {
        /// The URL as given.
        url: String,
        /// Parameter name.
        key: String,
        /// Parameter value.
        value: String,
        /// What would have been accepted.
        expected: &'static str,
    },
}

/// Where an ad-hoc command talks to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// Modbus TCP to `host:port`.
    Tcp {
        /// `host:port`.
        address: String,
    },
    /// Modbus RTU on a local serial port.
    Rtu {
        /// Device path, e.g. `/dev/ttyUSB0`.
        path: String,
        /// Bits per second.
        baud: u32,
        /// Parity.
        parity: Parity,
        /// 1 or 2.
        stop_bits: u8,
        /// 7 or 8.
        data_bits: u8,
    },
    /// Modbus RTU frames over TCP to `host:port`.
    RtuOverTcp {
        /// `host:port`.
        address: String,
    },
}

impl Endpoint {
    /// Parses one of the URL forms described in the module documentation.
    pub fn parse(url: &str) -> Result<Self, UrlError> {
        if let Some(rest) = url.strip_prefix("tcp://") {
            Ok(Endpoint::Tcp {
                address: host_port(url, rest)?,
            })
        } else if let Some(rest) = url.strip_prefix("rtu+tcp://") {
            Ok(Endpoint::RtuOverTcp {
                address: host_port(url, rest)?,
            })
        } else if let Some(rest) = url.strip_prefix("rtu://") {
            parse_rtu(url, rest)
        } else {
            Err(UrlError::Scheme {
                url: url.to_owned(),
            })
        }
    }

    /// The bus this endpoint describes, with request timeout `timeout`, the
    /// RTU inter-frame gap of 3.5 characters (at least 1.75 ms) and the
    /// protocol's request limits.
    pub fn bus(&self, timeout: Duration) -> ResolvedBus {
        let (kind, target, baud, parity, stop_bits, data_bits) = match self {
            Endpoint::Tcp { address } => (BusKind::Tcp, address.clone(), 9600, Parity::None, 1, 8),
            Endpoint::RtuOverTcp { address } => (
                BusKind::RtuOverTcp,
                address.clone(),
                9600,
                Parity::None,
                1,
                8,
            ),
            Endpoint::Rtu {
                path,
                baud,
                parity,
                stop_bits,
                data_bits,
            } => (
                BusKind::Rtu,
                path.clone(),
                *baud,
                *parity,
                *stop_bits,
                *data_bits,
            ),
        };
        let inter_frame_delay = match kind {
            BusKind::Tcp => Duration::ZERO,
            BusKind::Rtu | BusKind::RtuOverTcp => rtu_silence(baud),
        };
        ResolvedBus {
            id: "adhoc".to_owned(),
            kind,
            target,
            baud,
            parity,
            stop_bits,
            data_bits,
            timeout,
            inter_frame_delay,
            max_registers: 125,
            max_bits: 2000,
            max_gap: 0,
        }
    }
}

impl FromStr for Endpoint {
    type Err = UrlError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Endpoint::parse(s)
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { address } => write!(f, "tcp://{address}"),
            Endpoint::RtuOverTcp { address } => write!(f, "rtu+tcp://{address}"),
            Endpoint::Rtu {
                path,
                baud,
                parity,
                stop_bits,
                data_bits,
            } => {
                let parity = match parity {
                    Parity::None => "none",
                    Parity::Even => "even",
                    Parity::Odd => "odd",
                };
                write!(
                    f,
                    "rtu://{path}?baud={baud}&parity={parity}&stop_bits={stop_bits}&data_bits={data_bits}"
                )
            }
        }
    }
}

/// The Modbus RTU silence between frames: 3.5 character times of 11 bits,
/// fixed at 1.75 ms above 19 200 baud (Modbus over serial line spec, 2.5.1.1).
pub fn rtu_silence(baud: u32) -> Duration {
    if baud == 0 || baud > 19_200 {
        return Duration::from_micros(1750);
    }
    // 3.5 chars × 11 bits = 38.5 bit times.
    Duration::from_micros(38_500_000 / u64::from(baud))
}

fn host_port(url: &str, rest: &str) -> Result<String, UrlError> {
    let rest = rest.trim_end_matches('/');
    let bad = || UrlError::HostPort {
        url: url.to_owned(),
        value: rest.to_owned(),
    };
    if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
        return Err(bad());
    }
    // `[::1]:502`, `host:502`, or a bare host.
    let (host, port) = if let Some(v6) = rest.strip_prefix('[') {
        let (host, after) = v6.split_once(']').ok_or_else(bad)?;
        match after.strip_prefix(':') {
            Some(port) => (format!("[{host}]"), Some(port)),
            None if after.is_empty() => (format!("[{host}]"), None),
            None => return Err(bad()),
        }
    } else {
        match rest.rsplit_once(':') {
            Some((host, port)) => (host.to_owned(), Some(port)),
            None => (rest.to_owned(), None),
        }
    };
    if host.is_empty() || host.contains(':') && !host.starts_with('[') {
        return Err(bad());
    }
    let port = match port {
        Some(p) => p.parse::<u16>().ok().filter(|&p| p != 0).ok_or_else(bad)?,
        None => DEFAULT_PORT,
    };
    Ok(format!("{host}:{port}"))
}

fn parse_rtu(url: &str, rest: &str) -> Result<Endpoint, UrlError> {
    let (path, query) = rest.split_once('?').unwrap_or((rest, ""));
    if path.is_empty() || path == "/" {
        return Err(UrlError::NoPort {
            url: url.to_owned(),
        });
    }
    let mut baud = 9600;
    let mut parity = Parity::None;
    let mut stop_bits = 1;
    let mut data_bits = 8;
    for pair in query.split('&').filter(|p| !p.is_empty()) {
        let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
        let bad = |expected| UrlError::Param {
            url: url.to_owned(),
            key: key.to_owned(),
            value: value.to_owned(),
            expected,
        };
        match key {
            "baud" => {
                baud = value
                    .parse::<u32>()
                    .ok()
                    .filter(|&b| b > 0)
                    .ok_or_else(|| bad("a positive number of bits per second, e.g. 9600"))?;
            }
            "parity" => {
                parity = match value {
                    "none" | "n" | "N" => Parity::None,
                    "even" | "e" | "E" => Parity::Even,
                    "odd" | "o" | "O" => Parity::Odd,
                    _ => return Err(bad("none, even or odd")),
                };
            }
            "stop_bits" => {
                stop_bits = match value {
                    "1" => 1,
                    "2" => 2,
                    _ => return Err(bad("1 or 2")),
                };
            }
            "data_bits" => {
                data_bits = match value {
                    "7" => 7,
                    "8" => 8,
                    _ => return Err(bad("7 or 8")),
                };
            }
            _ => return Err(bad("one of baud, parity, stop_bits, data_bits")),
        }
    }
    Ok(Endpoint::Rtu {
        path: path.to_owned(),
        baud,
        parity,
        stop_bits,
        data_bits,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tcp_url_with_and_without_port() {
        assert_eq!(
            Endpoint::parse("tcp://127.0.0.1:1502").unwrap(),
            Endpoint::Tcp {
                address: "127.0.0.1:1502".into()
            }
        );
        assert_eq!(
            Endpoint::parse("tcp://plc.local").unwrap(),
            Endpoint::Tcp {
                address: "plc.local:502".into()
            }
        );
        assert_eq!(
            Endpoint::parse("rtu+tcp://[::1]:4001").unwrap(),
            Endpoint::RtuOverTcp {
                address: "[::1]:4001".into()
            }
        );
    }

    #[test]
    fn rtu_url_reads_every_serial_parameter() {
        let e =
            Endpoint::parse("rtu:///dev/ttyUSB0?baud=19200&parity=even&stop_bits=2&data_bits=7")
                .unwrap();
        assert_eq!(
            e,
            Endpoint::Rtu {
                path: "/dev/ttyUSB0".into(),
                baud: 19200,
                parity: Parity::Even,
                stop_bits: 2,
                data_bits: 7,
            }
        );
        assert_eq!(Endpoint::parse(&e.to_string()).unwrap(), e);
    }

    #[test]
    fn rtu_url_defaults_to_9600_8n1() {
        let e = Endpoint::parse("rtu:///dev/ttyS1").unwrap();
        let bus = e.bus(Duration::from_secs(1));
        assert_eq!(bus.kind, BusKind::Rtu);
        assert_eq!(bus.target, "/dev/ttyS1");
        assert_eq!(
            (bus.baud, bus.parity, bus.stop_bits, bus.data_bits),
            (9600, Parity::None, 1, 8)
        );
        // 38.5 bit times at 9600 baud.
        assert_eq!(bus.inter_frame_delay, Duration::from_micros(4010));
    }

    #[test]
    fn malformed_urls_are_refused_with_the_reason() {
        assert!(matches!(
            Endpoint::parse("http://x:1"),
            Err(UrlError::Scheme { .. })
        ));
        assert!(matches!(
            Endpoint::parse("tcp://:502"),
            Err(UrlError::HostPort { .. })
        ));
        assert!(matches!(
            Endpoint::parse("tcp://h:99999"),
            Err(UrlError::HostPort { .. })
        ));
        assert!(matches!(
            Endpoint::parse("tcp://h:0"),
            Err(UrlError::HostPort { .. })
        ));
        assert!(matches!(
            Endpoint::parse("rtu://"),
            Err(UrlError::NoPort { .. })
        ));
        assert!(matches!(
            Endpoint::parse("rtu:///dev/x?parity=mark"),
            Err(UrlError::Param { .. })
        ));
        assert!(matches!(
            Endpoint::parse("rtu:///dev/x?speed=9600"),
            Err(UrlError::Param { .. })
        ));
    }

    #[test]
    fn rtu_silence_is_fixed_above_19200_baud() {
        assert_eq!(rtu_silence(115_200), Duration::from_micros(1750));
        assert_eq!(rtu_silence(19_200), Duration::from_micros(2005));
    }
}
