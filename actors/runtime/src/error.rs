//! Errors the actors return to their callers. Each variant says what the caller should do.

use nsm_domain::vwire::{FoldError, Labels, LifecycleError, VWireId};
use nsm_log::StoreError;
use nsm_log::projection::vwire::ReplayError;

use crate::next_hop::NextHopError;

use nsm_dataplane::DataplaneError;

#[derive(Debug, Clone, thiserror::Error)]
pub enum ActorError {
    /// The command is not allowed in the vWire's state; nothing was recorded.
    #[error(transparent)]
    Lifecycle(#[from] LifecycleError),

    /// The store refused or failed the append; nothing was recorded.
    #[error(transparent)]
    Store(#[from] StoreError),

    /// The vWire could not tell whether its event was recorded, so it is being rebuilt from
    /// the log. Read its state, then retry if still needed.
    #[error(
        "vWire {vwire} is being rebuilt from the log: an append's outcome is unknown ({cause}); retry"
    )]
    Rebuilding { vwire: VWireId, cause: String },

    /// The vWire's events in the log cannot be folded: the log is damaged. Run `nsm verify`.
    #[error(transparent)]
    Fold(#[from] FoldError),

    /// Start-up replay failed.
    #[error(transparent)]
    Replay(#[from] ReplayError),

    /// No Network Service of that name is registered. Register it, or check the name.
    #[error("network service {0:?} is not registered")]
    UnknownService(String),

    /// The service exists but no registered endpoint matches the request's labels.
    #[error(
        "no endpoint of network service {service:?} matches the labels {}",
        written(labels)
    )]
    NoEndpoint { service: String, labels: Labels },

    /// Every candidate endpoint refused or did not answer; the vWire is recorded as failed.
    /// Retry later, or check the endpoints named.
    #[error("every endpoint of network service {service:?} failed: {}", failures.join("; "))]
    EndpointsFailed {
        service: String,
        failures: Vec<String>,
    },

    /// The vWire's endpoint refused a refresh or did not answer; nothing was recorded and
    /// the vWire keeps its deadline. Retry the refresh.
    #[error("endpoint {endpoint} refused the refresh: {refusal}")]
    EndpointRefused {
        endpoint: String,
        /// What the endpoint (or the transport) said, with its own status code.
        refusal: NextHopError,
    },

    /// The data plane could not plumb the vWire.
    #[error(transparent)]
    Dataplane(#[from] DataplaneError),

    /// This node runs without a mesh (registry, next hop, data plane): it records
    /// lifecycles only and cannot connect anything.
    #[error("this node is not connected to a mesh (no registry, next hop or data plane)")]
    NoMesh,

    /// The actor system is shutting down.
    #[error("the node is shutting down")]
    Stopped,
}

/// Labels as a client wrote them: `{"app": "web", "tier": "gold"}` (`{}` when none).
fn written(labels: &Labels) -> String {
    let pairs: Vec<String> = labels
        .iter()
        .map(|(k, v)| format!("{k:?}: {v:?}"))
        .collect();
    format!("{{{}}}", pairs.join(", "))
}

impl ActorError {
    /// Whether what was being recorded may be in the log after all (its outcome is unknown,
    /// or another writer moved the stream): undoing its side effects could be wrong.
    pub fn may_have_committed(&self) -> bool {
        matches!(
            self,
            ActorError::Store(
                StoreError::OutcomeUnknown(_) | StoreError::WrongExpectedVersion { .. }
            ) | ActorError::Rebuilding { .. }
        )
    }
}

impl From<actix::MailboxError> for ActorError {
    fn from(_: actix::MailboxError) -> Self {
        ActorError::Stopped
    }
}
