//! Opening an event log: path checks, pragmas, recognising what the file is (fresh, ours,
//! newer than us, someone else's, damaged), integrity check and migrations.
//!
//! Every failure names the file and the problem ([`StoreError::Open`]); nothing is created or
//! migrated in a file that is not already an nsm-rs log or empty.

use std::io::Read;
use std::path::Path;
use std::time::Duration;

use sqlx::migrate::Migrator;
use sqlx::sqlite::{SqliteConnectOptions, SqliteJournalMode, SqliteSynchronous};
use sqlx::{Connection, Row, SqliteConnection};

use crate::error::{OpenProblem, StoreError};

/// The schema, from `migrations/` at the workspace root, embedded at compile time.
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// SQLite's 16-byte file header.
const SQLITE_HEADER: &[u8; 16] = b"SQLite format 3\0";

/// The highest schema (migration) version this binary knows.
pub fn known_schema_version() -> i64 {
    MIGRATOR.iter().map(|m| m.version).max().unwrap_or(0)
}

/// Fails early, with a precise problem, on paths SQLite would reject with a vague one.
pub(crate) fn check_path(path: &Path, must_exist: bool) -> Result<(), StoreError> {
    let fail = |problem| StoreError::Open {
        path: path.to_owned(),
        problem,
    };
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    if !parent.is_dir() {
        return Err(fail(OpenProblem::DirectoryMissing));
    }
    let Ok(meta) = std::fs::metadata(path) else {
        return if must_exist {
            Err(fail(OpenProblem::FileMissing))
        } else {
            Ok(())
        };
    };
    if !meta.is_file() {
        return Err(fail(OpenProblem::NotADatabase(
            "it is not a regular file".into(),
        )));
    }
    if meta.len() == 0 {
        return Ok(());
    }
    let mut header = [0u8; 16];
    let read = std::fs::File::open(path).and_then(|mut f| f.read_exact(&mut header));
    match read {
        Ok(()) if &header == SQLITE_HEADER => Ok(()),
        Ok(()) => Err(fail(OpenProblem::NotADatabase(
            "its first bytes are not SQLite's file header".into(),
        ))),
        Err(e) => Err(fail(OpenProblem::NotADatabase(format!(
            "cannot read its header: {e}"
        )))),
    }
}

/// How long an open waits for another writer of the same log to let go: long enough for a
/// store closing in this process (its writer finishes its last batch), short enough that a
/// second node on the same file is told at once.
const LOCK_WAIT: Duration = Duration::from_secs(3);

/// One writer per log. A second node writing the same file would keep its own idea of the
/// same vWires (and the writer's positions assume it is alone), so the writer holds an
/// exclusive advisory lock (`flock`) on the file for as long as it runs; the kernel drops it
/// when the process dies, so a SIGKILL never leaves it behind. SQLite's own locks are POSIX
/// record locks, which `flock` does not touch, and read-only opens take no lock at all.
pub(crate) async fn lock_writer(path: &Path) -> Result<std::fs::File, StoreError> {
    let fail = |problem| StoreError::Open {
        path: path.to_owned(),
        problem,
    };
    let file = std::fs::File::open(path).map_err(|e| fail(OpenProblem::Sqlite(e.to_string())))?;
    let deadline = tokio::time::Instant::now() + LOCK_WAIT;
    loop {
        match file.try_lock() {
            Ok(()) => return Ok(file),
            Err(std::fs::TryLockError::WouldBlock) if tokio::time::Instant::now() < deadline => {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(std::fs::TryLockError::WouldBlock) => return Err(fail(OpenProblem::InUse)),
            Err(std::fs::TryLockError::Error(e)) => {
                return Err(fail(OpenProblem::Sqlite(format!("cannot lock it: {e}"))));
            }
        }
    }
}

/// Connection options shared by the writer and the readers: every pragma set explicitly.
pub(crate) fn connect_options(path: &Path, busy_timeout: Duration) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(busy_timeout)
        .foreign_keys(true)
        // Statements are prepared once per connection and reused (the writer's multi-row
        // inserts come in many sizes).
        .statement_cache_capacity(512)
        // Rows cross from SQLite's worker thread in big hand-offs, not 50 at a time: reading
        // the log is bulk work, and each hand-off is a thread wake-up.
        .row_buffer_size(256)
}

/// Options of the single writer connection.
pub(crate) fn writer_options(
    path: &Path,
    busy_timeout: Duration,
    wal_limit_bytes: u64,
) -> SqliteConnectOptions {
    connect_options(path, busy_timeout)
        .create_if_missing(true)
        .journal_mode(SqliteJournalMode::Wal)
        // FULL: the WAL is fsynced at every commit, so an acknowledged append survives a
        // power cut, not only a process crash.
        .synchronous(SqliteSynchronous::Full)
        // Passive checkpoints after commits; `checkpoint` escalates when readers hold them off.
        .pragma("wal_autocheckpoint", "1000")
        // Once a checkpoint resets the WAL, truncate the file back to this size.
        .pragma("journal_size_limit", wal_limit_bytes.to_string())
}

/// The journal writer's own connection (rusqlite, used from the writer's thread), opened
/// after `connect`/`migrate` prepared the file, with the same pragmas as
/// [`writer_options`].
pub(crate) fn writer_connection(
    path: &Path,
    busy_timeout: Duration,
    wal_limit_bytes: u64,
) -> Result<rusqlite::Connection, StoreError> {
    let fail = |e: rusqlite::Error| StoreError::Open {
        path: path.to_owned(),
        problem: OpenProblem::Sqlite(e.to_string()),
    };
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_WRITE | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags).map_err(fail)?;
    conn.busy_timeout(busy_timeout).map_err(fail)?;
    // journal_mode is WAL already (`require_wal` checked it; it persists in the file).
    conn.pragma_update(None, "foreign_keys", "ON")
        .map_err(fail)?;
    conn.pragma_update(None, "synchronous", "FULL")
        .map_err(fail)?;
    // These two answer with their new value, which `pragma_update` would refuse.
    conn.pragma_update_and_check(None, "wal_autocheckpoint", 1000, |_| Ok(()))
        .map_err(fail)?;
    let limit = i64::try_from(wal_limit_bytes).unwrap_or(i64::MAX);
    conn.pragma_update_and_check(None, "journal_size_limit", limit, |_| Ok(()))
        .map_err(fail)?;
    // Statements are prepared once and reused (the multi-row inserts come in many sizes).
    conn.set_prepared_statement_cache_capacity(512);
    Ok(conn)
}

/// A read-only connection of its own (rusqlite), for the operator tools' bulk reads
/// ([`crate::read::LogReader`]), opened after the store's checks passed. It never writes and
/// takes no lock a writer waits for.
pub(crate) fn reader_connection(
    path: &Path,
    busy_timeout: Duration,
) -> rusqlite::Result<rusqlite::Connection> {
    let flags =
        rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY | rusqlite::OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = rusqlite::Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(busy_timeout)?;
    // Belt and braces: this connection never writes, whatever a bug would ask of it.
    conn.pragma_update(None, "query_only", true)?;
    // Bulk reads of a big log: pages straight from the OS's page cache (memory-mapped)
    // instead of copied into SQLite's own cache, which halves the cost of a full read.
    conn.pragma_update(None, "mmap_size", 1_i64 << 34)?;
    Ok(conn)
}

/// Options of a read-only connection (readers and operator tools).
pub(crate) fn reader_options(path: &Path, busy_timeout: Duration) -> SqliteConnectOptions {
    connect_options(path, busy_timeout).read_only(true)
}

/// Opens one connection, turning SQLite's error codes into problems an operator can act on.
pub(crate) async fn connect(
    path: &Path,
    options: &SqliteConnectOptions,
) -> Result<SqliteConnection, StoreError> {
    SqliteConnection::connect_with(options)
        .await
        .map_err(|e| open_error(path, e))
}

/// Maps a SQLite error met while opening to an [`OpenProblem`].
pub(crate) fn open_error(path: &Path, error: sqlx::Error) -> StoreError {
    let problem = match &error {
        sqlx::Error::Database(db) => {
            let message = db.message().to_owned();
            // Primary result code: the low byte of the extended code.
            let code = db
                .code()
                .and_then(|c| c.parse::<i32>().ok())
                .map_or(0, |c| c & 0xff);
            match code {
                // SQLITE_PERM, SQLITE_READONLY, SQLITE_CANTOPEN
                3 | 8 | 14 => OpenProblem::NotWritable(message),
                // SQLITE_CORRUPT
                11 => OpenProblem::Corrupt(message),
                // SQLITE_NOTADB
                26 => OpenProblem::NotADatabase(message),
                _ => OpenProblem::Sqlite(message),
            }
        }
        other => OpenProblem::Sqlite(other.to_string()),
    };
    StoreError::Open {
        path: path.to_owned(),
        problem,
    }
}

/// What a database file holds, as far as this binary is concerned.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Contents {
    /// No tables at all: a new log.
    Empty,
    /// An nsm-rs log at this schema version.
    EventLog { schema_version: i64 },
}

/// Looks at the tables of a database and refuses anything that is not ours, or is newer.
pub(crate) async fn recognise(
    path: &Path,
    conn: &mut SqliteConnection,
) -> Result<Contents, StoreError> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
    )
    .fetch_all(&mut *conn)
    .await
    .map_err(|e| open_error(path, e))?;
    if tables.is_empty() {
        return Ok(Contents::Empty);
    }
    if !tables.iter().any(|t| t == "_sqlx_migrations") || !tables.iter().any(|t| t == "events") {
        return Err(StoreError::Open {
            path: path.to_owned(),
            problem: OpenProblem::NotAnEventLog(tables.join(", ")),
        });
    }
    let found: i64 =
        sqlx::query("SELECT coalesce(max(version), 0) FROM _sqlx_migrations WHERE success = 1")
            .fetch_one(&mut *conn)
            .await
            .and_then(|row| row.try_get(0))
            .map_err(|e| open_error(path, e))?;
    let known = known_schema_version();
    if found > known {
        return Err(StoreError::Open {
            path: path.to_owned(),
            problem: OpenProblem::NewerSchema { found, known },
        });
    }
    Ok(Contents::EventLog {
        schema_version: found,
    })
}

/// `PRAGMA quick_check`: reads every page and checks the b-trees (not index contents).
pub(crate) async fn quick_check(
    path: &Path,
    conn: &mut SqliteConnection,
) -> Result<(), StoreError> {
    let report: Vec<String> = sqlx::query_scalar("PRAGMA quick_check(5)")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| open_error(path, e))?;
    if report.len() == 1 && report[0] == "ok" {
        return Ok(());
    }
    Err(StoreError::Open {
        path: path.to_owned(),
        problem: OpenProblem::Corrupt(report.join("; ")),
    })
}

/// Applies the migrations this binary has and the file lacks.
pub(crate) async fn migrate(path: &Path, conn: &mut SqliteConnection) -> Result<(), StoreError> {
    MIGRATOR
        .run_direct(&mut *conn)
        .await
        .map_err(|e| StoreError::Open {
            path: path.to_owned(),
            problem: OpenProblem::Migration(e.to_string()),
        })
}

/// Refuses to go on unless the file really is in WAL mode (some filesystems cannot do it,
/// and without WAL readers would block the writer).
pub(crate) async fn require_wal(
    path: &Path,
    conn: &mut SqliteConnection,
) -> Result<(), StoreError> {
    let mode: String = sqlx::query_scalar("PRAGMA journal_mode")
        .fetch_one(&mut *conn)
        .await
        .map_err(|e| open_error(path, e))?;
    if mode.eq_ignore_ascii_case("wal") {
        return Ok(());
    }
    Err(StoreError::Open {
        path: path.to_owned(),
        problem: OpenProblem::Sqlite(format!(
            "journal mode is {mode:?}, not WAL; the filesystem may not support shared memory"
        )),
    })
}
