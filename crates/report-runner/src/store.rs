//! The job table and the engine's task queue, in one database: SQLite (embedded, the
//! default) or PostgreSQL (feature `postgres`, for several worker machines).
//!
//! Each job has a step counter (`seq`). A task names the job and the step it is for; a worker
//! takes a step under a lease (so no two workers work on one job at once), and records the
//! outcome together with the task of the next step, atomically (one transaction on SQLite, one
//! statement on PostgreSQL): a crash at any point leaves either the old step (repeated: polls
//! only read, downloads rename at the end) or the new one queued, never neither. Tasks carry
//! an idempotency key (`job/seq`), so a step's task pushed twice is queued once.

use std::str::FromStr;
use std::time::Duration;

use apalis::prelude::{Task, TaskBuilder};
use apalis_sqlite::{SqliteConnectOptions, SqlitePool, SqlitePoolOptions};
use chrono::{DateTime, Utc};
use report_core::DurationPrior;
use serde::{Deserialize, Serialize};

use crate::record::{JobRecord, JobState, NewJob};
use crate::setup_lock::SetupLock;
use crate::sqlite_setup;
use crate::{Error, Result};

/// The engine's queue the runner's tasks go to.
pub const QUEUE: &str = "report-runner";

/// The payload of an engine task: take step `seq` of job `job`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StepTask {
    pub job: String,
    pub seq: i64,
}

/// What [`Store::claim`] found.
#[derive(Debug)]
pub enum Claim {
    /// The step is ours until the lease runs out (renew it while working). `taken_over`: a
    /// worker held this very step before us and did not give it back (it died, or its lease
    /// ran out), so it may have left work half done.
    Claimed { record: JobRecord, taken_over: bool },
    /// Another worker holds the step; its lease runs out at this moment.
    Busy(DateTime<Utc>),
    /// The task is stale: the job moved on, finished or was removed.
    Stale(Option<JobRecord>),
}

/// The job database.
#[derive(Clone, Debug)]
pub struct Store {
    pub(crate) db: Db,
}

/// The database behind a [`Store`].
#[derive(Clone, Debug)]
pub(crate) enum Db {
    Sqlite(SqlitePool),
    #[cfg(feature = "postgres")]
    Postgres(sqlx::PgPool),
}

/// Runs `$body` with `$pool` bound to the store's pool, whichever database it is (the body is
/// compiled once per database, so the same code serves both).
macro_rules! with_db {
    ($db:expr, $pool:ident, $kind:ident => $body:expr) => {
        match $db {
            Db::Sqlite($pool) => {
                #[allow(unused_variables)]
                let $kind = Kind::Sqlite;
                $body
            }
            #[cfg(feature = "postgres")]
            Db::Postgres($pool) => {
                #[allow(unused_variables)]
                let $kind = Kind::Postgres;
                $body
            }
        }
    };
}

pub(crate) use with_db;

#[derive(Clone, Copy, Debug, PartialEq)]
pub(crate) enum Kind {
    Sqlite,
    #[cfg(feature = "postgres")]
    Postgres,
}

impl Kind {
    /// Whether this is PostgreSQL (always `false` in a build without it).
    pub(crate) fn is_postgres(self) -> bool {
        #[cfg(feature = "postgres")]
        return self == Kind::Postgres;
        #[cfg(not(feature = "postgres"))]
        false
    }
}

/// The SQL for `kind`: our queries are written with `?` placeholders; PostgreSQL numbers them.
/// Only ever given our own literal SQL (values are bound), hence safe.
pub(crate) fn sql(kind: Kind, text: &'static str) -> sqlx::AssertSqlSafe<String> {
    sqlx::AssertSqlSafe(numbered(kind, text))
}

fn numbered(kind: Kind, text: &str) -> String {
    match kind {
        Kind::Sqlite => text.to_string(),
        #[cfg(feature = "postgres")]
        Kind::Postgres => {
            let mut out = String::with_capacity(text.len() + 16);
            let mut n = 0;
            for c in text.chars() {
                if c == '?' {
                    n += 1;
                    out.push_str(&format!("${n}"));
                } else {
                    out.push(c);
                }
            }
            out
        }
    }
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS report_jobs (
    id TEXT PRIMARY KEY NOT NULL,
    vendor TEXT NOT NULL,
    connection TEXT NOT NULL,
    request TEXT NOT NULL,
    out TEXT NOT NULL,
    state TEXT NOT NULL,
    seq INTEGER NOT NULL DEFAULT 0,
    progress REAL,
    message TEXT,
    polls INTEGER NOT NULL DEFAULT 0,
    retries INTEGER NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    bytes INTEGER,
    sha256 TEXT,
    error TEXT,
    ticket TEXT,
    wait_state TEXT,
    artifact TEXT,
    start_intent_at TEXT,
    next_poll_at TEXT,
    cancel_requested INTEGER NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until INTEGER,
    unique_key TEXT
);
CREATE INDEX IF NOT EXISTS report_jobs_state ON report_jobs (state);
CREATE UNIQUE INDEX IF NOT EXISTS report_jobs_unique_key ON report_jobs (unique_key);
CREATE TABLE IF NOT EXISTS report_priors (
    vendor TEXT NOT NULL,
    kind TEXT NOT NULL,
    summary TEXT NOT NULL,
    PRIMARY KEY (vendor, kind)
);
CREATE TABLE IF NOT EXISTS report_slots (
    vendor TEXT NOT NULL,
    connection TEXT NOT NULL,
    access TEXT NOT NULL,
    slot INTEGER NOT NULL,
    holder TEXT,
    expires_at INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (vendor, connection, access, slot)
);
CREATE TABLE IF NOT EXISTS report_rate (
    id TEXT PRIMARY KEY NOT NULL,
    vendor TEXT NOT NULL,
    connection TEXT NOT NULL,
    began_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS report_rate_at ON report_rate (vendor, connection, began_at);
";

#[cfg(feature = "postgres")]
pub(crate) const PG_SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS report_jobs (
    id TEXT PRIMARY KEY NOT NULL,
    vendor TEXT NOT NULL,
    connection TEXT NOT NULL,
    request TEXT NOT NULL,
    out TEXT NOT NULL,
    state TEXT NOT NULL,
    seq BIGINT NOT NULL DEFAULT 0,
    progress DOUBLE PRECISION,
    message TEXT,
    polls BIGINT NOT NULL DEFAULT 0,
    retries BIGINT NOT NULL DEFAULT 0,
    created_at TEXT NOT NULL,
    started_at TEXT,
    finished_at TEXT,
    bytes BIGINT,
    sha256 TEXT,
    error TEXT,
    ticket TEXT,
    wait_state TEXT,
    artifact TEXT,
    start_intent_at TEXT,
    next_poll_at TEXT,
    cancel_requested BIGINT NOT NULL DEFAULT 0,
    lease_owner TEXT,
    lease_until BIGINT,
    unique_key TEXT
);
CREATE INDEX IF NOT EXISTS report_jobs_state ON report_jobs (state);
CREATE UNIQUE INDEX IF NOT EXISTS report_jobs_unique_key ON report_jobs (unique_key);
CREATE TABLE IF NOT EXISTS report_priors (
    vendor TEXT NOT NULL,
    kind TEXT NOT NULL,
    summary TEXT NOT NULL,
    PRIMARY KEY (vendor, kind)
);
CREATE TABLE IF NOT EXISTS report_slots (
    vendor TEXT NOT NULL,
    connection TEXT NOT NULL,
    access TEXT NOT NULL,
    slot BIGINT NOT NULL,
    holder TEXT,
    expires_at BIGINT NOT NULL DEFAULT 0,
    PRIMARY KEY (vendor, connection, access, slot)
);
CREATE TABLE IF NOT EXISTS report_rate (
    id TEXT PRIMARY KEY NOT NULL,
    vendor TEXT NOT NULL,
    connection TEXT NOT NULL,
    began_at BIGINT NOT NULL
);
CREATE INDEX IF NOT EXISTS report_rate_at ON report_rate (vendor, connection, began_at);
";

/// Counts the jobs not yet done, failed or cancelled by the states they can be in: the state
/// index then reads those jobs only. `state NOT IN` the finished states read every record,
/// and records are kept for ever (`reports worker --exit-when-idle` asks every half second).
const COUNT_UNFINISHED: &str =
    "SELECT COUNT(*) FROM report_jobs WHERE state IN ('queued', 'running', 'downloading')";

/// The update that saves a record as the outcome of its step: only if `owner` still holds the
/// step (and, with `exclusive`, no other job of its vendor and connection is under way). A
/// macro, so that statements built around it are text known at compile time.
macro_rules! record_update {
    () => {
        "UPDATE report_jobs SET state = ?, progress = ?, message = ?, polls = ?, retries = ?,
             started_at = ?, finished_at = ?, bytes = ?, sha256 = ?, error = ?, ticket = ?,
             wait_state = ?, artifact = ?, start_intent_at = ?, next_poll_at = ?,
             first_eta_at = ?, seq = seq + ?,
             lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END,
             lease_until = CASE WHEN ? THEN NULL ELSE lease_until END
         WHERE id = ? AND seq = ? AND lease_owner = ?
             AND (NOT ? OR NOT EXISTS (
                 SELECT 1 FROM report_jobs other
                 WHERE other.vendor = ? AND other.connection = ? AND other.id != ?
                     AND other.state IN ('running', 'downloading')))"
    };
}

/// Binds [`record_update!`]'s parameters to `$query`, a statement that begins with it (a
/// macro so that one text serves both databases).
macro_rules! bind_record {
    ($query:expr, $r:expr, $owner:expr, $next_step:expr, $exclusive:expr) => {{
        let (r, next_step): (&JobRecord, bool) = ($r, $next_step);
        $query
            .bind(r.state.as_str())
            .bind(r.progress)
            .bind(&r.message)
            .bind(i64::from(r.polls))
            .bind(i64::from(r.retries))
            .bind(r.started_at.map(|t| t.to_rfc3339()))
            .bind(r.finished_at.map(|t| t.to_rfc3339()))
            .bind(r.bytes.map(|b| b as i64))
            .bind(&r.sha256)
            .bind(&r.error)
            .bind(r.ticket.as_ref().map(|t| t.to_json()))
            .bind(
                r.wait
                    .as_ref()
                    .map(|w| serde_json::to_string(w).expect("wait states serialize")),
            )
            .bind(
                r.artifact
                    .as_ref()
                    .map(|a| serde_json::to_string(a).expect("artifacts serialize")),
            )
            .bind(r.start_intent_at.map(|t| t.to_rfc3339()))
            .bind(r.next_poll_at.map(|t| t.to_rfc3339()))
            .bind(r.first_eta_at.map(|t| t.to_rfc3339()))
            .bind(i64::from(next_step))
            .bind(next_step)
            .bind(next_step)
            .bind(&r.id)
            .bind(r.seq)
            .bind($owner)
            .bind($exclusive)
            .bind(&r.vendor)
            .bind(&r.connection)
            .bind(&r.id)
    }};
}

/// Writes the record if `owner` still holds its step (see [`record_update!`]); `false` if
/// not. A macro so that one text serves both databases' connection and transaction types.
macro_rules! write_record {
    ($kind:expr, $tx:expr, $r:expr, $owner:expr, $next_step:expr, $exclusive:expr) => {
        bind_record!(
            sqlx::query(sql($kind, record_update!())),
            $r,
            $owner,
            $next_step,
            $exclusive
        )
        .execute(&mut *$tx)
        .await?
        .rows_affected()
            == 1
    };
}

/// On PostgreSQL, a step's outcome and the engine task of the next step in one statement: one
/// round trip where a transaction takes four (`BEGIN`, the update, the engine's insert,
/// `COMMIT`). The insert is the engine's own (`apalis-postgres`'s `push_tasks`, one task), and
/// happens only if the update did, so the two stay atomic as in a transaction.
#[cfg(feature = "postgres")]
const ADVANCE_AND_QUEUE: &str = concat!(
    "WITH saved AS (",
    record_update!(),
    " RETURNING 1)
     INSERT INTO apalis.jobs (id, job_type, job, status, attempts, max_attempts, run_at,
         priority, metadata, idempotency_key)
     SELECT ?, ?, ?, 'Pending', 0, ?, to_timestamp(?), ?, ?::hstore, ? FROM saved"
);

/// A pool of up to `connections` connections to a SQLite job database.
async fn sqlite_pool(options: SqliteConnectOptions, connections: u32) -> Result<SqlitePool> {
    SqlitePoolOptions::new()
        .max_connections(connections)
        // No ping before each statement: a SQLite connection is a file in this process, it
        // cannot be cut, and the ping was a round trip to its thread for every statement.
        .test_before_acquire(false)
        // Records survive a crash of the process (WAL with NORMAL syncs at checkpoints).
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(conn, "PRAGMA synchronous = NORMAL;").await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(|e| Error::Database(format!("cannot open the database: {e}")))
}

impl Store {
    /// Opens (creating if needed) a job database: `postgres://…` (feature `postgres`), else a
    /// SQLite `sqlite:` URL or file path.
    pub async fn open(url: &str) -> Result<Store> {
        if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            return Self::open_postgres(url).await;
        }
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"));
        let options = match path {
            Some(p) => SqliteConnectOptions::from_str(&format!("sqlite:{p}")),
            None => Ok(SqliteConnectOptions::new().filename(url)),
        }
        .map_err(|e| Error::Database(format!("bad database URL: {e}")))?
        .create_if_missing(true)
        .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal)
        .busy_timeout(Duration::from_secs(30));
        let setup = SetupLock::acquire(options.get_filename()).await?;
        // Set up on a connection of its own, closed before the others open: each connection
        // reads the planner's statistics once, and they must read the ones written here.
        let set_up = sqlite_pool(options.clone(), 1).await?;
        sqlite_setup::set_up_engine(&set_up).await?;
        sqlx::raw_sql(SCHEMA).execute(&set_up).await?;
        let store = Store {
            db: Db::Sqlite(set_up.clone()),
        };
        store.add_columns().await?;
        sqlite_setup::fix_planner_statistics(&set_up).await?;
        set_up.close().await;
        let store = Store {
            db: Db::Sqlite(sqlite_pool(options, 4).await?),
        };
        drop(setup);
        Ok(store)
    }

    #[cfg(feature = "postgres")]
    async fn open_postgres(url: &str) -> Result<Store> {
        use crate::postgres_setup::{APPLICATION_NAME, connect};
        let mut options = url
            .parse::<sqlx::postgres::PgConnectOptions>()
            .map_err(|e| Error::Database(format!("bad database URL: {e}")))?;
        if options.get_application_name().is_none() {
            options = options.application_name(APPLICATION_NAME);
        }
        let pool = connect(options, 8).await?;
        crate::postgres_setup::set_up(&pool, PG_SCHEMA).await?;
        let store = Store {
            db: Db::Postgres(pool),
        };
        store.add_columns().await?;
        Ok(store)
    }

    #[cfg(not(feature = "postgres"))]
    async fn open_postgres(_: &str) -> Result<Store> {
        Err(Error::Database(
            "PostgreSQL needs report-runner's `postgres` feature, which this build lacks".into(),
        ))
    }

    /// Queues a new job: its record and its first task, in one transaction.
    pub async fn submit(&self, new: NewJob) -> Result<JobRecord> {
        let record = self.submit_keyed(new, None).await?;
        Ok(record.expect("a job without a key is always queued"))
    }

    /// Queues a new job unless a job with this key was queued before (`None` then): one
    /// definition and period of a schedule is queued once, whoever fires it.
    pub async fn submit_unique(&self, new: NewJob, key: &str) -> Result<Option<JobRecord>> {
        self.submit_keyed(new, Some(key)).await
    }

    async fn submit_keyed(&self, new: NewJob, key: Option<&str>) -> Result<Option<JobRecord>> {
        let record = JobRecord::queued(uuid::Uuid::new_v4().to_string(), new, Utc::now());
        let inserted = with_db!(&self.db, pool, kind => {
            let mut tx = crate::transaction::begin(pool).await?;
            let inserted = sqlx::query(sql(
                kind,
                "INSERT INTO report_jobs
                     (id, vendor, connection, request, out, state, seq, created_at, unique_key)
                 VALUES (?, ?, ?, ?, ?, ?, 0, ?, ?)
                 ON CONFLICT (unique_key) DO NOTHING",
            ))
            .bind(&record.id)
            .bind(&record.vendor)
            .bind(&record.connection)
            .bind(record.request.to_string())
            .bind(&record.out)
            .bind(record.state.as_str())
            .bind(record.created_at.to_rfc3339())
            .bind(key)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if inserted {
                tx.push_step(&record.id, 0, None, Priority::Start).await?;
            }
            tx.commit().await?;
            inserted
        });
        Ok(inserted.then_some(record))
    }

    /// One job.
    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        let row: Option<RawJob> = with_db!(&self.db, pool, kind => {
            sqlx::query_as(sql(kind, "SELECT * FROM report_jobs WHERE id = ?"))
                .bind(id)
                .fetch_optional(pool)
                .await?
        });
        row.map(RawJob::parse).transpose()
    }

    /// Every job, oldest first.
    pub async fn list(&self) -> Result<Vec<JobRecord>> {
        let rows: Vec<RawJob> = with_db!(&self.db, pool, kind => {
            sqlx::query_as(sql(kind, "SELECT * FROM report_jobs ORDER BY created_at, id"))
                .fetch_all(pool)
                .await?
        });
        rows.into_iter().map(RawJob::parse).collect()
    }

    /// Jobs not yet done, failed or cancelled.
    pub async fn unfinished(&self) -> Result<u64> {
        let n: i64 = with_db!(&self.db, pool, kind => {
            sqlx::query_scalar(sql(kind, COUNT_UNFINISHED))
            .fetch_one(pool)
            .await?
        });
        Ok(n as u64)
    }

    /// How many jobs each vendor has in each state.
    pub async fn counts(&self) -> Result<Vec<(String, String, u64)>> {
        let rows: Vec<(String, String, i64)> = with_db!(&self.db, pool, kind => {
            sqlx::query_as(sql(
                kind,
                "SELECT vendor, state, COUNT(*) FROM report_jobs GROUP BY vendor, state",
            ))
            .fetch_all(pool)
            .await?
        });
        Ok(rows.into_iter().map(|(v, s, n)| (v, s, n as u64)).collect())
    }

    /// Asks for a job to be cancelled. A job no worker has started is cancelled at once;
    /// otherwise the worker taking its next step cancels it at the vendor.
    pub async fn request_cancel(&self, id: &str) -> Result<JobRecord> {
        let now = Utc::now();
        with_db!(&self.db, pool, kind => {
            let mut tx = crate::transaction::begin(pool).await?;
            sqlx::query(sql(
                kind,
                "UPDATE report_jobs SET state = 'cancelled', finished_at = ?, seq = seq + 1,
                     cancel_requested = 1
                 WHERE id = ? AND state = 'queued' AND start_intent_at IS NULL
                     AND (lease_owner IS NULL OR lease_until < ?)",
            ))
            .bind(now.to_rfc3339())
            .bind(id)
            .bind(now.timestamp_millis())
            .execute(&mut *tx)
            .await?;
            sqlx::query(sql(
                kind,
                "UPDATE report_jobs SET cancel_requested = 1
                 WHERE id = ? AND state NOT IN ('done', 'failed', 'cancelled')",
            ))
            .bind(id)
            .execute(&mut *tx)
            .await?;
            tx.commit().await?;
        });
        self.get(id)
            .await?
            .ok_or_else(|| Error::NotFound(id.into()))
    }

    /// Queues a failed or cancelled job again. A job that has a ticket goes on from it (the
    /// report is not started again); one without starts afresh.
    pub async fn retry(&self, id: &str) -> Result<JobRecord> {
        let record = self
            .get(id)
            .await?
            .ok_or_else(|| Error::NotFound(id.into()))?;
        if !matches!(record.state, JobState::Failed | JobState::Cancelled) {
            return Err(Error::Conflict(format!(
                "job {id} is {}; only failed or cancelled jobs can be retried",
                record.state
            )));
        }
        let state = if record.ticket.is_some() {
            JobState::Running
        } else {
            JobState::Queued
        };
        with_db!(&self.db, pool, kind => {
            let mut tx = crate::transaction::begin(pool).await?;
            let updated = sqlx::query(sql(
                kind,
                "UPDATE report_jobs SET state = ?, seq = seq + 1, error = NULL, finished_at = NULL,
                     cancel_requested = 0, wait_state = NULL, artifact = NULL,
                     start_intent_at = NULL, next_poll_at = NULL, lease_owner = NULL,
                     lease_until = NULL, retries = retries + 1
                 WHERE id = ? AND seq = ?",
            ))
            .bind(state.as_str())
            .bind(id)
            .bind(record.seq)
            .execute(&mut *tx)
            .await?
            .rows_affected();
            if updated == 0 {
                return Err(Error::Conflict(format!(
                    "job {id} changed meanwhile; try again"
                )));
            }
            let priority = Priority::of_step(state, record.ticket.is_some(), false);
            tx.push_step(id, record.seq + 1, None, priority).await?;
            tx.commit().await?;
        });
        self.get(id)
            .await?
            .ok_or_else(|| Error::NotFound(id.into()))
    }

    /// Takes step `task.seq` of a job for `owner` until `now + ttl`.
    pub async fn claim(&self, task: &StepTask, owner: &str, ttl: Duration) -> Result<Claim> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        // The claimed record comes back with the claim: one round trip for the usual case.
        // (SET reads the columns as they were: a lease still held means a take-over.)
        let claimed: Option<ClaimedRow> = with_db!(&self.db, pool, kind => {
            sqlx::query_as(sql(
                kind,
                "UPDATE report_jobs SET lease_owner = ?, lease_until = ?,
                     step_taken_over = CASE WHEN lease_owner IS NULL THEN 0 ELSE 1 END
                 WHERE id = ? AND seq = ? AND state NOT IN ('done', 'failed', 'cancelled')
                     AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)
                 RETURNING *",
            ))
            .bind(owner)
            .bind(until.timestamp_millis())
            .bind(&task.job)
            .bind(task.seq)
            .bind(owner)
            .bind(now.timestamp_millis())
            .fetch_optional(pool)
            .await?
        });
        if let Some(claimed) = claimed {
            return Ok(Claim::Claimed {
                taken_over: claimed.step_taken_over == Some(1),
                record: claimed.job.parse()?,
            });
        }
        match self.get(&task.job).await? {
            Some(r) if r.seq == task.seq && !r.state.is_terminal() => {
                let until: Option<i64> = with_db!(&self.db, pool, kind => {
                    sqlx::query_scalar(sql(kind, "SELECT lease_until FROM report_jobs WHERE id = ?"))
                        .bind(&task.job)
                        .fetch_one(pool)
                        .await?
                });
                let until = until
                    .and_then(DateTime::from_timestamp_millis)
                    .unwrap_or(now);
                Ok(Claim::Busy(until))
            }
            other => Ok(Claim::Stale(other)),
        }
    }

    /// Extends `owner`'s lease on the job's current step; `false` if it was lost.
    pub async fn renew(&self, record: &JobRecord, owner: &str, ttl: Duration) -> Result<bool> {
        let until = Utc::now() + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let n = with_db!(&self.db, pool, kind => {
            sqlx::query(sql(
                kind,
                "UPDATE report_jobs SET lease_until = ? WHERE id = ? AND seq = ? AND lease_owner = ?",
            ))
            .bind(until.timestamp_millis())
            .bind(&record.id)
            .bind(record.seq)
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected()
        });
        Ok(n == 1)
    }

    /// Gives up `owner`'s lease on the job's current step (a stopping worker abandoned it, its
    /// request or download already dropped) and queues the step's task again, due now, so the
    /// next worker takes it at once instead of waiting for the lease and the engine's
    /// heartbeat to run out. The engine's own task may come back too: a step is taken once
    /// whichever task arrives first.
    pub async fn release(&self, record: &JobRecord, owner: &str) -> Result<()> {
        with_db!(&self.db, pool, kind => {
            let mut tx = crate::transaction::begin(pool).await?;
            let released = sqlx::query(sql(
                kind,
                "UPDATE report_jobs SET lease_owner = NULL, lease_until = NULL
                 WHERE id = ? AND seq = ? AND lease_owner = ?",
            ))
            .bind(&record.id)
            .bind(record.seq)
            .bind(owner)
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            if released {
                let key = format!("{}/{}/released-{}", record.id, record.seq, uuid::Uuid::new_v4());
                tx.push_task(task_of(&record.id, record.seq, None, key, Priority::of(record)))
                    .await?;
            }
            tx.commit().await?;
        });
        Ok(())
    }

    /// Hands back the engine tasks `worker` took from the queue and did not finish (a stopped
    /// worker's): pending again at once, instead of after the engine's heartbeat timeout.
    pub(crate) async fn unlock_engine_tasks(&self, worker: &str) -> Result<u64> {
        let n = match &self.db {
            Db::Sqlite(pool) => sqlx::query(
                "UPDATE Jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL
                 WHERE job_type = ? AND lock_by = ? AND status IN ('Queued', 'Running')",
            )
            .bind(QUEUE)
            .bind(worker)
            .execute(pool)
            .await?
            .rows_affected(),
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => sqlx::query(
                "UPDATE apalis.jobs SET status = 'Pending', lock_by = NULL, lock_at = NULL
                 WHERE job_type = $1 AND lock_by = $2 AND status IN ('Queued', 'Running')",
            )
            .bind(QUEUE)
            .bind(worker)
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(n)
    }

    /// Queues a copy of `task` due after `after` (a stopping worker's task it will not begin);
    /// the copy is taken once, like any repeated task.
    pub async fn defer(&self, task: &StepTask, after: Duration) -> Result<()> {
        let at = Utc::now() + chrono::Duration::from_std(after).unwrap_or(chrono::Duration::MAX);
        let key = format!(
            "{}/{}/deferred-{}",
            task.job,
            task.seq,
            uuid::Uuid::new_v4()
        );
        let priority = match self.get(&task.job).await? {
            Some(record) => Priority::of(&record),
            None => Priority::Start,
        };
        with_db!(&self.db, pool, kind => {
            let mut tx = crate::transaction::begin(pool).await?;
            tx.push_task(task_of(&task.job, task.seq, Some(at), key, priority)).await?;
            tx.commit().await?;
        });
        Ok(())
    }

    /// Records the intent to start, keeping the lease. With `exclusive`, only while no other
    /// job of the same vendor and connection is started and unfinished (one statement, so
    /// two workers cannot both pass the check); `false` if one is.
    pub async fn save_intent(
        &self,
        record: &JobRecord,
        owner: &str,
        exclusive: bool,
    ) -> Result<bool> {
        let written = with_db!(&self.db, pool, kind => {
            // SQLite runs one write at a time; PostgreSQL would let two workers pass the
            // check for two jobs at once (each sees the other not yet started): they queue on
            // a lock per vendor and connection, held until the intent is committed.
            if exclusive && kind.is_postgres() {
                let mut tx = crate::transaction::begin(pool).await?;
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(format!("{}/{}", record.vendor, record.connection))
                    .execute(&mut *tx)
                    .await?;
                let written = write_record!(kind, tx, record, owner, false, exclusive);
                tx.commit().await?;
                written
            } else {
                // One statement, atomic on its own: no transaction's two extra round trips.
                let mut conn = pool.acquire().await?;
                write_record!(kind, conn, record, owner, false, exclusive)
            }
        });
        if written {
            return Ok(true);
        }
        match self.get(&record.id).await? {
            Some(r) if exclusive && r.seq == record.seq => Ok(false),
            _ => Err(Error::LeaseLost(record.id.clone())),
        }
    }

    /// Saves the record as the outcome of its step and moves to the next step: its task is
    /// queued for `next_at` (now if `None`) unless the job is finished. Atomic: both or
    /// neither.
    pub async fn advance(
        &self,
        record: &mut JobRecord,
        owner: &str,
        next_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let (next_seq, priority) = (record.seq + 1, Priority::of(record));
        let saved = if record.state.is_terminal() {
            // Nothing to queue: one statement, atomic on its own.
            with_db!(&self.db, pool, kind => {
                let mut conn = pool.acquire().await?;
                write_record!(kind, conn, record, owner, true, false)
            })
        } else {
            match &self.db {
                Db::Sqlite(pool) => {
                    let mut tx = crate::transaction::begin(pool).await?;
                    let saved = write_record!(Kind::Sqlite, tx, record, owner, true, false);
                    if saved {
                        tx.push_step(&record.id, next_seq, next_at, priority)
                            .await?;
                        tx.commit().await?;
                    }
                    saved
                }
                #[cfg(feature = "postgres")]
                Db::Postgres(pool) => {
                    let mut conn = pool.acquire().await?;
                    bind_record!(
                        sqlx::query(sql(Kind::Postgres, ADVANCE_AND_QUEUE)),
                        record,
                        owner,
                        true,
                        false
                    )
                    .bind(ulid::Ulid::generate().to_string())
                    .bind(QUEUE)
                    .bind(step_payload(&record.id, next_seq))
                    .bind(MAX_ATTEMPTS)
                    .bind(run_at_secs(next_at).unwrap_or_else(|| Utc::now().timestamp()))
                    .bind(priority as i32)
                    .bind(sqlx::postgres::types::PgHstore::default())
                    .bind(step_key(&record.id, next_seq))
                    .execute(&mut *conn)
                    .await?
                    .rows_affected()
                        == 1
                }
            }
        };
        if !saved {
            return Err(Error::LeaseLost(record.id.clone()));
        }
        record.seq = next_seq;
        Ok(())
    }

    /// Queues the task of the job's current step again (harmless if it is queued: the
    /// idempotency key keeps one). Mends a step whose task was lost.
    pub async fn requeue(&self, record: &JobRecord) -> Result<()> {
        if record.state.is_terminal() {
            return Ok(());
        }
        let pushed = async {
            with_db!(&self.db, pool, kind => {
                let mut tx = crate::transaction::begin(pool).await?;
                tx.push_step(
                    &record.id,
                    record.seq,
                    record.next_poll_at,
                    Priority::of(record),
                )
                .await?;
                tx.commit().await?;
            });
            Ok(())
        };
        match pushed.await {
            // The engine ignores a second task under one key on SQLite but refuses it on
            // PostgreSQL: a task already there is what was asked for.
            Err(_) if self.step_task_exists(&record.id, record.seq).await? => Ok(()),
            pushed => pushed,
        }
    }

    /// Whether the engine holds a task of step `seq` of `job`, in any state.
    async fn step_task_exists(&self, job: &str, seq: i64) -> Result<bool> {
        let key = step_key(job, seq);
        let exists =
            match &self.db {
                Db::Sqlite(pool) => sqlx::query_scalar::<_, bool>(
                    "SELECT EXISTS (SELECT 1 FROM Jobs WHERE job_type = ? AND idempotency_key = ?)",
                )
                .bind(QUEUE)
                .bind(&key)
                .fetch_one(pool)
                .await?,
                #[cfg(feature = "postgres")]
                Db::Postgres(pool) => {
                    sqlx::query_scalar::<_, bool>(
                        "SELECT EXISTS (SELECT 1 FROM apalis.jobs
                                    WHERE job_type = $1 AND idempotency_key = $2)",
                    )
                    .bind(QUEUE)
                    .bind(&key)
                    .fetch_one(pool)
                    .await?
                }
            };
        Ok(exists)
    }

    /// What past reports of `vendor` and `kind` took (`None`: nothing learned yet), to give
    /// a job's [`report_core::WaitPolicy::with_prior`].
    pub async fn prior(&self, vendor: &str, kind: &str) -> Result<Option<DurationPrior>> {
        let summary: Option<String> = with_db!(&self.db, pool, kind_ => {
            sqlx::query_scalar(sql(
                kind_,
                "SELECT summary FROM report_priors WHERE vendor = ? AND kind = ?",
            ))
            .bind(vendor)
            .bind(kind)
            .fetch_optional(pool)
            .await?
        });
        // A summary that no longer parses is forgotten, not an error: it is only a hint.
        Ok(summary.and_then(|s| serde_json::from_str(&s).ok()))
    }

    /// Adds a finished report's duration (and how its vendor's ETA compared, if it gave one)
    /// to what `vendor` and `kind` are known to take. Two workers learning at the same moment
    /// may lose one of the two samples: harmless for a summary.
    pub async fn learn_duration(
        &self,
        vendor: &str,
        kind: &str,
        duration: Duration,
        predicted: Option<Duration>,
    ) -> Result<DurationPrior> {
        let mut prior = self.prior(vendor, kind).await?.unwrap_or_default();
        prior.record(duration);
        if let Some(predicted) = predicted {
            prior.record_eta(predicted, duration);
        }
        let summary = serde_json::to_string(&prior).expect("a prior serializes");
        with_db!(&self.db, pool, kind_ => {
            sqlx::query(sql(
                kind_,
                "INSERT INTO report_priors (vendor, kind, summary) VALUES (?, ?, ?)
                 ON CONFLICT (vendor, kind) DO UPDATE SET summary = excluded.summary",
            ))
            .bind(vendor)
            .bind(kind)
            .bind(&summary)
            .execute(pool)
            .await?;
        });
        Ok(prior)
    }
}

impl Store {
    /// Adds the columns later versions brought to a database made by an earlier one (its
    /// `CREATE TABLE IF NOT EXISTS` left the table as it was).
    async fn add_columns(&self) -> Result<()> {
        match &self.db {
            Db::Sqlite(pool) => {
                for (column, sql_type) in ADDED_COLUMNS {
                    let present: i64 = sqlx::query_scalar(
                        "SELECT COUNT(*) FROM pragma_table_info('report_jobs') WHERE name = ?",
                    )
                    .bind(column)
                    .fetch_one(pool)
                    .await?;
                    if present == 0 {
                        let added = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                            "ALTER TABLE report_jobs ADD COLUMN {column} {sql_type}"
                        )))
                        .execute(pool)
                        .await;
                        // Another process may have added it meanwhile.
                        if let Err(e) = added
                            && !e.to_string().contains("duplicate column")
                        {
                            return Err(e.into());
                        }
                    }
                }
                sqlx::raw_sql(WEBHOOK_INDEX).execute(pool).await?;
            }
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => {
                crate::postgres_setup::add_columns(pool, &ADDED_COLUMNS, WEBHOOK_INDEX).await?;
            }
        }
        Ok(())
    }
}

/// The index on the newest of the added columns.
const WEBHOOK_INDEX: &str =
    "CREATE UNIQUE INDEX IF NOT EXISTS report_jobs_webhook ON report_jobs (webhook_sha256)";

/// Columns of `report_jobs` newer than its `CREATE TABLE` (`NULL` by default), with their
/// types: the SHA-256 of the job's webhook token, when a webhook call nudged it, the vendor's
/// first ETA, and whether the current step's last claim took it over from another holder.
const ADDED_COLUMNS: [(&str, &str); 4] = [
    ("webhook_sha256", "TEXT"),
    ("nudged_at", "TEXT"),
    ("first_eta_at", "TEXT"),
    ("step_taken_over", "BIGINT"),
];

/// The engine task of step `seq` of `job`, due at `at` (now if `None`).
fn step_task(job: &str, seq: i64, at: Option<DateTime<Utc>>, priority: Priority) -> Task<Vec<u8>> {
    task_of(job, seq, at, step_key(job, seq), priority)
}

/// The idempotency key of the engine's task for step `seq` of `job`.
pub(crate) fn step_key(job: &str, seq: i64) -> String {
    format!("{job}/{seq}")
}

/// Which of the due tasks the engine hands out first (the highest) when more are due than
/// the workers take at once: a poll has a moment promised to the user, a download a report
/// waiting for it; a start only adds work, so new jobs wait while due polls are served (a
/// queue of thousands fills the workers' capacity without making any poll late).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Priority {
    Start = 0,
    Download = 1,
    Poll = 2,
}

impl Priority {
    /// The priority of `record`'s next step.
    pub(crate) fn of(record: &JobRecord) -> Priority {
        Priority::of_step(
            record.state,
            record.ticket.is_some(),
            record.cancel_requested,
        )
    }

    /// The priority of the next step of a job in `state`, with a ticket or not, whose cancel
    /// was asked for or not.
    pub(crate) fn of_step(state: JobState, has_ticket: bool, cancel_requested: bool) -> Priority {
        if cancel_requested || (has_ticket && state == JobState::Running) {
            Priority::Poll
        } else if state == JobState::Downloading {
            Priority::Download
        } else {
            Priority::Start
        }
    }
}

/// How often the engine runs a task whose handler fails (a step not recorded) before it gives
/// up on it.
const MAX_ATTEMPTS: i32 = 25;

/// An engine task's payload: take step `seq` of `job`.
fn step_payload(job: &str, seq: i64) -> Vec<u8> {
    serde_json::to_vec(&StepTask {
        job: job.to_string(),
        seq,
    })
    .expect("a step task serializes")
}

/// The engine's moment for a task due at `at`, in whole seconds (`None`: now). Rounded down,
/// the task is taken up to a second early and its step waits for the moment
/// (`worker::EARLY`); rounded up, a poll would be up to a second late.
fn run_at_secs(at: Option<DateTime<Utc>>) -> Option<i64> {
    at.map(|at| at.timestamp().max(0))
}

/// An engine task of step `seq` of `job` under idempotency key `key`.
fn task_of(
    job: &str,
    seq: i64,
    at: Option<DateTime<Utc>>,
    key: String,
    priority: Priority,
) -> Task<Vec<u8>> {
    let mut task = TaskBuilder::new(step_payload(job, seq))
        .idempotency_key(key)
        .priority(priority as usize)
        .max_attempts(MAX_ATTEMPTS as usize);
    if let Some(secs) = run_at_secs(at) {
        task = task.run_at_timestamp(secs as u64);
    }
    task.build()
}

/// Queues a step's task within one of our transactions, whichever the database.
trait PushStep {
    async fn push_task(&mut self, task: Task<Vec<u8>>) -> Result<()>;

    async fn push_step(
        &mut self,
        job: &str,
        seq: i64,
        at: Option<DateTime<Utc>>,
        priority: Priority,
    ) -> Result<()> {
        self.push_task(step_task(job, seq, at, priority)).await
    }
}

impl PushStep for sqlx::Transaction<'_, sqlx::Sqlite> {
    async fn push_task(&mut self, task: Task<Vec<u8>>) -> Result<()> {
        apalis_sqlite::queries::push_tasks(&mut **self, QUEUE, &[task])
            .await
            .map_err(|e| Error::Database(format!("cannot queue a task: {e}")))
    }
}

#[cfg(feature = "postgres")]
impl PushStep for sqlx::Transaction<'_, sqlx::Postgres> {
    async fn push_task(&mut self, task: Task<Vec<u8>>) -> Result<()> {
        apalis_postgres::queries::push_tasks(&mut **self, QUEUE, vec![task])
            .await
            .map_err(|e| Error::Database(format!("cannot queue a task: {e}")))
    }
}

/// A `report_jobs` row as a claim returns it.
#[derive(sqlx::FromRow)]
struct ClaimedRow {
    #[sqlx(flatten)]
    job: RawJob,
    step_taken_over: Option<i64>,
}

/// A `report_jobs` row as stored.
#[derive(sqlx::FromRow)]
struct RawJob {
    id: String,
    vendor: String,
    connection: String,
    request: String,
    out: String,
    state: String,
    seq: i64,
    progress: Option<f64>,
    message: Option<String>,
    polls: i64,
    retries: i64,
    created_at: String,
    started_at: Option<String>,
    finished_at: Option<String>,
    bytes: Option<i64>,
    sha256: Option<String>,
    error: Option<String>,
    ticket: Option<String>,
    wait_state: Option<String>,
    artifact: Option<String>,
    start_intent_at: Option<String>,
    next_poll_at: Option<String>,
    cancel_requested: i64,
    first_eta_at: Option<String>,
}

impl RawJob {
    fn parse(self) -> Result<JobRecord> {
        let time = |name: &str, text: Option<String>| -> Result<Option<DateTime<Utc>>> {
            text.map(|t| {
                DateTime::parse_from_rfc3339(&t)
                    .map(|t| t.with_timezone(&Utc))
                    .map_err(|e| Error::Database(format!("bad time in `{name}`: {e}")))
            })
            .transpose()
        };
        fn json<T: serde::de::DeserializeOwned>(
            what: &str,
            text: Option<String>,
        ) -> Result<Option<T>> {
            text.map(|t| serde_json::from_str(&t))
                .transpose()
                .map_err(|e| Error::Database(format!("bad {what}: {e}")))
        }
        Ok(JobRecord {
            request: serde_json::from_str(&self.request)
                .map_err(|e| Error::Database(format!("bad request JSON: {e}")))?,
            state: JobState::parse(&self.state)
                .ok_or_else(|| Error::Database(format!("unknown job state `{}`", self.state)))?,
            progress: self.progress,
            message: self.message,
            polls: self.polls as u32,
            retries: self.retries as u32,
            created_at: time("created_at", Some(self.created_at))?.unwrap_or_default(),
            started_at: time("started_at", self.started_at)?,
            finished_at: time("finished_at", self.finished_at)?,
            bytes: self.bytes.map(|b| b as u64),
            sha256: self.sha256,
            error: self.error,
            ticket: self
                .ticket
                .map(|t| report_core::Ticket::from_json(&t))
                .transpose()
                .map_err(|e| Error::Database(format!("bad ticket: {e}")))?,
            next_poll_at: time("next_poll_at", self.next_poll_at)?,
            first_eta_at: time("first_eta_at", self.first_eta_at)?,
            cancel_requested: self.cancel_requested != 0,
            start_intent_at: time("start_intent_at", self.start_intent_at)?,
            wait: json("wait state", self.wait_state)?,
            artifact: json("artifact", self.artifact)?,
            seq: self.seq,
            id: self.id,
            vendor: self.vendor,
            connection: self.connection,
            out: self.out,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_unfinished_count_names_every_unfinished_state() {
        use JobState::*;
        for state in [Queued, Running, Downloading, Done, Failed, Cancelled] {
            // A new state fails to compile here until it is listed above.
            match state {
                Queued | Running | Downloading | Done | Failed | Cancelled => {}
            }
            let named = COUNT_UNFINISHED.contains(&format!("'{state}'"));
            assert_eq!(named, !state.is_terminal(), "{state}");
        }
    }

    #[tokio::test]
    async fn the_unfinished_count_reads_unfinished_jobs_only() {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("jobs.db").display());
        // The schema as the store sets it up, read on a connection of the test's own.
        Store::open(&url).await.unwrap();
        let pool = &SqlitePool::connect(&url).await.unwrap();
        let plan: Vec<(i64, i64, i64, String)> = sqlx::query_as(sqlx::AssertSqlSafe(format!(
            "EXPLAIN QUERY PLAN {COUNT_UNFINISHED}"
        )))
        .fetch_all(pool)
        .await
        .unwrap();
        let steps: Vec<&str> = plan.iter().map(|step| step.3.as_str()).collect();
        assert_eq!(
            steps,
            ["SEARCH report_jobs USING COVERING INDEX report_jobs_state (state=?)"]
        );
    }
}
