//! A connection's [`Limits`] held across every worker on one database (SQLite or PostgreSQL),
//! not just within one process: a concurrency limit is a set of numbered slots in
//! `report_slots`, each taken with an expiry and renewed while its operation runs, so a killed
//! worker's slot frees itself; the rate is a row per operation begun in `report_rate`, counted
//! over the last minute before a new one is admitted. Times are the workers' clocks (ms):
//! keep them in sync (NTP) as for any fleet.

use std::time::Duration;

use chrono::Utc;

use crate::Result;
use crate::limits::{Access, Limits};
use crate::store::{Db, Kind, Store, sql, with_db};

/// How long a slot stays taken without renewal: a killed worker's slots free after this.
const SLOT_TTL: Duration = Duration::from_secs(30);
/// The rate's window.
const WINDOW: Duration = Duration::from_secs(60);

fn access_name(access: Access) -> &'static str {
    match access {
        Access::Write => "write",
        Access::Read => "read",
    }
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// One taken slot; renewed while held, freed when dropped.
#[derive(Debug)]
pub(crate) struct Slot {
    store: Store,
    key: SlotKey,
    renewal: tokio::task::JoinHandle<()>,
}

#[derive(Clone, Debug)]
struct SlotKey {
    vendor: String,
    connection: String,
    access: &'static str,
    slot: i64,
    holder: String,
}

impl Drop for Slot {
    fn drop(&mut self) {
        self.renewal.abort();
        let (store, key) = (self.store.clone(), self.key.clone());
        // Freed at once for the others; if this fails (or the process ends first) the slot
        // frees itself when it expires.
        if let Ok(runtime) = tokio::runtime::Handle::try_current() {
            runtime.spawn(async move {
                if let Err(e) = store.free_slot(&key).await {
                    tracing::debug!(error = %e, "slot left to expire");
                }
            });
        }
    }
}

/// Waits for a slot of `access` under `limits` (if it has such a limit) and for room in the
/// rate window, across every worker on `store`. A database error lets the operation go (the
/// step itself then meets the same database), logged.
pub(crate) async fn enter(
    store: &Store,
    vendor: &str,
    connection: &str,
    access: Access,
    limits: Limits,
) -> Option<Slot> {
    let limit = match access {
        Access::Write => limits.writes,
        Access::Read => limits.reads,
    };
    let slot = match limit {
        Some(limit) => take(store, vendor, connection, access, limit.max(1)).await,
        None => None,
    };
    if let Some(per_minute) = limits.per_minute {
        begin(store, vendor, connection, per_minute.max(1), WINDOW).await;
    }
    slot
}

async fn take(
    store: &Store,
    vendor: &str,
    connection: &str,
    access: Access,
    limit: usize,
) -> Option<Slot> {
    let holder = uuid::Uuid::new_v4().to_string();
    let mut pause = Duration::from_millis(20);
    loop {
        match store
            .take_slot(vendor, connection, access, limit, &holder, SLOT_TTL)
            .await
        {
            Ok(Some(key)) => {
                let renewal = tokio::spawn(renew_forever(store.clone(), key.clone()));
                return Some(Slot {
                    store: store.clone(),
                    key,
                    renewal,
                });
            }
            Ok(None) => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(Duration::from_millis(250));
            }
            Err(e) => {
                tracing::warn!(error = %e, vendor, connection, "shared limit unavailable; going on");
                return None;
            }
        }
    }
}

async fn renew_forever(store: Store, key: SlotKey) {
    loop {
        tokio::time::sleep(SLOT_TTL / 3).await;
        if let Err(e) = store.renew_slot(&key, SLOT_TTL).await {
            tracing::warn!(error = %e, "slot not renewed");
        }
    }
}

/// Waits until an operation may begin under `per_window` per `window`, and counts it.
async fn begin(store: &Store, vendor: &str, connection: &str, per_window: u32, window: Duration) {
    loop {
        match store
            .try_begin(vendor, connection, per_window, window)
            .await
        {
            Ok(None) => return,
            Ok(Some(wait)) => tokio::time::sleep(wait).await,
            Err(e) => {
                tracing::warn!(error = %e, vendor, connection, "shared rate unavailable; going on");
                return;
            }
        }
    }
}

impl Store {
    /// Takes a free or expired slot of `limit` for `holder` until now + `ttl`; `None` if all
    /// are held.
    async fn take_slot(
        &self,
        vendor: &str,
        connection: &str,
        access: Access,
        limit: usize,
        holder: &str,
        ttl: Duration,
    ) -> Result<Option<SlotKey>> {
        let access = access_name(access);
        let now = Utc::now().timestamp_millis();
        let held: Vec<i64> = with_db!(&self.db, pool, kind => {
            sqlx::query_scalar(sql(
                kind,
                "SELECT slot FROM report_slots
                 WHERE vendor = ? AND connection = ? AND access = ? AND expires_at >= ?",
            ))
            .bind(vendor)
            .bind(connection)
            .bind(access)
            .bind(now)
            .fetch_all(pool)
            .await?
        });
        for slot in (0..limit as i64).filter(|s| !held.contains(s)) {
            // One statement: of two workers racing for a slot, one gets it.
            let taken = with_db!(&self.db, pool, kind => {
                sqlx::query(sql(
                    kind,
                    "INSERT INTO report_slots (vendor, connection, access, slot, holder, expires_at)
                     VALUES (?, ?, ?, ?, ?, ?)
                     ON CONFLICT (vendor, connection, access, slot) DO UPDATE
                         SET holder = excluded.holder, expires_at = excluded.expires_at
                         WHERE report_slots.expires_at < ?",
                ))
                .bind(vendor)
                .bind(connection)
                .bind(access)
                .bind(slot)
                .bind(holder)
                .bind(now + millis(ttl))
                .bind(now)
                .execute(pool)
                .await?
                .rows_affected()
                    == 1
            });
            if taken {
                return Ok(Some(SlotKey {
                    vendor: vendor.to_string(),
                    connection: connection.to_string(),
                    access,
                    slot,
                    holder: holder.to_string(),
                }));
            }
        }
        Ok(None)
    }

    async fn renew_slot(&self, key: &SlotKey, ttl: Duration) -> Result<()> {
        let until = Utc::now().timestamp_millis() + millis(ttl);
        self.update_slot(key, until).await
    }

    async fn free_slot(&self, key: &SlotKey) -> Result<()> {
        self.update_slot(key, 0).await
    }

    async fn update_slot(&self, key: &SlotKey, expires_at: i64) -> Result<()> {
        with_db!(&self.db, pool, kind => {
            sqlx::query(sql(
                kind,
                "UPDATE report_slots SET expires_at = ?
                 WHERE vendor = ? AND connection = ? AND access = ? AND slot = ? AND holder = ?",
            ))
            .bind(expires_at)
            .bind(&key.vendor)
            .bind(&key.connection)
            .bind(key.access)
            .bind(key.slot)
            .bind(&key.holder)
            .execute(pool)
            .await?;
        });
        Ok(())
    }

    /// Counts an operation beginning now if fewer than `per_window` began in the last
    /// `window` (`None`); else how long to wait before asking again.
    async fn try_begin(
        &self,
        vendor: &str,
        connection: &str,
        per_window: u32,
        window: Duration,
    ) -> Result<Option<Duration>> {
        let now = Utc::now().timestamp_millis();
        let since = now - millis(window);
        let wait = with_db!(&self.db, pool, kind => {
            let mut tx = crate::transaction::begin(pool).await?;
            // SQLite runs one write at a time; on PostgreSQL two workers could both count
            // room for one more: they queue on a lock per connection instead.
            if kind.is_postgres() {
                sqlx::query("SELECT pg_advisory_xact_lock(hashtext($1))")
                    .bind(format!("rate/{vendor}/{connection}"))
                    .execute(&mut *tx)
                    .await?;
            }
            let admitted = sqlx::query(sql(
                kind,
                "INSERT INTO report_rate (id, vendor, connection, began_at)
                 SELECT ?, ?, ?, ?
                 WHERE (SELECT COUNT(*) FROM report_rate
                        WHERE vendor = ? AND connection = ? AND began_at > ?) < ?",
            ))
            .bind(uuid::Uuid::new_v4().to_string())
            .bind(vendor)
            .bind(connection)
            .bind(now)
            .bind(vendor)
            .bind(connection)
            .bind(since)
            .bind(i64::from(per_window))
            .execute(&mut *tx)
            .await?
            .rows_affected()
                == 1;
            let wait = if admitted {
                sqlx::query(sql(
                    kind,
                    "DELETE FROM report_rate WHERE vendor = ? AND connection = ? AND began_at <= ?",
                ))
                .bind(vendor)
                .bind(connection)
                .bind(since)
                .execute(&mut *tx)
                .await?;
                None
            } else {
                // Room comes when the oldest operation in the window leaves it.
                let oldest: Option<i64> = sqlx::query_scalar(sql(
                    kind,
                    "SELECT MIN(began_at) FROM report_rate
                     WHERE vendor = ? AND connection = ? AND began_at > ?",
                ))
                .bind(vendor)
                .bind(connection)
                .bind(since)
                .fetch_one(&mut *tx)
                .await?;
                let at = oldest.unwrap_or(now) + millis(window);
                Some(Duration::from_millis((at - now).clamp(10, millis(window)) as u64))
            };
            tx.commit().await?;
            wait
        });
        Ok(wait)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;
    use std::sync::atomic::{AtomicUsize, Ordering};

    /// Two stores on one SQLite file: two worker processes' views of one database.
    async fn two_stores() -> (tempfile::TempDir, Store, Store) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("jobs.sqlite").display().to_string();
        let a = Store::open(&path).await.unwrap();
        let b = Store::open(&path).await.unwrap();
        (dir, a, b)
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn slots_hold_across_two_stores_on_one_database() {
        let (_dir, a, b) = two_stores().await;
        let limits = Limits {
            writes: Some(3),
            ..Limits::default()
        };
        let now = Arc::new(AtomicUsize::new(0));
        let most = Arc::new(AtomicUsize::new(0));
        let tasks: Vec<_> = (0..12)
            .map(|i| {
                let store = if i % 2 == 0 { a.clone() } else { b.clone() };
                let (now, most) = (now.clone(), most.clone());
                tokio::spawn(async move {
                    let _slot = enter(&store, "v", "c", Access::Write, limits).await;
                    most.fetch_max(now.fetch_add(1, Ordering::SeqCst) + 1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                })
            })
            .collect();
        for t in tasks {
            t.await.unwrap();
        }
        assert_eq!(most.load(Ordering::SeqCst), 3);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_dead_holders_slot_expires() {
        let (_dir, a, b) = two_stores().await;
        let ttl = Duration::from_millis(300);
        // Taken and never freed: its holder was killed.
        let taken = a.take_slot("v", "c", Access::Read, 1, "dead", ttl).await;
        assert!(taken.unwrap().is_some());
        let again = b.take_slot("v", "c", Access::Read, 1, "alive", ttl).await;
        assert!(again.unwrap().is_none(), "held until it expires");
        tokio::time::sleep(ttl + Duration::from_millis(50)).await;
        let after = b.take_slot("v", "c", Access::Read, 1, "alive", ttl).await;
        assert!(after.unwrap().is_some(), "free once expired");
        // Reads and writes, connections and vendors have their own slots.
        let write = a.take_slot("v", "c", Access::Write, 1, "w", ttl).await;
        let other = a.take_slot("v", "d", Access::Read, 1, "o", ttl).await;
        assert!(write.unwrap().is_some() && other.unwrap().is_some());
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn the_rate_holds_across_two_stores_on_one_database() {
        let (_dir, a, b) = two_stores().await;
        let window = Duration::from_secs(2);
        let mut admitted = 0;
        let mut waits = Vec::new();
        for i in 0..12 {
            let store = if i % 2 == 0 { &a } else { &b };
            match store.try_begin("v", "c", 5, window).await.unwrap() {
                None => admitted += 1,
                Some(wait) => waits.push(wait),
            }
        }
        assert_eq!(admitted, 5, "five in the window, whichever store asks");
        assert!(
            waits.iter().all(|w| *w <= window && *w > window / 2),
            "{waits:?}"
        );
        // Another connection has its own allowance.
        assert_eq!(b.try_begin("v", "d", 5, window).await.unwrap(), None);
        tokio::time::sleep(window + Duration::from_millis(50)).await;
        assert_eq!(a.try_begin("v", "c", 5, window).await.unwrap(), None);
    }
}
