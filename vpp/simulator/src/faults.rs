//! What a test injects (faults) and what it reads back (counters). Faults are pending
//! until a matching request consumes them, on whichever connection it arrives; they belong
//! to the test, not to the simulated VPP, so a `restart()` keeps them.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

/// Matches every message in [`Faults::delay_for`].
pub(super) const ANY: &str = "*";

#[derive(Debug, Default)]
pub(super) struct Faults {
    /// message → (retval, how many more requests get it).
    failures: HashMap<String, (i32, u32)>,
    /// message → how many more replies to swallow.
    drops: HashMap<String, u32>,
    /// message (or [`ANY`]) → how long to hold each one before handling it.
    delays: HashMap<String, Duration>,
    /// Details the next dump may send before its connection is closed.
    close_mid_dump: Option<usize>,
    /// message → the CRC the handshake table claims for it.
    pub(super) advertised: HashMap<String, u32>,
}

impl Faults {
    /// Replaces any pending failure for `message`; `times` 0 clears it.
    pub(super) fn fail_next(&mut self, message: &str, retval: i32, times: u32) {
        if times == 0 {
            self.failures.remove(message);
        } else {
            self.failures.insert(message.to_owned(), (retval, times));
        }
    }

    /// The retval to answer this `message` with instead of handling it, if one is pending.
    pub(super) fn take_failure(&mut self, message: &str) -> Option<i32> {
        let (retval, times) = self.failures.get_mut(message)?;
        let retval = *retval;
        *times -= 1;
        if *times == 0 {
            self.failures.remove(message);
        }
        Some(retval)
    }

    pub(super) fn drop_next(&mut self, message: &str, times: u32) {
        if times == 0 {
            self.drops.remove(message);
        } else {
            self.drops.insert(message.to_owned(), times);
        }
    }

    /// Whether this `message`'s answer is to be swallowed.
    pub(super) fn take_drop(&mut self, message: &str) -> bool {
        let Some(times) = self.drops.get_mut(message) else {
            return false;
        };
        *times -= 1;
        if *times == 0 {
            self.drops.remove(message);
        }
        true
    }

    /// Holds every `message` (or every message, for [`ANY`]) by `delay`; zero clears it.
    pub(super) fn set_delay(&mut self, message: &str, delay: Duration) {
        if delay.is_zero() {
            self.delays.remove(message);
        } else {
            self.delays.insert(message.to_owned(), delay);
        }
    }

    /// The delay for `message`: its own if set, else the one for every message.
    pub(super) fn delay_for(&self, message: &str) -> Option<Duration> {
        self.delays
            .get(message)
            .or_else(|| self.delays.get(ANY))
            .copied()
    }

    pub(super) fn close_mid_dump(&mut self, details_before_close: usize) {
        self.close_mid_dump = Some(details_before_close);
    }

    pub(super) fn take_close_mid_dump(&mut self) -> Option<usize> {
        self.close_mid_dump.take()
    }
}

/// What the simulator has seen, for tests to assert on.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SimStats {
    /// Every message with an id of the current table that names a message this crate
    /// defines, by name, whether or not it was answered.
    pub requests_by_message: BTreeMap<String, u64>,
    /// Requests VPP itself would leave unanswered: the sum of the next four counters.
    pub silent_drops: u64,
    /// Ids not in the table (or frames too short for an id).
    pub unknown_ids: u64,
    /// Ids in the table that the simulator does not implement (e.g. `acl_add_replace`).
    pub unimplemented: u64,
    /// Requests whose client_index names no open connection: they ran, the reply went nowhere.
    pub wrong_client_index: u64,
    /// Messages shorter than their type's fixed part (or an empty frame).
    pub truncated: u64,
    /// Answers swallowed by `drop_next` (not part of `silent_drops`).
    pub injected_drops: u64,
    /// Connections accepted since start.
    pub connections: u64,
    /// Connections open now.
    pub open_connections: u64,
}

/// The counters as kept: names borrowed from the generated definitions.
#[derive(Debug, Default)]
pub(super) struct Counters {
    pub(super) requests: BTreeMap<&'static str, u64>,
    pub(super) unknown_ids: u64,
    pub(super) unimplemented: u64,
    pub(super) wrong_client_index: u64,
    pub(super) truncated: u64,
    pub(super) injected_drops: u64,
    pub(super) connections: u64,
}

impl Counters {
    pub(super) fn snapshot(&self, open_connections: usize) -> SimStats {
        SimStats {
            requests_by_message: self
                .requests
                .iter()
                .map(|(name, count)| (name.to_string(), *count))
                .collect(),
            silent_drops: self.unknown_ids
                + self.unimplemented
                + self.wrong_client_index
                + self.truncated,
            unknown_ids: self.unknown_ids,
            unimplemented: self.unimplemented,
            wrong_client_index: self.wrong_client_index,
            truncated: self.truncated,
            injected_drops: self.injected_drops,
            connections: self.connections,
            open_connections: open_connections as u64,
        }
    }
}
