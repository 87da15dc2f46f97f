//! Opening one job database from several processes at once: cron jobs that `submit` in
//! parallel, two workers started together, `reports jobs` next to a busy worker. None of them
//! may fail, and a new database is set up exactly once.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use report_runner::Store;

/// Each `Store::open` has its own connection pool, as a separate process would.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_new_database_opened_by_many_at_once_is_set_up_once() {
    for round in 0..6 {
        let dir = tempfile::tempdir().unwrap();
        let url = format!("sqlite:{}", dir.path().join("jobs.db").display());
        let opens = (0..6).map(|_| {
            let url = url.clone();
            tokio::spawn(async move { Store::open(&url).await.map(|_| ()) })
        });
        let mut failures = Vec::new();
        for open in futures::future::join_all(opens).await {
            if let Err(e) = open.unwrap() {
                failures.push(e.to_string());
            }
        }
        assert!(failures.is_empty(), "round {round}: {failures:?}");
        let store = Store::open(&url).await.unwrap();
        assert!(store.list().await.unwrap().is_empty());
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_in_constant_use_still_opens() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("sqlite:{}", dir.path().join("jobs.db").display());
    let busy = Store::open(&url).await.unwrap();
    let stop = Arc::new(AtomicBool::new(false));
    // A worker's stand-in: writes, back to back, until told to stop.
    let writer = tokio::spawn({
        let stop = stop.clone();
        async move {
            let mut n = 0u64;
            while !stop.load(Ordering::Relaxed) {
                let took = Duration::from_secs(n % 97 + 1);
                busy.learn_duration("v", &format!("k{}", n % 50), took, None)
                    .await
                    .unwrap();
                n += 1;
            }
            n
        }
    });
    let mut failures = Vec::new();
    for _ in 0..40 {
        match Store::open(&url).await {
            Ok(store) => {
                if let Err(e) = store.list().await {
                    failures.push(e.to_string());
                }
            }
            Err(e) => failures.push(e.to_string()),
        }
    }
    stop.store(true, Ordering::Relaxed);
    assert!(writer.await.unwrap() > 0);
    assert!(
        failures.is_empty(),
        "{} of 40 opens failed: {failures:?}",
        failures.len()
    );
}

/// `reports jobs` and `submit` open the database while workers write: an open of a database
/// already set up takes no write lock, so it neither waits behind a long write nor makes the
/// workers wait behind it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn opening_a_set_up_database_waits_for_no_writer() {
    use sqlx::Connection;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("jobs.db");
    let url = format!("sqlite:{}", path.display());
    drop(Store::open(&url).await.unwrap());
    // Another process's write transaction, held for the whole open.
    let mut writer = sqlx::sqlite::SqliteConnection::connect(&url).await.unwrap();
    sqlx::raw_sql("BEGIN IMMEDIATE")
        .execute(&mut writer)
        .await
        .unwrap();
    let opened = tokio::time::timeout(Duration::from_secs(10), Store::open(&url)).await;
    sqlx::raw_sql("ROLLBACK")
        .execute(&mut writer)
        .await
        .unwrap();
    let store = opened
        .expect("the open waited for the writer's lock")
        .unwrap();
    assert!(store.list().await.unwrap().is_empty());
}
