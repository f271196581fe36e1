//! The Manager: the node's directory of live vWires, and start-up replay.
//!
//! The [`Directory`] finds the actor of a vWire, or starts one on the next of a fixed set of
//! arbiters; it is shared with every [`ManagerHandle`], so routing a call costs a lock, and
//! callers then talk to the VWire directly. The Manager actor itself forgets actors that
//! stopped and restarts a VWire whose state may be behind the log.
//!
//! Start-up replay: read the `live_vwires` projection, start an actor for each row (folding
//! the stream from the log instead if the row does not decode), and let each actor expire at
//! once if its deadline passed while the node was down, or re-arm its timer otherwise.
//! [`ManagerHandle::start`] returns only once replay has finished, so no call is routed
//! before.

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use crate::clock::Clock;
use actix::prelude::*;
use actix_rt::ArbiterHandle;
use chrono::{DateTime, Utc};
use nsm_domain::vwire::{ClosedBy, VWire, VWireId};
#[cfg(feature = "testing")]
use nsm_domain::vwire::{Command, VWireRequest};
use nsm_log::projection::vwire::decode_row;
use nsm_log::store::Causation;
use tokio::time::Instant;

use crate::error::ActorError;
use crate::journal::Journal;
use crate::mesh::{ConnectRequest, Mesh};
use crate::stats::VWireGauge;
use crate::vwire::{Boot, NodeShared, StopCause, VWireActor, VWireHandle, VWireStopped};

/// Messages (stopped actors, replay) the Manager may have queued.
const MAILBOX_CAPACITY: usize = 4096;

/// How the Manager runs.
#[derive(Debug, Clone)]
pub struct ManagerConfig {
    /// Arbiters (threads) the VWire actors are spread over; 0 runs them on the Manager's own
    /// arbiter (tests on a paused clock need that, since each arbiter has its own runtime).
    pub arbiters: usize,
    /// The mesh the vWires connect through; without one the node only records lifecycles
    /// (Connect is refused, Close and expiry tell no endpoint).
    pub mesh: Option<Arc<Mesh>>,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            arbiters: std::thread::available_parallelism().map_or(2, |n| n.get()),
            mesh: None,
        }
    }
}

/// What start-up replay did.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ReplayReport {
    /// Live vWires found in the log.
    pub live: usize,
    /// Of those, the ones whose deadline passed while the node was down (expired now).
    pub expired_during_downtime: usize,
    /// Rows of the projection that did not decode and were folded from the log instead.
    pub folded_from_log: usize,
    pub duration: std::time::Duration,
}

/// Where vWire actors are found and started. Shared by the Manager and every handle, so
/// that routing a call to a vWire costs a lock rather than a round trip through the
/// Manager's thread; an actor is started from any thread by handing it to an arbiter.
pub(crate) struct Directory {
    actors: std::sync::Mutex<HashMap<VWireId, Addr<VWireActor>>>,
    arbiters: Vec<ArbiterHandle>,
    next_arbiter: AtomicUsize,
    journal: Journal,
    clock: Arc<dyn Clock>,
    mesh: Option<Arc<Mesh>>,
    manager: Recipient<VWireStopped>,
    started_at: DateTime<Utc>,
    gauge: Arc<VWireGauge>,
}

impl Directory {
    fn actors(&self) -> std::sync::MutexGuard<'_, HashMap<VWireId, Addr<VWireActor>>> {
        // A panic aborts the process (crash-only), so a poisoned lock cannot be observed.
        self.actors.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The running actor of `id`, or a new one started with `boot`.
    fn route(&self, id: VWireId, boot: impl FnOnce() -> Boot) -> Addr<VWireActor> {
        let mut actors = self.actors();
        if let Some(addr) = actors.get(&id).filter(|a| a.connected()) {
            return addr.clone();
        }
        let addr = self.start(id, boot());
        actors.insert(id, addr.clone());
        addr
    }

    /// Starts an actor for `id` (replacing any entry), on the next arbiter in turn.
    fn spawn(&self, id: VWireId, boot: Boot) -> Addr<VWireActor> {
        let addr = self.start(id, boot);
        self.actors().insert(id, addr.clone());
        addr
    }

    fn start(&self, id: VWireId, boot: Boot) -> Addr<VWireActor> {
        let node = NodeShared {
            journal: self.journal.clone(),
            clock: self.clock.clone(),
            mesh: self.mesh.clone(),
            manager: self.manager.clone(),
            started_at: self.started_at,
            gauge: self.gauge.clone(),
        };
        let turn = self.next_arbiter.fetch_add(1, Ordering::Relaxed);
        let arbiter = &self.arbiters[turn % self.arbiters.len()];
        VWireActor::start_in_arbiter(arbiter, move |_| VWireActor::new(id, boot, node))
    }
}

impl std::fmt::Debug for Directory {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Directory")
            .field("actors", &self.actors().len())
            .field("arbiters", &self.arbiters.len())
            .finish()
    }
}

pub(crate) struct Manager {
    directory: Arc<Directory>,
    /// The arbiters this Manager made (none when the vWires share its own).
    owned_arbiters: Vec<Arbiter>,
}

impl Actor for Manager {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Context<Self>) {
        ctx.set_mailbox_capacity(MAILBOX_CAPACITY);
    }

    fn stopped(&mut self, _: &mut Context<Self>) {
        for arbiter in &self.owned_arbiters {
            arbiter.stop();
        }
    }
}

impl Handler<VWireStopped> for Manager {
    type Result = ();

    fn handle(&mut self, msg: VWireStopped, _: &mut Context<Self>) {
        // A newer actor may already serve this id; only forget the one that stopped.
        let mut actors = self.directory.actors();
        if actors.get(&msg.id) == Some(&msg.addr) {
            actors.remove(&msg.id);
            drop(actors);
            if msg.cause == StopCause::Rebuild {
                self.directory.spawn(msg.id, Boot::Load);
            }
        }
    }
}

/// Asks for the ids of every live vWire.
#[derive(Message)]
#[rtype(result = "Vec<VWireId>")]
struct ListLive;

impl Handler<ListLive> for Manager {
    type Result = MessageResult<ListLive>;

    fn handle(&mut self, _: ListLive, _: &mut Context<Self>) -> Self::Result {
        let mut ids: Vec<VWireId> = self.directory.actors().keys().copied().collect();
        ids.sort();
        MessageResult(ids)
    }
}

/// Asks the Manager to load every live vWire from the log (start-up replay).
#[derive(Message)]
#[rtype(result = "Result<ReplayReport, ActorError>")]
struct Replay;

impl Handler<Replay> for Manager {
    type Result = ResponseActFuture<Self, Result<ReplayReport, ActorError>>;

    fn handle(&mut self, _: Replay, ctx: &mut Context<Self>) -> Self::Result {
        let began = Instant::now();
        let journal = self.directory.journal.clone();
        let (tx, rx) = tokio::sync::oneshot::channel();
        // `wait`: nothing else is handled until every live vWire has its actor.
        ctx.wait(async move { journal.live_rows().await }.into_actor(self).then(
            move |rows, act, _| {
                let outcome = rows.map_err(ActorError::from).map(|rows| {
                    let mut report = ReplayReport {
                        live: rows.len(),
                        ..ReplayReport::default()
                    };
                    for row in rows {
                        let Some(id) = VWireId::from_stream(&row.stream) else { continue };
                        let boot = match decode_row(&row) {
                            Ok(state) => {
                                if state.expires_at <= act.directory.started_at {
                                    report.expired_during_downtime += 1;
                                }
                                Boot::Known(Box::new(state))
                            }
                            Err(e) => {
                                tracing::warn!(vwire = %id, error = %e, "projection row unreadable; folding the log");
                                report.folded_from_log += 1;
                                Boot::Load
                            }
                        };
                        act.directory.spawn(id, boot);
                    }
                    report.duration = began.elapsed();
                    report
                });
                let _ = tx.send(outcome);
                fut::ready(())
            },
        ));
        Box::pin(async move { rx.await.unwrap_or(Err(ActorError::Stopped)) }.into_actor(self))
    }
}

/// A handle to the node's Manager: the way into every vWire.
#[derive(Debug, Clone)]
pub struct ManagerHandle {
    addr: Addr<Manager>,
    directory: Arc<Directory>,
}

impl ManagerHandle {
    /// Starts the Manager (and its arbiters) on the current actix System and runs start-up
    /// replay: when this returns, every vWire that is live in the log has its actor, those
    /// whose deadline passed while the node was down are expiring, and the rest have their
    /// timers armed. Must be called from inside the System (see [`crate::runtime`]).
    pub async fn start(
        config: ManagerConfig,
        journal: Journal,
        clock: Arc<dyn Clock>,
    ) -> Result<(Self, ReplayReport), ActorError> {
        let started_at = clock.now();
        let owned_arbiters: Vec<Arbiter> = (0..config.arbiters).map(|_| Arbiter::new()).collect();
        let arbiters = if owned_arbiters.is_empty() {
            vec![Arbiter::current()]
        } else {
            owned_arbiters.iter().map(Arbiter::handle).collect()
        };
        let mut shared = None;
        let addr = Manager::create(|ctx| {
            let directory = Arc::new(Directory {
                actors: std::sync::Mutex::default(),
                arbiters,
                next_arbiter: AtomicUsize::new(0),
                journal,
                clock,
                mesh: config.mesh,
                manager: ctx.address().recipient(),
                started_at,
                gauge: Arc::default(),
            });
            shared = Some(directory.clone());
            Manager {
                directory,
                owned_arbiters,
            }
        });
        let Some(directory) = shared else {
            return Err(ActorError::Stopped);
        };
        let handle = Self { addr, directory };
        let report = handle.addr.send(Replay).await??;
        tracing::info!(
            live = report.live,
            expired_during_downtime = report.expired_during_downtime,
            folded_from_log = report.folded_from_log,
            took_ms = report.duration.as_millis() as u64,
            "start-up replay done"
        );
        handle.heal_on_faults();
        Ok((handle, report))
    }

    /// The vWire's actor (started and loaded from the log if it is not running).
    pub async fn vwire(&self, id: VWireId) -> Result<VWireHandle, ActorError> {
        let addr = self.directory.route(id, || Boot::Load);
        Ok(VWireHandle::new(id, addr))
    }

    /// The actor of a vWire whose id the caller has just minted (a random UUID): it starts
    /// empty instead of reading a history that cannot exist. Were the id not new after all,
    /// its first append would meet the stream's real version, and the actor would rebuild
    /// from the log.
    async fn fresh_vwire(&self, id: VWireId) -> Result<VWireHandle, ActorError> {
        let addr = self.directory.route(id, || Boot::New);
        Ok(VWireHandle::new(id, addr))
    }

    /// Carries out a raw command on a vWire (tests only, feature `testing`). Retries once if the vWire's actor stopped between
    /// routing and delivery (it had just ended, or is being rebuilt).
    #[cfg(feature = "testing")]
    pub async fn execute(
        &self,
        id: VWireId,
        command: Command,
        causation: Causation,
    ) -> Result<VWire, ActorError> {
        match self
            .vwire(id)
            .await?
            .execute(command.clone(), causation.clone())
            .await
        {
            Err(ActorError::Stopped) => self.vwire(id).await?.execute(command, causation).await,
            other => other,
        }
    }

    /// Records `Requested` for a new vWire, without asking an endpoint (tests only).
    #[cfg(feature = "testing")]
    pub async fn request(
        &self,
        id: VWireId,
        request: VWireRequest,
        causation: Causation,
    ) -> Result<VWire, ActorError> {
        self.execute(id, Command::Request(request), causation).await
    }

    /// A client's Request for vWire `id`: connects it if new, refreshes it if established.
    /// Refused with `Lifecycle(Terminal)` if the id belongs to an ended vWire.
    pub async fn connect(
        &self,
        id: VWireId,
        request: ConnectRequest,
        causation: Causation,
    ) -> Result<VWire, ActorError> {
        let vwire = if request.fresh_id {
            self.fresh_vwire(id).await?
        } else {
            self.vwire(id).await?
        };
        match vwire.connect(request.clone(), causation.clone()).await {
            Err(ActorError::Stopped) => self.vwire(id).await?.connect(request, causation).await,
            other => other,
        }
    }

    /// Closes vWire `id`: tells its endpoint, unplumbs it, records `Closed`.
    pub async fn close(
        &self,
        id: VWireId,
        by: ClosedBy,
        reason: String,
        causation: Causation,
    ) -> Result<VWire, ActorError> {
        match self
            .vwire(id)
            .await?
            .close(by, reason.clone(), causation.clone())
            .await
        {
            Err(ActorError::Stopped) => self.vwire(id).await?.close(by, reason, causation).await,
            other => other,
        }
    }

    /// The state of a vWire: from its actor if live, else folded from the log.
    pub async fn state(&self, id: VWireId) -> Result<Option<VWire>, ActorError> {
        match self.vwire(id).await?.state().await {
            Err(ActorError::Stopped) => self.vwire(id).await?.state().await,
            other => other,
        }
    }

    pub(crate) fn mesh(&self) -> Option<Arc<Mesh>> {
        self.directory.mesh.clone()
    }

    pub(crate) fn journal(&self) -> &Journal {
        &self.directory.journal
    }

    /// Now, at the log's precision (microseconds).
    pub(crate) fn now(&self) -> DateTime<Utc> {
        use chrono::SubsecRound;
        self.directory.clock.now().trunc_subsecs(6)
    }

    /// The node's live vWires by status, as its actors count themselves (see
    /// [`crate::stats`]); cheap to read at any time.
    pub fn vwire_gauge(&self) -> Arc<VWireGauge> {
        self.directory.gauge.clone()
    }

    /// Ids of the vWires that have a running actor, sorted.
    pub async fn live(&self) -> Result<Vec<VWireId>, ActorError> {
        Ok(self.addr.send(ListLive).await?)
    }
}
