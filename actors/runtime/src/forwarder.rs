//! The Forwarder: the node's one owner of its data plane (DESIGN.md §3). vWires plumb,
//! unplumb, verify and probe through it; start-up reconcile sweeps through it.
//!
//! Plumbing runs concurrently — one vWire's actor already serialises what happens to that
//! vWire — but never while a sweep lists and removes orphans: each operation holds a shared
//! gate for its duration and a sweep holds it alone, so a sweep never sees a pair half-made
//! by a call in flight. The sweep is also one exclusive step of the actor, so nothing new
//! starts before it ends.
//!
//! Reached through [`ForwarderHandle`]; the data plane behind it is any [`Dataplane`] (dry
//! run, kernel, and VPP in its own issue).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use nsm_domain::vwire::{DataplaneWork, Mechanism, Plumbing, VWireId};
use tokio::sync::RwLock;

use crate::error::ActorError;
use crate::stats::DataplaneStats;
use nsm_dataplane::{Dataplane, DataplaneError, DataplaneObject, End, Liveness, PlumbRequest};

/// Calls queued for the forwarder before callers wait: one per vWire being set up.
const MAILBOX_CAPACITY: usize = 4096;

/// What a sweep removed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Sweep {
    /// Objects no live vWire owned, as the data plane described them.
    pub removed: Vec<DataplaneObject>,
    /// What the data plane did to remove them.
    pub work: Option<DataplaneWork>,
}

struct Forwarder {
    dataplane: Arc<dyn Dataplane>,
    gate: Arc<RwLock<()>>,
}

impl Actor for Forwarder {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }
}

/// The data-plane operations a vWire asks for, each run under the shared gate.
enum Operation {
    Plumb(PlumbRequest),
    Unplumb(VWireId, Box<Plumbing>),
    Verify(PlumbRequest),
    Probe(PlumbRequest, Duration),
}

/// What an [`Operation`] gave.
enum Outcome {
    Work(DataplaneWork),
    Problems(Vec<String>),
    Liveness(Liveness),
}

#[derive(Message)]
#[rtype(result = "Result<Outcome, DataplaneError>")]
struct Run(Operation);

impl Handler<Run> for Forwarder {
    type Result = ResponseFuture<Result<Outcome, DataplaneError>>;

    fn handle(&mut self, msg: Run, _: &mut Context<Self>) -> Self::Result {
        let dataplane = &self.dataplane;
        let work = match msg.0 {
            Operation::Plumb(request) => {
                let fut = dataplane.plumb(request);
                Box::pin(async move { fut.await.map(Outcome::Work) })
                    as futures::future::BoxFuture<'static, _>
            }
            Operation::Unplumb(vwire, plumbing) => {
                let fut = dataplane.unplumb(vwire, &plumbing);
                Box::pin(async move { fut.await.map(Outcome::Work) })
            }
            Operation::Verify(request) => {
                let fut = dataplane.verify(request);
                Box::pin(async move { fut.await.map(Outcome::Problems) })
            }
            Operation::Probe(request, timeout) => {
                let fut = dataplane.probe(request, timeout);
                Box::pin(async move { fut.await.map(Outcome::Liveness) })
            }
        };
        let gate = self.gate.clone();
        Box::pin(async move {
            let _shared = gate.read_owned().await;
            work.await
        })
    }
}

/// Lists the data plane's objects and removes those whose vWire is not in `owned`.
#[derive(Message)]
#[rtype(result = "Result<Sweep, DataplaneError>")]
struct SweepOrphans {
    owned: HashSet<VWireId>,
}

impl Handler<SweepOrphans> for Forwarder {
    type Result = AtomicResponse<Self, Result<Sweep, DataplaneError>>;

    fn handle(&mut self, msg: SweepOrphans, _: &mut Context<Self>) -> Self::Result {
        let dataplane = self.dataplane.clone();
        let gate = self.gate.clone();
        let work = async move {
            let _alone = gate.write_owned().await;
            let found = dataplane.inventory().await?;
            let orphans: Vec<DataplaneObject> = found
                .into_iter()
                .filter(|o| o.vwire.is_none_or(|id| !msg.owned.contains(&id)))
                .collect();
            if orphans.is_empty() {
                return Ok(Sweep::default());
            }
            let work = dataplane.remove(orphans.clone()).await?;
            Ok(Sweep {
                removed: orphans,
                work: Some(work),
            })
        };
        AtomicResponse::new(Box::pin(work.into_actor(self)))
    }
}

/// A handle to the node's Forwarder.
#[derive(Debug, Clone)]
pub struct ForwarderHandle {
    addr: Addr<Forwarder>,
    /// For what needs no message: the data plane's name and mechanism choices.
    dataplane: Arc<dyn Dataplane>,
    stats: Arc<DataplaneStats>,
}

impl ForwarderHandle {
    /// Starts the Forwarder over `dataplane` on the current arbiter (inside the System).
    pub fn start(dataplane: Arc<dyn Dataplane>) -> Self {
        let forwarder = Forwarder {
            dataplane: dataplane.clone(),
            gate: Arc::new(RwLock::new(())),
        };
        Self {
            addr: forwarder.start(),
            dataplane,
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

    async fn run(&self, operation: Operation) -> Result<Outcome, ActorError> {
        Ok(self.addr.send(Run(operation)).await??)
    }

    pub async fn plumb(&self, request: PlumbRequest) -> Result<DataplaneWork, ActorError> {
        let done = match self.run(Operation::Plumb(request)).await {
            Ok(Outcome::Work(work)) => Ok(work),
            Ok(_) => Err(ActorError::Stopped),
            Err(e) => Err(e),
        };
        self.stats.plumbed(done.is_ok());
        done
    }

    pub async fn unplumb(
        &self,
        vwire: VWireId,
        plumbing: &Plumbing,
    ) -> Result<DataplaneWork, ActorError> {
        let operation = Operation::Unplumb(vwire, Box::new(plumbing.clone()));
        let done = match self.run(operation).await {
            Ok(Outcome::Work(work)) => Ok(work),
            Ok(_) => Err(ActorError::Stopped),
            Err(e) => Err(e),
        };
        self.stats.unplumbed(done.is_ok());
        done
    }

    /// What is missing or wrong with a plumbed vWire; empty when whole.
    pub async fn verify(&self, request: PlumbRequest) -> Result<Vec<String>, ActorError> {
        match self.run(Operation::Verify(request)).await? {
            Outcome::Problems(problems) => Ok(problems),
            _ => Err(ActorError::Stopped),
        }
    }

    pub async fn probe(
        &self,
        request: PlumbRequest,
        timeout: Duration,
    ) -> Result<Liveness, ActorError> {
        match self.run(Operation::Probe(request, timeout)).await? {
            Outcome::Liveness(liveness) => Ok(liveness),
            _ => Err(ActorError::Stopped),
        }
    }

    /// Removes every object of the data plane whose vWire is not in `owned`, with nothing
    /// else running on the data plane meanwhile.
    pub async fn sweep(&self, owned: HashSet<VWireId>) -> Result<Sweep, ActorError> {
        let sweep = self.addr.send(SweepOrphans { owned }).await??;
        self.stats.orphans_removed(sweep.removed.len());
        Ok(sweep)
    }
}
