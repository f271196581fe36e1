//! Point-to-point IPAM (NSM's `point2pointipam`): each connection, keyed by the endpoint's
//! own path-segment id, holds one endpoint address and one client address from the pool.
//!
//! This is the in-memory side only. [`Ipam`] never changes by itself: the caller plans an
//! allocation ([`Ipam::plan`]), appends it to the log, and only then applies it
//! ([`Ipam::insert`]), so memory never runs ahead of the disk.

use std::collections::{HashMap, HashSet};
use std::fmt;
use std::net::IpAddr;

use chrono::{DateTime, Utc};

use super::cidr::Cidr;

/// The two addresses of one connection, and when its client's lifetime ends.
/// One connection's pair of addresses: the log's own record of it.
pub(crate) use nsm_log::ipam::Allocation;

/// Why no pair could be handed out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum IpamError {
    /// Every usable address of the pool is allocated or excluded. The operator should widen
    /// `--cidr` or let connections close; the client may retry later.
    Exhausted { cidr: Cidr, allocated: usize },
}

impl fmt::Display for IpamError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Exhausted { cidr, allocated } => write!(
                f,
                "no free address pair left in {cidr} ({allocated} connections hold addresses; \
                 the rest is excluded or reserved)"
            ),
        }
    }
}

#[derive(Debug)]
pub(crate) struct Ipam {
    cidr: Cidr,
    by_connection: HashMap<String, Allocation>,
    taken: HashSet<IpAddr>,
}

impl Ipam {
    /// The pool with the allocations folded from the log. Allocations outside `cidr` (the
    /// flag changed since) are kept: they still belong to their connections.
    pub(crate) fn restore(cidr: Cidr, allocations: HashMap<String, Allocation>) -> Self {
        let taken = allocations
            .values()
            .flat_map(|a| [a.endpoint, a.client])
            .collect();
        Self {
            cidr,
            by_connection: allocations,
            taken,
        }
    }

    pub(crate) fn cidr(&self) -> Cidr {
        self.cidr
    }

    pub(crate) fn get(&self, connection_id: &str) -> Option<&Allocation> {
        self.by_connection.get(connection_id)
    }

    pub(crate) fn len(&self) -> usize {
        self.by_connection.len()
    }

    /// A new (endpoint, client) pair: the lowest free usable addresses outside `excluded`.
    pub(crate) fn plan(&self, excluded: &[Cidr]) -> Result<(IpAddr, IpAddr), IpamError> {
        let excluded: Vec<Cidr> = excluded
            .iter()
            .filter(|c| c.is_ipv4() == self.cidr.is_ipv4())
            .copied()
            .collect();
        let endpoint = self.next_free(&excluded, None)?;
        let client = self.next_free(&excluded, Some(endpoint))?;
        Ok((endpoint, client))
    }

    /// Walks the pool from the bottom, jumping over excluded prefixes whole, so the cost is
    /// bounded by the number of allocations and exclusions, not by the pool's size.
    fn next_free(
        &self,
        excluded: &[Cidr],
        also_taken: Option<IpAddr>,
    ) -> Result<IpAddr, IpamError> {
        let (mut candidate, last) = self.cidr.usable();
        while candidate <= last {
            let addr = self.cidr.addr(candidate);
            if let Some(hole) = excluded.iter().find(|c| c.contains(addr)) {
                match hole.last().checked_add(1) {
                    Some(next) => candidate = next,
                    None => break,
                }
            } else if self.taken.contains(&addr) || also_taken == Some(addr) {
                candidate += 1;
            } else {
                return Ok(addr);
            }
        }
        Err(IpamError::Exhausted {
            cidr: self.cidr,
            allocated: self.by_connection.len(),
        })
    }

    /// Applies an allocation (new, or the same pair with a new `expires_at`).
    pub(crate) fn insert(&mut self, connection_id: &str, allocation: Allocation) {
        self.taken.insert(allocation.endpoint);
        self.taken.insert(allocation.client);
        if let Some(old) = self
            .by_connection
            .insert(connection_id.to_owned(), allocation)
        {
            let kept = &self.by_connection[connection_id];
            for addr in [old.endpoint, old.client] {
                if addr != kept.endpoint && addr != kept.client {
                    self.taken.remove(&addr);
                }
            }
        }
    }

    pub(crate) fn remove(&mut self, connection_id: &str) -> Option<Allocation> {
        let old = self.by_connection.remove(connection_id)?;
        self.taken.remove(&old.endpoint);
        self.taken.remove(&old.client);
        Some(old)
    }

    /// The connections whose lifetime plus `grace` has passed at `now`.
    pub(crate) fn due(&self, now: DateTime<Utc>, grace: chrono::Duration) -> Vec<String> {
        self.by_connection
            .iter()
            .filter(|(_, a)| a.expires_at.is_some_and(|at| at + grace <= now))
            .map(|(id, _)| id.clone())
            .collect()
    }

    /// When the next connection becomes due, if any can.
    pub(crate) fn next_due(&self, grace: chrono::Duration) -> Option<DateTime<Utc>> {
        self.by_connection
            .values()
            .filter_map(|a| a.expires_at)
            .min()
            .map(|at| at + grace)
    }
}

#[cfg(test)]
mod tests {
    use super::super::cidr::to_int;
    use super::*;

    fn pool(cidr: &str) -> Ipam {
        Ipam::restore(cidr.parse().unwrap(), HashMap::new())
    }

    fn take(ipam: &mut Ipam, id: &str, excluded: &[Cidr]) -> Result<(String, String), IpamError> {
        let (endpoint, client) = ipam.plan(excluded)?;
        let allocation = Allocation {
            endpoint,
            client,
            expires_at: None,
        };
        ipam.insert(id, allocation);
        Ok((endpoint.to_string(), client.to_string()))
    }

    #[test]
    fn skips_the_network_address_and_what_is_taken() {
        let mut ipam = pool("169.254.0.0/16");
        assert_eq!(
            take(&mut ipam, "a", &[]).unwrap(),
            ("169.254.0.1".into(), "169.254.0.2".into())
        );
        assert_eq!(
            take(&mut ipam, "b", &[]).unwrap(),
            ("169.254.0.3".into(), "169.254.0.4".into())
        );
        ipam.remove("a");
        assert_eq!(
            take(&mut ipam, "c", &[]).unwrap(),
            ("169.254.0.1".into(), "169.254.0.2".into())
        );
    }

    #[test]
    fn jumps_over_excluded_prefixes_of_its_family_only() {
        let ipam = pool("10.0.0.0/8");
        let excluded = [
            "10.0.0.0/16".parse().unwrap(),
            Cidr::parse_prefix_or_address("10.1.0.2").unwrap(),
            "::/0".parse().unwrap(),
        ];
        let (endpoint, client) = ipam.plan(&excluded).unwrap();
        assert_eq!(
            (endpoint.to_string(), client.to_string()),
            ("10.1.0.0".into(), "10.1.0.1".into())
        );
        assert_eq!(to_int(client) - to_int(endpoint), 1);
    }

    #[test]
    fn exhaustion_is_an_error_naming_the_pool() {
        let mut ipam = pool("192.168.0.0/29");
        for id in ["a", "b", "c"] {
            take(&mut ipam, id, &[]).unwrap();
        }
        let error = take(&mut ipam, "d", &[]).unwrap_err();
        assert!(error.to_string().contains("192.168.0.0/29"), "{error}");
        let v6 = pool("fd00::/64");
        let everything = ["fd00::/64".parse().unwrap()];
        assert!(matches!(
            v6.plan(&everything),
            Err(IpamError::Exhausted { .. })
        ));
    }

    #[test]
    fn a_point_to_point_pool_holds_exactly_one_pair() {
        let mut ipam = pool("172.16.1.100/31");
        assert_eq!(
            take(&mut ipam, "a", &[]).unwrap(),
            ("172.16.1.100".into(), "172.16.1.101".into())
        );
        assert!(take(&mut ipam, "b", &[]).is_err());
    }

    #[test]
    fn ipv6_pairs_are_host_addresses() {
        let mut ipam = pool("fd00::/120");
        assert_eq!(
            take(&mut ipam, "a", &[]).unwrap(),
            ("fd00::1".into(), "fd00::2".into())
        );
        assert_eq!(ipam.taken.len(), 2);
    }

    #[test]
    fn due_connections_are_those_past_expiry_plus_grace() {
        let mut ipam = pool("10.0.0.0/24");
        let at = DateTime::from_timestamp(1_000, 0).unwrap();
        let grace = chrono::Duration::seconds(60);
        let (endpoint, client) = ipam.plan(&[]).unwrap();
        ipam.insert(
            "a",
            Allocation {
                endpoint,
                client,
                expires_at: Some(at),
            },
        );
        assert_eq!(ipam.next_due(grace), Some(at + grace));
        assert!(
            ipam.due(at + grace - chrono::Duration::seconds(1), grace)
                .is_empty()
        );
        assert_eq!(ipam.due(at + grace, grace), vec!["a".to_owned()]);
    }
}
