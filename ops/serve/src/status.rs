//! gRPC status for runtime errors, by type (never by message text), with messages cut to
//! [`MAX_MESSAGE_CHARS`].

use nsm_dataplane::DataplaneError;
use nsm_domain::quote::shorten;
use nsm_domain::vwire::LifecycleError;
use nsm_log::StoreError;
use nsm_runtime::ActorError;
use tonic::Status;

/// The most characters of a runtime error's message a status carries. The message travels
/// in HTTP/2 headers (tonic's client takes 16 KiB of them), and some are long through no
/// fault of the node: the labels of a request no endpoint matches (64 labels of 253-byte
/// keys and values are valid), or what every failed endpoint said.
const MAX_MESSAGE_CHARS: usize = 1024;

pub(crate) fn status(error: ActorError) -> Status {
    let message = shorten(&error.to_string(), MAX_MESSAGE_CHARS).into_owned();
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

#[cfg(test)]
mod tests {
    use nsm_domain::registry::{MAX_LABEL_LEN, MAX_LABELS};

    use super::*;

    #[test]
    fn a_message_of_the_largest_valid_labels_is_cut_to_fit_in_headers() {
        let labels = (0..MAX_LABELS)
            .map(|i| (format!("{i:0>MAX_LABEL_LEN$}"), "v".repeat(MAX_LABEL_LEN)))
            .collect();
        let error = ActorError::NoEndpoint {
            service: "icmp".into(),
            labels,
        };
        let full = error.to_string();
        assert!(full.len() > 32 * 1024, "{} bytes", full.len());
        let status = status(error);
        assert_eq!(status.code(), tonic::Code::FailedPrecondition);
        assert!(status.message().len() < 1100, "{}", status.message().len());
        assert!(
            status
                .message()
                .starts_with("no endpoint of network service \"icmp\"")
        );
        assert!(
            status
                .message()
                .ends_with(&format!("… ({} bytes)", full.len()))
        );
    }

    #[test]
    fn a_short_message_is_sent_as_it_is() {
        let error = ActorError::UnknownService("icmp".into());
        let full = error.to_string();
        assert_eq!(status(error).message(), full);
    }
}
