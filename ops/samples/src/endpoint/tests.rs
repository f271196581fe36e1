//! The endpoint's services, called in-process over a log in a temporary directory.

use std::collections::HashMap;
use std::time::Duration;

use chrono::Utc;
use nsm_proto::connection::{Connection, Mechanism, Path, PathSegment};
use nsm_proto::connectioncontext::{ConnectionContext, IpContext};
use nsm_proto::convert::time_to_wire;
use nsm_proto::networkservice::NetworkServiceRequest;
use nsm_proto::networkservice::network_service_server::NetworkService as _;
use tonic::{Code, Request};

use super::service::{Endpoint, held};
use nsm_log::ipam::IpamLog;

const NAME: &str = "nse-1";

async fn endpoint(dir: &tempfile::TempDir, cidr: &str) -> Endpoint {
    let log = IpamLog::open(&dir.path().join("ipam.db")).await.unwrap();
    Endpoint::restore(
        NAME.into(),
        "file:///run/netns/nse-test".into(),
        cidr.parse().unwrap(),
        Duration::from_secs(60),
        log,
    )
    .await
    .unwrap()
}

fn kernel() -> Mechanism {
    Mechanism {
        cls: "LOCAL".into(),
        r#type: "KERNEL".into(),
        parameters: HashMap::new(),
    }
}

fn request(id: &str) -> NetworkServiceRequest {
    let client = PathSegment {
        name: "nsc".into(),
        id: id.into(),
        expires: Some(time_to_wire(Utc::now() + chrono::Duration::minutes(10))),
        ..PathSegment::default()
    };
    NetworkServiceRequest {
        connection: Some(Connection {
            id: id.into(),
            network_service: "icmp".into(),
            path: Some(Path {
                index: 0,
                path_segments: vec![client],
            }),
            ..Connection::default()
        }),
        mechanism_preferences: vec![kernel()],
    }
}

async fn call(
    endpoint: &Endpoint,
    request: NetworkServiceRequest,
) -> Result<Connection, tonic::Status> {
    endpoint
        .request(Request::new(request))
        .await
        .map(tonic::Response::into_inner)
}

fn addrs(connection: &Connection) -> (Vec<String>, Vec<String>) {
    let ip = connection
        .context
        .as_ref()
        .unwrap()
        .ip_context
        .as_ref()
        .unwrap();
    (ip.src_ip_addrs.clone(), ip.dst_ip_addrs.clone())
}

fn refresh_of(connection: &Connection) -> NetworkServiceRequest {
    NetworkServiceRequest {
        connection: Some(connection.clone()),
        mechanism_preferences: vec![kernel()],
    }
}

async fn released(dir: &tempfile::TempDir) -> Vec<(String, Option<String>)> {
    let url = format!("sqlite://{}", dir.path().join("ipam.db").display());
    let mut db = <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap();
    sqlx::query_as("SELECT connection_id, cause FROM ipam_log WHERE kind = 'released'")
        .fetch_all(&mut db)
        .await
        .unwrap()
}

#[tokio::test]
async fn a_request_gets_a_pair_and_its_refresh_the_same_pair() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = endpoint(&dir, "169.254.0.0/16").await;
    let first = call(&endpoint, request("c1")).await.unwrap();
    assert_eq!(first.id, "c1");
    let path = first.path.as_ref().unwrap();
    assert_eq!((path.index, path.path_segments.len()), (0, 2));
    assert_eq!(path.path_segments[1].name, NAME);
    assert_eq!(first.network_service_endpoint_name, NAME);
    let mechanism = first.mechanism.as_ref().unwrap();
    assert!(mechanism.parameters["name"].starts_with("nse-"));
    assert!(mechanism.parameters["name"].len() <= 15);
    // The forwarder learns where our end goes from the mechanism we choose.
    assert_eq!(
        mechanism.parameters["inodeURL"],
        "file:///run/netns/nse-test"
    );
    let expected = (
        vec!["169.254.0.2/32".to_owned()],
        vec!["169.254.0.1/32".to_owned()],
    );
    assert_eq!(addrs(&first), expected);
    let ip = first.context.as_ref().unwrap().ip_context.as_ref().unwrap();
    assert_eq!(ip.src_routes[0].prefix, "169.254.0.1/32");
    assert_eq!(ip.dst_routes[0].prefix, "169.254.0.2/32");

    let again = call(&endpoint, refresh_of(&first)).await.unwrap();
    assert_eq!(addrs(&again), expected);
    assert_eq!(
        again.path.as_ref().unwrap().path_segments[1].id,
        path.path_segments[1].id
    );
    let other = call(&endpoint, request("c2")).await.unwrap();
    assert_eq!(addrs(&other).0, ["169.254.0.4/32"]);
}

#[tokio::test]
async fn a_restarted_endpoint_gives_a_refresh_the_same_pair() {
    let dir = tempfile::tempdir().unwrap();
    let first = call(&endpoint(&dir, "10.0.0.0/24").await, request("c1"))
        .await
        .unwrap();
    let restarted = endpoint(&dir, "10.0.0.0/24").await;
    let fresh = call(&restarted, request("c2")).await.unwrap();
    assert_eq!(
        addrs(&fresh).1,
        ["10.0.0.3/32"],
        "the old pair is still taken"
    );
    let refreshed = call(&restarted, refresh_of(&first)).await.unwrap();
    assert_eq!(addrs(&refreshed), addrs(&first));
}

#[tokio::test]
async fn close_releases_once_and_unknown_closes_are_fine() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = endpoint(&dir, "10.0.0.0/24").await;
    let connection = call(&endpoint, request("c1")).await.unwrap();
    let ours = connection.path.as_ref().unwrap().path_segments[1]
        .id
        .clone();
    endpoint
        .close(Request::new(connection.clone()))
        .await
        .unwrap();
    endpoint.close(Request::new(connection)).await.unwrap();
    endpoint
        .close(Request::new(Connection::default()))
        .await
        .unwrap();
    assert_eq!(
        released(&dir).await,
        [(ours.clone(), Some("close".to_owned()))]
    );
    assert_eq!(held(&endpoint, &ours).await, None);
}

#[tokio::test]
async fn an_unrefreshed_connection_expires_after_the_grace_period() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = endpoint(&dir, "10.0.0.0/24").await;
    let connection = call(&endpoint, request("c1")).await.unwrap();
    let ours = connection.path.as_ref().unwrap().path_segments[1]
        .id
        .clone();
    let expiry = Utc::now() + chrono::Duration::minutes(10);
    assert_eq!(endpoint.expire_due(expiry).await, 0);
    assert_eq!(
        endpoint
            .expire_due(expiry + chrono::Duration::seconds(61))
            .await,
        1
    );
    assert_eq!(released(&dir).await, [(ours, Some("expired".to_owned()))]);
}

#[tokio::test]
async fn excluded_prefixes_are_skipped_and_exhaustion_is_resource_exhausted() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = endpoint(&dir, "192.168.0.0/29").await;
    let mut excluding = request("c1");
    let ip = IpContext {
        excluded_prefixes: vec!["192.168.0.0/30".into()],
        ..IpContext::default()
    };
    excluding.connection.as_mut().unwrap().context = Some(ConnectionContext {
        ip_context: Some(ip),
        ..ConnectionContext::default()
    });
    let connection = call(&endpoint, excluding).await.unwrap();
    assert_eq!(
        addrs(&connection),
        (vec!["192.168.0.5/32".into()], vec!["192.168.0.4/32".into()])
    );
    let second = call(&endpoint, request("c2")).await.unwrap();
    assert_eq!(
        addrs(&second),
        (vec!["192.168.0.2/32".into()], vec!["192.168.0.1/32".into()])
    );
    let third = call(&endpoint, request("c3")).await.unwrap();
    assert_eq!(
        addrs(&third),
        (vec!["192.168.0.6/32".into()], vec!["192.168.0.3/32".into()])
    );
    let status = call(&endpoint, request("c4")).await.unwrap_err();
    assert_eq!(status.code(), Code::ResourceExhausted, "{status:?}");
    assert!(status.message().contains("192.168.0.0/29"), "{status:?}");
}

#[tokio::test]
async fn invalid_requests_are_refused_with_invalid_argument() {
    let dir = tempfile::tempdir().unwrap();
    let endpoint = endpoint(&dir, "10.0.0.0/24").await;
    let mut vfio = request("c1");
    vfio.mechanism_preferences[0].r#type = "VFIO".into();
    let mut none = request("c1");
    none.mechanism_preferences.clear();
    let mut bad_id = request("c1");
    bad_id.connection.as_mut().unwrap().id = "other".into();
    let no_connection = NetworkServiceRequest::default();
    for (request, why) in [
        (vfio, "KERNEL"),
        (none, "mechanism_preferences"),
        (bad_id, "path_segments[0].id"),
        (no_connection, "connection"),
    ] {
        let status = call(&endpoint, request).await.unwrap_err();
        assert_eq!(status.code(), Code::InvalidArgument, "{why}: {status:?}");
        assert!(status.message().contains(why), "{why}: {status:?}");
    }
}
