//! The next hop: how a vWire reaches its endpoint (or the next node toward it), in domain
//! terms. [`NextHop`] is the contract; the daemon puts NSM's gRPC `NetworkService` behind it
//! (`nsm-serve`), tests put a scripted endpoint. Every call has a deadline.

use std::fmt;
use std::time::Duration;

use futures::future::BoxFuture;
use nsm_domain::vwire::{HopConnection, HopReply, HopRequest, StatusCode};

/// Calls to an endpoint (or the next hop toward it).
pub trait NextHop: Send + Sync + fmt::Debug + 'static {
    /// Forwards a Request; the next hop's answer, or why there is none.
    fn request(
        &self,
        url: &str,
        request: HopRequest,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<HopReply, NextHopError>>;

    /// Forwards a Close.
    fn close(
        &self,
        url: &str,
        connection: HopConnection,
        timeout: Duration,
    ) -> BoxFuture<'static, Result<(), NextHopError>>;
}

/// Why the next hop gave no usable answer. Each keeps what the peer said, so the caller can
/// tell a refusal from an absence and report the peer's own words.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NextHopError {
    /// The peer answered with an error status, or the transport failed with one (a peer
    /// that is not there is `Unavailable`; one that is too slow, `DeadlineExceeded`).
    #[error("{code}: {message}")]
    Status { code: StatusCode, message: String },
    /// The peer answered, but its reply does not make a connection (no mechanism, a bad
    /// context or path). Fix the peer.
    #[error("invalid reply: {0}")]
    InvalidReply(String),
}

impl NextHopError {
    pub fn status(code: StatusCode, message: impl Into<String>) -> Self {
        NextHopError::Status {
            code,
            message: message.into(),
        }
    }
}
