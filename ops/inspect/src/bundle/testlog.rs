//! Test logs for the operator commands: real vWire, registry and data-plane events, made by
//! the runtime's own `decide` and appended through the store with their projection rows, as
//! a node writes them.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::Utc;
use nsm_domain::dataplane::{self, DataplaneEvent, Reconciled};
use nsm_domain::registry::{
    EndpointName, EndpointSpec, EndpointState, EndpointUrl, NetworkService, Payload, ServiceState,
    register_endpoint, register_service,
};
use nsm_domain::vwire::{
    ClosedBy, Command, ConnectionContext, EndpointRef, IpContext, Mechanism, MechanismClass,
    Path as VWirePath, PathSegment, ServiceName, SpiffeId, VWire, VWireId, VWireRequest, decide,
};
use nsm_log::import::Import;
use nsm_log::projection::registry::{endpoint_change, service_change};
use nsm_log::projection::vwire::change_for;
use nsm_log::row::EventRow;
use nsm_log::store::{
    AppendRequest, Causation, EventStore, ExpectedVersion, OpenOptions, Position, SqliteStore,
};

const LIFETIME: Duration = Duration::from_secs(600);

/// A log being written, and the vWires' states as the node would hold them.
#[derive(Debug)]
pub(crate) struct TestLog {
    pub(crate) path: PathBuf,
    store: SqliteStore,
    vwires: HashMap<VWireId, VWire>,
}

impl TestLog {
    pub(crate) async fn create(path: &Path) -> Self {
        let options = OpenOptions {
            integrity_check: false,
            readers: 1,
            ..OpenOptions::default()
        };
        let store = SqliteStore::open(path, options)
            .await
            .expect("open a test log");
        Self {
            path: path.to_owned(),
            store,
            vwires: HashMap::new(),
        }
    }

    /// Decides `command` for `id` now and appends its events with the projection row.
    pub(crate) async fn command(&mut self, id: VWireId, command: Command) -> Position {
        let state = self.vwires.get(&id).cloned();
        let events = decide(state.as_ref(), &command, Utc::now()).expect("decide");
        let mut next = state.clone();
        for event in &events {
            next = Some(VWire::evolve(next, id, event).expect("fold"));
        }
        let next = next.expect("a state");
        let new_events = events
            .iter()
            .map(|e| e.to_new_event(Causation::default()).expect("encode"))
            .collect();
        let expected = ExpectedVersion::from_version(state.map_or(0, |s| s.version));
        let request = AppendRequest::new(id.stream(), expected, new_events)
            .with_projection(change_for(&next).expect("projection"));
        let appended = self.store.append(request).await.expect("append");
        self.vwires.insert(id, next);
        *appended.positions.last().expect("a position")
    }

    /// A new vWire, requested then established (two appends).
    pub(crate) async fn connect(&mut self) -> VWireId {
        let id = VWireId::new_random();
        self.command(id, Command::Request(request(id))).await;
        self.command(id, establish(id, Utc::now())).await;
        id
    }

    pub(crate) async fn refresh(&mut self, id: VWireId) -> Position {
        let expires_at = Utc::now() + chrono::Duration::from_std(LIFETIME).expect("lifetime");
        self.command(
            id,
            Command::Refresh {
                expires_at,
                path: None,
            },
        )
        .await
    }

    pub(crate) async fn close(&mut self, id: VWireId) -> Position {
        let by = ClosedBy::Client;
        self.command(
            id,
            Command::Close {
                by,
                reason: "test".into(),
            },
        )
        .await
    }

    /// A Network Service and one endpoint of it.
    pub(crate) async fn register(&mut self, name: &str) {
        let now = Utc::now();
        let service = NetworkService {
            name: ServiceName::new(name).expect("service name"),
            payload: Payload::Ip,
            matches: vec![],
        };
        let events = register_service(None, &service, now).expect("register service");
        let state = events
            .iter()
            .fold(None, ServiceState::evolve)
            .expect("a service");
        let new_events = events
            .iter()
            .map(|e| e.to_new_event(Causation::default()).expect("encode"))
            .collect();
        let request = AppendRequest::new(service.stream(), ExpectedVersion::NoStream, new_events)
            .with_projection(service_change(&state).expect("projection"));
        self.store.append(request).await.expect("append");

        let spec = EndpointSpec {
            name: EndpointName::new(format!("{name}-nse")).expect("endpoint name"),
            url: EndpointUrl::new("tcp://127.0.0.1:6000").expect("url"),
            services: vec![service.name.clone()],
            labels: BTreeMap::new(),
        };
        let lifetime = chrono::Duration::minutes(10);
        let events = register_endpoint(None, &spec, None, lifetime, now).expect("register");
        let state = events
            .iter()
            .fold(None, EndpointState::evolve)
            .expect("an endpoint");
        let new_events = events
            .iter()
            .map(|e| e.to_new_event(Causation::default()).expect("encode"))
            .collect();
        let request = AppendRequest::new(spec.name.stream(), ExpectedVersion::NoStream, new_events)
            .with_projection(endpoint_change(&state).expect("projection"));
        self.store.append(request).await.expect("append");
    }

    /// A `Reconciled` event on the node's data-plane stream.
    pub(crate) async fn reconciled(&mut self, node: &str) {
        let event = DataplaneEvent::Reconciled(Reconciled {
            at: Utc::now(),
            dataplane: "dry-run".into(),
            checked: self.vwires.len() as u64,
            whole: self.vwires.len() as u64,
            healed: 0,
            failed: 0,
            orphans_removed: 0,
            took_ms: 1,
        });
        let new_event = event.to_new_event(Causation::default()).expect("encode");
        let stream = dataplane::stream(node).expect("stream");
        let request = AppendRequest::new(stream, ExpectedVersion::Any, vec![new_event]);
        self.store.append(request).await.expect("append");
    }

    /// Closes the store (the writer checkpoints) and gives the file's path.
    pub(crate) async fn finish(self) -> PathBuf {
        self.store.close().await;
        self.path
    }
}

/// A small log of every kind of stream: three vWires (one closed), a service and its
/// endpoint, and a node's data-plane stream, their events interleaved.
pub(crate) async fn sample(path: &Path) -> PathBuf {
    let mut log = TestLog::create(path).await;
    log.register("web").await;
    let a = log.connect().await;
    let b = log.connect().await;
    log.reconciled("node-1").await;
    log.refresh(a).await;
    let c = log.connect().await;
    log.close(b).await;
    log.refresh(c).await;
    log.refresh(a).await;
    log.finish().await
}

fn request(id: VWireId) -> VWireRequest {
    VWireRequest {
        service: ServiceName::new("web").expect("service"),
        labels: [("app".to_owned(), "test".to_owned())].into(),
        client: SpiffeId::new("spiffe://cluster.local/ns/default/sa/client").expect("spiffe"),
        mechanism_preferences: vec![Mechanism::new(MechanismClass::Local, "KERNEL")],
        path: path(id),
        lifetime: LIFETIME,
    }
}

fn establish(id: VWireId, now: chrono::DateTime<Utc>) -> Command {
    let n = id.0.as_u128() % 250;
    Command::Establish {
        endpoint: EndpointRef {
            name: "web-nse".into(),
            url: "tcp://127.0.0.1:6000".into(),
        },
        payload: Payload::Ip,
        mechanism: Mechanism::new(MechanismClass::Local, "KERNEL"),
        context: ConnectionContext {
            ip: IpContext {
                src_ip_addrs: vec![format!("172.16.0.{}/32", n + 1)],
                dst_ip_addrs: vec![format!("172.16.1.{}/32", n + 1)],
                ..IpContext::default()
            },
            mtu: Some(1450),
            ..ConnectionContext::default()
        },
        path: path(id),
        expires_at: now + chrono::Duration::from_std(LIFETIME).expect("lifetime"),
    }
}

fn path(id: VWireId) -> VWirePath {
    let segment = |name: &str| PathSegment {
        name: name.into(),
        id: id.to_string(),
        token: String::new(),
        expires: None,
        metrics: Default::default(),
    };
    VWirePath {
        index: 0,
        segments: vec![segment("nsc"), segment("nsmgr-node-1")],
    }
}

/// Exports `source` to `bundle`: the whole log, or the streams active from `since` (RFC 3339).
pub(crate) async fn export(source: &Path, bundle: &Path, since: Option<&str>) {
    let args = super::ExportArgs {
        log: crate::LogArgs {
            db: source.to_owned(),
            json: false,
        },
        out: bundle.to_owned(),
        force: false,
        vwire: None,
        since: since.map(|s| nsm_log::store::parse_timestamp(s).expect("a time")),
        until: None,
    };
    super::write_export(&args).await.expect("export");
}

/// Imports `bundle` into a new log at `db`.
pub(crate) async fn import(bundle: &Path, db: &Path) {
    super::load_bundle(bundle, db).await.expect("import");
}

/// A big log, fast: `vwires` vWires of 10 events each (Requested, Established, 7 Refreshed,
/// and Closed for one in four), made by `decide`, interleaved 64 at a time, loaded in one
/// transaction as an import loads a bundle (rows with their positions, then the projections
/// rebuilt from them), without the store's per-append checks.
pub(crate) async fn write_big(path: &Path, vwires: u64) {
    let mut import = Import::begin(path).await.expect("create");
    let start = Utc::now() - chrono::Duration::days(1);
    let lifetime = chrono::Duration::from_std(LIFETIME).expect("lifetime");
    let mut position = 0i64;
    for group in 0..vwires.div_ceil(64) {
        let ids: Vec<VWireId> = (group * 64..((group + 1) * 64).min(vwires))
            .map(|_| VWireId::new_random())
            .collect();
        let mut states: Vec<Option<VWire>> = vec![None; ids.len()];
        for step in 0..10 {
            for (n, id) in ids.iter().enumerate() {
                let now = start + chrono::Duration::microseconds((position + 1) * 10);
                let command = match step {
                    0 => Command::Request(request(*id)),
                    1 => establish(*id, now),
                    9 if n % 4 == 0 => Command::Close {
                        by: ClosedBy::Client,
                        reason: "done".into(),
                    },
                    _ => Command::Refresh {
                        expires_at: now + lifetime,
                        path: None,
                    },
                };
                for event in decide(states[n].as_ref(), &command, now).expect("decide") {
                    let next = VWire::evolve(states[n].take(), *id, &event).expect("fold");
                    let new = event.to_new_event(Causation::default()).expect("encode");
                    position += 1;
                    let row = EventRow {
                        position,
                        event_id: new.id.to_string(),
                        stream: id.stream().to_string(),
                        version: next.version as i64,
                        event_type: new.event_type,
                        schema_version: i64::from(new.schema_version),
                        recorded_at: nsm_log::store::format_timestamp(now),
                        correlation_id: None,
                        causation_id: None,
                        payload: new.payload,
                    };
                    import.insert(&row).expect("insert");
                    states[n] = Some(next);
                }
            }
        }
    }
    import.commit([]).await.expect("commit");
}
