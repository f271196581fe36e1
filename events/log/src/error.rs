//! Errors of the event store and of the vWire lifecycle. Each variant says what the caller
//! should do about it.

use std::path::PathBuf;
use std::sync::Arc;

use uuid::Uuid;

use nsm_domain::EnvelopeError;
use nsm_domain::envelope::StreamId;

/// Errors from the event store.
#[derive(Debug, Clone, thiserror::Error)]
pub enum StoreError {
    /// The stream is not at the version the caller expected: someone else appended first.
    /// Nothing was written. Re-read the stream and decide again.
    #[error("stream {stream} is at version {actual}, not the expected {expected}")]
    WrongExpectedVersion {
        stream: StreamId,
        expected: u64,
        actual: u64,
    },

    /// Some event ids of the append are already in the log but not all of them, or they are
    /// in another stream: the append is neither new nor a retry. Nothing was written.
    #[error("event {event_id} is already in the log, but not as part of this exact append")]
    IdempotencyMismatch { event_id: Uuid },

    /// The request could never be written (no events, invalid JSON, bad stream id...).
    /// Nothing was written; fix the caller.
    #[error("invalid append: {0}")]
    InvalidInput(String),

    /// The commit's outcome is unknown (the disk failed during COMMIT, or the writer stopped
    /// mid-batch). The events may or may not be durable: re-read the log before deciding.
    #[error("the outcome of the append is unknown: {0}")]
    OutcomeUnknown(String),

    /// The store's writer has stopped; nothing more can be appended. Nothing was written.
    #[error("the event store is closed")]
    Closed,

    /// The store is open read-only.
    #[error("the event store {path} is open read-only")]
    ReadOnly { path: PathBuf },

    /// The database could not be opened or is not usable as an nsm-rs event log.
    #[error("cannot use the event log {path}: {problem}")]
    Open { path: PathBuf, problem: OpenProblem },

    /// Data in the log does not make sense (bad timestamp, broken row). Run `nsm verify`.
    #[error("the event log is corrupt: {0}")]
    Corrupt(String),

    /// A payload could not be serialized (a bug in the caller's types).
    #[error("could not encode an event payload: {0}")]
    Encode(#[source] Arc<serde_json::Error>),

    /// SQLite failed a read or a write. For an append, nothing was written.
    #[error("database error: {0}")]
    Database(#[source] Arc<sqlx::Error>),

    /// SQLite failed a write of the journal writer. Nothing of the failed batch was written.
    #[error("database error: {0}")]
    Write(#[source] Arc<rusqlite::Error>),
}

impl StoreError {
    /// True when the caller cannot know whether its append is in the log.
    pub fn is_outcome_unknown(&self) -> bool {
        matches!(self, StoreError::OutcomeUnknown(_))
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        StoreError::Database(Arc::new(e))
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(e: rusqlite::Error) -> Self {
        StoreError::Write(Arc::new(e))
    }
}

impl From<serde_json::Error> for StoreError {
    fn from(e: serde_json::Error) -> Self {
        StoreError::Encode(Arc::new(e))
    }
}

impl From<EnvelopeError> for StoreError {
    fn from(e: EnvelopeError) -> Self {
        match e {
            EnvelopeError::InvalidStreamId(message) => StoreError::InvalidInput(message),
            EnvelopeError::Encode(source) => StoreError::Encode(source),
            EnvelopeError::BadTimestamp(message) => StoreError::Corrupt(message),
        }
    }
}

/// Why an event log could not be opened.
#[derive(Debug, Clone, thiserror::Error)]
pub enum OpenProblem {
    #[error("its directory does not exist; create it or pass another --db")]
    DirectoryMissing,
    #[error("the file does not exist")]
    FileMissing,
    #[error("the file or its directory is not writable ({0}); fix permissions or the mount")]
    NotWritable(String),
    #[error("the file is not a SQLite database, or is damaged: {0}")]
    NotADatabase(String),
    #[error("the database is damaged: {0}; restore it from a copy or run `nsm verify`")]
    Corrupt(String),
    #[error("it is a SQLite database, but not an nsm-rs event log (tables: {0})")]
    NotAnEventLog(String),
    #[error(
        "it was written by a newer nsm-rs (schema version {found}, this binary knows up to {known}); upgrade nsm"
    )]
    NewerSchema { found: i64, known: i64 },
    #[error("migrating its schema failed: {0}")]
    Migration(String),
    #[error(
        "another process is writing this log (a second nsm serve on the same --db?); stop it, or give this one its own --db"
    )]
    InUse,
    #[error("{0}")]
    Sqlite(String),
}
