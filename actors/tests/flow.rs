//! The vWire's flows against a scripted mesh, on a paused clock: the next candidate is tried
//! when an endpoint fails, every failure is recorded whole, refusals found before `Requested`
//! record nothing, expiry and Close tell the endpoint and unplumb, and a vWire left
//! `Requested` by a flow that died with the node is failed at start-up.

mod support;

use std::collections::{BTreeMap, HashSet};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures::future::BoxFuture;
use nsm_actors::{
    ActorError, ConnectRequest, Dataplane, DataplaneError, DryRun, ForwarderHandle, Journal,
    ManagerConfig, ManagerHandle, Mesh, NextHop, PlumbRequest, RegistryConfig, RegistryHandle,
};
use nsm_events::clock::{Clock, PausedClock};
use nsm_events::registry::{EndpointName, EndpointSpec, EndpointUrl, NetworkService, Payload};
use nsm_events::store::{Causation, MemoryStore};
use nsm_events::vwire::{
    ClosedBy, DataplaneWork, Mechanism, MechanismClass, Path, PathSegment, Plumbing, ServiceName,
    Status, VWireId, VWireRequest,
};
use nsm_proto::connection::{Connection, PathSegment as WireSegment};
use nsm_proto::connectioncontext::{ConnectionContext, IpContext};
use nsm_proto::networkservice::NetworkServiceRequest;
use support::{Node, events_in as events, origin, request, run_paused};

/// Endpoints by URL: answers like an NSM endpoint, or fails for the URLs in `down`.
#[derive(Debug, Default)]
struct ScriptedHop {
    down: Mutex<HashSet<String>>,
    requests: Mutex<Vec<String>>,
    closes: Mutex<Vec<(String, String)>>,
}

impl NextHop for ScriptedHop {
    fn request(
        &self,
        url: &str,
        request: NetworkServiceRequest,
        _: Duration,
    ) -> BoxFuture<'static, Result<Connection, tonic::Status>> {
        self.requests.lock().unwrap().push(url.to_owned());
        let down = self.down.lock().unwrap().contains(url);
        Box::pin(async move {
            if down {
                return Err(tonic::Status::unavailable("connection refused"));
            }
            let mut connection = request.connection.unwrap();
            let path = connection.path.as_mut().unwrap();
            path.path_segments.push(WireSegment {
                name: "nse".into(),
                id: "nse-conn".into(),
                ..Default::default()
            });
            connection.mechanism = request.mechanism_preferences.first().cloned();
            connection.context = Some(ConnectionContext {
                ip_context: Some(IpContext {
                    src_ip_addrs: vec!["10.0.0.1/32".into()],
                    dst_ip_addrs: vec!["10.0.0.2/32".into()],
                    ..Default::default()
                }),
                ..Default::default()
            });
            Ok(connection)
        })
    }

    fn close(
        &self,
        url: &str,
        connection: Connection,
        _: Duration,
    ) -> BoxFuture<'static, Result<(), tonic::Status>> {
        self.closes
            .lock()
            .unwrap()
            .push((url.to_owned(), connection.id));
        Box::pin(async { Ok(()) })
    }
}

/// A data plane whose plumbing always fails.
#[derive(Debug)]
struct BrokenDataplane;

impl Dataplane for BrokenDataplane {
    fn name(&self) -> &'static str {
        "broken"
    }
    fn local_mechanisms(&self) -> &'static [&'static str] {
        &["KERNEL"]
    }
    fn plumb(&self, _: PlumbRequest) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>> {
        Box::pin(async {
            Err(DataplaneError::Failed {
                dataplane: "broken",
                reason: "no such netns".into(),
            })
        })
    }
    fn unplumb(
        &self,
        _: VWireId,
        _: &Plumbing,
    ) -> BoxFuture<'static, Result<DataplaneWork, DataplaneError>> {
        Box::pin(async { unreachable!("nothing was plumbed") })
    }
}

struct Mesh1 {
    manager: ManagerHandle,
    hop: Arc<ScriptedHop>,
    store: MemoryStore,
}

impl Mesh1 {
    /// A client's first Request for a new vWire `id` living a minute.
    async fn request(&self, id: VWireId) -> Result<nsm_events::vwire::VWire, ActorError> {
        let request = connect(id, support::MINUTE);
        self.manager
            .connect(id, request, Causation::default())
            .await
    }
}

/// A node on `store` whose service `secure-intranet` has endpoints `nse-1..=count`.
async fn mesh(store: MemoryStore, count: u32, dataplane: Arc<dyn Dataplane>) -> Mesh1 {
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
        forwarder: ForwarderHandle::start(dataplane),
        request_timeout: Duration::from_secs(1),
        liveness: None,
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
fn connect(id: VWireId, lifetime: Duration) -> ConnectRequest {
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

#[test]
fn a_failing_endpoint_is_skipped_for_the_next_candidate() {
    run_paused(|| async {
        let mesh = mesh(MemoryStore::new(), 2, Arc::new(DryRun)).await;
        mesh.hop
            .down
            .lock()
            .unwrap()
            .insert("unix:///run/nse-1.sock".into());
        let id = VWireId::new_random();
        let vwire = mesh.request(id).await.unwrap();
        assert_eq!(vwire.status, Status::Established);
        assert_eq!(vwire.connection.unwrap().endpoint.name, "nse-2");
        assert_eq!(vwire.path.segments.len(), 3, "client, node, endpoint");
        assert!(vwire.plumbing.unwrap().dry_run);
        assert_eq!(
            events(&mesh.store, id).await,
            ["Requested", "DataplanePlumbed", "Established"]
        );
    });
}

#[test]
fn when_every_endpoint_fails_the_vwire_is_recorded_failed_with_each_reason() {
    run_paused(|| async {
        let mesh = mesh(MemoryStore::new(), 2, Arc::new(DryRun)).await;
        for n in 1..=2 {
            let url = format!("unix:///run/nse-{n}.sock");
            mesh.hop.down.lock().unwrap().insert(url);
        }
        let id = VWireId::new_random();
        let refused = mesh.request(id).await.unwrap_err();
        let ActorError::EndpointsFailed { failures, .. } = &refused else {
            panic!("{refused}");
        };
        assert_eq!(failures.len(), 2, "{refused}");
        assert!(refused.to_string().contains("nse-1") && refused.to_string().contains("nse-2"));
        assert_eq!(events(&mesh.store, id).await, ["Requested", "Failed"]);
    });
}

#[test]
fn refusals_found_before_the_request_is_recorded_record_nothing() {
    run_paused(|| async {
        let mesh = mesh(MemoryStore::new(), 1, Arc::new(DryRun)).await;
        let id = VWireId::new_random();
        let mut vxlan = connect(id, support::MINUTE);
        vxlan.request.mechanism_preferences = vec![Mechanism::new(MechanismClass::Remote, "VXLAN")];
        let refused = mesh
            .manager
            .connect(id, vxlan, Causation::default())
            .await
            .unwrap_err();
        assert!(matches!(
            refused,
            ActorError::Dataplane(DataplaneError::Unsupported { .. })
        ));
        assert!(refused.to_string().contains("LOCAL/KERNEL"), "{refused}");

        let mut unknown = connect(id, support::MINUTE);
        unknown.request.service = ServiceName::new("nope").unwrap();
        let refused = mesh
            .manager
            .connect(id, unknown, Causation::default())
            .await
            .unwrap_err();
        assert!(
            matches!(refused, ActorError::UnknownService(_)),
            "{refused}"
        );
        assert!(events(&mesh.store, id).await.is_empty());
    });
}

#[test]
fn a_dataplane_failure_fails_the_vwire_and_tells_the_endpoint_to_close() {
    run_paused(|| async {
        let mesh = mesh(MemoryStore::new(), 1, Arc::new(BrokenDataplane)).await;
        let id = VWireId::new_random();
        let refused = mesh.request(id).await.unwrap_err();
        assert!(refused.to_string().contains("no such netns"), "{refused}");
        assert_eq!(events(&mesh.store, id).await, ["Requested", "Failed"]);
        let closes = mesh.hop.closes.lock().unwrap().clone();
        assert_eq!(
            closes,
            [("unix:///run/nse-1.sock".to_owned(), id.to_string())]
        );
    });
}

#[test]
fn expiry_and_close_tell_the_endpoint_and_record_the_unplumbing() {
    run_paused(|| async {
        let mesh = mesh(MemoryStore::new(), 1, Arc::new(DryRun)).await;
        let expiring = VWireId::new_random();
        let closing = VWireId::new_random();
        for id in [expiring, closing] {
            mesh.request(id).await.unwrap();
        }
        mesh.manager
            .close(
                closing,
                ClosedBy::Client,
                "done".into(),
                Causation::default(),
            )
            .await
            .unwrap();
        tokio::time::sleep(support::MINUTE + Duration::from_secs(1)).await;
        for id in [expiring, closing] {
            let told = mesh
                .hop
                .closes
                .lock()
                .unwrap()
                .iter()
                .any(|(_, c)| *c == id.to_string());
            assert!(told, "{id} was not closed at its endpoint");
        }
        assert_eq!(
            events(&mesh.store, expiring).await,
            [
                "Requested",
                "DataplanePlumbed",
                "Established",
                "DataplaneUnplumbed",
                "Expired"
            ]
        );
        assert_eq!(
            events(&mesh.store, closing).await,
            [
                "Requested",
                "DataplanePlumbed",
                "Established",
                "DataplaneUnplumbed",
                "Closed"
            ]
        );
    });
}

#[test]
fn a_refresh_is_forwarded_to_the_same_endpoint_and_moves_the_deadline() {
    run_paused(|| async {
        let mesh = mesh(MemoryStore::new(), 2, Arc::new(DryRun)).await;
        let id = VWireId::new_random();
        let first = mesh.request(id).await.unwrap();
        tokio::time::sleep(Duration::from_secs(30)).await;
        let mut again = connect(id, support::MINUTE);
        again.request.path = first.path.clone();
        let refreshed = mesh
            .manager
            .connect(id, again, Causation::default())
            .await
            .unwrap();
        assert!(refreshed.expires_at > first.expires_at);
        assert_eq!(
            refreshed.connection.unwrap().endpoint,
            first.connection.unwrap().endpoint
        );
        let requests = mesh.hop.requests.lock().unwrap().clone();
        assert_eq!(
            requests[0], requests[1],
            "the refresh went to the same endpoint"
        );
        assert_eq!(
            events(&mesh.store, id).await,
            ["Requested", "DataplanePlumbed", "Established", "Refreshed"]
        );
    });
}

#[test]
fn a_vwire_left_requested_by_a_flow_that_died_is_failed_at_start() {
    run_paused(|| async {
        let store = MemoryStore::new();
        // A node without a mesh records only the Request, as a flow cut short by a kill.
        let bare = Node::start(store.clone(), origin()).await;
        let id = VWireId::new_random();
        bare.manager
            .request(id, request(support::MINUTE), Causation::default())
            .await
            .unwrap();
        drop(bare);

        let mesh = mesh(store, 1, Arc::new(DryRun)).await;
        let state = mesh.manager.state(id).await.unwrap().unwrap();
        assert_eq!(state.status, Status::Failed);
        assert_eq!(events(&mesh.store, id).await, ["Requested", "Failed"]);
    });
}
