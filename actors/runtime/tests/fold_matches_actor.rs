//! The property the whole design rests on: for any sequence of what clients and time do to a
//! node (Requests that connect or refresh, Closes, endpoints going down and coming back,
//! time passing so that expiry timers fire), folding the persisted events reproduces
//! exactly the state the live actor holds, refusals write nothing, and the `live_vwires`
//! projection equals a rebuild from the log.
//!
//! Driven through the same entry points production uses (`ManagerHandle::connect` and
//! `::close`, the flows behind them, a next hop and the dry-run data plane), never by raw
//! commands.

mod support;

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use nsm_dataplane::DryRun;
use nsm_domain::vwire::{ClosedBy, VWireId};
use nsm_log::projection::vwire as projection;
use nsm_log::store::{Causation, EventStore, MemoryStore, Position};
use nsm_runtime::ActorError;
use proptest::prelude::*;
use support::mesh::{Mesh1, connect, mesh};
use support::{folded, run_paused};

/// Endpoints of the service; any may be down.
const ENDPOINTS: usize = 2;

#[derive(Debug, Clone)]
enum Op {
    /// A client's Request for vWire `vwire`: connects it the first time, refreshes it after.
    Request {
        vwire: usize,
        lifetime_s: u64,
    },
    Close {
        vwire: usize,
    },
    /// Endpoint `nse-<endpoint + 1>` stops (or starts again) answering.
    Endpoint {
        endpoint: usize,
        down: bool,
    },
    Wait {
        seconds: u64,
    },
}

fn op() -> impl Strategy<Value = Op> {
    let vwire = 0..3usize;
    prop_oneof![
        5 => (vwire.clone(), 1..900u64).prop_map(|(vwire, lifetime_s)| Op::Request { vwire, lifetime_s }),
        2 => vwire.prop_map(|vwire| Op::Close { vwire }),
        2 => (0..ENDPOINTS, any::<bool>()).prop_map(|(endpoint, down)| Op::Endpoint { endpoint, down }),
        3 => (0..1200u64).prop_map(|seconds| Op::Wait { seconds }),
    ]
}

/// What the node answered an op with, or `None` for ops that ask it nothing.
async fn apply(
    node: &Mesh1,
    ids: &[VWireId],
    used: &mut HashSet<VWireId>,
    op: &Op,
) -> Option<Result<(), ActorError>> {
    match *op {
        Op::Request { vwire, lifetime_s } => {
            let id = ids[vwire];
            let mut request = connect(id, Duration::from_secs(lifetime_s));
            // A client's first Request gets a fresh id; later ones carry the path back.
            request.fresh_id = used.insert(id);
            if let Ok(Some(current)) = node.manager.state(id).await {
                request.request.path = current.path;
            }
            let outcome = node
                .manager
                .connect(id, request, Causation::default())
                .await;
            Some(outcome.map(drop))
        }
        Op::Close { vwire } => {
            let outcome = node
                .manager
                .close(
                    ids[vwire],
                    ClosedBy::Client,
                    "test".into(),
                    Causation::default(),
                )
                .await;
            Some(outcome.map(drop))
        }
        Op::Endpoint { endpoint, down } => {
            let url = format!("unix:///run/nse-{}.sock", endpoint + 1);
            let mut set = node.hop.down.lock().unwrap();
            if down {
                set.insert(url);
            } else {
                set.remove(&url);
            }
            None
        }
        Op::Wait { seconds } => {
            tokio::time::sleep(Duration::from_secs(seconds)).await;
            None
        }
    }
}

/// The event types appended after `before`.
async fn written_since(store: &MemoryStore, before: usize) -> Vec<String> {
    store
        .read_all(Position(before as u64), usize::MAX)
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.event_type)
        .collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn folding_the_log_reproduces_the_actor_state(ops in proptest::collection::vec(op(), 1..40)) {
        run_paused(|| async move {
            let node = mesh(MemoryStore::new(), ENDPOINTS as u32, Arc::new(DryRun)).await;
            let ids = [VWireId::new_random(), VWireId::new_random(), VWireId::new_random()];
            let mut used = HashSet::new();
            for op in &ops {
                let before = written_since(&node.store, 0).await.len();
                let Some(outcome) = apply(&node, &ids, &mut used, op).await else {
                    continue;
                };
                if let Err(error) = &outcome
                    && !matches!(error, ActorError::EndpointsFailed { .. })
                {
                    // A refusal writes nothing. An expiry timer that fired at this very
                    // instant may have ended a vWire meanwhile; nothing else may appear.
                    let since = written_since(&node.store, before).await;
                    let from_timers = ["Expired", "DataplaneUnplumbed"];
                    assert!(
                        since.iter().all(|t| from_timers.contains(&t.as_str())),
                        "{op:?} was refused ({error}) but wrote {since:?}"
                    );
                }
                // Right after each step, every actor's state is the fold of its log.
                for id in ids {
                    let held = node.manager.state(id).await.unwrap();
                    assert_eq!(held, folded(&node.store, id).await, "after {op:?}");
                }
            }
            // Timers may have fired since: compare every vWire once more.
            tokio::task::yield_now().await;
            for id in ids {
                let held = node.manager.state(id).await.unwrap();
                assert_eq!(held, folded(&node.store, id).await);
            }
            assert_eq!(projection::compare(&node.store).await.unwrap(), vec![]);
        });
    }
}
