//! The node's data plane as a whole, in the log (stream `dataplane-<node>`): what reconcile
//! found and did at start-up, so that an operator sees why links appeared or vanished even
//! when no live vWire owns them. A vWire's own repairs are events of its own stream
//! (`Healed`); these are the rest.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::envelope::{Causation, NewEvent, RecordedEvent, StreamId};
use crate::error::EnvelopeError;
use crate::upcast::{self, DecodeError};
use crate::vwire::VWireId;

/// Prefix of the node's data-plane stream.
pub const DATAPLANE_STREAM_PREFIX: &str = crate::envelope::StreamKind::Dataplane.prefix();

/// The stream of node `node`'s data-plane events.
pub fn stream(node: &str) -> Result<StreamId, EnvelopeError> {
    StreamId::new(format!("{DATAPLANE_STREAM_PREFIX}{node}"))
}

/// One object reconcile removed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RemovedObject {
    /// The vWire its tag named (`None`: a half-made object with no tag yet).
    pub vwire: Option<VWireId>,
    /// What and where, as the data plane describes it.
    pub object: String,
}

/// Reconcile removed objects that no live vWire owns (left by a crash, by a vWire that
/// ended while the node was down, or made by hand with a tag).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct OrphansRemoved {
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub at: DateTime<Utc>,
    pub dataplane: String,
    pub objects: Vec<RemovedObject>,
    /// What the data plane did, one line each.
    pub operations: Vec<String>,
}

/// Reconcile finished: how the data plane compared with the log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reconciled {
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub at: DateTime<Utc>,
    pub dataplane: String,
    /// Live vWires the log says the data plane must hold.
    pub checked: u64,
    /// Of those, found whole.
    pub whole: u64,
    /// Re-created (each has a `Healed` event).
    pub healed: u64,
    /// Could not be re-created and ended (each has a `Failed` event).
    pub failed: u64,
    pub orphans_removed: u64,
    pub took_ms: u64,
}

/// The node data plane's events.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DataplaneEvent {
    OrphansRemoved(OrphansRemoved),
    Reconciled(Reconciled),
}

impl DataplaneEvent {
    pub fn event_type(&self) -> &'static str {
        match self {
            DataplaneEvent::OrphansRemoved(_) => "OrphansRemoved",
            DataplaneEvent::Reconciled(_) => "Reconciled",
        }
    }

    pub fn to_new_event(&self, causation: Causation) -> Result<NewEvent, EnvelopeError> {
        let event_type = self.event_type();
        let version = upcast::current_version(event_type).unwrap_or(1);
        match self {
            DataplaneEvent::OrphansRemoved(e) => NewEvent::new(event_type, version, e, causation),
            DataplaneEvent::Reconciled(e) => NewEvent::new(event_type, version, e, causation),
        }
    }

    pub fn decode(recorded: &RecordedEvent) -> Result<Self, DecodeError> {
        upcast::read_current(recorded.into(), |event_type, json| {
            Ok(match event_type {
                "OrphansRemoved" => DataplaneEvent::OrphansRemoved(serde_json::from_str(json)?),
                "Reconciled" => DataplaneEvent::Reconciled(serde_json::from_str(json)?),
                other => {
                    let message = format!("{other} is not a data-plane event");
                    return Err(serde::de::Error::custom(message));
                }
            })
        })
    }
}
