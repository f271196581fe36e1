//! The vocabulary of the event store: streams, positions, versions, events going in and
//! events coming out. Nothing here does I/O.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::StoreError;

/// Longest stream id the schema accepts (`CHECK (length(stream) BETWEEN 1 AND 255)`).
pub const MAX_STREAM_ID_LEN: usize = 255;

/// The id of one stream of events, for example `vwire-6f0c...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

impl StreamId {
    /// Validates a stream id: 1 to 255 printable characters, no whitespace.
    pub fn new(id: impl Into<String>) -> Result<Self, StoreError> {
        let id = id.into();
        let printable = id.chars().all(|c| !c.is_control() && !c.is_whitespace());
        if id.is_empty() || id.len() > MAX_STREAM_ID_LEN || !printable {
            return Err(StoreError::InvalidInput(format!(
                "stream id {id:?} must be 1 to {MAX_STREAM_ID_LEN} printable characters without spaces"
            )));
        }
        Ok(Self(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl TryFrom<String> for StreamId {
    type Error = StoreError;
    fn try_from(value: String) -> Result<Self, Self::Error> {
        Self::new(value)
    }
}

impl From<StreamId> for String {
    fn from(value: StreamId) -> Self {
        value.0
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A place in the global order of the log. Positions start at 1 and have no gaps;
/// `Position::START` (0) means "before the first event".
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub struct Position(pub u64);

impl Position {
    pub const START: Position = Position(0);

    pub fn next(self) -> Position {
        Position(self.0 + 1)
    }
}

impl fmt::Display for Position {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// What the caller believes the stream's current version is; the append fails with
/// [`StoreError::WrongExpectedVersion`] otherwise (optimistic concurrency).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum ExpectedVersion {
    /// The stream must not exist yet.
    NoStream,
    /// The stream's last event must have exactly this version (≥ 1).
    Exact(u64),
    /// No check: append after whatever is there.
    Any,
}

impl ExpectedVersion {
    /// The version the caller expects, with "no stream" as 0; `None` for [`Self::Any`].
    pub fn as_version(self) -> Option<u64> {
        match self {
            ExpectedVersion::NoStream => Some(0),
            ExpectedVersion::Exact(v) => Some(v),
            ExpectedVersion::Any => None,
        }
    }

    /// `NoStream` for 0, `Exact(v)` otherwise.
    pub fn from_version(version: u64) -> Self {
        if version == 0 {
            ExpectedVersion::NoStream
        } else {
            ExpectedVersion::Exact(version)
        }
    }
}

/// Trace context stored with an event: which call caused it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Causation {
    /// Trace id of the originating call (shared by everything one request did).
    pub correlation_id: Option<String>,
    /// The immediate cause: a span id, or the id of an earlier event.
    pub causation_id: Option<String>,
}

/// An event on its way into the store.
#[derive(Debug, Clone, PartialEq)]
pub struct NewEvent {
    /// Idempotency key: appending the same id again returns the original position.
    pub id: Uuid,
    pub event_type: String,
    pub schema_version: u32,
    /// The body, already serialized as JSON (done by the caller, off the writer's path).
    pub payload: String,
    pub causation: Causation,
}

impl NewEvent {
    /// Serializes `body` as the event's JSON payload, under a fresh time-ordered id.
    pub fn new<T: Serialize>(
        event_type: &str,
        schema_version: u32,
        body: &T,
        causation: Causation,
    ) -> Result<Self, StoreError> {
        let payload = serde_json::to_string(body)?;
        Ok(Self {
            id: Uuid::now_v7(),
            event_type: event_type.to_owned(),
            schema_version,
            payload,
            causation,
        })
    }
}

/// An event as the log holds it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RecordedEvent {
    pub position: Position,
    pub id: Uuid,
    pub stream: StreamId,
    pub version: u64,
    pub event_type: String,
    pub schema_version: u32,
    pub recorded_at: DateTime<Utc>,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    /// JSON text, exactly as stored (not upcast: see [`crate::vwire::VWireEvent::decode`]).
    pub payload: String,
}

/// A change to a projection, made in the same transaction as the events (the row's version
/// is the append's last version).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ProjectionChange {
    /// `live_vwires`: the vWire is live; store this row.
    UpsertVWire(LiveRowData),
    /// `live_vwires`: the vWire reached a terminal state and leaves the projection.
    RemoveVWire,
    /// `live_registry`: the service or endpoint is registered; store this row.
    UpsertRegistration(RegistrationRowData),
    /// `live_registry`: the service or endpoint is no longer registered.
    RemoveRegistration,
}

/// The data of a `live_registry` row, apart from its stream and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationRowData {
    /// Endpoints' deadline; `None` for services, which never expire.
    pub expires_at: Option<DateTime<Utc>>,
    /// The folded registration, JSON.
    pub state: String,
}

/// One row of the `live_registry` projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RegistrationRow {
    pub stream: StreamId,
    pub version: u64,
    pub data: RegistrationRowData,
}

/// The data of a `live_vwires` row, apart from its stream and version.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRowData {
    pub status: String,
    pub expires_at: DateTime<Utc>,
    /// The folded state, JSON.
    pub state: String,
}

/// One row of the `live_vwires` projection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LiveRow {
    pub stream: StreamId,
    pub version: u64,
    pub data: LiveRowData,
}

/// One append: events for one stream, checked against an expected version, all or nothing.
#[derive(Debug, Clone)]
pub struct AppendRequest {
    pub stream: StreamId,
    pub expected: ExpectedVersion,
    pub events: Vec<NewEvent>,
    pub projection: Option<ProjectionChange>,
}

impl AppendRequest {
    pub fn new(stream: StreamId, expected: ExpectedVersion, events: Vec<NewEvent>) -> Self {
        Self {
            stream,
            expected,
            events,
            projection: None,
        }
    }

    pub fn with_projection(mut self, change: ProjectionChange) -> Self {
        self.projection = Some(change);
        self
    }

    /// Rejects requests that could never be written, before they reach the writer.
    pub fn validate(&self) -> Result<(), StoreError> {
        if self.events.is_empty() {
            return Err(StoreError::InvalidInput(format!(
                "append to {} carries no events",
                self.stream
            )));
        }
        if self.expected == ExpectedVersion::Exact(0) {
            return Err(StoreError::InvalidInput(
                "expected version Exact(0) is written NoStream".into(),
            ));
        }
        for event in &self.events {
            if event.event_type.is_empty() || event.schema_version == 0 {
                return Err(StoreError::InvalidInput(format!(
                    "event {} needs a type and a schema version ≥ 1",
                    event.id
                )));
            }
            if serde_json::from_str::<serde::de::IgnoredAny>(&event.payload).is_err() {
                return Err(StoreError::InvalidInput(format!(
                    "event {} payload is not valid JSON",
                    event.id
                )));
            }
        }
        let mut ids: Vec<Uuid> = self.events.iter().map(|e| e.id).collect();
        ids.sort_unstable();
        if ids.windows(2).any(|w| w[0] == w[1]) {
            return Err(StoreError::InvalidInput(format!(
                "append to {} repeats an event id",
                self.stream
            )));
        }
        Ok(())
    }
}

/// What a successful append wrote (or, for a retried append, had already written).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Appended {
    /// Position of each event, in the order given.
    pub positions: Vec<Position>,
    /// The stream's version after the append.
    pub stream_version: u64,
    /// True when every event id was already in the log: nothing new was written.
    pub deduplicated: bool,
}

/// Timestamps in the log: RFC 3339, UTC, always six fractional digits, so that text order
/// is time order in SQL.
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, StoreError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| StoreError::Corrupt(format!("timestamp {text:?} in the log: {e}")))
}
