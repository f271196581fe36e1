//! An in-process endpoint that the tests control: it records every Request and Close it is
//! sent, answers like NSM's endpoints do (its own path segment, a point-to-point IP
//! context), or refuses when told to.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use nsm_proto::connection::{Connection, PathSegment};
use nsm_proto::connectioncontext::{ConnectionContext, IpContext, Route};
use nsm_proto::networkservice::NetworkServiceRequest;
use nsm_proto::networkservice::network_service_server::{NetworkService, NetworkServiceServer};
use tokio::net::UnixListener;
use tokio::sync::oneshot;
use tokio_stream::wrappers::UnixListenerStream;
use tonic::{Request, Response, Status};

/// What the endpoint was sent.
#[derive(Debug, Clone, Default)]
pub struct Seen {
    pub requests: Vec<NetworkServiceRequest>,
    pub closes: Vec<Connection>,
}

#[derive(Debug, Clone)]
struct Behaviour {
    name: String,
    seen: Arc<Mutex<Seen>>,
    refuse: Arc<Mutex<Option<Status>>>,
    kernel: Arc<Mutex<KernelEnd>>,
}

/// How the endpoint answers for a kernel data plane: where its ends go, and routes to add.
#[derive(Debug, Clone, Default)]
struct KernelEnd {
    /// `inodeURL` of its ends; `None`: it names no namespace (for the dry-run data plane).
    netns: Option<String>,
    extra_client_routes: Vec<Route>,
    /// The (client, endpoint) addresses to hand out instead of its own pairs.
    addresses: Option<(String, String)>,
}

/// A running fake endpoint; stops when dropped.
#[derive(Debug)]
pub struct FakeEndpoint {
    pub name: String,
    pub socket: PathBuf,
    behaviour: Behaviour,
    _stop: oneshot::Sender<()>,
}

impl FakeEndpoint {
    pub async fn start(dir: &Path, name: &str) -> Self {
        let socket = dir.join(format!("{name}.sock"));
        let listener = UnixListener::bind(&socket).expect("bind the fake endpoint");
        let behaviour = Behaviour {
            name: name.into(),
            seen: Arc::default(),
            refuse: Arc::default(),
            kernel: Arc::default(),
        };
        let (stop, stopped) = oneshot::channel::<()>();
        let server = tonic::transport::Server::builder()
            .add_service(NetworkServiceServer::new(behaviour.clone()))
            .serve_with_incoming_shutdown(UnixListenerStream::new(listener), async {
                let _ = stopped.await;
            });
        tokio::spawn(server);
        Self {
            name: name.into(),
            socket,
            behaviour,
            _stop: stop,
        }
    }

    pub fn url(&self) -> String {
        format!("unix://{}", self.socket.display())
    }

    pub fn seen(&self) -> Seen {
        self.behaviour.seen.lock().unwrap().clone()
    }

    /// Puts its end of every later vWire in namespace `netns_url` (its mechanism's
    /// `inodeURL`), each under its own interface name (`nse-<n>`).
    pub fn in_netns(&self, netns_url: &str) {
        self.behaviour.kernel.lock().unwrap().netns = Some(netns_url.to_owned());
    }

    /// Adds `prefix via next_hop` to the client's routes of every later vWire.
    pub fn add_client_route(&self, prefix: &str, next_hop: &str) {
        self.behaviour
            .kernel
            .lock()
            .unwrap()
            .extra_client_routes
            .push(Route {
                prefix: prefix.into(),
                next_hop: next_hop.into(),
            });
    }

    /// Hands out these (client, endpoint) addresses to every later vWire, valid or not.
    pub fn hand_out(&self, client: &str, endpoint: &str) {
        self.behaviour.kernel.lock().unwrap().addresses = Some((client.into(), endpoint.into()));
    }

    /// Makes every later Request fail with `status` (None: answer again).
    pub fn refuse(&self, status: Option<Status>) {
        *self.behaviour.refuse.lock().unwrap() = status;
    }
}

#[tonic::async_trait]
impl NetworkService for Behaviour {
    async fn request(
        &self,
        request: Request<NetworkServiceRequest>,
    ) -> Result<Response<Connection>, Status> {
        let request = request.into_inner();
        self.seen.lock().unwrap().requests.push(request.clone());
        if let Some(status) = self.refuse.lock().unwrap().clone() {
            return Err(status);
        }
        let mut connection = request.connection.clone().unwrap_or_default();
        let path = connection.path.get_or_insert_with(Default::default);
        let caller = path.index as usize;
        let own = caller + 1;
        let expires = path.path_segments.get(caller).and_then(|s| s.expires);
        match path.path_segments.get_mut(own) {
            Some(segment) if segment.name == self.name => segment.expires = expires,
            _ => {
                path.path_segments.truncate(own);
                path.path_segments.push(PathSegment {
                    name: self.name.clone(),
                    id: uuid::Uuid::new_v4().to_string(),
                    expires,
                    ..Default::default()
                });
            }
        }
        let mut mechanism = request
            .mechanism_preferences
            .first()
            .cloned()
            .ok_or_else(|| Status::invalid_argument("no mechanism offered"))?;
        let n = self.seen.lock().unwrap().requests.len();
        let kernel = self.kernel.lock().unwrap().clone();
        match &kernel.netns {
            Some(netns) => {
                mechanism
                    .parameters
                    .insert("inodeURL".into(), netns.clone());
                mechanism
                    .parameters
                    .insert("name".into(), format!("nse-{n}"));
            }
            None => {
                mechanism.parameters.insert("name".into(), "nse-0".into());
            }
        }
        connection.mechanism = Some(mechanism);
        let (client, server) = kernel.addresses.clone().unwrap_or_else(|| {
            (
                format!("10.60.{}.1/32", n % 250),
                format!("10.60.{}.2/32", n % 250),
            )
        });
        connection.context = Some(ConnectionContext {
            ip_context: Some(IpContext {
                src_ip_addrs: vec![client.clone()],
                dst_ip_addrs: vec![server.clone()],
                src_routes: std::iter::once(Route {
                    prefix: server,
                    ..Default::default()
                })
                .chain(kernel.extra_client_routes)
                .collect(),
                dst_routes: vec![Route {
                    prefix: client,
                    ..Default::default()
                }],
                ..Default::default()
            }),
            ..Default::default()
        });
        connection.network_service_endpoint_name = self.name.clone();
        Ok(Response::new(connection))
    }

    async fn close(&self, request: Request<Connection>) -> Result<Response<()>, Status> {
        self.seen.lock().unwrap().closes.push(request.into_inner());
        Ok(Response::new(()))
    }
}
