//! From one request's bytes to what goes back: decode with the generated type, apply the
//! pending faults for that message, run its handler, encode the reply (or the details of a
//! dump) with the id of the current table and the request's context.
//!
//! Replies are addressed, as in VPP, to the registration named by the request's
//! `client_index`, not to the socket the request came on: a wrong index means the request
//! runs and its reply goes nowhere (or to that other client). Only `sockclnt_create`, which
//! has no client_index, is answered on its own socket.

use nsm_vpp::api::*;
use nsm_vpp::codec::FixedString;
use nsm_vpp::frame;
use nsm_vpp::message::{self, Dump, Header, Message, Request};

use super::SimulatorConfig;
use super::faults::Faults;
use super::state::{VppState, clip};
use super::table::Table;
use super::{devices, interface, memif};

// VPP's error codes (vnet/error.h) the handlers answer with.
pub(super) const NO_SUCH_FIB: i32 = -3;
pub(super) const INVALID_SW_IF_INDEX: i32 = -2;
pub(super) const NO_SUCH_ENTRY: i32 = -6;
pub(super) const INVALID_VALUE: i32 = -7;
pub(super) const SYSCALL_ERROR_1: i32 = -11;
pub(super) const SYSCALL_ERROR_2: i32 = -12;
pub(super) const SYSCALL_ERROR_3: i32 = -13;
pub(super) const SYSCALL_ERROR_4: i32 = -14;
pub(super) const INVALID_REGISTRATION: i32 = -31;
pub(super) const NO_MATCHING_INTERFACE: i32 = -44;
pub(super) const ADDRESS_NOT_FOUND_FOR_INTERFACE: i32 = -60;
pub(super) const NO_SUCH_NODE: i32 = -63;
pub(super) const NO_SUCH_NODE2: i32 = -64;
pub(super) const SUBIF_ALREADY_EXISTS: i32 = -68;
pub(super) const INVALID_INTERFACE: i32 = -71;
pub(super) const INVALID_ARGUMENT: i32 = -73;
pub(super) const UNEXPECTED_INTF_STATE: i32 = -74;
pub(super) const TUNNEL_EXIST: i32 = -75;
pub(super) const INVALID_DECAP_NEXT: i32 = -76;
pub(super) const IF_ALREADY_EXISTS: i32 = -79;
pub(super) const SAME_SRC_DST: i32 = -82;
pub(super) const ENTRY_ALREADY_EXISTS: i32 = -116;
pub(super) const DUPLICATE_IF_ADDRESS: i32 = -127;
pub(super) const NETLINK_ERROR: i32 = -145;
pub(super) const INSTANCE_IN_USE: i32 = -147;

/// What a handler may use: the state, the configuration, who asked.
#[derive(Debug)]
pub(super) struct Ctx<'a> {
    pub(super) state: &'a mut VppState,
    pub(super) config: &'a SimulatorConfig,
    /// The request's client_index (VPP keys event subscriptions by it).
    pub(super) client_index: u32,
}

/// Why a request gets no answer at all (the cases VPP is silent about).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Silence {
    UnknownId,
    Unimplemented,
    Truncated,
}

/// What a handled request sends, and to whom.
#[derive(Debug, Default)]
pub(super) struct Answer {
    /// The registration the frames are for; None when nothing is owed to anyone.
    pub(super) to: Option<u32>,
    /// Whole frames (16-byte header included), in order.
    pub(super) frames: Vec<Vec<u8>>,
    /// Registrations to close once the frames and the events they caused are queued.
    pub(super) close: Vec<u32>,
    /// The answer was swallowed by an injected `drop_next`.
    pub(super) injected_drop: bool,
}

/// A reply that can carry a failure: `retval` set, index-like fields ~0 as VPP leaves them.
pub(super) trait Failable: Message {
    fn failed(retval: i32) -> Self;
}

macro_rules! failable {
    ($($reply:ident $({ $($field:ident: $value:expr),* })?;)*) => {$(
        impl Failable for $reply {
            #[allow(clippy::needless_update)]
            fn failed(retval: i32) -> Self {
                Self { retval, $($($field: $value,)*)? ..Default::default() }
            }
        }
    )*};
}

failable! {
    ShowVersionReply;
    WantInterfaceEventsReply;
    SwInterfaceSetFlagsReply;
    SwInterfaceTagAddDelReply;
    SwInterfaceAddDelAddressReply;
    SwInterfaceSetMtuReply;
    SwInterfaceSetRxModeReply;
    SwInterfaceSetL2XconnectReply;
    TapCreateV3Reply { sw_if_index: u32::MAX };
    TapDeleteV2Reply;
    AfPacketCreateV3Reply { sw_if_index: u32::MAX };
    AfPacketDeleteReply;
    MemifSocketFilenameAddDelV2Reply { socket_id: u32::MAX };
    MemifCreateV2Reply { sw_if_index: u32::MAX };
    MemifDeleteReply;
    VxlanAddDelTunnelV3Reply { sw_if_index: u32::MAX };
    L3xcUpdateReply;
    L3xcDelReply;
    IpNeighborAddDelReply;
    AddNodeNextReply { next_index: u32::MAX };
}

/// One request being handled.
pub(super) struct Runner<'a> {
    pub(super) table: &'a Table,
    pub(super) faults: &'a mut Faults,
    pub(super) ctx: Ctx<'a>,
    pub(super) pid: u32,
    /// The handle of the connection the request came on.
    pub(super) conn: u32,
    pub(super) is_open: &'a dyn Fn(u32) -> bool,
    pub(super) answer: Answer,
}

impl Runner<'_> {
    /// Handles the message `name` (already known to be in the table).
    pub(super) fn run(mut self, name: &str, bytes: &[u8]) -> Result<Answer, Silence> {
        match name {
            "sockclnt_create" => self.sockclnt_create(bytes)?,
            "sockclnt_delete" => self.sockclnt_delete(bytes)?,
            "control_ping" => self.control_ping(bytes)?,
            "show_version" => self.request(bytes, interface::show_version)?,
            "want_interface_events" => self.request(bytes, interface::want_interface_events)?,
            "sw_interface_dump" => self.dump(bytes, interface::sw_interface_dump)?,
            "sw_interface_set_flags" => self.request(bytes, interface::set_flags)?,
            "sw_interface_tag_add_del" => self.request(bytes, interface::tag_add_del)?,
            "sw_interface_add_del_address" => self.request(bytes, interface::add_del_address)?,
            "sw_interface_set_mtu" => self.request(bytes, interface::set_mtu)?,
            "sw_interface_set_rx_mode" => self.request(bytes, interface::set_rx_mode)?,
            "sw_interface_set_l2_xconnect" => self.request(bytes, interface::set_l2_xconnect)?,
            "l2_xconnect_dump" => self.dump(bytes, interface::l2_xconnect_dump)?,
            "l3xc_update" => self.request(bytes, interface::l3xc_update)?,
            "l3xc_del" => self.request(bytes, interface::l3xc_del)?,
            "l3xc_dump" => self.dump(bytes, interface::l3xc_dump)?,
            "ip_neighbor_add_del" => self.request(bytes, interface::ip_neighbor_add_del)?,
            "add_node_next" => self.request(bytes, interface::add_node_next)?,
            "tap_create_v3" => self.request(bytes, devices::tap_create_v3)?,
            "tap_delete_v2" => self.request(bytes, devices::tap_delete_v2)?,
            "sw_interface_tap_v2_dump" => self.dump(bytes, devices::tap_dump)?,
            "af_packet_create_v3" => self.request(bytes, devices::af_packet_create_v3)?,
            "af_packet_delete" => self.request(bytes, devices::af_packet_delete)?,
            "af_packet_dump" => self.dump(bytes, devices::af_packet_dump)?,
            "memif_socket_filename_add_del_v2" => self.request(bytes, memif::memif_socket)?,
            "memif_create_v2" => self.request(bytes, memif::memif_create_v2)?,
            "memif_delete" => self.request(bytes, memif::memif_delete)?,
            "memif_dump" => self.dump(bytes, memif::memif_dump)?,
            "memif_socket_filename_dump" => self.dump(bytes, memif::memif_socket_dump)?,
            "vxlan_add_del_tunnel_v3" => self.request(bytes, devices::vxlan_add_del)?,
            "vxlan_tunnel_v2_dump" => self.dump(bytes, devices::vxlan_dump)?,
            _ => return Err(Silence::Unimplemented),
        }
        Ok(self.answer)
    }

    fn decode<M: Message>(&mut self, bytes: &[u8]) -> Result<(Header, M), Silence> {
        let (header, message) = message::decode::<M>(bytes).map_err(|error| {
            tracing::debug!(message = M::NAME, %error, "request too short: dropped, as VPP does");
            Silence::Truncated
        })?;
        self.answer.to = Some(header.client_index);
        self.ctx.client_index = header.client_index;
        Ok((header, message))
    }

    fn request<M: Request>(
        &mut self,
        bytes: &[u8],
        handler: fn(&mut Ctx<'_>, M) -> M::Reply,
    ) -> Result<(), Silence>
    where
        M::Reply: Failable,
    {
        let (header, request) = self.decode::<M>(bytes)?;
        let reply = match self.faults.take_failure(M::NAME) {
            Some(retval) => M::Reply::failed(retval),
            None => handler(&mut self.ctx, request),
        };
        self.push(&reply, header.context)?;
        self.apply_drop(M::NAME);
        Ok(())
    }

    fn dump<M: Dump>(
        &mut self,
        bytes: &[u8],
        handler: fn(&mut Ctx<'_>, M) -> Vec<M::Details>,
    ) -> Result<(), Silence> {
        let (header, request) = self.decode::<M>(bytes)?;
        let mut details = match self.faults.take_failure(M::NAME) {
            Some(_) => Vec::new(),
            None => handler(&mut self.ctx, request),
        };
        if let Some(keep) = self.faults.take_close_mid_dump() {
            details.truncate(keep);
            self.answer.close.push(self.conn);
        }
        for detail in &details {
            self.push(detail, header.context)?;
        }
        self.apply_drop(M::NAME);
        Ok(())
    }

    /// An injected drop: the request ran, its answer is swallowed.
    fn apply_drop(&mut self, name: &str) {
        if self.faults.take_drop(name) {
            self.answer.frames.clear();
            self.answer.to = None;
            self.answer.injected_drop = true;
        }
    }

    fn push<R: Message>(&mut self, reply: &R, context: u32) -> Result<(), Silence> {
        let msg_id = self.table.id(R::NAME).ok_or(Silence::Unimplemented)?;
        let header = Header {
            msg_id,
            client_index: 0,
            context,
        };
        match message::encode(reply, header) {
            Ok(bytes) => self.answer.frames.push(frame::framed(&bytes)),
            Err(error) => tracing::warn!(message = R::NAME, %error, "reply not encodable: dropped"),
        }
        Ok(())
    }

    fn sockclnt_create(&mut self, bytes: &[u8]) -> Result<(), Silence> {
        let (header, _) = self.decode::<SockclntCreate>(bytes)?;
        // No client_index in this request: VPP answers on the socket it arrived on.
        self.answer.to = Some(self.conn);
        let reply = match self.faults.take_failure(SockclntCreate::NAME) {
            Some(response) => SockclntCreateReply {
                response,
                ..Default::default()
            },
            None => SockclntCreateReply {
                response: 0,
                index: self.conn,
                message_table: self.table.handshake(&self.faults.advertised),
            },
        };
        self.push(&reply, header.context)?;
        self.apply_drop(SockclntCreate::NAME);
        Ok(())
    }

    fn sockclnt_delete(&mut self, bytes: &[u8]) -> Result<(), Silence> {
        let (header, request) = self.decode::<SockclntDelete>(bytes)?;
        let known = (self.is_open)(request.index);
        let failure = self.faults.take_failure(SockclntDelete::NAME);
        let response = failure.unwrap_or(if known { 1 } else { -1 });
        self.push(&SockclntDeleteReply { response }, header.context)?;
        if failure.is_none() && known {
            // VPP frees the named registration and closes the requester's (the one its
            // client_index names): the same connection when the client is well behaved.
            self.answer.close.push(header.client_index);
            if request.index != header.client_index {
                self.answer.close.push(request.index);
            }
        }
        self.apply_drop(SockclntDelete::NAME);
        Ok(())
    }

    fn control_ping(&mut self, bytes: &[u8]) -> Result<(), Silence> {
        let (header, _) = self.decode::<ControlPing>(bytes)?;
        let msg_id = self
            .table
            .id(ControlPingReply::NAME)
            .ok_or(Silence::Unimplemented)?;
        let retval = self.faults.take_failure(ControlPing::NAME).unwrap_or(0);
        // Written by hand: VPP's control_ping_reply body is `retval, client_index, vpe_pid`
        // (18 bytes, memclnt.api), and the generated ControlPingReply lacks the middle field
        // (the generator takes any field named client_index for a header field).
        let mut reply = Vec::with_capacity(18);
        reply.extend_from_slice(&msg_id.to_be_bytes());
        reply.extend_from_slice(&header.context.to_be_bytes());
        reply.extend_from_slice(&retval.to_be_bytes());
        reply.extend_from_slice(&0u32.to_be_bytes());
        reply.extend_from_slice(&self.pid.to_be_bytes());
        self.answer.frames.push(frame::framed(&reply));
        self.apply_drop(ControlPing::NAME);
        Ok(())
    }
}

/// `text` in a fixed-size field: cut to N-1 bytes; a text with a NUL becomes empty.
pub(super) fn fixed<const N: usize>(text: &str) -> FixedString<N> {
    FixedString::new(clip(text, N - 1)).unwrap_or_default()
}
