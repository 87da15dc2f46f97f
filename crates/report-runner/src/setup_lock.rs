//! One process at a time sets a SQLite job database up. The engine's migrations (sqlx) take no
//! lock on SQLite, so two first opens at once — cron jobs that `submit` in parallel, two
//! workers started together — fail half-way ("duplicate column name", "UNIQUE constraint
//! failed: _sqlx_migrations.version"). PostgreSQL needs none of this: sqlx migrates it under an
//! advisory lock.

use std::fs::{File, OpenOptions, TryLockError};
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::Error;

/// How long an open waits for another process's setup before it gives up.
const WAIT: Duration = Duration::from_secs(60);

/// Held while the database is set up; dropping it (closing the file) releases the lock.
pub(crate) struct SetupLock(#[allow(dead_code)] Option<File>);

impl SetupLock {
    /// Locks `<database>-lock` beside the database file (a lock file of its own, never the
    /// database: SQLite's own locks must stay untouched). An in-memory database needs none.
    pub(crate) async fn acquire(database: &Path) -> Result<SetupLock, Error> {
        let name = database.as_os_str();
        if name.is_empty() || name == ":memory:" {
            return Ok(SetupLock(None));
        }
        let path = lock_path(database);
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(&path)
            .map_err(|e| {
                Error::Database(format!("cannot open the database: {}: {e}", path.display()))
            })?;
        let waited_since = std::time::Instant::now();
        loop {
            match file.try_lock() {
                Ok(()) => return Ok(SetupLock(Some(file))),
                Err(TryLockError::WouldBlock) if waited_since.elapsed() < WAIT => {
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
                Err(TryLockError::WouldBlock) => {
                    return Err(Error::Database(format!(
                        "another process has been setting the database up for {}s (lock {})",
                        WAIT.as_secs(),
                        path.display()
                    )));
                }
                Err(TryLockError::Error(e)) => {
                    return Err(Error::Database(format!(
                        "cannot lock {}: {e}",
                        path.display()
                    )));
                }
            }
        }
    }
}

fn lock_path(database: &Path) -> PathBuf {
    let mut name = database.as_os_str().to_owned();
    name.push("-lock");
    PathBuf::from(name)
}
