//! The client side for tonic: a connector that dials a unix socket or a tcp address, runs
//! the mutual-TLS handshake, and records the server's identity where the caller can read
//! it (the next hop's path token needs the server's SPIFFE ID and certificate expiry).
//!
//! Use with `Endpoint::connect_with_connector_lazy(SpiffeConnector::new(..))`. The
//! endpoint's URI only has to be well-formed (`http://nsm.invalid`): where to dial is the
//! connector's [`DialTarget`], and the scheme stays `http` because TLS happens here, below
//! tonic.

use std::future::Future;
use std::io;
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use hyper_util::rt::TokioIo;
use rustls::ClientConfig;
use rustls_pki_types::ServerName;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::{TcpStream, UnixStream};
use tokio::sync::watch;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use tonic::transport::Uri;

use super::incoming::describe_handshake_error;
use crate::svid::PeerIdentity;

/// The name handed to rustls. SNI is off and the verifier ignores names (SVIDs have none),
/// so it is a placeholder that only has to be a valid DNS name.
const PLACEHOLDER_SERVER_NAME: &str = "spiffe.invalid";

/// Where a [`SpiffeConnector`] dials.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DialTarget {
    /// A unix socket path.
    Unix(PathBuf),
    /// A `host:port` tcp address.
    Tcp(String),
}

/// The identity of the server a channel is connected to, updated on every (re)connection.
/// Cheap to clone; all clones share one slot.
#[derive(Debug, Clone)]
pub struct ServerPeer {
    slot: Arc<watch::Sender<Option<Arc<PeerIdentity>>>>,
}

impl Default for ServerPeer {
    fn default() -> Self {
        Self {
            slot: Arc::new(watch::Sender::new(None)),
        }
    }
}

impl ServerPeer {
    /// The server of the latest successful handshake, if there was one.
    pub fn current(&self) -> Option<Arc<PeerIdentity>> {
        self.slot.borrow().clone()
    }

    /// A receiver that wakes on every new handshake.
    pub fn changes(&self) -> watch::Receiver<Option<Arc<PeerIdentity>>> {
        self.slot.subscribe()
    }
}

/// A `tower::Service<Uri>` for tonic that dials [`DialTarget`] and handshakes with
/// [`super::client_config`].
#[derive(Debug, Clone)]
pub struct SpiffeConnector {
    target: DialTarget,
    config: Arc<ClientConfig>,
    server_peer: ServerPeer,
}

impl SpiffeConnector {
    /// A connector to `target`; each handshake's server identity is recorded in
    /// `server_peer`.
    pub fn new(target: DialTarget, config: Arc<ClientConfig>, server_peer: ServerPeer) -> Self {
        Self {
            target,
            config,
            server_peer,
        }
    }

    async fn connect(self) -> io::Result<TokioIo<TlsStream<DialedStream>>> {
        let socket = match &self.target {
            DialTarget::Unix(path) => DialedStream::Unix(UnixStream::connect(path).await?),
            DialTarget::Tcp(address) => {
                let stream = TcpStream::connect(address).await?;
                stream.set_nodelay(true)?;
                DialedStream::Tcp(stream)
            }
        };
        let name = ServerName::try_from(PLACEHOLDER_SERVER_NAME)
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidInput, e))?;
        let tls = TlsConnector::from(Arc::clone(&self.config));
        let stream = tls.connect(name, socket).await.map_err(|error| {
            let cause = describe_handshake_error(&error);
            io::Error::new(
                error.kind(),
                format!("TLS handshake with {:?} failed: {cause}", self.target),
            )
        })?;
        let leaf = stream
            .get_ref()
            .1
            .peer_certificates()
            .and_then(|c| c.first());
        let identity = leaf
            .map(PeerIdentity::from_leaf)
            .transpose()
            .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?
            .ok_or_else(|| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    "the server presented no certificate",
                )
            })?;
        self.server_peer.slot.send_replace(Some(Arc::new(identity)));
        Ok(TokioIo::new(stream))
    }
}

impl tower::Service<Uri> for SpiffeConnector {
    type Response = TokioIo<TlsStream<DialedStream>>;
    type Error = io::Error;
    type Future = Pin<Box<dyn Future<Output = io::Result<Self::Response>> + Send>>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, _uri: Uri) -> Self::Future {
        Box::pin(self.clone().connect())
    }
}

/// A dialed unix or tcp socket.
#[derive(Debug)]
pub enum DialedStream {
    Unix(UnixStream),
    Tcp(TcpStream),
}

impl AsyncRead for DialedStream {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Unix(s) => Pin::new(s).poll_read(cx, buf),
            Self::Tcp(s) => Pin::new(s).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for DialedStream {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Self::Unix(s) => Pin::new(s).poll_write(cx, buf),
            Self::Tcp(s) => Pin::new(s).poll_write(cx, buf),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Unix(s) => Pin::new(s).poll_flush(cx),
            Self::Tcp(s) => Pin::new(s).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Self::Unix(s) => Pin::new(s).poll_shutdown(cx),
            Self::Tcp(s) => Pin::new(s).poll_shutdown(cx),
        }
    }
}
