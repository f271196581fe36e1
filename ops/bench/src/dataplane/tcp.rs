//! One TCP connection's throughput between two namespaces, measured the way iperf3 does:
//! a sender writes [`BUFFER`]-byte blocks as fast as the socket takes them, a receiver
//! reads into a buffer of the same size and counts; the rate is what the receiver saw
//! between the end of the warm-up and EOF.
//!
//! A socket belongs to the namespace of the thread that made it, so the listener is made
//! on a thread in the endpoint's namespace and the sender's socket on one in the client's
//! ([`Netns::run`]); both then work from any thread. The listener exists before the sender
//! starts, and every wait is bounded, so a broken path fails the bench instead of hanging it.

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::time::Duration;

use anyhow::Context;
use nsm_dataplane::kernel::netns::Netns;
use tokio::time::Instant;

/// iperf3's default block for TCP.
const BUFFER: usize = 256 * 1024;
/// How long to wait for the connection, per attempt.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(2);
const CONNECT_ATTEMPTS: u32 = 3;
/// A read or write blocked this long means the path is broken.
const STALL_TIMEOUT: Duration = Duration::from_secs(10);

/// How long the sender sends: `warmup` uncounted, then `measured`.
#[derive(Debug, Clone, Copy)]
pub(super) struct Window {
    pub(super) warmup: Duration,
    pub(super) measured: Duration,
}

/// Gbit/s of one connection from a thread in `client` to `to`, listened on in `endpoint`.
pub(super) async fn gbps(
    client: &Netns,
    endpoint: &Netns,
    to: SocketAddr,
    window: Window,
) -> anyhow::Result<f64> {
    let listener = endpoint
        .run(move || TcpListener::bind(to))
        .await?
        .with_context(|| format!("cannot listen on {to} in {}", endpoint.url()))?;
    listener.set_nonblocking(true)?;
    let listener = tokio::net::TcpListener::from_std(listener)?;
    let receiver = async {
        let waited = CONNECT_TIMEOUT * (CONNECT_ATTEMPTS + 1);
        let (stream, _) = tokio::time::timeout(waited, listener.accept())
            .await
            .with_context(|| format!("nothing connected to {to} within {waited:?}"))??;
        let stream = stream.into_std()?;
        stream.set_nonblocking(false)?;
        stream.set_read_timeout(Some(STALL_TIMEOUT))?;
        let received = tokio::task::spawn_blocking(move || receive(stream, window.warmup));
        anyhow::Ok(received.await??)
    };
    let sender = async {
        let sent = client.run(move || send(to, window)).await?;
        sent.with_context(|| format!("sending to {to} from {}", client.url()))
    };
    let (received, sent) = tokio::join!(receiver, sender);
    sent?;
    let (bytes, elapsed) = received.with_context(|| format!("receiving on {to}"))?;
    Ok(bytes as f64 * 8.0 / elapsed.as_secs_f64() / 1e9)
}

/// Connects, sends for the whole window, then closes its side.
fn send(to: SocketAddr, window: Window) -> std::io::Result<()> {
    let mut stream = connect(to)?;
    stream.set_write_timeout(Some(STALL_TIMEOUT))?;
    let block = vec![0x5a_u8; BUFFER];
    let total = window.warmup + window.measured;
    let began = Instant::now();
    while began.elapsed() < total {
        stream.write_all(&block)?;
    }
    stream.shutdown(Shutdown::Write)
}

/// A connection to `to`, tried a few times: a path just made may drop the first SYN.
fn connect(to: SocketAddr) -> std::io::Result<TcpStream> {
    let mut attempt = 1;
    loop {
        match TcpStream::connect_timeout(&to, CONNECT_TIMEOUT) {
            Ok(stream) => return Ok(stream),
            Err(e) if attempt < CONNECT_ATTEMPTS && e.kind() == ErrorKind::TimedOut => {
                attempt += 1;
            }
            Err(e) => return Err(e),
        }
    }
}

/// Reads until EOF; returns the bytes read after `warmup` from the first byte, and the time
/// they took.
fn receive(mut stream: TcpStream, warmup: Duration) -> std::io::Result<(u64, Duration)> {
    let mut buffer = vec![0_u8; BUFFER];
    let mut first: Option<Instant> = None;
    let mut start: Option<Instant> = None;
    let mut counted = 0_u64;
    loop {
        let read = match stream.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => read as u64,
            Err(e) if e.kind() == ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        };
        if start.is_some() {
            counted += read;
            continue;
        }
        // The read that ends the warm-up starts the window; its bytes came before it.
        let now = Instant::now();
        if now.duration_since(*first.get_or_insert(now)) >= warmup {
            start = Some(now);
        }
    }
    let ended = Instant::now();
    let start = start
        .ok_or_else(|| std::io::Error::other("the connection ended before the warm-up was over"))?;
    Ok((counted, ended.duration_since(start)))
}
