//! Binding the node's listeners and serving the same gRPC routes on each of them.

use std::path::Path;

use anyhow::{Context, bail};
use futures::future::BoxFuture;
use nsm_proto::transport::PeerUrl;
use tokio::net::{TcpListener, UnixListener, UnixStream};
use tokio_stream::wrappers::{TcpListenerStream, UnixListenerStream};
use tonic::service::Routes;
use tonic::transport::Server;

/// A bound listener, ready to serve.
#[derive(Debug)]
pub(crate) enum Bound {
    Unix(UnixListener, std::path::PathBuf),
    Tcp(TcpListener),
}

impl Bound {
    /// What to tell the operator (with the real port when `:0` was asked).
    pub(crate) fn describe(&self) -> String {
        match self {
            Bound::Unix(_, path) => format!("unix://{}", path.display()),
            Bound::Tcp(listener) => listener
                .local_addr()
                .map_or_else(|_| "tcp://?".into(), |a| format!("tcp://{a}")),
        }
    }

    /// Serves `routes` until `shutdown` resolves.
    pub(crate) fn serve(
        self,
        routes: Routes,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> BoxFuture<'static, Result<(), tonic::transport::Error>> {
        let server = Server::builder().add_routes(routes);
        match self {
            Bound::Unix(listener, _) => Box::pin(
                server.serve_with_incoming_shutdown(UnixListenerStream::new(listener), shutdown),
            ),
            Bound::Tcp(listener) => Box::pin(
                server.serve_with_incoming_shutdown(TcpListenerStream::new(listener), shutdown),
            ),
        }
    }
}

/// Binds one address. A unix socket's directory is created if missing; a socket file left
/// by a process that died is replaced, one that still answers is refused.
pub(crate) async fn bind(url: &PeerUrl) -> anyhow::Result<Bound> {
    match url {
        PeerUrl::Tcp { host, port } => {
            let host = host.trim_start_matches('[').trim_end_matches(']');
            let listener = TcpListener::bind((host, *port))
                .await
                .with_context(|| format!("cannot listen on {url}"))?;
            Ok(Bound::Tcp(listener))
        }
        PeerUrl::Unix(path) => {
            if let Some(dir) = path.parent() {
                std::fs::create_dir_all(dir)
                    .with_context(|| format!("cannot create {} for {url}", dir.display()))?;
            }
            remove_stale_socket(path, url).await?;
            let listener =
                UnixListener::bind(path).with_context(|| format!("cannot listen on {url}"))?;
            Ok(Bound::Unix(listener, path.clone()))
        }
    }
}

async fn remove_stale_socket(path: &Path, url: &PeerUrl) -> anyhow::Result<()> {
    use std::os::unix::fs::FileTypeExt;
    let Ok(meta) = std::fs::symlink_metadata(path) else {
        return Ok(());
    };
    if !meta.file_type().is_socket() {
        bail!(
            "cannot listen on {url}: {} exists and is not a socket",
            path.display()
        );
    }
    if UnixStream::connect(path).await.is_ok() {
        bail!("cannot listen on {url}: another process is serving on it");
    }
    std::fs::remove_file(path)
        .with_context(|| format!("cannot remove the stale socket {}", path.display()))
}
