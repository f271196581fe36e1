//! Everything behind the simulator's one lock: the run's state and message table, the open
//! connections, the faults and the counters. One lock, because a request touches most of it
//! (table, faults, state, counters, the connection its reply goes to) and handling is
//! microseconds: VPP itself runs every client's requests on one thread.
//!
//! A request is handled in one step under the lock: dispatch, queue its answer on the
//! addressed connection, then queue the events it caused on every subscriber's connection.
//! Queues are per connection and FIFO, so a subscriber that made the change sees the reply
//! before the event, as VPP's process node delivers events after the reply.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::{Notify, mpsc};

use nsm_vpp::api::SwInterfaceEvent;
use nsm_vpp::frame;
use nsm_vpp::message::{self, Header, Message};

use super::SimulatorConfig;
use super::dispatch::{Answer, Ctx, Runner, Silence};
use super::faults::{Counters, Faults};
use super::state::VppState;
use super::table::Table;

/// What a connection's writer is given.
#[derive(Debug)]
pub(super) enum Outgoing {
    /// A whole frame (header included).
    Frame(Vec<u8>),
    /// Flush what was queued before, then close the socket.
    Close,
}

/// An open connection, as the world sees it.
#[derive(Debug)]
pub(super) struct Conn {
    pub(super) tx: mpsc::UnboundedSender<Outgoing>,
    /// Tells the connection's reader to stop.
    pub(super) stop: Arc<Notify>,
}

/// Whether the connection that sent a request stays open.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Flow {
    Continue,
    Close,
}

#[derive(Debug)]
pub(super) struct World {
    pub(super) state: VppState,
    pub(super) table: Table,
    /// Which run this is (0 = the first; each restart adds one).
    pub(super) generation: u64,
    pub(super) pid: u32,
    pub(super) conns: HashMap<u32, Conn>,
    pub(super) faults: Faults,
    pub(super) counters: Counters,
}

impl World {
    pub(super) fn new(config: &SimulatorConfig) -> Self {
        Self {
            state: VppState::new(config.seed),
            table: Table::build(config.seed, 0),
            generation: 0,
            pid: config.pid,
            conns: HashMap::new(),
            faults: Faults::default(),
            counters: Counters::default(),
        }
    }

    /// The crate-defined message name of a request's id, if the table has one.
    pub(super) fn name_of(&self, bytes: &[u8]) -> Option<&'static str> {
        self.table.known_name(message::id_of(bytes)?)
    }

    /// Handles one request from connection `conn` and queues everything it causes.
    pub(super) fn process(&mut self, config: &SimulatorConfig, conn: u32, bytes: &[u8]) -> Flow {
        let Some(id) = message::id_of(bytes) else {
            self.counters.truncated += 1;
            return Flow::Continue;
        };
        let Some(name) = self.table.known_name(id) else {
            let silence = match self.table.has_id(id) {
                true => Silence::Unimplemented,
                false => Silence::UnknownId,
            };
            return self.silent(silence, id);
        };
        *self.counters.requests.entry(name).or_default() += 1;
        let conns = &self.conns;
        let is_open = |handle: u32| conns.contains_key(&handle);
        let runner = Runner {
            table: &self.table,
            faults: &mut self.faults,
            ctx: Ctx {
                state: &mut self.state,
                config,
                client_index: 0,
            },
            pid: self.pid,
            conn,
            is_open: &is_open,
            answer: Answer::default(),
        };
        match runner.run(name, bytes) {
            Ok(answer) => self.deliver(conn, answer),
            Err(silence) => self.silent(silence, id),
        }
    }

    fn silent(&mut self, silence: Silence, id: u16) -> Flow {
        tracing::debug!(id, ?silence, "request dropped without a reply, as VPP does");
        match silence {
            Silence::UnknownId => self.counters.unknown_ids += 1,
            Silence::Unimplemented => self.counters.unimplemented += 1,
            Silence::Truncated => self.counters.truncated += 1,
        }
        Flow::Continue
    }

    fn deliver(&mut self, conn: u32, answer: Answer) -> Flow {
        if answer.injected_drop {
            self.counters.injected_drops += 1;
        }
        if let Some(to) = answer.to {
            match self.conns.get(&to) {
                Some(target) => {
                    for frame in answer.frames {
                        let _ = target.tx.send(Outgoing::Frame(frame));
                    }
                }
                None => {
                    tracing::debug!(
                        client_index = to,
                        "no registration with that handle: reply dropped"
                    );
                    self.counters.wrong_client_index += 1;
                }
            }
        }
        self.publish_changes();
        let mut flow = Flow::Continue;
        for handle in answer.close {
            self.close(handle);
            if handle == conn {
                flow = Flow::Close;
            }
        }
        flow
    }

    /// Sends every recorded interface change to every subscriber.
    pub(super) fn publish_changes(&mut self) {
        let changes = self.state.take_changes();
        if changes.is_empty() || self.state.subscribers.is_empty() {
            return;
        }
        let Some(msg_id) = self.table.id(SwInterfaceEvent::NAME) else {
            return;
        };
        for change in changes {
            for (&client_index, &pid) in &self.state.subscribers {
                let Some(subscriber) = self.conns.get(&client_index) else {
                    continue;
                };
                let event = SwInterfaceEvent {
                    pid,
                    sw_if_index: change.sw_if_index,
                    flags: change.flags,
                    deleted: change.deleted,
                };
                let header = Header {
                    msg_id,
                    client_index,
                    context: 0,
                };
                if let Ok(bytes) = message::encode(&event, header) {
                    let _ = subscriber.tx.send(Outgoing::Frame(frame::framed(&bytes)));
                }
            }
        }
    }

    /// Forgets a connection (and its subscription) and tells its tasks to close it.
    pub(super) fn close(&mut self, handle: u32) {
        self.state.subscribers.remove(&handle);
        if let Some(conn) = self.conns.remove(&handle) {
            let _ = conn.tx.send(Outgoing::Close);
            conn.stop.notify_one();
        }
    }

    /// VPP restarted: every connection closed, state back to local0 alone, a new pid and
    /// new message ids. Faults and counters are the test's, and stay.
    pub(super) fn restart(&mut self, config: &SimulatorConfig) {
        let handles: Vec<u32> = self.conns.keys().copied().collect();
        for handle in handles {
            self.close(handle);
        }
        self.generation += 1;
        let generation = self.generation;
        self.pid = config.pid.wrapping_add(generation as u32);
        self.state = VppState::new(config.seed ^ generation.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        self.table = Table::build(config.seed, generation);
    }
}
