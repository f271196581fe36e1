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

use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use chrono::{DateTime, Utc};
use nsm_events::StoreError;
use nsm_events::clock::Clock;
use nsm_events::store::Causation;
use nsm_events::vwire::{Command, LifecycleError, VWire, VWireId, decide};

use crate::error::ActorError;
use crate::journal::Journal;

/// Messages a vWire may have queued before callers wait (back-pressure).
const MAILBOX_CAPACITY: usize = 64;

/// How the actor learns its state when it starts.
#[derive(Debug)]
pub(crate) enum Boot {
    /// Fold its stream from the log (a new vWire, or one rebuilt after an unknown outcome).
    Load,
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

/// Asks the vWire to carry out a command.
#[derive(Message)]
#[rtype(result = "Result<VWire, ActorError>")]
pub(crate) struct Execute {
    pub(crate) command: Command,
    pub(crate) causation: Causation,
    pub(crate) span: tracing::Span,
}

/// Asks for the vWire's current state.
#[derive(Message)]
#[rtype(result = "Option<VWire>")]
pub(crate) struct GetState;

pub(crate) struct VWireActor {
    id: VWireId,
    state: Option<VWire>,
    boot: Option<Boot>,
    journal: Journal,
    clock: Arc<dyn Clock>,
    manager: Recipient<VWireStopped>,
    /// Deadlines before this instant passed while the node was down.
    node_started_at: DateTime<Utc>,
    timer: Option<SpawnHandle>,
}

impl VWireActor {
    pub(crate) fn new(
        id: VWireId,
        boot: Boot,
        journal: Journal,
        clock: Arc<dyn Clock>,
        manager: Recipient<VWireStopped>,
        node_started_at: DateTime<Utc>,
    ) -> Self {
        Self {
            id,
            state: None,
            boot: Some(boot),
            journal,
            clock,
            manager,
            node_started_at,
            timer: None,
        }
    }

    /// Decide, append, then apply: the one way state changes.
    fn execute(
        &mut self,
        command: Command,
        causation: Causation,
    ) -> ResponseActFuture<Self, Result<VWire, ActorError>> {
        let now = self.clock.now();
        let decided = decide(self.state.as_ref(), &command, now).map_err(ActorError::from);
        let events = match decided {
            Ok(events) => events,
            Err(refusal) => return Box::pin(fut::ready(Err(refusal))),
        };
        let mut next = self.state.clone();
        for event in &events {
            match VWire::evolve(next, self.id, event) {
                Ok(state) => next = Some(state),
                Err(e) => return Box::pin(fut::ready(Err(e.into()))),
            }
        }
        let Some(next) = next else {
            return Box::pin(fut::ready(Err(LifecycleError::NotFound.into())));
        };
        let expected = self.state.as_ref().map_or(0, |s| s.version);
        let journal = self.journal.clone();
        let record = async move {
            journal.record(&next, expected, &events, &causation).await?;
            Ok::<_, StoreError>(next)
        };
        Box::pin(record.into_actor(self).map(move |recorded, act, ctx| match recorded {
            Ok(next) => {
                act.state = Some(next.clone());
                act.after_change(ctx);
                Ok(next)
            }
            Err(e @ (StoreError::OutcomeUnknown(_) | StoreError::WrongExpectedVersion { .. })) => {
                tracing::warn!(vwire = %act.id, error = %e, "state may be behind the log; rebuilding");
                act.stop(ctx, StopCause::Rebuild);
                Err(ActorError::Rebuilding(act.id))
            }
            Err(e) => Err(e.into()),
        }))
    }

    /// After a recorded change: stop if terminal, else (re)arm the expiry timer.
    fn after_change(&mut self, ctx: &mut Context<Self>) {
        match &self.state {
            Some(state) if !state.status.is_terminal() => self.arm_timer(ctx),
            _ => self.stop(ctx, StopCause::Done),
        }
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
        let step = self.execute(Command::Expire { during_downtime }, Causation::default());
        ctx.wait(step.map(move |outcome, act, ctx| {
            let _entered = span.enter();
            match outcome {
                Ok(_) => tracing::info!(during_downtime, "vWire expired"),
                // A refresh raced the timer: the new deadline is armed already.
                Err(ActorError::Lifecycle(LifecycleError::NotDue { .. })) => act.arm_timer(ctx),
                Err(ActorError::Rebuilding(_)) => {}
                Err(e) => {
                    tracing::warn!(error = %e, "expiry not recorded; retrying in 1s");
                    act.timer =
                        Some(ctx.run_later(Duration::from_secs(1), |act, ctx| act.expire(ctx)));
                }
            }
        }));
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
        if let Some(timer) = self.timer.take() {
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
                self.state = Some(*state);
                self.arm_timer(ctx);
            }
            Some(Boot::Load) | None => {
                let journal = self.journal.clone();
                let id = self.id;
                // Hold every message until the state is loaded.
                ctx.wait(async move { journal.load(id).await }.into_actor(self).map(
                    |loaded, act, ctx| match loaded {
                        Ok(state) => {
                            let live = state.as_ref().is_some_and(|s| !s.status.is_terminal());
                            act.state = state;
                            if live {
                                act.arm_timer(ctx);
                            }
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
}

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

    /// Carries out a command; resolves once its events are durable (or it was refused).
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

    /// The vWire's state, or `None` if it has no history.
    pub async fn state(&self) -> Result<Option<VWire>, ActorError> {
        Ok(self.addr.send(GetState).await?)
    }
}
