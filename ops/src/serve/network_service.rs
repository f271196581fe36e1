//! `networkservice.NetworkService` (Request, Close) over the vWire actors.
//!
//! This layer validates what arrives (every field a domain type can refuse is checked here
//! and named in an `InvalidArgument`), places the node in the path ([`Hop`]) and hands the
//! Request to the vWire, which does the rest. The reply is the vWire as the caller expects
//! it: NSM restores the caller's connection id and path index on the way back.

use std::time::Duration;

use chrono::Utc;
use nsm_actors::{ActorError, ConnectRequest, ManagerHandle};
use nsm_events::vwire::{ClosedBy, LifecycleError, ServiceName, SpiffeId, VWire, VWireRequest};
use nsm_proto::connection::Connection;
use nsm_proto::convert::{
    ConversionError, Side, context_from_wire, labels_from_wire, mechanism_from_wire, vwire_to_wire,
};
use nsm_proto::networkservice::NetworkServiceRequest;
use nsm_proto::networkservice::network_service_server::NetworkService;
use tonic::{Request, Response, Status};

use super::hop::Hop;
use super::status::status;
use super::trace::causation;

/// Who a caller is until mTLS gives it a SPIFFE ID (the security issue): every vWire is
/// recorded as requested by this identity.
pub(crate) const UNAUTHENTICATED_CLIENT: &str = "spiffe://nsm-rs.local/unauthenticated";

/// The NetworkService gRPC service of one node.
#[derive(Debug, Clone)]
pub(crate) struct NetworkServiceServer {
    manager: ManagerHandle,
    node: String,
    /// The longest a vWire lives without a refresh (a client may ask for less).
    lifetime: Duration,
}

impl NetworkServiceServer {
    pub(crate) fn new(manager: ManagerHandle, node: String, lifetime: Duration) -> Self {
        Self {
            manager,
            node,
            lifetime,
        }
    }

    /// Everything the vWire needs, validated; `Err` names the first bad field.
    fn read(&self, request: &NetworkServiceRequest, hop: &Hop) -> Result<ConnectRequest, Status> {
        let connection = request.connection.as_ref().ok_or_else(missing_connection)?;
        let service = ServiceName::new(connection.network_service.clone())
            .map_err(|e| ConversionError::new("connection.network_service", e.to_string()))?;
        let labels = labels_from_wire("connection.labels", &connection.labels)?;
        let mechanism_preferences = request
            .mechanism_preferences
            .iter()
            .enumerate()
            .map(|(i, m)| mechanism_from_wire(&format!("mechanism_preferences[{i}]"), m))
            .collect::<Result<Vec<_>, _>>()?;
        if mechanism_preferences.is_empty() {
            return Err(Status::invalid_argument(
                "mechanism_preferences is empty: offer at least one mechanism (LOCAL/KERNEL or LOCAL/MEMIF)",
            ));
        }
        let requested_context = context_from_wire(
            "connection.context",
            &connection.context.clone().unwrap_or_default(),
        )?;
        let client =
            SpiffeId::new(UNAUTHENTICATED_CLIENT).map_err(|e| Status::internal(e.to_string()))?;
        Ok(ConnectRequest {
            request: VWireRequest {
                service,
                labels,
                client,
                mechanism_preferences,
                path: hop.path.clone(),
                lifetime: self.lifetime_for(hop)?,
            },
            requested_context,
            fresh_id: !hop.reused,
        })
    }

    /// The node's lifetime, shortened to the caller's own expiry if that comes first.
    fn lifetime_for(&self, hop: &Hop) -> Result<Duration, Status> {
        let Some(expires) = hop.caller_expires() else {
            return Ok(self.lifetime);
        };
        let remaining = (expires - Utc::now()).to_std().map_err(|_| {
            Status::invalid_argument(format!(
                "connection.path.path_segments[{}].expires {expires} has passed",
                hop.caller_index
            ))
        })?;
        Ok(remaining.min(self.lifetime))
    }

    /// The vWire as the caller sees it.
    fn reply(vwire: &VWire, hop: &Hop) -> Connection {
        let mut connection = vwire_to_wire(vwire, Side::Client);
        connection.id = hop.caller_id.clone();
        if let Some(path) = connection.path.as_mut() {
            path.index = hop.caller_index;
        }
        connection
    }
}

fn missing_connection() -> Status {
    Status::invalid_argument("request.connection is missing")
}

#[tonic::async_trait]
impl NetworkService for NetworkServiceServer {
    async fn request(
        &self,
        request: Request<NetworkServiceRequest>,
    ) -> Result<Response<Connection>, Status> {
        let causation = causation(request.metadata());
        let request = request.into_inner();
        let connection = request.connection.as_ref().ok_or_else(missing_connection)?;
        let mut hop = Hop::enter(&self.node, connection)?;
        let mut connect = self.read(&request, &hop)?;
        let mut outcome = self
            .manager
            .connect(hop.vwire, connect.clone(), causation.clone())
            .await;
        if let Err(ActorError::Lifecycle(LifecycleError::Terminal { status: ended })) = &outcome
            && hop.reused
        {
            // The id names a vWire that ended: NSM would re-establish under the same id, but
            // an ended stream is never reopened, so this request gets a new vWire.
            tracing::info!(vwire = %hop.vwire, %ended, "request for an ended vWire; making a new one");
            hop.renew();
            connect.request.path = hop.path.clone();
            connect.fresh_id = true;
            outcome = self.manager.connect(hop.vwire, connect, causation).await;
        }
        let vwire = outcome.map_err(status)?;
        Ok(Response::new(Self::reply(&vwire, &hop)))
    }

    async fn close(&self, request: Request<Connection>) -> Result<Response<()>, Status> {
        let causation = causation(request.metadata());
        let connection = request.into_inner();
        let Some(vwire) = Hop::find(&self.node, &connection) else {
            // Nothing of this node's in the path: nothing to close (Close is idempotent).
            return Ok(Response::new(()));
        };
        let closed = self
            .manager
            .close(
                vwire,
                ClosedBy::Client,
                "closed by the client".into(),
                causation,
            )
            .await;
        match closed {
            Ok(_)
            | Err(ActorError::Lifecycle(
                LifecycleError::NotFound | LifecycleError::Terminal { .. },
            )) => Ok(Response::new(())),
            Err(e) => Err(status(e)),
        }
    }
}
