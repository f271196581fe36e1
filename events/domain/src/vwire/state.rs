//! A vWire's state: a pure fold over its events. [`VWire::apply`] is the only place state
//! changes, for the live actor and for replay alike, so the two cannot disagree.

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use super::event::{ClosedBy, DataplanePlumbed, FailureCode, FailureStage, Requested, VWireEvent};
use super::model::{
    ConnectionContext, EndpointRef, Labels, Mechanism, Path, ServiceName, SpiffeId, VWireId,
};
use crate::registry::Payload;

/// Where a vWire is in its lifecycle.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Status {
    Requested,
    Established,
    Closed,
    Expired,
    Failed,
}

impl Status {
    /// Closed, expired and failed vWires never change again.
    pub fn is_terminal(self) -> bool {
        matches!(self, Status::Closed | Status::Expired | Status::Failed)
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Status::Requested => "requested",
            Status::Established => "established",
            Status::Closed => "closed",
            Status::Expired => "expired",
            Status::Failed => "failed",
        }
    }
}

impl std::fmt::Display for Status {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What the vWire is connected to, once established.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Connection {
    pub endpoint: EndpointRef,
    /// What the vWire carries (Ethernet frames or IP packets); a state stored before it was
    /// recorded carried Ethernet.
    #[serde(default)]
    pub payload: Payload,
    pub mechanism: Mechanism,
    pub context: ConnectionContext,
    pub established_at: DateTime<Utc>,
}

/// What the data plane holds for a live vWire: enough to find, re-create or remove it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plumbing {
    pub dataplane: String,
    pub dry_run: bool,
    pub client_mechanism: Mechanism,
    pub endpoint_mechanism: Mechanism,
    pub plumbed_at: DateTime<Utc>,
}

impl Plumbing {
    fn from_event(e: &DataplanePlumbed) -> Self {
        Self {
            dataplane: e.work.dataplane.clone(),
            dry_run: e.work.dry_run,
            client_mechanism: e.client_mechanism.clone(),
            endpoint_mechanism: e.endpoint_mechanism.clone(),
            plumbed_at: e.at,
        }
    }
}

/// How a terminal vWire ended.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "how")]
pub enum Ending {
    Closed {
        by: ClosedBy,
        reason: String,
    },
    Expired {
        deadline: DateTime<Utc>,
        during_downtime: bool,
    },
    Failed {
        stage: FailureStage,
        code: FailureCode,
        reason: String,
    },
}

/// The state of one vWire, as folded from its events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VWire {
    pub id: VWireId,
    /// Version of the last event applied.
    pub version: u64,
    pub status: Status,
    pub service: ServiceName,
    pub labels: Labels,
    pub client: SpiffeId,
    pub mechanism_preferences: Vec<Mechanism>,
    pub path: Path,
    pub requested_at: DateTime<Utc>,
    /// The deadline: expired if not refreshed by then.
    pub expires_at: DateTime<Utc>,
    pub connection: Option<Connection>,
    /// What the data plane holds for it (none before plumbing and after unplumbing).
    #[serde(default)]
    pub plumbing: Option<Plumbing>,
    pub refreshes: u64,
    pub last_refreshed_at: Option<DateTime<Utc>>,
    pub heals: u64,
    /// Datapath probes that found the vWire down.
    #[serde(default)]
    pub probe_failures: u64,
    pub ended_at: Option<DateTime<Utc>>,
    pub ending: Option<Ending>,
}

/// A sequence of events that no decision could have produced (a damaged or tampered log).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("vWire {id}: {event} cannot follow version {version} in state {status:?}")]
pub struct FoldError {
    pub id: VWireId,
    pub version: u64,
    pub status: Option<Status>,
    pub event: &'static str,
}

impl VWire {
    /// The state right after `Requested` (version 1).
    pub fn begin(id: VWireId, requested: &Requested) -> Self {
        Self {
            id,
            version: 1,
            status: Status::Requested,
            service: requested.service.clone(),
            labels: requested.labels.clone(),
            client: requested.client.clone(),
            mechanism_preferences: requested.mechanism_preferences.clone(),
            path: requested.path.clone(),
            requested_at: requested.at,
            expires_at: requested.expires_at,
            connection: None,
            plumbing: None,
            refreshes: 0,
            last_refreshed_at: None,
            heals: 0,
            probe_failures: 0,
            ended_at: None,
            ending: None,
        }
    }

    /// Folds one event into the state (`None` before the first event).
    pub fn evolve(
        state: Option<VWire>,
        id: VWireId,
        event: &VWireEvent,
    ) -> Result<VWire, FoldError> {
        match (state, event) {
            (None, VWireEvent::Requested(requested)) => Ok(VWire::begin(id, requested)),
            (None, other) => Err(FoldError {
                id,
                version: 0,
                status: None,
                event: other.event_type(),
            }),
            (Some(mut vwire), event) => {
                vwire.apply(event)?;
                Ok(vwire)
            }
        }
    }

    /// Folds a whole stream, in version order.
    pub fn fold<'a>(
        id: VWireId,
        events: impl IntoIterator<Item = &'a VWireEvent>,
    ) -> Result<Option<VWire>, FoldError> {
        let mut state = None;
        for event in events {
            state = Some(VWire::evolve(state, id, event)?);
        }
        Ok(state)
    }

    /// Applies an event that follows the current state.
    pub fn apply(&mut self, event: &VWireEvent) -> Result<(), FoldError> {
        let refuse = |vwire: &VWire| FoldError {
            id: vwire.id,
            version: vwire.version,
            status: Some(vwire.status),
            event: event.event_type(),
        };
        if self.status.is_terminal() {
            return Err(refuse(self));
        }
        match event {
            VWireEvent::Requested(_) => return Err(refuse(self)),
            VWireEvent::Established(e) => {
                if self.status != Status::Requested {
                    return Err(refuse(self));
                }
                self.status = Status::Established;
                self.connection = Some(Connection {
                    endpoint: e.endpoint.clone(),
                    payload: e.payload,
                    mechanism: e.mechanism.clone(),
                    context: e.context.clone(),
                    established_at: e.at,
                });
                self.path = e.path.clone();
                self.expires_at = e.expires_at;
            }
            VWireEvent::Refreshed(e) => {
                if self.status != Status::Established {
                    return Err(refuse(self));
                }
                self.expires_at = e.expires_at;
                self.refreshes += 1;
                self.last_refreshed_at = Some(e.at);
                if let Some(path) = &e.path {
                    self.path = path.clone();
                }
            }
            VWireEvent::Healed(_) => {
                if self.status != Status::Established {
                    return Err(refuse(self));
                }
                self.heals += 1;
            }
            VWireEvent::ProbeFailed(_) => {
                if self.status != Status::Established {
                    return Err(refuse(self));
                }
                self.probe_failures += 1;
            }
            VWireEvent::DataplanePlumbed(e) => self.plumbing = Some(Plumbing::from_event(e)),
            VWireEvent::DataplaneUnplumbed(_) => {
                if self.plumbing.take().is_none() {
                    return Err(refuse(self));
                }
            }
            VWireEvent::Expired(e) => {
                self.end(
                    Status::Expired,
                    e.at,
                    Ending::Expired {
                        deadline: e.deadline,
                        during_downtime: e.during_downtime,
                    },
                );
            }
            VWireEvent::Closed(e) => {
                self.end(
                    Status::Closed,
                    e.at,
                    Ending::Closed {
                        by: e.by,
                        reason: e.reason.clone(),
                    },
                );
            }
            VWireEvent::Failed(e) => {
                self.end(
                    Status::Failed,
                    e.at,
                    Ending::Failed {
                        stage: e.stage,
                        code: e.code,
                        reason: e.reason.clone(),
                    },
                );
            }
        }
        self.version += 1;
        Ok(())
    }

    fn end(&mut self, status: Status, at: DateTime<Utc>, ending: Ending) {
        self.status = status;
        self.ended_at = Some(at);
        self.ending = Some(ending);
    }
}
