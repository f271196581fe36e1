//! The Registry actor: the node's Network Services and Network Service Endpoints.
//!
//! One actor owns every registration (the registry is small next to the vWires, and one
//! owner makes round-robin selection and watch ordering simple). Each change is the same
//! exclusive step as a vWire's: decide (pure, `nsm_domain::registry`), append with the
//! `live_registry` change, then apply and tell watchers. Each registered endpoint has an
//! expiry timer armed from the deadline stored in its events; at start-up the actor loads
//! `live_registry`, expires what passed its deadline while the node was down and re-arms the
//! rest. If an append's outcome is unknown, the entry is re-read from the log.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use nsm_domain::registry::select::{RoundRobin, candidates};
use nsm_domain::registry::{
    EndpointEvent, EndpointName, EndpointSpec, EndpointState, NetworkService, Payload,
    ServiceEvent, ServiceState, expire_endpoint, register_endpoint, register_service,
    unregister_endpoint, unregister_service,
};
use nsm_domain::vwire::{Labels, ServiceName};
use nsm_log::StoreError;
use nsm_log::projection::registry::{Registered, decode_row, endpoint_change, service_change};
use nsm_log::store::{Causation, NewEvent, ProjectionChange, StreamId};
use tokio::sync::broadcast;

use crate::error::ActorError;
use crate::journal::Journal;

/// Changes buffered for a slow watcher before it is told it lagged.
const WATCH_BUFFER: usize = 4096;

/// How the registry runs.
#[derive(Debug, Clone)]
pub struct RegistryConfig {
    /// An endpoint's lifetime when it asks for none (NSM: 1 minute).
    pub default_endpoint_lifetime: Duration,
}

impl Default for RegistryConfig {
    fn default() -> Self {
        Self {
            default_endpoint_lifetime: Duration::from_secs(60),
        }
    }
}

/// A change watchers see (`Find` with `watch`): the entry as it is now, and whether it left.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RegistryChange {
    Service { state: ServiceState, deleted: bool },
    Endpoint { state: EndpointState, deleted: bool },
}

/// What start-up did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RegistryReport {
    pub services: usize,
    pub endpoints: usize,
    pub expired_during_downtime: usize,
}

/// The registrations as they are now, and the round robin's place: written only by the
/// actor (after each durable change), read by selection from any thread. A Request's
/// selection then costs a lock instead of a round trip through the actor's thread.
#[derive(Debug, Default)]
struct Directory {
    services: BTreeMap<ServiceName, ServiceState>,
    endpoints: BTreeMap<EndpointName, EndpointState>,
    round_robin: RoundRobin,
}

/// What selection found for a request: what its Network Service carries, and the endpoints
/// to try, the round robin's choice first.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    pub payload: Payload,
    pub endpoints: Vec<EndpointState>,
}

impl Directory {
    /// The service's payload and the endpoints to try for a request.
    fn select(
        &mut self,
        name: &ServiceName,
        labels: &Labels,
        now: DateTime<Utc>,
    ) -> Result<Selected, ActorError> {
        let service = self
            .services
            .get(name)
            .ok_or_else(|| ActorError::UnknownService(name.to_string()))?;
        let found = candidates(&service.service, labels, self.endpoints.values(), now);
        let ordered = self.round_robin.order(name.as_str(), found);
        if ordered.is_empty() {
            return Err(ActorError::NoEndpoint {
                service: name.to_string(),
                labels: labels.clone(),
            });
        }
        Ok(Selected {
            payload: service.service.payload,
            endpoints: ordered.into_iter().map(|c| c.endpoint.clone()).collect(),
        })
    }
}

type SharedDirectory = Arc<std::sync::Mutex<Directory>>;

fn lock(directory: &SharedDirectory) -> std::sync::MutexGuard<'_, Directory> {
    // A panic aborts the process (crash-only), so a poisoned lock cannot be observed.
    directory.lock().unwrap_or_else(|e| e.into_inner())
}

struct RegistryActor {
    journal: Journal,
    clock: Arc<dyn Clock>,
    config: RegistryConfig,
    directory: SharedDirectory,
    timers: HashMap<EndpointName, SpawnHandle>,
    watchers: broadcast::Sender<RegistryChange>,
}

impl RegistryActor {
    fn service(&self, name: &ServiceName) -> Option<ServiceState> {
        lock(&self.directory).services.get(name).cloned()
    }

    fn endpoint(&self, name: &EndpointName) -> Option<EndpointState> {
        lock(&self.directory).endpoints.get(name).cloned()
    }
}

impl Actor for RegistryActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(1024);
    }
}

impl RegistryActor {
    /// Appends `events` of `stream` with `change`, then runs `apply` — or, when the outcome
    /// is unknown, re-reads the entry from the log.
    fn record<T: 'static>(
        &mut self,
        stream: StreamId,
        expected: u64,
        events: Result<Vec<NewEvent>, StoreError>,
        change: Result<ProjectionChange, StoreError>,
        apply: impl FnOnce(&mut Self, &mut Context<Self>) -> T + 'static,
    ) -> ResponseActFuture<Self, Result<T, ActorError>> {
        let journal = self.journal.clone();
        let append = async move {
            let appended = match (events, change) {
                (Ok(events), Ok(change)) => {
                    journal
                        .append(stream.clone(), expected, events, change)
                        .await
                }
                (Err(e), _) | (_, Err(e)) => Err(e),
            };
            appended.map_err(|e| (stream, e))
        };
        Box::pin(append.into_actor(self).map(move |appended, act, ctx| match appended {
            Ok(_) => Ok(apply(act, ctx)),
            Err((stream, e)) => {
                if e.is_outcome_unknown() || matches!(e, StoreError::WrongExpectedVersion { .. }) {
                    tracing::warn!(%stream, error = %e, "registry entry may be behind the log; re-reading it");
                    act.reload(stream, ctx);
                }
                Err(e.into())
            }
        }))
    }

    fn reload(&mut self, stream: StreamId, ctx: &mut Context<Self>) {
        let store = self.journal.store().clone();
        let read = async move { store.read_stream(&stream, 1).await };
        ctx.wait(read.into_actor(self).map(|recorded, act, ctx| {
            let Ok(recorded) = recorded else { return };
            let endpoint_events: Vec<EndpointEvent> = recorded
                .iter()
                .filter_map(|r| EndpointEvent::decode(r).ok())
                .collect();
            if let Some(state) = endpoint_events.iter().fold(None, EndpointState::evolve) {
                act.endpoint_changed(state, ctx);
                return;
            }
            let service_events: Vec<ServiceEvent> = recorded
                .iter()
                .filter_map(|r| ServiceEvent::decode(r).ok())
                .collect();
            if let Some(state) = service_events.iter().fold(None, ServiceState::evolve) {
                act.service_changed(state);
            }
        }));
    }

    fn service_changed(&mut self, state: ServiceState) {
        let deleted = !state.registered;
        let mut directory = lock(&self.directory);
        if deleted {
            directory.services.remove(&state.service.name);
        } else {
            directory
                .services
                .insert(state.service.name.clone(), state.clone());
        }
        drop(directory);
        let _ = self
            .watchers
            .send(RegistryChange::Service { state, deleted });
    }

    fn endpoint_changed(&mut self, state: EndpointState, ctx: &mut Context<Self>) {
        let name = state.spec.name.clone();
        if let Some(timer) = self.timers.remove(&name) {
            ctx.cancel_future(timer);
        }
        let deleted = !state.is_registered();
        if deleted {
            let mut directory = lock(&self.directory);
            directory.endpoints.remove(&name);
            directory.round_robin.forget(name.as_str());
        } else {
            self.arm_timer(&state, ctx);
            lock(&self.directory).endpoints.insert(name, state.clone());
        }
        let _ = self
            .watchers
            .send(RegistryChange::Endpoint { state, deleted });
    }

    fn arm_timer(&mut self, state: &EndpointState, ctx: &mut Context<Self>) {
        let remaining = (state.registration.expiration_time - self.clock.now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        let name = state.spec.name.clone();
        let key = name.clone();
        let timer = ctx.run_later(remaining, move |act, ctx| {
            act.timers.remove(&name);
            act.expire(name, ctx);
        });
        self.timers.insert(key, timer);
    }

    fn expire(&mut self, name: EndpointName, ctx: &mut Context<Self>) {
        let state = self.endpoint(&name);
        let events = expire_endpoint(state.as_ref(), self.clock.now());
        let expiring = !events.is_empty();
        let step = self.commit(state, events, Causation::default());
        ctx.wait(step.map(move |outcome, act, ctx| match outcome {
            Ok(_) if expiring => tracing::info!(endpoint = %name, "endpoint registration expired"),
            Ok(_) => {}
            Err(e) => {
                tracing::warn!(endpoint = %name, error = %e, "expiry not recorded; retrying in 1s");
                let retry = name.clone();
                let timer = ctx.run_later(Duration::from_secs(1), move |act, ctx| {
                    act.expire(retry, ctx)
                });
                act.timers.insert(name, timer);
            }
        }));
    }
}

#[derive(Message)]
#[rtype(result = "Result<RegistryReport, ActorError>")]
struct Load;

impl Handler<Load> for RegistryActor {
    type Result = ResponseActFuture<Self, Result<RegistryReport, ActorError>>;

    fn handle(&mut self, _: Load, _: &mut Context<Self>) -> Self::Result {
        let store = self.journal.store().clone();
        let rows = async move { store.registration_rows().await };
        Box::pin(rows.into_actor(self).map(|rows, act, ctx| {
            let mut report = RegistryReport::default();
            for row in rows? {
                match decode_row(&row)? {
                    Registered::Service(state) => {
                        report.services += 1;
                        let name = state.service.name.clone();
                        lock(&act.directory).services.insert(name, state);
                    }
                    Registered::Endpoint(state) => {
                        report.endpoints += 1;
                        if state.registration.expiration_time <= act.clock.now() {
                            report.expired_during_downtime += 1;
                        }
                        // Expired ones fire at once, through the same path as a live expiry.
                        act.arm_timer(&state, ctx);
                        let name = state.spec.name.clone();
                        lock(&act.directory).endpoints.insert(name, state);
                    }
                }
            }
            Ok(report)
        }))
    }
}

/// A registry entry: what the actor needs to record a decision about it.
trait Entry: Clone + Unpin + 'static {
    type Event;
    fn evolve(state: Option<Self>, event: &Self::Event) -> Option<Self>;
    fn encode(event: &Self::Event, causation: Causation) -> Result<NewEvent, StoreError>;
    fn change(&self) -> Result<ProjectionChange, StoreError>;
    fn version(&self) -> u64;
    fn stream(&self) -> StreamId;
    /// Puts the new state in place and tells watchers.
    fn install(self, actor: &mut RegistryActor, ctx: &mut Context<RegistryActor>);
}

impl Entry for ServiceState {
    type Event = ServiceEvent;
    fn evolve(state: Option<Self>, event: &ServiceEvent) -> Option<Self> {
        ServiceState::evolve(state, event)
    }
    fn encode(event: &ServiceEvent, causation: Causation) -> Result<NewEvent, StoreError> {
        Ok(event.to_new_event(causation)?)
    }
    fn change(&self) -> Result<ProjectionChange, StoreError> {
        service_change(self)
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn stream(&self) -> StreamId {
        self.service.stream()
    }
    fn install(self, actor: &mut RegistryActor, _: &mut Context<RegistryActor>) {
        actor.service_changed(self);
    }
}

impl Entry for EndpointState {
    type Event = EndpointEvent;
    fn evolve(state: Option<Self>, event: &EndpointEvent) -> Option<Self> {
        EndpointState::evolve(state, event)
    }
    fn encode(event: &EndpointEvent, causation: Causation) -> Result<NewEvent, StoreError> {
        Ok(event.to_new_event(causation)?)
    }
    fn change(&self) -> Result<ProjectionChange, StoreError> {
        endpoint_change(self)
    }
    fn version(&self) -> u64 {
        self.version
    }
    fn stream(&self) -> StreamId {
        self.spec.name.stream()
    }
    fn install(self, actor: &mut RegistryActor, ctx: &mut Context<RegistryActor>) {
        actor.endpoint_changed(self, ctx);
    }
}

impl RegistryActor {
    /// Records what a decision produced about an entry and installs the result; resolves to
    /// the entry's state after it (unchanged when the decision produced nothing).
    fn commit<S: Entry>(
        &mut self,
        state: Option<S>,
        events: Vec<S::Event>,
        causation: Causation,
    ) -> ResponseActFuture<Self, Result<Option<S>, ActorError>> {
        let next = events.iter().fold(state.clone(), S::evolve);
        let Some(next) = next.filter(|_| !events.is_empty()) else {
            return Box::pin(fut::ready(Ok(state)));
        };
        let expected = state.map_or(0, |s| s.version());
        let encoded = events
            .iter()
            .map(|e| S::encode(e, causation.clone()))
            .collect();
        self.record(
            next.stream(),
            expected,
            encoded,
            next.change(),
            move |act, ctx| {
                next.clone().install(act, ctx);
                Some(next)
            },
        )
    }
}

fn refused<T: 'static>(error: ActorError) -> AtomicResponse<RegistryActor, Result<T, ActorError>> {
    AtomicResponse::new(Box::pin(fut::ready(Err(error))))
}

/// Asks to register (or re-register) a Network Service.
#[derive(Message)]
#[rtype(result = "Result<ServiceState, ActorError>")]
struct RegisterService(NetworkService, Causation);

impl Handler<RegisterService> for RegistryActor {
    type Result = AtomicResponse<Self, Result<ServiceState, ActorError>>;

    fn handle(&mut self, msg: RegisterService, _: &mut Context<Self>) -> Self::Result {
        let RegisterService(service, causation) = msg;
        let state = self.service(&service.name);
        let events = match register_service(state.as_ref(), &service, self.clock.now()) {
            Ok(events) => events,
            Err(e) => return refused(e.into()),
        };
        let step = self.commit(state, events, causation);
        AtomicResponse::new(Box::pin(
            step.map(|done, _, _| done?.ok_or(ActorError::Stopped)),
        ))
    }
}

/// Asks to unregister a Network Service (nothing to do if it is not registered).
#[derive(Message)]
#[rtype(result = "Result<(), ActorError>")]
struct UnregisterService(ServiceName, Causation);

impl Handler<UnregisterService> for RegistryActor {
    type Result = AtomicResponse<Self, Result<(), ActorError>>;

    fn handle(&mut self, msg: UnregisterService, _: &mut Context<Self>) -> Self::Result {
        let UnregisterService(name, causation) = msg;
        let state = self.service(&name);
        let events = unregister_service(state.as_ref(), self.clock.now());
        let step = self.commit(state, events, causation);
        AtomicResponse::new(Box::pin(step.map(|done, _, _| done.map(drop))))
    }
}

/// Asks to register (or refresh) an endpoint, optionally until a given time.
#[derive(Message)]
#[rtype(result = "Result<EndpointState, ActorError>")]
struct RegisterEndpoint(EndpointSpec, Option<DateTime<Utc>>, Causation);

impl Handler<RegisterEndpoint> for RegistryActor {
    type Result = AtomicResponse<Self, Result<EndpointState, ActorError>>;

    fn handle(&mut self, msg: RegisterEndpoint, _: &mut Context<Self>) -> Self::Result {
        let RegisterEndpoint(spec, until, causation) = msg;
        let state = self.endpoint(&spec.name);
        let lifetime = chrono::Duration::from_std(self.config.default_endpoint_lifetime)
            .unwrap_or(chrono::Duration::MAX);
        let now = self.clock.now();
        let events = match register_endpoint(state.as_ref(), &spec, until, lifetime, now) {
            Ok(events) => events,
            Err(e) => return refused(e.into()),
        };
        let step = self.commit(state, events, causation);
        AtomicResponse::new(Box::pin(
            step.map(|done, _, _| done?.ok_or(ActorError::Stopped)),
        ))
    }
}

/// Asks to unregister an endpoint (nothing to do if it is not registered).
#[derive(Message)]
#[rtype(result = "Result<(), ActorError>")]
struct UnregisterEndpoint(EndpointName, Causation);

impl Handler<UnregisterEndpoint> for RegistryActor {
    type Result = AtomicResponse<Self, Result<(), ActorError>>;

    fn handle(&mut self, msg: UnregisterEndpoint, _: &mut Context<Self>) -> Self::Result {
        let UnregisterEndpoint(name, causation) = msg;
        let state = self.endpoint(&name);
        let events = unregister_endpoint(state.as_ref(), self.clock.now());
        let step = self.commit(state, events, causation);
        AtomicResponse::new(Box::pin(step.map(|done, _, _| done.map(drop))))
    }
}

/// Asks for every registration, and a receiver of the changes after them (no gap between).
#[derive(Message)]
#[rtype(result = "(Vec<ServiceState>, Vec<EndpointState>, broadcast::Receiver<RegistryChange>)")]
struct Snapshot;

impl Handler<Snapshot> for RegistryActor {
    type Result = MessageResult<Snapshot>;

    fn handle(&mut self, _: Snapshot, _: &mut Context<Self>) -> Self::Result {
        let directory = lock(&self.directory);
        let services = directory.services.values().cloned().collect();
        let endpoints = directory.endpoints.values().cloned().collect();
        MessageResult((services, endpoints, self.watchers.subscribe()))
    }
}

/// A handle to the node's registry.
#[derive(Debug, Clone)]
pub struct RegistryHandle {
    addr: Addr<RegistryActor>,
    directory: SharedDirectory,
    clock: Arc<dyn Clock>,
}

impl RegistryHandle {
    /// Starts the registry on the current actix System and loads it from `live_registry`;
    /// endpoints whose deadline passed while the node was down expire at once.
    pub async fn start(
        config: RegistryConfig,
        journal: Journal,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, RegistryReport), ActorError> {
        let (watchers, _) = broadcast::channel(WATCH_BUFFER);
        let directory = SharedDirectory::default();
        let actor = RegistryActor {
            journal,
            clock: clock.clone(),
            config,
            directory: directory.clone(),
            timers: HashMap::new(),
            watchers,
        };
        let handle = Self {
            addr: actor.start(),
            directory,
            clock,
        };
        let report = handle.addr.send(Load).await??;
        Ok((handle, report))
    }

    pub async fn register_service(
        &self,
        service: NetworkService,
        causation: Causation,
    ) -> Result<ServiceState, ActorError> {
        self.addr.send(RegisterService(service, causation)).await?
    }

    pub async fn unregister_service(
        &self,
        name: ServiceName,
        causation: Causation,
    ) -> Result<(), ActorError> {
        self.addr.send(UnregisterService(name, causation)).await?
    }

    /// Registers or refreshes an endpoint until `until` (default: the configured lifetime).
    pub async fn register_endpoint(
        &self,
        spec: EndpointSpec,
        until: Option<DateTime<Utc>>,
        causation: Causation,
    ) -> Result<EndpointState, ActorError> {
        self.addr
            .send(RegisterEndpoint(spec, until, causation))
            .await?
    }

    pub async fn unregister_endpoint(
        &self,
        name: EndpointName,
        causation: Causation,
    ) -> Result<(), ActorError> {
        self.addr.send(UnregisterEndpoint(name, causation)).await?
    }

    /// Every registration now, and the changes after it.
    pub async fn snapshot(
        &self,
    ) -> Result<
        (
            Vec<ServiceState>,
            Vec<EndpointState>,
            broadcast::Receiver<RegistryChange>,
        ),
        ActorError,
    > {
        Ok(self.addr.send(Snapshot).await?)
    }

    /// The service's payload and the endpoints to try for a request, the round robin's
    /// choice first.
    pub async fn select(
        &self,
        service: ServiceName,
        labels: Labels,
    ) -> Result<Selected, ActorError> {
        lock(&self.directory).select(&service, &labels, self.clock.now())
    }
}
