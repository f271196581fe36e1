//! The kernel data plane (`--dataplane kernel`): each vWire is a veth pair, one end in the
//! client's network namespace and one in the endpoint's, with the addresses, routes, MTU
//! and MAC addresses of its connection context — NSM's KERNEL mechanism on both ends,
//! driven through netlink (rtnetlink), never by running `ip`. For the VPP forwarder it also
//! makes one end alone as a pair reaching into this process's namespace (veth + af_packet).
//!
//! | module | owns |
//! |---|---|
//! | [`netns`] | naming, opening and entering network namespaces; listing all of them |
//! | `rtnl` | the netlink requests, errno kept |
//! | `plan` | checking a request and working out each end before anything is touched |
//! | `plumb` | making, checking and removing one vWire's pair |
//! | `host_veth` | one end as a pair between its workload's namespace and this one, for VPP |
//! | `workload_end` | one end whose link VPP makes in its namespace (a tap), configured here |
//! | `inventory` | finding every link of this node on the host; removing orphans |
//! | `probe` | ICMP echo from the client's end (liveness, `nsm demo`) |
//! | `tag` | the alias every link carries: node, vWire, end |
//!
//! Needs CAP_NET_ADMIN (netlink changes) and CAP_SYS_ADMIN (entering namespaces):
//! [`missing_capabilities`] says which are missing, and [`Kernel::start`] refuses without
//! them.

mod host_veth;
mod inventory;
pub mod netns;
mod plan;
mod plumb;
mod probe;
mod rtnl;
mod tag;
mod workload_end;

use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use nsm_domain::vwire::{DataplaneWork, Mechanism, Plumbing, VWireId};

use self::netns::Netns;
pub(crate) use self::plan::WorkloadPlan;
use self::plan::{KERNEL, Plan};
pub use self::plan::{MAX_INTERFACE_NAME, NAME_PARAMETER, NETNS_PARAMETER, check_interface_name};
pub use self::probe::{ECHOES, Echo, ping};
use self::rtnl::Rtnl;
pub use self::tag::{Tag, default_interface_name};
use crate::contract::{Dataplane, DataplaneError, DataplaneObject, End, Liveness, PlumbRequest};

/// The kernel data plane. Cheap to clone.
#[derive(Debug, Clone)]
pub struct Kernel {
    inner: Arc<Inner>,
}

/// One end of [`Kernel::bare_pair`].
#[derive(Debug, Clone)]
pub struct BareEnd {
    pub netns: Netns,
    pub name: String,
    pub address: std::net::IpAddr,
    pub prefix_len: u8,
}

/// What every operation shares.
#[derive(Debug)]
pub(crate) struct Inner {
    /// The node's name, in every tag.
    node: String,
    /// The namespace this process runs in, where pairs are made.
    own_ns: Netns,
    /// Netlink in `own_ns`, for the whole life of the data plane (shared with the work that
    /// makes links there).
    own: Arc<Rtnl>,
    /// Where netlink connections are driven.
    runtime: tokio::runtime::Handle,
}

/// Linux capabilities the kernel data plane needs that this process lacks (empty: none).
pub fn missing_capabilities() -> Vec<&'static str> {
    const NET_ADMIN: u32 = 12;
    const SYS_ADMIN: u32 = 21;
    let effective = std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|status| {
            status
                .lines()
                .find_map(|l| l.strip_prefix("CapEff:"))
                .and_then(|hex| u64::from_str_radix(hex.trim(), 16).ok())
        })
        .unwrap_or(0);
    [(NET_ADMIN, "CAP_NET_ADMIN"), (SYS_ADMIN, "CAP_SYS_ADMIN")]
        .into_iter()
        .filter(|(bit, _)| effective & (1 << bit) == 0)
        .map(|(_, name)| name)
        .collect()
}

impl Kernel {
    pub const NAME: &'static str = "kernel";

    /// The kernel data plane of node `node`, driving netlink on the current tokio runtime.
    /// Refused, naming them, when capabilities are missing.
    pub async fn start(node: &str) -> Result<Self, DataplaneError> {
        let missing = missing_capabilities();
        if !missing.is_empty() {
            return Err(DataplaneError::NotPermitted(format!(
                "the kernel data plane needs {}; this process lacks {} (run as root, or grant them, or use --dataplane dry-run)",
                "CAP_NET_ADMIN and CAP_SYS_ADMIN",
                missing.join(" and ")
            )));
        }
        let runtime = tokio::runtime::Handle::current();
        let own_ns = Netns::current().map_err(|e| DataplaneError::NotPermitted(e.to_string()))?;
        let own = Rtnl::open(&own_ns, &runtime)
            .await
            .map_err(|e| DataplaneError::NotPermitted(format!("cannot open netlink: {e}")))?;
        Ok(Self {
            inner: Arc::new(Inner {
                node: node.to_owned(),
                own_ns,
                own: Arc::new(own),
                runtime,
            }),
        })
    }

    /// A bare veth pair between two namespaces, each end with one address and up: not a
    /// vWire (no tag, no routes), the baseline `nsm bench dataplane` measures vWires
    /// against. Removed with its namespaces.
    pub async fn bare_pair(&self, ends: [BareEnd; 2]) -> Result<(), DataplaneError> {
        plumb::bare_pair(&self.inner, ends).await
    }

    fn plan(request: &PlumbRequest) -> Result<Plan, DataplaneError> {
        Plan::new(
            request.vwire,
            &request.client,
            &request.endpoint,
            &request.context,
        )
    }
}

impl Dataplane for Kernel {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn local_mechanisms(&self) -> &'static [&'static str] {
        &[KERNEL]
    }

    fn complete(&self, vwire: VWireId, end: End, mut mechanism: Mechanism) -> Mechanism {
        if mechanism.mechanism_type == KERNEL && !mechanism.parameters.contains_key(NAME_PARAMETER)
        {
            mechanism.parameters.insert(
                NAME_PARAMETER.to_owned(),
                tag::default_interface_name(vwire, end),
            );
        }
        mechanism
    }

    fn plumb(
        &self,
        request: PlumbRequest,
    ) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>> {
        let inner = self.inner.clone();
        // `request.payload` is not read: a veth pair joins its ends as one link that carries
        // whatever is sent on it, Ethernet frames and the IP packets in them alike, with ARP
        // and ND between the two workloads themselves. No payload needs anything else here.
        Box::pin(async move {
            let plan = Self::plan(&request)?;
            plumb::plumb(&inner, &plan).await
        })
    }

    fn unplumb(
        &self,
        vwire: VWireId,
        plumbing: &Plumbing,
    ) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>> {
        let inner = self.inner.clone();
        let urls = [&plumbing.client_mechanism, &plumbing.endpoint_mechanism].map(|m| {
            m.parameters
                .get(NETNS_PARAMETER)
                .cloned()
                .unwrap_or_default()
        });
        let names = [
            (&plumbing.client_mechanism, End::Client),
            (&plumbing.endpoint_mechanism, End::Endpoint),
        ]
        .map(|(m, end)| {
            m.parameters
                .get(NAME_PARAMETER)
                .cloned()
                .unwrap_or_else(|| tag::default_interface_name(vwire, end))
        });
        let foreign = (plumbing.dataplane != Self::NAME || plumbing.dry_run)
            .then(|| plumbing.dataplane.clone());
        Box::pin(async move {
            if let Some(other) = foreign {
                return Ok(DataplaneWork {
                    dataplane: Self::NAME.to_owned(),
                    dry_run: false,
                    operations: vec![format!(
                        "nothing to remove: the vWire was plumbed by the {other} data plane"
                    )],
                });
            }
            plumb::unplumb(&inner, vwire, [&urls[0], &urls[1]], [&names[0], &names[1]]).await
        })
    }

    fn verify(
        &self,
        request: PlumbRequest,
    ) -> BoxFuture<'static, Result<Vec<String>, DataplaneError>> {
        let inner = self.inner.clone();
        Box::pin(async move {
            let plan = Self::plan(&request)?;
            Ok(plumb::verify(&inner, &plan).await)
        })
    }

    fn inventory(&self) -> BoxFuture<'static, Result<Vec<DataplaneObject>, DataplaneError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inventory::scan(&inner).await })
    }

    fn remove(
        &self,
        objects: Vec<DataplaneObject>,
    ) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>> {
        let inner = self.inner.clone();
        Box::pin(async move { inventory::remove(&inner, objects).await })
    }

    fn probe(
        &self,
        request: PlumbRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Liveness, DataplaneError>> {
        Box::pin(async move {
            let plan = Self::plan(&request)?;
            probe_plan(&plan, timeout).await
        })
    }
}

/// Pings every (client address, endpoint address) pair of one family at once: alive if
/// each pair answered.
async fn probe_plan(plan: &Plan, timeout: Duration) -> Result<Liveness, DataplaneError> {
    let pairs = plumb::probe_pairs(plan);
    probe_from(&plan.client.netns_url, &plan.client.name, &pairs, timeout).await
}

/// Pings every `(from, to)` pair at once from `interface` in the namespace at `netns_url`
/// (the client's end): alive if each pair answered. Also the VPP data plane's probe of a
/// KERNEL client end, which is a real interface in the client's namespace too.
pub(crate) async fn probe_from(
    netns_url: &str,
    interface: &str,
    pairs: &[(std::net::IpAddr, std::net::IpAddr)],
    timeout: Duration,
) -> Result<Liveness, DataplaneError> {
    if pairs.is_empty() {
        return Ok(Liveness::NotProbed {
            why: "the vWire has no pair of client and endpoint addresses of one family".into(),
        });
    }
    let ns = match Netns::open(netns_url) {
        Ok(ns) => ns,
        Err(e @ (netns::NetnsError::Missing { .. } | netns::NetnsError::NotNetns { .. })) => {
            return Ok(Liveness::ClientGone {
                reason: format!("the client end's network namespace: {e}"),
            });
        }
        Err(e) => return Err(DataplaneError::NotPermitted(e.to_string())),
    };
    let echoes = futures::future::join_all(
        pairs
            .iter()
            .map(|(from, to)| ping(&ns, interface, *from, *to, timeout)),
    )
    .await;
    let mut slowest = Duration::ZERO;
    for echo in echoes {
        let echo = echo.map_err(|e| DataplaneError::NotPermitted(e.to_string()))?;
        match echo.rtt {
            Some(rtt) => slowest = slowest.max(rtt),
            None => {
                let reason = echo.error.unwrap_or_else(|| {
                    format!("no reply to {ECHOES} echoes within {}", humanize(timeout))
                });
                return Ok(Liveness::Dead {
                    what: format!("ICMP {} → {} on {interface}", echo.from, echo.to),
                    reason,
                });
            }
        }
    }
    Ok(Liveness::Alive { rtt: slowest })
}

fn humanize(duration: Duration) -> String {
    if duration.subsec_millis() == 0 {
        format!("{}s", duration.as_secs())
    } else {
        format!("{}ms", duration.as_millis())
    }
}
