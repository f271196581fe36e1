//! gRPC status for runtime errors, by type (never by message text).

use nsm_dataplane::DataplaneError;
use nsm_domain::vwire::LifecycleError;
use nsm_log::StoreError;
use nsm_runtime::ActorError;
use tonic::Status;

pub(crate) fn status(error: ActorError) -> Status {
    let message = error.to_string();
    match error {
        ActorError::Lifecycle(LifecycleError::NotFound) | ActorError::UnknownService(_) => {
            Status::not_found(message)
        }
        ActorError::Lifecycle(LifecycleError::Invalid(_) | LifecycleError::BadDeadline { .. }) => {
            Status::invalid_argument(message)
        }
        ActorError::Lifecycle(_) | ActorError::NoEndpoint { .. } => {
            Status::failed_precondition(message)
        }
        ActorError::Store(StoreError::InvalidInput(_)) => Status::invalid_argument(message),
        ActorError::Store(StoreError::WrongExpectedVersion { .. }) => Status::aborted(message),
        ActorError::Store(_) | ActorError::Rebuilding { .. } | ActorError::Stopped => {
            Status::unavailable(message)
        }
        ActorError::EndpointsFailed { .. } | ActorError::EndpointRefused { .. } => {
            Status::unavailable(message)
        }
        ActorError::Dataplane(
            DataplaneError::Unsupported { .. } | DataplaneError::InvalidInput(_),
        ) => Status::invalid_argument(message),
        ActorError::Dataplane(DataplaneError::Conflict(_)) => Status::already_exists(message),
        ActorError::Dataplane(DataplaneError::NotPermitted(_)) => {
            Status::failed_precondition(message)
        }
        ActorError::Dataplane(DataplaneError::Failed { .. }) => Status::internal(message),
        ActorError::Dataplane(DataplaneError::Unavailable { .. }) => Status::unavailable(message),
        ActorError::NoMesh => Status::failed_precondition(message),
        ActorError::Fold(_) | ActorError::Replay(_) => Status::internal(message),
    }
}
