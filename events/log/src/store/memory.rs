//! An in-memory [`EventStore`] with the same semantics as the SQLite one (the conformance
//! suite holds both to it). For tests that want speed over durability, and for fault
//! injection: it can be told to lose the answer to a commit that did happen.

use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex, MutexGuard};

use chrono::{DateTime, Utc};
use futures::FutureExt;
use futures::future::{self, BoxFuture};
use tokio::sync::watch;
use uuid::Uuid;

use super::retry::{KnownEvent, recognise_retry};
use super::subscription::{self, ChunkReader};
use super::{
    AppendRequest, Appended, EventStore, EventStream, LiveRow, Position, ProjectionChange,
    RecordedEvent, RegistrationRow, StreamId,
};
use crate::error::StoreError;

/// A fault the next append will suffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum InjectedFault {
    /// The events are committed, but the caller is told the outcome is unknown.
    CommitThenReportUnknown,
    /// Nothing is written and the caller is told the outcome is unknown.
    LoseBeforeCommitReportUnknown,
}

#[derive(Debug, Default)]
struct Log {
    events: Vec<RecordedEvent>,
    by_id: HashMap<Uuid, usize>,
    /// Indices into `events`, per stream, in version order.
    streams: HashMap<StreamId, Vec<usize>>,
    live: BTreeMap<StreamId, LiveRow>,
    registry: BTreeMap<StreamId, RegistrationRow>,
    last_recorded_at: Option<DateTime<Utc>>,
    fault: Option<InjectedFault>,
}

/// The in-memory store. Cloning shares the log.
#[derive(Debug, Clone)]
pub struct MemoryStore {
    log: Arc<Mutex<Log>>,
    head: Arc<watch::Sender<Position>>,
}

impl Default for MemoryStore {
    fn default() -> Self {
        Self::new()
    }
}

impl MemoryStore {
    pub fn new() -> Self {
        Self {
            log: Arc::default(),
            head: Arc::new(watch::Sender::new(Position::START)),
        }
    }

    /// Makes the next append suffer `fault`.
    pub fn inject_fault(&self, fault: InjectedFault) {
        self.lock().fault = Some(fault);
    }

    fn lock(&self) -> MutexGuard<'_, Log> {
        // A poisoned lock means a panic mid-append; the process is crash-only anyway.
        self.log
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    fn append_now(&self, request: AppendRequest) -> Result<Appended, StoreError> {
        request.validate()?;
        let mut log = self.lock();
        let fault = log.fault.take();
        if fault == Some(InjectedFault::LoseBeforeCommitReportUnknown) {
            return Err(StoreError::OutcomeUnknown(
                "injected fault before commit".into(),
            ));
        }
        if let Some(done) = log.find_retry(&request)? {
            return Ok(done);
        }
        let current = log.streams.get(&request.stream).map_or(0, Vec::len) as u64;
        if let Some(expected) = request.expected.as_version()
            && expected != current
        {
            return Err(StoreError::WrongExpectedVersion {
                stream: request.stream,
                expected,
                actual: current,
            });
        }
        let appended = log.write(request, current);
        self.head.send_replace(Position(log.events.len() as u64));
        if fault == Some(InjectedFault::CommitThenReportUnknown) {
            return Err(StoreError::OutcomeUnknown(
                "injected fault after commit".into(),
            ));
        }
        Ok(appended)
    }
}

impl Log {
    /// If the append's event ids are already in the log, the answer the first append got.
    fn find_retry(&self, request: &AppendRequest) -> Result<Option<Appended>, StoreError> {
        let known: Vec<KnownEvent> = request
            .events
            .iter()
            .filter_map(|e| self.by_id.get(&e.id).map(|&i| &self.events[i]))
            .map(|e| KnownEvent {
                id: e.id,
                position: e.position,
                stream: e.stream.clone(),
                version: e.version,
            })
            .collect();
        recognise_retry(request, &known)
    }

    fn write(&mut self, request: AppendRequest, current: u64) -> Appended {
        let now = Utc::now().max(self.last_recorded_at.unwrap_or(DateTime::<Utc>::MIN_UTC));
        self.last_recorded_at = Some(now);
        let mut positions = Vec::with_capacity(request.events.len());
        let mut version = current;
        for event in request.events {
            version += 1;
            let index = self.events.len();
            let position = Position(index as u64 + 1);
            positions.push(position);
            self.by_id.insert(event.id, index);
            self.streams
                .entry(request.stream.clone())
                .or_default()
                .push(index);
            self.events.push(RecordedEvent {
                position,
                id: event.id,
                stream: request.stream.clone(),
                version,
                event_type: event.event_type,
                schema_version: event.schema_version,
                recorded_at: now,
                correlation_id: event.causation.correlation_id,
                causation_id: event.causation.causation_id,
                payload: event.payload,
            });
        }
        match request.projection {
            Some(ProjectionChange::UpsertVWire(data)) => {
                let row = LiveRow {
                    stream: request.stream.clone(),
                    version,
                    data,
                };
                self.live.insert(request.stream, row);
            }
            Some(ProjectionChange::RemoveVWire) => {
                self.live.remove(&request.stream);
            }
            Some(ProjectionChange::UpsertRegistration(data)) => {
                let row = RegistrationRow {
                    stream: request.stream.clone(),
                    version,
                    data,
                };
                self.registry.insert(request.stream, row);
            }
            Some(ProjectionChange::RemoveRegistration) => {
                self.registry.remove(&request.stream);
            }
            None => {}
        }
        Appended {
            positions,
            stream_version: version,
            deduplicated: false,
        }
    }
}

impl EventStore for MemoryStore {
    fn append(&self, request: AppendRequest) -> BoxFuture<'_, Result<Appended, StoreError>> {
        future::ready(self.append_now(request)).boxed()
    }

    fn read_stream(
        &self,
        stream: &StreamId,
        from_version: u64,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>> {
        let log = self.lock();
        let events = log.streams.get(stream).map_or_else(Vec::new, |indices| {
            indices
                .iter()
                .map(|&i| &log.events[i])
                .filter(|e| e.version >= from_version)
                .cloned()
                .collect()
        });
        future::ready(Ok(events)).boxed()
    }

    fn read_all(
        &self,
        after: Position,
        limit: usize,
    ) -> BoxFuture<'_, Result<Vec<RecordedEvent>, StoreError>> {
        future::ready(Ok(read_after(&self.lock(), after, limit))).boxed()
    }

    fn head(&self) -> Position {
        *self.head.borrow()
    }

    fn subscribe(&self, after: Position) -> EventStream {
        let log = Arc::clone(&self.log);
        let read: ChunkReader = Box::new(move |after, limit| {
            let log = log.lock().unwrap_or_else(|p| p.into_inner());
            future::ready(Ok(read_after(&log, after, limit))).boxed()
        });
        subscription::subscribe(read, self.head.subscribe(), after)
    }

    fn live_rows(&self) -> BoxFuture<'_, Result<Vec<LiveRow>, StoreError>> {
        future::ready(Ok(self.lock().live.values().cloned().collect())).boxed()
    }

    fn registration_rows(&self) -> BoxFuture<'_, Result<Vec<RegistrationRow>, StoreError>> {
        future::ready(Ok(self.lock().registry.values().cloned().collect())).boxed()
    }
}

fn read_after(log: &Log, after: Position, limit: usize) -> Vec<RecordedEvent> {
    let start = usize::try_from(after.0).unwrap_or(usize::MAX);
    log.events.iter().skip(start).take(limit).cloned().collect()
}
