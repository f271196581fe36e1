//! # nsm-samples: a sample endpoint and client, and the demo
//!
//! What a user runs to see the mesh work, and what the end-to-end tests run as peers:
//!
//! * [`endpoint`]: `nsm endpoint`, a Network Service Endpoint like NSM's icmp-responder,
//!   with IPAM whose allocations survive restarts;
//! * [`request`]: `nsm request`, a client like NSM's cmd-nsc: it requests a vWire, keeps it
//!   refreshed and closes it on exit;
//! * [`demo`]: `nsm demo`, a node, an endpoint and two clients in network namespaces, pings
//!   across the vWires, and each vWire's story from the log.
//!
//! They speak to a node only through NSM's gRPC API (`nsm-proto`), as any other client or
//! endpoint would; nothing here reaches into the runtime.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod demo;
pub mod endpoint;
pub mod request;
mod signals;
