//! Time travel: every vWire's state as it was at a position of the log, folded with the
//! runtime's own `VWire::evolve` from the events up to that position (never from the
//! `live_vwires` projection, which only knows "now").

use std::collections::HashMap;

use nsm_domain::envelope::StreamKind;
use nsm_domain::upcast::StoredPayload;
use nsm_domain::vwire::{VWire, VWireEvent, VWireId};
use nsm_log::store::Position;
use uuid::Uuid;

use super::progress::Progress;
use super::scan::scan_payloads;
use nsm_log::read::LogReader;

/// The vWires as they were at `position`.
#[derive(Debug, Default)]
pub(crate) struct Folded {
    /// Boxed: a vWire's state is large, and the map moves its entries as it grows.
    pub(crate) vwires: HashMap<VWireId, Box<VWire>>,
    /// Events that could not be decoded or folded, with the reason; `nsm verify` says more.
    pub(crate) problems: Vec<String>,
    pub(crate) events: u64,
}

/// A decoded event of a vWire stream, or nothing for the other streams.
type Decoded = Option<(Position, VWireId, Result<VWireEvent, String>)>;

fn decode(stream: &str, stored: StoredPayload<'_>) -> Decoded {
    let id = StreamKind::VWire.strip(stream)?;
    let id = VWireId(Uuid::parse_str(id).ok()?);
    Some((
        stored.position,
        id,
        VWireEvent::decode_stored(stored)
            .map(slim)
            .map_err(|e| e.to_string()),
    ))
}

/// Folds every vWire stream up to `position` (inclusive).
pub(crate) fn state_at(log: &LogReader, position: Position) -> anyhow::Result<Folded> {
    let first = log.first()?;
    let total = position.0.saturating_sub(first.0.saturating_sub(1));
    let progress = if total > 200_000 {
        Progress::new(total, "events")
    } else {
        Progress::hidden()
    };
    let mut folded = Folded {
        // A vWire has a handful of events; sizing the map once saves rehashing it.
        vwires: HashMap::with_capacity((total / 4).min(1 << 20) as usize),
        ..Folded::default()
    };
    scan_payloads(
        log,
        Position::START,
        position,
        &progress,
        decode,
        |decoded| {
            folded.events += 1;
            let Some((position, id, event)) = decoded else {
                return Ok(());
            };
            let event = match event {
                Ok(event) => event,
                Err(e) => {
                    folded.problems.push(format!("position {position}: {e}"));
                    return Ok(());
                }
            };
            // apply() checks before it changes anything, so a refused event leaves the state
            // as it was.
            let folded_into = match folded.vwires.get_mut(&id) {
                Some(state) => state.apply(&event),
                None => VWire::evolve(None, id, &event).map(|state| {
                    folded.vwires.insert(id, Box::new(state));
                }),
            };
            if let Err(e) = folded_into {
                folded.problems.push(format!("position {position}: {e}"));
            }
            Ok(())
        },
    )?;
    Ok(folded)
}

/// Drops from an event what no time-travel answer shows and no fold reads (the path, with
/// its tokens, and the client's mechanism preferences; the state only keeps a copy): at
/// 100,000 vWires it is most of the memory, and of the time spent copying it. Done on the
/// decoding threads, so the copy is never made and the fold, on one thread, never frees it.
fn slim(mut event: VWireEvent) -> VWireEvent {
    match &mut event {
        VWireEvent::Requested(requested) => {
            requested.path = Default::default();
            requested.mechanism_preferences = Vec::new();
        }
        VWireEvent::Established(established) => established.path = Default::default(),
        VWireEvent::Refreshed(refreshed) => refreshed.path = None,
        _ => {}
    }
    event
}
