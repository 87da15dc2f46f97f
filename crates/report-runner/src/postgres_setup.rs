//! Setting up a PostgreSQL job database: the engine's migrations, our tables, and a trigger
//! that keeps the engine's acknowledgements cheap however long the queue runs.
//!
//! The engine's acknowledgement (`handle_result.sql`) and its heartbeat (`keep_alive.sql`) find
//! a worker's tasks through `lock_by`, and a finished task kept its worker's name there: each
//! of them read every task the worker had ever finished (`pg_stat_user_indexes` after 2,000
//! jobs: 1,098 scans of `idx_apalis_jobs_lock_by` reading 5.1 million entries). As on SQLite
//! (`sqlite_setup.rs`), a trigger unlocks tasks as they finish; nothing reads `lock_by` of a
//! finished task (fetches and re-queues look at unfinished ones only).

use std::time::Duration;

use sqlx::PgPool;
use sqlx::postgres::{PgConnectOptions, PgPoolOptions};

use crate::{Error, Result};

/// What the store's sessions are called in the server's `pg_stat_activity` unless the URL
/// names them (`application_name`); the engine's are called the same plus " engine".
pub(crate) const APPLICATION_NAME: &str = "report-runner";

/// A pool of at most `max` connections.
pub(crate) async fn connect(options: PgConnectOptions, max: u32) -> Result<PgPool> {
    PgPoolOptions::new()
        .max_connections(max)
        .acquire_timeout(Duration::from_secs(10))
        // No ping before each statement (a round trip to the server for every one, about a
        // third of them): a connection the server cut fails its next statement instead, which
        // the worker survives like any database error (the step is delivered again), and the
        // pool replaces it.
        .test_before_acquire(false)
        // The server ends a session left idle inside a transaction for a minute: ours last
        // milliseconds, and one left open (see `transaction.rs`) would hold its locks for ever.
        .after_connect(|conn, _| {
            Box::pin(async move {
                sqlx::Executor::execute(conn, "SET idle_in_transaction_session_timeout = '60s'")
                    .await?;
                Ok(())
            })
        })
        .connect_with(options)
        .await
        .map_err(|e| Error::Database(format!("cannot open the database: {e}")))
}

/// The job engine's own pool for one run of it, beside the store's `pool`: the engine's code
/// begins its transactions as sqlx does, so one of its futures dropped as the run ends can
/// leave a session inside a transaction (`transaction.rs`); closed with the run, that session
/// goes with it instead of reaching the store's writes.
pub(crate) async fn engine_pool(pool: &PgPool) -> Result<PgPool> {
    let options = (*pool.connect_options()).clone();
    let name = format!(
        "{} engine",
        options.get_application_name().unwrap_or(APPLICATION_NAME)
    );
    connect(options.application_name(&name), 8).await
}

/// Runs the engine's migrations, then creates our tables (`schema`) and the trigger, one
/// process at a time: two workers started together would race on the catalog.
pub(crate) async fn set_up(pool: &PgPool, schema: &str) -> Result<()> {
    // sqlx migrates under an advisory lock of its own.
    apalis_postgres::PostgresStorage::<()>::setup(pool)
        .await
        .map_err(|e| Error::Database(format!("cannot set up the queue: {e}")))?;
    // Nothing to create: opening a database in use then takes no lock on its tables
    // (`CREATE INDEX IF NOT EXISTS` locks its table against writes before it finds the index).
    if all_exist(pool, created_names(schema)).await? && unlocking_trigger_exists(pool).await? {
        return Ok(());
    }
    let mut tx = crate::transaction::begin(pool).await?;
    bound_lock_waits(&mut tx).await?;
    sqlx::query("SELECT pg_advisory_xact_lock($1)")
        .bind(SETUP_LOCK)
        .execute(&mut *tx)
        .await?;
    sqlx::raw_sql(sqlx::AssertSqlSafe(schema.to_string()))
        .execute(&mut *tx)
        .await?;
    if !unlocking_trigger_exists(&mut *tx).await? {
        sqlx::raw_sql(UNLOCK_FINISHED_TASKS)
            .execute(&mut *tx)
            .await?;
    }
    tx.commit().await?;
    Ok(())
}

/// Whether each of the tables and indexes `names` exists in the current schema.
async fn all_exist(pool: &PgPool, names: Vec<String>) -> Result<bool> {
    let all = sqlx::query_scalar(
        "SELECT NOT EXISTS (SELECT 1 FROM unnest($1::text[]) AS name
                            WHERE to_regclass(quote_ident(current_schema()) || '.' || name) IS NULL)",
    )
    .bind(names)
    .fetch_one(pool)
    .await?;
    Ok(all)
}

/// Whether the trigger that unlocks finished engine tasks is there.
async fn unlocking_trigger_exists<'e>(db: impl sqlx::PgExecutor<'e>) -> Result<bool> {
    let exists = sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_trigger
                        WHERE tgname = $1 AND tgrelid = 'apalis.jobs'::regclass)",
    )
    .bind(UNLOCK_TRIGGER)
    .fetch_one(db)
    .await?;
    Ok(exists)
}

/// The names of the tables and indexes `schema` creates (`CREATE … IF NOT EXISTS name`).
fn created_names(schema: &str) -> Vec<String> {
    schema
        .split("IF NOT EXISTS")
        .skip(1)
        .filter_map(|rest| rest.split_whitespace().next())
        .map(str::to_string)
        .collect()
}

/// Adds the `columns` of `report_jobs` an older version's database lacks, then the `index` on
/// them. Only what is missing is altered: `ALTER TABLE … IF NOT EXISTS` locks the table
/// against every worker even when there is nothing to add, and each command opens the
/// database.
pub(crate) async fn add_columns(
    pool: &PgPool,
    columns: &[(&str, &str)],
    index: &str,
) -> Result<()> {
    let present: Vec<String> = sqlx::query_scalar(
        "SELECT column_name::text FROM information_schema.columns
         WHERE table_schema = current_schema() AND table_name = 'report_jobs'",
    )
    .fetch_all(pool)
    .await?;
    let index_present = all_exist(pool, created_names(index)).await?;
    let missing: Vec<_> = columns
        .iter()
        .filter(|(column, _)| !present.iter().any(|p| p == column))
        .collect();
    if missing.is_empty() && index_present {
        return Ok(());
    }
    let mut tx = crate::transaction::begin(pool).await?;
    bound_lock_waits(&mut tx).await?;
    for (column, sql_type) in missing {
        sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
            "ALTER TABLE report_jobs ADD COLUMN IF NOT EXISTS {column} {sql_type}"
        )))
        .execute(&mut *tx)
        .await?;
    }
    sqlx::raw_sql(sqlx::AssertSqlSafe(index.to_string()))
        .execute(&mut *tx)
        .await?;
    tx.commit().await?;
    Ok(())
}

/// How long a set-up statement waits for a lock on our tables: a session elsewhere that holds
/// one and never ends (a stuck transaction) makes opening the database fail with an error
/// saying so, where it would wait for ever.
const LOCK_WAIT: &str = "30s";

async fn bound_lock_waits(tx: &mut sqlx::Transaction<'_, sqlx::Postgres>) -> Result<()> {
    sqlx::query(sqlx::AssertSqlSafe(format!(
        "SET LOCAL lock_timeout = '{LOCK_WAIT}'"
    )))
    .execute(&mut **tx)
    .await?;
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_table_and_index_of_the_schema_is_checked() {
        assert_eq!(
            created_names(crate::store::PG_SCHEMA),
            [
                "report_jobs",
                "report_jobs_state",
                "report_jobs_unique_key",
                "report_priors",
                "report_slots",
                "report_rate",
                "report_rate_at"
            ]
        );
    }
}
