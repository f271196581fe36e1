//! Errors of the event store, of the operator tools' reads ([`ReadError`]) and of an import
//! ([`ImportError`]). Each variant says what the caller should do about it.

use std::path::PathBuf;
use std::sync::Arc;

use uuid::Uuid;

use nsm_domain::EnvelopeError;
use nsm_domain::envelope::{Position, StreamId};

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

impl From<BadRow> for StoreError {
    fn from(e: BadRow) -> Self {
        StoreError::Corrupt(e.to_string())
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

/// An `events` row whose values do not parse (the file was edited or damaged): the row's
/// position and what is wrong with it. Run `nsm verify` to find every such row.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("the event at position {position} has {problem}")]
pub struct BadRow {
    pub position: i64,
    /// What is wrong, as an object of "has": "an event id that is not a UUID".
    pub problem: String,
}

impl BadRow {
    pub(crate) fn new(position: i64, problem: &str) -> Self {
        Self {
            position,
            problem: problem.to_owned(),
        }
    }
}

/// A row the schema's constraints would refuse ([`crate::row::EventRow::check`]). Nothing was
/// written; the row comes from outside (a bundle) and is what must be fixed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RowProblem {
    #[error("position {0} is not ≥ 1")]
    Position(i64),
    #[error("event_id {0:?} is not 36 characters")]
    EventId(String),
    #[error("stream {0:?} is not 1 to 255 characters")]
    Stream(String),
    #[error("version and schema_version must be ≥ 1")]
    Version,
    #[error("payload is not JSON: {0}")]
    Payload(String),
}

/// Errors of reading a log with [`crate::read::LogReader`].
#[derive(Debug, thiserror::Error)]
pub enum ReadError {
    /// The file is missing, is not SQLite, is not an nsm-rs log, or its schema is newer than
    /// this binary: the store's own opening checks, with its messages. Point at another file
    /// or upgrade nsm.
    #[error(transparent)]
    Open(#[from] StoreError),

    /// The file passed the checks, but SQLite could not open it read-only (permissions or the
    /// file changed meanwhile). Retry, or fix the file's permissions.
    #[error("cannot open the event log {path}")]
    Connect {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },

    /// A row does not decode: the file was edited or damaged. Run `nsm verify`.
    #[error("cannot read the event log {path}")]
    Row {
        path: PathBuf,
        #[source]
        source: BadRow,
    },

    /// SQLite failed a read (I/O, a lock held too long). Retry; if it persists, run
    /// `nsm verify`.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}

/// Errors of loading rows into a new log with [`crate::import::Import`]. After any of them
/// nothing was imported: the transaction was rolled back, and a file the import created is
/// removed.
#[derive(Debug, thiserror::Error)]
pub enum ImportError {
    /// The log could not be created or opened (the store's own problems, with its messages).
    #[error(transparent)]
    Open(#[from] StoreError),

    /// The log holds events already. Import into a new file, or an empty log.
    #[error("import only into an empty log: {path} holds events up to position {head}")]
    NotEmpty { path: PathBuf, head: Position },

    /// Another process holds the log (a node started on it). Stop it, or import elsewhere.
    #[error("{path} is in use by another process")]
    InUse { path: PathBuf },

    /// The file could not be opened to be locked.
    #[error("cannot open {path}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },

    /// SQLite refused a row (a duplicate position or event id, a broken constraint): the rows
    /// given are not a log. Fix the source of the rows.
    #[error("position {position}: {message}")]
    Row { position: i64, message: String },

    /// SQLite failed a write (I/O, disk full). Retry once the cause is fixed.
    #[error(transparent)]
    Sqlite(#[from] rusqlite::Error),
}
