//! # Reading a log as the operator commands do
//!
//! [`LogReader`] is an event log opened read-only for `nsm events`, `vwires`, `show`,
//! `replay`, `verify`, `export` and `timeline`: checked to be an nsm-rs log this binary
//! understands, then read by position, by stream, by trace or by stream name through a plain
//! SQLite connection of its own.
//!
//! Why not the store's reader pool: a command reads up to millions of rows in one go, and
//! stepping a prepared statement on one connection costs a fraction of what handing rows
//! through the async pool does. The store still does the opening checks
//! ([`SqliteStore::open_read_only`]), so a missing file, another program's database or a
//! newer schema fail with the store's own messages.
//!
//! Nothing here writes or locks: SQLite's WAL lets a reader run beside the node's writer,
//! which never waits for it. Bulk reads go in chunks of [`CHUNK`] rows, each its own short
//! read transaction, so a long command never pins the WAL and the writer's checkpoints go on.
//! A reader is one connection, used from one thread; [`LogReader::reopen`] gives another for
//! a second thread.
//!
//! * this file: opening, and the log's extent (head, first position, position at a time);
//! * [`events`]: events by position range, stream and trace, decoded or as stored rows;
//! * [`streams`]: stream names (by prefix, in a window, as they stood at a position);
//! * [`checks`]: the checks of `nsm verify` that SQLite's indexes answer.

mod checks;
mod events;
mod streams;

use std::path::{Path, PathBuf};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::{Connection, OptionalExtension, params};

pub use checks::{DuplicateId, MisplacedVersion};
pub use streams::StreamAt;

use crate::error::ReadError;
use crate::store::sqlite::{open, to_sql};
use crate::store::{OpenOptions, Position, SqliteStore, format_timestamp};

/// Rows per read transaction of a bulk read.
pub const CHUNK: usize = 4_096;

/// How long a read waits for a lock (the writer's checkpoint) before failing.
const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

/// An event log opened for reading. See the [module](self) documentation.
#[derive(Debug)]
pub struct LogReader {
    path: PathBuf,
    conn: Connection,
}

impl LogReader {
    /// Opens `path` read-only, after the store's checks (exists, is SQLite, is an nsm-rs log,
    /// its schema is not newer than this binary's). Never creates the file.
    pub async fn open(path: &Path) -> Result<Self, ReadError> {
        let options = OpenOptions {
            // An operator asking a question does not want the whole file read first; `nsm
            // verify` runs the integrity check itself ([`LogReader::quick_check`]).
            integrity_check: false,
            readers: 1,
            ..OpenOptions::default()
        };
        let store = SqliteStore::open_read_only(path, options).await?;
        store.close().await;
        Self::connect(path)
    }

    fn connect(path: &Path) -> Result<Self, ReadError> {
        let conn =
            open::reader_connection(path, BUSY_TIMEOUT).map_err(|source| ReadError::Connect {
                path: path.to_owned(),
                source,
            })?;
        Ok(Self {
            path: path.to_owned(),
            conn,
        })
    }

    /// Another connection to the same file, for a second reading thread.
    pub fn reopen(&self) -> Result<Self, ReadError> {
        Self::connect(&self.path)
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The last position written (`Position::START` for an empty log).
    pub fn head(&self) -> Result<Position, ReadError> {
        self.position_of("SELECT max(position) FROM events")
    }

    /// The first position written (1 unless the oldest events were cut away by an import of
    /// a partial bundle; `Position::START` for an empty log).
    pub fn first(&self) -> Result<Position, ReadError> {
        self.position_of("SELECT min(position) FROM events")
    }

    fn position_of(&self, sql: &str) -> Result<Position, ReadError> {
        let position: Option<i64> = self.conn.query_row(sql, [], |row| row.get(0))?;
        Ok(Position(position.unwrap_or(0).max(0) as u64))
    }

    /// How many events are at or before `until` (fewer than `until` when positions have
    /// holes).
    pub fn count_until(&self, until: Position) -> Result<u64, ReadError> {
        let count: i64 = self.conn.query_row(
            "SELECT count(*) FROM events WHERE position <= ?1",
            params![to_sql(until.0)],
            |row| row.get(0),
        )?;
        Ok(count.max(0) as u64)
    }

    /// The last position recorded at or before `at` (`Position::START` if none was):
    /// `recorded_at` never decreases along position, so a binary search over positions finds
    /// it with a few point lookups, without an index on time.
    pub fn position_at(&self, at: DateTime<Utc>) -> Result<Position, ReadError> {
        let wanted = format_timestamp(at);
        let (mut low, mut high) = (self.first()?.0, self.head()?.0);
        if high == 0 || self.recorded_from(low)?.as_deref() > Some(wanted.as_str()) {
            return Ok(Position::START);
        }
        // Invariant: recorded_at(low) <= wanted; the answer is in [low, high].
        while low < high {
            let middle = low + (high - low).div_ceil(2);
            // A missing row (a bundle cut by vWire has holes) is searched past upwards.
            match self.recorded_from(middle)? {
                Some(time) if time.as_str() <= wanted.as_str() => low = middle,
                _ => high = middle - 1,
            }
        }
        Ok(Position(low))
    }

    /// The `recorded_at` text of the first event at or after `position`.
    fn recorded_from(&self, position: u64) -> Result<Option<String>, ReadError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT recorded_at FROM events WHERE position >= ?1 ORDER BY position LIMIT 1",
        )?;
        Ok(statement
            .query_row(params![to_sql(position)], |row| row.get(0))
            .optional()?)
    }

    /// A fact of `log_meta` (where an imported log came from: `whole`, `source_host`, ...),
    /// as stored; `None` when the log has no such fact, or is of a schema without the table.
    pub fn meta(&self, key: &str) -> Result<Option<String>, ReadError> {
        let has_table: bool = self.conn.query_row(
            "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'log_meta'",
            [],
            |row| row.get(0),
        )?;
        if !has_table {
            return Ok(None);
        }
        Ok(self
            .conn
            .query_row(
                "SELECT value FROM log_meta WHERE key = ?1",
                params![key],
                |row| row.get(0),
            )
            .optional()?)
    }
}
