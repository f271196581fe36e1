//! The two in-process gRPC servers of the bench, each on a unix socket: the endpoint the node
//! forwards setups to, and the echo of the floor. Both are kept cheap: the bench measures the
//! node, not them.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU32, Ordering};

use anyhow::Context;
use nsm_proto::connection::{Connection, Mechanism, PathSegment};
use nsm_proto::connectioncontext::{IpContext, Route};
use nsm_proto::networkservice::NetworkServiceRequest;
use nsm_proto::networkservice::network_service_server::{NetworkService, NetworkServiceServer};
use nsm_proto::transport::PeerUrl;
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tokio::task::JoinHandle;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

/// The bench endpoint's name, in the registry and in its path segment.
pub(super) const ENDPOINT_NAME: &str = "bench-nse";

/// A tonic server of one `NetworkService` on a unix socket, stopped when dropped.
#[derive(Debug)]
pub(super) struct LocalServer {
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<Result<(), tonic::transport::Error>>,
    pub(super) url: PeerUrl,
}

impl LocalServer {
    pub(super) fn start<S: NetworkService>(socket: PathBuf, service: S) -> anyhow::Result<Self> {
        let listener = UnixListener::bind(&socket)
            .with_context(|| format!("cannot listen on {}", socket.display()))?;
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(NetworkServiceServer::new(service))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                let _ = stopped.await;
            });
        Ok(Self {
            stop: Some(stop),
            task: tokio::spawn(server),
            url: PeerUrl::Unix(socket),
        })
    }
}

impl Drop for LocalServer {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

/// An endpoint that accepts every Request, as NSM's endpoints answer: its own path segment,
/// the first mechanism offered, and a point-to-point /32 pair from 10.0.0.0/8.
#[derive(Debug, Default)]
pub(super) struct BenchEndpoint {
    pairs: AtomicU32,
}

#[tonic::async_trait]
impl NetworkService for BenchEndpoint {
    async fn request(
        &self,
        request: Request<NetworkServiceRequest>,
    ) -> Result<Response<Connection>, Status> {
        let request = request.into_inner();
        let offered = request
            .mechanism_preferences
            .into_iter()
            .next()
            .ok_or_else(|| Status::invalid_argument("mechanism_preferences is empty"))?;
        let mut connection = request
            .connection
            .ok_or_else(|| Status::invalid_argument("request.connection is missing"))?;
        update_path(&mut connection)?;
        connection.mechanism = Some(Mechanism {
            cls: "LOCAL".into(),
            r#type: offered.r#type,
            parameters: HashMap::from([("name".to_owned(), "nse0".to_owned())]),
        });
        let mut context = connection.context.take().unwrap_or_default();
        context.ip_context = Some(point_to_point(self.pairs.fetch_add(1, Ordering::Relaxed)));
        connection.context = Some(context);
        Ok(Response::new(connection))
    }

    async fn close(&self, _: Request<Connection>) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }
}

/// NSM's updatepath at the last hop: the caller's segment (at `path.index`, with id ==
/// `connection.id`) is followed by ours, reused if it is there, new otherwise, with the
/// caller's expiry. NSM points `path.index` and `connection.id` at our segment while the
/// endpoint works and restores the caller's on return; with nothing in between, they are
/// simply left as the caller sent them.
fn update_path(connection: &mut Connection) -> Result<(), Status> {
    let path = connection
        .path
        .as_mut()
        .ok_or_else(|| Status::invalid_argument("connection.path is missing"))?;
    let at = path.index as usize;
    let caller = path
        .path_segments
        .get(at)
        .ok_or_else(|| Status::invalid_argument("connection.path.index is outside the path"))?;
    if caller.id != connection.id {
        return Err(Status::invalid_argument(
            "the segment at connection.path.index is not connection.id's",
        ));
    }
    let expires = caller.expires;
    path.path_segments.truncate(at + 2);
    match path.path_segments.get_mut(at + 1) {
        Some(own) if own.name == ENDPOINT_NAME => own.expires = expires,
        _ => {
            path.path_segments.truncate(at + 1);
            path.path_segments.push(PathSegment {
                name: ENDPOINT_NAME.into(),
                id: uuid::Uuid::new_v4().to_string(),
                expires,
                ..PathSegment::default()
            });
        }
    }
    Ok(())
}

/// The `n`th /32 pair of 10.0.0.0/8 (client side first), with a route to the other side.
fn point_to_point(n: u32) -> IpContext {
    // 2^23 - 1 pairs, skipping 10.0.0.0/31.
    let offset = 2 + 2 * (n % ((1 << 23) - 1));
    let src = Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 0, 0, 0)) | offset);
    let dst = Ipv4Addr::from(u32::from(src) + 1);
    let route = |to: Ipv4Addr| Route {
        prefix: format!("{to}/32"),
        ..Route::default()
    };
    IpContext {
        src_ip_addrs: vec![format!("{src}/32")],
        dst_ip_addrs: vec![format!("{dst}/32")],
        src_routes: vec![route(dst)],
        dst_routes: vec![route(src)],
        ..IpContext::default()
    }
}

/// The floor's server: a unary method that returns its input.
#[derive(Debug)]
pub(super) struct Echo;

#[tonic::async_trait]
impl NetworkService for Echo {
    async fn request(
        &self,
        request: Request<NetworkServiceRequest>,
    ) -> Result<Response<Connection>, Status> {
        Ok(Response::new(
            request.into_inner().connection.unwrap_or_default(),
        ))
    }

    async fn close(&self, _: Request<Connection>) -> Result<Response<()>, Status> {
        Ok(Response::new(()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn point_to_point_pairs_are_distinct_32s_inside_10_slash_8() {
        let first = point_to_point(0);
        assert_eq!(first.src_ip_addrs, ["10.0.0.2/32"]);
        assert_eq!(first.dst_ip_addrs, ["10.0.0.3/32"]);
        assert_eq!(first.src_routes[0].prefix, "10.0.0.3/32");
        let last = point_to_point((1 << 23) - 2);
        assert_eq!(last.dst_ip_addrs, ["10.255.255.255/32"]);
        assert_eq!(point_to_point((1 << 23) - 1).src_ip_addrs, ["10.0.0.2/32"]);
    }

    #[test]
    fn update_path_appends_the_endpoint_after_the_caller_and_keeps_its_index() {
        let expires = Some(prost_types::Timestamp {
            seconds: 7,
            nanos: 0,
        });
        let segment = |name: &str, id: &str| PathSegment {
            name: name.into(),
            id: id.into(),
            expires,
            ..PathSegment::default()
        };
        let mut connection = Connection {
            id: "b".into(),
            path: Some(nsm_proto::connection::Path {
                index: 1,
                path_segments: vec![segment("nsc", "a"), segment("node", "b")],
            }),
            ..Connection::default()
        };
        update_path(&mut connection).unwrap();
        let path = connection.path.as_ref().unwrap();
        assert_eq!((path.index, connection.id.as_str()), (1, "b"));
        assert_eq!(path.path_segments[2].name, ENDPOINT_NAME);
        assert_eq!(path.path_segments[2].expires, expires);
        let own = path.path_segments[2].id.clone();
        update_path(&mut connection).unwrap();
        assert_eq!(connection.path.unwrap().path_segments[2].id, own);
    }
}
