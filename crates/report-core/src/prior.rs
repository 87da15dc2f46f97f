//! What past reports of one vendor and kind took: the prior a [`WaitPolicy`] uses to skip
//! polls while a new report of that kind cannot plausibly be ready.
//!
//! [`WaitPolicy`]: crate::WaitPolicy

use std::time::Duration;

use serde::{Deserialize, Serialize};

/// Below this many durations (or ETA errors) the summary says nothing.
pub const PRIOR_MIN_COUNT: u32 = 3;
/// The earliest plausible duration is this many standard deviations below the mean (in log
/// space), and never above the shortest seen.
const LOW_SIGMAS: f64 = 2.5;
/// The ETA ratio floor keeps this margin below the lowest ratio seen.
const ETA_MARGIN: f64 = 0.95;

/// A small, serializable summary of past durations (count, mean and spread of their
/// logarithms, the shortest) and of how early reports finished relative to the vendor's ETA.
/// Keep one per vendor and report kind; [`record`](Self::record) every finished job.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct DurationPrior {
    count: u32,
    /// Mean of `ln(seconds)`.
    mean_ln: f64,
    /// Sum of squared deviations of `ln(seconds)` (Welford).
    m2_ln: f64,
    /// The shortest duration seen, in seconds.
    min_secs: f64,
    eta_count: u32,
    /// The lowest `actual / predicted` time-to-ready seen.
    eta_ratio_min: f64,
}

impl DurationPrior {
    /// An empty summary.
    pub fn new() -> Self {
        Self::default()
    }

    /// Durations recorded.
    pub fn count(&self) -> u32 {
        self.count
    }

    /// Adds a finished report's duration (from start to ready). Zero or absurd values are
    /// ignored.
    pub fn record(&mut self, duration: Duration) {
        let secs = duration.as_secs_f64();
        if !(secs >= 0.001 && secs.is_finite()) {
            return;
        }
        let x = secs.ln();
        self.count = self.count.saturating_add(1);
        let delta = x - self.mean_ln;
        self.mean_ln += delta / f64::from(self.count);
        self.m2_ln += delta * (x - self.mean_ln);
        self.min_secs = if self.count == 1 {
            secs
        } else {
            self.min_secs.min(secs)
        };
    }

    /// Adds how a vendor's ETA compared: it predicted `predicted` from the start, the report
    /// took `actual`.
    pub fn record_eta(&mut self, predicted: Duration, actual: Duration) {
        let ratio = actual.as_secs_f64() / predicted.as_secs_f64();
        if !(ratio.is_finite() && ratio > 0.0) {
            return;
        }
        self.eta_count = self.eta_count.saturating_add(1);
        self.eta_ratio_min = if self.eta_count == 1 {
            ratio
        } else {
            self.eta_ratio_min.min(ratio)
        };
    }

    /// The typical duration (geometric mean), once enough are known.
    pub fn typical(&self) -> Option<Duration> {
        (self.count >= PRIOR_MIN_COUNT).then(|| Duration::from_secs_f64(self.mean_ln.exp()))
    }

    /// The earliest plausible duration, once enough are known.
    pub fn earliest(&self) -> Option<Duration> {
        if self.count < PRIOR_MIN_COUNT {
            return None;
        }
        let sd = (self.m2_ln / f64::from(self.count - 1)).max(0.0).sqrt();
        let low = (self.mean_ln - LOW_SIGMAS * sd).exp().min(self.min_secs);
        low.is_finite().then(|| Duration::from_secs_f64(low))
    }

    /// A report can plausibly be ready from this share of the time to the vendor's ETA on
    /// (`None`: not enough ETAs seen).
    pub fn eta_ratio_floor(&self) -> Option<f64> {
        (self.eta_count >= PRIOR_MIN_COUNT).then(|| (self.eta_ratio_min * ETA_MARGIN).min(1.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn says_nothing_until_enough_is_known() {
        let mut p = DurationPrior::new();
        p.record(Duration::from_secs(100));
        p.record(Duration::from_secs(100));
        assert_eq!(p.earliest(), None);
        p.record(Duration::from_secs(100));
        assert_eq!(p.earliest(), Some(Duration::from_secs(100)));
        assert_eq!(p.typical(), Some(Duration::from_secs(100)));
    }

    #[test]
    fn the_earliest_is_below_the_spread_and_the_shortest() {
        let mut p = DurationPrior::new();
        for s in [70, 85, 100, 115, 130] {
            p.record(Duration::from_secs(s));
        }
        let e = p.earliest().unwrap().as_secs_f64();
        assert!(e < 70.0 && e > 35.0, "earliest {e}");
        let typical = p.typical().unwrap().as_secs_f64();
        assert!((95.0..=100.0).contains(&typical), "typical {typical}");
        // Nonsense is ignored.
        p.record(Duration::ZERO);
        assert_eq!(p.count(), 5);
    }

    #[test]
    fn eta_ratios_and_serde_round_trip() {
        let mut p = DurationPrior::new();
        for (predicted, actual) in [(100, 90), (100, 110), (100, 80)] {
            p.record_eta(Duration::from_secs(predicted), Duration::from_secs(actual));
        }
        p.record_eta(Duration::ZERO, Duration::from_secs(5));
        assert!((p.eta_ratio_floor().unwrap() - 0.76).abs() < 1e-9);
        let json = serde_json::to_string(&p).unwrap();
        assert_eq!(serde_json::from_str::<DurationPrior>(&json).unwrap(), p);
    }
}
