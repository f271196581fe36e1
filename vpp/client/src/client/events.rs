//! A stream of one event type from a connection.

use std::marker::PhantomData;
use std::sync::Arc;

use tokio::sync::broadcast;

use super::error::Error;
use super::reader::Received;
use crate::message::{self, Event};

/// Events of type `E` as VPP sends them. Ends (`None`) when the connection closes.
#[derive(Debug)]
pub struct EventStream<E> {
    id: u16,
    rx: broadcast::Receiver<Arc<Received>>,
    _event: PhantomData<fn() -> E>,
}

impl<E: Event> EventStream<E> {
    pub(super) fn new(id: u16, rx: broadcast::Receiver<Arc<Received>>) -> Self {
        Self {
            id,
            rx,
            _event: PhantomData,
        }
    }

    /// The next event; `None` once the connection is closed. A subscriber too slow to keep
    /// up misses events rather than holding back the replies behind them: it gets
    /// [`Error::EventsMissed`] once, saying how many, then the next event still buffered.
    pub async fn next(&mut self) -> Option<Result<E, Error>> {
        loop {
            match self.rx.recv().await {
                Ok(received) if received.id == self.id => {
                    let decoded = message::decode::<E>(&received.bytes)
                        .map(|(_, event)| event)
                        .map_err(|source| Error::Decode {
                            message: E::NAME,
                            cause: source,
                        });
                    return Some(decoded);
                }
                Ok(_) => continue,
                Err(broadcast::error::RecvError::Lagged(missed)) => {
                    return Some(Err(Error::EventsMissed {
                        event: E::NAME,
                        missed,
                    }));
                }
                Err(broadcast::error::RecvError::Closed) => return None,
            }
        }
    }
}
