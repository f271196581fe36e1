//! Binding a gRPC listener (`unix:///path` or `tcp://host:port`) and serving on it: the
//! node's (`nsm serve`, one per `--listen`) and the sample endpoint's.

use std::future::Future;
use std::os::unix::fs::FileTypeExt as _;
use std::path::{Path, PathBuf};

use anyhow::Context as _;
use nsm_proto::transport::PeerUrl;
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::service::Routes;

/// A bound listener, and the URL peers should dial to reach it.
#[derive(Debug)]
pub(crate) enum Listener {
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
    pub(crate) async fn bind(url: &PeerUrl) -> anyhow::Result<Self> {
        match url {
            PeerUrl::Unix(path) => {
                if let Some(dir) = path.parent() {
                    std::fs::create_dir_all(dir)
                        .with_context(|| format!("cannot create {} for {url}", dir.display()))?;
                }
                remove_stale_socket(path).await?;
                let listener =
                    UnixListener::bind(path).with_context(|| format!("cannot listen on {url}"))?;
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
                .with_context(|| format!("cannot listen on {url}"))?;
                let port = listener.local_addr()?.port();
                let url = PeerUrl::Tcp {
                    host: host.clone(),
                    port,
                };
                Ok(Self::Tcp { listener, url })
            }
        }
    }

    pub(crate) fn url(&self) -> PeerUrl {
        match self {
            Self::Unix { path, .. } => PeerUrl::Unix(path.clone()),
            Self::Tcp { url, .. } => url.clone(),
        }
    }

    /// Serves `routes` until `shutdown` resolves, then removes the socket file (if any).
    pub(crate) async fn serve(
        self,
        routes: Routes,
        shutdown: impl Future<Output = ()> + Send,
    ) -> anyhow::Result<()> {
        let server = tonic::transport::Server::builder().add_routes(routes);
        match self {
            Self::Unix { listener, path } => {
                let served = server
                    .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
                    .await;
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove the socket file");
                }
                served?;
            }
            Self::Tcp { listener, .. } => {
                server
                    .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
                    .await?;
            }
        }
        Ok(())
    }
}

async fn remove_stale_socket(path: &Path) -> anyhow::Result<()> {
    let Ok(metadata) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !metadata.file_type().is_socket() {
        anyhow::bail!(
            "{} exists and is not a socket; not replacing it",
            path.display()
        );
    }
    match UnixStream::connect(path).await {
        Ok(_) => anyhow::bail!(
            "{} is in use: another process answers on it",
            path.display()
        ),
        Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
            tracing::info!(path = %path.display(), "removing a stale socket file");
            std::fs::remove_file(path)
                .with_context(|| format!("cannot remove the stale socket {}", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("cannot check the socket {}", path.display())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_stale_socket_is_replaced_but_a_live_one_is_not() {
        let dir = tempfile::tempdir().unwrap();
        let url = PeerUrl::Unix(dir.path().join("nse.sock"));
        let live = Listener::bind(&url).await.unwrap();
        let error = Listener::bind(&url).await.unwrap_err();
        assert!(error.to_string().contains("in use"), "{error:#}");
        drop(live);
        Listener::bind(&url).await.unwrap();
        let file = dir.path().join("plain");
        std::fs::write(&file, b"x").unwrap();
        assert!(Listener::bind(&PeerUrl::Unix(file)).await.is_err());
    }

    #[tokio::test]
    async fn port_zero_is_replaced_by_the_bound_port() {
        let listener = Listener::bind(&"tcp://127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        assert_ne!(listener.url().socket_addr().unwrap().port(), 0);
    }
}
