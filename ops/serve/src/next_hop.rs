//! The runtime's next hop over NSM's `networkservice.NetworkService`: [`GrpcNextHop`] dials
//! endpoint URLs (`unix://`, `tcp://`) and keeps one lazily connected channel per URL, so a
//! refresh reuses the connection its request opened. The channels run mutual TLS as the
//! node's own identity (plaintext only under `--insecure`), so an endpoint sees the node's
//! SPIFFE ID and the node refuses an endpoint outside its trust domain at the handshake.
//! Every call has a deadline. It turns the
//! runtime's domain types into NSM's wire types and back, and a peer's gRPC status into a
//! [`NextHopError`] that keeps its code and message.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use nsm_domain::vwire::{HopConnection, HopReply, HopRequest, StatusCode};
use nsm_proto::connection::Connection;
use nsm_proto::convert::{hop_reply_from_wire, hop_request_to_wire, hop_to_wire};
use nsm_proto::networkservice::network_service_client::NetworkServiceClient;
use nsm_proto::transport::{DEFAULT_CONNECT_TIMEOUT, PeerUrl, Security};
use nsm_runtime::{NextHop, NextHopError};
use tonic::transport::Channel;

/// The next hop over real gRPC.
#[derive(Debug, Clone)]
pub(crate) struct GrpcNextHop {
    channels: Arc<Mutex<HashMap<String, Channel>>>,
    security: Security,
}

impl GrpcNextHop {
    /// A next hop that dials with `security` (the node's identity, or `--insecure`).
    pub(crate) fn new(security: Security) -> Self {
        Self {
            channels: Arc::default(),
            security,
        }
    }

    fn client(&self, url: &str) -> Result<NetworkServiceClient<Channel>, tonic::Status> {
        let mut channels = self.channels.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(channel) = channels.get(url) {
            return Ok(NetworkServiceClient::new(channel.clone()));
        }
        let peer: PeerUrl = url
            .parse()
            .map_err(|e| tonic::Status::invalid_argument(format!("endpoint URL {e}")))?;
        let channel = peer.channel_with(DEFAULT_CONNECT_TIMEOUT, &self.security.client());
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

impl GrpcNextHop {
    async fn call_request(
        &self,
        url: &str,
        request: HopRequest,
        timeout: Duration,
    ) -> Result<Connection, tonic::Status> {
        let mut client = self.client(url)?;
        let call = client.request(with_deadline(hop_request_to_wire(&request), timeout));
        match tokio::time::timeout(timeout, call).await {
            Ok(reply) => reply
                .map(tonic::Response::into_inner)
                .map_err(|s| deadline_or(url, timeout, s)),
            Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                "{url} did not answer within {timeout:?}"
            ))),
        }
    }

    async fn call_close(
        &self,
        url: &str,
        connection: HopConnection,
        timeout: Duration,
    ) -> Result<(), tonic::Status> {
        let mut client = self.client(url)?;
        let call = client.close(with_deadline(hop_to_wire(&connection), timeout));
        match tokio::time::timeout(timeout, call).await {
            Ok(reply) => reply.map(|_| ()).map_err(|s| deadline_or(url, timeout, s)),
            Err(_) => Err(tonic::Status::deadline_exceeded(format!(
                "{url} did not answer within {timeout:?}"
            ))),
        }
    }
}

/// A peer's status as the runtime's error: its code and message, as sent.
fn hop_error(status: tonic::Status) -> NextHopError {
    NextHopError::status(status_code(status.code()), status.message())
}

fn status_code(code: tonic::Code) -> StatusCode {
    match code {
        tonic::Code::Ok => StatusCode::Ok,
        tonic::Code::Cancelled => StatusCode::Cancelled,
        tonic::Code::Unknown => StatusCode::Unknown,
        tonic::Code::InvalidArgument => StatusCode::InvalidArgument,
        tonic::Code::DeadlineExceeded => StatusCode::DeadlineExceeded,
        tonic::Code::NotFound => StatusCode::NotFound,
        tonic::Code::AlreadyExists => StatusCode::AlreadyExists,
        tonic::Code::PermissionDenied => StatusCode::PermissionDenied,
        tonic::Code::ResourceExhausted => StatusCode::ResourceExhausted,
        tonic::Code::FailedPrecondition => StatusCode::FailedPrecondition,
        tonic::Code::Aborted => StatusCode::Aborted,
        tonic::Code::OutOfRange => StatusCode::OutOfRange,
        tonic::Code::Unimplemented => StatusCode::Unimplemented,
        tonic::Code::Internal => StatusCode::Internal,
        tonic::Code::Unavailable => StatusCode::Unavailable,
        tonic::Code::DataLoss => StatusCode::DataLoss,
        tonic::Code::Unauthenticated => StatusCode::Unauthenticated,
    }
}

impl NextHop for GrpcNextHop {
    fn request(
        &self,
        url: &str,
        request: HopRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<HopReply, NextHopError>> {
        let hop = self.clone();
        let url = url.to_owned();
        Box::pin(async move {
            let reply = hop
                .call_request(&url, request, timeout)
                .await
                .map_err(hop_error)?;
            hop_reply_from_wire(reply).map_err(NextHopError::InvalidReply)
        })
    }

    fn close(
        &self,
        url: &str,
        connection: HopConnection,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(), NextHopError>> {
        let hop = self.clone();
        let url = url.to_owned();
        Box::pin(async move {
            hop.call_close(&url, connection, timeout)
                .await
                .map_err(hop_error)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_peer_status_keeps_its_code_and_message_and_prints_as_before() {
        let error = hop_error(tonic::Status::permission_denied("not on the allow list"));
        assert_eq!(
            error,
            NextHopError::status(StatusCode::PermissionDenied, "not on the allow list")
        );
        // The words the runtime records are those it recorded when it held a tonic::Status.
        let status = tonic::Status::permission_denied("not on the allow list");
        assert_eq!(
            error.to_string(),
            format!("{:?}: {}", status.code(), status.message())
        );
        let unreadable = hop_reply_from_wire(Connection::default())
            .map_err(NextHopError::InvalidReply)
            .unwrap_err();
        assert_eq!(
            unreadable.to_string(),
            "invalid reply: it chose no mechanism"
        );
    }
}
