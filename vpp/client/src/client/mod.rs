//! A connection to VPP's API socket: the `sockclnt_create` handshake, VPP's message table
//! with a CRC check of every message this crate knows, then requests, dumps and events,
//! many in flight at once on one socket.
//!
//! One reader task per connection routes what VPP sends: a message with a context goes to
//! the request or dump waiting for that context; an event goes to its subscribers. It reads
//! through a buffer, so a burst of replies costs one read, not two per message. Writes are
//! whole frames, queued in an outbox and written by whoever holds the socket's write lock:
//! requests made while a write is under way go out together in the next one. Concurrent
//! callers never interleave bytes, and VPP, which handles every complete message one read
//! brings, wakes once per batch rather than once per request. Every call has a timeout,
//! because VPP answers some mistakes with silence (an unknown id, a wrong client index, a
//! short message).
//!
//! When the socket closes (VPP stopped or restarted) every waiting call fails with
//! [`Error::Closed`], event streams end, and [`Client::closed`] resolves; the caller
//! connects again. The client never reconnects by itself: after a VPP restart every id
//! and every `sw_if_index` it knew is void, and only the caller knows what to redo.

mod error;
mod events;
mod reader;
mod table;

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::net::UnixStream;
use tokio::net::unix::OwnedWriteHalf;
use tokio::sync::{broadcast, oneshot, watch};

pub use error::{CrcMismatch, Error};
pub use events::EventStream;

use crate::api::{
    ControlPing, ControlPingReply, SockclntCreate, SockclntCreateReply, SockclntDelete,
    SockclntDeleteReply,
};
use crate::codec::FixedString;
use crate::frame;
use crate::message::{self, Dump, Event, Header, Message, Request};
use reader::Waiter;
use table::MessageTable;

/// Events kept for subscribers that have not read them yet. Making 1,000 vWires sends a few
/// thousand interface events in seconds; a slower subscriber misses the oldest
/// ([`Error::EventsMissed`]). The slots keep their last event until overwritten, so this
/// is also what an idle connection holds: a few hundred KiB at most.
const EVENTS_BUFFERED: usize = 8192;

/// memclnt's ids are the only static ones in every VPP build.
const SOCKCLNT_CREATE_ID: u16 = 15;
const SOCKCLNT_CREATE_REPLY_ID: u16 = 16;

/// How to reach VPP.
#[derive(Debug, Clone)]
pub struct Config {
    /// VPP's API socket (`socksvr { socket-name ... }`).
    pub socket: PathBuf,
    /// The name VPP shows for this client (`vppctl show api clients`); at most 63 bytes.
    pub name: String,
    /// How long one request (or a whole dump) may take.
    pub request_timeout: Duration,
}

impl Config {
    pub const DEFAULT_SOCKET: &'static str = "/run/vpp/api.sock";

    pub fn new(socket: impl Into<PathBuf>) -> Self {
        Self {
            socket: socket.into(),
            name: "nsm-vpp".to_owned(),
            request_timeout: Duration::from_secs(5),
        }
    }
}

/// A connected API client; cheap to clone, every clone shares the one connection.
#[derive(Debug, Clone)]
pub struct Client {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    config: Config,
    client_index: u32,
    /// The process at the other end of the socket, as the kernel says (`SO_PEERCRED`).
    peer_pid: Option<u32>,
    table: Arc<MessageTable>,
    writer: tokio::sync::Mutex<Writer>,
    /// Frames waiting to be written, in the order their callers queued them.
    outbox: Mutex<Vec<u8>>,
    pending: Arc<Mutex<HashMap<u32, Waiter>>>,
    next_context: AtomicU32,
    events: reader::EventSender,
    /// `Some(reason)` once the connection is gone.
    closed: watch::Receiver<Option<String>>,
    reader: tokio::task::JoinHandle<()>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

impl Client {
    /// Connects, registers as `config.name` and checks this crate's messages against VPP's
    /// table: any message VPP defines with another CRC refuses the connection
    /// ([`Error::CrcMismatch`], listing each with both CRCs).
    pub async fn connect(config: Config) -> Result<Self, Error> {
        let timeout = config.request_timeout;
        let stream = tokio::time::timeout(timeout, UnixStream::connect(&config.socket))
            .await
            .map_err(|_| Error::Timeout {
                message: "connect",
                after: timeout,
            })?
            .map_err(|source| Error::Connect {
                path: config.socket.clone(),
                cause: source,
            })?;
        let peer_pid = stream
            .peer_cred()
            .ok()
            .and_then(|cred| cred.pid())
            .and_then(|pid| u32::try_from(pid).ok());
        let (mut read_half, mut write_half) = stream.into_split();
        let reply = tokio::time::timeout(
            timeout,
            handshake(&config.name, &mut read_half, &mut write_half),
        )
        .await
        .map_err(|_| Error::Timeout {
            message: SockclntCreate::NAME,
            after: timeout,
        })??;
        let table = MessageTable::new(&reply.message_table);
        if !table.mismatches().is_empty() {
            return Err(Error::CrcMismatch(table.mismatches().to_vec()));
        }
        let table = Arc::new(table);
        let pending = Arc::new(Mutex::new(HashMap::new()));
        let events = Arc::new(Mutex::new(Some(broadcast::channel(EVENTS_BUFFERED).0)));
        let (closed_tx, closed) = watch::channel(None);
        let reader = tokio::spawn(reader::run(
            read_half,
            Arc::clone(&table),
            Arc::clone(&pending),
            Arc::clone(&events),
            closed_tx,
        ));
        tracing::debug!(socket = %config.socket.display(), client_index = reply.index, "connected to VPP");
        Ok(Self {
            inner: Arc::new(Inner {
                config,
                client_index: reply.index,
                peer_pid,
                table,
                writer: tokio::sync::Mutex::new(Writer {
                    socket: write_half,
                    batch: Vec::new(),
                }),
                outbox: Mutex::new(Vec::new()),
                pending,
                next_context: AtomicU32::new(1),
                events,
                closed,
                reader,
            }),
        })
    }

    /// The socket this client is connected to.
    pub fn socket(&self) -> &Path {
        &self.inner.config.socket
    }

    /// VPP's handle for this client (the `client_index` of every request).
    pub fn client_index(&self) -> u32 {
        self.inner.client_index
    }

    /// VPP's process id, when the kernel tells it (a socket on this host): for diagnosing
    /// what VPP ran out of, from `/proc/<pid>`.
    pub fn peer_pid(&self) -> Option<u32> {
        self.inner.peer_pid
    }

    /// Fails with [`Error::Missing`] unless VPP has every one of `messages` (by name), for
    /// callers that want to know at start-up rather than at first use.
    pub fn require(&self, messages: &[&str]) -> Result<(), Error> {
        let missing: Vec<String> = messages
            .iter()
            .filter(|name| self.inner.table.id(name).is_none())
            .map(|name| (*name).to_owned())
            .collect();
        match missing.is_empty() {
            true => Ok(()),
            false => Err(Error::Missing(missing)),
        }
    }

    /// Sends a request and waits for its reply. A negative `retval` is [`Error::Vpp`].
    pub async fn request<R: Request>(&self, request: &R) -> Result<R::Reply, Error> {
        let reply = self.request_unchecked(request).await?;
        match reply.retval() {
            Some(retval) if retval < 0 => Err(Error::Vpp {
                message: R::NAME,
                retval,
                name: crate::retval::name(retval),
            }),
            _ => Ok(reply),
        }
    }

    /// Sends a request and returns its reply whatever its `retval`.
    pub async fn request_unchecked<R: Request>(&self, request: &R) -> Result<R::Reply, Error> {
        let reply_id = self.id_of(R::Reply::NAME)?;
        let (context, rx) = self.register(|tx| Waiter::Reply {
            reply_id,
            reply_name: R::Reply::NAME,
            tx,
        });
        let bytes = self
            .encode(request, context)
            .inspect_err(|_| self.forget(context))?;
        let answer = self
            .wait(context, R::NAME, self.send(context, bytes), rx)
            .await?;
        let bytes = answer.into_iter().next().unwrap_or_default();
        let (_, reply) = message::decode::<R::Reply>(&bytes).map_err(|source| Error::Decode {
            message: R::Reply::NAME,
            cause: source,
        })?;
        Ok(reply)
    }

    /// Sends a dump and collects every details message, up to the `control_ping_reply`
    /// that VPP sends once it has sent them all.
    pub async fn dump<D: Dump>(&self, dump: &D) -> Result<Vec<D::Details>, Error> {
        let details_id = self.id_of(D::Details::NAME)?;
        let end_id = self.id_of(ControlPingReply::NAME)?;
        let (context, rx) = self.register(|tx| Waiter::Dump {
            details_id,
            end_id,
            details_name: D::Details::NAME,
            received: Vec::new(),
            tx,
        });
        let encoded = self.encode(dump, context).and_then(|dump| {
            let ping = self.encode(&ControlPing::default(), context)?;
            Ok([frame::framed(&dump), frame::framed(&ping)].concat())
        });
        let bytes = encoded.inspect_err(|_| self.forget(context))?;
        let frames = self
            .wait(context, D::NAME, self.send_framed(context, bytes), rx)
            .await?;
        frames
            .iter()
            .map(|bytes| {
                message::decode::<D::Details>(bytes)
                    .map(|(_, details)| details)
                    .map_err(|source| Error::Decode {
                        message: D::Details::NAME,
                        cause: source,
                    })
            })
            .collect()
    }

    /// A round trip that does nothing: `control_ping`.
    pub async fn ping(&self) -> Result<ControlPingReply, Error> {
        self.request(&ControlPing::default()).await
    }

    /// Events of type `E` from now on (subscribe with the matching `want_*` request).
    pub fn subscribe<E: Event>(&self) -> Result<EventStream<E>, Error> {
        let id = self.id_of(E::NAME)?;
        let events = self.inner.events.lock().expect("events lock");
        match events.as_ref() {
            Some(sender) => Ok(EventStream::new(id, sender.subscribe())),
            None => Err(Error::Closed {
                reason: "the connection is closed".to_owned(),
            }),
        }
    }

    /// Resolves when the connection is gone, with the reason.
    pub async fn closed(&self) -> String {
        let mut closed = self.inner.closed.clone();
        match closed.wait_for(Option::is_some).await {
            Ok(reason) => reason.clone().unwrap_or_default(),
            Err(_) => "the reader stopped".to_owned(),
        }
    }

    /// Whether the connection is gone.
    pub fn is_closed(&self) -> bool {
        self.inner.closed.borrow().is_some()
    }

    /// Ends the session the polite way (`sockclnt_delete`, which VPP acknowledges with
    /// `response` 1), then closes the socket. Closing without it is also fine for VPP.
    pub async fn disconnect(self) -> Result<(), Error> {
        let delete = SockclntDelete {
            index: self.inner.client_index,
        };
        let reply: SockclntDeleteReply = self.request_unchecked(&delete).await?;
        let _ = self.inner.writer.lock().await.socket.shutdown().await;
        match reply.response {
            1 => Ok(()),
            other => Err(Error::Vpp {
                message: SockclntDelete::NAME,
                retval: other,
                name: crate::retval::name(other),
            }),
        }
    }

    fn id_of(&self, name: &'static str) -> Result<u16, Error> {
        self.inner
            .table
            .id(name)
            .ok_or_else(|| Error::Missing(vec![name.to_owned()]))
    }

    /// A fresh context (never 0, which clients leave to unsolicited messages) and its waiter.
    fn register(
        &self,
        waiter: impl FnOnce(oneshot::Sender<Result<reader::Answer, Error>>) -> Waiter,
    ) -> (u32, oneshot::Receiver<Result<reader::Answer, Error>>) {
        let (tx, rx) = oneshot::channel();
        let mut pending = self.inner.pending.lock().expect("pending lock");
        let context = loop {
            let context = self.inner.next_context.fetch_add(1, Ordering::Relaxed);
            if context != 0 && !pending.contains_key(&context) {
                break context;
            }
        };
        pending.insert(context, waiter(tx));
        (context, rx)
    }

    fn encode<M: Message>(&self, message: &M, context: u32) -> Result<Vec<u8>, Error> {
        let header = Header {
            msg_id: self.id_of(M::NAME)?,
            client_index: self.inner.client_index,
            context,
        };
        message::encode(message, header).map_err(|source| Error::Encode {
            message: M::NAME,
            cause: source,
        })
    }

    async fn send(&self, context: u32, message: Vec<u8>) -> Result<(), Error> {
        self.send_framed(context, frame::framed(&message)).await
    }

    /// Queues `frames` and writes everything queued, unless the writer before us already
    /// took them along. Frames stay whole and in order: the outbox only ever grows by whole
    /// frames, and only the holder of the write lock empties it.
    async fn send_framed(&self, context: u32, frames: Vec<u8>) -> Result<(), Error> {
        if let Some(reason) = self.inner.closed.borrow().clone() {
            return Err(Error::Closed { reason });
        }
        self.inner
            .outbox
            .lock()
            .expect("outbox lock")
            .extend_from_slice(&frames);
        let mut writer = self.inner.writer.lock().await;
        let Writer { socket, batch } = &mut *writer;
        batch.clear();
        // Swapped, not taken: both buffers keep their capacity, so a steady stream of
        // requests allocates nothing here.
        std::mem::swap(batch, &mut *self.inner.outbox.lock().expect("outbox lock"));
        if batch.is_empty() {
            // A writer that held the lock while we queued has sent our frames.
            return Ok(());
        }
        let written = socket.write_all(batch).await;
        written.map_err(|e| {
            self.forget(context);
            Error::Closed {
                reason: format!("writing to VPP's socket failed: {e}"),
            }
        })
    }

    /// Sends, then waits for the answer for at most the request timeout.
    async fn wait(
        &self,
        context: u32,
        message: &'static str,
        send: impl Future<Output = Result<(), Error>>,
        rx: oneshot::Receiver<Result<reader::Answer, Error>>,
    ) -> Result<reader::Answer, Error> {
        let after = self.inner.config.request_timeout;
        let answer = tokio::time::timeout(after, async {
            send.await?;
            rx.await.unwrap_or_else(|_| {
                Err(Error::Closed {
                    reason: "the reader stopped".to_owned(),
                })
            })
        })
        .await;
        match answer {
            Ok(answer) => answer,
            Err(_) => {
                self.forget(context);
                Err(Error::Timeout { message, after })
            }
        }
    }

    fn forget(&self, context: u32) {
        self.inner
            .pending
            .lock()
            .expect("pending lock")
            .remove(&context);
    }
}

/// The socket's write half, and the buffer the outbox is swapped into for one write.
#[derive(Debug)]
struct Writer {
    socket: OwnedWriteHalf,
    batch: Vec<u8>,
}

/// `sockclnt_create` → `sockclnt_create_reply`, before the reader task exists.
async fn handshake(
    name: &str,
    read_half: &mut tokio::net::unix::OwnedReadHalf,
    write_half: &mut OwnedWriteHalf,
) -> Result<SockclntCreateReply, Error> {
    let name = FixedString::new(name)
        .map_err(|e| Error::Handshake(format!("client name {name:?}: {e}")))?;
    const CONTEXT: u32 = 0x6e73_6d00;
    let header = Header {
        msg_id: SOCKCLNT_CREATE_ID,
        client_index: 0,
        context: CONTEXT,
    };
    let request =
        message::encode(&SockclntCreate { name }, header).map_err(|source| Error::Encode {
            message: SockclntCreate::NAME,
            cause: source,
        })?;
    frame::write_frame(write_half, &request)
        .await
        .map_err(|e| Error::Handshake(format!("sending sockclnt_create: {e}")))?;
    loop {
        let bytes = frame::read_frame(read_half)
            .await
            .map_err(|e| Error::Handshake(format!("waiting for sockclnt_create_reply: {e}")))?;
        if message::id_of(&bytes) != Some(SOCKCLNT_CREATE_REPLY_ID) {
            // Nothing else is addressed to a client that has no index yet.
            continue;
        }
        let (header, reply) =
            message::decode::<SockclntCreateReply>(&bytes).map_err(|source| Error::Decode {
                message: SockclntCreateReply::NAME,
                cause: source,
            })?;
        if header.context != CONTEXT {
            continue;
        }
        if reply.response != 0 {
            return Err(Error::Handshake(format!(
                "sockclnt_create_reply response {} ({})",
                reply.response,
                crate::retval::name(reply.response)
            )));
        }
        return Ok(reply);
    }
}
