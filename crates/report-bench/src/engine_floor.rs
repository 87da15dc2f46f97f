//! The job engine alone (`report-bench runner-child engine-floor`): what apalis costs for the
//! runner's tasks when a step does nothing but queue the next one. Each job is a chain of
//! tasks shaped like the runner's (a start, `--polls` polls `--interval-ms` apart, a download
//! at once), on the same engine storage, database options and worker settings as
//! `report_runner::Worker`, with no vendor call, no job record and no file. No runner built
//! on this engine can spend less CPU per poll than this plus the vendor work itself.

use std::str::FromStr;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use anyhow::Context;
use apalis::prelude::{
    BackendExt, BoxDynError, Data, Task, TaskBuilder, WorkerBuilder, WorkerBuilderExt,
};
use clap::Args;
use serde::{Deserialize, Serialize};

use crate::fast_vendor::{Calls, PollCounters};
use crate::proc::self_cpu;
use crate::runner_child::{ChildReport, report};

/// The engine's queue for the chains (the runner's own is `report_runner::QUEUE`).
const QUEUE: &str = "engine-floor";

/// Workers started in this process, to name each apart.
static WORKERS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

/// The engine tasks `report_runner::Worker` keeps taken per step it runs at once.
const TASKS_PER_SLOT: usize = 8;

#[derive(Debug, Args)]
pub struct FloorArgs {
    /// A database `report_runner::Store::open` has set up (SQLite path or `postgres://` URL).
    #[arg(long)]
    pub db: String,
    /// Chains (jobs) to queue, then drain.
    #[arg(long)]
    pub jobs: u64,
    /// Polls per chain.
    #[arg(long)]
    pub polls: u32,
    /// Between two polls of a chain, in milliseconds.
    #[arg(long)]
    pub interval_ms: u64,
    /// Steps at once (the engine takes this many × `TASKS_PER_SLOT`, as the runner does).
    #[arg(long)]
    pub concurrency: usize,
    /// How often the engine looks for due tasks, in milliseconds.
    #[arg(long)]
    pub fetch_ms: u64,
    /// No engine at all: each step is one write (an autocommit `UPDATE` of a row per job),
    /// `--concurrency` at once, as fast as they go: the least a durable runner on this database
    /// driver spends, whatever its engine.
    #[arg(long)]
    pub writes_only: bool,
    /// Several worker processes share the chains: this one queues none (another did), and
    /// each counts the chains it finishes in this shared counters file (one counter), all
    /// stopping once the count reaches `--jobs`.
    #[arg(long)]
    pub no_queue: bool,
    /// The counters file shared by the worker processes (see `--no-queue`); without it, this
    /// process alone drains the queue.
    #[arg(long)]
    pub done_counter: Option<std::path::PathBuf>,
}

/// One task of a chain: step 0 is the start, 1..=polls the polls, polls + 1 the download.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Link {
    job: u64,
    step: u32,
}

/// What every task of the worker shares.
struct Chains {
    pool: Pool,
    polls: u32,
    interval: Duration,
    /// Steps counted as the vendor calls the runner would make.
    calls: Calls,
    /// Chains finished.
    done: tokio::sync::watch::Sender<u64>,
    /// Chains finished by every worker process, when there are several.
    shared_done: Option<Arc<PollCounters>>,
}

#[derive(Clone)]
enum Pool {
    Sqlite(apalis_sqlite::SqlitePool),
    Postgres(sqlx::PgPool),
}

pub async fn run(args: &FloorArgs) -> anyhow::Result<ChildReport> {
    let began = Instant::now();
    let pool = open(&args.db).await?;
    if args.writes_only {
        return writes_only(args, &pool, began).await;
    }
    if !args.no_queue {
        for job in 0..args.jobs {
            push(&pool, &Link { job, step: 0 }, None).await?;
        }
    }
    let shared_done = args
        .done_counter
        .as_deref()
        .map(PollCounters::open)
        .transpose()?
        .map(Arc::new);
    let (done, mut done_rx) = tokio::sync::watch::channel(0u64);
    let chains = Arc::new(Chains {
        pool: pool.clone(),
        polls: args.polls,
        interval: Duration::from_millis(args.interval_ms),
        calls: Calls::default(),
        done,
        shared_done: shared_done.clone(),
    });
    let jobs = args.jobs;
    let stop = async move {
        match shared_done {
            // Other processes finish chains too: the shared count says when all are done.
            Some(counter) => {
                while u64::from(counter.get(0)) < jobs {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            }
            None => {
                let _ = done_rx.wait_for(|done| *done >= jobs).await;
            }
        }
        Ok::<(), std::io::Error>(())
    };
    let fetch = Duration::from_millis(args.fetch_ms.max(10));
    let concurrency = args.concurrency.max(1) * TASKS_PER_SLOT;
    let cpu0 = self_cpu();
    let heartbeat = report_runner::WorkerOptions::default().heartbeat;
    // The same worker on either database's engine storage.
    macro_rules! run {
        ($backend:expr) => {
            // A name per worker: the engine refuses a second live worker of one name.
            WorkerBuilder::new(format!(
                "engine-floor-{}-{}",
                std::process::id(),
                WORKERS.fetch_add(1, Relaxed)
            ))
            .backend($backend.poll_with_interval(fetch))
            .concurrency(concurrency)
            .data(chains.clone())
            .build(step)
            .run_until(stop)
            .await?
        };
    }
    match &pool {
        Pool::Sqlite(pool) => run!(
            apalis_sqlite::SqliteStorage::<Link>::new(pool).with_config(
                apalis_sqlite::Config::default()
                    .queue(QUEUE)
                    .heartbeat_interval(heartbeat)
                    .lock_tasks(false)
            )
        ),
        Pool::Postgres(pool) => run!(
            apalis_postgres::PostgresStorage::<Link>::new(pool).with_config(
                apalis_postgres::Config::default()
                    .queue(QUEUE)
                    .heartbeat_interval(heartbeat)
                    .lock_tasks(false)
            )
        ),
    }
    Ok(report(&chains.calls, cpu0, began, Vec::new()))
}

/// One step of a chain: count it, queue the next.
async fn step(link: Link, chains: Data<Arc<Chains>>) -> Result<(), BoxDynError> {
    let calls = &chains.calls;
    let next_at = match link.step {
        0 => {
            calls.note(&calls.starts);
            Some(chains.interval)
        }
        s if s < chains.polls => {
            calls.note(&calls.polls);
            Some(chains.interval)
        }
        s if s == chains.polls => {
            calls.note(&calls.polls);
            None
        }
        _ => {
            calls.note(&calls.opens);
            chains.done.send_modify(|done| *done += 1);
            if let Some(counter) = &chains.shared_done {
                counter.bump(0);
            }
            return Ok(());
        }
    };
    let next = Link {
        job: link.job,
        step: link.step + 1,
    };
    push(&chains.pool, &next, next_at).await?;
    Ok(())
}

/// One write per step of every job, `--concurrency` writers at once.
async fn writes_only(args: &FloorArgs, pool: &Pool, began: Instant) -> anyhow::Result<ChildReport> {
    // One text for both databases: SQLite reads `$1` as PostgreSQL does.
    const CREATE: &str = "CREATE TABLE floor_writes (id BIGINT PRIMARY KEY, steps BIGINT NOT NULL)";
    // A row per job, 0..jobs.
    const FILL: &str =
        "WITH RECURSIVE n(v) AS (SELECT 0 UNION ALL SELECT v + 1 FROM n WHERE v < $1)
                        INSERT INTO floor_writes SELECT v, 0 FROM n";
    const WRITE: &str = "UPDATE floor_writes SET steps = steps + 1 WHERE id = $1";
    let last = args.jobs as i64 - 1;
    match pool {
        Pool::Sqlite(p) => {
            sqlx::raw_sql(CREATE).execute(p).await?;
            sqlx::query(FILL).bind(last).execute(p).await?;
        }
        Pool::Postgres(p) => {
            sqlx::raw_sql(CREATE).execute(p).await?;
            sqlx::query(FILL).bind(last).execute(p).await?;
        }
    }
    let calls = Arc::new(Calls::default());
    let steps_per_job = u64::from(args.polls) + 2;
    let next = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let cpu0 = self_cpu();
    let mut writers = tokio::task::JoinSet::new();
    for _ in 0..args.concurrency.max(1) {
        let (pool, calls, next) = (pool.clone(), calls.clone(), next.clone());
        let (jobs, polls) = (args.jobs, u64::from(args.polls));
        writers.spawn(async move {
            loop {
                let i = next.fetch_add(1, Relaxed);
                if i >= jobs * steps_per_job {
                    return Ok::<(), anyhow::Error>(());
                }
                let (job, step) = ((i % jobs) as i64, i / jobs);
                match &pool {
                    Pool::Sqlite(p) => {
                        sqlx::query(WRITE).bind(job).execute(p).await?;
                    }
                    Pool::Postgres(p) => {
                        sqlx::query(WRITE).bind(job).execute(p).await?;
                    }
                }
                let counter = match step {
                    0 => &calls.starts,
                    s if s <= polls => &calls.polls,
                    _ => &calls.opens,
                };
                calls.note(counter);
            }
        });
    }
    while let Some(writer) = writers.join_next().await {
        writer??;
    }
    Ok(report(&calls, cpu0, began, Vec::new()))
}

/// Queues `link`, due after `after` (now if `None`), as the runner queues a step: one task
/// with an idempotency key, in whole seconds.
async fn push(pool: &Pool, link: &Link, after: Option<Duration>) -> anyhow::Result<()> {
    let mut task = TaskBuilder::new(serde_json::to_vec(link)?)
        .idempotency_key(format!("{}/{}", link.job, link.step))
        .max_attempts(25);
    if let Some(after) = after {
        let at = chrono::Utc::now() + after;
        task = task.run_at_timestamp(at.timestamp().max(0) as u64);
    }
    let task: Task<Vec<u8>> = task.build();
    match pool {
        Pool::Sqlite(pool) => {
            let mut conn = pool.acquire().await?;
            apalis_sqlite::queries::push_tasks(&mut *conn, QUEUE, &[task]).await?;
        }
        Pool::Postgres(pool) => {
            let mut conn = pool.acquire().await?;
            apalis_postgres::queries::push_tasks(&mut *conn, QUEUE, vec![task]).await?;
        }
    }
    Ok(())
}

/// A pool with the options `report_runner::Store` gives its own (WAL, NORMAL syncs, no ping
/// before each statement); the database's set-up is the store's.
async fn open(url: &str) -> anyhow::Result<Pool> {
    if url.starts_with("postgres://") || url.starts_with("postgresql://") {
        let pool = sqlx::postgres::PgPoolOptions::new()
            .max_connections(8)
            .test_before_acquire(false)
            .connect(url)
            .await
            .with_context(|| format!("open {url}"))?;
        return Ok(Pool::Postgres(pool));
    }
    let options = apalis_sqlite::SqliteConnectOptions::from_str(&format!("sqlite:{url}"))?
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .synchronous(sqlx::sqlite::SqliteSynchronous::Normal)
        .busy_timeout(Duration::from_secs(30));
    let pool = apalis_sqlite::SqlitePoolOptions::new()
        .max_connections(4)
        .test_before_acquire(false)
        .connect_with(options)
        .await
        .with_context(|| format!("open {url}"))?;
    Ok(Pool::Sqlite(pool))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn args(db: &str, writes_only: bool) -> FloorArgs {
        FloorArgs {
            db: db.to_string(),
            jobs: 6,
            polls: 2,
            interval_ms: 0,
            concurrency: 2,
            fetch_ms: 10,
            writes_only,
            no_queue: false,
            done_counter: None,
        }
    }

    /// Two workers share the chains one of them queued, each step run once between them, and
    /// both stop once every chain is done.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn two_workers_share_the_chains_and_stop_together() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("floor.sqlite").display().to_string();
        drop(report_runner::Store::open(&db).await.unwrap());
        let counter = dir.path().join("done");
        PollCounters::create(&counter, 1).unwrap();
        let first = FloorArgs {
            done_counter: Some(counter.clone()),
            ..args(&db, false)
        };
        let second = FloorArgs {
            no_queue: true,
            done_counter: Some(counter.clone()),
            ..args(&db, false)
        };
        let (a, b) = tokio::time::timeout(
            Duration::from_secs(60),
            futures::future::join(run(&first), run(&second)),
        )
        .await
        .expect("both stop");
        let (a, b) = (a.unwrap(), b.unwrap());
        assert_eq!(
            (
                a.starts + b.starts,
                a.polls + b.polls,
                a.downloads + b.downloads
            ),
            (6, 12, 6)
        );
        assert_eq!(PollCounters::open(&counter).unwrap().get(0), 6);
    }

    /// Each chain runs its start, its polls and its download once, then the worker stops.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn every_chain_runs_each_of_its_steps_once() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("floor.sqlite").display().to_string();
        drop(report_runner::Store::open(&db).await.unwrap());
        let report = tokio::time::timeout(Duration::from_secs(60), run(&args(&db, false)))
            .await
            .expect("the chains end")
            .unwrap();
        assert_eq!((report.starts, report.polls, report.downloads), (6, 12, 6));
    }

    /// One write per step, counted as the runner's steps are.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn writes_only_writes_once_per_step() {
        let dir = tempfile::tempdir().unwrap();
        let db = dir.path().join("writes.sqlite").display().to_string();
        drop(report_runner::Store::open(&db).await.unwrap());
        let report = run(&args(&db, true)).await.unwrap();
        assert_eq!((report.starts, report.polls, report.downloads), (6, 12, 6));
        let Pool::Sqlite(pool) = open(&db).await.unwrap() else {
            unreachable!("a SQLite path")
        };
        let steps: Vec<i64> = sqlx::query_scalar("SELECT steps FROM floor_writes ORDER BY id")
            .fetch_all(&pool)
            .await
            .unwrap();
        assert_eq!(steps, vec![4; 6]);
    }
}
