//! # nsm-tests: end-to-end tests of nsm-rs
//!
//! Real processes, killed with SIGKILL, and logs reopened afterwards. The tests live in
//! `tests/tests/`; the helpers they share live here; `src/bin/` holds the child programs the
//! tests run and kill.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod browser;
pub mod fake_endpoint;
pub mod fixture;
pub mod kernel;
pub mod mesh;
pub mod netns;
pub mod programs;

use std::collections::{BTreeMap, HashMap, HashSet};

use nsm_log::store::{EventStore, Position, RecordedEvent};
use uuid::Uuid;

/// What a full read of a log found, with every invariant checked.
#[derive(Debug)]
pub struct LogAudit {
    pub events: Vec<RecordedEvent>,
    pub by_id: HashMap<Uuid, Position>,
}

/// Reads the whole log and checks its invariants: positions 1..=head with no gap, no event id
/// twice, every stream's versions 1..=n, time never going backwards. Panics with a precise
/// message on the first violation.
pub async fn audit_log(store: &dyn EventStore) -> LogAudit {
    // A node may still be appending: audit the log up to the head the store knew when the
    // read began, so a later append is not mistaken for a hole.
    let head = store.head();
    let mut events = Vec::new();
    let mut after = Position::START;
    loop {
        let chunk = store.read_all(after, 10_000).await.expect("read the log");
        let Some(last) = chunk.last() else { break };
        after = last.position;
        events.extend(chunk.into_iter().take_while(|e| e.position <= head));
        if after >= head {
            break;
        }
    }
    let mut by_id = HashMap::new();
    let mut versions: BTreeMap<String, u64> = BTreeMap::new();
    for (index, event) in events.iter().enumerate() {
        assert_eq!(
            event.position,
            Position(index as u64 + 1),
            "gap before position {}",
            event.position
        );
        assert!(
            by_id.insert(event.id, event.position).is_none(),
            "event id {} appears twice",
            event.id
        );
        let last = versions.entry(event.stream.to_string()).or_insert(0);
        assert_eq!(
            event.version,
            *last + 1,
            "stream {} jumps from version {last}",
            event.stream
        );
        *last = event.version;
    }
    assert!(
        events
            .windows(2)
            .all(|w| w[0].recorded_at <= w[1].recorded_at),
        "recorded_at goes back"
    );
    assert_eq!(
        head,
        Position(events.len() as u64),
        "head matches the last position"
    );
    let unique: HashSet<_> = events.iter().map(|e| e.id).collect();
    assert_eq!(unique.len(), events.len());
    LogAudit { events, by_id }
}
