//! The event store: an append-only log of streams, with optimistic concurrency, idempotent
//! appends, ordered reads and live subscriptions.
//!
//! [`EventStore`] is the contract; [`SqliteStore`] is the durable implementation and
//! [`MemoryStore`] the in-memory one used by fast tests. Both pass the same conformance suite
//! (`events/log/tests/conformance.rs`).

mod memory;
mod retry;
pub mod sqlite;
mod subscription;
mod types;

use futures::future::BoxFuture;
use futures::stream::BoxStream;

pub use memory::{InjectedFault, MemoryStore};
pub use sqlite::{OpenOptions, SqliteStore};
// The envelope is the domain's; every call of the store speaks it.
pub use nsm_domain::envelope::{
    Causation, MAX_STREAM_ID_LEN, NewEvent, Position, RecordedEvent, StreamId, StreamKind,
    format_timestamp, parse_timestamp,
};
pub use types::{
    AppendRequest, Appended, ExpectedVersion, LiveRow, LiveRowData, ProjectionChange,
    RegistrationRow, RegistrationRowData,
};

use crate::error::StoreError;

/// A stream of events from a subscription: catch-up first, then live, in position order,
/// with no position skipped.
pub type EventStream = BoxStream<'static, Result<RecordedEvent, StoreError>>;

/// The contract every event store implements. Object-safe, so the runtime holds an
/// `Arc<dyn EventStore>` and tests can swap stores.
pub trait EventStore: Send + Sync + std::fmt::Debug + 'static {
    /// Appends events to one stream if it is at the expected version. Resolves only once the
    /// events are durable. Appending event ids that are already in the log (a retry) returns
    /// the original positions and writes nothing.
    fn append(&self, request: AppendRequest) -> BoxFuture<'_, Result<Appended, StoreError>>;

    /// The events of one stream with `version >= from_version`, in version order.
    fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>>;

    /// Up to `limit` events with a position strictly after `after`, in position order.
    fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>>;

    /// The position of the last committed event (`Position::START` for an empty log).
    fn head(&self) -> Position;

    /// Every event after `after`: those already in the log, then each new one as it commits.
    fn subscribe(&self, after: Position) -> EventStream;

    /// The rows of the `live_vwires` projection, in stream order.
    fn live_rows(&self) -> BoxFuture<'_, Result<Vec<LiveRow>, StoreError>>;

    /// The rows of the `live_registry` projection, in stream order.
    fn registration_rows(&self) -> BoxFuture<'_, Result<Vec<RegistrationRow>, StoreError>>;
}
