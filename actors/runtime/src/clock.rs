//! Wall-clock time for decisions and deadlines, replaceable in tests.
//!
//! Deadlines are wall-clock instants stored in events (they must survive a restart), but
//! timers run on tokio's clock. [`PausedClock`] derives the wall clock from tokio's, so that
//! tests on a paused runtime (`start_paused = true`) move both together.

use std::fmt::Debug;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

pub trait Clock: Send + Sync + Debug + 'static {
    fn now(&self) -> DateTime<Utc>;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now(&self) -> DateTime<Utc> {
        Utc::now()
    }
}

/// A wall clock that advances with tokio's clock, from a chosen origin.
#[derive(Debug, Clone, Copy)]
pub struct PausedClock {
    origin_wall: DateTime<Utc>,
    origin: Instant,
}

impl PausedClock {
    /// Starts at `origin_wall` now; must be created inside the runtime whose clock it follows.
    pub fn starting_at(origin_wall: DateTime<Utc>) -> Self {
        Self {
            origin_wall,
            origin: Instant::now(),
        }
    }
}

impl Clock for PausedClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = Instant::now().saturating_duration_since(self.origin);
        self.origin_wall + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
    }
}
