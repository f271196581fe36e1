//! The connection's one reader: reads every frame VPP sends and routes it by context to
//! the waiting request or dump, or by message id to event subscribers. When the socket
//! ends it fails everything still waiting, so no caller waits for an answer that cannot
//! come.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use tokio::io::BufReader;
use tokio::net::unix::OwnedReadHalf;
use tokio::sync::{broadcast, oneshot, watch};

use super::error::Error;
use super::table::MessageTable;
use crate::frame;
use crate::message;

/// What a waiter gets: the reply's bytes (one message), or every details message of a dump.
pub(super) type Answer = Vec<Vec<u8>>;

/// Where events go; taken (so that every stream ends) when the connection closes.
pub(super) type EventSender = Arc<Mutex<Option<broadcast::Sender<Arc<Received>>>>>;

/// A message VPP sent that no request waits for (an event), as received.
#[derive(Debug)]
pub(crate) struct Received {
    pub(crate) id: u16,
    pub(crate) bytes: Vec<u8>,
}

/// Someone waiting for messages with one context.
#[derive(Debug)]
pub(super) enum Waiter {
    Reply {
        reply_id: u16,
        reply_name: &'static str,
        tx: oneshot::Sender<Result<Answer, Error>>,
    },
    Dump {
        details_id: u16,
        end_id: u16,
        details_name: &'static str,
        received: Vec<Vec<u8>>,
        tx: oneshot::Sender<Result<Answer, Error>>,
    },
}

/// What one read may take from the socket: many replies' worth, so that a burst of them
/// (VPP flushes every reply it has made in one write) costs one system call.
const READ_BUFFER: usize = 64 * 1024;

pub(super) async fn run(
    socket: OwnedReadHalf,
    table: Arc<MessageTable>,
    pending: Arc<Mutex<HashMap<u32, Waiter>>>,
    events: EventSender,
    closed: watch::Sender<Option<String>>,
) {
    let mut socket = BufReader::with_capacity(READ_BUFFER, socket);
    let reason = loop {
        let bytes = match frame::read_frame(&mut socket).await {
            Ok(bytes) => bytes,
            Err(e) => break e.to_string(),
        };
        route(bytes, &table, &pending, &events);
    };
    tracing::debug!(%reason, "VPP connection closed");
    events.lock().expect("events lock").take();
    let _ = closed.send(Some(reason.clone()));
    let waiting: Vec<Waiter> = pending
        .lock()
        .expect("pending lock")
        .drain()
        .map(|(_, w)| w)
        .collect();
    for waiter in waiting {
        let error = || Error::Closed {
            reason: reason.clone(),
        };
        match waiter {
            Waiter::Reply { tx, .. } => drop(tx.send(Err(error()))),
            Waiter::Dump { tx, .. } => drop(tx.send(Err(error()))),
        }
    }
}

fn route(
    bytes: Vec<u8>,
    table: &MessageTable,
    pending: &Mutex<HashMap<u32, Waiter>>,
    events: &EventSender,
) {
    let Some(id) = message::id_of(&bytes) else {
        return;
    };
    let Some(info) = table.message(id) else {
        tracing::debug!(id, name = %table.vpp_name(id), "ignoring a message this client does not know");
        return;
    };
    let Some(offset) = info.shape.context_offset() else {
        // No context: an event, for whoever subscribed.
        if let Some(events) = events.lock().expect("events lock").as_ref() {
            let _ = events.send(Arc::new(Received { id, bytes }));
        }
        return;
    };
    let Some(context) = bytes
        .get(offset..offset + 4)
        .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
    else {
        return;
    };
    let mut pending = pending.lock().expect("pending lock");
    let Some(waiter) = pending.remove(&context) else {
        // A late answer to a request that timed out.
        tracing::debug!(id, context, "dropping an answer nobody waits for");
        return;
    };
    match waiter {
        Waiter::Reply {
            reply_id,
            reply_name,
            tx,
        } => {
            let answer = if id == reply_id {
                Ok(vec![bytes])
            } else {
                Err(unexpected(reply_name, id, table))
            };
            let _ = tx.send(answer);
        }
        Waiter::Dump {
            details_id,
            end_id,
            details_name,
            mut received,
            tx,
        } => {
            if id == details_id {
                received.push(bytes);
                let waiter = Waiter::Dump {
                    details_id,
                    end_id,
                    details_name,
                    received,
                    tx,
                };
                pending.insert(context, waiter);
            } else if id == end_id {
                let _ = tx.send(Ok(received));
            } else {
                let _ = tx.send(Err(unexpected(details_name, id, table)));
            }
        }
    }
}

fn unexpected(expected: &'static str, got: u16, table: &MessageTable) -> Error {
    Error::Unexpected {
        message: expected,
        expected,
        got,
        got_name: table.vpp_name(got),
    }
}
