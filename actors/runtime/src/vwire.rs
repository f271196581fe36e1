//! The VWire actor: one per live vWire. It owns the vWire's state and its expiry timer.
//!
//! Every command goes through the same exclusive step: decide (pure), append the events and
//! wait for durability, then — only then — change state. The step is an `AtomicResponse`, so
//! no other message interleaves between the append and the state change.
//!
//! It stops itself when the vWire is terminal (or never existed), and when it cannot tell
//! whether its append committed; the Manager then starts a fresh actor that rebuilds from
//! the log. Timers are re-armed from the deadline stored in the events, so a restart loses
//! nothing.
//!
//! With liveness probes on ([`crate::LivenessConfig`]), an established vWire probes its
//! datapath in the background; a dead one is re-plumbed in an exclusive step, and a vWire
//! whose client's namespace is gone is closed by the node. After each heal the next probe
//! waits twice as long (up to a minute), so a vWire that cannot carry traffic is not
//! re-plumbed in a tight loop.

use std::sync::Arc;
use std::time::Duration;

use crate::clock::Clock;
use actix::prelude::*;
use chrono::{DateTime, Utc};
use nsm_domain::vwire::{
    ClosedBy, Command, FailureCode, FailureStage, LifecycleError, Status, VWire, VWireId,
};
use nsm_log::StoreError;
use nsm_log::store::Causation;

use crate::error::ActorError;
use crate::flow::{Flow, Reconciliation, Recorder};
use crate::journal::Journal;
use crate::mesh::{ConnectRequest, Mesh};
use crate::stats::VWireGauge;
use nsm_dataplane::{Liveness, PlumbRequest};

/// Messages a vWire may have queued before callers wait (back-pressure).
const MAILBOX_CAPACITY: usize = 64;
/// The longest wait between probes of a vWire that keeps failing them.
const MAX_PROBE_BACKOFF: Duration = Duration::from_secs(60);

/// How the actor learns its state when it starts.
#[derive(Debug)]
pub(crate) enum Boot {
    /// Fold its stream from the log (a vWire not running, or one rebuilt after an unknown
    /// outcome).
    Load,
    /// A vWire whose id was just minted: nothing to read.
    New,
    /// Given by start-up replay, from the `live_vwires` projection.
    Known(Box<VWire>),
}

/// Why a VWire actor stopped, told to the Manager.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum StopCause {
    /// Terminal, never requested, or failed to load: nothing to keep alive.
    Done,
    /// Its state may be behind the log: start a fresh actor that loads it.
    Rebuild,
}

#[derive(Message)]
#[rtype(result = "()")]
pub(crate) struct VWireStopped {
    pub(crate) id: VWireId,
    pub(crate) addr: Addr<VWireActor>,
    pub(crate) cause: StopCause,
}

/// Asks the vWire to carry out a raw command (tests only: production goes through the
/// flows, Connect and Close).
#[cfg(feature = "testing")]
#[derive(Message)]
#[rtype(result = "Result<VWire, ActorError>")]
pub(crate) struct Execute {
    pub(crate) command: Command,
    pub(crate) causation: Causation,
    pub(crate) span: tracing::Span,
}

/// A client's Request: connect a new vWire, or refresh an established one.
#[derive(Message)]
#[rtype(result = "Result<VWire, ActorError>")]
pub(crate) struct Connect {
    pub(crate) request: ConnectRequest,
    pub(crate) causation: Causation,
    pub(crate) span: tracing::Span,
}

/// Asks the vWire to close: tell the endpoint, unplumb, record `Closed`.
#[derive(Message)]
#[rtype(result = "Result<VWire, ActorError>")]
pub(crate) struct Close {
    pub(crate) by: ClosedBy,
    pub(crate) reason: String,
    pub(crate) causation: Causation,
    pub(crate) span: tracing::Span,
}

/// Asks for the vWire's current state.
#[derive(Message)]
#[rtype(result = "Option<VWire>")]
pub(crate) struct GetState;

/// Asks the vWire to compare its data plane with its events and repair it (start-up).
#[derive(Message)]
#[rtype(result = "Result<Reconciliation, ActorError>")]
pub(crate) struct Reconcile;

/// The liveness probe found the datapath dead, or the data plane reported it broken:
/// re-plumb.
#[derive(Message)]
#[rtype(result = "()")]
struct HealDatapath {
    probe: String,
    reason: String,
}

pub(crate) struct VWireActor {
    id: VWireId,
    state: Option<VWire>,
    boot: Option<Boot>,
    journal: Journal,
    clock: Arc<dyn Clock>,
    mesh: Option<Arc<Mesh>>,
    manager: Recipient<VWireStopped>,
    /// Deadlines before this instant passed while the node was down.
    node_started_at: DateTime<Utc>,
    timer: Option<SpawnHandle>,
    /// The next liveness probe, when probes are on.
    probe_timer: Option<SpawnHandle>,
    /// Heals in a row without a probe answered since; the next probe backs off by it.
    heals_in_a_row: u32,
    /// The node's live vWires by status, and the status this actor is counted under.
    gauge: Arc<VWireGauge>,
    counted: Option<Status>,
}

/// What every VWire actor of a node is given when it starts.
pub(crate) struct NodeShared {
    pub(crate) journal: Journal,
    pub(crate) clock: Arc<dyn Clock>,
    pub(crate) mesh: Option<Arc<Mesh>>,
    pub(crate) manager: Recipient<VWireStopped>,
    pub(crate) started_at: DateTime<Utc>,
    pub(crate) gauge: Arc<VWireGauge>,
}

impl VWireActor {
    pub(crate) fn new(id: VWireId, boot: Boot, node: NodeShared) -> Self {
        Self {
            id,
            state: None,
            boot: Some(boot),
            journal: node.journal,
            clock: node.clock,
            mesh: node.mesh,
            manager: node.manager,
            node_started_at: node.started_at,
            timer: None,
            probe_timer: None,
            heals_in_a_row: 0,
            gauge: node.gauge,
            counted: None,
        }
    }

    /// Sets the state, and counts the actor under its new status if it is live: every
    /// assignment of `state` goes through here, so the gauge follows it.
    fn set_state(&mut self, state: Option<VWire>) {
        let status = state
            .as_ref()
            .map(|s| s.status)
            .filter(|s| !s.is_terminal());
        self.gauge.moved(self.counted, status);
        self.counted = status;
        self.state = state;
    }

    fn flow(&self, causation: Causation) -> Flow {
        Flow {
            recorder: Recorder {
                id: self.id,
                journal: self.journal.clone(),
                clock: self.clock.clone(),
            },
            mesh: self.mesh.clone(),
            causation,
        }
    }

    /// Runs a flow over a copy of the state, then keeps the state it reached: the one way
    /// state changes. Every step of the flow was durable before the state moved; if an
    /// append's outcome is unknown the actor rebuilds from the log instead.
    fn run<F, Fut>(
        &mut self,
        causation: Causation,
        body: F,
    ) -> ResponseActFuture<Self, Result<VWire, ActorError>>
    where
        F: FnOnce(Flow, Option<VWire>) -> Fut,
        Fut: std::future::Future<Output = (Option<VWire>, Result<VWire, ActorError>)> + 'static,
    {
        let work = body(self.flow(causation), self.state.clone());
        Box::pin(work.into_actor(self).map(|(reached, outcome), act, ctx| {
            match act.keep(ctx, reached, outcome.as_ref().err()) {
                Some(rebuilding) => Err(rebuilding),
                None => outcome,
            }
        }))
    }

    /// Adopts the state a step reached — the one way state changes. If the step's append
    /// may have committed after all, stops instead so that a fresh actor rebuilds from the
    /// log, and returns the error the caller gets.
    fn keep(
        &mut self,
        ctx: &mut Context<Self>,
        reached: Option<VWire>,
        error: Option<&ActorError>,
    ) -> Option<ActorError> {
        if let Some(e) = error.filter(|e| e.may_have_committed()) {
            tracing::warn!(vwire = %self.id, error = %e, "state may be behind the log; rebuilding");
            self.stop(ctx, StopCause::Rebuild);
            let cause = match e {
                ActorError::Store(StoreError::OutcomeUnknown(cause)) => cause.clone(),
                other => other.to_string(),
            };
            return Some(ActorError::Rebuilding {
                vwire: self.id,
                cause,
            });
        }
        let changed = reached != self.state;
        self.set_state(reached);
        if changed {
            self.after_change(ctx);
        }
        None
    }

    /// Decide, append, then apply one command.
    fn execute(
        &mut self,
        command: Command,
        causation: Causation,
    ) -> ResponseActFuture<Self, Result<VWire, ActorError>> {
        self.run(causation, |flow, mut state| async move {
            let outcome = flow
                .recorder
                .run(&mut state, &[command], &flow.causation)
                .await;
            (state, outcome)
        })
    }

    /// Tells the endpoint, unplumbs, then records `end` (Close, Expire or Fail).
    fn teardown(
        &mut self,
        end: Command,
        causation: Causation,
    ) -> ResponseActFuture<Self, Result<VWire, ActorError>> {
        self.run(causation, |flow, mut state| async move {
            let outcome = flow.teardown(&mut state, end).await;
            (state, outcome)
        })
    }

    /// After a recorded change: stop if terminal, else (re)arm the expiry timer and the probe.
    fn after_change(&mut self, ctx: &mut Context<Self>) {
        match &self.state {
            Some(state) if !state.status.is_terminal() => {
                self.arm_timer(ctx);
                if self.probe_timer.is_none() {
                    self.arm_probe(ctx);
                }
            }
            _ => self.stop(ctx, StopCause::Done),
        }
    }

    /// Schedules the next datapath probe, if probes are on and the vWire is plumbed for real.
    fn arm_probe(&mut self, ctx: &mut Context<Self>) {
        if let Some(probe) = self.probe_timer.take() {
            ctx.cancel_future(probe);
        }
        let Some(liveness) = self.mesh.as_ref().and_then(|m| m.liveness) else {
            return;
        };
        let plumbed = self.state.as_ref().is_some_and(|s| {
            s.status == Status::Established && s.plumbing.as_ref().is_some_and(|p| !p.dry_run)
        });
        if !plumbed {
            return;
        }
        let backoff = 2u32.saturating_pow(self.heals_in_a_row.min(16));
        let wait = liveness
            .interval
            .saturating_mul(backoff)
            .min(MAX_PROBE_BACKOFF.max(liveness.interval));
        self.probe_timer = Some(ctx.run_later(wait, |act, ctx| {
            act.probe_timer = None;
            act.probe(ctx);
        }));
    }

    /// Probes in the background (the vWire keeps answering meanwhile), then acts on it.
    fn probe(&mut self, ctx: &mut Context<Self>) {
        let (Some(mesh), Some(state)) = (self.mesh.clone(), &self.state) else {
            return;
        };
        let (Some(request), Some(liveness)) = (PlumbRequest::for_vwire(state), mesh.liveness)
        else {
            return;
        };
        let probed = async move { mesh.forwarder.probe(request, liveness.timeout).await };
        ctx.spawn(probed.into_actor(self).map(|outcome, act, ctx| match outcome {
            Ok(Liveness::Alive { .. }) => {
                act.heals_in_a_row = 0;
                act.arm_probe(ctx);
            }
            Ok(Liveness::Dead { what, reason }) => {
                tracing::warn!(vwire = %act.id, probe = %what, %reason, "datapath probe failed; re-plumbing");
                act.heals_in_a_row = act.heals_in_a_row.saturating_add(1);
                ctx.notify(HealDatapath {
                    probe: what,
                    reason,
                });
            }
            Ok(Liveness::ClientGone { reason }) => act.close_for_gone_client(ctx, reason),
            Ok(Liveness::NotProbed { why }) => {
                tracing::debug!(vwire = %act.id, %why, "datapath not probed");
            }
            Err(e) => {
                tracing::warn!(vwire = %act.id, error = %e, "datapath probe could not run; retrying later");
                act.arm_probe(ctx);
            }
        }));
    }

    /// The client's network namespace is gone, and with it the client: end the vWire.
    fn close_for_gone_client(&mut self, ctx: &mut Context<Self>, reason: String) {
        tracing::info!(vwire = %self.id, %reason, "the client is gone; closing its vWire");
        let end = Command::Close {
            by: ClosedBy::Node,
            reason,
        };
        let step = self.teardown(end, Causation::default());
        ctx.wait(step.map(|outcome, act, ctx| {
            if let Err(e) = outcome {
                tracing::warn!(vwire = %act.id, error = %e, "vWire of a gone client not closed; probing again later");
                act.arm_probe(ctx);
            }
        }));
    }

    fn arm_timer(&mut self, ctx: &mut Context<Self>) {
        if let Some(timer) = self.timer.take() {
            ctx.cancel_future(timer);
        }
        let Some(state) = &self.state else { return };
        let remaining = (state.expires_at - self.clock.now())
            .to_std()
            .unwrap_or(Duration::ZERO);
        self.timer = Some(ctx.run_later(remaining, |act, ctx| {
            act.timer = None;
            act.expire(ctx);
        }));
    }

    fn expire(&mut self, ctx: &mut Context<Self>) {
        let Some(state) = &self.state else { return };
        let during_downtime = state.expires_at < self.node_started_at;
        let span = tracing::info_span!("expire", vwire = %self.id);
        let step = self.teardown(Command::Expire { during_downtime }, Causation::default());
        ctx.wait(step.map(move |outcome, act, ctx| {
            let _entered = span.enter();
            match outcome {
                Ok(_) => tracing::info!(during_downtime, "vWire expired"),
                // A refresh raced the timer: the new deadline is armed already.
                Err(ActorError::Lifecycle(LifecycleError::NotDue { .. })) => act.arm_timer(ctx),
                Err(ActorError::Rebuilding { .. }) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "expiry not recorded; retrying in 1s");
                    act.timer =
                        Some(ctx.run_later(Duration::from_secs(1), |act, ctx| act.expire(ctx)));
                }
            }
        }));
    }

    /// Picks up a vWire just read from the log: re-arms its timer, or — if it was left
    /// `Requested` by a flow that did not finish (the node stopped, or an append's outcome
    /// was unknown) — fails it, since no one is waiting for that Request any more.
    fn resume(&mut self, ctx: &mut Context<Self>) {
        let Some(state) = &self.state else { return };
        if state.status.is_terminal() {
            return;
        }
        if state.status == Status::Requested && self.mesh.is_some() {
            let fail = Command::Fail {
                stage: FailureStage::Recovery,
                code: FailureCode::Unavailable,
                reason: "the node stopped before this vWire was established; the client's retry makes a new one".into(),
            };
            let step = self.execute(fail, Causation::default());
            ctx.wait(step.map(|outcome, act, ctx| {
                if let Err(e) = outcome {
                    tracing::warn!(vwire = %act.id, error = %e, "unfinished request not recorded as failed; it expires at its deadline");
                    act.arm_timer(ctx);
                }
            }));
            return;
        }
        self.arm_timer(ctx);
        self.arm_probe(ctx);
    }

    /// An actor started for a vWire that never existed, or loaded one that is terminal (to
    /// answer a question or refuse a command), has nothing to keep alive.
    fn stop_unless_live(&mut self, ctx: &mut Context<Self>) {
        let live = self.state.as_ref().is_some_and(|s| !s.status.is_terminal());
        if !live && ctx.state() == ActorState::Running {
            self.stop(ctx, StopCause::Done);
        }
    }

    fn stop(&mut self, ctx: &mut Context<Self>, cause: StopCause) {
        for timer in [self.timer.take(), self.probe_timer.take()]
            .into_iter()
            .flatten()
        {
            ctx.cancel_future(timer);
        }
        // `do_send` on purpose: a stopping actor cannot wait for room in the Manager's mailbox,
        // and this message must not be dropped (it frees the directory entry, or triggers
        // the rebuild); `do_send` enqueues past the capacity instead of failing.
        self.manager.do_send(VWireStopped {
            id: self.id,
            addr: ctx.address(),
            cause,
        });
        ctx.stop();
    }
}

impl Actor for VWireActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
        match self.boot.take() {
            Some(Boot::Known(state)) => {
                self.set_state(Some(*state));
                self.resume(ctx);
            }
            Some(Boot::New) => {}
            Some(Boot::Load) | None => {
                let journal = self.journal.clone();
                let id = self.id;
                // Hold every message until the state is loaded.
                ctx.wait(async move { journal.load(id).await }.into_actor(self).map(
                    |loaded, act, ctx| match loaded {
                        Ok(state) => {
                            act.set_state(state);
                            act.resume(ctx);
                        }
                        Err(e) => {
                            tracing::error!(vwire = %act.id, error = %e, "cannot load vWire from the log");
                            act.stop(ctx, StopCause::Done);
                        }
                    },
                ));
            }
        }
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        self.gauge.moved(self.counted.take(), None);
    }
}

#[cfg(feature = "testing")]
impl Handler<Execute> for VWireActor {
    type Result = AtomicResponse<Self, Result<VWire, ActorError>>;

    fn handle(&mut self, msg: Execute, ctx: &mut Context<Self>) -> Self::Result {
        let _entered = msg.span.enter();
        let step = self.execute(msg.command, msg.causation);
        let step = step.map(|outcome, act, ctx| {
            act.stop_unless_live(ctx);
            outcome
        });
        let _ = ctx;
        AtomicResponse::new(Box::pin(step))
    }
}

impl Handler<Connect> for VWireActor {
    type Result = AtomicResponse<Self, Result<VWire, ActorError>>;

    fn handle(&mut self, msg: Connect, _: &mut Context<Self>) -> Self::Result {
        let _entered = msg.span.enter();
        let span = msg.span.clone();
        let request = msg.request;
        let step = self.run(msg.causation, move |flow, mut state| {
            let work = async move {
                let outcome = flow.connect(&mut state, request).await;
                (state, outcome)
            };
            tracing::Instrument::instrument(work, span)
        });
        AtomicResponse::new(Box::pin(step.map(|outcome, act, ctx| {
            act.stop_unless_live(ctx);
            outcome
        })))
    }
}

impl Handler<Close> for VWireActor {
    type Result = AtomicResponse<Self, Result<VWire, ActorError>>;

    fn handle(&mut self, msg: Close, _: &mut Context<Self>) -> Self::Result {
        let _entered = msg.span.enter();
        let end = Command::Close {
            by: msg.by,
            reason: msg.reason,
        };
        let step = self.teardown(end, msg.causation);
        AtomicResponse::new(Box::pin(step.map(|outcome, act, ctx| {
            act.stop_unless_live(ctx);
            outcome
        })))
    }
}

impl Handler<Reconcile> for VWireActor {
    type Result = AtomicResponse<Self, Result<Reconciliation, ActorError>>;

    fn handle(&mut self, _: Reconcile, _: &mut Context<Self>) -> Self::Result {
        let flow = self.flow(Causation::default());
        let mut state = self.state.clone();
        let work = async move {
            let outcome = flow.reconcile(&mut state).await;
            (state, outcome)
        };
        AtomicResponse::new(Box::pin(work.into_actor(self).map(
            |(reached, outcome), act, ctx| {
                let outcome = match act.keep(ctx, reached, outcome.as_ref().err()) {
                    Some(rebuilding) => Err(rebuilding),
                    None => outcome,
                };
                act.stop_unless_live(ctx);
                outcome
            },
        )))
    }
}

impl Handler<HealDatapath> for VWireActor {
    type Result = AtomicResponse<Self, ()>;

    fn handle(&mut self, msg: HealDatapath, _: &mut Context<Self>) -> Self::Result {
        let flow = self.flow(Causation::default());
        let mut state = self.state.clone();
        let work = async move {
            let outcome = flow.heal_datapath(&mut state, msg.probe, msg.reason).await;
            (state, outcome)
        };
        AtomicResponse::new(Box::pin(work.into_actor(self).map(
            |(reached, outcome), act, ctx| {
                let rebuilding = act.keep(ctx, reached, outcome.as_ref().err());
                if let Err(e) = rebuilding.map_or(outcome, Err) {
                    tracing::warn!(vwire = %act.id, error = %e, "datapath not healed; probing again later");
                }
                // A data-plane fault may reach a vWire that has just ended.
                act.stop_unless_live(ctx);
                if ctx.state() == ActorState::Running {
                    act.arm_probe(ctx);
                }
            },
        )))
    }
}

impl Handler<GetState> for VWireActor {
    type Result = Option<VWire>;

    fn handle(&mut self, _: GetState, ctx: &mut Context<Self>) -> Self::Result {
        self.stop_unless_live(ctx);
        self.state.clone()
    }
}

/// A handle to one live vWire.
#[derive(Debug, Clone)]
pub struct VWireHandle {
    id: VWireId,
    addr: Addr<VWireActor>,
}

impl VWireHandle {
    pub(crate) fn new(id: VWireId, addr: Addr<VWireActor>) -> Self {
        Self { id, addr }
    }

    pub fn id(&self) -> VWireId {
        self.id
    }

    /// Carries out a raw command, bypassing the flows; resolves once its events are durable
    /// (or it was refused). Tests only (feature `testing`): production never records a
    /// command without the flow that owns it.
    #[cfg(feature = "testing")]
    pub async fn execute(
        &self,
        command: Command,
        causation: Causation,
    ) -> Result<VWire, ActorError> {
        let span = tracing::info_span!("vwire", vwire = %self.id, command = command.name());
        self.addr
            .send(Execute {
                command,
                causation,
                span,
            })
            .await?
    }

    /// A client's Request: connects a new vWire or refreshes this one.
    pub async fn connect(
        &self,
        request: ConnectRequest,
        causation: Causation,
    ) -> Result<VWire, ActorError> {
        let span = tracing::info_span!("vwire", vwire = %self.id, command = "Connect");
        self.addr
            .send(Connect {
                request,
                causation,
                span,
            })
            .await?
    }

    /// Closes the vWire: tells its endpoint, unplumbs it, records `Closed`.
    pub async fn close(
        &self,
        by: ClosedBy,
        reason: String,
        causation: Causation,
    ) -> Result<VWire, ActorError> {
        let span = tracing::info_span!("vwire", vwire = %self.id, command = "Close");
        self.addr
            .send(Close {
                by,
                reason,
                causation,
                span,
            })
            .await?
    }

    /// Compares the vWire's data plane with its events and repairs it (start-up reconcile).
    pub(crate) async fn reconcile(&self) -> Result<Reconciliation, ActorError> {
        self.addr.send(Reconcile).await?
    }

    /// Re-plumbs the vWire because `probe` found its datapath broken (`reason`), recording
    /// it as a failed probe; resolves once the repair is recorded (or refused, logged).
    pub(crate) async fn heal_datapath(
        &self,
        probe: String,
        reason: String,
    ) -> Result<(), ActorError> {
        Ok(self.addr.send(HealDatapath { probe, reason }).await?)
    }

    /// The vWire's state, or `None` if it has no history.
    pub async fn state(&self) -> Result<Option<VWire>, ActorError> {
        Ok(self.addr.send(GetState).await?)
    }
}
