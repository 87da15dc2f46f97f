//! MetaKocka: one endpoint, `POST /rest/eshop/v1/report`, every value a JSON string, errors in
//! HTTP 200 with `opr_code` other than `"0"`. With `"async":"true"` a call without a token
//! starts a report and returns its token; calls with the token answer `progress` (and a
//! *different* token) until done, then `url`. Without `async` the call answers the file itself.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant as StdInstant};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, State};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use http::header::CONTENT_TYPE;
use http::{HeaderName, StatusCode};
use serde_json::{Value, json};
use tokio::time::Instant;

use crate::Vendor;
use crate::content::{ContentKind, DownloadRequest, FileSpec, serve_file};
use crate::credentials::{METAKOCKA_COMPANY_ID, METAKOCKA_SECRET_KEY};
use crate::faults::guard_status;
use crate::record::record;
use crate::server::ConnCtl;
use crate::shared::{JobClock, Shared, json_response, later};

const VENDOR: Vendor = Vendor::MetaKocka;
/// How long a download link stays valid after the report is done.
const LINK_TTL: Duration = Duration::from_secs(24 * 60 * 60);
/// The `M` of the progress text's `N / M`.
const PROGRESS_STEPS: u64 = 23;

struct MetaKocka {
    shared: Arc<Shared>,
    /// One accounting export at a time.
    exports: tokio::sync::Mutex<()>,
    /// Jobs by the token their start returned.
    jobs: Mutex<HashMap<String, Job>>,
}

struct Job {
    clock: JobClock,
    fail: bool,
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let state = Arc::new(MetaKocka {
        shared: shared.clone(),
        exports: tokio::sync::Mutex::new(()),
        jobs: Mutex::new(HashMap::new()),
    });
    Router::new()
        .route("/rest/eshop/v1/report", post(report))
        .route("/rest/eshop/accounting_export", post(accounting_export))
        .route("/download/report/{token}", get(download))
        .fallback(not_found)
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            (shared, VENDOR.name()),
            record,
        ))
}

/// A MetaKocka answer (HTTP 200) with the operation times added.
fn answer(mut body: Value, started: StdInstant) -> Response {
    body["opr_time_ms"] = json!(started.elapsed().as_millis().to_string());
    body["opr_time_no_lock_ms"] = json!("0");
    json_response(StatusCode::OK, &body)
}

fn opr_error(code: &str, description: &str, started: StdInstant) -> Response {
    answer(json!({"opr_code": code, "opr_desc": description}), started)
}

fn fault_error(status: StatusCode, message: &str) -> Response {
    json_response(status, &json!({"opr_code": "5", "opr_desc": message}))
}

/// A value as MetaKocka reads it: strings as they are, numbers and booleans as text.
fn text(request: &Value, key: &str) -> Option<String> {
    match request.get(key)? {
        Value::String(s) => Some(s.trim().to_owned()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
    .filter(|s| !s.is_empty())
}

/// Extension and content type for a `REPORT_TYPE` value.
fn report_format(report_type: &str) -> Option<(&'static str, &'static str)> {
    Some(match report_type {
        "PDF" => ("pdf", "application/pdf"),
        "XLS" => ("xls", "application/vnd.ms-excel"),
        "POI" => (
            "xlsx",
            "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
        ),
        "CSV" => ("csv", "text/csv; charset=utf-8"),
        "XML" | "ESL" => ("xml", "application/xml"),
        "HTM" => ("htm", "text/html; charset=utf-8"),
        "JSN" => ("json", "application/json"),
        _ => return None,
    })
}

async fn report(
    State(mk): State<Arc<MetaKocka>>,
    ctl: ConnCtl,
    download: DownloadRequest,
    body: Bytes,
) -> Response {
    let started = StdInstant::now();
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return opr_error("2", "Invalid JSON request.", started);
    };
    if text(&request, "secret_key").as_deref() != Some(METAKOCKA_SECRET_KEY)
        || text(&request, "company_id").as_deref() != Some(METAKOCKA_COMPANY_ID)
    {
        return opr_error("1", "Wrong secret key or company id.", started);
    }
    let is_async = text(&request, "async").is_some_and(|a| a.eq_ignore_ascii_case("true"));
    if is_async && let Some(token) = text(&request, "token") {
        return poll(&mk, &ctl, &token, started).await;
    }

    let Some(report_id) = text(&request, "report_id").or_else(|| text(&request, "mk_id")) else {
        return opr_error("2", "Unknown document type : null", started);
    };
    let report_type = request
        .get("params")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
        .find(|p| text(p, "type").as_deref() == Some("REPORT_TYPE"))
        .and_then(|p| text(p, "value"))
        .map_or_else(|| "PDF".to_owned(), |v| v.to_ascii_uppercase());
    let Some((ext, content_type)) = report_format(&report_type) else {
        return opr_error(
            "2",
            &format!("Unknown report type : {report_type}"),
            started,
        );
    };

    let shared = &mk.shared;
    let token = shared.uuid();
    let fail = shared.config.fail_reports;
    if !fail {
        shared.register_file(
            VENDOR,
            &token,
            FileSpec {
                kind: ContentKind::for_ext(ext),
                size: shared.config.report_size,
                gzip: false,
                content_type,
                disposition: Some(format!("attachment; filename=\"report_{report_id}.{ext}\"")),
            },
        );
    }
    shared.stats(VENDOR).started();
    let clock = JobClock::start(shared.config.job_duration);
    mk.jobs
        .lock()
        .expect("metakocka lock")
        .insert(token.clone(), Job { clock, fail });

    if is_async {
        return answer(json!({"opr_code": "0", "token": token}), started);
    }
    // Synchronous printing: the call lasts as long as the job, then answers the file itself.
    tokio::time::sleep_until(clock.ends()).await;
    match shared.file(VENDOR, &token) {
        Some(spec) if !fail => {
            let extra = [(
                HeaderName::from_static("x-sandbox-report-id"),
                token.clone(),
            )];
            serve_file(shared, VENDOR, &token, &spec, &download, &extra).await
        }
        _ => opr_error(
            "5",
            "Napaka pri pripravi poročila (sandbox failure).",
            started,
        ),
    }
}

async fn poll(mk: &MetaKocka, ctl: &ConnCtl, token: &str, started: StdInstant) -> Response {
    let guard = match guard_status(&mk.shared, VENDOR, ctl, fault_error).await {
        Ok(guard) => guard,
        Err(response) => return response,
    };
    let state = mk
        .jobs
        .lock()
        .expect("metakocka lock")
        .get(token)
        .map(|job| (job.clock.fraction(), job.fail));
    let response = match state {
        None => opr_error("6", "Report with this token does not exist.", started),
        Some((fraction, _)) if fraction < 1.0 => {
            let step = ((fraction * PROGRESS_STEPS as f64) as u64 + 1).min(PROGRESS_STEPS);
            // The real service answers in-progress polls with a token other than the one it
            // gave at the start; clients must keep polling with their own.
            answer(
                json!({
                    "opr_code": "0",
                    "token": mk.shared.uuid(),
                    "progress": format!(
                        "Priprava podatkov za račun BC-MK-328 {step} / {PROGRESS_STEPS}"
                    ),
                }),
                started,
            )
        }
        Some((_, true)) => opr_error(
            "5",
            "Napaka pri pripravi poročila (sandbox failure).",
            started,
        ),
        Some(_) => answer(
            json!({
                "opr_code": "0",
                "token": token,
                "url": format!("{}/download/report/{token}", mk.shared.origin(VENDOR)),
            }),
            started,
        ),
    };
    guard.finish(response).await
}

async fn download(
    State(mk): State<Arc<MetaKocka>>,
    Path(token): Path<String>,
    request: DownloadRequest,
) -> Response {
    let now = Instant::now();
    let valid = mk
        .jobs
        .lock()
        .expect("metakocka lock")
        .get(&token)
        .is_some_and(|job| {
            !job.fail && now >= job.clock.ends() && now < later(job.clock.ends(), LINK_TTL)
        });
    match mk.shared.file(VENDOR, &token) {
        Some(spec) if valid => serve_file(&mk.shared, VENDOR, &token, &spec, &request, &[]).await,
        _ => not_found().await,
    }
}

async fn not_found() -> Response {
    (
        StatusCode::NOT_FOUND,
        [(CONTENT_TYPE, "text/plain; charset=utf-8")],
        "Not found",
    )
        .into_response()
}

/// `POST /rest/eshop/accounting_export`: the call itself blocks until the export is done (one
/// at a time per company), then answers `job_id` and `result_url`, a ZIP on a pre-signed URL of
/// another host (the blob origin), valid one hour.
async fn accounting_export(State(mk): State<Arc<MetaKocka>>, body: Bytes) -> Response {
    let started = StdInstant::now();
    let Ok(request) = serde_json::from_slice::<Value>(&body) else {
        return opr_error("2", "Invalid JSON request.", started);
    };
    if text(&request, "secret_key").as_deref() != Some(METAKOCKA_SECRET_KEY)
        || text(&request, "company_id").as_deref() != Some(METAKOCKA_COMPANY_ID)
    {
        return opr_error("1", "Wrong secret key or company id.", started);
    }
    let job_id = mk.shared.hex32();
    let has_profiles = request
        .get("profile_name_list")
        .and_then(Value::as_array)
        .is_some_and(|profiles| !profiles.is_empty());
    let has_dates = text(&request, "from_date").is_some() && text(&request, "to_date").is_some();
    if !(has_profiles && has_dates) {
        let body = json!({
            "opr_code": "2",
            "error_desc": "profile_name_list, from_date and to_date are required",
            "job_id": job_id,
        });
        return answer(body, started);
    }
    // The export runs inside the call; parallel calls of a company wait in line.
    let _one_at_a_time = mk.exports.lock().await;
    tokio::time::sleep(mk.shared.config.job_duration).await;
    if mk.shared.config.fail_reports {
        let body = json!({"opr_code": "5", "error_desc": "Export failed.", "job_id": job_id});
        return answer(body, started);
    }
    mk.shared.register_file(
        VENDOR,
        &job_id,
        FileSpec {
            kind: ContentKind::for_ext("zip"),
            size: mk.shared.config.report_size,
            gzip: false,
            content_type: "application/zip",
            disposition: None,
        },
    );
    let key = format!("{job_id}.zip");
    let url = format!(
        "{}/{EXPORTS}/{key}?X-Amz-Expires=3600&X-Amz-Signature={}",
        mk.shared.origins.blob,
        export_signature(&mk.shared, &key)
    );
    mk.shared.stats(VENDOR).started();
    answer(
        json!({"opr_code": "0", "job_id": job_id, "result_url": url}),
        started,
    )
}

/// The bucket path of accounting exports on the blob origin.
const EXPORTS: &str = "mk-accounting-exports";

fn export_signature(shared: &Shared, key: &str) -> String {
    hex::encode(shared.sign(&format!("GET\n/{EXPORTS}/{key}")))
}

/// The blob origin's side of accounting exports: pre-signed, no credentials.
pub(crate) fn exports_router(shared: Arc<Shared>) -> Router {
    Router::new()
        .route(&format!("/{EXPORTS}/{{key}}"), get(export_file))
        .with_state(shared.clone())
        .layer(middleware::from_fn_with_state((shared, "blob"), record))
}

async fn export_file(
    State(shared): State<Arc<Shared>>,
    Path(key): Path<String>,
    axum::extract::Query(query): axum::extract::Query<Vec<(String, String)>>,
    request: DownloadRequest,
) -> Response {
    let signature = query
        .iter()
        .find(|(name, _)| name == "X-Amz-Signature")
        .map(|(_, value)| value.as_str());
    if signature != Some(export_signature(&shared, &key).as_str()) {
        return (StatusCode::FORBIDDEN, "SignatureDoesNotMatch").into_response();
    }
    let job_id = key.trim_end_matches(".zip");
    match shared.file(VENDOR, job_id) {
        Some(spec) => serve_file(&shared, VENDOR, job_id, &spec, &request, &[]).await,
        None => (StatusCode::NOT_FOUND, "NoSuchKey").into_response(),
    }
}
