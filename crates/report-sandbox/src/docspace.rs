//! ONLYOFFICE DocSpace: one customer-operations-report task per portal user (POST start, GET
//! status, DELETE terminate, no id), `DocumentBuilderTaskDto` with an integer status, the file
//! saved in Documents and downloaded through the Files API.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use axum::Router;
use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::middleware;
use axum::response::Response;
use axum::routing::{get, post};
use http::{HeaderMap, Method, StatusCode, Uri};
use serde_json::{Value, json};
use sha2::{Digest, Sha256};
use tokio::time::Instant;

use crate::Vendor;
use crate::content::{ContentKind, DownloadRequest, FileSpec, serve_file};
use crate::credentials::{DOCSPACE_API_KEY, DOCSPACE_API_KEY_2};
use crate::faults::{guard_status, lose_start_answer};
use crate::record::record;
use crate::server::ConnCtl;
use crate::shared::{JobClock, Shared, bearer, json_response, parse_date, query_param};

const VENDOR: Vendor = Vendor::DocSpace;
const TENANT_ID: u32 = 1;
const RESULT_FILE_NAME: &str = "operations_report.xlsx";
const XLSX: &str = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet";
const OPERATIONS_REPORT: &str = "/api/2.0/portal/payment/customer/operationsreport";

// DistributedTaskStatus.
const CREATED: u8 = 0;
const RUNNING: u8 = 1;
const COMPLETED: u8 = 2;
const CANCELED: u8 = 3;
const FAILTED: u8 = 4;

struct DocSpace {
    shared: Arc<Shared>,
    /// The current (or last) task of each user, by API key.
    tasks: Mutex<HashMap<&'static str, Task>>,
    /// Result files in Documents: id → (owner's API key, when the file exists).
    files: Mutex<HashMap<u64, (&'static str, Instant)>>,
    next_file_id: AtomicU64,
}

struct Task {
    id: String,
    clock: JobClock,
    fail: bool,
    /// Percentage reached when the task was terminated.
    canceled: Option<u8>,
    file_id: u64,
    /// The result file's name: "Customer operations report ({from}-{to}).xlsx" when the start
    /// gave a period, as DocSpace names it.
    file_name: String,
}

struct TaskState {
    status: u8,
    percentage: u8,
    completed: bool,
    error: &'static str,
}

impl Task {
    fn state(&self) -> TaskState {
        let fraction = self.clock.fraction();
        let percentage = if fraction < 1.0 / 3.0 {
            0
        } else if fraction < 2.0 / 3.0 {
            30
        } else {
            60
        };
        let (status, percentage, completed, error) = if let Some(percentage) = self.canceled {
            (CANCELED, percentage, true, "")
        } else if fraction >= 1.0 && self.fail {
            (
                FAILTED,
                percentage,
                true,
                "Failed to build the customer operations report (sandbox failure)",
            )
        } else if fraction >= 1.0 {
            (COMPLETED, 100, true, "")
        } else if fraction < 0.1 {
            (CREATED, percentage, false, "")
        } else {
            (RUNNING, percentage, false, "")
        };
        TaskState {
            status,
            percentage,
            completed,
            error,
        }
    }
}

pub(crate) fn router(shared: Arc<Shared>) -> Router {
    let state = Arc::new(DocSpace {
        shared: shared.clone(),
        tasks: Mutex::new(HashMap::new()),
        files: Mutex::new(HashMap::new()),
        next_file_id: AtomicU64::new(4101),
    });
    Router::new()
        .route(
            OPERATIONS_REPORT,
            get(get_task)
                .delete(terminate_task)
                .merge(post(start_task).layer(middleware::from_fn_with_state(
                    (shared.clone(), VENDOR),
                    lose_start_answer,
                ))),
        )
        .route(
            "/api/2.0/files/file/{file_id}/presigneduri",
            get(presigned_uri),
        )
        .route("/filehandler.ashx", get(file_handler))
        .fallback(not_found)
        .with_state(state)
        .layer(middleware::from_fn_with_state(
            (shared, VENDOR.name()),
            record,
        ))
}

/// `{"error": {"message", "type"}, "status": 1, "statusCode": N}` with HTTP status N.
fn error(status: StatusCode, message: &str) -> Response {
    let kind = match status {
        StatusCode::UNAUTHORIZED => "System.Security.Authentication.AuthenticationException",
        StatusCode::FORBIDDEN => "System.Security.SecurityException",
        StatusCode::NOT_FOUND => "System.IO.FileNotFoundException",
        StatusCode::BAD_REQUEST => "System.ArgumentException",
        StatusCode::TOO_MANY_REQUESTS => "ASC.Api.Core.Middleware.RateLimitException",
        _ => "System.Exception",
    };
    json_response(
        status,
        &json!({
            "error": {"message": message, "type": kind},
            "status": 1,
            "statusCode": status.as_u16(),
        }),
    )
}

impl DocSpace {
    fn user(&self, headers: &HeaderMap) -> Result<&'static str, Response> {
        match bearer(headers) {
            Some(DOCSPACE_API_KEY) => Ok(DOCSPACE_API_KEY),
            Some(DOCSPACE_API_KEY_2) => Ok(DOCSPACE_API_KEY_2),
            _ => Err(error(StatusCode::UNAUTHORIZED, "Unauthorized")),
        }
    }

    fn envelope(&self, response: Option<Value>, method: &Method, uri: &Uri) -> Value {
        let origin = self.shared.origin(VENDOR);
        let path_and_query = uri.path_and_query().map_or("/", |p| p.as_str());
        let mut envelope = json!({
            "count": if response.is_some() { 1 } else { 0 },
            "links": [{"href": format!("{origin}{path_and_query}"), "action": method.as_str()}],
            "status": 0,
            "statusCode": 200,
        });
        if let Some(response) = response {
            envelope["response"] = response;
        }
        envelope
    }

    fn task_json(&self, task: &Task) -> Value {
        let state = task.state();
        let done = state.status == COMPLETED;
        let origin = self.shared.origin(VENDOR);
        json!({
            "id": task.id,
            "error": state.error,
            "percentage": state.percentage,
            "isCompleted": state.completed,
            "status": state.status,
            "resultFileId": if done { task.file_id } else { 0 },
            "resultFileName": if done { task.file_name.as_str() } else { "" },
            "resultFileUrl": if done {
                format!("{origin}/doceditor?fileid={}", task.file_id)
            } else {
                String::new()
            },
        })
    }

    fn file_token(&self, file_id: u64) -> String {
        hex::encode(&self.shared.sign(&format!("docspace file {file_id}"))[..16])
    }
}

fn task_id(key: &str) -> String {
    let digest = Sha256::digest(format!("docspace user {key}"));
    let user =
        uuid::Builder::from_random_bytes(digest[..16].try_into().expect("16 bytes")).into_uuid();
    format!("DocumentBuilderTask_{TENANT_ID}_{user}")
}

async fn start_task(
    State(ds): State<Arc<DocSpace>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Bytes,
) -> Response {
    let key = match ds.user(&headers) {
        Ok(key) => key,
        Err(response) => return response,
    };
    let mut file_name = RESULT_FILE_NAME.to_string();
    if !body.iter().all(u8::is_ascii_whitespace) {
        let Ok(request) = serde_json::from_slice::<Value>(&body) else {
            return error(
                StatusCode::BAD_REQUEST,
                "The request body is not valid JSON",
            );
        };
        // `orderType` has no string converter on the server: a name fails model validation,
        // answered as ASP.NET problem details under `response`.
        if request.get("orderType").is_some_and(Value::is_string) {
            let details = serde_json::json!({
                "response": {
                    "title": "One or more validation errors occurred.",
                    "status": 400,
                    "errors": {"$.orderType": ["The JSON value could not be converted to ASC.Core.Common.EF.OperationOrderType."]},
                    "traceId": "00-sandbox-00"
                },
                "count": 1, "status": 1, "statusCode": 400
            });
            return json_response(StatusCode::BAD_REQUEST, &details);
        }
        let date = |name: &str| {
            request
                .get(name)
                .and_then(Value::as_str)
                .and_then(parse_date)
        };
        if let (Some(start), Some(end)) = (date("startDate"), date("endDate"))
            && start.0 > end.0
        {
            return error(
                StatusCode::BAD_REQUEST,
                "The start date must not be later than the end date",
            );
        }
        if let (Some(start), Some(end)) = (date("startDate"), date("endDate")) {
            file_name = format!(
                "Customer operations report ({}-{}).xlsx",
                start.1.format("%d.%m.%Y"),
                end.1.format("%d.%m.%Y")
            );
        }
    }
    let shared = &ds.shared;
    let mut tasks = ds.tasks.lock().expect("docspace lock");
    if let Some(task) = tasks.get(key)
        && !task.state().completed
    {
        // One task per user: a running task is returned as is.
        let response = ds.task_json(task);
        return json_response(StatusCode::OK, &ds.envelope(Some(response), &method, &uri));
    }
    let file_id = ds.next_file_id.fetch_add(1, Ordering::Relaxed);
    let fail = shared.config.fail_reports;
    let task = Task {
        id: task_id(key),
        clock: JobClock::start(shared.config.job_duration),
        fail,
        canceled: None,
        file_id,
        file_name: file_name.clone(),
    };
    if !fail {
        shared.register_file(
            VENDOR,
            &file_id.to_string(),
            FileSpec {
                kind: ContentKind::for_ext("xlsx"),
                size: shared.config.report_size,
                gzip: false,
                content_type: XLSX,
                disposition: Some(format!("attachment; filename=\"{file_name}\"")),
            },
        );
        ds.files
            .lock()
            .expect("docspace lock")
            .insert(file_id, (key, task.clock.ends()));
    }
    shared.stats(VENDOR).started();
    let response = ds.task_json(&task);
    tasks.insert(key, task);
    json_response(StatusCode::OK, &ds.envelope(Some(response), &method, &uri))
}

async fn get_task(
    State(ds): State<Arc<DocSpace>>,
    ctl: ConnCtl,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let key = match ds.user(&headers) {
        Ok(key) => key,
        Err(response) => return response,
    };
    let guard = match guard_status(&ds.shared, VENDOR, &ctl, error).await {
        Ok(guard) => guard,
        Err(response) => return response,
    };
    let response = ds
        .tasks
        .lock()
        .expect("docspace lock")
        .get(key)
        .map(|task| ds.task_json(task));
    let body = ds.envelope(response, &method, &uri);
    guard.finish(json_response(StatusCode::OK, &body)).await
}

async fn terminate_task(
    State(ds): State<Arc<DocSpace>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let key = match ds.user(&headers) {
        Ok(key) => key,
        Err(response) => return response,
    };
    let mut tasks = ds.tasks.lock().expect("docspace lock");
    let response = tasks.get_mut(key).map(|task| {
        let state = task.state();
        if !state.completed {
            task.canceled = Some(state.percentage);
            ds.files
                .lock()
                .expect("docspace lock")
                .remove(&task.file_id);
        }
        ds.task_json(task)
    });
    json_response(StatusCode::OK, &ds.envelope(response, &method, &uri))
}

fn file_not_found() -> Response {
    error(StatusCode::NOT_FOUND, "The required file was not found")
}

async fn presigned_uri(
    State(ds): State<Arc<DocSpace>>,
    Path(file_id): Path<String>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
) -> Response {
    let key = match ds.user(&headers) {
        Ok(key) => key,
        Err(response) => return response,
    };
    let Ok(file_id) = file_id.parse::<u64>() else {
        return error(StatusCode::BAD_REQUEST, "Invalid file id");
    };
    let exists = ds
        .files
        .lock()
        .expect("docspace lock")
        .get(&file_id)
        .is_some_and(|(owner, ready)| *owner == key && Instant::now() >= *ready);
    if !exists {
        return file_not_found();
    }
    let url = format!(
        "{}/filehandler.ashx?action=download&fileid={file_id}&token={}",
        ds.shared.origin(VENDOR),
        ds.file_token(file_id)
    );
    json_response(
        StatusCode::OK,
        &ds.envelope(Some(Value::String(url)), &method, &uri),
    )
}

async fn file_handler(
    State(ds): State<Arc<DocSpace>>,
    Query(query): Query<Vec<(String, String)>>,
    headers: HeaderMap,
    download: DownloadRequest,
) -> Response {
    let Some(file_id) = query_param(&query, "fileid").and_then(|id| id.parse::<u64>().ok()) else {
        return error(StatusCode::BAD_REQUEST, "fileid is required");
    };
    let signed = query_param(&query, "token").is_some_and(|t| t == ds.file_token(file_id));
    let user = ds.user(&headers).ok();
    if !signed && user.is_none() {
        return error(StatusCode::UNAUTHORIZED, "Unauthorized");
    }
    if !query_param(&query, "action").is_some_and(|a| a.eq_ignore_ascii_case("download")) {
        return error(StatusCode::BAD_REQUEST, "Unsupported action");
    }
    let available = ds
        .files
        .lock()
        .expect("docspace lock")
        .get(&file_id)
        .is_some_and(|(owner, ready)| (signed || user == Some(*owner)) && Instant::now() >= *ready);
    let id = file_id.to_string();
    match ds.shared.file(VENDOR, &id) {
        Some(spec) if available => serve_file(&ds.shared, VENDOR, &id, &spec, &download, &[]).await,
        _ => file_not_found(),
    }
}

async fn not_found() -> Response {
    error(StatusCode::NOT_FOUND, "Resource not found")
}
