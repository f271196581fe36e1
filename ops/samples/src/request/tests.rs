//! Flag validation, refresh timing, the JSON shape, and a session against an in-process
//! endpoint.

use clap::Parser;
use nsm_proto::connection::{Connection, Path, PathSegment};
use nsm_proto::convert::time_to_wire;

use super::*;

#[derive(Debug, Parser)]
struct Cli {
    #[command(flatten)]
    args: RequestArgs,
}

fn parse(extra: &[&str]) -> Result<RequestArgs, clap::Error> {
    let mut argv = vec!["nsm", "--service", "icmp"];
    if !extra.contains(&"--connect") {
        argv.extend(["--connect", "unix:///tmp/nsm.sock"]);
    }
    Cli::try_parse_from(argv.iter().chain(extra)).map(|cli| cli.args)
}

#[test]
fn defaults_follow_cmd_nsc() {
    let args = parse(&[]).unwrap();
    assert_eq!(args.interface, "nsm-1");
    assert_eq!(args.lifetime, Duration::from_secs(600));
    assert_eq!(args.request_timeout, Duration::from_secs(15));
    let kernel = preference(&args);
    assert_eq!(
        (kernel.cls.as_str(), kernel.r#type.as_str()),
        ("LOCAL", "KERNEL")
    );
    let netns = format!("file:///proc/{}/ns/net", std::process::id());
    assert_eq!(kernel.parameters["inodeURL"], netns);
    let connection = initial_connection(&args, Utc::now());
    let own = &connection.path.as_ref().unwrap().path_segments[0];
    assert_eq!(own.id, connection.id);
    assert!(own.name.starts_with("nsc-"));
}

#[test]
fn bad_flags_are_refused() {
    for bad in [
        &["--interface", "a-very-long-name0"][..],
        &["--interface", "a/b"],
        &["--interface", ""],
        &["--mechanism", "vfio"],
        &["--label", "novalue"],
        &["--lifetime", "soon"],
        &["--connect", "localhost:1"],
    ] {
        assert!(parse(bad).is_err(), "{bad:?}");
    }
    let args = parse(&[
        "--mechanism",
        "memif",
        "--label",
        "a=1,b=2",
        "--netns",
        "/n",
    ])
    .unwrap();
    let memif = preference(&args);
    assert_eq!(memif.r#type, "MEMIF");
    assert!(!memif.parameters.contains_key("name"));
    assert_eq!(memif.parameters["inodeURL"], "file:///n");
    assert_eq!(initial_connection(&args, Utc::now()).labels.len(), 2);
}

fn with_expiries(expiries: &[Option<i64>]) -> Connection {
    let segments = expiries
        .iter()
        .map(|e| PathSegment {
            expires: e.map(|s| time_to_wire(DateTime::from_timestamp(s, 0).unwrap())),
            ..PathSegment::default()
        })
        .collect();
    Connection {
        path: Some(Path {
            index: 0,
            path_segments: segments,
        }),
        ..Connection::default()
    }
}

#[test]
fn refresh_comes_at_a_third_of_the_earliest_expiry() {
    let now = DateTime::from_timestamp(1_000, 0).unwrap();
    let lifetime = Duration::from_secs(600);
    let delay = |e: &[Option<i64>]| refresh_delay(&with_expiries(e), now, lifetime);
    assert_eq!(delay(&[Some(1_600), Some(1_090)]), Duration::from_secs(30));
    assert_eq!(delay(&[None]), Duration::from_secs(200));
    assert_eq!(
        delay(&[Some(900)]),
        REFRESH_RETRY,
        "an expired path refreshes soon, not at once"
    );
}

#[test]
fn json_has_the_documented_fields() {
    let value = show::to_json(&with_expiries(&[Some(1_000)]));
    for field in [
        "id",
        "network_service",
        "network_service_endpoint_name",
        "state",
        "mechanism",
        "labels",
        "context",
        "path",
    ] {
        assert!(value.get(field).is_some(), "{field}");
    }
    assert_eq!(value["state"], "UP");
    assert_eq!(
        value["path"]["segments"][0]["expires"],
        "1970-01-01T00:16:40.000Z"
    );
    assert!(!value.to_string().contains('\n'));
}

#[tokio::test]
async fn a_session_requests_refreshes_and_closes_through_an_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let url = crate::endpoint::serve_for_test(dir.path(), "nse-t", "10.9.0.0/24").await;
    let args = parse(&[
        "--connect",
        &url.to_string(),
        "--id",
        "c1",
        "--name",
        "nsc-t",
    ])
    .unwrap();
    let mut session = Session::new(url.channel(DIAL_TIMEOUT), &args);
    let first = session
        .establish(initial_connection(&args, Utc::now()))
        .await
        .unwrap();
    assert_eq!(first.id, "c1");
    assert_eq!(first.network_service_endpoint_name, "nse-t");
    let ip = first.context.as_ref().unwrap().ip_context.as_ref().unwrap();
    assert_eq!(ip.src_ip_addrs, ["10.9.0.2/32"]);
    let again = session.refresh().await.unwrap();
    assert_eq!(again.context, first.context);
    assert_eq!(again.path.as_ref().unwrap().path_segments.len(), 2);
    session.close().await.unwrap();
}

#[tokio::test]
async fn an_unreachable_node_is_a_prompt_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let url = PeerUrl::Unix(dir.path().join("nobody.sock"));
    let args = parse(&["--request-timeout", "2s"]).unwrap();
    let mut session = Session::new(url.channel(DIAL_TIMEOUT), &args);
    let status = session
        .establish(initial_connection(&args, Utc::now()))
        .await
        .unwrap_err();
    assert_eq!(status.code(), tonic::Code::Unavailable, "{status:?}");
    assert!(describe(&status).starts_with("Unavailable: "));
}
