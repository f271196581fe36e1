//! Is a live vWire's datapath through VPP still whole? Three ways of telling, each fed to the
//! runtime as on the kernel data plane (a failed probe or a fault is recorded `ProbeFailed`,
//! then the re-plumb `DataplanePlumbed` and `Healed`):
//!
//! - **The probe** ([`Dataplane::probe`]), from the client's end. A KERNEL client end (a
//!   veth with af_packet, or a tap) is a real interface in the client's namespace with the
//!   client's addresses, so the kernel data plane's ICMP echo goes from there to the
//!   endpoint's addresses, through VPP. A MEMIF client end lives in the workload's own
//!   memory: nsm-rs cannot send from it, so it is not probed, and relies on the events below.
//! - **VPP's interface events** (`want_interface_events`, on every API session): an event
//!   about an interface of a live vWire that says it was deleted or went down is a fault.
//! - **The kernel's link events** for the host side of veth + af_packet ends: VPP's
//!   af_packet interface does not notice its host veth going down or being deleted (on VPP
//!   26.06 its link stays up and no event comes), so the forwarder watches those links
//!   itself, in its own namespace where they live.
//!
//! An event only says that something changed, not that it is still so: our own unplumbing
//! deletes interfaces, VPP reuses a deleted `sw_if_index` for the next interface, and an
//! interface is down for a moment while it is made. So an event is checked only for an
//! interface a live vWire holds now (unplumbing forgets them first), and a fault is reported
//! only after VPP (or the kernel) confirms the current state of that one interface. A vWire
//! is reported once per plumbing: its next unplumbing (the heal) clears that.
//!
//! Which states are faults, by kind:
//!
//! | state | tap, af_packet | memif |
//! |---|---|---|
//! | deleted | fault | fault |
//! | admin down (the forwarder set it up) | fault | fault |
//! | link down | fault | **not a fault** |
//! | host veth deleted, down, or without carrier | fault | — |
//!
//! A memif's link is down until the workload connects to its socket as slave and goes down
//! whenever the workload disconnects (restarts, closes its end): the workload's doing, and
//! re-plumbing would only pull the socket from under it as it reconnects.
//!
//! [`Dataplane::probe`]: crate::Dataplane::probe

use std::collections::{HashMap, HashSet};
use std::net::IpAddr;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures::{FutureExt, StreamExt, TryStreamExt};
use nsm_domain::vwire::{Mechanism, VWireId, parse_cidr};
use nsm_vpp::api::{
    IfStatusFlags, SwInterfaceDetails, SwInterfaceDump, SwInterfaceEvent, WantInterfaceEvents,
};
use nsm_vpp::client::EventStream;
use rtnetlink::packet_core::{NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::link::{LinkAttribute, LinkFlags};
use rtnetlink::sys::AsyncSocket;
use rtnetlink::{Handle, MulticastGroup};
use tokio::sync::broadcast;

use super::Inner;
use super::ends::{KERNEL, MEMIF, Made, MadeKind};
use super::tag::VppTag;
use crate::contract::{DataplaneError, End, Fault, Liveness, PlumbRequest};
use crate::kernel::{self, NAME_PARAMETER, NETNS_PARAMETER};

/// The probe a fault found by VPP's interface events is recorded as.
pub const VPP_EVENT: &str = "VPP interface event";
/// The probe a fault found by the kernel's link events is recorded as.
pub const KERNEL_EVENT: &str = "kernel link event";

/// Faults waiting for a slow subscriber before it misses them.
const FAULTS_BUFFERED: usize = 1024;
/// The receive buffer of the kernel link-event socket: making 1,000 vWires at once sends a
/// few thousand link messages, and an overrun loses events.
const LINK_EVENTS_BUFFER: usize = 4 << 20;
/// Before watching the kernel's link events again after the socket failed.
const LINK_EVENTS_RETRY: Duration = Duration::from_secs(1);

/// Probes a vWire from its client's end (see the module header).
pub(super) async fn probe(
    request: PlumbRequest,
    timeout: Duration,
) -> Result<Liveness, DataplaneError> {
    let client = &request.client;
    match client.mechanism_type.as_str() {
        KERNEL => {}
        MEMIF => {
            return Ok(Liveness::NotProbed {
                why: "the client end is a memif in the workload's own memory, which nsm-rs \
                      cannot send from; VPP's interface events watch it instead"
                    .into(),
            });
        }
        other => {
            return Ok(Liveness::NotProbed {
                why: format!("a {other} client end is not probed"),
            });
        }
    }
    let Some(netns_url) = client.parameters.get(NETNS_PARAMETER) else {
        return Ok(Liveness::NotProbed {
            why: format!("the client end's KERNEL mechanism names no {NETNS_PARAMETER}"),
        });
    };
    let interface = interface_name(request.vwire, client);
    let ip = &request.context.ip;
    let pairs = probe_pairs(&ip.src_ip_addrs, &ip.dst_ip_addrs);
    kernel::probe_from(netns_url, &interface, &pairs, timeout).await
}

fn interface_name(vwire: VWireId, mechanism: &Mechanism) -> String {
    mechanism
        .parameters
        .get(NAME_PARAMETER)
        .cloned()
        .unwrap_or_else(|| kernel::default_interface_name(vwire, End::Client))
}

/// Each client address with each endpoint address of the same family.
fn probe_pairs(client: &[String], endpoint: &[String]) -> Vec<(IpAddr, IpAddr)> {
    let parse = |texts: &[String]| -> Vec<IpAddr> {
        texts
            .iter()
            .filter_map(|t| parse_cidr(t).ok().map(|(ip, _)| ip))
            .collect()
    };
    let (from, to) = (parse(client), parse(endpoint));
    from.iter()
        .flat_map(|f| to.iter().map(move |t| (*f, *t)))
        .filter(|(f, t)| f.is_ipv4() == t.is_ipv4())
        .collect()
}

/// The faults this data plane found, for whoever listens ([`crate::Dataplane::faults`]).
#[derive(Debug)]
pub(crate) struct Faults {
    sender: broadcast::Sender<Fault>,
    /// vWires reported since their last unplumbing: one report per broken plumbing.
    reported: Mutex<HashSet<VWireId>>,
}

impl Faults {
    pub(crate) fn new() -> Self {
        Self {
            sender: broadcast::channel(FAULTS_BUFFERED).0,
            reported: Mutex::default(),
        }
    }

    pub(crate) fn subscribe(&self) -> broadcast::Receiver<Fault> {
        self.sender.subscribe()
    }

    /// The vWire was unplumbed (closed, or being re-made): its next plumbing may be reported.
    pub(crate) fn unplumbed(&self, vwire: VWireId) {
        self.reported().remove(&vwire);
    }

    fn reported(&self) -> std::sync::MutexGuard<'_, HashSet<VWireId>> {
        self.reported.lock().expect("reported lock")
    }

    fn is_reported(&self, vwire: VWireId) -> bool {
        self.reported().contains(&vwire)
    }

    fn report(&self, fault: Fault) {
        if !self.reported().insert(fault.vwire) {
            return;
        }
        tracing::warn!(vwire = %fault.vwire, what = %fault.what, reason = %fault.reason, "a vWire's datapath broke");
        // No subscriber: nobody heals on faults here; probes and reconcile still find it.
        let _ = self.sender.send(fault);
    }
}

/// Starts watching for faults; the watchers end when the data plane is dropped.
pub(super) fn watch(inner: &Arc<Inner>) {
    tokio::spawn(watch_vpp(Arc::downgrade(inner)));
    if inner.kernel.is_some() {
        tokio::spawn(watch_host_veths(Arc::downgrade(inner)));
    }
}

/// What a burst of VPP's events says of one interface: its latest flags, and whether it
/// was deleted on the way (a deleted index may be reused within the burst).
#[derive(Debug, Clone, Copy)]
struct Change {
    flags: IfStatusFlags,
    deleted: bool,
}

impl Change {
    /// Up with its link: a fault of no kind, whoever holds the interface (most events, as
    /// vWires are made, say this).
    fn all_up(self) -> bool {
        let up = IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP.0
            | IfStatusFlags::IF_STATUS_API_FLAG_LINK_UP.0;
        !self.deleted && self.flags.0 & up == up
    }

    fn suspect(self, kind: &MadeKind) -> bool {
        self.deleted || vpp_problem(kind, Some(self.flags)).is_some()
    }
}

/// What is wrong with an interface of `kind` in this state (`None`: it was deleted).
fn vpp_problem(kind: &MadeKind, flags: Option<IfStatusFlags>) -> Option<&'static str> {
    let Some(flags) = flags else {
        return Some("was deleted");
    };
    let admin_up = flags.0 & IfStatusFlags::IF_STATUS_API_FLAG_ADMIN_UP.0 != 0;
    let link_up = flags.0 & IfStatusFlags::IF_STATUS_API_FLAG_LINK_UP.0 != 0;
    let memif = matches!(kind, MadeKind::Memif { .. });
    if !admin_up {
        Some("was set down")
    } else if !link_up && !memif {
        Some("lost its link")
    } else {
        None
    }
}

/// VPP's interface events, one session after another, until the data plane is dropped.
async fn watch_vpp(inner: Weak<Inner>) {
    let Some(mut sessions) = inner.upgrade().map(|i| i.connection.sessions()) else {
        return;
    };
    loop {
        sessions.borrow_and_update();
        let subscribed = match inner.upgrade() {
            Some(strong) => subscribe(&strong).await,
            None => return,
        };
        match subscribed {
            Ok(mut events) => {
                while let Some(burst) = next_burst(&mut events).await {
                    let Some(strong) = inner.upgrade() else {
                        return;
                    };
                    strong.check_vpp_changes(burst).await;
                }
            }
            Err(DataplaneError::Unavailable { .. }) => {}
            Err(e) => {
                tracing::warn!(error = %e, "cannot subscribe to VPP's interface events; broken vWires are found by probes and reconcile only");
            }
        }
        // The session ended (VPP went away): subscribe again on the next one.
        if sessions.changed().await.is_err() {
            return;
        }
    }
}

async fn subscribe(inner: &Inner) -> Result<EventStream<SwInterfaceEvent>, DataplaneError> {
    let client = inner.client()?;
    let events = client
        .subscribe::<SwInterfaceEvent>()
        .map_err(super::vpp_error)?;
    let want = WantInterfaceEvents {
        enable_disable: 1,
        pid: std::process::id(),
    };
    client.request(&want).await.map_err(super::vpp_error)?;
    Ok(events)
}

/// A burst of VPP's interface events: what they say by interface, and whether some were
/// missed (the watcher fell behind), so that nothing they said can be trusted as complete.
#[derive(Debug, Default)]
struct Burst {
    changes: HashMap<u32, Change>,
    missed: bool,
}

impl Burst {
    /// Adds one item of the stream; `false` when it was not an event.
    fn add(&mut self, item: Result<SwInterfaceEvent, nsm_vpp::client::Error>) -> bool {
        match item {
            Ok(event) => {
                let change = self.changes.entry(event.sw_if_index).or_insert(Change {
                    flags: event.flags,
                    deleted: false,
                });
                change.flags = event.flags;
                change.deleted |= event.deleted;
                true
            }
            Err(nsm_vpp::client::Error::EventsMissed { missed, .. }) => {
                tracing::debug!(
                    missed,
                    "interface events were missed; every live vWire's interfaces are read afresh"
                );
                self.missed = true;
                true
            }
            Err(e) => {
                tracing::warn!(error = %e, "an interface event did not decode");
                false
            }
        }
    }
}

/// The next event and every one already arrived behind it; `None` once the session is
/// closed.
async fn next_burst(events: &mut EventStream<SwInterfaceEvent>) -> Option<Burst> {
    let mut burst = Burst::default();
    while !burst.add(events.next().await?) {}
    while let Some(Some(next)) = events.next().now_or_never() {
        burst.add(next);
    }
    Some(burst)
}

impl Inner {
    /// Reports the vWires whose interfaces these changes broke, once VPP confirms it.
    async fn check_vpp_changes(&self, burst: Burst) {
        if burst.missed {
            // The events that were dropped may have told of any interface.
            return self.check_every_vpp_end().await;
        }
        for (sw_if_index, change) in burst.changes {
            if change.all_up() {
                continue;
            }
            let suspects: Vec<(VWireId, Made)> = self
                .known()
                .ends_on(sw_if_index)
                .into_iter()
                .filter(|(vwire, made)| {
                    change.suspect(&made.kind) && !self.faults.is_reported(*vwire)
                })
                .collect();
            if suspects.is_empty() {
                continue;
            }
            let Ok(client) = self.client() else {
                return;
            };
            let dump = SwInterfaceDump {
                sw_if_index,
                ..SwInterfaceDump::default()
            };
            match client.dump(&dump).await {
                Ok(now) => self.confirm_vpp_suspects(suspects, &now),
                Err(e) => {
                    tracing::debug!(sw_if_index, error = %e, "cannot confirm an interface event")
                }
            }
        }
    }

    /// Checks every end of every live vWire against one reading of all of VPP's interfaces.
    async fn check_every_vpp_end(&self) {
        let Ok(client) = self.client() else {
            return;
        };
        let now = match client.dump(&SwInterfaceDump::default()).await {
            Ok(now) => now,
            Err(e) => {
                tracing::debug!(error = %e, "cannot read VPP's interfaces after missed events");
                return;
            }
        };
        let suspects = self.known().every_end();
        self.confirm_vpp_suspects(suspects, &now);
    }

    /// Reports each suspect end whose interface, as `now` shows it, is broken for its kind
    /// and still held by the same vWire.
    fn confirm_vpp_suspects(&self, suspects: Vec<(VWireId, Made)>, now: &[SwInterfaceDetails]) {
        for (vwire, made) in suspects {
            if self.faults.is_reported(vwire) {
                continue;
            }
            let tag = VppTag::new(&self.node, vwire, made.end).to_string();
            let flags = now
                .iter()
                .find(|d| d.sw_if_index == made.sw_if_index && d.tag.as_str() == tag)
                .map(|d| d.flags);
            let Some(problem) = vpp_problem(&made.kind, flags) else {
                continue;
            };
            // Re-made meanwhile: the new interfaces are judged by their own events.
            if !self
                .known()
                .ends_on(made.sw_if_index)
                .contains(&(vwire, made.clone()))
            {
                continue;
            }
            self.faults.report(Fault {
                vwire,
                what: VPP_EVENT.to_owned(),
                reason: format!(
                    "the {} end's VPP interface {} {problem}",
                    made.end, made.name
                ),
            });
        }
    }
}

/// The kernel's link events in this namespace, where the host sides of veth + af_packet
/// ends live, until the data plane is dropped.
async fn watch_host_veths(inner: Weak<Inner>) {
    let Some(mut gone) = inner.upgrade().map(|i| i.connection.sessions()) else {
        return;
    };
    loop {
        match rtnetlink::new_multicast_connection(&[MulticastGroup::Link]) {
            Ok((mut connection, handle, mut messages)) => {
                if let Err(e) = connection
                    .socket_mut()
                    .socket_ref()
                    .set_rx_buf_sz(LINK_EVENTS_BUFFER)
                {
                    tracing::debug!(error = %e, "cannot enlarge the link-event socket's buffer");
                }
                let driver = tokio::spawn(connection);
                // Whatever changed while nobody watched (at start, or after an overrun).
                if let Some(strong) = inner.upgrade() {
                    strong.check_every_host_veth(&handle).await;
                }
                loop {
                    let message = tokio::select! {
                        message = messages.next() => message,
                        // The data plane was dropped (its connection's sender with it).
                        _ = async { while gone.changed().await.is_ok() {} } => None,
                    };
                    let Some((message, _)) = message else { break };
                    let Some(strong) = inner.upgrade() else { break };
                    if let Some(name) = suspect_link(&message) {
                        strong.check_host_veth(&handle, &name).await;
                    }
                }
                driver.abort();
            }
            Err(e) => {
                tracing::warn!(error = %e, "cannot watch the kernel's link events; broken host veths are found by probes and reconcile only");
            }
        }
        if inner.strong_count() == 0 {
            return;
        }
        tracing::debug!("the kernel's link events stopped; watching again");
        tokio::time::sleep(LINK_EVENTS_RETRY).await;
    }
}

/// The link a message says was deleted, set down or lost its carrier.
fn suspect_link(message: &NetlinkMessage<RouteNetlinkMessage>) -> Option<String> {
    let NetlinkPayload::InnerMessage(inner) = &message.payload else {
        return None;
    };
    let (link, deleted) = match inner {
        RouteNetlinkMessage::NewLink(link) => (link, false),
        RouteNetlinkMessage::DelLink(link) => (link, true),
        _ => return None,
    };
    let flags = link.header.flags;
    let broken = deleted || !flags.contains(LinkFlags::Up) || !flags.contains(LinkFlags::LowerUp);
    if !broken {
        return None;
    }
    link.attributes.iter().find_map(|a| match a {
        LinkAttribute::IfName(name) => Some(name.clone()),
        _ => None,
    })
}

impl Inner {
    async fn check_every_host_veth(&self, handle: &Handle) {
        let names: HashSet<String> = self.known().host_veths().into_iter().collect();
        for name in names {
            self.check_host_veth(handle, &name).await;
        }
    }

    /// Reports the vWire whose host veth `name` is, if the kernel confirms it is broken.
    async fn check_host_veth(&self, handle: &Handle, name: &str) {
        let suspects: Vec<(VWireId, Made)> = self
            .known()
            .end_on_host_veth(name)
            .into_iter()
            .filter(|(vwire, _)| !self.faults.is_reported(*vwire))
            .collect();
        if suspects.is_empty() {
            return;
        }
        let found = handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute()
            .try_next()
            .await;
        let problem = match found {
            Ok(Some(link)) if !link.header.flags.contains(LinkFlags::Up) => "was set down",
            Ok(Some(link)) if !link.header.flags.contains(LinkFlags::LowerUp) => {
                "lost its carrier (its peer in the workload's namespace is down or gone)"
            }
            Ok(Some(_)) => return,
            Ok(None) => "was deleted",
            Err(rtnetlink::Error::NetlinkError(e))
                if e.raw_code() == -(nix::errno::Errno::ENODEV as i32) =>
            {
                "was deleted"
            }
            Err(e) => {
                tracing::debug!(link = name, error = %e, "cannot confirm a link event");
                return;
            }
        };
        for (vwire, made) in suspects {
            if !self
                .known()
                .end_on_host_veth(name)
                .contains(&(vwire, made.clone()))
            {
                continue;
            }
            self.faults.report(Fault {
                vwire,
                what: KERNEL_EVENT.to_owned(),
                reason: format!(
                    "the {} end's host veth {name} (under VPP's {}) {problem}",
                    made.end, made.name
                ),
            });
        }
    }
}
