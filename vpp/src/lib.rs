//! # nsm-vpp: a client for fd.io VPP's binary API
//!
//! This crate will hold a VPP binary-API client that knows nothing of the mesh: the socket
//! transport, the message codec generated from VPP's JSON definitions, typed requests and
//! replies, and events.
//!
//! It is empty today: the VPP forwarder issue fills it. It exists now so that the workspace
//! has its final shape; it depends on no other crate of the workspace, and never will.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
