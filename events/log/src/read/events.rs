//! Events by position range, by stream and by trace: decoded into [`RecordedEvent`]s by the
//! one decoder of `events` rows ([`EventRow::decode`]), lent as [`StoredPayload`]s for a fold
//! that needs nothing more, or handed over as stored rows for an export.

use nsm_domain::upcast::StoredPayload;
use rusqlite::{Row, params};

use super::{CHUNK, LogReader};
use crate::error::{BadRow, ReadError};
use crate::row::{EVENT_COLUMNS, EventRow, position_of, schema_version_of};
use crate::store::sqlite::to_sql;
use crate::store::{Position, RecordedEvent, StreamId};

impl LogReader {
    /// Up to `limit` events after `after` and at or before `until`, in position order.
    pub fn read_range(
        &self,
        after: Position,
        until: Position,
        limit: usize,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.map_range(after, until, limit, |event| event)
    }

    /// Like [`Self::read_range`], each event mapped by `map` as it is read (a big range is
    /// never held as rows and as their mapping at once).
    pub fn map_range<T>(
        &self,
        after: Position,
        until: Position,
        limit: usize,
        map: impl FnMut(RecordedEvent) -> T,
    ) -> Result<Vec<T>, ReadError> {
        let expected = until.0.saturating_sub(after.0).min(limit as u64) as usize;
        let mut mapped = Vec::with_capacity(expected.min(CHUNK));
        self.map_range_into(after, until, limit, map, &mut mapped)?;
        Ok(mapped)
    }

    /// Like [`Self::map_range`], appending to `mapped` (a buffer the caller reuses).
    pub fn map_range_into<T>(
        &self,
        after: Position,
        until: Position,
        limit: usize,
        mut map: impl FnMut(RecordedEvent) -> T,
        mapped: &mut Vec<T>,
    ) -> Result<(), ReadError> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > ?1 AND position <= ?2 \
             ORDER BY position LIMIT ?3"
        ))?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let mut rows = statement.query(params![to_sql(after.0), to_sql(until.0), limit])?;
        while let Some(row) = rows.next()? {
            mapped.push(map(self.decode(row)?));
        }
        Ok(())
    }

    /// Like [`Self::map_range_into`] for readers that need no more than decoding reads: each
    /// row is lent as its stream and [`StoredPayload`], borrowed from SQLite, so nothing is
    /// copied, allocated or parsed for the columns such a reader ignores (on a fold of
    /// millions of events, that was a fifth of the time).
    pub fn map_payloads_into<T>(
        &self,
        after: Position,
        until: Position,
        mut map: impl FnMut(&str, StoredPayload<'_>) -> T,
        mapped: &mut Vec<T>,
    ) -> Result<(), ReadError> {
        let mut statement = self.conn.prepare_cached(
            "SELECT position, stream, event_type, schema_version, payload FROM events \
             WHERE position > ?1 AND position <= ?2 ORDER BY position",
        )?;
        let mut rows = statement.query(params![to_sql(after.0), to_sql(until.0)])?;
        while let Some(row) = rows.next()? {
            let position: i64 = row.get(0)?;
            let bad = |what: &str| self.bad_row(BadRow::new(position, what));
            let text = |column: usize, what: &str| -> Result<&str, ReadError> {
                row.get_ref(column)?
                    .as_str()
                    .map_err(|_| bad(&format!("{what} that is not text")))
            };
            let stream = text(1, "a stream")?;
            let stored = StoredPayload {
                position: position_of(position).map_err(|e| self.bad_row(e))?,
                event_type: text(2, "an event type")?,
                schema_version: schema_version_of(position, row.get(3)?)
                    .map_err(|e| self.bad_row(e))?,
                payload: text(4, "a payload")?,
            };
            mapped.push(map(stream, stored));
        }
        Ok(())
    }

    /// Calls `each` with every event after `after` up to `until`, in position order, a chunk
    /// (one short read transaction) at a time. `each` returns false to stop early.
    pub fn for_each<E: From<ReadError>>(
        &self,
        after: Position,
        until: Position,
        mut each: impl FnMut(RecordedEvent) -> Result<bool, E>,
    ) -> Result<(), E> {
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

    /// Calls `each` with every row after `after` up to `until` exactly as stored (nothing
    /// parsed: an export copies rows to the byte, broken ones included), in position order, a
    /// chunk at a time.
    pub fn for_each_row<E: From<ReadError>>(
        &self,
        after: Position,
        until: Position,
        mut each: impl FnMut(EventRow) -> Result<(), E>,
    ) -> Result<(), E> {
        let sql = format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE position > ?1 AND position <= ?2 \
             ORDER BY position LIMIT ?3"
        );
        self.each_chunked(&sql, after, until, |row| {
            each(EventRow::from_sql(row).map_err(ReadError::from)?)
        })
    }

    /// Steps `sql`, which selects `position` first and takes `?1` = after, `?2` = until and
    /// `?3` = limit, a chunk (one short read transaction) at a time.
    pub(super) fn each_chunked<E: From<ReadError>>(
        &self,
        sql: &str,
        after: Position,
        until: Position,
        mut each: impl FnMut(&Row<'_>) -> Result<(), E>,
    ) -> Result<(), E> {
        let mut statement = self.conn.prepare_cached(sql).map_err(ReadError::from)?;
        let mut after = to_sql(after.0);
        loop {
            let mut rows = statement
                .query(params![after, to_sql(until.0), CHUNK as i64])
                .map_err(ReadError::from)?;
            let mut last = None;
            while let Some(row) = rows.next().map_err(ReadError::from)? {
                last = Some(row.get::<_, i64>(0).map_err(ReadError::from)?);
                each(row)?;
            }
            match last {
                Some(position) => after = position,
                None => return Ok(()),
            }
        }
    }

    /// Every event of one stream, in version order, up to `until`.
    pub fn read_stream(
        &self,
        stream: &StreamId,
        until: Position,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        self.read_where(
            "stream = ?1 AND position <= ?2 ORDER BY version",
            params![stream.as_str(), to_sql(until.0)],
        )
    }

    /// Every event whose correlation id (the trace id of the call that caused it) is
    /// `trace_id`, in position order.
    pub fn read_trace(&self, trace_id: &str) -> Result<Vec<RecordedEvent>, ReadError> {
        self.read_where("correlation_id = ?1 ORDER BY position", params![trace_id])
    }

    fn read_where(
        &self,
        condition: &str,
        bind: impl rusqlite::Params,
    ) -> Result<Vec<RecordedEvent>, ReadError> {
        let mut statement = self.conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE {condition}"
        ))?;
        let mut rows = statement.query(bind)?;
        let mut events = Vec::new();
        while let Some(row) = rows.next()? {
            events.push(self.decode(row)?);
        }
        Ok(events)
    }

    /// One row selected with [`EVENT_COLUMNS`], decoded.
    fn decode(&self, row: &Row<'_>) -> Result<RecordedEvent, ReadError> {
        EventRow::from_sql(row)?
            .decode()
            .map_err(|e| self.bad_row(e))
    }

    fn bad_row(&self, source: BadRow) -> ReadError {
        ReadError::Row {
            path: self.path.clone(),
            source,
        }
    }
}
