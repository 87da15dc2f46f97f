//! Injectable time, so waiting logic runs in virtual time under `tokio::time::pause()`.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};

/// A source of wall-clock time and sleeps.
pub trait Clock: Send + Sync + fmt::Debug {
    /// The current time in UTC (compared with vendors' ETAs).
    fn now(&self) -> DateTime<Utc>;
    /// Waits for `duration`.
    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>>;
}

/// Tokio's timer, with wall time derived from it: `now()` is the wall time at creation plus
/// the tokio time elapsed since, so paused tokio time moves wall time too.
#[derive(Debug, Clone)]
pub struct TokioClock {
    wall_origin: DateTime<Utc>,
    origin: tokio::time::Instant,
}

impl TokioClock {
    /// A clock starting at the system's current wall time.
    pub fn new() -> Self {
        Self::starting_at(Utc::now())
    }

    /// A clock whose `now()` starts at `wall_origin` (for deterministic tests).
    pub fn starting_at(wall_origin: DateTime<Utc>) -> Self {
        TokioClock {
            wall_origin,
            origin: tokio::time::Instant::now(),
        }
    }
}

impl Default for TokioClock {
    fn default() -> Self {
        Self::new()
    }
}

impl Clock for TokioClock {
    fn now(&self) -> DateTime<Utc> {
        let elapsed = tokio::time::Instant::now().saturating_duration_since(self.origin);
        self.wall_origin + chrono::Duration::from_std(elapsed).unwrap_or(chrono::Duration::MAX)
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        Box::pin(tokio::time::sleep(duration))
    }
}

/// A clock that never really waits: each `sleep` moves its time forward at once and is
/// recorded. For tests against real sockets (where tokio's paused time would also fire the
/// HTTP timeouts) and for simulations in virtual time.
#[derive(Debug)]
pub struct VirtualClock {
    state: std::sync::Mutex<VirtualState>,
}

#[derive(Debug)]
struct VirtualState {
    now: DateTime<Utc>,
    sleeps: Vec<Duration>,
}

impl VirtualClock {
    /// A virtual clock starting at `start`.
    pub fn new(start: DateTime<Utc>) -> Self {
        VirtualClock {
            state: std::sync::Mutex::new(VirtualState {
                now: start,
                sleeps: Vec::new(),
            }),
        }
    }

    /// Every sleep requested so far, in order.
    pub fn sleeps(&self) -> Vec<Duration> {
        self.state.lock().expect("clock lock").sleeps.clone()
    }

    /// Moves time forward without a sleep (the world moving on by itself).
    pub fn advance(&self, by: Duration) {
        let mut state = self.state.lock().expect("clock lock");
        state.now += chrono::Duration::from_std(by).unwrap_or(chrono::Duration::MAX);
    }
}

impl Clock for VirtualClock {
    fn now(&self) -> DateTime<Utc> {
        self.state.lock().expect("clock lock").now
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        {
            let mut state = self.state.lock().expect("clock lock");
            state.sleeps.push(duration);
            state.now += chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX);
        }
        Box::pin(tokio::task::yield_now())
    }
}
