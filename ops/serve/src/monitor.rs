//! `connection.MonitorConnection` over the event log.
//!
//! A stream starts with one `INITIAL_STATE_TRANSFER` of the established vWires that match
//! the selector (read from the `live_vwires` projection), then follows the log from the
//! position the snapshot was taken at: `UPDATE` when a vWire is established, refreshed or
//! healed, `DELETE` when an established vWire closes, expires or fails. Selectors match as
//! NSM's do (`nsm-api.md` §8).
//!
//! Extension NSM lacks: a client that sends request metadata `nsm-monitor-from-position: P`
//! gets, after an empty `INITIAL_STATE_TRANSFER`, every change after log position P instead
//! of a snapshot. Every connection carries, in this node's path segment's `metrics`, the key
//! `nsm_log_position`: the position of the last event it reflects; resume from the last one
//! seen. The response header `nsm-monitor-position` gives the position the stream starts at.
//! Each stream reads the log itself, so a slow client delays only its own stream, and never
//! misses a change.

use std::collections::HashMap;
use std::pin::Pin;
use std::sync::Arc;

use futures::{Stream, StreamExt};
use nsm_domain::vwire::{Status as VWireStatus, VWire, VWireEvent, VWireId};
use nsm_log::projection::vwire::decode_row;
use nsm_log::store::{EventStore, Position, RecordedEvent};
use nsm_proto::connection::monitor_connection_server::MonitorConnection;
use nsm_proto::connection::{
    Connection, ConnectionEvent, ConnectionEventType, MonitorScopeSelector,
};
use nsm_proto::convert::{Side, vwire_to_wire};
use nsm_proto::monitor::selects;
use tokio::sync::mpsc;
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

/// Request metadata key: resume from this log position instead of a snapshot.
pub(crate) const FROM_POSITION_KEY: &str = "nsm-monitor-from-position";
/// Response header: the log position the stream starts after.
pub(crate) const POSITION_HEADER: &str = "nsm-monitor-position";
/// Path segment metric: the log position of the last event a connection reflects.
pub(crate) const POSITION_METRIC: &str = "nsm_log_position";

/// Events a stream buffers for its client.
const MONITOR_BUFFER: usize = 256;

type EventStream = Pin<Box<dyn Stream<Item = Result<ConnectionEvent, Status>> + Send>>;

#[derive(Debug, Clone)]
pub(crate) struct MonitorServer {
    store: Arc<dyn EventStore>,
}

impl MonitorServer {
    pub(crate) fn new(store: Arc<dyn EventStore>) -> Self {
        Self { store }
    }
}

#[tonic::async_trait]
impl MonitorConnection for MonitorServer {
    type MonitorConnectionsStream = EventStream;

    async fn monitor_connections(
        &self,
        request: Request<MonitorScopeSelector>,
    ) -> Result<Response<EventStream>, Status> {
        let resume_from = match request.metadata().get(FROM_POSITION_KEY) {
            None => None,
            Some(value) => Some(
                value
                    .to_str()
                    .ok()
                    .and_then(|v| v.parse::<u64>().ok())
                    .ok_or_else(|| {
                        Status::invalid_argument(format!(
                            "{FROM_POSITION_KEY} must be a log position (an integer ≥ 0)"
                        ))
                    })?,
            ),
        };
        let selector = request.into_inner();
        let mut tracker = Tracker::new(self.store.clone());
        let (start, initial) = match resume_from {
            Some(position) => (Position(position), Vec::new()),
            None => {
                let head = self.store.head();
                let rows = self
                    .store
                    .live_rows()
                    .await
                    .map_err(|e| Status::unavailable(e.to_string()))?;
                let mut initial = Vec::new();
                for row in rows {
                    let Ok(vwire) = decode_row(&row) else {
                        continue;
                    };
                    if vwire.status == VWireStatus::Established {
                        initial.push(connection(&vwire, head));
                    }
                    tracker.seed(vwire);
                }
                (head, initial)
            }
        };
        let first = event(
            ConnectionEventType::InitialStateTransfer,
            initial.into_iter().filter(|c| selects(&selector, c)),
        );
        let (tx, rx) = mpsc::channel(MONITOR_BUFFER);
        let changes = self.store.subscribe(start);
        tokio::spawn(follow(tx, first, changes, tracker, selector));
        let mut response = Response::new(Box::pin(ReceiverStream::new(rx)) as EventStream);
        if let Ok(value) = start.0.to_string().parse() {
            response.metadata_mut().insert(POSITION_HEADER, value);
        }
        Ok(response)
    }
}

/// Sends the first event, then one event per change that matches, until the client leaves.
async fn follow(
    tx: mpsc::Sender<Result<ConnectionEvent, Status>>,
    first: ConnectionEvent,
    mut changes: nsm_log::store::EventStream,
    mut tracker: Tracker,
    selector: MonitorScopeSelector,
) {
    if tx.send(Ok(first)).await.is_err() {
        return;
    }
    while let Some(recorded) = changes.next().await {
        let change = match recorded {
            Ok(recorded) => tracker.apply(&recorded).await,
            Err(e) => Err(Status::unavailable(format!(
                "reading the log failed: {e}; reconnect with {FROM_POSITION_KEY}"
            ))),
        };
        let sent = match change {
            Ok(Some((kind, connection))) if selects(&selector, &connection) => {
                tx.send(Ok(event(kind, [connection]))).await
            }
            Ok(_) => continue,
            Err(status) => {
                let _ = tx.send(Err(status)).await;
                return;
            }
        };
        if sent.is_err() {
            return;
        }
    }
}

fn event(
    kind: ConnectionEventType,
    connections: impl IntoIterator<Item = Connection>,
) -> ConnectionEvent {
    ConnectionEvent {
        r#type: kind.into(),
        connections: connections.into_iter().map(|c| (c.id.clone(), c)).collect(),
    }
}

/// The vWire as monitors see it, stamped with the log position it reflects.
fn connection(vwire: &VWire, position: Position) -> Connection {
    let mut connection = vwire_to_wire(vwire, Side::Client);
    let own = vwire.path.index as usize;
    if let Some(segment) = connection
        .path
        .as_mut()
        .and_then(|p| p.path_segments.get_mut(own))
    {
        segment
            .metrics
            .insert(POSITION_METRIC.into(), position.0.to_string());
    }
    connection
}

/// The live vWires a stream has seen, folded forward event by event. A vWire first met in
/// the middle of its stream is read from the log up to that event.
struct Tracker {
    store: Arc<dyn EventStore>,
    live: HashMap<VWireId, VWire>,
}

impl Tracker {
    fn new(store: Arc<dyn EventStore>) -> Self {
        Self {
            store,
            live: HashMap::new(),
        }
    }

    fn seed(&mut self, vwire: VWire) {
        self.live.insert(vwire.id, vwire);
    }

    /// Folds one recorded event; the monitor event it makes, if any.
    async fn apply(
        &mut self,
        recorded: &RecordedEvent,
    ) -> Result<Option<(ConnectionEventType, Connection)>, Status> {
        let Some(id) = VWireId::from_stream(&recorded.stream) else {
            return Ok(None);
        };
        let damaged = |e: String| {
            Status::internal(format!(
                "vWire {id} in the log at position {}: {e}",
                recorded.position.0
            ))
        };
        let event = VWireEvent::decode(recorded).map_err(|e| damaged(e.to_string()))?;
        let known = self.live.get(&id).map(|v| v.version);
        let state = match known {
            Some(version) if recorded.version <= version => return Ok(None),
            Some(version) if recorded.version == version + 1 => {
                let current = self.live.remove(&id);
                VWire::evolve(current, id, &event).map_err(|e| damaged(e.to_string()))?
            }
            None if recorded.version == 1 => {
                VWire::evolve(None, id, &event).map_err(|e| damaged(e.to_string()))?
            }
            _ => self
                .read_up_to(id, recorded.version)
                .await
                .map_err(damaged)?,
        };
        let kind = match event {
            VWireEvent::Established(_) | VWireEvent::Refreshed(_) | VWireEvent::Healed(_) => {
                Some(ConnectionEventType::Update)
            }
            VWireEvent::Closed(_) | VWireEvent::Expired(_) | VWireEvent::Failed(_)
                if state.connection.is_some() =>
            {
                Some(ConnectionEventType::Delete)
            }
            _ => None,
        };
        let made = kind.map(|kind| (kind, connection(&state, recorded.position)));
        if !state.status.is_terminal() {
            self.live.insert(id, state);
        }
        Ok(made)
    }

    async fn read_up_to(&self, id: VWireId, version: u64) -> Result<VWire, String> {
        let recorded = self
            .store
            .read_stream(&id.stream(), 1)
            .await
            .map_err(|e| e.to_string())?;
        let events = recorded
            .iter()
            .filter(|r| r.version <= version)
            .map(VWireEvent::decode)
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| e.to_string())?;
        VWire::fold(id, &events)
            .map_err(|e| e.to_string())?
            .ok_or_else(|| "its stream is empty".to_owned())
    }
}
