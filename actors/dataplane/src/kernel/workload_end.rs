//! One end of a vWire whose link another makes straight in its workload's network
//! namespace: VPP's tap (`tap_create_v3` with `host_namespace`), the VPP forwarder's
//! "kernel mechanism via tap". NSM's forwarder lets VPP make the tap and then configures
//! its Linux side over netlink; so does this: the end gets exactly what the kernel
//! forwarder gives its own ends (tag, the node's device group, MTU, up, every address and
//! every route), through the same steps as [`super::plumb`]'s.
//!
//! Owns checking the namespace before the link is made (the name free, the addresses on
//! no other link), configuring the link once it is there, and checking it for reconcile.
//! It never makes or removes the link: its maker does (deleting the tap in VPP removes its
//! Linux side), so a failure here leaves the link as it was, for the maker to remove.

use nsm_domain::vwire::DataplaneWork;

use super::Kernel;
use super::plan::WorkloadPlan;
use super::plumb::{self, Log, rtnl_error};
use super::tag::{Tag, group_of};
use crate::contract::DataplaneError;

impl Kernel {
    /// Before the link is made: refuses (`Conflict`) an end whose name is taken in its
    /// namespace, or one of whose addresses is on another link there; removes a leftover
    /// link of this very end of this vWire (an interrupted attempt).
    pub(crate) async fn prepare_workload_end(
        &self,
        plan: &WorkloadPlan,
    ) -> Result<DataplaneWork, DataplaneError> {
        let inner = &self.inner;
        let mut log = Log::default();
        let place = plumb::place_of(inner, &plan.end).await?;
        let leftover = |t: &Tag| t.is_end_of(plan.vwire, plan.end.end, &inner.node);
        plumb::preflight(&place, &plan.end, leftover, &mut log).await?;
        Ok(log.work())
    }

    /// Once the link is there: tags it, puts it in the node's device group, sets its MTU and
    /// sets it up (one request), then gives it its addresses and routes. On error the link
    /// is left for its maker to remove.
    pub(crate) async fn configure_workload_end(
        &self,
        plan: &WorkloadPlan,
    ) -> Result<DataplaneWork, DataplaneError> {
        let inner = &self.inner;
        let end = &plan.end;
        let mut log = Log::default();
        let place = plumb::place_of(inner, end).await?;
        let here = end.here(place.ns.url());
        let link = place
            .rtnl
            .link_by_name(&end.name)
            .await
            .map_err(|e| rtnl_error(&here, e))?
            .ok_or_else(|| DataplaneError::Failed {
                dataplane: Kernel::NAME,
                reason: format!("{here} is not there, though it was just made"),
            })?;
        let tag = Tag::new(plan.vwire, end.end, &inner.node);
        place
            .rtnl
            .adopt(
                link.index,
                &end.name,
                &tag.to_string(),
                group_of(&inner.node),
                plan.mtu,
            )
            .await
            .map_err(|e| rtnl_error(&here, e))?;
        log.push(format!(
            "tagged {here} \"{tag}\"{} and set it up",
            plan.mtu
                .map(|m| format!(", set its MTU to {m}"))
                .unwrap_or_default()
        ));
        plumb::add_addresses_and_routes(&place, link.index, end, &mut log).await?;
        Ok(log.work())
    }

    /// What is missing or wrong with the end's link, one line each (empty: it is whole), as
    /// the kernel data plane checks its own ends: there, this end's tag, up, every address.
    pub(crate) async fn verify_workload_end(&self, plan: &WorkloadPlan) -> Vec<String> {
        match plumb::place_of(&self.inner, &plan.end).await {
            Ok(place) => plumb::check_end(&self.inner, plan.vwire, &place, &plan.end).await,
            Err(e) => vec![e.to_string()],
        }
    }
}
