//! Reading a range of the log fast: the rows are read and decoded on every core, each thread
//! with its own connection and its own chunks, and handed back in position order to one
//! consumer that folds them. Decoding JSON is most of the cost of reading a log; the fold
//! itself is cheap and must see events in order.

use std::sync::mpsc;

use anyhow::Context;
use nsm_domain::upcast::StoredPayload;
use nsm_log::store::{Position, RecordedEvent};

use super::progress::Progress;
use nsm_log::read::{CHUNK, LogReader};

/// Reads every event after `after` up to `until`, maps each with `decode` on several
/// threads, and gives the results to `consume` in position order.
pub(crate) fn scan<T, D, C>(
    log: &LogReader,
    after: Position,
    until: Position,
    progress: &Progress,
    decode: D,
    consume: C,
) -> anyhow::Result<()>
where
    T: Send,
    D: Fn(RecordedEvent) -> T + Sync,
    C: FnMut(T) -> anyhow::Result<()>,
{
    let read = |connection: &LogReader, from, to, buffer: &mut Vec<T>| {
        Ok(connection.map_range_into(from, to, usize::MAX, &decode, buffer)?)
    };
    scan_with(log, after, until, progress, read, consume)
}

/// [`scan`] for a `decode` that needs only a row's stream and what decoding reads
/// ([`LogReader::map_payloads_into`]): the fast way to fold the whole log.
pub(crate) fn scan_payloads<T, D, C>(
    log: &LogReader,
    after: Position,
    until: Position,
    progress: &Progress,
    decode: D,
    consume: C,
) -> anyhow::Result<()>
where
    T: Send,
    D: Fn(&str, StoredPayload<'_>) -> T + Sync,
    C: FnMut(T) -> anyhow::Result<()>,
{
    let read = |connection: &LogReader, from, to, buffer: &mut Vec<T>| {
        Ok(connection.map_payloads_into(from, to, &decode, buffer)?)
    };
    scan_with(log, after, until, progress, read, consume)
}

/// The engine of both: `read` fills a buffer with one chunk's results, on a worker thread
/// with its own connection.
fn scan_with<T, R, C>(
    log: &LogReader,
    after: Position,
    until: Position,
    progress: &Progress,
    read: R,
    mut consume: C,
) -> anyhow::Result<()>
where
    T: Send,
    R: Fn(&LogReader, Position, Position, &mut Vec<T>) -> anyhow::Result<()> + Sync,
    C: FnMut(T) -> anyhow::Result<()>,
{
    if until <= after {
        return Ok(());
    }
    let workers = std::thread::available_parallelism()
        .map_or(2, |n| n.get())
        .clamp(1, 8) as u64;
    let chunk = CHUNK as u64;
    let chunks = (until.0 - after.0).div_ceil(chunk);
    let connections = (0..workers.min(chunks))
        .map(|_| log.reopen())
        .collect::<Result<Vec<_>, _>>()?;
    let workers = connections.len() as u64;
    std::thread::scope(|scope| {
        let read = &read;
        let mut outputs = Vec::new();
        let mut returns = Vec::new();
        for (worker, connection) in connections.into_iter().enumerate() {
            // Two chunks ahead per worker: enough to keep every core busy, little memory.
            let (send, receive) = mpsc::sync_channel::<anyhow::Result<Vec<T>>>(2);
            // The consumer hands each emptied chunk back to be filled again: a chunk of
            // decoded events is megabytes, and fresh megabytes for each of hundreds of chunks
            // cost more (page faults, zeroing) than decoding them.
            let (give_back, given_back) = mpsc::channel::<Vec<T>>();
            outputs.push(receive);
            returns.push(give_back);
            scope.spawn(move || {
                let mut index = worker as u64;
                while index < chunks {
                    let from = Position(after.0 + index * chunk);
                    let to = Position((from.0 + chunk).min(until.0));
                    let mut buffer = given_back
                        .try_recv()
                        .unwrap_or_else(|_| Vec::with_capacity(CHUNK));
                    let decoded = read(&connection, from, to, &mut buffer).map(|()| buffer);
                    let failed = decoded.is_err();
                    if send.send(decoded).is_err() || failed {
                        return;
                    }
                    index += workers;
                }
            });
        }
        for index in 0..chunks {
            let worker = (index % workers) as usize;
            let mut decoded = outputs[worker]
                .recv()
                .context("a reading thread stopped")??;
            let count = decoded.len() as u64;
            for item in decoded.drain(..) {
                consume(item)?;
            }
            progress.advance(count);
            // A worker that has finished has dropped its end; the buffer is then just freed.
            let _ = returns[worker].send(decoded);
        }
        // Dropping the receivers ends any worker still reading ahead.
        drop(outputs);
        Ok(())
    })
}
