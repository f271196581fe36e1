//! Telling a retried append from a conflicting one, shared by every store.

use uuid::Uuid;

use super::{AppendRequest, Appended, Position, StreamId};
use crate::error::StoreError;

/// An event of the log that has one of the append's ids.
#[derive(Debug, Clone)]
pub(crate) struct KnownEvent {
    pub(crate) id: Uuid,
    pub(crate) position: Position,
    pub(crate) stream: StreamId,
    pub(crate) version: u64,
}

/// Given the log's events that share ids with `request` (in the request's order), decides:
/// `None` if none are known (a new append), the original answer if the whole append is
/// already there (a retry), or [`StoreError::IdempotencyMismatch`] for anything in between.
pub(crate) fn recognise_retry(
    request: &AppendRequest,
    known: &[KnownEvent],
) -> Result<Option<Appended>, StoreError> {
    let Some(first_known) = known.first() else {
        return Ok(None);
    };
    let whole_append = known.len() == request.events.len()
        && known
            .iter()
            .zip(&request.events)
            .all(|(k, e)| k.id == e.id && k.stream == request.stream)
        && known.windows(2).all(|w| w[1].version == w[0].version + 1);
    if !whole_append {
        return Err(StoreError::IdempotencyMismatch {
            event_id: first_known.id,
        });
    }
    Ok(Some(Appended {
        positions: known.iter().map(|k| k.position).collect(),
        stream_version: known.last().map_or(0, |k| k.version),
        deduplicated: true,
    }))
}
