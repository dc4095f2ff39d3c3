//! The client address of a login: the TCP peer, or, only when the peer is
//! a configured trusted proxy, the right-most address of `X-Forwarded-For`
//! that is not itself a trusted proxy.
//!
//! Why right-most: each proxy appends the address it received the request
//! from, so the entries on the right were written by our own proxies and
//! the ones on the left by whoever sent the request, who can write
//! anything there. Walking from the right past our proxies finds the first
//! address a trusted party saw.

use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

/// An address block: `10.0.0.0/8`, `2001:db8::/32`, or one address.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr {
    net: IpAddr,
    prefix: u8,
}

impl Cidr {
    /// Whether `ip` is inside (IPv4-mapped IPv6 counts as IPv4).
    pub fn contains(&self, ip: IpAddr) -> bool {
        match (self.net, ip.to_canonical()) {
            (IpAddr::V4(n), IpAddr::V4(a)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(n) & mask == u32::from(a) & mask
            }
            (IpAddr::V6(n), IpAddr::V6(a)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(n) & mask == u128::from(a) & mask
            }
            _ => false,
        }
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let (addr, prefix) = match s.split_once('/') {
            Some((a, p)) => (a, Some(p)),
            None => (s, None),
        };
        let net: IpAddr = addr
            .trim()
            .parse()
            .map_err(|_| format!("{s:?} is not an address or a block like \"10.0.0.0/8\""))?;
        let net = net.to_canonical();
        let max = if net.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(p) => p
                .trim()
                .parse::<u8>()
                .ok()
                .filter(|p| *p <= max)
                .ok_or_else(|| format!("{s:?}: the prefix length must be 0–{max}"))?,
        };
        Ok(Cidr { net, prefix })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.net, self.prefix)
    }
}

/// One `X-Forwarded-For` entry: an address, maybe with a port
/// (`192.0.2.1:4711`, `[2001:db8::1]:4711`).
fn parse_entry(s: &str) -> Option<IpAddr> {
    let s = s.trim();
    s.parse::<IpAddr>()
        .ok()
        .or_else(|| s.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .map(|ip| ip.to_canonical())
}

/// The client address: `peer` unless `peer` is in `trusted`; then the
/// right-most `X-Forwarded-For` entry (over every such header, in order)
/// that is not in `trusted`. An entry that is not an address stops the walk
/// at the proxy that passed it on; when every entry is a trusted proxy,
/// the left-most one.
pub fn client_ip<'a>(
    peer: IpAddr,
    forwarded_for: impl IntoIterator<Item = &'a str>,
    trusted: &[Cidr],
) -> IpAddr {
    let peer = peer.to_canonical();
    let is_trusted = |ip: IpAddr| trusted.iter().any(|c| c.contains(ip));
    if !is_trusted(peer) {
        return peer;
    }
    let entries: Vec<&str> = forwarded_for
        .into_iter()
        .flat_map(|h| h.split(','))
        .collect();
    let mut client = peer;
    for e in entries.iter().rev() {
        let Some(ip) = parse_entry(e) else {
            return client;
        };
        client = ip;
        if !is_trusted(ip) {
            return ip;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn cidrs(list: &[&str]) -> Vec<Cidr> {
        list.iter().map(|s| s.parse().unwrap()).collect()
    }

    #[test]
    fn without_trusted_proxies_the_header_is_ignored() {
        let got = client_ip(ip("203.0.113.5"), ["198.51.100.1"], &[]);
        assert_eq!(got, ip("203.0.113.5"));
    }

    #[test]
    fn a_peer_that_is_not_a_trusted_proxy_cannot_choose_its_address() {
        let t = cidrs(&["10.0.0.0/8"]);
        let got = client_ip(ip("203.0.113.5"), ["10.1.1.1, 198.51.100.1"], &t);
        assert_eq!(got, ip("203.0.113.5"));
    }

    #[test]
    fn behind_a_trusted_proxy_the_right_most_untrusted_entry_is_the_client() {
        let t = cidrs(&["10.0.0.0/8", "192.0.2.10"]);
        // The client wrote "1.2.3.4" itself; our proxies appended the rest.
        let got = client_ip(ip("10.0.0.2"), ["1.2.3.4, 198.51.100.7", "192.0.2.10"], &t);
        assert_eq!(got, ip("198.51.100.7"));
        // With ports and IPv6 entries.
        let got = client_ip(ip("10.0.0.2"), ["[2001:db8::5]:4711, 10.0.0.9:80"], &t);
        assert_eq!(got, ip("2001:db8::5"));
    }

    #[test]
    fn a_trusted_proxy_without_the_header_or_with_garbage_is_the_client() {
        let t = cidrs(&["10.0.0.0/8"]);
        assert_eq!(client_ip(ip("10.0.0.2"), [], &t), ip("10.0.0.2"));
        assert_eq!(
            client_ip(ip("10.0.0.2"), ["1.2.3.4, not-an-ip, 10.0.0.3"], &t),
            ip("10.0.0.3")
        );
        // Only trusted entries: the left-most.
        assert_eq!(
            client_ip(ip("10.0.0.2"), ["10.0.0.4, 10.0.0.3"], &t),
            ip("10.0.0.4")
        );
    }

    #[test]
    fn blocks_parse_and_match_both_families() {
        let c: Cidr = "192.168.0.0/16".parse().unwrap();
        assert!(c.contains(ip("192.168.77.1")));
        assert!(c.contains(ip("::ffff:192.168.1.1")));
        assert!(!c.contains(ip("192.169.0.1")));
        let c: Cidr = "2001:db8::/32".parse().unwrap();
        assert!(c.contains(ip("2001:db8:ffff::1")));
        assert!(!c.contains(ip("2001:db9::1")));
        assert!("0.0.0.0/0".parse::<Cidr>().unwrap().contains(ip("8.8.8.8")));
        assert!("10.0.0.1/33".parse::<Cidr>().is_err());
        assert!("proxy.local".parse::<Cidr>().is_err());
        assert_eq!(
            "10.0.0.1".parse::<Cidr>().unwrap().to_string(),
            "10.0.0.1/32"
        );
    }
}
