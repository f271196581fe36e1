//! Start-up reconcile (DESIGN.md §3, "heal"): after replay, compare the data plane with
//! what the log says must exist, and make them agree.
//!
//! 1. Every live vWire checks its own plumbing, in its own exclusive step (so a vWire that
//!    is expiring because its deadline passed while the node was down finishes that first),
//!    and re-creates what is missing, recording `Healed` — or `Failed` if it cannot. The
//!    checks run inside one pass of the data plane ([`crate::Forwarder::begin_pass`]): VPP
//!    is read once for all of them, not once per vWire.
//! 2. The Forwarder then lists everything the data plane holds for this node and removes
//!    what no live vWire owns, with nothing else running on the data plane meanwhile.
//! 3. The node's data-plane stream (`dataplane-<node>`) records what was removed
//!    (`OrphansRemoved`) and the summary (`Reconciled`).
//!
//! At start-up it runs before the node serves, so no call plumbs meanwhile; after a VPP
//! restart it runs while the node serves, and the data plane does not answer from its
//! pass's reading for a vWire plumbed or unplumbed since.

use std::collections::HashSet;

use futures::StreamExt;
use nsm_domain::dataplane::{self, DataplaneEvent, OrphansRemoved, Reconciled, RemovedObject};
use nsm_log::StoreError;
use nsm_log::store::Causation;
use tokio::time::Instant;

use crate::error::ActorError;
use crate::flow::Reconciliation;
use crate::manager::ManagerHandle;

/// vWires checked at once.
const CONCURRENCY: usize = 32;

/// What reconcile found and did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReconcileReport {
    pub dataplane: String,
    /// Live vWires whose plumbing was checked.
    pub checked: usize,
    pub whole: usize,
    pub healed: usize,
    pub failed: usize,
    /// Objects no live vWire owned, removed.
    pub orphans_removed: usize,
    pub duration: std::time::Duration,
}

impl ManagerHandle {
    /// Reconciles the data plane with the log (see the module header). Call once, after
    /// [`ManagerHandle::start`] and before serving.
    pub async fn reconcile(&self) -> Result<ReconcileReport, ActorError> {
        let began = Instant::now();
        let Some(mesh) = self.mesh() else {
            return Ok(ReconcileReport::default());
        };
        let mut report = ReconcileReport {
            dataplane: mesh.forwarder.name().to_owned(),
            ..ReconcileReport::default()
        };
        let ids = self.live().await?;
        let pass = mesh.forwarder.begin_pass().await;
        let outcomes: Vec<_> = futures::stream::iter(ids)
            .map(|id| async move {
                let outcome = match self.vwire(id).await {
                    Ok(vwire) => vwire.reconcile().await,
                    Err(e) => Err(e),
                };
                (id, outcome)
            })
            .buffer_unordered(CONCURRENCY)
            .collect()
            .await;
        drop(pass);
        let mut owned = HashSet::new();
        for (id, outcome) in outcomes {
            match outcome {
                Ok(found) => {
                    match &found {
                        Reconciliation::Whole => report.whole += 1,
                        Reconciliation::Healed { .. } => report.healed += 1,
                        Reconciliation::Failed { .. } => report.failed += 1,
                        _ => {}
                    }
                    if !matches!(found, Reconciliation::Absent) {
                        report.checked += 1;
                    }
                    if found.owns_objects() {
                        owned.insert(id);
                    }
                }
                // It ended meanwhile (its deadline had passed): it owns nothing.
                Err(ActorError::Stopped) => {}
                Err(e) => {
                    // Not checked: keep what it may own rather than remove it.
                    tracing::warn!(vwire = %id, error = %e, "vWire not reconciled; its objects are kept");
                    owned.insert(id);
                }
            }
        }
        let sweep = mesh.forwarder.sweep(owned).await?;
        report.orphans_removed = sweep.removed.len();
        report.duration = began.elapsed();
        if mesh.forwarder.name() != nsm_dataplane::DryRun::NAME {
            self.record(&mesh.node, &report, sweep).await?;
        }
        tracing::info!(
            dataplane = %report.dataplane,
            checked = report.checked,
            whole = report.whole,
            healed = report.healed,
            failed = report.failed,
            orphans_removed = report.orphans_removed,
            took_ms = report.duration.as_millis() as u64,
            "reconcile done"
        );
        Ok(report)
    }

    async fn record(
        &self,
        node: &str,
        report: &ReconcileReport,
        sweep: crate::Sweep,
    ) -> Result<(), ActorError> {
        let at = self.now();
        let mut events = Vec::new();
        if let Some(work) = sweep.work {
            for line in &work.operations {
                tracing::info!(operation = %line, "orphan removed");
            }
            events.push(DataplaneEvent::OrphansRemoved(OrphansRemoved {
                at,
                dataplane: report.dataplane.clone(),
                objects: sweep
                    .removed
                    .iter()
                    .map(|o| RemovedObject {
                        vwire: o.vwire,
                        object: o.description.clone(),
                    })
                    .collect(),
                operations: work.operations,
            }));
        }
        events.push(DataplaneEvent::Reconciled(Reconciled {
            at,
            dataplane: report.dataplane.clone(),
            checked: report.checked as u64,
            whole: report.whole as u64,
            healed: report.healed as u64,
            failed: report.failed as u64,
            orphans_removed: report.orphans_removed as u64,
            took_ms: report.duration.as_millis() as u64,
        }));
        let events = events
            .iter()
            .map(|e| e.to_new_event(Causation::default()))
            .collect::<Result<Vec<_>, _>>()
            .map_err(StoreError::from)?;
        let stream = dataplane::stream(node).map_err(StoreError::from)?;
        self.journal().append_unprojected(stream, events).await?;
        Ok(())
    }
}
