//! The production shape: the SQLite store, VWire actors spread over real arbiter threads,
//! and a node restart (a new Manager on the reopened log) that brings every live vWire back.

mod support;

use std::sync::Arc;

use futures::StreamExt;
use nsm_domain::vwire::{ClosedBy, Command, LifecycleError, Status, VWireEvent, VWireId};
use nsm_log::projection::vwire as projection;
use nsm_log::store::{Causation, EventStore, OpenOptions, SqliteStore};
use nsm_runtime::clock::SystemClock;
use nsm_runtime::{ActorError, Journal, ManagerConfig, ManagerHandle};
use support::{MINUTE, establish, request};

async fn start(path: &std::path::Path) -> (SqliteStore, ManagerHandle, nsm_runtime::ReplayReport) {
    let store = SqliteStore::open(path, OpenOptions::default())
        .await
        .unwrap();
    let journal = Journal::new(Arc::new(store.clone()));
    let (manager, report) = ManagerHandle::start(
        ManagerConfig {
            arbiters: 2,
            mesh: None,
        },
        journal,
        Arc::new(SystemClock),
    )
    .await
    .unwrap();
    (store, manager, report)
}

async fn folded(store: &SqliteStore, id: VWireId) -> Option<nsm_domain::vwire::VWire> {
    let recorded = store.read_stream(&id.stream(), 1).await.unwrap();
    let events: Vec<VWireEvent> = recorded
        .iter()
        .map(|e| VWireEvent::decode(e).unwrap())
        .collect();
    nsm_domain::vwire::VWire::fold(id, &events).unwrap()
}

#[test]
fn a_restarted_node_brings_back_every_live_vwire_from_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let ids: Vec<VWireId> = (0..200).map(|_| VWireId::new_random()).collect();

    nsm_runtime::runtime::block_on(2, async {
        let (store, manager, report) = start(&path).await;
        assert_eq!(report.live, 0);
        // 200 vWires set up concurrently, through actors on two arbiters.
        let setups = futures::stream::iter(ids.iter().copied()).map(|id| {
            let manager = manager.clone();
            async move {
                manager
                    .request(id, request(60 * MINUTE), Causation::default())
                    .await?;
                let now = chrono::Utc::now();
                manager
                    .execute(id, establish(now, 60 * MINUTE), Causation::default())
                    .await
            }
        });
        let results: Vec<_> = setups.buffer_unordered(64).collect().await;
        assert!(
            results.iter().all(Result::is_ok),
            "{:?}",
            results.iter().find(|r| r.is_err())
        );
        // A quarter are closed again.
        for id in ids.iter().step_by(4) {
            let close = Command::Close {
                by: ClosedBy::Client,
                reason: "done".into(),
            };
            manager
                .execute(*id, close, Causation::default())
                .await
                .unwrap();
        }
        assert_eq!(manager.live().await.unwrap().len(), 150);
        let mismatches = projection::compare(&store).await.unwrap();
        assert!(mismatches.is_empty(), "{mismatches:#?}");
        store.close().await;
    })
    .unwrap();

    nsm_runtime::runtime::block_on(2, async {
        let (store, manager, report) = start(&path).await;
        assert_eq!(report.live, 150);
        assert_eq!(report.expired_during_downtime, 0);
        let mut live = manager.live().await.unwrap();
        let mut expected: Vec<VWireId> = ids
            .iter()
            .copied()
            .enumerate()
            .filter(|(i, _)| i % 4 != 0)
            .map(|(_, id)| id)
            .collect();
        live.sort();
        expected.sort();
        assert_eq!(live, expected);
        for id in &ids {
            let held = manager.state(*id).await.unwrap();
            assert_eq!(held, folded(&store, *id).await);
        }
        let closed = ids[0];
        assert_eq!(
            manager.state(closed).await.unwrap().unwrap().status,
            Status::Closed
        );
        let err = manager
            .execute(
                closed,
                Command::Close {
                    by: ClosedBy::Client,
                    reason: String::new(),
                },
                Causation::default(),
            )
            .await
            .unwrap_err();
        assert!(
            matches!(err, ActorError::Lifecycle(LifecycleError::Terminal { .. })),
            "{err}"
        );
        // Asking about vWires that are not live leaves no actor behind.
        manager.state(VWireId::new_random()).await.unwrap();
        tokio::time::sleep(std::time::Duration::from_millis(50)).await;
        assert_eq!(manager.live().await.unwrap().len(), 150);
        store.close().await;
    })
    .unwrap();
}
