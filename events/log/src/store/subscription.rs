//! Catch-up-then-live subscriptions, shared by every store.
//!
//! The writer publishes the position of its last *committed* event on a watch channel after
//! each commit. A subscriber reads committed events in chunks up to that head, then waits for
//! the head to move. Since it only ever reads below a published head, it cannot see a batch
//! half-committed nor skip a position that was in flight. Each chunk is its own short read,
//! so a subscriber never pins the WAL (see `sqlite::checkpoint`).

use std::collections::VecDeque;

use futures::future::BoxFuture;
use futures::stream;
use tokio::sync::watch;

use super::{EventStream, Position, RecordedEvent};
use crate::error::StoreError;

/// How many events a subscriber reads per query.
const CHUNK: usize = 512;

/// Reads up to `limit` committed events after a position.
pub(crate) type ChunkReader = Box<
    dyn Fn(Position, usize) -> BoxFuture<'static, Result<Vec<RecordedEvent>, StoreError>>
        + Send
        + Sync,
>;

struct Cursor {
    read: ChunkReader,
    head: watch::Receiver<Position>,
    after: Position,
    buffered: VecDeque<RecordedEvent>,
    failed: bool,
}

/// A stream of every committed event after `after`, live until the store closes.
pub(crate) fn subscribe(
    read: ChunkReader,
    head: watch::Receiver<Position>,
    after: Position,
) -> EventStream {
    let cursor = Cursor {
        read,
        head,
        after,
        buffered: VecDeque::new(),
        failed: false,
    };
    Box::pin(stream::unfold(cursor, |mut cursor| async move {
        if cursor.failed {
            return None;
        }
        loop {
            if let Some(event) = cursor.buffered.pop_front() {
                cursor.after = event.position;
                return Some((Ok(event), cursor));
            }
            let head = *cursor.head.borrow_and_update();
            if cursor.after < head {
                match (cursor.read)(cursor.after, CHUNK).await {
                    Ok(events) if events.is_empty() => {
                        let message = format!(
                            "the log's head is at {head} but nothing follows position {}",
                            cursor.after
                        );
                        cursor.failed = true;
                        return Some((Err(StoreError::Corrupt(message)), cursor));
                    }
                    Ok(events) => cursor.buffered.extend(events),
                    Err(e) => {
                        cursor.failed = true;
                        return Some((Err(e), cursor));
                    }
                }
                continue;
            }
            // Closed store: the sender is gone and no more events will come.
            cursor.head.changed().await.ok()?;
        }
    }))
}
