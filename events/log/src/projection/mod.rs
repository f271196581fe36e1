//! What every projection shares: the error of folding the log, and the comparison of stored
//! rows with a rebuild from the log (used by tests and `nsm verify`).

pub mod registry;
pub mod vwire;

use std::collections::BTreeMap;

use crate::error::StoreError;
use crate::store::{EventStore, Position, StreamId};
use nsm_domain::upcast::DecodeError;
use nsm_domain::vwire::FoldError;

/// Why the log could not be folded.
#[derive(Debug, Clone, thiserror::Error)]
pub enum ReplayError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error(transparent)]
    Decode(#[from] DecodeError),
    #[error(transparent)]
    Fold(#[from] FoldError),
    #[error("live_vwires row for {stream} holds a state that does not decode: {message}")]
    Row { stream: StreamId, message: String },
}

/// One way a stored projection differs from a rebuild from the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Mismatch<Row> {
    /// The log says the stream belongs in the projection, but it has no row.
    Missing { stream: StreamId },
    /// A row for a stream the log says does not belong (ended, or unknown).
    Unexpected { stream: StreamId },
    /// The row and the log disagree.
    Differs {
        stream: StreamId,
        stored: Box<Row>,
        rebuilt: Box<Row>,
    },
}

impl<Row> Mismatch<Row> {
    /// The stream whose row differs.
    pub fn stream(&self) -> &StreamId {
        match self {
            Mismatch::Missing { stream }
            | Mismatch::Unexpected { stream }
            | Mismatch::Differs { stream, .. } => stream,
        }
    }
}

/// Drops the mismatches of streams a writer moved on after the rebuild read the log up to
/// `head`.
///
/// The rows are read after the events, and a row is committed in the same transaction as its
/// stream's event, so on a log that a node is appending to a row may be ahead of the rebuild.
/// Such a stream has an event past `head`; a stream without one was not touched since, and its
/// row must equal the rebuild. On a log nobody writes, nothing is dropped.
pub(crate) async fn settled<Row>(
    store: &dyn EventStore,
    head: Position,
    mismatches: Vec<Mismatch<Row>>,
) -> Result<Vec<Mismatch<Row>>, StoreError> {
    let mut kept = Vec::with_capacity(mismatches.len());
    for mismatch in mismatches {
        let events = store.read_stream(mismatch.stream(), 0).await?;
        let moved_on = events.last().is_some_and(|last| last.position > head);
        if !moved_on {
            kept.push(mismatch);
        }
    }
    Ok(kept)
}

/// Compares stored rows with the rows a rebuild produced; `same` decides whether a stored row
/// and a rebuilt row of one stream agree.
pub(crate) fn diff<Row>(
    stored: Vec<Row>,
    mut rebuilt: BTreeMap<StreamId, Row>,
    stream_of: impl Fn(&Row) -> &StreamId,
    same: impl Fn(&Row, &Row) -> bool,
) -> Vec<Mismatch<Row>> {
    let mut mismatches = Vec::new();
    for row in stored {
        let stream = stream_of(&row).clone();
        match rebuilt.remove(&stream) {
            None => mismatches.push(Mismatch::Unexpected { stream }),
            Some(expected) if !same(&row, &expected) => mismatches.push(Mismatch::Differs {
                stream,
                stored: Box::new(row),
                rebuilt: Box::new(expected),
            }),
            Some(_) => {}
        }
    }
    mismatches.extend(
        rebuilt
            .into_keys()
            .map(|stream| Mismatch::Missing { stream }),
    );
    mismatches
}
