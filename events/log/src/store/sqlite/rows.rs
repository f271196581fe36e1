//! SQL text and row mapping for reads. One place knows the column list.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use crate::error::StoreError;
use crate::store::{
    LiveRow, LiveRowData, Position, RecordedEvent, RegistrationRow, RegistrationRowData, StreamId,
    parse_timestamp,
};

pub(crate) const EVENT_COLUMNS: &str = "position, event_id, stream, version, event_type, \
     schema_version, recorded_at, correlation_id, causation_id, payload";

pub(crate) fn read_stream_sql() -> String {
    format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE stream = ?1 AND version >= ?2 ORDER BY version"
    )
}

/// Reads a range of the log as ONE row: a JSON array of `[position, event_id, stream,
/// version, event_type, schema_version, recorded_at, correlation_id, causation_id, payload]`
/// arrays, the payload as a JSON string (so its text comes back byte for byte).
///
/// Why not one row per event: sqlx copies every column of every row and hands each row to
/// the caller's thread separately, about 5 µs a row; folding a million events spent 90% of
/// its time there. SQLite builds the array in C and serde parses it in one pass, several
/// times faster. Used for bulk reads (`read_all`, subscriptions); small reads stay per row.
pub(crate) fn read_all_sql() -> String {
    format!(
        "SELECT json_group_array(json_array({EVENT_COLUMNS})) FROM \
         (SELECT {EVENT_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2)"
    )
}

/// One event as [`read_all_sql`] encodes it.
type EventTuple = (
    u64,
    String,
    String,
    u64,
    String,
    u32,
    String,
    Option<String>,
    Option<String>,
    String,
);

/// Decodes the JSON array made by [`read_all_sql`], in position order.
pub(crate) fn events_from_json(text: &str) -> Result<Vec<RecordedEvent>, StoreError> {
    let tuples: Vec<EventTuple> =
        serde_json::from_str(text).map_err(|e| corrupt("a range of events", e))?;
    let mut events = tuples
        .into_iter()
        .map(
            |(
                position,
                id,
                stream,
                version,
                event_type,
                schema_version,
                recorded_at,
                correlation_id,
                causation_id,
                payload,
            )| {
                Ok(RecordedEvent {
                    position: Position(position),
                    id: Uuid::parse_str(&id).map_err(|e| corrupt("event_id", e))?,
                    stream: StreamId::new(stream)?,
                    version,
                    event_type,
                    schema_version,
                    recorded_at: parse_timestamp(&recorded_at)?,
                    correlation_id,
                    causation_id,
                    payload,
                })
            },
        )
        .collect::<Result<Vec<_>, StoreError>>()?;
    // SQLite aggregates in the subquery's order; make sure rather than rely on it.
    if !events.is_sorted_by_key(|e| e.position) {
        events.sort_by_key(|e| e.position);
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

/// Maps a row selected with [`EVENT_COLUMNS`] (by index: reading a log is bulk work).
pub(crate) fn event_from_row(row: &SqliteRow) -> Result<RecordedEvent, StoreError> {
    let id: &str = row.try_get(1)?;
    let stream: String = row.try_get(2)?;
    let recorded_at: &str = row.try_get(6)?;
    let schema_version = u32::try_from(unsigned(row, 5, "schema_version")?)
        .map_err(|e| corrupt("schema_version", e))?;
    Ok(RecordedEvent {
        position: Position(unsigned(row, 0, "position")?),
        id: Uuid::parse_str(id).map_err(|e| corrupt("event_id", e))?,
        stream: StreamId::new(stream)?,
        version: unsigned(row, 3, "version")?,
        event_type: row.try_get(4)?,
        schema_version,
        recorded_at: parse_timestamp(recorded_at)?,
        correlation_id: row.try_get(7)?,
        causation_id: row.try_get(8)?,
        payload: row.try_get(9)?,
    })
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
