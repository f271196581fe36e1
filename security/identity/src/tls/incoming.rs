//! The server side for tonic: accepted sockets in, TLS connections that know their peer's
//! SPIFFE ID out (`Server::serve_with_incoming(TlsIncoming::new(..))`).
//!
//! A plaintext HTTP/2 client is answered with a GOAWAY naming the cause (`plaintext`).
//! Each handshake runs in a task of its own, bounded by a timeout, so a slow or silent
//! client holds up nobody. A failed handshake is logged at DEBUG with its cause and the
//! socket dropped; the stream goes on. The stream ends when the accepted-socket stream
//! ends (after the handshakes under way), or when tonic drops it.

use std::convert::Infallible;
use std::io;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use rustls::ServerConfig;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::sync::mpsc;
use tokio_rustls::TlsAcceptor;
use tokio_rustls::server::TlsStream;
use tokio_stream::{Stream, StreamExt};

use super::plaintext::{self, Opening, Rewind};
use crate::svid::PeerIdentity;

/// How long a client has to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Completed handshakes waiting for tonic to take them.
const READY_CONNECTIONS: usize = 64;

/// What tonic puts into each request's extensions for a connection from [`TlsIncoming`]:
/// the caller's identity from its certificate.
#[derive(Debug, Clone)]
pub struct PeerConnectInfo {
    identity: Arc<PeerIdentity>,
}

impl PeerConnectInfo {
    /// The caller's SPIFFE ID, certificate expiry and public key.
    pub fn identity(&self) -> &PeerIdentity {
        &self.identity
    }
}

/// The caller's identity, read by a handler from its request (None when the server was
/// not served over [`TlsIncoming`]).
pub fn caller_identity<T>(request: &tonic::Request<T>) -> Option<&PeerIdentity> {
    request
        .extensions()
        .get::<PeerConnectInfo>()
        .map(PeerConnectInfo::identity)
}

/// An accepted, handshaken connection and its verified peer.
#[derive(Debug)]
pub struct TlsConnection<IO> {
    stream: TlsStream<Rewind<IO>>,
    peer: PeerConnectInfo,
}

impl<IO> TlsConnection<IO> {
    /// The verified peer.
    pub fn peer(&self) -> &PeerIdentity {
        self.peer.identity()
    }
}

impl<IO> tonic::transport::server::Connected for TlsConnection<IO> {
    type ConnectInfo = PeerConnectInfo;

    fn connect_info(&self) -> PeerConnectInfo {
        self.peer.clone()
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncRead for TlsConnection<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_read(cx, buf)
    }
}

impl<IO: AsyncRead + AsyncWrite + Unpin> AsyncWrite for TlsConnection<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.stream).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.stream).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.stream.is_write_vectored()
    }
}

/// A stream of TLS connections made from a stream of accepted sockets (unix or tcp).
/// Never yields an error: failed handshakes are logged and dropped.
#[derive(Debug)]
pub struct TlsIncoming<IO> {
    ready: mpsc::Receiver<TlsConnection<IO>>,
}

impl<IO> TlsIncoming<IO>
where
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    /// Starts handshaking every socket `accepted` yields, with `config` (see
    /// [`super::server_config`]). Must be called inside a tokio runtime.
    pub fn new<S, E>(accepted: S, config: Arc<ServerConfig>) -> Self
    where
        S: Stream<Item = Result<IO, E>> + Send + 'static,
        E: std::fmt::Display + Send + 'static,
    {
        let (ready_tx, ready) = mpsc::channel(READY_CONNECTIONS);
        tokio::spawn(accept_loop(accepted, TlsAcceptor::from(config), ready_tx));
        Self { ready }
    }
}

impl<IO> Stream for TlsIncoming<IO> {
    type Item = Result<TlsConnection<IO>, Infallible>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        self.ready.poll_recv(cx).map(|next| next.map(Ok))
    }
}

async fn accept_loop<S, IO, E>(
    accepted: S,
    acceptor: TlsAcceptor,
    ready: mpsc::Sender<TlsConnection<IO>>,
) where
    S: Stream<Item = Result<IO, E>> + Send + 'static,
    IO: AsyncRead + AsyncWrite + Unpin + Send + 'static,
    E: std::fmt::Display,
{
    let mut accepted = std::pin::pin!(accepted);
    loop {
        let next = tokio::select! {
            () = ready.closed() => return, // tonic stopped serving
            next = accepted.next() => next,
        };
        match next {
            None => return,
            Some(Err(error)) => {
                tracing::warn!(%error, "accepting a connection failed; still listening")
            }
            Some(Ok(socket)) => {
                tokio::spawn(handshake(socket, acceptor.clone(), ready.clone()));
            }
        }
    }
}

async fn handshake<IO>(socket: IO, acceptor: TlsAcceptor, ready: mpsc::Sender<TlsConnection<IO>>)
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let opened = async {
        match plaintext::sniff(socket).await? {
            Opening::Tls(stream) => acceptor.accept(stream).await.map(Some),
            Opening::PlaintextH2 => Ok(None),
            Opening::Unknown(first) => Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!(
                    "the peer does not speak TLS (its first byte is {first:#04x}, not a TLS handshake record)"
                ),
            )),
        }
    };
    let stream = match tokio::time::timeout(HANDSHAKE_TIMEOUT, opened).await {
        Err(_elapsed) => {
            tracing::debug!(timeout = ?HANDSHAKE_TIMEOUT, "TLS handshake timed out; connection dropped");
            return;
        }
        Ok(Ok(None)) => {
            tracing::debug!(
                cause = "the peer does not speak TLS: a plaintext HTTP/2 client on a mutual-TLS listener",
                "TLS handshake refused; the client was told why in a GOAWAY"
            );
            return;
        }
        Ok(Err(error)) => {
            tracing::debug!(cause = %describe_handshake_error(&error), "TLS handshake refused; connection dropped");
            return;
        }
        Ok(Ok(Some(stream))) => stream,
    };
    let leaf = stream
        .get_ref()
        .1
        .peer_certificates()
        .and_then(|c| c.first());
    // The verifier already required an SVID leaf, so this fails only if that changed.
    let Some(Ok(identity)) = leaf.map(PeerIdentity::from_leaf) else {
        tracing::debug!("TLS peer has no SVID after the handshake; connection dropped");
        return;
    };
    tracing::trace!(peer = %identity.spiffe_id, "TLS connection accepted");
    let connection = TlsConnection {
        stream,
        peer: PeerConnectInfo {
            identity: Arc::new(identity),
        },
    };
    // An error means tonic stopped serving; the connection is dropped with it.
    let _ = ready.send(connection).await;
}

/// A handshake error as an operator reads it: the rustls cause, with the common mistakes
/// spelled out. Used by both sides (the server's log, the client's connect error).
pub(crate) fn describe_handshake_error(error: &io::Error) -> String {
    use rustls::AlertDescription as Alert;
    let rustls_error = error
        .get_ref()
        .and_then(|inner| inner.downcast_ref::<rustls::Error>());
    let hint = match rustls_error {
        Some(rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rejected))) => {
            // rustls prints this variant with `{:?}`; the message itself reads better.
            return format!("invalid peer certificate: {rejected}");
        }
        Some(rustls::Error::InvalidMessage(_)) => {
            "the peer does not speak TLS (a plaintext client on a mutual-TLS listener?)"
        }
        Some(rustls::Error::NoCertificatesPresented) => {
            "the client presented no certificate; mutual TLS with an X.509-SVID is required"
        }
        Some(rustls::Error::AlertReceived(alert)) => match alert {
            Alert::CertificateRequired => {
                "the server requires a client certificate (mutual TLS with an X.509-SVID)"
            }
            Alert::UnknownCA => "the peer does not trust the issuer of our SVID",
            Alert::CertificateExpired => "the peer says our SVID has expired or is not yet valid",
            Alert::CertificateUnknown => {
                "the peer refused our certificate (not an SVID of its trust domain?)"
            }
            _ => return error.to_string(),
        },
        _ => return error.to_string(),
    };
    format!("{hint}: {error}")
}
