//! The socket side: the listener (which tests can take down and bring back), and per
//! connection a reader task that handles requests strictly in order and a writer task that
//! sends what the world queued for the connection.
//!
//! The reader handles one frame completely (delay, dispatch, queueing of the reply and the
//! events) before reading the next, which is what makes a `control_ping` after a dump end
//! the dump, and what makes a delayed request hold up the ones behind it. The writer
//! batches: it flushes only when its queue is empty, so pipelined replies leave in few
//! writes. The listener lives in a slot the accept loop polls under a lock, so
//! `stop_listening` closes it synchronously: once it returns, connecting is refused.

use std::io;
use std::path::Path;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::task::{Poll, Waker};

use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::unix::OwnedWriteHalf;
use tokio::net::{UnixListener, UnixStream};
use tokio::sync::{Notify, mpsc};

use nsm_vpp::frame::{self, FrameError};

use super::Shared;
use super::world::{Conn, Flow, Outgoing};

/// Registration handles are socket-pool indices with bit 31 set, as in VPP.
const HANDLE_BIT: u32 = 0x8000_0000;

/// The listener, if listening, and the accept loop's waker.
#[derive(Debug, Default)]
pub(super) struct ListenSlot {
    listener: Option<UnixListener>,
    waker: Option<Waker>,
    shut_down: bool,
}

impl ListenSlot {
    fn wake(&mut self) {
        if let Some(waker) = self.waker.take() {
            waker.wake();
        }
    }

    /// Closes the listener (the socket file stays, so connecting gets ECONNREFUSED).
    pub(super) fn stop(&mut self) {
        self.listener = None;
        self.wake();
    }

    /// Listens on `path` again, removing whatever file is there first.
    pub(super) fn listen(&mut self, path: &Path) -> io::Result<()> {
        if self.shut_down {
            return Err(io::Error::other("the simulator was shut down"));
        }
        self.listener = None;
        self.listener = Some(bind(path)?);
        self.wake();
        Ok(())
    }

    pub(super) fn shut_down(&mut self) {
        self.shut_down = true;
        self.stop();
    }
}

/// A listener on `path`; a stale socket file is removed first. Needs a Tokio runtime context.
pub(super) fn bind(path: &Path) -> io::Result<UnixListener> {
    match std::fs::remove_file(path) {
        Ok(()) => {}
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(error),
    }
    let listener = std::os::unix::net::UnixListener::bind(path)?;
    listener.set_nonblocking(true)?;
    UnixListener::from_std(listener)
}

pub(super) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// Accepts connections until the simulator shuts down, each served by its own tasks.
pub(super) async fn accept_loop(shared: Arc<Shared>) {
    loop {
        let accepted = std::future::poll_fn(|cx| {
            let mut slot = lock(&shared.listen);
            if slot.shut_down {
                return Poll::Ready(None);
            }
            slot.waker = Some(cx.waker().clone());
            match slot
                .listener
                .as_ref()
                .map(|listener| listener.poll_accept(cx))
            {
                Some(Poll::Ready(result)) => Poll::Ready(Some(result)),
                Some(Poll::Pending) | None => Poll::Pending,
            }
        })
        .await;
        match accepted {
            None => return,
            Some(Ok((stream, _))) => {
                let shared = shared.clone();
                tokio::spawn(async move { serve(shared, stream).await });
            }
            Some(Err(error)) => {
                tracing::warn!(%error, "accept failed");
                // Out of descriptors and the like: wait rather than spin.
                tokio::time::sleep(std::time::Duration::from_millis(10)).await;
            }
        }
    }
}

async fn serve(shared: Arc<Shared>, stream: UnixStream) {
    let (tx, rx) = mpsc::unbounded_channel();
    let stop = Arc::new(Notify::new());
    let (handle, generation) = {
        let mut world = lock(&shared.world);
        world.counters.connections += 1;
        let handle = HANDLE_BIT | (world.counters.connections as u32 & !HANDLE_BIT);
        let conn = Conn {
            tx: tx.clone(),
            stop: stop.clone(),
        };
        world.conns.insert(handle, conn);
        (handle, world.generation)
    };
    let (reader, writer) = stream.into_split();
    tokio::spawn(write_loop(writer, rx));
    let mut reader = BufReader::with_capacity(64 * 1024, reader);
    loop {
        let frame = tokio::select! {
            biased;
            _ = stop.notified() => break,
            frame = frame::read_frame(&mut reader) => frame,
        };
        let bytes = match frame {
            Ok(bytes) => bytes,
            Err(FrameError::Empty) => {
                lock(&shared.world).counters.truncated += 1;
                continue;
            }
            Err(FrameError::Closed { .. }) => break,
            Err(error) => {
                tracing::warn!(%error, handle, "unreadable frame: closing the connection");
                break;
            }
        };
        if handle_frame(&shared, handle, generation, &bytes, &stop).await == Flow::Close {
            break;
        }
    }
    // Already forgotten if a restart or a sockclnt_delete closed it; forgetting is idempotent.
    lock(&shared.world).close(handle);
    let _ = tx.send(Outgoing::Close);
}

async fn handle_frame(
    shared: &Shared,
    handle: u32,
    generation: u64,
    bytes: &[u8],
    stop: &Notify,
) -> Flow {
    let delay = {
        let world = lock(&shared.world);
        if world.generation != generation {
            return Flow::Close;
        }
        world
            .name_of(bytes)
            .and_then(|name| world.faults.delay_for(name))
    };
    if let Some(delay) = delay {
        tokio::select! {
            _ = tokio::time::sleep(delay) => {}
            _ = stop.notified() => return Flow::Close,
        }
    }
    let mut world = lock(&shared.world);
    if world.generation != generation {
        return Flow::Close;
    }
    world.process(&shared.config, handle, bytes)
}

async fn write_loop(writer: OwnedWriteHalf, mut rx: mpsc::UnboundedReceiver<Outgoing>) {
    let mut writer = BufWriter::with_capacity(64 * 1024, writer);
    while let Some(first) = rx.recv().await {
        let mut next = Some(first);
        while let Some(outgoing) = next {
            match outgoing {
                Outgoing::Frame(bytes) => {
                    if writer.write_all(&bytes).await.is_err() {
                        return;
                    }
                }
                Outgoing::Close => {
                    let _ = writer.flush().await;
                    let _ = writer.shutdown().await;
                    return;
                }
            }
            next = rx.try_recv().ok();
        }
        if writer.flush().await.is_err() {
            return;
        }
    }
}
