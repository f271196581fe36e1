//! One row of the `events` table: the column list every read of events selects, the row as
//! stored ([`EventRow`]: the column values, nothing parsed), and the one decoder that turns a
//! row into a [`RecordedEvent`].
//!
//! Rows reach this crate in two ways and both end here:
//!
//! * stepped one at a time on a rusqlite connection ([`crate::read::LogReader`], the
//!   import's reads), each column by its index in [`EVENT_COLUMNS`] ([`EventRow::from_sql`]);
//! * as one JSON array of arrays built by SQLite, for the store's bulk reads through its sqlx
//!   pool (`store::sqlite::rows`), each inner array deserialised into an [`EventRow`] by serde
//!   (a struct reads from a JSON array field by field, in [`EVENT_COLUMNS`] order).
//!
//! So the store, the operator commands and the import agree on what a valid row is, and a
//! broken row (a file edited by hand) is reported the same way by all of them: an error naming
//! its position ([`BadRow`]), never a panic.
//!
//! An [`EventRow`] also serialises with one key per column, named as the column: the line
//! format of an incident bundle (`nsm export`) is that serialisation, so a bundle gives back
//! every column to the byte.

use serde::{Deserialize, Serialize};
use uuid::Uuid;

use crate::error::{BadRow, RowProblem};
use crate::store::{Position, RecordedEvent, StreamId, parse_timestamp};

/// The columns of `events`, in the order of [`EventRow`]'s fields. Every read of events
/// selects exactly these.
pub(crate) const EVENT_COLUMNS: &str = "position, event_id, stream, version, event_type, \
     schema_version, recorded_at, correlation_id, causation_id, payload";

/// One `events` row, every column exactly as stored: numbers as SQLite's integers, text as
/// text (the payload is the stored JSON text, never re-serialised).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventRow {
    pub position: i64,
    pub event_id: String,
    pub stream: String,
    pub version: i64,
    pub event_type: String,
    pub schema_version: i64,
    pub recorded_at: String,
    pub correlation_id: Option<String>,
    pub causation_id: Option<String>,
    pub payload: String,
}

impl EventRow {
    /// Reads a row selected with [`EVENT_COLUMNS`], by index.
    pub(crate) fn from_sql(row: &rusqlite::Row<'_>) -> rusqlite::Result<Self> {
        Ok(Self {
            position: row.get(0)?,
            event_id: row.get(1)?,
            stream: row.get(2)?,
            version: row.get(3)?,
            event_type: row.get(4)?,
            schema_version: row.get(5)?,
            recorded_at: row.get(6)?,
            correlation_id: row.get(7)?,
            causation_id: row.get(8)?,
            payload: row.get(9)?,
        })
    }

    /// The event this row records. A value that does not parse is an error naming the row's
    /// position and what is wrong with it.
    pub fn decode(self) -> Result<RecordedEvent, BadRow> {
        let position = self.position;
        let bad = |problem: &str| BadRow {
            position,
            problem: problem.to_owned(),
        };
        Ok(RecordedEvent {
            position: position_of(position)?,
            id: Uuid::parse_str(&self.event_id)
                .map_err(|_| bad("an event id that is not a UUID"))?,
            stream: StreamId::new(self.stream).map_err(|e| bad(&e.to_string()))?,
            version: u64::try_from(self.version).map_err(|_| bad("a negative version"))?,
            event_type: self.event_type,
            schema_version: schema_version_of(position, self.schema_version)?,
            recorded_at: parse_timestamp(&self.recorded_at)
                .map_err(|_| bad("a recorded_at that is not RFC 3339"))?,
            correlation_id: self.correlation_id,
            causation_id: self.causation_id,
            payload: self.payload,
        })
    }

    /// What the schema's constraints would refuse, said before anything is written (an
    /// import checks a whole bundle before it creates a log).
    pub fn check(&self) -> Result<(), RowProblem> {
        if self.position < 1 {
            return Err(RowProblem::Position(self.position));
        }
        if self.event_id.chars().count() != 36 {
            return Err(RowProblem::EventId(self.event_id.clone()));
        }
        if !(1..=255).contains(&self.stream.chars().count()) {
            return Err(RowProblem::Stream(self.stream.clone()));
        }
        if self.version < 1 || self.schema_version < 1 {
            return Err(RowProblem::Version);
        }
        serde_json::from_str::<serde::de::IgnoredAny>(&self.payload)
            .map_err(|e| RowProblem::Payload(e.to_string()))?;
        Ok(())
    }
}

/// The `position` column as a [`Position`].
pub(crate) fn position_of(position: i64) -> Result<Position, BadRow> {
    u64::try_from(position)
        .map(Position)
        .map_err(|_| BadRow::new(position, "a negative position"))
}

/// The `schema_version` column of the row at `position`.
pub(crate) fn schema_version_of(position: i64, schema_version: i64) -> Result<u32, BadRow> {
    u32::try_from(schema_version)
        .map_err(|_| BadRow::new(position, "a schema version out of range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row() -> EventRow {
        EventRow {
            position: 7,
            event_id: "0190c1d2-0000-7000-8000-000000000001".into(),
            stream: "vwire-1".into(),
            version: 2,
            event_type: "Refreshed".into(),
            schema_version: 1,
            recorded_at: "2026-12-02T10:00:00.000001Z".into(),
            correlation_id: None,
            causation_id: Some("cause".into()),
            payload: r#"{"a": 1}"#.into(),
        }
    }

    #[test]
    fn a_row_reads_from_a_json_array_in_column_order_and_decodes() {
        let text = r#"[7, "0190c1d2-0000-7000-8000-000000000001", "vwire-1", 2, "Refreshed", 1,
                       "2026-12-02T10:00:00.000001Z", null, "cause", "{\"a\": 1}"]"#;
        let parsed: EventRow = serde_json::from_str(text).unwrap();
        assert_eq!(parsed, row());
        let event = parsed.decode().unwrap();
        assert_eq!(event.position, Position(7));
        assert_eq!(
            event.payload, r#"{"a": 1}"#,
            "the payload's text is kept to the byte"
        );
        let count = EVENT_COLUMNS.split(',').count();
        assert_eq!(count, 10, "one column per field");
    }

    #[test]
    fn a_broken_row_is_an_error_naming_its_position() {
        let mut broken = row();
        broken.event_id = "not a uuid".into();
        let error = broken.decode().unwrap_err();
        assert_eq!(
            error.to_string(),
            "the event at position 7 has an event id that is not a UUID"
        );
        let mut broken = row();
        broken.recorded_at = "yesterday".into();
        assert!(
            broken
                .decode()
                .unwrap_err()
                .to_string()
                .contains("RFC 3339")
        );
    }

    #[test]
    fn check_says_what_the_schema_would_refuse() {
        assert!(row().check().is_ok());
        let mut bad = row();
        bad.payload = "{oops".into();
        assert!(
            bad.check()
                .unwrap_err()
                .to_string()
                .starts_with("payload is not JSON")
        );
        let mut bad = row();
        bad.position = 0;
        assert_eq!(
            bad.check().unwrap_err().to_string(),
            "position 0 is not ≥ 1"
        );
    }
}
