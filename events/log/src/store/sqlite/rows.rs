//! SQL text and row mapping for the store's reads (through its sqlx pool). The column list
//! and the decoder of `events` rows are [`crate::row`]'s, shared with the operator tools.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::error::StoreError;
use crate::row::{EVENT_COLUMNS, EventRow};
use crate::store::{
    LiveRow, LiveRowData, RecordedEvent, RegistrationRow, RegistrationRowData, StreamId,
    parse_timestamp,
};

/// Reads a range of the log as ONE row: a JSON array of `[position, event_id, stream,
/// version, event_type, schema_version, recorded_at, correlation_id, causation_id, payload]`
/// arrays ([`EVENT_COLUMNS`]), the payload as a JSON string (so its text comes back byte for
/// byte).
///
/// Why not one row per event: sqlx copies every column of every row and hands each row to
/// the caller's thread separately, about 5 µs a row; folding a million events spent 90% of
/// its time there. SQLite builds the array in C and serde parses it in one pass, several
/// times faster.
pub(crate) fn read_all_sql() -> String {
    format!(
        "SELECT json_group_array(json_array({EVENT_COLUMNS})) FROM \
         (SELECT {EVENT_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2)"
    )
}

/// One stream from a version on, as one row like [`read_all_sql`] (so every read of events
/// decodes the same way).
pub(crate) fn read_stream_sql() -> String {
    format!(
        "SELECT json_group_array(json_array({EVENT_COLUMNS})) FROM \
         (SELECT {EVENT_COLUMNS} FROM events WHERE stream = ?1 AND version >= ?2 ORDER BY version)"
    )
}

/// Decodes the JSON array made by [`read_all_sql`] or [`read_stream_sql`], in the order of
/// `key` (position for a range, version for a stream).
pub(crate) fn events_from_json(
    text: &str,
    key: fn(&RecordedEvent) -> u64,
) -> Result<Vec<RecordedEvent>, StoreError> {
    let rows: Vec<EventRow> =
        serde_json::from_str(text).map_err(|e| corrupt("a range of events", e))?;
    let mut events = rows
        .into_iter()
        .map(|row| row.decode().map_err(StoreError::from))
        .collect::<Result<Vec<_>, _>>()?;
    // SQLite aggregates in the subquery's order; make sure rather than rely on it.
    if !events.is_sorted_by_key(key) {
        events.sort_by_key(key);
    }
    Ok(events)
}

pub(crate) const REGISTRATION_ROWS_SQL: &str =
    "SELECT stream, version, expires_at, state FROM live_registry ORDER BY stream";

pub(crate) const LIVE_ROWS_SQL: &str =
    "SELECT stream, version, status, expires_at, state FROM live_vwires ORDER BY stream";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn unsigned(row: &SqliteRow, column: usize, name: &str) -> Result<u64, StoreError> {
    let value: i64 = row.try_get(column)?;
    u64::try_from(value).map_err(|e| corrupt(name, e))
}

pub(crate) fn live_row_from_row(row: &SqliteRow) -> Result<LiveRow, StoreError> {
    let stream: String = row.try_get(0)?;
    let expires_at: &str = row.try_get(3)?;
    Ok(LiveRow {
        stream: StreamId::new(stream)?,
        version: unsigned(row, 1, "version")?,
        data: LiveRowData {
            status: row.try_get(2)?,
            expires_at: parse_timestamp(expires_at)?,
            state: row.try_get(4)?,
        },
    })
}

pub(crate) fn registration_row_from_row(row: &SqliteRow) -> Result<RegistrationRow, StoreError> {
    let stream: String = row.try_get(0)?;
    let expires_at: Option<&str> = row.try_get(2)?;
    Ok(RegistrationRow {
        stream: StreamId::new(stream)?,
        version: unsigned(row, 1, "version")?,
        data: RegistrationRowData {
            expires_at: expires_at.map(parse_timestamp).transpose()?,
            state: row.try_get(3)?,
        },
    })
}
