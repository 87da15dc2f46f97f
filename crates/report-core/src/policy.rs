//! When to ask again: exponential backoff with jitter and a cap, an overall deadline, a budget
//! of consecutive transient errors, and the hints vendors give (Retry-After, ETAs, progress).

use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::prior::DurationPrior;
use crate::status::Progress;

/// How a job waits for its report.
///
/// The defaults suit reports that take seconds to hours: first look after 1 s, doubling up to
/// 60 s between looks, ±10 % jitter on the steps below that cap so many clients do not poll in
/// step, a 24 h deadline, and 8 consecutive transient failures tolerated.
///
/// With [`use_hints`](Self::use_hints) (the default), what the vendor's status tells replaces
/// the blind backoff:
/// - an ETA (OFD's `AssumptiveCompleteTime`): sleep until it, with one early look at 90 % of
///   the way when it is more than `max_delay` off (ETAs are estimates);
/// - a progress fraction: the end is predicted by extrapolating from the start of the wait
///   (the fraction was reached at some moment between two polls: early in that interval for a
///   coarse step, late for fine ones), and the next look is aimed a little before it, by a
///   quarter of the prediction's uncertainty (which shrinks as the work advances);
/// - progress reported but still zero: the report is young; wait three times the time waited
///   so far;
/// - past the ETA or the predicted end: look every 20 % of the time waited so far, at most
///   `max_delay` apart;
/// - a learned [`DurationPrior`] (what this vendor's past reports of the same kind took): no
///   look before its earliest plausible end, then every half the time waited so far.
///
/// Hints only ever skip polls while the report cannot plausibly be ready. The lag budget
/// ([`max_lag`](Self::max_lag), 60 s by default: the doubling loop's own bound) is a hard line:
/// from the earliest plausible completion on, consecutive polls are at most `max_lag` apart, so
/// a report that finishes then is noticed within `max_lag`. The earliest plausible completion
/// is the latest of these lower bounds:
/// - an ETA: the time to it, shortened by the ETA's error (the prior's worst ratio seen, else
///   [`ETA_ERROR`]);
/// - progress: the work left, done up to [`PROGRESS_SPEEDUP`] × faster than so far;
/// - a prior: its [`earliest`](DurationPrior::earliest) duration.
///
/// Without any of them every moment is plausible. The deadline, Retry-After (a floor) and
/// the error budget keep their meaning.
///
/// `crates/report-bench` (`report-bench polling`) measures these choices against the doubling
/// backoff on simulated vendors.
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
    /// The whole job's deadline (`None`: none), counted from [`Job::start`](crate::Job::start)
    /// or [`Job::resume`](crate::Job::resume): every request after that (token, start, status,
    /// download and its body), every retry and every sleep ends with
    /// [`Error::Deadline`](crate::Error::Deadline) once it passes; a sleep that would end past
    /// it is not begun. A download begun long after the start shares the same deadline.
    pub deadline: Option<Duration>,
    /// How many transient failures in a row are retried before giving up.
    pub transient_error_budget: u32,
    /// Use vendor ETAs and progress rates to schedule polls.
    pub use_hints: bool,
    /// Longest wait a vendor's ETA or the progress rate may schedule in one go.
    pub max_hinted_delay: Duration,
    /// Seed for the jitter (`None`: from entropy). Set it for reproducible runs.
    pub seed: Option<u64>,
    /// Longest time a report may be ready without this wait noticing, once it can plausibly
    /// be ready (Retry-After may exceed it: the vendor asked).
    pub max_lag: MaxLag,
    /// What past reports of the same vendor and kind took, if known.
    pub prior: Option<DurationPrior>,
}

/// The lag budget: how late a finished report may be noticed.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum MaxLag {
    /// At most this long.
    Fixed(Duration),
    /// At most this fraction of the time waited so far, and never less than `at_least`
    /// (e.g. 10 % of the elapsed time, at least 60 s).
    Relative { fraction: f64, at_least: Duration },
}

impl MaxLag {
    /// The budget after `elapsed` of waiting.
    pub fn at(&self, elapsed: Duration) -> Duration {
        match *self {
            MaxLag::Fixed(d) => d,
            MaxLag::Relative { fraction, at_least } => {
                let f = if fraction.is_finite() {
                    fraction.max(0.0)
                } else {
                    0.0
                };
                Duration::from_secs_f64(elapsed.as_secs_f64() * f).max(at_least)
            }
        }
    }
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
            max_lag: MaxLag::Fixed(Duration::from_secs(60)),
            prior: None,
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

    /// Sets the lag budget. A fixed budget is also the blind backoff's cap (`max_delay`); a
    /// relative one lets the backoff grow up to `max_hinted_delay`, within the budget.
    pub fn with_max_lag(mut self, max_lag: MaxLag) -> Self {
        self.max_lag = max_lag;
        self.max_delay = match max_lag {
            MaxLag::Fixed(d) => d.max(self.initial_delay),
            MaxLag::Relative { .. } => self.max_hinted_delay.max(self.initial_delay),
        };
        self
    }

    /// Uses what past reports of the same vendor and kind took (see [`DurationPrior`]).
    pub fn with_prior(mut self, prior: Option<DurationPrior>) -> Self {
        self.prior = prior;
        self
    }

    /// A fresh scheduler for one wait.
    pub fn scheduler(&self) -> Scheduler {
        let rng = match self.seed {
            Some(seed) => fastrand::Rng::with_seed(seed),
            None => fastrand::Rng::new(),
        };
        Scheduler {
            policy: self.clone(),
            state: SchedulerState::default(),
            rng,
        }
    }

    /// A scheduler that continues from a saved [`SchedulerState`] (e.g. in another process).
    pub fn resume_scheduler(&self, state: SchedulerState) -> Scheduler {
        Scheduler {
            policy: self.clone(),
            rng: fastrand::Rng::with_seed(state.rng_seed),
            state,
        }
    }
}

/// While progress is reported but still zero, wait this many times the time waited so far.
const ZERO_PROGRESS_GROWTH: f64 = 3.0;
/// Relative uncertainty of an end predicted from a progress fraction `f`: this × `(1 - f)`
/// (progress rarely advances evenly), plus the uncertainty of when `f` was reached.
const PROGRESS_SPREAD: f64 = 0.3;
/// Aim the next look this share of the prediction's uncertainty before the predicted end.
const AIM_EARLY: f64 = 0.25;
/// Past the ETA or the predicted end, look again after this share of the time waited so far
/// (at most `max_delay`).
const OVERDUE_CADENCE: f64 = 0.2;
/// One early look at this share of a long wait for a vendor ETA, before the ETA itself.
const ETA_EARLY_LOOK: f64 = 0.1;
/// Without a prior, a vendor ETA may be this fraction of the time to it too far: the report
/// can plausibly be ready from `1 - ETA_ERROR` of the way on.
pub const ETA_ERROR: f64 = 0.25;
/// Work may go up to this many times faster than its average so far (progress is uneven).
pub const PROGRESS_SPEEDUP: f64 = 3.0;
/// With a prior and no other hint, past its earliest plausible end: look every this share of
/// the time waited so far (the doubling loop's own pace is 1), within the lag budget.
const PRIOR_CADENCE: f64 = 0.5;

/// The state of one wait: computes each next delay from what the last poll said.
#[derive(Debug)]
pub struct Scheduler {
    policy: WaitPolicy,
    state: SchedulerState,
    rng: fastrand::Rng,
}

/// What a [`Scheduler`] has learned so far, serializable so that a wait can stop here and go
/// on in another process ([`WaitPolicy::resume_scheduler`]) with the very same delays.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SchedulerState {
    /// Backoff steps taken.
    attempt: u32,
    /// When the wait began, as far as this scheduler can tell: the first status's time minus
    /// the first delay it handed out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    origin: Option<DateTime<Utc>>,
    /// The delay [`first_delay`](Scheduler::first_delay) handed out, to date the origin.
    #[serde(default, skip_serializing_if = "Option::is_none", with = "opt_nanos")]
    first: Option<Duration>,
    /// The previous pending status's time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    last_poll: Option<DateTime<Utc>>,
    /// The highest progress fraction seen, and between which polls it was reached.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    reached: Option<Reached>,
    /// The vendor ETA already given its early look.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    eta_checked: Option<DateTime<Utc>>,
    /// The jitter generator's state.
    rng_seed: u64,
}

impl SchedulerState {
    /// When the last pending status was seen: a report found ready later became ready after
    /// it (the runner's detection lag is at most the time since).
    pub fn last_pending_at(&self) -> Option<DateTime<Utc>> {
        self.last_poll
    }
}

/// A progress fraction and the interval in which it was reached.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
struct Reached {
    fraction: f64,
    /// The fraction seen before (0 if none).
    before: f64,
    /// The poll before the one that saw `fraction` (or the origin).
    after: DateTime<Utc>,
    /// The poll that first saw `fraction`.
    seen: DateTime<Utc>,
    /// The smallest step of the fraction seen so far: the vendor's granularity.
    quantum: f64,
}

/// Durations as whole nanoseconds: exact, so a resumed wait computes the very same delays.
mod opt_nanos {
    use std::time::Duration;

    use serde::{Deserialize, Deserializer, Serializer};

    pub(super) fn serialize<S: Serializer>(d: &Option<Duration>, s: S) -> Result<S::Ok, S::Error> {
        match d {
            Some(d) => s.serialize_some(&(d.as_nanos() as u64)),
            None => s.serialize_none(),
        }
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Option<Duration>, D::Error> {
        Ok(Option::<u64>::deserialize(d)?.map(Duration::from_nanos))
    }
}

impl Scheduler {
    /// Its state, to save it and [resume](WaitPolicy::resume_scheduler) later.
    pub fn state(&self) -> SchedulerState {
        SchedulerState {
            rng_seed: self.rng.get_seed(),
            ..self.state.clone()
        }
    }

    /// The delay before the next poll after a pending status observed at `now`.
    pub fn after_pending(&mut self, now: DateTime<Utc>, progress: &Progress) -> Duration {
        let first = self.state.first.take().unwrap_or_default();
        let origin = *self
            .state
            .origin
            .get_or_insert_with(|| now - chrono::Duration::from_std(first).unwrap_or_default());
        let previous = self.state.last_poll.replace(now).unwrap_or(origin);
        if let Some(f) = progress.fraction.filter(|f| f.is_finite()) {
            let f = f.clamp(0.0, 1.0);
            let before = self.state.reached.map_or(0.0, |r| r.fraction);
            if f > before {
                let quantum = self.state.reached.map_or(f, |r| r.quantum.min(f - before));
                self.state.reached = Some(Reached {
                    fraction: f,
                    before,
                    after: previous,
                    seen: now,
                    quantum,
                });
            }
        }
        let hinted = if self.policy.use_hints {
            self.hint(now, origin, progress)
        } else {
            None
        };
        let elapsed = (now - origin).to_std().unwrap_or_default();
        let quiet = if self.policy.use_hints {
            self.plausible_end(origin, now, progress)
                .map_or(Duration::ZERO, |at| (at - now).to_std().unwrap_or_default())
        } else {
            Duration::ZERO
        };
        // The lag budget: never skip past the moment the report can plausibly be ready by
        // more than `max_lag`.
        let longest = quiet
            .max(self.policy.max_lag.at(elapsed))
            .max(self.policy.initial_delay);
        let delay = match hinted {
            Some(hint) => hint.clamp(self.policy.initial_delay, self.policy.max_hinted_delay),
            None => {
                let base = self.backoff();
                if base >= self.policy.max_delay {
                    // At the cap, no jitter: clients that started together were already spread
                    // by the jittered steps below it, and the cap stays the longest wait (so a
                    // report is never noticed more than `max_delay` late).
                    base
                } else {
                    self.jittered(base).min(self.policy.max_delay)
                }
            }
        };
        delay
            .min(longest)
            .max(progress.retry_after.unwrap_or_default())
    }

    /// The delay before the first poll of a report that was just started.
    pub fn first_delay(&mut self) -> Duration {
        let base = self.backoff();
        let delay = self.jittered(base);
        self.state.first = Some(delay);
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
            .powi(self.state.attempt.min(64) as i32);
        self.state.attempt = self.state.attempt.saturating_add(1);
        let secs = self.policy.initial_delay.as_secs_f64() * exp;
        Duration::from_secs_f64(secs.min(self.policy.max_delay.as_secs_f64()))
    }

    fn jittered(&mut self, d: Duration) -> Duration {
        let j = self.policy.jitter;
        if j <= 0.0 {
            return d;
        }
        let factor = 1.0 - j + 2.0 * j * self.rng.f64();
        Duration::from_secs_f64(d.as_secs_f64() * factor)
    }

    /// The earliest moment the report can plausibly be ready, as far as the hints and the
    /// prior tell (`None`: any moment).
    fn plausible_end(
        &self,
        origin: DateTime<Utc>,
        now: DateTime<Utc>,
        progress: &Progress,
    ) -> Option<DateTime<Utc>> {
        let secs = |d: chrono::Duration| d.num_milliseconds() as f64 / 1000.0;
        let mut earliest: Option<f64> = None;
        let mut bound = |s: f64| {
            if s.is_finite() && s > 0.0 {
                earliest = Some(earliest.map_or(s, |e: f64| e.max(s)));
            }
        };
        let prior = self.policy.prior.as_ref();
        if let Some(eta) = progress.eta {
            let ratio = prior
                .and_then(DurationPrior::eta_ratio_floor)
                .unwrap_or(1.0 - ETA_ERROR);
            bound(secs(eta - origin) * ratio);
        }
        if let Some(earliest) = prior.and_then(DurationPrior::earliest) {
            bound(earliest.as_secs_f64());
        }
        if let Some(r) = self.state.reached {
            let s = PROGRESS_SPEEDUP;
            // `r.fraction` was reached after the poll before the one that saw it.
            let f = r.fraction;
            bound(secs(r.after - origin) * (1.0 + (1.0 - f) / (f * s)));
            // Now the work done is below the fraction shown plus the vendor's next step, which
            // may be up to twice the smallest seen (0 → 30 → 60 → 100 %).
            let shown = progress
                .fraction
                .filter(|f| f.is_finite())
                .map_or(f, |f| f.clamp(0.0, 1.0));
            let upper = shown + 2.0 * r.quantum;
            if upper < 1.0 {
                bound(secs(now - origin) * (1.0 + (1.0 - upper) / (upper * s)));
            }
        }
        earliest.map(|e| origin + chrono::Duration::milliseconds((e * 1000.0) as i64))
    }

    /// The wait the vendor's hints suggest, if they suggest one (before clamping).
    fn hint(
        &mut self,
        now: DateTime<Utc>,
        origin: DateTime<Utc>,
        progress: &Progress,
    ) -> Option<Duration> {
        let secs = |d: chrono::Duration| d.num_milliseconds() as f64 / 1000.0;
        let wait = |s: f64| Duration::from_secs_f64(s.max(0.0));
        let elapsed = secs(now - origin).max(0.0);
        let overdue = (OVERDUE_CADENCE * elapsed).min(self.policy.max_delay.as_secs_f64());
        if let Some(eta) = progress.eta {
            let left = secs(eta - now);
            if left <= 0.0 {
                return Some(wait(overdue));
            }
            let early = ETA_EARLY_LOOK * secs(eta - origin);
            if left > self.policy.max_delay.as_secs_f64()
                && self.state.eta_checked != Some(eta)
                && left > early
            {
                self.state.eta_checked = Some(eta);
                return Some(wait(left - early));
            }
            return Some(wait(left));
        }
        let growth = ZERO_PROGRESS_GROWTH * elapsed;
        let Some(r) = self.state.reached else {
            if progress.fraction.is_some() {
                return Some(wait(growth));
            }
            // Nothing from the vendor: the prior's earliest end, then its own pace.
            let earliest = self.policy.prior.as_ref()?.earliest()?.as_secs_f64();
            return Some(wait((earliest - elapsed).max(PRIOR_CADENCE * elapsed)));
        };
        // When between the two polls was the fraction reached? In the middle when one coarse
        // step went by (0 → 30 %), near the end when many fine steps did (2/113 → 40/113).
        let w = (1.0 - r.quantum / (2.0 * (r.fraction - r.before))).clamp(0.5, 1.0);
        let span = secs(r.seen - r.after);
        let reached_at = secs(r.after - origin) + w * span;
        if reached_at <= 0.0 {
            return Some(wait(growth));
        }
        let total = reached_at / r.fraction;
        let uncertainty = (1.0 - w) * span / reached_at + PROGRESS_SPREAD * (1.0 - r.fraction);
        if uncertainty >= 1.0 {
            // Too vague to aim at: keep growing the wait, but not past twice the predicted end.
            return Some(wait((2.0 * total - elapsed).min(growth).max(overdue)));
        }
        let target = total * (1.0 - AIM_EARLY * uncertainty);
        Some(wait((target - elapsed).max(overdue)))
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
        // A short ETA is slept to exactly.
        let p = Progress {
            eta: Some(now + chrono::Duration::seconds(60)),
            ..progress(None)
        };
        assert_eq!(s.after_pending(now, &p), Duration::from_secs(60));

        // A long one is skipped only up to where the report can plausibly be ready (the
        // ETA may be 25 % too far), then looked at every `max_lag`.
        let mut s = WaitPolicy::default().with_jitter(0.0).scheduler();
        let eta = now + chrono::Duration::seconds(600);
        let p = Progress {
            eta: Some(eta),
            ..progress(None)
        };
        assert_eq!(s.after_pending(now, &p), Duration::from_secs(450));
        let later = now + chrono::Duration::seconds(450);
        assert_eq!(s.after_pending(later, &p), Duration::from_secs(60));

        // Past the ETA: every 20 % of the time waited so far, at most `max_delay` apart.
        let late = now + chrono::Duration::seconds(650);
        assert_eq!(s.after_pending(late, &p), Duration::from_secs(60));
        let mut s = WaitPolicy::default().with_jitter(0.0).scheduler();
        let p = Progress {
            eta: Some(now - chrono::Duration::seconds(5)),
            ..progress(None)
        };
        assert_eq!(s.after_pending(now, &p), Duration::from_secs(1));
        let t = now + chrono::Duration::seconds(100);
        assert_eq!(s.after_pending(t, &p), Duration::from_secs(20));
    }

    #[test]
    fn zero_progress_waits_three_times_the_time_so_far() {
        let mut s = WaitPolicy::default().with_jitter(0.0).scheduler();
        let t0 = Utc::now();
        // Nothing waited yet: the floor, `initial_delay`.
        assert_eq!(
            s.after_pending(t0, &progress(Some(0.0))),
            Duration::from_secs(1)
        );
        let t = t0 + chrono::Duration::seconds(10);
        assert_eq!(
            s.after_pending(t, &progress(Some(0.0))),
            Duration::from_secs(30)
        );
    }

    #[test]
    fn progress_predicts_completion() {
        // Fine-grained progress (0.5 % steps) of a 1000 s report.
        let mut s = WaitPolicy::default().with_jitter(0.0).scheduler();
        let t0 = Utc::now();
        let at = |secs| t0 + chrono::Duration::seconds(secs);
        s.after_pending(t0, &progress(Some(0.0)));
        s.after_pending(at(5), &progress(Some(0.005)));
        let d = s.after_pending(at(200), &progress(Some(0.2))).as_secs_f64();
        // Predicted end ≈ 1000 s, but the rest may go up to 3× faster: at 20.5 % at most
        // after 200 s, it can plausibly be ready from ≈ 458 s on, and that is the next look.
        let next = 200.0 + d;
        assert!((450.0..=460.0).contains(&next), "next look at {next} s");

        // One coarse step (0 → 30 %) seen between 10 s and 40 s: reached at ≈ 25 s, so the
        // end is predicted at ≈ 83 s, and the look aimed before it.
        let mut s = WaitPolicy::default().with_jitter(0.0).scheduler();
        s.after_pending(t0, &progress(Some(0.0)));
        s.after_pending(at(10), &progress(Some(0.0)));
        let d = s.after_pending(at(40), &progress(Some(0.3))).as_secs_f64();
        let next = 40.0 + d;
        assert!((45.0..=83.4).contains(&next), "next look at {next} s");
    }

    #[test]
    fn past_the_predicted_end_looks_at_a_relative_cadence() {
        let mut s = WaitPolicy::default().with_jitter(0.0).scheduler();
        let t0 = Utc::now();
        let at = |secs| t0 + chrono::Duration::seconds(secs);
        s.after_pending(t0, &progress(Some(0.0)));
        s.after_pending(at(10), &progress(Some(0.5)));
        // Predicted end ≈ 15 s; at 100 s still 50 %: every 20 % of the time so far…
        assert_eq!(
            s.after_pending(at(100), &progress(Some(0.5))),
            Duration::from_secs(20)
        );
        // …but never more than `max_delay` apart.
        assert_eq!(
            s.after_pending(at(1000), &progress(Some(0.5))),
            Duration::from_secs(60)
        );
    }

    #[test]
    fn the_first_delay_dates_the_start() {
        // A start answer without status: the first look comes after `first_delay`, and the
        // time waited counts from the start, not from that look.
        let mut s = WaitPolicy::default().with_jitter(0.0).scheduler();
        assert_eq!(s.first_delay(), Duration::from_secs(1));
        let t1 = Utc::now();
        s.after_pending(t1, &progress(Some(0.0)));
        // 1 + 3 s waited so far at the second look: three times that next.
        let d = s.after_pending(t1 + chrono::Duration::seconds(3), &progress(Some(0.0)));
        assert_eq!(d, Duration::from_secs(12));
    }

    #[test]
    fn the_cap_is_never_jittered_beyond() {
        let mut s = WaitPolicy::default().with_seed(3).scheduler();
        let now = Utc::now();
        for i in 0..12 {
            let d = s.after_pending(now, &progress(None)).as_secs_f64();
            let base = (1u64 << i.min(6)).min(60) as f64;
            if base >= 60.0 {
                assert_eq!(d, 60.0, "step {i}");
            } else {
                assert!(
                    d >= base * 0.9 - 1e-9 && d <= base * 1.1 + 1e-9,
                    "step {i}: {d}"
                );
            }
        }
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

    /// Runs a wait in virtual time against `status(t)` (seconds since the start; `None` once
    /// ready) from a start answer carrying the status at 0 s. Returns the poll times.
    fn simulate(policy: &WaitPolicy, ready_at: f64, status: impl Fn(f64) -> Progress) -> Vec<f64> {
        let t0 = Utc::now();
        let mut s = policy.scheduler();
        let mut t = 0.0;
        let mut polls = vec![];
        while t < ready_at {
            let now = t0 + chrono::Duration::milliseconds((t * 1000.0) as i64);
            t += s.after_pending(now, &status(t)).as_secs_f64();
            polls.push(t);
            assert!(polls.len() < 10_000, "runaway wait");
        }
        polls
    }

    fn gaps_after(polls: &[f64], from: f64) -> f64 {
        polls
            .windows(2)
            .filter(|w| w[1] > from)
            .map(|w| w[1] - w[0].max(from))
            .fold(0.0, f64::max)
    }

    fn with_eta(t0_eta: f64) -> impl Fn(f64) -> Progress {
        let t0 = Utc::now();
        move |_| Progress {
            eta: Some(t0 + chrono::Duration::milliseconds((t0_eta * 1000.0) as i64)),
            ..progress(None)
        }
    }

    #[test]
    fn a_report_ready_at_the_earliest_plausible_moment_is_noticed_within_max_lag() {
        let policy = WaitPolicy::default().with_seed(5);
        // ETA 10 000 s: plausible from 7 500 s on.
        let polls = simulate(&policy, 7500.0, with_eta(10_000.0));
        let lag = polls.last().unwrap() - 7500.0;
        assert!(lag <= 60.0, "noticed {lag} s late");
        // No looks before it but those `max_hinted_delay` (1 h) forces.
        assert!(polls.len() <= 4, "{polls:?}");

        // A learned prior: plausible from its earliest duration on.
        let mut prior = DurationPrior::new();
        for d in [900, 1000, 1100, 950, 1050] {
            prior.record(Duration::from_secs(d));
        }
        let earliest = prior.earliest().unwrap().as_secs_f64();
        let policy = policy.with_prior(Some(prior));
        let polls = simulate(&policy, earliest, |_| progress(None));
        assert!(polls.last().unwrap() - earliest <= 60.0, "{polls:?}");
        assert!(
            polls.len() <= 3,
            "the prior skips the looks before it: {polls:?}"
        );
    }

    #[test]
    fn a_far_eta_is_still_polled_every_max_lag_once_plausible() {
        let policy = WaitPolicy::default().with_seed(9);
        // The ETA says 10 000 s; the report is ready at 9 990 s, or never before the ETA.
        for ready in [8000.0, 9990.0, 12_000.0] {
            let polls = simulate(&policy, ready, with_eta(10_000.0));
            assert!(gaps_after(&polls, 7500.0) <= 60.0 + 1e-6, "{polls:?}");
            assert!(polls.last().unwrap() - ready <= 60.0);
        }
        // Without a lag budget worth the name, the same ETA would be slept to in one go.
        let loose = policy.with_max_lag(MaxLag::Fixed(Duration::from_secs(3600)));
        let polls = simulate(&loose, 7600.0, with_eta(10_000.0));
        assert!(polls.last().unwrap() - 7600.0 > 60.0, "{polls:?}");
    }

    #[test]
    fn progress_may_speed_up_threefold_and_is_still_noticed_within_max_lag() {
        let policy = WaitPolicy::default().with_seed(2);
        for duration in [20.0, 300.0, 1000.0, 5000.0] {
            // The first 3/4 of the work at an even pace, the last quarter 3× faster.
            let slow = 0.75 * duration / (0.75 + 0.25 / 3.0);
            let curve = move |t: f64| {
                let f = if t < slow {
                    0.75 * t / slow
                } else {
                    0.75 + 0.25 * (t - slow) / (duration - slow)
                };
                // Whole percents, as DocSpace-like vendors report them.
                progress(Some((f * 100.0).floor() / 100.0))
            };
            let polls = simulate(&policy, duration, curve);
            let lag = polls.last().unwrap() - duration;
            assert!(lag <= 60.0, "{duration} s report noticed {lag} s late");
        }
    }

    #[test]
    fn the_relative_budget_grows_with_the_time_waited() {
        let budget = MaxLag::Relative {
            fraction: 0.1,
            at_least: Duration::from_secs(60),
        };
        assert_eq!(budget.at(Duration::from_secs(100)), Duration::from_secs(60));
        assert_eq!(
            budget.at(Duration::from_secs(3000)),
            Duration::from_secs(300)
        );
        let policy = WaitPolicy::default().with_seed(4).with_max_lag(budget);
        // No hints at all: the backoff grows past 60 s, but never past 10 % of the wait.
        let polls = simulate(&policy, 20_000.0, |_| progress(None));
        let mut widest = 0.0f64;
        for w in polls.windows(2) {
            let allowed = (0.1 * w[0]).max(60.0);
            assert!(w[1] - w[0] <= allowed + 1e-6, "{} → {}", w[0], w[1]);
            widest = widest.max(w[1] - w[0]);
        }
        assert!(widest > 1000.0, "the budget was used: {widest}");
        // The default keeps the doubling loop's promise.
        let polls = simulate(&WaitPolicy::default(), 20_000.0, |_| progress(None));
        assert!(gaps_after(&polls, 0.0) <= 60.0 + 1e-6, "{polls:?}");
    }

    #[test]
    fn retry_after_still_outranks_the_lag_budget() {
        let mut s = WaitPolicy::default()
            .with_max_lag(MaxLag::Fixed(Duration::from_secs(10)))
            .scheduler();
        let p = Progress {
            retry_after: Some(Duration::from_secs(90)),
            ..progress(None)
        };
        assert_eq!(s.after_pending(Utc::now(), &p), Duration::from_secs(90));
    }
}
