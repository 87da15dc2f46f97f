//! Keeping the engine's task table small: the engine marks a finished task `Done` (or `Killed`,
//! or `Failed` past its attempts) and never deletes it, so a busy queue grows by one row per
//! step forever. Workers delete such tasks once they are older than a retention. Our job
//! records (`report_jobs`) are never touched: they are the history users read.
//!
//! Safe at any moment: only finished tasks go, and a step is never judged by its task's row
//! (the job record's step counter decides), so a deleted task is never missed.

use std::time::Duration;

use chrono::Utc;

use crate::Result;
use crate::store::{Db, QUEUE, Store};

/// How long finished engine tasks are kept, and how often a worker deletes older ones.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TaskRetention {
    /// Finished tasks younger than this are kept (for the engine's board and audits).
    pub keep: Duration,
    /// How often a worker looks for older ones.
    pub every: Duration,
}

impl Default for TaskRetention {
    /// A week's tasks, pruned hourly.
    fn default() -> Self {
        TaskRetention {
            keep: Duration::from_secs(7 * 24 * 3600),
            every: Duration::from_secs(3600),
        }
    }
}

/// The engine's finished tasks: done, killed, or failed with no attempt left.
const FINISHED: &str =
    "(status IN ('Done', 'Killed') OR (status = 'Failed' AND attempts >= max_attempts))";

impl Store {
    /// Deletes the runner queue's finished engine tasks that finished at least `keep` ago;
    /// returns how many. Job records are kept.
    pub async fn delete_finished_tasks(&self, keep: Duration) -> Result<u64> {
        let keep = chrono::Duration::from_std(keep).unwrap_or(chrono::Duration::MAX);
        let cutoff = Utc::now()
            .checked_sub_signed(keep)
            .unwrap_or(chrono::DateTime::<Utc>::MIN_UTC);
        let deleted = match &self.db {
            // The engine records `done_at` in Unix seconds on SQLite.
            Db::Sqlite(pool) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM Jobs WHERE job_type = ? AND done_at IS NOT NULL AND done_at <= ? AND {FINISHED}"
            )))
            .bind(QUEUE)
            .bind(cutoff.timestamp())
            .execute(pool)
            .await?
            .rows_affected(),
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM apalis.jobs WHERE job_type = $1 AND done_at IS NOT NULL
                     AND done_at <= to_timestamp($2) AND {FINISHED}"
            )))
            .bind(QUEUE)
            .bind(cutoff.timestamp_millis() as f64 / 1000.0)
            .execute(pool)
            .await?
            .rows_affected(),
        };
        Ok(deleted)
    }

    /// The runner queue's finished engine tasks (what [`Store::delete_finished_tasks`] may
    /// delete once they are old enough).
    pub async fn finished_tasks(&self) -> Result<u64> {
        let n: i64 = match &self.db {
            Db::Sqlite(pool) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM Jobs WHERE job_type = ? AND {FINISHED}"
                )))
                .bind(QUEUE)
                .fetch_one(pool)
                .await?
            }
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => {
                sqlx::query_scalar(sqlx::AssertSqlSafe(format!(
                    "SELECT COUNT(*) FROM apalis.jobs WHERE job_type = $1 AND {FINISHED}"
                )))
                .bind(QUEUE)
                .fetch_one(pool)
                .await?
            }
        };
        Ok(n as u64)
    }
}

/// Deletes old finished tasks now and every `retention.every` until told to stop. A stop
/// waits for a delete under way: dropped mid-statement, the database would still run it after
/// the worker is over (sqlx hands a statement to the connection before it is awaited). A
/// failure is logged and tried again next time (the table only grows meanwhile).
pub(crate) async fn prune_until_stopped(
    store: Store,
    retention: TaskRetention,
    mut stop: tokio::sync::watch::Receiver<bool>,
) {
    loop {
        match store.delete_finished_tasks(retention.keep).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(deleted = n, "old finished engine tasks deleted"),
            Err(e) => tracing::warn!(error = %e, "old finished engine tasks not deleted"),
        }
        tokio::select! {
            () = tokio::time::sleep(retention.every.max(Duration::from_millis(10))) => {}
            // Told to stop, or the worker gone.
            _ = stop.wait_for(|stop| *stop) => return,
        }
    }
}
