//! The Registry actor on a paused clock: registration, selection, refresh, expiry with
//! watchers told, unregistration, and a restart that keeps registrations and expires what
//! passed its deadline during the downtime.

mod support;

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;

use nsm_domain::registry::{EndpointName, EndpointSpec, EndpointUrl, NetworkService, Payload};
use nsm_domain::vwire::{Labels, ServiceName};
use nsm_log::projection::registry as projection;
use nsm_log::store::{Causation, EventStore, MemoryStore, Position};
use nsm_runtime::clock::{Clock, PausedClock};
use nsm_runtime::{ActorError, Journal, RegistryChange, RegistryConfig, RegistryHandle};
use support::{origin, run_paused};

async fn start(
    store: &MemoryStore,
    wall_minutes: i64,
) -> (RegistryHandle, nsm_runtime::RegistryReport, Arc<dyn Clock>) {
    let clock: Arc<dyn Clock> = Arc::new(PausedClock::starting_at(
        origin() + chrono::Duration::minutes(wall_minutes),
    ));
    let journal = Journal::new(Arc::new(store.clone()));
    let (registry, report) =
        RegistryHandle::start(RegistryConfig::default(), journal, clock.clone())
            .await
            .unwrap();
    (registry, report, clock)
}

fn web() -> NetworkService {
    NetworkService {
        name: ServiceName::new("web").unwrap(),
        payload: Payload::Ip,
        matches: vec![],
    }
}

fn endpoint(n: u32) -> EndpointSpec {
    EndpointSpec {
        name: EndpointName::new(format!("nse-{n}")).unwrap(),
        url: EndpointUrl::new(format!("tcp://127.0.0.1:{}", 7000 + n)).unwrap(),
        services: vec![ServiceName::new("web").unwrap()],
        labels: BTreeMap::new(),
    }
}

async fn event_types(store: &MemoryStore) -> Vec<String> {
    let all = store.read_all(Position::START, usize::MAX).await.unwrap();
    all.into_iter().map(|e| e.event_type).collect()
}

#[test]
fn endpoints_are_selected_in_turn_refreshed_and_expired_with_watchers_told() {
    run_paused(|| async {
        let store = MemoryStore::new();
        let (registry, _, _) = start(&store, 0).await;
        let c = Causation::default;
        let unknown = registry
            .select(ServiceName::new("web").unwrap(), Labels::new())
            .await
            .unwrap_err();
        assert!(
            matches!(unknown, ActorError::UnknownService(ref s) if s == "web"),
            "{unknown}"
        );
        registry.register_service(web(), c()).await.unwrap();
        // Registering it again unchanged records nothing.
        registry.register_service(web(), c()).await.unwrap();
        let none = registry
            .select(ServiceName::new("web").unwrap(), Labels::new())
            .await
            .unwrap_err();
        assert!(none.to_string().contains("web"), "{none}");
        for n in 0..3 {
            registry
                .register_endpoint(endpoint(n), None, c())
                .await
                .unwrap();
        }
        let (_, endpoints, mut changes) = registry.snapshot().await.unwrap();
        assert_eq!(endpoints.len(), 3);
        let mut firsts = Vec::new();
        for _ in 0..6 {
            let selected = registry
                .select(ServiceName::new("web").unwrap(), Labels::new())
                .await
                .unwrap();
            assert_eq!(selected.payload, Payload::Ip);
            let ordered = selected.endpoints;
            assert_eq!(ordered.len(), 3);
            firsts.push(ordered[0].spec.name.to_string());
        }
        assert_eq!(
            firsts,
            ["nse-0", "nse-1", "nse-2", "nse-0", "nse-1", "nse-2"]
        );

        // nse-0 refreshes after 40 s; the others do not.
        tokio::time::sleep(Duration::from_secs(40)).await;
        let refreshed = registry
            .register_endpoint(endpoint(0), None, c())
            .await
            .unwrap();
        assert_eq!(
            refreshed.registration.expiration_time,
            origin() + chrono::Duration::seconds(100)
        );
        tokio::time::sleep(Duration::from_secs(21)).await;
        let mut expired = Vec::new();
        while let Ok(change) = changes.try_recv() {
            if let RegistryChange::Endpoint {
                state,
                deleted: true,
            } = change
            {
                expired.push(state.spec.name.to_string());
            }
        }
        expired.sort();
        assert_eq!(expired, ["nse-1", "nse-2"]);
        let (_, endpoints, _) = registry.snapshot().await.unwrap();
        assert_eq!(endpoints.len(), 1);
        let types = event_types(&store).await;
        assert_eq!(types.iter().filter(|t| *t == "EndpointExpired").count(), 2);
        assert_eq!(
            types.iter().filter(|t| *t == "ServiceRegistered").count(),
            1
        );
        assert_eq!(
            types.iter().filter(|t| *t == "EndpointRefreshed").count(),
            1
        );
        registry
            .unregister_endpoint(EndpointName::new("nse-0").unwrap(), c())
            .await
            .unwrap();
        registry
            .unregister_endpoint(EndpointName::new("nse-0").unwrap(), c())
            .await
            .unwrap();
        assert_eq!(
            event_types(&store)
                .await
                .iter()
                .filter(|t| *t == "EndpointUnregistered")
                .count(),
            1
        );
        assert!(projection::compare(&store).await.unwrap().is_empty());
    });
}

#[test]
fn a_restart_keeps_registrations_and_expires_what_lapsed_while_down() {
    let store = MemoryStore::new();
    run_paused(|| async {
        let (registry, _, _) = start(&store, 0).await;
        registry
            .register_service(web(), Causation::default())
            .await
            .unwrap();
        registry
            .register_endpoint(endpoint(1), None, Causation::default())
            .await
            .unwrap();
        let far = origin() + chrono::Duration::minutes(30);
        registry
            .register_endpoint(endpoint(2), Some(far), Causation::default())
            .await
            .unwrap();
        actix_rt::System::current().stop();
    });
    run_paused(|| async {
        let (registry, report, _) = start(&store, 5).await;
        assert_eq!(
            (
                report.services,
                report.endpoints,
                report.expired_during_downtime
            ),
            (1, 2, 1)
        );
        tokio::task::yield_now().await;
        tokio::time::sleep(Duration::from_millis(1)).await;
        let (services, endpoints, _) = registry.snapshot().await.unwrap();
        assert_eq!(services.len(), 1);
        let names: Vec<String> = endpoints.iter().map(|e| e.spec.name.to_string()).collect();
        assert_eq!(names, ["nse-2"]);
        assert!(projection::compare(&store).await.unwrap().is_empty());
    });
}
