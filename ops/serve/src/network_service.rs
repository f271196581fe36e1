//! `networkservice.NetworkService` (Request, Close) over the vWire actors.
//!
//! This layer validates what arrives (every field a domain type can refuse is checked here
//! and named in an `InvalidArgument`), places the node in the path ([`Hop`]) and hands the
//! Request to the vWire, which does the rest. The reply is the vWire as the caller expects
//! it: NSM restores the caller's connection id and path index on the way back.
//!
//! The vWire's client is the caller's SPIFFE ID, read from the certificate it presented in
//! the mutual-TLS handshake; only under `--insecure` is every caller recorded as
//! [`UNAUTHENTICATED_CLIENT`].
//!
//! Each call runs in a span named for its method that carries its trace id
//! ([`super::trace`]), and is counted by method and status ([`super::metrics`]).

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use nsm_domain::vwire::{ClosedBy, LifecycleError, ServiceName, SpiffeId, VWire, VWireRequest};
use nsm_identity::caller_identity;
use nsm_log::store::Causation;
use nsm_proto::connection::Connection;
use nsm_proto::convert::{
    ConversionError, Side, context_from_wire, labels_from_wire, mechanism_from_wire, vwire_to_wire,
};
use nsm_proto::networkservice::NetworkServiceRequest;
use nsm_proto::networkservice::network_service_server::NetworkService;
use nsm_runtime::{ActorError, ConnectRequest, ManagerHandle};
use tokio::time::Instant;
use tonic::{Request, Response, Status};
use tracing::Instrument as _;

use super::hop::Hop;
use super::metrics::{Method, Metrics};
use super::status::status;
use super::trace;

/// Who a caller is under `--insecure`, where no caller proves an identity: every vWire is
/// recorded as requested by this one.
pub(crate) const UNAUTHENTICATED_CLIENT: &str = "spiffe://nsm-rs.local/unauthenticated";

/// The NetworkService gRPC service of one node.
#[derive(Debug, Clone)]
pub(crate) struct NetworkServiceServer {
    manager: ManagerHandle,
    node: String,
    /// The longest a vWire lives without a refresh (a client may ask for less).
    lifetime: Duration,
    metrics: Arc<Metrics>,
    /// Spans are exported over OTLP (each call's span continues the caller's trace).
    export_traces: bool,
    /// Served over mutual TLS: every caller has a SPIFFE ID (else `--insecure`).
    authenticated: bool,
}

impl NetworkServiceServer {
    pub(crate) fn new(
        manager: ManagerHandle,
        node: String,
        lifetime: Duration,
        metrics: Arc<Metrics>,
        export_traces: bool,
        authenticated: bool,
    ) -> Self {
        Self {
            manager,
            node,
            lifetime,
            metrics,
            export_traces,
            authenticated,
        }
    }

    /// Who is calling: the SPIFFE ID of the caller's certificate, or under `--insecure`
    /// the placeholder every caller shares.
    fn caller<T>(&self, request: &Request<T>) -> Result<SpiffeId, Status> {
        match caller_identity(request) {
            Some(peer) => SpiffeId::new(peer.spiffe_id.as_str()).map_err(|e| {
                Status::unauthenticated(format!("the caller's SPIFFE ID is unusable: {e}"))
            }),
            None if !self.authenticated => {
                SpiffeId::new(UNAUTHENTICATED_CLIENT).map_err(|e| Status::internal(e.to_string()))
            }
            // Cannot happen over `TlsIncoming`; refuse rather than record a caller as nobody.
            None => Err(Status::unauthenticated(
                "the caller has no SPIFFE ID: this node requires mutual TLS with an X.509-SVID",
            )),
        }
    }

    /// Runs one call in its span, and counts it.
    async fn traced<T, Call>(
        &self,
        method: Method,
        metadata: &tonic::metadata::MetadataMap,
        call: impl FnOnce(Causation) -> Call,
    ) -> Result<T, Status>
    where
        Call: Future<Output = Result<T, Status>>,
    {
        let began = Instant::now();
        let (span, causation) = trace::server_span(method, metadata, self.export_traces);
        let answer = call(causation).instrument(span.clone()).await;
        let code = answer
            .as_ref()
            .map_or_else(Status::code, |_| tonic::Code::Ok);
        trace::finish(&span, code, self.export_traces);
        self.metrics.answered(method, code, began.elapsed());
        answer
    }

    /// Everything the vWire needs, validated; `Err` names the first bad field.
    fn read(
        &self,
        request: &NetworkServiceRequest,
        client: SpiffeId,
        hop: &Hop,
    ) -> Result<ConnectRequest, Status> {
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
        let client = self.caller(&request);
        let (metadata, _, request) = request.into_parts();
        let reply = self.traced(Method::Request, &metadata, |causation| {
            self.connect(request, client, causation)
        });
        reply.await.map(Response::new)
    }

    async fn close(&self, request: Request<Connection>) -> Result<Response<()>, Status> {
        let (metadata, _, connection) = request.into_parts();
        let closed = self.traced(Method::Close, &metadata, |causation| {
            self.disconnect(connection, causation)
        });
        closed.await.map(Response::new)
    }
}

impl NetworkServiceServer {
    async fn connect(
        &self,
        request: NetworkServiceRequest,
        client: Result<SpiffeId, Status>,
        causation: Causation,
    ) -> Result<Connection, Status> {
        let client = client?;
        let connection = request.connection.as_ref().ok_or_else(missing_connection)?;
        let mut hop = Hop::enter(&self.node, connection)?;
        let mut connect = self.read(&request, client, &hop)?;
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
        Ok(Self::reply(&vwire, &hop))
    }

    async fn disconnect(&self, connection: Connection, causation: Causation) -> Result<(), Status> {
        let Some(vwire) = Hop::find(&self.node, &connection) else {
            // Nothing of this node's in the path: nothing to close (Close is idempotent).
            return Ok(());
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
            )) => Ok(()),
            Err(e) => Err(status(e)),
        }
    }
}
