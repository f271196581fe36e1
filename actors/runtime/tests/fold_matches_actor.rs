//! The property the whole design rests on: for any sequence of commands (legal or not, with
//! time passing and timers firing in between), folding the persisted events reproduces
//! exactly the state the live actor holds, refusals write nothing, and the `live_vwires`
//! projection equals a rebuild from the log.

mod support;

use std::time::Duration;

use nsm_domain::vwire::{ClosedBy, Command, FailureCode, FailureStage, VWireId};
use nsm_log::projection::vwire as projection;
use nsm_log::store::{Causation, EventStore, MemoryStore};
use proptest::prelude::*;
use support::*;

#[derive(Debug, Clone)]
enum Op {
    Request { vwire: usize, lifetime_s: u64 },
    Establish { vwire: usize, lifetime_s: u64 },
    Refresh { vwire: usize, lifetime_s: u64 },
    Expire { vwire: usize },
    Close { vwire: usize },
    Fail { vwire: usize },
    Heal { vwire: usize },
    Wait { seconds: u64 },
}

fn op() -> impl Strategy<Value = Op> {
    let vwire = 0..3usize;
    let lifetime = 1..900u64;
    prop_oneof![
        3 => (vwire.clone(), lifetime.clone()).prop_map(|(vwire, lifetime_s)| Op::Request { vwire, lifetime_s }),
        3 => (vwire.clone(), lifetime.clone()).prop_map(|(vwire, lifetime_s)| Op::Establish { vwire, lifetime_s }),
        3 => (vwire.clone(), lifetime).prop_map(|(vwire, lifetime_s)| Op::Refresh { vwire, lifetime_s }),
        1 => vwire.clone().prop_map(|vwire| Op::Expire { vwire }),
        1 => vwire.clone().prop_map(|vwire| Op::Close { vwire }),
        1 => vwire.clone().prop_map(|vwire| Op::Fail { vwire }),
        1 => vwire.prop_map(|vwire| Op::Heal { vwire }),
        3 => (0..1200u64).prop_map(|seconds| Op::Wait { seconds }),
    ]
}

fn command(op: &Op, node: &Node) -> Option<(usize, Command)> {
    let secs = Duration::from_secs;
    Some(match *op {
        Op::Request { vwire, lifetime_s } => (vwire, Command::Request(request(secs(lifetime_s)))),
        Op::Establish { vwire, lifetime_s } => (vwire, establish(node.now(), secs(lifetime_s))),
        Op::Refresh { vwire, lifetime_s } => (vwire, refresh(node.now(), secs(lifetime_s))),
        Op::Expire { vwire } => (
            vwire,
            Command::Expire {
                during_downtime: false,
            },
        ),
        Op::Close { vwire } => (
            vwire,
            Command::Close {
                by: ClosedBy::Client,
                reason: "test".into(),
            },
        ),
        Op::Fail { vwire } => (
            vwire,
            Command::Fail {
                stage: FailureStage::Endpoint,
                code: FailureCode::Unavailable,
                reason: "test".into(),
            },
        ),
        Op::Heal { vwire } => (
            vwire,
            Command::Heal {
                repairs: vec!["re-created a link".into()],
            },
        ),
        Op::Wait { .. } => return None,
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 96, ..ProptestConfig::default() })]

    #[test]
    fn folding_the_log_reproduces_the_actor_state(ops in proptest::collection::vec(op(), 1..40)) {
        run_paused(|| async move {
            let node = Node::start(MemoryStore::new(), origin()).await;
            let ids = [VWireId::new_random(), VWireId::new_random(), VWireId::new_random()];
            for op in &ops {
                let Some((index, command)) = command(op, &node) else {
                    if let Op::Wait { seconds } = op {
                        tokio::time::sleep(Duration::from_secs(*seconds)).await;
                    }
                    continue;
                };
                let id = ids[index];
                let before = node.log_len().await;
                match node.manager.execute(id, command, Causation::default()).await {
                    Ok(state) => {
                        // Right after the step, the actor's state is the fold of the log.
                        assert_eq!(Some(state), node.folded(id).await, "after {op:?}");
                        assert!(node.log_len().await > before);
                    }
                    Err(_) => {
                        // A refusal writes nothing. An expiry timer that fired at this very
                        // instant may have written its `Expired`; nothing else may appear.
                        let since: Vec<String> = node
                            .store
                            .read_all(nsm_log::store::Position(before as u64), usize::MAX)
                            .await
                            .unwrap()
                            .into_iter()
                            .map(|e| e.event_type)
                            .collect();
                        assert!(since.iter().all(|t| t == "Expired"), "{op:?} was refused but wrote {since:?}");
                    }
                }
            }
            // Timers may have fired since: compare every vWire once more.
            tokio::task::yield_now().await;
            for id in ids {
                let held = node.manager.state(id).await.unwrap();
                assert_eq!(held, node.folded(id).await);
            }
            assert_eq!(projection::compare(&node.store).await.unwrap(), vec![]);
        });
    }
}
