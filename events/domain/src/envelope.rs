//! The envelope of every event: which stream it belongs to (and so what kind of thing it is
//! about), where it sits in the log, what caused it, and its payload on the way in and out.
//! Pure data: the log (`nsm-log`) stores envelopes, the domain fills and reads them.

use std::fmt;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::EnvelopeError;

/// Longest stream id the schema accepts (`CHECK (length(stream) BETWEEN 1 AND 255)`).
pub const MAX_STREAM_ID_LEN: usize = 255;

/// The id of one stream of events, for example `vwire-6f0c...`.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct StreamId(String);

impl StreamId {
    /// Validates a stream id: 1 to 255 printable characters, no whitespace.
    pub fn new(id: impl Into<String>) -> Result<Self, EnvelopeError> {
        let id = id.into();
        let printable = id.chars().all(|c| !c.is_control() && !c.is_whitespace());
        if id.is_empty() || id.len() > MAX_STREAM_ID_LEN || !printable {
            return Err(EnvelopeError::InvalidStreamId(format!(
                "stream id {id:?} must be 1 to {MAX_STREAM_ID_LEN} printable characters without spaces"
            )));
        }
        Ok(Self(id))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl StreamId {
    /// What the stream is about, from its prefix (the one place that reads prefixes).
    pub fn kind(&self) -> StreamKind {
        StreamKind::of(&self.0)
    }
}

/// What a stream is about. Every stream id starts with its kind's prefix
/// (`vwire-<uuid>`, `ns-<service>`, `nse-<endpoint>`, `dataplane-<node>`); a stream of
/// another name is [`StreamKind::Other`] (a log imported from a newer nsm-rs, say).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum StreamKind {
    /// One vWire's lifecycle.
    VWire,
    /// One Network Service's registration.
    Service,
    /// One Network Service Endpoint's registration.
    Endpoint,
    /// One node's data-plane reconciliations.
    Dataplane,
    /// A stream this binary has no kind for.
    Other,
}

impl StreamKind {
    /// The kinds that have a prefix, in the order they are tried: `nse-` before `ns-`.
    const PREFIXED: [StreamKind; 4] = [
        StreamKind::VWire,
        StreamKind::Endpoint,
        StreamKind::Service,
        StreamKind::Dataplane,
    ];

    /// The kind of a stream named `stream`.
    pub fn of(stream: &str) -> StreamKind {
        Self::PREFIXED
            .into_iter()
            .find(|kind| stream.starts_with(kind.prefix()))
            .unwrap_or(StreamKind::Other)
    }

    /// The prefix of every stream id of this kind (empty for [`StreamKind::Other`]).
    pub const fn prefix(self) -> &'static str {
        match self {
            StreamKind::VWire => "vwire-",
            StreamKind::Service => "ns-",
            StreamKind::Endpoint => "nse-",
            StreamKind::Dataplane => "dataplane-",
            StreamKind::Other => "",
        }
    }

    /// What follows the prefix in `stream`, if `stream` is of this kind.
    pub fn strip(self, stream: &str) -> Option<&str> {
        match self {
            StreamKind::Other => (StreamKind::of(stream) == StreamKind::Other).then_some(stream),
            kind if StreamKind::of(stream) == kind => stream.strip_prefix(kind.prefix()),
            _ => None,
        }
    }
}

impl TryFrom<String> for StreamId {
    type Error = EnvelopeError;
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
    ) -> Result<Self, EnvelopeError> {
        let payload = serde_json::to_string(body).map_err(EnvelopeError::encode)?;
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

/// Timestamps in the log: RFC 3339, UTC, always six fractional digits, so that text order
/// is time order in SQL.
pub fn format_timestamp(at: DateTime<Utc>) -> String {
    at.to_rfc3339_opts(SecondsFormat::Micros, true)
}

pub fn parse_timestamp(text: &str) -> Result<DateTime<Utc>, EnvelopeError> {
    DateTime::parse_from_rfc3339(text)
        .map(|t| t.with_timezone(&Utc))
        .map_err(|e| EnvelopeError::BadTimestamp(format!("timestamp {text:?} in the log: {e}")))
}

#[cfg(test)]
mod tests {
    use super::StreamKind;

    #[test]
    fn every_stream_kind_is_told_apart_by_its_prefix() {
        assert_eq!(StreamKind::of("vwire-6f0c"), StreamKind::VWire);
        assert_eq!(StreamKind::of("nse-a"), StreamKind::Endpoint);
        assert_eq!(StreamKind::of("ns-icmp"), StreamKind::Service);
        assert_eq!(StreamKind::of("dataplane-node-1"), StreamKind::Dataplane);
        assert_eq!(StreamKind::of("snapshot-1"), StreamKind::Other);
        assert_eq!(StreamKind::Endpoint.strip("nse-a"), Some("a"));
        assert_eq!(StreamKind::Service.strip("nse-a"), None);
        assert_eq!(StreamKind::Other.strip("vwire-1"), None);
    }
}
