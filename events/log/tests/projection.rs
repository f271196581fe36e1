//! The `live_vwires` projection on the SQLite store equals a rebuild from the log alone, and
//! `compare` reports each kind of drift when someone tampers with it.

use std::time::Duration;

use chrono::Utc;
use nsm_domain::vwire::{
    ClosedBy, Command, ConnectionContext, EndpointRef, Mechanism, MechanismClass, Path,
    ServiceName, SpiffeId, VWire, VWireId, VWireRequest, decide,
};
use nsm_log::projection::vwire::{self as projection, Mismatch, change_for};
use nsm_log::store::{
    AppendRequest, Causation, EventStore, ExpectedVersion, OpenOptions, SqliteStore,
};

/// Decides `commands` in turn and records each step as the journal does.
async fn run(store: &SqliteStore, id: VWireId, commands: Vec<Command>) -> Option<VWire> {
    let mut state: Option<VWire> = None;
    for command in commands {
        let now = Utc::now();
        let events = decide(state.as_ref(), &command, now).unwrap();
        let expected = state.as_ref().map_or(0, |s| s.version);
        for event in &events {
            state = Some(VWire::evolve(state, id, event).unwrap());
        }
        let next = state.as_ref().unwrap();
        let new_events = events
            .iter()
            .map(|e| e.to_new_event(Causation::default()).unwrap())
            .collect();
        let request = AppendRequest::new(
            id.stream(),
            ExpectedVersion::from_version(expected),
            new_events,
        )
        .with_projection(change_for(next).unwrap());
        store.append(request).await.unwrap();
    }
    state
}

fn lifecycle(close: bool) -> Vec<Command> {
    let lifetime = chrono::Duration::minutes(10);
    let mut commands = vec![
        Command::Request(VWireRequest {
            service: ServiceName::new("vl3-blue").unwrap(),
            labels: Default::default(),
            client: SpiffeId::new("spiffe://example.org/client").unwrap(),
            mechanism_preferences: vec![Mechanism::new(MechanismClass::Local, "MEMIF")],
            path: Path::default(),
            lifetime: Duration::from_secs(600),
        }),
        Command::Establish {
            endpoint: EndpointRef {
                name: "nse".into(),
                url: "tcp://127.0.0.1:5002".into(),
            },
            payload: nsm_domain::registry::Payload::Ethernet,
            mechanism: Mechanism::new(MechanismClass::Local, "MEMIF"),
            context: ConnectionContext::default(),
            path: Path::default(),
            expires_at: Utc::now() + lifetime,
        },
        Command::Refresh {
            expires_at: Utc::now() + lifetime,
            path: None,
        },
    ];
    if close {
        commands.push(Command::Close {
            by: ClosedBy::Endpoint,
            reason: "gone".into(),
        });
    }
    commands
}

#[tokio::test]
async fn the_stored_projection_equals_a_rebuild_and_drift_is_reported() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("events.db"), OpenOptions::default())
        .await
        .unwrap();
    let mut live = Vec::new();
    for n in 0..30 {
        let id = VWireId::new_random();
        let state = run(&store, id, lifecycle(n % 3 == 0)).await.unwrap();
        if !state.status.is_terminal() {
            live.push(id);
        }
    }
    assert_eq!(store.live_rows().await.unwrap().len(), 20);
    assert_eq!(projection::compare(&store).await.unwrap(), vec![]);
    let rebuilt = projection::rebuild(&store).await.unwrap();
    assert_eq!(
        rebuilt.into_values().collect::<Vec<_>>(),
        store.live_rows().await.unwrap()
    );

    // Tamper with the projection behind the store's back.
    let raw = sqlx::SqlitePool::connect_with(
        sqlx::sqlite::SqliteConnectOptions::new().filename(store.path()),
    )
    .await
    .unwrap();
    let (changed, removed) = (live[0].stream(), live[1].stream());
    sqlx::query(
        "UPDATE live_vwires SET expires_at = '2000-01-01T00:00:00.000000Z' WHERE stream = ?",
    )
    .bind(changed.as_str())
    .execute(&raw)
    .await
    .unwrap();
    sqlx::query("DELETE FROM live_vwires WHERE stream = ?")
        .bind(removed.as_str())
        .execute(&raw)
        .await
        .unwrap();
    sqlx::query("INSERT INTO live_vwires SELECT 'vwire-00000000-0000-4000-8000-000000000000', version, status, expires_at, state FROM live_vwires LIMIT 1")
        .execute(&raw)
        .await
        .unwrap();
    raw.close().await;

    let mismatches = projection::compare(&store).await.unwrap();
    assert_eq!(mismatches.len(), 3, "{mismatches:?}");
    assert!(
        mismatches
            .iter()
            .any(|m| matches!(m, Mismatch::Differs { stream, .. } if *stream == changed))
    );
    assert!(mismatches.contains(&Mismatch::Missing { stream: removed }));
    assert!(mismatches.iter().any(|m| matches!(m, Mismatch::Unexpected { stream } if stream.as_str().starts_with("vwire-00000000"))));
}
