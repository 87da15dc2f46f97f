//! The worker: takes job steps from the engine's queue and carries them out.

use std::collections::{HashMap, HashSet};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use apalis::prelude::{BackendExt, BoxDynError, Data, WorkerBuilder, WorkerBuilderExt};
use apalis_sqlite::SqliteStorage;
use chrono::Utc;
use report_core::{DurationPrior, Error as CoreError, Step, WaitPolicy};

use crate::limits::Access;
use crate::record::{JobRecord, JobState};
use crate::registry::{Registry, Vendor};
use crate::retention::{TaskRetention, prune_until_stopped};
use crate::store::{Claim, Db, Priority, QUEUE, StepTask, Store};
use crate::work_slots::WorkSlots;
use crate::{Error, Result};

/// How a worker runs.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Steps carried out at once.
    pub concurrency: usize,
    /// How long a step is held by this worker without renewal; a crashed worker's steps are
    /// taken over after this.
    pub lease: Duration,
    /// How often the engine looks for due tasks.
    pub fetch_interval: Duration,
    /// The engine's heartbeat; a worker silent for two of them is presumed dead and its
    /// tasks are handed to others.
    pub heartbeat: Duration,
    /// The wait policy of every job.
    pub policy: WaitPolicy,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            concurrency: 8,
            lease: Duration::from_secs(60),
            fetch_interval: Duration::from_millis(500),
            heartbeat: Duration::from_secs(10),
            policy: WaitPolicy::default(),
        }
    }
}

/// How long a stopped worker waits for the engine to wind down once its steps are over.
const ENGINE_SHUTDOWN: Duration = Duration::from_secs(2);
/// The pause before the job engine is restarted after an error, doubling up to the maximum.
const ENGINE_RESTART_FIRST: Duration = Duration::from_millis(500);
const ENGINE_RESTART_MAX: Duration = Duration::from_secs(30);

/// How long a stopping worker lets the steps under way finish before abandoning them.
pub const DEFAULT_STOP_GRACE: Duration = Duration::from_secs(10);

/// A worker process's share of the queue.
#[derive(Debug)]
pub struct Worker {
    store: Store,
    registry: Registry,
    options: WorkerOptions,
    name: String,
    webhook_base: Option<url::Url>,
    grace: Duration,
    retention: Option<TaskRetention>,
}

/// What the handler needs, shared by the engine's concurrent calls.
#[derive(Debug)]
struct Shared {
    store: Store,
    registry: Registry,
    options: WorkerOptions,
    name: String,
    /// Where jobs' webhook URLs begin (`None`: jobs get none).
    webhook_base: Option<url::Url>,
    /// Learning reads a summary and writes it back: one at a time in this process, so jobs
    /// finishing together each count (two processes may still lose a sample, harmlessly).
    learning: tokio::sync::Mutex<()>,
    /// Becomes true when the worker is told to stop.
    stopping: tokio::sync::watch::Receiver<bool>,
    grace: Duration,
    /// Steps under way (each on a task of its own).
    in_flight: tokio::sync::watch::Sender<usize>,
    /// What past reports took, by vendor and kind, as last read or learned here: a step reads
    /// the database at most every [`PRIOR_CACHED_FOR`] (a hint, so another worker's latest
    /// sample may reach this one a little later).
    priors: std::sync::Mutex<HashMap<PriorKey, (std::time::Instant, Option<DurationPrior>)>>,
    /// The steps under way, `options.concurrency` at most.
    slots: WorkSlots,
    /// The steps (job, step number) this worker has taken: a lease is held by the worker, so a
    /// second task of a step it holds (a released or deferred copy beside the engine's own)
    /// would pass the claim; it is dropped here instead, the first one carries the step.
    taken: TakenSteps,
}

/// Steps by job and step number.
type TakenSteps = std::sync::Mutex<HashSet<(String, i64)>>;

/// A step marked taken in [`Shared::taken`] until dropped.
struct Taken<'a> {
    taken: &'a TakenSteps,
    step: (String, i64),
}

impl<'a> Taken<'a> {
    /// Marks `task`'s step taken; `None` if it already is.
    fn mark(taken: &'a TakenSteps, task: &StepTask) -> Option<Self> {
        let step = (task.job.clone(), task.seq);
        let fresh = taken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(step.clone());
        fresh.then_some(Taken { taken, step })
    }
}

impl Drop for Taken<'_> {
    fn drop(&mut self) {
        self.taken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(&self.step);
    }
}

/// The engine hands a worker up to this many tasks per step it runs at once: a task fetched
/// before its moment waits for it (up to [`EARLY`]) without taking a step's slot.
const TASKS_PER_SLOT: usize = 8;

/// The engine schedules in whole seconds: a task is due at its planned moment rounded down
/// (never later), and its step waits for the moment itself. A step's planned moment further
/// away than this was moved earlier on purpose (a webhook call): it does not wait.
pub(crate) const EARLY: Duration = Duration::from_secs(1);

/// A prior's vendor and kind of report.
type PriorKey = (String, String);

/// How long a worker uses a prior it read before it reads it again.
const PRIOR_CACHED_FOR: Duration = Duration::from_secs(30);

/// Counts a step as under way until dropped.
struct InFlight(tokio::sync::watch::Sender<usize>);

impl Drop for InFlight {
    fn drop(&mut self) {
        self.0.send_modify(|n| *n -= 1);
    }
}

impl Worker {
    /// A worker on `store` running the vendors of `registry`.
    pub fn new(store: Store, mut registry: Registry, options: WorkerOptions) -> Self {
        // Limits hold across every worker on the database, not per process.
        registry.share_limits(store.clone());
        Worker {
            store,
            registry,
            options,
            name: format!("reports-worker-{}", uuid::Uuid::new_v4()),
            webhook_base: None,
            grace: DEFAULT_STOP_GRACE,
            retention: Some(TaskRetention::default()),
        }
    }

    /// Gives each job this worker starts at a vendor that takes webhooks
    /// ([`Registry::register_with_webhook`]) its own URL, `<base>/<token>`: a call to it
    /// makes the job poll at once (served by [`serve_webhooks`](crate::serve_webhooks), in
    /// this process or another on the same database).
    pub fn with_webhook_url_base(mut self, base: url::Url) -> Self {
        self.webhook_base = Some(base);
        self
    }

    /// How long steps under way may go on once the worker is told to stop (default
    /// [`DEFAULT_STOP_GRACE`]); then they are abandoned: the request or download is dropped
    /// (a download's temporary file with it), the lease given up and the step queued again.
    pub fn stop_grace(mut self, grace: Duration) -> Self {
        self.grace = grace;
        self
    }

    /// How long the engine's finished tasks are kept, and how often this worker deletes
    /// older ones (default [`TaskRetention::default`]: a week, hourly); `None`: never.
    pub fn task_retention(mut self, retention: Option<TaskRetention>) -> Self {
        self.retention = retention;
        self
    }

    /// This worker's name in the engine and in leases.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Runs until `stop` completes; the steps under way are finished within the stop grace,
    /// or abandoned safely (queued again for the next worker, nothing half-written kept).
    pub async fn run_until(self, stop: impl Future<Output = ()> + Send + 'static) -> Result<()> {
        let heartbeat = self.options.heartbeat;
        let fetch = self.options.fetch_interval;
        let concurrency = self.options.concurrency.max(1);
        let db = self.store.db.clone();
        let store = self.store.clone();
        let name = self.name.clone();
        let (stopping_tx, stopping) = tokio::sync::watch::channel(false);
        let mut stopped = stopping.clone();
        let (in_flight, _) = tokio::sync::watch::channel(0usize);
        let mut steps_over = in_flight.subscribe();
        let mut last_step_over = in_flight.subscribe();
        let (prune_stop_tx, prune_stop) = tokio::sync::watch::channel(false);
        let prune = {
            let (store, retention) = (self.store.clone(), self.retention);
            async move {
                if let Some(retention) = retention {
                    prune_until_stopped(store, retention, prune_stop).await;
                }
            }
        };
        let shared = Arc::new(Shared {
            store: self.store,
            registry: self.registry,
            options: self.options,
            name: self.name,
            webhook_base: self.webhook_base,
            learning: tokio::sync::Mutex::new(()),
            stopping,
            grace: self.grace,
            in_flight,
            priors: Default::default(),
            slots: WorkSlots::new(concurrency),
            taken: Default::default(),
        });
        let grace = self.grace;
        let (engine_stop_tx, engine_stop) = tokio::sync::watch::channel(false);
        let stop = async move {
            stop.await;
            tracing::info!(
                grace_secs = grace.as_secs_f64(),
                "stopping: steps under way may finish within the grace"
            );
            let _ = stopping_tx.send(true);
            // The engine is stopped once our steps are over (within the grace): its shutdown
            // can hold the database's write lock, which their last writes would wait behind.
            let _ = last_step_over.wait_for(|n| *n == 0).await;
            let _ = engine_stop_tx.send(true);
            // Held until the worker is over: its senders must live as long (a step reads a
            // dropped `stopping` as the worker gone, as when its future is dropped in a crash).
            std::future::pending::<std::convert::Infallible>().await
        };
        // Each run of the engine stops when told (it is restarted after an error, below).
        let engine_stops = || {
            let mut told = engine_stop.clone();
            async move {
                let _ = told.wait_for(|stop| *stop).await;
                Ok::<(), std::io::Error>(())
            }
        };
        // The same worker on either database's engine storage, run again after an error: the
        // runs borrow what they share.
        let (db, shared, engine_stops) = (&db, &shared, &engine_stops);
        macro_rules! run {
            ($engine_name:expr, $backend:expr) => {
                WorkerBuilder::new($engine_name)
                    .backend($backend)
                    .concurrency(concurrency * TASKS_PER_SLOT)
                    .data(shared.clone())
                    .build(handle)
                    .run_until(engine_stops())
                    .await
            };
        }
        // The engine's name for this run: the worker's, then a new one per restart (the engine
        // refuses a name seen alive within its heartbeat).
        let mut engine_name = name.clone();
        // The engine's tasks stay `Queued` while their steps run (`lock_tasks(false)`): marking
        // them `Running` cost an UPDATE per batch and nothing reads it. The engine re-queues a
        // dead worker's tasks in either state, and a step's lease says who runs it.
        let run_once = |engine_name: String| async move {
            match db {
                Db::Sqlite(pool) => {
                    let config = apalis_sqlite::Config::default()
                        .queue(QUEUE)
                        .heartbeat_interval(heartbeat)
                        .lock_tasks(false);
                    run!(
                        engine_name.as_str(),
                        SqliteStorage::<StepTask>::new(pool)
                            .with_config(config)
                            .poll_with_interval(fetch)
                    )
                }
                #[cfg(feature = "postgres")]
                Db::Postgres(pool) => {
                    let engine_pool =
                        crate::postgres_setup::engine_pool(pool)
                            .await
                            .map_err(|e| {
                                apalis::prelude::WorkerError::from(std::io::Error::other(e))
                            })?;
                    let config = apalis_postgres::Config::default()
                        .queue(QUEUE)
                        .heartbeat_interval(heartbeat)
                        .lock_tasks(false);
                    let run = run!(
                        engine_name.as_str(),
                        apalis_postgres::PostgresStorage::<StepTask>::new(&engine_pool)
                            .with_config(config)
                            .poll_with_interval(fetch)
                    );
                    // Its sessions end with the run (their transactions rolled back).
                    let _ = tokio::time::timeout(ENGINE_SHUTDOWN, engine_pool.close()).await;
                    run
                }
            }
        };
        // A transient database error (SQLite's "database is locked" when two workers fetch at
        // once, a PostgreSQL failover) ends a run of the engine; the worker goes on with a new
        // run after a pause, its steps under way untouched (their leases keep them theirs).
        let engine = async {
            let engine_name = &mut engine_name;
            let mut pause = ENGINE_RESTART_FIRST;
            for restart in 1u32.. {
                let result = run_once(engine_name.clone()).await;
                match result {
                    Err(e) if !*engine_stop.borrow() => {
                        tracing::warn!(error = %e, pause_secs = pause.as_secs_f64(), "the job engine stopped on an error; restarting it");
                        // After the pause: the error that stopped the engine (a database
                        // restarting) would likely refuse this too, and the tasks would then
                        // wait for the engine's heartbeat timeout.
                        tokio::time::sleep(pause).await;
                        if let Err(e) = store.unlock_engine_tasks(engine_name).await {
                            tracing::warn!(error = %e, "tasks taken but not run wait for the engine's heartbeat timeout");
                        }
                        pause = (pause * 2).min(ENGINE_RESTART_MAX);
                        *engine_name = format!("{name}-{restart}");
                    }
                    result => return result,
                }
            }
            unreachable!("restarts are counted by a u32")
        };
        // Once stopping, the steps end within the grace (each runs on a task of its own);
        // the engine then gets a moment to record their outcomes, no more: an outcome it
        // misses is a step delivered again, as after a crash.
        let shutdown = async move {
            if stopped.wait_for(|stop| *stop).await.is_err() {
                // Never told to stop: the engine alone decides.
                std::future::pending::<()>().await;
            }
            let _ = steps_over.wait_for(|n| *n == 0).await;
            tokio::time::sleep(ENGINE_SHUTDOWN).await;
        };
        let work = async move {
            let result = tokio::select! {
                result = engine => result,
                never = stop => match never {},
                () = shutdown => {
                    tracing::warn!("the job engine did not stop in time; stopping without it");
                    Ok(())
                }
            };
            let _ = prune_stop_tx.send(true);
            result
        };
        // Pruning runs beside the engine and ends with it, its last delete over.
        let (result, ()) = tokio::join!(work, prune);
        // No step of ours runs now: what the engine had taken for us goes back to the queue.
        match store.unlock_engine_tasks(&engine_name).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(tasks = n, "tasks taken but not run handed back"),
            Err(e) => {
                tracing::warn!(error = %e, "tasks taken but not run wait for the engine's heartbeat timeout")
            }
        }
        result.map_err(|e| Error::Engine(e.to_string()))
    }
}

async fn handle(task: StepTask, shared: Data<Arc<Shared>>) -> Result<(), BoxDynError> {
    if *shared.stopping.borrow() {
        // Fetched as the worker stops: not begun, queued again a little later (for another
        // worker; this one defers it again while its grace lasts).
        return shared.store.defer(&task, ENGINE_SHUTDOWN).await.map_err(|e| {
            tracing::warn!(job = %task.job, error = %e, "step not deferred; the engine retries it");
            Box::new(e) as BoxDynError
        });
    }
    // On a task of its own: the step goes on to its end (or its abandonment at the stop
    // grace) whether or not the engine keeps polling this handler as it stops.
    shared.in_flight.send_modify(|n| *n += 1);
    let counted = InFlight(shared.in_flight.clone());
    let step = {
        let (shared, task) = (Arc::clone(&shared), task.clone());
        tokio::spawn(async move {
            let _counted = counted;
            shared.run_step(&task).await
        })
    };
    let result = step
        .await
        .unwrap_or_else(|e| Err(Error::Engine(format!("step task: {e}"))));
    result.map_err(|e| {
        if matches!(e, Error::Stopped(_)) {
            tracing::info!(job = %task.job, "step abandoned as the worker stops; queued again");
        } else {
            tracing::warn!(job = %task.job, error = %e, "step not recorded; the engine retries it");
        }
        Box::new(e) as BoxDynError
    })
}

impl Shared {
    async fn run_step(&self, task: &StepTask) -> Result<()> {
        let Some(_taken) = Taken::mark(&self.taken, task) else {
            tracing::debug!(job = %task.job, seq = task.seq, "a second task of a step under way here: dropped");
            return Ok(());
        };
        let (record, taken_over, mut lease_runs_until) = loop {
            let asked = Instant::now();
            match self
                .store
                .claim(task, &self.name, self.options.lease)
                .await?
            {
                Claim::Claimed { record, taken_over } => {
                    break (record, taken_over, asked + self.options.lease);
                }
                Claim::Stale(Some(record)) if record.seq > task.seq => {
                    // A repeated task of a step already taken: make sure the current step's
                    // task exists (it does unless a crash came between the two).
                    return self.store.requeue(&record).await;
                }
                Claim::Stale(_) => return Ok(()),
                Claim::Busy(until) => {
                    // Another worker holds the step; if it died, its lease runs out.
                    let wait = (until - Utc::now()).to_std().unwrap_or_default();
                    let wait = wait.min(self.options.lease) + Duration::from_millis(50);
                    tokio::select! {
                        _ = tokio::time::sleep(wait) => {}
                        // Not ours: the engine delivers this task again.
                        _ = self.abandoned() => return Err(Error::Stopped(task.job.clone())),
                    }
                }
            }
        };
        let claimed_at = Instant::now();
        // Taken before its moment (see `EARLY`): wait for it, then for a slot.
        let early = record
            .next_poll_at
            .and_then(|planned| (planned - Utc::now()).to_std().ok())
            .filter(|early| *early <= EARLY)
            .unwrap_or_default();
        let slot = tokio::select! {
            slot = async {
                tokio::time::sleep(early).await;
                self.slots.take(Priority::of(&record) != Priority::Start).await
            } => slot,
            // Not begun: handed back at once, for the next worker.
            () = self.told_to_stop() => {
                tracing::info!(job = %record.id, "step not begun as the worker stops; queued again");
                return self.store.release(&record, &self.name).await;
            }
        };
        if claimed_at.elapsed() > self.options.lease / 3 {
            let asked = Instant::now();
            // Nothing of the step has run: a renewal refused means the lease is lost.
            if !self
                .store
                .renew(&record, &self.name, self.options.lease)
                .await?
            {
                return Err(Error::LeaseLost(record.id));
            }
            lease_runs_until = asked + self.options.lease;
        }
        if let Some(planned) = record.next_poll_at {
            let lag = (Utc::now() - planned).num_milliseconds().max(0) as f64 / 1000.0;
            metrics::histogram!("reports_scheduling_lag_seconds", "vendor" => record.vendor.clone())
                .record(lag);
        }
        // Each step's span, for audits (`REPORTS_LOG=report_runner::steps=info`).
        tracing::info!(target: "report_runner::steps", job = %record.id, seq = record.seq, worker = %self.name, "step begins");
        let result = self.leased_step(record, taken_over, lease_runs_until).await;
        drop(slot);
        tracing::info!(target: "report_runner::steps", job = %task.job, seq = task.seq, worker = %self.name, "step ends");
        result
    }

    /// Completes once the worker was told to stop and the grace has run out.
    async fn abandoned(&self) {
        self.told_to_stop().await;
        tokio::time::sleep(self.grace).await;
    }

    /// Completes once the worker was told to stop.
    async fn told_to_stop(&self) {
        let mut stopping = self.stopping.clone();
        // An error: the sender is gone, the worker stopping with it.
        let _ = stopping.wait_for(|stop| *stop).await;
    }

    /// Takes the step (`taken_over` from a worker that did not give it back), renewing the
    /// lease (held until `lease_runs_until`) while it runs; a step outliving its lease, or the
    /// stop grace, is abandoned.
    async fn leased_step(
        &self,
        record: JobRecord,
        taken_over: bool,
        mut lease_runs_until: Instant,
    ) -> Result<()> {
        let renew_every = self.options.lease / 3;
        let mut step = Box::pin(self.take_step(record.clone(), taken_over));
        let abandoned = self.abandoned();
        futures::pin_mut!(abandoned);
        let mut renewing = true;
        loop {
            tokio::select! {
                result = &mut step => return result,
                _ = &mut abandoned => break,
                _ = tokio::time::sleep(renew_every), if renewing => {
                    let asked = Instant::now();
                    let renewed = self.store.renew(&record, &self.name, self.options.lease).await;
                    match lease_after_renewal(&record.id, renewed, lease_runs_until, Instant::now()) {
                        LeaseAfterRenewal::Renewed => {
                            lease_runs_until = asked + self.options.lease;
                        }
                        LeaseAfterRenewal::StepSaved => renewing = false,
                        LeaseAfterRenewal::StillRuns(e) => {
                            tracing::warn!(job = %record.id, error = %e, "lease not renewed; the step goes on while its lease runs");
                        }
                        LeaseAfterRenewal::Lost(e) => {
                            tracing::warn!(job = %record.id, error = %e, "lease lost; the step is cut");
                            return Err(e);
                        }
                    }
                }
            }
        }
        // Cut the request or download first (a download's temporary file goes with it):
        // only then is the step free for another worker.
        drop(step);
        self.store.release(&record, &self.name).await?;
        Err(Error::Stopped(record.id))
    }

    async fn take_step(&self, mut record: JobRecord, taken_over: bool) -> Result<()> {
        let Some(vendor) = self.registry.vendor(&record.vendor) else {
            let error = format!("this worker has no vendor `{}`", record.vendor);
            return self.fail(&mut record, error).await;
        };
        if record.cancel_requested {
            return self.cancel(&mut record, vendor.as_ref()).await;
        }
        let policy = &self.learned_policy(&record).await;
        match (&record.ticket, record.start_intent_at) {
            (None, None) => self.start(&mut record, vendor.as_ref(), policy).await,
            (None, Some(since)) => {
                self.reconcile(&mut record, vendor.as_ref(), since, policy)
                    .await
            }
            (Some(_), _) if record.state == JobState::Downloading => {
                self.download(&mut record, vendor.as_ref(), taken_over)
                    .await
            }
            (Some(ticket), _) => {
                let ticket = ticket.clone();
                // No wait state: a job retried from its ticket waits anew.
                let mut wait = record.wait.take().unwrap_or_else(|| fresh_wait(policy));
                let pending_since = wait.scheduler.last_pending_at();
                let _pass = self
                    .registry
                    .enter(&record.vendor, &record.connection, Access::Read)
                    .await;
                let stepped = vendor
                    .step(&record.connection, &ticket, &mut wait, policy)
                    .await;
                let stepped = match stepped {
                    Ok(s) => s,
                    Err(e) => return self.fail(&mut record, e.to_string()).await,
                };
                record.polls += stepped.polls;
                record.retries += stepped.retries;
                let vendor_label = record.vendor.clone();
                metrics::counter!("reports_polls_total", "vendor" => vendor_label.clone())
                    .increment(u64::from(stepped.polls));
                metrics::counter!("reports_retries_total", "vendor" => vendor_label)
                    .increment(u64::from(stepped.retries));
                record.wait = Some(wait);
                match stepped.outcome {
                    Ok(Step::Pending {
                        progress,
                        next_poll_at,
                    }) => {
                        record.progress = progress.fraction;
                        if record.first_eta_at.is_none() {
                            record.first_eta_at = progress.eta;
                        }
                        record.message = Some(progress.message.unwrap_or(progress.vendor_state));
                        record.next_poll_at = Some(next_poll_at);
                        self.store
                            .advance(&mut record, &self.name, Some(next_poll_at))
                            .await
                    }
                    Ok(Step::Retrying {
                        error,
                        next_poll_at,
                    }) => {
                        record.message = Some(format!("retrying: {error}"));
                        record.next_poll_at = Some(next_poll_at);
                        self.store
                            .advance(&mut record, &self.name, Some(next_poll_at))
                            .await
                    }
                    Ok(Step::Ready(artifact)) => {
                        // The report became ready between the last pending status and now:
                        // this is the most its detection can have lagged.
                        if let Some(seen) = pending_since {
                            let lag = (Utc::now() - seen).num_milliseconds().max(0) as f64 / 1000.0;
                            metrics::histogram!("reports_detection_lag_seconds", "vendor" => record.vendor.clone())
                                .record(lag);
                        }
                        record.state = JobState::Downloading;
                        record.progress = Some(1.0);
                        record.message = Some("ready".into());
                        record.artifact = Some(artifact);
                        record.next_poll_at = None;
                        // Learnt within the step (before the next one can begin elsewhere); a
                        // step repeated after a crash may count its report twice: a hint only.
                        self.learn(&record, pending_since).await;
                        self.store.advance(&mut record, &self.name, None).await
                    }
                    Ok(Step::Failed { code, message }) => {
                        let code = code.map(|c| format!(" ({c})")).unwrap_or_default();
                        self.fail(
                            &mut record,
                            format!("the vendor failed the report{code}: {message}"),
                        )
                        .await
                    }
                    Ok(Step::Cancelled) => {
                        record.state = JobState::Cancelled;
                        record.finished_at = Some(Utc::now());
                        record.message = Some("cancelled at the vendor".into());
                        self.store.advance(&mut record, &self.name, None).await
                    }
                    Ok(other) => {
                        self.fail(&mut record, format!("unexpected step {other:?}"))
                            .await
                    }
                    Err(e) => self.fail(&mut record, e.to_string()).await,
                }
            }
        }
    }

    /// Records the intent, starts the report once, records the ticket.
    async fn start(
        &self,
        record: &mut JobRecord,
        vendor: &dyn Vendor,
        policy: &WaitPolicy,
    ) -> Result<()> {
        // The connection's start slot first, the intent after: a step that loses its lease
        // while it waits for the slot leaves no intent behind, so the next worker simply
        // starts the report instead of finding a start of unknown outcome.
        let pass = self
            .registry
            .enter(&record.vendor, &record.connection, Access::Write)
            .await;
        let now = Utc::now();
        record.start_intent_at = Some(now);
        record.started_at = Some(now);
        record.state = JobState::Running;
        record.message = Some("starting".into());
        let exclusive = self.registry.is_one_job_per_connection(&record.vendor);
        if !self
            .store
            .save_intent(record, &self.name, exclusive)
            .await?
        {
            // The connection runs another job: look again shortly, unchanged.
            let mut waiting = self
                .store
                .get(&record.id)
                .await?
                .ok_or_else(|| Error::NotFound(record.id.clone()))?;
            waiting.message = Some("waiting for the connection's running job".into());
            let again = Utc::now() + chrono::Duration::seconds(1);
            waiting.next_poll_at = Some(again);
            return self
                .store
                .advance(&mut waiting, &self.name, Some(again))
                .await;
        }
        // Started when the connection became ours: saving the intent may have waited for the
        // database's write lock behind the previous job's last write (saved with the ticket).
        record.started_at = Some(Utc::now());
        self.send_start(record, vendor, policy, pass).await
    }

    /// Sends the start request, holding the connection's start slot `_pass`.
    async fn send_start(
        &self,
        record: &mut JobRecord,
        vendor: &dyn Vendor,
        policy: &WaitPolicy,
        _pass: crate::limits::Pass,
    ) -> Result<()> {
        // A new token for each start request, its digest saved before the request is sent: a
        // call cannot come before the job knows its token.
        let webhook = match &self.webhook_base {
            Some(base) if vendor.takes_webhook() => {
                let token = crate::webhook::new_token();
                self.store
                    .set_webhook(&record.id, record.seq, &self.name, &token)
                    .await?;
                Some(crate::webhook::webhook_url(base, &token))
            }
            _ => None,
        };
        let started = vendor
            .start(
                &record.connection,
                &record.request,
                policy,
                webhook.as_deref(),
            )
            .await;
        match started {
            Ok((ticket, wait)) => {
                metrics::counter!("reports_starts_total", "vendor" => record.vendor.clone())
                    .increment(1);
                self.started(record, ticket, wait).await
            }
            // The vendor may have started it: the next step reconciles (the intent stays).
            Err(e) if e.is_transient() && e.request_maybe_sent() => {
                tracing::warn!(job = %record.id, error = %e, "the start's answer was lost");
                record.message = Some(format!("start answer lost ({e}); looking for the report"));
                let again = Utc::now();
                record.next_poll_at = Some(again);
                self.store.advance(record, &self.name, Some(again)).await
            }
            Err(e) => self.fail(record, format!("start failed: {e}")).await,
        }
    }

    async fn started(
        &self,
        record: &mut JobRecord,
        ticket: report_core::Ticket,
        wait: report_core::WaitState,
    ) -> Result<()> {
        record.ticket = Some(ticket);
        record.next_poll_at = wait.next_poll_at;
        record.message = Some("started".into());
        let next = wait.next_poll_at;
        record.wait = Some(wait);
        self.store.advance(record, &self.name, next).await
    }

    /// A start whose answer was lost: find the report at the vendor, or give up clearly.
    async fn reconcile(
        &self,
        record: &mut JobRecord,
        vendor: &dyn Vendor,
        since: chrono::DateTime<Utc>,
        policy: &WaitPolicy,
    ) -> Result<()> {
        let _pass = self
            .registry
            .enter(&record.vendor, &record.connection, Access::Read)
            .await;
        let found = vendor
            .find_started(&record.connection, &record.request, since, policy)
            .await;
        match found {
            Ok(Some((ticket, wait))) => {
                tracing::info!(job = %record.id, "a start whose answer was lost was found at the vendor");
                self.started(record, ticket, wait).await
            }
            Ok(None) => {
                tracing::info!(job = %record.id, "a start whose answer was lost never reached the vendor; starting");
                let pass = self
                    .registry
                    .enter(&record.vendor, &record.connection, Access::Write)
                    .await;
                self.send_start(record, vendor, policy, pass).await
            }
            // The vendor could not be asked just now (a 502, a timeout): ask again later, the
            // intent kept, within the policy's budget of transient errors.
            Err(e) if e.is_transient() && record.retries < policy.transient_error_budget => {
                tracing::warn!(job = %record.id, error = %e, "a start whose answer was lost could not be looked for; asking again");
                let delay = transient_delay(policy, record.retries, e.retry_after());
                record.retries += 1;
                record.message = Some(format!(
                    "looking for a start whose answer was lost: {e}; asking again"
                ));
                let again = Utc::now() + chrono::Duration::from_std(delay).unwrap_or_default();
                record.next_poll_at = Some(again);
                self.store.advance(record, &self.name, Some(again)).await
            }
            Err(e) => {
                self.fail(
                    record,
                    format!("start outcome unknown: the worker stopped during the start request and the vendor cannot be asked ({e}); not started again"),
                )
                .await
            }
        }
    }

    /// Downloads the report; `taken_over`: the step was another worker's, which may have been
    /// killed mid-download.
    async fn download(
        &self,
        record: &mut JobRecord,
        vendor: &dyn Vendor,
        taken_over: bool,
    ) -> Result<()> {
        let (Some(ticket), Some(artifact)) = (record.ticket.clone(), record.artifact.clone())
        else {
            return self
                .fail(record, "downloading without an artifact".into())
                .await;
        };
        let out = Path::new(&record.out).to_path_buf();
        // A worker killed mid-download left its temporary file; this job's step is ours now.
        // Looked for only then: an output folder may hold thousands of reports, and reading
        // it at every download made each one slower than the last.
        if taken_over {
            let out = out.clone();
            let removed = tokio::task::spawn_blocking(move || {
                let leftovers = report_core::leftover_temporary_files(&out);
                for leftover in &leftovers {
                    let _ = std::fs::remove_file(leftover);
                }
                leftovers
            })
            .await
            .unwrap_or_default();
            for leftover in removed {
                tracing::info!(job = %record.id, file = %leftover.display(), "removed a killed download's temporary file");
            }
        }
        let _pass = self
            .registry
            .enter(&record.vendor, &record.connection, Access::Read)
            .await;
        let downloaded = vendor
            .download(
                &record.connection,
                &ticket,
                &artifact,
                &out,
                &self.options.policy,
            )
            .await;
        match downloaded {
            Ok(summary) => {
                metrics::counter!("reports_bytes_downloaded_total", "vendor" => record.vendor.clone())
                    .increment(summary.bytes);
                record.state = JobState::Done;
                record.bytes = Some(summary.bytes);
                record.sha256 = Some(summary.sha256);
                record.finished_at = Some(Utc::now());
                record.message = Some("done".into());
                self.store.advance(record, &self.name, None).await
            }
            Err(e) => self.fail(record, format!("download failed: {e}")).await,
        }
    }

    async fn cancel(&self, record: &mut JobRecord, vendor: &dyn Vendor) -> Result<()> {
        if let Some(ticket) = &record.ticket {
            let _pass = self
                .registry
                .enter(&record.vendor, &record.connection, Access::Write)
                .await;
            match vendor.cancel(&record.connection, ticket).await {
                Ok(()) => record.message = Some("cancelled at the vendor".into()),
                Err(CoreError::Unsupported { .. }) => {
                    record.message = Some(
                        "cancelled (the vendor cannot cancel; its report was left to finish)"
                            .into(),
                    )
                }
                Err(e) => record.message = Some(format!("cancelled here; the vendor said: {e}")),
            }
        }
        record.state = JobState::Cancelled;
        record.finished_at = Some(Utc::now());
        self.store.advance(record, &self.name, None).await
    }

    /// The worker's policy with what past reports of this job's vendor and kind took: a prior
    /// lets the wait skip polls while the report cannot plausibly be ready. Read at each step
    /// (from the database at most every [`PRIOR_CACHED_FOR`]), so a wait resumed by another
    /// worker schedules the same way.
    async fn learned_policy(&self, record: &JobRecord) -> WaitPolicy {
        let kind = self.registry.kind_of(&record.vendor, &record.request);
        let key = (record.vendor.clone(), kind);
        let cached = self
            .priors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&key)
            .filter(|(read, _)| read.elapsed() < PRIOR_CACHED_FOR)
            .map(|(_, prior)| prior.clone());
        let prior = match cached {
            Some(prior) => prior,
            // Only a hint: without it the job polls as if nothing were known.
            None => match self.store.prior(&key.0, &key.1).await {
                Ok(prior) => {
                    self.remember_prior(key, prior.clone());
                    prior
                }
                Err(e) => {
                    tracing::warn!(job = %record.id, error = %e, "learned durations unavailable");
                    None
                }
            },
        };
        self.options.policy.clone().with_prior(prior)
    }

    fn remember_prior(&self, key: PriorKey, prior: Option<DurationPrior>) {
        self.priors
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(key, (std::time::Instant::now(), prior));
    }

    /// Records how long a report that just became ready took from its start, and how that
    /// compares with the first ETA its vendor gave. The poll finding it ready may be up to one
    /// poll interval late: the report is dated midway since the last pending status.
    async fn learn(&self, record: &JobRecord, last_pending: Option<chrono::DateTime<Utc>>) {
        let Some(started) = record.started_at else {
            return;
        };
        let ready = ready_estimate(last_pending, started, Utc::now());
        let Ok(took) = (ready - started).to_std() else {
            return;
        };
        let predicted = record
            .first_eta_at
            .and_then(|eta| (eta - started).to_std().ok());
        let kind = self.registry.kind_of(&record.vendor, &record.request);
        let _one_at_a_time = self.learning.lock().await;
        // A lost sample only makes the prior a little less sure; the job is not affected.
        match self
            .store
            .learn_duration(&record.vendor, &kind, took, predicted)
            .await
        {
            Ok(prior) => self.remember_prior((record.vendor.clone(), kind), Some(prior)),
            Err(e) => tracing::warn!(job = %record.id, error = %e, "duration not learned"),
        }
    }

    async fn fail(&self, record: &mut JobRecord, error: String) -> Result<()> {
        tracing::warn!(job = %record.id, vendor = %record.vendor, %error, "job failed");
        record.state = JobState::Failed;
        record.error = Some(error);
        record.finished_at = Some(Utc::now());
        self.store.advance(record, &self.name, None).await
    }
}

/// The policy's delay before the `attempt`-th retry (from 0) after a transient error, at
/// least `retry_after`.
fn transient_delay(policy: &WaitPolicy, attempt: u32, retry_after: Option<Duration>) -> Duration {
    let mut scheduler = policy.scheduler();
    let mut delay = Duration::ZERO;
    for _ in 0..=attempt.min(32) {
        delay = scheduler.after_error(retry_after);
    }
    delay
}

/// When a report found ready was most likely done: midway between the last status that said
/// pending (or the start) and the poll that found it ready.
fn ready_estimate(
    last_pending: Option<chrono::DateTime<Utc>>,
    started: chrono::DateTime<Utc>,
    found: chrono::DateTime<Utc>,
) -> chrono::DateTime<Utc> {
    // Not `clamp`: clocks of two machines may disagree, and this must not panic.
    let before = last_pending.unwrap_or(started).max(started).min(found);
    before + (found - before) / 2
}

/// The wait state of a job retried from its ticket: a new deadline, a poll at once.
fn fresh_wait(policy: &WaitPolicy) -> report_core::WaitState {
    report_core::WaitState {
        scheduler: policy.scheduler().state(),
        deadline_at: policy
            .deadline
            .and_then(|d| chrono::Duration::from_std(d).ok())
            .map(|d| Utc::now() + d),
        next_poll_at: None,
        failures: 0,
        last_progress: None,
        first_status: None,
    }
}

/// Completes once no job is queued or in progress (checked every `every`): with
/// [`Worker::run_until`], drains the queue and stops (`reports worker --exit-when-idle`).
/// What a renewal of a step's lease tells.
#[derive(Debug)]
enum LeaseAfterRenewal {
    /// Renewed: held for another lease from the moment it was asked.
    Renewed,
    /// Refused while the lease still ran: the job's row moved on, and while a lease runs no
    /// one but its holder can move it (another worker takes a step only once its lease ran
    /// out), so the step's own last write did (its commit was under way as the renewal was
    /// sent). The step is ending; its write says how. No more renewals.
    StepSaved,
    /// Not asked (a database error) while the lease still runs: the step goes on; its next
    /// write finds out whether the lease held.
    StillRuns(Error),
    /// Refused, or not asked, once the lease had run out: another worker may hold the step.
    Lost(Error),
}

fn lease_after_renewal(
    job: &str,
    renewed: Result<bool>,
    lease_runs_until: Instant,
    now: Instant,
) -> LeaseAfterRenewal {
    let runs = now < lease_runs_until;
    match renewed {
        Ok(true) => LeaseAfterRenewal::Renewed,
        Ok(false) if runs => LeaseAfterRenewal::StepSaved,
        Err(e) if runs => LeaseAfterRenewal::StillRuns(e),
        Ok(false) => LeaseAfterRenewal::Lost(Error::LeaseLost(job.to_string())),
        Err(e) => LeaseAfterRenewal::Lost(e),
    }
}

pub async fn idle(store: Store, every: Duration) {
    loop {
        match store.unfinished().await {
            Ok(0) => return,
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "cannot count unfinished jobs"),
        }
        tokio::time::sleep(every).await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_refused_renewal_cuts_the_step_only_once_its_lease_ran_out() {
        let now = Instant::now();
        let (runs, ran_out) = (now + Duration::from_secs(1), now - Duration::from_millis(1));
        let verdict = |renewed, until| lease_after_renewal("j", renewed, until, now);
        let db_error = || Err(Error::Database("connection reset".into()));
        assert!(matches!(
            verdict(Ok(true), runs),
            LeaseAfterRenewal::Renewed
        ));
        assert!(matches!(
            verdict(Ok(true), ran_out),
            LeaseAfterRenewal::Renewed
        ));
        // The step's own commit moved the row on as the renewal was sent.
        assert!(matches!(
            verdict(Ok(false), runs),
            LeaseAfterRenewal::StepSaved
        ));
        assert!(matches!(
            verdict(db_error(), runs),
            LeaseAfterRenewal::StillRuns(_)
        ));
        assert!(matches!(
            verdict(Ok(false), ran_out),
            LeaseAfterRenewal::Lost(Error::LeaseLost(job)) if job == "j"
        ));
        assert!(matches!(
            verdict(db_error(), ran_out),
            LeaseAfterRenewal::Lost(Error::Database(_))
        ));
    }

    #[test]
    fn a_ready_report_is_dated_midway_since_the_last_pending_status() {
        let t = |s: i64| chrono::DateTime::from_timestamp(1_700_000_000 + s, 0).unwrap();
        assert_eq!(ready_estimate(Some(t(60)), t(0), t(120)), t(90));
        // Ready at the first poll: midway since the start.
        assert_eq!(ready_estimate(None, t(0), t(10)), t(5));
        // A pending status dated before the start (another clock) counts from the start.
        assert_eq!(ready_estimate(Some(t(-5)), t(0), t(10)), t(5));
    }
}
