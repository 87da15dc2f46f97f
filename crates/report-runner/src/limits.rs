//! Limits on what a worker asks of one vendor connection: how many starts/cancels (writes) and
//! polls/downloads (reads) are under way at once, and how many operations begin per minute.
//! Vendors publish such limits per account or portal (DocSpace: 15 concurrent POST/PUT, 50
//! concurrent GET, 1,500 requests a minute); exceeding them earns 429s or refusals, so the
//! runner waits its turn instead. This gate holds them within one worker process; a worker also
//! holds them across every worker on its database (`shared_limits.rs`).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::{Mutex, OwnedSemaphorePermit, Semaphore};
use tokio::time::Instant;

/// One connection's limits; `None` is unlimited.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct Limits {
    /// Starts and cancels (the vendor's POST/PUT) under way at once.
    pub writes: Option<usize>,
    /// Polls, downloads and searches for a lost start (the vendor's GET) under way at once.
    pub reads: Option<usize>,
    /// Operations begun in any 60 seconds (an operation is one start, poll, download, cancel or
    /// search; its own retries within report-core are not counted again).
    pub per_minute: Option<u32>,
}

/// Which of a connection's concurrency limits an operation takes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// A start or cancel.
    Write,
    /// A poll, download or search.
    Read,
}

const WINDOW: Duration = Duration::from_secs(60);

/// The live state of one connection's limits.
#[derive(Debug)]
pub(crate) struct Gate {
    writes: Option<Arc<Semaphore>>,
    reads: Option<Arc<Semaphore>>,
    rate: Option<(usize, Mutex<VecDeque<Instant>>)>,
}

/// Held while an operation runs; dropping it frees its concurrency slot.
#[derive(Debug)]
pub(crate) struct Pass {
    _slot: Option<OwnedSemaphorePermit>,
    /// The database's slot, shared with every worker.
    pub(crate) shared: Option<crate::shared_limits::Slot>,
}

impl Gate {
    pub(crate) fn new(limits: Limits) -> Self {
        // A limit of zero would stop the connection for good: it means one.
        let semaphore = |n: Option<usize>| n.map(|n| Arc::new(Semaphore::new(n.max(1))));
        Gate {
            writes: semaphore(limits.writes),
            reads: semaphore(limits.reads),
            rate: limits
                .per_minute
                .map(|n| (n.max(1) as usize, Mutex::new(VecDeque::new()))),
        }
    }

    /// Waits for a concurrency slot of `access`, then for room in the rate window.
    pub(crate) async fn enter(&self, access: Access) -> Pass {
        let semaphore = match access {
            Access::Write => &self.writes,
            Access::Read => &self.reads,
        };
        let slot = match semaphore {
            // Never closed, so acquiring only fails if it were: then run unlimited.
            Some(s) => s.clone().acquire_owned().await.ok(),
            None => None,
        };
        if let Some((per_window, begun)) = &self.rate {
            // The lock is held while waiting: operations begin in the order they asked.
            let mut begun = begun.lock().await;
            loop {
                let now = Instant::now();
                while begun
                    .front()
                    .is_some_and(|t| now.duration_since(*t) >= WINDOW)
                {
                    begun.pop_front();
                }
                match begun.front() {
                    Some(oldest) if begun.len() >= *per_window => {
                        tokio::time::sleep_until(*oldest + WINDOW).await
                    }
                    _ => {
                        begun.push_back(now);
                        break;
                    }
                }
            }
        }
        Pass {
            _slot: slot,
            shared: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Runs `n` operations of `access` lasting `each` through `gate` at once; the most that
    /// ran together and when each began (seconds from the first call).
    async fn run(gate: Arc<Gate>, access: Access, n: usize, each: Duration) -> (usize, Vec<f64>) {
        let t0 = Instant::now();
        let now = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..n)
            .map(|_| {
                let (gate, now, most) = (gate.clone(), now.clone(), most.clone());
                tokio::spawn(async move {
                    let _pass = gate.enter(access).await;
                    let began = t0.elapsed().as_secs_f64();
                    most.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    tokio::time::sleep(each).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    began
                })
            })
            .collect();
        let mut began = Vec::new();
        for t in tasks {
            began.push(t.await.unwrap());
        }
        began.sort_by(f64::total_cmp);
        (most.load(Ordering::SeqCst), began)
    }

    #[tokio::test(start_paused = true)]
    async fn reads_and_writes_have_their_own_concurrency() {
        let gate = Arc::new(Gate::new(Limits {
            writes: Some(15),
            reads: Some(50),
            per_minute: None,
        }));
        let second = Duration::from_secs(1);
        let (writes, reads) = tokio::join!(
            run(gate.clone(), Access::Write, 40, second),
            run(gate.clone(), Access::Read, 120, second),
        );
        assert_eq!(writes.0, 15);
        assert_eq!(reads.0, 50);
        // 40 writes in waves of 15: the last wave begins after two seconds.
        assert_eq!(writes.1.last().copied(), Some(2.0));
        assert_eq!(reads.1.last().copied(), Some(2.0));
    }

    #[tokio::test(start_paused = true)]
    async fn no_more_than_the_rate_begin_in_any_minute() {
        let gate = Arc::new(Gate::new(Limits {
            per_minute: Some(1500),
            ..Limits::default()
        }));
        let (_, began) = run(gate, Access::Read, 4000, Duration::from_millis(10)).await;
        // Every window of 60 s holds at most 1,500 beginnings, and the limit is used fully.
        for (i, t) in began.iter().enumerate() {
            let in_window = began[i..].iter().take_while(|u| **u < t + 60.0).count();
            assert!(
                in_window <= 1500,
                "{in_window} began within a minute of {t}"
            );
        }
        assert_eq!(began.iter().filter(|t| **t < 60.0).count(), 1500);
        assert_eq!(began.last().copied(), Some(120.0));
    }

    #[tokio::test(start_paused = true)]
    async fn no_limits_let_everything_through_at_once() {
        let gate = Arc::new(Gate::new(Limits::default()));
        let (most, began) = run(gate, Access::Write, 100, Duration::from_secs(1)).await;
        assert_eq!(most, 100);
        assert_eq!(began.last().copied(), Some(0.0));
    }
}
