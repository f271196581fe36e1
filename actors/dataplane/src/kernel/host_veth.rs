//! One end of a vWire as a veth pair between its workload's network namespace and this
//! process's: the kernel half of NSM's "kernel mechanism via veth + af_packet", for the VPP
//! forwarder, which attaches to the host side with `af_packet_create_v3`. Owns making,
//! checking and removing that pair; knows nothing of VPP.
//!
//! The workload's side is configured exactly as the kernel forwarder configures that end
//! (name, addresses, routes, MAC, MTU, up, tagged); the host side is named by the caller
//! and only tagged, set up and given the MTU. Both carry the end's [`Tag`] and are made in
//! the node's device group, so [`Kernel::inventory`](crate::Dataplane::inventory) finds
//! them after a crash (it searches this namespace like any other) and
//! [`Kernel::remove`](crate::Dataplane::remove) of either removes the pair.
//!
//! The checks, the single request that makes the pair with each end in place, the undo on
//! failure and the removal by name then by tag are [`super::plumb`]'s, run on these two
//! ends.

use nsm_domain::vwire::{ConnectionContext, DataplaneWork, Mechanism, VWireId};

use super::plan::{HostPlan, NAME_PARAMETER, NETNS_PARAMETER, check_interface_name};
use super::plumb::{self, Log, Place};
use super::tag::{Tag, default_interface_name};
use super::{Inner, Kernel};
use crate::contract::{DataplaneError, End};

impl Kernel {
    /// One end of a vWire as a veth pair between the workload's namespace and this one.
    ///
    /// `end`'s `mechanism` (KERNEL: `inodeURL`, optional `name`) and `context` are read as
    /// the kernel forwarder reads them; `host_name` (at most 15 bytes) names the side in this
    /// process's namespace. Everything is checked before anything is made, and a failure
    /// leaves nothing. A leftover of this same end of this vWire under either name (an
    /// interrupted attempt) is replaced: call [`Kernel::verify_host_veth`] first to keep a
    /// whole one.
    ///
    /// Gives back what was done and the MAC address the kernel gave the host side, which
    /// NSM passes to VPP's `af_packet_create_v3` as `hw_addr`.
    pub async fn make_host_veth(
        &self,
        vwire: VWireId,
        end: End,
        mechanism: &Mechanism,
        context: &ConnectionContext,
        host_name: &str,
    ) -> Result<(DataplaneWork, [u8; 6]), DataplaneError> {
        let plan = self.host_plan(vwire, end, mechanism, context, host_name)?;
        let made = make(&self.inner, &plan, WorkloadArp::On).await?;
        Ok((made.work, made.host_mac))
    }

    /// [`Kernel::make_host_veth`] for a vWire that carries IP packets only (NSM's IP
    /// payload), which VPP joins at L3 and which ARP and ND therefore never cross: the
    /// workload's side is made without them (`IFF_NOARP`), so it sends every frame to its own
    /// MAC, as to a point-to-point peer. Gives back that MAC: VPP's interface on the host side
    /// takes it as its own, to receive those frames, and sends to it.
    pub async fn make_ip_host_veth(
        &self,
        vwire: VWireId,
        end: End,
        mechanism: &Mechanism,
        context: &ConnectionContext,
        host_name: &str,
    ) -> Result<(DataplaneWork, [u8; 6]), DataplaneError> {
        let plan = self.host_plan(vwire, end, mechanism, context, host_name)?;
        let made = make(&self.inner, &plan, WorkloadArp::Off).await?;
        Ok((made.work, made.workload_mac))
    }

    /// Removes it (both sides go with either); absent is fine, and so is a `mechanism`
    /// without `inodeURL` (then only this namespace is searched).
    pub async fn remove_host_veth(
        &self,
        vwire: VWireId,
        end: End,
        mechanism: &Mechanism,
        host_name: &str,
    ) -> Result<DataplaneWork, DataplaneError> {
        check_interface_name(host_name)
            .map_err(|why| invalid(format!("the {end} end's host-side interface name {why}")))?;
        remove(&self.inner, vwire, end, mechanism, host_name).await
    }

    /// What is missing or wrong with it, one line each (empty: it is whole), as
    /// [`Dataplane::verify`](crate::Dataplane::verify) tells it; a request that cannot be
    /// planned is one line saying why.
    pub async fn verify_host_veth(
        &self,
        vwire: VWireId,
        end: End,
        mechanism: &Mechanism,
        context: &ConnectionContext,
        host_name: &str,
    ) -> Vec<String> {
        match self.host_plan(vwire, end, mechanism, context, host_name) {
            Ok(plan) => plumb::verify_ends(&self.inner, vwire, [&plan.workload, &plan.host]).await,
            Err(e) => vec![e.to_string()],
        }
    }

    fn host_plan(
        &self,
        vwire: VWireId,
        end: End,
        mechanism: &Mechanism,
        context: &ConnectionContext,
        host_name: &str,
    ) -> Result<HostPlan, DataplaneError> {
        let own_url = self.inner.own_ns.url();
        HostPlan::new(vwire, end, mechanism, context, host_name, own_url)
    }
}

fn invalid(message: String) -> DataplaneError {
    DataplaneError::InvalidInput(message)
}

/// Whether the workload's side resolves its neighbours (ARP, ND) or not (`IFF_NOARP`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum WorkloadArp {
    On,
    Off,
}

/// A pair made: what was done and both sides' MACs.
struct Made {
    work: DataplaneWork,
    host_mac: [u8; 6],
    workload_mac: [u8; 6],
}

async fn make(inner: &Inner, plan: &HostPlan, arp: WorkloadArp) -> Result<Made, DataplaneError> {
    let mut log = Log::default();
    let workload = plumb::place_of(inner, &plan.workload).await?;
    let host = Place::own(inner);
    if workload.ns == host.ns && plan.workload.name == plan.host.name {
        return Err(DataplaneError::Conflict(format!(
            "the {} end and its host side would both be interface {} in {}: give them different names",
            plan.workload.end,
            plan.host.name,
            host.ns.url()
        )));
    }
    // Only this end's: the other end's host side may be in this namespace too.
    let leftover = |t: &Tag| t.is_end_of(plan.vwire, plan.workload.end, &inner.node);
    plumb::preflight(&workload, &plan.workload, leftover, &mut log).await?;
    plumb::preflight(&host, &plan.host, leftover, &mut log).await?;
    let ends = [(&workload, &plan.workload), (&host, &plan.host)];
    let [workload_link, host_link] =
        plumb::make_pair(inner, plan.vwire, ends, plan.mtu, &mut log).await?;
    // A veth always has an Ethernet address; without one VPP could not be told it.
    let (Some(mac), Some(workload_mac)) = (host_link.mac, workload_link.mac) else {
        plumb::remove_made(inner, ends, &mut Log::default()).await;
        return Err(DataplaneError::Failed {
            dataplane: Kernel::NAME,
            reason: format!(
                "{} or its peer has no Ethernet address",
                plan.host.here(host.ns.url())
            ),
        });
    };
    if arp == WorkloadArp::Off {
        let here = plan.workload.here(workload.ns.url());
        if let Err(e) = workload
            .rtnl
            .set_noarp(workload_link.index, &plan.workload.name)
            .await
        {
            plumb::remove_made(inner, ends, &mut Log::default()).await;
            return Err(plumb::rtnl_error(&here, e));
        }
        log.push(format!("turned ARP off on {here}, for IP packets only"));
    }
    log.push(format!(
        "{} has MAC {}",
        plan.host.here(host.ns.url()),
        format_mac(mac)
    ));
    Ok(Made {
        work: log.work(),
        host_mac: mac,
        workload_mac,
    })
}

async fn remove(
    inner: &Inner,
    vwire: VWireId,
    end: End,
    mechanism: &Mechanism,
    host_name: &str,
) -> Result<DataplaneWork, DataplaneError> {
    let mut log = Log::default();
    // The host side first: its namespace is always there.
    let mut ends = vec![(Place::own(inner), host_name)];
    let workload_name = mechanism
        .parameters
        .get(NAME_PARAMETER)
        .cloned()
        .unwrap_or_else(|| default_interface_name(vwire, end));
    let url = mechanism
        .parameters
        .get(NETNS_PARAMETER)
        .filter(|u| !u.is_empty());
    if let Some(url) = url
        && let Some(place) = plumb::enter_to_remove(inner, end, url, &mut log).await?
    {
        ends.push((place, &workload_name));
    }
    // Only this end's: the other end's host side may be in this namespace too.
    let ours = |t: &Tag| t.is_end_of(vwire, end, &inner.node);
    plumb::remove_ends(&ends, ours, &mut log).await;
    if log.is_empty() {
        log.push(format!(
            "nothing of the {end} end's veth pair {host_name} of vWire {vwire} was left to remove"
        ));
    }
    Ok(log.work())
}

fn format_mac(mac: [u8; 6]) -> String {
    mac.map(|b| format!("{b:02x}")).join(":")
}
