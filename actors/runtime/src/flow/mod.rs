//! The vWire's conversations with the mesh, each run as one exclusive step of its actor:
//! connect (discover, forward to an endpoint, plumb, establish), refresh (forward, move the
//! deadline) and teardown (tell the endpoint, unplumb, record the end).
//!
//! Ordering (DESIGN.md §3): the first endpoint is asked while `Requested` commits (a side
//! effect may overlap the commit of its intent); the reply waits for both, and a failed
//! commit tells the endpoint to close. A SIGKILL in that window leaves the endpoint holding
//! a connection the log does not know: it expires it itself, as NSM endpoints expire every
//! connection not refreshed. The data plane is plumbed before `Established` and unplumbed
//! before the terminal event, so a crash in between leaves objects that reconcile removes (no
//! live vWire owns them) or re-creates (a live one does). Refusals found before `Requested`
//! record nothing.

use std::sync::Arc;

use crate::clock::Clock;
use chrono::{DateTime, Utc};
use nsm_domain::registry::Payload;
use nsm_domain::vwire::{
    Command, ConnectionContext, EndpointRef, FailureCode, FailureStage, HopConnection, HopReply,
    HopRequest, LifecycleError, Mechanism, Path, Plumbing, Side, Status, VWire, VWireEvent,
    VWireId, decide_all,
};
use nsm_log::store::Causation;

use crate::error::ActorError;
use crate::journal::Journal;
use crate::mesh::{ConnectRequest, Mesh};
use crate::next_hop::NextHopError;
use nsm_dataplane::{DataplaneError, End, PlumbRequest};

mod heal;
pub(crate) use heal::Reconciliation;

/// Decides and records commands for one vWire; the only way a flow changes state.
#[derive(Debug, Clone)]
pub(crate) struct Recorder {
    pub(crate) id: VWireId,
    pub(crate) journal: Journal,
    pub(crate) clock: Arc<dyn Clock>,
}

impl Recorder {
    /// Decides `commands` as one step, appends their events in one append, and — once
    /// durable — moves `state` on. On any error `state` is left as it was.
    pub(crate) async fn run(
        &self,
        state: &mut Option<VWire>,
        commands: &[Command],
        causation: &Causation,
    ) -> Result<VWire, ActorError> {
        let (events, next) = self.decide(state, commands)?;
        self.commit(state, &events, &next, causation).await?;
        Ok(next)
    }

    /// The events `commands` make now, and the state they lead to; records nothing.
    pub(crate) fn decide(
        &self,
        state: &Option<VWire>,
        commands: &[Command],
    ) -> Result<(Vec<VWireEvent>, VWire), ActorError> {
        Ok(decide_all(
            state.as_ref(),
            self.id,
            commands,
            self.clock.now(),
        )?)
    }

    /// Appends decided `events`, then moves `state` on to `next`.
    pub(crate) async fn commit(
        &self,
        state: &mut Option<VWire>,
        events: &[VWireEvent],
        next: &VWire,
        causation: &Causation,
    ) -> Result<(), ActorError> {
        let expected = state.as_ref().map_or(0, |s| s.version);
        self.journal
            .record(next, expected, events, causation)
            .await?;
        *state = Some(next.clone());
        Ok(())
    }

    /// Whether `commands` would be allowed now, without recording anything.
    pub(crate) fn check(
        &self,
        state: &Option<VWire>,
        commands: &[Command],
    ) -> Result<(), ActorError> {
        self.decide(state, commands).map(drop)
    }
}

/// One flow of one vWire.
#[derive(Debug, Clone)]
pub(crate) struct Flow {
    pub(crate) recorder: Recorder,
    pub(crate) mesh: Option<Arc<Mesh>>,
    pub(crate) causation: Causation,
}

/// An endpoint's answer, validated.
struct Accepted {
    mechanism: Mechanism,
    context: ConnectionContext,
    path: Path,
}

/// What a new vWire can be connected with, found before anything is recorded.
struct Selection {
    /// The client's end, completed by the data plane.
    client_mechanism: Mechanism,
    /// What the service carries, which decides how the data plane joins the ends.
    payload: Payload,
    /// The endpoints that may serve it, best first.
    candidates: Vec<EndpointRef>,
}

/// A recorded `Requested` and the endpoint that accepted it.
struct Answered {
    requested: VWire,
    endpoint: EndpointRef,
    accepted: Accepted,
}

impl Flow {
    fn mesh(&self) -> Result<&Arc<Mesh>, ActorError> {
        self.mesh.as_ref().ok_or(ActorError::NoMesh)
    }

    /// A client's Request: establishes a new vWire or refreshes an established one.
    pub(crate) async fn connect(
        &self,
        state: &mut Option<VWire>,
        request: ConnectRequest,
    ) -> Result<VWire, ActorError> {
        match state.as_ref().map(|s| s.status) {
            None => self.establish(state, request).await,
            Some(Status::Established) => self.refresh(state, request).await,
            Some(status) if status.is_terminal() => Err(LifecycleError::Terminal { status }.into()),
            Some(status) => Err(LifecycleError::NotEstablished { status }.into()),
        }
    }

    /// A new vWire, in three steps, each with its undo in view: select (refusals that record
    /// nothing), commit `Requested` while asking the endpoints, plumb and establish.
    async fn establish(
        &self,
        state: &mut Option<VWire>,
        request: ConnectRequest,
    ) -> Result<VWire, ActorError> {
        let mesh = self.mesh()?;
        let selection = self.select(mesh, &request).await?;
        let answered = self
            .commit_while_asking(state, mesh, &request, &selection)
            .await?;
        self.plumb_and_establish(state, mesh, selection, answered)
            .await
    }

    /// The client's end and the candidate endpoints. Refusals here record nothing: a
    /// mechanism the data plane cannot attach, an unknown service. Nothing to undo.
    async fn select(&self, mesh: &Mesh, request: &ConnectRequest) -> Result<Selection, ActorError> {
        let wanted = &request.request;
        let client_mechanism = mesh.forwarder.choose(&wanted.mechanism_preferences)?;
        let client_mechanism =
            mesh.forwarder
                .complete(self.recorder.id, End::Client, client_mechanism);
        let selected = mesh
            .registry
            .select(wanted.service.clone(), wanted.labels.clone())
            .await?;
        let candidates = selected
            .endpoints
            .iter()
            .map(|endpoint| EndpointRef {
                name: endpoint.spec.name.to_string(),
                url: endpoint.spec.url.to_string(),
            })
            .collect();
        Ok(Selection {
            client_mechanism,
            payload: selected.payload,
            candidates,
        })
    }

    /// Records `Requested` while the first candidate is asked (DESIGN.md §3 lets a side
    /// effect overlap the commit of its intent: a setup costs one commit less in latency),
    /// then asks the others in turn until one accepts.
    ///
    /// Undo: a failed commit tells an endpoint that accepted to close; when every endpoint
    /// fails, the vWire is recorded `Failed` at stage endpoint.
    async fn commit_while_asking(
        &self,
        state: &mut Option<VWire>,
        mesh: &Mesh,
        request: &ConnectRequest,
        selection: &Selection,
    ) -> Result<Answered, ActorError> {
        let wanted = &request.request;
        let command = Command::Request(wanted.clone());
        let (events, requested) = self.recorder.decide(state, &[command])?;
        let mut path = requested.path.clone();
        set_own_expiry(&mut path, requested.expires_at);
        let asked = &requested;
        let ask = |endpoint: EndpointRef| {
            let preferences = endpoint_preferences(mesh, &selection.client_mechanism);
            let forwarded = forward(
                asked,
                &path,
                &endpoint,
                None,
                selection.payload,
                preferences,
                request,
            );
            async move { self.ask(mesh, &endpoint, forwarded, asked).await }
        };
        let mut candidates = selection.candidates.iter().cloned();
        let mut endpoint = candidates.next().ok_or_else(|| ActorError::NoEndpoint {
            service: wanted.service.to_string(),
            labels: wanted.labels.clone(),
        })?;
        let commit = self
            .recorder
            .commit(state, &events, &requested, &self.causation);
        let (committed, mut answer) = tokio::join!(commit, ask(endpoint.clone()));
        if let Err(e) = committed {
            if let Ok(accepted) = &answer {
                self.tell_endpoint_close(mesh, &endpoint, &requested, accepted)
                    .await;
            }
            return Err(e);
        }
        let mut failures = Vec::new();
        loop {
            match answer {
                Ok(accepted) => {
                    return Ok(Answered {
                        requested,
                        endpoint,
                        accepted,
                    });
                }
                Err(why) => {
                    tracing::warn!(endpoint = %endpoint.name, reason = %why, "endpoint refused; trying the next");
                    failures.push(format!("{}: {why}", endpoint.name));
                }
            }
            let Some(next) = candidates.next() else {
                break;
            };
            endpoint = next;
            answer = ask(endpoint.clone()).await;
        }
        let error = ActorError::EndpointsFailed {
            service: wanted.service.to_string(),
            failures,
        };
        tracing::warn!(vwire = %requested.id, error = %error, "vWire failed");
        self.fail(
            state,
            FailureStage::Endpoint,
            FailureCode::Unavailable,
            &error,
        )
        .await?;
        Err(error)
    }

    /// Plumbs the two ends, then records the plumbing with `Established` in one append.
    ///
    /// Undo: a failed plumb tells the endpoint to close and records `Failed` at stage data
    /// plane; a failed append that surely did not commit unplumbs and tells the endpoint to
    /// close (one that may have committed is left for replay and reconcile to settle).
    async fn plumb_and_establish(
        &self,
        state: &mut Option<VWire>,
        mesh: &Mesh,
        selection: Selection,
        answered: Answered,
    ) -> Result<VWire, ActorError> {
        let Selection {
            client_mechanism,
            payload,
            ..
        } = selection;
        let Answered {
            requested,
            endpoint,
            mut accepted,
        } = answered;
        accepted.mechanism =
            mesh.forwarder
                .complete(requested.id, End::Endpoint, accepted.mechanism);
        let plumb = PlumbRequest {
            vwire: requested.id,
            payload,
            client: client_mechanism.clone(),
            endpoint: accepted.mechanism.clone(),
            context: accepted.context.clone(),
        };
        let work = match mesh.forwarder.plumb(plumb).await {
            Ok(work) => work,
            Err(e) => {
                self.tell_endpoint_close(mesh, &endpoint, &requested, &accepted)
                    .await;
                self.fail(state, FailureStage::Dataplane, failure_code(&e), &e)
                    .await?;
                return Err(e);
            }
        };
        let plumbing = Plumbing {
            dataplane: work.dataplane.clone(),
            dry_run: work.dry_run,
            client_mechanism: client_mechanism.clone(),
            endpoint_mechanism: accepted.mechanism.clone(),
            plumbed_at: self.recorder.clock.now(),
        };
        let commands = [
            Command::RecordPlumbing {
                work,
                client_mechanism: client_mechanism.clone(),
                endpoint_mechanism: accepted.mechanism.clone(),
            },
            Command::Establish {
                endpoint: endpoint.clone(),
                payload,
                mechanism: client_mechanism,
                context: accepted.context.clone(),
                path: accepted.path.clone(),
                expires_at: requested.expires_at,
            },
        ];
        match self.recorder.run(state, &commands, &self.causation).await {
            Ok(established) => {
                tracing::info!(
                    vwire = %established.id,
                    service = %established.service,
                    endpoint = %endpoint.name,
                    expires_at = %established.expires_at,
                    "vWire established"
                );
                Ok(established)
            }
            Err(e) => {
                if !e.may_have_committed() {
                    // Nothing records the vWire as established: undo what was done for it.
                    self.undo_plumbing(mesh, &requested, &plumbing).await;
                    self.tell_endpoint_close(mesh, &endpoint, &requested, &accepted)
                        .await;
                }
                Err(e)
            }
        }
    }

    async fn refresh(
        &self,
        state: &mut Option<VWire>,
        request: ConnectRequest,
    ) -> Result<VWire, ActorError> {
        let mesh = self.mesh()?;
        let current = state.clone().ok_or(LifecycleError::NotFound)?;
        let (Some(connection), Some(plumbing)) = (&current.connection, &current.plumbing) else {
            return Err(LifecycleError::NotEstablished {
                status: current.status,
            }
            .into());
        };
        let lifetime = chrono::Duration::from_std(request.request.lifetime)
            .map_err(|_| LifecycleError::Invalid("lifetime is too long".into()))?;
        let expires_at = self.recorder.clock.now() + lifetime;
        let expires_at = micros(expires_at);
        self.recorder.check(
            state,
            &[Command::Refresh {
                expires_at,
                path: None,
            }],
        )?;
        let mut path = request.request.path.clone();
        set_own_expiry(&mut path, expires_at);
        let preferences = vec![plumbing.endpoint_mechanism.clone()];
        let forwarded = forward(
            &current,
            &path,
            &connection.endpoint,
            Some(&plumbing.endpoint_mechanism),
            connection.payload,
            preferences,
            &request,
        );
        let accepted = self
            .ask(mesh, &connection.endpoint, forwarded, &current)
            .await
            .map_err(|refusal| ActorError::EndpointRefused {
                endpoint: connection.endpoint.name.clone(),
                refusal,
            })?;
        let command = Command::Refresh {
            expires_at,
            path: Some(accepted.path),
        };
        let refreshed = self
            .recorder
            .run(state, &[command], &self.causation)
            .await?;
        tracing::debug!(vwire = %refreshed.id, %expires_at, "vWire refreshed");
        Ok(refreshed)
    }

    /// Ends a live vWire with `end` (Close, Expire or Fail): tells the endpoint, unplumbs,
    /// and records the unplumbing with the end in one append.
    pub(crate) async fn teardown(
        &self,
        state: &mut Option<VWire>,
        end: Command,
    ) -> Result<VWire, ActorError> {
        self.end_with(state, Vec::new(), end).await
    }

    /// [`Self::teardown`], recording `leading` (a probe failure, say) first in the same
    /// append.
    async fn end_with(
        &self,
        state: &mut Option<VWire>,
        leading: Vec<Command>,
        end: Command,
    ) -> Result<VWire, ActorError> {
        let mut commands = leading;
        // Refuse before any side effect (a stale expiry timer, a Close of a closed vWire).
        self.recorder.check(
            state,
            &[commands.as_slice(), std::slice::from_ref(&end)].concat(),
        )?;
        let current = state.clone().ok_or(LifecycleError::NotFound)?;
        if let Some(mesh) = &self.mesh {
            if let Some(connection) = &current.connection {
                let told = HopConnection::of(&current, Side::Endpoint);
                let url = &connection.endpoint.url;
                if let Err(status) = mesh.next_hop.close(url, told, mesh.request_timeout).await {
                    tracing::warn!(endpoint = %connection.endpoint.name, error = %status, "endpoint not told of the end; it will expire the connection itself");
                }
            }
            if let Some(plumbing) = &current.plumbing {
                match mesh.forwarder.unplumb(current.id, plumbing).await {
                    Ok(work) => commands.push(Command::RecordUnplumbing { work }),
                    Err(e) => {
                        tracing::error!(vwire = %current.id, error = %e, "data plane not cleaned; reconcile will remove what no live vWire owns")
                    }
                }
            }
        }
        commands.push(end);
        let ended = self.recorder.run(state, &commands, &self.causation).await?;
        tracing::info!(vwire = %ended.id, status = %ended.status, "vWire ended");
        Ok(ended)
    }

    async fn fail(
        &self,
        state: &mut Option<VWire>,
        stage: FailureStage,
        code: FailureCode,
        error: &ActorError,
    ) -> Result<VWire, ActorError> {
        let command = Command::Fail {
            stage,
            code,
            reason: error.to_string(),
        };
        self.recorder.run(state, &[command], &self.causation).await
    }

    /// Forwards a Request to one endpoint and validates its answer; the reason otherwise.
    async fn ask(
        &self,
        mesh: &Mesh,
        endpoint: &EndpointRef,
        request: HopRequest,
        vwire: &VWire,
    ) -> Result<Accepted, NextHopError> {
        let reply = mesh
            .next_hop
            .request(&endpoint.url, request, mesh.request_timeout)
            .await?;
        accept(reply, vwire).map_err(NextHopError::InvalidReply)
    }

    /// Removes what was plumbed for a vWire whose plumbing was not recorded.
    async fn undo_plumbing(&self, mesh: &Mesh, vwire: &VWire, plumbing: &Plumbing) {
        if let Err(e) = mesh.forwarder.unplumb(vwire.id, plumbing).await {
            tracing::error!(vwire = %vwire.id, error = %e, "plumbing not undone; reconcile removes it at the next start");
        }
    }

    async fn tell_endpoint_close(
        &self,
        mesh: &Mesh,
        endpoint: &EndpointRef,
        vwire: &VWire,
        accepted: &Accepted,
    ) {
        let mut connection = HopConnection::of(vwire, Side::Endpoint);
        connection.mechanism = Some(accepted.mechanism.clone());
        connection.path = accepted.path.clone();
        if let Err(status) = mesh
            .next_hop
            .close(&endpoint.url, connection, mesh.request_timeout)
            .await
        {
            tracing::warn!(endpoint = %endpoint.name, error = %status, "endpoint not told to close");
        }
    }
}

/// The failure code recorded when the data plane could not do its part, in gRPC's terms
/// (the forwarder itself gone: unavailable).
pub(crate) fn failure_code(error: &ActorError) -> FailureCode {
    match error {
        ActorError::Dataplane(
            DataplaneError::InvalidInput(_) | DataplaneError::Unsupported { .. },
        ) => FailureCode::InvalidArgument,
        ActorError::Dataplane(DataplaneError::Conflict(_)) => FailureCode::AlreadyExists,
        ActorError::Dataplane(DataplaneError::NotPermitted(_)) => FailureCode::FailedPrecondition,
        ActorError::Dataplane(DataplaneError::Failed { .. }) => FailureCode::Internal,
        _ => FailureCode::Unavailable,
    }
}

fn micros(at: DateTime<Utc>) -> DateTime<Utc> {
    use chrono::SubsecRound;
    at.trunc_subsecs(6)
}

/// This node's segment carries the vWire's deadline (NSM: a segment's `expires`).
fn set_own_expiry(path: &mut Path, expires_at: DateTime<Utc>) {
    if let Some(own) = path.segments.get_mut(path.index as usize) {
        own.expires = Some(expires_at);
    }
}

/// What this node offers the endpoint for its end: the client's mechanism type first, then
/// the data plane's other local types, each without the client's parameters.
fn endpoint_preferences(mesh: &Mesh, client: &Mechanism) -> Vec<Mechanism> {
    let mut types = vec![client.mechanism_type.as_str()];
    types.extend(
        mesh.forwarder
            .local_mechanisms()
            .iter()
            .copied()
            .filter(|t| *t != client.mechanism_type),
    );
    types
        .into_iter()
        .map(|t| Mechanism::new(client.cls, t))
        .collect()
}

/// The Request this node sends the endpoint: the vWire at this hop (id and path index ours),
/// with the endpoint's mechanism once it has one and the service's payload (NSM's
/// `discover` sets it on the connection it forwards).
fn forward(
    vwire: &VWire,
    path: &Path,
    endpoint: &EndpointRef,
    mechanism: Option<&Mechanism>,
    payload: Payload,
    preferences: Vec<Mechanism>,
    request: &ConnectRequest,
) -> HopRequest {
    HopRequest {
        connection: HopConnection {
            id: vwire.id.to_string(),
            service: vwire.service.clone(),
            mechanism: mechanism.cloned(),
            context: Some(request.requested_context.clone()),
            labels: vwire.labels.clone(),
            path: path.clone(),
            endpoint_name: endpoint.name.clone(),
            payload: Some(payload),
            up: true,
        },
        mechanism_preferences: preferences,
    }
}

/// Validates an endpoint's reply (its fields were checked as they were read): its path must
/// still hold this node's segment where it was.
fn accept(reply: HopReply, vwire: &VWire) -> Result<Accepted, String> {
    let HopReply {
        mechanism,
        context,
        mut path,
    } = reply;
    let own_index = vwire.path.index;
    let own_id = vwire.id.to_string();
    let kept = path
        .segments
        .get(own_index as usize)
        .is_some_and(|s| s.id == own_id);
    if !kept {
        return Err(format!(
            "its path lost this node's segment (index {own_index}, id {own_id})"
        ));
    }
    // NSM endpoints restore the index on return; some do not. This hop's index is ours.
    path.index = own_index;
    Ok(Accepted {
        mechanism,
        context,
        path,
    })
}
