//! The journal writer: the one task that writes to the log, with group commit.
//!
//! Appends arrive on a bounded queue. The writer takes everything queued (up to `max_batch`
//! appends), writes them in one `BEGIN IMMEDIATE` transaction and commits once, so one fsync
//! covers the whole batch. Inside the transaction the appends go in waves of multi-row
//! statements ([`super::wave`]), and each append is still checked on its own:
//!
//! * every row carries its checks in its WHERE clause (the stream's version is the expected
//!   one, the id is not yet in the log), so a conflict or a duplicate id writes nothing and
//!   fails no other append of the batch. (Not `ON CONFLICT DO NOTHING`: a row skipped that
//!   way still consumes an AUTOINCREMENT value, which would leave a gap in the positions.)
//! * an append of several events goes in whole or not at all, in the same statement: each of
//!   its rows also checks that none of the append's ids is in the log (no SAVEPOINT, which
//!   cost two more round trips to SQLite's thread per batch);
//! * the projection changes of the appends that went in are written in the same transaction.
//!
//! Only an error of SQLite itself (I/O, disk full) fails the whole batch, and then every
//! caller is told: a rollback means nothing was written; a failed COMMIT means the outcome is
//! unknown ([`StoreError::OutcomeUnknown`]). After a commit, the writer publishes the new
//! head, which is what lets subscribers read without skipping anything.

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use chrono::{DateTime, Utc};
use rusqlite::types::Value;
use rusqlite::{Connection, OptionalExtension, params, params_from_iter};
use tokio::sync::{mpsc, oneshot, watch};
use tokio::time::Instant;
use uuid::Uuid;

use super::checkpoint::WalGuard;
use super::wave;
use crate::error::StoreError;
use crate::store::retry::{KnownEvent, recognise_retry};
use crate::store::{
    AppendRequest, Appended, ExpectedVersion, Position, ProjectionChange, StreamId,
    format_timestamp,
};

/// One queued append and where its answer goes.
pub(crate) type Job = (AppendRequest, oneshot::Sender<Result<Appended, StoreError>>);

const FIND_EVENT: &str = "SELECT position, stream, version FROM events WHERE event_id = ?1";

const STREAM_VERSION: &str = "SELECT coalesce(max(version), 0) FROM events WHERE stream = ?1";

const INSERTED_SINCE: &str =
    "SELECT event_id, position, version FROM events WHERE position > ?1 AND position <= ?2";

const HEAD: &str = "SELECT coalesce(max(position), 0) FROM events";

/// An append's result, or an error that fails the whole batch.
type Outcome = Result<Result<Appended, StoreError>, rusqlite::Error>;

/// Counters of the writer's work since the store was opened (for benchmarks and metrics).
#[derive(Debug, Default)]
pub struct WriterStats {
    batches: AtomicU64,
    appends: AtomicU64,
    events: AtomicU64,
}

/// A snapshot of [`WriterStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct WriterCounts {
    /// Committed transactions (each one fsync).
    pub batches: u64,
    /// Appends in those transactions (written, refused or deduplicated).
    pub appends: u64,
    /// Events newly written.
    pub events: u64,
}

impl WriterStats {
    pub fn snapshot(&self) -> WriterCounts {
        WriterCounts {
            batches: self.batches.load(Ordering::Relaxed),
            appends: self.appends.load(Ordering::Relaxed),
            events: self.events.load(Ordering::Relaxed),
        }
    }
}

/// What one group commit did, as told to a [`JournalObserver`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitObservation {
    /// Appends in the transaction (written, refused or deduplicated).
    pub appends: usize,
    /// Events newly written (0 when the transaction did not commit).
    pub events: usize,
    /// From `BEGIN IMMEDIATE` to `COMMIT` returning: the statements and the fsync.
    pub duration: Duration,
    /// Whether the transaction committed; `false`: it was rolled back, or its COMMIT failed
    /// and the outcome is unknown (the writer logs which at ERROR).
    pub committed: bool,
}

/// Told of the journal's work as it happens, for the node's metrics (the store itself knows
/// no metrics library). [`Self::committed`] runs on the writer's own thread after every
/// transaction and [`Self::appended`] on the caller's task after every append, so both must
/// be cheap and never block: an atomic add, a histogram observation.
pub trait JournalObserver: std::fmt::Debug + Send + Sync + 'static {
    /// One group commit ended.
    fn committed(&self, commit: &CommitObservation);

    /// An append that reached the writer was answered `latency` after it was queued (its
    /// wait for the writer plus its batch's commit), whatever the answer.
    fn appended(&self, latency: Duration) {
        let _ = latency;
    }
}

pub(crate) struct Writer {
    pub(crate) path: PathBuf,
    /// The only write connection, used from the writer's own thread: each statement runs
    /// here, with no hand-off to another thread (sqlx ran every statement on a worker thread
    /// of its own, two thread wake-ups per statement, four statements per commit).
    pub(crate) conn: Connection,
    pub(crate) head: watch::Sender<Position>,
    pub(crate) max_batch: usize,
    pub(crate) wal: WalGuard,
    /// Timestamps never go backwards along positions, even if the wall clock does.
    pub(crate) last_recorded_at: DateTime<Utc>,
    pub(crate) stats: Arc<WriterStats>,
    pub(crate) observer: Option<Arc<dyn JournalObserver>>,
    /// The log's single-writer lock, released when the writer ends (see `open::lock_writer`).
    pub(crate) _lock: std::fs::File,
}

impl Writer {
    /// Serves appends until every sender is gone, then closes the connection. Runs on a
    /// thread of its own (it blocks on SQLite): everything queued meanwhile is one batch.
    pub(crate) fn run(mut self, mut queue: mpsc::Receiver<Job>) {
        let mut batch = Vec::with_capacity(self.max_batch);
        while let Some(job) = queue.blocking_recv() {
            batch.push(job);
            while batch.len() < self.max_batch {
                match queue.try_recv() {
                    Ok(job) => batch.push(job),
                    Err(_) => break,
                }
            }
            self.commit_batch(std::mem::take(&mut batch));
            self.wal.after_commit(&self.conn);
        }
        if let Err(e) = self.wal.checkpoint_on_close(&self.conn) {
            tracing::warn!(path = %self.path.display(), error = %e, "final WAL checkpoint failed");
        }
        if let Err((_, e)) = self.conn.close() {
            tracing::warn!(path = %self.path.display(), error = %e, "closing the event log failed");
        }
    }

    fn commit_batch(&mut self, jobs: Vec<Job>) {
        let began = Instant::now();
        let appends = jobs.len();
        let events = self.write_and_commit(jobs);
        if let Some(observer) = &self.observer {
            observer.committed(&CommitObservation {
                appends,
                events: events.unwrap_or(0),
                duration: began.elapsed(),
                committed: events.is_some(),
            });
        }
    }

    /// One batch in one transaction, every caller answered; the events newly written, or
    /// `None` if the transaction did not commit.
    fn write_and_commit(&mut self, jobs: Vec<Job>) -> Option<usize> {
        let (requests, replies): (Vec<_>, Vec<_>) = jobs.into_iter().unzip();
        let now = Utc::now().max(self.last_recorded_at);
        let recorded_at = format_timestamp(now);

        if let Err(e) = execute(&self.conn, "BEGIN IMMEDIATE") {
            // Clears a transaction a failed rollback may have left open, so the next batch
            // can begin.
            self.rollback();
            answer_all(replies, &StoreError::from(e));
            return None;
        }
        let outcomes = match self.write_batch(&requests, &recorded_at) {
            Ok(outcomes) => outcomes,
            Err(e) => {
                self.rollback();
                tracing::error!(path = %self.path.display(), error = %e, "append batch rolled back");
                answer_all(replies, &StoreError::from(e));
                return None;
            }
        };
        if let Err(e) = execute(&self.conn, "COMMIT") {
            self.rollback();
            tracing::error!(path = %self.path.display(), error = %e, "COMMIT failed; outcome unknown");
            self.republish_head();
            let unknown = StoreError::OutcomeUnknown(format!("COMMIT failed: {e}"));
            for (outcome, reply) in outcomes.into_iter().zip(replies) {
                // Appends that wrote nothing (conflicts, retries) are settled either way.
                let settled = match outcome {
                    Ok(done) if !done.deduplicated => Err(unknown.clone()),
                    other => other,
                };
                let _ = reply.send(settled);
            }
            return None;
        }
        self.last_recorded_at = now;
        let events = self.committed(&outcomes);
        for (outcome, reply) in outcomes.into_iter().zip(replies) {
            // A caller that gave up waiting is no reason to stop.
            let _ = reply.send(outcome);
        }
        Some(events)
    }

    /// After a commit: count the work and publish the new head (before anyone is answered,
    /// so a caller that subscribes next sees its own events). Returns the events written.
    fn committed(&self, outcomes: &[Result<Appended, StoreError>]) -> usize {
        let written = || {
            outcomes
                .iter()
                .filter_map(|o| o.as_ref().ok())
                .filter(|a| !a.deduplicated)
        };
        let events: usize = written().map(|a| a.positions.len()).sum();
        self.stats.batches.fetch_add(1, Ordering::Relaxed);
        let appends = outcomes.len() as u64;
        self.stats.appends.fetch_add(appends, Ordering::Relaxed);
        self.stats
            .events
            .fetch_add(events as u64, Ordering::Relaxed);
        if let Some(&head) = written().filter_map(|a| a.positions.last()).max() {
            self.head.send_replace(head);
        }
        events
    }

    /// Writes every append of the batch, wave by wave (see [`super::wave`]). An `Err` fails
    /// the whole batch; refusals of single appends are in the returned outcomes.
    fn write_batch(
        &mut self,
        requests: &[AppendRequest],
        recorded_at: &str,
    ) -> rusqlite::Result<Vec<Result<Appended, StoreError>>> {
        let mut outcomes: Vec<Option<Result<Appended, StoreError>>> = vec![None; requests.len()];
        for wave in wave::split_waves(requests) {
            self.write_wave(requests, &wave, recorded_at, &mut outcomes)?;
        }
        Ok(outcomes
            .into_iter()
            .map(|o| {
                o.unwrap_or_else(|| {
                    Err(StoreError::OutcomeUnknown("append was not written".into()))
                })
            })
            .collect())
    }

    /// Writes one wave and settles each of its appends. Appends go in whole or not at all
    /// (see `wave::insert_sql`); one that did not is explained (a conflict, or a retry).
    fn write_wave(
        &mut self,
        requests: &[AppendRequest],
        wave: &[usize],
        recorded_at: &str,
        outcomes: &mut [Option<Result<Appended, StoreError>>],
    ) -> rusqlite::Result<()> {
        let mut inserted: HashMap<Uuid, (i64, i64)> = HashMap::new();
        for chunk in wave::chunks(requests, wave) {
            self.insert_chunk(requests, &chunk, recorded_at, &mut inserted)?;
        }
        let written = |request: &AppendRequest| {
            request
                .events
                .iter()
                .filter(|e| inserted.contains_key(&e.id))
                .count()
        };
        if let Some(&i) = wave.iter().find(|&&i| {
            let n = written(&requests[i]);
            n != 0 && n != requests[i].events.len()
        }) {
            // Cannot happen with the insert's checks; if it ever did, the whole batch is
            // rolled back rather than one append half-recorded.
            let stream = requests[i].stream.as_str();
            return Err(rusqlite::Error::InvalidParameterName(format!(
                "append to {stream} went in partly; batch rolled back"
            )));
        }
        let mut projected = Vec::new();
        for &i in wave {
            let request = &requests[i];
            if written(request) == 0 {
                outcomes[i] = Some(self.explain_refusal(request)?);
                continue;
            }
            let rows: Vec<(i64, i64)> = request.events.iter().map(|e| inserted[&e.id]).collect();
            let stream_version = rows.last().map_or(0, |&(_, v)| from_sql(v));
            if let Some(change) = &request.projection {
                projected.push((&request.stream, stream_version, change));
            }
            outcomes[i] = Some(Ok(Appended {
                positions: rows.iter().map(|&(p, _)| Position(from_sql(p))).collect(),
                stream_version,
                deduplicated: false,
            }));
        }
        self.project_many(&projected)?;
        Ok(())
    }

    /// One multi-row insert; records the position and version of each row that went in.
    fn insert_chunk(
        &mut self,
        requests: &[AppendRequest],
        chunk: &[usize],
        recorded_at: &str,
        inserted: &mut HashMap<Uuid, (i64, i64)>,
    ) -> rusqlite::Result<()> {
        let rows: usize = chunk.iter().map(|&i| requests[i].events.len()).sum();
        let sql = wave::insert_sql(rows);
        let mut values: Vec<Value> = Vec::with_capacity(rows * 12);
        let mut ordinal = 0i64;
        for &i in chunk {
            let request = &requests[i];
            let expected = request.expected.as_version().map(to_sql);
            let siblings = sibling_ids(request);
            for (offset, event) in (1i64..).zip(&request.events) {
                ordinal += 1;
                values.extend([
                    Value::Text(event.id.hyphenated().to_string()),
                    Value::Text(request.stream.as_str().to_owned()),
                    expected.map_or(Value::Null, Value::Integer),
                    Value::Integer(offset),
                    Value::Text(event.event_type.clone()),
                    Value::Integer(i64::from(event.schema_version)),
                    Value::Text(recorded_at.to_owned()),
                    text_or_null(event.causation.correlation_id.as_deref()),
                    text_or_null(event.causation.causation_id.as_deref()),
                    Value::Text(event.payload.clone()),
                    Value::Integer(ordinal),
                    Value::Text(siblings.clone()),
                ]);
            }
        }
        let done = self
            .conn
            .prepare_cached(&sql)?
            .execute(params_from_iter(values))?;
        let count = i64::try_from(done).unwrap_or(i64::MAX);
        if count == 0 {
            return Ok(());
        }
        // One writer, AUTOINCREMENT: the rows this statement inserted are exactly the
        // positions (last - count, last], in `ordinal` order.
        let last = self.conn.last_insert_rowid();
        let all_exact = chunk
            .iter()
            .all(|&i| requests[i].expected != ExpectedVersion::Any);
        if all_exact && count == i64::try_from(rows).unwrap_or(i64::MAX) {
            let mut position = last - count;
            for &i in chunk {
                let expected = requests[i].expected.as_version().map_or(0, to_sql);
                for (offset, event) in (1i64..).zip(&requests[i].events) {
                    position += 1;
                    inserted.insert(event.id, (position, expected + offset));
                }
            }
            return Ok(());
        }
        // Some rows were refused, or versions were chosen by the log: read back what went in.
        let mut read_back = self.conn.prepare_cached(INSERTED_SINCE)?;
        let written = read_back.query_map(params![last - count, last], |row| {
            Ok((
                row.get::<_, String>(0)?,
                row.get::<_, i64>(1)?,
                row.get::<_, i64>(2)?,
            ))
        })?;
        for row in written {
            let (id, position, version) = row?;
            let id = Uuid::parse_str(&id).map_err(|e| {
                rusqlite::Error::FromSqlConversionFailure(
                    0,
                    rusqlite::types::Type::Text,
                    Box::new(e),
                )
            })?;
            inserted.insert(id, (position, version));
        }
        Ok(())
    }

    /// Applies the projection changes of a wave (streams are distinct within a wave).
    fn project_many(
        &mut self,
        changes: &[(&StreamId, u64, &ProjectionChange)],
    ) -> rusqlite::Result<()> {
        let mut vwires = Vec::new();
        let mut registrations = Vec::new();
        let mut vwires_gone = Vec::new();
        let mut registrations_gone = Vec::new();
        for &(stream, version, change) in changes {
            match change {
                ProjectionChange::UpsertVWire(row) => vwires.push((stream, version, row)),
                ProjectionChange::UpsertRegistration(row) => {
                    registrations.push((stream, version, row))
                }
                ProjectionChange::RemoveVWire => vwires_gone.push(stream),
                ProjectionChange::RemoveRegistration => registrations_gone.push(stream),
            }
        }
        for chunk in vwires.chunks(wave::MAX_ROWS) {
            let sql = wave::upsert_live_sql(chunk.len());
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 5);
            for (stream, version, row) in chunk {
                values.extend([
                    Value::Text(stream.as_str().to_owned()),
                    Value::Integer(to_sql(*version)),
                    Value::Text(row.status.clone()),
                    Value::Text(format_timestamp(row.expires_at)),
                    Value::Text(row.state.clone()),
                ]);
            }
            self.conn
                .prepare_cached(&sql)?
                .execute(params_from_iter(values))?;
        }
        for chunk in registrations.chunks(wave::MAX_ROWS) {
            let sql = wave::upsert_registration_sql(chunk.len());
            let mut values: Vec<Value> = Vec::with_capacity(chunk.len() * 4);
            for (stream, version, row) in chunk {
                values.extend([
                    Value::Text(stream.as_str().to_owned()),
                    Value::Integer(to_sql(*version)),
                    row.expires_at
                        .map_or(Value::Null, |at| Value::Text(format_timestamp(at))),
                    Value::Text(row.state.clone()),
                ]);
            }
            self.conn
                .prepare_cached(&sql)?
                .execute(params_from_iter(values))?;
        }
        for (table, streams) in [
            ("live_vwires", vwires_gone),
            ("live_registry", registrations_gone),
        ] {
            for chunk in streams.chunks(wave::MAX_ROWS) {
                let sql = wave::delete_rows_sql(table, chunk.len());
                let streams = chunk.iter().map(|stream| stream.as_str());
                self.conn
                    .prepare_cached(&sql)?
                    .execute(params_from_iter(streams))?;
            }
        }
        Ok(())
    }

    /// An append wrote nothing: it is a retry, reuses ids, or lost a version race.
    fn explain_refusal(&mut self, request: &AppendRequest) -> Outcome {
        let mut known = Vec::new();
        for event in &request.events {
            let found = self
                .conn
                .prepare_cached(FIND_EVENT)?
                .query_row(params![event.id.hyphenated().to_string()], |row| {
                    Ok((
                        row.get::<_, i64>(0)?,
                        row.get::<_, String>(1)?,
                        row.get::<_, i64>(2)?,
                    ))
                })
                .optional()?;
            if let Some((position, stream, version)) = found {
                known.push(KnownEvent {
                    id: event.id,
                    position: Position(from_sql(position)),
                    stream: StreamId::new(stream).unwrap_or_else(|_| request.stream.clone()),
                    version: from_sql(version),
                });
            }
        }
        match recognise_retry(request, &known) {
            Ok(Some(original)) => return Ok(Ok(original)),
            Err(mismatch) => return Ok(Err(mismatch)),
            Ok(None) => {}
        }
        let actual: i64 = self
            .conn
            .prepare_cached(STREAM_VERSION)?
            .query_row(params![request.stream.as_str()], |row| row.get(0))?;
        let expected = request.expected.as_version().unwrap_or(0);
        Ok(Err(StoreError::WrongExpectedVersion {
            stream: request.stream.clone(),
            expected,
            actual: from_sql(actual),
        }))
    }

    fn rollback(&mut self) {
        if let Err(e) = execute(&self.conn, "ROLLBACK") {
            // "no transaction is active" after SQLite already rolled back is expected.
            tracing::debug!(error = %e, "ROLLBACK after a failed batch");
        }
    }

    /// After a failed COMMIT the head is whatever the file says it is.
    fn republish_head(&mut self) {
        match self.conn.query_row(HEAD, [], |row| row.get::<_, i64>(0)) {
            Ok(head) => {
                self.head.send_replace(Position(from_sql(head)));
            }
            Err(e) => {
                tracing::error!(error = %e, "cannot read the log's head after a failed commit")
            }
        }
    }
}

fn answer_all(replies: Vec<oneshot::Sender<Result<Appended, StoreError>>>, error: &StoreError) {
    for reply in replies {
        let _ = reply.send(Err(error.clone()));
    }
}

/// The ids of an append's events as a JSON array, for the insert's all-or-nothing check.
fn sibling_ids(request: &AppendRequest) -> String {
    let ids: Vec<String> = request
        .events
        .iter()
        .map(|e| format!("\"{}\"", e.id.hyphenated()))
        .collect();
    format!("[{}]", ids.join(","))
}

pub(crate) fn execute(conn: &Connection, sql: &str) -> rusqlite::Result<()> {
    conn.execute_batch(sql)
}

fn text_or_null(text: Option<&str>) -> Value {
    text.map_or(Value::Null, |t| Value::Text(t.to_owned()))
}

/// Versions and positions are below 2^63 in any log that fits on a disk.
pub(crate) fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(crate) fn from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}
