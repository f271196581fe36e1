//! Heals at once the vWires the data plane reports broken ([`nsm_dataplane::Fault`]: VPP's
//! interface events saw one of a vWire's interfaces deleted or set down, say), instead of
//! waiting for the next liveness probe — or for ever, where the end cannot be probed (a
//! MEMIF client end).
//!
//! A fault takes the failed probe's path: the vWire records `ProbeFailed` (the probe named by
//! the fault, `VPP interface event`, with its reason), re-plumbs, and records
//! `DataplanePlumbed` and `Healed` in one exclusive step, or ends `Failed` if it cannot be
//! re-made. Unlike probes, which cost traffic and are switched on by the operator, faults
//! cost nothing until something breaks, so a node heals on them whenever its data plane
//! reports them.

use nsm_dataplane::Fault;
use tokio::sync::broadcast::error::RecvError;

use crate::error::ActorError;
use crate::manager::ManagerHandle;

impl ManagerHandle {
    /// Listens to the data plane's faults for the life of the node; a no-op for a data plane
    /// that reports none. Called once, when the Manager starts.
    pub(crate) fn heal_on_faults(&self) {
        let Some(mut faults) = self.mesh().and_then(|mesh| mesh.forwarder.faults()) else {
            return;
        };
        let manager = self.clone();
        tokio::spawn(async move {
            loop {
                match faults.recv().await {
                    // Each on its own: one vWire's heal does not hold back another's.
                    Ok(fault) => {
                        tokio::spawn(manager.clone().heal_fault(fault));
                    }
                    Err(RecvError::Lagged(missed)) => {
                        tracing::warn!(
                            missed,
                            "data-plane faults missed; probes and reconcile find those vWires"
                        );
                    }
                    Err(RecvError::Closed) => return,
                }
            }
        });
    }

    async fn heal_fault(self, fault: Fault) {
        let Fault {
            vwire: id,
            what,
            reason,
        } = fault;
        let healed = match self.vwire(id).await {
            Ok(vwire) => vwire.heal_datapath(what, reason).await,
            Err(e) => Err(e),
        };
        match healed {
            Ok(()) => {}
            // It ended meanwhile: nothing to heal.
            Err(ActorError::Stopped) => {}
            Err(e) => tracing::warn!(vwire = %id, error = %e, "broken vWire not healed"),
        }
    }
}
