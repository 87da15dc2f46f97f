//! The webhook endpoint: each job gets its own unguessable URL to give a vendor that calls
//! back when a report is done (EvoVoice's `webhookUrl`); a call makes the job poll at once.
//!
//! - A call is a hint, never a status: it moves the job's next poll to now and that poll
//!   decides. The payload is not interpreted (its format is not public): bodies are read up
//!   to a bound and dropped.
//! - The URL is a capability: `<base>/<token>` with 256 random bits. The database keeps only
//!   the token's SHA-256 (a database dump holds no usable URL); logs name the job, never the
//!   token; `reports jobs --json` shows neither.
//! - An unknown token answers 404 and writes nothing. A job honours one call: repeated or
//!   later calls cost nothing, a call whose poll finds the report still pending spends it (the
//!   job then polls on its schedule), and a job whose call never comes finishes by polling.
//!   A call does not cut short a wait the vendor asked for (Retry-After) or the backoff after
//!   errors.
//! - Any worker process may serve the endpoint for every job in the database: the nudge is a
//!   change of the job's queued task in the database, so the worker holding the job need not
//!   be the one that was called.

use std::collections::HashSet;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri, header};
use chrono::Utc;
use rand::RngCore;
use report_core::WaitState;
use sha2::{Digest, Sha256};

use crate::store::{Db, Kind, QUEUE, Store, sql, step_key, with_db};
use crate::{Error, Result};

/// The most of a call's body read (and dropped).
const MAX_BODY: usize = 64 * 1024;
/// How long a call may take to send its body.
const BODY_TIMEOUT: Duration = Duration::from_secs(10);
/// Calls handled at once; more are answered 503 (the vendor retries, or the job polls).
const MAX_CALLS: usize = 64;
/// How long a request's headers may take to arrive.
const HEADER_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections open at once; more wait to be accepted.
const MAX_CONNECTIONS: usize = 256;
/// A call that found its job's step under way is applied to the next step: looked at this
/// often, for at most this long.
const RETRY_EVERY: Duration = Duration::from_millis(200);
const RETRY_FOR: Duration = Duration::from_secs(60);

/// A new webhook token: 256 random bits, as 64 lowercase hex digits.
pub(crate) fn new_token() -> String {
    let mut bytes = [0u8; 32];
    rand::rng().fill_bytes(&mut bytes);
    hex::encode(bytes)
}

/// What the database keeps of a token.
pub(crate) fn token_digest(token: &str) -> String {
    hex::encode(Sha256::digest(token.as_bytes()))
}

/// A job's webhook URL: the base, a slash, the token.
pub(crate) fn webhook_url(base: &url::Url, token: &str) -> String {
    format!("{}/{token}", base.as_str().trim_end_matches('/'))
}

fn is_token(text: &str) -> bool {
    text.len() == 64
        && text
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// What a webhook call did to its job.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Nudged {
    /// No job has this token.
    Unknown,
    /// The job's next poll was moved to now.
    Now { job: String },
    /// Nothing to do: the job is not waiting for its report, has had its call already, its
    /// next poll is due anyway, or the vendor asked it to wait.
    Ignored { job: String, why: &'static str },
    /// The job's step is under way (or its start): try again when it is done.
    Busy { job: String },
}

/// The job row a call looks at.
#[derive(sqlx::FromRow)]
struct Target {
    id: String,
    seq: i64,
    state: String,
    ticket: Option<String>,
    wait_state: Option<String>,
    nudged_at: Option<String>,
}

impl Store {
    /// Gives the job whose step `owner` holds a new webhook token (its digest replaces any
    /// earlier one, and the job may be nudged once again): done right before each start
    /// request, so the token the vendor gets is always the job's.
    pub(crate) async fn set_webhook(
        &self,
        id: &str,
        seq: i64,
        owner: &str,
        token: &str,
    ) -> Result<()> {
        let digest = token_digest(token);
        let n = with_db!(&self.db, pool, kind => {
            sqlx::query(sql(
                kind,
                "UPDATE report_jobs SET webhook_sha256 = ?, nudged_at = NULL
                 WHERE id = ? AND seq = ? AND lease_owner = ?",
            ))
            .bind(&digest)
            .bind(id)
            .bind(seq)
            .bind(owner)
            .execute(pool)
            .await?
            .rows_affected()
        });
        if n == 1 {
            Ok(())
        } else {
            Err(Error::LeaseLost(id.to_string()))
        }
    }

    /// A webhook call with `token`: moves the job's next poll to now if it is waiting for its
    /// report and has not been nudged before. One transaction; nothing is written unless the
    /// job is nudged.
    pub async fn nudge_webhook(&self, token: &str) -> Result<Nudged> {
        if !is_token(token) {
            return Ok(Nudged::Unknown);
        }
        let digest = token_digest(token);
        let now = Utc::now();
        let select = "SELECT id, seq, state, ticket, wait_state, nudged_at FROM report_jobs
                      WHERE webhook_sha256 = ?";
        let mark = "UPDATE report_jobs SET nudged_at = ?
                    WHERE id = ? AND seq = ? AND state = 'running' AND nudged_at IS NULL";
        match &self.db {
            Db::Sqlite(pool) => {
                let Some(target) = sqlx::query_as::<_, Target>(select)
                    .bind(&digest)
                    .fetch_optional(pool)
                    .await?
                else {
                    return Ok(Nudged::Unknown);
                };
                if let Some(outcome) = target.not_nudgeable() {
                    return Ok(outcome);
                }
                // Writes first, so the transaction takes SQLite's write lock at once (a read
                // turned write could fail on a busy database); the step is checked again.
                let mut tx = crate::transaction::begin(pool).await?;
                let marked = sqlx::query(mark)
                    .bind(now.to_rfc3339())
                    .bind(&target.id)
                    .bind(target.seq)
                    .execute(&mut *tx)
                    .await?
                    .rows_affected();
                if marked != 1 {
                    return Ok(target.ignored("the job moved on"));
                }
                let key = step_key(&target.id, target.seq);
                let moved = sqlx::query(
                    "UPDATE Jobs SET run_at = ?
                     WHERE job_type = ? AND idempotency_key = ? AND status = 'Pending'
                         AND run_at > ?",
                )
                .bind(now.timestamp())
                .bind(QUEUE)
                .bind(&key)
                .bind(now.timestamp())
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if moved == 0 {
                    let due: Option<i64> = sqlx::query_scalar(
                        "SELECT run_at FROM Jobs
                         WHERE job_type = ? AND idempotency_key = ? AND status = 'Pending'",
                    )
                    .bind(QUEUE)
                    .bind(&key)
                    .fetch_optional(&mut *tx)
                    .await?;
                    // Dropped without a commit: nothing written.
                    return Ok(target.unmoved(due.is_some()));
                }
                tx.commit().await?;
                Ok(Nudged::Now { job: target.id })
            }
            #[cfg(feature = "postgres")]
            Db::Postgres(pool) => {
                let mut tx = crate::transaction::begin(pool).await?;
                // Locks the job's row: two calls at once nudge once.
                let Some(target) = sqlx::query_as::<_, Target>(
                    "SELECT id, seq, state, ticket, wait_state, nudged_at FROM report_jobs
                     WHERE webhook_sha256 = $1 FOR UPDATE",
                )
                .bind(&digest)
                .fetch_optional(&mut *tx)
                .await?
                else {
                    return Ok(Nudged::Unknown);
                };
                if let Some(outcome) = target.not_nudgeable() {
                    return Ok(outcome);
                }
                let key = step_key(&target.id, target.seq);
                let moved = sqlx::query(
                    "UPDATE apalis.jobs SET run_at = now()
                     WHERE job_type = $1 AND idempotency_key = $2 AND status = 'Pending'
                         AND run_at > now()",
                )
                .bind(QUEUE)
                .bind(&key)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if moved == 0 {
                    let due: Option<i32> = sqlx::query_scalar(
                        "SELECT 1 FROM apalis.jobs
                         WHERE job_type = $1 AND idempotency_key = $2 AND status = 'Pending'",
                    )
                    .bind(QUEUE)
                    .bind(&key)
                    .fetch_optional(&mut *tx)
                    .await?;
                    return Ok(target.unmoved(due.is_some()));
                }
                let marked = sqlx::query(
                    "UPDATE report_jobs SET nudged_at = $1
                     WHERE id = $2 AND seq = $3 AND state = 'running' AND nudged_at IS NULL",
                )
                .bind(now.to_rfc3339())
                .bind(&target.id)
                .bind(target.seq)
                .execute(&mut *tx)
                .await?
                .rows_affected();
                if marked != 1 {
                    return Ok(target.ignored("the job moved on"));
                }
                tx.commit().await?;
                Ok(Nudged::Now { job: target.id })
            }
        }
    }
}

impl Target {
    fn ignored(&self, why: &'static str) -> Nudged {
        Nudged::Ignored {
            job: self.id.clone(),
            why,
        }
    }

    /// Why the job takes no nudge now, if it does not.
    fn not_nudgeable(&self) -> Option<Nudged> {
        if self.state != "running" {
            return Some(self.ignored("the job is not waiting for its report"));
        }
        if self.nudged_at.is_some() {
            return Some(self.ignored("the job has had its call"));
        }
        if self.ticket.is_none() {
            // Being started: its first poll is not queued yet.
            return Some(Nudged::Busy {
                job: self.id.clone(),
            });
        }
        // A wait the vendor asked for, or the backoff after errors, is kept.
        let wait: Option<WaitState> = self
            .wait_state
            .as_deref()
            .and_then(|w| serde_json::from_str(w).ok());
        if let Some(wait) = wait
            && (wait.failures > 0
                || wait
                    .last_progress
                    .as_ref()
                    .is_some_and(|p| p.retry_after.is_some()))
        {
            return Some(self.ignored("the vendor asked the job to wait"));
        }
        None
    }

    /// The step's task was not moved: it is due anyway (`pending`), or being carried out.
    fn unmoved(&self, pending: bool) -> Nudged {
        if pending {
            self.ignored("its next poll is due anyway")
        } else {
            Nudged::Busy {
                job: self.id.clone(),
            }
        }
    }
}

/// The endpoint's state.
struct Endpoint {
    store: Store,
    calls: tokio::sync::Semaphore,
    /// Jobs whose call waits for their step to end (one retry loop per job).
    retrying: Mutex<HashSet<String>>,
}

/// Serves the webhook endpoint on `listener` until the future is dropped: `POST` to any path
/// whose last segment is a job's token (so a proxy may keep or strip a prefix). Answers 202
/// to a known token, 404 to any other, 405 to other methods, 503 when the database fails or
/// too many calls are under way.
pub async fn serve_webhooks(
    listener: tokio::net::TcpListener,
    store: Store,
) -> std::io::Result<()> {
    let endpoint = Arc::new(Endpoint {
        store,
        calls: tokio::sync::Semaphore::new(MAX_CALLS),
        retrying: Mutex::new(HashSet::new()),
    });
    let app = axum::Router::new().fallback(call).with_state(endpoint);
    serve(listener, app, HEADER_TIMEOUT).await
}

/// Serves `app` on `listener`, each connection on a task of its own: at most
/// [`MAX_CONNECTIONS`] at once, each closed if a request's headers take longer than
/// `header_timeout` to arrive (a caller sending them slowly would otherwise hold its
/// connection for ever).
async fn serve(
    listener: tokio::net::TcpListener,
    app: axum::Router,
    header_timeout: Duration,
) -> std::io::Result<()> {
    let connections = Arc::new(tokio::sync::Semaphore::new(MAX_CONNECTIONS));
    loop {
        let permit = Arc::clone(&connections)
            .acquire_owned()
            .await
            .expect("the semaphore is never closed");
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            // Out of file descriptors, a connection reset before it was accepted: the
            // endpoint goes on.
            Err(e) => {
                tracing::warn!(error = %e, "a webhook connection was not accepted");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let service = hyper_util::service::TowerToHyperService::new(app.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let served = hyper::server::conn::http1::Builder::new()
                .timer(hyper_util::rt::TokioTimer::new())
                .header_read_timeout(header_timeout)
                .serve_connection(hyper_util::rt::TokioIo::new(stream), service)
                .await;
            if let Err(e) = served {
                tracing::debug!(error = %e, "a webhook connection ended with an error");
            }
        });
    }
}

async fn call(
    State(endpoint): State<Arc<Endpoint>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> StatusCode {
    if method != Method::POST {
        return StatusCode::METHOD_NOT_ALLOWED;
    }
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|n| n > MAX_BODY as u64) {
        return StatusCode::PAYLOAD_TOO_LARGE;
    }
    let Ok(_slot) = endpoint.calls.try_acquire() else {
        return StatusCode::SERVICE_UNAVAILABLE;
    };
    let token = uri
        .path()
        .trim_end_matches('/')
        .rsplit('/')
        .next()
        .unwrap_or_default()
        .to_string();
    // The body is read (bounded in size and time) and dropped: only the call counts.
    match tokio::time::timeout(BODY_TIMEOUT, axum::body::to_bytes(body, MAX_BODY)).await {
        Ok(Ok(_)) => {}
        Ok(Err(_)) => return StatusCode::PAYLOAD_TOO_LARGE,
        Err(_) => return StatusCode::REQUEST_TIMEOUT,
    }
    match endpoint.store.nudge_webhook(&token).await {
        Ok(Nudged::Unknown) => StatusCode::NOT_FOUND,
        Ok(Nudged::Now { job }) => {
            tracing::info!(%job, "a webhook call moved the job's next poll to now");
            StatusCode::ACCEPTED
        }
        Ok(Nudged::Ignored { job, why }) => {
            tracing::debug!(%job, why, "a webhook call changed nothing");
            StatusCode::ACCEPTED
        }
        Ok(Nudged::Busy { job }) => {
            retry_later(endpoint.clone(), job, token);
            StatusCode::ACCEPTED
        }
        Err(e) => {
            tracing::warn!(error = %e, "a webhook call could not be looked up");
            StatusCode::SERVICE_UNAVAILABLE
        }
    }
}

/// Applies a call whose job was in the middle of a step once the step is done (its next
/// poll is then queued), at most once per job at a time in this process.
fn retry_later(endpoint: Arc<Endpoint>, job: String, token: String) {
    {
        let mut retrying = endpoint.retrying.lock().unwrap_or_else(|e| e.into_inner());
        if !retrying.insert(job.clone()) {
            return;
        }
    }
    tokio::spawn(async move {
        let began = tokio::time::Instant::now();
        while began.elapsed() < RETRY_FOR {
            tokio::time::sleep(RETRY_EVERY).await;
            match endpoint.store.nudge_webhook(&token).await {
                Ok(Nudged::Busy { .. }) | Err(_) => continue,
                Ok(Nudged::Now { job }) => {
                    tracing::info!(%job, "a webhook call moved the job's next poll to now");
                    break;
                }
                Ok(_) => break,
            }
        }
        let mut retrying = endpoint.retrying.lock().unwrap_or_else(|e| e.into_inner());
        retrying.remove(&job);
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_are_256_random_bits_and_only_their_digest_is_kept() {
        let a = new_token();
        let b = new_token();
        assert!(is_token(&a) && is_token(&b));
        assert_ne!(a, b);
        assert_ne!(token_digest(&a), a);
        assert_eq!(token_digest(&a), token_digest(&a));
        assert!(!is_token("not-a-token"));
        assert!(!is_token(&a.to_uppercase()));
        let base = url::Url::parse("https://hooks.example.com/reports/").unwrap();
        assert_eq!(
            webhook_url(&base, &a),
            format!("https://hooks.example.com/reports/{a}")
        );
    }

    #[tokio::test]
    async fn a_caller_sending_its_headers_too_slowly_is_cut_off() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let app = axum::Router::new().fallback(|| async { StatusCode::ACCEPTED });
        let server = tokio::spawn(serve(listener, app, Duration::from_millis(300)));

        // A whole request is answered.
        let mut whole = tokio::net::TcpStream::connect(addr).await.unwrap();
        whole
            .write_all(
                b"POST /t HTTP/1.1\r\nhost: a\r\ncontent-length: 0\r\nconnection: close\r\n\r\n",
            )
            .await
            .unwrap();
        let mut answer = String::new();
        whole.read_to_string(&mut answer).await.unwrap();
        assert!(answer.starts_with("HTTP/1.1 202"), "{answer}");

        // Headers that never end: the connection is closed once the timeout has passed.
        let mut slow = tokio::net::TcpStream::connect(addr).await.unwrap();
        let began = std::time::Instant::now();
        slow.write_all(b"POST /t HTTP/1.1\r\nhost: a\r\n")
            .await
            .unwrap();
        let mut rest = Vec::new();
        let read = tokio::time::timeout(Duration::from_secs(5), slow.read_to_end(&mut rest)).await;
        assert!(read.is_ok(), "the connection is still open after 5 s");
        assert!(began.elapsed() >= Duration::from_millis(300));
        server.abort();
    }
}
