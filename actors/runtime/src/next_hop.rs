//! The next hop: how a vWire reaches its endpoint over NSM's `networkservice.NetworkService`.
//!
//! [`NextHop`] is the contract (tests put an in-process endpoint behind it); [`GrpcNextHop`]
//! dials endpoint URLs (`unix://`, `tcp://`) and keeps one lazily connected channel per URL,
//! so a refresh reuses the connection its request opened. Every call has a deadline.

use std::collections::HashMap;
use std::fmt;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use nsm_proto::connection::Connection;
use nsm_proto::networkservice::NetworkServiceRequest;
use nsm_proto::networkservice::network_service_client::NetworkServiceClient;
use nsm_proto::transport::{DEFAULT_CONNECT_TIMEOUT, PeerUrl};
use tonic::transport::Channel;

/// Calls to an endpoint (or the next hop toward it).
pub trait NextHop: Send + Sync + fmt::Debug + 'static {
    /// Forwards a Request; the endpoint's reply, or the status it (or the transport) gave.
    fn request(
        &self,
        url: &str,
        request: NetworkServiceRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Connection, tonic::Status>>;

    /// Forwards a Close.
    fn close(
        &self,
        url: &str,
        connection: Connection,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(), tonic::Status>>;
}

/// The next hop over real gRPC.
#[derive(Debug, Default, Clone)]
pub struct GrpcNextHop {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
}

impl GrpcNextHop {
    fn client(&self, url: &str) -> Result<NetworkServiceClient<Channel>, tonic::Status> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = channels.get(url) {
            return Ok(NetworkServiceClient::new(channel.clone()));
        }
        let peer: PeerUrl = url
            .parse()
            .map_err(|e| tonic::Status::invalid_argument(format!("endpoint URL {e}")))?;
        let channel = peer.channel(DEFAULT_CONNECT_TIMEOUT);
        channels.insert(url.to_owned(), channel.clone());
        Ok(NetworkServiceClient::new(channel))
    }
}

fn with_deadline<T>(message: T, timeout: Duration) -> tonic::Request<T> {
    let mut request = tonic::Request::new(message);
    request.set_timeout(timeout);
    request
}

/// A transport error (the endpoint is not there) says where it happened.
fn deadline_or(url: &str, timeout: Duration, status: tonic::Status) -> tonic::Status {
    if status.code() == tonic::Code::Cancelled || status.code() == tonic::Code::DeadlineExceeded {
        return tonic::Status::deadline_exceeded(format!(
            "{url} did not answer within {timeout:?}: {}",
            status.message()
        ));
    }
    status
}

impl NextHop for GrpcNextHop {
    fn request(
        &self,
        url: &str,
        request: NetworkServiceRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<Connection, tonic::Status>> {
        let client = self.client(url);
        let url = url.to_owned();
        Box::pin(async move {
            let mut client = client?;
            let call = client.request(with_deadline(request, timeout));
            match tokio::time::timeout(timeout, call).await {
                Ok(reply) => reply
                    .map(tonic::Response::into_inner)
                    .map_err(|s| deadline_or(&url, timeout, s)),
                Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                    "{url} did not answer within {timeout:?}"
                ))),
            }
        })
    }

    fn close(
        &self,
        url: &str,
        connection: Connection,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(), tonic::Status>> {
        let client = self.client(url);
        let url = url.to_owned();
        Box::pin(async move {
            let mut client = client?;
            let call = client.close(with_deadline(connection, timeout));
            match tokio::time::timeout(timeout, call).await {
                Ok(reply) => reply.map(|_| ()).map_err(|s| deadline_or(&url, timeout, s)),
                Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                    "{url} did not answer within {timeout:?}"
                ))),
            }
        })
    }
}
