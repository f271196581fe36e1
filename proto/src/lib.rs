//! # nsm-proto: Network Service Mesh's gRPC API
//!
//! This crate owns the wire format nsm-rs speaks to NSM peers (NSCs, nsmgrs, forwarders,
//! endpoints, registries): the `.proto` files under `proto/`, written for nsm-rs to be
//! wire-compatible with NSM API v1.15, and the Rust code generated from them.
//!
//! ## What is here
//!
//! | module | proto package | holds |
//! |---|---|---|
//! | [`connection`] | `connection` | `Connection`, `Path`, `Mechanism`, `State`, the `MonitorConnection` service |
//! | [`connectioncontext`] | `connectioncontext` | `ConnectionContext`: IP, DNS and Ethernet context, MTU |
//! | [`networkservice`] | `networkservice` | `NetworkServiceRequest`, the `NetworkService` service (`Request`, `Close`) |
//! | [`registry`] | `registry` | `NetworkService`, `NetworkServiceEndpoint`, the two registry services |
//! | [`ipam`] | `ipam` | the vL3 prefix server's `IPAM` service |
//!
//! Each module has prost messages, a tonic client (`*_client`) and a tonic server
//! (`*_server`) for each service of its package. The servers decode requests with
//! [`codec::ServerCodec`], which answers a request that is not valid protobuf with
//! `INVALID_ARGUMENT` (tonic's default says `INTERNAL`); the clients use tonic's
//! `ProstCodec`. [`FILE_DESCRIPTOR_SET`] is the encoded
//! descriptor set of the five files and the well-known types they import, for gRPC
//! reflection.
//!
//! ## Invariants
//!
//! * **Wire compatibility is the contract.** Every package, message, field name, number,
//!   type and label, enum value and method path matches NSM API v1.15
//!   (`shared/reference/nsm-api.md`). `tests/wire_compat/nsm_api.rs` holds that table and
//!   `tests/wire_compat.rs` fails on any drift; change a `.proto` file only together with
//!   that table, and only to follow NSM.
//! * Proto names keep NSM's spelling, including `Route.nextHop` and `ConnectionContext.MTU`
//!   (they set the JSON names that k8s CRDs and OPA use). prost renames them in Rust only:
//!   `next_hop`, `mtu`, `r#type`, and enum values lose their prefix (`State::Up`).
//! * Imports are flat, as in NSM (`import "connection.proto"`), so descriptor file names
//!   are bare (`connection.proto`). The three packages of NSM's `networkservice` folder
//!   (one Go package there) are sibling modules here, so generated code can name
//!   `super::connection::Connection`.
//! * Code is generated in `build.rs` by `protox` (pure Rust, no system `protoc`) and
//!   `tonic-prost-build`; nothing generated is checked in.
//!
//! [`transport`] turns `unix://` and `tcp://` URLs into channels and listen addresses, in
//! plaintext or mutual TLS ([`transport::security`]); [`listen`] binds them and serves gRPC
//! on them.
//!
//! [`convert`] turns these wire types into the domain types of `nsm-domain` (validating, with
//! errors that name the field and become gRPC `InvalidArgument`) and back (lossless).
//!
//! It implements no service: the node's are `nsm-serve`'s, the sample endpoint's
//! `nsm-samples`'. It depends on `nsm-domain` (the model it converts to) and `nsm-identity`
//! (mutual TLS for its listeners and channels) only, so the runtime never sees protobuf.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

pub mod codec;
pub mod convert;
pub mod listen;
pub mod monitor;
pub mod transport;

/// Includes the servers `build.rs` generated for package `$package` (with
/// [`codec::ServerCodec`]) beside its messages and clients.
macro_rules! include_servers {
    ($package:literal) => {
        include!(concat!(env!("OUT_DIR"), "/server/", $package, ".rs"));
    };
}

/// The encoded `google.protobuf.FileDescriptorSet` of NSM's five `.proto` files and the
/// well-known types they import (`google/protobuf/{empty,timestamp}.proto`), with source
/// info. Feed it to a gRPC reflection service, or decode it with
/// `prost_types::FileDescriptorSet`.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/nsm_descriptor.bin"));

/// Package `connection`: a connection, its path and mechanism, and connection monitoring.
pub mod connection {
    tonic::include_proto!("connection");
    include_servers!("connection");
}

/// Package `connectioncontext`: IP, DNS and Ethernet configuration of a connection.
pub mod connectioncontext {
    tonic::include_proto!("connectioncontext");
}

/// Package `networkservice`: the `NetworkService` service (`Request`, `Close`).
pub mod networkservice {
    tonic::include_proto!("networkservice");
    include_servers!("networkservice");
}

/// Package `registry`: network services, endpoints, and their registries.
pub mod registry {
    tonic::include_proto!("registry");
    include_servers!("registry");
}

/// Package `ipam`: the vL3 prefix server.
pub mod ipam {
    tonic::include_proto!("ipam");
    include_servers!("ipam");
}
