//! # nsm-vpp: a client for fd.io VPP's binary API
//!
//! A VPP binary-API client that knows nothing of the mesh: the socket transport to VPP's
//! API socket, the message codec generated from VPP's JSON definitions, typed requests,
//! replies, dumps and events.
//!
//! - [`client`]: a connection to VPP's API socket (handshake, CRC check, requests,
//!   dumps, events, timeouts); [`retval`]: VPP's error numbers by name.
//! - [`codec`]: the wire encoding of every field type (big-endian, packed).
//! - [`message`]: what a message is (name, CRC, header shape, reply) and whole-message
//!   framing; [`api`]: the generated messages (VPP 26.06); [`dynamic`]: messages by name as
//!   JSON; [`frame`]: the socket's framing.
//!
//! The crate depends on no other crate of the workspace, and never will.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod address;
#[rustfmt::skip]
pub mod api;
pub mod client;
pub mod codec;
pub mod dynamic;
pub mod frame;
pub mod message;
pub mod retval;
