//! Telling a plaintext client why it is refused.
//!
//! A gRPC client that forgot TLS sends the HTTP/2 connection preface where the server
//! expects a TLS record. rustls can only fail the handshake, and the client would see a
//! bare "connection closed". So the listener looks at the first byte: a TLS handshake
//! record (0x16) goes on to rustls, with the byte replayed ([`Rewind`]); an HTTP/2 preface
//! is answered in HTTP/2 with a GOAWAY (INADEQUATE_SECURITY) whose debug text names the
//! cause, which h2 clients print ("connection error received: security properties do not
//! meet minimum requirements (b\"...requires mutual TLS...\")").

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, ReadBuf};

/// The first byte of every TLS record that starts a handshake (content type handshake).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;
/// The HTTP/2 client connection preface (RFC 9113 §3.4).
const H2_PREFACE: &[u8] = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
/// HTTP/2 error code INADEQUATE_SECURITY.
const INADEQUATE_SECURITY: u32 = 0xc;
/// The text the plaintext client reads in the GOAWAY.
const REFUSAL: &str = "nsm: this listener requires mutual TLS with a SPIFFE X.509-SVID; \
                       the client spoke plaintext HTTP/2";
/// How long we keep reading (and discarding) after the GOAWAY, so that closing does not
/// reset the connection before the client has read it.
const LINGER: Duration = Duration::from_secs(1);

/// What the first bytes of a connection say it is.
pub(super) enum Opening<IO> {
    /// A TLS handshake: hand the stream to rustls.
    Tls(Rewind<IO>),
    /// Plaintext HTTP/2: the client has been told; nothing more to do.
    PlaintextH2,
    /// Neither: drop it. The byte is kept for the log.
    Unknown(u8),
}

/// Reads the first byte of `socket` and sorts the connection by it.
pub(super) async fn sniff<IO>(mut socket: IO) -> io::Result<Opening<IO>>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let first = socket.read_u8().await?;
    if first == TLS_HANDSHAKE_RECORD {
        return Ok(Opening::Tls(Rewind {
            first: Some(first),
            inner: socket,
        }));
    }
    if first != H2_PREFACE[0] {
        return Ok(Opening::Unknown(first));
    }
    let mut rest = [0u8; H2_PREFACE.len() - 1];
    socket.read_exact(&mut rest).await?;
    if rest != H2_PREFACE[1..] {
        return Ok(Opening::Unknown(first));
    }
    refuse_h2(socket).await?;
    Ok(Opening::PlaintextH2)
}

async fn refuse_h2<IO>(mut socket: IO) -> io::Result<()>
where
    IO: AsyncRead + AsyncWrite + Unpin,
{
    let mut frames = Vec::with_capacity(32 + REFUSAL.len());
    // An empty SETTINGS frame: the server's part of the preface, which h2 waits for.
    frames.extend_from_slice(&frame_header(0, 0x4));
    // GOAWAY: last stream 0, INADEQUATE_SECURITY, and the reason as debug data.
    frames.extend_from_slice(&frame_header(8 + REFUSAL.len(), 0x7));
    frames.extend_from_slice(&0u32.to_be_bytes());
    frames.extend_from_slice(&INADEQUATE_SECURITY.to_be_bytes());
    frames.extend_from_slice(REFUSAL.as_bytes());
    socket.write_all(&frames).await?;
    socket.shutdown().await?;
    let mut discard = [0u8; 4096];
    let drain = async {
        while socket.read(&mut discard).await? > 0 {}
        Ok::<_, io::Error>(())
    };
    // Whether the client closed within the linger time or not, we are done with it.
    let _ = tokio::time::timeout(LINGER, drain).await;
    Ok(())
}

/// A frame header for stream 0 without flags (RFC 9113 §4.1).
fn frame_header(length: usize, frame_type: u8) -> [u8; 9] {
    let length = (length as u32).to_be_bytes();
    [length[1], length[2], length[3], frame_type, 0, 0, 0, 0, 0]
}

/// A stream that yields the one byte already read before the rest of `inner`.
#[derive(Debug)]
pub(super) struct Rewind<IO> {
    first: Option<u8>,
    inner: IO,
}

impl<IO: AsyncRead + Unpin> AsyncRead for Rewind<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        if buf.remaining() > 0
            && let Some(first) = self.first.take()
        {
            buf.put_slice(&[first]);
            return Poll::Ready(Ok(()));
        }
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for Rewind<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }

    fn poll_write_vectored(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        Pin::new(&mut self.inner).poll_write_vectored(cx, bufs)
    }

    fn is_write_vectored(&self) -> bool {
        self.inner.is_write_vectored()
    }
}
