//! The vWire actors through their handles, on a paused clock: lifecycle, refusals, expiry,
//! refresh, restart replay and rebuild after an unknown append outcome.

mod support;

use nsm_domain::vwire::{ClosedBy, Command, Ending, LifecycleError, Status, VWireId};
use nsm_log::projection::vwire as projection;
use nsm_log::store::{Causation, InjectedFault, MemoryStore};
use nsm_runtime::ActorError;
use support::*;

#[test]
fn a_vwire_goes_through_its_lifecycle_and_the_log_says_the_same() {
    run_paused(|| async {
        let node = Node::start(MemoryStore::new(), origin()).await;
        let id = VWireId::new_random();
        let m = &node.manager;
        let requested = m
            .request(id, request(10 * MINUTE), Causation::default())
            .await
            .unwrap();
        assert_eq!(requested.status, Status::Requested);
        m.execute(id, establish(node.now(), 10 * MINUTE), Causation::default())
            .await
            .unwrap();
        tokio::time::sleep(2 * MINUTE).await;
        let refreshed = m
            .execute(id, refresh(node.now(), 10 * MINUTE), Causation::default())
            .await
            .unwrap();
        assert_eq!(refreshed.refreshes, 1);
        assert_eq!(node.folded(id).await.as_ref(), Some(&refreshed));
        assert_eq!(m.live().await.unwrap(), vec![id]);
        assert_eq!(node.live_rows().await.len(), 1);
        let closed = m
            .execute(
                id,
                Command::Close {
                    by: ClosedBy::Client,
                    reason: "done".into(),
                },
                Causation::default(),
            )
            .await
            .unwrap();
        assert_eq!(closed.status, Status::Closed);
        assert_eq!(node.folded(id).await, Some(closed));
        assert_eq!(
            node.events_of(id).await,
            ["Requested", "Established", "Refreshed", "Closed"]
        );
        tokio::task::yield_now().await;
        assert!(
            m.live().await.unwrap().is_empty(),
            "a terminal vWire has no actor"
        );
        assert!(node.live_rows().await.is_empty(), "and no projection row");
    });
}

#[test]
fn illegal_commands_are_refused_with_typed_errors_and_write_nothing() {
    run_paused(|| async {
        let node = Node::start(MemoryStore::new(), origin()).await;
        let m = &node.manager;
        let id = VWireId::new_random();
        let c = Causation::default;
        assert_refused!(
            m.execute(id, refresh(node.now(), MINUTE), c()).await,
            ActorError::Lifecycle(LifecycleError::NotFound)
        );
        m.request(id, request(MINUTE), c()).await.unwrap();
        assert_refused!(
            m.execute(id, refresh(node.now(), MINUTE), c()).await,
            ActorError::Lifecycle(LifecycleError::NotEstablished { .. })
        );
        m.execute(id, establish(node.now(), MINUTE), c())
            .await
            .unwrap();
        assert_refused!(
            m.execute(id, establish(node.now(), MINUTE), c()).await,
            ActorError::Lifecycle(LifecycleError::AlreadyEstablished)
        );
        assert_refused!(
            m.request(id, request(MINUTE), c()).await,
            ActorError::Lifecycle(LifecycleError::AlreadyExists { .. })
        );
        assert_refused!(
            m.execute(
                id,
                Command::Expire {
                    during_downtime: false,
                },
                c(),
            )
            .await,
            ActorError::Lifecycle(LifecycleError::NotDue { .. })
        );
        let past = Command::Refresh {
            expires_at: node.now() - chrono::Duration::seconds(1),
            path: None,
        };
        assert_refused!(
            m.execute(id, past, c()).await,
            ActorError::Lifecycle(LifecycleError::BadDeadline { .. })
        );
        let before = node.log_len().await;
        m.execute(
            id,
            Command::Close {
                by: ClosedBy::Operator,
                reason: String::new(),
            },
            c(),
        )
        .await
        .unwrap();
        assert_refused!(
            m.execute(id, refresh(node.now(), MINUTE), c()).await,
            ActorError::Lifecycle(LifecycleError::Terminal {
                status: Status::Closed
            })
        );
        assert_refused!(
            m.request(id, request(MINUTE), c()).await,
            ActorError::Lifecycle(LifecycleError::Terminal { .. })
        );
        assert_eq!(
            node.log_len().await,
            before + 1,
            "only the Close was written"
        );
    });
}

#[test]
fn an_unrefreshed_vwire_expires_at_its_deadline_and_a_refresh_moves_it() {
    run_paused(|| async {
        let node = Node::start(MemoryStore::new(), origin()).await;
        let m = &node.manager;
        let id = node.established(10 * MINUTE).await;
        tokio::time::sleep(9 * MINUTE).await;
        assert_eq!(node.folded(id).await.unwrap().status, Status::Established);
        // Refreshed a minute before the deadline: the new deadline is 10 minutes from now.
        m.execute(id, refresh(node.now(), 10 * MINUTE), Causation::default())
            .await
            .unwrap();
        tokio::time::sleep(9 * MINUTE).await;
        assert_eq!(
            node.folded(id).await.unwrap().status,
            Status::Established,
            "old deadline ignored"
        );
        tokio::time::sleep(MINUTE + std::time::Duration::from_millis(1)).await;
        let expired = node.folded(id).await.unwrap();
        assert_eq!(expired.status, Status::Expired);
        match expired.ending {
            Some(Ending::Expired {
                deadline,
                during_downtime,
            }) => {
                assert!(!during_downtime);
                assert_eq!(deadline, origin() + chrono::Duration::minutes(19));
            }
            other => panic!("ending {other:?}"),
        }
        assert_eq!(
            expired.ended_at,
            Some(origin() + chrono::Duration::minutes(19))
        );
        assert!(node.live_rows().await.is_empty());
        assert!(m.live().await.unwrap().is_empty());
    });
}

#[test]
fn restart_expires_what_passed_its_deadline_during_downtime_and_rearms_the_rest() {
    let store = MemoryStore::new();
    let (short, long) = run_paused(|| async {
        let node = Node::start(store.clone(), origin()).await;
        let short = node.established(5 * MINUTE).await;
        let long = node.established(60 * MINUTE).await;
        actix_rt::System::current().stop();
        (short, long)
    });
    // The node comes back 30 minutes later.
    run_paused(|| async {
        let node = Node::start(store.clone(), origin() + chrono::Duration::minutes(30)).await;
        tokio::task::yield_now().await;
        tokio::time::sleep(std::time::Duration::from_millis(1)).await;
        let short_state = node.folded(short).await.unwrap();
        assert_eq!(short_state.status, Status::Expired);
        assert!(matches!(
            short_state.ending,
            Some(Ending::Expired {
                during_downtime: true,
                ..
            })
        ));
        assert_eq!(node.folded(long).await.unwrap().status, Status::Established);
        assert_eq!(node.manager.live().await.unwrap(), vec![long]);
        // The survivor's timer was re-armed from its stored deadline (origin + 60 min).
        tokio::time::sleep(29 * MINUTE).await;
        assert_eq!(node.folded(long).await.unwrap().status, Status::Established);
        tokio::time::sleep(MINUTE + std::time::Duration::from_millis(1)).await;
        let long_state = node.folded(long).await.unwrap();
        assert!(matches!(
            long_state.ending,
            Some(Ending::Expired {
                during_downtime: false,
                ..
            })
        ));
        assert!(projection::compare(&node.store).await.unwrap().is_empty());
    });
}

#[test]
fn an_append_with_an_unknown_outcome_makes_the_vwire_rebuild_from_the_log() {
    run_paused(|| async {
        let node = Node::start(MemoryStore::new(), origin()).await;
        let m = &node.manager;
        let id = VWireId::new_random();
        m.request(id, request(10 * MINUTE), Causation::default())
            .await
            .unwrap();
        // The Established event is committed, but the actor is told the outcome is unknown.
        node.store
            .inject_fault(InjectedFault::CommitThenReportUnknown);
        assert_refused!(
            m.execute(id, establish(node.now(), 10 * MINUTE), Causation::default())
                .await,
            ActorError::Rebuilding { .. }
        );
        // The rebuilt actor knows what the log knows.
        let state = m.state(id).await.unwrap().unwrap();
        assert_eq!(state.status, Status::Established);
        assert_eq!(Some(state), node.folded(id).await);
        // And the opposite: nothing committed, outcome unknown.
        node.store
            .inject_fault(InjectedFault::LoseBeforeCommitReportUnknown);
        assert_refused!(
            m.execute(id, refresh(node.now(), 10 * MINUTE), Causation::default())
                .await,
            ActorError::Rebuilding { .. }
        );
        let state = m.state(id).await.unwrap().unwrap();
        assert_eq!(state.refreshes, 0);
        assert_eq!(m.live().await.unwrap(), vec![id]);
        // The rebuilt actor's timer works.
        tokio::time::sleep(11 * MINUTE).await;
        assert_eq!(node.folded(id).await.unwrap().status, Status::Expired);
    });
}
