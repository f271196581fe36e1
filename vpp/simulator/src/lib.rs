//! # nsm-vpp-simulator: a simulated VPP on a UNIX socket, for tests and benchmarks
//!
//! Owns a fake VPP API server and nothing else: it is not a data plane and it is never
//! linked into the daemon (`nsm-serve`); tests and `nsm bench vpp` use it, and it must agree
//! with a real VPP on everything the forwarder relies on.
//!
//! [`Simulator`] speaks VPP 26.06's binary API over the socket
//! transport as VPP does (see `vpp-binary-api.md`): the same framing; the `sockclnt_create`
//! handshake (static id 15) whose message table gives memclnt's messages their static ids
//! and every other message (this crate's, and a few dozen it does not know) an id from 29
//! up that changes with the seed and on every restart; replies addressed by `client_index`
//! (silently lost when it names no client); requests handled strictly in order per
//! connection, so a dump is ended by the client's `control_ping`; `sw_interface_event`s
//! after the reply that caused them; VPP's retvals for the forwarder's messages (tap,
//! af_packet, memif, vxlan, l2 and l3 cross-connects, flags, tags, addresses, MTU, rx
//! mode). Its state is one VPP's: every connection sees the same interfaces.
//!
//! Tests inject faults through the handle (failed, slow, lost or cut-off replies, a wrong
//! CRC in the table, a VPP restart, a listener that refuses connections) and read state
//! and counters back. It is not a data plane: a link is up when its interface is admin up
//! and has carrier (on unless a test clears it, see
//! [`set_carrier`](crate::Simulator::set_carrier)), and nothing forwards packets.
//!
//! Where it touches the host, it does what VPP does: the first master memif on a socket
//! file binds a real UNIX socket there (a missing folder fails as VPP's bind does, -14) and
//! leaves the file behind; a deleted interface's index is given to the next interface, as
//! VPP's pool gives it.
//!
//! Where the reference is silent, the retvals are those of VPP's source (each handler's
//! comment says which) or what VPP 26.06 was seen to answer. Registration handles are
//! `0x8000_0000 | n` for the n-th connection since start, never reused, even across
//! restarts, so a closing connection of an earlier run can never be confused with a new one.
//!
//! Layout: `state` holds the simulated VPP's tables, `table` its message ids; `dispatch`
//! turns a request into its answer with the handlers in `interface`, `devices` and
//! `memif`; `linux_tap` makes a tap's Linux side for real when a test asks
//! ([`SimulatorConfig::linux_taps`]); `world` keeps everything behind one lock and fans
//! events out; `connection` owns the sockets; `faults` is what tests inject and count. No
//! input panics the simulator: what VPP would drop is logged with `tracing` and dropped.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

use std::collections::HashSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

mod connection;
mod devices;
mod dispatch;
mod faults;
mod interface;
mod linux_tap;
mod memif;
mod state;
mod table;
mod world;

#[cfg(test)]
mod tests;

pub use faults::SimStats;
pub use state::{LOCAL0, SimInterface, SimKind, SimL3xc};

use connection::{ListenSlot, lock};
use world::World;

/// How a simulated VPP is set up.
#[derive(Debug, Clone)]
pub struct SimulatorConfig {
    /// Where the API socket is created (a stale file there is removed first).
    pub socket: PathBuf,
    /// Seeds the message-id assignment, MACs and allocated memif socket ids.
    pub seed: u64,
    /// `vpe_pid` in `control_ping_reply`; the n-th restart reports `pid + n`.
    pub pid: u32,
    /// Whether /dev/vhost-net exists: without it `tap_create_v3` fails -11, as on a kernel
    /// without vhost-net.
    pub vhost_net: bool,
    /// The host (Linux) interfaces af_packet can bind to; None means any name exists.
    pub host_interfaces: Option<HashSet<String>>,
    /// Whether a tap made with a `host_namespace` gets a real Linux side in that namespace
    /// (a veth named `host_if_name`, with the request's MAC, MTU and prefixes, up), removed
    /// with the tap, as VPP's is: for tests that check what a forwarder configures there.
    /// Needs root, `ip` and `nsenter`. Off by default: no tap touches the host.
    pub linux_taps: bool,
}

impl SimulatorConfig {
    /// A VPP on `socket` with vhost-net, any host interface, seed 0 and pid 29023.
    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            seed: 0,
            pid: 29023,
            vhost_net: true,
            host_interfaces: None,
            linux_taps: false,
        }
    }
}

/// A running simulated VPP. Cheap to clone; the last clone dropped shuts it down.
#[derive(Clone)]
pub struct Simulator {
    owner: Arc<Owner>,
}

/// Shuts the simulator down when the last handle goes (tasks hold [`Shared`], not this).
struct Owner {
    shared: Arc<Shared>,
}

impl Drop for Owner {
    fn drop(&mut self) {
        self.shared.shut_down();
    }
}

/// What the handle and the tasks share.
struct Shared {
    config: SimulatorConfig,
    runtime: tokio::runtime::Handle,
    world: Mutex<World>,
    listen: Mutex<ListenSlot>,
}

impl Shared {
    fn shut_down(&self) {
        lock(&self.listen).shut_down();
        let mut world = lock(&self.world);
        let handles: Vec<u32> = world.conns.keys().copied().collect();
        for handle in handles {
            world.close(handle);
        }
        let _ = std::fs::remove_file(&self.config.socket);
    }
}

impl fmt::Debug for Simulator {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Simulator")
            .field("socket", &self.owner.shared.config.socket)
            .finish_non_exhaustive()
    }
}

impl Simulator {
    /// Listens on `config.socket` and serves each connection in its own task. Must be
    /// called from within a Tokio runtime (an error otherwise).
    pub fn start(config: SimulatorConfig) -> io::Result<Simulator> {
        let runtime = tokio::runtime::Handle::try_current().map_err(|error| {
            io::Error::other(format!("the simulator needs a Tokio runtime: {error}"))
        })?;
        let mut listen = ListenSlot::default();
        listen.listen(&config.socket)?;
        let shared = Arc::new(Shared {
            world: Mutex::new(World::new(&config)),
            listen: Mutex::new(listen),
            runtime: runtime.clone(),
            config,
        });
        runtime.spawn(connection::accept_loop(shared.clone()));
        Ok(Simulator {
            owner: Arc::new(Owner { shared }),
        })
    }

    fn shared(&self) -> &Shared {
        &self.owner.shared
    }

    fn world(&self) -> std::sync::MutexGuard<'_, World> {
        lock(&self.shared().world)
    }

    pub fn socket_path(&self) -> &Path {
        &self.shared().config.socket
    }

    /// Stops listening, closes every connection and removes the socket file. Idempotent;
    /// dropping the last handle does the same.
    pub fn shutdown(&self) {
        self.shared().shut_down();
    }

    // Faults. Each is consumed by the next matching request, on any connection.

    /// The next `times` requests named `message` are answered with `retval` and change
    /// nothing (a dump sends no details). Replaces a pending failure; `times` 0 clears it.
    pub fn fail_next(&self, message: &str, retval: i32, times: u32) {
        self.world().faults.fail_next(message, retval, times);
    }

    /// Holds every request named `message` (`"*"`: every request) for `by` before handling
    /// it; the requests behind it on its connection wait too. Zero removes the delay.
    pub fn delay(&self, message: &str, by: Duration) {
        self.world().faults.set_delay(message, by);
    }

    /// The next `times` requests named `message` run, but their reply (or details) is not
    /// sent, as if lost. Events they cause are still sent.
    pub fn drop_next(&self, message: &str, times: u32) {
        self.world().faults.drop_next(message, times);
    }

    /// The next dump sends at most `details_before_close` details, then its connection is
    /// closed (before the control_ping that would end it is read).
    pub fn close_mid_dump(&self, details_before_close: usize) {
        self.world().faults.close_mid_dump(details_before_close);
    }

    /// From the next connection on, the handshake table names `message` with `crc` (so a
    /// client checking CRCs sees an incompatible VPP). The id still works.
    pub fn advertise_crc(&self, message: &str, crc: u32) {
        self.world()
            .faults
            .advertised
            .insert(message.to_owned(), crc);
    }

    /// Removes every pending fault, delay and CRC override.
    pub fn clear_faults(&self) {
        self.world().faults = Default::default();
    }

    /// VPP restarted: every connection is closed, the state is back to local0 alone
    /// (indices start again at 1), the pid changes and every dynamic message id changes.
    /// The listener stays; faults and counters are kept.
    pub fn restart(&self) {
        self.world().restart(&self.shared().config);
    }

    /// Closes the listener: connecting is refused (ECONNREFUSED) until
    /// [`Self::resume_listening`]. Open connections stay open.
    pub fn stop_listening(&self) {
        lock(&self.shared().listen).stop();
    }

    /// Listens again on the same path.
    pub fn resume_listening(&self) -> io::Result<()> {
        let _runtime = self.shared().runtime.enter();
        lock(&self.shared().listen).listen(&self.shared().config.socket)
    }

    // Introspection.

    /// Every interface, by sw_if_index.
    pub fn interfaces(&self) -> Vec<SimInterface> {
        self.world().state.interfaces().cloned().collect()
    }

    pub fn interface(&self, sw_if_index: u32) -> Option<SimInterface> {
        self.world().state.get(sw_if_index).cloned()
    }

    /// Every one-way L2 cross-connect as (rx, tx).
    pub fn xconnects(&self) -> Vec<(u32, u32)> {
        self.world().state.xconnects()
    }

    pub fn l3xc(&self) -> Vec<SimL3xc> {
        let world = self.world();
        let entries = world.state.l3xc.iter();
        entries
            .map(|(&(sw_if_index, is_ip6), paths)| SimL3xc {
                sw_if_index,
                is_ip6,
                paths: paths.clone(),
            })
            .collect()
    }

    /// Static neighbours as (sw_if_index, address, MAC).
    pub fn neighbors(&self) -> Vec<(u32, std::net::IpAddr, [u8; 6])> {
        let world = self.world();
        let entries = world.state.neighbors.iter();
        entries.map(|(&(on, ip), &mac)| (on, ip, mac)).collect()
    }

    /// Memif socket files as (socket_id, filename), 0 (VPP's default) included (as
    /// `memif_socket_filename_dump` lists them).
    pub fn memif_sockets(&self) -> Vec<(u32, String)> {
        let world = self.world();
        let sockets = world.state.memif_sockets.iter();
        sockets.map(|(id, name)| (*id, name.clone())).collect()
    }

    /// Interface-event subscribers as (client_index, pid).
    pub fn subscribers(&self) -> Vec<(u32, u32)> {
        let world = self.world();
        let subscribers = world.state.subscribers.iter();
        subscribers.map(|(client, pid)| (*client, *pid)).collect()
    }

    pub fn stats(&self) -> SimStats {
        let world = self.world();
        world.counters.snapshot(world.conns.len())
    }

    /// The vpe_pid of the current run.
    pub fn pid(&self) -> u32 {
        self.world().pid
    }

    /// The id `name` has in the current run's table.
    pub fn message_id(&self, name: &str) -> Option<u16> {
        self.world().table.id(name)
    }

    /// Adds an interface as if an earlier client (or an earlier run of the forwarder) had
    /// made it: it gets the next sw_if_index and the name its kind implies; everything else
    /// (tag, flags, addresses...) is taken as given. No event is sent. Returns the index.
    pub fn insert_interface(&self, interface: SimInterface) -> u32 {
        self.world().state.insert(interface)
    }

    /// Sets an interface's carrier (for a memif: whether its peer is connected), and so its
    /// link, telling subscribers. False if there is no such interface.
    pub fn set_carrier(&self, sw_if_index: u32, carrier: bool) -> bool {
        let mut world = self.world();
        let found = world.state.set_carrier(sw_if_index, carrier);
        world.publish_changes();
        found
    }
}
