//! Conversions between std's IP types and VPP's address types (`address`, `prefix`,
//! `ip4_prefix`, `ip6_prefix`), which the generated code keeps as raw bytes.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use crate::api::{Address, AddressFamily, AddressUnion, Ip4Prefix, Ip6Prefix, Prefix};

impl From<IpAddr> for Address {
    fn from(ip: IpAddr) -> Self {
        let mut un = [0u8; 16];
        let af = match ip {
            IpAddr::V4(v4) => {
                un[..4].copy_from_slice(&v4.octets());
                AddressFamily::ADDRESS_IP4
            }
            IpAddr::V6(v6) => {
                un.copy_from_slice(&v6.octets());
                AddressFamily::ADDRESS_IP6
            }
        };
        Self {
            af,
            un: AddressUnion(un),
        }
    }
}

impl Address {
    /// The address, if its family is one VPP defines.
    pub fn ip(&self) -> Option<IpAddr> {
        let bytes = self.un.0;
        match self.af {
            AddressFamily::ADDRESS_IP4 => Some(IpAddr::V4(Ipv4Addr::new(
                bytes[0], bytes[1], bytes[2], bytes[3],
            ))),
            AddressFamily::ADDRESS_IP6 => Some(IpAddr::V6(Ipv6Addr::from(bytes))),
            _ => None,
        }
    }
}

impl Prefix {
    pub fn new(ip: IpAddr, len: u8) -> Self {
        Self {
            address: ip.into(),
            len,
        }
    }
}

impl Ip4Prefix {
    pub fn new(ip: Ipv4Addr, len: u8) -> Self {
        Self {
            address: ip.octets(),
            len,
        }
    }
}

impl Ip6Prefix {
    pub fn new(ip: Ipv6Addr, len: u8) -> Self {
        Self {
            address: ip.octets(),
            len,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_round_trip_through_vpp_form() {
        for ip in ["192.0.2.7", "2001:db8::1"] {
            let ip: IpAddr = ip.parse().unwrap();
            assert_eq!(Address::from(ip).ip(), Some(ip));
        }
        let v4 = Address::from("10.0.0.1".parse::<IpAddr>().unwrap());
        assert_eq!(v4.un.0[4..], [0u8; 12]);
    }
}
