//! The journal: how actors record and read vWire events.
//!
//! The single writer with group commit lives in the store (`nsm_log::store`: the SQLite
//! store's writer task); this handle is what every actor shares to reach it. It turns a
//! decision (events plus the state they lead to) into one append with the matching
//! `live_vwires` change, and reads a vWire back from the log.

use std::sync::Arc;

use nsm_domain::vwire::{VWire, VWireEvent, VWireId};
use nsm_log::StoreError;
use nsm_log::projection::vwire::{self as projection, ReplayError};
use nsm_log::store::{
    AppendRequest, Appended, Causation, EventStore, ExpectedVersion, LiveRow, NewEvent,
    ProjectionChange, StreamId,
};

/// A cloneable handle to the node's event store.
#[derive(Debug, Clone)]
pub struct Journal {
    store: Arc<dyn EventStore>,
}

impl Journal {
    pub fn new(store: Arc<dyn EventStore>) -> Self {
        Self { store }
    }

    pub fn store(&self) -> &Arc<dyn EventStore> {
        &self.store
    }

    /// Records `events`, which take the vWire from version `expected` to `next`, and the
    /// projection row for `next`, in one append. Resolves once durable.
    pub(crate) async fn record(
        &self,
        next: &VWire,
        expected: u64,
        events: &[VWireEvent],
        causation: &Causation,
    ) -> Result<Appended, StoreError> {
        let new_events = events
            .iter()
            .map(|e| e.to_new_event(causation.clone()))
            .collect::<Result<Vec<_>, _>>()?;
        let request = AppendRequest::new(
            next.id.stream(),
            ExpectedVersion::from_version(expected),
            new_events,
        )
        .with_projection(projection::change_for(next)?);
        self.store.append(request).await
    }

    /// Folds one vWire from the log (`None` if it has no events).
    pub(crate) async fn load(&self, id: VWireId) -> Result<Option<VWire>, ReplayError> {
        let recorded = self.store.read_stream(&id.stream(), 1).await?;
        let events = recorded
            .iter()
            .map(VWireEvent::decode)
            .collect::<Result<Vec<_>, _>>()?;
        Ok(VWire::fold(id, &events)?)
    }

    pub(crate) async fn live_rows(&self) -> Result<Vec<LiveRow>, StoreError> {
        self.store.live_rows().await
    }

    /// Appends already-encoded events to the end of a stream that has no projection and one
    /// writer (the node's data-plane stream).
    pub(crate) async fn append_unprojected(
        &self,
        stream: StreamId,
        events: Vec<NewEvent>,
    ) -> Result<Appended, StoreError> {
        let request = AppendRequest::new(stream, ExpectedVersion::Any, events);
        self.store.append(request).await
    }

    /// Records already-encoded events of any stream with their projection change.
    pub(crate) async fn append(
        &self,
        stream: StreamId,
        expected: u64,
        events: Vec<NewEvent>,
        change: ProjectionChange,
    ) -> Result<Appended, StoreError> {
        let request = AppendRequest::new(stream, ExpectedVersion::from_version(expected), events)
            .with_projection(change);
        self.store.append(request).await
    }
}
