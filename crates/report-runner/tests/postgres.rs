//! The runner on a real PostgreSQL server (a throwaway cluster, as the CLI's tests start it):
//! two workers share a connection's limits, and finished engine tasks are deleted.
#![cfg(feature = "postgres")]

#[allow(dead_code)] // the helper serves other tests too
#[path = "../../report-cli/tests/support/postgres.rs"]
mod postgres;

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use report_core::{Artifact, Download, Progress, ReportAdapter, Result, Started, Status, Ticket};
use report_runner::{
    Claim, JobState, Limits, NewJob, Registry, StepTask, Store, TaskRetention, Worker,
    WorkerOptions, idle,
};

/// Reports ready at their second poll; each start and poll lasts 150 ms and is counted.
#[derive(Default)]
struct Fake {
    starts: AtomicU32,
    starting: Gauge,
    polling: Gauge,
}

#[derive(Default)]
struct Gauge {
    now: AtomicU32,
    most: AtomicU32,
}

impl Gauge {
    async fn during(&self, busy: Duration) {
        let now = self.now.fetch_add(1, Ordering::SeqCst) + 1;
        self.most.fetch_max(now, Ordering::SeqCst);
        tokio::time::sleep(busy).await;
        self.now.fetch_sub(1, Ordering::SeqCst);
    }
}

struct Adapter(Arc<Fake>);

impl ReportAdapter for Adapter {
    type Request = String;

    fn vendor(&self) -> &'static str {
        "fake"
    }

    async fn start(&self, request: &String) -> Result<Started> {
        // Starts go one at a time; a poll outlasts two of them, so without the read limit
        // three polls would overlap.
        self.0.starting.during(Duration::from_millis(150)).await;
        self.0.starts.fetch_add(1, Ordering::SeqCst);
        Ok(Started {
            ticket: Ticket::new("fake", request.clone(), Utc::now()),
            status: Some(Status::Pending(Progress::state("queued"))),
        })
    }

    async fn poll(&self, ticket: &Ticket) -> Result<Status> {
        self.0.polling.during(Duration::from_millis(400)).await;
        Ok(Status::Ready(Artifact {
            url: format!("http://127.0.0.1/{}", ticket.id),
            ..Artifact::default()
        }))
    }

    async fn open(&self, _: &Artifact, offset: u64) -> Result<Download> {
        let body = b"report\n".repeat(100)[offset as usize..].to_vec();
        Ok(Download {
            file_name: None,
            content_type: None,
            total_size: Some(body.len() as u64 + offset),
            offset,
            compression: report_core::Compression::None,
            body: Box::pin(futures::stream::iter([Ok(Bytes::from(body))])),
        })
    }
}

fn registry(fake: Arc<Fake>) -> Registry {
    let mut registry = Registry::new();
    registry.limit(
        "fake",
        Limits {
            writes: Some(1),
            reads: Some(2),
            per_minute: None,
        },
    );
    registry.register(
        "fake",
        move |_: &str| Ok(Adapter(fake.clone())),
        |request: &serde_json::Value| Ok(request["name"].as_str().unwrap_or("x").to_string()),
    );
    registry
}

/// A throwaway cluster, a folder for the jobs' files, and a store on the cluster; `None`
/// (the test skips) where PostgreSQL is not installed.
async fn cluster_with_store() -> Option<(postgres::Cluster, tempfile::TempDir, Store)> {
    let cluster = postgres::Cluster::start()?;
    let store = Store::open(&cluster.url).await.unwrap();
    Some((cluster, tempfile::tempdir().unwrap(), store))
}

/// Queues a job of the fake vendor named `name`, its file in `dir`; returns its id.
async fn submit(store: &Store, dir: &std::path::Path, name: &str) -> String {
    store
        .submit(NewJob {
            vendor: "fake".into(),
            connection: "main".into(),
            request: serde_json::json!({ "name": name }),
            out: dir.join(name).display().to_string(),
        })
        .await
        .unwrap()
        .id
}

/// A worker's options here: `concurrency` steps at once under a `lease`, quick fetches and
/// retries.
fn options(concurrency: usize, lease: Duration) -> WorkerOptions {
    WorkerOptions {
        concurrency,
        lease,
        fetch_interval: Duration::from_millis(50),
        heartbeat: Duration::from_secs(1),
        policy: report_core::WaitPolicy::default()
            .with_backoff(Duration::from_millis(10), Duration::from_millis(10)),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_workers_share_limits_and_finished_tasks_are_deleted_on_postgres() {
    let Some((cluster, dir, one)) = cluster_with_store().await else {
        return;
    };
    let two = Store::open(&cluster.url).await.unwrap();
    let mut ids = Vec::new();
    for i in 0..8 {
        ids.push(submit(&one, dir.path(), &format!("p{i}")).await);
    }
    let fake = Arc::new(Fake::default());
    let run = |store: &Store| {
        let options = options(8, Duration::from_secs(5));
        let worker = Worker::new(store.clone(), registry(fake.clone()), options).task_retention(
            Some(TaskRetention {
                keep: Duration::from_secs(3600),
                every: Duration::from_secs(3600),
            }),
        );
        tokio::time::timeout(
            Duration::from_secs(60),
            worker.run_until(idle(store.clone(), Duration::from_millis(50))),
        )
    };
    let (a, b) = tokio::join!(run(&one), run(&two));
    if a.is_err() || b.is_err() {
        for job in one.list().await.unwrap() {
            eprintln!("{} {} {:?} {:?}", job.id, job.state, job.message, job.error);
        }
    }
    a.expect("drained in time").unwrap();
    b.expect("drained in time").unwrap();
    for id in &ids {
        assert_eq!(one.get(id).await.unwrap().unwrap().state, JobState::Done);
    }
    assert_eq!(fake.starts.load(Ordering::SeqCst), 8);
    assert_eq!(
        fake.starting.most.load(Ordering::SeqCst),
        1,
        "one start at a time"
    );
    assert_eq!(
        fake.polling.most.load(Ordering::SeqCst),
        2,
        "two polls at a time"
    );

    // Kept for an hour: all there; kept for no time: gone, the job records stay.
    let finished = one.finished_tasks().await.unwrap();
    assert!(finished >= 24, "{finished}");
    assert_eq!(
        one.delete_finished_tasks(Duration::from_secs(3600))
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        one.delete_finished_tasks(Duration::ZERO).await.unwrap(),
        finished
    );
    assert_eq!(one.finished_tasks().await.unwrap(), 0);
    assert_eq!(one.list().await.unwrap().len(), 8);
}

/// A server restart cuts every pooled connection: each fails its next statement (the pool does
/// not ping before each one), the steps under way are delivered again, and every job still
/// ends done with one start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_worker_outlives_a_postgresql_restart() {
    let Some((cluster, dir, store)) = cluster_with_store().await else {
        return;
    };
    let mut ids = Vec::new();
    for i in 0..6 {
        ids.push(submit(&store, dir.path(), &format!("r{i}")).await);
    }
    let fake = Arc::new(Fake::default());
    let worker = Worker::new(
        store.clone(),
        registry(fake.clone()),
        options(8, Duration::from_secs(2)),
    );
    let run = tokio::spawn(tokio::time::timeout(
        Duration::from_secs(90),
        worker.run_until(idle(store.clone(), Duration::from_millis(50))),
    ));
    // Once every report's start is recorded (a start cut off before its ticket is saved could
    // not be reconciled with this vendor), while polls are under way.
    tokio::time::timeout(Duration::from_secs(60), async {
        while !run.is_finished() {
            let jobs = store.list().await.unwrap();
            if jobs.iter().all(|job| job.ticket.is_some()) {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("every report started in time");
    assert!(!run.is_finished(), "the worker ended before the restart");
    let cluster = tokio::task::spawn_blocking(move || {
        cluster.restart();
        cluster
    })
    .await
    .unwrap();
    run.await
        .unwrap()
        .expect("drained in time after the restart")
        .unwrap();
    // No session is left inside a transaction (its writes uncommitted, its locks held).
    let side = sqlx::PgPool::connect(&cluster.url).await.unwrap();
    assert_eq!(
        idle_in_transaction_after_settling(&side).await,
        Vec::<String>::new()
    );
    let store = tokio::time::timeout(Duration::from_secs(60), Store::open(&cluster.url))
        .await
        .expect("opened in time")
        .unwrap();
    for id in &ids {
        let job = store.get(id).await.unwrap().unwrap();
        assert_eq!(job.state, JobState::Done, "{job:?}");
    }
    assert_eq!(fake.starts.load(Ordering::SeqCst), 6, "one start per job");
}

/// Sessions of the database other than `side`'s inside a transaction once the ones being
/// rolled back are (within 200 ms).
async fn idle_in_transaction_after_settling(side: &sqlx::PgPool) -> Vec<String> {
    let deadline = std::time::Instant::now() + Duration::from_millis(200);
    loop {
        let open: Vec<String> = sqlx::query_scalar(
            "SELECT query FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()
                 AND state LIKE 'idle in transaction%'",
        )
        .fetch_all(side)
        .await
        .unwrap();
        if open.is_empty() || std::time::Instant::now() > deadline {
            return open;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A store operation dropped at any moment (a step cut at its lease or at the stop grace, a
/// timeout) leaves no session inside a transaction: sqlx 0.9 would leave one when the drop
/// comes while a `BEGIN` is on its way, and the pool would hand that session on, with the
/// next borrower's writes uncommitted and their locks held.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn store_operations_dropped_at_any_moment_leave_no_transaction_open() {
    let Some((cluster, dir, store)) = cluster_with_store().await else {
        return;
    };
    let id = submit(&store, dir.path(), "d").await;
    let task = report_runner::StepTask {
        job: id.clone(),
        seq: 0,
    };
    // Each drop comes a little later than the last (after one more turn of the runtime, which
    // drives the connections' I/O meanwhile), through the whole operation. A dropped
    // transaction is rolled back as its connection goes back to the pool; a session still
    // inside one after that is left open for good (until a later borrower's COMMIT ends it
    // with that borrower's writes, which is why each drop is checked at once).
    let side = sqlx::PgPool::connect(&cluster.url).await.unwrap();
    let (mut dropped, mut finished) = (0, 0);
    for turns in 0..5_000 {
        tokio::select! {
            result = store.defer(&task, Duration::from_secs(3600)) => {
                result.unwrap();
                finished += 1;
                if finished == 30 {
                    break;
                }
            }
            () = async {
                for _ in 0..turns {
                    tokio::task::yield_now().await;
                }
            } => {
                dropped += 1;
                let open = idle_in_transaction_after_settling(&side).await;
                assert_eq!(open, Vec::<String>::new(), "dropped after {turns} turns");
            }
        }
    }
    assert!(
        dropped > 20 && finished == 30,
        "{dropped} dropped, {finished} finished"
    );
    // And writes through the pool's sessions are committed: another session sees each at once.
    for i in 0..16 {
        let id = submit(&store, dir.path(), &format!("s{i}")).await;
        let seen: i64 = sqlx::query_scalar("SELECT COUNT(*) FROM report_jobs WHERE id = $1")
            .bind(&id)
            .fetch_one(&side)
            .await
            .unwrap();
        assert_eq!(seen, 1, "job {i} is committed");
    }
    assert_eq!(
        idle_in_transaction_after_settling(&side).await,
        Vec::<String>::new()
    );
}

/// Queueing a step's task again is harmless when it is queued (the engine refuses a second
/// task under one key on PostgreSQL, where SQLite's ignores it).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn queueing_a_queued_step_again_is_harmless_on_postgres() {
    let Some((_cluster, dir, store)) = cluster_with_store().await else {
        return;
    };
    let id = submit(&store, dir.path(), "q").await;
    let record = store.get(&id).await.unwrap().unwrap();
    store.requeue(&record).await.unwrap();
    store.requeue(&record).await.unwrap();
}

/// Opening a database in use takes no lock on its tables: a session reading `report_jobs` in
/// a long transaction (a report query, a backup) does not hold up a CLI command or a worker
/// starting, which `ALTER TABLE … IF NOT EXISTS` on every open did.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_database_in_use_waits_for_no_lock() {
    let Some((cluster, dir, store)) = cluster_with_store().await else {
        return;
    };
    submit(&store, dir.path(), "o").await;
    let side = sqlx::PgPool::connect(&cluster.url).await.unwrap();
    let mut reading = side.begin().await.unwrap();
    sqlx::query("SELECT COUNT(*) FROM report_jobs")
        .execute(&mut *reading)
        .await
        .unwrap();
    let opened = tokio::time::timeout(Duration::from_secs(20), Store::open(&cluster.url)).await;
    reading.rollback().await.unwrap();
    opened.expect("opened while another session reads").unwrap();
}

/// Finished engine tasks lose their worker's name, so the engine's acknowledgement and
/// heartbeat (which look tasks up by it) stay as cheap at the millionth task as at the first;
/// a database an older version left behind is mended when next opened.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finished_engine_tasks_are_unlocked_on_postgres() {
    let Some((cluster, dir, store)) = cluster_with_store().await else {
        return;
    };
    let side = sqlx::PgPool::connect(&cluster.url).await.unwrap();
    let count = |sql: &'static str| {
        let side = side.clone();
        async move {
            sqlx::query_scalar::<_, i64>(sql)
                .fetch_one(&side)
                .await
                .unwrap()
        }
    };
    const DONE: &str = "SELECT COUNT(*) FROM apalis.jobs WHERE status = 'Done'";
    const LOCKED_DONE: &str =
        "SELECT COUNT(*) FROM apalis.jobs WHERE status = 'Done' AND lock_by IS NOT NULL";
    let drain = |name: &'static str| {
        let (store, dir) = (store.clone(), dir.path().to_path_buf());
        async move {
            submit(&store, &dir, name).await;
            let worker = Worker::new(
                store.clone(),
                registry(Arc::new(Fake::default())),
                options(4, Duration::from_secs(5)),
            );
            tokio::time::timeout(
                Duration::from_secs(60),
                worker.run_until(idle(store.clone(), Duration::from_millis(50))),
            )
            .await
            .expect("drained in time")
            .unwrap();
        }
    };
    drain("u1").await;
    drain("u2").await;
    assert!(count(DONE).await >= 6, "{}", count(DONE).await);
    assert_eq!(count(LOCKED_DONE).await, 0, "finished tasks are unlocked");

    // A database an older version left behind: unlocked once, when next opened.
    sqlx::raw_sql(
        "DROP TRIGGER report_runner_unlock_finished_tasks ON apalis.jobs;
         UPDATE apalis.jobs SET lock_by = (SELECT id FROM apalis.workers LIMIT 1)
         WHERE status = 'Done'",
    )
    .execute(&side)
    .await
    .unwrap();
    assert!(count(LOCKED_DONE).await >= 6);
    let store = Store::open(&cluster.url).await.unwrap();
    assert_eq!(count(LOCKED_DONE).await, 0, "unlocked when opened");
    drop(store);
    drain("u3").await;
    assert!(count(DONE).await >= 9);
    assert_eq!(count(LOCKED_DONE).await, 0, "and as they finish again");
}

/// An engine task's columns, as `apalis.jobs` holds them.
#[derive(Debug, sqlx::FromRow)]
struct EngineTask {
    job_type: String,
    job: Vec<u8>,
    status: String,
    attempts: i32,
    max_attempts: i32,
    run_at: i64,
    priority: i32,
    metadata: String,
    lock_by: Option<String>,
}

/// On PostgreSQL a step's outcome and its next engine task are saved in one statement: the
/// task it queues has the shape of the engine's own (the task `submit` queued through
/// apalis), is due at the planned second, and is taken by the engine; a step whose lease was
/// lost saves and queues nothing.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_steps_outcome_and_its_next_task_are_one_statement_on_postgres() {
    let Some((cluster, dir, store)) = cluster_with_store().await else {
        return;
    };
    let side = sqlx::PgPool::connect(&cluster.url).await.unwrap();
    let id = submit(&store, dir.path(), "one").await;
    let first = StepTask {
        job: id.clone(),
        seq: 0,
    };
    let Claim::Claimed { mut record, .. } = store
        .claim(&first, "w1", Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("step 0 is free")
    };
    record.state = JobState::Running;
    record.ticket = Some(Ticket::new("fake", "t-1", Utc::now()));
    record.message = Some("started".into());
    let at = Utc::now() + chrono::Duration::seconds(90);
    record.next_poll_at = Some(at);

    // Not the lease's holder: nothing saved, nothing queued.
    let mut lost = record.clone();
    assert!(matches!(
        store.advance(&mut lost, "w2", Some(at)).await,
        Err(report_runner::Error::LeaseLost(job)) if job == id
    ));
    assert_eq!(lost.seq, 0);
    let stored = store.get(&id).await.unwrap().unwrap();
    assert_eq!((stored.seq, stored.state), (0, JobState::Queued));
    let tasks = |key: String| {
        let side = side.clone();
        async move {
            sqlx::query_as::<_, EngineTask>(
                "SELECT job_type, job, status, attempts, max_attempts,
                        EXTRACT(EPOCH FROM run_at)::bigint AS run_at, priority,
                        metadata::text AS metadata, lock_by
                 FROM apalis.jobs WHERE idempotency_key = $1",
            )
            .bind(key)
            .fetch_all(&side)
            .await
            .unwrap()
        }
    };
    assert!(tasks(format!("{id}/1")).await.is_empty());

    store.advance(&mut record, "w1", Some(at)).await.unwrap();
    assert_eq!(record.seq, 1);
    let stored = store.get(&id).await.unwrap().unwrap();
    assert_eq!((stored.seq, stored.state), (1, JobState::Running));
    assert_eq!(stored.message.as_deref(), Some("started"));
    let engines = tasks(format!("{id}/0")).await;
    let ours = tasks(format!("{id}/1")).await;
    assert_eq!((engines.len(), ours.len()), (1, 1));
    let (engines, ours) = (&engines[0], &ours[0]);
    let payload: StepTask = serde_json::from_slice(&ours.job).unwrap();
    assert_eq!((payload.job.as_str(), payload.seq), (id.as_str(), 1));
    // The engine's columns as its own insert sets them.
    assert_eq!(ours.job_type, report_runner::QUEUE);
    assert_eq!(ours.job_type, engines.job_type);
    assert_eq!(
        (&ours.status, ours.attempts),
        (&engines.status, engines.attempts)
    );
    assert_eq!(ours.max_attempts, engines.max_attempts);
    assert_eq!(
        (&ours.metadata, &ours.lock_by),
        (&engines.metadata, &engines.lock_by)
    );
    // Due at the planned moment's second, rounded down; a poll goes before a start.
    assert_eq!(ours.run_at, at.timestamp());
    assert!(
        ours.priority > engines.priority,
        "poll {} > start {}",
        ours.priority,
        engines.priority
    );

    // A finished job saves its outcome alone: no task after the last step.
    let Claim::Claimed { mut record, .. } = store
        .claim(&payload, "w1", Duration::from_secs(60))
        .await
        .unwrap()
    else {
        panic!("step 1 is ours")
    };
    record.state = JobState::Failed;
    record.error = Some("given up".into());
    record.finished_at = Some(Utc::now());
    store.advance(&mut record, "w1", None).await.unwrap();
    assert!(tasks(format!("{id}/2")).await.is_empty());
    let stored = store.get(&id).await.unwrap().unwrap();
    assert_eq!((stored.seq, stored.state), (2, JobState::Failed));
}
