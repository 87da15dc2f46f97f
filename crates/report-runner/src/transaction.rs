//! Transactions that a cancelled caller cannot leave open.
//!
//! sqlx 0.9's PostgreSQL driver counts a transaction as begun only once the server has answered
//! its `BEGIN`. A future dropped while that answer is on its way (a step cut at its lease or at
//! the stop grace, a timeout) leaves the session inside a transaction that nothing ends, and the
//! pool hands that connection to the next borrower: its writes stay uncommitted, invisible to
//! the other workers, and hold their locks (sqlx issue #4393, fixed after 0.9.0). Begun on a
//! task of its own, the `BEGIN` always completes; a caller gone by then drops a counted
//! transaction, which sqlx rolls back before the connection is used again.

use sqlx::{Database, Pool, Transaction};

use crate::{Error, Result};

/// Begins a transaction on `pool`; dropping this future at any point leaves no transaction
/// open on the server.
pub(crate) async fn begin<DB: Database>(pool: &Pool<DB>) -> Result<Transaction<'static, DB>> {
    let pool = pool.clone();
    tokio::spawn(async move { pool.begin().await })
        .await
        .map_err(|e| Error::Database(format!("beginning a transaction: {e}")))?
        .map_err(Error::from)
}
