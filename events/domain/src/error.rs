//! The domain's own error: an envelope that cannot be made or read. The log maps it into its
//! `EnvelopeError` with the same words.

use std::sync::Arc;

/// Why an event envelope could not be made or read.
#[derive(Debug, Clone, thiserror::Error)]
pub enum EnvelopeError {
    /// A stream id that the log would refuse (empty, too long, spaces or control characters).
    /// Fix the caller: the name it was built from should have been checked at the edge.
    #[error("{0}")]
    InvalidStreamId(String),

    /// A payload could not be serialized (a bug in the caller's types).
    #[error("could not encode an event payload: {0}")]
    Encode(#[source] Arc<serde_json::Error>),

    /// A stored timestamp is not RFC 3339: the log is damaged. Run `nsm verify`.
    #[error("{0}")]
    BadTimestamp(String),
}

impl EnvelopeError {
    pub(crate) fn encode(error: serde_json::Error) -> Self {
        EnvelopeError::Encode(Arc::new(error))
    }
}
