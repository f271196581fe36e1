//! What the runtime holds and has done, counted where it happens, for the node's metrics:
//! plain atomics that the binary reads when it is scraped. This crate knows no metrics
//! library, and nothing here is labelled by vWire.
//!
//! * [`VWireGauge`]: live vWires by status. Each VWire actor counts itself under its current
//!   status (changing it in the same step that changes its state) and uncounts itself when it
//!   stops, so the figures are those of the running actors, and an actor rebuilt from the log
//!   is counted once.
//! * [`DataplaneStats`]: plumb and unplumb calls by result, and repairs (vWires re-created by
//!   reconcile or by the liveness probe's heal, and orphans removed by reconcile's sweep).

use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};

use nsm_domain::vwire::Status;

/// Live vWires by status (see the module header).
#[derive(Debug, Default)]
pub struct VWireGauge {
    requested: AtomicI64,
    established: AtomicI64,
}

/// A reading of [`VWireGauge`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LiveVWires {
    pub requested: u64,
    pub established: u64,
}

impl VWireGauge {
    pub fn read(&self) -> LiveVWires {
        let read = |n: &AtomicI64| u64::try_from(n.load(Ordering::Relaxed)).unwrap_or(0);
        LiveVWires {
            requested: read(&self.requested),
            established: read(&self.established),
        }
    }

    /// One actor's status moved from `from` to `to` (`None`: not counted, i.e. no state,
    /// terminal, or stopped).
    pub(crate) fn moved(&self, from: Option<Status>, to: Option<Status>) {
        if from == to {
            return;
        }
        if let Some(slot) = from.and_then(|s| self.slot(s)) {
            slot.fetch_sub(1, Ordering::Relaxed);
        }
        if let Some(slot) = to.and_then(|s| self.slot(s)) {
            slot.fetch_add(1, Ordering::Relaxed);
        }
    }

    fn slot(&self, status: Status) -> Option<&AtomicI64> {
        match status {
            Status::Requested => Some(&self.requested),
            Status::Established => Some(&self.established),
            Status::Closed | Status::Expired | Status::Failed => None,
        }
    }
}

/// Data-plane work since the node started (see the module header).
#[derive(Debug, Default)]
pub struct DataplaneStats {
    plumb_ok: AtomicU64,
    plumb_error: AtomicU64,
    unplumb_ok: AtomicU64,
    unplumb_error: AtomicU64,
    healed: AtomicU64,
    orphans_removed: AtomicU64,
}

/// A reading of [`DataplaneStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DataplaneCounts {
    pub plumb_ok: u64,
    pub plumb_error: u64,
    pub unplumb_ok: u64,
    pub unplumb_error: u64,
    /// vWires whose data plane was re-created (reconcile, or a dead datapath healed).
    pub healed: u64,
    /// Objects that no live vWire owned, removed by reconcile.
    pub orphans_removed: u64,
}

impl DataplaneStats {
    pub fn read(&self) -> DataplaneCounts {
        let read = |n: &AtomicU64| n.load(Ordering::Relaxed);
        DataplaneCounts {
            plumb_ok: read(&self.plumb_ok),
            plumb_error: read(&self.plumb_error),
            unplumb_ok: read(&self.unplumb_ok),
            unplumb_error: read(&self.unplumb_error),
            healed: read(&self.healed),
            orphans_removed: read(&self.orphans_removed),
        }
    }

    pub(crate) fn plumbed(&self, ok: bool) {
        let slot = if ok {
            &self.plumb_ok
        } else {
            &self.plumb_error
        };
        slot.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn unplumbed(&self, ok: bool) {
        let slot = if ok {
            &self.unplumb_ok
        } else {
            &self.unplumb_error
        };
        slot.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn healed(&self) {
        self.healed.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn orphans_removed(&self, n: usize) {
        self.orphans_removed.fetch_add(n as u64, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_actor_is_counted_once_under_its_current_status() {
        let gauge = VWireGauge::default();
        gauge.moved(None, Some(Status::Requested));
        gauge.moved(Some(Status::Requested), Some(Status::Established));
        gauge.moved(None, Some(Status::Established));
        assert_eq!(
            gauge.read(),
            LiveVWires {
                requested: 0,
                established: 2
            }
        );
        gauge.moved(Some(Status::Established), Some(Status::Closed));
        gauge.moved(Some(Status::Closed), None);
        assert_eq!(gauge.read().established, 1);
    }
}
