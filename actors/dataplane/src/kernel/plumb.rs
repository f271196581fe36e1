//! Making, checking and removing one vWire's veth pair.
//!
//! **Making** ([`plumb`]): check both ends first (the namespaces exist, the names are free,
//! the addresses are on no other link), then create the pair with each end directly in its
//! namespace, in the node's device group, in one request (both ends or neither); tag each
//! end and set it up; give each its addresses and routes. A failure after the pair exists
//! removes it (removing one end of a veth pair removes both), so a refusal leaves nothing;
//! a crash leaves only links in the node's group, tagged or not, which reconcile removes.
//!
//! Made in place rather than made here and moved: moving a link between namespaces waits
//! for an RCU grace period twice under the kernel's netlink lock, which measured ~20 ms a
//! move here, and serialised every plumbing of the node behind it.
//!
//! **Removing** ([`unplumb`]) finds the vWire's links by their tag, not by name, in both
//! namespaces. **Checking** ([`verify`]) lists what is missing or wrong, for reconcile.
//!
//! The steps are shared with [`super::host_veth`], whose pair joins one end to this
//! process's namespace: each works on one end ([`EndPlan`]) in one [`Place`].

use std::net::IpAddr;
use std::sync::Arc;

use nix::errno::Errno;
use nsm_domain::vwire::{DataplaneWork, VWireId};

use super::netns::{Netns, NetnsError};
use super::plan::{EndPlan, Plan, Side};
use super::rtnl::{Link, NewRoute, Rtnl, RtnlError, VethEnd};
use super::tag::{End, Tag, group_of};
use super::{Inner, Kernel};
use crate::contract::DataplaneError;

/// What was done, in order, for the record.
#[derive(Debug, Default)]
pub(super) struct Log(Vec<String>);

impl Log {
    pub(super) fn push(&mut self, line: impl Into<String>) {
        self.0.push(line.into());
    }

    pub(super) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub(super) fn work(self) -> DataplaneWork {
        DataplaneWork {
            dataplane: Kernel::NAME.to_owned(),
            dry_run: false,
            operations: self.0,
        }
    }
}

/// An end's namespace, open, with a netlink connection in it.
pub(super) struct Place {
    pub(super) ns: Netns,
    pub(super) rtnl: Arc<Rtnl>,
}

impl Place {
    /// This process's namespace, through the connection the data plane keeps open.
    pub(super) fn own(inner: &Inner) -> Self {
        Self {
            ns: inner.own_ns.clone(),
            rtnl: inner.own.clone(),
        }
    }
}

pub(super) async fn enter(inner: &Inner, end: End, url: &str) -> Result<Place, DataplaneError> {
    let ns = Netns::open(url).map_err(|e| netns_error(end, e))?;
    let rtnl = Rtnl::open(&ns, &inner.runtime)
        .await
        .map_err(|e| rtnl_error(&format!("the {end} end"), e))?;
    Ok(Place {
        ns,
        rtnl: Arc::new(rtnl),
    })
}

/// Where `end` is to be: its workload's namespace, or this process's for a host side.
pub(super) async fn place_of(inner: &Inner, end: &EndPlan) -> Result<Place, DataplaneError> {
    match end.side {
        Side::Workload => enter(inner, end.end, &end.netns_url).await,
        Side::Host => Ok(Place::own(inner)),
    }
}

/// Plumbs the vWire `plan` describes; on error nothing of it is left.
pub(super) async fn plumb(inner: &Inner, plan: &Plan) -> Result<DataplaneWork, DataplaneError> {
    let mut log = Log::default();
    let client = enter(inner, End::Client, &plan.client.netns_url).await?;
    let endpoint = enter(inner, End::Endpoint, &plan.endpoint.netns_url).await?;
    // Either end's name may hold a leftover of this vWire, whichever end it was.
    let leftover = |t: &Tag| t.vwire == plan.vwire && t.is_of(&inner.node);
    preflight(&client, &plan.client, leftover, &mut log).await?;
    preflight(&endpoint, &plan.endpoint, leftover, &mut log).await?;
    let ends = [(&client, &plan.client), (&endpoint, &plan.endpoint)];
    make_pair(inner, plan.vwire, ends, plan.mtu, &mut log).await?;
    Ok(log.work())
}

/// Creates the pair of `ends`, each directly in its place, in the node's group, in one
/// request; then tags and configures each end. On error nothing of it is left. Gives back
/// the two links as they were made (before they were tagged and set up).
pub(super) async fn make_pair(
    inner: &Inner,
    vwire: VWireId,
    ends: [(&Place, &EndPlan); 2],
    mtu: Option<u32>,
    log: &mut Log,
) -> Result<[Link; 2], DataplaneError> {
    let group = group_of(&inner.node);
    let [first, second] = ends.map(|(place, end)| VethEnd {
        name: &end.name,
        netns: &place.ns,
        group,
        mtu,
        mac: end.mac,
    });
    let [(a_place, a), (b_place, b)] = ends;
    inner
        .own
        .add_veth(&first, &second)
        .await
        .map_err(|e| match e.errno() {
            Some(Errno::EEXIST) => DataplaneError::Conflict(format!(
                "interface name {} or {} was taken in its namespace while the vWire was being made",
                a.name, b.name
            )),
            _ => rtnl_error("making the veth pair", e),
        })?;
    log.push(format!(
        "created veth pair {} ({}, in {}) / {} ({}, in {}), group {group}{}",
        a.name,
        a.role(),
        a_place.ns.url(),
        b.name,
        b.role(),
        b_place.ns.url(),
        mtu.map(|m| format!(", MTU {m}")).unwrap_or_default()
    ));
    let made = async {
        let first = configure(inner, vwire, a_place, a, log).await?;
        let second = configure(inner, vwire, b_place, b, log).await?;
        Ok::<_, DataplaneError>([first, second])
    };
    let error = match made.await {
        Ok(links) => return Ok(links),
        Err(error) => error,
    };
    let mut undo = Log::default();
    remove_made(inner, ends, &mut undo).await;
    tracing::debug!(%vwire, undone = ?undo.0, "plumbing undone");
    Err(error)
}

/// Refuses an end whose name is taken or whose addresses are on another link; removes a
/// link of that name whose tag `leftover` accepts (from an interrupted attempt).
pub(super) async fn preflight(
    place: &Place,
    end: &EndPlan,
    leftover: impl Fn(&Tag) -> bool,
    log: &mut Log,
) -> Result<(), DataplaneError> {
    let here = || end.namespace(place.ns.url());
    let found = place
        .rtnl
        .link_by_name(&end.name)
        .await
        .map_err(|e| rtnl_error(&here(), e))?;
    if let Some(link) = found {
        let ours = link.alias.as_deref().and_then(Tag::parse);
        if ours.is_some_and(|t| leftover(&t)) {
            place
                .rtnl
                .delete_link(link.index, &link.name)
                .await
                .map_err(|e| rtnl_error(&here(), e))?;
            log.push(format!(
                "removed a leftover {} of this vWire from {}",
                link.name,
                here()
            ));
        } else {
            return Err(DataplaneError::Conflict(format!(
                "interface name {} is already taken in {}",
                end.name,
                here()
            )));
        }
    }
    let present = place
        .rtnl
        .addresses()
        .await
        .map_err(|e| rtnl_error(&here(), e))?;
    for (ip, _) in &end.addresses {
        if let Some(other) = present.iter().find(|a| a.ip == *ip) {
            return Err(DataplaneError::Conflict(format!(
                "address {ip} is already on interface index {} in {}",
                other.link,
                here()
            )));
        }
    }
    Ok(())
}

/// Tags an end, brings it up, and gives it its addresses and routes; the link as it was
/// found before that.
async fn configure(
    inner: &Inner,
    vwire: VWireId,
    place: &Place,
    end: &EndPlan,
    log: &mut Log,
) -> Result<Link, DataplaneError> {
    let here = end.here(place.ns.url());
    let link = place
        .rtnl
        .link_by_name(&end.name)
        .await
        .map_err(|e| rtnl_error(&here, e))?
        .filter(|l| l.group == group_of(&inner.node))
        .ok_or_else(|| DataplaneError::Failed {
            dataplane: Kernel::NAME,
            reason: format!("{here} vanished right after it was made"),
        })?;
    let tag = Tag::new(vwire, end.end, &inner.node);
    place
        .rtnl
        .tag_and_up(link.index, &end.name, &tag.to_string())
        .await
        .map_err(|e| rtnl_error(&here, e))?;
    log.push(format!("tagged {here} \"{tag}\" and set it up"));
    add_addresses_and_routes(place, link.index, end, log).await?;
    Ok(link)
}

/// Gives link `index` of `place` the addresses and routes of `end` (routes on the link
/// first, as the plan orders them: a gateway is reachable only through them).
pub(super) async fn add_addresses_and_routes(
    place: &Place,
    index: u32,
    end: &EndPlan,
    log: &mut Log,
) -> Result<(), DataplaneError> {
    let here = end.here(place.ns.url());
    for (ip, len) in &end.addresses {
        place
            .rtnl
            .add_address(index, *ip, *len)
            .await
            .map_err(|e| rtnl_error(&here, e))?;
        log.push(format!("added {ip}/{len} to {here}"));
    }
    for route in &end.routes {
        let new = NewRoute {
            prefix: route.network,
            len: route.len,
            gateway: route.gateway,
            link: index,
        };
        place
            .rtnl
            .add_route(&new)
            .await
            .map_err(|e| match e.errno() {
                Some(Errno::EEXIST) => DataplaneError::Conflict(format!(
                    "route {}/{} already exists in the {} end's namespace {}",
                    route.network,
                    route.len,
                    end.end,
                    place.ns.url()
                )),
                Some(Errno::ENETUNREACH) => DataplaneError::InvalidInput(format!(
                    "route {}/{} of the {} end: its next hop {} is not reachable through {}",
                    route.network,
                    route.len,
                    end.end,
                    route.gateway.map_or_else(String::new, |g| g.to_string()),
                    end.name
                )),
                _ => rtnl_error(&here, e),
            })?;
        log.push(match route.gateway {
            Some(gateway) => format!(
                "routed {}/{} via {gateway} on {here}",
                route.network, route.len
            ),
            None => format!("routed {}/{} on {here}", route.network, route.len),
        });
    }
    Ok(())
}

/// Removes the pair [`make_pair`] made, tagged yet or not: its ends by name, if they are in
/// this node's group. Best effort, for undoing a failed plumbing.
pub(super) async fn remove_made(inner: &Inner, ends: [(&Place, &EndPlan); 2], log: &mut Log) {
    let group = group_of(&inner.node);
    for (place, end) in ends {
        remove_by_name(place, &end.name, |l| l.group == group, log).await;
    }
}

/// Removes link `name` of `place`, and with it its peer, if `ours` says it is the one to
/// remove; whether it is gone.
async fn remove_by_name(
    place: &Place,
    name: &str,
    ours: impl Fn(&Link) -> bool,
    log: &mut Log,
) -> bool {
    let Ok(Some(link)) = place.rtnl.link_by_name(name).await else {
        return false;
    };
    if !ours(&link) {
        return false;
    }
    match place.rtnl.delete_link(link.index, name).await {
        Ok(()) => {
            log.push(format!(
                "removed {name} from {} with its peer",
                place.ns.url()
            ));
            true
        }
        Err(e) if e.errno() == Some(Errno::ENODEV) => true,
        Err(e) => {
            log.push(format!("could not remove {name}: {e}"));
            false
        }
    }
}

/// Removes every link of the places of `ends` whose tag `ours` accepts, logging what it
/// removed. Best effort: what cannot be removed is logged and left to reconcile.
async fn remove_tagged(ends: &[(Place, &str)], ours: impl Fn(&Tag) -> bool, log: &mut Log) {
    for (place, _) in ends {
        let links = match place.rtnl.links().await {
            Ok(links) => links,
            Err(e) => {
                log.push(format!(
                    "could not list the links of {}: {e}",
                    place.ns.url()
                ));
                continue;
            }
        };
        for link in links {
            let Some(tag) = link.alias.as_deref().and_then(Tag::parse) else {
                continue;
            };
            if !ours(&tag) {
                continue;
            }
            match place.rtnl.delete_link(link.index, &link.name).await {
                Ok(()) => log.push(format!(
                    "removed {} ({} end) from {} with its peer",
                    link.name,
                    tag.end,
                    place.ns.url()
                )),
                // Removing one end of a pair removed the other already.
                Err(e) if e.errno() == Some(Errno::ENODEV) => {}
                Err(e) => log.push(format!("could not remove {}: {e}", link.name)),
            }
        }
    }
}

/// Opens `end`'s namespace to remove its links: `None` (and a line in `log`) when the
/// namespace is gone, for its links went with it.
pub(super) async fn enter_to_remove(
    inner: &Inner,
    end: End,
    url: &str,
    log: &mut Log,
) -> Result<Option<Place>, DataplaneError> {
    match enter(inner, end, url).await {
        Ok(place) => Ok(Some(place)),
        Err(DataplaneError::InvalidInput(why)) => {
            log.push(format!("{why}: its links went with it"));
            Ok(None)
        }
        Err(e) => Err(e),
    }
}

/// Removes everything of `vwire`, whose ends were in these namespaces.
pub(super) async fn unplumb(
    inner: &Inner,
    vwire: VWireId,
    urls: [&str; 2],
    names: [&str; 2],
) -> Result<DataplaneWork, DataplaneError> {
    let mut log = Log::default();
    let mut ends = Vec::new();
    for ((end, url), name) in [End::Client, End::Endpoint]
        .into_iter()
        .zip(urls)
        .zip(names)
    {
        if let Some(place) = enter_to_remove(inner, end, url, &mut log).await? {
            ends.push((place, name));
        }
    }
    let ours = |t: &Tag| t.vwire == vwire && t.is_of(&inner.node);
    remove_ends(&ends, ours, &mut log).await;
    if log.is_empty() {
        log.push(format!("nothing of vWire {vwire} was left to remove"));
    }
    Ok(log.work())
}

/// Removes the links whose tags `ours` accepts from the places given, each known by the
/// name it was made with. The names are tried first (one request each; removing one end of
/// a pair removes both); only when none is there with such a tag are the places searched
/// by tag (a link renamed by hand), so removing many vWires of one namespace does not list
/// it each time.
pub(super) async fn remove_ends(
    ends: &[(Place, &str)],
    ours: impl Fn(&Tag) -> bool,
    log: &mut Log,
) {
    let tagged = |link: &Link| {
        link.alias
            .as_deref()
            .and_then(Tag::parse)
            .is_some_and(|t| ours(&t))
    };
    for (place, name) in ends {
        if remove_by_name(place, name, tagged, log).await {
            return;
        }
    }
    remove_tagged(ends, &ours, log).await;
}

/// What is missing or wrong with a plumbed vWire (nothing: it is whole).
pub(super) async fn verify(inner: &Inner, plan: &Plan) -> Vec<String> {
    verify_ends(inner, plan.vwire, [&plan.client, &plan.endpoint]).await
}

/// What is missing or wrong with the two ends of a pair of `vwire`.
pub(super) async fn verify_ends(inner: &Inner, vwire: VWireId, ends: [&EndPlan; 2]) -> Vec<String> {
    let mut problems = Vec::new();
    for end in ends {
        let place = match place_of(inner, end).await {
            Ok(place) => place,
            Err(e) => {
                problems.push(e.to_string());
                continue;
            }
        };
        problems.extend(check_end(inner, vwire, &place, end).await);
    }
    problems
}

pub(super) async fn check_end(
    inner: &Inner,
    vwire: VWireId,
    place: &Place,
    end: &EndPlan,
) -> Vec<String> {
    let here = end.here(place.ns.url());
    let link = match place.rtnl.link_by_name(&end.name).await {
        Ok(Some(link)) => link,
        Ok(None) => return vec![format!("{here} is missing")],
        Err(e) => return vec![format!("{here} cannot be read: {e}")],
    };
    let tag = link.alias.as_deref().and_then(Tag::parse);
    if !tag.is_some_and(|t| t.is_end_of(vwire, end.end, &inner.node)) {
        return vec![format!(
            "{here} is not this vWire's (alias {:?})",
            link.alias
        )];
    }
    let mut problems = Vec::new();
    if !link.up {
        problems.push(format!("{here} is down"));
    }
    match place.rtnl.addresses().await {
        Ok(present) => {
            for (ip, len) in &end.addresses {
                let has = |a: &&super::rtnl::Address| a.link == link.index && a.ip == *ip;
                if !present.iter().any(|a| has(&a)) {
                    problems.push(format!("{here} lacks {ip}/{len}"));
                }
            }
        }
        Err(e) => problems.push(format!("the addresses of {here} cannot be read: {e}")),
    }
    problems
}

pub(super) fn netns_error(end: End, error: NetnsError) -> DataplaneError {
    let message = format!("the {end} end's network namespace: {error}");
    match error {
        NetnsError::BadUrl { .. } | NetnsError::Missing { .. } | NetnsError::NotNetns { .. } => {
            DataplaneError::InvalidInput(message)
        }
        NetnsError::Unusable { .. } | NetnsError::Exists { .. } => {
            DataplaneError::NotPermitted(message)
        }
    }
}

/// A netlink failure, with "not permitted" told apart (a capability is missing).
pub(super) fn rtnl_error(place: &str, error: RtnlError) -> DataplaneError {
    match error {
        RtnlError::Netns(e) => DataplaneError::NotPermitted(format!("{place}: {e}")),
        RtnlError::Kernel {
            errno: Errno::EPERM | Errno::EACCES,
            ..
        } => DataplaneError::NotPermitted(format!(
            "{place}: {error} (the kernel data plane needs CAP_NET_ADMIN and CAP_SYS_ADMIN)"
        )),
        other => DataplaneError::Failed {
            dataplane: Kernel::NAME,
            reason: format!("{place}: {other}"),
        },
    }
}

/// The source and destination addresses the liveness probe pairs up: the client end's
/// addresses and the endpoint end's, of the same family.
pub(super) fn probe_pairs(plan: &Plan) -> Vec<(IpAddr, IpAddr)> {
    let mut pairs = Vec::new();
    for (src, _) in &plan.client.addresses {
        for (dst, _) in &plan.endpoint.addresses {
            if src.is_ipv4() == dst.is_ipv4() {
                pairs.push((*src, *dst));
            }
        }
    }
    pairs
}

/// A pair between two namespaces, an address on each end, both up; nothing tagged, made
/// the same way as a vWire's pair.
pub(super) async fn bare_pair(
    inner: &Inner,
    ends: [super::BareEnd; 2],
) -> Result<(), DataplaneError> {
    let [first, second] = ends.each_ref().map(|end| VethEnd {
        name: &end.name,
        netns: &end.netns,
        group: 0,
        mtu: None,
        mac: None,
    });
    inner
        .own
        .add_veth(&first, &second)
        .await
        .map_err(|e| rtnl_error("making the bare pair", e))?;
    for end in &ends {
        let there = |e| rtnl_error(end.netns.url(), e);
        let rtnl = Rtnl::open(&end.netns, &inner.runtime)
            .await
            .map_err(there)?;
        let link = rtnl
            .link_by_name(&end.name)
            .await
            .map_err(there)?
            .ok_or_else(|| DataplaneError::Failed {
                dataplane: Kernel::NAME,
                reason: format!("{} vanished right after it was made", end.name),
            })?;
        rtnl.set_up(link.index, &end.name).await.map_err(there)?;
        rtnl.add_address(link.index, end.address, end.prefix_len)
            .await
            .map_err(there)?;
    }
    Ok(())
}
