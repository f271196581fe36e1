//! Errors the actors return to their callers. Each variant says what the caller should do.

use nsm_events::StoreError;
use nsm_events::vwire::projection::ReplayError;
use nsm_events::vwire::{FoldError, LifecycleError, VWireId};

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
        "vWire {0} is being rebuilt from the log after an append with an unknown outcome; retry"
    )]
    Rebuilding(VWireId),

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
    #[error("no endpoint of network service {service:?} matches the labels {labels:?}")]
    NoEndpoint { service: String, labels: String },

    /// The actor system is shutting down.
    #[error("the node is shutting down")]
    Stopped,
}

impl From<actix::MailboxError> for ActorError {
    fn from(_: actix::MailboxError) -> Self {
        ActorError::Stopped
    }
}
