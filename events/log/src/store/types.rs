//! What the store takes and gives beyond the envelope: expected versions, appends, their
//! results, and the projection rows written in the same transaction. Nothing here does I/O.

use chrono::{DateTime, Utc};
use nsm_domain::envelope::{NewEvent, Position, StreamId};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::StoreError;

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
