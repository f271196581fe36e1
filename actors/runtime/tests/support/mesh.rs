//! A node with a mesh for the flow tests: a registry with endpoints `nse-1..=n` of service
//! `secure-intranet`, a scripted next hop that answers like NSM endpoints, and the data plane
//! the test chooses; and the first Request a client sends it.

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use nsm_dataplane::Dataplane;
use nsm_domain::registry::{EndpointName, EndpointSpec, EndpointUrl, NetworkService, Payload};
use nsm_domain::vwire::{
    ConnectionContext, HopConnection, HopReply, HopRequest, IpContext, Path, PathSegment,
    ServiceName, StatusCode, VWire, VWireId, VWireRequest,
};
use nsm_log::store::{Causation, MemoryStore};
use nsm_runtime::clock::{Clock, PausedClock};
use nsm_runtime::{
    ActorError, ConnectRequest, Forwarder, Journal, LivenessConfig, ManagerConfig, ManagerHandle,
    Mesh, NextHop, NextHopError, RegistryConfig, RegistryHandle,
};

use super::{origin, request};

/// Endpoints by URL: answers like an NSM endpoint, or fails for the URLs in `down`.
#[derive(Debug, Default)]
pub struct ScriptedHop {
    pub down: Mutex<HashSet<String>>,
    /// The endpoint's mechanism and context, when a test sets them (the default: the
    /// first mechanism offered, and 10.0.0.1/32 → 10.0.0.2/32).
    pub answer: Mutex<Option<(nsm_domain::vwire::Mechanism, ConnectionContext)>>,
    pub requests: Mutex<Vec<String>>,
    /// The payload each forwarded Request carried, in order.
    pub payloads: Mutex<Vec<Option<Payload>>>,
    pub closes: Mutex<Vec<(String, String)>>,
}

impl NextHop for ScriptedHop {
    fn request(
        &self,
        url: &str,
        request: HopRequest,
        _: Duration,
    ) -> BoxFuture<'static, Result<HopReply, NextHopError>> {
        self.requests.lock().unwrap().push(url.to_owned());
        let payload = request.connection.payload;
        self.payloads.lock().unwrap().push(payload);
        let down = self.down.lock().unwrap().contains(url);
        let answer = self.answer.lock().unwrap().clone();
        Box::pin(async move {
            if down {
                return Err(NextHopError::status(
                    StatusCode::Unavailable,
                    "connection refused",
                ));
            }
            let mut path = request.connection.path;
            path.segments.push(PathSegment {
                name: "nse".into(),
                id: "nse-conn".into(),
                token: String::new(),
                expires: None,
                metrics: BTreeMap::new(),
            });
            let context = ConnectionContext {
                ip: IpContext {
                    src_ip_addrs: vec!["10.0.0.1/32".into()],
                    dst_ip_addrs: vec!["10.0.0.2/32".into()],
                    ..IpContext::default()
                },
                ..ConnectionContext::default()
            };
            let (mechanism, context) = answer.unwrap_or_else(|| {
                let offered = request.mechanism_preferences.first().cloned().unwrap();
                (offered, context)
            });
            Ok(HopReply {
                mechanism,
                context,
                path,
            })
        })
    }

    fn close(
        &self,
        url: &str,
        connection: HopConnection,
        _: Duration,
    ) -> BoxFuture<'static, Result<(), NextHopError>> {
        self.closes
            .lock()
            .unwrap()
            .push((url.to_owned(), connection.id));
        Box::pin(async { Ok(()) })
    }
}

pub struct Mesh1 {
    pub manager: ManagerHandle,
    pub hop: Arc<ScriptedHop>,
    pub store: MemoryStore,
}

impl Mesh1 {
    /// A client's first Request for a new vWire `id` living a minute.
    pub async fn request(&self, id: VWireId) -> Result<VWire, ActorError> {
        let request = connect(id, super::MINUTE);
        self.manager
            .connect(id, request, Causation::default())
            .await
    }
}

/// A node on `store` whose service `secure-intranet` has endpoints `nse-1..=count`.
pub async fn mesh(store: MemoryStore, count: u32, dataplane: Arc<dyn Dataplane>) -> Mesh1 {
    mesh_probing(store, count, dataplane, None).await
}

/// [`mesh`], probing datapaths as `liveness` says.
pub async fn mesh_probing(
    store: MemoryStore,
    count: u32,
    dataplane: Arc<dyn Dataplane>,
    liveness: Option<LivenessConfig>,
) -> Mesh1 {
    let clock: Arc<dyn Clock> = Arc::new(PausedClock::starting_at(origin()));
    let journal = Journal::new(Arc::new(store.clone()));
    let (registry, _) =
        RegistryHandle::start(RegistryConfig::default(), journal.clone(), clock.clone())
            .await
            .unwrap();
    let service = ServiceName::new("secure-intranet").unwrap();
    let described = NetworkService {
        name: service.clone(),
        payload: Payload::Ip,
        matches: vec![],
    };
    registry
        .register_service(described, Causation::default())
        .await
        .unwrap();
    for n in 1..=count {
        let spec = EndpointSpec {
            name: EndpointName::new(format!("nse-{n}")).unwrap(),
            url: EndpointUrl::new(format!("unix:///run/nse-{n}.sock")).unwrap(),
            services: vec![service.clone()],
            labels: BTreeMap::new(),
        };
        let until = Some(clock.now() + chrono::Duration::hours(1));
        registry
            .register_endpoint(spec, until, Causation::default())
            .await
            .unwrap();
    }
    let hop = Arc::new(ScriptedHop::default());
    let mesh = Arc::new(Mesh {
        node: "node-a".into(),
        registry,
        next_hop: hop.clone(),
        forwarder: Forwarder::new(dataplane),
        request_timeout: Duration::from_secs(1),
        liveness,
    });
    let config = ManagerConfig {
        arbiters: 0,
        mesh: Some(mesh),
    };
    let (manager, _) = ManagerHandle::start(config, journal, clock).await.unwrap();
    Mesh1 {
        manager,
        hop,
        store,
    }
}

/// A client's first Request as the node's network service layer hands it over: the node's
/// segment (id = the vWire id) after the client's.
pub fn connect(id: VWireId, lifetime: Duration) -> ConnectRequest {
    let segment = |name: &str, id: String| PathSegment {
        name: name.into(),
        id,
        token: String::new(),
        expires: None,
        metrics: Default::default(),
    };
    ConnectRequest {
        request: VWireRequest {
            path: Path {
                index: 1,
                segments: vec![
                    segment("nsc", "c1".into()),
                    segment("node-a", id.to_string()),
                ],
            },
            ..request(lifetime)
        },
        requested_context: Default::default(),
        fresh_id: true,
    }
}
