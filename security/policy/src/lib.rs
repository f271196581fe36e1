//! Authorization: given who calls (the SPIFFE ID from its TLS certificate), what it asks,
//! and the path it carries (segments with their tokens), say allow, or deny naming the
//! policy that failed and why. The policies are Rego, evaluated with regorus: NSM's
//! defaults, written here with their semantics, plus a per-Network-Service allow list.
//!
//! # What it owns, and what it does not
//!
//! - The input model ([`Input`]): plain facts about one call. The crate does no
//!   cryptography and knows no gRPC or mesh type: the caller (the coordinator's gRPC adapter)
//!   decodes tokens, verifies their signatures against the peer certificate and hands over the
//!   outcomes ([`input`] says who must compute what). Tokens themselves never enter, so no
//!   refusal can leak one.
//! - The policies, in `policies/*.rego`, embedded with `include_str!`. Each is its own package
//!   `nsm.<name>` with a `deny` rule: a set of messages, empty when the call is fine.
//!
//!   | policy | applies to | refuses when |
//!   |---|---|---|
//!   | `tokens_valid` | path calls (network service and registry), both sides | a checked segment has no token, or one that is not a JWT; the path index is outside the path |
//!   | `tokens_expired` | path calls, both sides | a checked token has `exp <= now`, or no `exp` |
//!   | `tokens_chained` | path calls, both sides | the `aud` of checked segment i lacks the `sub` of segment i+1 (also: a wrong audience) |
//!   | `prev_token_signed` | Request/Close, server | segment `index - 1` is not signed by the caller |
//!   | `next_token_signed` | Request/Close, client | segment `index + 1` is missing or not signed by the server |
//!   | `client_allowed` | Register/Unregister, server | the resource was first registered by another identity |
//!   | `service_connection` | MonitorConnections, server | the caller owns none of the selected connections |
//!   | `service_allow_list` | Request, server | `data.services` exists and no entry matches service and caller |
//!
//!   "Checked segments" are `0..=path.index` server side (this hop signs its own segment
//!   before authorizing, as NSM's chain does) and the whole reply path client side.
//!
//! - The engine ([`Policies`]): compiled once at start; a policy directory replaces builtins by
//!   file name or adds policies (evaluated for every call); JSON data files are merged into
//!   `data`. A policy that does not parse is refused at start with its file and line, and so
//!   is one that fails to evaluate on the well-formed sample calls of its scope (regorus
//!   accepts an unknown function until it is called).
//!   [`Policies::authorize`] evaluates the policies in order and returns the first refusal
//!   ([`Denied`]); an evaluation error is a refusal, never an allow.
//!
//! Timing: [`sample::three_hop_request`] is the input `nsm bench authz` times. Measured on
//! the 2-core development machine, release build: p50 about 55 µs (server side, builtins),
//! 45 µs (client side), 90 µs (server side with an allow list); see the ignored test
//! `measure_authorize_three_hops`.

#![forbid(unsafe_code)]
#![deny(rust_2018_idioms)]

mod builtin;
mod diagnostic;
mod document;
mod error;
pub mod input;
mod policies;
pub mod sample;
mod source;

pub use diagnostic::SourceLocation;
pub use error::{Denied, LoadError};
pub use input::{
    Call, Input, MonitorScope, Path, Resource, ResourceKind, Segment, SelectedConnection, Side,
    TokenFacts,
};
pub use policies::Policies;
