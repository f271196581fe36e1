//! `registry.NetworkServiceRegistry` and `registry.NetworkServiceEndpointRegistry` over the
//! Registry actor: Register, Unregister, and Find with NSM's template matching, `watch` and
//! the `deleted` flag.
//!
//! A watching Find sends the current matches, then every later change, with no gap between
//! (the actor hands out the snapshot and the change receiver in one step). A watcher too slow
//! to keep up is ended with `ABORTED` ("re-run Find") rather than silently missing changes.

use std::pin::Pin;

use futures::Stream;
use nsm_domain::registry::{EndpointName, EndpointState, ServiceState};
use nsm_domain::vwire::LifecycleError;
use nsm_domain::vwire::ServiceName;
use nsm_log::store::Causation;
use nsm_proto::convert::{
    endpoint_from_wire, endpoint_to_wire, service_from_wire, service_to_wire, time_from_wire,
};
use nsm_proto::registry::network_service_endpoint_registry_server::NetworkServiceEndpointRegistry;
use nsm_proto::registry::network_service_registry_server::NetworkServiceRegistry;
use nsm_proto::registry::{
    NetworkService, NetworkServiceEndpoint, NetworkServiceEndpointQuery,
    NetworkServiceEndpointResponse, NetworkServiceQuery, NetworkServiceResponse,
};
use nsm_runtime::{ActorError, RegistryChange, RegistryHandle};
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::status::status;

/// Responses a Find stream buffers for its client.
const FIND_BUFFER: usize = 256;

type FindStream<T> = Pin<Box<dyn Stream<Item = Result<T, Status>> + Send>>;

/// Both registry services, sharing one handle.
#[derive(Debug, Clone)]
pub(crate) struct RegistryServer {
    registry: RegistryHandle,
}

impl RegistryServer {
    pub(crate) fn new(registry: RegistryHandle) -> Self {
        Self { registry }
    }
}

/// NSM's service template match (sdk `matchutils.MatchNetworkServices`): every set field of
/// the query must match; the name is a substring match, as in NSM.
fn service_matches(query: &NetworkService, service: &NetworkService) -> bool {
    (query.name.is_empty() || service.name.contains(&query.name))
        && (query.payload.is_empty() || query.payload == service.payload)
        && (query.matches.is_empty() || query.matches == service.matches)
}

/// NSM's endpoint template match (sdk `matchutils.MatchNetworkServiceEndpoints`).
fn endpoint_matches(query: &NetworkServiceEndpoint, endpoint: &NetworkServiceEndpoint) -> bool {
    let labels_ok = query
        .network_service_labels
        .iter()
        .all(|(service, wanted)| {
            endpoint
                .network_service_labels
                .get(service)
                .is_some_and(|have| {
                    wanted
                        .labels
                        .iter()
                        .all(|(k, v)| have.labels.get(k) == Some(v))
                })
        });
    let names_ok = query
        .network_service_names
        .iter()
        .all(|n| endpoint.network_service_names.contains(n));
    let expiry_ok = query.expiration_time.as_ref().is_none_or(|q| {
        endpoint
            .expiration_time
            .as_ref()
            .is_some_and(|e| e.seconds == q.seconds)
    });
    (query.name.is_empty() || endpoint.name.contains(&query.name))
        && labels_ok
        && names_ok
        && expiry_ok
        && (query.url.is_empty() || endpoint.url.contains(&query.url))
}

/// Streams `initial`, then (if `watch`) each change that `convert` keeps, until the client
/// goes away.
fn find_stream<T: Send + 'static>(
    initial: Vec<T>,
    watch: Option<broadcast::Receiver<RegistryChange>>,
    convert: impl Fn(RegistryChange) -> Option<T> + Send + 'static,
) -> FindStream<T> {
    let (tx, rx) = mpsc::channel(FIND_BUFFER);
    tokio::spawn(async move {
        for item in initial {
            if tx.send(Ok(item)).await.is_err() {
                return;
            }
        }
        let Some(mut changes) = watch else { return };
        loop {
            let sent = match changes.recv().await {
                Ok(change) => match convert(change) {
                    Some(item) => tx.send(Ok(item)).await,
                    None => continue,
                },
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    let message = format!("watch fell {missed} changes behind; re-run Find");
                    let _ = tx.send(Err(Status::aborted(message))).await;
                    return;
                }
                Err(broadcast::error::RecvError::Closed) => return,
            };
            if sent.is_err() {
                return;
            }
        }
    });
    Box::pin(ReceiverStream::new(rx))
}

fn service_response(state: &ServiceState, deleted: bool) -> NetworkServiceResponse {
    NetworkServiceResponse {
        network_service: Some(service_to_wire(&state.service)),
        deleted,
    }
}

fn endpoint_response(state: &EndpointState, deleted: bool) -> NetworkServiceEndpointResponse {
    NetworkServiceEndpointResponse {
        network_service_endpoint: Some(endpoint_to_wire(state)),
        deleted,
    }
}

#[tonic::async_trait]
impl NetworkServiceRegistry for RegistryServer {
    async fn register(
        &self,
        request: Request<NetworkService>,
    ) -> Result<Response<NetworkService>, Status> {
        let service = service_from_wire(request.get_ref())?;
        let state = self
            .registry
            .register_service(service, Causation::default())
            .await
            .map_err(status)?;
        Ok(Response::new(service_to_wire(&state.service)))
    }

    type FindStream = FindStream<NetworkServiceResponse>;

    async fn find(
        &self,
        request: Request<NetworkServiceQuery>,
    ) -> Result<Response<Self::FindStream>, Status> {
        let query = request.into_inner();
        let template = query.network_service.unwrap_or_default();
        let (services, _, changes) = self.registry.snapshot().await.map_err(status)?;
        let initial = services
            .iter()
            .filter(|s| service_matches(&template, &service_to_wire(&s.service)))
            .map(|s| service_response(s, false))
            .collect();
        let watch = query.watch.then_some(changes);
        Ok(Response::new(find_stream(
            initial,
            watch,
            move |change| match change {
                RegistryChange::Service { state, deleted } => {
                    service_matches(&template, &service_to_wire(&state.service))
                        .then(|| service_response(&state, deleted))
                }
                RegistryChange::Endpoint { .. } => None,
            },
        )))
    }

    async fn unregister(&self, request: Request<NetworkService>) -> Result<Response<()>, Status> {
        let name = ServiceName::new(&request.get_ref().name)
            .map_err(|e| Status::invalid_argument(format!("network_service.name: {e}")))?;
        self.registry
            .unregister_service(name, Causation::default())
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }
}

#[tonic::async_trait]
impl NetworkServiceEndpointRegistry for RegistryServer {
    async fn register(
        &self,
        request: Request<NetworkServiceEndpoint>,
    ) -> Result<Response<NetworkServiceEndpoint>, Status> {
        let (spec, until) = endpoint_from_wire(request.get_ref())?;
        if let Some(until) = until.filter(|until| *until <= chrono::Utc::now()) {
            return Err(Status::invalid_argument(format!(
                "network_service_endpoint.expiration_time: {until} is in the past; \
                 register with a future time, or none for the default lifetime"
            )));
        }
        let state = self
            .registry
            .register_endpoint(spec, until, Causation::default())
            .await
            .map_err(|e| match e {
                ActorError::Lifecycle(LifecycleError::BadDeadline { .. }) => {
                    Status::invalid_argument(format!(
                        "network_service_endpoint.expiration_time: {e}"
                    ))
                }
                other => status(other),
            })?;
        Ok(Response::new(endpoint_to_wire(&state)))
    }

    type FindStream = FindStream<NetworkServiceEndpointResponse>;

    async fn find(
        &self,
        request: Request<NetworkServiceEndpointQuery>,
    ) -> Result<Response<Self::FindStream>, Status> {
        let query = request.into_inner();
        let template = query.network_service_endpoint.unwrap_or_default();
        if let Some(stamp) = &template.expiration_time {
            time_from_wire("network_service_endpoint.expiration_time", stamp)?;
        }
        let (_, endpoints, changes) = self.registry.snapshot().await.map_err(status)?;
        let initial = endpoints
            .iter()
            .filter(|e| endpoint_matches(&template, &endpoint_to_wire(e)))
            .map(|e| endpoint_response(e, false))
            .collect();
        let watch = query.watch.then_some(changes);
        Ok(Response::new(find_stream(
            initial,
            watch,
            move |change| match change {
                RegistryChange::Endpoint { state, deleted } => {
                    endpoint_matches(&template, &endpoint_to_wire(&state))
                        .then(|| endpoint_response(&state, deleted))
                }
                RegistryChange::Service { .. } => None,
            },
        )))
    }

    async fn unregister(
        &self,
        request: Request<NetworkServiceEndpoint>,
    ) -> Result<Response<()>, Status> {
        let name = EndpointName::new(&request.get_ref().name)
            .map_err(|e| Status::invalid_argument(format!("network_service_endpoint.name: {e}")))?;
        self.registry
            .unregister_endpoint(name, Causation::default())
            .await
            .map_err(status)?;
        Ok(Response::new(()))
    }
}

#[cfg(test)]
mod tests;
