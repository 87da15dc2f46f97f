//! Fault injection: the probabilities, and how they are applied to status requests, downloads
//! and the answers of starts. Token requests are never faulted.

use std::sync::Arc;
use std::time::Duration;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::header::{CONTENT_LENGTH, CONTENT_TYPE, RETRY_AFTER};
use http::{HeaderValue, StatusCode};

use crate::Vendor;
use crate::server::ConnCtl;
use crate::shared::Shared;

/// Fault probabilities, each in `0.0..=1.0` and rolled independently per request.
///
/// When several faults are rolled for one status request, a dropped connection wins over a 5xx,
/// which wins over a 429, which wins over a truncated body; a delay adds to any of them.
#[derive(Clone, Debug, PartialEq)]
pub struct Faults {
    /// Status requests answer 500, 502 or 503 (502 and 503 with an HTML body, like a proxy).
    pub status_5xx: f64,
    /// Status requests answer 429 with `Retry-After: retry_after_secs`.
    pub status_429: f64,
    /// The `Retry-After` of 429 answers, in seconds. Default 1.
    pub retry_after_secs: u64,
    /// Status answers are delayed by `slow_delay`.
    pub slow: f64,
    /// The delay of slow answers. Default 2 s.
    pub slow_delay: Duration,
    /// Status requests: the connection is closed without an answer.
    pub drop_connection: f64,
    /// Status answers: the JSON body is cut in half (with a matching `Content-Length`).
    pub truncate_body: f64,
    /// Downloads: the body stops after about half the bytes and the connection is closed.
    pub download_cut: f64,
    /// Downloads: the body drips at this many bytes a second at most (0: as fast as it goes),
    /// like a slow link or a vendor streaming a file as it writes it.
    pub download_bytes_per_sec: u64,
    /// Starts (OFD, CloudBlue, EvoVoice, DocSpace): the vendor starts the report, then closes
    /// the connection instead of answering (a start whose answer was lost). Never set by
    /// [`Faults::uniform`]: only vendors that list their reports can recover from it.
    pub start_answer_lost: f64,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            status_5xx: 0.0,
            status_429: 0.0,
            retry_after_secs: 1,
            slow: 0.0,
            slow_delay: Duration::from_secs(2),
            drop_connection: 0.0,
            truncate_body: 0.0,
            download_cut: 0.0,
            download_bytes_per_sec: 0,
            start_answer_lost: 0.0,
        }
    }
}

impl Faults {
    /// No faults at all (the default).
    pub fn none() -> Self {
        Faults::default()
    }

    /// Every fault with the same probability `p` (`retry_after_secs` 1, `slow_delay` 50 ms),
    /// handy for smoke tests of retry logic.
    pub fn uniform(p: f64) -> Self {
        Faults {
            status_5xx: p,
            status_429: p,
            retry_after_secs: 1,
            slow: p,
            slow_delay: Duration::from_millis(50),
            drop_connection: p,
            truncate_body: p,
            download_cut: p,
            download_bytes_per_sec: 0,
            start_answer_lost: 0.0,
        }
    }

    /// Whether no fault can happen.
    pub fn is_none(&self) -> bool {
        [
            self.status_5xx,
            self.status_429,
            self.slow,
            self.drop_connection,
            self.truncate_body,
            self.download_cut,
            self.start_answer_lost,
        ]
        .iter()
        .all(|p| p.is_nan() || *p <= 0.0)
            && self.download_bytes_per_sec == 0
    }
}

/// What remains to do to a status answer once it passed [`guard_status`].
pub(crate) struct StatusGuard {
    truncate: bool,
}

impl StatusGuard {
    /// Applies the remaining fault (a truncated body) to the handler's answer.
    pub(crate) async fn finish(self, response: Response) -> Response {
        if !self.truncate {
            return response;
        }
        let (mut parts, body) = response.into_parts();
        let bytes = axum::body::to_bytes(body, usize::MAX)
            .await
            .unwrap_or_default();
        let cut = bytes.slice(..bytes.len() / 2);
        parts.headers.remove(CONTENT_LENGTH);
        Response::from_parts(parts, Body::from(cut))
    }
}

/// Counts a status request and rolls its faults; `error` builds the vendor's own error answer
/// (for 500 and 429). `Err` holds the faulted answer to send
/// instead of the real one; a dropped connection never returns.
pub(crate) async fn guard_status(
    shared: &Shared,
    vendor: Vendor,
    ctl: &ConnCtl,
    error: impl Fn(StatusCode, &str) -> Response,
) -> Result<StatusGuard, Response> {
    let stats = shared.stats(vendor);
    stats.status();
    let faults = shared.faults.lock().expect("faults lock").clone();
    if faults.is_none() {
        return Ok(StatusGuard { truncate: false });
    }
    let slow = shared.roll(faults.slow);
    let drop = shared.roll(faults.drop_connection);
    let fail = shared.roll(faults.status_5xx);
    let limited = shared.roll(faults.status_429);
    let truncate = shared.roll(faults.truncate_body);

    if slow {
        stats.faults(1);
        tokio::time::sleep(faults.slow_delay).await;
    }
    if drop {
        stats.faults(1);
        return Err(ctl.drop_connection().await);
    }
    if fail {
        stats.faults(1);
        let status = [
            StatusCode::INTERNAL_SERVER_ERROR,
            StatusCode::BAD_GATEWAY,
            StatusCode::SERVICE_UNAVAILABLE,
        ][shared.pick(3)];
        return Err(if status == StatusCode::INTERNAL_SERVER_ERROR {
            error(status, "Internal server error (sandbox fault)")
        } else {
            proxy_html(status)
        });
    }
    if limited {
        stats.faults(1);
        let mut response = error(
            StatusCode::TOO_MANY_REQUESTS,
            "Too many requests (sandbox fault)",
        );
        response
            .headers_mut()
            .insert(RETRY_AFTER, HeaderValue::from(faults.retry_after_secs));
        return Err(response);
    }
    if truncate {
        stats.faults(1);
    }
    Ok(StatusGuard { truncate })
}

/// Middleware of start routes: a start the vendor carried out (a 2xx answer) loses its answer
/// with the probability [`Faults::start_answer_lost`]: the connection is closed instead.
pub(crate) async fn lose_start_answer(
    State((shared, vendor)): State<(Arc<Shared>, Vendor)>,
    ctl: ConnCtl,
    request: Request,
    next: Next,
) -> Response {
    let answer = next.run(request).await;
    let p = shared.faults.lock().expect("faults lock").start_answer_lost;
    if answer.status().is_success() && shared.roll(p) {
        shared.stats(vendor).faults(1);
        return ctl.drop_connection().await;
    }
    answer
}

/// Rolls the download fault for one download; counts it when it fires.
pub(crate) fn roll_download_cut(shared: &Shared, vendor: Vendor) -> bool {
    let p = shared.faults.lock().expect("faults lock").download_cut;
    let cut = shared.roll(p);
    if cut {
        shared.stats(vendor).faults(1);
    }
    cut
}

/// The HTML page a reverse proxy answers with on 502 and 503.
fn proxy_html(status: StatusCode) -> Response {
    let title = format!(
        "{} {}",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error")
    );
    let body = format!(
        "<html>\r\n<head><title>{title}</title></head>\r\n<body>\r\n<center><h1>{title}</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n"
    );
    (status, [(CONTENT_TYPE, "text/html")], body).into_response()
}
