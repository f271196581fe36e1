//! # nsm-dataplane: the packet plumbing behind one trait
//!
//! What a forwarder does to the data plane, and nothing else: plumb a vWire's two ends
//! together, unplumb them, check that a plumbed vWire is whole, list what exists, remove
//! what no vWire owns, and probe the datapath. It owns:
//!
//! * the contract: [`Dataplane`], its requests and records ([`PlumbRequest`], [`End`],
//!   [`DataplaneObject`], [`Liveness`]), its error ([`DataplaneError`]) and the `dry-run`
//!   data plane ([`DryRun`]), which plumbs nothing and says so;
//! * [`kernel`]: veth pairs between network namespaces through netlink (rtnetlink), and the
//!   raw-ICMP liveness probe;
//! * [`vpp`]: the VPP forwarder over VPP's binary API (`nsm-vpp`): af_packet, tap, memif and
//!   VXLAN ends, cross-connects, tags, and VPP's interface dumps.
//!
//! It does not own the log (a data plane returns what it did; the vWire records it), the
//! actors or their timing (no actix here: `nsm-runtime` drives these calls), nor gRPC.
//! Invariant: every object a data plane makes carries its vWire's id, so that
//! [`Dataplane::inventory`] finds it again after any crash.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod contract;
pub mod kernel;
pub mod vpp;

pub use contract::{
    Dataplane, DataplaneError, DataplaneObject, DryRun, End, Fault, Liveness, PlumbRequest,
};
