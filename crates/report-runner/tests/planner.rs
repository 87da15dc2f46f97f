//! The task table grows by a row a step; statements on it must find their rows through an
//! index at any size. SQLite plans by the statistics in `sqlite_stat1`: taken while the table
//! held a handful of rows (as the engine's `PRAGMA optimize` did), they made every fetch, lock
//! and acknowledgement of a task read the whole table.

use report_runner::{NewJob, Store};
use sqlx::SqlitePool;

/// How a fresh connection (as another process's) would run `sql`.
async fn plan(url: &str, sql: &str) -> Vec<String> {
    let side = SqlitePool::connect(url).await.unwrap();
    let rows: Vec<(i64, i64, i64, String)> =
        sqlx::query_as(sqlx::AssertSqlSafe(format!("EXPLAIN QUERY PLAN {sql}")))
            .fetch_all(&side)
            .await
            .unwrap();
    side.close().await;
    rows.into_iter().map(|r| r.3).collect()
}

/// The shapes of the engine's statements that take tasks by id: its lock and its
/// acknowledgement (a JSON array of ids), and our unlocking of a stopped worker's tasks.
const BY_ID: [&str; 3] = [
    "UPDATE Jobs SET status = 'Running', lock_by = 'w'
     WHERE id IN (SELECT value FROM json_each('[]'))
         AND (status = 'Queued' OR status = 'Pending'
             OR (status = 'Failed' AND attempts < max_attempts))",
    "WITH j AS (SELECT value ->> 'task_id' AS task_id FROM json_each('[]'))
     UPDATE Jobs SET status = 'Done' FROM j WHERE Jobs.id = j.task_id AND Jobs.lock_by = 'w'",
    "SELECT * FROM report_jobs WHERE id = 'x'",
];

#[tokio::test]
async fn statistics_of_a_tiny_table_are_replaced_when_the_database_is_opened() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("jobs.db").display());
    let store = Store::open(&url).await.unwrap();
    for n in 0..3 {
        store
            .submit(NewJob {
                vendor: "fake".into(),
                connection: "main".into(),
                request: serde_json::json!({ "n": n }),
                out: dir.path().join(format!("{n}.out")).display().to_string(),
            })
            .await
            .unwrap();
    }
    drop(store);

    // What the engine's `PRAGMA optimize` recorded on a database of a few rows.
    let side = SqlitePool::connect(&url).await.unwrap();
    sqlx::raw_sql("ANALYZE").execute(&side).await.unwrap();
    side.close().await;
    let stale = plan(&url, BY_ID[0]).await;
    assert!(
        stale.iter().any(|step| step == "SCAN Jobs"),
        "tiny statistics make the planner read the whole table: {stale:?}"
    );

    drop(Store::open(&url).await.unwrap());
    for sql in BY_ID {
        let plan = plan(&url, sql).await;
        assert!(
            plan.iter().all(|step| !step.starts_with("SCAN Jobs")
                && !step.starts_with("SCAN report_jobs")),
            "{sql}\nreads a whole table: {plan:?}"
        );
    }
}
