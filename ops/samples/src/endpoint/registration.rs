//! The endpoint's registration with the node's registry, as NSM's registry client does it:
//! register the network service if no service of that exact name exists, register the
//! endpoint with an expiration time, re-register at 2/3 of the remaining time (retrying
//! every second on failure), and unregister on the way out.

use std::collections::HashMap;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::StreamExt as _;
use nsm_proto::convert::{time_from_wire, time_to_wire};
use nsm_proto::registry::network_service_endpoint_registry_client::NetworkServiceEndpointRegistryClient;
use nsm_proto::registry::network_service_registry_client::NetworkServiceRegistryClient;
use nsm_proto::registry::{
    NetworkService, NetworkServiceEndpoint, NetworkServiceLabels, NetworkServiceQuery,
};
use tonic::transport::Channel;
use tonic::{Code, Status};

/// How long start-up keeps trying an unreachable registry before giving up.
const START_DEADLINE: Duration = Duration::from_secs(10);
/// The retry interval of a failed refresh (NSM's registry `retry` client uses 1 s too).
const REFRESH_RETRY: Duration = Duration::from_secs(1);
/// Each registry call's own timeout.
const CALL_TIMEOUT: Duration = Duration::from_secs(5);

/// What the endpoint registers, and where.
#[derive(Debug, Clone)]
pub(crate) struct Registration {
    pub(crate) channel: Channel,
    pub(crate) registry: String,
    pub(crate) service: NetworkService,
    pub(crate) endpoint: NetworkServiceEndpoint,
    pub(crate) lifetime: Duration,
}

impl Registration {
    pub(crate) fn new(
        channel: Channel,
        registry: String,
        service: NetworkService,
        name: String,
        url: String,
        labels: HashMap<String, String>,
        lifetime: Duration,
    ) -> Self {
        let endpoint = NetworkServiceEndpoint {
            name,
            network_service_names: vec![service.name.clone()],
            network_service_labels: HashMap::from([(
                service.name.clone(),
                NetworkServiceLabels { labels },
            )]),
            url,
            ..NetworkServiceEndpoint::default()
        };
        Self {
            channel,
            registry,
            service,
            endpoint,
            lifetime,
        }
    }

    /// Registers the service (if needed) and the endpoint, retrying an unreachable registry
    /// with backoff for up to [`START_DEADLINE`]. Returns the granted expiration time.
    pub(crate) async fn start(&self) -> anyhow::Result<DateTime<Utc>> {
        let deadline = tokio::time::Instant::now() + START_DEADLINE;
        let mut backoff = Duration::from_millis(100);
        loop {
            match self.register_all().await {
                Ok(expires) => return Ok(expires),
                Err(status) if retryable(&status) && tokio::time::Instant::now() < deadline => {
                    tracing::warn!(registry = %self.registry, error = %status.message(), "registry not reachable yet; retrying");
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(Duration::from_secs(2));
                }
                Err(status) => anyhow::bail!(
                    "cannot register endpoint {:?} with the registry at {}: {:?}: {}",
                    self.endpoint.name,
                    self.registry,
                    status.code(),
                    status.message()
                ),
            }
        }
    }

    async fn register_all(&self) -> Result<DateTime<Utc>, Status> {
        if !self.service_exists().await? {
            let mut client = NetworkServiceRegistryClient::new(self.channel.clone());
            client.register(request(self.service.clone())).await?;
            tracing::info!(service = %self.service.name, payload = %self.service.payload, "network service registered");
        }
        self.register_endpoint().await
    }

    /// Find does substring matching on names, so look for an exact match in the results.
    async fn service_exists(&self) -> Result<bool, Status> {
        let mut client = NetworkServiceRegistryClient::new(self.channel.clone());
        let query = NetworkServiceQuery {
            network_service: Some(NetworkService {
                name: self.service.name.clone(),
                ..NetworkService::default()
            }),
            watch: false,
        };
        let mut found = client.find(request(query)).await?.into_inner();
        while let Some(response) = found.next().await {
            let response = response?;
            if response
                .network_service
                .is_some_and(|s| s.name == self.service.name)
                && !response.deleted
            {
                return Ok(true);
            }
        }
        Ok(false)
    }

    async fn register_endpoint(&self) -> Result<DateTime<Utc>, Status> {
        let asked = Utc::now() + chrono::Duration::from_std(self.lifetime).unwrap_or_default();
        let endpoint = NetworkServiceEndpoint {
            expiration_time: Some(time_to_wire(asked)),
            ..self.endpoint.clone()
        };
        let mut client = NetworkServiceEndpointRegistryClient::new(self.channel.clone());
        let granted = client.register(request(endpoint)).await?.into_inner();
        let expires = granted
            .expiration_time
            .and_then(|t| time_from_wire("expiration_time", &t).ok())
            .unwrap_or(asked);
        tracing::info!(endpoint = %self.endpoint.name, url = %self.endpoint.url, %expires, "endpoint registered");
        Ok(expires)
    }

    /// Keeps the registration alive until the task is dropped.
    pub(crate) async fn refresh(self, mut expires: DateTime<Utc>) {
        loop {
            let remaining = (expires - Utc::now()).to_std().unwrap_or_default();
            tokio::time::sleep(remaining * 2 / 3).await;
            loop {
                match self.register_endpoint().await {
                    Ok(granted) => {
                        expires = granted;
                        break;
                    }
                    Err(status) => {
                        tracing::warn!(
                            registry = %self.registry, code = ?status.code(), error = %status.message(),
                            "endpoint re-registration failed; retrying in 1s"
                        );
                        tokio::time::sleep(REFRESH_RETRY).await;
                    }
                }
            }
        }
    }

    /// Removes the endpoint from the registry; a failure is logged, not returned (the
    /// registration expires by itself).
    pub(crate) async fn unregister(&self) {
        let mut client = NetworkServiceEndpointRegistryClient::new(self.channel.clone());
        match client.unregister(request(self.endpoint.clone())).await {
            Ok(_) => tracing::info!(endpoint = %self.endpoint.name, "endpoint unregistered"),
            Err(status) => tracing::warn!(
                endpoint = %self.endpoint.name, code = ?status.code(), error = %status.message(),
                "cannot unregister; the registration will expire by itself"
            ),
        }
    }
}

fn request<T>(message: T) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(CALL_TIMEOUT);
    request
}

/// Errors that mean "not reachable (yet)", worth retrying at start.
fn retryable(status: &Status) -> bool {
    matches!(
        status.code(),
        Code::Unavailable | Code::DeadlineExceeded | Code::Cancelled
    )
}
