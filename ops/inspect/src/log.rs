//! The event log as operator commands read it: opened read-only, checked to be an nsm-rs log
//! this binary understands, and read by position or by stream through a plain SQLite
//! connection of its own.
//!
//! Why not the store's reader pool: a command reads up to millions of rows in one go, and
//! stepping a prepared statement on one connection costs a fraction of what handing rows
//! through the async pool does. The store still does the opening checks, so a missing file,
//! another program's database or a newer schema fail with the store's own messages.
//!
//! Nothing here writes or locks: SQLite's WAL lets a reader run beside the node's writer,
//! which never waits for it. Reads are done in chunks of [`CHUNK`] rows, each its own short
//! read transaction, so a long command never pins the WAL and the writer's checkpoints go on.

use std::path::{Path, PathBuf};
use std::time::Duration;

use anyhow::Context;
use chrono::{DateTime, Utc};
use nsm_domain::upcast::StoredPayload;
use nsm_log::store::{OpenOptions, Position, RecordedEvent, SqliteStore, StreamId};
use rusqlite::{Connection, OpenFlags, Row, params};
use uuid::Uuid;

/// Rows per read transaction.
pub(crate) const CHUNK: usize = 4_096;

const COLUMNS: &str = "position, event_id, stream, version, event_type, schema_version, \
                       recorded_at, correlation_id, causation_id, payload";

/// An event log opened for reading.
#[derive(Debug)]
pub(crate) struct LogFile {
    path: PathBuf,
    conn: Connection,
}

impl LogFile {
    /// Opens `path` read-only, after the store's checks (exists, is SQLite, is an nsm-rs log,
    /// its schema is not newer than this binary's).
    pub(crate) async fn open(path: &Path) -> anyhow::Result<Self> {
        let options = OpenOptions {
            // An operator asking a question does not want the whole file read first; `nsm
            // verify` runs the integrity check itself.
            integrity_check: false,
            readers: 1,
            ..OpenOptions::default()
        };
        let store = SqliteStore::open_read_only(path, options).await?;
        store.close().await;
        Self::connect(path)
    }

    fn connect(path: &Path) -> anyhow::Result<Self> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let conn = Connection::open_with_flags(path, flags)
            .with_context(|| format!("cannot open the event log {}", path.display()))?;
        conn.busy_timeout(Duration::from_secs(5))?;
        // Belt and braces: this connection never writes, whatever a bug would ask of it.
        conn.pragma_update(None, "query_only", true)?;
        // Bulk reads of a big log: pages straight from the OS's page cache (memory-mapped)
        // instead of copied into SQLite's own cache, which halves the cost of a full read.
        conn.pragma_update(None, "mmap_size", 1_i64 << 34)?;
        Ok(Self {
            path: path.to_owned(),
            conn,
        })
    }

    /// Another connection to the same file, for a second reading thread.
    pub(crate) fn reopen(&self) -> anyhow::Result<Self> {
        Self::connect(&self.path)
    }

    pub(crate) fn path(&self) -> &Path {
        &self.path
    }

    /// The last position written (0 for an empty log).
    pub(crate) fn head(&self) -> anyhow::Result<Position> {
        let head: Option<i64> =
            self.conn
                .query_row("SELECT max(position) FROM events", [], |row| row.get(0))?;
        Ok(Position(head.unwrap_or(0).max(0) as u64))
    }

    /// The first position written (1 unless the oldest events were cut away by an import
    /// of a partial bundle).
    pub(crate) fn first(&self) -> anyhow::Result<Position> {
        let first: Option<i64> =
            self.conn
                .query_row("SELECT min(position) FROM events", [], |row| row.get(0))?;
        Ok(Position(first.unwrap_or(0).max(0) as u64))
    }

    /// The last position recorded at or before `at` (`Position::START` if none was):
    /// `recorded_at` never decreases along position, so a binary search over positions
    /// finds it with a few point lookups, without an index on time.
    pub(crate) fn position_at(&self, at: DateTime<Utc>) -> anyhow::Result<Position> {
        let wanted = nsm_log::store::format_timestamp(at);
        let (mut low, mut high) = (self.first()?.0, self.head()?.0);
        if high == 0 || self.recorded_at(Position(low))?.as_deref() > Some(wanted.as_str()) {
            return Ok(Position::START);
        }
        // Invariant: recorded_at(low) <= wanted; the answer is in [low, high].
        while low < high {
            let middle = low + (high - low).div_ceil(2);
            // A missing row (a bundle cut by vWire has holes) is searched past upwards.
            let probe: Option<(i64, String)> = self
                .conn
                .query_row(
                    "SELECT position, recorded_at FROM events WHERE position >= ?1 \
                     ORDER BY position LIMIT 1",
                    params![middle as i64],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .map(Some)
                .or_else(no_row)?;
            match probe {
                Some((_, time)) if time.as_str() <= wanted.as_str() => low = middle,
                _ => high = middle - 1,
            }
        }
        Ok(Position(low))
    }

    fn recorded_at(&self, position: Position) -> anyhow::Result<Option<String>> {
        self.conn
            .query_row(
                "SELECT recorded_at FROM events WHERE position >= ?1 ORDER BY position LIMIT 1",
                params![position.0 as i64],
                |row| row.get(0),
            )
            .map(Some)
            .or_else(no_row)
    }

    /// Up to `limit` events after `after` and at or before `until`, in position order.
    pub(crate) fn read_range(
        &self,
        after: Position,
        until: Position,
        limit: usize,
    ) -> anyhow::Result<Vec<RecordedEvent>> {
        self.map_range(after, until, limit, |event| event)
    }

    /// Like [`Self::read_range`], each event mapped by `map` as it is read (a big range is
    /// never held as rows and as their mapping at once).
    pub(crate) fn map_range<T>(
        &self,
        after: Position,
        until: Position,
        limit: usize,
        map: impl FnMut(RecordedEvent) -> T,
    ) -> anyhow::Result<Vec<T>> {
        let expected = until.0.saturating_sub(after.0).min(limit as u64) as usize;
        let mut mapped = Vec::with_capacity(expected.min(CHUNK));
        self.map_range_into(after, until, limit, map, &mut mapped)?;
        Ok(mapped)
    }

    /// Like [`Self::map_range`], appending to `mapped` (a buffer the caller reuses).
    pub(crate) fn map_range_into<T>(
        &self,
        after: Position,
        until: Position,
        limit: usize,
        mut map: impl FnMut(RecordedEvent) -> T,
        mapped: &mut Vec<T>,
    ) -> anyhow::Result<()> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM events WHERE position > ?1 AND position <= ?2 \
             ORDER BY position LIMIT ?3"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = statement.query(params![after.0 as i64, until.0 as i64, limit])?;
        while let Some(row) = rows.next()? {
            let event = recorded_event(row)?
                .with_context(|| format!("cannot read the event log {}", self.path.display()))?;
            mapped.push(map(event));
        }
        Ok(())
    }

    /// Like [`Self::map_range_into`] for readers that need no more than decoding reads: each
    /// row is lent as its stream and [`StoredPayload`], borrowed from SQLite, so nothing is
    /// copied, allocated or parsed for the columns such a reader ignores (on a fold of
    /// millions of events, that was a fifth of the time).
    pub(crate) fn map_payloads_into<T>(
        &self,
        after: Position,
        until: Position,
        mut map: impl FnMut(&str, StoredPayload<'_>) -> T,
        mapped: &mut Vec<T>,
    ) -> anyhow::Result<()> {
        let mut statement = self.conn.prepare_cached(
            "SELECT position, stream, event_type, schema_version, payload FROM events \
             WHERE position > ?1 AND position <= ?2 ORDER BY position",
        )?;
        let mut rows = statement.query(params![after.0 as i64, until.0 as i64])?;
        while let Some(row) = rows.next()? {
            let position: i64 = row.get(0)?;
            let bad = |what: &str| anyhow::anyhow!("the event at position {position} has {what}");
            let text = |column: usize, what: &str| {
                row.get_ref(column)?
                    .as_str()
                    .map_err(|_| bad(&format!("{what} that is not text")))
            };
            let stream = text(1, "a stream")?;
            let stored = StoredPayload {
                position: Position(
                    u64::try_from(position).map_err(|_| bad("a negative position"))?,
                ),
                event_type: text(2, "an event type")?,
                schema_version: u32::try_from(row.get::<_, i64>(3)?)
                    .map_err(|_| bad("a schema version out of range"))?,
                payload: text(4, "a payload")?,
            };
            mapped.push(map(stream, stored));
        }
        Ok(())
    }

    /// Calls `each` with every event after `after` up to `until`, in position order, a chunk
    /// (one short read transaction) at a time. `each` returns false to stop early.
    pub(crate) fn for_each(
        &self,
        after: Position,
        until: Position,
        mut each: impl FnMut(RecordedEvent) -> anyhow::Result<bool>,
    ) -> anyhow::Result<()> {
        let mut after = after;
        loop {
            let chunk = self.read_range(after, until, CHUNK)?;
            let Some(last) = chunk.last() else {
                return Ok(());
            };
            after = last.position;
            for event in chunk {
                if !each(event)? {
                    return Ok(());
                }
            }
        }
    }

    /// Every event of one stream, in version order, up to `until`.
    pub(crate) fn read_stream(
        &self,
        stream: &StreamId,
        until: Position,
    ) -> anyhow::Result<Vec<RecordedEvent>> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM events WHERE stream = ?1 AND position <= ?2 ORDER BY version"
        ))?;
        let rows = statement.query_map(params![stream.as_str(), until.0 as i64], recorded_event)?;
        rows.map(|row| row.map_err(anyhow::Error::from)?)
            .collect::<anyhow::Result<Vec<_>>>()
            .with_context(|| format!("cannot read stream {stream} of {}", self.path.display()))
    }

    /// Every event whose correlation id (the trace id of the call that caused it) is
    /// `trace_id`, in position order.
    pub(crate) fn read_trace(&self, trace_id: &str) -> anyhow::Result<Vec<RecordedEvent>> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {COLUMNS} FROM events WHERE correlation_id = ?1 ORDER BY position"
        ))?;
        let rows = statement.query_map(params![trace_id], recorded_event)?;
        rows.map(|row| row.map_err(anyhow::Error::from)?)
            .collect::<anyhow::Result<Vec<_>>>()
    }

    /// The streams whose id starts with `prefix` (a vWire given by the first characters of
    /// its id, as people copy them from a table).
    pub(crate) fn streams_with_prefix(
        &self,
        prefix: &str,
        most: usize,
    ) -> anyhow::Result<Vec<String>> {
        // Streams of a prefix sort together: a range over the (stream, version) index.
        let end = format!("{prefix}\u{10ffff}");
        let mut statement = self.conn.prepare_cached(
            "SELECT DISTINCT stream FROM events WHERE stream >= ?1 AND stream < ?2 LIMIT ?3",
        )?;
        let rows = statement.query_map(params![prefix, end, most as i64], |row| row.get(0))?;
        Ok(rows.collect::<Result<Vec<String>, _>>()?)
    }

    /// The SQLite connection, for the few commands (verify, export) that ask it directly.
    pub(crate) fn connection(&self) -> &Connection {
        &self.conn
    }
}

fn no_row<T>(error: rusqlite::Error) -> anyhow::Result<Option<T>> {
    match error {
        rusqlite::Error::QueryReturnedNoRows => Ok(None),
        other => Err(other.into()),
    }
}

/// One `events` row; a value that does not parse is an error naming its position, never a
/// panic (the file may have been edited by hand).
fn recorded_event(row: &Row<'_>) -> rusqlite::Result<anyhow::Result<RecordedEvent>> {
    let position: i64 = row.get(0)?;
    let id: String = row.get(1)?;
    let stream: String = row.get(2)?;
    let version: i64 = row.get(3)?;
    let event_type: String = row.get(4)?;
    let schema_version: i64 = row.get(5)?;
    let recorded_at: String = row.get(6)?;
    let correlation_id: Option<String> = row.get(7)?;
    let causation_id: Option<String> = row.get(8)?;
    let payload: String = row.get(9)?;
    Ok((|| {
        let bad = |what: &str| anyhow::anyhow!("the event at position {position} has {what}");
        Ok(RecordedEvent {
            position: Position(u64::try_from(position).map_err(|_| bad("a negative position"))?),
            id: Uuid::parse_str(&id).map_err(|_| bad("an event id that is not a UUID"))?,
            stream: StreamId::new(stream).map_err(|e| bad(&e.to_string()))?,
            version: u64::try_from(version).map_err(|_| bad("a negative version"))?,
            event_type,
            schema_version: u32::try_from(schema_version)
                .map_err(|_| bad("a schema version out of range"))?,
            recorded_at: DateTime::parse_from_rfc3339(&recorded_at)
                .map_err(|_| bad("a recorded_at that is not RFC 3339"))?
                .with_timezone(&Utc),
            correlation_id,
            causation_id,
            payload,
        })
    })())
}
