//! `report-bench soak`: jobs arriving continuously for `--minutes` on an embedded SQLite queue,
//! drained by one worker process (the fast in-process vendor, no network). apalis's tracker
//! has SQLite workers that stop taking jobs after a long run
//! (<https://github.com/apalis-dev/apalis-sqlite/issues/58>); this checks ours does not:
//! every job done, the longest gap between completions while work was queued, the queue depth,
//! the worker's RSS and CPU, and the scheduling lag over time.

use std::io::Read;
use std::path::Path;
use std::process::{Child, Stdio};
use std::time::{Duration, Instant};

use anyhow::Context;
use chrono::{DateTime, Utc};
use report_runner::{JobState, Store};

use crate::fast_vendor::PollCounters;
use crate::runner::{WorkerSpec, submit_one};
use crate::runner_child::ChildReport;
use crate::stats::{Table, fmt_mib, fmt_secs, max, percentile};

#[derive(Debug, clap::Parser)]
pub struct Args {
    /// How long jobs keep arriving.
    #[arg(long, default_value_t = 30.0)]
    pub minutes: f64,
    /// Jobs arriving per second (evenly spaced).
    #[arg(long, default_value_t = 10.0)]
    pub rate: f64,
    /// The status request at which a report is ready.
    #[arg(long, default_value_t = 3)]
    pub polls: u32,
    /// The wait policy's poll interval, in milliseconds.
    #[arg(long, default_value_t = 1000)]
    pub interval_ms: u64,
    /// Steps the worker runs at once (`reports worker`'s default).
    #[arg(long, default_value_t = 8)]
    pub concurrency: usize,
    /// How often the worker looks for due tasks (`reports worker`'s default).
    #[arg(long, default_value_t = 500)]
    pub fetch_ms: u64,
    /// Seconds between samples of the queue and the worker.
    #[arg(long, default_value_t = 10)]
    pub sample_secs: u64,
    /// After the last arrival, how long the worker may take to drain the queue.
    #[arg(long, default_value_t = 120)]
    pub drain_secs: u64,
    /// A gap between completions this long, while work was queued, counts as a stall.
    #[arg(long, default_value_t = 10.0)]
    pub stall_secs: f64,
}

/// One look at the queue and the worker.
struct Sample {
    at: f64,
    submitted: u64,
    unfinished: u64,
    rss: u64,
    cpu: f64,
    db_bytes: u64,
}

pub fn run(args: &Args) -> anyhow::Result<()> {
    anyhow::ensure!(
        args.minutes > 0.0 && args.rate > 0.0,
        "--minutes and --rate must be positive"
    );
    let dir = tempfile::tempdir()?;
    let files = dir.path().join("files");
    std::fs::create_dir_all(&files)?;
    let total = (args.rate * args.minutes * 60.0).round() as u64;
    let counters = dir.path().join("counters");
    PollCounters::create(&counters, total as usize + 1)?;
    let db = dir.path().join("jobs.sqlite");
    let url = db.display().to_string();
    let stop_file = dir.path().join("stop");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let store = rt.block_on(Store::open(&url))?;
    let started_at = Utc::now();
    let mut child = WorkerSpec {
        db: &url,
        counters: &counters,
        polls: args.polls,
        interval_ms: args.interval_ms,
        latency_ms: 0,
        concurrency: args.concurrency,
        fetch_ms: args.fetch_ms,
        stop_file: &stop_file,
    }
    .command()?
    .stdin(Stdio::null())
    .stdout(Stdio::piped())
    .stderr(Stdio::piped())
    .spawn()
    .context("start the worker")?;
    let pid = child.id();
    let output = collect_output(&mut child);
    eprintln!(
        "soak: {total} jobs over {} min at {}/s; worker pid {pid}; database {url}",
        args.minutes, args.rate
    );
    let began = Instant::now();
    let mut samples = Vec::new();
    let sample = |submitted: u64, store: &Store| -> anyhow::Result<Sample> {
        let unfinished = rt.block_on(store.unfinished())?;
        let (rss, cpu) = proc_usage(pid);
        let size = |p: &Path| std::fs::metadata(p).map_or(0, |m| m.len());
        let s = Sample {
            at: began.elapsed().as_secs_f64(),
            submitted,
            unfinished,
            rss,
            cpu,
            db_bytes: size(&db) + size(&db.with_extension("sqlite-wal")),
        };
        eprintln!(
            "soak t={:.0}s submitted={} queued/in progress={} worker RSS={} CPU={:.1}s db={}",
            s.at,
            s.submitted,
            s.unfinished,
            fmt_mib(s.rss as f64),
            s.cpu,
            fmt_mib(s.db_bytes as f64)
        );
        Ok(s)
    };
    // Arrivals, evenly spaced, with a sample every `sample_secs`.
    let every = Duration::from_secs(args.sample_secs.max(1));
    let mut next_sample = began;
    for n in 0..total {
        let due = began + Duration::from_secs_f64(n as f64 / args.rate);
        loop {
            let now = Instant::now();
            if now >= next_sample {
                samples.push(sample(n, &store)?);
                next_sample += every;
            } else if now >= due {
                break;
            } else {
                std::thread::sleep(due.min(next_sample) - now);
            }
        }
        rt.block_on(submit_one(&store, n, &files))?;
    }
    let arrivals_ended = began.elapsed().as_secs_f64();
    std::fs::write(&stop_file, b"")?;
    // The drain: the worker exits once the queue is empty.
    let deadline = Instant::now() + Duration::from_secs(args.drain_secs);
    let drained = loop {
        if child.try_wait()?.is_some() {
            break true;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            break false;
        }
        if Instant::now() >= next_sample {
            samples.push(sample(total, &store)?);
            next_sample += every;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let drain_secs = began.elapsed().as_secs_f64() - arrivals_ended;
    let (stdout, stderr) = output.join().unwrap_or_default();
    let worker: Option<ChildReport> = stdout
        .lines()
        .last()
        .and_then(|l| serde_json::from_str(l).ok());
    let jobs = rt.block_on(store.list())?;
    print_report(
        args,
        started_at,
        &Outcome {
            total,
            drained,
            drain_secs,
            jobs: &jobs,
            worker: worker.as_ref(),
            worker_stderr: &stderr,
            samples: &samples,
        },
    );
    Ok(())
}

/// The child's stdout and stderr, read on threads so it never blocks on a full pipe.
fn collect_output(child: &mut Child) -> std::thread::JoinHandle<(String, String)> {
    let mut out = child.stdout.take().expect("piped stdout");
    let mut err = child.stderr.take().expect("piped stderr");
    std::thread::spawn(move || {
        let errs = std::thread::spawn(move || {
            let mut s = String::new();
            let _ = err.read_to_string(&mut s);
            s
        });
        let mut s = String::new();
        let _ = out.read_to_string(&mut s);
        (s, errs.join().unwrap_or_default())
    })
}

/// A process's resident set (bytes) and CPU so far (seconds), from `/proc`.
fn proc_usage(pid: u32) -> (u64, f64) {
    let rss = std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmRSS:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or(0, |kib| kib * 1024);
    // SAFETY: sysconf has no preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    let cpu = std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| {
            let rest = s.rsplit_once(')')?.1.to_string();
            let f: Vec<&str> = rest.split_whitespace().collect();
            let utime: f64 = f.get(11)?.parse().ok()?;
            let stime: f64 = f.get(12)?.parse().ok()?;
            Some((utime + stime) / ticks)
        })
        .unwrap_or(f64::NAN);
    (rss, cpu)
}

struct Outcome<'a> {
    total: u64,
    drained: bool,
    drain_secs: f64,
    jobs: &'a [report_runner::JobRecord],
    worker: Option<&'a ChildReport>,
    worker_stderr: &'a str,
    samples: &'a [Sample],
}

/// The longest time without a completion while some job was queued or in progress: between
/// consecutive completions, counted from the later of the first completion and the arrival
/// of the oldest job still unfinished then. Returns (gap, when it ended).
pub fn longest_gap(jobs: &[(DateTime<Utc>, DateTime<Utc>)]) -> (f64, Option<DateTime<Utc>>) {
    // (created, finished), by finish.
    let mut jobs = jobs.to_vec();
    jobs.sort_by_key(|j| j.1);
    // The earliest arrival among jobs i.. (those not finished before job i).
    let mut earliest = vec![DateTime::<Utc>::MAX_UTC; jobs.len() + 1];
    for i in (0..jobs.len()).rev() {
        earliest[i] = earliest[i + 1].min(jobs[i].0);
    }
    let mut best = (0.0, None);
    for i in 1..jobs.len() {
        let from = jobs[i - 1].1.max(earliest[i]);
        let gap = (jobs[i].1 - from).num_milliseconds() as f64 / 1000.0;
        if gap > best.0 {
            best = (gap, Some(jobs[i].1));
        }
    }
    best
}

fn print_report(args: &Args, started: DateTime<Utc>, o: &Outcome<'_>) {
    let done: Vec<_> = o
        .jobs
        .iter()
        .filter(|j| j.state == JobState::Done)
        .collect();
    let mut by_state = std::collections::BTreeMap::new();
    for j in o.jobs {
        *by_state.entry(j.state.as_str()).or_insert(0u64) += 1;
    }
    let times: Vec<_> = done
        .iter()
        .filter_map(|j| Some((j.created_at, j.finished_at?)))
        .collect();
    let (gap, gap_at) = longest_gap(&times);
    let latency: Vec<f64> = times
        .iter()
        .map(|(c, f)| (*f - *c).num_milliseconds() as f64 / 1000.0)
        .collect();
    let lag: Vec<(f64, f64)> = o.worker.map(|w| w.lag.clone()).unwrap_or_default();
    let lag_all: Vec<f64> = lag.iter().map(|l| l.1).collect();
    println!(
        "\n`report-bench soak --minutes {} --rate {} --polls {} --interval-ms {} --concurrency {} --fetch-ms {}` — started {} UTC, machine: {} (shared with other builds).\n",
        args.minutes,
        args.rate,
        args.polls,
        args.interval_ms,
        args.concurrency,
        args.fetch_ms,
        started.format("%Y-%m-%d %H:%M"),
        crate::proc::machine(),
    );
    println!(
        "One worker process (report-runner `Worker`, {} steps at once) on an embedded SQLite file; this process submits the jobs (`Store::submit`, as `reports submit` does) evenly spaced; vendor: in-process adapter, no network, report ready at poll {}, {} ms between polls.\n",
        args.concurrency, args.polls, args.interval_ms
    );
    let mut table = Table::new([
        "minute",
        "submitted",
        "queued / in progress",
        "done (so far)",
        "worker RSS",
        "worker CPU (total)",
        "database + WAL",
        "lag p99 (that minute)",
    ]);
    let mut minute = 0u64;
    for (i, s) in o.samples.iter().enumerate() {
        let last = i + 1 == o.samples.len();
        if s.at < (minute * 60) as f64 && !last {
            continue;
        }
        let from = s.at - 60.0;
        let window: Vec<f64> = lag
            .iter()
            .filter(|l| l.0 > from && l.0 <= s.at)
            .map(|l| l.1)
            .collect();
        table.row([
            format!("{:.1}", s.at / 60.0),
            s.submitted.to_string(),
            s.unfinished.to_string(),
            s.submitted.saturating_sub(s.unfinished).to_string(),
            fmt_mib(s.rss as f64),
            format!("{:.1} s", s.cpu),
            fmt_mib(s.db_bytes as f64),
            if window.is_empty() {
                "—".into()
            } else {
                fmt_secs(percentile(&window, 99.0))
            },
        ]);
        minute = (s.at / 60.0).floor() as u64 + 1;
    }
    println!("{}", table.render());
    let verdict = |ok: bool| if ok { "met" } else { "MISSED" };
    let all_done = done.len() as u64 == o.total && o.jobs.len() as u64 == o.total;
    println!(
        "- jobs: {} submitted, {} done, by state {:?}; drained {} after the last arrival{}",
        o.total,
        done.len(),
        by_state,
        fmt_secs(o.drain_secs),
        if o.drained {
            String::new()
        } else {
            " — the worker did NOT drain the queue in time and was killed".into()
        }
    );
    println!(
        "- longest gap between completions while work was queued: {}{}; job latency (submit → file): p50 {}, p99 {}, max {}",
        fmt_secs(gap),
        gap_at.map_or(String::new(), |t| format!(
            " (ending {})",
            t.format("%H:%M:%S")
        )),
        fmt_secs(percentile(&latency, 50.0)),
        fmt_secs(percentile(&latency, 99.0)),
        fmt_secs(max(&latency)),
    );
    if lag_all.is_empty() {
        println!("- scheduling lag: no samples (the worker printed no figures)");
    } else {
        println!(
            "- scheduling lag over {} polls: p50 {}, p99 {}, max {}",
            lag_all.len(),
            fmt_secs(percentile(&lag_all, 50.0)),
            fmt_secs(percentile(&lag_all, 99.0)),
            fmt_secs(max(&lag_all)),
        );
    }
    let depth: Vec<f64> = o.samples.iter().map(|s| s.unfinished as f64).collect();
    let rss_after_warmup: Vec<&Sample> = o.samples.iter().filter(|s| s.at >= 60.0).collect();
    if let (Some(first), Some(last)) = (rss_after_warmup.first(), rss_after_warmup.last()) {
        println!(
            "- queue depth: max {:.0}; worker RSS at 1 min {} → at the end {} (max {})",
            max(&depth),
            fmt_mib(first.rss as f64),
            fmt_mib(last.rss as f64),
            fmt_mib(o.samples.iter().map(|s| s.rss).max().unwrap_or(0) as f64),
        );
    }
    if let Some(w) = o.worker {
        println!(
            "- worker: {} starts, {} polls, {} downloads; {} CPU, {:.0} µs per poll",
            w.starts,
            w.polls,
            w.downloads,
            fmt_secs(w.cpu_secs),
            w.cpu_secs / w.polls.max(1) as f64 * 1e6
        );
    } else {
        println!(
            "- the worker printed no figures; its standard error: {}",
            o.worker_stderr.trim()
        );
    }
    println!(
        "- goal no stall (every job done, no gap over {} s while work was queued): {}",
        args.stall_secs,
        verdict(all_done && o.drained && gap <= args.stall_secs)
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(secs: i64) -> DateTime<Utc> {
        DateTime::from_timestamp(1_700_000_000 + secs, 0).unwrap()
    }

    #[test]
    fn a_gap_counts_only_while_work_was_queued() {
        // Completions at 1, 2 and 20; the third job arrived at 15: the queue was empty from 2
        // to 15, so the gap is 5 s, not 18 s.
        let jobs = [(t(0), t(1)), (t(0), t(2)), (t(15), t(20))];
        assert_eq!(longest_gap(&jobs), (5.0, Some(t(20))));
        // The same third job queued since 0: an 18 s stall.
        let jobs = [(t(0), t(1)), (t(0), t(2)), (t(0), t(20))];
        assert_eq!(longest_gap(&jobs).0, 18.0);
        assert_eq!(longest_gap(&[]).0, 0.0);
    }
}
