//! Recording of every request received, on every origin.

use std::sync::{Arc, Mutex};

use axum::body::Body;
use axum::extract::{Request, State};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http::StatusCode;

use crate::shared::Shared;

/// Most bytes of a request body kept in a [`RecordedRequest`].
const BODY_EXCERPT: usize = 4 * 1024;
/// Largest request body accepted (bodies are buffered to be recorded).
const BODY_LIMIT: usize = 16 * 1024 * 1024;

/// One request as the sandbox received it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RecordedRequest {
    /// The vendor's name (`ofd`, `docspace`, …) or `blob` for the blob origin.
    pub origin: String,
    /// HTTP method, e.g. `GET`.
    pub method: String,
    /// Path, percent-encoded as received, without the query.
    pub path: String,
    /// Query string as received, without `?`.
    pub query: Option<String>,
    /// Every header (names lowercase, values decoded lossily), in order.
    pub headers: Vec<(String, String)>,
    /// The body, decoded lossily as UTF-8, at most the first 4 KiB.
    pub body: String,
}

impl RecordedRequest {
    /// The first value of a header (name compared ignoring ASCII case).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    /// Whether a header is present (name compared ignoring ASCII case).
    pub fn has_header(&self, name: &str) -> bool {
        self.header(name).is_some()
    }
}

#[derive(Default)]
pub(crate) struct Recorder {
    list: Mutex<Vec<RecordedRequest>>,
}

impl Recorder {
    pub(crate) fn push(&self, request: RecordedRequest) {
        self.list.lock().expect("recorder lock").push(request);
    }

    pub(crate) fn snapshot(&self) -> Vec<RecordedRequest> {
        self.list.lock().expect("recorder lock").clone()
    }

    pub(crate) fn clear(&self) {
        self.list.lock().expect("recorder lock").clear();
    }
}

/// Middleware: records the request (buffering its body), then passes it on.
pub(crate) async fn record(
    State((shared, origin)): State<(Arc<Shared>, &'static str)>,
    request: Request,
    next: Next,
) -> Response {
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, BODY_LIMIT).await {
        Ok(bytes) => bytes,
        Err(_) => return (StatusCode::PAYLOAD_TOO_LARGE, "request body too large").into_response(),
    };
    let excerpt = &bytes[..bytes.len().min(BODY_EXCERPT)];
    shared.recorder.push(RecordedRequest {
        origin: origin.to_owned(),
        method: parts.method.as_str().to_owned(),
        path: parts.uri.path().to_owned(),
        query: parts.uri.query().map(str::to_owned),
        headers: parts
            .headers
            .iter()
            .map(|(name, value)| {
                (
                    name.as_str().to_owned(),
                    String::from_utf8_lossy(value.as_bytes()).into_owned(),
                )
            })
            .collect(),
        body: String::from_utf8_lossy(excerpt).into_owned(),
    });
    next.run(Request::from_parts(parts, Body::from(bytes)))
        .await
}
