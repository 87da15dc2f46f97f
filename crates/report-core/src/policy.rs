//! When to ask again: exponential backoff with jitter and a cap, an overall deadline, a budget
//! of consecutive transient errors, and the hints vendors give (Retry-After, ETAs, progress).

use std::time::Duration;

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng, rngs::SmallRng};

use crate::status::Progress;

/// How a job waits for its report.
///
/// The defaults suit reports that take seconds to hours: first look after 1 s, doubling up to
/// 60 s between looks, ±10 % jitter so many clients do not poll in step, a 24 h deadline, and
/// 8 consecutive transient failures tolerated. Vendor hints shorten or lengthen the wait.
#[derive(Clone, Debug, PartialEq)]
#[non_exhaustive]
pub struct WaitPolicy {
    /// The first delay of the backoff.
    pub initial_delay: Duration,
    /// The backoff never waits longer than this between polls (without a vendor ETA).
    pub max_delay: Duration,
    /// Growth factor of the backoff.
    pub multiplier: f64,
    /// Relative jitter: each delay is scaled by a random factor in `1 ± jitter`.
    pub jitter: f64,
    /// Give up waiting after this long (`None`: never).
    pub deadline: Option<Duration>,
    /// How many transient failures in a row are retried before giving up.
    pub transient_error_budget: u32,
    /// Use vendor ETAs and progress rates to schedule polls.
    pub use_hints: bool,
    /// Longest wait a vendor's ETA or the progress rate may schedule in one go.
    pub max_hinted_delay: Duration,
    /// Seed for the jitter (`None`: from entropy). Set it for reproducible runs.
    pub seed: Option<u64>,
}

impl Default for WaitPolicy {
    fn default() -> Self {
        WaitPolicy {
            initial_delay: Duration::from_secs(1),
            max_delay: Duration::from_secs(60),
            multiplier: 2.0,
            jitter: 0.1,
            deadline: Some(Duration::from_secs(24 * 3600)),
            transient_error_budget: 8,
            use_hints: true,
            max_hinted_delay: Duration::from_secs(3600),
            seed: None,
        }
    }
}

impl WaitPolicy {
    /// Sets the overall deadline.
    pub fn with_deadline(mut self, deadline: Option<Duration>) -> Self {
        self.deadline = deadline;
        self
    }

    /// Sets the backoff's first delay and cap.
    pub fn with_backoff(mut self, initial: Duration, max: Duration) -> Self {
        self.initial_delay = initial;
        self.max_delay = max.max(initial);
        self
    }

    /// Sets the relative jitter (0 disables it).
    pub fn with_jitter(mut self, jitter: f64) -> Self {
        self.jitter = jitter.clamp(0.0, 1.0);
        self
    }

    /// Sets the budget of consecutive transient failures.
    pub fn with_transient_error_budget(mut self, budget: u32) -> Self {
        self.transient_error_budget = budget;
        self
    }

    /// Turns vendor hints (ETAs, progress rate) on or off.
    pub fn with_hints(mut self, use_hints: bool) -> Self {
        self.use_hints = use_hints;
        self
    }

    /// Fixes the jitter's random seed.
    pub fn with_seed(mut self, seed: u64) -> Self {
        self.seed = Some(seed);
        self
    }

    /// A fresh scheduler for one wait.
    pub fn scheduler(&self) -> Scheduler {
        let rng = match self.seed {
            Some(seed) => SmallRng::seed_from_u64(seed),
            None => SmallRng::from_os_rng(),
        };
        Scheduler {
            policy: self.clone(),
            attempt: 0,
            origin: None,
            first: None,
            last_poll: None,
            reached: None,
            eta_checked: None,
            rng,
        }
    }
}

/// The state of one wait: computes each next delay from what the last poll said.
#[derive(Debug)]
pub struct Scheduler {
    policy: WaitPolicy,
    attempt: u32,
    /// When the wait began, as far as this scheduler can tell: the first status's time minus
    /// the first delay it handed out.
    origin: Option<DateTime<Utc>>,
    /// The delay [`first_delay`](Self::first_delay) handed out, to date the origin.
    first: Option<Duration>,
    /// The previous pending status's time.
    last_poll: Option<DateTime<Utc>>,
    /// The highest progress fraction seen, and between which polls it was reached.
    reached: Option<Reached>,
    /// The vendor ETA already checked early once.
    eta_checked: Option<DateTime<Utc>>,
    rng: SmallRng,
}

/// A progress fraction and the interval in which it was reached.
#[derive(Clone, Copy, Debug)]
struct Reached {
    fraction: f64,
    after: DateTime<Utc>,
    seen: DateTime<Utc>,
}

fn knob(name: &str, default: f64) -> f64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

impl Scheduler {
    /// The delay before the next poll after a pending status observed at `now`.
    pub fn after_pending(&mut self, now: DateTime<Utc>, progress: &Progress) -> Duration {
        let first = self.first.take().unwrap_or_default();
        let origin = *self
            .origin
            .get_or_insert_with(|| now - chrono::Duration::from_std(first).unwrap_or_default());
        let previous = self.last_poll.replace(now).unwrap_or(origin);
        if let Some(f) = progress.fraction.filter(|f| f.is_finite()) {
            let f = f.clamp(0.0, 1.0);
            if f > 0.0 && self.reached.is_none_or(|r| f > r.fraction) {
                self.reached = Some(Reached {
                    fraction: f,
                    after: previous,
                    seen: now,
                });
            }
        }
        let hinted = if self.policy.use_hints {
            self.hint(now, origin, progress)
        } else {
            None
        };
        let delay = match hinted {
            Some(hint) => hint.clamp(self.policy.initial_delay, self.policy.max_hinted_delay),
            None => {
                let base = self.backoff();
                if base >= self.policy.max_delay {
                    // At the cap, no jitter: clients that started together were already spread
                    // by the jittered steps before it, and the cap stays the longest wait.
                    base
                } else {
                    self.jittered(base).min(self.policy.max_delay)
                }
            }
        };
        delay.max(progress.retry_after.unwrap_or_default())
    }

    /// The delay before the first poll of a report that was just started.
    pub fn first_delay(&mut self) -> Duration {
        let base = self.backoff();
        let delay = self.jittered(base);
        self.first = Some(delay);
        delay
    }

    /// The delay before retrying after a transient error.
    pub fn after_error(&mut self, retry_after: Option<Duration>) -> Duration {
        let base = self.backoff();
        let delay = self.jittered(base);
        delay.max(retry_after.unwrap_or_default())
    }

    fn backoff(&mut self) -> Duration {
        let exp = self
            .policy
            .multiplier
            .max(1.0)
            .powi(self.attempt.min(64) as i32);
        self.attempt = self.attempt.saturating_add(1);
        let secs = self.policy.initial_delay.as_secs_f64() * exp;
        Duration::from_secs_f64(secs.min(self.policy.max_delay.as_secs_f64()))
    }

    fn jittered(&mut self, d: Duration) -> Duration {
        let j = self.policy.jitter;
        if j <= 0.0 {
            return d;
        }
        let factor = self.rng.random_range((1.0 - j)..=(1.0 + j));
        Duration::from_secs_f64(d.as_secs_f64() * factor)
    }

    /// The wait the vendor's hints suggest, if they suggest one.
    fn hint(
        &mut self,
        now: DateTime<Utc>,
        origin: DateTime<Utc>,
        progress: &Progress,
    ) -> Option<Duration> {
        let secs = |d: chrono::Duration| d.num_milliseconds() as f64 / 1000.0;
        let elapsed = secs(now - origin).max(0.0);
        let overdue = || {
            Duration::from_secs_f64(
                (knob("RB_OVERDUE", 0.1) * elapsed)
                    .min(knob("RB_OVERDUE_CAP", 60.0))
                    .max(0.0),
            )
        };
        if let Some(eta) = progress.eta {
            let left = secs(eta - now);
            if left <= 0.0 {
                return Some(overdue());
            }
            let early = knob("RB_EARLY", 0.1) * secs(eta - origin);
            if left > self.policy.max_delay.as_secs_f64()
                && self.eta_checked != Some(eta)
                && early > 0.0
                && left > early
            {
                self.eta_checked = Some(eta);
                return Some(Duration::from_secs_f64(left - early));
            }
            return Some(Duration::from_secs_f64(left));
        }
        if let Some(r) = self.reached {
            let reached_at = secs(r.after - origin) + knob("RB_MID", 0.5) * secs(r.seen - r.after);
            let total = reached_at / r.fraction;
            let left = total - elapsed;
            if left <= 0.0 {
                return Some(overdue());
            }
            return Some(Duration::from_secs_f64(
                (knob("RB_APPROACH", 1.0) * left).max(overdue().as_secs_f64().min(left)),
            ));
        }
        if progress.fraction.is_some() {
            // Progress is reported but none made yet: the report is young; keep doubling the
            // time waited so far.
            return Some(Duration::from_secs_f64(knob("RB_ZERO", 1.0) * elapsed));
        }
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn progress(fraction: Option<f64>) -> Progress {
        Progress {
            fraction,
            ..Progress::state("running")
        }
    }

    #[test]
    fn backoff_doubles_to_the_cap_without_jitter() {
        let mut s = WaitPolicy::default().with_jitter(0.0).scheduler();
        let now = Utc::now();
        let delays: Vec<u64> = (0..9)
            .map(|_| s.after_pending(now, &progress(None)).as_secs())
            .collect();
        assert_eq!(delays, [1, 2, 4, 8, 16, 32, 60, 60, 60]);
    }

    #[test]
    fn jitter_stays_within_bounds_and_is_reproducible() {
        let policy = WaitPolicy::default().with_seed(7);
        let run = |p: &WaitPolicy| {
            let mut s = p.scheduler();
            (0..20).map(|_| s.after_error(None)).collect::<Vec<_>>()
        };
        let a = run(&policy);
        assert_eq!(a, run(&policy));
        for (i, d) in a.iter().enumerate() {
            let base = (1u64 << i.min(6)).min(60) as f64;
            let base = if i >= 6 { 60.0 } else { base };
            assert!(d.as_secs_f64() >= base * 0.9 - 1e-9 && d.as_secs_f64() <= base * 1.1 + 1e-9);
        }
    }

    #[test]
    fn retry_after_is_a_floor() {
        let mut s = WaitPolicy::default().with_jitter(0.0).scheduler();
        assert_eq!(
            s.after_error(Some(Duration::from_secs(30))),
            Duration::from_secs(30)
        );
        let p = Progress {
            retry_after: Some(Duration::from_secs(90)),
            ..progress(None)
        };
        assert_eq!(s.after_pending(Utc::now(), &p), Duration::from_secs(90));
    }

    #[test]
    fn vendor_eta_schedules_the_next_poll() {
        let mut s = WaitPolicy::default().with_jitter(0.0).scheduler();
        let now = Utc::now();
        let p = Progress {
            eta: Some(now + chrono::Duration::seconds(600)),
            ..progress(None)
        };
        assert_eq!(s.after_pending(now, &p), Duration::from_secs(600));
        // An ETA in the past falls back to the (restarted) backoff.
        let late = Progress {
            eta: Some(now - chrono::Duration::seconds(5)),
            ..progress(None)
        };
        assert_eq!(s.after_pending(now, &late), Duration::from_secs(1));
    }

    #[test]
    fn progress_rate_predicts_completion() {
        let mut s = WaitPolicy::default().with_jitter(0.0).scheduler();
        let t0 = Utc::now();
        s.after_pending(t0, &progress(Some(0.1)));
        let d = s.after_pending(t0 + chrono::Duration::seconds(100), &progress(Some(0.3)));
        // 0.2 per 100 s; 0.7 left → 350 s.
        assert_eq!(d.as_secs(), 350);
    }

    #[test]
    fn hints_can_be_turned_off() {
        let mut s = WaitPolicy::default()
            .with_jitter(0.0)
            .with_hints(false)
            .scheduler();
        let now = Utc::now();
        let p = Progress {
            eta: Some(now + chrono::Duration::seconds(600)),
            ..progress(None)
        };
        assert_eq!(s.after_pending(now, &p), Duration::from_secs(1));
    }
}
