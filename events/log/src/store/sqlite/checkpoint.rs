//! Keeping the WAL bounded.
//!
//! SQLite checkpoints the WAL into the database after commits (`wal_autocheckpoint`), but
//! only PASSIVE ones: while readers keep overlapping, the WAL can never be reset and grows
//! without bound (checkpoint starvation). Two things prevent it here:
//!
//! 1. our readers never hold a read transaction for long (reads and subscriptions go in
//!    bounded chunks, each its own statement);
//! 2. when the WAL file passes its limit, the writer runs a TRUNCATE checkpoint between
//!    batches. It waits (briefly) for the readers of old snapshots to finish; new readers
//!    start on the checkpointed database and do not hold it off, so overlapping readers
//!    cannot starve it. If a reader outside our control (a `sqlite3` shell with an open
//!    transaction) still holds it off, the writer warns and retries with backoff instead of
//!    stalling appends.

use std::path::PathBuf;
use std::time::Duration;

use rusqlite::Connection;
use tokio::time::Instant;

/// How long a TRUNCATE checkpoint may wait for old readers before the writer moves on.
const CHECKPOINT_WAIT: Duration = Duration::from_millis(200);
const MAX_BACKOFF: Duration = Duration::from_secs(10);

#[derive(Debug)]
pub(crate) struct WalGuard {
    wal_path: PathBuf,
    limit_bytes: u64,
    busy_timeout: Duration,
    backoff: Duration,
    next_attempt: Option<Instant>,
}

impl WalGuard {
    pub(crate) fn new(db_path: &std::path::Path, limit_bytes: u64, busy_timeout: Duration) -> Self {
        let mut wal = db_path.as_os_str().to_owned();
        wal.push("-wal");
        Self {
            wal_path: PathBuf::from(wal),
            limit_bytes,
            busy_timeout,
            backoff: CHECKPOINT_WAIT,
            next_attempt: None,
        }
    }

    /// Called after each batch: a stat of the WAL file, and a checkpoint if it is too big.
    pub(crate) fn after_commit(&mut self, conn: &Connection) {
        let size = std::fs::metadata(&self.wal_path).map_or(0, |m| m.len());
        if size <= self.limit_bytes {
            return;
        }
        if self.next_attempt.is_some_and(|t| Instant::now() < t) {
            return;
        }
        match self.truncate(conn) {
            Ok(true) => {
                tracing::debug!(wal_bytes = size, "WAL checkpointed and truncated");
                self.backoff = CHECKPOINT_WAIT;
                self.next_attempt = None;
            }
            Ok(false) => {
                tracing::warn!(
                    wal = %self.wal_path.display(),
                    wal_bytes = size,
                    retry_in_ms = self.backoff.as_millis() as u64,
                    "a reader holds the WAL open; checkpoint postponed"
                );
                self.next_attempt = Some(Instant::now() + self.backoff);
                self.backoff = (self.backoff * 2).min(MAX_BACKOFF);
            }
            Err(e) => tracing::warn!(error = %e, "WAL checkpoint failed"),
        }
    }

    /// Runs `wal_checkpoint(TRUNCATE)` with a short busy wait. True if it completed.
    fn truncate(&self, conn: &Connection) -> rusqlite::Result<bool> {
        conn.busy_timeout(CHECKPOINT_WAIT)?;
        let result = conn.query_row("PRAGMA wal_checkpoint(TRUNCATE)", [], |row| {
            row.get::<_, i64>(0)
        });
        conn.busy_timeout(self.busy_timeout)?;
        Ok(result? == 0)
    }

    /// Before the writer closes: fold the WAL into the database so the file stands alone.
    pub(crate) fn checkpoint_on_close(&self, conn: &Connection) -> rusqlite::Result<bool> {
        self.truncate(conn)
    }
}
