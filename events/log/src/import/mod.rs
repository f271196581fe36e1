//! # Loading stored rows into a new log (`nsm import`)
//!
//! An [`Import`] makes an event log out of rows read elsewhere (an incident bundle written by
//! `nsm export` from [`crate::read::LogReader::for_each_row`]), keeping every column of every
//! row as it was, positions included, so that every operator command answers on the copy as
//! it did on the source.
//!
//! All or nothing: [`Import::begin`] creates the log with the store's own migrations (or takes
//! an existing one that holds no event), locks it against a node opening it meanwhile, and
//! opens ONE transaction; [`Import::insert`] adds rows to it; [`Import::commit`] rebuilds
//! `live_vwires` and `live_registry` from the rows (with the projections' own `rebuild`, which
//! reads the uncommitted rows through [`loading::Loading`]), records the caller's facts in
//! `log_meta`, sets the AUTOINCREMENT sequence to the last position so a node appends after
//! it, commits and folds the WAL into the file. Dropping an import that was not committed
//! rolls the transaction back and removes a file it created.
//!
//! The bundle's format and its checks are the command's; this module knows the tables.

mod loading;

use std::fs::File;
use std::path::{Path, PathBuf};

use rusqlite::{Connection, params};
use serde_json::Value;

use self::loading::Loading;
use crate::error::ImportError;
use crate::projection::{self, ReplayError};
use crate::row::EventRow;
use crate::store::sqlite::{open, to_sql};
use crate::store::{
    EventStore, LiveRow, OpenOptions, Position, RegistrationRow, SqliteStore, format_timestamp,
};

/// What [`Import::commit`] did with the projections. A projection the rows do not fold into
/// (a bundle of a damaged log is still worth loading, faithfully) is left empty, and the
/// error says why; `nsm verify` on the import says more.
#[derive(Debug)]
pub struct Imported {
    /// Rows written to `live_vwires`.
    pub live_vwires: Result<usize, ReplayError>,
    /// Rows written to `live_registry`.
    pub live_registry: Result<usize, ReplayError>,
}

/// A log being loaded, inside its one transaction. See the [module](self) documentation.
#[derive(Debug)]
pub struct Import {
    path: PathBuf,
    /// The file did not exist before: a failed import removes it.
    created: bool,
    /// The connection inside its transaction; taken only by `Drop`.
    loading: Option<Loading>,
    /// The highest position inserted.
    last: i64,
    committed: bool,
    _lock: File,
}

impl Import {
    /// Creates the log at `path` (or takes an existing one that holds no event), locks it and
    /// begins the import's transaction. Refuses a log that holds events.
    pub async fn begin(path: &Path) -> Result<Self, ImportError> {
        let created = !path.exists();
        let begun = Self::prepare(path, created).await;
        if begun.is_err() && created {
            remove_log(path);
        }
        begun
    }

    async fn prepare(path: &Path, created: bool) -> Result<Self, ImportError> {
        let options = OpenOptions {
            readers: 1,
            ..OpenOptions::default()
        };
        let store = SqliteStore::open(path, options.clone()).await?;
        let head = store.head();
        store.close().await;
        if head > Position::START {
            return Err(ImportError::NotEmpty {
                path: path.to_owned(),
                head,
            });
        }
        let lock = File::open(path).map_err(|source| ImportError::Io {
            path: path.to_owned(),
            source,
        })?;
        lock.try_lock().map_err(|_| ImportError::InUse {
            path: path.to_owned(),
        })?;
        // The journal writer's own pragmas (synchronous=FULL, foreign keys); WAL is the file's.
        let conn = open::writer_connection(path, options.busy_timeout, options.wal_limit_bytes)?;
        conn.execute_batch("BEGIN IMMEDIATE")?;
        Ok(Self {
            path: path.to_owned(),
            created,
            loading: Some(Loading::new(path, conn)),
            last: 0,
            committed: false,
            _lock: lock,
        })
    }

    /// Inserts one row as it is, position included. Rows need not be in position order, but
    /// an export gives them so.
    pub fn insert(&mut self, row: &EventRow) -> Result<(), ImportError> {
        self.loading_mut()
            .insert(row)
            .map_err(|error| ImportError::Row {
                position: row.position,
                message: error.to_string(),
            })?;
        self.last = self.last.max(row.position);
        Ok(())
    }

    /// Rebuilds the projections from the rows, records `meta` in `log_meta` (a string as it
    /// is, any other value as JSON), sets the sequence, commits and checkpoints.
    pub async fn commit(
        mut self,
        meta: impl IntoIterator<Item = (String, Value)>,
    ) -> Result<Imported, ImportError> {
        let last = self.last;
        let loading: &Loading = self.loading_mut();
        let vwires = projection::vwire::rebuild(loading).await;
        let registry = projection::registry::rebuild(loading).await;
        {
            let conn = loading.conn();
            write_live(&conn, vwires.iter().flat_map(|rows| rows.values()))?;
            write_registry(&conn, registry.iter().flat_map(|rows| rows.values()))?;
            write_meta(&conn, meta)?;
            set_sequence(&conn, last)?;
            conn.execute_batch("COMMIT")?;
            // The WAL holds the whole import; fold it into the file now rather than at a
            // node's start.
            conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |_| Ok(()))?;
        }
        self.committed = true;
        Ok(Imported {
            live_vwires: vwires.map(|rows| rows.len()),
            live_registry: registry.map(|rows| rows.len()),
        })
    }

    fn loading_mut(&mut self) -> &mut Loading {
        self.loading
            .as_mut()
            .expect("an import keeps its connection until it is dropped")
    }
}

impl Drop for Import {
    /// Not committed: nothing was imported. The transaction is rolled back; a log this import
    /// created goes, one that was there stays as it was.
    fn drop(&mut self) {
        if self.committed {
            return;
        }
        if let Some(loading) = self.loading.take() {
            loading.close_rolling_back();
        }
        if self.created {
            remove_log(&self.path);
        }
    }
}

/// The rebuilt rows, in the format the store's writer gives them.
fn write_live<'a>(
    conn: &Connection,
    rows: impl Iterator<Item = &'a LiveRow>,
) -> rusqlite::Result<()> {
    let mut insert = conn.prepare(
        "INSERT INTO live_vwires (stream, version, status, expires_at, state) \
         VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for row in rows {
        insert.execute(params![
            row.stream.as_str(),
            to_sql(row.version),
            row.data.status,
            format_timestamp(row.data.expires_at),
            row.data.state,
        ])?;
    }
    Ok(())
}

fn write_registry<'a>(
    conn: &Connection,
    rows: impl Iterator<Item = &'a RegistrationRow>,
) -> rusqlite::Result<()> {
    let mut insert = conn.prepare(
        "INSERT INTO live_registry (stream, version, expires_at, state) VALUES (?1, ?2, ?3, ?4)",
    )?;
    for row in rows {
        insert.execute(params![
            row.stream.as_str(),
            to_sql(row.version),
            row.data.expires_at.map(format_timestamp),
            row.data.state,
        ])?;
    }
    Ok(())
}

/// One `log_meta` row per fact: a string as it is, anything else as JSON (the schema's rule).
fn write_meta(
    conn: &Connection,
    meta: impl IntoIterator<Item = (String, Value)>,
) -> rusqlite::Result<()> {
    let mut insert =
        conn.prepare("INSERT OR REPLACE INTO log_meta (key, value) VALUES (?1, ?2)")?;
    for (key, value) in meta {
        let text = match value {
            Value::String(text) => text,
            other => other.to_string(),
        };
        insert.execute(params![key, text])?;
    }
    Ok(())
}

/// AUTOINCREMENT continues after the last imported position.
fn set_sequence(conn: &Connection, last: i64) -> rusqlite::Result<()> {
    let updated = conn.execute(
        "UPDATE sqlite_sequence SET seq = ?1 WHERE name = 'events'",
        params![last],
    )?;
    if updated == 0 {
        conn.execute(
            "INSERT INTO sqlite_sequence (name, seq) VALUES ('events', ?1)",
            params![last],
        )?;
    }
    Ok(())
}

/// Removes a log file and SQLite's companions of it.
fn remove_log(path: &Path) {
    for suffix in ["", "-wal", "-shm", "-journal"] {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        let _ = std::fs::remove_file(PathBuf::from(name));
    }
}
