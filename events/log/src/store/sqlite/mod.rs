//! The durable event store on SQLite.
//!
//! * One writer connection, owned by the journal writer's own thread ([`writer`]):
//!   `BEGIN IMMEDIATE`, group commit, `synchronous=FULL`, and an exclusive lock on the file
//!   so that no second writer runs. An append resolves only after its batch is fsynced. The
//!   writer uses rusqlite directly, so a batch's statements run without thread hand-offs;
//!   opening, migrations and every read go through sqlx.
//! * A pool of read-only connections (sqlx) for every read; in WAL mode they never block the
//!   writer, and the writer never blocks them.
//! * The WAL is kept bounded ([`checkpoint`]).
//!
//! Dropping every clone of the store (or calling [`SqliteStore::close`]) lets the writer
//! drain its queue, checkpoint and close the file.

pub mod baseline;
mod checkpoint;
pub(crate) mod open;
mod rows;
mod wave;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::BoxFuture;
use sqlx::SqlitePool;
use sqlx::sqlite::SqlitePoolOptions;
use std::thread::JoinHandle;
use tokio::sync::{Mutex, mpsc, oneshot, watch};

pub use open::known_schema_version;
pub use writer::{CommitObservation, JournalObserver, WriterCounts, WriterStats};

use self::checkpoint::WalGuard;
use self::open::Contents;
use self::writer::{Job, Writer};
pub(crate) use self::writer::{from_sql, to_sql};
use super::subscription::{self, ChunkReader};
use super::{
    AppendRequest, Appended, EventStore, EventStream, LiveRow, Position, RecordedEvent,
    RegistrationRow, StreamId, parse_timestamp,
};
use crate::error::StoreError;

/// How an event log is opened. The defaults suit a node; tests and benchmarks adjust them.
#[derive(Debug, Clone)]
pub struct OpenOptions {
    /// Run `PRAGMA quick_check` before use (reads the whole file once).
    pub integrity_check: bool,
    /// How long a connection waits for a lock before failing (`busy_timeout`).
    pub busy_timeout: Duration,
    /// WAL size past which the writer forces a truncating checkpoint.
    pub wal_limit_bytes: u64,
    /// Most appends in one group commit.
    pub max_batch: usize,
    /// Appends that may wait for the writer before `append` itself waits (back-pressure).
    pub queue_capacity: usize,
    /// Read-only connections in the reader pool.
    pub readers: u32,
    /// Told of every commit and append (the node's metrics); `None`: nobody is.
    pub observer: Option<Arc<dyn JournalObserver>>,
}

impl Default for OpenOptions {
    fn default() -> Self {
        Self {
            integrity_check: true,
            busy_timeout: Duration::from_secs(5),
            wal_limit_bytes: 64 * 1024 * 1024,
            max_batch: 1024,
            queue_capacity: 8192,
            readers: 4,
            observer: None,
        }
    }
}

#[derive(Debug)]
struct Shared {
    path: PathBuf,
    readers: SqlitePool,
    head: watch::Receiver<Position>,
    /// The writer's queue; `None` once closed, or for a read-only store.
    queue: std::sync::RwLock<Option<mpsc::Sender<Job>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
    read_only: bool,
    stats: Arc<WriterStats>,
    observer: Option<Arc<dyn JournalObserver>>,
    read_all_sql: String,
    read_stream_sql: String,
}

/// The SQLite event store. Cheap to clone; clones share the writer and the readers.
#[derive(Debug, Clone)]
pub struct SqliteStore {
    shared: Arc<Shared>,
}

impl SqliteStore {
    /// Opens (creating if needed) the event log at `path` for reading and writing, migrates
    /// its schema, and starts the journal writer. Must run inside a tokio runtime.
    pub async fn open(path: impl AsRef<Path>, options: OpenOptions) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        open::check_path(&path, false)?;
        let writer_options =
            open::writer_options(&path, options.busy_timeout, options.wal_limit_bytes);
        let mut conn = open::connect(&path, &writer_options).await?;
        let lock = open::lock_writer(&path).await?;
        if let Contents::EventLog { .. } = open::recognise(&path, &mut conn).await?
            && options.integrity_check
        {
            open::quick_check(&path, &mut conn).await?;
        }
        open::migrate(&path, &mut conn).await?;
        open::require_wal(&path, &mut conn).await?;
        let (head, last_recorded_at) = read_head(&path, &mut conn).await?;
        // sqlx prepared the file; the writer writes through a connection of its own thread.
        sqlx::Connection::close(conn)
            .await
            .map_err(|e| open::open_error(&path, e))?;
        let conn = open::writer_connection(&path, options.busy_timeout, options.wal_limit_bytes)?;

        let readers = reader_pool(&path, &options).await?;
        let (head_tx, head_rx) = watch::channel(head);
        let (queue_tx, queue_rx) = mpsc::channel(options.queue_capacity);
        let stats = Arc::new(WriterStats::default());
        let writer = Writer {
            path: path.clone(),
            conn,
            head: head_tx,
            max_batch: options.max_batch,
            wal: WalGuard::new(&path, options.wal_limit_bytes, options.busy_timeout),
            last_recorded_at,
            stats: stats.clone(),
            observer: options.observer.clone(),
            _lock: lock,
        };
        let task = std::thread::Builder::new()
            .name("nsm-journal".into())
            .spawn(move || writer.run(queue_rx))
            .map_err(|e| StoreError::Open {
                path: path.clone(),
                problem: crate::error::OpenProblem::Sqlite(format!(
                    "cannot start the writer thread: {e}"
                )),
            })?;
        tracing::info!(path = %path.display(), head = head.0, "event log open");
        Ok(Self::from_parts(
            path,
            readers,
            head_rx,
            Some(queue_tx),
            Some(task),
            stats,
            options.observer,
        ))
    }

    /// Opens an existing event log for reading only: no writer, no migration, no lock taken
    /// that could slow a node writing the same file. The head is the one at open time; a
    /// subscription delivers what was committed by then.
    pub async fn open_read_only(
        path: impl AsRef<Path>,
        options: OpenOptions,
    ) -> Result<Self, StoreError> {
        let path = path.as_ref().to_owned();
        open::check_path(&path, true)?;
        let mut conn =
            open::connect(&path, &open::reader_options(&path, options.busy_timeout)).await?;
        match open::recognise(&path, &mut conn).await? {
            Contents::Empty => {
                return Err(StoreError::Open {
                    path,
                    problem: crate::error::OpenProblem::NotAnEventLog("no tables".into()),
                });
            }
            Contents::EventLog { .. } if options.integrity_check => {
                open::quick_check(&path, &mut conn).await?;
            }
            Contents::EventLog { .. } => {}
        }
        let (head, _) = read_head(&path, &mut conn).await?;
        let _ = sqlx::Connection::close(conn).await;
        let readers = reader_pool(&path, &options).await?;
        let (_head_tx, head_rx) = watch::channel(head);
        Ok(Self::from_parts(
            path,
            readers,
            head_rx,
            None,
            None,
            Arc::default(),
            None,
        ))
    }

    fn from_parts(
        path: PathBuf,
        readers: SqlitePool,
        head: watch::Receiver<Position>,
        queue: Option<mpsc::Sender<Job>>,
        writer: Option<JoinHandle<()>>,
        stats: Arc<WriterStats>,
        observer: Option<Arc<dyn JournalObserver>>,
    ) -> Self {
        Self {
            shared: Arc::new(Shared {
                path,
                readers,
                head,
                queue: std::sync::RwLock::new(queue),
                read_only: writer.is_none(),
                writer: Mutex::new(writer),
                stats,
                observer,
                read_all_sql: rows::read_all_sql(),
                read_stream_sql: rows::read_stream_sql(),
            }),
        }
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }

    /// What the journal writer has done since the store was opened.
    pub fn writer_stats(&self) -> WriterCounts {
        self.shared.stats.snapshot()
    }

    /// The reader pool, for queries the [`EventStore`] trait does not cover (operator tools).
    pub fn readers(&self) -> &SqlitePool {
        &self.shared.readers
    }

    /// Stops accepting appends, lets the writer finish what is queued, checkpoints and closes.
    pub async fn close(&self) {
        self.sender_slot().take();
        if let Some(task) = self.shared.writer.lock().await.take() {
            // The writer finishes its last batch and checkpoints; wait off the runtime.
            let _ = tokio::task::spawn_blocking(move || task.join()).await;
        }
        self.shared.readers.close().await;
    }

    fn sender_slot(&self) -> std::sync::RwLockWriteGuard<'_, Option<mpsc::Sender<Job>>> {
        self.shared
            .queue
            .write()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn sender(&self) -> Result<mpsc::Sender<Job>, StoreError> {
        let queue = self
            .shared
            .queue
            .read()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        match &*queue {
            Some(sender) => Ok(sender.clone()),
            None if self.shared.read_only => Err(StoreError::ReadOnly {
                path: self.shared.path.clone(),
            }),
            None => Err(StoreError::Closed),
        }
    }

    async fn append_queued(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        request.validate()?;
        let sender = self.sender()?;
        let queued = tokio::time::Instant::now();
        let (reply, answer) = oneshot::channel();
        sender
            .send((request, reply))
            .await
            .map_err(|_| StoreError::Closed)?;
        // The writer took the append and dropped it without an answer: it stopped mid-batch.
        let answered = answer.await.unwrap_or_else(|_| {
            Err(StoreError::OutcomeUnknown(
                "the journal writer stopped".into(),
            ))
        });
        if let Some(observer) = &self.shared.observer {
            observer.appended(queued.elapsed());
        }
        answered
    }
}

async fn reader_pool(path: &Path, options: &OpenOptions) -> Result<SqlitePool, StoreError> {
    SqlitePoolOptions::new()
        .max_connections(options.readers.max(1))
        .min_connections(0)
        .connect_with(open::reader_options(path, options.busy_timeout))
        .await
        .map_err(|e| open::open_error(path, e))
}

async fn read_head(
    path: &Path,
    conn: &mut sqlx::SqliteConnection,
) -> Result<(Position, DateTime<Utc>), StoreError> {
    // The newest row's time, not max(recorded_at): recorded_at never decreases along
    // position (`nsm verify` checks it), and max() over a column without an index reads the
    // whole file — 0.6 s of every start and every operator command on a 1M-event log.
    let newest: Option<(i64, String)> =
        sqlx::query_as("SELECT position, recorded_at FROM events ORDER BY position DESC LIMIT 1")
            .fetch_optional(&mut *conn)
            .await
            .map_err(|e| open::open_error(path, e))?;
    let (head, last) = match newest {
        Some((head, last)) => (head, Some(last)),
        None => (0, None),
    };
    let last = match last {
        Some(text) => parse_timestamp(&text)?,
        None => DateTime::<Utc>::MIN_UTC,
    };
    Ok((Position(from_sql(head)), last))
}

fn fetch_events(
    pool: SqlitePool,
    sql: String,
    after: Position,
    limit: usize,
) -> BoxFuture<'static, Result<Vec<RecordedEvent>, StoreError>> {
    async move {
        let text: String = sqlx::query_scalar(&sql)
            .bind(to_sql(after.0))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_one(&pool)
            .await?;
        rows::events_from_json(&text, |e| e.position.0)
    }
    .boxed()
}

impl EventStore for SqliteStore {
    fn append(&self, request: AppendRequest) -> BoxFuture<'_, Result<Appended, StoreError>> {
        self.append_queued(request).boxed()
    }

    fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>> {
        let stream = stream.clone();
        async move {
            let text: String = sqlx::query_scalar(&self.shared.read_stream_sql)
                .bind(stream.as_str())
                .bind(to_sql(from_version))
                .fetch_one(&self.shared.readers)
                .await?;
            rows::events_from_json(&text, |e| e.version)
        }
        .boxed()
    }

    fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>> {
        let pool = self.shared.readers.clone();
        fetch_events(pool, self.shared.read_all_sql.clone(), after, limit)
    }

    fn head(&self) -> Position {
        *self.shared.head.borrow()
    }

    fn subscribe(&self, after: Position) -> EventStream {
        let pool = self.shared.readers.clone();
        let sql = self.shared.read_all_sql.clone();
        let read: ChunkReader =
            Box::new(move |after, limit| fetch_events(pool.clone(), sql.clone(), after, limit));
        subscription::subscribe(read, self.shared.head.clone(), after)
    }

    fn registration_rows(&self) -> BoxFuture<'_, Result<Vec<RegistrationRow>, StoreError>> {
        async move {
            let rows = sqlx::query(rows::REGISTRATION_ROWS_SQL)
                .fetch_all(&self.shared.readers)
                .await?;
            rows.iter().map(rows::registration_row_from_row).collect()
        }
        .boxed()
    }

    fn live_rows(&self) -> BoxFuture<'_, Result<Vec<LiveRow>, StoreError>> {
        async move {
            let rows = sqlx::query(rows::LIVE_ROWS_SQL)
                .fetch_all(&self.shared.readers)
                .await?;
            rows.iter().map(rows::live_row_from_row).collect()
        }
        .boxed()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;
    use crate::store::{Causation, ExpectedVersion, NewEvent};

    /// Remembers what it was told.
    #[derive(Debug, Default)]
    struct Remember {
        commits: Mutex<Vec<CommitObservation>>,
        appends: Mutex<usize>,
    }

    impl JournalObserver for Remember {
        fn committed(&self, commit: &CommitObservation) {
            self.commits.lock().unwrap().push(*commit);
        }

        fn appended(&self, _latency: Duration) {
            *self.appends.lock().unwrap() += 1;
        }
    }

    #[tokio::test]
    async fn the_observer_is_told_of_every_commit_and_append() {
        let dir = tempfile::tempdir().unwrap();
        let observer = Arc::new(Remember::default());
        let options = OpenOptions {
            observer: Some(observer.clone()),
            ..OpenOptions::default()
        };
        let store = SqliteStore::open(dir.path().join("events.db"), options)
            .await
            .unwrap();
        let stream = StreamId::new("observed-1").unwrap();
        let events = (0..3)
            .map(|i| NewEvent::new("Counted", 1, &i, Causation::default()).unwrap())
            .collect();
        let request = AppendRequest::new(stream.clone(), ExpectedVersion::NoStream, events);
        store.append(request.clone()).await.unwrap();
        // A retry writes nothing but is still an append of a committed batch.
        store.append(request).await.unwrap();
        store.close().await;
        let commits = observer.commits.lock().unwrap().clone();
        assert_eq!(commits.len(), 2, "{commits:?}");
        assert!(commits.iter().all(|c| c.committed && c.appends == 1));
        assert_eq!(commits[0].events, 3);
        assert_eq!(commits[1].events, 0);
        assert_eq!(*observer.appends.lock().unwrap(), 2);
    }
}
