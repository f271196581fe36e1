//! The log being imported, seen through the [`EventStore`] contract from inside the import's
//! own transaction, so the projections' `rebuild` reads the rows before they are committed
//! and the rebuilt rows go in with them. Reads only: appending and subscribing are refused.

use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};

use futures::FutureExt;
use futures::future::BoxFuture;
use rusqlite::{Connection, params};

use crate::error::StoreError;
use crate::row::{EVENT_COLUMNS, EventRow};
use crate::store::sqlite::{from_sql, to_sql};
use crate::store::{
    AppendRequest, Appended, EventStore, EventStream, LiveRow, Position, RecordedEvent,
    RegistrationRow, StreamId,
};

/// The import's connection, with its open transaction.
#[derive(Debug)]
pub(super) struct Loading {
    path: PathBuf,
    conn: Mutex<Connection>,
    /// The insert of one row, prepared once and cached by the connection.
    insert_sql: String,
}

impl Loading {
    pub(super) fn new(path: &Path, conn: Connection) -> Self {
        Self {
            path: path.to_owned(),
            conn: Mutex::new(conn),
            insert_sql: format!(
                "INSERT INTO events ({EVENT_COLUMNS}) \
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"
            ),
        }
    }

    /// Inserts one row as it is, position included.
    pub(super) fn insert(&mut self, row: &EventRow) -> rusqlite::Result<()> {
        let conn = self
            .conn
            .get_mut()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        conn.prepare_cached(&self.insert_sql)?.execute(params![
            row.position,
            row.event_id,
            row.stream,
            row.version,
            row.event_type,
            row.schema_version,
            row.recorded_at,
            row.correlation_id,
            row.causation_id,
            row.payload,
        ])?;
        Ok(())
    }

    pub(super) fn conn(&self) -> MutexGuard<'_, Connection> {
        self.conn
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Rolls back whatever is not committed and closes the connection (before the files of a
    /// failed import are removed).
    pub(super) fn close_rolling_back(self) {
        let conn = self
            .conn
            .into_inner()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        let _ = conn.execute_batch("ROLLBACK");
        let _ = conn.close();
    }

    fn read(
        &self,
        condition: &str,
        bind: impl rusqlite::Params,
    ) -> Result<Vec<RecordedEvent>, StoreError> {
        let conn = self.conn();
        let mut statement = conn.prepare_cached(&format!(
            "SELECT {EVENT_COLUMNS} FROM events WHERE {condition}"
        ))?;
        let rows = statement.query_map(bind, EventRow::from_sql)?;
        rows.map(|row| Ok(row?.decode()?)).collect()
    }

    fn unsupported<T: Send + 'static>(&self, what: &str) -> BoxFuture<'_, Result<T, StoreError>> {
        let error = StoreError::InvalidInput(format!(
            "{what} is not offered while {} is being imported",
            self.path.display()
        ));
        futures::future::ready(Err(error)).boxed()
    }
}

impl EventStore for Loading {
    fn append(&self, _request: AppendRequest) -> BoxFuture<'_, Result<Appended, StoreError>> {
        self.unsupported("appending")
    }

    fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>> {
        let read = self.read(
            "stream = ?1 AND version >= ?2 ORDER BY version",
            params![stream.as_str(), to_sql(from_version)],
        );
        futures::future::ready(read).boxed()
    }

    fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let read = self.read(
            "position > ?1 ORDER BY position LIMIT ?2",
            params![to_sql(after.0), limit],
        );
        futures::future::ready(read).boxed()
    }

    fn head(&self) -> Position {
        let head =
            self.conn()
                .query_row("SELECT coalesce(max(position), 0) FROM events", [], |row| {
                    row.get::<_, i64>(0)
                });
        Position(from_sql(head.unwrap_or(0)))
    }

    fn subscribe(&self, _after: Position) -> EventStream {
        let error = StoreError::InvalidInput("an import cannot be subscribed to".into());
        let stream = futures::stream::once(futures::future::ready(Err(error)));
        futures::StreamExt::boxed(stream)
    }

    fn live_rows(&self) -> BoxFuture<'_, Result<Vec<LiveRow>, StoreError>> {
        self.unsupported("live_vwires")
    }

    fn registration_rows(&self) -> BoxFuture<'_, Result<Vec<RegistrationRow>, StoreError>> {
        self.unsupported("live_registry")
    }
}
