//! Writing a batch in waves of multi-row statements.
//!
//! A batch of appends is split into waves in which no stream and no event id appears twice.
//! Each wave is written with one multi-row `INSERT ... SELECT` per (up to) [`MAX_ROWS`]
//! rows, each row carrying its own checks (the stream's version as the statement began is
//! the expected one; the id is not in the log); the writer then learns which rows went in.
//! Because SQLite computes the whole SELECT before inserting when it reads the target table,
//! every row sees the log as it was before the statement, which is exactly right when no
//! stream repeats within a wave. Appends to the same stream fall into later waves, in order.
//!
//! One statement per wave instead of one per event is what makes group commit cheap: with
//! sqlx every statement is a round trip to the connection's worker thread.

use std::collections::HashMap;

use uuid::Uuid;

use crate::store::AppendRequest;

/// Rows per multi-row statement (11 parameters each, far below SQLite's limit of 32766).
pub(crate) const MAX_ROWS: usize = 256;

/// Splits appends (by index, in order) into waves where no stream or event id repeats. An
/// append goes into the wave after the last one holding any of its stream or ids, so appends
/// to one stream stay in submission order.
pub(crate) fn split_waves(requests: &[AppendRequest]) -> Vec<Vec<usize>> {
    let mut waves: Vec<Vec<usize>> = Vec::new();
    let mut stream_wave: HashMap<&str, usize> = HashMap::new();
    let mut id_wave: HashMap<Uuid, usize> = HashMap::new();
    for (index, request) in requests.iter().enumerate() {
        let after_stream = stream_wave.get(request.stream.as_str()).map(|w| w + 1);
        let after_ids = request
            .events
            .iter()
            .filter_map(|e| id_wave.get(&e.id).map(|w| w + 1));
        let wave = after_stream.into_iter().chain(after_ids).max().unwrap_or(0);
        if waves.len() <= wave {
            waves.resize_with(wave + 1, Vec::new);
        }
        waves[wave].push(index);
        stream_wave.insert(request.stream.as_str(), wave);
        for event in &request.events {
            id_wave.insert(event.id, wave);
        }
    }
    waves
}

/// Groups a wave's appends into statements of at most [`MAX_ROWS`] rows, never splitting an
/// append (its events must all see the same starting version).
pub(crate) fn chunks(requests: &[AppendRequest], wave: &[usize]) -> Vec<Vec<usize>> {
    let mut chunks: Vec<Vec<usize>> = Vec::new();
    let mut rows = 0;
    for &index in wave {
        let size = requests[index].events.len();
        if chunks.is_empty() || rows + size > MAX_ROWS {
            chunks.push(Vec::new());
            rows = 0;
        }
        if let Some(last) = chunks.last_mut() {
            last.push(index);
        }
        rows += size;
    }
    chunks
}

fn placeholders(rows: usize, per_row: usize) -> String {
    let row = format!("({})", vec!["?"; per_row].join(","));
    vec![row; rows].join(",")
}

/// The multi-row insert for `rows` events. Parameters per row, in order: event id, stream,
/// expected version (NULL: any), offset within its append (1..), event type, schema version,
/// recorded at, correlation id, causation id, payload, ordinal, and the ids of every event of
/// its append (a JSON array).
///
/// An append goes in whole or not at all within the one statement: each of its rows checks
/// the stream's version and that *none* of the append's ids is in the log yet. SQLite
/// evaluates the SELECT against the table as it was before the statement (it reads the table
/// it inserts into), so rows of one append cannot see each other.
pub(crate) fn insert_sql(rows: usize) -> String {
    format!(
        "INSERT INTO events (event_id, stream, version, event_type, schema_version, recorded_at,
                             correlation_id, causation_id, payload)
         SELECT id, stream, current + k, type, schema, at, corr, caus, payload FROM (
             SELECT v.column1 AS id, v.column2 AS stream, v.column3 AS expected,
                    v.column4 AS k, v.column5 AS type, v.column6 AS schema, v.column7 AS at,
                    v.column8 AS corr, v.column9 AS caus, v.column10 AS payload,
                    v.column11 AS ord, v.column12 AS siblings,
                    (SELECT coalesce(max(e.version), 0) FROM events AS e
                      WHERE e.stream = v.column2) AS current
             FROM (VALUES {}) AS v
         )
         WHERE (expected IS NULL OR current = expected)
           AND NOT EXISTS (SELECT 1 FROM events AS d
                            WHERE d.event_id IN (SELECT value FROM json_each(siblings)))
         ORDER BY ord",
        placeholders(rows, 12)
    )
}

/// The multi-row upsert of `rows` projection rows (stream, version, status, expires_at, state).
pub(crate) fn upsert_live_sql(rows: usize) -> String {
    format!(
        "INSERT INTO live_vwires (stream, version, status, expires_at, state) VALUES {}
         ON CONFLICT (stream) DO UPDATE SET version = excluded.version,
             status = excluded.status, expires_at = excluded.expires_at, state = excluded.state",
        placeholders(rows, 5)
    )
}

/// The multi-row upsert of `rows` registry rows (stream, version, expires_at, state).
pub(crate) fn upsert_registration_sql(rows: usize) -> String {
    format!(
        "INSERT INTO live_registry (stream, version, expires_at, state) VALUES {}
         ON CONFLICT (stream) DO UPDATE SET version = excluded.version,
             expires_at = excluded.expires_at, state = excluded.state",
        placeholders(rows, 4)
    )
}

/// Deletes `rows` streams from a projection table (one of ours, never user input).
pub(crate) fn delete_rows_sql(table: &str, rows: usize) -> String {
    format!(
        "DELETE FROM {table} WHERE stream IN ({})",
        vec!["?"; rows].join(",")
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::store::{Causation, ExpectedVersion, NewEvent, StreamId};

    fn append(stream: &str, ids: &[Uuid]) -> AppendRequest {
        let events = ids
            .iter()
            .map(|&id| NewEvent {
                id,
                event_type: "T".into(),
                schema_version: 1,
                payload: "{}".into(),
                causation: Causation::default(),
            })
            .collect();
        AppendRequest::new(StreamId::new(stream).unwrap(), ExpectedVersion::Any, events)
    }

    #[test]
    fn appends_to_one_stream_or_sharing_an_id_go_to_later_waves_in_order() {
        let shared = Uuid::new_v4();
        let requests = vec![
            append("a", &[Uuid::new_v4()]),
            append("b", &[shared]),
            append("a", &[Uuid::new_v4()]),
            append("c", &[shared]),
            append("d", &[Uuid::new_v4()]),
            append("a", &[Uuid::new_v4()]),
        ];
        assert_eq!(
            split_waves(&requests),
            vec![vec![0, 1, 4], vec![2, 3], vec![5]]
        );
    }

    #[test]
    fn chunks_never_split_an_append_and_respect_the_row_limit() {
        let big: Vec<Uuid> = (0..200).map(|_| Uuid::new_v4()).collect();
        let requests = vec![
            append("a", &big),
            append("b", &big[..100]),
            append("c", &big[..10]),
        ];
        assert_eq!(chunks(&requests, &[0, 1, 2]), vec![vec![0], vec![1, 2]]);
    }
}
