//! Setting up a PostgreSQL job database: the engine's migrations, our tables, and a trigger
//! that keeps the engine's acknowledgements cheap however long the queue runs.
//!
//! The engine's acknowledgement (`handle_result.sql`) and its heartbeat (`keep_alive.sql`) find
//! a worker's tasks through `lock_by`, and a finished task kept its worker's name there: each
//! of them read every task the worker had ever finished (`pg_stat_user_indexes` after 2,000
//! jobs: 1,098 scans of `idx_apalis_jobs_lock_by` reading 5.1 million entries). As on SQLite
//! (`sqlite_setup.rs`), a trigger unlocks tasks as they finish; nothing reads `lock_by` of a
//! finished task (fetches and re-queues look at unfinished ones only).

use sqlx::PgPool;

use crate::{Error, Result};

/// Runs the engine's migrations, then creates our tables (`schema`) and the trigger, one
/// process at a time: two workers started together would race on the catalog.
pub(crate) async fn set_up(pool: &PgPool, schema: &str) -> Result<()> {
    // sqlx migrates under an advisory lock of its own.
    apalis_postgres::PostgresStorage::<()>::setup(pool)
        .await
        .map_err(|e| Error::Database(format!("cannot set up the queue: {e}")))?;
    let mut tx = pool.begin().await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SETUP_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(schema.to_string()))
        .execute(&mut *tx)
        .await?;
    let unlocking: bool = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_trigger
                        WHERE tgname = $1 AND tgrelid = 'apalis.jobs'::regclass)",
    )
    .bind(UNLOCK_TRIGGER)
    .fetch_one(&mut *tx)
    .await?;
    if !unlocking {
        sqlx::raw_sql(UNLOCK_FINISHED_TASKS)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// The advisory lock our set-up takes (any fixed number of our own; "reports" in ASCII).
const SETUP_LOCK: i64 = 0x0072_6570_6f72_7473;

const UNLOCK_TRIGGER: &str = "report_runner_unlock_finished_tasks";

/// The trigger (it clears `lock_by` in the row being written: no second update), and the
/// finished tasks an older version left locked, unlocked once.
const UNLOCK_FINISHED_TASKS: &str = "
CREATE OR REPLACE FUNCTION apalis.report_runner_unlock_finished_task() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
    NEW.lock_by := NULL;
    RETURN NEW;
END
$$;
CREATE TRIGGER report_runner_unlock_finished_tasks
BEFORE UPDATE OF status ON apalis.jobs
FOR EACH ROW
WHEN (NEW.lock_by IS NOT NULL AND (NEW.status IN ('Done', 'Killed')
    OR (NEW.status = 'Failed' AND NEW.attempts >= NEW.max_attempts)))
EXECUTE FUNCTION apalis.report_runner_unlock_finished_task();
UPDATE apalis.jobs SET lock_by = NULL
WHERE status IN ('Done', 'Killed') AND lock_by IS NOT NULL;
";
