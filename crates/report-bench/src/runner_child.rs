//! The measured side of the runner benchmarks, one process each: a report-runner worker on
//! the fast vendor (`worker`), or the same jobs waited for in this process with `Job::wait`
//! (`in-process`, the baseline). Prints one JSON object with what it did and the CPU it used.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use clap::{Args, Subcommand};
use report_core::{DownloadOptions, Job, WaitPolicy};
use report_runner::{Registry, Store, Worker, WorkerOptions};
use serde::{Deserialize, Serialize};

use crate::fast_vendor::{Calls, FastAdapter, PollCounters, VENDOR};
use crate::proc::self_cpu;

#[derive(Debug, Args)]
pub struct ChildArgs {
    #[command(subcommand)]
    pub mode: Mode,
}

#[derive(Debug, Subcommand)]
pub enum Mode {
    /// A runner worker draining the queue of `--db`.
    Worker(WorkerArgs),
    /// `Job::start` + `Job::wait` + `download_to` for jobs `0..jobs`, all at once.
    InProcess(InProcessArgs),
    /// The job engine alone: chains of tasks shaped like the runner's, with empty steps.
    EngineFloor(crate::engine_floor::FloorArgs),
}

/// What both modes share.
#[derive(Debug, Clone, Args)]
pub struct Common {
    /// The poll counters file (`fast_vendor::PollCounters`).
    #[arg(long)]
    pub counters: PathBuf,
    /// The poll at which a report is ready.
    #[arg(long)]
    pub polls: u32,
    /// The wait policy's poll interval, in milliseconds.
    #[arg(long)]
    pub interval_ms: u64,
    /// How long each vendor call takes (a network round trip), in milliseconds.
    #[arg(long, default_value_t = 0)]
    pub latency_ms: u64,
}

#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long)]
    pub db: String,
    #[arg(long)]
    pub concurrency: usize,
    #[arg(long)]
    pub fetch_ms: u64,
    /// The worker stops once this file exists and nothing is queued or in progress.
    #[arg(long)]
    pub stop_file: PathBuf,
}

#[derive(Debug, Args)]
pub struct InProcessArgs {
    #[command(flatten)]
    pub common: Common,
    #[arg(long)]
    pub jobs: u64,
    /// Where the files go.
    #[arg(long)]
    pub out: PathBuf,
}

/// Files the in-process baseline writes at once.
const DOWNLOADS_AT_ONCE: usize = 256;

/// A child's figures.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ChildReport {
    pub starts: u64,
    pub polls: u64,
    pub downloads: u64,
    /// CPU (user + system) from the first job on, set-up excluded.
    pub cpu_secs: f64,
    pub wall_secs: f64,
    /// First and last call to the vendor, Unix seconds.
    pub first_call: f64,
    pub last_call: f64,
    /// The runner's scheduling lag of each poll (seconds), with when it was recorded (seconds
    /// since the child began). Empty for `in-process`.
    pub lag: Vec<(f64, f64)>,
}

/// The policy every setup uses: a fixed poll interval, no jitter, no deadline.
pub fn policy(interval_ms: u64) -> WaitPolicy {
    let interval = Duration::from_millis(interval_ms);
    WaitPolicy::default()
        .with_backoff(interval, interval)
        .with_jitter(0.0)
        .with_deadline(None)
}

pub fn run(args: &ChildArgs) -> anyhow::Result<()> {
    // Thousands of jobs download at once in the baseline, each with a file open.
    crate::proc::raise_nofile_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let report = match &args.mode {
        Mode::Worker(a) => runtime.block_on(worker(a))?,
        Mode::InProcess(a) => runtime.block_on(in_process(a))?,
        Mode::EngineFloor(a) => runtime.block_on(crate::engine_floor::run(a))?,
    };
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

fn adapter(common: &Common) -> anyhow::Result<FastAdapter> {
    Ok(FastAdapter {
        counters: Arc::new(PollCounters::open(&common.counters)?),
        polls_to_ready: common.polls,
        latency: Duration::from_millis(common.latency_ms),
        calls: Arc::new(Calls::default()),
    })
}

/// What a child did, from its vendor calls (or steps counted as such) and its CPU since `cpu0`.
pub fn report(calls: &Calls, cpu0: Duration, began: Instant, lag: Vec<(f64, f64)>) -> ChildReport {
    use std::sync::atomic::Ordering::Relaxed;
    let (first_call, last_call) = calls.window();
    ChildReport {
        starts: calls.starts.load(Relaxed),
        polls: calls.polls.load(Relaxed),
        downloads: calls.opens.load(Relaxed),
        cpu_secs: (self_cpu() - cpu0).as_secs_f64(),
        wall_secs: began.elapsed().as_secs_f64(),
        first_call,
        last_call,
        lag,
    }
}

async fn worker(args: &WorkerArgs) -> anyhow::Result<ChildReport> {
    let began = Instant::now();
    let lag = Arc::new(Mutex::new(Vec::new()));
    metrics::set_global_recorder(LagRecorder {
        samples: lag.clone(),
        began,
    })
    .map_err(|_| anyhow::anyhow!("a metrics recorder was already set"))?;
    let adapter = adapter(&args.common)?;
    let calls = adapter.calls.clone();
    let store = Store::open(&args.db)
        .await
        .with_context(|| format!("open {}", args.db))?;
    let mut registry = Registry::new();
    registry.register(
        VENDOR,
        move |_connection: &str| Ok(adapter.clone()),
        |request: &serde_json::Value| {
            request["n"]
                .as_u64()
                .ok_or_else(|| "the request has no job number `n`".to_string())
        },
    );
    let options = WorkerOptions {
        concurrency: args.concurrency.max(1),
        fetch_interval: Duration::from_millis(args.fetch_ms.max(10)),
        policy: policy(args.common.interval_ms),
        ..WorkerOptions::default()
    };
    let stop_file = args.stop_file.clone();
    let idle_store = store.clone();
    let stop = async move {
        while !stop_file.exists() {
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        report_runner::idle(idle_store, Duration::from_millis(500)).await;
    };
    let cpu0 = self_cpu();
    Worker::new(store, registry, options)
        .run_until(stop)
        .await?;
    let lag = std::mem::take(&mut *lag.lock().unwrap_or_else(|e| e.into_inner()));
    Ok(report(&calls, cpu0, began, lag))
}

async fn in_process(args: &InProcessArgs) -> anyhow::Result<ChildReport> {
    let began = Instant::now();
    let adapter = Arc::new(adapter(&args.common)?);
    let policy = policy(args.common.interval_ms);
    let cpu0 = self_cpu();
    // Every job waits at once; files are written DOWNLOADS_AT_ONCE at a time (each holds two
    // descriptors while it is written: 10,000 at once exceed the limit).
    let downloads = Arc::new(tokio::sync::Semaphore::new(DOWNLOADS_AT_ONCE));
    let mut tasks = tokio::task::JoinSet::new();
    for n in 0..args.jobs {
        let (adapter, policy, downloads) = (adapter.clone(), policy.clone(), downloads.clone());
        let out = args.out.join(format!("{n}.out"));
        tasks.spawn(async move { one_job(adapter, n, policy, &out, &downloads).await });
    }
    let mut failed = 0;
    let mut first_error = None;
    while let Some(done) = tasks.join_next().await {
        let error = match done {
            Ok(Ok(())) => continue,
            Ok(Err(e)) => e.to_string(),
            Err(e) => e.to_string(),
        };
        failed += 1;
        first_error.get_or_insert(error);
    }
    anyhow::ensure!(
        failed == 0,
        "{failed} in-process jobs failed, the first with: {}",
        first_error.unwrap_or_default()
    );
    Ok(report(&adapter.calls, cpu0, began, Vec::new()))
}

async fn one_job(
    adapter: Arc<FastAdapter>,
    n: u64,
    policy: WaitPolicy,
    out: &Path,
    downloads: &tokio::sync::Semaphore,
) -> report_core::Result<()> {
    let job = Job::<FastAdapter>::start(adapter, &n, policy).await?;
    let artifact = job.wait().await?;
    let _turn = downloads.acquire().await;
    job.download_to(&artifact, out, DownloadOptions::default())
        .await?;
    Ok(())
}

/// Keeps the runner's `reports_scheduling_lag_seconds` samples; every other metric is
/// dropped.
struct LagRecorder {
    samples: Arc<Mutex<Vec<(f64, f64)>>>,
    began: Instant,
}

struct LagSamples {
    samples: Arc<Mutex<Vec<(f64, f64)>>>,
    began: Instant,
}

impl metrics::HistogramFn for LagSamples {
    fn record(&self, value: f64) {
        let at = self.began.elapsed().as_secs_f64();
        self.samples
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push((at, value));
    }
}

impl metrics::Recorder for LagRecorder {
    fn describe_counter(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_gauge(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }
    fn describe_histogram(
        &self,
        _: metrics::KeyName,
        _: Option<metrics::Unit>,
        _: metrics::SharedString,
    ) {
    }

    fn register_counter(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Counter {
        metrics::Counter::noop()
    }

    fn register_gauge(&self, _: &metrics::Key, _: &metrics::Metadata<'_>) -> metrics::Gauge {
        metrics::Gauge::noop()
    }

    fn register_histogram(
        &self,
        key: &metrics::Key,
        _: &metrics::Metadata<'_>,
    ) -> metrics::Histogram {
        if key.name() == "reports_scheduling_lag_seconds" {
            metrics::Histogram::from_arc(Arc::new(LagSamples {
                samples: self.samples.clone(),
                began: self.began,
            }))
        } else {
            metrics::Histogram::noop()
        }
    }
}
