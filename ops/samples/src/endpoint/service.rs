//! `networkservice.NetworkService` of the endpoint: Request, Close, and the garbage
//! collection of connections nobody refreshes.
//!
//! All changes go through one lock over [`State`], and each is "append to the log, then
//! change memory" inside it, so two calls for the same connection cannot interleave and
//! memory never holds an allocation the log lacks. If an append fails, memory is rebuilt
//! from the log (the append may have committed), and the caller gets `UNAVAILABLE`.

use std::collections::HashMap;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use nsm_proto::connection::{
    Connection, ConnectionEvent, ConnectionEventType, Mechanism, State as ConnState,
};
use nsm_proto::connectioncontext::{ConnectionContext, IpContext, Route};
use nsm_proto::convert::time_from_wire;
use nsm_proto::networkservice::NetworkServiceRequest;
use nsm_proto::networkservice::network_service_server::NetworkService;
use tokio::sync::{Mutex, Notify, broadcast};
use tonic::{Request, Response, Status};

use super::cidr::{Cidr, host_prefix};
use super::ipam::{Allocation, Ipam, IpamError};
use super::path::{self, Hop};
use nsm_log::ipam::{Cause, IpamLog, Record};

/// Monitor events buffered for slow watchers before they are cut off.
const EVENT_BUFFER: usize = 1024;

/// Mechanism types this endpoint can terminate.
const SUPPORTED_MECHANISMS: [&str; 2] = ["KERNEL", "MEMIF"];

/// Linux's interface name limit (`IFNAMSIZ - 1`).
pub(crate) const MAX_INTERFACE_NAME: usize = 15;

/// The endpoint's services, cheap to clone.
#[derive(Debug, Clone)]
pub(crate) struct Endpoint {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    name: String,
    /// Our network namespace as a `file://` URL: the `inodeURL` of every KERNEL or MEMIF
    /// mechanism we choose, so the node's forwarder knows where our end goes.
    netns: String,
    grace: chrono::Duration,
    state: Mutex<State>,
    /// Wakes the garbage collector when deadlines may have moved.
    rearm: Notify,
    events: broadcast::Sender<ConnectionEvent>,
}

#[derive(Debug)]
pub(crate) struct State {
    ipam: Ipam,
    log: IpamLog,
    /// The connections as last returned (with our index and id), for MonitorConnection.
    pub(crate) connections: HashMap<String, Connection>,
}

impl Endpoint {
    /// The endpoint over an opened log, with the log's allocations in memory.
    pub(crate) async fn restore(
        name: String,
        netns: String,
        cidr: Cidr,
        grace: std::time::Duration,
        mut log: IpamLog,
    ) -> anyhow::Result<Self> {
        let allocations = log.load().await?;
        tracing::info!(
            log = %log.path().display(), %cidr, allocations = allocations.len(),
            "IPAM log loaded"
        );
        let state = State {
            ipam: Ipam::restore(cidr, allocations),
            log,
            connections: HashMap::new(),
        };
        Ok(Self {
            inner: Arc::new(Inner {
                name,
                netns,
                grace: chrono::Duration::from_std(grace)?,
                state: Mutex::new(state),
                rearm: Notify::new(),
                events: broadcast::channel(EVENT_BUFFER).0,
            }),
        })
    }

    pub(crate) fn name(&self) -> &str {
        &self.inner.name
    }

    /// The state lock and a subscription taken under it, so a watcher's snapshot and its
    /// later events leave no gap.
    pub(crate) async fn watch(
        &self,
    ) -> (
        HashMap<String, Connection>,
        broadcast::Receiver<ConnectionEvent>,
    ) {
        let state = self.inner.state.lock().await;
        (state.connections.clone(), self.inner.events.subscribe())
    }

    async fn request(&self, request: NetworkServiceRequest) -> Result<Connection, Status> {
        let mut connection = request
            .connection
            .ok_or_else(|| Status::invalid_argument("request.connection is missing"))?;
        let mechanism = select_mechanism(&request.mechanism_preferences)?;
        let hop = path::enter(&mut connection, self.name(), Utc::now())
            .map_err(Status::invalid_argument)?;
        let excluded = excluded_prefixes(&connection)?;
        let expires_at = expires_at(&connection, &hop)?;
        let mut state = self.inner.state.lock().await;
        let allocation = state.allocate(&hop.id, &excluded, expires_at).await?;
        let mut mechanism = with_interface_name(mechanism, &hop.id);
        mechanism
            .parameters
            .insert("inodeURL".into(), self.inner.netns.clone());
        connection.mechanism = Some(mechanism);
        set_addresses(&mut connection, &allocation);
        connection.network_service_endpoint_name = self.name().to_owned();
        connection.state = ConnState::Up.into();
        state.connections.insert(hop.id.clone(), connection.clone());
        self.publish(ConnectionEventType::Update, &hop.id, &connection);
        drop(state);
        self.inner.rearm.notify_one();
        path::leave(&mut connection, &hop);
        Ok(connection)
    }

    async fn close(&self, connection: Connection) -> Result<(), Status> {
        let Some(id) = path::find_own_id(&connection, self.name()) else {
            tracing::debug!(connection = %connection.id, "Close of a connection not through us");
            return Ok(());
        };
        self.release(&id, Cause::Close).await
    }

    /// Gives a connection's addresses back (idempotent: unknown ids are fine).
    async fn release(&self, id: &str, cause: Cause) -> Result<(), Status> {
        let mut state = self.inner.state.lock().await;
        if let Some(allocation) = state.ipam.get(id).cloned() {
            let record = Record::Released {
                allocation: &allocation,
                cause,
            };
            state.append(id, record).await?;
            state.ipam.remove(id);
            tracing::info!(
                connection = id, cause = cause.as_str(), endpoint_addr = %allocation.endpoint,
                client_addr = %allocation.client, "addresses released"
            );
        }
        if let Some(connection) = state.connections.remove(id) {
            self.publish(ConnectionEventType::Delete, id, &connection);
        }
        Ok(())
    }

    /// Releases every connection due at `now`; returns how many.
    pub(crate) async fn expire_due(&self, now: DateTime<Utc>) -> usize {
        let due = self
            .inner
            .state
            .lock()
            .await
            .ipam
            .due(now, self.inner.grace);
        let mut released = 0;
        for id in due {
            match self.release(&id, Cause::Expired).await {
                Ok(()) => released += 1,
                Err(e) => tracing::warn!(connection = %id, error = %e, "cannot expire; will retry"),
            }
        }
        released
    }

    /// Runs the garbage collector until the task is dropped: sleeps until the next
    /// deadline (re-armed by each Request), then releases what is due.
    pub(crate) async fn collect_garbage(self) {
        loop {
            let next = self
                .inner
                .state
                .lock()
                .await
                .ipam
                .next_due(self.inner.grace);
            let Some(deadline) = next else {
                self.inner.rearm.notified().await;
                continue;
            };
            let wait = (deadline - Utc::now()).to_std().unwrap_or_default();
            tokio::select! {
                () = tokio::time::sleep(wait) => {
                    if self.expire_due(Utc::now()).await == 0 && wait.is_zero() {
                        // A failed release: do not spin.
                        tokio::time::sleep(std::time::Duration::from_secs(1)).await;
                    }
                }
                () = self.inner.rearm.notified() => {}
            }
        }
    }

    fn publish(&self, kind: ConnectionEventType, id: &str, connection: &Connection) {
        let mut connection = connection.clone();
        if kind == ConnectionEventType::Delete {
            connection.state = ConnState::Down.into();
        }
        let event = ConnectionEvent {
            r#type: kind.into(),
            connections: HashMap::from([(id.to_owned(), connection)]),
        };
        // No watcher is not an error.
        let _ = self.inner.events.send(event);
    }
}

impl State {
    /// The connection's pair: the one it holds, or a new one. Logged before it is used.
    async fn allocate(
        &mut self,
        id: &str,
        excluded: &[Cidr],
        expires_at: DateTime<Utc>,
    ) -> Result<Allocation, Status> {
        let held = self.ipam.get(id).cloned();
        let (endpoint, client) = match &held {
            Some(a) => (a.endpoint, a.client),
            None => self.ipam.plan(excluded).map_err(ipam_status)?,
        };
        let allocation = Allocation {
            endpoint,
            client,
            expires_at: Some(expires_at),
        };
        if held.as_ref() != Some(&allocation) {
            self.append(id, Record::Allocated(&allocation)).await?;
            self.ipam.insert(id, allocation);
        }
        if held.is_none() {
            tracing::info!(
                connection = id, endpoint_addr = %endpoint, client_addr = %client,
                expires_at = %expires_at, allocated = self.ipam.len(), "addresses allocated"
            );
        }
        Ok(allocation)
    }

    async fn append(&mut self, id: &str, record: Record<'_>) -> Result<(), Status> {
        let Err(error) = self.log.append(id, record).await else {
            return Ok(());
        };
        tracing::warn!(connection = id, %error, "IPAM log append failed; reloading from the log");
        match self.log.load().await {
            Ok(allocations) => self.ipam = Ipam::restore(self.ipam.cidr(), allocations),
            Err(e) => tracing::error!(error = %e, "cannot reload the IPAM log"),
        }
        Err(Status::unavailable(format!(
            "the IPAM log is not writable: {error}"
        )))
    }
}

#[tonic::async_trait]
impl NetworkService for Endpoint {
    async fn request(
        &self,
        request: Request<NetworkServiceRequest>,
    ) -> Result<Response<Connection>, Status> {
        Endpoint::request(self, request.into_inner())
            .await
            .map(Response::new)
    }

    async fn close(&self, request: Request<Connection>) -> Result<Response<()>, Status> {
        Endpoint::close(self, request.into_inner())
            .await
            .map(Response::new)
    }
}

fn ipam_status(error: IpamError) -> Status {
    match error {
        IpamError::Exhausted { .. } => Status::resource_exhausted(error.to_string()),
    }
}

/// The first preference this endpoint supports, as a LOCAL mechanism.
fn select_mechanism(preferences: &[Mechanism]) -> Result<Mechanism, Status> {
    if preferences.is_empty() {
        return Err(Status::invalid_argument(
            "request.mechanism_preferences is empty",
        ));
    }
    let chosen = preferences
        .iter()
        .find(|m| SUPPORTED_MECHANISMS.contains(&m.r#type.as_str()))
        .ok_or_else(|| {
            let offered: Vec<&str> = preferences.iter().map(|m| m.r#type.as_str()).collect();
            Status::invalid_argument(format!(
                "none of the offered mechanisms {offered:?} is supported; this endpoint supports {SUPPORTED_MECHANISMS:?}"
            ))
        })?;
    if let Some(name) = chosen.parameters.get("name")
        && name.len() > MAX_INTERFACE_NAME
    {
        return Err(Status::invalid_argument(format!(
            "mechanism parameter name {name:?} is longer than {MAX_INTERFACE_NAME} characters"
        )));
    }
    Ok(Mechanism {
        cls: "LOCAL".into(),
        ..chosen.clone()
    })
}

/// KERNEL needs an interface name on our side: `nse-` and 8 hex digits of our segment id.
fn with_interface_name(mut mechanism: Mechanism, segment_id: &str) -> Mechanism {
    if mechanism.r#type == "KERNEL" && !mechanism.parameters.contains_key("name") {
        let mut hex: String = segment_id
            .chars()
            .filter(char::is_ascii_hexdigit)
            .take(8)
            .collect();
        if hex.len() < 8 {
            hex = format!("{:08x}", fnv1a(segment_id));
        }
        mechanism
            .parameters
            .insert("name".into(), format!("nse-{}", hex.to_ascii_lowercase()));
    }
    mechanism
}

fn fnv1a(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5, |hash, b| {
        (hash ^ u32::from(b)).wrapping_mul(0x0100_0193)
    })
}

fn excluded_prefixes(connection: &Connection) -> Result<Vec<Cidr>, Status> {
    let Some(ip) = connection
        .context
        .as_ref()
        .and_then(|c| c.ip_context.as_ref())
    else {
        return Ok(vec![]);
    };
    ip.excluded_prefixes
        .iter()
        .enumerate()
        .map(|(i, p)| {
            Cidr::parse_prefix_or_address(p).map_err(|e| {
                Status::invalid_argument(format!(
                    "connection.context.ip_context.excluded_prefixes[{i}]: {e}"
                ))
            })
        })
        .collect()
}

/// The end of the client's lifetime: the previous segment's `expires`, else ours.
fn expires_at(connection: &Connection, hop: &Hop) -> Result<DateTime<Utc>, Status> {
    let ours = connection
        .path
        .as_ref()
        .and_then(|p| p.path_segments[hop.index].expires);
    let stamp = hop.previous_expires.or(ours).unwrap_or_default();
    time_from_wire("connection.path.path_segments.expires", &stamp)
        .map_err(|e| Status::invalid_argument(e.to_string()))
}

fn set_addresses(connection: &mut Connection, allocation: &Allocation) {
    let (src, dst) = (
        host_prefix(allocation.client),
        host_prefix(allocation.endpoint),
    );
    let context = connection
        .context
        .get_or_insert_with(ConnectionContext::default);
    let ip = context.ip_context.get_or_insert_with(IpContext::default);
    ip.src_ip_addrs = vec![src.clone()];
    ip.dst_ip_addrs = vec![dst.clone()];
    ip.src_routes = vec![route(dst)];
    ip.dst_routes = vec![route(src)];
}

fn route(prefix: String) -> Route {
    Route {
        prefix,
        ..Route::default()
    }
}

/// For tests: the pair a connection holds.
#[cfg(test)]
pub(crate) async fn held(
    endpoint: &Endpoint,
    id: &str,
) -> Option<(std::net::IpAddr, std::net::IpAddr)> {
    let state = endpoint.inner.state.lock().await;
    state.ipam.get(id).map(|a| (a.endpoint, a.client))
}
