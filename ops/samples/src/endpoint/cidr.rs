//! IPv4 and IPv6 prefixes as integers, so a pool can be walked, and an excluded prefix
//! skipped, with arithmetic instead of per-address work.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// A prefix such as `169.254.0.0/16` or `fd00::/64`. Host bits given on input are cleared,
/// as Go's `net.ParseCIDR` does (`10.0.0.7/24` is `10.0.0.0/24`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Cidr {
    network: IpAddr,
    prefix_len: u8,
}

impl Cidr {
    /// A single address as a host prefix (`/32` or `/128`).
    pub(crate) fn host(addr: IpAddr) -> Self {
        Self {
            network: addr,
            prefix_len: bits(addr),
        }
    }

    /// Parses `addr/len`, or a bare address as its host prefix (NSM's excluded prefixes
    /// come from config files that sometimes hold bare addresses).
    pub(crate) fn parse_prefix_or_address(text: &str) -> Result<Self, String> {
        match text.parse::<IpAddr>() {
            Ok(addr) => Ok(Self::host(addr)),
            Err(_) => text.parse(),
        }
    }

    pub(crate) fn first(&self) -> u128 {
        to_int(self.network)
    }

    pub(crate) fn last(&self) -> u128 {
        self.first() | host_mask(bits(self.network), self.prefix_len)
    }

    /// The addresses a pool may hand out: all but the network and broadcast addresses,
    /// except in a `/31` or `/127` (a point-to-point link, both usable) or a host prefix.
    pub(crate) fn usable(&self) -> (u128, u128) {
        if bits(self.network) - self.prefix_len >= 2 {
            (self.first() + 1, self.last() - 1)
        } else {
            (self.first(), self.last())
        }
    }

    pub(crate) fn is_ipv4(&self) -> bool {
        self.network.is_ipv4()
    }

    pub(crate) fn contains(&self, addr: IpAddr) -> bool {
        addr.is_ipv4() == self.is_ipv4() && (self.first()..=self.last()).contains(&to_int(addr))
    }

    /// The address `value` of this prefix's family.
    pub(crate) fn addr(&self, value: u128) -> IpAddr {
        if self.is_ipv4() {
            IpAddr::from(Ipv4Addr::from(
                u32::try_from(value).expect("an IPv4 pool holds 32-bit values"),
            ))
        } else {
            IpAddr::from(Ipv6Addr::from(value))
        }
    }
}

/// `addr` as a host prefix string: `169.254.0.1/32`, `fd00::1/128`.
pub(crate) fn host_prefix(addr: IpAddr) -> String {
    format!("{addr}/{}", bits(addr))
}

fn bits(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

fn host_mask(bits: u8, prefix_len: u8) -> u128 {
    let host_bits = u32::from(bits - prefix_len);
    if host_bits == 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    }
}

pub(crate) fn to_int(addr: IpAddr) -> u128 {
    match addr {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

impl FromStr for Cidr {
    type Err = String;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (addr, len) = text
            .split_once('/')
            .ok_or_else(|| format!("{text:?} is not a prefix like 169.254.0.0/16"))?;
        let addr: IpAddr = addr
            .parse()
            .map_err(|_| format!("{text:?}: {addr:?} is not an IP address"))?;
        let prefix_len = len
            .parse::<u8>()
            .ok()
            .filter(|len| *len <= bits(addr))
            .ok_or_else(|| format!("{text:?}: the length must be 0-{}", bits(addr)))?;
        let masked = to_int(addr) & !host_mask(bits(addr), prefix_len);
        let network = Self::host(addr).addr(masked);
        Ok(Self {
            network,
            prefix_len,
        })
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.network, self.prefix_len)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_prefix_loses_its_host_bits_and_keeps_its_family() {
        let v4: Cidr = "10.1.2.3/24".parse().unwrap();
        assert_eq!(v4.to_string(), "10.1.2.0/24");
        assert_eq!(v4.usable(), (v4.first() + 1, v4.first() + 254));
        let v6: Cidr = "fd00::5/126".parse().unwrap();
        assert_eq!(v6.to_string(), "fd00::4/126");
        assert_eq!(v6.addr(v6.last()).to_string(), "fd00::7");
        let all: Cidr = "::/0".parse().unwrap();
        assert_eq!(all.last(), u128::MAX);
    }

    #[test]
    fn a_point_to_point_prefix_uses_both_addresses() {
        let p2p: Cidr = "172.16.1.100/31".parse().unwrap();
        assert_eq!(p2p.usable(), (p2p.first(), p2p.last()));
    }

    #[test]
    fn containment_respects_the_family() {
        let v4: Cidr = "0.0.0.0/0".parse().unwrap();
        assert!(v4.contains("8.8.8.8".parse().unwrap()));
        assert!(!v4.contains("::1".parse().unwrap()));
        let host = Cidr::parse_prefix_or_address("10.0.0.1").unwrap();
        assert_eq!(host.to_string(), "10.0.0.1/32");
    }

    #[test]
    fn refuses_what_is_not_a_prefix() {
        for bad in [
            "10.0.0.0",
            "10.0.0.0/33",
            "x/8",
            "fd00::/129",
            "10.0.0.0/-1",
        ] {
            assert!(bad.parse::<Cidr>().is_err(), "{bad}");
        }
    }
}
