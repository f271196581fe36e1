//! SQL text and row mapping for reads. One place knows the column list.

use sqlx::Row;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use crate::error::StoreError;
use crate::store::{LiveRow, LiveRowData, Position, RecordedEvent, StreamId, parse_timestamp};

pub(crate) const EVENT_COLUMNS: &str = "position, event_id, stream, version, event_type, \
     schema_version, recorded_at, correlation_id, causation_id, payload";

pub(crate) fn read_stream_sql() -> String {
    format!(
        "SELECT {EVENT_COLUMNS} FROM events WHERE stream = ?1 AND version >= ?2 ORDER BY version"
    )
}

pub(crate) fn read_all_sql() -> String {
    format!("SELECT {EVENT_COLUMNS} FROM events WHERE position > ?1 ORDER BY position LIMIT ?2")
}

pub(crate) const LIVE_ROWS_SQL: &str =
    "SELECT stream, version, status, expires_at, state FROM live_vwires ORDER BY stream";

fn corrupt(what: &str, e: impl std::fmt::Display) -> StoreError {
    StoreError::Corrupt(format!("{what}: {e}"))
}

fn unsigned(row: &SqliteRow, column: &str) -> Result<u64, StoreError> {
    let value: i64 = row.try_get(column)?;
    u64::try_from(value).map_err(|e| corrupt(column, e))
}

pub(crate) fn event_from_row(row: &SqliteRow) -> Result<RecordedEvent, StoreError> {
    let id: String = row.try_get("event_id")?;
    let stream: String = row.try_get("stream")?;
    let recorded_at: String = row.try_get("recorded_at")?;
    let schema_version = u32::try_from(unsigned(row, "schema_version")?)
        .map_err(|e| corrupt("schema_version", e))?;
    Ok(RecordedEvent {
        position: Position(unsigned(row, "position")?),
        id: Uuid::parse_str(&id).map_err(|e| corrupt("event_id", e))?,
        stream: StreamId::new(stream)?,
        version: unsigned(row, "version")?,
        event_type: row.try_get("event_type")?,
        schema_version,
        recorded_at: parse_timestamp(&recorded_at)?,
        correlation_id: row.try_get("correlation_id")?,
        causation_id: row.try_get("causation_id")?,
        payload: row.try_get("payload")?,
    })
}

pub(crate) fn live_row_from_row(row: &SqliteRow) -> Result<LiveRow, StoreError> {
    let stream: String = row.try_get("stream")?;
    let expires_at: String = row.try_get("expires_at")?;
    Ok(LiveRow {
        stream: StreamId::new(stream)?,
        version: unsigned(row, "version")?,
        data: LiveRowData {
            status: row.try_get("status")?,
            expires_at: parse_timestamp(&expires_at)?,
            state: row.try_get("state")?,
        },
    })
}
