//! The job board (`reports worker --ui ADDR`, `reports jobs --ui ADDR`): one page of our own,
//! served from the binary with axum, and `GET /api/jobs`, the JSON it renders.
//!
//! Not apalis-board: it lists the engine's tasks (our steps' payloads), not our job records
//! (path, sha256, progress, error), and ships a 2 MB prebuilt WASM application.
//!
//! The page is read-only and shows no credential: a job's request, ticket and artifact URL are
//! left out of the JSON (none holds a secret, but none is needed to follow a job). Its script
//! sets every value as text, never as markup: a vendor's message is shown, never run.

use std::net::{IpAddr, SocketAddr};

use axum::Router;
use axum::extract::{Request, State};
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use chrono::{DateTime, Utc};
use report_runner::{JobRecord, Store};
use serde::Serialize;

use crate::failure::Failure;

/// The newest jobs the page lists; `counts` still covers all of them.
const SHOWN: usize = 500;

const PAGE: &str = include_str!("board/board.html");
const SCRIPT: &str = include_str!("board/board.js");
const STYLE: &str = include_str!("board/board.css");

/// Binds `addr` now (a bad address is a usage error before any job runs) and serves the board
/// on the current runtime until the process exits. Returns the bound address (port 0 picks one).
pub fn serve(addr: SocketAddr, store: Store) -> Result<SocketAddr, Failure> {
    let bind = |e: std::io::Error| Failure::Usage(format!("--ui {addr}: {e}"));
    let listener = std::net::TcpListener::bind(addr).map_err(bind)?;
    listener.set_nonblocking(true).map_err(bind)?;
    let bound = listener.local_addr().map_err(bind)?;
    let listener = tokio::net::TcpListener::from_std(listener).map_err(bind)?;
    tokio::spawn(async move {
        if let Err(e) = axum::serve(listener, router(store, bound)).await {
            tracing::error!(error = %e, "the job board stopped");
        }
    });
    Ok(bound)
}

fn router(store: Store, bound: SocketAddr) -> Router {
    Router::new()
        .route(
            "/",
            get(|| async { asset("text/html; charset=utf-8", PAGE) }),
        )
        .route(
            "/board.js",
            get(|| async { asset("text/javascript; charset=utf-8", SCRIPT) }),
        )
        .route(
            "/board.css",
            get(|| async { asset("text/css; charset=utf-8", STYLE) }),
        )
        .route("/api/jobs", get(jobs))
        .with_state(store)
        .layer(axum::middleware::from_fn(
            move |request: Request, next: Next| async move {
                if host_allowed(bound, request.headers().get(header::HOST)) {
                    next.run(request).await
                } else {
                    let text = "this board answers to localhost and loopback addresses only";
                    guarded(
                        "text/plain; charset=utf-8",
                        StatusCode::FORBIDDEN,
                        text.into(),
                    )
                }
            },
        ))
}

/// On a loopback address, only loopback names: a web page elsewhere whose own name it rebinds
/// to 127.0.0.1 (DNS rebinding) sends that name and is refused. Bound to a network address,
/// the board is reached by whatever name the operator gives it.
fn host_allowed(bound: SocketAddr, host: Option<&HeaderValue>) -> bool {
    if !bound.ip().is_loopback() {
        return true;
    }
    let Some(host) = host.and_then(|h| h.to_str().ok()) else {
        return false;
    };
    let name = match host.rsplit_once(':') {
        Some((name, port)) if !port.is_empty() && port.bytes().all(|b| b.is_ascii_digit()) => name,
        _ => host,
    };
    let name = name.trim_start_matches('[').trim_end_matches(']');
    name.eq_ignore_ascii_case("localhost")
        || name.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback())
}

/// Headers every answer carries: no inline or foreign script, style or connection may run
/// (defence in depth behind the page's text-only rendering), no framing, no caching.
fn guarded(content_type: &'static str, status: StatusCode, body: String) -> Response {
    (
        status,
        [
            (header::CONTENT_TYPE, content_type),
            (
                header::CONTENT_SECURITY_POLICY,
                "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; \
                 img-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
            ),
            (header::X_CONTENT_TYPE_OPTIONS, "nosniff"),
            (header::REFERRER_POLICY, "no-referrer"),
            (header::CACHE_CONTROL, "no-store"),
        ],
        body,
    )
        .into_response()
}

fn asset(content_type: &'static str, body: &'static str) -> Response {
    guarded(content_type, StatusCode::OK, body.to_string())
}

/// `GET /api/jobs`: the newest jobs, newest first, and the number in each state.
async fn jobs(State(store): State<Store>) -> Response {
    const JSON: &str = "application/json";
    match store.list().await {
        Ok(records) => {
            let board = Board::new(&records, Utc::now(), SHOWN);
            let body = serde_json::to_string(&board).expect("the board serializes");
            guarded(JSON, StatusCode::OK, body)
        }
        Err(e) => {
            let body = serde_json::json!({ "error": format!("job database: {e}") }).to_string();
            guarded(JSON, StatusCode::SERVICE_UNAVAILABLE, body)
        }
    }
}

/// What the page shows.
#[derive(Debug, Serialize)]
struct Board {
    generated_at: DateTime<Utc>,
    total: usize,
    /// Jobs in each state, over all jobs (not only those listed).
    counts: std::collections::BTreeMap<&'static str, usize>,
    jobs: Vec<BoardJob>,
}

impl Board {
    /// `records` oldest first, as `Store::list` gives them; the newest `shown` are listed.
    fn new(records: &[JobRecord], now: DateTime<Utc>, shown: usize) -> Board {
        let mut counts = std::collections::BTreeMap::new();
        for record in records {
            *counts.entry(record.state.as_str()).or_insert(0) += 1;
        }
        Board {
            generated_at: now,
            total: records.len(),
            counts,
            jobs: records
                .iter()
                .rev()
                .take(shown)
                .map(BoardJob::from)
                .collect(),
        }
    }
}

/// One row: the record's fields a person follows a job by. Deliberately not the request, the
/// ticket or the artifact.
#[derive(Debug, Serialize)]
struct BoardJob {
    id: String,
    vendor: String,
    connection: String,
    state: &'static str,
    cancel_requested: bool,
    progress: Option<f64>,
    message: Option<String>,
    polls: u32,
    retries: u32,
    created_at: DateTime<Utc>,
    started_at: Option<DateTime<Utc>>,
    finished_at: Option<DateTime<Utc>>,
    next_poll_at: Option<DateTime<Utc>>,
    out: String,
    bytes: Option<u64>,
    sha256: Option<String>,
    error: Option<String>,
}

impl From<&JobRecord> for BoardJob {
    fn from(r: &JobRecord) -> BoardJob {
        BoardJob {
            id: r.id.clone(),
            vendor: r.vendor.clone(),
            connection: r.connection.clone(),
            state: r.state.as_str(),
            cancel_requested: r.cancel_requested,
            progress: r.progress,
            message: r.message.clone(),
            polls: r.polls,
            retries: r.retries,
            created_at: r.created_at,
            started_at: r.started_at,
            finished_at: r.finished_at,
            next_poll_at: r.next_poll_at,
            out: r.out.clone(),
            bytes: r.bytes,
            sha256: r.sha256.clone(),
            error: r.error.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use report_runner::{JobState, NewJob};

    fn record(n: i64, state: JobState) -> JobRecord {
        let new = NewJob {
            vendor: "ofd".into(),
            connection: "default".into(),
            request: serde_json::json!({ "args": ["--type", "request-marker"] }),
            out: format!("/srv/{n}.zip"),
        };
        let created_at = DateTime::from_timestamp(1_700_000_000 + n, 0).unwrap();
        JobRecord {
            state,
            ..JobRecord::queued(format!("job-{n}"), new, created_at)
        }
    }

    #[test]
    fn on_loopback_only_loopback_host_names_are_served() {
        let loopback: SocketAddr = "127.0.0.1:8080".parse().unwrap();
        let host = |h: &str| host_allowed(loopback, Some(&HeaderValue::from_str(h).unwrap()));
        for good in [
            "127.0.0.1:8080",
            "localhost:8080",
            "LOCALHOST",
            "[::1]:8080",
            "[::1]",
        ] {
            assert!(host(good), "{good}");
        }
        for bad in [
            "evil.example:8080",
            "evil.example",
            "127.0.0.1.evil.example",
            "10.0.0.1:8080",
        ] {
            assert!(!host(bad), "{bad}");
        }
        assert!(!host_allowed(loopback, None));
        let network: SocketAddr = "0.0.0.0:8080".parse().unwrap();
        let proxied = HeaderValue::from_static("reports.example.com");
        assert!(host_allowed(network, Some(&proxied)));
    }

    #[test]
    fn the_board_lists_the_newest_jobs_counts_all_and_leaves_requests_out() {
        let records = [
            record(0, JobState::Done),
            record(1, JobState::Failed),
            record(2, JobState::Queued),
        ];
        let board = Board::new(&records, Utc::now(), 2);
        assert_eq!(board.total, 3);
        let ids: Vec<&str> = board.jobs.iter().map(|j| j.id.as_str()).collect();
        assert_eq!(ids, ["job-2", "job-1"]);
        for state in ["done", "failed", "queued"] {
            assert_eq!(board.counts[state], 1, "{state}");
        }
        let json = serde_json::to_value(&board).unwrap();
        let row = json["jobs"][0].as_object().unwrap();
        for absent in ["request", "ticket", "artifact"] {
            assert!(!row.contains_key(absent), "{absent} in {row:?}");
        }
        assert!(!json.to_string().contains("request-marker"));
    }
}
