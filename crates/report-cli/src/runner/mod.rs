//! `reports submit | worker | jobs`: durable jobs in a database, run by workers
//! (`report-runner` on the apalis job engine).

mod board;
mod connections;
mod db;
mod vendors;
mod webhook;

use std::time::Duration;

use clap::{Args, Subcommand};
use report_runner::{JobRecord, NewJob, Worker, WorkerOptions};
use serde_json::json;

use crate::cli::Common;
use crate::failure::Failure;

/// `reports submit <vendor> <run options> --out PATH [--connection NAME] [--db URL] [--json]`.
#[derive(Debug, Args)]
#[command(
    disable_help_flag = true,
    after_help = "The vendor's options are those of `reports <vendor> run`; see `reports submit <vendor> --help`."
)]
pub struct SubmitArgs {
    /// docspace, evovoice, cloudblue, metakocka or ofd.
    pub vendor: String,
    /// The run options, --out PATH, and optionally --connection NAME and --db URL.
    #[arg(
        trailing_var_arg = true,
        allow_hyphen_values = true,
        value_name = "OPTIONS"
    )]
    pub args: Vec<String>,
}

/// `reports worker`.
#[derive(Debug, Args)]
pub struct WorkerArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Steps (starts, polls, downloads) carried out at once.
    #[arg(long, default_value_t = 8, value_name = "N")]
    pub concurrency: usize,
    /// Exit 0 once nothing is queued or in progress.
    #[arg(long)]
    pub exit_when_idle: bool,
    /// Log lines as text, or as one JSON object a line for log collectors.
    #[arg(long, value_enum, default_value_t = LogFormat::Text, value_name = "FORMAT")]
    pub log_format: LogFormat,
    /// Serve Prometheus metrics on this address (e.g. 127.0.0.1:9187): jobs by vendor and
    /// state, starts, polls, retries, bytes, scheduling lag, detection lag (at most: from the
    /// last pending status to the poll that found the report ready).
    #[arg(long, value_name = "ADDR")]
    pub metrics: Option<std::net::SocketAddr>,
    /// Serve the job board on this address (e.g. 127.0.0.1:8080) while the worker runs: jobs
    /// with state, progress, times, files and their sha256; `/api/jobs` as JSON.
    #[arg(long, value_name = "ADDR")]
    pub ui: Option<std::net::SocketAddr>,
    /// Serve the webhook endpoint on this address (e.g. 127.0.0.1:8787): a call to a job's
    /// URL makes that job poll at once, whichever worker holds it.
    #[arg(long, value_name = "ADDR")]
    pub webhook_listen: Option<std::net::SocketAddr>,
    /// Give each job started at a vendor that calls webhooks (EvoVoice) its own URL,
    /// URL/<token>: how the vendor reaches a --webhook-listen endpoint (https://, or http://
    /// on loopback).
    #[arg(long, value_name = "URL")]
    pub webhook_url_base: Option<String>,
    /// Seconds a step stays this worker's without renewal (a crashed worker's steps are
    /// taken over after it).
    #[arg(long, default_value_t = 60, value_name = "SECS", hide = true)]
    pub lease_secs: u64,
    /// The engine's heartbeat in seconds (a worker silent for two is presumed dead).
    #[arg(long, default_value_t = 10, value_name = "SECS", hide = true)]
    pub heartbeat_secs: u64,
    /// How often the engine looks for due tasks, in milliseconds.
    #[arg(long, default_value_t = 500, value_name = "MS", hide = true)]
    pub fetch_ms: u64,
    /// On SIGINT/SIGTERM, seconds the steps under way may take to finish; then they are
    /// abandoned (queued again for the next worker, no partial file kept) and the worker exits 0.
    #[arg(long, default_value_t = 10, value_name = "SECS")]
    pub stop_grace_secs: u64,
    /// Hours the job engine keeps its finished tasks (our job records are kept regardless);
    /// older ones are deleted hourly. 0 deletes them at the next pruning.
    #[arg(long, default_value_t = 168, value_name = "HOURS")]
    pub task_retention_hours: u64,
    #[command(flatten)]
    pub log: crate::cli::Logging,
    #[command(flatten)]
    pub deadline: crate::cli::Deadline,
    #[command(flatten)]
    pub profiles: crate::cli::Profiles,
    #[command(flatten)]
    pub http: crate::cli::Http,
}

/// How the worker writes its log lines.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LogFormat {
    Text,
    Json,
}

/// `reports jobs [show|cancel|retry ID]`.
#[derive(Debug, Args)]
pub struct JobsArgs {
    #[command(flatten)]
    pub db: DbArg,
    /// Serve the job board on this address instead of listing (until SIGINT/SIGTERM); it runs
    /// no job.
    #[arg(long, value_name = "ADDR")]
    pub ui: Option<std::net::SocketAddr>,
    #[command(subcommand)]
    pub action: Option<JobsAction>,
    #[command(flatten)]
    pub log: crate::cli::Logging,
    #[command(flatten)]
    pub output: crate::cli::Output,
}

#[derive(Debug, Subcommand)]
pub enum JobsAction {
    /// Everything recorded about one job.
    Show { id: String },
    /// Cancel a job (at the vendor too, where it can).
    Cancel { id: String },
    /// Queue a failed or cancelled job again (from its ticket if it has one: no new start).
    Retry { id: String },
}

/// `--db`: where the jobs are.
#[derive(Debug, Clone, Args)]
pub struct DbArg {
    /// Job database: a SQLite file or sqlite: URL (default: jobs.sqlite in the user's data
    /// folder); postgres://… for PostgreSQL.
    #[arg(long, env = "REPORTS_DB", value_name = "URL", global = true)]
    pub db: Option<String>,
}

pub async fn submit(args: SubmitArgs, common: &Common) -> Result<(), Failure> {
    let line = vendors::parse_submit(&args.vendor, &args.args)?;
    let Some(line) = line else {
        return Ok(()); // help was printed
    };
    let json_out = common.output.json || line.json;
    let store = db::open(line.db.as_deref()).await?;
    let record = store
        .submit(NewJob {
            vendor: args.vendor.clone(),
            connection: line.connection,
            request: json!({ "args": line.stored_args }),
            out: line.out,
        })
        .await
        .map_err(local)?;
    if json_out {
        println!("{}", json!({ "id": record.id, "state": record.state }));
    } else {
        println!("{}", record.id);
    }
    Ok(())
}

pub async fn worker(args: WorkerArgs, common: &Common) -> Result<(), Failure> {
    // The global `--config` file: its profiles give connections, its [[schedule]] tables
    // ([[schedule]] name, vendor, connection, cron, period, timezone, options, out) queue jobs
    // while the worker runs.
    let schedules = match &common.profiles.config {
        Some(path) => Some(load_schedules(path)?),
        None => None,
    };
    let store = db::open(args.db.db.as_deref()).await?;
    let options = WorkerOptions {
        concurrency: args.concurrency.max(1),
        lease: Duration::from_secs(args.lease_secs.max(1)),
        heartbeat: Duration::from_secs(args.heartbeat_secs.max(1)),
        fetch_interval: Duration::from_millis(args.fetch_ms.max(10)),
        policy: crate::jobs::policy(common),
    };
    let retention = report_runner::TaskRetention {
        keep: Duration::from_secs(args.task_retention_hours.saturating_mul(3600)),
        ..report_runner::TaskRetention::default()
    };
    let mut worker = Worker::new(store.clone(), vendors::registry(common), options)
        .stop_grace(Duration::from_secs(args.stop_grace_secs))
        .task_retention(Some(retention));
    if let Some(base) = &args.webhook_url_base {
        worker = worker.with_webhook_url_base(webhook::url_base(base)?);
    }
    if let Some(addr) = args.webhook_listen {
        webhook::listen(addr, store.clone()).await?;
    }
    if args.log_format == LogFormat::Json {
        // Standard error holds JSON lines only: collectors parse every line.
        tracing::info!(worker = worker.name(), "worker started");
    } else if !common.log.quiet {
        eprintln!("worker {} started", worker.name());
    }
    let exit_when_idle = args.exit_when_idle;
    if let Some(addr) = args.metrics {
        serve_metrics(addr, store.clone())?;
    }
    if let Some(addr) = args.ui {
        let bound = board::serve(addr, store.clone())?;
        announce_board(bound, args.log_format, common);
    }
    if let Some(file) = schedules {
        let store = store.clone();
        tokio::spawn(async move {
            if let Err(e) = report_runner::run_schedules(&file, store).await {
                tracing::error!(error = %e, "schedules stopped");
            }
        });
    }
    let stop = async move {
        let idle = async {
            if exit_when_idle {
                report_runner::idle(store, Duration::from_millis(500)).await
            } else {
                std::future::pending().await
            }
        };
        tokio::select! {
            _ = idle => {}
            _ = shutdown_signal() => {}
        }
    };
    worker.run_until(stop).await.map_err(local)
}

/// Where the board is (with port 0, the port picked).
fn announce_board(bound: std::net::SocketAddr, format: LogFormat, common: &Common) {
    let url = format!("http://{bound}/");
    if format == LogFormat::Json {
        tracing::info!(url = %url, "job board");
    } else if !common.log.quiet {
        eprintln!("job board on {url}");
    }
}

/// The Prometheus exporter, and a gauge of jobs by vendor and state refreshed every 2 s.
fn serve_metrics(addr: std::net::SocketAddr, store: report_runner::Store) -> Result<(), Failure> {
    metrics_exporter_prometheus::PrometheusBuilder::new()
        .with_http_listener(addr)
        .install()
        .map_err(|e| Failure::Usage(format!("--metrics {addr}: {e}")))?;
    tokio::spawn(async move {
        loop {
            if let Ok(counts) = store.counts().await {
                for (vendor, state, n) in counts {
                    metrics::gauge!("reports_jobs", "vendor" => vendor, "state" => state)
                        .set(n as f64);
                }
            }
            tokio::time::sleep(Duration::from_secs(2)).await;
        }
    });
    Ok(())
}

/// Reads and checks a schedule file: every definition must make a job `submit` accepts.
fn load_schedules(path: &std::path::Path) -> Result<report_runner::ScheduleFile, Failure> {
    let text = std::fs::read_to_string(path)
        .map_err(|e| Failure::Usage(format!("--config {}: {e}", path.display())))?;
    let file = report_runner::ScheduleFile::parse(&text)
        .map_err(|e| Failure::Usage(format!("--config {}: {e}", path.display())))?;
    for definition in &file.schedules {
        let (job, _) = definition
            .job_for(chrono::Utc::now().timestamp())
            .map_err(|e| Failure::Usage(e.to_string()))?;
        let mut args: Vec<String> =
            serde_json::from_value(job.request["args"].clone()).unwrap_or_default();
        args.extend(["--out".to_string(), job.out]);
        vendors::parse_submit(&definition.vendor, &args).map_err(|f| {
            Failure::Usage(format!(
                "schedule `{}`: {}",
                definition.name,
                f.lines(false).join("; ").trim_start_matches("error: ")
            ))
        })?;
    }
    Ok(file)
}

/// SIGINT or SIGTERM.
async fn shutdown_signal() {
    #[cfg(unix)]
    {
        use tokio::signal::unix::{SignalKind, signal};
        match signal(SignalKind::terminate()) {
            Ok(mut term) => {
                tokio::select! {
                    _ = tokio::signal::ctrl_c() => {}
                    _ = term.recv() => {}
                }
            }
            Err(_) => {
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
    #[cfg(not(unix))]
    {
        let _ = tokio::signal::ctrl_c().await;
    }
}

pub async fn jobs(args: JobsArgs, common: &Common) -> Result<(), Failure> {
    let store = db::open(args.db.db.as_deref()).await?;
    if let Some(addr) = args.ui {
        if args.action.is_some() {
            return Err(Failure::Usage(
                "`jobs --ui` serves the board; drop --ui to show, cancel or retry a job".into(),
            ));
        }
        let bound = board::serve(addr, store)?;
        announce_board(bound, LogFormat::Text, common);
        shutdown_signal().await;
        return Ok(());
    }
    let one = |r: Result<JobRecord, report_runner::Error>| r.map_err(job_error);
    match args.action {
        None => {
            let jobs = store.list().await.map_err(local)?;
            if common.output.json {
                println!(
                    "{}",
                    serde_json::to_string(&jobs).expect("records serialize")
                );
            } else {
                for job in &jobs {
                    println!("{}", line(job));
                }
            }
        }
        Some(JobsAction::Show { id }) => {
            let job = store
                .get(&id)
                .await
                .map_err(local)?
                .ok_or_else(|| Failure::Usage(format!("no job `{id}`")))?;
            println!(
                "{}",
                serde_json::to_string_pretty(&job).expect("records serialize")
            );
        }
        Some(JobsAction::Cancel { id }) => {
            let job = one(store.request_cancel(&id).await)?;
            print_state(&job, common);
        }
        Some(JobsAction::Retry { id }) => {
            let job = one(store.retry(&id).await)?;
            print_state(&job, common);
        }
    }
    Ok(())
}

fn print_state(job: &JobRecord, common: &Common) {
    if common.output.json {
        println!(
            "{}",
            json!({ "id": job.id, "state": job.state, "cancel_requested": job.cancel_requested })
        );
    } else if job.cancel_requested && !job.state.is_terminal() {
        println!("{}: cancel requested ({})", job.id, job.state);
    } else {
        println!("{}: {}", job.id, job.state);
    }
}

fn line(job: &JobRecord) -> String {
    let progress = job
        .progress
        .map(|p| format!("{:.0}%", p * 100.0))
        .unwrap_or_else(|| "-".into());
    let mut text = format!(
        "{}  {:<9}  {:<11}  {:>4}  {}",
        job.id, job.vendor, job.state, progress, job.out
    );
    if let Some(sha) = &job.sha256 {
        text.push_str(&format!("  sha256 {sha}"));
    }
    if let Some(error) = &job.error {
        text.push_str(&format!("  error: {error}"));
    }
    text
}

fn local(e: report_runner::Error) -> Failure {
    Failure::Local(e.to_string())
}

fn job_error(e: report_runner::Error) -> Failure {
    match e {
        report_runner::Error::NotFound(_) | report_runner::Error::Conflict(_) => {
            Failure::Usage(e.to_string())
        }
        e => local(e),
    }
}
