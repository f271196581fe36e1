//! Helpers shared by the actor tests: a paused-clock actix system, and vWire commands.

#![allow(dead_code, unreachable_pub)]

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use nsm_domain::vwire::{
    Command, ConnectionContext, EndpointRef, IpContext, Mechanism, MechanismClass, Path,
    ServiceName, SpiffeId, VWire, VWireEvent, VWireId, VWireRequest,
};
use nsm_log::store::{EventStore, MemoryStore};
use nsm_runtime::clock::{Clock, PausedClock};
use nsm_runtime::{Journal, ManagerConfig, ManagerHandle};

pub mod mesh;

/// Asserts that `result` is an error matching `pattern`, showing the error otherwise.
#[macro_export]
macro_rules! assert_refused {
    ($result:expr, $pattern:pat) => {{
        let err = $result.unwrap_err();
        assert!(matches!(err, $pattern), "{err}");
    }};
}

/// Runs `test` in an actix System on a current-thread tokio runtime with a paused clock.
pub fn run_paused<F, Fut>(test: F) -> Fut::Output
where
    F: FnOnce() -> Fut,
    Fut: Future,
{
    let system = actix_rt::System::with_tokio_rt(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .start_paused(true)
            .build()
            .expect("runtime")
    });
    system.block_on(test())
}

pub fn origin() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z")
        .unwrap()
        .with_timezone(&Utc)
}

/// A node on a memory store, with a wall clock that follows tokio's paused clock.
pub struct Node {
    pub store: MemoryStore,
    pub clock: Arc<dyn Clock>,
    pub manager: ManagerHandle,
}

impl Node {
    pub async fn start(store: MemoryStore, wall: DateTime<Utc>) -> Self {
        let clock: Arc<dyn Clock> = Arc::new(PausedClock::starting_at(wall));
        let journal = Journal::new(Arc::new(store.clone()));
        let (manager, _) = ManagerHandle::start(
            ManagerConfig {
                arbiters: 0,
                mesh: None,
            },
            journal,
            clock.clone(),
        )
        .await
        .expect("start and replay");
        Self {
            store,
            clock,
            manager,
        }
    }

    /// Requests and establishes a new vWire with `lifetime`.
    pub async fn established(&self, lifetime: Duration) -> VWireId {
        let id = VWireId::new_random();
        let causation = nsm_log::store::Causation::default;
        self.manager
            .request(id, request(lifetime), causation())
            .await
            .unwrap();
        let establish = establish(self.now(), lifetime);
        self.manager
            .execute(id, establish, causation())
            .await
            .unwrap();
        id
    }

    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The vWire folded from the log alone.
    pub async fn folded(&self, id: VWireId) -> Option<VWire> {
        folded(&self.store, id).await
    }

    pub async fn log_len(&self) -> usize {
        self.store
            .read_all(nsm_log::store::Position::START, usize::MAX)
            .await
            .unwrap()
            .len()
    }

    pub async fn live_rows(&self) -> Vec<nsm_log::store::LiveRow> {
        self.store.live_rows().await.unwrap()
    }

    pub async fn events_of(&self, id: VWireId) -> Vec<String> {
        events_in(&self.store, id).await
    }
}

/// vWire `id` folded from the events in `store` alone.
pub async fn folded(store: &MemoryStore, id: VWireId) -> Option<VWire> {
    let recorded = store.read_stream(&id.stream(), 1).await.unwrap();
    let events: Vec<VWireEvent> = recorded
        .iter()
        .map(|e| VWireEvent::decode(e).unwrap())
        .collect();
    VWire::fold(id, &events).unwrap()
}

pub fn request(lifetime: Duration) -> VWireRequest {
    VWireRequest {
        service: ServiceName::new("secure-intranet").unwrap(),
        labels: [("app".to_owned(), "web".to_owned())].into(),
        client: SpiffeId::new("spiffe://example.org/ns/default/sa/web").unwrap(),
        mechanism_preferences: vec![Mechanism::new(MechanismClass::Local, "KERNEL")],
        path: Path::default(),
        lifetime,
    }
}

pub fn establish(now: DateTime<Utc>, lifetime: Duration) -> Command {
    Command::Establish {
        endpoint: EndpointRef {
            name: "nse-1".into(),
            url: "unix:///run/nse-1.sock".into(),
        },
        payload: nsm_domain::registry::Payload::Ethernet,
        mechanism: Mechanism::new(MechanismClass::Local, "KERNEL"),
        context: ConnectionContext {
            ip: IpContext {
                src_ip_addrs: vec!["169.254.0.1/32".into()],
                dst_ip_addrs: vec!["169.254.0.2/32".into()],
                ..IpContext::default()
            },
            mtu: Some(1450),
            ..ConnectionContext::default()
        },
        path: Path::default(),
        expires_at: now + chrono::Duration::from_std(lifetime).unwrap(),
    }
}

pub fn refresh(now: DateTime<Utc>, lifetime: Duration) -> Command {
    Command::Refresh {
        expires_at: now + chrono::Duration::from_std(lifetime).unwrap(),
        path: None,
    }
}

pub const MINUTE: Duration = Duration::from_secs(60);

/// The event types of a vWire's stream, in order.
pub async fn events_in(store: &MemoryStore, id: VWireId) -> Vec<String> {
    let recorded = store.read_stream(&id.stream(), 1).await.unwrap();
    recorded.into_iter().map(|e| e.event_type).collect()
}
