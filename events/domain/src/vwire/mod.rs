//! The vWire: its domain types, its events, its state as a fold over them, and the pure
//! decisions that produce them.
//!
//! Lifecycle (DESIGN.md §2):
//!
//! ```text
//! Requested ──► Established ──► Refreshed* ──► Closed
//!      │              │   └─► Healed*  │
//!      └──► Failed    └────────────────┴──► Expired   (deadline passed without refresh)
//! ```
//! `Closed`, `Failed` and `Expired` can follow `Requested` too; nothing follows them.
//! `DataplanePlumbed` (recorded with `Established`, or alone when a heal re-plumbs) and
//! `DataplaneUnplumbed` (recorded with the terminal event) say what the data plane did.

mod decide;
mod event;
mod hop;
mod model;
mod state;

pub use decide::{Command, LifecycleError, MAX_LIFETIME, VWireRequest, decide, decide_all};
pub use event::{
    Closed, ClosedBy, DataplanePlumbed, DataplaneUnplumbed, DataplaneWork, Established, Expired,
    Failed, FailureCode, FailureStage, Healed, ProbeFailed, Refreshed, Requested, VWireEvent,
};
pub use hop::{HopConnection, HopReply, HopRequest, Side, StatusCode};
pub use model::{
    ConnectionContext, DnsConfig, EndpointRef, EthernetContext, ExtraPrefixRequest, IpContext,
    IpFamily, IpNeighbor, Labels, Mechanism, MechanismClass, Path, PathSegment, PolicyRoute, Route,
    ServiceName, SpiffeId, VWIRE_STREAM_PREFIX, VWireId, parse_cidr,
};
pub use state::{Connection, Ending, FoldError, Plumbing, Status, VWire};

pub use crate::upcast::DecodeError;
