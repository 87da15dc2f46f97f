//! Setting up a SQLite job database for a queue that runs for months without slowing down.
//!
//! Two things in the engine's own set-up made a worker slower the longer it ran (a 30-minute
//! soak fell from 590 to 50 jobs a minute, apalis-sqlite issue 58):
//! - Its `PRAGMA optimize` records planner statistics whenever a process opens the database,
//!   often while the task table holds a handful of rows. SQLite plans by those figures: at
//!   50,000 rows, every fetch, lock and acknowledgement of a task still read the whole table.
//!   We run the engine's migrations without it and write fixed statistics that describe a
//!   large table (SQLite documents writing `sqlite_stat1` by hand to pin its plans): every
//!   statement of the engine and ours then finds its rows through an index, at any size.
//! - Its acknowledgement finds its tasks through `lock_by`, and a finished task kept its
//!   worker's name there, so each acknowledgement read every task the worker had finished. A
//!   trigger unlocks tasks as they finish; nothing reads `lock_by` of a finished task (fetches
//!   and re-queues look at unfinished ones only).

use apalis_sqlite::{SqlitePool, SqliteStorage};

use crate::{Error, Result};

/// Runs the engine's migrations and adds the trigger unlocking finished tasks.
pub(crate) async fn set_up_engine(pool: &SqlitePool) -> Result<()> {
    SqliteStorage::<()>::migrations()
        .run(pool)
        .await
        .map_err(|e| Error::Database(format!("cannot set up the queue: {e}")))?;
    let unlocking: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'trigger' AND name = ?",
    )
    .bind(UNLOCK_TRIGGER)
    .fetch_one(pool)
    .await?;
    if unlocking == 0 {
        sqlx::raw_sql(UNLOCK_FINISHED_TASKS).execute(pool).await?;
    }
    Ok(())
}

const UNLOCK_TRIGGER: &str = "report_runner_unlock_finished_tasks";

/// The trigger, and the finished tasks an older version left locked, unlocked once.
const UNLOCK_FINISHED_TASKS: &str = "
BEGIN;
CREATE TRIGGER IF NOT EXISTS report_runner_unlock_finished_tasks
AFTER UPDATE OF status ON Jobs
WHEN NEW.lock_by IS NOT NULL AND (NEW.status IN ('Done', 'Killed')
    OR (NEW.status = 'Failed' AND NEW.attempts >= NEW.max_attempts))
BEGIN
    UPDATE Jobs SET lock_by = NULL WHERE ROWID = NEW.ROWID;
END;
UPDATE Jobs SET lock_by = NULL
WHERE status IN ('Done', 'Killed') AND lock_by IS NOT NULL;
COMMIT;
";

/// Replaces whatever statistics the planner has for the task and job tables with fixed ones
/// (a connection reads them when it first opens: the caller's other connections open later).
/// Writes nothing when they are already in place: every `reports` command opens the database,
/// and a write there would wait behind the workers' writes, and theirs behind it.
pub(crate) async fn fix_planner_statistics(pool: &SqlitePool) -> Result<()> {
    if statistics_are_fixed(pool).await? {
        return Ok(());
    }
    // Creates `sqlite_stat1` if it is missing, and reads nothing else.
    sqlx::raw_sql("ANALYZE sqlite_schema").execute(pool).await?;
    let mut tx = crate::transaction::begin(pool).await?;
    sqlx::raw_sql("DELETE FROM sqlite_stat1 WHERE tbl IN ('Jobs', 'report_jobs')")
        .execute(&mut *tx)
        .await?;
    let stat4: i64 = sqlx::query_scalar(
        "SELECT COUNT(*) FROM sqlite_master WHERE type = 'table' AND name = 'sqlite_stat4'",
    )
    .fetch_one(&mut *tx)
    .await?;
    if stat4 > 0 {
        sqlx::raw_sql("DELETE FROM sqlite_stat4 WHERE tbl IN ('Jobs', 'report_jobs')")
            .execute(&mut *tx)
            .await?;
    }
    for (table, index, stat) in STATISTICS {
        sqlx::query("INSERT INTO sqlite_stat1 (tbl, idx, stat) VALUES (?, ?, ?)")
            .bind(table)
            .bind(index)
            .bind(stat)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Whether the planner's statistics for the task and job tables are exactly `STATISTICS`
/// (an `ANALYZE` since, or `sqlite_stat4` rows, would change its plans).
async fn statistics_are_fixed(pool: &SqlitePool) -> Result<bool> {
    let tables: Vec<String> = sqlx::query_scalar(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name IN ('sqlite_stat1', 'sqlite_stat4')",
    )
    .fetch_all(pool)
    .await?;
    if !tables.iter().any(|t| t == "sqlite_stat1") {
        return Ok(false);
    }
    if tables.iter().any(|t| t == "sqlite_stat4") {
        let stat4: i64 = sqlx::query_scalar(
            "SELECT COUNT(*) FROM sqlite_stat4 WHERE tbl IN ('Jobs', 'report_jobs')",
        )
        .fetch_one(pool)
        .await?;
        if stat4 > 0 {
            return Ok(false);
        }
    }
    let mut present: Vec<(String, Option<String>, String)> = sqlx::query_as(
        "SELECT tbl, idx, stat FROM sqlite_stat1 WHERE tbl IN ('Jobs', 'report_jobs')",
    )
    .fetch_all(pool)
    .await?;
    let mut wanted: Vec<(String, Option<String>, String)> = STATISTICS
        .iter()
        .map(|(table, index, stat)| {
            (
                table.to_string(),
                index.map(str::to_string),
                stat.to_string(),
            )
        })
        .collect();
    present.sort();
    wanted.sort();
    Ok(present == wanted)
}

/// Table, index, and "rows, then rows per distinct value of the index's leading columns":
/// a million tasks of which few are unfinished, each id and idempotency key unique, and a
/// hundred thousand jobs.
const STATISTICS: [(&str, Option<&str>, &str); 15] = [
    ("Jobs", None, "1000000"),
    ("Jobs", Some("sqlite_autoindex_Jobs_1"), "1000000 1"),
    ("Jobs", Some("LIdx"), "1000000 1000"),
    (
        "Jobs",
        Some("idx_jobs_job_type_status_run_at"),
        "1000000 100000 20000 1",
    ),
    ("Jobs", Some("idx_jobs_status_run_at"), "1000000 200000 1"),
    ("Jobs", Some("idx_jobs_idempotency_key"), "1000000 100000 1"),
    ("Jobs", Some("idx_jobs_pending"), "10000 1000 1000 10 1 1"),
    ("Jobs", Some("idx_jobs_failed"), "100 10 10 1 1 1"),
    ("Jobs", Some("idx_jobs_running"), "100 1"),
    (
        "Jobs",
        Some("idx_jobs_completed_done_at"),
        "1000000 300000 1 1",
    ),
    ("Jobs", Some("idx_jobs_claimable"), "10000 3000 1000"),
    (
        "report_jobs",
        Some("sqlite_autoindex_report_jobs_1"),
        "100000 1",
    ),
    ("report_jobs", Some("report_jobs_state"), "100000 20000"),
    ("report_jobs", Some("report_jobs_unique_key"), "100000 1"),
    ("report_jobs", Some("report_jobs_webhook"), "100000 1"),
];
