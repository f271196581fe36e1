//! Repairs of a live vWire's data plane, each one exclusive step of its actor:
//!
//! * **reconcile** (start-up): is what the log says is plumbed still there? If not, re-create
//!   it;
//! * **datapath heal**: the liveness probe found no traffic crossing; re-create it.
//!
//! A repair is recorded in one append: `DataplanePlumbed` (what was removed and made) and
//! `Healed` naming what was wrong — after `ProbeFailed` when a probe found it. A vWire that
//! cannot be re-created (its client's namespace is gone, its name was taken meanwhile) ends
//! `Failed` at stage `dataplane`, and its endpoint is told.

use nsm_domain::vwire::{Command, DataplaneWork, FailureStage, Status, VWire};

use super::{Flow, failure_code};
use crate::error::ActorError;
use crate::mesh::Mesh;
use nsm_dataplane::PlumbRequest;

/// What reconcile found for one vWire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Reconciliation {
    /// Not live, or not plumbed yet: it owns nothing in the data plane.
    Absent,
    /// Its data plane is whole.
    Whole,
    /// Plumbed by another data plane (dry run, say): not checked here.
    Foreign,
    /// Its deadline has passed; its expiry removes what it has.
    Ending,
    /// Re-created; `repairs` were recorded.
    Healed { repairs: Vec<String> },
    /// Could not be re-created; recorded as failed.
    Failed { reason: String },
}

impl Reconciliation {
    /// Whether the vWire owns objects in the data plane (they are not orphans).
    pub(crate) fn owns_objects(&self) -> bool {
        matches!(
            self,
            Reconciliation::Whole
                | Reconciliation::Foreign
                | Reconciliation::Ending
                | Reconciliation::Healed { .. }
        )
    }
}

impl Flow {
    /// Compares the vWire's data plane with what its events say, and repairs it.
    pub(crate) async fn reconcile(
        &self,
        state: &mut Option<VWire>,
    ) -> Result<Reconciliation, ActorError> {
        let Some(mesh) = self.mesh.as_deref() else {
            return Ok(Reconciliation::Absent);
        };
        let Some(current) = state.clone().filter(|s| s.status == Status::Established) else {
            return Ok(Reconciliation::Absent);
        };
        let (Some(request), Some(plumbing)) =
            (PlumbRequest::for_vwire(&current), current.plumbing.as_ref())
        else {
            return Ok(Reconciliation::Absent);
        };
        if plumbing.dry_run || plumbing.dataplane != mesh.forwarder.name() {
            return Ok(Reconciliation::Foreign);
        }
        if current.expires_at <= self.recorder.clock.now() {
            return Ok(Reconciliation::Ending);
        }
        let problems = mesh.forwarder.verify(request.clone()).await?;
        if problems.is_empty() {
            return Ok(Reconciliation::Whole);
        }
        self.replumb(mesh, state, &current, request, problems, Vec::new())
            .await
    }

    /// The liveness probe found `probe` dead (`reason`): re-plumb the vWire.
    pub(crate) async fn heal_datapath(
        &self,
        state: &mut Option<VWire>,
        probe: String,
        reason: String,
    ) -> Result<Reconciliation, ActorError> {
        let mesh = self.mesh.as_deref().ok_or(ActorError::NoMesh)?;
        let failure = Command::RecordProbeFailure {
            probe: probe.clone(),
            reason: reason.clone(),
        };
        self.recorder.check(state, std::slice::from_ref(&failure))?;
        let Some(current) = state.clone() else {
            return Ok(Reconciliation::Absent);
        };
        let Some(request) = PlumbRequest::for_vwire(&current) else {
            return Ok(Reconciliation::Absent);
        };
        let problem = format!("datapath probe failed: {probe}: {reason}");
        self.replumb(mesh, state, &current, request, vec![problem], vec![failure])
            .await
    }

    /// Removes what is left of the vWire's plumbing and makes it again; records the repair
    /// after `leading`, or ends the vWire as failed if it cannot be made.
    async fn replumb(
        &self,
        mesh: &Mesh,
        state: &mut Option<VWire>,
        current: &VWire,
        request: PlumbRequest,
        mut repairs: Vec<String>,
        leading: Vec<Command>,
    ) -> Result<Reconciliation, ActorError> {
        let mut operations = Vec::new();
        if let Some(plumbing) = &current.plumbing {
            match mesh.forwarder.unplumb(current.id, plumbing).await {
                Ok(work) => operations.extend(work.operations),
                Err(e) => operations.push(format!("could not remove the remains first: {e}")),
            }
        }
        let client_mechanism = request.client.clone();
        let endpoint_mechanism = request.endpoint.clone();
        match mesh.forwarder.plumb(request).await {
            Ok(work) => {
                operations.extend(work.operations);
                let work = DataplaneWork { operations, ..work };
                repairs.push(format!(
                    "re-created it on the {} data plane",
                    work.dataplane
                ));
                let mut commands = leading;
                commands.push(Command::RecordPlumbing {
                    work,
                    client_mechanism,
                    endpoint_mechanism,
                });
                commands.push(Command::Heal {
                    repairs: repairs.clone(),
                });
                self.recorder.run(state, &commands, &self.causation).await?;
                mesh.forwarder.record_healed();
                tracing::info!(vwire = %current.id, repairs = ?repairs, "vWire healed");
                Ok(Reconciliation::Healed { repairs })
            }
            Err(error) => {
                let code = failure_code(&error);
                let reason = format!("could not be re-created ({}): {error}", repairs.join("; "));
                tracing::warn!(vwire = %current.id, %reason, "vWire failed");
                let end = Command::Fail {
                    stage: FailureStage::Dataplane,
                    code,
                    reason: reason.clone(),
                };
                self.end_with(state, leading, end).await?;
                Ok(Reconciliation::Failed { reason })
            }
        }
    }
}
