//! The measured load: clients asking the node for new connections, as NSM's NSCs do.

use std::collections::HashMap;
use std::time::Duration;

use anyhow::{Context, bail};
use chrono::Utc;
use nsm_proto::connection::{Connection, Mechanism, Path, PathSegment};
use nsm_proto::convert::time_to_wire;
use nsm_proto::networkservice::NetworkServiceRequest;
use nsm_proto::networkservice::network_service_client::NetworkServiceClient;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tonic::transport::Channel;

use super::servers::ENDPOINT_NAME;

/// The bench's network service.
pub(super) const SERVICE: &str = "bench";

/// A setup that takes longer than this fails the bench.
const CALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A Request for a new connection, as an NSC sends it to its node.
pub(super) fn new_connection() -> NetworkServiceRequest {
    let id = uuid::Uuid::new_v4().to_string();
    let expires = time_to_wire(Utc::now() + chrono::Duration::minutes(10));
    NetworkServiceRequest {
        connection: Some(Connection {
            id: id.clone(),
            network_service: SERVICE.into(),
            path: Some(Path {
                index: 0,
                path_segments: vec![PathSegment {
                    name: "bench-client".into(),
                    id,
                    expires: Some(expires),
                    ..PathSegment::default()
                }],
            }),
            ..Connection::default()
        }),
        mechanism_preferences: vec![Mechanism {
            cls: "LOCAL".into(),
            r#type: "KERNEL".into(),
            parameters: HashMap::from([("name".to_owned(), "nsm-1".to_owned())]),
        }],
    }
}

/// One setup, checked: the node must have gone to the bench's endpoint and brought back its
/// addresses, or the bench would measure something else.
pub(super) async fn probe(channel: &Channel) -> anyhow::Result<()> {
    let reply = NetworkServiceClient::new(channel.clone())
        .request(new_connection())
        .await
        .context("the first Request failed")?
        .into_inner();
    let addresses = reply
        .context
        .and_then(|c| c.ip_context)
        .map(|ip| ip.src_ip_addrs)
        .unwrap_or_default();
    let reached = reply
        .path
        .is_some_and(|p| p.path_segments.iter().any(|s| s.name == ENDPOINT_NAME));
    if addresses.is_empty() || !reached {
        bail!("the first Request was answered without the bench endpoint's segment or addresses");
    }
    Ok(())
}

/// Runs `setups` Requests from `clients` concurrent clients, spread round robin over
/// `channels`; returns the wall time and every setup's latency, sorted. The first error
/// stops every client.
pub(super) async fn drive(
    channels: &[Channel],
    clients: u32,
    setups: u64,
) -> anyhow::Result<(Duration, Vec<Duration>)> {
    let clients = u64::from(clients).clamp(1, setups.max(1));
    let began = Instant::now();
    let mut tasks = JoinSet::new();
    for (c, channel) in (0..clients).zip(channels.iter().cycle()) {
        // Spread the remainder so the total is exactly `setups`.
        let count = setups / clients + u64::from(c < setups % clients);
        tasks.spawn(one_client(
            NetworkServiceClient::new(channel.clone()),
            count,
        ));
    }
    let mut latencies = Vec::with_capacity(setups as usize);
    while let Some(joined) = tasks.join_next().await {
        latencies.extend(joined??);
    }
    let wall = began.elapsed();
    latencies.sort_unstable();
    Ok((wall, latencies))
}

async fn one_client(
    mut client: NetworkServiceClient<Channel>,
    count: u64,
) -> anyhow::Result<Vec<Duration>> {
    let mut latencies = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let request = new_connection();
        let began = Instant::now();
        match tokio::time::timeout(CALL_TIMEOUT, client.request(request)).await {
            Ok(Ok(_)) => latencies.push(began.elapsed()),
            Ok(Err(status)) => bail!("a Request failed: {status}"),
            Err(_) => bail!("a Request got no answer within {CALL_TIMEOUT:?}"),
        }
    }
    Ok(latencies)
}
