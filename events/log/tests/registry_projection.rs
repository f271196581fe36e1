//! The registry's `live_registry` projection on both stores: registrations, refreshes,
//! unregistrations and expiries keep it equal to a rebuild from the log.

use std::collections::BTreeMap;

use chrono::{DateTime, Duration, Utc};
use nsm_domain::registry::{
    EndpointEvent, EndpointName, EndpointSpec, EndpointState, EndpointUrl, NetworkService, Payload,
    ServiceEvent, ServiceState, expire_endpoint, register_endpoint, register_service,
    unregister_endpoint,
};
use nsm_domain::vwire::ServiceName;
use nsm_log::projection::registry::{
    self as projection, Registered, endpoint_change, service_change,
};
use nsm_log::store::{
    AppendRequest, Causation, EventStore, ExpectedVersion, MemoryStore, OpenOptions, SqliteStore,
};

fn t(seconds: i64) -> DateTime<Utc> {
    DateTime::from_timestamp(1_800_000_000 + seconds, 0).unwrap()
}

fn spec(n: usize) -> EndpointSpec {
    EndpointSpec {
        name: EndpointName::new(format!("nse-{n}")).unwrap(),
        url: EndpointUrl::new(format!("tcp://127.0.0.1:{}", 6000 + n)).unwrap(),
        services: vec![ServiceName::new("web").unwrap()],
        labels: BTreeMap::new(),
    }
}

/// Records an endpoint decision as the registry will: events plus the projection change.
async fn record_endpoint(
    store: &dyn EventStore,
    state: Option<EndpointState>,
    events: Vec<EndpointEvent>,
) -> Option<EndpointState> {
    if events.is_empty() {
        return state;
    }
    let expected = state.as_ref().map_or(0, |s| s.version);
    let stream = state
        .as_ref()
        .map(|s| s.spec.name.stream())
        .unwrap_or_else(|| match &events[0] {
            EndpointEvent::Registered(e) => e.endpoint.name.stream(),
            _ => unreachable!("the first event of an endpoint registers it"),
        });
    let next = events.iter().fold(state, EndpointState::evolve).unwrap();
    let new_events = events
        .iter()
        .map(|e| e.to_new_event(Causation::default()).unwrap())
        .collect();
    let request = AppendRequest::new(stream, ExpectedVersion::from_version(expected), new_events)
        .with_projection(endpoint_change(&next).unwrap());
    store.append(request).await.unwrap();
    Some(next)
}

async fn exercise(store: &dyn EventStore) {
    let minute = Duration::minutes(1);
    let web = NetworkService {
        name: ServiceName::new("web").unwrap(),
        payload: Payload::Ip,
        matches: vec![],
    };
    let events: Vec<ServiceEvent> = register_service(None, &web, t(0)).unwrap();
    let service = events.iter().fold(None, ServiceState::evolve).unwrap();
    let new_events = events
        .iter()
        .map(|e| e.to_new_event(Causation::default()).unwrap())
        .collect();
    let request = AppendRequest::new(web.stream(), ExpectedVersion::NoStream, new_events)
        .with_projection(service_change(&service).unwrap());
    store.append(request).await.unwrap();

    let mut endpoints = Vec::new();
    for n in 0..6 {
        let events = register_endpoint(None, &spec(n), None, minute, t(0)).unwrap();
        endpoints.push(record_endpoint(store, None, events).await);
    }
    // Two refresh, one unregisters, one expires, two are left as they were.
    for (n, endpoint) in endpoints.iter_mut().enumerate().take(2) {
        let events = register_endpoint(endpoint.as_ref(), &spec(n), None, minute, t(40)).unwrap();
        *endpoint = record_endpoint(store, endpoint.take(), events).await;
    }
    let events = unregister_endpoint(endpoints[2].as_ref(), t(41));
    endpoints[2] = record_endpoint(store, endpoints[2].take(), events).await;
    let events = expire_endpoint(endpoints[3].as_ref(), t(60));
    endpoints[3] = record_endpoint(store, endpoints[3].take(), events).await;

    let rows = store.registration_rows().await.unwrap();
    assert_eq!(
        rows.len(),
        1 + 4,
        "the service and four registered endpoints"
    );
    let refreshed = rows
        .iter()
        .find(|r| r.stream.as_str() == "nse-nse-0")
        .unwrap();
    assert_eq!(refreshed.data.expires_at, Some(t(100)));
    assert_eq!(refreshed.version, 2);
    match projection::decode_row(refreshed).unwrap() {
        Registered::Endpoint(state) => assert_eq!(Some(state), endpoints[0]),
        other => panic!("{other:?}"),
    }
    let service_row = rows.iter().find(|r| r.stream.as_str() == "ns-web").unwrap();
    assert_eq!(service_row.data.expires_at, None);
    assert_eq!(projection::compare(store).await.unwrap(), vec![]);
}

#[tokio::test]
async fn the_registry_projection_follows_the_log_in_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.db"), OpenOptions::default())
        .await
        .unwrap();
    exercise(&store).await;
    // It survives a reopen.
    store.close().await;
    let store = SqliteStore::open(dir.path().join("events.db"), OpenOptions::default())
        .await
        .unwrap();
    assert_eq!(store.registration_rows().await.unwrap().len(), 5);
    assert_eq!(projection::compare(&store).await.unwrap(), vec![]);
}

#[tokio::test]
async fn the_registry_projection_follows_the_log_in_memory() {
    exercise(&MemoryStore::new()).await;
}
