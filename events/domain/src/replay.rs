//! The pure core of `nsm replay --simulate`: re-make every recorded decision with the code the
//! runtime runs, and report each recorded event that the code would not have recorded.
//!
//! A [`Simulation`] is fed the log in position order. For each stream it keeps the state
//! folded from the events recorded so far; for each event it rebuilds the input the runtime
//! must have decided on, asks the same decision function the actor asked
//! ([`vwire::decide`] for `vwire-<uuid>` streams; [`register_service`],
//! [`unregister_service`], [`register_endpoint`], [`unregister_endpoint`] and
//! [`expire_endpoint`] for `ns-<name>` and `nse-<name>` streams) at the event's own time, and
//! compares the answer with the record. Then it folds the recorded event, not the decided one,
//! so that later events are judged against what really happened.
//!
//! What the log cannot say is taken from the event itself: the clock (`at`), what clients,
//! endpoints and the data plane answered (endpoint, context, mechanisms, operations, reasons),
//! the lifetime a request asked for (`expires_at - at`), whether an expiry was noticed at
//! start-up (`during_downtime`) and whether an endpoint gave its own deadline (the recorded
//! one is passed as if it had). So the simulation checks what the decision logic owns: that
//! each event may follow the state before it, that the fields derived from that state
//! (`Expired.deadline`, an endpoint's `deadline`, `Registered` vs `Refreshed`) are the ones
//! the logic derives, and that inputs pass the logic's validation (deadline bounds, IP
//! context, path). Commands that were refused or decided nothing left no event, so they
//! cannot be checked at all.
//!
//! Pure and total: no I/O, no clock, and no input makes it panic. It does not read the log
//! (the caller does) and does not look at projections (`nsm verify` does).

use std::collections::HashMap;

use chrono::{DateTime, TimeDelta, Utc};
use serde::Serialize;
use serde_json::Value;

use crate::dataplane::DataplaneEvent;
use crate::envelope::StreamKind;
use crate::envelope::{Position, RecordedEvent, StreamId};
use crate::registry::{
    EndpointEvent, EndpointSpec, EndpointState, ServiceEvent, ServiceState, expire_endpoint,
    register_endpoint, register_service, unregister_endpoint, unregister_service,
};
use crate::upcast::DecodeError;
use crate::vwire::{self, Command, LifecycleError, VWire, VWireEvent, VWireId, VWireRequest};

/// How a recorded event differs from what the decision logic decides.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum DivergenceKind {
    /// The logic refuses the command that must have produced the event (a typed
    /// [`LifecycleError`]): the event could not have been recorded from the state before it.
    Refused,
    /// The logic accepts the command but decides other events (other field values, another
    /// event type, or nothing at all).
    Different,
    /// The payload cannot be read by this binary (bad JSON, missing fields, an unknown type,
    /// a newer schema version); the stream's state stays as it was before the event.
    Undecodable,
    /// The stream version is not the previous one plus one (a gap, a repeat, or events fed
    /// out of order). The event is folded but its decision is not re-made.
    OutOfOrder,
}

impl DivergenceKind {
    /// The name in `--json` output: `refused`, `different`, `undecodable`, `out_of_order`.
    pub fn as_str(self) -> &'static str {
        match self {
            DivergenceKind::Refused => "refused",
            DivergenceKind::Different => "different",
            DivergenceKind::Undecodable => "undecodable",
            DivergenceKind::OutOfOrder => "out_of_order",
        }
    }
}

impl std::fmt::Display for DivergenceKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// One recorded event that the decision logic would not have recorded.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Divergence {
    pub position: Position,
    pub stream: StreamId,
    pub version: u64,
    pub event_type: String,
    pub kind: DivergenceKind,
    /// What the decision logic says, for people: `the runtime refuses Expire: the vWire's
    /// deadline … has not passed`, or `the runtime decides Expired{deadline: X} where the log
    /// has Expired{deadline: Y}`.
    pub detail: String,
    /// The recorded payload, upcast to the current schema version (the stored text as a JSON
    /// string when it is not JSON at all).
    pub recorded: Value,
    /// The payload the logic decided instead, when it decided one event (an array of payloads
    /// when it decided several); `None` when it refused or decided nothing.
    pub decided: Option<Value>,
}

/// The log folded so far, stream by stream, and what was judged.
#[derive(Debug, Default)]
pub struct Simulation {
    streams: HashMap<StreamId, StreamState>,
    checked: u64,
    skipped: u64,
}

/// One stream: the version of its last event and the state folded from its events.
#[derive(Debug)]
struct StreamState {
    version: u64,
    folded: Folded,
}

/// The folded state of a stream, by what kind of stream it is (known from its id).
#[derive(Debug)]
enum Folded {
    /// Boxed: most streams of a log are vWires, but the other kinds need not pay for one.
    VWire(VWireId, Option<Box<VWire>>),
    Service(Option<ServiceState>),
    Endpoint(Option<EndpointState>),
    /// `dataplane-<node>`: records of what reconcile did, no decision to re-make; payloads
    /// are still decoded, so that an unreadable one is reported.
    Dataplane,
    /// A stream this binary knows nothing of.
    Unknown,
}

/// What judging one event found, before it is placed in the log.
struct Finding {
    kind: DivergenceKind,
    detail: String,
    decided: Option<Value>,
}

impl Finding {
    fn refused(detail: String) -> Self {
        Self {
            kind: DivergenceKind::Refused,
            detail,
            decided: None,
        }
    }
}

impl Simulation {
    pub fn new() -> Self {
        Self::default()
    }

    /// Feeds the next recorded event (callers feed the log from its start, in position order).
    /// With `check == false` the event is only folded (history before `--from`) and nothing
    /// is reported; with `check == true` its decision is re-made and compared. Returns the
    /// divergence, if any (at most one per event; `OutOfOrder` first, then `Undecodable`, then
    /// what the decision says). Never panics on any input.
    pub fn feed(&mut self, event: &RecordedEvent, check: bool) -> Option<Divergence> {
        let stream = match self.streams.get_mut(&event.stream) {
            Some(stream) => stream,
            None => self
                .streams
                .entry(event.stream.clone())
                .or_insert_with(|| StreamState::new(&event.stream)),
        };
        let previous = stream.version;
        stream.version = previous.max(event.version);
        let in_order = previous.checked_add(1) == Some(event.version);
        let found = stream.folded.step(event, check && in_order);
        if !check {
            return None;
        }
        if stream.folded.decides() {
            self.checked += 1;
        } else {
            self.skipped += 1;
        }
        let (recorded, finding) = if in_order {
            found?
        } else {
            let finding = Finding {
                kind: DivergenceKind::OutOfOrder,
                detail: out_of_order(previous, event.version),
                decided: None,
            };
            (stream.folded.read(event), finding)
        };
        Some(Divergence {
            position: event.position,
            stream: event.stream.clone(),
            version: event.version,
            event_type: event.event_type.clone(),
            kind: finding.kind,
            detail: finding.detail,
            recorded,
            decided: finding.decided,
        })
    }

    /// Events fed with `check` on streams whose decisions can be re-made (vWires, services,
    /// endpoints): each was re-decided, or found undecodable or out of order.
    pub fn checked(&self) -> u64 {
        self.checked
    }

    /// Events fed with `check` on streams with no decision to re-make (`dataplane-<node>`,
    /// unknown streams). Their versions are still checked.
    pub fn skipped(&self) -> u64 {
        self.skipped
    }
}

impl StreamState {
    fn new(stream: &StreamId) -> Self {
        let folded = match stream.kind() {
            StreamKind::VWire => match VWireId::from_stream(stream) {
                Some(vwire) => Folded::VWire(vwire, None),
                None => Folded::Unknown,
            },
            StreamKind::Endpoint => Folded::Endpoint(None),
            StreamKind::Service => Folded::Service(None),
            StreamKind::Dataplane => Folded::Dataplane,
            StreamKind::Other => Folded::Unknown,
        };
        Self { version: 0, folded }
    }
}

impl Folded {
    fn decides(&self) -> bool {
        matches!(
            self,
            Folded::VWire(..) | Folded::Service(_) | Folded::Endpoint(_)
        )
    }

    /// Decodes one event, judges it when `check`, and folds it. Returns what judging found,
    /// with the recorded payload (upcast).
    fn step(&mut self, event: &RecordedEvent, check: bool) -> Option<(Value, Finding)> {
        match self {
            Folded::VWire(id, state) => match VWireEvent::decode(event) {
                Ok(decoded) => step_vwire(*id, state, &decoded, check),
                Err(e) => undecodable(event, &e),
            },
            Folded::Service(state) => match ServiceEvent::decode(event) {
                Ok(decoded) => step_service(&event.stream, state, &decoded, check),
                Err(e) => undecodable(event, &e),
            },
            Folded::Endpoint(state) => match EndpointEvent::decode(event) {
                Ok(decoded) => step_endpoint(&event.stream, state, &decoded, check),
                Err(e) => undecodable(event, &e),
            },
            Folded::Dataplane => DataplaneEvent::decode(event)
                .err()
                .and_then(|e| undecodable(event, &e)),
            Folded::Unknown => None,
        }
    }

    /// The payload of `event` as this stream's events are read (upcast), for a report.
    fn read(&self, event: &RecordedEvent) -> Value {
        let read = match self {
            Folded::VWire(..) => VWireEvent::decode(event).map(|e| vwire_json(&e)),
            Folded::Service(_) => ServiceEvent::decode(event).map(|e| service_json(&e)),
            Folded::Endpoint(_) => EndpointEvent::decode(event).map(|e| endpoint_json(&e)),
            Folded::Dataplane => DataplaneEvent::decode(event).map(|e| dataplane_json(&e)),
            Folded::Unknown => return stored_json(&event.payload),
        };
        read.unwrap_or_else(|_| stored_json(&event.payload))
    }
}

fn out_of_order(previous: u64, version: u64) -> String {
    let expected = previous.saturating_add(1);
    match previous {
        0 => format!("version {version} is the stream's first event; {expected} was expected"),
        _ => format!("version {version} follows version {previous}; {expected} was expected"),
    }
}

fn undecodable(event: &RecordedEvent, error: &DecodeError) -> Option<(Value, Finding)> {
    let finding = Finding {
        kind: DivergenceKind::Undecodable,
        detail: format!("the payload cannot be read: {error}"),
        decided: None,
    };
    Some((stored_json(&event.payload), finding))
}

fn stored_json(payload: &str) -> Value {
    serde_json::from_str(payload).unwrap_or_else(|_| Value::String(payload.to_owned()))
}

/// Whether the decision functions can do their deadline arithmetic at `at` (chrono panics on
/// overflow; the runtime's clock never comes near the end of representable time).
fn representable(at: DateTime<Utc>) -> bool {
    at.checked_add_signed(TimeDelta::days(2)).is_some()
}

fn unrepresentable(at: DateTime<Utc>) -> Finding {
    Finding::refused(format!(
        "the runtime cannot decide at {at}: deadlines from then on are past the end of \
         representable time"
    ))
}

/// Notes a recorded event that does not fold onto the state before it (the state is kept).
/// A refusal implies it; after any other finding, or none, the fold's reason is news.
fn unfolded(finding: Option<Finding>, why: String) -> Option<Finding> {
    const KEPT: &str = "later events are judged against the state before it";
    Some(match finding {
        Some(mut finding) if finding.kind == DivergenceKind::Refused => {
            finding.detail.push_str(&format!("; {KEPT}"));
            finding
        }
        Some(mut finding) => {
            let note = format!("; the event does not fold either ({why}), so {KEPT}");
            finding.detail.push_str(&note);
            finding
        }
        None => Finding::refused(format!("the event does not fold ({why}), so {KEPT}")),
    })
}

// --- vWires ---------------------------------------------------------------------------------

fn step_vwire(
    id: VWireId,
    state: &mut Option<Box<VWire>>,
    event: &VWireEvent,
    check: bool,
) -> Option<(Value, Finding)> {
    let finding = check
        .then(|| judge_vwire(state.as_deref(), event))
        .flatten();
    let finding = match VWire::evolve(state.as_deref().cloned(), id, event) {
        Ok(next) => {
            *state = Some(Box::new(settle(next)));
            finding
        }
        Err(e) => unfolded(finding, e.to_string()),
    };
    finding.map(|finding| (vwire_json(event), finding))
}

/// Re-decides the command that must have produced `recorded` on `state`, at its time.
fn judge_vwire(state: Option<&VWire>, recorded: &VWireEvent) -> Option<Finding> {
    let at = recorded.at();
    if !representable(at) {
        return Some(unrepresentable(at));
    }
    let command = command_for(recorded);
    match vwire::decide(state, &command, at) {
        Err(e) => Some(refusal(&command, &e)),
        Ok(decided) if decided.len() == 1 && decided[0] == *recorded => None,
        Ok(decided) => {
            let decided: Vec<_> = decided
                .iter()
                .map(|e| (e.event_type(), vwire_json(e)))
                .collect();
            Some(different(
                recorded.event_type(),
                &vwire_json(recorded),
                &decided,
                "",
            ))
        }
    }
}

fn refusal(command: &Command, error: &LifecycleError) -> Finding {
    Finding::refused(format!("the runtime refuses {}: {error}", command.name()))
}

/// The command the runtime decided when it recorded `event`, rebuilt from the event.
fn command_for(event: &VWireEvent) -> Command {
    match event.clone() {
        VWireEvent::Requested(e) => Command::Request(VWireRequest {
            service: e.service,
            labels: e.labels,
            client: e.client,
            mechanism_preferences: e.mechanism_preferences,
            path: e.path,
            // A deadline at or before `at` is no lifetime; decide refuses a zero one.
            lifetime: (e.expires_at - e.at).to_std().unwrap_or_default(),
        }),
        VWireEvent::Established(e) => Command::Establish {
            endpoint: e.endpoint,
            payload: e.payload,
            mechanism: e.mechanism,
            context: e.context,
            path: e.path,
            expires_at: e.expires_at,
        },
        VWireEvent::Refreshed(e) => Command::Refresh {
            expires_at: e.expires_at,
            path: e.path,
        },
        VWireEvent::Expired(e) => Command::Expire {
            during_downtime: e.during_downtime,
        },
        VWireEvent::Closed(e) => Command::Close {
            by: e.by,
            reason: e.reason,
        },
        VWireEvent::Failed(e) => Command::Fail {
            stage: e.stage,
            code: e.code,
            reason: e.reason,
        },
        VWireEvent::Healed(e) => Command::Heal { repairs: e.repairs },
        VWireEvent::ProbeFailed(e) => Command::RecordProbeFailure {
            probe: e.probe,
            reason: e.reason,
        },
        VWireEvent::DataplanePlumbed(e) => Command::RecordPlumbing {
            work: e.work,
            client_mechanism: e.client_mechanism,
            endpoint_mechanism: e.endpoint_mechanism,
        },
        VWireEvent::DataplaneUnplumbed(e) => Command::RecordUnplumbing { work: e.work },
    }
}

/// Keeps a terminal vWire small: `decide` refuses every command on it and the fold every
/// event by its status alone, so the path, connection and labels are never read again.
fn settle(mut vwire: VWire) -> VWire {
    if vwire.status.is_terminal() {
        vwire.labels.clear();
        vwire.mechanism_preferences = Vec::new();
        vwire.path = Default::default();
        vwire.connection = None;
        vwire.plumbing = None;
    }
    vwire
}

fn vwire_json(event: &VWireEvent) -> Value {
    let value = match event {
        VWireEvent::Requested(e) => serde_json::to_value(e),
        VWireEvent::Established(e) => serde_json::to_value(e),
        VWireEvent::Refreshed(e) => serde_json::to_value(e),
        VWireEvent::Expired(e) => serde_json::to_value(e),
        VWireEvent::Closed(e) => serde_json::to_value(e),
        VWireEvent::Failed(e) => serde_json::to_value(e),
        VWireEvent::Healed(e) => serde_json::to_value(e),
        VWireEvent::ProbeFailed(e) => serde_json::to_value(e),
        VWireEvent::DataplanePlumbed(e) => serde_json::to_value(e),
        VWireEvent::DataplaneUnplumbed(e) => serde_json::to_value(e),
    };
    value.unwrap_or(Value::Null)
}

// --- The registry ---------------------------------------------------------------------------

fn step_service(
    stream: &StreamId,
    state: &mut Option<ServiceState>,
    event: &ServiceEvent,
    check: bool,
) -> Option<(Value, Finding)> {
    let finding = check
        .then(|| judge_service(stream, state.as_ref(), event))
        .flatten();
    let finding = match ServiceState::evolve(state.clone(), event) {
        Some(next) => {
            *state = Some(next);
            finding
        }
        None => unfolded(finding, "nothing was registered before it".into()),
    };
    finding.map(|finding| (service_json(event), finding))
}

fn judge_service(
    stream: &StreamId,
    state: Option<&ServiceState>,
    event: &ServiceEvent,
) -> Option<Finding> {
    let at = match event {
        ServiceEvent::Registered(e) => e.at,
        ServiceEvent::Unregistered(e) => e.at,
    };
    if !representable(at) {
        return Some(unrepresentable(at));
    }
    let (decided, nothing) = match event {
        ServiceEvent::Registered(e) => {
            let name = e.service.name.as_str();
            if let Some(wrong) = wrong_stream(stream, StreamKind::Service, "service", name) {
                return Some(wrong);
            }
            match register_service(state, &e.service, at) {
                Ok(decided) => (decided, "the service is already registered as it is"),
                Err(e) => return Some(registry_refusal("register the service", &e)),
            }
        }
        ServiceEvent::Unregistered(_) => (
            unregister_service(state, at),
            "the service is not registered",
        ),
    };
    compare(event, &decided, nothing, |e| {
        (e.event_type(), service_json(e))
    })
}

fn step_endpoint(
    stream: &StreamId,
    state: &mut Option<EndpointState>,
    event: &EndpointEvent,
    check: bool,
) -> Option<(Value, Finding)> {
    let finding = check
        .then(|| judge_endpoint(stream, state.as_ref(), event))
        .flatten();
    let finding = match EndpointState::evolve(state.clone(), event) {
        Some(next) => {
            *state = Some(next);
            finding
        }
        None => unfolded(finding, "the endpoint never registered".into()),
    };
    finding.map(|finding| (endpoint_json(event), finding))
}

fn judge_endpoint(
    stream: &StreamId,
    state: Option<&EndpointState>,
    event: &EndpointEvent,
) -> Option<Finding> {
    let at = endpoint_at(event);
    if !representable(at) {
        return Some(unrepresentable(at));
    }
    // The registry actor passes the client's deadline, or none for its default lifetime; the
    // log holds the deadline either gave, so it is passed as the client's and the default
    // lifetime is never used.
    let unused = TimeDelta::zero();
    let registered = |spec: &EndpointSpec, until: DateTime<Utc>| {
        register_endpoint(state, spec, Some(until), unused, at)
    };
    let (decided, nothing) = match event {
        EndpointEvent::Registered(e) => {
            let name = e.endpoint.name.as_str();
            if let Some(wrong) = wrong_stream(stream, StreamKind::Endpoint, "endpoint", name) {
                return Some(wrong);
            }
            match registered(&e.endpoint, e.expires_at) {
                Ok(decided) => (
                    decided,
                    "the endpoint is already registered as it is, until then",
                ),
                Err(e) => return Some(registry_refusal("register the endpoint", &e)),
            }
        }
        EndpointEvent::Refreshed(e) => {
            let Some(spec) = state.map(|s| &s.spec) else {
                return Some(Finding {
                    kind: DivergenceKind::Different,
                    detail: "the runtime refreshes only an endpoint it knows; this one never \
                             registered"
                        .into(),
                    decided: None,
                });
            };
            match registered(spec, e.expires_at) {
                Ok(decided) => (decided, "the endpoint is already registered until then"),
                Err(e) => return Some(registry_refusal("refresh the endpoint", &e)),
            }
        }
        EndpointEvent::Unregistered(_) => (
            unregister_endpoint(state, at),
            "the endpoint is not registered",
        ),
        EndpointEvent::Expired(_) => {
            let due = state.filter(|s| s.is_registered());
            let nothing = match due {
                Some(_) => "the endpoint's deadline has not passed",
                None => "the endpoint is not registered",
            };
            (expire_endpoint(state, at), nothing)
        }
    };
    compare(event, &decided, nothing, |e| {
        (e.event_type(), endpoint_json(e))
    })
}

/// The registry actor records a service or endpoint in the stream named after it. (Compared
/// as text: `stream()` refuses, with a panic, names too long to make a stream id.)
fn wrong_stream(stream: &StreamId, kind: StreamKind, what: &str, name: &str) -> Option<Finding> {
    if kind.strip(stream.as_str()) == Some(name) {
        return None;
    }
    let prefix = kind.prefix();
    Some(Finding {
        kind: DivergenceKind::Different,
        detail: format!("the runtime records {what} {name:?} in stream {prefix}{name}, not here"),
        decided: None,
    })
}

fn registry_refusal(what: &str, error: &LifecycleError) -> Finding {
    Finding::refused(format!("the runtime refuses to {what}: {error}"))
}

fn endpoint_at(event: &EndpointEvent) -> DateTime<Utc> {
    match event {
        EndpointEvent::Registered(e) => e.at,
        EndpointEvent::Refreshed(e) => e.at,
        EndpointEvent::Unregistered(e) => e.at,
        EndpointEvent::Expired(e) => e.at,
    }
}

/// Compares a registry decision (one event, several, or none) with the recorded event;
/// `describe` gives an event's type and payload.
fn compare<E: PartialEq>(
    recorded: &E,
    decided: &[E],
    nothing: &str,
    describe: impl Fn(&E) -> (&'static str, Value),
) -> Option<Finding> {
    if let [only] = decided
        && only == recorded
    {
        return None;
    }
    let (recorded_type, recorded) = describe(recorded);
    let decided: Vec<_> = decided.iter().map(describe).collect();
    Some(different(recorded_type, &recorded, &decided, nothing))
}

fn service_json(event: &ServiceEvent) -> Value {
    let value = match event {
        ServiceEvent::Registered(e) => serde_json::to_value(e),
        ServiceEvent::Unregistered(e) => serde_json::to_value(e),
    };
    value.unwrap_or(Value::Null)
}

fn endpoint_json(event: &EndpointEvent) -> Value {
    let value = match event {
        EndpointEvent::Registered(e) => serde_json::to_value(e),
        EndpointEvent::Refreshed(e) => serde_json::to_value(e),
        EndpointEvent::Unregistered(e) => serde_json::to_value(e),
        EndpointEvent::Expired(e) => serde_json::to_value(e),
    };
    value.unwrap_or(Value::Null)
}

fn dataplane_json(event: &DataplaneEvent) -> Value {
    let value = match event {
        DataplaneEvent::OrphansRemoved(e) => serde_json::to_value(e),
        DataplaneEvent::Reconciled(e) => serde_json::to_value(e),
    };
    value.unwrap_or(Value::Null)
}

// --- Describing a difference ----------------------------------------------------------------

/// A `Different` finding: the logic decided `decided` (type and payload of each) where the log
/// has `recorded`. `nothing` says why, when the logic decides nothing.
fn different(
    recorded_type: &str,
    recorded: &Value,
    decided: &[(&'static str, Value)],
    nothing: &str,
) -> Finding {
    let (detail, value) = match decided {
        [] => (
            format!("the runtime decides nothing where the log has {recorded_type}: {nothing}"),
            None,
        ),
        [(decided_type, value)] if *decided_type == recorded_type => {
            let (ours, theirs) = changed_fields(recorded, value);
            let detail = format!(
                "the runtime decides {recorded_type}{{{ours}}} where the log has \
                 {recorded_type}{{{theirs}}}"
            );
            (detail, Some(value.clone()))
        }
        [(decided_type, value)] => (
            format!("the runtime decides {decided_type} where the log has {recorded_type}"),
            Some(value.clone()),
        ),
        several => {
            let types: Vec<_> = several.iter().map(|(t, _)| *t).collect();
            let values = several.iter().map(|(_, v)| v.clone()).collect();
            let detail = format!(
                "the runtime decides {} where the log has {recorded_type}",
                types.join(", ")
            );
            (detail, Some(Value::Array(values)))
        }
    };
    Finding {
        kind: DivergenceKind::Different,
        detail,
        decided: value,
    }
}

/// The top-level fields that differ, as `field: value` lists for the decided payload and the
/// recorded one.
fn changed_fields(recorded: &Value, decided: &Value) -> (String, String) {
    let (Some(recorded), Some(decided)) = (recorded.as_object(), decided.as_object()) else {
        return (short(decided), short(recorded));
    };
    let mut names: Vec<&String> = recorded.keys().chain(decided.keys()).collect();
    names.sort();
    names.dedup();
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for name in names {
        let (a, b) = (decided.get(name), recorded.get(name));
        if a != b {
            let show = |v: Option<&Value>| v.map_or_else(|| "(none)".to_owned(), short);
            ours.push(format!("{name}: {}", show(a)));
            theirs.push(format!("{name}: {}", show(b)));
        }
    }
    (ours.join(", "), theirs.join(", "))
}

/// A value as compact JSON, cut to a length a table cell can hold.
fn short(value: &Value) -> String {
    const LONGEST: usize = 100;
    let text = value.to_string();
    match text.char_indices().nth(LONGEST) {
        Some((cut, _)) => format!("{}…", &text[..cut]),
        None => text,
    }
}

#[cfg(test)]
mod tests {
    //! Logs written by the real decision functions replay clean; each kind of tampering is
    //! found at the event tampered with, and only there.

    use std::collections::BTreeMap;
    use std::time::Duration;

    use serde_json::json;
    use uuid::Uuid;

    use super::*;
    use crate::dataplane::{self, Reconciled};
    use crate::envelope::{Causation, NewEvent};
    use crate::registry::{EndpointName, EndpointUrl, NetworkService, Payload};
    use crate::vwire::{
        ClosedBy, ConnectionContext, DataplaneWork, EndpointRef, FailureCode, FailureStage,
        IpContext, Mechanism, MechanismClass, Path, PathSegment, ServiceName, SpiffeId, decide_all,
    };

    fn t(minutes: i64) -> DateTime<Utc> {
        let origin = DateTime::parse_from_rfc3339("2026-11-28T12:00:00Z").unwrap();
        origin.with_timezone(&Utc) + TimeDelta::minutes(minutes)
    }

    /// A log being written: positions and stream versions as the store assigns them.
    #[derive(Default)]
    struct Log {
        events: Vec<RecordedEvent>,
        versions: HashMap<StreamId, u64>,
    }

    impl Log {
        fn record(&mut self, stream: &StreamId, new: NewEvent, at: DateTime<Utc>) {
            let version = self.versions.entry(stream.clone()).or_default();
            *version += 1;
            self.events.push(RecordedEvent {
                position: Position(self.events.len() as u64 + 1),
                id: new.id,
                stream: stream.clone(),
                version: *version,
                event_type: new.event_type,
                schema_version: new.schema_version,
                recorded_at: at,
                correlation_id: None,
                causation_id: None,
                payload: new.payload,
            });
        }

        /// Decides `commands` on vWire `n` as the actor does (one step) and records them.
        fn vwire(&mut self, n: u128, commands: &[Command], at: DateTime<Utc>) {
            let id = wire(n);
            let stream = id.stream();
            let events: Vec<_> = self.events_of(&stream);
            let state = VWire::fold(id, &events).unwrap();
            let (decided, _) = decide_all(state.as_ref(), id, commands, at).unwrap();
            for event in decided {
                let new = event.to_new_event(Causation::default()).unwrap();
                self.record(&stream, new, at);
            }
        }

        fn events_of(&self, stream: &StreamId) -> Vec<VWireEvent> {
            let mine = self.events.iter().filter(|e| e.stream == *stream);
            mine.map(|e| VWireEvent::decode(e).unwrap()).collect()
        }

        fn service(&mut self, service: &NetworkService, register: bool, at: DateTime<Utc>) {
            let stream = StreamId::new(format!("ns-{}", service.name)).unwrap();
            let mine = self.events.iter().filter(|e| e.stream == stream);
            let state = mine
                .map(|e| ServiceEvent::decode(e).unwrap())
                .fold(None, |s, e| ServiceState::evolve(s, &e));
            let decided = match register {
                true => register_service(state.as_ref(), service, at).unwrap(),
                false => unregister_service(state.as_ref(), at),
            };
            for event in decided {
                let new = event.to_new_event(Causation::default()).unwrap();
                self.record(&stream, new, at);
            }
        }

        /// Asks the registry's decision for endpoint `nse-1` as its actor does, and records it.
        fn endpoint(&mut self, asked: Nse, at: DateTime<Utc>) {
            let stream = StreamId::new("nse-nse-1").unwrap();
            let mine = self.events.iter().filter(|e| e.stream == stream);
            let state = mine
                .map(|e| EndpointEvent::decode(e).unwrap())
                .fold(None, |s, e| EndpointState::evolve(s, &e));
            let state = state.as_ref();
            let decided = match asked {
                Nse::Register(url, until) => {
                    let lifetime = TimeDelta::minutes(1);
                    register_endpoint(state, &spec(url), until.map(t), lifetime, at).unwrap()
                }
                Nse::Unregister => unregister_endpoint(state, at),
                Nse::Expire => expire_endpoint(state, at),
            };
            for event in decided {
                let new = event.to_new_event(Causation::default()).unwrap();
                self.record(&stream, new, at);
            }
        }

        /// The index of the first `event_type` event in vWire `n`'s stream.
        fn find(&self, n: u128, event_type: &str) -> usize {
            let stream = wire(n).stream();
            self.events
                .iter()
                .position(|e| e.stream == stream && e.event_type == event_type)
                .unwrap()
        }
    }

    /// What is asked of the registry about endpoint `nse-1`.
    enum Nse {
        /// At this URL, until minute `Some(m)` or for the default minute.
        Register(&'static str, Option<i64>),
        Unregister,
        Expire,
    }

    fn wire(n: u128) -> VWireId {
        VWireId(Uuid::from_u128(n))
    }

    fn kernel() -> Mechanism {
        Mechanism::new(MechanismClass::Local, "KERNEL")
    }

    fn request() -> Command {
        Command::Request(VWireRequest {
            service: ServiceName::new("web").unwrap(),
            labels: BTreeMap::from([("app".into(), "shop".into())]),
            client: SpiffeId::new("spiffe://example.org/ns/shop/sa/client").unwrap(),
            mechanism_preferences: vec![kernel()],
            path: Path::default(),
            lifetime: Duration::from_secs(10 * 60),
        })
    }

    fn path(token: &str) -> Path {
        Path {
            index: 0,
            segments: vec![PathSegment {
                name: "nsmgr".into(),
                id: "conn-1".into(),
                token: token.into(),
                expires: None,
                metrics: BTreeMap::new(),
            }],
        }
    }

    fn establish(expires_at: DateTime<Utc>) -> Command {
        let ip = IpContext {
            src_ip_addrs: vec!["172.16.0.1/32".into()],
            dst_ip_addrs: vec!["172.16.0.2/32".into()],
            ..IpContext::default()
        };
        Command::Establish {
            endpoint: EndpointRef {
                name: "nse-1".into(),
                url: "tcp://10.0.0.1:5001".into(),
            },
            payload: Payload::Ip,
            mechanism: kernel(),
            context: ConnectionContext {
                ip,
                ..ConnectionContext::default()
            },
            path: path("a"),
            expires_at,
        }
    }

    fn work(operation: &str) -> DataplaneWork {
        DataplaneWork {
            dataplane: "kernel".into(),
            dry_run: false,
            operations: vec![operation.into()],
        }
    }

    fn plumb() -> Command {
        Command::RecordPlumbing {
            work: work("veth nsm-1 created"),
            client_mechanism: kernel(),
            endpoint_mechanism: kernel(),
        }
    }

    fn unplumb() -> Command {
        Command::RecordUnplumbing {
            work: work("veth nsm-1 removed"),
        }
    }

    fn spec(url: &str) -> EndpointSpec {
        EndpointSpec {
            name: EndpointName::new("nse-1").unwrap(),
            url: EndpointUrl::new(url).unwrap(),
            services: vec![ServiceName::new("web").unwrap()],
            labels: BTreeMap::new(),
        }
    }

    /// vWire 1 is closed, 2 fails, 3 expires live, 4 expires during downtime, 5 heals after a
    /// probe failure and is closed; a service and an endpoint come and go; reconcile reports.
    fn history() -> Log {
        let mut log = Log::default();
        for n in 1..=5 {
            log.vwire(n, &[request()], t(0));
        }
        log.vwire(1, &[plumb(), establish(t(11))], t(1));
        log.vwire(
            1,
            &[Command::Refresh {
                expires_at: t(15),
                path: Some(path("b")),
            }],
            t(5),
        );
        let bye = Command::Close {
            by: ClosedBy::Client,
            reason: "bye".into(),
        };
        log.vwire(1, &[unplumb(), bye], t(8));
        let fail = Command::Fail {
            stage: FailureStage::Discovery,
            code: FailureCode::NotFound,
            reason: "no endpoint serves web".into(),
        };
        log.vwire(2, &[fail], t(1));
        log.vwire(3, &[plumb(), establish(t(11))], t(1));
        let expire = |during_downtime| Command::Expire { during_downtime };
        log.vwire(3, &[unplumb(), expire(false)], t(11));
        log.vwire(4, &[establish(t(11))], t(1));
        log.vwire(4, &[expire(true)], t(30));
        log.vwire(5, &[plumb(), establish(t(11))], t(1));
        let probe = Command::RecordProbeFailure {
            probe: "ICMP 172.16.0.1 → 172.16.0.2 on nsm-1".into(),
            reason: "no reply to 4 echoes within 1s".into(),
        };
        let heal = Command::Heal {
            repairs: vec!["re-created veth nsm-1".into()],
        };
        log.vwire(5, &[probe, plumb(), heal], t(2));
        let close = Command::Close {
            by: ClosedBy::Operator,
            reason: String::new(),
        };
        log.vwire(5, &[unplumb(), close], t(3));

        let mut web = NetworkService {
            name: ServiceName::new("web").unwrap(),
            payload: Payload::Ip,
            matches: vec![],
        };
        log.service(&web, true, t(0));
        log.service(&web, true, t(1)); // unchanged: records nothing
        web.payload = Payload::Ethernet;
        log.service(&web, true, t(2));
        log.service(&web, false, t(3));

        let at_40s = t(0) + TimeDelta::seconds(40);
        let tcp = "tcp://10.0.0.1:5001";
        log.endpoint(Nse::Register(tcp, None), t(0));
        log.endpoint(Nse::Register(tcp, None), at_40s); // refreshed
        log.endpoint(Nse::Register("unix:///run/nse.sock", None), t(1)); // registered anew
        log.endpoint(Nse::Unregister, t(2));
        log.endpoint(Nse::Register(tcp, Some(5)), t(4));
        log.endpoint(Nse::Expire, t(5));

        let reconciled = dataplane::DataplaneEvent::Reconciled(Reconciled {
            at: t(0),
            dataplane: "kernel".into(),
            checked: 0,
            whole: 0,
            healed: 0,
            failed: 0,
            orphans_removed: 0,
            took_ms: 3,
        });
        let new = reconciled.to_new_event(Causation::default()).unwrap();
        log.record(&dataplane::stream("node-1").unwrap(), new, t(0));
        log
    }

    /// Feeds `events`, checking from index `from` on; every divergence reported.
    fn simulate(events: &[RecordedEvent], from: usize) -> (Simulation, Vec<Divergence>) {
        let mut simulation = Simulation::new();
        let found = events
            .iter()
            .enumerate()
            .filter_map(|(i, e)| simulation.feed(e, i >= from))
            .collect();
        (simulation, found)
    }

    fn tamper(event: &mut RecordedEvent, change: impl FnOnce(&mut Value)) {
        let mut payload: Value = serde_json::from_str(&event.payload).unwrap();
        change(&mut payload);
        event.payload = payload.to_string();
    }

    fn only(found: Vec<Divergence>) -> Divergence {
        assert_eq!(found.len(), 1, "{found:#?}");
        found.into_iter().next().unwrap()
    }

    #[test]
    fn a_log_the_runtime_wrote_replays_without_divergence() {
        let log = history();
        let (simulation, found) = simulate(&log.events, 0);
        assert_eq!(found, vec![]);
        let all = log.events.len() as u64;
        assert_eq!(simulation.skipped(), 1, "the reconcile record");
        assert_eq!(simulation.checked(), all - 1);
        let types: Vec<_> = log.events.iter().map(|e| e.event_type.as_str()).collect();
        // Every kind the runtime writes, but for OrphansRemoved: this history leaves no orphan.
        let not_in_history = ["OrphansRemoved"];
        for &(kind, _) in crate::upcast::SCHEMAS {
            if !not_in_history.contains(&kind) {
                assert!(types.contains(&kind), "the history lacks {kind}");
            }
        }
    }

    #[test]
    fn an_expiry_before_the_deadline_is_refused() {
        let mut log = history();
        let i = log.find(4, "Expired");
        tamper(&mut log.events[i], |p| p["at"] = json!(t(5)));
        let found = only(simulate(&log.events, 0).1);
        assert_eq!(found.kind, DivergenceKind::Refused);
        assert_eq!(found.position, log.events[i].position);
        assert_eq!(found.stream, wire(4).stream());
        assert_eq!(found.event_type, "Expired");
        assert!(
            found.detail.starts_with("the runtime refuses Expire: "),
            "{}",
            found.detail
        );
        assert!(found.detail.contains("has not passed"), "{}", found.detail);
        assert_eq!(found.recorded["at"], json!(t(5)));
        assert_eq!(found.decided, None);
    }

    #[test]
    fn an_expiry_with_another_deadline_is_different() {
        let mut log = history();
        let i = log.find(3, "Expired");
        tamper(&mut log.events[i], |p| p["deadline"] = json!(t(20)));
        let found = only(simulate(&log.events, 0).1);
        assert_eq!(found.kind, DivergenceKind::Different);
        assert_eq!(found.position, log.events[i].position);
        assert_eq!(found.recorded["deadline"], json!(t(20)));
        let decided = found.decided.as_ref().unwrap();
        assert_eq!(decided["deadline"], json!(t(11)));
        let expected = format!(
            "the runtime decides Expired{{deadline: {}}} where the log has Expired{{deadline: {}}}",
            json!(t(11)),
            json!(t(20))
        );
        assert_eq!(found.detail, expected);
    }

    #[test]
    fn a_refresh_of_a_closed_vwire_is_refused() {
        let mut log = history();
        let mut refresh = log.events[log.find(1, "Refreshed")].clone();
        tamper(&mut refresh, |p| p["at"] = json!(t(9)));
        refresh.version = log.versions[&wire(1).stream()] + 1;
        refresh.position = Position(log.events.len() as u64 + 1);
        log.events.push(refresh);
        let found = only(simulate(&log.events, 0).1);
        assert_eq!(found.kind, DivergenceKind::Refused);
        assert_eq!(found.position, log.events.last().unwrap().position);
        assert_eq!(
            found.detail,
            "the runtime refuses Refresh: the vWire is closed; request a new one; later events \
             are judged against the state before it"
        );
    }

    #[test]
    fn a_version_gap_is_out_of_order() {
        let mut log = history();
        let gone = log.find(1, "Refreshed");
        log.events.remove(gone);
        let found = only(simulate(&log.events, 0).1);
        assert_eq!(found.kind, DivergenceKind::OutOfOrder);
        assert_eq!(
            found.position, log.events[gone].position,
            "the event after the gap"
        );
        assert_eq!(found.event_type, "DataplaneUnplumbed");
        assert_eq!(found.version, 5);
        assert_eq!(found.detail, "version 5 follows version 3; 4 was expected");
    }

    #[test]
    fn a_payload_that_does_not_decode_is_undecodable() {
        let mut log = history();
        let i = log.find(2, "Failed");
        log.events[i].payload = "{not json".into();
        let found = only(simulate(&log.events, 0).1);
        assert_eq!(found.kind, DivergenceKind::Undecodable);
        assert_eq!(found.position, log.events[i].position);
        assert_eq!(found.recorded, json!("{not json"));
    }

    #[test]
    fn an_old_schema_version_is_judged_after_upcasting() {
        let mut log = history();
        let i = log.find(2, "Failed");
        let v1 = json!({"at": t(1), "reason": "no endpoint serves web"});
        log.events[i].schema_version = 1;
        log.events[i].payload = v1.to_string();
        // The runtime that wrote v1 did not say the stage; the upcast one is re-decided as is.
        assert_eq!(simulate(&log.events, 0).1, vec![]);
        // Once more, on the failed vWire: refused, and shown as read (upcast).
        let mut again = log.events[i].clone();
        again.version += 1;
        again.position = Position(log.events.len() as u64 + 1);
        log.events.push(again);
        let found = only(simulate(&log.events, 0).1);
        assert_eq!(found.kind, DivergenceKind::Refused);
        assert_eq!(found.recorded["stage"], json!("unknown"));
        assert_eq!(found.recorded["code"], json!("unknown"));
    }

    #[test]
    fn an_unchecked_prefix_is_folded_and_later_events_are_judged() {
        let mut log = history();
        // Tampered before `--from`: not reported. Tampered after: reported, judged against
        // the state the unchecked prefix folded.
        let early = log.find(3, "Expired");
        tamper(&mut log.events[early], |p| p["deadline"] = json!(t(20)));
        let late = log.find(4, "Expired");
        tamper(&mut log.events[late], |p| p["at"] = json!(t(5)));
        let from = log.find(4, "Established") + 1;
        assert!(early < from && from <= late);
        let (simulation, found) = simulate(&log.events, from);
        let found = only(found);
        assert_eq!(found.kind, DivergenceKind::Refused);
        assert_eq!(found.position, log.events[late].position);
        let fed = (log.events.len() - from) as u64;
        assert_eq!(simulation.checked() + simulation.skipped(), fed);
        // And a clean log checked from anywhere stays clean.
        let log = history();
        for from in 0..log.events.len() {
            assert_eq!(simulate(&log.events, from).1, vec![], "from {from}");
        }
    }

    #[test]
    fn an_endpoint_expiry_before_its_deadline_decides_nothing() {
        let mut log = history();
        let i = log
            .events
            .iter()
            .position(|e| e.event_type == "EndpointExpired")
            .unwrap();
        tamper(&mut log.events[i], |p| p["at"] = json!(t(4)));
        let found = only(simulate(&log.events, 0).1);
        assert_eq!(found.kind, DivergenceKind::Different);
        assert_eq!(found.decided, None);
        assert_eq!(
            found.detail,
            "the runtime decides nothing where the log has EndpointExpired: the endpoint's \
             deadline has not passed"
        );
    }

    #[test]
    fn an_endpoint_refresh_past_the_longest_lifetime_is_refused() {
        let mut log = history();
        let i = log
            .events
            .iter()
            .position(|e| e.event_type == "EndpointRefreshed")
            .unwrap();
        // Moved past the longest lifetime: the registry refuses the deadline.
        tamper(&mut log.events[i], |p| {
            p["expires_at"] = json!(t(3 * 24 * 60))
        });
        let found = only(simulate(&log.events, 0).1);
        assert_eq!(found.kind, DivergenceKind::Refused);
        assert!(
            found
                .detail
                .starts_with("the runtime refuses to refresh the endpoint: deadline")
        );
    }

    #[test]
    fn odd_input_is_reported_or_skipped_and_never_panics() {
        let base = history().events[0].clone();
        let odd = |stream: &str, version: u64, event_type: &str, payload: &str| RecordedEvent {
            stream: StreamId::new(stream).unwrap(),
            version,
            event_type: event_type.into(),
            payload: payload.into(),
            ..base.clone()
        };
        let long = "a".repeat(253);
        let far = r#"{"at":"+262142-12-31T23:59:59Z","deadline":"+262142-12-31T23:59:59Z"}"#;
        let events = [
            odd("somewhere-else", 1, "Requested", "{}"),
            odd("vwire-not-a-uuid", 1, "Closed", "[]"),
            odd(
                &wire(9).stream().to_string(),
                1,
                "Established",
                &base.payload,
            ),
            odd(
                &wire(9).stream().to_string(),
                u64::MAX,
                "Reconciled",
                "null",
            ),
            odd(&wire(9).stream().to_string(), 0, "Expired", far),
            odd(&wire(8).stream().to_string(), 1, "Expired", far),
            odd(
                "ns-x",
                1,
                "ServiceRegistered",
                &format!(
                    r#"{{"at":"2026-11-28T12:00:00Z","service":{{"name":"{long}","payload":"IP","matches":[]}}}}"#
                ),
            ),
            odd("ns-x", 2, "ServiceUnregistered", far),
            odd("nse-y", 1, "EndpointRefreshed", far),
            odd("dataplane-n", 1, "Reconciled", "{}"),
            odd(&wire(7).stream().to_string(), 1, "FromTheFuture", "{}"),
        ];
        let (simulation, found) = simulate(&events, 0);
        assert_eq!(
            simulation.checked() + simulation.skipped(),
            events.len() as u64
        );
        assert_eq!(simulation.skipped(), 3);
        let kinds: Vec<_> = found.iter().map(|d| d.kind).collect();
        assert!(kinds.contains(&DivergenceKind::Undecodable), "{found:#?}");
        assert!(kinds.contains(&DivergenceKind::OutOfOrder), "{found:#?}");
        // A divergence serializes for `--json`.
        for divergence in &found {
            let json = serde_json::to_value(divergence).unwrap();
            assert_eq!(json["kind"], json!(divergence.kind.as_str()));
        }
    }
}
