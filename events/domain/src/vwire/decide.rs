//! Deciding: given a vWire's state, a command and the time, which events to record — or a
//! typed refusal that records nothing. Pure: the actor and `nsm replay --simulate` run this
//! same code.

use std::time::Duration;

use chrono::{DateTime, SubsecRound, Utc};

use super::event::{
    Closed, ClosedBy, DataplanePlumbed, DataplaneUnplumbed, DataplaneWork, Established, Expired,
    Failed, FailureCode, FailureStage, Healed, ProbeFailed, Refreshed, Requested, VWireEvent,
};
use super::model::{
    ConnectionContext, EndpointRef, Labels, Mechanism, Path, ServiceName, SpiffeId,
};
use super::state::{Status, VWire};
use crate::registry::Payload;

/// The longest lifetime a vWire may be given in one step (a refresh extends it again).
pub const MAX_LIFETIME: Duration = Duration::from_secs(24 * 60 * 60);

/// What a client asks for when it requests a new vWire.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct VWireRequest {
    pub service: ServiceName,
    pub labels: Labels,
    pub client: SpiffeId,
    pub mechanism_preferences: Vec<Mechanism>,
    pub path: Path,
    /// How long the vWire lives unless refreshed.
    pub lifetime: Duration,
}

/// Something asked of a vWire.
// A command lives for one decision; boxing the big variant would buy nothing but an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    Request(VWireRequest),
    Establish {
        endpoint: EndpointRef,
        /// The payload of the vWire's Network Service, as selection found it.
        payload: Payload,
        mechanism: Mechanism,
        context: ConnectionContext,
        path: Path,
        expires_at: DateTime<Utc>,
    },
    Refresh {
        expires_at: DateTime<Utc>,
        path: Option<Path>,
    },
    /// The deadline timer fired (or start-up found the deadline passed).
    Expire {
        during_downtime: bool,
    },
    Close {
        by: ClosedBy,
        reason: String,
    },
    Fail {
        stage: FailureStage,
        code: FailureCode,
        reason: String,
    },
    Heal {
        repairs: Vec<String>,
    },
    /// The datapath probe failed (recorded with the heal or the failure it leads to).
    RecordProbeFailure {
        probe: String,
        reason: String,
    },
    /// The data plane connected the two ends (recorded with `Establish`, or by a heal).
    RecordPlumbing {
        work: DataplaneWork,
        client_mechanism: Mechanism,
        endpoint_mechanism: Mechanism,
    },
    /// The data plane removed what it made (recorded with the terminal event).
    RecordUnplumbing {
        work: DataplaneWork,
    },
}

impl Command {
    pub fn name(&self) -> &'static str {
        match self {
            Command::Request(_) => "Request",
            Command::Establish { .. } => "Establish",
            Command::Refresh { .. } => "Refresh",
            Command::Expire { .. } => "Expire",
            Command::Close { .. } => "Close",
            Command::Fail { .. } => "Fail",
            Command::Heal { .. } => "Heal",
            Command::RecordProbeFailure { .. } => "RecordProbeFailure",
            Command::RecordPlumbing { .. } => "RecordPlumbing",
            Command::RecordUnplumbing { .. } => "RecordUnplumbing",
        }
    }
}

/// Why a command was refused. Nothing was recorded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LifecycleError {
    /// A Request for a vWire that already exists: the runtime treats it as a refresh.
    #[error("the vWire already exists (status {status})")]
    AlreadyExists { status: Status },
    /// A command for a vWire that was never requested.
    #[error("no such vWire")]
    NotFound,
    /// Establish on an established vWire.
    #[error("the vWire is already established")]
    AlreadyEstablished,
    /// Refresh or heal before the vWire was established.
    #[error("the vWire is not established yet (status {status})")]
    NotEstablished { status: Status },
    /// Anything but reading on a closed, expired or failed vWire. Request a new one.
    #[error("the vWire is {status}; request a new one")]
    Terminal { status: Status },
    /// Expire before the deadline (a stale timer after a refresh).
    #[error("the vWire's deadline {expires_at} has not passed")]
    NotDue { expires_at: DateTime<Utc> },
    /// A deadline that is already over, or too far away.
    #[error("deadline {expires_at} must be after now ({now}) and within {max_secs}s", max_secs = MAX_LIFETIME.as_secs())]
    BadDeadline {
        expires_at: DateTime<Utc>,
        now: DateTime<Utc>,
    },
    /// The command's content is invalid.
    #[error("invalid: {0}")]
    Invalid(String),
}

fn check_deadline(expires_at: DateTime<Utc>, now: DateTime<Utc>) -> Result<(), LifecycleError> {
    let max = now + chrono::Duration::from_std(MAX_LIFETIME).unwrap_or(chrono::Duration::MAX);
    if expires_at <= now || expires_at > max {
        return Err(LifecycleError::BadDeadline { expires_at, now });
    }
    Ok(())
}

/// Times in events have microsecond precision, the precision of the log's timestamp columns,
/// so that a time read back from a column equals the one in the folded state.
fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    at.trunc_subsecs(6)
}

/// Decides which events a command produces on a vWire in `state` at time `now`.
pub fn decide(
    state: Option<&VWire>,
    command: &Command,
    now: DateTime<Utc>,
) -> Result<Vec<VWireEvent>, LifecycleError> {
    let now = micros(now);
    let Some(vwire) = state else {
        return match command {
            Command::Request(request) => request_new(request, now),
            _ => Err(LifecycleError::NotFound),
        };
    };
    if vwire.status.is_terminal() {
        return Err(LifecycleError::Terminal {
            status: vwire.status,
        });
    }
    let event = match command {
        Command::Request(_) => {
            return Err(LifecycleError::AlreadyExists {
                status: vwire.status,
            });
        }
        Command::Establish {
            endpoint,
            payload,
            mechanism,
            context,
            path,
            expires_at,
        } => {
            if vwire.status == Status::Established {
                return Err(LifecycleError::AlreadyEstablished);
            }
            let expires_at = micros(*expires_at);
            check_deadline(expires_at, now)?;
            context.ip.validate()?;
            path.validate()?;
            VWireEvent::Established(Established {
                at: now,
                endpoint: endpoint.clone(),
                payload: *payload,
                mechanism: mechanism.clone(),
                context: context.clone(),
                path: path.clone(),
                expires_at,
            })
        }
        Command::Refresh { expires_at, path } => {
            require_established(vwire)?;
            let expires_at = micros(*expires_at);
            check_deadline(expires_at, now)?;
            if let Some(path) = path {
                path.validate()?;
            }
            VWireEvent::Refreshed(Refreshed {
                at: now,
                expires_at,
                path: path.clone(),
            })
        }
        Command::Expire { during_downtime } => {
            if now < vwire.expires_at {
                return Err(LifecycleError::NotDue {
                    expires_at: vwire.expires_at,
                });
            }
            VWireEvent::Expired(Expired {
                at: now,
                deadline: vwire.expires_at,
                during_downtime: *during_downtime,
            })
        }
        Command::Close { by, reason } => VWireEvent::Closed(Closed {
            at: now,
            by: *by,
            reason: reason.clone(),
        }),
        Command::Fail {
            stage,
            code,
            reason,
        } => VWireEvent::Failed(Failed {
            at: now,
            stage: *stage,
            code: *code,
            reason: reason.clone(),
        }),
        Command::Heal { repairs } => {
            require_established(vwire)?;
            if repairs.is_empty() {
                return Err(LifecycleError::Invalid(
                    "a heal must name what it repaired".into(),
                ));
            }
            VWireEvent::Healed(Healed {
                at: now,
                repairs: repairs.clone(),
            })
        }
        Command::RecordProbeFailure { probe, reason } => {
            require_established(vwire)?;
            VWireEvent::ProbeFailed(ProbeFailed {
                at: now,
                probe: probe.clone(),
                reason: reason.clone(),
            })
        }
        Command::RecordPlumbing {
            work,
            client_mechanism,
            endpoint_mechanism,
        } => VWireEvent::DataplanePlumbed(DataplanePlumbed {
            at: now,
            work: work.clone(),
            client_mechanism: client_mechanism.clone(),
            endpoint_mechanism: endpoint_mechanism.clone(),
        }),
        Command::RecordUnplumbing { work } => {
            if vwire.plumbing.is_none() {
                return Err(LifecycleError::Invalid(
                    "the vWire holds nothing in the data plane to unplumb".into(),
                ));
            }
            VWireEvent::DataplaneUnplumbed(DataplaneUnplumbed {
                at: now,
                work: work.clone(),
            })
        }
    };
    Ok(vec![event])
}

/// Decides several commands as one step: each sees the state the previous ones lead to, and
/// either all are allowed (their events, and the state they lead to, come back together, to
/// be appended at once) or the first refusal is returned and nothing is recorded.
pub fn decide_all(
    state: Option<&VWire>,
    id: super::VWireId,
    commands: &[Command],
    now: DateTime<Utc>,
) -> Result<(Vec<VWireEvent>, VWire), LifecycleError> {
    let mut next = state.cloned();
    let mut events = Vec::new();
    for command in commands {
        for event in decide(next.as_ref(), command, now)? {
            next =
                Some(VWire::evolve(next, id, &event).map_err(|e| {
                    LifecycleError::Invalid(format!("a decision did not fold: {e}"))
                })?);
            events.push(event);
        }
    }
    let next = next.ok_or(LifecycleError::NotFound)?;
    Ok((events, next))
}

fn require_established(vwire: &VWire) -> Result<(), LifecycleError> {
    if vwire.status != Status::Established {
        return Err(LifecycleError::NotEstablished {
            status: vwire.status,
        });
    }
    Ok(())
}

fn request_new(
    request: &VWireRequest,
    now: DateTime<Utc>,
) -> Result<Vec<VWireEvent>, LifecycleError> {
    request.path.validate()?;
    let lifetime = chrono::Duration::from_std(request.lifetime)
        .map_err(|_| LifecycleError::Invalid("lifetime is too long".into()))?;
    let expires_at = micros(now + lifetime);
    check_deadline(expires_at, now)?;
    Ok(vec![VWireEvent::Requested(Requested {
        at: now,
        service: request.service.clone(),
        labels: request.labels.clone(),
        client: request.client.clone(),
        mechanism_preferences: request.mechanism_preferences.clone(),
        path: request.path.clone(),
        expires_at,
    })])
}
