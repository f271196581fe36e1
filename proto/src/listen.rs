//! Binding a gRPC listener (`unix:///path` or `tcp://host:port`) and serving on it: the
//! node's (`nsm serve`, one per `--listen`) and the sample endpoint's.
//!
//! A cause is in each error's message once (not also its `source()`), so it prints once
//! whichever way it is printed.

use std::future::Future;
use std::os::unix::fs::FileTypeExt as _;
use std::path::{Path, PathBuf};

use crate::transport::PeerUrl;
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::service::Routes;

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

    /// Serves `routes` until `shutdown` resolves, then removes the socket file (if any).
    pub async fn serve(
        self,
        routes: Routes,
        shutdown: impl Future<Output = ()> + Send,
    ) -> Result<(), ListenError> {
        let server = tonic::transport::Server::builder().add_routes(routes);
        match self {
            Self::Unix { listener, path } => {
                let served = server
                    .serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown)
                    .await;
                if let Err(e) = std::fs::remove_file(&path) {
                    tracing::warn!(path = %path.display(), error = %e, "cannot remove the socket file");
                }
                served.map_err(ListenError::Serve)?;
            }
            Self::Tcp { listener, .. } => {
                server
                    .serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown)
                    .await
                    .map_err(ListenError::Serve)?;
            }
        }
        Ok(())
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
    use super::*;

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

    #[tokio::test]
    async fn port_zero_is_replaced_by_the_bound_port() {
        let listener = Listener::bind(&"tcp://127.0.0.1:0".parse().unwrap())
            .await
            .unwrap();
        assert_ne!(listener.url().socket_addr().unwrap().port(), 0);
    }
}
