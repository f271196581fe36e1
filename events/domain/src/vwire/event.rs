//! The events of a vWire's lifecycle, and how they are stored.
//!
//! Each event is a past-tense variant with its own payload struct. In the log the variant
//! name is the `event_type` column, the payload struct is the JSON `payload`, and
//! `schema_version` is the payload's version. Reading an older version upcasts it in memory
//! ([`crate::upcast`]); stored rows are never rewritten.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::model::{
    ConnectionContext, EndpointRef, Labels, Mechanism, Path, ServiceName, SpiffeId,
};
use crate::envelope::{Causation, NewEvent, RecordedEvent};
use crate::error::EnvelopeError;
use crate::registry::Payload;
use crate::upcast::{self, DecodeError};

/// A client asked for a vWire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Requested {
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub at: DateTime<Utc>,
    pub service: ServiceName,
    #[serde(default)]
    pub labels: Labels,
    pub client: SpiffeId,
    #[serde(default)]
    pub mechanism_preferences: Vec<Mechanism>,
    #[serde(default)]
    pub path: Path,
    /// The vWire is expired if not established and refreshed by then.
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub expires_at: DateTime<Utc>,
}

/// An endpoint accepted the vWire and the data plane connected it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Established {
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub at: DateTime<Utc>,
    pub endpoint: EndpointRef,
    /// What the vWire carries: its Network Service's payload when it was selected (NSM's
    /// `Connection.payload`), which decides how the data plane connects the two ends.
    /// Schema version 1 did not record it; those vWires carried Ethernet, as every vWire
    /// did then (and as NSM defaults a service to).
    #[serde(default)]
    pub payload: Payload,
    /// The mechanism chosen for the client's end.
    pub mechanism: Mechanism,
    #[serde(default)]
    pub context: ConnectionContext,
    #[serde(default)]
    pub path: Path,
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub expires_at: DateTime<Utc>,
}

/// The client refreshed the vWire: its deadline moved.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Refreshed {
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub at: DateTime<Utc>,
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub expires_at: DateTime<Utc>,
    /// The path as the refresh carried it, if it changed (new tokens, new expiries).
    #[serde(default)]
    pub path: Option<Path>,
}

/// The deadline passed without a refresh.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Expired {
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub at: DateTime<Utc>,
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub deadline: DateTime<Utc>,
    /// The deadline passed while the node was down; noticed at start-up.
    #[serde(default)]
    pub during_downtime: bool,
}

/// Who closed a vWire.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ClosedBy {
    Client,
    Endpoint,
    Operator,
    Node,
}

/// The vWire was closed on purpose.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Closed {
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub at: DateTime<Utc>,
    pub by: ClosedBy,
    #[serde(default)]
    pub reason: String,
}

/// Where in its life a vWire failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureStage {
    Validation,
    Discovery,
    Endpoint,
    Dataplane,
    Recovery,
    /// Recorded by a version that did not say (schema version 1).
    Unknown,
}

/// The kind of failure, in gRPC's terms so that it maps to a status without guessing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum FailureCode {
    InvalidArgument,
    NotFound,
    PermissionDenied,
    FailedPrecondition,
    /// Something the vWire needs is taken (an interface name, an address).
    AlreadyExists,
    Unavailable,
    DeadlineExceeded,
    Internal,
    Unknown,
}

/// The vWire could not be made, or broke beyond repair.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Failed {
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub at: DateTime<Utc>,
    pub stage: FailureStage,
    pub code: FailureCode,
    pub reason: String,
}

/// The runtime repaired the vWire (for example re-created data-plane objects after a restart).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Healed {
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub at: DateTime<Utc>,
    /// What was repaired, one line each, for the operator.
    pub repairs: Vec<String>,
}

/// The datapath liveness probe found that packets no longer cross the vWire (the runtime
/// re-plumbs it, and records `Healed` or `Failed` in the same append).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProbeFailed {
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub at: DateTime<Utc>,
    /// What was probed: `ICMP 172.16.0.1 → 172.16.0.2 on nsm-1`.
    pub probe: String,
    /// What was seen: `no reply to 4 echoes within 1s`.
    pub reason: String,
}

/// What a data plane did for a vWire, as the operator should read it. `dry_run` says that
/// nothing was done: the operations are what a real data plane would have done.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneWork {
    /// Which data plane: `dry-run`, `kernel`, `vpp`.
    pub dataplane: String,
    pub dry_run: bool,
    /// One line per operation, in the order done.
    pub operations: Vec<String>,
}

/// The data plane connected the vWire's two ends (or, dry run, recorded how it would).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplanePlumbed {
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub work: DataplaneWork,
    /// The client's end, as the client asked for it.
    pub client_mechanism: Mechanism,
    /// The endpoint's end, as the endpoint chose it.
    pub endpoint_mechanism: Mechanism,
}

/// The data plane removed what it had made for the vWire.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataplaneUnplumbed {
    #[serde(deserialize_with = "crate::timestamp::utc")]
    pub at: DateTime<Utc>,
    #[serde(flatten)]
    pub work: DataplaneWork,
}

/// Everything that can happen to a vWire.
// Events are decoded and folded one at a time; they are not kept in bulk, so the size of
// the largest variant (Established, with the whole connection context) costs nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum VWireEvent {
    Requested(Requested),
    Established(Established),
    Refreshed(Refreshed),
    Expired(Expired),
    Closed(Closed),
    Failed(Failed),
    Healed(Healed),
    ProbeFailed(ProbeFailed),
    DataplanePlumbed(DataplanePlumbed),
    DataplaneUnplumbed(DataplaneUnplumbed),
}

impl VWireEvent {
    /// The `event_type` column.
    pub fn event_type(&self) -> &'static str {
        match self {
            VWireEvent::Requested(_) => "Requested",
            VWireEvent::Established(_) => "Established",
            VWireEvent::Refreshed(_) => "Refreshed",
            VWireEvent::Expired(_) => "Expired",
            VWireEvent::Closed(_) => "Closed",
            VWireEvent::Failed(_) => "Failed",
            VWireEvent::Healed(_) => "Healed",
            VWireEvent::ProbeFailed(_) => "ProbeFailed",
            VWireEvent::DataplanePlumbed(_) => "DataplanePlumbed",
            VWireEvent::DataplaneUnplumbed(_) => "DataplaneUnplumbed",
        }
    }

    /// When the decision this event records was made.
    pub fn at(&self) -> DateTime<Utc> {
        match self {
            VWireEvent::Requested(e) => e.at,
            VWireEvent::Established(e) => e.at,
            VWireEvent::Refreshed(e) => e.at,
            VWireEvent::Expired(e) => e.at,
            VWireEvent::Closed(e) => e.at,
            VWireEvent::Failed(e) => e.at,
            VWireEvent::Healed(e) => e.at,
            VWireEvent::ProbeFailed(e) => e.at,
            VWireEvent::DataplanePlumbed(e) => e.at,
            VWireEvent::DataplaneUnplumbed(e) => e.at,
        }
    }

    /// Serializes the event for the store at its current schema version.
    pub fn to_new_event(&self, causation: Causation) -> Result<NewEvent, EnvelopeError> {
        let event_type = self.event_type();
        let version = upcast::current_version(event_type).unwrap_or(1);
        match self {
            VWireEvent::Requested(e) => NewEvent::new(event_type, version, e, causation),
            VWireEvent::Established(e) => NewEvent::new(event_type, version, e, causation),
            VWireEvent::Refreshed(e) => NewEvent::new(event_type, version, e, causation),
            VWireEvent::Expired(e) => NewEvent::new(event_type, version, e, causation),
            VWireEvent::Closed(e) => NewEvent::new(event_type, version, e, causation),
            VWireEvent::Failed(e) => NewEvent::new(event_type, version, e, causation),
            VWireEvent::Healed(e) => NewEvent::new(event_type, version, e, causation),
            VWireEvent::ProbeFailed(e) => NewEvent::new(event_type, version, e, causation),
            VWireEvent::DataplanePlumbed(e) => NewEvent::new(event_type, version, e, causation),
            VWireEvent::DataplaneUnplumbed(e) => NewEvent::new(event_type, version, e, causation),
        }
    }

    /// Reads a stored event, upcasting older schema versions.
    pub fn decode(recorded: &RecordedEvent) -> Result<Self, DecodeError> {
        Self::decode_stored(recorded.into())
    }

    /// [`Self::decode`] from the columns alone.
    pub fn decode_stored(stored: upcast::StoredPayload<'_>) -> Result<Self, DecodeError> {
        upcast::read_current(stored, Self::from_json)
    }

    fn from_json(event_type: &str, json: &str) -> Result<Self, serde_json::Error> {
        Ok(match event_type {
            "Requested" => VWireEvent::Requested(serde_json::from_str(json)?),
            "Established" => VWireEvent::Established(serde_json::from_str(json)?),
            "Refreshed" => VWireEvent::Refreshed(serde_json::from_str(json)?),
            "Expired" => VWireEvent::Expired(serde_json::from_str(json)?),
            "Closed" => VWireEvent::Closed(serde_json::from_str(json)?),
            "Failed" => VWireEvent::Failed(serde_json::from_str(json)?),
            "Healed" => VWireEvent::Healed(serde_json::from_str(json)?),
            "ProbeFailed" => VWireEvent::ProbeFailed(serde_json::from_str(json)?),
            "DataplanePlumbed" => VWireEvent::DataplanePlumbed(serde_json::from_str(json)?),
            "DataplaneUnplumbed" => VWireEvent::DataplaneUnplumbed(serde_json::from_str(json)?),
            other => {
                let message = format!("{other} is not a vWire event");
                return Err(serde::de::Error::custom(message));
            }
        })
    }
}
