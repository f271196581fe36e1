//! Mutual TLS end to end: a real tonic server (the gRPC health service) served over
//! `TlsIncoming` on a unix socket and on tcp, called through `SpiffeConnector`.
//!
//! What each side gets when a handshake is refused is asserted where TLS carries it: the
//! refusing side's log names the cause (captured from tracing), the refused side gets the
//! TLS alert, which our connector spells out.

use std::io::Write;
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, SystemTime};

use nsm_identity::{
    DialTarget, Identity, IssuedSvid, PeerIdentity, ServerPeer, SpiffeConnector, SpiffeId,
    ThrowAwayTrustDomain, TlsIncoming, caller_identity, client_config, server_config,
};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use tokio::net::{TcpListener, UnixListener};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::service::interceptor::InterceptedService;
use tonic::transport::{Endpoint, Server};
use tonic_health::pb::HealthCheckRequest;
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;

const HOUR: Duration = Duration::from_secs(3600);

#[derive(Debug, Clone, Copy)]
enum Transport {
    Unix,
    Tcp,
}

const TRANSPORTS: [Transport; 2] = [Transport::Unix, Transport::Tcp];

/// A trust domain with an identity for one workload in it.
fn workload(ca: &ThrowAwayTrustDomain, path: &str) -> Identity {
    let issued = issue(ca, path);
    Identity::new(issued.svid().unwrap(), ca.bundle().unwrap()).unwrap()
}

fn issue(ca: &ThrowAwayTrustDomain, path: &str) -> IssuedSvid {
    let id = SpiffeId::from_parts(ca.trust_domain(), path).unwrap();
    ca.issue(&id, HOUR).unwrap()
}

/// A running health server and the SPIFFE IDs of the callers it saw.
struct TestServer {
    target: DialTarget,
    callers: Arc<Mutex<Vec<SpiffeId>>>,
    _dir: tempfile::TempDir,
}

async fn serve(identity: &Identity, transport: Transport) -> TestServer {
    let dir = tempfile::tempdir().unwrap();
    let (_reporter, health) = tonic_health::server::health_reporter();
    let callers = Arc::new(Mutex::new(Vec::new()));
    let seen = Arc::clone(&callers);
    let recorded = InterceptedService::new(health, move |request: tonic::Request<()>| {
        let caller = caller_identity(&request).map(|peer| peer.spiffe_id.clone());
        seen.lock().unwrap().extend(caller);
        Ok(request)
    });
    let router = Server::builder().add_service(recorded);
    let config = server_config(identity);
    let target = match transport {
        Transport::Unix => {
            let path = dir.path().join("nsm.sock");
            let accepted = UnixListenerStream::new(UnixListener::bind(&path).unwrap());
            tokio::spawn(router.serve_with_incoming(TlsIncoming::new(accepted, config)));
            DialTarget::Unix(path)
        }
        Transport::Tcp => {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            let address = listener.local_addr().unwrap().to_string();
            let accepted = TcpListenerStream::new(listener);
            tokio::spawn(router.serve_with_incoming(TlsIncoming::new(accepted, config)));
            DialTarget::Tcp(address)
        }
    };
    TestServer {
        target,
        callers,
        _dir: dir,
    }
}

/// A health client over a lazy channel through `SpiffeConnector`.
fn connect(
    target: &DialTarget,
    config: Arc<ClientConfig>,
) -> (HealthClient<tonic::transport::Channel>, ServerPeer) {
    let server_peer = ServerPeer::default();
    let connector = SpiffeConnector::new(target.clone(), config, server_peer.clone());
    let channel =
        Endpoint::from_static("http://nsm.invalid").connect_with_connector_lazy(connector);
    (HealthClient::new(channel), server_peer)
}

async fn check(
    client: &mut HealthClient<tonic::transport::Channel>,
) -> Result<ServingStatus, String> {
    let request = HealthCheckRequest {
        service: String::new(),
    };
    match tokio::time::timeout(Duration::from_secs(10), client.check(request)).await {
        Err(_) => Err("the call timed out".into()),
        Ok(Err(status)) => Err(error_chain(&status)),
        Ok(Ok(response)) => Ok(response.into_inner().status()),
    }
}

/// A status with its whole source chain, as an operator would read it in a log.
fn error_chain(error: &(dyn std::error::Error + 'static)) -> String {
    let mut text = error.to_string();
    let mut source = error.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// Everything logged in this test process (nextest runs each test in its own process).
fn captured_log() -> Arc<Mutex<Vec<u8>>> {
    static LOG: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    Arc::clone(LOG.get_or_init(|| {
        let log = Arc::new(Mutex::new(Vec::new()));
        let sink = Arc::clone(&log);
        tracing_subscriber::fmt()
            .with_env_filter("nsm_identity=debug")
            .with_ansi(false)
            .with_writer(move || LogWriter(Arc::clone(&sink)))
            .init();
        log
    }))
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Waits until the server's log contains `text` (handshakes finish in their own tasks).
async fn server_logged(log: &Arc<Mutex<Vec<u8>>>, text: &str) -> bool {
    for _ in 0..100 {
        if String::from_utf8_lossy(&log.lock().unwrap()).contains(text) {
            return true;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    eprintln!("{}", String::from_utf8_lossy(&log.lock().unwrap()));
    false
}

/// rustls' ring provider (deprecated in 0.23.48 for lacking post-quantum key exchange; the
/// workspace uses ring on purpose, see `nsm_identity::tls`).
#[allow(deprecated)]
fn ring() -> rustls::crypto::CryptoProvider {
    rustls::crypto::ring::default_provider()
}

/// A client that trusts any server and presents `cert` (or nothing): the way to present
/// certificates our own `client_config` would never send.
fn raw_client(cert: Option<&IssuedSvid>) -> Arc<ClientConfig> {
    let builder = ClientConfig::builder_with_provider(Arc::new(ring()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(TrustAnyServer));
    let mut config = match cert {
        None => builder.with_no_client_auth(),
        Some(issued) => {
            let chain = vec![CertificateDer::from_pem_slice(issued.cert_pem.as_bytes()).unwrap()];
            let key = PrivateKeyDer::from_pem_slice(issued.key_pem.as_bytes()).unwrap();
            builder.with_client_auth_cert(chain, key).unwrap()
        }
    };
    config.alpn_protocols = vec![b"h2".to_vec()];
    Arc::new(config)
}

#[derive(Debug)]
struct TrustAnyServer;

impl ServerCertVerifier for TrustAnyServer {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        ring().signature_verification_algorithms.supported_schemes()
    }
}

#[tokio::test]
async fn a_client_of_the_trust_domain_is_served_and_identified_on_unix_and_tcp() {
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let node = workload(&ca, "/node/n1");
    let client_identity = workload(&ca, "/client/c1");
    for transport in TRANSPORTS {
        let server = serve(&node, transport).await;
        let (mut client, server_peer) = connect(&server.target, client_config(&client_identity));
        assert_eq!(
            check(&mut client).await,
            Ok(ServingStatus::Serving),
            "{transport:?}"
        );
        assert_eq!(
            *server.callers.lock().unwrap(),
            [SpiffeId::parse("spiffe://nsm-rs.demo/client/c1").unwrap()],
            "{transport:?}"
        );
        let seen: Arc<PeerIdentity> = server_peer.current().expect("the server's identity");
        assert_eq!(seen.spiffe_id.as_str(), "spiffe://nsm-rs.demo/node/n1");
        assert_eq!(seen.not_after, node.current().svid.not_after());
    }
}

#[tokio::test]
async fn a_client_without_a_certificate_is_refused_on_both_sides() {
    let log = captured_log();
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let server = serve(&workload(&ca, "/node/n1"), Transport::Unix).await;
    let (mut client, _) = connect(&server.target, raw_client(None));
    let error = check(&mut client).await.unwrap_err();
    // TLS 1.3: the client finishes its handshake before the server judges it, so the
    // refusal reaches the client as an alert on its first read.
    assert!(error.contains("CertificateRequired"), "client saw: {error}");
    assert!(server_logged(&log, "the client presented no certificate").await);
    assert!(server.callers.lock().unwrap().is_empty());
}

#[tokio::test]
async fn a_client_of_another_trust_domain_is_refused_naming_the_trust_domain() {
    let log = captured_log();
    let ours = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let theirs = ThrowAwayTrustDomain::new("other.demo").unwrap();
    let server = serve(&workload(&ours, "/node/n1"), Transport::Unix).await;

    // A client that trusts our server but holds an SVID of other.demo: the server refuses.
    let foreign = issue(&theirs, "/client/c1");
    let (mut client, _) = connect(&server.target, raw_client(Some(&foreign)));
    let error = check(&mut client).await.unwrap_err();
    assert!(error.contains("CertificateUnknown"), "client saw: {error}");
    assert!(
        server_logged(
            &log,
            "the peer spiffe://other.demo/client/c1 is of trust domain other.demo, but only nsm-rs.demo is trusted"
        )
        .await
    );

    // A client wholly of other.demo refuses our server first, and says why.
    let (mut client, server_peer) = connect(
        &server.target,
        client_config(&workload(&theirs, "/client/c2")),
    );
    let error = check(&mut client).await.unwrap_err();
    assert!(
        error.contains("the peer spiffe://nsm-rs.demo/node/n1 is of trust domain nsm-rs.demo, but only other.demo is trusted"),
        "client saw: {error}"
    );
    assert!(server_peer.current().is_none());
    assert!(server.callers.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_expired_client_certificate_is_refused_as_expired() {
    let log = captured_log();
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let server = serve(&workload(&ca, "/node/n1"), Transport::Unix).await;
    let id = SpiffeId::parse("spiffe://nsm-rs.demo/client/old").unwrap();
    let now = SystemTime::now();
    let expired = ca
        .issue_valid_between(&id, now - 2 * HOUR, now - HOUR)
        .unwrap();
    let (mut client, _) = connect(&server.target, raw_client(Some(&expired)));
    let error = check(&mut client).await.unwrap_err();
    assert!(error.contains("CertificateExpired"), "client saw: {error}");
    assert!(server_logged(&log, "certificate expired").await);
}

#[tokio::test]
async fn a_plaintext_client_is_refused_on_unix_and_tcp() {
    let log = captured_log();
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let node = workload(&ca, "/node/n1");
    for transport in TRANSPORTS {
        let server = serve(&node, transport).await;
        let target = server.target.clone();
        let plaintext = tower::service_fn(move |_: tonic::transport::Uri| {
            let target = target.clone();
            async move {
                let socket = match target {
                    DialTarget::Unix(path) => nsm_identity::DialedStream::Unix(
                        tokio::net::UnixStream::connect(path).await?,
                    ),
                    DialTarget::Tcp(address) => nsm_identity::DialedStream::Tcp(
                        tokio::net::TcpStream::connect(address).await?,
                    ),
                };
                Ok::<_, std::io::Error>(hyper_util::rt::TokioIo::new(socket))
            }
        });
        let channel =
            Endpoint::from_static("http://nsm.invalid").connect_with_connector_lazy(plaintext);
        let error = check(&mut HealthClient::new(channel)).await.unwrap_err();
        assert!(
            error.contains("requires mutual TLS with a SPIFFE X.509-SVID"),
            "{transport:?} plaintext client saw: {error}"
        );
        assert!(
            server_logged(&log, "the peer does not speak TLS").await,
            "{transport:?}"
        );
    }
}

#[tokio::test]
async fn a_rotated_server_svid_serves_new_connections_and_old_ones_keep_working() {
    let ca = ThrowAwayTrustDomain::new("nsm-rs.demo").unwrap();
    let node = workload(&ca, "/node/n1");
    let client_identity = workload(&ca, "/client/c1");
    let server = serve(&node, Transport::Unix).await;

    let (mut old_client, old_peer) = connect(&server.target, client_config(&client_identity));
    assert_eq!(check(&mut old_client).await, Ok(ServingStatus::Serving));
    let old_key = old_peer.current().unwrap().public_key.clone();

    let rotated = issue(&ca, "/node/n1");
    node.replace(rotated.svid().unwrap(), ca.bundle().unwrap())
        .unwrap();
    let new_key = node.current().svid.identity().public_key.clone();
    assert_ne!(old_key, new_key);

    let (mut new_client, new_peer) = connect(&server.target, client_config(&client_identity));
    assert_eq!(check(&mut new_client).await, Ok(ServingStatus::Serving));
    assert_eq!(new_peer.current().unwrap().public_key, new_key);

    // The old channel still works, on its old connection (had it reconnected, its
    // ServerPeer would now hold the new key).
    assert_eq!(check(&mut old_client).await, Ok(ServingStatus::Serving));
    assert_eq!(old_peer.current().unwrap().public_key, old_key);
}
