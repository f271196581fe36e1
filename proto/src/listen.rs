//! Binding a gRPC listener (`unix:///path` or `tcp://host:port`) and serving on it: the
//! node's (`nsm serve`, one per `--listen`) and the sample endpoint's, in plaintext or with
//! mutual TLS ([`ServerSecurity`]) on either kind of socket.
//!
//! A cause is in each error's message once (not also its `source()`), so it prints once
//! whichever way it is printed.

use std::future::Future;
use std::os::unix::fs::FileTypeExt as _;
use std::path::{Path, PathBuf};

use crate::transport::{PeerUrl, ServerSecurity};
use nsm_identity::TlsIncoming;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio_stream::Stream;
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::service::Routes;
use tonic::transport::server::{Connected, Router};

/// Why a listener could not be bound or stopped serving. Each names the address.
#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    /// The socket's directory cannot be made: fix the path or its permissions.
    #[error("cannot create {dir} for {url}: {cause}")]
    Directory {
        dir: PathBuf,
        url: PeerUrl,
        cause: std::io::Error,
    },
    /// The address cannot be bound (in use by another program, no permission, no such host).
    #[error("cannot listen on {url}: {cause}")]
    Bind { url: PeerUrl, cause: std::io::Error },
    /// A file that is not a socket is where the socket should go; it is left alone.
    #[error("{} exists and is not a socket; not replacing it", .0.display())]
    NotASocket(PathBuf),
    /// A live process answers on the socket: another node or endpoint uses this address.
    #[error("{} is in use: another process answers on it", .0.display())]
    InUse(PathBuf),
    /// A stale socket file could not be checked or removed.
    #[error("cannot {what} {}: {cause}", .path.display())]
    Stale {
        what: &'static str,
        path: PathBuf,
        cause: std::io::Error,
    },
    /// The server stopped with a transport error.
    #[error("serving gRPC failed: {0}")]
    Serve(tonic::transport::Error),
}

/// A bound listener, and the URL peers should dial to reach it.
#[derive(Debug)]
pub enum Listener {
    Unix {
        listener: UnixListener,
        path: PathBuf,
    },
    Tcp {
        listener: TcpListener,
        url: PeerUrl,
    },
}

impl Listener {
    /// Binds `url`. A unix socket file left by a dead process is removed first; one that a
    /// live process answers on is not. `tcp://host:0` binds a free port, and [`Self::url`]
    /// names it.
    pub async fn bind(url: &PeerUrl) -> Result<Self, ListenError> {
        let cannot_bind = |cause| ListenError::Bind {
            url: url.clone(),
            cause,
        };
        match url {
            PeerUrl::Unix(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir).map_err(|cause| ListenError::Directory {
                        dir: dir.to_owned(),
                        url: url.clone(),
                        cause,
                    })?;
                }
                remove_stale_socket(path).await?;
                let listener = UnixListener::bind(path).map_err(cannot_bind)?;
                Ok(Self::Unix {
                    listener,
                    path: path.clone(),
                })
            }
            PeerUrl::Tcp { host, port } => {
                let listener = match url.socket_addr() {
                    Some(addr) => TcpListener::bind(addr).await,
                    None => TcpListener::bind((host.as_str(), *port)).await,
                }
                .map_err(cannot_bind)?;
                let port = listener.local_addr().map_err(cannot_bind)?.port();
                let url = PeerUrl::Tcp {
                    host: host.clone(),
                    port,
                };
                Ok(Self::Tcp { listener, url })
            }
        }
    }

    pub fn url(&self) -> PeerUrl {
        match self {
            Self::Unix { path, .. } => PeerUrl::Unix(path.clone()),
            Self::Tcp { url, .. } => url.clone(),
        }
    }

    /// Serves `routes` with `security` until `shutdown` resolves, then removes the socket
    /// file (if any).
    pub async fn serve(
        self,
        routes: Routes,
        security: &ServerSecurity,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ListenError> {
        let router = tonic::transport::Server::builder().add_routes(routes);
        match self {
            Self::Unix { listener, path } => {
                let accepted = UnixListenerStream::new(listener);
                let served = serve_accepted(router, accepted, security, shutdown).await;
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove the socket file");
                }
                served.map_err(ListenError::Serve)?;
            }
            Self::Tcp { listener, .. } => {
                let accepted = TcpListenerStream::new(listener);
                serve_accepted(router, accepted, security, shutdown)
                    .await
                    .map_err(ListenError::Serve)?;
            }
        }
        Ok(())
    }
}

/// Serves the sockets `accepted` yields as they are, or handshaken with mutual TLS.
async fn serve_accepted<S, IO>(
    router: Router,
    accepted: S,
    security: &ServerSecurity,
    shutdown: impl Future<Output = ()> + Send,
) -> Result<(), tonic::transport::Error>
where
    S: Stream<Item = std::io::Result<IO>> + Send + 'static,
    IO: AsyncRead + AsyncWrite + Connected + Unpin + Send + 'static,
    IO::ConnectInfo: Clone + Send + Sync + 'static,
{
    match security {
        ServerSecurity::Plaintext => {
            router
                .serve_with_incoming_shutdown(accepted, shutdown)
                .await
        }
        ServerSecurity::Mtls(config) => {
            let handshaken = TlsIncoming::new(accepted, std::sync::Arc::clone(config));
            router
                .serve_with_incoming_shutdown(handshaken, shutdown)
                .await
        }
    }
}

async fn remove_stale_socket(path: &Path) -> Result<(), ListenError> {
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !metadata.file_type().is_socket() {
        return Err(ListenError::NotASocket(path.to_owned()));
    }
    match UnixStream::connect(path).await {
        Ok(_) => Err(ListenError::InUse(path.to_owned())),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing a stale socket file");
            std::fs::remove_file(path).map_err(|cause| ListenError::Stale {
                what: "remove the stale socket",
                path: path.to_owned(),
                cause,
            })
        }
        Err(cause) => Err(ListenError::Stale {
            what: "check the socket",
            path: path.to_owned(),
            cause,
        }),
    }
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use nsm_identity::{Identity, SpiffeId, ThrowAwayTrustDomain};
    use tonic_health::pb::HealthCheckRequest;
    use tonic_health::pb::health_client::HealthClient;

    use super::*;
    use crate::transport::Security;

    #[tokio::test]
    async fn a_stale_socket_is_replaced_but_a_live_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let url = PeerUrl::Unix(dir.path().join("nse.sock"));
        let live = Listener::bind(&url).await.unwrap();
        let error = Listener::bind(&url).await.unwrap_err();
        assert!(error.to_string().contains("in use"), "{error}");
        drop(live);
        Listener::bind(&url).await.unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        assert!(Listener::bind(&PeerUrl::Unix(file)).await.is_err());
    }

    /// An identity of `trust_domain`'s throw-away CA for `path`.
    fn identity(ca: &ThrowAwayTrustDomain, path: &str) -> Identity {
        let id = SpiffeId::from_parts(ca.trust_domain(), path).unwrap();
        let issued = ca.issue(&id, Duration::from_secs(600)).unwrap();
        Identity::new(issued.svid().unwrap(), issued.bundle().unwrap()).unwrap()
    }

    /// Serves gRPC health at `url` with `security`; health's own check is the call.
    async fn serve_health(url: &PeerUrl, security: ServerSecurity) -> PeerUrl {
        let listener = Listener::bind(url).await.unwrap();
        let url = listener.url();
        let (_, health) = tonic_health::server::health_reporter();
        tokio::spawn(async move {
            listener
                .serve(Routes::new(health), &security, std::future::pending())
                .await
        });
        url
    }

    async fn check(channel: tonic::transport::Channel) -> Result<(), tonic::Status> {
        let mut client = HealthClient::new(channel);
        let asked = HealthCheckRequest {
            service: String::new(),
        };
        client.check(asked).await.map(|_| ())
    }

    /// The status and every cause under it, as one line.
    fn chain(status: &tonic::Status) -> String {
        let mut text = status.to_string();
        let mut cause = std::error::Error::source(status);
        while let Some(error) = cause {
            text.push_str(&format!(": {error}"));
            cause = error.source();
        }
        text
    }

    #[tokio::test]
    async fn mutual_tls_serves_on_unix_and_tcp_and_names_the_server() {
        let ca = ThrowAwayTrustDomain::new("nsm-rs.test").unwrap();
        let server = Security::mtls(identity(&ca, "/node/a"));
        let client = Security::mtls(identity(&ca, "/client/c"));
        let dir = tempfile::tempdir().unwrap();
        for url in [
            PeerUrl::Unix(dir.path().join("nsm.sock")),
            "tcp://127.0.0.1:0".parse().unwrap(),
        ] {
            let url = serve_health(&url, server.server()).await;
            let security = client.client();
            let channel = url.channel_with(Duration::from_secs(2), &security);
            check(channel).await.unwrap();
            let peer = security.server_peer().unwrap().current().unwrap();
            assert_eq!(peer.spiffe_id.as_str(), "spiffe://nsm-rs.test/node/a");
        }
    }

    #[tokio::test]
    async fn a_plaintext_client_of_a_tls_listener_is_told_it_needs_mutual_tls() {
        let ca = ThrowAwayTrustDomain::new("nsm-rs.test").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = PeerUrl::Unix(dir.path().join("nsm.sock"));
        let url = serve_health(&url, Security::mtls(identity(&ca, "/node/a")).server()).await;
        let refused = check(url.channel(Duration::from_secs(2)))
            .await
            .unwrap_err();
        assert!(
            chain(&refused).contains("requires mutual TLS"),
            "{}",
            chain(&refused)
        );
    }

    #[tokio::test]
    async fn a_client_of_another_trust_domain_is_refused_naming_it() {
        let ours = ThrowAwayTrustDomain::new("nsm-rs.test").unwrap();
        let theirs = ThrowAwayTrustDomain::new("elsewhere.test").unwrap();
        let dir = tempfile::tempdir().unwrap();
        let url = PeerUrl::Unix(dir.path().join("nsm.sock"));
        let url = serve_health(&url, Security::mtls(identity(&ours, "/node/a")).server()).await;
        let stranger = Security::mtls(identity(&theirs, "/client/c")).client();
        let refused = check(url.channel_with(Duration::from_secs(2), &stranger))
            .await
            .unwrap_err();
        let text = chain(&refused);
        assert!(
            text.contains("nsm-rs.test") && text.contains("elsewhere.test"),
            "{text}"
        );
    }

    #[tokio::test]
    async fn port_zero_is_replaced_by_the_bound_port() {
        let listener = Listener::bind(&"tcp://127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        assert_ne!(listener.url().socket_addr().unwrap().port(), 0);
    }
}
