//! # nsm-proto: Network Service Mesh's gRPC API
//!
//! This crate will hold `.proto` files wire-compatible with NSM's API (packages
//! `connection`, `connectioncontext`, `networkservice`, `registry`, `ipam`), compiled at build
//! time without a system `protoc`, and the conversions between wire types and the domain
//! types of `nsm-events`.
//!
//! It is empty today: nothing in the workspace speaks gRPC yet (the `nsm serve` issue fills
//! it). It exists now so that the workspace has its final shape and dependency direction
//! (`proto → events`).

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]
