//! The `live_vwires` projection: one row per vWire that is not terminal, written in the same
//! transaction as the vWire's events, so that a node starts without folding the whole log.
//!
//! It is derived data. [`rebuild`] computes it from the events alone, and [`compare`] reports
//! every difference between the stored rows and a rebuild (used by tests and `nsm verify`).

use std::collections::{BTreeMap, HashMap};

use crate::error::StoreError;
pub use crate::projection::ReplayError;
use crate::projection::{diff, settled};
use crate::store::{EventStore, LiveRow, LiveRowData, Position, ProjectionChange, StreamId};

use nsm_domain::vwire::VWire;
use nsm_domain::vwire::VWireEvent;
use nsm_domain::vwire::VWireId;

/// Events read per query while rebuilding.
const CHUNK: usize = 8192;

/// The projection change that keeps `live_vwires` equal to `state`.
pub fn change_for(state: &VWire) -> Result<ProjectionChange, StoreError> {
    if state.status.is_terminal() {
        return Ok(ProjectionChange::RemoveVWire);
    }
    Ok(ProjectionChange::UpsertVWire(LiveRowData {
        status: state.status.as_str().to_owned(),
        expires_at: state.expires_at,
        state: serde_json::to_string(state)?,
    }))
}

/// The state stored in a `live_vwires` row.
pub fn decode_row(row: &LiveRow) -> Result<VWire, ReplayError> {
    serde_json::from_str(&row.data.state).map_err(|e| ReplayError::Row {
        stream: row.stream.clone(),
        message: e.to_string(),
    })
}

/// Every vWire's state folded from the log alone, with the number of events read.
#[derive(Debug, Default)]
pub struct Folded {
    pub vwires: HashMap<VWireId, VWire>,
    pub events: u64,
    pub head: Position,
}

/// Folds every vWire stream of the log up to its head.
pub async fn fold_all(store: &dyn EventStore) -> Result<Folded, ReplayError> {
    let mut folded = Folded::default();
    loop {
        let chunk = store.read_all(folded.head, CHUNK).await?;
        let Some(last) = chunk.last() else { break };
        folded.head = last.position;
        for recorded in &chunk {
            let Some(id) = VWireId::from_stream(&recorded.stream) else {
                continue;
            };
            let event = VWireEvent::decode(recorded)?;
            let state = folded.vwires.remove(&id);
            folded.vwires.insert(id, VWire::evolve(state, id, &event)?);
            folded.events += 1;
        }
    }
    Ok(folded)
}

/// The `live_vwires` rows the log implies, by stream.
pub async fn rebuild(store: &dyn EventStore) -> Result<BTreeMap<StreamId, LiveRow>, ReplayError> {
    rows_of(&fold_all(store).await?)
}

fn rows_of(folded: &Folded) -> Result<BTreeMap<StreamId, LiveRow>, ReplayError> {
    let mut rows = BTreeMap::new();
    for vwire in folded.vwires.values() {
        if let ProjectionChange::UpsertVWire(data) = change_for(vwire)? {
            let stream = vwire.id.stream();
            rows.insert(
                stream.clone(),
                LiveRow {
                    stream,
                    version: vwire.version,
                    data,
                },
            );
        }
    }
    Ok(rows)
}

/// How the stored `live_vwires` rows differ from a rebuild.
pub type Mismatch = crate::projection::Mismatch<LiveRow>;

/// Compares the stored projection with a rebuild from the log; on a log being written, the
/// streams written during the comparison are left out (see [`settled`]).
pub async fn compare(store: &dyn EventStore) -> Result<Vec<Mismatch>, ReplayError> {
    let folded = fold_all(store).await?;
    let rebuilt = rows_of(&folded)?;
    let stored = store.live_rows().await?;
    let mismatches = diff(
        stored,
        rebuilt,
        |row| &row.stream,
        |stored, expected| {
            decode_row(stored).ok() == decode_row(expected).ok()
                && stored.version == expected.version
                && stored.data.status == expected.data.status
                && stored.data.expires_at == expected.data.expires_at
        },
    );
    Ok(settled(store, folded.head, mismatches).await?)
}
