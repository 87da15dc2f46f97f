//! EvoVoice (a ServiceStack API): Basic auth (or a `/auth/credentials` cookie session) on every
//! request, a `User-Agent` filter, `POST /reports/billing`, status only by listing
//! `GET /reports?accountId=…` (there is no `GET /reports/{id}`), `GET /reports/{id}.xlsx`,
//! `DELETE /reports/{id}`, ServiceStack `responseStatus` errors. A report created with a
//! `webhookUrl` has it called (POST, the report's JSON; loopback URLs only) once it is done,
//! late, lost or repeated as [`SandboxConfig::evovoice_webhook`] says.
//!
//! [`SandboxConfig::evovoice_webhook`]: crate::SandboxConfig::evovoice_webhook

use std::collections::HashSet;
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::{DateTime, Utc};
use http::header::{SET_COOKIE, WWW_AUTHENTICATE};
use http::{HeaderMap, HeaderValue, StatusCode};
use serde_json::{Value, json};

use crate::Vendor;
use crate::content::{ContentKind, DownloadRequest, FileSpec, serve_file};
use crate::credentials::{EVOVOICE_PASSWORD, EVOVOICE_USERNAME};
use crate::faults::{guard_status, lose_start_answer};
use crate::record::record;
use crate::server::ConnCtl;
use crate::shared::{
    JobClock, Shared, basic_auth, field_ci, fmt_iso, header, json_response, parse_date, query_param,
};
use crate::webhook::LoopbackUrl;

const VENDOR: Vendor = Vendor::EvoVoice;
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const SERVER: &str = "sandbox-worker-1";

struct EvoVoice {
    shared: Arc<Shared>,
    reports: Mutex<Vec<Report>>,
    sessions: Mutex<HashSet<String>>,
}

struct Report {
    id: String,
    name: String,
    account_id: String,
    clock: JobClock,
    created: DateTime<Utc>,
    fail: bool,
    email: Option<String>,
    job_id: String,
}

impl Report {
    fn status(&self) -> &'static str {
        let fraction = self.clock.fraction();
        if fraction < 0.2 {
            "Queued"
        } else if fraction < 1.0 {
            "Running"
        } else if self.fail {
            "Error"
        } else {
            "Completed"
        }
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let state = Arc::new(EvoVoice {
        shared: shared.clone(),
        reports: Mutex::new(Vec::new()),
        sessions: Mutex::new(HashSet::new()),
    });
    let lost = middleware::from_fn_with_state((shared.clone(), VENDOR), lose_start_answer);
    Router::new()
        .route("/auth/credentials", post(authenticate))
        .route("/reports/billing", post(start_billing).layer(lost.clone()))
        .route(
            "/json/reply/EndpointsReport",
            post(start_endpoints).layer(lost.clone()),
        )
        .route("/reports", get(list_reports))
        .route(
            "/reports/{id}",
            get(get_report_file)
                .delete(delete_report)
                .merge(post(start_typed).layer(lost)),
        )
        .fallback(not_found)
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            (shared, VENDOR.name()),
            record,
        ))
}

/// `{"responseStatus": {"errorCode", "message", "errors": [...]}}`.
fn ss_error(status: StatusCode, code: &str, message: &str, errors: Vec<Value>) -> Response {
    json_response(
        status,
        &json!({"responseStatus": {"errorCode": code, "message": message, "errors": errors}}),
    )
}

fn field_error(code: &str, field: &str, message: &str) -> Response {
    ss_error(
        StatusCode::BAD_REQUEST,
        code,
        message,
        vec![json!({"errorCode": code, "fieldName": field, "message": message})],
    )
}

fn fault_error(status: StatusCode, message: &str) -> Response {
    let code = match status {
        StatusCode::TOO_MANY_REQUESTS => "TooManyRequests",
        _ => "Exception",
    };
    ss_error(status, code, message, Vec::new())
}

impl EvoVoice {
    /// The `User-Agent` filter, then Basic auth or a session cookie.
    fn check(&self, headers: &HeaderMap) -> Result<(), Response> {
        check_user_agent(headers)?;
        if basic_auth(headers).is_some_and(|(user, password)| {
            user == EVOVOICE_USERNAME && password == EVOVOICE_PASSWORD
        }) {
            return Ok(());
        }
        let sessions = self.sessions.lock().expect("evovoice lock");
        let session = header(headers, "cookie")
            .into_iter()
            .flat_map(|c| c.split(';'))
            .any(|c| {
                c.trim().split_once('=').is_some_and(|(name, value)| {
                    matches!(name, "ss-id" | "ss-pid") && sessions.contains(value)
                })
            });
        if session {
            return Ok(());
        }
        let mut response = ss_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Not Authenticated",
            Vec::new(),
        );
        response.headers_mut().insert(
            WWW_AUTHENTICATE,
            HeaderValue::from_static("Basic realm=\"/auth/basic\""),
        );
        Err(response)
    }

    fn info(&self, report: &Report) -> Value {
        let status = report.status();
        let clock = &self.shared.clock;
        let updated = match status {
            "Queued" => report.created,
            "Running" => clock.utc_at(report.clock.started + report.clock.duration / 5),
            _ => clock.utc_at(report.clock.ends()),
        };
        let message = match status {
            "Queued" => "Waiting for a worker".to_owned(),
            "Running" => format!(
                "Generating billing report ({:.0}%)",
                report.clock.fraction() * 100.0
            ),
            "Error" => "Report failed: sandbox failure".to_owned(),
            _ => "Report completed".to_owned(),
        };
        let mut info = json!({
            "id": report.id,
            "name": report.name,
            "status": status,
            "statusMessage": message,
            "dateCreated": fmt_iso(report.created),
            "dateUpdated": fmt_iso(updated),
            "jobId": report.job_id,
            "server": SERVER,
        });
        if status == "Completed" {
            info["downloadLink"] = json!(format!(
                "{}/reports/{}.xlsx",
                self.shared.origin(VENDOR),
                report.id
            ));
        }
        if let Some(email) = &report.email {
            info["emailAddressToNotify"] = json!(email);
        }
        info
    }
}

fn check_user_agent(headers: &HeaderMap) -> Result<(), Response> {
    match header(headers, "user-agent").map(str::trim) {
        Some(agent)
            if !agent.is_empty() && !agent.to_ascii_lowercase().starts_with("python-requests") =>
        {
            Ok(())
        }
        _ => Err(ss_error(
            StatusCode::FORBIDDEN,
            "Forbidden",
            "Requests without a User-Agent of their own are not allowed",
            Vec::new(),
        )),
    }
}

async fn authenticate(
    State(evo): State<Arc<EvoVoice>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if let Err(response) = check_user_agent(&headers) {
        return response;
    }
    let request: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
    let text = |name: &str| field_ci(&request, name).and_then(Value::as_str);
    if text("userName") != Some(EVOVOICE_USERNAME) || text("password") != Some(EVOVOICE_PASSWORD) {
        return ss_error(
            StatusCode::UNAUTHORIZED,
            "Unauthorized",
            "Invalid UserName or Password",
            Vec::new(),
        );
    }
    let session = evo.shared.hex32();
    evo.sessions
        .lock()
        .expect("evovoice lock")
        .insert(session.clone());
    let mut response = json_response(
        StatusCode::OK,
        &json!({
            "userId": "1",
            "sessionId": session,
            "userName": EVOVOICE_USERNAME,
            "displayName": "Sandbox Demo",
            "responseStatus": {},
        }),
    );
    for cookie in [
        format!("ss-id={session}; path=/; samesite=lax; httponly"),
        format!("ss-pid={session}; path=/; samesite=lax; httponly"),
        "ss-opt=perm; path=/; samesite=lax; httponly".to_owned(),
    ] {
        if let Ok(value) = HeaderValue::from_str(&cookie) {
            response.headers_mut().append(SET_COOKIE, value);
        }
    }
    response
}

/// The report types besides billing that `POST /reports/<type>` starts (the vendor's tool).
const REPORT_TYPES: [&str; 9] = [
    "agent-state",
    "call-center-abandon",
    "call-center-detail",
    "call-center",
    "call-history",
    "call-outcome",
    "cdr",
    "metric",
    "sync-phone-numbers",
];

async fn start_billing(
    State(evo): State<Arc<EvoVoice>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    start_report(&evo, "billing", &headers, &body)
}

/// `POST /json/reply/EndpointsReport`: ServiceStack's predefined route, started like billing.
async fn start_endpoints(
    State(evo): State<Arc<EvoVoice>>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    start_report(&evo, "endpoints", &headers, &body)
}

/// `POST /reports/<type>`: every other type is started like billing.
async fn start_typed(
    State(evo): State<Arc<EvoVoice>>,
    Path(kind): Path<String>,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    if !REPORT_TYPES.contains(&kind.as_str()) {
        return ss_error(
            StatusCode::NOT_FOUND,
            "NotFound",
            &format!("Handler for Request not found: POST /reports/{kind}"),
            Vec::new(),
        );
    }
    start_report(&evo, &kind, &headers, &body)
}

fn start_report(evo: &Arc<EvoVoice>, kind: &str, headers: &HeaderMap, body: &[u8]) -> Response {
    if let Err(response) = evo.check(headers) {
        return response;
    }
    let Ok(request) = serde_json::from_slice::<Value>(body) else {
        return ss_error(
            StatusCode::BAD_REQUEST,
            "SerializationException",
            "Could not deserialize the request body as JSON",
            Vec::new(),
        );
    };
    let text = |name: &str| {
        field_ci(&request, name)
            .and_then(Value::as_str)
            .map(str::trim)
            .filter(|s| !s.is_empty())
    };
    let Some(account_id) = text("accountId") else {
        return field_error("NotEmpty", "AccountId", "'Account Id' must not be empty.");
    };
    let Some(start_text) = text("startDate") else {
        return field_error("NotEmpty", "StartDate", "'Start Date' must not be empty.");
    };
    let Some(end_text) = text("endDate") else {
        return field_error("NotEmpty", "EndDate", "'End Date' must not be empty.");
    };
    let Some(start) = parse_date(start_text) else {
        return field_error(
            "InvalidFormat",
            "StartDate",
            "'Start Date' is not a valid date.",
        );
    };
    let Some(end) = parse_date(end_text) else {
        return field_error(
            "InvalidFormat",
            "EndDate",
            "'End Date' is not a valid date.",
        );
    };
    if start.0 > end.0 {
        return field_error(
            "LessThanOrEqual",
            "StartDate",
            "'Start Date' must be less than or equal to 'End Date'.",
        );
    }
    let webhook = match text("webhookUrl") {
        None => None,
        Some(url) => match LoopbackUrl::parse(url) {
            Some(url) => Some(url),
            None => {
                return field_error(
                    "InvalidFormat",
                    "WebhookUrl",
                    "'Webhook Url' must be an http:// loopback URL with a port in the sandbox.",
                );
            }
        },
    };
    let shared = &evo.shared;
    let id = shared.uuid();
    let fail = shared.config.fail_reports;
    if !fail {
        shared.register_file(
            VENDOR,
            &id,
            FileSpec {
                kind: ContentKind::for_ext("xlsx"),
                size: shared.config.report_size,
                gzip: false,
                content_type: XLSX,
                disposition: Some(format!("attachment; filename=\"{kind}-report-{id}.xlsx\"")),
            },
        );
    }
    let report = Report {
        name: format!("{} Report {start_text} - {end_text}", title(kind)),
        account_id: account_id.to_owned(),
        clock: JobClock::start(shared.config.job_duration),
        created: shared.clock.utc_now(),
        fail,
        email: text("emailAddressToNotify").map(str::to_owned),
        job_id: shared.hex32(),
        id,
    };
    shared.stats(VENDOR).started();
    let info = evo.info(&report);
    if let Some(url) = webhook {
        call_back_when_done(evo.clone(), report.id.clone(), report.clock.ends(), url);
    }
    evo.reports.lock().expect("evovoice lock").push(report);
    json_response(StatusCode::OK, &info)
}

/// `call-history` → `Call History`.
fn title(kind: &str) -> String {
    kind.split('-')
        .map(|word| {
            let mut chars = word.chars();
            chars
                .next()
                .map(|first| first.to_uppercase().chain(chars).collect::<String>())
                .unwrap_or_default()
        })
        .collect::<Vec<_>>()
        .join(" ")
}

/// Once the report is done (and the configured delay has passed), POSTs its JSON to the
/// webhook, as many times as configured; nothing if the callback is to be lost or the report
/// was deleted meanwhile.
fn call_back_when_done(
    evo: Arc<EvoVoice>,
    id: String,
    done_at: tokio::time::Instant,
    url: LoopbackUrl,
) {
    let delivery = evo.shared.config.evovoice_webhook.clone();
    if delivery.lost {
        return;
    }
    tokio::spawn(async move {
        tokio::time::sleep_until(crate::shared::later(done_at, delivery.delay)).await;
        let body = {
            let reports = evo.reports.lock().expect("evovoice lock");
            let Some(report) = reports.iter().find(|r| r.id == id) else {
                return;
            };
            evo.info(report).to_string()
        };
        for _ in 0..delivery.copies {
            let _ = url.post(&body).await;
        }
    });
}

async fn list_reports(
    State(evo): State<Arc<EvoVoice>>,
    ctl: ConnCtl,
    headers: HeaderMap,
    Query(query): Query<Vec<(String, String)>>,
) -> Response {
    if let Err(response) = evo.check(&headers) {
        return response;
    }
    let guard = match guard_status(&evo.shared, VENDOR, &ctl, fault_error).await {
        Ok(guard) => guard,
        Err(response) => return response,
    };
    let account = query_param(&query, "accountId");
    let reports: Vec<Value> = evo
        .reports
        .lock()
        .expect("evovoice lock")
        .iter()
        .filter(|r| account.is_none_or(|a| a == r.account_id))
        .map(|r| evo.info(r))
        .collect();
    guard
        .finish(json_response(StatusCode::OK, &json!({"reports": reports})))
        .await
}

fn report_not_found(id: &str) -> Response {
    ss_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!("Report {id} was not found"),
        Vec::new(),
    )
}

async fn get_report_file(
    State(evo): State<Arc<EvoVoice>>,
    Path(file): Path<String>,
    headers: HeaderMap,
    download: DownloadRequest,
) -> Response {
    if let Err(response) = evo.check(&headers) {
        return response;
    }
    let Some(id) = file.strip_suffix(".xlsx") else {
        // There is no GET /reports/{id}: status is read by listing.
        return ss_error(
            StatusCode::METHOD_NOT_ALLOWED,
            "NotImplementedException",
            "Could not find method named Get(DeleteReport) or Any(DeleteReport) on Service ReportsService",
            Vec::new(),
        );
    };
    let status = evo
        .reports
        .lock()
        .expect("evovoice lock")
        .iter()
        .find(|r| r.id == id)
        .map(Report::status);
    match (status, evo.shared.file(VENDOR, id)) {
        (None, _) => report_not_found(id),
        (Some("Completed"), Some(spec)) => {
            serve_file(&evo.shared, VENDOR, id, &spec, &download, &[]).await
        }
        (Some(status), _) => ss_error(
            StatusCode::BAD_REQUEST,
            "InvalidOperationException",
            &format!("Report {id} is not completed (status {status})"),
            Vec::new(),
        ),
    }
}

async fn delete_report(
    State(evo): State<Arc<EvoVoice>>,
    Path(id): Path<String>,
    headers: HeaderMap,
) -> Response {
    if let Err(response) = evo.check(&headers) {
        return response;
    }
    let mut reports = evo.reports.lock().expect("evovoice lock");
    let before = reports.len();
    reports.retain(|r| r.id != id);
    if reports.len() == before {
        return report_not_found(&id);
    }
    StatusCode::NO_CONTENT.into_response()
}

async fn not_found(uri: http::Uri) -> Response {
    ss_error(
        StatusCode::NOT_FOUND,
        "NotFound",
        &format!(
            "Handler for Request not found (404):\n  Request.PathInfo: {}",
            uri.path()
        ),
        Vec::new(),
    )
}
