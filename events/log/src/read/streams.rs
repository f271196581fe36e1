//! Stream names: those with a prefix (a vWire given by the first characters of its id), those
//! outside a prefix, those with an event in a window, and every stream as it stood at a
//! position (what an export's cut needs to keep a stream's whole history).
//!
//! Streams of one prefix sort together, so a prefix is a range over the `(stream, version)`
//! index; a walk from one stream name to the next is one seek of that index each, whatever
//! the number of events.

use rusqlite::params;

use super::LogReader;
use crate::error::ReadError;
use crate::store::Position;
use crate::store::sqlite::to_sql;

/// A stream as it stood at a position of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamAt {
    pub stream: String,
    /// The type of its last event at or before the position.
    pub last_event_type: String,
    /// How many of its events at or before the position are of the types asked about.
    pub of_types: u64,
}

impl LogReader {
    /// The streams whose id starts with `prefix`, at most `most` of them.
    pub fn streams_with_prefix(&self, prefix: &str, most: usize) -> Result<Vec<String>, ReadError> {
        let end = past_prefix(prefix);
        let mut statement = self.conn.prepare_cached(
            "SELECT DISTINCT stream FROM events WHERE stream >= ?1 AND stream < ?2 LIMIT ?3",
        )?;
        let most = i64::try_from(most).unwrap_or(i64::MAX);
        let rows = statement.query_map(params![prefix, end, most], |row| row.get(0))?;
        Ok(rows.collect::<Result<Vec<String>, _>>()?)
    }

    /// Every stream whose id does not start with `prefix`, in id order: one index seek per
    /// stream, and none for the streams of the prefix (the vWires of a busy log are most of
    /// its streams; the others are a few nodes, services and endpoints).
    pub fn streams_outside(&self, prefix: &str) -> Result<Vec<String>, ReadError> {
        let end = past_prefix(prefix);
        let mut next = self
            .conn
            .prepare_cached("SELECT min(stream) FROM events WHERE stream > ?1")?;
        let mut found = Vec::new();
        let mut after = String::new();
        while let Some(stream) =
            next.query_row(params![after], |row| row.get::<_, Option<String>>(0))?
        {
            if stream.starts_with(prefix) && !prefix.is_empty() {
                // Skip the prefix's streams in one seek (past `end`, and always forward).
                after = stream.max(end.clone());
            } else {
                found.push(stream.clone());
                after = stream;
            }
        }
        Ok(found)
    }

    /// The streams with an event in `(after, until]`.
    pub fn streams_in(&self, after: Position, until: Position) -> Result<Vec<String>, ReadError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT DISTINCT stream FROM events WHERE position > ?1 AND position <= ?2",
        )?;
        let rows =
            statement.query_map(params![to_sql(after.0), to_sql(until.0)], |row| row.get(0))?;
        Ok(rows.collect::<Result<Vec<String>, _>>()?)
    }

    /// Every stream with an event at or before `at`, as it stood then: its last event's type,
    /// and how many of its events are of `types` (one pass of the log up to `at`).
    pub fn streams_at(&self, at: Position, types: &[&str]) -> Result<Vec<StreamAt>, ReadError> {
        let types = serde_json::to_string(types).unwrap_or_else(|_| "[]".into());
        // With exactly one max(), SQLite takes the bare `event_type` from the row holding it.
        let mut statement = self.conn.prepare_cached(
            "SELECT stream, event_type, max(position), \
                    sum(event_type IN (SELECT value FROM json_each(?2))) \
               FROM events WHERE position <= ?1 GROUP BY stream",
        )?;
        let rows = statement.query_map(params![to_sql(at.0), types], |row| {
            Ok(StreamAt {
                stream: row.get(0)?,
                last_event_type: row.get(1)?,
                of_types: row.get::<_, i64>(3)?.max(0) as u64,
            })
        })?;
        Ok(rows.collect::<Result<Vec<_>, _>>()?)
    }

    /// Calls `each` with the position and stream of every event after `after` up to `until`,
    /// in position order, a chunk at a time: the cheap pass that counts what an export will
    /// write before it writes it.
    pub fn for_each_stream<E: From<ReadError>>(
        &self,
        after: Position,
        until: Position,
        mut each: impl FnMut(Position, &str) -> Result<(), E>,
    ) -> Result<(), E> {
        let sql = "SELECT position, stream FROM events WHERE position > ?1 AND position <= ?2 \
                   ORDER BY position LIMIT ?3";
        self.each_chunked(sql, after, until, |row| {
            let position: i64 = row.get(0).map_err(ReadError::from)?;
            let stream = row.get_ref(1).map_err(ReadError::from)?;
            let stream = stream
                .as_str()
                .map_err(|e| ReadError::from(rusqlite::Error::from(e)))?;
            each(Position(position.max(0) as u64), stream)
        })
    }
}

/// A string past every string that starts with `prefix` and nothing else.
fn past_prefix(prefix: &str) -> String {
    format!("{prefix}\u{10ffff}")
}
