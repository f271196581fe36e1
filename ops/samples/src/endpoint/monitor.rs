//! `connection.MonitorConnection` of the endpoint, as NSM's monitor server: one
//! `INITIAL_STATE_TRANSFER` (possibly empty) of the connections the selector matches, then
//! an `UPDATE` per Request and a `DELETE` per Close or expiry, each sent only if the
//! selector keeps something.
//!
//! The endpoint knows a connection's full form only once it has served a Request for it
//! since its start; after a restart, connections reappear here as their clients refresh.

use std::collections::HashMap;
use std::pin::Pin;

use futures::Stream;
use nsm_proto::connection::monitor_connection_server::MonitorConnection;
use nsm_proto::connection::{
    Connection, ConnectionEvent, ConnectionEventType, MonitorScopeSelector,
};
use nsm_proto::monitor::selects;
use tokio::sync::{broadcast, mpsc};
use tokio_stream::wrappers::ReceiverStream;
use tonic::{Request, Response, Status};

use super::service::Endpoint;

/// Events a watcher's stream buffers.
const STREAM_BUFFER: usize = 64;

type EventStream = Pin<Box<dyn Stream<Item = Result<ConnectionEvent, Status>> + Send>>;

#[tonic::async_trait]
impl MonitorConnection for Endpoint {
    type MonitorConnectionsStream = EventStream;

    async fn monitor_connections(
        &self,
        request: Request<MonitorScopeSelector>,
    ) -> Result<Response<EventStream>, Status> {
        let selector = request.into_inner();
        let (snapshot, mut changes) = self.watch().await;
        let (tx, rx) = mpsc::channel(STREAM_BUFFER);
        tokio::spawn(async move {
            let initial = ConnectionEvent {
                r#type: ConnectionEventType::InitialStateTransfer.into(),
                connections: filter(&selector, snapshot),
            };
            if tx.send(Ok(initial)).await.is_err() {
                return;
            }
            loop {
                let event = match changes.recv().await {
                    Ok(event) => event,
                    Err(broadcast::error::RecvError::Lagged(missed)) => {
                        let message = format!("monitor fell {missed} events behind; reconnect");
                        let _ = tx.send(Err(Status::aborted(message))).await;
                        return;
                    }
                    Err(broadcast::error::RecvError::Closed) => return,
                };
                let connections = filter(&selector, event.connections);
                if connections.is_empty() {
                    continue;
                }
                let kept = ConnectionEvent {
                    connections,
                    ..event
                };
                if tx.send(Ok(kept)).await.is_err() {
                    return;
                }
            }
        });
        Ok(Response::new(Box::pin(ReceiverStream::new(rx))))
    }
}

fn filter(
    selector: &MonitorScopeSelector,
    connections: HashMap<String, Connection>,
) -> HashMap<String, Connection> {
    connections
        .into_iter()
        .filter(|(_, c)| selects(selector, c))
        .collect()
}
