//! The data plane as the forwarder drives it: plumb a vWire's two ends together, unplumb
//! them, check that a plumbed vWire is whole, list what exists, remove what nobody owns,
//! and probe the datapath. The kernel forwarder ([`crate::kernel`]) and the VPP forwarder
//! ([`crate::vpp`]) implement [`Dataplane`]; this module has the contract and the `dry-run`
//! data plane, which does nothing and says so in every record it returns.
//!
//! A data plane never writes to the log: it returns a [`DataplaneWork`] and the vWire records
//! it (`DataplanePlumbed`, `DataplaneUnplumbed`) in the same append as the decision it
//! belongs to. Every object a data plane makes carries the vWire's id, so that
//! [`Dataplane::inventory`] finds it again after any crash.

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use nsm_domain::registry::Payload;
use nsm_domain::vwire::{
    ConnectionContext, DataplaneWork, Mechanism, MechanismClass, Plumbing, VWire, VWireId,
};

/// Which end of a vWire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum End {
    Client,
    Endpoint,
}

impl End {
    pub fn as_str(self) -> &'static str {
        match self {
            End::Client => "client",
            End::Endpoint => "endpoint",
        }
    }
}

impl fmt::Display for End {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to plumb: the client's end, the endpoint's end, the context both ends get, and what
/// the vWire carries between them.
#[derive(Debug, Clone)]
pub struct PlumbRequest {
    pub vwire: VWireId,
    /// The Network Service's payload: Ethernet frames or IP packets. A data plane that joins
    /// the ends itself (VPP) joins them at that layer; one whose ends are joined by nature
    /// (a veth pair) carries either.
    pub payload: Payload,
    pub client: Mechanism,
    pub endpoint: Mechanism,
    pub context: ConnectionContext,
}

impl PlumbRequest {
    /// What a plumbed vWire's data plane should hold, from its folded state (`None` before
    /// it was plumbed).
    pub fn for_vwire(vwire: &VWire) -> Option<Self> {
        let plumbing = vwire.plumbing.as_ref()?;
        let connection = vwire.connection.as_ref()?;
        Some(Self {
            vwire: vwire.id,
            payload: connection.payload,
            client: plumbing.client_mechanism.clone(),
            endpoint: plumbing.endpoint_mechanism.clone(),
            context: connection.context.clone(),
        })
    }
}

/// Something a data plane made, as [`Dataplane::inventory`] found it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DataplaneObject {
    /// The vWire its tag names; `None` for a half-made object whose tag was not on yet.
    pub vwire: Option<VWireId>,
    /// For the operator: what and where (`nsm-1 (client end) in file:///run/netns/c1`).
    pub description: String,
    /// For the data plane that made it: how to find exactly this object again.
    pub locator: String,
}

/// What a datapath probe found.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Liveness {
    /// Packets cross the vWire.
    Alive { rtt: Duration },
    /// Nothing came back: `what` was probed, `reason` says what was seen.
    Dead { what: String, reason: String },
    /// The client's end cannot exist any more (its network namespace is gone): the client
    /// is gone, the vWire should end.
    ClientGone { reason: String },
    /// This vWire is not probed (no addresses, or a data plane that cannot probe).
    NotProbed { why: String },
}

/// A live vWire's datapath broke, as the data plane saw it happen (an interface deleted or
/// set down behind the forwarder's back), so that the runtime re-plumbs it at once instead
/// of waiting for the next probe. Recorded like a failed probe: `ProbeFailed` naming `what`
/// and `reason`, then the repair.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub vwire: VWireId,
    /// What noticed it, in the probe's place (`VPP interface event`).
    pub what: String,
    /// What was seen (`the client end's VPP interface host-vpp-1f2e3d4c-c was deleted`).
    pub reason: String,
}

/// Why the data plane could not do what it was asked.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DataplaneError {
    /// None of the mechanisms the client offered can be plumbed here. Offer one of `supported`.
    #[error(
        "no offered mechanism is supported by the {dataplane} data plane: offered [{}], supported [{}]",
        offered.join(", "),
        supported.join(", ")
    )]
    Unsupported {
        dataplane: &'static str,
        offered: Vec<String>,
        supported: Vec<String>,
    },
    /// The request names something that cannot be plumbed (a bad parameter, say).
    #[error("{0}")]
    InvalidInput(String),
    /// Something the request needs is taken already (an interface name, an address).
    /// Choose another, or remove what holds it.
    #[error("{0}")]
    Conflict(String),
    /// The node lacks a capability the data plane needs; the operator must grant it.
    #[error("{0}")]
    NotPermitted(String),
    /// The data plane cannot be reached now (VPP is restarting, its API socket is away);
    /// nothing was done. Retry later.
    #[error("the {dataplane} data plane is unavailable: {reason}")]
    Unavailable {
        dataplane: &'static str,
        reason: String,
    },
    /// Plumbing failed on the host; nothing of it is left behind.
    #[error("the {dataplane} data plane failed: {reason}")]
    Failed {
        dataplane: &'static str,
        reason: String,
    },
}

/// A data plane: the forwarder's packet plumbing behind one interface.
pub trait Dataplane: Send + Sync + fmt::Debug + 'static {
    /// Its name in records and configuration (`dry-run`, `kernel`, `vpp`).
    fn name(&self) -> &'static str;

    /// Mechanism types (NSM's strings, `KERNEL`, `MEMIF`, ...) it can plumb on a local end.
    fn local_mechanisms(&self) -> &'static [&'static str];

    /// Connects the two ends. On error nothing of this vWire is left in the data plane.
    fn plumb(
        &self,
        request: PlumbRequest,
    ) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>>;

    /// Removes everything the vWire holds in the data plane. Objects already gone are fine.
    fn unplumb(
        &self,
        vwire: VWireId,
        plumbing: &Plumbing,
    ) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>>;

    /// Fills in what this data plane decides for an end whose mechanism leaves it open (the
    /// kernel's interface name), the same way every time for the same vWire.
    fn complete(&self, vwire: VWireId, end: End, mechanism: Mechanism) -> Mechanism {
        let _ = (vwire, end);
        mechanism
    }

    /// What is missing or wrong with a plumbed vWire, one line each; empty when it is whole.
    fn verify(
        &self,
        request: PlumbRequest,
    ) -> BoxFuture<'static, Result<Vec<String>, DataplaneError>> {
        let _ = request;
        Box::pin(futures::future::ready(Ok(Vec::new())))
    }

    /// Every object this data plane made on this node, found by its tags.
    fn inventory(&self) -> BoxFuture<'static, Result<Vec<DataplaneObject>, DataplaneError>> {
        Box::pin(futures::future::ready(Ok(Vec::new())))
    }

    /// Removes objects [`Self::inventory`] found (ones no live vWire owns).
    fn remove(
        &self,
        objects: Vec<DataplaneObject>,
    ) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>> {
        let work = DataplaneWork {
            dataplane: self.name().to_owned(),
            dry_run: false,
            operations: objects
                .iter()
                .map(|o| format!("nothing to remove for {}", o.description))
                .collect(),
        };
        Box::pin(futures::future::ready(Ok(work)))
    }

    /// Probes the datapath of a plumbed vWire from the client's end, for at most `timeout`.
    fn probe(
        &self,
        request: PlumbRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Liveness, DataplaneError>> {
        let _ = (request, timeout);
        let why = format!("the {} data plane does not probe", self.name());
        Box::pin(futures::future::ready(Ok(Liveness::NotProbed { why })))
    }

    /// Changes whenever the data plane lost what it held (VPP restarted) and the runtime
    /// should reconcile; `None` for data planes that cannot lose state behind our back.
    fn lost_state(&self) -> Option<tokio::sync::watch::Receiver<u64>> {
        None
    }

    /// Live vWires whose datapath broke, as the data plane notices it (interface events),
    /// from now on; `None` for data planes that only learn it by probing. A subscriber that
    /// falls behind misses faults (the probe and reconcile still find them).
    fn faults(&self) -> Option<tokio::sync::broadcast::Receiver<Fault>> {
        None
    }

    /// A reconcile pass begins: the data plane may read what it holds once, and answer
    /// [`Self::verify`] and [`Self::unplumb`] from that reading until [`Self::end_pass`],
    /// instead of reading it again for every vWire. An error leaves no pass open (the
    /// checks then read for themselves). Default: nothing to read.
    fn begin_pass(&self) -> BoxFuture<'static, Result<(), DataplaneError>> {
        Box::pin(futures::future::ready(Ok(())))
    }

    /// The reconcile pass ended: forget the reading [`Self::begin_pass`] took.
    fn end_pass(&self) {}

    /// The client's preferred mechanism this data plane supports: the first of `offered`
    /// that is local and of a supported type.
    fn choose(&self, offered: &[Mechanism]) -> Result<Mechanism, DataplaneError> {
        let supported = self.local_mechanisms();
        offered
            .iter()
            .find(|m| {
                m.cls == MechanismClass::Local && supported.contains(&m.mechanism_type.as_str())
            })
            .cloned()
            .ok_or_else(|| DataplaneError::Unsupported {
                dataplane: self.name(),
                offered: offered
                    .iter()
                    .map(|m| format!("{:?}/{}", m.cls, m.mechanism_type).to_uppercase())
                    .collect(),
                supported: supported.iter().map(|s| format!("LOCAL/{s}")).collect(),
            })
    }
}

/// `--dataplane dry-run`: plumbs nothing, and records what a forwarder would have done, for
/// control-plane testing. Every record it returns has `dry_run: true`.
#[derive(Debug, Clone, Copy, Default)]
pub struct DryRun;

impl DryRun {
    pub const NAME: &'static str = "dry-run";

    fn work(operations: Vec<String>) -> DataplaneWork {
        DataplaneWork {
            dataplane: Self::NAME.to_owned(),
            dry_run: true,
            operations,
        }
    }
}

fn describe(end: &str, mechanism: &Mechanism) -> String {
    let parameters: Vec<String> = mechanism
        .parameters
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect();
    format!(
        "would attach the {end} end by {} [{}]",
        mechanism.mechanism_type,
        parameters.join(", ")
    )
}

impl Dataplane for DryRun {
    fn name(&self) -> &'static str {
        Self::NAME
    }

    fn local_mechanisms(&self) -> &'static [&'static str] {
        &["KERNEL", "MEMIF"]
    }

    fn plumb(
        &self,
        request: PlumbRequest,
    ) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>> {
        let ip = &request.context.ip;
        let mut operations = vec![
            "dry run: nothing was plumbed".to_owned(),
            describe("client", &request.client),
            describe("endpoint", &request.endpoint),
            format!(
                "would carry {} between them ({})",
                request.payload.as_str(),
                match request.payload {
                    Payload::Ethernet => "an L2 cross-connect",
                    Payload::Ip => "an L3 cross-connect",
                }
            ),
        ];
        if !ip.src_ip_addrs.is_empty() {
            operations.push(format!(
                "would add {} on the client end",
                ip.src_ip_addrs.join(", ")
            ));
        }
        if !ip.dst_ip_addrs.is_empty() {
            operations.push(format!(
                "would add {} on the endpoint end",
                ip.dst_ip_addrs.join(", ")
            ));
        }
        for route in &ip.src_routes {
            operations.push(format!("would route {} from the client end", route.prefix));
        }
        for route in &ip.dst_routes {
            operations.push(format!(
                "would route {} from the endpoint end",
                route.prefix
            ));
        }
        if let Some(mtu) = request.context.mtu {
            operations.push(format!("would set MTU {mtu} on both ends"));
        }
        operations.push(format!(
            "would tag every object with vWire {}",
            request.vwire
        ));
        Box::pin(futures::future::ready(Ok(Self::work(operations))))
    }

    fn unplumb(
        &self,
        vwire: VWireId,
        plumbing: &Plumbing,
    ) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>> {
        let operations = vec![
            "dry run: nothing was removed".to_owned(),
            format!(
                "would remove the {} and {} ends tagged with vWire {vwire}",
                plumbing.client_mechanism.mechanism_type,
                plumbing.endpoint_mechanism.mechanism_type
            ),
        ];
        Box::pin(futures::future::ready(Ok(Self::work(operations))))
    }
}
