//! The data plane as the vWire actors see it: plumb a vWire's two ends together, unplumb
//! them, and say which mechanisms can be plumbed. The kernel (netlink) and VPP forwarders
//! implement [`Dataplane`] in their own issues; this module has the contract and the
//! `dry-run` data plane, which does nothing and says so in every record it returns.
//!
//! A data plane never writes to the log: it returns a [`DataplaneWork`] and the vWire records
//! it (`DataplanePlumbed`, `DataplaneUnplumbed`) in the same append as the decision it
//! belongs to.

use std::fmt;

use futures::future::BoxFuture;
use nsm_events::vwire::{
    ConnectionContext, DataplaneWork, Mechanism, MechanismClass, Plumbing, VWireId,
};

/// What to plumb: the client's end, the endpoint's end, and the context both ends get.
#[derive(Debug, Clone)]
pub struct PlumbRequest {
    pub vwire: VWireId,
    pub client: Mechanism,
    pub endpoint: Mechanism,
    pub context: ConnectionContext,
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

    /// Removes everything the vWire holds in the data plane.
    fn unplumb(
        &self,
        vwire: VWireId,
        plumbing: &Plumbing,
    ) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>>;

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
