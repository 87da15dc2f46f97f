//! Scale: thousands of concurrent OFD jobs in one client process against the sandbox, and a
//! minimal hand-written reqwest loop making the same requests, each in a process of its own.
//!
//! The sandbox runs in this process. OFD has no status-by-id endpoint: a status request lists
//! every report of the account. 10,000 reports in one account would make every poll return
//! 10,000 entries (O(n²) bytes overall), so the jobs are spread over many sandbox instances,
//! each one account, as a client serving many users would see them.

use std::path::PathBuf;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use anyhow::Context;
use report_core::{Job, WaitPolicy};
use report_ofd::{OfdAdapter, OfdClient, OfdConfig, OfdReportRequest, Registers, ReportType};
use report_sandbox::{Sandbox, SandboxConfig, Vendor, credentials as creds};
use serde::{Deserialize, Serialize};
use tokio::task::JoinSet;

use crate::proc::{self, run_measured};
use crate::stats::{Table, fmt_mib, fmt_ratio, fmt_secs, ratio};

#[derive(Debug, clap::Parser)]
pub struct Args {
    /// Concurrent jobs (each round runs them once per client).
    #[arg(long, default_value_t = 10_000)]
    pub jobs: usize,
    /// Sandbox instances (accounts) the jobs are spread over (50 jobs, so 50 listed reports,
    /// each by default).
    #[arg(long, default_value_t = 200)]
    pub accounts: usize,
    /// Rounds: each runs the three clients once, in an order rotated every round (the
    /// machine's load drifts); the median round of each client is reported.
    #[arg(long, default_value_t = 3)]
    pub rounds: usize,
    /// How long each report takes on the sandbox, ms.
    #[arg(long, default_value_t = 2000)]
    pub job_ms: u64,
    /// Size of each report file, bytes (reports are not downloaded here).
    #[arg(long, default_value_t = 1024)]
    pub report_bytes: u64,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, Serialize, Deserialize)]
pub enum Mode {
    /// `Job` + `OfdAdapter` (the generated client).
    Generated,
    /// A minimal hand-written reqwest loop (decodes only the id and status of each report).
    Raw,
    /// The same loop decoding the generated client's types (`ReportListEnvelope`): separates
    /// the cost of typed decoding from the rest of the generated client.
    RawTyped,
}

impl Mode {
    fn arg(self) -> &'static str {
        match self {
            Mode::Generated => "generated",
            Mode::Raw => "raw",
            Mode::RawTyped => "raw-typed",
        }
    }
}

#[derive(Debug, clap::Args)]
pub struct ChildArgs {
    #[arg(long, value_enum)]
    mode: Mode,
    /// A file with one sandbox base URL per line.
    #[arg(long)]
    bases: PathBuf,
    #[arg(long)]
    jobs: usize,
}

/// What a `scale-child` prints.
#[derive(Debug, Default, Serialize, Deserialize)]
pub struct ChildReport {
    completed: usize,
    failed: usize,
    first_errors: Vec<String>,
    status_requests: u64,
    start_wall: f64,
    start_cpu: f64,
    wait_wall: f64,
    wait_cpu: f64,
    hwm_bytes: u64,
    peak_fds: usize,
    nofile: (u64, u64),
}

pub fn child(args: &ChildArgs) -> anyhow::Result<()> {
    let nofile = proc::raise_nofile_limit();
    let bases: Vec<String> = std::fs::read_to_string(&args.bases)?
        .lines()
        .filter(|l| !l.trim().is_empty())
        .map(str::to_owned)
        .collect();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut report = runtime.block_on(async {
        let peak_fds = Arc::new(AtomicUsize::new(0));
        let sampler = {
            let peak = peak_fds.clone();
            tokio::spawn(async move {
                loop {
                    peak.fetch_max(proc::open_fds(), Ordering::Relaxed);
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            })
        };
        let mut report = match args.mode {
            Mode::Generated => generated(&bases, args.jobs).await,
            Mode::Raw => raw(&bases, args.jobs, false).await,
            Mode::RawTyped => raw(&bases, args.jobs, true).await,
        }?;
        sampler.abort();
        report.peak_fds = peak_fds.load(Ordering::Relaxed).max(proc::open_fds());
        Ok::<_, anyhow::Error>(report)
    })?;
    report.hwm_bytes = proc::self_status_bytes("VmHWM").unwrap_or(0);
    report.nofile = nofile;
    println!("{}", serde_json::to_string(&report)?);
    Ok(())
}

pub(crate) fn request() -> OfdReportRequest {
    let day = |d| chrono::NaiveDate::from_ymd_opt(2026, 11, d).expect("valid date");
    OfdReportRequest::for_days(ReportType::ReceiptReport, day(1), day(22), Registers::All)
}

/// A phase's wall and CPU time.
struct Phase {
    wall: Instant,
    cpu: Duration,
}

impl Phase {
    fn begin() -> Self {
        Phase {
            wall: Instant::now(),
            cpu: proc::self_cpu(),
        }
    }

    fn end(&self) -> (f64, f64) {
        (
            self.wall.elapsed().as_secs_f64(),
            (proc::self_cpu() - self.cpu).as_secs_f64(),
        )
    }
}

fn note_error(report: &mut ChildReport, e: impl std::fmt::Display) {
    report.failed += 1;
    if report.first_errors.len() < 5 {
        report.first_errors.push(e.to_string());
    }
}

/// Waits for every start; keeps the started jobs and counts the failed starts in `report`.
async fn started_jobs<T: 'static, E: std::fmt::Display + 'static>(
    mut starting: JoinSet<Result<T, E>>,
    report: &mut ChildReport,
) -> anyhow::Result<Vec<T>> {
    let mut started = Vec::with_capacity(starting.len());
    while let Some(joined) = starting.join_next().await {
        match joined? {
            Ok(job) => started.push(job),
            Err(e) => note_error(report, e),
        }
    }
    Ok(started)
}

/// Waits for every job's wait (its outcome and status requests) and counts them in `report`.
async fn count_finished<E: std::fmt::Display + 'static>(
    mut waiting: JoinSet<(Result<(), E>, u32)>,
    report: &mut ChildReport,
) -> anyhow::Result<()> {
    while let Some(joined) = waiting.join_next().await {
        let (done, polls) = joined?;
        report.status_requests += u64::from(polls);
        match done {
            Ok(()) => report.completed += 1,
            Err(e) => note_error(report, e),
        }
    }
    Ok(())
}

async fn generated(bases: &[String], jobs: usize) -> anyhow::Result<ChildReport> {
    let mut report = ChildReport::default();
    let adapters: Vec<Arc<OfdAdapter>> = bases
        .iter()
        .map(|base| {
            let config = OfdConfig::new(creds::OFD_LOGIN, creds::OFD_PASSWORD).with_base_url(base);
            Ok(Arc::new(OfdAdapter::new(OfdClient::new(config)?)))
        })
        .collect::<anyhow::Result<_>>()?;
    let request = Arc::new(request());

    let phase = Phase::begin();
    let mut starting = JoinSet::new();
    for i in 0..jobs {
        let adapter = adapters[i % adapters.len()].clone();
        let request = request.clone();
        starting.spawn(async move {
            Job::<OfdAdapter>::start(adapter, &request, WaitPolicy::default()).await
        });
    }
    let started = started_jobs(starting, &mut report).await?;
    (report.start_wall, report.start_cpu) = phase.end();

    let phase = Phase::begin();
    let mut waiting = JoinSet::new();
    for job in started {
        waiting.spawn(async move {
            let done = job.wait().await;
            (done.map(|_| ()), job.stats().polls)
        });
    }
    count_finished(waiting, &mut report).await?;
    (report.wait_wall, report.wait_cpu) = phase.end();
    Ok(report)
}

/// The fields the minimal loop reads.
#[derive(Deserialize)]
struct Envelope<T> {
    #[serde(rename = "Data")]
    data: Option<T>,
}

#[derive(Deserialize)]
struct Created {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "AssumptiveCompleteTime")]
    eta: Option<String>,
}

#[derive(Deserialize)]
struct List {
    #[serde(rename = "List")]
    list: Vec<Entry>,
}

#[derive(Deserialize)]
struct Entry {
    #[serde(rename = "Id")]
    id: String,
    #[serde(rename = "Status")]
    status: String,
}

struct Account {
    http: reqwest::Client,
    base: String,
    token: String,
}

/// Whether the report list says report `id` is done.
pub(crate) fn list_says_done(body: &[u8], id: &str, typed: bool) -> anyhow::Result<bool> {
    if typed {
        let answer: report_ofd::api::types::ReportListEnvelope = serde_json::from_slice(body)?;
        let list = match answer.data {
            Some(data) => data.list,
            None => answer.list,
        };
        Ok(list
            .into_iter()
            .find(|r| r.id.as_deref() == Some(id))
            .is_some_and(|r| r.status == Some(report_ofd::ReportStatus::Done)))
    } else {
        let answer: Envelope<List> = serde_json::from_slice(body)?;
        Ok(answer
            .data
            .and_then(|d| d.list.into_iter().find(|e| e.id == id))
            .is_some_and(|e| e.status == "Done"))
    }
}

async fn raw(bases: &[String], jobs: usize, typed: bool) -> anyhow::Result<ChildReport> {
    let mut report = ChildReport::default();
    let phase = Phase::begin();
    let mut logins = JoinSet::new();
    for base in bases {
        let base = base.clone();
        logins.spawn(async move {
            let http = crate::http_client()?;
            let token = crate::ofd_login(&http, &base).await?;
            Ok::<_, anyhow::Error>(Account { http, base, token })
        });
    }
    let mut accounts = Vec::new();
    while let Some(joined) = logins.join_next().await {
        accounts.push(Arc::new(joined??));
    }
    let body = serde_json::json!({
        "DateFrom": "2026-11-01T00:00:00.000+03:00",
        "DateTo": "2026-11-22T23:59:59.000+03:00",
        "ReportType": "ReceiptReport",
        "SelectAllKkts": true,
        "UseXlsxFile": true,
    });
    let mut starting = JoinSet::new();
    for i in 0..jobs {
        let account = accounts[i % accounts.len()].clone();
        let body = body.clone();
        starting.spawn(async move {
            let created: Envelope<Created> = account
                .http
                .post(format!(
                    "{}/api/customer/reports?AuthToken={}",
                    account.base, account.token
                ))
                .json(&body)
                .send()
                .await?
                .error_for_status()?
                .json()
                .await?;
            let created = created.data.context("no Data")?;
            Ok::<_, anyhow::Error>((account, created))
        });
    }
    let started = started_jobs(starting, &mut report).await?;
    (report.start_wall, report.start_cpu) = phase.end();

    let phase = Phase::begin();
    let mut waiting = JoinSet::new();
    for (account, created) in started {
        waiting.spawn(async move {
            // Sleep until the ETA, then ask every second until Done.
            if let Some(eta) = created
                .eta
                .as_deref()
                .and_then(|t| chrono::NaiveDateTime::parse_from_str(t, "%Y-%m-%dT%H:%M:%S%.f").ok())
            {
                let left = (eta.and_utc() - chrono::Utc::now())
                    .to_std()
                    .unwrap_or_default();
                tokio::time::sleep(left).await;
            }
            let mut polls = 0u32;
            loop {
                polls += 1;
                let done: anyhow::Result<bool> = async {
                    let body = account
                        .http
                        .get(format!(
                            "{}/api/customer/reports?AuthToken={}&SkipPageFilter=true",
                            account.base, account.token
                        ))
                        .send()
                        .await?
                        .error_for_status()?
                        .bytes()
                        .await?;
                    list_says_done(&body, &created.id, typed)
                }
                .await;
                match done {
                    Ok(true) => return (Ok(()), polls),
                    Ok(false) if polls < 100 => tokio::time::sleep(Duration::from_secs(1)).await,
                    Ok(false) => return (Err(anyhow::anyhow!("never Done")), polls),
                    Err(e) => return (Err(e), polls),
                }
            }
        });
    }
    count_finished(waiting, &mut report).await?;
    (report.wait_wall, report.wait_cpu) = phase.end();
    Ok(report)
}

/// One side's run, with the sandbox's own count of status requests.
struct Run {
    mode: Mode,
    round: usize,
    child: ChildReport,
    measured: proc::Measured,
    server_status_requests: u64,
    server_reports: u64,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let nofile = proc::raise_nofile_limit();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    println!("## scale\n");
    println!(
        "{} concurrent OFD jobs in one client process, spread over {} sandbox accounts ({} jobs each; \
         reports take {} ms, {} bytes); the sandbox in this process, each client in its own; \
         RLIMIT_NOFILE raised from {} to {} in both; machine: {}.\n",
        args.jobs,
        args.accounts,
        args.jobs.div_ceil(args.accounts),
        args.job_ms,
        args.report_bytes,
        nofile.0,
        nofile.1,
        proc::machine()
    );
    let modes = [Mode::Generated, Mode::Raw, Mode::RawTyped];
    let rounds = args.rounds.max(1);
    let mut runs = Vec::new();
    for round in 0..rounds {
        for k in 0..modes.len() {
            let mode = modes[(round + k) % modes.len()];
            eprintln!("scale: round {}/{rounds}, {}", round + 1, mode.arg());
            let mut run = run_mode(&runtime, args, mode)?;
            run.round = round;
            runs.push(run);
        }
    }
    print_runs(&runs, args.jobs, rounds);
    Ok(())
}

fn run_mode(runtime: &tokio::runtime::Runtime, args: &Args, mode: Mode) -> anyhow::Result<Run> {
    let sandboxes: Vec<Sandbox> = runtime.block_on(async {
        let mut all = Vec::with_capacity(args.accounts);
        for _ in 0..args.accounts {
            all.push(
                Sandbox::start(SandboxConfig {
                    job_duration: Duration::from_millis(args.job_ms),
                    report_size: args.report_bytes,
                    ..SandboxConfig::default()
                })
                .await?,
            );
        }
        Ok::<_, std::io::Error>(all)
    })?;
    let sandboxes = Arc::new(sandboxes);
    let bases = tempfile::NamedTempFile::new()?;
    std::fs::write(
        bases.path(),
        sandboxes
            .iter()
            .map(|s| s.base_url(Vendor::Ofd))
            .collect::<Vec<_>>()
            .join("\n"),
    )?;
    // Recording is unbounded: forget it regularly.
    let clearer = {
        let sandboxes = sandboxes.clone();
        runtime.spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_millis(500)).await;
                for s in sandboxes.iter() {
                    s.clear_requests();
                }
            }
        })
    };
    let exe = std::env::current_exe()?;
    let measured = run_measured(
        Command::new(exe)
            .arg("scale-child")
            .arg("--mode")
            .arg(mode.arg())
            .arg("--bases")
            .arg(bases.path())
            .arg("--jobs")
            .arg(args.jobs.to_string()),
    );
    clearer.abort();
    let _ = runtime.block_on(clearer);
    let measured = measured?;
    eprint!("{}", measured.stderr);
    let child: ChildReport = serde_json::from_str(measured.stdout.trim())
        .with_context(|| format!("child output: {}", measured.stdout))?;
    let (server_status_requests, server_reports) =
        sandboxes.iter().fold((0, 0), |(polls, reports), s| {
            let st = s.stats(Vendor::Ofd);
            (polls + st.status_requests, reports + st.reports_started)
        });
    let sandboxes = Arc::try_unwrap(sandboxes)
        .ok()
        .context("sandboxes still shared")?;
    runtime.block_on(async {
        for s in sandboxes {
            s.shutdown().await;
        }
    });
    Ok(Run {
        mode,
        round: 0,
        child,
        measured,
        server_status_requests,
        server_reports,
    })
}

/// CPU time of the wait phase per status request, µs.
fn per_request(r: &Run) -> f64 {
    r.child.wait_cpu / (r.child.status_requests.max(1) as f64) * 1e6
}

/// The run of `mode` whose CPU per status request is the median (the lower middle one for an
/// even count), and the figures of all its runs in round order.
fn median_run(runs: &[Run], mode: Mode) -> Option<(&Run, Vec<f64>)> {
    let mut of_mode: Vec<&Run> = runs.iter().filter(|r| r.mode == mode).collect();
    let figures = of_mode.iter().map(|r| per_request(r)).collect();
    of_mode.sort_by(|a, b| per_request(a).total_cmp(&per_request(b)));
    let median = *of_mode.get((of_mode.len().max(1) - 1) / 2)?;
    Some((median, figures))
}

fn mode_label(mode: Mode) -> &'static str {
    match mode {
        Mode::Generated => "Job + OfdAdapter (generated client)",
        Mode::Raw => "minimal reqwest loop (baseline)",
        Mode::RawTyped => "reqwest loop decoding the generated types",
    }
}

fn print_runs(runs: &[Run], jobs: usize, rounds: usize) {
    let mut table = Table::new([
        "client",
        "completed",
        "status requests",
        "start phase",
        "wait phase",
        "CPU, start phase",
        "CPU, wait phase",
        "CPU per status request",
        "× raw",
        "peak RSS",
        "peak fds",
    ]);
    let modes = [Mode::Generated, Mode::Raw, Mode::RawTyped];
    let medians: Vec<(Mode, &Run, Vec<f64>)> = modes
        .iter()
        .filter_map(|&m| median_run(runs, m).map(|(r, all)| (m, r, all)))
        .collect();
    let median_of = |mode: Mode| {
        medians
            .iter()
            .find(|(m, ..)| *m == mode)
            .map_or(f64::NAN, |(_, r, _)| per_request(r))
    };
    let raw = median_of(Mode::Raw);
    for (mode, r, _) in &medians {
        table.row([
            mode_label(*mode).to_string(),
            format!("{} / {jobs}", r.child.completed),
            format!(
                "{} (sandbox: {})",
                r.child.status_requests, r.server_status_requests
            ),
            fmt_secs(r.child.start_wall),
            fmt_secs(r.child.wait_wall),
            fmt_secs(r.child.start_cpu),
            fmt_secs(r.child.wait_cpu),
            format!("{:.0} µs", per_request(r)),
            fmt_ratio(ratio(per_request(r), raw)),
            fmt_mib(r.measured.max_rss_bytes as f64),
            r.child.peak_fds.to_string(),
        ]);
    }
    println!(
        "{rounds} round(s), each running the three clients one after another in an order rotated \
         every round; each row is that client's median round (by CPU per status request), and \
         \"× raw\" divides medians.\n"
    );
    println!("{}", table.render());
    let fmt_list = |v: &[f64]| {
        v.iter()
            .map(|x| format!("{x:.0}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    for (mode, _, all) in &medians {
        println!(
            "- {:?}: CPU per status request by round: [{}] µs",
            mode,
            fmt_list(all)
        );
    }
    // Generated ÷ raw within each round: the two ran minutes apart at most.
    let per_round: Vec<f64> = (0..rounds)
        .filter_map(|round| {
            let of = |mode| {
                runs.iter()
                    .find(|r| r.round == round && r.mode == mode)
                    .map(per_request)
            };
            Some(of(Mode::Generated)? / of(Mode::Raw)?)
        })
        .collect();
    let per_round_median = crate::stats::median(&per_round);
    println!(
        "- generated ÷ raw within each round: [{}] (median {:.2}×)",
        per_round
            .iter()
            .map(|x| format!("{x:.2}×"))
            .collect::<Vec<_>>()
            .join(", "),
        per_round_median
    );
    for r in runs {
        if !r.child.first_errors.is_empty() {
            println!(
                "- {:?}, round {}: {} failed, e.g. {:?}",
                r.mode,
                r.round + 1,
                r.child.failed,
                r.child.first_errors
            );
        }
    }
    for (mode, r, _) in &medians {
        println!(
            "- {:?} (median round): {} reports started on the sandboxes; whole child process: {} CPU, {} wall; \
             CPU per status request counts the whole wait phase (JSON decoding of every account's \
             report list included) divided by the status requests.",
            mode,
            r.server_reports,
            fmt_secs(r.measured.cpu.as_secs_f64()),
            fmt_secs(r.measured.wall.as_secs_f64()),
        );
    }
    let g = median_of(Mode::Generated);
    let r = median_of(Mode::Raw);
    let t = median_of(Mode::RawTyped);
    println!(
        "- of the generated client's extra CPU per status request over the minimal loop ({:.0} µs), \
         decoding every field of the report list into the generated types (the diagnostic loop) \
         costs {:.0} µs over the minimal loop; the generated client minus that loop: {:.0} µs",
        g - r,
        t - r,
        g - t
    );
    let all_done = runs.iter().all(|r| r.child.completed == jobs);
    println!(
        "- goal all {jobs} jobs complete (every round, every client): {}; goal generated client ≤ 1.2× the minimal loop per status request: {} ({:.2}× by medians, {:.2}× median of the per-round ratios)\n",
        if all_done { "met" } else { "MISSED" },
        if g <= 1.2 * r { "met" } else { "MISSED" },
        g / r,
        per_round_median
    );
}
