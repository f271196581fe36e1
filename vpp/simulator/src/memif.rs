//! Handlers for memif: socket files (socket_id → filename) and the interfaces on them.
//! Checks run in VPP's order (memif_api.c, then memif_create_if); a create refused by a
//! check leaves sw_if_index 0, as VPP's zeroed argument struct does.
//!
//! A socket file is as real as VPP's: the first master memif on a socket binds a UNIX
//! socket at its absolute path (VPP makes no directory for it, so a missing one is the
//! bind's failure, -14, whose reply carries the index the interface had before VPP freed
//! it again); the last memif on it closes the socket; the file stays on disk in every case,
//! deleting the socket id included, as VPP leaves it. Abstract and relative names (the
//! latter under VPP's runtime folder, which the simulator has not) and socket 0 are not
//! bound.

use std::io;
use std::os::unix::fs::FileTypeExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::Path;

use nsm_vpp::api::*;

use super::devices::nonzero;
use super::dispatch::*;
use super::state::{SimInterface, SimKind, VppState};

const DEFAULT_MEMIF_RING: u32 = 1024;
const DEFAULT_MEMIF_BUFFER: u16 = 2048;

/// socket_id 0 → -73 (the default cannot be changed); ~0 on add allocates an id. Re-adding
/// the same filename is 0, another filename -116; deleting an unknown id is -73, one a
/// memif still uses -74. The reply carries the socket id (allocated or given).
pub(super) fn memif_socket(
    ctx: &mut Ctx<'_>,
    request: MemifSocketFilenameAddDelV2,
) -> MemifSocketFilenameAddDelV2Reply {
    let mut socket_id = request.socket_id;
    if request.is_add && socket_id == u32::MAX {
        socket_id = ctx.state.unused_socket_id();
    }
    let filename = request.socket_filename.as_str();
    let in_use = ctx
        .state
        .interfaces()
        .any(|iface| matches!(&iface.kind, SimKind::Memif(memif) if memif.socket_id == socket_id));
    let sockets = &mut ctx.state.memif_sockets;
    let retval = match (request.is_add, sockets.get(&socket_id)) {
        _ if socket_id == 0 || socket_id == u32::MAX => INVALID_ARGUMENT,
        (true, _) if filename.is_empty() => INVALID_ARGUMENT,
        (true, Some(known)) if known == filename => 0,
        (true, Some(_)) => ENTRY_ALREADY_EXISTS,
        (true, None) => {
            sockets.insert(socket_id, filename.to_owned());
            0
        }
        (false, None) => INVALID_ARGUMENT,
        (false, Some(_)) if in_use => UNEXPECTED_INTF_STATE,
        (false, Some(_)) => {
            sockets.remove(&socket_id);
            0
        }
    };
    MemifSocketFilenameAddDelV2Reply { retval, socket_id }
}

/// A ring size that is not a power of two → -73; an unknown socket_id → -73; a socket
/// already used with the other role, or the same id on that socket → -68; a mode other
/// than ethernet or ip → -12 (VPP 26.06 crashes on punt/inject instead); the first master
/// on a socket whose file cannot be bound → -14 with the index it would have had.
pub(super) fn memif_create_v2(ctx: &mut Ctx<'_>, mut request: MemifCreateV2) -> MemifCreateV2Reply {
    let failed = |retval| MemifCreateV2Reply {
        retval,
        sw_if_index: 0,
    };
    request.ring_size = nonzero(request.ring_size, DEFAULT_MEMIF_RING);
    request.buffer_size = nonzero(request.buffer_size, DEFAULT_MEMIF_BUFFER);
    if !request.ring_size.is_power_of_two() {
        return failed(INVALID_ARGUMENT);
    }
    if !ctx.state.memif_sockets.contains_key(&request.socket_id) {
        return failed(INVALID_ARGUMENT);
    }
    let clash = ctx.state.interfaces().any(|iface| match &iface.kind {
        SimKind::Memif(other) if other.socket_id == request.socket_id => {
            other.role != request.role || other.id == request.id
        }
        _ => false,
    });
    if clash {
        return failed(SUBIF_ALREADY_EXISTS);
    }
    let mac = match request.mode {
        MemifMode::MEMIF_MODE_API_ETHERNET if request.hw_addr == [0; 6] => ctx.state.random_mac(),
        MemifMode::MEMIF_MODE_API_ETHERNET => request.hw_addr,
        MemifMode::MEMIF_MODE_API_IP => [0; 6],
        _ => return failed(SYSCALL_ERROR_2),
    };
    if request.role == MemifRole::MEMIF_ROLE_API_MASTER
        && let Err(error) = listen(ctx.state, request.socket_id)
    {
        tracing::debug!(%error, "memif_plugin: clib_socket_init failed");
        return MemifCreateV2Reply {
            retval: SYSCALL_ERROR_4,
            sw_if_index: ctx.state.next_index(),
        };
    }
    let mut iface = SimInterface::new(SimKind::Memif(request));
    iface.mac = mac;
    MemifCreateV2Reply {
        retval: 0,
        sw_if_index: ctx.state.insert(iface),
    }
}

/// A missing index or an interface that is not a memif: -2. The last memif on a socket
/// closes its listening socket (the file stays).
pub(super) fn memif_delete(ctx: &mut Ctx<'_>, request: MemifDelete) -> MemifDeleteReply {
    let socket_id = match ctx.state.get(request.sw_if_index).map(|iface| &iface.kind) {
        Some(SimKind::Memif(memif)) => memif.socket_id,
        _ => {
            return MemifDeleteReply {
                retval: INVALID_SW_IF_INDEX,
            };
        }
    };
    ctx.state.delete(request.sw_if_index);
    if memifs_on(ctx.state, socket_id) == 0 {
        ctx.state.memif_listeners.remove(&socket_id);
    }
    MemifDeleteReply { retval: 0 }
}

fn memifs_on(state: &VppState, socket_id: u32) -> usize {
    state
        .interfaces()
        .filter(
            |iface| matches!(&iface.kind, SimKind::Memif(memif) if memif.socket_id == socket_id),
        )
        .count()
}

/// Opens the listening socket of `socket_id` unless it is open (or not a file VPP binds),
/// as VPP's clib_socket_init does: a socket file nobody listens on is replaced, anything
/// else at the path is an error.
fn listen(state: &mut VppState, socket_id: u32) -> io::Result<()> {
    let Some(filename) = state.memif_sockets.get(&socket_id) else {
        return Ok(());
    };
    let path = Path::new(filename);
    if socket_id == 0 || !path.is_absolute() || state.memif_listeners.contains_key(&socket_id) {
        return Ok(());
    }
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            let stale = matches!(
                UnixStream::connect(path),
                Err(e) if e.kind() == io::ErrorKind::ConnectionRefused
            );
            if !stale {
                return Err(io::Error::other(format!("Active listener on '{filename}'")));
            }
            std::fs::remove_file(path)?;
        }
        Ok(_) => {
            return Err(io::Error::other(format!(
                "File '{filename}' already exists"
            )));
        }
        Err(_) => {}
    }
    let listener = UnixListener::bind(path)?;
    state.memif_listeners.insert(socket_id, listener);
    Ok(())
}

/// Every socket file, VPP's default (id 0) included.
pub(super) fn memif_socket_dump(
    ctx: &mut Ctx<'_>,
    _: MemifSocketFilenameDump,
) -> Vec<MemifSocketFilenameDetails> {
    ctx.state
        .memif_sockets
        .iter()
        .map(|(&socket_id, filename)| MemifSocketFilenameDetails {
            socket_id,
            socket_filename: fixed(filename),
        })
        .collect()
}

/// Ring and buffer sizes are those VPP reports: what a connected slave runs with (its
/// own, here); ring 1 (2^0) and buffer 0 for a slave whose peer is not connected (link down
/// here) and for every master, connected or not (VPP 26.06 fills in neither for a master).
pub(super) fn memif_dump(ctx: &mut Ctx<'_>, _: MemifDump) -> Vec<MemifDetails> {
    ctx.state
        .interfaces()
        .filter_map(|iface| match &iface.kind {
            SimKind::Memif(memif) => Some((iface, memif)),
            _ => None,
        })
        .map(|(iface, memif)| {
            let running = memif.role == MemifRole::MEMIF_ROLE_API_SLAVE && iface.link_up;
            MemifDetails {
                sw_if_index: iface.sw_if_index,
                hw_addr: iface.mac,
                id: memif.id,
                role: memif.role,
                mode: memif.mode,
                zero_copy: memif.role == MemifRole::MEMIF_ROLE_API_SLAVE && !memif.no_zero_copy,
                socket_id: memif.socket_id,
                ring_size: if running { memif.ring_size } else { 1 },
                buffer_size: if running { memif.buffer_size } else { 0 },
                flags: iface.flags(),
                if_name: fixed(&iface.name),
            }
        })
        .collect()
}
