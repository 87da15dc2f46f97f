//! `report-bench runner`: the durable runner's own cost. N jobs are queued at once, then
//! drained by worker processes (SQLite with one worker; PostgreSQL with one and with two),
//! against the same N jobs waited for in one process with `Job::wait` (the baseline), all in
//! one run. The vendor is `fast_vendor` (in-process, no network): every job takes exactly
//! `--polls` status requests in every setup, so CPU per poll compares like with like.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use anyhow::Context;
use report_runner::{NewJob, Store};

use crate::fast_vendor::{PollCounters, VENDOR};
use crate::pg::Cluster;
use crate::proc::{Measured, run_measured};
use crate::runner_child::ChildReport;
use crate::stats::{Table, fmt_ratio, fmt_secs, percentile, ratio};

#[derive(Debug, clap::Parser)]
pub struct Args {
    /// Jobs queued before the workers start.
    #[arg(long, default_value_t = 10_000)]
    pub jobs: u64,
    /// The status request at which a report is ready (so each job takes this many polls).
    #[arg(long, default_value_t = 3)]
    pub polls: u32,
    /// The wait policy's poll interval, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Steps each worker runs at once (`reports worker --concurrency`'s default).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// How often a worker looks for due tasks (`reports worker`'s default).
    #[arg(long, default_value_t = 500)]
    pub fetch_ms: u64,
    /// How long each vendor call takes, in milliseconds: 0 measures the runner's own cost;
    /// a real vendor's round trip makes a worker wait more than it computes.
    #[arg(long, default_value_t = 0)]
    pub vendor_latency_ms: u64,
    /// Leave PostgreSQL out.
    #[arg(long)]
    pub skip_postgres: bool,
    /// Leave SQLite out (its worker and its floors).
    #[arg(long)]
    pub skip_sqlite: bool,
    /// After each PostgreSQL setup, print the statements that took its server longest
    /// (`pg_stat_statements`, loaded into the benchmark's cluster).
    #[arg(long)]
    pub pg_statements: bool,
    /// A server setting for the benchmark's PostgreSQL cluster, `name=value` (repeatable; for
    /// instance `autovacuum_naptime=5s`). The cluster already runs with `fsync=off`.
    #[arg(long = "pg-setting", value_name = "NAME=VALUE")]
    pub pg_settings: Vec<String>,
    /// Also write every lag sample to this CSV file (`setup,worker,seconds since the worker
    /// began,lag seconds`), to see when polls ran late.
    #[arg(long)]
    pub lag_csv: Option<PathBuf>,
}

/// The options of a worker child (`report-bench runner-child worker …`).
pub struct WorkerSpec<'a> {
    pub db: &'a str,
    pub counters: &'a Path,
    pub polls: u32,
    pub interval_ms: u64,
    pub latency_ms: u64,
    pub concurrency: usize,
    pub fetch_ms: u64,
    pub stop_file: &'a Path,
}

impl WorkerSpec<'_> {
    pub fn command(&self) -> anyhow::Result<Command> {
        let mut cmd = Command::new(std::env::current_exe()?);
        cmd.args(["runner-child", "worker", "--db", self.db])
            .arg("--counters")
            .arg(self.counters)
            .args(["--polls", &self.polls.to_string()])
            .args(["--interval-ms", &self.interval_ms.to_string()])
            .args(["--latency-ms", &self.latency_ms.to_string()])
            .args(["--concurrency", &self.concurrency.to_string()])
            .args(["--fetch-ms", &self.fetch_ms.to_string()])
            .arg("--stop-file")
            .arg(self.stop_file);
        Ok(cmd)
    }
}

/// One setup's outcome.
struct Run {
    label: String,
    workers: usize,
    children: Vec<ChildReport>,
    measured: Vec<Measured>,
    submit_secs: f64,
    done: u64,
    not_done: Vec<(String, u64)>,
    /// PostgreSQL's own CPU during the drain.
    server_cpu: Option<f64>,
    /// With `--pg-statements`: what the server spent its time on (psql's table).
    statements: Option<String>,
}

impl Run {
    fn sum(&self, f: impl Fn(&ChildReport) -> u64) -> u64 {
        self.children.iter().map(f).sum()
    }
    fn polls(&self) -> u64 {
        self.sum(|c| c.polls)
    }
    fn steps(&self) -> u64 {
        self.sum(|c| c.starts + c.polls + c.downloads)
    }
    fn cpu(&self) -> f64 {
        self.children.iter().map(|c| c.cpu_secs).sum()
    }
    /// From the first call to the vendor to the last, over all workers.
    fn window(&self) -> f64 {
        let first = self
            .children
            .iter()
            .map(|c| c.first_call)
            .fold(f64::INFINITY, f64::min);
        let last = self
            .children
            .iter()
            .map(|c| c.last_call)
            .fold(0.0, f64::max);
        (last - first).max(0.0)
    }
    fn polls_per_sec(&self) -> f64 {
        self.polls() as f64 / self.window()
    }
    fn cpu_per_poll(&self) -> f64 {
        self.cpu() / self.polls() as f64
    }
    fn lag(&self) -> Vec<f64> {
        self.children
            .iter()
            .flat_map(|c| c.lag.iter().map(|l| l.1))
            .collect()
    }
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let started = chrono::Utc::now();
    // The baseline runs three times (first, between the setups, last): the machine drifts
    // within a run, and a ratio should not rest on one lucky or unlucky moment.
    eprintln!("runner: {} jobs, in-process baseline 1/3…", args.jobs);
    let mut baselines = vec![in_process(args, dir.path(), 1)?];
    let mut runs = Vec::new();
    let mut floors = Vec::new();
    if !args.skip_sqlite {
        eprintln!("runner: SQLite, one worker…");
        let sqlite = dir.path().join("jobs.sqlite").display().to_string();
        runs.push(queue_run(
            args,
            &rt,
            dir.path(),
            "SQLite, 1 worker",
            &sqlite,
            1,
            None,
        )?);
    }
    eprintln!("runner: in-process baseline 2/3…");
    baselines.push(in_process(args, dir.path(), 2)?);
    if !args.skip_sqlite {
        eprintln!("runner: the job engine alone, SQLite…");
        for (label, file) in [
            (FLOOR_SQLITE, "floor.sqlite"),
            (WRITES_SQLITE, "writes.sqlite"),
        ] {
            let db = dir.path().join(file).display().to_string();
            floors.push(floor_run(args, &rt, label, &db, None, 1, dir.path())?);
        }
    }
    let mut pg_note = None;
    let cluster = if args.skip_postgres {
        pg_note = Some("PostgreSQL: skipped (--skip-postgres).".to_string());
        None
    } else {
        let mut settings: Vec<&str> = args.pg_settings.iter().map(String::as_str).collect();
        if args.pg_statements {
            settings.push(crate::pg::COUNT_STATEMENTS);
        }
        let cluster = Cluster::start_with(&settings);
        if cluster.is_none() {
            pg_note = Some(
                "PostgreSQL: skipped: initdb/pg_ctl not found (apt-get install postgresql)."
                    .to_string(),
            );
        }
        cluster
    };
    if let Some(cluster) = &cluster {
        for (workers, name) in [(1, "one_worker"), (2, "two_workers")] {
            eprintln!("runner: PostgreSQL, {workers} worker(s)…");
            let url = crate::pg::create_database(cluster, name)?;
            let label = format!(
                "PostgreSQL, {workers} worker{}",
                if workers > 1 { "s" } else { "" }
            );
            runs.push(queue_run(
                args,
                &rt,
                dir.path(),
                &label,
                &url,
                workers,
                Some(cluster),
            )?);
        }
        eprintln!("runner: the job engine alone, PostgreSQL (1 and 2 workers)…");
        for (label, name, workers) in [
            (FLOOR_POSTGRES, "engine_floor", 1),
            (FLOOR_POSTGRES_TWO, "engine_floor_two", 2),
            (WRITES_POSTGRES, "writes_only", 1),
        ] {
            let url = crate::pg::create_database(cluster, name)?;
            floors.push(floor_run(
                args,
                &rt,
                label,
                &url,
                Some(cluster),
                workers,
                dir.path(),
            )?);
        }
    }
    eprintln!("runner: in-process baseline 3/3…");
    baselines.push(in_process(args, dir.path(), 3)?);
    if let Some(path) = &args.lag_csv {
        write_lag_csv(path, &runs)?;
    }
    print_report(
        args,
        started,
        &baselines,
        &runs,
        &floors,
        pg_note.as_deref(),
    );
    Ok(())
}

fn in_process(args: &Args, dir: &Path, n: usize) -> anyhow::Result<ChildReport> {
    let run_dir = dir.join(format!("in-process-{n}"));
    std::fs::create_dir_all(run_dir.join("files"))?;
    let counters = run_dir.join("counters");
    PollCounters::create(&counters, args.jobs as usize)?;
    let measured = run_measured(
        Command::new(std::env::current_exe()?)
            .args(["runner-child", "in-process"])
            .arg("--counters")
            .arg(&counters)
            .args(["--polls", &args.polls.to_string()])
            .args(["--interval-ms", &args.interval_ms.to_string()])
            .args(["--latency-ms", &args.vendor_latency_ms.to_string()])
            .args(["--jobs", &args.jobs.to_string()])
            .arg("--out")
            .arg(run_dir.join("files")),
    )?;
    parse_child(&measured)
}

fn parse_child(measured: &Measured) -> anyhow::Result<ChildReport> {
    let line = measured.stdout.lines().last().unwrap_or_default();
    serde_json::from_str(line).with_context(|| format!("child output: {}", measured.stderr))
}

fn queue_run(
    args: &Args,
    rt: &tokio::runtime::Runtime,
    dir: &Path,
    label: &str,
    url: &str,
    workers: usize,
    cluster: Option<&Cluster>,
) -> anyhow::Result<Run> {
    let slug: String = label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let run_dir = dir.join(slug);
    let files = run_dir.join("files");
    std::fs::create_dir_all(&files)?;
    let counters = run_dir.join("counters");
    PollCounters::create(&counters, args.jobs as usize)?;
    let store = rt.block_on(Store::open(url))?;
    let t = Instant::now();
    rt.block_on(submit_all(&store, args.jobs, &files))?;
    let submit_secs = t.elapsed().as_secs_f64();
    // Everything is queued before the workers start: they stop once the queue is empty.
    let stop_file = run_dir.join("stop");
    std::fs::write(&stop_file, b"")?;
    let spec = WorkerSpec {
        db: url,
        counters: &counters,
        polls: args.polls,
        interval_ms: args.interval_ms,
        latency_ms: args.vendor_latency_ms,
        concurrency: args.concurrency,
        fetch_ms: args.fetch_ms,
        stop_file: &stop_file,
    };
    let counted = cluster.filter(|_| args.pg_statements);
    if let Some(cluster) = counted {
        crate::pg::reset_statements(cluster, url)?;
    }
    let (measured, server_cpu) = crate::pg::server_cpu_during(cluster, || {
        run_together(
            (0..workers)
                .map(|_| spec.command())
                .collect::<anyhow::Result<_>>()?,
        )
    })?;
    let statements = counted
        .map(|cluster| crate::pg::top_statements(cluster, url, 12))
        .transpose()?;
    let children = measured
        .iter()
        .map(parse_child)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let mut done = 0;
    let mut not_done = Vec::new();
    for (_, state, n) in rt.block_on(store.counts())? {
        if state == "done" {
            done += n;
        } else {
            not_done.push((state, n));
        }
    }
    Ok(Run {
        label: label.to_string(),
        workers,
        children,
        measured,
        submit_secs,
        done,
        not_done,
        server_cpu,
        statements,
    })
}

const FLOOR_SQLITE: &str = "apalis alone, SQLite, empty steps";
const FLOOR_POSTGRES: &str = "apalis alone, PostgreSQL, empty steps";
const FLOOR_POSTGRES_TWO: &str = "apalis alone, PostgreSQL, 2 workers, empty steps";
const WRITES_SQLITE: &str = "no engine: 1 write per step, SQLite";
const WRITES_POSTGRES: &str = "no engine: 1 write per step, PostgreSQL";

/// Whether the floor labelled `label` is the one with no engine, one write per step.
fn writes_only(label: &str) -> bool {
    label == WRITES_SQLITE || label == WRITES_POSTGRES
}

/// The job engine alone on a database set up by `Store::open`: the same number of tasks as
/// the runner's steps, each doing nothing but queue the next, drained by `workers` processes
/// (sharing a counter of finished chains in `dir`); or, for the `WRITES_…` labels, no engine
/// and one database write per step (`engine_floor`).
fn floor_run(
    args: &Args,
    rt: &tokio::runtime::Runtime,
    label: &str,
    url: &str,
    cluster: Option<&Cluster>,
    workers: usize,
    dir: &Path,
) -> anyhow::Result<Run> {
    drop(rt.block_on(Store::open(url))?);
    // Several workers count the chains they finish in one shared file.
    let done_counter = if workers > 1 {
        let path = dir.join(format!(
            "{}-done",
            url.rsplit('/').next().unwrap_or("floor")
        ));
        PollCounters::create(&path, 1)?;
        Some(path)
    } else {
        None
    };
    let command = |worker: usize| -> anyhow::Result<Command> {
        let mut child = Command::new(std::env::current_exe()?);
        child
            .args(["runner-child", "engine-floor", "--db", url])
            .args(["--jobs", &args.jobs.to_string()])
            .args(["--polls", &args.polls.to_string()])
            .args(["--interval-ms", &args.interval_ms.to_string()])
            .args(["--concurrency", &args.concurrency.to_string()])
            .args(["--fetch-ms", &args.fetch_ms.to_string()])
            .args(writes_only(label).then_some("--writes-only"));
        if let Some(counter) = &done_counter {
            // The first queues the chains; every one counts those it finishes.
            child.arg("--done-counter").arg(counter);
            if worker > 0 {
                child.arg("--no-queue");
            }
        }
        Ok(child)
    };
    let (measured, server_cpu) = crate::pg::server_cpu_during(cluster, || {
        run_together((0..workers).map(command).collect::<anyhow::Result<_>>()?)
    })?;
    let children = measured
        .iter()
        .map(parse_child)
        .collect::<anyhow::Result<Vec<_>>>()?;
    let done = children.iter().map(|c| c.downloads).sum();
    Ok(Run {
        label: label.to_string(),
        workers,
        children,
        measured,
        submit_secs: f64::NAN,
        done,
        not_done: Vec::new(),
        server_cpu,
        statements: None,
    })
}

/// Runs the worker processes `commands` at once, each measured; their figures in order.
fn run_together(commands: Vec<Command>) -> anyhow::Result<Vec<Measured>> {
    let handles: Vec<_> = commands
        .into_iter()
        .map(|mut cmd| std::thread::spawn(move || run_measured(&mut cmd)))
        .collect();
    let mut measured = Vec::new();
    for h in handles {
        measured.push(
            h.join()
                .map_err(|_| anyhow::anyhow!("a worker thread panicked"))??,
        );
    }
    Ok(measured)
}

fn write_lag_csv(path: &Path, runs: &[Run]) -> anyhow::Result<()> {
    let mut csv = String::from("setup,worker,at_secs,lag_secs\n");
    for run in runs {
        for (worker, child) in run.children.iter().enumerate() {
            for (at, lag) in &child.lag {
                csv.push_str(&format!("\"{}\",{worker},{at:.3},{lag:.3}\n", run.label));
            }
        }
    }
    std::fs::write(path, csv).with_context(|| format!("write {}", path.display()))
}

/// Queues jobs `0..jobs` of the fast vendor, one `Store::submit` each (as `reports submit`).
pub async fn submit_all(store: &Store, jobs: u64, files: &Path) -> anyhow::Result<()> {
    for n in 0..jobs {
        submit_one(store, n, files).await?;
    }
    Ok(())
}

pub async fn submit_one(store: &Store, n: u64, files: &Path) -> anyhow::Result<()> {
    store
        .submit(NewJob {
            vendor: VENDOR.into(),
            connection: "bench".into(),
            request: serde_json::json!({ "n": n }),
            out: out_path(files, n).display().to_string(),
        })
        .await?;
    Ok(())
}

fn out_path(files: &Path, n: u64) -> PathBuf {
    files.join(format!("{n}.out"))
}

fn print_report(
    args: &Args,
    started: chrono::DateTime<chrono::Utc>,
    baselines: &[ChildReport],
    runs: &[Run],
    floors: &[Run],
    pg_note: Option<&str>,
) {
    let us = |s: f64| format!("{:.0} µs", s * 1e6);
    let per_poll = |b: &ChildReport| b.cpu_secs / b.polls.max(1) as f64;
    // The median of the baseline's runs (the table shows that run).
    let mut sorted: Vec<&ChildReport> = baselines.iter().collect();
    sorted.sort_by(|a, b| per_poll(a).total_cmp(&per_poll(b)));
    let baseline = sorted[sorted.len() / 2];
    let base_cpu_poll = per_poll(baseline);
    println!(
        "\n`report-bench runner --jobs {} --polls {} --interval-ms {} --concurrency {} --fetch-ms {} --vendor-latency-ms {}` — {} UTC, machine: {} (shared with other builds: noisy; ratios are within this run).\n",
        args.jobs,
        args.polls,
        args.interval_ms,
        args.concurrency,
        args.fetch_ms,
        args.vendor_latency_ms,
        started.format("%Y-%m-%d %H:%M"),
        crate::proc::machine(),
    );
    println!(
        "Vendor: in-process adapter, no network, each call answered after {} ms (report ready at poll {}, {} ms between polls, no jitter). Every worker is its own process; CPU = getrusage of that process from its first job to its exit.\n",
        args.vendor_latency_ms, args.polls, args.interval_ms
    );
    let mut table = Table::new([
        "setup",
        "jobs done",
        "starts / polls / downloads",
        "queueing",
        "drain",
        "polls/s",
        "steps/s",
        "lag p50",
        "lag p99",
        "lag max",
        "worker CPU",
        "CPU per poll",
        "× in-process",
        "worker + PostgreSQL server CPU per poll",
    ]);
    table.row([
        "in-process Job::wait (baseline, median run)".to_string(),
        format!("{0} / {0}", args.jobs),
        format!(
            "{} / {} / {}",
            baseline.starts, baseline.polls, baseline.downloads
        ),
        "—".into(),
        fmt_secs(baseline.last_call - baseline.first_call),
        "— (sleeps)".into(),
        "—".into(),
        "—".into(),
        "—".into(),
        "—".into(),
        fmt_secs(baseline.cpu_secs),
        us(base_cpu_poll),
        "1.00×".into(),
        "—".into(),
    ]);
    let dash_if_none = |v: f64, f: &dyn Fn(f64) -> String| {
        if v.is_nan() { "—".to_string() } else { f(v) }
    };
    for run in runs.iter().chain(floors) {
        let lag = run.lag();
        // The engine alone measures no lag (its tasks are due in whole seconds).
        let lag_cell = |v: f64| dash_if_none(if lag.is_empty() { f64::NAN } else { v }, &fmt_secs);
        let starts = run.sum(|c| c.starts);
        let downloads = run.sum(|c| c.downloads);
        table.row([
            run.label.clone(),
            format!("{} / {}", run.done, args.jobs),
            format!("{starts} / {} / {downloads}", run.polls()),
            dash_if_none(run.submit_secs, &fmt_secs),
            fmt_secs(run.window()),
            format!("{:.0}", run.polls_per_sec()),
            format!("{:.0}", run.steps() as f64 / run.window()),
            lag_cell(percentile(&lag, 50.0)),
            lag_cell(percentile(&lag, 99.0)),
            lag_cell(crate::stats::max(&lag)),
            fmt_secs(run.cpu()),
            us(run.cpu_per_poll()),
            fmt_ratio(ratio(run.cpu_per_poll(), base_cpu_poll)),
            run.server_cpu.map_or("—".into(), |s| {
                us((run.cpu() + s) / run.polls().max(1) as f64)
            }),
        ]);
    }
    println!("{}", table.render());
    if let Some(note) = pg_note {
        println!("- {note}");
    }
    println!(
        "- in-process baseline, CPU per poll of its runs (first, between the setups, last): {}; ratios use the median",
        baselines
            .iter()
            .map(|b| us(per_poll(b)))
            .collect::<Vec<_>>()
            .join(", ")
    );
    println!(
        "- queueing: {} `Store::submit` calls, one transaction each; drain: first to last vendor call over all workers; polls/s = polls ÷ drain, steps/s = (starts + polls + downloads) ÷ drain (starts and downloads are steps of the runner as well). Lag: the runner's `reports_scheduling_lag_seconds` samples (claim moment − planned poll moment) of every poll.",
        args.jobs
    );
    for run in runs {
        let whole: f64 = run.measured.iter().map(|m| m.cpu.as_secs_f64()).sum();
        let rss = run
            .measured
            .iter()
            .map(|m| m.max_rss_bytes)
            .max()
            .unwrap_or(0);
        // How the steps fell to the workers: one worker taking most of them is no fleet.
        let split = if run.children.len() > 1 {
            format!(
                " (steps per worker: {})",
                run.children
                    .iter()
                    .map(|c| (c.starts + c.polls + c.downloads).to_string())
                    .collect::<Vec<_>>()
                    .join(" / ")
            )
        } else {
            String::new()
        };
        println!(
            "- {}: {} worker process(es){split}, whole-process CPU {} (set-up included), peak RSS {}; runner's extra CPU per poll over in-process: {}{}",
            run.label,
            run.workers,
            fmt_secs(whole),
            crate::stats::fmt_mib(rss as f64),
            us(run.cpu_per_poll() - base_cpu_poll),
            if run.not_done.is_empty() {
                String::new()
            } else {
                format!("; NOT done: {:?}", run.not_done)
            }
        );
    }
    // Goals.
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    for run in runs {
        let p99 = percentile(&run.lag(), 99.0);
        let limit = if run.label.starts_with("SQLite") {
            1.5
        } else {
            2.0
        };
        let r = ratio(run.cpu_per_poll(), base_cpu_poll);
        println!(
            "- goal {}: every job done: {}; p99 scheduling lag ≤ 1 s: {} ({}); CPU per poll ≤ {limit}× in-process: {} ({})",
            run.label,
            verdict(exact(run, args)),
            verdict(p99 <= 1.0),
            fmt_secs(p99),
            verdict(r <= limit),
            fmt_ratio(r),
        );
    }
    let pg: Vec<&Run> = runs
        .iter()
        .filter(|r| r.label.starts_with("PostgreSQL"))
        .collect();
    if let [one, two] = pg.as_slice() {
        let scale = ratio(two.polls_per_sec(), one.polls_per_sec());
        println!(
            "- goal two workers ≥ 1.6× one worker's throughput (PostgreSQL): {} ({}: {:.0} vs {:.0} polls/s)",
            verdict(scale >= 1.6),
            fmt_ratio(scale),
            two.polls_per_sec(),
            one.polls_per_sec()
        );
        // Worker and server share this machine: when its CPU is the bound, a second worker
        // only has the cores the first one and the server leave idle.
        if let Some(server) = one.server_cpu {
            let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
            let cpu_per_poll = (one.cpu() + server) / one.polls().max(1) as f64;
            let ceiling = cores / cpu_per_poll;
            println!(
                "- this machine's ceiling for PostgreSQL when its CPU is the bound: {cores} cores ÷ {} CPU per poll (one worker's + the server's, on the same cores) = {ceiling:.0} polls/s = {} one worker's throughput: no number of workers on this machine reaches more",
                us(cpu_per_poll),
                fmt_ratio(ratio(ceiling, one.polls_per_sec())),
            );
        }
    }
    // Whether the engine itself lets a second worker add throughput.
    let floor = |label| floors.iter().find(|r| r.label == label);
    if let (Some(one), Some(two)) = (floor(FLOOR_POSTGRES), floor(FLOOR_POSTGRES_TWO)) {
        println!(
            "- the engine alone on PostgreSQL (empty steps), two workers against one: {} ({:.0} vs {:.0} polls/s): two runner workers on apalis cannot poll faster than {:.0}/s here",
            fmt_ratio(ratio(two.polls_per_sec(), one.polls_per_sec())),
            two.polls_per_sec(),
            one.polls_per_sec(),
            two.polls_per_sec()
        );
    }
    // The floors: one write per step (under any durable runner on this database) and the
    // engine alone (under any runner built on apalis).
    for (label, limit, db) in [
        (WRITES_SQLITE, 1.5, "SQLite"),
        (WRITES_POSTGRES, 2.0, "PostgreSQL"),
        (FLOOR_SQLITE, 1.5, "SQLite"),
        (FLOOR_POSTGRES, 2.0, "PostgreSQL"),
    ] {
        let Some(floor) = floors.iter().find(|r| r.label == label) else {
            continue;
        };
        let least = base_cpu_poll + floor.cpu_per_poll();
        let writes = writes_only(label);
        let (what, under) = if writes {
            (
                format!("one autocommit write per step on {db} (sqlx, no engine)"),
                "a runner that stores each step's outcome",
            )
        } else {
            (
                format!("the engine alone on {db} (its tasks, empty steps)"),
                "a runner on apalis",
            )
        };
        // Only the engine's floor is under the runner's own: it runs on apalis.
        let beyond = runs
            .iter()
            .find(|r| !writes && r.label.starts_with(db) && r.workers == 1)
            .map(|r| {
                format!(
                    "; the runner spends {} per poll beyond both (its job records, leases, files)",
                    us(r.cpu_per_poll() - least)
                )
            })
            .unwrap_or_default();
        println!(
            "- {what}: {} per poll; {under} spends at least that plus the in-process work, {} = {} in-process (goal ≤ {limit}×){beyond}",
            us(floor.cpu_per_poll()),
            us(least),
            fmt_ratio(ratio(least, base_cpu_poll)),
        );
    }
    for run in runs {
        if let Some(statements) = &run.statements {
            println!(
                "\n{}: the statements that took the PostgreSQL server longest during the drain (`pg_stat_statements`)\n\n```text\n{}```",
                run.label, statements
            );
        }
    }
}

/// Every job done, each started once, polled exactly `--polls` times and downloaded once.
fn exact(run: &Run, args: &Args) -> bool {
    run.done == args.jobs
        && run.not_done.is_empty()
        && run.sum(|c| c.starts) == args.jobs
        && run.polls() == args.jobs * u64::from(args.polls)
        && run.sum(|c| c.downloads) == args.jobs
}
