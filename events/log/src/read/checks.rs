//! The checks of `nsm verify` that SQLite answers best: each stream's versions contiguous
//! in position order, no event id twice, and SQLite's own `quick_check`. They hand back
//! plain data; what is a failure and how it is told is the command's business.
//!
//! The first two are one query each over the schema's indexes, streamed to the caller: no
//! per-stream state in memory, however many problems a damaged log has.

use super::LogReader;
use crate::error::ReadError;

/// An event whose version is not the one after its stream's previous event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MisplacedVersion {
    pub stream: String,
    pub version: i64,
    pub position: u64,
    /// The stream's version before this one in version order (0: this is its first event).
    pub previous: i64,
    /// The position of that previous version (0 for none).
    pub previous_position: u64,
}

/// An event id held by more than one row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DuplicateId {
    pub event_id: String,
    /// Every position holding it, lowest first.
    pub positions: Vec<u64>,
}

impl LogReader {
    /// Calls `each` with every event out of place in its stream (a version that is not the
    /// previous one plus 1, or that comes before the previous one in position order), in
    /// position order. One window query over the `(stream, version)` index.
    pub fn misplaced_versions(
        &self,
        mut each: impl FnMut(MisplacedVersion),
    ) -> Result<(), ReadError> {
        let mut statement = self.conn.prepare(
            "SELECT stream, version, position, previous, previous_position FROM (
                 SELECT stream, version, position,
                        lag(version, 1, 0) OVER by_version AS previous,
                        lag(position, 1, 0) OVER by_version AS previous_position
                   FROM events
                 WINDOW by_version AS (PARTITION BY stream ORDER BY version))
              WHERE version <> previous + 1 OR position < previous_position
              ORDER BY position",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            each(MisplacedVersion {
                stream: row.get(0)?,
                version: row.get(1)?,
                position: row.get::<_, i64>(2)?.max(0) as u64,
                previous: row.get(3)?,
                previous_position: row.get::<_, i64>(4)?.max(0) as u64,
            });
        }
        Ok(())
    }

    /// Calls `each` with every event id held by more than one row, in the order of its first
    /// position. The schema's UNIQUE index makes it never happen, unless the file was edited;
    /// one GROUP BY finds out either way.
    pub fn duplicate_ids(&self, mut each: impl FnMut(DuplicateId)) -> Result<(), ReadError> {
        let mut statement = self.conn.prepare(
            "SELECT event_id, json_group_array(position)
               FROM events GROUP BY event_id HAVING count(*) > 1 ORDER BY min(position)",
        )?;
        let mut rows = statement.query([])?;
        while let Some(row) = rows.next()? {
            let positions: String = row.get(1)?;
            let mut positions: Vec<u64> = serde_json::from_str(&positions).unwrap_or_default();
            positions.sort_unstable();
            each(DuplicateId {
                event_id: row.get(0)?,
                positions,
            });
        }
        Ok(())
    }

    /// `PRAGMA quick_check`: reads every page and checks the b-trees (not index contents).
    /// SQLite's report, at most `most` lines: `["ok"]` for a sound file.
    pub fn quick_check(&self, most: usize) -> Result<Vec<String>, ReadError> {
        let mut statement = self.conn.prepare(&format!("PRAGMA quick_check({most})"))?;
        let report = statement
            .query_map([], |row| row.get::<_, String>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(report)
    }
}
