//! Polling efficiency, in virtual time: how many status requests a job makes and how late it
//! learns that its report is ready, for each vendor's kind of status, under the default
//! [`WaitPolicy`] and two baselines run on the very same jobs.
//!
//! Nothing here talks HTTP. Each vendor is a simulated [`ReportAdapter`] whose answers depend
//! only on a [`VirtualClock`]: the real [`Job`] and [`WaitPolicy`] code is what runs, and every
//! sleep it asks for moves the clock at once.

use std::sync::Arc;
use std::time::Duration;

use std::future::Future;
use std::pin::Pin;
use std::sync::{Mutex, OnceLock};

use chrono::{DateTime, Utc};
use rand::{Rng, SeedableRng, rngs::SmallRng};
use report_core::{
    Artifact, Clock, Download, DurationPrior, Error, Job, MaxLag, Nudge, Progress, ReportAdapter,
    Result, Started, Status, Ticket, VirtualClock, WaitPolicy,
};

use crate::stats::{self, Table, fmt_ratio, fmt_secs, ratio};

/// Shortest and longest report durations drawn (log-uniformly).
pub const MIN_DURATION: f64 = 5.0;
pub const MAX_DURATION: f64 = 2.0 * 3600.0;
/// How many equal slices of work a job's uneven progress curve has.
const SLICES: usize = 4;
/// Relative spread of each slice's speed: a slice takes `U(1 - s, 1 + s)` × its even share.
pub const SPEED_SPREAD: f64 = 0.5;
/// OFD's `AssumptiveCompleteTime` is off by up to this fraction of the duration (uniform).
pub const OFD_ETA_ERROR: f64 = 0.2;
/// Repeated reports: how many report kinds, how far each job's duration strays from its
/// kind's typical one (uniform ±), and how many past jobs of the kind the prior learned from.
pub const KINDS: usize = 12;
pub const KIND_SPREAD: f64 = 0.3;
pub const PRIOR_JOBS: usize = 20;
/// Webhook model: EvoVoice calls back this long after completion at most (uniform from 0),
/// and this share of callbacks never arrives.
pub const CALLBACK_DELAY: f64 = 5.0;
pub const CALLBACK_LOSS: f64 = 0.1;

/// The lag budgets of the frontier.
pub fn frontier() -> [(&'static str, MaxLag); 4] {
    [
        ("30 s", MaxLag::Fixed(Duration::from_secs(30))),
        ("60 s (default)", MaxLag::Fixed(Duration::from_secs(60))),
        ("5 min", MaxLag::Fixed(Duration::from_secs(300))),
        (
            "10 % of elapsed (≥ 60 s)",
            MaxLag::Relative {
                fraction: 0.1,
                at_least: Duration::from_secs(60),
            },
        ),
    ]
}

/// What is simulated around the vendors' statuses.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// Durations log-uniform, no history: the sandbox-like vendors.
    SandboxLike,
    /// Each report kind has a typical duration, each job ±30 % around it; the default policy
    /// gets a [`DurationPrior`] learned from past jobs of the kind.
    Repeated,
    /// EvoVoice calling the `webhookUrl` back after completion (some calls lost); the default
    /// policy is nudged by each call.
    Webhook,
}

impl Scenario {
    pub const ALL: [Scenario; 3] = [Scenario::SandboxLike, Scenario::Repeated, Scenario::Webhook];

    fn name(&self) -> String {
        match self {
            Scenario::SandboxLike => "sandbox-like vendors (no history)".into(),
            Scenario::Repeated => format!(
                "repeated reports ({KINDS} kinds, each job ±{:.0} % around its kind's typical \
                 duration; the default policy learned a prior from {PRIOR_JOBS} past jobs of the kind)",
                KIND_SPREAD * 100.0
            ),
            Scenario::Webhook => format!(
                "webhook (EvoVoice calls back 0–{CALLBACK_DELAY:.0} s after completion; {:.0} % of \
                 callbacks never arrive; the default policy is nudged by each call)",
                CALLBACK_LOSS * 100.0
            ),
        }
    }

    fn models(&self, eta_error: f64) -> Vec<Model> {
        match self {
            Scenario::Webhook => vec![Model::EvoVoice],
            _ => models(eta_error),
        }
    }
}

/// What a job's wait knows or gets besides the statuses.
#[derive(Clone, Debug, Default)]
pub struct Extras {
    /// A learned prior for the job's kind (repeated reports).
    pub prior: Option<DurationPrior>,
    /// Seconds after completion the webhook calls, `None` when it never does.
    pub callback: Option<f64>,
}

/// What a vendor's pending status tells.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Model {
    /// ONLYOFFICE DocSpace: `percentage` stepping 0 → 30 → 60 → 100.
    DocSpace,
    /// MetaKocka: free-text progress ending in `N / M`.
    MetaKocka,
    /// OFD.ru: an `AssumptiveCompleteTime` fixed at creation, off by up to ± `eta_error` × the
    /// duration.
    Ofd { eta_error: f64 },
    /// EvoVoice: `Queued` / `Running`, nothing more.
    EvoVoice,
    /// CloudBlue: `submitted` / `processing`, nothing more.
    CloudBlue,
}

impl Model {
    pub fn name(&self) -> String {
        match self {
            Model::DocSpace => "DocSpace (percentage 0→30→60→100)".into(),
            Model::MetaKocka => "MetaKocka (\"N / M\" progress)".into(),
            Model::Ofd { eta_error } => format!(
                "OFD (AssumptiveCompleteTime, accurate within ±{:.0} %)",
                eta_error * 100.0
            ),
            Model::EvoVoice => "EvoVoice (no progress)".into(),
            Model::CloudBlue => "CloudBlue (no progress)".into(),
        }
    }
}

/// One simulated report: its duration and how unevenly its work advances.
#[derive(Clone, Copy, Debug)]
pub struct JobSpec {
    /// Seconds from start to ready.
    pub duration: f64,
    /// Times (as fractions of the duration) at which 0, 1/4, … 4/4 of the work is done.
    knots: [f64; SLICES + 1],
    /// MetaKocka's `M` (items to prepare).
    items: u32,
    /// OFD's ETA error, in `-1..=1` (scaled by the model's error bound).
    eta_u: f64,
}

impl JobSpec {
    /// Fraction of the work done at `t` seconds (piecewise linear, uneven speed).
    pub fn progress_at(&self, t: f64) -> f64 {
        let x = (t / self.duration).clamp(0.0, 1.0);
        for k in 0..SLICES {
            let (a, b) = (self.knots[k], self.knots[k + 1]);
            if x < b {
                return (k as f64 + (x - a) / (b - a)) / SLICES as f64;
            }
        }
        1.0
    }
}

/// `n` jobs from a fixed seed: durations log-uniform in 5 s … 2 h; each quarter of the work
/// takes `U(1 - spread, 1 + spread)` × its even share of the time.
pub fn jobs(n: usize, seed: u64, spread: f64) -> Vec<JobSpec> {
    let spread = spread.clamp(0.0, 0.95);
    let mut rng = SmallRng::seed_from_u64(seed);
    (0..n)
        .map(|_| {
            let u: f64 = rng.random();
            let duration = (MIN_DURATION.ln() + u * (MAX_DURATION.ln() - MIN_DURATION.ln())).exp();
            let weights: [f64; SLICES] =
                std::array::from_fn(|_| rng.random_range((1.0 - spread)..=(1.0 + spread)));
            let total: f64 = weights.iter().sum();
            let mut knots = [0.0; SLICES + 1];
            for k in 0..SLICES {
                knots[k + 1] = knots[k] + weights[k] / total;
            }
            knots[SLICES] = 1.0;
            JobSpec {
                duration,
                knots,
                items: rng.random_range(5..=200),
                eta_u: rng.random_range(-1.0..=1.0),
            }
        })
        .collect()
}

/// Repeated reports: `n` jobs over [`KINDS`] kinds whose typical durations are drawn like
/// [`jobs`]' and each job's ±[`KIND_SPREAD`] around it; each with the prior learned from
/// [`PRIOR_JOBS`] earlier jobs of its kind (durations and, for ETA vendors, ETA errors).
pub fn repeated_jobs(n: usize, seed: u64, spread: f64, eta_error: f64) -> Vec<(JobSpec, Extras)> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0x005E_ED0F_C1D5);
    let typical: Vec<f64> = jobs(KINDS, seed.wrapping_add(1), spread)
        .iter()
        .map(|j| j.duration)
        .collect();
    let draw = |rng: &mut SmallRng, kind: usize| {
        typical[kind] * rng.random_range((1.0 - KIND_SPREAD)..=(1.0 + KIND_SPREAD))
    };
    let priors: Vec<DurationPrior> = (0..KINDS)
        .map(|kind| {
            let mut prior = DurationPrior::new();
            for _ in 0..PRIOR_JOBS {
                let d = draw(&mut rng, kind);
                let u: f64 = rng.random_range(-1.0..=1.0);
                prior.record(Duration::from_secs_f64(d));
                let eta = (d * (1.0 + eta_error * u)).ceil().max(1.0);
                prior.record_eta(Duration::from_secs_f64(eta), Duration::from_secs_f64(d));
            }
            prior
        })
        .collect();
    jobs(n, seed, spread)
        .into_iter()
        .map(|mut spec| {
            let kind = rng.random_range(0..KINDS);
            spec.duration = draw(&mut rng, kind);
            let extras = Extras {
                prior: Some(priors[kind].clone()),
                callback: None,
            };
            (spec, extras)
        })
        .collect()
}

/// The webhook model's callbacks for `n` jobs: a delay after completion, or lost.
pub fn callbacks(n: usize, seed: u64) -> Vec<Option<f64>> {
    let mut rng = SmallRng::seed_from_u64(seed ^ 0xCA11_BAC5);
    (0..n)
        .map(|_| {
            let lost = rng.random_bool(CALLBACK_LOSS);
            let delay = rng.random_range(0.0..=CALLBACK_DELAY);
            (!lost).then_some(delay)
        })
        .collect()
}

/// A virtual clock that delivers the webhook: a sleep that spans the callback ends at it, with
/// the job nudged (the sleep itself then never ends, so the nudge is what wakes the wait).
#[derive(Debug)]
struct CallbackClock {
    time: Arc<VirtualClock>,
    callback_at: Mutex<Option<DateTime<Utc>>>,
    nudge: OnceLock<Nudge>,
}

impl Clock for CallbackClock {
    fn now(&self) -> DateTime<Utc> {
        self.time.now()
    }

    fn sleep(&self, duration: Duration) -> Pin<Box<dyn Future<Output = ()> + Send + 'static>> {
        let now = self.time.now();
        let mut callback_at = self.callback_at.lock().expect("callback lock");
        if let (Some(at), Some(nudge)) = (*callback_at, self.nudge.get())
            && at <= now + chrono::Duration::from_std(duration).unwrap_or(chrono::Duration::MAX)
        {
            *callback_at = None;
            self.time.advance((at - now).to_std().unwrap_or_default());
            nudge.nudge();
            return Box::pin(futures::future::pending());
        }
        self.time.sleep(duration)
    }
}

fn epoch() -> DateTime<Utc> {
    DateTime::parse_from_rfc3339("2026-11-23T09:00:00Z")
        .expect("valid date")
        .to_utc()
}

fn chrono_secs(s: f64) -> chrono::Duration {
    chrono::Duration::nanoseconds((s * 1e9).round() as i64)
}

/// A vendor's status answers for one job, as a function of the virtual clock.
struct SimAdapter {
    model: Model,
    spec: JobSpec,
    clock: Arc<VirtualClock>,
    t0: DateTime<Utc>,
}

impl SimAdapter {
    fn new(model: Model, spec: JobSpec, clock: Arc<VirtualClock>) -> Self {
        let t0 = clock.now();
        SimAdapter {
            model,
            spec,
            clock,
            t0,
        }
    }

    fn ready_at(&self) -> DateTime<Utc> {
        self.t0 + chrono_secs(self.spec.duration)
    }

    fn status(&self, at_start: bool) -> Option<Status> {
        let now = self.clock.now();
        if now >= self.ready_at() {
            return Some(Status::Ready(Artifact::default()));
        }
        let t = (now - self.t0).num_nanoseconds().unwrap_or(0) as f64 / 1e9;
        let p = self.spec.progress_at(t);
        let progress = match self.model {
            Model::DocSpace => {
                let percent = if p < 0.3 {
                    0
                } else if p < 0.6 {
                    30
                } else {
                    60
                };
                Progress {
                    fraction: Some(f64::from(percent) / 100.0),
                    ..Progress::state(if at_start { "Created" } else { "Running" })
                }
            }
            Model::MetaKocka => {
                if at_start {
                    // The start answer holds only the token.
                    return None;
                }
                let m = self.spec.items;
                let n = ((p * f64::from(m)).floor() as u32).min(m - 1);
                Progress {
                    fraction: Some(f64::from(n) / f64::from(m)),
                    message: Some(format!("Priprava podatkov za račun {n} / {m}")),
                    ..Progress::state("printing")
                }
            }
            Model::Ofd { eta_error } => {
                let eta = self.spec.duration * (1.0 + eta_error * self.spec.eta_u);
                // Printed to the second, rounded up like the sandbox's.
                let eta = eta.ceil().max(1.0);
                Progress {
                    eta: Some(self.t0 + chrono_secs(eta)),
                    message: Some("Сверка".into()),
                    ..Progress::state(if p < 0.25 { "Todo" } else { "Processing" })
                }
            }
            Model::EvoVoice => Progress::state(if at_start { "Queued" } else { "Running" }),
            Model::CloudBlue => Progress::state(if at_start { "submitted" } else { "processing" }),
        };
        Some(Status::Pending(progress))
    }
}

impl ReportAdapter for SimAdapter {
    type Request = ();

    fn vendor(&self) -> &'static str {
        "sim"
    }

    async fn start(&self, _: &()) -> Result<Started> {
        Ok(Started {
            ticket: Ticket::new("sim", "job", self.t0),
            status: self.status(true),
        })
    }

    async fn poll(&self, _: &Ticket) -> Result<Status> {
        Ok(self.status(false).expect("polls always answer"))
    }

    async fn open(&self, _: &Artifact, _: u64) -> Result<Download> {
        Err(Error::Unsupported {
            vendor: "sim",
            operation: "open",
        })
    }
}

/// How a job is waited for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Policy {
    /// The vendor documents' loop: every 10 s, give up after 5 tries.
    VendorDocs,
    /// Exponential backoff 1 s → 60 s, doubling, no jitter, no hints.
    Doubling,
    /// `WaitPolicy::default()` (jitter seeded per job), with the scenario's prior or nudges.
    Default,
    /// `WaitPolicy::default().with_hints(false)`: what the hints buy.
    DefaultNoHints,
    /// The default with the lag budget `frontier()[i]`.
    Budget(usize),
}

impl Policy {
    pub const ALL: [Policy; 4] = [
        Policy::VendorDocs,
        Policy::Doubling,
        Policy::Default,
        Policy::DefaultNoHints,
    ];

    fn name(&self) -> String {
        match self {
            Policy::VendorDocs => "vendor docs: every 10 s, 5 tries".into(),
            Policy::Doubling => "baseline: doubling 1 s → 60 s".into(),
            Policy::Default => "WaitPolicy::default()".into(),
            Policy::DefaultNoHints => "default, hints off".into(),
            Policy::Budget(i) => format!("default, max_lag {}", frontier()[*i].0),
        }
    }
}

/// What one job under one policy cost.
#[derive(Clone, Copy, Debug)]
pub struct Outcome {
    pub requests: u32,
    /// Seconds from "ready" on the server to the client knowing; `None` when abandoned.
    pub lag: Option<f64>,
    pub duration: f64,
    /// Seconds from "ready" to the webhook's call (`None`: no call).
    pub callback: Option<f64>,
}

async fn run_one(
    model: Model,
    spec: JobSpec,
    policy: Policy,
    seed: u64,
    extras: &Extras,
) -> Outcome {
    let clock = Arc::new(VirtualClock::new(epoch()));
    let adapter = SimAdapter::new(model, spec, clock.clone());
    let ready_at = adapter.ready_at();
    let lag_now = || (clock.now() - ready_at).num_nanoseconds().unwrap_or(0) as f64 / 1e9;
    let outcome = |requests, lag| Outcome {
        requests,
        lag,
        duration: spec.duration,
        callback: extras.callback,
    };
    match policy {
        Policy::VendorDocs => {
            adapter.start(&()).await.expect("start");
            let ticket = Ticket::new("sim", "job", epoch());
            for tries in 1..=5 {
                clock.sleep(Duration::from_secs(10)).await;
                if let Status::Ready(_) = adapter.poll(&ticket).await.expect("poll") {
                    return outcome(tries, Some(lag_now()));
                }
            }
            outcome(5, None)
        }
        Policy::Doubling => {
            adapter.start(&()).await.expect("start");
            let ticket = Ticket::new("sim", "job", epoch());
            let mut delay = 1.0f64;
            let mut requests = 0;
            loop {
                clock.sleep(Duration::from_secs_f64(delay)).await;
                requests += 1;
                if let Status::Ready(_) = adapter.poll(&ticket).await.expect("poll") {
                    return outcome(requests, Some(lag_now()));
                }
                delay = (delay * 2.0).min(60.0);
            }
        }
        Policy::Default | Policy::DefaultNoHints | Policy::Budget(_) => {
            let mut wait = WaitPolicy::default()
                .with_seed(seed)
                .with_prior(extras.prior.clone());
            match policy {
                Policy::DefaultNoHints => wait = wait.with_hints(false),
                Policy::Budget(i) => wait = wait.with_max_lag(frontier()[i].1),
                _ => {}
            }
            let callback_clock = Arc::new(CallbackClock {
                time: clock.clone(),
                callback_at: Mutex::new(extras.callback.map(|d| ready_at + chrono_secs(d))),
                nudge: OnceLock::new(),
            });
            let job = Job::start_with_clock(adapter, &(), wait, callback_clock.clone())
                .await
                .expect("start");
            let _ = callback_clock.nudge.set(job.nudger());
            let done = job.wait().await;
            let requests = job.stats().polls;
            if std::env::var("RB_TRACE").is_ok_and(|v| v == seed.to_string()) {
                eprintln!(
                    "{model:?} D={:.1} knots={:?} M={} sleeps={:?}",
                    spec.duration,
                    spec.knots,
                    spec.items,
                    clock
                        .sleeps()
                        .iter()
                        .map(|d| (d.as_secs_f64() * 10.0).round() / 10.0)
                        .collect::<Vec<_>>()
                );
            }
            outcome(requests, done.ok().map(|_| lag_now()))
        }
    }
}

/// The figures of one (vendor, policy) cell.
#[derive(Clone, Copy, Debug)]
pub struct Summary {
    pub mean_requests: f64,
    pub mean_lag: f64,
    pub p95_lag: f64,
    pub max_lag: f64,
    /// Mean over jobs of lag / duration.
    pub mean_rel_lag: f64,
    /// Total lag / total duration.
    pub pooled_rel_lag: f64,
    pub failures: usize,
}

pub fn summarize(outcomes: &[Outcome]) -> Summary {
    let requests: Vec<f64> = outcomes.iter().map(|o| f64::from(o.requests)).collect();
    let done: Vec<&Outcome> = outcomes.iter().filter(|o| o.lag.is_some()).collect();
    let lags: Vec<f64> = done.iter().map(|o| o.lag.unwrap_or(0.0)).collect();
    let rel: Vec<f64> = done
        .iter()
        .map(|o| o.lag.unwrap_or(0.0) / o.duration)
        .collect();
    let total_duration: f64 = done.iter().map(|o| o.duration).sum();
    if done.is_empty() {
        // Every job abandoned: no lag to speak of (printed as n/a, not as 0).
        return Summary {
            mean_requests: stats::mean(&requests),
            mean_lag: f64::NAN,
            p95_lag: f64::NAN,
            max_lag: f64::NAN,
            mean_rel_lag: f64::NAN,
            pooled_rel_lag: f64::NAN,
            failures: outcomes.len(),
        };
    }
    Summary {
        mean_requests: stats::mean(&requests),
        mean_lag: stats::mean(&lags),
        p95_lag: stats::percentile(&lags, 95.0),
        max_lag: stats::max(&lags),
        mean_rel_lag: stats::mean(&rel),
        pooled_rel_lag: ratio(lags.iter().sum(), total_duration),
        failures: outcomes.len() - done.len(),
    }
}

/// The models benchmarked, in table order.
pub fn models(eta_error: f64) -> Vec<Model> {
    vec![
        Model::DocSpace,
        Model::MetaKocka,
        Model::Ofd { eta_error },
        Model::EvoVoice,
        Model::CloudBlue,
    ]
}

/// What `report-bench polling` simulates.
#[derive(Debug, clap::Parser)]
pub struct Args {
    /// Jobs per vendor model.
    #[arg(long, default_value_t = 1000)]
    pub jobs: usize,
    /// Seed of the job durations and progress curves.
    #[arg(long, default_value_t = 20261123)]
    pub seed: u64,
    /// How unevenly progress advances: each quarter of the work takes (1 ± this) × its share.
    #[arg(long, default_value_t = SPEED_SPREAD)]
    pub speed_spread: f64,
    /// How far off OFD's AssumptiveCompleteTime may be, as a fraction of the duration.
    #[arg(long, default_value_t = OFD_ETA_ERROR)]
    pub ofd_eta_error: f64,
}

/// The requests/job goal against doubling (ratio of means), if the issue sets one.
fn request_goal(scenario: Scenario, model: Model) -> Option<f64> {
    match (scenario, model) {
        (Scenario::Webhook, _) => None,
        (_, Model::Ofd { .. }) => Some(0.5),
        (_, Model::MetaKocka | Model::DocSpace) => Some(0.7),
        (Scenario::Repeated, _) => Some(0.8),
        (Scenario::SandboxLike, _) => None,
    }
}

/// Runs every scenario and model under every policy and prints the tables; returns whether
/// every goal held.
pub fn run(args: &Args) -> anyhow::Result<bool> {
    let (n, seed) = (args.jobs, args.seed);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_time()
        .build()?;
    let specs = jobs(n, seed, args.speed_spread);
    let durations: Vec<f64> = specs.iter().map(|s| s.duration).collect();
    println!("## polling (virtual time)\n");
    println!(
        "{n} jobs per vendor, seed {seed}: durations log-uniform {} … {} (median {}, mean {}); \
         progress advances in {SLICES} slices of work whose speeds vary by ±{:.0} %. \
         The max lag column is a hard line: ≤ 60 s under the default policy.\n",
        fmt_secs(MIN_DURATION),
        fmt_secs(MAX_DURATION),
        fmt_secs(stats::median(&durations)),
        fmt_secs(stats::mean(&durations)),
        args.speed_spread * 100.0,
    );
    let mut all_met = true;
    for scenario in Scenario::ALL {
        let setups: Vec<(JobSpec, Extras)> = match scenario {
            Scenario::SandboxLike => specs.iter().map(|s| (*s, Extras::default())).collect(),
            Scenario::Repeated => repeated_jobs(n, seed, args.speed_spread, args.ofd_eta_error),
            Scenario::Webhook => specs
                .iter()
                .zip(callbacks(n, seed))
                .map(|(s, callback)| {
                    let extras = Extras {
                        prior: None,
                        callback,
                    };
                    (*s, extras)
                })
                .collect(),
        };
        println!("## {}\n", scenario.name());
        let mut frontier_table = Table::new(
            std::iter::once("vendor".to_string())
                .chain(frontier().iter().map(|(name, _)| format!("max_lag {name}")))
                .collect::<Vec<_>>(),
        );
        for model in scenario.models(args.ofd_eta_error) {
            let policies = Policy::ALL
                .into_iter()
                .chain((0..frontier().len()).map(Policy::Budget));
            let mut all_outcomes = Vec::new();
            for policy in policies {
                let outcomes: Vec<Outcome> = runtime.block_on(async {
                    let mut out = Vec::with_capacity(setups.len());
                    for (i, (spec, extras)) in setups.iter().enumerate() {
                        let job_seed = seed ^ (i as u64 + 1);
                        out.push(run_one(model, *spec, policy, job_seed, extras).await);
                    }
                    out
                });
                all_outcomes.push((policy, outcomes));
            }
            let outcomes_of = |p: Policy| -> &[Outcome] {
                all_outcomes
                    .iter()
                    .find(|(q, _)| *q == p)
                    .map(|(_, o)| o.as_slice())
                    .expect("every policy ran")
            };
            let base = summarize(outcomes_of(Policy::Doubling));
            let ours = summarize(outcomes_of(Policy::Default));
            let mut table = Table::new([
                "policy",
                "requests/job",
                "× doubling",
                "mean lag",
                "× doubling",
                "p95 lag",
                "max lag (≤ 60 s)",
                "mean lag/duration",
                "Σlag/Σduration",
                "abandoned",
            ]);
            for policy in Policy::ALL {
                let s = summarize(outcomes_of(policy));
                table.row([
                    policy.name(),
                    format!("{:.2}", s.mean_requests),
                    fmt_ratio(ratio(s.mean_requests, base.mean_requests)),
                    fmt_secs(s.mean_lag),
                    fmt_ratio(ratio(s.mean_lag, base.mean_lag)),
                    fmt_secs(s.p95_lag),
                    fmt_secs(s.max_lag),
                    fmt_percent(s.mean_rel_lag),
                    fmt_percent(s.pooled_rel_lag),
                    format!("{} / {n}", s.failures),
                ]);
            }
            let mut row = vec![model.name()];
            for i in 0..frontier().len() {
                let s = summarize(outcomes_of(Policy::Budget(i)));
                row.push(format!(
                    "{:.2} ({}), max lag {}",
                    s.mean_requests,
                    fmt_ratio(ratio(s.mean_requests, base.mean_requests)),
                    fmt_secs(s.max_lag)
                ));
            }
            frontier_table.row(row);
            println!("### {}\n", model.name());
            println!("{}", table.render());
            println!("{}", buckets(outcomes_of(Policy::Default)));
            let per_job = |p: Policy, f: &dyn Fn(&Outcome) -> f64| -> Vec<f64> {
                outcomes_of(p).iter().map(f).collect()
            };
            let requests = |o: &Outcome| f64::from(o.requests);
            let lag = |o: &Outcome| o.lag.unwrap_or(f64::NAN);
            let mut goals = vec![
                goal("max lag ≤ 60 s", ours.max_lag, 60.0, "s"),
                paired_goal(
                    "mean lag ≤ doubling",
                    &per_job(Policy::Default, &lag),
                    &per_job(Policy::Doubling, &lag),
                ),
            ];
            match request_goal(scenario, model) {
                Some(limit) => goals.push(goal(
                    &format!("requests/job ≤ {limit}× doubling"),
                    ratio(ours.mean_requests, base.mean_requests),
                    limit,
                    "×",
                )),
                None => goals.push(paired_goal(
                    "requests ≤ doubling",
                    &per_job(Policy::Default, &requests),
                    &per_job(Policy::Doubling, &requests),
                )),
            }
            if scenario == Scenario::Webhook {
                let called: Vec<&Outcome> = outcomes_of(Policy::Default)
                    .iter()
                    .filter(|o| o.callback.is_some())
                    .collect();
                let requests: Vec<f64> = called.iter().map(|o| f64::from(o.requests)).collect();
                let beyond: Vec<f64> = called
                    .iter()
                    .map(|o| o.lag.unwrap_or(f64::INFINITY) - o.callback.unwrap_or(0.0))
                    .collect();
                println!(
                    "Jobs with a callback: {} of {n}; p50 / p90 requests {:.0} / {:.0}.\n",
                    called.len(),
                    stats::percentile(&requests, 50.0),
                    stats::percentile(&requests, 90.0),
                );
                goals.push(goal(
                    "requests/job ≤ 2 for the jobs with a callback",
                    stats::mean(&requests),
                    2.0,
                    "requests",
                ));
                goals.push(goal(
                    "lag ≤ 1 s beyond the callback's delay (max)",
                    stats::max(&beyond),
                    1.0,
                    "s",
                ));
            }
            for (met, line) in goals {
                all_met &= met;
                println!("- {line}");
            }
            println!();
        }
        println!(
            "Frontier ({}): requests/job (× doubling), max lag, per lag budget.\n",
            scenario.name()
        );
        println!("{}", frontier_table.render());
    }
    Ok(all_met)
}

/// A share as `4.2 %` (or `n/a`).
fn fmt_percent(share: f64) -> String {
    if share.is_finite() {
        format!("{:.1} %", share * 100.0)
    } else {
        "n/a".into()
    }
}

/// The default policy's figures by report duration, on one line.
fn buckets(outcomes: &[Outcome]) -> String {
    let edges = [
        (MIN_DURATION, 60.0, "< 1 min"),
        (60.0, 600.0, "1–10 min"),
        (600.0, MAX_DURATION, "10 min – 2 h"),
    ];
    let parts: Vec<String> = edges
        .iter()
        .map(|(lo, hi, name)| {
            let part: Vec<Outcome> = outcomes
                .iter()
                .filter(|o| o.duration >= *lo && o.duration < *hi)
                .copied()
                .collect();
            let s = summarize(&part);
            format!(
                "{name}: {} jobs, {:.2} requests, mean lag {} ({:.1} % of duration)",
                part.len(),
                s.mean_requests,
                fmt_secs(s.mean_lag),
                s.pooled_rel_lag * 100.0
            )
        })
        .collect();
    format!("Default policy by duration — {}.\n", parts.join("; "))
}

/// `ours ≤ baseline` on paired per-job figures; a difference within two standard errors is a
/// tie (met): the schedules are then the same up to jitter.
fn paired_goal(name: &str, ours: &[f64], baseline: &[f64]) -> (bool, String) {
    let (diff, se) = stats::paired_difference(ours, baseline);
    let b = stats::mean(baseline);
    let rel = diff / b * 100.0;
    if diff <= 0.0 {
        (true, format!("goal {name}: met ({rel:+.1} %)"))
    } else if diff <= 2.0 * se {
        (
            true,
            format!(
                "goal {name}: met as a tie ({rel:+.2} %, within 2 standard errors ±{:.2} %: the same schedule up to jitter)",
                2.0 * se / b * 100.0
            ),
        )
    } else {
        (
            false,
            format!("goal {name}: MISSED by {rel:+.1} % ({diff:.2} per job)"),
        )
    }
}

fn goal(name: &str, value: f64, limit: f64, unit: &str) -> (bool, String) {
    let met = value <= limit + 1e-9;
    let line = if met {
        format!("goal {name}: met ({value:.2} vs {limit:.2})")
    } else {
        format!(
            "goal {name}: MISSED by {:.2} {unit} ({:+.1} %)",
            value - limit,
            (value / limit - 1.0) * 100.0
        )
    };
    (met, line)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn jobs_are_reproducible_and_in_range() {
        let a = jobs(200, 7, SPEED_SPREAD);
        let b = jobs(200, 7, SPEED_SPREAD);
        for (x, y) in a.iter().zip(&b) {
            assert_eq!(x.duration, y.duration);
            assert!((MIN_DURATION..=MAX_DURATION).contains(&x.duration));
            assert_eq!(x.progress_at(0.0), 0.0);
            assert_eq!(x.progress_at(x.duration), 1.0);
            let mut last = 0.0;
            for i in 0..=100 {
                let p = x.progress_at(x.duration * f64::from(i) / 100.0);
                assert!(p >= last, "progress never goes back");
                last = p;
            }
        }
    }

    #[test]
    fn summaries_count_abandoned_jobs_apart() {
        let outcomes = [
            Outcome {
                requests: 3,
                lag: Some(2.0),
                duration: 20.0,
                callback: None,
            },
            Outcome {
                requests: 5,
                lag: None,
                duration: 100.0,
                callback: None,
            },
            Outcome {
                requests: 4,
                lag: Some(6.0),
                duration: 60.0,
                callback: None,
            },
        ];
        let s = summarize(&outcomes);
        assert_eq!(s.mean_requests, 4.0);
        assert_eq!(s.mean_lag, 4.0);
        assert_eq!(s.max_lag, 6.0);
        assert_eq!(s.failures, 1);
        assert!((s.mean_rel_lag - 0.1).abs() < 1e-12);
        assert!((s.pooled_rel_lag - 0.1).abs() < 1e-12);
    }

    #[test]
    fn the_baselines_behave_as_documented() {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let spec = JobSpec {
            duration: 20.0,
            knots: [0.0, 0.25, 0.5, 0.75, 1.0],
            items: 10,
            eta_u: 0.0,
        };
        let none = Extras::default();
        let docs = rt.block_on(run_one(Model::EvoVoice, spec, Policy::VendorDocs, 1, &none));
        assert_eq!((docs.requests, docs.lag), (2, Some(0.0)));
        let doubling = rt.block_on(run_one(Model::EvoVoice, spec, Policy::Doubling, 1, &none));
        // Polls at 1, 3, 7, 15, 31 s.
        assert_eq!((doubling.requests, doubling.lag), (5, Some(11.0)));
        let long = JobSpec {
            duration: 51.0,
            ..spec
        };
        let docs = rt.block_on(run_one(Model::EvoVoice, long, Policy::VendorDocs, 1, &none));
        assert_eq!((docs.requests, docs.lag), (5, None));
    }
}
