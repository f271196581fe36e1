//! Handlers for memif: socket files (socket_id → filename) and the interfaces on them.
//! Checks run in VPP's order (memif_api.c, then memif_create_if); a failed create leaves
//! sw_if_index 0, as VPP's zeroed argument struct does.

use nsm_vpp::api::*;

use super::devices::nonzero;
use super::dispatch::*;
use super::state::{SimInterface, SimKind};

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
/// than ethernet or ip → -12.
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
    let mut iface = SimInterface::new(SimKind::Memif(request));
    iface.mac = mac;
    MemifCreateV2Reply {
        retval: 0,
        sw_if_index: ctx.state.insert(iface),
    }
}

/// A missing index or an interface that is not a memif: -2.
pub(super) fn memif_delete(ctx: &mut Ctx<'_>, request: MemifDelete) -> MemifDeleteReply {
    let is_memif = ctx
        .state
        .get(request.sw_if_index)
        .is_some_and(|iface| matches!(iface.kind, SimKind::Memif(_)));
    let retval = match is_memif {
        true => {
            ctx.state.delete(request.sw_if_index);
            0
        }
        false => INVALID_SW_IF_INDEX,
    };
    MemifDeleteReply { retval }
}

pub(super) fn memif_dump(ctx: &mut Ctx<'_>, _: MemifDump) -> Vec<MemifDetails> {
    ctx.state
        .interfaces()
        .filter_map(|iface| match &iface.kind {
            SimKind::Memif(memif) => Some(MemifDetails {
                sw_if_index: iface.sw_if_index,
                hw_addr: iface.mac,
                id: memif.id,
                role: memif.role,
                mode: memif.mode,
                zero_copy: memif.role == MemifRole::MEMIF_ROLE_API_SLAVE && !memif.no_zero_copy,
                socket_id: memif.socket_id,
                ring_size: memif.ring_size,
                buffer_size: memif.buffer_size,
                flags: iface.flags(),
                if_name: fixed(&iface.name),
            }),
            _ => None,
        })
        .collect()
}
