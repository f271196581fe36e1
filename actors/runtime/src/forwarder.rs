//! The Forwarder: the node's one owner of its data plane (DESIGN.md §3). vWires plumb,
//! unplumb, verify and probe through it; start-up reconcile sweeps through it.
//!
//! A reconcile pass is opened with [`Forwarder::begin_pass`], so that the data plane can read
//! what it holds once for every vWire's check rather than once per vWire; the pass ends when
//! the returned [`Pass`] is dropped, before the sweep, which reads afresh.
//!
//! Plumbing runs concurrently — one vWire's actor already serialises what happens to that
//! vWire — but never while a sweep lists and removes orphans: each operation holds a shared
//! gate for its duration and a sweep holds it alone, so a sweep never sees a pair half-made
//! by a call in flight. The gate is fair (tokio's `RwLock`): once a sweep waits, operations
//! that arrive after it wait for it to end, so nothing new starts before it ends.
//!
//! A plain, cloneable struct rather than an actor: all it owns is the gate, and an actor's
//! mailbox in front of it only added a hop and a "stopped" failure that could not happen.
//! The data plane behind it is any [`Dataplane`] (dry run, kernel, VPP).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use nsm_domain::vwire::{DataplaneWork, Mechanism, Plumbing, VWireId};
use tokio::sync::{RwLock, broadcast};

use crate::error::ActorError;
use crate::stats::DataplaneStats;
use nsm_dataplane::{
    Dataplane, DataplaneError, DataplaneObject, End, Fault, Liveness, PlumbRequest,
};

/// What a sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Objects no live vWire owned, as the data plane described them.
    pub removed: Vec<DataplaneObject>,
    /// What the data plane did to remove them.
    pub work: Option<DataplaneWork>,
}

/// The node's Forwarder. Clones share the data plane, the gate and the counters.
#[derive(Debug, Clone)]
pub struct Forwarder {
    dataplane: Arc<dyn Dataplane>,
    /// Shared by each operation in flight, held alone by a sweep.
    gate: Arc<RwLock<()>>,
    stats: Arc<DataplaneStats>,
}

impl Forwarder {
    /// The Forwarder over `dataplane`.
    pub fn new(dataplane: Arc<dyn Dataplane>) -> Self {
        Self {
            dataplane,
            gate: Arc::new(RwLock::new(())),
            stats: Arc::default(),
        }
    }

    /// What this data plane has done since it started (for the node's metrics).
    pub fn stats(&self) -> Arc<DataplaneStats> {
        self.stats.clone()
    }

    /// A live vWire's data plane was re-created (a repair).
    pub(crate) fn record_healed(&self) {
        self.stats.healed();
    }

    /// The data plane's name (`dry-run`, `kernel`, `vpp`).
    pub fn name(&self) -> &'static str {
        self.dataplane.name()
    }

    pub fn local_mechanisms(&self) -> &'static [&'static str] {
        self.dataplane.local_mechanisms()
    }

    /// The client's preferred mechanism the data plane supports.
    pub fn choose(&self, offered: &[Mechanism]) -> Result<Mechanism, DataplaneError> {
        self.dataplane.choose(offered)
    }

    /// An end's mechanism with what the data plane decides filled in.
    pub fn complete(&self, vwire: VWireId, end: End, mechanism: Mechanism) -> Mechanism {
        self.dataplane.complete(vwire, end, mechanism)
    }

    pub async fn plumb(&self, request: PlumbRequest) -> Result<DataplaneWork, ActorError> {
        let done = {
            let _shared = self.gate.read().await;
            self.dataplane.plumb(request).await
        };
        self.stats.plumbed(done.is_ok());
        Ok(done?)
    }

    pub async fn unplumb(
        &self,
        vwire: VWireId,
        plumbing: &Plumbing,
    ) -> Result<DataplaneWork, ActorError> {
        let done = {
            let _shared = self.gate.read().await;
            self.dataplane.unplumb(vwire, plumbing).await
        };
        self.stats.unplumbed(done.is_ok());
        Ok(done?)
    }

    /// What is missing or wrong with a plumbed vWire; empty when whole.
    pub async fn verify(&self, request: PlumbRequest) -> Result<Vec<String>, ActorError> {
        let _shared = self.gate.read().await;
        Ok(self.dataplane.verify(request).await?)
    }

    pub async fn probe(
        &self,
        request: PlumbRequest,
        timeout: Duration,
    ) -> Result<Liveness, ActorError> {
        let _shared = self.gate.read().await;
        Ok(self.dataplane.probe(request, timeout).await?)
    }

    /// Live vWires the data plane found broken, from now on; `None` for a data plane that
    /// finds them only by probing.
    pub fn faults(&self) -> Option<broadcast::Receiver<Fault>> {
        self.dataplane.faults()
    }

    /// Opens a reconcile pass: the data plane reads what it holds once, and answers every
    /// `verify` and `unplumb` of the pass from that reading. If it cannot read, each check
    /// reads for itself. The pass ends when the [`Pass`] is dropped.
    pub(crate) async fn begin_pass(&self) -> Pass {
        let began = {
            let _shared = self.gate.read().await;
            self.dataplane.begin_pass().await
        };
        if let Err(e) = began {
            tracing::warn!(error = %e, "the data plane could not be read once for the whole reconcile; each vWire's check reads it");
        }
        Pass {
            dataplane: self.dataplane.clone(),
        }
    }

    /// Removes every object of the data plane whose vWire is not in `owned`, with nothing
    /// else running on the data plane meanwhile.
    pub async fn sweep(&self, owned: HashSet<VWireId>) -> Result<Sweep, ActorError> {
        let sweep = {
            let _alone = self.gate.write().await;
            self.remove_orphans(owned).await?
        };
        self.stats.orphans_removed(sweep.removed.len());
        Ok(sweep)
    }

    async fn remove_orphans(&self, owned: HashSet<VWireId>) -> Result<Sweep, DataplaneError> {
        let found = self.dataplane.inventory().await?;
        let orphans: Vec<DataplaneObject> = found
            .into_iter()
            .filter(|o| o.vwire.is_none_or(|id| !owned.contains(&id)))
            .collect();
        if orphans.is_empty() {
            return Ok(Sweep::default());
        }
        let work = self.dataplane.remove(orphans.clone()).await?;
        Ok(Sweep {
            removed: orphans,
            work: Some(work),
        })
    }
}

/// An open reconcile pass ([`Forwarder::begin_pass`]); dropping it ends the pass.
#[derive(Debug)]
pub(crate) struct Pass {
    dataplane: Arc<dyn Dataplane>,
}

impl Drop for Pass {
    fn drop(&mut self) {
        self.dataplane.end_pass();
    }
}
