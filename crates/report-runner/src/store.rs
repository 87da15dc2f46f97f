//! The job table and the engine's task queue, in one SQLite database.
//!
//! Each job has a step counter (`seq`). A task names the job and the step it is for; a worker
//! takes a step under a lease (so no two workers work on one job at once), and records the
//! outcome together with the task of the next step in one transaction: a crash at any point
//! leaves either the old step (repeated: polls only read, downloads rename at the end) or the
//! new one queued, never neither. Tasks carry an idempotency key (`job/seq`), so a step's task
//! pushed twice is queued once.

use std::str::FromStr;
use std::time::Duration;

use apalis::prelude::TaskBuilder;
use apalis_sqlite::{Config, SqliteConnectOptions, SqlitePool, SqlitePoolOptions, SqliteStorage};
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use sqlx::Row;
use sqlx::sqlite::SqliteRow;

use crate::record::{JobRecord, JobState, NewJob};
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
    /// The step is ours until the lease runs out (renew it while working).
    Claimed(JobRecord),
    /// Another worker holds the step; its lease runs out at this moment.
    Busy(DateTime<Utc>),
    /// The task is stale: the job moved on, finished or was removed.
    Stale(Option<JobRecord>),
}

/// The job database.
#[derive(Clone, Debug)]
pub struct Store {
    pool: SqlitePool,
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
    lease_until INTEGER
);
CREATE INDEX IF NOT EXISTS report_jobs_state ON report_jobs (state);
";

impl Store {
    /// Opens (creating if needed) a SQLite database: a `sqlite:` URL or a file path.
    pub async fn open(url: &str) -> Result<Store> {
        let path = url
            .strip_prefix("sqlite://")
            .or_else(|| url.strip_prefix("sqlite:"));
        let options = match path {
            Some(p) => SqliteConnectOptions::from_str(&format!("sqlite:{p}")),
            None => Ok(SqliteConnectOptions::new().filename(url)),
        }
        .map_err(|e| Error::Database(format!("bad database URL: {e}")))?
        .create_if_missing(true)
        .busy_timeout(Duration::from_secs(30));
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .connect_with(options)
            .await
            .map_err(|e| Error::Database(format!("cannot open the database: {e}")))?;
        SqliteStorage::setup(&pool)
            .await
            .map_err(|e| Error::Database(format!("cannot set up the queue: {e}")))?;
        // The engine turns synchronous writes off for speed; job records must survive a power
        // cut as well as a crash.
        sqlx::query("PRAGMA synchronous = NORMAL;")
            .execute(&pool)
            .await?;
        sqlx::raw_sql(SCHEMA).execute(&pool).await?;
        Ok(Store { pool })
    }

    /// The connection pool (for the engine's storage).
    pub fn pool(&self) -> &SqlitePool {
        &self.pool
    }

    /// The engine's storage configuration for the runner's queue.
    pub fn engine_config() -> Config {
        Config::default().queue(QUEUE)
    }

    /// Queues a new job: its record and its first task, in one transaction.
    pub async fn submit(&self, new: NewJob) -> Result<JobRecord> {
        let now = Utc::now();
        let record = JobRecord {
            id: uuid::Uuid::new_v4().to_string(),
            vendor: new.vendor,
            connection: new.connection,
            request: new.request,
            state: JobState::Queued,
            progress: None,
            message: None,
            polls: 0,
            retries: 0,
            created_at: now,
            started_at: None,
            finished_at: None,
            out: new.out,
            bytes: None,
            sha256: None,
            error: None,
            ticket: None,
            next_poll_at: None,
            cancel_requested: false,
            start_intent_at: None,
            wait: None,
            artifact: None,
            seq: 0,
        };
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "INSERT INTO report_jobs (id, vendor, connection, request, out, state, seq, created_at)
             VALUES (?, ?, ?, ?, ?, ?, 0, ?)",
        )
        .bind(&record.id)
        .bind(&record.vendor)
        .bind(&record.connection)
        .bind(record.request.to_string())
        .bind(&record.out)
        .bind(record.state.as_str())
        .bind(now.to_rfc3339())
        .execute(&mut *tx)
        .await?;
        push_step(&mut tx, &record.id, 0, None).await?;
        tx.commit().await?;
        Ok(record)
    }

    /// One job.
    pub async fn get(&self, id: &str) -> Result<Option<JobRecord>> {
        let row = sqlx::query("SELECT * FROM report_jobs WHERE id = ?")
            .bind(id)
            .fetch_optional(&self.pool)
            .await?;
        row.map(|r| from_row(&r)).transpose()
    }

    /// Every job, oldest first.
    pub async fn list(&self) -> Result<Vec<JobRecord>> {
        let rows = sqlx::query("SELECT * FROM report_jobs ORDER BY created_at, id")
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(from_row).collect()
    }

    /// Jobs not yet done, failed or cancelled.
    pub async fn unfinished(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM report_jobs WHERE state NOT IN ('done', 'failed', 'cancelled')",
        )
        .fetch_one(&self.pool)
        .await?;
        Ok(n as u64)
    }

    /// Whether another job holds a ticket of `vendor` with this report id.
    pub async fn ticket_taken(&self, vendor: &str, report_id: &str, except: &str) -> Result<bool> {
        let tickets: Vec<String> = sqlx::query_scalar(
            "SELECT ticket FROM report_jobs WHERE vendor = ? AND id != ? AND ticket IS NOT NULL",
        )
        .bind(vendor)
        .bind(except)
        .fetch_all(&self.pool)
        .await?;
        Ok(tickets.iter().any(|t| {
            report_core::Ticket::from_json(t).is_ok_and(|t| t.id.eq_ignore_ascii_case(report_id))
        }))
    }

    /// Engine tasks delivered more than once (re-queued after a worker died, or retried).
    pub async fn redelivered_tasks(&self) -> Result<u64> {
        let n: i64 =
            sqlx::query_scalar("SELECT COUNT(*) FROM Jobs WHERE job_type = ? AND attempts > 0")
                .bind(QUEUE)
                .fetch_one(&self.pool)
                .await?;
        Ok(n as u64)
    }

    /// Asks for a job to be cancelled. A job no worker has started is cancelled at once;
    /// otherwise the worker taking its next step cancels it at the vendor.
    pub async fn request_cancel(&self, id: &str) -> Result<JobRecord> {
        let now = Utc::now();
        let mut tx = self.pool.begin().await?;
        sqlx::query(
            "UPDATE report_jobs SET state = 'cancelled', finished_at = ?, seq = seq + 1,
                 cancel_requested = 1
             WHERE id = ? AND state = 'queued' AND start_intent_at IS NULL
                 AND (lease_owner IS NULL OR lease_until < ?)",
        )
        .bind(now.to_rfc3339())
        .bind(id)
        .bind(now.timestamp_millis())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "UPDATE report_jobs SET cancel_requested = 1
             WHERE id = ? AND state NOT IN ('done', 'failed', 'cancelled')",
        )
        .bind(id)
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
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
        let mut tx = self.pool.begin().await?;
        let updated = sqlx::query(
            "UPDATE report_jobs SET state = ?, seq = seq + 1, error = NULL, finished_at = NULL,
                 cancel_requested = 0, wait_state = NULL, artifact = NULL, start_intent_at = NULL,
                 next_poll_at = NULL, lease_owner = NULL, lease_until = NULL,
                 retries = retries + 1
             WHERE id = ? AND seq = ?",
        )
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
        push_step(&mut tx, id, record.seq + 1, None).await?;
        tx.commit().await?;
        self.get(id)
            .await?
            .ok_or_else(|| Error::NotFound(id.into()))
    }

    /// Takes step `task.seq` of a job for `owner` until `now + ttl`.
    pub async fn claim(&self, task: &StepTask, owner: &str, ttl: Duration) -> Result<Claim> {
        let now = Utc::now();
        let until = now + chrono::Duration::from_std(ttl).unwrap_or(chrono::Duration::MAX);
        let claimed = sqlx::query(
            "UPDATE report_jobs SET lease_owner = ?, lease_until = ?
             WHERE id = ? AND seq = ? AND state NOT IN ('done', 'failed', 'cancelled')
                 AND (lease_owner IS NULL OR lease_owner = ? OR lease_until < ?)",
        )
        .bind(owner)
        .bind(until.timestamp_millis())
        .bind(&task.job)
        .bind(task.seq)
        .bind(owner)
        .bind(now.timestamp_millis())
        .execute(&self.pool)
        .await?
        .rows_affected();
        let record = self.get(&task.job).await?;
        match record {
            Some(r) if claimed == 1 => Ok(Claim::Claimed(r)),
            Some(r) if r.seq == task.seq && !r.state.is_terminal() => {
                let until: Option<i64> =
                    sqlx::query_scalar("SELECT lease_until FROM report_jobs WHERE id = ?")
                        .bind(&task.job)
                        .fetch_one(&self.pool)
                        .await?;
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
        let n = sqlx::query(
            "UPDATE report_jobs SET lease_until = ? WHERE id = ? AND seq = ? AND lease_owner = ?",
        )
        .bind(until.timestamp_millis())
        .bind(&record.id)
        .bind(record.seq)
        .bind(owner)
        .execute(&self.pool)
        .await?
        .rows_affected();
        Ok(n == 1)
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
        let mut tx = self.pool.begin().await?;
        let written = write(&mut tx, record, owner, false, exclusive).await?;
        tx.commit().await?;
        if written {
            return Ok(true);
        }
        match self.get(&record.id).await? {
            Some(r) if exclusive && r.seq == record.seq => Ok(false),
            _ => Err(Error::LeaseLost(record.id.clone())),
        }
    }

    /// Saves the record as the outcome of its step and moves to the next step: its task is
    /// queued for `next_at` (now if `None`) unless the job is finished. One transaction.
    pub async fn advance(
        &self,
        record: &mut JobRecord,
        owner: &str,
        next_at: Option<DateTime<Utc>>,
    ) -> Result<()> {
        let mut tx = self.pool.begin().await?;
        if !write(&mut tx, record, owner, true, false).await? {
            return Err(Error::LeaseLost(record.id.clone()));
        }
        record.seq += 1;
        if !record.state.is_terminal() {
            push_step(&mut tx, &record.id, record.seq, next_at).await?;
        }
        tx.commit().await?;
        Ok(())
    }

    /// Queues the task of the job's current step again (harmless if it is queued: the
    /// idempotency key keeps one). Mends a step whose task was lost.
    pub async fn requeue(&self, record: &JobRecord) -> Result<()> {
        if record.state.is_terminal() {
            return Ok(());
        }
        let mut tx = self.pool.begin().await?;
        push_step(&mut tx, &record.id, record.seq, record.next_poll_at).await?;
        tx.commit().await?;
        Ok(())
    }
}

type Tx<'a> = sqlx::Transaction<'a, sqlx::Sqlite>;

async fn push_step(tx: &mut Tx<'_>, job: &str, seq: i64, at: Option<DateTime<Utc>>) -> Result<()> {
    let payload = serde_json::to_vec(&StepTask {
        job: job.to_string(),
        seq,
    })
    .expect("a step task serializes");
    // The engine schedules in whole seconds: round up, never poll early.
    let at = at.map(|t| {
        let secs = t.timestamp();
        if t.timestamp_subsec_nanos() > 0 {
            secs + 1
        } else {
            secs
        }
    });
    let mut task = TaskBuilder::new(payload)
        .idempotency_key(format!("{job}/{seq}"))
        .max_attempts(25);
    if let Some(at) = at {
        task = task.run_at_timestamp(at.max(0) as u64);
    }
    apalis_sqlite::queries::push_tasks(&mut **tx, QUEUE, &[task.build()])
        .await
        .map_err(|e| Error::Database(format!("cannot queue a task: {e}")))
}

/// Writes the record if `owner` still holds its step (and, with `exclusive`, no other job of
/// its vendor and connection is under way); `false` if not.
async fn write(
    tx: &mut Tx<'_>,
    r: &JobRecord,
    owner: &str,
    next_step: bool,
    exclusive: bool,
) -> Result<bool> {
    let n = sqlx::query(
        "UPDATE report_jobs SET state = ?, progress = ?, message = ?, polls = ?, retries = ?,
             started_at = ?, finished_at = ?, bytes = ?, sha256 = ?, error = ?, ticket = ?,
             wait_state = ?, artifact = ?, start_intent_at = ?, next_poll_at = ?,
             seq = seq + ?,
             lease_owner = CASE WHEN ? THEN NULL ELSE lease_owner END,
             lease_until = CASE WHEN ? THEN NULL ELSE lease_until END
         WHERE id = ? AND seq = ? AND lease_owner = ?
             AND (NOT ? OR NOT EXISTS (
                 SELECT 1 FROM report_jobs other
                 WHERE other.vendor = ? AND other.connection = ? AND other.id != ?
                     AND other.state IN ('running', 'downloading')))",
    )
    .bind(r.state.as_str())
    .bind(r.progress)
    .bind(&r.message)
    .bind(r.polls as i64)
    .bind(r.retries as i64)
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
    .bind(i64::from(next_step))
    .bind(next_step)
    .bind(next_step)
    .bind(&r.id)
    .bind(r.seq)
    .bind(owner)
    .bind(exclusive)
    .bind(&r.vendor)
    .bind(&r.connection)
    .bind(&r.id)
    .execute(&mut **tx)
    .await?
    .rows_affected();
    Ok(n == 1)
}

fn from_row(row: &SqliteRow) -> Result<JobRecord> {
    let time = |name: &str| -> Result<Option<DateTime<Utc>>> {
        let text: Option<String> = row.try_get(name)?;
        text.map(|t| {
            DateTime::parse_from_rfc3339(&t)
                .map(|t| t.with_timezone(&Utc))
                .map_err(|e| Error::Database(format!("bad time in `{name}`: {e}")))
        })
        .transpose()
    };
    let parsed = |name: &str| -> Result<Option<String>> { Ok(row.try_get(name)?) };
    let state: String = row.try_get("state")?;
    let request: String = row.try_get("request")?;
    Ok(JobRecord {
        id: row.try_get("id")?,
        vendor: row.try_get("vendor")?,
        connection: row.try_get("connection")?,
        request: serde_json::from_str(&request)
            .map_err(|e| Error::Database(format!("bad request JSON: {e}")))?,
        state: JobState::parse(&state)
            .ok_or_else(|| Error::Database(format!("unknown job state `{state}`")))?,
        progress: row.try_get("progress")?,
        message: row.try_get("message")?,
        polls: row.try_get::<i64, _>("polls")? as u32,
        retries: row.try_get::<i64, _>("retries")? as u32,
        created_at: time("created_at")?.unwrap_or_default(),
        started_at: time("started_at")?,
        finished_at: time("finished_at")?,
        out: row.try_get("out")?,
        bytes: row.try_get::<Option<i64>, _>("bytes")?.map(|b| b as u64),
        sha256: row.try_get("sha256")?,
        error: row.try_get("error")?,
        ticket: parsed("ticket")?
            .map(|t| report_core::Ticket::from_json(&t))
            .transpose()
            .map_err(|e| Error::Database(format!("bad ticket: {e}")))?,
        next_poll_at: time("next_poll_at")?,
        cancel_requested: row.try_get::<i64, _>("cancel_requested")? != 0,
        start_intent_at: time("start_intent_at")?,
        wait: parsed("wait_state")?
            .map(|w| serde_json::from_str(&w))
            .transpose()
            .map_err(|e| Error::Database(format!("bad wait state: {e}")))?,
        artifact: parsed("artifact")?
            .map(|a| serde_json::from_str(&a))
            .transpose()
            .map_err(|e| Error::Database(format!("bad artifact: {e}")))?,
        seq: row.try_get("seq")?,
    })
}
