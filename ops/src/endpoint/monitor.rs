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
    Connection, ConnectionEvent, ConnectionEventType, MonitorScopeSelector, PathSegment,
};
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

/// NSM's `MonitorScopeSelector` match: the service is listed (or none are), and the
/// selector's segments match a contiguous run of the path, empty fields matching anything.
pub(crate) fn selects(selector: &MonitorScopeSelector, connection: &Connection) -> bool {
    if !selector.network_services.is_empty()
        && !selector
            .network_services
            .contains(&connection.network_service)
    {
        return false;
    }
    let wanted = &selector.path_segments;
    if wanted.is_empty() {
        return true;
    }
    let path = connection
        .path
        .as_ref()
        .map_or(&[][..], |p| &p.path_segments[..]);
    path.windows(wanted.len()).any(|run| {
        run.iter()
            .zip(wanted)
            .all(|(have, want)| segment_matches(want, have))
    })
}

fn segment_matches(want: &PathSegment, have: &PathSegment) -> bool {
    let field = |want: &str, have: &str| want.is_empty() || want == have;
    field(&want.name, &have.name) && field(&want.id, &have.id) && field(&want.token, &have.token)
}

#[cfg(test)]
mod tests {
    use nsm_proto::connection::Path;

    use super::*;

    fn segment(name: &str, id: &str) -> PathSegment {
        PathSegment {
            name: name.into(),
            id: id.into(),
            ..PathSegment::default()
        }
    }

    #[test]
    fn a_selector_matches_a_contiguous_run_with_wildcards() {
        let connection = Connection {
            network_service: "icmp".into(),
            path: Some(Path {
                index: 2,
                path_segments: vec![
                    segment("nsc", "1"),
                    segment("nsmgr", "2"),
                    segment("nse", "3"),
                ],
            }),
            ..Connection::default()
        };
        let select = |services: &[&str], segments: Vec<PathSegment>| MonitorScopeSelector {
            network_services: services.iter().map(|s| (*s).to_owned()).collect(),
            path_segments: segments,
        };
        assert!(selects(&select(&[], vec![]), &connection));
        assert!(selects(
            &select(&["icmp"], vec![segment("", "2"), segment("nse", "")]),
            &connection
        ));
        assert!(!selects(&select(&["other"], vec![]), &connection));
        assert!(!selects(
            &select(&[], vec![segment("nsc", ""), segment("nse", "")]),
            &connection
        ));
    }
}
